// The quantized projections (quant.h), compiled once per instruction set (MB_ISA: generic, avx2, avx512).
//
// Every type has a portable path: a 32-value block is unpacked to integer codes c with, per half of 16 values, a
// float scale and offset (value = scale·c + offset), and dotted with x's int8 block in integers; it is what the
// generic build runs and what the others run for the types without a vector path. The vector paths (AVX2, and
// AVX-512 VNNI's dpbusd on 256-bit vectors) cover q8_0, q4_0, q4_k, q6_k (the types llama-quantize writes most),
// f16 and bf16; each computes one weight row against up to 4 tokens, so a block is unpacked once per 4 tokens.
// A row's result does not depend on how the rows are split between threads, nor on which 4-token group a token
// falls in (each token has its own accumulator, in block order), so T single steps equal one T-token call.
#include "quant.h"

#include <math.h>
#include <string.h>

#include "kernels.h"
#if defined(__AVX2__)
#include <immintrin.h>
#endif

#ifndef MB_ISA
#define MB_ISA generic
#endif
#define MB_CAT2(a, b) a##_##b
#define MB_CAT(a, b) MB_CAT2(a, b)
#define MB_STR2(a) #a
#define MB_STR(a) MB_STR2(a)
#define INLINE static inline __attribute__((always_inline))
#define GROUP 4 // tokens per pass over a row

#if defined(__F16C__)
INLINE float half(const uint8_t *p) { return _cvtsh_ss((unsigned short)(p[0] | p[1] << 8)); }
#else
INLINE float half(const uint8_t *p) { return mb_f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }
#endif

static void scale_min_k4(int j, const uint8_t *q, int *d, int *m) {
	if (j < 4) {
		*d = q[j] & 63;
		*m = q[j + 4] & 63;
	} else {
		*d = (q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4);
		*m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
	}
}

// ---- portable: unpack a 32-value block, dot in integers ----------------------------------------------------------

/** Block b (of 32 values) of a row: codes c, and per half h value = sc[h]·c + off[h]. */
static void unpack32(int qtype, const uint8_t *row, int b, int c[32], float sc[2], float off[2]) {
	switch (qtype) {
	case MB_Q_Q8_0: {
		const uint8_t *p = row + 34 * b;
		sc[0] = sc[1] = half(p);
		off[0] = off[1] = 0;
		for (int i = 0; i < 32; i++) c[i] = (int8_t)p[2 + i];
		return;
	}
	case MB_Q_Q4_0: case MB_Q_Q4_1: {
		const int q41 = qtype == MB_Q_Q4_1;
		const uint8_t *p = row + (q41 ? 20 : 18) * b, *qs = p + (q41 ? 4 : 2);
		const float d = half(p);
		sc[0] = sc[1] = d;
		off[0] = off[1] = q41 ? half(p + 2) : -8 * d;
		for (int i = 0; i < 16; i++) {
			c[i] = qs[i] & 0xf;
			c[i + 16] = qs[i] >> 4;
		}
		return;
	}
	case MB_Q_Q5_0: case MB_Q_Q5_1: {
		const int q51 = qtype == MB_Q_Q5_1;
		const uint8_t *p = row + (q51 ? 24 : 22) * b, *h = p + (q51 ? 4 : 2), *qs = h + 4;
		const uint32_t qh = h[0] | h[1] << 8 | h[2] << 16 | (uint32_t)h[3] << 24;
		const float d = half(p);
		sc[0] = sc[1] = d;
		off[0] = off[1] = q51 ? half(p + 2) : -16 * d;
		for (int i = 0; i < 16; i++) {
			c[i] = (qs[i] & 0xf) | (((qh >> i) << 4) & 0x10);
			c[i + 16] = (qs[i] >> 4) | ((qh >> (i + 12)) & 0x10);
		}
		return;
	}
	case MB_Q_Q4_K: case MB_Q_Q5_K: {
		const int q5 = qtype == MB_Q_Q5_K;
		const uint8_t *p = row + (q5 ? 176 : 144) * (b / 8), *qh = p + 16, *ql = p + (q5 ? 48 : 16);
		const int j = (b % 8) / 2, hi = b % 2; // 64-value chunk j; low or high nibbles
		int s, m;
		scale_min_k4(b % 8, p + 4, &s, &m);
		sc[0] = sc[1] = half(p) * s;
		off[0] = off[1] = -half(p + 2) * m;
		for (int l = 0; l < 32; l++) {
			const int nib = hi ? ql[32 * j + l] >> 4 : ql[32 * j + l] & 0xf;
			c[l] = nib + (q5 && (qh[l] & ((1 + hi) << 2 * j)) ? 16 : 0);
		}
		return;
	}
	case MB_Q_Q6_K: {
		const uint8_t *p = row + 210 * (b / 8);
		const int n = (b % 8) / 4, g = b % 4; // 128-value half n, group g of 32
		const uint8_t *ql = p + 64 * n + (g & 1 ? 32 : 0), *qh = p + 128 + 32 * n;
		const int8_t *s = (const int8_t *)(p + 192) + 8 * n + 2 * g;
		const float d = half(p + 208);
		for (int l = 0; l < 32; l++) c[l] = ((g & 2 ? ql[l] >> 4 : ql[l] & 0xf) | ((qh[l] >> 2 * g) & 3) << 4) - 32;
		sc[0] = d * s[0];
		sc[1] = d * s[1];
		off[0] = off[1] = 0;
		return;
	}
	default: // the float types never come here (dot_float_portable)
		memset(c, 0, 32 * sizeof *c);
		sc[0] = sc[1] = off[0] = off[1] = 0;
	}
}

