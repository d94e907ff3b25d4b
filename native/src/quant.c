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

// Tiles: RR weight rows × TT tokens (RR·TT <= 4 accumulator chains: 4 rows for one token, else 1 row for up to 4
// tokens), out[r·TT + j]. Each (row, token) pair has its own accumulator, fed block by block in order, so a result
// is the same whichever tile shape computed it. Compile-time RR and TT (always_inline, constant arguments) keep
// the accumulators in registers.
#define TILE_ARGS const mb_qlinear_args *a, int n, int t, float *out
#define ROW(r) (a->W + (size_t)(n + (r)) * a->row_bytes)
#define XB(j, b) (a->xq + (size_t)(t + (j)) * (a->K / 32) + (b))

INLINE void tile_q8_0(TILE_ARGS, const int RR, const int TT) {
	__m256 acc[4] = {0};
	for (int b = 0; b < a->K / 32; b++) {
		__m256i w[4], u[4];
		float d[4];
		for (int r = 0; r < RR; r++) {
			const uint8_t *p = ROW(r) + 34 * b;
			w[r] = _mm256_loadu_si256((const __m256i *)(p + 2));
			u[r] = _mm256_sign_epi8(w[r], w[r]);
			d[r] = half(p);
		}
		for (int j = 0; j < TT; j++) {
			const mb_q8x *xb = XB(j, b);
			const __m256i xv = ldq(xb->q);
			for (int r = 0; r < RR; r++) {
				const __m256i s = dot_us(u[r], _mm256_sign_epi8(xv, w[r]));
				acc[r * TT + j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(d[r] * xb->d), acc[r * TT + j]);
			}
		}
	}
	for (int i = 0; i < RR * TT; i++) out[i] = hsum8(acc[i]);
}

INLINE void tile_q4_0(TILE_ARGS, const int RR, const int TT) {
	__m256 acc[4] = {0};
	float off[4] = {0};
	const __m256i lo = _mm256_set1_epi8(0xf);
	for (int b = 0; b < a->K / 32; b++) {
		__m256i u[4];
		float d[4];
		for (int r = 0; r < RR; r++) {
			const uint8_t *p = ROW(r) + 18 * b;
			const __m128i qs = _mm_loadu_si128((const __m128i *)(p + 2));
			u[r] = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(qs, 4), qs), lo);
			d[r] = half(p);
		}
		for (int j = 0; j < TT; j++) {
			const mb_q8x *xb = XB(j, b);
			const __m256i xv = ldq(xb->q);
			const int xs = xb->s[0] + xb->s[1];
			for (int r = 0; r < RR; r++) {
				const float dd = d[r] * xb->d;
				acc[r * TT + j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_us(u[r], xv)), _mm256_set1_ps(dd), acc[r * TT + j]);
				off[r * TT + j] += dd * xs;
			}
		}
	}
	for (int i = 0; i < RR * TT; i++) out[i] = hsum8(acc[i]) - 8 * off[i];
}

INLINE void tile_q4_k(TILE_ARGS, const int RR, const int TT) {
	__m256 acc[4] = {0};
	float off[4] = {0};
	const __m256i lo = _mm256_set1_epi8(0xf);
	for (int sb = 0; sb < a->K / 256; sb++) {
		float ds[4][8], dm[4][8];
		for (int r = 0; r < RR; r++) {
			const uint8_t *p = ROW(r) + 144 * sb;
			const float d = half(p), dmin = half(p + 2);
			for (int i = 0; i < 8; i++) {
				int sc, m;
				scale_min_k4(i, p + 4, &sc, &m);
				ds[r][i] = d * sc;
				dm[r][i] = dmin * m;
			}
		}
		for (int c = 0; c < 4; c++) {
			__m256i u0[4], u1[4];
			for (int r = 0; r < RR; r++) {
				const __m256i q = _mm256_loadu_si256((const __m256i *)(ROW(r) + 144 * sb + 16 + 32 * c));
				u0[r] = _mm256_and_si256(q, lo);
				u1[r] = _mm256_and_si256(_mm256_srli_epi16(q, 4), lo);
			}
			for (int j = 0; j < TT; j++) {
				const mb_q8x *x0 = XB(j, 8 * sb + 2 * c), *x1 = x0 + 1;
				const __m256i xv0 = ldq(x0->q), xv1 = ldq(x1->q);
				const float s0 = x0->d * (x0->s[0] + x0->s[1]), s1 = x1->d * (x1->s[0] + x1->s[1]);
				for (int r = 0; r < RR; r++) {
					const int i = r * TT + j;
					acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_us(u0[r], xv0)), _mm256_set1_ps(ds[r][2 * c] * x0->d), acc[i]);
					acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_us(u1[r], xv1)), _mm256_set1_ps(ds[r][2 * c + 1] * x1->d), acc[i]);
					off[i] += dm[r][2 * c] * s0 + dm[r][2 * c + 1] * s1;
				}
			}
		}
	}
	for (int i = 0; i < RR * TT; i++) out[i] = hsum8(acc[i]) - off[i];
}

