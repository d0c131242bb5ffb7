/*
 * reel-curate: the main job. Curates a directory of videos into clips,
 * metadata and previews (and, when asked, each clip's frames and tensor as
 * .npy files), in NeMo Curator's layout, with the stages of
 * reel/stages.h run as a streaming (or batch) pipeline.
 *
 * With no arguments it curates the built-in sample videos into ./reel-out.
 * Flags follow Curator's video_split_clip_example.py; the executor's follow
 * NeMo Curator's executor settings (reel/pipeline.h). With --inputs-from the
 * paths arrive one per line over time and each starts as it comes; with
 * --results-jsonl a JSON line per video leaves as it finishes
 * (curate_stream.h): the seam a launcher feeds a node through.
 *
 * Exit codes: 0 the run finished (failures recorded when ignore_failures
 * says so), 1 the run could not start or stopped on an error, 2 bad
 * arguments.
 */
#include <reel/stages.h>

#include "cli.h"
#include "curate_stream.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PROG "reel-curate"

#ifndef REEL_SAMPLES_DIR
#define REEL_SAMPLES_DIR "samples"
#endif

typedef struct args {
    const char *video_dir;
    bool video_dir_given;
    const char *inputs_from;   /* a file of paths, "-" standard input; NULL: video_dir */
    const char *results_jsonl; /* a file, "-" standard output; NULL: none */
    const char *store;
    uint64_t store_size;
    const char *config_file;
    bool describe;
    bool frames_fps_given;
    reel_curate_options opt;
    reel_executor_config cfg;
} args;

static void usage(FILE *f) {
    fprintf(
        f,
        "usage: " PROG " [options]\n"
        "\n"
        "Curates the videos of a directory into clips, as NeMo Curator's video pipeline\n"
        "does: read, split (fixed stride or scene cuts), transcode to H.264, motion\n"
        "filter, previews, and Curator's output layout (clips/, filtered_clips/,\n"
        "previews/, metas/v0/, processed_videos/). Frames and tensors for embedding\n"
        "models are made only when asked for (--write-frames, --write-tensors); with\n"
        "--no-previews it does the work of Curator's split-and-transcode example. With\n"
        "no options it curates the built-in sample videos into ./reel-out.\n"
        "\n"
        "options:\n"
        "  --video-dir DIR                    the videos (default: the samples, %s)\n"
        "  --inputs-from FILE|-               video paths one per line, each curated as it\n"
        "                                     comes, until the end of input (not with\n"
        "                                     --video-dir; every file named is tried)\n"
        "  --results-jsonl FILE|-             one JSON line per finished video: path, name,\n"
        "                                     clips, clips_written, clips_filtered, partial,\n"
        "                                     failed, error, duration_s, frames, elapsed_s\n"
        "  --output-clip-path DIR             where the results go (default ./reel-out)\n"
        "  --video-limit N                    at most N videos (default 0: all)\n"
        "  --video-extensions LIST            only files ending in these, e.g. mp4,mov\n"
        "                                     (default: every extension libavformat reads)\n"
        "  --splitting-algorithm ALG          fixed_stride (default) or scene\n"
        "                                     (transnetv2 is taken as scene)\n"
        "  --fixed-stride-split-duration S    clip length and stride, seconds (10)\n"
        "  --fixed-stride-min-clip-length-s S shortest clip kept, seconds (2)\n"
        "  --scene-threshold X                shot-boundary score threshold (0.4)\n"
        "  --scene-min-length-s S             shortest scene kept (2)\n"
        "  --scene-max-length-s S             longer scenes are cut by this stride (10)\n"
        "  --scene-crop-s S                   taken off each end of a scene (0.5)\n"
        "  --motion-filter MODE               disable (default), enable or score-only\n"
        "  --motion-global-mean-threshold X   (0.00098)\n"
        "  --motion-per-patch-min-256-threshold X (0.000001)\n"
        "  --transcode-encoder NAME           libavcodec encoder (libx264)\n"
        "  --transcode-preset NAME            encoder preset (veryfast)\n"
        "  --transcode-crf N                  0..51 (23)\n"
        "  --transcode-use-input-bit-rate     each clip at the source's bit rate (Curator's\n"
        "                                     use_input_bit_rate: its bit_rate / 1024 kb/s,\n"
        "                                     2000 where it does not say) in place of the crf\n"
        "  --transcode-encoder-threads N      threads of each clip's encoder, 1..64 (0, the\n"
        "                                     default: 1; a transcoder asks for a CPU each)\n"
        "  --transcoder-workers N             a fixed number of transcoder workers, 1..256\n"
        "                                     (default 0: autoscaled, as every stage)\n"
        "  --clips-per-chunk N                clips per item after the splitter (Curator's\n"
        "                                     num_clips_per_chunk; 0, the default: a video's\n"
        "                                     clips over twice as many chunks as CPUs)\n"
        "  --no-previews                      no previews/<uuid>/preview.jpg (no preview stage)\n"
        "  --no-audio                         clips without the source's sound (by default\n"
        "                                     copied into each clip for its span, as Curator "
        "does)\n"
        "  --write-frames                     write each kept clip's frames beside its\n"
        "                                     metadata: metas/v0/<uuid>.frames.npy, uint8\n"
        "                                     (frames, 256, 256, 3) RGB (adds the frames stage)\n"
        "  --write-tensors                    write each kept clip's tensor for embedding\n"
        "                                     models: metas/v0/<uuid>.tensor.npy, float32\n"
        "                                     (frames, 3, 224, 224), CLIP-normalized (adds the\n"
        "                                     frames and preprocess stages)\n"
        "  --frames-fps X                     frames extracted per second of clip (2)\n"
        "  --no-gpu                           preprocess on the CPU even with a GPU\n"
        "  --transcode-use-hwaccel            decode on the GPU (NVDEC); fails where there is\n"
        "                                     none (with --transcode-encoder h264_nvenc, the\n"
        "                                     transcoder runs on a GPU share)\n"
        "  --store NAME                       the object store (default: a new one per run)\n"
        "  --store-size BYTES                 its memory (default 512M; K, M, G suffixes)\n"
        "  --config FILE                      executor settings from a JSON file\n"
        "  --describe                         print the pipeline and exit\n"
        "  --help                             this text\n"
        "\n"
        "executor settings (NeMo Curator's names and defaults):\n%s",
        REEL_SAMPLES_DIR, reel_executor_config_flags_help());
}

