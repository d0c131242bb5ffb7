/*
 * The motion filter: NeMo Curator's MotionVectorDecodeStage and
 * MotionFilterStage in one stage, on the motion vectors libavcodec's H.264
 * decoder exports (AV_CODEC_EXPORT_DATA_MVS, as PyAV's flags2 +export_mvs).
 *
 * Sampling, as Curator's decode_for_motion (target_fps 2, target_duration_ratio
 * 0.5): every round(fps / 2)-th decoded frame (Python's round: half to even)
 * is looked at, starting with frame 0; those that carry motion vectors (not
 * the I-frames) are used, until max(10, round(2 x duration x 0.5)) of them,
 * with the duration in whole seconds of the container. Clips under 256 pixels
 * on a side are refused, as Curator's are.
 *
 * Normalization, as Curator's check_if_small_motion: each used frame becomes
 * a flow field of frame size, every pixel of an exported block (8x8, 16x16,
 * 16x8 or 8x16, centred on dst) set to the block's vector -motion / scale in
 * pixels (displacement from the reference picture; later vectors overwrite
 * earlier ones, block shapes in that order; blocks past the edge are clamped
 * onto it); pixels no vector covers (intra blocks) are 0. A pixel's motion is
 * the vector's length divided by (width + height), so that scores do not
 * depend on the resolution: 0.00098, the default global threshold, is about
 * 2.9 pixels of displacement at 1920x1080. Then
 *
 *   global_mean       = mean over used frames and pixels
 *   per_patch_min_256 = min of cv2.resize(mean over frames per pixel,
 *                       fx = fy = 1/256, INTER_LINEAR): one bilinear sample
 *                       at the centre of each 256-pixel cell (cells rounded
 *                       to the nearest, halves to even), as OpenCV takes it
 *
 * and a clip is small-motion when either is below its threshold. A clip that
 * cannot be scored (undecodable, too small, no vector found) gets an error
 * and Curator's stand-in scores of -1, which count as small motion.
 */
#include "clip_util.h"

#include <errno.h>
#include <libavutil/motion_vector.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MOTION_TARGET_FPS     2.0
#define MOTION_DURATION_RATIO 0.5
#define MOTION_MIN_FRAMES     10
#define MOTION_MIN_SIDE       256
#define MOTION_MAX_SIDE       16384 /* as media.c: larger frames are refused */
#define MOTION_PATCH          256
#define MOTION_NO_SCORE       (-1.0) /* Curator's score for a clip it could not decode */
#define MOTION_DEFAULT_FPS    30.0   /* Curator's assumption when the rate is not known */
#define MOTION_DEFAULT_S      30.0   /* likewise for the duration */

/* ---- the scores ---------------------------------------------------------------- */

typedef struct motion_acc {
    int w, h;          /* frame size, from frame 0 */
    float *flow;       /* w x h: this frame's motion per pixel */
    float *sum;        /* w x h: summed over the used frames */
    double global_sum; /* of every pixel of every used frame */
    uint32_t frames;   /* used: those with vectors */
} motion_acc;

static int clampi(int v, int lo, int hi) {
    return v < lo ? lo : v > hi ? hi : v;
}

/* One frame's vectors into the accumulator, as Curator's flow field: the
 * block shapes in its order, each block's pixels set (not added). */
static void acc_frame(motion_acc *a, const AVMotionVector *mv, size_t n) {
    static const uint8_t shapes[4][2] = {{8, 8}, {16, 16}, {16, 8}, {8, 16}};
    const float norm = 1.0f / (float)(a->w + a->h);
    memset(a->flow, 0, (size_t)a->w * a->h * sizeof *a->flow);
    for (int s = 0; s < 4; s++)
        for (size_t k = 0; k < n; k++) {
            const AVMotionVector *v = &mv[k];
            if (v->w != shapes[s][0] || v->h != shapes[s][1] || v->motion_scale == 0)
                continue;
            float dx = -(float)v->motion_x / v->motion_scale;
            float dy = -(float)v->motion_y / v->motion_scale;
            float m = sqrtf(dx * dx + dy * dy) * norm;
            for (int y = v->dst_y - v->h / 2; y < v->dst_y + v->h / 2; y++) {
                float *row = a->flow + (size_t)clampi(y, 0, a->h - 1) * a->w;
                for (int x = v->dst_x - v->w / 2; x < v->dst_x + v->w / 2; x++)
                    row[clampi(x, 0, a->w - 1)] = m;
            }
        }
    double total = 0;
    for (size_t i = 0; i < (size_t)a->w * a->h; i++) {
        a->sum[i] += a->flow[i];
        total += a->flow[i];
    }
    a->global_sum += total;
    a->frames++;
}

