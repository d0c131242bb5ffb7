/*
 * test_pipeline.c - pipelines end to end: describe, the public configuration
 * calls, placement refusals, backpressure, batch against streaming, failures
 * with and without ignore_failures, autoscaling a real run.
 *
 * Every run must leave the store as it found it (the inputs the test put
 * there and nothing else, nothing referenced) and no process behind.
 */
#include "helpers.h"

#include <criterion/criterion.h>
#include <ctype.h>
#include <sched.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <reel/pipeline.h>

#include "placement.h" /* reel__node_detect_cpus: the budget a batch stage gets */

/* ---- stages -------------------------------------------------------------------- */

/* Appends one byte: "x" -> "xa". */
static int append_a(reel_actor_ctx *ctx, const reel_view *in, size_t n, reel_actor_out *out) {
    (void)ctx;
    for (size_t i = 0; i < n; i++) {
        uint8_t *buf;
        int rc = reel_actor_output(out, in[i].size + 1, NULL, 0, (void **)&buf);
        if (rc)
            return rc;
        memcpy(buf, in[i].data, in[i].size);
        buf[in[i].size] = 'a';
    }
    return 0;
}

/* Two outputs per input: "x" -> "x1", "x2". */
static int split_two(reel_actor_ctx *ctx, const reel_view *in, size_t n, reel_actor_out *out) {
    (void)ctx;
    for (size_t i = 0; i < n; i++)
        for (int k = 1; k <= 2; k++) {
            uint8_t *buf;
            int rc = reel_actor_output(out, in[i].size + 1, NULL, 0, (void **)&buf);
            if (rc)
                return rc;
            memcpy(buf, in[i].data, in[i].size);
            buf[in[i].size] = (uint8_t)('0' + k);
        }
    return 0;
}

static int upper(reel_actor_ctx *ctx, const reel_view *in, size_t n, reel_actor_out *out) {
    (void)ctx;
    for (size_t i = 0; i < n; i++) {
        uint8_t *buf;
        int rc = reel_actor_output(out, in[i].size, NULL, 0, (void **)&buf);
        if (rc)
            return rc;
        for (uint64_t k = 0; k < in[i].size; k++)
            buf[k] = (uint8_t)toupper(((const uint8_t *)in[i].data)[k]);
    }
    return 0;
}

/* Passes every input on, untouched. */
static int pass(reel_actor_ctx *ctx, const reel_view *in, size_t n, reel_actor_out *out) {
    (void)ctx, (void)in;
    for (uint32_t i = 0; i < n; i++) {
        int rc = reel_actor_forward(out, i);
        if (rc)
            return rc;
    }
    return 0;
}

/* Passes inputs on after 10 ms each: a slow sink. */
static int slow_pass(reel_actor_ctx *ctx, const reel_view *in, size_t n, reel_actor_out *out) {
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
    return pass(ctx, in, n, out);
}

/* Fails for good on inputs that start with "bad". */
static int picky(reel_actor_ctx *ctx, const reel_view *in, size_t n, reel_actor_out *out) {
    for (size_t i = 0; i < n; i++)
        if (in[i].size >= 3 && memcmp(in[i].data, "bad", 3) == 0) {
            reel_actor_set_error(ctx, "refuses input %.*s", (int)in[i].size,
                                 (const char *)in[i].data);
            return -EIO;
        }
    return append_a(ctx, in, n, out);
}

static const reel_actor_def def_append = {.name = "append", .process = append_a, .cpus = 0.2};
static const reel_actor_def def_split = {.name = "split", .process = split_two, .cpus = 0.2};
static const reel_actor_def def_upper = {.name = "upper", .process = upper, .cpus = 0.2};
static const reel_actor_def def_pass = {.name = "pass", .process = pass, .cpus = 0.2};
static const reel_actor_def def_pass2 = {.name = "pass2", .process = pass, .cpus = 0.2};
static const reel_actor_def def_slow = {.name = "slow", .process = slow_pass, .cpus = 0.2};
static const reel_actor_def def_picky = {
    .name = "picky", .process = picky, .cpus = 0.2, .max_retries = 1};

/* ---- fixture -------------------------------------------------------------------- */

static const char *store_path;
static reel_store *store;

static void setup(void) {
    th_init();
    store = th_store_new(64 << 20, 65536, &store_path);
}

TestSuite(pipeline, .init = setup, .fini = th_fini, .timeout = 120);

/* The processes this test process has below it (zygotes, workers). */
static int descendants(void) {
    return (int)th_processes_below(getpid(), 1, NULL, 0);
}

static reel_id put_text(const char *s) {
    reel_id id;
    reel_id_random(&id);
    TH_OK(reel_obj_put(store, &id, s, strlen(s), NULL, 0, 0, -1));
    return id;
}

/* n inputs, each an object of the same text. */
static void put_texts(reel_id *in, size_t n, const char *s) {
    for (size_t i = 0; i < n; i++)
        in[i] = put_text(s);
}

/* The store holds exactly the inputs, none referenced or unsealed. */
static void expect_clean(uint32_t inputs) {
    reel_store_stats st = th_stats(store);
    cr_assert_eq(st.objects_referenced, 0, "%u objects still referenced", st.objects_referenced);
    cr_assert_eq(st.objects_unsealed, 0, "%u objects left unsealed", st.objects_unsealed);
    cr_assert_eq(st.objects_sealed, inputs, "%u objects in the store, %u inputs", st.objects_sealed,
                 inputs);
    cr_assert_eq(descendants(), 0, "processes outlived the run");
}

static reel_executor_config quick_config(void) {
    reel_executor_config c;
    reel_executor_config_defaults(&c);
    c.logging_interval = 3600;
    c.autoscale_interval_s = 3600;
    return c;
}

/* Collects what the last stage makes: content, then deletes it. */
typedef struct collected {
    size_t n;
    char *items[4096];
    reel_id ids[4096];
} collected;

