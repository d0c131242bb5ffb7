/*
 * bench_actors.c - `reel-bench actors`: what the actor runtime costs per
 * task (round trip and pipelined throughput, 1:1, 1:n and n:n, with an
 * argument of any size) and at rest (an idle pool's CPU time), with workers
 * that spin before they sleep and with workers that sleep at once, beside
 * the physical limits measured in the same run: a plain cross-process
 * hand-off (the round trips' limit) and a lock-free ring between two
 * processes on two CPUs (the pipelined rows' limit). Ray's figures for the
 * same workloads, measured on this machine, become the rows' baselines
 * with --vs-ray (bench/ray/actors.py, bench_ray.h); there is no constant
 * baseline.
 *
 * Every stage here is a no-op: process() returns 0 and makes no output, so
 * what is measured is the runtime itself: submit, the task ring, the worker's
 * get of its inputs (zero-copy views), the result ring, collect.
 *
 * The runtime forks its zygote in reel_runtime_start(), before any thread
 * exists (this program has none), so both runtimes - one whose workers spin,
 * one with REEL_RUNTIME_NO_SPIN - start first, and only then does this
 * process pin itself to its first CPU: the zygote, and every worker it forks,
 * keep the whole CPU set (the runtime does not pin). The n:n figures fork n
 * driver processes; each takes back the whole CPU set, creates its own store
 * (and puts the argument there, when the figure has one), starts its own
 * runtime, dies with this process (PR_SET_PDEATHSIG) and is always reaped.
 * They report through one MAP_SHARED anonymous mapping (struct shared).
 *
 * The ring limit (measure_ring) forks one more process, pinned to the second
 * CPU, that pushes 8-byte items into a single-producer/single-consumer ring
 * in another MAP_SHARED anonymous mapping (struct ring_shm: head and tail on
 * cache lines of their own, acquire/release, RING_SLOTS a power of two)
 * while this process, pinned to the first, pops them: both spin. Its items
 * per second are what any one-way hand-off between two processes can reach
 * here, which a pipelined op/s row cannot beat.
 *
 * A signal (SIGINT, SIGTERM, SIGHUP) only sets a flag, which every loop
 * checks, so that pools, runtimes and stores are stopped and removed as on
 * any other failure. The zygotes and workers inherit the handler: a Ctrl-C
 * does not kill them under their driver, which stops them in order.
 */
#include "bench.h"
#include "cli.h"

#include <reel/actor.h>

#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TARGET_RTT_P50_US  5.0
#define TARGET_TASKS_PER_S 1e6
#define TARGET_SIZE_RTT    1.1 /* a larger argument: round-trip p50 <= 1.1x the smallest's */
#define TARGET_SIZE_RATE   0.9 /* and throughput >= 0.9x */
#define TARGET_IDLE_CPU_S                                                                          \
    0.01 /* an idle pool's 2 workers together, over 5 s idle (0.2% of a CPU) */

#define WINDOW      1024u     /* tasks outstanding in a pipelined run */
#define WAIT_MS     10000     /* longest any submit, collect or stop waits */
#define MAX_N       4u        /* the n of 1:n and n:n: 2 and 4 */
#define SAMPLES_MAX 1000000u  /* round trips timed by one measurement, at most */
#define IDLE_SETTLE 200000000 /* ns from an idle pool's last task to its measurement */
#define ROUNDS      10u       /* turns of the variants compared with each other */
#define RING_SLOTS  1024u     /* items in the ring of the ring limit: a power of two */
#define RING_RUNS   3u        /* the ring limit is the best of this many runs */

#define LIMITS_GROUP "two processes, no runtime: the limits"
#define RING_FIGURE  "ring hand-off, 2 processes, spin"
#define RING_LIMIT   "ring hand-off, spin"

#define MiB (1024ull * 1024)

enum { SPIN = 0, SLEEP = 1, NMODES = 2 };
static const char *const mode_name[NMODES] = {"spin", "sleep"};

/* ---- The stages ------------------------------------------------------------ */

/* The no-op actor. Its inputs arrive as zero-copy views the runtime took
 * before the call and releases after it; it makes no output. */
static int noop(reel_actor_ctx *actx, const reel_view *in, size_t n, reel_actor_out *out) {
    (void)actx;
    (void)in;
    (void)n;
    (void)out;
    return 0;
}

/* With the default of 2 tasks prefetched per worker, and with 64 (the most). */
static const reel_actor_def noop_stage = {.name = "noop", .process = noop};
static const reel_actor_def noop64_stage = {.name = "noop-slots64", .process = noop, .slots = 64};
static const reel_actor_def *const stages[] = {&noop_stage, &noop64_stage};

/* ---- State --------------------------------------------------------------- */

enum { KID_STARTING = 0, KID_READY = 1, KID_DONE = 2, KID_FAILED = 3 };

/* One n:n driver process's report. */
struct kid {
    _Alignas(64) _Atomic uint32_t state;
    int err;
    uint64_t done, elapsed_ns;
    char msg[256];
};

struct shared {
    _Alignas(64) _Atomic uint32_t go; /* every driver process is ready: start */
    struct kid kid[MAX_N];
};

typedef struct figure {
    double value;          /* op/s; the mean in us for round trips; CPU seconds */
    double p50_us, p99_us; /* round trips only */
    uint64_t samples;
} figure;

/* How many operations, and for how long at most (0: no limit). */
typedef struct budget {
    uint64_t n, cap_ns;
} budget;

typedef struct ctx {
    const bench_options *opts;
    bench_report *rep;
    char *errbuf; /* where a failure is described: the report, or a driver process's slot */
    const uint64_t *sizes;
    size_t nsizes;
    char store_name[64];
    reel_store *store;
    reel_id args[BENCH_MAX_SIZES];
    reel_runtime *rt[NMODES];
    struct shared *sh;
    uint64_t *samples;
    int ncpu, cpu_a, cpu_b, pinned;
    cpu_set_t orig_cpus;
    double spin_rtt_us, futex_rtt_us;
    double idle_s; /* how long an idle pool is watched */
    /* figures, [argument: 0 none, 1.. the sizes][mode] */
    figure rtt[1 + BENCH_MAX_SIZES][NMODES], rate[1 + BENCH_MAX_SIZES][NMODES];
    figure deep[NMODES], one_n[2][NMODES];
    /* n:n, [argument: 0 none, 1.. the sizes][n = 2, 4][mode]; nn_has: measured */
    figure n_n[1 + BENCH_MAX_SIZES][2][NMODES];
    int nn_has[1 + BENCH_MAX_SIZES];
    size_t nn_arg;    /* the argument of the n:n run in progress (0: none) */
    double ring_rate; /* the ring limit, items/s; 0: not measured */
    figure idle_workers[NMODES], idle_exact[NMODES], idle_driver[NMODES];
    int has_schedstat;
} ctx;

