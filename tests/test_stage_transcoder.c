/*
 * test_stage_transcoder.c - the transcoder stage (stages/transcoder.c): each
 * clip's frames [start, end) of the source, exactly, as H.264 in MP4, from
 * one pass of decoding; clips that overlap, run past the end or start after
 * it; an encoder that cannot start; a source that is no video; a source file
 * changed since the reader saw it; the frames and previews it takes as it encodes,
 * against those the frames and preview stages take of its MP4s.
 *
 * The source is synthetic: 216 frames of one colour each, frame k painted
 * with levels (k mod 6, k / 6 mod 6, k / 36) of LEVELS, so that any decoded
 * frame's mean colour names its source frame.
 */
#include "clip_util.h"
#include "helpers.h"
#include "stage_fixture.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <string.h>

static const char *store_path;
static reel_store *store;

static void setup(void) {
    th_init();
    store = th_store_new(64 << 20, 1024, &store_path);
}

TestSuite(stage_transcoder, .init = setup, .fini = th_fini, .timeout = 60);

#define W      64
#define H      48
#define FPS    25.0
#define FRAMES 216

static const uint8_t LEVELS[6] = {20, 60, 100, 140, 180, 220};

static void paint_index(uint8_t *rgb, int stride, int w, int h, int i, void *arg) {
    (void)arg;
    uint8_t c[3] = {LEVELS[i % 6], LEVELS[i / 6 % 6], LEVELS[i / 36 % 6]};
    sf_paint_solid(rgb, stride, w, h, i, c);
}

/* The source frame an RGB24 picture of px pixels shows (-1: none). */
static int index_of_rgb(const uint8_t *rgb, size_t px) {
    int digit[3];
    for (int c = 0; c < 3; c++) {
        double sum = 0;
        for (size_t k = 0; k < px; k++)
            sum += rgb[3 * k + c];
        double mean = sum / (double)px;
        int best = 0;
        for (int l = 1; l < 6; l++)
            if (fabs(mean - LEVELS[l]) < fabs(mean - LEVELS[best]))
                best = l;
        if (fabs(mean - LEVELS[best]) > 12)
            return -1;
        digit[c] = best;
    }
    return digit[0] + 6 * digit[1] + 36 * digit[2];
}

/* The source frame a decoded frame shows (-1: none). */
static int index_of(const AVFrame *f) {
    uint8_t rgb[8 * 6 * 3];
    if (media_frame_to_rgb(f, 8, 6, rgb) != 0)
        return -1;
    return index_of_rgb(rgb, 8 * 6);
}

typedef struct seen {
    int n;
    int index[FRAMES];
} seen;

static int collect(void *arg, int64_t i, const AVFrame *f) {
    seen *s = arg;
    (void)i;
    if (s->n < FRAMES)
        s->index[s->n] = index_of(f);
    s->n++;
    return 0;
}

/* Decodes a clip's MP4: the source frames it shows, in order. */
static seen decode_clip(const vt_clip *c, vt_probe *probe) {
    char what[64];
    snprintf(what, sizeof what, "clip %s", c->uuid);
    seen s = {0};
    sf_decode(what, c->mp4.data, c->mp4.size, collect, &s, probe);
    return s;
}

static sf_blob source;
static char *source_path; /* source, written to a file of its own */

static void make_source(void) {
    source = sf_encode("veryfast", W, H, FPS, FRAMES, paint_index, NULL);
    source_path = sf_tmp_file("colours.mp4", source);
}

static void drop_source(void) {
    free(source.data);
    unlink(source_path);
    free(source_path);
}

/* A task for the video file at path (which must outlive it). */
static void task_with(video_task *t, vt_clip *clips, uint32_t n, const char *path) {
    sf_source_task(t, path);
    if (!(t->probe.fps > 0))
        t->probe.fps = FPS; /* bytes that are no video: as the splitter had them */
    t->clips = clips;
    t->n_clips = n;
}

static void span(vt_clip *c, int64_t start, int64_t end) {
    memset(c, 0, sizeof *c);
    snprintf(c->uuid, sizeof c->uuid, "00000000-0000-5000-8000-%012lld", (long long)start);
    c->start_frame = start;
    c->end_frame = end;
    c->start_s = start / FPS;
    c->end_s = end / FPS;
}

static sf_out transcode(const reel_curate_options *o, const video_task *t) {
    return sf_run1(store, store_path, &stage_transcoder_def, o, t);
}

