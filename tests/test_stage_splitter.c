/*
 * test_stage_splitter.c - the splitter stage (stages/splitter.c): Curator's
 * fixed-stride and TransNetV2 post-processing arithmetic against values
 * computed with Curator's own Python code, the shot-boundary detector on
 * synthetic videos with cuts at known frames (and flashes that are not cuts)
 * and on the real samples, and the stage itself run in a pipeline (its clips
 * named with Curator's UUIDs, which test_stage_task.c checks against
 * Python's uuid5).
 *
 * The real samples come from scripts/samples.sh, in $REEL_SAMPLES (ctest
 * sets it); the tests that need them skip where they are missing.
 */
#include "helpers.h"
#include "stage_fixture.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sched.h>
#include <string.h>

static const char *store_path;
static reel_store *store;

static void setup(void) {
    th_init();
    store = th_store_new(64 << 20, 1024, &store_path);
}

TestSuite(stage_splitter, .init = setup, .fini = th_fini, .timeout = 60);

/* ---- fixed stride: Curator's arithmetic -------------------------------------------- */

/* Spans as "start-end ..." for the messages and the comparisons. */
static const char *spans_text(const stage_span *s, size_t n) {
    static char buf[4096];
    size_t at = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && at < sizeof buf - 64; i++)
        at += (size_t)snprintf(buf + at, sizeof buf - at, "%s%lld-%lld", i ? " " : "",
                               (long long)s[i].start, (long long)s[i].end);
    return buf;
}

/* Curator's duration: num_frames / fps. */
static void expect_fixed(int64_t num_frames, double fps, double len, double stride, double min,
                         const char *want) {
    stage_span *s;
    size_t n;
    TH_OK(stage_fixed_stride_spans((double)num_frames / fps, fps, len, stride, min, &s, &n));
    cr_expect_str_eq(spans_text(s, n), want, "%lld frames at %g fps, clips of %g every %g (min %g)",
                     (long long)num_frames, fps, len, stride, min);
    free(s);
}

Test(stage_splitter, fixed_stride_at_the_edges) {
    /* Shorter than the minimum clip: nothing. */
    expect_fixed(37, 25, 10, 10, 2, "");
    expect_fixed(0, 25, 10, 10, 2, "");
    /* Exactly the minimum: one clip. */
    expect_fixed(50, 25, 10, 10, 2, "0-50");
    /* An exact multiple of the stride: no empty last clip. */
    expect_fixed(750, 25, 10, 10, 2, "0-250 250-500 500-750");
    /* An uneven last clip of 3 s is kept, one of 1.48 s dropped. */
    expect_fixed(575, 25, 10, 10, 2, "0-250 250-500 500-575");
    expect_fixed(537, 25, 10, 10, 2, "0-250 250-500");
    /* Overlapping clips (stride below the length), each cut at the end. */
    expect_fixed(500, 25, 10, 5, 2, "0-250 125-375 250-500 375-500");
}

/* The values below are what Curator's FixedStrideExtractorStage computes
 * (its loop run in Python): frames as int(seconds x fps), truncated, and a
 * start that accumulates the stride in floating point. */
Test(stage_splitter, fixed_stride_matches_curator_to_the_frame) {
    expect_fixed(1000, 30000.0 / 1001, 10, 10, 2, "0-299 299-599 599-899 899-1000");
    stage_span *s;
    size_t n;
    TH_OK(stage_fixed_stride_spans(7200 / (24000.0 / 1001), 24000.0 / 1001, 10, 10, 2, &s, &n));
    cr_assert_eq(n, 30);
    cr_expect_str_eq(spans_text(s + 27, 3), "6473-6713 6713-6953 6953-7192");
    free(s);
    /* 0.1 s strides: the accumulated start drifts as in Python. */
    TH_OK(stage_fixed_stride_spans(100 / 10.0, 10, 0.3, 0.1, 0.2, &s, &n));
    cr_assert_eq(n, 99);
    cr_expect_str_eq(spans_text(s + 7, 6), "7-10 7-10 9-12 9-12 10-14 12-15");
    cr_expect_str_eq(spans_text(s + 45, 5), "45-48 46-48 46-49 47-50 48-51");
    cr_expect_str_eq(spans_text(s + 97, 2), "96-99 97-100");
    free(s);
}

