/* The object store's operations. The segment layout and the crash-consistency
 * rule (primary records vs. derived state) are described in store_internal.h. */
#include "gpu.h"
#include "store_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_CAPACITY    (256ull << 20)
#define DEFAULT_MAX_OBJECTS 65536u
#define DEFAULT_MAX_CLIENTS 128u
#define DEFAULT_MAX_REFS    4096u
#define DEFAULT_SPIN_NS     50000u
/* A create waiting for space re-checks for dead clients this often. */
#define LIVENESS_INTERVAL_NS 50000000ull
#define FIRST_FIT_SCAN       32
/* A sleeper looks again at least this often, whatever it was promised. */
#define WAIT_SLICE_NS 100000000ull
/* After a high-water spill pass found nothing to spill, the next waits this long. */
#define IDLE_SPILL_NS 10000000ull
/* Objects start in their spill file at multiples of this (a file system
 * block): punching one out frees whole blocks, and never a neighbour's. The
 * gaps are never written, so they take no disk space. */
#define SPILL_ALIGN 4096u

static uint64_t align_up(uint64_t v) {
    return (v + SEG_ALIGN - 1) & ~(uint64_t)(SEG_ALIGN - 1);
}

static uint64_t obj_alloc_size(uint64_t size, uint32_t meta_size) {
    uint64_t a = align_up(size) + align_up(meta_size);
    return a ? a : SEG_ALIGN;
}

/* Indexes read from the segment are checked before use: an out-of-range one
 * marks the handle's view of the store corrupt and lands on a dummy record,
 * and the store is rebuilt from its primary records before the lock is
 * released (store_unlock). A corrupt segment never makes us touch memory
 * outside it. */
static inline seg_block *blk_at(reel_store *s, uint32_t i) {
    if (__builtin_expect(i >= s->lay.max_blocks, 0)) {
        s->corrupt = 1;
        return &s->dummy_block;
    }
    return &s->blocks[i];
}

static inline seg_object *obj_at(reel_store *s, uint32_t i) {
    if (__builtin_expect(i >= s->lay.max_objects, 0)) {
        s->corrupt = 1;
        return &s->dummy_object;
    }
    return &s->objects[i];
}

static inline seg_client *client_at(reel_store *s, uint32_t i) {
    if (__builtin_expect(i >= s->lay.max_clients, 0)) {
        s->corrupt = 1;
        return &s->dummy_client;
    }
    return &s->clients[i];
}

static uint64_t deadline_from(int timeout_ms) {
    if (timeout_ms < 0)
        return 0;
    return reel__now_ns(CLOCK_MONOTONIC) + (uint64_t)timeout_ms * 1000000ull;
}

/* ---- the lock --------------------------------------------------------- */

#define LOCK_CHECK_NS    1000000000ull /* how often a blocked locker checks the owner */
#define LOCK_SPINS       200           /* trylock attempts before a blocking lock */
#define OBSERVER_WAIT_NS 5000000000ull /* how long an observer waits for the lock */

/* The kernel marks a robust lock whose owner died, so EOWNERDEAD covers real
 * deaths. A lock word naming a thread that never held it (a corrupt or
 * hostile segment) would block forever instead: when the named owner does not
 * exist, mark the word the way the kernel would, so the next lock attempt
 * returns EOWNERDEAD and rebuilds. glibc keeps the owner's TID in __lock.
 * A word with waiters and no owner is one too: glibc never leaves it (an
 * unlock stores 0, a waiter sets the bit only beside an owner's TID), and no
 * unlock will ever wake its waiters. */
static void lock_check_owner(reel_store *s) {
    int *word = &s->hdr->lock.__data.__lock;
    int v = __atomic_load_n(word, __ATOMIC_ACQUIRE);
    pid_t tid = v & FUTEX_TID_MASK;
    if ((v & FUTEX_OWNER_DIED) || (tid == 0 && !(v & FUTEX_WAITERS)))
        return;
    if (tid == 0 || (kill(tid, 0) != 0 && errno == ESRCH)) {
        int dead = (v & FUTEX_WAITERS) | FUTEX_OWNER_DIED;
        __atomic_compare_exchange_n(word, &v, dead, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
    }
}

/* ThreadSanitizer (gcc 12's) does not intercept pthread_mutex_clocklock: told
 * nothing, it would take the lock for free, report "unlock of an unlocked
 * mutex" and races on what the lock protects. Tell it, in TSan builds only. */
#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
static void tsan_pre_lock(void *m) {
    __tsan_mutex_pre_lock(m, __tsan_mutex_try_lock);
}
static void tsan_post_lock(void *m, int locked) {
    __tsan_mutex_post_lock(m, __tsan_mutex_try_lock | (locked ? 0 : __tsan_mutex_try_lock_failed),
                           0);
}
#else
static void tsan_pre_lock(void *m) {
    (void)m;
}
static void tsan_post_lock(void *m, int locked) {
    (void)m, (void)locked;
}
#endif

static int store_lock(reel_store *s) {
    int rc = pthread_mutex_trylock(&s->hdr->lock);
    /* Critical sections are a few hundred ns: spin a little before sleeping
     * in the kernel, which costs far more than the wait. */
    for (int i = 0; rc == EBUSY && i < LOCK_SPINS; i++) {
        for (int k = 0; k < 8; k++)
            reel__cpu_relax();
        rc = pthread_mutex_trylock(&s->hdr->lock);
    }
    if (rc == EBUSY) {
        uint64_t start = reel__now_ns(CLOCK_MONOTONIC);
        for (;;) {
            struct timespec until;
            clock_gettime(CLOCK_MONOTONIC, &until);
            until.tv_sec += LOCK_CHECK_NS / 1000000000ull;
            tsan_pre_lock(&s->hdr->lock);
            rc = pthread_mutex_clocklock(&s->hdr->lock, CLOCK_MONOTONIC, &until);
            tsan_post_lock(&s->hdr->lock, rc == 0 || rc == EOWNERDEAD);
            if (rc != ETIMEDOUT)
                break;
            lock_check_owner(s);
            if (s->slot == SEG_NIL && reel__now_ns(CLOCK_MONOTONIC) - start >= OBSERVER_WAIT_NS)
                return reel__fail(-EBUSY,
                                  "the store's lock has been held by thread %d for over %llu s",
                                  s->hdr->lock.__data.__lock & FUTEX_TID_MASK,
                                  (unsigned long long)(OBSERVER_WAIT_NS / 1000000000ull));
        }
    }
    if (rc == 0)
        return 0;
    if (rc == EOWNERDEAD) {
        /* The holder died mid-update: derive everything again from the primary records. */
        s->hdr->recoveries++;
        reel__rebuild(s);
        pthread_mutex_consistent(&s->hdr->lock);
        return 0;
    }
    if (rc == ENOTRECOVERABLE)
        return reel__fail(REEL_ECORRUPT, "the store's lock is unrecoverable");
    return -rc;
}

static void spill_punch_queued(reel_store *s, uint32_t n, const spill_range *q);

static void store_unlock(reel_store *s) {
    if (s->corrupt) {
        s->hdr->recoveries++;
        reel__rebuild(s);
        s->corrupt = 0;
    }
    /* Taken under the lock: another thread of this process may queue more. */
    spill_range q[sizeof s->punch / sizeof s->punch[0]];
    uint32_t n = s->npunch;
    if (n)
        memcpy(q, s->punch, n * sizeof q[0]);
    s->npunch = 0;
    pthread_mutex_unlock(&s->hdr->lock);
    if (n)
        spill_punch_queued(s, n, q);
}

static inline int id_eq(const reel_id *a, const reel_id *b) {
    return memcmp(a->bytes, b->bytes, sizeof a->bytes) == 0;
}

/* ---- the index: ID -> object slot ------------------------------------- */

static uint32_t index_find(reel_store *s, const reel_id *id, uint64_t hash) {
    uint32_t mask = s->lay.index_size - 1;
    for (uint32_t i = (uint32_t)hash & mask, n = 0; n <= mask; i = (i + 1) & mask, n++) {
        uint32_t v = s->index[i];
        if (v == 0)
            return SEG_NIL;
        if (v > s->lay.max_objects)
            return SEG_NIL; /* corrupt slot: treat as absent, never dereference */
        seg_object *o = &(*obj_at(s, v - 1));
        if (o->hash == hash && id_eq(&o->id, id))
            return v - 1;
    }
    return SEG_NIL;
}

/* The index holds at most max_objects of its 2 x max_objects slots, so a
 * probe that walks the whole table means a corrupt index: every probe loop
 * is bounded and marks the store for a rebuild instead of spinning. */
static void index_insert(reel_store *s, uint32_t obj, uint64_t hash) {
    uint32_t mask = s->lay.index_size - 1;
    uint32_t i = (uint32_t)hash & mask;
    for (uint32_t n = 0; s->index[i] != 0; i = (i + 1) & mask)
        if (++n > mask) {
            s->corrupt = 1;
            return;
        }
    s->index[i] = obj + 1;
}

/* Linear probing with backward-shift deletion: no tombstones to age the table. */
static void index_remove(reel_store *s, uint32_t obj) {
    uint32_t mask = s->lay.index_size - 1;
    uint32_t i = (uint32_t)(*obj_at(s, obj)).hash & mask;
    for (uint32_t n = 0; s->index[i] != obj + 1; i = (i + 1) & mask)
        if (s->index[i] == 0 || ++n > mask)
            return;
    for (uint32_t j = (i + 1) & mask, n = 0; n <= mask; j = (j + 1) & mask, n++) {
        uint32_t v = s->index[j];
        if (v == 0 || v > s->lay.max_objects)
            break;
        uint32_t home = (uint32_t)(*obj_at(s, v - 1)).hash & mask;
        /* v may move into the hole at i only if its home is not in (i, j]. */
        if (((j - home) & mask) >= ((j - i) & mask)) {
            s->index[i] = v;
            i = j;
        }
    }
    s->index[i] = 0;
}

/* ---- LRU of evictable objects ----------------------------------------- */

static void lru_push(reel_store *s, uint32_t obj) {
    seg_header *h = s->hdr;
    seg_object *o = &(*obj_at(s, obj));
    o->lru_next = SEG_NIL;
    o->lru_prev = h->lru_tail;
    if (h->lru_tail != SEG_NIL)
        (*obj_at(s, h->lru_tail)).lru_next = obj;
    else
        h->lru_head = obj;
    h->lru_tail = obj;
    h->n_evictable++;
}

static void lru_remove(reel_store *s, uint32_t obj) {
    seg_header *h = s->hdr;
    seg_object *o = &(*obj_at(s, obj));
    if (o->lru_prev != SEG_NIL)
        (*obj_at(s, o->lru_prev)).lru_next = o->lru_next;
    else
        h->lru_head = o->lru_next;
    if (o->lru_next != SEG_NIL)
        (*obj_at(s, o->lru_next)).lru_prev = o->lru_prev;
    else
        h->lru_tail = o->lru_prev;
    o->lru_prev = o->lru_next = SEG_NIL;
    h->n_evictable--;
}

static int in_lru(const seg_object *o) {
    return o->state == OBJ_SEALED && o->refs == 0 && (o->flags & REEL_OBJ_EVICTABLE);
}

/* ---- the allocator ---------------------------------------------------- */

/* Free lists by power-of-two size class, in units of SEG_ALIGN bytes. */
static int size_class(uint64_t size) {
    uint64_t units = size / SEG_ALIGN;
    return 63 - __builtin_clzll(units | 1); /* | 1: a corrupt size 0 is no UB */
}

static void freelist_insert(reel_store *s, uint32_t b) {
    seg_header *h = s->hdr;
    seg_block *blk = &(*blk_at(s, b));
    int c = size_class(blk->size);
    blk->state = BLOCK_FREE;
    blk->free_prev = SEG_NIL;
    blk->free_next = h->class_head[c];
    if (h->class_head[c] != SEG_NIL)
        (*blk_at(s, h->class_head[c])).free_prev = b;
    h->class_head[c] = b;
    h->class_bitmap |= 1ull << c;
    h->free_blocks++;
}

static void freelist_remove(reel_store *s, uint32_t b) {
    seg_header *h = s->hdr;
    seg_block *blk = &(*blk_at(s, b));
    int c = size_class(blk->size);
    if (blk->free_prev != SEG_NIL)
        (*blk_at(s, blk->free_prev)).free_next = blk->free_next;
    else
        h->class_head[c] = blk->free_next;
    if (blk->free_next != SEG_NIL)
        (*blk_at(s, blk->free_next)).free_prev = blk->free_prev;
    if (h->class_head[c] == SEG_NIL)
        h->class_bitmap &= ~(1ull << c);
    blk->free_prev = blk->free_next = SEG_NIL;
    h->free_blocks--;
}

static uint32_t block_record_new(reel_store *s) {
    uint32_t b = s->hdr->block_unused_head;
    if (b != SEG_NIL)
        s->hdr->block_unused_head = (*blk_at(s, b)).free_next;
    return b;
}

static void block_record_drop(reel_store *s, uint32_t b) {
    (*blk_at(s, b)).state = BLOCK_UNUSED;
    (*blk_at(s, b)).free_next = s->hdr->block_unused_head;
    s->hdr->block_unused_head = b;
}

/* Finds a free block of at least size bytes: first fit among a few of its own
 * class, else any block of a larger class (which always fits), else the rest
 * of its own class. Returns the block, split to size, or SEG_NIL. */
static uint32_t block_alloc(reel_store *s, uint64_t size) {
    seg_header *h = s->hdr;
    int c = size_class(size);
    uint32_t found = SEG_NIL, scanned = 0;
    for (uint32_t b = h->class_head[c]; b != SEG_NIL && !s->corrupt; b = blk_at(s, b)->free_next) {
        if (blk_at(s, b)->size >= size) {
            found = b;
            break;
        }
        if (++scanned == FIRST_FIT_SCAN)
            break;
    }
    if (found == SEG_NIL && c < SEG_CLASSES - 1) {
        uint64_t larger = h->class_bitmap & ~((2ull << c) - 1);
        if (larger) {
            found = h->class_head[__builtin_ctzll(larger)];
            if (blk_at(s, found)->size < size) /* a larger class always fits, unless corrupt */
                s->corrupt = 1;
        }
    }
    if (found == SEG_NIL && scanned == FIRST_FIT_SCAN) {
        for (uint32_t b = h->class_head[c];
             b != SEG_NIL && !s->corrupt && scanned++ < s->lay.max_blocks;
             b = blk_at(s, b)->free_next)
            if (blk_at(s, b)->size >= size) {
                found = b;
                break;
            }
    }
    /* A block outside the arena (a corrupt record) would hand out a buffer
     * outside the mapping: only a rebuild's blocks, derived from checked
     * object extents, are trusted that far. */
    if (found != SEG_NIL && !s->corrupt) {
        const seg_block *f = blk_at(s, found);
        if (f->state != BLOCK_FREE || f->size < size || f->size > s->lay.capacity ||
            f->offset % SEG_ALIGN != 0 || f->offset > s->lay.capacity - f->size)
            s->corrupt = 1;
    }
    /* Corrupt lists: give up; the unlock rebuilds them and the caller retries. */
    if (found == SEG_NIL || s->corrupt)
        return SEG_NIL;
    freelist_remove(s, found);
    seg_block *blk = &(*blk_at(s, found));
    if (blk->size > size) {
        uint32_t rest = block_record_new(s);
        if (rest != SEG_NIL) { /* never short: there are 2N+2 records for N objects */
            seg_block *r = &(*blk_at(s, rest));
            r->offset = blk->offset + size;
            r->size = blk->size - size;
            r->addr_prev = found;
            r->addr_next = blk->addr_next;
            if (blk->addr_next != SEG_NIL)
                (*blk_at(s, blk->addr_next)).addr_prev = rest;
            blk->addr_next = rest;
            blk->size = size;
            freelist_insert(s, rest);
        }
    }
    blk->state = BLOCK_USED;
    h->used += blk->size;
    if (h->used > h->peak_used)
        h->peak_used = h->used;
    return found;
}

static void block_free(reel_store *s, uint32_t b) {
    seg_block *blk = &(*blk_at(s, b));
    s->hdr->used -= blk->size;
    uint32_t next = blk->addr_next;
    if (next != SEG_NIL && (*blk_at(s, next)).state == BLOCK_FREE) {
        freelist_remove(s, next);
        blk->size += (*blk_at(s, next)).size;
        blk->addr_next = (*blk_at(s, next)).addr_next;
        if (blk->addr_next != SEG_NIL)
            (*blk_at(s, blk->addr_next)).addr_prev = b;
        block_record_drop(s, next);
    }
    uint32_t prev = blk->addr_prev;
    if (prev != SEG_NIL && (*blk_at(s, prev)).state == BLOCK_FREE) {
        freelist_remove(s, prev);
        (*blk_at(s, prev)).size += blk->size;
        (*blk_at(s, prev)).addr_next = blk->addr_next;
        if (blk->addr_next != SEG_NIL)
            (*blk_at(s, blk->addr_next)).addr_prev = prev;
        block_record_drop(s, b);
        b = prev;
    }
    freelist_insert(s, b);
}

/* ---- objects ---------------------------------------------------------- */

static void count_state(seg_header *h, uint32_t state, int delta) {
    switch (state) {
    case OBJ_UNSEALED:
        h->n_unsealed += delta;
        break;
    case OBJ_SEALED:
        h->n_sealed += delta;
        break;
    case OBJ_DELETING:
        h->n_deleting += delta;
        break;
    case OBJ_SPILLED:
        h->n_spilled += delta;
        break;
    }
}

/* Whether an object's bytes are in the arena (it has a block): every live
 * state but spilled, and a spilled one being read back into its new block. */
static int in_arena(const seg_object *o) {
    return o->state == OBJ_UNSEALED || o->state == OBJ_SEALED || o->state == OBJ_DELETING ||
           (o->state == OBJ_SPILLED && (o->flags & OBJF_RESTORING));
}

void reel__spill_file_path(const reel_store *s, uint32_t file, uint32_t gen, char *out,
                           size_t cap) {
    /* The token keeps two stores that share a directory apart. */
    snprintf(out, cap, "%s/spill-%016llx-%u-%u", s->hdr->spill_dir,
             (unsigned long long)s->hdr->spill_token, file, gen);
}

/* Gives the disk blocks under [off, off + len) of an open spill file back
 * to the file system. Best effort: where holes cannot be punched, the
 * space comes back when the file goes. */
static void spill_punch(int fd, uint64_t off, uint64_t len) {
    if (off % SPILL_ALIGN == 0) /* up to the next object, which starts aligned */
        len = (len + SPILL_ALIGN - 1) & ~(uint64_t)(SPILL_ALIGN - 1);
    if (fd >= 0 && len > 0)
        (void)fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len);
}

