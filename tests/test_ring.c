/* The shared MPMC ring (actors/ring.h): sizes, validation of a ring another
 * process wrote, FIFO order, full/empty/timeout/close results, depth, and
 * producers and consumers in several processes and threads. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include <criterion/criterion.h>
#include <xxhash.h>

#include "helpers.h"
#include "ring.h"

TestSuite(ring, .init = th_init, .fini = th_fini, .timeout = 60);

/* ---- helpers -------------------------------------------------------------------------------- */

/* A MAP_SHARED anonymous mapping: shared with children forked after it. */
static void *shared_alloc(size_t bytes) {
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(p, MAP_FAILED, "mmap %zu: %s", bytes, strerror(errno));
    return p;
}

static void shared_free(void *p, size_t bytes) {
    cr_assert_eq(munmap(p, bytes), 0);
}

/* Private 64-byte aligned memory (aligned_alloc wants a multiple of 64). */
static uint8_t *aligned_mem(size_t bytes) {
    uint8_t *p = aligned_alloc(64, (bytes + 63) / 64 * 64);
    cr_assert_not_null(p);
    return p;
}

static reel_ring *ring_new(uint32_t capacity, uint32_t record_size, size_t *bytes) {
    *bytes = reel__ring_bytes(capacity, record_size);
    cr_assert_gt(*bytes, 0u);
    void *mem = shared_alloc(*bytes);
    TH_OK(reel__ring_init(mem, *bytes, capacity, record_size));
    TH_OK(reel__ring_check(mem, *bytes));
    return mem;
}

static uint64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Waits until someone has announced itself on a sleeper count (a waiter
 * past its spin phase). 1 if so within 5 s. */
static int wait_for_sleeper(_Atomic uint32_t *sleepers) {
    for (int i = 0; i < 5000; i++) {
        if (atomic_load(sleepers) != 0)
            return 1;
        th_sleep_ms(1);
    }
    return 0;
}

/* A record for the ordering and stress tests: who, which, a payload and a
 * checksum over the rest. 56 bytes. */
typedef struct rec {
    uint32_t producer;
    uint32_t pad;
    uint64_t seq;
    uint64_t payload[4];
    uint64_t check;
} rec;

static rec rec_make(uint32_t producer, uint64_t seq) {
    rec r = {.producer = producer, .seq = seq};
    uint64_t st = ((uint64_t)producer << 40) ^ seq;
    for (int i = 0; i < 4; i++)
        r.payload[i] = th_rand64(&st);
    r.check = XXH64(&r, offsetof(rec, check), 0x5eed);
    return r;
}

static int rec_ok(const rec *r) {
    return r->check == XXH64(r, offsetof(rec, check), 0x5eed);
}

/* ---- sizes and validation ------------------------------------------------------------------ */

Test(ring, sizes) {
    const size_t hdr = sizeof(reel_ring);
    cr_assert_eq(hdr % 64, 0u);
    cr_assert_eq(reel__ring_bytes(2, 8), hdr + 2 * 16);
    cr_assert_eq(reel__ring_bytes(1024, 64), hdr + 1024 * 72);
    cr_assert_eq(reel__ring_bytes(1u << 20, 4096), hdr + (size_t)(1u << 20) * 4104);
    cr_assert_eq(reel__ring_bytes(4, 4096), hdr + 4 * 4104);

    uint32_t bad_caps[] = {0, 1, 3, 6, 1000, (1u << 20) + 1, 1u << 21, UINT32_MAX, 1u << 31};
    for (size_t i = 0; i < sizeof bad_caps / sizeof bad_caps[0]; i++)
        cr_assert_eq(reel__ring_bytes(bad_caps[i], 64), 0u, "capacity %u", bad_caps[i]);
    uint32_t bad_recs[] = {0, 4, 7, 12, 4100, 4104, 8192, UINT32_MAX};
    for (size_t i = 0; i < sizeof bad_recs / sizeof bad_recs[0]; i++)
        cr_assert_eq(reel__ring_bytes(16, bad_recs[i]), 0u, "record size %u", bad_recs[i]);
}

