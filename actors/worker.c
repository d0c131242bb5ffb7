/* A worker process: attach to the store and the pool segment, run the stage's
 * setup, then take tasks from this worker's ring until the driver closes it. */
#include "actor_internal.h"
#include "control.h"
#include "store_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct reel_actor_out {
    reel_store *store;
    reel_id parent; /* the task's outputs derive from it: reel_actor_output_id() */
    uint32_t n, cap;
    /* Bit k of forwarded: ids[k] is an input or its artifact passed on, not
     * made here; of artifacts: ids[k] is an artifact of the next item output. */
    reel_id *ids;
    uint64_t *forwarded, *artifacts;
    const reel_id *inputs;
    uint32_t n_inputs;
    /* Room for a result's inline share; past it, the heap (a list's worth). */
    reel_id inline_ids[REEL_TASK_MAX_OUTPUTS];
    uint64_t inline_forwarded, inline_artifacts;
};

static bool out_bit(const uint64_t *bits, uint32_t k) {
    return bits[k >> 6] >> (k & 63) & 1;
}

static void out_set(uint64_t *bits, uint32_t k) {
    bits[k >> 6] |= 1ull << (k & 63);
}

/* Room for one more output: the inline arrays first, then the heap,
 * doubling. -E2BIG past REEL_LIST_MAX, -ENOMEM. */
static int out_reserve(reel_actor_out *out) {
    if (out->n < out->cap)
        return 0;
    if (out->n >= REEL_LIST_MAX)
        return -E2BIG;
    uint32_t cap = out->cap * 2 > REEL_LIST_MAX ? REEL_LIST_MAX : out->cap * 2;
    size_t words = (cap + 63) / 64, old_words = (out->cap + 63) / 64;
    reel_id *ids = malloc(cap * sizeof *ids);
    uint64_t *bits = calloc(2 * words, sizeof *bits);
    if (!ids || !bits) {
        free(ids);
        free(bits);
        return -ENOMEM;
    }
    memcpy(ids, out->ids, out->n * sizeof *ids);
    memcpy(bits, out->forwarded, old_words * sizeof *bits);
    memcpy(bits + words, out->artifacts, old_words * sizeof *bits);
    if (out->ids != out->inline_ids) {
        free(out->ids);
        free(out->forwarded); /* artifacts share its allocation */
    }
    out->ids = ids;
    out->forwarded = bits;
    out->artifacts = bits + words;
    out->cap = cap;
    return 0;
}

static void out_init(reel_actor_out *out, reel_store *store, const reel_id *inputs, uint32_t n) {
    memset(out, 0, offsetof(reel_actor_out, inline_ids));
    out->store = store;
    out->inputs = inputs;
    out->n_inputs = n;
    out->ids = out->inline_ids;
    out->forwarded = &out->inline_forwarded;
    out->artifacts = &out->inline_artifacts;
    out->inline_forwarded = out->inline_artifacts = 0;
    out->cap = REEL_TASK_MAX_OUTPUTS;
}

static void out_free(reel_actor_out *out) {
    if (out->ids != out->inline_ids) {
        free(out->ids);
        free(out->forwarded);
    }
}

struct reel_actor_ctx {
    const reel_actor_def *def;
    reel_store *store;
    uint32_t worker;
    reel_id task_id;
    uint32_t attempt;
    char error[REEL_ERROR_TEXT_MAX];
};

REEL_API void *reel_actor_arg(reel_actor_ctx *ctx) {
    REEL_NEED_OR(ctx, "ctx", NULL);
    return ctx->def->arg;
}

REEL_API reel_store *reel_actor_store(reel_actor_ctx *ctx) {
    REEL_NEED_OR(ctx, "ctx", NULL);
    return ctx->store;
}

REEL_API uint32_t reel_actor_worker_index(reel_actor_ctx *ctx) {
    REEL_NEED_OR(ctx, "ctx", 0);
    return ctx->worker;
}

