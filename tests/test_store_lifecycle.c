/* Object life cycle in one process: create, seal, get, release, delete, put,
 * eviction, statistics and listings. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <sched.h>

#include "helpers.h"

TestSuite(lifecycle, .init = th_init, .fini = th_fini, .timeout = 60);

#define MiB (1024u * 1024u)
#define KiB 1024u

static void expect_present(reel_store *s, const reel_id *id, int want) {
    int present = -1;
    TH_OK(reel_obj_contains(s, id, &present));
    char hex[REEL_ID_HEX_LEN + 1];
    reel_id_to_hex(id, hex);
    cr_assert_eq(present, want, "contains(%s) = %d, expected %d", hex, present, want);
}

static void put_pattern(reel_store *s, const reel_id *id, uint64_t size, uint64_t seed,
                        uint32_t flags) {
    void *buf = NULL;
    TH_OK(reel_obj_create(s, id, size, NULL, 0, flags, 0, &buf));
    if (size)
        th_fill(buf, size, seed);
    TH_OK(reel_obj_seal(s, id));
}

static void expect_content(reel_store *s, const reel_id *id, uint64_t size, uint64_t seed) {
    reel_view v;
    TH_OK(reel_obj_get(s, id, 1, 0, &v));
    cr_assert_eq(v.size, size, "size %llu, expected %llu", (unsigned long long)v.size,
                 (unsigned long long)size);
    cr_assert(reel_id_equal(&v.id, id), "view carries another ID");
    size_t bad = th_mismatch(v.data, size, seed);
    cr_assert_eq(bad, size, "content differs at byte %zu of %llu", bad, (unsigned long long)size);
    TH_OK(reel_obj_release(s, id));
}

static void expect_empty(reel_store *s) {
    reel_store_stats st = th_stats(s);
    cr_assert_eq(st.used, 0u, "used %llu in an empty store", (unsigned long long)st.used);
    cr_assert_eq(st.free, st.capacity);
    cr_assert_eq(st.largest_free, st.capacity, "largest_free %llu != capacity %llu when empty",
                 (unsigned long long)st.largest_free, (unsigned long long)st.capacity);
    cr_assert_eq(st.objects, 0u);
    cr_assert_eq(st.objects_unsealed, 0u);
    cr_assert_eq(st.objects_sealed, 0u);
    cr_assert_eq(st.objects_deleting, 0u);
    cr_assert_eq(st.objects_evictable, 0u);
    cr_assert_eq(st.objects_referenced, 0u);
}

/* Compares the space and object counters of two snapshots, to the byte. */
#define expect_same_usage(a, b) th_expect_same_usage((a), (b), "usage")

static void expect_state_sum(const reel_store_stats *st) {
    cr_assert_eq(st->objects, st->objects_unsealed + st->objects_sealed + st->objects_deleting,
                 "objects %u != unsealed %u + sealed %u + deleting %u", st->objects,
                 st->objects_unsealed, st->objects_sealed, st->objects_deleting);
    cr_assert_eq(st->free, st->capacity - st->used);
    cr_assert_leq(st->largest_free, st->free);
}

Test(lifecycle, create_seal_get_release_delete) {
    reel_store *s = th_store_new(4 * MiB, 1024, NULL);
    expect_empty(s);
    reel_id id = th_id_random();
    const char meta[] = "some metadata";
    void *buf = NULL;
    TH_OK(reel_obj_create(s, &id, 1000, meta, sizeof meta, 0, 0, &buf));
    cr_assert_not_null(buf);
    cr_assert_eq((uintptr_t)buf % 64, 0u, "buffer not 64-byte aligned");

    /* Unsealed: invisible to readers. */
    expect_present(s, &id, 0);
    reel_view v;
    TH_RC(reel_obj_get(s, &id, 1, 0, &v), -ETIMEDOUT);
    reel_store_stats st = th_stats(s);
    cr_assert_eq(st.objects, 1u);
    cr_assert_eq(st.objects_unsealed, 1u);
    cr_assert_eq(st.objects_sealed, 0u);
    cr_assert_geq(st.used, 1000u);
    expect_state_sum(&st);

    th_fill(buf, 1000, 1);
    TH_OK(reel_obj_seal(s, &id));
    expect_present(s, &id, 1);
    st = th_stats(s);
    cr_assert_eq(st.objects_unsealed, 0u);
    cr_assert_eq(st.objects_sealed, 1u);
    cr_assert_eq(st.objects_referenced, 0u);
    expect_state_sum(&st);

    memset(&v, 0, sizeof v);
    TH_OK(reel_obj_get(s, &id, 1, 0, &v));
    cr_assert(reel_id_equal(&v.id, &id));
    cr_assert_eq(v.size, 1000u);
    cr_assert_eq((uintptr_t)v.data % 64, 0u, "view data not 64-byte aligned");
    cr_assert(th_pattern_ok(v.data, 1000, 1), "content changed after seal");
    cr_assert_eq(v.meta_size, sizeof meta);
    cr_assert_eq(memcmp(v.meta, meta, sizeof meta), 0);
    st = th_stats(s);
    cr_assert_eq(st.objects_referenced, 1u);
    TH_OK(reel_obj_release(s, &id));
    st = th_stats(s);
    cr_assert_eq(st.objects_referenced, 0u);

    TH_OK(reel_obj_delete(s, &id));
    expect_present(s, &id, 0);
    TH_RC(reel_obj_get(s, &id, 1, 0, &v), -ETIMEDOUT);
    expect_empty(s);
    TH_OK(reel_store_close(s));
}

Test(lifecycle, abort_frees_unsealed) {
    reel_store *s = th_store_new(4 * MiB, 1024, NULL);
    reel_store_stats before = th_stats(s);
    reel_id id = th_id_random();
    void *buf;
    TH_OK(reel_obj_create(s, &id, 12345, "m", 1, 0, 0, &buf));
    TH_OK(reel_obj_abort(s, &id));
    expect_present(s, &id, 0);
    reel_store_stats after = th_stats(s);
    expect_same_usage(&before, &after);
    /* The ID is free again. */
    TH_OK(reel_obj_create(s, &id, 10, NULL, 0, 0, 0, &buf));
    TH_OK(reel_obj_seal(s, &id));
    expect_present(s, &id, 1);
    TH_OK(reel_store_close(s));
}

