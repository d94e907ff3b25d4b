// Norms on the blocked layout (blocked-matmul.ts): RMSNorm, or LayerNorm for the mamba_ssm checkpoints.
//   normStatsBlocked  stats[tb, 0, 0..3] = the means (0 for RMSNorm), stats[tb, 1, 0..3] = rsqrt(var + eps)
//   normApplyBlocked  u[tb, i, j] = (x[tb, i, j] − mean_j) · rstd_j · w[i] + b[i]
import type { KernelThis } from './types.js';

interface NormConstants {
	D: number; // d
	eps: number;
	layer: number; // 1 = LayerNorm (subtract the mean), 0 = RMSNorm
}

/** Threads (tb, which): which = 0 the 4 means, 1 the 4 reciprocal standard deviations. */
export function normStatsBlocked(this: KernelThis<NormConstants>, x: number[]) {
	const D = this.constants.D;
	const tb = Math.floor(this.thread.x / 2);
	const which = this.thread.x - tb * 2;
	let m0 = 0;
	let m1 = 0;
	let m2 = 0;
	let m3 = 0;
	if (this.constants.layer === 1) {
		for (let i = 0; i < D; i++) {
			const xi = (tb * D + i) * 4;
			m0 += x[xi];
			m1 += x[xi + 1];
			m2 += x[xi + 2];
			m3 += x[xi + 3];
		}
		m0 = m0 / D;
		m1 = m1 / D;
		m2 = m2 / D;
		m3 = m3 / D;
	}
	if (which === 0) return [m0, m1, m2, m3];
	let q0 = 0;
	let q1 = 0;
	let q2 = 0;
	let q3 = 0;
	for (let i = 0; i < D; i++) {
		const xi = (tb * D + i) * 4;
		const v0 = x[xi] - m0;
		const v1 = x[xi + 1] - m1;
		const v2 = x[xi + 2] - m2;
		const v3 = x[xi + 3] - m3;
		q0 += v0 * v0;
		q1 += v1 * v1;
		q2 += v2 * v2;
		q3 += v3 * v3;
	}
	const e = this.constants.eps;
	return [1 / Math.sqrt(q0 / D + e), 1 / Math.sqrt(q1 / D + e), 1 / Math.sqrt(q2 / D + e), 1 / Math.sqrt(q3 / D + e)];
}

/** Threads (tb, i). b is zeros for RMSNorm. */
export function normApplyBlocked(this: KernelThis<NormConstants>, x: number[], stats: number[], w: number[], b: number[]) {
	const D = this.constants.D;
	const q = this.thread.x;
	const tb = Math.floor(q / D);
	const i = q - tb * D;
	const xi = q * 4;
	const si = tb * 8;
	return [
		(x[xi] - stats[si]) * stats[si + 4] * w[i] + b[i],
		(x[xi + 1] - stats[si + 1]) * stats[si + 5] * w[i] + b[i],
		(x[xi + 2] - stats[si + 2]) * stats[si + 6] * w[i] + b[i],
		(x[xi + 3] - stats[si + 3]) * stats[si + 7] * w[i] + b[i],
	];
}
