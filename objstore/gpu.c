/*
 * The CUDA glue: pinned store memory, device tensors shared between processes
 * through CUDA IPC, and a host-to-device bandwidth probe.
 *
 * libcudart is never linked: the first call that needs it dlopen()s it and
 * looks up the few functions below, whose prototypes are written out here
 * with plain C types so that no CUDA header is needed to build. The types are
 * those of the ABI: cudaError_t, cudaMemcpyKind and CUresult are int enums,
 * cudaIpcMemHandle_t is 64 opaque bytes passed by value, CUdeviceptr is an
 * unsigned long long, CUcontext and CUdevice a pointer and an int. libcuda
 * (the driver) is opened as well, optionally, for what the runtime cannot
 * tell: where an allocation starts and ends, whether legacy IPC can share it,
 * and the calling thread's exact context, so that it can be restored.
 *
 * Nothing here loads CUDA in a process that has not asked for the GPU: the
 * unpin and close paths look only at what this process registered or opened.
 */
#include "gpu.h"
#include "store_internal.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* ---- the CUDA ABI, as much of it as reel uses ----------------------------- */

typedef int cuda_error_t; /* cudaError_t */
typedef int cu_result_t;  /* CUresult */
typedef struct cuda_ipc_mem_handle {
    char reserved[REEL__GPU_IPC_HANDLE_SIZE];
} cuda_ipc_mem_handle; /* cudaIpcMemHandle_t */

_Static_assert(sizeof(cuda_ipc_mem_handle) == 64, "cudaIpcMemHandle_t is 64 bytes");

enum {
    CUDA_SUCCESS_ = 0,
    CUDA_ERROR_INVALID_VALUE_ = 1,
    CUDA_ERROR_MEMORY_ALLOCATION_ = 2,
    CUDA_ERROR_INITIALIZATION_ = 3,
    CUDA_ERROR_STUB_LIBRARY_ = 34,
    CUDA_ERROR_INSUFFICIENT_DRIVER_ = 35,
    CUDA_ERROR_NO_DEVICE_ = 100,
    CUDA_ERROR_INVALID_DEVICE_ = 101,
    CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED_ = 712,
    CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED_ = 713,
    CUDA_ERROR_NOT_SUPPORTED_ = 801,
};

#define CUDA_HOST_REGISTER_PORTABLE 0x01u /* cudaHostRegisterPortable */
#define CUDA_IPC_LAZY_PEER_ACCESS   0x01u /* cudaIpcMemLazyEnablePeerAccess */
#define CUDA_MEMCPY_HOST_TO_DEVICE  1     /* cudaMemcpyHostToDevice */
#define CUDA_MEMCPY_DEFAULT         4     /* cudaMemcpyDefault */

/* CUpointer_attribute and CUmemorytype values (cuda.h). Each attribute is
 * read into a zeroed 8-byte word: the driver writes an int, a bool, a size_t
 * or a CUdeviceptr there, all little-endian on the machines CUDA runs on. */
#define CU_POINTER_ATTRIBUTE_MEMORY_TYPE      2
#define CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL   9
#define CU_POINTER_ATTRIBUTE_IS_LEGACY_IPC    10
#define CU_POINTER_ATTRIBUTE_RANGE_START_ADDR 11
#define CU_POINTER_ATTRIBUTE_RANGE_SIZE       12
#define CU_MEMORYTYPE_DEVICE                  2

static struct {
    int count; /* devices; 0: no GPU */
    uint64_t nonce;
    char why[192]; /* why there is no GPU */

    cuda_error_t (*GetDeviceCount)(int *);
    const char *(*GetErrorString)(cuda_error_t);
    cuda_error_t (*GetLastError)(void);
    cuda_error_t (*GetDevice)(int *);
    cuda_error_t (*SetDevice)(int);
    cuda_error_t (*HostRegister)(void *, size_t, unsigned int);
    cuda_error_t (*HostUnregister)(void *);
    cuda_error_t (*HostGetFlags)(unsigned int *, void *);
    cuda_error_t (*IpcGetMemHandle)(cuda_ipc_mem_handle *, void *);
    cuda_error_t (*IpcOpenMemHandle)(void **, cuda_ipc_mem_handle, unsigned int);
    cuda_error_t (*IpcCloseMemHandle)(void *);
    cuda_error_t (*Malloc)(void **, size_t);
    cuda_error_t (*Free)(void *);
    cuda_error_t (*MallocHost)(void **, size_t);
    cuda_error_t (*FreeHost)(void *);
    cuda_error_t (*Memcpy)(void *, const void *, size_t, int);
    cuda_error_t (*DeviceSynchronize)(void);
    cuda_error_t (*DeviceGetPCIBusId)(char *, int, int);
    cuda_error_t (*DeviceGetByPCIBusId)(int *, const char *);

    /* libcuda, optional */
    cu_result_t (*cuPointerGetAttribute)(void *, int, unsigned long long);
    cu_result_t (*cuCtxGetCurrent)(void **);
    cu_result_t (*cuCtxSetCurrent)(void *);
    cu_result_t (*cuDeviceGet)(int *, int);
    cu_result_t (*cuDeviceGetName)(char *, int, int);
} cu;

