// Part of quant.c (included there in the AVX-512 VNNI build, after the helpers it uses; not compiled by itself):
// the q8_0, q4_0, q4_k and q6_k tiles on 512-bit vectors. q8_0, q4_0 and q4_k run on 16 rows interleaved (the first
// part below); q6_k as follows.
//
// For q6_k a register holds two 32-value blocks (block b in the low half, b + 1 in the high half; a superblock has
// 8), so one dpbusd covers 64 weights. dpbusd multiplies unsigned by signed bytes: q6_k's codes are unsigned already
// (w + 32); the excess, 32·Σx per 4 bytes, is exact in int32 and depends on the token only, so it is computed once per
// token and block pair and is where each (row, token) sum starts. Each (row, token) pair still has its own
// accumulator, fed in block order, and lanes are reduced in one fixed tree (fold the halves, then sum4x8), so results
// do not depend on the tile shape.

/** Blocks p0 and p1 (32 bytes each) as one vector. */
INLINE __m512i ld2(const void *p0, const void *p1) {
	return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)p0)), _mm256_loadu_si256((const __m256i *)p1), 1);
}
/** f0 in the low 8 lanes, f1 in the high 8. */
INLINE __m512 bcast2(float f0, float f1) {
	return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_castps256_ps512(_mm256_set1_ps(f0))), _mm256_castps_pd(_mm256_set1_ps(f1)), 1));
}
/** The token part of blocks xb[0], xb[1]: x, where the integer sums start (−c·Σx per 4 bytes), and the scales. */
typedef struct {
	__m512i q, start;
	__m512 d;
} xpair;
INLINE xpair x_pair(const mb_q8x *xb, const int c) {
	xpair x;
	x.q = ld2(xb[0].q, xb[1].q);
	x.start = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8((char)c), x.q));
	x.d = bcast2(xb[0].d, xb[1].d);
	return x;
}
/** out[4·j + r] = the lane sum of acc[r·TT + j] (16 lanes: the halves added, then reduce8's tree). */
INLINE void reduce16(const __m512 *acc, const int RR, const int TT, float *out) {
	__m256 h[16];
	for (int i = 0; i < RR * TT; i++)
		h[i] = _mm256_add_ps(_mm512_castps512_ps256(acc[i]), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc[i]), 1)));
	reduce8(h, RR, TT, out);
}

// q8_0, q4_0 (and q4_k, below): 16 rows at a time, from the packed form (quant.h, mb_pack with G = 16): lane r of every vector is
// row r, so a token's block costs 8 dpbusd (4 columns each, x's 4 bytes broadcast) and one conversion and
// multiply-add for all 16 rows. Each (row, token) output is Σ over blocks, in order, of its exact integer block sum
// times d_w·d_x, one float multiply-add per block: the same whichever group or tile computed it. Up to R16_TOKENS
// tokens per pass over a group's weights (2 registers each; AVX-512 has 32).
#define R16_TOKENS 8
#define R16_PREFETCH (16 * MB_PACK_BLOCK(16)) // bytes ahead of the block in use: the group is one sequential stream

INLINE void r16_tile_q4_k(const mb_qlinear_args *a, int n, int RR, const uint8_t *p16, int t, const int TT, float *out);

/**
 * out[16·j + r] for row n + r (r < RR) and token t + j (j < TT), type QT (q8_0, q4_0; q4_k below): from the packed group at
 * p16, or with p16 NULL from a->W, each block packed here first (the per-operation path, on a matrix not packed).
 */
