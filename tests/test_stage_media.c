/*
 * test_stage_media.c - the stages' FFmpeg glue (stages/media.c): probing and
 * decoding the sample videos from memory, frame-accurate ranges, truncated
 * data, H.264/MP4 encoding in memory read back by the decoder, JPEG.
 *
 * The samples come from Debian packages (scripts/samples.sh); ctest points
 * REEL_SAMPLES at them. Their facts, as ffprobe reports them:
 *
 *   file             container                 codec  size      fps          s       frames
 *   cockatoo.mp4     mov,mp4,m4a,3gp,3g2,mj2   h264   1280x720  20           14.0    280
 *   diver.mov        mov,mp4,m4a,3gp,3g2,mj2   mjpeg  640x480   25           14.04   351
 *   oa4_launch.webm  matroska,webm             vp8    640x360   24           8.087   194 (counted)
 *   realshort.mp4    mov,mp4,m4a,3gp,3g2,mj2   h264   320x240   45000/1499   1.1992  36
 */
#include "helpers.h"
#include "stage_fixture.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <xxhash.h>

TestSuite(stage_media, .init = th_init, .fini = th_fini, .timeout = 60);

/* ---- helpers -------------------------------------------------------------------- */

static media_input *open_blob(sf_blob b) {
    media_input *m;
    char why[256];
    int rc = media_open(b.data, b.size, NULL, &m, why, sizeof why);
    cr_assert_eq(rc, 0, "media_open: %d: %s", rc, why);
    return m;
}

/* What a decode saw: the frames' indices, sizes and a hash of each frame's
 * pixels (scaled to 32x32 RGB). */
typedef struct seen {
    int64_t n, first, last;
    bool in_order;
    int w, h;
    int64_t stop_after; /* > 0: return 1 once this many came */
    int fail_at;        /* >= 0: return -EPROTO at that index */
    uint64_t hash[512];
} seen;

static void seen_init(seen *s) {
    memset(s, 0, sizeof *s);
    s->first = s->last = -1;
    s->in_order = true;
    s->fail_at = -1;
}

static int on_frame(void *arg, int64_t index, const AVFrame *f) {
    seen *s = arg;
    if (s->fail_at >= 0 && index == s->fail_at)
        return -EPROTO;
    if (s->n == 0)
        s->first = index;
    else if (index != s->last + 1)
        s->in_order = false;
    s->last = index;
    s->w = f->width;
    s->h = f->height;
    if (index < 512) {
        uint8_t rgb[32 * 32 * 3];
        if (media_frame_to_rgb(f, 32, 32, rgb) != 0)
            return -EIO;
        s->hash[index] = XXH3_64bits(rgb, sizeof rgb);
    }
    s->n++;
    return s->stop_after > 0 && s->n >= s->stop_after ? 1 : 0;
}

static void decode_all(media_input *m, int64_t start, int64_t end, seen *s) {
    bool partial = true;
    char why[256];
    int rc = media_decode(m, start, end, on_frame, s, &partial, why, sizeof why);
    cr_assert_eq(rc, 0, "media_decode [%lld, %lld): %d: %s", (long long)start, (long long)end, rc,
                 why);
    cr_assert(!partial, "a whole sample is not partial: %s", why);
    cr_assert(s->in_order);
}

static void expect_probe(const char *name, const char *container, const char *codec, int w, int h,
                         double fps, double duration, int64_t frames) {
    sf_blob b = sf_sample(name);
    media_input *m = open_blob(b);
    vt_probe p;
    media_probe(m, &p);
    cr_assert_str_eq(p.container, container, "%s", name);
    cr_assert_str_eq(p.codec, codec, "%s", name);
    cr_assert_eq(p.width, w, "%s: width %d", name, p.width);
    cr_assert_eq(p.height, h, "%s: height %d", name, p.height);
    cr_assert_float_eq(p.fps, fps, 1e-9, "%s: fps %.9f", name, p.fps);
    cr_assert_float_eq(p.duration_s, duration, 1e-6, "%s: duration %.6f", name, p.duration_s);
    cr_assert_eq(p.num_frames, frames, "%s: frames %lld", name, (long long)p.num_frames);
    cr_assert_eq(p.num_bytes, b.size);
    media_close(m);
    free(b.data);
}

/* ---- probe ---------------------------------------------------------------------- */

Test(stage_media, probe_cockatoo_mp4) {
    expect_probe("cockatoo.mp4", "mov,mp4,m4a,3gp,3g2,mj2", "h264", 1280, 720, 20, 14.0, 280);
}

Test(stage_media, probe_diver_mov) {
    expect_probe("diver.mov", "mov,mp4,m4a,3gp,3g2,mj2", "mjpeg", 640, 480, 25, 14.04, 351);
}

Test(stage_media, probe_oa4_launch_webm) {
    /* No frame count and no stream duration in the WebM: the container's
     * duration x fps, rounded (8.087 x 24 = 194.1). */
    expect_probe("oa4_launch.webm", "matroska,webm", "vp8", 640, 360, 24, 8.087, 194);
}

Test(stage_media, probe_realshort_mp4) {
    expect_probe("realshort.mp4", "mov,mp4,m4a,3gp,3g2,mj2", "h264", 320, 240, 45000.0 / 1499,
                 1.1992, 36);
}

/* ---- decode ------------------------------------------------------------------------ */

