/*
 * stage_fixture.h - what the stage tests (tests/test_stage_*.c) share: the
 * sample videos, synthetic clips encoded to H.264/MP4 in memory and decoded
 * back, video tasks built from them, and a run of one or two stages as a
 * real pipeline (worker processes, the store) whose output task comes back
 * as a copy.
 *
 * Header-only (static inline), so that each test file stays one executable
 * with tests/helpers.c. Include after helpers.h and criterion.
 */
#ifndef REEL_TESTS_STAGE_FIXTURE_H
#define REEL_TESTS_STAGE_FIXTURE_H

#include "helpers.h"
#include "media.h"
#include "stages_internal.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libavutil/frame.h>
#include <libavutil/pixfmt.h>

/* ---- bytes and samples -------------------------------------------------------------- */

typedef struct sf_blob {
    uint8_t *data;
    uint64_t size;
} sf_blob;

/* The path of a sample video (scripts/samples.sh fetches them; ctest sets
 * REEL_SAMPLES to their directory, else ./samples): malloc'd, the caller's to
 * free(). Skips the test when the sample is not there. */
static inline char *sf_sample_path(const char *name) {
    const char *dir = getenv("REEL_SAMPLES");
    char *path;
    cr_assert_gt(asprintf(&path, "%s/%s", dir ? dir : "samples", name), 0);
    if (access(path, R_OK) != 0)
        cr_skip_test("%s is missing: run scripts/samples.sh", path);
    return path;
}

/* A file's bytes (malloc'd, the caller's to free()). */
static inline sf_blob sf_file(const char *path) {
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    struct stat st;
    cr_assert_eq(fstat(fileno(f), &st), 0);
    sf_blob b = {malloc((size_t)st.st_size + 1), (uint64_t)st.st_size};
    cr_assert_not_null(b.data);
    cr_assert_eq(fread(b.data, 1, (size_t)b.size, f), (size_t)b.size, "%s", path);
    fclose(f);
    return b;
}

/* A sample video's bytes (skips the test when it is not there). */
static inline sf_blob sf_sample(const char *name) {
    char *path = sf_sample_path(name);
    sf_blob b = sf_file(path);
    free(path);
    return b;
}

/* ---- decoding ------------------------------------------------------------------------- */

/* media_decode's callback that counts frames into an int64_t. */
static inline int sf_count_frame(void *arg, int64_t index, const AVFrame *f) {
    (void)index, (void)f;
    ++*(int64_t *)arg;
    return 0;
}

/* Opens data[0..size), fills *probe (may be NULL) and decodes every frame
 * through fn, asserting that it opens and decodes whole (what names it in
 * the messages). */
static inline void sf_decode(const char *what, const uint8_t *data, uint64_t size,
                             int (*fn)(void *arg, int64_t index, const AVFrame *frame), void *arg,
                             vt_probe *probe) {
    media_input *m;
    char why[256];
    int rc = media_open(data, size, NULL, &m, why, sizeof why);
    cr_assert_eq(rc, 0, "%s does not open: %d: %s", what, rc, why);
    if (probe)
        media_probe(m, probe);
    bool partial = false;
    rc = media_decode(m, 0, -1, fn, arg, &partial, why, sizeof why);
    cr_assert(rc == 0 && !partial, "%s does not decode whole: %d: %s", what, rc, why);
    media_close(m);
}

/* ---- clips ------------------------------------------------------------------------ */

/* Paints frame i (w x h RGB24, rows stride bytes apart). */
typedef void (*sf_paint)(uint8_t *rgb, int stride, int w, int h, int i, void *arg);

/* An H.264/MP4 of n frames painted by paint, at fps, with libx264's preset,
 * checked to decode to its n frames. The bytes are the caller's (free()). */
