// See pool.h. One ticket word holds [generation:32 | chunks:16 | next chunk:16]; a thread claims a chunk with a
// compare-and-swap that also checks the generation, so a worker that wakes late can never take a chunk of a newer
// job with the old job's function. The job's fields are read only after a successful claim: the caller cannot
// publish the next job until every claimed chunk has been counted done.
#define _GNU_SOURCE
#include "pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ __volatile__("yield")
#else
#define cpu_relax() ((void)0)
#endif

#define MAX_THREADS 64
#define MAIN_SPIN_NS 200000 // the caller spins this long for the workers' last chunks before it sleeps

static _Atomic uint64_t ticket;  // [generation | chunks | next chunk] of the current job
static _Atomic int done;         // chunks of the current job finished
static _Atomic int busy;         // a job is in flight (a second JS thread runs its job inline instead)
static _Atomic int sleepers;     // workers asleep on `wake`
static _Atomic int main_waiting; // the caller is asleep on `finished`
static _Atomic int stop_below;   // workers with index >= this exit (resizing)
static _Atomic int spin_ns = 300000;
static struct {
	mb_task_fn fn;
	void *ctx;
} job;
static uint32_t generation;
static mb_pool_stats stats; // written by the calling thread only
static int nthreads = 1;
static pthread_t workers[MAX_THREADS];
static pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER, finished = PTHREAD_COND_INITIALIZER;

// Whether splitting pays. On a machine whose other CPUs are busy, the scheduler time-slices our threads with the
// other work, and a worker descheduled while it holds a chunk makes the caller wait: splitting can then be slower
// than running every job on the calling thread alone (measured here: 9 bytes/s against 12 with one CPU-bound
// process next to a 2-thread decode). So the pool measures both. It runs in its preferred mode (split at first) and
// times the jobs per unit of work (the caller's estimate); every `interval` jobs it runs PROBE jobs the other way. If
// the other way is more than 10% faster than the preferred mode's last PROBE jobs, it becomes the preferred mode.
// The interval starts at 2048 jobs (a few tokens) and doubles, up to 65536, while the preferred mode keeps winning.
#define PROBE 64
#define FIRST_INTERVAL 2048
#define MAX_INTERVAL 65536
static struct {
	int alone;         // the preferred mode: 1 = run jobs on the calling thread alone
	int probing;       // the current PROBE jobs run the other mode
	long until_probe;  // jobs until the next probe
	long interval;     // jobs between probes
	long n;            // jobs timed in the current run of PROBE
	double ns, work;   // their time and work
	double rate;       // ns per work of the preferred mode's last run of PROBE jobs (0: none yet)
} adapt, ADAPT0 = {0, 0, FIRST_INTERVAL, FIRST_INTERVAL, 0, 0, 0, 0};


/** Account one timed job; decide the mode at the end of a run of PROBE jobs. */
static void adapt_account(int64_t ns, double work) {
	adapt.ns += ns;
	adapt.work += work;
	if (++adapt.n < PROBE) return;
	const double rate = adapt.ns / (adapt.work > 0 ? adapt.work : 1);
	adapt.n = 0;
	adapt.ns = adapt.work = 0;
	if (!adapt.probing) {
		adapt.rate = rate;
		if ((adapt.until_probe -= PROBE) <= 0 && adapt.rate > 0) adapt.probing = 1;
		return;
	}
	adapt.probing = 0;
	if (rate < 0.9 * adapt.rate) { // the other mode wins
		adapt.alone = !adapt.alone;
		adapt.interval = FIRST_INTERVAL;
		stats.switches++;
	} else if (adapt.interval < MAX_INTERVAL) {
		adapt.interval *= 2;
	}
	adapt.until_probe = adapt.interval;
	adapt.rate = 0; // measure the preferred mode afresh before the next probe
}

static inline uint32_t gen_of(uint64_t v) { return (uint32_t)(v >> 32); }

static int claim(uint32_t gen) {
	uint64_t v = atomic_load_explicit(&ticket, memory_order_acquire);
	for (;;) {
		if (gen_of(v) != gen) return -1;
		uint32_t n = (uint32_t)(v >> 16) & 0xffff, i = (uint32_t)v & 0xffff;
		if (i >= n) return -1;
		if (atomic_compare_exchange_weak_explicit(&ticket, &v, v + 1, memory_order_acq_rel, memory_order_acquire)) return (int)i;
	}
}

/** Runs chunks of job `gen` until none are left. */
static void work(uint32_t gen, int is_worker) {
	int i;
	while ((i = claim(gen)) >= 0) {
		const int n = (int)(atomic_load_explicit(&ticket, memory_order_relaxed) >> 16) & 0xffff;
		job.fn(job.ctx, i);
		// seq_cst: pairs with the caller's main_waiting store before it re-checks `done`
		if (atomic_fetch_add(&done, 1) + 1 == n && is_worker && atomic_load(&main_waiting)) {
			pthread_mutex_lock(&mutex);
			pthread_cond_signal(&finished);
			pthread_mutex_unlock(&mutex);
		}
	}
}

