/*
 * reel/store.h - the shared-memory object store.
 *
 * A store is one file (mode 0600; a store given by bare name lives in
 * /dev/shm/reel-<uid>, a directory only its user may enter) that every
 * process of the same user maps. Another user can neither attach to it nor
 * plant a file where it is looked for. It holds immutable objects named by 16-byte
 * IDs. The life of an object follows Ray's plasma store:
 *
 *   reel_obj_create()  -> a writable buffer, visible to nobody else
 *   reel_obj_seal()    -> immutable, visible to every process
 *   reel_obj_get()     -> a zero-copy read-only view, counted as a reference
 *   reel_obj_release() -> drops that reference
 *   reel_obj_delete()  -> frees the object once its last reference is gone
 *
 * There is no daemon: every call is plain memory work plus a short critical
 * section under one process-shared robust mutex. A process that dies at any
 * point - holding the lock, holding references, halfway through a create -
 * leaves the store usable: what it held is reclaimed when its death is
 * noticed (at the next open, when space runs short, when the lock reports its
 * owner dead) or by reel_store_reclaim().
 *
 * Errors: every function that can fail returns 0 on success or a negative
 * error code: a negative errno (-ENOMEM, -ETIMEDOUT, ...) or one of the
 * REEL_E* codes below. reel_strerror() names any of them. When a failure has
 * details worth a sentence (how much space was asked for and how much is
 * free, which header field is wrong), reel_last_error() returns that sentence
 * for the calling thread until its next failing call.
 *
 * Arguments: every call of reel's public headers checks each pointer it
 * needs, and each count against its documented bound, before it takes a lock
 * or reads through them. A NULL where a pointer is needed fails with -EINVAL
 * and a reel_last_error() sentence naming the argument ("reel_obj_seal: id is
 * NULL"); a call that returns no code does nothing, and one that returns a
 * pointer returns NULL. So the -EINVAL of a NULL is not repeated under each
 * call's Errors.
 *
 * Observers: a handle opened with REEL_OPEN_OBSERVER reads (stats, listings)
 * and reclaims; every call that would create, get, seal, release, disown or
 * delete an object through it fails with REEL_EOBSERVER and changes nothing.
 *
 * Threads: a reel_store handle may be shared by the threads of one process.
 * It is not valid in a child after fork(): the child opens its own.
 */
#ifndef REEL_STORE_H
#define REEL_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef REEL_API
#define REEL_API __attribute__((visibility("default")))
#endif

/* ---- Errors ------------------------------------------------------------ */

/* reel's own error conditions: X(name, message). Values are -4000 - index. */
#define REEL_ERRNO_MAP(X)                                                                          \
    X(EXISTS, "an object with this ID already exists")                                             \
    X(NOTFOUND, "no such object")                                                                  \
    X(NOTSEALED, "object is not sealed")                                                           \
    X(SEALED, "object is already sealed")                                                          \
    X(NOTOWNER, "object was created by another client")                                            \
    X(NOTREF, "this client holds no reference to the object")                                      \
    X(FULL, "store full")                                                                          \
    X(TOOBIG, "object larger than the store's capacity")                                           \
    X(TOOMANYOBJECTS, "object table full")                                                         \
    X(TOOMANYCLIENTS, "client table full")                                                         \
    X(TOOMANYREFS, "client reference table full")                                                  \
    X(FOREIGN, "file is not a reel store")                                                         \
    X(VERSION, "unsupported store format version")                                                 \
    X(CORRUPT, "store segment is corrupt")                                                         \
    X(TRUNCATED, "store file is truncated")                                                        \
    X(OBSERVER, "operation needs a client handle, not an observer")                                \
    X(BADMETA, "malformed object metadata")                                                        \
    X(SPILLLOST, "a spilled object's file is missing or unreadable")                               \
    X(OWNERGONE, "the client that would own the object is gone")

enum {
#define REEL_ERRNO_ENUM_(name, msg) REEL_E##name##_INDEX_,
    REEL_ERRNO_MAP(REEL_ERRNO_ENUM_)
#undef REEL_ERRNO_ENUM_
        REEL_ERRNO_COUNT_
};

