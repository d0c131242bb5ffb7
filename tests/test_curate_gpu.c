/*
 * test_curate_gpu.c - the GPU where there is one (issue 14, item 6): which
 * stages of the curation pipeline get a GPU share, decided from the options
 * and the node's GPU count (stage_gpu_plan, tested here with made-up
 * counts); that a node without a GPU gets exactly the CPU line; that
 * hardware decode and NVENC asked for where they cannot be are one clear
 * error; and that the closing summary says where the tensors were made.
 *
 * This machine may have no GPU: the tests that need one skip, and
 * scripts/gpu-check.sh runs the GPU side on a machine that has one.
 * reel-curate comes from $REEL_CURATE, the samples from $REEL_SAMPLES
 * (ctest sets both).
 */
#include "helpers.h"
#include "media.h"
#include "placement.h"
#include "stages_internal.h"

#include <reel/stages.h>

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define RUN_LIMIT_MS 120000 /* a sanitizer build on 2 shared cores is slow */

static char root[64];
static int sweep_lock = -1;

static void setup(void) {
    th_init();
    /* reel-curate sweeps the stores of killed runs: share test_curate's
     * lock, which its test of that sweep takes alone. */
    sweep_lock = th_curate_lock(LOCK_SH);
    snprintf(root, sizeof root, "/tmp/reel-curate-gpu-test-XXXXXX");
    cr_assert(mkdtemp(root));
}

static void teardown(void) {
    if (th_rm_tree(root) != 0)
        fprintf(stderr, "could not remove %s\n", root);
    if (sweep_lock >= 0)
        close(sweep_lock);
    th_fini();
}

TestSuite(curate_gpu, .init = setup, .fini = teardown, .timeout = 300);

/* The node's GPUs, counted as the pipeline counts them (in a child). */
static uint32_t node_gpus(void) {
    reel_node node;
    TH_OK(reel__node_detect(1.0, &node));
    return node.n_gpus;
}

static void skip_on_a_gpu_node(void) {
    if (node_gpus() > 0)
        cr_skip_test("this node has a GPU: scripts/gpu-check.sh covers it");
}

static stage_gpu_shares plan_for(const reel_curate_options *o, uint32_t n_gpus) {
    stage_gpu_shares p;
    int rc = stage_gpu_plan(o, n_gpus, &p);
    cr_assert_eq(rc, 0, "%s", reel_last_error());
    return p;
}

/* With a GPU, the preprocess stage asks for a share exactly when it is in
 * the line (write_tensors) and may use the GPU (use_gpu); the transcoder
 * exactly when it decodes or encodes on it. Without one, nothing does. */
Test(curate_gpu, shares_go_to_the_stages_that_use_the_gpu) {
    reel_curate_options o;
    reel_curate_defaults(&o);
    stage_gpu_shares p = plan_for(&o, 1);
    cr_expect(p.preprocess == 0 && p.transcoder == 0, "defaults: %g %g", p.preprocess,
              p.transcoder);
    cr_expect(!stage_gpu_wanted(&o), "the defaults need no GPU count");

    o.write_tensors = true;
    cr_expect(stage_gpu_wanted(&o));
    p = plan_for(&o, 1);
    cr_expect(p.preprocess > 0 && p.preprocess < 1, "--write-tensors: %g", p.preprocess);
    cr_expect(p.transcoder == 0, "--write-tensors: the transcoder %g", p.transcoder);
    p = plan_for(&o, 0);
    cr_expect(p.preprocess == 0 && p.transcoder == 0, "no GPU: %g %g", p.preprocess, p.transcoder);

    o.use_gpu = false; /* --no-gpu */
    cr_expect(!stage_gpu_wanted(&o));
    p = plan_for(&o, 1);
    cr_expect(p.preprocess == 0 && p.transcoder == 0, "--no-gpu: %g %g", p.preprocess,
              p.transcoder);

    reel_curate_defaults(&o);
    if (media_has_cuda()) {
        o.use_hwaccel = true;
        p = plan_for(&o, 2);
        cr_expect(p.transcoder > 0 && p.transcoder < 1, "hwaccel: %g", p.transcoder);
        cr_expect(p.preprocess == 0, "hwaccel: preprocess %g", p.preprocess);
        o.use_hwaccel = false;
    }
    if (media_has_encoder("h264_nvenc")) {
        o.encoder = "h264_nvenc";
        p = plan_for(&o, 1);
        cr_expect(p.transcoder > 0 && p.transcoder < 1, "h264_nvenc: %g", p.transcoder);
    }
}

/* Hardware decode or NVENC where there is no GPU, or where FFmpeg lacks
 * them, is refused before anything starts, naming the option's flag and
 * the reason: never a crash, never a silent CPU run. */
