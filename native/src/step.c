// See step.h.
#define _GNU_SOURCE
#include "step.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "pool.h"
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

enum { OP_NORM, OP_QUANT, OP_IN, OP_CONV, OP_XPROJ, OP_DT, OP_SCAN, OP_OUT, OP_NORM_F, OP_HEAD };

// Work per chunk (multiply-adds, or their equivalent): below ~16k a chunk costs less than handing it over.
#define CHUNK_WORK 16384.0

/** The phase's split: about one chunk per CHUNK_WORK, at most 8 per thread, `align` units each. */
static mb_phase phase(int op, int layer, const mb_mat *mat, int units, double unit_work, int align, int threads) {
	int chunks = (int)(units * unit_work / CHUNK_WORK);
	if (chunks > 8 * threads) chunks = 8 * threads;
	if (chunks < 1) chunks = 1;
	int per = (units + chunks - 1) / chunks;
	per = (per + align - 1) / align * align;
	return (mb_phase){op, layer, (units + per - 1) / per, per, mat};
}

int mb_model_init(mb_model *m, int threads) {
	const int d = m->d, E = m->E, L = m->L, DBC = m->R + 2 * m->N;
	int maxK = d > E ? d : E;
	m->x = calloc((size_t)d * 2 + 2 * E + E + DBC + E + E, sizeof(float));
	m->xq = calloc((size_t)maxK / 32 + 1, sizeof(mb_q8x));
	m->phases = calloc((size_t)L * 11 + 3, sizeof(mb_phase));
	if (!m->x || !m->xq || !m->phases) return 0;
	m->u = m->x + d;
	m->xz = m->u + d;
	m->xs = m->xz + 2 * E;
	m->dbc = m->xs + E;
	m->delta = m->dbc + DBC;
	m->y = m->delta + E;
	int n = 0;
#define LINEAR(op, l, mat) \
	do { \
		if (mb_q_uses_q8x((mat)->qtype)) m->phases[n++] = phase(OP_QUANT, l, mat, 1, 1, 1, threads); \
		m->phases[n++] = phase(op, l, mat, (mat)->rows, (mat)->cols + 32.0, 4, threads); \
	} while (0)
	for (int l = 0; l < L; l++) {
		mb_layer *ly = &m->layers[l];
		m->phases[n++] = phase(OP_NORM, l, NULL, 1, 1, 1, threads);
		LINEAR(OP_IN, l, &ly->in_proj);
		m->phases[n++] = phase(OP_CONV, l, NULL, E, m->k * 4.0, 8, threads);
		LINEAR(OP_XPROJ, l, &ly->x_proj);
		LINEAR(OP_DT, l, &ly->dt_proj);
		m->phases[n++] = phase(OP_SCAN, l, NULL, E, m->N * 24.0, 8, threads); // the exps dominate
		LINEAR(OP_OUT, l, &ly->out_proj);
	}
	m->phases[n++] = phase(OP_NORM_F, 0, NULL, 1, 1, 1, threads);
	LINEAR(OP_HEAD, 0, &m->head);
#undef LINEAR
	m->nphases = n;
	m->next = calloc((size_t)n, sizeof(_Atomic int));
	m->done = calloc((size_t)n, sizeof(_Atomic int));
	return m->next && m->done;
}

void mb_model_free(mb_model *m) {
	free(m->x);
	free(m->xq);
	free(m->phases);
	free((void *)m->next);
	free((void *)m->done);
	free(m->layers);
}

/** The input of a projection phase, and its row stride. */
static const float *linear_input(const mb_model *m, int op, int *S) {
	*S = op == OP_DT ? m->R + 2 * m->N : 0;
	switch (op) {
	case OP_IN: case OP_HEAD: return m->u;
	case OP_XPROJ: return m->xs;
	case OP_DT: return m->dbc;
	default: return m->y; // OP_OUT
	}
}