enum {
#define REEL_ERRNO_VALUE_(name, msg) REEL_E##name = -4000 - REEL_E##name##_INDEX_,
    REEL_ERRNO_MAP(REEL_ERRNO_VALUE_)
#undef REEL_ERRNO_VALUE_
};

/* Names an error code: a REEL_E* code, a negative errno, or 0 ("success").
 * Returns a static string, never NULL. */
REEL_API const char *reel_strerror(int err);

/* The detail sentence of the calling thread's last failure, or "" if the last
 * failure left none. Valid until the thread's next reel call. */
REEL_API const char *reel_last_error(void);

/* ---- Object IDs -------------------------------------------------------- */

typedef struct reel_id {
    uint8_t bytes[16];
} reel_id;

#define REEL_ID_HEX_LEN 32 /* characters, without the terminating NUL */

/* Fills out with 16 bytes from the kernel's random source. Returns 0 or a
 * negative errno from getrandom(2). */
REEL_API int reel_id_random(reel_id *out);

/* Derives out deterministically from parent and index (XXH3-128 over both),
 * so that a retried task names its outputs exactly as the first attempt did. */
REEL_API void reel_id_derive(const reel_id *parent, uint64_t index, reel_id *out);

/* Content address: out = XXH3-128 of the size bytes at data. */
REEL_API void reel_id_from_content(const void *data, size_t size, reel_id *out);

/* Writes the 32 lower-case hex digits of id and a NUL into hex. */
REEL_API void reel_id_to_hex(const reel_id *id, char hex[REEL_ID_HEX_LEN + 1]);

/* Parses exactly 32 hex digits (either case) followed by NUL.
 * Returns 0, or -EINVAL for anything else (out is then untouched). */
REEL_API int reel_id_from_hex(const char *hex, reel_id *out);

/* 1 if a and b are the same ID, else 0. */
REEL_API int reel_id_equal(const reel_id *a, const reel_id *b);

/* ---- Stores ------------------------------------------------------------ */

typedef struct reel_store reel_store;

/* Sizes of a new store. Zero in a field means its default. */
typedef struct reel_store_options {
    uint64_t capacity;            /* data bytes (default 256 MiB); rounded up to 4 KiB */
    uint32_t max_objects;         /* object table size (default 65536) */
    uint32_t max_clients;         /* processes attached at once (default 128) */
    uint32_t max_refs_per_client; /* distinct objects one client holds (default 4096) */
    uint32_t flags;               /* REEL_STORE_* */
    /* Spilling: when used memory passes high_water x capacity (default 0.8),
     * or a create cannot fit, sealed objects nobody is reading and that are
     * not evictable are written to files in spill_dir, and read back by the
     * next get. spill_dir must be absolute; it is made with mode 0700 by
     * the first spill. Default: <parent>/reel-spill-<store name>, where
     * parent is the first of /var/tmp and /tmp on a file system with a disk
     * below it (statfs(2): not tmpfs or ramfs), or /var/tmp where neither
     * is. Spilling to a file system held in memory frees no memory: a store
     * whose spill directory is on one says so in
     * reel_store_stats.spill_dir_in_memory, for programs to warn. */
    const char *spill_dir;
    double high_water; /* 0 < high_water <= 1 */
} reel_store_options;

/* Skip pre-faulting the arena at creation (faster to create, slower first use). */
#define REEL_STORE_NO_PREFAULT 0x1u
/* Never spill: a create that cannot fit waits or fails with REEL_EFULL. */
#define REEL_STORE_NO_SPILL 0x2u
/* Pin the creator's arena mapping for the GPU (reel_store_gpu_pin), best effort. */
#define REEL_STORE_GPU_PIN 0x4u

/* Flags for reel_store_open(). */
#define REEL_OPEN_OBSERVER 0x1u /* take no client slot: stats, listing, reclaim only */
#define REEL_OPEN_GPU_PIN  0x2u /* reel_store_gpu_pin() after attaching, best effort */
/* Map the store without filling this process's page tables for all of it
 * up front (which costs about 0.1 ms per MiB of capacity to attach, and as
 * much again to detach): each page is mapped when this process first
 * touches it. For short-lived processes that use a small part of a large
 * store, such as the actor runtime's workers. */
#define REEL_OPEN_LAZY 0x4u