Test(stage_transcoder, every_clip_holds_exactly_its_frames) {
    make_source();
    /* From the first frame, apart, overlapping, up to the last frame. */
    static const int64_t spans[][2] = {{0, 30}, {30, 75}, {50, 120}, {150, 190}, {190, 216}};
    enum { N = sizeof spans / sizeof spans[0] };
    vt_clip clips[N];
    for (int k = 0; k < N; k++)
        span(&clips[k], spans[k][0], spans[k][1]);
    video_task t;
    task_with(&t, clips, N, source_path);
    cr_assert_eq(t.probe.num_frames, FRAMES);
    reel_curate_options o;
    reel_curate_defaults(&o);
    sf_out out = transcode(&o, &t);
    cr_expect(memcmp(&out.t.file, &t.file, sizeof t.file) == 0, "the file's identity stays");
    cr_expect_eq(out.t.error.size, 0);
    cr_assert_eq(out.t.n_clips, N);
    for (int k = 0; k < N; k++) {
        const vt_clip *c = &out.t.clips[k];
        cr_expect_str_eq(c->uuid, clips[k].uuid);
        cr_expect_str_eq(sf_errors(c), "", "clip %d", k);
        cr_assert_gt(c->mp4.size, 0, "clip %d has no MP4: %s", k, sf_errors(c));
        int64_t want = spans[k][1] - spans[k][0];
        cr_expect_eq(c->num_frames, want, "clip %d", k);
        cr_expect_eq(c->width, W);
        cr_expect_eq(c->height, H);
        cr_expect_float_eq(c->fps, FPS, 1e-9);
        vt_probe p;
        seen s = decode_clip(c, &p);
        cr_expect_str_eq(p.codec, "h264", "clip %d", k);
        cr_expect(strstr(p.container, "mp4"), "clip %d: container %s", k, p.container);
        cr_expect_eq(p.width, W);
        cr_expect_float_eq(p.fps, FPS, 1e-6);
        cr_assert_eq(s.n, want, "clip %d [%lld, %lld): %d frames decoded", k,
                     (long long)spans[k][0], (long long)spans[k][1], s.n);
        for (int j = 0; j < s.n; j++)
            cr_assert_eq(s.index[j], spans[k][0] + j, "clip %d frame %d shows source frame %d", k,
                         j, s.index[j]);
    }
    sf_out_free(&out);
    drop_source();
}

/* A clip of one frame: an MP4 whose moov is larger than its media data. */
Test(stage_transcoder, a_one_frame_clip_is_a_valid_mp4) {
    make_source();
    vt_clip clips[1];
    span(&clips[0], 100, 101);
    video_task t;
    task_with(&t, clips, 1, source_path);
    reel_curate_options o;
    reel_curate_defaults(&o);
    sf_out out = transcode(&o, &t);
    const vt_clip *c = &out.t.clips[0];
    cr_assert_gt(c->mp4.size, 0, "%s", sf_errors(c));
    cr_expect_eq(c->num_frames, 1);
    vt_probe p;
    seen s = decode_clip(c, &p);
    cr_expect_eq(s.n, 1);
    cr_expect_eq(s.index[0], 100);
    sf_out_free(&out);
    drop_source();
}

Test(stage_transcoder, clips_past_the_end_keep_what_there_is) {
    make_source();
    static const int64_t spans[][2] = {{10, 20}, {200, 240}, {230, 250}};
    vt_clip clips[3];
    for (int k = 0; k < 3; k++)
        span(&clips[k], spans[k][0], spans[k][1]);
    video_task t;
    task_with(&t, clips, 3, source_path);
    reel_curate_options o;
    reel_curate_defaults(&o);
    sf_out out = transcode(&o, &t);
    const vt_clip *c = out.t.clips;
    cr_assert_eq(out.t.n_clips, 3);
    cr_expect_eq(c[0].num_frames, 10);
    /* The video ends inside the second: its 16 frames. */
    cr_expect_eq(c[1].num_frames, FRAMES - 200);
    vt_probe p;
    seen s = decode_clip(&c[1], &p);
    cr_expect_eq(s.n, FRAMES - 200);
    cr_expect_eq(s.index[0], 200);
    /* The third starts after it: an error, no MP4; the video goes on. */
    cr_expect_eq(c[2].mp4.size, 0);
    cr_expect(strstr(sf_errors(&c[2]), "transcoder: the video has no frame 230"), "%s",
              sf_errors(&c[2]));
    cr_expect_eq(out.t.error.size, 0);
    sf_out_free(&out);
    drop_source();
}