static pthread_once_t cu_once = PTHREAD_ONCE_INIT;

#define CU_LOAD(lib, field, name) (cu.field = (__typeof__(cu.field))dlsym((lib), (name)))

static void *open_cudart(void) {
    /* Versioned names first: their ABI is the one written out above. */
    const char *names[] = {
        secure_getenv("REEL_CUDART"), "libcudart.so.13", "libcudart.so.12",
        "libcudart.so.11.0",          "libcudart.so",    "/usr/local/cuda/lib64/libcudart.so",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (!names[i] || !names[i][0])
            continue;
        void *lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        if (lib)
            return lib;
    }
    (void)dlerror();
    return NULL;
}

static void cu_load(void) {
    void *rt = open_cudart();
    if (!rt) {
        snprintf(cu.why, sizeof cu.why, "no CUDA runtime library (libcudart) could be loaded");
        return;
    }
    const char *missing = NULL;
#define CU_NEED(field, name)                                                                       \
    if (!CU_LOAD(rt, field, name) && !missing)                                                     \
    missing = name
    CU_NEED(GetDeviceCount, "cudaGetDeviceCount");
    CU_NEED(GetErrorString, "cudaGetErrorString");
    CU_NEED(GetLastError, "cudaGetLastError");
    CU_NEED(GetDevice, "cudaGetDevice");
    CU_NEED(SetDevice, "cudaSetDevice");
    CU_NEED(HostRegister, "cudaHostRegister");
    CU_NEED(HostUnregister, "cudaHostUnregister");
    CU_NEED(HostGetFlags, "cudaHostGetFlags");
    CU_NEED(IpcGetMemHandle, "cudaIpcGetMemHandle");
    CU_NEED(IpcOpenMemHandle, "cudaIpcOpenMemHandle");
    CU_NEED(IpcCloseMemHandle, "cudaIpcCloseMemHandle");
    CU_NEED(Malloc, "cudaMalloc");
    CU_NEED(Free, "cudaFree");
    CU_NEED(MallocHost, "cudaMallocHost");
    CU_NEED(FreeHost, "cudaFreeHost");
    CU_NEED(Memcpy, "cudaMemcpy");
    CU_NEED(DeviceSynchronize, "cudaDeviceSynchronize");
    CU_NEED(DeviceGetPCIBusId, "cudaDeviceGetPCIBusId");
    CU_NEED(DeviceGetByPCIBusId, "cudaDeviceGetByPCIBusId");
#undef CU_NEED
    if (missing) {
        snprintf(cu.why, sizeof cu.why, "the CUDA runtime library has no %s", missing);
        /* The library stays loaded: nothing in it has run, and unloading
         * libraries that may have started threads is never safe. */
        return;
    }
    int n = 0;
    cuda_error_t e = cu.GetDeviceCount(&n);
    if (e != CUDA_SUCCESS_ || n <= 0) {
        if (e != CUDA_SUCCESS_)
            snprintf(cu.why, sizeof cu.why, "cudaGetDeviceCount: CUDA error %d (%s)", e,
                     cu.GetErrorString(e));
        else
            snprintf(cu.why, sizeof cu.why, "CUDA sees no device");
        cu.GetLastError();
        return;
    }
    /* The runtime has loaded the driver by now; this only takes a handle. */
    void *drv = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
    if (!drv)
        drv = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (drv) {
        CU_LOAD(drv, cuPointerGetAttribute, "cuPointerGetAttribute");
        CU_LOAD(drv, cuDeviceGet, "cuDeviceGet");
        CU_LOAD(drv, cuDeviceGetName, "cuDeviceGetName");
        if (!CU_LOAD(drv, cuCtxGetCurrent, "cuCtxGetCurrent") ||
            !CU_LOAD(drv, cuCtxSetCurrent, "cuCtxSetCurrent"))
            cu.cuCtxGetCurrent = NULL, cu.cuCtxSetCurrent = NULL;
    }
    (void)dlerror();
    /* Tells a same-process open from one in another image that reuses the pid. */
    if (getrandom(&cu.nonce, sizeof cu.nonce, 0) != (ssize_t)sizeof cu.nonce)
        cu.nonce = reel__now_ns(CLOCK_MONOTONIC) ^ ((uint64_t)getpid() << 32);
    cu.count = n;
}

static int gpu_ready(void) {
    pthread_once(&cu_once, cu_load);
    return cu.count > 0;
}

REEL_API int reel_gpu_count(void) {
    pthread_once(&cu_once, cu_load);
    return cu.count;
}

static int no_gpu(void) {
    return reel__fail(-ENODEV, "no GPU: %s", cu.why);
}