/* Punches the ranges spill_file_release() queued, after the lock is
 * released. A file gone meanwhile is not there to open (its slot's next
 * file has another generation, so another name), and a released range is
 * never written again, so a late punch is safe. */
static void spill_punch_queued(reel_store *s, uint32_t n, const spill_range *q) {
    for (uint32_t k = 0; k < n; k++) {
        char path[SEG_SPILL_DIR_MAX + 64];
        reel__spill_file_path(s, q[k].file, q[k].gen, path, sizeof path);
        int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
        spill_punch(fd, q[k].off, q[k].len);
        if (fd >= 0)
            close(fd);
    }
}

/* Drops one object from a spill file; the last one out removes the file.
 * While others stay, the object's bytes at [off, off + len) are punched out
 * of it (len 0: a writer's own count, no bytes), so that a file holds disk
 * space only for the objects still in it, and one small object left in a
 * large file keeps no more than its own. Ranges are never written again:
 * a file only grows (spill_pass appends past its end). */
static void spill_file_release(reel_store *s, uint32_t file, uint64_t off, uint64_t len) {
    if (file >= SEG_SPILL_FILES) {
        s->corrupt = 1;
        return;
    }
    seg_spill_file *f = &s->spill_files[file];
    if (f->live == 0)
        return;
    if (--f->live > 0) {
        if (len > 0 && s->npunch < sizeof s->punch / sizeof s->punch[0])
            s->punch[s->npunch++] = (spill_range){file, f->gen, off, len};
        /* (more than a queue's worth in one critical section: those stay on
         * disk until their file goes) */
        return;
    }
    char path[SEG_SPILL_DIR_MAX + 64];
    reel__spill_file_path(s, file, f->gen, path, sizeof path);
    unlink(path);
    f->bytes = 0;
    s->hdr->spill_files--;
}

/* Gives a live object's block back to the free space, keeping its record:
 * for a spill that finished, and a spill or restore undone. */
static void object_drop_block(reel_store *s, seg_object *o) {
    block_free(s, o->block);
    o->block = SEG_NIL;
}

/* Makes o nobody's (the store's), if it had an owner. Caller holds the lock. */
static void object_disown(reel_store *s, seg_object *o) {
    if (o->owner) {
        o->owner = 0;
        s->hdr->n_owned--;
    }
}

/* Frees an object whose references are all gone. Caller holds the lock and
 * wakes space waiters afterwards. */
static void object_free(reel_store *s, uint32_t obj) {
    seg_header *h = s->hdr;
    seg_object *o = &(*obj_at(s, obj));
    if (in_lru(o))
        lru_remove(s, obj);
    index_remove(s, obj);
    if (in_arena(o) && o->block < s->lay.max_blocks)
        block_free(s, o->block);
    if (o->state == OBJ_SPILLED) {
        h->spilled_bytes -= o->alloc;
        spill_file_release(s, o->spill_file, o->spill_off, o->alloc);
    } else if (o->flags & OBJF_SPILLING) {
        /* its bytes were written for nothing */
        spill_file_release(s, o->spill_file, o->spill_off, o->alloc);
    }
    o->flags &= ~(OBJF_SPILLING | OBJF_RESTORING | OBJF_DELETE_PENDING);
    object_disown(s, o);
    count_state(h, o->state, -1);
    if (o->state == OBJ_UNSEALED && o->creator < s->lay.max_clients &&
        (*client_at(s, o->creator)).unsealed > 0)
        (*client_at(s, o->creator)).unsealed--;
    o->state = OBJ_FREE;
    o->lru_prev = SEG_NIL;
    o->lru_next = h->object_free_head;
    h->object_free_head = obj;
}

static void wake_space(reel_store *s) {
    reel__wake(&s->hdr->space_seq, &s->hdr->space_sleepers);
}

/* Checks an object's extent before handing out a pointer into the arena. */
static int object_extent_ok(const reel_store *s, const seg_object *o) {
    return o->size <= s->lay.capacity && o->meta_size <= REEL_META_MAX &&
           o->offset % SEG_ALIGN == 0 && o->alloc <= s->lay.capacity &&
           o->offset <= s->lay.capacity - o->alloc &&
           obj_alloc_size(o->size, o->meta_size) <= o->alloc;
}

/* ---- per-client references ------------------------------------------- */

static seg_ref *client_refs(reel_store *s, uint32_t slot) {
    return s->refs + (uint64_t)slot * s->lay.ref_slots;
}

static uint32_t ref_home(const reel_store *s, uint32_t obj) {
    return (obj * 2654435761u) & (s->lay.ref_slots - 1);
}

static seg_ref *ref_find(reel_store *s, uint32_t slot, uint32_t obj) {
    seg_ref *t = client_refs(s, slot);
    uint32_t mask = s->lay.ref_slots - 1;
    for (uint32_t i = ref_home(s, obj), n = 0; n <= mask; i = (i + 1) & mask, n++) {
        if (t[i].obj_plus1 == obj + 1)
            return &t[i];
        if (t[i].obj_plus1 == 0)
            return NULL;
    }
    return NULL;
}

/* Adds one reference of client slot to obj. Returns 0 or REEL_ETOOMANYREFS. */
static int ref_add(reel_store *s, uint32_t slot, uint32_t obj) {
    seg_client *c = &(*client_at(s, slot));
    seg_ref *r = ref_find(s, slot, obj);
    if (!r) {
        if (c->nrecords >= s->lay.max_refs)
            return REEL_ETOOMANYREFS;
        seg_ref *t = client_refs(s, slot);
        uint32_t mask = s->lay.ref_slots - 1;
        uint32_t i = ref_home(s, obj);
        while (t[i].obj_plus1 != 0)
            i = (i + 1) & mask;
        r = &t[i];
        r->gen = (*obj_at(s, obj)).gen;
        r->count = 0;
        r->obj_plus1 = obj + 1;
        c->nrecords++;
    }
    r->count++;
    c->refs++;
    seg_object *o = &(*obj_at(s, obj));
    if (o->refs++ == 0) {
        if (o->flags & REEL_OBJ_EVICTABLE)
            lru_remove(s, obj);
        s->hdr->n_referenced++;
    }
    return 0;
}

