/* Curator's clip UUIDs: uuid5 in the URL namespace (reel/stages.h). */
#include "check.h"
#include "reel/stages.h"

#include <errno.h>
#include <libavutil/mem.h>
#include <libavutil/sha.h>
#include <stdio.h>
#include <string.h>

REEL_API int reel_uuid5_url(const char *name, char out[37]) {
    REEL_NEED(out, "out");
    if (!name) {
        out[0] = '\0';
        return reel__null_arg(__func__, "name");
    }
    /* RFC 4122's NAMESPACE_URL, 6ba7b811-9dad-11d1-80b4-00c04fd430c8. */
    static const uint8_t ns[16] = {0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1,
                                   0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8};
    uint8_t hash[20];
    struct AVSHA *sha = av_sha_alloc();
    if (!sha) {
        out[0] = '\0';
        return -ENOMEM;
    }
    av_sha_init(sha, 160);
    av_sha_update(sha, ns, sizeof ns);
    av_sha_update(sha, (const uint8_t *)name, strlen(name));
    av_sha_final(sha, hash);
    av_free(sha);
    hash[6] = (uint8_t)((hash[6] & 0x0f) | 0x50); /* version 5 */
    hash[8] = (uint8_t)((hash[8] & 0x3f) | 0x80); /* the RFC 4122 variant */
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             hash[0], hash[1], hash[2], hash[3], hash[4], hash[5], hash[6], hash[7], hash[8],
             hash[9], hash[10], hash[11], hash[12], hash[13], hash[14], hash[15]);
    return 0;
}
