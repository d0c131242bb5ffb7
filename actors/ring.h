/*
 * ring.h - a bounded lock-free MPMC ring of fixed-size records in shared
 * memory. Internal to reel (the actor runtime's task and result queues);
 * never installed.
 *
 * Dmitry Vyukov's bounded MPMC queue: every cell carries a 64-bit sequence
 * number that says whose turn the cell is. A producer claims position p when
 * cell[p & mask].seq == p (CAS on enqueue_pos), copies the record in and
 * publishes seq = p + 1 (release); a consumer claims p when seq == p + 1 (CAS
 * on dequeue_pos), copies the record out and frees the cell for the next lap
 * with seq = p + capacity. Positions are 64-bit and never wrap in practice
 * (2^64 records), and every index is masked, so a corrupt position can stall
 * the ring but cannot send an access outside it.
 *
 * The ring is mapped by several processes at different addresses, so nothing
 * inside is a pointer. Layout (mem must be 64-byte aligned):
 *
 *   +---------------------------+ 0
 *   | magic, version, sizes,    |  immutable after reel__ring_init(), plus
 *   | closed flag               |  the closed flag (written once)
 *   +---------------------------+ 128
 *   | enqueue_pos               |  producers' line; with it, on the paired
 *   | not_empty word, sleepers  |  line, the word consumers sleep on
 *   +---------------------------+ 256
 *   | dequeue_pos               |  consumers' line; with it, on the paired
 *   | not_full word, sleepers   |  line, the word producers sleep on
 *   +---------------------------+ 384 = header_size
 *   | cell[capacity]            |  each: uint64_t seq, then record_size
 *   |                           |  bytes (8-byte aligned)
 *   +---------------------------+ total_bytes
 *
 * Producer and consumer fields sit 128 bytes apart (a pair of cache lines, for
 * the adjacent-line prefetcher), so the fast path of each side touches only
 * the read-only header, its own pair, and the cells.
 *
 * Waiting: a waiter first spins on the ring itself for spin_ns, without
 * telling anyone. Then it announces itself (sleepers + 1), reads the futex
 * word, re-checks the ring, and only then sleeps until the word changes. The
 * other side publishes a cell (stores its sequence number), issues a seq_cst
 * fence and loads the sleeper count; only if it is non-zero does it bump the
 * word and FUTEX_WAKE (reel__wake). Announcement-then-check (seq_cst
 * operations) against publish-fence-check is a Dekker pair: either the waker
 * sees the announcement, or the waiter's re-check sees the cell. The fast
 * path makes no syscall, writes nothing outside its position and cell, and
 * reads one sleeper count. A wake wakes every sleeper on that word; those
 * that find nothing sleep again.
 *
 * Process death: a process killed between claiming a cell and publishing it
 * (the copy of one record) leaves that cell claimed for good. A dead
 * producer's cell stops every pop there (FIFO: all behind it waits too); a
 * dead consumer's cell loses its record and stops pushes one lap later. The
 * ring does not recover by itself: treat a ring that a killed process was
 * pushing to or popping from as suspect (depth > 0 yet pops time out, or
 * depth < capacity yet pushes do) and replace it. A process killed while
 * asleep leaves its sleeper count raised: nothing breaks, but every later
 * publish on that side pays a FUTEX_WAKE.
 *
 * Trust: reel__ring_check() validates what bounds memory accesses (sizes,
 * capacity, total size against the mapping). The ring then reads these
 * fields again on every call, so it trusts the processes that map it not to
 * rewrite the header later; they are one runtime's own processes.
 */
#ifndef REEL_ACTORS_RING_H
#define REEL_ACTORS_RING_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Exported from libreel for the white-box tests only (tests/test_ring.c);
 * not part of the public API. */
#ifndef REEL_INTERNAL
#define REEL_INTERNAL __attribute__((visibility("default")))
#endif

#define RING_MAGIC          "REELRING"
#define RING_FORMAT_VERSION 1u
#define RING_MIN_CAPACITY   2u
#define RING_MAX_CAPACITY   (1u << 20)
#define RING_MIN_RECORD     8u
#define RING_MAX_RECORD     4096u
#define RING_ALIGN          64u

typedef struct reel_ring_cell {
    _Atomic uint64_t seq;
    /* record_size bytes follow */
} reel_ring_cell;

/* The shared header; the cells follow it. */
typedef struct reel_ring {
    /* Immutable after init; validated by reel__ring_check(). */
    char magic[8];        /* RING_MAGIC, not NUL-terminated */
    uint32_t version;     /* RING_FORMAT_VERSION */
    uint32_t header_size; /* sizeof(reel_ring): offset of cell 0 */
    uint32_t capacity;    /* power of two, RING_MIN_CAPACITY..RING_MAX_CAPACITY */
    uint32_t record_size; /* multiple of 8, RING_MIN_RECORD..RING_MAX_RECORD */
    uint32_t cell_size;   /* 8 + record_size */
    uint32_t reserved0;
    uint64_t total_bytes;    /* header_size + capacity * cell_size */
    _Atomic uint32_t closed; /* 0, then 1 once reel__ring_close() ran */
    uint32_t reserved1[5];
    uint64_t reserved2[8]; /* the rest of the header's cache-line pair */

    /* Producers: written by every push. */
    alignas(64) _Atomic uint64_t enqueue_pos;
    uint64_t reserved3[7];
    /* Consumers sleep on not_empty; producers read not_empty_sleepers on
     * every push and bump not_empty_seq only when it is non-zero. */
    alignas(64) _Atomic uint32_t not_empty_seq;
    _Atomic uint32_t not_empty_sleepers;
    uint32_t reserved4[14];

    /* Consumers: written by every pop. */
    alignas(64) _Atomic uint64_t dequeue_pos;
    uint64_t reserved5[7];
    /* Producers sleep on not_full; consumers read not_full_sleepers on every
     * pop and bump not_full_seq only when it is non-zero. */
    alignas(64) _Atomic uint32_t not_full_seq;
    _Atomic uint32_t not_full_sleepers;
    uint32_t reserved6[14];
} reel_ring;

