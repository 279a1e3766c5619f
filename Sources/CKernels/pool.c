// A small pool of worker threads for `parallelFor`, built for many short parallel steps in a row
// (decoding runs a few hundred per token, each microseconds to tens of microseconds long), on a
// machine that other processes may be using too.
//
// One job at a time. The caller publishes a job, runs items itself, then closes the job: helpers
// that did not join by then stay out, and the caller waits only for the helpers that joined (one
// of them may still run its last item). So a helper that is slow to arrive (asleep, or its core
// taken by another process) costs nothing: the caller has taken its items.
//
// Waking a sleeping thread costs tens of microseconds on virtual machines, as much as a decoding
// step's work. So after a job, workers spin (with `pause`) for a while, watching for the next
// job, and only then sleep on a condition variable. The spinning adapts:
//   - a worker that finds it lost its core while spinning (a round of checks took far longer than
//     it does on a free core: another thread ran meanwhile) cuts its spin budget to a quarter and
//     sleeps at once: spinning there only takes the core from someone else;
//   - a job that arrives while spinning, or soon after the worker went to sleep (spinning would
//     have caught it), doubles the budget again, up to SPIN_MAX_NS.
// The caller watches whether the helpers paid: when it waited for them longer than it would have
// taken to run their items itself (plus SLACK_NS), a helper lost its core in the middle of an
// item; when it woke sleeping workers and none took an item, the wake was for nothing. Each is
// a loss, and the next jobs run on the calling thread alone — the same items one after the other,
// so that results never depend on it — for a while (from SOLO_MIN_NS, doubling up to SOLO_MAX_NS
// while losses follow one another; a job the helpers shared without loss halves it). Before waking
// a sleeping worker the caller also looks at how many threads the machine has runnable: when they
// leave no core free for the helper, that is a loss before the start.
// On a machine whose cores are taken by other processes the pool then works like one thread,
// with a short probe now and then; on a free machine it keeps its helpers.
//
// Before a product that OpenBLAS runs on its own threads, `k_pool_park` sends the spinning workers
// to sleep at once so they leave the cores free. A call made from inside a job is declined and
// its items run on the calling thread (the job already has every thread); a call from a second
// thread while a job runs is declined and `parallelFor` hands its items to Dispatch.
#define _GNU_SOURCE
#include "ckernels.h"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

#define MAX_WORKERS 255
// Longest spin after a job before sleeping (the old fixed 20,000 `pause` rounds took 0.46 ms on a
// 2-core AMD EPYC), and the first budget a worker gets back after it was cut to nothing (a new
// worker starts with nothing: it sleeps until the first job wakes it).
#define SPIN_MAX_NS 500000u
#define SPIN_MIN_NS 20000u
// Checks between two clock readings while spinning (about 2 µs of `pause` on the EPYC), and the
// gap between readings that means the thread was not on its core meanwhile.
#define SPIN_CHECKS 64
#define PREEMPTED_NS 50000u
// A wait for helpers longer than the caller would have taken for their items plus this is a loss;
// then the jobs run on the caller alone for SOLO_MIN_NS, doubling while losses follow each other.
#define SLACK_NS 50000u
#define SOLO_MIN_NS 10000000u
#define SOLO_MAX_NS 256000000u
// A call site's first job, and a job that took less than this on one thread the last time its
// call site ran, run on the calling thread: handing items to another core (the job, its inputs and its outputs crossing
// between caches) costs microseconds, as much as such a job saves. The time per item is kept for
// SITES call sites (by hash), measured on every run, alone or shared.
#define MIN_SHARED_NS 100000u
#define SITES 1024

// The current job in one word: helpers inside it (low 16 bits), whether it still takes helpers,
// whether its caller sleeps until they leave, and a generation number bumped for each job.
#define COUNT_MASK 0xffffull
#define OPEN (1ull << 16)
#define WAITER (1ull << 17)
#define GEN_ONE (1ull << 18)
#define GEN(s) ((s) & ~(GEN_ONE - 1))

