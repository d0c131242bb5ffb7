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
 */
#include "clip_util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FRAMES_MAX 100000u /* samples per clip, at most (a 14-hour clip at 2 fps) */

/* The frame each sample takes: idx[0..n), nondecreasing. */
typedef struct frame_plan {
    uint32_t n;
    int64_t *idx;
} frame_plan;

static int plan_samples(int64_t num_frames, double fps, double rate, frame_plan *p) {
    p->n = 0;
    p->idx = NULL;
    if (num_frames <= 0 || !(fps > 0) || !(rate > 0))
        return -EINVAL;
    double last = (double)(num_frames - 1) / fps;
    double stop = last + 0.5 / rate;
    /* np.arange(0, stop, 1 / rate): ceil(stop x rate) samples, computed with a
     * little slack so that a stop that is a whole number of steps stays out. */
    double count = ceil(stop * rate - 1e-9);
    if (count < 1)
        count = 1;
    if (count > FRAMES_MAX)
        return -E2BIG;
    p->n = (uint32_t)count;
    if (!(p->idx = malloc(p->n * sizeof *p->idx)))
        return -ENOMEM;
    for (uint32_t k = 0; k < p->n; k++) {
        double t = k / rate;
        int64_t j;
        if (t >= last) {
            j = num_frames - 1;
        } else {
            j = (int64_t)floor(t * fps);
            if (j < 0)
                j = 0;
            if (j + 1 < num_frames && fabs(t - (double)(j + 1) / fps) < fabs(t - (double)j / fps))
                j++;
        }
        p->idx[k] = j;
    }
    return 0;
}

static size_t frame_bytes(uint32_t size) {
    return (size_t)size * size * 3;
}

/* Where the samples go: out, n x size x size x 3. */
typedef struct frames_out {
    uint32_t size;
    uint8_t *out;
} frames_out;

/* Samples k .. k + count - 1, which show frame: one conversion, then copies. */
static int take(void *arg, uint32_t k, uint32_t count, const AVFrame *frame) {
    frames_out *f = arg;
    const size_t bytes = frame_bytes(f->size);
    uint8_t *first = f->out + bytes * k;
    int rc = media_frame_to_rgb(frame, f->size, f->size, first);
    if (rc)
        return rc;
    for (uint32_t j = 1; j < count; j++)
        memcpy(first + bytes * j, first, bytes);
    return 0;
}

/* clip_stage's work: the clip's frames into a new buffer. */
static int extract(const reel_curate_options *o, vt_clip *c, void **owned, char *why, size_t cap) {
    clip_video v;
    int rc = clip_video_open(c, &v, why, cap);
    if (rc)
        return rc;
    frame_plan plan;
    rc = plan_samples(v.num_frames, v.fps, o->frames_fps, &plan);
    if (rc) {
        if (rc != -ENOMEM)
            snprintf(why, cap, "cannot sample %lld frames at %g fps from a %g fps clip",
                     (long long)v.num_frames, o->frames_fps, v.fps);
        clip_video_close(&v);
        return rc;
    }
    frames_out f = {.size = o->frames_size, .out = malloc(frame_bytes(o->frames_size) * plan.n)};
    if (!f.out) {
        snprintf(why, cap, "out of memory for its frames");
        rc = -ENOMEM;
    } else {
        /* A clip decoded only in part keeps the frames it had: why says what
         * happened, and clip_stage_process records it. */
        rc = clip_video_pick(&v, plan.idx, plan.n, take, &f, NULL, why, cap);
        if (rc && rc != -ENOMEM && !why[0])
            snprintf(why, cap, "cannot convert a frame to RGB: %s", strerror(-rc));
    }
    if (rc == 0) {
        *owned = f.out;
        c->frames = (vt_bytes){f.out, (uint64_t)frame_bytes(o->frames_size) * plan.n};
        c->frames_n = plan.n;
        c->frames_h = c->frames_w = o->frames_size;
        c->frames_fps = o->frames_fps;
    } else {
        free(f.out);
    }
    free(plan.idx);
    clip_video_close(&v);
    return rc;
}

static int frames_process(reel_actor_ctx *ctx, const reel_view *in, size_t n, reel_actor_out *out) {
    static const clip_stage stage = {"frames", clip_kept_with_mp4, extract};
    return clip_stage_process(ctx, in, n, out, &stage);
}

const reel_actor_def stage_frames_def = {
    .name = "frames",
    .process = frames_process,
    .cpus = 1,
};
