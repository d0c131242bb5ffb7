/*
 * Object metadata: reel_meta_encode()/reel_meta_decode().
 *
 * The header says the encoding is a msgpack map without naming its keys. To
 * build blobs with one field out of range, this file carries a small msgpack
 * reader and writer: it encodes two metas that differ in one field, finds the
 * map entry whose value differs, rewrites that value and re-serializes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "helpers.h"

TestSuite(meta, .init = th_init, .fini = th_fini, .timeout = 60);

/* ---- a minimal msgpack tree ------------------------------------------------------ */

enum { MP_NIL, MP_BOOL, MP_UINT, MP_INT, MP_FLOAT, MP_STR, MP_BIN, MP_ARR, MP_MAP, MP_EXT };

typedef struct mp_node {
    int type;
    uint64_t u; /* MP_UINT, MP_BOOL */
    int64_t i;  /* MP_INT (negative) */
    double f;
    int f32;
    uint8_t *ptr; /* MP_STR, MP_BIN, MP_EXT payload (owned copy) */
    uint32_t len;
    int8_t ext_type;
    uint32_t n;            /* MP_ARR: items; MP_MAP: pairs */
    struct mp_node *items; /* MP_ARR: n; MP_MAP: 2n (key, value, ...) */
} mp_node;

static void mp_free(mp_node *nd) {
    if (nd->type == MP_ARR || nd->type == MP_MAP) {
        uint32_t cnt = nd->type == MP_MAP ? 2 * nd->n : nd->n;
        for (uint32_t k = 0; k < cnt; k++)
            mp_free(&nd->items[k]);
        free(nd->items);
    }
    free(nd->ptr);
    memset(nd, 0, sizeof *nd);
}

static uint64_t mp_be(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int k = 0; k < n; k++)
        v = v << 8 | p[k];
    return v;
}

/* Returns 0 or -1 (malformed or truncated). */
static int mp_parse(const uint8_t **pp, const uint8_t *end, mp_node *out, int depth) {
    const uint8_t *p = *pp;
    memset(out, 0, sizeof *out);
    if (depth > 64 || p >= end)
        return -1;
    uint8_t b = *p++;
    uint64_t len = 0;
    int kind = -1; /* for containers and raw */
#define NEED(n)                                                                                    \
    do {                                                                                           \
        if ((size_t)(end - p) < (size_t)(n))                                                       \
            return -1;                                                                             \
    } while (0)
    if (b <= 0x7f) {
        out->type = MP_UINT;
        out->u = b;
    } else if (b >= 0xe0) {
        out->type = MP_INT;
        out->i = (int8_t)b;
    } else if ((b & 0xf0) == 0x80) {
        kind = MP_MAP;
        len = b & 0x0f;
    } else if ((b & 0xf0) == 0x90) {
        kind = MP_ARR;
        len = b & 0x0f;
    } else if ((b & 0xe0) == 0xa0) {
        kind = MP_STR;
        len = b & 0x1f;
    } else {
        switch (b) {
        case 0xc0:
            out->type = MP_NIL;
            break;
        case 0xc2:
        case 0xc3:
            out->type = MP_BOOL;
            out->u = b == 0xc3;
            break;
        case 0xc4:
        case 0xc5:
        case 0xc6: {
            int w = 1 << (b - 0xc4);
            NEED(w);
            kind = MP_BIN;
            len = mp_be(p, w);
            p += w;
            break;
        }
        case 0xc7:
        case 0xc8:
        case 0xc9: {
            int w = 1 << (b - 0xc7);
            NEED(w + 1);
            kind = MP_EXT;
            len = mp_be(p, w);
            p += w;
            out->ext_type = (int8_t)*p++;
            break;
        }
        case 0xca: {
            NEED(4);
            uint32_t v = (uint32_t)mp_be(p, 4);
            float f;
            memcpy(&f, &v, 4);
            out->type = MP_FLOAT;
            out->f = f;
            out->f32 = 1;
            p += 4;
            break;
        }
        case 0xcb: {
            NEED(8);
            uint64_t v = mp_be(p, 8);
            memcpy(&out->f, &v, 8);
            out->type = MP_FLOAT;
            p += 8;
            break;
        }
        case 0xcc:
        case 0xcd:
        case 0xce:
        case 0xcf: {
            int w = 1 << (b - 0xcc);
            NEED(w);
            out->type = MP_UINT;
            out->u = mp_be(p, w);
            p += w;
            break;
        }
        case 0xd0:
        case 0xd1:
        case 0xd2:
        case 0xd3: {
            int w = 1 << (b - 0xd0);
            NEED(w);
            uint64_t v = mp_be(p, w);
            int64_t s;
            if (w < 8) {
                uint64_t sign = 1ull << (8 * w - 1);
                s = (int64_t)((v ^ sign) - sign);
            } else {
                memcpy(&s, &v, 8);
            }
            p += w;
            if (s >= 0) {
                out->type = MP_UINT;
                out->u = (uint64_t)s;
            } else {
                out->type = MP_INT;
                out->i = s;
            }
            break;
        }
        case 0xd4:
        case 0xd5:
        case 0xd6:
        case 0xd7:
        case 0xd8:
            NEED(1);
            kind = MP_EXT;
            len = 1u << (b - 0xd4);
            out->ext_type = (int8_t)*p++;
            break;
        case 0xd9:
        case 0xda:
        case 0xdb: {
            int w = 1 << (b - 0xd9);
            NEED(w);
            kind = MP_STR;
            len = mp_be(p, w);
            p += w;
            break;
        }
        case 0xdc:
        case 0xdd: {
            int w = b == 0xdc ? 2 : 4;
            NEED(w);
            kind = MP_ARR;
            len = mp_be(p, w);
            p += w;
            break;
        }
        case 0xde:
        case 0xdf: {
            int w = b == 0xde ? 2 : 4;
            NEED(w);
            kind = MP_MAP;
            len = mp_be(p, w);
            p += w;
            break;
        }
        default:
            return -1;
        }
    }
    if (kind == MP_STR || kind == MP_BIN || kind == MP_EXT) {
        NEED(len);
        out->type = kind;
        out->len = (uint32_t)len;
        out->ptr = malloc(len ? len : 1);
        if (!out->ptr)
            return -1;
        memcpy(out->ptr, p, len);
        p += len;
    } else if (kind == MP_ARR || kind == MP_MAP) {
        uint64_t cnt = kind == MP_MAP ? 2 * len : len;
        if (cnt > (uint64_t)(end - p))
            return -1; /* every item takes at least one byte */
        out->type = kind;
        out->n = (uint32_t)len;
        out->items = calloc(cnt ? cnt : 1, sizeof(mp_node));
        if (!out->items)
            return -1;
        for (uint64_t k = 0; k < cnt; k++)
            if (mp_parse(&p, end, &out->items[k], depth + 1) != 0) {
                mp_free(out);
                return -1;
            }
    }
#undef NEED
    *pp = p;
    return 0;
}

