/*
 * The preview stage: one small JPEG per kept clip (not filtered, with its
 * MP4), of the clip's middle frame - Curator's "middle" extraction policy:
 * frame n / 2 of n, or n / 2 - 1 when n is even - scaled so that its longer
 * side is preview_size pixels (the other in proportion, rounded, at least
 * 1), in clip.preview. Should the clip decode to fewer frames than it
 * claims, its last frame stands in.
 */
#include "clip_util.h"
#include "media.h"
#include "stages_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PREVIEW_QUALITY 85 /* media_jpeg's 1..100 */

/* Curator's middle of n frames. */
static int64_t middle_index(int64_t n) {
    if (n <= 0)
        return 0;
    return n % 2 == 0 ? n / 2 - 1 : n / 2;
}

/* The preview's size for a w x h frame: the longer side becomes side. */
static void preview_dims(int w, int h, uint32_t side, uint32_t *pw, uint32_t *ph) {
    double longer = w > h ? w : h;
    double a = fmax(1, nearbyint((double)w * side / longer));
    double b = fmax(1, nearbyint((double)h * side / longer));
    *pw = (uint32_t)a;
    *ph = (uint32_t)b;
}

typedef struct grab {
    AVFrame *frame; /* a reference to the frame taken (the last one, when keep_last) */
    bool keep_last;
} grab;

static int on_frame(void *arg, int64_t index, const AVFrame *frame) {
    (void)index;
    grab *g = arg;
    av_frame_unref(g->frame);
    if (av_frame_ref(g->frame, frame) < 0)
        return -ENOMEM;
    return g->keep_last ? 0 : 1;
}

/* Makes clip c's preview into *jpeg. Returns 0, -ENOMEM, or another
 * negative code with why set. */
static int make_preview(const vt_clip *c, uint32_t side, uint8_t **jpeg, uint64_t *size, char *why,
                        size_t cap) {
    media_input *m;
    int rc = media_open(c->mp4.data, c->mp4.size, 1, &m, why, cap);
    if (rc)
        return rc;
    vt_probe p;
    media_probe(m, &p);
    int64_t mid = middle_index(p.num_frames > 0 ? p.num_frames : c->num_frames);
    grab g = {.frame = av_frame_alloc()};
    if (!g.frame) {
        media_close(m);
        return -ENOMEM;
    }
    rc = media_decode(m, mid, -1, on_frame, &g, NULL, why, cap);
    if (rc == 0 && !g.frame->buf[0]) { /* the clip ends before its middle: take its last */
        g.keep_last = true;
        rc = media_decode(m, 0, -1, on_frame, &g, NULL, why, cap);
        if (rc == 0 && !g.frame->buf[0]) {
            snprintf(why, cap, "the clip has no frame");
            rc = -EIO;
        }
    }
    uint8_t *rgb = NULL;
    if (rc == 0) {
        uint32_t w, h;
        preview_dims(g.frame->width, g.frame->height, side, &w, &h);
        rgb = malloc((size_t)w * h * 3);
        if (!rgb)
            rc = -ENOMEM;
        else if ((rc = media_frame_to_rgb(g.frame, w, h, rgb)) != 0)
            snprintf(why, cap, "cannot convert the middle frame to RGB: %s", strerror(-rc));
        else
            rc = media_jpeg(rgb, w, h, PREVIEW_QUALITY, jpeg, size, why, cap);
    }
    free(rgb);
    av_frame_free(&g.frame);
    media_close(m);
    return rc;
}

static int preview_process(reel_actor_ctx *ctx, const reel_view *in, size_t n,
                           reel_actor_out *out) {
    const reel_curate_options *o = stage_options(ctx);
    video_task t;
    int rc = stage_read_task(ctx, in, n, &t);
    if (rc)
        return rc;
    bool any = false;
    for (uint32_t i = 0; i < t.n_clips; i++)
        any |= !t.clips[i].filtered && t.clips[i].mp4.size > 0;
    if (!any) {
        vt_free(&t);
        return reel_actor_forward(out, 0);
    }
    clip_scratch s;
    if ((rc = clip_scratch_init(&s, t.n_clips)) != 0) {
        reel_actor_set_error(ctx, "out of memory");
        vt_free(&t);
        return rc;
    }
    for (uint32_t i = 0; i < t.n_clips; i++) {
        vt_clip *c = &t.clips[i];
        if (c->filtered || c->mp4.size == 0)
            continue;
        uint8_t *jpeg = NULL;
        uint64_t size = 0;
        char why[256] = "";
        int err = make_preview(c, o->preview_size, &jpeg, &size, why, sizeof why);
        if (err == -ENOMEM) {
            reel_actor_set_error(ctx, "clip %s: out of memory for its preview", c->uuid);
            rc = err;
            break;
        }
        if (err) {
            if (clip_error(&s, &t, i, "preview", "%s", why) != 0) {
                reel_actor_set_error(ctx, "out of memory");
                rc = -ENOMEM;
                break;
            }
            continue;
        }
        s.owned[i] = jpeg;
        c->preview = (vt_bytes){jpeg, size};
    }
    if (rc == 0)
        rc = stage_write_task(ctx, out, &t);
    clip_scratch_free(&s);
    vt_free(&t);
    return rc;
}

const reel_actor_def stage_preview_def = {
    .name = "preview",
    .process = preview_process,
    .cpus = 1,
};