Test(curate_gpu, hardware_asked_for_where_there_is_none_is_refused_by_name) {
    reel_curate_options o;
    reel_curate_defaults(&o);
    stage_gpu_shares p;
    o.use_hwaccel = true;
    int rc = stage_gpu_plan(&o, 0, &p);
    cr_assert_eq(rc, media_has_cuda() ? -ENODEV : -ENOTSUP, "%d", rc);
    cr_expect(strstr(reel_last_error(), "--transcode-use-hwaccel"), "%s", reel_last_error());
    cr_expect(p.preprocess == 0 && p.transcoder == 0);

    o.use_hwaccel = false;
    o.encoder = "h264_nvenc";
    rc = stage_gpu_plan(&o, 0, &p);
    cr_assert_eq(rc, media_has_encoder("h264_nvenc") ? -ENODEV : -ENOTSUP, "%d", rc);
    cr_expect(strstr(reel_last_error(), "h264_nvenc (--transcode-encoder)"), "%s",
              reel_last_error());

    o.encoder = "no-such-encoder";
    rc = stage_gpu_plan(&o, 1, &p);
    cr_assert_eq(rc, -ENOTSUP, "%d", rc);
    cr_expect(strstr(reel_last_error(), "no video encoder of that name"), "%s", reel_last_error());
}

/* On a node without a GPU, reel_curate_pipeline() refuses hardware decode
 * and reel-curate says so in one line, naming the flag, before it makes a
 * store or an output directory. */
Test(curate_gpu, hwaccel_on_a_node_without_a_gpu_is_one_clear_error) {
    skip_on_a_gpu_node();
    reel_curate_options o;
    reel_curate_defaults(&o);
    o.use_hwaccel = true;
    reel_actor_def defs[REEL_CURATE_STAGES];
    reel_pipeline *pipe = NULL;
    int rc = reel_curate_pipeline(&o, defs, &pipe);
    cr_assert(rc == -ENODEV || rc == -ENOTSUP, "%d", rc);
    cr_assert_null(pipe);
    cr_expect(strstr(reel_last_error(), "--transcode-use-hwaccel"), "%s", reel_last_error());

    char s[512], out[128];
    snprintf(out, sizeof out, "%s/out", root);
    th_sample("cockatoo.mp4", s, sizeof s); /* skips where the samples are missing */
    const char *dir = getenv("REEL_SAMPLES");
    const char *const cases[][3] = {{"--transcode-use-hwaccel", NULL, NULL},
                                    {"--transcode-encoder", "h264_nvenc", NULL}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *argv[8] = {"--video-dir", dir,         "--output-clip-path",
                               out,           cases[i][0], cases[i][1]};
        th_result r = th_run_limit(th_curate_bin(), NULL, argv, RUN_LIMIT_MS);
        th_assert_one_error_line(&r, 1, "reel-curate: ", cases[i][0]);
        cr_expect(strstr(r.err, i == 0 ? "--transcode-use-hwaccel" : "--transcode-encoder"), "%s",
                  r.err);
        cr_expect(strstr(r.err, "this node has none") || strstr(r.err, "this FFmpeg"),
                  "no reason given: %s", r.err);
        th_result_free(&r);
        struct stat st;
        cr_expect_neq(stat(out, &st), 0, "%s was made for a run that cannot start", out);
    }
}

