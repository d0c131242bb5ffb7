/*
 * reel/actor.h - stage actors as processes that exchange only object IDs.
 *
 * An actor is a pipeline stage written in C: setup() once per worker process,
 * process() once per task, teardown() at the end. Each worker is its own OS
 * process, forked from a zygote that reel_runtime_start() creates before the
 * program starts any thread or CUDA context, so a worker can be added at any
 * time. Workers die with their driver (PR_SET_PDEATHSIG).
 *
 * A task is a task ID, an attempt number and up to REEL_TASK_MAX_INPUTS object
 * IDs, or a list object naming any number of them (see "Lists" below). Tasks reach a worker through
 * a bounded lock-free queue in shared memory (its slots: tasks prefetched per worker); results come
 * back the same way. Inputs are zero-copy views into the object store; outputs are new store
 * objects whose IDs derive from the task ID and the output index, so a retried
 * task writes exactly the IDs its first attempt would have written.
 *
 * Supervision, as in Ray: a worker that dies (a signal, an exit, a hang past
 * the stage's task timeout) is noticed at once through its pidfd and replaced,
 * up to max_restarts; the tasks it held go back to the queue with their
 * attempt number raised, up to max_retries, each told how it ended ("worker 3
 * (pid 4242) killed by SIGSEGV while running task <hex>"). A task whose
 * process() returns an error is retried the same way. A task that fails for
 * good comes back from reel_pool_collect() with its error.
 *
 * Work stealing, as Cosmos-Xenna's workers take queued work: a task a worker
 * has only prefetched, behind one it has been running for 100 ms or more (or
 * while its setup has taken that long), is taken back and given to an idle
 * worker, so a stuck worker never traps work another could do. A task is
 * begun by exactly one worker: it is either started by its holder or taken
 * back unseen (both pop it from the holder's queue, which gives it to one).
 *
 * Errors follow reel/store.h: 0 or a negative code; reel_strerror() names it,
 * reel_last_error() may add a sentence.
 *
 * A complete stage, in one file:
 *
 *     static int upper(reel_actor_ctx *ctx, const reel_view *in, size_t n,
 *                      reel_actor_out *out) {
 *         for (size_t i = 0; i < n; i++) {
 *             uint8_t *buf;
 *             int rc = reel_actor_output(out, in[i].size, NULL, 0, (void **)&buf);
 *             if (rc) return rc;
 *             for (uint64_t k = 0; k < in[i].size; k++)
 *                 buf[k] = toupper(((const uint8_t *)in[i].data)[k]);
 *         }
 *         return 0;
 *     }
 *     const reel_actor_def upper_stage = {.name = "upper", .process = upper, .cpus = 1};
 *
 * Arguments are checked as reel/store.h says ("Arguments"): a NULL where a
 * pointer is needed is -EINVAL with a reel_last_error() sentence naming it,
 * before anything else happens.
 */
#ifndef REEL_ACTOR_H
#define REEL_ACTOR_H

#include <reel/store.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What a task record and a result carry inline; beyond, a list (see "Lists"). */
#define REEL_TASK_MAX_INPUTS  64
#define REEL_TASK_MAX_OUTPUTS 64 /* items and artifacts together */
/* The most IDs one list names: a task's inputs, or its outputs. */
#define REEL_LIST_MAX       (1u << 24)
#define REEL_ACTOR_NAME_MAX 48
#define REEL_ERROR_TEXT_MAX 200

/* The most workers one pool runs. */
#define REEL_POOL_MAX_WORKERS 256u

/* For max_retries and max_restarts, whose 0 means the default: none at all. */
#define REEL_ACTOR_NONE UINT32_MAX

typedef struct reel_actor_ctx reel_actor_ctx;
typedef struct reel_actor_out reel_actor_out;

/* A stage. The runtime copies it at reel_runtime_start(); arg must point at
 * memory that exists before that call (the zygote is forked from it). */