static void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, PROG ": ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see " PROG " --help)\n");
    va_end(ap);
    exit(2);
}

static double number(const char *flag, const char *v) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !isfinite(x))
        usage_error("%s needs a number, not '%s'", flag, v);
    return x;
}

static uint64_t count(const char *flag, const char *v) {
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || end == v || *end || v[0] == '-')
        usage_error("%s needs a whole number, not '%s'", flag, v);
    return x;
}

static uint64_t bytes(const char *flag, const char *v) {
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    uint64_t mult = 1;
    if (*end == 'K' || *end == 'k')
        mult = 1ull << 10, end++;
    else if (*end == 'M' || *end == 'm')
        mult = 1ull << 20, end++;
    else if (*end == 'G' || *end == 'g')
        mult = 1ull << 30, end++;
    if (errno || end == v || *end || v[0] == '-' || x == 0 || x > (UINT64_MAX >> 30))
        usage_error("%s needs a size such as 512M or 2G, not '%s'", flag, v);
    return x * mult;
}

/* "--name value" or "--name=value": the value, or NULL when argv[*i] is not --name. */
static const char *flag_value(int argc, char **argv, int *i, const char *name) {
    const char *v = NULL;
    return cli_match_option(argc, argv, i, name, true, &v, usage_error) ? v : NULL;
}

