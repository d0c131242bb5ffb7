/*
 * reel-bench curate --long: one long video, made at bench time, through the
 * reel-curate program beside the ffmpeg command line doing the same codec
 * work, and beside itself with one transcoder worker, in one run on the same
 * CPUs.
 *
 * The video: --long-seconds (300 by default) of 1280x720 at 30 fps, H.264
 * (libx264, its default GOP), a concatenation of scenes 5 to 15 s long, each
 * from another of ffmpeg's lavfi sources (testsrc2, smptebars, rgbtestsrc,
 * mandelbrot, testsrc) with its own hue and hue drift, so that the video
 * has scene changes and no two scenes look alike. It is made once per set
 * of parameters and kept (REEL_BENCH_CACHE, else /var/tmp/reel-bench), under
 * a name that holds them; a partial file never takes that name.
 *
 * The runs, in turn:
 *   reel     reel-curate with its defaults (the store size too), the video
 *            alone in its --video-dir;
 *   ffmpeg   one `ffmpeg -threads 0` decoding the video once and encoding
 *            it with reel-curate's encoder settings (libx264 veryfast CRF
 *            23) into segments of the clip length, keyframes forced at the
 *            clip starts: the same spans reel cuts;
 *   reel, 1  reel-curate --transcoder-workers 1: what transcoding in
 *            parallel gains is the first run's speed over this one's.
 * Each is timed from its spawn to its exit. The peak memory of a run is
 * the largest sum of Pss (proportional set size: a page shared by k
 * processes counts 1/k in each, so the store's pages count once in all)
 * over the processes alive in its tree (the program and its descendants),
 * sampled every 250 ms: the memory the run holds. Beside it, an upper
 * bound: the largest sum, over samples every 50 ms, of VmHWM, where the
 * store's shared pages count in every process that touched them. The
 * store's peak use and the bytes copied
 * between store objects are read from reel-curate's closing summary (its
 * store goes with it).
 */
#include "bench.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <reel/stages.h>

extern char **environ;

#define LONG_W      1280
#define LONG_H      720
#define LONG_FPS    30
#define LONG_RECIPE 1 /* bumped when the recipe below changes: names a new cache file */

/* ---- the process tree's memory ------------------------------------------------ */

#define TREE_MAX 4096

/* The parent of pid from /proc/pid/stat, or -1. The command name may hold
 * spaces and parentheses: the fields start after the last ')'. */
static pid_t parent_of(pid_t pid) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    int ppid;
    if (!p || sscanf(p + 1, " %*c %d", &ppid) != 1)
        return -1;
    return (pid_t)ppid;
}

/* The field "\nNAME:" of /proc/PID/FILE in kB, or 0 when pid is gone. */
static uint64_t proc_kb(pid_t pid, const char *file, const char *field) {
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, file);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    const char *p = strstr(buf, field);
    unsigned long long kb = 0;
    if (p)
        sscanf(p + strlen(field), " %llu", &kb);
    return kb;
}

/* Appends to tree[*n..cap) the children of every thread of pid, from
 * /proc/PID/task/TID/children (a thread's own children: the runtime may fork
 * from any thread). */
static void add_children(pid_t pid, pid_t *tree, size_t *n, size_t cap) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return; /* gone */
    struct dirent *e;
    while ((e = readdir(d))) {
        int tid = atoi(e->d_name);
        if (tid <= 0)
            continue;
        char cpath[96];
        snprintf(cpath, sizeof cpath, "/proc/%d/task/%d/children", (int)pid, tid);
        FILE *f = fopen(cpath, "re");
        if (!f)
            continue;
        int c;
        while (*n < cap && fscanf(f, "%d", &c) == 1)
            tree[(*n)++] = (pid_t)c;
        fclose(f);
    }
    closedir(d);
}

/* root and its descendants alive now into tree[0..cap), from the parent of
 * every process in /proc: where the children files are missing. */