/* No GPU: the pipeline is today's, share for share - use_gpu or not. */
Test(curate_gpu, without_a_gpu_the_pipeline_is_the_cpu_line) {
    skip_on_a_gpu_node();
    const char *const cases[][4] = {
        {"--describe", NULL},
        {"--describe", "--write-tensors", NULL},
        {"--describe", "--write-tensors", "--write-frames", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *with_gpu[6] = {0}, *no_gpu[6] = {"--no-gpu"};
        for (int k = 0; cases[i][k]; k++)
            with_gpu[k] = no_gpu[k + 1] = cases[i][k];
        th_result a = th_run(th_curate_bin(), NULL, with_gpu);
        th_result b = th_run(th_curate_bin(), NULL, no_gpu);
        cr_assert_eq(a.code, 0, "%s", a.err);
        cr_assert_eq(b.code, 0, "%s", b.err);
        cr_expect_str_eq(a.out, b.out, "case %zu", i);
        cr_expect_null(strstr(a.out, "GPU"), "case %zu asks for a GPU:\n%s", i, a.out);
        th_result_free(&a);
        th_result_free(&b);
    }
}

/* The closing summary says where each written tensor was made: on this
 * node's CPU here, on the GPU where scripts/gpu-check.sh runs it. */
Test(curate_gpu, the_summary_says_where_the_tensors_were_made) {
    char s[512], videos[96], out[96];
    snprintf(videos, sizeof videos, "%s/videos", root);
    snprintf(out, sizeof out, "%s/out", root);
    cr_assert_eq(mkdir(videos, 0755), 0);
    char link[160];
    snprintf(link, sizeof link, "%s/oa4_launch.webm", videos);
    cr_assert_eq(symlink(th_sample("oa4_launch.webm", s, sizeof s), link), 0);
    bool gpu = node_gpus() > 0;
    for (int no_gpu = 0; no_gpu < 2; no_gpu++) {
        if (!no_gpu && gpu)
            continue; /* the GPU side is gpu-check.sh's */
        const char *argv[10] = {"--video-dir",     videos,          "--output-clip-path",      out,
                                "--write-tensors", "--no-previews", no_gpu ? "--no-gpu" : NULL};
        th_result r = th_run_limit(th_curate_bin(), NULL, argv, RUN_LIMIT_MS);
        cr_assert_eq(r.code, 0, "%s", r.err);
        cr_expect(strstr(r.err, "1 of 1 videos curated, 1 clips written"), "%s", r.err);
        cr_expect(strstr(r.err, "reel-curate: tensors: 0 clips on the GPU, 1 on the CPU\n"), "%s",
                  r.err);
        th_result_free(&r);
        cr_assert_eq(th_rm_tree(out), 0);
    }
    /* Without tensors, nothing is said about them. */
    const char *argv[8] = {"--video-dir", videos, "--output-clip-path", out, "--no-previews"};
    th_result r = th_run_limit(th_curate_bin(), NULL, argv, RUN_LIMIT_MS);
    cr_assert_eq(r.code, 0, "%s", r.err);
    cr_expect_null(strstr(r.err, "tensors:"), "%s", r.err);
    th_result_free(&r);
}

/* Hardware decode in media.c: where no CUDA device opens, the open fails
 * with -ENODEV (or -ENOTSUP where FFmpeg has no CUDA decoder for the codec)
 * and says why; where one does, the frames are those of a CPU decode, in
 * system memory. */
static int count_frame(void *arg, int64_t index, const AVFrame *f) {
    int64_t *n = arg;
    cr_assert_eq(index, *n);
    cr_assert_neq(f->format, AV_PIX_FMT_CUDA, "a GPU picture reached the callback");
    cr_assert(f->data[0] && f->width > 0 && f->height > 0);
    (*n)++;
    return 0;
}

Test(curate_gpu, hardware_decode_opens_on_a_gpu_or_says_why_not) {
    char s[512], why[512];
    th_sample("cockatoo.mp4", s, sizeof s);
    media_input *m = NULL;
    int rc = media_open_file(s, NULL, &(media_open_options){.hwaccel = true}, &m, why, sizeof why);
    if (node_gpus() == 0 || rc == -ENODEV) {
        cr_assert(rc == -ENODEV || rc == -ENOTSUP, "%d: %s", rc, why);
        cr_assert_null(m);
        cr_expect(strstr(why, "hardware decoding: "), "%s", why);
        if (node_gpus() > 0)
            cr_assert_fail("a GPU node whose CUDA device does not open: %s", why);
        return;
    }
    cr_assert_eq(rc, 0, "%s", why);
    int64_t hw = 0, sw = 0;
    cr_assert_eq(media_decode(m, 0, -1, count_frame, &hw, NULL, why, sizeof why), 0, "%s", why);
    media_close(m);
    cr_assert_eq(media_open_file(s, NULL, NULL, &m, why, sizeof why), 0, "%s", why);
    cr_assert_eq(media_decode(m, 0, -1, count_frame, &sw, NULL, why, sizeof why), 0, "%s", why);
    media_close(m);
    cr_expect_eq(hw, sw, "NVDEC decoded %lld frames, the CPU %lld", (long long)hw, (long long)sw);
}

/* h264_nvenc takes reel's x264 preset and crf (veryfast, 23) as its own
 * p-preset and constant quality: what stops it on a node without a GPU is
 * the device, not an option it refuses; on a GPU node it encodes. */
Test(curate_gpu, nvenc_takes_the_x264_preset_and_crf) {
    if (!media_has_encoder("h264_nvenc"))
        cr_skip_test("this FFmpeg has no h264_nvenc");
    media_encode_options eo = {.encoder = "h264_nvenc",
                               .preset = "veryfast",
                               .crf = 23,
                               .width = 320,
                               .height = 240,
                               .fps = 30};
    media_output *e = NULL;
    char why[512] = "";
    int rc = media_encode_start(&eo, &e, why, sizeof why);
    media_encode_free(e);
    cr_expect_null(strstr(why, "refuses"), "%s", why);
    if (node_gpus() == 0) {
        cr_assert_neq(rc, 0);
        cr_expect(strstr(why, "cannot open encoder h264_nvenc"), "%s", why);
    } else {
        cr_expect_eq(rc, 0, "%s", why);
    }
}
