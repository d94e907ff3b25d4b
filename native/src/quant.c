// The quantized projections (quant.h), compiled once per instruction set (MB_ISA: generic, avx2, avx512).
//
// Every type has a portable path: a 32-value block is unpacked to integer codes c with, per half of 16 values, a
// float scale and offset (value = scale·c + offset), and dotted with x's int8 block in integers; it is what the
// generic build runs and what the others run for the types without a vector path. The vector paths cover q8_0,
// q4_0, q4_k, q6_k (the types llama-quantize writes most), f16 and bf16. q8_0, q4_0 and q4_k run on groups of rows packed
// so that lane r of every vector is row r (quant.h's mb_pack: 16 rows on AVX-512 VNNI, quant_wide.c; 8 on AVX2,
// below), from a copy the fused model makes once (step.h's mb_mat) or packed block by block as they go; each
// output is Σ over blocks, in order, of (exact integer sum)·d_w·d_x. The others run in tiles of up to 4 weight rows
// × 4 tokens: each block of the tile's rows is unpacked once for its tokens, each token's block loaded once for its
// rows (q6_k on 512-bit vectors in the AVX-512 build, the rest on 256-bit ones); each (row, token) output
// has its own accumulator, fed in block order and reduced by one fixed tree. The epilogues are lane-wise: a result
// does not depend on the tile that computed it, on how rows are split between
// threads, or on the number of tokens in the call, so T single steps equal one T-token call bit for bit.
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
// Tile shape: rows × tokens per pass over a weight row. One token is memory-bound (TILE_ROWS_1 rows at a time).
#ifndef TILE_ROWS
#define TILE_ROWS 4
#endif
#ifndef TILE_TOKENS
#define TILE_TOKENS 4
#endif
#ifndef TILE_ROWS_1
#define TILE_ROWS_1 4
#endif

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
#if defined(__AVX512VNNI__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#define WIDE 1 // q8_0, q4_k and q6_k on 512-bit vectors (quant_wide.c)
#endif

/** Σ of u8·s8 products in 8 int32 lanes (each lane: 4 adjacent bytes). */
INLINE __m256i dot_us(__m256i u, __m256i s) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
	return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
#else
	return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
#endif
}

INLINE __m256i ldq(const int8_t *q) { return _mm256_loadu_si256((const __m256i *)q); }

/**
 * The sums of a, b, c and d's 8 lanes as [a, b, c, d], each by the same tree ((0+1)+(2+3)) + ((4+5)+(6+7)): a
 * tile reduces its accumulators 4 at a time, and an output's sum does not depend on which others it shares them with.
 */
