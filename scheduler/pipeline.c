/*
 * pipeline.c - pipelines of stage actors: building, describing, and the
 * executor (streaming and batch) that runs them over actor pools.
 *
 * One driver thread runs everything: it pulls the source, collects results
 * from every pool, moves the items on, submits tasks, and every
 * autoscale_interval_s hands the measurements to reel__autoscale() and
 * applies its allocation. Between rounds with nothing to do it sleeps in
 * reel__pools_wait(), which any worker's result, death or message ends.
 *
 * Who owns what: pipeline inputs are the caller's and are never deleted.
 * Every object a stage makes (other than the last stage's outputs, which go
 * to the caller) is in the run's "made" set until the next stage is done
 * with it; then it is deleted. When a run stops early, whatever is still in
 * that set is deleted, so the store is left as it was found.
 */
#include "reel/pipeline.h"

#include "actor_internal.h"
#include "autoscale.h"
#include "config.h"
#include "placement.h"
#include "status.h"
#include "store_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <sched.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define STATUS_PUBLISH_NS 100000000ull /* the shared-memory figures, at most this often */
#define WAIT_MAX_NS       100000000ull /* sleep at most this long between looks */
/* A new worker's grace after it is ready: half an interval, so that the
 * round after it started judges it by half an interval of its own work (a
 * grace of a whole interval made every first round a no-op: workers ready
 * at 0.2 s were still in grace at the 1 s round); at least GRACE_MIN_S. */
#define GRACE_SHARE     0.5
#define GRACE_MIN_S     0.25
#define GRACE_MAX_S     10.0
#define WAITING_LOOK_NS 10000000ull /* additions waiting for resources: looked at this often */

/* ---- configuration: the public face of config.h ---------------------------- */

REEL_API void reel_executor_config_defaults(reel_executor_config *cfg) {
    REEL_NEED_OR(cfg, "cfg", );
    reel__config_defaults(cfg);
}

REEL_API int reel_executor_config_set(reel_executor_config *cfg, const char *key,
                                      const char *value) {
    REEL_NEED(cfg, "cfg");
    REEL_NEED(key, "key");
    REEL_NEED(value, "value");
    return reel__config_set(cfg, key, value);
}

REEL_API int reel_executor_config_load(reel_executor_config *cfg, const char *path) {
    REEL_NEED(cfg, "cfg");
    REEL_NEED(path, "path");
    return reel__config_load_json(cfg, path);
}

REEL_API int reel_executor_config_parse_flag(reel_executor_config *cfg, int argc, char **argv,
                                             int *i) {
    REEL_NEED(cfg, "cfg");
    REEL_NEED(argv, "argv");
    REEL_NEED(i, "i");
    return reel__config_parse_flag(cfg, argc, argv, i);
}

REEL_API const char *reel_executor_config_flags_help(void) {
    return reel__config_flags_help();
}

REEL_API int reel_executor_config_validate(const reel_executor_config *cfg) {
    REEL_NEED(cfg, "cfg");
    return reel__config_validate(cfg);
}

/* ---- building ---------------------------------------------------------------- */

typedef struct stage_def {
    reel_actor_def def; /* the actor's, with the overrides applied; def.name is name */
    char name[REEL_ACTOR_NAME_MAX];
    uint64_t gpu_memory;    /* bytes per worker, when asked for instead of gpus */
    uint32_t fixed_workers; /* 0: autoscaled */
    uint32_t min_workers, max_workers;
    bool gather;            /* a task takes every item of one pipeline input */
    char *inputs, *outputs; /* for describe; may be NULL */
} stage_def;

struct reel_pipeline {
    char name[REEL_PIPELINE_NAME_MAX];
    uint32_t n;
    stage_def st[REEL_PIPELINE_MAX_STAGES];
};

REEL_API int reel_pipeline_new(const char *name, reel_pipeline **out) {
    REEL_NEED(name, "name");
    REEL_NEED(out, "out");
    reel__clear_error();
    *out = NULL;
    if (!*name || strlen(name) >= REEL_PIPELINE_NAME_MAX)
        return reel__fail(-EINVAL, "a pipeline's name has 1 to %u bytes",
                          REEL_PIPELINE_NAME_MAX - 1);
    reel_pipeline *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    snprintf(p->name, sizeof p->name, "%s", name);
    *out = p;
    return 0;
}

static int bad_double(double x) {
    return isnan(x) || isinf(x) || x < 0;
}

REEL_API int reel_pipeline_add(reel_pipeline *p, const reel_actor_def *actor,
                               const reel_stage_options *opts) {
    REEL_NEED(p, "p");
    REEL_NEED(actor, "actor");
    reel__clear_error();
    const char *name = actor->name ? actor->name : "";
    if (!*name || strlen(name) >= REEL_ACTOR_NAME_MAX || !actor->process)
        return reel__fail(-EINVAL,
                          "stage %u: an actor needs a name of 1 to %u bytes and a "
                          "process function",
                          p->n + 1, REEL_ACTOR_NAME_MAX - 1);
    if (p->n == REEL_PIPELINE_MAX_STAGES)
        return reel__fail(-E2BIG, "a pipeline has at most %u stages", REEL_PIPELINE_MAX_STAGES);
    for (uint32_t i = 0; i < p->n; i++)
        if (strcmp(p->st[i].def.name, name) == 0)
            return reel__fail(-EINVAL, "stage %s is in the pipeline already", name);
    reel_stage_options o = opts ? *opts : (reel_stage_options){0};
    if (bad_double(o.cpus) || bad_double(o.gpus) || bad_double(actor->cpus) ||
        bad_double(actor->gpus))
        return reel__fail(-EINVAL, "stage %s: cpus and gpus are finite and not negative", name);
    if (o.gpus > 0 && o.gpu_memory > 0)
        return reel__fail(-EINVAL, "stage %s: ask for gpus or gpu_memory, not both", name);
    uint32_t batch = o.batch_size ? o.batch_size : actor->batch_size;
    uint32_t slots = o.slots ? o.slots : actor->slots;
    if (batch > REEL_TASK_MAX_INPUTS)
        return reel__fail(-EINVAL, "stage %s: batch size %u is above %u", name, batch,
                          REEL_TASK_MAX_INPUTS);
    if (o.max_workers && o.min_workers > o.max_workers)
        return reel__fail(-EINVAL, "stage %s: min_workers %u is above max_workers %u", name,
                          o.min_workers, o.max_workers);
    if (o.workers > REEL_POOL_MAX_WORKERS || o.max_workers > REEL_POOL_MAX_WORKERS ||
        o.min_workers > REEL_POOL_MAX_WORKERS)
        return reel__fail(-EINVAL, "stage %s: at most %u workers", name, REEL_POOL_MAX_WORKERS);
    if (slots > 64)
        return reel__fail(-EINVAL, "stage %s: at most 64 slots per worker", name);
    if (o.gather && p->n == 0)
        return reel__fail(-EINVAL, "stage %s: the first stage has nothing to gather", name);
    for (uint32_t i = 0; o.gather && i < p->n; i++) {
        if (p->st[i].gather)
            return reel__fail(-EINVAL, "stage %s: stage %s gathers already (one stage may)", name,
                              p->st[i].def.name);
        if (p->st[i].def.batch_size > 1)
            return reel__fail(-EINVAL,
                              "stage %s: the stages before a gathering stage take one item per "
                              "task (%s takes %u: its outputs could not be told apart by input)",
                              name, p->st[i].def.name, p->st[i].def.batch_size);
    }
    stage_def *s = &p->st[p->n];
    memset(s, 0, sizeof *s);
    s->def = *actor;
    memcpy(s->name, name, strlen(name) + 1);
    s->def.name = s->name;
    if (o.cpus > 0)
        s->def.cpus = o.cpus;
    if (o.gpus > 0)
        s->def.gpus = o.gpus;
    if (o.gpu_memory > 0)
        s->def.gpus = 0;
    if (o.memory > 0)
        s->def.memory = o.memory;
    if (o.batch_size > 0)
        s->def.batch_size = o.batch_size;
    if (o.slots > 0)
        s->def.slots = o.slots;
    if (s->def.cpus == 0 && s->def.gpus == 0 && o.gpu_memory == 0)
        s->def.cpus = 1;
    if (s->def.batch_size == 0)
        s->def.batch_size = 1;
    if (s->def.slots == 0)
        s->def.slots = 2;
    s->gpu_memory = o.gpu_memory;
    s->fixed_workers = o.workers;
    s->min_workers = o.min_workers;
    s->max_workers = o.max_workers;
    s->gather = o.gather;
    s->inputs = o.inputs ? strdup(o.inputs) : NULL;
    s->outputs = o.outputs ? strdup(o.outputs) : NULL;
    if ((o.inputs && !s->inputs) || (o.outputs && !s->outputs)) {
        free(s->inputs);
        free(s->outputs);
        return -ENOMEM;
    }
    p->n++;
    return 0;
}

REEL_API void reel_pipeline_free(reel_pipeline *p) {
    if (!p)
        return;
    for (uint32_t i = 0; i < p->n; i++) {
        free(p->st[i].inputs);
        free(p->st[i].outputs);
    }
    free(p);
}

static void format_bytes(uint64_t b, char *buf, size_t cap) {
    if (b >= (1ull << 30))
        snprintf(buf, cap, "%.1f GiB", (double)b / (double)(1ull << 30));
    else if (b >= (1ull << 20))
        snprintf(buf, cap, "%.1f MiB", (double)b / (double)(1ull << 20));
    else
        snprintf(buf, cap, "%" PRIu64 " B", b);
}

REEL_API int reel_pipeline_describe(const reel_pipeline *p, FILE *out) {
    REEL_NEED(p, "p");
    REEL_NEED(out, "out");
    fprintf(out, "Pipeline: %s\n", p->name);
    fprintf(out, "Stages: %u\n", p->n);
    for (uint32_t i = 0; i < p->n; i++) {
        const stage_def *s = &p->st[i];
        char mem[32];
        fprintf(out, "\nStage %u: %s\n", i + 1, s->def.name);
        fprintf(out, "  Resources: %g CPUs", s->def.cpus);
        if (s->gpu_memory) {
            format_bytes(s->gpu_memory, mem, sizeof mem);
            fprintf(out, ", GPU memory %s", mem);
        } else if (s->def.gpus > 0) {
            fprintf(out, ", %g GPUs", s->def.gpus);
        }
        if (s->def.memory) {
            format_bytes(s->def.memory, mem, sizeof mem);
            fprintf(out, ", memory %s", mem);
        }
        fprintf(out, " per worker\n");
        if (s->gather)
            fprintf(out, "  Batch size: every item of one input (gathers)\n");
        else
            fprintf(out, "  Batch size: %u\n", s->def.batch_size);
        if (s->fixed_workers)
            fprintf(out, "  Workers: %u (fixed)\n", s->fixed_workers);
        else if (s->max_workers)
            fprintf(out, "  Workers: autoscaled, %u to %u\n", s->min_workers ? s->min_workers : 1,
                    s->max_workers);
        else
            fprintf(out, "  Workers: autoscaled, at least %u\n",
                    s->min_workers ? s->min_workers : 1);
        fprintf(out, "  Slots per worker: %u\n", s->def.slots);
        fprintf(out, "  Inputs: %s\n",
                s->inputs ? s->inputs
                          : (i == 0 ? "pipeline inputs" : "the previous stage's outputs"));
        fprintf(out, "  Outputs: %s\n", s->outputs ? s->outputs : "objects in the store");
    }
    return ferror(out) ? -EIO : 0;
}