Test(stage_splitter, fixed_stride_refuses_bad_arguments) {
    stage_span *s;
    size_t n;
    TH_RC(stage_fixed_stride_spans(10, 0, 10, 10, 2, &s, &n), -EINVAL);
    TH_RC(stage_fixed_stride_spans(10, 25, 10, 0, 2, &s, &n), -EINVAL);
    TH_RC(stage_fixed_stride_spans(NAN, 25, 10, 10, 2, &s, &n), -EINVAL);
    TH_RC(stage_fixed_stride_spans(1e9, 25, 10, 1e-3, 0, &s, &n), -E2BIG);
    cr_assert_null(s);
    cr_assert_eq(n, 0);
}

/* ---- scenes into clips: Curator's TransNetV2 stage ----------------------------------- */

static void expect_scenes(const int64_t *cuts, size_t n_cuts, int64_t frames, double fps,
                          const char *want) {
    stage_span *s;
    size_t n;
    TH_OK(stage_scene_spans(cuts, n_cuts, frames, fps, 2, 10, 0.5, &s, &n));
    cr_expect_str_eq(spans_text(s, n), want, "%zu cuts in %lld frames at %g fps", n_cuts,
                     (long long)frames, fps);
    free(s);
}

/* Expected values from Curator's _get_filtered_scenes (min 2 s, max 10 s,
 * "stride", crop 0.5 s) over the scenes between the cuts. */
Test(stage_splitter, scene_spans_match_curator) {
    /* No cut: the whole video, cut into 10 s pieces, each cropped; the last
     * piece of 2 s survives the stride but not the crop. */
    expect_scenes(NULL, 0, 300, 25, "12-238");
    expect_scenes(NULL, 0, 600, 25, "12-238 262-488 512-588");
    /* A last piece under 2 s goes before the crop. */
    expect_scenes(NULL, 0, 540, 25, "12-238 262-488");
    int64_t two[] = {100, 200};
    expect_scenes(two, 2, 300, 25, "12-88 112-188 212-288");
    /* A scene of 30 frames is too short once cropped. */
    int64_t one[] = {30};
    expect_scenes(one, 1, 300, 25, "42-268");
    /* oa4_launch.webm's cut. */
    int64_t oa4[] = {74};
    expect_scenes(oa4, 1, 194, 24, "12-62 86-182");
    int64_t ntsc[] = {150, 900};
    expect_scenes(ntsc, 2, 1000, 30000.0 / 1001, "14-136 164-435 463-734 762-886 914-986");
    /* Options of 0 are "none": the scenes as they are. */
    stage_span *s;
    size_t n;
    TH_OK(stage_scene_spans(two, 2, 300, 25, 0, 0, 0, &s, &n));
    cr_expect_str_eq(spans_text(s, n), "0-100 100-200 200-300");
    free(s);
    TH_OK(stage_scene_spans(NULL, 0, 0, 25, 2, 10, 0.5, &s, &n));
    cr_expect_eq(n, 0, "an empty video has no clip");
    TH_RC(stage_scene_spans(NULL, 0, 10, 0, 2, 10, 0.5, &s, &n), -EINVAL);
}

/* ---- the decision over scores --------------------------------------------------------- */

static const char *cuts_text(const int64_t *c, size_t n) {
    static char buf[1024];
    size_t at = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && at < sizeof buf - 32; i++)
        at += (size_t)snprintf(buf + at, sizeof buf - at, "%s%lld", i ? " " : "", (long long)c[i]);
    return buf;
}