static void keep(void *arg, const reel_task_result *r) {
    collected *c = arg;
    for (uint32_t i = 0; i < r->n_outputs && c->n < 4096; i++) {
        reel_view v;
        if (reel_obj_get(store, &r->outputs[i], 1, 0, &v) != 0)
            continue;
        c->items[c->n] = strndup(v.data, v.size);
        c->ids[c->n] = r->outputs[i];
        c->n++;
        reel_obj_release(store, &r->outputs[i]);
        if (!(r->forwarded >> i & 1))
            reel_obj_delete(store, &r->outputs[i]);
    }
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void collected_free(collected *c) {
    for (size_t i = 0; i < c->n; i++)
        free(c->items[i]);
    c->n = 0;
}

/* ---- describe and configuration ------------------------------------------------ */

Test(pipeline, describe_names_every_stage) {
    reel_pipeline *p;
    TH_OK(reel_pipeline_new("demo", &p));
    TH_OK(reel_pipeline_add(p, &def_append, &(reel_stage_options){.inputs = "text"}));
    TH_OK(reel_pipeline_add(p, &def_split,
                            &(reel_stage_options){.batch_size = 4, .workers = 2, .gpus = 0.5}));
    TH_OK(reel_pipeline_add(p, &def_upper,
                            &(reel_stage_options){.gpu_memory = 2ull << 30, .outputs = "shout"}));
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    TH_OK(reel_pipeline_describe(p, f));
    fclose(f);
    cr_assert(strstr(text, "Pipeline: demo\n"), "%s", text);
    cr_assert(strstr(text, "Stages: 3\n"), "%s", text);
    cr_assert(strstr(text, "Stage 1: append\n"), "%s", text);
    cr_assert(strstr(text, "Stage 2: split\n"), "%s", text);
    cr_assert(strstr(text, "Resources: 0.2 CPUs, 0.5 GPUs per worker"), "%s", text);
    cr_assert(strstr(text, "Batch size: 4\n"), "%s", text);
    cr_assert(strstr(text, "Workers: 2 (fixed)"), "%s", text);
    cr_assert(strstr(text, "GPU memory 2.0 GiB"), "%s", text);
    cr_assert(strstr(text, "Inputs: text\n"), "%s", text);
    cr_assert(strstr(text, "Outputs: shout\n"), "%s", text);
    free(text);
    reel_pipeline_free(p);
}

Test(pipeline, building_refuses_bad_stages) {
    reel_pipeline *p;
    TH_RC(reel_pipeline_new("", &p), -EINVAL);
    TH_OK(reel_pipeline_new("x", &p));
    TH_OK(reel_pipeline_add(p, &def_append, NULL));
    TH_RC(reel_pipeline_add(p, &def_append, NULL), -EINVAL);
    cr_assert(strstr(reel_last_error(), "append"), "%s", reel_last_error());
    TH_RC(reel_pipeline_add(p, &def_split,
                            &(reel_stage_options){.batch_size = REEL_TASK_MAX_INPUTS + 1}),
          -EINVAL);
    TH_RC(reel_pipeline_add(p, &def_split, &(reel_stage_options){.gpus = 1, .gpu_memory = 1}),
          -EINVAL);
    TH_RC(
        reel_pipeline_add(p, &def_split, &(reel_stage_options){.min_workers = 3, .max_workers = 2}),
        -EINVAL);
    TH_RC(reel_pipeline_add(p, &def_split, &(reel_stage_options){.cpus = -1}), -EINVAL);
    TH_RC(reel_pipeline_add(p, &def_split,
                            &(reel_stage_options){.workers = REEL_POOL_MAX_WORKERS + 1}),
          -EINVAL);
    /* The definition's name is copied: the caller's string may go. */
    char name[] = "temporary";
    reel_actor_def tmp = def_split;
    tmp.name = name;
    TH_OK(reel_pipeline_add(p, &tmp, NULL));
    memset(name, 'x', sizeof name - 1);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    TH_OK(reel_pipeline_describe(p, f));
    fclose(f);
    cr_assert(strstr(text, "Stage 2: temporary"), "%s", text);
    free(text);
    reel_pipeline_free(p);
}

Test(pipeline, public_configuration_calls) {
    reel_executor_config c;
    reel_executor_config_defaults(&c);
    cr_assert_eq(c.logging_interval, 60);
    cr_assert_eq(c.ignore_failures, false);
    cr_assert_eq(c.execution_mode, REEL_EXEC_STREAMING);
    cr_assert_eq(c.cpu_allocation_percentage, 0.95);
    cr_assert_eq(c.autoscale_interval_s, 180);
    TH_OK(reel_executor_config_set(&c, "execution_mode", "batch"));
    cr_assert_eq(c.execution_mode, REEL_EXEC_BATCH);
    TH_RC(reel_executor_config_set(&c, "autoscale_intervall", "5"), -EINVAL);
    cr_assert(strstr(reel_last_error(), "autoscale_interval_s"), "%s", reel_last_error());
    char *argv[] = {"prog", "--ignore-failures", "--autoscale-interval-s", "2", NULL};
    int i = 1;
    cr_assert_eq(reel_executor_config_parse_flag(&c, 4, argv, &i), 1);
    i = 2;
    cr_assert_eq(reel_executor_config_parse_flag(&c, 4, argv, &i), 1);
    cr_assert_eq(c.ignore_failures, true);
    cr_assert_eq(c.autoscale_interval_s, 2);
    TH_RC(reel_executor_config_load(&c, "/nonexistent/reel.json"), -ENOENT);
    cr_assert(strstr(reel_executor_config_flags_help(), "--logging-interval"));
    c.cpu_allocation_percentage = 2;
    TH_RC(reel_executor_config_validate(&c), -EINVAL);
    cr_assert(strstr(reel_last_error(), "cpu_allocation_percentage"), "%s", reel_last_error());
}

/* ---- placement refusals ------------------------------------------------------- */

static volatile sig_atomic_t children_ended;

static void count_child(int sig) {
    (void)sig;
    children_ended++;
}

/* Whether an inotify event of the private directory is this run's: a status
 * segment (or its temporary file) of the default name, or a pool segment. */
static bool ours(const struct inotify_event *e) {
    char status[64], pool[64];
    snprintf(status, sizeof status, "reel-status-refused-%ld", (long)getpid());
    snprintf(pool, sizeof pool, "reel-pool-%ld-", (long)getpid());
    return e->len && (strstr(e->name, status) || strncmp(e->name, pool, strlen(pool)) == 0);
}

/* Refused before anything starts: no process (no zygote; children_ended
 * counts every child that ended, so at most the GPU probe when gpu_probe),
 * no status segment, no pool segment. */
static void expect_refused(const reel_actor_def *def, const reel_stage_options *o, int want,
                           const char *words, bool gpu_probe) {
    struct sigaction sa = {.sa_handler = count_child}, old;
    sigemptyset(&sa.sa_mask);
    cr_assert_eq(sigaction(SIGCHLD, &sa, &old), 0);
    children_ended = 0;
    int ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    cr_assert_geq(ino, 0, "inotify_init1: %s", strerror(errno));
    cr_assert_geq(inotify_add_watch(ino, th_private_dir(), IN_CREATE | IN_MOVED_TO), 0);
    reel_pipeline *p;
    TH_OK(reel_pipeline_new("refused", &p));
    TH_OK(reel_pipeline_add(p, &def_pass, NULL));
    TH_OK(reel_pipeline_add(p, def, o));
    reel_id in = put_text("x");
    reel_executor_config c = quick_config();
    reel_run_options ro = {
        .store = store_path, .config = &c, .inputs = &in, .n_inputs = 1, .flags = REEL_RUN_QUIET};
    reel_run_result res;
    int rc = reel_pipeline_run(p, &ro, &res);
    cr_assert_eq(rc, want, "rc %d (%s), wanted %d: %s", rc, reel_strerror(rc), want, res.error);
    cr_assert(strstr(res.error, def->name), "the refusal names the stage: %s", res.error);
    cr_assert(strstr(res.error, words), "the refusal says what is missing: %s", res.error);
    cr_assert_eq(res.outputs, 0);
    cr_assert_leq(children_ended, gpu_probe ? 1 : 0, "%d processes started and ended",
                  (int)children_ended);
    char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t n;
    while ((n = read(ino, buf, sizeof buf)) > 0)
        for (char *at = buf; at < buf + n;) {
            const struct inotify_event *e = (const struct inotify_event *)at;
            cr_assert(!ours(e), "the refused run made %s", e->name);
            at += sizeof *e + e->len;
        }
    close(ino);
    sigaction(SIGCHLD, &old, NULL);
    reel_run_result_free(&res);
    reel_pipeline_free(p);
    TH_OK(reel_obj_delete(store, &in));
    expect_clean(0);
}

Test(pipeline, a_gpu_stage_without_a_gpu_is_refused) {
    if (getenv("REEL_TEST_HAS_GPU"))
        cr_skip_test("this node has a GPU");
    expect_refused(&def_upper, &(reel_stage_options){.gpus = 1}, -ENODEV, "GPU", true);
    expect_refused(&def_upper, &(reel_stage_options){.gpu_memory = 1 << 30}, -ENODEV, "GPU", true);
}

Test(pipeline, more_cpus_than_the_node_is_refused) {
    expect_refused(&def_upper, &(reel_stage_options){.cpus = 1, .workers = 200}, -ENOSPC, "CPUs",
                   false);
}

Test(pipeline, a_batch_run_that_cannot_fit_is_refused_before_it_starts) {
    /* In batch mode each stage runs alone: one of 200 CPUs never fits. */
    reel_executor_config c = quick_config();
    c.execution_mode = REEL_EXEC_BATCH;
    reel_pipeline *p;
    TH_OK(reel_pipeline_new("refused", &p));
    TH_OK(reel_pipeline_add(p, &def_pass, NULL));
    TH_OK(reel_pipeline_add(p, &def_upper, &(reel_stage_options){.cpus = 200}));
    reel_id in = put_text("x");
    children_ended = 0;
    struct sigaction sa = {.sa_handler = count_child}, old;
    sigemptyset(&sa.sa_mask);
    cr_assert_eq(sigaction(SIGCHLD, &sa, &old), 0);
    reel_run_options ro = {
        .store = store_path, .config = &c, .inputs = &in, .n_inputs = 1, .flags = REEL_RUN_QUIET};
    reel_run_result res;
    TH_RC(reel_pipeline_run(p, &ro, &res), -ENOSPC);
    cr_assert(strstr(res.error, "stage upper"), "%s", res.error);
    cr_assert_eq(children_ended, 0, "the pass stage ran before the refusal");
    sigaction(SIGCHLD, &old, NULL);
    reel_run_result_free(&res);
    reel_pipeline_free(p);
    TH_OK(reel_obj_delete(store, &in));
    expect_clean(0);
}

/* ---- streaming and batch -------------------------------------------------------- */

static void run_three(reel_execution_mode mode, uint32_t batch, collected *out,
                      reel_run_result *res) {
    reel_pipeline *p;
    TH_OK(reel_pipeline_new("three", &p));
    TH_OK(reel_pipeline_add(p, &def_append, &(reel_stage_options){.batch_size = batch}));
    TH_OK(reel_pipeline_add(p, &def_split, NULL));
    TH_OK(reel_pipeline_add(p, &def_upper, &(reel_stage_options){.batch_size = batch}));
    reel_id in[300];
    for (int i = 0; i < 300; i++) {
        char s[16];
        snprintf(s, sizeof s, "item%03d", i);
        reel_id_from_content(s, strlen(s), &in[i]); /* the same IDs in both runs */
        TH_OK(reel_obj_put(store, &in[i], s, strlen(s), NULL, 0, 0, -1));
    }
    reel_executor_config c = quick_config();
    c.execution_mode = mode;
    static const reel_id run_id = {{1, 2, 3}}; /* both modes name their outputs alike */
    reel_run_options ro = {.store = store_path,
                           .config = &c,
                           .inputs = in,
                           .n_inputs = 300,
                           .on_output = keep,
                           .arg = out,
                           .run_id = &run_id,
                           .flags = REEL_RUN_QUIET};
    TH_OK(reel_pipeline_run(p, &ro, res));
    reel_pipeline_free(p);
    expect_clean(300);
    for (int i = 0; i < 300; i++)
        TH_OK(reel_obj_delete(store, &in[i]));
}

Test(pipeline, batch_and_streaming_give_the_same_outputs) {
    static collected a, b;
    reel_run_result ra, rb;
    run_three(REEL_EXEC_STREAMING, 1, &a, &ra);
    run_three(REEL_EXEC_BATCH, 1, &b, &rb);
    cr_assert_eq(a.n, 600);
    cr_assert_eq(b.n, 600);
    cr_assert_eq(ra.inputs, 300);
    cr_assert_eq(ra.outputs, 600);
    cr_assert_eq(rb.outputs, 600);
    /* The same IDs (task IDs derive from the inputs) and the same bytes. */
    for (size_t i = 0; i < a.n; i++) {
        size_t j = 0;
        while (j < b.n && !reel_id_equal(&a.ids[i], &b.ids[j]))
            j++;
        cr_assert(j < b.n, "output %zu of streaming is not among batch's", i);
        cr_assert_str_eq(a.items[i], b.items[j]);
    }
    qsort(a.items, a.n, sizeof a.items[0], cmp_str);
    cr_assert_str_eq(a.items[0], "ITEM000A1");
    cr_assert_str_eq(a.items[599], "ITEM299A2");
    collected_free(&a);
    collected_free(&b);
    reel_run_result_free(&ra);
    reel_run_result_free(&rb);
}

Test(pipeline, batches_of_several_items_lose_nothing) {
    static collected a, b;
    reel_run_result ra, rb;
    run_three(REEL_EXEC_STREAMING, 7, &a, &ra);
    run_three(REEL_EXEC_BATCH, 7, &b, &rb);
    cr_assert_eq(a.n, 600);
    cr_assert_eq(b.n, 600);
    qsort(a.items, a.n, sizeof a.items[0], cmp_str);
    qsort(b.items, b.n, sizeof b.items[0], cmp_str);
    for (size_t i = 0; i < a.n; i++)
        cr_assert_str_eq(a.items[i], b.items[i]);
    collected_free(&a);
    collected_free(&b);
    reel_run_result_free(&ra);
    reel_run_result_free(&rb);
}

/* ---- backpressure ----------------------------------------------------------------- */

typedef struct watch {
    uint64_t max_queued[4], bound[4];
    uint64_t max_ahead; /* items the first stage finished beyond the sink's */
    int calls;
} watch;

static void on_status(void *arg, const reel_pipeline_status *s) {
    watch *w = arg;
    w->calls++;
    for (uint32_t i = 0; i < s->n_stages && i < 4; i++) {
        if (s->stage[i].queued > w->max_queued[i]) {
            w->max_queued[i] = s->stage[i].queued;
            w->bound[i] = s->stage[i].queue_bound;
        }
    }
    uint64_t ahead = s->stage[0].items_in - s->stage[2].items_in;
    if (ahead > w->max_ahead)
        w->max_ahead = ahead;
}

Test(pipeline, a_slow_sink_holds_back_its_producers) {
    reel_pipeline *p;
    TH_OK(reel_pipeline_new("backpressure", &p));
    TH_OK(reel_pipeline_add(p, &def_pass, &(reel_stage_options){.workers = 1}));
    TH_OK(reel_pipeline_add(p, &def_pass2, &(reel_stage_options){.workers = 1}));
    TH_OK(reel_pipeline_add(p, &def_slow, &(reel_stage_options){.workers = 1, .slots = 2}));
    enum { N = 400 };
    static reel_id in[N];
    put_texts(in, N, "payload");
    reel_executor_config c = quick_config();
    c.logging_interval = 0.05;
    watch w = {0};
    /* No on_output: the outputs are the inputs passed on, the caller's already. */
    reel_run_options ro = {.store = store_path,
                           .config = &c,
                           .inputs = in,
                           .n_inputs = N,
                           .on_status = on_status,
                           .arg = &w,
                           .flags = REEL_RUN_QUIET};
    reel_run_result res;
    TH_OK(reel_pipeline_run(p, &ro, &res));
    cr_assert_eq(res.outputs, N);
    cr_assert_gt(w.calls, 10, "status seen %d times", w.calls);
    for (int i = 0; i < 3; i++) {
        cr_assert_gt(w.bound[i] + (w.max_queued[i] == 0), 0);
        cr_assert_leq(w.max_queued[i], w.bound[i] ? w.bound[i] : REEL_PIPELINE_QUEUE_MIN,
                      "stage %d queue reached %lu, bound %lu", i, (unsigned long)w.max_queued[i],
                      (unsigned long)w.bound[i]);
    }
    /* The sink's queue filled up to its bound: the producers were held back, not idle. */
    cr_assert_geq(w.max_queued[2] * 10, w.bound[2] * 8, "the sink's queue peaked at %lu of %lu",
                  (unsigned long)w.max_queued[2], (unsigned long)w.bound[2]);
    /* The first stage never ran far ahead: its queue, the sink's, and what is in flight. */
    cr_assert_leq(w.max_ahead, (uint64_t)REEL_PIPELINE_QUEUE_MIN * 3 + 64 * 3,
                  "the first stage ran %lu items ahead of the sink", (unsigned long)w.max_ahead);
    reel_run_result_free(&res);
    reel_pipeline_free(p);
    expect_clean(N);
    for (int i = 0; i < N; i++)
        TH_OK(reel_obj_delete(store, &in[i]));
}

/* ---- failures ------------------------------------------------------------------------ */

/* 100 inputs, of which those numbered 3 modulo every fail in the second
 * stage; log NULL: a quiet run. */
static int run_picky(bool ignore, int every, FILE *log, collected *out, reel_run_result *res,
                     reel_id *in) {
    reel_pipeline *p;
    TH_OK(reel_pipeline_new("picky", &p));
    TH_OK(reel_pipeline_add(p, &def_append, NULL));
    TH_OK(reel_pipeline_add(p, &def_picky, NULL));
    TH_OK(reel_pipeline_add(p, &def_upper, NULL));
    for (int i = 0; i < 100; i++) {
        char s[16];
        snprintf(s, sizeof s, i % every == 3 ? "bad%02d" : "ok%02d", i);
        in[i] = put_text(s);
    }
    reel_executor_config c = quick_config();
    c.ignore_failures = ignore;
    reel_run_options ro = {.store = store_path,
                           .config = &c,
                           .inputs = in,
                           .n_inputs = 100,
                           .on_output = keep,
                           .arg = out,
                           .log = log,
                           .flags = log ? 0 : REEL_RUN_QUIET};
    int rc = reel_pipeline_run(p, &ro, res);
    reel_pipeline_free(p);
    return rc;
}

Test(pipeline, ignore_failures_records_them_and_goes_on) {
    static collected out;
    static reel_id in[100];
    reel_run_result res;
    TH_OK(run_picky(true, 10, NULL, &out, &res, in));
    cr_assert_eq(out.n, 90);
    cr_assert_eq(res.outputs, 90);
    cr_assert_eq(res.failed, 10);
    cr_assert_eq(res.n_failures, 10);
    for (size_t k = 0; k < res.n_failures; k++) {
        cr_assert_eq(res.failures[k].stage, 1);
        cr_assert_eq(res.failures[k].status, -EIO);
        cr_assert_eq(res.failures[k].n_inputs, 1);
        cr_assert(strstr(res.failures[k].error, "picky: refuses input bad"), "%s",
                  res.failures[k].error);
        /* Its origin is the pipeline input the failed item was made from. */
        int which = -1;
        for (int i = 0; i < 100; i++)
            if (reel_id_equal(&res.failures[k].origin, &in[i]))
                which = i;
        cr_assert_eq(which % 10, 3, "failure %zu comes from input %d", k, which);
    }
    for (size_t i = 0; i < out.n; i++)
        cr_assert(strncmp(out.items[i], "OK", 2) == 0, "%s", out.items[i]);
    collected_free(&out);
    reel_run_result_free(&res);
    expect_clean(100);
    for (int i = 0; i < 100; i++)
        TH_OK(reel_obj_delete(store, &in[i]));
}

Test(pipeline, without_ignore_failures_the_first_failure_stops_the_run) {
    static collected out;
    static reel_id in[100];
    reel_run_result res;
    char *text = NULL;
    size_t len = 0;
    FILE *log = open_memstream(&text, &len);
    int rc = run_picky(false, 10, log, &out, &res, in);
    fclose(log);
    cr_assert_eq(rc, -EIO, "rc %d", rc);
    cr_assert_eq(res.status, -EIO);
    cr_assert(strstr(res.error, "stage picky failed on input"), "%s", res.error);
    cr_assert(strstr(res.error, "refuses input bad"), "%s", res.error);
    /* The log's last word names the stage too. */
    cr_assert(strstr(text, "reel: picky stopped: stage picky failed on input"), "%s", text);
    cr_assert(strstr(text, "reel:   stage picky, input "), "%s", text);
    free(text);
    cr_assert_geq(res.failed, 1);
    cr_assert_lt(out.n, 90, "the run stopped early");
    collected_free(&out);
    reel_run_result_free(&res);
    /* Every worker stopped, every intermediate deleted. */
    expect_clean(100);
    for (int i = 0; i < 100; i++)
        TH_OK(reel_obj_delete(store, &in[i]));
}

/* The summary at the end of a run names, per failure, the stage, the failed
 * input's ID (as reel-inspect prints it), the pipeline input it came from and
 * the error; past 10, how many more. */
Test(pipeline, the_failure_summary_names_stage_inputs_and_error) {
    static collected out;
    static reel_id in[100];
    reel_run_result res;
    char *text = NULL;
    size_t len = 0;
    FILE *log = open_memstream(&text, &len);
    TH_OK(run_picky(true, 5, log, &out, &res, in));
    fclose(log);
    cr_assert_eq(res.failed, 20);
    cr_assert_eq(res.n_failures, 20);
    cr_assert(strstr(text, "reel: picky: 20 tasks failed for good (ignored)\n"), "%s", text);
    cr_assert_eq(th_count(text, "reel:   stage picky, input "), 10, "%s", text);
    for (size_t k = 0; k < 20; k++) {
        char in_hex[REEL_ID_HEX_LEN + 1], from_hex[REEL_ID_HEX_LEN + 1], line[512];
        reel_id_to_hex(&res.failures[k].inputs[0], in_hex);
        reel_id_to_hex(&res.failures[k].origin, from_hex);
        snprintf(line, sizeof line, "reel:   stage picky, input %s (from pipeline input %s): %s\n",
                 in_hex, from_hex, res.failures[k].error);
        if (k < 10)
            cr_assert(strstr(text, line), "no line %s in:\n%s", line, text);
        else
            cr_assert_null(strstr(text, in_hex), "failure %zu is past the first 10:\n%s", k, text);
    }
    cr_assert(strstr(text, "reel:   ... and 10 more\n"), "%s", text);
    free(text);
    collected_free(&out);
    reel_run_result_free(&res);
    expect_clean(100);
    for (int i = 0; i < 100; i++)
        TH_OK(reel_obj_delete(store, &in[i]));
}

/* Keeps outputs, and asks the run to stop at the fifth. */
static volatile sig_atomic_t cancel_flag;

static void keep_then_cancel(void *arg, const reel_task_result *r) {
    collected *c = arg;
    keep(arg, r);
    if (c->n >= 5)
        cancel_flag = 1;
}

Test(pipeline, a_cancelled_run_stops_and_cleans_up) {
    enum { N = 2000 };
    static reel_id in[N];
    put_texts(in, N, "cancel me");
    reel_pipeline *p;
    TH_OK(reel_pipeline_new("cancelled", &p));
    TH_OK(reel_pipeline_add(p, &def_append, NULL));
    TH_OK(reel_pipeline_add(p, &def_upper, NULL));
    reel_executor_config c = quick_config();
    static collected out;
    cancel_flag = 0;
    reel_run_options ro = {.store = store_path,
                           .config = &c,
                           .inputs = in,
                           .n_inputs = N,
                           .on_output = keep_then_cancel,
                           .arg = &out,
                           .flags = REEL_RUN_QUIET,
                           .cancel = &cancel_flag};
    reel_run_result res;
    int rc = reel_pipeline_run(p, &ro, &res);
    cr_assert_eq(rc, -ECANCELED, "rc %d: %s", rc, res.error);
    cr_assert_eq(res.status, -ECANCELED);
    cr_assert(strstr(res.error, "cancelled"), "%s", res.error);
    cr_assert_geq(out.n, 5);
    cr_assert_lt(out.n, N, "the run went to its end");
    collected_free(&out);
    reel_run_result_free(&res);
    reel_pipeline_free(p);
    /* Every worker stopped, every intermediate deleted: the inputs are left. */
    expect_clean(N);
    for (int i = 0; i < N; i++)
        TH_OK(reel_obj_delete(store, &in[i]));
}

Test(pipeline, an_input_given_twice_is_a_failure_not_a_collision) {
    reel_pipeline *p;
    TH_OK(reel_pipeline_new("twice", &p));
    TH_OK(reel_pipeline_add(p, &def_append, NULL));
    reel_id in[3];
    in[0] = put_text("one");
    in[1] = put_text("two");
    in[2] = in[0];
    reel_executor_config c = quick_config();
    c.ignore_failures = true;
    static collected out;
    reel_run_options ro = {.store = store_path,
                           .config = &c,
                           .inputs = in,
                           .n_inputs = 3,
                           .on_output = keep,
                           .arg = &out,
                           .flags = REEL_RUN_QUIET};
    reel_run_result res;
    TH_OK(reel_pipeline_run(p, &ro, &res));
    cr_assert_eq(out.n, 2);
    cr_assert_eq(res.failed, 1);
    cr_assert(strstr(res.failures[0].error, "given as an input before"), "%s",
              res.failures[0].error);
    collected_free(&out);
    reel_run_result_free(&res);
    reel_pipeline_free(p);
    expect_clean(2);
    TH_OK(reel_obj_delete(store, &in[0]));
    TH_OK(reel_obj_delete(store, &in[1]));
}

/* ---- the source callback, and status lines ---------------------------------------- */

/* A source that makes an input each time the run asks for one, until the
 * test has seen what it waits for (done, set by its on_status) or, at the latest, a generous
 * deadline: the run lasts as long as the condition takes on this machine, however loaded, and a
 * test asserts the condition, never a rate or a time. It is the first member of each test's watch,
 * which is the run's one arg. */
#define FEED_MAX      20000
#define FEED_LIMIT_NS (60ull * 1000000000u)

typedef struct feeder {
    bool done;
    uint64_t deadline_ns;
    size_t n;
    reel_id ids[FEED_MAX];
} feeder;

static void feeder_start(feeder *f) {
    f->done = false;
    f->n = 0;
    f->deadline_ns = th_monotonic_ns() + FEED_LIMIT_NS;
}

static int feed(void *arg, reel_id *id) {
    feeder *f = arg;
    if (f->done || f->n == FEED_MAX || th_monotonic_ns() > f->deadline_ns)
        return 0;
    *id = f->ids[f->n++] = put_text("x");
    return 1;
}

/* Deletes the inputs fed, once the test has checked the store. */
static void feeder_end(feeder *f) {
    for (size_t i = 0; i < f->n; i++)
        TH_OK(reel_obj_delete(store, &f->ids[i]));
    f->n = 0;
}

/* Done once a status shows the slow stage (stage 1) working: items done in
 * its window, and time in process(). */
static void on_slow_seen(void *arg, const reel_pipeline_status *s) {
    feeder *f = arg;
    if (s->stage[1].items_per_s > 0 && s->stage[1].busy >= 0.01)
        f->done = true;
}

Test(pipeline, a_source_callback_and_status_lines) {
    reel_pipeline *p;
    TH_OK(reel_pipeline_new("lines", &p));
    TH_OK(reel_pipeline_add(p, &def_pass, NULL));
    TH_OK(reel_pipeline_add(p, &def_slow, NULL));
    static feeder src;
    feeder_start(&src);
    reel_executor_config c = quick_config();
    c.logging_interval = 0.1;
    char *text = NULL;
    size_t len = 0;
    FILE *log = open_memstream(&text, &len);
    reel_run_options ro = {.store = store_path,
                           .config = &c,
                           .next_input = feed,
                           .on_status = on_slow_seen,
                           .arg = &src,
                           .log = log};
    reel_run_result res;
    TH_OK(reel_pipeline_run(p, &ro, &res));
    fclose(log);
    cr_assert(src.done, "in %zu inputs, no status line showed the slow stage working:\n%s", src.n,
              text);
    cr_assert_eq(res.inputs, src.n);
    cr_assert_eq(res.outputs, src.n);
    cr_assert(strstr(text, "reel: lines (streaming)"), "%s", text);
    cr_assert(strstr(text, "reel:   pass "), "%s", text);
    cr_assert(strstr(text, "reel:   slow "), "%s", text);
    cr_assert(strstr(text, "tasks/s, "), "%s", text);
    cr_assert(strstr(text, "items/s, busy"), "%s", text);
    char outputs[32];
    snprintf(outputs, sizeof outputs, " %zu outputs", src.n);
    cr_assert(strstr(text, outputs), "no '%s' in:\n%s", outputs, text);
    /* The lines measure their own interval: the line the run was waiting
     * for shows the slow stage working, whatever its speed. */
    bool working = false;
    for (const char *l = strstr(text, "reel:   slow "); l; l = strstr(l + 1, "reel:   slow ")) {
        const char *q = strstr(l, "in flight");
        double rate, busy;
        double tasks;
        if (q && sscanf(strchr(q, ',') + 1, " %lf tasks/s, %lf items/s, busy %lf%%", &tasks, &rate,
                        &busy) == 3)
            working = working || (rate > 0 && busy > 0);
    }
    cr_assert(working, "no line shows the slow stage working:\n%s", text);
    free(text);
    reel_run_result_free(&res);
    reel_pipeline_free(p);
    expect_clean((uint32_t)src.n);
    feeder_end(&src);
}

/* ---- the autoscaler on a real run -------------------------------------------------- */

static int sleep_ms(int ms) {
    struct timespec ts = {0, ms * 1000 * 1000};
    return nanosleep(&ts, NULL);
}

static int fast_1ms(reel_actor_ctx *ctx, const reel_view *in, size_t n, reel_actor_out *out) {
    sleep_ms(1);
    return pass(ctx, in, n, out);
}

static int slow_5ms(reel_actor_ctx *ctx, const reel_view *in, size_t n, reel_actor_out *out) {
    sleep_ms(5);
    return pass(ctx, in, n, out);
}

static const reel_actor_def def_fast = {.name = "fast", .process = fast_1ms, .cpus = 0.25};
static const reel_actor_def def_slow5 = {.name = "slow5", .process = slow_5ms, .cpus = 0.25};

typedef struct scale_watch {
    feeder feed; /* first: the run's arg */
    uint32_t first[2], most[2], rounds;
} scale_watch;

/* Done once the autoscaler has had 3 rounds and given the slow stage more
 * workers than it started with, 5 at least. */
static void on_scale(void *arg, const reel_pipeline_status *s) {
    scale_watch *w = arg;
    for (int i = 0; i < 2; i++) {
        if (w->first[i] == 0)
            w->first[i] = s->stage[i].workers;
        if (s->stage[i].workers > w->most[i])
            w->most[i] = s->stage[i].workers;
    }
    w->rounds = s->autoscale_rounds;
    if (w->rounds >= 3 && w->most[1] > w->first[1] && w->most[1] >= 5)
        w->feed.done = true;
}

Test(pipeline, the_autoscaler_moves_workers_to_the_slow_stage) {
    reel_pipeline *p;
    TH_OK(reel_pipeline_new("scaled", &p));
    TH_OK(reel_pipeline_add(p, &def_fast, NULL));
    TH_OK(reel_pipeline_add(p, &def_slow5, NULL));
    reel_executor_config c = quick_config();
    c.autoscale_interval_s = 0.25;
    c.cpu_allocation_percentage = 1.0; /* 2 CPUs of 0.25-CPU workers: 8 of them in all */
    static scale_watch w;
    memset(&w, 0, sizeof w);
    feeder_start(&w.feed);
    reel_run_options ro = {.store = store_path,
                           .config = &c,
                           .next_input = feed,
                           .on_status = on_scale,
                           .arg = &w,
                           .flags = REEL_RUN_QUIET};
    reel_run_result res;
    TH_OK(reel_pipeline_run(p, &ro, &res));
    cr_assert_eq(res.outputs, w.feed.n);
    cr_assert_geq(w.rounds, 3, "%u autoscaler rounds in %zu inputs", w.rounds, w.feed.n);
    /* Started even, then the 5 ms stage got the workers. */
    cr_assert_gt(w.most[1], w.first[1], "slow stage: %u workers at first, at most %u", w.first[1],
                 w.most[1]);
    cr_assert_geq(w.most[1], 5, "slow stage had at most %u workers", w.most[1]);
    reel_run_result_free(&res);
    reel_pipeline_free(p);
    expect_clean((uint32_t)w.feed.n);
    feeder_end(&w.feed);
}

/* Passes its input on after 5 ms of CPU time: a stage that asks for a quarter
 * of a CPU and takes a whole one. */
static int burn(reel_actor_ctx *ctx, const reel_view *in, size_t n, reel_actor_out *out) {
    struct timespec t0, t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
    volatile uint64_t x = 0;
    do {
        for (int k = 0; k < 10000; k++)
            x += (uint64_t)k;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    } while ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) < 5000000L);
    return pass(ctx, in, n, out);
}

