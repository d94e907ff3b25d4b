// The selective scan (docs/model.md), per time step t, channel c and state index n:
//   dA[c, n]  = exp(Δ[t, c]·A[c, n])                       the discretised A (zero-order hold)
//   dBx[c, n] = Δ[t, c]·B[t, n]·x[t, c]                     the discretised B, times the input
//   h[c, n]   ← dA[c, n]·h[c, n] + dBx[c, n]
//   y[t, c]   = (Σ_n h[c, n]·C[t, n] + D[c]·x[t, c])·silu(z[t, c])
// A = −exp(A_log) is computed once at load. The forms, each checked against scanReference:
//   scanReference                    plain loops, one statement per equation (the host forward's reference backend)
//   scanState, scanOutput            gpu.js kernels for the host forward: one step is two kernels, because a gpu.js
//                                    thread writes one output — over the E·N state cells, then over the E channels
//   scanStarts, scanOutputBlocked,   gpu.js kernels on the blocked layout (kernels/layout.ts) for the GPU-resident
//   scanStep                         forward; see their comments
//   scanKeep                         the GPU-resident forward's rollback after a verify pass: h after j recorded steps
import type { KernelThis } from './types.js';
import { at, rowOf, type Columns } from './layout.js';
import { silu } from './conv.js';

/** What a scan reads and writes. */
export interface ScanArgs {
	delta: Float32Array; // Δ (T, E) = softplus(dt_proj(dt_r))
	x: Float32Array; // (T, E) the conv's output
	B: Columns; // (T, N) a view of x_proj's output
	C: Columns; // (T, N) a view of x_proj's output
	z: Columns; // (T, E) the gate, a view of in_proj's output
	A: Float32Array; // (E, N) = −exp(A_log)
	D: Float32Array; // (E) the skip
	h: Float32Array; // (E, N) the state: read, then updated in place
}

export interface ScanDims {
	T: number; // steps
	E: number; // d_inner
	N: number; // d_state
}

// ---- reference ------------------------------------------------------------------------------------------------

/** The scan over T steps from h (updated in place), returning y (T, E). dA, dBx and y in float64; h stays float32. */
export function scanReference({ delta, x, B, C, z, A, D, h }: ScanArgs, { T, E, N }: ScanDims): Float32Array {
	const y = new Float32Array(T * E);
	const dA = new Float64Array(E * N);
	const dBx = new Float64Array(E * N);
	for (let t = 0; t < T; t++) {
		const Bt = rowOf(B, t, N); // (N)
		const Ct = rowOf(C, t, N); // (N)
		// dA = torch.exp(delta[t].unsqueeze(-1) * A)                        # (E, N)
		for (let c = 0; c < E; c++) for (let n = 0; n < N; n++) dA[c * N + n] = Math.exp(delta[t * E + c] * A[c * N + n]);
		// dBx = delta[t].unsqueeze(-1) * B[t] * x[t].unsqueeze(-1)           # (E, N)
		for (let c = 0; c < E; c++) for (let n = 0; n < N; n++) dBx[c * N + n] = delta[t * E + c] * Bt[n] * x[t * E + c];
		// h = dA * h + dBx                                                  # (E, N)
		for (let i = 0; i < E * N; i++) h[i] = dA[i] * h[i] + dBx[i];
		// y[t] = (h @ C[t] + D * x[t]) * silu(z[t])                         # (E)
		for (let c = 0; c < E; c++) {
			let yc = D[c] * x[t * E + c];
			for (let n = 0; n < N; n++) yc += h[c * N + n] * Ct[n];
			y[t * E + c] = yc * silu(at(z, t, c));
		}
	}
	return y;
}

// ---- host gpu.js kernels (src/backend/gpujs.ts) -----------------------------------------------------------------
// The whole chunk's Δ, x, B, C and z are passed with the step index t, so nothing is sliced or copied per step.
// B, C and z are 2-D inputs whose row t starts at the part's first column (src/backend/gpujs.ts binds the views).

interface HostScanConstants {
	E: number; // d_inner
	N: number; // d_state
}

/** Threads c·N + n: the new h[c, n]. */
export function scanState(
	this: KernelThis<HostScanConstants>, delta: number[][], x: number[][], B: number[][], A: number[][], h: number[][], t: number,
) {
	const c = Math.floor(this.thread.x / this.constants.N);
	const n = this.thread.x - c * this.constants.N;
	const dt = delta[t][c];
	return Math.exp(dt * A[c][n]) * h[c][n] + dt * B[t][n] * x[t][c];
}