static size_t tree_by_scan(pid_t root, pid_t *tree, size_t cap) {
    static pid_t pids[TREE_MAX], parents[TREE_MAX];
    size_t n = 0, k = 0;
    DIR *d = opendir("/proc");
    if (!d)
        return 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < TREE_MAX) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        pid_t pid = (pid_t)strtol(e->d_name, NULL, 10);
        pid_t pp = parent_of(pid);
        if (pp >= 0) {
            pids[n] = pid;
            parents[n++] = pp;
        }
    }
    closedir(d);
    tree[k++] = root;
    for (size_t i = 0; i < k; i++) /* breadth first: the tree grows as it is read */
        for (size_t j = 0; j < n && k < cap; j++)
            if (parents[j] == tree[i])
                tree[k++] = pids[j];
    return k;
}

/* The sums of VmHWM and (with pss) of Pss over root and its descendants
 * alive now, in kB. */
static uint64_t tree_hwm_kb(pid_t root, uint64_t *pss) {
    static pid_t tree[TREE_MAX];
    static int children_files = -1; /* the kernel has them (CONFIG_PROC_CHILDREN) */
    if (children_files < 0) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)getpid(), (int)getpid());
        children_files = access(path, R_OK) == 0;
    }
    size_t n = 0;
    if (children_files) {
        tree[n++] = root;
        for (size_t i = 0; i < n; i++)
            add_children(tree[i], tree, &n, TREE_MAX);
    } else {
        n = tree_by_scan(root, tree, TREE_MAX);
    }
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        sum += proc_kb(tree[i], "status", "\nVmHWM:");
        if (pss)
            *pss += proc_kb(tree[i], "smaps_rollup", "\nPss:");
    }
    return sum;
}

typedef struct run_result {
    double wall_s;
    uint64_t peak_kb;     /* the largest sum of VmHWM over the tree */
    uint64_t peak_pss_kb; /* the largest sum of Pss over the tree */
    int status;           /* as waitpid() gives it */
} run_result;

/* Runs argv with stderr into err_path (stdout to /dev/null), sampling its
 * tree's memory every 50 ms until it exits. Returns 0, or a negative errno
 * when it could not start. */
static int run_sampled(char *const argv[], const char *err_path, run_result *out) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, err_path, O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
    memset(out, 0, sizeof *out);
    pid_t pid;
    uint64_t t0 = bench_now_ns();
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        return -rc;
    for (uint32_t k = 0;; k++) {
        /* Pss walks the page tables (the store's too): every 5th sample. */
        uint64_t pss = 0;
        uint64_t kb = tree_hwm_kb(pid, k % 5 == 0 ? &pss : NULL);
        if (kb > out->peak_kb)
            out->peak_kb = kb;
        if (pss > out->peak_pss_kb)
            out->peak_pss_kb = pss;
        pid_t w = waitpid(pid, &out->status, WNOHANG);
        if (w == pid)
            break;
        if (w < 0 && errno != EINTR) {
            out->status = -1;
            break;
        }
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    out->wall_s = (double)(bench_now_ns() - t0) / 1e9;
    return 0;
}

/* The last line of the file at path, for an error message. */
static void last_line(const char *path, char *buf, size_t cap) {
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f))
        if (line[0] != '\n') {
            size_t n = strnlen(line, cap - 1);
            memcpy(buf, line, n);
            buf[n] = '\0';
        }
    fclose(f);
    size_t n = strlen(buf);
    if (n && buf[n - 1] == '\n')
        buf[n - 1] = '\0';
}

static int exited_ok(const run_result *r) {
    return r->status >= 0 && WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0;
}

/* ---- the video ------------------------------------------------------------------ */

/* The cache directory: REEL_BENCH_CACHE, else /var/tmp/reel-bench (on disk,
 * kept between runs), made if missing. */
static int cache_dir(char *buf, size_t cap) {
    const char *env = getenv("REEL_BENCH_CACHE");
    snprintf(buf, cap, "%s", env && *env ? env : "/var/tmp/reel-bench");
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        return -errno;
    return 0;
}

/* The lavfi graph of the long video: scenes of 5 to 15 s until seconds are
 * filled, each from the next source, with a hue and a drift of its own,
 * concatenated. A fixed seed: the same parameters make the same graph. */
