/*
 * placement.h - the node's resources, and where each worker of a pipeline
 * runs. Internal to reel (the executor uses it); never installed.
 *
 * Three steps, kept apart so that the decision can be tested without a GPU
 * and without processes:
 *
 *  1. reel__node_detect() measures the node, once, in the driver process:
 *     the CPUs of its affinity mask (capped by a cgroup CPU quota), times
 *     cpu_allocation_percentage; the memory available (MemAvailable, or the
 *     cgroup's memory limit less its usage when that is lower); the GPUs the
 *     CUDA runtime sees (reel__node_detect_cpus() leaves them out).
 *     reel__node_set() builds a node by hand (tests, or a launcher that
 *     hands a node its share of a machine).
 *
 *  2. reel__place() is a pure function: stages and a node in, one
 *     reel_worker_placement per worker out, or a refusal that names the
 *     stage and what is missing, before anything starts. It reads no file,
 *     calls no CUDA and allocates nothing.
 *
 *  3. reel__apply_placement() runs in the worker process, before the worker
 *     uses CUDA or starts threads: CPU affinity and CUDA_VISIBLE_DEVICES.
 *
 * GPUs and fork: reel_gpu_count() loads and initializes CUDA in the calling
 * process, and CUDA does not survive fork() (see "Fork" in reel/store.h). So
 * reel__node_detect() counts the GPUs in a short-lived child that reports
 * over a pipe and exits; the caller stays free of CUDA (and of threads), and
 * may call it before reel_runtime_start(), to refuse a pipeline before
 * anything starts. A child that fails, crashes or hangs (60 s) counts as no
 * GPU. A process that has CUDA loaded already counts in place.
 *
 * CPU placement: one cursor walks the node's CPUs round-robin, across stages
 * in stage order. A worker that asks for c >= 1 CPUs gets ceil(c) whole CPUs
 * of its own (while the node has them; the count wraps around the CPU list
 * when rounding up oversubscribes it). Workers asking for less than one CPU
 * share one: they are packed onto the cursor's CPU until their shares reach
 * a whole CPU, then the cursor moves on. A worker that asks for no CPU (a GPU
 * stage that declares cpus = 0) is not pinned: it gets every CPU of the node.
 *
 * GPU placement: shares are counted in units of 1/10000 of a device (as Ray
 * does), so that 10 x 0.1 fills a device exactly. A worker asking for g < 1
 * gets a share of exactly one device; one asking for g >= 1 must ask for a
 * whole number and gets that many devices, each wholly its own. Workers are
 * packed largest request first (stage order, then worker order, among
 * equals), each whole-device worker onto the lowest-numbered free devices,
 * each fractional one best fit: onto the device with the least free share
 * that still holds it, the lowest-numbered among equals. So 8 x 0.25 fill
 * device 0, then device 1; and a 0.5 goes beside another 0.5 before it
 * opens an empty device.
 *
 * The node's GPU ordinals are those of the driver process. When the driver
 * runs with CUDA_VISIBLE_DEVICES set, a worker's CUDA_VISIBLE_DEVICES names
 * the driver's own entries (ordinal 1 of "2,3" is "3"; UUIDs stay UUIDs), so
 * a worker sees the device the driver counted, not another one.
 *
 * Errors: 0 or a negative errno; reel_last_error() holds the sentence.
 */
#ifndef REEL_SCHEDULER_PLACEMENT_H
#define REEL_SCHEDULER_PLACEMENT_H

#include <sched.h> /* cpu_set_t (_GNU_SOURCE) */
#include <stddef.h>
#include <stdint.h>

/* Exported from libreel for the white-box tests only (tests/test_placement.c);
 * not part of the public API. */
#ifndef REEL_INTERNAL
#define REEL_INTERNAL __attribute__((visibility("default")))
#endif

