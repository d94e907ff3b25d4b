// The CPU kernels, written once with GCC/Clang vector extensions (8 floats per vector) and compiled once per
// instruction set: MB_ISA=generic with the compiler's baseline flags (SSE2 on x86-64, NEON on arm64), and
// MB_ISA=avx2 with -mavx2 -mfma (one ymm register per vector, a*b+c contracted to FMA).
//
// Determinism: every output of a projection is one 8-lane accumulator chain over k in order, then the same fixed
// horizontal-sum tree, whatever tile computed it and however many tokens the call has. So a prefill of T tokens and
// T single steps give bit-identical projections; the other kernels are per position too. That is what makes
// "prefill == stepping" hold exactly (on one instruction set; FMA and non-FMA builds round differently).
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

typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
typedef float v8fu __attribute__((vector_size(32), aligned(4), may_alias));

#define INLINE static inline __attribute__((always_inline))

INLINE v8f ld(const float *p) { return *(const v8fu *)p; }
INLINE void st(float *p, v8f v) { *(v8fu *)p = v; }
INLINE v8f splat(float s) { return (v8f){s, s, s, s, s, s, s, s}; }
/** The first n < 8 floats at p, the rest zero. */
INLINE v8f ld_part(const float *p, int n) {
	v8f v = splat(0.f);
	for (int i = 0; i < n; i++) v[i] = p[i];
	return v;
}
INLINE void st_part(float *p, v8f v, int n) {
	for (int i = 0; i < n; i++) p[i] = v[i];
}
INLINE v8f as_f(v8i v) { return (v8f)v; }
INLINE v8i as_i(v8f v) { return (v8i)v; }
/** m ? a : b, m a comparison mask (all ones or zeros per lane). */
INLINE v8f sel(v8i m, v8f a, v8f b) { return as_f((m & as_i(a)) | (~m & as_i(b))); }
#if defined(__AVX__)
INLINE v8f vmin(v8f a, v8f b) { return (v8f)_mm256_min_ps((__m256)a, (__m256)b); }
INLINE v8f vmax(v8f a, v8f b) { return (v8f)_mm256_max_ps((__m256)a, (__m256)b); }
/** The fixed horizontal-sum tree ((v0+v4)+(v2+v6)) + ((v1+v5)+(v3+v7)), in registers. */
INLINE float hsum(v8f v) {
	__m128 s4 = _mm_add_ps(_mm256_castps256_ps128((__m256)v), _mm256_extractf128_ps((__m256)v, 1));
	__m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
	return _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
}
#else
INLINE v8f vmin(v8f a, v8f b) { return sel(a < b, a, b); }
INLINE v8f vmax(v8f a, v8f b) { return sel(a > b, a, b); }
/** The fixed horizontal-sum tree. */
INLINE float hsum(v8f v) { return ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7])); }
#endif

/**
 * e^x, about 1 ulp (Cephes expf): x = n ln2 + r, |r| <= ln2/2, e^r by a degree-6 polynomial, 2^n in the exponent.
 * x is clamped to [-87.3, 88.4]: below, the result is 1.2e-38 instead of a denormal or 0 (a difference no kernel
 * here can see); near the top it is +inf, as it should be (silu(v) for v < -88 is then v/inf = -0).
 */
INLINE v8f vexp(v8f x) {
	const v8f hi = splat(88.3762626647949f), lo = splat(-87.3365447504f);
	x = vmin(vmax(x, lo), hi);
	const v8f t = x * splat(1.44269504088896341f) + splat(12582912.f); // round to nearest through 1.5·2^23
	const v8f n = t - splat(12582912.f);
	v8f r = x - n * splat(0.693359375f);
	r = r - n * splat(-2.12194440e-4f);
	v8f p = splat(1.9875691500E-4f);
	p = p * r + splat(1.3981999507E-3f);
	p = p * r + splat(8.3334519073E-3f);
	p = p * r + splat(4.1665795894E-2f);
	p = p * r + splat(1.6666665459E-1f);
	p = p * r + splat(5.0000001201E-1f);
	p = p * (r * r) + r + splat(1.f);
	return p * as_f((as_i(t) - as_i(splat(12582912.f)) + 127) << 23);
}