static int cuda_errno(cuda_error_t e) {
    switch (e) {
    case CUDA_ERROR_INVALID_VALUE_:
        return -EINVAL;
    case CUDA_ERROR_MEMORY_ALLOCATION_:
        return -ENOMEM;
    case CUDA_ERROR_INITIALIZATION_:
    case CUDA_ERROR_STUB_LIBRARY_:
    case CUDA_ERROR_INSUFFICIENT_DRIVER_:
    case CUDA_ERROR_NO_DEVICE_:
    case CUDA_ERROR_INVALID_DEVICE_:
        return -ENODEV;
    case CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED_:
        return -EEXIST;
    case CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED_:
        return -ENOENT;
    case CUDA_ERROR_NOT_SUPPORTED_:
        return -ENOTSUP;
    default:
        return -EIO;
    }
}

/* Turns a CUDA error into a negative errno and a detail sentence, and clears
 * it from the runtime's per-thread last error, so that the caller's own
 * cudaGetLastError() checks never see a failure of reel's. */
static int cuda_fail(cuda_error_t e, const char *what) {
    cu.GetLastError();
    return reel__fail(cuda_errno(e), "%s: CUDA error %d (%s)", what, e, cu.GetErrorString(e));
}

/* Reads one pointer attribute; returns 0 or -1 (driver missing, or an error). */
static int pointer_attr(const void *p, int attr, uint64_t *out) {
    uint64_t v = 0;
    if (!cu.cuPointerGetAttribute ||
        cu.cuPointerGetAttribute(&v, attr, (unsigned long long)(uintptr_t)p) != 0)
        return -1;
    *out = v;
    return 0;
}

/* Makes device current on the calling thread and puts back exactly what was
 * current before (a context, or none: restoring an ordinal instead would
 * create a context on a device the thread never used). */
typedef struct device_guard {
    int switched, have_ctx, prev_device;
    void *prev_ctx;
} device_guard;

static int guard_enter(device_guard *g, int device) {
    memset(g, 0, sizeof *g);
    int cur = -1;
    if (cu.GetDevice(&cur) == CUDA_SUCCESS_ && cur == device)
        return 0;
    cu.GetLastError();
    if (cu.cuCtxGetCurrent && cu.cuCtxGetCurrent(&g->prev_ctx) == 0)
        g->have_ctx = 1;
    g->prev_device = cur;
    cuda_error_t e = cu.SetDevice(device);
    if (e != CUDA_SUCCESS_)
        return cuda_fail(e, "cudaSetDevice");
    g->switched = 1;
    return 0;
}

static void guard_leave(device_guard *g) {
    if (!g->switched)
        return;
    if (g->have_ctx)
        cu.cuCtxSetCurrent(g->prev_ctx);
    else if (g->prev_device >= 0)
        cu.SetDevice(g->prev_device);
    cu.GetLastError();
}

/* ---- pinned host memory ---------------------------------------------------- */

/* What this process registered: unregistering looks here first, so that a
 * process that never pinned anything never loads CUDA to unpin. */
typedef struct pinned_range {
    struct pinned_range *next;
    void *base;
    pid_t pid; /* a child forked later inherits the entry, not the pinning */
} pinned_range;

static pthread_mutex_t pinned_lock = PTHREAD_MUTEX_INITIALIZER;
static pinned_range *pinned;

static pinned_range **pinned_find(const void *base) {
    pinned_range **pp = &pinned;
    while (*pp && (*pp)->base != base)
        pp = &(*pp)->next;
    return pp;
}

REEL_INTERNAL int reel__gpu_register(void *base, size_t len) {
    if (!base || len == 0)
        return -EINVAL;
    if (!gpu_ready())
        return no_gpu();
    pinned_range *r = malloc(sizeof *r);
    if (!r)
        return -ENOMEM;
    /* Held across the registration (rare, slow) so two threads cannot both
     * register one range. Portable: pinned for every context, so a worker that
     * switches devices or a library that makes its own context still copies at
     * pinned speed. Not Mapped: kernels read frames after a copy, and mapping
     * the whole arena into every device's address space would cost device page
     * tables in proportion to the arena. */
    pthread_mutex_lock(&pinned_lock);
    int rc = 0;
    if (*pinned_find(base)) {
        rc = reel__fail(-EEXIST, "%p is already pinned by this process", base);
    } else {
        cuda_error_t e = cu.HostRegister(base, len, CUDA_HOST_REGISTER_PORTABLE);
        if (e != CUDA_SUCCESS_) {
            rc = cuda_fail(e, "cudaHostRegister");
        } else {
            r->base = base;
            r->pid = getpid();
            r->next = pinned;
            pinned = r;
            r = NULL;
        }
    }
    pthread_mutex_unlock(&pinned_lock);
    free(r);
    return rc;
}

REEL_INTERNAL void reel__gpu_unregister(void *base) {
    if (!base)
        return;
    pthread_mutex_lock(&pinned_lock);
    pinned_range **pp = pinned_find(base);
    pinned_range *r = *pp;
    if (r) {
        *pp = r->next;
        /* Registered, so CUDA is loaded. A failure leaves nothing to do: the
         * pages are unpinned at exit at the latest. */
        if (r->pid == getpid() && cu.HostUnregister(base) != CUDA_SUCCESS_)
            cu.GetLastError();
    }
    pthread_mutex_unlock(&pinned_lock);
    free(r);
}

