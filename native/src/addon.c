// N-API bindings of the native CPU kernels. Every array is a Float32Array view read and written in place (no
// copies): weights stay where the model keeps them, outputs are allocated by the JavaScript caller. Lengths are
// checked here so that a caller bug throws a RangeError instead of reading out of bounds. The kernels run
// synchronously on the calling thread plus the pool's workers (pool.c).
#define NAPI_VERSION 8
#include <node_api.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "pool.h"
#include "quant.h"
#include "step.h"

// The float32 kernels and the quantized ones in use. The avx512 set is the AVX2 float32 kernels (a 16-float build
// of them was measured no faster) with the AVX-512 VNNI quantized kernels.
static const mb_kernels *K_ = &mb_kernels_generic;
static const mb_qkernels *Q_ = &mb_qkernels_generic;

// __builtin_cpu_supports also checks that the OS saves the wider registers (XGETBV), not just CPUID.
static int avx2_supported(void) {
#if defined(MB_HAVE_X86)
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
#else
	return 0;
#endif
}

static int avx512_supported(void) {
#if defined(MB_HAVE_X86)
	return avx2_supported() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
	       __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
#else
	return 0;
#endif
}

/** Selects the instruction set by name; 0 when this CPU or build cannot run it. */
static int select_isa(const char *name) {
	if (strcmp(name, "generic") == 0) {
		K_ = &mb_kernels_generic;
		Q_ = &mb_qkernels_generic;
		return 1;
	}
#if defined(MB_HAVE_X86)
	if (strcmp(name, "avx2") == 0 && avx2_supported()) {
		K_ = &mb_kernels_avx2;
		Q_ = &mb_qkernels_avx2;
		return 1;
	}
	if (strcmp(name, "avx512") == 0 && avx512_supported()) {
		K_ = &mb_kernels_avx2;
		Q_ = &mb_qkernels_avx512;
		return 1;
	}
#endif
	return 0;
}

/** The fastest set this CPU runs. */
static void select_best_isa(void) {
	if (!select_isa("avx512") && !select_isa("avx2")) select_isa("generic");
}

/** The name of the set in use. */
static const char *isa_name(void) { return Q_->name; }

// ---- argument helpers -----------------------------------------------------------------------------------------

#define CHECK(call)                                                                                                    \
	do {                                                                                                               \
		if ((call) != napi_ok) return fail(env, "internal N-API call failed: " #call);                               \
	} while (0)

static napi_value fail(napi_env env, const char *msg) {
	bool pending = false;
	napi_is_exception_pending(env, &pending);
	if (!pending) napi_throw_error(env, NULL, msg);
	return NULL;
}

static napi_value range_error(napi_env env, const char *msg) {
	napi_throw_range_error(env, NULL, msg);
	return NULL;
}

/** A Float32Array (or, when nullable, null/undefined → NULL). Returns 0 and throws on a type error. */
static int get_f32(napi_env env, napi_value v, int nullable, float **data, size_t *len, const char *what) {
	napi_valuetype t;
	napi_typeof(env, v, &t);
	if (nullable && (t == napi_null || t == napi_undefined)) {
		*data = NULL;
		*len = 0;
		return 1;
	}
	bool is = false;
	napi_is_typedarray(env, v, &is);
	napi_typedarray_type type;
	void *p = NULL;
	if (!is || napi_get_typedarray_info(env, v, &type, len, &p, NULL, NULL) != napi_ok || type != napi_float32_array) {
		char msg[128];
		snprintf(msg, sizeof msg, "%s: expected a Float32Array", what);
		napi_throw_type_error(env, NULL, msg);
		return 0;
	}
	*data = (float *)p;
	return 1;
}

static int get_int(napi_env env, napi_value v, int *out, int min, const char *what) {
	int32_t i;
	if (napi_get_value_int32(env, v, &i) != napi_ok || i < min) {
		char msg[128];
		snprintf(msg, sizeof msg, "%s: expected an integer >= %d", what, min);
		napi_throw_range_error(env, NULL, msg);
		return 0;
	}
	*out = i;
	return 1;
}

static int get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
	size_t argc = want;
	if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) {
		napi_throw_type_error(env, NULL, "too few arguments");
		return 0;
	}
	return 1;
}

