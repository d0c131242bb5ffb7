/* A bounds check for msgpack bytes from another process, run before
 * msgpack-c unpacks them: msgpack-c sizes its allocations from the counts
 * the bytes declare, so a 5-byte "array of 2^32 elements" would ask for
 * gigabytes. Here every declared count must fit in the bytes that remain
 * (each element takes at least one byte), which bounds what unpacking may
 * allocate by the input's length. */
#include "store_internal.h"

#include <errno.h>
#include <string.h>

static uint64_t read_be(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

int reel__msgpack_check(const void *buf, size_t len, size_t *used) {
    const uint8_t *p = buf, *end = p + len;
    uint64_t pending = 1; /* objects still to read */
    while (pending > 0) {
        if (p >= end)
            return -EBADMSG;
        uint8_t t = *p++;
        pending--;
        uint64_t skip = 0, items = 0;
        int nbytes = 0; /* width of a length field after the type byte */
        if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3) {
            /* fixint, nil, bool: nothing follows */
        } else if (t <= 0x8f) {
            items = 2ull * (t & 0x0f);
        } else if (t <= 0x9f) {
            items = t & 0x0f;
        } else if (t <= 0xbf) {
            skip = t & 0x1f;
        } else {
            switch (t) {
            case 0xc4:
            case 0xd9:
                nbytes = 1;
                break; /* bin8, str8 */
            case 0xc5:
            case 0xda:
                nbytes = 2;
                break;
            case 0xc6:
            case 0xdb:
                nbytes = 4;
                break;
            case 0xc7:
                nbytes = 1;
                skip = 1;
                break; /* ext: one type byte more */
            case 0xc8:
                nbytes = 2;
                skip = 1;
                break;
            case 0xc9:
                nbytes = 4;
                skip = 1;
                break;
            case 0xca:
                skip = 4;
                break;
            case 0xcb:
                skip = 8;
                break;
            case 0xcc:
            case 0xd0:
                skip = 1;
                break;
            case 0xcd:
            case 0xd1:
                skip = 2;
                break;
            case 0xce:
            case 0xd2:
                skip = 4;
                break;
            case 0xcf:
            case 0xd3:
                skip = 8;
                break;
            case 0xd4:
                skip = 2;
                break; /* fixext: type byte + 1, 2, 4, 8, 16 */
            case 0xd5:
                skip = 3;
                break;
            case 0xd6:
                skip = 5;
                break;
            case 0xd7:
                skip = 9;
                break;
            case 0xd8:
                skip = 17;
                break;
            case 0xdc:
            case 0xdd:
            case 0xde:
            case 0xdf: {
                int w = (t == 0xdc || t == 0xde) ? 2 : 4;
                if ((size_t)(end - p) < (size_t)w)
                    return -EBADMSG;
                items = read_be(p, w) * (t >= 0xde ? 2 : 1);
                p += w;
                break;
            }
            default: /* 0xc1 is never used */
                return -EBADMSG;
            }
            if (nbytes) {
                if ((size_t)(end - p) < (size_t)nbytes)
                    return -EBADMSG;
                skip += read_be(p, nbytes);
                p += nbytes;
            }
        }
        if (skip > (uint64_t)(end - p) || items > (uint64_t)(end - p))
            return -EBADMSG;
        p += skip;
        pending += items;
    }
    if (used)
        *used = (size_t)(p - (const uint8_t *)buf);
    return 0;
}

int reel__fixed_write(void *ctx, const char *buf, size_t len) {
    reel__fixed_buffer *fb = ctx;
    if (fb->overflow || len > fb->cap - fb->len) {
        fb->overflow = 1;
        return -1;
    }
    memcpy(fb->data + fb->len, buf, len);
    fb->len += len;
    return 0;
}
