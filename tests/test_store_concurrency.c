/* Many processes and threads on one store at once: nothing lost, nothing torn,
 * and the store is empty to the byte afterwards. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "helpers.h"

TestSuite(concurrency, .init = th_init, .fini = th_fini, .timeout = 120);

#define MiB (1024u * 1024u)
#define KiB 1024u

/* Metadata of every object here: the XXH3-128 of its data and its size. */
typedef struct {
    uint8_t hash[16];
    uint64_t size;
} obj_meta;

static uint64_t obj_seed(uint64_t producer, uint64_t i) {
    return producer << 32 | i;
}

static uint64_t obj_size(uint64_t producer, uint64_t i) {
    uint64_t st = obj_seed(producer, i) ^ 0x5bd1e995u;
    uint64_t r = th_rand64(&st);
    /* Mostly small, now and then large. */
    return r % 16 == 0 ? 1 + r % (128 * KiB) : 1 + r % (8 * KiB);
}

static reel_id obj_id(const reel_id *base, uint64_t producer, uint64_t i) {
    reel_id id;
    reel_id_derive(base, obj_seed(producer, i), &id);
    return id;
}

/* Creates object (producer, i) with its content and meta; returns 0 or the code. */
static int produce(reel_store *s, const reel_id *base, uint64_t producer, uint64_t i,
                   uint32_t flags) {
    reel_id id = obj_id(base, producer, i);
    uint64_t size = obj_size(producer, i);
    void *buf = NULL;
    /* Meta is written at create; its hash is of the data to come. */
    uint8_t *tmp = malloc(size);
    if (!tmp)
        return -ENOMEM;
    th_fill(tmp, size, obj_seed(producer, i));
    obj_meta m;
    th_hash128(tmp, size, m.hash);
    m.size = size;
    int rc = reel_obj_create(s, &id, size, &m, sizeof m, flags, 20000, &buf);
    if (rc == 0) {
        /* Written in two halves, so that a reader that sees it early sees a tear. */
        memcpy(buf, tmp, size / 2);
        memcpy((uint8_t *)buf + size / 2, tmp + size / 2, size - size / 2);
        rc = reel_obj_seal(s, &id);
    }
    free(tmp);
    return rc;
}

/* Checks a view of object (producer, i): 0 if intact, else 1 with a message. */
static int check_view(const reel_view *v, const reel_id *base, uint64_t producer, uint64_t i) {
    reel_id id = obj_id(base, producer, i);
    uint64_t size = obj_size(producer, i);
    TH_CHILD_CHECK(reel_id_equal(&v->id, &id), "view of another object");
    TH_CHILD_CHECK(v->size == size, "object (%llu,%llu): size %llu, expected %llu",
                   (unsigned long long)producer, (unsigned long long)i, (unsigned long long)v->size,
                   (unsigned long long)size);
    TH_CHILD_CHECK(v->meta_size == sizeof(obj_meta), "meta size %u", v->meta_size);
    obj_meta m;
    memcpy(&m, v->meta, sizeof m);
    uint8_t h[16];
    th_hash128(v->data, v->size, h);
    TH_CHILD_CHECK(memcmp(h, m.hash, 16) == 0 && m.size == size,
                   "object (%llu,%llu) torn: its hash does not match its meta",
                   (unsigned long long)producer, (unsigned long long)i);
    size_t bad = th_mismatch(v->data, size, obj_seed(producer, i));
    TH_CHILD_CHECK(bad == size, "object (%llu,%llu) differs at byte %zu",
                   (unsigned long long)producer, (unsigned long long)i, bad);
    TH_CHILD_CHECK(((uintptr_t)v->data & 63) == 0, "misaligned data");
    return 0;
}

/* ---- producers and consumers in separate processes -------------------------------------- */

enum { PROCS = 4, PER_PROC = 1500, WINDOW = 8 };