/* ---- Failures, signals ------------------------------------------------------ */

/* A reel call failed: err, and the library's detail sentence if it left one. */
static int fail(ctx *c, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(ctx *c, int err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    bench_describe_failure(c->errbuf, 256, err, 1, fmt, ap);
    va_end(ap);
    return err;
}

static int check_interrupted(ctx *c) {
    if (!cli_stop_signal)
        return 0;
    snprintf(c->errbuf, 256, "interrupted by a signal");
    return -EINTR;
}

/* Sleeps ns nanoseconds unless a signal asks to stop. */
static int sleep_ns(ctx *c, uint64_t ns) {
    uint64_t end = bench_now_ns() + ns;
    struct timespec ts = {(time_t)(end / 1000000000u), (long)(end % 1000000000u)};
    int rc;
    while ((rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL)) == EINTR)
        if (check_interrupted(c))
            return -EINTR;
    return -rc;
}

/* ---- Sizes of the measurements ------------------------------------------- */

/* --iterations sets the count and lifts the time cap. */
static budget plan(const ctx *c, uint64_t full, double full_s, uint64_t quick, double quick_s) {
    budget b = {c->opts->quick ? quick : full,
                (uint64_t)((c->opts->quick ? quick_s : full_s) * 1e9)};
    if (c->opts->iterations) {
        b.n = c->opts->iterations;
        b.cap_ns = 0;
    }
    return b;
}

static budget warmup(budget b) {
    budget w = {b.n / 10 + 1, b.cap_ns / 10};
    if (w.n > 20000)
        w.n = 20000;
    return w;
}

static void arg_label(const ctx *c, size_t a, char *buf, size_t cap) {
    char sz[32] = "";
    if (a)
        bench_format_size(c->sizes[a - 1], sz, sizeof(sz));
    snprintf(buf, cap, "%s%s", a ? sz : "no", " arg");
}

/* ---- Driving a pool ------------------------------------------------------- */

static int open_pool(ctx *c, reel_runtime *rt, const char *stage, uint32_t workers,
                     reel_pool **pool) {
    int err = reel_pool_start(rt, stage, workers, pool);
    if (err)
        return fail(c, err, "reel_pool_start(%s, %" PRIu32 " workers)", stage, workers);
    return 0;
}

static int submit_one(ctx *c, reel_pool *pool, const reel_id *arg) {
    int err = reel_pool_submit(pool, arg, arg ? 1 : 0, NULL, WAIT_MS, NULL);
    if (err)
        return fail(c, err, "reel_pool_submit");
    return 0;
}

static int collect_one(ctx *c, reel_pool *pool) {
    reel_task_result r;
    int err = reel_pool_collect(pool, &r, WAIT_MS);
    if (err)
        return fail(c, err, "reel_pool_collect");
    if (r.status) {
        snprintf(c->errbuf, 256, "a no-op task failed after %" PRIu32 " attempts: %.180s",
                 r.attempts, r.error);
        return r.status;
    }
    return 0;
}

/* Round trips, one task at a time: submit, then collect it. Times each into
 * lat if given; *done says how many ran before b's count or time ran out. */
static int round_trips(ctx *c, reel_pool *pool, const reel_id *arg, budget b, uint64_t *lat,
                       uint64_t *done) {
    uint64_t start = bench_now_ns();
    int err = 0;
    *done = 0;
    while (*done < b.n) {
        uint64_t t0 = bench_now_ns();
        if ((b.cap_ns && t0 - start > b.cap_ns) || (err = check_interrupted(c)) ||
            (err = submit_one(c, pool, arg)) || (err = collect_one(c, pool)))
            break;
        if (lat)
            lat[*done] = bench_now_ns() - t0;
        ++*done;
    }
    return err;
}

/* Pipelined: keeps up to WINDOW tasks submitted and not yet collected,
 * collects them as they come, until b's count is done or its time has run
 * out (then what is outstanding is collected too). *elapsed_ns runs from the
 * first submit to the last collect. */
static int pipelined(ctx *c, reel_pool *pool, const reel_id *arg, budget b, uint64_t *done,
                     uint64_t *elapsed_ns) {
    uint64_t t0 = bench_now_ns(), submitted = 0, stop_at = b.n;
    int err = 0;
    *done = 0;
    while (!err && *done < stop_at) {
        while (!err && submitted < stop_at && submitted - *done < WINDOW)
            if (!(err = submit_one(c, pool, arg)))
                submitted++;
        if (err || (err = collect_one(c, pool)))
            break;
        if ((++*done & 255) == 0) {
            err = check_interrupted(c);
            if (b.cap_ns && bench_now_ns() - t0 > b.cap_ns)
                stop_at = submitted;
        }
    }
    *elapsed_ns = bench_now_ns() - t0;
    return err;
}

/* ---- One driver process ------------------------------------------------------ */

/* Round trips and pipelined throughput without an argument and with each
 * size, on one pool, in ROUNDS rounds that each run a share of every variant
 * in turn: the variants are compared, so they must see the same machine
 * (this one is shared, and its speed drifts within a run). */
