/*
 * reel-bench curate: the whole curation pipeline (reel-curate's, with its
 * defaults) on the sample videos, beside the ffmpeg command-line tool doing
 * the same decode and transcode of the same inputs on the same CPUs, in the
 * same run.
 *
 * The baseline: for every video, one ffmpeg that decodes it and encodes
 * clips of the same length with the same encoder settings (libx264, preset,
 * CRF, one thread each, keyframes forced at the clip boundaries so that the
 * clips are cut where reel cuts them), as many at once as there are CPUs.
 * reel does more than that (previews and metadata; frames and tensors
 * only with --write-frames/--write-tensors, which the bench leaves off), so
 * the ratio is what the runtime and its extra stages cost against the codec
 * work alone.
 *
 * Figures: seconds of video curated per second of wall time, and source
 * frames per second; the ratio reel / ffmpeg is the headline.
 *
 * With --long, one long video through the reel-curate program instead
 * (bench_long.c).
 */
#include "bench.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <reel/stages.h>

#ifndef REEL_SAMPLES_DIR
#define REEL_SAMPLES_DIR "samples"
#endif

extern char **environ;

#define MAX_VIDEOS 64

typedef struct curate_inputs {
    char *paths[MAX_VIDEOS];
    size_t n;
} curate_inputs;

static int list_samples(const char *dir, curate_inputs *in) {
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    struct dirent *e;
    while ((e = readdir(d)) && in->n < MAX_VIDEOS) {
        const char *dot = strrchr(e->d_name, '.');
        if (e->d_name[0] == '.' || !dot ||
            (strcmp(dot, ".mp4") && strcmp(dot, ".mov") && strcmp(dot, ".webm")))
            continue;
        if (asprintf(&in->paths[in->n], "%s/%s", dir, e->d_name) < 0)
            break;
        in->n++;
    }
    closedir(d);
    return in->n ? 0 : -ENOENT;
}

static void rm_rf(const char *dir) {
    pid_t pid;
    char *argv[] = {"rm", "-rf", (char *)dir, NULL};
    if (posix_spawnp(&pid, "rm", NULL, NULL, argv, environ) == 0)
        waitpid(pid, NULL, 0);
}

typedef struct curate_totals {
    double video_s;
    int64_t frames;
    uint64_t clips;
    reel_store *store;
    uint64_t peak_store, capacity; /* the store's high mark at the end of the run */
} curate_totals;

static void count_output(void *arg, const reel_task_result *r) {
    curate_totals *t = arg;
    for (uint32_t i = 0; i < r->n_outputs; i++) {
        reel_view v;
        reel_curate_video_summary s;
        if (reel_obj_get(t->store, &r->outputs[i], 1, 0, &v) == 0) {
            if (reel_curate_read_summary(v.data, v.size, &s) == 0) {
                t->video_s += s.duration_s;
                t->frames += s.frames;
                t->clips += s.clips;
            }
            reel_obj_release(t->store, &r->outputs[i]);
        }
        reel_obj_delete(t->store, &r->outputs[i]);
    }
}

/* The whole pipeline on the inputs; its wall time in seconds, or < 0. */
static double run_reel(const curate_inputs *in, const char *out_dir, curate_totals *tot,
                       bench_report *rep) {
    char store_path[64];
    snprintf(store_path, sizeof store_path, "/dev/shm/reel-bench-curate-%d", (int)getpid());
    reel_store_options so = {.capacity = 512ull << 20, .max_objects = 4096};
    reel_store *store;
    int rc = reel_store_create(store_path, &so, &store);
    if (rc) {
        bench_report_error(rep, "cannot create %s: %s", store_path, reel_last_error());
        return -1;
    }
    reel_id ids[MAX_VIDEOS];
    for (size_t i = 0; rc == 0 && i < in->n; i++) {
        reel_id_random(&ids[i]);
        rc = reel_obj_put(store, &ids[i], in->paths[i], strlen(in->paths[i]), NULL, 0, 0, -1);
    }
    reel_curate_options o;
    reel_curate_defaults(&o);
    o.output_dir = out_dir;
    o.motion = REEL_MOTION_DISABLE; /* reel-curate's default, after Curator's script */
    reel_actor_def defs[REEL_CURATE_STAGES];
    reel_pipeline *p = NULL;
    if (rc == 0)
        rc = reel_curate_pipeline(&o, defs, &p);
    reel_executor_config cfg;
    reel_executor_config_defaults(&cfg);
    cfg.autoscale_interval_s = 1; /* the autoscaler at work within a short run */
    memset(tot, 0, sizeof *tot);
    tot->store = store;
    reel_run_options ro = {.store = store_path,
                           .config = &cfg,
                           .inputs = ids,
                           .n_inputs = in->n,
                           .on_output = count_output,
                           .arg = tot,
                           .flags = REEL_RUN_QUIET};
    reel_run_result res;
    uint64_t t0 = bench_now_ns();
    if (rc == 0)
        rc = reel_pipeline_run(p, &ro, &res);
    double wall = (double)(bench_now_ns() - t0) / 1e9;
    if (rc)
        bench_report_error(rep, "the pipeline failed: %s", reel_last_error());
    else if (res.failed)
        bench_report_error(rep, "%llu videos failed: %s", (unsigned long long)res.failed,
                           res.n_failures ? res.failures[0].error : "?");
    if (p) {
        reel_run_result_free(&res);
        reel_pipeline_free(p);
    }
    reel_store_stats st;
    if (reel_store_stats_get(store, &st) == 0) {
        tot->peak_store = st.peak_used;
        tot->capacity = st.capacity;
    }
    for (size_t i = 0; i < in->n; i++)
        reel_obj_delete(store, &ids[i]);
    reel_store_close(store);
    reel_store_destroy(store_path);
    return rc || res.failed ? -1 : wall;
}