/* ---- a map of object IDs ------------------------------------------------------ */

/* From an object ID to the pipeline input it came from. Open addressing with
 * linear probing and backward-shift deletion: no tombstones, so it never
 * degrades however many items pass through. */
typedef struct idmap_entry {
    reel_id key, origin; /* in the artifact map: the artifact, and the item it belongs to */
} idmap_entry;

typedef struct idmap {
    idmap_entry *e;
    uint8_t *used;
    size_t cap, count; /* cap: a power of two */
} idmap;

static size_t id_hash(const reel_id *id) {
    uint64_t a, b;
    memcpy(&a, id->bytes, 8);
    memcpy(&b, id->bytes + 8, 8);
    uint64_t h = (a ^ (b * 0x9e3779b97f4a7c15ull)) * 0xbf58476d1ce4e5b9ull;
    return (size_t)(h ^ (h >> 31));
}

static int idmap_grow(idmap *m) {
    size_t cap = m->cap ? m->cap * 2 : 1024;
    idmap_entry *e = malloc(cap * sizeof *e);
    uint8_t *used = calloc(cap, 1);
    if (!e || !used) {
        free(e);
        free(used);
        return -ENOMEM;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->used[i])
            continue;
        size_t j = id_hash(&m->e[i].key) & (cap - 1);
        while (used[j])
            j = (j + 1) & (cap - 1);
        used[j] = 1;
        e[j] = m->e[i];
    }
    free(m->e);
    free(m->used);
    m->e = e;
    m->used = used;
    m->cap = cap;
    return 0;
}

static size_t idmap_find(const idmap *m, const reel_id *id) {
    if (!m->cap)
        return SIZE_MAX;
    for (size_t j = id_hash(id) & (m->cap - 1);; j = (j + 1) & (m->cap - 1)) {
        if (!m->used[j])
            return SIZE_MAX;
        if (reel_id_equal(&m->e[j].key, id))
            return j;
    }
}

/* 1 if added, 0 if it was there (unchanged), -ENOMEM. */
static int idmap_add(idmap *m, const reel_id *id, const reel_id *origin) {
    if (idmap_find(m, id) != SIZE_MAX)
        return 0;
    if ((m->count + 1) * 4 > m->cap * 3 && idmap_grow(m) != 0)
        return -ENOMEM;
    size_t j = id_hash(id) & (m->cap - 1);
    while (m->used[j])
        j = (j + 1) & (m->cap - 1);
    m->used[j] = 1;
    m->e[j] = (idmap_entry){.key = *id, .origin = *origin};
    m->count++;
    return 1;
}

/* 1 if it was there (and is gone), 0 if not. */
static int idmap_remove(idmap *m, const reel_id *id) {
    size_t j = idmap_find(m, id);
    if (j == SIZE_MAX)
        return 0;
    m->used[j] = 0;
    m->count--;
    /* Move back the entries of the run after j that would not be found. */
    for (size_t k = (j + 1) & (m->cap - 1); m->used[k]; k = (k + 1) & (m->cap - 1)) {
        size_t home = id_hash(&m->e[k].key) & (m->cap - 1);
        int between = j <= k ? (home > j && home <= k) : (home > j || home <= k);
        if (between)
            continue;
        m->e[j] = m->e[k];
        m->used[j] = 1;
        m->used[k] = 0;
        j = k;
    }
    return 1;
}

static void idmap_free(idmap *m) {
    free(m->e);
    free(m->used);
    memset(m, 0, sizeof *m);
}

/* ---- a queue of items -------------------------------------------------------- */

typedef struct idqueue {
    reel_id *v;
    size_t cap, head, count;
} idqueue;

/* Room for one more in a full ring of count elements of elem bytes at *v
 * (capacity *cap, first at *head): a new array twice the size (first_cap
 * for none), the elements in order from its start. 0 or -ENOMEM. */
static int ring_grow(void **v, size_t elem, size_t *cap, size_t *head, size_t count,
                     size_t first_cap) {
    size_t n = *cap ? *cap * 2 : first_cap;
    uint8_t *to = malloc(n * elem);
    if (!to)
        return -ENOMEM;
    for (size_t i = 0; i < count; i++)
        memcpy(to + i * elem, (const uint8_t *)*v + (*head + i) % *cap * elem, elem);
    free(*v);
    *v = to;
    *cap = n;
    *head = 0;
    return 0;
}

static int q_push(idqueue *q, const reel_id *id) {
    if (q->count == q->cap &&
        ring_grow((void **)&q->v, sizeof *q->v, &q->cap, &q->head, q->count, 256) != 0)
        return -ENOMEM;
    q->v[(q->head + q->count) % q->cap] = *id;
    q->count++;
    return 0;
}

static void q_pop(idqueue *q, reel_id *id) {
    *id = q->v[q->head];
    q->head = (q->head + 1) % q->cap;
    q->count--;
}

/* ---- a run ------------------------------------------------------------------- */

typedef struct stage_window {
    uint64_t items, passed;
    double busy, cpu, measured, wait;
    double demand;  /* CPUs a worker takes in a task, as last measured (0: not yet) */
    double takes;   /* demand x the share of time in tasks, as last measured */
    uint64_t tasks; /* done or failed for good: the status lines' tasks/s */
} stage_window;

typedef struct stage_run {
    const stage_def *sd;
    const reel_node *node; /* the run's */
    reel_pool *pool;
    idqueue q;          /* items waiting for this stage */
    uint64_t bound;     /* the most q may hold (0: unbounded, batch mode) */
    uint32_t workers;   /* the allocation */
    uint64_t tasks_out; /* submitted, not yet collected */
    uint64_t items_out; /* items in those tasks */
    uint64_t items_in_done, items_passed, tasks_done, tasks_failed;
    bool upstream_done; /* nothing more will reach q */
    bool finished;      /* and q is empty and nothing is in flight */
    double gpus;        /* per worker, gpu_memory turned into a share */
    /* The allocation's placement of each worker slot, for the placer. */
    reel_worker_placement *place;
    uint32_t n_place;
    /* Counts at the start of the autoscaler's window and of the status
     * lines' window: each is measured over its own interval. */
    stage_window scale_win, log_win;
    double last_rate, last_task_rate, last_busy; /* over the last status window */
    /* Workers the pool was asked for: below workers while additions wait
     * for the resources that removed workers still hold (start_waiting). */
    uint32_t started;
    char last_death[REEL_ERROR_TEXT_MAX]; /* its pools' last, kept past them */
    /* A gathering stage: the sizes of the groups in q, in order (a ring). */
    uint32_t *gsize;
    size_t gcap, ghead, gcount;
} stage_run;

/* The items of one pipeline input on their way to the gathering stage. */
typedef struct gather_group {
    reel_id origin;
    uint64_t pending; /* its items before the gathering stage: queued or in a task */
    uint32_t n_held;  /* those that reached it, waiting for the others */
    uint32_t cap_held;
    reel_id *held;
} gather_group;

/* A task's inputs or outputs: inline in its result, or in a list. */
typedef struct id_span {
    const reel_id *ids;
    const uint64_t *fwd, *art; /* bitmaps: forwarded, artifact (outputs only) */
    uint32_t n;
    bool listed;
    reel_list list;
} id_span;

static bool span_fwd(const id_span *v, uint32_t k) {
    return v->fwd && reel_list_bit(v->fwd, k);
}

static bool span_art(const id_span *v, uint32_t k) {
    return v->art && reel_list_bit(v->art, k);
}

typedef struct run {
    reel_pipeline *p;
    const reel_run_options *o;
    reel_executor_config cfg;
    reel_runtime *rt;
    reel_store *store;
    reel_node node;
    FILE *log;
    stage_run s[REEL_PIPELINE_MAX_STAGES];
    reel_pool *pools[REEL_PIPELINE_MAX_STAGES];
    reel_id run_id;       /* task and so output IDs derive from it */
    idmap made;           /* objects the run made and has not handed on or deleted: their origin */
    idmap kids;           /* artifacts the run made and holds: the item each belongs to */
    uint32_t gather_at;   /* the gathering stage; UINT32_MAX: none */
    gather_group *groups; /* one per pipeline input with items before it */
    size_t n_groups, cap_groups;
    idmap given; /* pipeline inputs seen, to refuse one given twice */
    size_t next_array_input;
    bool source_done;
    uint64_t inputs, outputs, failed;
    reel_failure *failures;
    size_t n_failures, cap_failures;
    int stop_rc;
    char stop_msg[256];
    uint64_t start_ns, next_log_ns, next_scale_ns, next_publish_ns;
    uint64_t scale_win_ns, log_win_ns; /* where the two windows started */
    reel_autoscale_state scale;
    uint32_t scale_rounds;
    bool waiting;             /* some stage has fewer workers started than allocated */
    uint64_t next_waiting_ns; /* when to look again whether they fit */
    reel_status_writer *status;
    reel_pipeline_status snap;
} run;

static void stop_with(run *r, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void stop_with(run *r, int rc, const char *fmt, ...) {
    if (r->stop_rc)
        return;
    r->stop_rc = rc ? rc : -EIO;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->stop_msg, sizeof r->stop_msg, fmt, ap);
    va_end(ap);
}

/* The pipeline input an item came from (a pipeline input is its own). */
static void item_origin(const run *r, const reel_id *item, reel_id *out) {
    size_t j = idmap_find(&r->made, item);
    *out = j == SIZE_MAX ? *item : r->made.e[j].origin;
}

/* The pipeline input a task's items came from: its first input's. */
static void origin_of(const run *r, const id_span *in, reel_id *out) {
    memset(out, 0, sizeof *out);
    if (in->n > 0)
        item_origin(r, &in->ids[0], out);
}

/* The inputs of t: its own, or those of its input list (which the run made). */
static int inputs_of(run *r, const reel_task_result *t, id_span *v) {
    memset(v, 0, sizeof *v);
    v->ids = t->inputs;
    v->n = t->n_inputs;
    if (!(t->flags & REEL_RESULT_INPUT_LIST) || t->n_inputs != 1)
        return 0;
    int rc = reel_list_open(r->store, &t->inputs[0], 0, &v->list);
    if (rc) {
        v->n = 0;
        return rc;
    }
    v->listed = true;
    v->ids = v->list.ids;
    v->n = v->list.n;
    return 0;
}

