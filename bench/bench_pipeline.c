/*
 * bench_pipeline.c - `reel-bench pipeline`: what the pipeline executor
 * (reel/pipeline.h) costs per item, and how close its autoscaler comes to the
 * best worker allocation of an imbalanced pipeline.
 *
 * Two pipelines, both fed 64-byte items put once into a store this section
 * creates (/dev/shm/reel-bench-pipeline-PID, removed at the end, on failure
 * too). Every stage passes its input on with reel_actor_forward(): no stage
 * copies or creates an object, so the items that come out of the last stage
 * are the inputs themselves, and the same inputs serve every run.
 *
 *  1. A line of 4 no-op stages, one worker each (0.4 CPUs, 64 tasks
 *     prefetched), with 1 and with 16 items per task: items per second end
 *     to end, beside one pool of the same no-op actor driven directly with
 *     reel_pool_submit/reel_pool_collect (one hop: the per-hop floor). Both
 *     run in turn, ROUNDS times; the best of each is reported.
 *
 *  2. Three stages whose tasks cost 1, 4 and 2 ms (UNIT_NS): every static
 *     allocation (a, b, c) of at most MAX_WORKERS workers of 0.25 CPUs,
 *     the even one among them, and the same stages autoscaled (min_workers 1;
 *     the executor starts them by spreading the CPUs over them), whose
 *     figures after every round (on_status) make the convergence trace.
 *
 * How a task spends its cost is --burn's choice (enum bench_burn). The
 * default, the workload, burns CPU: it computes until its thread's
 * CPU clock has advanced by the cost, so a task costs that much CPU however
 * often it is preempted, and the up to 7 workers share this machine's CPUs:
 * every allocation is also bounded by CPUs / (1 + 4 + 2 ms) items/s (the
 * model says so). The other modes take the cost in wall-clock time, on
 * CLOCK_MONOTONIC, so that a worker's rate is fixed, as it would be with a
 * CPU of its own, whatever else runs: asleep until the cost has passed
 * (timer slack 1 ns), spinning and yielding the CPU at every look, or plainly
 * spinning. Sleeping stages show the balancing a machine with a CPU per
 * worker would need; spinning workers outnumber the CPUs, so a spinner whose
 * cost has passed waits for its next time slice (see bench/README.md).
 *
 * Items per second are counted at the last stage (on_output), from the
 * result that completes the first tenth of a run's items to the one that
 * completes the ninth, so that neither the runtime's start (forking the
 * zygote and the workers, their first tasks) nor the drain at the end is
 * part of the figure; the no-op runs' whole wall time is in the notes. Every run is checked: each
 * input comes out exactly once (a sum over the IDs), marked forwarded, and is still in the store
 * afterwards.
 *
 * reel_pipeline_run() forks its runtime's zygote from the calling thread, so
 * this process must have no other thread: it has none, and the executor's
 * own threads end with each run.
 *
 * A signal (SIGINT, SIGTERM, SIGHUP) sets a flag, once: the source stops
 * (next_input returns -EINTR), the executor stops its workers, and the store
 * is removed. A second signal kills as usual (SA_RESETHAND).
 */
#include "bench.h"
#include "cli.h"

#include <reel/actor.h>
#include <reel/pipeline.h>

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#define TARGET_NOOP_ITEMS_PER_S   500000.0 /* the 4-stage no-op pipeline, batch 1 */
#define TARGET_AUTOSCALED         0.9      /* autoscaled steady >= 0.9x the best static */
#define TARGET_CONVERGE_INTERVALS 3.0      /* within 10% of the best static by then */
#define CONVERGED                 0.9      /* "within 10%": >= 0.9x the best static */

#define ITEM_SIZE     64u        /* bytes of each input item */
#define NOOP_STAGES   4u         /* the no-op pipeline's length */
#define NOOP_CPUS     0.4        /* CPUs per no-op worker: 4 fit 2 x 0.95 */
#define NOOP_SLOTS    64u        /* tasks prefetched per no-op worker */
#define BIG_BATCH     16u        /* the second no-op row's items per task */
#define ROUNDS        3u         /* turns of pool, pipeline batch 1, batch 16 */
#define WINDOW        1024u      /* tasks outstanding when driving the pool */
#define WAIT_MS       10000      /* longest a submit, collect or pool stop waits */
#define UNIT_NS       1000000ull /* the imbalanced stages' cost unit: 1 ms */
#define IMB_STAGES    3u         /* the imbalanced pipeline's length */
#define IMB_CPUS      0.25       /* CPUs per imbalanced worker: 7 fit 2 x 0.95 */
#define MAX_WORKERS   7u         /* a + b + c of a static allocation, at most */
#define MAX_STATIC    64u        /* allocations (a, b, c >= 1, a + b + c <= 7): 35 */
#define LOG_INTERVAL  3600.0     /* seconds between status lines: none in a run */
#define AUTO_HEADROOM 2.0 /* inputs for the autoscaled run: its time x the model's best x this */

#define MiB (1024ull * 1024)

/* ---- The stages ------------------------------------------------------------ */

/* Passes every input on as the output of the same index: no copy, no new
 * object. */
