/*
 * The preprocess stage: each clip's frames (uint8 HWC, from the frames
 * stage, read zero-copy from the input task) become a float32 NCHW tensor of
 * tensor_size square, normalized per channel with mean and std, in
 * clip.tensor: the input an embedding model takes. preprocess.h has the
 * formula. The stage is in the pipeline only when tensors are written
 * (write_tensors); the frames it made them of go on to the writer only when
 * they are written too (write_frames).
 *
 * Where: on the GPU when use_gpu is set, this build has the CUDA kernel
 * (preprocess.cu, compiled when CMake finds nvcc) and the worker sees a
 * device - which it does only when the pipeline gives the stage a GPU share:
 * a CPU-only worker runs with CUDA_VISIBLE_DEVICES=-1. Otherwise, or when
 * the GPU fails, on the CPU; both compute the same values.
 */
#include "clip_util.h"
#include "preprocess.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int preprocess_cpu(const preprocess_params *p, const uint8_t *frames, float *out) {
    if (!p || p->h == 0 || p->w == 0 || p->size == 0)
        return -EINVAL;
    for (int c = 0; c < 3; c++)
        if (!(p->std[c] != 0) || !isfinite(p->mean[c]) || !isfinite(p->std[c]))
            return -EINVAL;
    uint32_t *x0 = malloc(p->size * sizeof *x0 * 2);
    float *fx = malloc(p->size * sizeof *fx);
    if (!x0 || !fx) {
        free(x0);
        free(fx);
        return -ENOMEM;
    }
    uint32_t *x1 = x0 + p->size;
    for (uint32_t x = 0; x < p->size; x++)
        preprocess_tap(x, p->w, p->size, &x0[x], &x1[x], &fx[x]);
    const size_t plane = (size_t)p->size * p->size;
    const size_t stride = (size_t)p->w * 3;
    for (uint32_t k = 0; k < p->n; k++) {
        const uint8_t *img = frames + (size_t)k * p->h * stride;
        float *dst = out + (size_t)k * 3 * plane;
        for (uint32_t y = 0; y < p->size; y++) {
            uint32_t y0, y1;
            float fy;
            preprocess_tap(y, p->h, p->size, &y0, &y1, &fy);
            const uint8_t *r0 = img + y0 * stride, *r1 = img + y1 * stride;
            for (uint32_t x = 0; x < p->size; x++) {
                const uint8_t *a = r0 + x0[x] * 3, *b = r0 + x1[x] * 3;
                const uint8_t *c = r1 + x0[x] * 3, *d = r1 + x1[x] * 3;
                for (int ch = 0; ch < 3; ch++)
                    dst[ch * plane + (size_t)y * p->size + x] = preprocess_value(
                        a[ch], b[ch], c[ch], d[ch], fx[x], fy, p->mean[ch], p->std[ch]);
            }
        }
    }
    free(x0);
    free(fx);
    return 0;
}

#ifndef REEL_STAGES_CUDA
/* This build has no CUDA kernel: the CPU path only. */
int preprocess_gpu_count(void) {
    return 0;
}

int preprocess_gpu(const preprocess_params *p, const uint8_t *frames, float *out, char *why,
                   size_t cap) {
    (void)p, (void)frames, (void)out;
    if (why && cap)
        snprintf(why, cap, "this build of reel has no CUDA kernel (nvcc was not found)");
    return -ENODEV;
}
#endif

/* Per worker process: whether to try the GPU (setup decides; a GPU failure
 * turns it off). */
static int gpu_on;

static int preprocess_setup(reel_actor_ctx *ctx) {
    const reel_curate_options *o = stage_options(ctx);
    gpu_on = o->use_gpu && preprocess_gpu_count() > 0;
    return 0;
}

static bool has_frames(const vt_clip *c) {
    return vt_art_present(&c->frames) && c->frames_n > 0;
}

/* clip_stage's work: the clip's tensor from its frames. */
static int make_tensor(const reel_curate_options *o, vt_clip *c, void **owned, char *why,
                       size_t cap) {
    preprocess_params p = {.n = c->frames_n,
                           .h = c->frames_h,
                           .w = c->frames_w,
                           .size = o->tensor_size,
                           .mean = {o->mean[0], o->mean[1], o->mean[2]},
                           .std = {o->std[0], o->std[1], o->std[2]}};
    uint64_t bytes = (uint64_t)p.n * 3 * p.size * p.size * sizeof(float);
    float *tensor = malloc(bytes);
    if (!tensor) {
        snprintf(why, cap, "out of memory for a %llu-byte tensor", (unsigned long long)bytes);
        return -ENOMEM;
    }
    int err = -ENODEV;
    if (gpu_on) {
        char gpu_why[256];
        err = preprocess_gpu(&p, c->frames.data, tensor, gpu_why, sizeof gpu_why);
        if (err)
            gpu_on = 0; /* a CUDA error may be sticky: the CPU from now on */
    }
    if (err)
        err = preprocess_cpu(&p, c->frames.data, tensor);
    if (err) {
        free(tensor);
        if (err != -ENOMEM)
            snprintf(why, cap, "cannot make a tensor of %ux%ux%u frames: %s", p.n, p.h, p.w,
                     strerror(-err));
        return err;
    }
    *owned = tensor;
    c->tensor = (vt_art){.data = (const uint8_t *)tensor, .size = bytes};
    c->tensor_gpu = gpu_on; /* still on: the kernel made this one */
    c->tensor_n = p.n;
    c->tensor_h = c->tensor_w = p.size;
    if (!o->write_frames) /* made for the tensor only: not carried to the writer */
        stage_art_drop(c, STAGE_ART_FRAMES);
    return 0;
}

static int preprocess_process(reel_actor_ctx *ctx, const reel_view *in, size_t n,
                              reel_actor_out *out) {
    static const clip_stage stage = {"preprocess", STAGE_ART_FRAMES, has_frames, make_tensor};
    return clip_stage_process(ctx, in, n, out, &stage);
}

const reel_actor_def stage_preprocess_def = {
    .name = "preprocess",
    .setup = preprocess_setup,
    .process = preprocess_process,
    .cpus = 1,
};