Test(lifecycle, put_and_get) {
    reel_store *s = th_store_new(4 * MiB, 1024, NULL);
    uint8_t data[5000];
    th_fill(data, sizeof data, 99);
    reel_id id = th_id_random(), asked = id;
    TH_OK(reel_obj_put(s, &id, data, sizeof data, "meta", 4, 0, 0));
    cr_assert(reel_id_equal(&id, &asked), "put without CONTENT_ID changed the ID");
    expect_present(s, &id, 1);
    expect_content(s, &id, sizeof data, 99);
    reel_store_stats st = th_stats(s);
    cr_assert_eq(st.objects_sealed, 1u);
    cr_assert_eq(st.objects_unsealed, 0u);
    TH_OK(reel_obj_delete(s, &id));
    expect_empty(s);
    TH_OK(reel_store_close(s));
}

/* From 4 MiB a put copies on several threads, one per allowed CPU: every
 * byte lands where it belongs, for sizes that split unevenly too, and on one
 * CPU as well as on several. */
Test(lifecycle, large_puts_copy_every_byte) {
    static const uint64_t sizes[] = {4 * MiB, 9 * MiB + 123, 12 * MiB - 1};
    reel_store *s = th_store_new(40 * MiB, 1024, NULL);
    uint8_t *data = malloc(12 * MiB);
    cr_assert_not_null(data);
    cpu_set_t all, one;
    cr_assert_eq(sched_getaffinity(0, sizeof all, &all), 0);
    for (int pinned = 0; pinned < 2; pinned++) {
        if (pinned) {
            CPU_ZERO(&one);
            for (int c = 0; c < CPU_SETSIZE; c++)
                if (CPU_ISSET(c, &all)) {
                    CPU_SET(c, &one);
                    break;
                }
            cr_assert_eq(sched_setaffinity(0, sizeof one, &one), 0);
        }
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            uint8_t seed = (uint8_t)(7 + i + 10 * pinned);
            th_fill(data, sizes[i], seed);
            reel_id id = th_id_random();
            TH_OK(reel_obj_put(s, &id, data, sizes[i], NULL, 0, 0, 0));
            expect_content(s, &id, sizes[i], seed);
            TH_OK(reel_obj_delete(s, &id));
        }
    }
    cr_assert_eq(sched_setaffinity(0, sizeof all, &all), 0);
    free(data);
    expect_empty(s);
    TH_OK(reel_store_close(s));
}

Test(lifecycle, put_content_addressed_dedupes) {
    reel_store *s = th_store_new(4 * MiB, 1024, NULL);
    size_t n = 100000;
    uint8_t *data = malloc(n);
    cr_assert_not_null(data);
    th_fill(data, n, 5);
    reel_id want;
    reel_id_from_content(data, n, &want);

    reel_id id;
    memset(&id, 0, sizeof id);
    TH_OK(reel_obj_put(s, &id, data, n, NULL, 0, REEL_OBJ_CONTENT_ID, 0));
    cr_assert(reel_id_equal(&id, &want), "put with CONTENT_ID did not return the content ID");
    reel_store_stats one = th_stats(s);
    cr_assert_eq(one.objects, 1u);

    /* The same bytes again, from another buffer: stored once. */
    uint8_t *copy = malloc(n);
    cr_assert_not_null(copy);
    memcpy(copy, data, n);
    reel_id id2;
    memset(&id2, 0xff, sizeof id2);
    TH_OK(reel_obj_put(s, &id2, copy, n, NULL, 0, REEL_OBJ_CONTENT_ID, 0));
    cr_assert(reel_id_equal(&id2, &want));
    reel_store_stats two = th_stats(s);
    cr_assert_eq(two.objects, 1u, "second put of the same bytes made %u objects", two.objects);
    cr_assert_eq(two.used, one.used, "second put of the same bytes used more space");
    expect_content(s, &id, n, 5);

    /* Different bytes: another object. */
    copy[n / 2] ^= 1;
    reel_id id3;
    TH_OK(reel_obj_put(s, &id3, copy, n, NULL, 0, REEL_OBJ_CONTENT_ID, 0));
    cr_assert(!reel_id_equal(&id3, &want));
    reel_id want3;
    reel_id_from_content(copy, n, &want3);
    cr_assert(reel_id_equal(&id3, &want3));
    cr_assert_eq(th_stats(s).objects, 2u);

    TH_OK(reel_obj_delete(s, &id));
    TH_OK(reel_obj_delete(s, &id3));
    expect_empty(s);
    free(copy);
    free(data);
    TH_OK(reel_store_close(s));
}

Test(lifecycle, multi_get) {
    reel_store *s = th_store_new(4 * MiB, 1024, NULL);
    enum { N = 6 };
    reel_id ids[N];
    for (int i = 0; i < N; i++) {
        ids[i] = th_id_random();
        put_pattern(s, &ids[i], 1000u * (uint64_t)(i + 1), 100 + (uint64_t)i, 0);
    }
    /* In an order other than creation. */
    reel_id order[N];
    for (int i = 0; i < N; i++)
        order[i] = ids[(i * 5 + 2) % N];
    reel_view v[N];
    memset(v, 0, sizeof v);
    TH_OK(reel_obj_get(s, order, N, 0, v));
    for (int i = 0; i < N; i++) {
        int k = (i * 5 + 2) % N;
        cr_assert(reel_id_equal(&v[i].id, &ids[k]), "view %d is not for ids[%d]", i, k);
        cr_assert_eq(v[i].size, 1000u * (uint64_t)(k + 1));
        cr_assert(th_pattern_ok(v[i].data, v[i].size, 100 + (uint64_t)k));
        cr_assert_eq((uintptr_t)v[i].data % 64, 0u);
    }
    cr_assert_eq(th_stats(s).objects_referenced, (uint32_t)N);
    for (int i = 0; i < N; i++)
        TH_OK(reel_obj_release(s, &order[i]));
    cr_assert_eq(th_stats(s).objects_referenced, 0u);
    for (int i = 0; i < N; i++)
        TH_RC(reel_obj_release(s, &order[i]), REEL_ENOTREF);
    TH_OK(reel_store_close(s));
}

