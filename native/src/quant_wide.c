// Part of quant.c (included there in the AVX-512 VNNI build, after the helpers it uses; not compiled by itself):
// the q8_0, q4_k and q6_k tiles on 512-bit vectors. q8_0 runs on 16 rows interleaved (the first part below); for
// q4_k and q6_k, as follows.
//
// A register holds two 32-value blocks (block b in the low half, b + 1 in the high half; a last odd block has zeros
// in the high half, which add exact zeros), so one dpbusd covers 64 weights. dpbusd multiplies unsigned by signed
// bytes: q8_0's weights are made unsigned as w + 128 (w XOR 0x80) and q6_k's codes are unsigned already (w + 32);
// the excess, 128·Σx or 32·Σx per 4 bytes, is exact in int32 and depends on the token only, so it is computed once
// per token and block pair and is where each (row, token) sum starts. q4_k's minimums are one more multiply-add per
// 256 values. Each (row, token) pair still has its own accumulator, fed in block order, and lanes are reduced in
// one fixed tree (fold the halves, then sum4x8), so results do not depend on the tile shape.

/** Blocks p0 and p1 (32 bytes each; p1 NULL: zeros) as one vector. */
INLINE __m512i ld2(const void *p0, const void *p1) {
	const __m256i lo = _mm256_loadu_si256((const __m256i *)p0);
	return p1 ? _mm512_inserti64x4(_mm512_castsi256_si512(lo), _mm256_loadu_si256((const __m256i *)p1), 1) : _mm512_zextsi256_si512(lo);
}
/** f0 in the low 8 lanes, f1 in the high 8. */
INLINE __m512 bcast2(float f0, float f1) {
	return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_castps256_ps512(_mm256_set1_ps(f0))), _mm256_castps_pd(_mm256_set1_ps(f1)), 1));
}
/** The token part of a block pair: x, where the integer sums start (−c·Σx per 4 bytes), and the scales. */
typedef struct {
	__m512i q, start;
	__m512 d;
} xpair;
INLINE xpair x_pair(const mb_q8x *xb, const int two, const int c) {
	xpair x;
	x.q = ld2(xb[0].q, two ? xb[1].q : NULL);
	x.start = c ? _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8((char)c), x.q))
	            : _mm512_setzero_si512();
	x.d = bcast2(xb[0].d, two ? xb[1].d : 0);
	return x;
}
/** out[4·j + r] = the lane sum of acc[r·TT + j] (16 lanes: the halves added, then reduce8's tree). */
INLINE void reduce16(const __m512 *acc, const int RR, const int TT, float *out) {
	__m256 h[16];
	for (int i = 0; i < RR * TT; i++)
		h[i] = _mm256_add_ps(_mm512_castps512_ps256(acc[i]), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc[i]), 1)));
	reduce8(h, RR, TT, out);
}
/** [v, v] (the 8 floats in both halves): 16 lanes from an 8-lane vector, for permutexvar. */
INLINE __m512 wide8(__m256 v) { return _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_castps_pd(v))); }

// q8_0 and q4_0: 16 rows at a time, from the packed form (quant.h, mb_pack with G = 16): lane r of every vector is
// row r, so a token's block costs 8 dpbusd (4 columns each, x's 4 bytes broadcast) and one conversion and
// multiply-add for all 16 rows. Each (row, token) output is Σ over blocks, in order, of its exact integer block sum
// times d_w·d_x, one float multiply-add per block: the same whichever group or tile computed it. Up to R16_TOKENS
// tokens per pass over a group's weights (2 registers each; AVX-512 has 32).
#define R16_TOKENS 8
#define R16_PREFETCH (16 * MB_PACK_BLOCK(16)) // bytes ahead of the block in use: the group is one sequential stream

/**
 * out[16·j + r] for row n + r (r < RR) and token t + j (j < TT), type QT (q8_0 or q4_0): from the packed group at
 * p16, or with p16 NULL from a->W, each block packed here first (the per-operation path, on a matrix not packed).
 */
