// The causal depthwise conv over time, kernel width k, with bias, then SiLU (docs/model.md):
//   xc[t, c] = b[c] + Σ_j w[c, j]·x[t − (k−1) + j, c];   x' = silu(xc)
// x is the x half of in_proj's output (kernels/layout.ts splitXz). Positions before the chunk come from the carried
// conv state (E, k−1): state[c, 0..k−2] holds x[−(k−1)..−1, c], oldest first — the last k−1 columns of
// transformers' conv_states. Forgetting to carry it is the classic rollback bug, so it is explicit here.
// The forms, each checked against convReference (and nextConvState):
//   convReference, nextConvState  plain loops (the host forward keeps the state with nextConvState on every backend)
//   convSilu                      gpu.js kernel for the host forward, one thread per (t, c)
//   convAndState                  gpu.js kernel on the blocked layout (the GPU-resident forward), output and state
//   convStateKeep                 the GPU-resident forward's rollback after a verify pass: the state after j inputs
import type { KernelThis } from './types.js';
import { at, type Columns } from './layout.js';

/** What a conv reads. */
export interface ConvArgs {
	x: Columns; // (T, E) the conv's input, a view of in_proj's output
	state: Float32Array; // (E, k−1) the inputs before the chunk, oldest first
	w: Float32Array; // (E, k) from conv1d.weight (E, 1, k)
	b: Float32Array; // (E)
}

export interface ConvDims {
	T: number; // positions
	E: number; // d_inner
	k: number; // d_conv, the kernel width
}

export const silu = (v: number): number => v / (1 + Math.exp(-v));

// ---- reference ------------------------------------------------------------------------------------------------

/** silu(conv(x)) (T, E), accumulating in float64. */
export function convReference({ x, state, w, b }: ConvArgs, { T, E, k }: ConvDims): Float32Array {
	const m = k - 1;
	// x at time s, channel c; before the chunk (s < 0) from the state
	const xAt = (s: number, c: number) => (s >= 0 ? at(x, s, c) : state[c * m + m + s]);
	const y = new Float32Array(T * E);
	for (let t = 0; t < T; t++) {
		for (let c = 0; c < E; c++) {
			let acc = b[c];
			for (let j = 0; j < k; j++) acc += w[c * k + j] * xAt(t - m + j, c);
			y[t * E + c] = silu(acc);
		}
	}
	return y;
}

/** The conv state after a chunk: the last k−1 inputs of [state | x[0..T−1]], per channel. */
export function nextConvState({ x, state }: Pick<ConvArgs, 'x' | 'state'>, { T, E, k }: ConvDims): Float32Array {
	const m = k - 1;
	const next = new Float32Array(E * m);
	for (let c = 0; c < E; c++) {
		for (let j = 0; j < m; j++) {
			const s = T - m + j; // time of the j-th kept input; negative = still in the old state
			next[c * m + j] = s >= 0 ? at(x, s, c) : state[c * m + m + s];
		}
	}
	return next;
}

// ---- host gpu.js kernel (src/backend/gpujs.ts) ------------------------------------------------------------------

interface HostConvConstants {
	E: number; // d_inner
	K: number; // the kernel width k
}

/** Threads (t, c). x: a 2-D input whose row t starts at the view's first column. */
export function convSilu(this: KernelThis<HostConvConstants>, x: number[][], state: number[][], w: number[][], b: number[]) {
	const t = Math.floor(this.thread.x / this.constants.E);
	const c = this.thread.x - t * this.constants.E;
	let acc = b[c];
	for (let j = 0; j < this.constants.K; j++) {
		const s = t - (this.constants.K - 1) + j; // source time step
		if (s >= 0) {
			acc += w[c][j] * x[s][c];
		} else {
			acc += w[c][j] * state[c][this.constants.K - 1 + s];
		}
	}
	return acc / (1 + Math.exp(-acc));
}