INLINE void r16_tile(const mb_qlinear_args *a, const int QT, int n, int RR, const uint8_t *p16, int t, const int TT, float *out) {
	if (QT == MB_Q_Q4_K) {
		r16_tile_q4_k(a, n, RR, p16, t, TT, out);
		return;
	}
	const int BB = QT == MB_Q_Q4_0 ? MB_PACK_BLOCK_Q4_0(16) : MB_PACK_BLOCK(16);
	// the unsigned codes are w + 128 (q8_0) or the 4-bit code = w + 8 (q4_0): Σ code·x = Σ w·x + excess·Σx
	const int excess = QT == MB_Q_Q4_0 ? 8 : 128;
	__m512 acc[R16_TOKENS];
	for (int j = 0; j < TT; j++) acc[j] = _mm512_setzero_ps();
	const int nb = a->K / 32;
	uint8_t one[MB_PACK_BLOCK(16)] __attribute__((aligned(64)));
	for (int b = 0; b < nb; b++) {
		const uint8_t *p = one;
		if (p16) {
			p = p16 + (size_t)b * BB;
			for (int l = 0; l < BB; l += 64) _mm_prefetch((const char *)p + R16_PREFETCH + l, _MM_HINT_T0);
		} else mb_pack_block(QT, a->W + (size_t)n * a->row_bytes, a->row_bytes, RR, 16, b, one);
		__m512i w[8]; // columns 4k..4k+3 for k < 4, then 16 + 4k.. : loaded (q4_0: unpacked) once for every token
		if (QT == MB_Q_Q4_0) {
			const __m512i lo = _mm512_set1_epi8(0xf);
#pragma GCC unroll 4
			for (int k = 0; k < 4; k++) {
				const __m512i q = _mm512_load_si512((const void *)(p + 64 + 64 * k));
				w[k] = _mm512_and_si512(q, lo);
				w[k + 4] = _mm512_and_si512(_mm512_srli_epi16(q, 4), lo);
			}
		} else {
#pragma GCC unroll 8
			for (int k = 0; k < 8; k++) w[k] = _mm512_load_si512((const void *)(p + 64 + 64 * k));
		}
		const __m512 dw = _mm512_load_ps((const float *)p);
#pragma GCC unroll 8
		for (int j = 0; j < TT; j++) {
			const mb_q8x *xb = XB(j, b);
			const int8_t *xq = xb->q;
			// the sum starts at −excess·Σx; two chains (integers: exact in any order)
			__m512i s0 = _mm512_set1_epi32(-excess * (xb->s[0] + xb->s[1])), s1 = _mm512_setzero_si512();
#pragma GCC unroll 4
			for (int k = 0; k < 4; k++) {
				int32_t x0, x1; // x's 4 bytes for these 4 columns, broadcast from memory
				memcpy(&x0, xq + 4 * k, 4);
				memcpy(&x1, xq + 4 * k + 16, 4);
				s0 = _mm512_dpbusd_epi32(s0, w[k], _mm512_set1_epi32(x0));
				s1 = _mm512_dpbusd_epi32(s1, w[k + 4], _mm512_set1_epi32(x1));
			}
			acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1)), _mm512_mul_ps(dw, _mm512_set1_ps(xb->d)), acc[j]);
		}
	}
	for (int j = 0; j < TT; j++) _mm512_storeu_ps(out + 16 * j, acc[j]);
}
/**
 * q4_k, per unit of 64 columns (quant.h): the low sub-block's codes (low nibbles) with x's block 2u, then the high
 * one's (high nibbles) with block 2u + 1, each folded in with its d·scale; then the two minimums' part,
 * dmin·min·(d_x·Σx) per sub-block. The codes are unsigned: no excess.
 */
INLINE void r16_tile_q4_k(const mb_qlinear_args *a, int n, int RR, const uint8_t *p16, int t, const int TT, float *out) {
	__m512 acc[R16_TOKENS];
	for (int j = 0; j < TT; j++) acc[j] = _mm512_setzero_ps();
	const __m512i lo = _mm512_set1_epi8(0xf);
	uint8_t one[MB_PACK_UNIT_Q4_K(16)] __attribute__((aligned(64)));
	for (int u = 0; u < a->K / 64; u++) {
		const uint8_t *p = one;
		if (p16) {
			p = p16 + (size_t)u * MB_PACK_UNIT_Q4_K(16);
			for (int l = 0; l < MB_PACK_UNIT_Q4_K(16); l += 64) _mm_prefetch((const char *)p + R16_PREFETCH + l, _MM_HINT_T0);
		} else mb_pack_block(MB_Q_Q4_K, a->W + (size_t)n * a->row_bytes, a->row_bytes, RR, 16, u, one);
		const float *f = (const float *)p;
		for (int h = 0; h < 2; h++) {
			__m512i s0[R16_TOKENS], s1[R16_TOKENS];
			for (int j = 0; j < TT; j++) s0[j] = s1[j] = _mm512_setzero_si512();
#pragma GCC unroll 8
			for (int k = 0; k < 8; k++) {
				const __m512i q = _mm512_load_si512((const void *)(p + 256 + 64 * k));
				const __m512i w = h ? _mm512_and_si512(_mm512_srli_epi16(q, 4), lo) : _mm512_and_si512(q, lo);
#pragma GCC unroll 8
				for (int j = 0; j < TT; j++) {
					int32_t x4;
					memcpy(&x4, XB(j, 2 * u + h)->q + 4 * k, 4);
					if (k < 4) s0[j] = _mm512_dpbusd_epi32(s0[j], w, _mm512_set1_epi32(x4));
					else s1[j] = _mm512_dpbusd_epi32(s1[j], w, _mm512_set1_epi32(x4));
				}
			}
			const __m512 ds = _mm512_load_ps(f + 16 * h);
			for (int j = 0; j < TT; j++)
				acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(s0[j], s1[j])), _mm512_mul_ps(ds, _mm512_set1_ps(XB(j, 2 * u + h)->d)), acc[j]);
		}
		const __m512 m0 = _mm512_load_ps(f + 32), m1 = _mm512_load_ps(f + 48);
		for (int j = 0; j < TT; j++) {
			const mb_q8x *x0 = XB(j, 2 * u), *x1 = x0 + 1;
			acc[j] = _mm512_fnmadd_ps(m0, _mm512_set1_ps(x0->d * (float)(x0->s[0] + x0->s[1])), acc[j]);
			acc[j] = _mm512_fnmadd_ps(m1, _mm512_set1_ps(x1->d * (float)(x1->s[0] + x1->s[1])), acc[j]);
		}
	}
	for (int j = 0; j < TT; j++) _mm512_storeu_ps(out + 16 * j, acc[j]);
}

