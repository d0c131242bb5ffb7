/* The actor runtime: pools of worker processes fed through shared-memory
 * queues, supervision, retries, and that nothing - task, process, byte - is
 * lost or left behind. */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <reel/actor.h>

#include "helpers.h"

/* ---- stages --------------------------------------------------------------- */

/* Output i = input i with every byte plus one. */
static int plus_one(reel_actor_ctx *ctx, const reel_view *in, size_t n, reel_actor_out *out) {
    (void)ctx;
    for (size_t i = 0; i < n; i++) {
        uint8_t *buf;
        int rc = reel_actor_output(out, in[i].size, NULL, 0, (void **)&buf);
        if (rc)
            return rc;
        const uint8_t *src = in[i].data;
        for (uint64_t k = 0; k < in[i].size; k++)
            buf[k] = (uint8_t)(src[k] + 1);
    }
    return 0;
}

static int noop(reel_actor_ctx *ctx, const reel_view *in, size_t n, reel_actor_out *out) {
    (void)ctx, (void)in, (void)n, (void)out;
    return 0;
}

/* Fails its first two attempts of every task. */
static int flaky(reel_actor_ctx *ctx, const reel_view *in, size_t n, reel_actor_out *out) {
    if (reel_actor_attempt(ctx) < 3) {
        reel_actor_set_error(ctx, "flaky on attempt %u", reel_actor_attempt(ctx));
        return -EAGAIN;
    }
    return plus_one(ctx, in, n, out);
}

static int always_fails(reel_actor_ctx *ctx, const reel_view *in, size_t n, reel_actor_out *out) {
    (void)in, (void)n;
    void *buf;
    reel_actor_output(out, 100, NULL, 0, &buf); /* must be discarded */
    reel_actor_set_error(ctx, "input rejected");
    return -EINVAL;
}

static int crashes(reel_actor_ctx *ctx, const reel_view *in, size_t n, reel_actor_out *out) {
    (void)ctx, (void)in, (void)n, (void)out;
    abort();
}

static int setup_fails(reel_actor_ctx *ctx) {
    reel_actor_set_error(ctx, "no licence for this codec");
    return -EACCES;
}

/* Hangs on the first attempt of each task. */
static int hangs_once(reel_actor_ctx *ctx, const reel_view *in, size_t n, reel_actor_out *out) {
    if (reel_actor_attempt(ctx) == 1)
        pause();
    return plus_one(ctx, in, n, out);
}

/* Passes its inputs on in reverse order, then makes one object of its own. */
static int forwards(reel_actor_ctx *ctx, const reel_view *in, size_t n, reel_actor_out *out) {
    (void)ctx, (void)in;
    if (reel_actor_forward(out, (uint32_t)n) != -EINVAL) /* no such input */
        return -EPROTO;
    for (size_t i = n; i-- > 0;) {
        int rc = reel_actor_forward(out, (uint32_t)i);
        if (rc)
            return rc;
    }
    if (n && reel_actor_forward(out, 0) != -EEXIST) /* one object, one item */
        return -EPROTO;
    void *buf;
    int rc = reel_actor_output(out, 3, NULL, 0, &buf);
    if (rc == 0)
        memcpy(buf, "new", 3);
    return rc;
}

/* For input i: an artifact holding i, then input i plus one; then every
 * input passed on, in order. 3 outputs an input. */
static int spread(reel_actor_ctx *ctx, const reel_view *in, size_t n, reel_actor_out *out) {
    for (size_t i = 0; i < n; i++) {
        reel_id art;
        uint8_t *buf;
        int rc = reel_actor_artifact(out, 1, NULL, 0, &art, (void **)&buf);
        if (rc)
            return rc;
        buf[0] = (uint8_t)i;
        if ((rc = plus_one(ctx, &in[i], 1, out)) != 0)
            return rc;
    }
    for (size_t i = 0; i < n; i++) {
        int rc = reel_actor_forward(out, (uint32_t)i);
        if (rc)
            return rc;
    }
    return 0;
}

/* Forwards its input, then fails: nothing it passed on may be touched. */
static int forwards_then_fails(reel_actor_ctx *ctx, const reel_view *in, size_t n,
                               reel_actor_out *out) {
    (void)in;
    for (uint32_t i = 0; i < n; i++)
        reel_actor_forward(out, i);
    reel_actor_set_error(ctx, "gave up after forwarding");
    return -EIO;
}

/* Worker slot 0 sets up at once, the others take 1.2 s. */
static int setup_slow_after_first(reel_actor_ctx *ctx) {
    if (reel_actor_worker_index(ctx) > 0)
        th_sleep_ms(1200);
    return 0;
}

static int takes_300ms(reel_actor_ctx *ctx, const reel_view *in, size_t n, reel_actor_out *out) {
    (void)ctx, (void)in, (void)n, (void)out;
    th_sleep_ms(300);
    return 0;
}

/* What the stages below tell the test: a page shared with every worker,
 * mapped before the runtime forks its zygote. */
typedef struct shared_page {
    _Atomic int hung_pid; /* the worker hung in hangs_on_marker, once it is */
    _Atomic int release;  /* hangs_on_marker returns 2 s after this is set */
    _Atomic int returned; /* hangs_on_marker returned */
    _Atomic int sealed;   /* seals_then_dies sealed its output, then died */
    _Atomic int runs[64]; /* slow_first: how often each task ran */
    reel_id sealed_id;    /* the output it sealed */
} shared_page;

static shared_page *shared;

static int is_marker(const reel_view *in, size_t n, const char *marker) {
    return n == 1 && in[0].size == strlen(marker) && memcmp(in[0].data, marker, in[0].size) == 0;
}

/* Hangs on an input that reads "HANG" until the test sets release, then
 * returns 2 s later: long enough that nobody waits for it by accident. */
static int hangs_on_marker(reel_actor_ctx *ctx, const reel_view *in, size_t n,
                           reel_actor_out *out) {
    if (is_marker(in, n, "HANG")) {
        atomic_store(&shared->hung_pid, (int)getpid());
        while (!atomic_load(&shared->release))
            th_sleep_ms(1);
        th_sleep_ms(2000);
        atomic_store(&shared->returned, 1);
        return 0;
    }
    return plus_one(ctx, in, n, out);
}

/* Dies by the signal its input names ("SEGV", "KILL"). */
static int dies_on_marker(reel_actor_ctx *ctx, const reel_view *in, size_t n, reel_actor_out *out) {
    if (is_marker(in, n, "SEGV")) {
        signal(SIGSEGV, SIG_DFL); /* a sanitizer's handler would exit instead */
        raise(SIGSEGV);
    }
    if (is_marker(in, n, "KILL"))
        raise(SIGKILL);
    return plus_one(ctx, in, n, out);
}

