/*
 * writer.c - the last stage: Curator's output layout.
 *
 *   clips/<uuid>.mp4                clips that passed the filters
 *   filtered_clips/<uuid>.mp4       clips the motion filter dropped
 *   previews/<uuid>/preview.jpg     one image per clip
 *   metas/v0/<uuid>.json            the clip's metadata, Curator's fields
 *   metas/v0/<uuid>.frames.npy      its frames, uint8 (n, size, size, 3),
 *                                   with write_frames
 *   metas/v0/<uuid>.tensor.npy      its tensor, float32 (n, 3, size, size),
 *                                   with write_tensors
 *   processed_videos/<name>.json    per input video: its clips, or its error
 *
 * Every file appears whole or not at all: written to a temporary name in
 * the same directory, then renamed. The stage's output is a small summary
 * (writer_summary) for reel-curate's progress and totals.
 *
 * The writer gathers (reel_stage_options.gather): one task takes every chunk
 * of one video that reached it, in any order, sorts them by chunk_index,
 * writes each clip's files from its artifacts (mapped one at a time, never
 * copied into another object), and writes processed_videos/ once. A chunk
 * that never came (chunk_count says how many there were; a stage failed on
 * it under ignore_failures) is named in the video's error, and its clips
 * counted in num_total_clips but written nowhere.
 */
#include "check.h"
#include "stages_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const subdirs[] = {"clips", "filtered_clips", "previews",
                                      "metas", "metas/v0",       "processed_videos"};

static int make_dir(const char *path) {
    if (mkdir(path, 0755) == 0 || errno == EEXIST) {
        struct stat st;
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
            return 0;
        return -ENOTDIR;
    }
    return -errno;
}

int stage_output_dirs(const char *root, char *why, size_t cap) {
    char path[PATH_MAX];
    /* The root and its parents, as mkdir -p. */
    if (snprintf(path, sizeof path, "%s", root) >= (int)sizeof path) {
        snprintf(why, cap, "%s: path too long", root);
        return -ENAMETOOLONG;
    }
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        int rc = make_dir(path);
        *p = '/';
        if (rc) {
            snprintf(why, cap, "cannot make %s: %s", path, strerror(-rc));
            return rc;
        }
    }
    int rc = make_dir(path);
    for (size_t i = 0; rc == 0 && i < sizeof subdirs / sizeof subdirs[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", root, subdirs[i]);
        rc = make_dir(path);
    }
    if (rc)
        snprintf(why, cap, "cannot make %s: %s", path, strerror(-rc));
    return rc;
}

/* Writes head[0..head_size) then data[0..size) to path through a temporary
 * file and a rename. The temporary name is made unique by mkostemp (O_EXCL):
 * one named by the pid alone could be another host's on a shared output
 * path (reel-cluster's nodes), or a killed writer's left behind. */
static int write_parts(const char *path, const void *head, size_t head_size, const void *data,
                       size_t size) {
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", path) >= (int)sizeof tmp)
        return -ENAMETOOLONG;
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return -errno;
    mode_t mask = umask(0); /* the writers are single-threaded */
    umask(mask);
    if (fchmod(fd, 0644 & ~mask) != 0) { /* mkostemp makes it 0600 */
        int e = errno;
        close(fd);
        unlink(tmp);
        return -e;
    }
    int rc = 0;
    const struct {
        const uint8_t *p;
        size_t n;
    } parts[2] = {{head, head_size}, {data, size}};
    for (int k = 0; k < 2 && rc == 0; k++) {
        const uint8_t *p = parts[k].p;
        size_t left = parts[k].n;
        while (left > 0 && rc == 0) {
            ssize_t n = write(fd, p, left);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                rc = n < 0 ? -errno : -EIO;
            else
                p += n, left -= (size_t)n;
        }
    }
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -errno;
    if (rc)
        unlink(tmp);
    return rc;
}

/* Writes the bytes to path through a temporary file and a rename. */
int stage_write_file(const char *path, const void *data, size_t size) {
    return write_parts(path, NULL, 0, data, size);
}

