/* Every documented error path of the store and object calls. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <criterion/criterion.h>

#include "helpers.h"
#include "store_internal.h" /* seg_header: who sleeps waiting for room */

TestSuite(errors, .init = th_init, .fini = th_fini, .timeout = 60);

#define MiB (1024u * 1024u)
#define KiB 1024u

static void put_pattern(reel_store *s, const reel_id *id, uint64_t size, uint64_t seed,
                        uint32_t flags) {
    void *buf = NULL;
    TH_OK(reel_obj_create(s, id, size, NULL, 0, flags, 0, &buf));
    th_fill(buf, size, seed);
    TH_OK(reel_obj_seal(s, id));
}

static int present(reel_store *s, const reel_id *id) {
    int p = -1;
    TH_OK(reel_obj_contains(s, id, &p));
    return p;
}

/* ---- seal / abort / delete / release ------------------------------------------------- */

Test(errors, double_seal) {
    reel_store *s = th_store_new(1 * MiB, 64, NULL);
    reel_id a = th_id_random();
    put_pattern(s, &a, 100, 1, 0);
    TH_RC(reel_obj_seal(s, &a), REEL_ESEALED);
    TH_RC(reel_obj_abort(s, &a), REEL_ESEALED);
    cr_assert_eq(present(s, &a), 1, "a failed seal or abort removed the object");
    TH_OK(reel_store_close(s));
}

Test(errors, unknown_id) {
    reel_store *s = th_store_new(1 * MiB, 64, NULL);
    reel_id a = th_id_random();
    TH_RC(reel_obj_seal(s, &a), REEL_ENOTFOUND);
    TH_RC(reel_obj_abort(s, &a), REEL_ENOTFOUND);
    TH_RC(reel_obj_delete(s, &a), REEL_ENOTFOUND);
    TH_RC(reel_obj_release(s, &a), REEL_ENOTREF);
    cr_assert_eq(present(s, &a), 0);
    TH_OK(reel_store_close(s));
}

Test(errors, get_unknown_times_out) {
    reel_store *s = th_store_new(1 * MiB, 64, NULL);
    reel_id a = th_id_random();
    reel_view v;
    TH_RC(reel_obj_get(s, &a, 1, 50, &v), -ETIMEDOUT);
    TH_RC(reel_obj_get(s, &a, 1, 0, &v), -ETIMEDOUT);
    reel_store_set_spin_ns(s, 0);
    TH_RC(reel_obj_get(s, &a, 1, 20, &v), -ETIMEDOUT);
    reel_store_set_spin_ns(s, 1000000);
    TH_RC(reel_obj_get(s, &a, 1, 1, &v), -ETIMEDOUT);
    cr_assert_eq(th_stats(s).objects_referenced, 0u);
    TH_OK(reel_store_close(s));
}

Test(errors, get_unsealed_times_out) {
    reel_store *s = th_store_new(1 * MiB, 64, NULL);
    reel_id a = th_id_random();
    void *buf;
    TH_OK(reel_obj_create(s, &a, 100, NULL, 0, 0, 0, &buf));
    reel_view v;
    TH_RC(reel_obj_get(s, &a, 1, 0, &v), -ETIMEDOUT);
    TH_RC(reel_obj_get(s, &a, 1, 30, &v), -ETIMEDOUT);
    TH_OK(reel_store_close(s));
}

Test(errors, get_zero_objects) {
    reel_store *s = th_store_new(1 * MiB, 64, NULL);
    reel_id a = th_id_random();
    reel_view v;
    TH_RC(reel_obj_get(s, &a, 0, 0, &v), -EINVAL);
    TH_OK(reel_store_close(s));
}

Test(errors, abort_and_seal_by_another_client) {
    const char *path;
    reel_store *s = th_store_new(1 * MiB, 64, &path);
    reel_store *s2 = NULL;
    TH_OK(reel_store_open(path, 0, &s2));
    reel_id a = th_id_random();
    void *buf;
    TH_OK(reel_obj_create(s, &a, 100, NULL, 0, 0, 0, &buf));
    TH_RC(reel_obj_abort(s2, &a), REEL_ENOTOWNER);
    TH_RC(reel_obj_seal(s2, &a), REEL_ENOTOWNER);
    TH_RC(reel_obj_delete(s2, &a), REEL_ENOTSEALED);
    /* Still the owner's to finish. */
    th_fill(buf, 100, 1);
    TH_OK(reel_obj_seal(s, &a));
    cr_assert_eq(present(s2, &a), 1);
    TH_OK(reel_store_close(s2));
    TH_OK(reel_store_close(s));
}