static float dot_portable(int qtype, const uint8_t *row, const mb_q8x *x, int K) {
	float sum = 0;
	int c[32];
	float sc[2], off[2];
	for (int b = 0; b < K / 32; b++) {
		unpack32(qtype, row, b, c, sc, off);
		int s0 = 0, s1 = 0;
		for (int i = 0; i < 16; i++) s0 += c[i] * x[b].q[i];
		for (int i = 16; i < 32; i++) s1 += c[i] * x[b].q[i];
		sum += x[b].d * (sc[0] * s0 + sc[1] * s1 + off[0] * x[b].s[0] + off[1] * x[b].s[1]);
	}
	return sum;
}

/** f32 / f16 / bf16 weights against float x. */
static float dot_float_portable(int qtype, const uint8_t *row, const float *x, int K) {
	float sum = 0;
	for (int k = 0; k < K; k++) {
		float w;
		if (qtype == MB_Q_F32) memcpy(&w, row + 4 * k, 4);
		else if (qtype == MB_Q_F16) w = half(row + 2 * k);
		else {
			const uint32_t bits = (uint32_t)(row[2 * k] | row[2 * k + 1] << 8) << 16;
			memcpy(&w, &bits, 4);
		}
		sum += w * x[k];
	}
	return sum;
}

// ---- vector paths ------------------------------------------------------------------------------------------------
#if defined(__AVX2__)

/** Σ of u8·s8 products in 8 int32 lanes (each lane: 4 adjacent bytes). */
INLINE __m256i dot_us(__m256i u, __m256i s) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
	return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
#else
	return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
#endif
}

INLINE float hsum8(__m256 v) {
	__m128 s4 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	__m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
	return _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
}

INLINE __m256i ldq(const int8_t *q) { return _mm256_loadu_si256((const __m256i *)q); }

// Each: row against tokens x[0], x[nbx], … (TT of them, nbx blocks per token), results in out[0..TT).
static void rows_q8_0(const uint8_t *row, const mb_q8x *x, int nbx, int nb, int TT, float *out) {
	__m256 acc[GROUP];
	for (int j = 0; j < TT; j++) acc[j] = _mm256_setzero_ps();
	for (int b = 0; b < nb; b++) {
		const uint8_t *p = row + 34 * b;
		const __m256i w = _mm256_loadu_si256((const __m256i *)(p + 2)), u = _mm256_sign_epi8(w, w);
		const float d = half(p);
		for (int j = 0; j < TT; j++) {
			const mb_q8x *xb = x + (size_t)j * nbx + b;
			const __m256i s = dot_us(u, _mm256_sign_epi8(ldq(xb->q), w));
			acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(d * xb->d), acc[j]);
		}
	}
	for (int j = 0; j < TT; j++) out[j] = hsum8(acc[j]);
}

