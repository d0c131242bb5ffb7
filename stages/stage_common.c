/* The task plumbing every stage shares: stages_internal.h. */
#include "media.h"
#include "stages_internal.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const reel_curate_options *stage_options(reel_actor_ctx *ctx) {
    return reel_actor_arg(ctx);
}

int stage_read_task(reel_actor_ctx *ctx, const reel_view *in, size_t n, video_task *t) {
    memset(t, 0, sizeof *t);
    if (n != 1) {
        reel_actor_set_error(ctx, "a task takes one video, not %zu", n);
        return -EINVAL;
    }
    char why[256];
    int rc = vt_read(in[0].data, in[0].size, t, why, sizeof why);
    if (rc)
        reel_actor_set_error(ctx, "%s", rc == -EBADMSG ? why : "out of memory");
    return rc;
}

int stage_write_task(reel_actor_ctx *ctx, reel_actor_out *out, const video_task *t) {
    uint64_t size = vt_size(t);
    void *buf;
    int rc = reel_actor_output(out, size, NULL, 0, &buf);
    if (rc) {
        reel_actor_set_error(ctx, "cannot make the task's %llu-byte output: %s",
                             (unsigned long long)size, reel_strerror(rc));
        return rc;
    }
    return vt_write(t, buf, size);
}

int stage_open_source(const video_task *t, const media_open_options *o, media_input **m, char *why,
                      size_t cap) {
    *m = NULL;
    char path[PATH_MAX];
    if (t->path.size >= sizeof path) {
        snprintf(why, cap, "a source path of %llu bytes (at most %zu)",
                 (unsigned long long)t->path.size, sizeof path - 1);
        return -ENAMETOOLONG;
    }
    return media_open_file(vt_text(t->path, path, sizeof path), &t->file, o, m, why, cap);
}

void stage_add_error(vt_clip *c, char *buf, size_t cap, const char *fmt, ...) {
    size_t used = c->errors.size;
    if (used && c->errors.data != (const uint8_t *)buf) {
        /* Errors from an earlier stage: copy them in first. */
        used = used < cap - 1 ? used : cap - 1;
        memmove(buf, c->errors.data, used);
    }
    if (used && used + 2 < cap) {
        memcpy(buf + used, "; ", 2);
        used += 2;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + used, used < cap ? cap - used : 0, fmt, ap);
    va_end(ap);
    if (n > 0)
        used += (size_t)n < cap - used ? (size_t)n : cap - used - 1;
    c->errors.data = (const uint8_t *)buf;
    c->errors.size = used;
}
