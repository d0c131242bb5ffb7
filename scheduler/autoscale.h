/*
 * autoscale.h - the autoscaler's decision: how many workers each stage of a
 * streaming pipeline should have. Internal to reel (the executor calls it
 * every autoscale_interval_s); never installed.
 *
 * The decision is a pure function: per-stage measurements, the node's
 * resources and a small caller-held state go in; a worker count per stage and
 * the list of changes come out, with the new state. No clock, no processes,
 * no allocation, nothing printed: the tests drive it with simulated
 * measurements.
 *
 * The model
 *
 * The pipeline is linear: stage i feeds stage i + 1. A "task" of a stage is
 * one item of its input queue; outputs_per_input is how many items a task
 * puts on the next stage's queue. Per stage the autoscaler keeps, in the
 * caller's state, smoothed estimates (the plain mean of the first samples,
 * then an exponential moving average giving each new window a weight of
 * REEL_AUTOSCALE_EMA; a window without a completed task gives no sample):
 *
 *   rate   tasks per second of one worker = 1 / mean task duration (or, when
 *          no duration is given, tasks_per_s / (busy x producing workers));
 *   yield  outputs per input;
 *   var    the relative variance of the rate samples (from successive
 *          samples, so that a real change of rate is not taken for noise).
 *
 * Demand: d_0 = 1 and d_(i+1) = d_i x yield_i, the tasks stage i receives
 * per task of the first stage. Capacity, in first-stage tasks per second:
 *
 *   cap_i(w) = w x rate_i / d_i
 *
 * and the pipeline's throughput is the lowest capacity over the stages that
 * still have work; that stage is the bottleneck. A stage has no more work
 * once its source has ended and its queue is empty (or when d_i is 0): its
 * capacity counts as infinite, so it is the first donor. Capacity counts every
 * worker, those still in setup included, so a stage is never judged slow
 * because its new workers have not started producing yet. Busy share and
 * tasks per second serve only where no task duration is given: the rate a
 * worker can reach does not depend on how much input it gets.
 *
 * Each call runs two phases:
 *
 *  1. Constraints, always applied. A finished stage goes to 0 workers (a
 *     fixed count included: nothing is left to do). A fixed stage goes to its
 *     fixed count and is otherwise left alone. Every other stage is held
 *     within [lower, upper], lower = max(1, min_workers, workers in setup,
 *     and all its current workers while its source has ended and its queue
 *     is not empty), upper = max(max_workers, lower): lower bounds win, since
 *     they protect work in progress. If the allocation exceeds the node, or a
 *     stage is below its lower bound, workers are taken from the stages with
 *     the most capacity to spare.
 *
 *  2. Balance, once every autoscaled stage with work has been measured
 *     (until then nothing can be compared with it). Repeatedly, the
 *     bottleneck gets one more worker: from free resources if they fit it,
 *     otherwise from donors - stages whose capacity stays above the
 *     bottleneck's without the worker, the fastest first, only workers not in
 *     setup, never below a lower bound. It stops when the bottleneck cannot
 *     grow (it is fixed, at its maximum, or nothing fits). Then, as
 *     Cosmos-Xenna's solver prefers the allocation with the least spare
 *     capacity, a worker moves from a stage whose workers are worth much (in
 *     capacity) to one whose workers are worth little, as long as the
 *     throughput does not drop: with 8 CPUs and tasks of 10, 100 and 20 ms,
 *     1/6/1 rather than 1/5/2 (both 50 tasks/s), near the proportional
 *     0.6/6.2/1.2.
 *
 * Hysteresis: the balanced allocation is taken only if it raises the
 * estimated throughput by REEL_AUTOSCALE_GAIN (10%) over phase 1's, and by
 * REEL_AUTOSCALE_REVERSE_GAIN (25%) if it moves a stage against its own
 * change in the last REEL_AUTOSCALE_HOLD calls. Where measurements are noisy
 * (short intervals), the gain must also exceed REEL_AUTOSCALE_NOISE_Z
 * standard deviations of the difference of two stages' smoothed rates (with
 * task durations within +-20%, about 20%). Otherwise only the additions from
 * free resources are kept, if they raise the throughput at all: they take
 * nothing from anyone, so they cannot oscillate. With balanced measurements
 * nothing changes; after a real change of rate the smoothed rate needs a few
 * calls to follow (a stage slowed by half moves workers on the 4th call).
 *
 * Resources: CPUs and GPUs are scalar budgets (packing fractional GPUs onto
 * devices is the placement's job), memory is in bytes. The allocation never
 * exceeds the GPUs or the memory. It may exceed the CPUs by less than
 * cpu_overdraw (0: not at all): workers are whole and CPU time is shared by
 * the kernel, so on a small node one more worker of the bottleneck, put on
 * the last fraction of a CPU, turns idle CPU time into throughput (on 2 CPUs,
 * two single-threaded transcoders beside the light stages of a curation
 * line), where a strict budget would leave most of a CPU idle. The executor
 * counts a worker's CPUs by what it measurably takes (reel_stage_measure), so
 * this never packs many CPU-bound workers onto few CPUs.
 *
 * Applying the result: removals first, then additions (the change list is in
 * that order). Remove idle workers before busy ones, and never one still in
 * setup. A removed worker holds its resources until it has exited: additions
 * start only once what they need is free, and until then count as workers in
 * setup. New workers are reported in workers_setup until their grace period,
 * which starts when they become ready, has passed.
 */