typedef struct mp_buf {
    uint8_t *b;
    size_t len, cap;
} mp_buf;

static void mp_put(mp_buf *w, const void *src, size_t n) {
    if (w->len + n > w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 256;
        while (cap < w->len + n)
            cap *= 2;
        w->b = realloc(w->b, cap);
        cr_assert_not_null(w->b);
        w->cap = cap;
    }
    memcpy(w->b + w->len, src, n);
    w->len += n;
}

static void mp_put_be(mp_buf *w, uint8_t tag, uint64_t v, int width) {
    uint8_t tmp[9];
    tmp[0] = tag;
    for (int k = 0; k < width; k++)
        tmp[1 + k] = (uint8_t)(v >> (8 * (width - 1 - k)));
    mp_put(w, tmp, 1 + (size_t)width);
}

static void mp_put_len(mp_buf *w, uint64_t len, uint8_t fix, uint64_t fixmax, uint8_t t8,
                       uint8_t t16, uint8_t t32) {
    if (fix && len <= fixmax) {
        uint8_t b = (uint8_t)(fix | len);
        mp_put(w, &b, 1);
    } else if (t8 && len <= 0xff) {
        mp_put_be(w, t8, len, 1);
    } else if (len <= 0xffff) {
        mp_put_be(w, t16, len, 2);
    } else {
        mp_put_be(w, t32, len, 4);
    }
}