/** Chunk size (units per chunk, a multiple of `align`): about 16 chunks per thread, as the last chunk claimed sets
 *  how long the others wait, but each worth at least min_work (below that, splitting costs more than it saves, and
 *  a job of one chunk runs on the calling thread alone). */
static int chunk_size(int total, double unit_work, double min_work, int align) {
	const int threads = mb_pool_threads();
	int size = (total + 16 * threads - 1) / (16 * threads);
	const double least = ceil(min_work / (unit_work > 0 ? unit_work : 1));
	if (size < least) size = least < total ? (int)least : total;
	if (size < 1) size = 1;
	size = (size + align - 1) / align * align;
	if (size * 65535.0 < total) size = (total + 65534) / 65535;
	return size;
}

// ---- linear ---------------------------------------------------------------------------------------------------

typedef struct {
	mb_linear_args a;
	int rows;
} linear_job;

static void linear_task(void *p, int chunk) {
	linear_job *j = p;
	int n0 = chunk * j->rows, n1 = n0 + j->rows < j->a.N ? n0 + j->rows : j->a.N;
	K_->linear(&j->a, n0, n1);
}

// linear(W, N, K, x, T, S, y, mode, epi)
static napi_value Linear(napi_env env, napi_callback_info info) {
	napi_value argv[9];
	if (!get_args(env, info, 9, argv)) return NULL;
	linear_job j;
	float *W, *x, *y, *epi;
	size_t lw, lx, ly, le;
	if (!get_f32(env, argv[0], 0, &W, &lw, "W") || !get_int(env, argv[1], &j.a.N, 1, "N") ||
	    !get_int(env, argv[2], &j.a.K, 1, "K") || !get_f32(env, argv[3], 0, &x, &lx, "x") ||
	    !get_int(env, argv[4], &j.a.T, 1, "T") || !get_int(env, argv[5], &j.a.S, j.a.K, "S") ||
	    !get_f32(env, argv[6], 0, &y, &ly, "y") || !get_int(env, argv[7], &j.a.mode, 0, "mode") ||
	    !get_f32(env, argv[8], 1, &epi, &le, "epi"))
		return NULL;
	const size_t N = j.a.N, K = j.a.K, T = j.a.T, S = j.a.S;
	if (lw < N * K) return range_error(env, "linear: W is shorter than N·K");
	if (lx < (T - 1) * S + K) return range_error(env, "linear: x is shorter than (T−1)·S + K");
	if (ly < T * N) return range_error(env, "linear: y is shorter than T·N");
	if (j.a.mode > MB_EPI_SOFTPLUS) return range_error(env, "linear: unknown epilogue");
	if (j.a.mode == MB_EPI_RESIDUAL && (!epi || le < T * N)) return range_error(env, "linear: residual is shorter than T·N");
	if (j.a.mode == MB_EPI_SOFTPLUS && (!epi || le < N)) return range_error(env, "linear: bias is shorter than N");
	j.a.W = W;
	j.a.x = x;
	j.a.y = y;
	j.a.epi = epi;
	j.rows = chunk_size(j.a.N, (double)K * T, 65536, 12);
	mb_pool_run(linear_task, &j, (j.a.N + j.rows - 1) / j.rows, (double)N * K * (T + 8)); // T = 1 is memory-bound
	return NULL;
}

// ---- norm -----------------------------------------------------------------------------------------------------

typedef struct {
	mb_norm_args a;
	int rows;
} norm_job;

static void norm_task(void *p, int chunk) {
	norm_job *j = p;
	int t0 = chunk * j->rows, t1 = t0 + j->rows < j->a.T ? t0 + j->rows : j->a.T;
	K_->norm(&j->a, t0, t1);
}

