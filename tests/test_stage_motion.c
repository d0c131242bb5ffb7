/*
 * test_stage_motion.c - the motion stage (stages/motion.c) as a pipeline
 * stage: Curator's two scores from the H.264 decoder's motion vectors, the
 * three modes, either threshold filtering, and clips that cannot be scored.
 *
 * The clips are synthetic and encoded here: a still picture (no motion: both
 * scores 0), and a picture of 8x8 random blocks moving right 4 pixels a frame.
 * With libx264's ultrafast preset (P-frames only, each from the one before)
 * every vector the decoder exports there is that displacement, so that
 * per_patch_min_256 is 4 / (256 + 256) exactly and global_mean at most that.
 */
#include "helpers.h"
#include "stage_fixture.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <string.h>

static const char *store_path;
static reel_store *store;

static void setup(void) {
    th_init();
    store = th_store_new(64 << 20, 1024, &store_path);
}

TestSuite(stage_motion, .init = setup, .fini = th_fini, .timeout = 60);

#define SIDE  256
#define FPS   10.0
#define N     30
#define SPEED 4 /* pixels per frame */

static uint8_t noise(int bx, int by, int c) {
    uint32_t h = (uint32_t)bx * 73856093u ^ (uint32_t)by * 19349663u ^ (uint32_t)c * 83492791u;
    h ^= h >> 13;
    h *= 0x5bd1e995u;
    h ^= h >> 15;
    return (uint8_t)(32 + h % 192);
}

/* 8x8 blocks of random colours, moved right *arg pixels a frame. */
static void paint_blocks(uint8_t *rgb, int stride, int w, int h, int i, void *arg) {
    int speed = *(const int *)arg;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int sx = x - i * speed + 8192;
            uint8_t *p = rgb + (size_t)y * stride + (size_t)x * 3;
            for (int c = 0; c < 3; c++)
                p[c] = noise(sx >> 3, y >> 3, c);
        }
}

/* The clips of the task every test scores:
 *   0 still, 1 moving (ultrafast), 2 moving (veryfast: B-frames),
 *   3 moving but 192x128 (too small to score), 4 bytes that are no video,
 *   5 no MP4 at all (the transcoder failed it). */
#define N_CLIPS 6
static sf_blob mp4s[N_CLIPS];
static vt_clip clips[N_CLIPS];
static video_task task;

static void make_task(void) {
    int still = 0, speed = SPEED;
    mp4s[0] = sf_encode("veryfast", SIDE, SIDE, FPS, N, paint_blocks, &still);
    mp4s[1] = sf_encode("ultrafast", SIDE, SIDE, FPS, N, paint_blocks, &speed);
    mp4s[2] = sf_encode("veryfast", SIDE, SIDE, FPS, N, paint_blocks, &speed);
    mp4s[3] = sf_encode("ultrafast", 192, 128, FPS, N, paint_blocks, &speed);
    static uint8_t junk[4096];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (uint8_t)(i * 131 + 7);
    mp4s[4] = (sf_blob){junk, sizeof junk};
    mp4s[5] = (sf_blob){NULL, 0};
    for (int k = 0; k < N_CLIPS; k++)
        sf_clip(&clips[k], k, mp4s[k], k == 3 ? 192 : SIDE, k == 3 ? 128 : SIDE, FPS, N);
    sf_task(&task, clips, N_CLIPS);
}

static void free_task(void) {
    for (int k = 0; k < 4; k++)
        free(mp4s[k].data);
}

static reel_curate_options options(reel_motion_mode mode) {
    reel_curate_options o;
    reel_curate_defaults(&o);
    o.motion = mode;
    return o;
}

static sf_out run(const reel_curate_options *o) {
    return sf_run1(store, store_path, &stage_motion_def, o, &task);
}

static const double exact = (double)SPEED / (SIDE + SIDE); /* 0.0078125 */