static int forward_all(reel_actor_out *out, size_t n) {
    for (size_t i = 0; i < n; i++) {
        int rc = reel_actor_forward(out, (uint32_t)i);
        if (rc)
            return rc;
    }
    return 0;
}

static int noop(reel_actor_ctx *actx, const reel_view *in, size_t n, reel_actor_out *out) {
    (void)actx;
    (void)in;
    return forward_all(out, n);
}

/* enum bench_burn; set before any runtime starts, so that every zygote and
 * worker inherits it */
static int burn_mode;

static const char *const burn_name[] = {"of CPU time, computing", "of wall clock, asleep",
                                        "of wall clock, spinning, yielding",
                                        "of wall clock, spinning"};

/* The CPUs the stages' processes may run on (bench_cpus), for the model of
 * CPU-burning stages: set by setup(). */
static int burn_ncpu = 1;

static int burn_setup(reel_actor_ctx *actx) {
    (void)actx;
    /* a sleeper wakes within microseconds of its cost, not 50 us after it */
    if (burn_mode == BENCH_BURN_SLEEP && prctl(PR_SET_TIMERSLACK, 1ul, 0ul, 0ul, 0ul) != 0)
        return -errno;
    return 0;
}

static uint64_t thread_cpu_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Spends the task's cost (the def's arg, in nanoseconds) of CPU or wall-clock time
 * as burn_mode says (see the top of the file), then forwards. */
static int burn(reel_actor_ctx *actx, const reel_view *in, size_t n, reel_actor_out *out) {
    (void)in;
    uint64_t cost = *(const uint64_t *)reel_actor_arg(actx);
    if (burn_mode == BENCH_BURN_CPU) {
        /* real work, checked against the thread's own CPU clock, so that a
         * task costs its CPU time however often it is preempted */
        volatile uint64_t x = 0;
        uint64_t end = thread_cpu_ns() + cost;
        while (thread_cpu_ns() < end)
            for (int k = 0; k < 256; k++)
                x = x * 6364136223846793005ull + 1442695040888963407ull;
        return forward_all(out, n);
    }
    uint64_t end = bench_now_ns() + cost;
    if (burn_mode == BENCH_BURN_SLEEP) {
        struct timespec ts = {(time_t)(end / 1000000000u), (long)(end % 1000000000u)};
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
            ;
    } else {
        while (bench_now_ns() < end)
            if (burn_mode == BENCH_BURN_YIELD)
                sched_yield();
    }
    return forward_all(out, n);
}

static const reel_actor_def noop_stages[NOOP_STAGES] = {
    {.name = "noop-1", .process = noop},
    {.name = "noop-2", .process = noop},
    {.name = "noop-3", .process = noop},
    {.name = "noop-4", .process = noop},
};

/* The baseline's one pool: the same actor, as the pipeline's stages run it. */
static const reel_actor_def pool_stage = {
    .name = "noop-pool", .process = noop, .cpus = NOOP_CPUS, .slots = NOOP_SLOTS};
static const reel_actor_def *const pool_stages[] = {&pool_stage};

static const uint64_t imb_cost_ns[IMB_STAGES] = {1 * UNIT_NS, 4 * UNIT_NS, 2 * UNIT_NS};
static const reel_actor_def imb_stages[IMB_STAGES] = {
    {.name = "cost-1", .setup = burn_setup, .process = burn, .arg = (void *)&imb_cost_ns[0]},
    {.name = "cost-4", .setup = burn_setup, .process = burn, .arg = (void *)&imb_cost_ns[1]},
    {.name = "cost-2", .setup = burn_setup, .process = burn, .arg = (void *)&imb_cost_ns[2]},
};

/* ---- State --------------------------------------------------------------- */

/* One on_status call. */
typedef struct trace_pt {
    uint64_t t_ns;      /* since the run was called */
    uint64_t items_out; /* the last stage's */
    uint32_t workers[IMB_STAGES];
    int finished;
} trace_pt;

typedef struct ctx ctx;

/* One reel_pipeline_run: its source, what came out, and the trace. */
typedef struct run {
    ctx *c;
    const reel_id *inputs;
    size_t n_inputs, next;
    uint64_t run_ns; /* the source ends this long after its first item (0: at n_inputs) */
    int ended;
    uint64_t t_start, t_first_in, t_src_end, t_last_out;
    uint64_t t_mark[2], mark_items[2]; /* when a tenth, nine tenths of the items were out */
    uint64_t items_out, in_sum, out_sum, not_forwarded;
    trace_pt *trace;
    size_t ntrace, trace_cap;
    int trace_oom;
} run;

/* One allocation of the imbalanced pipeline, and what it ran at. */
typedef struct alloc {
    uint32_t w[IMB_STAGES];
    double rate;  /* measured items/s */
    double model; /* items/s the costs allow */
} alloc;

struct ctx {
    const bench_options *opts;
    bench_report *rep;
    char store_name[64];
    reel_store *store;
    reel_id *ids;
    size_t n_ids;
    uint64_t n_noop, n_static; /* items per no-op run, per static run */
    double interval_s, auto_s; /* autoscale interval; the autoscaled run's feeding time */
    reel_executor_config cfg;
    /* the no-op pipeline: best of the rounds */
    double pool_rate[2], pipe_rate[2]; /* [0]: 1 item per task, [1]: BIG_BATCH */
    double pipe_wall[2];               /* items / whole run time, of the best run */
    /* the imbalanced pipeline */
    alloc statics[MAX_STATIC];
    size_t n_statics, best, even;
    run autos;
    double auto_steady, auto_converge_s;
    double auto_intervals;     /* INFINITY: never within 10% */
    size_t auto_from, auto_to; /* the steady window, trace points */
};