INLINE __m128 sum4x8(__m256 a, __m256 b, __m256 c, __m256 d) {
	const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
	return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

// Tiles: RR weight rows × TT tokens (RR, TT <= 4). Each (row, token) pair has its own accumulator, fed block by
// block in order and reduced by sum4x8, so a result is the same whichever tile shape computed it. A tile writes
// out[4·j + r] for token t + j and row n + r. Compile-time RR and TT (always_inline, constant arguments) keep the
// accumulators in registers.
#define TILE_ARGS const mb_qlinear_args *a, int n, int t, float *out
#define ROW(r) (a->W + (size_t)(n + (r)) * a->row_bytes)
#define XB(j, b) (a->xq + (size_t)(t + (j)) * (a->K / 32) + (b))

// How far ahead of a tile the next weights are prefetched, in tiles: the rows of a tile are RR streams, which the
// hardware prefetchers alone follow too late (measured on Zen 5: without it, tiles of 4 rows stream the weights
// slower than one row at a time, and memory-bound calls, T <= 4, lose what the tiles gain). One line per call: a
// tile calls it once per row and block of up to 64 bytes.
#ifndef PREFETCH_TILES
#define PREFETCH_TILES 4
#endif
INLINE void prefetch_ahead(const mb_qlinear_args *a, const uint8_t *p, int RR) {
	_mm_prefetch((const char *)p + PREFETCH_TILES * RR * a->row_bytes, _MM_HINT_T0);
}

/** out[4·j + r] = the lane sum of acc[r·TT + j] (8 lanes). */
INLINE void reduce8(const __m256 *acc, const int RR, const int TT, float *out) {
	const __m256 z = _mm256_setzero_ps();
	for (int j = 0; j < TT; j++)
		_mm_storeu_ps(out + 4 * j, sum4x8(acc[j], RR > 1 ? acc[TT + j] : z, RR > 2 ? acc[2 * TT + j] : z, RR > 3 ? acc[3 * TT + j] : z));
}

#if defined(WIDE)
#include "quant_wide.c"
#else
// q8_0, q4_0 and q4_k on AVX2: 8 rows at a time from the packed form (quant.h, mb_pack with G = 8): lane r of every vector
// is row r, x's 4 bytes for 4 columns broadcast. maddubs needs one unsigned operand and sums pairs of products in
// int16: q4_0's codes are unsigned (0..15; the sum starts at −8·Σx), and q8_0's weights have their signs moved onto x
// (|w|·sign(x, w): at most 2·128·127, no saturation; x is never −128); madd with ones then gives each lane's 4
// products in int32. A block's exact integer sums take one conversion and one multiply-add for all 8 rows, as on
// AVX-512 (the same arithmetic per output: the two builds agree on these types).
#define R8_TOKENS 4

/** One column quad: s[j] += the 4 products of lane r's u (unsigned) with x_j's 4 bytes at xoff (signs from w: q8_0). */
INLINE void r8_quad(const mb_qlinear_args *a, const int QT, __m256i u, __m256i w, int b, int t, int xoff, const int TT, __m256i *s) {
	const __m256i ones = _mm256_set1_epi16(1);
#pragma GCC unroll 4
	for (int j = 0; j < TT; j++) {
		int32_t x4;
		memcpy(&x4, XB(j, b)->q + xoff, 4);
		const __m256i xv = QT == MB_Q_Q4_0 ? _mm256_set1_epi32(x4) : _mm256_sign_epi8(_mm256_set1_epi32(x4), w);
		s[j] = _mm256_add_epi32(s[j], _mm256_madd_epi16(_mm256_maddubs_epi16(u, xv), ones));
	}
}

INLINE void r8_tile_q4_k(const mb_qlinear_args *a, int n, int RR, const uint8_t *p8, int t, const int TT, float *out);

/**
 * out[8·j + r] for row n + r (r < RR) and token t + j (j < TT), type QT (q8_0, q4_0; q4_k below): from the packed group at
 * p8, or with p8 NULL from a->W, each block packed here first (the per-operation path, on a matrix not packed).
 */
INLINE void r8_tile(const mb_qlinear_args *a, const int QT, int n, int RR, const uint8_t *p8, int t, const int TT, float *out) {
	if (QT == MB_Q_Q4_K) {
		r8_tile_q4_k(a, n, RR, p8, t, TT, out);
		return;
	}
	const int BB = QT == MB_Q_Q4_0 ? MB_PACK_BLOCK_Q4_0(8) : MB_PACK_BLOCK(8);
	__m256 acc[R8_TOKENS];
	for (int j = 0; j < TT; j++) acc[j] = _mm256_setzero_ps();
	const int nb = a->K / 32;
	uint8_t one[MB_PACK_BLOCK(8)] __attribute__((aligned(32)));
	for (int b = 0; b < nb; b++) {
		const uint8_t *p = one;
		if (p8) {
			p = p8 + (size_t)b * BB;
			for (int l = 0; l < BB; l += 64) _mm_prefetch((const char *)p + 8 * MB_PACK_BLOCK(8) + l, _MM_HINT_T0);
		} else mb_pack_block(QT, a->W + (size_t)n * a->row_bytes, a->row_bytes, RR, 8, b, one);
		__m256i s[R8_TOKENS];
		for (int j = 0; j < TT; j++) s[j] = _mm256_set1_epi32(QT == MB_Q_Q4_0 ? -8 * (XB(j, b)->s[0] + XB(j, b)->s[1]) : 0);
		if (QT == MB_Q_Q4_0) {
			const __m256i lo = _mm256_set1_epi8(0xf);
#pragma GCC unroll 4
			for (int k = 0; k < 4; k++) { // low nibbles: columns 4k..4k+3; high: 16 + 4k..
				const __m256i q = _mm256_load_si256((const __m256i *)(p + 32 + 32 * k));
				r8_quad(a, QT, _mm256_and_si256(q, lo), q, b, t, 4 * k, TT, s);
				r8_quad(a, QT, _mm256_and_si256(_mm256_srli_epi16(q, 4), lo), q, b, t, 16 + 4 * k, TT, s);
			}
		} else {
#pragma GCC unroll 8
			for (int k = 0; k < 8; k++) { // columns 4k..4k+3 for k < 4, then 16 + 4(k − 4)..
				const __m256i w = _mm256_load_si256((const __m256i *)(p + 32 + 32 * k));
				r8_quad(a, QT, _mm256_sign_epi8(w, w), w, b, t, k < 4 ? 4 * k : 16 + 4 * (k - 4), TT, s);
			}
		}
		const __m256 dw = _mm256_load_ps((const float *)p);
		for (int j = 0; j < TT; j++) acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s[j]), _mm256_mul_ps(dw, _mm256_set1_ps(XB(j, b)->d)), acc[j]);
	}
	for (int j = 0; j < TT; j++) _mm256_storeu_ps(out + 8 * j, acc[j]);
}
/** q4_k on 8 rows, per unit of 64 columns: as quant_wide.c's r16_tile_q4_k (the same arithmetic per output). */
INLINE void r8_tile_q4_k(const mb_qlinear_args *a, int n, int RR, const uint8_t *p8, int t, const int TT, float *out) {
	__m256 acc[R8_TOKENS];
	for (int j = 0; j < TT; j++) acc[j] = _mm256_setzero_ps();
	const __m256i lo = _mm256_set1_epi8(0xf);
	uint8_t one[MB_PACK_UNIT_Q4_K(8)] __attribute__((aligned(32)));
	for (int u = 0; u < a->K / 64; u++) {
		const uint8_t *p = one;
		if (p8) {
			p = p8 + (size_t)u * MB_PACK_UNIT_Q4_K(8);
			for (int l = 0; l < MB_PACK_UNIT_Q4_K(8); l += 64) _mm_prefetch((const char *)p + 8 * MB_PACK_BLOCK(8) + l, _MM_HINT_T0);
		} else mb_pack_block(MB_Q_Q4_K, a->W + (size_t)n * a->row_bytes, a->row_bytes, RR, 8, u, one);
		const float *f = (const float *)p;
		for (int h = 0; h < 2; h++) {
			__m256i s[R8_TOKENS];
			for (int j = 0; j < TT; j++) s[j] = _mm256_setzero_si256();
#pragma GCC unroll 8
			for (int k = 0; k < 8; k++) {
				const __m256i q = _mm256_load_si256((const __m256i *)(p + 128 + 32 * k));
				const __m256i w = h ? _mm256_and_si256(_mm256_srli_epi16(q, 4), lo) : _mm256_and_si256(q, lo);
				r8_quad(a, MB_Q_Q4_0, w, w, 2 * u + h, t, 4 * k, TT, s); // unsigned codes, x as it is (as q4_0)
			}
			const __m256 ds = _mm256_load_ps(f + 8 * h);
			for (int j = 0; j < TT; j++)
				acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s[j]), _mm256_mul_ps(ds, _mm256_set1_ps(XB(j, 2 * u + h)->d)), acc[j]);
		}
		const __m256 m0 = _mm256_load_ps(f + 16), m1 = _mm256_load_ps(f + 24);
		for (int j = 0; j < TT; j++) {
			const mb_q8x *x0 = XB(j, 2 * u), *x1 = x0 + 1;
			acc[j] = _mm256_fnmadd_ps(m0, _mm256_set1_ps(x0->d * (float)(x0->s[0] + x0->s[1])), acc[j]);
			acc[j] = _mm256_fnmadd_ps(m1, _mm256_set1_ps(x1->d * (float)(x1->s[0] + x1->s[1])), acc[j]);
		}
	}
	for (int j = 0; j < TT; j++) _mm256_storeu_ps(out + 8 * j, acc[j]);
}
typedef void (*r8_fn)(const mb_qlinear_args *, int, int, const uint8_t *, int, float *);
// Each type and token count twice: on a packed group, and packing from a->W (p8 NULL: the fast one has no stack block).
#define R8_SHAPE(T, QT, TT) \
	static void r8_##T##_##TT(const mb_qlinear_args *a, int n, int RR, const uint8_t *p8, int t, float *out) { \
		if (p8) r8_tile(a, QT, n, RR, p8, t, TT, out); \
		else r8_tile(a, QT, n, RR, NULL, t, TT, out); \
	}
