/*
 * test_stage_preview.c - the preview stage (stages/preview.c): one JPEG per
 * kept clip, of its middle frame (Curator's middle: n / 2, or n / 2 - 1 for
 * even n), its longer side preview_size pixels. The JPEGs are checked for
 * their markers and decoded back (FFmpeg reads a lone JPEG as an image
 * pipe) for their size and the frame they show.
 */
#include "helpers.h"
#include "stage_fixture.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *store_path;
static reel_store *store;

static void setup(void) {
    th_init();
    store = th_store_new(64 << 20, 1024, &store_path);
}

TestSuite(stage_preview, .init = setup, .fini = th_fini, .timeout = 60);

typedef struct picture {
    int w, h;
    double mean[3]; /* per channel, over the picture */
    int frames;
} picture;

static int take_picture(void *arg, int64_t index, const AVFrame *f) {
    (void)index;
    picture *p = arg;
    p->frames++;
    p->w = f->width;
    p->h = f->height;
    uint8_t *rgb = malloc((size_t)f->width * f->height * 3);
    if (!rgb)
        return -ENOMEM;
    int rc = media_frame_to_rgb(f, (uint32_t)f->width, (uint32_t)f->height, rgb);
    for (int c = 0; rc == 0 && c < 3; c++) {
        double sum = 0;
        for (int i = 0; i < f->width * f->height; i++)
            sum += rgb[i * 3 + c];
        p->mean[c] = sum / (f->width * f->height);
    }
    free(rgb);
    return rc;
}

/* Asserts that b is one JPEG and decodes it. */
static picture decode_jpeg(vt_art b) {
    cr_assert_gt(b.size, 4, "no preview");
    cr_assert(b.data[0] == 0xff && b.data[1] == 0xd8, "no JPEG start marker");
    cr_assert(b.data[b.size - 2] == 0xff && b.data[b.size - 1] == 0xd9, "no JPEG end marker");
    vt_probe p;
    picture pic = {0};
    sf_decode("the preview", b.data, b.size, take_picture, &pic, &p);
    cr_assert(strstr(p.codec, "jpeg"), "codec %s", p.codec);
    cr_assert_eq(pic.frames, 1);
    return pic;
}

static reel_curate_options options(uint32_t side) {
    reel_curate_options o;
    reel_curate_defaults(&o);
    o.preview_size = side;
    return o;
}

Test(stage_preview, middle_frame_scaled_to_the_longer_side) {
    /* Every frame its own grey level; 9 frames: the middle is 4, and 10
     * frames: 4 as well (n / 2 - 1). */
    sf_blob land = sf_encode("veryfast", 96, 64, 10, 9, sf_paint_levels, NULL);
    sf_blob port = sf_encode("veryfast", 64, 96, 10, 10, sf_paint_levels, NULL);
    static const uint8_t colour[3] = {220, 60, 20};
    sf_blob solid = sf_encode("veryfast", 160, 90, 25, 30, sf_paint_solid, (void *)colour);
    vt_clip clips[3];
    sf_clip(&clips[0], 0, land, 96, 64, 10, 9);
    sf_clip(&clips[1], 1, port, 64, 96, 10, 10);
    sf_clip(&clips[2], 2, solid, 160, 90, 25, 30);
    video_task t;
    sf_task(&t, clips, 3);
    reel_curate_options o = options(48);
    sf_out out = sf_run1(store, store_path, &stage_preview_def, &o, &t);
    const vt_clip *c = out.t.clips;

    picture a = decode_jpeg(c[0].preview);
    cr_assert_eq(a.w, 48);
    cr_assert_eq(a.h, 32);
    cr_assert(fabs(a.mean[1] - sf_level(4)) < 3, "landscape: frame %d shown (level %.1f)",
              sf_index_of(a.mean[1]), a.mean[1]);

    picture b = decode_jpeg(c[1].preview);
    cr_assert_eq(b.w, 32);
    cr_assert_eq(b.h, 48);
    cr_assert(fabs(b.mean[1] - sf_level(4)) < 3, "portrait: frame %d shown (level %.1f)",
              sf_index_of(b.mean[1]), b.mean[1]);

    /* 160x90 -> 48x27 (rounded); its colour survives. */
    picture s = decode_jpeg(c[2].preview);
    cr_assert_eq(s.w, 48);
    cr_assert_eq(s.h, 27);
    for (int ch = 0; ch < 3; ch++)
        cr_assert(fabs(s.mean[ch] - colour[ch]) < 6, "channel %d: %.1f, want %d", ch, s.mean[ch],
                  colour[ch]);
    for (int k = 0; k < 3; k++)
        cr_assert_str_eq(sf_errors(&c[k]), "");
    sf_out_free(&out);
    free(land.data);
    free(port.data);
    free(solid.data);
}

Test(stage_preview, previews_larger_than_the_clip) {
    sf_blob m = sf_encode("veryfast", 64, 48, 10, 5, sf_paint_levels, NULL);
    vt_clip clip;
    sf_clip(&clip, 0, m, 64, 48, 10, 5);
    video_task t;
    sf_task(&t, &clip, 1);
    reel_curate_options o = options(320);
    sf_out out = sf_run1(store, store_path, &stage_preview_def, &o, &t);
    picture p = decode_jpeg(out.t.clips[0].preview);
    cr_assert_eq(p.w, 320);
    cr_assert_eq(p.h, 240);
    cr_assert(fabs(p.mean[1] - sf_level(2)) < 3, "frame %d shown", sf_index_of(p.mean[1]));
    sf_out_free(&out);
    free(m.data);
}

Test(stage_preview, only_kept_clips_that_decode) {
    sf_blob m = sf_encode("veryfast", 64, 48, 10, 5, sf_paint_levels, NULL);
    static uint8_t junk[1024];
    memset(junk, 0xa5, sizeof junk);
    vt_clip clips[4];
    sf_clip(&clips[0], 0, m, 64, 48, 10, 5);
    clips[0].filtered = true;
    sf_clip(&clips[1], 1, (sf_blob){NULL, 0}, 64, 48, 10, 5);
    sf_clip(&clips[2], 2, (sf_blob){junk, sizeof junk}, 64, 48, 10, 5);
    sf_clip(&clips[3], 3, m, 64, 48, 10, 5);
    video_task t;
    sf_task(&t, clips, 4);
    reel_curate_options o = options(32);
    sf_out out = sf_run1(store, store_path, &stage_preview_def, &o, &t);
    const vt_clip *c = out.t.clips;
    cr_assert_eq(c[0].preview.size, 0, "a filtered clip gets no preview");
    cr_assert_eq(c[1].preview.size, 0, "a clip without its MP4 gets none");
    cr_assert_str_eq(sf_errors(&c[1]), "");
    cr_assert_eq(c[2].preview.size, 0);
    cr_assert(strncmp(sf_errors(&c[2]), "preview: ", 9) == 0, "%s", sf_errors(&c[2]));
    picture p = decode_jpeg(c[3].preview);
    cr_assert_eq(p.w, 32);
    cr_assert_eq(p.h, 24);
    sf_out_free(&out);

    /* Nothing to preview: the task goes on as it came. */
    t.n_clips = 2;
    out = sf_run1(store, store_path, &stage_preview_def, &o, &t);
    cr_assert(out.forwarded);
    sf_out_free(&out);
    free(m.data);
}