/* Creates a new store at path and attaches to it as a client.
 *   path: a name without '/' ("frames" -> /dev/shm/reel-<uid>/frames, the
 *         directory made mode 0700 and refused, -EACCES, if it is not the
 *         user's own and private) or a file path.
 *   opts: sizes; NULL for all defaults.
 *   out:  the handle; close it with reel_store_close().
 * The file is created with mode 0600 and appears complete or not at all.
 * Errors: -EEXIST (a file is there), -EINVAL (sizes out of range),
 * -ENOSPC/-ENOMEM (the file system cannot hold it), other negative errnos. */
REEL_API int reel_store_create(const char *path, const reel_store_options *opts, reel_store **out);

/* Attaches to an existing store.
 *   flags: 0, or REEL_OPEN_OBSERVER or REEL_OPEN_LAZY, or'd with
 *          REEL_OPEN_GPU_PIN.
 * The header is validated before anything in the file is trusted. Then,
 * under the lock, the segment is audited (whole when no live process is
 * attached, otherwise only where its counters cannot be right): a used
 * counter or object counts
 * that disagree with the objects, an object outside the arena, or two objects
 * sharing arena bytes are repaired (everything is derived again from the
 * object table, and of objects that overlap only the first is kept); the
 * open then succeeds, stats' recoveries counts the repair and
 * reel_last_error() says what was found.
 * Errors: -ENOENT, -EACCES, REEL_EFOREIGN (wrong magic), REEL_EVERSION,
 * REEL_ETRUNCATED (file shorter than its header says), REEL_ECORRUPT
 * (inconsistent sizes or offsets), REEL_ETOOMANYCLIENTS. */
REEL_API int reel_store_open(const char *path, uint32_t flags, reel_store **out);

/* Detaches: releases every reference this client holds, aborts the objects it
 * created but did not seal, hands the objects it owns to the store, frees its
 * client slot, unmaps. NULL is a no-op.
 * Returns 0, or a negative code if the segment was found corrupt (the handle
 * is freed anyway). */
REEL_API int reel_store_close(reel_store *store);

/* Removes the store's file and its spill files. Processes still attached
 * keep their mapping and the spill files their objects are in: those go
 * with the last of them to call reel_store_close() (a process killed
 * instead leaves them, in the spill directory, named by the store).
 * Errors: -ENOENT and other negative errnos from unlink(2). */
REEL_API int reel_store_destroy(const char *path);

/* Destroys the stores a killed program left: those in this user's private
 * directory named <prefix><pid> whose process pid is gone (a program names
 * its own store so, and calls this at start). Returns how many. */
REEL_API unsigned reel_store_destroy_orphans(const char *prefix);

/* The file path of an open store. Valid until reel_store_close(). */
REEL_API const char *reel_store_path(const reel_store *store);

/* The spill directory of an open store, "" if it never spills. Valid until
 * reel_store_close(). */
REEL_API const char *reel_store_spill_dir(const reel_store *store);

/* How long a waiting call spins before it sleeps on a futex, in nanoseconds
 * (default 50000; 0 sleeps at once). Per handle. */
REEL_API void reel_store_set_spin_ns(reel_store *store, uint64_t spin_ns);

/* Finds clients whose process is gone and reclaims what they held: their
 * references are dropped, their unsealed objects freed and the objects they
 * owned deleted.
 *   reclaimed: out, optional; the number of dead clients reclaimed.
 * Works on observer handles. Returns 0 or a negative code. */
REEL_API int reel_store_reclaim(reel_store *store, uint32_t *reclaimed);

/* ---- Ownership ----------------------------------------------------------
 *
 * A sealed object nobody owns is the store's: it stays until someone deletes
 * it. An object may instead be owned by a client, as Ray's objects are owned
 * by the worker that asked for them: when the owner's process dies, whoever
 * reclaims it (reel_store_reclaim(), reel-inspect --reclaim, the next open, a
 * create short of space) deletes what it owned, so that a killed driver
 * leaves nothing behind. An owner that closes its handle hands what it owned
 * to the store. Workers make their outputs owned by their driver this way.
 */

/* This client's owner token, for another process's reel_store_set_owner().
 * It names this attach only: a later client in the same slot has another.
 * Errors: REEL_EOBSERVER. */