// norm(x, T, d, w, b | null, eps, y)
static napi_value Norm(napi_env env, napi_callback_info info) {
	napi_value argv[7];
	if (!get_args(env, info, 7, argv)) return NULL;
	norm_job j;
	float *x, *w, *b, *y;
	size_t lx, lw, lb, ly;
	double eps;
	if (!get_f32(env, argv[0], 0, &x, &lx, "x") || !get_int(env, argv[1], &j.a.T, 1, "T") ||
	    !get_int(env, argv[2], &j.a.d, 1, "d") || !get_f32(env, argv[3], 0, &w, &lw, "w") ||
	    !get_f32(env, argv[4], 1, &b, &lb, "b"))
		return NULL;
	if (napi_get_value_double(env, argv[5], &eps) != napi_ok) return range_error(env, "norm: eps must be a number");
	if (!get_f32(env, argv[6], 0, &y, &ly, "y")) return NULL;
	const size_t T = j.a.T, d = j.a.d;
	if (lx < T * d || ly < T * d || lw < d || (b && lb < d)) return range_error(env, "norm: an array is shorter than its shape");
	j.a.x = x;
	j.a.w = w;
	j.a.b = b;
	j.a.y = y;
	j.a.eps = (float)eps;
	j.rows = chunk_size(j.a.T, (double)d, 16384, 1);
	mb_pool_run(norm_task, &j, (j.a.T + j.rows - 1) / j.rows, 2.0 * T * d);
	return NULL;
}

// ---- conv -----------------------------------------------------------------------------------------------------

typedef struct {
	mb_conv_args a;
	int chans;
} conv_job;

static void conv_task(void *p, int chunk) {
	conv_job *j = p;
	int c0 = chunk * j->chans, c1 = c0 + j->chans < j->a.E ? c0 + j->chans : j->a.E;
	K_->conv(&j->a, c0, c1);
}

// convSilu(xz, T, E, k, state, w, b, y)
static napi_value ConvSilu(napi_env env, napi_callback_info info) {
	napi_value argv[8];
	if (!get_args(env, info, 8, argv)) return NULL;
	conv_job j;
	float *xz, *state, *w, *b, *y;
	size_t lxz, ls, lw, lb, ly;
	if (!get_f32(env, argv[0], 0, &xz, &lxz, "xz") || !get_int(env, argv[1], &j.a.T, 1, "T") ||
	    !get_int(env, argv[2], &j.a.E, 1, "E") || !get_int(env, argv[3], &j.a.k, 1, "k") ||
	    !get_f32(env, argv[4], 0, &state, &ls, "state") || !get_f32(env, argv[5], 0, &w, &lw, "w") ||
	    !get_f32(env, argv[6], 0, &b, &lb, "b") || !get_f32(env, argv[7], 0, &y, &ly, "y"))
		return NULL;
	const size_t T = j.a.T, E = j.a.E, k = j.a.k;
	if (lxz < T * 2 * E || ls < E * (k - 1) || lw < E * k || lb < E || ly < T * E)
		return range_error(env, "convSilu: an array is shorter than its shape");
	j.a.xz = xz;
	j.a.state = state;
	j.a.w = w;
	j.a.b = b;
	j.a.y = y;
	j.chans = chunk_size(j.a.E, (double)T * k, 16384, 8);
	mb_pool_run(conv_task, &j, (j.a.E + j.chans - 1) / j.chans, 4.0 * T * E * k);
	return NULL;
}

// ---- scan -----------------------------------------------------------------------------------------------------

typedef struct {
	mb_scan_args a;
	int chans;
} scan_job;

static void scan_task(void *p, int chunk) {
	scan_job *j = p;
	int c0 = chunk * j->chans, c1 = c0 + j->chans < j->a.E ? c0 + j->chans : j->a.E;
	K_->scan(&j->a, c0, c1);
}