#ifndef REEL_SCHEDULER_AUTOSCALE_H
#define REEL_SCHEDULER_AUTOSCALE_H

#include <stdbool.h>
#include <stdint.h>

/* Exported from libreel for the white-box tests only (tests/test_autoscale.c);
 * not part of the public API. */
#ifndef REEL_INTERNAL
#define REEL_INTERNAL __attribute__((visibility("default")))
#endif

#define REEL_AUTOSCALE_MAX_STAGES   32u   /* stages in one pipeline */
#define REEL_AUTOSCALE_MAX_WORKERS  4096u /* workers of one stage */
#define REEL_AUTOSCALE_EMA          0.3   /* weight of a new sample */
#define REEL_AUTOSCALE_GAIN         0.10  /* least throughput gain for a move */
#define REEL_AUTOSCALE_REVERSE_GAIN 0.25  /* ... for one that undoes a recent change */
#define REEL_AUTOSCALE_HOLD         10u   /* calls a change counts as recent */
#define REEL_AUTOSCALE_NOISE_Z      3.0   /* a move's gain, in standard deviations */

/* One stage, as the executor sees it at the end of a measurement window. */
typedef struct reel_stage_measure {
    /* Allocation now. */
    uint32_t workers;       /* alive, including those in setup */
    uint32_t workers_setup; /* <= workers: in setup or within their grace
                               period; never removed, not yet producing */
    /* Limits. */
    uint32_t min_workers;   /* 0 means 1; <= max_workers when that is set */
    uint32_t max_workers;   /* 0 means REEL_AUTOSCALE_MAX_WORKERS */
    uint32_t fixed_workers; /* 0: autoscaled; else the user's count, kept */
    uint32_t reserved;
    /* Resources of one worker: cpus > 0 or gpus > 0. */
    double cpus;
    double gpus;
    uint64_t memory; /* bytes */
    /* Measurements over the last window; 0 where nothing was measured. */
    double task_s;            /* mean task duration, seconds */
    double tasks_per_s;       /* tasks completed per second */
    double busy;              /* share of the producing workers' time in tasks, 0..1 */
    double outputs_per_input; /* items put downstream per task (0 is valid) */
    uint64_t queue_depth;     /* tasks waiting for a worker */
    bool source_ended;        /* the upstream is finished: no new input */
    bool finished;            /* source ended, queue empty, nothing in flight */
} reel_stage_measure;

/* What the workers may use in all: CPUs x cpu_allocation_percentage, GPUs,
 * memory in bytes. */
typedef struct reel_node_resources {
    double cpus;
    double gpus;
    uint64_t memory;
    double cpu_overdraw; /* CPUs the allocation may exceed cpus by, strictly less */
} reel_node_resources;