static void ref_record_remove(reel_store *s, uint32_t slot, seg_ref *r) {
    seg_ref *t = client_refs(s, slot);
    uint32_t mask = s->lay.ref_slots - 1;
    uint32_t i = (uint32_t)(r - t);
    /* A table always has an empty record (at most 2/3 full), except a corrupt
     * one: the walk stops after one lap whatever the table holds. */
    for (uint32_t j = (i + 1) & mask, n = 0; n < mask; j = (j + 1) & mask, n++) {
        if (t[j].obj_plus1 == 0)
            break;
        uint32_t home = ref_home(s, t[j].obj_plus1 - 1);
        if (((j - home) & mask) >= ((j - i) & mask)) {
            t[i] = t[j];
            i = j;
        }
    }
    memset(&t[i], 0, sizeof t[i]);
    (*client_at(s, slot)).nrecords--;
}

/* Drops count references of obj (held through record r of slot). Frees the
 * object when it was deleted and this was its last reference. Returns 1 if
 * space was freed. */
static int ref_drop(reel_store *s, uint32_t slot, seg_ref *r, uint32_t count) {
    uint32_t obj = r->obj_plus1 - 1;
    seg_object *o = &(*obj_at(s, obj));
    int freed = 0;
    r->count -= count;
    (*client_at(s, slot)).refs -= count;
    if (r->count == 0)
        ref_record_remove(s, slot, r);
    o->refs -= count;
    if (o->refs == 0) {
        s->hdr->n_referenced--;
        o->last_use = ++s->hdr->tick;
        if (o->state == OBJ_DELETING) {
            object_free(s, obj);
            freed = 1;
        } else if (o->flags & REEL_OBJ_EVICTABLE) {
            lru_push(s, obj);
        }
    }
    return freed;
}

/* Deletes live object i: at once if nobody holds it, else when its last
 * reference goes. Sets *freed if space was freed. Caller holds the lock. */
static int object_delete(reel_store *s, uint32_t i, int *freed) {
    seg_object *o = &(*obj_at(s, i));
    if (o->state == OBJ_FREE || o->state == OBJ_DELETING || (o->flags & OBJF_DELETE_PENDING))
        return REEL_ENOTFOUND;
    if (o->state == OBJ_UNSEALED)
        return REEL_ENOTSEALED;
    if (o->state == OBJ_SPILLED && (o->flags & OBJF_RESTORING)) {
        o->flags |= OBJF_DELETE_PENDING; /* freed when the restore is done */
    } else if (o->refs == 0 && !(o->flags & OBJF_SPILLING)) {
        object_free(s, i);
        *freed = 1;
    } else {
        /* Held, or being written to a spill file: freed when that ends. */
        count_state(s->hdr, o->state, -1);
        o->state = OBJ_DELETING;
        count_state(s->hdr, o->state, +1);
    }
    return 0;
}

/* Whether owner (a client slot + 1) and epoch name a client still attached. */
static int owner_attached(reel_store *s, uint32_t owner, uint32_t epoch) {
    if (owner == 0 || owner > s->lay.max_clients)
        return 0;
    const seg_client *c = &(*client_at(s, owner - 1));
    return c->state == CLIENT_ALIVE && c->epoch == epoch;
}

/* The objects client slot owns: deleted if it died, handed to the store if
 * it closed. An unsealed one of a dead owner keeps its owner: its seal
 * finds the owner gone and frees it. Returns whether space was freed. */
static int drop_owned(reel_store *s, uint32_t slot, int dead) {
    seg_client *c = &(*client_at(s, slot));
    int freed = 0;
    if (!c->owns)
        return 0;
    for (uint32_t i = 0; i < s->lay.max_objects; i++) {
        seg_object *o = &(*obj_at(s, i));
        if (o->state == OBJ_FREE || o->owner != slot + 1 || o->owner_epoch != c->epoch ||
            (dead && o->state == OBJ_UNSEALED))
            continue;
        object_disown(s, o);
        if (dead && object_delete(s, i, &freed) == 0)
            s->hdr->orphans_deleted++;
    }
    return freed;
}

/* Releases everything client slot holds, aborts what it left unsealed, and
 * deletes (dead) or hands over (closed) what it owned, then frees the slot.
 * Used by close and by reclaim of a dead client. */
static int client_drop(reel_store *s, uint32_t slot, int dead) {
    seg_client *c = &(*client_at(s, slot));
    seg_ref *t = client_refs(s, slot);
    int freed = drop_owned(s, slot, dead);
    for (uint32_t i = 0; i < s->lay.ref_slots && c->nrecords > 0;) {
        seg_ref *r = &t[i];
        uint32_t obj = r->obj_plus1 - 1;
        if (r->obj_plus1 == 0) {
            i++;
            continue;
        }
        if (obj >= s->lay.max_objects || (*obj_at(s, obj)).gen != r->gen ||
            (*obj_at(s, obj)).refs < r->count) {
            ref_record_remove(s, slot, r); /* stale or corrupt: nothing to drop */
            continue;
        }
        /* Removal may shift a later record into i: look at i again. */
        freed |= ref_drop(s, slot, r, r->count);
    }
    if (c->unsealed > 0) {
        for (uint32_t i = 0; i < s->lay.max_objects; i++) {
            seg_object *o = &(*obj_at(s, i));
            if (o->state == OBJ_UNSEALED && o->creator == slot) {
                object_free(s, i);
                freed = 1;
            }
        }
    }
    /* A spill or restore this client had under way outside the lock is
     * undone: a spilled object stays in memory, a restored one on disk. */
    int undone = 0;
    for (uint32_t i = 0; i < s->lay.max_objects; i++) {
        seg_object *o = &s->objects[i];
        if (o->state == OBJ_FREE || !(o->flags & (OBJF_SPILLING | OBJF_RESTORING)) ||
            o->mover != slot + 1)
            continue;
        undone = 1;
        o->mover = 0;
        if (o->flags & OBJF_SPILLING) {
            o->flags &= ~OBJF_SPILLING;
            spill_file_release(s, o->spill_file, o->spill_off, o->alloc);
            if (o->state == OBJ_DELETING && o->refs == 0) {
                object_free(s, i);
                freed = 1;
            }
        } else {
            o->flags &= ~OBJF_RESTORING;
            object_drop_block(s, o);
            freed = 1;
            if (o->flags & OBJF_DELETE_PENDING)
                object_free(s, i);
        }
    }
    for (uint32_t f = 0; f < SEG_SPILL_FILES; f++)
        if (s->spill_files[f].writer == slot + 1) { /* its own count on a file it wrote */
            s->spill_files[f].writer = 0;
            spill_file_release(s, f, 0, 0);
        }
    if (undone) /* gets waiting for a restore look again */
        atomic_fetch_add_explicit(&s->hdr->seal_seq, 1, memory_order_seq_cst);
    memset(t, 0, (size_t)s->lay.ref_slots * sizeof *t);
    memset(c, 0, sizeof *c);
    return freed;
}

/* ---- dead clients ----------------------------------------------------- */

/* Dead means gone for sure: no such process, a zombie, or another process
 * under a reused pid. Not being able to look (out of fds, say) is not death:
 * declaring a live client dead would free what it is writing. */
static int client_alive(const seg_client *c) {
    if (c->state != CLIENT_ALIVE || c->pid <= 0)
        return 0;
    if (kill(c->pid, 0) != 0 && errno == ESRCH)
        return 0;
    uint64_t start;
    char state = '?';
    int rc = reel__process_start_time(c->pid, &start, &state);
    if (rc == -ENOENT || rc == -ESRCH)
        return 0;
    if (rc != 0)
        return 1;
    if (state == 'Z' || state == 'X')
        return 0;
    return start == c->start_time;
}

/* Caller holds the lock. Reclaims every dead client; returns how many. */
static uint32_t reclaim_dead(reel_store *s) {
    uint32_t n = 0;
    int freed = 0;
    for (uint32_t i = 0; i < s->lay.max_clients; i++) {
        if ((*client_at(s, i)).state == CLIENT_ALIVE && i != s->slot &&
            !client_alive(&(*client_at(s, i)))) {
            freed |= client_drop(s, i, 1);
            n++;
        }
    }
    s->hdr->reclaims += n;
    if (freed)
        wake_space(s);
    return n;
}

/* ---- rebuild ---------------------------------------------------------- */

static int by_offset(const void *a, const void *b, void *ctx) {
    const seg_object *objects = ctx;
    uint64_t x = objects[*(const uint32_t *)a].offset, y = objects[*(const uint32_t *)b].offset;
    return x < y ? -1 : x > y;
}

static int by_last_use(const void *a, const void *b, void *ctx) {
    const seg_object *objects = ctx;
    uint64_t x = objects[*(const uint32_t *)a].last_use;
    uint64_t y = objects[*(const uint32_t *)b].last_use;
    return x < y ? -1 : x > y;
}

static void drop_object_record(reel_store *s, seg_object *o) {
    (void)s;
    o->state = OBJ_FREE;
    o->flags &= ~(OBJF_SPILLING | OBJF_RESTORING | OBJF_DELETE_PENDING);
    o->mover = 0;
    o->owner = 0;
}

/* Derives the index, the allocator, the LRU, the counters and the reference
 * totals again from the object table and the clients' reference tables,
 * dropping dead clients and anything inconsistent. Caller holds the lock (or
 * the segment is not yet published). */
