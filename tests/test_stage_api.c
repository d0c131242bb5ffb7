/*
 * test_stage_api.c - a stage of one's own in the curation line, through the
 * public API alone (reel/stages.h, "your own stage"): a chunk read and
 * validated, its clips and artifacts read zero-copy, a clip filtered, the
 * chunk written on carrying every artifact; reel_curate_pipeline_with()
 * placing the stage; and examples/luma_filter run end to end.
 *
 * The stages under test check what they see themselves, in their worker,
 * and fail their task with a sentence saying what was wrong: the run then
 * fails with it (sf_run asserts that none did).
 */
#include "helpers.h"
#include "stage_fixture.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>

#include <reel/stages.h>

static const char *store_path;
static reel_store *store;
static char root[64];

static void setup(void) {
    th_init();
    store = th_store_new(64 << 20, 1024, &store_path);
    snprintf(root, sizeof root, "/tmp/reel-stage-api-test-XXXXXX");
    cr_assert(mkdtemp(root));
}

static void teardown(void) {
    if (th_rm_tree(root) != 0)
        fprintf(stderr, "could not remove %s\n", root);
    th_fini();
}

TestSuite(stage_api, .init = setup, .fini = teardown, .timeout = 300);

/* ---- a stage on the public calls ------------------------------------------------------ */

/* What the stage is told of its input before the run (the workers fork after
 * it is set), and where it writes the artifact IDs it read. */
static struct {
    uint64_t mp4_size[2];
    uint8_t mp4_head[2][16];
    char ids_file[128];
} expect;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            reel_actor_set_error(ctx, __VA_ARGS__);                                                \
            reel_clip_chunk_free(ch);                                                              \
            return -EPROTO;                                                                        \
        }                                                                                          \
    } while (0)

/* Reads the chunk of two clips, checks what the calls say of it, filters
 * clip 0 with a reason and writes the chunk on. */