REEL_API int reel_store_owner_token(reel_store *store, uint64_t *token);

/* Makes every object this handle creates from now on owned by the client the
 * token names (0: by nobody). A create fails with REEL_EOWNERGONE once that
 * client has closed or been reclaimed, and a seal of an object whose owner
 * went meanwhile frees it and fails the same way.
 * Errors: -EINVAL (not a token of this store), REEL_EOWNERGONE. */
REEL_API int reel_store_set_owner(reel_store *store, uint64_t token);

/* Hands n objects over to the store: nobody owns them any more, and they
 * stay until deleted. Objects not there (or being deleted) are skipped.
 * Errors: REEL_EOBSERVER. */
REEL_API int reel_obj_disown(reel_store *store, const reel_id *ids, size_t n);

/* Spills now, without waiting for memory to run short: sealed objects nobody
 * is reading and that are not evictable, least recently used first, up to
 * bytes (0: all of them), in one spill file (a new one; after 1,024 files
 * still in use, the end of the one with the fewest objects). An object
 * read back or deleted gives its disk space back at once (a hole punched
 * in its file), so the files hold about what is spilled. Useful before a phase that needs
 * the memory (a batch stage), and to measure spilling.
 *   spilled: out, optional; bytes written.
 * Errors: -ENOTSUP (REEL_STORE_NO_SPILL), REEL_EOBSERVER, negative errnos of
 * the writes (-ENOSPC...; the objects then stay in memory). */
REEL_API int reel_store_spill(reel_store *store, uint64_t bytes, uint64_t *spilled);

/* ---- Statistics -------------------------------------------------------- */

typedef struct reel_store_stats {
    uint64_t capacity;     /* data bytes */
    uint64_t used;         /* bytes held by objects, alignment included */
    uint64_t peak_used;    /* the most used has been since the store was created
                              (never reset; kept in the segment, so every process
                              sees the same) */
    uint64_t free;         /* capacity - used */
    uint64_t largest_free; /* largest single free block */
    uint32_t free_blocks;  /* number of free blocks (fragmentation) */
    uint32_t max_objects;
    uint32_t objects;           /* all objects below */
    uint32_t objects_unsealed;  /* created, not yet sealed */
    uint32_t objects_sealed;    /* sealed and visible */
    uint32_t objects_deleting;  /* deleted, waiting for their last release */
    uint32_t objects_evictable; /* sealed, unreferenced and evictable now */
    uint32_t objects_referenced;
    uint32_t max_clients;
    uint32_t clients_alive;
    uint32_t clients_dead; /* not yet reclaimed */
    uint64_t evictions;    /* objects evicted since creation */
    uint64_t evicted_bytes;
    uint64_t reclaims;        /* dead clients reclaimed since creation */
    uint64_t recoveries;      /* times the lock was found held by a dead process */
    uint32_t objects_spilled; /* sealed objects whose bytes are in spill files */
    uint32_t spill_files;     /* spill files on disk */
    uint64_t spilled_bytes;   /* bytes those objects hold on disk */
    uint64_t spill_writes;    /* objects written to spill files since creation */
    uint64_t spill_written_bytes;
    uint64_t restores; /* objects read back since creation */
    uint64_t restored_bytes;
    uint64_t spill_failures;  /* spill passes that could not write */
    uint64_t orphans_deleted; /* objects deleted because their owner died, since creation */
    uint32_t objects_owned;   /* objects a live or dead client owns now */
    /* 1 if the spill directory was on tmpfs or ramfs when the store was
     * created: spilling there frees no memory. Programs print a warning. */
    uint32_t spill_dir_in_memory;
} reel_store_stats;

/* Copies the store's counters into out. Works on observer handles. */
REEL_API int reel_store_stats_get(reel_store *store, reel_store_stats *out);

typedef struct reel_client_info {
    uint32_t slot;
    pid_t pid;
    int alive;          /* 1 if the process still runs */
    uint32_t refs;      /* references it holds, counted per get */
    uint32_t unsealed;  /* objects it created and has not sealed */
    uint64_t attach_ns; /* CLOCK_REALTIME when it attached */
} reel_client_info;

/* Lists the attached clients into out (at most cap), sets *count to how many
 * there are (which may exceed cap). */
