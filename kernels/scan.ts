// The selective scan, one time step t of a chunk (sequential in time, parallel over channels):
//   h[c, n] ← exp(Δ[t, c]·A[c, n])·h[c, n] + Δ[t, c]·B[t, n]·x[t, c]
//   y[t, c] = (Σ_n h[c, n]·C[t, n] + D[c]·x[t, c]) · silu(z[t, c])
// gpu.js gives one output per thread, so a step is two kernels: scanState over the (E·N) state cells, then
// scanOutput over the E channels. The whole chunk's Δ, x, [dt_r|B|C] and xz are passed with the step index t,
// so nothing is sliced or copied per step. A = −exp(A_log) is computed once at load.
import type { KernelThis } from './types.js';

interface ScanConstants {
	E: number; // d_inner
	N: number; // d_state
	R: number; // dt_rank: B starts at column R of dbc, C at column R + N
}

/** out[c·N + n] = the new h[c, n]. */
export function scanState(
	this: KernelThis<ScanConstants>,
	delta: number[][], xs: number[][], dbc: number[][], A: number[][], h: number[][], t: number,
) {
	const c = Math.floor(this.thread.x / this.constants.N);
	const n = this.thread.x - c * this.constants.N;
	const dt = delta[t][c];
	return Math.exp(dt * A[c][n]) * h[c][n] + dt * dbc[t][this.constants.R + n] * xs[t][c];
}

/** out[c] = y[t, c] from the new state, with the skip connection D and the silu(z) gate fused in. */
export function scanOutput(
	this: KernelThis<ScanConstants>,
	h: number[][], xs: number[][], dbc: number[][], xz: number[][], D: number[], t: number,
) {
	const c = this.thread.x;
	let y = D[c] * xs[t][c];
	for (let n = 0; n < this.constants.N; n++) y += h[c][n] * dbc[t][this.constants.R + this.constants.N + n];
	const z = xz[t][this.constants.E + c];
	return y * (z / (1 + Math.exp(-z)));
}

/**
 * Reference: the whole chunk, sequential, float64 state. Updates h (E·N) in place and returns y (T, E).
 * dbc rows are [dt_r (R) | B (N) | C (N)]; xz rows are [x (E) | z (E)].
 */
export function scanReference(
	delta: Float32Array, xs: Float32Array, dbc: Float32Array, xz: Float32Array,
	A: Float32Array, D: Float32Array, h: Float32Array, T: number, E: number, N: number, R: number,
): Float32Array {
	const S = R + 2 * N;
	const y = new Float32Array(T * E);
	for (let t = 0; t < T; t++) {
		for (let c = 0; c < E; c++) {
			const dt = delta[t * E + c];
			const x = xs[t * E + c];
			let acc = D[c] * x;
			for (let n = 0; n < N; n++) {
				const hn = Math.exp(dt * A[c * N + n]) * h[c * N + n] + dt * dbc[t * S + R + n] * x;
				h[c * N + n] = hn;
				acc += hn * dbc[t * S + R + N + n];
			}
			const z = xz[t * 2 * E + E + c];
			y[t * E + c] = acc * (z / (1 + Math.exp(-z)));
		}
	}
	return y;
}
