// Projections y (T, N) = x (T, K) Wᵀ, W (N, K) row-major, with a fused epilogue (Epi):
//   None      y = x Wᵀ                          in_proj, x_proj, lm head
//   Residual  y = r + x Wᵀ                      out_proj adds the residual stream
//   Softplus  y = softplus(x Wᵀ + b)            dt_proj: Δ = softplus(dt_r W_dtᵀ + b_dt)
//   Bias      y = x Wᵀ + b                      a folded norm's bias (GPU-resident only, below)
// x may be a view (kernels/layout.ts): dt_proj reads dt_r, the first R columns of x_proj's output.
// Three forms, each checked against projectionReference:
//   projectionReference             plain loops
//   projection4, projection1        gpu.js kernels for the host forward, one thread per output; W is a kernel
//                                   constant, so backends that copy arguments per call (webasm) upload it once
//   matmulPartial, matmulReduce,    gpu.js kernels on the blocked layout for the GPU-resident forward: split-K
//   matvec*                         partial sums, then a reduction with the epilogue (see below)
import type { KernelThis, Matrix } from './types.js';
import { asColumns, type Rows } from './layout.js';

/** A projection's fused epilogue. The codes are native/src/kernels.h's MB_EPI_* (Bias: the blocked kernels only). */
export const enum Epi {
	None = 0,
	Residual = 1,
	Softplus = 2,
	Bias = 3,
}

/** What a host call asks for after x Wᵀ: nothing, + a residual (T, N), or softplus(· + b) with a bias (N). */
export interface Epilogue {
	residual?: Float32Array;
	softplusBias?: Float32Array;
}

/** The epilogue's code and its operand: the one place that decides which epilogue a call asked for. */
export function epilogueOf(e: Epilogue | undefined): [Epi, Float32Array | null] {
	if (e?.residual) return [Epi.Residual, e.residual];
	if (e?.softplusBias) return [Epi.Softplus, e.softplusBias];
	return [Epi.None, null];
}

/** softplus(v) = log(1 + eᵛ), and v itself above 20 (PyTorch's threshold). */
export const softplus = (v: number): number => (v > 20 ? v : Math.log1p(Math.exp(v)));

// ---- reference ------------------------------------------------------------------------------------------------

/** y (T, N) = x Wᵀ then the epilogue, accumulating in float64. x: (T, K) rows, or a view of K columns. */
export function projectionReference(w: Matrix, x: Rows, T: number, epi?: Epilogue): Float32Array {
	const { rows: N, cols: K, data: W } = w;
	const v = asColumns(x, K);
	const [mode, operand] = epilogueOf(epi);
	const y = new Float32Array(T * N);
	for (let t = 0; t < T; t++) {
		const xt = t * v.stride + v.offset;
		for (let i = 0; i < N; i++) {
			let s = 0;
			for (let k = 0; k < K; k++) s += W[i * K + k] * v.data[xt + k];
			if (mode === Epi.Residual) s += operand![t * N + i];
			if (mode === Epi.Softplus) s = softplus(s + operand![i]);
			y[t * N + i] = s;
		}
	}
	return y;
}

// ---- host gpu.js kernels (src/backend/gpujs.ts) -----------------------------------------------------------------
// The thread grid is flat (T·N outputs, 1-D), which every backend returns as one Float32Array without rebuilding
// rows. x is a 2-D input whose row t starts at the view's first column.

interface HostProjConstants {
	N: number; // outputs per position
	K: number; // reduction length
	epi: number; // an Epi
	W: number[][]; // (N, K)
}

/** Four independent accumulators (K % 4 == 0): the fastest shape for gpu.js cpu/webasm. */
export function projection4(this: KernelThis<HostProjConstants>, x: number[][], r: number[][], b: number[]) {
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
	if (this.constants.epi === Epi.Residual) return r[t][i] + s;
	if (this.constants.epi === Epi.Softplus) {
		const v = s + b[i];
		return v > 20 ? v : Math.log(1 + Math.exp(v));
	}
	return s;
}

/** Any K (dt_rank is often not a multiple of 4 in small models). */
export function projection1(this: KernelThis<HostProjConstants>, x: number[][], r: number[][], b: number[]) {
	const t = Math.floor(this.thread.x / this.constants.N);
	const i = this.thread.x - t * this.constants.N;
	let s = 0;
	for (let k = 0; k < this.constants.K; k++) {
		s += this.constants.W[i][k] * x[t][k];
	}
	if (this.constants.epi === Epi.Residual) return r[t][i] + s;
	if (this.constants.epi === Epi.Softplus) {
		const v = s + b[i];
		return v > 20 ? v : Math.log(1 + Math.exp(v));
	}
	return s;
}

