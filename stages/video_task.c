/* The video task container: see video_task.h for the layout and the checks. */
#include "video_task.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VT_VERSION 3u

/* A byte range as stored: offset from the object's start and length. */
typedef struct vt_ref {
    uint64_t off, len;
} vt_ref;

/* An artifact as stored: its object's ID and size. */
typedef struct vt_art_rec {
    uint8_t id[16];
    uint64_t size;
} vt_art_rec;

typedef struct vt_header {
    char magic[8];
    uint32_t version;
    uint32_t n_clips;
    uint32_t header_size, clip_size; /* sizeof both, as written */
    uint32_t partial;
    uint32_t reserved;
    uint32_t chunk_index, chunk_count;
    uint32_t first_clip, total_clips;
    uint64_t bytes_copied;
    vt_ref path, error;
    uint64_t file_size, file_ino, file_dev;
    int64_t file_mtime_ns;
    char container[VT_CODEC_MAX];
    char codec[VT_CODEC_MAX];
    double duration_s, fps;
    int32_t width, height;
    int64_t num_frames;
    uint64_t num_bytes;
} vt_header;

typedef struct vt_clip_rec {
    char uuid[VT_UUID_LEN + 4]; /* NUL-padded */
    int64_t start_frame, end_frame;
    double start_s, end_s;
    vt_art_rec mp4;
    int32_t width, height;
    double fps;
    int64_t num_frames;
    uint32_t has_motion, filtered;
    double motion_global_mean, motion_patch_min;
    vt_art_rec frames;
    uint32_t frames_n, frames_h, frames_w, written;
    double frames_fps;
    vt_art_rec tensor;
    uint32_t tensor_n, tensor_h, tensor_w, tensor_gpu;
    vt_art_rec preview;
    vt_ref errors;
} vt_clip_rec;

/* The fields a record and its struct share by name, with a type that
 * assignment converts exactly (the bools are uint32_t in a record): copied
 * one way by vt_write, the other by vt_read once the record has passed its
 * checks. The strings and byte ranges are copied on their own. */
/* clang-format off */
#define VT_PROBE_SCALARS(X) \
    X(duration_s) X(fps) X(width) X(height) X(num_frames) X(num_bytes)
#define VT_CLIP_SCALARS(X) \
    X(start_frame) X(end_frame) X(start_s) X(end_s) \
    X(width) X(height) X(fps) X(num_frames) \
    X(has_motion) X(filtered) X(motion_global_mean) X(motion_patch_min) \
    X(frames_n) X(frames_h) X(frames_w) X(frames_fps) \
    X(tensor_n) X(tensor_h) X(tensor_w) X(tensor_gpu)
/* clang-format on */
#define VT_COPY(f) to->f = from->f;

static uint64_t align8(uint64_t x) {
    return (x + 7) & ~(uint64_t)7;
}

static int bad(char *why, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int bad(char *why, size_t cap, const char *fmt, ...) {
    if (why && cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, cap, fmt, ap);
        va_end(ap);
    }
    return -EBADMSG;
}

/* Whether ref lies inside [0, size) without overflow; sets *b to its view. */
static int take(const uint8_t *base, uint64_t size, vt_ref ref, vt_bytes *b) {
    if (ref.off > size || ref.len > size - ref.off)
        return -1;
    b->data = ref.len ? base + ref.off : NULL;
    b->size = ref.len;
    return 0;
}

bool vt_art_present(const vt_art *a) {
    static const reel_id none;
    return memcmp(&a->id, &none, sizeof none) != 0;
}

/* An artifact from its record: an ID exactly when a size (artifacts are
 * never empty), and not more bytes than a store could hold. */
static int art_take(const vt_art_rec *r, vt_art *a) {
    memcpy(a->id.bytes, r->id, sizeof r->id);
    a->size = r->size;
    a->data = NULL;
    return vt_art_present(a) == (r->size != 0) && r->size <= (1ull << 48) ? 0 : -1;
}

static vt_art_rec art_put(const vt_art *a) {
    vt_art_rec r;
    memcpy(r.id, a->id.bytes, sizeof r.id);
    r.size = vt_art_present(a) ? a->size : 0;
    return r;
}

static int text_ok(vt_bytes b) {
    return b.size <= (1u << 20) && (b.size == 0 || memchr(b.data, '\0', b.size) == NULL);
}

static int fixed_str_ok(const char *s, size_t cap) {
    return memchr(s, '\0', cap) != NULL;
}

static int finite_all(const double *v, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return 0;
    return 1;
}

static void probe_put(vt_header *to, const vt_probe *from) {
    snprintf(to->container, sizeof to->container, "%s", from->container);
    snprintf(to->codec, sizeof to->codec, "%s", from->codec);
    VT_PROBE_SCALARS(VT_COPY)
}

