/* The CUDA glue: without a GPU every call falls back cleanly (a count of 0,
 * -ENODEV, nothing left in the store, CUDA never loaded by a process that did
 * not ask for it); a device-tensor record from another process is validated
 * before any CUDA call; with a GPU, the pinned arena round-trips bytes and a
 * device tensor put by one process is read by another through CUDA IPC.
 *
 * The GPU tests skip themselves where reel_gpu_count() is 0. Criterion runs
 * each test in a fresh process, so a test that hides the GPU with
 * CUDA_VISIBLE_DEVICES, or forks before CUDA is touched, starts clean. */
#include <criterion/criterion.h>

#include <errno.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gpu.h"
#include "helpers.h"
#include "store_internal.h"

TestSuite(gpu, .init = th_init, .fini = th_fini, .timeout = 120);

/* ---- helpers ------------------------------------------------------------- */

static int find_cudart(struct dl_phdr_info *info, size_t size, void *arg) {
    (void)size;
    if (info->dlpi_name && strstr(info->dlpi_name, "libcudart"))
        *(int *)arg = 1;
    return 0;
}

/* 1 if libcudart is mapped into this process. */
static int cudart_loaded(void) {
    int found = 0;
    dl_iterate_phdr(find_cudart, &found);
    return found;
}

static int count_child(void *arg) {
    (void)arg;
    int n = reel_gpu_count();
    return n > 200 ? 200 : n;
}

/* The device count, asked in a child so that this process stays free to fork
 * children that use CUDA (CUDA does not survive fork). */
static int gpu_count_forked(void) {
    int rc = th_wait(th_fork(count_child, NULL), 60000);
    cr_assert(rc >= 0 && rc <= 200, "the counting child ended with %d", rc);
    return rc;
}

/* Why there is no GPU, for a skip message. */
static const char *why_no_gpu(void) {
    char byte;
    reel__gpu_register(&byte, 1);
    return reel_last_error();
}

static reel_meta tensor_meta(uint32_t dtype, uint32_t ndim, const uint64_t *shape) {
    reel_meta m;
    memset(&m, 0, sizeof m);
    m.kind = REEL_META_TENSOR;
    m.dtype = dtype;
    m.ndim = ndim;
    for (uint32_t i = 0; i < ndim; i++)
        m.shape[i] = shape[i];
    return m;
}

/* A record as reel_gpu_put() writes it, for a 4096-byte u8 tensor. */
static reel__gpu_record good_record(void) {
    reel__gpu_record r;
    memset(&r, 0, sizeof r);
    memcpy(r.magic, REEL__GPU_RECORD_MAGIC, sizeof r.magic);
    r.version = REEL__GPU_RECORD_VERSION;
    r.record_size = sizeof r;
    r.size = 4096;
    r.offset = 0;
    r.alloc_size = 1 << 20;
    r.device = 0;
    r.exporter_pid = 1;
    r.exporter_nonce = 12345;
    r.exporter_ptr = 0x7f0000000000ull;
    strcpy(r.bus_id, "0000:3B:00.0");
    for (size_t i = 0; i < sizeof r.handle; i++)
        r.handle[i] = (uint8_t)i;
    return r;
}

static size_t encode_meta(const reel_meta *m, uint8_t *buf, size_t cap) {
    size_t len = 0;
    TH_OK(reel_meta_encode(m, buf, cap, &len));
    return len;
}

/* The metadata reel_gpu_put() writes for good_record(). */
static size_t good_meta(uint8_t *buf, size_t cap) {
    uint64_t shape[] = {4096};
    reel_meta m = tensor_meta(REEL_DTYPE_U8, 1, shape);
    strcpy(m.format, "cuda:0000:3B:00.0");
    return encode_meta(&m, buf, cap);
}

/* Stores (data, meta) under id as a sealed object. */
static void put_raw(reel_store *s, reel_id id, const void *data, uint64_t size, const void *meta,
                    size_t meta_size) {
    TH_OK(reel_obj_put(s, &id, data, size, meta, (uint32_t)meta_size, 0, 0));
}

