// Causal depthwise conv over time, kernel width k, with bias, then SiLU:
//   xc[t, c] = b[c] + Σ_j w[c, j] · x[t − (k−1) + j, c];   x = silu(xc)
// x is the first E columns of xz (T, 2E). Positions before the chunk come from the carried conv state
// (E, k−1): state[c, 0..k−2] holds x[−(k−1)..−1, c], oldest first — the same as the last k−1 columns of
// transformers' conv_states. Forgetting to carry it is the classic rollback bug, so it is explicit here.
import type { KernelThis } from './types.js';

interface ConvConstants {
	E: number; // d_inner
	K: number; // conv width k
}

export function convSilu(
	this: KernelThis<ConvConstants>, xz: number[][], state: number[][], w: number[][], b: number[],
) {
	const t = Math.floor(this.thread.x / this.constants.E);
	const c = this.thread.x - t * this.constants.E;
	let acc = b[c];
	for (let j = 0; j < this.constants.K; j++) {
		const s = t - (this.constants.K - 1) + j; // source time step
		if (s >= 0) {
			acc += w[c][j] * xz[s][c];
		} else {
			acc += w[c][j] * state[c][this.constants.K - 1 + s];
		}
	}
	return acc / (1 + Math.exp(-acc));
}

/** The conv state after a chunk: the last k−1 raw x values of [state | x[0..T−1]], per channel. */
export function nextConvState(state: Float32Array, xz: Float32Array, T: number, E: number, k: number): Float32Array {
	const m = k - 1;
	const next = new Float32Array(E * m);
	for (let c = 0; c < E; c++) {
		for (let j = 0; j < m; j++) {
			const s = T - m + j; // time index of the j-th kept value; negative = still in the old state
			next[c * m + j] = s >= 0 ? xz[s * 2 * E + c] : state[c * m + m + s];
		}
	}
	return next;
}

/** Reference: conv + silu in float64, from the raw definition. */
export function convReference(
	xz: Float32Array, T: number, E: number, k: number, state: Float32Array, w: Float32Array, b: Float32Array,
): Float32Array {
	const m = k - 1;
	const xAt = (s: number, c: number) => (s >= 0 ? xz[s * 2 * E + c] : state[c * m + m + s]);
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

export const silu = (v: number): number => v / (1 + Math.exp(-v));