static void parse_args(int argc, char **argv, args *a) {
    memset(a, 0, sizeof *a);
    a->video_dir = REEL_SAMPLES_DIR;
    a->store_size = 512ull << 20;
    reel_curate_defaults(&a->opt);
    a->opt.motion = REEL_MOTION_DISABLE; /* Curator's example script's default */
    reel_executor_config_defaults(&a->cfg);
    /* The configuration file first, so that flags override it whatever their order. */
    for (int i = 1; i < argc; i++) {
        const char *v = flag_value(argc, argv, &i, "--config");
        if (v && reel_executor_config_load(&a->cfg, v) != 0) {
            fprintf(stderr, PROG ": %s\n", reel_last_error());
            exit(2);
        }
        if (v)
            a->config_file = v;
    }
    for (int i = 1; i < argc; i++) {
        const char *v;
        int rc = reel_executor_config_parse_flag(&a->cfg, argc, argv, &i);
        if (rc < 0) {
            fprintf(stderr, PROG ": %s\n", reel_last_error());
            exit(2);
        }
        if (rc > 0)
            continue;
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(stdout);
            exit(0);
        } else if (strcmp(arg, "--describe") == 0) {
            a->describe = true;
        } else if (strcmp(arg, "--no-gpu") == 0) {
            a->opt.use_gpu = false;
        } else if (strcmp(arg, "--transcode-use-hwaccel") == 0) {
            a->opt.use_hwaccel = true;
        } else if (strcmp(arg, "--no-previews") == 0) {
            a->opt.previews = false;
        } else if (strcmp(arg, "--no-audio") == 0) {
            a->opt.audio = false;
        } else if (strcmp(arg, "--transcode-use-input-bit-rate") == 0) {
            a->opt.use_input_bit_rate = true;
        } else if (strcmp(arg, "--write-frames") == 0) {
            a->opt.write_frames = true;
        } else if (strcmp(arg, "--write-tensors") == 0) {
            a->opt.write_tensors = true;
        } else if ((v = flag_value(argc, argv, &i, "--config"))) {
            /* read above */
        } else if ((v = flag_value(argc, argv, &i, "--video-dir"))) {
            a->video_dir = v;
            a->video_dir_given = true;
        } else if ((v = flag_value(argc, argv, &i, "--inputs-from"))) {
            if (!v[0])
                usage_error("--inputs-from needs a file, or - for standard input");
            a->inputs_from = v;
        } else if ((v = flag_value(argc, argv, &i, "--results-jsonl"))) {
            if (!v[0])
                usage_error("--results-jsonl needs a file, or - for standard output");
            a->results_jsonl = v;
        } else if ((v = flag_value(argc, argv, &i, "--output-clip-path"))) {
            a->opt.output_dir = v;
        } else if ((v = flag_value(argc, argv, &i, "--video-limit"))) {
            a->opt.video_limit = count("--video-limit", v);
        } else if ((v = flag_value(argc, argv, &i, "--video-extensions"))) {
            a->opt.video_extensions = v;
        } else if ((v = flag_value(argc, argv, &i, "--splitting-algorithm"))) {
            if (strcmp(v, "fixed_stride") == 0)
                a->opt.splitting = REEL_SPLIT_FIXED_STRIDE;
            else if (strcmp(v, "scene") == 0 || strcmp(v, "transnetv2") == 0)
                a->opt.splitting = REEL_SPLIT_SCENE;
            else
                usage_error("--splitting-algorithm is fixed_stride or scene, not '%s'", v);
        } else if ((v = flag_value(argc, argv, &i, "--fixed-stride-split-duration"))) {
            a->opt.fixed_stride_clip_len_s = a->opt.fixed_stride_stride_s =
                number("--fixed-stride-split-duration", v);
        } else if ((v = flag_value(argc, argv, &i, "--fixed-stride-min-clip-length-s"))) {
            a->opt.fixed_stride_min_clip_s = number("--fixed-stride-min-clip-length-s", v);
        } else if ((v = flag_value(argc, argv, &i, "--scene-threshold"))) {
            a->opt.scene_threshold = number("--scene-threshold", v);
        } else if ((v = flag_value(argc, argv, &i, "--scene-min-length-s"))) {
            a->opt.scene_min_clip_s = number("--scene-min-length-s", v);
        } else if ((v = flag_value(argc, argv, &i, "--scene-max-length-s"))) {
            a->opt.scene_max_clip_s = number("--scene-max-length-s", v);
        } else if ((v = flag_value(argc, argv, &i, "--scene-crop-s"))) {
            a->opt.scene_crop_s = number("--scene-crop-s", v);
        } else if ((v = flag_value(argc, argv, &i, "--motion-filter"))) {
            if (strcmp(v, "disable") == 0)
                a->opt.motion = REEL_MOTION_DISABLE;
            else if (strcmp(v, "enable") == 0)
                a->opt.motion = REEL_MOTION_ENABLE;
            else if (strcmp(v, "score-only") == 0)
                a->opt.motion = REEL_MOTION_SCORE_ONLY;
            else
                usage_error("--motion-filter is disable, enable or score-only, not '%s'", v);
        } else if ((v = flag_value(argc, argv, &i, "--motion-global-mean-threshold"))) {
            a->opt.motion_global_mean_threshold = number("--motion-global-mean-threshold", v);
        } else if ((v = flag_value(argc, argv, &i, "--motion-per-patch-min-256-threshold"))) {
            a->opt.motion_per_patch_min_256_threshold =
                number("--motion-per-patch-min-256-threshold", v);
        } else if ((v = flag_value(argc, argv, &i, "--clips-per-chunk"))) {
            uint64_t c = count("--clips-per-chunk", v);
            if (c > UINT32_MAX)
                usage_error("--clips-per-chunk %s is too many", v);
            a->opt.clips_per_chunk = (uint32_t)c;
        } else if ((v = flag_value(argc, argv, &i, "--transcode-encoder"))) {
            a->opt.encoder = v;
        } else if ((v = flag_value(argc, argv, &i, "--transcode-preset"))) {
            a->opt.preset = v;
        } else if ((v = flag_value(argc, argv, &i, "--transcode-crf"))) {
            double crf = number("--transcode-crf", v);
            if (crf != floor(crf) || crf < 0 || crf > 51)
                usage_error("--transcode-crf is a whole number 0..51, not '%s'", v);
            a->opt.crf = (int32_t)crf;
        } else if ((v = flag_value(argc, argv, &i, "--transcode-encoder-threads"))) {
            uint64_t t = count("--transcode-encoder-threads", v);
            if (t > 64)
                usage_error("--transcode-encoder-threads is 0..64 (0: automatic), not '%s'", v);
            a->opt.encode_threads = (uint32_t)t;
        } else if ((v = flag_value(argc, argv, &i, "--transcoder-workers"))) {
            uint64_t w = count("--transcoder-workers", v);
            if (w > REEL_POOL_MAX_WORKERS)
                usage_error("--transcoder-workers is at most %u (0: autoscaled), not '%s'",
                            REEL_POOL_MAX_WORKERS, v);
            a->opt.transcoder_workers = (uint32_t)w;
        } else if ((v = flag_value(argc, argv, &i, "--frames-fps"))) {
            a->opt.frames_fps = number("--frames-fps", v);
            a->frames_fps_given = true;
        } else if ((v = flag_value(argc, argv, &i, "--store"))) {
            a->store = v;
        } else if ((v = flag_value(argc, argv, &i, "--store-size"))) {
            a->store_size = bytes("--store-size", v);
        } else {
            usage_error("unknown option '%s'", arg);
        }
    }
    a->opt.cpu_allocation_percentage = a->cfg.cpu_allocation_percentage;
    if (a->inputs_from && a->video_dir_given)
        usage_error("--inputs-from and --video-dir both name the videos: give one");
    /* A rate for frames nobody makes is a mistake, not a setting. */
    if (a->frames_fps_given && !a->opt.write_frames && !a->opt.write_tensors)
        usage_error("--frames-fps needs --write-frames or --write-tensors: frames are made only "
                    "to be written");
    char why[256];
    if (reel_curate_validate(&a->opt, why, sizeof why) != 0)
        usage_error("%s", why);
}

