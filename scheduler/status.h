/*
 * status.h - a running pipeline's live figures in shared memory, for
 * `reel-inspect pipeline`. Internal to reel; never installed.
 *
 * The executor makes one segment per run, /dev/shm/reel-<uid>/reel-status-<name>, mode
 * 0600, and rewrites it every time its figures change (at most every few
 * milliseconds); it removes it when the run ends. Readers are other
 * processes that trust nothing in it.
 *
 * Layout: a status_segment, whose status is a plain copy of
 * reel_pipeline_status guarded by a sequence lock: the writer makes seq odd,
 * copies, makes it even again; a reader copies and keeps the copy only if
 * seq was the same even number before and after (it retries a few times,
 * then gives up with -EAGAIN).
 *
 * Validation by readers: the file must be a regular file owned by the
 * reader's user, exactly sizeof(status_segment) bytes, with the magic and
 * version; in the copy, n_stages <= REEL_PIPELINE_MAX_STAGES, every string
 * (names, a stage's last death) NUL-terminated within its array, every
 * double finite and >= 0, the mode streaming or batch. Anything else is
 * -EBADMSG with a sentence. (Also: every bool 0 or 1, the driver's pid
 * positive; the entries past n_stages are not looked at, and come back
 * zeroed.)
 *
 * One thread publishes; any number of processes read. The payload moves as
 * 64-bit atomic words, stored with release and loaded with acquire (status.c
 * says why), so there is no data race and a reader never keeps a torn copy.
 */
#ifndef REEL_SCHEDULER_STATUS_H
#define REEL_SCHEDULER_STATUS_H

#include "reel/pipeline.h"

#include <stdatomic.h>
#include <sys/types.h>

#ifndef REEL_INTERNAL
#define REEL_INTERNAL __attribute__((visibility("default")))
#endif

#define REEL_STATUS_MAGIC    "REELSTAT"
#define REEL_STATUS_VERSION  3u             /* 2: reel_stage_status.tasks_per_s; 3: .last_death */
#define REEL_STATUS_PREFIX   "reel-status-" /* under /dev/shm */
#define REEL_STATUS_NAME_MAX 200u           /* the <name> part, at most */

typedef struct status_segment {
    char magic[8];
    uint32_t version;
    uint32_t size; /* sizeof(status_segment) */
    int32_t pid;   /* the driver's */
    uint32_t reserved;
    uint64_t started_ns;  /* CLOCK_REALTIME when the run started */
    _Atomic uint64_t seq; /* odd while the writer copies */
    reel_pipeline_status status;
} status_segment;

typedef struct reel_status_writer reel_status_writer;

/* Creates /dev/shm/reel-<uid>/reel-status-<name> (name: 1..REEL_STATUS_NAME_MAX bytes
 * of [A-Za-z0-9._-]), replacing a stale one whose driver is gone; -EEXIST if
 * a live process owns it. The segment starts as an empty status (no stages).
 * Errors: -EINVAL (a bad name), -EEXIST (a live driver's, or a file there
 * that is not a status segment of this user's), -ENOMEM, or the errno of a
 * failed file call; reel_last_error() says which. *out: free with
 * reel__status_close(). */
REEL_INTERNAL int reel__status_create(const char *name, reel_status_writer **out);
/* Copies s into the segment under the sequence lock. */
REEL_INTERNAL void reel__status_publish(reel_status_writer *w, const reel_pipeline_status *s);
/* Removes the segment and frees w. NULL is a no-op. */
REEL_INTERNAL void reel__status_close(reel_status_writer *w);

/* Reads a segment by name (as given to create) or by path (one with a '/').
 * out status: the validated copy; out pid: the driver's pid (NULL: not
 * wanted). Errors: -ENOENT, -EACCES, -EBADMSG (see above), -EAGAIN, -EINVAL
 * (a bad name); reel_last_error() names the file and what is wrong. */
REEL_INTERNAL int reel__status_read(const char *name, reel_pipeline_status *status, pid_t *pid);

/* Calls fn for every /dev/shm/reel-<uid>/reel-status-* segment's name (the <name>
 * part), stopping early if fn returns non-zero. Returns how many it saw, or
 * the negative errno of a failed opendir. Files whose <name> is not a valid
 * name are skipped; the segments themselves are not read. */
REEL_INTERNAL int reel__status_list(int (*fn)(void *arg, const char *name), void *arg);

/* The segment at path exists. Removes it if it is a status segment of this
 * user's whose driver is gone (and, when owner is not 0, whose driver was
 * owner): 0 (also when it vanished meanwhile: the caller tries again).
 * -EEXIST, with the reason, when it must stay. */
REEL_INTERNAL int reel__status_remove_stale(const char *path, pid_t owner);

/* Removes the segments a killed driver left under a name that ends in its
 * own pid ("<pipeline>-<pid>", the default): no later run will ever have that
 * name and replace it, as a run of an explicit name does. */
REEL_INTERNAL void reel__status_sweep(void);

/* Whether name is a valid <name> (see reel__status_create). */
REEL_INTERNAL bool reel__status_name_ok(const char *name);

/* Whether a driver's pid names a live process: false only when it is gone
 * for sure (no such process, or a zombie). */
REEL_INTERNAL bool reel__status_pid_alive(pid_t pid);

/* `reel-inspect pipeline ...` (scheduler/inspect_pipeline.c, linked into
 * reel-inspect, not the library): argv[0] is "pipeline". Returns the exit
 * code. */
int reel__inspect_pipeline_main(int argc, char **argv);

#endif