typedef struct {
    const char *path;
    reel_id id;
} child_arg;

static int child_abort_seal(void *p) {
    child_arg *arg = p;
    reel_store *s = NULL;
    TH_CHILD_RC(reel_store_open(arg->path, 0, &s), 0);
    TH_CHILD_RC(reel_obj_abort(s, &arg->id), REEL_ENOTOWNER);
    TH_CHILD_RC(reel_obj_seal(s, &arg->id), REEL_ENOTOWNER);
    TH_CHILD_RC(reel_store_close(s), 0);
    return 0;
}

Test(errors, abort_and_seal_by_another_process) {
    const char *path;
    reel_store *s = th_store_new(1 * MiB, 64, &path);
    child_arg arg = {.path = path, .id = th_id_random()};
    void *buf;
    TH_OK(reel_obj_create(s, &arg.id, 100, NULL, 0, 0, 0, &buf));
    pid_t pid = th_fork(child_abort_seal, &arg);
    cr_assert_eq(th_wait(pid, 20000), 0, "child failed");
    TH_OK(reel_obj_abort(s, &arg.id));
    TH_OK(reel_store_close(s));
}

Test(errors, release_without_reference) {
    const char *path;
    reel_store *s = th_store_new(1 * MiB, 64, &path);
    reel_id a = th_id_random();
    put_pattern(s, &a, 100, 1, 0);
    TH_RC(reel_obj_release(s, &a), REEL_ENOTREF);
    reel_view v;
    TH_OK(reel_obj_get(s, &a, 1, 0, &v));
    /* Another client cannot drop this client's reference. */
    reel_store *s2 = NULL;
    TH_OK(reel_store_open(path, 0, &s2));
    TH_RC(reel_obj_release(s2, &a), REEL_ENOTREF);
    TH_OK(reel_obj_release(s, &a));
    TH_RC(reel_obj_release(s, &a), REEL_ENOTREF);
    cr_assert_eq(th_stats(s).objects_referenced, 0u);
    TH_OK(reel_store_close(s2));
    TH_OK(reel_store_close(s));
}

Test(errors, delete_unsealed) {
    reel_store *s = th_store_new(1 * MiB, 64, NULL);
    reel_id a = th_id_random();
    void *buf;
    TH_OK(reel_obj_create(s, &a, 100, NULL, 0, 0, 0, &buf));
    TH_RC(reel_obj_delete(s, &a), REEL_ENOTSEALED);
    reel_store_stats st = th_stats(s);
    cr_assert_eq(st.objects_unsealed, 1u);
    TH_OK(reel_obj_abort(s, &a));
    TH_RC(reel_obj_abort(s, &a), REEL_ENOTFOUND);
    TH_OK(reel_store_close(s));
}

/* ---- create ---------------------------------------------------------------------------- */

Test(errors, create_existing_id) {
    reel_store *s = th_store_new(1 * MiB, 64, NULL);
    reel_id a = th_id_random();
    void *buf;
    TH_OK(reel_obj_create(s, &a, 100, NULL, 0, 0, 0, &buf));
    TH_RC(reel_obj_create(s, &a, 100, NULL, 0, 0, 0, &buf), REEL_EEXISTS);
    th_fill(buf, 100, 1);
    TH_OK(reel_obj_seal(s, &a));
    TH_RC(reel_obj_create(s, &a, 50, NULL, 0, 0, 0, &buf), REEL_EEXISTS);
    uint8_t data[10] = {0};
    TH_RC(reel_obj_put(s, &a, data, sizeof data, NULL, 0, 0, 0), REEL_EEXISTS);
    reel_store_stats st = th_stats(s);
    cr_assert_eq(st.objects, 1u);
    /* The original is untouched. */
    reel_view v;
    TH_OK(reel_obj_get(s, &a, 1, 0, &v));
    cr_assert_eq(v.size, 100u);
    cr_assert(th_pattern_ok(v.data, 100, 1));
    TH_OK(reel_obj_release(s, &a));
    TH_OK(reel_store_close(s));
}