// ---- blocked gpu.js kernel (src/model/resident.ts) --------------------------------------------------------------
// On the blocked layout (kernels/layout.ts), with u(τ) = the x half of xz (TB, 2E, 4) at position τ, and u(τ < 0)
// from the state:
//   x'[tb, e, j] = silu(b[e] + Σ_i w[e, i]·u(4tb + j − (k−1) + i))
//   the next state: the last k−1 inputs of [state | u(0) … u(T−1)]
// Both come from one pass, because every pass has a fixed cost however small: threads below TB·E compute x', the
// E·(k−1)/4 after them the next state, 4 values each, so the output is [x' (TB, E, 4) | next state (E, k−1)].

/** Threads (tb, e) over TB·E, then E·(k−1)/4 threads of the next state; T = positions in the chunk. */
export function convAndState(this: KernelThis<HostConvConstants>, xz: number[], state: number[], w: number[], b: number[], T: number) {
	const E = this.constants.E;
	const K = this.constants.K;
	const K1 = K - 1;
	const TB = Math.ceil(T / 4);
	if (this.thread.x >= TB * E) {
		const i0 = (this.thread.x - TB * E) * 4;
		let v0 = 0;
		let v1 = 0;
		let v2 = 0;
		let v3 = 0;
		for (let c = 0; c < 4; c++) {
			const e = Math.floor((i0 + c) / K1);
			const t = T - K1 + (i0 + c - e * K1);
			const tb = Math.floor(t / 4);
			const v = t >= 0 ? xz[(tb * 2 * E + e) * 4 + t - tb * 4] : state[e * K1 + K1 + t];
			if (c === 0) v0 = v;
			if (c === 1) v1 = v;
			if (c === 2) v2 = v;
			if (c === 3) v3 = v;
		}
		return [v0, v1, v2, v3];
	}
	const tb = Math.floor(this.thread.x / E);
	const e = this.thread.x - tb * E;
	let a0 = b[e];
	let a1 = b[e];
	let a2 = b[e];
	let a3 = b[e];
	for (let i = 0; i < K; i++) {
		const wi = w[e * K + i];
		const t0 = tb * 4 - K1 + i;
		const t1 = t0 + 1;
		const t2 = t0 + 2;
		const t3 = t0 + 3;
		const b0 = Math.floor(t0 / 4);
		const b1 = Math.floor(t1 / 4);
		const b2 = Math.floor(t2 / 4);
		const b3 = Math.floor(t3 / 4);
		const s = e * K1 + K1;
		a0 += wi * (t0 >= 0 ? xz[(b0 * 2 * E + e) * 4 + t0 - b0 * 4] : state[s + t0]);
		a1 += wi * (t1 >= 0 ? xz[(b1 * 2 * E + e) * 4 + t1 - b1 * 4] : state[s + t1]);
		a2 += wi * (t2 >= 0 ? xz[(b2 * 2 * E + e) * 4 + t2 - b2 * 4] : state[s + t2]);
		a3 += wi * (t3 >= 0 ? xz[(b3 * 2 * E + e) * 4 + t3 - b3 * 4] : state[s + t3]);
	}
	return [a0 / (1 + Math.exp(-a0)), a1 / (1 + Math.exp(-a1)), a2 / (1 + Math.exp(-a2)), a3 / (1 + Math.exp(-a3))];
}

// ---- decode from in_proj's group partial sums (src/model/resident/plans.ts groupedDecodePlan) -------------------
// The grouped decode plan leaves in_proj unreduced: pin holds SI slices of [dot, Σx, Σx², 0] per output (kernels/
// projection.ts matvecNormGroup), and the norm in front of in_proj is folded as matvecNormReduce folds it, with
// cc = [c1 (2E) | c2 (2E)]. convStep finishes that for the x half itself, so no reduction pass runs before it:
//   u[e] = rstd·(Σ_s dot[s, e] − μ·c1[e]) + c2[e],   x'[e] = silu(b[e] + Σ_{i<k−1} w[e, i]·state[e, i] + w[e, k−1]·u[e])
// and the next state is [state[e, 1..k−2], u[e]]. The output is convAndState's for T = 1: [x' (1, E, 4) | state].

interface StepConvConstants {
	E: number; // d_inner
	K: number; // the kernel width k
	D: number; // the normalised length (d_model)
	eps: number;
	layer: number; // 1 = LayerNorm
}