void reel__rebuild(reel_store *s) {
    seg_header *h = s->hdr;
    const seg_layout *l = &s->lay;
    uint64_t max_tick = h->tick;

    /* 1. Clients: drop dead ones (their table may be half-written). */
    for (uint32_t c = 0; c < l->max_clients; c++) {
        seg_client *cl = &(*client_at(s, c));
        if (cl->state == CLIENT_ALIVE && c != s->slot && !client_alive(cl)) {
            memset(client_refs(s, c), 0, (size_t)l->ref_slots * sizeof(seg_ref));
            memset(cl, 0, sizeof *cl);
            h->reclaims++;
        } else if (cl->state != CLIENT_ALIVE && cl->state != CLIENT_FREE) {
            memset(cl, 0, sizeof *cl);
        }
    }

    /* 2. Objects: keep only well-formed ones whose creator (if unsealed) lives. */
    for (uint32_t i = 0; i < l->max_objects; i++) {
        seg_object *o = &(*obj_at(s, i));
        o->refs = 0;
        if (o->state == OBJ_FREE)
            continue;
        /* The work of a mover that died is undone: a spill not finished leaves
         * the object in memory, a restore not finished leaves it on disk. */
        if ((o->flags & (OBJF_SPILLING | OBJF_RESTORING)) &&
            (o->mover == 0 || o->mover > l->max_clients ||
             (*client_at(s, o->mover - 1)).state != CLIENT_ALIVE)) {
            o->flags &= ~(OBJF_SPILLING | OBJF_RESTORING);
            if (o->flags & OBJF_DELETE_PENDING)
                o->state = OBJ_DELETING; /* nobody holds it: dropped in step 4 */
            o->flags &= ~OBJF_DELETE_PENDING;
            o->mover = 0;
        }
        if (o->state > OBJ_SPILLED || (in_arena(o) && !object_extent_ok(s, o)) || o->alloc == 0 ||
            o->alloc % SEG_ALIGN != 0 || o->meta_size > REEL_META_MAX ||
            obj_alloc_size(o->size, o->meta_size) > o->alloc ||
            ((o->state == OBJ_SPILLED || (o->flags & OBJF_SPILLING)) &&
             o->spill_file >= SEG_SPILL_FILES) ||
            (o->state == OBJ_UNSEALED &&
             (o->creator >= l->max_clients || (*client_at(s, o->creator)).state != CLIENT_ALIVE))) {
            drop_object_record(s, o);
            continue;
        }
        /* An owner gone: its sealed objects go too (an unsealed one fails
         * its seal). One held goes when its last reference does (step 4). */
        if (o->owner && !owner_attached(s, o->owner, o->owner_epoch) && o->state != OBJ_UNSEALED) {
            o->owner = 0;
            h->orphans_deleted += o->state != OBJ_DELETING && !(o->flags & OBJF_DELETE_PENDING);
            if (o->state == OBJ_SPILLED && (o->flags & OBJF_RESTORING)) {
                o->flags |= OBJF_DELETE_PENDING;
            } else if (o->state == OBJ_SPILLED) {
                drop_object_record(s, o);
                continue;
            } else {
                o->state = OBJ_DELETING;
            }
        }
        o->hash = reel__id_hash(&o->id);
        if (o->last_use > max_tick)
            max_tick = o->last_use;
    }

    /* 3. References: counted again from live clients' tables, read in place.
     * A live client's table is never rewritten here: a rebuild killed part
     * way must not lose a reference a live process holds. A record naming a
     * freed object (possible only in a corrupt table) is not counted. */
    for (uint32_t c = 0; c < l->max_clients; c++) {
        seg_client *cl = &(*client_at(s, c));
        cl->nrecords = cl->refs = cl->unsealed = 0;
        if (cl->state != CLIENT_ALIVE)
            continue;
        seg_ref *t = client_refs(s, c);
        for (uint32_t i = 0; i < l->ref_slots; i++) {
            seg_ref r = t[i];
            if (r.obj_plus1 == 0)
                continue;
            cl->nrecords++;
            if (r.obj_plus1 > l->max_objects || r.count == 0)
                continue;
            seg_object *o = &(*obj_at(s, r.obj_plus1 - 1));
            if ((o->state != OBJ_SEALED && o->state != OBJ_DELETING) || o->gen != r.gen)
                continue;
            cl->refs += r.count;
            o->refs += r.count;
        }
    }

    /* 4. Deleted objects nobody holds any more are gone. Sort the rest by offset;
     * an object overlapping its predecessor is corrupt and dropped. */
    uint32_t live = 0;
    for (uint32_t i = 0; i < l->max_objects; i++) {
        seg_object *o = &(*obj_at(s, i));
        if (o->state == OBJ_DELETING && o->refs == 0 && !(o->flags & OBJF_SPILLING))
            drop_object_record(s, o);
        if (in_arena(o))
            s->scratch[live++] = i;
    }
    if (live > 1)
        qsort_r(s->scratch, live, sizeof *s->scratch, by_offset, s->objects);

    /* 5. Index, blocks and counters from the sorted live objects. */
    memset(s->index, 0, (size_t)l->index_size * sizeof *s->index);
    for (uint32_t b = 0; b < l->max_blocks; b++) {
        (*blk_at(s, b)).state = BLOCK_UNUSED;
        (*blk_at(s, b)).free_next = b + 1 < l->max_blocks ? b + 1 : SEG_NIL;
    }
    h->block_unused_head = 0;
    for (int c = 0; c < SEG_CLASSES; c++)
        h->class_head[c] = SEG_NIL;
    h->class_bitmap = 0;
    h->free_blocks = 0;
    h->used = 0;
    h->n_unsealed = h->n_sealed = h->n_deleting = h->n_evictable = h->n_referenced = 0;
    h->n_owned = 0;
    h->n_spilled = 0;
    h->spilled_bytes = 0;
    h->lru_head = h->lru_tail = SEG_NIL;

    uint64_t cursor = 0;
    uint32_t prev_block = SEG_NIL, kept = 0;
    for (uint32_t k = 0; k < live; k++) {
        uint32_t i = s->scratch[k];
        seg_object *o = &(*obj_at(s, i));
        if (o->offset < cursor || index_find(s, &o->id, o->hash) != SEG_NIL) {
            drop_object_record(s, o); /* overlapping or a duplicate ID */
            continue;
        }
        if (o->offset > cursor) { /* the gap before it is free */
            uint32_t g = block_record_new(s);
            (*blk_at(s, g)) = (seg_block){.offset = cursor,
                                          .size = o->offset - cursor,
                                          .addr_prev = prev_block,
                                          .addr_next = SEG_NIL};
            if (prev_block != SEG_NIL)
                (*blk_at(s, prev_block)).addr_next = g;
            freelist_insert(s, g);
            prev_block = g;
        }
        uint32_t b = block_record_new(s);
        (*blk_at(s, b)) = (seg_block){.offset = o->offset,
                                      .size = o->alloc,
                                      .addr_prev = prev_block,
                                      .addr_next = SEG_NIL,
                                      .state = BLOCK_USED,
                                      .obj = i};
        if (prev_block != SEG_NIL)
            (*blk_at(s, prev_block)).addr_next = b;
        prev_block = b;
        o->block = b;
        h->used += o->alloc;
        cursor = o->offset + o->alloc;
        index_insert(s, i, o->hash);
        count_state(h, o->state, +1);
        if (o->state == OBJ_SPILLED) /* being restored */
            h->spilled_bytes += o->alloc;
        if (o->refs > 0)
            h->n_referenced++;
        if (o->state == OBJ_UNSEALED)
            (*client_at(s, o->creator)).unsealed++;
        h->n_owned += o->owner != 0;
        s->scratch[kept++] = i;
    }
    /* The peak survives a rebuild: it is history, not derived from the
     * objects. Only one that cannot be right (below what is held now, or
     * above the capacity) starts again from what is held. */
    if (h->peak_used < h->used || h->peak_used > l->capacity)
        h->peak_used = h->used;
    if (cursor < l->capacity) {
        uint32_t g = block_record_new(s);
        (*blk_at(s, g)) = (seg_block){.offset = cursor,
                                      .size = l->capacity - cursor,
                                      .addr_prev = prev_block,
                                      .addr_next = SEG_NIL};
        if (prev_block != SEG_NIL)
            (*blk_at(s, prev_block)).addr_next = g;
        freelist_insert(s, g);
    }

    /* Spilled objects hold no block: index them, and count each spill file's
     * objects again. A file that lost its last object is removed. */
    uint32_t old_live[SEG_SPILL_FILES];
    for (uint32_t f = 0; f < SEG_SPILL_FILES; f++) {
        old_live[f] = s->spill_files[f].live;
        s->spill_files[f].live = 0;
    }
    for (uint32_t i = 0; i < l->max_objects; i++) {
        seg_object *o = &(*obj_at(s, i));
        if (o->state == OBJ_FREE)
            continue;
        if (o->state == OBJ_SPILLED && !(o->flags & OBJF_RESTORING)) {
            if (index_find(s, &o->id, o->hash) != SEG_NIL) {
                drop_object_record(s, o);
                continue;
            }
            index_insert(s, i, o->hash);
            count_state(h, o->state, +1);
            h->spilled_bytes += o->alloc;
            h->n_owned += o->owner != 0;
        }
        if (o->state == OBJ_SPILLED || (o->flags & OBJF_SPILLING))
            s->spill_files[o->spill_file].live++;
    }
    for (uint32_t f = 0; f < SEG_SPILL_FILES; f++) { /* a live writer holds one more */
        seg_spill_file *sf = &s->spill_files[f];
        if (sf->writer &&
            (sf->writer > l->max_clients || (*client_at(s, sf->writer - 1)).state != CLIENT_ALIVE))
            sf->writer = 0;
        sf->live += sf->writer != 0;
    }
    h->spill_files = 0;
    for (uint32_t f = 0; f < SEG_SPILL_FILES; f++) {
        seg_spill_file *sf = &s->spill_files[f];
        if (sf->live > 0) {
            h->spill_files++;
        } else if (old_live[f] > 0) {
            char path[SEG_SPILL_DIR_MAX + 64];
            reel__spill_file_path(s, f, sf->gen, path, sizeof path);
            unlink(path);
            sf->bytes = 0;
        }
    }

    /* 6. LRU in the order of last use; free object slots chained. */
    uint32_t nlru = 0;
    for (uint32_t k = 0; k < kept; k++)
        if (in_lru(&(*obj_at(s, s->scratch[k]))))
            s->scratch[nlru++] = s->scratch[k];
    if (nlru > 1)
        qsort_r(s->scratch, nlru, sizeof *s->scratch, by_last_use, s->objects);
    for (uint32_t k = 0; k < nlru; k++)
        lru_push(s, s->scratch[k]);
    h->object_free_head = SEG_NIL;
    for (uint32_t i = l->max_objects; i-- > 0;) {
        seg_object *o = &(*obj_at(s, i));
        if (o->state == OBJ_FREE) {
            o->lru_prev = SEG_NIL;
            o->lru_next = h->object_free_head;
            h->object_free_head = i;
        }
    }
    h->tick = max_tick;
    s->corrupt = 0;
    wake_space(s);
    reel__wake(&h->seal_seq, &h->seal_sleepers); /* a sealer may have died before its wake */
}

/* ---- stores ----------------------------------------------------------- */

/* A path as given, or a bare name's place in this user's private directory. */
static int resolve_path(const char *path, char **out) {
    *out = NULL;
    if (!path || !*path)
        return -EINVAL;
    if (strchr(path, '/'))
        return (*out = strdup(path)) ? 0 : -ENOMEM;
    char dir[64];
    int rc = reel__private_dir(dir, sizeof dir);
    if (rc)
        return rc;
    return asprintf(out, "%s/%s", dir, path) < 0 ? (*out = NULL, -ENOMEM) : 0;
}

static int claim_slot(reel_store *s) {
    uint64_t start;
    int rc = reel__process_start_time(getpid(), &start, NULL);
    if (rc)
        return rc;
    if ((rc = store_lock(s)) != 0)
        return rc;
    reclaim_dead(s);
    uint32_t slot = SEG_NIL;
    for (uint32_t i = 0; i < s->lay.max_clients; i++)
        if ((*client_at(s, i)).state == CLIENT_FREE) {
            slot = i;
            break;
        }
    if (slot == SEG_NIL) {
        store_unlock(s);
        return reel__fail(REEL_ETOOMANYCLIENTS, "all %u client slots of %s are taken",
                          s->lay.max_clients, s->path);
    }
    seg_client *c = &(*client_at(s, slot));
    memset(c, 0, sizeof *c);
    memset(client_refs(s, slot), 0, (size_t)s->lay.ref_slots * sizeof(seg_ref));
    c->pid = getpid();
    c->start_time = start;
    c->attach_ns = reel__now_ns(CLOCK_REALTIME);
    if (++s->hdr->client_epochs == 0) /* 0 names no attach */
        s->hdr->client_epochs = 1;
    c->epoch = s->hdr->client_epochs;
    c->state = CLIENT_ALIVE;
    s->slot = slot;
    store_unlock(s);
    return 0;
}

static void store_free(reel_store *s) {
    if (s->base) {
        reel__gpu_store_unpin(s); /* no-op, and no CUDA, unless this process pinned it */
        munmap(s->base, s->map_size);
    }
    free(s->scratch);
    free(s->path);
    free(s);
}

/* Checks what the open trusts beyond the header: that the space counter
 * matches the objects' extents, that the object counts match their states,
 * and that no two objects share arena bytes. A file written by a crashed or
 * foreign process can say otherwise (reel-inspect showed a store over 100%
 * full). Writes what disagrees into why and returns 0 if all agrees. Caller
 * holds the lock. */
static int audit(reel_store *s, char *why, size_t cap) {
    const seg_header *h = s->hdr;
    uint64_t used = 0;
    uint32_t by_state[OBJ_SPILLED + 1] = {0}, live = 0;
    for (uint32_t i = 0; i < s->lay.max_objects; i++) {
        seg_object *o = obj_at(s, i);
        if (o->state == OBJ_FREE)
            continue;
        if (o->state > OBJ_SPILLED) {
            snprintf(why, cap, "object %u has state %u", i, o->state);
            return 1;
        }
        by_state[o->state]++;
        if (!in_arena(o))
            continue;
        if (!object_extent_ok(s, o)) {
            snprintf(why, cap, "object %u lies outside the arena (offset %llu, %llu bytes)", i,
                     (unsigned long long)o->offset, (unsigned long long)o->alloc);
            return 1;
        }
        used += o->alloc;
        s->scratch[live++] = i;
    }
    if (used != h->used) {
        snprintf(why, cap, "its used counter says %llu bytes, its objects hold %llu",
                 (unsigned long long)h->used, (unsigned long long)used);
        return 1;
    }
    if (by_state[OBJ_UNSEALED] != h->n_unsealed || by_state[OBJ_SEALED] != h->n_sealed ||
        by_state[OBJ_DELETING] != h->n_deleting || by_state[OBJ_SPILLED] != h->n_spilled) {
        snprintf(why, cap,
                 "its object counters (%u unsealed, %u sealed, %u deleting, %u spilled) disagree "
                 "with its objects (%u, %u, %u, %u)",
                 h->n_unsealed, h->n_sealed, h->n_deleting, h->n_spilled, by_state[OBJ_UNSEALED],
                 by_state[OBJ_SEALED], by_state[OBJ_DELETING], by_state[OBJ_SPILLED]);
        return 1;
    }
    if (live > 1)
        qsort_r(s->scratch, live, sizeof *s->scratch, by_offset, s->objects);
    for (uint32_t k = 1; k < live; k++) {
        seg_object *a = obj_at(s, s->scratch[k - 1]), *b = obj_at(s, s->scratch[k]);
        if (a->offset + a->alloc > b->offset) {
            snprintf(why, cap, "objects %u and %u share arena bytes from offset %llu",
                     s->scratch[k - 1], s->scratch[k], (unsigned long long)b->offset);
            return 1;
        }
    }
    return 0;
}