/* ffmpeg on every input, ncpu at a time; wall time in seconds, or < 0. */
static double run_ffmpeg(const curate_inputs *in, const char *out_dir, int ncpu,
                         const reel_curate_options *o, bench_report *rep) {
    char seg[32], crf[16], keys[96];
    snprintf(seg, sizeof seg, "%g", o->fixed_stride_clip_len_s);
    snprintf(crf, sizeof crf, "%d", (int)o->crf);
    snprintf(keys, sizeof keys, "expr:gte(t,n_forced*%g)", o->fixed_stride_clip_len_s);
    pid_t pids[MAX_VIDEOS];
    size_t next = 0, running = 0, failed = 0;
    uint64_t t0 = bench_now_ns();
    while (next < in->n || running > 0) {
        while (next < in->n && running < (size_t)ncpu) {
            char pattern[PATH_MAX + 32];
            snprintf(pattern, sizeof pattern, "%s/%zu-%%03d.mp4", out_dir, next);
            char *argv[] = {"ffmpeg",
                            "-v",
                            "error",
                            "-nostdin",
                            "-y",
                            "-threads",
                            "1",
                            "-i",
                            in->paths[next],
                            "-map",
                            "0:v:0",
                            "-map",
                            "0:a:0?", /* the sound copied, as reel-curate and Curator do */
                            "-c:a",
                            "copy",
                            "-c:v",
                            (char *)o->encoder,
                            "-preset",
                            (char *)o->preset,
                            "-crf",
                            crf,
                            "-threads",
                            "1",
                            "-force_key_frames",
                            keys,
                            "-f",
                            "segment",
                            "-segment_time",
                            seg,
                            "-reset_timestamps",
                            "1",
                            pattern,
                            NULL};
            if (posix_spawnp(&pids[next], "ffmpeg", NULL, NULL, argv, environ) != 0) {
                bench_report_error(rep, "cannot run ffmpeg: %s", strerror(errno));
                return -1;
            }
            next++;
            running++;
        }
        int status;
        if (wait(&status) > 0) {
            running--;
            failed += !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        } else if (errno != EINTR) {
            break;
        }
    }
    double wall = (double)(bench_now_ns() - t0) / 1e9;
    if (failed) {
        bench_report_error(rep, "%zu ffmpeg runs failed", failed);
        return -1;
    }
    return wall;
}

/* reel and ffmpeg in turn, rounds times, over one set of inputs; the best
 * wall time of each into *reel_s and *ff_s. */
static int measure_set(const curate_inputs *in, const char *root, const char *tag, int rounds,
                       int ncpu, const reel_curate_options *o, const bench_options *opts,
                       curate_totals *tot, double *reel_s, double *ff_s, bench_report *rep) {
    *reel_s = *ff_s = 0;
    for (int round = 0; round < rounds; round++) {
        char out[PATH_MAX];
        snprintf(out, sizeof out, "%s/reel-%s-%d", root, tag, round);
        if (opts->progress)
            fprintf(stderr, "curate: %s, round %d: reel\n", tag, round + 1);
        double w = run_reel(in, out, tot, rep);
        snprintf(out, sizeof out, "%s/ffmpeg-%s-%d", root, tag, round);
        mkdir(out, 0755);
        if (opts->progress)
            fprintf(stderr, "curate: %s, round %d: ffmpeg\n", tag, round + 1);
        double f = w > 0 ? run_ffmpeg(in, out, ncpu, o, rep) : -1;
        if (w <= 0 || f <= 0)
            return -EIO;
        /* The best of the rounds for each: the machine is shared. */
        if (*reel_s == 0 || w < *reel_s)
            *reel_s = w;
        if (*ff_s == 0 || f < *ff_s)
            *ff_s = f;
    }
    return 0;
}