Test(stage_splitter, the_decision_wants_a_jump_that_stands_out_and_lasts) {
    enum { N = 100 };
    double next[N], cross[N];
    for (int i = 0; i < N; i++)
        next[i] = cross[i] = 0.02 + 0.01 * (i % 3);
    next[20] = cross[20] = 0.7; /* a cut */
    next[40] = 0.9;             /* a flash: frames across it match */
    cross[40] = 0.03;
    next[60] = cross[60] = 0.5; /* fast motion: high scores around it */
    next[59] = next[61] = 0.4;
    next[80] = cross[80] = 0.3; /* below the threshold */
    int64_t *cuts;
    size_t n;
    TH_OK(stage_find_cuts(next, cross, N, 25, 0.4, &cuts, &n));
    cr_expect_str_eq(cuts_text(cuts, n), "20");
    free(cuts);
    TH_OK(stage_find_cuts(next, cross, N, 25, 0.25, &cuts, &n));
    cr_expect_str_eq(cuts_text(cuts, n), "20 80");
    free(cuts);
    /* In a busy stretch (median 0.3) a jump to 0.8 is not 3 times the rest. */
    for (int i = 0; i < N; i++)
        next[i] = cross[i] = 0.3;
    next[50] = cross[50] = 0.8;
    TH_OK(stage_find_cuts(next, cross, N, 25, 0.4, &cuts, &n));
    cr_expect_eq(n, 0, "%s", cuts_text(cuts, n));
    free(cuts);
    TH_OK(stage_find_cuts(next, cross, 1, 25, 0.4, &cuts, &n));
    cr_expect_eq(n, 0);
}

/* ---- synthetic videos --------------------------------------------------------------------- */

#define SW   64
#define SH   48
#define SFPS 25.0

/* Shots of one colour each, with noise and a moving square inside, cut at
 * the frames in cuts; frames in flash are brightened (a flash, not a cut). */
typedef struct shots {
    const int *cuts;
    int n_cuts;
    const int *flash;
    int n_flash;
} shots;

static uint8_t hash8(uint32_t a, uint32_t b, uint32_t c) {
    uint32_t h = a * 73856093u ^ b * 19349663u ^ c * 83492791u;
    h ^= h >> 13;
    h *= 0x5bd1e995u;
    h ^= h >> 15;
    return (uint8_t)h;
}