Test(lifecycle, multi_get_same_id_twice_takes_two_references) {
    reel_store *s = th_store_new(4 * MiB, 1024, NULL);
    reel_id a = th_id_random();
    put_pattern(s, &a, 64, 1, 0);
    reel_id ids[2] = {a, a};
    reel_view v[2];
    TH_OK(reel_obj_get(s, ids, 2, 0, v));
    cr_assert_eq(v[0].data, v[1].data, "two views of one object point to different data");
    reel_obj_info info;
    size_t count = 0;
    TH_OK(reel_store_objects(s, &info, 1, &count));
    cr_assert_eq(count, 1u);
    cr_assert_eq(info.refs, 2u, "refs %u after getting one object twice", info.refs);
    TH_OK(reel_obj_release(s, &a));
    TH_OK(reel_obj_release(s, &a));
    TH_RC(reel_obj_release(s, &a), REEL_ENOTREF);
    TH_OK(reel_store_close(s));
}

Test(lifecycle, get_is_all_or_nothing) {
    reel_store *s = th_store_new(4 * MiB, 1024, NULL);
    reel_id a = th_id_random(), missing = th_id_random();
    put_pattern(s, &a, 64, 1, 0);
    reel_id ids[2] = {a, missing};
    reel_view v[2];
    TH_RC(reel_obj_get(s, ids, 2, 20, v), -ETIMEDOUT);
    cr_assert_eq(th_stats(s).objects_referenced, 0u, "a failed get left a reference");
    TH_RC(reel_obj_release(s, &a), REEL_ENOTREF);
    TH_OK(reel_obj_delete(s, &a));
    expect_empty(s);
    TH_OK(reel_store_close(s));
}

Test(lifecycle, deferred_delete) {
    reel_store *s = th_store_new(4 * MiB, 1024, NULL);
    reel_store_stats empty = th_stats(s);
    reel_id a = th_id_random(), b = th_id_random();
    put_pattern(s, &a, 200000, 11, 0);
    put_pattern(s, &b, 3000, 12, 0);
    reel_view v;
    TH_OK(reel_obj_get(s, &a, 1, 0, &v));
    reel_view v2;
    TH_OK(reel_obj_get(s, &a, 1, 0, &v2)); /* two references */
    reel_store_stats held = th_stats(s);

    TH_OK(reel_obj_delete(s, &a));
    /* Hidden from new gets, still readable through the views. */
    expect_present(s, &a, 0);
    reel_view v3;
    TH_RC(reel_obj_get(s, &a, 1, 0, &v3), -ETIMEDOUT);
    cr_assert(th_pattern_ok(v.data, 200000, 11), "deleted object changed while referenced");
    reel_store_stats st = th_stats(s);
    cr_assert_eq(st.objects_deleting, 1u);
    cr_assert_eq(st.objects, 2u);
    cr_assert_eq(st.used, held.used, "space freed while the object is still referenced");
    expect_state_sum(&st);

    TH_OK(reel_obj_release(s, &a));
    cr_assert(th_pattern_ok(v2.data, 200000, 11), "freed with a reference left");
    cr_assert_eq(th_stats(s).objects_deleting, 1u);
    TH_OK(reel_obj_release(s, &a));
    st = th_stats(s);
    cr_assert_eq(st.objects_deleting, 0u);
    cr_assert_eq(st.objects, 1u);
    cr_assert_lt(st.used, held.used);
    TH_RC(reel_obj_release(s, &a), REEL_ENOTREF);

    TH_OK(reel_obj_delete(s, &b));
    reel_store_stats end = th_stats(s);
    expect_same_usage(&empty, &end);
    expect_empty(s);
    TH_OK(reel_store_close(s));
}

Test(lifecycle, delete_twice) {
    reel_store *s = th_store_new(4 * MiB, 1024, NULL);
    reel_id a = th_id_random();
    put_pattern(s, &a, 100, 1, 0);
    TH_OK(reel_obj_delete(s, &a));
    TH_RC(reel_obj_delete(s, &a), REEL_ENOTFOUND);
    TH_OK(reel_store_close(s));
}

Test(lifecycle, data_is_64_byte_aligned) {
    reel_store *s = th_store_new(8 * MiB, 1024, NULL);
    static const uint64_t sizes[] = {1,    2,   3,     7,     63,    64,     65,
                                     127,  129, 1000,  4095,  4096,  4097,   65535,
                                     1001, 333, 77777, 12345, 99999, 262145, 1};
    enum { N = sizeof sizes / sizeof sizes[0] };
    reel_id ids[N];
    for (size_t i = 0; i < N; i++) {
        ids[i] = th_id_random();
        void *buf;
        /* Metadata of odd sizes must not shift the data either. */
        uint8_t meta[77];
        th_fill(meta, sizeof meta, i);
        TH_OK(reel_obj_create(s, &ids[i], sizes[i], meta, (uint32_t)(i % 77), 0, 0, &buf));
        cr_assert_eq((uintptr_t)buf % 64, 0u, "buffer of object %zu (size %llu) misaligned", i,
                     (unsigned long long)sizes[i]);
        th_fill(buf, sizes[i], 1000 + i);
        TH_OK(reel_obj_seal(s, &ids[i]));
    }
    for (size_t i = 0; i < N; i++) {
        reel_view v;
        TH_OK(reel_obj_get(s, &ids[i], 1, 0, &v));
        cr_assert_eq((uintptr_t)v.data % 64, 0u);
        cr_assert_eq(v.size, sizes[i]);
        cr_assert(th_pattern_ok(v.data, sizes[i], 1000 + i), "object %zu was overwritten", i);
        TH_OK(reel_obj_release(s, &ids[i]));
    }
    TH_OK(reel_store_close(s));
}

