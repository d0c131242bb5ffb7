/* Object IDs: random, derived, content-addressed, hex. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <xxhash.h>

#include "helpers.h"

TestSuite(ids, .init = th_init, .fini = th_fini, .timeout = 60);

static int id_cmp(const void *a, const void *b) {
    return memcmp(a, b, sizeof(reel_id));
}

static int id_is_zero(const reel_id *id) {
    static const reel_id zero;
    return memcmp(id, &zero, sizeof zero) == 0;
}

Test(ids, random_ids_differ) {
    enum { N = 4096 };
    reel_id *ids = calloc(N, sizeof *ids);
    cr_assert_not_null(ids);
    for (size_t i = 0; i < N; i++) {
        TH_OK(reel_id_random(&ids[i]));
        cr_assert(!id_is_zero(&ids[i]), "random ID %zu is all zero", i);
    }
    qsort(ids, N, sizeof *ids, id_cmp);
    for (size_t i = 1; i < N; i++)
        cr_assert_neq(memcmp(&ids[i - 1], &ids[i], sizeof(reel_id)), 0,
                      "two random IDs out of %d are equal", N);
    free(ids);
}

Test(ids, equal) {
    reel_id a = th_id_random();
    reel_id b = a;
    cr_assert_eq(reel_id_equal(&a, &b), 1);
    cr_assert_eq(reel_id_equal(&a, &a), 1);
    for (int i = 0; i < 16; i++) {
        b = a;
        b.bytes[i] ^= 0x01;
        cr_assert_eq(reel_id_equal(&a, &b), 0, "IDs differing in byte %d compare equal", i);
        b.bytes[i] ^= 0x81;
        cr_assert_eq(reel_id_equal(&a, &b), 0, "IDs differing in byte %d compare equal", i);
    }
}

Test(ids, derive_is_deterministic) {
    reel_id parent = th_id_random();
    for (uint64_t idx = 0; idx < 100; idx++) {
        reel_id a, b;
        memset(&a, 0x11, sizeof a);
        memset(&b, 0x22, sizeof b);
        reel_id_derive(&parent, idx, &a);
        reel_id_derive(&parent, idx, &b);
        cr_assert(reel_id_equal(&a, &b), "derive(parent, %llu) differs between calls",
                  (unsigned long long)idx);
    }
    /* A copy of the parent (as a retried task would have) derives the same IDs. */
    reel_id copy;
    memcpy(&copy, &parent, sizeof copy);
    reel_id a, b;
    reel_id_derive(&parent, 7, &a);
    reel_id_derive(&copy, 7, &b);
    cr_assert(reel_id_equal(&a, &b));
}

Test(ids, derive_is_index_and_parent_sensitive) {
    enum { N = 2048 };
    reel_id parent = th_id_random();
    reel_id *ids = calloc(N + 8, sizeof *ids);
    cr_assert_not_null(ids);
    size_t n = 0;
    for (uint64_t idx = 0; idx < N - 4; idx++)
        reel_id_derive(&parent, idx, &ids[n++]);
    /* Indices that differ only in high bits. */
    reel_id_derive(&parent, 1ull << 32, &ids[n++]);
    reel_id_derive(&parent, 1ull << 63, &ids[n++]);
    reel_id_derive(&parent, UINT64_MAX, &ids[n++]);
    /* The parent itself must not be one of its derived IDs. */
    ids[n++] = parent;
    /* Another parent (one bit flipped) derives other IDs. */
    reel_id other = parent;
    other.bytes[15] ^= 0x80;
    reel_id_derive(&other, 0, &ids[n++]);
    reel_id_derive(&other, 1, &ids[n++]);
    qsort(ids, n, sizeof *ids, id_cmp);
    for (size_t i = 1; i < n; i++)
        cr_assert_neq(memcmp(&ids[i - 1], &ids[i], sizeof(reel_id)), 0,
                      "two derived IDs (or a derived ID and its parent) are equal");
    free(ids);
}