Test(stage_transcoder, an_encoder_that_fails_fails_every_clip_not_the_run) {
    make_source();
    vt_clip clips[2];
    span(&clips[0], 0, 10);
    span(&clips[1], 20, 30);
    video_task t;
    task_with(&t, clips, 2, source_path);
    reel_curate_options o;
    reel_curate_defaults(&o);
    o.encoder = "no-such-encoder";
    sf_out out = transcode(&o, &t);
    cr_assert_eq(out.t.n_clips, 2);
    for (int k = 0; k < 2; k++) {
        cr_expect_eq(out.t.clips[k].mp4.size, 0);
        cr_expect(strstr(sf_errors(&out.t.clips[k]), "transcoder: cannot start the encoder"), "%s",
                  sf_errors(&out.t.clips[k]));
        cr_expect(strstr(sf_errors(&out.t.clips[k]), "no-such-encoder"), "%s",
                  sf_errors(&out.t.clips[k]));
    }
    char err[VT_TEXT_MAX];
    cr_expect(strstr(vt_text(out.t.error, err, sizeof err), "no clip could be encoded"), "%s", err);
    sf_out_free(&out);
    drop_source();
}

Test(stage_transcoder, a_source_that_is_no_video) {
    static uint8_t junk[4096];
    th_fill(junk, sizeof junk, 3);
    vt_clip clips[1];
    span(&clips[0], 0, 10);
    video_task t;
    char *path = sf_tmp_file("junk.mp4", (sf_blob){junk, sizeof junk});
    task_with(&t, clips, 1, path);
    reel_curate_options o;
    reel_curate_defaults(&o);
    sf_out out = transcode(&o, &t);
    char err[VT_TEXT_MAX];
    cr_expect(strstr(vt_text(out.t.error, err, sizeof err), "transcoder: cannot decode the video"),
              "%s", err);
    cr_expect(strstr(sf_errors(&out.t.clips[0]), "could not be decoded"), "%s",
              sf_errors(&out.t.clips[0]));
    cr_expect_eq(out.t.clips[0].mp4.size, 0);
    sf_out_free(&out);
    unlink(path);
    free(path);
}

/* A source file that is not the one the reader saw (white-box: the task
 * records another size, or mtime; or another file took its place) is the
 * video's error and every clip's, with no MP4 made of it. */
Test(stage_transcoder, a_file_changed_since_it_was_read_is_reported) {
    make_source();
    for (int how = 0; how < 3; how++) {
        vt_clip clips[2];
        span(&clips[0], 0, 10);
        span(&clips[1], 20, 30);
        video_task t;
        task_with(&t, clips, 2, source_path);
        cr_assert_eq(t.probe.num_frames, FRAMES);
        if (how == 0) {
            t.file.size -= 1;
        } else if (how == 1) {
            t.file.mtime_ns -= 1000000000;
        } else {
            char *next = sf_tmp_file("colours-next.mp4", source);
            cr_assert_eq(rename(next, source_path), 0, "%s", strerror(errno));
            free(next);
        }
        reel_curate_options o;
        reel_curate_defaults(&o);
        sf_out out = transcode(&o, &t);
        char err[VT_TEXT_MAX], want[256];
        snprintf(want, sizeof want, "%s changed since it was read", source_path);
        cr_expect(
            strstr(vt_text(out.t.error, err, sizeof err), "transcoder: cannot decode the video: "),
            "case %d: %s", how, err);
        cr_expect(strstr(err, want), "case %d: %s", how, err);
        cr_assert_eq(out.t.n_clips, 2);
        for (int k = 0; k < 2; k++) {
            cr_expect_eq(out.t.clips[k].mp4.size, 0, "case %d clip %d", how, k);
            cr_expect(strstr(sf_errors(&out.t.clips[k]), want), "case %d: %s", how,
                      sf_errors(&out.t.clips[k]));
        }
        sf_out_free(&out);
    }
    drop_source();
}