static void rows_q4_0(const uint8_t *row, const mb_q8x *x, int nbx, int nb, int TT, float *out) {
	__m256 acc[GROUP];
	float off[GROUP] = {0};
	const __m256i lo = _mm256_set1_epi8(0xf);
	for (int j = 0; j < TT; j++) acc[j] = _mm256_setzero_ps();
	for (int b = 0; b < nb; b++) {
		const uint8_t *p = row + 18 * b;
		const __m128i qs = _mm_loadu_si128((const __m128i *)(p + 2));
		const __m256i u = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(qs, 4), qs), lo);
		const float d = half(p);
		for (int j = 0; j < TT; j++) {
			const mb_q8x *xb = x + (size_t)j * nbx + b;
			const float dd = d * xb->d;
			acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_us(u, ldq(xb->q))), _mm256_set1_ps(dd), acc[j]);
			off[j] += dd * (xb->s[0] + xb->s[1]);
		}
	}
	for (int j = 0; j < TT; j++) out[j] = hsum8(acc[j]) - 8 * off[j];
}

static void rows_q4_k(const uint8_t *row, const mb_q8x *x, int nbx, int nb, int TT, float *out) {
	__m256 acc[GROUP];
	float off[GROUP] = {0};
	const __m256i lo = _mm256_set1_epi8(0xf);
	for (int j = 0; j < TT; j++) acc[j] = _mm256_setzero_ps();
	for (int sb = 0; sb < nb / 8; sb++) {
		const uint8_t *p = row + 144 * sb;
		const float d = half(p), dmin = half(p + 2);
		int s[8], m[8];
		for (int i = 0; i < 8; i++) scale_min_k4(i, p + 4, &s[i], &m[i]);
		for (int c = 0; c < 4; c++) {
			const __m256i q = _mm256_loadu_si256((const __m256i *)(p + 16 + 32 * c));
			const __m256i u0 = _mm256_and_si256(q, lo), u1 = _mm256_and_si256(_mm256_srli_epi16(q, 4), lo);
			for (int j = 0; j < TT; j++) {
				const mb_q8x *x0 = x + (size_t)j * nbx + 8 * sb + 2 * c, *x1 = x0 + 1;
				const __m256 a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_us(u0, ldq(x0->q))), _mm256_set1_ps(d * s[2 * c] * x0->d), acc[j]);
				acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_us(u1, ldq(x1->q))), _mm256_set1_ps(d * s[2 * c + 1] * x1->d), a);
				off[j] += dmin * (m[2 * c] * x0->d * (x0->s[0] + x0->s[1]) + m[2 * c + 1] * x1->d * (x1->s[0] + x1->s[1]));
			}
		}
	}
	for (int j = 0; j < TT; j++) out[j] = hsum8(acc[j]) - off[j];
}

// q6_k: per-16 scales, so the pair sums (maddubs) are multiplied by the scales (madd) instead of by ones.
static void rows_q6_k(const uint8_t *row, const mb_q8x *x, int nbx, int nb, int TT, float *out) {
	__m256 acc[GROUP];
	float off[GROUP] = {0};
	const __m256i lo = _mm256_set1_epi8(0xf), hb = _mm256_set1_epi8(0x30);
	for (int j = 0; j < TT; j++) acc[j] = _mm256_setzero_ps();
	for (int sb = 0; sb < nb / 8; sb++) {
		const uint8_t *p = row + 210 * sb;
		const int8_t *sc = (const int8_t *)(p + 192);
		const float d = half(p + 208);
		for (int n = 0; n < 2; n++) {
			const __m256i qa = _mm256_loadu_si256((const __m256i *)(p + 64 * n));
			const __m256i qb = _mm256_loadu_si256((const __m256i *)(p + 64 * n + 32));
			const __m256i h = _mm256_loadu_si256((const __m256i *)(p + 128 + 32 * n));
			__m256i u[4];
			u[0] = _mm256_or_si256(_mm256_and_si256(qa, lo), _mm256_and_si256(_mm256_slli_epi16(h, 4), hb));
			u[1] = _mm256_or_si256(_mm256_and_si256(qb, lo), _mm256_and_si256(_mm256_slli_epi16(h, 2), hb));
			u[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qa, 4), lo), _mm256_and_si256(h, hb));
			u[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qb, 4), lo), _mm256_and_si256(_mm256_srli_epi16(h, 2), hb));
			for (int g = 0; g < 4; g++) {
				const int s0 = sc[8 * n + 2 * g], s1 = sc[8 * n + 2 * g + 1];
				const __m256i scv = _mm256_set_m128i(_mm_set1_epi16((short)s1), _mm_set1_epi16((short)s0));
				for (int j = 0; j < TT; j++) {
					const mb_q8x *xb = x + (size_t)j * nbx + 8 * sb + 4 * n + g;
					const __m256i prod = _mm256_madd_epi16(_mm256_maddubs_epi16(u[g], ldq(xb->q)), scv);
					const float dd = d * xb->d;
					acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(prod), _mm256_set1_ps(dd), acc[j]);
					off[j] += dd * 32 * (s0 * xb->s[0] + s1 * xb->s[1]);
				}
			}
		}
	}
	for (int j = 0; j < TT; j++) out[j] = hsum8(acc[j]) - off[j];
}