// q6_k: per-16 scales, so the pair sums (maddubs) are multiplied by the scales (madd) instead of by ones.
INLINE void tile_q6_k(TILE_ARGS, const int RR, const int TT) {
	__m256 acc[4] = {0};
	float off[4] = {0};
	const __m256i lo = _mm256_set1_epi8(0xf), hb = _mm256_set1_epi8(0x30);
	for (int sb = 0; sb < a->K / 256; sb++) {
		for (int n2 = 0; n2 < 2; n2++) {
			__m256i u[4][4];
			float d[4];
			const int8_t *sc[4];
			for (int r = 0; r < RR; r++) {
				const uint8_t *p = ROW(r) + 210 * sb;
				const __m256i qa = _mm256_loadu_si256((const __m256i *)(p + 64 * n2));
				const __m256i qb = _mm256_loadu_si256((const __m256i *)(p + 64 * n2 + 32));
				const __m256i h = _mm256_loadu_si256((const __m256i *)(p + 128 + 32 * n2));
				u[r][0] = _mm256_or_si256(_mm256_and_si256(qa, lo), _mm256_and_si256(_mm256_slli_epi16(h, 4), hb));
				u[r][1] = _mm256_or_si256(_mm256_and_si256(qb, lo), _mm256_and_si256(_mm256_slli_epi16(h, 2), hb));
				u[r][2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qa, 4), lo), _mm256_and_si256(h, hb));
				u[r][3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qb, 4), lo), _mm256_and_si256(_mm256_srli_epi16(h, 2), hb));
				d[r] = half(p + 208);
				sc[r] = (const int8_t *)(p + 192) + 8 * n2;
			}
			for (int g = 0; g < 4; g++) {
				for (int j = 0; j < TT; j++) {
					const mb_q8x *xb = XB(j, 8 * sb + 4 * n2 + g);
					const __m256i xv = ldq(xb->q);
					for (int r = 0; r < RR; r++) {
						const int s0 = sc[r][2 * g], s1 = sc[r][2 * g + 1], i = r * TT + j;
						const __m256i scv = _mm256_set_m128i(_mm_set1_epi16((short)s1), _mm_set1_epi16((short)s0));
						const __m256i prod = _mm256_madd_epi16(_mm256_maddubs_epi16(u[r][g], xv), scv);
						const float dd = d[r] * xb->d;
						acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(prod), _mm256_set1_ps(dd), acc[i]);
						off[i] += dd * 32 * (s0 * xb->s[0] + s1 * xb->s[1]);
					}
				}
			}
		}
	}
	for (int i = 0; i < RR * TT; i++) out[i] = hsum8(acc[i]) - off[i];
}

