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
#include "stages_internal.h"

#include <errno.h>
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/motion_vector.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MOTION_TARGET_FPS       2.0
#define MOTION_DURATION_RATIO   0.5
#define MOTION_MIN_FRAMES       10
#define MOTION_MIN_SIDE         256
#define MOTION_MAX_SIDE         16384 /* as media.c: larger frames are refused */
#define MOTION_PATCH            256
#define MOTION_NO_SCORE         (-1.0) /* Curator's score for a clip it could not decode */
#define MOTION_AVIO_BUFFER_SIZE 65536

/* ---- reading an MP4 held in memory, with the decoder exporting vectors ---------- */

typedef struct mem_reader {
    const uint8_t *data;
    uint64_t size, pos;
} mem_reader;

static int mem_read(void *opaque, uint8_t *buf, int n) {
    mem_reader *r = opaque;
    uint64_t left = r->size - r->pos;
    if (left == 0)
        return AVERROR_EOF;
    if ((uint64_t)n > left)
        n = (int)left;
    memcpy(buf, r->data + r->pos, (size_t)n);
    r->pos += (uint64_t)n;
    return n;
}

static int64_t mem_seek(void *opaque, int64_t offset, int whence) {
    mem_reader *r = opaque;
    int64_t base;
    switch (whence & ~AVSEEK_FORCE) {
    case AVSEEK_SIZE:
        return (int64_t)r->size;
    case SEEK_SET:
        base = 0;
        break;
    case SEEK_CUR:
        base = (int64_t)r->pos;
        break;
    case SEEK_END:
        base = (int64_t)r->size;
        break;
    default:
        return AVERROR(EINVAL);
    }
    if ((offset < 0 && -offset > base) || (offset > 0 && offset > (int64_t)r->size - base))
        return AVERROR(EINVAL);
    r->pos = (uint64_t)(base + offset);
    return (int64_t)r->pos;
}

typedef struct mv_input {
    mem_reader reader;
    AVIOContext *io;
    AVFormatContext *fmt;
    AVCodecContext *dec;
    int stream;
} mv_input;

static int av_fail(int err, char *why, size_t cap, const char *what) {
    char text[AV_ERROR_MAX_STRING_SIZE];
    av_strerror(err, text, sizeof text);
    snprintf(why, cap, "%s: %s", what, text);
    return err == AVERROR(ENOMEM) ? -ENOMEM : -EIO;
}

static void mv_close(mv_input *in) {
    avcodec_free_context(&in->dec);
    avformat_close_input(&in->fmt);
    if (in->io) {
        av_freep(&in->io->buffer);
        avio_context_free(&in->io);
    }
}