typedef struct reel_actor_def {
    const char *name; /* unique, at most REEL_ACTOR_NAME_MAX - 1 bytes */
    /* Once per worker, before its first task; non-zero fails the worker and
     * is reported with the stage's name. Optional. */
    int (*setup)(reel_actor_ctx *ctx);
    /* Once per task: inputs are zero-copy views valid until it returns; it
     * creates outputs with reel_actor_output(). Returns 0, or a negative code
     * (the task is retried; its outputs are discarded). Required. */
    int (*process)(reel_actor_ctx *ctx, const reel_view *inputs, size_t n, reel_actor_out *out);
    /* Once per worker when it stops cleanly. Optional. */
    void (*teardown)(reel_actor_ctx *ctx);
    void *arg;                /* handed to the callbacks by reel_actor_arg() */
    double cpus;              /* CPUs per worker (default 1) */
    double gpus;              /* GPUs per worker, fractions allowed (default 0) */
    uint64_t memory;          /* bytes per worker (default 0: not accounted) */
    uint32_t batch_size;      /* inputs per task the executor forms (default 1) */
    uint32_t max_retries;     /* further attempts of a failing task (0: 3; REEL_ACTOR_NONE: 0) */
    uint32_t max_restarts;    /* worker replacements per pool (0: 16; REEL_ACTOR_NONE: 0) */
    uint32_t slots;           /* tasks prefetched per worker (default 2) */
    uint32_t task_timeout_ms; /* a task running longer kills its worker (0: none) */
} reel_actor_def;

/* ---- inside a worker ---------------------------------------------------- */