static void expect_count(const char *name, int64_t want) {
    sf_blob b = sf_sample(name);
    media_input *m = open_blob(b);
    vt_probe p;
    media_probe(m, &p);
    static seen s;
    seen_init(&s);
    decode_all(m, 0, -1, &s);
    cr_assert_eq(s.n, want, "%s: %lld frames decoded", name, (long long)s.n);
    cr_assert_eq(s.first, 0);
    cr_assert_eq(s.last, want - 1);
    cr_assert_eq(s.w, p.width);
    cr_assert_eq(s.h, p.height);
    media_close(m);
    free(b.data);
}

Test(stage_media, decode_counts_every_frame_the_container_says) {
    expect_count("realshort.mp4", 36);
    expect_count("diver.mov", 351);
    expect_count("oa4_launch.webm", 194);
}

Test(stage_media, decode_counts_cockatoo) {
    expect_count("cockatoo.mp4", 280);
}

/* A range delivers exactly its frames, the same pixels as a whole decode,
 * and every call starts from the first frame again. */
static void expect_ranges(const char *name, int64_t total) {
    sf_blob b = sf_sample(name);
    media_input *m = open_blob(b);
    static seen all, part;
    seen_init(&all);
    decode_all(m, 0, -1, &all);
    cr_assert_eq(all.n, total);
    const int64_t spans[][2] = {{0, 1}, {5, 17}, {total - 3, total}, {total / 2, total / 2 + 9}};
    for (size_t k = 0; k < sizeof spans / sizeof spans[0]; k++) {
        seen_init(&part);
        decode_all(m, spans[k][0], spans[k][1], &part);
        cr_assert_eq(part.n, spans[k][1] - spans[k][0], "%s [%lld, %lld): %lld frames", name,
                     (long long)spans[k][0], (long long)spans[k][1], (long long)part.n);
        cr_assert_eq(part.first, spans[k][0]);
        cr_assert_eq(part.last, spans[k][1] - 1);
        for (int64_t i = part.first; i <= part.last; i++)
            cr_assert_eq(part.hash[i], all.hash[i], "%s: frame %lld differs", name, (long long)i);
    }
    /* Past the end: nothing, no error. To the end from the middle. */
    seen_init(&part);
    decode_all(m, total + 5, total + 10, &part);
    cr_assert_eq(part.n, 0);
    seen_init(&part);
    decode_all(m, total - 4, -1, &part);
    cr_assert_eq(part.n, 4);
    media_close(m);
    free(b.data);
}

Test(stage_media, decode_ranges_are_frame_accurate) {
    expect_ranges("realshort.mp4", 36);
    expect_ranges("oa4_launch.webm", 194);
}

Test(stage_media, decode_stops_early_and_passes_errors_on) {
    sf_blob b = sf_sample("realshort.mp4");
    media_input *m = open_blob(b);
    static seen s;
    seen_init(&s);
    s.stop_after = 7;
    bool partial;
    char why[256];
    TH_OK(media_decode(m, 3, -1, on_frame, &s, &partial, why, sizeof why));
    cr_assert_eq(s.n, 7);
    cr_assert_eq(s.first, 3);
    cr_assert_eq(s.last, 9);
    seen_init(&s);
    s.fail_at = 10;
    TH_RC(media_decode(m, 0, -1, on_frame, &s, &partial, why, sizeof why), -EPROTO);
    cr_assert_eq(s.n, 10);
    TH_RC(media_decode(m, 5, 2, on_frame, &s, NULL, why, sizeof why), -EINVAL);
    TH_RC(media_decode(m, -1, 2, on_frame, &s, NULL, why, sizeof why), -EINVAL);
    media_close(m);
    free(b.data);
}

Test(stage_media, frame_to_rgb_scales_and_checks_its_arguments) {
    sf_blob b = sf_sample("oa4_launch.webm");
    media_input *m = open_blob(b);
    static seen s;
    seen_init(&s);
    decode_all(m, 100, 101, &s);
    cr_assert_eq(s.n, 1);
    media_close(m);
    free(b.data);
    AVFrame *f = av_frame_alloc();
    cr_assert_not_null(f);
    uint8_t rgb[3];
    TH_RC(media_frame_to_rgb(f, 1, 1, rgb), -EINVAL); /* no picture */
    f->format = AV_PIX_FMT_YUV420P;
    f->width = 16;
    f->height = 8;
    TH_OK(av_frame_get_buffer(f, 0));
    TH_RC(media_frame_to_rgb(f, 0, 1, rgb), -EINVAL);
    TH_RC(media_frame_to_rgb(f, 1, 1, NULL), -EINVAL);
    TH_OK(media_frame_to_rgb(f, 1, 1, rgb));
    av_frame_free(&f);
}

/* ---- what is not a video, and what is cut short --------------------------------------- */