/* What every scoring mode finds, whatever it filters. */
static void expect_scores(const video_task *t) {
    cr_assert_eq(t->n_clips, N_CLIPS);
    const vt_clip *c = t->clips;
    for (int k = 0; k < N_CLIPS; k++)
        cr_log_info("clip %d: global_mean %.9f per_patch_min_256 %.9f", k, c[k].motion_global_mean,
                    c[k].motion_patch_min);

    cr_assert(c[0].has_motion);
    cr_assert_lt(c[0].motion_global_mean, 1e-6, "still: global %g", c[0].motion_global_mean);
    cr_assert_lt(c[0].motion_patch_min, 1e-6, "still: patch %g", c[0].motion_patch_min);
    cr_assert_geq(c[0].motion_patch_min, 0);
    cr_assert_str_eq(sf_errors(&c[0]), "");

    cr_assert(c[1].has_motion);
    cr_assert_float_eq(c[1].motion_patch_min, exact, 1e-9, "moving: patch %.9f, want %.9f",
                       c[1].motion_patch_min, exact);
    cr_assert(c[1].motion_global_mean > 0.6 * exact && c[1].motion_global_mean <= exact + 1e-9,
              "moving: global %.9f, want about %.9f", c[1].motion_global_mean, exact);
    cr_assert_str_eq(sf_errors(&c[1]), "");

    /* B-frames point up to a few frames away: more displacement, not less. */
    cr_assert(c[2].has_motion);
    cr_assert_gt(c[2].motion_global_mean, 0.6 * exact, "B-frames: global %.9f",
                 c[2].motion_global_mean);
    cr_assert_gt(c[2].motion_patch_min, 0.5 * exact, "B-frames: patch %.9f", c[2].motion_patch_min);
    cr_assert_str_eq(sf_errors(&c[2]), "");

    /* Curator refuses to score clips under 256 a side, and undecodable ones:
     * error, and its stand-in scores of -1. */
    cr_assert(c[3].has_motion);
    cr_assert_eq(c[3].motion_global_mean, -1);
    cr_assert_eq(c[3].motion_patch_min, -1);
    cr_assert(strstr(sf_errors(&c[3]), "motion: resolution 192x128"), "%s", sf_errors(&c[3]));
    cr_assert(c[4].has_motion);
    cr_assert_eq(c[4].motion_global_mean, -1);
    cr_assert(strncmp(sf_errors(&c[4]), "motion: ", 8) == 0, "%s", sf_errors(&c[4]));

    /* No MP4: left as it came. */
    cr_assert(!c[5].has_motion);
    cr_assert(!c[5].filtered);
    cr_assert_str_eq(sf_errors(&c[5]), "");

    /* Everything else goes through untouched. */
    for (int k = 0; k < N_CLIPS; k++) {
        cr_assert_str_eq(c[k].uuid, clips[k].uuid);
        cr_assert_eq(c[k].mp4.size, clips[k].mp4.size);
        cr_assert(c[k].mp4.size == 0 ||
                  memcmp(c[k].mp4.data, clips[k].mp4.data, c[k].mp4.size) == 0);
        cr_assert_eq(c[k].num_frames, N);
    }
}

Test(stage_motion, enable_scores_and_filters_low_motion) {
    make_task();
    reel_curate_options o = options(REEL_MOTION_ENABLE);
    sf_out out = run(&o);
    cr_assert(!out.forwarded);
    expect_scores(&out.t);
    const vt_clip *c = out.t.clips;
    cr_assert(c[0].filtered, "a still clip is filtered");
    cr_assert(!c[1].filtered, "a moving clip is kept");
    cr_assert(!c[2].filtered, "a moving clip is kept");
    cr_assert(c[3].filtered && c[4].filtered, "clips Curator cannot score count as still");
    cr_assert(!c[5].filtered);
    sf_out_free(&out);
    free_task();
}

/* The transcoder takes each clip's frames and preview as it encodes it: a
 * clip the filter drops loses them, as it would never have had them from
 * the frames and preview stages; a kept one keeps them. */
Test(stage_motion, a_filtered_clip_loses_its_frames_and_preview) {
    make_task();
    static const uint8_t frames[2 * 8 * 8 * 3], jpeg[] = {0xff, 0xd8, 0xff, 0xd9};
    for (int k = 0; k < 2; k++) {
        clips[k].frames = (vt_art){.data = frames, .size = sizeof frames};
        clips[k].frames_n = 2;
        clips[k].frames_h = clips[k].frames_w = 8;
        clips[k].frames_fps = 2;
        clips[k].preview = (vt_art){.data = jpeg, .size = sizeof jpeg};
    }
    reel_curate_options o = options(REEL_MOTION_ENABLE);
    sf_out out = run(&o);
    const vt_clip *c = out.t.clips;
    cr_assert(c[0].filtered && !c[1].filtered);
    cr_expect_eq(c[0].frames_n, 0);
    cr_expect_eq(c[0].frames.size, 0);
    cr_expect_eq(c[0].frames_h, 0);
    cr_expect_eq(c[0].preview.size, 0);
    cr_expect_eq(c[1].frames_n, 2);
    cr_expect_eq(c[1].frames.size, sizeof frames);
    cr_expect_eq(c[1].preview.size, sizeof jpeg);
    sf_out_free(&out);
    free_task();
}