static const reel_actor_def def_burn = {.name = "burn", .process = burn, .cpus = 0.25};

static uint32_t burn_cpus; /* the CPUs the burning stage may have at most */

/* Done once, after 3 autoscaler rounds or more, the burning stage has no
 * more workers than burn_cpus, or after 40 rounds (10 s: a slow sanitizer
 * build measures late); keeps its workers then. The source goes on till
 * then: once it ends, the stages keep the workers that have work. */
static void on_burn(void *arg, const reel_pipeline_status *s) {
    scale_watch *w = arg;
    if (w->feed.done)
        return;
    if (s->stage[1].workers > w->most[1])
        w->most[1] = s->stage[1].workers;
    w->rounds = s->autoscale_rounds;
    w->first[1] = s->stage[1].workers; /* here: the workers when it is done */
    if ((w->rounds >= 3 && w->first[1] <= burn_cpus) || w->rounds >= 40)
        w->feed.done = true;
}

/* Workers that ask for a quarter of a CPU but take a whole one count for a
 * whole one: the autoscaler gives the stage no more of them than the CPUs
 * (with declared shares only, it gave it all 8 places, as a sleeping
 * stage gets). */
Test(pipeline, the_autoscaler_counts_a_worker_by_the_cpu_it_takes) {
    reel_pipeline *p;
    TH_OK(reel_pipeline_new("burning", &p));
    TH_OK(reel_pipeline_add(p, &def_fast, NULL));
    TH_OK(reel_pipeline_add(p, &def_burn, NULL));
    reel_executor_config c = quick_config();
    c.autoscale_interval_s = 0.25;
    c.cpu_allocation_percentage = 1.0;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    burn_cpus = (uint32_t)(cpus < 2 ? 2 : cpus);
    static scale_watch w;
    memset(&w, 0, sizeof w);
    feeder_start(&w.feed);
    reel_run_options ro = {.store = store_path,
                           .config = &c,
                           .next_input = feed,
                           .on_status = on_burn,
                           .arg = &w,
                           .flags = REEL_RUN_QUIET};
    reel_run_result res;
    TH_OK(reel_pipeline_run(p, &ro, &res));
    cr_assert_eq(res.outputs, w.feed.n);
    cr_assert_geq(w.rounds, 3, "%u autoscaler rounds in %zu inputs", w.rounds, w.feed.n);
    cr_assert_leq(w.first[1], burn_cpus,
                  "the burning stage has %u workers after %u rounds, on %ld CPUs (at most %u)",
                  w.first[1], w.rounds, cpus, w.most[1]);
    reel_run_result_free(&res);
    reel_pipeline_free(p);
    expect_clean((uint32_t)w.feed.n);
    feeder_end(&w.feed);
}

