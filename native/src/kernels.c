// The CPU kernels, written once with GCC/Clang vector extensions (VL = 8 floats per vector) and compiled once per
// instruction set:
//   generic  the compiler's baseline flags (SSE2 on x86-64, NEON on arm64);
//   avx2     -mavx2 -mfma: one ymm register per vector, a*b+c contracted to FMA.
// (A 16-float AVX-512 build was measured on Zen 4: projections no faster, the scan 1.5x slower; not kept.)
//
// Determinism: every output of a projection is one VL-lane accumulator chain over k in order, then the same fixed
// horizontal-sum tree, whatever tile computed it and however many tokens the call has; the scan, the conv and the
// epilogues are lane-wise, so a channel's result does not depend on the block it falls in. Hence a prefill of T
// tokens and T single steps give bit-identical results on one instruction set (the builds round differently).
#include "kernels.h"

#include <math.h>
#include <stdint.h>
#include <string.h>
#if defined(__AVX__)
#include <immintrin.h>
#endif

#ifndef MB_ISA
#define MB_ISA generic
#endif
#define MB_CAT2(a, b) a##_##b
#define MB_CAT(a, b) MB_CAT2(a, b)
#define MB_STR2(a) #a
#define MB_STR(a) MB_STR2(a)

#define VL 8

typedef float vf __attribute__((vector_size(VL * 4)));
typedef int32_t vi __attribute__((vector_size(VL * 4)));
typedef float vfu __attribute__((vector_size(VL * 4), aligned(4), may_alias));

#define INLINE static inline __attribute__((always_inline))

INLINE vf ld(const float *p) { return *(const vfu *)p; }
INLINE void st(float *p, vf v) { *(vfu *)p = v; }
INLINE vf splat(float s) {
	vf v;
	for (int i = 0; i < VL; i++) v[i] = s;
	return v;
}
/** The first n < VL floats at p, the rest zero. */
INLINE vf ld_part(const float *p, int n) {
	vf v = splat(0.f);
	for (int i = 0; i < n; i++) v[i] = p[i];
	return v;
}
INLINE void st_part(float *p, vf v, int n) {
	for (int i = 0; i < n; i++) p[i] = v[i];
}
/** n floats at p: a full vector when n == VL. */
INLINE vf ld_n(const float *p, int n) { return n == VL ? ld(p) : ld_part(p, n); }
INLINE void st_n(float *p, vf v, int n) {
	if (n == VL) st(p, v);
	else st_part(p, v, n);
}
INLINE vf as_f(vi v) { return (vf)v; }
INLINE vi as_i(vf v) { return (vi)v; }
/** m ? a : b, m a comparison mask (all ones or zeros per lane). */
INLINE vf sel(vi m, vf a, vf b) { return as_f((m & as_i(a)) | (~m & as_i(b))); }

// Horizontal sums: hsum's tree is ((v0+v4)+(v2+v6)) + ((v1+v5)+(v3+v7)); hsumv reduces 8 vectors at once (a
// transpose), each by exactly hsum's tree.
#if defined(__AVX__)
INLINE vf vmin(vf a, vf b) { return (vf)_mm256_min_ps((__m256)a, (__m256)b); }
INLINE vf vmax(vf a, vf b) { return (vf)_mm256_max_ps((__m256)a, (__m256)b); }
INLINE float hsum(vf v) {
	__m256 f = (__m256)v;
	__m128 s4 = _mm_add_ps(_mm256_castps256_ps128(f), _mm256_extractf128_ps(f, 1));
	__m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
	return _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
}
/** (hsum(a[0]), …, hsum(a[7])). */
INLINE vf hsumv(const vf *a) {
	const __m256 *f = (const __m256 *)a;
	__m256 u[4];
	for (int i = 0; i < 4; i++) {
		__m256 p = _mm256_permute2f128_ps(f[i], f[i + 4], 0x20); // [lo_i | lo_i+4]
		__m256 q = _mm256_permute2f128_ps(f[i], f[i + 4], 0x31); // [hi_i | hi_i+4]
		u[i] = _mm256_add_ps(p, q);                              // [s4_i | s4_i+4]
	}
	__m256 w01 = _mm256_add_ps(_mm256_shuffle_ps(u[0], u[1], 0x44), _mm256_shuffle_ps(u[0], u[1], 0xee));
	__m256 w23 = _mm256_add_ps(_mm256_shuffle_ps(u[2], u[3], 0x44), _mm256_shuffle_ps(u[2], u[3], 0xee));
	return (vf)_mm256_add_ps(_mm256_shuffle_ps(w01, w23, 0x88), _mm256_shuffle_ps(w01, w23, 0xdd));
}
#else
INLINE vf vmin(vf a, vf b) { return sel(a < b, a, b); }
INLINE vf vmax(vf a, vf b) { return sel(a > b, a, b); }
INLINE float hsum(vf v) { return ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7])); }
INLINE vf hsumv(const vf *a) {
	vf s;
	for (int i = 0; i < VL; i++) s[i] = hsum(a[i]);
	return s;
}
#endif