REEL_API const reel_id *reel_actor_task_id(reel_actor_ctx *ctx) {
    REEL_NEED_OR(ctx, "ctx", NULL);
    return &ctx->task_id;
}

REEL_API uint32_t reel_actor_attempt(reel_actor_ctx *ctx) {
    REEL_NEED_OR(ctx, "ctx", 0);
    return ctx->attempt;
}

REEL_API void reel_actor_set_error(reel_actor_ctx *ctx, const char *fmt, ...) {
    REEL_NEED_OR(ctx, "ctx", );
    REEL_NEED_OR(fmt, "fmt", );
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->error, sizeof ctx->error, fmt, ap);
    va_end(ap);
}

/* Creates the task's next output object: an item, or an artifact. */
static int make_output(reel_actor_out *out, uint64_t size, const void *meta, uint32_t meta_size,
                       void **buf, bool artifact, reel_id *id_out) {
    int rc = out_reserve(out);
    if (rc)
        return rc;
    reel_id id;
    reel_id_derive(&out->parent, out->n, &id);
    rc = reel_obj_create(out->store, &id, size, meta, meta_size, 0, -1, buf);
    if (rc == REEL_EEXISTS) {
        /* Left by an earlier attempt of this task whose result never reached
         * the driver (its worker died): nobody was told of it, so replace it.
         * An unsealed one belongs to a dead worker: reclaim frees it. */
        reel_store_reclaim(out->store, NULL);
        reel_obj_delete(out->store, &id);
        rc = reel_obj_create(out->store, &id, size, meta, meta_size, 0, -1, buf);
    }
    if (rc == 0) {
        if (artifact)
            out_set(out->artifacts, out->n);
        out->ids[out->n++] = id;
        if (id_out)
            *id_out = id;
    }
    return rc;
}

REEL_API int reel_actor_output(reel_actor_out *out, uint64_t size, const void *meta,
                               uint32_t meta_size, void **buf) {
    REEL_NEED(out, "out");
    REEL_NEED(meta || meta_size == 0, "meta");
    REEL_NEED(buf, "buf");
    return make_output(out, size, meta, meta_size, buf, false, NULL);
}

REEL_API int reel_actor_artifact(reel_actor_out *out, uint64_t size, const void *meta,
                                 uint32_t meta_size, reel_id *id, void **buf) {
    REEL_NEED(out, "out");
    REEL_NEED(meta || meta_size == 0, "meta");
    REEL_NEED(id, "id");
    REEL_NEED(buf, "buf");
    return make_output(out, size, meta, meta_size, buf, true, id);
}

REEL_API int reel_actor_carry(reel_actor_out *out, const reel_id *artifact) {
    REEL_NEED(out, "out");
    REEL_NEED(artifact, "artifact");
    for (uint32_t i = 0; i < out->n; i++)
        if (out_bit(out->forwarded, i) && reel_id_equal(&out->ids[i], artifact))
            return -EEXIST;
    int rc = out_reserve(out);
    if (rc)
        return rc;
    out->ids[out->n] = *artifact;
    out_set(out->forwarded, out->n);
    out_set(out->artifacts, out->n);
    out->n++;
    return 0;
}

REEL_API int reel_actor_forward(reel_actor_out *out, uint32_t input) {
    REEL_NEED(out, "out");
    if (input >= out->n_inputs)
        return -EINVAL;
    for (uint32_t i = 0; i < out->n; i++)
        if (out_bit(out->forwarded, i) && reel_id_equal(&out->ids[i], &out->inputs[input]))
            return -EEXIST;
    int rc = out_reserve(out);
    if (rc)
        return rc;
    out->ids[out->n] = out->inputs[input];
    out_set(out->forwarded, out->n);
    out->n++;
    return 0;
}

