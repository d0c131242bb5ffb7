/* Object IDs: random, derived from a parent and an index, or content addresses. */
#include "store_internal.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

REEL_API int reel_id_random(reel_id *out) {
    REEL_NEED(out, "out");
    size_t got = 0;
    while (got < sizeof out->bytes) {
        ssize_t n = getrandom(out->bytes + got, sizeof out->bytes - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        got += (size_t)n;
    }
    return 0;
}

static void id_from_hash(XXH128_hash_t h, reel_id *out) {
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, h);
    memcpy(out->bytes, c.digest, sizeof out->bytes);
}

REEL_API void reel_id_derive(const reel_id *parent, uint64_t index, reel_id *out) {
    REEL_NEED_OR(parent, "parent", );
    REEL_NEED_OR(out, "out", );
    uint8_t buf[24];
    memcpy(buf, parent->bytes, 16);
    for (int i = 0; i < 8; i++) /* little-endian, whatever the host */
        buf[16 + i] = (uint8_t)(index >> (8 * i));
    id_from_hash(XXH3_128bits(buf, sizeof buf), out);
}

REEL_API void reel_id_from_content(const void *data, size_t size, reel_id *out) {
    REEL_NEED_OR(data || size == 0, "data", );
    REEL_NEED_OR(out, "out", );
    id_from_hash(XXH3_128bits(data, size), out);
}

REEL_API void reel_id_to_hex(const reel_id *id, char hex[REEL_ID_HEX_LEN + 1]) {
    REEL_NEED_OR(hex, "hex", );
    if (!id) { /* still a string the caller can print */
        hex[0] = '\0';
        reel__null_arg(__func__, "id");
        return;
    }
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        hex[2 * i] = digits[id->bytes[i] >> 4];
        hex[2 * i + 1] = digits[id->bytes[i] & 15];
    }
    hex[REEL_ID_HEX_LEN] = '\0';
}

static int hex_value(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

REEL_API int reel_id_from_hex(const char *hex, reel_id *out) {
    reel_id id;
    REEL_NEED(hex, "hex");
    REEL_NEED(out, "out");
    for (int i = 0; i < 16; i++) {
        int hi = hex_value(hex[2 * i]);
        if (hi < 0)
            return -EINVAL;
        int lo = hex_value(hex[2 * i + 1]);
        if (lo < 0)
            return -EINVAL;
        id.bytes[i] = (uint8_t)(hi << 4 | lo);
    }
    if (hex[REEL_ID_HEX_LEN] != '\0')
        return -EINVAL;
    *out = id;
    return 0;
}

REEL_API int reel_id_equal(const reel_id *a, const reel_id *b) {
    REEL_NEED_OR(a, "a", 0);
    REEL_NEED_OR(b, "b", 0);
    return memcmp(a->bytes, b->bytes, sizeof a->bytes) == 0;
}

/* IDs are random or hashes already, so mixing their two halves is enough for
 * the index; a crafted ID can only lengthen its own probe, never break one. */
uint64_t reel__id_hash(const reel_id *id) {
    uint64_t lo, hi;
    memcpy(&lo, id->bytes, 8);
    memcpy(&hi, id->bytes + 8, 8);
    uint64_t h = lo ^ (hi * 0x9e3779b97f4a7c15ull);
    h ^= h >> 31;
    h *= 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 29);
}