Test(errors, create_too_big) {
    reel_store *s = th_store_new(1 * MiB, 64, NULL);
    reel_store_stats before = th_stats(s);
    reel_id a = th_id_random();
    void *buf = NULL;
    TH_RC(reel_obj_create(s, &a, before.capacity + 1, NULL, 0, 0, 0, &buf), REEL_ETOOBIG);
    TH_RC(reel_obj_create(s, &a, before.capacity + 1, NULL, 0, 0, 100, &buf), REEL_ETOOBIG);
    TH_RC(reel_obj_create(s, &a, 2ull * before.capacity, NULL, 0, 0, -1, &buf), REEL_ETOOBIG);
    TH_RC(reel_obj_create(s, &a, UINT64_MAX, NULL, 0, 0, 0, &buf), REEL_ETOOBIG);
    TH_RC(reel_obj_create(s, &a, UINT64_MAX - 63, NULL, 0, 0, 0, &buf), REEL_ETOOBIG);
    TH_RC(reel_obj_create(s, &a, 1ull << 63, NULL, 0, 0, 0, &buf), REEL_ETOOBIG);
    uint8_t tiny = 0;
    TH_RC(reel_obj_put(s, &a, &tiny, before.capacity + 4096, NULL, 0, 0, 0), REEL_ETOOBIG);
    reel_store_stats after = th_stats(s);
    cr_assert_eq(after.objects, 0u);
    cr_assert_eq(after.used, 0u);
    TH_OK(reel_store_close(s));
}

Test(errors, create_exactly_capacity_fits) {
    reel_store *s = th_store_new(1 * MiB, 64, NULL);
    reel_store_stats st = th_stats(s);
    reel_id a = th_id_random();
    void *buf = NULL;
    TH_OK(reel_obj_create(s, &a, st.capacity, NULL, 0, 0, 0, &buf));
    ((uint8_t *)buf)[0] = 1;
    ((uint8_t *)buf)[st.capacity - 1] = 2;
    TH_OK(reel_obj_seal(s, &a));
    reel_id b = th_id_random();
    TH_RC(reel_obj_create(s, &b, 1, NULL, 0, 0, 0, &buf), REEL_EFULL);
    TH_OK(reel_store_close(s));
}

/* Fills a 1 MiB store with four non-evictable 240 KiB objects. */
#define FILL_SIZE (240u * KiB)
static void fill_store(reel_store *s, reel_id ids[4]) {
    for (int i = 0; i < 4; i++) {
        ids[i] = th_id_n(7, (uint64_t)i);
        put_pattern(s, &ids[i], FILL_SIZE, (uint64_t)i, 0);
    }
}

Test(errors, full_store_times_out_with_detail) {
    reel_store *s = th_store_new(1 * MiB, 64, NULL);
    reel_id ids[4];
    fill_store(s, ids);
    reel_store_stats st = th_stats(s);
    reel_id a = th_id_random();
    void *buf = NULL;
    uint64_t ask = 300032; /* a multiple of 64: no rounding question */
    cr_assert_gt(ask, st.free);
    int rc = reel_obj_create(s, &a, ask, NULL, 0, 0, 100, &buf);
    char detail[512];
    snprintf(detail, sizeof detail, "%s", reel_last_error());
    cr_assert_eq(rc, REEL_EFULL, "create in a full store -> %d (%s)", rc, reel_strerror(rc));
    char num[32];
    snprintf(num, sizeof num, "%" PRIu64, ask);
    cr_assert(strstr(detail, num) != NULL,
              "reel_last_error() after REEL_EFULL does not mention the asked size %s: \"%s\"", num,
              detail);
    cr_log_info("REEL_EFULL detail: %s", detail);

    rc = reel_obj_create(s, &a, ask, NULL, 0, 0, 0, &buf);
    snprintf(detail, sizeof detail, "%s", reel_last_error());
    cr_assert_eq(rc, REEL_EFULL, "create in a full store, timeout 0 -> %d (%s)", rc,
                 reel_strerror(rc));
    cr_assert(strstr(detail, num) != NULL, "detail without the asked size: \"%s\"", detail);

    /* Nothing changed, and a create that fits still works. */
    reel_store_stats after = th_stats(s);
    cr_assert_eq(after.used, st.used);
    cr_assert_eq(after.objects, 4u);
    cr_assert_eq(present(s, &a), 0);
    TH_OK(reel_obj_create(s, &a, 1000, NULL, 0, 0, 0, &buf));
    TH_OK(reel_obj_abort(s, &a));
    TH_OK(reel_store_close(s));
}