/** Threads c: y[t, c] from the new state, with the skip D and the silu(z) gate fused in. */
export function scanOutput(
	this: KernelThis<HostScanConstants>, h: number[][], x: number[][], C: number[][], z: number[][], D: number[], t: number,
) {
	const c = this.thread.x;
	let y = D[c] * x[t][c];
	for (let n = 0; n < this.constants.N; n++) y += h[c][n] * C[t][n];
	const g = z[t][c];
	return y * (g / (1 + Math.exp(-g)));
}

// ---- blocked gpu.js kernels (src/model/resident.ts) ------------------------------------------------------------
// A gpu.js thread writes one output (or one Array(4)), so it cannot walk a chunk writing every position; a chunk
// is two parallel kernels:
//   scanStarts        H[b, e, n] = h after min(4b, T) steps from h0: the state at the start of block b, and for
//                     b = TB the state after the chunk. Each thread replays the recurrence from the chunk start
//                     (O(T) per thread, in the same order as a sequential scan).
//   scanOutputBlocked y[tb, e, j] for the 4 positions t = 4tb + j of a block, stepping from H[tb].
// Decode (one position) takes one pass, with dt_proj's split-K reduction and softplus folded in:
//   scanStep          Δ = softplus(Σ_s Pdt[s, e] + b_dt[e]), then h' and y as above.
// dbc is x_proj's blocked output (TB, RC, 4) with B at column Bc and C at column Cc (dbcColumns); xz is in_proj's
// (TB, 2E, 4), z its columns E..2E−1.

interface BlockedScanConstants {
	E: number; // d_inner
	N: number; // d_state
	RC: number; // columns of dbc
	Bc: number; // B's first column in dbc
	Cc: number; // C's first column in dbc
	TMAX: number; // the longest chunk, a loop bound
}

/** Threads (b, e, n) over (TB + 1)·E·N. T = positions in the chunk; p = [A (E, N) | …] as scanStep's. */
export function scanStarts(
	this: KernelThis<BlockedScanConstants>, delta: number[], x: number[], dbc: number[], p: number[], h0: number[], T: number,
) {
	const E = this.constants.E;
	const N = this.constants.N;
	const RC = this.constants.RC;
	const b = Math.floor(this.thread.x / (E * N));
	const c = this.thread.x - b * E * N;
	const e = Math.floor(c / N);
	const n = c - e * N;
	const a = p[c];
	const steps = Math.min(b * 4, T);
	let h = h0[c];
	for (let t = 0; t < this.constants.TMAX; t++) {
		if (t >= steps) break;
		const tb = Math.floor(t / 4);
		const j = t - tb * 4;
		const xi = (tb * E + e) * 4 + j;
		const dt = delta[xi];
		h = Math.exp(dt * a) * h + dt * dbc[(tb * RC + this.constants.Bc + n) * 4 + j] * x[xi];
	}
	return h;
}

// scanStarts replays up to T steps in each of its (TB + 1)·E·N threads, T²/8 steps a channel: cheap for a verify
// pass, 37 ms of a 256-byte chunk of the 972M shape. Long chunks instead run each block's recurrence alone, combine
// the blocks 8 at a time, and carry the state across groups and then across the blocks of one group: h after
// block j is decay_j·h + end_j (the recurrence is affine in h), at most TB/8 + 7 multiply-adds a thread and no
// exponentials beyond the T of the chunk itself.

/** Blocks a group of scanGroups combines: the 8 its kernels and scanCarry's are written with. */
export const CARRY_GROUP = 8;

/** Threads (b, e, n) over TB·E·N: block b's recurrence from h = 0, [h at its end, Π exp(Δ·A) over its steps]. */
export function scanBlocks(this: KernelThis<BlockedScanConstants>, delta: number[], x: number[], dbc: number[], p: number[], T: number) {
	const E = this.constants.E;
	const N = this.constants.N;
	const RC = this.constants.RC;
	const b = Math.floor(this.thread.x / (E * N));
	const c = this.thread.x - b * E * N;
	const e = Math.floor(c / N);
	const n = c - e * N;
	const a = p[c];
	let h = 0;
	let decay = 1;
	for (let j = 0; j < 4; j++) {
		if (b * 4 + j >= T) break;
		const xi = (b * E + e) * 4 + j;
		const dt = delta[xi];
		const dA = Math.exp(dt * a);
		h = dA * h + dt * dbc[(b * RC + this.constants.Bc + n) * 4 + j] * x[xi];
		decay = decay * dA;
	}
	return [h, decay];
}