/** ln x for finite x > 0 (Cephes logf). */
INLINE v8f vlog(v8f x) {
	v8i bits = as_i(x);
	v8i e = ((bits >> 23) & 0xff) - 126;
	v8f m = as_f((bits & 0x007fffff) | 0x3f000000); // [0.5, 1)
	v8i small = m < splat(0.707106781186547524f);
	v8f ef = __builtin_convertvector(e + small, v8f); // e - 1 where small (masks are -1)
	m = sel(small, m + m, m) - splat(1.f);
	v8f z = m * m;
	v8f p = splat(7.0376836292E-2f);
	p = p * m + splat(-1.1514610310E-1f);
	p = p * m + splat(1.1676998740E-1f);
	p = p * m + splat(-1.2420140846E-1f);
	p = p * m + splat(1.4249322787E-1f);
	p = p * m + splat(-1.6668057665E-1f);
	p = p * m + splat(2.0000714765E-1f);
	p = p * m + splat(-2.4999993993E-1f);
	p = p * m + splat(3.3333331174E-1f);
	v8f y = p * m * z;
	y = y + ef * splat(-2.12194440e-4f);
	y = y - z * splat(0.5f);
	return m + y + ef * splat(0.693359375f);
}

/** silu(v) = v / (1 + e^-v). */
INLINE v8f vsilu(v8f v) { return v / (splat(1.f) + vexp(-v)); }

/** softplus(v) = ln(1 + e^v), and v above 20. ln(1+u) via ln(w)·u/(w−1) with w = 1+u rounded (exact to ~1 ulp). */
INLINE v8f vsoftplus(v8f v) {
	v8f u = vexp(vmin(v, splat(20.f)));
	v8f w = splat(1.f) + u;
	v8f d = w - splat(1.f);
	v8i exact = d == splat(0.f);
	v8f l = vlog(w) * (u / sel(exact, splat(1.f), d));
	l = sel(exact, u, l);
	return sel(v > splat(20.f), v, l);
}

// ---------------------------------------------------------------------------------------------------------------
// Projections. A tile computes RR output rows × TT tokens; its RR·TT accumulators live in registers and each
// 8-float load of a weight row feeds TT FMAs (each load of a token row feeds RR).