/* "reel_last_error() says how much was asked": the size the caller passed, not
 * the size after the store's internal rounding. */
Test(errors, full_detail_names_the_size_the_caller_asked) {
    reel_store *s = th_store_new(1 * MiB, 64, NULL);
    reel_id ids[4];
    fill_store(s, ids);
    reel_id a = th_id_random();
    void *buf;
    TH_RC(reel_obj_create(s, &a, 300001, NULL, 0, 0, 0, &buf), REEL_EFULL);
    char detail[512];
    snprintf(detail, sizeof detail, "%s", reel_last_error());
    cr_assert(strstr(detail, "300001") != NULL,
              "reel_last_error() after asking for 300001 bytes: \"%s\"", detail);
    TH_OK(reel_store_close(s));
}

Test(errors, last_error_is_per_failure) {
    reel_store *s = th_store_new(1 * MiB, 64, NULL);
    cr_assert_not_null(reel_last_error());
    reel_id ids[4];
    fill_store(s, ids);
    reel_id a = th_id_random();
    void *buf;
    TH_RC(reel_obj_create(s, &a, 500032, NULL, 0, 0, 0, &buf), REEL_EFULL);
    cr_assert(strstr(reel_last_error(), "500032") != NULL, "detail: \"%s\"", reel_last_error());
    /* A later failure replaces the sentence. */
    TH_RC(reel_obj_create(s, &a, 400000, NULL, 0, 0, 0, &buf), REEL_EFULL);
    cr_assert(strstr(reel_last_error(), "400000") != NULL, "detail: \"%s\"", reel_last_error());
    cr_assert(strstr(reel_last_error(), "500032") == NULL, "stale detail: \"%s\"",
              reel_last_error());
    TH_OK(reel_store_close(s));
}

typedef struct {
    const char *path;
    reel_id victim;
    th_chan ready;
} freer_arg;

/* In the child: waits until the parent sleeps in s waiting for room (the
 * store's space sleepers, and the parent asleep), a minute at most, so that
 * what the child frees wakes it rather than being there before it looks. */
static void wait_for_the_parent_to_wait(reel_store *s) {
    uint64_t until = th_monotonic_ns() + 60ull * 1000000000u;
    while (atomic_load(&s->hdr->space_sleepers) < 1 && th_monotonic_ns() < until)
        th_sleep_ms(1);
    th_wait_asleep(getppid(), 60000);
}

static int child_delete_later(void *p) {
    freer_arg *arg = p;
    reel_store *s = NULL;
    TH_CHILD_RC(reel_store_open(arg->path, 0, &s), 0);
    TH_CHILD_RC(th_chan_send(&arg->ready, 'r'), 0);
    wait_for_the_parent_to_wait(s);
    TH_CHILD_RC(reel_obj_delete(s, &arg->victim), 0);
    TH_CHILD_RC(reel_store_close(s), 0);
    return 0;
}

Test(errors, full_store_create_waits_for_a_delete) {
    const char *path;
    reel_store *s = th_store_new(1 * MiB, 64, &path);
    reel_id ids[4];
    fill_store(s, ids);
    freer_arg arg = {.path = path, .victim = ids[2]};
    th_chan_open(&arg.ready);
    pid_t pid = th_fork(child_delete_later, &arg);
    cr_assert_eq(th_chan_recv(&arg.ready, 20000), 'r', "child did not attach");
    reel_id a = th_id_random();
    void *buf = NULL;
    TH_OK(reel_obj_create(s, &a, FILL_SIZE, NULL, 0, 0, 60000, &buf));
    th_fill(buf, FILL_SIZE, 55);
    TH_OK(reel_obj_seal(s, &a));
    cr_assert_eq(th_wait(pid, 20000), 0, "child failed");
    cr_assert_eq(present(s, &ids[2]), 0);
    cr_assert_eq(present(s, &a), 1);
    th_chan_close(&arg.ready);
    TH_OK(reel_store_close(s));
}