static inline sf_blob sf_encode(const char *preset, int w, int h, double fps, int n, sf_paint paint,
                                void *arg) {
    media_encode_options o = {.encoder = "libx264",
                              .preset = preset,
                              .crf = 18,
                              .threads = 1,
                              .width = w,
                              .height = h,
                              .fps = fps};
    media_output *e;
    char why[256];
    int rc = media_encode_start(&o, &e, why, sizeof why);
    cr_assert_eq(rc, 0, "media_encode_start: %d: %s", rc, why);
    AVFrame *f = av_frame_alloc();
    cr_assert_not_null(f);
    f->format = AV_PIX_FMT_RGB24;
    f->width = w;
    f->height = h;
    cr_assert_geq(av_frame_get_buffer(f, 0), 0);
    for (int i = 0; i < n; i++) {
        cr_assert_geq(av_frame_make_writable(f), 0);
        paint(f->data[0], f->linesize[0], w, h, i, arg);
        rc = media_encode_frame(e, f, why, sizeof why);
        cr_assert_eq(rc, 0, "frame %d: %d: %s", i, rc, why);
    }
    av_frame_free(&f);
    const uint8_t *data;
    uint64_t size;
    rc = media_encode_finish(e, &data, &size, why, sizeof why);
    cr_assert_eq(rc, 0, "media_encode_finish: %d: %s", rc, why);
    sf_blob b = {malloc((size_t)size), size};
    cr_assert_not_null(b.data);
    memcpy(b.data, data, (size_t)size);
    media_encode_free(e);
    /* The clip must decode whole before a stage is blamed for it. */
    char what[96];
    snprintf(what, sizeof what, "the %dx%d %d-frame MP4 just encoded", w, h, n);
    int64_t count = 0;
    sf_decode(what, b.data, b.size, sf_count_frame, &count, NULL);
    cr_assert_eq(count, n, "%s (%llu bytes) decodes to %lld frames", what,
                 (unsigned long long)b.size, (long long)count);
    return b;
}

/* One colour for the whole clip: arg points at 3 bytes. */
static inline void sf_paint_solid(uint8_t *rgb, int stride, int w, int h, int i, void *arg) {
    (void)i;
    const uint8_t *c = arg;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            memcpy(rgb + (size_t)y * stride + (size_t)x * 3, c, 3);
}

/* A grey level per frame: 16 + 8 x i (i < 30), so that a frame's index can
 * be read back from its pixels. */
static inline uint8_t sf_level(int i) {
    return (uint8_t)(16 + 8 * i);
}

static inline int sf_index_of(double level) {
    return (int)((level - 16) / 8 + 0.5);
}

static inline void sf_paint_levels(uint8_t *rgb, int stride, int w, int h, int i, void *arg) {
    (void)arg;
    uint8_t c[3] = {sf_level(i), sf_level(i), sf_level(i)};
    sf_paint_solid(rgb, stride, w, h, i, c);
}

/* ---- tasks -------------------------------------------------------------------------- */

/* Clip k of a task: its span and its MP4 (which may be empty). */
static inline void sf_clip(vt_clip *c, int k, sf_blob mp4, int w, int h, double fps, int frames) {
    memset(c, 0, sizeof *c);
    snprintf(c->uuid, sizeof c->uuid, "00000000-0000-5000-8000-%012d", k);
    c->start_frame = (int64_t)k * frames;
    c->end_frame = c->start_frame + frames;
    c->start_s = c->start_frame / fps;
    c->end_s = c->end_frame / fps;
    c->mp4 = (vt_art){.data = mp4.data, .size = mp4.size};
    c->width = w, c->height = h, c->fps = fps, c->num_frames = frames;
    c->errors = (vt_bytes){(const uint8_t *)"", 0};
}

/* Writes b to a new file of its own, /tmp/reel-test-XXXXXX-<name> (made by
 * mkstemps: never one a killed test left, whatever its pid): its path,
 * malloc'd; the caller unlink()s and free()s it. */
static inline char *sf_tmp_file(const char *name, sf_blob b) {
    char *path;
    cr_assert_gt(asprintf(&path, "/tmp/reel-test-XXXXXX-%s", name), 0);
    int fd = mkstemps(path, (int)strlen(name) + 1);
    cr_assert_geq(fd, 0, "mkstemps %s: %s", path, strerror(errno));
    cr_assert_eq(write(fd, b.data, (size_t)b.size), (ssize_t)b.size);
    close(fd);
    return path;
}

/* The identity of the file at path, as the reader records it. */
static inline vt_file sf_file_id(const char *path) {
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "%s", path);
    return (vt_file){.size = (uint64_t)st.st_size,
                     .mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec,
                     .ino = (uint64_t)st.st_ino,
                     .dev = (uint64_t)st.st_dev};
}