typedef struct {
    const char *path;
    reel_id base;
    uint64_t me;
    th_chan go;
} pc_arg;

static int child_produce_consume(void *p) {
    pc_arg *a = p;
    reel_store *s = NULL;
    TH_CHILD_RC(reel_store_open(a->path, 0, &s), 0);
    if (a->me % 2)
        reel_store_set_spin_ns(s, 0);
    TH_CHILD_CHECK(th_chan_recv(&a->go, 20000) == 'g', "no start signal");
    uint64_t from = (a->me + 1) % PROCS;
    for (uint64_t i = 0; i < PER_PROC + WINDOW; i++) {
        if (i < PER_PROC)
            TH_CHILD_RC(produce(s, &a->base, a->me, i, i % 3 == 0 ? REEL_OBJ_EVICTABLE : 0), 0);
        if (i >= WINDOW) {
            uint64_t k = i - WINDOW;
            reel_id id = obj_id(&a->base, from, k);
            reel_view v;
            TH_CHILD_RC(reel_obj_get(s, &id, 1, 30000, &v), 0);
            if (check_view(&v, &a->base, from, k))
                return 1;
            TH_CHILD_RC(reel_obj_release(s, &id), 0);
            TH_CHILD_RC(reel_obj_delete(s, &id), 0);
        }
    }
    TH_CHILD_RC(reel_store_close(s), 0);
    return 0;
}

Test(concurrency, processes_produce_and_consume) {
    const char *path;
    reel_store *s = th_store_new(16 * MiB, 4096, &path);
    reel_store_stats empty = th_stats(s);
    pc_arg a[PROCS];
    pid_t pids[PROCS];
    reel_id base = th_id_random();
    for (int k = 0; k < PROCS; k++) {
        a[k].path = path;
        a[k].base = base;
        a[k].me = (uint64_t)k;
        th_chan_open(&a[k].go);
        pids[k] = th_fork(child_produce_consume, &a[k]);
    }
    for (int k = 0; k < PROCS; k++)
        TH_OK(th_chan_send(&a[k].go, 'g'));
    for (int k = 0; k < PROCS; k++) {
        int code = th_wait(pids[k], 100000);
        cr_assert_eq(code, 0, "process %d failed (exit %d): see its stderr", k, code);
        th_chan_close(&a[k].go);
    }
    reel_store_stats st = th_stats(s);
    th_expect_same_usage(&empty, &st, "after every object was consumed");
    cr_assert_eq(st.clients_alive, 1u);
    cr_assert_eq(st.clients_dead, 0u);
    cr_assert_eq(st.evictions, 0u, "objects were evicted from a store with room to spare");
    TH_OK(reel_store_close(s));
}

/* ---- readers racing a deleter -------------------------------------------------------------- */

enum { SHARED_OBJS = 400, READERS = 3 };

typedef struct {
    const char *path;
    reel_id base;
    uint64_t seed;
    th_chan ready;
    th_chan go;
} reader_arg;

static int child_read_while_deleted(void *p) {
    reader_arg *a = p;
    reel_store *s = NULL;
    TH_CHILD_RC(reel_store_open(a->path, 0, &s), 0);
    TH_CHILD_RC(th_chan_send(&a->ready, 'r'), 0);
    TH_CHILD_CHECK(th_chan_recv(&a->go, 20000) == 'g', "no start signal");
    uint64_t rng = a->seed;
    for (int pass = 0; pass < 6; pass++) {
        for (uint64_t i = 0; i + 4 <= SHARED_OBJS; i += 4) {
            reel_id ids[4];
            uint64_t idx[4];
            for (int k = 0; k < 4; k++) {
                idx[k] = th_rand64(&rng) % SHARED_OBJS;
                ids[k] = obj_id(&a->base, 9, idx[k]);
            }
            reel_view v[4];
            int rc = reel_obj_get(s, ids, 4, 0, v);
            if (rc == -ETIMEDOUT)
                continue; /* one of them is deleted already */
            TH_CHILD_RC(rc, 0);
            for (int k = 0; k < 4; k++)
                if (check_view(&v[k], &a->base, 9, idx[k]))
                    return 1;
            for (int k = 0; k < 4; k++)
                TH_CHILD_RC(reel_obj_release(s, &ids[k]), 0);
        }
    }
    TH_CHILD_RC(reel_store_close(s), 0);
    return 0;
}

