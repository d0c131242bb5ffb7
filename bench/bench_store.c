/*
 * bench_store.c - `reel-bench store`: the object store's put/get throughput
 * and latency in one process and across two, beside memcpy and a plain
 * shared-memory hand-off measured in the same run.
 *
 * One store is created per run (pre-faulted by the store at creation, outside
 * every timed region) and shared by all measurements. Two-process runs fork a
 * child after the store exists; the child opens the store itself (a handle is
 * not valid across fork), dies with the parent (PR_SET_PDEATHSIG) and is
 * always reaped. The parent (writer, and every one-process measurement) runs
 * on the first allowed CPU, the child (reader) on the second.
 *
 * Parent and child coordinate through one MAP_SHARED anonymous mapping
 * (struct shared): counters each side spins on, and the timestamp arrays from
 * which the hand-off latencies are computed after the child has exited.
 * CLOCK_MONOTONIC is one clock for every process of the machine, so a
 * timestamp taken by the writer and one taken by the reader can be
 * subtracted.
 */
#include "bench.h"

#include <reel/store.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

/* The ratios to beat against Ray (measured with --vs-ray), in the
 * terms of Ray's own microbenchmark: per-call rates with small objects
 * ("put calls", "get calls"; a get is zero-copy at any size) and bandwidth
 * with large ones ("put gigabytes"). */
#define VS_RAY_PER_CALL    100.0
#define VS_RAY_BANDWIDTH   1.0
#define PER_CALL_MAX_SIZE  4096ull          /* a put of up to this many bytes is a call */
#define BANDWIDTH_MIN_SIZE (1024ull * 1024) /* a put of this many is a copy */

#define TARGET_GET_P50_US     0.5
#define TARGET_PUTS_PER_S     1e6
#define TARGET_PUT_VS_MEMCPY  0.9
#define TARGET_HANDOFF_P50_US 2.0

#define PUT_BATCH_BYTES (256u * 1024) /* see copy_put_run() */
#define TOUCH_RUNS      3             /* fresh shared memory: best of this many */
#define SAMPLES_MAX     2000000u      /* per-op samples kept by one latency pass */
#define WAIT_MS         10000         /* longest any side waits for the other */
#define SPIN_FOREVER    10000000000ull

#define MiB (1024ull * 1024)

enum { CHILD_STARTING = 0, CHILD_READY = 1, CHILD_DONE = 2, CHILD_FAILED = 3 };

struct shared {
    _Alignas(64) _Atomic uint64_t child_state;
    _Alignas(64) _Atomic uint64_t go;
    _Alignas(64) _Atomic uint64_t ready;    /* reader: about to wait for object ready-1 */
    _Alignas(64) _Atomic uint64_t taken;    /* reader: objects its get returned */
    _Alignas(64) _Atomic uint64_t consumed; /* reader: all released and deleted */
    _Alignas(64) uint64_t writer_start_ns;
    uint64_t reader_end_ns;
    int child_err;
    char child_msg[256];
    _Alignas(64) uint64_t t[]; /* writer timestamps [0, cap), reader's [cap, 2 cap) */
};

typedef struct ctx {
    const bench_options *opts;
    bench_report *rep;
    char *errbuf; /* where a failure is described: the report, or shared memory in a child */
    reel_store *store;
    char path[256];
    uint64_t capacity;
    uint64_t max_size;
    uint8_t *src, *dst; /* memcpy source and destination, max_size (+ 4 KiB), touched */
    size_t buf_len;
    uint8_t *dst_at; /* where memcpy writes: dst at the page offset of the store's objects */
    uint64_t *samples, *samples2; /* SAMPLES_MAX each */
    struct shared *sh;
    size_t sh_len;
    uint64_t tcap; /* entries of each timestamp array */
    uint64_t id_seq;
    reel_id parent;
    int ncpu, cpu_a, cpu_b;
    int yield; /* one CPU: spin loops yield to the other side */
    cpu_set_t orig_cpus;
    double timer_p50_us;
    double spin_pp_us, futex_pp_us; /* p50 one-way of the plain hand-offs */
    double atomic_pairs_per_s;      /* the limit of a call that takes a reference */
} ctx;

/* ---- Failures, progress, cleanup ----------------------------------------- */

