/*
 * test_curate.c - reel-curate, the main job, run as a user runs it: on real
 * sample videos, on every kind of bad input, with and without
 * ignore_failures, and with bad arguments.
 *
 * The samples come from scripts/samples.sh ($REEL_SAMPLES); the binary from
 * $REEL_CURATE (ctest sets both).
 */
#include "helpers.h"

#include <reel/stages.h>

#include <criterion/criterion.h>
#include <dirent.h>
#include <libavformat/avformat.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <inttypes.h>
#include <poll.h>
#include <pty.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RUN_LIMIT_MS 120000 /* a sanitizer build on 2 shared cores is slow */

static char root[64];

/* Every run of reel-curate removes the stores that killed runs left, so the
 * test that leaves one and checks its run removes it holds this lock alone;
 * the other tests share it while they run (flock: a killed test drops it). */
static int sweep_lock = -1;

static void setup_with(int how) {
    th_init();
    sweep_lock = th_curate_lock(how);
    snprintf(root, sizeof root, "/tmp/reel-curate-test-XXXXXX");
    cr_assert(mkdtemp(root));
}

static void setup(void) {
    setup_with(LOCK_SH);
}
static void setup_alone(void) {
    setup_with(LOCK_EX);
}

static void teardown(void) {
    if (th_rm_tree(root) != 0)
        fprintf(stderr, "could not remove %s\n", root);
    if (sweep_lock >= 0)
        close(sweep_lock);
    th_fini();
}

TestSuite(curate, .init = setup, .fini = teardown, .timeout = 300);

/* Copies the first len bytes of src (all: len SIZE_MAX) to dir/name. */
static void copy_part(const char *src, const char *dir, const char *name, size_t len) {
    char dst[256];
    snprintf(dst, sizeof dst, "%s/%s", dir, name);
    FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
    cr_assert(in && out, "%s -> %s", src, dst);
    fseek(in, 0, SEEK_END);
    long size = ftell(in);
    fseek(in, 0, SEEK_SET);
    size_t want = len == SIZE_MAX ? (size_t)size : len;
    char *buf = malloc((size_t)size);
    cr_assert_eq(fread(buf, 1, (size_t)size, in), (size_t)size);
    cr_assert_eq(fwrite(buf, 1, want, out), want);
    free(buf);
    fclose(in);
    fclose(out);
}

static void write_text(const char *dir, const char *name, const char *text, size_t len) {
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    cr_assert(f);
    cr_assert_eq(fwrite(text, 1, len, f), len);
    fclose(f);
}

static const char *slurp(const char *dir, const char *rel) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    return th_read_text(p);
}

/* How many files under dir match the glob pattern (relative to dir). */
static int count_glob(const char *dir, const char *pattern) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, pattern);
    glob_t g;
    int rc = glob(p, 0, NULL, &g);
    cr_assert(rc == 0 || rc == GLOB_NOMATCH, "glob %s: %d", p, rc);
    int n = rc == 0 ? (int)g.gl_pathc : 0;
    globfree(&g);
    return n;
}

/* The stages --describe lists for argv (after --describe): their names in
 * order, joined by spaces. */
static void described_stages(const char *const *argv, char *out, size_t cap) {
    const char *args[8] = {"--describe"};
    for (int i = 0; argv[i]; i++)
        args[i + 1] = argv[i];
    th_result r = th_run(th_curate_bin(), NULL, args);
    cr_assert_eq(r.code, 0, "%s", r.err);
    cr_assert(strstr(r.out, "Pipeline: video-curation"), "%s", r.out);
    out[0] = '\0';
    size_t len = 0;
    int n = 0;
    for (const char *p = r.out; (p = strstr(p, "\nStage ")); p++) {
        char name[32];
        int k;
        cr_assert_eq(sscanf(p, "\nStage %d: %31s", &k, name), 2, "%s", r.out);
        cr_assert_eq(k, ++n, "%s", r.out);
        len += (size_t)snprintf(out + len, cap - len, "%s%s", len ? " " : "", name);
    }
    char count[32];
    snprintf(count, sizeof count, "Stages: %d\n", n);
    cr_assert(strstr(r.out, count), "%s in:\n%s", count, r.out);
    th_result_free(&r);
}

/* Nothing computed to be thrown away: the frames and preprocess stages are
 * in the pipeline only when their output is written, the preview stage
 * unless previews are off. */
Test(curate, describe_lists_only_the_stages_asked_for) {
    static const struct {
        const char *argv[4];
        const char *stages;
    } cases[] = {
        {{NULL}, "reader splitter transcoder motion preview clip-writer writer"},
        {{"--no-previews", NULL}, "reader splitter transcoder motion clip-writer writer"},
        {{"--write-frames", NULL},
         "reader splitter transcoder motion frames preview clip-writer writer"},
        {{"--write-tensors", NULL},
         "reader splitter transcoder motion frames preprocess preview clip-writer writer"},
        {{"--write-tensors", "--write-frames", "--no-previews", NULL},
         "reader splitter transcoder motion frames preprocess clip-writer writer"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char got[256];
        described_stages(cases[i].argv, got, sizeof got);
        cr_assert_str_eq(got, cases[i].stages, "case %zu", i);
    }
}

/* Each stage asks for the CPU it uses: the transcoder one per encoder
 * thread, the scene splitter one (it decodes the whole video), the reader,
 * the fixed-stride splitter and the writer a small share (before, every
 * stage had the same 0.12 on 2 CPUs). The line is sized for as many
 * transcoders as the CPUs hold, or as are fixed, and scaled to fit 90% of
 * the CPUs. */
Test(curate, each_stage_asks_for_the_cpu_it_uses) {
    static const struct {
        const char *argv[5];
        const char *want[3];
    } cases[] = {
        /* 1 thread, the default: 2 transcoders of 1 CPU beside 0.5 CPUs of
         * light stages, 2.5 scaled to 1.8. */
        {{NULL},
         {"Stage 1: reader\n  Resources: 0.07 CPUs", "Stage 2: splitter\n  Resources: 0.03 CPUs",
          "Stage 3: transcoder\n  Resources: 0.72 CPUs"}},
        {{"--transcode-encoder-threads", "1", NULL},
         {"Stage 1: reader\n  Resources: 0.07 CPUs", "Stage 2: splitter\n  Resources: 0.03 CPUs",
          "Stage 3: transcoder\n  Resources: 0.72 CPUs"}},
        /* One transcoder of 2 threads: 2 CPUs, the line 2.5 again. */
        {{"--transcode-encoder-threads", "2", NULL},
         {"Stage 1: reader\n  Resources: 0.07 CPUs", "Stage 2: splitter\n  Resources: 0.03 CPUs",
          "Stage 3: transcoder\n  Resources: 1.44 CPUs"}},
        /* One fixed transcoder of 1 thread: the line is 1.5, unscaled. */
        {{"--transcoder-workers", "1", NULL},
         {"Stage 1: reader\n  Resources: 0.1 CPUs", "Stage 2: splitter\n  Resources: 0.05 CPUs",
          "Stage 3: transcoder\n  Resources: 1 CPUs"}},
        /* Half the CPUs to place (1.0): one transcoder, the line 1.5
         * scaled to 0.95. */
        {{"--cpu-allocation-percentage", "0.5", NULL},
         {"Stage 1: reader\n  Resources: 0.06 CPUs", "Stage 2: splitter\n  Resources: 0.03 CPUs",
          "Stage 3: transcoder\n  Resources: 0.63 CPUs"}},
        /* The scene splitter's CPU, beside one transcoder of 2 threads:
         * 3.45 scaled to 1.8. */
        {{"--splitting-algorithm", "scene", "--transcode-encoder-threads", "2", NULL},
         {"Stage 2: splitter\n  Resources: 0.52 CPUs",
          "Stage 3: transcoder\n  Resources: 1.04 CPUs",
          "Stage 7: writer\n  Resources: 0.05 CPUs"}},
    };
    cpu_set_t set;
    cr_assert_eq(sched_getaffinity(0, sizeof set, &set), 0);
    if (CPU_COUNT(&set) != 2)
        cr_skip_test("the shares below are those of a 2-CPU machine");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *args[6] = {"--describe"};
        for (int k = 0; k < 4 && cases[i].argv[k]; k++)
            args[k + 1] = cases[i].argv[k];
        th_result r = th_run(th_curate_bin(), NULL, args);
        cr_assert_eq(r.code, 0, "%s", r.err);
        for (int k = 0; k < 3; k++)
            cr_assert(strstr(r.out, cases[i].want[k]), "case %zu lacks %s:\n%s", i,
                      cases[i].want[k], r.out);
        th_result_free(&r);
    }
}