static int api_process(reel_actor_ctx *ctx, const reel_view *in, size_t n, reel_actor_out *out) {
    reel_clip_chunk *ch = NULL;
    CHECK(n == 1, "%zu inputs", n);
    int rc = reel_clip_chunk_read(ctx, "api", &in[0], &ch);
    CHECK(rc == 0, "read: %d %s", rc, reel_last_error());
    CHECK(reel_clip_chunk_clips(ch) == 2, "%u clips", reel_clip_chunk_clips(ch));
    reel_clip_chunk_info info;
    CHECK(reel_clip_chunk_info_get(ch, &info) == 0, "info");
    CHECK(strcmp(info.path, "/videos/synthetic.mp4") == 0, "path %s", info.path);
    CHECK(info.clips == 2 && info.chunk_count == 1 && info.chunk_index == 0 &&
              info.total_clips == 2 && info.first_clip == 0,
          "chunk %u of %u, clips %u + %u of %u", info.chunk_index, info.chunk_count,
          info.first_clip, info.clips, info.total_clips);
    FILE *ids = fopen(expect.ids_file, "w");
    CHECK(ids, "%s", expect.ids_file);
    for (uint32_t i = 0; i < 2; i++) {
        reel_clip c;
        rc = reel_clip_chunk_clip(ch, i, &c);
        if (rc)
            fclose(ids);
        CHECK(rc == 0, "clip %u: %d", i, rc);
        char want_uuid[40];
        snprintf(want_uuid, sizeof want_uuid, "00000000-0000-5000-8000-%012u", i);
        bool ok = strcmp(c.uuid, want_uuid) == 0 && c.start_frame == 10 * i &&
                  c.end_frame == 10 * i + 10 && c.width == 64 && c.height == 64 &&
                  c.num_frames == 10 && !c.filtered && strcmp(c.errors, "") == 0 &&
                  c.art[REEL_CLIP_MP4].size == expect.mp4_size[i] &&
                  c.art[REEL_CLIP_PREVIEW].size == 5 && c.art[REEL_CLIP_TENSOR].size == 0 &&
                  c.art[REEL_CLIP_FRAMES].size == (i == 0 ? 12u : 0u) &&
                  c.frames_n == (i == 0 ? 1u : 0u);
        for (int k = 0; k < (int)REEL_CLIP_ARTS; k++) {
            char hex[REEL_ID_HEX_LEN + 1];
            reel_id_to_hex(&c.art[k].id, hex);
            fprintf(ids, "%u %d %s\n", i, k, hex);
        }
        if (!ok)
            fclose(ids);
        CHECK(ok, "clip %u: %s %lld..%lld %dx%d mp4 %llu preview %llu", i, c.uuid,
              (long long)c.start_frame, (long long)c.end_frame, c.width, c.height,
              (unsigned long long)c.art[REEL_CLIP_MP4].size,
              (unsigned long long)c.art[REEL_CLIP_PREVIEW].size);
        /* The MP4 zero-copy: the store's own bytes, the record's size. */
        reel_view v, again;
        rc = reel_clip_art_get(ch, i, REEL_CLIP_MP4, &v);
        if (rc)
            fclose(ids);
        CHECK(rc == 0, "mp4 of clip %u: %d %s", i, rc, reel_last_error());
        rc = reel_obj_get(reel_actor_store(ctx), &c.art[REEL_CLIP_MP4].id, 1, 0, &again);
        ok = rc == 0 && again.data == v.data && v.size == expect.mp4_size[i] &&
             memcmp(v.data, expect.mp4_head[i], 16) == 0 && v.meta_size > 0 &&
             reel_id_equal(&v.id, &c.art[REEL_CLIP_MP4].id);
        if (rc == 0)
            reel_obj_release(reel_actor_store(ctx), &again.id);
        if (!ok)
            fclose(ids);
        CHECK(ok, "clip %u: the mp4's view is not the store's object, as the record says it", i);
        reel_clip_art_release(ch, i, REEL_CLIP_MP4);
    }
    fclose(ids);
    reel_view v;
    rc = reel_clip_art_get(ch, 1, REEL_CLIP_TENSOR, &v);
    CHECK(rc == -ENOENT && strstr(reel_last_error(), "has no tensor"), "no tensor: %d %s", rc,
          reel_last_error());
    rc = reel_clip_art_get(ch, 2, REEL_CLIP_MP4, &v);
    CHECK(rc == -EINVAL && strstr(reel_last_error(), "clip 2 of a chunk of 2"), "clip 2: %d %s", rc,
          reel_last_error());
    rc = reel_clip_art_get(ch, 0, (reel_clip_art)4, &v);
    CHECK(rc == -EINVAL, "artifact 4: %d", rc);
    CHECK(reel_clip_filter(ch, 2, NULL) == -EINVAL, "filter of clip 2");

    /* Clip 0, its preview mapped: filtered, with a reason. */
    CHECK(reel_clip_art_get(ch, 0, REEL_CLIP_PREVIEW, &v) == 0, "preview: %s", reel_last_error());
    CHECK(memcmp(v.data, "JPEG0", 5) == 0, "preview bytes");
    CHECK(reel_clip_filter(ch, 0, "too dark") == 0, "filter: %s", reel_last_error());
    reel_clip c0;
    CHECK(reel_clip_chunk_clip(ch, 0, &c0) == 0, "clip 0 again");
    CHECK(c0.filtered && strcmp(c0.errors, "api: filtered: too dark") == 0 &&
              c0.art[REEL_CLIP_MP4].size == expect.mp4_size[0] &&
              c0.art[REEL_CLIP_PREVIEW].size == 0 && c0.art[REEL_CLIP_FRAMES].size == 0 &&
              c0.frames_n == 0,
          "clip 0 after the filter: filtered %d, errors \"%s\", preview %llu, frames %llu",
          c0.filtered, c0.errors, (unsigned long long)c0.art[REEL_CLIP_PREVIEW].size,
          (unsigned long long)c0.art[REEL_CLIP_FRAMES].size);
    /* Mapped again and left mapped: the free releases it. */
    CHECK(reel_clip_art_get(ch, 1, REEL_CLIP_PREVIEW, &v) == 0, "preview 1");
    rc = reel_clip_chunk_write(ch, out);
    CHECK(rc == 0, "write: %d %s", rc, reel_last_error());
    rc = reel_clip_chunk_write(ch, out);
    CHECK(rc == -EEXIST, "a second write: %d", rc);
    reel_clip_chunk_free(ch);
    return 0;
}

