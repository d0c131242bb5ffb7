/* A stage of one's own in the curation pipeline: drops the clips whose mean
 * luma is below a threshold, as a filter of Curator's would, so that the
 * writer puts them in filtered_clips/. The stage reads each clip's MP4
 * artifact zero-copy out of the store, decodes a few frames of it with
 * FFmpeg's libraries and averages their Y plane; it changes nothing else and
 * copies no artifact: the chunk it writes on carries them all by ID.
 *
 * The program runs reel's curation pipeline with the stage inserted after
 * the motion stage (the motion stage only scores here, so that what lands
 * in filtered_clips/ is this filter's doing):
 *
 *   reader -> splitter -> transcoder -> motion -> luma -> preview -> writer
 *
 * Run: reel-example-luma-filter --video-dir DIR --output-clip-path OUT
 *      [--min-luma Y]    (Y: 0..255 as the decoder gives it; default 40)
 * It uses only the installed headers <reel/stages.h>, <reel/pipeline.h>,
 * <reel/actor.h> and <reel/store.h>, and FFmpeg's. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/pixdesc.h>

#include <reel/actor.h>
#include <reel/pipeline.h>
#include <reel/stages.h>
#include <reel/store.h>

#define LUMA_SAMPLES 8 /* frames looked at per clip, spread over it */

/* The threshold: set by main() before the run starts, so that the workers,
 * forked later, see it (the def's arg points here). */
static double min_luma = 40;

/* ---- the mean luma of an MP4 in memory ----------------------------------------------- */

typedef struct mem_reader {
    const uint8_t *data;
    int64_t size, at;
} mem_reader;

static int mem_read(void *opaque, uint8_t *buf, int n) {
    mem_reader *r = opaque;
    int64_t left = r->size - r->at;
    if (left <= 0)
        return AVERROR_EOF;
    if (n > left)
        n = (int)left;
    memcpy(buf, r->data + r->at, (size_t)n);
    r->at += n;
    return n;
}

static int64_t mem_seek(void *opaque, int64_t offset, int whence) {
    mem_reader *r = opaque;
    if (whence & AVSEEK_SIZE)
        return r->size;
    int64_t to = (whence & ~AVSEEK_FORCE) == SEEK_CUR   ? r->at + offset
                 : (whence & ~AVSEEK_FORCE) == SEEK_END ? r->size + offset
                                                        : offset;
    if (to < 0 || to > r->size)
        return AVERROR(EINVAL);
    return r->at = to;
}

/* The mean of a frame's luma: its Y plane (YUV and grey formats). */
static int frame_luma(const AVFrame *f, double *out) {
    const AVPixFmtDescriptor *d = av_pix_fmt_desc_get(f->format);
    if (!d || (d->flags & (AV_PIX_FMT_FLAG_RGB | AV_PIX_FMT_FLAG_PAL)) || d->comp[0].depth != 8)
        return AVERROR(ENOTSUP);
    uint64_t sum = 0;
    for (int y = 0; y < f->height; y++) {
        const uint8_t *row = f->data[0] + (ptrdiff_t)y * f->linesize[0];
        for (int x = 0; x < f->width; x++)
            sum += row[x * d->comp[0].step];
    }
    *out = f->width && f->height ? (double)sum / ((double)f->width * f->height) : 0;
    return 0;
}

/* Decodes data[0..size) (an MP4) and averages the luma of LUMA_SAMPLES of its
 * frames, evenly spaced. Returns 0 or an AVERROR. */