REEL_INTERNAL int reel__gpu_registered(const void *base) {
    pthread_mutex_lock(&pinned_lock);
    pinned_range *r = base ? *pinned_find(base) : NULL;
    int found = r && r->pid == getpid();
    pthread_mutex_unlock(&pinned_lock);
    return found;
}

REEL_API int reel_store_gpu_pin(reel_store *s) {
    REEL_NEED(s, "store");
    reel__clear_error();
    return reel__gpu_register(s->arena, (size_t)s->lay.capacity);
}

REEL_API int reel_store_gpu_pinned(reel_store *s) {
    REEL_NEED_OR(s, "store", 0);
    return s && reel__gpu_registered(s->arena);
}

REEL_INTERNAL void reel__gpu_store_unpin(reel_store *s) {
    if (s && s->arena)
        reel__gpu_unregister(s->arena);
}

REEL_INTERNAL int reel__gpu_host_flags(const void *p, unsigned int *flags) {
    if (!p || !flags)
        return -EINVAL;
    if (!gpu_ready())
        return no_gpu();
    cuda_error_t e = cu.HostGetFlags(flags, (void *)p);
    return e == CUDA_SUCCESS_ ? 0 : cuda_fail(e, "cudaHostGetFlags");
}

/* ---- copies, allocations, bandwidth ----------------------------------------- */

REEL_INTERNAL int reel__gpu_malloc(int device, size_t len, void **out) {
    if (!out || len == 0 || device < 0)
        return -EINVAL;
    *out = NULL;
    if (!gpu_ready())
        return no_gpu();
    if (device >= cu.count)
        return reel__fail(-ENODEV, "no CUDA device %d: this process sees %d", device, cu.count);
    device_guard g;
    int rc = guard_enter(&g, device);
    if (rc == 0) {
        cuda_error_t e = cu.Malloc(out, len);
        if (e != CUDA_SUCCESS_) {
            *out = NULL;
            rc = cuda_fail(e, "cudaMalloc");
        }
    }
    guard_leave(&g);
    return rc;
}

REEL_INTERNAL int reel__gpu_free(void *dev_ptr) {
    if (!dev_ptr)
        return 0;
    if (!gpu_ready())
        return no_gpu();
    cuda_error_t e = cu.Free(dev_ptr);
    return e == CUDA_SUCCESS_ ? 0 : cuda_fail(e, "cudaFree");
}

REEL_INTERNAL int reel__gpu_copy(void *dst, const void *src, size_t len) {
    if (!dst || !src)
        return -EINVAL;
    if (!gpu_ready())
        return no_gpu();
    if (len == 0)
        return 0;
    cuda_error_t e = cu.Memcpy(dst, src, len, CUDA_MEMCPY_DEFAULT);
    return e == CUDA_SUCCESS_ ? 0 : cuda_fail(e, "cudaMemcpy");
}

REEL_INTERNAL int reel__gpu_host_alloc(size_t len, void **out) {
    if (!out || len == 0)
        return -EINVAL;
    *out = NULL;
    if (!gpu_ready())
        return no_gpu();
    cuda_error_t e = cu.MallocHost(out, len);
    if (e != CUDA_SUCCESS_) {
        *out = NULL;
        return cuda_fail(e, "cudaMallocHost");
    }
    return 0;
}

REEL_INTERNAL int reel__gpu_host_free(void *p) {
    if (!p)
        return 0;
    if (!gpu_ready())
        return no_gpu();
    cuda_error_t e = cu.FreeHost(p);
    return e == CUDA_SUCCESS_ ? 0 : cuda_fail(e, "cudaFreeHost");
}

REEL_INTERNAL int reel__gpu_h2d_bandwidth(const void *host, size_t len, int iterations,
                                          double *gbps) {
    if (!host || len == 0 || iterations < 1 || !gbps)
        return -EINVAL;
    if (!gpu_ready())
        return no_gpu();
    void *dev = NULL;
    cuda_error_t e = cu.Malloc(&dev, len);
    if (e != CUDA_SUCCESS_)
        return cuda_fail(e, "cudaMalloc");
    int rc = 0;
    /* The untimed copy takes the context set-up and any first-touch cost. */
    e = cu.Memcpy(dev, host, len, CUDA_MEMCPY_HOST_TO_DEVICE);
    uint64_t t0 = reel__now_ns(CLOCK_MONOTONIC);
    for (int i = 0; i < iterations && e == CUDA_SUCCESS_; i++)
        e = cu.Memcpy(dev, host, len, CUDA_MEMCPY_HOST_TO_DEVICE);
    /* A pageable copy may return before its last DMA lands. */
    if (e == CUDA_SUCCESS_)
        e = cu.DeviceSynchronize();
    uint64_t t1 = reel__now_ns(CLOCK_MONOTONIC);
    if (e != CUDA_SUCCESS_)
        rc = cuda_fail(e, "host-to-device cudaMemcpy");
    else
        *gbps = (double)len * iterations / ((double)(t1 - t0 ? t1 - t0 : 1));
    cu.Free(dev);
    return rc;
}

