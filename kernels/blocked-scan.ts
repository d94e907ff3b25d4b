// The selective scan on the blocked layout (blocked-matmul.ts) in two parallel kernels, because a gpu.js
// thread writes one output (or one Array(4)) and so cannot walk a whole chunk writing every position:
//   scanStarts        H[b, e, n] = h after min(4b, T) steps from h0 — the state at the start of block b,
//                     and for b = TB the state after the chunk. Each thread replays the recurrence
//                       h ← exp(Δ·A[e, n])·h + Δ·B[t, n]·x[t, e]
//                     from the chunk start (O(T) per thread, in the same order as a sequential scan).
//   scanOutputBlocked y[tb, e, j] = (Σ_n C[t, n]·h_t[e, n] + D[e]·x[t, e])·silu(z[t, e]) for the 4 positions
//                     t = 4tb + j of a block, stepping from H[tb].
// Decode (one position) takes one pass, with dt_proj's split-K reduction and softplus folded in:
//   scanStep          h'[e, n] = exp(Δ·A)·h + Δ·B[n]·x[e],  Δ = softplus(Σ_s Pdt[s, e] + b_dt[e])
//                     y[e] = (Σ_n C[n]·h'[e, n] + D[e]·x[e])·silu(z[e])
// dbc rows are [dt_r (R) | B (N) | C (N)] (RC = R + 2N columns), xz rows [x (E) | z (E)], both blocked.
import type { KernelThis } from './types.js';

interface ScanConstants {
	E: number; // d_inner
	N: number; // d_state
	R: number; // dt_rank
	TMAX: number; // the longest chunk, a loop bound
}

/** Threads (b, e, n) over (TB + 1)·E·N. T = positions in the chunk. */
export function scanStarts(
	this: KernelThis<ScanConstants>,
	delta: number[], xs: number[], dbc: number[], A: number[], h0: number[], T: number,
) {
	const E = this.constants.E;
	const N = this.constants.N;
	const RC = this.constants.R + 2 * N;
	const b = Math.floor(this.thread.x / (E * N));
	const c = this.thread.x - b * E * N;
	const e = Math.floor(c / N);
	const n = c - e * N;
	const a = A[c];
	const steps = Math.min(b * 4, T);
	let h = h0[c];
	for (let t = 0; t < this.constants.TMAX; t++) {
		if (t >= steps) break;
		const tb = Math.floor(t / 4);
		const j = t - tb * 4;
		const xi = (tb * E + e) * 4 + j;
		const dt = delta[xi];
		h = Math.exp(dt * a) * h + dt * dbc[(tb * RC + this.constants.R + n) * 4 + j] * xs[xi];
	}
	return h;
}

/** Threads (tb, e). */
export function scanOutputBlocked(
	this: KernelThis<ScanConstants>,
	H: number[], delta: number[], xs: number[], dbc: number[], xz: number[], A: number[], D: number[],
) {
	const E = this.constants.E;
	const N = this.constants.N;
	const R = this.constants.R;
	const RC = R + 2 * N;
	const tb = Math.floor(this.thread.x / E);
	const e = this.thread.x - tb * E;
	const xi = this.thread.x * 4;
	const d0 = delta[xi];
	const d1 = delta[xi + 1];
	const d2 = delta[xi + 2];
	const d3 = delta[xi + 3];
	const x0 = xs[xi];
	const x1 = xs[xi + 1];
	const x2 = xs[xi + 2];
	const x3 = xs[xi + 3];
	let y0 = 0;
	let y1 = 0;
	let y2 = 0;
	let y3 = 0;
	for (let n = 0; n < N; n++) {
		const a = A[e * N + n];
		const bi = (tb * RC + R + n) * 4;
		const ci = (tb * RC + R + N + n) * 4;
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
	const zi = (tb * 2 * E + E + e) * 4;
	const z0 = xz[zi];
	const z1 = xz[zi + 1];
	const z2 = xz[zi + 2];
	const z3 = xz[zi + 3];
	return [
		(y0 + D[e] * x0) * (z0 / (1 + Math.exp(-z0))),
		(y1 + D[e] * x1) * (z1 / (1 + Math.exp(-z1))),
		(y2 + D[e] * x2) * (z2 / (1 + Math.exp(-z2))),
		(y3 + D[e] * x3) * (z3 / (1 + Math.exp(-z3))),
	];
}

/**
 * Threads e over E, then E·N/4 threads of 4 state cells each (N % 4 = 0): y[e] to all 4 lanes, then the new state
 * h' (E, N), so the output is [y (1, E, 4) | h' (E, N)]. Both halves step from h0 independently, which is what
 * lets them share a pass. DS = dt_proj's slices. p = [A (E, N) | D (E) | b_dt (E)]: one buffer, because a WebGPU
 * kernel may bind only 8 storage buffers.
 */
export function scanStep(
	this: KernelThis<ScanConstants>, pdt: number[], xs: number[], dbc: number[], xz: number[], p: number[], h0: number[], DS: number,
) {
	const E = this.constants.E;
	const N = this.constants.N;
	const R = this.constants.R;
	const cell = (this.thread.x - E) * 4;
	const e = this.thread.x < E ? this.thread.x : Math.floor(cell / N);
	let v = p[E * N + E + e];
	for (let s = 0; s < 65536; s++) {
		if (s >= DS) break;
		v += pdt[s * E + e];
	}
	const dt = v > 20 ? v : Math.log(1 + Math.exp(v));
	const x = xs[e * 4];
	if (this.thread.x >= E) {
		const n = cell - e * N;
		return [
			Math.exp(dt * p[cell]) * h0[cell] + dt * dbc[(R + n) * 4] * x,
			Math.exp(dt * p[cell + 1]) * h0[cell + 1] + dt * dbc[(R + n + 1) * 4] * x,
			Math.exp(dt * p[cell + 2]) * h0[cell + 2] + dt * dbc[(R + n + 2) * 4] * x,
			Math.exp(dt * p[cell + 3]) * h0[cell + 3] + dt * dbc[(R + n + 3) * 4] * x,
		];
	}
	let y = p[E * N + e] * x;
	for (let n = 0; n < N; n++) {
		const h = Math.exp(dt * p[e * N + n]) * h0[e * N + n] + dt * dbc[(R + n) * 4] * x;
		y += h * dbc[(R + N + n) * 4];
	}
	const z = xz[(E + e) * 4];
	const g = y * (z / (1 + Math.exp(-z)));
	return [g, g, g, g];
}
