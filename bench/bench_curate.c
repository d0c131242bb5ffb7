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
 * reel does more than that (previews, frames, tensors, metadata), so the
 * ratio is what the runtime and its extra stages cost against the codec
 * work alone.
 *
 * Figures: seconds of video curated per second of wall time, and source
 * frames per second; the ratio reel / ffmpeg is the headline.
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
                            "-an",
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

int bench_curate_run(const bench_options *opts, bench_report *rep) {
    const char *dir = getenv("REEL_SAMPLES") ? getenv("REEL_SAMPLES") : REEL_SAMPLES_DIR;
    curate_inputs in = {0};
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
    cpu_set_t set;
    int ncpu = 1, a, b;
    bench_cpus(&set, &ncpu, &a, &b);
    reel_curate_options o;
    reel_curate_defaults(&o);
    int rounds = opts->quick ? 1 : 3;
    double best_reel = 0, best_ff = 0;
    curate_totals tot = {0};
    for (int round = 0; round < rounds && rc == 0; round++) {
        char out[PATH_MAX];
        snprintf(out, sizeof out, "%s/reel-%d", root, round);
        if (opts->progress)
            fprintf(stderr, "curate: round %d: reel\n", round + 1);
        double w = run_reel(&in, out, &tot, rep);
        snprintf(out, sizeof out, "%s/ffmpeg-%d", root, round);
        mkdir(out, 0755);
        if (opts->progress)
            fprintf(stderr, "curate: round %d: ffmpeg\n", round + 1);
        double f = w > 0 ? run_ffmpeg(&in, out, ncpu, &o, rep) : -1;
        if (w <= 0 || f <= 0) {
            rc = -EIO;
            break;
        }
        /* The best of the rounds for each: the machine is shared. */
        if (best_reel == 0 || w < best_reel)
            best_reel = w;
        if (best_ff == 0 || f < best_ff)
            best_ff = f;
    }
    rm_rf(root);
    if (rc == 0) {
        const char *group = "curate: the sample videos, whole pipeline vs ffmpeg decode+transcode";
        bench_row *r = bench_report_add(rep, group, "seconds of video per second", "s/s",
                                        BENCH_RATE, tot.video_s / best_reel);
        if (r) {
            bench_row_baseline(r, "ffmpeg, same cores", tot.video_s / best_ff);
            bench_row_target(r, BENCH_ON_VALUE, BENCH_GE, 0.9 * tot.video_s / best_ff,
                             ">= 0.9 x ffmpeg");
        }
        r = bench_report_add(rep, group, "source frames per second", "frames/s", BENCH_RATE,
                             (double)tot.frames / best_reel);
        if (r)
            bench_row_baseline(r, "ffmpeg, same cores", (double)tot.frames / best_ff);
        bench_report_note(rep, "%zu videos, %.1f s of video, %lld frames, %llu clips; best of %d",
                          in.n, tot.video_s, (long long)tot.frames, (unsigned long long)tot.clips,
                          rounds);
        bench_report_note(rep,
                          "ffmpeg: libx264 %s crf %d, 1 thread each, %d at once, segments "
                          "of %g s with keyframes forced at their starts",
                          o.preset, (int)o.crf, ncpu, o.fixed_stride_clip_len_s);
        bench_report_note(rep,
                          "reel: reel-curate's defaults (fixed stride %g s, motion filter "
                          "off), autoscale_interval_s 1, %d CPUs",
                          o.fixed_stride_clip_len_s, ncpu);
    }
    for (size_t i = 0; i < in.n; i++)
        free(in.paths[i]);
    return rc;
}