Test(stage_media, bytes_that_are_not_a_video_are_refused) {
    const char text[] = "this is not a video, only some text in a file named .mp4\n";
    media_input *m = (media_input *)1;
    char why[256];
    TH_RC(media_open((const uint8_t *)text, sizeof text - 1, NULL, &m, why, sizeof why), -EINVAL);
    cr_assert_null(m);
    cr_assert_gt(strlen(why), 10, "%s", why);
    TH_RC(media_open((const uint8_t *)text, 0, NULL, &m, why, sizeof why), -EINVAL);
    TH_RC(media_open(NULL, 10, NULL, &m, why, sizeof why), -EINVAL);

    /* A JPEG image opens (image2 pipe), as a video of one frame. A WAV has
     * no video stream. */
    uint8_t wav[44 + 800] = "RIFF";
    memset(wav + 4, 0, sizeof wav - 4);
    uint32_t v32;
    uint16_t v16;
#define PUT32(off, v) (v32 = (v), memcpy(wav + (off), &v32, 4))
#define PUT16(off, v) (v16 = (v), memcpy(wav + (off), &v16, 2))
    PUT32(4, sizeof wav - 8);
    memcpy(wav + 8, "WAVEfmt ", 8);
    PUT32(16, 16);
    PUT16(20, 1);
    PUT16(22, 1);
    PUT32(24, 8000);
    PUT32(28, 16000);
    PUT16(32, 2);
    PUT16(34, 16);
    memcpy(wav + 36, "data", 4);
    PUT32(40, 800);
    TH_RC(media_open(wav, sizeof wav, NULL, &m, why, sizeof why), -EINVAL);
    cr_assert(strstr(why, "no video stream"), "%s", why);
}

/* A file is read by range, as the same bytes in memory are, and nothing
 * else is opened: an ffconcat list beside the file it names does not read
 * it (fuzz/regressions/media/concat-opens-a-file). */
Test(stage_media, a_file_opens_as_its_bytes_do_and_opens_nothing_else) {
    static const char *const names[] = {"cockatoo.mp4", "diver.mov", "oa4_launch.webm",
                                        "realshort.mp4"};
    char why[256];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char *path = sf_sample_path(names[i]);
        sf_blob b = sf_file(path);
        int64_t from_file = 0, from_bytes = 0;
        vt_probe pf, pb;
        media_input *m;
        TH_OK(media_open_file(path, NULL, NULL, &m, why, sizeof why));
        vt_file id;
        media_file_id(m, &id);
        cr_assert_eq(id.size, b.size, "%s", names[i]);
        media_probe(m, &pf);
        bool partial = true;
        TH_OK(media_decode(m, 0, -1, sf_count_frame, &from_file, &partial, why, sizeof why));
        cr_assert(!partial, "%s: %s", names[i], why);
        media_close(m);
        sf_decode(names[i], b.data, b.size, sf_count_frame, &from_bytes, &pb);
        cr_assert_eq(from_file, from_bytes, "%s", names[i]);
        cr_assert(memcmp(&pf, &pb, sizeof pf) == 0, "%s: the probes differ", names[i]);
        /* Expected to be another file: refused before anything is read. */
        id.ino ^= 1;
        m = (media_input *)1;
        TH_RC(media_open_file(path, &id, NULL, &m, why, sizeof why), -ESTALE);
        cr_assert_null(m);
        cr_assert(strstr(why, "changed since it was read"), "%s", why);
        free(b.data);
        free(path);
    }

    char dir[] = "/tmp/reel-test-media-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char list[64], named[64];
    snprintf(list, sizeof list, "%s/list.mp4", dir);
    snprintf(named, sizeof named, "%s/a", dir);
    char *sample = sf_sample_path("realshort.mp4");
    sf_blob v = sf_file(sample);
    th_write_file(named, v.data, (size_t)v.size);
    const char concat[] = "ffconcat version 1.0\nfile a\n";
    th_write_file(list, concat, sizeof concat - 1);
    media_input *m = (media_input *)1;
    int rc = media_open_file(list, NULL, NULL, &m, why, sizeof why);
    cr_assert_lt(rc, 0, "an ffconcat list opened the file it names");
    cr_assert_null(m);
    TH_RC(media_open_file(dir, NULL, NULL, &m, why, sizeof why), -EISDIR);
    unlink(list);
    TH_RC(media_open_file(list, NULL, NULL, &m, why, sizeof why), -ENOENT);
    cr_assert(strstr(why, "cannot open"), "%s", why);
    unlink(named);
    rmdir(dir);
    free(v.data);
    free(sample);
}

/* The first size bytes of b, through a file under /tmp as a cut download
 * would be: decoding gives the frames that are there, then says the rest is
 * missing (partial) -- or, when the container's index went with the cut (an
 * MP4 whose moov comes last), opening fails with a sentence. Returns the
 * frames decoded, or -1 when it did not open. */
static int64_t decode_cut(const char *name, sf_blob b, uint64_t size, int64_t total) {
    char path[128];
    snprintf(path, sizeof path, "/tmp/reel-test-cut-%d-%s", (int)getpid(), name);
    unlink(path);
    th_write_file(path, b.data, (size_t)size);
    sf_blob cut = sf_file(path);
    unlink(path);

    media_input *m;
    char why[256];
    int rc = media_open(cut.data, cut.size, NULL, &m, why, sizeof why);
    if (rc != 0) {
        cr_log_info("%s cut to %llu bytes: media_open: %d: %s", name, (unsigned long long)size, rc,
                    why);
        cr_assert_eq(rc, -EINVAL);
        cr_assert_gt(strlen(why), 10, "%s", why);
        free(cut.data);
        return -1;
    }
    static seen s;
    seen_init(&s);
    bool partial = false;
    rc = media_decode(m, 0, -1, on_frame, &s, &partial, why, sizeof why);
    cr_log_info("%s cut to %llu bytes: rc %d, %lld frames, partial %d: %s", name,
                (unsigned long long)size, rc, (long long)s.n, partial, why);
    if (rc == 0) {
        cr_assert(partial, "%s cut: %lld of %lld frames, not partial", name, (long long)s.n,
                  (long long)total);
        cr_assert_gt(s.n, 0);
        cr_assert_lt(s.n, total);
        cr_assert(strstr(why, "after"), "%s", why);
    } else {
        cr_assert_lt(rc, 0);
        cr_assert_gt(strlen(why), 10, "%s", why);
    }
    media_close(m);
    free(cut.data);
    return rc == 0 ? s.n : -1;
}