Test(curate, bad_arguments_are_one_clear_line) {
    const char *bin = th_curate_bin();
    const char *cases[][3] = {
        {"--splitting-algorithm", "panda", NULL},
        {"--motion-filter", "maybe", NULL},
        {"--fixed-stride-split-duration", "-3", NULL},
        {"--transcode-crf", "77", NULL},
        {"--transcode-encoder-threads", "65", NULL},
        {"--logging-interval", "0", NULL},
        {"--execution-mode", "eventually", NULL},
        {"--no-such-flag", NULL, NULL},
        {"--video-extensions", "mp4,,mov", NULL},
        {"--video-extensions", "", NULL},
        {"--video-extensions", "mp4/x", NULL},
        {"--frames-fps", "3", NULL},       /* no frames are made to sample */
        {"--clips-per-chunk", "32", NULL}, /* 32 MP4s, 32 previews and a record: 65 outputs */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        th_result r = th_run(bin, NULL, cases[i]);
        th_assert_one_error_line(&r, 2, "reel-curate: ", cases[i][0]);
        th_result_free(&r);
    }
    th_result r = th_run(bin, NULL, (const char *[]){"--video-dir", "/nonexistent/videos", NULL});
    th_assert_one_error_line(
        &r, 1, "reel-curate: --video-dir /nonexistent/videos: ", "a missing directory");
    cr_assert(strstr(r.err, "No such file or directory"), "%s", r.err);
    th_result_free(&r);
}

/* --transcoder-workers N fixes the transcoder's count (the other stages stay
 * autoscaled); 0 is the default, autoscaled; a bad count is one clear line. */
Test(curate, transcoder_workers_fixes_the_transcoders_count) {
    th_result r = th_run(th_curate_bin(), NULL,
                         (const char *[]){"--describe", "--transcoder-workers", "3", NULL});
    cr_assert_eq(r.code, 0, "%s", r.err);
    const char *t = strstr(r.out, "Stage 3: transcoder\n");
    cr_assert_not_null(t, "%s", r.out);
    const char *next = strstr(t + 1, "\nStage ");
    const char *w = strstr(t, "  Workers: 3 (fixed)\n");
    cr_assert(w && (!next || w < next), "the transcoder is not fixed at 3 workers:\n%s", r.out);
    cr_assert_eq(th_count(r.out, "(fixed)"), 1, "another stage is fixed too:\n%s", r.out);
    th_result_free(&r);

    r = th_run(th_curate_bin(), NULL,
               (const char *[]){"--describe", "--transcoder-workers", "0", NULL});
    cr_assert_eq(r.code, 0, "%s", r.err);
    cr_assert_eq(th_count(r.out, "(fixed)"), 0, "0 is not autoscaled:\n%s", r.out);
    th_result_free(&r);

    static const char *const bad[] = {"-1", "two", "1.5", "", "257", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = th_run(th_curate_bin(), NULL,
                   (const char *[]){"--describe", "--transcoder-workers", bad[i], NULL});
        th_assert_one_error_line(&r, 2, "reel-curate: ", "--transcoder-workers");
        cr_assert(strstr(r.err, "--transcoder-workers"), "'%s': %s", bad[i], r.err);
        th_result_free(&r);
    }
}

/* Real footage, scene cuts: oa4_launch.webm has one hard cut at frame 74 (24
 * fps); with 0.5 s cropped from each end, its scenes give clips [12, 62) and
 * [86, 182). realshort.mp4 (1.2 s) is shorter than the shortest clip. */
Test(curate, the_samples_become_curators_tree) {
    char s[512];
    char videos[96], out[96];
    snprintf(videos, sizeof videos, "%s/videos", root);
    snprintf(out, sizeof out, "%s/out", root);
    cr_assert_eq(mkdir(videos, 0755), 0);
    copy_part(th_sample("oa4_launch.webm", s, sizeof s), videos, "oa4_launch.webm", SIZE_MAX);
    copy_part(th_sample("realshort.mp4", s, sizeof s), videos, "realshort.mp4", SIZE_MAX);
    th_result r = th_run_limit(th_curate_bin(), NULL,
                               (const char *[]){"--video-dir", videos, "--output-clip-path", out,
                                                "--splitting-algorithm", "scene", "--motion-filter",
                                                "score-only", "--autoscale-interval-s", "1", NULL},
                               RUN_LIMIT_MS);
    cr_assert_eq(r.code, 0, "stderr:\n%s", r.err);
    cr_assert(strstr(r.err, "2 of 2 videos curated, 2 clips written, 0 filtered, 0 videos failed"),
              "%s", r.err);
    cr_assert(strstr(r.err, "s of video per second"), "%s", r.err);
    cr_assert_eq(th_count_files(out, "clips", NULL), 2);
    cr_assert_eq(th_count_files(out, "metas/v0", NULL),
                 2); /* the JSON only: no frames, no tensors */
    cr_assert_eq(count_glob(out, "metas/v0/*.npy"), 0);
    cr_assert_eq(th_count_files(out, "previews", NULL), 2);
    cr_assert_eq(th_count_files(out, "processed_videos", NULL), 2);

    /* The clip UUIDs are Curator's: uuid5(NAMESPACE_URL, "<path>_<start>_<end>"). */
    char path[256], name[300], uuid[37];
    snprintf(path, sizeof path, "%s/oa4_launch.webm", videos);
    const int spans[2][2] = {{12, 62}, {86, 182}};
    for (int k = 0; k < 2; k++) {
        snprintf(name, sizeof name, "%s_%d_%d", path, spans[k][0], spans[k][1]);
        TH_OK(reel_uuid5_url(name, uuid));
        char rel[128];
        snprintf(rel, sizeof rel, "metas/v0/%s.json", uuid);
        const char *meta = slurp(out, rel);
        cr_assert(meta, "no %s (clip %d..%d): the cut moved?", rel, spans[k][0], spans[k][1]);
        cr_assert(strstr(meta, "\"motion_score\": {\"global_mean\": "), "%s", meta);
        cr_assert(strstr(meta, "\"width_source\": 640"), "%s", meta);
        char frames[64];
        snprintf(frames, sizeof frames, "\"num_frames\": %d", spans[k][1] - spans[k][0]);
        cr_assert(strstr(meta, frames), "%s", meta);
        cr_assert(strstr(meta, "\"valid\": true"), "%s", meta);
        snprintf(rel, sizeof rel, "clips/%s.mp4", uuid);
        cr_assert(slurp(out, rel), "no %s", rel);
    }
    const char *rec = slurp(out, "processed_videos/realshort.mp4.json");
    cr_assert(rec && strstr(rec, "\"num_total_clips\": 0") && strstr(rec, "\"error\": null"), "%s",
              rec);
    th_result_free(&r);
}

/* ---- frames and tensors, written when asked for ------------------------------------------- */

/* A .npy file's array: its dtype and shape, after checking the file is
 * NumPy's format 1.0 with its data whole. */
typedef struct npy {
    char descr[8];
    int dims;
    long shape[4];
} npy;