static pthread_mutex_t busy = PTHREAD_MUTEX_INITIALIZER;  // held by the thread running a job
static pthread_mutex_t sleep_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;    // workers sleep here between jobs
static pthread_cond_t done = PTHREAD_COND_INITIALIZER;    // a caller sleeps here for its helpers
static pthread_once_t started_once = PTHREAD_ONCE_INIT;

static int workers = 0;  // threads started
static _Atomic uint64_t job = 0;
static _Atomic int sleepers = 0;             // workers asleep on `wake`
static _Atomic unsigned long parks = 0;      // bumped by k_pool_park
static _Atomic size_t next_item = 0;
static _Atomic size_t items_by_helpers = 0;  // items of the current job run by helpers
static _Atomic uint64_t max_helpers = 0;     // helpers the current job takes
// Set by the caller before it opens a job; read by helpers only inside it.
static size_t item_count = 0;
static k_pool_fn job_fn = NULL;
static void *job_ctx = NULL;
static _Atomic uint32_t site_item_ns[SITES];  // the last run's nanoseconds per item, 0 unknown
// The caller's record of losses (read and written under `busy`).
static uint64_t solo_until = 0, solo_ns = 0;
static _Thread_local bool inside_job = false;

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static size_t run_items(void) {
    size_t i, ran = 0;
    while ((i = atomic_fetch_add_explicit(&next_item, 1, memory_order_relaxed)) < item_count) {
        job_fn(job_ctx, i);
        ran++;
    }
    return ran;
}

static uint64_t grown(uint64_t budget) { return budget < SPIN_MIN_NS ? SPIN_MIN_NS : budget * 2 > SPIN_MAX_NS ? SPIN_MAX_NS : budget * 2; }

// Waits for a job newer than generation `seen` and returns the job word: spins for up to
// `*budget` nanoseconds, then sleeps; adapts the budget as the comment at the top says.
static uint64_t wait_for_job(uint64_t seen, uint64_t *budget, bool missed) {
    const unsigned long park = atomic_load_explicit(&parks, memory_order_relaxed);
    const uint64_t limit = missed ? 0 : *budget;
    const uint64_t start = now_ns();
    uint64_t last = start, s;
    for (;;) {
        for (int i = 0; i < SPIN_CHECKS; i++) {
            s = atomic_load_explicit(&job, memory_order_acquire);
            if (GEN(s) != seen) {
                *budget = grown(*budget);
                return s;
            }
            CPU_RELAX();
        }
        const uint64_t t = now_ns();
        if (t - last > PREEMPTED_NS) {
            *budget /= 4;
            break;
        }
        if (t - start >= limit || atomic_load_explicit(&parks, memory_order_relaxed) != park) break;
        last = t;
    }
    const uint64_t slept = now_ns();
    pthread_mutex_lock(&sleep_lock);
    atomic_fetch_add(&sleepers, 1);
    while (GEN(s = atomic_load(&job)) == seen) pthread_cond_wait(&wake, &sleep_lock);
    atomic_fetch_sub(&sleepers, 1);
    pthread_mutex_unlock(&sleep_lock);
    if (now_ns() - slept < SPIN_MAX_NS) *budget = grown(*budget);
    return s;
}

