/*
 * reel/pipeline.h - pipelines of stage actors, run in streaming or batch
 * mode, with NeMo Curator's executor settings and an autoscaler.
 *
 * A pipeline is a line of stages (reel/actor.h): the items a stage's tasks
 * output are the inputs of the next stage. The executor forms tasks of
 * batch_size items, runs each stage as a pool of worker processes, moves
 * object IDs between them and deletes the intermediate objects once the next
 * stage is done with them. Pipeline inputs stay the caller's; the last
 * stage's outputs are handed to the caller.
 *
 * Fan-out and fan-in. A task may output any number of items (a splitter:
 * one per clip or chunk of clips), each a task of its own downstream; past
 * REEL_TASK_MAX_OUTPUTS outputs its result names them through an output list
 * (reel/actor.h, "Lists"), which the executor reads and deletes. A stage
 * added with gather set takes, in one task, every item that reached it from
 * one pipeline input, however many (past REEL_TASK_MAX_INPUTS through an
 * input list the executor makes), once no item of that input is left before
 * it (queued, in a task, or failed for good under ignore_failures: then the
 * gather has the others; none left, no task). Its batch_size is ignored;
 * the stages before it take one item per task (a result does not say which
 * input of a batch each output came from). One stage of a pipeline may
 * gather, not the first. A stage whose tasks fan out wider than the queue
 * after it is bounded still gets one task at a time while that queue has
 * room.
 *
 * Lifetimes. Every object a run makes is the executor's: an item lives until
 * the stage after it is done with it; an artifact (reel/actor.h) until the
 * item it belongs to goes, unless the task that consumed that item carried
 * it on to an item of its own. A failed task's inputs go with their
 * artifacts; a stopped or cancelled run deletes everything it made, so the
 * store is as it was. Items of the last stage are handed to the caller with
 * their artifacts (their bits set in reel_task_result.artifacts), in results
 * of at most REEL_TASK_MAX_OUTPUTS outputs: one task's items in several
 * calls of on_output where they are more, each whole items with the
 * artifacts in front of them.
 *
 *   reel_pipeline *p;
 *   reel_pipeline_new("curate", &p);
 *   reel_pipeline_add(p, &reader_stage, NULL);
 *   reel_pipeline_add(p, &split_stage, &(reel_stage_options){.batch_size = 4});
 *   reel_pipeline_describe(p, stdout);
 *   reel_run_options run = {.store = "reel-demo", .inputs = ids, .n_inputs = n,
 *                           .on_output = keep, .arg = &mine};
 *   reel_run_result res;
 *   int rc = reel_pipeline_run(p, &run, &res);
 *   reel_run_result_free(&res);
 *   reel_pipeline_free(p);
 *
 * Streaming (the default) runs every stage at once. Between stages the queue
 * is bounded (workers x slots x batch size x 2 of the consuming stage, at
 * least REEL_PIPELINE_QUEUE_MIN items), and a stage is given no new task
 * while the queue after it is full, so a slow stage holds back its producers
 * and memory stays bounded. Autoscaled stages start at their floor (1, or
 * min_workers) plus the CPUs left spread over them a worker at a time; every
 * autoscale_interval_s the autoscaler then moves workers towards the slowest
 * stage, counting a worker for the CPUs it measurably takes in a task (CPU
 * time of all its threads over the time it ran or waited for a CPU) when
 * that is more than it asked for. Batch runs one stage after another, each
 * with all the workers that fit, every intermediate kept in the store
 * (spilled as needed). Task IDs derive from the run ID and the items a task
 * takes, so with batch size 1 and one run ID both modes name every output
 * the same.
 *
 * reel_pipeline_run() starts its own actor runtime, whose zygote is forked
 * from the calling thread: call it before the program starts other threads or
 * CUDA (see reel/actor.h). When a stage asks for GPUs it counts them through
 * the CUDA runtime in a short-lived child process, so that the calling
 * process itself never initializes CUDA.
 *
 * Errors: 0 or a negative code; reel_strerror() names it, reel_last_error()
 * holds the sentence.
 *
 * Arguments are checked as reel/store.h says ("Arguments"): a NULL where a
 * pointer is needed is -EINVAL with a reel_last_error() sentence naming it,
 * before anything else happens.
 */