Test(concurrency, readers_race_a_deleter) {
    const char *path;
    reel_store *s = th_store_new(16 * MiB, 4096, &path);
    reel_store_stats empty = th_stats(s);
    reel_id base = th_id_random();
    for (uint64_t i = 0; i < SHARED_OBJS; i++)
        TH_OK(produce(s, &base, 9, i, 0));
    reader_arg a[READERS];
    pid_t pids[READERS];
    for (int k = 0; k < READERS; k++) {
        a[k].path = path;
        a[k].base = base;
        a[k].seed = (uint64_t)k + 1;
        th_chan_open(&a[k].ready);
        th_chan_open(&a[k].go);
        pids[k] = th_fork(child_read_while_deleted, &a[k]);
    }
    for (int k = 0; k < READERS; k++)
        cr_assert_eq(th_chan_recv(&a[k].ready, 20000), 'r');
    for (int k = 0; k < READERS; k++)
        TH_OK(th_chan_send(&a[k].go, 'g'));
    /* Delete everything in a scrambled order while they read. */
    for (uint64_t j = 0; j < SHARED_OBJS; j++) {
        uint64_t i = (j * 7) % SHARED_OBJS; /* 7 is prime to 400 */
        reel_id id = obj_id(&base, 9, i);
        TH_OK(reel_obj_delete(s, &id));
        if (j % 40 == 0)
            th_sleep_us(500);
    }
    for (int k = 0; k < READERS; k++) {
        int code = th_wait(pids[k], 60000);
        cr_assert_eq(code, 0, "reader %d failed (exit %d)", k, code);
        th_chan_close(&a[k].ready);
        th_chan_close(&a[k].go);
    }
    reel_store_stats st = th_stats(s);
    th_expect_same_usage(&empty, &st, "after deleting everything under readers");
    TH_OK(reel_store_close(s));
}

/* ---- content-addressed puts racing ------------------------------------------------------------
 */

enum { CONTENTS = 200 };

typedef struct {
    const char *path;
    uint64_t me;
    th_chan go;
} cas_arg;

static int child_put_contents(void *p) {
    cas_arg *a = p;
    reel_store *s = NULL;
    TH_CHILD_RC(reel_store_open(a->path, 0, &s), 0);
    TH_CHILD_CHECK(th_chan_recv(&a->go, 20000) == 'g', "no start signal");
    static uint8_t buf[20000];
    int exists = 0;
    for (uint64_t j = 0; j < CONTENTS; j++) {
        uint64_t i = (j + a->me * 50) % CONTENTS;
        size_t size = 100 + (size_t)(i * 97) % 19000;
        th_fill(buf, size, 5000 + i);
        reel_id id, want;
        reel_id_from_content(buf, size, &want);
        int rc = reel_obj_put(s, &id, buf, size, NULL, 0, REEL_OBJ_CONTENT_ID, 5000);
        /* A racing put of the same bytes may still hold the object unsealed;
         * the header leaves open whether that is 0 or REEL_EEXISTS. */
        if (rc == REEL_EEXISTS) {
            exists++;
            continue;
        }
        TH_CHILD_RC(rc, 0);
        TH_CHILD_CHECK(reel_id_equal(&id, &want), "put returned another ID");
    }
    if (exists)
        fprintf(stderr, "note: %d content-addressed puts returned REEL_EEXISTS\n", exists);
    TH_CHILD_RC(reel_store_close(s), 0);
    return 0;
}