Test(lifecycle, zero_size_object) {
    reel_store *s = th_store_new(1 * MiB, 64, NULL);
    reel_id a = th_id_random();
    void *buf = NULL;
    TH_OK(reel_obj_create(s, &a, 0, "m", 1, 0, 0, &buf));
    TH_OK(reel_obj_seal(s, &a));
    reel_view v;
    TH_OK(reel_obj_get(s, &a, 1, 0, &v));
    cr_assert_eq(v.size, 0u);
    cr_assert_eq(v.meta_size, 1u);
    cr_assert_eq(((const char *)v.meta)[0], 'm');
    TH_OK(reel_obj_release(s, &a));
    reel_id b = th_id_random();
    TH_OK(reel_obj_put(s, &b, NULL, 0, NULL, 0, 0, 0));
    expect_present(s, &b, 1);
    TH_OK(reel_obj_delete(s, &a));
    TH_OK(reel_obj_delete(s, &b));
    expect_empty(s);
    TH_OK(reel_store_close(s));
}

Test(lifecycle, metadata_round_trip_through_views) {
    reel_store *s = th_store_new(4 * MiB, 1024, NULL);
    reel_meta m;
    memset(&m, 0, sizeof m);
    m.kind = REEL_META_FRAME;
    m.dtype = REEL_DTYPE_U8;
    m.ndim = 3;
    m.shape[0] = 48;
    m.shape[1] = 64;
    m.shape[2] = 3;
    snprintf(m.format, sizeof m.format, "%s", "rgb24");
    m.pts_us = 41708;
    m.duration_us = 41708;
    uint8_t blob[1024];
    size_t blen;
    TH_OK(reel_meta_encode(&m, blob, sizeof blob, &blen));
    uint64_t size = 48 * 64 * 3;
    uint8_t *pix = malloc(size);
    cr_assert_not_null(pix);
    th_fill(pix, size, 3);
    reel_id id = th_id_random();
    TH_OK(reel_obj_put(s, &id, pix, size, blob, (uint32_t)blen, 0, 0));
    reel_view v;
    TH_OK(reel_obj_get(s, &id, 1, 0, &v));
    cr_assert_eq(v.meta_size, (uint32_t)blen);
    cr_assert_eq(memcmp(v.meta, blob, blen), 0);
    reel_meta out;
    TH_OK(reel_meta_decode(v.meta, v.meta_size, &out));
    cr_assert_eq(out.kind, m.kind);
    cr_assert_eq(out.ndim, 3u);
    cr_assert_eq(out.shape[1], 64u);
    cr_assert_str_eq(out.format, "rgb24");
    cr_assert_eq(out.pts_us, m.pts_us);
    cr_assert(th_pattern_ok(v.data, size, 3));
    TH_OK(reel_obj_release(s, &id));

    /* The listing carries the first bytes of the metadata too. */
    reel_obj_info info;
    size_t count;
    TH_OK(reel_store_objects(s, &info, 1, &count));
    cr_assert_eq(count, 1u);
    cr_assert_eq(info.meta_size, (uint32_t)blen);
    size_t shown = blen < REEL_OBJ_INFO_META_MAX ? blen : REEL_OBJ_INFO_META_MAX;
    cr_assert_eq(memcmp(info.meta, blob, shown), 0);
    free(pix);
    TH_OK(reel_store_close(s));
}

Test(lifecycle, metadata_limits) {
    reel_store *s = th_store_new(4 * MiB, 1024, NULL);
    uint8_t *meta = malloc(REEL_META_MAX);
    cr_assert_not_null(meta);
    th_fill(meta, REEL_META_MAX, 77);
    reel_id big = th_id_random();
    void *buf;
    TH_OK(reel_obj_create(s, &big, 100, meta, REEL_META_MAX, 0, 0, &buf));
    th_fill(buf, 100, 78);
    TH_OK(reel_obj_seal(s, &big));
    reel_id none = th_id_random();
    TH_OK(reel_obj_create(s, &none, 100, NULL, 0, 0, 0, &buf));
    TH_OK(reel_obj_seal(s, &none));
    reel_id ids[2] = {big, none};
    reel_view v[2];
    TH_OK(reel_obj_get(s, ids, 2, 0, v));
    cr_assert_eq(v[0].meta_size, REEL_META_MAX);
    cr_assert_eq(memcmp(v[0].meta, meta, REEL_META_MAX), 0);
    cr_assert(th_pattern_ok(v[0].data, 100, 78), "metadata overlaps the data");
    cr_assert_eq(v[1].meta_size, 0u);
    reel_obj_info infos[2];
    size_t count;
    TH_OK(reel_store_objects(s, infos, 2, &count));
    cr_assert_eq(count, 2u);
    for (int i = 0; i < 2; i++)
        if (reel_id_equal(&infos[i].id, &big)) {
            cr_assert_eq(infos[i].meta_size, REEL_META_MAX);
            cr_assert_eq(memcmp(infos[i].meta, meta, REEL_OBJ_INFO_META_MAX), 0);
        }
    TH_OK(reel_obj_release(s, &big));
    TH_OK(reel_obj_release(s, &none));
    free(meta);
    TH_OK(reel_store_close(s));
}

/* Four objects of 240 KiB fill a 1 MiB store but for 64 KiB: one more of the
 * same size needs exactly one eviction, so which one goes is unambiguous. */
#define EV_SIZE (240u * KiB)

static void touch(reel_store *s, const reel_id *id) {
    reel_view v;
    TH_OK(reel_obj_get(s, id, 1, 0, &v));
    TH_OK(reel_obj_release(s, id));
}