static int child_hold_then_release(void *p) {
    freer_arg *arg = p;
    reel_store *s = NULL;
    TH_CHILD_RC(reel_store_open(arg->path, 0, &s), 0);
    reel_view v;
    TH_CHILD_RC(reel_obj_get(s, &arg->victim, 1, 10000, &v), 0);
    TH_CHILD_RC(th_chan_send(&arg->ready, 'r'), 0);
    wait_for_the_parent_to_wait(s);
    TH_CHILD_RC(reel_obj_release(s, &arg->victim), 0);
    TH_CHILD_RC(reel_store_close(s), 0);
    return 0;
}

Test(errors, full_store_create_waits_for_last_release) {
    const char *path;
    reel_store *s = th_store_new(1 * MiB, 64, &path);
    reel_id ids[4];
    fill_store(s, ids);
    freer_arg arg = {.path = path, .victim = ids[1]};
    th_chan_open(&arg.ready);
    pid_t pid = th_fork(child_hold_then_release, &arg);
    cr_assert_eq(th_chan_recv(&arg.ready, 20000), 'r', "child did not get its reference");
    TH_OK(reel_obj_delete(s, &ids[1])); /* deferred: the child holds it */
    cr_assert_eq(th_stats(s).objects_deleting, 1u);
    reel_id a = th_id_random();
    void *buf = NULL;
    TH_OK(reel_obj_create(s, &a, FILL_SIZE, NULL, 0, 0, 60000, &buf));
    TH_OK(reel_obj_seal(s, &a));
    cr_assert_eq(th_wait(pid, 20000), 0, "child failed");
    reel_store_stats st = th_stats(s);
    cr_assert_eq(st.objects_deleting, 0u);
    cr_assert_eq(st.objects, 4u);
    th_chan_close(&arg.ready);
    TH_OK(reel_store_close(s));
}

Test(errors, full_store_create_evicts_once_released) {
    const char *path;
    reel_store *s = th_store_new(1 * MiB, 64, &path);
    reel_id ids[4];
    for (int i = 0; i < 4; i++) {
        ids[i] = th_id_n(8, (uint64_t)i);
        put_pattern(s, &ids[i], FILL_SIZE, (uint64_t)i, i == 3 ? REEL_OBJ_EVICTABLE : 0);
    }
    freer_arg arg = {.path = path, .victim = ids[3]};
    th_chan_open(&arg.ready);
    pid_t pid = th_fork(child_hold_then_release, &arg);
    cr_assert_eq(th_chan_recv(&arg.ready, 20000), 'r', "child did not get its reference");
    reel_id a = th_id_random();
    void *buf = NULL;
    /* The only evictable object is referenced until the child lets go. */
    TH_OK(reel_obj_create(s, &a, FILL_SIZE, NULL, 0, 0, 60000, &buf));
    TH_OK(reel_obj_seal(s, &a));
    cr_assert_eq(th_wait(pid, 20000), 0, "child failed");
    cr_assert_eq(present(s, &ids[3]), 0);
    cr_assert_eq(th_stats(s).evictions, 1u);
    th_chan_close(&arg.ready);
    TH_OK(reel_store_close(s));
}

