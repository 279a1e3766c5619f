// A small pool of worker threads for `parallelFor`, built for many short parallel steps in a row
// (decoding runs a few hundred per token, each tens of microseconds long).
//
// Waking a sleeping thread costs tens of microseconds on virtual machines, as much as a decoding
// step's work. So after a job, workers spin (with `pause`) for a while, watching for the next job,
// and only then sleep on a condition variable. Before a product that OpenBLAS runs on its own
// threads, `k_pool_park` sends the spinning workers to sleep at once so they leave the cores free.
// One job at a time: a call made from inside a job is declined and its items run on the calling
// thread (the job already has every thread); a call from a second thread while a job runs is
// declined and `parallelFor` hands its items to Dispatch.
#define _GNU_SOURCE
#include "ckernels.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

#define MAX_WORKERS 255
// 20,000 rounds: 0.1–1 ms of spinning (a `pause` takes roughly 10–150 cycles depending on the CPU;
// about 0.46 ms in all on a 2-core AMD EPYC).
#define SPIN_ROUNDS 20000

static pthread_mutex_t busy = PTHREAD_MUTEX_INITIALIZER;  // held by the thread running a job
static pthread_mutex_t sleep_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static pthread_once_t started_once = PTHREAD_ONCE_INIT;

static int workers = 0;                      // threads started
static _Atomic unsigned long generation = 0;  // bumped for each job
static _Atomic int participants = 0;         // workers asked to take part in the current job
static _Atomic size_t next_item = 0;
static _Atomic int checked_in = 0;           // helpers done with the current job
static _Atomic unsigned long parks = 0;      // bumped by k_pool_park
static size_t item_count = 0;
static k_pool_fn job_fn = NULL;
static void *job_ctx = NULL;
static _Thread_local bool inside_job = false;

static void run_items(void) {
    size_t i;
    while ((i = atomic_fetch_add_explicit(&next_item, 1, memory_order_relaxed)) < item_count) job_fn(job_ctx, i);
}

static void *worker_main(void *arg) {
    const int id = (int)(size_t)arg;
    inside_job = true;  // the pool declines a call made from inside a job
    unsigned long seen = 0;
    for (;;) {
        unsigned long g;
        const unsigned long park = atomic_load_explicit(&parks, memory_order_relaxed);
        int spins = 0;
        while ((g = atomic_load_explicit(&generation, memory_order_acquire)) == seen && spins < SPIN_ROUNDS &&
               atomic_load_explicit(&parks, memory_order_relaxed) == park) {
            CPU_RELAX();
            spins++;
        }
        if (g == seen) {
            pthread_mutex_lock(&sleep_lock);
            while ((g = atomic_load_explicit(&generation, memory_order_acquire)) == seen) pthread_cond_wait(&wake, &sleep_lock);
            pthread_mutex_unlock(&sleep_lock);
        }
        seen = g;
        // The job's caller waits for every helper it asked for to check in before it returns, so
        // the next job cannot start while a helper still reads this one's state.
        if (id < atomic_load_explicit(&participants, memory_order_acquire)) {
            run_items();
            atomic_fetch_add_explicit(&checked_in, 1, memory_order_release);
        }
    }
    return NULL;
}

static void start_workers(void) {
    long cpus = k_pool_cpu_count();
    int n = (int)(cpus > 1 ? cpus - 1 : 0);
    if (n > MAX_WORKERS) n = MAX_WORKERS;
    for (int i = 0; i < n; i++) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &attr, worker_main, (void *)(size_t)i) == 0) workers++;
        pthread_attr_destroy(&attr);
    }
}

// A product called from inside a job runs on single-threaded BLAS (the caller's threads are the
// parallelism), and a parked worker would have to be woken for the next job: nothing to free.
void k_pool_park(void) {
    if (inside_job) return;
    atomic_fetch_add_explicit(&parks, 1, memory_order_relaxed);
}

static _Thread_local int region_depth = 0;
static _Thread_local uint64_t region_started = 0;
static _Thread_local uint64_t region_total = 0;

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

void k_region_begin(void) {
    if (region_depth++ == 0) region_started = now_ns();
}

void k_region_end(void) {
    if (--region_depth == 0) region_total += now_ns() - region_started;
}

uint64_t k_region_ns(void) { return region_total + (region_depth > 0 ? now_ns() - region_started : 0); }

long k_pool_cpu_count(void) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) == 0) return CPU_COUNT(&set);
    return 1;
}

int k_pool_run(size_t threads, size_t items, k_pool_fn fn, void *ctx) {
    if (items == 0) return 1;
    if (inside_job || threads <= 1) return -1;
    if (pthread_mutex_trylock(&busy) != 0) return 0;
    pthread_once(&started_once, start_workers);
    int helpers = (int)(threads - 1) < workers ? (int)(threads - 1) : workers;
    if (helpers == 0) {
        pthread_mutex_unlock(&busy);
        return -1;
    }
    k_region_begin();
    job_fn = fn;
    job_ctx = ctx;
    item_count = items;
    atomic_store_explicit(&next_item, 0, memory_order_relaxed);
    atomic_store_explicit(&checked_in, 0, memory_order_relaxed);
    atomic_store_explicit(&participants, helpers, memory_order_release);
    pthread_mutex_lock(&sleep_lock);
    atomic_fetch_add_explicit(&generation, 1, memory_order_acq_rel);
    pthread_cond_broadcast(&wake);
    pthread_mutex_unlock(&sleep_lock);
    inside_job = true;
    run_items();
    inside_job = false;
    while (atomic_load_explicit(&checked_in, memory_order_acquire) < helpers) CPU_RELAX();
    pthread_mutex_unlock(&busy);
    k_region_end();
    return 1;
}
