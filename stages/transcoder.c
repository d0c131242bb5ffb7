/*
 * transcoder.c - the "transcoder" stage: encodes every clip of a video to
 * H.264 in MP4, as Curator's ClipTranscodingStage, then drops the source
 * bytes from the task (no later stage reads them).
 *
 * One pass of decoding serves every clip: media_decode() runs once over
 * [first start, last end) and hands each frame to the encoder of each clip
 * whose [start_frame, end_frame) holds it. Clips may overlap (a fixed stride
 * shorter than the clip length), so several encoders can be open at once; a
 * clip's encoder starts at its first frame and finishes at its last, so only
 * the clips that span the current frame hold one.
 *
 * Failures stay with their clip: a clip whose encoder cannot start, take a
 * frame or finish gets the reason in its errors and no MP4, and the others
 * go on. A video none of whose clips could be encoded gets the task's error
 * text; the task is written either way.
 */
#include "media.h"
#include "stages_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERR_CAP 512

/* One clip's encoding. */
typedef struct clip_job {
    vt_clip *clip;
    media_output *enc;
    int64_t frames; /* encoded so far */
    bool failed, done;
    uint8_t *mp4; /* the finished file (malloc'd) */
    uint64_t mp4_size;
    char err[ERR_CAP];
} clip_job;

typedef struct transcode {
    const reel_curate_options *o;
    double fps;
    clip_job *jobs; /* by start frame */
    size_t n_jobs;
    size_t next;    /* the first job not started yet */
    size_t *active; /* jobs with an open encoder */
    size_t n_active;
} transcode;

static void job_fail(clip_job *j, const char *what, const char *why) {
    stage_add_error(j->clip, j->err, sizeof j->err, "transcoder: %s: %s", what, why);
    if (j->enc)
        media_encode_free(j->enc);
    j->enc = NULL;
    j->failed = true;
}

/* Flushes a clip's encoder and keeps its MP4. */
static void job_finish(clip_job *j) {
    char why[256] = "";
    const uint8_t *data;
    uint64_t size;
    int rc = media_encode_finish(j->enc, &data, &size, why, sizeof why);
    if (rc) {
        job_fail(j, "cannot finish the MP4", why);
        return;
    }
    j->mp4 = malloc(size ? size : 1);
    if (!j->mp4) {
        job_fail(j, "cannot finish the MP4", "out of memory");
        return;
    }
    memcpy(j->mp4, data, size);
    j->mp4_size = size;
    media_encode_free(j->enc);
    j->enc = NULL;
    j->done = true;
}

/* Even sizes: yuv420p halves both. */
static int32_t even(int32_t v) {
    return v >= 2 ? v & ~1 : 2;
}

static int on_frame(void *arg, int64_t index, const AVFrame *frame) {
    transcode *x = arg;
    /* Clips that start at this frame (clips are sorted by start). */
    while (x->next < x->n_jobs && x->jobs[x->next].clip->start_frame <= index) {
        clip_job *j = &x->jobs[x->next++];
        if (j->clip->end_frame <= index) {
            stage_add_error(j->clip, j->err, sizeof j->err, "transcoder: an empty span");
            j->failed = true;
            continue;
        }
        media_encode_options eo = {
            .encoder = x->o->encoder,
            .preset = x->o->preset,
            .crf = x->o->crf,
            .threads = (int)x->o->encode_threads,
            .width = even(frame->width),
            .height = even(frame->height),
            .fps = x->fps,
        };
        char why[256] = "";
        int rc = media_encode_start(&eo, &j->enc, why, sizeof why);
        if (rc) {
            if (rc == -ENOMEM)
                return rc;
            j->enc = NULL;
            job_fail(j, "cannot start the encoder", why);
            continue;
        }
        j->clip->width = eo.width;
        j->clip->height = eo.height;
        j->clip->fps = x->fps;
        x->active[x->n_active++] = (size_t)(j - x->jobs);
    }
    for (size_t k = 0; k < x->n_active;) {
        clip_job *j = &x->jobs[x->active[k]];
        char why[256] = "";
        int rc = media_encode_frame(j->enc, frame, why, sizeof why);
        if (rc == -ENOMEM)
            return rc;
        if (rc) {
            job_fail(j, "cannot encode a frame", why);
        } else {
            j->frames++;
            if (index + 1 >= j->clip->end_frame)
                job_finish(j);
        }
        if (j->failed || j->done)
            x->active[k] = x->active[--x->n_active];
        else
            k++;
    }
    return x->next == x->n_jobs && x->n_active == 0 ? 1 : 0; /* 1: every clip is done */
}

static int cmp_job(const void *a, const void *b) {
    const vt_clip *x = ((const clip_job *)a)->clip, *y = ((const clip_job *)b)->clip;
    return (x->start_frame > y->start_frame) - (x->start_frame < y->start_frame);
}

