/*
 * The preview stage: one small JPEG per kept clip (not filtered, with its
 * MP4), of the clip's middle frame - Curator's "middle" extraction policy:
 * frame n / 2 of n, or n / 2 - 1 when n is even - scaled so that its longer
 * side is preview_size pixels (the other in proportion, rounded, at least
 * 1), in clip.preview. Should the clip decode to fewer frames than it
 * claims, its last frame stands in.
 */
#include "clip_util.h"

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

/* The middle frame: a reference to it. */
static int take(void *arg, uint32_t k, uint32_t count, const AVFrame *frame) {
    (void)k, (void)count;
    return av_frame_ref(arg, frame) < 0 ? -ENOMEM : 0;
}

/* clip_stage's work: the clip's preview, a JPEG. */
static int make_preview(const reel_curate_options *o, vt_clip *c, void **owned, char *why,
                        size_t cap) {
    clip_video v;
    int rc = clip_video_open(c, &v, why, cap);
    if (rc)
        return rc;
    int64_t mid = middle_index(v.num_frames);
    AVFrame *frame = av_frame_alloc();
    rc = frame ? clip_video_pick(&v, &mid, 1, take, frame, NULL, why, cap) : -ENOMEM;
    if (rc == 0)
        why[0] = '\0'; /* a clip decoded only in part still has its preview */
    uint8_t *rgb = NULL, *jpeg = NULL;
    uint64_t size = 0;
    if (rc == 0) {
        uint32_t w, h;
        preview_dims(frame->width, frame->height, o->preview_size, &w, &h);
        rgb = malloc((size_t)w * h * 3);
        if (!rgb)
            rc = -ENOMEM;
        else if ((rc = media_frame_to_rgb(frame, w, h, rgb)) != 0)
            snprintf(why, cap, "cannot convert the middle frame to RGB: %s", strerror(-rc));
        else
            rc = media_jpeg(rgb, w, h, PREVIEW_QUALITY, &jpeg, &size, why, cap);
    }
    if (rc == 0) {
        *owned = jpeg;
        c->preview = (vt_bytes){jpeg, size};
    }
    free(rgb);
    av_frame_free(&frame);
    clip_video_close(&v);
    return rc;
}

static int preview_process(reel_actor_ctx *ctx, const reel_view *in, size_t n,
                           reel_actor_out *out) {
    static const clip_stage stage = {"preview", clip_kept_with_mp4, make_preview};
    return clip_stage_process(ctx, in, n, out, &stage);
}

const reel_actor_def stage_preview_def = {
    .name = "preview",
    .process = preview_process,
    .cpus = 1,
};