/* The outputs of t: its own, or those of its output list. */
static int outputs_of(run *r, const reel_task_result *t, id_span *v) {
    memset(v, 0, sizeof *v);
    v->ids = t->outputs;
    v->fwd = &t->forwarded;
    v->art = &t->artifacts;
    v->n = t->status == 0 ? t->n_outputs : 0;
    if (!(t->flags & REEL_RESULT_OUTPUT_LIST) || t->status != 0)
        return 0;
    int rc = reel_list_open(r->store, &t->outputs[0], 0, &v->list);
    if (rc) {
        memset(v, 0, sizeof *v);
        return rc;
    }
    v->listed = true;
    v->ids = v->list.ids;
    v->fwd = v->list.forwarded;
    v->art = v->list.artifacts;
    v->n = v->list.n;
    return 0;
}

static void span_close(run *r, id_span *v) {
    if (v->listed)
        reel_list_close(r->store, &v->list);
    v->listed = false;
}

/* How many of v's outputs are items (the others are artifacts). */
static uint32_t span_items(const id_span *v) {
    uint32_t arts = 0;
    for (uint32_t w = 0; v->art && w < (v->n + 63) / 64; w++)
        arts += (uint32_t)__builtin_popcountll(v->art[w]);
    return v->n - arts;
}

/* The origin of output k of a successful task. A result does not say which
 * input an output was made from: with several inputs, the outputs are taken
 * to follow them in order, as many for each (the shape of stages that
 * transform or split every item); when the counts do not divide, the first
 * input's is given. Without this, every item of a batch would be charged to
 * the batch's first input. */
static void output_origin(const run *r, const id_span *in, uint32_t item, uint32_t n_items,
                          reel_id *out) {
    memset(out, 0, sizeof *out);
    if (in->n == 0)
        return;
    uint32_t from = 0;
    if (in->n > 1 && n_items % in->n == 0)
        from = item / (n_items / in->n);
    item_origin(r, &in->ids[from], out);
}

/* Records that t failed for good; in, its inputs (NULL: t's own). */
static void record_failure(run *r, uint32_t stage, const reel_task_result *t, const id_span *in) {
    id_span own = {.ids = t->inputs, .n = t->n_inputs};
    if (!in)
        in = &own;
    r->failed++;
    r->s[stage].tasks_failed++;
    reel_failure f;
    memset(&f, 0, sizeof f);
    f.stage = stage;
    f.status = t->status;
    f.task_id = t->task_id;
    origin_of(r, in, &f.origin);
    f.n_inputs = in->n;
    memcpy(f.inputs, in->ids,
           (in->n < REEL_TASK_MAX_INPUTS ? in->n : REEL_TASK_MAX_INPUTS) * sizeof(reel_id));
    snprintf(f.error, sizeof f.error, "%s", t->error);
    if (r->o->on_failure)
        r->o->on_failure(r->o->arg, &f);
    if (r->n_failures < REEL_RUN_MAX_RECORDED_FAILURES) {
        if (r->n_failures == r->cap_failures) {
            size_t cap = r->cap_failures ? r->cap_failures * 2 : 16;
            reel_failure *v = realloc(r->failures, cap * sizeof *v);
            if (v) {
                r->failures = v;
                r->cap_failures = cap;
            }
        }
        if (r->n_failures < r->cap_failures)
            r->failures[r->n_failures++] = f;
    }
    if (!r->cfg.ignore_failures) {
        char hex[REEL_ID_HEX_LEN + 1] = "";
        if (in->n)
            reel_id_to_hex(&in->ids[0], hex);
        stop_with(r, t->status, "stage %s failed on input %s%s: %s", r->s[stage].sd->def.name, hex,
                  in->n > 1 ? " (and others in its batch)" : "", t->error);
    }
}

/* Takes up to cap of the artifacts that belong to item out of the run's
 * set, into out, in one pass over it; how many. */
static uint32_t take_kids(run *r, const reel_id *item, reel_id *out, uint32_t cap) {
    idmap *m = &r->kids;
    uint32_t n = 0;
    for (size_t j = 0; m->count > 0 && j < m->cap && n < cap; j++) {
        /* A removal shifts a later entry into j: look at j again. */
        while (n < cap && m->used[j] && reel_id_equal(&m->e[j].origin, item)) {
            out[n] = m->e[j].key;
            idmap_remove(m, &out[n++]);
        }
    }
    return n;
}

/* Deletes the artifacts that belong to item. */
static void drop_kids(run *r, const reel_id *item) {
    reel_id arts[REEL_TASK_MAX_OUTPUTS];
    uint32_t n;
    do {
        n = take_kids(r, item, arts, REEL_TASK_MAX_OUTPUTS);
        for (uint32_t k = 0; k < n; k++)
            reel_obj_delete(r->store, &arts[k]);
    } while (n == REEL_TASK_MAX_OUTPUTS);
}

/* Deletes an object the run made, if it did, with its artifacts. */
static void drop_made(run *r, const reel_id *id) {
    if (idmap_remove(&r->made, id))
        reel_obj_delete(r->store, id);
    drop_kids(r, id);
}

/* Whether every artifact t carries on is one of its inputs': a worker is
 * another process, and the executor deletes what it is told it owns. */
static bool carries_ok(const run *r, const id_span *in, const id_span *out) {
    for (uint32_t k = 0; k < out->n; k++) {
        if (!(span_fwd(out, k) && span_art(out, k)))
            continue;
        size_t j = idmap_find(&r->kids, &out->ids[k]);
        if (j == SIZE_MAX)
            return false;
        bool mine = false;
        for (uint32_t i = 0; i < in->n && !mine; i++)
            mine = reel_id_equal(&r->kids.e[j].origin, &in->ids[i]);
        if (!mine)
            return false;
    }
    return true;
}

/* ---- gathering ------------------------------------------------------------------ */

static gather_group *group_of(run *r, const reel_id *origin) {
    for (size_t g = 0; g < r->n_groups; g++)
        if (reel_id_equal(&r->groups[g].origin, origin))
            return &r->groups[g];
    if (r->n_groups == r->cap_groups) {
        size_t cap = r->cap_groups ? r->cap_groups * 2 : 64;
        gather_group *v = realloc(r->groups, cap * sizeof *v);
        if (!v)
            return NULL;
        r->groups = v;
        r->cap_groups = cap;
    }
    gather_group *g = &r->groups[r->n_groups++];
    memset(g, 0, sizeof *g);
    g->origin = *origin;
    return g;
}

static int gsize_push(stage_run *s, uint32_t n) {
    if (s->gcount == s->gcap &&
        ring_grow((void **)&s->gsize, sizeof *s->gsize, &s->gcap, &s->ghead, s->gcount, 64) != 0)
        return -ENOMEM;
    s->gsize[(s->ghead + s->gcount) % s->gcap] = n;
    s->gcount++;
    return 0;
}

/* Nothing of g is left before the gathering stage: its items go there as
 * one group (none: nothing to do), and the group ends. */
static void group_release(run *r, gather_group *g) {
    stage_run *s = &r->s[r->gather_at];
    if (g->n_held) {
        int rc = 0;
        for (uint32_t k = 0; k < g->n_held && rc == 0; k++)
            rc = q_push(&s->q, &g->held[k]);
        if (rc == 0)
            rc = gsize_push(s, g->n_held);
        if (rc)
            stop_with(r, -ENOMEM, "out of memory for stage %s's queue", s->sd->def.name);
    } else if (r->o->on_ungathered) {
        r->o->on_ungathered(r->o->arg, &g->origin);
    }
    free(g->held);
    *g = r->groups[--r->n_groups];
}

/* An item of origin is now before the gathering stage. */
static void pending_add(run *r, const reel_id *origin) {
    gather_group *g = group_of(r, origin);
    if (g)
        g->pending++;
    else
        stop_with(r, -ENOMEM, "out of memory for the run's gather groups");
}

/* An item of origin before the gathering stage is done with. */
static void pending_done(run *r, const reel_id *origin) {
    gather_group *g = group_of(r, origin);
    if (g && g->pending > 0 && --g->pending == 0)
        group_release(r, g);
}

/* An item reached the gathering stage: it waits for the rest of its group. */
static void hold(run *r, const reel_id *origin, const reel_id *item) {
    gather_group *g = group_of(r, origin);
    if (g && g->n_held == g->cap_held) {
        uint32_t cap = g->cap_held ? g->cap_held * 2 : 16;
        reel_id *v = cap <= REEL_LIST_MAX ? realloc(g->held, cap * sizeof *v) : NULL;
        if (v) {
            g->held = v;
            g->cap_held = cap;
        }
    }
    if (!g || g->n_held == g->cap_held) {
        drop_made(r, item);
        stop_with(r, -ENOMEM, "out of memory for the run's gather groups");
        return;
    }
    g->held[g->n_held++] = *item;
}

/* Item output k of t (its artifacts are the outputs right before it) is the
 * run's now: its artifacts belong to it, those carried on included. */
static void adopt_artifacts(run *r, const id_span *out, uint32_t k) {
    for (uint32_t a = k; a-- > 0 && span_art(out, a);) {
        if (span_fwd(out, a)) {
            size_t j = idmap_find(&r->kids, &out->ids[a]);
            if (j != SIZE_MAX) /* carries_ok() saw to it */
                r->kids.e[j].origin = out->ids[k];
        } else if (idmap_add(&r->kids, &out->ids[a], &out->ids[k]) < 0) {
            reel_obj_delete(r->store, &out->ids[a]);
            stop_with(r, -ENOMEM, "out of memory for the run's artifact set");
        }
    }
}

/* Hands mine's outputs to the caller, and empties it. */
static void give(run *r, reel_task_result *mine) {
    if (r->o->on_output) {
        /* The caller's from now on: they stay if this process dies. */
        reel_obj_disown(r->store, mine->outputs, mine->n_outputs);
        r->o->on_output(r->o->arg, mine);
    } else {
        for (uint32_t k = 0; k < mine->n_outputs; k++)
            if (!(mine->forwarded >> k & 1))
                reel_obj_delete(r->store, &mine->outputs[k]);
    }
    mine->n_outputs = 0;
    mine->forwarded = mine->artifacts = 0;
}

/* The last stage's task: its items and their artifacts become the caller's,
 * in results of at most REEL_TASK_MAX_OUTPUTS outputs, each whole items
 * with their artifacts. */