#define R8_SHAPES(T, QT) \
	R8_SHAPE(T, QT, 1) R8_SHAPE(T, QT, 2) R8_SHAPE(T, QT, 3) R8_SHAPE(T, QT, 4) \
	static const r8_fn r8_##T[R8_TOKENS + 1] = {0, r8_##T##_1, r8_##T##_2, r8_##T##_3, r8_##T##_4};
R8_SHAPES(q8_0, MB_Q_Q8_0)
R8_SHAPES(q4_0, MB_Q_Q4_0)
R8_SHAPES(q4_k, MB_Q_Q4_K)
// what packed_rows (below) runs in this build
#define PACK_G 8
#define PACK_TOKENS R8_TOKENS
typedef r8_fn packed_fn;
static const packed_fn *packed_tiles(int qt) { return qt == MB_Q_Q4_0 ? r8_q4_0 : qt == MB_Q_Q4_K ? r8_q4_k : r8_q8_0; }

// q6_k: per-16 scales, so the pair sums (maddubs) are multiplied by the scales (madd) instead of by ones. One
// 32-value group at a time, so that the tile's rows need 4 registers, not 16.
INLINE void tile_q6_k(TILE_ARGS, const int RR, const int TT) {
	__m256 acc[16];
	float off[16] = {0};
	for (int i = 0; i < RR * TT; i++) acc[i] = _mm256_setzero_ps();
	const __m256i lo = _mm256_set1_epi8(0xf), hb = _mm256_set1_epi8(0x30);
	for (int sb = 0; sb < a->K / 256; sb++) {
		for (int n2 = 0; n2 < 2; n2++) {
			for (int g = 0; g < 4; g++) {
				__m256i u[4];
				float d[4];
				const int8_t *sc[4];
				for (int r = 0; r < RR; r++) {
					const uint8_t *p = ROW(r) + 210 * sb;
					if (g < 2 || n2 == 1) prefetch_ahead(a, p + (n2 == 0 ? 64 * g : g < 2 ? 128 + 64 * g : g == 2 ? 192 : 209), RR);
					const __m256i q = _mm256_loadu_si256((const __m256i *)(p + 64 * n2 + 32 * (g & 1)));
					const __m256i h = _mm256_loadu_si256((const __m256i *)(p + 128 + 32 * n2));
					const __m256i ql = g < 2 ? _mm256_and_si256(q, lo) : _mm256_and_si256(_mm256_srli_epi16(q, 4), lo);
					const __m256i qh = g == 0 ? _mm256_slli_epi16(h, 4) : g == 1 ? _mm256_slli_epi16(h, 2) : g == 2 ? h : _mm256_srli_epi16(h, 2);
					u[r] = _mm256_or_si256(ql, _mm256_and_si256(qh, hb));
					d[r] = half(p + 208);
					sc[r] = (const int8_t *)(p + 192) + 8 * n2;
				}
				for (int j = 0; j < TT; j++) {
					const mb_q8x *xb = XB(j, 8 * sb + 4 * n2 + g);
					const __m256i xv = ldq(xb->q);
					for (int r = 0; r < RR; r++) {
						const int s0 = sc[r][2 * g], s1 = sc[r][2 * g + 1], i = r * TT + j;
						const __m256i scv = _mm256_set_m128i(_mm_set1_epi16((short)s1), _mm_set1_epi16((short)s0));
						const __m256i prod = _mm256_madd_epi16(_mm256_maddubs_epi16(u[r], xv), scv);
						const float dd = d[r] * xb->d;
						acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(prod), _mm256_set1_ps(dd), acc[i]);
						off[i] += dd * 32 * (s0 * xb->s[0] + s1 * xb->s[1]);
					}
				}
			}
		}
	}
	reduce8(acc, RR, TT, out);
	for (int r = 0; r < RR; r++)
		for (int j = 0; j < TT; j++) out[4 * j + r] -= off[r * TT + j];
}
#endif