/* Whether a live process is attached: then the segment is in use, kept
 * consistent under its lock, and an open (a worker's, say, of a store with
 * many objects) need not walk the whole object table. Caller holds the lock. */
static int in_use(reel_store *s) {
    for (uint32_t i = 0; i < s->lay.max_clients; i++)
        if (client_alive(client_at(s, i)))
            return 1;
    return 0;
}

/* Audits the segment at open and, where it disagrees with itself, derives it
 * again from the object table (overlapping objects are dropped) rather than
 * hand out space that is not there or bytes two objects share. The repair is
 * counted in recoveries and said in reel_last_error(). A store nobody is
 * attached to - a file a crashed run or another program left - is audited
 * whole; one in use only when its counters cannot be right. */
static int audit_on_open(reel_store *s) {
    int rc = store_lock(s);
    if (rc)
        return rc;
    const seg_header *h = s->hdr;
    int implausible =
        h->used > s->lay.capacity || h->used % SEG_ALIGN != 0 ||
        (uint64_t)h->n_unsealed + h->n_sealed + h->n_deleting + h->n_spilled > s->lay.max_objects;
    char why[200];
    int bad = (implausible || !in_use(s)) && audit(s, why, sizeof why);
    if (bad) {
        s->hdr->recoveries++;
        reel__rebuild(s);
    }
    /* A peak below what is held or above the capacity was damaged, not
     * reached: it starts again from what is held (no repair counted: it is a
     * statistic, nothing is handed out by it). */
    if (s->hdr->peak_used < s->hdr->used || s->hdr->peak_used > s->lay.capacity)
        s->hdr->peak_used = s->hdr->used;
    store_unlock(s);
    if (bad)
        reel__fail(0, "%s was repaired at open: %s", s->path, why);
    return 0;
}