static int view_is_zero(const reel_gpu_view *v) {
    static const reel_gpu_view zero;
    return memcmp(v, &zero, sizeof zero) == 0;
}

/* Opens id and expects the error want, a zeroed view and no reference left. */
static void expect_rejected(reel_store *s, reel_id id, int want, const char *what) {
    reel_gpu_view v;
    memset(&v, 0xa5, sizeof v);
    int rc = reel_gpu_open(s, &id, 0, &v);
    char buf[512];
    cr_assert_eq(rc, want, "%s: reel_gpu_open -> %s, expected %d (%s)", what,
                 th_rcstr(rc, buf, sizeof buf), want, reel_strerror(want));
    cr_assert_neq(reel_last_error()[0], '\0', "%s: no detail sentence", what);
    cr_assert(view_is_zero(&v), "%s: the view was not zeroed", what);
    cr_assert_eq(th_stats(s).objects_referenced, 0, "%s: a reference was left", what);
}

/* ---- everywhere ------------------------------------------------------------ */

Test(gpu, count_is_stable_and_never_an_error) {
    int n = reel_gpu_count();
    cr_assert_geq(n, 0);
    cr_assert_eq(reel_gpu_count(), n);
}

Test(gpu, bad_arguments_are_einval) {
    reel_store *s = th_store_new(1 << 20, 16, NULL);
    char host[64];
    double gbps = -1;
    void *p = NULL;
    reel_id id = th_id_n(1, 0);
    TH_RC(reel__gpu_register(NULL, 4096), -EINVAL);
    TH_RC(reel__gpu_register(host, 0), -EINVAL);
    TH_RC(reel__gpu_h2d_bandwidth(NULL, 64, 1, &gbps), -EINVAL);
    TH_RC(reel__gpu_h2d_bandwidth(host, 0, 1, &gbps), -EINVAL);
    TH_RC(reel__gpu_h2d_bandwidth(host, 64, 0, &gbps), -EINVAL);
    TH_RC(reel__gpu_h2d_bandwidth(host, 64, 1, NULL), -EINVAL);
    TH_RC(reel__gpu_malloc(-1, 64, &p), -EINVAL);
    TH_RC(reel__gpu_malloc(0, 0, &p), -EINVAL);
    TH_RC(reel__gpu_host_alloc(0, &p), -EINVAL);
    TH_RC(reel__gpu_copy(NULL, host, 1), -EINVAL);
    TH_RC(reel__gpu_host_flags(NULL, NULL), -EINVAL);
    TH_RC(reel_store_gpu_pin(NULL), -EINVAL);
    cr_assert_eq(reel_store_gpu_pinned(NULL), 0);

    const void *dev = (const void *)0x1000; /* never dereferenced: arguments fail first */
    uint64_t shape[] = {16, 16};
    reel_meta f32 = tensor_meta(REEL_DTYPE_F32, 2, shape); /* 1024 bytes */
    TH_RC(reel_gpu_put(NULL, &id, 0, dev, 1024, &f32, 0), -EINVAL);
    TH_RC(reel_gpu_put(s, NULL, 0, dev, 1024, &f32, 0), -EINVAL);
    TH_RC(reel_gpu_put(s, &id, 0, NULL, 1024, &f32, 0), -EINVAL);
    TH_RC(reel_gpu_put(s, &id, 0, dev, 0, &f32, 0), -EINVAL);
    TH_RC(reel_gpu_put(s, &id, -1, dev, 1024, &f32, 0), -EINVAL);
    TH_RC(reel_gpu_put(s, &id, 0, dev, 1000, &f32, 0), -EINVAL); /* shape says 1024 */
    reel_meta frame = f32;
    frame.kind = REEL_META_FRAME;
    TH_RC(reel_gpu_put(s, &id, 0, dev, 1024, &frame, 0), -EINVAL);
    reel_meta host_fmt = f32;
    strcpy(host_fmt.format, "rgb24");
    TH_RC(reel_gpu_put(s, &id, 0, dev, 1024, &host_fmt, 0), -EINVAL);
    reel_meta bad_dtype = f32;
    bad_dtype.dtype = REEL_DTYPE_COUNT_;
    TH_RC(reel_gpu_put(s, &id, 0, dev, 1024, &bad_dtype, 0), -EINVAL);
    reel_meta huge = tensor_meta(REEL_DTYPE_F64, 3, (uint64_t[]){1ull << 40, 1ull << 40, 8});
    TH_RC(reel_gpu_put(s, &id, 0, dev, 1024, &huge, 0), -EINVAL); /* overflows: no match */

    reel_gpu_view v;
    TH_RC(reel_gpu_open(NULL, &id, 0, &v), -EINVAL);
    TH_RC(reel_gpu_open(s, NULL, 0, &v), -EINVAL);
    TH_RC(reel_gpu_open(s, &id, 0, NULL), -EINVAL);
    TH_RC(reel_gpu_close(s, NULL), -EINVAL);
    TH_RC(reel_gpu_close(NULL, &v), -EINVAL);
    cr_assert_eq(th_stats(s).objects, 0);
    reel_store_close(s);
}