Test(ring, init_and_check) {
    size_t bytes = reel__ring_bytes(16, 24);
    uint8_t *mem = aligned_mem(bytes + 128);

    /* Bad arguments leave nothing behind that passes a check. */
    memset(mem, 0, bytes + 128);
    TH_RC(reel__ring_init(mem, bytes, 12, 24), -EINVAL);
    TH_RC(reel__ring_init(mem, bytes, 16, 20), -EINVAL);
    TH_RC(reel__ring_init(mem, bytes - 1, 16, 24), -EINVAL);
    TH_RC(reel__ring_init(mem + 8, bytes, 16, 24), -EINVAL);
    TH_RC(reel__ring_init(NULL, bytes, 16, 24), -EINVAL);
    TH_RC(reel__ring_check(mem, bytes), REEL_ECORRUPT);

    TH_OK(reel__ring_init(mem, bytes, 16, 24));
    TH_OK(reel__ring_check(mem, bytes));
    TH_OK(reel__ring_check(mem, bytes + 128)); /* a larger mapping is fine */
    reel_ring *r = (reel_ring *)mem;
    cr_assert_eq(reel__ring_capacity(r), 16u);
    cr_assert_eq(reel__ring_record_size(r), 24u);
    cr_assert_eq(reel__ring_depth(r), 0u);

    TH_RC(reel__ring_check(mem, bytes - 1), REEL_ECORRUPT);
    TH_RC(reel__ring_check(mem, sizeof(reel_ring) - 1), REEL_ECORRUPT);
    TH_RC(reel__ring_check(mem, 0), REEL_ECORRUPT);
    TH_RC(reel__ring_check(NULL, bytes), -EINVAL);
    TH_RC(reel__ring_check(mem + 8, bytes), -EINVAL);

    /* The largest record size at the smallest capacity. */
    size_t big = reel__ring_bytes(2, 4096);
    uint8_t *mem2 = aligned_mem(big);
    TH_OK(reel__ring_init(mem2, big, 2, 4096));
    TH_OK(reel__ring_check(mem2, big));
    free(mem2);
    free(mem);
}

/* Each corruption of a valid header must be caught by reel__ring_check. */
Test(ring, check_rejects_corrupt_headers) {
    const uint32_t cap = 64, rs = 64;
    size_t bytes = reel__ring_bytes(cap, rs);
    uint8_t *good = aligned_mem(bytes);
    uint8_t *mem = aligned_mem(bytes);
    TH_OK(reel__ring_init(good, bytes, cap, rs));
    reel_ring *r = (reel_ring *)mem;

#define CORRUPT(what, stmt)                                                                        \
    do {                                                                                           \
        memcpy(mem, good, bytes);                                                                  \
        stmt;                                                                                      \
        int rc_ = reel__ring_check(mem, bytes);                                                    \
        cr_assert_eq(rc_, REEL_ECORRUPT, "%s: check returned %d", what, rc_);                      \
    } while (0)

    CORRUPT("bad magic", r->magic[0] ^= 1);
    CORRUPT("zero magic", memset(r->magic, 0, sizeof r->magic));
    CORRUPT("version", r->version = RING_FORMAT_VERSION + 1);
    CORRUPT("header size", r->header_size = 64);
    CORRUPT("capacity not a power of two", r->capacity = 48);
    CORRUPT("capacity 0", r->capacity = 0);
    CORRUPT("capacity 1", r->capacity = 1);
    CORRUPT("capacity beyond the maximum", r->capacity = RING_MAX_CAPACITY * 2);
    CORRUPT("capacity larger than the mapping", {
        r->capacity = cap * 2;
        r->total_bytes = reel__ring_bytes(cap * 2, rs);
    });
    CORRUPT("record size not a multiple of 8", r->record_size = 60);
    CORRUPT("record size 0", r->record_size = 0);
    CORRUPT("record size too large for mem_size", {
        r->record_size = 4096;
        r->cell_size = 4104;
        r->total_bytes = reel__ring_bytes(cap, 4096);
    });
    CORRUPT("record size beyond the maximum", {
        r->record_size = 8192;
        r->cell_size = 8200;
    });
    CORRUPT("cell size", r->cell_size = 64);
    CORRUPT("total bytes", r->total_bytes = bytes + 8);
    CORRUPT("closed flag", atomic_store(&r->closed, 7));
#undef CORRUPT

    /* Random headers: rejected, never a crash. */
    for (uint64_t seed = 1; seed <= 2000; seed++) {
        memcpy(mem, good, bytes);
        th_fill(mem + 8, sizeof(reel_ring) - 8, seed); /* keep the magic: test the rest */
        int rc = reel__ring_check(mem, bytes);
        cr_assert_eq(rc, REEL_ECORRUPT, "seed %llu: check returned %d", (unsigned long long)seed,
                     rc);
    }
    free(good);
    free(mem);
}