static void mp_write(mp_buf *w, const mp_node *nd) {
    switch (nd->type) {
    case MP_NIL: {
        uint8_t b = 0xc0;
        mp_put(w, &b, 1);
        break;
    }
    case MP_BOOL: {
        uint8_t b = nd->u ? 0xc3 : 0xc2;
        mp_put(w, &b, 1);
        break;
    }
    case MP_UINT:
        if (nd->u <= 0x7f) {
            uint8_t b = (uint8_t)nd->u;
            mp_put(w, &b, 1);
        } else if (nd->u <= 0xff) {
            mp_put_be(w, 0xcc, nd->u, 1);
        } else if (nd->u <= 0xffff) {
            mp_put_be(w, 0xcd, nd->u, 2);
        } else if (nd->u <= 0xffffffffu) {
            mp_put_be(w, 0xce, nd->u, 4);
        } else {
            mp_put_be(w, 0xcf, nd->u, 8);
        }
        break;
    case MP_INT:
        if (nd->i >= -32) {
            uint8_t b = (uint8_t)(int8_t)nd->i;
            mp_put(w, &b, 1);
        } else if (nd->i >= INT8_MIN) {
            mp_put_be(w, 0xd0, (uint64_t)nd->i, 1);
        } else if (nd->i >= INT16_MIN) {
            mp_put_be(w, 0xd1, (uint64_t)nd->i, 2);
        } else if (nd->i >= INT32_MIN) {
            mp_put_be(w, 0xd2, (uint64_t)nd->i, 4);
        } else {
            mp_put_be(w, 0xd3, (uint64_t)nd->i, 8);
        }
        break;
    case MP_FLOAT:
        if (nd->f32) {
            float f = (float)nd->f;
            uint32_t v;
            memcpy(&v, &f, 4);
            mp_put_be(w, 0xca, v, 4);
        } else {
            uint64_t v;
            memcpy(&v, &nd->f, 8);
            mp_put_be(w, 0xcb, v, 8);
        }
        break;
    case MP_STR:
        mp_put_len(w, nd->len, 0xa0, 31, 0xd9, 0xda, 0xdb);
        mp_put(w, nd->ptr, nd->len);
        break;
    case MP_BIN:
        mp_put_len(w, nd->len, 0, 0, 0xc4, 0xc5, 0xc6);
        mp_put(w, nd->ptr, nd->len);
        break;
    case MP_EXT:
        mp_put_len(w, nd->len, 0, 0, 0xc7, 0xc8, 0xc9);
        mp_put(w, &nd->ext_type, 1);
        mp_put(w, nd->ptr, nd->len);
        break;
    case MP_ARR:
        mp_put_len(w, nd->n, 0x90, 15, 0, 0xdc, 0xdd);
        for (uint32_t k = 0; k < nd->n; k++)
            mp_write(w, &nd->items[k]);
        break;
    case MP_MAP:
        mp_put_len(w, nd->n, 0x80, 15, 0, 0xde, 0xdf);
        for (uint32_t k = 0; k < 2 * nd->n; k++)
            mp_write(w, &nd->items[k]);
        break;
    }
}

/* Serialized bytes of one node, for comparing values. */
static int mp_same(const mp_node *a, const mp_node *b) {
    mp_buf x = {0}, y = {0};
    mp_write(&x, a);
    mp_write(&y, b);
    int same = x.len == y.len && memcmp(x.b, y.b, x.len) == 0;
    free(x.b);
    free(y.b);
    return same;
}

static void mp_parse_blob(const uint8_t *blob, size_t len, mp_node *out) {
    const uint8_t *p = blob;
    cr_assert_eq(mp_parse(&p, blob + len, out, 0), 0, "encoded metadata is not valid msgpack");
    cr_assert_eq(p, blob + len, "encoded metadata has bytes after its msgpack value");
    cr_assert_eq(out->type, MP_MAP, "encoded metadata is not a msgpack map (header says it is)");
}

static void mp_set_uint(mp_node *nd, uint64_t v) {
    mp_free(nd);
    nd->type = MP_UINT;
    nd->u = v;
}

static void mp_set_int(mp_node *nd, int64_t v) {
    mp_free(nd);
    nd->type = v < 0 ? MP_INT : MP_UINT;
    nd->i = v;
    nd->u = (uint64_t)v;
}

static void mp_set_str(mp_node *nd, const char *s, size_t len) {
    mp_free(nd);
    nd->type = MP_STR;
    nd->len = (uint32_t)len;
    nd->ptr = malloc(len ? len : 1);
    cr_assert_not_null(nd->ptr);
    memcpy(nd->ptr, s, len);
}

/* ---- helpers ---------------------------------------------------------------------- */

static reel_meta base_meta(void) {
    reel_meta m;
    memset(&m, 0, sizeof m);
    m.kind = REEL_META_TENSOR;
    m.dtype = REEL_DTYPE_F32;
    m.ndim = 3;
    m.shape[0] = 2;
    m.shape[1] = 3;
    m.shape[2] = 4;
    m.shape[3] = 5;
    snprintf(m.format, sizeof m.format, "%s", "nchw");
    m.pts_us = 1000;
    m.duration_us = 40000;
    return m;
}

static size_t encode_ok(const reel_meta *m, uint8_t *buf, size_t cap) {
    size_t len = 0;
    TH_OK(reel_meta_encode(m, buf, cap, &len));
    cr_assert_gt(len, 0u, "encoded length is 0");
    cr_assert_leq(len, cap, "encoded length %zu exceeds cap %zu", len, cap);
    return len;
}