REEL_INTERNAL int reel__gpu_device_name(int device, char *buf, size_t cap) {
    if (!buf || cap == 0 || device < 0)
        return -EINVAL;
    buf[0] = '\0';
    if (!gpu_ready())
        return no_gpu();
    if (device >= cu.count)
        return reel__fail(-ENODEV, "no CUDA device %d: this process sees %d", device, cu.count);
    if (!cu.cuDeviceGet || !cu.cuDeviceGetName)
        return reel__fail(-ENOTSUP, "the CUDA driver library does not name devices");
    int dev = 0;
    int len = cap > 256 ? 256 : (int)cap;
    if (cu.cuDeviceGet(&dev, device) != 0 || cu.cuDeviceGetName(buf, len, dev) != 0) {
        buf[0] = '\0';
        return reel__fail(-EIO, "cannot name CUDA device %d", device);
    }
    buf[cap - 1] = '\0';
    return 0;
}

/* ---- device tensors: the record ------------------------------------------- */

static const uint8_t dtype_bytes[REEL_DTYPE_COUNT_] = {
    [REEL_DTYPE_NONE] = 0, [REEL_DTYPE_U8] = 1,  [REEL_DTYPE_I8] = 1,  [REEL_DTYPE_U16] = 2,
    [REEL_DTYPE_I16] = 2,  [REEL_DTYPE_I32] = 4, [REEL_DTYPE_I64] = 8, [REEL_DTYPE_F16] = 2,
    [REEL_DTYPE_F32] = 4,  [REEL_DTYPE_F64] = 8,
};

/* Bytes that dtype x shape describe into *bytes; 0 if they describe nothing
 * (dtype none) or overflow. Returns 1 when there is a figure to compare. */
static int meta_bytes(const reel_meta *m, uint64_t *bytes) {
    if (m->dtype == REEL_DTYPE_NONE || m->dtype >= REEL_DTYPE_COUNT_ ||
        m->ndim > REEL_META_MAX_DIMS)
        return 0;
    uint64_t n = dtype_bytes[m->dtype];
    for (uint32_t d = 0; d < m->ndim; d++)
        if (__builtin_mul_overflow(n, m->shape[d], &n))
            n = UINT64_MAX; /* cannot equal a size that fits in memory */
    *bytes = n;
    return 1;
}

/* A PCI bus ID ("0000:3B:00.0") short enough to follow "cuda:" in a
 * metadata format. */
#define BUS_ID_LEN_MAX (REEL_META_NAME_MAX - 1 - (sizeof REEL_META_FORMAT_CUDA - 1))

static int bus_id_ok(const char *bus) {
    size_t n = 0;
    for (; n < REEL__GPU_BUS_ID_MAX && bus[n]; n++) {
        char c = bus[n];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
              c == ':' || c == '.'))
            return 0;
    }
    return n > 0 && n <= BUS_ID_LEN_MAX;
}

REEL_INTERNAL int reel__gpu_record_check(const reel_view *v, reel__gpu_record *out,
                                         reel_meta *meta_out) {
    if (!v || !out || !meta_out)
        return -EINVAL;
    char hex[REEL_ID_HEX_LEN + 1];
    reel_id_to_hex(&v->id, hex);
    reel_meta m;
    if (!v->meta || reel_meta_decode(v->meta, v->meta_size, &m) != 0)
        return reel__fail(REEL_EBADMETA, "object %s: no reel metadata, so not a device tensor",
                          hex);
    if (m.kind != REEL_META_TENSOR ||
        strncmp(m.format, REEL_META_FORMAT_CUDA, strlen(REEL_META_FORMAT_CUDA)) != 0)
        return reel__fail(REEL_EBADMETA,
                          "object %s is not a device tensor (metadata kind %u, format \"%s\")", hex,
                          m.kind, m.format);
    if (v->size != sizeof(reel__gpu_record) || !v->data)
        return reel__fail(-EBADMSG, "device tensor %s: record of %llu bytes, expected %zu", hex,
                          (unsigned long long)v->size, sizeof(reel__gpu_record));
    /* One copy out of shared memory, then every check reads the copy. */
    reel__gpu_record r;
    memcpy(&r, v->data, sizeof r);
    if (memcmp(r.magic, REEL__GPU_RECORD_MAGIC, sizeof r.magic) != 0)
        return reel__fail(-EBADMSG, "device tensor %s: the record has no magic", hex);
    if (r.version != REEL__GPU_RECORD_VERSION || r.record_size != sizeof r)
        return reel__fail(-EBADMSG,
                          "device tensor %s: record version %u of %u bytes, this build reads "
                          "version %u of %zu bytes",
                          hex, r.version, r.record_size, REEL__GPU_RECORD_VERSION, sizeof r);
    if (r.device < 0 || r.device >= REEL__GPU_MAX_DEVICES)
        return reel__fail(-EBADMSG, "device tensor %s: device index %d out of range", hex,
                          (int)r.device);
    if (r.exporter_pid <= 0)
        return reel__fail(-EBADMSG, "device tensor %s: exporter pid %d", hex, (int)r.exporter_pid);
    if (!bus_id_ok(r.bus_id))
        return reel__fail(-EBADMSG, "device tensor %s: malformed PCI bus ID", hex);
    if (strcmp(m.format + strlen(REEL_META_FORMAT_CUDA), r.bus_id) != 0)
        return reel__fail(-EBADMSG,
                          "device tensor %s: metadata says \"%s\", the record says bus ID %s", hex,
                          m.format, r.bus_id);
    uint64_t end;
    if (r.size == 0 || __builtin_add_overflow(r.offset, r.size, &end) ||
        (r.alloc_size ? end > r.alloc_size : r.offset != 0))
        return reel__fail(-EBADMSG,
                          "device tensor %s: %llu bytes at offset %llu do not fit an allocation "
                          "of %llu bytes",
                          hex, (unsigned long long)r.size, (unsigned long long)r.offset,
                          (unsigned long long)r.alloc_size);
    for (size_t i = 0; i < sizeof r.reserved / sizeof r.reserved[0]; i++)
        if (r.reserved[i])
            return reel__fail(-EBADMSG, "device tensor %s: reserved record fields are set", hex);
    uint64_t want;
    if (meta_bytes(&m, &want) && want != r.size)
        return reel__fail(REEL_EBADMETA,
                          "device tensor %s: dtype %s and shape describe %llu bytes, the record "
                          "%llu",
                          hex, reel_dtype_name(m.dtype), (unsigned long long)want,
                          (unsigned long long)r.size);
    *out = r;
    *meta_out = m;
    return 0;
}