static int measure_args(ctx *c, int mode) {
    size_t nv = 1 + c->nsizes;
    budget rb = plan(c, 200000, 1.0, 20000, 0.15), pb = plan(c, 5000000, 1.5, 500000, 0.25);
    if (rb.n > SAMPLES_MAX / nv)
        rb.n = SAMPLES_MAX / nv;
    budget rs = {(rb.n + ROUNDS - 1) / ROUNDS, rb.cap_ns / ROUNDS};
    budget ps = {(pb.n + ROUNDS - 1) / ROUNDS, pb.cap_ns / ROUNDS};
    uint64_t nrt[1 + BENCH_MAX_SIZES] = {0}, ntask[1 + BENCH_MAX_SIZES] = {0};
    uint64_t el[1 + BENCH_MAX_SIZES] = {0};
    reel_pool *pool = NULL;
    int err = open_pool(c, c->rt[mode], "noop", 1, &pool);
    for (size_t a = 0; !err && a < nv; a++) {
        const reel_id *arg = a ? &c->args[a - 1] : NULL;
        uint64_t n, e;
        if (!(err = round_trips(c, pool, arg, warmup(rb), NULL, &n)))
            err = pipelined(c, pool, arg, warmup(pb), &n, &e);
    }
    for (unsigned r = 0; !err && r < ROUNDS; r++) {
        bench_progress(c->opts, "actors", "1:1, every argument, %s, round %u of %u",
                       mode_name[mode], r + 1, ROUNDS);
        for (size_t a = 0; !err && a < nv; a++) {
            const reel_id *arg = a ? &c->args[a - 1] : NULL;
            uint64_t *lat = c->samples + a * (SAMPLES_MAX / nv) + nrt[a];
            budget b = rs;
            b.n = b.n < rb.n - nrt[a] ? b.n : rb.n - nrt[a];
            uint64_t n = 0, e = 0;
            if ((err = round_trips(c, pool, arg, b, lat, &n)))
                break;
            nrt[a] += n;
            if ((err = pipelined(c, pool, arg, ps, &n, &e)))
                break;
            ntask[a] += n;
            el[a] += e;
        }
    }
    if (pool)
        reel_pool_stop(pool, WAIT_MS);
    for (size_t a = 0; !err && a < nv; a++) {
        bench_summary s;
        bench_summarize(c->samples + a * (SAMPLES_MAX / nv), nrt[a], &s);
        c->rtt[a][mode] = (figure){s.mean_ns / 1e3, s.p50_ns / 1e3, s.p99_ns / 1e3, nrt[a]};
        c->rate[a][mode] = (figure){(double)ntask[a] * 1e9 / (double)el[a], 0, 0, ntask[a]};
    }
    return err;
}

/* Pipelined throughput, without an argument, of a pool of this stage and
 * size; the figure is its op/s. */
static int measure_rate(ctx *c, reel_runtime *rt, const char *stage, uint32_t workers, figure *f) {
    budget b = plan(c, 5000000, 1.5, 500000, 0.25);
    reel_pool *pool;
    int err = open_pool(c, rt, stage, workers, &pool);
    if (err)
        return err;
    uint64_t n = 0, el = 0;
    if (!(err = pipelined(c, pool, NULL, warmup(b), &n, &el)))
        err = pipelined(c, pool, NULL, b, &n, &el);
    reel_pool_stop(pool, WAIT_MS);
    if (err)
        return err;
    *f = (figure){(double)n * 1e9 / (double)el, 0, 0, n};
    return 0;
}

/* ---- n driver processes ------------------------------------------------------- */

/* Puts argument i into st as *id: sizes[i] bytes of a pattern, sealed once,
 * read by every task that names it. */
static int put_arg(ctx *c, reel_store *st, size_t i, reel_id *id) {
    static const uint8_t seed[16] = "reel-bench actor";
    reel_id parent;
    memcpy(parent.bytes, seed, sizeof(seed));
    void *buf;
    reel_id_derive(&parent, i, id);
    int err = reel_obj_create(st, id, c->sizes[i], NULL, 0, 0, 0, &buf);
    if (err)
        return fail(c, err, "reel_obj_create(%" PRIu64 " bytes)", c->sizes[i]);
    memset(buf, 0xa5, (size_t)c->sizes[i]);
    if ((err = reel_obj_seal(st, id)))
        return fail(c, err, "reel_obj_seal");
    return 0;
}

/* An n:n driver's count and time cap: with --quick, half of a 1:1 run's, so
 * that n:n with an argument (measured for the largest size only) leaves the
 * section about as long as it was. */
static budget nn_plan(const ctx *c) {
    return plan(c, 5000000, 1.5, 250000, 0.125);
}

static void kid_store_name(const ctx *c, uint32_t i, char *buf, size_t cap) {
    snprintf(buf, cap, "%s-d%" PRIu32, c->store_name, i);
}

/* A driver process: its own store (holding c->nn_arg's argument, if any),
 * runtime and pool of one worker; warms up, says it is ready, waits for the
 * others, then runs the pipelined loop, every task naming the argument as
 * 1:1's do. */
static int kid_run(ctx *c, int mode, uint32_t i, struct kid *k) {
    char name[96];
    kid_store_name(c, i, name, sizeof(name));
    uint64_t capacity = MiB;
    if (c->nn_arg)
        capacity += (c->sizes[c->nn_arg - 1] + 8191) / 4096 * 4096;
    reel_store_options so = {.capacity = capacity, .max_objects = 64};
    reel_store *st = NULL;
    reel_runtime *rt = NULL;
    reel_pool *pool = NULL;
    reel_id arg;
    const reel_id *argp = c->nn_arg ? &arg : NULL;
    int err = reel_store_create(name, &so, &st);
    if (err)
        return fail(c, err, "reel_store_create(%s, %" PRIu64 " bytes)", name, capacity);
    if (argp && (err = put_arg(c, st, c->nn_arg - 1, &arg))) {
        reel_store_close(st);
        reel_store_destroy(name);
        return err;
    }
    reel_runtime_options ro = {.store = name,
                               .actors = stages,
                               .n_actors = sizeof(stages) / sizeof(stages[0]),
                               .flags = mode == SLEEP ? REEL_RUNTIME_NO_SPIN : 0};
    if ((err = reel_runtime_start(&ro, &rt)))
        fail(c, err, "reel_runtime_start");
    else
        err = open_pool(c, rt, "noop-slots64", 1, &pool);
    budget b = nn_plan(c);
    uint64_t n = 0, el = 0;
    if (!err)
        err = pipelined(c, pool, argp, warmup(b), &n, &el);
    if (!err) {
        atomic_store_explicit(&k->state, KID_READY, memory_order_release);
        uint64_t deadline = bench_now_ns() + WAIT_MS * 1000000ull;
        while (!err && !atomic_load_explicit(&c->sh->go, memory_order_acquire)) {
            if (bench_now_ns() > deadline) {
                snprintf(c->errbuf, 256, "no start signal within %d ms", WAIT_MS);
                err = -ETIMEDOUT;
            } else {
                err = sleep_ns(c, 50000);
            }
        }
    }
    if (!err && !(err = pipelined(c, pool, argp, b, &n, &el))) {
        k->done = n;
        k->elapsed_ns = el;
    }
    reel_pool_stop(pool, WAIT_MS);
    reel_runtime_stop(rt);
    reel_store_close(st);
    reel_store_destroy(name);
    return err;
}