Test(lifecycle, eviction_is_lru) {
    reel_store *s = th_store_new(1 * MiB, 256, NULL);
    cr_assert_eq(th_stats(s).capacity, 1 * MiB);
    reel_id a = th_id_n(1, 'A'), b = th_id_n(1, 'B'), c = th_id_n(1, 'C'), d = th_id_n(1, 'D');
    put_pattern(s, &a, EV_SIZE, 'A', REEL_OBJ_EVICTABLE);
    put_pattern(s, &b, EV_SIZE, 'B', REEL_OBJ_EVICTABLE);
    put_pattern(s, &c, EV_SIZE, 'C', REEL_OBJ_EVICTABLE);
    put_pattern(s, &d, EV_SIZE, 'D', REEL_OBJ_EVICTABLE);
    reel_store_stats st = th_stats(s);
    cr_assert_eq(st.objects_evictable, 4u);
    cr_assert_lt(st.free, (uint64_t)EV_SIZE);
    touch(s, &a); /* recency, oldest first: B C D A */

    reel_id e = th_id_n(1, 'E');
    put_pattern(s, &e, EV_SIZE, 'E', REEL_OBJ_EVICTABLE); /* evicts B */
    expect_present(s, &b, 0);
    expect_present(s, &a, 1);
    expect_present(s, &c, 1);
    expect_present(s, &d, 1);
    expect_present(s, &e, 1);
    st = th_stats(s);
    cr_assert_eq(st.evictions, 1u);
    cr_assert_geq(st.evicted_bytes, (uint64_t)EV_SIZE);
    cr_assert_eq(st.objects, 4u);
    reel_view v;
    TH_RC(reel_obj_get(s, &b, 1, 0, &v), -ETIMEDOUT);

    touch(s, &d); /* C A E D */
    reel_id f = th_id_n(1, 'F');
    put_pattern(s, &f, EV_SIZE, 'F', REEL_OBJ_EVICTABLE); /* evicts C */
    expect_present(s, &c, 0);
    expect_present(s, &a, 1);
    expect_present(s, &d, 1);
    expect_present(s, &e, 1);
    expect_present(s, &f, 1);

    touch(s, &a); /* E D F A */
    reel_id g = th_id_n(1, 'G');
    put_pattern(s, &g, EV_SIZE, 'G', 0); /* evicts E */
    expect_present(s, &e, 0);
    st = th_stats(s);
    cr_assert_eq(st.evictions, 3u);
    cr_assert_geq(st.evicted_bytes, 3ull * EV_SIZE);

    /* Survivors are intact. */
    expect_content(s, &a, EV_SIZE, 'A');
    expect_content(s, &d, EV_SIZE, 'D');
    expect_content(s, &f, EV_SIZE, 'F');
    expect_content(s, &g, EV_SIZE, 'G');
    TH_OK(reel_store_close(s));
}

Test(lifecycle, referenced_evictable_objects_are_not_evicted) {
    reel_store *s = th_store_new(1 * MiB, 256, NULL);
    reel_id ids[4];
    reel_view v[4];
    for (int i = 0; i < 4; i++) {
        ids[i] = th_id_n(2, (uint64_t)i);
        put_pattern(s, &ids[i], EV_SIZE, (uint64_t)i, REEL_OBJ_EVICTABLE);
    }
    TH_OK(reel_obj_get(s, ids, 4, 0, v));
    cr_assert_eq(th_stats(s).objects_evictable, 0u);
    reel_id e = th_id_n(2, 99);
    void *buf;
    TH_RC(reel_obj_create(s, &e, EV_SIZE, NULL, 0, 0, 0, &buf), REEL_EFULL);
    TH_RC(reel_obj_create(s, &e, EV_SIZE, NULL, 0, 0, 30, &buf), REEL_EFULL);
    for (int i = 0; i < 4; i++)
        cr_assert(th_pattern_ok(v[i].data, EV_SIZE, (uint64_t)i));
    cr_assert_eq(th_stats(s).evictions, 0u);
    /* Released, the oldest goes. */
    for (int i = 0; i < 4; i++)
        TH_OK(reel_obj_release(s, &ids[i]));
    TH_OK(reel_obj_create(s, &e, EV_SIZE, NULL, 0, 0, 0, &buf));
    TH_OK(reel_obj_seal(s, &e));
    cr_assert_eq(th_stats(s).evictions, 1u);
    TH_OK(reel_store_close(s));
}

Test(lifecycle, non_evictable_objects_are_never_evicted) {
    reel_store *s = th_store_new(1 * MiB, 256, NULL);
    reel_id a = th_id_n(3, 'A'), b = th_id_n(3, 'B'), c = th_id_n(3, 'C'), d = th_id_n(3, 'D');
    put_pattern(s, &a, EV_SIZE, 'A', 0);
    put_pattern(s, &b, EV_SIZE, 'B', REEL_OBJ_EVICTABLE);
    put_pattern(s, &c, EV_SIZE, 'C', 0);
    put_pattern(s, &d, EV_SIZE, 'D', 0);
    touch(s, &b); /* b is the most recently used, yet the only one that may go */
    cr_assert_eq(th_stats(s).objects_evictable, 1u);
    reel_id e = th_id_n(3, 'E');
    put_pattern(s, &e, EV_SIZE, 'E', 0);
    expect_present(s, &b, 0);
    expect_present(s, &a, 1);
    expect_present(s, &c, 1);
    expect_present(s, &d, 1);
    cr_assert_eq(th_stats(s).evictions, 1u);

    /* Nothing evictable is left: the store is full. */
    reel_id f = th_id_n(3, 'F');
    void *buf;
    TH_RC(reel_obj_create(s, &f, EV_SIZE, NULL, 0, REEL_OBJ_EVICTABLE, 0, &buf), REEL_EFULL);
    TH_RC(reel_obj_create(s, &f, EV_SIZE, NULL, 0, 0, 50, &buf), REEL_EFULL);
    expect_content(s, &a, EV_SIZE, 'A');
    expect_content(s, &c, EV_SIZE, 'C');
    expect_content(s, &d, EV_SIZE, 'D');
    expect_content(s, &e, EV_SIZE, 'E');
    reel_store_stats st = th_stats(s);
    cr_assert_eq(st.evictions, 1u);
    cr_assert_eq(st.objects, 4u);
    cr_assert_eq(st.objects_evictable, 0u);
    /* Unsealed objects are not evictable either, even when made with the flag. */
    TH_OK(reel_obj_delete(s, &e));
    reel_id u = th_id_n(3, 'U');
    TH_OK(reel_obj_create(s, &u, EV_SIZE, NULL, 0, REEL_OBJ_EVICTABLE, 0, &buf));
    TH_RC(reel_obj_create(s, &f, EV_SIZE, NULL, 0, 0, 0, &buf), REEL_EFULL);
    TH_OK(reel_obj_abort(s, &u));
    TH_OK(reel_store_close(s));
}