Test(gpu, a_process_that_does_not_ask_never_loads_cuda) {
    cr_assert_not(cudart_loaded(), "libcudart was loaded before the test began");
    reel_store *s = th_store_new(1 << 20, 16, NULL);
    char buf[64];
    reel__gpu_unregister(buf);
    reel__gpu_store_unpin(s);
    cr_assert_eq(reel_store_gpu_pinned(s), 0);
    cr_assert_eq(reel__gpu_registered(buf), 0);
    reel_gpu_view v;
    memset(&v, 0, sizeof v);
    TH_RC(reel_gpu_close(s, &v), REEL_ENOTREF);
    /* A malformed record is rejected before CUDA is looked for. */
    reel_id id = th_id_n(2, 0);
    put_raw(s, id, "short", 5, NULL, 0);
    expect_rejected(s, id, REEL_EBADMETA, "plain object");
    reel_store_close(s);
    cr_assert_not(cudart_loaded(), "libcudart was loaded by a process that never asked for a GPU");
}

Test(gpu, an_absent_object_times_out) {
    reel_store *s = th_store_new(1 << 20, 16, NULL);
    reel_gpu_view v;
    memset(&v, 0xa5, sizeof v);
    reel_id id = th_id_n(3, 0);
    TH_RC(reel_gpu_open(s, &id, 0, &v), -ETIMEDOUT);
    cr_assert(view_is_zero(&v));
    TH_RC(reel_gpu_open(s, &id, 20, &v), -ETIMEDOUT);
    reel_store_close(s);
}

Test(gpu, the_validator_accepts_what_put_writes) {
    reel__gpu_record r = good_record();
    uint8_t meta[256];
    size_t mlen = good_meta(meta, sizeof meta);
    reel_view v = {.id = th_id_n(4, 0),
                   .data = &r,
                   .size = sizeof r,
                   .meta = meta,
                   .meta_size = (uint32_t)mlen};
    reel__gpu_record out;
    reel_meta m;
    TH_OK(reel__gpu_record_check(&v, &out, &m));
    cr_assert(memcmp(&out, &r, sizeof r) == 0);
    cr_assert_eq(m.kind, REEL_META_TENSOR);
    cr_assert_eq(m.dtype, REEL_DTYPE_U8);
    cr_assert_eq(m.ndim, 1);
    cr_assert_eq(m.shape[0], 4096);
    cr_assert_str_eq(m.format, "cuda:0000:3B:00.0");
    /* A tensor inside a larger allocation, and dtype none (no shape check). */
    r.offset = 8192;
    TH_OK(reel__gpu_record_check(&v, &out, &m));
    reel_meta none = tensor_meta(REEL_DTYPE_NONE, 0, NULL);
    strcpy(none.format, "cuda:0000:3B:00.0");
    v.meta_size = (uint32_t)encode_meta(&none, meta, sizeof meta);
    TH_OK(reel__gpu_record_check(&v, &out, &m));
}

/* One malformation of a record or of its metadata, and the error it earns. */
typedef struct bad_case {
    const char *what;
    int want;
    void (*spoil)(reel__gpu_record *r, reel_meta *m, uint64_t *size);
} bad_case;