static void hand_over(run *r, const reel_task_result *t, const id_span *out, uint32_t items) {
    reel_task_result mine = *t;
    mine.flags &= ~(uint32_t)REEL_RESULT_OUTPUT_LIST;
    mine.n_outputs = 0;
    mine.forwarded = mine.artifacts = 0;
    r->outputs += items;
    /* Outputs the run made, forwarded ones included, become the caller's;
     * an item passed on unchanged brings the artifacts it had, in front of
     * it as the result's artifacts (those beyond REEL_TASK_MAX_OUTPUTS stay
     * the run's, and go with it). */
    for (uint32_t first = 0, k = 0; k < out->n; k++) {
        if (span_art(out, k))
            continue; /* given with the item after it */
        const reel_id *id = &out->ids[k];
        bool fwd = span_fwd(out, k), own_input = false;
        uint32_t arts = k - first;
        if (mine.n_outputs + arts + 1 > REEL_TASK_MAX_OUTPUTS)
            give(r, &mine); /* an item and its artifacts are never split */
        for (uint32_t a = first; a < k; a++) {
            if (span_fwd(out, a))
                idmap_remove(&r->kids, &out->ids[a]);
            if (mine.n_outputs + 1 < REEL_TASK_MAX_OUTPUTS) {
                mine.artifacts |= 1ull << mine.n_outputs;
                mine.outputs[mine.n_outputs++] = out->ids[a];
            } else {
                reel_obj_delete(r->store, &out->ids[a]); /* made in the run, carried or not */
            }
        }
        if (fwd) {
            own_input = !idmap_remove(&r->made, id);
            uint32_t room = REEL_TASK_MAX_OUTPUTS - 1 - mine.n_outputs;
            uint32_t n = take_kids(r, id, mine.outputs + mine.n_outputs, room);
            for (uint32_t a = 0; a < n; a++)
                mine.artifacts |= 1ull << mine.n_outputs++;
        }
        if (own_input)
            mine.forwarded |= 1ull << mine.n_outputs; /* one of the caller's own inputs */
        mine.outputs[mine.n_outputs++] = *id;
        first = k + 1;
    }
    if (mine.n_outputs > 0 || items == 0)
        give(r, &mine);
}

/* A task of stage i ended: its outputs move on, its inputs are done with. */
static void handle_result(run *r, uint32_t i, const reel_task_result *result) {
    stage_run *s = &r->s[i];
    const reel_task_result *t = result;
    bool last = i + 1 == r->p->n;
    bool before_gather = r->gather_at != UINT32_MAX && i < r->gather_at;
    id_span in, out;
    int in_rc = inputs_of(r, t, &in), out_rc = outputs_of(r, t, &out);
    if (in_rc || out_rc)
        stop_with(r, in_rc ? in_rc : out_rc, "stage %s: a task's %s list cannot be read: %s",
                  s->sd->def.name, in_rc ? "input" : "output",
                  reel_strerror(in_rc ? in_rc : out_rc));
    s->tasks_out--;
    s->items_out -= in.n;
    s->items_in_done += in.n;
    /* Stages before the gathering one take one item per task. */
    reel_id in_origin[REEL_TASK_MAX_INPUTS];
    uint32_t n_origin = before_gather && in.n <= REEL_TASK_MAX_INPUTS ? in.n : 0;
    for (uint32_t k = 0; k < n_origin; k++)
        item_origin(r, &in.ids[k], &in_origin[k]);
    reel_task_result refused;
    if (t->status == 0 && !carries_ok(r, &in, &out)) {
        for (uint32_t k = 0; k < out.n; k++)
            if (!span_fwd(&out, k))
                reel_obj_delete(r->store, &out.ids[k]);
        refused = *t;
        refused.status = -EPROTO;
        snprintf(refused.error, sizeof refused.error,
                 "%s: the task carried on an object that is no artifact of its inputs",
                 s->sd->def.name);
        t = &refused;
        out.n = 0;
    }
    uint32_t items = span_items(&out);
    if (t->status == 0) {
        s->tasks_done++;
        s->items_passed += items;
        if (last) {
            hand_over(r, t, &out, items);
        } else {
            for (uint32_t k = 0, item = 0; k < out.n; k++) {
                if (span_art(&out, k))
                    continue; /* adopted with the item after it */
                const reel_id *id = &out.ids[k];
                reel_id origin;
                output_origin(r, &in, item++, items, &origin);
                if (!span_fwd(&out, k) && idmap_add(&r->made, id, &origin) < 0) {
                    reel_obj_delete(r->store, id);
                    stop_with(r, -ENOMEM, "out of memory for the run's object set");
                    continue;
                }
                adopt_artifacts(r, &out, k);
                if (i + 1 == r->gather_at) {
                    hold(r, &origin, id);
                    continue;
                }
                if (q_push(&r->s[i + 1].q, id) != 0) {
                    drop_made(r, id);
                    stop_with(r, -ENOMEM, "out of memory for stage %s's queue",
                              r->s[i + 1].sd->def.name);
                    continue;
                }
                if (before_gather)
                    pending_add(r, &origin);
            }
        }
    } else {
        record_failure(r, i, t, &in);
    }
    /* Inputs passed on stay; the others go, with the artifacts not carried on
     * (a pipeline input stays the caller's, but not what the run attached). */
    for (uint32_t k = 0; k < in.n; k++) {
        bool passed = false;
        for (uint32_t m = 0; t->status == 0 && m < out.n && !passed; m++)
            passed =
                span_fwd(&out, m) && !span_art(&out, m) && reel_id_equal(&out.ids[m], &in.ids[k]);
        if (!passed)
            drop_made(r, &in.ids[k]);
    }
    for (uint32_t k = 0; k < n_origin; k++)
        pending_done(r, &in_origin[k]);
    span_close(r, &in);
    span_close(r, &out);
    /* The lists themselves: the input list the run made, the output list the
     * worker made for the run. */
    if (t->flags & REEL_RESULT_INPUT_LIST)
        drop_made(r, &t->inputs[0]);
    if (result->flags & REEL_RESULT_OUTPUT_LIST && result->status == 0)
        reel_obj_delete(r->store, &result->outputs[0]);
}

/* Takes what the source has, up to the first queue's bound. */
static void pull_source(run *r) {
    stage_run *s0 = &r->s[0];
    while (!r->source_done && !r->stop_rc && (s0->bound == 0 || s0->q.count < s0->bound)) {
        reel_id id;
        if (r->next_array_input < r->o->n_inputs) {
            id = r->o->inputs[r->next_array_input++];
        } else if (r->o->next_input) {
            int rc = r->o->next_input(r->o->arg, &id);
            if (rc == -EAGAIN)
                return; /* none yet: asked again at the loop's next turn */
            if (rc < 0) {
                stop_with(r, rc, "the pipeline's source failed: %s", reel_strerror(rc));
                return;
            }
            if (rc == 0) {
                r->source_done = true;
                return;
            }
        } else {
            r->source_done = true;
            return;
        }
        int added = idmap_add(&r->given, &id, &id);
        if (added < 0) {
            stop_with(r, -ENOMEM, "out of memory for the run's input set");
            return;
        }
        r->inputs++;
        if (added == 0) {
            /* The same object twice would give two tasks one ID. */
            reel_task_result t = {.status = -EINVAL, .n_inputs = 1};
            t.inputs[0] = id;
            snprintf(t.error, sizeof t.error, "%s: this object was given as an input before",
                     s0->sd->def.name);
            s0->items_in_done++;
            record_failure(r, 0, &t, NULL);
            continue;
        }
        if (q_push(&s0->q, &id) != 0)
            stop_with(r, -ENOMEM, "out of memory for the first queue");
        else if (r->gather_at != UINT32_MAX)
            pending_add(r, &id);
    }
}

/* The task ID: the run, the stage and the inputs - so that both modes name
 * it alike, and no two runs (or a run and what an earlier one left) do. */
static int task_id_of(const run *r, uint32_t stage, const reel_id *in, uint32_t n, reel_id *out) {
    uint8_t small[sizeof(reel_id) + 4 + REEL_TASK_MAX_INPUTS * sizeof(reel_id)];
    size_t size = sizeof(reel_id) + 4 + (size_t)n * sizeof(reel_id);
    uint8_t *buf = size <= sizeof small ? small : malloc(size);
    if (!buf)
        return -ENOMEM;
    memcpy(buf, &r->run_id, sizeof(reel_id));
    memcpy(buf + sizeof(reel_id), &stage, 4);
    memcpy(buf + sizeof(reel_id) + 4, in, n * sizeof(reel_id));
    reel_id_from_content(buf, size, out);
    if (buf != small)
        free(buf);
    return 0;
}

/* Submits a task of stage s taking in[0..n): inline, or past
 * REEL_TASK_MAX_INPUTS (a gather) through an input list the run makes
 * and holds until the task's result is handled. */
static int submit_task(run *r, uint32_t i, const reel_id *in, uint32_t n) {
    stage_run *s = &r->s[i];
    reel_id tid;
    int rc = task_id_of(r, i, in, n, &tid);
    if (rc)
        return rc;
    if (n <= REEL_TASK_MAX_INPUTS)
        return reel_pool_submit(s->pool, in, n, &tid, 0, NULL);
    reel_id list, origin;
    reel_id_derive(&tid, 0, &list);
    item_origin(r, &in[0], &origin);
    rc = reel_list_create(r->store, &list, in, n, NULL, NULL);
    if (rc == 0 && (rc = idmap_add(&r->made, &list, &origin)) < 0)
        reel_obj_delete(r->store, &list);
    if (rc < 0)
        return reel__fail(rc, "cannot make the list of a task's %u inputs: %s", n,
                          reel_strerror(rc));
    rc = reel_pool_submit_list(s->pool, &list, &tid, 0, NULL);
    if (rc)
        drop_made(r, &list);
    return rc;
}

static double stage_yield(const stage_run *s) {
    if (s->items_in_done == 0 || s->tasks_done == 0)
        return 1;
    double y = (double)s->items_passed / (double)s->items_in_done;
    return y > 1 ? y : 1;
}

/* Hands stage i the tasks its workers can take now, as far as the queue after
 * it has room. Once every worker holds a task, the rest go a chunk (half the
 * slots) at a time: a worker that sleeps between chunks is woken once per
 * chunk rather than once per task, and none idles meanwhile. */
/* Items in stage s's next task: its batch size, or a gathering stage's
 * next group (0: none). */
static uint32_t next_batch(const stage_run *s) {
    if (!s->sd->gather)
        return s->sd->def.batch_size;
    return s->gcount ? s->gsize[s->ghead] : 0;
}