static int fail(ctx *c, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail_sys(ctx *c, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* A reel call failed: err, and the library's detail sentence if it left one. */
static int fail(ctx *c, int err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    bench_describe_failure(c->errbuf, 256, err, 1, fmt, ap);
    va_end(ap);
    return err;
}

/* A system call failed. */
static int fail_sys(ctx *c, int err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    bench_describe_failure(c->errbuf, 256, err, 0, fmt, ap);
    va_end(ap);
    return err;
}

static void progress(const ctx *c, const char *what, uint64_t size) {
    char sz[32] = "";
    if (size)
        bench_format_size(size, sz, sizeof(sz));
    bench_progress(c->opts, "store", "%s %s", what, sz);
}

/* the section's store, and a store made only to time its creation */
static char cleanup_path[256], cleanup_path2[320];

static void on_signal(int sig) {
    if (cleanup_path[0])
        unlink(cleanup_path);
    if (cleanup_path2[0])
        unlink(cleanup_path2);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* ---- Helpers ---------------------------------------------------------- */

static void next_ids(ctx *c, reel_id *ids, size_t k) {
    for (size_t i = 0; i < k; i++)
        reel_id_derive(&c->parent, c->id_seq++, &ids[i]);
}

static uint64_t min_u64(uint64_t a, uint64_t b) {
    return a < b ? a : b;
}

/* Operations of a measurement that moves size bytes each: the user's count,
 * or a byte budget spread over the size within [lo, hi]. */
static uint64_t count_bytes(const ctx *c, uint64_t size) {
    if (c->opts->iterations)
        return c->opts->iterations;
    uint64_t budget = c->opts->quick ? 1024 * MiB : 16384 * MiB;
    uint64_t lo = c->opts->quick ? 16 : 64, hi = c->opts->quick ? 50000 : 200000;
    uint64_t n = budget / size;
    return n < lo ? lo : n > hi ? hi : n;
}

static uint64_t count_fixed(const ctx *c, uint64_t full, uint64_t quick) {
    if (c->opts->iterations)
        return c->opts->iterations;
    return c->opts->quick ? quick : full;
}

static uint64_t warmup_for(uint64_t n) {
    return min_u64(n / 10 + 1, 1000);
}

static double us(double ns) {
    return ns / 1000.0;
}

/* Waits until *p >= want. Gives up when the child has failed or after
 * WAIT_MS; checks both only every 1024 rounds to keep the loop tight. */
static int wait_ge(ctx *c, _Atomic uint64_t *p, uint64_t want, const char *what) {
    uint64_t deadline = 0;
    unsigned k = 0;
    while (atomic_load_explicit(p, memory_order_acquire) < want) {
        if (c->yield)
            sched_yield();
        else
            bench_cpu_relax();
        if ((++k & 1023) != 0)
            continue;
        if (p != &c->sh->child_state &&
            atomic_load_explicit(&c->sh->child_state, memory_order_acquire) == CHILD_FAILED)
            return -ECHILD;
        uint64_t now = bench_now_ns();
        if (!deadline) {
            deadline = now + WAIT_MS * 1000000ull;
        } else if (now > deadline) {
            snprintf(c->errbuf, 256, "timed out after %d ms %s", WAIT_MS, what);
            return -ETIMEDOUT;
        }
    }
    return 0;
}

static int wait_child_ready(ctx *c) {
    int err = wait_ge(c, &c->sh->child_state, CHILD_READY, "waiting for the reader to start");
    if (!err && atomic_load(&c->sh->child_state) == CHILD_FAILED)
        err = -ECHILD;
    return err;
}

static void reset_shared(ctx *c) {
    struct shared *sh = c->sh;
    atomic_store(&sh->child_state, CHILD_STARTING);
    atomic_store(&sh->go, 0);
    atomic_store(&sh->ready, 0);
    atomic_store(&sh->taken, 0);
    atomic_store(&sh->consumed, 0);
    sh->writer_start_ns = 0;
    sh->reader_end_ns = 0;
    sh->child_err = 0;
    sh->child_msg[0] = '\0';
}

typedef int (*side_fn)(ctx *c, const void *arg);

/* Forks a child that runs child_side on CPU b while this process runs
 * parent_side on CPU a; reaps the child whatever happens. */
static int run_pair(ctx *c, side_fn parent_side, side_fn child_side, const void *arg) {
    reset_shared(c);
    fflush(NULL);
    pid_t parent_pid = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return fail_sys(c, -errno, "fork");
    if (pid == 0) {
        /* the child: its copy of c reports into shared memory */
        c->errbuf = c->sh->child_msg;
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent_pid)
            _exit(1);
        if (c->ncpu >= 2)
            bench_pin_cpu(c->cpu_b);
        int err = child_side(c, arg);
        c->sh->child_err = err;
        atomic_store_explicit(&c->sh->child_state, err ? CHILD_FAILED : CHILD_DONE,
                              memory_order_release);
        _exit(err ? 1 : 0);
    }
    int err = parent_side(c, arg);
    if (err)
        kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (c->sh->child_err) {
        snprintf(c->errbuf, 256, "reader process: %.200s", c->sh->child_msg);
        return c->sh->child_err;
    }
    if (err)
        return err;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        if (WIFSIGNALED(status))
            snprintf(c->errbuf, 256, "reader process killed by signal %d", WTERMSIG(status));
        else
            snprintf(c->errbuf, 256, "reader process exited with status %d", WEXITSTATUS(status));
        return -ECHILD;
    }
    return 0;
}

/* ---- One process --------------------------------------------------------- */

/* k memcpys of size bytes into the touched destination; per-op times into
 * lat if given; returns the time of the whole loop. */
typedef struct copy_part {
    void *dst;
    const void *src;
    size_t n;
} copy_part;

static void *copy_part_run(void *arg) {
    copy_part *p = arg;
    memcpy(p->dst, p->src, p->n);
    return NULL;
}

/* memcpy split in equal parts over `threads` threads, this one included,
 * each started for the copy and joined after it: what the machine allows a
 * copy that may use every CPU (reel_obj_put's, from 4 MiB). */
static void parallel_memcpy(void *dst, const void *src, size_t n, int threads) {
    copy_part part[REEL_PUT_MAX_THREADS];
    pthread_t tid[REEL_PUT_MAX_THREADS];
    int started[REEL_PUT_MAX_THREADS] = {0};
    size_t per = (n / (size_t)threads + 4095) / 4096 * 4096;
    for (int k = 1; k < threads; k++) {
        size_t off = (size_t)k * per < n ? (size_t)k * per : n;
        size_t end = k + 1 < threads && (size_t)(k + 1) * per < n ? (size_t)(k + 1) * per : n;
        part[k] = (copy_part){(char *)dst + off, (const char *)src + off, end - off};
        started[k] = pthread_create(&tid[k], NULL, copy_part_run, &part[k]) == 0;
    }
    memcpy(dst, src, per < n ? per : n);
    for (int k = 1; k < threads; k++) {
        if (started[k])
            pthread_join(tid[k], NULL);
        else
            copy_part_run(&part[k]);
    }
}

/* k copies on `threads` threads (1: plain memcpy); per-op times into lat if
 * given. */
static uint64_t copy_batch(ctx *c, uint64_t size, size_t k, int threads, uint64_t *lat) {
    uint64_t t0 = bench_now_ns();
    for (size_t i = 0; i < k; i++) {
        uint64_t a = lat ? bench_now_ns() : 0;
        if (threads > 1)
            parallel_memcpy(c->dst_at, c->src, size, threads);
        else
            memcpy(c->dst_at, c->src, size);
        bench_clobber(c->dst_at);
        if (lat)
            lat[i] = bench_now_ns() - a;
    }
    return bench_now_ns() - t0;
}

/* The threads reel_obj_put copies size bytes on: one per CPU the section
 * may use, from REEL_PUT_THREADS_MIN_SIZE. */
static int copy_threads(const ctx *c, uint64_t size) {
    if (size < REEL_PUT_THREADS_MIN_SIZE || c->ncpu < 2)
        return 1;
    return c->ncpu > (int)REEL_PUT_MAX_THREADS ? (int)REEL_PUT_MAX_THREADS : c->ncpu;
}

/* Puts k objects (reel_obj_put: create + copy + seal); per-op times into lat
 * if given. */
static int put_batch(ctx *c, uint64_t size, const reel_id *ids, size_t k, uint64_t *lat,
                     uint64_t *elapsed) {
    uint64_t t0 = bench_now_ns();
    for (size_t i = 0; i < k; i++) {
        uint64_t a = lat ? bench_now_ns() : 0;
        reel_id id = ids[i];
        int err = reel_obj_put(c->store, &id, c->src, size, NULL, 0, 0, 0);
        if (err)
            return fail(c, err, "reel_obj_put(%llu bytes)", (unsigned long long)size);
        if (lat)
            lat[i] = bench_now_ns() - a;
    }
    *elapsed = bench_now_ns() - t0;
    return 0;
}

static int delete_batch(ctx *c, const reel_id *ids, size_t k) {
    for (size_t i = 0; i < k; i++) {
        int err = reel_obj_delete(c->store, &ids[i]);
        if (err)
            return fail(c, err, "reel_obj_delete");
    }
    return 0;
}

/* Places memcpy's destination at the page offset where the store puts an
 * object of this size: how far apart source and destination lie within a
 * page changes the speed of a large memcpy by up to 20% here (4 KiB
 * aliasing), and the limit must not differ from the put in that. */
static int align_copy_to_store(ctx *c, uint64_t size) {
    reel_id id;
    void *buf;
    next_ids(c, &id, 1);
    int err = reel_obj_create(c->store, &id, size, NULL, 0, 0, 0, &buf);
    if (err)
        return fail(c, err, "reel_obj_create(%llu bytes)", (unsigned long long)size);
    c->dst_at = c->dst + ((uintptr_t)buf & 4095);
    if ((err = reel_obj_abort(c->store, &id)))
        return fail(c, err, "reel_obj_abort");
    return 0;
}

/* n memcpys and n puts, interleaved batch by batch so that both see the same
 * machine (this one is shared and noisy). The deletes between batches of puts
 * are not timed. A batch holds at most PUT_BATCH_BYTES (and at least one
 * object), so that the store hands the same freed blocks out again and the
 * puts write into memory as warm as memcpy's one destination; otherwise a
 * 64 KiB put would be compared, cache-cold, with a memcpy that stays in L2.
 * With lat_copy and lat_put, per-op samples (n <= SAMPLES_MAX). */
static int copy_put_run(ctx *c, uint64_t size, uint64_t n, uint64_t *lat_copy, uint64_t *lat_put,
                        uint64_t *copy_total, uint64_t *put_total, uint64_t *par_total) {
    uint64_t batch = PUT_BATCH_BYTES / (size + 64);
    batch = batch < 1 ? 1 : batch > 1024 ? 1024 : batch;
    reel_id ids[1024];
    int threads = copy_threads(c, size);
    *copy_total = *put_total = *par_total = 0;
    for (uint64_t done = 0; done < n;) {
        size_t k = (size_t)min_u64(batch, n - done);
        uint64_t el = 0;
        next_ids(c, ids, k);
        *copy_total += copy_batch(c, size, k, 1, lat_copy ? lat_copy + done : NULL);
        if (threads > 1)
            *par_total += copy_batch(c, size, k, threads, NULL);
        int err = put_batch(c, size, ids, k, lat_put ? lat_put + done : NULL, &el);
        if (err)
            return err;
        *put_total += el;
        if ((err = delete_batch(c, ids, k)))
            return err;
        done += k;
    }
    return 0;
}

/* k gets (no wait) and releases of one sealed object; per-op times into lat
 * if given. */
static int get_release_loop(ctx *c, const reel_id *id, uint64_t k, uint64_t *lat,
                            uint64_t *elapsed) {
    reel_view v;
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < k; i++) {
        uint64_t a = lat ? bench_now_ns() : 0;
        int err = reel_obj_get(c->store, id, 1, 0, &v);
        if (err)
            return fail(c, err, "reel_obj_get");
        if ((err = reel_obj_release(c->store, id)))
            return fail(c, err, "reel_obj_release");
        if (lat)
            lat[i] = bench_now_ns() - a;
    }
    *elapsed = bench_now_ns() - t0;
    return 0;
}