// ---- blocked gpu.js kernels (src/model/resident.ts) ------------------------------------------------------------
// Activations are blocked (kernels/layout.ts); weights are stored transposed, Wᵀ (K, N), so neighbouring threads
// (neighbouring n) read neighbouring floats. One thread per output is latency-bound on a GPU (docs/backends.md),
// so y = x Wᵀ runs as split-K:
//   matmulPartial  P[s, tb, n, 0..3] = Σ_{k ∈ slice s} Wᵀ[k, n]·x[tb, k, 0..3]      S slices of KS = ⌈K/S⌉
//   matmulReduce   y[tb, n, 0..3]    = Σ_s P[s, tb, n, 0..3], then the epilogue
// Decode (one block, lane 0) uses matvecPartial and matvecReduce, with many slices to fill the GPU.
//
// A norm in front of a projection folds into it (norm weight w, bias b): with W' = W·diag(w),
//   norm(x) Wᵀ = rstd·((x − μ) W'ᵀ) + b Wᵀ = rstd·(x W'ᵀ − μ·c1) + c2,   c1 = W' 1, c2 = W b  (per output)
// so decode needs no norm pass: matvecNormPartial also sums x and x² over its slice, and matvecNormReduce
// finishes the statistics and applies them. Chunks normalise with (x − μ)·rstd (kernels/norms.ts) and add c2
// (Epi.Bias).

interface MatmulConstants {
	K: number; // reduction length
	N: number; // outputs
	XC: number; // columns of x (≥ K): dt_proj reads the first R columns of x_proj's output
	U: number; // 4: slices are a multiple of 4 long and the loop takes 4 steps at a time (more loads in flight); 1
}

interface ReduceConstants {
	N: number;
	epi: number; // an Epi
	tile: number; // R: p is matmulTile's planes of R rows a thread; 0: matmulPartial's layout
	tileBlocks: number; // B: blocks of 4 positions a matmulTile thread computes
}

interface NormReduceConstants {
	N: number;
	D: number; // the normalised length (= K of the projection)
	eps: number;
	layer: number; // 1 = LayerNorm
}

/** Threads (s, tb, n), n fastest (neighbours read neighbouring weights). TB blocks, KS = reduction length per slice. */
export function matmulPartial(this: KernelThis<MatmulConstants>, x: number[], wt: number[], TB: number, KS: number) {
	const N = this.constants.N;
	const XC = this.constants.XC;
	const q = Math.floor(this.thread.x / N);
	const n = this.thread.x - q * N;
	const s = Math.floor(q / TB);
	const tb = q - s * TB;
	const k0 = s * KS;
	let a0 = 0;
	let a1 = 0;
	let a2 = 0;
	let a3 = 0;
	if (this.constants.U === 4) {
		for (let i = 0; i < this.constants.K; i += 4) {
			if (i >= KS) break;
			const k = k0 + i;
			const w0 = wt[k * N + n];
			const w1 = wt[(k + 1) * N + n];
			const w2 = wt[(k + 2) * N + n];
			const w3 = wt[(k + 3) * N + n];
			const xi = (tb * XC + k) * 4;
			a0 += w0 * x[xi] + w1 * x[xi + 4] + w2 * x[xi + 8] + w3 * x[xi + 12];
			a1 += w0 * x[xi + 1] + w1 * x[xi + 5] + w2 * x[xi + 9] + w3 * x[xi + 13];
			a2 += w0 * x[xi + 2] + w1 * x[xi + 6] + w2 * x[xi + 10] + w3 * x[xi + 14];
			a3 += w0 * x[xi + 3] + w1 * x[xi + 7] + w2 * x[xi + 11] + w3 * x[xi + 15];
		}
		return [a0, a1, a2, a3];
	}
	for (let i = 0; i < this.constants.K; i++) {
		const k = k0 + i;
		if (i >= KS || k >= this.constants.K) break;
		const w = wt[k * N + n];
		const xi = (tb * XC + k) * 4;
		a0 += w * x[xi];
		a1 += w * x[xi + 1];
		a2 += w * x[xi + 2];
		a3 += w * x[xi + 3];
	}
	return [a0, a1, a2, a3];
}