static int submit_ready(run *r, uint32_t i) {
    stage_run *s = &r->s[i];
    uint32_t batch = next_batch(s);
    if (batch == 0)
        return 0;
    uint64_t limit = (uint64_t)(s->workers ? s->workers : 1) * s->sd->def.slots;
    if (s->tasks_out >= s->workers && s->tasks_out > 0) {
        uint64_t chunk = (uint64_t)(s->sd->def.slots + 1) / 2 * batch;
        uint64_t free_tasks = limit > s->tasks_out ? limit - s->tasks_out : 0;
        if (free_tasks * batch < chunk)
            chunk = free_tasks * batch;
        if (chunk == 0 || s->q.count < chunk)
            return 0;
    }
    int n = 0;
    if (s->pool)
        reel__pool_hold_wakes(s->pool, 1);
    while (!r->stop_rc && s->pool && s->q.count > 0 && s->tasks_out < limit) {
        batch = next_batch(s);
        if (batch == 0)
            break;
        if (s->q.count < batch && !s->upstream_done)
            break; /* a full batch may still come */
        if (i + 1 < r->p->n && r->s[i + 1].bound) {
            /* Room after it for what this task and those in flight may put
             * there. With none in flight, one task goes while there is any
             * room: a task that fans out wider than the bound (a splitter's
             * hundreds of clips) overshoots it once rather than never runs. */
            double room = (double)r->s[i + 1].bound - (double)r->s[i + 1].q.count;
            uint32_t take = s->q.count < batch ? (uint32_t)s->q.count : batch;
            if (room <= 0 ||
                (s->items_out > 0 && (double)(s->items_out + take) * stage_yield(s) > room))
                break;
        }
        reel_id small[REEL_TASK_MAX_INPUTS];
        reel_id *in = batch <= REEL_TASK_MAX_INPUTS ? small : malloc(batch * sizeof *in);
        if (!in) {
            stop_with(r, -ENOMEM, "out of memory for a task of stage %s", s->sd->def.name);
            break;
        }
        uint32_t k = 0;
        while (k < batch && s->q.count > 0)
            q_pop(&s->q, &in[k++]);
        int rc = submit_task(r, i, in, k);
        if (rc) {
            /* Put them back, in order, at the front. */
            for (uint32_t j = k; j-- > 0;) {
                s->q.head = (s->q.head + s->q.cap - 1) % s->q.cap;
                s->q.v[s->q.head] = in[j];
                s->q.count++;
            }
            if (rc != -ETIMEDOUT)
                stop_with(r, rc, "stage %s: %s", s->sd->def.name, reel_last_error());
            if (in != small)
                free(in);
            break;
        }
        if (in != small)
            free(in);
        if (s->sd->gather) {
            s->ghead = (s->ghead + 1) % s->gcap;
            s->gcount--;
        }
        s->tasks_out++;
        s->items_out += k;
        n++;
    }
    if (s->pool)
        reel__pool_hold_wakes(s->pool, 0);
    return n;
}

/* Collects every result stage i has; -EPIPE from a pool stops the run. */
static int collect_ready(run *r, uint32_t i) {
    stage_run *s = &r->s[i];
    int n = 0;
    while (s->pool && s->tasks_out > 0) {
        reel_task_result t;
        int rc = reel_pool_collect(s->pool, &t, 0);
        if (rc == 0) {
            handle_result(r, i, &t);
            n++;
            continue;
        }
        if (rc != -ETIMEDOUT && rc != -ENODATA)
            stop_with(r, rc, "%s", reel_last_error());
        break;
    }
    return n;
}

static void update_finished(run *r) {
    for (uint32_t i = 0; i < r->p->n; i++) {
        stage_run *s = &r->s[i];
        s->upstream_done = i == 0 ? r->source_done : r->s[i - 1].finished;
        s->finished = s->upstream_done && s->q.count == 0 && s->tasks_out == 0;
    }
}

/* ---- placement ---------------------------------------------------------------- */

/* The CPUs a worker is pinned to. A worker asking for a whole CPU or more
 * gets the CPUs its placement packed for it. One asking for a share of a CPU
 * floats over all of the node's: packed onto one CPU, a stage of shares
 * could only ever use that CPU, however busy it is and however idle the
 * others; the scheduler balances them better than a fixed packing can. */
static const cpu_set_t *worker_cpus(const stage_run *s, const reel_worker_placement *wp) {
    return s->sd->def.cpus >= 1 ? &wp->cpus : &s->node->cpu_set;
}

static int placer(void *arg, uint32_t worker, char cpus[REEL_CTL_PATH_MAX],
                  char cvd[REEL_CTL_PATH_MAX]) {
    stage_run *s = arg;
    if (s->n_place == 0)
        return 0;
    const reel_worker_placement *wp = &s->place[worker % s->n_place];
    if (reel__cpuset_format(worker_cpus(s, wp), cpus, REEL_CTL_PATH_MAX) >= (int)REEL_CTL_PATH_MAX)
        cpus[0] = '\0'; /* too long a list to send: the node's CPUs */
    if (wp->cuda_visible_devices[0] == '\0')
        snprintf(cvd, REEL_CTL_PATH_MAX, "-1"); /* a CPU-only worker sees no GPU */
    else if (snprintf(cvd, REEL_CTL_PATH_MAX, "%s", wp->cuda_visible_devices) >=
             (int)REEL_CTL_PATH_MAX)
        return reel__fail(-ENAMETOOLONG, "CUDA_VISIBLE_DEVICES for stage %s is too long",
                          s->sd->def.name);
    return 0;
}

/* Places counts[] workers per stage, keeping the placement for the workers
 * to come when keep is set; -ENODEV/-ENOSPC refuse the allocation. */
static int place_try(run *r, const uint32_t *counts, bool keep) {
    reel_placement_stage ps[REEL_PIPELINE_MAX_STAGES];
    uint32_t total = 0;
    for (uint32_t i = 0; i < r->p->n; i++) {
        ps[i] = (reel_placement_stage){.name = r->s[i].sd->def.name,
                                       .cpus = r->s[i].sd->def.cpus,
                                       .gpus = r->s[i].gpus,
                                       .memory = r->s[i].sd->def.memory,
                                       .workers = counts[i]};
        total += counts[i];
    }
    reel_worker_placement *all = calloc(total ? total : 1, sizeof *all);
    if (!all)
        return -ENOMEM;
    uint32_t n_out = 0;
    int rc = reel__place(ps, r->p->n, &r->node, all, total, &n_out);
    if (rc == 0 && keep) {
        uint32_t at = 0;
        for (uint32_t i = 0; i < r->p->n; i++) {
            stage_run *s = &r->s[i];
            free(s->place);
            s->place = NULL;
            s->n_place = counts[i];
            if (counts[i]) {
                s->place = malloc(counts[i] * sizeof *s->place);
                if (!s->place) {
                    rc = -ENOMEM;
                    s->n_place = 0;
                } else {
                    memcpy(s->place, all + at, counts[i] * sizeof *s->place);
                }
            }
            at += counts[i];
        }
    }
    free(all);
    return rc;
}

static int place_all(run *r, const uint32_t *counts) {
    return place_try(r, counts, true);
}

static bool placeable(run *r, const uint32_t *counts) {
    return place_try(r, counts, false) == 0;
}

/* Moves the live workers of every pool onto the CPUs of the current placement. */
static void repin(run *r) {
    for (uint32_t i = 0; i < r->p->n; i++) {
        stage_run *s = &r->s[i];
        if (!s->pool || s->n_place == 0)
            continue;
        pid_t pids[256];
        size_t n = 0;
        if (reel_pool_workers(s->pool, pids, 256, &n) != 0)
            continue;
        for (size_t k = 0; k < n && k < 256; k++)
            sched_setaffinity(pids[k], sizeof(cpu_set_t),
                              worker_cpus(s, &s->place[k % s->n_place]));
    }
}

/* Turns gpu_memory into a share of the smallest device that has it. */
static int resolve_gpus(run *r) {
    for (uint32_t i = 0; i < r->p->n; i++) {
        stage_run *s = &r->s[i];
        s->gpus = s->sd->def.gpus;
        if (!s->sd->gpu_memory)
            continue;
        if (r->node.n_gpus == 0)
            return reel__fail(-ENODEV, "stage %s needs GPU memory and this node has no GPU",
                              s->sd->def.name);
        uint64_t dev = 0;
        for (uint32_t g = 0; g < r->node.n_gpus; g++)
            if (r->node.gpu_memory[g] && (dev == 0 || r->node.gpu_memory[g] < dev))
                dev = r->node.gpu_memory[g];
        if (dev == 0)
            return reel__fail(-ENODEV,
                              "stage %s asks for GPU memory, and the devices' sizes "
                              "are unknown",
                              s->sd->def.name);
        if (s->sd->gpu_memory > dev) {
            char a[32], b[32];
            format_bytes(s->sd->gpu_memory, a, sizeof a);
            format_bytes(dev, b, sizeof b);
            return reel__fail(-ENOSPC,
                              "stage %s needs %s of GPU memory; the smallest device has %s",
                              s->sd->def.name, a, b);
        }
        s->gpus = ceil((double)s->sd->gpu_memory / (double)dev * REEL_PLACEMENT_UNITS) /
                  REEL_PLACEMENT_UNITS;
    }
    return 0;
}

/* How many workers of stage s fit beside the others' counts. */
static uint32_t fit_workers(const run *r, uint32_t stage, const uint32_t *counts) {
    double cpus = r->node.cpus, gpus = r->node.n_gpus;
    double mem = (double)r->node.memory;
    for (uint32_t i = 0; i < r->p->n; i++) {
        if (i == stage)
            continue;
        cpus -= counts[i] * r->s[i].sd->def.cpus;
        gpus -= counts[i] * r->s[i].gpus;
        mem -= (double)counts[i] * (double)r->s[i].sd->def.memory;
    }
    const stage_run *s = &r->s[stage];
    double fit = REEL_POOL_MAX_WORKERS;
    if (s->sd->def.cpus > 0)
        fit = fmin(fit, floor(cpus / s->sd->def.cpus + 1e-9));
    if (s->gpus > 0)
        fit = fmin(fit, floor(gpus / s->gpus + 1e-9));
    if (s->sd->def.memory > 0)
        fit = fmin(fit, floor(mem / (double)s->sd->def.memory));
    return fit < 0 ? 0 : (uint32_t)fit;
}

/* ---- status ------------------------------------------------------------------- */

/* Keeps the stage's pool's last death, for the status after the pool is gone. */
static void note_death(stage_run *s) {
    const char *d = s->pool ? reel__pool_last_death(s->pool) : "";
    if (d[0])
        snprintf(s->last_death, sizeof s->last_death, "%s", d);
}

static double grace_s(const run *r) {
    return fmin(GRACE_MAX_S, fmax(GRACE_MIN_S, GRACE_SHARE * r->cfg.autoscale_interval_s));
}

