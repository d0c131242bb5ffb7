/*
 * The preview stage: one small JPEG per kept clip (not filtered, with its
 * MP4), of the clip's middle frame - Curator's "middle" extraction policy:
 * frame n / 2 of n, or n / 2 - 1 when n is even - scaled so that its longer
 * side is preview_size pixels (the other in proportion, rounded, at least
 * 1), in clip.preview. Should the clip decode to fewer frames than it
 * claims, its last frame stands in.
 *
 * A clip that has its preview already is left as it is: in the pipeline the
 * transcoder makes it of the picture it encodes as that frame (see
 * frames.c), and this stage decodes the MP4 only for the clips it did not.
 */
#include "clip_util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    int64_t mid = clip_middle_frame(v.num_frames);
    AVFrame *frame = av_frame_alloc();
    rc = frame ? clip_video_pick(&v, &mid, 1, take, frame, NULL, why, cap) : -ENOMEM;
    if (rc == 0)
        why[0] = '\0'; /* a clip decoded only in part still has its preview */
    uint8_t *jpeg = NULL;
    uint64_t size = 0;
    if (rc == 0)
        rc = clip_preview_jpeg(frame, o->preview_size, &jpeg, &size, why, cap);
    if (rc == 0) {
        *owned = jpeg;
        c->preview = (vt_art){.data = jpeg, .size = size};
    }
    av_frame_free(&frame);
    clip_video_close(&v);
    return rc;
}

static bool wants(const vt_clip *c) {
    return clip_kept_with_mp4(c) && !vt_art_present(&c->preview);
}

static int preview_process(reel_actor_ctx *ctx, const reel_view *in, size_t n,
                           reel_actor_out *out) {
    static const clip_stage stage = {"preview", STAGE_ART_MP4, wants, make_preview};
    return clip_stage_process(ctx, in, n, out, &stage);
}

const reel_actor_def stage_preview_def = {
    .name = "preview",
    .process = preview_process,
    .cpus = 1,
};