static char *long_graph(double seconds) {
    static const char *const sources[] = {
        "testsrc2=size=1280x720:rate=30",
        "smptebars=size=1280x720:rate=30",
        "rgbtestsrc=size=1280x720:rate=30",
        /* mandelbrot is costly per pixel: drawn small, scaled up */
        "mandelbrot=size=640x360:rate=30:maxiter=256,scale=1280:720",
        "testsrc=size=1280x720:rate=30",
    };
    size_t cap = 1 << 16, len = 0;
    char *g = malloc(cap);
    if (!g)
        return NULL;
    g[0] = '\0';
    uint32_t seed = 12345;
    double done = 0;
    int n = 0;
    while (done < seconds && len + 512 < cap) {
        seed = seed * 1103515245u + 12345u;
        double d = 5 + (double)((seed >> 16) % 11); /* 5..15 s */
        if (d > seconds - done)
            d = seconds - done;
        int hue = (int)((seed >> 8) % 360);
        int drift = 10 + (int)((seed >> 4) % 50); /* degrees per second */
        len += (size_t)snprintf(g + len, cap - len,
                                "%s,trim=duration=%g,setpts=PTS-STARTPTS,hue=h=%d+%d*t,"
                                "format=yuv420p[s%d];",
                                sources[n % (int)(sizeof sources / sizeof sources[0])], d, hue,
                                drift, n);
        done += d;
        n++;
    }
    for (int i = 0; i < n && len + 16 < cap; i++)
        len += (size_t)snprintf(g + len, cap - len, "[s%d]", i);
    if (len + 64 >= cap) {
        free(g);
        return NULL;
    }
    snprintf(g + len, cap - len, "concat=n=%d:v=1:a=0[v]", n);
    return g;
}

/* The long video's path in the cache, made there first if it is not. */
static int long_video(const bench_options *opts, double seconds, char *path, size_t cap,
                      bench_report *rep) {
    char dir[PATH_MAX - 128];
    int rc = cache_dir(dir, sizeof dir);
    if (rc) {
        bench_report_error(rep, "cannot make the cache directory %s: %s", dir, strerror(-rc));
        return rc;
    }
    snprintf(path, cap, "%s/long-%gs-%dx%d-%dfps-h264-r%d.mp4", dir, seconds, LONG_W, LONG_H,
             LONG_FPS, LONG_RECIPE);
    struct stat st;
    if (stat(path, &st) == 0 && st.st_size > 0)
        return 0;
    char partial[PATH_MAX + 32], err_path[PATH_MAX + 32], dur[32];
    snprintf(partial, sizeof partial, "%s.partial-%d.mp4", path, (int)getpid());
    snprintf(err_path, sizeof err_path, "%s.partial-%d.log", path, (int)getpid());
    snprintf(dur, sizeof dur, "%g", seconds);
    char *graph = long_graph(seconds);
    if (!graph) {
        bench_report_error(rep, "the long video's filter graph: out of memory");
        return -ENOMEM;
    }
    bench_progress(opts, "curate", "making a %g s video (kept in %s)", seconds, dir);
    char *argv[] = {"ffmpeg",  "-v",      "error",    "-nostdin", "-y", "-filter_complex",
                    graph,     "-map",    "[v]",      "-t",       dur,  "-c:v",
                    "libx264", "-preset", "veryfast", "-crf",     "18", "-pix_fmt",
                    "yuv420p", "-r",      "30",       partial,    NULL};
    run_result r;
    rc = run_sampled(argv, err_path, &r);
    free(graph);
    if (rc == 0 && exited_ok(&r) && rename(partial, path) == 0) {
        unlink(err_path);
        return 0;
    }
    char why[256];
    last_line(err_path, why, sizeof why);
    bench_report_error(rep, "ffmpeg could not make the long video: %s",
                       rc       ? strerror(-rc)
                       : why[0] ? why
                                : "it failed");
    unlink(partial);
    unlink(err_path);
    return rc ? rc : -EIO;
}

/* ---- reel-curate's summary -------------------------------------------------------- */

