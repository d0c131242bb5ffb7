/*
 * test_stage_frames.c - frame extraction (stages/frames.c) and the
 * preprocessing for embedding models (stages/preprocess.c, preprocess.cu),
 * as pipeline stages and, for the arithmetic, as plain calls.
 *
 * Frames: which frames Curator's sequence policy takes at a known fps and
 * duration (read back from clips whose every frame has its own grey level),
 * repeated frames when sampling faster than the clip, sizes, a solid
 * colour's pixels, clips that are skipped or cannot be decoded.
 * Preprocess: the CPU path against a reference written out here, the stage
 * on frames the frames stage put in the store, and - where a GPU and the
 * CUDA kernel exist - the GPU path against the CPU one (within 1e-5); those
 * tests skip cleanly elsewhere.
 */
#include "helpers.h"
#include "preprocess.h"
#include "stage_fixture.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *store_path;
static reel_store *store;

static void setup(void) {
    th_init();
    store = th_store_new(64 << 20, 1024, &store_path);
}

TestSuite(stage_frames, .init = setup, .fini = th_fini, .timeout = 60);

static reel_curate_options options(void) {
    reel_curate_options o;
    reel_curate_defaults(&o);
    o.frames_fps = 2;
    o.frames_size = 32;
    o.tensor_size = 24;
    o.use_gpu = false;
    /* A run that writes both: the stages below are in its pipeline. */
    o.write_frames = o.write_tensors = true;
    return o;
}

/* The mean of one channel of frame k of a clip's frames. */
static double frame_mean(const vt_clip *c, uint32_t k, int ch) {
    size_t px = (size_t)c->frames_h * c->frames_w;
    const uint8_t *f = c->frames.data + k * px * 3;
    double sum = 0;
    for (size_t i = 0; i < px; i++)
        sum += f[i * 3 + ch];
    return sum / (double)px;
}

/* Asserts that the clip's frames are those of the given indices (read back
 * from their grey levels). */
static void expect_indices(const vt_clip *c, const int *want, uint32_t n) {
    cr_assert_eq(c->frames_n, n, "clip %s: %u frames, want %u (%s)", c->uuid, c->frames_n, n,
                 sf_errors(c));
    for (uint32_t k = 0; k < n; k++) {
        double m = frame_mean(c, k, 1);
        cr_assert(fabs(m - sf_level(want[k])) < 3,
                  "clip %s: sample %u is frame %d (level %.1f), "
                  "want frame %d (level %d)",
                  c->uuid, k, sf_index_of(m), m, want[k], sf_level(want[k]));
    }
}

/* ---- frames ------------------------------------------------------------------------- */