Test(lifecycle, stats_fields) {
    reel_store_options opts = {0};
    opts.capacity = 1000000; /* rounded up to 4 KiB */
    opts.max_objects = 500;
    opts.max_clients = 7;
    opts.max_refs_per_client = 64;
    opts.flags = REEL_STORE_NO_PREFAULT;
    reel_store *s = th_store_new_opts(&opts, NULL);
    reel_store_stats st = th_stats(s);
    cr_assert_eq(st.capacity, 1003520u, "capacity %llu, expected 1000000 rounded up to 4 KiB",
                 (unsigned long long)st.capacity);
    cr_assert_geq(st.max_objects, 500u);
    cr_assert_geq(st.max_clients, 7u);
    cr_assert_eq(st.clients_alive, 1u);
    cr_assert_eq(st.clients_dead, 0u);
    cr_assert_eq(st.evictions, 0u);
    cr_assert_eq(st.evicted_bytes, 0u);
    cr_assert_eq(st.reclaims, 0u);
    cr_assert_eq(st.recoveries, 0u);
    cr_assert_geq(st.free_blocks, 1u);
    expect_empty(s);

    reel_id un = th_id_random(), se = th_id_random(), ev = th_id_random(), rf = th_id_random(),
            dl = th_id_random();
    void *buf;
    TH_OK(reel_obj_create(s, &un, 1000, NULL, 0, 0, 0, &buf));
    put_pattern(s, &se, 2000, 1, 0);
    put_pattern(s, &ev, 3000, 2, REEL_OBJ_EVICTABLE);
    put_pattern(s, &rf, 4000, 3, REEL_OBJ_EVICTABLE);
    put_pattern(s, &dl, 5000, 4, 0);
    reel_view vr, vd;
    TH_OK(reel_obj_get(s, &rf, 1, 0, &vr));
    TH_OK(reel_obj_get(s, &dl, 1, 0, &vd));
    TH_OK(reel_obj_delete(s, &dl));
    st = th_stats(s);
    expect_state_sum(&st);
    cr_assert_eq(st.objects, 5u);
    cr_assert_eq(st.objects_unsealed, 1u);
    cr_assert_eq(st.objects_sealed, 3u);
    cr_assert_eq(st.objects_deleting, 1u);
    cr_assert_eq(st.objects_evictable, 1u,
                 "evictable %u: only ev is sealed, unreferenced and "
                 "evictable",
                 st.objects_evictable);
    cr_assert_geq(st.objects_referenced, 1u);
    cr_assert_leq(st.objects_referenced, 2u);
    cr_assert_geq(st.used, 15000u);
    cr_assert_leq(st.used, 15000u + 5 * 4096u, "used %llu for 15000 bytes in 5 objects",
                  (unsigned long long)st.used);
    TH_OK(reel_obj_release(s, &rf));
    TH_OK(reel_obj_release(s, &dl));
    st = th_stats(s);
    cr_assert_eq(st.objects, 4u);
    cr_assert_eq(st.objects_deleting, 0u);
    cr_assert_eq(st.objects_evictable, 2u);
    cr_assert_eq(st.objects_referenced, 0u);
    TH_OK(reel_obj_abort(s, &un));
    TH_OK(reel_obj_delete(s, &se));
    TH_OK(reel_obj_delete(s, &ev));
    TH_OK(reel_obj_delete(s, &rf));
    expect_empty(s);
    TH_OK(reel_store_close(s));
}

/* peak_used is the high mark of used since creation: deletes do not lower it,
 * a smaller load after them does not move it, and every handle (and a later
 * open) reads the same, since it lives in the segment. */
Test(lifecycle, peak_used_stays_at_the_high_mark) {
    const char *path;
    reel_store *s = th_store_new(4 * MiB, 64, &path);
    reel_store_stats st = th_stats(s);
    cr_assert_eq(st.peak_used, 0u, "peak %llu in a new store", (unsigned long long)st.peak_used);
    reel_id a = th_id_random(), b = th_id_random(), c = th_id_random();
    put_pattern(s, &a, 300 * KiB, 1, 0);
    st = th_stats(s);
    cr_assert_eq(st.peak_used, st.used, "peak %llu, used %llu after one put",
                 (unsigned long long)st.peak_used, (unsigned long long)st.used);
    put_pattern(s, &b, 700 * KiB, 2, 0);
    reel_store_stats high = th_stats(s);
    cr_assert_geq(high.used, 1000u * KiB);
    cr_assert_eq(high.peak_used, high.used);

    TH_OK(reel_obj_delete(s, &a));
    TH_OK(reel_obj_delete(s, &b));
    put_pattern(s, &c, 100 * KiB, 3, 0);
    st = th_stats(s);
    cr_assert_lt(st.used, high.used);
    cr_assert_eq(st.peak_used, high.used, "peak %llu after the deletes, the high mark was %llu",
                 (unsigned long long)st.peak_used, (unsigned long long)high.used);
    TH_OK(reel_obj_delete(s, &c));
    expect_empty(s);
    st = th_stats(s);
    cr_assert_eq(st.peak_used, high.used, "peak %llu in the emptied store, the high mark was %llu",
                 (unsigned long long)st.peak_used, (unsigned long long)high.used);

    reel_store *other;
    TH_OK(reel_store_open(path, 0, &other));
    st = th_stats(other);
    cr_assert_eq(st.peak_used, high.used, "a second handle reads peak %llu, not %llu",
                 (unsigned long long)st.peak_used, (unsigned long long)high.used);
    TH_OK(reel_store_close(other));
    TH_OK(reel_store_close(s));
    TH_OK(reel_store_open(path, 0, &s));
    st = th_stats(s);
    cr_assert_eq(st.peak_used, high.used, "after a close and open, peak %llu, not %llu",
                 (unsigned long long)st.peak_used, (unsigned long long)high.used);
    TH_OK(reel_store_close(s));
}