/* ---- device tensors: put ---------------------------------------------------- */

REEL_API int reel_gpu_put(reel_store *s, const reel_id *id, int device, const void *dev_ptr,
                          uint64_t size, const reel_meta *meta, int timeout_ms) {
    REEL_NEED(s, "store");
    REEL_NEED(id, "id");
    REEL_NEED(dev_ptr, "dev_ptr");
    if (size == 0 || device < 0)
        return -EINVAL;
    reel__clear_error();
    reel_meta m;
    if (meta) {
        m = *meta;
    } else {
        memset(&m, 0, sizeof m);
        m.kind = REEL_META_TENSOR;
        m.dtype = REEL_DTYPE_U8;
        m.ndim = 1;
        m.shape[0] = size;
    }
    if (m.kind != REEL_META_TENSOR)
        return reel__fail(-EINVAL, "a device tensor's metadata is of kind REEL_META_TENSOR");
    if (m.dtype >= REEL_DTYPE_COUNT_ || m.ndim > REEL_META_MAX_DIMS)
        return reel__fail(-EINVAL, "dtype %u or ndim %u out of range", m.dtype, m.ndim);
    if (!memchr(m.format, '\0', sizeof m.format) ||
        (m.format[0] &&
         strncmp(m.format, REEL_META_FORMAT_CUDA, strlen(REEL_META_FORMAT_CUDA)) != 0))
        return reel__fail(-EINVAL, "a device tensor's metadata format is \"\" or \"cuda:...\"");
    uint64_t want;
    if (meta_bytes(&m, &want) && want != size)
        return reel__fail(-EINVAL, "dtype %s and shape describe %llu bytes, size is %llu",
                          reel_dtype_name(m.dtype), (unsigned long long)want,
                          (unsigned long long)size);
    if (!gpu_ready())
        return no_gpu();
    if (device >= cu.count)
        return reel__fail(-ENODEV, "no CUDA device %d: this process sees %d", device, cu.count);

    reel__gpu_record r;
    memset(&r, 0, sizeof r);
    memcpy(r.magic, REEL__GPU_RECORD_MAGIC, sizeof r.magic);
    r.version = REEL__GPU_RECORD_VERSION;
    r.record_size = sizeof r;
    r.size = size;
    r.device = device;
    r.exporter_pid = (int32_t)getpid();
    r.exporter_nonce = cu.nonce;
    r.exporter_ptr = (uint64_t)(uintptr_t)dev_ptr;

    device_guard g;
    int rc = guard_enter(&g, device);
    if (rc)
        goto out;
    /* The IPC handle names a whole allocation: find where dev_ptr's starts so
     * that a tensor inside a larger buffer (a pool, a batch) opens at the
     * right place. Without the driver's answer, dev_ptr must be the start. */
    void *base = (void *)dev_ptr;
    uint64_t type, ordinal, start, range, legacy;
    if (pointer_attr(dev_ptr, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, &type) == 0) {
        if ((uint32_t)type != CU_MEMORYTYPE_DEVICE) {
            rc = reel__fail(-EINVAL, "%p is not device memory", dev_ptr);
            goto out;
        }
        if (pointer_attr(dev_ptr, CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL, &ordinal) == 0 &&
            (int32_t)ordinal != device) {
            rc = reel__fail(-EINVAL, "%p is memory of device %d, not %d", dev_ptr,
                            (int)(int32_t)ordinal, device);
            goto out;
        }
        if (pointer_attr(dev_ptr, CU_POINTER_ATTRIBUTE_IS_LEGACY_IPC, &legacy) == 0 && !legacy) {
            rc = reel__fail(-ENOTSUP,
                            "%p cannot be shared with CUDA IPC (memory from cudaMallocAsync, "
                            "cuMemCreate or cudaMallocManaged?): allocate it with cudaMalloc",
                            dev_ptr);
            goto out;
        }
        if (pointer_attr(dev_ptr, CU_POINTER_ATTRIBUTE_RANGE_START_ADDR, &start) == 0 &&
            pointer_attr(dev_ptr, CU_POINTER_ATTRIBUTE_RANGE_SIZE, &range) == 0 &&
            start <= r.exporter_ptr) {
            r.offset = r.exporter_ptr - start;
            r.alloc_size = range;
            base = (void *)(uintptr_t)start;
            if (r.offset > range || size > range - r.offset) {
                rc = reel__fail(-EINVAL,
                                "%llu bytes at %p run past the end of its allocation of %llu",
                                (unsigned long long)size, dev_ptr, (unsigned long long)range);
                goto out;
            }
        }
    } else if (cu.cuPointerGetAttribute) {
        rc = reel__fail(-EINVAL, "%p is not memory CUDA knows", dev_ptr);
        goto out;
    }
    cuda_ipc_mem_handle h;
    cuda_error_t e = cu.IpcGetMemHandle(&h, base);
    if (e != CUDA_SUCCESS_) {
        rc = cuda_fail(e, "cudaIpcGetMemHandle");
        goto out;
    }
    memcpy(r.handle, h.reserved, sizeof r.handle);
    e = cu.DeviceGetPCIBusId(r.bus_id, (int)sizeof r.bus_id - 1, device);
    if (e != CUDA_SUCCESS_) {
        rc = cuda_fail(e, "cudaDeviceGetPCIBusId");
        goto out;
    }
    if (!bus_id_ok(r.bus_id)) {
        rc = reel__fail(-EIO, "CUDA gave device %d a malformed PCI bus ID", device);
        goto out;
    }
out:
    guard_leave(&g);
    if (rc)
        return rc;

    /* bus_id_ok() bounded the ID so that the format holds it. */
    size_t pl = strlen(REEL_META_FORMAT_CUDA);
    memcpy(m.format, REEL_META_FORMAT_CUDA, pl);
    memcpy(m.format + pl, r.bus_id, strlen(r.bus_id) + 1);
    uint8_t mbuf[512];
    size_t mlen;
    if ((rc = reel_meta_encode(&m, mbuf, sizeof mbuf, &mlen)) != 0)
        return reel__fail(-EINVAL, "device tensor metadata out of range");
    reel_id oid = *id;
    return reel_obj_put(s, &oid, &r, sizeof r, mbuf, (uint32_t)mlen, 0, timeout_ms);
}