static void spoil_magic(reel__gpu_record *r, reel_meta *m, uint64_t *size) {
    (void)m, (void)size;
    r->magic[0] = 'X';
}
static void spoil_version(reel__gpu_record *r, reel_meta *m, uint64_t *size) {
    (void)m, (void)size;
    r->version = 2;
}
static void spoil_record_size(reel__gpu_record *r, reel_meta *m, uint64_t *size) {
    (void)m, (void)size;
    r->record_size = 128;
}
static void spoil_short(reel__gpu_record *r, reel_meta *m, uint64_t *size) {
    (void)r, (void)m;
    *size = 100;
}
static void spoil_long(reel__gpu_record *r, reel_meta *m, uint64_t *size) {
    (void)r, (void)m;
    *size = sizeof(reel__gpu_record) + 8;
}
static void spoil_device_negative(reel__gpu_record *r, reel_meta *m, uint64_t *size) {
    (void)m, (void)size;
    r->device = -1;
}
static void spoil_device_huge(reel__gpu_record *r, reel_meta *m, uint64_t *size) {
    (void)m, (void)size;
    r->device = 100000;
}
static void spoil_pid(reel__gpu_record *r, reel_meta *m, uint64_t *size) {
    (void)m, (void)size;
    r->exporter_pid = 0;
}
static void spoil_bus_unterminated(reel__gpu_record *r, reel_meta *m, uint64_t *size) {
    (void)m, (void)size;
    memset(r->bus_id, '0', sizeof r->bus_id);
}
static void spoil_bus_chars(reel__gpu_record *r, reel_meta *m, uint64_t *size) {
    (void)size;
    strcpy(r->bus_id, "../../etc");
    strcpy(m->format, "cuda:../../etc");
}
static void spoil_bus_empty(reel__gpu_record *r, reel_meta *m, uint64_t *size) {
    (void)size;
    r->bus_id[0] = '\0';
    strcpy(m->format, "cuda:");
}
static void spoil_bus_mismatch(reel__gpu_record *r, reel_meta *m, uint64_t *size) {
    (void)r, (void)size;
    strcpy(m->format, "cuda:0000:AF:00.0");
}
static void spoil_zero_size(reel__gpu_record *r, reel_meta *m, uint64_t *size) {
    (void)size;
    r->size = 0;
    m->dtype = REEL_DTYPE_NONE;
}
static void spoil_past_alloc(reel__gpu_record *r, reel_meta *m, uint64_t *size) {
    (void)m, (void)size;
    r->offset = r->alloc_size - 100;
}
static void spoil_overflow(reel__gpu_record *r, reel_meta *m, uint64_t *size) {
    (void)m, (void)size;
    r->offset = UINT64_MAX - 10;
}
static void spoil_offset_unknown_alloc(reel__gpu_record *r, reel_meta *m, uint64_t *size) {
    (void)m, (void)size;
    r->alloc_size = 0;
    r->offset = 64;
}
static void spoil_reserved(reel__gpu_record *r, reel_meta *m, uint64_t *size) {
    (void)m, (void)size;
    r->reserved[3] = 1;
}
static void spoil_shape(reel__gpu_record *r, reel_meta *m, uint64_t *size) {
    (void)r, (void)size;
    m->dtype = REEL_DTYPE_F32; /* 4096 f32 = 16384 bytes, the record says 4096 */
}
static void spoil_kind(reel__gpu_record *r, reel_meta *m, uint64_t *size) {
    (void)r, (void)size;
    m->kind = REEL_META_FRAME;
}
static void spoil_host_format(reel__gpu_record *r, reel_meta *m, uint64_t *size) {
    (void)r, (void)size;
    strcpy(m->format, "rgb24");
}