_Static_assert(offsetof(reel_ring, closed) == 40, "ring header layout");
_Static_assert(offsetof(reel_ring, enqueue_pos) == 128, "ring header layout");
_Static_assert(offsetof(reel_ring, not_empty_seq) == 192, "ring header layout");
_Static_assert(offsetof(reel_ring, dequeue_pos) == 256, "ring header layout");
_Static_assert(offsetof(reel_ring, not_full_seq) == 320, "ring header layout");
_Static_assert(sizeof(reel_ring) == 384, "ring header layout");

/* Bytes needed for a ring of capacity records of record_size bytes.
 * in capacity: a power of two, RING_MIN_CAPACITY (2) .. RING_MAX_CAPACITY (1 << 20)
 * in record_size: a multiple of 8, RING_MIN_RECORD (8) .. RING_MAX_RECORD (4096)
 * Returns the size in bytes (a multiple of 8), or 0 for invalid sizes. */
REEL_INTERNAL size_t reel__ring_bytes(uint32_t capacity, uint32_t record_size);

/* Initialises an empty, open ring in mem. Not safe against concurrent users
 * of the same memory: initialise before any other process maps or uses it.
 * in mem: at least reel__ring_bytes(capacity, record_size) bytes, 64-byte
 *         aligned; the caller owns it and keeps it mapped while the ring is used
 * in mem_size: bytes available at mem
 * Returns 0, or -EINVAL (bad sizes, mem NULL or not 64-byte aligned, mem_size
 * too small). */
REEL_INTERNAL int reel__ring_init(void *mem, size_t mem_size, uint32_t capacity,
                                  uint32_t record_size);

/* Validates a ring another process initialised before it is trusted: magic,
 * version, header size, capacity a power of two in range, record size in
 * range, cell size, and the whole ring inside mem_size. Cell contents and
 * positions are not checked (they cannot send an access out of bounds).
 * in mem: the mapping, 64-byte aligned; in mem_size: its length in bytes.
 * Returns 0, REEL_ECORRUPT, or -EINVAL (mem NULL or not 64-byte aligned). */
REEL_INTERNAL int reel__ring_check(const void *mem, size_t mem_size);

/* Pushes one record: copies record_size bytes from rec.
 * in r: an initialised or checked ring
 * in rec: record_size bytes (any alignment)
 * in spin_ns: how long to spin on the ring before sleeping, once full
 * in timeout_ms: how long to wait for space: 0 never waits, negative waits forever
 * Returns 0, -EAGAIN (full and timeout_ms 0), -ETIMEDOUT (still full at the
 * deadline), -ESHUTDOWN (the ring is closed; a push racing with
 * reel__ring_close() may still succeed). */
REEL_INTERNAL int reel__ring_push(reel_ring *r, const void *rec, uint64_t spin_ns, int timeout_ms);

/* Pushes one record without waking a sleeping consumer, and never waits:
 * for a producer that pushes several records and then wakes the consumer
 * once with reel__ring_wake_consumers(), which it must call before it waits
 * for anything the consumer does. Returns 0, -EAGAIN (full), -ESHUTDOWN. */
REEL_INTERNAL int reel__ring_push_quiet(reel_ring *r, const void *rec);

/* Wakes consumers asleep on the ring, if any (cheap when none is). */
REEL_INTERNAL void reel__ring_wake_consumers(reel_ring *r);

/* Pops the oldest record: copies record_size bytes into rec. Records from one
 * producer come out in the order it pushed them.
 * in r: an initialised or checked ring
 * out rec: record_size bytes (any alignment)
 * in spin_ns, timeout_ms: as reel__ring_push(), waiting for a record
 * Returns 0, -EAGAIN (empty and timeout_ms 0), -ETIMEDOUT, -ESHUTDOWN (closed
 * and empty: every push that returned before reel__ring_close() was called
 * has been popped). */
REEL_INTERNAL int reel__ring_pop(reel_ring *r, void *rec, uint64_t spin_ns, int timeout_ms);

/* Records in the ring now: exact when quiescent, approximate during concurrent
 * use (a push or pop in progress may count), never more than the capacity.
 * Lock-free; any process, any time. */
REEL_INTERNAL uint32_t reel__ring_depth(const reel_ring *r);

/* The capacity and record size given to reel__ring_init(). */
REEL_INTERNAL uint32_t reel__ring_capacity(const reel_ring *r);
REEL_INTERNAL uint32_t reel__ring_record_size(const reel_ring *r);

/* Closes the ring, for good: waiting and later pushes return -ESHUTDOWN;
 * pops go on returning records until the ring is empty, then -ESHUTDOWN.
 * Idempotent; any process. */
REEL_INTERNAL void reel__ring_close(reel_ring *r);

#endif
