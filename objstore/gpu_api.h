/*
 * The GPU section of reel/store.h, kept here only until it is pasted there.
 *
 * Everything between "paste begin" and "paste end" goes into store.h, before
 * the closing extern "C" brace; then this file and the two lines of gpu.h that
 * include it are deleted. The block defines REEL_HAVE_GPU_API, so while both
 * copies exist the second one is skipped.
 */
#include "reel/store.h"

/* ---- paste begin ------------------------------------------------------- */
#ifndef REEL_HAVE_GPU_API
#define REEL_HAVE_GPU_API 1

/* ---- GPU memory (CUDA, optional) --------------------------------------- */

/*
 * reel never links the CUDA runtime: it loads libcudart on first use
 * ($REEL_CUDART if set, then libcudart.so.13, .12, .11.0, libcudart.so, then
 * /usr/local/cuda/lib64/libcudart.so). No library, no driver, no device, or
 * CUDA_VISIBLE_DEVICES="" all mean "no GPU": reel_gpu_count() returns 0, the
 * calls below return -ENODEV (reel_last_error() says which of these it was),
 * and the rest of the store works as before.
 *
 * Fork: the first call that reaches CUDA - reel_gpu_count() included -
 * initializes the CUDA driver in the calling process, and CUDA does not
 * survive fork(): a child forked after that cannot use the GPU. Fork workers
 * first (the runtime's zygote is started before any CUDA call), then use the
 * GPU in them. reel_gpu_close(), reel_store_gpu_pinned() and reel_store_close()
 * never load CUDA in a process that has not used it.
 *
 * Pinned store memory: reel_store_gpu_pin() registers the calling process's
 * mapping of the store's data arena as pinned host memory, so that copies
 * between store objects and the GPU run at full PCIe speed. Pinning is per
 * process and is undone by reel_store_close().
 *
 * Device tensors: reel_gpu_put() publishes device memory of the calling
 * process as a store object. Its data is a small record holding the CUDA IPC
 * handle of the allocation; its metadata is a reel_meta of kind
 * REEL_META_TENSOR whose format is REEL_META_FORMAT_CUDA followed by the PCI
 * bus ID of the GPU that holds the memory ("cuda:0000:3B:00.0"), so that
 * reel-inspect shows where it lives. Any process attached to the store opens
 * it with reel_gpu_open() and gets a device pointer to the same memory: no
 * copy. The exporter owns the memory: it must keep the allocation alive (no
 * cudaFree(), no exit) until every view of it is closed; reel counts the
 * references to the record, not to the device memory.
 */

/* Prefix of the metadata format of a device tensor. */
#define REEL_META_FORMAT_CUDA "cuda:"

/* Number of CUDA devices this process sees; 0 when there is no usable GPU
 * (never an error). Loads and initializes CUDA on the first call (see "Fork"
 * above); later calls return the same number. Thread-safe. */
REEL_API int reel_gpu_count(void);

/* Registers this process's mapping of the store's data arena as pinned
 * (page-locked) host memory, portable to every CUDA context, so that
 * cudaMemcpy between objects and the GPU runs at pinned speed. Pinning locks
 * every page of the arena in RAM (faulting in those not touched yet), which
 * takes time in proportion to the capacity; do it once, at setup. Every
 * process pins its own mapping of the same pages. Undone by
 * reel_store_close(). Works on observer handles.
 * Errors: -ENODEV (no GPU), -EEXIST (already pinned by this handle), -ENOMEM
 * (the driver could not lock the pages), -EIO (other CUDA errors; see
 * reel_last_error()). */
REEL_API int reel_store_gpu_pin(reel_store *store);

/* 1 if this handle's arena is pinned by reel_store_gpu_pin(), else 0. */
REEL_API int reel_store_gpu_pinned(reel_store *store);

/* Publishes size bytes of device memory at dev_ptr as a sealed object.
 *   id:        the new object's ID.
 *   device:    the CUDA device ordinal (in this process) that holds dev_ptr.
 *   dev_ptr:   device memory from cudaMalloc() (or inside such an allocation:
 *              the offset is recorded). Memory from cudaMallocAsync() pools,
 *              cuMemCreate() or cudaMallocManaged() cannot be shared this way.
 *   size:      bytes, > 0; [dev_ptr, dev_ptr + size) must lie in one allocation.
 *   meta:      NULL (a 1-D u8 tensor of size bytes) or a reel_meta of kind
 *              REEL_META_TENSOR whose dtype and shape, when dtype is not
 *              REEL_DTYPE_NONE, describe exactly size bytes. Its format must
 *              be "" or start with REEL_META_FORMAT_CUDA; it is set to
 *              "cuda:<PCI bus ID>".
 *   timeout_ms: how long to wait for space for the record, as reel_obj_create().
 * The calling thread's current device is left as it was. The memory stays
 * owned by the caller (see "Device tensors" above).
 * Errors: -EINVAL (bad argument, inconsistent meta, not device memory of that
 * device, a range past the end of its allocation), -ENOTSUP (memory that
 * legacy CUDA IPC cannot share), -ENODEV (no GPU, or no such device), and
 * those of reel_obj_create(). */
REEL_API int reel_gpu_put(reel_store *store, const reel_id *id, int device, const void *dev_ptr,
                          uint64_t size, const reel_meta *meta, int timeout_ms);

/* A device tensor opened by reel_gpu_open(). */
typedef struct reel_gpu_view {
    reel_id id;
    void *dev_ptr;  /* the tensor in this process's address space, on device */
    uint64_t size;  /* bytes */
    int device;     /* this process's ordinal of the GPU that holds it */
    reel_meta meta; /* kind REEL_META_TENSOR, dtype, shape, format "cuda:<PCI bus ID>" */
    void *mapping_; /* private: this process's CUDA IPC mapping, NULL in the exporter */
} reel_gpu_view;

/* Opens a device tensor published by reel_gpu_put() in any process.
 *   timeout_ms: how long to wait for the object to appear, as reel_obj_get().
 *   out:        filled on success, zeroed on failure.
 * Holds one reference to the record and one CUDA IPC mapping of the
 * allocation (shared by every view of the same allocation in this process)
 * until reel_gpu_close(). In the exporting process it returns the exporter's
 * own pointer. The record comes from another process: it is validated before
 * any CUDA call. The calling thread's current device is left as it was.
 * Errors: -ETIMEDOUT, REEL_EBADMETA (the object is not a device tensor, or its
 * dtype and shape disagree with its size), -EBADMSG (a malformed record:
 * size, magic, version, device, bus ID, range; reel_last_error() says which),
 * -ENODEV (no GPU, or the GPU that holds it is not visible to this process),
 * -ESTALE (opened in the exporter after it freed the memory), -EINVAL,
 * -EIO (CUDA could not map it), and those of reel_obj_get(). */
REEL_API int reel_gpu_open(reel_store *store, const reel_id *id, int timeout_ms,
                           reel_gpu_view *out);

/* Closes a view: unmaps the allocation when this was its last view in this
 * process, and drops the reference to the record. view->dev_ptr is invalid
 * afterwards, and *view is zeroed.
 * Errors: -EINVAL (NULL, or a view not opened by reel_gpu_open()),
 * REEL_ENOTREF. */
REEL_API int reel_gpu_close(reel_store *store, reel_gpu_view *view);

#endif /* REEL_HAVE_GPU_API */
/* ---- paste end --------------------------------------------------------- */