/* The def's arg. */
REEL_API void *reel_actor_arg(reel_actor_ctx *ctx);
/* The store the worker is attached to (for gets beyond its inputs). */
REEL_API reel_store *reel_actor_store(reel_actor_ctx *ctx);
/* The worker's index in its pool (0-based, reused by a replacement). */
REEL_API uint32_t reel_actor_worker_index(reel_actor_ctx *ctx);
/* The running task's ID and attempt (1 for the first). */
REEL_API const reel_id *reel_actor_task_id(reel_actor_ctx *ctx);
REEL_API uint32_t reel_actor_attempt(reel_actor_ctx *ctx);
/* Sets the text reported with the error process() or setup() is about to return. */
REEL_API void reel_actor_set_error(reel_actor_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The ID of output index of a task of stage: derived from both, so a retried
 * task names its outputs exactly as before and two stages never collide.
 * Task IDs must be unique within a stage. */
REEL_API void reel_actor_output_id(const char *stage, const reel_id *task_id, uint32_t index,
                                   reel_id *out);

/* Creates the task's next output object, ID reel_actor_output_id(stage, task ID, index).
 * Sealed by the runtime when process() returns 0, discarded otherwise. A
 * task may make any number of outputs: past REEL_TASK_MAX_OUTPUTS its
 * result names them through a list (see "Lists").
 * Errors: -E2BIG (more than REEL_LIST_MAX), -ENOMEM, and reel_obj_create()'s. */
REEL_API int reel_actor_output(reel_actor_out *out, uint64_t size, const void *meta,
                               uint32_t meta_size, void **buf);

/* Passes the running task's input number input on as its next output,
 * without a copy: the result names the input's own ID in that place and
 * marks it in reel_task_result.forwarded. For stages that filter or only
 * look at their items. Errors: -E2BIG (more than REEL_LIST_MAX outputs),
 * -EINVAL (no such input), -EEXIST (that object was passed on already: one
 * object is one item downstream). */
REEL_API int reel_actor_forward(reel_actor_out *out, uint32_t input);

/* ---- artifacts -------------------------------------------------------------
 *
 * An item may carry artifacts: objects of their own (an encoded clip, a
 * clip's frames, a tensor, a preview) that the item's own object names by ID,
 * so that a later stage reads each zero-copy and a stage that adds to an item
 * copies none of what it does not change. An artifact belongs to the item
 * output made right after it (a stage makes the artifacts first, then the
 * item that names their IDs); the executor (reel/pipeline.h) keeps it exactly
 * as long as that item, or the items it is carried on to, may still be read,
 * and deletes it after its last consumer: stages never delete one. In
 * reel_task_result an artifact is an output whose bit is set in artifacts. */

/* Creates an artifact of the task, ID reel_actor_output_id() of its place
 * among the task's outputs, for the next item output the task makes (a
 * process() that returns 0 with an artifact and no item after it fails the
 * task with -EINVAL). Sealed with the outputs, discarded with them.
 * *id receives its ID. Errors: those of reel_actor_output(). */
REEL_API int reel_actor_artifact(reel_actor_out *out, uint64_t size, const void *meta,
                                 uint32_t meta_size, reel_id *id, void **buf);

/* Carries an artifact of one of the task's inputs on to the next item output
 * the task makes, without a copy: an artifact not carried on goes once the
 * task's inputs are done with. The executor checks that it is one of the
 * inputs' (a task that carries anything else fails). Errors: -E2BIG (more
 * than REEL_LIST_MAX outputs), -EEXIST (carried already). */
REEL_API int reel_actor_carry(reel_actor_out *out, const reel_id *artifact);

/* ---- the runtime (driver side) -------------------------------------------- */

typedef struct reel_runtime reel_runtime;

typedef struct reel_runtime_options {
    const char *store;                   /* the store's path or name (required) */
    const reel_actor_def *const *actors; /* every stage this runtime may run */
    size_t n_actors;
    uint64_t spin_ns; /* how long workers and waits spin before sleeping (default 50000) */
    uint32_t flags;   /* REEL_RUNTIME_* */
} reel_runtime_options;

/* Workers and the driver sleep at once when idle instead of spinning first:
 * less CPU, a futex wake-up (tens of microseconds) per hand-off. */
#define REEL_RUNTIME_NO_SPIN 0x1u

/* Starts the zygote, which forks every worker later. Call it before the
 * program starts threads or CUDA, from the thread that outlives the runtime
 * (the zygote dies with that thread: PR_SET_PDEATHSIG). The store must exist.
 * Pools may then be driven from different threads, one thread per pool.
 * Errors: -EINVAL (no actors, a bad or duplicate name, no process),
 * reel_store_open()'s, -errno from fork/socket. */
REEL_API int reel_runtime_start(const reel_runtime_options *opts, reel_runtime **out);

/* Stops every pool still running, all together and as reel_pool_stop(pool,
 * 0) would, then the zygote, and frees the runtime. No process it started
 * outlives this call. Task outputs still in the store are
 * handed to the store (see reel_task_result.outputs). NULL is a no-op. */
REEL_API int reel_runtime_stop(reel_runtime *rt);

/* The driver's own client handle on the store. */
REEL_API reel_store *reel_runtime_store(reel_runtime *rt);

/* ---- pools ----------------------------------------------------------------- */

typedef struct reel_pool reel_pool;

/* Starts workers (at most REEL_POOL_MAX_WORKERS) of the stage named name.
 * Returns once they are forked (their setup may still run). Errors: -ENOENT
 * (no such stage), -EINVAL. */
REEL_API int reel_pool_start(reel_runtime *rt, const char *name, uint32_t workers, reel_pool **out);

/* Grows or shrinks the pool. Shrinking removes workers past setup before any
 * still in setup, the least loaded first; a removed worker finishes the tasks
 * it holds, then exits. It stops counting towards workers at once: growing
 * right after shrinking starts new workers beside those still on their way
 * out. */
REEL_API int reel_pool_resize(reel_pool *pool, uint32_t workers);

/* Submits a task of n (0..REEL_TASK_MAX_INPUTS) input objects (more: see
 * reel_pool_submit_list()). The task ID
 * is derived from the pool and a counter unless task_id points at one (then
 * it is used as given). Waits up to timeout_ms for queue space.
 * Errors: -EINVAL, -ETIMEDOUT (queue full), -EPIPE (the pool has failed).
 * A pool is driven by one thread at a time: submit, collect, resize, stats
 * and stop of one pool must not run concurrently. Supervision (replacing dead
 * workers, retries, timeouts) happens inside these calls. */
REEL_API int reel_pool_submit(reel_pool *pool, const reel_id *inputs, uint32_t n,
                              const reel_id *task_id, int timeout_ms, reel_id *task_id_out);

typedef struct reel_task_result {
    reel_id task_id;
    int status;        /* 0, or the final error */
    uint32_t attempts; /* how many were made */
    uint32_t flags;    /* REEL_RESULT_* */
    /* With REEL_RESULT_OUTPUT_LIST, the number of outputs the list
     * outputs[0] names (more than REEL_TASK_MAX_OUTPUTS). */
    uint32_t n_outputs;
    /* Bit i: outputs[i] is an input passed on (reel_actor_forward), or with
     * its artifacts bit, an input's artifact carried on (reel_actor_carry). */
    uint64_t forwarded;
    uint64_t artifacts; /* bit i: outputs[i] is an artifact of the next item output */
    /* Sealed store objects, now the caller's, except those forwarded. The
     * runtime's client owns them (reel/store.h, "Ownership"): if the driver
     * dies they are deleted; reel_obj_disown() keeps one beyond that, and
     * reel_runtime_stop() hands those left over to the store. */
    reel_id outputs[REEL_TASK_MAX_OUTPUTS];
    uint32_t n_inputs; /* with REEL_RESULT_INPUT_LIST, 1: inputs[0] is the list */
    reel_id inputs[REEL_TASK_MAX_INPUTS];
    char error[REEL_ERROR_TEXT_MAX]; /* "stage: text" when status != 0 */
} reel_task_result;

/* outputs[0] is a list object naming the task's n_outputs outputs, with
 * their forwarded and artifacts bits (forwarded and artifacts here are 0).
 * The list is the caller's like the outputs it names: read it with
 * reel_list_open(), then delete it. */
#define REEL_RESULT_OUTPUT_LIST 0x1u
/* The task was submitted with reel_pool_submit_list(): inputs[0] is its list. */
#define REEL_RESULT_INPUT_LIST 0x2u

/* Waits up to timeout_ms for the next finished task (success or permanent
 * failure), supervising workers meanwhile. Errors: -ETIMEDOUT (after a wait,
 * timeout_ms not 0, reel_last_error() says how many tasks are in flight and
 * queued, and which workers hold them: "1 task in flight, 0 queued: worker 0
 * (pid 4242) holds 1, one running for 5012 ms"), -ENODATA (no task
 * outstanding), -EPIPE (no worker can run: setup failed or restarts
 * exhausted; reel_last_error() says why). */
REEL_API int reel_pool_collect(reel_pool *pool, reel_task_result *out, int timeout_ms);

typedef struct reel_pool_stats {
    uint32_t workers;       /* running or starting */
    uint32_t workers_ready; /* past setup */
    uint64_t submitted, completed, failed, retried;
    uint32_t restarts;
    uint32_t queued;     /* tasks waiting for a worker */
    uint32_t in_flight;  /* tasks held by workers */
    double busy_seconds; /* time workers spent in process(), all together */
    /* Of the tasks of 1 ms or more: their time in process(), the CPU time the
     * workers took meanwhile (every thread), and the time the workers' main
     * threads waited for a CPU. A worker's CPU demand while in a task is
     * cpu_seconds / (measured_seconds - cpu_wait_seconds). */
    double measured_seconds, cpu_seconds, cpu_wait_seconds;
    uint64_t rss_bytes; /* workers' resident memory, as last reported (reel_pool_drain) */
    uint64_t stolen;    /* prefetched tasks taken from a busy worker for an idle one */
} reel_pool_stats;

REEL_API int reel_pool_stats_get(reel_pool *pool, reel_pool_stats *out);

/* Drains the pool: hands no new task to any worker, waits up to timeout_ms
 * until every worker holds none (each answers the drain over its control
 * channel with its statistics), then resumes. Tasks still queued stay queued;
 * results that came in wait for reel_pool_collect(). Errors: -ETIMEDOUT,
 * -EPIPE. */
REEL_API int reel_pool_drain(reel_pool *pool, int timeout_ms);

/* Lists the process IDs of the pool's live workers into pids (at most cap);
 * *count is how many there are. */
REEL_API int reel_pool_workers(reel_pool *pool, pid_t *pids, size_t cap, size_t *count);

/* Stops the pool: waits up to timeout_ms for outstanding tasks (-1: forever,
 * 0: none), then stops the workers and frees the pool. Tasks not begun by
 * then are dropped; a worker still running one is killed (SIGKILL) at once,
 * and with timeout_ms 0 one still in setup too; the others run their
 * teardown, for up to 5 s (200 ms with timeout_ms 0), then are killed. Every
 * worker has exited and been reaped when it returns. Results not collected
 * are dropped and their outputs deleted. */
REEL_API int reel_pool_stop(reel_pool *pool, int timeout_ms);

/* ---- lists ------------------------------------------------------------------
 *
 * A task's inputs and outputs beyond what a task record or a result carries
 * inline (a splitter's hundreds of clips, a gather of all of them) travel as
 * a list: one sealed store object that names object IDs.
 *
 *   offset 0   reel_list_header  "REELLIST", version 1, n
 *   then       reel_id ids[n]
 *   then       uint64_t forwarded[(n + 63) / 64]   bit k: ids[k] was forwarded
 *   then       uint64_t artifacts[(n + 63) / 64]   bit k: ids[k] is an artifact
 *
 * An input list's bits are 0. A list is validated wherever it is read (its
 * size against n, and n against REEL_LIST_MAX): another process wrote it. */

#define REEL_LIST_MAGIC   "REELLIST"
#define REEL_LIST_VERSION 1u

typedef struct reel_list_header {
    char magic[8];
    uint32_t version;
    uint32_t n;
} reel_list_header;

/* A list, read zero-copy from the store (reel_list_open()). */
typedef struct reel_list {
    reel_id id;
    uint32_t n;
    const reel_id *ids;
    const uint64_t *forwarded, *artifacts;
} reel_list;

/* Bit k of a list's bitmap. */
static inline int reel_list_bit(const uint64_t *bits, uint32_t k) {
    return (int)(bits[k >> 6] >> (k & 63) & 1);
}

/* The bytes of a list of n IDs. */
REEL_API uint64_t reel_list_size(uint32_t n);

/* Creates and seals a list object of ID id naming ids[0..n) (bits NULL: all 0).
 * Errors: -E2BIG (n over REEL_LIST_MAX), reel_obj_create()'s. */
REEL_API int reel_list_create(reel_store *store, const reel_id *id, const reel_id *ids, uint32_t n,
                              const uint64_t *forwarded, const uint64_t *artifacts);

/* Takes a reference on the list id and checks it (REEL_ECORRUPT: not a
 * list, or its size does not match its count). Errors: reel_obj_get()'s
 * (waiting up to timeout_ms for it), REEL_ECORRUPT. */
REEL_API int reel_list_open(reel_store *store, const reel_id *id, int timeout_ms, reel_list *out);

/* Drops the reference reel_list_open() took. */
REEL_API void reel_list_close(reel_store *store, reel_list *list);

/* Submits a task whose inputs are every object the list names: its worker's
 * process() sees them as its inputs, in order, zero-copy (a worker holds at
 * most the store's references per client at once: max_refs_per_client). The
 * list stays the caller's; it must live until the task's result is
 * collected. Otherwise as reel_pool_submit(); the result has
 * REEL_RESULT_INPUT_LIST set and the list as its one input. Errors: those of
 * reel_pool_submit(), reel_list_open()'s. */
REEL_API int reel_pool_submit_list(reel_pool *pool, const reel_id *list, const reel_id *task_id,
                                   int timeout_ms, reel_id *task_id_out);

#ifdef __cplusplus
}
#endif

#endif /* REEL_ACTOR_H */