static int mv_open(mv_input *in, const uint8_t *data, uint64_t size, char *why, size_t cap) {
    memset(in, 0, sizeof *in);
    in->reader = (mem_reader){.data = data, .size = size};
    uint8_t *buf = av_malloc(MOTION_AVIO_BUFFER_SIZE);
    if (!buf)
        return snprintf(why, cap, "out of memory"), -ENOMEM;
    in->io =
        avio_alloc_context(buf, MOTION_AVIO_BUFFER_SIZE, 0, &in->reader, mem_read, NULL, mem_seek);
    if (!in->io) {
        av_free(buf);
        return snprintf(why, cap, "out of memory"), -ENOMEM;
    }
    if (!(in->fmt = avformat_alloc_context())) {
        mv_close(in);
        return snprintf(why, cap, "out of memory"), -ENOMEM;
    }
    in->fmt->pb = in->io;
    in->fmt->flags |= AVFMT_FLAG_CUSTOM_IO;
    int err = avformat_open_input(&in->fmt, NULL, NULL, NULL);
    if (err < 0) {
        mv_close(in);
        return av_fail(err, why, cap, "cannot read the container");
    }
    if ((err = avformat_find_stream_info(in->fmt, NULL)) < 0) {
        mv_close(in);
        return av_fail(err, why, cap, "cannot read the streams");
    }
    const AVCodec *codec = NULL;
    in->stream = av_find_best_stream(in->fmt, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    if (in->stream < 0 || !codec) {
        mv_close(in);
        return snprintf(why, cap, "no video stream that FFmpeg can decode"), -EINVAL;
    }
    if (!(in->dec = avcodec_alloc_context3(codec))) {
        mv_close(in);
        return snprintf(why, cap, "out of memory"), -ENOMEM;
    }
    if ((err = avcodec_parameters_to_context(in->dec, in->fmt->streams[in->stream]->codecpar)) <
        0) {
        mv_close(in);
        return av_fail(err, why, cap, "cannot set up the decoder");
    }
    in->dec->thread_count = 1;
    in->dec->export_side_data |= AV_CODEC_EXPORT_DATA_MVS;
    if ((err = avcodec_open2(in->dec, codec, NULL)) < 0) {
        mv_close(in);
        return av_fail(err, why, cap, "cannot open the decoder");
    }
    return 0;
}

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

/* Whole seconds, as Curator takes them: int(container duration). */
static double duration_whole_s(const AVFormatContext *fmt) {
    double s = fmt->duration > 0 ? floor((double)fmt->duration / AV_TIME_BASE) : 0;
    return s > 0 ? s : 30; /* Curator's assumption when it cannot tell */
}

typedef struct sampler {
    int64_t index; /* decoded frames so far */
    int64_t step;
    uint32_t max_frames;
    motion_acc acc;
    int err; /* a refusal: -EINVAL with why set, or -ENOMEM */
} sampler;

/* One decoded frame: sampled or skipped. Returns 1 once enough are used. */
static int sample(sampler *s, const AVFrame *f, char *why, size_t cap) {
    int64_t i = s->index++;
    if (i % s->step != 0)
        return 0;
    if (i == 0) {
        if (f->width < MOTION_MIN_SIDE || f->height < MOTION_MIN_SIDE) {
            snprintf(why, cap, "resolution %dx%d is below the %d pixels a side motion needs",
                     f->width, f->height, MOTION_MIN_SIDE);
            s->err = -EINVAL;
            return 1;
        }
        if (f->width > MOTION_MAX_SIDE || f->height > MOTION_MAX_SIDE) {
            snprintf(why, cap, "resolution %dx%d is above the %d pixels a side reel decodes",
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
            snprintf(why, cap, "out of memory");
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

/* Drains the decoder into the sampler. Returns 0 (more wanted), 1 (done) or < 0. */
static int drain(mv_input *in, sampler *s, AVFrame *f, char *why, size_t cap) {
    for (;;) {
        int err = avcodec_receive_frame(in->dec, f);
        if (err == AVERROR(EAGAIN))
            return 0;
        if (err == AVERROR_EOF)
            return 1;
        if (err < 0)
            return av_fail(err, why, cap, "cannot decode");
        int done = sample(s, f, why, cap);
        av_frame_unref(f);
        if (s->err)
            return s->err;
        if (done)
            return 1;
    }
}

static int score_clip(const uint8_t *data, uint64_t size, motion_score *out, char *why,
                      size_t cap) {
    mv_input in;
    int rc = mv_open(&in, data, size, why, cap);
    if (rc)
        return rc;
    const AVStream *st = in.fmt->streams[in.stream];
    double fps = st->avg_frame_rate.num > 0 && st->avg_frame_rate.den > 0
                     ? av_q2d(st->avg_frame_rate)
                 : st->r_frame_rate.num > 0 && st->r_frame_rate.den > 0 ? av_q2d(st->r_frame_rate)
                                                                        : 30;
    double target = nearbyint(MOTION_TARGET_FPS * duration_whole_s(in.fmt) * MOTION_DURATION_RATIO);
    sampler s = {.step = (int64_t)fmax(1, nearbyint(fps / MOTION_TARGET_FPS)),
                 .max_frames = (uint32_t)fmax(MOTION_MIN_FRAMES, fmin(target, 1e6))};
    AVPacket *pkt = av_packet_alloc();
    AVFrame *f = av_frame_alloc();
    int done = 0;
    if (!pkt || !f)
        done = -ENOMEM, snprintf(why, cap, "out of memory");
    while (!done) {
        int err = av_read_frame(in.fmt, pkt);
        if (err == AVERROR_EOF) {
            avcodec_send_packet(in.dec, NULL);
            done = drain(&in, &s, f, why, cap);
            if (done == 0)
                done = 1;
            break;
        }
        if (err < 0) {
            done = av_fail(err, why, cap, "cannot read the clip");
            break;
        }
        if (pkt->stream_index == in.stream) {
            err = avcodec_send_packet(in.dec, pkt);
            if (err < 0 && err != AVERROR(EAGAIN) && err != AVERROR_INVALIDDATA)
                done = av_fail(err, why, cap, "cannot decode");
            else
                done = drain(&in, &s, f, why, cap);
        }
        av_packet_unref(pkt);
    }
    if (done == 1 && s.acc.frames == 0) {
        snprintf(why, cap, "no motion vectors in the %lld frames decoded", (long long)s.index);
        done = -EINVAL;
    }
    if (done == 1) {
        out->global_mean =
            s.acc.global_sum / ((double)s.acc.frames * (double)s.acc.w * (double)s.acc.h);
        out->patch_min = patch_min(&s.acc);
    }
    av_packet_free(&pkt);
    av_frame_free(&f);
    free(s.acc.flow);
    free(s.acc.sum);
    mv_close(&in);
    return done == 1 ? 0 : done;
}

/* ---- the stage ------------------------------------------------------------------ */

static int motion_process(reel_actor_ctx *ctx, const reel_view *in, size_t n, reel_actor_out *out) {
    const reel_curate_options *o = stage_options(ctx);
    if (o->motion == REEL_MOTION_DISABLE)
        return n == 1 ? reel_actor_forward(out, 0) : -EINVAL;
    video_task t;
    int rc = stage_read_task(ctx, in, n, &t);
    if (rc)
        return rc;
    clip_scratch s;
    if ((rc = clip_scratch_init(&s, t.n_clips)) != 0) {
        reel_actor_set_error(ctx, "out of memory");
        vt_free(&t);
        return rc;
    }
    for (uint32_t i = 0; i < t.n_clips && rc == 0; i++) {
        vt_clip *c = &t.clips[i];
        if (c->mp4.size == 0)
            continue; /* the transcoder said why */
        motion_score sc = {MOTION_NO_SCORE, MOTION_NO_SCORE};
        char why[256] = "";
        int err = score_clip(c->mp4.data, c->mp4.size, &sc, why, sizeof why);
        if (err == -ENOMEM) {
            reel_actor_set_error(ctx, "clip %s: out of memory", c->uuid);
            rc = err;
            break;
        }
        if (err && clip_error(&s, &t, i, "motion", "%s", why) != 0) {
            reel_actor_set_error(ctx, "out of memory");
            rc = -ENOMEM;
            break;
        }
        c->has_motion = true;
        c->motion_global_mean = sc.global_mean;
        c->motion_patch_min = sc.patch_min;
        c->filtered = o->motion == REEL_MOTION_ENABLE &&
                      (sc.global_mean < o->motion_global_mean_threshold ||
                       sc.patch_min < o->motion_per_patch_min_256_threshold);
    }
    if (rc == 0)
        rc = stage_write_task(ctx, out, &t);
    clip_scratch_free(&s);
    vt_free(&t);
    return rc;
}

const reel_actor_def stage_motion_def = {
    .name = "motion",
    .process = motion_process,
    .cpus = 1,
};