/**
 * e^x, about 1 ulp (Cephes expf): x = n ln2 + r, |r| <= ln2/2, e^r by a degree-6 polynomial, 2^n in the exponent.
 * x is clamped to [-87.3, 88.4]: below, the result is 1.2e-38 instead of a denormal or 0 (a difference no kernel
 * here can see); near the top it is +inf, as it should be (silu(v) for v < -88 is then v/inf = -0).
 */
INLINE vf vexp(vf x) {
	const vf hi = splat(88.3762626647949f), lo = splat(-87.3365447504f);
	x = vmin(vmax(x, lo), hi);
	const vf t = x * splat(1.44269504088896341f) + splat(12582912.f); // round to nearest through 1.5·2^23
	const vf n = t - splat(12582912.f);
	vf r = x - n * splat(0.693359375f);
	r = r - n * splat(-2.12194440e-4f);
	vf p = splat(1.9875691500E-4f);
	p = p * r + splat(1.3981999507E-3f);
	p = p * r + splat(8.3334519073E-3f);
	p = p * r + splat(4.1665795894E-2f);
	p = p * r + splat(1.6666665459E-1f);
	p = p * r + splat(5.0000001201E-1f);
	p = p * (r * r) + r + splat(1.f);
	return p * as_f((as_i(t) - as_i(splat(12582912.f)) + 127) << 23);
}

/** ln x for finite x > 0 (Cephes logf). */
INLINE vf vlog(vf x) {
	vi bits = as_i(x);
	vi e = ((bits >> 23) & 0xff) - 126;
	vf m = as_f((bits & 0x007fffff) | 0x3f000000); // [0.5, 1)
	vi small = m < splat(0.707106781186547524f);
	vf ef = __builtin_convertvector(e + small, vf); // e - 1 where small (masks are -1)
	m = sel(small, m + m, m) - splat(1.f);
	vf z = m * m;
	vf p = splat(7.0376836292E-2f);
	p = p * m + splat(-1.1514610310E-1f);
	p = p * m + splat(1.1676998740E-1f);
	p = p * m + splat(-1.2420140846E-1f);
	p = p * m + splat(1.4249322787E-1f);
	p = p * m + splat(-1.6668057665E-1f);
	p = p * m + splat(2.0000714765E-1f);
	p = p * m + splat(-2.4999993993E-1f);
	p = p * m + splat(3.3333331174E-1f);
	vf y = p * m * z;
	y = y + ef * splat(-2.12194440e-4f);
	y = y - z * splat(0.5f);
	return m + y + ef * splat(0.693359375f);
}

/** silu(v) = v / (1 + e^-v). */
INLINE vf vsilu(vf v) { return v / (splat(1.f) + vexp(-v)); }

/** softplus(v) = ln(1 + e^v), and v above 20. ln(1+u) via ln(w)·u/(w−1) with w = 1+u rounded (exact to ~1 ulp). */
INLINE vf vsoftplus(vf v) {
	vf u = vexp(vmin(v, splat(20.f)));
	vf w = splat(1.f) + u;
	vf d = w - splat(1.f);
	vi exact = d == splat(0.f);
	vf l = vlog(w) * (u / sel(exact, splat(1.f), d));
	l = sel(exact, u, l);
	return sel(v > splat(20.f), v, l);
}

// ---------------------------------------------------------------------------------------------------------------
// Projections. A tile computes RR output rows × TT tokens; its RR·TT accumulators live in registers and each
// VL-float load of a weight row feeds TT FMAs (each load of a token row feeds RR). 3 rows × 4 tokens fills the 16
// ymm registers of AVX2: 12 accumulators, 3 weight vectors, 1 token vector.
#define TILE_ROWS 3