static int64_t cut_in_half(const char *name, int64_t total) {
    sf_blob b = sf_sample(name);
    int64_t n = decode_cut(name, b, b.size / 2, total);
    free(b.data);
    return n;
}

Test(stage_media, cut_mp4_with_its_moov_last_does_not_open) {
    cr_assert_eq(cut_in_half("cockatoo.mp4", 280), -1);
    cr_assert_eq(cut_in_half("realshort.mp4", 36), -1);
    cr_assert_eq(cut_in_half("diver.mov", 351), -1);
}

Test(stage_media, cut_webm_is_partial) {
    int64_t n = cut_in_half("oa4_launch.webm", 194);
    cr_assert_gt(n, 50);
}

static void paint_colours(uint8_t *rgb, int stride, int w, int h, int i, void *arg);

Test(stage_media, cut_mp4_with_its_moov_first_is_partial) {
    sf_blob b = sf_encode("ultrafast", 320, 240, 25, 120, paint_colours, NULL);
    int64_t n = decode_cut("faststart.mp4", b, b.size / 2, 120);
    cr_assert_gt(n, 10);
    free(b.data);
}

/* ---- motion vectors ------------------------------------------------------------------- */

/* A gradient moving right 2 pixels a frame. */
static void paint_moving(uint8_t *rgb, int stride, int w, int h, int i, void *arg) {
    (void)arg;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++)
                rgb[(size_t)y * stride + (size_t)x * 3 + c] =
                    (uint8_t)(((x - 2 * i) * 5 + y * 3 + c * 40) & 0xff);
}

typedef struct mv_count {
    int64_t frames, with_mvs;
    bool first_has_mvs;
} mv_count;

static int count_mvs(void *arg, int64_t index, const AVFrame *f) {
    mv_count *c = arg;
    bool has = av_frame_get_side_data(f, AV_FRAME_DATA_MOTION_VECTORS) != NULL;
    c->frames++;
    c->with_mvs += has;
    if (index == 0)
        c->first_has_mvs = has;
    return 0;
}

Test(stage_media, motion_vectors_only_when_asked) {
    sf_blob b = sf_encode("ultrafast", 128, 96, 25, 20, paint_moving, NULL);
    media_input *m;
    char why[256];
    mv_count c = {0};
    TH_OK(media_open(b.data, b.size, &(media_open_options){.threads = 1}, &m, why, sizeof why));
    TH_OK(media_decode(m, 0, -1, count_mvs, &c, NULL, why, sizeof why));
    media_close(m);
    cr_assert_eq(c.frames, 20);
    cr_assert_eq(c.with_mvs, 0, "vectors nobody asked for on %lld frames", (long long)c.with_mvs);

    TH_OK(
        media_open(b.data, b.size, &(media_open_options){.export_mvs = true}, &m, why, sizeof why));
    /* Twice: each decode opens the decoder afresh, as it was asked for. */
    for (int pass = 0; pass < 2; pass++) {
        c = (mv_count){0};
        TH_OK(media_decode(m, 0, -1, count_mvs, &c, NULL, why, sizeof why));
        cr_assert_eq(c.frames, 20);
        cr_assert(!c.first_has_mvs, "pass %d: the I-frame has motion vectors", pass);
        cr_assert_geq(c.with_mvs, 10, "pass %d: %lld of 20 frames with motion vectors", pass,
                      (long long)c.with_mvs);
    }
    media_close(m);
    free(b.data);
}

/* ---- encode ---------------------------------------------------------------------------- */

static AVFrame *solid(int w, int h, uint8_t r, uint8_t g, uint8_t bl) {
    AVFrame *f = av_frame_alloc();
    cr_assert_not_null(f);
    f->format = AV_PIX_FMT_RGB24;
    f->width = w;
    f->height = h;
    TH_OK(av_frame_get_buffer(f, 0));
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = f->data[0] + y * f->linesize[0] + x * 3;
            p[0] = r, p[1] = g, p[2] = bl;
        }
    return f;
}

static const uint8_t colours[4][3] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {255, 255, 255}};

typedef struct colour_check {
    int64_t n;
    int bad; /* frames whose colour is off */
} colour_check;

static int check_colour(void *arg, int64_t index, const AVFrame *f) {
    colour_check *c = arg;
    uint8_t rgb[8 * 8 * 3];
    if (media_frame_to_rgb(f, 8, 8, rgb) != 0)
        return -EIO;
    const uint8_t *want = colours[(index / 10) % 4];
    for (int k = 0; k < 3; k++)
        if (abs((int)rgb[4 * 8 * 3 + 4 * 3 + k] - want[k]) > 24)
            c->bad++;
    c->n++;
    return 0;
}

static size_t find4(const uint8_t *d, uint64_t n, const char *tag) {
    for (uint64_t i = 0; i + 4 <= n; i++)
        if (memcmp(d + i, tag, 4) == 0)
            return (size_t)i;
    return SIZE_MAX;
}

/* Frames cycling through the colours every 10 frames, with some noise so
 * that they are not all tiny. */
