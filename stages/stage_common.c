/* The task plumbing every stage shares: stages_internal.h. */
#include "media.h"
#include "stages_internal.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <sched.h>
#include <string.h>

const reel_curate_options *stage_options(reel_actor_ctx *ctx) {
    return reel_actor_arg(ctx);
}

uint32_t stage_encode_threads(const reel_curate_options *o) {
    return o->encode_threads ? o->encode_threads : 1;
}

int stage_read_record(reel_actor_ctx *ctx, const char *stage, const reel_view *in, video_task *t) {
    char why[256];
    int rc = vt_read(in->data, in->size, t, why, sizeof why);
    if (rc == 0)
        rc = stage_check_artifacts(ctx, stage, t);
    else
        reel_actor_set_error(ctx, "%s", rc == -EBADMSG ? why : "out of memory");
    if (rc == -ENOMEM)
        reel_actor_set_error(ctx, "out of memory");
    if (rc)
        vt_free(t);
    return rc;
}

int stage_read_task(reel_actor_ctx *ctx, const char *stage, const reel_view *in, size_t n,
                    video_task *t) {
    memset(t, 0, sizeof *t);
    if (n != 1) {
        reel_actor_set_error(ctx, "a task takes one video, not %zu", n);
        return -EINVAL;
    }
    return stage_read_record(ctx, stage, &in[0], t);
}

static const char *const art_names[] = {"mp4", "frames", "tensor", "preview"};

static vt_art *clip_art(vt_clip *c, stage_art_kind k) {
    vt_art *a[] = {&c->mp4, &c->frames, &c->tensor, &c->preview};
    return a[k];
}

vt_art *stage_clip_art(vt_clip *c, stage_art_kind k) {
    return clip_art(c, k);
}

const char *stage_art_name(stage_art_kind k) {
    return art_names[k];
}

void stage_art_meta(const vt_clip *c, stage_art_kind k, reel_meta *m) {
    memset(m, 0, sizeof *m);
    m->pts_us = (int64_t)llround(c->start_s * 1e6);
    m->duration_us = (int64_t)llround((c->end_s - c->start_s) * 1e6);
    switch (k) {
    case STAGE_ART_MP4:
    case STAGE_ART_PREVIEW:
        m->kind = REEL_META_ENCODED;
        snprintf(m->format, sizeof m->format, "%s", k == STAGE_ART_MP4 ? "mp4" : "jpeg");
        break;
    case STAGE_ART_FRAMES:
        m->kind = REEL_META_FRAME;
        m->dtype = REEL_DTYPE_U8;
        m->ndim = 4;
        m->shape[0] = c->frames_n, m->shape[1] = c->frames_h, m->shape[2] = c->frames_w;
        m->shape[3] = 3;
        snprintf(m->format, sizeof m->format, "rgb24");
        break;
    case STAGE_ART_TENSOR:
        m->kind = REEL_META_TENSOR;
        m->dtype = REEL_DTYPE_F32;
        m->ndim = 4;
        m->shape[0] = c->tensor_n, m->shape[1] = 3, m->shape[2] = c->tensor_h;
        m->shape[3] = c->tensor_w;
        break;
    }
}

int stage_art_get(reel_actor_ctx *ctx, const vt_clip *c, stage_art_kind k, vt_art *a, char *why,
                  size_t cap) {
    reel_view v;
    return stage_art_map(ctx, c, k, a, &v, why, cap);
}

int stage_art_map(reel_actor_ctx *ctx, const vt_clip *c, stage_art_kind k, vt_art *a,
                  reel_view *view, char *why, size_t cap) {
    reel_store *store = reel_actor_store(ctx);
    char hex[REEL_ID_HEX_LEN + 1];
    reel_id_to_hex(&a->id, hex);
    reel_view v;
    /* No wait: an artifact is sealed before the record that names it. */
    int rc = reel_obj_get(store, &a->id, 1, 0, &v);
    if (rc == -ETIMEDOUT) {
        snprintf(why, cap, "its %s %s is not in the store", art_names[k], hex);
        return -ENOENT;
    }
    if (rc) {
        snprintf(why, cap, "its %s %s cannot be read: %s", art_names[k], hex, reel_strerror(rc));
        return rc;
    }
    reel_meta want, got;
    stage_art_meta(c, k, &want);
    bool same = v.size == a->size && v.meta_size > 0 &&
                reel_meta_decode(v.meta, v.meta_size, &got) == 0 && got.kind == want.kind &&
                got.dtype == want.dtype && got.ndim == want.ndim &&
                memcmp(got.shape, want.shape, sizeof got.shape) == 0 &&
                strcmp(got.format, want.format) == 0;
    if (!same) {
        snprintf(why, cap,
                 "its %s %s is an object of %llu bytes or of another type than its "
                 "record says (%llu bytes)",
                 art_names[k], hex, (unsigned long long)v.size, (unsigned long long)a->size);
        reel_obj_release(store, &a->id);
        return -EBADMSG;
    }
    a->data = v.data;
    *view = v;
    return 0;
}