// pf (optional): a block of weights to prefetch while this tile computes, `pf_step` 16.16 fixed-point floats per
// k-step (two lines when the step is above 16 floats). The weights of the next row tile come in while the current
// one still has work to hide the latency behind.
INLINE void tile(const mb_linear_args *a, int n, int t, const float *pf, unsigned pf_step, const int RR, const int TT) {
	const int K = a->K, S = a->S, N = a->N;
	const float *w[4], *x[4];
	vf acc[4][4];
	for (int r = 0; r < RR; r++) w[r] = a->W + (size_t)(n + r) * K;
	for (int j = 0; j < TT; j++) x[j] = a->x + (size_t)(t + j) * S;
	for (int r = 0; r < RR; r++)
		for (int j = 0; j < TT; j++) acc[r][j] = splat(0.f);
	int k = 0;
	size_t pos = 0;
	const int pf2 = pf_step > (16u << 16);
	for (; k + VL <= K; k += VL) {
		vf wv[4];
		for (int r = 0; r < RR; r++) wv[r] = ld(w[r] + k);
		if (pf) {
			__builtin_prefetch(pf + (pos >> 16));
			if (pf2) __builtin_prefetch(pf + (pos >> 16) + 16);
			pos += pf_step;
		}
		for (int j = 0; j < TT; j++) {
			vf xv = ld(x[j] + k);
			for (int r = 0; r < RR; r++) acc[r][j] += wv[r] * xv;
		}
	}
	if (k < K) {
		for (int j = 0; j < TT; j++) {
			vf xv = ld_part(x[j] + k, K - k);
			for (int r = 0; r < RR; r++) acc[r][j] += ld_part(w[r] + k, K - k) * xv;
		}
	}
	for (int j = 0; j < TT; j++) {
		float *y = a->y + (size_t)(t + j) * N + n;
		for (int r = 0; r < RR; r++) {
			float s = hsum(acc[r][j]);
			if (a->mode == MB_EPI_RESIDUAL) s += a->epi[(size_t)(t + j) * N + n + r];
			y[r] = s;
		}
	}
}

typedef void (*tile_fn)(const mb_linear_args *, int, int, const float *, unsigned);
#define TILE(RR, TT) \
	static void tile##RR##x##TT(const mb_linear_args *a, int n, int t, const float *pf, unsigned step) { tile(a, n, t, pf, step, RR, TT); }
TILE(1, 1) TILE(2, 1) TILE(3, 1) TILE(4, 1)
TILE(1, 2) TILE(2, 2) TILE(3, 2) TILE(4, 2)
TILE(1, 3) TILE(2, 3) TILE(3, 3) TILE(4, 3)
TILE(1, 4) TILE(2, 4) TILE(3, 4) TILE(4, 4)
static const tile_fn tiles[5][5] = {
	{0},
	{0, tile1x1, tile1x2, tile1x3, tile1x4},
	{0, tile2x1, tile2x2, tile2x3, tile2x4},
	{0, tile3x1, tile3x2, tile3x3, tile3x4},
	{0, tile4x1, tile4x2, tile4x3, tile4x4},
};

static void linear_rows(const mb_linear_args *a, int n0, int n1) {
	if (a->T == 1) {
		// One token: memory-bound; the hardware prefetcher follows 4 row streams better than software hints do.
		for (int n = n0; n < n1; n += 4) tiles[n1 - n < 4 ? n1 - n : 4][1](a, n, 0, NULL, 0);
	} else {
		// Rows outer, tokens inner: a tile's weight rows stay in L1 while every token passes over them; meanwhile
		// the next tile's rows (contiguous) are prefetched, a 1/groups share during each token group.
		const int K = a->K, R = TILE_ROWS, groups = (a->T + 3) / 4;
		const unsigned step = groups >= 2 ? (unsigned)(((unsigned)(R * VL) << 16) / groups) : 0;
		for (int n = n0; n < n1; n += R) {
			const int rr = n1 - n < R ? n1 - n : R;
			const float *next = step && n + 2 * R <= a->N ? a->W + (size_t)(n + R) * K : NULL;
			for (int t = 0, g = 0; t < a->T; t += 4, g++) {
				const float *pf = next ? next + (size_t)g * R * K / groups : NULL;
				tiles[rr][a->T - t < 4 ? a->T - t : 4](a, n, t, pf, step);
			}
		}
	}
	if (a->mode == MB_EPI_SOFTPLUS) {
		const int len = n1 - n0;
		for (int t = 0; t < a->T; t++) {
			float *y = a->y + (size_t)t * a->N + n0;
			const float *b = a->epi + n0;
			for (int i = 0; i < len; i += VL) {
				const int m = len - i < VL ? len - i : VL;
				st_n(y + i, vsoftplus(ld_n(y + i, m) + ld_n(b + i, m)), m);
			}
		}
	}
}