typedef void (*r16_fn)(const mb_qlinear_args *, int, int, const uint8_t *, int, float *);
// Each type and token count twice: on a packed group, and packing from a->W (p16 NULL: the fast one has no stack block).
#define R16_SHAPE(T, QT, TT) \
	static void r16_##T##_##TT(const mb_qlinear_args *a, int n, int RR, const uint8_t *p16, int t, float *out) { \
		if (p16) r16_tile(a, QT, n, RR, p16, t, TT, out); \
		else r16_tile(a, QT, n, RR, NULL, t, TT, out); \
	}
#define R16_SHAPES(T, QT) \
	R16_SHAPE(T, QT, 1) R16_SHAPE(T, QT, 2) R16_SHAPE(T, QT, 3) R16_SHAPE(T, QT, 4) R16_SHAPE(T, QT, 5) R16_SHAPE(T, QT, 6) \
	R16_SHAPE(T, QT, 7) R16_SHAPE(T, QT, 8) \
	static const r16_fn r16_##T[R16_TOKENS + 1] = {0, r16_##T##_1, r16_##T##_2, r16_##T##_3, r16_##T##_4, r16_##T##_5, \
		r16_##T##_6, r16_##T##_7, r16_##T##_8};
R16_SHAPES(q8_0, MB_Q_Q8_0)
R16_SHAPES(q4_0, MB_Q_Q4_0)
R16_SHAPES(q4_k, MB_Q_Q4_K)
// what quant.c's packed_rows runs in this build
#define PACK_G 16
#define PACK_TOKENS R16_TOKENS
typedef r16_fn packed_fn;
static const packed_fn *packed_tiles(int qt) { return qt == MB_Q_Q4_0 ? r16_q4_0 : qt == MB_Q_Q4_K ? r16_q4_k : r16_q8_0; }

// q6_k: 128 values per half superblock, as two pairs of 32-value groups: ql (64 bytes) holds the low nibbles of
// groups 0, 1 and the high nibbles of groups 2, 3; qh (32 bytes) two more bits for each group. Scales per 16 values,
// so 4 per pair, each over 4 lanes.
INLINE void tile_q6_k(TILE_ARGS, const int RR, const int TT) {
	__m512 acc[16];
	for (int i = 0; i < RR * TT; i++) acc[i] = _mm512_setzero_ps();
	const __m512i lo = _mm512_set1_epi8(0xf), hb = _mm512_set1_epi8(0x30);
	const __m512i shl = _mm512_set_epi64(2, 2, 2, 2, 4, 4, 4, 4), shr = _mm512_set_epi64(2, 2, 2, 2, 0, 0, 0, 0);
	for (int sb = 0; sb < a->K / 256; sb++) {
		__m512 sc[4]; // the superblock's 16 scales times d
		for (int r = 0; r < RR; r++) {
			const uint8_t *p = ROW(r) + 210 * sb;
			sc[r] = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(p + 192)))), _mm512_set1_ps(half(p + 208)));
		}
		for (int n2 = 0; n2 < 2; n2++) {
			for (int gp = 0; gp < 2; gp++) {
				__m512i u[4];
				__m512 sv[4];
				for (int r = 0; r < RR; r++) {
					const uint8_t *p = ROW(r) + 210 * sb;
					prefetch_ahead(a, p + 128 * n2 + 64 * gp, RR);
					if (n2 == 1 && gp == 1) prefetch_ahead(a, p + 209, RR); // the last byte's line
					const __m512i q = _mm512_loadu_si512((const void *)(p + 64 * n2));
					const __m512i h = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(p + 128 + 32 * n2)));
					u[r] = gp == 0 ? _mm512_or_si512(_mm512_and_si512(q, lo), _mm512_and_si512(_mm512_sllv_epi64(h, shl), hb))
					               : _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(q, 4), lo), _mm512_and_si512(_mm512_srlv_epi64(h, shr), hb));
					const int s0 = 8 * n2 + 4 * gp; // lanes 4i..4i+3: scale s0 + i
					sv[r] = _mm512_permutexvar_ps(_mm512_set_epi32(s0 + 3, s0 + 3, s0 + 3, s0 + 3, s0 + 2, s0 + 2, s0 + 2, s0 + 2, s0 + 1, s0 + 1, s0 + 1, s0 + 1, s0, s0, s0, s0), sc[r]);
				}
				for (int j = 0; j < TT; j++) {
					const xpair x = x_pair(XB(j, 8 * sb + 4 * n2 + 2 * gp), 32);
					for (int r = 0; r < RR; r++) {
						const __m512i s = _mm512_dpbusd_epi32(x.start, u[r], x.q);
						acc[r * TT + j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(sv[r], x.d), acc[r * TT + j]);
					}
				}
			}
		}
	}
	reduce16(acc, RR, TT, out);
}