static void *worker_main(void *arg) {
    (void)arg;
    inside_job = true;  // the pool declines a call made from inside a job
    uint64_t seen = 0, budget = 0;
    bool missed = false;
    for (;;) {
        uint64_t s = atomic_load_explicit(&job, memory_order_acquire);
        if (GEN(s) == seen) s = wait_for_job(seen, &budget, missed);
        seen = GEN(s);
        // Join while the job is open and has room; the caller waits for every helper inside
        // before it returns, so the job's state stays valid until this helper leaves. A worker
        // that came too late (the job closed or full) sleeps without spinning: the caller did
        // without it, and after a wake-up for nothing it runs its next jobs alone for a while.
        missed = true;
        while (GEN(s) == seen && (s & OPEN) && (s & COUNT_MASK) < atomic_load_explicit(&max_helpers, memory_order_relaxed)) {
            if (atomic_compare_exchange_weak_explicit(&job, &s, s + 1, memory_order_acquire, memory_order_acquire)) {
                missed = false;
                const size_t ran = run_items();
                if (ran) atomic_fetch_add_explicit(&items_by_helpers, ran, memory_order_relaxed);
                const uint64_t before = atomic_fetch_sub_explicit(&job, 1, memory_order_release);
                if ((before & COUNT_MASK) == 1 && (before & WAITER)) {
                    pthread_mutex_lock(&sleep_lock);
                    pthread_cond_broadcast(&done);
                    pthread_mutex_unlock(&sleep_lock);
                }
                break;
            }
        }
    }
    return NULL;
}

// Threads runnable on the machine now, the caller included (the fourth field of /proc/loadavg,
// "running/all"), or 0 when unknown. Some microseconds to read: only read before waking a worker.
static long runnable_now(void) {
    const int fd = open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char text[128];
    const ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n <= 0) return 0;
    text[n] = 0;
    const char *p = text;
    for (int field = 0; field < 3 && p; field++) {
        p = strchr(p, ' ');
        if (p) p++;
    }
    return p ? strtol(p, NULL, 10) : 0;
}

static long cpus = 1;

static void start_workers(void) {
    cpus = k_pool_cpu_count();
    int n = (int)(cpus > 1 ? cpus - 1 : 0);
    if (n > MAX_WORKERS) n = MAX_WORKERS;
    for (int i = 0; i < n; i++) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &attr, worker_main, NULL) == 0) workers++;
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

// Waits until no helper is inside the closed job: spins while that can pay (up to the caller's
// own share of the job again, plus SLACK_NS), then sleeps until the last helper leaves.
static void wait_for_helpers(uint64_t own_ns) {
    const uint64_t start = now_ns();
    uint64_t last = start;
    for (;;) {
        for (int i = 0; i < SPIN_CHECKS; i++) {
            if ((atomic_load_explicit(&job, memory_order_acquire) & COUNT_MASK) == 0) return;
            CPU_RELAX();
        }
        const uint64_t t = now_ns();
        if (t - last > PREEMPTED_NS || t - start > own_ns + SLACK_NS) break;
        last = t;
    }
    pthread_mutex_lock(&sleep_lock);
    atomic_fetch_or(&job, WAITER);
    while (atomic_load(&job) & COUNT_MASK) pthread_cond_wait(&done, &sleep_lock);
    pthread_mutex_unlock(&sleep_lock);
}

// Records a run's time per item for its call site. The record at most doubles per run, so that a
// run stretched by losing the core (another process ran meanwhile) does not count in full.
static void remember(uint32_t site, uint64_t ns, size_t items) {
    _Atomic uint32_t *slot = &site_item_ns[site % SITES];
    const uint64_t last = atomic_load_explicit(slot, memory_order_relaxed);
    uint64_t per_item = ns / (items ? items : 1);
    if (last > 0 && per_item > 2 * last) per_item = 2 * last;
    atomic_store_explicit(slot, per_item > 0 && per_item < UINT32_MAX ? (uint32_t)per_item : 1, memory_order_relaxed);
}

// Runs a job's items on the calling thread, one after the other: the same items as with helpers,
// so that results never depend on whether helpers were used. A call made from inside them is
// declined as inside a job, and the job still counts as a parallel region (more threads could
// share it; see k_region_ns).
static void run_alone(size_t items, k_pool_fn fn, void *ctx, uint32_t site) {
    k_region_begin();
    const uint64_t t = now_ns();
    inside_job = true;
    for (size_t i = 0; i < items; i++) fn(ctx, i);
    inside_job = false;
    remember(site, now_ns() - t, items);
    k_region_end();
}

