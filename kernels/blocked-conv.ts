// The causal depthwise conv on the blocked layout (blocked-matmul.ts), reading positions before the chunk from
// the carried conv state (E, k−1), oldest first — the same state layout as conv.ts and MambaState.
//   convSiluBlocked  xs[tb, e, j] = silu(b[e] + Σ_i w[e, i] · u(4tb + j − (k−1) + i))
//   convNextState    the last k−1 inputs of [state | u(0) … u(T−1)]: the state after the chunk
// where u(τ) is the x half of xz at position τ, and u(τ < 0) comes from the state.
import type { KernelThis } from './types.js';

interface ConvConstants {
	E: number; // d_inner
	K: number; // d_conv
}

/** Threads (tb, e). */
export function convSiluBlocked(this: KernelThis<ConvConstants>, xz: number[], state: number[], w: number[], b: number[]) {
	const E = this.constants.E;
	const K = this.constants.K;
	const tb = Math.floor(this.thread.x / E);
	const e = this.thread.x - tb * E;
	let a0 = b[e];
	let a1 = b[e];
	let a2 = b[e];
	let a3 = b[e];
	for (let i = 0; i < K; i++) {
		const wi = w[e * K + i];
		const t0 = tb * 4 - (K - 1) + i;
		const t1 = t0 + 1;
		const t2 = t0 + 2;
		const t3 = t0 + 3;
		const b0 = Math.floor(t0 / 4);
		const b1 = Math.floor(t1 / 4);
		const b2 = Math.floor(t2 / 4);
		const b3 = Math.floor(t3 / 4);
		const s = e * (K - 1) + (K - 1);
		a0 += wi * (t0 >= 0 ? xz[(b0 * 2 * E + e) * 4 + t0 - b0 * 4] : state[s + t0]);
		a1 += wi * (t1 >= 0 ? xz[(b1 * 2 * E + e) * 4 + t1 - b1 * 4] : state[s + t1]);
		a2 += wi * (t2 >= 0 ? xz[(b2 * 2 * E + e) * 4 + t2 - b2 * 4] : state[s + t2]);
		a3 += wi * (t3 >= 0 ? xz[(b3 * 2 * E + e) * 4 + t3 - b3 * 4] : state[s + t3]);
	}
	return [a0 / (1 + Math.exp(-a0)), a1 / (1 + Math.exp(-a1)), a2 / (1 + Math.exp(-a2)), a3 / (1 + Math.exp(-a3))];
}

/** Threads (e, i) over E·(k−1); T = positions in the chunk. */
export function convNextState(this: KernelThis<ConvConstants>, xz: number[], state: number[], T: number) {
	const E = this.constants.E;
	const K1 = this.constants.K - 1;
	const e = Math.floor(this.thread.x / K1);
	const i = this.thread.x - e * K1;
	const t = T - K1 + i;
	const tb = Math.floor(t / 4);
	return t >= 0 ? xz[(tb * 2 * E + e) * 4 + t - tb * 4] : state[e * K1 + K1 + t];
}