static const bad_case bad_cases[] = {
    {"bad magic", -EBADMSG, spoil_magic},
    {"version 2", -EBADMSG, spoil_version},
    {"record_size field", -EBADMSG, spoil_record_size},
    {"record of 100 bytes", -EBADMSG, spoil_short},
    {"record with trailing bytes", -EBADMSG, spoil_long},
    {"device -1", -EBADMSG, spoil_device_negative},
    {"device 100000", -EBADMSG, spoil_device_huge},
    {"exporter pid 0", -EBADMSG, spoil_pid},
    {"bus ID not terminated", -EBADMSG, spoil_bus_unterminated},
    {"bus ID of other characters", -EBADMSG, spoil_bus_chars},
    {"empty bus ID", -EBADMSG, spoil_bus_empty},
    {"bus ID differs from the metadata's", -EBADMSG, spoil_bus_mismatch},
    {"size 0", -EBADMSG, spoil_zero_size},
    {"range past the allocation", -EBADMSG, spoil_past_alloc},
    {"offset + size overflows", -EBADMSG, spoil_overflow},
    {"offset into an allocation of unknown size", -EBADMSG, spoil_offset_unknown_alloc},
    {"reserved field set", -EBADMSG, spoil_reserved},
    {"dtype x shape disagree with size", REEL_EBADMETA, spoil_shape},
    {"kind frame", REEL_EBADMETA, spoil_kind},
    {"host format", REEL_EBADMETA, spoil_host_format},
};

Test(gpu, malformed_device_tensors_are_rejected_before_cuda) {
    reel_store *s = th_store_new(4 << 20, 64, NULL);
    uint8_t data[sizeof(reel__gpu_record) + 16];
    uint8_t meta[256];
    for (size_t k = 0; k < sizeof bad_cases / sizeof bad_cases[0]; k++) {
        reel__gpu_record r = good_record();
        uint64_t shape[] = {4096};
        reel_meta m = tensor_meta(REEL_DTYPE_U8, 1, shape);
        strcpy(m.format, "cuda:0000:3B:00.0");
        uint64_t size = sizeof r;
        bad_cases[k].spoil(&r, &m, &size);
        memset(data, 0, sizeof data);
        memcpy(data, &r, size < sizeof r ? size : sizeof r);
        reel_id id = th_id_n(5, k);
        put_raw(s, id, data, size, meta, encode_meta(&m, meta, sizeof meta));
        expect_rejected(s, id, bad_cases[k].want, bad_cases[k].what);
        TH_OK(reel_obj_delete(s, &id));
    }
    /* Metadata that is not reel's, or none at all. */
    reel__gpu_record r = good_record();
    reel_id id = th_id_n(6, 0);
    put_raw(s, id, &r, sizeof r, "\xc1garbage", 8);
    expect_rejected(s, id, REEL_EBADMETA, "garbage metadata");
    id = th_id_n(6, 1);
    put_raw(s, id, &r, sizeof r, NULL, 0);
    expect_rejected(s, id, REEL_EBADMETA, "no metadata");
    cr_assert_eq(th_stats(s).objects_referenced, 0);
    reel_store_close(s);
}

/* ---- without a GPU --------------------------------------------------------- */

/* Every GPU call gives -ENODEV and a reason, and leaves nothing behind. */
static void expect_no_gpu(void) {
    cr_assert_eq(reel_gpu_count(), 0);
    reel_store *s = th_store_new(1 << 20, 16, NULL);
    char host[4096];
    double gbps = -1;
    void *p = (void *)0x1;
    unsigned int flags = 0;
    TH_RC(reel__gpu_register(host, sizeof host), -ENODEV);
    cr_assert_neq(reel_last_error()[0], '\0');
    cr_assert_eq(reel__gpu_registered(host), 0);
    reel__gpu_unregister(host);
    TH_RC(reel_store_gpu_pin(s), -ENODEV);
    cr_assert_eq(reel_store_gpu_pinned(s), 0);
    reel__gpu_store_unpin(s);
    TH_RC(reel__gpu_h2d_bandwidth(host, sizeof host, 3, &gbps), -ENODEV);
    cr_assert_eq(gbps, -1);
    TH_RC(reel__gpu_malloc(0, 64, &p), -ENODEV);
    cr_assert_null(p);
    TH_RC(reel__gpu_host_alloc(64, &p), -ENODEV);
    cr_assert_null(p);
    TH_RC(reel__gpu_host_flags(host, &flags), -ENODEV);
    TH_RC(reel__gpu_copy(host, host + 1, 1), -ENODEV);
    char name[64];
    TH_RC(reel__gpu_device_name(0, name, sizeof name), -ENODEV);

    reel_id id = th_id_n(7, 0);
    uint64_t shape[] = {2, 512};
    reel_meta m = tensor_meta(REEL_DTYPE_F32, 2, shape);
    TH_RC(reel_gpu_put(s, &id, 0, (const void *)0x1000, 4096, &m, 0), -ENODEV);
    TH_RC(reel_gpu_put(s, &id, 0, (const void *)0x1000, 4096, NULL, 0), -ENODEV);
    cr_assert_eq(th_stats(s).objects, 0, "a failed put left an object");

    /* A well-formed record from a machine that had a GPU: valid, but no GPU here. */
    reel__gpu_record r = good_record();
    uint8_t meta[256];
    put_raw(s, id, &r, sizeof r, meta, good_meta(meta, sizeof meta));
    expect_rejected(s, id, -ENODEV, "well-formed record without a GPU");
    reel_store_close(s);
}