Test(stage_frames, frames_at_known_rates_and_sizes) {
    static const uint8_t colour[3] = {200, 40, 90};
    sf_blob m0 = sf_encode("veryfast", 64, 48, 10, 25, sf_paint_levels, NULL);
    sf_blob m1 = sf_encode("veryfast", 48, 64, 2, 4, sf_paint_levels, NULL);
    sf_blob m5 = sf_encode("veryfast", 96, 64, 30, 60, sf_paint_solid, (void *)colour);
    static uint8_t junk[2048];
    memset(junk, 0x42, sizeof junk);
    vt_clip clips[6];
    sf_clip(&clips[0], 0, m0, 64, 48, 10, 25);
    sf_clip(&clips[1], 1, m1, 48, 64, 2, 4);
    sf_clip(&clips[2], 2, m0, 64, 48, 10, 25);
    clips[2].filtered = true; /* the motion filter took it out */
    sf_clip(&clips[3], 3, (sf_blob){NULL, 0}, 64, 48, 10, 25);
    sf_clip(&clips[4], 4, (sf_blob){junk, sizeof junk}, 64, 48, 10, 25);
    sf_clip(&clips[5], 5, m5, 96, 64, 30, 60);
    video_task t;
    sf_task(&t, clips, 6);
    reel_curate_options o = options();
    sf_out out = sf_run1(store, store_path, &stage_frames_def, &o, &t);
    const vt_clip *c = out.t.clips;
    cr_assert_eq(out.t.n_clips, 6);

    /* 25 frames at 10 fps (2.4 s to the last) at 2 fps: 0, 0.5, ... 2.5 s;
     * the last sample lies past the last frame, within half a step. */
    static const int want0[] = {0, 5, 10, 15, 20, 24};
    expect_indices(&c[0], want0, 6);
    cr_assert_eq(c[0].frames_h, 32);
    cr_assert_eq(c[0].frames_w, 32);
    cr_assert_eq(c[0].frames_fps, 2);
    cr_assert_eq(c[0].frames.size, 6u * 32 * 32 * 3);
    cr_assert_str_eq(sf_errors(&c[0]), "");

    static const int want1[] = {0, 1, 2, 3};
    expect_indices(&c[1], want1, 4);

    cr_assert_eq(c[2].frames_n, 0, "a filtered clip gets no frames");
    cr_assert_eq(c[2].frames.size, 0);
    cr_assert_eq(c[3].frames_n, 0, "a clip without its MP4 gets no frames");
    cr_assert_str_eq(sf_errors(&c[3]), "");
    cr_assert_eq(c[4].frames_n, 0);
    cr_assert(strncmp(sf_errors(&c[4]), "frames: ", 8) == 0, "%s", sf_errors(&c[4]));

    /* 60 frames at 30 fps: 0, 0.5, 1, 1.5 and 2 s (past 59/30, within half a step). */
    cr_assert_eq(c[5].frames_n, 5);
    for (uint32_t k = 0; k < 5; k++)
        for (int ch = 0; ch < 3; ch++) {
            const uint8_t *f = c[5].frames.data + (size_t)k * 32 * 32 * 3;
            for (int i = 0; i < 32 * 32; i++)
                cr_assert(abs((int)f[i * 3 + ch] - colour[ch]) <= 4,
                          "frame %u pixel %d channel %d: %d, want %d", k, i, ch, f[i * 3 + ch],
                          colour[ch]);
        }
    sf_out_free(&out);
    free(m0.data);
    free(m1.data);
    free(m5.data);
}

Test(stage_frames, sampling_faster_than_the_clip_repeats_frames) {
    sf_blob m = sf_encode("veryfast", 32, 32, 2, 4, sf_paint_levels, NULL);
    vt_clip clip;
    sf_clip(&clip, 0, m, 32, 32, 2, 4);
    video_task t;
    sf_task(&t, &clip, 1);
    reel_curate_options o = options();
    o.frames_fps = 4;
    o.frames_size = 16;
    sf_out out = sf_run1(store, store_path, &stage_frames_def, &o, &t);
    /* Samples at 0, 0.25, ... 1.5 s of frames at 0, 0.5, 1, 1.5 s: a sample
     * halfway between two frames takes the earlier, as Curator's does. */
    static const int want[] = {0, 0, 1, 1, 2, 2, 3};
    expect_indices(&out.t.clips[0], want, 7);
    cr_assert_eq(out.t.clips[0].frames_h, 16);
    cr_assert_eq(out.t.clips[0].frames_fps, 4);
    sf_out_free(&out);
    free(m.data);
}

Test(stage_frames, a_task_with_nothing_to_extract_goes_on_as_it_came) {
    vt_clip clips[2];
    sf_clip(&clips[0], 0, (sf_blob){NULL, 0}, 64, 48, 10, 25);
    sf_clip(&clips[1], 1, (sf_blob){(uint8_t *)"not read", 8}, 64, 48, 10, 25);
    clips[1].filtered = true;
    video_task t;
    sf_task(&t, clips, 2);
    reel_curate_options o = options();
    sf_out out = sf_run1(store, store_path, &stage_frames_def, &o, &t);
    cr_assert(out.forwarded);
    cr_assert_eq(out.t.clips[0].frames_n, 0);
    cr_assert_eq(out.t.clips[1].frames_n, 0);
    sf_out_free(&out);
}

/* ---- preprocess ------------------------------------------------------------------------ */

/* The reference: preprocess.h's formula, written out plainly (the sample
 * positions in float, as specified; the blend in double). */
