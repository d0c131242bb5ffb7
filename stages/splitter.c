/*
 * splitter.c - the "splitter" stage: cuts each video into clips, by fixed
 * stride (Curator's FixedStrideExtractorStage) or at shot boundaries (a
 * frame-difference detector in place of TransNetV2, followed by the
 * post-processing of Curator's TransNetV2ClipExtractionStage).
 *
 * The clips go on as chunks, one item each: runs of clips_per_chunk
 * consecutive clips (stage_clips_per_chunk: by default twice as many chunks
 * as CPUs), each record
 * saying which chunk of how many it is and which of the video's clips it
 * holds, so that the writer can gather them and say which never came. A
 * video without clips (or with an error) is one chunk of none.
 *
 * Clip spans are frame indices [start, end) in decode order (media.h), with
 * start_s = start / fps and end_s = end / fps; a clip's UUID is
 * uuid5(NAMESPACE_URL, "<path>_<start>_<end>") as Curator names them.
 *
 * The shot-boundary detector. Every frame is scaled to 64x36 RGB; two frames
 * differ by
 *
 *   D(a, b) = min(1, H(a, b) + P(a, b))                              in [0, 1]
 *
 * where H is the total-variation distance of their 16-bin colour histograms
 * (mean of the three channels) and P the mean absolute pixel difference over
 * 255. Motion moves pixels but mostly keeps the colours; a new shot changes
 * both. Measured on the samples and on cuts spliced between them, a hard cut
 * scores 0.55-0.85 and the fastest motion within a shot (a bird crossing
 * close to the lens in cockatoo.mp4) 0.33, so TransNetV2's threshold of 0.4
 * sits between the two. Frame i starts a new shot when, with
 * s_i = D(f[i-1], f[i]):
 *
 *   - s_i >= threshold (the scene_threshold option);
 *   - s_i >= 3 x the median of s over about a second either side (i left
 *     out) and >= 1.5 x every other score within two frames: the adaptive
 *     part, so that in a shot full of motion only a jump that stands out
 *     counts, once;
 *   - every frame of the three before i differs from every frame of the
 *     three from i on by at least s_i / 2: a flash, or a damaged frame, of
 *     one or two frames returns to the old shot, a cut does not.
 *
 * Dissolves and fades spread over many frames and are not found: only hard
 * cuts are.
 */
#include "media.h"
#include "stages_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sched.h>
#include <string.h>

#define DET_W     64
#define DET_H     36
#define DET_PIX   (DET_W * DET_H)
#define DET_BINS  16
#define DET_SIDE  3   /* frames each side of a cut that must all differ */
#define DET_RING  8   /* frames kept: >= 2 x DET_SIDE */
#define DET_RATIO 3.0 /* a cut's score over the median around it */
#define DET_PROM  1.5 /* and over any other score within two frames */

/* ---- fixed stride ---------------------------------------------------------- */

/* Grows *spans by one. */
static int push_span(stage_span **spans, size_t *n, size_t *cap, int64_t start, int64_t end) {
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 16;
        stage_span *s = realloc(*spans, c * sizeof *s);
        if (!s)
            return -ENOMEM;
        *spans = s;
        *cap = c;
    }
    (*spans)[(*n)++] = (stage_span){.start = start, .end = end};
    return 0;
}

int stage_fixed_stride_spans(double duration_s, double fps, double clip_len_s, double stride_s,
                             double min_clip_s, stage_span **out, size_t *n_out) {
    *out = NULL;
    *n_out = 0;
    if (!(fps > 0) || !isfinite(fps) || !(duration_s >= 0) || !isfinite(duration_s) ||
        !(clip_len_s > 0) || !(stride_s > 0) || !(min_clip_s >= 0))
        return -EINVAL;
    if (duration_s / stride_s >= VT_MAX_CLIPS)
        return -E2BIG;
    stage_span *spans = NULL;
    size_t n = 0, cap = 0;
    /* Curator's loop, in the same double arithmetic (the start accumulates
     * the stride, as there), so that spans and UUIDs come out identical:
     * seconds become frame indices as int(seconds * fps), truncated. */
    for (double start = 0.0; start < duration_s; start += stride_s) {
        double end = fmin(start + clip_len_s, duration_s);
        if (end - start < min_clip_s)
            continue;
        int rc = push_span(&spans, &n, &cap, (int64_t)(start * fps), (int64_t)(end * fps));
        if (rc) {
            free(spans);
            return rc;
        }
    }
    *out = spans;
    *n_out = n;
    return 0;
}