/* Headers with random but plausible sizes: whatever passes the check stays
 * inside the mapping when used (ASan builds catch any access beyond it). */
Test(ring, check_accepts_only_rings_that_fit) {
    const uint32_t cap = 64, rs = 64;
    size_t bytes = reel__ring_bytes(cap, rs);
    cr_assert_eq(bytes % 64, 0u); /* aligned_mem() adds no slack */
    uint8_t *good = aligned_mem(bytes);
    uint8_t *mem = aligned_mem(bytes);
    TH_OK(reel__ring_init(good, bytes, cap, rs));
    static const uint32_t caps[] = {0, 1, 2, 3, 16, 32, 63, 64, 65, 128, 1u << 20, 1u << 31};
    static const uint32_t recs[] = {0, 8, 56, 60, 64, 72, 128, 4096, 4104, UINT32_MAX - 7};
    uint64_t st = 7;
    int accepted = 0;
    for (int i = 0; i < 4000; i++) {
        memcpy(mem, good, bytes);
        reel_ring *r = (reel_ring *)mem;
        r->capacity = caps[th_rand64(&st) % (sizeof caps / sizeof caps[0])];
        r->record_size = recs[th_rand64(&st) % (sizeof recs / sizeof recs[0])];
        uint64_t pick = th_rand64(&st);
        r->cell_size = pick & 1 ? 8u + r->record_size : recs[pick % 10];
        r->total_bytes = pick & 2 ? reel__ring_bytes(r->capacity, r->record_size)
                                  : (uint64_t)th_rand64(&st) % (2 * bytes);
        if (reel__ring_check(mem, bytes) != 0)
            continue;
        accepted++;
        cr_assert_leq(reel__ring_bytes(r->capacity, r->record_size), bytes);
        uint8_t buf[4096] = {1};
        for (uint32_t k = 0; k <= r->capacity; k++)
            (void)reel__ring_push(r, buf, 0, 0);
        while (reel__ring_pop(r, buf, 0, 0) == 0)
            ;
    }
    cr_assert_gt(accepted, 0); /* the valid combinations were drawn, and passed */
    free(good);
    free(mem);
}

/* ---- single-threaded behaviour -------------------------------------------------------------- */

