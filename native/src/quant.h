// Projections on quantized weights (ggml block layouts, as GGUF files store them; src/model/qmatrix.ts), computed on
// the blocks as stored: no float32 copy of a matrix is ever made.
//
// The activation x is quantized per token to blocks of 32 int8 (mb_q8x: one float scale, the max-abs over 127,
// round to nearest) and the weights' integer codes are multiplied with it in integer arithmetic, as llama.cpp does
// (its q8_0 / q8_K activation blocks). This changes the result by at most Σ_i |w_i|·amax(x's block)/254 per output
// (half a quantization step per element), which test/native-quant.test.ts checks; measured on random blocks and
// uniform x, K = 1024, it is 2-5e-4 of Σ|w_i·x_i| for every type (f16 / bf16, which keep x in float32: 1-4e-8).
// Chosen by measurement against the same q8_0 kernel with x kept in float32 (weights widened to floats in
// registers; one thread, CPU time, 2026-12-02): decode (4096x1024, T = 1) 0.54 vs 0.57 ms and 0.70 vs 0.84 ms in
// two runs, prefill (1024x1024, T = 64) 1.91 vs 3.37 ms: 35 against 20 GMAC/s.
//
// quant.c is compiled once per instruction set (generic, avx2 = AVX2+FMA+F16C, avx512 = AVX-512 F/BW/VL/VNNI:
// q8_0, q4_k and q6_k on 512-bit vectors); each build fills an mb_qkernels table. mb_qlinear_reference (quant_ref.c) is the plain
// reference: dequantize a row to float32, then a float dot product, with x unquantized.
#ifndef MB_QUANT_H
#define MB_QUANT_H

#include <stddef.h>
#include <stdint.h>

// The codes native.ts passes (the order of QType there).
enum {
	MB_Q_F32 = 0, MB_Q_F16, MB_Q_BF16, MB_Q_Q8_0, MB_Q_Q4_0, MB_Q_Q4_1, MB_Q_Q5_0, MB_Q_Q5_1,
	MB_Q_Q4_K, MB_Q_Q5_K, MB_Q_Q6_K, MB_Q_COUNT
};

/** Values per block, bytes per block. */
extern const int mb_q_block_size[MB_Q_COUNT], mb_q_block_bytes[MB_Q_COUNT];
/** Whether the type's kernels read x as q8 blocks (every type but f32 / f16 / bf16). */
static inline int mb_q_uses_q8x(int qtype) { return qtype >= MB_Q_Q8_0; }

/** 32 activations ≈ d·q; s[h] = Σ q over half h (16 values), for the types' offsets and minimums. */
typedef struct {
	float d;
	int16_t s[2];
	int8_t q[32];
} mb_q8x;

typedef struct {
	const uint8_t *W;    // N rows of row_bytes
	size_t row_bytes;
	int qtype;
	const float *x;      // (T, stride S), first K columns: read by the f16 / bf16 kernels
	const mb_q8x *xq;    // (T, K/32): read by the others (mb_quantize_x)
	float *y;            // (T, N)
	const float *epi;    // residual (T, N) or softplus bias (N), by mode (kernels.h's MB_EPI_*)
	int N, K, T, S, mode;
	const uint8_t *Wp;   // q8_0 / q4_0 / q4_k, optional: W packed in groups of Wg rows (mb_pack), read by the build of that layout
	int Wg;              // 16 (AVX-512 VNNI) or 8 (AVX2); 0 when Wp is NULL
} mb_qlinear_args;

typedef struct {
	const char *name;
	void (*qlinear)(const mb_qlinear_args *a, int n0, int n1); // output rows n0..n1-1, every token
} mb_qkernels;

extern const mb_qkernels mb_qkernels_generic;
#if defined(MB_HAVE_X86)
extern const mb_qkernels mb_qkernels_avx2, mb_qkernels_avx512;
#endif

// q8_0, q4_0 and q4_k packed in groups of G rows, for the kernels that compute G rows at once (G = 16: AVX-512 VNNI,
// quant_wide.c; G = 8: AVX2, quant.c): per group (group by group) and in a group per block of 32 columns (q4_k: 64),
// the G rows' scales as floats, then the weights with lane r of every 4·G bytes holding row r:
//   q8_0 (MB_PACK_BLOCK(G) bytes): for each 4 columns 4k..4k+3 (k < 8), the G rows' 4 weights (G = 16: each + 128,
//        the unsigned operand of dpbusd; G = 8: as stored);
//   q4_0 (MB_PACK_BLOCK_Q4_0(G) bytes): for k < 4, the G rows' 4 bytes 4k..4k+3 of the block as stored (low nibbles
//        columns 4k.., high nibbles columns 16 + 4k..; codes 0..15, value d·(code − 8));
//   q4_k, per 64 columns (two 32-value sub-blocks, which share bytes as stored) instead of 32, MB_PACK_UNIT_Q4_K(G)
//        bytes: d·scale of the low and of the high sub-block, then dmin·min of each (4 rows of G floats), then for
//        k < 8 the G rows' 4 bytes 4k..4k+3 of the 32 (low nibbles: the low sub-block's columns 4k..; high: the
//        high one's), value d·scale·code − dmin·min.
// One instruction then feeds G rows, and a block's integer sums need one conversion and one multiply-add for all G
// rows instead of one per row.
#define MB_PACK_BLOCK(G) (36 * (G))
#define MB_PACK_BLOCK_Q4_0(G) (20 * (G))
#define MB_PACK_UNIT_Q4_K(G) (48 * (G))
/** Whether a type has a packed form. */
static inline int mb_q_packs(int qtype) { return qtype == MB_Q_Q8_0 || qtype == MB_Q_Q4_0 || qtype == MB_Q_Q4_K; }
/** Bytes of one packed group of G rows of K columns (groups follow each other at this stride). */
size_t mb_pack_group_bytes(int qtype, int K, int G);
/** Bytes of the packed form of an (N, K) matrix (N rounded up to G rows), rounded up to 64. */
size_t mb_packed_bytes(int qtype, int N, int K, int G);
/** Block b (q4_k: unit b of 64 columns) of rows 0..rows-1 (rows <= G) of W (row_bytes apart) as one packed block;
 *  missing rows are zeros. */
void mb_pack_block(int qtype, const uint8_t *W, size_t row_bytes, int rows, int G, int b, uint8_t *out);
/** An (N, K) matrix into mb_packed_bytes(qtype, N, K, G) bytes at out (64-byte aligned, for aligned loads). */
void mb_pack(int qtype, const uint8_t *W, size_t row_bytes, int N, int K, int G, uint8_t *out);

/** Quantize K floats (K a multiple of 32) into K/32 blocks. */
void mb_quantize_x(const float *x, int K, mb_q8x *out);
/** Row r of a matrix dequantized to K floats: ggml's dequantize_row_* formulas. */
void mb_dequantize_row(int qtype, const uint8_t *row, int K, float *out);
/** The reference: rows n0..n1-1 by dequantize-then-dot (double accumulator), x in float32; `tmp` holds K floats. */
void mb_qlinear_reference(const mb_qlinear_args *a, int n0, int n1, float *tmp);
/** softplus(v) = ln(1 + e^v), scalar, for the epilogues of the quantized kernels. */
float mb_softplus(float v);
float mb_f16_to_f32(uint16_t h);

#endif