Test(concurrency, content_addressed_puts_race) {
    const char *path;
    reel_store *s = th_store_new(16 * MiB, 4096, &path);
    cas_arg a[PROCS];
    pid_t pids[PROCS];
    for (int k = 0; k < PROCS; k++) {
        a[k].path = path;
        a[k].me = (uint64_t)k;
        th_chan_open(&a[k].go);
        pids[k] = th_fork(child_put_contents, &a[k]);
    }
    for (int k = 0; k < PROCS; k++)
        TH_OK(th_chan_send(&a[k].go, 'g'));
    for (int k = 0; k < PROCS; k++) {
        cr_assert_eq(th_wait(pids[k], 60000), 0, "process %d failed", k);
        th_chan_close(&a[k].go);
    }
    reel_store_stats st = th_stats(s);
    cr_assert_eq(st.objects, (uint32_t)CONTENTS, "%u objects for %d distinct contents", st.objects,
                 CONTENTS);
    cr_assert_eq(st.objects_sealed, (uint32_t)CONTENTS);
    static uint8_t buf[20000];
    for (uint64_t i = 0; i < CONTENTS; i++) {
        size_t size = 100 + (size_t)(i * 97) % 19000;
        th_fill(buf, size, 5000 + i);
        reel_id id;
        reel_id_from_content(buf, size, &id);
        reel_view v;
        TH_OK(reel_obj_get(s, &id, 1, 0, &v));
        cr_assert_eq(v.size, size);
        cr_assert_eq(memcmp(v.data, buf, size), 0, "content %llu differs", (unsigned long long)i);
        TH_OK(reel_obj_release(s, &id));
        TH_OK(reel_obj_delete(s, &id));
    }
    st = th_stats(s);
    cr_assert_eq(st.objects, 0u);
    cr_assert_eq(st.used, 0u);
    TH_OK(reel_store_close(s));
}

/* ---- threads sharing one handle
 * ------------------------------------------------------------------ */

enum { THREAD_OBJS = 2000 };

typedef struct {
    reel_store *s;
    reel_id base;
    uint64_t which;
    int result;
} thr_arg;

static int thread_producer(thr_arg *a) {
    for (uint64_t i = 0; i < THREAD_OBJS; i++)
        TH_CHILD_RC(produce(a->s, &a->base, 20, i, 0), 0);
    return 0;
}

static int thread_consumer(thr_arg *a) {
    for (uint64_t i = 0; i < THREAD_OBJS; i++) {
        reel_id id = obj_id(&a->base, 20, i);
        reel_view v;
        TH_CHILD_RC(reel_obj_get(a->s, &id, 1, 30000, &v), 0);
        if (check_view(&v, &a->base, 20, i))
            return 1;
        TH_CHILD_RC(reel_obj_release(a->s, &id), 0);
        TH_CHILD_RC(reel_obj_delete(a->s, &id), 0);
    }
    return 0;
}

/* Creates, reads and deletes its own objects. */
static int thread_private(thr_arg *a) {
    uint64_t me = 30 + a->which;
    for (uint64_t i = 0; i < THREAD_OBJS; i++) {
        TH_CHILD_RC(produce(a->s, &a->base, me, i, REEL_OBJ_EVICTABLE), 0);
        reel_id id = obj_id(&a->base, me, i);
        reel_view v;
        TH_CHILD_RC(reel_obj_get(a->s, &id, 1, 0, &v), 0);
        if (check_view(&v, &a->base, me, i))
            return 1;
        if (i % 2) {
            TH_CHILD_RC(reel_obj_delete(a->s, &id), 0); /* deferred */
            TH_CHILD_RC(reel_obj_release(a->s, &id), 0);
        } else {
            TH_CHILD_RC(reel_obj_release(a->s, &id), 0);
            TH_CHILD_RC(reel_obj_delete(a->s, &id), 0);
        }
    }
    return 0;
}