static npy read_npy(const char *path) {
    FILE *f = fopen(path, "rb");
    cr_assert(f, "no %s", path);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)size + 1);
    cr_assert_eq(fread(b, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    b[size] = '\0';
    cr_assert_geq(size, 10, "%s", path);
    cr_assert(memcmp(b, "\x93NUMPY\x01\x00", 8) == 0, "%s: not a .npy 1.0 file", path);
    long hlen = b[8] | (long)b[9] << 8, data = 10 + hlen;
    cr_assert_eq(data % 64, 0, "%s: the data starts at %ld", path, data);
    cr_assert_leq(data, size, "%s", path);
    cr_assert_eq(b[data - 1], '\n', "%s: the header does not end in a newline", path);
    char *h = strndup((const char *)b + 10, (size_t)hlen);
    npy a = {0};
    char shape[64];
    cr_assert_eq(sscanf(h, "{'descr': '%7[^']', 'fortran_order': False, 'shape': (%63[^)]), }",
                        a.descr, shape),
                 2, "%s: header %s", path, h);
    for (char *p = shape, *end; *p && a.dims < 4; p = end + (*end == ',')) {
        a.shape[a.dims++] = strtol(p, &end, 10);
        cr_assert(end != p, "%s: shape (%s)", path, shape);
    }
    long items = 1;
    for (int d = 0; d < a.dims; d++)
        items *= a.shape[d];
    long item = strcmp(a.descr, "|u1") == 0 ? 1 : strcmp(a.descr, "<f4") == 0 ? 4 : 0;
    cr_assert_gt(item, 0, "%s: descr %s", path, a.descr);
    cr_assert_eq(size - data, items * item, "%s: %ld data bytes for shape (%s)", path, size - data,
                 shape);
    free(h);
    free(b);
    return a;
}

/* The frames Curator's sequence policy takes of a clip of n frames at fps,
 * sampled at rate: k / rate for k = 0, 1, ... below (n - 1) / fps + 0.5 / rate. */
static long frames_at(long n, double fps, double rate) {
    long k = 0;
    while (k / rate < (n - 1) / fps + 0.5 / rate)
        k++;
    return k;
}

/* Runs reel-curate on oa4_launch.webm (scene cuts: two clips) with the
 * extra arguments; the output directory in out. */
static void curate_oa4(const char *const *extra, char *out, size_t cap) {
    char s[512], videos[96];
    snprintf(videos, sizeof videos, "%s/videos", root);
    mkdir(videos, 0755);
    copy_part(th_sample("oa4_launch.webm", s, sizeof s), videos, "oa4_launch.webm", SIZE_MAX);
    static int runs;
    snprintf(out, cap, "%s/out%d", root, runs++);
    const char *argv[16] = {"--video-dir",           videos, "--output-clip-path", out,
                            "--splitting-algorithm", "scene"};
    int n = 6;
    for (int i = 0; extra[i]; i++)
        argv[n++] = extra[i];
    th_result r = th_run_limit(th_curate_bin(), NULL, argv, RUN_LIMIT_MS);
    cr_assert_eq(r.code, 0, "stderr:\n%s", r.err);
    cr_assert(strstr(r.err, "1 of 1 videos curated, 2 clips written"), "%s", r.err);
    th_result_free(&r);
}

/* Each clip's JSON in out/metas/v0: calls fn with its uuid and text. */
static int each_clip(const char *out,
                     void (*fn)(const char *out, const char *uuid, const char *meta, void *arg),
                     void *arg) {
    char dir[256];
    snprintf(dir, sizeof dir, "%s/metas/v0", out);
    DIR *d = opendir(dir);
    cr_assert(d, "no %s", dir);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len != 36 + 5 || strcmp(e->d_name + 36, ".json") != 0)
            continue;
        char uuid[37], rel[128];
        memcpy(uuid, e->d_name, 36);
        uuid[36] = '\0';
        snprintf(rel, sizeof rel, "metas/v0/%s", e->d_name);
        const char *meta = slurp(out, rel);
        cr_assert(meta, "%s", rel);
        fn(out, uuid, meta, arg);
        n++;
    }
    closedir(d);
    return n;
}

typedef struct expect_npy {
    bool frames, tensor;
    double rate;
} expect_npy;

static void check_clip_arrays(const char *out, const char *uuid, const char *meta, void *arg) {
    const expect_npy *x = arg;
    /* The clip's location is its MP4, whatever else is written beside its
     * metadata (it once named the last file written, the tensor). */
    char where[256];
    snprintf(where, sizeof where, "\"clip_location\": \"%s/clips/%s.mp4\"", out, uuid);
    cr_assert(strstr(meta, where), "%s lacks %s", meta, where);
    long n;
    double fps;
    const char *p = strstr(meta, "\"num_frames\": "), *q = strstr(meta, "\"framerate\": ");
    cr_assert(p && q && sscanf(p, "\"num_frames\": %ld", &n) == 1 &&
                  sscanf(q, "\"framerate\": %lf", &fps) == 1,
              "%s", meta);
    long want = frames_at(n, fps, x->rate);
    char path[512];
    snprintf(path, sizeof path, "%s/metas/v0/%s.frames.npy", out, uuid);
    if (x->frames) {
        npy a = read_npy(path);
        cr_assert_str_eq(a.descr, "|u1", "%s", path);
        cr_assert_eq(a.dims, 4, "%s", path);
        cr_assert_eq(a.shape[0], want, "%s: %ld frames of a %ld-frame clip at %g fps, want %ld",
                     path, a.shape[0], n, fps, want);
        cr_assert(a.shape[1] == 256 && a.shape[2] == 256 && a.shape[3] == 3, "%s", path);
    } else {
        cr_assert_neq(access(path, F_OK), 0, "%s: frames nobody asked for", path);
    }
    snprintf(path, sizeof path, "%s/metas/v0/%s.tensor.npy", out, uuid);
    if (x->tensor) {
        npy a = read_npy(path);
        cr_assert_str_eq(a.descr, "<f4", "%s", path);
        cr_assert_eq(a.dims, 4, "%s", path);
        cr_assert_eq(a.shape[0], want, "%s: %ld tensors, want %ld", path, a.shape[0], want);
        cr_assert(a.shape[1] == 3 && a.shape[2] == 224 && a.shape[3] == 224, "%s", path);
    } else {
        cr_assert_neq(access(path, F_OK), 0, "%s: a tensor nobody asked for", path);
    }
}

/* --write-frames and --write-tensors: each clip's frames (uint8, N x 256 x
 * 256 x 3) and tensor (float32, N x 3 x 224 x 224) as .npy files beside its
 * metadata, N the frames taken at --frames-fps; --no-previews: no previews. */
Test(curate, frames_and_tensors_are_written_as_npy_when_asked) {
    char out[128];
    curate_oa4((const char *[]){"--write-frames", "--write-tensors", "--no-previews",
                                "--frames-fps", "3", NULL},
               out, sizeof out);
    expect_npy x = {.frames = true, .tensor = true, .rate = 3};
    cr_assert_eq(each_clip(out, check_clip_arrays, &x), 2);
    cr_assert_eq(count_glob(out, "metas/v0/*.frames.npy"), 2);
    cr_assert_eq(count_glob(out, "metas/v0/*.tensor.npy"), 2);
    cr_assert_eq(count_glob(out, "metas/v0/*.tmp-*"), 0);
    cr_assert_eq(th_count_files(out, "previews", NULL), 0);
    cr_assert_eq(th_count_files(out, "clips", NULL), 2);
}

/* --write-tensors alone: the tensors, made of frames that are not written;
 * previews as by default. */
Test(curate, tensors_alone_write_no_frames) {
    char out[128];
    curate_oa4((const char *[]){"--write-tensors", NULL}, out, sizeof out);
    expect_npy x = {.frames = false, .tensor = true, .rate = 2};
    cr_assert_eq(each_clip(out, check_clip_arrays, &x), 2);
    cr_assert_eq(count_glob(out, "metas/v0/*.frames.npy"), 0);
    cr_assert_eq(th_count_files(out, "previews", NULL), 2);
}

/* ---- a video larger than the store --------------------------------------------------------- */

/* Whether the files dir_a/rel and dir_b/rel hold the same bytes. */
static bool same_bytes(const char *dir_a, const char *dir_b, const char *rel) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cmp -s '%s/%s' '%s/%s'", dir_a, rel, dir_b, rel);
    return system(cmd) == 0;
}

/* The source is a file the stages read by range, never bytes in the store:
 * a video four times the store's size curates in it, to the same clips as
 * in a store that could have held it. (Three seconds of raw 640x480 video,
 * 34.5 MB, one clip; the store holds what is in flight: the clip and its
 * preview, a few MB.) */
Test(curate, a_video_larger_than_the_store_curates_as_in_a_large_one) {
    char videos[96], small[96], large[96], cmd[512];
    snprintf(videos, sizeof videos, "%s/videos", root);
    snprintf(small, sizeof small, "%s/small", root);
    snprintf(large, sizeof large, "%s/large", root);
    cr_assert_eq(mkdir(videos, 0755), 0);
    snprintf(cmd, sizeof cmd,
             "ffmpeg -nostdin -loglevel error -y -f lavfi -i testsrc2=d=3:s=640x480:r=25 "
             "-c:v rawvideo -pix_fmt yuv420p '%s/big.mkv'",
             videos);
    cr_assert_eq(system(cmd), 0, "%s (scripts/deps.sh installs ffmpeg)", cmd);
    char path[128];
    snprintf(path, sizeof path, "%s/big.mkv", videos);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    const long long store = 8ll << 20;
    cr_assert_gt(st.st_size, 4 * store, "the video is %lld bytes", (long long)st.st_size);

    const char *outs[2] = {small, large};
    const char *sizes[2] = {"8M", "1G"};
    for (int k = 0; k < 2; k++) {
        th_result r =
            th_run_limit(th_curate_bin(), NULL,
                         (const char *[]){"--video-dir", videos, "--output-clip-path", outs[k],
                                          "--store-size", sizes[k], "--no-gpu", NULL},
                         RUN_LIMIT_MS);
        cr_assert_eq(r.code, 0, "store %s: stderr:\n%s", sizes[k], r.err);
        cr_assert(
            strstr(r.err, "1 of 1 videos curated, 1 clips written, 0 filtered, 0 videos failed"),
            "store %s: %s", sizes[k], r.err);
        th_result_free(&r);
    }
    /* The same clip, byte for byte, and the same record of it. */
    cr_assert_eq(th_count_files(small, "clips", NULL), 1);
    cr_assert_eq(th_count_files(large, "clips", NULL), 1);
    char list[512];
    snprintf(list, sizeof list, "%s/clips", small);
    DIR *d = opendir(list);
    cr_assert(d, "%s", list);
    struct dirent *e;
    int clips = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char rel[320];
        snprintf(rel, sizeof rel, "clips/%s", e->d_name);
        cr_assert(same_bytes(small, large, rel), "%s differs between the stores", rel);
        snprintf(rel, sizeof rel, "previews/%.36s/preview.jpg", e->d_name);
        cr_assert(same_bytes(small, large, rel), "%s differs between the stores", rel);
        clips++;
    }
    closedir(d);
    cr_assert_eq(clips, 1);
    const char *rec = slurp(small, "processed_videos/big.mkv.json");
    cr_assert(rec && strstr(rec, "\"error\": null"), "%s", rec);
    cr_assert(strstr(rec, "\"num_total_clips\": 1"), "%s", rec);
}