/** 8 weights as floats. */
INLINE __m256 ld_w16(int qtype, const uint8_t *p) {
	const __m128i h = _mm_loadu_si128((const __m128i *)p);
	if (qtype == MB_Q_F16) return _mm256_cvtph_ps(h);
	return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

static void rows_float16(int qtype, const uint8_t *row, const float *x, int S, int K, int TT, float *out) {
	__m256 acc[GROUP];
	for (int j = 0; j < TT; j++) acc[j] = _mm256_setzero_ps();
	int k = 0;
	for (; k + 8 <= K; k += 8) {
		const __m256 w = ld_w16(qtype, row + 2 * k);
		for (int j = 0; j < TT; j++) acc[j] = _mm256_fmadd_ps(w, _mm256_loadu_ps(x + (size_t)j * S + k), acc[j]);
	}
	for (int j = 0; j < TT; j++) {
		out[j] = hsum8(acc[j]);
		if (k < K) out[j] += dot_float_portable(qtype, row + 2 * k, x + (size_t)j * S + k, K - k);
	}
}
#endif

// ---- rows × tokens, epilogue -------------------------------------------------------------------------------------

static void qlinear_rows(const mb_qlinear_args *a, int n0, int n1) {
	const int nbx = a->K / 32, qt = a->qtype;
	for (int n = n0; n < n1; n++) {
		const uint8_t *row = a->W + (size_t)n * a->row_bytes;
		for (int t = 0; t < a->T; t += GROUP) {
			const int TT = a->T - t < GROUP ? a->T - t : GROUP;
			const mb_q8x *x = mb_q_uses_q8x(qt) ? a->xq + (size_t)t * nbx : NULL;
			float out[GROUP];
			switch (qt) {
#if defined(__AVX2__)
			case MB_Q_Q8_0: rows_q8_0(row, x, nbx, nbx, TT, out); break;
			case MB_Q_Q4_0: rows_q4_0(row, x, nbx, nbx, TT, out); break;
			case MB_Q_Q4_K: rows_q4_k(row, x, nbx, nbx, TT, out); break;
			case MB_Q_Q6_K: rows_q6_k(row, x, nbx, nbx, TT, out); break;
			case MB_Q_F16: case MB_Q_BF16: rows_float16(qt, row, a->x + (size_t)t * a->S, a->S, a->K, TT, out); break;
#endif
			default:
				for (int j = 0; j < TT; j++)
					out[j] = x ? dot_portable(qt, row, x + (size_t)j * nbx, a->K)
					           : dot_float_portable(qt, row, a->x + (size_t)(t + j) * a->S, a->K);
			}
			for (int j = 0; j < TT; j++) {
				float v = out[j];
				const size_t at = (size_t)(t + j) * a->N + n;
				if (a->mode == MB_EPI_RESIDUAL) v += a->epi[at];
				else if (a->mode == MB_EPI_SOFTPLUS) v = mb_softplus(v + a->epi[n]);
				a->y[at] = v;
			}
		}
	}
}

const mb_qkernels MB_CAT(mb_qkernels, MB_ISA) = {
	.name = MB_STR(MB_ISA),
	.qlinear = qlinear_rows,
};