static void expect_meta_equal(const reel_meta *got, const reel_meta *want) {
    cr_assert_eq(got->kind, want->kind, "kind %u != %u", got->kind, want->kind);
    cr_assert_eq(got->dtype, want->dtype, "dtype %u != %u", got->dtype, want->dtype);
    cr_assert_eq(got->ndim, want->ndim, "ndim %u != %u", got->ndim, want->ndim);
    for (uint32_t d = 0; d < want->ndim; d++)
        cr_assert_eq(got->shape[d], want->shape[d], "shape[%u] %llu != %llu", d,
                     (unsigned long long)got->shape[d], (unsigned long long)want->shape[d]);
    cr_assert(memchr(got->format, '\0', sizeof got->format) != NULL,
              "decoded format is not NUL-terminated");
    cr_assert_str_eq(got->format, want->format);
    cr_assert_eq(got->pts_us, want->pts_us, "pts %lld != %lld", (long long)got->pts_us,
                 (long long)want->pts_us);
    cr_assert_eq(got->duration_us, want->duration_us, "duration %lld != %lld",
                 (long long)got->duration_us, (long long)want->duration_us);
}

static void round_trip(const reel_meta *m) {
    uint8_t buf[4096];
    size_t len = encode_ok(m, buf, sizeof buf);
    reel_meta out;
    memset(&out, 0xee, sizeof out);
    TH_OK(reel_meta_decode(buf, len, &out));
    expect_meta_equal(&out, m);
    /* Deterministic: the same meta encodes to the same bytes. */
    uint8_t again[4096];
    size_t len2 = encode_ok(m, again, sizeof again);
    cr_assert_eq(len2, len);
    cr_assert_eq(memcmp(buf, again, len), 0, "encoding the same meta twice gave different bytes");
}

static void expect_badmeta(const void *blob, size_t len, const char *what) {
    reel_meta out;
    memset(&out, 0, sizeof out);
    int rc = reel_meta_decode(blob, len, &out);
    char buf[512];
    cr_assert_eq(rc, REEL_EBADMETA, "decode(%s, %zu bytes) -> %s, expected REEL_EBADMETA", what,
                 len, th_rcstr(rc, buf, sizeof buf));
}

/* Decoding may succeed on arbitrary bytes only if it yields a meta within range. */
static void expect_bad_or_in_range(const void *blob, size_t len) {
    reel_meta out;
    memset(&out, 0xcc, sizeof out);
    int rc = reel_meta_decode(blob, len, &out);
    char buf[512];
    cr_assert(rc == 0 || rc == REEL_EBADMETA, "decode of garbage -> %s",
              th_rcstr(rc, buf, sizeof buf));
    if (rc == 0) {
        cr_assert_leq(out.kind, (uint32_t)REEL_META_TENSOR, "decoded kind %u out of range",
                      out.kind);
        cr_assert_lt(out.dtype, (uint32_t)REEL_DTYPE_COUNT_, "decoded dtype %u out of range",
                     out.dtype);
        cr_assert_leq(out.ndim, (uint32_t)REEL_META_MAX_DIMS, "decoded ndim %u out of range",
                      out.ndim);
        cr_assert(memchr(out.format, '\0', sizeof out.format) != NULL,
                  "decoded format is not NUL-terminated");
    }
}

/* ---- round trips -------------------------------------------------------------------- */

Test(meta, round_trip_bytes) {
    reel_meta m;
    memset(&m, 0, sizeof m);
    m.kind = REEL_META_BYTES;
    m.dtype = REEL_DTYPE_NONE;
    m.ndim = 0;
    round_trip(&m);
}

Test(meta, round_trip_encoded) {
    reel_meta m;
    memset(&m, 0, sizeof m);
    m.kind = REEL_META_ENCODED;
    m.dtype = REEL_DTYPE_U8;
    m.ndim = 1;
    m.shape[0] = 123456789;
    snprintf(m.format, sizeof m.format, "%s", "h264");
    m.pts_us = 0;
    m.duration_us = 10000000;
    round_trip(&m);
}

Test(meta, round_trip_frame) {
    reel_meta m;
    memset(&m, 0, sizeof m);
    m.kind = REEL_META_FRAME;
    m.dtype = REEL_DTYPE_U8;
    m.ndim = 3;
    m.shape[0] = 1080;
    m.shape[1] = 1920;
    m.shape[2] = 3;
    snprintf(m.format, sizeof m.format, "%s", "rgb24");
    m.pts_us = 3600ll * 1000000 * 5 + 33367;
    m.duration_us = 33367;
    round_trip(&m);
    m.pts_us = -40000; /* B-frames and edit lists give negative timestamps */
    round_trip(&m);
}

