// The plain parts of the quantized kernels (quant.h), compiled once: ggml's dequantize_row_* formulas, the
// activation quantizer, and the reference projection (dequantize a row, then dot it with x in double).
#include "quant.h"

#include <math.h>
#include <string.h>

#include "kernels.h"
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

const int mb_q_block_size[MB_Q_COUNT] = {1, 1, 1, 32, 32, 32, 32, 32, 256, 256, 256};
const int mb_q_block_bytes[MB_Q_COUNT] = {4, 2, 2, 34, 18, 20, 22, 24, 144, 176, 210};

float mb_f16_to_f32(uint16_t h) {
	const uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
	float v;
	uint32_t bits;
	if (exp == 0) { // zero and subnormals: man·2^-24, exact
		v = (float)man * 0x1p-24f;
		memcpy(&bits, &v, 4);
	} else if (exp == 31) {
		v = man ? NAN : INFINITY;
		memcpy(&bits, &v, 4);
	} else bits = (exp + 112) << 23 | man << 13; // the same value re-biased (127 − 15), bit by bit: no ldexpf per scale
	bits |= sign;
	memcpy(&v, &bits, 4);
	return v;
}

static float bf16_to_f32(uint16_t h) {
	const uint32_t bits = (uint32_t)h << 16;
	float v;
	memcpy(&v, &bits, 4);
	return v;
}

static float half(const uint8_t *p) { return mb_f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }

float mb_softplus(float v) { return v > 20.f ? v : log1pf(expf(v)); }

static void quantize_x_scalar(const float *x, int K, mb_q8x *out) {
	for (int b = 0; b < K / 32; b++) {
		const float *v = x + 32 * b;
		float amax = 0;
		for (int i = 0; i < 32; i++) amax = fabsf(v[i]) > amax ? fabsf(v[i]) : amax;
		const float d = amax / 127, id = d > 0 ? 1 / d : 0;
		int s0 = 0, s1 = 0;
		for (int i = 0; i < 32; i++) {
			const int q = (int)lrintf(v[i] * id);
			out[b].q[i] = (int8_t)q;
			if (i < 16) s0 += q;
			else s1 += q;
		}
		out[b].d = d;
		out[b].s[0] = (int16_t)s0;
		out[b].s[1] = (int16_t)s1;
	}
}

#if defined(__x86_64__) && defined(__GNUC__)
// The same arithmetic on 8 lanes (every step exact or one IEEE operation, as above, so the blocks are bit-identical
// to quantize_x_scalar's): it runs once per token and projection, on one thread, before the projection.
__attribute__((target("avx2"))) static void quantize_x_avx2(const float *x, int K, mb_q8x *out) {
	const __m256 sign = _mm256_set1_ps(-0.f);
	const __m256i low = _mm256_set1_epi32(0xff), order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
	for (int b = 0; b < K / 32; b++) {
		__m256 v[4], m = _mm256_setzero_ps();
		for (int i = 0; i < 4; i++) {
			v[i] = _mm256_loadu_ps(x + 32 * b + 8 * i);
			m = _mm256_max_ps(_mm256_andnot_ps(sign, v[i]), m); // |v| > m ? |v| : m, as the scalar loop (NaN: m)
		}
		__m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
		m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
		const float amax = _mm_cvtss_f32(_mm_max_ss(m4, _mm_shuffle_ps(m4, m4, 1)));
		const float d = amax / 127, id = d > 0 ? 1 / d : 0;
		__m256i q[4];
		for (int i = 0; i < 4; i++) q[i] = _mm256_cvtps_epi32(_mm256_mul_ps(v[i], _mm256_set1_ps(id)));
		// the low byte of each int32 (the scalar (int8_t) cast), in order
		const __m256i p01 = _mm256_packus_epi32(_mm256_and_si256(q[0], low), _mm256_and_si256(q[1], low));
		const __m256i p23 = _mm256_packus_epi32(_mm256_and_si256(q[2], low), _mm256_and_si256(q[3], low));
		_mm256_storeu_si256((__m256i *)out[b].q, _mm256_permutevar8x32_epi32(_mm256_packus_epi16(p01, p23), order));
		int32_t s[2][8];
		_mm256_storeu_si256((__m256i *)s[0], _mm256_add_epi32(q[0], q[1]));
		_mm256_storeu_si256((__m256i *)s[1], _mm256_add_epi32(q[2], q[3]));
		int s0 = 0, s1 = 0;
		for (int i = 0; i < 8; i++) s0 += s[0][i], s1 += s[1][i];
		out[b].d = d;
		out[b].s[0] = (int16_t)s0;
		out[b].s[1] = (int16_t)s1;
	}
}
#endif