Test(errors, meta_too_large_and_bad_flags) {
    reel_store *s = th_store_new(1 * MiB, 64, NULL);
    uint8_t *meta = calloc(1, REEL_META_MAX + 2);
    cr_assert_not_null(meta);
    reel_id a = th_id_random();
    void *buf = NULL;
    TH_RC(reel_obj_create(s, &a, 100, meta, REEL_META_MAX + 1, 0, 0, &buf), -EINVAL);
    TH_RC(reel_obj_create(s, &a, 100, meta, UINT32_MAX, 0, 0, &buf), -EINVAL);
    uint8_t data[8] = {0};
    TH_RC(reel_obj_put(s, &a, data, sizeof data, meta, REEL_META_MAX + 1, 0, 0), -EINVAL);
    TH_RC(reel_obj_create(s, &a, 100, NULL, 0, 0x80000000u, 0, &buf), -EINVAL);
    TH_RC(reel_obj_create(s, &a, 100, NULL, 0, 0x100u, 0, &buf), -EINVAL);
    TH_RC(reel_obj_put(s, &a, data, sizeof data, NULL, 0, 0x40u, 0), -EINVAL);
    cr_assert_eq(th_stats(s).objects, 0u);
    TH_OK(reel_obj_create(s, &a, 100, meta, REEL_META_MAX, 0, 0, &buf));
    TH_OK(reel_obj_abort(s, &a));
    free(meta);
    TH_OK(reel_store_close(s));
}

Test(errors, object_table_full) {
    reel_store *s = th_store_new(1 * MiB, 16, NULL);
    uint32_t n = th_stats(s).max_objects;
    cr_assert_geq(n, 16u);
    cr_assert_leq(n, 4096u, "max_objects 16 became %u", n);
    for (uint32_t i = 0; i < n; i++) {
        reel_id id = th_id_n(9, i);
        put_pattern(s, &id, 64, i, 0);
    }
    reel_id extra = th_id_n(9, n);
    void *buf = NULL;
    TH_RC(reel_obj_create(s, &extra, 64, NULL, 0, 0, 0, &buf), REEL_ETOOMANYOBJECTS);
    uint8_t data[64] = {0};
    TH_RC(reel_obj_put(s, &extra, data, sizeof data, NULL, 0, 0, 0), REEL_ETOOMANYOBJECTS);
    cr_assert_eq(th_stats(s).objects, n);
    /* One deleted, one fits again. */
    reel_id first = th_id_n(9, 0);
    TH_OK(reel_obj_delete(s, &first));
    TH_OK(reel_obj_create(s, &extra, 64, NULL, 0, 0, 0, &buf));
    TH_OK(reel_obj_seal(s, &extra));
    /* Deleting and recreating many times (tombstones in a hash table) keeps working. */
    for (uint32_t round = 0; round < 200; round++) {
        reel_id id = th_id_n(10, round);
        TH_OK(reel_obj_delete(s, &extra));
        TH_OK(reel_obj_create(s, &id, 64, NULL, 0, 0, 0, &buf));
        TH_OK(reel_obj_seal(s, &id));
        extra = id;
    }
    cr_assert_eq(th_stats(s).objects, n);
    TH_OK(reel_store_close(s));
}

Test(errors, observer_handle_cannot_create_or_get) {
    const char *path;
    reel_store *s = th_store_new(1 * MiB, 64, &path);
    reel_id a = th_id_random();
    put_pattern(s, &a, 100, 1, 0);
    reel_store *obs = NULL;
    TH_OK(reel_store_open(path, REEL_OPEN_OBSERVER, &obs));
    reel_id b = th_id_random();
    void *buf = NULL;
    TH_RC(reel_obj_create(obs, &b, 100, NULL, 0, 0, 0, &buf), REEL_EOBSERVER);
    uint8_t data[4] = {1, 2, 3, 4};
    TH_RC(reel_obj_put(obs, &b, data, sizeof data, NULL, 0, 0, 0), REEL_EOBSERVER);
    reel_view v;
    TH_RC(reel_obj_get(obs, &a, 1, 0, &v), REEL_EOBSERVER);
    TH_RC(reel_obj_get(obs, &a, 1, 100, &v), REEL_EOBSERVER);
    /* What an observer may do. */
    reel_store_stats st = th_stats(obs);
    cr_assert_eq(st.objects, 1u);
    cr_assert_eq(st.clients_alive, 1u);
    reel_obj_info info;
    size_t count = 0;
    TH_OK(reel_store_objects(obs, &info, 1, &count));
    cr_assert_eq(count, 1u);
    uint32_t n = 99;
    TH_OK(reel_store_reclaim(obs, &n));
    cr_assert_eq(n, 0u);
    TH_OK(reel_store_close(obs));
    TH_OK(reel_store_close(s));
}