Test(meta, round_trip_tensor_all_dims) {
    reel_meta m;
    memset(&m, 0, sizeof m);
    m.kind = REEL_META_TENSOR;
    m.dtype = REEL_DTYPE_F16;
    for (uint32_t nd = 0; nd <= REEL_META_MAX_DIMS; nd++) {
        m.ndim = nd;
        for (uint32_t d = 0; d < nd; d++)
            m.shape[d] = (uint64_t)1 << (d * 8);
        round_trip(&m);
    }
}

Test(meta, round_trip_extremes) {
    reel_meta m;
    memset(&m, 0, sizeof m);
    m.kind = REEL_META_TENSOR;
    m.dtype = REEL_DTYPE_F64;
    m.ndim = REEL_META_MAX_DIMS;
    for (uint32_t d = 0; d < REEL_META_MAX_DIMS; d++)
        m.shape[d] = UINT64_MAX - d;
    memset(m.format, 'z', REEL_META_NAME_MAX - 1);
    m.format[REEL_META_NAME_MAX - 1] = '\0';
    m.pts_us = INT64_MIN;
    m.duration_us = INT64_MAX;
    round_trip(&m);
    m.pts_us = INT64_MAX;
    m.duration_us = INT64_MIN;
    m.shape[0] = 0;
    m.format[0] = '\0';
    round_trip(&m);
    /* The largest meta fits REEL_META_MAX. */
    uint8_t buf[4096];
    size_t len = encode_ok(&m, buf, sizeof buf);
    cr_assert_leq(len, (size_t)REEL_META_MAX);
    cr_log_info("largest encoded meta: %zu bytes", len);
}

Test(meta, round_trip_every_dtype_and_kind) {
    for (uint32_t k = REEL_META_BYTES; k <= REEL_META_TENSOR; k++)
        for (uint32_t dt = 0; dt < REEL_DTYPE_COUNT_; dt++) {
            reel_meta m = base_meta();
            m.kind = k;
            m.dtype = dt;
            round_trip(&m);
        }
}

Test(meta, encode_cap_too_small) {
    reel_meta m = base_meta();
    uint8_t full[4096];
    size_t len = encode_ok(&m, full, sizeof full);
    uint8_t buf[4096 + 64];
    for (size_t cap = 0; cap < len; cap++) {
        memset(buf, 0xab, sizeof buf);
        size_t got = 0;
        int rc = reel_meta_encode(&m, buf, cap, &got);
        char msg[512];
        cr_assert_eq(rc, -ENOSPC, "encode with cap %zu (needs %zu) -> %s, expected -ENOSPC", cap,
                     len, th_rcstr(rc, msg, sizeof msg));
        for (size_t k = cap; k < sizeof buf; k++)
            cr_assert_eq(buf[k], 0xab, "encode with cap %zu wrote byte %zu", cap, k);
    }
    size_t got = 0;
    TH_OK(reel_meta_encode(&m, buf, len, &got));
    cr_assert_eq(got, len);
    cr_assert_eq(memcmp(buf, full, len), 0);
}

Test(meta, encode_rejects_out_of_range) {
    uint8_t buf[4096];
    size_t len;
    reel_meta m = base_meta();
    m.ndim = REEL_META_MAX_DIMS + 1;
    TH_RC(reel_meta_encode(&m, buf, sizeof buf, &len), -EINVAL);
    m = base_meta();
    m.ndim = UINT32_MAX;
    TH_RC(reel_meta_encode(&m, buf, sizeof buf, &len), -EINVAL);
    m = base_meta();
    m.dtype = REEL_DTYPE_COUNT_;
    TH_RC(reel_meta_encode(&m, buf, sizeof buf, &len), -EINVAL);
    m = base_meta();
    m.dtype = 0xffffffffu;
    TH_RC(reel_meta_encode(&m, buf, sizeof buf, &len), -EINVAL);
    m = base_meta();
    m.kind = REEL_META_TENSOR + 1;
    TH_RC(reel_meta_encode(&m, buf, sizeof buf, &len), -EINVAL);
}

/* format is documented as NUL-terminated; one that is not is a field out of
 * range, not something to read past. */
Test(meta, encode_rejects_unterminated_format) {
    uint8_t buf[4096];
    size_t len;
    reel_meta m = base_meta();
    memset(m.format, 'x', sizeof m.format);
    TH_RC(reel_meta_encode(&m, buf, sizeof buf, &len), -EINVAL);
}