void stage_art_release(reel_actor_ctx *ctx, vt_art *a) {
    if (a->data && vt_art_present(a))
        reel_obj_release(reel_actor_store(ctx), &a->id);
    a->data = NULL;
}

void stage_art_drop(vt_clip *c, stage_art_kind k) {
    *clip_art(c, k) = (vt_art){0};
    if (k == STAGE_ART_FRAMES) {
        c->frames_n = c->frames_h = c->frames_w = 0;
        c->frames_fps = 0;
    } else if (k == STAGE_ART_TENSOR) {
        c->tensor_n = c->tensor_h = c->tensor_w = 0;
    }
}

int stage_check_artifacts(reel_actor_ctx *ctx, const char *stage, video_task *t) {
    for (uint32_t i = 0; i < t->n_clips; i++) {
        vt_clip *c = &t->clips[i];
        for (int k = STAGE_ART_MP4; k <= STAGE_ART_PREVIEW; k++) {
            vt_art *a = clip_art(c, (stage_art_kind)k);
            if (!vt_art_present(a))
                continue;
            char why[256];
            if (stage_art_get(ctx, c, (stage_art_kind)k, a, why, sizeof why) == 0) {
                stage_art_release(ctx, a);
                continue;
            }
            if (!t->clip_texts && !(t->clip_texts = calloc(t->n_clips, VT_TEXT_MAX)))
                return -ENOMEM;
            stage_add_error(c, t->clip_texts + (size_t)i * VT_TEXT_MAX, VT_TEXT_MAX, "%s: %s",
                            stage, why);
            stage_art_drop(c, (stage_art_kind)k);
        }
    }
    return 0;
}

/* Makes a clip's new artifact k of the bytes in a->data. */
static int art_make(reel_actor_ctx *ctx, reel_actor_out *out, vt_clip *c, stage_art_kind k,
                    vt_art *a) {
    reel_meta m;
    stage_art_meta(c, k, &m);
    uint8_t meta[256];
    size_t len;
    int rc = reel_meta_encode(&m, meta, sizeof meta, &len);
    void *buf;
    reel_id id;
    if (rc == 0)
        rc = reel_actor_artifact(out, a->size, meta, (uint32_t)len, &id, &buf);
    if (rc) {
        reel_actor_set_error(ctx, "clip %s: cannot make its %llu-byte %s: %s", c->uuid,
                             (unsigned long long)a->size, art_names[k], reel_strerror(rc));
        return rc;
    }
    memcpy(buf, a->data, a->size);
    a->id = id;
    return 0;
}

int stage_write_task(reel_actor_ctx *ctx, reel_actor_out *out, video_task *t, bool copied) {
    for (uint32_t i = 0; i < t->n_clips; i++) {
        vt_clip *c = &t->clips[i];
        for (int k = STAGE_ART_MP4; k <= STAGE_ART_PREVIEW; k++) {
            vt_art *a = clip_art(c, (stage_art_kind)k);
            int rc = 0;
            if (vt_art_present(a)) {
                rc = reel_actor_carry(out, &a->id);
                if (rc)
                    reel_actor_set_error(ctx, "clip %s: cannot carry its %s on: %s", c->uuid,
                                         art_names[k], reel_strerror(rc));
            } else if (a->data && a->size) {
                rc = art_make(ctx, out, c, (stage_art_kind)k, a);
            } else {
                *a = (vt_art){0};
            }
            if (rc)
                return rc;
        }
    }
    video_task w = *t;
    uint64_t size = vt_size(&w);
    if (copied)
        w.bytes_copied += size;
    void *buf;
    int rc = reel_actor_output(out, size, NULL, 0, &buf);
    if (rc) {
        reel_actor_set_error(ctx, "cannot make the task's %llu-byte output: %s",
                             (unsigned long long)size, reel_strerror(rc));
        return rc;
    }
    return vt_write(&w, buf, size);
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