/* Writes an array as a NumPy .npy file, format 1.0: the magic, the version,
 * the header's length (little-endian 16 bits), then the header - a Python
 * dict literal padded with spaces and ended by '\n' so that the data starts
 * at a multiple of 64 bytes - then the data, C order. */
static int write_npy(const char *path, const char *descr, const uint32_t *shape, int dims,
                     const void *data, size_t size) {
    char head[256];
    int n = snprintf(head + 10, sizeof head - 10,
                     "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    for (int d = 0; d < dims; d++)
        n += snprintf(head + 10 + n, sizeof head - 10 - (size_t)n, "%s%u", d ? ", " : "", shape[d]);
    n += snprintf(head + 10 + n, sizeof head - 10 - (size_t)n, "), }");
    size_t total = (10 + (size_t)n + 1 + 63) / 64 * 64; /* + 1: the '\n' */
    if (total > sizeof head)
        return -EOVERFLOW;
    memset(head + 10 + n, ' ', total - 10 - (size_t)n - 1);
    head[total - 1] = '\n';
    memcpy(head, "\x93NUMPY\x01\x00", 8);
    head[8] = (char)((total - 10) & 0xff);
    head[9] = (char)((total - 10) >> 8);
    return write_parts(path, head, total, data, size);
}

/* ---- a JSON text in memory ------------------------------------------------- */

typedef struct json {
    char *buf;
    size_t len, cap;
    int oom;
} json;

static void jput(json *j, const char *s, size_t n) {
    if (j->oom)
        return;
    if (j->len + n + 1 > j->cap) {
        size_t cap = j->cap ? j->cap * 2 : 1024;
        while (cap < j->len + n + 1)
            cap *= 2;
        char *b = realloc(j->buf, cap);
        if (!b) {
            j->oom = 1;
            return;
        }
        j->buf = b;
        j->cap = cap;
    }
    memcpy(j->buf + j->len, s, n);
    j->len += n;
    j->buf[j->len] = '\0';
}

static void jlit(json *j, const char *s) {
    jput(j, s, strlen(s));
}

static void jprintf(json *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void jprintf(json *j, const char *fmt, ...) {
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        jput(j, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* The length of a valid UTF-8 sequence at s (at most n bytes), or 0. */
static size_t utf8_len(const uint8_t *s, size_t n) {
    size_t len = s[0] < 0xc2 ? 0 : s[0] < 0xe0 ? 2 : s[0] < 0xf0 ? 3 : s[0] < 0xf5 ? 4 : 0;
    if (len == 0 || len > n)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xf0 && s[1] < 0x90) ||
        (s[0] == 0xf4 && s[1] > 0x8f) || (s[0] == 0xed && s[1] > 0x9f))
        return 0; /* overlong, above U+10FFFF, or a surrogate */
    return len;
}

/* A JSON string of n bytes: quotes, backslashes and control characters
 * escaped, invalid UTF-8 replaced by U+FFFD, so the file is always JSON. */
static void jstr(json *j, const void *data, size_t n) {
    const uint8_t *s = data;
    jlit(j, "\"");
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            jput(j, e, 2);
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            jprintf(j, "\\u%04x", c);
            i++;
        } else if (c < 0x80) {
            jput(j, (const char *)&s[i], 1);
            i++;
        } else {
            size_t len = utf8_len(s + i, n - i);
            if (len) {
                jput(j, (const char *)&s[i], len);
                i += len;
            } else {
                jlit(j, "\\ufffd");
                i++;
            }
        }
    }
    jlit(j, "\"");
}

static void jnum(json *j, double x) {
    if (x != x || x > 1e300 || x < -1e300)
        jlit(j, "null");
    else
        jprintf(j, "%.17g", x);
}

/* ---- the records ------------------------------------------------------------- */

/* The file name of processed_videos/: the input's last component. */
static void video_name(vt_bytes path, char *out, size_t cap) {
    char full[PATH_MAX];
    vt_text(path, full, sizeof full);
    const char *slash = strrchr(full, '/');
    const char *base = slash && slash[1] ? slash + 1 : full;
    if (!*base)
        base = "video";
    size_t n = strlen(base) < cap - 1 ? strlen(base) : cap - 1;
    memcpy(out, base, n);
    out[n] = '\0';
}