REEL_API int reel_store_clients(reel_store *store, reel_client_info *out, size_t cap,
                                size_t *count);

/* Object states as listed by reel_store_objects(). */
enum reel_obj_state {
    REEL_OBJ_UNSEALED = 1,
    REEL_OBJ_SEALED = 2,
    REEL_OBJ_DELETING = 3,
    REEL_OBJ_SPILLED = 4, /* sealed; its bytes are in a spill file until the next get */
};

#define REEL_OBJ_INFO_META_MAX 256

typedef struct reel_obj_info {
    reel_id id;
    uint64_t size;                        /* data bytes */
    uint32_t meta_size;                   /* metadata bytes */
    uint32_t state;                       /* enum reel_obj_state */
    uint32_t refs;                        /* references held, all clients */
    uint32_t flags;                       /* REEL_OBJ_* flags given at create */
    pid_t creator_pid;                    /* the process that created it */
    pid_t owner_pid;                      /* the process owning it; 0: nobody (the store's) */
    uint64_t create_ns;                   /* CLOCK_REALTIME at create */
    uint8_t meta[REEL_OBJ_INFO_META_MAX]; /* the first bytes of the metadata */
} reel_obj_info;

/* Lists the objects into out (at most cap), sets *count to how many there are.
 * A snapshot taken under the lock. */
REEL_API int reel_store_objects(reel_store *store, reel_obj_info *out, size_t cap, size_t *count);

/* ---- Objects ----------------------------------------------------------- */

/* Flags for reel_obj_create() and reel_obj_put(). */
#define REEL_OBJ_EVICTABLE  0x1u /* may be evicted (LRU) when unreferenced and space is short */
#define REEL_OBJ_CONTENT_ID 0x2u /* put only: the ID is the content address, written to *id */

#define REEL_META_MAX 65536u /* largest metadata blob */

/* A zero-copy read-only view of a sealed object. */
typedef struct reel_view {
    reel_id id;
    const void *data; /* 64-byte aligned */
    uint64_t size;
    const void *meta;
    uint32_t meta_size;
} reel_view;

/* Timeouts in milliseconds: 0 never waits, a negative value waits forever. */

/* Creates an object and returns its writable buffer.
 *   id:        the new object's ID.
 *   size:      data bytes (0 is allowed).
 *   meta:      metadata blob copied beside the data (may be NULL if meta_size is 0).
 *   flags:     0 or REEL_OBJ_EVICTABLE.
 *   timeout_ms: how long to wait for space (unreferenced evictable objects are
 *              evicted first, least recently used first).
 *   buf:       out; 64-byte aligned, writable until reel_obj_seal() or
 *              reel_obj_abort() by this client.
 * Errors: REEL_EEXISTS, REEL_ETOOBIG (size exceeds the capacity), REEL_EFULL
 * (no space within the timeout; reel_last_error() says how much was asked and
 * how much is free), REEL_ETOOMANYOBJECTS, -EINVAL (meta_size > REEL_META_MAX
 * or unknown flags), REEL_EOBSERVER. */
REEL_API int reel_obj_create(reel_store *store, const reel_id *id, uint64_t size, const void *meta,
                             uint32_t meta_size, uint32_t flags, int timeout_ms, void **buf);

/* Makes an object immutable and visible, and wakes processes waiting for it.
 * Errors: REEL_ENOTFOUND, REEL_ESEALED, REEL_ENOTOWNER, REEL_EOBSERVER. */
REEL_API int reel_obj_seal(reel_store *store, const reel_id *id);

/* Frees an object its creator has not sealed.
 * Errors: REEL_ENOTFOUND, REEL_ESEALED, REEL_ENOTOWNER, REEL_EOBSERVER. */
REEL_API int reel_obj_abort(reel_store *store, const reel_id *id);

/* Gets views of n sealed objects, waiting up to timeout_ms for those not
 * there or not sealed yet. All or nothing: on success every view is filled
 * and holds one reference, to be dropped with reel_obj_release(); on failure
 * none is held.
 * A spilled object is read back first (the caller sees only a slower get).
 * Errors: -ETIMEDOUT (some object did not appear in time), REEL_ETOOMANYREFS,
 * REEL_ESPILLLOST (a spilled object's file is gone: reel_last_error() names it),
 * REEL_EFULL (no room to read a spilled object back within the timeout),
 * REEL_ECORRUPT, -EINVAL (n is 0 or more than max_refs_per_client, checked
 * before ids is read), REEL_EOBSERVER. */