static void paint_colours(uint8_t *rgb, int stride, int w, int h, int i, void *arg) {
    sf_paint_solid(rgb, stride, w, h, i, (void *)colours[(i / 10) % 4]);
    for (int k = 0; k < w * h / 4; k++)
        rgb[(k * 7919 + i * 104729) % (h * stride)] ^= 0x5a;
    (void)arg;
}

Test(stage_media, encode_solid_colours_and_decode_them_back) {
    media_encode_options o = {.encoder = "libx264",
                              .preset = "veryfast",
                              .crf = 23,
                              .threads = 1,
                              .width = 96,
                              .height = 64,
                              .fps = 30};
    media_output *e;
    char why[256];
    int rc = media_encode_start(&o, &e, why, sizeof why);
    cr_assert_eq(rc, 0, "%d: %s", rc, why);
    for (int i = 0; i < 40; i++) {
        const uint8_t *c = colours[(i / 10) % 4];
        /* A different input size on purpose: the encoder scales. */
        AVFrame *f = solid(i < 20 ? 50 : 200, i < 20 ? 30 : 120, c[0], c[1], c[2]);
        rc = media_encode_frame(e, f, why, sizeof why);
        cr_assert_eq(rc, 0, "frame %d: %d: %s", i, rc, why);
        av_frame_free(&f);
    }
    const uint8_t *data;
    uint64_t size;
    rc = media_encode_finish(e, &data, &size, why, sizeof why);
    cr_assert_eq(rc, 0, "%d: %s", rc, why);
    cr_assert_gt(size, 100);
    /* faststart: the moov comes before the mdat. */
    size_t moov = find4(data, size, "moov"), mdat = find4(data, size, "mdat");
    cr_assert_neq(moov, SIZE_MAX);
    cr_assert_neq(mdat, SIZE_MAX);
    cr_assert_lt(moov, mdat, "moov at %zu, mdat at %zu", moov, mdat);
    TH_RC(media_encode_frame(e, NULL, why, sizeof why), -EINVAL);

    media_input *m;
    rc = media_open(data, size, NULL, &m, why, sizeof why);
    cr_assert_eq(rc, 0, "%d: %s", rc, why);
    vt_probe p;
    media_probe(m, &p);
    cr_assert_str_eq(p.codec, "h264");
    cr_assert_str_eq(p.container, "mov,mp4,m4a,3gp,3g2,mj2");
    cr_assert_eq(p.width, 96);
    cr_assert_eq(p.height, 64);
    cr_assert_float_eq(p.fps, 30, 1e-9, "%f", p.fps);
    cr_assert_float_eq(p.duration_s, 40.0 / 30, 1e-6, "%f", p.duration_s);
    cr_assert_eq(p.num_frames, 40);
    /* Curator counts int(1.333333 x 30): the duration as ffprobe prints it. */
    cr_assert_eq(media_curator_frames(&p), 39);
    colour_check cc = {0};
    bool partial;
    TH_OK(media_decode(m, 0, -1, check_colour, &cc, &partial, why, sizeof why));
    cr_assert(!partial);
    cr_assert_eq(cc.n, 40);
    cr_assert_eq(cc.bad, 0, "%d colour channels off", cc.bad);
    media_close(m);
    media_encode_free(e);
}

/* Frames straight from a decoder, at an NTSC rate, at several threads. */
typedef struct reencode {
    media_output *e;
    char why[256];
} reencode;

static int encode_each(void *arg, int64_t index, const AVFrame *f) {
    (void)index;
    reencode *r = arg;
    return media_encode_frame(r->e, f, r->why, sizeof r->why);
}

Test(stage_media, encode_decoded_frames_at_an_ntsc_rate) {
    sf_blob b = sf_sample("realshort.mp4");
    media_input *m = open_blob(b);
    media_encode_options o = {.encoder = "libx264",
                              .preset = "ultrafast",
                              .crf = 30,
                              .threads = 2,
                              .width = 160,
                              .height = 120,
                              .fps = 30000.0 / 1001};
    reencode r;
    TH_OK(media_encode_start(&o, &r.e, r.why, sizeof r.why));
    bool partial;
    int rc = media_decode(m, 0, -1, encode_each, &r, &partial, r.why, sizeof r.why);
    cr_assert_eq(rc, 0, "%d: %s", rc, r.why);
    media_close(m);
    const uint8_t *data;
    uint64_t size;
    TH_OK(media_encode_finish(r.e, &data, &size, r.why, sizeof r.why));
    TH_RC(media_encode_finish(r.e, &data, &size, r.why, sizeof r.why), -EINVAL);
    m = open_blob((sf_blob){(uint8_t *)data, size});
    vt_probe p;
    media_probe(m, &p);
    cr_assert_float_eq(p.fps, 30000.0 / 1001, 1e-6, "%f", p.fps);
    cr_assert_eq(p.width, 160);
    cr_assert_eq(p.num_frames, 36);
    static seen s;
    seen_init(&s);
    decode_all(m, 0, -1, &s);
    cr_assert_eq(s.n, 36);
    cr_assert_eq(s.w, 160);
    cr_assert_eq(s.h, 120);
    media_close(m);
    media_encode_free(r.e);
    free(b.data);
}