// scan(delta, xs, dbc, xz, A, D, h, T, E, N, R, y)
static napi_value Scan(napi_env env, napi_callback_info info) {
	napi_value argv[12];
	if (!get_args(env, info, 12, argv)) return NULL;
	scan_job j;
	float *delta, *xs, *dbc, *xz, *A, *D, *h, *y;
	size_t ldl, lxs, ldbc, lxz, lA, lD, lh, ly;
	if (!get_f32(env, argv[0], 0, &delta, &ldl, "delta") || !get_f32(env, argv[1], 0, &xs, &lxs, "xs") ||
	    !get_f32(env, argv[2], 0, &dbc, &ldbc, "dbc") || !get_f32(env, argv[3], 0, &xz, &lxz, "xz") ||
	    !get_f32(env, argv[4], 0, &A, &lA, "A") || !get_f32(env, argv[5], 0, &D, &lD, "D") ||
	    !get_f32(env, argv[6], 0, &h, &lh, "h") || !get_int(env, argv[7], &j.a.T, 1, "T") ||
	    !get_int(env, argv[8], &j.a.E, 1, "E") || !get_int(env, argv[9], &j.a.N, 1, "N") ||
	    !get_int(env, argv[10], &j.a.R, 0, "R") || !get_f32(env, argv[11], 0, &y, &ly, "y"))
		return NULL;
	const size_t T = j.a.T, E = j.a.E, N = j.a.N, R = j.a.R;
	if (ldl < T * E || lxs < T * E || ldbc < T * (R + 2 * N) || lxz < T * 2 * E || lA < E * N || lD < E ||
	    lh < E * N || ly < T * E)
		return range_error(env, "scan: an array is shorter than its shape");
	j.a.delta = delta;
	j.a.xs = xs;
	j.a.dbc = dbc;
	j.a.xz = xz;
	j.a.A = A;
	j.a.D = D;
	j.a.h = h;
	j.a.y = y;
	j.chans = chunk_size(j.a.E, (double)T * N * 4, 32768, 8);
	mb_pool_run(scan_task, &j, (j.a.E + j.chans - 1) / j.chans, 16.0 * T * E * N); // mostly the exps
	return NULL;
}

// ---- logProb --------------------------------------------------------------------------------------------------

// logProb(logits, T, V, target: Int32Array, out: Float64Array)
static napi_value LogProb(napi_env env, napi_callback_info info) {
	napi_value argv[5];
	if (!get_args(env, info, 5, argv)) return NULL;
	float *logits;
	size_t ll, lt, lo;
	int T, V;
	if (!get_f32(env, argv[0], 0, &logits, &ll, "logits") || !get_int(env, argv[1], &T, 1, "T") ||
	    !get_int(env, argv[2], &V, 1, "V"))
		return NULL;
	napi_typedarray_type tt, to;
	void *tp, *op;
	bool is1 = false, is2 = false;
	napi_is_typedarray(env, argv[3], &is1);
	napi_is_typedarray(env, argv[4], &is2);
	if (!is1 || !is2 || napi_get_typedarray_info(env, argv[3], &tt, &lt, &tp, NULL, NULL) != napi_ok ||
	    napi_get_typedarray_info(env, argv[4], &to, &lo, &op, NULL, NULL) != napi_ok || tt != napi_int32_array ||
	    to != napi_float64_array) {
		napi_throw_type_error(env, NULL, "logProb: expected an Int32Array of targets and a Float64Array output");
		return NULL;
	}
	if (ll < (size_t)T * V || lt < (size_t)T || lo < (size_t)T) return range_error(env, "logProb: an array is shorter than its shape");
	const int32_t *target = tp;
	double *out = op;
	for (int t = 0; t < T; t++) {
		if (target[t] < 0 || target[t] >= V) return range_error(env, "logProb: target outside the vocabulary");
		const float *row = logits + (size_t)t * V;
		double m = -INFINITY, s = 0;
		for (int v = 0; v < V; v++) m = row[v] > m ? row[v] : m;
		for (int v = 0; v < V; v++) s += exp(row[v] - m);
		out[t] = row[target[t]] - m - log(s);
	}
	return NULL;
}

// ---- configuration --------------------------------------------------------------------------------------------