/* The task the reader makes of the video file at path (which must outlive
 * t): its path, the file's identity, and the probe (left zero when the file
 * is no video). */
static inline void sf_source_task(video_task *t, const char *path) {
    memset(t, 0, sizeof *t);
    t->path = (vt_bytes){(const uint8_t *)path, strlen(path)};
    t->file = sf_file_id(path);
    media_input *m;
    char why[256];
    if (media_open_file(path, &t->file, NULL, &m, why, sizeof why) == 0) {
        media_probe(m, &t->probe);
        media_close(m);
    }
}

/* A task of n clips for a made-up video. */
static inline void sf_task(video_task *t, vt_clip *clips, uint32_t n) {
    static const char path[] = "/videos/synthetic.mp4";
    memset(t, 0, sizeof *t);
    t->path = (vt_bytes){(const uint8_t *)path, sizeof path - 1};
    snprintf(t->probe.container, sizeof t->probe.container, "mov,mp4,m4a,3gp,3g2,mj2");
    snprintf(t->probe.codec, sizeof t->probe.codec, "h264");
    t->probe.fps = n ? clips[0].fps : 0;
    t->probe.width = n ? clips[0].width : 0;
    t->probe.height = n ? clips[0].height : 0;
    t->n_clips = n;
    t->clips = clips;
}

/* ---- running stages -------------------------------------------------------------------- */

/* A stage's output, copied out of the store: its items (the chunks of one
 * video, or one task), read back and put together as one task t whose clips'
 * artifacts have their bytes in data (copies of the artifact objects). */
typedef struct sf_out {
    bool forwarded;   /* the stage passed its one input item on */
    uint32_t outputs; /* items */
    uint32_t n_objs;
    struct sf_obj {
        reel_id id;
        uint8_t *data;
        uint64_t size;
        bool artifact;
    } objs[256];
    video_task t;
} sf_out;

typedef struct sf_run_state {
    reel_store *store;
    sf_out *out;
} sf_run_state;

static inline void sf_on_output(void *arg, const reel_task_result *r) {
    sf_run_state *s = arg;
    for (uint32_t k = 0; k < r->n_outputs; k++) {
        bool artifact = r->artifacts >> k & 1;
        if (!artifact) {
            s->out->outputs++;
            s->out->forwarded = r->n_inputs == 1 && reel_id_equal(&r->outputs[k], &r->inputs[0]);
        }
        reel_view v;
        if (s->out->n_objs < 256 && reel_obj_get(s->store, &r->outputs[k], 1, 1000, &v) == 0) {
            struct sf_obj *o = &s->out->objs[s->out->n_objs++];
            o->id = r->outputs[k];
            o->data = malloc(v.size ? v.size : 1);
            if (o->data)
                memcpy(o->data, v.data, v.size);
            o->size = v.size;
            o->artifact = artifact;
            reel_obj_release(s->store, &r->outputs[k]);
        }
        if (!(r->forwarded >> k & 1))
            reel_obj_delete(s->store, &r->outputs[k]);
    }
}

/* The test's loader, the first stage of every run whose task names
 * artifacts: the fixture put each clip artifact as an object of its own,
 * and the loader makes each an artifact of its output item (a copy), so
 * that the stage under test gets them from the executor as in a pipeline. */
static inline int sf_loader(reel_actor_ctx *ctx, const reel_view *in, size_t n,
                            reel_actor_out *out) {
    (void)n;
    video_task t;
    char why[256];
    int rc = vt_read(in[0].data, in[0].size, &t, why, sizeof why);
    if (rc)
        return rc;
    reel_store *store = reel_actor_store(ctx);
    for (uint32_t i = 0; rc == 0 && i < t.n_clips; i++) {
        vt_art *arts[] = {&t.clips[i].mp4, &t.clips[i].frames, &t.clips[i].tensor,
                          &t.clips[i].preview};
        for (int k = 0; rc == 0 && k < 4; k++) {
            if (!vt_art_present(arts[k]))
                continue;
            reel_view v;
            if (reel_obj_get(store, &arts[k]->id, 1, 0, &v) != 0)
                continue; /* not the fixture's: left for the stage to find out */
            void *buf;
            {
                rc = reel_actor_artifact(out, v.size, v.meta, v.meta_size, &arts[k]->id, &buf);
                if (rc == 0)
                    memcpy(buf, v.data, v.size);
                reel_obj_release(store, &v.id);
            }
        }
    }
    uint64_t size = vt_size(&t);
    void *buf;
    if (rc == 0)
        rc = reel_actor_output(out, size, NULL, 0, &buf);
    if (rc == 0)
        rc = vt_write(&t, buf, size);
    vt_free(&t);
    return rc;
}