static const reel_actor_def api_def = {
    .name = "api", .process = api_process, .max_retries = REEL_ACTOR_NONE};

Test(stage_api, a_stage_reads_clips_zero_copy_filters_one_and_writes_every_artifact_on) {
    static const uint8_t grey[3] = {128, 128, 128};
    sf_blob mp4[2];
    vt_clip clips[2];
    static uint8_t frames[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    for (int k = 0; k < 2; k++) {
        mp4[k] = sf_encode("ultrafast", 64, 64, 10, 10, sf_paint_solid, (void *)grey);
        expect.mp4_size[k] = mp4[k].size;
        memcpy(expect.mp4_head[k], mp4[k].data, 16);
        sf_clip(&clips[k], k, mp4[k], 64, 64, 10, 10);
        clips[k].preview = (vt_art){.data = (const uint8_t *)(k ? "JPEG1" : "JPEG0"), .size = 5};
    }
    clips[0].frames = (vt_art){.data = frames, .size = sizeof frames};
    clips[0].frames_n = 1, clips[0].frames_h = 2, clips[0].frames_w = 2, clips[0].frames_fps = 1;
    snprintf(expect.ids_file, sizeof expect.ids_file, "%s/ids", root);
    video_task t;
    sf_task(&t, clips, 2);
    reel_curate_options o;
    reel_curate_defaults(&o);
    sf_out out = sf_run1(store, store_path, &api_def, &o, &t);

    cr_assert_eq(out.outputs, 1, "one chunk out");
    cr_assert_eq(out.t.n_clips, 2);
    const vt_clip *c0 = &out.t.clips[0], *c1 = &out.t.clips[1];
    cr_expect(c0->filtered);
    cr_expect_str_eq(sf_errors(c0), "api: filtered: too dark");
    cr_expect(!vt_art_present(&c0->preview) && !vt_art_present(&c0->frames),
              "a filtered clip keeps no frames or preview");
    cr_expect(!c1->filtered);
    cr_expect_str_eq(sf_errors(c1), "");
    /* The MP4s and the kept preview come out as they went in, by the IDs
     * the stage read: carried on, not copied into new objects. */
    char text[1024] = "";
    FILE *f = fopen(expect.ids_file, "r");
    cr_assert(f, "the stage wrote no IDs");
    size_t len = fread(text, 1, sizeof text - 1, f);
    text[len] = '\0';
    fclose(f);
    const vt_art *outs[][2] = {{&c0->mp4, &c1->mp4}, {&c0->preview, &c1->preview}};
    const int kinds[] = {REEL_CLIP_MP4, REEL_CLIP_PREVIEW};
    for (int a = 0; a < 2; a++)
        for (uint32_t i = 0; i < 2; i++) {
            if (!vt_art_present(outs[a][i]))
                continue;
            char hex[REEL_ID_HEX_LEN + 1], line[64];
            reel_id_to_hex(&outs[a][i]->id, hex);
            snprintf(line, sizeof line, "%u %d %s\n", i, kinds[a], hex);
            cr_expect(strstr(text, line), "clip %u's artifact %d %s is not the one it read:\n%s", i,
                      kinds[a], hex, text);
        }
    cr_expect(vt_art_present(&c1->preview));
    for (int i = 0; i < 2; i++) {
        const vt_clip *c = &out.t.clips[i];
        cr_assert(vt_art_present(&c->mp4));
        cr_expect_eq(c->mp4.size, mp4[i].size);
        cr_expect(memcmp(c->mp4.data, mp4[i].data, mp4[i].size) == 0, "clip %d's MP4 bytes", i);
    }
    cr_expect_eq(memcmp(c1->preview.data, "JPEG1", 5), 0);
    /* The record is what was copied, and it is counted. */
    uint64_t record = 0;
    for (uint32_t i = 0; i < out.n_objs; i++)
        if (!out.objs[i].artifact)
            record = out.objs[i].size;
    cr_expect_eq(out.t.bytes_copied, record, "bytes_copied %llu, the record %llu bytes",
                 (unsigned long long)out.t.bytes_copied, (unsigned long long)record);
    sf_out_free(&out);
    free(mp4[0].data);
    free(mp4[1].data);
}

/* ---- a record that is no chunk ------------------------------------------------------- */

static int bad_process(reel_actor_ctx *ctx, const reel_view *in, size_t n, reel_actor_out *out) {
    (void)n, (void)out;
    reel_clip_chunk *ch = (reel_clip_chunk *)&ch;
    int rc = reel_clip_chunk_read(ctx, "api", &in[0], &ch);
    /* The task's error is the reader's; reel_last_error() is checked too. */
    if (rc && (ch != NULL || !strstr(reel_last_error(), "reel_clip_chunk_read: ")))
        reel_actor_set_error(ctx, "out %p, last error \"%s\"", (void *)ch, reel_last_error());
    reel_clip_chunk_free(ch);
    return rc ? rc : -EPROTO;
}

static const reel_actor_def bad_def = {
    .name = "api-bad", .process = bad_process, .max_retries = REEL_ACTOR_NONE};
static const reel_actor_def *const bad_defs[] = {&bad_def};

Test(stage_api, a_record_that_is_no_chunk_is_refused_with_a_sentence) {
    /* A good record of one clip, cut short, and bytes that are no record. */
    vt_clip c;
    sf_clip(&c, 0, (sf_blob){NULL, 0}, 64, 64, 10, 10);
    video_task t;
    sf_task(&t, &c, 1);
    uint64_t size = vt_size(&t);
    uint8_t *rec = malloc(size);
    cr_assert_not_null(rec);
    TH_OK(vt_write(&t, rec, size));
    reel_id ids[2];
    TH_OK(reel_obj_put(store, &ids[0], rec, size / 2, NULL, 0, REEL_OBJ_CONTENT_ID, 0));
    static char junk[1024];
    memset(junk, 'x', sizeof junk);
    TH_OK(reel_obj_put(store, &ids[1], junk, sizeof junk, NULL, 0, REEL_OBJ_CONTENT_ID, 0));
    free(rec);
    reel_runtime *rt;
    reel_pool *pool;
    reel_runtime_options ro = {.store = store_path, .actors = bad_defs, .n_actors = 1};
    TH_OK(reel_runtime_start(&ro, &rt));
    TH_OK(reel_pool_start(rt, "api-bad", 1, &pool));
    for (int k = 0; k < 2; k++)
        TH_OK(reel_pool_submit(pool, &ids[k], 1, NULL, 5000, NULL));
    const char *want[] = {"video task: ", "not a video task object"};
    for (int k = 0; k < 2; k++) {
        reel_task_result r;
        TH_OK(reel_pool_collect(pool, &r, 30000));
        int which = reel_id_equal(&r.inputs[0], &ids[0]) ? 0 : 1;
        cr_expect_eq(r.status, -EBADMSG, "input %d: %d: %s", which, r.status, r.error);
        cr_expect(strstr(r.error, want[which]), "input %d: \"%s\" does not say \"%s\"", which,
                  r.error, want[which]);
    }
    TH_OK(reel_pool_stop(pool, 5000));
    TH_OK(reel_runtime_stop(rt));
    for (int k = 0; k < 2; k++)
        TH_OK(reel_obj_delete(store, &ids[k]));
}

/* ---- the stage's place in the line ----------------------------------------------------- */

static int pass_on(reel_actor_ctx *ctx, const reel_view *in, size_t n, reel_actor_out *out) {
    (void)ctx, (void)in, (void)n;
    return reel_actor_forward(out, 0);
}

/* The stage names of p in order, joined by spaces. */
static void stage_names(const reel_pipeline *p, char *out, size_t cap) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cr_assert_not_null(f);
    TH_OK(reel_pipeline_describe(p, f));
    fclose(f);
    out[0] = '\0';
    for (const char *s = text; (s = strstr(s, "\nStage ")) != NULL;) {
        s = strchr(s, ':') + 2;
        size_t at = strlen(out);
        snprintf(out + at, cap - at, "%s%.*s", at ? " " : "", (int)strcspn(s, "\n"), s);
    }
    free(text);
}

