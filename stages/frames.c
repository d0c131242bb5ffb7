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
#include "media.h"
#include "stages_internal.h"

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

typedef struct frames_run {
    const frame_plan *plan;
    uint32_t size;
    uint8_t *out;  /* plan->n x size x size x 3 */
    uint32_t next; /* the first sample not filled yet */
    AVFrame *last; /* a reference to the last frame decoded */
    int err;
} frames_run;

static size_t frame_bytes(uint32_t size) {
    return (size_t)size * size * 3;
}

/* Fills samples next.. that take frame (index). */
static int fill(frames_run *r, int64_t index, const AVFrame *frame) {
    uint8_t *first = NULL;
    while (r->next < r->plan->n && r->plan->idx[r->next] <= index) {
        uint8_t *dst = r->out + frame_bytes(r->size) * r->next;
        if (first) {
            memcpy(dst, first, frame_bytes(r->size));
        } else {
            int rc = media_frame_to_rgb(frame, r->size, r->size, dst);
            if (rc)
                return rc;
            first = dst;
        }
        r->next++;
    }
    return 0;
}

static int on_frame(void *arg, int64_t index, const AVFrame *frame) {
    frames_run *r = arg;
    int rc = fill(r, index, frame);
    if (rc)
        return rc;
    if (r->next == r->plan->n)
        return 1;
    av_frame_unref(r->last);
    return av_frame_ref(r->last, frame) < 0 ? -ENOMEM : 0;
}

/* Extracts clip c's frames into a new buffer (*out). Returns 0, -ENOMEM, or
 * another negative code with why set (a clip that cannot be decoded). */
static int extract(const vt_clip *c, const reel_curate_options *o, uint8_t **out, uint32_t *n,
                   bool *partial, char *why, size_t cap) {
    media_input *m;
    int rc = media_open(c->mp4.data, c->mp4.size, 1, &m, why, cap);
    if (rc)
        return rc;
    vt_probe p;
    media_probe(m, &p);
    double fps = p.fps > 0 ? p.fps : c->fps;
    int64_t count = p.num_frames > 0 ? p.num_frames : c->num_frames;
    frame_plan plan;
    rc = plan_samples(count, fps, o->frames_fps, &plan);
    if (rc) {
        if (rc != -ENOMEM)
            snprintf(why, cap, "cannot sample %lld frames at %g fps from a %g fps clip",
                     (long long)count, o->frames_fps, fps);
        media_close(m);
        return rc;
    }
    frames_run r = {.plan = &plan, .size = o->frames_size, .last = av_frame_alloc()};
    r.out = malloc(frame_bytes(r.size) * plan.n);
    if (!r.out || !r.last) {
        rc = -ENOMEM;
    } else {
        rc =
            media_decode(m, plan.idx[0], plan.idx[plan.n - 1] + 1, on_frame, &r, partial, why, cap);
        if (rc == 0 && r.next < plan.n) {
            if (r.last->buf[0]) /* fewer frames than the clip claims: its last */
                rc = fill(&r, INT64_MAX, r.last);
            else {
                snprintf(why, cap, "no frame decoded of %lld", (long long)count);
                rc = -EIO;
            }
        } else if (rc > 0) {
            rc = 0;
        }
        if (rc && rc != -ENOMEM && !why[0])
            snprintf(why, cap, "cannot convert a frame to RGB: %s", strerror(-rc));
    }
    if (rc == 0) {
        *out = r.out;
        *n = plan.n;
    } else {
        free(r.out);
    }
    av_frame_free(&r.last);
    free(plan.idx);
    media_close(m);
    return rc;
}

static int frames_process(reel_actor_ctx *ctx, const reel_view *in, size_t n, reel_actor_out *out) {
    const reel_curate_options *o = stage_options(ctx);
    video_task t;
    int rc = stage_read_task(ctx, in, n, &t);
    if (rc)
        return rc;
    bool any = false;
    for (uint32_t i = 0; i < t.n_clips; i++)
        any |= !t.clips[i].filtered && t.clips[i].mp4.size > 0;
    if (!any) { /* nothing to add: the task goes on as it came */
        vt_free(&t);
        return reel_actor_forward(out, 0);
    }
    clip_scratch s;
    if ((rc = clip_scratch_init(&s, t.n_clips)) != 0) {
        reel_actor_set_error(ctx, "out of memory");
        vt_free(&t);
        return rc;
    }
    for (uint32_t i = 0; i < t.n_clips && rc == 0; i++) {
        vt_clip *c = &t.clips[i];
        if (c->filtered || c->mp4.size == 0)
            continue;
        uint8_t *frames = NULL;
        uint32_t count = 0;
        bool partial = false;
        char why[256] = "";
        int err = extract(c, o, &frames, &count, &partial, why, sizeof why);
        if (err == -ENOMEM) {
            reel_actor_set_error(ctx, "clip %s: out of memory for its frames", c->uuid);
            rc = err;
            break;
        }
        if ((err || partial) && clip_error(&s, &t, i, "frames", "%s", why) != 0) {
            free(frames);
            reel_actor_set_error(ctx, "out of memory");
            rc = -ENOMEM;
            break;
        }
        if (err)
            continue;
        s.owned[i] = frames;
        c->frames = (vt_bytes){frames, (uint64_t)frame_bytes(o->frames_size) * count};
        c->frames_n = count;
        c->frames_h = c->frames_w = o->frames_size;
        c->frames_fps = o->frames_fps;
    }
    if (rc == 0)
        rc = stage_write_task(ctx, out, &t);
    clip_scratch_free(&s);
    vt_free(&t);
    return rc;
}

const reel_actor_def stage_frames_def = {
    .name = "frames",
    .process = frames_process,
    .cpus = 1,
};
