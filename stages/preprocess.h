/*
 * preprocess.h - the preprocess stage's computation, on the CPU and on a
 * CUDA GPU: frames (uint8 RGB, HWC) to a normalized float32 NCHW tensor.
 * Internal to the stages; never installed.
 *
 * For each frame k, channel c and output pixel (y, x) of size x size:
 *
 *   sx = max(0, (x + 0.5) * (w / size) - 0.5)    (float arithmetic; likewise sy)
 *   x0 = min(floor(sx), w - 1), x1 = min(x0 + 1, w - 1), fx = sx - x0
 *   v  = (1 - fy) * ((1 - fx) * p[y0][x0] + fx * p[y0][x1])
 *      +      fy * ((1 - fx) * p[y1][x0] + fx * p[y1][x1])
 *   out[k][c][y][x] = (v / 255 - mean[c]) / std[c]
 *
 * bilinear with pixel centres (as OpenCV's INTER_LINEAR and PyTorch's
 * align_corners=False, without antialiasing). The two implementations agree
 * to within 1e-5.
 */
#ifndef REEL_STAGES_PREPROCESS_H
#define REEL_STAGES_PREPROCESS_H

#include <stddef.h>
#include <stdint.h>

/* The geometry and the normalization of one call. */
typedef struct preprocess_params {
    uint32_t n, h, w; /* frames in: n x h x w x 3 bytes */
    uint32_t size;    /* out: n x 3 x size x size floats */
    float mean[3], std[3];
} preprocess_params;

#ifdef __CUDACC__
#define PREPROCESS_FN static inline __host__ __device__
#else
#define PREPROCESS_FN static inline
#endif

/* One bilinear tap along an axis: output index d of n_out from n_in. Shared
 * by both implementations, so that they compute alike. */
PREPROCESS_FN void preprocess_tap(uint32_t d, uint32_t n_in, uint32_t n_out, uint32_t *i0,
                                  uint32_t *i1, float *f) {
    float s = ((float)d + 0.5f) * ((float)n_in / (float)n_out) - 0.5f;
    if (s < 0.0f)
        s = 0.0f;
    uint32_t i = (uint32_t)s; /* floor: s >= 0 */
    if (i > n_in - 1)
        i = n_in - 1;
    *i0 = i;
    *i1 = i + 1 < n_in ? i + 1 : i;
    *f = s - (float)i;
}

/* One output value from its four neighbours. */
PREPROCESS_FN float preprocess_value(uint8_t p00, uint8_t p01, uint8_t p10, uint8_t p11, float fx,
                                     float fy, float mean, float std) {
    float top = (1.0f - fx) * (float)p00 + fx * (float)p01;
    float bottom = (1.0f - fx) * (float)p10 + fx * (float)p11;
    float v = (1.0f - fy) * top + fy * bottom;
    return (v / 255.0f - mean) / std;
}

/* On the CPU, into out. Returns 0, or -EINVAL (a zero size, a std of 0). */
int preprocess_cpu(const preprocess_params *p, const uint8_t *frames, float *out);

/* Devices the GPU path can use in this process: 0 when this build has no
 * CUDA kernel, no CUDA driver or no device (never an error). The first call
 * initializes CUDA (see reel/store.h on fork). */
int preprocess_gpu_count(void);

/* The same on the current CUDA device: frames copied in, out copied back.
 * Returns 0, -EINVAL, -ENODEV (no kernel in this build, or no device),
 * -ENOMEM (device memory), or -EIO (another CUDA error), with why set. */
int preprocess_gpu(const preprocess_params *p, const uint8_t *frames, float *out, char *why,
                   size_t cap);

#endif