REEL_API int reel_obj_get(reel_store *store, const reel_id *ids, size_t n, int timeout_ms,
                          reel_view *views);

/* Drops one reference taken by reel_obj_get(). The view's pointers are
 * invalid afterwards. Errors: REEL_ENOTREF, REEL_EOBSERVER. */
REEL_API int reel_obj_release(reel_store *store, const reel_id *id);

/* Deletes a sealed object: at once if nobody references it, otherwise when
 * the last reference is released (it is hidden from new gets meanwhile).
 * Errors: REEL_ENOTFOUND, REEL_ENOTSEALED (abort unsealed objects instead),
 * REEL_EOBSERVER. */
REEL_API int reel_obj_delete(reel_store *store, const reel_id *id);

/* Sets *present to 1 if a sealed, not deleted object with this ID exists. */
REEL_API int reel_obj_contains(reel_store *store, const reel_id *id, int *present);

/* Creates, copies in and seals in one call.
 *   id: in, the ID; with REEL_OBJ_CONTENT_ID, out: the content address.
 * A content-addressed put of bytes already stored (sealed) copies nothing and
 * returns 0; if another client is still writing the same bytes, it waits up
 * to timeout_ms for their seal and returns 0, or REEL_EEXISTS if they were not
 * sealed in time. The content ID is XXH3-128 of the bytes in canonical
 * (big-endian) byte order. From REEL_PUT_THREADS_MIN_SIZE up the bytes are
 * copied on up to REEL_PUT_MAX_THREADS short-lived threads, one per CPU the
 * caller may run on, joined before the call returns (one core's memcpy cannot
 * use the machine's memory bandwidth). Errors: those of reel_obj_create(). */
#define REEL_PUT_THREADS_MIN_SIZE (4u << 20) /* below it, starting threads costs more */
#define REEL_PUT_MAX_THREADS      4u
REEL_API int reel_obj_put(reel_store *store, reel_id *id, const void *data, uint64_t size,
                          const void *meta, uint32_t meta_size, uint32_t flags, int timeout_ms);

/* Creates an object from bytes of a file and seals it: the range
 * [offset, offset + length) of path (length 0: to the end of the file) is
 * read with io_uring straight into the object's buffer, no extra copy.
 *   size_out: out, optional; the object's size.
 * On any failure the object is aborted: nothing is left behind.
 * Errors: -ENOENT and other negative errnos of open(2) and the reads, -EINVAL
 * (not a regular file, a range outside the file), -EIO (the file shrank while
 * it was read), and those of reel_obj_create(). */
REEL_API int reel_obj_put_file(reel_store *store, const reel_id *id, const char *path,
                               uint64_t offset, uint64_t length, const void *meta,
                               uint32_t meta_size, uint32_t flags, int timeout_ms,
                               uint64_t *size_out);

/* Reads [offset, offset + length) of an open file into buf with io_uring
 * (pread where io_uring is not available): for a buffer the caller already
 * has, such as an actor's output object. Errors: -EINVAL, -EIO (the file
 * ended before length bytes), other negative errnos of the reads. */
REEL_API int reel_file_read(int fd, void *buf, uint64_t offset, uint64_t length);

/* ---- Object metadata --------------------------------------------------- */

/* What an object holds. The store treats metadata as opaque bytes; this is
 * reel's own encoding of it (a msgpack map), used by stages and reel-inspect. */
enum reel_meta_kind {
    REEL_META_BYTES = 0,   /* raw bytes */
    REEL_META_ENCODED = 1, /* an encoded container or stream (mp4, h264, ...) */
    REEL_META_FRAME = 2,   /* a decoded video frame */
    REEL_META_TENSOR = 3,  /* an n-dimensional array */
};