/* from's names checked to be terminated. */
static void probe_get(vt_probe *to, const vt_header *from) {
    memcpy(to->container, from->container, sizeof to->container);
    memcpy(to->codec, from->codec, sizeof to->codec);
    VT_PROBE_SCALARS(VT_COPY)
}

static void clip_put(vt_clip_rec *to, const vt_clip *from) {
    VT_CLIP_SCALARS(VT_COPY)
    to->written = (uint32_t)from->written | (uint32_t)from->tensor_written << 1;
}

static void clip_get(vt_clip *to, const vt_clip_rec *from) {
    VT_CLIP_SCALARS(VT_COPY)
    to->written = from->written & 1;
    to->tensor_written = from->written >> 1 & 1;
}

int vt_read(const void *data, uint64_t size, video_task *out, char *why, size_t cap) {
    memset(out, 0, sizeof *out);
    const uint8_t *base = data;
    vt_header h;
    if (!data || size < sizeof h)
        return bad(why, cap, "video task: %llu bytes, shorter than its header",
                   (unsigned long long)size);
    memcpy(&h, base, sizeof h);
    if (memcmp(h.magic, VT_MAGIC, 8) != 0 || h.version != VT_VERSION)
        return bad(why, cap, "video task: not a video task object (magic or version)");
    if (h.header_size != sizeof(vt_header) || h.clip_size != sizeof(vt_clip_rec))
        return bad(why, cap, "video task: record sizes %u/%u, expected %zu/%zu", h.header_size,
                   h.clip_size, sizeof(vt_header), sizeof(vt_clip_rec));
    if (h.n_clips > VT_MAX_CLIPS || sizeof h + (uint64_t)h.n_clips * sizeof(vt_clip_rec) > size)
        return bad(why, cap, "video task: %u clips do not fit its %llu bytes", h.n_clips,
                   (unsigned long long)size);
    if (h.chunk_count == 0 || h.chunk_count > VT_MAX_CHUNKS || h.chunk_index >= h.chunk_count ||
        h.total_clips > VT_MAX_CLIPS || h.first_clip > h.total_clips ||
        h.n_clips > h.total_clips - h.first_clip)
        return bad(why, cap, "video task: chunk %u of %u, clips %u + %u of %u out of range",
                   h.chunk_index, h.chunk_count, h.first_clip, h.n_clips, h.total_clips);
    if (take(base, size, h.path, &out->path) || take(base, size, h.error, &out->error) ||
        !text_ok(out->path) || !text_ok(out->error))
        return bad(why, cap, "video task: path or error outside the object");
    if (!fixed_str_ok(h.container, sizeof h.container) || !fixed_str_ok(h.codec, sizeof h.codec))
        return bad(why, cap, "video task: container or codec name not terminated");
    double d[] = {h.duration_s, h.fps};
    if (!finite_all(d, 2) || h.duration_s < 0 || h.fps < 0 || h.width < 0 || h.height < 0 ||
        h.num_frames < 0)
        return bad(why, cap, "video task: probe values out of range");
    probe_get(&out->probe, &h);
    out->file = (vt_file){
        .size = h.file_size, .mtime_ns = h.file_mtime_ns, .ino = h.file_ino, .dev = h.file_dev};
    out->partial = h.partial != 0;
    out->chunk_index = h.chunk_index;
    out->chunk_count = h.chunk_count;
    out->first_clip = h.first_clip;
    out->total_clips = h.total_clips;
    out->bytes_copied = h.bytes_copied;
    out->n_clips = h.n_clips;
    if (h.n_clips) {
        out->clips = calloc(h.n_clips, sizeof *out->clips);
        if (!out->clips)
            return -ENOMEM;
    }
    for (uint32_t i = 0; i < h.n_clips; i++) {
        vt_clip_rec r;
        memcpy(&r, base + sizeof h + (uint64_t)i * sizeof r, sizeof r);
        vt_clip *c = &out->clips[i];
        int rc = 0;
        double cd[] = {r.start_s,          r.end_s,     r.fps, r.motion_global_mean,
                       r.motion_patch_min, r.frames_fps};
        if (!fixed_str_ok(r.uuid, sizeof r.uuid) || strlen(r.uuid) > VT_UUID_LEN)
            rc = bad(why, cap, "video task: clip %u: uuid not terminated", i);
        else if (!finite_all(cd, sizeof cd / sizeof cd[0]) || r.start_frame < 0 ||
                 r.end_frame < r.start_frame || r.width < 0 || r.height < 0 || r.num_frames < 0)
            rc = bad(why, cap, "video task: clip %u: span or values out of range", i);
        else if (take(base, size, r.errors, &c->errors) || !text_ok(c->errors))
            rc = bad(why, cap, "video task: clip %u: its error text outside the object", i);
        else if (art_take(&r.mp4, &c->mp4) || art_take(&r.frames, &c->frames) ||
                 art_take(&r.tensor, &c->tensor) || art_take(&r.preview, &c->preview))
            rc = bad(why, cap,
                     "video task: clip %u: an artifact with an ID but no size, or a size "
                     "but no ID",
                     i);
        else if ((uint64_t)r.frames_n * r.frames_h * r.frames_w * 3 != c->frames.size ||
                 (r.frames_n && (r.frames_h > 16384 || r.frames_w > 16384)))
            rc = bad(why, cap, "video task: clip %u: frames %ux%ux%u do not match %llu bytes", i,
                     r.frames_n, r.frames_h, r.frames_w, (unsigned long long)c->frames.size);
        else if ((uint64_t)r.tensor_n * 3 * r.tensor_h * r.tensor_w * 4 != c->tensor.size ||
                 (r.tensor_n && (r.tensor_h > 16384 || r.tensor_w > 16384)))
            rc = bad(why, cap, "video task: clip %u: tensor %ux3x%ux%u does not match %llu bytes",
                     i, r.tensor_n, r.tensor_h, r.tensor_w, (unsigned long long)c->tensor.size);
        if (rc) {
            vt_free(out);
            return rc;
        }
        memcpy(c->uuid, r.uuid, VT_UUID_LEN + 1);
        c->uuid[VT_UUID_LEN] = '\0';
        clip_get(c, &r);
    }
    return 0;
}