Test(stage_media, encode_refuses_bad_options) {
    media_output *e = (media_output *)1;
    char why[256];
    media_encode_options o = {.encoder = "libx264",
                              .preset = "veryfast",
                              .crf = 23,
                              .width = 97,
                              .height = 64,
                              .fps = 30};
    TH_RC(media_encode_start(&o, &e, why, sizeof why), -EINVAL);
    cr_assert_null(e);
    cr_assert(strstr(why, "even"), "%s", why);
    o.width = 96;
    o.fps = 0;
    TH_RC(media_encode_start(&o, &e, why, sizeof why), -EINVAL);
    o.fps = 25;
    o.encoder = "no-such-encoder";
    TH_RC(media_encode_start(&o, &e, why, sizeof why), -EINVAL);
    cr_assert(strstr(why, "no-such-encoder"), "%s", why);
    o.encoder = "libx264";
    o.preset = "warp-speed";
    TH_RC(media_encode_start(&o, &e, why, sizeof why), -EINVAL);
    cr_assert(strstr(why, "warp-speed"), "%s", why);
    o.preset = "veryfast";
    o.crf = 99;
    TH_RC(media_encode_start(&o, &e, why, sizeof why), -EINVAL);
    /* Nothing encoded: no MP4. */
    o.crf = 23;
    TH_OK(media_encode_start(&o, &e, why, sizeof why));
    const uint8_t *data;
    uint64_t size;
    TH_RC(media_encode_finish(e, &data, &size, why, sizeof why), -ENODATA);
    media_encode_free(e);
    media_encode_free(NULL);
}

/* ---- JPEG -------------------------------------------------------------------------------- */

Test(stage_media, jpeg_of_an_rgb_image) {
    const uint32_t w = 33, h = 17; /* odd on purpose */
    uint8_t rgb[33 * 17 * 3];
    for (uint32_t i = 0; i < w * h; i++) {
        rgb[3 * i] = (uint8_t)(i % w * 7);
        rgb[3 * i + 1] = (uint8_t)(i / w * 15);
        rgb[3 * i + 2] = 128;
    }
    uint8_t *jpg;
    uint64_t size;
    char why[256];
    int rc = media_jpeg(rgb, w, h, 90, &jpg, &size, why, sizeof why);
    cr_assert_eq(rc, 0, "%d: %s", rc, why);
    cr_assert_gt(size, 4);
    cr_assert_eq(jpg[0], 0xFF);
    cr_assert_eq(jpg[1], 0xD8);
    cr_assert_eq(jpg[size - 2], 0xFF);
    cr_assert_eq(jpg[size - 1], 0xD9);
    /* It reads back as a picture of that size. */
    media_input *m;
    rc = media_open(jpg, size, NULL, &m, why, sizeof why);
    cr_assert_eq(rc, 0, "%d: %s", rc, why);
    vt_probe p;
    media_probe(m, &p);
    cr_assert_eq(p.width, 33);
    cr_assert_eq(p.height, 17);
    cr_assert_str_eq(p.codec, "mjpeg");
    media_close(m);
    /* A lower quality is smaller. */
    uint8_t *low;
    uint64_t low_size;
    TH_OK(media_jpeg(rgb, w, h, 5, &low, &low_size, why, sizeof why));
    cr_assert_lt(low_size, size);
    free(low);
    free(jpg);
    TH_RC(media_jpeg(rgb, 0, h, 90, &jpg, &size, why, sizeof why), -EINVAL);
    TH_RC(media_jpeg(NULL, w, h, 90, &jpg, &size, why, sizeof why), -EINVAL);
}

/* ---- seeking ------------------------------------------------------------------ */

/* The frames a decode hands over from frame from on: their timestamps and
 * small RGB pictures. */
typedef struct seek_seen {
    int64_t from; /* frames before it are not kept */
    int64_t first, n, seen;
    int64_t pts[8];
    uint8_t rgb[8][16 * 16 * 3];
} seek_seen;

static int seek_keep(void *arg, int64_t index, const AVFrame *f) {
    seek_seen *s = arg;
    if (s->seen++ == 0)
        s->first = index;
    cr_assert_eq(index, s->first + s->seen - 1, "frames come in order, each once");
    if (index < s->from)
        return 0;
    cr_assert_lt(s->n, 8);
    s->pts[s->n] = f->pts;
    cr_assert_eq(media_frame_to_rgb(f, 16, 16, s->rgb[s->n]), 0);
    s->n++;
    return 0;
}

/* A chunk of a video decodes from the keyframe before it, not from the
 * first frame, and its frames are exactly those a decode from the first
 * frame gives, numbered alike (the same timestamps, the same pictures):
 * gop.mp4 (made here: H.264 with B-frames, an IDR every 30 frames), and
 * diver.mov (MJPEG, all keyframes). cockatoo.mp4 has keyframes at frames 0,
 * 76 and 145 that decode damaged when decoding begins there (parameter sets
 * in its stream that its container's copy lacks): there the decode falls
 * back to the first frame, and its pictures are still those of a decode
 * from the first frame. */