Test(stage_transcoder, a_video_without_clips_keeps_its_probe) {
    make_source();
    video_task t;
    task_with(&t, NULL, 0, source_path);
    reel_curate_options o;
    reel_curate_defaults(&o);
    sf_out out = transcode(&o, &t);
    cr_expect_eq(out.t.n_clips, 0);
    cr_expect_eq(out.t.probe.num_frames, FRAMES);
    cr_expect_eq(out.t.error.size, 0);
    sf_out_free(&out);
    drop_source();
}

/* ---- the frames and previews taken on the way ------------------------------------------- */

/* A preview decoded back: its size and the source frame it shows. */
typedef struct preview_seen {
    int w, h, index, n;
} preview_seen;

static int take_preview(void *arg, int64_t i, const AVFrame *f) {
    preview_seen *p = arg;
    (void)i;
    p->w = f->width;
    p->h = f->height;
    p->index = index_of(f);
    p->n++;
    return 0;
}

static preview_seen decode_preview(const vt_clip *c) {
    cr_assert_gt(c->preview.size, 0, "clip %s has no preview: %s", c->uuid, sf_errors(c));
    preview_seen p = {0};
    sf_decode("the preview", c->preview.data, c->preview.size, take_preview, &p, NULL);
    cr_assert_eq(p.n, 1);
    return p;
}

Test(stage_transcoder, frames_and_previews_are_those_the_later_stages_take) {
    make_source();
    /* Odd and even frame counts, a rate that repeats no frame and one that
     * does, and a clip the video ends inside. */
    static const int64_t spans[][2] = {{0, 100}, {100, 149}, {150, 190}, {200, 240}};
    enum { N = sizeof spans / sizeof spans[0] };
    static const double rates[] = {3, 40};
    for (size_t r = 0; r < sizeof rates / sizeof rates[0]; r++) {
        vt_clip clips[N];
        for (int k = 0; k < N; k++)
            span(&clips[k], spans[k][0], spans[k][1]);
        video_task t;
        task_with(&t, clips, N, source_path);
        reel_curate_options o;
        reel_curate_defaults(&o);
        o.frames_size = 16;
        o.frames_fps = rates[r];
        o.preview_size = 40;
        o.write_frames = true; /* the frames stage is in the pipeline */
        sf_out a = transcode(&o, &t);
        cr_assert_eq(a.t.n_clips, N);

        /* The same clips without what the transcoder took: the frames and
         * preview stages decode their MP4s for them. */
        vt_clip bare[N];
        memcpy(bare, a.t.clips, sizeof bare);
        for (int k = 0; k < N; k++) {
            bare[k].frames = bare[k].preview = (vt_art){0};
            bare[k].frames_n = bare[k].frames_h = bare[k].frames_w = 0;
            bare[k].frames_fps = 0;
        }
        video_task u = a.t;
        u.clips = bare;
        const reel_actor_def *defs[] = {&stage_frames_def, &stage_preview_def};
        sf_out b = sf_run(store, store_path, defs, 2, 0, &o, &u);
        cr_assert_eq(b.t.n_clips, N);

        for (int k = 0; k < N; k++) {
            const vt_clip *x = &a.t.clips[k], *y = &b.t.clips[k];
            cr_assert_gt(x->mp4.size, 0, "clip %d: %s", k, sf_errors(x));
            cr_expect_str_eq(sf_errors(x), "", "clip %d", k);
            cr_expect_str_eq(sf_errors(y), "", "clip %d", k);
            if (spans[k][1] > FRAMES) { /* ended early: left to the later stages */
                cr_expect_eq(x->frames_n, 0, "clip %d", k);
                cr_expect_eq(x->preview.size, 0, "clip %d", k);
                cr_expect_gt(y->frames_n, 0, "clip %d", k);
                cr_expect_gt(y->preview.size, 0, "clip %d", k);
                continue;
            }
            int64_t *idx;
            uint32_t n;
            cr_assert_eq(clip_frames_plan(x->num_frames, FPS, o.frames_fps, &idx, &n), 0);
            cr_assert_eq(x->frames_n, n, "clip %d at %g fps", k, o.frames_fps);
            cr_assert_eq(y->frames_n, n, "clip %d at %g fps", k, o.frames_fps);
            cr_expect_eq(x->frames_h, 16);
            cr_expect_eq(x->frames_w, 16);
            cr_expect_eq(y->frames_h, 16);
            cr_expect_float_eq(x->frames_fps, o.frames_fps, 1e-12);
            cr_assert_eq(x->frames.size, y->frames.size);
            size_t bytes = clip_frame_bytes(16);
            for (uint32_t j = 0; j < n; j++) {
                int want = (int)(spans[k][0] + idx[j]);
                int got = index_of_rgb(x->frames.data + j * bytes, 16 * 16);
                int theirs = index_of_rgb(y->frames.data + j * bytes, 16 * 16);
                cr_assert_eq(got, want, "clip %d sample %u: frame %d, want %d", k, j, got, want);
                cr_assert_eq(theirs, want, "clip %d sample %u: the frames stage's shows %d", k, j,
                             theirs);
            }
            free(idx);
            preview_seen p = decode_preview(x), q = decode_preview(y);
            cr_expect_eq(p.w, q.w, "clip %d", k);
            cr_expect_eq(p.h, q.h, "clip %d", k);
            cr_expect_eq(p.w, 40);
            cr_expect_eq(p.h, 30);
            int mid = (int)(spans[k][0] + clip_middle_frame(x->num_frames));
            cr_expect_eq(p.index, mid, "clip %d: preview of frame %d, want %d", k, p.index, mid);
            cr_expect_eq(q.index, mid, "clip %d: the preview stage's shows %d", k, q.index);
        }
        sf_out_free(&b);
        sf_out_free(&a);
    }
    drop_source();
}