// ---------------------------------------------------------------------------------------------------------------
// The selective scan, channels c0..c1, in blocks of VL channels, time outer:
//   h[c, :] <- exp(Δ[t, c]·A[c, :])·h[c, :] + Δ[t, c]·x[t, c]·B[t, :];   y[t, c] = (h[c, :]·C[t, :] + D[c]·x[t, c])·silu(z[t, c])
// A channel's state (N floats) is a row of h, vectorised over n; the block's dot products h·C are reduced together,
// so y, the D skip and the silu(z) gate are computed VL channels at a time. Walking time in the outer loop keeps
// each row of Δ, x, z and y in use for one step only (a time-inner loop walks columns 8 KiB apart, which all fall
// into one L1 set). Most of the cost is the exps: E·N per step.

/** Channels c..c+nc-1 (nc <= VL) over every step; N = NV·VL. */
INLINE void scan_block(const mb_scan_args *a, int c, int nc, const int NV) {
	const int E = a->E, N = a->N, S = a->R + 2 * a->N;
	float *h = a->h + (size_t)c * N;
	const float *A = a->A + (size_t)c * N;
	const vf D = ld_n(a->D + c, nc);
	for (int t = 0; t < a->T; t++) {
		const float *dt = a->delta + (size_t)t * E + c, *x = a->xs + (size_t)t * E + c;
		const float *B = a->dbc + (size_t)t * S + a->R, *C = B + N;
		vf Bv[4], Cv[4];
		for (int v = 0; v < NV && v < 4; v++) {
			Bv[v] = ld(B + VL * v);
			Cv[v] = ld(C + VL * v);
		}
		vf acc[VL];
		for (int i = 0; i < VL; i++) acc[i] = splat(0.f);
#pragma GCC unroll 1 // unrolled, the 8 channels' temporaries spill out of the 16 registers
		for (int i = 0; i < nc; i++) {
			const vf dti = splat(dt[i]), dtx = splat(dt[i] * x[i]);
			float *hp = h + (size_t)i * N;
			const float *Ap = A + (size_t)i * N;
			for (int v = 0; v < NV; v++) {
				const vf Bn = v < 4 ? Bv[v] : ld(B + VL * v), Cn = v < 4 ? Cv[v] : ld(C + VL * v);
				const vf hv = vexp(dti * ld(Ap + VL * v)) * ld(hp + VL * v) + dtx * Bn;
				st(hp + VL * v, hv);
				acc[i] += hv * Cn;
			}
		}
		const vf zv = ld_n(a->xz + (size_t)t * 2 * E + E + c, nc);
		st_n(a->y + (size_t)t * E + c, (hsumv(acc) + D * ld_n(x, nc)) * vsilu(zv), nc);
	}
}

/** N not a multiple of VL, or above 64: scalar, one channel at a time. */
static void scan_channel_any(const mb_scan_args *a, int c) {
	const int E = a->E, N = a->N, S = a->R + 2 * a->N;
	float *h = a->h + (size_t)c * N;
	const float *A = a->A + (size_t)c * N;
	for (int t = 0; t < a->T; t++) {
		const float dt = a->delta[(size_t)t * E + c], x = a->xs[(size_t)t * E + c];
		const float *B = a->dbc + (size_t)t * S + a->R, *C = B + N;
		float acc = a->D[c] * x;
		for (int n = 0; n < N; n++) {
			h[n] = expf(dt * A[n]) * h[n] + dt * B[n] * x;
			acc += h[n] * C[n];
		}
		const float z = a->xz[(size_t)t * 2 * E + E + c];
		a->y[(size_t)t * E + c] = acc * (z / (1 + expf(-z)));
	}
}

