// A whole decode step (T = 1: every layer, then the final norm and the head) as one native call, on the pool.
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
	float *logits;
	// scratch: x (d), u (d), xz (2E), xs (E), dbc (R+2N), delta (E), y (E); xq for the largest input
	float *x, *u, *xz, *xs, *dbc, *delta, *y;
	mb_q8x *xq;
	mb_phase *phases;
	int nphases;
	_Atomic int *next, *done; // per phase
} mb_model;

/** Builds the phase list and scratch for `threads` threads; returns 0 when out of memory. Weights are borrowed. */
int mb_model_init(mb_model *m, int threads);
void mb_model_free(mb_model *m);
/** One step from x (d floats, the token's embedding), updating conv and ssm in place, writing logits (V). */
void mb_model_step(mb_model *m, const float *x0);

#endif