typedef struct reel_autoscale_stage_state {
    double rate;            /* smoothed tasks per second of one worker */
    double yield;           /* smoothed outputs per input; 1 until measured */
    double last;            /* the last rate sample */
    double var;             /* smoothed relative variance of rate samples */
    uint32_t rate_samples;  /* windows that gave a rate; 0: rate unknown */
    uint32_t yield_samples; /* windows that gave a yield */
    int32_t dir;            /* direction of the last change: -1, 0, +1 */
    uint32_t since;         /* calls since that change (saturates) */
} reel_autoscale_stage_state;

/* Kept by the caller between calls, one per pipeline. Zero-initialised means
 * fresh (nothing measured yet); reel__autoscale() fills it in. */
typedef struct reel_autoscale_state {
    uint32_t n_stages; /* 0 until the first successful call */
    uint32_t reserved;
    reel_autoscale_stage_state stage[REEL_AUTOSCALE_MAX_STAGES];
} reel_autoscale_state;

/* Why a stage's count changed. */
#define REEL_AUTOSCALE_REASON_MAP(X)                                                               \
    X(NONE, "none")                                                                                \
    X(FINISHED, "finished")       /* the stage is done: all its workers go */                      \
    X(FIXED, "fixed")             /* brought to the user's fixed count */                          \
    X(OVER_MAX, "over-max")       /* above max_workers */                                          \
    X(OVER_BUDGET, "over-budget") /* the allocation exceeded the node */                           \
    X(FLOOR, "floor")             /* raised to its lower bound */                                  \
    X(DONOR, "donor")             /* gives workers to a slower stage */                            \
    X(BOTTLENECK, "bottleneck")   /* the slowest stage gets workers */                             \
    X(BALANCE, "balance")         /* takes a worker that was spare elsewhere */

enum reel_autoscale_reason {
#define REEL_AUTOSCALE_REASON_ENUM_(name, str) REEL_AUTOSCALE_##name,
    REEL_AUTOSCALE_REASON_MAP(REEL_AUTOSCALE_REASON_ENUM_)
#undef REEL_AUTOSCALE_REASON_ENUM_
        REEL_AUTOSCALE_REASON_COUNT_
};

/* One stage's net change: delta workers (< 0: remove), and why. */
typedef struct reel_autoscale_change {
    uint32_t stage;
    int32_t delta;
    uint32_t reason; /* enum reel_autoscale_reason */
} reel_autoscale_change;

typedef struct reel_autoscale_result {
    uint32_t workers[REEL_AUTOSCALE_MAX_STAGES]; /* the new count per stage */
    /* Stages whose count changes, removals first, then additions, each group
     * in stage order. */
    reel_autoscale_change changes[REEL_AUTOSCALE_MAX_STAGES];
    uint32_t n_changes;
    uint32_t bottleneck; /* the stage with the lowest capacity, or UINT32_MAX */
    double throughput;   /* estimated first-stage tasks per second with
                            workers[]; 0 when no stage with work is measured */
} reel_autoscale_result;

/* Decides the next allocation.
 * in stages[n]: the measurements, stage 0 first (1 <= n <= REEL_AUTOSCALE_MAX_STAGES)
 * in node: the resources the workers may use
 * in/out state: the smoothed rates; zero-initialised before the first call,
 *               then passed back unchanged. Updated only on success.
 * out result: the allocation and the changes (entries 0..n-1 are set)
 * Returns 0, or -EINVAL (reel_last_error() says which stage and why) for: a
 * NULL pointer; n 0, too large, or not the state's; a NaN, infinite or
 * negative measurement or resource; busy above 1; workers_setup above workers;
 * min_workers above max_workers; counts above REEL_AUTOSCALE_MAX_WORKERS; a
 * worker with neither CPUs nor GPUs; an unfinished stage whose one worker, or
 * whose fixed count, does not fit the node; or workers that must stay (lower
 * bounds and fixed counts) that together do not fit it. */
REEL_INTERNAL int reel__autoscale(const reel_stage_measure *stages, uint32_t n,
                                  const reel_node_resources *node, reel_autoscale_state *state,
                                  reel_autoscale_result *result);

/* The reason's name ("bottleneck", ...), or "unknown"; static storage. */
REEL_INTERNAL const char *reel__autoscale_reason(uint32_t reason);

#endif
