/*
 * The preprocess stage's CUDA kernel: preprocess.h's computation, one thread
 * per output pixel (its three channels). Compiled only when CMake finds nvcc
 * (REEL_STAGES_CUDA); the CUDA runtime is linked statically into the stages,
 * so that a program built here still starts where no CUDA is installed: it
 * loads the driver at the first call and, without one, reports no device.
 *
 * Device buffers are kept between calls and grown as needed: a worker
 * preprocesses clip after clip of similar sizes.
 */
#include <cuda_runtime.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

extern "C" {
#include "preprocess.h"
}

__global__ void preprocess_kernel(const uint8_t *frames, float *out, preprocess_params p) {
    const size_t plane = (size_t)p.size * p.size;
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= plane * p.n)
        return;
    const uint32_t k = (uint32_t)(i / plane);
    const size_t at = i % plane;
    const uint32_t y = (uint32_t)(at / p.size), x = (uint32_t)(at % p.size);
    uint32_t x0, x1, y0, y1;
    float fx, fy;
    preprocess_tap(x, p.w, p.size, &x0, &x1, &fx);
    preprocess_tap(y, p.h, p.size, &y0, &y1, &fy);
    const size_t stride = (size_t)p.w * 3;
    const uint8_t *img = frames + (size_t)k * p.h * stride;
    const uint8_t *a = img + y0 * stride + x0 * 3, *b = img + y0 * stride + x1 * 3;
    const uint8_t *c = img + y1 * stride + x0 * 3, *d = img + y1 * stride + x1 * 3;
    float *dst = out + (size_t)k * 3 * plane + at;
    for (int ch = 0; ch < 3; ch++)
        dst[ch * plane] =
            preprocess_value(a[ch], b[ch], c[ch], d[ch], fx, fy, p.mean[ch], p.std[ch]);
}

static struct {
    uint8_t *in;
    float *out;
    size_t in_cap, out_cap;
} dev;

static int cuda_fail(cudaError_t e, const char *what, char *why, size_t cap) {
    cudaGetLastError(); /* clears it, unless it is sticky */
    if (why && cap)
        snprintf(why, cap, "%s: CUDA error %d (%s)", what, (int)e, cudaGetErrorString(e));
    switch (e) {
    case cudaErrorMemoryAllocation:
        return -ENOMEM;
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
    case cudaErrorInitializationError:
    case cudaErrorInvalidDevice:
        return -ENODEV;
    case cudaErrorInvalidValue:
        return -EINVAL;
    default:
        return -EIO;
    }
}

/* Grows a device buffer to at least want bytes. */
static cudaError_t reserve(void **buf, size_t *cap, size_t want) {
    if (*cap >= want)
        return cudaSuccess;
    if (*buf)
        cudaFree(*buf);
    *buf = NULL;
    *cap = 0;
    cudaError_t e = cudaMalloc(buf, want);
    if (e == cudaSuccess)
        *cap = want;
    return e;
}

extern "C" int preprocess_gpu_count(void) {
    static int count = -1;
    if (count < 0) {
        int n = 0;
        if (cudaGetDeviceCount(&n) != cudaSuccess) {
            cudaGetLastError();
            n = 0;
        }
        count = n;
    }
    return count;
}

extern "C" int preprocess_gpu(const preprocess_params *p, const uint8_t *frames, float *out,
                              char *why, size_t cap) {
    if (!p || !frames || !out || p->n == 0 || p->h == 0 || p->w == 0 || p->size == 0) {
        if (why && cap)
            snprintf(why, cap, "nothing to preprocess");
        return -EINVAL;
    }
    for (int c = 0; c < 3; c++)
        if (!(p->std[c] != 0.0f)) {
            if (why && cap)
                snprintf(why, cap, "a std of 0");
            return -EINVAL;
        }
    if (preprocess_gpu_count() <= 0) {
        if (why && cap)
            snprintf(why, cap, "no CUDA device");
        return -ENODEV;
    }
    const size_t in_bytes = (size_t)p->n * p->h * p->w * 3;
    const size_t pixels = (size_t)p->n * p->size * p->size;
    const size_t out_bytes = pixels * 3 * sizeof(float);
    cudaError_t e = reserve((void **)&dev.in, &dev.in_cap, in_bytes);
    if (e != cudaSuccess)
        return cuda_fail(e, "cudaMalloc (frames)", why, cap);
    if ((e = reserve((void **)&dev.out, &dev.out_cap, out_bytes)) != cudaSuccess)
        return cuda_fail(e, "cudaMalloc (tensor)", why, cap);
    if ((e = cudaMemcpy(dev.in, frames, in_bytes, cudaMemcpyHostToDevice)) != cudaSuccess)
        return cuda_fail(e, "cudaMemcpy to the device", why, cap);
    const unsigned threads = 256;
    const size_t blocks = (pixels + threads - 1) / threads;
    if (blocks > 0x7fffffffu) {
        if (why && cap)
            snprintf(why, cap, "too many pixels for one launch");
        return -EINVAL;
    }
    preprocess_kernel<<<(unsigned)blocks, threads>>>(dev.in, dev.out, *p);
    if ((e = cudaGetLastError()) != cudaSuccess)
        return cuda_fail(e, "kernel launch", why, cap);
    if ((e = cudaMemcpy(out, dev.out, out_bytes, cudaMemcpyDeviceToHost)) != cudaSuccess)
        return cuda_fail(e, "cudaMemcpy from the device", why, cap);
    return 0;
}