#ifndef REEL_PIPELINE_H
#define REEL_PIPELINE_H

#include <reel/actor.h>

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define REEL_PIPELINE_MAX_STAGES 32u
#define REEL_PIPELINE_NAME_MAX   64u
#define REEL_PIPELINE_QUEUE_MIN  64u /* items a queue between stages may always hold */

/* ---- executor configuration (NeMo Curator's keys and defaults) ---------- */

typedef enum reel_execution_mode {
    REEL_EXEC_STREAMING = 0, /* all stages at once, bounded queues between them */
    REEL_EXEC_BATCH = 1,     /* one stage after another */
} reel_execution_mode;

typedef struct reel_executor_config {
    double logging_interval;            /* seconds between status lines (60) */
    bool ignore_failures;               /* record a failed task and go on (false) */
    reel_execution_mode execution_mode; /* (streaming) */
    double cpu_allocation_percentage;   /* share of the node's CPUs to use (0.95) */
    double autoscale_interval_s;        /* seconds between autoscaler decisions (180) */
} reel_executor_config;

/* The defaults above. */
REEL_API void reel_executor_config_defaults(reel_executor_config *cfg);
/* One key from text ("logging_interval", "30"). -EINVAL names the key. */
REEL_API int reel_executor_config_set(reel_executor_config *cfg, const char *key,
                                      const char *value);
/* A JSON file of those keys over cfg ({"execution_mode": "batch"}). Strict:
 * an unknown key, a duplicate or a bad value is -EINVAL naming the key and
 * the line. */
REEL_API int reel_executor_config_load(reel_executor_config *cfg, const char *path);
/* One command-line flag at argv[*i] (--logging-interval 30, --ignore-failures,
 * --execution-mode batch, --cpu-allocation-percentage 0.5,
 * --autoscale-interval-s 5): 1 if it was one (and *i moved past its value),
 * 0 if it is not one, -EINVAL for a bad value. */
REEL_API int reel_executor_config_parse_flag(reel_executor_config *cfg, int argc, char **argv,
                                             int *i);
/* The flags' help, one line each; static storage. */
REEL_API const char *reel_executor_config_flags_help(void);
/* 0, or -EINVAL naming the first bad field. */
REEL_API int reel_executor_config_validate(const reel_executor_config *cfg);

/* ---- building a pipeline -------------------------------------------------- */

typedef struct reel_pipeline reel_pipeline;

/* Per-stage overrides of the actor's definition; zero means "the actor's". */
typedef struct reel_stage_options {
    double cpus;          /* CPUs per worker */
    double gpus;          /* GPUs per worker: a share below 1 or a whole number */
    uint64_t gpu_memory;  /* bytes of GPU memory per worker, instead of gpus:
                             becomes the share of the smallest device it needs */
    uint64_t memory;      /* bytes per worker */
    uint32_t batch_size;  /* items per task, 1..REEL_TASK_MAX_INPUTS */
    uint32_t workers;     /* a fixed worker count; 0: autoscaled */
    uint32_t min_workers; /* autoscaled stages: bounds (0: 1 and no upper bound) */
    uint32_t max_workers;
    uint32_t slots;      /* tasks prefetched per worker */
    bool gather;         /* a task takes every item of one pipeline input (above) */
    const char *inputs;  /* what one item in is, for describe ("video path") */
    const char *outputs; /* what one item out is, for describe ("clip") */
} reel_stage_options;

/* A new empty pipeline named name (1..REEL_PIPELINE_NAME_MAX - 1 bytes). */
REEL_API int reel_pipeline_new(const char *name, reel_pipeline **out);

/* Appends a stage running actor, with opts (NULL: none). The definition is
 * copied; actor->arg must stay valid until the run ends. Stage names (the
 * actors') are unique within a pipeline. Errors: -EINVAL (a duplicate name,
 * an override out of range, gpus and gpu_memory both set, min above max, a
 * batch above REEL_TASK_MAX_INPUTS), -E2BIG (more than
 * REEL_PIPELINE_MAX_STAGES). */