/** 8 weights as floats. */
INLINE __m256 ld_w16(int qtype, const uint8_t *p) {
	const __m128i h = _mm_loadu_si128((const __m128i *)p);
	if (qtype == MB_Q_F16) return _mm256_cvtph_ps(h);
	return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

INLINE void tile_half(TILE_ARGS, const int RR, const int TT, const int qtype) {
	__m256 acc[16];
	for (int i = 0; i < RR * TT; i++) acc[i] = _mm256_setzero_ps();
	const int K = a->K;
	int k = 0;
	for (; k + 8 <= K; k += 8) {
		__m256 w[4];
		for (int r = 0; r < RR; r++) {
			if (k % 32 == 0) prefetch_ahead(a, ROW(r) + 2 * k, RR);
			w[r] = ld_w16(qtype, ROW(r) + 2 * k);
		}
		for (int j = 0; j < TT; j++) {
			const __m256 xv = _mm256_loadu_ps(a->x + (size_t)(t + j) * a->S + k);
			for (int r = 0; r < RR; r++) acc[r * TT + j] = _mm256_fmadd_ps(w[r], xv, acc[r * TT + j]);
		}
	}
	reduce8(acc, RR, TT, out);
	if (k < K)
		for (int r = 0; r < RR; r++)
			for (int j = 0; j < TT; j++) out[4 * j + r] += dot_float_portable(qtype, ROW(r) + 2 * k, a->x + (size_t)(t + j) * a->S + k, K - k);
}
INLINE void tile_f16(TILE_ARGS, const int RR, const int TT) { tile_half(a, n, t, out, RR, TT, MB_Q_F16); }
INLINE void tile_bf16(TILE_ARGS, const int RR, const int TT) { tile_half(a, n, t, out, RR, TT, MB_Q_BF16); }

typedef void (*tile_fn)(TILE_ARGS);
#define SHAPE(T, R, C) static void T##_##R##x##C(TILE_ARGS) { tile_##T(a, n, t, out, R, C); }
#define SHAPES(T) \
	SHAPE(T, 1, 1) SHAPE(T, 1, 2) SHAPE(T, 1, 3) SHAPE(T, 1, 4) SHAPE(T, 2, 1) SHAPE(T, 2, 2) SHAPE(T, 2, 3) SHAPE(T, 2, 4) \
	SHAPE(T, 3, 1) SHAPE(T, 3, 2) SHAPE(T, 3, 3) SHAPE(T, 3, 4) SHAPE(T, 4, 1) SHAPE(T, 4, 2) SHAPE(T, 4, 3) SHAPE(T, 4, 4) \
	static const tile_fn T##_tiles[5][5] = {{0}, {0, T##_1x1, T##_1x2, T##_1x3, T##_1x4}, {0, T##_2x1, T##_2x2, T##_2x3, T##_2x4}, \
		{0, T##_3x1, T##_3x2, T##_3x3, T##_3x4}, {0, T##_4x1, T##_4x2, T##_4x3, T##_4x4}};
SHAPES(q6_k)
SHAPES(f16)
SHAPES(bf16)

/** [rows][tokens] tiles of a type with a vector path; NULL otherwise. */
static const tile_fn (*vector_tiles(int qtype))[5] {
	switch (qtype) {
	case MB_Q_Q6_K: return q6_k_tiles;
	case MB_Q_F16: return f16_tiles;
	case MB_Q_BF16: return bf16_tiles;
	default: return NULL;
	}
}

// softplus(v) = ln(1 + e^v), v above 20: v, on 8 lanes (kernels.c's vsoftplus, as intrinsics): e^v by Cephes expf,
// ln(1 + u) as ln(w)·u/(w − 1) with w = 1 + u rounded, ln by Cephes logf; about 1 ulp.
INLINE __m256 exp8(__m256 x) {
	x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3365447504f)), _mm256_set1_ps(88.3762626647949f));
	const __m256 t = _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(12582912.f));
	const __m256 nf = _mm256_sub_ps(t, _mm256_set1_ps(12582912.f));
	__m256 r = _mm256_fnmadd_ps(nf, _mm256_set1_ps(0.693359375f), x);
	r = _mm256_fnmadd_ps(nf, _mm256_set1_ps(-2.12194440e-4f), r);
	__m256 p = _mm256_set1_ps(1.9875691500E-4f);
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507E-3f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073E-3f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894E-2f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459E-1f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201E-1f));
	p = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.f));
	const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(_mm256_castps_si256(t), _mm256_castps_si256(_mm256_set1_ps(12582912.f))), _mm256_set1_epi32(127)), 23);
	return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/** ln x for finite x > 0. */