/**
 * matmulPartial with R rows × B blocks (4B positions) a thread, a wide kernel of 4RB outputs
 * (src/backend/resident/wide.ts): threads i = (s, tq, g), g fastest over G = N/R, each computing rows g, g + G, …,
 * g + (R − 1)G (neighbouring threads read neighbouring weights) for blocks B·tq … B·tq + B − 1. A weight load
 * feeds 4B positions (matmulPartial's: 4, so a 256-position chunk read every weight 64 times through the L2 cache),
 * and a k step loads R weights and 4B values of x for 4RB multiply-adds. Value (r, j, c), row g + rG of block
 * B·tq + j at position c, is written in plane (rB + j)·4 + c (P[plane·threads + i]), which matmulReduce reads with
 * tile = R, tileBlocks = B. Needs N % R = 0 and TB % B = 0; its index sums are whole numbers (intIndex).
 *
 * gpu.js has no local arrays, so the 4RB accumulators are named variables, aRJC for row R, block J, position C
 * (one digit each: R, B ≤ 10): tileKernel writes the function out for given R and B, the same text a hand would,
 * in the shape of R = B = 1:
 *   for (k in the slice) { w0 = wt[k·N + g]; x00 … x03 = x[block tq, k, C]; a00C += w0·x0C }
 */
function tileKernel(R: number, B: number, name: string): Function {
	if (R > 10 || B > 10) throw new Error('internal: tileKernel names its values with one digit each');
	const all = (f: (r: number, j: number, c: number) => string, sep: string) =>
		Array.from({ length: R * B * 4 }, (_, i) => f(Math.floor(i / (4 * B)), Math.floor(i / 4) % B, i % 4)).join(sep);
	const weights = Array.from({ length: R }, (_, r) => `const w${r} = wt[wi${r ? ` + ${r} * G` : ''}];`).join('\n\t\t');
	const xs = Array.from({ length: B * 4 }, (_, i) => `const x${i >> 2}${i & 3} = x[xi${i >> 2 ? ` + ${i >> 2} * XC4` : ''}${i & 3 ? ` + ${i & 3}` : ''}];`).join('\n\t\t');
	const body = `
	const N = this.constants.N;
	const XC4 = this.constants.XC * 4;
	const G = N / ${R};
	const q = Math.floor(this.thread.x / G);
	const g = this.thread.x - q * G;
	const TQ = TB / ${B};
	const s = Math.floor(q / TQ);
	const tq = q - s * TQ;
	const k0 = s * KS;
	${all((r, j, c) => `let a${r}${j}${c} = 0;`, ' ')}
	for (let i = 0; i < this.constants.K; i++) {
		const k = k0 + i;
		if (i >= KS || k >= this.constants.K) break;
		const wi = k * N + g;
		${weights}
		const xi = tq * ${B} * XC4 + k * 4;
		${xs}
		${all((r, j, c) => `a${r}${j}${c} += w${r} * x${j}${c};`, ' ')}
	}
	return [${all((r, j, c) => `a${r}${j}${c}`, ', ')}];`;
	const fn = new Function('x', 'wt', 'TB', 'KS', body); // our own source, built from R and B alone
	Object.defineProperty(fn, 'name', { value: name });
	return fn;
}

/**
 * 4 rows × 16 positions a thread (64 outputs). On the H200, 8 rows × 16 positions ran the same and 4 rows × 32
 * positions slower (README, Speed).
 */
export const matmulTile = tileKernel(4, 4, 'matmulTile');

/**
 * Threads (tb, n). r: the residual (blocked, like y); b: the bias (N). With tile = R, tileBlocks = B, p is
 * matmulTile's planes: y[tb, n, c] in plane (rB + j)·4 + c of thread (s, tq, g) for n = g + r·N/R, tb = B·tq + j.
 */
export function matmulReduce(this: KernelThis<ReduceConstants>, p: number[], r: number[], b: number[], TB: number, S: number) {
	const N = this.constants.N;
	const q = this.thread.x;
	const tb = Math.floor(q / N);
	const n = q - tb * N;
	let a0 = 0;
	let a1 = 0;
	let a2 = 0;
	let a3 = 0;
	if (this.constants.tile > 0) {
		const B = this.constants.tileBlocks;
		const G = N / this.constants.tile;
		const threads = (S * TB * G) / B; // matmulTile's
		const rq = Math.floor(n / G);
		const tq = Math.floor(tb / B);
		const plane = (rq * B + tb - tq * B) * 4 * threads;
		for (let s = 0; s < 65536; s++) {
			if (s >= S) break;
			const pi = plane + (s * TB / B + tq) * G + n - rq * G;
			a0 += p[pi];
			a1 += p[pi + threads];
			a2 += p[pi + 2 * threads];
			a3 += p[pi + 3 * threads];
		}
	} else {
		for (let s = 0; s < 65536; s++) {
			if (s >= S) break;
			const pi = (s * TB * N + q) * 4;
			a0 += p[pi];
			a1 += p[pi + 1];
			a2 += p[pi + 2];
			a3 += p[pi + 3];
		}
	}
	if (this.constants.epi === Epi.Residual) {
		const ri = q * 4;
		return [r[ri] + a0, r[ri + 1] + a1, r[ri + 2] + a2, r[ri + 3] + a3];
	}
	if (this.constants.epi === Epi.Bias) return [a0 + b[n], a1 + b[n], a2 + b[n], a3 + b[n]];
	if (this.constants.epi === Epi.Softplus) {
		const v0 = a0 + b[n];
		const v1 = a1 + b[n];
		const v2 = a2 + b[n];
		const v3 = a3 + b[n];
		return [
			v0 > 20 ? v0 : Math.log(1 + Math.exp(v0)),
			v1 > 20 ? v1 : Math.log(1 + Math.exp(v1)),
			v2 > 20 ? v2 : Math.log(1 + Math.exp(v2)),
			v3 > 20 ? v3 : Math.log(1 + Math.exp(v3)),
		];
	}
	return [a0, a1, a2, a3];
}