/* The workers each stage started with, from the first status. */
typedef struct start_watch {
    feeder feed; /* first: the run's arg */
    uint32_t workers[4];
    bool seen;
} start_watch;

static void on_start(void *arg, const reel_pipeline_status *s) {
    start_watch *w = arg;
    if (w->seen)
        return;
    for (uint32_t i = 0; i < 4 && i < s->n_stages; i++)
        w->workers[i] = s->stage[i].workers;
    w->seen = true;
    w->feed.done = true;
}

/* The CPUs left after every stage's first worker go a worker at a time to
 * the stages, those that ask for the most first within each round: on 1.9
 * CPUs, three light stages of 0.1 before a heavy one of 0.7 take 1.0, and
 * the heavy stage gets the second worker that fits (1.7), the light ones
 * what is left (in stage order, before, the light ones took 0.3 of the 0.9
 * and left the heavy one none). */
Test(pipeline, the_spare_cpus_go_to_the_heaviest_stage_first) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus < 2)
        cr_skip_test("1.9 CPUs to place need 2 CPUs");
    reel_pipeline *p;
    TH_OK(reel_pipeline_new("heavy last", &p));
    TH_OK(reel_pipeline_add(p, &def_pass, &(reel_stage_options){.cpus = 0.1}));
    TH_OK(reel_pipeline_add(p, &def_pass2, &(reel_stage_options){.cpus = 0.1}));
    TH_OK(reel_pipeline_add(p, &def_upper, &(reel_stage_options){.cpus = 0.1}));
    TH_OK(reel_pipeline_add(p, &def_append, &(reel_stage_options){.cpus = 0.7}));
    reel_executor_config c = quick_config();
    c.autoscale_interval_s = 0.05; /* a status early; the allocation is not changed */
    c.cpu_allocation_percentage = 1.9 / (double)cpus;
    static start_watch w;
    memset(&w, 0, sizeof w);
    feeder_start(&w.feed);
    reel_run_options ro = {.store = store_path,
                           .config = &c,
                           .next_input = feed,
                           .on_status = on_start,
                           .arg = &w,
                           .flags = REEL_RUN_QUIET | REEL_RUN_NO_AUTOSCALE};
    reel_run_result res;
    TH_OK(reel_pipeline_run(p, &ro, &res));
    cr_assert(w.seen);
    cr_assert_eq(w.workers[3], 2, "the heavy stage started with %u workers", w.workers[3]);
    cr_assert_eq(w.workers[0] + w.workers[1] + w.workers[2], 5, "light: %u %u %u", w.workers[0],
                 w.workers[1], w.workers[2]);
    cr_assert_eq(w.workers[2], 1, "the last light stage took a CPU share that was not left");
    cr_assert_eq(res.outputs, w.feed.n);
    reel_run_result_free(&res);
    reel_pipeline_free(p);
    expect_clean((uint32_t)w.feed.n);
    feeder_end(&w.feed);
}