uint64_t vt_size(const video_task *t) {
    uint64_t n = sizeof(vt_header) + (uint64_t)t->n_clips * sizeof(vt_clip_rec);
    n = align8(n) + align8(t->path.size) + align8(t->error.size);
    for (uint32_t i = 0; i < t->n_clips; i++)
        n += align8(t->clips[i].errors.size);
    return n;
}

/* Appends b at *at, returning its reference. */
static vt_ref put(uint8_t *base, uint64_t *at, vt_bytes b) {
    vt_ref r = {.off = b.size ? *at : 0, .len = b.size};
    if (b.size) {
        memcpy(base + *at, b.data, b.size);
        uint64_t end = *at + b.size;
        memset(base + end, 0, align8(end) - end);
        *at = align8(end);
    }
    return r;
}

int vt_write(const video_task *t, void *buf, uint64_t cap) {
    if (cap < vt_size(t))
        return -ENOSPC;
    uint8_t *base = buf;
    uint64_t at = align8(sizeof(vt_header) + (uint64_t)t->n_clips * sizeof(vt_clip_rec));
    memset(base, 0, at);
    vt_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, VT_MAGIC, 8);
    h.version = VT_VERSION;
    h.n_clips = t->n_clips;
    h.header_size = sizeof(vt_header);
    h.clip_size = sizeof(vt_clip_rec);
    h.partial = t->partial;
    h.chunk_index = t->chunk_index;
    h.chunk_count = t->chunk_count ? t->chunk_count : 1;
    h.first_clip = t->first_clip;
    h.total_clips =
        t->total_clips > t->first_clip + t->n_clips ? t->total_clips : t->first_clip + t->n_clips;
    h.bytes_copied = t->bytes_copied;
    h.path = put(base, &at, t->path);
    h.error = put(base, &at, t->error);
    h.file_size = t->file.size;
    h.file_mtime_ns = t->file.mtime_ns;
    h.file_ino = t->file.ino;
    h.file_dev = t->file.dev;
    probe_put(&h, &t->probe);
    memcpy(base, &h, sizeof h);
    for (uint32_t i = 0; i < t->n_clips; i++) {
        const vt_clip *c = &t->clips[i];
        vt_clip_rec r;
        memset(&r, 0, sizeof r);
        snprintf(r.uuid, sizeof r.uuid, "%s", c->uuid);
        clip_put(&r, c);
        r.mp4 = art_put(&c->mp4);
        r.frames = art_put(&c->frames);
        r.tensor = art_put(&c->tensor);
        r.preview = art_put(&c->preview);
        r.errors = put(base, &at, c->errors);
        memcpy(base + sizeof h + (uint64_t)i * sizeof r, &r, sizeof r);
    }
    return 0;
}

void vt_free(video_task *t) {
    free(t->clips);
    free(t->clip_texts);
    t->clip_texts = NULL;
    t->clips = NULL;
    t->n_clips = 0;
}

const char *vt_text(vt_bytes b, char *buf, size_t cap) {
    size_t n = b.size < cap - 1 ? (size_t)b.size : cap - 1;
    if (n)
        memcpy(buf, b.data, n);
    buf[n] = '\0';
    return buf;
}