Test(stage_motion, score_only_keeps_every_clip) {
    make_task();
    reel_curate_options o = options(REEL_MOTION_SCORE_ONLY);
    sf_out out = run(&o);
    expect_scores(&out.t);
    for (uint32_t k = 0; k < out.t.n_clips; k++)
        cr_assert(!out.t.clips[k].filtered, "clip %u filtered in score-only mode", k);
    sf_out_free(&out);
    free_task();
}

Test(stage_motion, disable_passes_the_task_on) {
    make_task();
    reel_curate_options o = options(REEL_MOTION_DISABLE);
    sf_out out = run(&o);
    cr_assert(out.forwarded, "with nothing to do the input goes on as it is");
    for (uint32_t k = 0; k < out.t.n_clips; k++) {
        cr_assert(!out.t.clips[k].has_motion);
        cr_assert(!out.t.clips[k].filtered);
        cr_assert_str_eq(sf_errors(&out.t.clips[k]), "");
    }
    sf_out_free(&out);
    free_task();
}

Test(stage_motion, either_threshold_filters) {
    make_task();
    /* Only the moving clips matter here. */
    task.n_clips = 3;
    reel_curate_options o = options(REEL_MOTION_ENABLE);
    o.motion_per_patch_min_256_threshold = 1.5 * exact; /* above the moving clip's patch */
    sf_out out = run(&o);
    cr_assert(out.t.clips[0].filtered);
    cr_assert(out.t.clips[1].filtered, "patch %.9f below %.9f", out.t.clips[1].motion_patch_min,
              o.motion_per_patch_min_256_threshold);
    sf_out_free(&out);

    o = options(REEL_MOTION_ENABLE);
    o.motion_global_mean_threshold = 10 * exact; /* above any global mean here */
    out = run(&o);
    cr_assert(out.t.clips[1].filtered && out.t.clips[2].filtered);
    sf_out_free(&out);

    o = options(REEL_MOTION_ENABLE);
    o.motion_global_mean_threshold = 0;
    o.motion_per_patch_min_256_threshold = 0;
    out = run(&o);
    cr_assert(!out.t.clips[0].filtered, "nothing is below 0");
    cr_assert(!out.t.clips[1].filtered);
    sf_out_free(&out);
    free_task();
}

Test(stage_motion, earlier_errors_are_kept) {
    make_task();
    task.n_clips = 5;
    static const char earlier[] = "transcode: something was odd";
    clips[3].errors = (vt_bytes){(const uint8_t *)earlier, sizeof earlier - 1};
    reel_curate_options o = options(REEL_MOTION_ENABLE);
    sf_out out = run(&o);
    const char *e = sf_errors(&out.t.clips[3]);
    cr_assert(strncmp(e, "transcode: something was odd; motion: resolution", 48) == 0, "%s", e);
    sf_out_free(&out);
    free_task();
}

/* An artifact ID in the record that names no object (the record comes from
 * another process) is the clip's error, and the clip goes on without it:
 * nothing reads it, nothing carries it on. */
Test(stage_motion, an_mp4_not_in_the_store_is_the_clips_error) {
    vt_clip c[2];
    sf_clip(&c[0], 0, (sf_blob){0}, 320, 320, 25, 10);
    sf_clip(&c[1], 1, (sf_blob){0}, 320, 320, 25, 10);
    TH_OK(reel_id_random(&c[0].mp4.id));
    c[0].mp4.size = 1000;
    video_task t;
    sf_task(&t, c, 2);
    reel_curate_options o = options(REEL_MOTION_ENABLE);
    sf_out out = sf_run1(store, store_path, &stage_motion_def, &o, &t);
    char hex[REEL_ID_HEX_LEN + 1], want[128];
    reel_id_to_hex(&c[0].mp4.id, hex);
    snprintf(want, sizeof want, "motion: its mp4 %s is not in the store", hex);
    cr_assert_str_eq(sf_errors(&out.t.clips[0]), want);
    cr_assert(!vt_art_present(&out.t.clips[0].mp4), "not carried on");
    cr_assert(!out.t.clips[0].has_motion, "not scored");
    cr_assert_str_eq(sf_errors(&out.t.clips[1]), "");
    sf_out_free(&out);
}