/* ---- applying the autoscaler's changes ------------------------------------------ */

/* Where the workers of the next two tests write what they saw: the zygote
 * forks from the run, so what the test sets before it reaches them. */
static char trace_dir[256];

static void trace_path(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/%s", trace_dir, name);
}

static void trace_append(const char *name, const char *line) {
    char path[300];
    trace_path(path, sizeof path, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd < 0)
        return;
    ssize_t w = write(fd, line, strlen(line)); /* one short write: atomic with O_APPEND */
    (void)w;
    close(fd);
}

/* Every worker, as it starts, adds itself to "pids" and counts how many of
 * those are alive: workers only start, so the most ever alive together is
 * the most any of them counted. */
static int setup_counts_alive(reel_actor_ctx *ctx) {
    (void)ctx;
    char line[64], path[300];
    snprintf(line, sizeof line, "%d\n", (int)getpid());
    trace_append("pids", line);
    trace_path(path, sizeof path, "pids");
    FILE *f = fopen(path, "r");
    int alive = 0, pid;
    while (f && fscanf(f, "%d", &pid) == 1) {
        pid_t ppid;
        char state;
        alive += th_proc_stat(pid, &ppid, &state, NULL) && state != 'Z' && state != 'X';
    }
    if (f)
        fclose(f);
    snprintf(line, sizeof line, "%d\n", alive);
    trace_append("alive", line);
    return 0;
}

/* Leaves slowly: a removed worker still holds its CPU meanwhile. */
static void teardown_slowly(reel_actor_ctx *ctx) {
    (void)ctx;
    th_sleep_ms(1500);
}

/* How many workers have started so far (lines in "alive"). */
static int workers_started(void) {
    char path[300];
    trace_path(path, sizeof path, "alive");
    FILE *f = fopen(path, "r");
    int n = 0, alive;
    while (f && fscanf(f, "%d", &alive) == 1)
        n++;
    if (f)
        fclose(f);
    return n;
}

/* A task takes 400 ms until a third worker, plod's second, has started,
 * and nothing after: its backlog lasts as long as that takes on this machine
 * (24 s at most for the test's 60 inputs), and no longer. */
static int plod(reel_actor_ctx *ctx, const reel_view *in, size_t n, reel_actor_out *out) {
    for (int i = 0; i < 40 && workers_started() < 3; i++)
        sleep_ms(10);
    return pass(ctx, in, n, out);
}

static const reel_actor_def def_quick = {.name = "quick",
                                         .process = pass,
                                         .setup = setup_counts_alive,
                                         .teardown = teardown_slowly,
                                         .cpus = 1};
static const reel_actor_def def_plod = {
    .name = "plod", .process = plod, .setup = setup_counts_alive, .cpus = 1};

Test(pipeline, additions_wait_until_removed_workers_have_exited) {
    reel_node node;
    TH_OK(reel__node_detect(1.0, &node));
    if (node.cpus < 2)
        cr_skip_test("fewer than 2 CPUs: no room to move a worker");
    snprintf(trace_dir, sizeof trace_dir, "%s", th_store_path());
    cr_assert_eq(mkdir(trace_dir, 0700), 0);
    reel_pipeline *p;
    TH_OK(reel_pipeline_new("budget", &p));
    TH_OK(reel_pipeline_add(p, &def_quick, NULL));
    TH_OK(reel_pipeline_add(p, &def_plod, NULL));
    enum { N = 60 }; /* all in quick's queue at once: done at once */
    static reel_id in[N];
    put_texts(in, N, "x");
    reel_executor_config c = quick_config();
    /* Room for two 1-CPU workers and no third: quick's and plod's. quick is
     * done at once; its worker is removed and takes 1.5 s to leave, and a
     * round gives its CPU to plod, whose backlog lasts until it has it. */
    c.cpu_allocation_percentage = fmin(1.0, 2.5 / node.cpus);
    c.autoscale_interval_s = 1;
    reel_run_options ro = {
        .store = store_path, .config = &c, .inputs = in, .n_inputs = N, .flags = REEL_RUN_QUIET};
    reel_run_result res;
    TH_OK(reel_pipeline_run(p, &ro, &res));
    cr_assert_eq(res.outputs, N);
    char path[300];
    trace_path(path, sizeof path, "alive");
    FILE *f = fopen(path, "r");
    cr_assert(f);
    int most = 0, starts = 0, alive;
    while (fscanf(f, "%d", &alive) == 1) {
        starts++;
        most = alive > most ? alive : most;
    }
    fclose(f);
    cr_assert_geq(starts, 3, "only %d workers started: plod never got quick's CPU", starts);
    cr_assert_leq(most, 2, "%d workers of 1 CPU alive at once, with room for 2", most);
    reel_run_result_free(&res);
    reel_pipeline_free(p);
    expect_clean(N);
    for (int i = 0; i < N; i++)
        TH_OK(reel_obj_delete(store, &in[i]));
    char *names[] = {"pids", "alive"};
    for (int i = 0; i < 2; i++) {
        trace_path(path, sizeof path, names[i]);
        unlink(path);
    }
    rmdir(trace_dir);
}

/* Ready only after 1.5 s, longer than the grace (1 s at a 2 s interval). */
static int setup_slowly(reel_actor_ctx *ctx) {
    (void)ctx;
    th_sleep_ms(1500);
    char line[32];
    snprintf(line, sizeof line, "%llu\n", (unsigned long long)th_monotonic_ns());
    trace_append("ready", line);
    return 0;
}

static int plod_25ms(reel_actor_ctx *ctx, const reel_view *in, size_t n, reel_actor_out *out) {
    sleep_ms(25);
    return pass(ctx, in, n, out);
}

static const reel_actor_def def_lazy = {
    .name = "lazy", .process = plod_25ms, .setup = setup_slowly, .cpus = 0.2};

typedef struct setup_seen {
    feeder feed; /* first: the run's arg */
    size_t n;
    uint64_t at[4096];
    uint32_t workers[4096], setup[4096];
    uint64_t done[4096]; /* items the stage had done */
    bool in_grace, grace_over;
} setup_seen;

/* Done once a status has shown the worker working (so the driver has its
 * READY) and still in its grace, and a later one its grace over. */
static void on_setup_seen(void *arg, const reel_pipeline_status *s) {
    setup_seen *w = arg;
    const reel_stage_status *st = &s->stage[0];
    if (w->n < 4096) {
        w->at[w->n] = th_monotonic_ns();
        w->workers[w->n] = st->workers;
        w->setup[w->n] = st->workers_setup;
        w->done[w->n] = st->items_in;
        w->n++;
    }
    if (st->items_in > 0 && st->workers == 1 && st->workers_setup == 1)
        w->in_grace = true;
    if (w->in_grace && st->workers == 1 && st->workers_setup == 0)
        w->grace_over = true;
    w->feed.done = w->grace_over;
}

/* The grace counts from ready, not from the start: a worker 1.5 s in setup,
 * with a grace of 1 s, is still in its grace once it works, and then leaves
 * it for good. What is asserted is that order, never how long anything took:
 * inputs keep coming until the grace is over. */
Test(pipeline, a_worker_slow_to_set_up_gets_its_grace_from_ready) {
    snprintf(trace_dir, sizeof trace_dir, "%s", th_store_path());
    cr_assert_eq(mkdir(trace_dir, 0700), 0);
    reel_pipeline *p;
    TH_OK(reel_pipeline_new("grace", &p));
    TH_OK(reel_pipeline_add(p, &def_lazy, &(reel_stage_options){.max_workers = 1}));
    reel_executor_config c = quick_config();
    c.autoscale_interval_s = 2; /* a grace of 1 s: half an interval */
    c.logging_interval = 0.05;
    static setup_seen w;
    memset(&w, 0, sizeof w);
    feeder_start(&w.feed);
    reel_run_options ro = {.store = store_path,
                           .config = &c,
                           .next_input = feed,
                           .on_status = on_setup_seen,
                           .arg = &w,
                           .flags = REEL_RUN_QUIET};
    reel_run_result res;
    TH_OK(reel_pipeline_run(p, &ro, &res));
    cr_assert_eq(res.outputs, w.feed.n);
    char path[300];
    trace_path(path, sizeof path, "ready");
    FILE *f = fopen(path, "r");
    cr_assert(f);
    unsigned long long ready = 0;
    cr_assert_eq(fscanf(f, "%llu", &ready), 1);
    fclose(f);
    unlink(path);
    rmdir(trace_dir);
    cr_assert(w.in_grace, "no status showed the working worker in its grace (%zu in all)", w.n);
    cr_assert(w.grace_over, "no status showed its grace over (%zu in all, %zu inputs)", w.n,
              w.feed.n);
    /* Before ready: in setup. Once out of its grace: never back in. */
    bool left = false;
    for (size_t i = 0; i < w.n; i++) {
        if (w.at[i] < ready)
            cr_assert_eq(w.setup[i], w.workers[i], "a worker in setup not counted so");
        if (left)
            cr_assert_eq(w.setup[i], 0, "status %zu: back in its grace after it ended", i);
        left = left || (w.done[i] > 0 && w.workers[i] == 1 && w.setup[i] == 0);
    }
    reel_run_result_free(&res);
    reel_pipeline_free(p);
    expect_clean((uint32_t)w.feed.n);
    feeder_end(&w.feed);
}

/* ---- placement reaches the workers ---------------------------------------------- */

/* Outputs "<its CPU list>;<CUDA_VISIBLE_DEVICES>". */
static int where(reel_actor_ctx *ctx, const reel_view *in, size_t n, reel_actor_out *out) {
    (void)ctx, (void)in, (void)n;
    cpu_set_t set;
    char text[256];
    int len = 0;
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        return -errno;
    for (int c = 0; c < CPU_SETSIZE && len < 200; c++)
        if (CPU_ISSET(c, &set))
            len += snprintf(text + len, sizeof text - (size_t)len, "%s%d", len ? "," : "", c);
    const char *cvd = getenv("CUDA_VISIBLE_DEVICES");
    len += snprintf(text + len, sizeof text - (size_t)len, ";%s", cvd ? cvd : "(unset)");
    void *buf;
    int rc = reel_actor_output(out, (uint64_t)len, NULL, 0, &buf);
    if (rc == 0)
        memcpy(buf, text, (size_t)len);
    return rc;
}

static const reel_actor_def def_where = {.name = "where", .process = where, .cpus = 1};

/* ---- batch mode's allocation, and the live status of a real run ---------------- */

static int pass_10ms(reel_actor_ctx *ctx, const reel_view *in, size_t n, reel_actor_out *out) {
    sleep_ms(10);
    return pass(ctx, in, n, out);
}