Test(meta, dtype_names) {
    cr_assert_str_eq(reel_dtype_name(REEL_DTYPE_U8), "u8");
    cr_assert_str_eq(reel_dtype_name(REEL_DTYPE_F32), "f32");
    cr_assert_str_eq(reel_dtype_name(REEL_DTYPE_COUNT_), "?");
    cr_assert_str_eq(reel_dtype_name(1000), "?");
    cr_assert_str_eq(reel_dtype_name(UINT32_MAX), "?");
    cr_assert_not_null(reel_dtype_name(REEL_DTYPE_NONE));
    for (uint32_t a = REEL_DTYPE_U8; a < REEL_DTYPE_COUNT_; a++) {
        const char *na = reel_dtype_name(a);
        cr_assert_not_null(na);
        cr_assert_gt(strlen(na), 0u);
        cr_assert_str_neq(na, "?", "dtype %u has no name", a);
        for (uint32_t b = a + 1; b < REEL_DTYPE_COUNT_; b++)
            cr_assert_str_neq(na, reel_dtype_name(b), "dtypes %u and %u share a name", a, b);
    }
}

/* ---- decoding bad input ------------------------------------------------------------- */

Test(meta, decode_truncated) {
    reel_meta m = base_meta();
    uint8_t buf[4096];
    size_t len = encode_ok(&m, buf, sizeof buf);
    for (size_t cut = 0; cut < len; cut++) {
        /* A copy of exactly cut bytes, so that reading past it is caught by
         * sanitizers. */
        uint8_t *copy = malloc(cut ? cut : 1);
        cr_assert_not_null(copy);
        memcpy(copy, buf, cut);
        expect_badmeta(copy, cut, "truncated blob");
        free(copy);
    }
    m.ndim = REEL_META_MAX_DIMS;
    for (int d = 0; d < REEL_META_MAX_DIMS; d++)
        m.shape[d] = UINT64_MAX;
    len = encode_ok(&m, buf, sizeof buf);
    for (size_t cut = 0; cut < len; cut++)
        expect_badmeta(buf, cut, "truncated blob (8 dims)");
}