/**
 * Decode (T = 1, lane 0 of one block): threads (s, n), P[s, n] = Σ_{k ∈ slice s} Wᵀ[k, n]·x[k, 0]. Four
 * independent loads per iteration keep more memory requests in flight than matmulPartial's one; needs KS % 4 = 0.
 */
export function matvecPartial(this: KernelThis<MatmulConstants>, x: number[], wt: number[], KS: number) {
	const N = this.constants.N;
	const s = Math.floor(this.thread.x / N);
	const n = this.thread.x - s * N;
	const k0 = s * KS;
	let a0 = 0;
	let a1 = 0;
	let a2 = 0;
	let a3 = 0;
	for (let i = 0; i < this.constants.K; i += 4) {
		if (i >= KS) break;
		const k = k0 + i;
		a0 += wt[k * N + n] * x[k * 4];
		a1 += wt[(k + 1) * N + n] * x[(k + 1) * 4];
		a2 += wt[(k + 2) * N + n] * x[(k + 2) * 4];
		a3 += wt[(k + 3) * N + n] * x[(k + 3) * 4];
	}
	return a0 + a1 + (a2 + a3);
}

/** Decode: threads n, y[0, n, ·] = Σ_s P[s, n] then the epilogue, written to all 4 lanes (only lane 0 is read). */
export function matvecReduce(this: KernelThis<ReduceConstants>, p: number[], r: number[], b: number[], S: number) {
	const N = this.constants.N;
	const n = this.thread.x;
	let a0 = 0;
	let a1 = 0;
	let a2 = 0;
	let a3 = 0;
	for (let s = 0; s < 65536; s += 4) {
		if (s >= S) break;
		a0 += p[s * N + n];
		if (s + 1 < S) a1 += p[(s + 1) * N + n];
		if (s + 2 < S) a2 += p[(s + 2) * N + n];
		if (s + 3 < S) a3 += p[(s + 3) * N + n];
	}
	let a = a0 + a1 + (a2 + a3);
	if (this.constants.epi === Epi.Residual) a += r[n * 4];
	if (this.constants.epi === Epi.Softplus) {
		const v = a + b[n];
		a = v > 20 ? v : Math.log(1 + Math.exp(v));
	}
	return [a, a, a, a];
}

/** As matvecPartial, with the slice's Σx and Σx² beside the dot product: P[s, n] = [dot, Σx, Σx², 0]. */
export function matvecNormPartial(this: KernelThis<MatmulConstants>, x: number[], wt: number[], KS: number) {
	const N = this.constants.N;
	const s = Math.floor(this.thread.x / N);
	const n = this.thread.x - s * N;
	const k0 = s * KS;
	let a0 = 0;
	let a1 = 0;
	let sx = 0;
	let sq = 0;
	for (let i = 0; i < this.constants.K; i += 2) {
		if (i >= KS) break;
		const k = k0 + i;
		const x0 = x[k * 4];
		const x1 = x[(k + 1) * 4];
		a0 += wt[k * N + n] * x0;
		a1 += wt[(k + 1) * N + n] * x1;
		sx += x0 + x1;
		sq += x0 * x0 + x1 * x1;
	}
	return [a0 + a1, sx, sq, 0];
}

/** Decode: threads n, y[0, n, ·] = rstd·(Σ_s dot − μ·c1[n]) + c2[n], the statistics summed from slice 0's entries. */
export function matvecNormReduce(this: KernelThis<NormReduceConstants>, p: number[], c1: number[], c2: number[], S: number) {
	const N = this.constants.N;
	const D = this.constants.D;
	const n = this.thread.x;
	let dot = 0;
	let sx = 0;
	let sq = 0;
	for (let s = 0; s < 65536; s++) {
		if (s >= S) break;
		dot += p[(s * N + n) * 4];
		sx += p[s * N * 4 + 1];
		sq += p[s * N * 4 + 2];
	}
	const mean = this.constants.layer === 1 ? sx / D : 0;
	const rstd = 1 / Math.sqrt(Math.max(sq / D - mean * mean, 0) + this.constants.eps);
	const y = rstd * (dot - mean * c1[n]) + c2[n];
	return [y, y, y, y];
}