static const reel_actor_def def_b1 = {.name = "b1", .process = pass_10ms, .cpus = 0.25};
static const reel_actor_def def_b2 = {.name = "b2", .process = pass_10ms, .cpus = 0.25};
static const reel_actor_def def_b3 = {.name = "b3", .process = pass_10ms, .cpus = 0.25};

typedef struct batch_watch {
    uint32_t most[3];
    uint32_t samples, overlaps;
} batch_watch;

static void on_batch(void *arg, const reel_pipeline_status *s) {
    batch_watch *w = arg;
    uint32_t busy_stages = 0;
    for (int i = 0; i < 3; i++) {
        if (s->stage[i].workers > w->most[i])
            w->most[i] = s->stage[i].workers;
        busy_stages += s->stage[i].workers > 0;
    }
    w->samples++;
    w->overlaps += busy_stages > 1;
}

Test(pipeline, batch_mode_gives_each_stage_all_the_workers_that_fit) {
    /* One CPU for this test process and the workers it forks: a small budget,
     * which the executor measures as the test does. */
    cpu_set_t mine, one;
    cr_assert_eq(sched_getaffinity(0, sizeof mine, &mine), 0);
    CPU_ZERO(&one);
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &mine)) {
            CPU_SET(c, &one);
            break;
        }
    cr_assert_eq(sched_setaffinity(0, sizeof one, &one), 0);
    reel_node node;
    TH_OK(reel__node_detect_cpus(1.0, &node));
    uint32_t fit = (uint32_t)(node.cpus / 0.25 + 1e-9);
    cr_assert_geq(fit, 1, "a node of %g CPUs", node.cpus);

    reel_pipeline *p;
    TH_OK(reel_pipeline_new("batched", &p));
    TH_OK(reel_pipeline_add(p, &def_b1, NULL));
    TH_OK(reel_pipeline_add(p, &def_b2, &(reel_stage_options){.max_workers = 2}));
    TH_OK(reel_pipeline_add(p, &def_b3, NULL));
    enum { N = 24 }; /* more tasks than workers: the task count caps nothing */
    static reel_id in[N];
    put_texts(in, N, "x");
    reel_executor_config c = quick_config();
    c.execution_mode = REEL_EXEC_BATCH;
    c.cpu_allocation_percentage = 1.0;
    c.logging_interval = 0.01; /* on_status many times while each stage runs */
    batch_watch w = {0};
    reel_run_options ro = {.store = store_path,
                           .config = &c,
                           .inputs = in,
                           .n_inputs = N,
                           .on_status = on_batch,
                           .arg = &w,
                           .flags = REEL_RUN_QUIET | REEL_RUN_NO_AUTOSCALE};
    reel_run_result res;
    TH_OK(reel_pipeline_run(p, &ro, &res));
    sched_setaffinity(0, sizeof mine, &mine);
    cr_assert_eq(res.outputs, N);
    uint32_t want[3] = {fit, fit < 2 ? fit : 2, fit};
    for (int i = 0; i < 3; i++)
        cr_assert_eq(w.most[i], want[i],
                     "stage %d ran %u workers, not %u (node %g CPUs, %u samples)", i + 1, w.most[i],
                     want[i], node.cpus, w.samples);
    cr_assert_eq(w.overlaps, 0, "two stages had workers at once");
    reel_run_result_free(&res);
    reel_pipeline_free(p);
    expect_clean(N);
    for (int i = 0; i < N; i++)
        TH_OK(reel_obj_delete(store, &in[i]));
}

typedef struct live_inspect {
    char name[64];
    bool done;
    th_result r;
} live_inspect;

/* In the driver, between two rounds of its loop: the run is live and has just
 * published what it reports. */
static void inspect_live(void *arg, const reel_pipeline_status *s) {
    live_inspect *l = arg;
    if (l->done || s->finished || s->stage[1].finished || s->stage[1].workers == 0)
        return;
    l->r = th_run_inspect(NULL, (const char *const[]){"pipeline", "--json", l->name, NULL});
    l->done = true;
}

Test(pipeline, reel_inspect_shows_a_live_run) {
    if (!getenv("REEL_INSPECT") || !*getenv("REEL_INSPECT"))
        cr_skip_test("REEL_INSPECT is not set (ctest sets it to the reel-inspect binary)");
    reel_pipeline *p;
    TH_OK(reel_pipeline_new("live", &p));
    TH_OK(reel_pipeline_add(p, &def_pass, NULL));
    TH_OK(reel_pipeline_add(p, &def_slow, &(reel_stage_options){.workers = 2}));
    enum { N = 40 };
    static reel_id in[N];
    put_texts(in, N, "x");
    reel_executor_config c = quick_config();
    c.logging_interval = 0.02;
    live_inspect l = {.done = false};
    snprintf(l.name, sizeof l.name, "live-inspect-%ld", (long)getpid());
    reel_run_options ro = {.store = store_path,
                           .config = &c,
                           .inputs = in,
                           .n_inputs = N,
                           .on_status = inspect_live,
                           .arg = &l,
                           .status_name = l.name,
                           .flags = REEL_RUN_QUIET};
    reel_run_result res;
    TH_OK(reel_pipeline_run(p, &ro, &res));
    cr_assert(l.done, "no status while the slow stage ran");
    cr_assert_eq(l.r.code, 0, "exit %d; stderr: %s", l.r.code, l.r.err);
    const char *j = l.r.out;
    cr_assert_eq(j[0], '{', "not JSON: %s", j);
    cr_assert(strstr(j, "\"name\":\"live\""), "%s", j);
    cr_assert(strstr(j, "\"state\":\"running\""), "%s", j);
    cr_assert(strstr(j, "\"driver_alive\":true"), "%s", j);
    cr_assert(strstr(j, "{\"name\":\"pass\",\"workers\":"), "%s", j);
    cr_assert(strstr(j, "{\"name\":\"slow\",\"workers\":2,"), "%s", j);
    cr_assert(strstr(j, "\"tasks_per_s\":"), "%s", j);
    th_result_free(&l.r);
    reel_run_result_free(&res);
    reel_pipeline_free(p);
    expect_clean(N);
    for (int i = 0; i < N; i++)
        TH_OK(reel_obj_delete(store, &in[i]));
}

Test(pipeline, workers_are_pinned_and_see_no_gpu_they_did_not_ask_for) {
    cpu_set_t mine;
    TH_OK(sched_getaffinity(0, sizeof mine, &mine) == 0 ? 0 : -errno);
    if (CPU_COUNT(&mine) < 2)
        cr_skip_test("one CPU: nothing to pin apart");
    reel_pipeline *p;
    TH_OK(reel_pipeline_new("where", &p));
    TH_OK(reel_pipeline_add(p, &def_where, &(reel_stage_options){.workers = 1}));
    reel_id in = put_text("?");
    reel_executor_config c = quick_config();
    static collected out;
    reel_run_options ro = {.store = store_path,
                           .config = &c,
                           .inputs = &in,
                           .n_inputs = 1,
                           .on_output = keep,
                           .arg = &out,
                           .flags = REEL_RUN_QUIET};
    TH_OK(reel_pipeline_run(p, &ro, NULL));
    cr_assert_eq(out.n, 1);
    /* One whole CPU of its own: the first of the node's; CPU-only: no GPU visible. */
    int first = 0;
    while (!CPU_ISSET(first, &mine))
        first++;
    char want[64];
    snprintf(want, sizeof want, "%d;-1", first);
    cr_assert_str_eq(out.items[0], want);
    collected_free(&out);
    reel_pipeline_free(p);
    TH_OK(reel_obj_delete(store, &in));
    expect_clean(0);
}

/* A run that repeats an earlier one's first stage must not take the earlier
 * run's outputs, which the caller kept, for its own intermediates. */
typedef struct kept {
    size_t n;
    reel_id ids[64];
    size_t owned; /* outputs handed over still owned by the driver: none should be */
} kept;

static void keep_ids(void *arg, const reel_task_result *r) {
    kept *k = arg;
    static reel_obj_info info[256];
    size_t n = 0;
    if (reel_store_objects(store, info, 256, &n) != 0)
        n = 0;
    for (uint32_t i = 0; i < r->n_outputs && k->n < 64; i++) {
        k->ids[k->n++] = r->outputs[i];
        for (size_t j = 0; j < n && j < 256; j++)
            k->owned += reel_id_equal(&info[j].id, &r->outputs[i]) && info[j].owner_pid != 0;
    }
}

Test(pipeline, a_second_run_leaves_the_first_runs_outputs_alone) {
    reel_id in[20];
    put_texts(in, 20, "keep me");
    reel_executor_config c = quick_config();
    reel_pipeline *p1, *p2;
    TH_OK(reel_pipeline_new("first", &p1));
    TH_OK(reel_pipeline_add(p1, &def_append, NULL));
    TH_OK(reel_pipeline_new("second", &p2));
    TH_OK(reel_pipeline_add(p2, &def_append, NULL));
    TH_OK(reel_pipeline_add(p2, &def_upper, NULL));
    static kept k1;
    static collected second;
    reel_run_options ro = {.store = store_path,
                           .config = &c,
                           .inputs = in,
                           .n_inputs = 20,
                           .on_output = keep_ids,
                           .arg = &k1,
                           .flags = REEL_RUN_QUIET};
    TH_OK(reel_pipeline_run(p1, &ro, NULL));
    cr_assert_eq(k1.n, 20);
    cr_assert_eq(k1.owned, 0, "%zu outputs were handed over still owned by the driver", k1.owned);
    ro.on_output = keep;
    ro.arg = &second;
    TH_OK(reel_pipeline_run(p2, &ro, NULL));
    cr_assert_eq(second.n, 20);
    cr_assert_str_eq(second.items[0], "KEEP MEA");
    for (size_t i = 0; i < k1.n; i++) {
        int present = 0;
        TH_OK(reel_obj_contains(store, &k1.ids[i], &present));
        cr_assert(present, "the first run's output %zu is gone", i);
        TH_OK(reel_obj_delete(store, &k1.ids[i]));
    }
    collected_free(&second);
    reel_pipeline_free(p1);
    reel_pipeline_free(p2);
    for (int i = 0; i < 20; i++)
        TH_OK(reel_obj_delete(store, &in[i]));
    expect_clean(0);
}

/* ---- fan-out, fan-in and artifacts ------------------------------------------------ */

/* An item of the fan-out tests: its text, and the artifacts it names. */
typedef struct fan_item {
    char text[48];
    uint32_t n_arts;
    reel_id art[2];
    reel_id dropped; /* an artifact its maker did not carry on: gone by now */
    bool has_dropped;
} fan_item;

/* "<name>:<n>[:plain]" -> n items "<name>:<i>", each after two artifacts of
 * its own ("a<i>", "b<i>"); with ":plain", no artifacts. */