int bench_curate_program(char *buf, size_t cap) {
    const char *env = getenv("REEL_CURATE");
    if (env && *env) {
        snprintf(buf, cap, "%s", env);
    } else {
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n <= 0)
            return -errno;
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        *slash = '\0';
        size_t len = strlen(self);
        if (len + sizeof "/reel-curate" > cap)
            return -ENAMETOOLONG;
        memcpy(buf, self, len);
        memcpy(buf + len, "/reel-curate", sizeof "/reel-curate");
    }
    return access(buf, X_OK) == 0 ? 0 : -errno;
}

typedef struct curate_summary {
    uint64_t videos, clips;
    uint64_t peak_store, capacity; /* "peak store use N bytes of M" */
    int has_peak;
    double copied_per_byte; /* bytes copied between store objects per source byte */
    int has_copied;
} curate_summary;

/* The number that ends just before end in line (scanning back), or -1. */
static double number_before(const char *line, const char *end) {
    const char *p = end;
    while (p > line && p[-1] == ' ')
        p--;
    const char *stop = p;
    while (p > line && (strchr("0123456789.eE+-", p[-1])))
        p--;
    if (p == stop)
        return -1;
    return strtod(p, NULL);
}

/* Reads what reel-curate's closing lines say. source_bytes: the video's
 * size, for a line that gives copies in bytes only. */
static void read_summary(const char *path, uint64_t source_bytes, curate_summary *s) {
    memset(s, 0, sizeof *s);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        const char *p;
        unsigned long long a, b;
        if ((p = strstr(line, " videos curated, ")) &&
            sscanf(line, "reel-curate: %llu of %*u videos curated, %llu clips", &a, &b) == 2) {
            s->videos = a;
            s->clips = b;
        }
        if ((p = strstr(line, "peak store use ")) &&
            sscanf(p, "peak store use %llu bytes of %llu", &a, &b) == 2) {
            s->peak_store = a;
            s->capacity = b;
            s->has_peak = 1;
        }
        /* The copies, as the pipeline counts them: "... per source byte" when
         * the line says so, else its first number, in bytes. */
        if ((p = strstr(line, "bytes copied between store objects"))) {
            const char *per = strstr(line, "per source byte");
            double v = per ? number_before(line, per) : -1;
            if (v < 0 && source_bytes) {
                const char *q = line;
                while (*q && (*q < '0' || *q > '9'))
                    q++;
                if (*q)
                    v = strtod(q, NULL) / (double)source_bytes;
            }
            if (v >= 0) {
                s->copied_per_byte = v;
                s->has_copied = 1;
            }
        }
    }
    fclose(f);
}

/* ---- the section ------------------------------------------------------------------- */

static void rm_rf(const char *dir) {
    pid_t pid;
    char *argv[] = {"rm", "-rf", (char *)dir, NULL};
    if (posix_spawnp(&pid, "rm", NULL, NULL, argv, environ) == 0)
        waitpid(pid, NULL, 0);
}

/* One reel-curate run on the video in video_dir; workers: --transcoder-workers
 * (0: its default). */
static int run_curate(const char *prog, const char *video_dir, const char *root, const char *tag,
                      uint32_t workers, uint64_t source_bytes, run_result *r, curate_summary *s,
                      bench_report *rep) {
    char out[PATH_MAX], err[PATH_MAX], nw[16];
    snprintf(out, sizeof out, "%s/out-%s", root, tag);
    snprintf(err, sizeof err, "%s/%s.log", root, tag);
    snprintf(nw, sizeof nw, "%u", workers);
    char *argv[] = {(char *)prog,
                    "--video-dir",
                    (char *)video_dir,
                    "--output-clip-path",
                    out,
                    workers ? "--transcoder-workers" : NULL,
                    nw,
                    NULL};
    int rc = run_sampled(argv, err, r);
    if (rc) {
        bench_report_error(rep, "cannot run %s: %s", prog, strerror(-rc));
        return rc;
    }
    read_summary(err, source_bytes, s);
    rm_rf(out);
    if (!exited_ok(r) || s->videos != 1) {
        char why[256];
        last_line(err, why, sizeof why);
        bench_report_error(rep, "reel-curate (%s) did not curate the long video: %s", tag,
                           why[0] ? why : "no summary");
        return -EIO;
    }
    return 0;
}