Test(meta, decode_garbage) {
    static const uint8_t c1[] = {0xc1};
    static const uint8_t c1s[] = {0xc1, 0x00, 0x01, 0x02, 0x03};
    static const uint8_t nil[] = {0xc0};
    static const uint8_t fixint[] = {0x05};
    static const uint8_t arr[] = {0x93, 0x01, 0x02, 0x03};
    static const uint8_t str[] = {0xa3, 'a', 'b', 'c'};
    static const uint8_t map32_huge[] = {0xdf, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t str32_huge[] = {0x81, 0xdb, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t bin32_huge[] = {0x81, 0xa1, 'k', 0xc6, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t arr32_huge[] = {0x81, 0xa1, 'k', 0xdd, 0x7f, 0xff, 0xff, 0xff};
    static const char text[] = "hello world, this is not metadata";
    expect_badmeta(text, 0, "empty");
    expect_badmeta(c1, sizeof c1, "0xc1");
    expect_badmeta(c1s, sizeof c1s, "0xc1...");
    expect_badmeta(nil, sizeof nil, "nil");
    expect_badmeta(fixint, sizeof fixint, "an integer");
    expect_badmeta(arr, sizeof arr, "an array");
    expect_badmeta(str, sizeof str, "a string");
    expect_badmeta(map32_huge, sizeof map32_huge, "map32 with 4G entries");
    expect_badmeta(str32_huge, sizeof str32_huge, "str32 with 4 GB length");
    expect_badmeta(bin32_huge, sizeof bin32_huge, "bin32 with 4 GB length");
    expect_badmeta(arr32_huge, sizeof arr32_huge, "array32 with 2G items");
    expect_badmeta(text, sizeof text - 1, "text");
    uint8_t ff[64], zero[64];
    memset(ff, 0xff, sizeof ff);
    memset(zero, 0, sizeof zero);
    expect_badmeta(ff, sizeof ff, "all 0xff");
    expect_badmeta(zero, sizeof zero, "all zero");
    /* Deep nesting must not overflow the stack. */
    size_t deep = 100000;
    uint8_t *nest = malloc(deep);
    cr_assert_not_null(nest);
    memset(nest, 0x91, deep);
    expect_badmeta(nest, deep, "deeply nested arrays");
    for (size_t k = 0; k + 3 <= deep; k += 3) {
        nest[k] = 0x81; /* a map of one entry whose value is the next map */
        nest[k + 1] = 0xa1;
        nest[k + 2] = 'k';
    }
    expect_badmeta(nest, deep - deep % 3, "deeply nested maps");
    free(nest);
}

Test(meta, decode_random_bytes_never_crashes) {
    uint8_t buf[512];
    for (uint64_t seed = 1; seed <= 2000; seed++) {
        uint64_t st = seed;
        size_t len = (size_t)(th_rand64(&st) % sizeof buf);
        th_fill(buf, len, seed * 7919);
        expect_bad_or_in_range(buf, len);
        /* The same bytes under a map header. */
        if (len > 0) {
            buf[0] = (uint8_t)(0x80 | (th_rand64(&st) & 0x0f));
            expect_bad_or_in_range(buf, len);
        }
    }
}

Test(meta, decode_mutated_blobs_never_crash) {
    reel_meta m = base_meta();
    uint8_t good[4096];
    size_t len = encode_ok(&m, good, sizeof good);
    static const uint8_t vals[] = {0x00, 0x01, 0x7f, 0x80, 0x8f, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1,
                                   0xc4, 0xcc, 0xcf, 0xd3, 0xd9, 0xdb, 0xdd, 0xdf, 0xe0, 0xff};
    uint8_t *blob = malloc(len);
    cr_assert_not_null(blob);
    for (size_t pos = 0; pos < len; pos++)
        for (size_t v = 0; v < sizeof vals; v++) {
            memcpy(blob, good, len);
            blob[pos] = vals[v];
            expect_bad_or_in_range(blob, len);
        }
    free(blob);
}

/* Finds the map entries whose values differ between the encodings of a and b.
 * Returns how many; their indices (value positions in items[]) go to idx. */
static size_t diff_fields(const reel_meta *a, const reel_meta *b, mp_node *ta, size_t *idx,
                          size_t cap) {
    uint8_t ba[4096], bb[4096];
    size_t la = encode_ok(a, ba, sizeof ba);
    size_t lb = encode_ok(b, bb, sizeof bb);
    mp_node tb;
    mp_parse_blob(ba, la, ta);
    mp_parse_blob(bb, lb, &tb);
    cr_assert_eq(ta->n, tb.n, "metas differing in one field encode to maps of different sizes");
    size_t n = 0;
    for (uint32_t k = 0; k < ta->n; k++) {
        cr_assert(mp_same(&ta->items[2 * k], &tb.items[2 * k]), "map keys in different order");
        if (!mp_same(&ta->items[2 * k + 1], &tb.items[2 * k + 1])) {
            if (n < cap)
                idx[n] = 2 * k + 1;
            n++;
        }
    }
    mp_free(&tb);
    return n;
}

static void expect_tree_badmeta(const mp_node *tree, const char *what) {
    mp_buf w = {0};
    mp_write(&w, tree);
    expect_badmeta(w.b, w.len, what);
    free(w.b);
}

static void expect_tree_ok(const mp_node *tree, const char *what) {
    mp_buf w = {0};
    mp_write(&w, tree);
    reel_meta out;
    int rc = reel_meta_decode(w.b, w.len, &out);
    char buf[512];
    cr_assert_eq(rc, 0, "decode(%s) -> %s", what, th_rcstr(rc, buf, sizeof buf));
    free(w.b);
}

Test(meta, reserialized_blob_still_decodes) {
    /* Guards the tests below: our writer's output of an unchanged tree is
     * accepted, so a rejection there is due to the changed field. */
    reel_meta m = base_meta();
    uint8_t buf[4096];
    size_t len = encode_ok(&m, buf, sizeof buf);
    mp_node t;
    mp_parse_blob(buf, len, &t);
    mp_buf w = {0};
    mp_write(&w, &t);
    reel_meta out;
    TH_OK(reel_meta_decode(w.b, w.len, &out));
    expect_meta_equal(&out, &m);
    free(w.b);
    mp_free(&t);
}

Test(meta, decode_dtype_out_of_range) {
    reel_meta a = base_meta(), b = base_meta();
    b.dtype = REEL_DTYPE_F64;
    mp_node t;
    size_t idx[4];
    size_t n = diff_fields(&a, &b, &t, idx, 4);
    cr_assert_eq(n, 1u, "changing dtype changed %zu map entries", n);
    mp_node *v = &t.items[idx[0]];
    mp_set_uint(v, REEL_DTYPE_COUNT_ - 1);
    expect_tree_ok(&t, "largest dtype");
    mp_set_uint(v, REEL_DTYPE_COUNT_);
    expect_tree_badmeta(&t, "dtype = REEL_DTYPE_COUNT_");
    mp_set_uint(v, 200);
    expect_tree_badmeta(&t, "dtype = 200");
    mp_set_uint(v, (1ull << 32) + REEL_DTYPE_U8);
    expect_tree_badmeta(&t, "dtype = 2^32 + 1");
    mp_set_int(v, -1);
    expect_tree_badmeta(&t, "dtype = -1");
    mp_set_str(v, "f32", 3);
    expect_tree_badmeta(&t, "dtype as a string");
    mp_free(&t);
}

Test(meta, decode_kind_out_of_range) {
    reel_meta a = base_meta(), b = base_meta();
    b.kind = REEL_META_FRAME;
    mp_node t;
    size_t idx[4];
    size_t n = diff_fields(&a, &b, &t, idx, 4);
    cr_assert_eq(n, 1u, "changing kind changed %zu map entries", n);
    mp_node *v = &t.items[idx[0]];
    mp_set_uint(v, REEL_META_TENSOR + 1);
    expect_tree_badmeta(&t, "kind = 4");
    mp_set_uint(v, UINT64_MAX);
    expect_tree_badmeta(&t, "kind = 2^64-1");
    mp_set_int(v, -3);
    expect_tree_badmeta(&t, "kind = -3");
    mp_free(&t);
}

Test(meta, decode_ndim_out_of_range) {
    reel_meta a = base_meta(), b = base_meta();
    b.ndim = 4; /* shape[3] is set in both */
    mp_node t;
    size_t idx[4];
    size_t n = diff_fields(&a, &b, &t, idx, 4);
    cr_assert(n >= 1 && n <= 2, "changing ndim changed %zu map entries", n);
    /* Either an ndim entry (an integer 3), a shape array of 3 items, or both.
     * Make every one of them say 9 dimensions. */
    int found_int = 0, found_arr = 0;
    for (size_t k = 0; k < n; k++) {
        mp_node *v = &t.items[idx[k]];
        if (v->type == MP_UINT && v->u == 3) {
            mp_set_uint(v, REEL_META_MAX_DIMS + 1);
            found_int = 1;
        } else if (v->type == MP_ARR && v->n == 3) {
            mp_node *items = realloc(v->items, (REEL_META_MAX_DIMS + 1) * sizeof *items);
            cr_assert_not_null(items);
            for (uint32_t d = 3; d < REEL_META_MAX_DIMS + 1; d++) {
                memset(&items[d], 0, sizeof items[d]);
                items[d].type = MP_UINT;
                items[d].u = 1;
            }
            v->items = items;
            v->n = REEL_META_MAX_DIMS + 1;
            found_arr = 1;
        }
    }
    cr_assert(found_int || found_arr, "could not find the ndim or shape entry");
    expect_tree_badmeta(&t, "ndim = 9");
    if (found_int) {
        for (size_t k = 0; k < n; k++) {
            mp_node *v = &t.items[idx[k]];
            if (v->type == MP_UINT && v->u == REEL_META_MAX_DIMS + 1) {
                mp_set_uint(v, 1000000);
                expect_tree_badmeta(&t, "ndim = 1000000");
                mp_set_uint(v, UINT64_MAX);
                expect_tree_badmeta(&t, "ndim = 2^64-1");
            }
        }
    }
    mp_free(&t);
}

Test(meta, decode_format_too_long) {
    reel_meta a = base_meta(), b = base_meta();
    snprintf(b.format, sizeof b.format, "%s", "yuv420p");
    mp_node t;
    size_t idx[4];
    size_t n = diff_fields(&a, &b, &t, idx, 4);
    cr_assert_eq(n, 1u, "changing format changed %zu map entries", n);
    mp_node *v = &t.items[idx[0]];
    cr_assert(v->type == MP_STR || v->type == MP_BIN, "format is not a string");
    int as_bin = v->type == MP_BIN;
    char s[200];
    memset(s, 'q', sizeof s);
    mp_set_str(v, s, REEL_META_NAME_MAX - 1);
    v->type = as_bin ? MP_BIN : MP_STR;
    expect_tree_ok(&t, "31-character format");
    mp_set_str(v, s, REEL_META_NAME_MAX);
    v->type = as_bin ? MP_BIN : MP_STR;
    expect_tree_badmeta(&t, "32-character format (no room for the NUL)");
    mp_set_str(v, s, sizeof s);
    v->type = as_bin ? MP_BIN : MP_STR;
    expect_tree_badmeta(&t, "200-character format");
    mp_set_uint(v, 7);
    expect_tree_badmeta(&t, "format as an integer");
    mp_free(&t);
}

Test(meta, decode_wrong_types) {
    reel_meta a = base_meta(), b = base_meta();
    b.pts_us = -5;
    mp_node t;
    size_t idx[4];
    size_t n = diff_fields(&a, &b, &t, idx, 4);
    cr_assert_eq(n, 1u, "changing pts changed %zu map entries", n);
    mp_node *v = &t.items[idx[0]];
    mp_set_str(v, "1000", 4);
    expect_tree_badmeta(&t, "pts as a string");
    mp_free(&t);
}