static int64_t now_ns(void) {
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void *worker_main(void *arg) {
	int index = (int)(intptr_t)arg;
	uint32_t seen = gen_of(atomic_load(&ticket));
	for (;;) {
		// Spin for a while: decode issues a job every few tens of microseconds.
		int64_t start = now_ns();
		uint32_t g;
		for (unsigned it = 1;; it++) {
			g = gen_of(atomic_load_explicit(&ticket, memory_order_acquire));
			if (g != seen || index >= atomic_load_explicit(&stop_below, memory_order_relaxed)) break;
			cpu_relax();
			if ((it & 1023) == 0 && now_ns() - start > atomic_load_explicit(&spin_ns, memory_order_relaxed)) {
				pthread_mutex_lock(&mutex);
				atomic_fetch_add(&sleepers, 1);
				while (gen_of(atomic_load(&ticket)) == seen && index < atomic_load(&stop_below)) pthread_cond_wait(&wake, &mutex);
				atomic_fetch_sub(&sleepers, 1);
				pthread_mutex_unlock(&mutex);
				start = now_ns();
			}
		}
		if (index >= atomic_load(&stop_below)) return NULL;
		seen = g;
		work(g, 1);
	}
}

static void wake_all(void) {
	if (atomic_load(&sleepers) > 0) {
		pthread_mutex_lock(&mutex);
		pthread_cond_broadcast(&wake);
		pthread_mutex_unlock(&mutex);
	}
}

int mb_available_cpus(void) {
#ifdef __linux__
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof set, &set) == 0) {
		int n = CPU_COUNT(&set);
		if (n > 0) return n;
	}
#endif
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (int)n : 1;
}

void mb_pool_init(int threads) {
	if (threads < 1) threads = 1;
	if (threads > MAX_THREADS) threads = MAX_THREADS;
	// Stop the current workers (indices 1..nthreads-1), then start the new ones.
	atomic_store(&stop_below, 0);
	pthread_mutex_lock(&mutex);
	pthread_cond_broadcast(&wake);
	pthread_mutex_unlock(&mutex);
	for (int i = 1; i < nthreads; i++) pthread_join(workers[i], NULL);
	atomic_store(&stop_below, MAX_THREADS);
	int started = 1;
	for (int i = 1; i < threads; i++) {
		pthread_attr_t attr;
		pthread_attr_init(&attr);
		pthread_attr_setstacksize(&attr, 1 << 20);
		if (pthread_create(&workers[i], &attr, worker_main, (void *)(intptr_t)i) != 0) {
			pthread_attr_destroy(&attr);
			break;
		}
		pthread_attr_destroy(&attr);
		started++;
	}
	nthreads = started;
	adapt = ADAPT0;
}

int mb_pool_threads(void) { return nthreads; }

mb_pool_stats mb_pool_get_stats(void) { return stats; }

void mb_pool_set_spin_us(int us) { atomic_store(&spin_ns, us < 0 ? 0 : us > 1000000 ? 1000000000 : us * 1000); }

void mb_pool_run(mb_task_fn fn, void *ctx, int nchunks, double cost) {
	if (nchunks <= 0) return;
	int expected = 0;
	if (nthreads == 1 || nchunks == 1 || nchunks > 0xffff ||
	    !atomic_compare_exchange_strong(&busy, &expected, 1)) {
		for (int i = 0; i < nchunks; i++) fn(ctx, i);
		return;
	}
	const int64_t t0 = now_ns();
	if (adapt.alone != adapt.probing) { // alone: preferred and not probing, or probing while splitting is preferred
		for (int i = 0; i < nchunks; i++) fn(ctx, i);
		stats.alone_jobs++;
		adapt_account(now_ns() - t0, cost);
		atomic_store(&busy, 0);
		return;
	}
	stats.jobs++;
	job.fn = fn;
	job.ctx = ctx;
	atomic_store_explicit(&done, 0, memory_order_relaxed);
	uint32_t gen = ++generation;
	atomic_store(&ticket, ((uint64_t)gen << 32) | ((uint64_t)nchunks << 16)); // seq_cst: pairs with the sleepers check
	wake_all();
	work(gen, 0);
	// The last chunks are a worker's. Spin briefly; if it is slow — descheduled on a busy machine — sleep, so the
	// scheduler can run the worker on this CPU, and let it wake us.
	if (atomic_load_explicit(&done, memory_order_acquire) < nchunks) {
		const int64_t start = now_ns();
		unsigned it = 0;
		while (atomic_load_explicit(&done, memory_order_acquire) < nchunks) {
			cpu_relax();
			if ((++it & 255) == 0 && now_ns() - start > MAIN_SPIN_NS) {
				pthread_mutex_lock(&mutex);
				atomic_store(&main_waiting, 1);
				while (atomic_load(&done) < nchunks) pthread_cond_wait(&finished, &mutex);
				atomic_store(&main_waiting, 0);
				pthread_mutex_unlock(&mutex);
				stats.sleeps++;
			}
		}
		stats.wait_ns += now_ns() - start;
	}
	adapt_account(now_ns() - t0, cost);
	atomic_store(&busy, 0);
}