/** 8 weights as floats. */
INLINE __m256 ld_w16(int qtype, const uint8_t *p) {
	const __m128i h = _mm_loadu_si128((const __m128i *)p);
	if (qtype == MB_Q_F16) return _mm256_cvtph_ps(h);
	return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

INLINE void tile_half(TILE_ARGS, const int RR, const int TT, const int qtype) {
	__m256 acc[4] = {0};
	const int K = a->K;
	int k = 0;
	for (; k + 8 <= K; k += 8) {
		__m256 w[4];
		for (int r = 0; r < RR; r++) w[r] = ld_w16(qtype, ROW(r) + 2 * k);
		for (int j = 0; j < TT; j++) {
			const __m256 xv = _mm256_loadu_ps(a->x + (size_t)(t + j) * a->S + k);
			for (int r = 0; r < RR; r++) acc[r * TT + j] = _mm256_fmadd_ps(w[r], xv, acc[r * TT + j]);
		}
	}
	for (int r = 0; r < RR; r++)
		for (int j = 0; j < TT; j++) {
			out[r * TT + j] = hsum8(acc[r * TT + j]);
			if (k < K) out[r * TT + j] += dot_float_portable(qtype, ROW(r) + 2 * k, a->x + (size_t)(t + j) * a->S + k, K - k);
		}
}
INLINE void tile_f16(TILE_ARGS, const int RR, const int TT) { tile_half(a, n, t, out, RR, TT, MB_Q_F16); }
INLINE void tile_bf16(TILE_ARGS, const int RR, const int TT) { tile_half(a, n, t, out, RR, TT, MB_Q_BF16); }

typedef void (*tile_fn)(TILE_ARGS);
#define SHAPES(T) \
	static void T##_4x1(TILE_ARGS) { tile_##T(a, n, t, out, 4, 1); } \
	static void T##_3x1(TILE_ARGS) { tile_##T(a, n, t, out, 3, 1); } \
	static void T##_2x1(TILE_ARGS) { tile_##T(a, n, t, out, 2, 1); } \
	static void T##_1x1(TILE_ARGS) { tile_##T(a, n, t, out, 1, 1); } \
	static void T##_1x2(TILE_ARGS) { tile_##T(a, n, t, out, 1, 2); } \
	static void T##_1x3(TILE_ARGS) { tile_##T(a, n, t, out, 1, 3); } \
	static void T##_1x4(TILE_ARGS) { tile_##T(a, n, t, out, 1, 4); } \
	static const tile_fn T##_tiles[2][5] = {{0, T##_1x1, T##_2x1, T##_3x1, T##_4x1}, {0, T##_1x1, T##_1x2, T##_1x3, T##_1x4}};
SHAPES(q8_0)
SHAPES(q4_0)
SHAPES(q4_k)
SHAPES(q6_k)
SHAPES(f16)
SHAPES(bf16)

/** [rows | tokens][count] tiles of a type with a vector path; NULL otherwise. */
static const tile_fn (*vector_tiles(int qtype))[5] {
	switch (qtype) {
	case MB_Q_Q8_0: return q8_0_tiles;
	case MB_Q_Q4_0: return q4_0_tiles;
	case MB_Q_Q4_K: return q4_k_tiles;
	case MB_Q_Q6_K: return q6_k_tiles;
	case MB_Q_F16: return f16_tiles;
	case MB_Q_BF16: return bf16_tiles;
	default: return NULL;
	}
}
#endif

// ---- rows × tokens, epilogue -------------------------------------------------------------------------------------

/** out[i] for output (row n + i/TT, token t + i%TT): the epilogue, then store. */
static void store(const mb_qlinear_args *a, int n, int t, int RR, int TT, const float *out) {
	for (int r = 0; r < RR; r++)
		for (int j = 0; j < TT; j++) {
			float v = out[r * TT + j];
			const size_t at = (size_t)(t + j) * a->N + n + r;
			if (a->mode == MB_EPI_RESIDUAL) v += a->epi[at];
			else if (a->mode == MB_EPI_SOFTPLUS) v = mb_softplus(v + a->epi[n + r]);
			a->y[at] = v;
		}
}

static void qlinear_rows(const mb_qlinear_args *a, int n0, int n1) {
	const int nbx = a->K / 32, qt = a->qtype;
	float out[GROUP];
#if defined(__AVX2__)
	const tile_fn(*tiles)[5] = vector_tiles(qt);
	if (tiles && a->T == 1) { // one token: 4 rows at a time (4 independent chains, x read once per block)
		for (int n = n0; n < n1; n += 4) {
			const int RR = n1 - n < 4 ? n1 - n : 4;
			tiles[0][RR](a, n, 0, out);
			store(a, n, 0, RR, 1, out);
		}
		return;
	}
	if (tiles) { // one row at a time (in L1 while up to 4 tokens pass over it)
		for (int n = n0; n < n1; n++)
			for (int t = 0; t < a->T; t += GROUP) {
				const int TT = a->T - t < GROUP ? a->T - t : GROUP;
				tiles[1][TT](a, n, t, out);
				store(a, n, t, 1, TT, out);
			}
		return;
	}
#endif
	for (int n = n0; n < n1; n++) {
		const uint8_t *row = a->W + (size_t)n * a->row_bytes;
		for (int t = 0; t < a->T; t++) {
			out[0] = mb_q_uses_q8x(qt) ? dot_portable(qt, row, a->xq + (size_t)t * nbx, a->K)
			                           : dot_float_portable(qt, row, a->x + (size_t)t * a->S, a->K);
			store(a, n, t, 1, 1, out);
		}
	}
}

const mb_qkernels MB_CAT(mb_qkernels, MB_ISA) = {
	.name = MB_STR(MB_ISA),
	.qlinear = qlinear_rows,
};
