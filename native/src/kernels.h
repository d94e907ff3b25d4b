// The kernels' arguments and the per-instruction-set function table. kernels.c is compiled once per instruction
// set (generic: the compiler's baseline; avx2: -mavx2 -mfma) and addon.c picks a table at run time from what the
// CPU reports.
// Every function computes a slice of the output ([n0, n1) rows or channels), so the pool can split the work.
#ifndef MB_KERNELS_H
#define MB_KERNELS_H

#include <stddef.h>

enum { MB_EPI_NONE = 0, MB_EPI_RESIDUAL = 1, MB_EPI_SOFTPLUS = 2 };

typedef struct {
	const float *W; // (N, K) row-major
	const float *x; // (T, stride S), first K columns
	float *y;       // (T, N)
	const float *epi; // residual (T, N) or softplus bias (N), by mode
	int N, K, T, S, mode;
} mb_linear_args;

typedef struct {
	const float *delta, *xs; // (T, E)
	const float *dbc;        // (T, R + 2N): [dt_r | B | C]
	const float *xz;         // (T, 2E): [x | z]
	const float *A, *D;      // (E, N), (E)
	float *h;                // (E, N), updated in place
	float *y;                // (T, E)
	int T, E, N, R;
} mb_scan_args;

typedef struct {
	const float *xz;    // (T, 2E)
	const float *state; // (E, k-1)
	const float *w, *b; // (E, k), (E)
	float *y;           // (T, E)
	int T, E, k;
} mb_conv_args;

typedef struct {
	const float *x; // (T, d)
	const float *w, *b; // (d), (d) or NULL (RMSNorm)
	float *y;
	int T, d;
	float eps;
} mb_norm_args;

typedef struct {
	const char *name;
	void (*linear)(const mb_linear_args *a, int n0, int n1);         // output rows n0..n1-1, every token
	void (*scan)(const mb_scan_args *a, int c0, int c1);             // channels c0..c1-1, every step
	void (*conv)(const mb_conv_args *a, int c0, int c1);             // channels c0..c1-1, every step
	void (*norm)(const mb_norm_args *a, int t0, int t1);             // rows t0..t1-1
} mb_kernels;

extern const mb_kernels mb_kernels_generic;
#if defined(MB_HAVE_X86)
extern const mb_kernels mb_kernels_avx2;
#endif

#endif