static void clip_meta(json *j, const video_task *t, const vt_clip *c, const char *location) {
    jlit(j, "{\"span_uuid\": ");
    jstr(j, c->uuid, strlen(c->uuid));
    jlit(j, ", \"source_video\": ");
    jstr(j, t->path.data, t->path.size);
    jlit(j, ", \"duration_span\": [");
    jnum(j, c->start_s);
    jlit(j, ", ");
    jnum(j, c->end_s);
    jprintf(j, "], \"width_source\": %d, \"height_source\": %d, \"framerate_source\": ",
            (int)t->probe.width, (int)t->probe.height);
    jnum(j, t->probe.fps);
    jprintf(j,
            ", \"num_frames_source\": %" PRId64 ", \"width\": %d, \"height\": %d, \"framerate\": ",
            t->probe.num_frames, (int)c->width, (int)c->height);
    jnum(j, c->fps);
    jprintf(j, ", \"num_frames\": %" PRId64 ", \"codec\": ", c->num_frames);
    const char *codec = vt_art_present(&c->mp4) ? "h264" : "";
    jstr(j, codec, strlen(codec));
    jprintf(j, ", \"num_bytes\": %" PRIu64 ", \"clip_location\": ", c->mp4.size);
    if (location)
        jstr(j, location, strlen(location));
    else
        jlit(j, "null");
    jlit(j, ", \"motion_score\": ");
    if (c->has_motion) {
        jlit(j, "{\"global_mean\": ");
        jnum(j, c->motion_global_mean);
        jlit(j, ", \"per_patch_min_256\": ");
        jnum(j, c->motion_patch_min);
        jlit(j, "}");
    } else {
        jlit(j, "null");
    }
    jprintf(j, ", \"filtered\": %s, \"errors\": ", c->filtered ? "true" : "false");
    if (c->errors.size) {
        jlit(j, "[");
        jstr(j, c->errors.data, c->errors.size);
        jlit(j, "]");
    } else {
        jlit(j, "[]");
    }
    bool valid = vt_art_present(&c->mp4) && c->errors.size == 0;
    jprintf(j, ", \"valid\": %s}\n", valid ? "true" : "false");
}

/* processed_videos/<name>.json: the video, what came of it, its clips. */
static void video_record(json *j, const video_task *t, const char *error) {
    jlit(j, "{\"video\": ");
    jstr(j, t->path.data, t->path.size);
    jlit(j, ", \"container\": ");
    jstr(j, t->probe.container, strlen(t->probe.container));
    jlit(j, ", \"video_codec\": ");
    jstr(j, t->probe.codec, strlen(t->probe.codec));
    jprintf(j, ", \"width\": %d, \"height\": %d, \"framerate\": ", (int)t->probe.width,
            (int)t->probe.height);
    jnum(j, t->probe.fps);
    jlit(j, ", \"duration\": ");
    jnum(j, t->probe.duration_s);
    jprintf(j, ", \"num_frames\": %" PRId64 ", \"num_bytes\": %" PRIu64 ", \"partial\": %s",
            t->probe.num_frames, t->probe.num_bytes, t->partial ? "true" : "false");
    uint32_t kept = 0, filtered = 0;
    for (int pass = 0; pass < 2; pass++) {
        jlit(j, pass ? ", \"filtered_clips\": [" : ", \"clips\": [");
        int first = 1;
        for (uint32_t i = 0; i < t->n_clips; i++) {
            const vt_clip *c = &t->clips[i];
            if (!c->written || (c->filtered != (pass == 1)))
                continue;
            if (!first)
                jlit(j, ", ");
            first = 0;
            jstr(j, c->uuid, strlen(c->uuid));
            if (pass)
                filtered++;
            else
                kept++;
        }
        jlit(j, "]");
    }
    jprintf(j, ", \"num_total_clips\": %u, \"num_clips_written\": %u, \"num_clips_filtered\": %u",
            t->total_clips > t->n_clips ? t->total_clips : t->n_clips, kept, filtered);
    jlit(j, ", \"error\": ");
    if (error && *error)
        jstr(j, error, strlen(error));
    else
        jlit(j, "null");
    /* A video that decoded in part but gave clips is valid, its error kept. */
    bool valid = !(error && *error) || kept + filtered > 0;
    jprintf(j, ", \"valid\": %s}\n", valid ? "true" : "false");
}