Test(ring, fifo_full_empty_depth) {
    size_t bytes;
    reel_ring *r = ring_new(8, sizeof(rec), &bytes);
    rec out;

    TH_RC(reel__ring_pop(r, &out, 0, 0), -EAGAIN);
    TH_RC(reel__ring_pop(r, &out, 1000000, 0), -EAGAIN); /* timeout 0: no spin either */
    for (uint64_t i = 0; i < 8; i++) {
        cr_assert_eq(reel__ring_depth(r), (uint32_t)i);
        rec in = rec_make(1, i);
        TH_OK(reel__ring_push(r, &in, 0, 0));
    }
    cr_assert_eq(reel__ring_depth(r), 8u);
    rec extra = rec_make(1, 99);
    TH_RC(reel__ring_push(r, &extra, 0, 0), -EAGAIN);
    cr_assert_eq(reel__ring_depth(r), 8u);
    for (uint64_t i = 0; i < 8; i++) {
        TH_OK(reel__ring_pop(r, &out, 0, 0));
        cr_assert(rec_ok(&out));
        cr_assert_eq(out.seq, i, "popped %llu, expected %llu", (unsigned long long)out.seq,
                     (unsigned long long)i);
        cr_assert_eq(reel__ring_depth(r), (uint32_t)(7 - i));
    }
    TH_RC(reel__ring_pop(r, &out, 0, 0), -EAGAIN);

    /* Many laps at varying fill levels: order and contents hold. */
    uint64_t next_in = 0, next_out = 0, st = 42;
    for (int round = 0; round < 2000; round++) {
        uint64_t n = th_rand64(&st) % 9;
        for (uint64_t k = 0; k < n; k++) {
            rec in = rec_make(2, next_in);
            int rc = reel__ring_push(r, &in, 0, 0);
            if (next_in - next_out == 8) {
                TH_RC(rc, -EAGAIN);
                break;
            }
            TH_OK(rc);
            next_in++;
        }
        cr_assert_eq(reel__ring_depth(r), (uint32_t)(next_in - next_out));
        uint64_t m = th_rand64(&st) % 9;
        for (uint64_t k = 0; k < m; k++) {
            int rc = reel__ring_pop(r, &out, 0, 0);
            if (next_in == next_out) {
                TH_RC(rc, -EAGAIN);
                break;
            }
            TH_OK(rc);
            cr_assert(rec_ok(&out));
            cr_assert_eq(out.producer, 2u);
            cr_assert_eq(out.seq, next_out);
            next_out++;
        }
    }
    cr_assert_gt(next_out, 1000u);

    /* No waiter ever slept, so the fast path never touched the futex words. */
    cr_assert_eq(atomic_load(&r->not_empty_seq), 0u);
    cr_assert_eq(atomic_load(&r->not_full_seq), 0u);
    cr_assert_eq(atomic_load(&r->not_empty_sleepers), 0u);
    cr_assert_eq(atomic_load(&r->not_full_sleepers), 0u);
    shared_free(r, bytes);
}

/* Positions past 2^32 (a long-lived ring): still FIFO, still full at capacity. */
Test(ring, positions_beyond_32_bits) {
    const uint32_t cap = 4;
    size_t bytes;
    reel_ring *r = ring_new(cap, 8, &bytes);
    uint64_t start = (1ull << 32) - 2 * cap; /* a multiple of cap */
    atomic_store(&r->enqueue_pos, start);
    atomic_store(&r->dequeue_pos, start);
    for (uint32_t i = 0; i < cap; i++) {
        reel_ring_cell *c = (reel_ring_cell *)((char *)r + r->header_size + i * r->cell_size);
        atomic_store(&c->seq, start + i);
    }
    uint64_t next_in = 0, next_out = 0, v;
    for (int round = 0; round < 10; round++) {
        while (reel__ring_push(r, &next_in, 0, 0) == 0)
            next_in++;
        cr_assert_eq(next_in - next_out, cap);
        cr_assert_eq(reel__ring_depth(r), cap);
        for (uint32_t k = 0; k <= (uint32_t)round % cap; k++) { /* leave 0..cap-1 behind */
            TH_OK(reel__ring_pop(r, &v, 0, 0));
            cr_assert_eq(v, next_out);
            next_out++;
        }
    }
    while (reel__ring_pop(r, &v, 0, 0) == 0) {
        cr_assert_eq(v, next_out);
        next_out++;
    }
    cr_assert_eq(next_out, next_in);
    cr_assert_eq(reel__ring_depth(r), 0u);
    cr_assert_gt(atomic_load(&r->enqueue_pos), 1ull << 32);
    shared_free(r, bytes);
}