INLINE __m256 log8(__m256 x) {
	const __m256i bits = _mm256_castps_si256(x);
	const __m256i e = _mm256_sub_epi32(_mm256_and_si256(_mm256_srli_epi32(bits, 23), _mm256_set1_epi32(0xff)), _mm256_set1_epi32(126));
	__m256 m = _mm256_castsi256_ps(_mm256_or_si256(_mm256_and_si256(bits, _mm256_set1_epi32(0x007fffff)), _mm256_set1_epi32(0x3f000000)));
	const __m256 small = _mm256_cmp_ps(m, _mm256_set1_ps(0.707106781186547524f), _CMP_LT_OQ);
	const __m256 ef = _mm256_cvtepi32_ps(_mm256_add_epi32(e, _mm256_castps_si256(small))); // e − 1 where small
	m = _mm256_sub_ps(_mm256_blendv_ps(m, _mm256_add_ps(m, m), small), _mm256_set1_ps(1.f));
	const __m256 z = _mm256_mul_ps(m, m);
	__m256 p = _mm256_set1_ps(7.0376836292E-2f);
	p = _mm256_fmadd_ps(p, m, _mm256_set1_ps(-1.1514610310E-1f));
	p = _mm256_fmadd_ps(p, m, _mm256_set1_ps(1.1676998740E-1f));
	p = _mm256_fmadd_ps(p, m, _mm256_set1_ps(-1.2420140846E-1f));
	p = _mm256_fmadd_ps(p, m, _mm256_set1_ps(1.4249322787E-1f));
	p = _mm256_fmadd_ps(p, m, _mm256_set1_ps(-1.6668057665E-1f));
	p = _mm256_fmadd_ps(p, m, _mm256_set1_ps(2.0000714765E-1f));
	p = _mm256_fmadd_ps(p, m, _mm256_set1_ps(-2.4999993993E-1f));
	p = _mm256_fmadd_ps(p, m, _mm256_set1_ps(3.3333331174E-1f));
	__m256 y = _mm256_mul_ps(_mm256_mul_ps(p, m), z);
	y = _mm256_fmadd_ps(ef, _mm256_set1_ps(-2.12194440e-4f), y);
	y = _mm256_fnmadd_ps(z, _mm256_set1_ps(0.5f), y);
	return _mm256_fmadd_ps(ef, _mm256_set1_ps(0.693359375f), _mm256_add_ps(m, y));
}

