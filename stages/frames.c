/*
 * Frame extraction: NeMo Curator's ClipFrameExtractionStage with its
 * "sequence" policy. Each clip that is kept (not filtered) and has its MP4
 * gets frames at frames_fps, every one scaled to frames_size square RGB24
 * (bilinear, aspect not kept, as Curator's resize to a target resolution),
 * as uint8 HWC in clip.frames: frames_n x frames_size x frames_size x 3.
 *
 * Which frames, as Curator's sample_closest(endpoint=True): frame i is at
 * i / fps (media.h's numbering); samples are at k / frames_fps for k = 0, 1,
 * ... while below last + 0.5 / frames_fps, where last is the last frame's
 * time; each takes the nearest frame (the earlier one on a tie; samples past
 * the last frame take the last). A sample rate above the clip's repeats
 * frames, as Curator's does. fps and the frame count are the MP4's (the
 * transcoder writes exact counts); should the clip decode to fewer frames
 * than it claims, the samples past its end take its last frame.
 *
 * A clip that has its frames already is left as it is: in the pipeline the
 * transcoder takes them from the pictures it encodes, by the same rule
 * (clip_frames_plan), so that the clip is not decoded again here; this
 * stage decodes the MP4 for the clips it did not (a video that ended early,
 * a task from elsewhere).
 */
#include "clip_util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Where the samples go: out, n x size x size x 3. */
typedef struct frames_out {
    uint32_t size;
    uint8_t *out;
} frames_out;

/* Samples k .. k + count - 1, which show frame. */
static int take(void *arg, uint32_t k, uint32_t count, const AVFrame *frame) {
    frames_out *f = arg;
    return clip_frames_put(f->out, f->size, k, count, frame);
}

/* clip_stage's work: the clip's frames into a new buffer. */
static int extract(const reel_curate_options *o, vt_clip *c, void **owned, char *why, size_t cap) {
    clip_video v;
    int rc = clip_video_open(c, &v, why, cap);
    if (rc)
        return rc;
    int64_t *idx;
    uint32_t n;
    rc = clip_frames_plan(v.num_frames, v.fps, o->frames_fps, &idx, &n);
    if (rc) {
        if (rc != -ENOMEM)
            snprintf(why, cap, "cannot sample %lld frames at %g fps from a %g fps clip",
                     (long long)v.num_frames, o->frames_fps, v.fps);
        clip_video_close(&v);
        return rc;
    }
    frames_out f = {.size = o->frames_size, .out = malloc(clip_frame_bytes(o->frames_size) * n)};
    if (!f.out) {
        snprintf(why, cap, "out of memory for its frames");
        rc = -ENOMEM;
    } else {
        /* A clip decoded only in part keeps the frames it had: why says what
         * happened, and clip_stage_process records it. */
        rc = clip_video_pick(&v, idx, n, take, &f, NULL, why, cap);
        if (rc && rc != -ENOMEM && !why[0])
            snprintf(why, cap, "cannot convert a frame to RGB: %s", strerror(-rc));
    }
    if (rc == 0) {
        *owned = f.out;
        c->frames = (vt_art){.data = f.out, .size = (uint64_t)clip_frame_bytes(o->frames_size) * n};
        c->frames_n = n;
        c->frames_h = c->frames_w = o->frames_size;
        c->frames_fps = o->frames_fps;
    } else {
        free(f.out);
    }
    free(idx);
    clip_video_close(&v);
    return rc;
}

static bool wants(const vt_clip *c) {
    return clip_kept_with_mp4(c) && !vt_art_present(&c->frames);
}

static int frames_process(reel_actor_ctx *ctx, const reel_view *in, size_t n, reel_actor_out *out) {
    static const clip_stage stage = {"frames", STAGE_ART_MP4, wants, extract};
    return clip_stage_process(ctx, in, n, out, &stage);
}

const reel_actor_def stage_frames_def = {
    .name = "frames",
    .process = frames_process,
    .cpus = 1,
};