/** Threads (g, e, n) over ⌈TB/8⌉·E·N: blocks 8g … 8g + 7 of scanBlocks' [end, decay] combined into the group's. */
export function scanGroups(this: KernelThis<BlockedScanConstants>, blocks: number[], TB: number) {
	const EN = this.constants.E * this.constants.N;
	const g = Math.floor(this.thread.x / EN);
	const c = this.thread.x - g * EN;
	let h = 0;
	let decay = 1;
	for (let i = 0; i < 8; i++) {
		const j = g * 8 + i;
		if (j >= TB) break;
		const bi = (j * EN + c) * 2;
		h = blocks[bi + 1] * h + blocks[bi];
		decay = decay * blocks[bi + 1];
	}
	return [h, decay];
}

/**
 * Threads (b, e, n) over (TB + 1)·E·N: h at the start of block b (row TB: after the chunk), from h0 carried across
 * the groups before b's (scanGroups) and then across the blocks of its group before b (scanBlocks).
 */
export function scanCarry(this: KernelThis<BlockedScanConstants>, blocks: number[], groups: number[], h0: number[]) {
	const EN = this.constants.E * this.constants.N;
	const b = Math.floor(this.thread.x / EN);
	const c = this.thread.x - b * EN;
	const g = Math.floor(b / 8);
	let h = h0[c];
	for (let i = 0; i < this.constants.TMAX; i++) {
		if (i >= g) break;
		const gi = (i * EN + c) * 2;
		h = groups[gi + 1] * h + groups[gi];
	}
	for (let i = 0; i < 8; i++) {
		const j = g * 8 + i;
		if (j >= b) break;
		const bi = (j * EN + c) * 2;
		h = blocks[bi + 1] * h + blocks[bi];
	}
	return h;
}

/** Threads (tb, e). p = [A (E, N) | D (E) | …] as scanStep's. */
export function scanOutputBlocked(
	this: KernelThis<BlockedScanConstants>, H: number[], delta: number[], x: number[], dbc: number[], xz: number[], p: number[],
) {
	const E = this.constants.E;
	const N = this.constants.N;
	const RC = this.constants.RC;
	const tb = Math.floor(this.thread.x / E);
	const e = this.thread.x - tb * E;
	const xi = this.thread.x * 4;
	const d0 = delta[xi];
	const d1 = delta[xi + 1];
	const d2 = delta[xi + 2];
	const d3 = delta[xi + 3];
	const x0 = x[xi];
	const x1 = x[xi + 1];
	const x2 = x[xi + 2];
	const x3 = x[xi + 3];
	let y0 = 0;
	let y1 = 0;
	let y2 = 0;
	let y3 = 0;
	for (let n = 0; n < N; n++) {
		const a = p[e * N + n];
		const bi = (tb * RC + this.constants.Bc + n) * 4;
		const ci = (tb * RC + this.constants.Cc + n) * 4;
		let h = H[(tb * E + e) * N + n];
		h = Math.exp(d0 * a) * h + d0 * dbc[bi] * x0;
		y0 += h * dbc[ci];
		h = Math.exp(d1 * a) * h + d1 * dbc[bi + 1] * x1;
		y1 += h * dbc[ci + 1];
		h = Math.exp(d2 * a) * h + d2 * dbc[bi + 2] * x2;
		y2 += h * dbc[ci + 2];
		h = Math.exp(d3 * a) * h + d3 * dbc[bi + 3] * x3;
		y3 += h * dbc[ci + 3];
	}
	const D = p[E * N + e];
	const zi = (tb * 2 * E + E + e) * 4;
	const z0 = xz[zi];
	const z1 = xz[zi + 1];
	const z2 = xz[zi + 2];
	const z3 = xz[zi + 3];
	return [
		(y0 + D * x0) * (z0 / (1 + Math.exp(-z0))),
		(y1 + D * x1) * (z1 / (1 + Math.exp(-z1))),
		(y2 + D * x2) * (z2 / (1 + Math.exp(-z2))),
		(y3 + D * x3) * (z3 / (1 + Math.exp(-z3))),
	];
}