/* ---- device tensors: open and close ---------------------------------------- */

/* The IPC mappings this process holds, by address, with how many views use
 * each. CUDA counts the opens of one handle in one context itself and returns
 * the same address, so every view opens and closes the handle once; this list
 * only lets reel_gpu_close() tell a view it made from anything else. */
typedef struct ipc_mapping {
    struct ipc_mapping *next;
    void *base;
    uint32_t views;
} ipc_mapping;

static pthread_mutex_t mappings_lock = PTHREAD_MUTEX_INITIALIZER;
static ipc_mapping *mappings;

static void ipc_close(void *base) {
    if (cu.IpcCloseMemHandle(base) != CUDA_SUCCESS_)
        cu.GetLastError();
}

/* Maps rec's allocation on device, checks that the tensor lies inside what
 * was mapped, and sets *base. */
static int mapping_get(const reel__gpu_record *rec, int device, const char *hex, void **base) {
    ipc_mapping *fresh = malloc(sizeof *fresh);
    if (!fresh)
        return -ENOMEM;
    cuda_ipc_mem_handle h;
    memcpy(h.reserved, rec->handle, sizeof h.reserved);
    void *p = NULL;
    uint64_t range = 0;
    device_guard g;
    int rc = guard_enter(&g, device);
    if (rc == 0) {
        cuda_error_t e = cu.IpcOpenMemHandle(&p, h, CUDA_IPC_LAZY_PEER_ACCESS);
        if (e != CUDA_SUCCESS_) {
            rc = cuda_fail(e, "cudaIpcOpenMemHandle");
            if (rc != -ENOMEM && rc != -ENODEV)
                rc = reel__fail(-EIO,
                                "device tensor %s: CUDA cannot map it (CUDA error %d: %s); has "
                                "its exporter freed it or exited?",
                                hex, e, cu.GetErrorString(e));
        } else if (pointer_attr(p, CU_POINTER_ATTRIBUTE_RANGE_SIZE, &range) != 0) {
            range = 0; /* the driver cannot tell: the record's own check stands */
        }
    }
    guard_leave(&g);
    /* The record's range was checked against the record's allocation size;
     * this checks it against what CUDA actually mapped. */
    if (rc == 0 && range && (rec->offset > range || rec->size > range - rec->offset)) {
        ipc_close(p);
        rc = reel__fail(-EBADMSG,
                        "device tensor %s: %llu bytes at offset %llu, but the allocation is "
                        "%llu bytes",
                        hex, (unsigned long long)rec->size, (unsigned long long)rec->offset,
                        (unsigned long long)range);
    }
    if (rc) {
        free(fresh);
        return rc;
    }
    pthread_mutex_lock(&mappings_lock);
    ipc_mapping *mp = mappings;
    while (mp && mp->base != p)
        mp = mp->next;
    if (!mp) {
        mp = fresh;
        fresh = NULL;
        mp->base = p;
        mp->views = 0;
        mp->next = mappings;
        mappings = mp;
    }
    mp->views++;
    pthread_mutex_unlock(&mappings_lock);
    free(fresh);
    *base = p;
    return 0;
}