Test(ring, timeouts) {
    size_t bytes;
    reel_ring *r = ring_new(2, 8, &bytes);
    uint64_t v = 7;

    /* Sleep only, spin then sleep, and a spin longer than the timeout. */
    uint64_t spins[] = {0, 2000000, 5000000000ull};
    for (size_t i = 0; i < sizeof spins / sizeof spins[0]; i++) {
        uint64_t t0 = mono_ms();
        TH_RC(reel__ring_pop(r, &v, spins[i], 30), -ETIMEDOUT);
        cr_assert_geq(mono_ms() - t0, 30u, "pop returned before its timeout (spin %llu)",
                      (unsigned long long)spins[i]);
    }
    TH_OK(reel__ring_push(r, &v, 0, 0));
    TH_OK(reel__ring_push(r, &v, 0, 0));
    for (size_t i = 0; i < sizeof spins / sizeof spins[0]; i++) {
        uint64_t t0 = mono_ms();
        TH_RC(reel__ring_push(r, &v, spins[i], 30), -ETIMEDOUT);
        cr_assert_geq(mono_ms() - t0, 30u, "push returned before its timeout");
    }
    cr_assert_eq(reel__ring_depth(r), 2u);
    /* Waiters that gave up left no announcement behind. */
    cr_assert_eq(atomic_load(&r->not_empty_sleepers), 0u);
    cr_assert_eq(atomic_load(&r->not_full_sleepers), 0u);
    shared_free(r, bytes);
}

Test(ring, close_semantics) {
    size_t bytes;
    reel_ring *r = ring_new(4, 8, &bytes);
    for (uint64_t i = 0; i < 3; i++)
        TH_OK(reel__ring_push(r, &i, 0, 0));
    reel__ring_close(r);
    TH_OK(reel__ring_check(r, bytes));
    uint64_t v = 99;
    TH_RC(reel__ring_push(r, &v, 0, 0), -ESHUTDOWN);
    TH_RC(reel__ring_push(r, &v, 0, -1), -ESHUTDOWN);
    cr_assert_eq(reel__ring_depth(r), 3u);
    /* Records pushed before the close still come out, in order. */
    for (uint64_t i = 0; i < 3; i++) {
        TH_OK(reel__ring_pop(r, &v, 0, -1));
        cr_assert_eq(v, i);
    }
    TH_RC(reel__ring_pop(r, &v, 0, 0), -ESHUTDOWN);
    TH_RC(reel__ring_pop(r, &v, 1000000, -1), -ESHUTDOWN);
    reel__ring_close(r); /* idempotent */
    TH_RC(reel__ring_pop(r, &v, 0, 10), -ESHUTDOWN);
    cr_assert_eq(reel__ring_depth(r), 0u);
    shared_free(r, bytes);
}

/* ---- waiting across threads and processes ------------------------------------------------- */

typedef struct waiter_arg {
    reel_ring *r;
    int push; /* 1: push, 0: pop */
    uint64_t value;
    uint64_t spin_ns;
    int rc;
} waiter_arg;

static void *waiter_thread(void *p) {
    waiter_arg *a = p;
    a->rc = a->push ? reel__ring_push(a->r, &a->value, a->spin_ns, -1)
                    : reel__ring_pop(a->r, &a->value, a->spin_ns, -1);
    return NULL;
}

Test(ring, close_wakes_sleeping_waiters) {
    size_t bytes;
    reel_ring *empty = ring_new(2, 8, &bytes);
    reel_ring *full = ring_new(2, 8, &bytes);
    uint64_t v = 1;
    TH_OK(reel__ring_push(full, &v, 0, 0));
    TH_OK(reel__ring_push(full, &v, 0, 0));

    waiter_arg pop = {.r = empty, .push = 0, .rc = 1};
    waiter_arg push = {.r = full, .push = 1, .value = 5, .spin_ns = 100000, .rc = 1};
    pthread_t tp, tq;
    cr_assert_eq(pthread_create(&tp, NULL, waiter_thread, &pop), 0);
    cr_assert_eq(pthread_create(&tq, NULL, waiter_thread, &push), 0);
    cr_assert(wait_for_sleeper(&empty->not_empty_sleepers), "the popper never slept");
    cr_assert(wait_for_sleeper(&full->not_full_sleepers), "the pusher never slept");
    reel__ring_close(empty);
    reel__ring_close(full);
    cr_assert_eq(pthread_join(tp, NULL), 0);
    cr_assert_eq(pthread_join(tq, NULL), 0);
    TH_RC(pop.rc, -ESHUTDOWN);
    TH_RC(push.rc, -ESHUTDOWN);
    /* The full ring still drains after its close. */
    TH_OK(reel__ring_pop(full, &v, 0, 0));
    TH_OK(reel__ring_pop(full, &v, 0, 0));
    TH_RC(reel__ring_pop(full, &v, 0, 0), -ESHUTDOWN);
    shared_free(empty, bytes);
    shared_free(full, bytes);
}