/* The floor under every store call that takes and drops a reference: one
 * atomic increment and one decrement of a counter in shared memory, from one
 * process (best of 3 runs). A get+release or a small put cannot beat it. */
static int measure_atomic_limit(ctx *c) {
    _Atomic uint64_t *word =
        mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (word == MAP_FAILED)
        return fail_sys(c, -errno, "mmap(shared page)");
    uint64_t n = count_fixed(c, 20000000, 2000000), best = UINT64_MAX;
    progress(c, "atomic pair in shared memory", 0);
    for (int k = 0; k < 3; k++) {
        uint64_t t0 = bench_now_ns();
        for (uint64_t i = 0; i < n; i++) {
            atomic_fetch_add_explicit(word, 1, memory_order_acq_rel);
            atomic_fetch_sub_explicit(word, 1, memory_order_acq_rel);
        }
        uint64_t el = bench_now_ns() - t0;
        best = el < best ? el : best;
    }
    munmap((void *)word, 4096);
    c->atomic_pairs_per_s = (double)n * 1e9 / (double)(best ? best : 1);
    bench_report_add(c->rep, "one process, no store: the limit",
                     "atomic increment + decrement, shared memory", "op/s", BENCH_RATE,
                     c->atomic_pairs_per_s);
    return 0;
}

