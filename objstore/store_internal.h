/*
 * The store segment: its layout and the internals shared by the objstore sources.
 * Never installed.
 *
 * One file, mapped by every attached process at its own address, so
 * everything inside is an offset or an index, never a pointer:
 *
 *   +------------------+ 0
 *   | seg_header       |  magic, version, sizes (immutable after creation),
 *   |                  |  then the mutable state under the robust mutex,
 *   |                  |  then the futex words, each on its own cache line
 *   +------------------+ clients_off
 *   | seg_client[C]    |  one 64-byte slot per attached process
 *   +------------------+ refs_off
 *   | seg_ref[C][R]    |  per client: open-addressed table of held references
 *   +------------------+ objects_off
 *   | seg_object[N]    |  the object table
 *   +------------------+ index_off
 *   | uint32_t[I]      |  hash index: ID -> object slot + 1 (0 = empty), I = 2^k >= 2N
 *   +------------------+ blocks_off
 *   | seg_block[2N+2]  |  the allocator's blocks, in address order and in
 *   |                  |  segregated free lists by power-of-two size class
 *   +------------------+ arena_off (4 KiB aligned)
 *   | data arena       |  object data then its metadata, 64-byte aligned
 *   +------------------+ file_size
 *
 * Crash consistency: the object table and the per-client reference tables
 * are the primary records. Everything else (index, blocks, free lists, LRU,
 * counters, object reference totals) is derived from them, so when the lock
 * comes back EOWNERDEAD the survivor rebuilds it all (reel__rebuild) instead
 * of trusting state that was half-updated.
 */
#ifndef REEL_STORE_INTERNAL_H
#define REEL_STORE_INTERNAL_H

#include "reel/store.h"

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>

/* Format versions: 2, objects have owners; 3, spilled objects start on 4 KiB;
 * 4, the header keeps peak_used. */
#define SEG_MAGIC          "REELSTOR"
#define SEG_FORMAT_VERSION 4u
#define SEG_NIL            UINT32_MAX
#define SEG_ALIGN          64u
#define SEG_CLASSES        64

/* OBJ_SPILLED: sealed, its bytes (data and metadata) in a spill file, no
 * arena block. */
enum seg_state {
    OBJ_FREE = 0,
    OBJ_UNSEALED = 1,
    OBJ_SEALED = 2,
    OBJ_DELETING = 3,
    OBJ_SPILLED = 4
};

/* Internal object flags, above the public REEL_OBJ_* ones. While one is set,
 * seg_object.mover names the client (slot + 1) doing the work; a rebuild
 * undoes the work of a mover that died. */
#define OBJF_SPILLING       (1u << 16) /* sealed, being written to a spill file */
#define OBJF_RESTORING      (1u << 17) /* spilled, being read back into its new block */
#define OBJF_DELETE_PENDING (1u << 18) /* deleted while restoring: freed when done */

#define SEG_SPILL_FILES    1024u
#define SEG_SPILL_DIR_MAX  200u
#define SEG_HIGH_WATER_DEF 800u /* permille of capacity */
enum seg_block_state { BLOCK_UNUSED = 0, BLOCK_FREE = 1, BLOCK_USED = 2 };
enum seg_client_state { CLIENT_FREE = 0, CLIENT_ALIVE = 1 };

