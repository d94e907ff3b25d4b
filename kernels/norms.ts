// Norms over the last dimension of x (T, d):
//   RMSNorm    y = x · rsqrt(mean(x²) + eps) · w
//   LayerNorm  y = (x − mean(x)) · rsqrt(var(x) + eps) · w + b      (the published MambaByte checkpoints)
// Two kernels: normStats gives (mean, rstd) per row — 2·T outputs, so the O(d) reduction runs once per row,
// not once per element — and normApply scales every element.
import type { KernelThis } from './types.js';

interface NormConstants {
	D: number; // d
	eps: number;
	layer: number; // 1 = LayerNorm (subtract the mean), 0 = RMSNorm
}

/** out[2t] = mean of row t (0 for RMSNorm), out[2t+1] = rsqrt(var + eps) (RMSNorm: rsqrt(mean(x²) + eps)). */
export function normStats(this: KernelThis<NormConstants>, x: number[][]) {
	const t = Math.floor(this.thread.x / 2);
	const which = this.thread.x - t * 2;
	let mean = 0;
	if (this.constants.layer === 1) {
		let s = 0;
		for (let j = 0; j < this.constants.D; j++) s += x[t][j];
		mean = s / this.constants.D;
	}
	if (which === 0) return mean;
	let q = 0;
	for (let j = 0; j < this.constants.D; j++) {
		const v = x[t][j] - mean;
		q += v * v;
	}
	return 1 / Math.sqrt(q / this.constants.D + this.constants.eps);
}

/** y[t, j] = (x[t, j] − mean_t) · rstd_t · w[j] + b[j]   (b is zeros for RMSNorm). */
export function normApply(this: KernelThis<NormConstants>, x: number[][], stats: number[], w: number[], b: number[]) {
	const t = Math.floor(this.thread.x / this.constants.D);
	const j = this.thread.x - t * this.constants.D;
	return (x[t][j] - stats[2 * t]) * stats[2 * t + 1] * w[j] + b[j];
}

/** Reference in float64. */
export function normReference(
	x: Float32Array, T: number, d: number, w: Float32Array, b: Float32Array | undefined, eps: number,
): Float32Array {
	const y = new Float32Array(T * d);
	for (let t = 0; t < T; t++) {
		const row = x.subarray(t * d, (t + 1) * d);
		let mean = 0;
		if (b) {
			for (const v of row) mean += v;
			mean /= d;
		}
		let q = 0;
		for (const v of row) q += (v - mean) * (v - mean);
		const rstd = 1 / Math.sqrt(q / d + eps);
		for (let j = 0; j < d; j++) y[t * d + j] = (row[j] - mean) * rstd * w[j] + (b ? b[j] : 0);
	}
	return y;
}