/* An observer changes nothing: delete, disown, seal, abort and release are
 * refused as create and get are, and the objects (and whom they belong to)
 * are as they were. */
Test(errors, observer_handle_cannot_change_an_object) {
    const char *path;
    reel_store *s = th_store_new(1 * MiB, 64, &path);
    uint64_t token;
    TH_OK(reel_store_owner_token(s, &token));
    TH_OK(reel_store_set_owner(s, token));
    reel_id a = th_id_random();
    put_pattern(s, &a, 100, 1, 0);
    reel_id u = th_id_random();
    void *buf;
    TH_OK(reel_obj_create(s, &u, 10, NULL, 0, 0, 0, &buf)); /* unsealed, s's */
    reel_store_stats before = th_stats(s);
    cr_assert_eq(before.objects_owned, 2u);
    reel_store *obs = NULL;
    TH_OK(reel_store_open(path, REEL_OPEN_OBSERVER, &obs));
    TH_RC(reel_obj_delete(obs, &a), REEL_EOBSERVER);
    TH_RC(reel_obj_disown(obs, &a, 1), REEL_EOBSERVER);
    TH_RC(reel_obj_seal(obs, &u), REEL_EOBSERVER);
    TH_RC(reel_obj_abort(obs, &u), REEL_EOBSERVER);
    TH_RC(reel_obj_release(obs, &a), REEL_EOBSERVER);
    TH_RC(reel_store_spill(obs, 0, NULL), REEL_EOBSERVER);
    reel_store_stats after = th_stats(obs);
    cr_assert_eq(after.objects_owned, before.objects_owned, "an observer disowned an object");
    cr_assert_eq(after.objects_sealed, before.objects_sealed, "an observer deleted an object");
    cr_assert_eq(after.objects_unsealed, before.objects_unsealed);
    int present = 0;
    TH_OK(reel_obj_contains(obs, &a, &present)); /* a question, which an observer may ask */
    cr_assert_eq(present, 1);
    TH_OK(reel_store_close(obs));
    TH_OK(reel_obj_seal(s, &u)); /* still the creator's to seal */
    TH_OK(reel_store_close(s));
}

Test(errors, too_many_clients) {
    reel_store_options opts = {0};
    opts.capacity = 1 * MiB;
    opts.max_objects = 64;
    opts.max_clients = 3;
    opts.flags = REEL_STORE_NO_PREFAULT;
    const char *path;
    reel_store *s = th_store_new_opts(&opts, &path);
    uint32_t max = th_stats(s).max_clients;
    cr_assert_geq(max, 3u);
    cr_assert_leq(max, 64u);
    reel_store *h[64] = {0};
    for (uint32_t i = 1; i < max; i++)
        TH_OK(reel_store_open(path, 0, &h[i]));
    reel_store *extra = NULL;
    TH_RC(reel_store_open(path, 0, &extra), REEL_ETOOMANYCLIENTS);
    /* Observers take no slot. */
    TH_OK(reel_store_open(path, REEL_OPEN_OBSERVER, &extra));
    TH_OK(reel_store_close(extra));
    /* A freed slot is reusable. */
    TH_OK(reel_store_close(h[1]));
    TH_OK(reel_store_open(path, 0, &h[1]));
    for (uint32_t i = 1; i < max; i++)
        TH_OK(reel_store_close(h[i]));
    TH_OK(reel_store_close(s));
}