INLINE __m256 softplus8(__m256 v) {
	const __m256 one = _mm256_set1_ps(1.f);
	const __m256 u = exp8(_mm256_min_ps(v, _mm256_set1_ps(20.f)));
	const __m256 w = _mm256_add_ps(one, u), d = _mm256_sub_ps(w, one);
	const __m256 exact = _mm256_cmp_ps(d, _mm256_setzero_ps(), _CMP_EQ_OQ);
	const __m256 l = _mm256_blendv_ps(_mm256_mul_ps(log8(w), _mm256_div_ps(u, _mm256_blendv_ps(d, one, exact))), u, exact);
	return _mm256_blendv_ps(l, v, _mm256_cmp_ps(v, _mm256_set1_ps(20.f), _CMP_GT_OQ)); // NaN stays NaN (through l)
}

/** A tile's outputs (out[4·j + r], RR rows × TT tokens) through the epilogue into y; rows n.. are contiguous in y. */
static void store_tile(const mb_qlinear_args *a, int n, int t, int RR, int TT, const float *out) {
	const __m128i mask = _mm_cmpgt_epi32(_mm_set1_epi32(RR), _mm_setr_epi32(0, 1, 2, 3));
	const size_t N = a->N;
	if (a->mode == MB_EPI_SOFTPLUS) {
		const __m128 bias = _mm_maskload_ps(a->epi + n, mask);
		for (int j = 0; j < TT; j += 2) {
			const __m128 v0 = _mm_add_ps(_mm_loadu_ps(out + 4 * j), bias), v1 = _mm_add_ps(_mm_loadu_ps(out + 4 * j + 4), bias);
			const __m256 s = softplus8(_mm256_set_m128(v1, v0));
			_mm_maskstore_ps(a->y + (t + j) * N + n, mask, _mm256_castps256_ps128(s));
			if (j + 1 < TT) _mm_maskstore_ps(a->y + (t + j + 1) * N + n, mask, _mm256_extractf128_ps(s, 1));
		}
		return;
	}
	for (int j = 0; j < TT; j++) {
		__m128 v = _mm_loadu_ps(out + 4 * j);
		if (a->mode == MB_EPI_RESIDUAL) v = _mm_add_ps(v, _mm_maskload_ps(a->epi + (t + j) * N + n, mask));
		_mm_maskstore_ps(a->y + (t + j) * N + n, mask, v);
	}
}
#endif