/* ---- scenes into clips (Curator's TransNetV2 stage) --------------------------- */

int stage_scene_spans(const int64_t *cuts, size_t n_cuts, int64_t n_frames, double fps,
                      double min_s, double max_s, double crop_s, stage_span **out, size_t *n_out) {
    *out = NULL;
    *n_out = 0;
    if (!(fps > 0) || !isfinite(fps) || n_frames < 0)
        return -EINVAL;
    /* Lengths in frames as Curator takes them: int(seconds * fps); an option
     * of 0 is "none". A max_length of 0 frames would never advance: 1. */
    int64_t min_len = min_s > 0 ? (int64_t)(min_s * fps) : 0;
    int64_t max_len = max_s > 0 ? (int64_t)(max_s * fps) : 0;
    int64_t crop = crop_s > 0 ? (int64_t)(crop_s * fps) : 0;
    if (max_s > 0 && max_len < 1)
        max_len = 1;
    stage_span *spans = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    /* Scenes: [0, c1), [c1, c2), ..., [ck, n_frames); no cut (and
     * entire_scene_as_clip): the whole video. */
    int64_t scene_start = 0;
    for (size_t k = 0; k <= n_cuts && rc == 0; k++) {
        int64_t scene_end = k < n_cuts ? cuts[k] : n_frames;
        if (scene_end <= scene_start || scene_end > n_frames)
            continue; /* unsorted, repeated or outside: ignore */
        /* max_length_mode "stride": max_len pieces; a last piece shorter
         * than min_len is dropped. */
        int64_t s = scene_start;
        while (s < scene_end && rc == 0) {
            int64_t e = max_len ? (s + max_len < scene_end ? s + max_len : scene_end) : scene_end;
            if (min_len && e - s < min_len && e == scene_end)
                break;
            /* Then crop_s off both ends (pieces left empty go), then
             * min_length. */
            int64_t cs = s + crop, ce = e - crop;
            if (ce - cs > 0 && ce - cs >= min_len) {
                if (n >= VT_MAX_CLIPS)
                    rc = -E2BIG;
                else
                    rc = push_span(&spans, &n, &cap, cs, ce);
            }
            s = e;
        }
        scene_start = scene_end;
    }
    if (rc) {
        free(spans);
        return rc;
    }
    *out = spans;
    *n_out = n;
    return 0;
}

/* ---- cuts from frame differences --------------------------------------------- */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int stage_find_cuts(const double *next, const double *cross, size_t n, double fps, double threshold,
                    int64_t **cuts, size_t *n_cuts) {
    *cuts = NULL;
    *n_cuts = 0;
    if (n < 2)
        return 0;
    size_t half = fps > 0 && isfinite(fps) ? (size_t)lround(fps) : 25;
    half = half < 4 ? 4 : half > 60 ? 60 : half;
    double *win = malloc((2 * half + 1) * sizeof *win);
    int64_t *found = NULL;
    size_t n_found = 0, cap = 0;
    if (!win)
        return -ENOMEM;
    for (size_t i = 1; i < n; i++) {
        double s = next[i];
        if (!(s >= threshold) || cross[i] < s / 2)
            continue;
        int stands_out = 1;
        for (size_t j = i > 2 ? i - 2 : 1; j <= i + 2 && j < n && stands_out; j++)
            if (j != i && s < DET_PROM * next[j])
                stands_out = 0;
        if (!stands_out)
            continue;
        size_t w = 0;
        for (size_t j = i > half ? i - half : 1; j <= i + half && j < n; j++)
            if (j != i)
                win[w++] = next[j];
        double median = 0;
        if (w) {
            qsort(win, w, sizeof *win, cmp_double);
            median = w % 2 ? win[w / 2] : (win[w / 2 - 1] + win[w / 2]) / 2;
        }
        if (s < DET_RATIO * median)
            continue;
        if (n_found == cap) {
            size_t c = cap ? cap * 2 : 16;
            int64_t *f = realloc(found, c * sizeof *f);
            if (!f) {
                free(found);
                free(win);
                return -ENOMEM;
            }
            found = f;
            cap = c;
        }
        found[n_found++] = (int64_t)i;
    }
    free(win);
    *cuts = found;
    *n_cuts = n_found;
    return 0;
}

