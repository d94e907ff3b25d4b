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

/** The records of layer l (see step.h). */
typedef struct {
	float *conv, *ssm, *x, *delta, *xs, *dbc;
} mb_rec;
static mb_rec rec_of(const mb_model *m, int l) {
	const size_t E = m->E, cap = m->cap;
	float *p = m->rec + (size_t)l * m->rec_stride;
	mb_rec r;
	r.conv = p;
	r.ssm = r.conv + E * (m->k - 1);
	r.x = r.ssm + E * m->N;
	r.delta = r.x + cap * E;
	r.xs = r.delta + cap * E;
	r.dbc = r.xs + cap * E;
	return r;
}

int mb_model_reserve(mb_model *m, int T) {
	if (T <= m->cap) return 1;
	const size_t d = m->d, E = m->E, DBC = m->R + 2 * m->N, maxK = d > E ? d : E;
	const size_t stride = E * (m->k - 1) + E * m->N + (size_t)T * (3 * E + DBC);
	float *x = calloc((size_t)T * (2 * d + 2 * E + E + DBC + E + E), sizeof(float));
	mb_q8x *xq = calloc((size_t)T * (maxK / 32 + 1), sizeof(mb_q8x));
	float *rec = calloc((size_t)m->L * stride, sizeof(float));
	float *rec_y = calloc((size_t)m->L * T * E, sizeof(float));
	if (!x || !xq || !rec || !rec_y) {
		free(x), free(xq), free(rec), free(rec_y);
		return 0;
	}
	free(m->x), free(m->xq), free(m->rec), free(m->rec_y);
	m->x = x;
	m->xq = xq;
	m->rec = rec;
	m->rec_y = rec_y;
	m->rec_stride = stride;
	m->cap = T;
	m->recorded = 0;
	m->u = m->x + (size_t)T * d;
	m->xz = m->u + (size_t)T * d;
	m->xs = m->xz + (size_t)T * 2 * E;
	m->dbc = m->xs + (size_t)T * E;
	m->delta = m->dbc + (size_t)T * DBC;
	m->y = m->delta + (size_t)T * E;
	return 1;
}

int mb_model_init(mb_model *m, int threads) {
	const int L = m->L, E = m->E;
	m->phases = calloc((size_t)L * 11 + 3, sizeof(mb_phase));
	if (!m->phases || !mb_model_reserve(m, 1)) return 0;
	int n = 0;
#define LINEAR(op, l, mat) \
	do { \
		if (mb_q_uses_q8x((mat)->qtype)) m->phases[n++] = phase(OP_QUANT, l, mat, 1, 1, 1, threads); \
		m->phases[n++] = phase(op, l, mat, (mat)->rows, (mat)->cols + 32.0, (mat)->packed ? (mat)->group : 4, threads); \
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
	if (m->layers) {
		for (int l = 0; l < m->L; l++) {
			mb_layer *y = &m->layers[l];
			free(y->in_proj.packed), free(y->x_proj.packed), free(y->dt_proj.packed), free(y->out_proj.packed);
		}
	}
	free(m->head.packed);
	free(m->x);
	free(m->xq);
	free(m->rec);
	free(m->rec_y);
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
		const mb_linear_args a = {w->data, x, y, epi, w->rows, w->cols, m->T, S, mode};
		m->K->linear(&a, n0, n1);
	} else {
		const mb_qlinear_args a = {w->data, w->row_bytes, w->qtype, x, m->xq, y, epi, w->rows, w->cols, m->T, S, mode, w->packed, w->group};
		m->Q->qlinear(&a, n0, n1);
	}
}

