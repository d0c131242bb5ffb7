/*
 * The actor runtime's control channel: typed messages between the driver, the
 * zygote and the workers. Internal; never installed.
 *
 * Transport: a connected SOCK_SEQPACKET Unix socket, so one message is one
 * packet and boundaries are kept by the kernel. A packet is at most
 * REEL_CTL_MAX bytes and may carry up to REEL_CTL_MAX_FDS descriptors
 * (SCM_RIGHTS). Only REEL_CTL_SPAWNED carries descriptors, exactly two; every
 * other type carries none. Both ends enforce that, so a descriptor can never
 * arrive on a message whose handler does not expect to close it.
 *
 * Wire format: one msgpack map. Its first key is "t", the type as a positive
 * integer; the other keys are short strings, each value typed and range
 * checked:
 *
 *   key      field        msgpack type   range                        in
 *   "t"      type         uint           REEL_CTL_SPAWN..REEL_CTL_EXIT all
 *   "actor"  actor        uint           <= UINT32_MAX                spawn
 *   "pool"   pool         uint           <= UINT32_MAX                spawn spawned ready
 *   "worker" worker       uint           <= UINT32_MAX                spawn spawned ready
 *   "gen"    generation   uint           <= UINT32_MAX                spawn spawned ready
 *   "path"   path         str            1..255 bytes, no NUL         spawn
 *   "pid"    pid          uint           1..INT32_MAX                 spawned
 *   "done"   done         uint           64-bit                       stats
 *   "failed" failed       uint           64-bit                       stats
 *   "busy"   busy_ns      uint           64-bit                       stats
 *   "rss"    rss          uint           64-bit                       stats
 *   "phase"  phase        uint           1 (setup) or 2 (process)     error
 *   "code"   code         negative int   INT32_MIN..-1                error
 *   "task"   task         bin            exactly 16 bytes             error (see below)
 *   "text"   text         str            0..REEL_ERROR_TEXT_MAX-1, no NUL  error
 *   "cpus"   cpus         str            1..255 bytes, no NUL         spawn (optional)
 *   "cvd"    cvd          str            1..255 bytes, no NUL         spawn (optional)
 *
 * A spawn's "cpus" is the worker's CPU affinity as a list ("0-3,6") and its
 * "cvd" the CUDA_VISIBLE_DEVICES it gets ("-1" hides every GPU); an empty
 * field in reel_ctl_msg is left out of the encoding and means "inherit".
 * The zygote parses and applies them in the new worker; a list it cannot
 * parse fails that worker's setup.
 *
 * Every field listed for a type is required, except "cpus", "cvd" and "task": a setup error
 * (phase 1) has none, a process error (phase 2) may have one. A decoder
 * rejects a key that appears twice, a key that is not a string, and any field
 * of its type that is missing or out of range; it ignores string keys it does
 * not know, and known keys that do not belong to the type, so a later version
 * may add fields.
 *
 * Every message received is validated before any of it is used: the bytes
 * are bounds-checked (reel__msgpack_check) before msgpack-c sees them, since
 * msgpack-c sizes its allocations from the counts the bytes declare.
 *
 * All functions are thread-safe; two threads must not receive on one socket
 * at the same time if they care which message each gets.
 */
#ifndef REEL_ACTORS_CONTROL_H
#define REEL_ACTORS_CONTROL_H

#include "reel/actor.h"

#include <stddef.h>
#include <stdint.h>

/* Exported from libreel for the white-box tests only; not part of the API. */
#ifndef REEL_INTERNAL
#define REEL_INTERNAL __attribute__((visibility("default")))
#endif

#define REEL_CTL_MAX      65536 /* bytes in one packet, at most */
#define REEL_CTL_MAX_FDS  4     /* descriptors with one packet, at most */
#define REEL_CTL_PATH_MAX 256   /* path[]: at most 255 bytes and the NUL */

enum reel_ctl_type {
    REEL_CTL_SPAWN = 1, /* driver -> zygote: fork (actor, pool, worker, generation, path) */
    REEL_CTL_SPAWNED,   /* zygote -> driver: forked (pool, worker, generation, pid);
                         * fds: [0] the worker's pidfd, [1] its control socket */
    REEL_CTL_READY,     /* worker -> driver: setup done (pool, worker, generation) */
    REEL_CTL_STOP,      /* driver -> worker: finish held tasks, tear down, exit */
    REEL_CTL_DRAIN,     /* driver -> worker: take no new tasks, report when idle */
    REEL_CTL_STATS_REQ, /* driver -> worker: send REEL_CTL_STATS */
    REEL_CTL_STATS,     /* worker -> driver: done, failed, busy_ns, rss */
    REEL_CTL_ERROR,     /* worker -> driver: phase, code, [task], text */
    REEL_CTL_EXIT,      /* driver -> zygote: exit */
};

