/*
 * The actor runtime's internals: the pool segment shared by a driver and its
 * workers, and the records that cross it. Never installed.
 *
 * A pool segment is one file under /dev/shm (mode 0600), made by the driver:
 *
 *   +---------------------+ 0
 *   | pool_header         |  magic, version, sizes; the driver's doorbell
 *   +---------------------+ workers_off
 *   | pool_worker[W]      |  per worker slot: live statistics, one cache line each
 *   +---------------------+ rings_off
 *   | W x (task ring,     |  per worker slot: tasks driver -> worker and
 *   |      result ring)   |  results worker -> driver (actors/ring.h)
 *   +---------------------+
 *
 * Why one ring pair per worker rather than one queue per pool: the driver
 * always knows exactly which tasks each worker holds, so when a worker dies
 * they go back to the queue - none lost, none run twice - and a dead worker
 * can never leave a shared queue half-updated. Its capacity is the stage's
 * slots (tasks prefetched per worker).
 *
 * Waking the driver: workers push results and, only if the driver said it
 * sleeps (driver_sleeping), write its eventfd. The driver sleeps in poll()
 * on that eventfd, every worker's pidfd and control socket, so a result, a
 * death and a message all wake it at once.
 */
#ifndef REEL_ACTOR_INTERNAL_H
#define REEL_ACTOR_INTERNAL_H

#include "reel/actor.h"
#include "control.h"
#include "ring.h"

#include <stdalign.h>
#include <stdatomic.h>

#define POOL_MAGIC       "REELPOOL"
#define POOL_VERSION     3u
#define POOL_MAX_WORKERS REEL_POOL_MAX_WORKERS

typedef struct task_record {
    reel_id task_id;
    uint32_t attempt;
    uint32_t flags; /* REEL_RESULT_INPUT_LIST: inputs[0] is a list of the inputs */
    uint32_t n_inputs;
    uint32_t reserved; /* a ring's records are whole 8-byte words */
    reel_id inputs[REEL_TASK_MAX_INPUTS];
} task_record;

typedef struct result_record {
    reel_id task_id;
    uint32_t attempt;
    int32_t status;
    uint32_t n_outputs;
    uint32_t flags; /* REEL_RESULT_OUTPUT_LIST: outputs[0] is a list of the n_outputs */
    uint64_t
        forwarded; /* bit i: outputs[i] is one of the task's inputs, or their artifact, passed on */
    uint64_t artifacts; /* bit i: outputs[i] is an artifact of the next item output */
    uint64_t busy_ns;
    /* Measured on tasks of 1 ms or more (measured_ns, their busy time; else
     * all 0): the worker's CPU time, and its thread's wait for a CPU. */
    uint64_t cpu_ns, wait_ns, measured_ns;
    reel_id outputs[REEL_TASK_MAX_OUTPUTS];
} result_record;

typedef struct pool_worker {
    _Atomic uint64_t task_start_ns; /* CLOCK_MONOTONIC start of the running task, 0 when idle */
    _Atomic uint64_t busy_ns;
    _Atomic uint64_t done;
    _Atomic uint64_t failed;
    _Atomic uint32_t generation; /* which incarnation of the slot these figures belong to */
    _Atomic int32_t pid;
    uint32_t reserved[6];
} pool_worker;

typedef struct pool_header {
    char magic[8];
    uint32_t version;
    uint32_t max_workers;
    uint64_t size;
    uint32_t ring_capacity;
    uint32_t ring_bytes; /* bytes of one ring */
    uint64_t workers_off, rings_off;
    char stage[REEL_ACTOR_NAME_MAX];
    uint64_t reserved[8];
    /* Live figures published by the driver for reel-inspect and the autoscaler. */
    alignas(64) _Atomic uint32_t workers;
    _Atomic uint32_t queued;
    _Atomic uint32_t in_flight;
    _Atomic uint64_t completed, failed, retried, restarts;
    alignas(64) _Atomic uint32_t driver_sleeping;
} pool_header;

/* The runtime's worker entry point, run in a process the zygote forked.
 * Everything the worker creates is owned by the client owner_token names
 * (the driver's runtime), so that it goes when the driver dies. */
int reel__worker_main(const reel_actor_def *def, const char *store_path, const char *pool_path,
                      uint32_t worker, uint32_t generation, int ctl_fd, int event_fd,
                      uint64_t spin_ns, uint64_t owner_token);