Test(stage_api, a_stage_goes_in_after_the_stage_named_and_nowhere_it_cannot_work) {
    reel_curate_options o;
    reel_curate_defaults(&o);
    reel_actor_def defs[REEL_CURATE_STAGES];
    const reel_actor_def mine = {.name = "mine", .process = pass_on, .cpus = 1};
    reel_pipeline *p;
    char names[256];

    TH_OK(reel_curate_pipeline(&o, defs, &p));
    stage_names(p, names, sizeof names);
    cr_expect_str_eq(names, "reader splitter transcoder motion preview clip-writer writer");
    reel_pipeline_free(p);

    TH_OK(reel_curate_pipeline_with(&o, defs, &mine, NULL, NULL, &p));
    stage_names(p, names, sizeof names);
    cr_expect_str_eq(names, "reader splitter transcoder motion mine preview clip-writer writer");
    reel_pipeline_free(p);

    TH_OK(reel_curate_pipeline_with(&o, defs, &mine, "transcoder", NULL, &p));
    stage_names(p, names, sizeof names);
    cr_expect_str_eq(names, "reader splitter transcoder mine motion preview clip-writer writer");
    reel_pipeline_free(p);

    TH_OK(reel_curate_pipeline_with(&o, defs, &mine, "preview", NULL, &p));
    stage_names(p, names, sizeof names);
    cr_expect_str_eq(names, "reader splitter transcoder motion preview mine clip-writer writer");
    reel_pipeline_free(p);

    /* Where an item is no chunk of made clips, or nothing follows. */
    const char *refused[] = {"reader", "splitter", "clip-writer", "writer"};
    for (size_t k = 0; k < 4; k++) {
        p = NULL;
        int rc = reel_curate_pipeline_with(&o, defs, &mine, refused[k], NULL, &p);
        cr_expect_eq(rc, -EINVAL, "after %s: %d", refused[k], rc);
        cr_expect(strstr(reel_last_error(), "between the transcoder and the clip writer"),
                  "after %s: %s", refused[k], reel_last_error());
        cr_expect_null(p);
    }
    /* A stage the options leave out, or none of that name. */
    int rc = reel_curate_pipeline_with(&o, defs, &mine, "frames", NULL, &p);
    cr_expect_eq(rc, -EINVAL);
    cr_expect(strstr(reel_last_error(), "no stage \"frames\" in this line (reader, splitter, "
                                        "transcoder, motion, preview, clip-writer, writer)"),
              "%s", reel_last_error());
    o.write_frames = true;
    TH_OK(reel_curate_pipeline_with(&o, defs, &mine, "frames", NULL, &p));
    stage_names(p, names, sizeof names);
    cr_expect_str_eq(names,
                     "reader splitter transcoder motion frames mine preview clip-writer writer");
    reel_pipeline_free(p);
    /* A gathering stage, and a name the line has. */
    rc =
        reel_curate_pipeline_with(&o, defs, &mine, NULL, &(reel_stage_options){.gather = true}, &p);
    cr_expect_eq(rc, -EINVAL);
    cr_expect(strstr(reel_last_error(), "gathers"), "%s", reel_last_error());
    const reel_actor_def twin = {.name = "motion", .process = pass_on};
    cr_expect_eq(reel_curate_pipeline_with(&o, defs, &twin, NULL, NULL, &p), -EINVAL);
}