static void report_error(int ctl_fd, uint32_t phase, int code, const reel_id *task,
                         const char *stage, const char *text) {
    reel_ctl_msg m = {.type = REEL_CTL_ERROR, .phase = phase, .code = code};
    if (task) {
        m.has_task = 1;
        m.task = *task;
    }
    snprintf(m.text, sizeof m.text, "%s: %s", stage, text && *text ? text : reel_strerror(code));
    reel__ctl_send(ctl_fd, &m, NULL, 0);
}

/* Maps and validates the pool segment the driver made: nothing in it is
 * trusted before its sizes agree with the file. */
static int map_pool(const char *path, uint32_t worker, pool_header **out, size_t *size,
                    reel_ring **ring_out, pool_worker **me_out) {
    int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -errno;
    struct stat st;
    pool_header h;
    int rc = 0;
    if (fstat(fd, &st) != 0 || pread(fd, &h, sizeof h, 0) != (ssize_t)sizeof h)
        rc = REEL_ETRUNCATED;
    else if (memcmp(h.magic, POOL_MAGIC, 8) != 0 || h.version != POOL_VERSION)
        rc = REEL_EFOREIGN;
    /* Every sum below is of values bounded first, so none can wrap. */
    else if (h.size != (uint64_t)st.st_size || h.size > (1ull << 40) || worker >= h.max_workers ||
             h.max_workers > POOL_MAX_WORKERS || h.workers_off < sizeof h ||
             h.workers_off > h.size || h.rings_off > h.size || h.ring_bytes > (1u << 24) ||
             h.workers_off + (uint64_t)h.max_workers * sizeof(pool_worker) > h.rings_off ||
             h.rings_off + (uint64_t)h.max_workers * 2 * h.ring_bytes > h.size)
        rc = REEL_ECORRUPT;
    if (rc) {
        close(fd);
        return rc;
    }
    void *base = mmap(NULL, h.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (base == MAP_FAILED)
        return -errno;
    /* From here on, places come from the validated copy h, never from the
     * shared header another process could still change. */
    pool_header *ph = base;
    uint8_t *rings = (uint8_t *)base + h.rings_off + (uint64_t)worker * 2 * h.ring_bytes;
    ring_out[0] = (reel_ring *)rings;
    ring_out[1] = (reel_ring *)(rings + h.ring_bytes);
    *me_out = (pool_worker *)((uint8_t *)base + h.workers_off) + worker;
    if (reel__ring_check(ring_out[0], h.ring_bytes) != 0 ||
        reel__ring_check(ring_out[1], h.ring_bytes) != 0) {
        munmap(base, h.size);
        return REEL_ECORRUPT;
    }
    *out = ph;
    *size = h.size;
    return 0;
}

static uint64_t resident_bytes(void) {
    unsigned long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%lu %lu", &size, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

static void send_stats(int ctl_fd, pool_worker *me) {
    reel_ctl_msg r = {.type = REEL_CTL_STATS,
                      .done = atomic_load(&me->done),
                      .failed = atomic_load(&me->failed),
                      .busy_ns = atomic_load(&me->busy_ns),
                      .rss = resident_bytes()};
    reel__ctl_send(ctl_fd, &r, NULL, 0);
}

/* Answers what the driver asked between tasks. A drain is answered with
 * statistics once this worker holds no task. Returns 1 when it must stop. */
static int serve_control(int ctl_fd, pool_worker *me, reel_ring *tasks, int *drain_pending) {
    for (;;) {
        reel_ctl_msg m;
        int fds[4], nfds = 0;
        int rc = reel__ctl_recv(ctl_fd, &m, fds, &nfds, 0);
        for (int i = 0; i < nfds; i++)
            close(fds[i]); /* the driver never sends a worker fds */
        if (rc == -EBADMSG || rc == -EMSGSIZE)
            continue; /* a malformed message is dropped, the channel goes on */
        if (rc == -EAGAIN)
            break;
        if (rc != 0)
            return 1; /* the driver is gone */
        if (m.type == REEL_CTL_STATS_REQ)
            send_stats(ctl_fd, me);
        else if (m.type == REEL_CTL_DRAIN)
            *drain_pending = 1;
        /* STOP arrives with the task ring closed: the loop ends once it is empty. */
    }
    if (*drain_pending && reel__ring_depth(tasks) == 0) {
        *drain_pending = 0;
        send_stats(ctl_fd, me);
    }
    return 0;
}

/* A worker's CPU time (all threads) and its main thread's wait for a CPU
 * (the second field of /proc/thread-self/schedstat), in ns. */
typedef struct cpu_sample {
    uint64_t cpu_ns, wait_ns;
} cpu_sample;

static bool cpu_sample_take(int sched_fd, cpu_sample *out) {
    char buf[96];
    ssize_t n = sched_fd >= 0 ? pread(sched_fd, buf, sizeof buf - 1, 0) : -1;
    if (n <= 0)
        return false;
    buf[n] = '\0';
    unsigned long long run, wait;
    if (sscanf(buf, "%llu %llu", &run, &wait) != 2)
        return false;
    out->cpu_ns = reel__now_ns(CLOCK_PROCESS_CPUTIME_ID);
    out->wait_ns = wait;
    return true;
}

/* Writes out's outputs as the task's output list, sealed, for a result
 * that cannot carry them inline. Replaces one an earlier attempt left. */
static int write_output_list(reel_actor_out *out, reel_id *list_id) {
    reel_id_derive(&out->parent, OUTPUT_LIST_INDEX, list_id);
    int rc =
        reel_list_create(out->store, list_id, out->ids, out->n, out->forwarded, out->artifacts);
    if (rc == REEL_EEXISTS) {
        reel_store_reclaim(out->store, NULL);
        reel_obj_delete(out->store, list_id);
        rc =
            reel_list_create(out->store, list_id, out->ids, out->n, out->forwarded, out->artifacts);
    }
    return rc;
}

/* The task's inputs: the record's own, or those its input list names. */
typedef struct task_inputs {
    const reel_id *ids;
    uint32_t n;
    reel_list list;
    bool listed;
    reel_view *views;
    reel_view inline_views[REEL_TASK_MAX_INPUTS];
} task_inputs;

static int inputs_get(reel_actor_ctx *ctx, const task_record *t, task_inputs *in) {
    in->ids = t->inputs;
    in->n = t->n_inputs;
    in->listed = false;
    in->views = in->inline_views;
    if (t->n_inputs > REEL_TASK_MAX_INPUTS ||
        ((t->flags & REEL_RESULT_INPUT_LIST) && t->n_inputs != 1))
        return -EINVAL;
    if (t->flags & REEL_RESULT_INPUT_LIST) {
        int rc = reel_list_open(ctx->store, &t->inputs[0], 0, &in->list);
        if (rc) {
            snprintf(ctx->error, sizeof ctx->error, "the task's input list: %s", reel_strerror(rc));
            return rc;
        }
        in->listed = true;
        in->ids = in->list.ids;
        in->n = in->list.n;
        if (in->n > REEL_TASK_MAX_INPUTS && !(in->views = malloc(in->n * sizeof *in->views)))
            return -ENOMEM;
    }
    int rc = in->n > 0 ? reel_obj_get(ctx->store, in->ids, in->n, 0, in->views) : 0;
    if (rc == -ETIMEDOUT) {
        rc = REEL_ENOTFOUND;
        snprintf(ctx->error, sizeof ctx->error, "an input object is not in the store");
    } else if (rc == -EINVAL && in->listed) {
        snprintf(ctx->error, sizeof ctx->error,
                 "%u inputs, more than a worker may hold at once (the store's "
                 "max_refs_per_client)",
                 in->n);
    }
    if (rc)
        in->n = 0; /* nothing to release */
    return rc;
}

static void inputs_put(reel_actor_ctx *ctx, task_inputs *in) {
    for (uint32_t i = 0; i < in->n; i++)
        reel_obj_release(ctx->store, &in->ids[i]);
    if (in->listed)
        reel_list_close(ctx->store, &in->list);
    if (in->views != in->inline_views)
        free(in->views);
}

static int run_task(reel_actor_ctx *ctx, const task_record *t, result_record *r, int ctl_fd) {
    task_inputs in;
    ctx->task_id = t->task_id;
    ctx->attempt = t->attempt;
    ctx->error[0] = '\0';
    int rc = inputs_get(ctx, t, &in);
    reel_actor_out out;
    out_init(&out, ctx->store, in.ids, in.n);
    reel__output_parent(ctx->def->name, &t->task_id, &out.parent);
    if (rc == 0)
        rc = ctx->def->process(ctx, in.views, in.n, &out);
    inputs_put(ctx, &in);
    if (rc == 0 && out.n > 0 && out_bit(out.artifacts, out.n - 1)) {
        rc = -EINVAL;
        snprintf(ctx->error, sizeof ctx->error,
                 "an artifact must be followed by the item output it belongs to");
    }
    for (uint32_t i = 0; i < out.n; i++) {
        if (rc == 0 && !out_bit(out.forwarded, i)) {
            int src = reel_obj_seal(ctx->store, &out.ids[i]);
            if (src && src != REEL_ESEALED) /* a stage may seal its outputs itself */
                rc = src;
        }
    }
    reel_id list_id;
    bool listed = rc == 0 && out.n > REEL_TASK_MAX_OUTPUTS;
    if (listed && (rc = write_output_list(&out, &list_id)) != 0)
        snprintf(ctx->error, sizeof ctx->error, "cannot write the list of its %u outputs: %s",
                 out.n, reel_strerror(rc));
    if (rc != 0) {
        for (uint32_t i = 0; i < out.n; i++)
            if (!out_bit(out.forwarded, i) &&
                reel_obj_abort(ctx->store, &out.ids[i]) == REEL_ESEALED)
                reel_obj_delete(ctx->store, &out.ids[i]);
        report_error(ctl_fd, 2, rc < 0 ? rc : -EIO, &t->task_id, ctx->def->name, ctx->error);
        out.n = 0;
    }
    memset(r, 0, sizeof *r);
    r->task_id = t->task_id;
    r->attempt = t->attempt;
    r->status = rc < 0 ? rc : (rc ? -EIO : 0);
    r->n_outputs = out.n;
    if (rc == 0 && listed) {
        r->flags = REEL_RESULT_OUTPUT_LIST;
        r->outputs[0] = list_id;
    } else if (out.n > 0) {
        r->forwarded = out.forwarded[0];
        r->artifacts = out.artifacts[0];
        memcpy(r->outputs, out.ids, out.n * sizeof(reel_id));
    }
    out_free(&out);
    return rc;
}

int reel__worker_main(const reel_actor_def *def, const char *store_path, const char *pool_path,
                      uint32_t worker, uint32_t generation, int ctl_fd, int event_fd,
                      uint64_t spin_ns, uint64_t owner_token) {
    reel_actor_ctx ctx = {.def = def, .worker = worker};
    pool_header *pool = NULL;
    size_t pool_size = 0;
    reel_ring *rings[2] = {NULL, NULL};
    pool_worker *me = NULL;
    /* Lazily: filling the page tables for the whole store costs a worker
     * tens of milliseconds of CPU at start and again at exit (0.1 ms per MiB
     * each way), far more than the pages a worker touches; the pipeline
     * starts and stops workers as the autoscaler moves them. */
    int rc = reel_store_open(store_path, REEL_OPEN_LAZY, &ctx.store);
    if (rc == 0)
        rc = reel_store_set_owner(ctx.store, owner_token);
    if (rc == 0)
        rc = map_pool(pool_path, worker, &pool, &pool_size, rings, &me);
    if (rc == 0 && def->setup)
        rc = def->setup(&ctx);
    if (rc != 0) {
        report_error(ctl_fd, 1, rc < 0 ? rc : -EIO, NULL, def->name,
                     ctx.error[0] ? ctx.error : "setup failed");
        return 1;
    }
    reel_store_set_spin_ns(ctx.store, spin_ns);
    atomic_store(&me->generation, generation);
    atomic_store(&me->pid, (int32_t)getpid());
    reel_ctl_msg ready = {.type = REEL_CTL_READY, .worker = worker, .generation = generation};
    reel__ctl_send(ctl_fd, &ready, NULL, 0);

    reel_ring *tasks = rings[0];
    reel_ring *results = rings[1];
    task_record t;
    result_record r;
    int stop = 0, drain_pending = 0;
    int idle = 0;           /* timed out since the last task: spun already, sleep at once */
    bool long_tasks = true; /* the last task took 1 ms or more: measure the next */
    int sched_fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
    uint32_t since_control = 0;
    while (!stop) {
        /* Wake at least every 250 ms to answer control messages (a stop also
         * closes the ring, which wakes the pop at once). */
        rc = reel__ring_pop(tasks, &t, idle ? 0 : spin_ns, 250);
        if (rc == -ETIMEDOUT) {
            idle = 1;
            stop = serve_control(ctl_fd, me, tasks, &drain_pending);
            continue;
        }
        idle = 0;
        if (rc != 0)
            break; /* -ESHUTDOWN: the driver closed the ring and it is empty */
        uint64_t start = reel__now_ns(CLOCK_MONOTONIC);
        /* What a worker of this stage takes of the CPUs, measured on tasks
         * long enough for two system calls not to matter: the CPU time of
         * every thread (an encoder's own included), and the time the
         * worker's thread waited for a CPU, so that a worker among too many
         * on too few CPUs still counts for what it would take alone. */
        cpu_sample before = {0};
        bool measure = long_tasks && cpu_sample_take(sched_fd, &before);
        atomic_store_explicit(&me->task_start_ns, start, memory_order_release);
        int trc = run_task(&ctx, &t, &r, ctl_fd);
        uint64_t busy = reel__now_ns(CLOCK_MONOTONIC) - start;
        cpu_sample after;
        if (measure && cpu_sample_take(sched_fd, &after) && after.cpu_ns >= before.cpu_ns &&
            after.wait_ns >= before.wait_ns) {
            r.cpu_ns = after.cpu_ns - before.cpu_ns;
            r.wait_ns = after.wait_ns - before.wait_ns;
            r.measured_ns = busy;
        }
        long_tasks = busy >= 1000000;
        atomic_store_explicit(&me->task_start_ns, 0, memory_order_release);
        atomic_fetch_add_explicit(&me->busy_ns, busy, memory_order_relaxed);
        atomic_fetch_add_explicit(trc ? &me->failed : &me->done, 1, memory_order_relaxed);
        r.busy_ns = busy;
        if (reel__ring_push(results, &r, spin_ns, -1) != 0)
            break;
        /* Pairs with the driver's store of driver_sleeping before its last look
         * at the rings: one of the two sides sees the other. */
        atomic_thread_fence(memory_order_seq_cst);
        if (atomic_load_explicit(&pool->driver_sleeping, memory_order_relaxed)) {
            uint64_t one = 1;
            ssize_t w = write(event_fd, &one, sizeof one);
            (void)w; /* a full eventfd already wakes the driver */
        }
        /* A look at the socket is a system call: only when the queue is
         * empty, or every 64 tasks while it is not. */
        if (++since_control >= 64 || reel__ring_depth(tasks) == 0) {
            since_control = 0;
            stop = serve_control(ctl_fd, me, tasks, &drain_pending);
        }
    }
    if (sched_fd >= 0)
        close(sched_fd);

    if (def->teardown)
        def->teardown(&ctx);
    reel_store_close(ctx.store);
    munmap(pool, pool_size);
    return 0;
}
