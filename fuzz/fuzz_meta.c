/* libFuzzer target: reel_meta_decode, the decoder of the metadata blob any
 * process attaches to an object (reel/store.h), read by stages and
 * reel-inspect from objects other processes wrote.
 *
 * Beyond "no crash, no sanitizer report": whatever the decoder accepts is a
 * valid reel_meta (reel_meta_encode takes it back) and decodes again to the
 * same fields. Shape entries past ndim are not compared: they carry nothing. */
#include <reel/store.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int same(const reel_meta *a, const reel_meta *b) {
    if (a->kind != b->kind || a->dtype != b->dtype || a->ndim != b->ndim ||
        a->pts_us != b->pts_us || a->duration_us != b->duration_us ||
        strcmp(a->format, b->format) != 0)
        return 0;
    for (uint32_t i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i])
            return 0;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    reel_meta m;
    if (reel_meta_decode(data, size, &m) != 0)
        return 0;
    if (m.ndim > REEL_META_MAX_DIMS || !memchr(m.format, '\0', sizeof m.format)) {
        fprintf(stderr, "fuzz_meta: the decoder accepted an invalid reel_meta\n");
        abort();
    }
    (void)reel_dtype_name(m.dtype);
    uint8_t buf[1024];
    size_t len = 0;
    int rc = reel_meta_encode(&m, buf, sizeof buf, &len);
    if (rc != 0) {
        fprintf(stderr, "fuzz_meta: decoded metadata does not encode: %d\n", rc);
        abort();
    }
    reel_meta again;
    rc = reel_meta_decode(buf, len, &again);
    if (rc != 0 || !same(&m, &again)) {
        fprintf(stderr, "fuzz_meta: metadata changed on re-encoding (rc %d)\n", rc);
        abort();
    }
    return 0;
}