/* Gets and releases one shared object over and over. */
static int thread_getter(thr_arg *a) {
    reel_id id = obj_id(&a->base, 40, 0);
    for (int i = 0; i < 20000; i++) {
        reel_view v;
        TH_CHILD_RC(reel_obj_get(a->s, &id, 1, 0, &v), 0);
        TH_CHILD_CHECK(v.size == obj_size(40, 0), "size");
        TH_CHILD_RC(reel_obj_release(a->s, &id), 0);
        if (i % 1000 == 0) {
            reel_store_stats st;
            TH_CHILD_RC(reel_store_stats_get(a->s, &st), 0);
        }
    }
    return 0;
}

static void *run_producer(void *p) {
    thr_arg *a = p;
    a->result = thread_producer(a);
    return NULL;
}
static void *run_consumer(void *p) {
    thr_arg *a = p;
    a->result = thread_consumer(a);
    return NULL;
}
static void *run_private(void *p) {
    thr_arg *a = p;
    a->result = thread_private(a);
    return NULL;
}
static void *run_getter(void *p) {
    thr_arg *a = p;
    a->result = thread_getter(a);
    return NULL;
}

Test(concurrency, threads_share_a_handle) {
    reel_store *s = th_store_new(16 * MiB, 4096, NULL);
    reel_id base = th_id_random();
    TH_OK(produce(s, &base, 40, 0, 0));
    reel_store_stats start = th_stats(s);
    void *(*fns[])(void *) = {run_producer, run_consumer, run_private,
                              run_private,  run_getter,   run_getter};
    enum { T = sizeof fns / sizeof fns[0] };
    thr_arg a[T];
    pthread_t t[T];
    for (int k = 0; k < T; k++) {
        a[k] = (thr_arg){.s = s, .base = base, .which = (uint64_t)k, .result = -1};
        cr_assert_eq(pthread_create(&t[k], NULL, fns[k], &a[k]), 0);
    }
    for (int k = 0; k < T; k++) {
        pthread_join(t[k], NULL);
        cr_assert_eq(a[k].result, 0, "thread %d failed: see stderr", k);
    }
    reel_store_stats st = th_stats(s);
    th_expect_same_usage(&start, &st, "after the threads finished");
    reel_client_info ci[2];
    size_t count;
    TH_OK(reel_store_clients(s, ci, 2, &count));
    cr_assert_eq(count, 1u);
    cr_assert_eq(ci[0].refs, 0u);
    TH_OK(reel_store_close(s));
}

/* reel_last_error() belongs to the calling thread. (777792 is a multiple of 64.) */
typedef struct {
    reel_store *s;
    char detail[256];
    int rc;
} full_arg;

static void *run_full(void *p) {
    full_arg *a = p;
    reel_id id;
    reel_id_random(&id);
    void *buf;
    a->rc = reel_obj_create(a->s, &id, 777792, NULL, 0, 0, 0, &buf);
    snprintf(a->detail, sizeof a->detail, "%s", reel_last_error());
    return NULL;
}

Test(concurrency, last_error_is_per_thread) {
    reel_store *s = th_store_new(1 * MiB, 64, NULL);
    reel_id big = th_id_random();
    void *buf;
    TH_OK(reel_obj_create(s, &big, 600 * KiB, NULL, 0, 0, 0, &buf));
    full_arg a = {.s = s};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, run_full, &a), 0);
    pthread_join(t, NULL);
    cr_assert_eq(a.rc, REEL_EFULL, "%d (%s)", a.rc, reel_strerror(a.rc));
    cr_assert(strstr(a.detail, "777792") != NULL, "thread detail: \"%s\"", a.detail);
    const char *mine = reel_last_error();
    cr_assert_not_null(mine);
    cr_assert(strstr(mine, "777792") == NULL,
              "another thread's failure shows in this thread's reel_last_error(): \"%s\"", mine);
    TH_OK(reel_obj_abort(s, &big));
    TH_OK(reel_store_close(s));
}