/* ---- which files are videos ---------------------------------------------------------------- */

/* Whether ext is an item of the comma-separated list. */
static bool listed(const char *list, const char *ext) {
    size_t n = strlen(ext);
    for (const char *p = list; *p; p += strcspn(p, ","), p += *p == ',')
        if (strcspn(p, ",") == n && strncmp(p, ext, n) == 0)
            return true;
    return false;
}

/* The extensions come from libavformat: every demuxer's, and the containers
 * the hand-typed list missed, each once, sorted, in lower case. */
Test(curate, the_video_extensions_are_libavformats) {
    const char *known = reel_curate_known_extensions();
    cr_log_info("%zu bytes: %s", strlen(known), known);
    const char *in[] = {"ogv", "ogg", "3gp",  "mts", "m2ts", "mxf", "vob", "y4m", "mp4",
                        "mov", "mkv", "webm", "avi", "ts",   "mpg", "flv", "wmv", "m4v"};
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++)
        cr_assert(listed(known, in[i]), "%s not in %s", in[i], known);
    void *it = NULL;
    const AVInputFormat *f;
    while ((f = av_demuxer_iterate(&it)))
        for (const char *p = f->extensions; p && *p; p += strcspn(p, ","), p += *p == ',') {
            char e[64];
            p += strspn(p, " ");
            size_t n = strcspn(p, ", ");
            snprintf(e, sizeof e, "%.*s", (int)n, p);
            for (char *c = e; *c; c++)
                *c = *c >= 'A' && *c <= 'Z' ? (char)(*c - 'A' + 'a') : *c;
            cr_assert(n == 0 || f->flags & AVFMT_NOFILE || listed(known, e), "%s's %s", f->name, e);
        }
    for (const char *p = known, *q; (q = strchr(p, ',')); p = q + 1) {
        size_t n = (size_t)(q - p), m = strcspn(q + 1, ",");
        int c = strncmp(p, q + 1, n < m ? n : m);
        cr_assert(c < 0 || (c == 0 && n < m), "not sorted, or twice: %.*s, %.*s", (int)n, p, (int)m,
                  q + 1);
        for (size_t k = 0; k < n; k++)
            cr_assert(!(p[k] >= 'A' && p[k] <= 'Z'), "%.*s", (int)n, p);
    }
    cr_assert(reel_curate_is_video_name(NULL, "a.OGV"));
    cr_assert(reel_curate_is_video_name(NULL, "b.Mts"));
    cr_assert(reel_curate_is_video_name(NULL, "c.tar.mp4"));
    cr_assert_not(reel_curate_is_video_name(NULL, ".hidden.mp4"));
    cr_assert_not(reel_curate_is_video_name(NULL, "mp4"));
    cr_assert_not(reel_curate_is_video_name(NULL, "d."));
    cr_assert_not(reel_curate_is_video_name(NULL, "e.docx"));
    reel_curate_options o;
    reel_curate_defaults(&o);
    o.video_extensions = ".ogv,MTS";
    char why[128];
    TH_OK(reel_curate_validate(&o, why, sizeof why));
    cr_assert(reel_curate_is_video_name(&o, "a.ogv"));
    cr_assert(reel_curate_is_video_name(&o, "b.mts"));
    cr_assert_not(reel_curate_is_video_name(&o, "c.mp4"));
    const char *bad[] = {"", ",", "mp4,", ".", "mp4;mov", "a/b", "m p4"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        o.video_extensions = bad[i];
        cr_assert_eq(reel_curate_validate(&o, why, sizeof why), -EINVAL, "'%s'", bad[i]);
        cr_assert(strstr(why, "video_extensions"), "%s", why);
    }
}

/* One second of FFmpeg's test picture as dir/name, in the container its
 * extension (and extra flags) say, made by the ffmpeg program. */
static void make_video(const char *dir, const char *name, const char *flags) {
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "ffmpeg -nostdin -loglevel error -y -f lavfi -i testsrc=d=1:s=160x120:r=24 %s "
             "'%s/%s'",
             flags, dir, name);
    cr_assert_eq(system(cmd), 0, "%s (scripts/deps.sh installs ffmpeg)", cmd);
}

/* Containers the old hand-typed list skipped without a word (.ogv, .mts,
 * .y4m, .mxf, .vob, .3gp), in mixed case, are curated; what is not a video's
 * name is counted in the summary; --video-extensions narrows it. */
Test(curate, every_container_ffmpeg_reads_is_curated_and_the_rest_counted) {
    char videos[96], out[96];
    snprintf(videos, sizeof videos, "%s/videos", root);
    snprintf(out, sizeof out, "%s/out", root);
    cr_assert_eq(mkdir(videos, 0755), 0);
    make_video(videos, "a.ogv", "-c:v libtheora");
    make_video(videos, "b.MTS", "-c:v mpeg2video -f mpegts");
    make_video(videos, "c.Y4m", "-pix_fmt yuv420p");
    make_video(videos, "d.mxf", "-c:v mpeg2video");
    make_video(videos, "e.vob", "-c:v mpeg2video");
    make_video(videos, "f.3gp", "-c:v mpeg4");
    write_text(videos, "notes.md", "not a video\n", 12);
    write_text(videos, "README", "not a video\n", 12);
    write_text(videos, ".hidden.mp4", "not a video\n", 12);
    char sub[128];
    snprintf(sub, sizeof sub, "%s/a-directory", videos);
    cr_assert_eq(mkdir(sub, 0755), 0); /* not descended into, and not a file skipped */
    th_result r = th_run_limit(
        th_curate_bin(), NULL,
        (const char *[]){"--video-dir", videos, "--output-clip-path", out, "--no-gpu", NULL},
        RUN_LIMIT_MS);
    cr_assert_eq(r.code, 0, "stderr:\n%s", r.err);
    cr_assert(strstr(r.err, "6 of 6 videos curated, 0 clips written, 0 filtered, 0 videos failed"),
              "%s", r.err);
    cr_assert(strstr(r.err, "reel-curate: 3 files skipped: not video extensions\n"), "%s", r.err);
    const char *names[] = {"a.ogv", "b.MTS", "c.Y4m", "d.mxf", "e.vob", "f.3gp"};
    for (size_t i = 0; i < 6; i++) {
        char rel[128];
        snprintf(rel, sizeof rel, "processed_videos/%s.json", names[i]);
        const char *rec = slurp(out, rel);
        cr_assert(rec && strstr(rec, "\"error\": null"), "%s: %s", names[i], rec);
    }
    th_result_free(&r);

    r = th_run_limit(th_curate_bin(), NULL,
                     (const char *[]){"--video-dir", videos, "--output-clip-path", out, "--no-gpu",
                                      "--video-extensions", "OGV,.y4m", NULL},
                     RUN_LIMIT_MS);
    cr_assert_eq(r.code, 0, "stderr:\n%s", r.err);
    cr_assert(strstr(r.err, "2 of 2 videos curated"), "%s", r.err);
    cr_assert(strstr(r.err, "reel-curate: 7 files skipped: not video extensions\n"), "%s", r.err);
    th_result_free(&r);

    r = th_run_limit(th_curate_bin(), NULL,
                     (const char *[]){"--video-dir", videos, "--output-clip-path", out,
                                      "--video-extensions", "mkv", NULL},
                     RUN_LIMIT_MS);
    th_assert_one_error_line(&r, 1, "reel-curate: no videos in ", "no mkv file");
    cr_assert(strstr(r.err, "(9 files skipped: not video extensions)"), "%s", r.err);
    th_result_free(&r);
}