Test(lifecycle, stats_defaults) {
    reel_store_options opts = {0};
    opts.flags = REEL_STORE_NO_PREFAULT;
    reel_store *s = th_store_new_opts(&opts, NULL);
    reel_store_stats st = th_stats(s);
    cr_assert_eq(st.capacity, 256ull * MiB);
    cr_assert_eq(st.max_objects, 65536u);
    cr_assert_eq(st.max_clients, 128u);
    TH_OK(reel_store_close(s));
}

Test(lifecycle, prefaulted_store_works) {
    reel_store_options opts = {0};
    opts.capacity = 2 * MiB;
    opts.max_objects = 64;
    reel_store *s = th_store_new_opts(&opts, NULL);
    reel_id a = th_id_random();
    put_pattern(s, &a, MiB, 9, 0);
    expect_content(s, &a, MiB, 9);
    TH_OK(reel_store_close(s));
}

Test(lifecycle, fragmentation_and_coalescing) {
    reel_store *s = th_store_new(1 * MiB, 256, NULL);
    reel_store_stats empty = th_stats(s);
    enum { N = 16 };
    reel_id ids[N];
    for (int i = 0; i < N; i++) {
        ids[i] = th_id_n(4, (uint64_t)i);
        put_pattern(s, &ids[i], 32 * KiB, (uint64_t)i, 0);
    }
    for (int i = 0; i < N; i += 2)
        TH_OK(reel_obj_delete(s, &ids[i]));
    reel_store_stats st = th_stats(s);
    cr_assert_geq(st.free_blocks, 2u);
    cr_assert_lt(st.largest_free, st.free);
    for (int i = 1; i < N; i += 2)
        TH_OK(reel_obj_delete(s, &ids[i]));
    st = th_stats(s);
    expect_same_usage(&empty, &st);
    /* Freed blocks merged again: one object of the whole capacity fits. */
    reel_id big = th_id_random();
    void *buf;
    TH_OK(reel_obj_create(s, &big, st.capacity, NULL, 0, 0, 0, &buf));
    TH_OK(reel_obj_abort(s, &big));
    TH_OK(reel_store_close(s));
}

Test(lifecycle, objects_listing) {
    reel_store *s = th_store_new(4 * MiB, 1024, NULL);
    uint64_t t0 = th_realtime_ns();
    reel_id sealed = th_id_n(5, 1), unsealed = th_id_n(5, 2), deleting = th_id_n(5, 3);
    put_pattern(s, &sealed, 111, 1, REEL_OBJ_EVICTABLE);
    void *buf;
    TH_OK(reel_obj_create(s, &unsealed, 222, "ab", 2, 0, 0, &buf));
    put_pattern(s, &deleting, 333, 3, 0);
    reel_view v;
    TH_OK(reel_obj_get(s, &deleting, 1, 0, &v));
    TH_OK(reel_obj_delete(s, &deleting));
    uint64_t t1 = th_realtime_ns();

    reel_obj_info info[8];
    memset(info, 0, sizeof info);
    size_t count = 0;
    TH_OK(reel_store_objects(s, info, 8, &count));
    cr_assert_eq(count, 3u);
    int seen = 0;
    for (size_t i = 0; i < count; i++) {
        cr_assert_eq(info[i].creator_pid, getpid());
        cr_assert_geq(info[i].create_ns + 1000000000ull, t0, "create_ns before the test began");
        cr_assert_leq(info[i].create_ns, t1 + 1000000000ull, "create_ns in the future");
        if (reel_id_equal(&info[i].id, &sealed)) {
            seen |= 1;
            cr_assert_eq(info[i].state, (uint32_t)REEL_OBJ_SEALED);
            cr_assert_eq(info[i].size, 111u);
            cr_assert_eq(info[i].refs, 0u);
            cr_assert_eq(info[i].flags, REEL_OBJ_EVICTABLE);
            cr_assert_eq(info[i].meta_size, 0u);
        } else if (reel_id_equal(&info[i].id, &unsealed)) {
            seen |= 2;
            cr_assert_eq(info[i].state, (uint32_t)REEL_OBJ_UNSEALED);
            cr_assert_eq(info[i].size, 222u);
            cr_assert_eq(info[i].flags, 0u);
            cr_assert_eq(info[i].meta_size, 2u);
            cr_assert_eq(memcmp(info[i].meta, "ab", 2), 0);
        } else if (reel_id_equal(&info[i].id, &deleting)) {
            seen |= 4;
            cr_assert_eq(info[i].state, (uint32_t)REEL_OBJ_DELETING);
            cr_assert_eq(info[i].size, 333u);
            cr_assert_eq(info[i].refs, 1u);
        }
    }
    cr_assert_eq(seen, 7, "listing misses objects (seen mask %d)", seen);

    /* A smaller array: count still says how many there are. */
    reel_obj_info one[2];
    memset(one, 0x5c, sizeof one);
    count = 0;
    TH_OK(reel_store_objects(s, one, 1, &count));
    cr_assert_eq(count, 3u);
    uint8_t pattern[sizeof one[1]];
    memset(pattern, 0x5c, sizeof pattern);
    cr_assert_eq(memcmp(&one[1], pattern, sizeof pattern), 0, "listing wrote past cap");
    count = 99;
    TH_OK(reel_store_objects(s, one, 0, &count));
    cr_assert_eq(count, 3u);

    TH_OK(reel_obj_release(s, &deleting));
    TH_OK(reel_store_objects(s, info, 8, &count));
    cr_assert_eq(count, 2u);
    TH_OK(reel_store_close(s));
}