static void set_task_error(video_task *t, char *buf, size_t cap, const char *fmt, const char *why) {
    size_t used = 0;
    if (t->error.size) { /* the splitter's words on a partial video stay */
        used = t->error.size < cap / 2 ? (size_t)t->error.size : cap / 2;
        memmove(buf, t->error.data, used);
        used += (size_t)snprintf(buf + used, cap - used, "; ");
    }
    snprintf(buf + used, cap - used, fmt, why);
    t->error = (vt_bytes){(const uint8_t *)buf, strlen(buf)};
}

/* Encodes every clip of t from its source; clip errors go to the clips, the
 * video's to t->error (in err). -ENOMEM is the only failure returned. */
static int transcode_clips(const reel_curate_options *o, video_task *t, clip_job *jobs, char *err,
                           size_t err_cap) {
    char why[ERR_CAP] = "";
    transcode x = {.o = o, .fps = t->probe.fps, .jobs = jobs, .n_jobs = t->n_clips};
    int64_t first = INT64_MAX, last = 0;
    for (uint32_t i = 0; i < t->n_clips; i++) {
        jobs[i].clip = &t->clips[i];
        first = t->clips[i].start_frame < first ? t->clips[i].start_frame : first;
        last = t->clips[i].end_frame > last ? t->clips[i].end_frame : last;
    }
    qsort(jobs, t->n_clips, sizeof *jobs, cmp_job);
    x.active = malloc(t->n_clips * sizeof *x.active);
    if (!x.active)
        return -ENOMEM;
    media_input *m = NULL;
    bool partial = false;
    int rc = media_open(t->source.data, t->source.size, NULL, &m, why, sizeof why);
    if (rc == 0)
        rc = media_decode(m, first, last, on_frame, &x, &partial, why, sizeof why);
    if (rc != -ENOMEM) {
        /* The video ended inside these: they keep the frames it had. */
        for (size_t k = 0; k < x.n_active; k++)
            job_finish(&jobs[x.active[k]]);
        for (size_t i = x.next; i < x.n_jobs; i++)
            if (rc)
                stage_add_error(jobs[i].clip, jobs[i].err, sizeof jobs[i].err,
                                "transcoder: the video could not be decoded");
            else
                stage_add_error(jobs[i].clip, jobs[i].err, sizeof jobs[i].err,
                                "transcoder: the video has no frame %" PRId64,
                                jobs[i].clip->start_frame);
    }
    free(x.active);
    if (m)
        media_close(m);
    if (rc == -ENOMEM)
        return rc;
    if (rc)
        set_task_error(t, err, err_cap, "transcoder: cannot decode the video: %s", why);
    else if (partial) {
        t->partial = true;
        set_task_error(t, err, err_cap, "transcoder: the video decoded only in part: %s", why);
    }
    return 0;
}

static int transcode_task(reel_actor_ctx *ctx, const reel_view *in, size_t n_in,
                          reel_actor_out *out) {
    const reel_curate_options *o = stage_options(ctx);
    video_task t;
    int rc = stage_read_task(ctx, in, n_in, &t);
    if (rc)
        return rc;
    char err[VT_TEXT_MAX];
    clip_job *jobs = NULL;
    if (t.n_clips && t.source.size) {
        jobs = calloc(t.n_clips, sizeof *jobs);
        rc = jobs ? transcode_clips(o, &t, jobs, err, sizeof err) : -ENOMEM;
        if (rc) {
            reel_actor_set_error(ctx, "out of memory transcoding %u clips", t.n_clips);
            goto done;
        }
        uint32_t ok = 0;
        for (uint32_t i = 0; i < t.n_clips; i++) {
            clip_job *j = &jobs[i];
            if (j->done) {
                j->clip->mp4 = (vt_bytes){j->mp4, j->mp4_size};
                j->clip->num_frames = j->frames;
                ok++;
            }
        }
        if (ok == 0 && !t.error.size)
            set_task_error(&t, err, sizeof err, "transcoder: %s",
                           "no clip could be encoded (each clip's errors say why)");
    } else if (t.n_clips) {
        for (uint32_t i = 0; i < t.n_clips; i++)
            if (!t.clips[i].mp4.size && !t.clips[i].errors.size)
                t.clips[i].errors = (vt_bytes){(const uint8_t *)"transcoder: no source bytes",
                                               sizeof "transcoder: no source bytes" - 1};
    }
    t.source = (vt_bytes){NULL, 0};
    rc = stage_write_task(ctx, out, &t);
done:
    if (jobs)
        for (uint32_t i = 0; i < t.n_clips; i++) {
            if (jobs[i].enc)
                media_encode_free(jobs[i].enc);
            free(jobs[i].mp4);
        }
    free(jobs);
    vt_free(&t);
    return rc;
}

const reel_actor_def stage_transcoder_def = {
    .name = "transcoder",
    .process = transcode_task,
    .cpus = 1,
};