static void run_chunk(mb_model *m, const mb_phase *p, int chunk) {
	const int E = m->E, T = m->T, l = p->layer, u0 = chunk * p->per_chunk;
	const mb_layer *ly = &m->layers[l < m->L ? l : 0];
	switch (p->op) {
	case OP_NORM: case OP_NORM_F: {
		const int f = p->op == OP_NORM_F;
		const mb_norm_args a = {m->x, f ? m->norm_f : ly->norm, f ? m->norm_f_b : ly->norm_b, m->u, T, m->d, m->eps};
		m->K->norm(&a, 0, T);
		return;
	}
	case OP_QUANT: {
		int S;
		const float *in = linear_input(m, p[1].op, &S);
		const int K = p->mat->cols;
		if (!S) S = K;
		for (int t = 0; t < T; t++) mb_quantize_x(in + (size_t)t * S, K, m->xq + (size_t)t * (K / 32));
		return;
	}
	case OP_CONV: {
		const int c1 = u0 + p->per_chunk < E ? u0 + p->per_chunk : E, km = m->k - 1;
		float *st = m->conv[l];
		if (m->record) { // the state before, and the conv's inputs
			const mb_rec r = rec_of(m, l);
			memcpy(r.conv + (size_t)u0 * km, st + (size_t)u0 * km, (size_t)(c1 - u0) * km * sizeof(float));
			for (int t = 0; t < T; t++)
				memcpy(r.x + (size_t)t * E + u0, m->xz + (size_t)t * 2 * E + u0, (size_t)(c1 - u0) * sizeof(float));
		}
		const mb_conv_args a = {m->xz, st, ly->conv_w, ly->conv_b, m->xs, T, E, m->k};
		m->K->conv(&a, u0, c1);
		// conv state: the last k−1 of [state | x_0 .. x_T−1], oldest first (in place: entry i reads entry T + i)
		for (int c = u0; c < c1; c++) {
			float *s = st + (size_t)c * km;
			for (int i = 0; i < km; i++) s[i] = T + i < km ? s[T + i] : m->xz[(size_t)(T + i - km) * 2 * E + c];
		}
		return;
	}
	case OP_SCAN: {
		const int c1 = u0 + p->per_chunk < E ? u0 + p->per_chunk : E, N = m->N, DBC = m->R + 2 * N;
		if (m->record) { // the state before, and the recurrence's inputs
			const mb_rec r = rec_of(m, l);
			memcpy(r.ssm + (size_t)u0 * N, m->ssm[l] + (size_t)u0 * N, (size_t)(c1 - u0) * N * sizeof(float));
			for (int t = 0; t < T; t++) {
				memcpy(r.delta + (size_t)t * E + u0, m->delta + (size_t)t * E + u0, (size_t)(c1 - u0) * sizeof(float));
				memcpy(r.xs + (size_t)t * E + u0, m->xs + (size_t)t * E + u0, (size_t)(c1 - u0) * sizeof(float));
			}
			if (u0 == 0) memcpy(r.dbc, m->dbc, (size_t)T * DBC * sizeof(float));
		}
		const mb_scan_args a = {m->delta, m->xs, m->dbc, m->xz, ly->A, ly->D, m->ssm[l], m->y, T, E, N, m->R};
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

void mb_model_forward(mb_model *m, const float *x0, int T, int record) {
	m->T = T;
	m->record = record;
	m->recorded = 0;
	memcpy(m->x, x0, (size_t)T * m->d * sizeof(float));
	for (int i = 0; i < m->nphases; i++) {
		atomic_store_explicit(&m->next[i], 0, memory_order_relaxed);
		atomic_store_explicit(&m->done[i], 0, memory_order_relaxed);
	}
	double cost = 0;
	for (int l = 0; l < m->L; l++) cost += (double)m->layers[l].in_proj.rows * m->layers[l].in_proj.cols * 2 * T;
	mb_pool_run(participant, m, mb_pool_threads(), cost);
	if (record) m->recorded = T;
}

void mb_model_step(mb_model *m, const float *x0) { mb_model_forward(m, x0, 1, 0); }

// The replay of mb_model_keep: chunks of REPLAY_CHANNELS channels of one layer each (layers are independent here:
// every input of the recurrence was recorded).
#define REPLAY_CHANNELS 64

typedef struct {
	mb_model *m;
	int j, per_layer;
} replay_job;

static void replay_task(void *ctx, int chunk) {
	const replay_job *job = ctx;
	mb_model *m = job->m;
	const int E = m->E, N = m->N, km = m->k - 1, j = job->j;
	const int l = chunk / job->per_layer, c0 = (chunk % job->per_layer) * REPLAY_CHANNELS;
	const int c1 = c0 + REPLAY_CHANNELS < E ? c0 + REPLAY_CHANNELS : E;
	const mb_rec r = rec_of(m, l);
	const mb_layer *ly = &m->layers[l];
	for (int c = c0; c < c1; c++) { // the last k−1 of [state before | x_0 .. x_j−1]
		float *s = m->conv[l] + (size_t)c * km;
		for (int i = 0; i < km; i++) s[i] = j + i < km ? r.conv[(size_t)c * km + j + i] : r.x[(size_t)(j + i - km) * E + c];
	}
	float *h = m->ssm[l];
	memcpy(h + (size_t)c0 * N, r.ssm + (size_t)c0 * N, (size_t)(c1 - c0) * N * sizeof(float));
	// z (m->xz: any finite values) and the output (this layer's rec_y) only matter for y, which is discarded
	const mb_scan_args a = {r.delta, r.xs, r.dbc, m->xz, ly->A, ly->D, h, m->rec_y + (size_t)l * m->cap * E, j, E, N, m->R};
	m->K->scan(&a, c0, c1);
}

int mb_model_keep(mb_model *m, int j) {
	const int T = m->recorded;
	if (T == 0 || j < 0 || j > T) return 0;
	m->recorded = 0;
	if (j == T) return 1; // the state is already that of all T tokens
	replay_job job = {m, j, (m->E + REPLAY_CHANNELS - 1) / REPLAY_CHANNELS};
	mb_pool_run(replay_task, &job, m->L * job.per_layer, (double)j * m->L * m->E * m->N * 8);
	return 1;
}
