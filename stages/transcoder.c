/*
 * transcoder.c - the "transcoder" stage: encodes every clip of a chunk (the
 * splitter's items: a run of one video's clips, one clip by default, so
 * that a long video's clips are encoded on every transcoder at once) to
 * H.264 in MP4, as Curator's ClipTranscodingStage, decoding the source file
 * by range (stage_open_source: a file changed since the reader saw it is the
 * video's error, not clips of some other video). Each clip's MP4 (and the
 * frames and preview taken below) becomes an artifact of the output item
 * (stage_write_task), never bytes in the record.
 *
 * One pass of decoding serves every clip of the chunk: media_decode() runs
 * once over [first start, last end) - from the keyframe before the first
 * start where the container indexes every frame, not from the start of the
 * video - and hands each frame to the encoder of each clip
 * whose [start_frame, end_frame) holds it. Clips may overlap (a fixed stride
 * shorter than the clip length), so several encoders can be open at once; a
 * clip's encoder starts at its first frame and finishes at its last, so only
 * the clips that span the current frame hold one.
 *
 * Failures stay with their clip: a clip whose encoder cannot start, take a
 * frame or finish gets the reason in its errors and no MP4, and the others
 * go on. A video none of whose clips could be encoded gets the task's error
 * text; the task is written either way.
 *
 * Sound, as Curator's clips have it (ffmpeg -map 0:a:0? -c:a copy): before
 * the pictures, one pass over the source's audio stream alone
 * (media_audio) collects the packets of every clip's span, by timestamp;
 * each clip's MP4 gets them, copied as they are and shifted to the clip's
 * start, when its encoder starts. A codec the MP4 muxer does not take (PCM,
 * say) is re-encoded to AAC in that pass, as ffmpeg would for an MP4; a
 * sound track that cannot be read leaves the clips without sound and says
 * so in the video's record; the pictures go on either way.
 *
 * The frames and the preview of each clip come from here too, when the run
 * wants them (the frames stage and the preview stage are in its pipeline:
 * frames written or made into tensors, previews on): while a clip is
 * encoded, the pictures the encoder is given (media_encode_picture: the
 * clip's pixels, converted and scaled, before compression) that the frames
 * stage would take (clip_frames_plan) are scaled to its RGB size, and the
 * one the preview stage would take (clip_middle_frame) becomes its JPEG, so
 * that neither stage decodes the clip again. The rules are those stages',
 * applied to the clip as it will be: its frame count is known before it is
 * encoded (end - start), and once the MP4 is finished its own count and
 * rate are checked to pick the same frames. A clip the check fails, or one
 * that ended early (the video was shorter than its probe said), or one whose
 * pictures could not be converted, gets neither here, and the frames and
 * preview stages decode its MP4 as they do for any task that comes without
 * them.
 */
#include "clip_util.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERR_CAP 512

/* What the frames and preview stages would take of a clip, taken from the
 * pictures it is encoded from. */
typedef struct clip_samples {
    bool on;        /* still being taken (off: the later stages, if any, decode the MP4) */
    int64_t expect; /* the clip's frames, end - start */
    double fps;     /* the rate the plan was made for */
    int64_t *idx;   /* clip_frames_plan(expect, fps, frames_fps) */
    uint32_t n;
    uint32_t next;   /* the first sample not taken yet */
    uint8_t *frames; /* n x frames_size x frames_size x 3 (malloc'd) */
    int64_t mid;     /* clip_middle_frame(expect); -1: no preview wanted */
    uint8_t *jpeg;   /* its preview (malloc'd) */
    uint64_t jpeg_size;
} clip_samples;

/* One clip's encoding. */
typedef struct clip_job {
    vt_clip *clip;
    media_output *enc;
    AVPacket **audio; /* its span's sound packets, until its encoder takes them */
    uint32_t n_audio, cap_audio;
    int64_t frames; /* encoded so far */
    bool failed, done;
    uint8_t *mp4; /* the finished file (malloc'd) */
    uint64_t mp4_size;
    clip_samples s;
    char err[ERR_CAP];
} clip_job;