Test(ring, quiet_pushes_wake_once_when_asked) {
    size_t bytes;
    reel_ring *r = ring_new(4, 8, &bytes);
    waiter_arg pop = {.r = r, .push = 0, .rc = 1};
    pthread_t tp;
    cr_assert_eq(pthread_create(&tp, NULL, waiter_thread, &pop), 0);
    cr_assert(wait_for_sleeper(&r->not_empty_sleepers), "the popper never slept");
    uint32_t seq = atomic_load(&r->not_empty_seq);
    uint64_t v = 9;
    for (int i = 0; i < 4; i++)
        TH_OK(reel__ring_push_quiet(r, &v));
    TH_RC(reel__ring_push_quiet(r, &v), -EAGAIN); /* full: it never waits */
    /* No wake-up was posted for the sleeper... */
    cr_assert_eq(atomic_load(&r->not_empty_seq), seq);
    /* ...until one is asked for. */
    reel__ring_wake_consumers(r);
    cr_assert_eq(pthread_join(tp, NULL), 0);
    TH_OK(pop.rc);
    reel__ring_close(r);
    TH_RC(reel__ring_push_quiet(r, &v), -ESHUTDOWN);
    shared_free(r, bytes);
}

typedef struct sleeper_arg {
    reel_ring *r;
    th_chan ready;
} sleeper_arg;

/* Pops one record without spinning, so it sleeps until the parent pushes. */
static int child_sleeping_pop(void *p) {
    sleeper_arg *a = p;
    TH_CHILD_RC(th_chan_send(&a->ready, 'r'), 0);
    rec out;
    TH_CHILD_RC(reel__ring_pop(a->r, &out, 0, 20000), 0);
    TH_CHILD_CHECK(rec_ok(&out) && out.producer == 7 && out.seq == 1234, "wrong record");
    return 0;
}

/* Pushes into a full ring without spinning, so it sleeps until the parent pops. */
static int child_sleeping_push(void *p) {
    sleeper_arg *a = p;
    TH_CHILD_RC(th_chan_send(&a->ready, 'r'), 0);
    rec in = rec_make(8, 5678);
    TH_CHILD_RC(reel__ring_push(a->r, &in, 0, 20000), 0);
    return 0;
}

Test(ring, sleeping_consumer_woken_by_push_from_another_process) {
    size_t bytes;
    reel_ring *r = ring_new(4, sizeof(rec), &bytes);
    sleeper_arg a = {.r = r};
    th_chan_open(&a.ready);
    pid_t pid = th_fork(child_sleeping_pop, &a);
    cr_assert_eq(th_chan_recv(&a.ready, 10000), 'r');
    cr_assert(wait_for_sleeper(&r->not_empty_sleepers), "the consumer never slept");
    cr_assert(th_wait_asleep(pid, 60000), "the consumer never reached its futex wait");
    rec in = rec_make(7, 1234);
    TH_OK(reel__ring_push(r, &in, 0, 0));
    cr_assert_eq(th_wait(pid, 10000), 0, "the consumer was not woken");
    cr_assert_eq(reel__ring_depth(r), 0u);
    cr_assert_eq(atomic_load(&r->not_empty_sleepers), 0u);
    th_chan_close(&a.ready);
    shared_free(r, bytes);
}