/* A WAV file: a stream FFmpeg reads, but no video in it. */
static void write_wav(const char *dir, const char *name) {
    uint8_t w[44 + 800] = "RIFF";
    uint32_t v;
    v = sizeof w - 8, memcpy(w + 4, &v, 4);
    memcpy(w + 8, "WAVEfmt ", 8);
    v = 16, memcpy(w + 16, &v, 4);
    uint16_t h = 1;
    memcpy(w + 20, &h, 2); /* PCM */
    memcpy(w + 22, &h, 2); /* mono */
    v = 8000, memcpy(w + 24, &v, 4);
    v = 8000, memcpy(w + 28, &v, 4);
    memcpy(w + 32, &h, 2);
    h = 8, memcpy(w + 34, &h, 2);
    memcpy(w + 36, "data", 4);
    v = 800, memcpy(w + 40, &v, 4);
    memset(w + 44, 128, 800);
    write_text(dir, name, (const char *)w, sizeof w);
}

static void bad_inputs(char *videos, size_t cap) {
    char s[512];
    snprintf(videos, cap, "%s/bad", root);
    cr_assert_eq(mkdir(videos, 0755), 0);
    write_text(videos, "a_empty.mp4", "", 0);
    write_text(videos, "b_text.mp4", "this is not a video\n", 20);
    copy_part(th_sample("cockatoo.mp4", s, sizeof s), videos, "c_half.mp4", 728751 / 2);
    copy_part(th_sample("oa4_launch.webm", s, sizeof s), videos, "d_half.webm", 0);
    struct stat st;
    cr_assert_eq(stat(s, &st), 0);
    copy_part(s, videos, "d_half.webm", (size_t)st.st_size / 2);
    write_wav(videos, "e_audio.mp4");
    copy_part(th_sample("realshort.mp4", s, sizeof s), videos, "f_good.mp4", SIZE_MAX);
}

Test(curate, bad_inputs_are_recorded_and_the_run_goes_on) {
    char videos[96], out[96];
    bad_inputs(videos, sizeof videos);
    snprintf(out, sizeof out, "%s/out", root);
    th_result r = th_run_limit(th_curate_bin(), NULL,
                               (const char *[]){"--video-dir", videos, "--output-clip-path", out,
                                                "--ignore-failures", NULL},
                               RUN_LIMIT_MS);
    cr_assert_eq(r.code, 0, "stderr:\n%s", r.err);
    /* One line on stderr per bad video, naming it, and a record with the error. */
    const char *bad[] = {"a_empty.mp4", "b_text.mp4", "c_half.mp4", "e_audio.mp4"};
    for (int i = 0; i < 4; i++) {
        char line[256], rel[128];
        snprintf(line, sizeof line, "reel-curate: reader: %s/%s: ", videos, bad[i]);
        cr_assert(strstr(r.err, line), "no line for %s in:\n%s", bad[i], r.err);
        snprintf(rel, sizeof rel, "processed_videos/%s.json", bad[i]);
        const char *rec = slurp(out, rel);
        cr_assert(rec, "no record for %s", bad[i]);
        cr_assert(strstr(rec, "\"valid\": false") && !strstr(rec, "\"error\": null"), "%s", rec);
    }
    /* The half WebM decodes in part: its record says so, and the run counts it. */
    const char *rec = slurp(out, "processed_videos/d_half.webm.json");
    cr_assert(rec && strstr(rec, "\"partial\": true"), "%s", rec);
    rec = slurp(out, "processed_videos/f_good.mp4.json");
    cr_assert(rec && strstr(rec, "\"error\": null"), "%s", rec);
    cr_assert(strstr(r.err, "4 videos failed"), "%s", r.err);
    th_result_free(&r);
}

Test(curate, without_ignore_failures_the_first_bad_video_stops_the_run) {
    char videos[96], out[96];
    bad_inputs(videos, sizeof videos);
    snprintf(out, sizeof out, "%s/out", root);
    th_result r = th_run_limit(
        th_curate_bin(), NULL,
        (const char *[]){"--video-dir", videos, "--output-clip-path", out, NULL}, RUN_LIMIT_MS);
    cr_assert_eq(r.code, 1, "stderr:\n%s", r.err);
    cr_assert(strstr(r.err, "reel-curate: stopped: stage reader failed on input"), "%s", r.err);
    cr_assert(strstr(r.err, "_empty.mp4") || strstr(r.err, "_text.mp4") ||
                  strstr(r.err, "_half.mp4") || strstr(r.err, "_audio.mp4"),
              "%s", r.err);
    th_result_free(&r);
}

/* On a terminal the live line is drawn, and the executor's status lines still
 * come, above it: --logging-interval shows there too. */
Test(curate, on_a_terminal_the_status_lines_go_above_the_live_line) {
    char s[512], videos[96], out[96];
    const char *bin = th_curate_bin();
    const char *video = th_sample("realshort.mp4", s, sizeof s);
    snprintf(videos, sizeof videos, "%s/videos", root);
    snprintf(out, sizeof out, "%s/out", root);
    cr_assert_eq(mkdir(videos, 0755), 0);
    copy_part(video, videos, "realshort.mp4", SIZE_MAX);
    int master;
    pid_t pid = forkpty(&master, NULL, NULL, NULL);
    cr_assert_geq(pid, 0, "forkpty: %s", strerror(errno));
    if (pid == 0) {
        execl(bin, bin, "--video-dir", videos, "--output-clip-path", out, "--logging-interval",
              "0.05", (char *)NULL);
        _exit(127);
    }
    static char text[1 << 16];
    size_t len = 0;
    bool ended = false; /* every writer of the terminal is gone */
    uint64_t t0 = th_monotonic_ns();
    while (!ended && len < sizeof text - 1) {
        long left = RUN_LIMIT_MS - (long)((th_monotonic_ns() - t0) / 1000000);
        struct pollfd pfd = {.fd = master, .events = POLLIN};
        if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
            break;
        ssize_t n = read(master, text + len, sizeof text - 1 - len);
        if (n <= 0) /* EIO */
            ended = true;
        else
            len += (size_t)n;
    }
    text[len] = '\0';
    if (!ended)
        kill(pid, SIGKILL);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    close(master);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d:\n%s", status, text);
    cr_assert(strstr(text, "\r\033[Kreel-curate: "), "no live line:\n%s", text);
    cr_assert(strstr(text, "reel:   reader "), "no status line for the reader:\n%s", text);
    cr_assert(strstr(text, "tasks/s, "), "%s", text);
    cr_assert(strstr(text, "1 of 1 videos curated"), "%s", text);
}

/* Whether every reel-curate-<pid> store in the private directory belongs to
 * a live process (other tests' runs may be going on). */
static int curate_stores_of_the_dead(void) {
    DIR *d = opendir(th_private_dir());
    cr_assert_not_null(d);
    int dead = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        int pid = 0, end = 0;
        if (sscanf(e->d_name, "reel-curate-%d%n", &pid, &end) == 1 && !e->d_name[end] &&
            kill(pid, 0) != 0 && errno == ESRCH)
            dead++;
    }
    closedir(d);
    return dead;
}

/* Ctrl-C stops a run cleanly: its workers and its store go, and the exit
 * code says it was interrupted. A store a killed run left is removed by the
 * next run. */
/* A suite of its own, to run alone: see sweep_lock. */
TestSuite(curate_sweep, .init = setup_alone, .fini = teardown, .timeout = 300);

Test(curate_sweep, an_interrupted_run_cleans_up_and_a_killed_ones_store_goes_next_time) {
    pid_t gone = th_gone_pid();
    char stale[64];
    snprintf(stale, sizeof stale, "reel-curate-%d", (int)gone);
    reel_store *s;
    reel_store_options so = {.capacity = 1 << 20, .flags = REEL_STORE_NO_PREFAULT};
    TH_OK(reel_store_create(stale, &so, &s));
    TH_OK(reel_store_close(s));
    cr_assert_geq(curate_stores_of_the_dead(), 1);

    char smp[512], videos[96], out[96];
    snprintf(videos, sizeof videos, "%s/videos", root);
    snprintf(out, sizeof out, "%s/out", root);
    cr_assert_eq(mkdir(videos, 0755), 0);
    copy_part(th_sample("cockatoo.mp4", smp, sizeof smp), videos, "cockatoo.mp4", SIZE_MAX);
    th_when ctrl_c = {.ms = 1500}; /* mid-transcode: cockatoo takes seconds */
    th_result r = th_run_limit(
        th_curate_bin(), &ctrl_c,
        (const char *[]){"--video-dir", videos, "--output-clip-path", out, NULL}, RUN_LIMIT_MS);
    cr_assert_eq(r.code, 128 + SIGINT, "exit %d, signal %d, stderr:\n%s", r.code, r.signal, r.err);
    cr_assert(strstr(r.err, "reel-curate: interrupted by Interrupt"), "%s", r.err);
    cr_assert(strstr(r.err, "reel-curate: removed "), "no word of the stale store:\n%s", r.err);
    th_result_free(&r);
    cr_assert_eq(curate_stores_of_the_dead(), 0, "a store of a dead run is left");
}