Test(ids, derive_differs_for_zero_parent) {
    reel_id zero;
    memset(&zero, 0, sizeof zero);
    reel_id a, b;
    reel_id_derive(&zero, 0, &a);
    reel_id_derive(&zero, 1, &b);
    cr_assert(!reel_id_equal(&a, &b));
    cr_assert(!id_is_zero(&a), "derive(0, 0) gave the all-zero ID");
}

/* The header says "out = XXH3-128 of the size bytes" without naming a byte
 * order; the test expects xxHash's canonical (big-endian) form,
 * XXH128_canonicalFromHash(). */
static void expect_content_id(const void *data, size_t size) {
    reel_id got;
    memset(&got, 0x5a, sizeof got);
    reel_id_from_content(data, size, &got);
    XXH128_canonical_t canon;
    XXH128_canonicalFromHash(&canon, XXH3_128bits(data, size));
    char hgot[REEL_ID_HEX_LEN + 1], hwant[REEL_ID_HEX_LEN + 1];
    reel_id want;
    memcpy(want.bytes, canon.digest, 16);
    reel_id_to_hex(&got, hgot);
    reel_id_to_hex(&want, hwant);
    cr_assert_eq(memcmp(got.bytes, canon.digest, 16), 0,
                 "content ID of %zu bytes: got %s, want XXH3-128 canonical %s", size, hgot, hwant);
}

Test(ids, content_id_is_xxh3_128) {
    static const size_t sizes[] = {0,   1,   2,   3,   4,   8,   9,    16,   17,   64,   128,
                                   129, 239, 240, 241, 255, 256, 1000, 1024, 4096, 65537};
    uint8_t *buf = malloc(65537);
    cr_assert_not_null(buf);
    th_fill(buf, 65537, 42);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        expect_content_id(buf, sizes[i]);
    /* Large input (XXH3's long-input path, several stripes and blocks). */
    size_t big = (size_t)3 << 20;
    uint8_t *large = malloc(big);
    cr_assert_not_null(large);
    th_fill(large, big, 7);
    expect_content_id(large, big);
    free(large);
    free(buf);
}

Test(ids, content_id_golden_empty_and_abc) {
    /* Independent of the byte order question, the same content gives the same
     * ID and different content a different one. */
    reel_id a, b, c;
    reel_id_from_content("abc", 3, &a);
    reel_id_from_content("abc", 3, &b);
    reel_id_from_content("abd", 3, &c);
    cr_assert(reel_id_equal(&a, &b));
    cr_assert(!reel_id_equal(&a, &c));
    reel_id e1, e2;
    reel_id_from_content(NULL, 0, &e1);
    reel_id_from_content("", 0, &e2);
    cr_assert(reel_id_equal(&e1, &e2), "content ID of 0 bytes depends on the pointer");
    expect_content_id("abc", 3);
}

Test(ids, hex_known_vector) {
    reel_id id;
    for (int i = 0; i < 16; i++)
        id.bytes[i] = (uint8_t)(i * 0x11 ^ 0x0f);
    char hex[REEL_ID_HEX_LEN + 1];
    memset(hex, 'Z', sizeof hex);
    reel_id_to_hex(&id, hex);
    char want[REEL_ID_HEX_LEN + 1];
    for (int i = 0; i < 16; i++)
        snprintf(want + 2 * i, 3, "%02x", id.bytes[i]);
    cr_assert_str_eq(hex, want);
    cr_assert_eq(hex[REEL_ID_HEX_LEN], '\0');

    reel_id ff;
    memset(&ff, 0xff, sizeof ff);
    reel_id_to_hex(&ff, hex);
    cr_assert_str_eq(hex, "ffffffffffffffffffffffffffffffff");
    reel_id seq;
    for (int i = 0; i < 16; i++)
        seq.bytes[i] = (uint8_t)i;
    reel_id_to_hex(&seq, hex);
    cr_assert_str_eq(hex, "000102030405060708090a0b0c0d0e0f");
}