/* cv2.resize's output length for a scale of 1/256: cvRound, halves to even. */
static int cells(int n) {
    return (int)nearbyint((double)n / MOTION_PATCH);
}

/* One OpenCV INTER_LINEAR tap along an axis of length n for output index d. */
static void tap(int d, int n, int *i0, int *i1, float *f) {
    float s = (float)((d + 0.5) * MOTION_PATCH - 0.5);
    int i = (int)floorf(s);
    float fr = s - (float)i;
    if (i < 0)
        i = 0, fr = 0;
    if (i >= n - 1)
        i = n - 1, fr = 0;
    *i0 = i;
    *i1 = i + 1 < n ? i + 1 : i;
    *f = fr;
}

static double patch_min(const motion_acc *a) {
    int cw = cells(a->w), ch = cells(a->h);
    double best = INFINITY;
    for (int cy = 0; cy < ch; cy++) {
        int y0, y1;
        float fy;
        tap(cy, a->h, &y0, &y1, &fy);
        for (int cx = 0; cx < cw; cx++) {
            int x0, x1;
            float fx;
            tap(cx, a->w, &x0, &x1, &fx);
            const float k = 1.0f / (float)a->frames;
            float p00 = a->sum[(size_t)y0 * a->w + x0] * k,
                  p01 = a->sum[(size_t)y0 * a->w + x1] * k;
            float p10 = a->sum[(size_t)y1 * a->w + x0] * k,
                  p11 = a->sum[(size_t)y1 * a->w + x1] * k;
            float v = (1 - fy) * ((1 - fx) * p00 + fx * p01) + fy * ((1 - fx) * p10 + fx * p11);
            if (v < best)
                best = v;
        }
    }
    return best;
}

typedef struct motion_score {
    double global_mean, patch_min;
} motion_score;

typedef struct sampler {
    int64_t step;
    uint32_t max_frames;
    int64_t decoded; /* frames seen so far */
    motion_acc acc;
    int err; /* a refusal: -EINVAL or -ENOMEM, with why set */
    char *why;
    size_t cap;
} sampler;

/* One decoded frame (media_decode's callback): sampled or skipped. Returns 1
 * once enough are used, or on a refusal (s->err). */
static int sample(void *arg, int64_t i, const AVFrame *f) {
    sampler *s = arg;
    s->decoded = i + 1;
    if (i % s->step != 0)
        return 0;
    if (i == 0) {
        if (f->width < MOTION_MIN_SIDE || f->height < MOTION_MIN_SIDE) {
            snprintf(s->why, s->cap, "resolution %dx%d is below the %d pixels a side motion needs",
                     f->width, f->height, MOTION_MIN_SIDE);
            s->err = -EINVAL;
            return 1;
        }
        if (f->width > MOTION_MAX_SIDE || f->height > MOTION_MAX_SIDE) {
            snprintf(s->why, s->cap, "resolution %dx%d is above the %d pixels a side reel decodes",
                     f->width, f->height, MOTION_MAX_SIDE);
            s->err = -EINVAL;
            return 1;
        }
        s->acc.w = f->width;
        s->acc.h = f->height;
        size_t px = (size_t)f->width * (size_t)f->height;
        s->acc.flow = malloc(px * sizeof *s->acc.flow);
        s->acc.sum = calloc(px, sizeof *s->acc.sum);
        if (!s->acc.flow || !s->acc.sum) {
            snprintf(s->why, s->cap, "out of memory");
            s->err = -ENOMEM;
            return 1;
        }
    }
    if (!s->acc.sum || f->width != s->acc.w || f->height != s->acc.h)
        return 0; /* before frame 0 was seen, or a size change: not a flow of this size */
    const AVFrameSideData *sd = av_frame_get_side_data(f, AV_FRAME_DATA_MOTION_VECTORS);
    if (!sd)
        return 0;
    acc_frame(&s->acc, (const AVMotionVector *)sd->data, sd->size / sizeof(AVMotionVector));
    return s->acc.frames >= s->max_frames;
}