static void kid_main(ctx *c, int mode, uint32_t i, pid_t parent) __attribute__((noreturn));
static void kid_main(ctx *c, int mode, uint32_t i, pid_t parent) {
    struct kid *k = &c->sh->kid[i];
    c->errbuf = k->msg;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(1);
    if (c->pinned)
        sched_setaffinity(0, sizeof(c->orig_cpus), &c->orig_cpus);
    int err = kid_run(c, mode, i, k);
    k->err = err;
    atomic_store_explicit(&k->state, err ? KID_FAILED : KID_DONE, memory_order_release);
    _exit(err ? 1 : 0);
}

/* Reaps driver process i if it has exited; an exit before its report is an
 * error. */
static int reap_kid(ctx *c, pid_t *pid, uint32_t i) {
    int status;
    if (*pid <= 0 || waitpid(*pid, &status, WNOHANG) != *pid)
        return 0;
    *pid = 0;
    if (atomic_load_explicit(&c->sh->kid[i].state, memory_order_acquire) >= KID_DONE)
        return 0;
    snprintf(c->errbuf, 256, "driver process %" PRIu32 " ended without a report (status 0x%x)", i,
             status);
    return -ECHILD;
}

/* Waits, asleep, until every driver process has reached state want. */
static int wait_kids(ctx *c, pid_t *pids, uint32_t n, uint32_t want, uint64_t timeout_ns) {
    uint64_t deadline = bench_now_ns() + timeout_ns;
    for (;;) {
        uint32_t there = 0;
        for (uint32_t i = 0; i < n; i++) {
            struct kid *k = &c->sh->kid[i];
            uint32_t s = atomic_load_explicit(&k->state, memory_order_acquire);
            if (s == KID_FAILED) {
                snprintf(c->errbuf, 256, "driver process %" PRIu32 ": %.200s", i, k->msg);
                return k->err ? k->err : -ECHILD;
            }
            there += s >= want;
        }
        if (there == n)
            return 0;
        for (uint32_t i = 0; i < n; i++) {
            int err = reap_kid(c, &pids[i], i);
            if (err)
                return err;
        }
        if (bench_now_ns() > deadline) {
            snprintf(c->errbuf, 256, "timed out waiting for the driver processes");
            return -ETIMEDOUT;
        }
        int err = sleep_ns(c, 1000000);
        if (err)
            return err;
    }
}

/* Waits for child *pid to exit, kills it once deadline (bench_now_ns) has
 * passed, and reaps it either way; *pid is 0 after. */
static void reap_by(pid_t *pid, uint64_t deadline) {
    while (*pid > 0) {
        int status;
        pid_t r = waitpid(*pid, &status, WNOHANG);
        if (r == *pid || (r < 0 && errno != EINTR)) {
            *pid = 0;
        } else if (bench_now_ns() > deadline) {
            kill(*pid, SIGKILL);
            while (waitpid(*pid, &status, 0) < 0 && errno == EINTR)
                ;
            *pid = 0;
        } else {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    }
}

/* Reaps every driver process: after a failure, asks them to stop first
 * (SIGTERM: they clean up), and kills those that do not within 10 s. Removes
 * their stores in case one could not. */
static void reap_kids(ctx *c, pid_t *pids, uint32_t n, int failed) {
    uint64_t deadline = bench_now_ns() + WAIT_MS * 1000000ull;
    for (uint32_t i = 0; i < n; i++) {
        if (pids[i] > 0 && failed)
            kill(pids[i], SIGTERM);
    }
    for (uint32_t i = 0; i < n; i++) {
        reap_by(&pids[i], deadline);
        char name[96];
        kid_store_name(c, i, name, sizeof(name));
        reel_store_destroy(name);
    }
}

/* n driver processes, each with its own runtime and a pool of one worker,
 * each task naming argument a (0: none); the figure is the sum of their
 * rates. */
static int measure_n_n(ctx *c, int mode, uint32_t n, size_t a, figure *f) {
    char label[48];
    arg_label(c, a, label, sizeof(label));
    bench_progress(c->opts, "actors", "%" PRIu32 ":%" PRIu32 " (driver processes), %s, %s", n, n,
                   label, mode_name[mode]);
    c->nn_arg = a;
    memset(c->sh, 0, sizeof(*c->sh));
    pid_t pids[MAX_N] = {0};
    pid_t self = getpid();
    int err = 0;
    fflush(NULL);
    for (uint32_t i = 0; !err && i < n; i++) {
        pids[i] = fork();
        if (pids[i] == 0)
            kid_main(c, mode, i, self);
        if (pids[i] < 0) {
            err = -errno;
            snprintf(c->errbuf, 256, "fork: %s", strerror(errno));
        }
    }
    budget b = nn_plan(c);
    if (!err)
        err = wait_kids(c, pids, n, KID_READY, 30 * 1000000000ull);
    if (!err) {
        atomic_store_explicit(&c->sh->go, 1, memory_order_release);
        err =
            wait_kids(c, pids, n, KID_DONE, b.cap_ns ? b.cap_ns + 30000000000ull : UINT64_MAX / 2);
    }
    reap_kids(c, pids, n, err != 0);
    if (err)
        return err;
    *f = (figure){0};
    for (uint32_t i = 0; i < n; i++) {
        f->value += (double)c->sh->kid[i].done * 1e9 / (double)c->sh->kid[i].elapsed_ns;
        f->samples += c->sh->kid[i].done;
    }
    return 0;
}

/* ---- The ring limit ------------------------------------------------------------ */

enum { RING_STARTING = 0, RING_READY = 1, RING_FAILED = 2 };

/* The ring of measure_ring(): item k goes into slot k & (RING_SLOTS - 1),
 * written before head passes k (release), read after the consumer has seen
 * head pass it (acquire); the producer reuses a slot only once tail, stored
 * after the read (release), has passed it. */
struct ring_shm {
    _Alignas(64) _Atomic uint64_t head; /* items pushed; written by the producer */
    _Alignas(64) _Atomic uint64_t tail; /* items popped; written by the consumer */
    _Alignas(64) _Atomic uint32_t stop; /* the consumer is done: the producer exits */
    _Atomic uint32_t state;             /* the producer's RING_* */
    _Alignas(64) uint64_t slot[RING_SLOTS];
};

/* The producer: pinned to cpu, pushes item k = 0, 1, 2... until stop. It
 * looks at tail only when the ring seems full, and at stop then and every
 * 4096 items. */
static void ring_producer(struct ring_shm *r, int cpu, pid_t parent) __attribute__((noreturn));
static void ring_producer(struct ring_shm *r, int cpu, pid_t parent) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(1);
    if (bench_pin_cpu(cpu) != 0) {
        atomic_store_explicit(&r->state, RING_FAILED, memory_order_release);
        _exit(1);
    }
    atomic_store_explicit(&r->state, RING_READY, memory_order_release);
    uint64_t h = 0, tail_seen = 0;
    for (;;) {
        if (h - tail_seen == RING_SLOTS) {
            tail_seen = atomic_load_explicit(&r->tail, memory_order_acquire);
            if (h - tail_seen == RING_SLOTS) {
                if (atomic_load_explicit(&r->stop, memory_order_relaxed))
                    break;
                bench_cpu_relax();
                continue;
            }
        }
        r->slot[h & (RING_SLOTS - 1)] = h;
        atomic_store_explicit(&r->head, ++h, memory_order_release);
        if ((h & 4095) == 0 && atomic_load_explicit(&r->stop, memory_order_relaxed))
            break;
    }
    _exit(0);
}