void mb_quantize_x(const float *x, int K, mb_q8x *out) {
#if defined(__x86_64__) && defined(__GNUC__)
	__builtin_cpu_init(); // idempotent, cheap: it fills what __builtin_cpu_supports reads
	if (__builtin_cpu_supports("avx2")) {
		quantize_x_avx2(x, K, out);
		return;
	}
#endif
	quantize_x_scalar(x, K, out);
}

/** q4_K / q5_K: the 6-bit scale and minimum of sub-block j (ggml's get_scale_min_k4). */
static void scale_min_k4(int j, const uint8_t *q, int *d, int *m) {
	if (j < 4) {
		*d = q[j] & 63;
		*m = q[j + 4] & 63;
	} else {
		*d = (q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4);
		*m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
	}
}

void mb_dequantize_row(int qtype, const uint8_t *row, int K, float *y) {
	const int nb = K / mb_q_block_size[qtype], bb = mb_q_block_bytes[qtype];
	for (int i = 0; i < nb; i++) {
		const uint8_t *b = row + (size_t)i * bb;
		switch (qtype) {
		case MB_Q_F32: memcpy(y, b, 4); y += 1; break;
		case MB_Q_F16: *y++ = half(b); break;
		case MB_Q_BF16: *y++ = bf16_to_f32((uint16_t)(b[0] | b[1] << 8)); break;
		case MB_Q_Q8_0: {
			const float d = half(b);
			for (int j = 0; j < 32; j++) y[j] = d * (int8_t)b[2 + j];
			y += 32;
			break;
		}
		case MB_Q_Q4_0: case MB_Q_Q4_1: {
			const float d = half(b), m = qtype == MB_Q_Q4_1 ? half(b + 2) : 0;
			const uint8_t *qs = b + (qtype == MB_Q_Q4_1 ? 4 : 2);
			const int off = qtype == MB_Q_Q4_1 ? 0 : 8;
			for (int j = 0; j < 16; j++) {
				y[j] = ((qs[j] & 0xf) - off) * d + m;
				y[j + 16] = ((qs[j] >> 4) - off) * d + m;
			}
			y += 32;
			break;
		}
		case MB_Q_Q5_0: case MB_Q_Q5_1: {
			const float d = half(b), m = qtype == MB_Q_Q5_1 ? half(b + 2) : 0;
			const uint8_t *p = b + (qtype == MB_Q_Q5_1 ? 4 : 2);
			const uint32_t qh = p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
			const uint8_t *qs = p + 4;
			const int off = qtype == MB_Q_Q5_1 ? 0 : 16;
			for (int j = 0; j < 16; j++) {
				const int h0 = ((qh >> j) << 4) & 0x10, h1 = (qh >> (j + 12)) & 0x10;
				y[j] = (((qs[j] & 0xf) | h0) - off) * d + m;
				y[j + 16] = (((qs[j] >> 4) | h1) - off) * d + m;
			}
			y += 32;
			break;
		}
		case MB_Q_Q4_K: case MB_Q_Q5_K: {
			const float d = half(b), dmin = half(b + 2);
			const uint8_t *sc = b + 4, *qh = b + 16, *ql = b + (qtype == MB_Q_Q5_K ? 48 : 16);
			for (int j = 0; j < 4; j++) {
				int s1, m1, s2, m2;
				scale_min_k4(2 * j, sc, &s1, &m1);
				scale_min_k4(2 * j + 1, sc, &s2, &m2);
				for (int l = 0; l < 32; l++) {
					const int h1 = qtype == MB_Q_Q5_K && (qh[l] & (1 << 2 * j)) ? 16 : 0;
					const int h2 = qtype == MB_Q_Q5_K && (qh[l] & (2 << 2 * j)) ? 16 : 0;
					y[l] = d * s1 * ((ql[32 * j + l] & 0xf) + h1) - dmin * m1;
					y[l + 32] = d * s2 * ((ql[32 * j + l] >> 4) + h2) - dmin * m2;
				}
				y += 64;
			}
			break;
		}
		case MB_Q_Q6_K: {
			const uint8_t *ql = b, *qh = b + 128;
			const int8_t *sc = (const int8_t *)(b + 192);
			const float d = half(b + 208);
			for (int n = 0; n < 2; n++) {
				for (int l = 0; l < 32; l++) {
					const int is = l / 16;
					const int q1 = ((ql[l] & 0xf) | ((qh[l] >> 0) & 3) << 4) - 32;
					const int q2 = ((ql[l + 32] & 0xf) | ((qh[l] >> 2) & 3) << 4) - 32;
					const int q3 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
					const int q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
					y[l] = d * sc[is] * q1;
					y[l + 32] = d * sc[is + 2] * q2;
					y[l + 64] = d * sc[is + 4] * q3;
					y[l + 96] = d * sc[is + 6] * q4;
				}
				y += 128;
				ql += 64;
				qh += 32;
				sc += 8;
			}
			break;
		}
		}
	}
}