static double reference(const uint8_t *frames, uint32_t h, uint32_t w, uint32_t size, uint32_t k,
                        int c, uint32_t y, uint32_t x, const float *mean, const float *std) {
    double pos[2];
    uint32_t lo[2], hi[2];
    const uint32_t d[2] = {y, x}, n[2] = {h, w};
    for (int a = 0; a < 2; a++) {
        float s = ((float)d[a] + 0.5f) * ((float)n[a] / (float)size) - 0.5f;
        if (s < 0)
            s = 0;
        lo[a] = (uint32_t)floorf(s);
        if (lo[a] > n[a] - 1)
            lo[a] = n[a] - 1;
        hi[a] = lo[a] + 1 < n[a] ? lo[a] + 1 : lo[a];
        pos[a] = (double)s - lo[a];
    }
    const uint8_t *img = frames + (size_t)k * h * w * 3;
#define PX(yy, xx) ((double)img[((size_t)(yy)*w + (xx)) * 3 + c])
    double v = (1 - pos[0]) * ((1 - pos[1]) * PX(lo[0], lo[1]) + pos[1] * PX(lo[0], hi[1])) +
               pos[0] * ((1 - pos[1]) * PX(hi[0], lo[1]) + pos[1] * PX(hi[0], hi[1]));
#undef PX
    return (v / 255.0 - mean[c]) / std[c];
}

static void expect_reference(const uint8_t *frames, uint32_t n, uint32_t h, uint32_t w,
                             uint32_t size, const float *mean, const float *std, const float *got,
                             double tol) {
    for (uint32_t k = 0; k < n; k++)
        for (int c = 0; c < 3; c++)
            for (uint32_t y = 0; y < size; y++)
                for (uint32_t x = 0; x < size; x++) {
                    double want = reference(frames, h, w, size, k, c, y, x, mean, std);
                    float v = got[(((size_t)k * 3 + c) * size + y) * size + x];
                    cr_assert(fabs(v - want) <= tol,
                              "%ux%u -> %u: frame %u channel %d (%u, %u): %.9f, want %.9f", h, w,
                              size, k, c, y, x, v, want);
                }
}

/* Frames of random pixels for n x h x w (free()). */
static uint8_t *random_frames(uint32_t n, uint32_t h, uint32_t w, uint64_t seed) {
    size_t bytes = (size_t)n * h * w * 3;
    uint8_t *f = malloc(bytes);
    cr_assert_not_null(f);
    th_fill(f, bytes, seed);
    return f;
}

/* Clip index of a w x h video (10 s at 25 fps, no MP4) holding n random
 * frames of h x w; returns the frames, to free(). */
static uint8_t *clip_with_frames(vt_clip *c, uint32_t index, uint32_t n, uint32_t h, uint32_t w,
                                 uint64_t seed) {
    uint8_t *f = random_frames(n, h, w, seed);
    sf_clip(c, index, (sf_blob){NULL, 0}, w, h, 10, 25);
    c->frames = (vt_art){.data = f, .size = (uint64_t)n * h * w * 3};
    c->frames_n = n, c->frames_h = h, c->frames_w = w;
    return f;
}

/* n frames of h x w made into size x size, normalized as options() says. */
typedef struct preprocess_case {
    uint32_t n, h, w, size;
} preprocess_case;

static preprocess_params case_params(preprocess_case k) {
    reel_curate_options o = options();
    preprocess_params p = {.n = k.n, .h = k.h, .w = k.w, .size = k.size};
    memcpy(p.mean, o.mean, sizeof p.mean);
    memcpy(p.std, o.std, sizeof p.std);
    return p;
}

