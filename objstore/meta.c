/* reel's object metadata: a small msgpack map, validated field by field on decode
 * because it comes from whatever process wrote the object. */
#include "store_internal.h"

#include <errno.h>
#include <string.h>

#include <msgpack.h>

#define META_VERSION 1

/* Keys are one letter to keep a frame's metadata a few dozen bytes. */
#define KEY_VERSION  'v'
#define KEY_KIND     'k'
#define KEY_DTYPE    't'
#define KEY_SHAPE    's'
#define KEY_FORMAT   'f'
#define KEY_PTS      'p'
#define KEY_DURATION 'd'

static const char *const dtype_names[REEL_DTYPE_COUNT_] = {
    [REEL_DTYPE_NONE] = "none", [REEL_DTYPE_U8] = "u8",   [REEL_DTYPE_I8] = "i8",
    [REEL_DTYPE_U16] = "u16",   [REEL_DTYPE_I16] = "i16", [REEL_DTYPE_I32] = "i32",
    [REEL_DTYPE_I64] = "i64",   [REEL_DTYPE_F16] = "f16", [REEL_DTYPE_F32] = "f32",
    [REEL_DTYPE_F64] = "f64",
};

REEL_API const char *reel_dtype_name(uint32_t dtype) {
    return dtype < REEL_DTYPE_COUNT_ ? dtype_names[dtype] : "?";
}

static int meta_valid(const reel_meta *m) {
    if (m->kind > REEL_META_TENSOR || m->dtype >= REEL_DTYPE_COUNT_ || m->ndim > REEL_META_MAX_DIMS)
        return 0;
    return memchr(m->format, '\0', sizeof m->format) != NULL;
}

static void pack_key(msgpack_packer *pk, char key) {
    msgpack_pack_str(pk, 1);
    msgpack_pack_str_body(pk, &key, 1);
}

REEL_API int reel_meta_encode(const reel_meta *meta, void *buf, size_t cap, size_t *len) {
    REEL_NEED(meta, "meta");
    REEL_NEED(buf, "buf");
    REEL_NEED(len, "len");
    if (!meta_valid(meta))
        return -EINVAL;
    reel__fixed_buffer fb = {.data = buf, .cap = cap};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &fb, reel__fixed_write);
    size_t flen = strlen(meta->format);
    msgpack_pack_map(&pk, 7);
    pack_key(&pk, KEY_VERSION);
    msgpack_pack_uint32(&pk, META_VERSION);
    pack_key(&pk, KEY_KIND);
    msgpack_pack_uint32(&pk, meta->kind);
    pack_key(&pk, KEY_DTYPE);
    msgpack_pack_uint32(&pk, meta->dtype);
    pack_key(&pk, KEY_SHAPE);
    msgpack_pack_array(&pk, meta->ndim);
    for (uint32_t i = 0; i < meta->ndim; i++)
        msgpack_pack_uint64(&pk, meta->shape[i]);
    pack_key(&pk, KEY_FORMAT);
    msgpack_pack_str(&pk, flen);
    msgpack_pack_str_body(&pk, meta->format, flen);
    pack_key(&pk, KEY_PTS);
    msgpack_pack_int64(&pk, meta->pts_us);
    pack_key(&pk, KEY_DURATION);
    msgpack_pack_int64(&pk, meta->duration_us);
    if (fb.overflow)
        return -ENOSPC;
    *len = fb.len;
    return 0;
}

static int get_u32(const msgpack_object *o, uint32_t *out) {
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > UINT32_MAX)
        return -1;
    *out = (uint32_t)o->via.u64;
    return 0;
}

static int get_i64(const msgpack_object *o, int64_t *out) {
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *out = o->via.i64;
        return 0;
    }
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX) {
        *out = (int64_t)o->via.u64;
        return 0;
    }
    return -1;
}

static int decode_map(const msgpack_object *root, reel_meta *m) {
    uint32_t version = 0;
    int have_kind = 0;
    if (root->type != MSGPACK_OBJECT_MAP)
        return -1;
    for (uint32_t i = 0; i < root->via.map.size; i++) {
        const msgpack_object *k = &root->via.map.ptr[i].key;
        const msgpack_object *v = &root->via.map.ptr[i].val;
        if (k->type != MSGPACK_OBJECT_STR || k->via.str.size != 1)
            return -1;
        switch (k->via.str.ptr[0]) {
        case KEY_VERSION:
            if (get_u32(v, &version) || version != META_VERSION)
                return -1;
            break;
        case KEY_KIND:
            if (get_u32(v, &m->kind))
                return -1;
            have_kind = 1;
            break;
        case KEY_DTYPE:
            if (get_u32(v, &m->dtype))
                return -1;
            break;
        case KEY_SHAPE:
            if (v->type != MSGPACK_OBJECT_ARRAY || v->via.array.size > REEL_META_MAX_DIMS)
                return -1;
            m->ndim = v->via.array.size;
            for (uint32_t d = 0; d < m->ndim; d++) {
                const msgpack_object *e = &v->via.array.ptr[d];
                if (e->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
                    return -1;
                m->shape[d] = e->via.u64;
            }
            break;
        case KEY_FORMAT:
            if (v->type != MSGPACK_OBJECT_STR || v->via.str.size >= REEL_META_NAME_MAX ||
                memchr(v->via.str.ptr, '\0', v->via.str.size))
                return -1;
            memcpy(m->format, v->via.str.ptr, v->via.str.size);
            m->format[v->via.str.size] = '\0';
            break;
        case KEY_PTS:
            if (get_i64(v, &m->pts_us))
                return -1;
            break;
        case KEY_DURATION:
            if (get_i64(v, &m->duration_us))
                return -1;
            break;
        default: /* a later version's field: skip it */
            break;
        }
    }
    return version == META_VERSION && have_kind && meta_valid(m) ? 0 : -1;
}

REEL_API int reel_meta_decode(const void *buf, size_t len, reel_meta *out) {
    REEL_NEED(buf, "buf");
    REEL_NEED(out, "out");
    if (len == 0 || len > REEL_META_MAX)
        return REEL_EBADMETA;
    msgpack_unpacked msg;
    msgpack_unpacked_init(&msg);
    size_t off = 0;
    reel_meta m;
    memset(&m, 0, sizeof m);
    int rc = REEL_EBADMETA;
    /* The blob must be exactly one msgpack object, no trailing bytes, and be
     * checked before msgpack-c allocates from the sizes it declares. */
    size_t used;
    if (reel__msgpack_check(buf, len, &used) == 0 && used == len &&
        msgpack_unpack_next(&msg, buf, len, &off) == MSGPACK_UNPACK_SUCCESS && off == len &&
        decode_map(&msg.data, &m) == 0) {
        *out = m;
        rc = 0;
    }
    msgpack_unpacked_destroy(&msg);
    return rc;
}
