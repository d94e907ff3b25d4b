// A whole decode step (T = 1: every layer, then the final norm and the head) as one native call, on the pool;
// mb_model_forward runs the same phases over T tokens at once (a speculative verify pass, a prefill chunk), and
// mb_model_keep rolls a recorded pass back to its first j tokens (below).
// Decoding a small model used to cost one JavaScript-to-native call per operation per layer, and most of those
// jobs were too small for the pool to split. Here the step is a fixed list of phases (norm, in_proj, conv, x_proj,
// dt_proj, scan, out_proj per layer, plus the quantization of a quantized projection's input); every thread of
// the pool walks the list, claiming chunks of the current phase from an atomic counter and waiting for the
// phase's last chunk before the next. A thread that arrives late (or never: the pool may run everything on the
// calling thread) finds the chunks already claimed and moves on, so no thread ever waits for one that has not
// started. The kernels are the same as the per-operation path's, and every kernel's result does not depend on
// how its rows or channels were split, so the fused step's logits and state equal the per-operation path's bit
// for bit on one instruction set.
#ifndef MB_STEP_H
#define MB_STEP_H

#include <stdatomic.h>
#include <stddef.h>

#include "kernels.h"
#include "quant.h"

typedef struct {
	const void *data; // float (qtype MB_Q_F32) or blocks
	int qtype, rows, cols;
	size_t row_bytes;
	uint8_t *packed; // q8_0 / q4_0 / q4_k: a copy packed in groups of `group` rows (quant.h's mb_pack), owned; else NULL
	int group;
} mb_mat;

typedef struct {
	const float *norm, *norm_b, *conv_w, *conv_b, *dt_b, *A, *D; // norm_b NULL for RMSNorm
	mb_mat in_proj, x_proj, dt_proj, out_proj;
} mb_layer;

typedef struct {
	int op, layer, nchunks, per_chunk;
	const mb_mat *mat; // linear and quantize phases
} mb_phase;

typedef struct mb_model {
	int d, E, N, R, k, V, L;
	float eps;
	mb_layer *layers;
	const float *norm_f, *norm_f_b;
	mb_mat head;
	// per step
	const mb_kernels *K;
	const mb_qkernels *Q;
	float **conv, **ssm; // per layer (E, k-1), (E, N)
	float *logits;       // (T, V)
	int T;               // tokens of this call
	int cap;             // tokens the scratch holds (mb_model_reserve)
	int record;          // this call keeps what mb_model_keep needs
	int recorded;        // tokens of the last recorded call (0: none to roll back)
	// scratch for cap tokens: x (d), u (d), xz (2E), xs (E), dbc (R+2N), delta (E), y (E) per token; xq for the
	// largest input
	float *x, *u, *xz, *xs, *dbc, *delta, *y;
	mb_q8x *xq;
	// the records of a verify pass, per layer (rec_stride floats each): the conv and SSM states before it, and for
	// each token the conv's input (xz's x half), Δ, x after the conv, and [dt_r | B | C]; z is not kept (the state
	// does not depend on it). rec_y is the replay's discarded output.
	float *rec, *rec_y;
	size_t rec_stride;
	mb_phase *phases;
	int nphases;
	_Atomic int *next, *done; // per phase
} mb_model;

/** Builds the phase list and scratch for `threads` threads; returns 0 when out of memory. Weights are borrowed. */
int mb_model_init(mb_model *m, int threads);
void mb_model_free(mb_model *m);
/** Scratch (and records) for T tokens per call; returns 0 when out of memory (the model stays usable for less). */
int mb_model_reserve(mb_model *m, int T);
/** One step from x (d floats, the token's embedding), updating conv and ssm in place, writing logits (V). */
void mb_model_step(mb_model *m, const float *x0);
/**
 * T tokens from x0 (T, d), updating conv and ssm in place, writing logits (T, V); T <= cap. With record, the pass
 * is kept so that mb_model_keep can roll it back. The same kernels as T single steps would run, on all T rows.
 */
void mb_model_forward(mb_model *m, const float *x0, int T, int record);
/**
 * After a recorded forward of T tokens: set conv and ssm (the arrays of that call, passed again) to what they
 * would be after only its first j tokens (0 <= j <= T). The conv state is rebuilt from the recorded inputs and
 * the selective scan replayed over j steps with the scan kernel: no projections, and the same state as feeding
 * those j tokens. Returns 0 when there is no recorded pass of at least j tokens.
 */
int mb_model_keep(mb_model *m, int j);

#endif