/* Fan-out and fan-in: a video whose clips go through the stages as one item
 * each (the default) comes out exactly as one whose clips travel together,
 * clips, metadata, previews and records byte for byte; and what is copied
 * between store objects is the small records only, not the clips. */
Test(curate, a_video_fanned_out_into_chunks_curates_as_in_one) {
    char s[512], videos[96], out[96], whole[96];
    snprintf(videos, sizeof videos, "%s/videos", root);
    snprintf(out, sizeof out, "%s/out", root);
    snprintf(whole, sizeof whole, "%s/whole", root);
    cr_assert_eq(mkdir(videos, 0755), 0);
    /* diver.mov is indexed (each chunk's decode seeks) and decodes
     * cleanly; oa4_launch.webm has no index of every frame (each chunk
     * decodes from the start); cockatoo.mp4's keyframes decode damaged when
     * decoding begins there, so its chunks undo their seeks. */
    copy_part(th_sample("diver.mov", s, sizeof s), videos, "diver.mov", SIZE_MAX);
    copy_part(th_sample("cockatoo.mp4", s, sizeof s), videos, "cockatoo.mp4", SIZE_MAX);
    copy_part(th_sample("oa4_launch.webm", s, sizeof s), videos, "oa4_launch.webm", SIZE_MAX);
    /* 2-second clips: several per video. 31 clips per chunk (with an MP4
     * and a preview each, as many as fit a task): one chunk per video. */
    const char *chunks[] = {"31", "1"};
    uint64_t copied[2] = {0};
    double per_byte[2] = {0};
    for (int k = 0; k < 2; k++) {
        th_result r =
            th_run_limit(th_curate_bin(), NULL,
                         (const char *[]){"--video-dir", videos, "--output-clip-path", out,
                                          "--fixed-stride-split-duration", "2", "--motion-filter",
                                          "score-only", "--clips-per-chunk", chunks[k], NULL},
                         RUN_LIMIT_MS);
        cr_assert_eq(r.code, 0, "stderr:\n%s", r.err);
        cr_assert(strstr(r.err, "3 of 3 videos curated"), "%s", r.err);
        const char *line = strstr(r.err, " bytes copied between store objects (");
        cr_assert(line, "%s", r.err);
        while (line > r.err && line[-1] != ' ')
            line--;
        cr_assert_eq(sscanf(line, "%" SCNu64 " bytes copied between store objects (%lf per",
                            &copied[k], &per_byte[k]),
                     2, "%s", r.err);
        th_result_free(&r);
        if (k == 0)
            cr_assert_eq(rename(out, whole), 0);
    }
    cr_assert_geq(th_count_files(out, "clips", NULL), 4, "several clips per video");
    char cmd[300];
    snprintf(cmd, sizeof cmd, "diff -r '%s' '%s' >&2", whole, out);
    cr_assert_eq(system(cmd), 0, "the trees differ (diff above)");
    /* Records only: a few hundred bytes per clip and stage, against a
     * source of hundreds of kilobytes. */
    for (int k = 0; k < 2; k++) {
        cr_assert_gt(copied[k], 0, "the records are counted");
        cr_assert_leq(per_byte[k], 0.05, "%" PRIu64 " bytes copied, %g per source byte", copied[k],
                      per_byte[k]);
    }
}

/* A video some of whose chunks a stage fails on (failures ignored): its
 * other clips are written, its record is the writer's, naming the chunks
 * that never came, and it is not counted among the failed videos. Here the
 * transcoder fails on the clips of random noise, whose MP4s are larger than
 * a 2 MiB store; the black clips after them fit. */
Test(curate, a_video_that_lost_some_chunks_keeps_the_writers_record) {
    char videos[96], out[96], cmd[700];
    snprintf(videos, sizeof videos, "%s/videos", root);
    snprintf(out, sizeof out, "%s/out", root);
    cr_assert_eq(mkdir(videos, 0755), 0);
    snprintf(cmd, sizeof cmd,
             "ffmpeg -nostdin -loglevel error -y -f lavfi -i "
             "'nullsrc=s=640x480:r=25,geq=random(1)*255:128:128' -f lavfi -i "
             "color=c=black:s=640x480:r=25 -filter_complex "
             "'[0:v]trim=duration=4[a];[1:v]trim=duration=4[b];[a][b]concat=n=2:v=1[v]' "
             "-map '[v]' -c:v libx264 -preset ultrafast -crf 10 '%s/mix.mp4'",
             videos);
    cr_assert_eq(system(cmd), 0, "%s (scripts/deps.sh installs ffmpeg)", cmd);
    th_result r =
        th_run_limit(th_curate_bin(), NULL,
                     (const char *[]){"--video-dir", videos, "--output-clip-path", out,
                                      "--store-size", "2M", "--ignore-failures",
                                      "--fixed-stride-split-duration", "2", "--no-previews", NULL},
                     RUN_LIMIT_MS);
    cr_assert_eq(r.code, 0, "stderr:\n%s", r.err);
    cr_assert(strstr(r.err, "1 of 1 videos curated, 2 clips written, 0 filtered, 0 videos failed"),
              "%s", r.err);
    cr_assert(strstr(r.err, "larger than the store's capacity"), "%s", r.err);
    th_result_free(&r);
    const char *rec = slurp(out, "processed_videos/mix.mp4.json");
    cr_assert(rec);
    cr_assert(strstr(rec, "\"num_total_clips\": 4, \"num_clips_written\": 2"), "%s", rec);
    cr_assert(strstr(rec, "\"error\": \"writer: chunks 1 to 2 of 4 (2 clips) never reached the "
                          "writer: a stage failed on them\", \"valid\": true"),
              "%s", rec);
    cr_assert_eq(th_count_files(out, "clips", NULL), 2);
}

/* ---- the streaming seam: --inputs-from, --results-jsonl -------------------------------- */

/* The line of out that names path ("path": "<path>"), or NULL. */
static const char *result_line(const char *out, const char *path) {
    char key[600];
    snprintf(key, sizeof key, "{\"path\": \"%s\", ", path);
    return strstr(out, key);
}

/* Paths from a file, a line each (a CRLF, an empty line, a missing file, a
 * line too long for a path among them): one JSON line per line in the
 * results, each video's record written, the bad ones failed with their
 * reason, and the run goes on. */
Test(curate, inputs_from_a_file_give_one_result_line_each) {
    char videos[96], out[96], list[128], results[128];
    bad_inputs(videos, sizeof videos);
    snprintf(out, sizeof out, "%s/out", root);
    snprintf(list, sizeof list, "%s/list.txt", root);
    snprintf(results, sizeof results, "%s/results.jsonl", root);
    static const char *const names[] = {"a_empty.mp4", "b_text.mp4",  "c_half.mp4",
                                        "d_half.webm", "e_audio.mp4", "f_good.mp4"};
    FILE *f = fopen(list, "w");
    cr_assert_not_null(f);
    for (size_t i = 0; i < 6; i++)
        fprintf(f, "%s/%s%s\n", videos, names[i], i == 5 ? "\r" : "");
    fprintf(f, "\n%s/missing.mp4\n", videos);
    for (int i = 0; i < 5000; i++)
        fputc('x', f);
    fputc('\n', f);
    fclose(f);
    th_result r =
        th_run_limit(th_curate_bin(), NULL,
                     (const char *[]){"--inputs-from", list, "--results-jsonl", results,
                                      "--output-clip-path", out, "--ignore-failures", NULL},
                     RUN_LIMIT_MS);
    cr_assert_eq(r.code, 0, "stderr:\n%s", r.err);
    const char *text = slurp(root, "results.jsonl");
    cr_assert_not_null(text);
    char *got = strdup(text); /* slurp's buffer is reused below */
    cr_assert_eq(th_count(got, "\n"), 8, "8 lines, one per line given:\n%s", got);
    for (size_t i = 0; i < 6; i++) {
        char path[256];
        snprintf(path, sizeof path, "%s/%s", videos, names[i]);
        const char *line = result_line(got, path);
        cr_assert_not_null(line, "no result for %s:\n%s", path, got);
        const char *end = strchr(line, '\n');
        bool failed = strstr(line, "\"failed\": true") && strstr(line, "\"failed\": true") < end;
        /* The empty, text and audio files fail; a half MP4 has no index
         * either; the half WebM decodes in part; the good one curates. */
        cr_assert_eq(failed, i == 0 || i == 1 || i == 2 || i == 4, "%s:\n%s", names[i], line);
        char rel[128];
        snprintf(rel, sizeof rel, "processed_videos/%s.json", names[i]);
        cr_assert_not_null(slurp(out, rel), "no record for %s", names[i]);
    }
    char missing[128];
    snprintf(missing, sizeof missing, "%s/missing.mp4", videos);
    const char *line = result_line(got, missing);
    cr_assert(line && strstr(line, "\"failed\": true") && strstr(line, "No such file or directory"),
              "%s", got);
    cr_assert(strstr(got, "\"error\": \"--inputs-from: a line longer than a path may be\""), "%s",
              got);
    cr_assert(strstr(r.err, "of 8 videos curated"), "%s", r.err);
    free(got);
    th_result_free(&r);
}