/** Threads e over E, then E·(k−1)/4 threads of the next state. SI: in_proj's partial-sum slices in pin. */
export function convStep(this: KernelThis<StepConvConstants>, pin: number[], cc: number[], state: number[], w: number[], b: number[], SI: number) {
	const E = this.constants.E;
	const K = this.constants.K;
	const K1 = K - 1;
	const D = this.constants.D;
	let sx = 0;
	let sq = 0;
	for (let s = 0; s < 65536; s++) {
		if (s >= SI) break;
		sx += pin[s * 2 * E * 4 + 1];
		sq += pin[s * 2 * E * 4 + 2];
	}
	const mean = this.constants.layer === 1 ? sx / D : 0;
	const rstd = 1 / Math.sqrt(Math.max(sq / D - mean * mean, 0) + this.constants.eps);
	if (this.thread.x >= E) {
		const i0 = (this.thread.x - E) * 4;
		let v0 = 0;
		let v1 = 0;
		let v2 = 0;
		let v3 = 0;
		for (let c = 0; c < 4; c++) {
			const e = Math.floor((i0 + c) / K1);
			const j = i0 + c - e * K1;
			let v = 0;
			if (j < K1 - 1) v = state[e * K1 + j + 1];
			else {
				let dot = 0;
				for (let s = 0; s < 65536; s++) {
					if (s >= SI) break;
					dot += pin[(s * 2 * E + e) * 4];
				}
				v = rstd * (dot - mean * cc[e]) + cc[2 * E + e];
			}
			if (c === 0) v0 = v;
			if (c === 1) v1 = v;
			if (c === 2) v2 = v;
			if (c === 3) v3 = v;
		}
		return [v0, v1, v2, v3];
	}
	const e = this.thread.x;
	let dot = 0;
	for (let s = 0; s < 65536; s++) {
		if (s >= SI) break;
		dot += pin[(s * 2 * E + e) * 4];
	}
	const u = rstd * (dot - mean * cc[e]) + cc[2 * E + e];
	let a = b[e] + w[e * K + K1] * u;
	for (let i = 0; i < K1; i++) a += w[e * K + i] * state[e * K1 + i];
	const g = a / (1 + Math.exp(-a));
	return [g, g, g, g];
}

// ---- rolling a verify pass back on the device (src/model/resident/records.ts) ----------------------------------
// A verify pass records every layer's xz (TB, 2E, 4) in per-layer slices of one buffer and leaves every layer's conv
// state before the pass in its work buffer (L, cStride). keep(J) needs each layer's conv state after the first J
// inputs: the last k−1 of [state | u(0) … u(J−1)], for all layers in one pass. Its reference is nextConvState.

interface KeepConvConstants {
	E: number; // d_inner
	K: number; // the kernel width k
	cStride: number; // floats between two layers' conv states (a multiple of 4)
	zStride: number; // floats between two layers' records of xz
}

/** Threads over L·cStride/4, 4 values each: every layer's conv state after J inputs, in the state's layout. */
export function convStateKeep(this: KernelThis<KeepConvConstants>, xz: number[], state: number[], J: number) {
	const E = this.constants.E;
	const K1 = this.constants.K - 1;
	const i0 = this.thread.x * 4;
	const l = Math.floor(i0 / this.constants.cStride); // a stride is a multiple of 4: the 4 values share a layer
	let v0 = 0;
	let v1 = 0;
	let v2 = 0;
	let v3 = 0;
	for (let q = 0; q < 4; q++) {
		const i = i0 + q - l * this.constants.cStride;
		let v = 0;
		if (i < E * K1) {
			const e = Math.floor(i / K1);
			const t = J - K1 + (i - e * K1); // the input's position; negative: still in the state before the pass
			const tb = Math.floor(t / 4);
			v = t >= 0 ? xz[l * this.constants.zStride + (tb * 2 * E + e) * 4 + t - tb * 4] : state[i0 + q + K1 - (i - e * K1) + t];
		}
		if (q === 0) v0 = v;
		if (q === 1) v1 = v;
		if (q === 2) v2 = v;
		if (q === 3) v3 = v;
	}
	return [v0, v1, v2, v3];
}