/* What nobody asked for is not taken: by default (frames neither written
 * nor made into tensors) no frames, only the preview; with previews off,
 * not that either. */
Test(stage_transcoder, only_what_the_run_wants_is_taken) {
    make_source();
    vt_clip clips[2];
    span(&clips[0], 0, 50);
    span(&clips[1], 50, 100);
    for (int previews = 1; previews >= 0; previews--) {
        video_task t;
        task_with(&t, clips, 2, source_path);
        reel_curate_options o;
        reel_curate_defaults(&o);
        o.frames_size = 16;
        o.preview_size = 40;
        o.previews = previews;
        sf_out a = transcode(&o, &t);
        cr_assert_eq(a.t.n_clips, 2);
        for (int k = 0; k < 2; k++) {
            const vt_clip *c = &a.t.clips[k];
            cr_assert_gt(c->mp4.size, 0, "clip %d: %s", k, sf_errors(c));
            cr_expect_str_eq(sf_errors(c), "", "clip %d", k);
            cr_expect_eq(c->frames_n, 0, "clip %d: frames nobody asked for", k);
            cr_expect_eq(c->frames.size, 0, "clip %d", k);
            if (previews)
                decode_preview(c);
            else
                cr_expect_eq(c->preview.size, 0, "clip %d: a preview with previews off", k);
        }
        sf_out_free(&a);
    }
    drop_source();
}

/* ---- with the splitter, on a real sample ------------------------------------------------- */

Test(stage_transcoder, after_the_splitter_on_oa4_launch) {
    char *v = sf_sample_path("oa4_launch.webm");
    video_task t;
    task_with(&t, NULL, 0, v);
    reel_curate_options o;
    reel_curate_defaults(&o);
    o.splitting = REEL_SPLIT_SCENE;
    o.preset = "ultrafast";
    const reel_actor_def *defs[] = {&stage_splitter_def, &stage_transcoder_def};
    sf_out out = sf_run(store, store_path, defs, 2, 0, &o, &t);
    cr_assert_eq(out.t.n_clips, 2, "the cut at 3.09 s makes two scenes");
    for (uint32_t k = 0; k < out.t.n_clips; k++) {
        const vt_clip *c = &out.t.clips[k];
        cr_assert_gt(c->mp4.size, 0, "clip %u: %s", k, sf_errors(c));
        int64_t want = c->end_frame - c->start_frame;
        cr_expect_eq(c->num_frames, want);
        cr_expect_eq(c->width, 640);
        cr_expect_eq(c->height, 360);
        vt_probe p;
        int64_t n = 0;
        sf_decode("the clip", c->mp4.data, c->mp4.size, sf_count_frame, &n, &p);
        cr_expect_str_eq(p.codec, "h264");
        cr_expect_float_eq(p.fps, 24, 1e-6);
        cr_expect_eq(n, want, "clip %u [%lld, %lld) decodes to %lld frames", k,
                     (long long)c->start_frame, (long long)c->end_frame, (long long)n);
    }
    sf_out_free(&out);
    free(v);
}