REEL_API int reel_curate_record_failure(const reel_curate_options *o, const char *path,
                                        const char *error) {
    REEL_NEED(o, "o");
    REEL_NEED(o->output_dir, "o->output_dir");
    REEL_NEED(path, "path");
    REEL_NEED(error, "error");
    char why[256];
    int rc = stage_output_dirs(o->output_dir, why, sizeof why);
    if (rc)
        return rc;
    video_task t;
    memset(&t, 0, sizeof t);
    t.path = (vt_bytes){(const uint8_t *)path, strlen(path)};
    json j = {0};
    video_record(&j, &t, error);
    char name[NAME_MAX], file[PATH_MAX];
    video_name(t.path, name, sizeof name);
    rc = j.oom ? -ENOMEM : 0;
    if (rc == 0 && snprintf(file, sizeof file, "%s/processed_videos/%s.json", o->output_dir,
                            name) >= (int)sizeof file)
        rc = -ENAMETOOLONG;
    if (rc == 0)
        rc = stage_write_file(file, j.buf, j.len);
    free(j.buf);
    return rc;
}

/* ---- the stage ------------------------------------------------------------------ */

static int writer_setup(reel_actor_ctx *ctx) {
    char why[256];
    int rc = stage_output_dirs(stage_options(ctx)->output_dir, why, sizeof why);
    if (rc)
        reel_actor_set_error(ctx, "%s", why);
    return rc;
}

/* Writes artifact k of c (mapped for the write alone) with write(path, data,
 * size, arg). One that cannot be mapped is the clip's error, in text (cap
 * bytes, alive until the record is written), and goes from the clip; 1 then,
 * else write's code. */
static int write_art(reel_actor_ctx *ctx, vt_clip *c, stage_art_kind k, const char *path,
                     int (*write)(const char *path, const vt_clip *c, const void *data,
                                  uint64_t size),
                     char *text, size_t cap) {
    char why[256];
    vt_art *a = k == STAGE_ART_MP4      ? &c->mp4
                : k == STAGE_ART_FRAMES ? &c->frames
                : k == STAGE_ART_TENSOR ? &c->tensor
                                        : &c->preview;
    if (stage_art_get(ctx, c, k, a, why, sizeof why) != 0) {
        stage_add_error(c, text, cap, "writer: %s", why);
        stage_art_drop(c, k);
        return 1;
    }
    int rc = write(path, c, a->data, a->size);
    stage_art_release(ctx, a);
    return rc;
}

static int put_whole(const char *path, const vt_clip *c, const void *data, uint64_t size) {
    (void)c;
    return stage_write_file(path, data, size);
}

static int put_frames(const char *path, const vt_clip *c, const void *data, uint64_t size) {
    const uint32_t shape[] = {c->frames_n, c->frames_h, c->frames_w, 3};
    return write_npy(path, "|u1", shape, 4, data, size);
}

static int put_tensor(const char *path, const vt_clip *c, const void *data, uint64_t size) {
    const uint32_t shape[] = {c->tensor_n, 3, c->tensor_h, c->tensor_w};
    return write_npy(path, "<f4", shape, 4, data, size);
}