typedef struct transcode {
    const reel_curate_options *o;
    int64_t bit_rate;       /* use_input_bit_rate: Curator's for the source; else 0 */
    media_audio_info sound; /* par NULL: the clips have none */
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

static void audio_free(clip_job *j) {
    for (uint32_t k = 0; k < j->n_audio; k++)
        av_packet_free(&j->audio[k]);
    free(j->audio);
    j->audio = NULL;
    j->n_audio = j->cap_audio = 0;
}

/* media_audio's callback: a packet goes to every clip whose span holds its
 * timestamp (clips may overlap). */
static int take_audio(void *arg, const AVPacket *pkt) {
    transcode *x = arg;
    int64_t pts = pkt->pts != AV_NOPTS_VALUE ? pkt->pts : pkt->dts;
    double t = (double)pts * av_q2d(x->sound.time_base);
    for (size_t i = 0; i < x->n_jobs; i++) {
        clip_job *j = &x->jobs[i];
        if (t < j->clip->start_s || t >= j->clip->end_s)
            continue;
        if (j->n_audio == j->cap_audio) {
            uint32_t cap = j->cap_audio ? j->cap_audio * 2 : 256;
            AVPacket **v = realloc(j->audio, cap * sizeof *v);
            if (!v)
                return -ENOMEM;
            j->audio = v;
            j->cap_audio = cap;
        }
        if (!(j->audio[j->n_audio] = av_packet_clone(pkt)))
            return -ENOMEM;
        j->n_audio++;
    }
    return 0;
}

/* The clip's sound into its MP4, shifted to the clip's start. */
static int write_audio(transcode *x, clip_job *j, char *why, size_t cap) {
    int64_t offset = llround(j->clip->start_s / av_q2d(x->sound.time_base));
    int rc = 0;
    for (uint32_t k = 0; k < j->n_audio && rc == 0; k++)
        rc = media_encode_audio(j->enc, j->audio[k], offset, why, cap);
    audio_free(j);
    return rc;
}

static void samples_off(clip_samples *s) {
    free(s->idx);
    free(s->frames);
    free(s->jpeg);
    *s = (clip_samples){.on = false, .mid = -1};
}

/* Plans a clip's samples as it starts, of what the run wants (frames only
 * when the frames stage is in the pipeline, a preview only when the preview
 * stage is); any failure just leaves them to the later stages. */
static void samples_start(const reel_curate_options *o, clip_job *j, double fps) {
    clip_samples *s = &j->s;
    *s = (clip_samples){.expect = j->clip->end_frame - j->clip->start_frame, .fps = fps, .mid = -1};
    if (stage_wants_frames(o)) {
        if (clip_frames_plan(s->expect, fps, o->frames_fps, &s->idx, &s->n) != 0)
            return;
        s->frames = malloc(clip_frame_bytes(o->frames_size) * s->n);
        if (!s->frames) {
            samples_off(s);
            return;
        }
    }
    if (o->previews)
        s->mid = clip_middle_frame(s->expect);
    s->on = s->frames || s->mid >= 0;
}

/* Takes what the samples want of the picture the clip's frame i (from 0)
 * was just encoded from. */
static void samples_take(const reel_curate_options *o, clip_job *j, int64_t i) {
    clip_samples *s = &j->s;
    if (!s->on)
        return;
    const AVFrame *pic = media_encode_picture(j->enc);
    uint32_t k = s->next;
    while (s->next < s->n && s->idx[s->next] <= i)
        s->next++;
    int rc = 0;
    if (s->next > k) /* samples k .. next - 1 show this frame */
        rc = pic ? clip_frames_put(s->frames, o->frames_size, k, s->next - k, pic) : -EINVAL;
    if (rc == 0 && s->mid >= 0 && i == s->mid) {
        char why[256];
        rc = pic ? clip_preview_jpeg(pic, o->preview_size, &s->jpeg, &s->jpeg_size, why, sizeof why)
                 : -EINVAL;
    }
    if (rc)
        samples_off(s);
}

/* A finished clip's samples into the clip, when they are what the frames
 * and preview stages would take of its MP4: the same count and rate (read
 * back as clip_video_open reads them), so the same frames. */
static void samples_keep(const reel_curate_options *o, clip_job *j) {
    clip_samples *s = &j->s;
    if (!s->on || j->frames != s->expect || s->next != s->n || (s->mid >= 0 && !s->jpeg)) {
        samples_off(s);
        return;
    }
    clip_video v;
    char why[256];
    bool same = clip_video_open(j->clip, &v, why, sizeof why) == 0;
    if (same) {
        same =
            v.num_frames == s->expect && (s->mid < 0 || clip_middle_frame(v.num_frames) == s->mid);
        if (same && s->frames &&
            v.fps != s->fps) { /* a rate read back a little off: the same picks? */
            int64_t *idx;
            uint32_t n;
            same = clip_frames_plan(v.num_frames, v.fps, o->frames_fps, &idx, &n) == 0;
            same = same && n == s->n && memcmp(idx, s->idx, n * sizeof *idx) == 0;
            free(idx);
        }
        clip_video_close(&v);
    }
    if (!same) {
        samples_off(s);
        return;
    }
    vt_clip *c = j->clip;
    if (s->frames) {
        c->frames =
            (vt_art){.data = s->frames, .size = (uint64_t)clip_frame_bytes(o->frames_size) * s->n};
        c->frames_n = s->n;
        c->frames_h = c->frames_w = o->frames_size;
        c->frames_fps = o->frames_fps;
    }
    if (s->jpeg)
        c->preview = (vt_art){.data = s->jpeg, .size = s->jpeg_size};
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
            .threads = (int)stage_encode_threads(x->o),
            .width = even(frame->width),
            .height = even(frame->height),
            .fps = x->fps,
            .bit_rate = x->bit_rate,
            .audio = x->sound.par,
            .audio_time_base = x->sound.time_base,
        };
        char why[256] = "";
        int rc = media_encode_start(&eo, &j->enc, why, sizeof why);
        if (rc == 0 && x->sound.par)
            rc = write_audio(x, j, why, sizeof why);
        if (rc) {
            if (rc == -ENOMEM)
                return rc;
            if (j->enc)
                media_encode_free(j->enc);
            j->enc = NULL;
            job_fail(j, "cannot start the encoder", why);
            continue;
        }
        j->clip->width = eo.width;
        j->clip->height = eo.height;
        j->clip->fps = x->fps;
        samples_start(x->o, j, x->fps);
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
            samples_take(x->o, j, j->frames);
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

/* The sound of every clip of x, read before its pictures. A sound track the
 * clips cannot carry is not the video's failure: why says so, and x keeps
 * none. -ENOMEM and -ESTALE (the file changed) are returned. */
static int collect_audio(transcode *x, media_input *m, char *why, size_t cap) {
    double from = INFINITY, to = 0;
    for (size_t i = 0; i < x->n_jobs; i++) {
        from = fmin(from, x->jobs[i].clip->start_s);
        to = fmax(to, x->jobs[i].clip->end_s);
    }
    if (!(to > from))
        return 0;
    /* Its packets are what an MP4 takes: the stream's own, or AAC. */
    int rc = media_audio(m, from, to, &x->sound, take_audio, x, why, cap);
    if (rc == 0)
        return 0;
    for (size_t i = 0; i < x->n_jobs; i++)
        audio_free(&x->jobs[i]);
    avcodec_parameters_free(&x->sound.par);
    if (rc == -ENOMEM || rc == -ESTALE)
        return rc;
    return 0; /* the pictures go on without sound; why says why */
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
    const media_open_options mo = {.hwaccel = o->use_hwaccel}; /* NVDEC when asked */
    int rc = stage_open_source(t, &mo, &m, why, sizeof why);
    char sound_why[ERR_CAP] = "";
    if (rc == 0 && o->use_input_bit_rate)
        x.bit_rate = media_curator_bit_rate(m);
    if (rc == 0 && o->audio)
        rc = collect_audio(&x, m, sound_why, sizeof sound_why);
    if (rc == 0)
        rc = media_decode(m, first, last, on_frame, &x, &partial, why, sizeof why);
    if (rc == -ESTALE) {
        /* The file changed under the decoder: no clip of it can be trusted. */
        for (size_t i = 0; i < x.n_jobs; i++) {
            clip_job *j = &jobs[i];
            if (j->enc)
                media_encode_free(j->enc);
            j->enc = NULL;
            free(j->mp4);
            j->mp4 = NULL;
            j->done = false;
            samples_off(&j->s);
            stage_add_error(j->clip, j->err, sizeof j->err, "transcoder: %s", why);
        }
        x.n_active = 0;
        x.next = x.n_jobs;
    }
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
    for (size_t i = 0; i < x.n_jobs; i++)
        audio_free(&jobs[i]); /* clips that never started */
    avcodec_parameters_free(&x.sound.par);
    if (m)
        media_close(m);
    if (rc == -ENOMEM)
        return rc;
    if (sound_why[0])
        set_task_error(t, err, err_cap, "transcoder: the clips have no sound: %s", sound_why);
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
    int rc = stage_read_task(ctx, "transcoder", in, n_in, &t);
    if (rc)
        return rc;
    char err[VT_TEXT_MAX];
    clip_job *jobs = NULL;
    if (t.n_clips && t.file.size) {
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
                j->clip->mp4 = (vt_art){.data = j->mp4, .size = j->mp4_size};
                j->clip->num_frames = j->frames;
                samples_keep(o, j);
                ok++;
            }
        }
        if (ok == 0 && !t.error.size)
            set_task_error(&t, err, sizeof err, "transcoder: %s",
                           "no clip could be encoded (each clip's errors say why)");
    } else if (t.n_clips) {
        for (uint32_t i = 0; i < t.n_clips; i++)
            if (!vt_art_present(&t.clips[i].mp4) && !t.clips[i].errors.size)
                t.clips[i].errors = (vt_bytes){(const uint8_t *)"transcoder: no source file",
                                               sizeof "transcoder: no source file" - 1};
    }
    rc = stage_write_task(ctx, out, &t, true);
done:
    if (jobs)
        for (uint32_t i = 0; i < t.n_clips; i++) {
            if (jobs[i].enc)
                media_encode_free(jobs[i].enc);
            free(jobs[i].mp4);
            samples_off(&jobs[i].s);
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