Test(stage_frames, preprocess_cpu_matches_the_reference) {
    static const preprocess_case cases[] = {
        {3, 37, 53, 24}, /* down, a different factor each way */
        {2, 16, 16, 40}, /* up */
        {1, 24, 24, 24}, /* the same size: the pixels themselves */
        {1, 1, 1, 8},    /* one pixel */
        {2, 256, 256, 224},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        preprocess_params p = case_params(cases[i]);
        uint8_t *frames = random_frames(p.n, p.h, p.w, 1000 + i);
        float *out = malloc((size_t)p.n * 3 * p.size * p.size * sizeof *out);
        cr_assert_not_null(out);
        TH_OK(preprocess_cpu(&p, frames, out));
        expect_reference(frames, p.n, p.h, p.w, p.size, p.mean, p.std, out, 1e-5);
        free(out);
        free(frames);
    }
    /* A std of 0 cannot normalize. */
    preprocess_params bad = {.n = 1, .h = 2, .w = 2, .size = 2, .std = {1, 0, 1}};
    uint8_t px[12] = {0};
    float out[12];
    TH_RC(preprocess_cpu(&bad, px, out), -EINVAL);
}

Test(stage_frames, preprocess_stage_on_the_cpu) {
    vt_clip clips[3];
    uint8_t *f0 = clip_with_frames(&clips[0], 0, 3, 37, 53, 7);
    uint8_t *f1 = clip_with_frames(&clips[1], 1, 2, 16, 16, 8);
    sf_clip(&clips[2], 2, (sf_blob){NULL, 0}, 16, 16, 10, 25); /* no frames: no tensor */
    video_task t;
    sf_task(&t, clips, 3);
    reel_curate_options o = options();
    o.tensor_size = 24;
    sf_out out = sf_run1(store, store_path, &stage_preprocess_def, &o, &t);
    const vt_clip *c = out.t.clips;
    for (int k = 0; k < 2; k++) {
        cr_assert_eq(c[k].tensor_n, clips[k].frames_n);
        cr_assert_eq(c[k].tensor_h, 24);
        cr_assert_eq(c[k].tensor_w, 24);
        cr_assert_eq(c[k].tensor.size, (uint64_t)c[k].tensor_n * 3 * 24 * 24 * 4);
        float *got = malloc(c[k].tensor.size); /* the view may not be aligned for floats */
        memcpy(got, c[k].tensor.data, c[k].tensor.size);
        expect_reference(clips[k].frames.data, clips[k].frames_n, clips[k].frames_h,
                         clips[k].frames_w, 24, o.mean, o.std, got, 1e-5);
        free(got);
        /* The frames stay for the writer (write_frames). */
        cr_assert_eq(c[k].frames.size, clips[k].frames.size);
        cr_assert(memcmp(c[k].frames.data, clips[k].frames.data, c[k].frames.size) == 0);
    }
    cr_assert_eq(c[2].tensor_n, 0);
    cr_assert_eq(c[2].tensor.size, 0);
    sf_out_free(&out);
    free(f0);
    free(f1);
}

Test(stage_frames, frames_then_preprocess_in_one_pipeline) {
    static const uint8_t colour[3] = {30, 140, 220};
    sf_blob m = sf_encode("veryfast", 64, 64, 10, 20, sf_paint_solid, (void *)colour);
    vt_clip clip;
    sf_clip(&clip, 0, m, 64, 64, 10, 20);
    video_task t;
    sf_task(&t, &clip, 1);
    reel_curate_options o = options();
    const reel_actor_def *defs[2] = {&stage_frames_def, &stage_preprocess_def};
    sf_out out = sf_run(store, store_path, defs, 2, 0, &o, &t);
    const vt_clip *c = &out.t.clips[0];
    /* 20 frames at 10 fps: samples at 0, 0.5, 1, 1.5 and 2 s (past 1.9). */
    cr_assert_eq(c->frames_n, 5);
    cr_assert_eq(c->tensor_n, 5);
    cr_assert_eq(c->tensor_h, 24);
    float *got = malloc(c->tensor.size);
    memcpy(got, c->tensor.data, c->tensor.size);
    for (uint32_t k = 0; k < 5; k++)
        for (int ch = 0; ch < 3; ch++) {
            double want = (colour[ch] / 255.0 - o.mean[ch]) / o.std[ch];
            for (int i = 0; i < 24 * 24; i++) {
                float v = got[((size_t)k * 3 + ch) * 24 * 24 + i];
                cr_assert(fabs(v - want) < 5 / 255.0 / o.std[ch],
                          "frame %u channel %d: %f, want %f", k, ch, v, want);
            }
        }
    free(got);
    sf_out_free(&out);
    free(m.data);
}