// ---- decode with group sums (src/model/resident/plans.ts decodePlan) -------------------------------------------
// The same split-K partial sums P[s, n] as matvecPartial (and matvecNormPartial's [dot, Σx, Σx², 0]), but each
// workgroup's 64 threads are C columns × P = 64/C parts of one slice, and the runner sums the parts (a group sum,
// src/backend/resident/group-sum.ts): 64/C times fewer slices reach the reduction for the same threads, few enough
// that the elementwise kernels after a projection (convStep, scanStepFused) finish the sum themselves instead of
// a reduction pass. Part p reads rows s·KS + p, s·KS + p + P, …: a warp reads whole rows of C neighbouring columns.
// Threads: S slices × N/C tiles × 64, thread x = ((s·N/C + tile)·64 + part·C + col), n = tile·C + col.

interface GroupConstants {
	K: number; // reduction length
	N: number; // outputs (a multiple of C)
	C: number; // columns per workgroup (the group-sum width)
	P: number; // 64 / C parts
}

/** Decode: one part's share of P[s, n] = Σ_{k ∈ slice s} Wᵀ[k, n]·x[k, 0], x blocked (lane 0 read). */
export function matvecGroup(this: KernelThis<GroupConstants>, x: number[], wt: number[], KS: number) {
	const N = this.constants.N;
	const C = this.constants.C;
	const P = this.constants.P;
	const g = Math.floor(this.thread.x / 64);
	const lane = this.thread.x - g * 64;
	const part = Math.floor(lane / C);
	const tiles = N / C;
	const s = Math.floor(g / tiles);
	const n = (g - s * tiles) * C + lane - part * C;
	const end = s * KS + KS;
	let a0 = 0;
	let a1 = 0;
	let a2 = 0;
	let a3 = 0;
	for (let i = 0; i < this.constants.K; i += 4 * P) {
		if (i >= KS) break;
		const k = s * KS + part + i;
		if (k < end) a0 += wt[k * N + n] * x[k * 4];
		if (k + P < end) a1 += wt[(k + P) * N + n] * x[(k + P) * 4];
		if (k + 2 * P < end) a2 += wt[(k + 2 * P) * N + n] * x[(k + 2 * P) * 4];
		if (k + 3 * P < end) a3 += wt[(k + 3 * P) * N + n] * x[(k + 3 * P) * 4];
	}
	return a0 + a1 + (a2 + a3);
}

/** As matvecGroup, with the rows' Σx and Σx² beside the dot product (a folded norm): [dot, Σx, Σx², 0]. */
export function matvecNormGroup(this: KernelThis<GroupConstants>, x: number[], wt: number[], KS: number) {
	const N = this.constants.N;
	const C = this.constants.C;
	const P = this.constants.P;
	const g = Math.floor(this.thread.x / 64);
	const lane = this.thread.x - g * 64;
	const part = Math.floor(lane / C);
	const tiles = N / C;
	const s = Math.floor(g / tiles);
	const n = (g - s * tiles) * C + lane - part * C;
	const end = s * KS + KS;
	let a0 = 0;
	let a1 = 0;
	let sx = 0;
	let sq = 0;
	for (let i = 0; i < this.constants.K; i += 2 * P) {
		if (i >= KS) break;
		const k = s * KS + part + i;
		if (k < end) {
			const x0 = x[k * 4];
			a0 += wt[k * N + n] * x0;
			sx += x0;
			sq += x0 * x0;
		}
		if (k + P < end) {
			const x1 = x[(k + P) * 4];
			a1 += wt[(k + P) * N + n] * x1;
			sx += x1;
			sq += x1 * x1;
		}
	}
	return [a0 + a1, sx, sq, 0];
}

interface SummedConstants extends GroupConstants {
	XN: number; // floats between two slices of the input's partial sums
}

/**
 * As matvecGroup, reading x[k] = Σ_{j < XS} px[j·XN + k]: the input is still another projection's XS partial sums
 * (dt_proj reads dt_r, the first R columns of x_proj's partial sums).
 */
export function matvecGroupSummed(this: KernelThis<SummedConstants>, px: number[], wt: number[], KS: number, XS: number) {
	const N = this.constants.N;
	const C = this.constants.C;
	const P = this.constants.P;
	const g = Math.floor(this.thread.x / 64);
	const lane = this.thread.x - g * 64;
	const part = Math.floor(lane / C);
	const tiles = N / C;
	const s = Math.floor(g / tiles);
	const n = (g - s * tiles) * C + lane - part * C;
	const end = s * KS + KS;
	let a = 0;
	for (let i = 0; i < this.constants.K; i += P) {
		if (i >= KS) break;
		const k = s * KS + part + i;
		if (k < end) {
			let v = 0;
			for (let j = 0; j < 65536; j++) {
				if (j >= XS) break;
				v += px[j * this.constants.XN + k];
			}
			a += wt[k * N + n] * v;
		}
	}
	return a;
}