/* Drops one view of the mapping at base; -EINVAL if this process made none. */
static int mapping_put(void *base) {
    pthread_mutex_lock(&mappings_lock);
    ipc_mapping **pp = &mappings;
    while (*pp && (*pp)->base != base)
        pp = &(*pp)->next;
    ipc_mapping *mp = *pp, *gone = NULL;
    if (mp && --mp->views == 0) {
        *pp = mp->next;
        gone = mp;
    }
    pthread_mutex_unlock(&mappings_lock);
    if (!mp)
        return -EINVAL;
    free(gone);
    ipc_close(base); /* one close per open: CUDA counts them */
    return 0;
}

/* Opens rec in the process that exported it: its own pointer, still valid. */
static int open_own(const reel__gpu_record *rec, const char *hex, void **ptr) {
    void *p = (void *)(uintptr_t)rec->exporter_ptr;
    uint64_t type, range, start;
    if (pointer_attr(p, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, &type) != 0) {
        if (cu.cuPointerGetAttribute)
            return reel__fail(-ESTALE, "device tensor %s: this process has freed its memory", hex);
    } else if ((uint32_t)type != CU_MEMORYTYPE_DEVICE ||
               (pointer_attr(p, CU_POINTER_ATTRIBUTE_RANGE_START_ADDR, &start) == 0 &&
                pointer_attr(p, CU_POINTER_ATTRIBUTE_RANGE_SIZE, &range) == 0 &&
                (start > rec->exporter_ptr || rec->exporter_ptr - start > range ||
                 rec->size > range - (rec->exporter_ptr - start)))) {
        return reel__fail(-ESTALE, "device tensor %s: its memory was freed and the address reused",
                          hex);
    }
    *ptr = p;
    return 0;
}

REEL_API int reel_gpu_open(reel_store *s, const reel_id *id, int timeout_ms, reel_gpu_view *out) {
    REEL_NEED(out, "out");
    memset(out, 0, sizeof *out);
    REEL_NEED(s, "store");
    REEL_NEED(id, "id");
    reel__clear_error();
    reel_view v;
    int rc = reel_obj_get(s, id, 1, timeout_ms, &v);
    if (rc)
        return rc;
    char hex[REEL_ID_HEX_LEN + 1];
    reel_id_to_hex(id, hex);
    reel__gpu_record rec;
    reel_meta m;
    void *mapping = NULL, *ptr = NULL;
    int device = -1;
    /* Everything in the record is checked before CUDA sees any of it. */
    if ((rc = reel__gpu_record_check(&v, &rec, &m)) != 0)
        goto fail;
    if (!gpu_ready()) {
        rc = no_gpu();
        goto fail;
    }
    cuda_error_t e = cu.DeviceGetByPCIBusId(&device, rec.bus_id);
    if (e != CUDA_SUCCESS_) {
        cu.GetLastError();
        rc = reel__fail(-ENODEV, "device tensor %s lives on GPU %s, which this process cannot see",
                        hex, rec.bus_id);
        goto fail;
    }
    if (rec.exporter_pid == (int32_t)getpid() && rec.exporter_nonce == cu.nonce) {
        if ((rc = open_own(&rec, hex, &ptr)) != 0)
            goto fail;
    } else {
        if ((rc = mapping_get(&rec, device, hex, &mapping)) != 0)
            goto fail;
        ptr = (uint8_t *)mapping + rec.offset;
    }
    out->id = *id;
    out->dev_ptr = ptr;
    out->size = rec.size;
    out->device = device;
    out->meta = m;
    out->mapping_ = mapping;
    return 0;
fail:
    reel_obj_release(s, id);
    return rc;
}

REEL_API int reel_gpu_close(reel_store *s, reel_gpu_view *view) {
    REEL_NEED(s, "store");
    REEL_NEED(view, "view");
    /* Only a view whose mapping this process holds reaches CUDA. */
    if (view->mapping_ && mapping_put(view->mapping_) != 0)
        return -EINVAL;
    int rc = reel_obj_release(s, &view->id);
    memset(view, 0, sizeof *view);
    return rc;
}
