// Projections: y (T, N) = x (T, K) Wᵀ, W (N, K) row-major, with an optional fused epilogue:
//   EPI_NONE      y = x Wᵀ                          in_proj, x_proj, lm head
//   EPI_RESIDUAL  y = r + x Wᵀ                      out_proj adds the residual stream
//   EPI_SOFTPLUS  y = softplus(x Wᵀ + b)            dt_proj: Δ = softplus(dt_r W_dtᵀ + b_dt)
// x may be wider than K (row stride S ≥ K): dt_proj reads the first R columns of [dt_r | B | C].
// The thread grid is flat (T·N outputs, 1-D), which every backend returns as one Float32Array without
// rebuilding rows. W is a kernel constant so backends that copy arguments (webasm) upload it once.
import type { KernelThis } from './types.js';

export const EPI_NONE = 0;
export const EPI_RESIDUAL = 1;
export const EPI_SOFTPLUS = 2;

interface ProjConstants {
	N: number; // outputs per position
	K: number; // reduction length
	epi: number; // one of EPI_*
	W: number[][]; // (N, K)
}

/** Four independent accumulators (K % 4 == 0): the fastest shape measured for gpu.js cpu/webasm. */
export function projection4(this: KernelThis<ProjConstants>, x: number[][], r: number[][], b: number[]) {
	const t = Math.floor(this.thread.x / this.constants.N);
	const i = this.thread.x - t * this.constants.N;
	let s0 = 0;
	let s1 = 0;
	let s2 = 0;
	let s3 = 0;
	for (let k = 0; k < this.constants.K; k += 4) {
		s0 += this.constants.W[i][k] * x[t][k];
		s1 += this.constants.W[i][k + 1] * x[t][k + 1];
		s2 += this.constants.W[i][k + 2] * x[t][k + 2];
		s3 += this.constants.W[i][k + 3] * x[t][k + 3];
	}
	const s = s0 + s1 + (s2 + s3);
	if (this.constants.epi === 1) return r[t][i] + s;
	if (this.constants.epi === 2) {
		const v = s + b[i];
		return v > 20 ? v : Math.log(1 + Math.exp(v));
	}
	return s;
}

/** Any K (dt_rank is often not a multiple of 4 in small models). */
export function projection1(this: KernelThis<ProjConstants>, x: number[][], r: number[][], b: number[]) {
	const t = Math.floor(this.thread.x / this.constants.N);
	const i = this.thread.x - t * this.constants.N;
	let s = 0;
	for (let k = 0; k < this.constants.K; k++) {
		s += this.constants.W[i][k] * x[t][k];
	}
	if (this.constants.epi === 1) return r[t][i] + s;
	if (this.constants.epi === 2) {
		const v = s + b[i];
		return v > 20 ? v : Math.log(1 + Math.exp(v));
	}
	return s;
}

/** Reference: the same math in plain loops, accumulating in float64. */
export function projectionReference(
	w: Float32Array, N: number, K: number,
	x: Float32Array, T: number, S: number,
	epi: number, r?: Float32Array, b?: Float32Array,
): Float32Array {
	const y = new Float32Array(T * N);
	for (let t = 0; t < T; t++) {
		for (let i = 0; i < N; i++) {
			let s = 0;
			for (let k = 0; k < K; k++) s += w[i * K + k] * x[t * S + k];
			if (epi === EPI_RESIDUAL) s += r![t * N + i];
			if (epi === EPI_SOFTPLUS) s = softplus(s + b![i]);
			y[t * N + i] = s;
		}
	}
	return y;
}

/** softplus(v) = log(1 + eᵛ), and v itself above 20 (PyTorch's threshold). */
export const softplus = (v: number): number => (v > 20 ? v : Math.log1p(Math.exp(v)));