/**
 * Threads e over E, then E·N/4 threads of 4 state cells each (N % 4 = 0): y[e] to all 4 lanes, then the new state
 * h' (E, N), so the output is [y (1, E, 4) | h' (E, N)]. Both halves step from h0 independently, which is what
 * lets them share a pass. DS = dt_proj's split-K slices. p = [A (E, N) | D (E) | b_dt (E)] (8 storage buffers).
 */
export function scanStep(
	this: KernelThis<BlockedScanConstants>, pdt: number[], x: number[], dbc: number[], xz: number[], p: number[], h0: number[], DS: number,
) {
	const E = this.constants.E;
	const N = this.constants.N;
	const Bc = this.constants.Bc;
	const cell = (this.thread.x - E) * 4;
	const e = this.thread.x < E ? this.thread.x : Math.floor(cell / N);
	let v = p[E * N + E + e];
	for (let s = 0; s < 65536; s++) {
		if (s >= DS) break;
		v += pdt[s * E + e];
	}
	const dt = v > 20 ? v : Math.log(1 + Math.exp(v));
	const xe = x[e * 4];
	if (this.thread.x >= E) {
		const n = cell - e * N;
		return [
			Math.exp(dt * p[cell]) * h0[cell] + dt * dbc[(Bc + n) * 4] * xe,
			Math.exp(dt * p[cell + 1]) * h0[cell + 1] + dt * dbc[(Bc + n + 1) * 4] * xe,
			Math.exp(dt * p[cell + 2]) * h0[cell + 2] + dt * dbc[(Bc + n + 2) * 4] * xe,
			Math.exp(dt * p[cell + 3]) * h0[cell + 3] + dt * dbc[(Bc + n + 3) * 4] * xe,
		];
	}
	let y = p[E * N + e] * xe;
	for (let n = 0; n < N; n++) {
		const h = Math.exp(dt * p[e * N + n]) * h0[e * N + n] + dt * dbc[(Bc + n) * 4] * xe;
		y += h * dbc[(this.constants.Cc + n) * 4];
	}
	const z = xz[(E + e) * 4];
	const g = y * (z / (1 + Math.exp(-z)));
	return [g, g, g, g];
}

interface FusedStepConstants extends BlockedScanConstants {
	D: number; // d_model, the length in_proj's folded norm normalises
	eps: number;
	layer: number; // 1 = LayerNorm
}

/**
 * scanStep reading what the decode plan leaves unreduced (group partial sums, kernels/projection.ts): B and C are
 * Σ_{s<SX} px[s·RC + ·] (x_proj's SX slices), z is in_proj's x half's twin in pin (SI slices of [dot, Σx, Σx², 0],
 * the norm folded with cc = [c1 (2E) | c2 (2E)], as convStep), Δ's pre-activation Σ_{s<DS} pdt[s·E + e] + b_dt.
 * Output as scanStep's: [y (1, E, 4) | h' (E, N)].
 */