static int mp4_mean_luma(const uint8_t *data, uint64_t size, double *mean) {
    mem_reader r = {data, (int64_t)size, 0};
    AVFormatContext *fmt = avformat_alloc_context();
    uint8_t *iobuf = av_malloc(65536);
    AVIOContext *io =
        iobuf ? avio_alloc_context(iobuf, 65536, 0, &r, mem_read, NULL, mem_seek) : NULL;
    AVCodecContext *dec = NULL;
    AVPacket *pkt = av_packet_alloc();
    AVFrame *f = av_frame_alloc();
    int rc = fmt && io && pkt && f ? 0 : AVERROR(ENOMEM);
    if (rc) {
        if (!io)
            av_free(iobuf);
        avformat_free_context(fmt);
        fmt = NULL;
    } else {
        fmt->pb = io;
        rc = avformat_open_input(&fmt, NULL, NULL, NULL); /* frees fmt on failure */
    }
    if (rc == 0)
        rc = avformat_find_stream_info(fmt, NULL);
    int s = rc < 0 ? rc : av_find_best_stream(fmt, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
    if (rc == 0 && s < 0)
        rc = s;
    if (rc == 0) {
        const AVCodec *codec = avcodec_find_decoder(fmt->streams[s]->codecpar->codec_id);
        dec = codec ? avcodec_alloc_context3(codec) : NULL;
        rc = dec ? avcodec_parameters_to_context(dec, fmt->streams[s]->codecpar) : AVERROR(ENOMEM);
        if (rc == 0)
            rc = avcodec_open2(dec, codec, NULL);
    }
    int64_t frames = rc == 0 ? fmt->streams[s]->nb_frames : 0;
    int64_t step = frames > LUMA_SAMPLES ? frames / LUMA_SAMPLES : 1;
    int64_t index = 0;
    double total = 0;
    int taken = 0;
    bool draining = false, ended = false;
    while (rc == 0 && !ended && taken < LUMA_SAMPLES) {
        if (!draining) {
            int got = av_read_frame(fmt, pkt);
            if (got == AVERROR_EOF) {
                draining = true;
                rc = avcodec_send_packet(dec, NULL);
            } else if (got < 0) {
                rc = got;
            } else {
                if (pkt->stream_index == s)
                    rc = avcodec_send_packet(dec, pkt);
                av_packet_unref(pkt);
            }
        }
        while (rc == 0 && taken < LUMA_SAMPLES) {
            int got = avcodec_receive_frame(dec, f);
            if (got == AVERROR(EAGAIN) && !draining)
                break;
            if (got == AVERROR_EOF || got == AVERROR(EAGAIN)) {
                ended = true; /* every frame decoded */
                break;
            }
            if (got < 0) {
                rc = got;
                break;
            }
            double y;
            if (index++ % step == 0 && (rc = frame_luma(f, &y)) == 0) {
                total += y;
                taken++;
            }
            av_frame_unref(f);
        }
    }
    if (rc == 0 && taken == 0)
        rc = AVERROR_INVALIDDATA;
    if (rc == 0)
        *mean = total / taken;
    av_frame_free(&f);
    av_packet_free(&pkt);
    avcodec_free_context(&dec);
    avformat_close_input(&fmt);
    if (io) {
        av_freep(&io->buffer);
        avio_context_free(&io);
    }
    return rc;
}

/* ---- the stage ------------------------------------------------------------------------ */

static int luma_process(reel_actor_ctx *ctx, const reel_view *in, size_t n, reel_actor_out *out) {
    const double threshold = *(const double *)reel_actor_arg(ctx);
    if (n != 1) {
        reel_actor_set_error(ctx, "a task takes one chunk, not %zu", n);
        return -EINVAL;
    }
    reel_clip_chunk *chunk;
    int rc = reel_clip_chunk_read(ctx, "luma", &in[0], &chunk);
    if (rc)
        return rc; /* the task's error says why */
    for (uint32_t i = 0; rc == 0 && i < reel_clip_chunk_clips(chunk); i++) {
        reel_clip clip;
        rc = reel_clip_chunk_clip(chunk, i, &clip);
        if (rc || clip.filtered)
            continue; /* dropped already */
        reel_view mp4;
        if (reel_clip_art_get(chunk, i, REEL_CLIP_MP4, &mp4) != 0)
            continue; /* no MP4: an earlier stage said why in its errors */
        double mean = 0;
        int err = mp4_mean_luma(mp4.data, mp4.size, &mean);
        reel_clip_art_release(chunk, i, REEL_CLIP_MP4);
        if (err < 0) {
            char text[AV_ERROR_MAX_STRING_SIZE + 32];
            snprintf(text, sizeof text, "cannot decode its MP4: %s", av_err2str(err));
            rc = reel_clip_add_error(chunk, i, text);
        } else if (mean < threshold) {
            rc = reel_clip_filter(chunk, i, NULL); /* to filtered_clips/, as motion does */
        }
    }
    if (rc == 0)
        rc = reel_clip_chunk_write(chunk, out);
    if (rc)
        reel_actor_set_error(ctx, "%s", reel_last_error());
    reel_clip_chunk_free(chunk);
    return rc;
}

static const reel_actor_def luma_stage = {
    .name = "luma", .process = luma_process, .arg = &min_luma, .cpus = 0.5};

/* ---- the program ----------------------------------------------------------------------- */

typedef struct totals {
    reel_store *store;
    unsigned videos, clips, written, filtered;
} totals;

/* The writer's output: one summary per video. */
static void on_output(void *arg, const reel_task_result *r) {
    totals *t = arg;
    for (uint32_t i = 0; i < r->n_outputs; i++) {
        reel_view v;
        reel_curate_video_summary s;
        if (reel_obj_get(t->store, &r->outputs[i], 1, 0, &v) == 0) {
            if (reel_curate_read_summary(v.data, v.size, &s) == 0) {
                printf("%s: %u clips, %u written, %u filtered\n", s.name, s.clips, s.clips_written,
                       s.clips_filtered);
                t->videos++, t->clips += s.clips;
                t->written += s.clips_written, t->filtered += s.clips_filtered;
            }
            reel_obj_release(t->store, &r->outputs[i]);
        }
        if (!(r->forwarded >> i & 1))
            reel_obj_delete(t->store, &r->outputs[i]);
    }
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The videos of dir, by name. */
static char **list_videos(const char *dir, const reel_curate_options *o, size_t *n) {
    DIR *d = opendir(dir);
    char **v = NULL;
    *n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (!reel_curate_is_video_name(o, e->d_name))
            continue;
        char **grown = realloc(v, (*n + 1) * sizeof *v);
        if (!grown || asprintf(&grown[*n], "%s/%s", dir, e->d_name) < 0) {
            v = grown ? grown : v;
            break;
        }
        v = grown;
        ++*n;
    }
    if (d)
        closedir(d);
    if (*n)
        qsort(v, *n, sizeof *v, cmp_str);
    return v;
}

static void usage(void) {
    fprintf(stderr, "usage: reel-example-luma-filter --video-dir DIR --output-clip-path OUT "
                    "[--min-luma Y]\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *video_dir = NULL;
    reel_curate_options o;
    reel_curate_defaults(&o);
    o.motion = REEL_MOTION_SCORE_ONLY;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            usage();
        if (strcmp(argv[i], "--video-dir") == 0)
            video_dir = argv[++i];
        else if (strcmp(argv[i], "--output-clip-path") == 0)
            o.output_dir = argv[++i];
        else if (strcmp(argv[i], "--min-luma") == 0)
            min_luma = atof(argv[++i]);
        else
            usage();
    }
    if (!video_dir)
        usage();

    reel_actor_def defs[REEL_CURATE_STAGES];
    reel_pipeline *pipe;
    if (reel_curate_pipeline_with(&o, defs, &luma_stage, "motion", NULL, &pipe) != 0) {
        fprintf(stderr, "luma-filter: %s\n", reel_last_error());
        return 1;
    }
    size_t n;
    char **videos = list_videos(video_dir, &o, &n);
    if (n == 0) {
        fprintf(stderr, "luma-filter: no videos in %s\n", video_dir);
        return 1;
    }
    char store_name[64];
    snprintf(store_name, sizeof store_name, "reel-luma-filter-%d", (int)getpid());
    reel_store *store;
    reel_store_options so = {.capacity = 256u << 20};
    int rc = reel_store_create(store_name, &so, &store);
    reel_id *ids = calloc(n, sizeof *ids);
    for (size_t i = 0; rc == 0 && i < n; i++) { /* the inputs: each video's path */
        rc = ids ? reel_id_random(&ids[i]) : -ENOMEM;
        if (rc == 0)
            rc = reel_obj_put(store, &ids[i], videos[i], strlen(videos[i]), NULL, 0, 0, -1);
    }
    if (rc) {
        fprintf(stderr, "luma-filter: %s: %s\n", reel_strerror(rc), reel_last_error());
        return 1;
    }

    reel_executor_config cfg;
    reel_executor_config_defaults(&cfg);
    cfg.ignore_failures = true; /* a bad video is recorded, the others go on */
    totals t = {.store = store};
    reel_run_options ro = {.store = store_name,
                           .config = &cfg,
                           .inputs = ids,
                           .n_inputs = n,
                           .on_output = on_output,
                           .arg = &t,
                           .flags = REEL_RUN_QUIET};
    reel_run_result res;
    rc = reel_pipeline_run(pipe, &ro, &res);
    /* A video that failed before the writer gets its record all the same. */
    for (size_t k = 0; k < res.n_failures; k++)
        for (size_t i = 0; i < n; i++)
            if (reel_id_equal(&res.failures[k].origin, &ids[i])) {
                fprintf(stderr, "luma-filter: %s: %s\n", videos[i], res.failures[k].error);
                reel_curate_record_failure(&o, videos[i], res.failures[k].error);
            }
    if (rc)
        fprintf(stderr, "luma-filter: %s\n", res.error);
    printf("%u videos, %u clips: %u written, %u filtered below mean luma %g\n", t.videos, t.clips,
           t.written, t.filtered, min_luma);
    int failed = rc != 0 || res.n_failures != 0;
    reel_run_result_free(&res);
    reel_pipeline_free(pipe);
    for (size_t i = 0; i < n; i++)
        reel_obj_delete(store, &ids[i]);
    reel_store_close(store);
    reel_store_destroy(store_name);
    for (size_t i = 0; i < n; i++)
        free(videos[i]);
    free(videos);
    free(ids);
    return failed ? 1 : 0;
}