Test(stage_media, a_decode_from_a_later_frame_seeks_and_numbers_frames_alike) {
    char gop[128], cmd[400];
    snprintf(gop, sizeof gop, "/tmp/reel-test-%d-gop.mp4", (int)getpid());
    snprintf(cmd, sizeof cmd,
             "ffmpeg -nostdin -loglevel error -y -f lavfi -i testsrc2=s=320x240:r=25 -frames:v "
             "200 -c:v libx264 -preset veryfast -g 30 -bf 2 '%s'",
             gop);
    cr_assert_eq(system(cmd), 0, "%s (scripts/deps.sh installs ffmpeg)", cmd);
    static const struct {
        const char *name; /* NULL: gop.mp4 */
        int64_t start, most_decoded_before;
    } cases[] = {
        {NULL, 10, 10},             /* too close to the start to seek */
        {NULL, 100, 40},            /* from frame 60: 90 is within 16 frames */
        {NULL, 170, 20},            /* from frame 150 */
        {"diver.mov", 200, 16},     /* from frame 184 */
        {"diver.mov", 340, 16},     /* from frame 324 */
        {"cockatoo.mp4", 100, 100}, /* the seek is undone: from frame 0 */
        {"cockatoo.mp4", 270, 270},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *path = cases[i].name ? sf_sample_path(cases[i].name) : strdup(gop);
        vt_file id = sf_file_id(path);
        media_input *m;
        char why[256];
        TH_OK(media_open_file(path, &id, NULL, &m, why, sizeof why));
        int64_t start = cases[i].start;
        seek_seen *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
        cr_assert(a && b);
        bool partial;
        /* From the first frame, keeping [start, start + 4). */
        a->from = start;
        TH_OK(media_decode(m, 0, start + 4, seek_keep, a, &partial, why, sizeof why));
        cr_assert_eq(a->first, 0);
        cr_assert_eq(a->n, 4);
        TH_OK(media_decode(m, start, start + 4, seek_keep, b, &partial, why, sizeof why));
        cr_assert_eq(b->first, start, "%s from %lld", path, (long long)start);
        cr_assert_eq(b->n, 4);
        cr_assert_leq(media_decoded_before(m), cases[i].most_decoded_before,
                      "%s from frame %lld: %lld frames decoded before it", path, (long long)start,
                      (long long)media_decoded_before(m));
        for (int k = 0; k < 4; k++) {
            cr_assert_eq(a->pts[k], b->pts[k], "%s: frame %lld is another frame", path,
                         (long long)(start + k));
            cr_assert_eq(memcmp(a->rgb[k], b->rgb[k], sizeof b->rgb[k]), 0,
                         "%s: frame %lld differs", path, (long long)(start + k));
        }
        free(a);
        free(b);
        media_close(m);
        free(path);
    }
    unlink(gop);
}

/* ---- sound ----------------------------------------------------------------------------- */

typedef struct sound_seen {
    uint32_t n;
    double first_s, last_s;
    double tb;
    AVPacket *pkts[1024];
} sound_seen;

static int count_frames(void *arg, int64_t index, const AVFrame *frame) {
    (void)index, (void)frame;
    (*(int64_t *)arg)++;
    return 0;
}

static int sound_keep(void *arg, const AVPacket *pkt) {
    sound_seen *s = arg;
    double t = (double)pkt->pts * s->tb;
    if (s->n == 0)
        s->first_s = t;
    s->last_s = t;
    cr_assert_lt(s->n, 1024);
    s->pkts[s->n++] = av_packet_clone(pkt);
    return 0;
}

static void sound_clear(sound_seen *s) {
    for (uint32_t k = 0; k < s->n; k++)
        av_packet_free(&s->pkts[k]);
    s->n = 0;
}

/* Makes path with ffmpeg (lavfi inputs and codecs: args) and opens it. */
static media_input *made_video(const char *args, const char *path) {
    char cmd[512], why[256];
    snprintf(cmd, sizeof cmd, "ffmpeg -nostdin -loglevel error -y %s '%s'", args, path);
    cr_assert_eq(system(cmd), 0, "%s (scripts/deps.sh installs ffmpeg)", cmd);
    vt_file id = sf_file_id(path);
    media_input *m;
    TH_OK(media_open_file(path, &id, NULL, &m, why, sizeof why));
    return m;
}

/* The streams of an MP4 held in memory: how many video and audio ones, and
 * the audio stream's codec and duration in seconds. */
static void mp4_streams(const uint8_t *data, uint64_t size, int *video, int *audio,
                        enum AVCodecID *audio_codec, double *audio_s) {
    char path[128];
    snprintf(path, sizeof path, "/tmp/reel-test-%d-clip.mp4", (int)getpid());
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(data, 1, size, f), size);
    fclose(f);
    AVFormatContext *fmt = NULL;
    cr_assert_geq(avformat_open_input(&fmt, path, NULL, NULL), 0);
    cr_assert_geq(avformat_find_stream_info(fmt, NULL), 0);
    *video = *audio = 0;
    for (unsigned i = 0; i < fmt->nb_streams; i++) {
        const AVStream *st = fmt->streams[i];
        if (st->codecpar->codec_type == AVMEDIA_TYPE_VIDEO)
            (*video)++;
        if (st->codecpar->codec_type == AVMEDIA_TYPE_AUDIO) {
            (*audio)++;
            *audio_codec = st->codecpar->codec_id;
            *audio_s = st->duration * av_q2d(st->time_base);
        }
    }
    avformat_close_input(&fmt);
    unlink(path);
}

/* media_audio() hands over the packets of a span of the sound, by
 * timestamp, without decoding; an MP4 started with the sound's parameters
 * takes them (shifted to the clip's start) beside its pictures; a video
 * without sound says so with no call. */