static void add_rows(bench_report *rep, const char *group, const curate_totals *tot, double reel_s,
                     double ff_s, int target) {
    bench_row *r = bench_report_add(rep, group, "seconds of video per second", "s/s", BENCH_RATE,
                                    tot->video_s / reel_s);
    if (r) {
        bench_row_baseline(r, "ffmpeg, same cores", tot->video_s / ff_s);
        if (target)
            bench_row_target(r, BENCH_ON_VALUE, BENCH_GE, 0.9 * tot->video_s / ff_s,
                             ">= 0.9 x ffmpeg");
    }
    r = bench_report_add(rep, group, "source frames per second", "frames/s", BENCH_RATE,
                         (double)tot->frames / reel_s);
    if (r)
        bench_row_baseline(r, "ffmpeg, same cores", (double)tot->frames / ff_s);
    /* The last round's: the store's high mark does not depend on the timing. */
    r = bench_report_add(rep, group, "peak store use", "MB", BENCH_AMOUNT,
                         (double)tot->peak_store / 1e6);
    if (r)
        bench_row_limit(r, "the store's capacity", (double)tot->capacity / 1e6);
}

#define COPIES 4 /* each sample given this many times for the throughput rows */

int bench_curate_run(const bench_options *opts, bench_report *rep) {
    if (opts->long_video)
        return bench_curate_long_run(opts, rep);
    const char *dir = getenv("REEL_SAMPLES") ? getenv("REEL_SAMPLES") : REEL_SAMPLES_DIR;
    curate_inputs in = {0}, many = {0};
    int rc = list_samples(dir, &in);
    if (rc) {
        bench_report_error(rep, "no sample videos in %s (run scripts/samples.sh)", dir);
        return rc;
    }
    char root[] = "/tmp/reel-bench-curate-XXXXXX";
    if (!mkdtemp(root)) {
        bench_report_error(rep, "mkdtemp: %s", strerror(errno));
        return -errno;
    }
    /* The same samples under other names: as many videos as a long run has
     * in flight, so that both sides keep every CPU busy. */
    for (int k = 0; k < COPIES && rc == 0; k++)
        for (size_t i = 0; i < in.n && rc == 0; i++) {
            const char *base = strrchr(in.paths[i], '/') + 1;
            char *p;
            if (asprintf(&p, "%s/copy%d-%s", root, k, base) < 0) {
                rc = -ENOMEM;
                break;
            }
            many.paths[many.n++] = p;
            if (symlink(in.paths[i], p) != 0)
                rc = -errno;
        }
    cpu_set_t set;
    int ncpu = 1, a, b;
    bench_cpus(&set, &ncpu, &a, &b);
    reel_curate_options o;
    reel_curate_defaults(&o);
    /* --iterations: rounds, each side's best taken */
    int rounds = opts->iterations ? (int)(opts->iterations < 10 ? opts->iterations : 10)
                 : opts->quick    ? 1
                                  : 2;
    curate_totals once = {0}, lots = {0};
    double reel_once = 0, ff_once = 0, reel_lots = 0, ff_lots = 0;
    if (rc == 0)
        rc = measure_set(&in, root, "once", rounds, ncpu, &o, opts, &once, &reel_once, &ff_once,
                         rep);
    /* --quick keeps a whole `reel-bench all --quick` under a minute: the
     * samples once, one round, and no throughput set */
    if (rc == 0 && !opts->quick)
        rc = measure_set(&many, root, "copies", rounds, ncpu, &o, opts, &lots, &reel_lots, &ff_lots,
                         rep);
    rm_rf(root);
    if (rc == 0) {
        char group[128];
        if (!opts->quick) {
            snprintf(group, sizeof group, "curate: each sample %d times (%zu videos), throughput",
                     COPIES, many.n);
            add_rows(rep, group, &lots, reel_lots, ff_lots, 1);
        }
        snprintf(group, sizeof group, "curate: the %zu samples once, latency of the longest", in.n);
        add_rows(rep, group, &once, reel_once, ff_once, opts->quick);
        bench_report_note(rep, "%zu samples, %.1f s of video, %lld frames, %llu clips; best of %d",
                          in.n, once.video_s, (long long)once.frames,
                          (unsigned long long)once.clips, rounds);
        bench_report_note(rep,
                          "ffmpeg: libx264 %s crf %d, 1 thread each, %d at once, segments "
                          "of %g s with keyframes forced at their starts, sound copied",
                          o.preset, (int)o.crf, ncpu, o.fixed_stride_clip_len_s);
        bench_report_note(rep,
                          "reel: reel-curate's defaults (fixed stride %g s, motion filter "
                          "off), autoscale_interval_s 1, %d CPUs; it also makes "
                          "previews and metadata (no frames or tensors: those are made "
                          "only to be written)",
                          o.fixed_stride_clip_len_s, ncpu);
    }
    for (size_t i = 0; i < in.n; i++)
        free(in.paths[i]);
    for (size_t i = 0; i < many.n; i++)
        free(many.paths[i]);
    return rc;
}