export function scanStepFused(
	this: KernelThis<FusedStepConstants>, pdt: number[], x: number[], px: number[], pin: number[], cc: number[], p: number[], h0: number[],
	DS: number, SX: number, SI: number,
) {
	const E = this.constants.E;
	const N = this.constants.N;
	const RC = this.constants.RC;
	const Bc = this.constants.Bc;
	const Cc = this.constants.Cc;
	const cell = (this.thread.x - E) * 4;
	const e = this.thread.x < E ? this.thread.x : Math.floor(cell / N);
	let v = p[E * N + E + e];
	for (let s = 0; s < 65536; s++) {
		if (s >= DS) break;
		v += pdt[s * E + e];
	}
	const dt = v > 20 ? v : Math.log(1 + Math.exp(v));
	const xe = x[e * 4];
	if (this.thread.x >= E) {
		const n = cell - e * N;
		let b0 = 0;
		let b1 = 0;
		let b2 = 0;
		let b3 = 0;
		for (let s = 0; s < 65536; s++) {
			if (s >= SX) break;
			const q = s * RC + Bc + n;
			b0 += px[q];
			b1 += px[q + 1];
			b2 += px[q + 2];
			b3 += px[q + 3];
		}
		return [
			Math.exp(dt * p[cell]) * h0[cell] + dt * b0 * xe,
			Math.exp(dt * p[cell + 1]) * h0[cell + 1] + dt * b1 * xe,
			Math.exp(dt * p[cell + 2]) * h0[cell + 2] + dt * b2 * xe,
			Math.exp(dt * p[cell + 3]) * h0[cell + 3] + dt * b3 * xe,
		];
	}
	let y = p[E * N + e] * xe;
	for (let n = 0; n < N; n++) {
		let bn = 0;
		let cn = 0;
		for (let s = 0; s < 65536; s++) {
			if (s >= SX) break;
			bn += px[s * RC + Bc + n];
			cn += px[s * RC + Cc + n];
		}
		const h = Math.exp(dt * p[e * N + n]) * h0[e * N + n] + dt * bn * xe;
		y += h * cn;
	}
	let dot = 0;
	let sx = 0;
	let sq = 0;
	for (let s = 0; s < 65536; s++) {
		if (s >= SI) break;
		dot += pin[(s * 2 * E + E + e) * 4];
		sx += pin[s * 2 * E * 4 + 1];
		sq += pin[s * 2 * E * 4 + 2];
	}
	const D = this.constants.D;
	const mean = this.constants.layer === 1 ? sx / D : 0;
	const rstd = 1 / Math.sqrt(Math.max(sq / D - mean * mean, 0) + this.constants.eps);
	const z = rstd * (dot - mean * cc[E + e]) + cc[3 * E + e];
	const g = y * (z / (1 + Math.exp(-z)));
	return [g, g, g, g];
}

// ---- rolling a verify pass back on the device (src/model/resident/records.ts) ----------------------------------
// A verify pass of the GPU-resident forward records, per layer, Δ, x and dbc of every position in per-layer slices
// of three buffers, and leaves every layer's h before the pass in its work buffer h0 (L, hStride). keep(J) needs h
// after the first J positions of every layer: one pass over all layers replays the recurrence for J steps from h0,
// exactly as scanStarts does (same order, same operations). Its reference is scanReference over those J steps.

interface KeepScanConstants {
	E: number; // d_inner
	N: number; // d_state
	RC: number; // columns of dbc
	Bc: number; // B's first column in dbc
	hStride: number; // floats between two layers' h in h0 and in the output (a multiple of 4)
	xStride: number; // … between two layers' records of x
	dStride: number; // … of Δ
	bStride: number; // … of dbc
	pStride: number; // … of the scan parameters p = [A (E, N) | D (E) | b_dt (E)]
	TMAX: number; // the most positions a verify pass records, a loop bound
}

/**
 * Threads over L·hStride/4, 4 state cells each: h of every layer after the first J recorded positions, in h0's
 * layout (L, hStride); the cells past E·N in each layer's stride are 0. delta and x are blocked (TB, E, 4) and
 * dbc (TB, RC, 4) per layer.
 */
export function scanKeep(
	this: KernelThis<KeepScanConstants>, delta: number[], x: number[], dbc: number[], p: number[], h0: number[], J: number,
) {
	const E = this.constants.E;
	const N = this.constants.N;
	const RC = this.constants.RC;
	const i0 = this.thread.x * 4;
	const l = Math.floor(i0 / this.constants.hStride); // a stride is a multiple of 4: the 4 cells share a layer
	const xo = l * this.constants.xStride;
	const dO = l * this.constants.dStride;
	const bo = l * this.constants.bStride + this.constants.Bc * 4;
	let v0 = 0;
	let v1 = 0;
	let v2 = 0;
	let v3 = 0;
	for (let q = 0; q < 4; q++) {
		const cell = i0 + q - l * this.constants.hStride;
		let h = 0;
		if (cell < E * N) {
			const e = Math.floor(cell / N);
			const n = cell - e * N;
			const a = p[l * this.constants.pStride + cell];
			h = h0[i0 + q];
			for (let t = 0; t < this.constants.TMAX; t++) {
				if (t >= J) break;
				const tb = Math.floor(t / 4);
				const j = t - tb * 4;
				const xi = (tb * E + e) * 4 + j;
				const dt = delta[dO + xi];
				h = Math.exp(dt * a) * h + dt * dbc[bo + (tb * RC + n) * 4 + j] * x[xo + xi];
			}
		}
		if (q === 0) v0 = h;
		if (q === 1) v1 = h;
		if (q === 2) v2 = h;
		if (q === 3) v3 = h;
	}
	return [v0, v1, v2, v3];
}