Test(ring, sleeping_producer_woken_by_pop_from_another_process) {
    size_t bytes;
    reel_ring *r = ring_new(2, sizeof(rec), &bytes);
    rec in = rec_make(8, 0), out;
    TH_OK(reel__ring_push(r, &in, 0, 0));
    in = rec_make(8, 1);
    TH_OK(reel__ring_push(r, &in, 0, 0));
    sleeper_arg a = {.r = r};
    th_chan_open(&a.ready);
    pid_t pid = th_fork(child_sleeping_push, &a);
    cr_assert_eq(th_chan_recv(&a.ready, 10000), 'r');
    cr_assert(wait_for_sleeper(&r->not_full_sleepers), "the producer never slept");
    cr_assert(th_wait_asleep(pid, 60000), "the producer never reached its futex wait");
    TH_OK(reel__ring_pop(r, &out, 0, 0));
    cr_assert_eq(out.seq, 0u);
    cr_assert_eq(th_wait(pid, 10000), 0, "the producer was not woken");
    TH_OK(reel__ring_pop(r, &out, 0, 0));
    cr_assert_eq(out.seq, 1u);
    TH_OK(reel__ring_pop(r, &out, 0, 0));
    cr_assert(rec_ok(&out) && out.seq == 5678);
    th_chan_close(&a.ready);
    shared_free(r, bytes);
}

/* ---- MPMC stress ---------------------------------------------------------------------------- */

#define STRESS_PRODUCERS 2
#define STRESS_CONSUMERS 2
#define STRESS_PER_PROD  100000u
#define STRESS_TOTAL     (STRESS_PRODUCERS * STRESS_PER_PROD)

/* What one consumer got, in order: producer << 32 | seq. */
typedef struct consumer_log {
    uint64_t count;
    int rc; /* the pop result that ended it */
    uint32_t bad;
    uint64_t got[STRESS_TOTAL];
} consumer_log;

typedef struct stress_arg {
    reel_ring *r;
    consumer_log *log; /* consumers: their own log */
    uint32_t id;
    uint64_t spin_ns;
    int rc; /* producer threads: the push result that ended them */
} stress_arg;