static void scan_channels(const mb_scan_args *a, int c0, int c1) {
	for (int c = c0; c < c1; c += VL) {
		const int nc = c1 - c < VL ? c1 - c : VL;
		if (a->N == 16 && nc == VL) scan_block(a, c, VL, 16 / VL); // the common case, fully specialised
		else if (a->N == 16) scan_block(a, c, nc, 16 / VL);
		else if (a->N % VL == 0 && a->N <= 64) scan_block(a, c, nc, a->N / VL);
		else
			for (int i = 0; i < nc; i++) scan_channel_any(a, c + i);
	}
}

// ---------------------------------------------------------------------------------------------------------------
// Causal depthwise conv + SiLU, channels c0..c1 in blocks of VL, time inner with the last k inputs in registers.
// Earlier positions come from the conv state (E, k-1).

#define MAX_CONV 8

INLINE void conv_block(const mb_conv_args *a, int c, int nc, const int k) {
	const int E = a->E, m = k - 1;
	vf w[MAX_CONV], win[MAX_CONV]; // win[j] = x at time t - m + j
	for (int j = 0; j < k; j++) {
		w[j] = splat(0.f);
		win[j] = splat(0.f);
		for (int i = 0; i < nc; i++) {
			w[j][i] = a->w[(size_t)(c + i) * k + j];
			if (j < m) win[j][i] = a->state[(size_t)(c + i) * m + j];
		}
	}
	const vf b = ld_n(a->b + c, nc);
	for (int t = 0; t < a->T; t++) {
		win[m] = ld_n(a->xz + (size_t)t * 2 * E + c, nc);
		vf acc = b;
		for (int j = 0; j < k; j++) acc += w[j] * win[j];
		st_n(a->y + (size_t)t * E + c, vsilu(acc), nc);
		for (int j = 0; j < m; j++) win[j] = win[j + 1];
	}
}

/** Kernel widths above MAX_CONV: scalar. */
static void conv_any(const mb_conv_args *a, int c0, int c1) {
	const int E = a->E, k = a->k, m = a->k - 1;
	for (int t = 0; t < a->T; t++) {
		for (int c = c0; c < c1; c++) {
			float acc = a->b[c];
			for (int j = 0; j < k; j++) {
				const int s = t - m + j;
				acc += a->w[(size_t)c * k + j] * (s >= 0 ? a->xz[(size_t)s * 2 * E + c] : a->state[(size_t)c * m + m + s]);
			}
			a->y[(size_t)t * E + c] = acc / (1 + expf(-acc));
		}
	}
}

static void conv_channels(const mb_conv_args *a, int c0, int c1) {
	if (a->k > MAX_CONV) {
		conv_any(a, c0, c1);
		return;
	}
	for (int c = c0; c < c1; c += VL) {
		const int nc = c1 - c < VL ? c1 - c : VL;
		switch (a->k) {
		case 4: conv_block(a, c, nc, 4); break;
		case 3: conv_block(a, c, nc, 3); break;
		case 2: conv_block(a, c, nc, 2); break;
		default: conv_block(a, c, nc, a->k); break;
		}
	}
}

// ---------------------------------------------------------------------------------------------------------------
// RMSNorm / LayerNorm of rows t0..t1, statistics in double.

static void norm_rows(const mb_norm_args *a, int t0, int t1) {
	const int d = a->d;
	for (int t = t0; t < t1; t++) {
		const float *x = a->x + (size_t)t * d;
		float *y = a->y + (size_t)t * d;
		double mean = 0;
		if (a->b) {
			for (int j = 0; j < d; j++) mean += x[j];
			mean /= d;
		}
		double q = 0;
		for (int j = 0; j < d; j++) q += (x[j] - mean) * (x[j] - mean);
		const double rstd = 1 / sqrt(q / d + a->eps);
		if (a->b) {
			for (int j = 0; j < d; j++) y[j] = (float)((x[j] - mean) * rstd * a->w[j] + a->b[j]);
		} else {
			for (int j = 0; j < d; j++) y[j] = (float)(x[j] * rstd * a->w[j]);
		}
	}
}

const mb_kernels MB_CAT(mb_kernels, MB_ISA) = {
	.name = MB_STR(MB_ISA),
	.linear = linear_rows,
	.scan = scan_channels,
	.conv = conv_channels,
	.norm = norm_rows,
};