/* Pops items for run_ns (checking the clock every 4096 items) and says how
 * many and over how long. *t is the next item to pop, *head_seen the head
 * last read. Fails after WAIT_MS without an item, or on an item out of
 * order. */
static int ring_consume(ctx *c, struct ring_shm *r, uint64_t run_ns, uint64_t *t,
                        uint64_t *head_seen, uint64_t *items, uint64_t *elapsed_ns) {
    uint64_t t0 = bench_now_ns(), now = t0, last = t0, n0 = *t, idle = 0;
    int err = 0;
    for (;;) {
        if (*t == *head_seen) {
            *head_seen = atomic_load_explicit(&r->head, memory_order_acquire);
            if (*t == *head_seen) {
                bench_cpu_relax();
                if ((++idle & 1023) == 0) {
                    now = bench_now_ns();
                    if ((err = check_interrupted(c)))
                        break;
                    if (now - last > WAIT_MS * 1000000ull) {
                        snprintf(c->errbuf, 256, "ring hand-off: no item for %d ms", WAIT_MS);
                        err = -ETIMEDOUT;
                        break;
                    }
                }
                continue;
            }
        }
        uint64_t v = r->slot[*t & (RING_SLOTS - 1)];
        if (v != *t) {
            snprintf(c->errbuf, 256, "ring hand-off: item %" PRIu64 " read as %" PRIu64, *t, v);
            err = -EPROTO;
            break;
        }
        atomic_store_explicit(&r->tail, ++*t, memory_order_release);
        if ((*t & 4095) == 0) {
            last = now = bench_now_ns();
            if (now - t0 >= run_ns || (err = check_interrupted(c)))
                break;
        }
    }
    *items = *t - n0;
    *elapsed_ns = now - t0;
    return err;
}

/* The physical limit of the pipelined rows: items per second through the
 * ring between this process (pinned to cpu_a since setup) and a child pinned
 * to cpu_b, both spinning; the best of RING_RUNS runs of 0.2 s (--quick
 * 0.05 s) after a warm-up. Adds its row to LIMITS_GROUP and sets
 * c->ring_rate; without two CPUs to pin to, a note instead. */
static int measure_ring(ctx *c) {
    if (!c->pinned || c->ncpu < 2 || c->cpu_b < 0) {
        bench_report_note(c->rep,
                          RING_FIGURE ": not measured: it needs 2 CPUs to pin to (%d "
                                      "here); the pipelined rows have no limit",
                          c->ncpu);
        return 0;
    }
    bench_progress(c->opts, "actors", "ring hand-off, CPUs %d and %d", c->cpu_a, c->cpu_b);
    void *p = mmap(NULL, sizeof(struct ring_shm), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        int err = -errno;
        snprintf(c->errbuf, 256, "ring hand-off: mmap: %s", strerror(errno));
        return err;
    }
    struct ring_shm *r = p;
    pid_t self = getpid();
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0)
        ring_producer(r, c->cpu_b, self);
    if (pid < 0) {
        int err = -errno;
        snprintf(c->errbuf, 256, "ring hand-off: fork: %s", strerror(errno));
        munmap(p, sizeof(*r));
        return err;
    }

    int err = 0, skipped = 0;
    uint64_t deadline = bench_now_ns() + WAIT_MS * 1000000ull;
    uint32_t st;
    while (!err && (st = atomic_load_explicit(&r->state, memory_order_acquire)) == RING_STARTING) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            pid = 0;
            snprintf(c->errbuf, 256, "ring hand-off: the producer ended before it started");
            err = -ECHILD;
        } else if (bench_now_ns() > deadline) {
            snprintf(c->errbuf, 256, "ring hand-off: the producer did not start within %d ms",
                     WAIT_MS);
            err = -ETIMEDOUT;
        } else {
            err = sleep_ns(c, 100000);
        }
    }
    if (!err && st == RING_FAILED)
        skipped = 1;

    uint64_t run_ns = c->opts->quick ? 50000000ull : 200000000ull;
    uint64_t t = 0, head_seen = 0, items = 0, el = 0, best_items = 0;
    double best = 0;
    if (!err && !skipped)
        err = ring_consume(c, r, run_ns / 4, &t, &head_seen, &items, &el); /* warm-up */
    for (unsigned k = 0; !err && !skipped && k < RING_RUNS; k++) {
        if (!(err = ring_consume(c, r, run_ns, &t, &head_seen, &items, &el)) && el > 0 &&
            (double)items * 1e9 / (double)el > best) {
            best = (double)items * 1e9 / (double)el;
            best_items = items;
        }
    }

    /* always reaped: stop asks it to exit; a stuck one is killed after WAIT_MS */
    atomic_store_explicit(&r->stop, 1, memory_order_relaxed);
    reap_by(&pid, bench_now_ns() + WAIT_MS * 1000000ull);
    munmap(p, sizeof(*r));
    if (err)
        return err;
    if (skipped) {
        bench_report_note(c->rep,
                          RING_FIGURE ": not measured: the producer could not pin itself "
                                      "to CPU %d; the pipelined rows have no limit",
                          c->cpu_b);
        return 0;
    }
    c->ring_rate = best;
    bench_row *row = bench_report_add(c->rep, LIMITS_GROUP, RING_FIGURE, "op/s", BENCH_RATE, best);
    if (row)
        row->samples = best_items;
    return 0;
}