#define REEL_NODE_MAX_CPUS         CPU_SETSIZE /* CPU numbers are below this */
#define REEL_NODE_MAX_GPUS         64u         /* devices counted; more are ignored */
#define REEL_NODE_GPU_ID_MAX       64u   /* a device's CUDA_VISIBLE_DEVICES entry, NUL included */
#define REEL_PLACEMENT_MAX_STAGES  32u   /* stages in one pipeline */
#define REEL_PLACEMENT_MAX_WORKERS 4096u /* workers of one stage */
#define REEL_PLACEMENT_UNITS       10000 /* resource units per CPU or GPU */
#define REEL_PLACEMENT_CVD_MAX     1024u /* CUDA_VISIBLE_DEVICES value, NUL included */

/* ---- the node -------------------------------------------------------------------------------- */

/* What the workers of this node may use. Filled by reel__node_detect() or
 * reel__node_set(); plain data, copyable. */
typedef struct reel_node {
    cpu_set_t cpu_set;                /* the CPUs workers are pinned to */
    uint32_t n_cpus;                  /* CPU_COUNT(&cpu_set), >= 1 */
    uint32_t n_gpus;                  /* CUDA devices, <= REEL_NODE_MAX_GPUS; 0: none */
    double cpu_quota;                 /* cgroup CPU quota in CPUs; 0: none found */
    double cpu_allocation_percentage; /* in (0, 1] */
    double cpus;                      /* usable: min(n_cpus, cpu_quota when set) x percentage */
    uint64_t memory;                  /* bytes usable by the workers, > 0 */
    uint64_t gpu_memory[REEL_NODE_MAX_GPUS]; /* per device, bytes; 0 where unknown */
    /* Per device, its entry for a worker's CUDA_VISIBLE_DEVICES: the driver's
     * own entry when it has CUDA_VISIBLE_DEVICES set, else the ordinal. */
    char gpu_id[REEL_NODE_MAX_GPUS][REEL_NODE_GPU_ID_MAX];
} reel_node;

/* Measures this node (see the top of this file; it forks and reaps one child
 * to count the GPUs, and leaves no process, thread or CUDA state behind).
 *   in  cpu_allocation_percentage: the share of the CPUs workers may use, in
 *       (0, 1] (NeMo Curator's default is 0.95).
 *   out out: the node; zeroed on failure.
 * A cgroup file that is missing, unreadable or malformed is ignored (no
 * limit); no GPU, no CUDA library or any CUDA error gives n_gpus = 0.
 * Errors: -EINVAL (NULL, or a percentage outside (0, 1] or NaN), -EIO
 * (/proc/meminfo unreadable or without MemAvailable, or an empty affinity
 * mask), and the errors of sched_getaffinity(2). */
REEL_INTERNAL int reel__node_detect(double cpu_allocation_percentage, reel_node *out);

/* As reel__node_detect(), without the GPUs (n_gpus = 0): for a pipeline
 * whose stages ask for none. Forks nothing. Same errors. */
REEL_INTERNAL int reel__node_detect_cpus(double cpu_allocation_percentage, reel_node *out);

/* Builds a node by hand: CPUs 0 .. n_cpus - 1, no cgroup quota, GPUs
 * 0 .. n_gpus - 1 named by their ordinals.
 *   in  n_cpus:     1 .. REEL_NODE_MAX_CPUS.
 *   in  cpu_allocation_percentage: in (0, 1].
 *   in  memory:     bytes, > 0.
 *   in  n_gpus:     0 .. REEL_NODE_MAX_GPUS.
 *   in  gpu_memory: NULL (unknown), or n_gpus sizes in bytes.
 *   out out:        the node; zeroed on failure.
 * Errors: -EINVAL. */
REEL_INTERNAL int reel__node_set(uint32_t n_cpus, double cpu_allocation_percentage, uint64_t memory,
                                 uint32_t n_gpus, const uint64_t *gpu_memory, reel_node *out);

/* The cgroup limits found in one cgroup directory (for the tests; detection
 * walks from the process's cgroup up to the root and keeps the lowest):
 * cgroup v2 cpu.max ("max 100000" or "<quota> <period>") and memory.max less
 * memory.current, or cgroup v1 cpu.cfs_quota_us / cpu.cfs_period_us and
 * memory.limit_in_bytes less memory.usage_in_bytes.
 *   in  dir:    the directory.
 *   out cpus:   the CPU quota in CPUs, or 0 when none (or unreadable).
 *   out memory: the bytes still available under the memory limit, or
 *               UINT64_MAX when none.
 * Returns 0, or -EINVAL for a NULL argument. Never fails on file content. */
