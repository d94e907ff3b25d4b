// Norms over the last dimension of x (T, d) (docs/model.md):
//   RMSNorm    y = x·rsqrt(mean(x²) + eps)·w
//   LayerNorm  y = (x − mean(x))·rsqrt(var(x) + eps)·w + b      (the published MambaByte checkpoints)
// Three forms, each checked against normReference:
//   normReference                        plain loops
//   normStats, normApply                 gpu.js kernels for the host forward: (mean, rstd) per row — 2·T outputs,
//                                        so the O(d) reduction runs once per row, not once per element — then scale
//   normSlices, normCombine,             gpu.js kernels on the blocked layout (the GPU-resident forward, which
//   normApplyBlocked                     folds w and b into the next projection: kernels/projection.ts)
import type { KernelThis } from './types.js';

/** What a norm reads. */
export interface NormArgs {
	x: Float32Array; // (T, d)
	w: Float32Array; // (d)
	b?: Float32Array; // (d): LayerNorm; undefined: RMSNorm
}

export interface NormDims {
	T: number; // rows
	d: number; // the normalised length
	eps: number;
}

// ---- reference ------------------------------------------------------------------------------------------------

/** y (T, d), in float64. */
export function normReference({ x, w, b }: NormArgs, { T, d, eps }: NormDims): Float32Array {
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

// ---- host gpu.js kernels (src/backend/gpujs.ts) -----------------------------------------------------------------

interface HostNormConstants {
	D: number; // d
	eps: number;
	layer: number; // 1 = LayerNorm (subtract the mean), 0 = RMSNorm
}

/** out[2t] = mean of row t (0 for RMSNorm), out[2t+1] = rsqrt(var + eps) (RMSNorm: rsqrt(mean(x²) + eps)). */
export function normStats(this: KernelThis<HostNormConstants>, x: number[][]) {
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

/** y[t, j] = (x[t, j] − mean_t)·rstd_t·w[j] + b[j]   (b is zeros for RMSNorm). */
export function normApply(this: KernelThis<HostNormConstants>, x: number[][], stats: number[], w: number[], b: number[]) {
	const t = Math.floor(this.thread.x / this.constants.D);
	const j = this.thread.x - t * this.constants.D;
	return (x[t][j] - stats[2 * t]) * stats[2 * t + 1] * w[j] + b[j];
}

// ---- blocked gpu.js kernels (src/model/resident.ts) ------------------------------------------------------------
//   normSlices        per slice of a row: Σx and Σ(x − slice mean)², in parallel over (block, slice)
//   normCombine       stats[tb, 0, 0..3] = the means (0 for RMSNorm), stats[tb, 1, 0..3] = rsqrt(var + eps)
//   normApplyBlocked  u[tb, i, j] = (x[tb, i, j] − mean_j)·rstd_j·w[i] + b[i]

interface BlockedNormConstants extends HostNormConstants {
	S: number; // slices of a row (S divides d)
}

/**
 * One thread per row is latency-bound on a GPU, so the row is cut in S slices: threads (tb, s, which) over
 * TB·S·2; which = 0 the slice sums Σx, which = 1 the slice's Σ(x − slice mean)², 4 lanes each.
 */
export function normSlices(this: KernelThis<BlockedNormConstants>, x: number[]) {
	const D = this.constants.D;
	const L = D / this.constants.S;
	const q = Math.floor(this.thread.x / 2);
	const which = this.thread.x - q * 2;
	const tb = Math.floor(q / this.constants.S);
	const s = q - tb * this.constants.S;
	let m0 = 0;
	let m1 = 0;
	let m2 = 0;
	let m3 = 0;
	for (let i = 0; i < D; i++) {
		if (i >= L) break;
		const xi = (tb * D + s * L + i) * 4;
		m0 += x[xi];
		m1 += x[xi + 1];
		m2 += x[xi + 2];
		m3 += x[xi + 3];
	}
	if (which === 0) return [m0, m1, m2, m3];
	m0 = m0 / L;
	m1 = m1 / L;
	m2 = m2 / L;
	m3 = m3 / L;
	let q0 = 0;
	let q1 = 0;
	let q2 = 0;
	let q3 = 0;
	for (let i = 0; i < D; i++) {
		if (i >= L) break;
		const xi = (tb * D + s * L + i) * 4;
		const v0 = x[xi] - m0;
		const v1 = x[xi + 1] - m1;
		const v2 = x[xi + 2] - m2;
		const v3 = x[xi + 3] - m3;
		q0 += v0 * v0;
		q1 += v1 * v1;
		q2 += v2 * v2;
		q3 += v3 * v3;
	}
	return [q0, q1, q2, q3];
}

/**
 * Threads (tb, which) as normSlices, combining the slices (Chan et al.): the row's Σ(x − μ)² is
 * Σ_s [M2_s + L·(m_s − μ)²], with μ = 0 for RMSNorm (which makes it Σx²).
 */
export function normCombine(this: KernelThis<BlockedNormConstants>, p: number[]) {
	const D = this.constants.D;
	const S = this.constants.S;
	const L = D / S;
	const tb = Math.floor(this.thread.x / 2);
	const which = this.thread.x - tb * 2;
	let m0 = 0;
	let m1 = 0;
	let m2 = 0;
	let m3 = 0;
	if (this.constants.layer === 1) {
		for (let s = 0; s < S; s++) {
			const pi = (tb * S + s) * 8;
			m0 += p[pi];
			m1 += p[pi + 1];
			m2 += p[pi + 2];
			m3 += p[pi + 3];
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
	for (let s = 0; s < S; s++) {
		const pi = (tb * S + s) * 8;
		const d0 = p[pi] / L - m0;
		const d1 = p[pi + 1] / L - m1;
		const d2 = p[pi + 2] / L - m2;
		const d3 = p[pi + 3] / L - m3;
		q0 += p[pi + 4] + L * d0 * d0;
		q1 += p[pi + 5] + L * d1 * d1;
		q2 += p[pi + 6] + L * d2 * d2;
		q3 += p[pi + 7] + L * d3 * d3;
	}
	const e = this.constants.eps;
	return [1 / Math.sqrt(q0 / D + e), 1 / Math.sqrt(q1 / D + e), 1 / Math.sqrt(q2 / D + e), 1 / Math.sqrt(q3 / D + e)];
}

/** Threads (tb, i). b is zeros for RMSNorm. */
export function normApplyBlocked(this: KernelThis<BlockedNormConstants>, x: number[], stats: number[], w: number[], b: number[]) {
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