/* ---- An idle pool ------------------------------------------------------------- */

typedef struct cpu_use {
    uint64_t ticks;          /* utime + stime, /proc/PID/stat */
    uint64_t run_ns, slices; /* /proc/PID/schedstat, if the kernel keeps it */
} cpu_use;

/* Adds a process's CPU time to *u. 0, or -errno if it cannot be read. */
static int add_cpu_use(pid_t pid, cpu_use *u) {
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -errno;
    size_t len = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[len] = '\0';
    /* the name may hold spaces and parentheses: fields count from the last ')' */
    const char *p = strrchr(buf, ')');
    unsigned long long utime, stime;
    if (!p ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2)
        return -EPROTO;
    u->ticks += utime + stime;
    snprintf(path, sizeof(path), "/proc/%d/schedstat", (int)pid);
    unsigned long long run = 0, wait = 0, slices = 0;
    if ((f = fopen(path, "r"))) {
        if (fscanf(f, "%llu %llu %llu", &run, &wait, &slices) == 3) {
            u->run_ns += run;
            u->slices += slices;
        }
        fclose(f);
    }
    return 0;
}

static int workers_cpu(ctx *c, const pid_t *pids, size_t n, cpu_use *u) {
    memset(u, 0, sizeof(*u));
    for (size_t i = 0; i < n; i++) {
        int err = add_cpu_use(pids[i], u);
        if (err) {
            snprintf(c->errbuf, 256, "reading /proc/%d/stat: %s", (int)pids[i], strerror(-err));
            return err;
        }
    }
    return 0;
}

static double self_cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* A pool of two workers runs a few thousand tasks, then stays idle: from
 * IDLE_SETTLE on (far past the spin window), the CPU time its workers and this
 * driver (asleep, calling nothing) use over c->idle_s. */
static int measure_idle(ctx *c, int mode) {
    bench_progress(c->opts, "actors", "idle pool, %s, %.0f s", mode_name[mode], c->idle_s);
    reel_pool *pool;
    int err = open_pool(c, c->rt[mode], "noop", 2, &pool);
    if (err)
        return err;
    pid_t pids[2];
    size_t np = 0;
    uint64_t n, el;
    cpu_use before, after;
    double d0 = 0, d1 = 0;
    err = pipelined(c, pool, NULL, (budget){20000, 0}, &n, &el);
    if (!err && (err = reel_pool_workers(pool, pids, 2, &np)))
        fail(c, err, "reel_pool_workers");
    if (!err && np != 2) {
        snprintf(c->errbuf, 256, "the idle pool has %zu workers, not 2", np);
        err = -ECHILD;
    }
    if (!err)
        err = sleep_ns(c, IDLE_SETTLE);
    if (!err)
        err = workers_cpu(c, pids, np, &before);
    if (!err) {
        d0 = self_cpu_s();
        err = sleep_ns(c, (uint64_t)(c->idle_s * 1e9));
        d1 = self_cpu_s();
    }
    if (!err)
        err = workers_cpu(c, pids, np, &after);
    reel_pool_stop(pool, WAIT_MS);
    if (err)
        return err;
    c->idle_workers[mode].value =
        (double)(after.ticks - before.ticks) / (double)sysconf(_SC_CLK_TCK);
    c->idle_driver[mode].value = d1 - d0;
    c->idle_exact[mode].value = (double)(after.run_ns - before.run_ns) / 1e9;
    c->has_schedstat = after.slices > 0;
    if (after.slices)
        bench_report_note(c->rep,
                          "idle, %s: the 2 workers ran %.2f ms in %" PRIu64
                          " time slices over %.0f s (/proc/PID/schedstat)",
                          mode_name[mode], (double)(after.run_ns - before.run_ns) / 1e6,
                          after.slices - before.slices, c->idle_s);
    return 0;
}

/* ---- Rows ------------------------------------------------------------------- */

/* One figure measured with no argument and with each argument size, workers
 * that spin and workers that sleep side by side. The smallest argument is
 * compared with no argument, larger ones with the smallest (the figure must
 * not depend on the size). */
static void add_arg_rows(ctx *c, const char *group, const char *what, int kind,
                         figure f[][NMODES]) {
    int lat = kind == BENCH_LATENCY;
    char sz0[32] = "";
    if (c->nsizes)
        bench_format_size(c->sizes[0], sz0, sizeof(sz0));
    for (size_t a = 0; a <= c->nsizes; a++) {
        for (int m = 0; m < NMODES; m++) {
            char label[48], fig[BENCH_NAME_MAX], ref[48], tgt[BENCH_NAME_MAX];
            arg_label(c, a, label, sizeof(label));
            snprintf(fig, sizeof(fig), "%s, %s, %s", what, label, mode_name[m]);
            const figure *x = &f[a][m];
            bench_row *r =
                bench_report_add(c->rep, group, fig, lat ? "us" : "op/s", kind, x->value);
            if (lat)
                bench_row_latency(r, x->p50_us, x->p99_us, x->samples);
            if (a == 0) {
                if (!lat && c->ring_rate > 0)
                    bench_row_limit(r, RING_LIMIT, c->ring_rate);
                if (lat)
                    bench_row_limit(r, m == SPIN ? "spin round trip" : "futex round trip",
                                    m == SPIN ? c->spin_rtt_us : c->futex_rtt_us);
                if (m == SPIN && lat)
                    bench_row_target(r, BENCH_ON_P50, BENCH_LE, TARGET_RTT_P50_US, "p50 <= 5 us");
                else if (m == SPIN)
                    bench_row_target(r, BENCH_ON_VALUE, BENCH_GE, TARGET_TASKS_PER_S, ">= 1M op/s");
                continue;
            }
            size_t ra = a == 1 ? 0 : 1;
            arg_label(c, ra, ref, sizeof(ref));
            bench_row_limit(r, ref, lat ? f[ra][m].p50_us : f[ra][m].value);
            if (a == 1)
                continue;
            if (lat)
                snprintf(tgt, sizeof(tgt), "p50 <= %.1fx %s", TARGET_SIZE_RTT, sz0);
            else
                snprintf(tgt, sizeof(tgt), ">= %.1fx %s", TARGET_SIZE_RATE, sz0);
            bench_row_target(r, BENCH_ON_LIMIT, lat ? BENCH_LE : BENCH_GE,
                             lat ? TARGET_SIZE_RTT : TARGET_SIZE_RATE, tgt);
        }
    }
}