enum reel_dtype {
    REEL_DTYPE_NONE = 0,
    REEL_DTYPE_U8,
    REEL_DTYPE_I8,
    REEL_DTYPE_U16,
    REEL_DTYPE_I16,
    REEL_DTYPE_I32,
    REEL_DTYPE_I64,
    REEL_DTYPE_F16,
    REEL_DTYPE_F32,
    REEL_DTYPE_F64,
    REEL_DTYPE_COUNT_
};

#define REEL_META_MAX_DIMS 8
#define REEL_META_NAME_MAX 32

typedef struct reel_meta {
    uint32_t kind;  /* enum reel_meta_kind */
    uint32_t dtype; /* enum reel_dtype */
    uint32_t ndim;  /* 0..REEL_META_MAX_DIMS */
    uint64_t shape[REEL_META_MAX_DIMS];
    char format[REEL_META_NAME_MAX]; /* pixel format or codec name, NUL-terminated */
    int64_t pts_us;                  /* presentation time, microseconds */
    int64_t duration_us;
} reel_meta;

/* Encodes meta into buf (cap bytes); *len is the encoded size.
 * Errors: -EINVAL (field out of range), -ENOSPC (cap too small). */
REEL_API int reel_meta_encode(const reel_meta *meta, void *buf, size_t cap, size_t *len);

/* Decodes a blob written by reel_meta_encode(). Every field is validated.
 * Errors: REEL_EBADMETA (not reel metadata, truncated, a field out of range). */
REEL_API int reel_meta_decode(const void *buf, size_t len, reel_meta *out);

/* Name of a dtype ("u8", "f32", ...) or "?" for an unknown value. */
REEL_API const char *reel_dtype_name(uint32_t dtype);

/* ---- GPU memory (CUDA, optional) --------------------------------------- */

/*
 * reel never links the CUDA runtime: it loads libcudart on first use
 * ($REEL_CUDART if set, then libcudart.so.13, .12, .11.0, libcudart.so, then
 * /usr/local/cuda/lib64/libcudart.so). No library, no driver, no device, or
 * CUDA_VISIBLE_DEVICES="" all mean "no GPU": reel_gpu_count() returns 0, the
 * calls below return -ENODEV (reel_last_error() says which of these it was),
 * and the rest of the store works as before.
 *
 * Fork: the first call that reaches CUDA - reel_gpu_count() included -
 * initializes the CUDA driver in the calling process, and CUDA does not
 * survive fork(): a child forked after that cannot use the GPU. Fork workers
 * first (the runtime's zygote is started before any CUDA call), then use the
 * GPU in them. reel_gpu_close(), reel_store_gpu_pinned() and reel_store_close()
 * never load CUDA in a process that has not used it.
 *
 * Pinned store memory: reel_store_gpu_pin() registers the calling process's
 * mapping of the store's data arena as pinned host memory, so that copies
 * between store objects and the GPU run at full PCIe speed. Pinning is per
 * process and is undone by reel_store_close().
 *
 * Device tensors: reel_gpu_put() publishes device memory of the calling
 * process as a store object. Its data is a small record holding the CUDA IPC
 * handle of the allocation; its metadata is a reel_meta of kind
 * REEL_META_TENSOR whose format is REEL_META_FORMAT_CUDA followed by the PCI
 * bus ID of the GPU that holds the memory ("cuda:0000:3B:00.0"), so that
 * reel-inspect shows where it lives. Any process attached to the store opens
 * it with reel_gpu_open() and gets a device pointer to the same memory: no
 * copy. The exporter owns the memory: it must keep the allocation alive (no
 * cudaFree(), no exit) until every view of it is closed; reel counts the
 * references to the record, not to the device memory.
 */

/* Prefix of the metadata format of a device tensor. */
#define REEL_META_FORMAT_CUDA "cuda:"

/* Number of CUDA devices this process sees; 0 when there is no usable GPU
 * (never an error). Loads and initializes CUDA on the first call (see "Fork"
 * above); later calls return the same number. Thread-safe. */
REEL_API int reel_gpu_count(void);

/* Registers this process's mapping of the store's data arena as pinned
 * (page-locked) host memory, portable to every CUDA context, so that
 * cudaMemcpy between objects and the GPU runs at pinned speed. Pinning locks
 * every page of the arena in RAM (faulting in those not touched yet), which
 * takes time in proportion to the capacity; do it once, at setup. Every
 * process pins its own mapping of the same pages. Undone by
 * reel_store_close(). Works on observer handles.
 * Errors: -ENODEV (no GPU), -EEXIST (already pinned by this handle), -ENOMEM
 * (the driver could not lock the pages), -EIO (other CUDA errors; see
 * reel_last_error()). */