INLINE void r16_tile(const mb_qlinear_args *a, const int QT, int n, int RR, const uint8_t *p16, int t, const int TT, float *out) {
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
					const xpair x = x_pair(XB(j, 8 * sb + 4 * n2 + 2 * gp), 1, 32);
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

/** q4_k: the 8 scales and minimums of a superblock (6 bits each, packed in 12 bytes) as bytes: s[0..7], m[0..7]. */
INLINE void q4_k_scales(const uint8_t *q, uint8_t s[8], uint8_t m[8]) {
	uint32_t u[3], v[4];
	memcpy(u, q, 12);
	v[0] = u[0] & 0x3f3f3f3f;
	v[1] = (u[2] & 0x0f0f0f0f) | ((u[0] >> 6) & 0x03030303) << 4;
	v[2] = u[1] & 0x3f3f3f3f;
	v[3] = ((u[2] >> 4) & 0x0f0f0f0f) | ((u[1] >> 6) & 0x03030303) << 4;
	memcpy(s, v, 8);
	memcpy(m, v + 2, 8);
}

// q4_k: value = d·s·q − dmin·m per 32-value sub-block, q a 4-bit code. The codes are unsigned (no excess); the
// minimums' part, Σ over sub-blocks of dmin·m·(dx·Σx), is one multiply-add per 256 values into lanes 0..7.
INLINE void tile_q4_k(TILE_ARGS, const int RR, const int TT) {
	__m512 acc[16];
	for (int i = 0; i < RR * TT; i++) acc[i] = _mm512_setzero_ps();
	const __m512i lo = _mm512_set1_epi8(0xf), sh = _mm512_set_epi64(4, 4, 4, 4, 0, 0, 0, 0);
	const __m256i xstride = _mm256_setr_epi32(0, 10, 20, 30, 40, 50, 60, 70); // mb_q8x: 40 bytes
	for (int sb = 0; sb < a->K / 256; sb++) {
		__m512 ds[4], dm[4];
		for (int r = 0; r < RR; r++) {
			const uint8_t *p = ROW(r) + 144 * sb;
			uint8_t s[8], m[8];
			q4_k_scales(p + 4, s, m);
			ds[r] = wide8(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)s))), _mm256_set1_ps(half(p))));
			dm[r] = _mm512_zextps256_ps512(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)m))), _mm256_set1_ps(half(p + 2))));
		}
		for (int j = 0; j < TT; j++) {
			const mb_q8x *xb = XB(j, 8 * sb);
			const __m256i sums = _mm256_i32gather_epi32((const int *)xb->s, xstride, 4); // s[0] | s[1] << 16
			const __m256i xs = _mm256_add_epi32(_mm256_srai_epi32(_mm256_slli_epi32(sums, 16), 16), _mm256_srai_epi32(sums, 16));
			const __m512 xm = _mm512_zextps256_ps512(_mm256_mul_ps(_mm256_i32gather_ps(&xb->d, xstride, 4), _mm256_cvtepi32_ps(xs)));
			for (int r = 0; r < RR; r++) acc[r * TT + j] = _mm512_fnmadd_ps(dm[r], xm, acc[r * TT + j]);
		}
		for (int c = 0; c < 4; c++) {
			__m512i u[4];
			__m512 sv[4];
			const __m512i idx = _mm512_set_epi32(2 * c + 1, 2 * c + 1, 2 * c + 1, 2 * c + 1, 2 * c + 1, 2 * c + 1, 2 * c + 1, 2 * c + 1, 2 * c, 2 * c, 2 * c, 2 * c, 2 * c, 2 * c, 2 * c, 2 * c);
			for (int r = 0; r < RR; r++) {
				const uint8_t *p = ROW(r) + 144 * sb;
				if (c < 3) prefetch_ahead(a, p + 64 * c, RR);
				if (c == 3) prefetch_ahead(a, p + 143, RR); // the last byte's line
				const __m512i q = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(p + 16 + 32 * c)));
				u[r] = _mm512_and_si512(_mm512_srlv_epi64(q, sh), lo);
				sv[r] = _mm512_permutexvar_ps(idx, ds[r]);
			}
			for (int j = 0; j < TT; j++) {
				const xpair x = x_pair(XB(j, 8 * sb + 2 * c), 1, 0);
				for (int r = 0; r < RR; r++) {
					const __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), u[r], x.q);
					acc[r * TT + j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(sv[r], x.d), acc[r * TT + j]);
				}
			}
		}
	}
	reduce16(acc, RR, TT, out);
}