typedef struct seg_header {
    /* Immutable after creation; validated by every opener. */
    char magic[8];
    uint32_t version; /* little-endian at byte 8 */
    uint32_t header_size;
    uint64_t file_size;
    uint64_t capacity;
    uint32_t max_objects;
    uint32_t max_clients;
    uint32_t max_refs; /* per client; each client's table has ref_slots = 2^k >= 1.5 max_refs */
    uint32_t index_size;
    uint32_t max_blocks;
    uint32_t reserved0;
    uint64_t clients_off, refs_off, objects_off, index_off, blocks_off, arena_off;
    uint64_t created_ns;
    uint64_t spill_files_off; /* seg_spill_file[SEG_SPILL_FILES] */
    uint32_t high_water;      /* permille of capacity; 0: never spill */
    uint32_t reserved0b;
    char spill_dir[SEG_SPILL_DIR_MAX]; /* NUL-terminated; empty: spilling off */
    uint64_t spill_token;              /* random: names this store's spill files */
    uint64_t reserved1[8];

    /* Mutable, under lock. */
    alignas(64) pthread_mutex_t lock;
    uint32_t object_free_head; /* free object slots, linked through lru_next */
    uint32_t block_unused_head;
    uint32_t lru_head, lru_tail; /* evictable objects, least recently used first */
    uint64_t class_bitmap;       /* bit c set: free list c is not empty */
    uint32_t class_head[SEG_CLASSES];
    uint64_t used;
    uint64_t tick; /* logical clock for LRU order */
    uint32_t free_blocks;
    uint32_t n_unsealed, n_sealed, n_deleting, n_evictable, n_referenced;
    uint64_t evictions, evicted_bytes, reclaims, recoveries;
    uint32_t n_spilled;
    uint32_t spill_files; /* in use */
    uint64_t spilled_bytes;
    uint64_t spill_writes, spill_written_bytes, restores, restored_bytes, spill_failures;
    uint64_t orphans_deleted; /* objects deleted because their owner died */
    uint32_t client_epochs;   /* attaches so far: the next one's epoch */
    uint32_t n_owned;         /* objects with an owner */
    uint32_t destroyed; /* the file is unlinked: the last client out removes the spill files */
    uint32_t spill_in_memory; /* the spill directory was on tmpfs or ramfs at creation */
    uint64_t peak_used;       /* the most used has been since creation; never lowered */
    uint64_t reserved2[4];

    /* Futex words: bumped on every seal / every free, slept on by waiters.
     * A waker calls FUTEX_WAKE only when the sleeper count is non-zero. */
    alignas(64) _Atomic uint32_t seal_seq;
    _Atomic uint32_t seal_sleepers;
    alignas(64) _Atomic uint32_t space_seq;
    _Atomic uint32_t space_sleepers;
    alignas(64) uint8_t end_pad[1];
} seg_header;

typedef struct seg_client {
    uint32_t state;
    int32_t pid;
    uint64_t start_time; /* /proc/<pid>/stat field 22: tells a reused pid apart */
    uint64_t attach_ns;
    uint32_t nrecords; /* ref records in use */
    uint32_t refs;     /* sum of their counts */
    uint32_t unsealed;
    uint32_t epoch; /* which attach of this slot: owner tokens name it */
    uint32_t owns;  /* an object was made owned by it: its drop looks for them */
    uint32_t reserved[5];
} seg_client;

typedef struct seg_ref {
    uint32_t obj_plus1; /* 0: empty record */
    uint32_t gen;       /* the object's generation when the reference was taken */
    uint32_t count;
    uint32_t reserved;
} seg_ref;

typedef struct seg_object {
    reel_id id;
    uint64_t offset; /* of the data, from the arena's start */
    uint64_t size;
    uint64_t alloc; /* bytes of the block: align(size) + align(meta_size) */
    uint64_t create_ns;
    uint64_t last_use; /* header tick */
    uint64_t hash;     /* of the ID, cached for the index */
    uint32_t meta_size;
    uint32_t state;
    uint32_t flags;
    uint32_t refs;
    uint32_t creator; /* its client slot */
    int32_t creator_pid;
    uint32_t gen;
    uint32_t block;
    uint32_t lru_prev, lru_next; /* lru_next doubles as the free-slot link */
    uint32_t mover;              /* client slot + 1 spilling or restoring it, else 0 */
    uint32_t spill_file;         /* index into the spill file table, when spilled */
    uint64_t spill_off;          /* where its bytes start in that file */
    uint32_t owner;              /* client slot + 1 owning it (deleted when it dies), 0: none */
    uint32_t owner_epoch;        /* that client's epoch: a later attach of the slot is not it */
} seg_object;

