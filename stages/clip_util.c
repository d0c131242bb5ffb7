/* The per-clip stages' loop and frame picking: clip_util.h. */
#include "clip_util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the stage -------------------------------------------------------------------- */

/* What a task's clips hold until it is written: for each clip, its error
 * text (VT_TEXT_MAX bytes, made on its first error) and the buffer the
 * stage made for it. */
typedef struct clip_scratch {
    uint32_t n;
    char **errors;
    void **owned;
} clip_scratch;

static void scratch_free(clip_scratch *s) {
    for (uint32_t i = 0; i < s->n; i++) {
        if (s->errors)
            free(s->errors[i]);
        if (s->owned)
            free(s->owned[i]);
    }
    free(s->errors);
    free(s->owned);
}

static int scratch_init(clip_scratch *s, uint32_t n) {
    s->n = n;
    s->errors = calloc(n ? n : 1, sizeof *s->errors);
    s->owned = calloc(n ? n : 1, sizeof *s->owned);
    if (!s->errors || !s->owned) {
        scratch_free(s);
        return -ENOMEM;
    }
    return 0;
}

/* Appends "<stage>: <why>" to clip i's errors (stage_add_error). */
static int record(clip_scratch *s, video_task *t, uint32_t i, const char *stage, const char *why) {
    if (!s->errors[i] && !(s->errors[i] = malloc(VT_TEXT_MAX)))
        return -ENOMEM;
    stage_add_error(&t->clips[i], s->errors[i], VT_TEXT_MAX, "%s: %s", stage, why);
    return 0;
}

bool clip_kept_with_mp4(const vt_clip *c) {
    return !c->filtered && vt_art_present(&c->mp4);
}

int clip_stage_process(reel_actor_ctx *ctx, const reel_view *in, size_t n, reel_actor_out *out,
                       const clip_stage *st) {
    const reel_curate_options *o = stage_options(ctx);
    video_task t;
    int rc = stage_read_task(ctx, st->name, in, n, &t);
    if (rc)
        return rc;
    bool any = false;
    for (uint32_t i = 0; i < t.n_clips && !any; i++)
        any = st->wants(&t.clips[i]);
    if (!any && !t.clip_texts) { /* nothing to add: the task goes on as it came */
        vt_free(&t);
        return reel_actor_forward(out, 0);
    }
    clip_scratch s;
    if ((rc = scratch_init(&s, t.n_clips)) != 0) {
        reel_actor_set_error(ctx, "out of memory");
        vt_free(&t);
        return rc;
    }
    for (uint32_t i = 0; i < t.n_clips; i++) {
        vt_clip *c = &t.clips[i];
        if (!st->wants(c))
            continue;
        char why[256] = "";
        /* The artifact the work reads, mapped for it alone: work may drop it
         * from the clip (the frames a tensor was made of), so it is released
         * by this copy. */
        vt_art *src = st->reads == STAGE_ART_MP4 ? &c->mp4 : &c->frames;
        int err = stage_art_get(ctx, c, st->reads, src, why, sizeof why);
        if (err == 0) {
            vt_art held = *src;
            err = st->work(o, c, &s.owned[i], why, sizeof why);
            stage_art_release(ctx, &held);
            if (src->data == held.data)
                src->data = NULL;
        } else {
            stage_art_drop(c, st->reads); /* not to be carried on unread */
        }
        if (err == -ENOMEM) {
            reel_actor_set_error(ctx, "clip %s: %s", c->uuid, why[0] ? why : "out of memory");
            rc = err;
            break;
        }
        if ((err || why[0]) && record(&s, &t, i, st->name, why) != 0) {
            reel_actor_set_error(ctx, "out of memory");
            rc = -ENOMEM;
            break;
        }
    }
    if (rc == 0)
        rc = stage_write_task(ctx, out, &t, true);
    scratch_free(&s);
    vt_free(&t);
    return rc;
}

/* ---- frames out of a clip's MP4 ------------------------------------------------------ */

int clip_video_open(const vt_clip *c, clip_video *v, char *why, size_t cap) {
    v->m = NULL;
    /* Frames and previews are scaled down, never encoded again: the
     * decoder's shortcuts cost nothing visible there. */
    const media_open_options fast = {.threads = 1, .fast = true};
    int rc = media_open(c->mp4.data, c->mp4.size, &fast, &v->m, why, cap);
    if (rc)
        return rc;
    vt_probe p;
    media_probe(v->m, &p);
    v->num_frames = p.num_frames > 0 ? p.num_frames : c->num_frames;
    v->fps = p.fps > 0 ? p.fps : c->fps;
    return 0;
}

void clip_video_close(clip_video *v) {
    media_close(v->m);
    v->m = NULL;
}

