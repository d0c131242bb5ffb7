/*
 * gpu.h - the CUDA glue of the store, internal. Never installed.
 *
 * libcudart is loaded with dlopen() on first use and never linked, so that
 * reel builds without the CUDA toolkit and runs without a GPU or a driver:
 * every function here returns -ENODEV when there is no usable GPU (after
 * checking its arguments), and never crashes.
 *
 * A device tensor is a store object whose data is one reel__gpu_record (the
 * layout below, native byte order: every process of a store runs on the same
 * machine) and whose metadata is a reel_meta of kind REEL_META_TENSOR with
 * format "cuda:<PCI bus ID>". The record comes from another process, so
 * reel__gpu_record_check() validates all of it before anything is used.
 */
#ifndef REEL_GPU_H
#define REEL_GPU_H

#include "reel/store.h"

#include <stddef.h>
#include <stdint.h>

#ifndef REEL_INTERNAL
#define REEL_INTERNAL __attribute__((visibility("default")))
#endif

#define REEL__GPU_RECORD_MAGIC    "REELCUDA" /* 8 bytes, no NUL */
#define REEL__GPU_RECORD_VERSION  1u
#define REEL__GPU_IPC_HANDLE_SIZE 64   /* sizeof(cudaIpcMemHandle_t) */
#define REEL__GPU_BUS_ID_MAX      32   /* "0000:3B:00.0" and a NUL fit with room */
#define REEL__GPU_MAX_DEVICES     1024 /* a device ordinal in a record is below this */

/* The data of a device-tensor object. */
typedef struct reel__gpu_record {
    char magic[8];        /* REEL__GPU_RECORD_MAGIC */
    uint32_t version;     /* REEL__GPU_RECORD_VERSION */
    uint32_t record_size; /* sizeof(reel__gpu_record) */
    uint64_t size;        /* tensor bytes, > 0 */
    uint64_t offset;      /* of the tensor from the start of the exported allocation */
    uint64_t alloc_size;  /* of the exported allocation; 0 if the exporter could not tell */
    int32_t device;       /* the exporter's ordinal; ordinals differ between processes */
    int32_t exporter_pid;
    uint64_t exporter_nonce;                   /* random per process image */
    uint64_t exporter_ptr;                     /* the tensor's address in the exporter */
    char bus_id[REEL__GPU_BUS_ID_MAX];         /* PCI bus ID, NUL-terminated: names the GPU */
    uint8_t handle[REEL__GPU_IPC_HANDLE_SIZE]; /* cudaIpcMemHandle_t of the allocation */
    uint64_t reserved[4];                      /* zero */
} reel__gpu_record;

_Static_assert(sizeof(reel__gpu_record) == 192, "the record's layout is part of the store format");

/* Validates the object behind v as a device tensor: its metadata must be reel
 * metadata of kind REEL_META_TENSOR with a "cuda:" format, its data exactly
 * one well-formed record whose bus ID matches the format, and dtype x shape
 * must equal the record's size. Copies the record out of shared memory before
 * checking it. Calls no CUDA function.
 *   rec, meta: out; filled on success.
 * Errors: REEL_EBADMETA (not a device tensor, or dtype and shape disagree with
 * the size), -EBADMSG (a malformed record); reel_last_error() says what. */
REEL_INTERNAL int reel__gpu_record_check(const reel_view *v, reel__gpu_record *rec,
                                         reel_meta *meta);

/* Pins [base, base + len) for every CUDA context (cudaHostRegisterPortable).
 * Errors: -EINVAL, -ENODEV, -EEXIST (base already registered here), -ENOMEM,
 * -EIO. */
REEL_INTERNAL int reel__gpu_register(void *base, size_t len);

/* Unpins a range pinned by reel__gpu_register(). Does nothing - and loads no
 * CUDA - if base is not registered by this process. */
REEL_INTERNAL void reel__gpu_unregister(void *base);

/* 1 if base was registered by reel__gpu_register() and not unregistered. */
REEL_INTERNAL int reel__gpu_registered(const void *base);

/* The store's hook: undoes reel_store_gpu_pin() (no-op when not pinned). Call
 * it before the arena is unmapped. */
REEL_INTERNAL void reel__gpu_store_unpin(reel_store *s);

/* The cudaHostGetFlags() of a host pointer: *flags has 0x1 (portable) for
 * memory pinned by reel__gpu_register(). Errors: -ENODEV, -ENOENT (not pinned
 * memory), -EINVAL. */
REEL_INTERNAL int reel__gpu_host_flags(const void *p, unsigned int *flags);

/* Times iterations host-to-device copies of len bytes from host into a fresh
 * device buffer on the current device (after one untimed copy), and sets
 * *gbps to 10^9 bytes per second. Errors: -EINVAL, -ENODEV, -ENOMEM, -EIO. */
REEL_INTERNAL int reel__gpu_h2d_bandwidth(const void *host, size_t len, int iterations,
                                          double *gbps);

/* cudaMalloc on a device (the current device is left as it was), cudaFree,
 * cudaMemcpy with the direction inferred from the pointers (cudaMemcpyDefault),
 * cudaMallocHost / cudaFreeHost (page-locked host memory: the reference for
 * pinned bandwidth). For the tests and reel-bench. Errors: -EINVAL, -ENODEV,
 * -ENOMEM, -EIO. */
REEL_INTERNAL int reel__gpu_malloc(int device, size_t len, void **out);
REEL_INTERNAL int reel__gpu_free(void *dev_ptr);
REEL_INTERNAL int reel__gpu_copy(void *dst, const void *src, size_t len);
REEL_INTERNAL int reel__gpu_host_alloc(size_t len, void **out);
REEL_INTERNAL int reel__gpu_host_free(void *p);

/* The name of a device ("NVIDIA H100 80GB HBM3") into buf. Errors: -EINVAL,
 * -ENODEV, -ENOTSUP (the driver library lacks the call). */
REEL_INTERNAL int reel__gpu_device_name(int device, char *buf, size_t cap);

#endif /* REEL_GPU_H */
