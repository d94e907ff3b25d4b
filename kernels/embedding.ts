// The embedding on the blocked layout (kernels/layout.ts): the GPU-resident forward's first pass. The host forward
// reads embedding rows directly (src/model/weights.ts embeddingRow), which is also this kernel's reference.
import type { KernelThis } from './types.js';

/** Threads (tb, i): x[tb, i, j] = embedding[tokens[4tb + j], i]. tokens holds ids as floats, padded with 0. */
export function embedGather(this: KernelThis<{ D: number }>, tokens: number[], emb: number[]) {
	const D = this.constants.D;
	const tb = Math.floor(this.thread.x / D);
	const i = this.thread.x - tb * D;
	return [
		emb[tokens[tb * 4] * D + i],
		emb[tokens[tb * 4 + 1] * D + i],
		emb[tokens[tb * 4 + 2] * D + i],
		emb[tokens[tb * 4 + 3] * D + i],
	];
}

/** Decode in the row plan (src/model/resident/plans.ts), whose residual stream is plain: x[i] = embedding[tokens[0], i]. */
export function embedRow(this: KernelThis<{ D: number }>, tokens: number[], emb: number[]) {
	return emb[tokens[0] * this.constants.D + this.thread.x];
}