static int measure_one_process(ctx *c, uint64_t size) {
    char sz[32], group[96], fig[BENCH_NAME_MAX], memname[BENCH_NAME_MAX];
    bench_format_size(size, sz, sizeof(sz));
    snprintf(group, sizeof(group), "one process, %s", sz);
    uint64_t n = count_bytes(c, size), w = warmup_for(n), m = min_u64(n, SAMPLES_MAX);
    bench_summary s;
    int err;

    /* memcpy (the same source into one touched destination of the same size)
     * and put (create + memcpy from the same source + seal), side by side:
     * warm-up, a rate pass, then a pass timing each operation */
    progress(c, "memcpy and put", size);
    if ((err = align_copy_to_store(c, size)))
        return err;
    /* a put that copies on several threads may use every CPU the section may */
    int threads = copy_threads(c, size);
    if (threads > 1)
        sched_setaffinity(0, sizeof(c->orig_cpus), &c->orig_cpus);
    uint64_t copy_total, put_total, par_total;
    if ((err = copy_put_run(c, size, w, NULL, NULL, &copy_total, &put_total, &par_total)) ||
        (err = copy_put_run(c, size, n, NULL, NULL, &copy_total, &put_total, &par_total)))
        return err;
    double bytes = (double)n * (double)size;
    double memcpy_gbs = bytes / (double)copy_total;
    double par_gbs = par_total ? bytes / (double)par_total : 0;
    double put_ops = (double)n * 1e9 / (double)put_total, put_gbs = bytes / (double)put_total;
    if ((err = copy_put_run(c, size, m, c->samples2, c->samples, &copy_total, &put_total,
                            &par_total)))
        return err;
    if (threads > 1 && (err = bench_pin_cpu(c->cpu_a)))
        return fail_sys(c, err, "sched_setaffinity(CPU %d)", c->cpu_a);

    bench_summarize(c->samples2, m, &s);
    snprintf(fig, sizeof(fig), "memcpy %s", sz);
    bench_row *r = bench_report_add(c->rep, group, fig, "GB/s", BENCH_RATE, memcpy_gbs);
    bench_row_latency(r, us(s.p50_ns), us(s.p99_ns), m);
    snprintf(memname, sizeof(memname), "memcpy %s", sz);
    double copy_limit = memcpy_gbs;
    if (threads > 1) {
        snprintf(fig, sizeof(fig), "memcpy %s, %d threads", sz, threads);
        bench_report_add(c->rep, group, fig, "GB/s", BENCH_RATE, par_gbs);
        snprintf(memname, sizeof(memname), "memcpy %s, %d threads", sz, threads);
        copy_limit = par_gbs;
    }

    bench_summarize(c->samples, m, &s);
    snprintf(fig, sizeof(fig), "put %s", sz);
    r = bench_report_add(c->rep, group, fig, "op/s", BENCH_RATE, put_ops);
    bench_row_latency(r, us(s.p50_ns), us(s.p99_ns), m);
    if (size == 64)
        bench_row_target(r, BENCH_ON_VALUE, BENCH_GE, TARGET_PUTS_PER_S, ">= 1M op/s");
    if (size <= PER_CALL_MAX_SIZE) { /* larger puts are copies: their limit is memcpy's */
        bench_row_limit(r, "atomic pair", c->atomic_pairs_per_s);
        bench_row_vs_ray(r, VS_RAY_PER_CALL);
    }
    snprintf(fig, sizeof(fig), "put %s bandwidth", sz);
    r = bench_report_add(c->rep, group, fig, "GB/s", BENCH_RATE, put_gbs);
    bench_row_limit(r, memname, copy_limit);
    if (size == 64 * MiB)
        bench_row_target(r, BENCH_ON_LIMIT, BENCH_GE, TARGET_PUT_VS_MEMCPY, ">= 0.9x memcpy");
    if (size >= BANDWIDTH_MIN_SIZE)
        bench_row_vs_ray(r, VS_RAY_BANDWIDTH);

    /* get + release of one sealed object */
    progress(c, "get+release", size);
    reel_id id;
    next_ids(c, &id, 1);
    void *buf;
    if ((err = reel_obj_create(c->store, &id, size, NULL, 0, 0, 0, &buf)))
        return fail(c, err, "reel_obj_create(%llu bytes)", (unsigned long long)size);
    memcpy(buf, c->src, size);
    if ((err = reel_obj_seal(c->store, &id)))
        return fail(c, err, "reel_obj_seal");
    uint64_t gn = count_fixed(c, 500000, 50000), gm = min_u64(gn, SAMPLES_MAX);
    uint64_t el = 0;
    if ((err = get_release_loop(c, &id, warmup_for(gn), NULL, &el)) ||
        (err = get_release_loop(c, &id, gn, NULL, &el)))
        return err;
    double get_ops = (double)gn * 1e9 / (double)el;
    if ((err = get_release_loop(c, &id, gm, c->samples, &el)))
        return err;
    if ((err = reel_obj_delete(c->store, &id)))
        return fail(c, err, "reel_obj_delete");
    bench_summarize(c->samples, gm, &s);
    snprintf(fig, sizeof(fig), "get+release %s", sz);
    r = bench_report_add(c->rep, group, fig, "op/s", BENCH_RATE, get_ops);
    bench_row_latency(r, us(s.p50_ns), us(s.p99_ns), gm);
    bench_row_limit(r, "atomic pair", c->atomic_pairs_per_s);
    bench_row_target(r, BENCH_ON_P50, BENCH_LE, TARGET_GET_P50_US, "p50 <= 0.5 us");
    bench_row_vs_ray(r, VS_RAY_PER_CALL);
    return 0;
}