/* Its first attempt seals its output itself, then dies before it reports. */
static int seals_then_dies(reel_actor_ctx *ctx, const reel_view *in, size_t n,
                           reel_actor_out *out) {
    int rc = plus_one(ctx, in, n, out);
    if (rc || reel_actor_attempt(ctx) > 1)
        return rc;
    reel_id id;
    reel_actor_output_id("seals_then_dies", reel_actor_task_id(ctx), 0, &id);
    rc = reel_obj_seal(reel_actor_store(ctx), &id);
    if (rc)
        return rc;
    shared->sealed_id = id;
    atomic_store(&shared->sealed, 1);
    raise(SIGKILL);
    return 0;
}

/* Task i (its input's first byte) takes 400 ms when i % 8 == 0, 1 ms
 * otherwise, and counts its runs. */
static int slow_first(reel_actor_ctx *ctx, const reel_view *in, size_t n, reel_actor_out *out) {
    uint8_t i = n ? *(const uint8_t *)in[0].data : 0;
    atomic_fetch_add(&shared->runs[i % 64], 1);
    th_sleep_ms(i % 8 == 0 ? 400 : 1);
    return plus_one(ctx, in, n, out);
}

static const reel_actor_def def_plus_one = {.name = "plus_one", .process = plus_one};
static const reel_actor_def def_forwards = {.name = "forwards", .process = forwards};
static const reel_actor_def def_spread = {.name = "spread", .process = spread};
static const reel_actor_def def_forwards_fails = {
    .name = "forwards_fails", .process = forwards_then_fails, .max_retries = REEL_ACTOR_NONE};
static const reel_actor_def def_noop = {.name = "noop", .process = noop};
static const reel_actor_def def_plus_one_b = {.name = "plus_one_b", .process = plus_one};
static const reel_actor_def def_flaky = {.name = "flaky", .process = flaky};
static const reel_actor_def def_fails = {
    .name = "fails", .process = always_fails, .max_retries = 2};
static const reel_actor_def def_crashes = {
    .name = "crashes", .process = crashes, .max_restarts = 3, .max_retries = 100};
static const reel_actor_def def_bad_setup = {
    .name = "bad_setup", .process = noop, .setup = setup_fails};
static const reel_actor_def def_hangs = {
    .name = "hangs", .process = hangs_once, .task_timeout_ms = 300};
static const reel_actor_def def_late_setup = {
    .name = "late_setup", .process = takes_300ms, .setup = setup_slow_after_first};

static const reel_actor_def def_hangs_on_marker = {.name = "hangs_on_marker",
                                                   .process = hangs_on_marker};
static const reel_actor_def def_dies = {
    .name = "dies", .process = dies_on_marker, .max_retries = REEL_ACTOR_NONE};
static const reel_actor_def def_slow_first = {.name = "slow_first", .process = slow_first};
static const reel_actor_def def_seals_then_dies = {.name = "seals_then_dies",
                                                   .process = seals_then_dies};

static const reel_actor_def *const all_defs[] = {&def_plus_one,   &def_noop,
                                                 &def_flaky,      &def_fails,
                                                 &def_crashes,    &def_bad_setup,
                                                 &def_hangs,      &def_plus_one_b,
                                                 &def_forwards,   &def_forwards_fails,
                                                 &def_late_setup, &def_hangs_on_marker,
                                                 &def_dies,       &def_seals_then_dies,
                                                 &def_slow_first, &def_spread};

/* ---- fixture ---------------------------------------------------------------- */

static const char *store_path;
static reel_store *store;
static reel_runtime *rt;