static napi_value make_info(napi_env env) {
	napi_value o, v, list;
	napi_create_object(env, &o);
	napi_create_string_utf8(env, isa_name(), NAPI_AUTO_LENGTH, &v);
	napi_set_named_property(env, o, "isa", v);
	napi_create_array(env, &list);
	uint32_t n = 0;
	napi_create_string_utf8(env, "generic", NAPI_AUTO_LENGTH, &v);
	napi_set_element(env, list, n++, v);
	if (avx2_supported()) {
		napi_create_string_utf8(env, "avx2", NAPI_AUTO_LENGTH, &v);
		napi_set_element(env, list, n++, v);
	}
	if (avx512_supported()) {
		napi_create_string_utf8(env, "avx512", NAPI_AUTO_LENGTH, &v);
		napi_set_element(env, list, n++, v);
	}
	napi_set_named_property(env, o, "isas", list);
	napi_create_int32(env, mb_pool_threads(), &v);
	napi_set_named_property(env, o, "threads", v);
	napi_create_int32(env, mb_available_cpus(), &v);
	napi_set_named_property(env, o, "cpus", v);
	const mb_pool_stats st = mb_pool_get_stats();
	napi_value so;
	napi_create_object(env, &so);
	napi_create_double(env, st.jobs, &v);
	napi_set_named_property(env, so, "jobs", v);
	napi_create_double(env, st.wait_ns / 1e6, &v);
	napi_set_named_property(env, so, "waitMs", v);
	napi_create_double(env, st.sleeps, &v);
	napi_set_named_property(env, so, "sleeps", v);
	napi_create_double(env, st.alone_jobs, &v);
	napi_set_named_property(env, so, "aloneJobs", v);
	napi_create_double(env, st.switches, &v);
	napi_set_named_property(env, so, "switches", v);
	napi_set_named_property(env, o, "pool", so);
	return o;
}

static napi_value Info(napi_env env, napi_callback_info info) {
	(void)info;
	return make_info(env);
}

// configure({ isa?: string, threads?: number, spinUs?: number }) → info
static napi_value Configure(napi_env env, napi_callback_info info) {
	napi_value argv[1];
	if (!get_args(env, info, 1, argv)) return NULL;
	napi_value v;
	bool has;
	napi_valuetype t;
	if (napi_has_named_property(env, argv[0], "isa", &has) == napi_ok && has) {
		char name[32];
		size_t len;
		CHECK(napi_get_named_property(env, argv[0], "isa", &v));
		napi_typeof(env, v, &t);
		if (t != napi_undefined) {
			if (napi_get_value_string_utf8(env, v, name, sizeof name, &len) != napi_ok) return range_error(env, "isa: expected a string");
			if (!select_isa(name)) return range_error(env, "isa: not available on this CPU or build");
		}
	}
	if (napi_has_named_property(env, argv[0], "threads", &has) == napi_ok && has) {
		CHECK(napi_get_named_property(env, argv[0], "threads", &v));
		napi_typeof(env, v, &t);
		int n;
		if (t != napi_undefined) {
			if (!get_int(env, v, &n, 1, "threads")) return NULL;
			if (n != mb_pool_threads()) mb_pool_init(n);
		}
	}
	if (napi_has_named_property(env, argv[0], "spinUs", &has) == napi_ok && has) {
		CHECK(napi_get_named_property(env, argv[0], "spinUs", &v));
		napi_typeof(env, v, &t);
		int n;
		if (t != napi_undefined) {
			if (!get_int(env, v, &n, 0, "spinUs")) return NULL;
			mb_pool_set_spin_us(n);
		}
	}
	return make_info(env);
}

#include "addon_quant.inc"

static int initialised = 0;

NAPI_MODULE_INIT() {
	if (!initialised) {
		initialised = 1;
		select_best_isa();
		const char *isa = getenv("MAMBABYTE_NATIVE_ISA");
		if (isa && *isa) select_isa(isa);
		const char *th = getenv("MAMBABYTE_THREADS");
		int threads = th && atoi(th) > 0 ? atoi(th) : mb_available_cpus();
		mb_pool_init(threads);
	}
	static const struct {
		const char *name;
		napi_callback fn;
	} fns[] = {
		{"linear", Linear}, {"norm", Norm}, {"convSilu", ConvSilu}, {"scan", Scan},
		{"logProb", LogProb}, {"info", Info}, {"configure", Configure},
		{"qlinear", QLinear}, {"qlinearReference", QLinearReference}, {"dequantizeRow", DequantizeRow},
		{"createModel", CreateModel}, {"stepModel", StepModel}, {"forwardModel", ForwardModel}, {"keepModel", KeepModel}, {"readProbe", ReadProbe},
	};
	for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
		napi_value f;
		napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &f);
		napi_set_named_property(env, exports, fns[i].name, f);
	}
	return exports;
}