static int write_clip(reel_actor_ctx *ctx, const reel_curate_options *o, const video_task *t,
                      vt_clip *c) {
    const char *root = o->output_dir;
    char file[PATH_MAX], dir[PATH_MAX], text[VT_TEXT_MAX];
    json j = {0};
    int rc = 0;
    const char *location = NULL;
    if (vt_art_present(&c->mp4)) {
        snprintf(file, sizeof file, "%s/%s/%s.mp4", root, c->filtered ? "filtered_clips" : "clips",
                 c->uuid);
        rc = write_art(ctx, c, STAGE_ART_MP4, file, put_whole, text, sizeof text);
        if (rc == 0) {
            location = file;
            c->written = true;
        }
        rc = rc > 0 ? 0 : rc;
    }
    if (rc == 0 && vt_art_present(&c->preview)) {
        snprintf(dir, sizeof dir, "%s/previews/%s", root, c->uuid);
        rc = make_dir(dir);
        char img[PATH_MAX];
        if (rc == 0 && snprintf(img, sizeof img, "%s/preview.jpg", dir) < (int)sizeof img)
            rc = write_art(ctx, c, STAGE_ART_PREVIEW, img, put_whole, text, sizeof text);
        rc = rc > 0 ? 0 : rc;
    }
    /* Frames and tensors come only when written (the pipeline makes them
     * then); a clip the stages could not make them of has none. */
    if (rc == 0 && o->write_frames && vt_art_present(&c->frames)) {
        snprintf(file, sizeof file, "%s/metas/v0/%s.frames.npy", root, c->uuid);
        rc = write_art(ctx, c, STAGE_ART_FRAMES, file, put_frames, text, sizeof text);
        rc = rc > 0 ? 0 : rc;
    }
    if (rc == 0 && o->write_tensors && vt_art_present(&c->tensor)) {
        snprintf(file, sizeof file, "%s/metas/v0/%s.tensor.npy", root, c->uuid);
        rc = write_art(ctx, c, STAGE_ART_TENSOR, file, put_tensor, text, sizeof text);
        c->tensor_written = rc == 0;
        rc = rc > 0 ? 0 : rc;
    }
    if (rc == 0) {
        if (location) /* the MP4's path, as the metadata names it */
            snprintf(file, sizeof file, "%s/%s/%s.mp4", root,
                     c->filtered ? "filtered_clips" : "clips", c->uuid);
        clip_meta(&j, t, c, location);
        snprintf(file, sizeof file, "%s/metas/v0/%s.json", root, c->uuid);
        rc = j.oom ? -ENOMEM : stage_write_file(file, j.buf, j.len);
    }
    free(j.buf);
    if (rc)
        reel_actor_set_error(ctx, "clip %s: cannot write %s: %s", c->uuid, file, strerror(-rc));
    /* The clip's error text lives in text: the record is written above. */
    c->errors = (vt_bytes){NULL, 0};
    return rc;
}

static int cmp_chunk(const void *a, const void *b) {
    const video_task *x = a, *y = b;
    return (x->chunk_index > y->chunk_index) - (x->chunk_index < y->chunk_index);
}

/* Appends the sentences of add ("a; b") to the video's error text (buf, cap
 * bytes), each once: every chunk of a video carries the sentences of the
 * stages before the split. */
static void add_sentences(char *buf, size_t cap, const char *add) {
    while (*add) {
        const char *end = strstr(add, "; ");
        size_t n = end ? (size_t)(end - add) : strlen(add);
        bool seen = false;
        for (const char *p = buf; !seen && *p;) {
            const char *e = strstr(p, "; ");
            size_t m = e ? (size_t)(e - p) : strlen(p);
            seen = m == n && memcmp(p, add, n) == 0;
            p += m + (e ? 2 : 0);
        }
        size_t used = strlen(buf);
        if (!seen && n && used + (used ? 2 : 0) + n < cap)
            snprintf(buf + used, cap - used, "%s%.*s", used ? "; " : "", (int)n, add);
        add += n + (end ? 2 : 0);
    }
}

/* The missing chunks of a video whose records are rec[0..n) (sorted, each
 * chunk once): a sentence for each run of them in buf (cap bytes). Returns
 * how many clips they held. */
static uint32_t missing_chunks(const video_task *rec, size_t n, char *buf, size_t cap) {
    uint32_t count = rec[0].chunk_count, total = rec[0].total_clips, lost = 0;
    uint32_t want = 0, clip = 0; /* the next chunk and clip expected */
    for (size_t i = 0; i <= n; i++) {
        uint32_t at = i < n ? rec[i].chunk_index : count;
        uint32_t first = i < n ? rec[i].first_clip : total;
        if (at > want) {
            char line[256];
            uint32_t clips = first > clip ? first - clip : 0;
            if (at - want == 1)
                snprintf(line, sizeof line,
                         "writer: chunk %u of %u (%u clip%s) never reached the writer: a stage "
                         "failed on it",
                         want + 1, count, clips, clips == 1 ? "" : "s");
            else
                snprintf(line, sizeof line,
                         "writer: chunks %u to %u of %u (%u clip%s) never reached the writer: a "
                         "stage failed on them",
                         want + 1, at, count, clips, clips == 1 ? "" : "s");
            add_sentences(buf, cap, line);
            lost += clips;
        }
        if (i < n) {
            want = at + 1;
            clip = rec[i].first_clip + rec[i].n_clips;
        }
    }
    return lost;
}