// ---- decode, a row per workgroup (src/model/resident/plans.ts rowDecodePlan) -----------------------------------
// W as checkpoints store it, row-major (N, K), in 32 or 16 bits (src/backend/resident/halves.ts). Workgroup g is
// row n of slice s (g = s·N + n); its 64 threads take pairs k = s·KS + 2·lane + 128·i, k + 1, eight pairs a loop
// step, so a warp reads one row's neighbouring values and the group sum (C = 1) adds the 64 shares. Eight pairs
// measured no worse than four on the H200 (bench/results/h200-webgpu-decode-session7-run2.txt, -run3.txt); at both,
// float16 weights run no faster than float32 there: these passes are not bound by the bytes of W they read. Many rows keep the GPU's memory busy without split-K, so a projection is one pass and leaves
// its consumer at most a few slices to add. Needs K and KS even (matvecRowSummed: any K). Threads: S·N·64.

interface RowConstants {
	K: number; // reduction length (even)
	N: number; // rows
}

/** Decode: one lane's share of P[s, n] = Σ_{k ∈ slice s} W[n, k]·x[k], x blocked (lane 0 read). */
export function matvecRow(this: KernelThis<RowConstants>, x: number[], w: number[], KS: number) {
	const N = this.constants.N;
	const g = Math.floor(this.thread.x / 64);
	const lane = this.thread.x - g * 64;
	const s = Math.floor(g / N);
	const row = (g - s * N) * this.constants.K;
	let a0 = 0;
	let a1 = 0;
	let a2 = 0;
	let a3 = 0;
	for (let i = 0; i < this.constants.K; i += 1024) {
		if (i >= KS) break;
		const j = i + lane * 2;
		const k = s * KS + j;
		const x4 = k * 4; // x's lane 0 of k (blocked), a base the loads add constants to (int-index.ts)
		if (j < KS) a0 += w[row + k] * x[x4] + w[row + k + 1] * x[x4 + 4];
		if (j + 128 < KS) a1 += w[row + k + 128] * x[x4 + 512] + w[row + k + 129] * x[x4 + 516];
		if (j + 256 < KS) a2 += w[row + k + 256] * x[x4 + 1024] + w[row + k + 257] * x[x4 + 1028];
		if (j + 384 < KS) a3 += w[row + k + 384] * x[x4 + 1536] + w[row + k + 385] * x[x4 + 1540];
		if (j + 512 < KS) a0 += w[row + k + 512] * x[x4 + 2048] + w[row + k + 513] * x[x4 + 2052];
		if (j + 640 < KS) a1 += w[row + k + 640] * x[x4 + 2560] + w[row + k + 641] * x[x4 + 2564];
		if (j + 768 < KS) a2 += w[row + k + 768] * x[x4 + 3072] + w[row + k + 769] * x[x4 + 3076];
		if (j + 896 < KS) a3 += w[row + k + 896] * x[x4 + 3584] + w[row + k + 897] * x[x4 + 3588];
	}
	return a0 + a1 + (a2 + a3);
}

/**
 * Decode, in_proj (and the head) after the norm (one slice): a lane's share of [Σ_k W[n, k]·nw[k]·x[k], Σx, Σx², 0],
 * x plain (the row plan's residual stream), the norm weight nw applied to x here rather than folded into W, so that
 * 16-bit weights stay the checkpoint's values. The whole workgroup reads all of x, so its sums are the row's
 * statistics; convStep and scanStepFused (the head: matvecNormReduce) finish the norm.
 */