typedef struct pick_run {
    const int64_t *idx;
    uint32_t n;
    uint32_t next; /* the first sample not taken yet */
    int (*take)(void *arg, uint32_t k, uint32_t count, const AVFrame *frame);
    void *arg;
    AVFrame *last; /* a reference to the last frame decoded */
} pick_run;

static int pick_frame(void *arg, int64_t index, const AVFrame *frame) {
    pick_run *r = arg;
    uint32_t k = r->next;
    while (r->next < r->n && r->idx[r->next] <= index)
        r->next++;
    if (r->next > k) {
        int rc = r->take(r->arg, k, r->next - k, frame);
        if (rc)
            return rc;
    }
    if (r->next == r->n)
        return 1;
    av_frame_unref(r->last);
    return av_frame_ref(r->last, frame) < 0 ? -ENOMEM : 0;
}

int clip_video_pick(clip_video *v, const int64_t *idx, uint32_t n,
                    int (*take)(void *arg, uint32_t k, uint32_t count, const AVFrame *frame),
                    void *arg, bool *partial, char *why, size_t cap) {
    if (n == 0 || idx[0] < 0) {
        snprintf(why, cap, "no frames to pick");
        return -EINVAL;
    }
    pick_run r = {.idx = idx, .n = n, .take = take, .arg = arg, .last = av_frame_alloc()};
    if (!r.last)
        return -ENOMEM;
    /* From frame 0, not idx[0]: the frames before it are decoded all the
     * same, and the last of them may be needed. */
    int rc = media_decode(v->m, 0, idx[n - 1] + 1, pick_frame, &r, partial, why, cap);
    if (rc == 0 && r.next < n) {
        if (r.last->buf[0]) { /* fewer frames than the clip claims: its last */
            rc = take(arg, r.next, n - r.next, r.last);
        } else {
            snprintf(why, cap, "no frame decoded of the %lld the clip claims",
                     (long long)v->num_frames);
            rc = -EIO;
        }
    }
    av_frame_free(&r.last);
    return rc;
}

/* ---- which frames, and what of them --------------------------------------------------- */

int clip_frames_plan(int64_t num_frames, double fps, double rate, int64_t **idx, uint32_t *n) {
    *n = 0;
    *idx = NULL;
    if (num_frames <= 0 || !(fps > 0) || !(rate > 0))
        return -EINVAL;
    double last = (double)(num_frames - 1) / fps;
    double stop = last + 0.5 / rate;
    /* np.arange(0, stop, 1 / rate): ceil(stop x rate) samples, computed with a
     * little slack so that a stop that is a whole number of steps stays out. */
    double count = ceil(stop * rate - 1e-9);
    if (count < 1)
        count = 1;
    if (count > CLIP_FRAMES_MAX)
        return -E2BIG;
    uint32_t total = (uint32_t)count;
    int64_t *v = malloc(total * sizeof *v);
    if (!v)
        return -ENOMEM;
    for (uint32_t k = 0; k < total; k++) {
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
        v[k] = j;
    }
    *idx = v;
    *n = total;
    return 0;
}

size_t clip_frame_bytes(uint32_t size) {
    return (size_t)size * size * 3;
}

int clip_frames_put(uint8_t *frames, uint32_t size, uint32_t k, uint32_t count,
                    const AVFrame *frame) {
    const size_t bytes = clip_frame_bytes(size);
    uint8_t *first = frames + bytes * k;
    int rc = media_frame_to_rgb(frame, size, size, first);
    for (uint32_t j = 1; rc == 0 && j < count; j++)
        memcpy(first + bytes * j, first, bytes);
    return rc;
}

int64_t clip_middle_frame(int64_t n) {
    if (n <= 0)
        return 0;
    return n % 2 == 0 ? n / 2 - 1 : n / 2;
}

#define PREVIEW_QUALITY 85 /* media_jpeg's 1..100 */

int clip_preview_jpeg(const AVFrame *frame, uint32_t side, uint8_t **jpeg, uint64_t *size,
                      char *why, size_t cap) {
    /* The longer side becomes side. */
    double longer = frame->width > frame->height ? frame->width : frame->height;
    if (!(longer > 0)) {
        snprintf(why, cap, "the frame has no picture");
        return -EINVAL;
    }
    uint32_t w = (uint32_t)fmax(1, nearbyint((double)frame->width * side / longer));
    uint32_t h = (uint32_t)fmax(1, nearbyint((double)frame->height * side / longer));
    uint8_t *rgb = malloc((size_t)w * h * 3);
    if (!rgb)
        return -ENOMEM;
    int rc = media_frame_to_rgb(frame, w, h, rgb);
    if (rc)
        snprintf(why, cap, "cannot convert the middle frame to RGB: %s", strerror(-rc));
    else
        rc = media_jpeg(rgb, w, h, PREVIEW_QUALITY, jpeg, size, why, cap);
    free(rgb);
    return rc;
}
