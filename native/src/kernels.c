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
INLINE v8f vmin(v8f a, v8f b) { return sel(a < b, a, b); }
INLINE v8f vmax(v8f a, v8f b) { return sel(a > b, a, b); }

/** The fixed horizontal-sum tree. */
INLINE float hsum(v8f v) { return ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7])); }

/** e^x, about 1 ulp (Cephes expf): x = n ln2 + r, |r| <= ln2/2, e^r by a degree-6 polynomial, 2^n in the exponent. */
INLINE v8f vexp(v8f x) {
	const v8f hi = splat(88.3762626647949f), lo = splat(-87.3365447504f);
	v8f xc = vmin(vmax(x, lo), hi);
	v8f t = xc * splat(1.44269504088896341f) + splat(12582912.f); // round to nearest through the 1.5*2^23 trick
	v8f n = t - splat(12582912.f);
	v8f r = xc - n * splat(0.693359375f);
	r = r - n * splat(-2.12194440e-4f);
	v8f p = splat(1.9875691500E-4f);
	p = p * r + splat(1.3981999507E-3f);
	p = p * r + splat(8.3334519073E-3f);
	p = p * r + splat(4.1665795894E-2f);
	p = p * r + splat(1.6666665459E-1f);
	p = p * r + splat(5.0000001201E-1f);
	p = p * (r * r) + r + splat(1.f);
	v8i e = (as_i(t) - as_i(splat(12582912.f)) + 127) << 23;
	v8f y = p * as_f(e);
	y = sel(x < lo, splat(0.f), y);
	return sel(x > hi, splat(INFINITY), y);
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

INLINE void tile(const mb_linear_args *a, int n, int t, const int RR, const int TT) {
	const int K = a->K, S = a->S, N = a->N;
	const float *w[4], *x[4];
	v8f acc[4][4];
	for (int r = 0; r < RR; r++) w[r] = a->W + (size_t)(n + r) * K;
	for (int j = 0; j < TT; j++) x[j] = a->x + (size_t)(t + j) * S;
	for (int r = 0; r < RR; r++)
		for (int j = 0; j < TT; j++) acc[r][j] = splat(0.f);
	int k = 0;
	for (; k + 8 <= K; k += 8) {
		v8f wv[4];
		for (int r = 0; r < RR; r++) wv[r] = ld(w[r] + k);
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

#define TILE(RR, TT) static void MB_CAT(tile##RR##x##TT, MB_ISA)(const mb_linear_args *a, int n, int t) { tile(a, n, t, RR, TT); }
TILE(1, 1) TILE(2, 1) TILE(3, 1) TILE(4, 1)
TILE(1, 2) TILE(2, 2) TILE(3, 2)
TILE(1, 3) TILE(2, 3) TILE(3, 3)
TILE(1, 4) TILE(2, 4) TILE(3, 4)
#define T_(RR, TT) MB_CAT(tile##RR##x##TT, MB_ISA)

typedef void (*tile_fn)(const mb_linear_args *, int, int);

static void linear_rows(const mb_linear_args *a, int n0, int n1) {
	if (a->T == 1) {
		static const tile_fn by_rows[5] = {0, T_(1, 1), T_(2, 1), T_(3, 1), T_(4, 1)};
		for (int n = n0; n < n1; n += 4) by_rows[n1 - n < 4 ? n1 - n : 4](a, n, 0);
	} else {
		static const tile_fn grid[4][5] = {
			{0},
			{0, T_(1, 1), T_(1, 2), T_(1, 3), T_(1, 4)},
			{0, T_(2, 1), T_(2, 2), T_(2, 3), T_(2, 4)},
			{0, T_(3, 1), T_(3, 2), T_(3, 3), T_(3, 4)},
		};
		// Rows outer, tokens inner: a tile's 3 weight rows stay in L1 while every token passes over them.
		for (int n = n0; n < n1; n += 3) {
			int rr = n1 - n < 3 ? n1 - n : 3;
			for (int t = 0; t < a->T; t += 4) grid[rr][a->T - t < 4 ? a->T - t : 4](a, n, t);
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
// The selective scan, channels c0..c1: the state of a channel (N floats) stays in registers for the whole chunk.
//   h[c, :] <- exp(Δ[t, c]·A[c, :])·h[c, :] + Δ[t, c]·x[t, c]·B[t, :];   y[t, c] = (h[c, :]·C[t, :] + D[c]·x[t, c])·silu(z[t, c])

INLINE void scan_channel_vec(const mb_scan_args *a, int c, const int NV) {
	const int E = a->E, N = a->N, S = a->R + 2 * a->N;
	v8f h[8], A[8];
	for (int v = 0; v < NV; v++) {
		h[v] = ld(a->h + (size_t)c * N + 8 * v);
		A[v] = ld(a->A + (size_t)c * N + 8 * v);
	}
	const float Dc = a->D[c];
	for (int t = 0; t < a->T; t++) {
		const float dt = a->delta[(size_t)t * E + c], x = a->xs[(size_t)t * E + c];
		const float *B = a->dbc + (size_t)t * S + a->R, *C = B + N;
		const v8f dtx = splat(dt * x), dtv = splat(dt);
		v8f acc = splat(0.f);
		for (int v = 0; v < NV; v++) {
			h[v] = vexp(dtv * A[v]) * h[v] + dtx * ld(B + 8 * v);
			acc += h[v] * ld(C + 8 * v);
		}
		a->y[(size_t)t * E + c] = hsum(acc) + Dc * x;
	}
	for (int v = 0; v < NV; v++) st(a->h + (size_t)c * N + 8 * v, h[v]);
}

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
		a->y[(size_t)t * E + c] = acc;
	}
}

/** y[t, c0..c1) *= silu(g[t, c0..c1)), rows of y with stride ys and of g with stride gs. */
static void gate_silu(float *y, size_t ys, const float *g, size_t gs, int T, int len) {
	for (int t = 0; t < T; t++) {
		float *yr = y + (size_t)t * ys;
		const float *gr = g + (size_t)t * gs;
		int i = 0;
		for (; i + 8 <= len; i += 8) st(yr + i, ld(yr + i) * vsilu(ld(gr + i)));
		if (i < len) st_part(yr + i, ld_part(yr + i, len - i) * vsilu(ld_part(gr + i, len - i)), len - i);
	}
}

/** y[t, 0..len) = silu(y[t, 0..len)), rows with stride ys. */
static void silu_rows(float *y, size_t ys, int T, int len) {
	for (int t = 0; t < T; t++) {
		float *yr = y + (size_t)t * ys;
		int i = 0;
		for (; i + 8 <= len; i += 8) st(yr + i, vsilu(ld(yr + i)));
		if (i < len) st_part(yr + i, vsilu(ld_part(yr + i, len - i)), len - i);
	}
}

static void scan_channels(const mb_scan_args *a, int c0, int c1) {
	if (a->N == 16) {
		for (int c = c0; c < c1; c++) scan_channel_vec(a, c, 2);
	} else if (a->N % 8 == 0 && a->N <= 64) {
		for (int c = c0; c < c1; c++) scan_channel_vec(a, c, a->N / 8);
	} else {
		for (int c = c0; c < c1; c++) scan_channel_any(a, c);
	}
	gate_silu(a->y + c0, a->E, a->xz + a->E + c0, 2 * (size_t)a->E, a->T, c1 - c0);
}

// ---------------------------------------------------------------------------------------------------------------
// Causal depthwise conv + SiLU, channels c0..c1. Earlier positions come from the conv state (E, k-1).

static void conv_channels(const mb_conv_args *a, int c0, int c1) {
	const int E = a->E, k = a->k, m = a->k - 1;
	for (int t = 0; t < a->T; t++) {
		float *y = a->y + (size_t)t * E;
		for (int c = c0; c < c1; c++) {
			const float *w = a->w + (size_t)c * k;
			float acc = a->b[c];
			for (int j = 0; j < k; j++) {
				const int s = t - m + j;
				acc += w[j] * (s >= 0 ? a->xz[(size_t)s * 2 * E + c] : a->state[(size_t)c * m + m + s]);
			}
			y[c] = acc;
		}
	}
	silu_rows(a->y + c0, E, a->T, c1 - c0);
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