/* A spill file: one per spill pass, holding the objects it wrote, each at
 * a multiple of 4 KiB; when every entry is in use, a pass appends to the
 * file with the fewest objects instead. An object that leaves (deleted,
 * restored) has its range punched out (FALLOC_FL_PUNCH_HOLE), so a file
 * holds disk space only for its live objects. Removed when its last
 * object leaves. */
typedef struct seg_spill_file {
    uint32_t live;   /* objects spilled (or being spilled) into it, + 1 while written */
    uint32_t gen;    /* part of its name, so that a reused slot names a new file */
    uint64_t bytes;  /* its end: where the next append starts */
    uint32_t writer; /* client slot + 1 writing it, else 0: that + 1 is its */
    uint32_t reserved;
} seg_spill_file;

typedef struct seg_block {
    uint64_t offset, size;
    uint32_t addr_prev, addr_next;
    uint32_t free_prev, free_next; /* free_next doubles as the unused-record link */
    uint32_t state;
    uint32_t obj;
} seg_block;

/* Sizes of a store, from which the layout is computed the same way by the
 * creator and by every opener. */
typedef struct seg_layout {
    uint64_t capacity;
    uint32_t max_objects, max_clients, max_refs, ref_slots, index_size, max_blocks;
    uint64_t clients_off, refs_off, objects_off, index_off, blocks_off, spill_files_off, arena_off,
        file_size;
} seg_layout;

/* Bytes of one spill file (slot and generation name it). */
typedef struct spill_range {
    uint32_t file, gen;
    uint64_t off, len;
} spill_range;

struct reel_store {
    seg_layout lay; /* validated sizes: never re-read from the shared header */
    char *path;
    uint8_t *base;
    size_t map_size;
    seg_header *hdr;
    seg_client *clients;
    seg_ref *refs;
    seg_object *objects;
    uint32_t *index;
    seg_block *blocks;
    seg_spill_file *spill_files;
    uint8_t *arena;
    uint32_t slot;        /* SEG_NIL for observers */
    uint64_t owner_token; /* reel_store_set_owner(): owns what this handle creates; 0: none */
    uint64_t spin_ns;
    uint32_t *scratch; /* max_objects entries, for rebuilds: no malloc under a dead lock */
    uint64_t last_liveness_ns;
    _Atomic uint64_t last_idle_spill_ns; /* when a high-water spill pass last found nothing */
    int corrupt; /* set under the lock when a bad index was seen; rebuilt at unlock */
    /* Spill-file ranges to punch out, queued under the lock and punched once
     * it is released: no file-system call inside the critical section. */
    spill_range punch[16];
    uint32_t npunch;
    seg_block dummy_block;
    seg_object dummy_object;
    seg_client dummy_client;
};

/* errors.c: the error sentence and the argument checks */
#include "check.h"

/* msgpack_check.c: 0 if buf starts with one well-formed msgpack object whose
 * declared sizes all fit in len (*used: its length), else -EBADMSG. Run it
 * before msgpack-c unpacks bytes from another process. */
int reel__msgpack_check(const void *buf, size_t len, size_t *used);

/* A msgpack-c writer into a fixed caller buffer: pass reel__fixed_write and a
 * reel__fixed_buffer to msgpack_packer_init(). Overflow is remembered, never
 * written past cap. */
typedef struct reel__fixed_buffer {
    char *data;
    size_t cap, len;
    int overflow;
} reel__fixed_buffer;
int reel__fixed_write(void *ctx, const char *buf, size_t len);

static inline void reel__cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* A spinner that has waited this long yields its CPU at every clock read
 * (reel__spin_yield): where processes outnumber CPUs, the one it waits for
 * may be waiting for this very CPU, and spinning out a whole time slice
 * collapsed 4 drivers and 4 workers on 2 CPUs to a fifth of their sleeping
 * rate. Where nothing else is runnable, sched_yield() returns at once, and a
 * hand-off shorter than this never yields. */