static int store_attach(const char *path, uint32_t flags, reel_store **out) {
    reel_store *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->slot = SEG_NIL;
    s->spin_ns = DEFAULT_SPIN_NS;
    int rc = resolve_path(path, &s->path);
    if (rc) {
        free(s);
        return rc;
    }
    int observer = (flags & REEL_OPEN_OBSERVER) != 0;
    rc = reel__segment_map(s, s->path, !observer && !(flags & REEL_OPEN_LAZY));
    if (rc == 0) {
        s->scratch = malloc((size_t)s->lay.max_objects * sizeof *s->scratch);
        if (!s->scratch)
            rc = -ENOMEM;
    }
    if (rc == 0)
        rc = audit_on_open(s);
    if (rc == 0 && !observer)
        rc = claim_slot(s);
    if (rc == 0 && (flags & REEL_OPEN_GPU_PIN))
        (void)reel_store_gpu_pin(s); /* best effort: no GPU is the CPU path */
    if (rc) {
        store_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

/* Makes the spill directory (mode 0700) or checks that the one there is a
 * directory of ours that nobody else can write. */
static int prepare_spill_dir(const char *dir) {
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return reel__fail(-errno, "cannot make the spill directory %s: %s", dir, strerror(errno));
    struct stat st;
    if (lstat(dir, &st) != 0)
        return -errno;
    if (!S_ISDIR(st.st_mode) || st.st_uid != getuid() || (st.st_mode & 022))
        return reel__fail(-EACCES, "%s is not a directory only this user can write", dir);
    return 0;
}

/* 1 if dir, or the nearest of its parents that exists (the spill directory
 * is made by the first spill), is on a file system held in memory (tmpfs,
 * ramfs): spilling there moves bytes from one part of memory to another and
 * frees none. 0 otherwise, and where nothing can be looked at. */
static int in_memory_fs(const char *dir) {
    char p[SEG_SPILL_DIR_MAX];
    snprintf(p, sizeof p, "%s", dir);
    struct statfs fs;
    for (;;) {
        if (statfs(p, &fs) == 0)
            return fs.f_type == TMPFS_MAGIC || fs.f_type == RAMFS_MAGIC;
        char *slash = strrchr(p, '/');
        if (errno != ENOENT || !slash || slash == p)
            return 0;
        *slash = '\0';
    }
}

REEL_INTERNAL const char *reel__disk_dir(const char *const *candidates, size_t n) {
    for (size_t i = 0; i < n; i++) {
        struct statfs fs;
        if (statfs(candidates[i], &fs) == 0 && fs.f_type != TMPFS_MAGIC && fs.f_type != RAMFS_MAGIC)
            return candidates[i];
    }
    return candidates[0];
}

/* The default parent of spill directories. /tmp is tmpfs on many systems
 * (memory, and swap at best), /var/tmp rarely. Where both are in memory,
 * /var/tmp, and the store says so (reel_store_stats.spill_dir_in_memory). */
static const char *default_spill_parent(void) {
    static const char *const candidates[] = {"/var/tmp", "/tmp"};
    return reel__disk_dir(candidates, sizeof candidates / sizeof *candidates);
}

REEL_API int reel_store_create(const char *path, const reel_store_options *opts, reel_store **out) {
    REEL_NEED(path, "path");
    REEL_NEED(out, "out");
    reel_store_options o = opts ? *opts : (reel_store_options){0};
    seg_layout l;
    reel__clear_error();
    if ((o.flags & ~(REEL_STORE_NO_PREFAULT | REEL_STORE_NO_SPILL | REEL_STORE_GPU_PIN)) ||
        !(o.high_water >= 0 && o.high_water <= 1))
        return -EINVAL;
    int rc = reel__layout(&l, o.capacity ? o.capacity : DEFAULT_CAPACITY,
                          o.max_objects ? o.max_objects : DEFAULT_MAX_OBJECTS,
                          o.max_clients ? o.max_clients : DEFAULT_MAX_CLIENTS,
                          o.max_refs_per_client ? o.max_refs_per_client : DEFAULT_MAX_REFS);
    if (rc)
        return reel__fail(rc, "store sizes out of range");
    char *p;
    rc = resolve_path(path, &p);
    if (rc)
        return rc;
    char dir[SEG_SPILL_DIR_MAX] = "";
    uint32_t high_water =
        o.high_water > 0 ? (uint32_t)(o.high_water * 1000 + 0.5) : SEG_HIGH_WATER_DEF;
    if (high_water == 0) /* a tiny positive mark still spills */
        high_water = 1;
    if (!(o.flags & REEL_STORE_NO_SPILL)) {
        const char *base = strrchr(p, '/') + 1;
        int len = o.spill_dir
                      ? snprintf(dir, sizeof dir, "%s", o.spill_dir)
                      : snprintf(dir, sizeof dir, "%s/reel-spill-%s", default_spill_parent(), base);
        /* The directory itself is made by the first spill: a store that
         * never spills leaves nothing on disk. */
        if (len <= 0 || len >= (int)sizeof dir)
            rc = reel__fail(-ENAMETOOLONG, "the spill directory's path is too long");
        else if (dir[0] != '/') /* every process must find the same files */
            rc = reel__fail(-EINVAL, "the spill directory must be an absolute path: %s", dir);
    }
    if (rc == 0)
        rc = reel__segment_create(p, &l, !(o.flags & REEL_STORE_NO_PREFAULT), dir, high_water);
    if (rc == 0) {
        rc = store_attach(p, (o.flags & REEL_STORE_GPU_PIN) ? REEL_OPEN_GPU_PIN : 0, out);
        if (rc)
            unlink(p);
    }
    if (rc == 0 && dir[0] && in_memory_fs(dir) && store_lock(*out) == 0) {
        (*out)->hdr->spill_in_memory = 1;
        store_unlock(*out);
    }
    free(p);
    return rc;
}

REEL_API int reel_store_open(const char *path, uint32_t flags, reel_store **out) {
    REEL_NEED(path, "path");
    REEL_NEED(out, "out");
    reel__clear_error();
    if ((flags & ~(REEL_OPEN_OBSERVER | REEL_OPEN_GPU_PIN | REEL_OPEN_LAZY)))
        return -EINVAL;
    return store_attach(path, flags, out);
}

static void remove_spill_files(const char *dir, uint64_t token);

/* Caller holds the lock. 1 if no live client other than skip is attached. */
static int nobody_attached(reel_store *s, uint32_t skip) {
    for (uint32_t i = 0; i < s->lay.max_clients; i++)
        if (i != skip && client_alive(&(*client_at(s, i))))
            return 0;
    return 1;
}

REEL_API int reel_store_close(reel_store *s) {
    if (!s)
        return 0;
    int rc = 0, last = 0;
    char dir[SEG_SPILL_DIR_MAX];
    uint64_t token = 0;
    /* A handle inherited across fork() belongs to the parent: leave its slot alone. */
    if (s->slot != SEG_NIL && (*client_at(s, s->slot)).pid == getpid()) {
        rc = store_lock(s);
        if (rc == 0) {
            if (client_drop(s, s->slot, 0))
                wake_space(s);
            /* The store was destroyed while this client still needed its
             * spill files: the last one out removes them. */
            last = s->hdr->destroyed && nobody_attached(s, s->slot);
            memcpy(dir, s->hdr->spill_dir, sizeof dir);
            dir[sizeof dir - 1] = '\0';
            token = s->hdr->spill_token;
            store_unlock(s);
        }
    }
    store_free(s);
    if (last && dir[0])
        remove_spill_files(dir, token);
    return rc;
}

/* Removes the spill files of one store (named by its token) and the spill
 * directory, if that leaves it empty. */
static void remove_spill_files(const char *dir, uint64_t token) {
    char prefix[40];
    snprintf(prefix, sizeof prefix, "spill-%016llx-", (unsigned long long)token);
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0)
            unlinkat(dirfd(d), e->d_name, 0);
    closedir(d);
    rmdir(dir);
}

static void destroy_orphan(const char *dir, const char *name, void *arg) {
    (void)dir;
    (void)arg;
    reel_store_destroy(name); /* a bare name: in the private directory */
}

REEL_API unsigned reel_store_destroy_orphans(const char *prefix) {
    REEL_NEED_OR(prefix, "prefix", 0);
    return *prefix ? reel__each_left_by_the_dead(NULL, prefix, 0, destroy_orphan, NULL) : 0;
}

REEL_API int reel_store_destroy(const char *path) {
    REEL_NEED(path, "path");
    char *p;
    int prc = resolve_path(path, &p);
    if (prc)
        return prc;
    /* The spill directory is named in the header: read it before the file
     * goes. Spill files are removed only if no live process is attached:
     * one that is keeps its mapping, and reads its spilled objects back
     * from them; the last of those to close removes them. The file is
     * unlinked first, so that nobody attaches after the count. */
    char dir[SEG_SPILL_DIR_MAX] = "";
    uint64_t token = 0;
    int attached = 0;
    reel_store *s = NULL;
    if (reel_store_open(p, REEL_OPEN_OBSERVER, &s) != 0)
        s = NULL;
    int rc = unlink(p) == 0 ? 0 : -errno;
    if (s) {
        if (rc == 0 && store_lock(s) == 0) {
            s->hdr->destroyed = 1;
            attached = !nobody_attached(s, SEG_NIL);
            store_unlock(s);
        }
        memcpy(dir, s->hdr->spill_dir, sizeof dir);
        dir[sizeof dir - 1] = '\0';
        token = s->hdr->spill_token;
        reel_store_close(s);
    }
    if (rc == 0 && dir[0] && !attached)
        remove_spill_files(dir, token);
    free(p);
    return rc;
}

REEL_API const char *reel_store_path(const reel_store *s) {
    REEL_NEED_OR(s, "store", NULL);
    return s->path;
}

REEL_API const char *reel_store_spill_dir(const reel_store *s) {
    REEL_NEED_OR(s, "store", NULL);
    return s->hdr->spill_dir; /* checked for its NUL when the store was mapped */
}

REEL_API void reel_store_set_spin_ns(reel_store *s, uint64_t spin_ns) {
    REEL_NEED_OR(s, "store", );
    s->spin_ns = spin_ns;
}

REEL_API int reel_store_reclaim(reel_store *s, uint32_t *reclaimed) {
    REEL_NEED(s, "store");
    int rc = store_lock(s);
    if (rc)
        return rc;
    uint32_t n = reclaim_dead(s);
    store_unlock(s);
    if (reclaimed)
        *reclaimed = n;
    return 0;
}

/* ---- statistics ------------------------------------------------------- */

REEL_API int reel_store_stats_get(reel_store *s, reel_store_stats *out) {
    REEL_NEED(s, "store");
    REEL_NEED(out, "out");
    int rc = store_lock(s);
    if (rc)
        return rc;
    seg_header *h = s->hdr;
    memset(out, 0, sizeof *out);
    out->capacity = s->lay.capacity;
    out->used = h->used;
    out->peak_used = h->peak_used;
    out->free = s->lay.capacity - h->used;
    if (h->class_bitmap) {
        int c = 63 - __builtin_clzll(h->class_bitmap);
        uint32_t n = 0;
        for (uint32_t b = h->class_head[c]; b != SEG_NIL && n < s->lay.max_blocks;
             b = (*blk_at(s, b)).free_next, n++)
            if ((*blk_at(s, b)).size > out->largest_free)
                out->largest_free = (*blk_at(s, b)).size;
    }
    out->free_blocks = h->free_blocks;
    out->max_objects = s->lay.max_objects;
    out->objects_unsealed = h->n_unsealed;
    out->objects_sealed = h->n_sealed;
    out->objects_deleting = h->n_deleting;
    out->objects = h->n_unsealed + h->n_sealed + h->n_deleting + h->n_spilled;
    out->objects_spilled = h->n_spilled;
    out->spill_files = h->spill_files;
    out->spilled_bytes = h->spilled_bytes;
    out->spill_writes = h->spill_writes;
    out->spill_written_bytes = h->spill_written_bytes;
    out->restores = h->restores;
    out->restored_bytes = h->restored_bytes;
    out->spill_failures = h->spill_failures;
    out->spill_dir_in_memory = h->spill_in_memory != 0;
    out->objects_evictable = h->n_evictable;
    out->objects_referenced = h->n_referenced;
    out->max_clients = s->lay.max_clients;
    for (uint32_t i = 0; i < s->lay.max_clients; i++) {
        if ((*client_at(s, i)).state != CLIENT_ALIVE)
            continue;
        if (i == s->slot || client_alive(&(*client_at(s, i))))
            out->clients_alive++;
        else
            out->clients_dead++;
    }
    out->orphans_deleted = h->orphans_deleted;
    out->objects_owned = h->n_owned;
    out->evictions = h->evictions;
    out->evicted_bytes = h->evicted_bytes;
    out->reclaims = h->reclaims;
    out->recoveries = h->recoveries;
    store_unlock(s);
    return 0;
}

REEL_API int reel_store_clients(reel_store *s, reel_client_info *out, size_t cap, size_t *count) {
    REEL_NEED(s, "store");
    REEL_NEED(out || cap == 0, "out");
    REEL_NEED(count, "count");
    int rc = store_lock(s);
    if (rc)
        return rc;
    size_t n = 0;
    for (uint32_t i = 0; i < s->lay.max_clients; i++) {
        seg_client *c = &(*client_at(s, i));
        if (c->state != CLIENT_ALIVE)
            continue;
        if (n < cap)
            out[n] = (reel_client_info){.slot = i,
                                        .pid = c->pid,
                                        .alive = i == s->slot || client_alive(c),
                                        .refs = c->refs,
                                        .unsealed = c->unsealed,
                                        .attach_ns = c->attach_ns};
        n++;
    }
    store_unlock(s);
    *count = n;
    return 0;
}

REEL_API int reel_store_objects(reel_store *s, reel_obj_info *out, size_t cap, size_t *count) {
    REEL_NEED(s, "store");
    REEL_NEED(out || cap == 0, "out");
    REEL_NEED(count, "count");
    int rc = store_lock(s);
    if (rc)
        return rc;
    size_t n = 0;
    for (uint32_t i = 0; i < s->lay.max_objects; i++) {
        seg_object *o = &(*obj_at(s, i));
        if (o->state == OBJ_FREE)
            continue;
        if (n < cap) {
            reel_obj_info *info = &out[n];
            memset(info, 0, sizeof *info);
            info->id = o->id;
            info->size = o->size;
            info->meta_size = o->meta_size;
            info->state = o->state;
            info->refs = o->refs;
            info->flags = o->flags & REEL_OBJ_EVICTABLE; /* the public flags only */
            info->creator_pid = o->creator_pid;
            if (owner_attached(s, o->owner, o->owner_epoch))
                info->owner_pid = (*client_at(s, o->owner - 1)).pid;
            info->create_ns = o->create_ns;
            if (in_arena(o) && !(o->flags & OBJF_RESTORING) && object_extent_ok(s, o)) {
                /* a spilled one's is on disk, a restoring one's half-read */
                uint32_t m =
                    o->meta_size < REEL_OBJ_INFO_META_MAX ? o->meta_size : REEL_OBJ_INFO_META_MAX;
                memcpy(info->meta, s->arena + o->offset + align_up(o->size), m);
            }
        }
        n++;
    }
    store_unlock(s);
    *count = n;
    return 0;
}

static int need_client(const reel_store *s) {
    return s->slot == SEG_NIL ? REEL_EOBSERVER : 0;
}

/* ---- ownership -------------------------------------------------------- */

REEL_API int reel_store_owner_token(reel_store *s, uint64_t *token) {
    REEL_NEED(s, "store");
    REEL_NEED(token, "token");
    int rc = need_client(s);
    if (rc || (rc = store_lock(s)) != 0)
        return rc;
    *token = (uint64_t)(s->slot + 1) << 32 | (*client_at(s, s->slot)).epoch;
    store_unlock(s);
    return 0;
}

REEL_API int reel_store_set_owner(reel_store *s, uint64_t token) {
    REEL_NEED(s, "store");
    uint32_t owner = (uint32_t)(token >> 32), epoch = (uint32_t)token;
    if (token && (owner == 0 || owner > s->lay.max_clients || epoch == 0))
        return reel__fail(-EINVAL, "%#llx is not an owner token of %s", (unsigned long long)token,
                          s->path);
    int rc = store_lock(s);
    if (rc)
        return rc;
    int attached = !token || owner_attached(s, owner, epoch);
    store_unlock(s);
    if (!attached)
        return reel__fail(REEL_EOWNERGONE, "the client owner token %#llx named is gone",
                          (unsigned long long)token);
    s->owner_token = token;
    return 0;
}

/* ---- objects ---------------------------------------------------------- */

/* Evicts least recently used evictable objects until size fits. Returns the
 * block or SEG_NIL. Caller holds the lock. */
static uint32_t alloc_evicting(reel_store *s, uint64_t size) {
    seg_header *h = s->hdr;
    uint32_t b = block_alloc(s, size);
    while (b == SEG_NIL && !s->corrupt && h->lru_head != SEG_NIL) {
        uint32_t victim = h->lru_head;
        if (!in_lru(obj_at(s, victim))) {
            s->corrupt = 1;
            break;
        }
        h->evictions++;
        h->evicted_bytes += (*obj_at(s, victim)).size;
        object_free(s, victim);
        b = block_alloc(s, size);
    }
    return b;
}

static int fail_full(reel_store *s, uint64_t size, uint32_t meta_size, const char *note) {
    reel_store_stats st;
    if (reel_store_stats_get(s, &st) != 0)
        return REEL_EFULL;
    return reel__fail(REEL_EFULL,
                      "store full: asked for %llu bytes (+%u of metadata, %llu with alignment), "
                      "%llu of %llu free (largest free block %llu), %u objects pinned%s",
                      (unsigned long long)size, meta_size,
                      (unsigned long long)obj_alloc_size(size, meta_size),
                      (unsigned long long)st.free, (unsigned long long)st.capacity,
                      (unsigned long long)st.largest_free,
                      st.objects - st.objects_evictable - st.objects_spilled, note ? note : "");
}

/* ---- spilling --------------------------------------------------------- */

static int prepare_spill_dir(const char *dir);

static int spill_enabled(const reel_store *s) {
    return s->hdr->spill_dir[0] != '\0' && s->hdr->high_water > 0 && s->slot != SEG_NIL;
}

typedef struct spill_victim {
    uint32_t obj, gen;
    uint64_t offset, alloc, spill_off;
} spill_victim;

/* Spills sealed objects nobody holds and that are not evictable, least
 * recently used first, until need bytes are freed: marks them under the lock,
 * writes them to one new spill file outside it, then frees the memory of
 * those still unreferenced; *written (optional) grows by the bytes that went
 * to disk. Returns 1 if memory was freed, 0 if there was
 * nothing to spill, or a negative code if the file could not be written
 * (the objects then stay in memory: nothing is lost). */
static int spill_pass(reel_store *s, uint64_t need, uint64_t *written) {
    if (!spill_enabled(s))
        return 0;
    int rc = store_lock(s);
    if (rc)
        return rc;
    uint32_t file = SEG_NIL;
    for (uint32_t f = 0; f < SEG_SPILL_FILES && file == SEG_NIL; f++)
        if (s->spill_files[f].live == 0)
            file = f;
    /* The table is full: append to the file with the fewest objects that
     * nobody is writing, past its end. What left it was punched out, so
     * the files together hold about what is spilled, however many passes
     * there were. */
    int append = 0;
    for (uint32_t f = 0; file == SEG_NIL && f < SEG_SPILL_FILES; f++) {
        seg_spill_file *c = &s->spill_files[f];
        if (c->writer == 0 && (append == 0 || c->live < s->spill_files[append - 1].live))
            append = (int)f + 1;
    }
    if (append)
        file = (uint32_t)append - 1;
    uint32_t n = 0;
    for (uint32_t i = 0; file != SEG_NIL && i < s->lay.max_objects; i++) {
        seg_object *o = &s->objects[i];
        if (o->state == OBJ_SEALED && o->refs == 0 &&
            !(o->flags & (REEL_OBJ_EVICTABLE | OBJF_SPILLING)) && object_extent_ok(s, o))
            s->scratch[n++] = i;
    }
    if (n > 1)
        qsort_r(s->scratch, n, sizeof *s->scratch, by_last_use, s->objects);
    uint32_t k = 0;
    uint64_t got = 0;
    while (k < n && got < need)
        got += s->objects[s->scratch[k++]].alloc;
    spill_victim *v = k ? malloc(k * sizeof *v) : NULL;
    reel__io_piece *pieces = k ? malloc(k * sizeof *pieces) : NULL;
    if (!v || !pieces) {
        store_unlock(s);
        free(v);
        free(pieces);
        return k ? -ENOMEM : 0;
    }
    seg_spill_file *sf = &s->spill_files[file];
    uint64_t start = append ? sf->bytes : 0, off = start;
    for (uint32_t j = 0; j < k; j++) {
        seg_object *o = &s->objects[s->scratch[j]];
        o->flags |= OBJF_SPILLING;
        o->mover = s->slot + 1;
        o->spill_file = file;
        o->spill_off = off;
        v[j] = (spill_victim){s->scratch[j], o->gen, o->offset, o->alloc, off};
        pieces[j] = (reel__io_piece){s->arena + o->offset, off, o->alloc};
        off = (off + o->alloc + SPILL_ALIGN - 1) & ~(uint64_t)(SPILL_ALIGN - 1);
    }
    /* + 1: the writer's own, so the file cannot go before it exists */
    sf->live = (append ? sf->live : 0) + k + 1;
    sf->writer = s->slot + 1;
    if (!append) { /* a new file: a new name */
        sf->gen++;
        s->hdr->spill_files++;
    }
    sf->bytes = off;
    char path[SEG_SPILL_DIR_MAX + 64];
    reel__spill_file_path(s, file, sf->gen, path, sizeof path);
    store_unlock(s);

    /* The bytes stay readable meanwhile: sealed objects never change. */
    int wrc = prepare_spill_dir(s->hdr->spill_dir);
    int fd = wrc ? -1
                 : open(path, O_WRONLY | O_CREAT | (append ? 0 : O_TRUNC) | O_CLOEXEC | O_NOFOLLOW,
                        0600);
    if (!wrc)
        wrc = fd < 0 ? -errno : reel__io_pieces(fd, pieces, k, 1);
    if (fd >= 0)
        close(fd);
    int e = wrc;

    int freed = 0;
    rc = store_lock(s);
    if (rc == 0) {
        for (uint32_t j = 0; j < k; j++) {
            seg_object *o = obj_at(s, v[j].obj);
            if (o->gen != v[j].gen || !(o->flags & OBJF_SPILLING) || o->mover != s->slot + 1)
                continue; /* freed meanwhile, or undone by a rebuild */
            o->flags &= ~OBJF_SPILLING;
            o->mover = 0;
            if (e == 0 && o->state == OBJ_SEALED && o->refs == 0 && o->block < s->lay.max_blocks &&
                blk_at(s, o->block)->state == BLOCK_USED && blk_at(s, o->block)->obj == v[j].obj) {
                object_drop_block(s, o);
                count_state(s->hdr, OBJ_SEALED, -1);
                o->state = OBJ_SPILLED;
                count_state(s->hdr, OBJ_SPILLED, +1);
                s->hdr->spilled_bytes += o->alloc;
                s->hdr->spill_writes++;
                s->hdr->spill_written_bytes += o->alloc;
                if (written)
                    *written += o->alloc;
                freed = 1;
            } else if (o->state == OBJ_DELETING && o->refs == 0) {
                /* deleted while it was written */
                spill_file_release(s, file, v[j].spill_off, v[j].alloc);
                object_free(s, v[j].obj);
                freed = 1;
            } else {
                /* read meanwhile, or not written */
                spill_file_release(s, file, v[j].spill_off, v[j].alloc);
            }
        }
        if (e)
            s->hdr->spill_failures++;
        if (sf->writer == s->slot + 1) { /* the writer's own count, unless a rebuild took it */
            sf->writer = 0;
            spill_file_release(s, file, 0, 0);
        }
        store_unlock(s);
    }
    if (freed)
        wake_space(s);
    free(v);
    free(pieces);
    if (e)
        return reel__fail(e, "cannot spill %llu bytes to %s: %s", (unsigned long long)(off - start),
                          path, reel_strerror(e));
    return rc ? rc : freed;
}

REEL_API int reel_store_spill(reel_store *s, uint64_t bytes, uint64_t *spilled) {
    REEL_NEED(s, "store");
    if (!s)
        return -EINVAL;
    int rc = need_client(s);
    if (rc)
        return rc;
    if (!spill_enabled(s))
        return reel__fail(-ENOTSUP, "this store does not spill (REEL_STORE_NO_SPILL)");
    uint64_t written = 0;
    rc = spill_pass(s, bytes ? bytes : UINT64_MAX, &written);
    if (rc < 0)
        return rc;
    if (spilled)
        *spilled = written;
    return 0;
}

/* Reads a spilled object back into a new block. Returns 0 when the caller
 * should look again (restored, or being restored by another client), or a
 * negative code. Caller does not hold the lock. */
static int restore(reel_store *s, uint32_t obj, uint32_t gen) {
    int rc = store_lock(s);
    if (rc)
        return rc;
    seg_object *o = obj_at(s, obj);
    if (o->gen != gen || o->state != OBJ_SPILLED || (o->flags & OBJF_RESTORING)) {
        store_unlock(s);
        return 0;
    }
    uint64_t alloc = o->alloc;
    uint32_t b = alloc_evicting(s, alloc);
    if (b == SEG_NIL) {
        store_unlock(s);
        rc = spill_pass(s, alloc, NULL); /* make room by spilling others */
        if (rc > 0)
            return 0;
        return rc < 0 ? rc : fail_full(s, o->size, o->meta_size, NULL);
    }
    o->block = b;
    o->offset = blk_at(s, b)->offset;
    blk_at(s, b)->obj = obj;
    o->flags |= OBJF_RESTORING;
    o->mover = s->slot + 1;
    uint32_t file = o->spill_file;
    uint64_t spill_off = o->spill_off;
    char path[SEG_SPILL_DIR_MAX + 64];
    reel__spill_file_path(s, file, file < SEG_SPILL_FILES ? s->spill_files[file].gen : 0, path,
                          sizeof path);
    uint8_t *dst = s->arena + o->offset;
    reel_id id = o->id;
    store_unlock(s);

    /* Open for writing too: the bytes read back are punched out of the
     * file with the same descriptor, after the lock (spill_file_release). */
    int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    int e = fd < 0 ? -errno : reel__read_range(fd, dst, spill_off, alloc);

    int freed = 0, punch = 0;
    if ((rc = store_lock(s)) != 0) {
        if (fd >= 0)
            close(fd);
        return rc;
    }
    o = obj_at(s, obj);
    if (o->gen == gen && (o->flags & OBJF_RESTORING) && o->mover == s->slot + 1) {
        o->flags &= ~OBJF_RESTORING;
        o->mover = 0;
        int deleted = (o->flags & OBJF_DELETE_PENDING) != 0;
        o->flags &= ~OBJF_DELETE_PENDING;
        if (e == 0) {
            count_state(s->hdr, OBJ_SPILLED, -1);
            o->state = OBJ_SEALED;
            count_state(s->hdr, OBJ_SEALED, +1);
            s->hdr->spilled_bytes -= o->alloc;
            s->hdr->restores++;
            s->hdr->restored_bytes += o->alloc;
            o->last_use = ++s->hdr->tick;
            spill_file_release(s, file, 0, 0);
            punch = file < SEG_SPILL_FILES && s->spill_files[file].live > 0; /* else unlinked */
        } else {
            object_drop_block(s, o); /* stays spilled, on disk or not */
            freed = 1;
        }
        if (deleted) {
            object_free(s, obj);
            freed = 1;
        }
    }
    store_unlock(s);
    reel__wake(&s->hdr->seal_seq, &s->hdr->seal_sleepers); /* others waiting for it */
    if (freed)
        wake_space(s);
    if (punch)
        spill_punch(fd, spill_off, alloc);
    if (fd >= 0)
        close(fd);
    if (e) {
        char hex[REEL_ID_HEX_LEN + 1];
        reel_id_to_hex(&id, hex);
        return reel__fail(REEL_ESPILLLOST, "spilled object %s: %s: %s", hex, path,
                          reel_strerror(e));
    }
    return 0;
}

REEL_API int reel_obj_create(reel_store *s, const reel_id *id, uint64_t size, const void *meta,
                             uint32_t meta_size, uint32_t flags, int timeout_ms, void **buf) {
    REEL_NEED(s, "store");
    REEL_NEED(id, "id");
    REEL_NEED(meta || meta_size == 0, "meta");
    REEL_NEED(buf, "buf");
    reel__clear_error();
    int rc = need_client(s);
    if (rc)
        return rc;
    if (meta_size > REEL_META_MAX || (flags & ~REEL_OBJ_EVICTABLE))
        return -EINVAL;
    if (size > s->lay.capacity || obj_alloc_size(size, meta_size) > s->lay.capacity)
        return reel__fail(REEL_ETOOBIG, "object of %llu bytes exceeds the store's capacity of %llu",
                          (unsigned long long)size, (unsigned long long)s->lay.capacity);
    uint64_t want = obj_alloc_size(size, meta_size);
    uint64_t hash = reel__id_hash(id);
    uint64_t deadline = 0; /* computed when a wait starts: the fast path reads no clock */
    uint64_t create_ns = reel__now_ns(CLOCK_REALTIME_COARSE);
    char spill_error[300] = "";
    seg_header *h = s->hdr;
    for (;;) {
        if ((rc = store_lock(s)) != 0)
            return rc;
        if (index_find(s, id, hash) != SEG_NIL) {
            store_unlock(s);
            return REEL_EEXISTS;
        }
        uint32_t owner = (uint32_t)(s->owner_token >> 32), epoch = (uint32_t)s->owner_token;
        if (owner && !owner_attached(s, owner, epoch)) {
            store_unlock(s);
            return reel__fail(REEL_EOWNERGONE, "the client that would own new objects is gone");
        }
        uint32_t obj = h->object_free_head;
        if (obj != SEG_NIL && (obj >= s->lay.max_objects || obj_at(s, obj)->state != OBJ_FREE)) {
            s->corrupt = 1; /* the free list names a live object: rebuilt by the unlock */
            store_unlock(s);
            continue;
        }
        if (obj == SEG_NIL) {
            store_unlock(s);
            return reel__fail(REEL_ETOOMANYOBJECTS, "all %u object slots are in use",
                              s->lay.max_objects);
        }
        uint32_t b = alloc_evicting(s, want);
        if (s->corrupt) { /* rebuilt by the unlock: try again */
            store_unlock(s);
            continue;
        }
        if (b != SEG_NIL) {
            seg_object *o = &(*obj_at(s, obj));
            h->object_free_head = o->lru_next;
            o->id = *id;
            o->hash = hash;
            o->offset = (*blk_at(s, b)).offset;
            o->size = size;
            o->alloc = (*blk_at(s, b)).size;
            o->meta_size = meta_size;
            o->flags = flags;
            o->refs = 0;
            o->creator = s->slot;
            o->creator_pid = (*client_at(s, s->slot)).pid;
            o->owner = owner;
            o->owner_epoch = epoch;
            if (owner) {
                h->n_owned++;
                (*client_at(s, owner - 1)).owns = 1;
            }
            o->gen++;
            o->block = b;
            o->lru_prev = o->lru_next = SEG_NIL;
            o->create_ns = create_ns;
            o->last_use = ++h->tick;
            (*blk_at(s, b)).obj = obj;
            o->state = OBJ_UNSEALED;
            h->n_unsealed++;
            (*client_at(s, s->slot)).unsealed++;
            index_insert(s, obj, hash);
            /* Past the high-water mark: spill down to 10 points below it. */
            uint64_t high = s->lay.capacity / 1000 * h->high_water;
            uint64_t low = s->lay.capacity / 1000 * (h->high_water > 100 ? h->high_water - 100 : 0);
            uint64_t excess = h->used > high ? h->used - low : 0;
            store_unlock(s);
            uint8_t *data = s->arena + o->offset;
            if (meta_size)
                memcpy(data + align_up(size), meta, meta_size);
            *buf = data;
            /* A pass that found nothing to spill scans the whole object table:
             * not again for a while. A failure leaves objects in memory. */
            uint64_t now = excess ? reel__now_ns(CLOCK_MONOTONIC) : 0;
            if (excess && spill_enabled(s) && now - s->last_idle_spill_ns >= IDLE_SPILL_NS &&
                spill_pass(s, excess, NULL) == 0)
                s->last_idle_spill_ns = now;
            return 0;
        }
        /* No room: dead clients may hold some; else wait for a free. */
        uint64_t now = reel__now_ns(CLOCK_MONOTONIC);
        if (now - s->last_liveness_ns >= LIVENESS_INTERVAL_NS) {
            s->last_liveness_ns = now;
            if (reclaim_dead(s) > 0) {
                store_unlock(s);
                continue;
            }
        }
        uint32_t seen = atomic_load_explicit(&h->space_seq, memory_order_acquire);
        store_unlock(s);
        if (spill_enabled(s)) {
            int sp = spill_pass(s, want, NULL);
            if (sp > 0)
                continue;
            if (sp < 0)
                snprintf(spill_error, sizeof spill_error, "; spilling failed: %s",
                         reel_last_error());
        }
        if (timeout_ms > 0 && deadline == 0)
            deadline = now + (uint64_t)timeout_ms * 1000000ull;
        if (timeout_ms == 0 || (deadline && now >= deadline))
            return fail_full(s, size, meta_size, spill_error);
        uint64_t until = now + LIVENESS_INTERVAL_NS;
        if (deadline && deadline < until)
            until = deadline;
        reel__wait_change(&h->space_seq, &h->space_sleepers, seen, s->spin_ns, until);
    }
}

/* Looks up obj by id for an operation of its creator. Caller holds the lock. */
static int owned_unsealed(reel_store *s, const reel_id *id, uint32_t *obj) {
    uint32_t i = index_find(s, id, reel__id_hash(id));
    if (i == SEG_NIL)
        return REEL_ENOTFOUND;
    seg_object *o = &(*obj_at(s, i));
    if (o->state != OBJ_UNSEALED)
        return REEL_ESEALED;
    if (o->creator != s->slot)
        return REEL_ENOTOWNER;
    *obj = i;
    return 0;
}

REEL_API int reel_obj_seal(reel_store *s, const reel_id *id) {
    REEL_NEED(s, "store");
    REEL_NEED(id, "id");
    int rc = need_client(s);
    if (rc || (rc = store_lock(s)) != 0)
        return rc;
    uint32_t obj;
    rc = owned_unsealed(s, id, &obj);
    seg_object *o = rc == 0 ? obj_at(s, obj) : NULL;
    if (o && o->owner && !owner_attached(s, o->owner, o->owner_epoch)) {
        object_free(s, obj); /* nobody could ever name it */
        store_unlock(s);
        wake_space(s);
        return reel__fail(REEL_EOWNERGONE, "the client owning the object is gone: freed");
    }
    if (rc == 0) {
        o->state = OBJ_SEALED;
        o->last_use = ++s->hdr->tick;
        s->hdr->n_unsealed--;
        s->hdr->n_sealed++;
        (*client_at(s, s->slot)).unsealed--;
        if (in_lru(o))
            lru_push(s, obj);
        /* Bumped under the lock: a sealer that dies before its wake-up still
         * leaves a changed word, which sleepers re-check at least every
         * WAIT_SLICE_NS. */
        atomic_fetch_add_explicit(&s->hdr->seal_seq, 1, memory_order_seq_cst);
    }
    store_unlock(s);
    if (rc == 0)
        reel__wake_sleepers(&s->hdr->seal_seq, &s->hdr->seal_sleepers);
    return rc;
}

REEL_API int reel_obj_abort(reel_store *s, const reel_id *id) {
    REEL_NEED(s, "store");
    REEL_NEED(id, "id");
    int rc = need_client(s);
    if (rc || (rc = store_lock(s)) != 0)
        return rc;
    uint32_t obj;
    rc = owned_unsealed(s, id, &obj);
    if (rc == 0)
        object_free(s, obj);
    store_unlock(s);
    if (rc == 0)
        wake_space(s);
    return rc;
}

REEL_API int reel_obj_get(reel_store *s, const reel_id *ids, size_t n, int timeout_ms,
                          reel_view *views) {
    REEL_NEED(s, "store");
    REEL_NEED(ids, "ids");
    REEL_NEED(views, "views");
    int rc = need_client(s);
    if (rc)
        return rc;
    /* Bounded before ids is read: a count past the caller's array would
     * otherwise be read until the reference table refused. */
    if (n == 0 || n > s->lay.max_refs)
        return reel__fail(-EINVAL, "reel_obj_get: n is %zu, not 1 to %u (what one client may hold)",
                          n, s->lay.max_refs);
    uint64_t deadline = timeout_ms > 0 ? deadline_from(timeout_ms) : 0;
    uint32_t restores = 0;
    seg_header *h = s->hdr;
    for (;;) {
        if ((rc = store_lock(s)) != 0)
            return rc;
        size_t got = 0;
        uint32_t spilled = SEG_NIL, spilled_gen = 0;
        int restoring = 0; /* waiting for another client's restore */
        for (; got < n; got++) {
            uint32_t i = index_find(s, &ids[got], reel__id_hash(&ids[got]));
            if (i != SEG_NIL && obj_at(s, i)->state == OBJ_SPILLED &&
                !(obj_at(s, i)->flags & OBJF_RESTORING)) {
                spilled = i; /* on disk: read it back, then look again */
                spilled_gen = obj_at(s, i)->gen;
            } else if (i != SEG_NIL && obj_at(s, i)->state == OBJ_SPILLED) {
                restoring = 1;
            }
            if (i == SEG_NIL || (*obj_at(s, i)).state != OBJ_SEALED)
                break;
            seg_object *o = &(*obj_at(s, i));
            if (!object_extent_ok(s, o)) {
                rc = reel__fail(REEL_ECORRUPT, "object extent outside the arena");
                break;
            }
            if ((rc = ref_add(s, s->slot, i)) != 0)
                break;
            o->last_use = ++h->tick;
            const uint8_t *data = s->arena + o->offset;
            views[got] = (reel_view){.id = o->id,
                                     .data = data,
                                     .size = o->size,
                                     .meta = data + align_up(o->size),
                                     .meta_size = o->meta_size};
        }
        if (got == n) {
            store_unlock(s);
            return 0;
        }
        /* All or nothing: give back what this attempt took. */
        int freed = 0;
        for (size_t k = 0; k < got; k++) {
            uint32_t i = index_find(s, &ids[k], reel__id_hash(&ids[k]));
            freed |= ref_drop(s, s->slot, ref_find(s, s->slot, i), 1);
        }
        /* Read the sequence under the lock: a seal after this check bumps it. */
        uint32_t seen = atomic_load_explicit(&h->seal_seq, memory_order_acquire);
        store_unlock(s);
        if (freed)
            wake_space(s);
        if (rc)
            return rc;
        if (spilled != SEG_NIL) {
            rc = restore(s, spilled, spilled_gen);
            if (rc == REEL_EFULL && timeout_ms != 0 &&
                (!deadline || reel__now_ns(CLOCK_MONOTONIC) < deadline)) {
                /* No room to read it back yet: like a create, wait for a free
                 * (re-checking every slice), then try again. */
                uint32_t seen_space = atomic_load_explicit(&h->space_seq, memory_order_acquire);
                uint64_t until = reel__now_ns(CLOCK_MONOTONIC) + WAIT_SLICE_NS;
                if (deadline && deadline < until)
                    until = deadline;
                reel__wait_change(&h->space_seq, &h->space_sleepers, seen_space, s->spin_ns, until);
                continue;
            }
            if (rc != 0)
                return rc;
            /* Objects that cannot all be in memory at once would push each
             * other out for ever: bounded. */
            if (++restores > 4 * n + 4)
                return reel__fail(REEL_EFULL,
                                  "the %zu objects asked for do not fit in memory "
                                  "at once",
                                  n);
            if (deadline && reel__now_ns(CLOCK_MONOTONIC) >= deadline)
                return -ETIMEDOUT;
            continue;
        }
        if (restoring) /* its restorer may have died: that is undone by a reclaim */
            reel_store_reclaim(s, NULL);
        if (timeout_ms == 0)
            return -ETIMEDOUT;
        uint64_t now = reel__now_ns(CLOCK_MONOTONIC);
        if (deadline && now >= deadline)
            return -ETIMEDOUT;
        uint64_t until = now + WAIT_SLICE_NS;
        if (deadline && deadline < until)
            until = deadline;
        reel__wait_change(&h->seal_seq, &h->seal_sleepers, seen, s->spin_ns, until);
    }
}

REEL_API int reel_obj_release(reel_store *s, const reel_id *id) {
    REEL_NEED(s, "store");
    REEL_NEED(id, "id");
    int rc = need_client(s);
    if (rc || (rc = store_lock(s)) != 0)
        return rc;
    uint32_t i = index_find(s, id, reel__id_hash(id));
    seg_ref *r = i == SEG_NIL ? NULL : ref_find(s, s->slot, i);
    int freed = 0;
    if (!r)
        rc = REEL_ENOTREF;
    else
        freed = ref_drop(s, s->slot, r, 1);
    store_unlock(s);
    if (freed)
        wake_space(s);
    return rc;
}

REEL_API int reel_obj_delete(reel_store *s, const reel_id *id) {
    REEL_NEED(s, "store");
    REEL_NEED(id, "id");
    int rc = need_client(s);
    if (rc || (rc = store_lock(s)) != 0)
        return rc;
    uint32_t i = index_find(s, id, reel__id_hash(id));
    int freed = 0;
    rc = i == SEG_NIL ? REEL_ENOTFOUND : object_delete(s, i, &freed);
    store_unlock(s);
    if (freed)
        wake_space(s);
    return rc;
}

REEL_API int reel_obj_disown(reel_store *s, const reel_id *ids, size_t n) {
    REEL_NEED(s, "store");
    REEL_NEED(ids || n == 0, "ids");
    int rc = need_client(s);
    if (rc || (rc = store_lock(s)) != 0)
        return rc;
    for (size_t k = 0; k < n; k++) {
        uint32_t i = index_find(s, &ids[k], reel__id_hash(&ids[k]));
        if (i != SEG_NIL)
            object_disown(s, obj_at(s, i));
    }
    store_unlock(s);
    return 0;
}

REEL_API int reel_obj_contains(reel_store *s, const reel_id *id, int *present) {
    REEL_NEED(s, "store");
    REEL_NEED(id, "id");
    REEL_NEED(present, "present");
    int rc = store_lock(s);
    if (rc)
        return rc;
    uint32_t i = index_find(s, id, reel__id_hash(id));
    *present =
        i != SEG_NIL &&
        (obj_at(s, i)->state == OBJ_SEALED ||
         (obj_at(s, i)->state == OBJ_SPILLED && !(obj_at(s, i)->flags & OBJF_DELETE_PENDING)));
    store_unlock(s);
    return 0;
}

/* ---- Copying a put's bytes ------------------------------------------------ */

/* One core's memcpy is bound by what one core can move (about 10 GB/s here,
 * against 14-17 GB/s for two): a large put copies in chunks on up to
 * REEL_PUT_MAX_THREADS threads, one per CPU the process may run on, its own
 * included, as Ray's put does. The threads are joined before the put returns,
 * so a process that had none has none again: the runtime forks its zygote
 * only from a process without threads. */
#define COPY_ALIGN 4096u

typedef struct copy_chunk {
    void *dst;
    const void *src;
    size_t n;
} copy_chunk;

static void *copy_chunk_run(void *arg) {
    copy_chunk *c = arg;
    memcpy(c->dst, c->src, c->n);
    return NULL;
}

static void copy_bytes(void *dst, const void *src, size_t n) {
    cpu_set_t set;
    size_t threads = 1;
    if (n >= REEL_PUT_THREADS_MIN_SIZE && sched_getaffinity(0, sizeof set, &set) == 0)
        threads = (size_t)CPU_COUNT(&set);
    threads = threads > REEL_PUT_MAX_THREADS ? REEL_PUT_MAX_THREADS : threads;
    if (threads < 2) {
        memcpy(dst, src, n);
        return;
    }
    size_t per = (n / threads + COPY_ALIGN - 1) / COPY_ALIGN * COPY_ALIGN;
    copy_chunk chunk[REEL_PUT_MAX_THREADS];
    pthread_t tid[REEL_PUT_MAX_THREADS];
    bool started[REEL_PUT_MAX_THREADS] = {false};
    for (size_t k = 1; k < threads; k++) {
        size_t off = k * per < n ? k * per : n;
        size_t end = (k + 1) * per < n && k + 1 < threads ? (k + 1) * per : n;
        chunk[k] = (copy_chunk){(char *)dst + off, (const char *)src + off, end - off};
        started[k] = pthread_create(&tid[k], NULL, copy_chunk_run, &chunk[k]) == 0;
    }
    memcpy(dst, src, per < n ? per : n);
    for (size_t k = 1; k < threads; k++) {
        if (started[k])
            pthread_join(tid[k], NULL);
        else /* no thread to spare: this one copies that chunk too */
            copy_chunk_run(&chunk[k]);
    }
}

REEL_API int reel_obj_put(reel_store *s, reel_id *id, const void *data, uint64_t size,
                          const void *meta, uint32_t meta_size, uint32_t flags, int timeout_ms) {
    REEL_NEED(s, "store");
    REEL_NEED(id, "id");
    REEL_NEED(data || size == 0, "data");
    REEL_NEED(meta || meta_size == 0, "meta");
    if (flags & REEL_OBJ_CONTENT_ID) {
        reel_id_from_content(data, size, id);
        int present = 0;
        int rc = reel_obj_contains(s, id, &present);
        if (rc || present)
            return rc;
    }
    void *buf;
    int rc = reel_obj_create(s, id, size, meta, meta_size, flags & ~REEL_OBJ_CONTENT_ID, timeout_ms,
                             &buf);
    if (rc == REEL_EEXISTS && (flags & REEL_OBJ_CONTENT_ID) && timeout_ms != 0) {
        /* Another client is writing the same bytes: done once it seals them. */
        reel_view v;
        rc = reel_obj_get(s, id, 1, timeout_ms, &v);
        if (rc == 0)
            rc = reel_obj_release(s, id);
        return rc == -ETIMEDOUT ? REEL_EEXISTS : rc;
    }
    if (rc)
        return rc;
    if (size)
        copy_bytes(buf, data, size);
    return reel_obj_seal(s, id);
}