Test(ids, hex_round_trip) {
    for (int k = 0; k < 1000; k++) {
        reel_id id = th_id_random(), back;
        char hex[REEL_ID_HEX_LEN + 1];
        reel_id_to_hex(&id, hex);
        cr_assert_eq(strlen(hex), (size_t)REEL_ID_HEX_LEN);
        for (int i = 0; i < REEL_ID_HEX_LEN; i++)
            cr_assert((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f'),
                      "hex digit %d of %s is not lower-case hex", i, hex);
        memset(&back, 0, sizeof back);
        TH_OK(reel_id_from_hex(hex, &back));
        cr_assert(reel_id_equal(&id, &back), "hex round trip of %s changed the ID", hex);
    }
}

Test(ids, hex_accepts_upper_case) {
    reel_id id = th_id_random(), back;
    char hex[REEL_ID_HEX_LEN + 1];
    reel_id_to_hex(&id, hex);
    for (int i = 0; i < REEL_ID_HEX_LEN; i++)
        if (hex[i] >= 'a' && hex[i] <= 'f')
            hex[i] = (char)(hex[i] - 'a' + 'A');
    TH_OK(reel_id_from_hex(hex, &back));
    cr_assert(reel_id_equal(&id, &back));
    TH_OK(reel_id_from_hex("ABCDEFabcdef0123456789ABCDEFabcd", &back));
    cr_assert_eq(back.bytes[0], 0xab);
    cr_assert_eq(back.bytes[15], 0xcd);
}

static void expect_bad_hex(const char *hex, const char *what) {
    reel_id out, before;
    memset(&out, 0x77, sizeof out);
    before = out;
    int rc = reel_id_from_hex(hex, &out);
    char buf[512];
    cr_assert_eq(rc, -EINVAL, "from_hex(%s) -> %s, expected -EINVAL", what,
                 th_rcstr(rc, buf, sizeof buf));
    cr_assert_eq(memcmp(&out, &before, sizeof out), 0, "from_hex(%s) failed but touched out", what);
}

Test(ids, bad_hex_lengths) {
    const char *good = "000102030405060708090a0b0c0d0e0f";
    char buf[80];
    expect_bad_hex("", "empty");
    for (size_t len = 1; len < REEL_ID_HEX_LEN; len++) {
        memcpy(buf, good, len);
        buf[len] = '\0';
        expect_bad_hex(buf, "too short");
    }
    snprintf(buf, sizeof buf, "%s0", good);
    expect_bad_hex(buf, "33 digits");
    snprintf(buf, sizeof buf, "%s00", good);
    expect_bad_hex(buf, "34 digits");
    snprintf(buf, sizeof buf, "%s%s", good, good);
    expect_bad_hex(buf, "64 digits");
    snprintf(buf, sizeof buf, "%s\n", good);
    expect_bad_hex(buf, "trailing newline");
    snprintf(buf, sizeof buf, "%s ", good);
    expect_bad_hex(buf, "trailing space");
    snprintf(buf, sizeof buf, " %s", good);
    expect_bad_hex(buf, "leading space");
    snprintf(buf, sizeof buf, "0x%s", good + 2);
    expect_bad_hex(buf, "0x prefix");
}

Test(ids, bad_hex_characters) {
    const char *good = "000102030405060708090a0b0c0d0e0f";
    static const char bad[] = {'g', 'G', 'x', ' ',  '-',        '+',       ':',
                               '/', '@', '`', '\t', (char)0xff, (char)0x80};
    char buf[REEL_ID_HEX_LEN + 1];
    for (size_t b = 0; b < sizeof bad; b++)
        for (int pos = 0; pos < REEL_ID_HEX_LEN; pos++) {
            memcpy(buf, good, sizeof buf);
            buf[pos] = bad[b];
            expect_bad_hex(buf, "non-hex character");
        }
}

Test(ids, bad_hex_embedded_nul) {
    /* A NUL inside the 32 digits makes it a short string. */
    char buf[REEL_ID_HEX_LEN + 1];
    memcpy(buf, "000102030405060708090a0b0c0d0e0f", sizeof buf);
    buf[16] = '\0';
    expect_bad_hex(buf, "embedded NUL");
}

/* The header says "-EINVAL for anything else"; a NULL string is taken to be
 * part of "anything else". */
Test(ids, bad_hex_null) {
    reel_id out;
    memset(&out, 0x33, sizeof out);
    TH_RC(reel_id_from_hex(NULL, &out), -EINVAL);
}