REEL_INTERNAL int reel__cgroup_limits(const char *dir, double *cpus, uint64_t *memory);

/* ---- placement --------------------------------------------------------------------------------
 */

/* What one stage asks for. */
typedef struct reel_placement_stage {
    const char *name; /* for messages; non-empty */
    double cpus;      /* per worker, >= 0 */
    double gpus;      /* per worker, >= 0: a share below 1, or a whole number */
    uint64_t memory;  /* bytes per worker */
    uint32_t workers; /* 0 .. REEL_PLACEMENT_MAX_WORKERS */
} reel_placement_stage;

/* Where one worker runs. Plain data: hand it to the worker process as is. */
typedef struct reel_worker_placement {
    uint32_t stage;   /* index into the stages */
    uint32_t worker;  /* 0 .. workers - 1 within its stage */
    cpu_set_t cpus;   /* its affinity; never empty */
    uint32_t n_cpus;  /* CPU_COUNT(&cpus) */
    int32_t gpu;      /* its first device ordinal, or -1 for a CPU-only worker */
    uint32_t n_gpus;  /* devices it may use: 0, 1, or its whole number */
    double gpu_share; /* of device gpu: the share it asked for (1 for whole devices) */
    /* Its CUDA_VISIBLE_DEVICES: "" for a CPU-only worker (so it cannot
     * create a CUDA context by accident), else the devices, comma-separated. */
    char cuda_visible_devices[REEL_PLACEMENT_CVD_MAX];
} reel_worker_placement;

/* Decides where every worker of every stage runs, or refuses the pipeline.
 *   in  stages[n_stages]: 1 <= n_stages <= REEL_PLACEMENT_MAX_STAGES.
 *   in  node: from reel__node_detect() or reel__node_set().
 *   out out[cap]: one entry per worker, stage by stage, workers in order.
 *   in  cap: entries out can hold (out may be NULL when cap is 0).
 *   out n_out: the number of workers in all; set on success and on -ENOBUFS.
 * Checks, in stage order, and refuses with the first that fails:
 *   - -EINVAL: a NULL pointer, no stage or too many, an empty name, a NaN,
 *     infinite or negative request, more than REEL_PLACEMENT_MAX_WORKERS
 *     workers, a worker asking for neither CPUs nor GPUs, GPUs above 1 that
 *     are not a whole number, or a malformed node.
 *   - -ENODEV: "stage transcode needs a GPU and this node has none".
 *   - -ENOSPC: the stages up to this one need more CPUs, memory or GPUs than
 *     the node has ("stage decode: 4 workers x 2.0 CPUs = 8.0 CPUs, the node
 *     has 1.9 (2 CPUs x 0.95)"), or a worker's GPU request fits on no device
 *     once the larger requests are packed.
 *   - -ENOBUFS: cap is below *n_out (nothing else is wrong).
 * On failure out holds nothing of use (entries may be zeroed). Reads nothing
 * but its arguments. */
REEL_INTERNAL int reel__place(const reel_placement_stage *stages, uint32_t n_stages,
                              const reel_node *node, reel_worker_placement *out, uint32_t cap,
                              uint32_t *n_out);

/* Applies a placement to the calling process: its CPU affinity (the calling
 * thread's, inherited by the threads it starts later: call it before
 * starting any) and CUDA_VISIBLE_DEVICES. Call it in the worker, before
 * anything there touches CUDA.
 * Errors: -EINVAL (NULL, an empty CPU set, a CUDA_VISIBLE_DEVICES that is
 * not NUL-terminated), and the errors of sched_setaffinity(2) and setenv(3). */
REEL_INTERNAL int reel__apply_placement(const reel_worker_placement *p);

/* Writes a CPU set as a list of ranges ("0-3,6,8-9") into buf; "" for an
 * empty set. Returns the length it needs (as snprintf), or -EINVAL. */
REEL_INTERNAL int reel__cpuset_format(const cpu_set_t *set, char *buf, size_t cap);

#endif