export function matvecRowNorm(this: KernelThis<RowConstants>, x: number[], w: number[], nw: number[]) {
	const K = this.constants.K;
	const g = Math.floor(this.thread.x / 64);
	const lane = this.thread.x - g * 64;
	const row = g * K;
	let a0 = 0;
	let a1 = 0;
	let sx = 0;
	let sq = 0;
	for (let i = 0; i < this.constants.K; i += 1024) {
		const k = i + lane * 2;
		if (k < K) {
			const u0 = x[k];
			const u1 = x[k + 1];
			a0 += w[row + k] * (nw[k] * u0) + w[row + k + 1] * (nw[k + 1] * u1);
			sx += u0 + u1;
			sq += u0 * u0 + u1 * u1;
		}
		if (k + 128 < K) {
			const u0 = x[k + 128];
			const u1 = x[k + 129];
			a1 += w[row + k + 128] * (nw[k + 128] * u0) + w[row + k + 129] * (nw[k + 129] * u1);
			sx += u0 + u1;
			sq += u0 * u0 + u1 * u1;
		}
		if (k + 256 < K) {
			const u0 = x[k + 256];
			const u1 = x[k + 257];
			a0 += w[row + k + 256] * (nw[k + 256] * u0) + w[row + k + 257] * (nw[k + 257] * u1);
			sx += u0 + u1;
			sq += u0 * u0 + u1 * u1;
		}
		if (k + 384 < K) {
			const u0 = x[k + 384];
			const u1 = x[k + 385];
			a1 += w[row + k + 384] * (nw[k + 384] * u0) + w[row + k + 385] * (nw[k + 385] * u1);
			sx += u0 + u1;
			sq += u0 * u0 + u1 * u1;
		}
		if (k + 512 < K) {
			const u0 = x[k + 512];
			const u1 = x[k + 513];
			a0 += w[row + k + 512] * (nw[k + 512] * u0) + w[row + k + 513] * (nw[k + 513] * u1);
			sx += u0 + u1;
			sq += u0 * u0 + u1 * u1;
		}
		if (k + 640 < K) {
			const u0 = x[k + 640];
			const u1 = x[k + 641];
			a1 += w[row + k + 640] * (nw[k + 640] * u0) + w[row + k + 641] * (nw[k + 641] * u1);
			sx += u0 + u1;
			sq += u0 * u0 + u1 * u1;
		}
		if (k + 768 < K) {
			const u0 = x[k + 768];
			const u1 = x[k + 769];
			a0 += w[row + k + 768] * (nw[k + 768] * u0) + w[row + k + 769] * (nw[k + 769] * u1);
			sx += u0 + u1;
			sq += u0 * u0 + u1 * u1;
		}
		if (k + 896 < K) {
			const u0 = x[k + 896];
			const u1 = x[k + 897];
			a1 += w[row + k + 896] * (nw[k + 896] * u0) + w[row + k + 897] * (nw[k + 897] * u1);
			sx += u0 + u1;
			sq += u0 * u0 + u1 * u1;
		}
	}
	return [a0 + a1, sx, sq, 0];
}

/** Decode, out_proj (one slice): y[n] = r[n] + Σ_k W[n, k]·x[k], x blocked, r and y plain (the residual stream); lane 0 adds r. */
export function matvecRowResidual(this: KernelThis<RowConstants>, x: number[], w: number[], r: number[]) {
	const K = this.constants.K;
	const g = Math.floor(this.thread.x / 64);
	const lane = this.thread.x - g * 64;
	const row = g * K;
	let a0 = lane === 0 ? r[g] : 0;
	let a1 = 0;
	let a2 = 0;
	let a3 = 0;
	for (let i = 0; i < this.constants.K; i += 1024) {
		const k = i + lane * 2;
		const x4 = k * 4; // x's lane 0 of k (blocked), a base the loads add constants to (int-index.ts)
		if (k < K) a0 += w[row + k] * x[x4] + w[row + k + 1] * x[x4 + 4];
		if (k + 128 < K) a1 += w[row + k + 128] * x[x4 + 512] + w[row + k + 129] * x[x4 + 516];
		if (k + 256 < K) a2 += w[row + k + 256] * x[x4 + 1024] + w[row + k + 257] * x[x4 + 1028];
		if (k + 384 < K) a3 += w[row + k + 384] * x[x4 + 1536] + w[row + k + 385] * x[x4 + 1540];
		if (k + 512 < K) a0 += w[row + k + 512] * x[x4 + 2048] + w[row + k + 513] * x[x4 + 2052];
		if (k + 640 < K) a1 += w[row + k + 640] * x[x4 + 2560] + w[row + k + 641] * x[x4 + 2564];
		if (k + 768 < K) a2 += w[row + k + 768] * x[x4 + 3072] + w[row + k + 769] * x[x4 + 3076];
		if (k + 896 < K) a3 += w[row + k + 896] * x[x4 + 3584] + w[row + k + 897] * x[x4 + 3588];
	}
	return a0 + a1 + (a2 + a3);
}

interface RowSummedConstants {
	K: number; // reduction length (any)
	N: number;
	XN: number; // floats between two slices of the input's partial sums
}

/**
 * Decode, dt_proj: a lane's share of Σ_k W[n, k]·x[k] with x[k] = Σ_{j < XS} px[j·XN + k], the first R columns of
 * x_proj's XS slices; one k per lane a step (K = dt_rank is short). Softplus and the bias are scanStepFused's.
 */