/* ---- Failures, signals ------------------------------------------------------ */

/* A reel call failed: err, and the library's detail sentence if it left one. */
static int fail(ctx *c, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(ctx *c, int err, const char *fmt, ...) {
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    bench_describe_failure(msg, sizeof msg, err, 1, fmt, ap);
    va_end(ap);
    bench_report_error(c->rep, "%s", msg);
    return err;
}

static int check_interrupted(ctx *c) {
    if (!cli_stop_signal)
        return 0;
    bench_report_error(c->rep, "interrupted by a signal");
    return -EINTR;
}

/* The first 8 bytes of an ID: summed over what goes in and what comes out,
 * a missing or doubled item shows. */
static uint64_t id_word(const reel_id *id) {
    uint64_t w;
    memcpy(&w, id->bytes, sizeof(w));
    return w;
}

/* Items/s the costs allow an allocation: each worker at most one task at a
 * time; CPU-burning stages also share the CPUs, an item costing the sum of
 * the stages' costs. */
static double model_rate(const uint32_t w[IMB_STAGES]) {
    double r = INFINITY, item_ns = 0;
    for (uint32_t s = 0; s < IMB_STAGES; s++) {
        double x = (double)w[s] * 1e9 / (double)imb_cost_ns[s];
        r = x < r ? x : r;
        item_ns += (double)imb_cost_ns[s];
    }
    if (burn_mode == BENCH_BURN_CPU) {
        double cpus = (double)burn_ncpu * 1e9 / item_ns;
        r = cpus < r ? cpus : r;
    }
    return r;
}

static void alloc_text(const uint32_t w[IMB_STAGES], char *buf, size_t cap) {
    snprintf(buf, cap, "%" PRIu32 ",%" PRIu32 ",%" PRIu32, w[0], w[1], w[2]);
}

/* ---- One run of a pipeline ---------------------------------------------------- */

static int next_input(void *arg, reel_id *id) {
    run *r = arg;
    if (cli_stop_signal)
        return -EINTR;
    if (r->ended)
        return 0;
    if (r->next == 0)
        r->t_first_in = bench_now_ns();
    if (r->next >= r->n_inputs ||
        (r->run_ns && r->next && bench_now_ns() - r->t_first_in >= r->run_ns)) {
        r->ended = 1;
        r->t_src_end = bench_now_ns();
        return 0;
    }
    *id = r->inputs[r->next++];
    r->in_sum += id_word(id);
    return 1;
}

static void on_output(void *arg, const reel_task_result *res) {
    run *r = arg;
    uint64_t now = bench_now_ns();
    r->t_last_out = now;
    r->items_out += res->n_outputs;
    /* the rate counts from the first tenth of the items to the ninth: every
     * worker is up by then, and none has run out of work yet */
    for (int m = 0; m < 2; m++) {
        if (!r->t_mark[m] && r->items_out * 10 >= r->n_inputs * (m ? 9 : 1)) {
            r->t_mark[m] = now;
            r->mark_items[m] = r->items_out;
        }
    }
    for (uint32_t k = 0; k < res->n_outputs; k++) {
        r->out_sum += id_word(&res->outputs[k]);
        if (!((res->forwarded >> k) & 1u)) {
            /* a new object, so the caller's: not what a forwarding stage makes */
            r->not_forwarded++;
            reel_obj_delete(r->c->store, &res->outputs[k]);
        }
    }
}

static void on_status(void *arg, const reel_pipeline_status *st) {
    run *r = arg;
    if (r->ntrace == r->trace_cap) {
        size_t cap = r->trace_cap ? r->trace_cap * 2 : 64;
        trace_pt *t = realloc(r->trace, cap * sizeof(*t));
        if (!t) {
            r->trace_oom = 1;
            return;
        }
        r->trace = t;
        r->trace_cap = cap;
    }
    trace_pt *p = &r->trace[r->ntrace++];
    memset(p, 0, sizeof(*p));
    p->t_ns = bench_now_ns() - r->t_start;
    p->items_out = st->n_stages ? st->stage[st->n_stages - 1].items_out : 0;
    for (uint32_t s = 0; s < IMB_STAGES && s < st->n_stages; s++)
        p->workers[s] = st->stage[s].workers;
    p->finished = st->finished;
}

/* Builds a pipeline of the n stages defs with opts (one per stage), runs it
 * over r's source and checks what came out. */
static int run_pipeline(ctx *c, const char *name, const reel_actor_def *defs,
                        const reel_stage_options *opts, uint32_t n, uint32_t flags, run *r) {
    reel_pipeline *p = NULL;
    int err = reel_pipeline_new(name, &p);
    if (err)
        return fail(c, err, "reel_pipeline_new(%s)", name);
    for (uint32_t s = 0; s < n && !err; s++)
        if ((err = reel_pipeline_add(p, &defs[s], &opts[s])))
            fail(c, err, "reel_pipeline_add(%s, %s)", name, defs[s].name);
    if (err) {
        reel_pipeline_free(p);
        return err;
    }
    reel_run_options ro = {.store = c->store_name,
                           .config = &c->cfg,
                           .next_input = next_input,
                           .on_output = on_output,
                           .on_status = on_status,
                           .arg = r,
                           .flags = (c->opts->logging_interval_set ? 0 : REEL_RUN_QUIET) | flags};
    reel_run_result res;
    memset(&res, 0, sizeof(res));
    r->c = c;
    r->t_start = bench_now_ns();
    err = reel_pipeline_run(p, &ro, &res);
    reel_pipeline_free(p);
    if (err) {
        if (!check_interrupted(c))
            bench_report_error(c->rep, "reel_pipeline_run(%s): %s: %.160s", name,
                               reel_strerror(err), res.error[0] ? res.error : reel_last_error());
    } else if (res.failed) {
        bench_report_error(c->rep, "%s: %" PRIu64 " tasks failed (the first: %.160s)", name,
                           res.failed, res.n_failures ? res.failures[0].error : "?");
        err = -EIO;
    } else if (r->items_out != r->next || r->out_sum != r->in_sum || res.outputs != r->items_out) {
        bench_report_error(c->rep,
                           "%s: %zu items in, %" PRIu64 " out (run result: %" PRIu64 " in, %" PRIu64
                           " out)%s",
                           name, r->next, r->items_out, res.inputs, res.outputs,
                           r->items_out == r->next ? ", but not the same ones" : "");
        err = -EPROTO;
    } else if (r->not_forwarded) {
        bench_report_error(c->rep, "%s: %" PRIu64 " outputs not marked forwarded", name,
                           r->not_forwarded);
        err = -EPROTO;
    } else if (r->trace_oom) {
        bench_report_error(c->rep, "%s: out of memory for the trace", name);
        err = -ENOMEM;
    } else if (r->items_out < 1) {
        bench_report_error(c->rep, "%s: no item came out", name);
        err = -EPROTO;
    }
    reel_run_result_free(&res);
    if (err)
        return err;
    /* the inputs stay the caller's: none may be gone */
    for (size_t i = 0; i < r->next; i++) {
        int present = 0;
        if ((err = reel_obj_contains(c->store, &r->inputs[i], &present)))
            return fail(c, err, "reel_obj_contains");
        if (!present) {
            bench_report_error(c->rep, "%s: input %zu is gone from the store after the run", name,
                               i);
            return -EPROTO;
        }
    }
    return 0;
}

/* Items per second at the last stage, from the first tenth of the items to
 * the ninth. */
static double run_rate(const run *r) {
    uint64_t span = r->t_mark[1] - r->t_mark[0];
    if (!r->t_mark[0] || !r->t_mark[1] || span == 0)
        return 0;
    return (double)(r->mark_items[1] - r->mark_items[0]) * 1e9 / (double)span;
}

static void run_free(run *r) {
    free(r->trace);
    r->trace = NULL;
    r->ntrace = r->trace_cap = 0;
}

/* ---- 1. The no-op pipeline and its one-hop floor ------------------------------------ */

static int pool_collect(ctx *c, reel_pool *pool, uint64_t *items, uint64_t *sum) {
    reel_task_result r;
    int err = reel_pool_collect(pool, &r, WAIT_MS);
    if (err)
        return fail(c, err, "reel_pool_collect");
    if (r.status) {
        bench_report_error(c->rep, "a no-op task failed after %" PRIu32 " attempts: %.180s",
                           r.attempts, r.error);
        return r.status;
    }
    if (r.n_outputs != r.n_inputs) {
        bench_report_error(c->rep, "a no-op task of %" PRIu32 " inputs gave %" PRIu32 " outputs",
                           r.n_inputs, r.n_outputs);
        return -EPROTO;
    }
    for (uint32_t k = 0; k < r.n_outputs; k++) {
        if (!((r.forwarded >> k) & 1u) || !reel_id_equal(&r.outputs[k], &r.inputs[k])) {
            bench_report_error(c->rep,
                               "a no-op task's output %" PRIu32 " is not its input, forwarded", k);
            return -EPROTO;
        }
        *sum += id_word(&r.outputs[k]);
    }
    *items += r.n_outputs;
    return 0;
}

/* Items 0..n through the pool, batch per task, up to WINDOW tasks
 * outstanding; *rate is items/s from the first submit to the last collect. */
static int pool_pass(ctx *c, reel_pool *pool, uint64_t n, uint32_t batch, double *rate) {
    uint64_t t0 = bench_now_ns(), sent = 0, done = 0, in_sum = 0, out_sum = 0;
    uint64_t tasks_out = 0;
    int err = 0;
    while (!err && done < n) {
        while (!err && sent < n && tasks_out < WINDOW) {
            uint32_t k = n - sent < batch ? (uint32_t)(n - sent) : batch;
            if ((err = reel_pool_submit(pool, &c->ids[sent], k, NULL, WAIT_MS, NULL))) {
                fail(c, err, "reel_pool_submit");
                break;
            }
            for (uint32_t j = 0; j < k; j++)
                in_sum += id_word(&c->ids[sent + j]);
            sent += k;
            tasks_out++;
        }
        if (err || (err = pool_collect(c, pool, &done, &out_sum)))
            break;
        tasks_out--;
        if ((done & 1023) < batch)
            err = check_interrupted(c);
    }
    uint64_t el = bench_now_ns() - t0;
    if (err)
        return err;
    if (out_sum != in_sum) {
        bench_report_error(c->rep, "the pool gave back other items than it was given");
        return -EPROTO;
    }
    *rate = (double)n * 1e9 / (double)el;
    return 0;
}

/* The floor: one runtime, one pool of one no-op worker (64 slots), warmed up,
 * then n items with 1 and with BIG_BATCH items per task. */
static int measure_pool(ctx *c, double rate[2]) {
    reel_runtime_options ro = {.store = c->store_name, .actors = pool_stages, .n_actors = 1};
    reel_runtime *rt = NULL;
    reel_pool *pool = NULL;
    int err = reel_runtime_start(&ro, &rt);
    if (err)
        return fail(c, err, "reel_runtime_start");
    if ((err = reel_pool_start(rt, pool_stage.name, 1, &pool)))
        fail(c, err, "reel_pool_start(%s)", pool_stage.name);
    double warm;
    if (!err)
        err = pool_pass(c, pool, c->n_noop / 10 + 1, 1, &warm);
    if (!err)
        err = pool_pass(c, pool, c->n_noop, 1, &rate[0]);
    if (!err)
        err = pool_pass(c, pool, c->n_noop, BIG_BATCH, &rate[1]);
    if (pool)
        reel_pool_stop(pool, WAIT_MS);
    reel_runtime_stop(rt);
    return err;
}

static int measure_noop_pipeline(ctx *c, uint32_t batch, double *rate, double *wall_rate) {
    reel_stage_options so[NOOP_STAGES];
    for (uint32_t s = 0; s < NOOP_STAGES; s++)
        so[s] = (reel_stage_options){
            .cpus = NOOP_CPUS, .workers = 1, .slots = NOOP_SLOTS, .batch_size = batch};
    run r = {.inputs = c->ids, .n_inputs = c->n_noop};
    int err =
        run_pipeline(c, "bench-noop", noop_stages, so, NOOP_STAGES, REEL_RUN_NO_AUTOSCALE, &r);
    if (!err) {
        *rate = run_rate(&r);
        *wall_rate = (double)r.items_out * 1e9 / (double)(r.t_last_out - r.t_start);
    }
    run_free(&r);
    return err;
}

static int measure_noop(ctx *c) {
    int err = 0;
    for (unsigned k = 0; !err && k < ROUNDS; k++) {
        double pool[2] = {0, 0}, pipe = 0, wall = 0;
        bench_progress(c->opts, "pipeline", "no-op: one pool, round %u of %u", k + 1, ROUNDS);
        if ((err = measure_pool(c, pool)))
            break;
        for (int b = 0; b < 2; b++)
            c->pool_rate[b] = pool[b] > c->pool_rate[b] ? pool[b] : c->pool_rate[b];
        for (int b = 0; !err && b < 2; b++) {
            bench_progress(c->opts, "pipeline", "no-op: 4 stages, batch %u, round %u of %u",
                           b ? BIG_BATCH : 1u, k + 1, ROUNDS);
            if ((err = measure_noop_pipeline(c, b ? BIG_BATCH : 1, &pipe, &wall)))
                break;
            if (pipe > c->pipe_rate[b]) {
                c->pipe_rate[b] = pipe;
                c->pipe_wall[b] = wall;
            }
        }
    }
    return err;
}

/* ---- 2. The imbalanced pipeline ------------------------------------------------------- */

static int measure_static(ctx *c, alloc *a) {
    reel_stage_options so[IMB_STAGES];
    for (uint32_t s = 0; s < IMB_STAGES; s++)
        so[s] = (reel_stage_options){.cpus = IMB_CPUS, .workers = a->w[s], .batch_size = 1};
    run r = {.inputs = c->ids, .n_inputs = c->n_static};
    int err =
        run_pipeline(c, "bench-imbalanced", imb_stages, so, IMB_STAGES, REEL_RUN_NO_AUTOSCALE, &r);
    if (!err)
        a->rate = run_rate(&r);
    run_free(&r);
    return err;
}

static int measure_statics(ctx *c) {
    c->n_statics = 0;
    for (uint32_t a = 1; a <= MAX_WORKERS; a++)
        for (uint32_t b = 1; a + b <= MAX_WORKERS; b++)
            for (uint32_t d = 1; a + b + d <= MAX_WORKERS; d++) {
                alloc *x = &c->statics[c->n_statics++];
                *x = (alloc){.w = {a, b, d}};
                x->model = model_rate(x->w);
                if (a == 2 && b == 2 && d == 2)
                    c->even = c->n_statics - 1;
            }
    int err = 0;
    for (size_t i = 0; !err && i < c->n_statics; i++) {
        char w[32];
        alloc_text(c->statics[i].w, w, sizeof(w));
        bench_progress(c->opts, "pipeline", "imbalanced: static %s (%zu of %zu)", w, i + 1,
                       c->n_statics);
        if ((err = measure_static(c, &c->statics[i])))
            break;
        if (c->statics[i].rate > c->statics[c->best].rate)
            c->best = i;
    }
    return err;
}

/* Throughput of trace interval k (ending at point k; interval 0 starts with
 * the run). */
static double interval_rate(const run *r, size_t k) {
    uint64_t t0 = k ? r->trace[k - 1].t_ns : 0, n0 = k ? r->trace[k - 1].items_out : 0;
    const trace_pt *p = &r->trace[k];
    return p->t_ns > t0 ? (double)(p->items_out - n0) * 1e9 / (double)(p->t_ns - t0) : 0;
}

/* Trace points that close an interval fed to the end: an autoscale round,
 * before the source ended. */
static size_t fed_points(const run *r) {
    size_t n = 0;
    uint64_t end = r->t_src_end ? r->t_src_end - r->t_start : UINT64_MAX;
    while (n < r->ntrace && !r->trace[n].finished && r->trace[n].t_ns <= end)
        n++;
    return n;
}

static int measure_autoscaled(ctx *c) {
    bench_progress(c->opts, "pipeline", "imbalanced: autoscaled, %.0f s, interval %g s", c->auto_s,
                   c->interval_s);
    reel_stage_options so[IMB_STAGES];
    for (uint32_t s = 0; s < IMB_STAGES; s++)
        so[s] = (reel_stage_options){.cpus = IMB_CPUS, .min_workers = 1, .batch_size = 1};
    run *r = &c->autos;
    *r = (run){.inputs = c->ids, .n_inputs = c->n_ids, .run_ns = (uint64_t)(c->auto_s * 1e9)};
    reel_executor_config saved = c->cfg;
    c->cfg.autoscale_interval_s = c->interval_s;
    int err = run_pipeline(c, "bench-autoscaled", imb_stages, so, IMB_STAGES, 0, r);
    c->cfg = saved;
    if (err)
        return err;

    double best = c->statics[c->best].rate;
    size_t n = fed_points(r);
    c->auto_intervals = INFINITY;
    c->auto_converge_s = INFINITY;
    size_t conv = n;
    for (size_t k = 0; k < n; k++) {
        if (interval_rate(r, k) >= CONVERGED * best) {
            conv = k;
            c->auto_intervals = (double)(k + 1);
            c->auto_converge_s = (double)r->trace[k].t_ns / 1e9;
            break;
        }
    }
    /* steady: from the first interval within 10% (else the second half) to
     * the last one fed to its end */
    size_t from = conv < n ? conv : n / 2;
    c->auto_from = from;
    c->auto_to = n;
    c->auto_steady = 0;
    if (n > from) {
        uint64_t t0 = from ? r->trace[from - 1].t_ns : 0;
        uint64_t i0 = from ? r->trace[from - 1].items_out : 0;
        const trace_pt *e = &r->trace[n - 1];
        if (e->t_ns > t0)
            c->auto_steady = (double)(e->items_out - i0) * 1e9 / (double)(e->t_ns - t0);
    }
    if (n == 0) {
        bench_report_error(c->rep,
                           "autoscaled run: no autoscale round within the %.0f s fed (interval "
                           "%g s, %zu on_status calls)",
                           c->auto_s, c->interval_s, r->ntrace);
        return -EPROTO;
    }
    return 0;
}

/* ---- Rows ------------------------------------------------------------------- */

static void add_rows(ctx *c) {
    /* longer than a row's fields, which cut what does not fit */
    char group[160], fig[128], ref[128];

    snprintf(group, sizeof(group), "no-op stages, %u B items: 1 worker each, %u slots, %.1f CPUs",
             ITEM_SIZE, NOOP_SLOTS, NOOP_CPUS);
    for (int b = 0; b < 2; b++) {
        snprintf(fig, sizeof(fig), "one pool, 1 hop, batch %u", b ? BIG_BATCH : 1u);
        bench_report_add(c->rep, group, fig, "items/s", BENCH_RATE, c->pool_rate[b]);
    }
    for (int b = 0; b < 2; b++) {
        snprintf(fig, sizeof(fig), "pipeline, %u stages, batch %u", NOOP_STAGES,
                 b ? BIG_BATCH : 1u);
        bench_row *r = bench_report_add(c->rep, group, fig, "items/s", BENCH_RATE, c->pipe_rate[b]);
        snprintf(ref, sizeof(ref), "one pool, batch %u", b ? BIG_BATCH : 1u);
        bench_row_baseline(r, ref, c->pool_rate[b]);
        if (b == 0)
            bench_row_target(r, BENCH_ON_VALUE, BENCH_GE, TARGET_NOOP_ITEMS_PER_S,
                             ">= 500k items/s");
    }

    const alloc *best = &c->statics[c->best], *even = &c->statics[c->even];
    char bw[32], ew[32];
    alloc_text(best->w, bw, sizeof(bw));
    alloc_text(even->w, ew, sizeof(ew));
    snprintf(group, sizeof(group), "imbalanced 1:4:2 ms, %.2f CPUs per worker, at most %u workers",
             IMB_CPUS, MAX_WORKERS);
    snprintf(fig, sizeof(fig), "best static (%s)", bw);
    bench_row *r = bench_report_add(c->rep, group, fig, "items/s", BENCH_RATE, best->rate);
    bench_row_limit(r, "model (costs)", best->model);
    snprintf(fig, sizeof(fig), "even (%s)", ew);
    r = bench_report_add(c->rep, group, fig, "items/s", BENCH_RATE, even->rate);
    snprintf(ref, sizeof(ref), "best static %s", bw);
    bench_row_limit(r, ref, best->rate);
    r = bench_report_add(c->rep, group, "autoscaled, steady", "items/s", BENCH_RATE,
                         c->auto_steady);
    snprintf(fig, sizeof(fig), "even %s", ew);
    bench_row_baseline(r, fig, even->rate);
    bench_row_limit(r, ref, best->rate);
    bench_row_target(r, BENCH_ON_LIMIT, BENCH_GE, TARGET_AUTOSCALED, ">= 0.9x best static");
    r = bench_report_add(c->rep, group, "autoscaled: intervals to within 10%", "intervals",
                         BENCH_AMOUNT, c->auto_intervals);
    bench_row_target(r, BENCH_ON_VALUE, BENCH_LE, TARGET_CONVERGE_INTERVALS, "<= 3 intervals");
    bench_report_add(c->rep, group, "autoscaled: seconds to within 10%", "s", BENCH_AMOUNT,
                     c->auto_converge_s);

    snprintf(group, sizeof(group),
             "imbalanced, every static allocation (workers a,b,c), %" PRIu64 " items each",
             c->n_static);
    for (size_t i = 0; i < c->n_statics; i++) {
        char w[32];
        alloc_text(c->statics[i].w, w, sizeof(w));
        snprintf(fig, sizeof(fig), "static %s", w);
        r = bench_report_add(c->rep, group, fig, "items/s", BENCH_RATE, c->statics[i].rate);
        bench_row_limit(r, "model (costs)", c->statics[i].model);
    }

    /* the convergence trace: one row per autoscale round, with the workers
     * that ran the interval before it and those it left */
    const run *a = &c->autos;
    snprintf(group, sizeof(group),
             "autoscaler trace, interval %g s: t, workers during -> after the round",
             c->interval_s);
    for (size_t k = 0; k < a->ntrace; k++) {
        const trace_pt *p = &a->trace[k];
        char now[32], before[32] = "start";
        alloc_text(p->workers, now, sizeof(now));
        if (k)
            alloc_text(a->trace[k - 1].workers, before, sizeof(before));
        snprintf(fig, sizeof(fig), "t %5.1f s: %s -> %s%s", (double)p->t_ns / 1e9, before, now,
                 p->finished       ? " (end)"
                 : k >= c->auto_to ? " (drain)"
                                   : "");
        r = bench_report_add(c->rep, group, fig, "items/s", BENCH_RATE, interval_rate(a, k));
        bench_row_limit(r, "best static", best->rate);
    }

    /* the same trace in numbers, for --plot: workers after each round (held
     * until the next), the items/s of the interval that ended there */
    char wcol[IMB_STAGES][48], title[BENCH_NAME_MAX];
    for (uint32_t s = 0; s < IMB_STAGES; s++)
        snprintf(wcol[s], sizeof(wcol[s]), "workers: %s", imb_stages[s].name);
    snprintf(fig, sizeof(fig), "best static (%s)", bw);
    const char *cols[] = {"t", wcol[0], wcol[1], wcol[2], "autoscaled, interval", fig};
    const char *units[] = {"s", "workers", "workers", "workers", "items/s", "items/s"};
    const int steps[] = {0, 1, 1, 1, 0, 0};
    snprintf(title, sizeof(title), "autoscaler trace, interval %g s, 1:4:2 ms stages",
             c->interval_s);
    bench_series *ser =
        bench_report_series(c->rep, "pipeline-autoscaler", title, 6, cols, units, steps);
    for (size_t k = 0; ser && k < a->ntrace; k++) {
        const trace_pt *p = &a->trace[k];
        double v[] = {(double)p->t_ns / 1e9, p->workers[0],       p->workers[1],
                      p->workers[2],         interval_rate(a, k), best->rate};
        if (bench_series_add(ser, v) != 0)
            ser = NULL;
    }
    if (!ser)
        bench_report_note(c->rep, "out of memory for the trace's plot series: no plot of it");
}

/* ---- The section ---------------------------------------------------------------- */

/* The inputs: n objects of ITEM_SIZE bytes, object i reel_id_derive(parent, i),
 * its index in its first 8 bytes. */
static int put_inputs(ctx *c) {
    static const uint8_t seed[16] = "reel-bench pipe.";
    reel_id parent;
    memcpy(parent.bytes, seed, sizeof(seed));
    for (size_t i = 0; i < c->n_ids; i++) {
        uint8_t data[ITEM_SIZE];
        memset(data, 0x5a, sizeof(data));
        uint64_t idx = i;
        memcpy(data, &idx, sizeof(idx));
        reel_id_derive(&parent, i, &c->ids[i]);
        int err = reel_obj_put(c->store, &c->ids[i], data, sizeof(data), NULL, 0, 0, 0);
        if (err)
            return fail(c, err, "reel_obj_put(input %zu of %zu)", i, c->n_ids);
    }
    return 0;
}

static int setup(ctx *c) {
    /* before any runtime starts, so that zygotes and workers inherit it */
    cli_catch_stop_signals(true);

    /* the executor flags and --config (bench.c); no status lines unless asked */
    c->cfg = c->opts->executor;
    if (!c->opts->logging_interval_set)
        c->cfg.logging_interval = LOG_INTERVAL;

    /* the CPUs, before any model rate is asked for: CPU-burning stages share them */
    int ncpu = 1, a = -1, b = -1;
    cpu_set_t set;
    bench_cpus(&set, &ncpu, &a, &b);
    burn_ncpu = ncpu;

    /* enough inputs for the longest run: the no-op runs, or the autoscaled
     * run fed for auto_s at up to AUTO_HEADROOM x the best the costs allow */
    uint32_t best_w[IMB_STAGES] = {1, 4, 2};
    uint64_t n_auto = (uint64_t)(c->auto_s * model_rate(best_w) * AUTO_HEADROOM) + 1000;
    c->n_ids = c->n_noop > n_auto ? c->n_noop : n_auto;
    c->n_ids = c->n_ids > c->n_static ? c->n_ids : c->n_static;
    c->ids = malloc(c->n_ids * sizeof(*c->ids));
    if (!c->ids) {
        bench_report_error(c->rep, "out of memory for %zu IDs", c->n_ids);
        return -ENOMEM;
    }
    /* 64 B of data, its header and alignment: 256 B per object is ample */
    uint64_t capacity = (uint64_t)c->n_ids * 256 + 16 * MiB;
    reel_store_options so = {.capacity = capacity,
                             .max_objects = (uint32_t)(c->n_ids + 65536),
                             .flags = REEL_STORE_NO_SPILL};
    snprintf(c->store_name, sizeof(c->store_name), "reel-bench-pipeline-%ld", (long)getpid());
    int err = reel_store_create(c->store_name, &so, &c->store);
    if (err == -EEXIST) { /* left behind by a dead run with our pid */
        reel_store_destroy(c->store_name);
        err = reel_store_create(c->store_name, &so, &c->store);
    }
    if (err)
        return fail(c, err, "reel_store_create(%s, %" PRIu64 " bytes)", c->store_name, capacity);
    if ((err = put_inputs(c)))
        return err;

    char cap[32];
    bench_format_size(capacity, cap, sizeof(cap));
    bench_report_note(c->rep,
                      "store %s: %s; %zu inputs of %u B put once, reused by every run "
                      "(every stage forwards its input)",
                      reel_store_path(c->store), cap, c->n_ids, ITEM_SIZE);
    bench_report_note(c->rep,
                      "%d CPUs x cpu_allocation_percentage %.2f; nothing pinned by reel-bench "
                      "(the executor places its workers)",
                      ncpu, c->cfg.cpu_allocation_percentage);
    bench_report_note(c->rep,
                      "items/s: at the last stage, from a run's first tenth of items to its "
                      "ninth; no-op rows: "
                      "%" PRIu64 " items, best of %u rounds (pool, batch 1, batch %u in turn)",
                      c->n_noop, ROUNDS, BIG_BATCH);
    bench_report_note(c->rep,
                      "imbalanced: tasks take 1, 4, 2 x %.0f ms %s (--burn); "
                      "autoscaled: fed %.0f s, min_workers 1, interval %g s",
                      (double)UNIT_NS / 1e6, burn_name[burn_mode], c->auto_s, c->interval_s);
    double load[3];
    if (getloadavg(load, 3) == 3)
        bench_report_note(c->rep, "load average %.2f %.2f %.2f when the section started", load[0],
                          load[1], load[2]);
    return 0;
}

static void teardown(ctx *c) {
    if (c->store) {
        reel_store_close(c->store);
        reel_store_destroy(c->store_name);
    }
    free(c->ids);
    run_free(&c->autos);
    cli_release_stop_signals();
    bench_progress_done(c->opts);
}

int bench_pipeline_run(const bench_options *opts, bench_report *report) {
    ctx *c = calloc(1, sizeof(*c));
    if (!c) {
        bench_report_error(report, "out of memory");
        return -ENOMEM;
    }
    c->opts = opts;
    c->rep = report;
    burn_mode = opts->burn;
    c->n_noop = opts->iterations ? opts->iterations : opts->quick ? 50000 : 200000;
    c->n_static = opts->quick ? 100 : 600;
    c->interval_s = opts->interval_s > 0 ? opts->interval_s : 1.0;
    c->auto_s = (opts->quick ? 10.0 : 25.0) * c->interval_s;
    uint64_t t0 = bench_now_ns();
    int err = setup(c);
    if (!err)
        err = measure_noop(c);
    if (!err)
        err = measure_statics(c);
    if (!err)
        err = measure_autoscaled(c);
    if (!err) {
        add_rows(c);
        bench_report_note(report,
                          "no-op, whole run (runtime start included): batch 1 %.0f items/s, "
                          "batch %u %.0f items/s",
                          c->pipe_wall[0], BIG_BATCH, c->pipe_wall[1]);
        bench_report_note(report, "whole section took %.1f s", (double)(bench_now_ns() - t0) / 1e9);
    }
    teardown(c);
    free(c);
    return err;
}