/* Tensors written without the frames: preprocess hands no frames on, so the
 * task the writer gets does not carry them for nothing. */
Test(stage_frames, without_write_frames_preprocess_hands_on_no_frames) {
    vt_clip clip;
    uint8_t *f0 = clip_with_frames(&clip, 0, 3, 16, 16, 5);
    video_task t;
    sf_task(&t, &clip, 1);
    reel_curate_options o = options();
    o.write_frames = false;
    sf_out out = sf_run1(store, store_path, &stage_preprocess_def, &o, &t);
    const vt_clip *c = &out.t.clips[0];
    cr_assert_eq(c->tensor_n, 3);
    cr_assert_eq(c->tensor.size, 3u * 3 * 24 * 24 * 4);
    cr_assert_eq(c->frames_n, 0);
    cr_assert_eq(c->frames.size, 0);
    sf_out_free(&out);
    free(f0);
}

/* ---- the GPU -------------------------------------------------------------------------- */

/* Whether this process can run the kernel; skips the test otherwise. Call
 * it only where nothing forks afterwards: it initializes CUDA. */
static void need_gpu_here(void) {
    if (reel_gpu_count() <= 0)
        cr_skip_test("no GPU");
    if (preprocess_gpu_count() <= 0)
        cr_skip_test("this build has no CUDA kernel (nvcc was not found)");
}

Test(stage_frames, preprocess_gpu_matches_cpu) {
    need_gpu_here();
    static const preprocess_case cases[] = {{3, 37, 53, 24},
                                            {2, 16, 16, 40},
                                            {1, 24, 24, 24},
                                            {8, 256, 256, 224},
                                            {1, 1080 / 4, 1920 / 4, 224}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        preprocess_params p = case_params(cases[i]);
        uint8_t *frames = random_frames(p.n, p.h, p.w, 2000 + i);
        size_t count = (size_t)p.n * 3 * p.size * p.size;
        float *cpu = malloc(count * sizeof *cpu), *gpu = malloc(count * sizeof *gpu);
        cr_assert(cpu && gpu);
        TH_OK(preprocess_cpu(&p, frames, cpu));
        char why[256] = "";
        int rc = preprocess_gpu(&p, frames, gpu, why, sizeof why);
        cr_assert_eq(rc, 0, "preprocess_gpu: %d: %s", rc, why);
        double worst = 0;
        for (size_t k = 0; k < count; k++)
            worst = fmax(worst, fabs((double)cpu[k] - gpu[k]));
        cr_assert_leq(worst, 1e-5, "case %zu: the GPU is off by %g", i, worst);
        cr_log_info("case %zu: %ux%ux%u -> %u: GPU and CPU differ by %g at most", i, p.n, p.h, p.w,
                    p.size, worst);
        free(cpu);
        free(gpu);
        free(frames);
    }
}

static int count_gpus(void *arg) {
    (void)arg;
    return reel_gpu_count() > 0 && preprocess_gpu_count() > 0 ? 1 : 0;
}

Test(stage_frames, preprocess_stage_on_a_gpu_share) {
    /* A child looks, so that this process forks its workers before any CUDA. */
    int has = th_wait(th_fork(count_gpus, NULL), 30000);
    if (has != 1)
        cr_skip_test("no GPU, or no CUDA kernel in this build");
    vt_clip clip;
    uint8_t *f0 = clip_with_frames(&clip, 0, 4, 120, 160, 9);
    video_task t;
    sf_task(&t, &clip, 1);
    reel_curate_options o = options();
    o.use_gpu = true;
    o.tensor_size = 64;
    const reel_actor_def *defs[1] = {&stage_preprocess_def};
    sf_out out = sf_run(store, store_path, defs, 1, 0.5, &o, &t);
    const vt_clip *c = &out.t.clips[0];
    cr_assert_eq(c->tensor_n, 4);
    float *got = malloc(c->tensor.size);
    memcpy(got, c->tensor.data, c->tensor.size);
    expect_reference(f0, 4, 120, 160, 64, o.mean, o.std, got, 1e-5);
    free(got);
    sf_out_free(&out);
    free(f0);
}
