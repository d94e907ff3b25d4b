// A persistent pool of worker threads for the kernels. The calling (JavaScript) thread always takes part, so
// `threads` = workers + 1. A job is split into chunks that every thread claims from one atomic counter: if a
// worker is descheduled (a shared machine), the others simply take its chunks instead of waiting for it.
#ifndef MB_POOL_H
#define MB_POOL_H

typedef void (*mb_task_fn)(void *ctx, int chunk);

/** Start the pool with `threads` threads in all (1 = no workers). Call again to resize, but not while a job runs. */
void mb_pool_init(int threads);
int mb_pool_threads(void);
/** Idle workers spin this long (microseconds) waiting for the next job before they sleep. */
void mb_pool_set_spin_us(int us);
/**
 * Run fn(ctx, 0..nchunks-1) across the pool; returns when every chunk is done. nchunks < 65536. `cost` estimates
 * the job's cost in any fixed unit: the pool compares time per unit split and unsplit (see pool.c).
 */
void mb_pool_run(mb_task_fn fn, void *ctx, int nchunks, double cost);
typedef struct {
	double jobs;       // jobs split across threads
	double alone_jobs; // jobs of several chunks run on the calling thread alone (busy CPUs, or a probe)
	double wait_ns;    // time the caller waited for workers to finish their last chunks
	double sleeps;     // waits long enough that the caller slept (a worker was descheduled)
	double switches;   // changes of the preferred mode (split / alone)
} mb_pool_stats;
mb_pool_stats mb_pool_get_stats(void);

/** The number of CPUs this process may run on. */
int mb_available_cpus(void);

#endif