REEL_API int reel_store_gpu_pin(reel_store *store);

/* 1 if this handle's arena is pinned by reel_store_gpu_pin(), else 0. */
REEL_API int reel_store_gpu_pinned(reel_store *store);

/* Publishes size bytes of device memory at dev_ptr as a sealed object.
 *   id:        the new object's ID.
 *   device:    the CUDA device ordinal (in this process) that holds dev_ptr.
 *   dev_ptr:   device memory from cudaMalloc() (or inside such an allocation:
 *              the offset is recorded). Memory from cudaMallocAsync() pools,
 *              cuMemCreate() or cudaMallocManaged() cannot be shared this way.
 *   size:      bytes, > 0; [dev_ptr, dev_ptr + size) must lie in one allocation.
 *   meta:      NULL (a 1-D u8 tensor of size bytes) or a reel_meta of kind
 *              REEL_META_TENSOR whose dtype and shape, when dtype is not
 *              REEL_DTYPE_NONE, describe exactly size bytes. Its format must
 *              be "" or start with REEL_META_FORMAT_CUDA; it is set to
 *              "cuda:<PCI bus ID>".
 *   timeout_ms: how long to wait for space for the record, as reel_obj_create().
 * The calling thread's current device is left as it was. The memory stays
 * owned by the caller (see "Device tensors" above).
 * Errors: -EINVAL (bad argument, inconsistent meta, not device memory of that
 * device, a range past the end of its allocation), -ENOTSUP (memory that
 * legacy CUDA IPC cannot share), -ENODEV (no GPU, or no such device), and
 * those of reel_obj_create(). */
REEL_API int reel_gpu_put(reel_store *store, const reel_id *id, int device, const void *dev_ptr,
                          uint64_t size, const reel_meta *meta, int timeout_ms);

/* A device tensor opened by reel_gpu_open(). */
typedef struct reel_gpu_view {
    reel_id id;
    void *dev_ptr;  /* the tensor in this process's address space, on device */
    uint64_t size;  /* bytes */
    int device;     /* this process's ordinal of the GPU that holds it */
    reel_meta meta; /* kind REEL_META_TENSOR, dtype, shape, format "cuda:<PCI bus ID>" */
    void *mapping_; /* private: this process's CUDA IPC mapping, NULL in the exporter */
} reel_gpu_view;

/* Opens a device tensor published by reel_gpu_put() in any process.
 *   timeout_ms: how long to wait for the object to appear, as reel_obj_get().
 *   out:        filled on success, zeroed on failure.
 * Holds one reference to the record and one CUDA IPC mapping of the
 * allocation (CUDA shares one mapping among the views of one allocation in a
 * process) until reel_gpu_close(). In the exporting process it returns the exporter's
 * own pointer. The record comes from another process: it is validated before
 * any CUDA call. The calling thread's current device is left as it was.
 * Errors: -ETIMEDOUT, REEL_EBADMETA (the object is not a device tensor, or its
 * dtype and shape disagree with its size), -EBADMSG (a malformed record:
 * size, magic, version, device, bus ID, range; reel_last_error() says which),
 * -ENODEV (no GPU, or the GPU that holds it is not visible to this process),
 * -ESTALE (opened in the exporter after it freed the memory), -EINVAL,
 * -EIO (CUDA could not map it), and those of reel_obj_get(). */
REEL_API int reel_gpu_open(reel_store *store, const reel_id *id, int timeout_ms,
                           reel_gpu_view *out);

/* Closes a view: unmaps the allocation when this was its last view in this
 * process, and drops the reference to the record. view->dev_ptr is invalid
 * afterwards, and *view is zeroed.
 * Errors: -EINVAL (NULL, or a view not opened by reel_gpu_open()),
 * REEL_ENOTREF. */
REEL_API int reel_gpu_close(reel_store *store, reel_gpu_view *view);

#ifdef __cplusplus
}
#endif

#endif /* REEL_STORE_H */