// pf (optional): a block of weights to prefetch while this tile computes, `pf_step` 16.16 fixed-point floats per
// k-step. The weights of the next row tile are pulled in while the current one still has work to overlap with.
INLINE void tile(const mb_linear_args *a, int n, int t, const float *pf, unsigned pf_step, const int RR, const int TT) {
	const int K = a->K, S = a->S, N = a->N;
	const float *w[4], *x[4];
	v8f acc[4][4];
	for (int r = 0; r < RR; r++) w[r] = a->W + (size_t)(n + r) * K;
	for (int j = 0; j < TT; j++) x[j] = a->x + (size_t)(t + j) * S;
	for (int r = 0; r < RR; r++)
		for (int j = 0; j < TT; j++) acc[r][j] = splat(0.f);
	int k = 0;
	size_t pos = 0;
	for (; k + 8 <= K; k += 8) {
		v8f wv[4];
		for (int r = 0; r < RR; r++) wv[r] = ld(w[r] + k);
		if (pf) {
			__builtin_prefetch(pf + (pos >> 16));
			pos += pf_step;
		}
		for (int j = 0; j < TT; j++) {
			v8f xv = ld(x[j] + k);
			for (int r = 0; r < RR; r++) acc[r][j] += wv[r] * xv;
		}
	}
	if (k < K) {
		for (int j = 0; j < TT; j++) {
			v8f xv = ld_part(x[j] + k, K - k);
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

#define TILE(RR, TT) \
	static void MB_CAT(tile##RR##x##TT, MB_ISA)(const mb_linear_args *a, int n, int t, const float *pf, unsigned step) { \
		tile(a, n, t, pf, step, RR, TT); \
	}
TILE(1, 1) TILE(2, 1) TILE(3, 1) TILE(4, 1)
TILE(1, 2) TILE(2, 2) TILE(3, 2)
TILE(1, 3) TILE(2, 3) TILE(3, 3)
TILE(1, 4) TILE(2, 4) TILE(3, 4)
#define T_(RR, TT) MB_CAT(tile##RR##x##TT, MB_ISA)

typedef void (*tile_fn)(const mb_linear_args *, int, int, const float *, unsigned);

static void linear_rows(const mb_linear_args *a, int n0, int n1) {
	if (a->T == 1) {
		static const tile_fn by_rows[5] = {0, T_(1, 1), T_(2, 1), T_(3, 1), T_(4, 1)};
		// One token: memory-bound; the hardware prefetcher follows the 4 row streams better than software hints.
		for (int n = n0; n < n1; n += 4) by_rows[n1 - n < 4 ? n1 - n : 4](a, n, 0, NULL, 0);
	} else {
		static const tile_fn grid[4][5] = {
			{0},
			{0, T_(1, 1), T_(1, 2), T_(1, 3), T_(1, 4)},
			{0, T_(2, 1), T_(2, 2), T_(2, 3), T_(2, 4)},
			{0, T_(3, 1), T_(3, 2), T_(3, 3), T_(3, 4)},
		};
		// Rows outer, tokens inner: a tile's 3 weight rows stay in L1 while every token passes over them, and
		// meanwhile the next 3 rows (3K floats, contiguous) are prefetched, a 1/groups share per token group.
		const int K = a->K, groups = (a->T + 3) / 4;
		const unsigned step = groups >= 2 ? (unsigned)((24u << 16) / groups) : 0;
		for (int n = n0; n < n1; n += 3) {
			const int rr = n1 - n < 3 ? n1 - n : 3;
			const float *next = step && n + 6 <= a->N ? a->W + (size_t)(n + 3) * K : NULL;
			for (int t = 0, g = 0; t < a->T; t += 4, g++) {
				const float *pf = next ? next + (size_t)g * 3 * K / groups : NULL;
				grid[rr][a->T - t < 4 ? a->T - t : 4](a, n, t, pf, step);
			}
		}
	}
	if (a->mode == MB_EPI_SOFTPLUS) {
		const int len = n1 - n0;
		for (int t = 0; t < a->T; t++) {
			float *y = a->y + (size_t)t * a->N + n0;
			const float *b = a->epi + n0;
			int i = 0;
			for (; i + 8 <= len; i += 8) st(y + i, vsoftplus(ld(y + i) + ld(b + i)));
			if (i < len) st_part(y + i, vsoftplus(ld_part(y + i, len - i) + ld_part(b + i, len - i)), len - i);
		}
	}
}

// ---------------------------------------------------------------------------------------------------------------
// The selective scan, channels c0..c1, in blocks of 8 channels, time outer:
//   h[c, :] <- exp(Δ[t, c]·A[c, :])·h[c, :] + Δ[t, c]·x[t, c]·B[t, :];   y[t, c] = (h[c, :]·C[t, :] + D[c]·x[t, c])·silu(z[t, c])
// A channel's state (N floats) is a row of h, vectorised over n; the 8 channels' dot products h·C are reduced
// together, so y, the D skip and the silu(z) gate are computed 8 channels at a time. Walking time in the outer loop
// keeps every row of Δ, x, z and y in use for one step only (channel-outer with a time-inner loop walks columns
// 8 KiB apart, which all fall into one L1 set).

/** (hsum(a[0]), …, hsum(a[7])), each by hsum's tree. */
INLINE v8f hsum8(const v8f *a) {
#if defined(__AVX__)
	__m256 u[4];
	for (int i = 0; i < 4; i++) {
		__m256 p = _mm256_permute2f128_ps((__m256)a[i], (__m256)a[i + 4], 0x20); // [lo_i | lo_i+4]
		__m256 q = _mm256_permute2f128_ps((__m256)a[i], (__m256)a[i + 4], 0x31); // [hi_i | hi_i+4]
		u[i] = _mm256_add_ps(p, q); // [s4_i | s4_i+4]
	}
	__m256 w01 = _mm256_add_ps(_mm256_shuffle_ps(u[0], u[1], 0x44), _mm256_shuffle_ps(u[0], u[1], 0xee)); // [s2_0 s2_1 | s2_4 s2_5]
	__m256 w23 = _mm256_add_ps(_mm256_shuffle_ps(u[2], u[3], 0x44), _mm256_shuffle_ps(u[2], u[3], 0xee)); // [s2_2 s2_3 | s2_6 s2_7]
	return (v8f)_mm256_add_ps(_mm256_shuffle_ps(w01, w23, 0x88), _mm256_shuffle_ps(w01, w23, 0xdd));
#else
	return (v8f){hsum(a[0]), hsum(a[1]), hsum(a[2]), hsum(a[3]), hsum(a[4]), hsum(a[5]), hsum(a[6]), hsum(a[7])};
#endif
}

/** Channels c..c+nc-1 (nc <= 8) over every step; N a multiple of 8, at most 64. */
INLINE void scan_block(const mb_scan_args *a, int c, int nc, const int NV) {
	const int E = a->E, N = a->N, S = a->R + 2 * a->N;
	float *h = a->h + (size_t)c * N;
	const float *A = a->A + (size_t)c * N;
	const v8f D = nc == 8 ? ld(a->D + c) : ld_part(a->D + c, nc);
	for (int t = 0; t < a->T; t++) {
		const float *dt = a->delta + (size_t)t * E + c, *x = a->xs + (size_t)t * E + c;
		const float *B = a->dbc + (size_t)t * S + a->R, *C = B + N;
		v8f acc[8];
		for (int i = 0; i < 8; i++) acc[i] = splat(0.f);
		for (int i = 0; i < nc; i++) {
			const v8f dti = splat(dt[i]), dtx = splat(dt[i] * x[i]);
			for (int v = 0; v < NV; v++) {
				float *hp = h + (size_t)i * N + 8 * v;
				const v8f hv = vexp(dti * ld(A + (size_t)i * N + 8 * v)) * ld(hp) + dtx * ld(B + 8 * v);
				st(hp, hv);
				acc[i] += hv * ld(C + 8 * v);
			}
		}
		const v8f xv = nc == 8 ? ld(x) : ld_part(x, nc);
		const float *z = a->xz + (size_t)t * 2 * E + E + c;
		const v8f zv = nc == 8 ? ld(z) : ld_part(z, nc);
		const v8f y = (hsum8(acc) + D * xv) * vsilu(zv);
		if (nc == 8) st(a->y + (size_t)t * E + c, y);
		else st_part(a->y + (size_t)t * E + c, y, nc);
	}
}

/** The common case, 8 channels with N = 16: the same arithmetic as scan_block, written so that the loop over the
 *  8 channels keeps B and C in registers. About 27 cycles per channel and step on Zen 4, most of it the 2 exps. */
static void scan_block8_n16(const mb_scan_args *a, int c) {
	const int E = a->E, S = a->R + 32;
	float *h = a->h + (size_t)c * 16;
	const float *A = a->A + (size_t)c * 16;
	const v8f D = ld(a->D + c);
	for (int t = 0; t < a->T; t++) {
		const float *dt = a->delta + (size_t)t * E + c, *x = a->xs + (size_t)t * E + c;
		const float *B = a->dbc + (size_t)t * S + a->R;
		const v8f B0 = ld(B), B1 = ld(B + 8), C0 = ld(B + 16), C1 = ld(B + 24);
		v8f acc[8];
#pragma GCC unroll 1
		for (int i = 0; i < 8; i++) {
			const v8f dti = splat(dt[i]), dtx = splat(dt[i] * x[i]);
			float *hp = h + 16 * i;
			const v8f h0 = vexp(dti * ld(A + 16 * i)) * ld(hp) + dtx * B0;
			const v8f h1 = vexp(dti * ld(A + 16 * i + 8)) * ld(hp + 8) + dtx * B1;
			st(hp, h0);
			st(hp + 8, h1);
			acc[i] = splat(0.f) + h0 * C0 + h1 * C1;
		}
		const v8f y = (hsum8(acc) + D * ld(x)) * vsilu(ld(a->xz + (size_t)t * 2 * E + E + c));
		st(a->y + (size_t)t * E + c, y);
	}
}

/** Any N (not a multiple of 8, or above 64): scalar, one channel at a time. */
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
	for (int c = c0; c < c1; c += 8) {
		const int nc = c1 - c < 8 ? c1 - c : 8;
		if (a->N == 16 && nc == 8) scan_block8_n16(a, c);
		else if (a->N == 16) scan_block(a, c, nc, 2);
		else if (a->N % 8 == 0 && a->N <= 64) scan_block(a, c, nc, a->N / 8);
		else
			for (int i = 0; i < nc; i++) scan_channel_any(a, c + i);
	}
}

// ---------------------------------------------------------------------------------------------------------------
// Causal depthwise conv + SiLU, channels c0..c1 in blocks of 8, time inner with the last k inputs in registers.
// Earlier positions come from the conv state (E, k-1).

#define MAX_CONV 8

INLINE void conv_block(const mb_conv_args *a, int c, int nc, const int k) {
	const int E = a->E, m = k - 1;
	v8f w[MAX_CONV], win[MAX_CONV]; // win[j] = x at time t - m + j
	for (int j = 0; j < k; j++) {
		w[j] = splat(0.f);
		win[j] = splat(0.f);
		for (int i = 0; i < nc; i++) {
			w[j][i] = a->w[(size_t)(c + i) * k + j];
			if (j < m) win[j][i] = a->state[(size_t)(c + i) * m + j];
		}
	}
	const v8f b = nc == 8 ? ld(a->b + c) : ld_part(a->b + c, nc);
	for (int t = 0; t < a->T; t++) {
		const float *xr = a->xz + (size_t)t * 2 * E + c;
		win[m] = nc == 8 ? ld(xr) : ld_part(xr, nc);
		v8f acc = b;
		for (int j = 0; j < k; j++) acc += w[j] * win[j];
		const v8f y = vsilu(acc);
		if (nc == 8) st(a->y + (size_t)t * E + c, y);
		else st_part(a->y + (size_t)t * E + c, y, nc);
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
	for (int c = c0; c < c1; c += 8) {
		const int nc = c1 - c < 8 ? c1 - c : 8;
		switch (a->k) {
		case 4: conv_block(a, c, nc, 4); break;
		case 2: conv_block(a, c, nc, 2); break;
		case 3: conv_block(a, c, nc, 3); break;
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