static const reel_actor_def sf_loader_def = {.name = "sf-loader", .process = sf_loader};

static inline int sf_cmp_chunk(const void *a, const void *b) {
    const video_task *x = a, *y = b;
    return (x->chunk_index > y->chunk_index) - (x->chunk_index < y->chunk_index);
}

/* The bytes of the output object id (NULL when it is not one). */
static inline const struct sf_obj *sf_obj_of(const sf_out *o, const reel_id *id) {
    for (uint32_t i = 0; i < o->n_objs; i++)
        if (reel_id_equal(&o->objs[i].id, id))
            return &o->objs[i];
    return NULL;
}

/* Puts t in the store as a pipeline input (*in): its record, and each clip
 * artifact that has bytes (data) as an object of its own, into put[] (as
 * many as it returns, at most 256), for sf_loader to make artifacts of.
 * The caller deletes them all after the run. */
static inline uint32_t sf_put_input(reel_store *store, const video_task *t, reel_id *in,
                                    reel_id put[256]) {
    video_task in_t = *t;
    vt_clip *clips = calloc(t->n_clips ? t->n_clips : 1, sizeof *clips);
    cr_assert_not_null(clips);
    if (t->n_clips)
        memcpy(clips, t->clips, t->n_clips * sizeof *clips);
    in_t.clips = clips;
    uint32_t n_put = 0;
    for (uint32_t i = 0; i < t->n_clips; i++) {
        vt_art *arts[] = {&clips[i].mp4, &clips[i].frames, &clips[i].tensor, &clips[i].preview};
        for (int k = 0; k < 4; k++) {
            if (!arts[k]->data || !arts[k]->size)
                continue;
            cr_assert_lt(n_put, 256);
            reel_meta m;
            stage_art_meta(&clips[i], (stage_art_kind)k, &m);
            uint8_t meta[256];
            size_t len;
            TH_OK(reel_meta_encode(&m, meta, sizeof meta, &len));
            TH_OK(reel_id_random(&arts[k]->id));
            TH_OK(reel_obj_put(store, &arts[k]->id, arts[k]->data, arts[k]->size, meta,
                               (uint32_t)len, 0, -1));
            put[n_put++] = arts[k]->id;
        }
    }
    uint64_t size = vt_size(&in_t);
    uint8_t *buf = malloc(size);
    cr_assert_not_null(buf);
    TH_OK(vt_write(&in_t, buf, size));
    free(clips);
    TH_OK(reel_id_random(in));
    TH_OK(reel_obj_put(store, in, buf, size, NULL, 0, 0, -1));
    free(buf);
    return n_put;
}

/* Runs defs[0..n) (their arg set to o) as a pipeline over the one task t,
 * each stage with one worker of half a CPU (and gpus of a GPU each), and
 * returns the last stage's output, read back. t's clip artifacts are the
 * bytes their data points at (an ID is made for each). Asserts the run
 * worked and that the store holds nothing of it afterwards. */