// Starts or lengthens a spell of jobs run alone after a loss.
static void note_loss(uint64_t now) {
    solo_ns = solo_ns < SOLO_MIN_NS ? SOLO_MIN_NS : solo_ns * 2 > SOLO_MAX_NS ? SOLO_MAX_NS : solo_ns * 2;
    solo_until = now + solo_ns;
}

int k_pool_run(size_t threads, size_t items, k_pool_fn fn, void *ctx, uint32_t site) {
    if (items == 0) return 1;
    if (inside_job || threads <= 1) return -1;
    const uint64_t per_item = atomic_load_explicit(&site_item_ns[site % SITES], memory_order_relaxed);
    if (per_item * items < MIN_SHARED_NS) {  // too small to share, or the site's first job
        run_alone(items, fn, ctx, site);
        return 1;
    }
    if (pthread_mutex_trylock(&busy) != 0) return 0;
    pthread_once(&started_once, start_workers);
    const uint64_t helpers = (uint64_t)(threads - 1) < (uint64_t)workers ? (uint64_t)(threads - 1) : (uint64_t)workers;
    if (helpers == 0) {
        pthread_mutex_unlock(&busy);
        return -1;
    }
    const uint64_t t0 = now_ns();
    // Helpers that sleep would have to be woken; when the machine has no free core for them (other
    // threads runnable now fill every core but the caller's), the wait for them would be a time
    // slice: a loss before the start.
    const int asleep = atomic_load(&sleepers);
    if (t0 >= solo_until && asleep > 0 && (uint64_t)(workers - asleep) < helpers &&
        runnable_now() - 1 + (long)helpers > cpus)
        note_loss(t0);
    if (t0 < solo_until) {
        pthread_mutex_unlock(&busy);
        run_alone(items, fn, ctx, site);
        return 1;
    }
    k_region_begin();
    job_fn = fn;
    job_ctx = ctx;
    item_count = items;
    atomic_store_explicit(&max_helpers, helpers, memory_order_relaxed);
    atomic_store_explicit(&next_item, 0, memory_order_relaxed);
    atomic_store_explicit(&items_by_helpers, 0, memory_order_relaxed);
    // No helper is inside (the last job waited for them all), so the word is only the generation.
    atomic_store(&job, GEN(atomic_load(&job)) + GEN_ONE + OPEN);
    // Wake as many sleeping workers as the job lacks helpers among those awake.
    const int sleeping = atomic_load(&sleepers);
    const int wanted = (int)helpers - (workers - sleeping);
    const bool woke = wanted > 0 && sleeping > 0;
    if (woke) {
        pthread_mutex_lock(&sleep_lock);
        for (int i = 0; i < wanted && i < sleeping; i++) pthread_cond_signal(&wake);
        pthread_mutex_unlock(&sleep_lock);
    }
    inside_job = true;
    const size_t mine = run_items();
    inside_job = false;
    const uint64_t t1 = now_ns();
    const uint64_t s = atomic_fetch_and(&job, ~OPEN);
    if (s & COUNT_MASK) wait_for_helpers(t1 - t0);
    const uint64_t t2 = now_ns();
    const size_t shared = atomic_load_explicit(&items_by_helpers, memory_order_relaxed);
    if (mine) remember(site, t1 - t0, mine);
    // The caller alone would have run the helpers' items in about (t1 - t0) · shared / mine.
    const uint64_t alone_ns = mine ? (t1 - t0) * shared / mine : t2 - t1;
    if (t2 - t1 > alone_ns + SLACK_NS || (woke && shared == 0)) {
        note_loss(t2);
    } else if (shared > 0) {
        solo_ns /= 2;
    }
    pthread_mutex_unlock(&busy);
    k_region_end();
    return 1;
}