/* A frame as the detector sees it. */
typedef struct det_frame {
    uint8_t rgb[DET_PIX * 3];
    uint32_t hist[3][DET_BINS];
} det_frame;

static double frame_distance(const det_frame *a, const det_frame *b) {
    uint64_t hd = 0, pd = 0;
    for (int c = 0; c < 3; c++)
        for (int k = 0; k < DET_BINS; k++)
            hd += a->hist[c][k] > b->hist[c][k] ? a->hist[c][k] - b->hist[c][k]
                                                : b->hist[c][k] - a->hist[c][k];
    for (size_t k = 0; k < sizeof a->rgb; k++)
        pd += (uint64_t)abs((int)a->rgb[k] - (int)b->rgb[k]);
    double h = (double)hd / (2.0 * 3 * DET_PIX);
    double p = (double)pd / (255.0 * sizeof a->rgb);
    return fmin(1.0, h + p);
}

/* What the decode callback keeps: the last DET_RING frames, their distances
 * to the frames before them, and every frame's scores. */
typedef struct detector {
    det_frame ring[DET_RING];
    double pair[DET_RING][2 * DET_SIDE]; /* pair[j][d] = D(f[j - d], f[j]) */
    int64_t n;                           /* frames seen */
    double *next;                        /* next[i] = D(f[i-1], f[i]) */
    double *cross;                       /* the least D across i (stage_find_cuts) */
    size_t cap;
} detector;

/* cross[i]: the least distance between a frame of [i - DET_SIDE, i) and one
 * of [i, i + DET_SIDE), of those there are among the n frames seen. */
static void finish_cross(detector *d, int64_t i) {
    double least = INFINITY;
    for (int64_t a = i - DET_SIDE < 0 ? 0 : i - DET_SIDE; a < i; a++)
        for (int64_t b = i; b < i + DET_SIDE && b < d->n; b++)
            least = fmin(least, d->pair[b % DET_RING][b - a]);
    d->cross[i] = i > 0 ? least : 0;
}

static int detect_frame(void *arg, int64_t index, const AVFrame *frame) {
    detector *d = arg;
    if (index != d->n)
        return -EPROTO; /* media_decode numbers every frame from 0 */
    if ((size_t)d->n == d->cap) {
        size_t c = d->cap ? d->cap * 2 : 1024;
        double *a = realloc(d->next, c * sizeof *a);
        if (a)
            d->next = a;
        double *b = a ? realloc(d->cross, c * sizeof *b) : NULL;
        if (b)
            d->cross = b;
        if (!a || !b)
            return -ENOMEM;
        d->cap = c;
    }
    det_frame *f = &d->ring[index % DET_RING];
    int rc = media_frame_to_rgb(frame, DET_W, DET_H, f->rgb);
    if (rc)
        return rc;
    memset(f->hist, 0, sizeof f->hist);
    for (size_t k = 0; k < DET_PIX; k++)
        for (int c = 0; c < 3; c++)
            f->hist[c][f->rgb[3 * k + c] * DET_BINS / 256]++;
    for (int64_t k = 1; k < 2 * DET_SIDE && k <= index; k++)
        d->pair[index % DET_RING][k] = frame_distance(&d->ring[(index - k) % DET_RING], f);
    d->next[index] = index ? d->pair[index % DET_RING][1] : 0;
    d->n++;
    if (index >= DET_SIDE - 1) /* frame index - DET_SIDE + 1 has all its frames after */
        finish_cross(d, index - DET_SIDE + 1);
    return 0;
}

int stage_detect_cuts(media_input *m, double threshold, int64_t **cuts, size_t *n_cuts,
                      int64_t *n_frames, bool *partial, char *why, size_t cap) {
    *cuts = NULL;
    *n_cuts = 0;
    *n_frames = 0;
    *partial = false;
    vt_probe p;
    media_probe(m, &p);
    detector *d = calloc(1, sizeof *d);
    if (!d)
        return -ENOMEM;
    int rc = media_decode(m, 0, -1, detect_frame, d, partial, why, cap);
    if (rc == -ENOMEM && why && cap)
        snprintf(why, cap, "out of memory keeping the frame scores");
    if (rc == 0) {
        for (int64_t i = d->n - DET_SIDE + 1 < 0 ? 0 : d->n - DET_SIDE + 1; i < d->n; i++)
            finish_cross(d, i); /* the last frames, with fewer after them */
        rc = stage_find_cuts(d->next, d->cross, (size_t)d->n, p.fps, threshold, cuts, n_cuts);
        *n_frames = d->n;
    }
    free(d->next);
    free(d->cross);
    free(d);
    return rc;
}