static void setup_runtime(void) {
    th_init();
    shared = mmap(NULL, sizeof *shared, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(shared, MAP_FAILED);
    store = th_store_new(64 << 20, 32768, &store_path);
    reel_runtime_options o = {.store = store_path,
                              .actors = all_defs,
                              .n_actors = sizeof all_defs / sizeof all_defs[0],
                              .spin_ns = 20000};
    TH_OK(reel_runtime_start(&o, &rt));
}

static void count_descendants(int *zygotes, int *workers);

/* Ends every test from inside it (Criterion does not count a failure in a
 * .fini): stops the runtime, then no process may be left behind and no store
 * memory referenced or half-written. */
static void expect_clean_shutdown(void) {
    TH_OK(reel_runtime_stop(rt));
    rt = NULL;
    int zygotes, workers;
    count_descendants(&zygotes, &workers);
    cr_assert_eq(zygotes + workers, 0, "%d zygotes and %d workers outlived the test", zygotes,
                 workers);
    reel_store_stats st = th_stats(store);
    cr_assert_eq(st.objects_referenced, 0, "%u objects still referenced", st.objects_referenced);
    cr_assert_eq(st.objects_unsealed, 0, "%u objects left unsealed", st.objects_unsealed);
}

static void teardown_runtime(void) {
    reel_runtime_stop(rt);
    reel_store_close(store);
    munmap(shared, sizeof *shared);
    th_fini();
}

#define ACTOR_TEST(name)                                                                           \
    static void name##_body(void);                                                                 \
    Test(actors, name) {                                                                           \
        name##_body();                                                                             \
        expect_clean_shutdown();                                                                   \
    }                                                                                              \
    static void name##_body(void)

TestSuite(actors, .init = setup_runtime, .fini = teardown_runtime, .timeout = 60);

/* Counts our children (the zygote) and their children (workers), zombies included. */
static void count_descendants(int *zygotes, int *workers) {
    *zygotes = *workers = 0;
    pid_t zyg[8];
    DIR *d = opendir("/proc");
    struct dirent *e;
    while ((e = readdir(d))) {
        pid_t pid = (pid_t)atoi(e->d_name), ppid;
        char state;
        if (pid > 0 && th_proc_stat(pid, &ppid, &state, NULL) && ppid == getpid() && *zygotes < 8)
            zyg[(*zygotes)++] = pid;
    }
    rewinddir(d);
    while ((e = readdir(d))) {
        pid_t pid = (pid_t)atoi(e->d_name), ppid;
        char state;
        if (pid > 0 && th_proc_stat(pid, &ppid, &state, NULL))
            for (int i = 0; i < *zygotes; i++)
                *workers += ppid == zyg[i];
    }
    closedir(d);
}

static reel_id put_input(uint64_t i, size_t size) {
    reel_id id = th_id_n(0xa11ce, i);
    uint8_t buf[256];
    cr_assert(size <= sizeof buf);
    th_fill(buf, size, i);
    TH_OK(reel_obj_put(store, &id, buf, size, NULL, 0, 0, 0));
    return id;
}

static void expect_plus_one(const reel_task_result *r, uint64_t seed, size_t size) {
    cr_assert_eq(r->status, 0, "task failed: %s", r->error);
    cr_assert_eq(r->n_outputs, 1);
    uint8_t want[256];
    th_fill(want, size, seed);
    reel_view v;
    TH_OK(reel_obj_get(store, &r->outputs[0], 1, 0, &v));
    cr_assert_eq(v.size, size);
    const uint8_t *got = v.data;
    for (size_t k = 0; k < size; k++)
        cr_assert_eq(got[k], (uint8_t)(want[k] + 1), "output byte %zu of task %llu", k,
                     (unsigned long long)seed);
    TH_OK(reel_obj_release(store, &r->outputs[0]));
}

/* The ID of output index of a task of stage, derived here as
 * reel__output_parent() does (the stage's content ID mixed into the task ID)
 * rather than through reel_actor_output_id(), so that what a retry must
 * rewrite is pinned down outside the code under test. */
static reel_id expected_output_id(const char *stage, const reel_id *task_id, uint32_t index) {
    reel_id stage_id, mixed, parent, out;
    reel_id_from_content(stage, strlen(stage), &stage_id);
    for (int i = 0; i < 16; i++)
        mixed.bytes[i] = task_id->bytes[i] ^ stage_id.bytes[i];
    reel_id_derive(&mixed, UINT64_MAX, &parent);
    reel_id_derive(&parent, index, &out);
    return out;
}

static reel_id put_text(uint64_t tag, const char *text) {
    reel_id id = th_id_n(tag, 0);
    TH_OK(reel_obj_put(store, &id, text, strlen(text), NULL, 0, 0, 0));
    return id;
}

/* Waits, with a generous deadline, until *flag is set. */
static int wait_flag(_Atomic int *flag) {
    for (int i = 0; i < 20000 && !atomic_load(flag); i++)
        th_sleep_ms(1);
    return atomic_load(flag);
}

static void expect_store_empty(void) {
    reel_store_stats st = th_stats(store);
    cr_assert_eq(st.objects, 0, "%u objects left in the store", st.objects);
    cr_assert_eq(st.used, 0, "%llu bytes left in the store", (unsigned long long)st.used);
}

/* ---- tests ------------------------------------------------------------------- */

ACTOR_TEST(round_trip_and_outputs) {
    reel_pool *pool;
    TH_OK(reel_pool_start(rt, "plus_one", 2, &pool));
    for (uint64_t i = 0; i < 100; i++) {
        reel_id in = put_input(i, 64);
        TH_OK(reel_pool_submit(pool, &in, 1, NULL, -1, NULL));
    }
    int seen[100] = {0};
    reel_task_result r;
    for (int k = 0; k < 100; k++) {
        TH_OK(reel_pool_collect(pool, &r, 10000));
        uint64_t i = UINT64_MAX;
        for (uint64_t j = 0; j < 100; j++) {
            reel_id id = th_id_n(0xa11ce, j);
            if (reel_id_equal(&id, &r.inputs[0]))
                i = j;
        }
        cr_assert_neq(i, UINT64_MAX, "a result for an input never submitted");
        cr_assert_eq(seen[i]++, 0, "task %llu came back twice", (unsigned long long)i);
        cr_assert_eq(r.attempts, 1);
        /* The output's ID derives from the task ID: a retry would write the same. */
        reel_id want = expected_output_id("plus_one", &r.task_id, 0);
        cr_assert(reel_id_equal(&want, &r.outputs[0]));
        expect_plus_one(&r, i, 64);
        TH_OK(reel_obj_delete(store, &r.outputs[0]));
        TH_OK(reel_obj_delete(store, &r.inputs[0]));
    }
    TH_RC(reel_pool_collect(pool, &r, 0), -ENODATA);
    reel_pool_stats st;
    TH_OK(reel_pool_stats_get(pool, &st));
    cr_assert_eq(st.completed, 100);
    cr_assert_eq(st.workers, 2);
    TH_OK(reel_pool_stop(pool, -1));
    expect_store_empty();
}

ACTOR_TEST(pools_start_resize_and_stop) {
    reel_pool *pool;
    TH_OK(reel_pool_start(rt, "noop", 1, &pool));
    size_t n;
    TH_OK(reel_pool_workers(pool, NULL, 0, &n));
    cr_assert_eq(n, 1);
    TH_OK(reel_pool_resize(pool, 4));
    pid_t pids[8];
    TH_OK(reel_pool_workers(pool, pids, 8, &n));
    cr_assert_eq(n, 4);
    for (int i = 0; i < 200; i++)
        TH_OK(reel_pool_submit(pool, NULL, 0, NULL, -1, NULL));
    TH_OK(reel_pool_resize(pool, 2)); /* removed workers finish what they hold */
    reel_task_result r;
    for (int i = 0; i < 200; i++)
        TH_OK(reel_pool_collect(pool, &r, 10000));
    /* The removed workers exit by themselves. */
    for (int tries = 0; tries < 500; tries++) {
        reel_pool_stats st;
        TH_OK(reel_pool_stats_get(pool, &st));
        if (st.workers == 2)
            break;
        th_sleep_ms(10);
    }
    TH_OK(reel_pool_workers(pool, NULL, 0, &n));
    cr_assert_eq(n, 2);
    TH_OK(reel_pool_stop(pool, -1));
    int zygotes, workers;
    count_descendants(&zygotes, &workers);
    cr_assert_eq(zygotes, 1, "the zygote, and nothing else, is our child");
    cr_assert_eq(workers, 0, "%d workers (or zombies) outlived their pool", workers);
    for (int i = 0; i < 4; i++) {
        pid_t ppid;
        char state;
        cr_assert(!th_proc_stat(pids[i], &ppid, &state, NULL),
                  "worker %d outlived its pool (state %c)", (int)pids[i], state);
    }
}

/* Shrinking removes a ready worker, even a busy one, before one in setup:
 * that one has cost its setup and not produced anything yet. */
ACTOR_TEST(shrinking_keeps_a_worker_in_setup) {
    reel_pool *pool;
    TH_OK(reel_pool_start(rt, "late_setup", 1, &pool));
    reel_pool_stats st = {0};
    for (int tries = 0; tries < 500 && st.workers_ready < 1; tries++) {
        TH_OK(reel_pool_stats_get(pool, &st));
        th_sleep_ms(10);
    }
    cr_assert_eq(st.workers_ready, 1);
    pid_t first;
    size_t n;
    TH_OK(reel_pool_workers(pool, &first, 1, &n));
    TH_OK(reel_pool_submit(pool, NULL, 0, NULL, -1, NULL)); /* the ready one holds a task */
    TH_OK(reel_pool_resize(pool, 2));                       /* the new one sets up for 1.2 s */
    TH_OK(reel_pool_resize(pool, 1));
    TH_OK(reel_pool_stats_get(pool, &st));
    cr_assert_eq(st.workers_ready, 1, "the ready worker is still finishing its task");
    reel_task_result r;
    TH_OK(reel_pool_collect(pool, &r, 10000));
    cr_assert_eq(r.status, 0, "%s", r.error);
    for (int tries = 0; tries < 500; tries++) { /* the removed one exits by itself */
        TH_OK(reel_pool_stats_get(pool, &st));
        if (st.workers == 1)
            break;
        th_sleep_ms(10);
    }
    pid_t left;
    TH_OK(reel_pool_workers(pool, &left, 1, &n));
    cr_assert_eq(n, 1);
    cr_assert_neq(left, first, "the worker in setup was removed, the ready one kept");
    cr_assert_eq(st.workers_ready, 0, "the one left is the one still in setup");
    TH_OK(reel_pool_stop(pool, -1));
}

ACTOR_TEST(worker_killed_mid_task_loses_and_duplicates_nothing) {
    enum { TASKS = 10000, SIZE = 32 };
    reel_pool *pool;
    TH_OK(reel_pool_start(rt, "plus_one", 2, &pool));
    static uint8_t seen[TASKS];
    memset(seen, 0, sizeof seen);
    uint64_t submitted = 0, collected = 0;
    int kills = 0;
    reel_task_result r;
    while (collected < TASKS) {
        while (submitted < TASKS && submitted - collected < 3000) {
            reel_id in = put_input(submitted, SIZE);
            reel_id task = th_id_n(0x7a5c, submitted);
            TH_OK(reel_pool_submit(pool, &in, 1, &task, -1, NULL));
            submitted++;
        }
        TH_OK(reel_pool_collect(pool, &r, 20000));
        uint64_t i;
        memcpy(&i, r.inputs[0].bytes, 0); /* the seed is the index we derived it from */
        for (i = 0; i < TASKS; i++) {
            reel_id want = th_id_n(0x7a5c, i);
            if (reel_id_equal(&want, &r.task_id))
                break;
        }
        cr_assert_lt(i, TASKS, "unknown task came back");
        cr_assert_eq(seen[i]++, 0, "task %llu came back twice", (unsigned long long)i);
        expect_plus_one(&r, i, SIZE);
        TH_OK(reel_obj_delete(store, &r.outputs[0]));
        TH_OK(reel_obj_delete(store, &r.inputs[0]));
        collected++;
        if (collected % 2500 == 1000 && kills < 3) {
            pid_t pids[4];
            size_t n;
            TH_OK(reel_pool_workers(pool, pids, 4, &n));
            cr_assert_gt(n, 0);
            kill(pids[kills % n], SIGKILL);
            kills++;
        }
    }
    reel_pool_stats st;
    TH_OK(reel_pool_stats_get(pool, &st));
    cr_assert_eq(st.completed, TASKS);
    cr_assert_eq(st.failed, 0);
    cr_assert_geq(st.restarts, 3, "three kills, %u restarts", st.restarts);
    TH_OK(reel_pool_stop(pool, -1));
    expect_store_empty();
}

ACTOR_TEST(failing_setup_is_reported_with_the_stage_name) {
    reel_pool *pool;
    TH_OK(reel_pool_start(rt, "bad_setup", 2, &pool));
    TH_OK(reel_pool_submit(pool, NULL, 0, NULL, -1, NULL));
    reel_task_result r;
    TH_RC(reel_pool_collect(pool, &r, 10000), -EPIPE);
    cr_assert(strstr(reel_last_error(), "bad_setup"), "error: %s", reel_last_error());
    cr_assert(strstr(reel_last_error(), "no licence"), "error: %s", reel_last_error());
    TH_RC(reel_pool_submit(pool, NULL, 0, NULL, 0, NULL), -EPIPE);
    TH_OK(reel_pool_stop(pool, 0));
    expect_store_empty();
}

ACTOR_TEST(process_error_is_retried_until_it_succeeds) {
    reel_pool *pool;
    TH_OK(reel_pool_start(rt, "flaky", 1, &pool));
    reel_id in = put_input(7, 16);
    TH_OK(reel_pool_submit(pool, &in, 1, NULL, -1, NULL));
    reel_task_result r;
    TH_OK(reel_pool_collect(pool, &r, 10000));
    cr_assert_eq(r.attempts, 3);
    expect_plus_one(&r, 7, 16);
    TH_OK(reel_obj_delete(store, &r.outputs[0]));
    TH_OK(reel_obj_delete(store, &in));
    TH_OK(reel_pool_stop(pool, -1));
    expect_store_empty();
}

ACTOR_TEST(permanent_failure_reports_stage_inputs_and_error) {
    reel_pool *pool;
    TH_OK(reel_pool_start(rt, "fails", 1, &pool));
    reel_id in = put_input(3, 16);
    TH_OK(reel_pool_submit(pool, &in, 1, NULL, -1, NULL));
    reel_task_result r;
    TH_OK(reel_pool_collect(pool, &r, 10000));
    cr_assert_eq(r.status, -EINVAL);
    cr_assert_eq(r.attempts, 3, "max_retries 2: three attempts, got %u", r.attempts);
    cr_assert_eq(r.n_outputs, 0);
    cr_assert_eq(r.n_inputs, 1);
    cr_assert(reel_id_equal(&r.inputs[0], &in));
    cr_assert(strstr(r.error, "fails") && strstr(r.error, "input rejected"), "error: %s", r.error);
    TH_OK(reel_obj_delete(store, &in));
    TH_OK(reel_pool_stop(pool, -1));
    expect_store_empty(); /* the discarded outputs are gone */
}

ACTOR_TEST(maximum_restarts_exhausted) {
    reel_pool *pool;
    TH_OK(reel_pool_start(rt, "crashes", 1, &pool));
    TH_OK(reel_pool_submit(pool, NULL, 0, NULL, -1, NULL));
    reel_task_result r;
    TH_RC(reel_pool_collect(pool, &r, 20000), -EPIPE);
    cr_assert(strstr(reel_last_error(), "crashes") && strstr(reel_last_error(), "restarts"),
              "error: %s", reel_last_error());
    reel_pool_stats st;
    TH_OK(reel_pool_stats_get(pool, &st));
    cr_assert_eq(st.restarts, 3);
    TH_OK(reel_pool_stop(pool, 0));
}

ACTOR_TEST(hung_task_kills_its_worker_and_is_retried) {
    reel_pool *pool;
    TH_OK(reel_pool_start(rt, "hangs", 1, &pool));
    reel_id in = put_input(9, 16);
    TH_OK(reel_pool_submit(pool, &in, 1, NULL, -1, NULL));
    reel_task_result r;
    TH_OK(reel_pool_collect(pool, &r, 20000));
    cr_assert_eq(r.attempts, 2);
    expect_plus_one(&r, 9, 16);
    reel_pool_stats st;
    TH_OK(reel_pool_stats_get(pool, &st));
    cr_assert_eq(st.restarts, 1);
    TH_OK(reel_obj_delete(store, &r.outputs[0]));
    TH_OK(reel_obj_delete(store, &in));
    TH_OK(reel_pool_stop(pool, -1));
    expect_store_empty();
}

ACTOR_TEST(bad_arguments) {
    reel_pool *pool;
    TH_RC(reel_pool_start(rt, "no_such_stage", 1, &pool), -ENOENT);
    TH_OK(reel_pool_start(rt, "noop", 1, &pool));
    reel_id ids[REEL_TASK_MAX_INPUTS + 1];
    memset(ids, 0, sizeof ids);
    TH_RC(reel_pool_submit(pool, ids, REEL_TASK_MAX_INPUTS + 1, NULL, 0, NULL), -EINVAL);
    TH_RC(reel_pool_submit(pool, NULL, 1, NULL, 0, NULL), -EINVAL);
    TH_OK(reel_pool_stop(pool, 0));
    reel_runtime *rt2;
    const reel_actor_def unnamed = {.name = "", .process = noop};
    const reel_actor_def *const bad[] = {&unnamed};
    reel_runtime_options o = {.store = store_path, .actors = bad, .n_actors = 1};
    TH_RC(reel_runtime_start(&o, &rt2), -EINVAL);
    const reel_actor_def *const twice[] = {&def_noop, &def_noop};
    o.actors = twice;
    o.n_actors = 2;
    TH_RC(reel_runtime_start(&o, &rt2), -EINVAL);
}

ACTOR_TEST(missing_input_fails_the_task_not_the_pool) {
    reel_pool *pool;
    TH_OK(reel_pool_start(rt, "plus_one", 1, &pool));
    reel_id ghost = th_id_n(0xdead, 1);
    TH_OK(reel_pool_submit(pool, &ghost, 1, NULL, -1, NULL));
    reel_task_result r;
    TH_OK(reel_pool_collect(pool, &r, 10000));
    cr_assert_eq(r.status, REEL_ENOTFOUND, "status %d: %s", r.status, r.error);
    reel_id in = put_input(1, 16);
    TH_OK(reel_pool_submit(pool, &in, 1, NULL, -1, NULL));
    TH_OK(reel_pool_collect(pool, &r, 10000));
    expect_plus_one(&r, 1, 16);
    TH_OK(reel_obj_delete(store, &r.outputs[0]));
    TH_OK(reel_obj_delete(store, &in));
    TH_OK(reel_pool_stop(pool, -1));
    expect_store_empty();
}

ACTOR_TEST(stopping_the_runtime_leaves_no_process) {
    reel_pool *pool;
    TH_OK(reel_pool_start(rt, "noop", 3, &pool));
    for (int i = 0; i < 10; i++)
        TH_OK(reel_pool_submit(pool, NULL, 0, NULL, -1, NULL));
    /* Stop with results uncollected and the pool still running. */
    TH_OK(reel_runtime_stop(rt));
    rt = NULL;
    int zygotes, workers;
    count_descendants(&zygotes, &workers);
    cr_assert_eq(zygotes + workers, 0, "%d zygotes and %d workers left", zygotes, workers);
    expect_store_empty();
}

ACTOR_TEST(outputs_are_owned_by_the_runtime_until_it_stops) {
    reel_pool *pool;
    TH_OK(reel_pool_start(rt, "plus_one", 1, &pool));
    reel_id out[2];
    for (uint64_t i = 0; i < 2; i++) {
        reel_id in = put_input(i, 64);
        TH_OK(reel_pool_submit(pool, &in, 1, NULL, -1, NULL));
        reel_task_result r;
        TH_OK(reel_pool_collect(pool, &r, 10000));
        expect_plus_one(&r, i, 64);
        out[i] = r.outputs[0];
        TH_OK(reel_obj_delete(store, &in));
    }
    reel_obj_info info[4];
    size_t n = 0;
    TH_OK(reel_store_objects(store, info, 4, &n));
    cr_assert_eq(n, 2);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(info[i].owner_pid, getpid(), "an output not owned by the driver");
    TH_OK(reel_obj_disown(store, &out[0], 1));
    cr_assert_eq(th_stats(store).objects_owned, 1);
    /* A clean stop hands the rest to the store: both stay. */
    TH_OK(reel_runtime_stop(rt));
    rt = NULL;
    reel_store_stats st = th_stats(store);
    cr_assert_eq(st.objects, 2);
    cr_assert_eq(st.objects_owned, 0);
    for (int i = 0; i < 2; i++)
        TH_OK(reel_obj_delete(store, &out[i]));
    expect_store_empty();
}

typedef struct driver_arg {
    const char *store;
    th_chan *report;
} driver_arg;

/* A driver in its own process: starts workers, reports their pids, waits. */
static int driver_process(void *p) {
    driver_arg *a = p;
    reel_runtime *r;
    reel_runtime_options o = {.store = a->store, .actors = all_defs, .n_actors = 2};
    TH_CHILD_RC(reel_runtime_start(&o, &r), 0);
    /* One task's output, which the driver owns when it dies. */
    reel_pool *maker;
    TH_CHILD_RC(reel_pool_start(r, "plus_one", 1, &maker), 0);
    reel_id in = th_id_n(0xd1e, 0);
    TH_CHILD_RC(reel_obj_put(reel_runtime_store(r), &in, "x", 1, NULL, 0, 0, 0), 0);
    TH_CHILD_RC(reel_pool_submit(maker, &in, 1, NULL, -1, NULL), 0);
    reel_task_result res;
    TH_CHILD_RC(reel_pool_collect(maker, &res, 10000), 0);
    TH_CHILD_CHECK(res.status == 0 && res.n_outputs == 1, "the task failed: %s", res.error);
    TH_CHILD_RC(reel_pool_stop(maker, -1), 0);
    reel_pool *pool;
    TH_CHILD_RC(reel_pool_start(r, "noop", 2, &pool), 0);
    pid_t pids[2];
    size_t n;
    TH_CHILD_RC(reel_pool_workers(pool, pids, 2, &n), 0);
    TH_CHILD_CHECK(n == 2, "%zu workers", n);
    for (int i = 0; i < 2; i++)
        TH_CHILD_CHECK(write(a->report->fd[1], &pids[i], sizeof pids[i]) == sizeof pids[i], "pipe");
    pause();
    return 0;
}

ACTOR_TEST(workers_die_with_their_driver) {
    /* Orphans come to us, so that we can tell they died and reap them. */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    th_chan report;
    th_chan_open(&report);
    reel_store_stats start = th_stats(store);
    driver_arg a = {store_path, &report};
    pid_t driver = th_fork(driver_process, &a);
    pid_t pids[2];
    for (int i = 0; i < 2; i++) {
        struct pollfd pfd = {.fd = report.fd[0], .events = POLLIN};
        cr_assert_eq(poll(&pfd, 1, 10000), 1, "the driver never reported its workers");
        cr_assert_eq(read(report.fd[0], &pids[i], sizeof pids[i]), (ssize_t)sizeof pids[i]);
    }
    char seg_glob[64];
    snprintf(seg_glob, sizeof seg_glob, "reel-pool-%d-", (int)driver);
    th_kill_wait(driver, SIGKILL);
    for (int i = 0; i < 2; i++) {
        int gone = 0;
        for (int t = 0; t < 300 && !gone; t++) {
            while (waitpid(-1, NULL, WNOHANG) > 0) /* reap the orphans that came to us */
                ;
            pid_t ppid;
            char state;
            gone = !th_proc_stat(pids[i], &ppid, &state, NULL);
            if (!gone)
                th_sleep_ms(10);
        }
        cr_assert(gone, "worker %d outlived its driver", (int)pids[i]);
    }
    /* Its zygote, our orphan now, follows its workers out: reap it too, or
     * the end of the test finds it (a zombie at least) beside the fixture's. */
    int zygotes = 0, workers = 0;
    for (int t = 0; t < 300; t++) {
        while (waitpid(-1, NULL, WNOHANG) > 0)
            ;
        count_descendants(&zygotes, &workers);
        if (zygotes <= 1)
            break;
        th_sleep_ms(10);
    }
    cr_assert_leq(zygotes, 1, "the dead driver's zygote outlived it (%d zygotes)", zygotes);
    /* The dead driver's client slot and the workers' are reclaimed, and the
     * output it owned goes; its input, which nobody owned, stays. A worker
     * still attaching when the driver died may have gone first: its open
     * reclaimed the dead driver, or its death inside the store's lock made
     * the next locker rebuild the store, and the output went then. */
    reel_store_stats before = th_stats(store);
    cr_assert_eq(before.objects_owned + (before.orphans_deleted - start.orphans_deleted), 1,
                 "%u objects owned, %llu deleted with their owner", before.objects_owned,
                 (unsigned long long)(before.orphans_deleted - start.orphans_deleted));
    uint32_t reclaimed;
    TH_OK(reel_store_reclaim(store, &reclaimed));
    reel_store_stats st = th_stats(store);
    cr_assert_eq(st.clients_dead, 0);
    cr_assert_eq(st.clients_alive, 2, "the test's and the fixture runtime's handles");
    cr_assert_eq(st.objects_owned, 0);
    cr_assert_eq(st.orphans_deleted, start.orphans_deleted + 1);
    cr_assert_eq(st.objects, 1, "%u objects left", st.objects);
    reel_id in = th_id_n(0xd1e, 0);
    TH_OK(reel_obj_delete(store, &in));
    /* The dead driver's pool segment is removed by the next runtime to start. */
    reel_runtime *next;
    reel_runtime_options o = {.store = store_path, .actors = all_defs, .n_actors = 1};
    TH_OK(reel_runtime_start(&o, &next));
    TH_OK(reel_runtime_stop(next));
    DIR *d = opendir(th_private_dir());
    cr_assert_not_null(d);
    struct dirent *e;
    while ((e = readdir(d)))
        cr_assert(strncmp(e->d_name, seg_glob, strlen(seg_glob)) != 0,
                  "the dead driver's segment %s is still there", e->d_name);
    closedir(d);
    th_chan_close(&report);
}

ACTOR_TEST(drain_waits_for_held_tasks_and_keeps_the_queue) {
    reel_pool *pool;
    TH_OK(reel_pool_start(rt, "noop", 2, &pool));
    for (int i = 0; i < 50; i++)
        TH_OK(reel_pool_submit(pool, NULL, 0, NULL, -1, NULL));
    TH_OK(reel_pool_drain(pool, 10000));
    reel_pool_stats st;
    TH_OK(reel_pool_stats_get(pool, &st));
    cr_assert_eq(st.in_flight, 0, "a drained pool holds no task");
    cr_assert_gt(st.rss_bytes, 0, "every worker answered the drain with its statistics");
    cr_assert_eq(st.completed + st.queued, 50, "%llu done + %u queued",
                 (unsigned long long)st.completed, st.queued);
    reel_task_result r;
    for (int i = 0; i < 50; i++) /* the queue resumes */
        TH_OK(reel_pool_collect(pool, &r, 10000));
    TH_OK(reel_pool_stop(pool, -1));
}

ACTOR_TEST(two_stages_with_one_task_id_never_share_outputs) {
    reel_pool *a, *b;
    TH_OK(reel_pool_start(rt, "plus_one", 1, &a));
    TH_OK(reel_pool_start(rt, "plus_one_b", 1, &b));
    reel_id in = put_input(5, 16), task = th_id_n(0x7a5c, 5);
    TH_OK(reel_pool_submit(a, &in, 1, &task, -1, NULL));
    reel_task_result ra, rb;
    TH_OK(reel_pool_collect(a, &ra, 10000));
    /* The same task ID for the next stage, as a pipeline keyed by item would do. */
    TH_OK(reel_pool_submit(b, &ra.outputs[0], 1, &task, -1, NULL));
    TH_OK(reel_pool_collect(b, &rb, 10000));
    cr_assert_eq(rb.status, 0, "%s", rb.error);
    cr_assert(!reel_id_equal(&ra.outputs[0], &rb.outputs[0]));
    int present;
    TH_OK(reel_obj_contains(store, &ra.outputs[0], &present));
    cr_assert(present, "the second stage destroyed the first stage's output");
    reel_view v;
    TH_OK(reel_obj_get(store, &rb.outputs[0], 1, 0, &v));
    uint8_t want[16];
    th_fill(want, 16, 5);
    for (int k = 0; k < 16; k++)
        cr_assert_eq(((const uint8_t *)v.data)[k], (uint8_t)(want[k] + 2));
    TH_OK(reel_obj_release(store, &rb.outputs[0]));
    TH_OK(reel_obj_delete(store, &rb.outputs[0]));
    TH_OK(reel_obj_delete(store, &ra.outputs[0]));
    TH_OK(reel_obj_delete(store, &in));
    TH_OK(reel_pool_stop(a, -1));
    TH_OK(reel_pool_stop(b, -1));
    expect_store_empty();
}

ACTOR_TEST(forwarded_inputs_come_back_as_outputs) {
    reel_pool *pool;
    TH_OK(reel_pool_start(rt, "forwards", 1, &pool));
    reel_id in[3] = {put_input(1, 64), put_input(2, 64), put_input(3, 64)};
    TH_OK(reel_pool_submit(pool, in, 3, NULL, -1, NULL));
    reel_task_result r;
    TH_OK(reel_pool_collect(pool, &r, 10000));
    TH_OK(r.status);
    cr_assert_eq(r.n_outputs, 4);
    cr_assert_eq(r.forwarded, 0x7u, "forwarded mask 0x%x", r.forwarded);
    for (int i = 0; i < 3; i++)
        cr_assert(reel_id_equal(&r.outputs[i], &in[2 - i]), "output %d is input %d", i, 2 - i);
    /* The object it made keeps the index it would have had: 3. */
    reel_id want = expected_output_id("forwards", &r.task_id, 3);
    cr_assert(reel_id_equal(&r.outputs[3], &want));
    reel_view v;
    TH_OK(reel_obj_get(store, &r.outputs[3], 1, 0, &v));
    cr_assert_eq(v.size, 3);
    cr_assert_eq(memcmp(v.data, "new", 3), 0);
    TH_OK(reel_obj_release(store, &r.outputs[3]));
    TH_OK(reel_obj_delete(store, &r.outputs[3]));
    /* A failing task that forwarded leaves its inputs alone. */
    reel_pool *bad;
    TH_OK(reel_pool_start(rt, "forwards_fails", 1, &bad));
    TH_OK(reel_pool_submit(bad, in, 3, NULL, -1, NULL));
    TH_OK(reel_pool_collect(bad, &r, 10000));
    TH_RC(r.status, -EIO);
    cr_assert_eq(r.n_outputs, 0);
    cr_assert_eq(r.forwarded, 0);
    for (int i = 0; i < 3; i++) {
        int present = 0;
        TH_OK(reel_obj_contains(store, &in[i], &present));
        cr_assert(present, "input %d is still there", i);
        TH_OK(reel_obj_delete(store, &in[i]));
    }
    TH_OK(reel_pool_stop(pool, -1));
    TH_OK(reel_pool_stop(bad, -1));
}

/* Two workers, five tasks, the first hangs for good (no task timeout): the
 * task queued behind it on its worker goes to the other worker, which would
 * otherwise idle, and a collect that times out says where the hung task is. */
ACTOR_TEST(a_hung_worker_never_traps_work_another_could_do) {
    reel_pool *pool;
    TH_OK(reel_pool_start(rt, "hangs_on_marker", 2, &pool));
    reel_id hang = put_text(0x4a9, "HANG"), in[4];
    TH_OK(reel_pool_submit(pool, &hang, 1, NULL, -1, NULL));
    for (uint64_t i = 0; i < 4; i++) {
        in[i] = put_input(i, 32);
        TH_OK(reel_pool_submit(pool, &in[i], 1, NULL, -1, NULL));
    }
    int seen[4] = {0};
    reel_task_result r;
    for (int k = 0; k < 4; k++) {
        int rc = reel_pool_collect(pool, &r, 20000);
        cr_assert_eq(rc, 0, "good task %d of 4 never came: %s", k + 1, reel_last_error());
        uint64_t i = 0;
        while (i < 4 && !reel_id_equal(&in[i], &r.inputs[0]))
            i++;
        cr_assert_lt(i, 4, "the hung task came back");
        cr_assert_eq(seen[i]++, 0);
        expect_plus_one(&r, i, 32);
        TH_OK(reel_obj_delete(store, &r.outputs[0]));
    }
    cr_assert(wait_flag(&shared->hung_pid));
    TH_RC(reel_pool_collect(pool, &r, 200), -ETIMEDOUT);
    char want[64];
    snprintf(want, sizeof want, "(pid %d) holds 1, one running", atomic_load(&shared->hung_pid));
    cr_assert(strstr(reel_last_error(), "1 task in flight, 0 queued: worker "), "error: %s",
              reel_last_error());
    cr_assert(strstr(reel_last_error(), want), "error: %s", reel_last_error());
    reel_pool_stats st;
    TH_OK(reel_pool_stats_get(pool, &st));
    cr_assert_geq(st.stolen, 1);
    cr_assert_eq(st.completed, 4);
    cr_assert_eq(st.in_flight, 1);
    TH_OK(reel_pool_stop(pool, 0));
    for (int i = 0; i < 4; i++)
        TH_OK(reel_obj_delete(store, &in[i]));
    TH_OK(reel_obj_delete(store, &hang));
    expect_store_empty();
}

/* reel_pool_stop(pool, 0) does not wait for a task: its worker is killed at
 * once. The hung task would return 2 s after release; had the stop waited
 * for it (as it did, up to 5 s), it would have returned. */
ACTOR_TEST(stopping_without_waiting_kills_a_worker_in_a_task) {
    reel_pool *pool;
    TH_OK(reel_pool_start(rt, "hangs_on_marker", 2, &pool));
    reel_id hang = put_text(0x4a9, "HANG");
    TH_OK(reel_pool_submit(pool, &hang, 1, NULL, -1, NULL));
    cr_assert(wait_flag(&shared->hung_pid), "the task never began");
    pid_t hung = atomic_load(&shared->hung_pid);
    atomic_store(&shared->release, 1);
    TH_OK(reel_pool_stop(pool, 0));
    cr_assert_eq(atomic_load(&shared->returned), 0, "the stop waited for the hung task");
    pid_t ppid;
    char state;
    cr_assert(!th_proc_stat(hung, &ppid, &state, NULL), "the hung worker outlived the stop (%c)",
              state);
    TH_OK(reel_obj_delete(store, &hang));
    expect_store_empty();
}

/* A worker killed by a signal names it, and the task it was running. */
ACTOR_TEST(a_worker_killed_by_a_signal_is_named) {
    static const char *const markers[] = {"SEGV", "KILL"};
    static const char *const names[] = {"SIGSEGV", "SIGKILL"};
    reel_pool *pool;
    TH_OK(reel_pool_start(rt, "dies", 1, &pool));
    for (int m = 0; m < 2; m++) {
        reel_id in = put_text(0xdead + (uint64_t)m, markers[m]), task;
        TH_OK(reel_pool_submit(pool, &in, 1, NULL, -1, &task));
        reel_task_result r;
        TH_OK(reel_pool_collect(pool, &r, 20000));
        cr_assert_eq(r.status, -ECHILD);
        char hex[REEL_ID_HEX_LEN + 1], want[200];
        reel_id_to_hex(&task, hex);
        snprintf(want, sizeof want, "killed by %s while running task %s", names[m], hex);
        cr_assert(strncmp(r.error, "dies: worker 0 (pid ", 20) == 0, "error: %s", r.error);
        cr_assert(strstr(r.error, want), "error: %s, not ...%s", r.error, want);
        TH_OK(reel_obj_delete(store, &in));
    }
    TH_OK(reel_pool_stop(pool, -1));
    expect_store_empty();
}

/* A stage that seals its output itself and dies before it reports: the next
 * attempt writes the same ID again, the store holds that one object, and no
 * failure is recorded. */
ACTOR_TEST(an_output_sealed_before_a_death_is_rewritten_by_the_retry) {
    reel_pool *pool;
    TH_OK(reel_pool_start(rt, "seals_then_dies", 1, &pool));
    reel_id in = put_input(9, 48), task = th_id_n(0x5ea1, 9);
    TH_OK(reel_pool_submit(pool, &in, 1, &task, -1, NULL));
    reel_task_result r;
    TH_OK(reel_pool_collect(pool, &r, 20000));
    cr_assert_eq(r.status, 0, "%s", r.error);
    cr_assert_eq(r.attempts, 2);
    cr_assert(atomic_load(&shared->sealed), "the first attempt did not seal before it died");
    reel_id want = expected_output_id("seals_then_dies", &task, 0);
    cr_assert(reel_id_equal(&shared->sealed_id, &want), "attempt 1 sealed another ID");
    cr_assert_eq(r.n_outputs, 1);
    cr_assert(reel_id_equal(&r.outputs[0], &want), "attempt 2 named another ID");
    expect_plus_one(&r, 9, 48);
    reel_store_stats ss = th_stats(store);
    cr_assert_eq(ss.objects, 2, "%u objects: the input and one output expected", ss.objects);
    reel_pool_stats st;
    TH_OK(reel_pool_stats_get(pool, &st));
    cr_assert_eq(st.failed, 0);
    cr_assert_eq(st.completed, 1);
    cr_assert_eq(st.retried, 1);
    TH_OK(reel_pool_stop(pool, -1));
    TH_OK(reel_obj_delete(store, &r.outputs[0]));
    TH_OK(reel_obj_delete(store, &in));
    expect_store_empty();
}

/* Rounds of 8 tasks over 4 workers, 2 each: the first worker's first task is
 * slow, so the one queued behind it is taken by an idle worker - or begun by
 * its holder as that happens. Either way every task runs exactly once and
 * comes back once. */
ACTOR_TEST(stolen_tasks_run_once_and_come_back_once) {
    enum { ROUNDS = 6, PER = 8 };
    reel_pool *pool;
    TH_OK(reel_pool_start(rt, "slow_first", 4, &pool));
    reel_pool_stats st = {0};
    for (int tries = 0; tries < 2000 && st.workers_ready < 4; tries++) {
        TH_OK(reel_pool_stats_get(pool, &st));
        th_sleep_ms(5);
    }
    cr_assert_eq(st.workers_ready, 4);
    for (int round = 0; round < ROUNDS; round++) {
        reel_id in[PER];
        for (int k = 0; k < PER; k++) {
            uint8_t i = (uint8_t)(round * PER + k), buf[16];
            memset(buf, i, sizeof buf);
            in[k] = th_id_n(0x57e1, i);
            TH_OK(reel_obj_put(store, &in[k], buf, sizeof buf, NULL, 0, 0, 0));
            TH_OK(reel_pool_submit(pool, &in[k], 1, NULL, -1, NULL));
        }
        int seen[PER] = {0};
        for (int got = 0; got < PER; got++) {
            reel_task_result r;
            TH_OK(reel_pool_collect(pool, &r, 20000));
            cr_assert_eq(r.status, 0, "%s", r.error);
            cr_assert_eq(r.attempts, 1);
            int k = 0;
            while (k < PER && !reel_id_equal(&in[k], &r.inputs[0]))
                k++;
            cr_assert_lt(k, PER);
            cr_assert_eq(seen[k]++, 0, "task %d came back twice", round * PER + k);
            reel_view v;
            TH_OK(reel_obj_get(store, &r.outputs[0], 1, 0, &v));
            cr_assert_eq(v.size, 16);
            cr_assert_eq(((const uint8_t *)v.data)[15], (uint8_t)(round * PER + k + 1));
            TH_OK(reel_obj_release(store, &r.outputs[0]));
            TH_OK(reel_obj_delete(store, &r.outputs[0]));
            TH_OK(reel_obj_delete(store, &r.inputs[0]));
        }
    }
    for (int i = 0; i < ROUNDS * PER; i++)
        cr_assert_eq(atomic_load(&shared->runs[i]), 1, "task %d ran %d times", i,
                     atomic_load(&shared->runs[i]));
    TH_OK(reel_pool_stats_get(pool, &st));
    cr_assert_geq(st.stolen, 1, "no task was stolen in %d rounds", ROUNDS);
    cr_assert_eq(st.completed, ROUNDS * PER);
    cr_assert_eq(st.retried, 0);
    TH_OK(reel_pool_stop(pool, -1));
    expect_store_empty();
}

/* ---- lists ------------------------------------------------------------------ */

ACTOR_TEST(a_task_takes_and_makes_any_number_of_objects_through_lists) {
    enum { N = 100 };
    reel_id in[N];
    for (uint32_t i = 0; i < N; i++)
        in[i] = put_input(i, 16);
    reel_id list = th_id_n(0x1157, 0);
    TH_OK(reel_list_create(store, &list, in, N, NULL, NULL));
    reel_pool *pool;
    TH_OK(reel_pool_start(rt, "spread", 2, &pool));
    reel_id tid;
    TH_OK(reel_pool_submit_list(pool, &list, NULL, -1, &tid));
    reel_task_result r;
    TH_OK(reel_pool_collect(pool, &r, 20000));
    cr_assert_eq(r.status, 0, "%s", r.error);
    cr_assert_eq(r.flags, REEL_RESULT_INPUT_LIST | REEL_RESULT_OUTPUT_LIST);
    cr_assert_eq(r.n_inputs, 1);
    cr_assert(reel_id_equal(&r.inputs[0], &list));
    cr_assert_eq(r.n_outputs, 3 * N);
    reel_list outs;
    TH_OK(reel_list_open(store, &r.outputs[0], 0, &outs));
    cr_assert_eq(outs.n, 3 * N);
    for (uint32_t k = 0; k < 3 * N; k++) {
        bool fwd = reel_list_bit(outs.forwarded, k), art = reel_list_bit(outs.artifacts, k);
        if (k >= 2 * N) { /* the inputs, passed on in order */
            cr_assert(fwd && !art, "output %u", k);
            cr_assert(reel_id_equal(&outs.ids[k], &in[k - 2 * N]), "output %u", k);
            continue;
        }
        reel_id want = expected_output_id("spread", &tid, k);
        cr_assert(reel_id_equal(&outs.ids[k], &want), "output %u is not the ID it derives", k);
        cr_assert(!fwd && art == (k % 2 == 0), "output %u", k);
        if (k % 2) {
            reel_task_result one = {.n_outputs = 1, .outputs = {outs.ids[k]}};
            expect_plus_one(&one, k / 2, 16);
        }
    }
    for (uint32_t k = 0; k < 2 * N; k++)
        TH_OK(reel_obj_delete(store, &outs.ids[k]));
    reel_list_close(store, &outs);
    reel_list_close(store, &outs); /* a second close does nothing */
    TH_OK(reel_obj_delete(store, &r.outputs[0]));

    /* Not a list, or one whose count says more than its bytes hold: refused. */
    reel_id bogus = put_input(999, 16), lying = th_id_n(0x1157, 1);
    TH_RC(reel_pool_submit_list(pool, &bogus, NULL, 0, NULL), REEL_ECORRUPT);
    TH_RC(reel_list_open(store, &bogus, 0, &outs), REEL_ECORRUPT);
    uint8_t *buf;
    TH_OK(reel_obj_create(store, &lying, reel_list_size(4), NULL, 0, 0, 0, (void **)&buf));
    reel_list_header h = {.version = REEL_LIST_VERSION, .n = 5};
    memcpy(h.magic, REEL_LIST_MAGIC, sizeof h.magic);
    memset(buf, 0, reel_list_size(4));
    memcpy(buf, &h, sizeof h);
    TH_OK(reel_obj_seal(store, &lying));
    TH_RC(reel_list_open(store, &lying, 0, &outs), REEL_ECORRUPT);
    TH_RC(reel_pool_submit_list(pool, &lying, NULL, 0, NULL), REEL_ECORRUPT);
    TH_RC(reel_list_create(store, &bogus, in, REEL_LIST_MAX + 1, NULL, NULL), -E2BIG);
    TH_OK(reel_pool_stop(pool, -1));
    for (uint32_t i = 0; i < N; i++)
        TH_OK(reel_obj_delete(store, &in[i]));
    TH_OK(reel_obj_delete(store, &list));
    TH_OK(reel_obj_delete(store, &bogus));
    TH_OK(reel_obj_delete(store, &lying));
}