export function matvecRowSummed(this: KernelThis<RowSummedConstants>, px: number[], w: number[], XS: number) {
	const K = this.constants.K;
	const g = Math.floor(this.thread.x / 64);
	const lane = this.thread.x - g * 64;
	const row = g * K;
	let a = 0;
	for (let i = 0; i < this.constants.K; i += 64) {
		const k = i + lane;
		if (k < K) {
			let v = 0;
			for (let j = 0; j < 65536; j++) {
				if (j >= XS) break;
				v += px[j * this.constants.XN + k];
			}
			a += w[row + k] * v;
		}
	}
	return a;
}

// ---- chunks, a row per workgroup (src/model/resident/plans.ts chunkPlan with rows) --------------------------------
// matvecRow's shape for TB blocks of 4 positions: workgroup g = (tb, n), g = tb·N + n, its lanes take pairs of k as
// matvecRow's, and each k's 4 positions are 16 contiguous bytes of blocked x, so a weight feeds 4 positions and a
// warp reads x whole. The group sum writes the block's 4 outputs where matmulReduce would: y[tb, n, ·]. Needs K even.

interface RowChunkConstants {
	K: number; // reduction length (even)
	N: number; // rows
	epi: number; // Epi.None, Epi.Residual (adds r) or Epi.Bias (adds b[n])
}

/**
 * A lane's share of y[tb, n, j] = Σ_k W[n, k]·nw[k]·x[tb, k, j], j < 4, plus (lane 0) the epilogue's r[tb, n, j]
 * or b[n]. nw: the norm weight in front of in_proj (the chunk plan's norm leaves it out), ones elsewhere.
 */
export function matmulRow(this: KernelThis<RowChunkConstants>, x: number[], w: number[], nw: number[], r: number[], b: number[]) {
	const N = this.constants.N;
	const K = this.constants.K;
	const g = Math.floor(this.thread.x / 64);
	const lane = this.thread.x - g * 64;
	const tb = Math.floor(g / N);
	const n = g - tb * N;
	const row = n * K;
	const xb = tb * K; // x has K columns
	let a0 = 0;
	let a1 = 0;
	let a2 = 0;
	let a3 = 0;
	if (lane === 0 && this.constants.epi === Epi.Residual) {
		const ri = (tb * N + n) * 4;
		a0 = r[ri];
		a1 = r[ri + 1];
		a2 = r[ri + 2];
		a3 = r[ri + 3];
	}
	if (lane === 0 && this.constants.epi === Epi.Bias) {
		a0 = b[n];
		a1 = b[n];
		a2 = b[n];
		a3 = b[n];
	}
	for (let i = 0; i < this.constants.K; i += 512) {
		const k = i + lane * 2;
		if (k < K) {
			const w0 = w[row + k] * nw[k];
			const w1 = w[row + k + 1] * nw[k + 1];
			const xi = (xb + k) * 4;
			a0 += w0 * x[xi] + w1 * x[xi + 4];
			a1 += w0 * x[xi + 1] + w1 * x[xi + 5];
			a2 += w0 * x[xi + 2] + w1 * x[xi + 6];
			a3 += w0 * x[xi + 3] + w1 * x[xi + 7];
		}
		if (k + 128 < K) {
			const w0 = w[row + k + 128] * nw[k + 128];
			const w1 = w[row + k + 129] * nw[k + 129];
			const xi = (xb + k + 128) * 4;
			a0 += w0 * x[xi] + w1 * x[xi + 4];
			a1 += w0 * x[xi + 1] + w1 * x[xi + 5];
			a2 += w0 * x[xi + 2] + w1 * x[xi + 6];
			a3 += w0 * x[xi + 3] + w1 * x[xi + 7];
		}
		if (k + 256 < K) {
			const w0 = w[row + k + 256] * nw[k + 256];
			const w1 = w[row + k + 257] * nw[k + 257];
			const xi = (xb + k + 256) * 4;
			a0 += w0 * x[xi] + w1 * x[xi + 4];
			a1 += w0 * x[xi + 1] + w1 * x[xi + 5];
			a2 += w0 * x[xi + 2] + w1 * x[xi + 6];
			a3 += w0 * x[xi + 3] + w1 * x[xi + 7];
		}
		if (k + 384 < K) {
			const w0 = w[row + k + 384] * nw[k + 384];
			const w1 = w[row + k + 385] * nw[k + 385];
			const xi = (xb + k + 384) * 4;
			a0 += w0 * x[xi] + w1 * x[xi + 4];
			a1 += w0 * x[xi + 1] + w1 * x[xi + 5];
			a2 += w0 * x[xi + 2] + w1 * x[xi + 6];
			a3 += w0 * x[xi + 3] + w1 * x[xi + 7];
		}
	}
	return [a0, a1, a2, a3];
}