/* The clip writer: one chunk's clips into their files, then the chunk's
 * record on to the writer without its artifacts, which go now (the
 * executor deletes what is not carried on): the store holds a video's clips
 * only while they wait to be written, never the whole video's at once. */
static int clip_writer_process(reel_actor_ctx *ctx, const reel_view *in, size_t n,
                               reel_actor_out *out) {
    video_task t;
    int rc = stage_read_task(ctx, "clip-writer", in, n, &t);
    if (rc)
        return rc;
    const reel_curate_options *o = stage_options(ctx);
    for (uint32_t i = 0; rc == 0 && i < t.n_clips; i++) {
        rc = write_clip(ctx, o, &t, &t.clips[i]);
        for (int k = STAGE_ART_MP4; k <= STAGE_ART_PREVIEW; k++)
            stage_art_drop(&t.clips[i], (stage_art_kind)k);
    }
    if (rc == 0)
        rc = stage_write_task(ctx, out, &t, true);
    vt_free(&t);
    return rc;
}

static int writer_process(reel_actor_ctx *ctx, const reel_view *in, size_t n, reel_actor_out *out) {
    if (n == 0) {
        reel_actor_set_error(ctx, "a task takes a video's chunks, not none");
        return -EINVAL;
    }
    video_task *rec = calloc(n, sizeof *rec);
    if (!rec) {
        reel_actor_set_error(ctx, "out of memory");
        return -ENOMEM;
    }
    int rc = 0;
    size_t got = 0;
    for (; rc == 0 && got < n; got++)
        rc = stage_read_record(ctx, "writer", &in[got], &rec[got]);
    if (rc) {
        got--;
        goto done;
    }
    /* The chunks of one video, in order, each once. */
    qsort(rec, n, sizeof *rec, cmp_chunk);
    uint32_t n_clips = 0;
    for (size_t i = 0; i < n; i++) {
        const video_task *r = &rec[i];
        if (r->chunk_count != rec[0].chunk_count || r->total_clips != rec[0].total_clips ||
            r->path.size != rec[0].path.size ||
            memcmp(r->path.data, rec[0].path.data, r->path.size) != 0 ||
            (i && r->chunk_index == rec[i - 1].chunk_index) ||
            (i && r->first_clip < rec[i - 1].first_clip + rec[i - 1].n_clips)) {
            reel_actor_set_error(ctx,
                                 "chunk %u of %u: not of the same video as chunk %u, or a "
                                 "chunk twice",
                                 r->chunk_index + 1, r->chunk_count, rec[0].chunk_index + 1);
            rc = -EBADMSG;
            goto done;
        }
        n_clips += r->n_clips;
    }
    const reel_curate_options *o = stage_options(ctx);
    const char *root = o->output_dir;
    /* The video as one task: the first chunk's header, every chunk's clips. */
    video_task t = rec[0];
    t.n_clips = n_clips;
    t.clips = calloc(n_clips ? n_clips : 1, sizeof *t.clips);
    if (!t.clips) {
        reel_actor_set_error(ctx, "out of memory");
        rc = -ENOMEM;
        goto done;
    }
    char error[VT_TEXT_MAX] = "";
    writer_summary sum;
    memset(&sum, 0, sizeof sum);
    memcpy(sum.magic, WRITER_SUMMARY_MAGIC, 8);
    for (size_t i = 0, at = 0; i < n; i++) {
        char text[VT_TEXT_MAX];
        if (rec[i].n_clips) /* a chunk of none has no clip array */
            memcpy(t.clips + at, rec[i].clips, rec[i].n_clips * sizeof *t.clips);
        at += rec[i].n_clips;
        t.partial |= rec[i].partial;
        add_sentences(error, sizeof error, vt_text(rec[i].error, text, sizeof text));
        sum.bytes_copied += rec[i].bytes_copied;
    }
    missing_chunks(rec, n, error, sizeof error);
    sum.clips = t.total_clips > n_clips ? t.total_clips : n_clips;
    sum.duration_s = t.probe.duration_s;
    sum.frames = t.probe.num_frames;
    sum.partial = t.partial;
    sum.source_bytes = t.probe.num_bytes;
    video_name(t.path, sum.name, sizeof sum.name);
    vt_text(t.path, sum.path, sizeof sum.path);
    for (uint32_t i = 0; i < t.n_clips; i++) {
        const vt_clip *c = &t.clips[i];
        sum.clips_written += c->written && !c->filtered;
        sum.clips_filtered += c->written && c->filtered;
        sum.tensors_gpu += c->tensor_written && c->tensor_gpu;
        sum.tensors_cpu += c->tensor_written && !c->tensor_gpu;
    }
    {
        json j = {0};
        video_record(&j, &t, error);
        char name[NAME_MAX], file[PATH_MAX];
        video_name(t.path, name, sizeof name);
        snprintf(file, sizeof file, "%s/processed_videos/%s.json", root, name);
        rc = j.oom ? -ENOMEM : stage_write_file(file, j.buf, j.len);
        free(j.buf);
        if (rc)
            reel_actor_set_error(ctx, "cannot write %s: %s", file, strerror(-rc));
        /* Damage that still left clips is recorded, not a failure. */
        sum.failed = error[0] != '\0' && sum.clips_written + sum.clips_filtered == 0;
        snprintf(sum.error, sizeof sum.error, "%s", error);
    }
    free(t.clips);
    if (rc == 0) {
        void *buf;
        rc = reel_actor_output(out, sizeof sum, NULL, 0, &buf);
        if (rc == 0)
            memcpy(buf, &sum, sizeof sum);
    }
done:
    for (size_t i = 0; i < got; i++)
        vt_free(&rec[i]);
    free(rec);
    return rc;
}