#if defined(WIDE)
/** rows n..n+RR-1 (RR <= 16), token t + j, from out[16·j + r], through the epilogue into y. */
static void packed_store(const mb_qlinear_args *a, int n, int t, int RR, int TT, const float *out) {
	const __mmask16 m = (__mmask16)((1u << RR) - 1);
	const size_t N = a->N;
	for (int j = 0; j < TT; j++) {
		float *y = a->y + (size_t)(t + j) * N + n;
		__m512 v = _mm512_loadu_ps(out + 16 * j);
		if (a->mode == MB_EPI_RESIDUAL) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, a->epi + (size_t)(t + j) * N + n));
		if (a->mode == MB_EPI_SOFTPLUS) {
			const __m512 u = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, a->epi + n));
			const __m256 lo = softplus8(_mm512_castps512_ps256(u)), hi = softplus8(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(u), 1)));
			v = _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_castps256_ps512(lo)), _mm256_castps_pd(hi), 1));
		}
		_mm512_mask_storeu_ps(y, m, v);
	}
}

#elif defined(__AVX2__)
/** rows n..n+RR-1 (RR <= 8), token t + j, from out[8·j + r], through the epilogue into y. */
static void packed_store(const mb_qlinear_args *a, int n, int t, int RR, int TT, const float *out) {
	const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(RR), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
	const size_t N = a->N;
	for (int j = 0; j < TT; j++) {
		float *y = a->y + (size_t)(t + j) * N + n;
		__m256 v = _mm256_loadu_ps(out + 8 * j);
		if (a->mode == MB_EPI_RESIDUAL) v = _mm256_add_ps(v, _mm256_maskload_ps(a->epi + (size_t)(t + j) * N + n, m));
		if (a->mode == MB_EPI_SOFTPLUS) v = softplus8(_mm256_add_ps(v, _mm256_maskload_ps(a->epi + n, m)));
		_mm256_maskstore_ps(y, m, v);
	}
}