static void fill_status(run *r, uint64_t now) {
    reel_pipeline_status *st = &r->snap;
    snprintf(st->name, sizeof st->name, "%s", r->p->name);
    st->n_stages = r->p->n;
    st->mode = r->cfg.execution_mode;
    st->elapsed_s = (double)(now - r->start_ns) / 1e9;
    st->inputs_read = r->inputs;
    st->outputs = r->outputs;
    st->failures = r->failed;
    st->autoscale_rounds = r->scale_rounds;
    for (uint32_t i = 0; i < r->p->n; i++) {
        stage_run *s = &r->s[i];
        reel_stage_status *ss = &st->stage[i];
        snprintf(ss->name, sizeof ss->name, "%s", s->sd->def.name);
        reel_pool_stats ps = {0};
        reel_pool_census c = {0};
        if (s->pool) {
            reel_pool_stats_get(s->pool, &ps);
            reel__pool_census(s->pool, &c);
        }
        note_death(s);
        _Static_assert(sizeof ss->last_death == sizeof s->last_death, "one size of death");
        memcpy(ss->last_death, s->last_death, sizeof ss->last_death);
        /* Workers on their way out are no longer the stage's. */
        ss->workers = c.live;
        ss->workers_setup = c.settling;
        ss->queued = s->q.count;
        ss->queue_bound = s->bound;
        ss->in_flight = s->items_out;
        ss->items_in = s->items_in_done;
        ss->items_out = s->items_passed;
        ss->tasks_done = s->tasks_done;
        ss->tasks_failed = s->tasks_failed;
        ss->retries = ps.retried;
        ss->restarts = ps.restarts;
        ss->items_per_s = s->last_rate;
        ss->tasks_per_s = s->last_task_rate;
        ss->busy = s->last_busy;
        ss->finished = s->finished;
    }
}

static void publish_status(run *r, uint64_t now) {
    fill_status(r, now);
    if (r->status)
        reel__status_publish(r->status, &r->snap);
    r->next_publish_ns = now + STATUS_PUBLISH_NS;
}

static void log_status(run *r, uint64_t now) {
    publish_status(r, now);
    const reel_pipeline_status *st = &r->snap;
    if (!(r->o->flags & REEL_RUN_QUIET)) {
        fprintf(r->log,
                "reel: %s (%s) %.1f s: %" PRIu64 " inputs, %" PRIu64 " outputs, %" PRIu64
                " failed tasks\n",
                st->name, reel__execution_mode_name(st->mode), st->elapsed_s, st->inputs_read,
                st->outputs, st->failures);
        for (uint32_t i = 0; i < st->n_stages; i++) {
            const reel_stage_status *ss = &st->stage[i];
            char bound[32] = "";
            if (ss->queue_bound)
                snprintf(bound, sizeof bound, "/%" PRIu64, ss->queue_bound);
            /* A death is news until the next: it says why restarts rose. */
            const char *death = ss->last_death;
            fprintf(r->log,
                    "reel:   %-20s workers %u (%u in setup or grace), queue %" PRIu64
                    "%s, in flight %" PRIu64
                    ", %.1f tasks/s, %.1f items/s, busy %.0f%%, failed %" PRIu64 "%s%s%s\n",
                    ss->name, ss->workers, ss->workers_setup, ss->queued, bound, ss->in_flight,
                    ss->tasks_per_s, ss->items_per_s, ss->busy * 100, ss->tasks_failed,
                    ss->finished ? ", finished" : "", death[0] ? ", last death: " : "", death);
        }
        fflush(r->log);
    }
    if (r->o->on_status)
        r->o->on_status(r->o->arg, st);
}

/* Task time in a window below which a stage's CPU use is not measured. */
#define REEL_MEASURED_CPU_MIN_S 0.05
/* CPUs the autoscaler's allocation may exceed the node's budget by (less
 * than): one more worker of the bottleneck on the last fraction of a CPU
 * (autoscale.h, "Resources"). */
#define REEL_PIPELINE_CPU_OVERDRAW 1.0

/* The measurements of stage i over a window (the autoscaler's or the status
 * lines') that started at start_ns with the counts in w, which then start
 * the next one. */
static void measure_stage(run *r, uint32_t i, uint64_t now, uint64_t start_ns, stage_window *w,
                          reel_stage_measure *m) {
    stage_run *s = &r->s[i];
    const stage_def *sd = s->sd;
    double window = (double)(now - start_ns) / 1e9;
    reel_pool_stats ps = {0};
    if (s->pool)
        reel_pool_stats_get(s->pool, &ps);
    uint64_t items = s->items_in_done - w->items;
    uint64_t passed = s->items_passed - w->passed;
    double busy = ps.busy_seconds - w->busy;
    reel_pool_census c = {0};
    if (s->pool)
        reel__pool_census(s->pool, &c);
    uint32_t producing = c.live - c.setup; /* ready, and not being removed */
    memset(m, 0, sizeof *m);
    /* The allocation, not the pool's count: workers on their way out are not
     * the stage's, and those waiting to start are. Those are in setup, like
     * the ones in setup or within their grace since they became ready. */
    m->workers = s->workers;
    uint32_t setup = c.settling + (s->workers > c.live ? s->workers - c.live : 0);
    m->workers_setup = setup > m->workers ? m->workers : setup;
    m->fixed_workers = sd->fixed_workers;
    m->min_workers = sd->min_workers;
    m->max_workers = sd->max_workers ? sd->max_workers : REEL_POOL_MAX_WORKERS;
    m->gpus = s->gpus;
    m->memory = sd->def.memory;
    if (items > 0 && busy > 0)
        m->task_s = busy / (double)items;
    m->tasks_per_s = window > 0 ? (double)items / window : 0;
    /* Only ready workers run tasks: the share of their time spent in them. */
    if (window > 0 && producing > 0 && busy > 0)
        m->busy = fmin(1.0, busy / (window * producing));
    /* A worker counts for the CPUs it would take if it never waited for one,
     * when that is more than it asked for: the CPU it takes while running in
     * a task (its waits for a CPU left out) times the share of its time in
     * tasks. Ten single-threaded workers asking for 0.2 CPUs each, always in
     * a task, count for ten CPUs however they share two; a light stage that
     * takes a whole CPU for the 5% of its time it works counts for 0.05. */
    double cpu = ps.cpu_seconds - w->cpu;
    double running = (ps.measured_seconds - w->measured) - (ps.cpu_wait_seconds - w->wait);
    if (running >= REEL_MEASURED_CPU_MIN_S && cpu >= 0)
        w->demand = cpu / running; /* else the last measure holds */
    m->cpus = sd->def.cpus;
    if (items > 0)
        w->takes = w->demand * m->busy; /* else the last measure holds */
    if (w->takes > m->cpus)
        m->cpus = r->node.cpus > 0 ? fmin(w->takes, r->node.cpus) : w->takes;
    if (items > 0)
        m->outputs_per_input = (double)passed / (double)items;
    m->queue_depth = s->q.count + (uint64_t)ps.queued * sd->def.batch_size;
    m->source_ended = s->upstream_done;
    m->finished = s->finished;
    w->items = s->items_in_done;
    w->passed = s->items_passed;
    w->busy = ps.busy_seconds;
    w->cpu = ps.cpu_seconds;
    w->measured = ps.measured_seconds;
    w->wait = ps.cpu_wait_seconds;
}

/* The status lines' window: rates and busy shares for them and for the
 * shared-memory figures. */
static void measure_for_status(run *r, uint64_t now) {
    double window = (double)(now - r->log_win_ns) / 1e9;
    for (uint32_t i = 0; i < r->p->n; i++) {
        stage_run *s = &r->s[i];
        uint64_t tasks = s->tasks_done + s->tasks_failed;
        s->last_task_rate = window > 0 ? (double)(tasks - s->log_win.tasks) / window : 0;
        s->log_win.tasks = tasks;
        reel_stage_measure m;
        measure_stage(r, i, now, r->log_win_ns, &r->s[i].log_win, &m);
        r->s[i].last_rate = m.tasks_per_s;
        r->s[i].last_busy = m.busy;
    }
    r->log_win_ns = now;
}

static uint64_t queue_bound(const stage_run *s) {
    uint64_t b = 2ull * (s->workers ? s->workers : 1) * s->sd->def.slots * s->sd->def.batch_size;
    return b < REEL_PIPELINE_QUEUE_MIN ? REEL_PIPELINE_QUEUE_MIN : b;
}

/* The resources workers hold, live ones and those being removed: a removed
 * worker holds its CPUs, GPUs and memory until it has exited. */
typedef struct held {
    double cpus, gpus, mem;
} held;

/* Takes what n workers of stage s need from *f. */
static void held_take(held *f, const stage_run *s, double n) {
    f->cpus -= n * s->sd->def.cpus;
    f->gpus -= n * s->gpus;
    f->mem -= n * (double)s->sd->def.memory;
}

static held resources_free(run *r) {
    held f = {r->node.cpus, r->node.n_gpus, (double)r->node.memory};
    for (uint32_t i = 0; i < r->p->n; i++) {
        stage_run *s = &r->s[i];
        if (!s->pool)
            continue;
        reel_pool_census c;
        reel__pool_census(s->pool, &c);
        held_take(&f, s, (double)c.live + c.stopping);
    }
    return f;
}

/* How many more workers of stage s fit in f (at most want). */
static uint32_t fit_in(const stage_run *s, const held *f, uint32_t want) {
    double fit = want;
    if (s->sd->def.cpus > 0)
        fit = fmin(fit, floor(f->cpus / s->sd->def.cpus + 1e-9));
    if (s->gpus > 0)
        fit = fmin(fit, floor(f->gpus / s->gpus + 1e-9));
    if (s->sd->def.memory > 0)
        fit = fmin(fit, floor(f->mem / (double)s->sd->def.memory + 1e-9));
    return fit < 0 ? 0 : (uint32_t)fit;
}

/* Starts stage i's pool or resizes it to n workers. */
static int start_workers(run *r, uint32_t i, uint32_t n) {
    stage_run *s = &r->s[i];
    int rc = 0;
    if (!s->pool && n > 0) {
        rc = reel__pool_start_placed(r->rt, s->sd->def.name, n, placer, s, &s->pool);
        r->pools[i] = s->pool;
        if (s->pool)
            reel__pool_set_grace(s->pool, (uint64_t)(grace_s(r) * 1e9));
    } else if (s->pool) {
        rc = reel_pool_resize(s->pool, n);
    }
    if (rc == 0)
        s->started = n;
    return rc;
}

/* Starts as many of stage i's waiting workers as fit in *f, and takes what
 * they need from it. Returns how many it started, or a negative code. */
static int start_fitting(run *r, uint32_t i, held *f) {
    stage_run *s = &r->s[i];
    uint32_t k = s->started < s->workers ? fit_in(s, f, s->workers - s->started) : 0;
    if (k == 0)
        return 0;
    int rc = start_workers(r, i, s->started + k);
    if (rc)
        return rc;
    held_take(f, s, k);
    return (int)k;
}