static void run_linear(const mb_model *m, const mb_phase *p, int n0, int n1) {
	int S;
	const float *x = linear_input(m, p->op, &S);
	const mb_mat *w = p->mat;
	if (!S) S = w->cols;
	float *y = p->op == OP_IN ? m->xz : p->op == OP_XPROJ ? m->dbc : p->op == OP_DT ? m->delta : p->op == OP_OUT ? m->x : m->logits;
	const int mode = p->op == OP_OUT ? MB_EPI_RESIDUAL : p->op == OP_DT ? MB_EPI_SOFTPLUS : MB_EPI_NONE;
	const float *epi = p->op == OP_OUT ? m->x : p->op == OP_DT ? m->layers[p->layer].dt_b : NULL;
	if (w->qtype == MB_Q_F32) {
		const mb_linear_args a = {w->data, x, y, epi, w->rows, w->cols, 1, S, mode};
		m->K->linear(&a, n0, n1);
	} else {
		const mb_qlinear_args a = {w->data, w->row_bytes, w->qtype, x, m->xq, y, epi, w->rows, w->cols, 1, S, mode};
		m->Q->qlinear(&a, n0, n1);
	}
}

static void run_chunk(mb_model *m, const mb_phase *p, int chunk) {
	const int E = m->E, l = p->layer, u0 = chunk * p->per_chunk;
	const mb_layer *ly = &m->layers[l < m->L ? l : 0];
	switch (p->op) {
	case OP_NORM: case OP_NORM_F: {
		const int f = p->op == OP_NORM_F;
		const mb_norm_args a = {m->x, f ? m->norm_f : ly->norm, f ? m->norm_f_b : ly->norm_b, m->u, 1, m->d, m->eps};
		m->K->norm(&a, 0, 1);
		return;
	}
	case OP_QUANT: {
		int S;
		mb_quantize_x(linear_input(m, p[1].op, &S), p->mat->cols, m->xq);
		return;
	}
	case OP_CONV: {
		const int c1 = u0 + p->per_chunk < E ? u0 + p->per_chunk : E, km = m->k - 1;
		float *st = m->conv[l];
		const mb_conv_args a = {m->xz, st, ly->conv_w, ly->conv_b, m->xs, 1, E, m->k};
		m->K->conv(&a, u0, c1);
		for (int c = u0; c < c1; c++) { // conv state: the last k−1 inputs, oldest first
			if (km > 0) {
				memmove(st + (size_t)c * km, st + (size_t)c * km + 1, (km - 1) * sizeof(float));
				st[(size_t)c * km + km - 1] = m->xz[c];
			}
		}
		return;
	}
	case OP_SCAN: {
		const int c1 = u0 + p->per_chunk < E ? u0 + p->per_chunk : E;
		const mb_scan_args a = {m->delta, m->xs, m->dbc, m->xz, ly->A, ly->D, m->ssm[l], m->y, 1, E, m->N, m->R};
		m->K->scan(&a, u0, c1);
		return;
	}
	default: {
		const int n1 = u0 + p->per_chunk < p->mat->rows ? u0 + p->per_chunk : p->mat->rows;
		run_linear(m, p, u0, n1);
	}
	}
}

/** One thread's walk over the phases (see step.h). */
static void participant(void *ctx, int unused) {
	(void)unused;
	mb_model *m = ctx;
	for (int i = 0; i < m->nphases; i++) {
		const mb_phase *p = &m->phases[i];
		int c;
		while ((c = atomic_fetch_add(&m->next[i], 1)) < p->nchunks) {
			run_chunk(m, p, c);
			atomic_fetch_add(&m->done[i], 1);
		}
		for (unsigned it = 1; atomic_load(&m->done[i]) < p->nchunks; it++) {
			cpu_relax();
			if ((it & 4095) == 0) sched_yield(); // the holder of the last chunk was descheduled
		}
	}
}

void mb_model_step(mb_model *m, const float *x0) {
	memcpy(m->x, x0, (size_t)m->d * sizeof(float));
	for (int i = 0; i < m->nphases; i++) {
		atomic_store_explicit(&m->next[i], 0, memory_order_relaxed);
		atomic_store_explicit(&m->done[i], 0, memory_order_relaxed);
	}
	double cost = 0;
	for (int l = 0; l < m->L; l++) cost += (double)m->layers[l].in_proj.rows * m->layers[l].in_proj.cols * 2;
	mb_pool_run(participant, m, mb_pool_threads(), cost);
}