REEL_API int reel_pipeline_add(reel_pipeline *p, const reel_actor_def *actor,
                               const reel_stage_options *opts);

/* Prints the pipeline as NeMo Curator's Pipeline.describe() does: its name,
 * its number of stages and, per stage, resources, batch size, workers,
 * inputs and outputs. */
REEL_API int reel_pipeline_describe(const reel_pipeline *p, FILE *out);

REEL_API void reel_pipeline_free(reel_pipeline *p);

/* ---- running it ------------------------------------------------------------- */

/* Live figures of one stage (also published in shared memory for
 * `reel-inspect pipeline`). Counts are in items unless they say tasks. */
typedef struct reel_stage_status {
    char name[REEL_ACTOR_NAME_MAX];
    uint32_t workers;       /* alive, in setup included, those being removed not */
    uint32_t workers_setup; /* in setup or their grace period (from ready) */
    uint64_t queued;        /* items waiting for this stage */
    uint64_t queue_bound;   /* the most its queue is meant to hold (0: unbounded) */
    uint64_t in_flight;     /* items in tasks handed to workers */
    uint64_t items_in;      /* items done (their tasks succeeded or failed for good) */
    uint64_t items_out;     /* items it passed on */
    uint64_t tasks_done, tasks_failed, retries, restarts;
    double items_per_s; /* items done per second, over the last window */
    double tasks_per_s; /* tasks (batches) done or failed for good per second, last window */
    double busy;        /* share of its workers' time in process(), last window */
    bool finished;      /* nothing more will come to it */
    /* How its last worker to die unasked ended: "worker 3 (pid 4242) killed
     * by SIGSEGV while running task <hex>", or "" if none has. */
    char last_death[REEL_ERROR_TEXT_MAX];
} reel_stage_status;

typedef struct reel_pipeline_status {
    char name[REEL_PIPELINE_NAME_MAX];
    uint32_t n_stages;
    reel_execution_mode mode;
    double elapsed_s;
    uint64_t inputs_read; /* pipeline inputs taken from the source */
    uint64_t outputs;     /* items the last stage handed to on_output */
    uint64_t failures;    /* tasks that failed for good */
    uint32_t autoscale_rounds;
    bool finished;
    reel_stage_status stage[REEL_PIPELINE_MAX_STAGES];
} reel_pipeline_status;

/* A task that failed for good. */
typedef struct reel_failure {
    uint32_t stage;
    int status;
    reel_id task_id;
    /* The pipeline input its (first) item came from. Where a stage took
     * batches of several items, its outputs are taken to follow their inputs
     * in order, as many outputs for each input; when the counts do not divide,
     * all of them are charged to the batch's first input. */
    reel_id origin;
    uint32_t n_inputs; /* all of them; a gather's may be more than inputs holds */
    reel_id inputs[REEL_TASK_MAX_INPUTS]; /* the first REEL_TASK_MAX_INPUTS */
    char error[REEL_ERROR_TEXT_MAX];
} reel_failure;

#define REEL_RUN_MAX_RECORDED_FAILURES 10000u