Test(stage_media, a_clip_carries_the_sound_of_its_span) {
    static const char tone[] = "-f lavfi -i testsrc2=s=160x120:r=25:d=4 -f lavfi -i "
                               "sine=f=440:d=4 -c:v libx264 -preset ultrafast -shortest";
    char src[128], mov[160], args[256], why[256];
    snprintf(src, sizeof src, "/tmp/reel-test-%d-sound.mp4", (int)getpid());
    snprintf(mov, sizeof mov, "%s.mov", src);
    snprintf(args, sizeof args, "%s -c:a aac", tone);
    media_input *m = made_video(args, src);
    static sound_seen s;
    media_audio_info info;
    /* Before the pictures are decoded, and after: the same packets. */
    for (int pass = 0; pass < 2; pass++) {
        sound_clear(&s);
        s.tb = 1.0 / 44100; /* the callback's; checked against info below */
        TH_OK(media_audio(m, 1.0, 3.0, &info, sound_keep, &s, why, sizeof why));
        cr_assert_not_null(info.par, "no sound found");
        cr_assert_eq(info.par->codec_id, AV_CODEC_ID_AAC);
        cr_assert(media_mp4_takes(info.par));
        cr_assert_float_eq(av_q2d(info.time_base), s.tb, 1e-12);
        /* 2 s of 1024-sample frames at 44.1 kHz: about 86 packets. */
        cr_assert(s.n >= 84 && s.n <= 88, "%u packets", s.n);
        cr_assert_geq(s.first_s, 1.0);
        cr_assert_lt(s.first_s, 1.03);
        cr_assert_lt(s.last_s, 3.0);
        if (pass == 0) {
            avcodec_parameters_free(&info.par);
            int64_t frames = 0;
            bool partial;
            TH_OK(media_decode(m, 0, -1, count_frames, &frames, &partial, why, sizeof why));
            cr_assert_eq(frames, 100);
        }
    }
    /* The clip: 50 pictures (2 s) and that sound. */
    media_encode_options eo = {.encoder = "libx264",
                               .preset = "ultrafast",
                               .crf = 23,
                               .width = 160,
                               .height = 120,
                               .fps = 25,
                               .audio = info.par,
                               .audio_time_base = info.time_base};
    media_output *e;
    TH_OK(media_encode_start(&eo, &e, why, sizeof why));
    int64_t offset = (int64_t)llround(1.0 / s.tb);
    for (uint32_t k = 0; k < s.n; k++)
        TH_OK(media_encode_audio(e, s.pkts[k], offset, why, sizeof why));
    AVFrame *f = av_frame_alloc();
    f->format = AV_PIX_FMT_YUV420P;
    f->width = 160;
    f->height = 120;
    TH_OK(av_frame_get_buffer(f, 0));
    for (int k = 0; k < 50; k++) {
        TH_OK(av_frame_make_writable(f));
        for (int p = 0; p < 3; p++)
            memset(f->data[p], 16 + k * 4, (size_t)f->linesize[p] * (p ? 60 : 120));
        TH_OK(media_encode_frame(e, f, why, sizeof why));
    }
    av_frame_free(&f);
    const uint8_t *data;
    uint64_t size;
    TH_OK(media_encode_finish(e, &data, &size, why, sizeof why));
    int video, audio;
    enum AVCodecID codec = AV_CODEC_ID_NONE;
    double audio_s = 0;
    mp4_streams(data, size, &video, &audio, &codec, &audio_s);
    cr_assert_eq(video, 1);
    cr_assert_eq(audio, 1);
    cr_assert_eq(codec, AV_CODEC_ID_AAC);
    cr_assert(audio_s > 1.9 && audio_s < 2.1, "%g s of sound in a 2 s clip", audio_s);
    media_encode_free(e);
    /* Without sound options, no audio stream; a packet for it is refused. */
    eo.audio = NULL;
    TH_OK(media_encode_start(&eo, &e, why, sizeof why));
    TH_RC(media_encode_audio(e, s.pkts[0], 0, why, sizeof why), -EINVAL);
    media_encode_free(e);
    sound_clear(&s);
    avcodec_parameters_free(&info.par);
    media_close(m);
    unlink(src);
    /* PCM, which an MP4 does not take as it is: AAC made of it, timed as
     * its samples. */
    snprintf(args, sizeof args, "%s -c:a pcm_s16le", tone);
    m = made_video(args, mov);
    s.tb = 1.0 / 44100;
    TH_OK(media_audio(m, 1.0, 3.0, &info, sound_keep, &s, why, sizeof why));
    cr_assert_not_null(info.par);
    cr_assert(info.reencoded);
    cr_assert_eq(info.par->codec_id, AV_CODEC_ID_AAC);
    cr_assert(media_mp4_takes(info.par));
    cr_assert_float_eq(av_q2d(info.time_base), s.tb, 1e-12);
    /* 2 s in 1024-sample frames, and the encoder's priming. */
    cr_assert(s.n >= 86 && s.n <= 90, "%u packets", s.n);
    cr_assert(s.first_s > 0.9 && s.first_s < 1.01, "the sound starts at %g s", s.first_s);
    cr_assert(s.last_s > 2.9 && s.last_s < 3.0, "the sound ends at %g s", s.last_s);
    sound_clear(&s);
    avcodec_parameters_free(&info.par);
    media_close(m);
    unlink(mov);
    /* Every sample has sound; a video made without it: no call. */
    m = made_video("-f lavfi -i testsrc2=s=160x120:r=25:d=1 -c:v libx264 -preset ultrafast", src);
    TH_OK(media_audio(m, 0, 1, &info, sound_keep, &s, why, sizeof why));
    cr_assert_null(info.par);
    cr_assert_eq(s.n, 0);
    media_close(m);
    unlink(src);
}