/* The ratio to beat for actor calls, on every call row of the
 * runtime's default configuration (spin), round trips and pipelined, where
 * Ray ran beside it. Sleeping workers opt out of spinning: each of their
 * hand-offs is a futex wake-up, and the futex round trip of the limits (30-50
 * us here) caps them at 12-20x Ray's 600 us round trip whatever the runtime
 * does; their rows show Ray beside them all the same. */
#define VS_RAY_CALLS 100.0

static void add_rows(ctx *c) {
    size_t first = c->rep->n;
    add_arg_rows(c, "round trip, 1 driver : 1 actor (submit one task, collect it)", "round trip",
                 BENCH_LATENCY, c->rtt);
    add_arg_rows(c, "throughput, pipelined, 1 driver : 1 actor", "1:1", BENCH_RATE, c->rate);
    for (int m = 0; m < NMODES; m++) {
        char fig[BENCH_NAME_MAX];
        snprintf(fig, sizeof(fig), "1:1, no arg, slots 64, %s", mode_name[m]);
        bench_row *r = bench_report_add(c->rep, "throughput, pipelined, 1 driver : 1 actor", fig,
                                        "op/s", BENCH_RATE, c->deep[m].value);
        if (c->ring_rate > 0)
            bench_row_limit(r, RING_LIMIT, c->ring_rate);
    }
    char group[96];
    snprintf(group, sizeof(group), "throughput, pipelined, 1 driver : n actors (%d CPUs)", c->ncpu);
    for (int k = 0; k < 2; k++)
        for (int m = 0; m < NMODES; m++) {
            char fig[BENCH_NAME_MAX];
            snprintf(fig, sizeof(fig), "1:%d, no arg, %s", 2 << k, mode_name[m]);
            bench_row *r =
                bench_report_add(c->rep, group, fig, "op/s", BENCH_RATE, c->one_n[k][m].value);
            if (c->ring_rate > 0)
                bench_row_limit(r, RING_LIMIT, c->ring_rate);
        }
    snprintf(group, sizeof(group),
             "throughput, pipelined, n driver processes : n actors, summed (%d CPUs)", c->ncpu);
    for (size_t a = 0; a <= c->nsizes; a++) {
        if (!c->nn_has[a])
            continue;
        char label[48];
        arg_label(c, a, label, sizeof(label));
        for (int k = 0; k < 2; k++)
            for (int m = 0; m < NMODES; m++) {
                char fig[BENCH_NAME_MAX];
                snprintf(fig, sizeof(fig), "%d:%d, %s, %s", 2 << k, 2 << k, label, mode_name[m]);
                const figure *x = &c->n_n[a][k][m];
                bench_row *r = bench_report_add(c->rep, group, fig, "op/s", BENCH_RATE, x->value);
                if (r)
                    r->samples = x->samples;
                if (c->ring_rate > 0)
                    bench_row_limit(r, RING_LIMIT, c->ring_rate);
            }
    }
    char spin_suffix[16];
    snprintf(spin_suffix, sizeof(spin_suffix), ", %s", mode_name[SPIN]);
    for (size_t i = first; i < c->rep->n; i++) {
        const char *f = c->rep->rows[i].figure;
        size_t len = strlen(f), sl = strlen(spin_suffix);
        /* Ray has no prefetch depth to match "slots 64" with */
        if (len > sl && strcmp(f + len - sl, spin_suffix) == 0 && !strstr(f, "slots"))
            bench_row_vs_ray(&c->rep->rows[i], VS_RAY_CALLS);
    }
    snprintf(group, sizeof(group),
             "idle pool of 2 workers: CPU seconds over %.0f s, from %d ms after its last task",
             c->idle_s, IDLE_SETTLE / 1000000);
    for (int m = 0; m < NMODES; m++) {
        char fig[BENCH_NAME_MAX];
        snprintf(fig, sizeof(fig), "idle, %s: the 2 workers", mode_name[m]);
        /* utime + stime come in clock ticks (10 ms here), as coarse as the
         * target itself: the target goes on the exact figure where there is one */
        bench_row *r =
            bench_report_add(c->rep, group, fig, "s", BENCH_AMOUNT, c->idle_workers[m].value);
        if (c->has_schedstat) {
            snprintf(fig, sizeof(fig), "idle, %s: the 2 workers, schedstat", mode_name[m]);
            r = bench_report_add(c->rep, group, fig, "s", BENCH_AMOUNT, c->idle_exact[m].value);
        }
        double limit = TARGET_IDLE_CPU_S * c->idle_s / 5.0;
        char tgt[BENCH_NAME_MAX];
        snprintf(tgt, sizeof(tgt), "<= %g s", limit);
        bench_row_target(r, BENCH_ON_VALUE, BENCH_LE, limit, tgt);
        snprintf(fig, sizeof(fig), "idle, %s: the driver, asleep", mode_name[m]);
        bench_report_add(c->rep, group, fig, "s", BENCH_AMOUNT, c->idle_driver[m].value);
    }
}

/* ---- The section ---------------------------------------------------------------- */

static const uint64_t default_sizes[] = {64, MiB};

static int measure_all(ctx *c) {
    int err = bench_handoff_limits(c->opts, c->rep, LIMITS_GROUP, 0, c->ncpu >= 2 ? c->cpu_b : -1,
                                   c->ncpu < 2, c->samples, SAMPLES_MAX, &c->spin_rtt_us,
                                   &c->futex_rtt_us);
    if (!err)
        err = measure_ring(c);
    for (int m = 0; !err && m < NMODES; m++)
        err = measure_args(c, m);
    for (int m = 0; !err && m < NMODES; m++) {
        bench_progress(c->opts, "actors", "1:1, slots 64, %s", mode_name[m]);
        err = measure_rate(c, c->rt[m], "noop-slots64", 1, &c->deep[m]);
    }
    for (uint32_t k = 0; !err && k < 2; k++)
        for (int m = 0; !err && m < NMODES; m++) {
            bench_progress(c->opts, "actors", "1:%u, %s", 2u << k, mode_name[m]);
            err = measure_rate(c, c->rt[m], "noop", 2u << k, &c->one_n[k][m]);
        }
    /* n:n without an argument, then with each (--quick: the largest only) */
    for (size_t a = 0; !err && a <= c->nsizes; a++) {
        if (a && c->opts->quick && a != c->nsizes)
            continue;
        for (uint32_t k = 0; !err && k < 2; k++)
            for (int m = 0; !err && m < NMODES; m++)
                err = measure_n_n(c, m, 2u << k, a, &c->n_n[a][k][m]);
        c->nn_has[a] = !err;
    }
    for (int m = 0; !err && m < NMODES; m++)
        err = measure_idle(c, m);
    return err;
}