Test(gpu, without_a_gpu_every_call_is_enodev) {
    if (reel_gpu_count() > 0)
        cr_skip_test("a GPU is present: see hidden_gpus_are_no_gpu");
    expect_no_gpu();
}

Test(gpu, hidden_gpus_are_no_gpu) {
    /* Before any CUDA call in this process: CUDA reads it at initialization. */
    cr_assert_eq(setenv("CUDA_VISIBLE_DEVICES", "", 1), 0);
    expect_no_gpu();
}

Test(gpu, a_library_that_is_not_cudart_is_no_gpu) {
    /* The override is tried first; a library without CUDA's functions is no GPU. */
    cr_assert_eq(setenv("REEL_CUDART", "libc.so.6", 1), 0);
    cr_assert_eq(reel_gpu_count(), 0);
    char host[64];
    TH_RC(reel__gpu_register(host, sizeof host), -ENODEV);
    cr_assert(strstr(reel_last_error(), "cudaGetDeviceCount") != NULL, "detail: %s",
              reel_last_error());
}

/* ---- with a GPU -------------------------------------------------------------- */

Test(gpu, the_pinned_arena_round_trips_bytes) {
    if (reel_gpu_count() == 0)
        cr_skip_test("%s", why_no_gpu());
    const size_t n = 8 << 20;
    reel_store *s = th_store_new(64 << 20, 64, NULL);
    TH_OK(reel_store_gpu_pin(s));
    cr_assert_eq(reel_store_gpu_pinned(s), 1);
    TH_RC(reel_store_gpu_pin(s), -EEXIST);

    reel_id src_id = th_id_n(8, 0), dst_id = th_id_n(8, 1);
    void *src, *dst;
    TH_OK(reel_obj_create(s, &src_id, n, NULL, 0, 0, 0, &src));
    TH_OK(reel_obj_create(s, &dst_id, n, NULL, 0, 0, 0, &dst));
    unsigned int flags = 0;
    TH_OK(reel__gpu_host_flags(src, &flags));
    cr_assert(flags & 0x1u, "the arena is not pinned portable (flags %#x)", flags);

    th_fill(src, n, 99);
    memset(dst, 0, n);
    void *dev;
    TH_OK(reel__gpu_malloc(0, n, &dev));
    TH_OK(reel__gpu_copy(dev, src, n));
    TH_OK(reel__gpu_copy(dst, dev, n));
    cr_assert_eq(th_mismatch(dst, n, 99), n, "byte %zu differs after H2D + D2H",
                 th_mismatch(dst, n, 99));
    double pinned_gbps = 0, pageable_gbps = 0;
    TH_OK(reel__gpu_h2d_bandwidth(src, n, 4, &pinned_gbps));
    cr_assert_gt(pinned_gbps, 0.0);
    void *heap = malloc(n);
    cr_assert_not_null(heap);
    th_fill(heap, n, 1);
    TH_OK(reel__gpu_h2d_bandwidth(heap, n, 4, &pageable_gbps));
    cr_assert_gt(pageable_gbps, 0.0);
    free(heap);
    cr_log_info("H2D of %zu MiB: store arena %.2f GB/s, pageable %.2f GB/s", n >> 20, pinned_gbps,
                pageable_gbps);
    TH_OK(reel__gpu_free(dev));

    TH_OK(reel_obj_abort(s, &src_id));
    TH_OK(reel_obj_abort(s, &dst_id));
    reel__gpu_store_unpin(s); /* reel_store_close() does this once it calls the hook */
    cr_assert_eq(reel_store_gpu_pinned(s), 0);
    TH_RC(reel__gpu_host_flags(src, &flags), -ENOENT);
    reel_store_close(s);
}