static int fan(reel_actor_ctx *ctx, const reel_view *in, size_t n, reel_actor_out *out) {
    (void)ctx;
    for (size_t i = 0; i < n; i++) {
        char text[64], name[32];
        snprintf(text, sizeof text, "%.*s", (int)in[i].size, (const char *)in[i].data);
        int count = 0;
        if (sscanf(text, "%31[^:]:%d", name, &count) != 2)
            return -EINVAL;
        bool plain = strstr(text, ":plain") != NULL;
        for (int k = 0; k < count; k++) {
            fan_item item = {0};
            snprintf(item.text, sizeof item.text, "%s:%d", name, k);
            for (uint32_t a = 0; !plain && a < 2; a++) {
                char *buf;
                int rc = reel_actor_artifact(out, 16, NULL, 0, &item.art[a], (void **)&buf);
                if (rc)
                    return rc;
                snprintf(buf, 16, "%c%d", 'a' + (int)a, k % 1000);
                item.n_arts++;
            }
            void *buf;
            int rc = reel_actor_output(out, sizeof item, NULL, 0, &buf);
            if (rc)
                return rc;
            memcpy(buf, &item, sizeof item);
        }
    }
    return 0;
}

/* Reads an artifact's text into buf; -ENOENT if it is not in the store. */
static int art_text(reel_actor_ctx *ctx, const reel_id *id, char *buf, size_t cap) {
    reel_view v;
    int rc = reel_obj_get(reel_actor_store(ctx), id, 1, 0, &v);
    if (rc)
        return rc;
    snprintf(buf, cap, "%.*s", (int)v.size, (const char *)v.data);
    reel_obj_release(reel_actor_store(ctx), id);
    return 0;
}

/* Keeps an item's first artifact (carried on, checked to be "a<i>") and
 * drops its second; fails for good on items of a name starting "fail". */
static int keep_first(reel_actor_ctx *ctx, const reel_view *in, size_t n, reel_actor_out *out) {
    for (size_t i = 0; i < n; i++) {
        if (in[i].size != sizeof(fan_item))
            return -EINVAL;
        fan_item item;
        memcpy(&item, in[i].data, sizeof item);
        if (strncmp(item.text, "fail", 4) == 0) {
            reel_actor_set_error(ctx, "refuses %s", item.text);
            return -EIO;
        }
        if (item.n_arts == 2) {
            char text[16], want[16];
            int rc = art_text(ctx, &item.art[0], text, sizeof text);
            if (rc)
                return rc;
            snprintf(want, sizeof want, "a%s", strchr(item.text, ':') + 1);
            if (strcmp(text, want) != 0) {
                reel_actor_set_error(ctx, "artifact %s of %s, not %s", text, item.text, want);
                return -EBADMSG;
            }
            if ((rc = reel_actor_carry(out, &item.art[0])) != 0)
                return rc;
            cr_assert_eq(reel_actor_carry(out, &item.art[0]), -EEXIST);
            item.dropped = item.art[1];
            item.has_dropped = true;
            item.n_arts = 1;
        }
        void *buf;
        int rc = reel_actor_output(out, sizeof item, NULL, 0, &buf);
        if (rc)
            return rc;
        memcpy(buf, &item, sizeof item);
    }
    return 0;
}

/* Every item of one input at once: "<name>: <count> items" - after checking
 * that they share a name, that each carried artifact is still readable and
 * each dropped one gone. */
static int gather_all(reel_actor_ctx *ctx, const reel_view *in, size_t n, reel_actor_out *out) {
    char name[48] = "";
    for (size_t i = 0; i < n; i++) {
        if (in[i].size != sizeof(fan_item))
            return -EINVAL;
        fan_item item;
        memcpy(&item, in[i].data, sizeof item);
        char mine[48];
        snprintf(mine, sizeof mine, "%.*s", (int)(strchr(item.text, ':') - item.text), item.text);
        if (i == 0)
            snprintf(name, sizeof name, "%s", mine);
        if (strcmp(name, mine) != 0) {
            reel_actor_set_error(ctx, "items of %s and %s in one gather", name, mine);
            return -EBADMSG;
        }
        char text[16];
        if (item.n_arts && art_text(ctx, &item.art[0], text, sizeof text) != 0) {
            reel_actor_set_error(ctx, "the carried artifact of %s is gone", item.text);
            return -EBADMSG;
        }
        int present = 0;
        if (item.has_dropped &&
            reel_obj_contains(reel_actor_store(ctx), &item.dropped, &present) == 0 && present) {
            reel_actor_set_error(ctx, "the dropped artifact of %s is still there", item.text);
            return -EBADMSG;
        }
    }
    char *buf;
    int rc = reel_actor_output(out, 64, NULL, 0, (void **)&buf);
    if (rc)
        return rc;
    memset(buf, 0, 64);
    snprintf(buf, 64, "%s: %zu items", name, n);
    return 0;
}

/* Carries an ID that is no artifact of its input. */
static int carry_stranger(reel_actor_ctx *ctx, const reel_view *in, size_t n, reel_actor_out *out) {
    (void)ctx, (void)in, (void)n;
    reel_id id;
    reel_id_random(&id);
    int rc = reel_actor_carry(out, &id);
    void *buf;
    return rc ? rc : reel_actor_output(out, 1, NULL, 0, &buf);
}

/* Ends with an artifact that no item follows. */
static int artifact_last(reel_actor_ctx *ctx, const reel_view *in, size_t n, reel_actor_out *out) {
    (void)ctx, (void)in, (void)n;
    reel_id id;
    void *buf;
    return reel_actor_artifact(out, 4, NULL, 0, &id, &buf);
}

static const reel_actor_def def_fan = {.name = "fan", .process = fan, .cpus = 0.2};
static const reel_actor_def def_keep_first = {
    .name = "keep-first", .process = keep_first, .cpus = 0.2, .max_retries = REEL_ACTOR_NONE};
static const reel_actor_def def_gather = {.name = "gather", .process = gather_all, .cpus = 0.2};
static const reel_actor_def def_stranger = {
    .name = "stranger", .process = carry_stranger, .cpus = 0.2, .max_retries = REEL_ACTOR_NONE};
static const reel_actor_def def_art_last = {
    .name = "artifact-last", .process = artifact_last, .cpus = 0.2, .max_retries = REEL_ACTOR_NONE};

/* fan -> keep-first -> gather, over the given inputs, streaming or batch. */
static int run_fan(const char *const *texts, size_t n, bool ignore, reel_execution_mode mode,
                   collected *out, reel_run_result *res, reel_id *in) {
    reel_pipeline *p;
    TH_OK(reel_pipeline_new("fan", &p));
    TH_OK(reel_pipeline_add(p, &def_fan, NULL));
    TH_OK(reel_pipeline_add(p, &def_keep_first, NULL));
    TH_OK(reel_pipeline_add(p, &def_gather, &(reel_stage_options){.gather = true}));
    for (size_t i = 0; i < n; i++)
        in[i] = put_text(texts[i]);
    reel_executor_config c = quick_config();
    c.ignore_failures = ignore;
    c.execution_mode = mode;
    reel_run_options o = {.store = store_path,
                          .config = &c,
                          .inputs = in,
                          .n_inputs = n,
                          .on_output = keep,
                          .arg = out,
                          .flags = REEL_RUN_QUIET};
    int rc = reel_pipeline_run(p, &o, res);
    reel_pipeline_free(p);
    return rc;
}

Test(pipeline, a_gather_stage_takes_every_item_of_one_input_and_artifacts_live_as_long_as_needed) {
    /* v10's 150 items and their 300 artifacts are more than a result carries
     * (its output list), and more than a task record (its gather's input list). */
    static const char *const texts[] = {"v0:5", "v1:0", "v2:21",      "v3:1",  "failv4:3", "v5:17",
                                        "v6:2", "v7:9", "v8:3:plain", "v9:13", "v10:150"};
    const size_t n = sizeof texts / sizeof *texts;
    for (int mode = 0; mode < 2; mode++) {
        static collected out;
        reel_id in[16];
        reel_run_result res;
        TH_OK(
            run_fan(texts, n, true, mode ? REEL_EXEC_BATCH : REEL_EXEC_STREAMING, &out, &res, in));
        /* v1 made nothing, failv4's items all failed: no gather for either. */
        cr_assert_eq(out.n, 9, "%zu gathers (mode %d)", out.n, mode);
        qsort(out.items, out.n, sizeof *out.items, cmp_str);
        static const char *const want[] = {"v0: 5 items", "v10: 150 items", "v2: 21 items",
                                           "v3: 1 items", "v5: 17 items",   "v6: 2 items",
                                           "v7: 9 items", "v8: 3 items",    "v9: 13 items"};
        for (size_t i = 0; i < out.n; i++)
            cr_assert_str_eq(out.items[i], want[i], "mode %d", mode);
        cr_assert_eq(res.failed, 3, "failv4's 3 items (mode %d)", mode);
        cr_assert_eq(res.final.stage[2].tasks_done, 9);
        cr_assert_eq(res.final.stage[1].tasks_done, 5 + 21 + 1 + 17 + 2 + 9 + 3 + 13 + 150);
        collected_free(&out);
        reel_run_result_free(&res);
        /* Every item and artifact the run made is gone: only the inputs stay. */
        expect_clean((uint32_t)n);
        for (size_t i = 0; i < n; i++)
            TH_OK(reel_obj_delete(store, &in[i]));
    }
}

/* A source fed over time, and what the run said of each input: the
 * collected outputs first, so that keep() takes it as its own. */
typedef struct drip {
    collected out;
    const reel_id *in;
    size_t n, given, calls;
    size_t failures, failures_of[16], ungathered[16];
} drip;

/* Gives an input on every third call only: "none yet" (-EAGAIN) between. */
static int drip_next(void *arg, reel_id *id) {
    drip *d = arg;
    if (d->given == d->n)
        return 0;
    if (d->calls++ % 3 != 2)
        return -EAGAIN;
    *id = d->in[d->given++];
    return 1;
}

static size_t drip_index(const drip *d, const reel_id *id) {
    for (size_t i = 0; i < d->n; i++)
        if (reel_id_equal(&d->in[i], id))
            return i;
    cr_assert_fail("an origin that is no input");
    return 0;
}

static void drip_failure(void *arg, const reel_failure *f) {
    drip *d = arg;
    d->failures++;
    d->failures_of[drip_index(d, &f->origin)]++;
    cr_assert(strstr(f->error, "refuses"), "%s", f->error);
}

static void drip_ungathered(void *arg, const reel_id *origin) {
    drip *d = arg;
    size_t i = drip_index(d, origin);
    /* After its failures, if it had any. */
    cr_assert(d->failures_of[i] == 0 || d->failures_of[i] == 3, "input %zu", i);
    d->ungathered[i]++;
}

/* A source that has nothing yet (-EAGAIN) is asked again, in both modes, and
 * the run ends with its last input; each failure is said as it happens, and
 * each input none of whose items reached the gathering stage is said once:
 * one that made nothing (v1) and one whose items all failed (failv4). */