/* Sets stage i's allocation to n workers. Removals happen at once; additions
 * start only where the resources they need are free, and workers being
 * removed hold theirs until they have exited: the others wait for
 * start_waiting(). */
static int set_workers(run *r, uint32_t i, uint32_t n) {
    stage_run *s = &r->s[i];
    int rc = 0;
    s->workers = n;
    if (n < s->started || (n == 0 && s->pool)) {
        rc = start_workers(r, i, n);
    } else if (n > s->started) {
        held f = resources_free(r);
        rc = start_fitting(r, i, &f);
        r->waiting |= s->started < s->workers;
    }
    if (rc < 0)
        return rc;
    if (r->cfg.execution_mode == REEL_EXEC_STREAMING && n > 0)
        s->bound = queue_bound(s);
    return 0;
}

/* Starts the additions that wait, as far as they fit now; called every tick
 * of the loop, it never waits for anything. */
static void start_waiting(run *r, uint64_t now) {
    if (!r->waiting || now < r->next_waiting_ns || r->stop_rc)
        return;
    r->next_waiting_ns = now + WAITING_LOOK_NS;
    r->waiting = false;
    held f = resources_free(r);
    int any = 0;
    for (uint32_t i = 0; i < r->p->n; i++) {
        stage_run *s = &r->s[i];
        int rc = start_fitting(r, i, &f);
        if (rc < 0) {
            stop_with(r, rc, "stage %s: cannot start %u workers: %s", s->sd->def.name, s->workers,
                      reel_last_error());
            return;
        }
        any |= rc > 0;
        r->waiting |= s->started < s->workers;
    }
    if (any)
        repin(r);
}

static void autoscale_round(run *r, uint64_t now) {
    reel_stage_measure m[REEL_PIPELINE_MAX_STAGES];
    for (uint32_t i = 0; i < r->p->n; i++)
        measure_stage(r, i, now, r->scale_win_ns, &r->s[i].scale_win, &m[i]);
    r->scale_win_ns = now;
    r->scale_rounds++;
    if (r->o->flags & REEL_RUN_NO_AUTOSCALE)
        return;
    reel_node_resources res = {.cpus = r->node.cpus,
                               .gpus = r->node.n_gpus,
                               .memory = r->node.memory,
                               .cpu_overdraw = REEL_PIPELINE_CPU_OVERDRAW};
    reel_autoscale_result out;
    int rc = reel__autoscale(m, r->p->n, &res, &r->scale, &out);
    if (rc) {
        if (!(r->o->flags & REEL_RUN_QUIET))
            fprintf(r->log, "reel: %s: autoscaler: %s (allocation kept)\n", r->p->name,
                    reel_last_error());
        return;
    }
    if (out.n_changes == 0)
        return;
    /* GPU shares add up in the decision but must also pack onto devices:
     * drop additions, one at a time, until the allocation places. */
    uint32_t want[REEL_PIPELINE_MAX_STAGES];
    memcpy(want, out.workers, r->p->n * sizeof *want);
    while (!placeable(r, want)) {
        uint32_t i = 0;
        while (i < r->p->n && want[i] <= r->s[i].workers)
            i++;
        if (i == r->p->n)
            return; /* even without additions it does not place: keep what runs */
        want[i]--;
    }
    place_all(r, want);
    for (int pass = 0; pass < 2 && !r->stop_rc; pass++) /* removals first, then additions */
        for (uint32_t i = 0; i < r->p->n && !r->stop_rc; i++) {
            if (want[i] == r->s[i].workers || (want[i] > r->s[i].workers) != (pass == 1))
                continue;
            rc = set_workers(r, i, want[i]);
            if (rc)
                stop_with(r, rc, "stage %s: cannot resize to %u workers: %s", r->s[i].sd->def.name,
                          want[i], reel_last_error());
        }
    repin(r);
}

/* ---- the two modes ---------------------------------------------------------------- */

static uint64_t now_ns(void) {
    return reel__now_ns(CLOCK_MONOTONIC);
}

static void timers(run *r, uint64_t now) {
    if (now >= r->next_scale_ns && r->cfg.execution_mode == REEL_EXEC_STREAMING) {
        autoscale_round(r, now);
        r->next_scale_ns = now + (uint64_t)(r->cfg.autoscale_interval_s * 1e9);
        if (!(r->o->flags & REEL_RUN_QUIET) || r->o->on_status) {
            publish_status(r, now);
            if (r->o->on_status)
                r->o->on_status(r->o->arg, &r->snap);
        }
    }
    if (now >= r->next_log_ns) {
        measure_for_status(r, now);
        log_status(r, now);
        r->next_log_ns = now + (uint64_t)(r->cfg.logging_interval * 1e9);
    }
    if (now >= r->next_publish_ns)
        publish_status(r, now);
}

static uint64_t next_timer(const run *r) {
    uint64_t t = r->next_log_ns < r->next_publish_ns ? r->next_log_ns : r->next_publish_ns;
    if (r->cfg.execution_mode == REEL_EXEC_STREAMING && r->next_scale_ns < t)
        t = r->next_scale_ns;
    if (r->waiting && r->next_waiting_ns < t)
        t = r->next_waiting_ns;
    return t;
}

/* Stops the run if the caller's cancel flag is set. */
static void check_cancel(run *r) {
    if (r->o->cancel && *r->o->cancel)
        stop_with(r, -ECANCELED, "cancelled");
}

/* Runs stages first..last-1 until each is finished or the run stops. */
static void drive(run *r, uint32_t first, uint32_t end) {
    for (;;) {
        int progress = 0;
        check_cancel(r);
        pull_source(r);
        for (uint32_t i = end; i-- > first;) { /* downstream first: it makes room */
            progress += collect_ready(r, i);
        }
        update_finished(r);
        for (uint32_t i = first; i < end && !r->stop_rc; i++) {
            stage_run *s = &r->s[i];
            progress += submit_ready(r, i);
            if (s->finished && s->pool && s->workers > 0 &&
                r->cfg.execution_mode == REEL_EXEC_STREAMING && i + 1 < end) {
                /* Nothing more will come: its workers are free for the others. */
                set_workers(r, i, 0);
            }
        }
        if (r->stop_rc || r->s[end - 1].finished)
            return;
        uint64_t now = now_ns();
        timers(r, now);
        start_waiting(r, now);
        if (!progress) {
            uint64_t until = next_timer(r);
            if (until > now + WAIT_MAX_NS)
                until = now + WAIT_MAX_NS;
            reel__pools_wait(r->rt, r->pools + first, end - first, until);
        }
    }
}

static int run_streaming(run *r) {
    uint32_t counts[REEL_PIPELINE_MAX_STAGES];
    /* Fixed stages get their count, the others their floor; then the CPUs
     * left are spread over the autoscaled stages, a worker at a time, in
     * rounds. Within a round the stages that ask for the most CPU come
     * first: a line with one heavy stage (a transcoder of a whole CPU among
     * stages of a tenth) gives the last CPU to it rather than to spare
     * workers of the light ones, which would leave no room for it. */
    uint32_t order[REEL_PIPELINE_MAX_STAGES];
    for (uint32_t i = 0; i < r->p->n; i++) {
        const stage_def *sd = r->s[i].sd;
        counts[i] = sd->fixed_workers ? sd->fixed_workers : sd->min_workers ? sd->min_workers : 1;
        uint32_t k = i; /* insertion sort, stable: equals keep stage order */
        for (; k > 0 && r->s[order[k - 1]].sd->def.cpus < sd->def.cpus; k--)
            order[k] = order[k - 1];
        order[k] = i;
    }
    int rc = place_all(r, counts);
    if (rc)
        return rc;
    bool full[REEL_PIPELINE_MAX_STAGES] = {false};
    for (int added = 1; added;) {
        added = 0;
        for (uint32_t j = 0; j < r->p->n; j++) {
            uint32_t i = order[j];
            const stage_def *sd = r->s[i].sd;
            if (full[i] || sd->fixed_workers || (sd->max_workers && counts[i] >= sd->max_workers) ||
                fit_workers(r, i, counts) <= counts[i])
                continue;
            counts[i]++;
            /* GPU shares must also pack onto devices, not only add up. */
            if (r->s[i].gpus > 0 && !placeable(r, counts)) {
                counts[i]--;
                full[i] = true;
                continue;
            }
            added = 1;
        }
    }
    rc = place_all(r, counts);
    if (rc)
        return rc;
    for (uint32_t i = 0; i < r->p->n && rc == 0; i++) {
        rc = set_workers(r, i, counts[i]);
        if (rc) {
            char why[256];
            snprintf(why, sizeof why, "%s", reel_last_error());
            rc = reel__fail(rc, "stage %s: cannot start %u workers: %s", r->s[i].sd->def.name,
                            counts[i], why);
        }
    }
    if (rc)
        return rc;
    drive(r, 0, r->p->n);
    return 0;
}

/* Refuses what cannot run at all, before anything starts: streaming, every
 * stage's floor (its fixed count, min_workers or 1) at once; batch, each
 * stage's floor alone, as it will run. */
static int refuse_unfit(run *r) {
    uint32_t counts[REEL_PIPELINE_MAX_STAGES];
    for (uint32_t i = 0; i < r->p->n; i++) {
        const stage_def *sd = r->s[i].sd;
        counts[i] = sd->fixed_workers ? sd->fixed_workers : sd->min_workers ? sd->min_workers : 1;
    }
    if (r->cfg.execution_mode == REEL_EXEC_STREAMING)
        return place_try(r, counts, false);
    for (uint32_t i = 0; i < r->p->n; i++) {
        const stage_def *sd = r->s[i].sd;
        reel_placement_stage one = {.name = sd->def.name,
                                    .cpus = sd->def.cpus,
                                    .gpus = r->s[i].gpus,
                                    .memory = sd->def.memory,
                                    .workers = counts[i]};
        uint32_t n_out;
        reel_worker_placement *tmp = calloc(counts[i], sizeof *tmp);
        if (!tmp)
            return -ENOMEM;
        int rc = reel__place(&one, 1, &r->node, tmp, counts[i], &n_out);
        free(tmp);
        if (rc)
            return rc;
    }
    return 0;
}