/* ---- examples/luma_filter ------------------------------------------------------------------ */

/* The example beside reel-curate in the build directory. */
static const char *example_bin(void) {
    static char path[4096];
    const char *curate = getenv("REEL_CURATE");
    if (!curate || !*curate)
        cr_skip_test("REEL_CURATE is not set (ctest sets it; the example is built beside it)");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", curate);
    snprintf(path, sizeof path, "%s/reel-example-luma-filter", dirname(dir));
    cr_assert_eq(access(path, X_OK), 0, "%s is not built", path);
    return path;
}

Test(stage_api, the_luma_filter_example_sends_the_dark_clip_to_filtered_clips) {
    const char *bin = example_bin();
    char videos[96], out[96], cmd[512], path[256];
    snprintf(videos, sizeof videos, "%s/videos", root);
    snprintf(out, sizeof out, "%s/out", root);
    cr_assert_eq(mkdir(videos, 0755), 0);
    /* 3 s of dark noise (mean luma about 20), 320x256: large enough for the
     * motion stage to score. */
    snprintf(cmd, sizeof cmd,
             "ffmpeg -nostdin -loglevel error -y -f lavfi -i "
             "color=c=black:s=320x256:d=3:r=25,noise=alls=20:allf=t -c:v libx264 -preset "
             "ultrafast -crf 30 -pix_fmt yuv420p '%s/dark.mp4'",
             videos);
    cr_assert_eq(system(cmd), 0, "%s (scripts/deps.sh installs ffmpeg)", cmd);

    /* The control: at a threshold of 0 nothing is dark, and the clip is kept. */
    th_result r = th_run_limit(
        bin, NULL,
        (const char *[]){"--video-dir", videos, "--output-clip-path", out, "--min-luma", "0", NULL},
        120000);
    cr_assert_eq(r.code, 0, "stdout:\n%s\nstderr:\n%s", r.out, r.err);
    cr_expect_eq(th_count_files(out, "clips", ".mp4"), 1);
    cr_expect_eq(th_count_files(out, "filtered_clips", ".mp4"), 0);
    th_result_free(&r);
    cr_assert_eq(th_rm_tree(out), 0);

    /* With the default threshold, beside a bright sample. */
    char *bright = sf_sample_path("cockatoo.mp4");
    snprintf(path, sizeof path, "%s/cockatoo.mp4", videos);
    cr_assert_eq(symlink(bright, path), 0, "%s", path);
    free(bright);
    r = th_run_limit(bin, NULL,
                     (const char *[]){"--video-dir", videos, "--output-clip-path", out, NULL},
                     240000);
    cr_assert_eq(r.code, 0, "stdout:\n%s\nstderr:\n%s", r.out, r.err);
    cr_expect(strstr(r.out, "2 videos, 3 clips: 2 written, 1 filtered"), "%s", r.out);
    th_result_free(&r);
    cr_expect_eq(th_count_files(out, "filtered_clips", ".mp4"), 1, "the dark clip");
    cr_expect_eq(th_count_files(out, "clips", ".mp4"), 2, "cockatoo's two clips");
    snprintf(path, sizeof path, "%s/processed_videos/dark.mp4.json", out);
    const char *rec = th_read_text(path);
    cr_assert(rec, "%s is missing", path);
    cr_expect(strstr(rec, "\"num_clips_written\": 0, \"num_clips_filtered\": 1"), "%s", rec);
    cr_expect(strstr(rec, "\"clips\": [], \"filtered_clips\": [\""), "%s", rec);
    snprintf(path, sizeof path, "%s/processed_videos/cockatoo.mp4.json", out);
    rec = th_read_text(path);
    cr_assert(rec, "%s is missing", path);
    cr_expect(strstr(rec, "\"num_clips_written\": 2, \"num_clips_filtered\": 0"), "%s", rec);
}