Test(pipeline, a_source_fed_over_time_and_failures_said_as_they_happen) {
    static const char *const texts[] = {"v0:5", "v1:0", "v2:3", "failv4:3", "v5:2"};
    const size_t n = sizeof texts / sizeof *texts;
    for (int mode = 0; mode < 2; mode++) {
        reel_pipeline *p;
        TH_OK(reel_pipeline_new("drip", &p));
        TH_OK(reel_pipeline_add(p, &def_fan, NULL));
        TH_OK(reel_pipeline_add(p, &def_keep_first, NULL));
        TH_OK(reel_pipeline_add(p, &def_gather, &(reel_stage_options){.gather = true}));
        reel_id in[8];
        for (size_t i = 0; i < n; i++)
            in[i] = put_text(texts[i]);
        static drip d;
        memset(&d, 0, sizeof d);
        d.in = in;
        d.n = n;
        reel_executor_config c = quick_config();
        c.ignore_failures = true;
        c.execution_mode = mode ? REEL_EXEC_BATCH : REEL_EXEC_STREAMING;
        reel_run_options o = {.store = store_path,
                              .config = &c,
                              .next_input = drip_next,
                              .on_output = keep,
                              .on_failure = drip_failure,
                              .on_ungathered = drip_ungathered,
                              .arg = &d,
                              .flags = REEL_RUN_QUIET};
        reel_run_result res;
        TH_OK(reel_pipeline_run(p, &o, &res));
        reel_pipeline_free(p);
        cr_assert_eq(d.given, n, "mode %d", mode);
        cr_assert_eq(d.out.n, 3, "%zu gathers (mode %d)", d.out.n, mode);
        cr_assert_eq(d.failures, 3, "mode %d", mode);
        cr_assert_eq(d.failures_of[3], 3, "mode %d", mode);
        for (size_t i = 0; i < n; i++)
            cr_assert_eq(d.ungathered[i], i == 1 || i == 3 ? 1u : 0u, "input %zu (mode %d)", i,
                         mode);
        cr_assert_eq(res.n_failures, 3);
        collected_free(&d.out);
        reel_run_result_free(&res);
        expect_clean((uint32_t)n);
        for (size_t i = 0; i < n; i++)
            TH_OK(reel_obj_delete(store, &in[i]));
    }
}

Test(pipeline, a_failed_run_deletes_the_artifacts_it_holds) {
    static const char *const texts[] = {"v0:20", "v1:20", "failv2:1", "v3:20"};
    static collected out;
    reel_id in[4];
    reel_run_result res;
    int rc = run_fan(texts, 4, false, REEL_EXEC_STREAMING, &out, &res, in);
    cr_assert_eq(rc, -EIO, "%s", res.error);
    cr_assert(strstr(res.error, "refuses failv2:0"), "%s", res.error);
    collected_free(&out);
    reel_run_result_free(&res);
    expect_clean(4);
    for (size_t i = 0; i < 4; i++)
        TH_OK(reel_obj_delete(store, &in[i]));
}

/* Two items for each one, of the same name. */
static int twice(reel_actor_ctx *ctx, const reel_view *in, size_t n, reel_actor_out *out) {
    (void)ctx;
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < 2; k++) {
            void *buf;
            int rc = reel_actor_output(out, in[i].size, NULL, 0, &buf);
            if (rc)
                return rc;
            memcpy(buf, in[i].data, in[i].size);
        }
    return 0;
}

static const reel_actor_def def_twice = {.name = "twice", .process = twice, .cpus = 0.2};

Test(pipeline, one_stage_may_gather_and_it_takes_one_item_per_task_before_it) {
    reel_pipeline *p;
    TH_OK(reel_pipeline_new("fan", &p));
    TH_OK(reel_pipeline_add(p, &def_fan, NULL));
    TH_OK(reel_pipeline_add(p, &def_twice, NULL));
    TH_OK(reel_pipeline_add(p, &def_gather, &(reel_stage_options){.gather = true}));
    TH_RC(reel_pipeline_add(p, &def_pass, &(reel_stage_options){.gather = true}), -EINVAL);
    cr_assert(strstr(reel_last_error(), "gathers already"), "%s", reel_last_error());
    reel_pipeline *q;
    TH_OK(reel_pipeline_new("batched", &q));
    TH_OK(reel_pipeline_add(q, &def_fan, &(reel_stage_options){.batch_size = 2}));
    TH_RC(reel_pipeline_add(q, &def_gather, &(reel_stage_options){.gather = true}), -EINVAL);
    cr_assert(strstr(reel_last_error(), "one item per task"), "%s", reel_last_error());
    TH_RC(reel_pipeline_add(q, &def_gather, NULL), 0);
    reel_pipeline_free(q);
    TH_OK(reel_pipeline_new("first", &q));
    TH_RC(reel_pipeline_add(q, &def_gather, &(reel_stage_options){.gather = true}), -EINVAL);
    reel_pipeline_free(q);
    /* 400 items, doubled: a gather of 800, through one input list. */
    reel_id in[2] = {put_text("big:400:plain"), put_text("small:4:plain")};
    reel_executor_config c = quick_config();
    static collected out;
    reel_run_options o = {.store = store_path,
                          .config = &c,
                          .inputs = in,
                          .n_inputs = 2,
                          .on_output = keep,
                          .arg = &out,
                          .flags = REEL_RUN_QUIET};
    reel_run_result res;
    TH_OK(reel_pipeline_run(p, &o, &res));
    cr_assert_eq(out.n, 2, "%zu", out.n);
    qsort(out.items, out.n, sizeof *out.items, cmp_str);
    cr_assert_str_eq(out.items[0], "big: 800 items");
    cr_assert_str_eq(out.items[1], "small: 8 items");
    cr_assert_eq(res.n_failures, 0);
    reel_run_result_free(&res);
    collected_free(&out);
    reel_pipeline_free(p);
    expect_clean(2);
    for (size_t i = 0; i < 2; i++)
        TH_OK(reel_obj_delete(store, &in[i]));
}

/* What the caller was handed: results, items, and their artifacts, each
 * result whole items with the artifacts before them. */
typedef struct handed_over {
    size_t results, items, artifacts;
    bool split; /* an item's artifacts and the item in two results */
    char first[48], last[48];
} handed_over;

static void hand_count(void *arg, const reel_task_result *r) {
    handed_over *h = arg;
    h->results++;
    uint32_t run = 0;
    for (uint32_t i = 0; i < r->n_outputs; i++) {
        reel_view v;
        bool art = r->artifacts >> i & 1;
        if (reel_obj_get(store, &r->outputs[i], 1, 0, &v) == 0) {
            if (!art && v.size == sizeof(fan_item)) {
                const fan_item *item = v.data;
                snprintf(h->items ? h->last : h->first, sizeof h->first, "%s", item->text);
                h->split |= item->n_arts != run;
            }
            reel_obj_release(store, &r->outputs[i]);
        }
        h->artifacts += art;
        h->items += !art;
        run = art ? run + 1 : 0;
        reel_obj_delete(store, &r->outputs[i]);
    }
}

Test(pipeline, a_last_stage_of_any_fan_out_hands_over_whole_items) {
    reel_pipeline *p;
    TH_OK(reel_pipeline_new("fan-last", &p));
    TH_OK(reel_pipeline_add(p, &def_fan, NULL));
    /* 100 items after 2 artifacts each: 300 outputs of one task. */
    reel_id in = put_text("wide:100");
    reel_executor_config c = quick_config();
    handed_over h = {0};
    reel_run_options o = {.store = store_path,
                          .config = &c,
                          .inputs = &in,
                          .n_inputs = 1,
                          .on_output = hand_count,
                          .arg = &h,
                          .flags = REEL_RUN_QUIET};
    reel_run_result res;
    TH_OK(reel_pipeline_run(p, &o, &res));
    cr_assert_eq(h.items, 100);
    cr_assert_eq(h.artifacts, 200);
    cr_assert(!h.split, "an item came apart from its artifacts");
    cr_assert_geq(h.results, 5, "%zu results of at most 64 outputs", h.results);
    cr_assert_str_eq(h.first, "wide:0");
    cr_assert_str_eq(h.last, "wide:99");
    cr_assert_eq(res.outputs, 100);
    reel_run_result_free(&res);
    reel_pipeline_free(p);
    expect_clean(1);
    TH_OK(reel_obj_delete(store, &in));
}

Test(pipeline, a_task_may_carry_only_its_inputs_artifacts) {
    reel_pipeline *p;
    TH_OK(reel_pipeline_new("carry", &p));
    TH_OK(reel_pipeline_add(p, &def_stranger, NULL));
    reel_id in[1] = {put_text("x")};
    reel_executor_config c = quick_config();
    c.ignore_failures = true;
    reel_run_options o = {
        .store = store_path, .config = &c, .inputs = in, .n_inputs = 1, .flags = REEL_RUN_QUIET};
    reel_run_result res;
    TH_OK(reel_pipeline_run(p, &o, &res));
    cr_assert_eq(res.n_failures, 1);
    cr_assert_eq(res.failures[0].status, -EPROTO);
    cr_assert(strstr(res.failures[0].error, "no artifact of its inputs"), "%s",
              res.failures[0].error);
    reel_run_result_free(&res);
    reel_pipeline_free(p);
    /* An artifact with no item after it fails the task in the worker. */
    TH_OK(reel_pipeline_new("last", &p));
    TH_OK(reel_pipeline_add(p, &def_art_last, NULL));
    TH_OK(reel_pipeline_run(p, &o, &res));
    cr_assert_eq(res.n_failures, 1);
    cr_assert_eq(res.failures[0].status, -EINVAL);
    cr_assert(strstr(res.failures[0].error, "must be followed by the item"), "%s",
              res.failures[0].error);
    reel_run_result_free(&res);
    reel_pipeline_free(p);
    expect_clean(1);
    TH_OK(reel_obj_delete(store, &in[0]));
}

typedef struct handed {
    uint32_t items, artifacts, bad;
} handed;

/* Each item the last stage passes on comes with its two artifacts in front
 * of it, all the caller's: checked, then deleted. */
static void take_handed(void *arg, const reel_task_result *r) {
    handed *h = arg;
    uint32_t run = 0; /* artifacts since the last item */
    for (uint32_t k = 0; k < r->n_outputs; k++) {
        if (r->artifacts >> k & 1) {
            h->artifacts++;
            run++;
        } else {
            h->items++;
            h->bad += run != 2;
            run = 0;
        }
        h->bad += (r->forwarded >> k & 1) != 0; /* all made by the run */
        reel_obj_delete(store, &r->outputs[k]);
    }
}

Test(pipeline, an_item_the_last_stage_passes_on_brings_its_artifacts) {
    reel_pipeline *p;
    TH_OK(reel_pipeline_new("handed", &p));
    TH_OK(reel_pipeline_add(p, &def_fan, NULL));
    TH_OK(reel_pipeline_add(p, &def_pass, NULL));
    reel_id in[2] = {put_text("v0:3"), put_text("v1:20")};
    reel_executor_config c = quick_config();
    handed h = {0};
    reel_run_options o = {.store = store_path,
                          .config = &c,
                          .inputs = in,
                          .n_inputs = 2,
                          .on_output = take_handed,
                          .arg = &h,
                          .flags = REEL_RUN_QUIET};
    reel_run_result res;
    TH_OK(reel_pipeline_run(p, &o, &res));
    cr_assert_eq(h.items, 23);
    cr_assert_eq(h.artifacts, 46);
    cr_assert_eq(h.bad, 0);
    cr_assert_eq(res.outputs, 23);
    reel_run_result_free(&res);
    reel_pipeline_free(p);
    expect_clean(2);
    for (int i = 0; i < 2; i++)
        TH_OK(reel_obj_delete(store, &in[i]));
}