Test(gpu, the_exporter_opens_its_own_pointer) {
    if (reel_gpu_count() == 0)
        cr_skip_test("%s", why_no_gpu());
    reel_store *s = th_store_new(4 << 20, 64, NULL);
    void *dev;
    TH_OK(reel__gpu_malloc(0, 1 << 20, &dev));
    uint64_t shape[] = {256, 256};
    reel_meta m = tensor_meta(REEL_DTYPE_U16, 2, shape); /* 128 KiB */
    reel_id id = th_id_n(9, 0);
    uint8_t *slice = (uint8_t *)dev + 65536;
    TH_OK(reel_gpu_put(s, &id, 0, slice, 131072, &m, 0));
    reel_gpu_view v;
    TH_OK(reel_gpu_open(s, &id, 0, &v));
    cr_assert_eq(v.dev_ptr, slice);
    cr_assert_eq(v.size, 131072);
    cr_assert_eq(v.device, 0);
    cr_assert_null(v.mapping_);
    cr_assert_eq(v.meta.dtype, REEL_DTYPE_U16);
    cr_assert_eq(v.meta.shape[1], 256);
    cr_assert(strncmp(v.meta.format, REEL_META_FORMAT_CUDA, 5) == 0, "format %s", v.meta.format);
    TH_OK(reel_gpu_close(s, &v));
    cr_assert(view_is_zero(&v));

    /* Past the end of the allocation, host memory, twice the same ID. */
    TH_RC(reel_gpu_put(s, &(reel_id){{1}}, 0, (uint8_t *)dev + (1 << 20) - 16, 32, NULL, 0),
          -EINVAL);
    char host[64];
    TH_RC(reel_gpu_put(s, &(reel_id){{2}}, 0, host, sizeof host, NULL, 0), -EINVAL);
    TH_RC(reel_gpu_put(s, &id, 0, slice, 131072, &m, 0), REEL_EEXISTS);
    TH_RC(reel_gpu_put(s, &(reel_id){{3}}, reel_gpu_count(), dev, 64, NULL, 0), -ENODEV);
    TH_OK(reel__gpu_free(dev));
    reel_store_close(s);
}

typedef struct ipc_args {
    const char *path;
    th_chan to_child, to_parent;
    reel_id whole, slice;
    size_t n;
} ipc_args;

/* Opens both tensors put by the parent (twice the first: the mapping is
 * shared), copies them back and checks every byte. */