/* ---- the stage ------------------------------------------------------------------- */

/* Makes the task's clips from spans: UUIDs from the path and the frames,
 * times from fps. */
static int make_clips(reel_actor_ctx *ctx, video_task *t, const stage_span *spans, size_t n,
                      double fps) {
    if (n == 0)
        return 0;
    vt_clip *clips = calloc(n, sizeof *clips);
    size_t cap = t->path.size + 48;
    char *name = malloc(cap);
    if (!clips || !name) {
        free(clips);
        free(name);
        reel_actor_set_error(ctx, "out of memory for %zu clips", n);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        vt_clip *c = &clips[i];
        snprintf(name, cap, "%.*s_%" PRId64 "_%" PRId64, (int)t->path.size,
                 (const char *)t->path.data, spans[i].start, spans[i].end);
        if (reel_uuid5_url(name, c->uuid) != 0) {
            free(clips);
            free(name);
            reel_actor_set_error(ctx, "out of memory naming the clips");
            return -ENOMEM;
        }
        c->start_frame = spans[i].start;
        c->end_frame = spans[i].end;
        c->start_s = (double)spans[i].start / fps;
        c->end_s = (double)spans[i].end / fps;
    }
    free(name);
    t->clips = clips;
    t->n_clips = (uint32_t)n;
    return 0;
}

static void set_error(video_task *t, char *buf, size_t cap, const char *what, const char *why) {
    snprintf(buf, cap, "splitter: %s%s%s", what, why && why[0] ? ": " : "", why ? why : "");
    t->error = (vt_bytes){(const uint8_t *)buf, strlen(buf)};
}

static int split(reel_actor_ctx *ctx, const reel_view *in, size_t n_in, reel_actor_out *out) {
    const reel_curate_options *o = stage_options(ctx);
    video_task t;
    int rc = stage_read_task(ctx, "splitter", in, n_in, &t);
    if (rc)
        return rc;
    vt_free(&t); /* a splitter makes the clips: any earlier ones go */
    char err[VT_TEXT_MAX], why[512] = "";
    stage_span *spans = NULL;
    size_t n = 0;
    double fps = t.probe.fps;
    int span_rc = 0;
    if (t.error.size || !t.file.size) {
        /* The reader failed: nothing to split, its error stays. */
    } else if (!(fps > 0)) {
        set_error(&t, err, sizeof err, "the video has no frame rate", NULL);
    } else if (o->splitting == REEL_SPLIT_SCENE) {
        int64_t *cuts, n_frames;
        size_t n_cuts;
        bool partial;
        media_input *m;
        rc = stage_open_source(&t, NULL, &m, why, sizeof why);
        if (rc == 0) {
            rc = stage_detect_cuts(m, o->scene_threshold, &cuts, &n_cuts, &n_frames, &partial, why,
                                   sizeof why);
            media_close(m);
        }
        if (rc == -ENOMEM) {
            reel_actor_set_error(ctx, "out of memory detecting scenes");
            return rc;
        }
        if (rc) {
            set_error(&t, err, sizeof err, "cannot decode the video", why);
        } else {
            if (partial) {
                /* Clips from the frames before the damage; the task says
                 * what went wrong. */
                t.partial = true;
                snprintf(err, sizeof err, "splitter: decoded %" PRId64 " frames only: %s", n_frames,
                         why);
                t.error = (vt_bytes){(const uint8_t *)err, strlen(err)};
            }
            span_rc = stage_scene_spans(cuts, n_cuts, n_frames, fps, o->scene_min_clip_s,
                                        o->scene_max_clip_s, o->scene_crop_s, &spans, &n);
            free(cuts);
        }
    } else {
        /* Curator's duration: its num_frames / framerate (media_curator_frames);
         * the container's count where it has no duration. */
        int64_t frames = media_curator_frames(&t.probe);
        if (frames <= 0)
            frames = t.probe.num_frames;
        double duration = frames > 0 ? (double)frames / fps : t.probe.duration_s;
        span_rc = stage_fixed_stride_spans(duration, fps, o->fixed_stride_clip_len_s,
                                           o->fixed_stride_stride_s, o->fixed_stride_min_clip_s,
                                           &spans, &n);
    }
    if (span_rc == -ENOMEM) {
        reel_actor_set_error(ctx, "out of memory making the clips");
        return span_rc;
    }
    if (span_rc == -E2BIG)
        set_error(&t, err, sizeof err, "more clips than a task holds", NULL);
    else if (span_rc)
        set_error(&t, err, sizeof err, "the splitting options or the probe are out of range", NULL);
    /* A clip's MP4, guessed from the source's bytes per second: a clip
     * re-encoded at CRF 23 is seldom larger than its span of the source. */
    uint64_t clip_bytes = 0;
    reel_store_stats st;
    double clip_s =
        o->splitting == REEL_SPLIT_SCENE ? o->scene_max_clip_s : o->fixed_stride_clip_len_s;
    if (n && t.probe.duration_s > 0 && clip_s > 0)
        clip_bytes = (uint64_t)((double)t.file.size / t.probe.duration_s * clip_s);
    if (reel_store_stats_get(reel_actor_store(ctx), &st) != 0)
        st.capacity = 0;
    uint32_t per = n ? stage_clips_per_chunk(o, (uint32_t)n, clip_bytes, st.capacity) : 1;
    if (per == 0) { /* options.c refuses such a clips_per_chunk first */
        snprintf(why, sizeof why, "%u clips a chunk, more than its task's outputs hold",
                 o->clips_per_chunk);
        set_error(&t, err, sizeof err, "chunks too large", why);
        n = 0;
        per = 1;
    }
    rc = make_clips(ctx, &t, spans, n, fps);
    free(spans);
    /* One item per chunk of per clips; a video without clips is one chunk
     * of none, with its error. */
    uint32_t chunks = n ? (uint32_t)((n + per - 1) / per) : 1;
    for (uint32_t k = 0; rc == 0 && k < chunks; k++) {
        video_task c = t;
        c.chunk_index = k;
        c.chunk_count = chunks;
        c.first_clip = k * per;
        c.total_clips = (uint32_t)n;
        c.clips = n ? t.clips + c.first_clip : NULL;
        c.n_clips = n ? ((uint32_t)n - c.first_clip < per ? (uint32_t)n - c.first_clip : per) : 0;
        rc = stage_write_task(ctx, out, &c, true);
    }
    vt_free(&t);
    return rc;
}