/* ---- the videos ------------------------------------------------------------------ */

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The video files of dir (by extension, not descending), sorted by name, and
 * how many other files it holds (*skipped: directories aside). */
static int list_videos(const char *dir, const reel_curate_options *o, char ***out, size_t *n,
                       size_t *skipped) {
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    char **v = NULL;
    size_t cap = 0, k = 0;
    struct dirent *e;
    int rc = 0;
    *skipped = 0;
    while (rc == 0 && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (!reel_curate_is_video_name(o, e->d_name)) {
            struct stat st;
            bool dir_entry = e->d_type == DT_DIR ||
                             (e->d_type == DT_UNKNOWN &&
                              fstatat(dirfd(d), e->d_name, &st, 0) == 0 && S_ISDIR(st.st_mode));
            *skipped += !dir_entry;
            continue;
        }
        if (k == cap) {
            cap = cap ? cap * 2 : 16;
            char **nv = realloc(v, cap * sizeof *nv);
            if (!nv) {
                rc = -ENOMEM;
                break;
            }
            v = nv;
        }
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        v[k] = malloc(len);
        if (!v[k]) {
            rc = -ENOMEM;
            break;
        }
        snprintf(v[k], len, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", e->d_name);
        k++;
    }
    closedir(d);
    if (k)
        qsort(v, k, sizeof *v, cmp_str);
    *out = v;
    *n = k;
    return rc;
}

/* ---- the videos of the run ------------------------------------------------------------ */

/* One video given to the run: its path, the small store object that holds
 * it (the pipeline's input), whether its result is out, and the first error
 * a stage gave it. */
typedef struct input {
    char *path;
    reel_id id;
    bool done;
    char *error;
} input;

/* Every video given to the run, in order. */
typedef struct inputs {
    input *v;
    size_t n, cap;
    size_t given;      /* to the pipeline so far */
    size_t first_open; /* every video before it is done */
    reel_store *store;
} inputs;

static int inputs_add(inputs *in, const char *path) {
    if (in->n == in->cap) {
        size_t cap = in->cap ? in->cap * 2 : 64;
        input *v = realloc(in->v, cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        in->v = v;
        in->cap = cap;
    }
    input *e = &in->v[in->n];
    *e = (input){.path = strdup(path)};
    if (!e->path)
        return -ENOMEM;
    reel_id_random(&e->id);
    int rc = reel_obj_put(in->store, &e->id, path, strlen(path), NULL, 0, 0, -1);
    if (rc) {
        free(e->path);
        return rc;
    }
    in->n++;
    return 0;
}

/* The video whose input is id (from the first still open, or from the
 * first of all), or in->n. */
static size_t inputs_by_id(const inputs *in, const reel_id *id, bool open_only) {
    for (size_t i = open_only ? in->first_open : 0; i < in->n; i++)
        if (reel_id_equal(&in->v[i].id, id))
            return i;
    return in->n;
}

/* The first open video of that path, or in->n. */
static size_t inputs_by_path(const inputs *in, const char *path) {
    for (size_t i = in->first_open; i < in->n; i++)
        if (!in->v[i].done && strcmp(in->v[i].path, path) == 0)
            return i;
    return in->n;
}

static void inputs_close(inputs *in, size_t i) {
    in->v[i].done = true;
    while (in->first_open < in->n && in->v[in->first_open].done)
        in->first_open++;
}

static void inputs_free(inputs *in) {
    for (size_t i = 0; i < in->n; i++) {
        reel_obj_delete(in->store, &in->v[i].id);
        free(in->v[i].path);
        free(in->v[i].error);
    }
    free(in->v);
}

/* ---- progress ------------------------------------------------------------------------ */

typedef struct progress {
    bool tty;
    uint64_t videos_done, clips, written, filtered, partial, failed_in_writer;
    uint64_t failed_videos;              /* failed before the writer, or lines refused */
    uint64_t bytes_copied, source_bytes; /* between store objects; of the sources */
    uint64_t tensors_gpu, tensors_cpu;   /* where the tensors written were made */
    double video_s;
    int64_t frames;
    struct timespec start;
    reel_store *store;
    reel_pipeline_status last;
    bool have_status;
    bool shown; /* the live line is on the terminal, without its newline */
    /* The videos, and where they come from and their results go. */
    inputs in;
    line_source *src; /* --inputs-from; NULL: a directory's videos, all given at once */
    uint64_t limit;   /* --video-limit (0: none) */
    bool src_ended;   /* the source said its last */
    size_t bad_lines; /* lines of it that could not be paths */
    FILE *results;    /* --results-jsonl; NULL: none */
    const char *results_name;
    bool results_broken; /* a write failed: said once */
    uint32_t writer_stage;
    const reel_curate_options *opt;
} progress;

static double since(const struct timespec *t0) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

static void show_progress(progress *p) {
    if (!p->tty)
        return;
    double s = since(&p->start);
    char workers[256] = "";
    size_t len = 0;
    for (uint32_t i = 0; p->have_status && i < p->last.n_stages && len < sizeof workers - 32; i++)
        len += (size_t)snprintf(workers + len, sizeof workers - len, " %.4s:%u",
                                p->last.stage[i].name, p->last.stage[i].workers);
    fprintf(stderr,
            "\r\033[K" PROG ": %" PRIu64 "/%zu%s videos, %" PRIu64 " clips, %.1f clips/s,%s",
            p->videos_done, p->in.n, p->src && !p->src_ended ? "+" : "", p->clips,
            s > 0 ? (double)p->clips / s : 0.0, len ? workers : " starting");
    fflush(stderr);
    p->shown = true;
}

/* The executor's log on a terminal: its lines go above the live line, which
 * is cleared first and drawn again by on_status once the block is out. */
static ssize_t log_write(void *arg, const char *buf, size_t size) {
    progress *p = arg;
    if (p->shown) {
        fputs("\r\033[K", stderr);
        p->shown = false;
    }
    size_t n = fwrite(buf, 1, size, stderr);
    fflush(stderr);
    return (ssize_t)n;
}

static FILE *tty_log(progress *p) {
    FILE *f = fopencookie(p, "w", (cookie_io_functions_t){.write = log_write});
    if (f)
        setvbuf(f, NULL, _IOLBF, 0);
    return f;
}

/* A video's line of --results-jsonl, when asked for. */
static void put_result(progress *p, const reel_curate_video_summary *s) {
    if (!p->results || p->results_broken)
        return;
    if (results_line_write(p->results, s, since(&p->start)) != 0) {
        int e = errno;
        fprintf(stderr, PROG ": --results-jsonl %s: cannot write: %s%s\n", p->results_name,
                strerror(e), e == EPIPE ? ": stopping (nobody reads the results)" : "");
        p->results_broken = true;
        if (e == EPIPE) /* the launcher is gone: stop as on its signal */
            cli_stop_signal = SIGPIPE;
    }
}

static const char *base_name(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash && slash[1] ? slash + 1 : path;
}

/* A video that ends without the writer's record: its processed_videos/
 * record and its result line say why. */
static void video_failed(progress *p, const char *path, const char *why) {
    p->failed_videos++;
    if (reel_curate_record_failure(p->opt, path, why) != 0)
        fprintf(stderr, PROG ": cannot write the record of %s\n", path);
    reel_curate_video_summary s = {.failed = true};
    snprintf(s.path, sizeof s.path, "%s", path);
    snprintf(s.name, sizeof s.name, "%s", base_name(path));
    snprintf(s.error, sizeof s.error, "%s", why);
    put_result(p, &s);
}

static void on_output(void *arg, const reel_task_result *r) {
    progress *p = arg;
    for (uint32_t i = 0; i < r->n_outputs; i++) {
        reel_view v;
        reel_curate_video_summary s;
        int ok = reel_obj_get(p->store, &r->outputs[i], 1, 0, &v) == 0;
        if (ok && reel_curate_read_summary(v.data, v.size, &s) == 0) {
            p->videos_done++;
            p->clips += s.clips;
            p->written += s.clips_written;
            p->filtered += s.clips_filtered;
            p->partial += s.partial;
            p->failed_in_writer += s.failed;
            p->video_s += s.duration_s;
            p->frames += s.frames;
            p->bytes_copied += s.bytes_copied;
            p->source_bytes += s.source_bytes;
            p->tensors_gpu += s.tensors_gpu;
            p->tensors_cpu += s.tensors_cpu;
            size_t at = inputs_by_path(&p->in, s.path);
            if (at < p->in.n)
                inputs_close(&p->in, at);
            put_result(p, &s);
            if (!p->tty)
                fprintf(stderr, PROG ": %s: %u clips (%u written, %u filtered)%s\n", s.name,
                        s.clips, s.clips_written, s.clips_filtered,
                        s.partial ? ", decoded in part" : "");
        }
        if (ok)
            reel_obj_release(p->store, &r->outputs[i]);
        if (!(r->forwarded >> i & 1))
            reel_obj_delete(p->store, &r->outputs[i]);
    }
    show_progress(p);
}

/* A stage failed a video's item for good: the first error is kept for its
 * result; a failure of the writer itself ends the video. */
static void on_failure(void *arg, const reel_failure *f) {
    progress *p = arg;
    size_t at = inputs_by_id(&p->in, &f->origin, true);
    if (at == p->in.n || p->in.v[at].done)
        return;
    if (!p->in.v[at].error)
        p->in.v[at].error = strdup(f->error);
    if (f->stage == p->writer_stage) {
        inputs_close(&p->in, at);
        video_failed(p, p->in.v[at].path, f->error);
    }
}

/* No item of a video reached the writer: it ends here. */
static void on_ungathered(void *arg, const reel_id *origin) {
    progress *p = arg;
    size_t at = inputs_by_id(&p->in, origin, true);
    if (at == p->in.n || p->in.v[at].done)
        return;
    inputs_close(&p->in, at);
    video_failed(p, p->in.v[at].path,
                 p->in.v[at].error ? p->in.v[at].error : "no clip of it reached the writer");
}

/* The pipeline's next input: the next of a directory's videos, all listed
 * before the run, or the next path of --inputs-from. A line that cannot be
 * a path is said, recorded as a failed video and skipped. */
static int next_input(void *arg, reel_id *id) {
    progress *p = arg;
    if (p->in.given < p->in.n) {
        *id = p->in.v[p->in.given++].id;
        return 1;
    }
    while (p->src) {
        if (p->src_ended || (p->limit && p->in.n >= p->limit)) {
            p->src_ended = true;
            return 0;
        }
        const char *line;
        int rc = line_source_next(p->src, &line);
        if (rc == -EAGAIN)
            return -EAGAIN;
        if (rc == 0) {
            p->src_ended = true;
            return 0;
        }
        if (rc == -E2BIG || rc == -EBADMSG) {
            char why[160];
            snprintf(why, sizeof why, "--inputs-from: a line %s",
                     rc == -E2BIG ? "longer than a path may be" : "holding a NUL byte");
            fprintf(stderr, PROG ": %s (\"%s...\"): skipped\n", why, line);
            p->bad_lines++;
            video_failed(p, line, why);
            continue;
        }
        if (rc < 0) {
            fprintf(stderr, PROG ": --inputs-from: cannot read: %s\n", strerror(-rc));
            return rc;
        }
        rc = inputs_add(&p->in, line);
        if (rc) {
            fprintf(stderr, PROG ": cannot take %s: %s\n", line,
                    rc == -ENOMEM ? "out of memory" : reel_last_error());
            return rc;
        }
        *id = p->in.v[p->in.given++].id;
        return 1;
    }
    return 0;
}

static void on_status(void *arg, const reel_pipeline_status *s) {
    progress *p = arg;
    p->last = *s;
    p->have_status = true;
    show_progress(p);
}

/* ---- stores of killed runs ------------------------------------------------------------- */

/* Removes the stores of earlier runs killed before they could (named
 * reel-curate-<pid>, their process gone): 512 MiB of memory each. */
static void remove_stale_stores(void) {
    unsigned n = reel_store_destroy_orphans("reel-curate-");
    if (n)
        fprintf(stderr, PROG ": removed %u store%s left by runs that were killed\n", n,
                n == 1 ? "" : "s");
}

/* ---- main ------------------------------------------------------------------------------ */

int main(int argc, char **argv) {
    args a;
    parse_args(argc, argv, &a);
    reel_actor_def defs[REEL_CURATE_STAGES];
    reel_pipeline *pipe;
    if (reel_curate_pipeline(&a.opt, defs, &pipe) != 0) {
        fprintf(stderr, PROG ": %s\n", reel_last_error());
        return 1;
    }
    if (a.describe) {
        reel_pipeline_describe(pipe, stdout);
        reel_pipeline_free(pipe);
        return 0;
    }
    progress prog = {.tty = isatty(STDERR_FILENO) == 1,
                     .opt = &a.opt,
                     .limit = a.opt.video_limit,
                     .results_name = a.results_jsonl,
                     .writer_stage = reel_curate_stage_defs(&a.opt, defs) - 1};
    /* The videos: a directory's, listed now, or lines that come over time. */
    char **videos = NULL;
    size_t n = 0, skipped = 0;
    int rc = 0;
    if (a.inputs_from) {
        rc = line_source_open(a.inputs_from, &prog.src);
        if (rc) {
            fprintf(stderr, PROG ": --inputs-from %s: %s\n", a.inputs_from, strerror(-rc));
            reel_pipeline_free(pipe);
            return 1;
        }
    } else {
        rc = list_videos(a.video_dir, &a.opt, &videos, &n, &skipped);
        if (rc) {
            fprintf(stderr, PROG ": --video-dir %s: %s\n", a.video_dir, strerror(-rc));
            reel_pipeline_free(pipe);
            return 1;
        }
        if (n == 0) {
            fprintf(stderr, PROG ": no videos in %s (%zu file%s skipped: not video extensions)\n",
                    a.video_dir, skipped, skipped == 1 ? "" : "s");
            reel_pipeline_free(pipe);
            free(videos);
            return 1;
        }
        if (a.opt.video_limit && n > a.opt.video_limit) {
            for (size_t i = a.opt.video_limit; i < n; i++)
                free(videos[i]);
            n = a.opt.video_limit;
        }
    }
    if (a.results_jsonl) {
        prog.results = strcmp(a.results_jsonl, "-") == 0 ? stdout : fopen(a.results_jsonl, "we");
        if (!prog.results) {
            fprintf(stderr, PROG ": --results-jsonl %s: %s\n", a.results_jsonl, strerror(errno));
            reel_pipeline_free(pipe);
            line_source_close(prog.src);
            for (size_t i = 0; i < n; i++)
                free(videos[i]);
            free(videos);
            return 1;
        }
    }

    /* Ctrl-C, a kill or a closed terminal stops the run cleanly (its workers
     * and its store go); a second one kills as usual. */
    cli_catch_stop_signals(true);
    if (prog.results) /* a reader that goes away is an error to say, not a death */
        signal(SIGPIPE, SIG_IGN);
    remove_stale_stores();
    char store_path[PATH_MAX];
    if (a.store)
        snprintf(store_path, sizeof store_path, "%s", a.store);
    else
        snprintf(store_path, sizeof store_path, "reel-curate-%d", (int)getpid()); /* private dir */
    reel_store_options so = {.capacity = a.store_size, .max_objects = 65536};
    reel_store *store;
    rc = reel_store_create(store_path, &so, &store);
    if (rc) {
        fprintf(stderr, PROG ": cannot create the store %s: %s\n", store_path, reel_last_error());
        return 1;
    }
    prog.store = prog.in.store = store;
    reel_store_stats st;
    if (reel_store_stats_get(store, &st) == 0 && st.spill_dir_in_memory)
        fprintf(stderr,
                PROG ": warning: the spill directory %s is on tmpfs or ramfs: spilling there "
                     "frees no memory\n",
                reel_store_spill_dir(store));
    /* The inputs: one small object per video, holding its path as given. */
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = inputs_add(&prog.in, videos[i]);
    for (size_t i = 0; i < n; i++)
        free(videos[i]);
    free(videos);
    if (rc) {
        fprintf(stderr, PROG ": cannot store the video list: %s\n",
                rc == -ENOMEM ? "out of memory" : reel_last_error());
        inputs_free(&prog.in);
        reel_store_close(store);
        reel_store_destroy(store_path);
        return 1;
    }

    clock_gettime(CLOCK_MONOTONIC, &prog.start);
    if (prog.src)
        fprintf(stderr, PROG ": videos from %s, one path a line, into %s (%s, %s)\n",
                strcmp(a.inputs_from, "-") == 0 ? "standard input" : a.inputs_from,
                a.opt.output_dir,
                a.opt.splitting == REEL_SPLIT_SCENE ? "scene cuts" : "fixed stride",
                a.cfg.execution_mode == REEL_EXEC_BATCH ? "batch" : "streaming");
    else
        fprintf(stderr, PROG ": %zu videos from %s into %s (%s, %s)\n", n, a.video_dir,
                a.opt.output_dir,
                a.opt.splitting == REEL_SPLIT_SCENE ? "scene cuts" : "fixed stride",
                a.cfg.execution_mode == REEL_EXEC_BATCH ? "batch" : "streaming");
    /* On a terminal the status lines every --logging-interval go above the
     * live line. */
    FILE *log = prog.tty ? tty_log(&prog) : NULL;
    reel_run_options ro = {.store = store_path,
                           .config = &a.cfg,
                           .next_input = next_input,
                           .on_output = on_output,
                           .on_status = on_status,
                           .on_failure = on_failure,
                           .on_ungathered = on_ungathered,
                           .arg = &prog,
                           .log = log,
                           .cancel = &cli_stop_signal};
    reel_run_result res;
    rc = reel_pipeline_run(pipe, &ro, &res);
    if (log)
        fclose(log);
    if (prog.shown)
        fprintf(stderr, "\n");

    /* Each failure, a line; a video that ended without the writer's record
     * and was not said yet (a run stopped at its first failure), its record
     * and result. A video's chunks fail on their own: it ends once. */
    for (size_t k = 0; k < res.n_failures; k++) {
        size_t at = inputs_by_id(&prog.in, &res.failures[k].origin, false);
        const char *path = at < prog.in.n ? prog.in.v[at].path : "(unknown video)";
        if (strstr(res.failures[k].error, path)) /* the stages name the video themselves */
            fprintf(stderr, PROG ": %s\n", res.failures[k].error);
        else
            fprintf(stderr, PROG ": %s: %s\n", path, res.failures[k].error);
        if (at < prog.in.n && !prog.in.v[at].done) {
            inputs_close(&prog.in, at);
            video_failed(&prog, path, res.failures[k].error);
        }
    }
    double wall = since(&prog.start);
    size_t total = prog.in.n + prog.bad_lines;
    fprintf(stderr,
            PROG ": %" PRIu64 " of %zu videos curated, %" PRIu64 " clips written, %" PRIu64
                 " filtered, %" PRIu64 " videos failed, %.2f s, %.2f s of video per second\n",
            prog.videos_done, total, prog.written, prog.filtered,
            prog.failed_videos + prog.failed_in_writer, wall, wall > 0 ? prog.video_s / wall : 0.0);
    /* The store goes with the run: its high mark is said here or nowhere. */
    if (reel_store_stats_get(store, &st) == 0)
        fprintf(stderr, PROG ": peak store use %" PRIu64 " bytes of %" PRIu64 " (%.1f%%)\n",
                st.peak_used, st.capacity,
                st.capacity ? 100.0 * (double)st.peak_used / (double)st.capacity : 0.0);
    /* Artifacts pass between stages by ID: what is copied from one store
     * object into another is the small per-chunk records. */
    fprintf(stderr,
            PROG ": %" PRIu64 " bytes copied between store objects (%.3g per source byte)\n",
            prog.bytes_copied,
            prog.source_bytes ? (double)prog.bytes_copied / (double)prog.source_bytes : 0.0);
    /* Where the tensors were made: on a GPU node, whether the kernel ran. */
    if (a.opt.write_tensors)
        fprintf(stderr, PROG ": tensors: %" PRIu64 " clips on the GPU, %" PRIu64 " on the CPU\n",
                prog.tensors_gpu, prog.tensors_cpu);
    if (skipped)
        fprintf(stderr, PROG ": %zu file%s skipped: not video extensions\n", skipped,
                skipped == 1 ? "" : "s");
    int sig = cli_stop_signal;
    if (rc == -ECANCELED && sig)
        fprintf(stderr, PROG ": interrupted by %s: the videos done so far are in %s\n",
                strsignal(sig), a.opt.output_dir);
    else if (rc)
        fprintf(stderr, PROG ": stopped: %s\n", res.error);

    reel_run_result_free(&res);
    reel_pipeline_free(pipe);
    inputs_free(&prog.in);
    line_source_close(prog.src);
    if (prog.results && prog.results != stdout && fclose(prog.results) != 0 && !prog.results_broken)
        fprintf(stderr, PROG ": --results-jsonl %s: %s\n", a.results_jsonl, strerror(errno));
    reel_store_close(store);
    reel_store_destroy(store_path);
    return rc == -ECANCELED && sig ? 128 + sig : rc ? 1 : 0;
}