static int run_batch(run *r) {
    for (uint32_t i = 0; i < r->p->n && !r->stop_rc; i++) {
        stage_run *s = &r->s[i];
        const stage_def *sd = s->sd;
        /* Bound 0: everything, waiting for a source fed over time to end. */
        while (i == 0 && !r->stop_rc) {
            check_cancel(r);
            pull_source(r);
            if (r->source_done || r->stop_rc)
                break;
            struct timespec pause = {0, 10 * 1000 * 1000};
            nanosleep(&pause, NULL);
        }
        if (r->stop_rc)
            break;
        if (s->q.count == 0) {
            update_finished(r);
            continue; /* nothing for it to do */
        }
        uint32_t zero[REEL_PIPELINE_MAX_STAGES] = {0};
        uint32_t n = sd->fixed_workers;
        if (!n) {
            n = fit_workers(r, i, zero);
            if (sd->max_workers && n > sd->max_workers)
                n = sd->max_workers;
            uint64_t tasks =
                sd->gather ? s->gcount : (s->q.count + sd->def.batch_size - 1) / sd->def.batch_size;
            if (n > tasks)
                n = (uint32_t)tasks;
            if (n < 1)
                n = 1;
            if (sd->min_workers && n < sd->min_workers)
                n = sd->min_workers;
        }
        uint32_t counts_i[REEL_PIPELINE_MAX_STAGES] = {0};
        counts_i[i] = n;
        while (!sd->fixed_workers && counts_i[i] > 1 && !placeable(r, counts_i))
            counts_i[i]--; /* GPU shares that add up but do not pack */
        n = counts_i[i];
        int rc = place_all(r, counts_i);
        if (rc == 0)
            rc = set_workers(r, i, n);
        if (rc) {
            char why[256];
            snprintf(why, sizeof why, "%s", reel_last_error());
            return reel__fail(rc, "stage %s: cannot start %u workers: %s", sd->def.name, n, why);
        }
        drive(r, i, i + 1);
        if (s->pool) {
            note_death(s);
            reel_pool_stop(s->pool, 0);
            s->pool = NULL;
            r->pools[i] = NULL;
            s->workers = 0;
        }
    }
    return 0;
}

/* ---- the run ------------------------------------------------------------------ */

#define LOGGED_FAILURES 10u

/* The end-of-run summary: the first failures, each with its stage, its input
 * IDs (hex, as reel-inspect prints them), the pipeline input they came from
 * when that is another object, and its error. */
static void log_failures(run *r) {
    size_t shown = 0;
    for (; shown < r->n_failures && shown < LOGGED_FAILURES; shown++) {
        const reel_failure *f = &r->failures[shown];
        fprintf(r->log, "reel:   stage %s, input%s", r->p->st[f->stage].def.name,
                f->n_inputs == 1 ? "" : "s");
        for (uint32_t k = 0; k < f->n_inputs; k++) {
            char hex[REEL_ID_HEX_LEN + 1];
            reel_id_to_hex(&f->inputs[k], hex);
            fprintf(r->log, "%s%s", k ? "," : " ", hex);
        }
        if (f->n_inputs && !reel_id_equal(&f->origin, &f->inputs[0])) {
            char hex[REEL_ID_HEX_LEN + 1];
            reel_id_to_hex(&f->origin, hex);
            fprintf(r->log, " (from pipeline input %s)", hex);
        }
        fprintf(r->log, ": %s\n", f->error[0] ? f->error : reel_strerror(f->status));
    }
    if (r->failed > shown)
        fprintf(r->log, "reel:   ... and %" PRIu64 " more\n", r->failed - shown);
}

static void status_name(const run *r, char *buf, size_t cap) {
    if (r->o->status_name) {
        snprintf(buf, cap, "%s", r->o->status_name);
        return;
    }
    int n = snprintf(buf, cap, "%s-%d", r->p->name, (int)getpid());
    for (int k = 0; k < n && (size_t)k < cap; k++) {
        char c = buf[k];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            buf[k] = '_';
    }
}

/* Stops everything and deletes what the run made and still holds. */
static void teardown(run *r, int failed) {
    /* Every pool at once, so that none waits for another's workers; a run
     * that failed or was cancelled waits for no task and little teardown.
     * Results not collected: their outputs the pool deletes; forwarded ones
     * and the inputs are in made, below. */
    reel_pool *pools[REEL_PIPELINE_MAX_STAGES];
    for (uint32_t i = 0; i < r->p->n; i++) {
        pools[i] = r->s[i].pool;
        r->s[i].pool = NULL;
        r->pools[i] = NULL;
    }
    reel__pools_stop(pools, r->p->n, failed);
    for (size_t k = 0; k < r->made.cap; k++)
        if (r->made.used[k])
            reel_obj_delete(r->store, &r->made.e[k].key);
    for (size_t k = 0; k < r->kids.cap; k++)
        if (r->kids.used[k])
            reel_obj_delete(r->store, &r->kids.e[k].key);
    idmap_free(&r->made);
    idmap_free(&r->kids);
    idmap_free(&r->given);
    for (size_t g = 0; g < r->n_groups; g++)
        free(r->groups[g].held);
    free(r->groups);
    for (uint32_t i = 0; i < r->p->n; i++) {
        free(r->s[i].q.v);
        free(r->s[i].gsize);
        free(r->s[i].place);
    }
}

REEL_API int reel_pipeline_run(reel_pipeline *p, const reel_run_options *opts,
                               reel_run_result *res) {
    reel__clear_error();
    if (res)
        memset(res, 0, sizeof *res);
    int bad = 0;
    if (!p)
        bad = reel__null_arg(__func__, "p");
    else if (!opts)
        bad = reel__null_arg(__func__, "opts");
    else if (!opts->store)
        bad = reel__null_arg(__func__, "opts->store");
    else if (opts->n_inputs && !opts->inputs)
        bad = reel__null_arg(__func__, "opts->inputs");
    else if (p->n == 0)
        bad = reel__fail(-EINVAL, "pipeline %s has no stage", p->name);
    else if (opts->flags & ~(REEL_RUN_NO_SPIN | REEL_RUN_QUIET | REEL_RUN_NO_AUTOSCALE))
        bad = reel__fail(-EINVAL, "unknown run flags 0x%x", opts->flags);
    if (bad) {
        if (res) {
            res->status = bad;
            snprintf(res->error, sizeof res->error, "%s", reel_last_error());
        }
        return bad;
    }
    run *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    r->p = p;
    r->o = opts;
    r->gather_at = UINT32_MAX;
    for (uint32_t i = 0; i < p->n; i++)
        if (p->st[i].gather)
            r->gather_at = i;
    if (opts->run_id)
        r->run_id = *opts->run_id;
    else
        reel_id_random(&r->run_id);
    r->log = opts->log ? opts->log : stderr;
    if (opts->config)
        r->cfg = *opts->config;
    else
        reel__config_defaults(&r->cfg);
    int rc = reel__config_validate(&r->cfg);
    const reel_actor_def *defs[REEL_PIPELINE_MAX_STAGES];
    for (uint32_t i = 0; i < p->n; i++) {
        r->s[i].sd = &p->st[i];
        r->s[i].node = &r->node;
        defs[i] = &p->st[i].def;
    }
    r->start_ns = now_ns();
    /* A pipeline that cannot fit is refused before the runtime, the status
     * segment or any process starts. GPUs are counted in a child that is
     * gone again (placement.h), and only when a stage asks for them. */
    bool gpus = false;
    for (uint32_t i = 0; i < p->n; i++)
        gpus = gpus || p->st[i].def.gpus > 0 || p->st[i].gpu_memory > 0;
    if (rc == 0)
        rc = gpus ? reel__node_detect(r->cfg.cpu_allocation_percentage, &r->node)
                  : reel__node_detect_cpus(r->cfg.cpu_allocation_percentage, &r->node);
    if (rc == 0)
        rc = resolve_gpus(r);
    if (rc == 0)
        rc = refuse_unfit(r);
    if (rc == 0) {
        /* Spinning pays only while every process has a CPU to itself; with
         * workers of a fraction of a CPU they outnumber the CPUs, and a
         * spinner holds the CPU its partner needs. */
        bool spin = !(opts->flags & REEL_RUN_NO_SPIN);
        for (uint32_t i = 0; i < p->n; i++)
            spin = spin && p->st[i].def.cpus >= 1;
        reel_runtime_options ro = {.store = opts->store,
                                   .actors = defs,
                                   .n_actors = p->n,
                                   .flags = spin ? 0 : REEL_RUNTIME_NO_SPIN};
        rc = reel_runtime_start(&ro, &r->rt);
    }
    if (rc == 0) {
        r->store = reel_runtime_store(r->rt);
        char name[REEL_STATUS_NAME_MAX + 1];
        status_name(r, name, sizeof name);
        reel__status_sweep(); /* what killed drivers left: as pool segments, at the next start */
        int src = reel__status_create(name, &r->status);
        if (src && !(opts->flags & REEL_RUN_QUIET))
            fprintf(r->log, "reel: %s: no live status for reel-inspect (%s)\n", p->name,
                    reel_strerror(src));
        uint64_t now = now_ns();
        r->scale_win_ns = r->log_win_ns = now;
        r->next_log_ns = now + (uint64_t)(r->cfg.logging_interval * 1e9);
        r->next_scale_ns = now + (uint64_t)(r->cfg.autoscale_interval_s * 1e9);
        r->next_publish_ns = now;
        rc = r->cfg.execution_mode == REEL_EXEC_BATCH ? run_batch(r) : run_streaming(r);
    }
    char sentence[256];
    snprintf(sentence, sizeof sentence, "%s", rc ? reel_last_error() : "");
    if (rc == 0 && r->stop_rc) {
        rc = r->stop_rc;
        snprintf(sentence, sizeof sentence, "%s", r->stop_msg);
    }
    update_finished(r);
    if (r->rt) {
        uint64_t now = now_ns();
        measure_for_status(r, now);
        fill_status(r, now);
        r->snap.finished = rc == 0;
        if (r->status)
            reel__status_publish(r->status, &r->snap);
        if (!(opts->flags & REEL_RUN_QUIET)) {
            log_status(r, now);
            if (r->failed)
                fprintf(r->log, "reel: %s: %" PRIu64 " tasks failed for good%s\n", p->name,
                        r->failed, r->cfg.ignore_failures ? " (ignored)" : "");
            log_failures(r);
            if (rc)
                fprintf(r->log, "reel: %s stopped: %s\n", p->name, sentence);
        } else if (opts->on_status) {
            opts->on_status(opts->arg, &r->snap);
        }
        teardown(r, rc != 0);
        reel_runtime_stop(r->rt);
    }
    reel__status_close(r->status);
    if (res) {
        res->status = rc;
        snprintf(res->error, sizeof res->error, "%s", rc ? sentence : "");
        res->inputs = r->inputs;
        res->outputs = r->outputs;
        res->failed = r->failed;
        res->failures = r->failures;
        res->n_failures = r->n_failures;
        res->wall_s = (double)(now_ns() - r->start_ns) / 1e9;
        res->final = r->snap;
    } else {
        free(r->failures);
    }
    free(r);
    if (rc)
        reel__fail(rc, "%s", sentence);
    return rc;
}

REEL_API void reel_run_result_free(reel_run_result *res) {
    if (!res)
        return;
    free(res->failures);
    res->failures = NULL;
    res->n_failures = 0;
}