#endif

#if defined(__AVX2__)
/** Rows n0..n1-1 of a q8_0, q4_0 or q4_k matrix on PACK_G-row tiles: from a->Wp where the rows start a group. */
static void packed_rows(const mb_qlinear_args *a, int n0, int n1) {
	const packed_fn *tiles = packed_tiles(a->qtype);
	const size_t group_bytes = mb_pack_group_bytes(a->qtype, a->K, PACK_G);
	float out[PACK_G * PACK_TOKENS];
	for (int n = n0; n < n1; n += PACK_G) {
		const int RR = n1 - n < PACK_G ? n1 - n : PACK_G;
		const uint8_t *p = a->Wp && a->Wg == PACK_G && n % PACK_G == 0 ? a->Wp + (size_t)(n / PACK_G) * group_bytes : NULL;
		for (int t = 0; t < a->T; t += PACK_TOKENS) {
			const int TT = a->T - t < PACK_TOKENS ? a->T - t : PACK_TOKENS;
			tiles[TT](a, n, RR, p, t, out);
			packed_store(a, n, t, RR, TT, out);
		}
	}
}
#endif

// ---- rows × tokens -----------------------------------------------------------------------------------------------

/** out[0] for output (row n, token t): the epilogue, then store (the portable path). */
static void store1(const mb_qlinear_args *a, int n, int t, float v) {
	const size_t at = (size_t)t * a->N + n;
	if (a->mode == MB_EPI_RESIDUAL) v += a->epi[at];
	else if (a->mode == MB_EPI_SOFTPLUS) v = mb_softplus(v + a->epi[n]);
	a->y[at] = v;
}

static void qlinear_rows(const mb_qlinear_args *a, int n0, int n1) {
	const int nbx = a->K / 32, qt = a->qtype;
#if defined(__AVX2__)
	if (mb_q_packs(qt)) {
		packed_rows(a, n0, n1);
		return;
	}
	const tile_fn(*tiles)[5] = vector_tiles(qt);
	if (tiles) {
		float out[16];
		const int R = a->T == 1 ? TILE_ROWS_1 : TILE_ROWS;
		for (int n = n0; n < n1; n += R) {
			const int RR = n1 - n < R ? n1 - n : R;
			for (int t = 0; t < a->T; t += TILE_TOKENS) {
				const int TT = a->T - t < TILE_TOKENS ? a->T - t : TILE_TOKENS;
				tiles[RR][TT](a, n, t, out);
				store_tile(a, n, t, RR, TT, out);
			}
		}
		return;
	}
#endif
	for (int n = n0; n < n1; n++) {
		const uint8_t *row = a->W + (size_t)n * a->row_bytes;
		for (int t = 0; t < a->T; t++)
			store1(a, n, t, mb_q_uses_q8x(qt) ? dot_portable(qt, row, a->xq + (size_t)t * nbx, a->K)
			                                  : dot_float_portable(qt, row, a->x + (size_t)t * a->S, a->K));
	}
}

const mb_qkernels MB_CAT(mb_qkernels, MB_ISA) = {
	.name = MB_STR(MB_ISA),
	.qlinear = qlinear_rows,
};