static void paint_shots(uint8_t *rgb, int stride, int w, int h, int i, void *arg) {
    static const uint8_t colour[][3] = {{200, 40, 40},  {40, 160, 60},  {50, 60, 200},
                                        {210, 200, 60}, {120, 50, 160}, {30, 170, 170}};
    const shots *s = arg;
    int shot = 0;
    while (shot < s->n_cuts && i >= s->cuts[shot])
        shot++;
    const uint8_t *c = colour[shot % 6];
    int bright = 0;
    for (int k = 0; k < s->n_flash; k++)
        bright |= s->flash[k] == i;
    int sx = (i * 2 + shot * 17) % (w - 12), sy = 10 + (shot * 7) % (h - 22);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = rgb + (size_t)y * stride + (size_t)x * 3;
            int in_square = x >= sx && x < sx + 12 && y >= sy && y < sy + 12;
            for (int k = 0; k < 3; k++) {
                int v = in_square ? 255 - c[k] : c[k];
                v += hash8((uint32_t)i, (uint32_t)(y * w + x), (uint32_t)k) % 21 - 10;
                v += bright ? 90 : 0;
                p[k] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
}

static const int synth_cuts[] = {37, 90, 141, 200};
static const int synth_flash[] = {120, 170, 171};

static sf_blob synth_video(int frames) {
    shots s = {synth_cuts, 4, synth_flash, 3};
    return sf_encode("veryfast", SW, SH, SFPS, frames, paint_shots, &s);
}

static void detect(sf_blob v, double threshold, int64_t **cuts, size_t *n, int64_t *frames) {
    bool partial;
    char why[256];
    media_input *m;
    int rc = media_open(v.data, v.size, NULL, &m, why, sizeof why);
    cr_assert_eq(rc, 0, "open: %d: %s", rc, why);
    rc = stage_detect_cuts(m, threshold, cuts, n, frames, &partial, why, sizeof why);
    media_close(m);
    cr_assert_eq(rc, 0, "detect: %d: %s", rc, why);
    cr_assert(!partial, "%s", why);
}

Test(stage_splitter, every_synthetic_cut_within_a_frame_and_no_flash) {
    sf_blob v = synth_video(250);
    int64_t *cuts, frames;
    size_t n;
    detect(v, 0.4, &cuts, &n, &frames);
    cr_assert_eq(frames, 250);
    cr_assert_eq(n, 4, "cuts found: %s (want 37 90 141 200)", cuts_text(cuts, n));
    for (size_t i = 0; i < n; i++)
        cr_expect_leq(llabs(cuts[i] - synth_cuts[i]), 1, "cut %zu at %lld, want %d +- 1", i,
                      (long long)cuts[i], synth_cuts[i]);
    free(cuts);
    free(v.data);
}

/* ---- the real samples --------------------------------------------------------------------- */

Test(stage_splitter, oa4_launch_has_its_cut_at_3_09_s) {
    sf_blob v = sf_sample("oa4_launch.webm");
    int64_t *cuts, frames;
    size_t n;
    detect(v, 0.4, &cuts, &n, &frames);
    double want = 3.09 * 24;
    cr_assert_eq(n, 1, "cuts found: %s (want one near frame %.1f)", cuts_text(cuts, n), want);
    cr_expect_leq(fabs((double)cuts[0] - want), 2.0, "cut at frame %lld, want %.1f +- 2",
                  (long long)cuts[0], want);
    free(cuts);
    free(v.data);
}

Test(stage_splitter, no_cut_in_one_shot_footage) {
    static const char *const names[] = {"cockatoo.mp4", "diver.mov", "realshort.mp4"};
    for (size_t k = 0; k < 3; k++) {
        sf_blob v = sf_sample(names[k]);
        int64_t *cuts, frames;
        size_t n;
        detect(v, 0.4, &cuts, &n, &frames);
        cr_expect_eq(n, 0, "%s: false cuts at %s", names[k], cuts_text(cuts, n));
        cr_expect_gt(frames, 30);
        free(cuts);
        free(v.data);
    }
}

/* ---- the stage in a pipeline ---------------------------------------------------------------- */

static const char video_path[] = "/videos/synthetic.mp4";

/* A task for the video v, written to a file of its own (*path: unlink() and
 * free() it). */
static void file_task(video_task *t, const char *name, sf_blob v, char **path) {
    *path = sf_tmp_file(name, v);
    sf_source_task(t, *path);
}

static void drop_file(char *path) {
    unlink(path);
    free(path);
}

static sf_out run_splitter(const reel_curate_options *o, const video_task *t) {
    return sf_run1(store, store_path, &stage_splitter_def, o, t);
}

/* The output keeps the path, the file's identity and the probe as they came
 * in. */
static void expect_kept(const video_task *in, const video_task *out) {
    cr_assert_eq(out->path.size, in->path.size);
    cr_assert(memcmp(out->path.data, in->path.data, in->path.size) == 0);
    cr_assert(memcmp(&out->file, &in->file, sizeof in->file) == 0,
              "the file's identity must stay for the transcoder");
    cr_assert_gt(out->file.size, 0);
    cr_assert_eq(out->probe.fps, in->probe.fps);
    cr_assert_eq(out->probe.num_frames, in->probe.num_frames);
    cr_assert_str_eq(out->probe.codec, in->probe.codec);
}

Test(stage_splitter, fixed_stride_stage_names_its_clips_as_curator) {
    sf_blob v = synth_video(300); /* 12 s at 25 fps */
    video_task in;
    char *file;
    file_task(&in, "stride.mp4", v, &file);
    cr_assert_eq(in.probe.num_frames, 300);
    /* Named as Curator's test names it: a fixed stride does not open the file. */
    in.path = (vt_bytes){(const uint8_t *)video_path, sizeof video_path - 1};
    reel_curate_options o;
    reel_curate_defaults(&o);
    sf_out out = run_splitter(&o, &in);
    expect_kept(&in, &out.t);
    cr_assert_eq(out.t.n_clips, 2);
    /* uuid5(NAMESPACE_URL, "/videos/synthetic.mp4_0_250") and "..._250_300". */
    static const char *const want[] = {"41318aad-e816-55ac-a9a4-ea2f93606f69",
                                       "cf435497-ec08-5b06-aff2-609f382e1d20"};
    const int64_t spans[][2] = {{0, 250}, {250, 300}};
    for (int k = 0; k < 2; k++) {
        const vt_clip *c = &out.t.clips[k];
        cr_expect_eq(c->start_frame, spans[k][0]);
        cr_expect_eq(c->end_frame, spans[k][1]);
        cr_expect_float_eq(c->start_s, spans[k][0] / 25.0, 1e-12);
        cr_expect_float_eq(c->end_s, spans[k][1] / 25.0, 1e-12);
        cr_expect_str_eq(c->uuid, want[k]);
        cr_expect_eq(c->mp4.size, 0);
        cr_expect_str_eq(sf_errors(c), "");
    }
    cr_expect_eq(out.t.error.size, 0);
    cr_expect(!out.t.partial);
    sf_out_free(&out);
    free(v.data);
    drop_file(file);
}

Test(stage_splitter, scene_stage_cuts_at_the_shots) {
    sf_blob v = synth_video(250);
    video_task in;
    char *file;
    file_task(&in, "scenes.mp4", v, &file);
    reel_curate_options o;
    reel_curate_defaults(&o);
    o.splitting = REEL_SPLIT_SCENE;
    o.scene_min_clip_s = 1; /* 25 frames */
    o.scene_max_clip_s = 2; /* 50 */
    o.scene_crop_s = 0.2;   /* 5 */
    sf_out out = run_splitter(&o, &in);
    expect_kept(&in, &out.t);
    /* The scenes between the true cuts, as Curator treats them. */
    int64_t cuts[] = {37, 90, 141, 200};
    stage_span *want;
    size_t n;
    TH_OK(stage_scene_spans(cuts, 4, 250, 25, 1, 2, 0.2, &want, &n));
    cr_expect_str_eq(spans_text(want, n), "5-32 42-82 95-135 146-186 205-245");
    cr_assert_eq(out.t.n_clips, n);
    for (size_t k = 0; k < n; k++) {
        const vt_clip *c = &out.t.clips[k];
        cr_expect_eq(c->start_frame, want[k].start, "clip %zu", k);
        cr_expect_eq(c->end_frame, want[k].end, "clip %zu", k);
        cr_expect_float_eq(c->start_s, want[k].start / 25.0, 1e-12);
        char name[128], u[37];
        snprintf(name, sizeof name, "%s_%lld_%lld", file, (long long)c->start_frame,
                 (long long)c->end_frame);
        TH_OK(reel_uuid5_url(name, u));
        cr_expect_str_eq(c->uuid, u, "clip %zu", k);
    }
    free(want);
    sf_out_free(&out);
    free(v.data);
    drop_file(file);
}

Test(stage_splitter, scene_stage_on_oa4_launch) {
    /* Curator's name for it, samples/oa4_launch.webm (the UUIDs below are
     * of that name): read from the directory that holds samples/. */
    char *sample = sf_sample_path("oa4_launch.webm");
    const char name[] = "samples/oa4_launch.webm";
    size_t len = strlen(sample), tail = sizeof name - 1;
    cr_assert(len >= tail && strcmp(sample + len - tail, name) == 0, "%s", sample);
    if (len > tail) {
        sample[len - tail - 1] = '\0';
        cr_assert_eq(chdir(sample), 0, "%s: %s", sample, strerror(errno));
    }
    free(sample);
    video_task in;
    sf_source_task(&in, "samples/oa4_launch.webm");
    cr_assert_gt(in.probe.fps, 0);
    reel_curate_options o;
    reel_curate_defaults(&o);
    o.splitting = REEL_SPLIT_SCENE;
    sf_out out = run_splitter(&o, &in);
    /* The cut at 74: scenes [0, 74) and [74, 194), cropped by 12 frames. */
    cr_assert_eq(out.t.n_clips, 2);
    cr_expect_eq(out.t.clips[0].start_frame, 12);
    cr_expect_eq(out.t.clips[1].start_frame, 86);
    cr_expect_eq(out.t.clips[1].end_frame, 182);
    /* Python: uuid5(NAMESPACE_URL, "samples/oa4_launch.webm_12_62"). */
    cr_expect_str_eq(out.t.clips[0].uuid, "6bacab2d-ee2a-520e-a8fc-1832cf96abe0");
    sf_out_free(&out);
}

Test(stage_splitter, a_truncated_video_keeps_the_clips_it_has) {
    static const int none[1];
    shots s = {none, 0, none, 0};
    sf_blob v = sf_encode("veryfast", SW, SH, SFPS, 300, paint_shots, &s);
    v.size = v.size / 2; /* the moov is at the front: half the frames are lost */
    video_task in;
    char *file;
    file_task(&in, "cut.mp4", v, &file);
    reel_curate_options o;
    reel_curate_defaults(&o);
    o.splitting = REEL_SPLIT_SCENE;
    sf_out out = run_splitter(&o, &in);
    cr_expect(out.t.partial, "the task must say the video decoded in part");
    char err[VT_TEXT_MAX];
    vt_text(out.t.error, err, sizeof err);
    cr_expect(strstr(err, "splitter: decoded "), "error text: %s", err);
    /* One scene of the frames there are, cropped. */
    cr_assert_eq(out.t.n_clips, 1, "error: %s", err);
    cr_expect_eq(out.t.clips[0].start_frame, 12);
    cr_expect_lt(out.t.clips[0].end_frame, 300 - 12);
    cr_expect_gt(out.t.clips[0].end_frame, 12 + 50);
    sf_out_free(&out);
    free(v.data);
    drop_file(file);
}

Test(stage_splitter, bytes_that_are_no_video_fail_in_the_task) {
    static uint8_t junk[4096];
    th_fill(junk, sizeof junk, 7);
    video_task in;
    char *file;
    file_task(&in, "junk.mp4", (sf_blob){junk, sizeof junk}, &file);
    in.probe.fps = 25; /* as if the probe had found something */
    reel_curate_options o;
    reel_curate_defaults(&o);
    o.splitting = REEL_SPLIT_SCENE;
    sf_out out = run_splitter(&o, &in);
    char err[VT_TEXT_MAX];
    vt_text(out.t.error, err, sizeof err);
    cr_expect(strstr(err, "splitter: cannot decode the video"), "error text: %s", err);
    cr_expect_eq(out.t.n_clips, 0);
    sf_out_free(&out);
    drop_file(file);
}

/* The source is read by range from its file: a file that is not the one the
 * reader saw (its size, mtime, inode or device differ) is the video's error,
 * never scenes of some other video. */
Test(stage_splitter, a_file_changed_since_it_was_read_fails_in_the_task) {
    sf_blob v = synth_video(100);
    for (int how = 0; how < 2; how++) {
        video_task in;
        char *file;
        file_task(&in, "changed.mp4", v, &file);
        cr_assert_gt(in.probe.fps, 0);
        if (how == 0) { /* recorded otherwise: the mtime */
            in.file.mtime_ns += 1;
        } else { /* another file put in its place: the same bytes, another inode */
            char *next = sf_tmp_file("changed-next.mp4", v);
            cr_assert_eq(rename(next, file), 0, "%s", strerror(errno));
            free(next);
        }
        reel_curate_options o;
        reel_curate_defaults(&o);
        o.splitting = REEL_SPLIT_SCENE;
        sf_out out = run_splitter(&o, &in);
        char err[VT_TEXT_MAX], want[256];
        vt_text(out.t.error, err, sizeof err);
        snprintf(want, sizeof want,
                 "splitter: cannot decode the video: %s changed since it was read", file);
        cr_expect(strstr(err, want), "case %d: error text: %s", how, err);
        cr_expect_eq(out.t.n_clips, 0, "case %d", how);
        sf_out_free(&out);
        drop_file(file);
    }
    free(v.data);
}

/* Fan-out: one item per chunk of clips_per_chunk clips, each naming its
 * place (chunk_index of chunk_count, first_clip of total_clips); the
 * automatic size makes twice as many chunks as the CPUs; any size is raised
 * so that a video makes at most REEL_TASK_MAX_OUTPUTS chunks. */
Test(stage_splitter, the_splitter_fans_a_video_out_into_chunks) {
    sf_blob v = synth_video(300); /* 12 s at 25 fps */
    video_task in;
    char *file;
    file_task(&in, "chunks.mp4", v, &file);
    cpu_set_t set;
    cr_assert_eq(sched_getaffinity(0, sizeof set, &set), 0);
    uint32_t cpus = (uint32_t)CPU_COUNT(&set), auto_per = (12 + 2 * cpus - 1) / (2 * cpus);
    struct {
        double clip_s;
        uint32_t per_chunk; /* asked for */
        uint32_t clips, chunks, per;
    } cases[] = {
        /* automatic: 2 x CPUs chunks (the workers see the CPUs this test does) */
        {1, 0, 12, (12 + auto_per - 1) / auto_per, auto_per},
        {1, 5, 12, 3, 5},      /* 5, 5, 2 */
        {0.125, 1, 96, 96, 1}, /* 96 chunks: more than a result carries inline */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        reel_curate_options o;
        reel_curate_defaults(&o);
        o.fixed_stride_clip_len_s = o.fixed_stride_stride_s = cases[i].clip_s;
        o.fixed_stride_min_clip_s = 0;
        o.clips_per_chunk = cases[i].per_chunk;
        sf_out out = run_splitter(&o, &in);
        cr_assert_eq(out.outputs, cases[i].chunks, "case %zu", i);
        cr_assert_eq(out.t.n_clips, cases[i].clips, "case %zu: every clip, once", i);
        for (uint32_t k = 0; k < out.t.n_clips; k++)
            cr_assert_eq(out.t.clips[k].start_frame, (int64_t)(k * cases[i].clip_s * 25 + 1e-9),
                         "case %zu: clip %u in order", i, k);
        bool seen[128] = {false};
        for (uint32_t k = 0; k < out.n_objs; k++) {
            video_task c;
            char why[256];
            TH_OK(vt_read(out.objs[k].data, out.objs[k].size, &c, why, sizeof why));
            cr_assert_eq(c.chunk_count, cases[i].chunks);
            cr_assert_eq(c.total_clips, cases[i].clips);
            cr_assert_eq(c.first_clip, c.chunk_index * cases[i].per);
            uint32_t want = cases[i].clips - c.first_clip < cases[i].per
                                ? cases[i].clips - c.first_clip
                                : cases[i].per;
            cr_assert_eq(c.n_clips, want);
            cr_assert_lt(c.chunk_index, 128);
            cr_assert(!seen[c.chunk_index], "chunk %u twice", c.chunk_index);
            seen[c.chunk_index] = true;
            vt_free(&c);
        }
        sf_out_free(&out);
    }
    free(v.data);
    drop_file(file);
}

/* The automatic size puts no more than an eighth of the store per CPU in a
 * chunk, in clips guessed at the source's bytes per second (a chunk's MP4s
 * are in the store until written), and no more than a result hands on with
 * their item; a video makes any number of chunks, and a size the user gives
 * is kept. */
Test(stage_splitter, an_automatic_chunk_holds_at_most_an_eighth_of_the_store_per_cpu) {
    cpu_set_t set;
    cr_assert_eq(sched_getaffinity(0, sizeof set, &set), 0);
    uint32_t cpus = (uint32_t)CPU_COUNT(&set), n = 16 * cpus; /* automatic: 8 a chunk */
    uint64_t mb = 1 << 20, capacity = 8ull * cpus * 3 * mb;
    reel_curate_options o;
    reel_curate_defaults(&o);
    cr_assert_eq(stage_clips_per_chunk(&o, n, 0, capacity), 8, "clip size unknown: unbounded");
    cr_assert_eq(stage_clips_per_chunk(&o, n, mb, 0), 8, "capacity unknown: unbounded");
    cr_assert_eq(stage_clips_per_chunk(&o, n, mb / 2, capacity), 6);
    cr_assert_eq(stage_clips_per_chunk(&o, n, mb, capacity), 3);
    cr_assert_eq(stage_clips_per_chunk(&o, n, 100 * mb, capacity), 1, "one clip at least");
    /* 640 large clips: 640 chunks of one, past a result's inline 64. */
    cr_assert_eq(stage_clips_per_chunk(&o, 640, 100 * mb, capacity), 1);
    /* 6400 small ones: no more than a result holds of their artifacts
     * (an MP4 each, a preview with the defaults) with their item. */
    cr_assert_eq(stage_clips_per_chunk(&o, 6400 * cpus, 0, capacity),
                 (REEL_TASK_MAX_OUTPUTS - 1) / stage_artifacts_per_clip(&o));
    o.clips_per_chunk = 5;
    cr_assert_eq(stage_clips_per_chunk(&o, n, 100 * mb, capacity), 5, "the user's size is kept");
}