Test(errors, too_many_refs) {
    reel_store_options opts = {0};
    opts.capacity = 1 * MiB;
    opts.max_objects = 256;
    opts.max_refs_per_client = 16;
    opts.flags = REEL_STORE_NO_PREFAULT;
    reel_store *s = th_store_new_opts(&opts, NULL);
    reel_id ids[20];
    for (int i = 0; i < 20; i++) {
        ids[i] = th_id_n(11, (uint64_t)i);
        put_pattern(s, &ids[i], 64, (uint64_t)i, 0);
    }
    reel_view v[20];
    for (int i = 0; i < 16; i++) {
        int rc = reel_obj_get(s, &ids[i], 1, 0, &v[i]);
        char msg[512];
        cr_assert_eq(rc, 0, "get of distinct object %d of max_refs_per_client 16 -> %s", i + 1,
                     th_rcstr(rc, msg, sizeof msg));
    }
    TH_RC(reel_obj_get(s, &ids[16], 1, 0, &v[16]), REEL_ETOOMANYREFS);
    /* Another reference to an object already held is not a new distinct object. */
    reel_view again;
    TH_OK(reel_obj_get(s, &ids[3], 1, 0, &again));
    TH_OK(reel_obj_release(s, &ids[3]));
    /* All or nothing. */
    TH_OK(reel_obj_release(s, &ids[0]));
    reel_id two[2] = {ids[16], ids[17]};
    TH_RC(reel_obj_get(s, two, 2, 0, v), REEL_ETOOMANYREFS);
    TH_RC(reel_obj_release(s, &ids[16]), REEL_ENOTREF);
    TH_OK(reel_obj_get(s, &ids[16], 1, 0, &v[16]));
    for (int i = 1; i <= 16; i++)
        TH_OK(reel_obj_release(s, &ids[i]));
    cr_assert_eq(th_stats(s).objects_referenced, 0u);
    TH_OK(reel_store_close(s));
}

/* ---- store create / open ---------------------------------------------------------------- */

Test(errors, create_on_existing_path) {
    const char *path;
    reel_store *s = th_store_new(1 * MiB, 64, &path);
    reel_id a = th_id_random();
    put_pattern(s, &a, 100, 1, 0);
    reel_store *s2 = NULL;
    reel_store_options opts = {
        .capacity = 1 * MiB, .max_objects = 64, .flags = REEL_STORE_NO_PREFAULT};
    TH_RC(reel_store_create(path, &opts, &s2), -EEXIST);
    cr_assert_eq(present(s, &a), 1, "failed create damaged the existing store");
    TH_OK(reel_store_close(s));

    /* A plain file is not replaced either. */
    const char *plain = th_store_path();
    int fd = open(plain, O_CREAT | O_EXCL | O_WRONLY, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "keep me\n", 8), 8);
    close(fd);
    TH_RC(reel_store_create(plain, &opts, &s2), -EEXIST);
    char buf[16] = {0};
    fd = open(plain, O_RDONLY);
    cr_assert_eq(read(fd, buf, sizeof buf), 8);
    close(fd);
    cr_assert_str_eq(buf, "keep me\n");
}

Test(errors, open_missing) {
    const char *path = th_store_path();
    reel_store *s = NULL;
    TH_RC(reel_store_open(path, 0, &s), -ENOENT);
    TH_RC(reel_store_open(path, REEL_OPEN_OBSERVER, &s), -ENOENT);
    TH_RC(reel_store_open("/nonexistent-dir-for-reel/x", 0, &s), -ENOENT);
    TH_RC(reel_store_destroy(path), -ENOENT);
}

Test(errors, create_bad_sizes_leaves_no_file) {
    const char *path = th_store_path();
    reel_store *s = NULL;
    reel_store_options opts = {0};
    opts.flags = REEL_STORE_NO_PREFAULT;
    opts.capacity = UINT64_MAX;
    int rc = reel_store_create(path, &opts, &s);
    char buf[512];
    cr_assert(rc == -EINVAL || rc == -ENOSPC || rc == -ENOMEM || rc == -EFBIG,
              "create with capacity 2^64-1 -> %s", th_rcstr(rc, buf, sizeof buf));
    struct stat st;
    cr_assert_neq(stat(path, &st), 0, "a failed create left a file behind");
}

Test(errors, destroyed_store_keeps_mapping) {
    const char *path;
    reel_store *s = th_store_new(1 * MiB, 64, &path);
    reel_id a = th_id_random();
    put_pattern(s, &a, 1000, 4, 0);
    TH_OK(reel_store_destroy(path));
    /* Still attached: still usable. */
    reel_view v;
    TH_OK(reel_obj_get(s, &a, 1, 0, &v));
    cr_assert(th_pattern_ok(v.data, 1000, 4));
    TH_OK(reel_obj_release(s, &a));
    reel_id b = th_id_random();
    put_pattern(s, &b, 1000, 5, 0);
    reel_store *s2 = NULL;
    TH_RC(reel_store_open(path, 0, &s2), -ENOENT);
    TH_OK(reel_store_close(s));
}