typedef struct reel_run_options {
    const char *store;                  /* the store's path or name (required) */
    const reel_executor_config *config; /* NULL: the defaults */
    /* The source: inputs[0..n_inputs) are given to the first stage in order,
     * then, when next_input is set, what it returns: 1 and *id, 0 at the
     * end, or -EAGAIN when it has none yet (a source fed over time: it is
     * asked again within 100 ms, or sooner when the run has news; a batch
     * run waits for the end); another negative code stops the run. It is
     * called from the run's loop: it must not block. The objects stay the
     * caller's. */
    const reel_id *inputs;
    size_t n_inputs;
    int (*next_input)(void *arg, reel_id *id);
    /* Each successful task of the last stage. Its outputs are the caller's
     * from then on (keep or delete them), except those whose bit is set in
     * forwarded: those are objects that already existed (an input passed on).
     * They are the store's (nobody owns them), so they outlive the driver;
     * objects still inside the run are owned by the driver and go with it if
     * it dies. NULL: the outputs are deleted. */
    void (*on_output)(void *arg, const reel_task_result *result);
    /* Called with the live figures after each status line and autoscaler
     * round, and once at the end. Optional. */
    void (*on_status)(void *arg, const reel_pipeline_status *status);
    /* Each task that fails for good, as it is recorded: the record that
     * reel_run_result.failures holds at the end (where there is room for
     * it), given while the run goes on (under ignore_failures). Optional. */
    void (*on_failure)(void *arg, const reel_failure *failure);
    /* A pipeline with a gathering stage: an input none of whose items
     * reached that stage (each failed for good, or a stage made nothing of
     * it), so that it has no gathering task. Called once per such input, when
     * its last item ended (after on_failure for it). Optional. */
    void (*on_ungathered)(void *arg, const reel_id *origin);
    void *arg;
    FILE *log; /* status lines and the end-of-run summary; NULL: stderr */
    /* Task IDs, and so output IDs, derive from the run ID, the stage and the
     * task's inputs. NULL: a random one, so that no two runs name an object
     * alike; give the same one to two runs to make them name their outputs
     * alike (not at the same time in one store). */
    const reel_id *run_id;
    /* Name of the shared-memory status segment (/dev/shm/reel-<uid>/reel-status-<name>)
     * read by `reel-inspect pipeline`; NULL: the pipeline's name and the pid.
     * A driver that dies without removing it leaves it for `reel-inspect
     * pipeline` to show; the next run of the same name replaces it, and the
     * next run of any name removes those named "<anything>-<pid of their own
     * dead driver>", as the default names are. */
    const char *status_name;
    uint32_t flags; /* REEL_RUN_* */
    /* Optional. Once *cancel is non-zero (set it from a signal handler, say),
     * the run stops as on a failure - no new task, the workers stopped,
     * every intermediate object deleted - and returns -ECANCELED. It is seen
     * within 100 ms; stopping then waits for no task in flight: every
     * stage's workers are stopped together, one in a task or in setup is
     * killed at once, the others have 200 ms for their teardown. */
    const volatile sig_atomic_t *cancel;
} reel_run_options;

/* Workers and the executor sleep at once when idle. Without it they spin
 * briefly first, but only when every stage's workers ask for at least one
 * CPU: smaller workers outnumber the CPUs, and spinners would hold the CPUs
 * their partners need. */
#define REEL_RUN_NO_SPIN      0x1u
#define REEL_RUN_QUIET        0x2u /* no status lines */
#define REEL_RUN_NO_AUTOSCALE 0x4u /* keep the first allocation */

typedef struct reel_run_result {
    int status;                 /* what reel_pipeline_run returned */
    char error[256];            /* the error that stopped the run, or "" */
    uint64_t inputs, outputs;   /* items taken from the source, handed to on_output */
    uint64_t failed;            /* tasks that failed for good */
    reel_failure *failures;     /* the first REEL_RUN_MAX_RECORDED_FAILURES of them */
    size_t n_failures;          /* entries in failures */
    double wall_s;              /* run time, start of the runtime to the end */
    reel_pipeline_status final; /* the figures at the end */
} reel_run_result;

/* Runs the pipeline to the end of its source.
 * Before anything starts (no runtime, worker or status segment), the
 * stages are placed on the node (CPUs x cpu_allocation_percentage, GPUs,
 * memory); a pipeline that cannot fit is refused (-ENODEV: a stage needs a
 * GPU and there is none; -ENOSPC: more CPUs, GPUs or memory than the node
 * has), naming the stage and what is missing. A task that fails for good is
 * recorded; with ignore_failures the run goes on and returns 0 with the
 * failures in res, otherwise every worker is stopped, every intermediate
 * object deleted, and it returns that task's error (res->error says which
 * stage and input). Unless REEL_RUN_QUIET, the end of the run is logged: the
 * last status lines, then per failure (the first 10) its stage, its input
 * IDs and its error. res (optional) is filled in either way; free it with
 * reel_run_result_free(). */
REEL_API int reel_pipeline_run(reel_pipeline *p, const reel_run_options *opts,
                               reel_run_result *res);

REEL_API void reel_run_result_free(reel_run_result *res);

#ifdef __cplusplus
}
#endif

#endif /* REEL_PIPELINE_H */