const reel_actor_def stage_clip_writer_def = {
    .name = "clip-writer", .setup = writer_setup, .process = clip_writer_process, .cpus = 1};

const reel_actor_def stage_writer_def = {
    .name = "writer", .setup = writer_setup, .process = writer_process, .cpus = 1};

REEL_API int reel_curate_read_summary(const void *data, uint64_t size,
                                      reel_curate_video_summary *out) {
    REEL_NEED(data, "data");
    REEL_NEED(out, "out");
    writer_summary w;
    if (size != sizeof w)
        return -EBADMSG;
    memcpy(&w, data, sizeof w);
    if (memcmp(w.magic, WRITER_SUMMARY_MAGIC, 8) != 0 || w.clips_written > w.clips ||
        w.clips_filtered > w.clips - w.clips_written || w.duration_s != w.duration_s ||
        w.duration_s < 0 || w.frames < 0 || !memchr(w.name, '\0', sizeof w.name) ||
        !memchr(w.path, '\0', sizeof w.path) || !memchr(w.error, '\0', sizeof w.error) ||
        w.tensors_gpu > w.clips_written + w.clips_filtered ||
        w.tensors_cpu > w.clips_written + w.clips_filtered - w.tensors_gpu)
        return -EBADMSG;
    *out = (reel_curate_video_summary){.clips = w.clips,
                                       .bytes_copied = w.bytes_copied,
                                       .source_bytes = w.source_bytes,
                                       .clips_written = w.clips_written,
                                       .clips_filtered = w.clips_filtered,
                                       .tensors_gpu = w.tensors_gpu,
                                       .tensors_cpu = w.tensors_cpu,
                                       .partial = w.partial != 0,
                                       .failed = w.failed != 0,
                                       .duration_s = w.duration_s,
                                       .frames = w.frames};
    memcpy(out->name, w.name, sizeof out->name);
    memcpy(out->path, w.path, sizeof out->path);
    memcpy(out->error, w.error, sizeof out->error);
    return 0;
}