static inline sf_out sf_run(reel_store *store, const char *store_path,
                            const reel_actor_def *const *defs, size_t n, double gpus,
                            const reel_curate_options *o, const video_task *t) {
    reel_actor_def d[5];
    cr_assert_leq(n, 4);
    reel_pipeline *p;
    TH_OK(reel_pipeline_new("stage-test", &p));
    reel_id put[4 * 64], in;
    uint32_t n_put = sf_put_input(store, t, &in, put);
    size_t first = 0;
    if (n_put)
        d[first++] = sf_loader_def;
    for (size_t i = 0; i < n; i++) {
        d[first + i] = *defs[i];
        d[first + i].arg = (void *)o;
    }
    for (size_t i = 0; i < first + n; i++) {
        reel_stage_options so = {.cpus = 0.5, .workers = 1, .gpus = i >= first ? gpus : 0};
        TH_OK(reel_pipeline_add(p, &d[i], &so));
    }

    reel_executor_config c;
    reel_executor_config_defaults(&c);
    c.logging_interval = 3600;
    c.autoscale_interval_s = 3600;
    sf_out out;
    memset(&out, 0, sizeof out);
    sf_run_state st = {store, &out};
    reel_run_options ro = {.store = store_path,
                           .config = &c,
                           .inputs = &in,
                           .n_inputs = 1,
                           .on_output = sf_on_output,
                           .arg = &st,
                           .flags = REEL_RUN_QUIET | REEL_RUN_NO_AUTOSCALE};
    reel_run_result res;
    int rc = reel_pipeline_run(p, &ro, &res);
    cr_assert_eq(rc, 0, "run: %d (%s): %s", rc, reel_strerror(rc), res.error);
    cr_assert_eq(res.failed, 0, "a task failed: %s", res.n_failures ? res.failures[0].error : "?");
    reel_run_result_free(&res);
    reel_pipeline_free(p);
    cr_assert_geq(out.outputs, 1, "%u outputs", out.outputs);
    TH_OK(reel_obj_delete(store, &in));
    for (uint32_t i = 0; i < n_put; i++)
        TH_OK(reel_obj_delete(store, &put[i]));
    reel_store_stats s = th_stats(store);
    cr_assert_eq(s.objects_referenced, 0, "%u objects still referenced", s.objects_referenced);
    cr_assert_eq(s.objects_sealed, 0, "%u objects left in the store", s.objects_sealed);

    /* The items, in chunk order, as one task. */
    video_task *chunks = calloc(out.n_objs ? out.n_objs : 1, sizeof *chunks);
    cr_assert_not_null(chunks);
    uint32_t n_chunks = 0, n_clips = 0;
    char why[256];
    for (uint32_t i = 0; i < out.n_objs; i++) {
        if (out.objs[i].artifact)
            continue;
        rc = vt_read(out.objs[i].data, out.objs[i].size, &chunks[n_chunks], why, sizeof why);
        cr_assert_eq(rc, 0, "the output task: %s", why);
        n_clips += chunks[n_chunks++].n_clips;
    }
    qsort(chunks, n_chunks, sizeof *chunks, sf_cmp_chunk);
    out.t = chunks[0];
    out.t.n_clips = n_clips;
    out.t.clips = calloc(n_clips ? n_clips : 1, sizeof *out.t.clips);
    cr_assert_not_null(out.t.clips);
    for (uint32_t i = 0, at = 0; i < n_chunks; i++) {
        if (chunks[i].n_clips)
            memcpy(out.t.clips + at, chunks[i].clips, chunks[i].n_clips * sizeof *out.t.clips);
        at += chunks[i].n_clips;
        vt_free(&chunks[i]);
    }
    free(chunks);
    for (uint32_t i = 0; i < out.t.n_clips; i++) {
        vt_clip *cl = &out.t.clips[i];
        vt_art *arts[] = {&cl->mp4, &cl->frames, &cl->tensor, &cl->preview};
        for (int k = 0; k < 4; k++) {
            if (!vt_art_present(arts[k]))
                continue;
            const struct sf_obj *obj = sf_obj_of(&out, &arts[k]->id);
            cr_assert_not_null(obj, "clip %u: artifact %d is not among the outputs", i, k);
            cr_assert_eq(obj->size, arts[k]->size);
            arts[k]->data = obj->data;
        }
    }
    return out;
}

/* One stage. */
static inline sf_out sf_run1(reel_store *store, const char *store_path, const reel_actor_def *def,
                             const reel_curate_options *o, const video_task *t) {
    const reel_actor_def *defs[1] = {def};
    return sf_run(store, store_path, defs, 1, 0, o, t);
}

static inline void sf_out_free(sf_out *o) {
    vt_free(&o->t);
    for (uint32_t i = 0; i < o->n_objs; i++)
        free(o->objs[i].data);
    memset(o, 0, sizeof *o);
}

/* A clip's error text as a C string (static buffer: one at a time). */
static inline const char *sf_errors(const vt_clip *c) {
    static char buf[VT_TEXT_MAX + 1];
    return vt_text(c->errors, buf, sizeof buf);
}

#endif