/* Puts every argument into the section's store. */
static int put_args(ctx *c) {
    for (size_t i = 0; i < c->nsizes; i++) {
        int err = put_arg(c, c->store, i, &c->args[i]);
        if (err)
            return err;
    }
    return 0;
}

static int setup(ctx *c) {
    int err = bench_cpus(&c->orig_cpus, &c->ncpu, &c->cpu_a, &c->cpu_b);
    if (err) {
        snprintf(c->errbuf, 256, "sched_getaffinity: %s", strerror(-err));
        return err;
    }

    /* before the runtimes start, so that their zygotes and workers inherit it */
    cli_catch_stop_signals(false);

    c->samples = malloc(SAMPLES_MAX * sizeof(uint64_t));
    void *p = mmap(NULL, sizeof(struct shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                   -1, 0);
    c->sh = p == MAP_FAILED ? NULL : p;
    if (!c->samples || !c->sh) {
        snprintf(c->errbuf, 256, "out of memory for samples and the shared block");
        return -ENOMEM;
    }

    /* the store: the arguments, page-rounded, and room to spare */
    uint64_t capacity = 4 * MiB;
    for (size_t i = 0; i < c->nsizes; i++)
        capacity += (c->sizes[i] + 8191) / 4096 * 4096;
    reel_store_options so = {.capacity = capacity, .max_objects = 1024};
    snprintf(c->store_name, sizeof(c->store_name), "reel-bench-actors-%ld", (long)getpid());
    err = reel_store_create(c->store_name, &so, &c->store);
    if (err == -EEXIST) { /* left behind by a dead run with our pid */
        reel_store_destroy(c->store_name);
        err = reel_store_create(c->store_name, &so, &c->store);
    }
    if (err)
        return fail(c, err, "reel_store_create(%s, %" PRIu64 " bytes)", c->store_name, capacity);
    if ((err = put_args(c)))
        return err;

    for (int m = 0; m < NMODES; m++) {
        reel_runtime_options ro = {.store = c->store_name,
                                   .actors = stages,
                                   .n_actors = sizeof(stages) / sizeof(stages[0]),
                                   .flags = m == SLEEP ? REEL_RUNTIME_NO_SPIN : 0};
        if ((err = reel_runtime_start(&ro, &c->rt[m])))
            return fail(c, err, "reel_runtime_start(%s)", mode_name[m]);
    }
    /* only now: the zygotes keep every CPU */
    if (c->ncpu >= 2) {
        if ((err = bench_pin_cpu(c->cpu_a))) {
            snprintf(c->errbuf, 256, "sched_setaffinity(CPU %d): %s", c->cpu_a, strerror(-err));
            return err;
        }
        c->pinned = 1;
    }

    char cap[32], list[160] = "";
    bench_format_size(capacity, cap, sizeof(cap));
    for (size_t i = 0; i < c->nsizes; i++) {
        char sz[32];
        bench_format_size(c->sizes[i], sz, sizeof(sz));
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? ", " : "", sz);
    }
    bench_report_note(c->rep,
                      "store %s: %s; arguments (%s) put once, each the one input of every task "
                      "that names it",
                      reel_store_path(c->store), cap, list);
    if (c->pinned)
        bench_report_note(c->rep,
                          "%d CPUs: the driver pinned to CPU %d after reel_runtime_start; workers "
                          "and n:n drivers not pinned (the runtime does not pin)",
                          c->ncpu, c->cpu_a);
    else
        bench_report_note(c->rep, "1 CPU: drivers, workers and the ping-pong share it");
    bench_report_note(c->rep,
                      "spin: workers and driver spin 50 us (default) before they sleep; sleep: "
                      "REEL_RUNTIME_NO_SPIN");
    bench_report_note(c->rep,
                      "stage \"noop\": no output, 2 tasks prefetched per worker (default); "
                      "\"slots 64\": 64; pipelined: up to %u tasks outstanding",
                      WINDOW);
    bench_report_note(c->rep, "1:n and n:n: n = 2 and 4 on %d CPUs, so more processes than CPUs",
                      c->ncpu);
    bench_report_note(c->rep, "rate rows: ratios compare the value; latency rows (us): value "
                              "is the mean, ratios compare the p50");
    double load[3];
    if (getloadavg(load, 3) == 3)
        bench_report_note(c->rep, "load average %.2f %.2f %.2f when the section started", load[0],
                          load[1], load[2]);
    return 0;
}

static void teardown(ctx *c) {
    for (int m = 0; m < NMODES; m++)
        reel_runtime_stop(c->rt[m]);
    if (c->store) {
        reel_store_close(c->store);
        reel_store_destroy(c->store_name);
    }
    if (c->sh)
        munmap(c->sh, sizeof(*c->sh));
    free(c->samples);
    if (c->pinned)
        sched_setaffinity(0, sizeof(c->orig_cpus), &c->orig_cpus);
    cli_release_stop_signals();
    bench_progress_done(c->opts);
}

int bench_actors_run(const bench_options *opts, bench_report *report) {
    ctx *c = calloc(1, sizeof(*c));
    if (!c) {
        bench_report_error(report, "out of memory");
        return -ENOMEM;
    }
    c->opts = opts;
    c->rep = report;
    c->errbuf = report->error;
    c->sizes = opts->nsizes ? opts->sizes : default_sizes;
    c->nsizes = opts->nsizes ? opts->nsizes : sizeof(default_sizes) / sizeof(default_sizes[0]);
    c->idle_s = opts->quick ? 1.0 : 5.0;
    uint64_t t0 = bench_now_ns();
    int err = setup(c);
    if (!err) {
        bench_report_note(report,
                          "timer: a CLOCK_MONOTONIC pair costs %.3f us (p50); round trips "
                          "include it",
                          bench_timer_p50_us(c->samples, 100000));
        err = measure_all(c);
    }
    teardown(c);
    if (!err) {
        add_rows(c);
        bench_report_note(report, "whole section took %.1f s", (double)(bench_now_ns() - t0) / 1e9);
    }
    free(c);
    return err;
}