static int run_producer(const stress_arg *a) {
    for (uint64_t i = 0; i < STRESS_PER_PROD; i++) {
        rec in = rec_make(a->id, i);
        int rc = reel__ring_push(a->r, &in, a->spin_ns, -1);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int run_consumer(const stress_arg *a) {
    consumer_log *log = a->log;
    rec out;
    int rc;
    while ((rc = reel__ring_pop(a->r, &out, a->spin_ns, -1)) == 0) {
        if (!rec_ok(&out) || out.producer >= STRESS_PRODUCERS || out.seq >= STRESS_PER_PROD ||
            log->count >= STRESS_TOTAL) {
            log->bad++;
            continue;
        }
        log->got[log->count++] = (uint64_t)out.producer << 32 | out.seq;
    }
    log->rc = rc;
    return 0;
}

static int child_producer(void *p) {
    int rc = run_producer(p);
    TH_CHILD_RC(rc, 0);
    return 0;
}

static int child_consumer(void *p) {
    return run_consumer(p);
}

/* Every record exactly once, uncorrupted, and each producer's records in
 * order within each consumer. */
static void verify_logs(consumer_log *logs, reel_ring *r) {
    uint8_t *seen = calloc(STRESS_TOTAL, 1);
    cr_assert_not_null(seen);
    uint64_t total = 0;
    for (int c = 0; c < STRESS_CONSUMERS; c++) {
        consumer_log *log = &logs[c];
        TH_RC(log->rc, -ESHUTDOWN);
        cr_assert_eq(log->bad, 0u, "consumer %d got %u corrupt records", c, log->bad);
        int64_t last[STRESS_PRODUCERS];
        for (int p = 0; p < STRESS_PRODUCERS; p++)
            last[p] = -1;
        for (uint64_t i = 0; i < log->count; i++) {
            uint32_t p = (uint32_t)(log->got[i] >> 32);
            uint32_t s = (uint32_t)log->got[i];
            cr_assert_gt((int64_t)s, last[p], "consumer %d: producer %u's %u after %lld", c, p, s,
                         (long long)last[p]);
            last[p] = s;
            size_t k = (size_t)p * STRESS_PER_PROD + s;
            cr_assert_eq(seen[k], 0, "record (%u, %u) delivered twice", p, s);
            seen[k] = 1;
        }
        total += log->count;
    }
    cr_assert_eq(total, STRESS_TOTAL, "delivered %llu of %u", (unsigned long long)total,
                 STRESS_TOTAL);
    cr_assert_eq(reel__ring_depth(r), 0u);
    free(seen);
}

/* Spin settings: one side of each pair sleeps at once, the other spins a while. */
static const uint64_t stress_spin[2] = {0, 50000};

Test(ring, mpmc_processes) {
    size_t bytes;
    reel_ring *r = ring_new(64, sizeof(rec), &bytes);
    size_t log_bytes = STRESS_CONSUMERS * sizeof(consumer_log);
    consumer_log *logs = shared_alloc(log_bytes);

    stress_arg cons[STRESS_CONSUMERS], prods[STRESS_PRODUCERS];
    pid_t cpid[STRESS_CONSUMERS], ppid[STRESS_PRODUCERS];
    for (uint32_t c = 0; c < STRESS_CONSUMERS; c++) {
        cons[c] = (stress_arg){.r = r, .log = &logs[c], .id = c, .spin_ns = stress_spin[c % 2]};
        cpid[c] = th_fork(child_consumer, &cons[c]);
    }
    for (uint32_t p = 0; p < STRESS_PRODUCERS; p++) {
        prods[p] = (stress_arg){.r = r, .id = p, .spin_ns = stress_spin[(p + 1) % 2]};
        ppid[p] = th_fork(child_producer, &prods[p]);
    }
    for (int p = 0; p < STRESS_PRODUCERS; p++)
        cr_assert_eq(th_wait(ppid[p], 30000), 0, "producer %d failed", p);
    reel__ring_close(r);
    for (int c = 0; c < STRESS_CONSUMERS; c++)
        cr_assert_eq(th_wait(cpid[c], 30000), 0, "consumer %d failed", c);
    verify_logs(logs, r);
    shared_free(logs, log_bytes);
    shared_free(r, bytes);
}

static _Atomic int producers_done;

static void *producer_thread(void *p) {
    stress_arg *a = p;
    a->rc = run_producer(a);
    atomic_fetch_add(&producers_done, 1);
    return NULL;
}

static void *consumer_thread(void *p) {
    run_consumer(p);
    return NULL;
}

Test(ring, mpmc_threads) {
    size_t bytes;
    reel_ring *r = ring_new(16, sizeof(rec), &bytes);
    atomic_store(&producers_done, 0);
    consumer_log *logs = calloc(STRESS_CONSUMERS, sizeof(consumer_log));
    cr_assert_not_null(logs);

    stress_arg cons[STRESS_CONSUMERS], prods[STRESS_PRODUCERS];
    pthread_t ct[STRESS_CONSUMERS], pt[STRESS_PRODUCERS];
    for (uint32_t c = 0; c < STRESS_CONSUMERS; c++) {
        cons[c] = (stress_arg){.r = r, .log = &logs[c], .id = c, .spin_ns = stress_spin[c % 2]};
        cr_assert_eq(pthread_create(&ct[c], NULL, consumer_thread, &cons[c]), 0);
    }
    for (uint32_t p = 0; p < STRESS_PRODUCERS; p++) {
        prods[p] = (stress_arg){.r = r, .id = p, .spin_ns = stress_spin[(p + 1) % 2]};
        cr_assert_eq(pthread_create(&pt[p], NULL, producer_thread, &prods[p]), 0);
    }
    /* Depth is readable at any time and never above the capacity. */
    while (atomic_load(&producers_done) < STRESS_PRODUCERS) {
        cr_assert_leq(reel__ring_depth(r), 16u);
        th_sleep_us(20);
    }
    for (int p = 0; p < STRESS_PRODUCERS; p++) {
        cr_assert_eq(pthread_join(pt[p], NULL), 0);
        TH_RC(prods[p].rc, 0);
    }
    reel__ring_close(r);
    for (int c = 0; c < STRESS_CONSUMERS; c++)
        cr_assert_eq(pthread_join(ct[c], NULL), 0);
    verify_logs(logs, r);
    free(logs);
    shared_free(r, bytes);
}