Test(lifecycle, clients_listing) {
    const char *path;
    reel_store *s = th_store_new(4 * MiB, 1024, &path);
    uint64_t t0 = th_realtime_ns();
    reel_client_info ci[4];
    size_t count = 0;
    TH_OK(reel_store_clients(s, ci, 4, &count));
    cr_assert_eq(count, 1u);
    cr_assert_eq(ci[0].pid, getpid());
    cr_assert_eq(ci[0].alive, 1);
    cr_assert_eq(ci[0].refs, 0u);
    cr_assert_eq(ci[0].unsealed, 0u);
    cr_assert_leq(ci[0].attach_ns, t0 + 1000000000ull);
    cr_assert_geq(ci[0].attach_ns + 60000000000ull, t0, "attach_ns far in the past");
    uint32_t first_slot = ci[0].slot;

    /* A second handle in the same process is a second client. */
    reel_store *s2 = NULL;
    TH_OK(reel_store_open(path, 0, &s2));
    reel_id a = th_id_random(), b = th_id_random(), u = th_id_random();
    put_pattern(s, &a, 100, 1, 0);
    put_pattern(s, &b, 100, 2, 0);
    reel_view v;
    TH_OK(reel_obj_get(s2, &a, 1, 0, &v));
    TH_OK(reel_obj_get(s2, &a, 1, 0, &v));
    TH_OK(reel_obj_get(s2, &b, 1, 0, &v));
    void *buf;
    TH_OK(reel_obj_create(s2, &u, 100, NULL, 0, 0, 0, &buf));
    TH_OK(reel_store_clients(s, ci, 4, &count));
    cr_assert_eq(count, 2u);
    int found = 0;
    for (size_t i = 0; i < count; i++) {
        cr_assert_eq(ci[i].pid, getpid());
        cr_assert_eq(ci[i].alive, 1);
        if (ci[i].slot == first_slot) {
            cr_assert_eq(ci[i].refs, 0u);
            cr_assert_eq(ci[i].unsealed, 0u);
        } else {
            found = 1;
            cr_assert_eq(ci[i].refs, 3u, "refs %u after three gets", ci[i].refs);
            cr_assert_eq(ci[i].unsealed, 1u);
        }
    }
    cr_assert(found);
    cr_assert_eq(th_stats(s).clients_alive, 2u);

    /* An observer takes no client slot. */
    reel_store *obs = NULL;
    TH_OK(reel_store_open(path, REEL_OPEN_OBSERVER, &obs));
    TH_OK(reel_store_clients(obs, ci, 4, &count));
    cr_assert_eq(count, 2u);
    cr_assert_eq(th_stats(obs).clients_alive, 2u);

    /* cap smaller than the count. */
    reel_client_info small[1];
    TH_OK(reel_store_clients(s, small, 1, &count));
    cr_assert_eq(count, 2u);

    /* Closing the second handle drops its references and its unsealed object. */
    TH_OK(reel_store_close(s2));
    TH_OK(reel_store_clients(s, ci, 4, &count));
    cr_assert_eq(count, 1u);
    cr_assert_eq(ci[0].slot, first_slot);
    reel_store_stats st = th_stats(s);
    cr_assert_eq(st.objects_referenced, 0u);
    cr_assert_eq(st.objects_unsealed, 0u);
    cr_assert_eq(st.objects, 2u);
    cr_assert_eq(st.clients_alive, 1u);
    TH_OK(reel_store_close(obs));
    TH_OK(reel_store_close(s));
}

Test(lifecycle, second_handle_sees_sealed_objects) {
    const char *path;
    reel_store *s = th_store_new(4 * MiB, 1024, &path);
    reel_store *s2 = NULL;
    TH_OK(reel_store_open(path, 0, &s2));
    reel_id a = th_id_random();
    void *buf;
    TH_OK(reel_obj_create(s, &a, 4096, NULL, 0, 0, 0, &buf));
    th_fill(buf, 4096, 8);
    int present = -1;
    TH_OK(reel_obj_contains(s2, &a, &present));
    cr_assert_eq(present, 0);
    TH_OK(reel_obj_seal(s, &a));
    expect_content(s2, &a, 4096, 8);
    /* Either client may delete a sealed object. */
    TH_OK(reel_obj_delete(s2, &a));
    expect_present(s, &a, 0);
    TH_OK(reel_store_close(s2));
    TH_OK(reel_store_close(s));
}

Test(lifecycle, store_persists_after_close) {
    const char *path;
    reel_store *s = th_store_new(4 * MiB, 1024, &path);
    cr_assert_str_eq(reel_store_path(s), path);
    reel_id a = th_id_random();
    put_pattern(s, &a, 70000, 21, 0);
    reel_store_stats before = th_stats(s);
    TH_OK(reel_store_close(s));
    TH_OK(reel_store_open(path, 0, &s));
    expect_content(s, &a, 70000, 21);
    reel_store_stats after = th_stats(s);
    expect_same_usage(&before, &after);
    TH_OK(reel_store_close(s));
    TH_OK(reel_store_close(NULL));
}

Test(lifecycle, many_objects_reuse_space) {
    reel_store *s = th_store_new(256 * KiB, 64, NULL);
    reel_store_stats empty = th_stats(s);
    /* Far more data than the capacity goes through the store. */
    for (uint64_t i = 0; i < 2000; i++) {
        reel_id id = th_id_n(6, i);
        uint64_t size = 1 + (i * 7919) % (60 * KiB);
        put_pattern(s, &id, size, i, 0);
        if (i % 50 == 0)
            expect_content(s, &id, size, i);
        TH_OK(reel_obj_delete(s, &id));
    }
    reel_store_stats st = th_stats(s);
    expect_same_usage(&empty, &st);
    TH_OK(reel_store_close(s));
}