/* The index a task's output list derives from its outputs' parent by: past
 * any output's (at most REEL_LIST_MAX of them). */
#define OUTPUT_LIST_INDEX UINT64_MAX

/* The parent ID a task's outputs derive from: (stage, task ID), so that two
 * stages given the same task ID never name the same outputs. */
void reel__output_parent(const char *stage, const reel_id *task_id, reel_id *out);

/* ---- for the pipeline executor (scheduler/), which drives several pools ---- */

/* Fills a new worker's placement (see "cpus" and "cvd" in control.h): its
 * CPU list and CUDA_VISIBLE_DEVICES, each "" to inherit the driver's.
 * Returns 0, or a negative code that fails the spawn. */
typedef int (*reel_pool_placer)(void *arg, uint32_t worker, char cpus[REEL_CTL_PATH_MAX],
                                char cvd[REEL_CTL_PATH_MAX]);

/* reel_pool_start(), with placer (may be NULL) called for every worker it
 * forks, replacements included. */
int reel__pool_start_placed(reel_runtime *rt, const char *name, uint32_t workers,
                            reel_pool_placer placer, void *placer_arg, reel_pool **out);

/* With hold set, tasks handed to workers wake none of them; clearing it wakes
 * each worker that was given one meanwhile, once. For a driver that submits
 * many tasks at once: a sleeping worker is woken once, not once per task.
 * Clear it before waiting for anything. */
void reel__pool_hold_wakes(reel_pool *p, int hold);

/* How long a worker that just became ready is left alone: reel_pool_resize()
 * removes workers past setup and this grace first, then those within it, and
 * those still in setup last. 0 (the default): no grace. */
void reel__pool_set_grace(reel_pool *p, uint64_t grace_ns);

/* A pool's workers, as the executor counts them. */
typedef struct reel_pool_census {
    uint32_t live;     /* running or in setup, not being removed */
    uint32_t setup;    /* of live: still in setup */
    uint32_t settling; /* of live: in setup, or within its grace since ready */
    uint32_t stopping; /* being removed: asked to stop and not exited yet;
                          they still hold their CPUs, GPUs and memory */
} reel_pool_census;

/* Counts p's workers into *out. A ready worker is settling while within
 * the pool's grace (reel__pool_set_grace) since it became ready (the driver
 * read its READY), so a grace period runs from ready, not from the spawn,
 * restarted workers included. Looks for exits first when a worker is being
 * removed, so that stopping falls as soon as they are gone. */
void reel__pool_census(reel_pool *p, reel_pool_census *out);

/* Waits until one of pools[0..n) (NULL entries skipped) has a result to
 * collect, a dead worker or a control message, or until deadline_ns
 * (CLOCK_MONOTONIC); spins for the runtime's spin time first. Returns 1 when
 * something may have happened, 0 at the deadline, -ENOMEM. */
int reel__pools_wait(reel_runtime *rt, reel_pool *const *pools, size_t n, uint64_t deadline_ns);

/* Stops pools[0..n) (NULL entries skipped) together, as reel_pool_stop()
 * does each once its wait is over, and frees them: their workers are asked
 * to stop all at once, so that nothing waits pool by pool. With now set (a
 * stop that would not wait, a cancelled run), a worker in a task or in setup
 * is killed at once and the others have STOP_NOW_GRACE_MS (200 ms) for
 * their teardown before they are killed too; else STOP_GRACE_MS (5 s). */
void reel__pools_stop(reel_pool *const *pools, size_t n, int now);

/* How the pool's last worker to die unasked ended: "worker 3 (pid 4242)
 * killed by SIGSEGV while running task <hex>", or "" if none has. Valid
 * until the pool's next call. */
const char *reel__pool_last_death(const reel_pool *p);

/* Where a worker slot's rings live in a pool segment the driver made (the
 * driver trusts its own header; workers use the copy they validated). */
static inline reel_ring *pool_task_ring(pool_header *h, uint32_t w) {
    return (reel_ring *)((uint8_t *)h + h->rings_off + (uint64_t)w * 2 * h->ring_bytes);
}

static inline reel_ring *pool_result_ring(pool_header *h, uint32_t w) {
    return (reel_ring *)((uint8_t *)h + h->rings_off + ((uint64_t)w * 2 + 1) * h->ring_bytes);
}

static inline pool_worker *pool_worker_at(pool_header *h, uint32_t w) {
    return (pool_worker *)((uint8_t *)h + h->workers_off) + w;
}

#endif