static int run_ffmpeg_long(const char *video, const char *root, const reel_curate_options *o,
                           run_result *r, bench_report *rep) {
    char out[PATH_MAX], pattern[PATH_MAX + 16], err[PATH_MAX], seg[32], crf[16], keys[96];
    snprintf(out, sizeof out, "%s/out-ffmpeg", root);
    snprintf(pattern, sizeof pattern, "%s/%%03d.mp4", out);
    snprintf(err, sizeof err, "%s/ffmpeg.log", root);
    snprintf(seg, sizeof seg, "%g", o->fixed_stride_clip_len_s);
    snprintf(crf, sizeof crf, "%d", (int)o->crf);
    snprintf(keys, sizeof keys, "expr:gte(t,n_forced*%g)", o->fixed_stride_clip_len_s);
    if (mkdir(out, 0755) != 0)
        return -errno;
    char *argv[] = {"ffmpeg",
                    "-v",
                    "error",
                    "-nostdin",
                    "-y",
                    "-threads",
                    "0",
                    "-i",
                    (char *)video,
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
                    "0",
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
    int rc = run_sampled(argv, err, r);
    rm_rf(out);
    if (rc || !exited_ok(r)) {
        char why[256];
        last_line(err, why, sizeof why);
        bench_report_error(rep, "ffmpeg on the long video failed: %s",
                           rc       ? strerror(-rc)
                           : why[0] ? why
                                    : "no message");
        return rc ? rc : -EIO;
    }
    return 0;
}

int bench_curate_long_run(const bench_options *opts, bench_report *rep) {
    double seconds = opts->long_s > 0 ? opts->long_s : 300;
    char prog[PATH_MAX];
    int rc = bench_curate_program(prog, sizeof prog);
    if (rc) {
        bench_report_error(rep, "cannot find reel-curate (%s): %s; set REEL_CURATE", prog,
                           strerror(-rc));
        return rc;
    }
    char video[PATH_MAX];
    rc = long_video(opts, seconds, video, sizeof video, rep);
    if (rc)
        return rc;
    struct stat vst;
    if (stat(video, &vst) != 0) {
        bench_report_error(rep, "%s: %s", video, strerror(errno));
        return -errno;
    }
    char root[] = "/tmp/reel-bench-long-XXXXXX";
    if (!mkdtemp(root)) {
        bench_report_error(rep, "mkdtemp: %s", strerror(errno));
        return -errno;
    }
    /* The video alone in a directory: reel-curate takes a directory. */
    char vdir[PATH_MAX], link[PATH_MAX + 16];
    snprintf(vdir, sizeof vdir, "%s/videos", root);
    snprintf(link, sizeof link, "%s/long.mp4", vdir);
    if (mkdir(vdir, 0755) != 0 || symlink(video, link) != 0) {
        bench_report_error(rep, "cannot make %s: %s", link, strerror(errno));
        rm_rf(root);
        return -errno;
    }
    reel_curate_options o;
    reel_curate_defaults(&o);
    int rounds = opts->iterations ? (int)(opts->iterations < 10 ? opts->iterations : 10) : 1;
    run_result reel = {0}, ff = {0}, one = {0};
    curate_summary sum = {0};
    for (int k = 0; rc == 0 && k < rounds; k++) {
        run_result a, b, c;
        curate_summary sa, sc;
        bench_progress(opts, "curate", "long video, round %d: reel-curate", k + 1);
        rc = run_curate(prog, vdir, root, "reel", 0, (uint64_t)vst.st_size, &a, &sa, rep);
        if (rc == 0) {
            bench_progress(opts, "curate", "long video, round %d: ffmpeg -threads 0", k + 1);
            rc = run_ffmpeg_long(video, root, &o, &b, rep);
        }
        if (rc == 0) {
            bench_progress(opts, "curate", "long video, round %d: reel-curate, 1 transcoder",
                           k + 1);
            rc = run_curate(prog, vdir, root, "reel-1", 1, (uint64_t)vst.st_size, &c, &sc, rep);
        }
        if (rc)
            break;
        /* The best of the rounds for each (the machine is shared); the
         * memory and store figures of the same run as its time. */
        if (k == 0 || a.wall_s < reel.wall_s) {
            reel = a;
            sum = sa;
        }
        if (k == 0 || b.wall_s < ff.wall_s)
            ff = b;
        if (k == 0 || c.wall_s < one.wall_s)
            one = c;
    }
    bench_progress_done(opts);
    rm_rf(root);
    if (rc)
        return rc;

    char group[96];
    snprintf(group, sizeof group, "curate: a long video, %g s of %dx%d %d fps H.264", seconds,
             LONG_W, LONG_H, LONG_FPS);
    bench_row *r = bench_report_add(rep, group, "seconds of video per second", "s/s", BENCH_RATE,
                                    seconds / reel.wall_s);
    if (r) {
        bench_row_baseline(r, "ffmpeg -threads 0, same cores", seconds / ff.wall_s);
        bench_row_target(r, BENCH_ON_VALUE, BENCH_GE, 0.9 * seconds / ff.wall_s, ">= 0.9 x ffmpeg");
    }
    r = bench_report_add(rep, group, "wall time", "s", BENCH_AMOUNT, reel.wall_s);
    if (r)
        bench_row_baseline(r, "ffmpeg -threads 0, same cores", ff.wall_s);
    r = bench_report_add(rep, group, "s of video/s beside 1 transcoder worker", "s/s", BENCH_RATE,
                         seconds / reel.wall_s);
    if (r)
        bench_row_baseline(r, "reel-curate --transcoder-workers 1", seconds / one.wall_s);
    r = bench_report_add(rep, group, "peak memory, process tree (Pss)", "MB", BENCH_AMOUNT,
                         (double)reel.peak_pss_kb * 1024 / 1e6);
    if (r) {
        bench_row_baseline(r, "ffmpeg -threads 0", (double)ff.peak_pss_kb * 1024 / 1e6);
        bench_row_limit(r, "sum of VmHWM (upper bound)", (double)reel.peak_kb * 1024 / 1e6);
        bench_row_target(r, BENCH_ON_VALUE, BENCH_LE, 1000, "<= 1 GB");
    }
    if (sum.has_peak) {
        r = bench_report_add(rep, group, "peak store use", "MB", BENCH_AMOUNT,
                             (double)sum.peak_store / 1e6);
        if (r)
            bench_row_limit(r, "the store's capacity", (double)sum.capacity / 1e6);
    }
    if (sum.has_copied) {
        r = bench_report_add(rep, group, "bytes copied between objects per source byte", "B/B",
                             BENCH_AMOUNT, sum.copied_per_byte);
        if (r)
            bench_row_target(r, BENCH_ON_VALUE, BENCH_LE, 0.05, "<= 0.05");
    }

    cpu_set_t set;
    int ncpu = 1, a, b;
    bench_cpus(&set, &ncpu, &a, &b);
    bench_report_note(rep, "the video: %s, %.1f MB, scenes of 5 to 15 s from lavfi sources", video,
                      (double)vst.st_size / 1e6);
    bench_report_note(rep,
                      "reel: %s with its defaults (store %.0f MiB), %llu clips; with "
                      "--transcoder-workers 1: %.1f s, %.0f MB; best of %d",
                      prog, (double)sum.capacity / (1 << 20), (unsigned long long)sum.clips,
                      one.wall_s, (double)one.peak_kb * 1024 / 1e6, rounds);
    bench_report_note(
        rep,
        "ffmpeg: one process, -threads 0, libx264 %s crf %d, segments of %g s "
        "with keyframes forced at their starts, sound copied; %d CPUs, nothing pinned",
        o.preset, (int)o.crf, o.fixed_stride_clip_len_s, ncpu);
    bench_report_note(rep, "peak memory: the largest sum of Pss over the processes alive in the "
                           "tree, sampled every 250 ms (shared store pages count once); its upper "
                           "bound, the largest sum of VmHWM, sampled every 50 ms (shared pages "
                           "count in each process)");
    if (!sum.has_peak)
        bench_report_note(rep, "peak store use: n/a (reel-curate's summary does not say it)");
    if (!sum.has_copied)
        bench_report_note(rep, "bytes copied between store objects per source byte: n/a "
                               "(reel-curate's summary does not say it)");
    return 0;
}