/* ---- Fresh shared memory ------------------------------------------------- */

/* Creates a fresh file of len bytes in dir (the store's file system),
 * unlinked at once, maps it MAP_SHARED and writes one byte in every page, so
 * that the kernel allocates and zeroes each page at its first touch. *ns: the
 * time from the open to the last write; the unmap and close after it are not
 * timed. */
static int first_touch(ctx *c, const char *dir, uint64_t len, uint64_t *ns) {
    char path[320];
    snprintf(path, sizeof(path), "%s/reel-bench-touch-%ld", dir, (long)getpid());
    long page = sysconf(_SC_PAGESIZE);
    size_t step = page > 0 ? (size_t)page : 4096;
    uint64_t t0 = bench_now_ns();
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno == EEXIST) { /* left behind by a dead run with our pid */
        unlink(path);
        fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    }
    if (fd < 0)
        return fail_sys(c, -errno, "open(%s)", path);
    unlink(path);
    int err = 0;
    uint8_t *p = MAP_FAILED;
    if (ftruncate(fd, (off_t)len) != 0)
        err = fail_sys(c, -errno, "ftruncate(%s, %llu bytes)", path, (unsigned long long)len);
    else if ((p = mmap(NULL, (size_t)len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED)
        err =
            fail_sys(c, -errno, "mmap(%s, %llu bytes, MAP_SHARED)", path, (unsigned long long)len);
    if (!err) {
        for (size_t off = 0; off < len; off += step)
            p[off] = 1;
        bench_clobber(p);
        *ns = bench_now_ns() - t0;
        munmap(p, (size_t)len);
    }
    close(fd);
    return err;
}

/* reel_store_create() of a store of capacity bytes in dir (pre-faulted, as
 * every store is); *ns: its time; closing and removing it are not timed. */
static int create_prefaulted(ctx *c, const char *dir, uint64_t capacity, uint64_t *ns) {
    char *name = cleanup_path2; /* named before it exists: a signal removes it */
    snprintf(name, sizeof(cleanup_path2), "%.256s/reel-bench-%ld-create", dir, (long)getpid());
    reel_store_options o = {0};
    o.capacity = capacity;
    o.max_objects = 65536; /* as the section's store */
    reel_store *st;
    uint64_t t0 = bench_now_ns();
    int err = reel_store_create(name, &o, &st);
    uint64_t t1 = bench_now_ns();
    if (err == -EEXIST) { /* left behind by a dead run with our pid */
        reel_store_destroy(name);
        t0 = bench_now_ns();
        err = reel_store_create(name, &o, &st);
        t1 = bench_now_ns();
    }
    if (err) {
        fail(c, err, "reel_store_create(%s, %llu bytes)", name, (unsigned long long)capacity);
        cleanup_path2[0] = '\0';
        return err;
    }
    *ns = t1 - t0;
    reel_store_close(st);
    reel_store_destroy(name);
    cleanup_path2[0] = '\0';
    return 0;
}

/* What pre-faulting costs, beside what the machine allows: the first touch of
 * fresh shared memory, and the creation of a store of the same size, best of
 * TOUCH_RUNS each, in turn so that both see the same machine. */
static int measure_fresh_memory(ctx *c) {
    uint64_t len = c->opts->quick ? 64 * MiB : 256 * MiB;
    char dir[256], sz[32], group[320]; /* the row cuts what does not fit */
    snprintf(dir, sizeof(dir), "%s", c->path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir)
        *slash = '\0';
    else
        snprintf(dir, sizeof(dir), "%s", slash ? "/" : ".");
    uint64_t touch = UINT64_MAX, create = UINT64_MAX;
    for (int k = 0; k < TOUCH_RUNS; k++) {
        uint64_t t = 0;
        progress(c, "first touch of fresh shared memory", len);
        int err = first_touch(c, dir, len, &t);
        if (err)
            return err;
        touch = t < touch ? t : touch;
        progress(c, "creating a pre-faulted store", len);
        if ((err = create_prefaulted(c, dir, len, &t)))
            return err;
        create = t < create ? t : create;
    }
    bench_format_size(len, sz, sizeof(sz));
    snprintf(group, sizeof(group), "one process, %s of fresh shared memory in %.64s: the limit", sz,
             dir);
    double touch_gbs = (double)len / (double)touch, create_gbs = (double)len / (double)create;
    bench_report_add(c->rep, group, "first touch of fresh shared memory", "GB/s", BENCH_RATE,
                     touch_gbs);
    long page = sysconf(_SC_PAGESIZE);
    double pages = (double)len / (double)(page > 0 ? page : 4096);
    bench_report_add(c->rep, group, "first touch, per page fault", "us", BENCH_AMOUNT,
                     (double)touch / pages / 1e3);
    bench_row *r = bench_report_add(c->rep, group, "create a store, pre-faulted", "GB/s",
                                    BENCH_RATE, create_gbs);
    bench_row_limit(r, "first touch", touch_gbs);
    return 0;
}

/* ---- Two processes ------------------------------------------------------- */

typedef struct xp_args {
    uint64_t size;
    uint64_t total, warm; /* objects handed over, the first warm of them untimed */
    uint64_t window;      /* stream: objects the writer may be ahead */
    uint64_t delay_ns;    /* hand-off: how long the reader waits before the seal */
    int spin;             /* hand-off: the reader spins (else it sleeps at once) */
    int busy;             /* hand-off: the writer creates the next object at once */
    reel_id parent;       /* object i is reel_id_derive(parent, i) on both sides */
} xp_args;

static int open_child_store(ctx *c, reel_store **st) {
    int err = reel_store_open(c->path, 0, st);
    if (err)
        return fail(c, err, "reel_store_open(%s)", c->path);
    return 0;
}

/* Gets object i (waiting up to WAIT_MS), notes the time it returned in *t if
 * asked, tells the writer through *taken, then releases and deletes it. */
static int take(ctx *c, reel_store *st, const xp_args *a, uint64_t i, uint64_t *t,
                _Atomic uint64_t *taken) {
    reel_id id;
    reel_view v;
    reel_id_derive(&a->parent, i, &id);
    int err = reel_obj_get(st, &id, 1, WAIT_MS, &v);
    if (t)
        *t = bench_now_ns();
    if (err)
        return fail(c, err, "reel_obj_get(object %llu)", (unsigned long long)i);
    atomic_store_explicit(taken, i + 1, memory_order_release);
    if (v.size != a->size)
        return fail(c, REEL_ECORRUPT, "object %llu has %llu bytes, not %llu", (unsigned long long)i,
                    (unsigned long long)v.size, (unsigned long long)a->size);
    if ((err = reel_obj_release(st, &id)))
        return fail(c, err, "reel_obj_release");
    if ((err = reel_obj_delete(st, &id)))
        return fail(c, err, "reel_obj_delete");
    return 0;
}

static int stream_reader(ctx *c, const void *arg) {
    const xp_args *a = arg;
    struct shared *sh = c->sh;
    reel_store *st;
    int err = open_child_store(c, &st);
    if (err)
        return err;
    if (c->ncpu < 2)
        reel_store_set_spin_ns(st, 0);
    atomic_store(&sh->child_state, CHILD_READY);
    err = wait_ge(c, &sh->go, 1, "waiting for the writer");
    for (uint64_t i = 0; !err && i < a->total; i++)
        err = take(c, st, a, i, NULL, &sh->taken);
    /* the last object is released and deleted: the writer may finish */
    sh->reader_end_ns = bench_now_ns();
    atomic_store_explicit(&sh->consumed, a->total, memory_order_release);
    reel_store_close(st);
    return err;
}

static int stream_writer(ctx *c, const void *arg) {
    const xp_args *a = arg;
    struct shared *sh = c->sh;
    int err = wait_child_ready(c);
    if (err)
        return err;
    uint64_t t0 = bench_now_ns();
    atomic_store_explicit(&sh->go, 1, memory_order_release);
    for (uint64_t i = 0; i < a->total; i++) {
        if (i >= a->window &&
            (err = wait_ge(c, &sh->taken, i + 1 - a->window, "waiting for the reader to catch up")))
            return err;
        reel_id id;
        void *buf;
        reel_id_derive(&a->parent, i, &id);
        if ((err = reel_obj_create(c->store, &id, a->size, NULL, 0, 0, WAIT_MS, &buf)))
            return fail(c, err, "reel_obj_create(%llu bytes)", (unsigned long long)a->size);
        memcpy(buf, c->src, a->size);
        if ((err = reel_obj_seal(c->store, &id)))
            return fail(c, err, "reel_obj_seal");
    }
    if ((err = wait_ge(c, &sh->consumed, a->total, "waiting for the reader to finish")))
        return err;
    sh->writer_start_ns = t0;
    return 0;
}

static int handoff_reader(ctx *c, const void *arg) {
    const xp_args *a = arg;
    struct shared *sh = c->sh;
    reel_store *st;
    int err = open_child_store(c, &st);
    if (err)
        return err;
    /* on one CPU a spinning reader only keeps the writer from running */
    reel_store_set_spin_ns(st, a->spin && c->ncpu >= 2 ? SPIN_FOREVER : 0);
    atomic_store(&sh->child_state, CHILD_READY);
    for (uint64_t i = 0; !err && i < a->total; i++) {
        atomic_store_explicit(&sh->ready, i + 1, memory_order_release);
        err = take(c, st, a, i, &sh->t[c->tcap + i], &sh->taken);
    }
    reel_store_close(st);
    return err;
}

static int handoff_writer(ctx *c, const void *arg) {
    const xp_args *a = arg;
    struct shared *sh = c->sh;
    int err = wait_child_ready(c);
    if (err)
        return err;
    for (uint64_t i = 0; i < a->total; i++) {
        reel_id id;
        void *buf;
        reel_id_derive(&a->parent, i, &id);
        if ((err = reel_obj_create(c->store, &id, a->size, NULL, 0, 0, WAIT_MS, &buf)))
            return fail(c, err, "reel_obj_create(%llu bytes)", (unsigned long long)a->size);
        memset(buf, (int)(i & 0xff), (size_t)min_u64(a->size, 64));
        /* the reader announces it is about to wait; give it time to get there */
        if ((err = wait_ge(c, &sh->ready, i + 1, "waiting for the reader")))
            return err;
        bench_spin_ns(a->delay_ns);
        sh->t[i] = bench_now_ns();
        if ((err = reel_obj_seal(c->store, &id)))
            return fail(c, err, "reel_obj_seal");
        /* stay out of the store until the reader's get has returned, so that
         * the next create does not compete with it for the lock */
        if (!a->busy && (err = wait_ge(c, &sh->taken, i + 1, "waiting for the reader's get")))
            return err;
    }
    return wait_ge(c, &sh->child_state, CHILD_DONE, "waiting for the reader to finish");
}

static void derive_parent(ctx *c, uint64_t tag, reel_id *out) {
    reel_id_derive(&c->parent, (1ull << 63) | tag, out);
}

static int measure_two_processes(ctx *c, uint64_t size, uint64_t size_index) {
    char sz[32], group[96], fig[BENCH_NAME_MAX], memname[BENCH_NAME_MAX];
    bench_format_size(size, sz, sizeof(sz));
    if (c->ncpu >= 2)
        snprintf(group, sizeof(group), "two processes, %s (writer on CPU %d, reader on CPU %d)", sz,
                 c->cpu_a, c->cpu_b);
    else
        snprintf(group, sizeof(group), "two processes, %s (one CPU shared)", sz);
    snprintf(memname, sizeof(memname), "memcpy %s", sz);
    double memcpy_gbs = 0;
    for (size_t i = 0; i < c->rep->n; i++)
        if (strcmp(c->rep->rows[i].figure, memname) == 0)
            memcpy_gbs = c->rep->rows[i].value;
    int err;
    bench_row *r;

    /* stream: the writer puts as fast as the window allows, the reader gets,
     * releases and deletes each object */
    progress(c, "two-process stream", size);
    uint64_t n = count_bytes(c, size);
    xp_args a = {.size = size, .total = n, .warm = 0};
    a.window = (c->capacity / 2) / (size + 64);
    a.window = a.window < 1 ? 1 : a.window > 256 ? 256 : a.window;
    derive_parent(c, size_index * 8 + 0, &a.parent);
    if ((err = run_pair(c, stream_writer, stream_reader, &a)))
        return err;
    double el = (double)(c->sh->reader_end_ns - c->sh->writer_start_ns);
    snprintf(fig, sizeof(fig), "stream %s", sz);
    bench_report_add(c->rep, group, fig, "op/s", BENCH_RATE, (double)n * 1e9 / el);
    snprintf(fig, sizeof(fig), "stream %s bandwidth", sz);
    r = bench_report_add(c->rep, group, fig, "GB/s", BENCH_RATE, (double)n * (double)size / el);
    bench_row_limit(r, memname, memcpy_gbs);

    /* hand-off: the reader waits in reel_obj_get() for an object the writer
     * has created; latency = reader's return from get - writer's seal call.
     * The reader spins or sleeps; the writer waits until the reader's get
     * has returned before its next create, or (busy) goes straight on to it
     * and competes with that get for the store's lock. */
    static const struct {
        int spin, busy;
        const char *what;
        uint64_t full, quick, warm, delay_ns;
    } modes[] = {
        {1, 0, "reader spins", 20000, 5000, 200, 5000},
        {1, 1, "spins, writer busy", 20000, 5000, 200, 5000},
        {0, 0, "reader sleeps", 2000, 500, 20, 200000},
    };
    for (uint64_t k = 0; k < sizeof(modes) / sizeof(modes[0]); k++) {
        snprintf(fig, sizeof(fig), "hand-off %s, %s", sz, modes[k].what);
        progress(c, fig, 0);
        uint64_t hw = modes[k].warm;
        uint64_t hn = min_u64(count_fixed(c, modes[k].full, modes[k].quick), c->tcap - hw);
        xp_args h = {.size = size, .total = hn + hw, .warm = hw};
        h.spin = modes[k].spin;
        h.busy = modes[k].busy;
        h.delay_ns = modes[k].delay_ns;
        derive_parent(c, size_index * 8 + 1 + k, &h.parent);
        if ((err = run_pair(c, handoff_writer, handoff_reader, &h)))
            return err;
        uint64_t neg = 0;
        for (uint64_t i = 0; i < hn; i++) {
            int64_t d = (int64_t)(c->sh->t[c->tcap + hw + i] - c->sh->t[hw + i]);
            neg += d < 0;
            c->samples[i] = d < 0 ? 0 : (uint64_t)d;
        }
        if (neg)
            bench_report_note(c->rep, "%s: %llu samples < 0 (clock skew?) counted as 0", fig,
                              (unsigned long long)neg);
        bench_summary s;
        bench_summarize(c->samples, hn, &s);
        r = bench_report_add(c->rep, group, fig, "us", BENCH_LATENCY, us(s.mean_ns));
        bench_row_latency(r, us(s.p50_ns), us(s.p99_ns), hn);
        if (!modes[k].spin) {
            bench_row_limit(r, "futex hand-off", c->futex_pp_us);
        } else {
            bench_row_limit(r, "spin hand-off", c->spin_pp_us);
            if (!modes[k].busy)
                bench_row_target(r, BENCH_ON_P50, BENCH_LE, TARGET_HANDOFF_P50_US, "p50 <= 2 us");
        }
    }
    return 0;
}

/* ---- The section --------------------------------------------------------- */

static const uint64_t default_sizes[] = {64, 1024, 4096, 65536, MiB, 16 * MiB, 64 * MiB};
static const uint64_t quick_sizes[] = {64, 4096, MiB, 64 * MiB};

static int setup(ctx *c, const uint64_t *sizes, size_t nsizes) {
    c->max_size = sizes[nsizes - 1];

    /* CPUs: the parent stays on the first allowed one, the child takes the
     * second, so that the two sides never compete for a core */
    int err = bench_cpus(&c->orig_cpus, &c->ncpu, &c->cpu_a, &c->cpu_b);
    if (err)
        return fail_sys(c, err, "sched_getaffinity");
    c->yield = c->ncpu < 2;
    if (c->ncpu >= 2 && (err = bench_pin_cpu(c->cpu_a)))
        return fail_sys(c, err, "sched_setaffinity(CPU %d)", c->cpu_a);

    /* buffers, page-aligned and touched now, so that no timed region pays a
     * first touch */
    size_t len = (size_t)c->max_size;
    c->buf_len = (len + 4095) / 4096 * 4096 + 4096;
    c->src = mmap(NULL, c->buf_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    c->dst = mmap(NULL, c->buf_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (c->src == MAP_FAILED || c->dst == MAP_FAILED) {
        c->src = c->src == MAP_FAILED ? NULL : c->src;
        c->dst = c->dst == MAP_FAILED ? NULL : c->dst;
        return fail_sys(c, -ENOMEM, "mapping two %zu-byte buffers", c->buf_len);
    }
    c->samples = malloc(SAMPLES_MAX * sizeof(uint64_t));
    c->samples2 = malloc(SAMPLES_MAX * sizeof(uint64_t));
    if (!c->samples || !c->samples2)
        return fail_sys(c, -ENOMEM, "allocating sample buffers");
    for (size_t i = 0; i < c->buf_len; i++)
        c->src[i] = (uint8_t)(i * 131 + 7);
    memset(c->dst, 0x5a, c->buf_len);
    c->dst_at = c->dst;

    /* shared control block and hand-off timestamps */
    c->tcap = min_u64(count_fixed(c, 20000, 5000), SAMPLES_MAX) + 200;
    c->sh_len = sizeof(struct shared) + 2 * c->tcap * sizeof(uint64_t);
    void *p = mmap(NULL, c->sh_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return fail_sys(c, -errno, "mmap(%zu bytes, MAP_SHARED)", c->sh_len);
    c->sh = p;
    memset(c->sh->t, 0, 2 * c->tcap * sizeof(uint64_t));

    /* the store: a few of the largest objects plus headroom, created once */
    static const uint8_t seed[16] = "reel-bench store";
    memcpy(c->parent.bytes, seed, sizeof(seed));
    char name[64];
    snprintf(name, sizeof(name), "reel-bench-%ld", (long)getpid());
    reel_store_options o = {0};
    c->capacity = (4 * c->max_size + 16 * MiB + 4095) / 4096 * 4096;
    if (c->capacity < 64 * MiB)
        c->capacity = 64 * MiB;
    o.capacity = c->capacity;
    o.max_objects = 65536;
    progress(c, "creating and pre-faulting the store", 0);
    uint64_t t0 = bench_now_ns();
    err = reel_store_create(name, &o, &c->store);
    if (err == -EEXIST) { /* left behind by a dead run with our pid */
        reel_store_destroy(name);
        err = reel_store_create(name, &o, &c->store);
    }
    if (err)
        return fail(c, err, "reel_store_create(%s, %llu bytes)", name,
                    (unsigned long long)o.capacity);
    double create_s = (double)(bench_now_ns() - t0) / 1e9;
    snprintf(c->path, sizeof(c->path), "%s", reel_store_path(c->store));
    snprintf(cleanup_path, sizeof(cleanup_path), "%s", c->path);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGHUP, on_signal);

    char cap[32];
    bench_format_size(c->capacity, cap, sizeof(cap));
    bench_report_note(c->rep,
                      "store %s: %s, created and pre-faulted in %.2f s (%.2f GB/s), "
                      "outside every timed region",
                      c->path, cap, create_s, (double)c->capacity / 1e9 / create_s);
    if (c->ncpu >= 2)
        bench_report_note(c->rep,
                          "%d CPUs: one-process runs and the writer on CPU %d, the "
                          "reader process on CPU %d",
                          c->ncpu, c->cpu_a, c->cpu_b);
    else
        bench_report_note(c->rep, "1 CPU: writer and reader share it, readers never spin "
                                  "(the \"reader spins\" rows sleep too)");
    bench_report_note(c->rep,
                      "put = reel_obj_put (create + copy + seal), timed; deletes run between "
                      "batches, untimed; get+release: one sealed object, no wait");
    bench_report_note(c->rep, "rate rows: ratios compare the value; latency rows (us): value "
                              "is the mean, ratios compare the p50");
    return 0;
}

static void teardown(ctx *c) {
    if (c->store) {
        reel_store_close(c->store);
        reel_store_destroy(c->path);
        c->store = NULL;
    }
    cleanup_path[0] = '\0';
    cleanup_path2[0] = '\0';
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    if (c->sh)
        munmap(c->sh, c->sh_len);
    if (c->src)
        munmap(c->src, c->buf_len);
    if (c->dst)
        munmap(c->dst, c->buf_len);
    free(c->samples);
    free(c->samples2);
    if (c->ncpu >= 2)
        sched_setaffinity(0, sizeof(c->orig_cpus), &c->orig_cpus);
    bench_progress_done(c->opts);
}

int bench_store_run(const bench_options *opts, bench_report *report) {
    if (opts->spill)
        return bench_spill_run(opts, report);
    ctx c;
    memset(&c, 0, sizeof(c));
    c.opts = opts;
    c.rep = report;
    c.errbuf = report->error;
    const uint64_t *sizes = opts->nsizes ? opts->sizes : opts->quick ? quick_sizes : default_sizes;
    size_t nsizes = opts->nsizes  ? opts->nsizes
                    : opts->quick ? sizeof(quick_sizes) / sizeof(quick_sizes[0])
                                  : sizeof(default_sizes) / sizeof(default_sizes[0]);
    uint64_t t0 = bench_now_ns();
    int err = setup(&c, sizes, nsizes);
    if (!err) {
        c.timer_p50_us =
            bench_timer_p50_us(c.samples, min_u64(count_fixed(&c, 100000, 20000), SAMPLES_MAX));
        bench_report_note(report,
                          "timer: a CLOCK_MONOTONIC pair costs %.3f us (p50); per-op "
                          "p50/p99 include it",
                          c.timer_p50_us);
        err = bench_handoff_limits(opts, report, "two processes, no store: the physical limits", 1,
                                   c.ncpu >= 2 ? c.cpu_b : -1, c.yield, c.samples, SAMPLES_MAX,
                                   &c.spin_pp_us, &c.futex_pp_us);
    }
    if (!err)
        err = measure_atomic_limit(&c);
    if (!err)
        err = measure_fresh_memory(&c);
    for (size_t i = 0; !err && i < nsizes; i++)
        err = measure_one_process(&c, sizes[i]);
    for (size_t i = 0; !err && i < nsizes; i++)
        err = measure_two_processes(&c, sizes[i], i);
    if (!err)
        bench_report_note(report, "whole section took %.1f s", (double)(bench_now_ns() - t0) / 1e9);
    teardown(&c);
    return err;
}