/* Scores a clip's MP4; one that decodes only in part is scored on the frames
 * it has. */
static int score_clip(const uint8_t *data, uint64_t size, motion_score *out, char *why,
                      size_t cap) {
    media_input *m;
    const media_open_options mo = {.threads = 1, .export_mvs = true};
    int rc = media_open(data, size, &mo, &m, why, cap);
    if (rc)
        return rc;
    vt_probe p;
    media_probe(m, &p);
    /* Curator's: the stream's average rate, and the container's duration in
     * whole seconds (int(container.duration)). */
    double fps = p.fps > 0 ? p.fps : MOTION_DEFAULT_FPS;
    double seconds = floor(media_container_duration_s(m));
    if (!(seconds > 0))
        seconds = MOTION_DEFAULT_S;
    double target = nearbyint(MOTION_TARGET_FPS * seconds * MOTION_DURATION_RATIO);
    sampler s = {.step = (int64_t)fmax(1, nearbyint(fps / MOTION_TARGET_FPS)),
                 .max_frames = (uint32_t)fmax(MOTION_MIN_FRAMES, fmin(target, 1e6)),
                 .why = why,
                 .cap = cap};
    rc = media_decode(m, 0, -1, sample, &s, NULL, why, cap);
    if (s.err)
        rc = s.err; /* why says it: sample() wrote it last */
    if (rc == 0 && s.acc.frames == 0) {
        snprintf(why, cap, "no motion vectors in the %lld frames decoded", (long long)s.decoded);
        rc = -EINVAL;
    }
    if (rc == 0) {
        out->global_mean =
            s.acc.global_sum / ((double)s.acc.frames * (double)s.acc.w * (double)s.acc.h);
        out->patch_min = patch_min(&s.acc);
        why[0] = '\0'; /* scored, whatever media_decode said of a partial clip */
    }
    free(s.acc.flow);
    free(s.acc.sum);
    media_close(m);
    return rc;
}

/* ---- the stage ------------------------------------------------------------------ */

static bool has_mp4(const vt_clip *c) {
    return vt_art_present(&c->mp4); /* without one, the transcoder said why */
}

/* clip_stage's work: the clip's scores, and whether it is filtered. A clip
 * that cannot be scored gets Curator's stand-in scores with its error. */
static int score(const reel_curate_options *o, vt_clip *c, void **owned, char *why, size_t cap) {
    (void)owned;
    motion_score sc = {MOTION_NO_SCORE, MOTION_NO_SCORE};
    int err = score_clip(c->mp4.data, c->mp4.size, &sc, why, cap);
    if (err == -ENOMEM)
        return err;
    c->has_motion = true;
    c->motion_global_mean = sc.global_mean;
    c->motion_patch_min = sc.patch_min;
    c->filtered =
        o->motion == REEL_MOTION_ENABLE && (sc.global_mean < o->motion_global_mean_threshold ||
                                            sc.patch_min < o->motion_per_patch_min_256_threshold);
    if (c->filtered) {
        /* The transcoder took its frames and preview for the later stages,
         * which leave a filtered clip without them: so does the filter. */
        stage_art_drop(c, STAGE_ART_FRAMES);
        stage_art_drop(c, STAGE_ART_PREVIEW);
    }
    return err;
}

static int motion_process(reel_actor_ctx *ctx, const reel_view *in, size_t n, reel_actor_out *out) {
    if (stage_options(ctx)->motion == REEL_MOTION_DISABLE)
        return n == 1 ? reel_actor_forward(out, 0) : -EINVAL;
    static const clip_stage stage = {"motion", STAGE_ART_MP4, has_mp4, score};
    return clip_stage_process(ctx, in, n, out, &stage);
}

const reel_actor_def stage_motion_def = {
    .name = "motion",
    .process = motion_process,
    .cpus = 1,
};