/* Reads one line from fd into buf within ms; false on a timeout or an end. */
static bool read_line(int fd, char *buf, size_t cap, int ms) {
    size_t n = 0;
    uint64_t deadline = th_monotonic_ns() + (uint64_t)ms * 1000000;
    while (n + 1 < cap) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int left = (int)((deadline - th_monotonic_ns()) / 1000000);
        if (th_monotonic_ns() >= deadline || poll(&p, 1, left > 0 ? left : 0) <= 0)
            return false;
        if (read(fd, buf + n, 1) != 1)
            return false;
        if (buf[n++] == '\n')
            break;
    }
    buf[n] = '\0';
    return true;
}

/* reel-curate --inputs-from - --results-jsonl - --output-clip-path out in a
 * child: *in is the pipe to its standard input, *results the one from its
 * standard output; its standard error goes to err_path. */
static pid_t spawn_seam(const char *out, const char *err_path, int *in, int *results) {
    const char *bin = th_curate_bin(); /* skips here, not in the child */
    int i[2], r[2];
    cr_assert_eq(pipe(i), 0);
    cr_assert_eq(pipe(r), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dup2(i[0], STDIN_FILENO);
        dup2(r[1], STDOUT_FILENO);
        int e = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(e, STDERR_FILENO);
        close(i[1]);
        close(r[0]);
        execl(bin, "reel-curate", "--inputs-from", "-", "--results-jsonl", "-",
              "--output-clip-path", out, (char *)NULL);
        _exit(127);
    }
    close(i[0]);
    close(r[1]);
    *in = i[1];
    *results = r[0];
    return pid;
}

/* Paths that come over time through a pipe: the first video's result comes
 * back while the input is still open (the launcher waits for it before it
 * sends the second path), then the second's, and the run ends with its
 * input. */
Test(curate, inputs_arrive_over_time_and_results_leave_as_they_finish) {
    char s1[512], s2[512], out[96];
    const char *first = th_sample("oa4_launch.webm", s1, sizeof s1);
    const char *second = th_sample("realshort.mp4", s2, sizeof s2);
    snprintf(out, sizeof out, "%s/out", root);
    int in, res;
    pid_t pid = spawn_seam(out, "/dev/null", &in, &res);
    char line[4096];
    dprintf(in, "%s\n", first);
    bool got = read_line(res, line, sizeof line, RUN_LIMIT_MS);
    if (!got)
        th_kill_wait(pid, SIGKILL);
    cr_assert(got, "no result for the first video while the input is open");
    cr_assert(result_line(line, first) && strstr(line, "\"clips_written\": 1"), "%s", line);
    dprintf(in, "%s\n", second);
    close(in);
    got = read_line(res, line, sizeof line, RUN_LIMIT_MS);
    if (!got)
        th_kill_wait(pid, SIGKILL);
    cr_assert(got, "no result for the second video");
    cr_assert(result_line(line, second), "%s", line);
    cr_assert_not(read_line(res, line, sizeof line, RUN_LIMIT_MS), "a third line: %s", line);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
    close(res);
}

/* --inputs-from names the videos: not with --video-dir, not empty, and one
 * that cannot be opened is one line. */
Test(curate, inputs_from_is_checked) {
    const char *bin = th_curate_bin();
    th_result r =
        th_run(bin, NULL, (const char *[]){"--inputs-from", "-", "--video-dir", "/tmp", NULL});
    th_assert_one_error_line(&r, 2, "reel-curate: ", "--inputs-from and --video-dir");
    th_result_free(&r);
    r = th_run(bin, NULL, (const char *[]){"--inputs-from", "", NULL});
    th_assert_one_error_line(&r, 2, "reel-curate: ", "--inputs-from needs a file");
    th_result_free(&r);
    r = th_run(bin, NULL, (const char *[]){"--inputs-from", "/nonexistent/list", NULL});
    th_assert_one_error_line(
        &r, 1, "reel-curate: --inputs-from /nonexistent/list: ", "No such file or directory");
    th_result_free(&r);
    r = th_run(bin, NULL,
               (const char *[]){"--inputs-from", "/dev/null", "--results-jsonl",
                                "/nonexistent/dir/r.jsonl", NULL});
    th_assert_one_error_line(&r, 1, "reel-curate: --results-jsonl /nonexistent/dir/r.jsonl: ",
                             "No such file or directory");
    th_result_free(&r);
}

/* A launcher that goes away (the results' reader closed) stops the run
 * cleanly, as its signal would, instead of SIGPIPE killing it mid-run. */
Test(curate, a_results_reader_that_goes_away_stops_the_run_cleanly) {
    char s1[512], out[96], err_path[128];
    const char *video = th_sample("oa4_launch.webm", s1, sizeof s1);
    snprintf(out, sizeof out, "%s/out", root);
    snprintf(err_path, sizeof err_path, "%s/stderr.txt", root);
    int in, res;
    pid_t pid = spawn_seam(out, err_path, &in, &res);
    close(res);                 /* nobody reads the results */
    dprintf(in, "%s\n", video); /* the input stays open: only the results end the run */
    int status = 0;
    uint64_t deadline = th_monotonic_ns() + (uint64_t)RUN_LIMIT_MS * 1000000;
    pid_t w;
    while ((w = waitpid(pid, &status, WNOHANG)) == 0 && th_monotonic_ns() < deadline) {
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (w == 0)
        th_kill_wait(pid, SIGKILL);
    close(in);
    cr_assert_eq(w, pid, "the run did not stop");
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGPIPE, "status %d", status);
    const char *err = slurp(root, "stderr.txt");
    cr_assert(err && strstr(err, "nobody reads the results") &&
                  strstr(err, "interrupted by Broken pipe"),
              "%s", err);
}

/* A run lent a small share of the CPUs (a node of a cluster that shares a
 * machine) sizes its line to fit it and runs, where it was refused. */
Test(curate, a_small_share_of_the_cpus_still_runs) {
    char s1[512], out[96], list[128];
    const char *video = th_sample("realshort.mp4", s1, sizeof s1);
    snprintf(out, sizeof out, "%s/out", root);
    snprintf(list, sizeof list, "%s/list.txt", root);
    FILE *f = fopen(list, "w");
    cr_assert_not_null(f);
    fprintf(f, "%s\n", video);
    fclose(f);
    th_result r = th_run_limit(th_curate_bin(), NULL,
                               (const char *[]){"--inputs-from", list, "--output-clip-path", out,
                                                "--cpu-allocation-percentage", "0.2", NULL},
                               RUN_LIMIT_MS);
    cr_assert_eq(r.code, 0, "stderr:\n%s", r.err);
    cr_assert(strstr(r.err, "1 of 1 videos curated"), "%s", r.err);
    th_result_free(&r);
}

/* What the shell command cmd prints (at most cap - 1 bytes, terminated),
 * into buf; it must succeed. */
static void shell_text(const char *cmd, char *buf, size_t cap) {
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p, "%s", cmd);
    size_t n = fread(buf, 1, cap - 1, p);
    buf[n] = '\0';
    cr_assert_eq(pclose(p), 0, "%s", cmd);
}

/* The audio streams of a clip, as ffprobe lists them: "codec,duration"
 * lines into buf. */
static void clip_audio(const char *clip, char *buf, size_t cap) {
    char cmd[600];
    snprintf(cmd, sizeof cmd,
             "ffprobe -v error -select_streams a -show_entries stream=codec_name,duration "
             "-of csv=p=0 '%s'",
             clip);
    shell_text(cmd, buf, cap);
}

/* Each clip carries the source's sound for its span, copied as Curator's
 * clips have it (ffmpeg -map 0:a:0? -c:a copy): MP3 stays MP3; PCM, which
 * an MP4 does not take as it is, becomes AAC; --no-audio leaves it out. */