/* One message, decoded. Fields that do not belong to the type are zero after
 * reel__ctl_decode() and ignored by reel__ctl_encode(). */
typedef struct reel_ctl_msg {
    uint32_t type; /* enum reel_ctl_type */
    uint32_t actor, pool, worker, generation;
    int32_t pid;    /* > 0 */
    uint32_t phase; /* 1 setup, 2 process */
    int32_t code;   /* < 0 */
    int has_task;   /* error: non-zero when task is set (phase 2 only) */
    reel_id task;
    uint64_t done, failed, busy_ns, rss;
    char path[REEL_CTL_PATH_MAX];   /* NUL-terminated, not empty */
    char text[REEL_ERROR_TEXT_MAX]; /* NUL-terminated, may be empty */
    char cpus[REEL_CTL_PATH_MAX];   /* spawn: CPU list; "" inherits */
    char cvd[REEL_CTL_PATH_MAX];    /* spawn: CUDA_VISIBLE_DEVICES; "" inherits */
} reel_ctl_msg;

/* Encodes msg into buf (cap bytes); *len (out) is the encoding's length. No
 * encoding is longer than 1 KiB.
 * Returns 0, -EINVAL (NULL argument, unknown type, a field of the type out of
 * range: a string not NUL-terminated inside its array or an empty path, pid
 * <= 0, code >= 0, phase not 1 or 2, a task with phase 1), -ENOSPC (cap too
 * small; buf holds garbage). */
REEL_INTERNAL int reel__ctl_encode(const reel_ctl_msg *msg, void *buf, size_t cap, size_t *len);

/* Decodes and validates one message: buf[0..len) must be exactly one message
 * (no trailing bytes, len <= REEL_CTL_MAX). *out (out) is written only on
 * success. Returns 0, or -EBADMSG with reel_last_error() saying what was
 * wrong. It allocates at most a small multiple of len, whatever the bytes. */
REEL_INTERNAL int reel__ctl_decode(const void *buf, size_t len, reel_ctl_msg *out);

/* Sends msg as one packet with nfds descriptors fds[0..nfds) (duplicated into
 * the receiver; the caller keeps its own). nfds must be 2 for REEL_CTL_SPAWNED
 * and 0 otherwise (fds may then be NULL). Blocks while the socket's buffer is
 * full unless sock is non-blocking; retries EINTR; never raises SIGPIPE.
 * Returns 0, -EINVAL (as reel__ctl_encode, a wrong nfds, a negative fd),
 * -EPIPE (the peer is gone), -EAGAIN (non-blocking sock, buffer full), or
 * another -errno from sendmsg. */
REEL_INTERNAL int reel__ctl_send(int sock, const reel_ctl_msg *msg, const int *fds, int nfds);

/* Receives one message into *out, waiting up to timeout_ms (negative: forever,
 * 0: do not wait). Uses REEL_CTL_MAX bytes of stack for the packet.
 * Descriptors that came with it are stored in fds_out[0..*nfds) (fds_out has
 * room for REEL_CTL_MAX_FDS), are close-on-exec and belong to the caller;
 * after any error none is open and *nfds is 0. A message that is rejected is
 * consumed: the next call gets the next one. Returns 0, or:
 *   -EAGAIN      timeout_ms is 0 and no message is waiting
 *   -ETIMEDOUT   none arrived within timeout_ms
 *   -ECONNRESET  the peer closed its end (and every message it sent was read)
 *   -EMSGSIZE    the packet was longer than REEL_CTL_MAX, or came with more
 *                than REEL_CTL_MAX_FDS descriptors (dropped, descriptors closed)
 *   -EBADMSG     malformed or invalid, an empty packet, or the wrong number of
 *                descriptors for its type (dropped, descriptors closed;
 *                reel_last_error() says why)
 *   -EINVAL      a NULL argument
 *   -errno       from poll or recvmsg (-EBADF, -ENOTSOCK, ...) */
REEL_INTERNAL int reel__ctl_recv(int sock, reel_ctl_msg *out, int *fds_out, int *nfds,
                                 int timeout_ms);

/* The type's name ("spawn", "spawned", "ready", "stop", "drain", "stats_req",
 * "stats", "error", "exit"), or "unknown". A static string. */
REEL_INTERNAL const char *reel__ctl_type_name(uint32_t type);

#endif /* REEL_ACTORS_CONTROL_H */