#define REEL_SPIN_YIELD_AFTER_NS 4000u

/* Called at each clock read of a spin that began at start_ns. */
void reel__spin_yield(uint64_t start_ns, uint64_t now_ns);

/* wait.c: spin-then-futex waiting on a sequence word in shared memory.
 * reel__wait_change waits until *seq != seen: spins for spin_ns, then sleeps;
 * deadline_ns is CLOCK_MONOTONIC, 0 = forever. Returns 0 or -ETIMEDOUT.
 * reel__wake bumps *seq and wakes sleepers only if *sleepers is non-zero. */
int reel__wait_change(_Atomic uint32_t *seq, _Atomic uint32_t *sleepers, uint32_t seen,
                      uint64_t spin_ns, uint64_t deadline_ns);
void reel__wake(_Atomic uint32_t *seq, _Atomic uint32_t *sleepers);
/* The second half of reel__wake, for a caller that bumped *seq itself. */
void reel__wake_sleepers(_Atomic uint32_t *seq, _Atomic uint32_t *sleepers);

/* file_io.c: moves pieces of memory to or from their places in a file:
 * reads with io_uring, several large requests in flight (pread where
 * io_uring is not allowed), writes with pwrite() in the calling thread. Returns 0, -EIO if a read
 * found the file shorter, or a negative errno (-ENOSPC, -EFBIG...). */
typedef struct reel__io_piece {
    void *buf;
    uint64_t offset; /* in the file */
    uint64_t length;
} reel__io_piece;
int reel__io_pieces(int fd, const reel__io_piece *pieces, size_t n, int write);
int reel__read_range(int fd, void *buf, uint64_t offset, uint64_t length);

/* The directory where this user's stores (given by bare name), pool segments
 * and status segments live: /dev/shm/reel-<euid>, mode 0700, made at first
 * use. A directory there that is not this user's own, or that others may
 * enter or write, is refused (-EACCES, with a sentence): nobody else can
 * plant a file in it or attach to what is in it. Writes the path (no
 * trailing slash) into buf. Returns 0 or a negative errno. */
#ifndef REEL_INTERNAL
#define REEL_INTERNAL __attribute__((visibility("default")))
#endif
REEL_INTERNAL int reel__private_dir(char *buf, size_t cap);

/* Calls fn(dir, name, arg) for every entry of directory in (NULL: the
 * private directory) named prefix<pid>, followed by nothing or (any_suffix
 * set) by '-' and anything, whose process pid is gone: what a killed process
 * left. Returns how many. */
REEL_INTERNAL unsigned
reel__each_left_by_the_dead(const char *in, const char *prefix, int any_suffix,
                            void (*fn)(const char *dir, const char *name, void *arg), void *arg);

void reel__spill_file_path(const reel_store *s, uint32_t file, uint32_t gen, char *out, size_t cap);

/* The first of n candidate directories on a file system with a disk below it
 * (statfs(2): not tmpfs or ramfs), or candidates[0] where none is: where
 * spill files go by default. */
REEL_INTERNAL const char *reel__disk_dir(const char *const *candidates, size_t n);

/* ids.c */
uint64_t reel__id_hash(const reel_id *id);

/* segment.c: layout, creation and validation of the file */
int reel__layout(seg_layout *l, uint64_t capacity, uint32_t max_objects, uint32_t max_clients,
                 uint32_t max_refs);
int reel__segment_create(const char *path, const seg_layout *l, int prefault, const char *spill_dir,
                         uint32_t high_water);
int reel__segment_map(reel_store *s, const char *path, int populate);
uint64_t reel__now_ns(int clock);
/* Start time (field 22 of /proc/<pid>/stat) and state letter of a process.
 * -ENOENT when there is no such process. */
int reel__process_start_time(pid_t pid, uint64_t *out, char *state);

/* store.c */
void reel__rebuild(reel_store *s);

#endif