void mb_qlinear_reference(const mb_qlinear_args *a, int n0, int n1, float *w) {
	for (int n = n0; n < n1; n++) {
		mb_dequantize_row(a->qtype, a->W + (size_t)n * a->row_bytes, a->K, w);
		for (int t = 0; t < a->T; t++) {
			const float *x = a->x + (size_t)t * a->S;
			double s = 0;
			for (int k = 0; k < a->K; k++) s += (double)w[k] * x[k];
			float v = (float)s;
			if (a->mode == MB_EPI_RESIDUAL) v += a->epi[(size_t)t * a->N + n];
			else if (a->mode == MB_EPI_SOFTPLUS) v = mb_softplus(v + a->epi[n]);
			a->y[(size_t)t * a->N + n] = v;
		}
	}
}

/** Bytes of one packed block (q4_k: one unit of 64 columns), and the columns it covers. */
static int pack_block_bytes(int qtype, int G) {
	return qtype == MB_Q_Q4_0 ? MB_PACK_BLOCK_Q4_0(G) : qtype == MB_Q_Q4_K ? MB_PACK_UNIT_Q4_K(G) : MB_PACK_BLOCK(G);
}
static int pack_block_cols(int qtype) { return qtype == MB_Q_Q4_K ? 64 : 32; }

size_t mb_pack_group_bytes(int qtype, int K, int G) { return (size_t)(K / pack_block_cols(qtype)) * pack_block_bytes(qtype, G); }

size_t mb_packed_bytes(int qtype, int N, int K, int G) {
	return ((size_t)((N + G - 1) / G) * mb_pack_group_bytes(qtype, K, G) + 63) / 64 * 64;
}

/** q4_k unit u (columns 64u..64u+63) of rows 0..rows-1 (see quant.h). */
static void pack_q4_k(const uint8_t *W, size_t row_bytes, int rows, int G, int u, uint8_t *out) {
	for (int r = 0; r < G; r++) {
		float f[4] = {0, 0, 0, 0}; // d·scale low, d·scale high, dmin·min low, dmin·min high
		const uint8_t *sb = W + (size_t)r * row_bytes + 144 * (u / 4), *qs = sb + 16 + 32 * (u % 4);
		if (r < rows) {
			const float d = half(sb), dmin = half(sb + 2);
			int s1, m1, s2, m2;
			scale_min_k4(2 * (u % 4), sb + 4, &s1, &m1);
			scale_min_k4(2 * (u % 4) + 1, sb + 4, &s2, &m2);
			f[0] = d * s1, f[1] = d * s2, f[2] = dmin * m1, f[3] = dmin * m2;
		}
		for (int i = 0; i < 4; i++) memcpy(out + 4 * G * i + 4 * r, &f[i], 4);
		for (int k = 0; k < 8; k++) {
			uint32_t w = 0;
			if (r < rows) memcpy(&w, qs + 4 * k, 4);
			memcpy(out + 16 * G + 4 * G * k + 4 * r, &w, 4);
		}
	}
}

void mb_pack_block(int qtype, const uint8_t *W, size_t row_bytes, int rows, int G, int b, uint8_t *out) {
	if (qtype == MB_Q_Q4_K) {
		pack_q4_k(W, row_bytes, rows, G, b, out);
		return;
	}
	const int q4 = qtype == MB_Q_Q4_0, bb = mb_q_block_bytes[qtype];
	const uint8_t excess = !q4 && G == 16 ? 0x80 : 0; // q8_0 for dpbusd: w + 128 as a byte is w XOR 0x80
	const uint32_t excess4 = excess * 0x01010101u;
	for (int r = 0; r < G; r++) {
		const uint8_t *blk = W + (size_t)r * row_bytes + (size_t)bb * b;
		const float d = r < rows ? half(blk) : 0.f;
		memcpy(out + 4 * r, &d, 4);
		for (int k = 0; k < (q4 ? 4 : 8); k++) { // 4 bytes (columns) at a time into row r's lane of quad k
			uint32_t w = 0;
			if (r < rows) memcpy(&w, blk + 2 + 4 * k, 4);
			w ^= excess4;
			memcpy(out + 4 * G + 4 * G * k + 4 * r, &w, 4);
		}
	}
}

void mb_pack(int qtype, const uint8_t *W, size_t row_bytes, int N, int K, int G, uint8_t *out) {
	for (int n = 0; n < N; n += G)
		for (int b = 0; b < K / pack_block_cols(qtype); b++, out += pack_block_bytes(qtype, G))
			mb_pack_block(qtype, W + (size_t)n * row_bytes, row_bytes, N - n < G ? N - n : G, G, b, out);
}