static int ipc_child(void *arg) {
    ipc_args *a = arg;
    TH_CHILD_CHECK(th_chan_recv(&a->to_child, 60000) == 'p', "no word from the parent");
    reel_store *s = NULL;
    TH_CHILD_RC(reel_store_open(a->path, 0, &s), 0);
    TH_CHILD_CHECK(reel_gpu_count() > 0, "the child sees no GPU: %s", reel_last_error());
    reel_gpu_view whole, again, slice;
    TH_CHILD_RC(reel_gpu_open(s, &a->whole, 1000, &whole), 0);
    TH_CHILD_RC(reel_gpu_open(s, &a->whole, 1000, &again), 0);
    TH_CHILD_RC(reel_gpu_open(s, &a->slice, 1000, &slice), 0);
    TH_CHILD_CHECK(whole.mapping_ && whole.mapping_ == again.mapping_,
                   "one handle opened twice: CUDA returns one mapping");
    TH_CHILD_CHECK(whole.device == 0 && whole.meta.dtype == REEL_DTYPE_F32 &&
                       whole.meta.shape[0] == a->n / 4,
                   "device %d, dtype %u, shape %llu", whole.device, whole.meta.dtype,
                   (unsigned long long)whole.meta.shape[0]);
    TH_CHILD_CHECK(whole.size == a->n && slice.size == a->n / 2, "sizes %llu %llu",
                   (unsigned long long)whole.size, (unsigned long long)slice.size);
    TH_CHILD_CHECK(slice.mapping_ != whole.mapping_ ||
                       (uint8_t *)slice.dev_ptr == (uint8_t *)whole.dev_ptr + a->n / 4,
                   "the slice is not at its offset");
    uint8_t *host = malloc(a->n);
    TH_CHILD_CHECK(host != NULL, "malloc");
    TH_CHILD_RC(reel__gpu_copy(host, whole.dev_ptr, a->n), 0);
    TH_CHILD_CHECK(th_pattern_ok(host, a->n, 77), "byte %zu of the tensor differs",
                   th_mismatch(host, a->n, 77));
    memset(host, 0, a->n);
    TH_CHILD_RC(reel_gpu_close(s, &whole), 0);
    /* The mapping outlives one of its views. */
    TH_CHILD_RC(reel__gpu_copy(host, slice.dev_ptr, a->n / 2), 0);
    uint8_t *want = malloc(a->n);
    TH_CHILD_CHECK(want != NULL, "malloc");
    th_fill(want, a->n, 77);
    TH_CHILD_CHECK(memcmp(host, want + a->n / 4, a->n / 2) == 0, "the slice's bytes differ");
    TH_CHILD_RC(reel_gpu_close(s, &again), 0);
    TH_CHILD_RC(reel_gpu_close(s, &slice), 0);
    TH_CHILD_RC(reel_gpu_close(s, &slice), REEL_ENOTREF); /* zeroed by the first close */
    free(host);
    free(want);
    TH_CHILD_RC(reel_store_close(s), 0);
    TH_CHILD_CHECK(th_chan_send(&a->to_parent, 'c') == 0, "cannot answer the parent");
    return 0;
}

Test(gpu, a_device_tensor_is_read_by_another_process) {
    /* Counted in a child: CUDA must not be initialized here before the fork. */
    if (gpu_count_forked() == 0)
        cr_skip_test("no GPU (counted in a child)");
    const char *path;
    reel_store *s = th_store_new(4 << 20, 64, &path);
    ipc_args a = {.path = path, .whole = th_id_n(10, 0), .slice = th_id_n(10, 1), .n = 4 << 20};
    th_chan_open(&a.to_child);
    th_chan_open(&a.to_parent);
    pid_t child = th_fork(ipc_child, &a);

    void *dev;
    TH_OK(reel__gpu_malloc(0, a.n, &dev));
    uint8_t *host = malloc(a.n);
    cr_assert_not_null(host);
    th_fill(host, a.n, 77);
    TH_OK(reel__gpu_copy(dev, host, a.n));
    free(host);
    uint64_t shape[] = {a.n / 4};
    reel_meta m = tensor_meta(REEL_DTYPE_F32, 1, shape);
    TH_OK(reel_gpu_put(s, &a.whole, 0, dev, a.n, &m, 0));
    TH_OK(reel_gpu_put(s, &a.slice, 0, (uint8_t *)dev + a.n / 4, a.n / 2, NULL, 0));
    TH_OK(th_chan_send(&a.to_child, 'p'));
    /* The exporter keeps its memory until the reader is done. */
    int answer = th_chan_recv(&a.to_parent, 60000);
    int rc = th_wait(child, 60000);
    cr_assert_eq(rc, 0, "the child failed (%d); see its lines above", rc);
    cr_assert_eq(answer, 'c');
    TH_OK(reel__gpu_free(dev));
    cr_assert_eq(th_stats(s).objects_referenced, 0);
    th_chan_close(&a.to_child);
    th_chan_close(&a.to_parent);
    reel_store_close(s);
}