uint32_t stage_clips_per_chunk(const reel_curate_options *o, uint32_t n, uint64_t clip_bytes,
                               uint64_t capacity) {
    uint32_t fit = (REEL_TASK_MAX_OUTPUTS - 1) / stage_artifacts_per_clip(o);
    /* Automatic: twice as many chunks as the CPUs, so that every transcoder
     * has one to the end, and no more: each chunk costs a seek and a decode
     * from the keyframe before it (30 one-clip chunks of a 5-minute 720p
     * video took 82 s on 2 CPUs, 2 chunks 73 s). And no chunk of more than
     * an eighth of the store per CPU in clips: a chunk's MP4s are in the
     * store from its transcoder to its clip writer, one chunk on each
     * transcoder and more on their way out (a 40 Mb/s source makes clips of
     * about 40 MB: 8 to a chunk filled 320 MB of a 512 MiB store with one
     * transcoder). */
    cpu_set_t set;
    uint32_t cpus = sched_getaffinity(0, sizeof set, &set) == 0 ? (uint32_t)CPU_COUNT(&set) : 1;
    if (cpus < 1)
        cpus = 1;
    uint32_t per = o->clips_per_chunk ? o->clips_per_chunk : (n + 2 * cpus - 1) / (2 * cpus);
    if (!o->clips_per_chunk && clip_bytes > 0 && capacity > 0) {
        uint64_t most = capacity / (8ull * cpus) / clip_bytes;
        if (per > most)
            per = (uint32_t)most;
    }
    if (per < 1)
        per = 1;
    /* A chunk's item and its clips' artifacts are handed on together, in
     * one result's REEL_TASK_MAX_OUTPUTS at the end of a line; a video may
     * make any number of chunks (the result lists them). */
    if (!o->clips_per_chunk && per > fit)
        per = fit;
    return per <= fit ? per : 0;
}

const reel_actor_def stage_splitter_def = {
    .name = "splitter",
    .process = split,
    .cpus = 1,
};
