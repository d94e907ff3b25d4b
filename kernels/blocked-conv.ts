// The causal depthwise conv on the blocked layout (blocked-matmul.ts), reading positions before the chunk from
// the carried conv state (E, k−1), oldest first — the same state layout as conv.ts and MambaState.
//   xs[tb, e, j] = silu(b[e] + Σ_i w[e, i] · u(4tb + j − (k−1) + i))
//   the next state: the last k−1 inputs of [state | u(0) … u(T−1)]
// where u(τ) is the x half of xz at position τ, and u(τ < 0) comes from the state. Both come from one pass (a pass
// costs ~7 µs on the GPU however small): threads below TB·E compute xs, the E·(k−1)/4 after them the next state,
// 4 values each, so the output is [xs (TB, E, 4) | next state (E, k−1)].
import type { KernelThis } from './types.js';

interface ConvConstants {
	E: number; // d_inner
	K: number; // d_conv
}

/** Threads (tb, e) over TB·E, then E·(k−1)/4 threads of the next state; T = positions in the chunk. */
export function convAndState(this: KernelThis<ConvConstants>, xz: number[], state: number[], w: number[], b: number[], T: number) {
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