Test(curate, clips_carry_the_sound_of_their_span) {
    char videos[96], with[96], without[96], cmd[512];
    snprintf(videos, sizeof videos, "%s/videos", root);
    snprintf(with, sizeof with, "%s/with", root);
    snprintf(without, sizeof without, "%s/without", root);
    cr_assert_eq(mkdir(videos, 0755), 0);
    static const char *const sounds[][2] = {{"libmp3lame", "tone.mp4"},
                                            {"pcm_s16le", "camera.mov"}};
    for (int k = 0; k < 2; k++) {
        snprintf(cmd, sizeof cmd,
                 "ffmpeg -nostdin -loglevel error -y -f lavfi -i testsrc2=d=6:s=320x240:r=25 "
                 "-f lavfi -i sine=f=440:d=6 -c:v libx264 -preset ultrafast -c:a %s -shortest "
                 "'%s/%s'",
                 sounds[k][0], videos, sounds[k][1]);
        cr_assert_eq(system(cmd), 0, "%s (scripts/deps.sh installs ffmpeg)", cmd);
    }
    const char *outs[2] = {with, without};
    for (int k = 0; k < 2; k++) {
        th_result r =
            th_run_limit(th_curate_bin(), NULL,
                         (const char *[]){"--video-dir", videos, "--output-clip-path", outs[k],
                                          "--fixed-stride-split-duration", "3", "--no-previews",
                                          "--no-gpu", k ? "--no-audio" : NULL, NULL},
                         RUN_LIMIT_MS);
        cr_assert_eq(r.code, 0, "stderr:\n%s", r.err);
        cr_assert(strstr(r.err, "4 clips written"), "%s", r.err);
        th_result_free(&r);
        char dir[160];
        snprintf(dir, sizeof dir, "%s/clips", outs[k]);
        DIR *d = opendir(dir);
        cr_assert(d, "%s", dir);
        struct dirent *e;
        int clips = 0, mp3 = 0, aac = 0;
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.')
                continue;
            char clip[448], audio[256];
            snprintf(clip, sizeof clip, "%s/%s", dir, e->d_name);
            clip_audio(clip, audio, sizeof audio);
            if (k) {
                cr_assert_str_empty(audio, "--no-audio, yet %s has sound: %s", clip, audio);
            } else {
                double s = 0;
                char codec[16] = "";
                cr_assert_eq(sscanf(audio, "%15[^,],%lf", codec, &s), 2, "%s: \"%s\"", clip, audio);
                mp3 += strcmp(codec, "mp3") == 0;
                aac += strcmp(codec, "aac") == 0;
                cr_assert(s > 2.9 && s < 3.1, "%s: %g s of sound in a 3 s clip", clip, s);
            }
            clips++;
        }
        closedir(d);
        cr_assert_eq(clips, 4);
        if (!k) {
            cr_assert_eq(mp3, 2, "the MP3 sound is copied");
            cr_assert_eq(aac, 2, "the PCM sound becomes AAC");
        }
    }
}

/* Fixed-stride clips are Curator's, span for span and UUID for UUID, as
 * Curator's own formulas give them (tests/curator/fixed_stride.py: frames =
 * int(ffprobe's duration x the average rate)): on a variable-rate video
 * whose container counts 243 frames where Curator counts 242 (before, reel
 * took 243: another last span and UUID), and on a sample. */
Test(curate, fixed_stride_clips_are_curators) {
    const char *formulas = getenv("REEL_CURATOR_FORMULAS");
    if (!formulas || !*formulas)
        cr_skip_test("REEL_CURATOR_FORMULAS is not set (ctest sets it)");
    char videos[96], out[96], cmd[1024], s[256];
    snprintf(videos, sizeof videos, "%s/videos", root);
    snprintf(out, sizeof out, "%s/out", root);
    cr_assert_eq(mkdir(videos, 0755), 0);
    snprintf(cmd, sizeof cmd,
             "ffmpeg -nostdin -loglevel error -y -f lavfi -i testsrc2=s=160x120:r=30:d=8.1 "
             "-vf \"setpts='PTS+gte(N\\,100)*3/30/TB'\" -fps_mode vfr -c:v libx264 -preset "
             "ultrafast '%s/vfr.mp4'",
             videos);
    cr_assert_eq(system(cmd), 0, "%s (scripts/deps.sh installs ffmpeg)", cmd);
    copy_part(th_sample("cockatoo.mp4", s, sizeof s), videos, "cockatoo.mp4", SIZE_MAX);
    th_result r = th_run_limit(th_curate_bin(), NULL,
                               (const char *[]){"--video-dir", videos, "--output-clip-path", out,
                                                "--no-previews", "--no-gpu", NULL},
                               RUN_LIMIT_MS);
    cr_assert_eq(r.code, 0, "stderr:\n%s", r.err);
    th_result_free(&r);
    snprintf(cmd, sizeof cmd, "python3 '%s' --lines '%s/vfr.mp4' '%s/cockatoo.mp4'", formulas,
             videos, videos);
    char lines[4096];
    shell_text(cmd, lines, sizeof lines);
    char uuid[64];
    double start, end;
    int want = 0, used;
    for (const char *at = lines; sscanf(at, "%63s %lf %lf%n", uuid, &start, &end, &used) == 3;
         at += used) {
        char rel[128];
        snprintf(rel, sizeof rel, "metas/v0/%s.json", uuid);
        const char *meta = slurp(out, rel);
        cr_assert_not_null(meta, "Curator's clip %s [%g, %g) is not among reel's", uuid, start,
                           end);
        const char *span = strstr(meta, "\"duration_span\": [");
        double a, b;
        cr_assert(span && sscanf(span, "\"duration_span\": [%lf, %lf]", &a, &b) == 2, "%s", meta);
        cr_assert(fabs(a - start) < 1e-9 && fabs(b - end) < 1e-9,
                  "clip %s: reel's span [%.9f, %.9f), Curator's [%.9f, %.9f)", uuid, a, b, start,
                  end);
        want++;
    }
    cr_assert_eq(want, 3, "Curator's formulas gave %d clips", want);
    cr_assert_eq(count_glob(out, "metas/v0/*.json"), want, "reel made other clips too");
}

/* The first video stream's "pix_fmt,bit_rate" of a clip, as ffprobe says. */
static void clip_video_stream(const char *dir, char *buf, size_t cap) {
    char cmd[600];
    snprintf(cmd, sizeof cmd,
             "ffprobe -v error -select_streams v:0 -show_entries stream=pix_fmt,bit_rate -of "
             "csv=p=0 %s/clips/*.mp4",
             dir);
    shell_text(cmd, buf, cap);
}

/* As Curator's transcoder: a 10-bit 4:2:2 source (ProRes in MOV) becomes
 * 8-bit 4:2:0 H.264; --transcode-use-input-bit-rate encodes at the source's
 * bit rate (Curator's use_input_bit_rate) instead of the crf: a 1.9 Mb/s
 * source's clip comes out several times the crf's 0.27 Mb/s. */
Test(curate, sources_become_yuv420p_and_the_input_bit_rate_is_kept_when_asked) {
    char pro[96], hi[96], cmd[600], out[3][96], text[256];
    snprintf(pro, sizeof pro, "%s/pro", root);
    snprintf(hi, sizeof hi, "%s/hi", root);
    cr_assert_eq(mkdir(pro, 0755), 0);
    cr_assert_eq(mkdir(hi, 0755), 0);
    snprintf(cmd, sizeof cmd,
             "ffmpeg -nostdin -loglevel error -y -f lavfi -i testsrc2=d=4:s=320x240:r=25 -c:v "
             "prores_ks -pix_fmt yuv422p10le '%s/pro.mov' && ffmpeg -nostdin -loglevel error -y "
             "-f lavfi -i testsrc2=d=4:s=320x240:r=25 -c:v libx264 -preset ultrafast -b:v 3000k "
             "'%s/hi.mp4'",
             pro, hi);
    cr_assert_eq(system(cmd), 0, "%s (scripts/deps.sh installs ffmpeg)", cmd);
    const char *dirs[3] = {pro, hi, hi};
    for (int k = 0; k < 3; k++) {
        snprintf(out[k], sizeof out[k], "%s/out%d", root, k);
        th_result r = th_run_limit(
            th_curate_bin(), NULL,
            (const char *[]){"--video-dir", dirs[k], "--output-clip-path", out[k], "--no-previews",
                             "--no-gpu", k == 2 ? "--transcode-use-input-bit-rate" : NULL, NULL},
            RUN_LIMIT_MS);
        cr_assert_eq(r.code, 0, "stderr:\n%s", r.err);
        cr_assert(strstr(r.err, "1 clips written"), "%s", r.err);
        th_result_free(&r);
    }
    clip_video_stream(out[0], text, sizeof text);
    cr_assert_eq(strncmp(text, "yuv420p,", 8), 0, "the ProRes clip: %s", text);
    long crf_rate = 0, input_rate = 0;
    clip_video_stream(out[1], text, sizeof text);
    cr_assert_eq(sscanf(text, "yuv420p,%ld", &crf_rate), 1, "%s", text);
    clip_video_stream(out[2], text, sizeof text);
    cr_assert_eq(sscanf(text, "yuv420p,%ld", &input_rate), 1, "%s", text);
    cr_assert_lt(crf_rate, 600000, "crf 23: %ld b/s", crf_rate);
    cr_assert_gt(input_rate, 800000, "at the input's bit rate: %ld b/s", input_rate);
}
