/*
 * test_stage_task.c - the pieces every video stage relies on: the video task
 * container (round trip, and every way a damaged one is refused), Curator's
 * clip UUIDs, and the writer's output layout and JSON.
 */
#include "helpers.h"
#include "stage_fixture.h"
#include "stages_internal.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

TestSuite(stage_task, .init = th_init, .fini = th_fini, .timeout = 60);

static const char path_text[] = "/videos/a \"quoted\"\\name.mp4";

/* A task with two clips, the first with everything, the second bare. */
static void sample_task(video_task *t, vt_clip clips[2], uint8_t *frames, float *tensor) {
    memset(t, 0, sizeof *t);
    memset(clips, 0, 2 * sizeof *clips);
    t->path = (vt_bytes){(const uint8_t *)path_text, strlen(path_text)};
    snprintf(t->probe.container, sizeof t->probe.container, "mov,mp4");
    snprintf(t->probe.codec, sizeof t->probe.codec, "h264");
    t->probe.duration_s = 12.5;
    t->probe.fps = 25;
    t->probe.width = 640;
    t->probe.height = 360;
    t->probe.num_frames = 312;
    t->probe.num_bytes = 123456;
    t->file = (vt_file){.size = 123456, .mtime_ns = -1234567890123, .ino = 1ull << 40, .dev = 77};
    t->n_clips = 2;
    t->clips = clips;
    vt_clip *c = &clips[0];
    snprintf(c->uuid, sizeof c->uuid, "6f1a7c2e-0000-5000-8000-000000000001");
    c->start_frame = 0;
    c->end_frame = 250;
    c->start_s = 0;
    c->end_s = 10;
    c->mp4 = (vt_art){.data = (const uint8_t *)"MP4DATA", .size = 7};
    c->mp4.id.bytes[0] = 1;
    c->width = 640, c->height = 360, c->fps = 25, c->num_frames = 250;
    c->has_motion = true;
    c->motion_global_mean = 0.25;
    c->motion_patch_min = 0.125;
    for (int i = 0; i < 2 * 4 * 4 * 3; i++)
        frames[i] = (uint8_t)i;
    c->frames = (vt_art){.data = frames, .size = 2 * 4 * 4 * 3};
    c->frames.id.bytes[0] = 2;
    c->frames_n = 2, c->frames_h = 4, c->frames_w = 4, c->frames_fps = 2;
    for (int i = 0; i < 1 * 3 * 2 * 2; i++)
        tensor[i] = (float)i / 7;
    c->tensor = (vt_art){.data = (const uint8_t *)tensor, .size = 1 * 3 * 2 * 2 * 4};
    c->tensor.id.bytes[0] = 3;
    c->tensor_n = 1, c->tensor_h = 2, c->tensor_w = 2;
    c->preview = (vt_art){.data = (const uint8_t *)"\xff\xd8JPEG\xff\xd9", .size = 8};
    c->preview.id.bytes[15] = 4;
    snprintf(clips[1].uuid, sizeof clips[1].uuid, "6f1a7c2e-0000-5000-8000-000000000002");
    clips[1].start_frame = 250;
    clips[1].end_frame = 312;
    clips[1].start_s = 10;
    clips[1].end_s = 12.48;
    clips[1].errors = (vt_bytes){(const uint8_t *)"could not encode", 16};
}

static uint8_t *written(const video_task *t, uint64_t *size) {
    *size = vt_size(t);
    uint8_t *buf = malloc(*size);
    cr_assert(buf);
    TH_OK(vt_write(t, buf, *size));
    return buf;
}

Test(stage_task, round_trip) {
    video_task t, back;
    vt_clip clips[2];
    uint8_t frames[96];
    float tensor[12];
    sample_task(&t, clips, frames, tensor);
    uint64_t size;
    uint8_t *buf = written(&t, &size);
    TH_RC(vt_write(&t, buf, size - 1), -ENOSPC);
    char why[256] = "";
    TH_OK(vt_read(buf, size, &back, why, sizeof why));
    cr_assert_eq(back.path.size, strlen(path_text));
    cr_assert_eq(memcmp(back.path.data, path_text, back.path.size), 0);
    cr_assert_str_eq(back.probe.codec, "h264");
    cr_assert_eq(back.probe.num_frames, 312);
    cr_assert_eq(back.probe.fps, 25);
    cr_assert_eq(back.file.size, 123456);
    cr_assert_eq(back.file.mtime_ns, -1234567890123);
    cr_assert_eq(back.file.ino, 1ull << 40);
    cr_assert_eq(back.file.dev, 77);
    cr_assert_eq(back.n_clips, 2);
    const vt_clip *c = &back.clips[0];
    cr_assert_str_eq(c->uuid, clips[0].uuid);
    cr_assert_eq(c->end_frame, 250);
    cr_assert_eq(c->motion_patch_min, 0.125);
    cr_assert(c->has_motion);
    /* Artifacts are named, never held: their IDs and sizes come back. */
    cr_assert(reel_id_equal(&c->mp4.id, &clips[0].mp4.id) && c->mp4.size == 7 && !c->mp4.data);
    cr_assert(reel_id_equal(&c->frames.id, &clips[0].frames.id) && c->frames.size == 96);
    cr_assert(reel_id_equal(&c->tensor.id, &clips[0].tensor.id) && c->tensor.size == 48);
    cr_assert(reel_id_equal(&c->preview.id, &clips[0].preview.id) && c->preview.size == 8);
    cr_assert(!vt_art_present(&back.clips[1].mp4) && back.clips[1].mp4.size == 0);
    cr_assert_lt(size, 1024, "the record holds no artifact's bytes: %llu bytes",
                 (unsigned long long)size);
    /* A whole video unless it says otherwise; the counter comes back. */
    cr_assert(back.chunk_index == 0 && back.chunk_count == 1 && back.first_clip == 0 &&
              back.total_clips == 2);
    vt_free(&back);
    t.chunk_index = 2, t.chunk_count = 5, t.first_clip = 4, t.total_clips = 9;
    t.bytes_copied = 12345;
    free(buf);
    buf = written(&t, &size);
    TH_OK(vt_read(buf, size, &back, why, sizeof why));
    cr_assert(back.chunk_index == 2 && back.chunk_count == 5 && back.first_clip == 4 &&
              back.total_clips == 9 && back.bytes_copied == 12345);
    cr_assert_eq(back.clips[1].errors.size, 16);
    char text[64];
    cr_assert_str_eq(vt_text(back.clips[1].errors, text, sizeof text), "could not encode");
    cr_assert_str_eq(vt_text(back.clips[1].errors, text, 6), "could");
    vt_free(&back);
    free(buf);
}

/* Artifacts are objects of their own since version 3: a task of the layout
 * that carried their bytes is refused, not misread. */
Test(stage_task, a_task_of_the_old_layout_is_refused) {
    video_task t, back;
    vt_clip clips[2];
    uint8_t frames[96];
    float tensor[12];
    sample_task(&t, clips, frames, tensor);
    uint64_t size;
    uint8_t *buf = written(&t, &size);
    cr_assert_eq(memcmp(buf, "REELVT03", 8), 0);
    memcpy(buf, "REELVT02", 8);
    char why[256] = "";
    TH_RC(vt_read(buf, size, &back, why, sizeof why), -EBADMSG);
    cr_assert(strstr(why, "magic or version"), "%s", why);
    free(buf);
}

Test(stage_task, damaged_tasks_are_refused) {
    video_task t, back;
    vt_clip clips[2];
    uint8_t frames[96];
    float tensor[12];
    sample_task(&t, clips, frames, tensor);
    uint64_t size;
    uint8_t *good = written(&t, &size);
    uint8_t *buf = malloc(size);
    char why[256];
    /* Truncated anywhere inside what it names. */
    for (uint64_t cut = 0; cut < size; cut += 7) {
        int rc = vt_read(good, cut, &back, why, sizeof why);
        if (rc == 0) /* cut inside trailing padding only */
            vt_free(&back);
        cr_assert(rc == -EBADMSG || cut >= size - 8, "cut at %llu of %llu read back",
                  (unsigned long long)cut, (unsigned long long)size);
    }
    /* Each byte of the header and records flipped: refused or read, never a crash. */
    uint64_t fixed = 512 < size ? 512 : size;
    for (uint64_t at = 0; at < fixed; at++) {
        memcpy(buf, good, size);
        buf[at] ^= 0xff;
        if (vt_read(buf, size, &back, why, sizeof why) == 0) {
            for (uint32_t i = 0; i < back.n_clips; i++) {
                const vt_clip *c = &back.clips[i];
                cr_assert_leq((const uint8_t *)c->errors.data + c->errors.size, buf + size);
                cr_assert_eq(vt_art_present(&c->frames), c->frames.size > 0);
                cr_assert_lt(back.first_clip + back.n_clips, back.total_clips + 1);
                cr_assert_lt(back.chunk_index, back.chunk_count);
            }
            vt_free(&back);
        }
    }
    /* Specific lies. */
    memcpy(buf, good, size);
    buf[0] = 'X';
    TH_RC(vt_read(buf, size, &back, why, sizeof why), -EBADMSG);
    cr_assert(strstr(why, "not a video task"), "%s", why);
    uint32_t huge = 0x7fffffff;
    memcpy(buf, good, size);
    memcpy(buf + 12, &huge, 4); /* n_clips */
    TH_RC(vt_read(buf, size, &back, why, sizeof why), -EBADMSG);
    cr_assert(strstr(why, "clips"), "%s", why);
    TH_RC(vt_read(NULL, 0, &back, why, sizeof why), -EBADMSG);
    /* A frames shape that does not match its bytes. */
    clips[0].frames_n = 3;
    uint64_t size2;
    uint8_t *lie = written(&t, &size2);
    TH_RC(vt_read(lie, size2, &back, why, sizeof why), -EBADMSG);
    cr_assert(strstr(why, "frames"), "%s", why);
    free(lie);
    clips[0].frames_n = 2;
    /* An ID without a size, and a chunk outside its video. */
    clips[0].preview.size = 0;
    lie = written(&t, &size2);
    TH_RC(vt_read(lie, size2, &back, why, sizeof why), -EBADMSG);
    cr_assert(strstr(why, "artifact"), "%s", why);
    free(lie);
    clips[0].preview.size = 8;
    t.chunk_index = 3, t.chunk_count = 3;
    lie = written(&t, &size2);
    TH_RC(vt_read(lie, size2, &back, why, sizeof why), -EBADMSG);
    cr_assert(strstr(why, "chunk"), "%s", why);
    free(lie);
    t.chunk_index = 0, t.chunk_count = 1;
    lie = written(&t, &size2);
    uint32_t one = 1;
    memcpy(lie + 44, &one, 4); /* total_clips 1, below its 2 clips */
    TH_RC(vt_read(lie, size2, &back, why, sizeof why), -EBADMSG);
    cr_assert(strstr(why, "clips 0 + 2 of 1"), "%s", why);
    free(lie);
    free(buf);
    free(good);
}

Test(stage_task, uuids_are_curators) {
    /* python3 -c 'import uuid; print(uuid.uuid5(uuid.NAMESPACE_URL, NAME))' */
    const char *cases[][2] = {
        {"x_0_10", "c43789d9-1aea-5199-a993-7c729bff21ea"},
        {"/data/videos/cockatoo.mp4_0_250", "efb6f897-07c4-57bf-973f-747119e1f31e"},
        {"/data/videos/a.mp4_0_250", "6f6c32cb-148f-5c96-8c66-5aeede275a47"},
        {"video.mp4_250_500", "77fd447b-69d8-522f-83d7-083e33ebd665"},
        {"", "1b4db7eb-4057-5ddf-91e0-36dec72071f5"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[37];
        TH_OK(reel_uuid5_url(cases[i][0], out));
        cr_assert_str_eq(out, cases[i][1], "uuid5(%s)", cases[i][0]);
    }
}

/* ---- the writer --------------------------------------------------------------- */

static int exists(const char *root, const char *rel) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    struct stat st;
    return stat(p, &st) == 0;
}

typedef struct summaries {
    reel_store *store;
    int n;
    reel_curate_video_summary s;
} summaries;

static void keep_summary(void *arg, const reel_task_result *r) {
    summaries *x = arg;
    reel_view v;
    cr_assert_eq(r->n_outputs, 1);
    TH_OK(reel_obj_get(x->store, &r->outputs[0], 1, 0, &v));
    TH_OK(reel_curate_read_summary(v.data, v.size, &x->s));
    x->n++;
    reel_obj_release(x->store, &r->outputs[0]);
    reel_obj_delete(x->store, &r->outputs[0]);
}

Test(stage_task, the_writer_lays_out_curators_tree) {
    const char *store_path;
    reel_store *store = th_store_new(16 << 20, 1024, &store_path);
    char root[] = "/tmp/reel-writer-XXXXXX";
    cr_assert(mkdtemp(root));
    char out_dir[300];
    snprintf(out_dir, sizeof out_dir, "%s/out/nested", root); /* made by the writer */

    video_task t;
    vt_clip clips[2];
    uint8_t frames[96];
    float tensor[12];
    sample_task(&t, clips, frames, tensor);
    clips[1].mp4 = (vt_art){.data = (const uint8_t *)"MP4B", .size = 4};
    clips[1].filtered = true;
    reel_id in, put[256];
    uint32_t n_put = sf_put_input(store, &t, &in, put);

    reel_curate_options o;
    reel_curate_defaults(&o);
    o.output_dir = out_dir;
    reel_pipeline *p;
    TH_OK(reel_pipeline_new("writer", &p));
    TH_OK(reel_pipeline_add(p, &sf_loader_def, &(reel_stage_options){.cpus = 0.5}));
    reel_actor_def clip_writer = stage_clip_writer_def, def = stage_writer_def;
    clip_writer.arg = def.arg = &o;
    TH_OK(reel_pipeline_add(p, &clip_writer, &(reel_stage_options){.cpus = 0.5}));
    TH_OK(reel_pipeline_add(p, &def, &(reel_stage_options){.cpus = 0.5, .gather = true}));
    reel_executor_config c;
    reel_executor_config_defaults(&c);
    summaries sums = {.store = store};
    reel_run_options ro = {.store = store_path,
                           .config = &c,
                           .inputs = &in,
                           .n_inputs = 1,
                           .on_output = keep_summary,
                           .arg = &sums,
                           .flags = REEL_RUN_QUIET};
    TH_OK(reel_pipeline_run(p, &ro, NULL));
    cr_assert_eq(sums.n, 1);
    cr_assert_eq(sums.s.clips, 2);
    cr_assert_eq(sums.s.clips_written, 1);
    cr_assert_eq(sums.s.clips_filtered, 1);
    cr_assert_str_eq(sums.s.name, "a \"quoted\"\\name.mp4");

    char rel[256];
    snprintf(rel, sizeof rel, "clips/%s.mp4", clips[0].uuid);
    cr_assert(exists(out_dir, rel), "%s", rel);
    snprintf(rel, sizeof rel, "filtered_clips/%s.mp4", clips[1].uuid);
    cr_assert(exists(out_dir, rel), "%s", rel);
    snprintf(rel, sizeof rel, "previews/%s/preview.jpg", clips[0].uuid);
    cr_assert(exists(out_dir, rel), "%s", rel);

    char file[512];
    snprintf(file, sizeof file, "%s/metas/v0/%s.json", out_dir, clips[0].uuid);
    const char *meta = th_read_text(file);
    cr_assert(meta, "%s", file);
    const char *want[] = {
        "\"span_uuid\": \"6f1a7c2e-0000-5000-8000-000000000001\"",
        "\"source_video\": \"/videos/a \\\"quoted\\\"\\\\name.mp4\"",
        "\"duration_span\": [0, 10]",
        "\"width_source\": 640",
        "\"height_source\": 360",
        "\"framerate_source\": 25",
        "\"num_frames_source\": 312",
        "\"width\": 640",
        "\"num_frames\": 250",
        "\"codec\": \"h264\"",
        "\"num_bytes\": 7",
        "\"motion_score\": {\"global_mean\": 0.25, \"per_patch_min_256\": 0.125}",
        "\"errors\": []",
        "\"valid\": true",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_assert(strstr(meta, want[i]), "metas lacks %s:\n%s", want[i], meta);
    snprintf(file, sizeof file, "%s/metas/v0/%s.json", out_dir, clips[1].uuid);
    meta = th_read_text(file);
    cr_assert(meta && strstr(meta, "\"errors\": [\"could not encode\"]"), "%s", meta);
    cr_assert(strstr(meta, "\"valid\": false") && strstr(meta, "\"filtered\": true"), "%s", meta);

    snprintf(file, sizeof file, "%s/processed_videos/a \"quoted\"\\name.mp4.json", out_dir);
    const char *rec = th_read_text(file);
    cr_assert(rec, "%s", file);
    cr_assert(strstr(rec, "\"clips\": [\"6f1a7c2e-0000-5000-8000-000000000001\"]"), "%s", rec);
    cr_assert(strstr(rec, "\"filtered_clips\": [\"6f1a7c2e-0000-5000-8000-000000000002\"]"), "%s",
              rec);
    cr_assert(strstr(rec, "\"error\": null") && strstr(rec, "\"valid\": true"), "%s", rec);

    /* A video that failed before the writer gets its record with the error. */
    TH_OK(reel_curate_record_failure(&o, "/videos/broken.mp4", "reader: not a video\n\x01"));
    snprintf(file, sizeof file, "%s/processed_videos/broken.mp4.json", out_dir);
    rec = th_read_text(file);
    cr_assert(rec && strstr(rec, "\"error\": \"reader: not a video\\u000a\\u0001\""), "%s", rec);
    cr_assert(strstr(rec, "\"valid\": false"), "%s", rec);

    reel_pipeline_free(p);
    TH_OK(reel_obj_delete(store, &in));
    for (uint32_t i = 0; i < n_put; i++)
        TH_OK(reel_obj_delete(store, &put[i]));
    cr_assert_eq(th_stats(store).objects_sealed, 0, "the run's artifacts are gone");
    cr_assert_eq(th_rm_tree(root), 0);
}

/* The clip writer passes a chunk on written and without its artifacts: the
 * executor deletes them then, so the store never holds a whole video's clips
 * waiting for the writer's gather. */
Test(stage_task, the_clip_writer_passes_a_chunk_on_without_its_artifacts) {
    const char *store_path;
    reel_store *store = th_store_new(16 << 20, 1024, &store_path);
    char root[] = "/tmp/reel-clip-writer-XXXXXX";
    cr_assert(mkdtemp(root));
    video_task t;
    vt_clip clips[2];
    uint8_t frames[96];
    float tensor[12];
    sample_task(&t, clips, frames, tensor);
    clips[1].mp4 = (vt_art){.data = (const uint8_t *)"MP4B", .size = 4};
    reel_curate_options o;
    reel_curate_defaults(&o);
    o.output_dir = root;
    /* sf_run1 also asserts that the store holds nothing of the run after. */
    sf_out out = sf_run1(store, store_path, &stage_clip_writer_def, &o, &t);
    cr_assert_eq(out.outputs, 1);
    for (uint32_t i = 0; i < out.n_objs; i++)
        cr_assert(!out.objs[i].artifact, "the clip writer handed artifacts on");
    cr_assert_eq(out.t.n_clips, 2);
    for (uint32_t i = 0; i < out.t.n_clips; i++) {
        const vt_clip *c = &out.t.clips[i];
        cr_assert(c->written, "clip %u: its MP4 is written, and the record says so", i);
        cr_assert(!vt_art_present(&c->mp4) && !vt_art_present(&c->preview) &&
                      !vt_art_present(&c->frames) && !vt_art_present(&c->tensor),
                  "clip %u: the record still names artifacts", i);
    }
    sf_out_free(&out);
    cr_assert_eq(th_rm_tree(root), 0);
}

/* ---- the writer gathers a video's chunks ------------------------------------ */

/* A splitter for the tests: one chunk per clip of its input. */
static int chunker(reel_actor_ctx *ctx, const reel_view *in, size_t n, reel_actor_out *out) {
    (void)ctx, (void)n;
    video_task t;
    char why[256];
    int rc = vt_read(in[0].data, in[0].size, &t, why, sizeof why);
    for (uint32_t i = 0; rc == 0 && i < t.n_clips; i++) {
        video_task c = t;
        c.clips = &t.clips[i];
        c.n_clips = 1;
        c.chunk_index = c.first_clip = i;
        c.chunk_count = c.total_clips = t.n_clips;
        uint64_t size = vt_size(&c);
        void *buf;
        rc = reel_actor_output(out, size, NULL, 0, &buf);
        if (rc == 0)
            rc = vt_write(&c, buf, size);
    }
    vt_free(&t);
    return rc;
}

/* A stage that fails on the second chunk and passes the others on. */
static int drop_second(reel_actor_ctx *ctx, const reel_view *in, size_t n, reel_actor_out *out) {
    (void)n;
    video_task t;
    char why[256];
    int rc = vt_read(in[0].data, in[0].size, &t, why, sizeof why);
    if (rc == 0 && t.chunk_index == 1) {
        reel_actor_set_error(ctx, "this chunk fails");
        rc = -EIO;
    }
    vt_free(&t);
    return rc ? rc : reel_actor_forward(out, 0);
}

/* Runs [chunker, drop_second, writer] over t with failures ignored. */
static void write_chunks(reel_store *store, const char *store_path, const reel_curate_options *o,
                         const video_task *t) {
    reel_id in;
    TH_OK(reel_id_random(&in));
    uint64_t size = vt_size(t);
    uint8_t *buf = malloc(size);
    TH_OK(vt_write(t, buf, size));
    TH_OK(reel_obj_put(store, &in, buf, size, NULL, 0, 0, -1));
    free(buf);
    reel_pipeline *p;
    TH_OK(reel_pipeline_new("chunks", &p));
    const reel_actor_def chunk_def = {.name = "chunker", .process = chunker};
    const reel_actor_def drop_def = {
        .name = "drop-second", .process = drop_second, .max_retries = REEL_ACTOR_NONE};
    reel_actor_def clip_writer = stage_clip_writer_def, writer = stage_writer_def;
    clip_writer.arg = writer.arg = (void *)o;
    TH_OK(reel_pipeline_add(p, &chunk_def, &(reel_stage_options){.cpus = 0.4}));
    TH_OK(reel_pipeline_add(p, &drop_def, &(reel_stage_options){.cpus = 0.4}));
    TH_OK(reel_pipeline_add(p, &clip_writer, &(reel_stage_options){.cpus = 0.4}));
    TH_OK(reel_pipeline_add(p, &writer, &(reel_stage_options){.cpus = 0.4, .gather = true}));
    reel_executor_config c;
    reel_executor_config_defaults(&c);
    c.ignore_failures = true;
    summaries sums = {.store = store};
    reel_run_options ro = {.store = store_path,
                           .config = &c,
                           .inputs = &in,
                           .n_inputs = 1,
                           .on_output = keep_summary,
                           .arg = &sums,
                           .flags = REEL_RUN_QUIET};
    reel_run_result res;
    TH_OK(reel_pipeline_run(p, &ro, &res));
    cr_assert_eq(res.failed, 1, "the second chunk fails, alone");
    reel_run_result_free(&res);
    cr_assert_eq(sums.n, 1, "one summary for the video");
    cr_assert_eq(sums.s.clips, 3, "the lost chunk's clip counts");
    reel_pipeline_free(p);
    TH_OK(reel_obj_delete(store, &in));
}

Test(stage_task, the_writer_records_a_chunk_that_never_came_as_failed_clips) {
    const char *store_path;
    reel_store *store = th_store_new(16 << 20, 1024, &store_path);
    char root[] = "/tmp/reel-writer-XXXXXX";
    cr_assert(mkdtemp(root));
    /* Three clips (spans only: what the writer writes of each is its
     * metadata), a chunk each; the second chunk's stage fails on it. */
    video_task t;
    vt_clip clips[3];
    for (int k = 0; k < 3; k++)
        sf_clip(&clips[k], k, (sf_blob){0}, 64, 64, 25, 25);
    sf_task(&t, clips, 3);
    reel_curate_options o;
    reel_curate_defaults(&o);
    o.output_dir = root;
    char rel[256];
    write_chunks(store, store_path, &o, &t);
    snprintf(rel, sizeof rel, "metas/v0/%s.json", clips[0].uuid);
    cr_assert(exists(root, rel), "%s", rel);
    snprintf(rel, sizeof rel, "metas/v0/%s.json", clips[1].uuid);
    cr_assert(!exists(root, rel), "the lost chunk's clip has no metadata: %s", rel);
    snprintf(rel, sizeof rel, "metas/v0/%s.json", clips[2].uuid);
    cr_assert(exists(root, rel), "%s", rel);
    char file[512];
    snprintf(file, sizeof file, "%s/processed_videos/synthetic.mp4.json", root);
    const char *rec = th_read_text(file);
    cr_assert(rec, "%s", file);
    cr_assert(strstr(rec, "\"num_total_clips\": 3"), "%s", rec);
    cr_assert(strstr(rec, "\"error\": \"writer: chunk 2 of 3 (1 clip) never reached the writer: a "
                          "stage failed on it\""),
              "%s", rec);
    cr_assert_eq(th_stats(store).objects_sealed, 0, "the run's objects are gone");
    cr_assert_eq(th_rm_tree(root), 0);
}

/* An artifact ID comes from another process: one that names no object is
 * the clip's error, the rest of the video is written. */
Test(stage_task, an_artifact_not_in_the_store_is_the_clips_error) {
    const char *store_path;
    reel_store *store = th_store_new(16 << 20, 1024, &store_path);
    char root[] = "/tmp/reel-writer-XXXXXX";
    cr_assert(mkdtemp(root));
    video_task t;
    vt_clip clips[2];
    sf_clip(&clips[0], 0, (sf_blob){(uint8_t *)"MP4A", 4}, 64, 64, 25, 25);
    sf_clip(&clips[1], 1, (sf_blob){0}, 64, 64, 25, 25);
    clips[1].mp4.size = 4; /* an ID of nothing in the store */
    TH_OK(reel_id_random(&clips[1].mp4.id));
    sf_task(&t, clips, 2);
    reel_curate_options o;
    reel_curate_defaults(&o);
    o.output_dir = root;
    reel_id in, put[256];
    uint32_t n_put = sf_put_input(store, &t, &in, put);
    reel_pipeline *p;
    TH_OK(reel_pipeline_new("writer", &p));
    TH_OK(reel_pipeline_add(p, &sf_loader_def, &(reel_stage_options){.cpus = 0.5}));
    reel_actor_def clip_writer = stage_clip_writer_def, def = stage_writer_def;
    clip_writer.arg = def.arg = &o;
    TH_OK(reel_pipeline_add(p, &clip_writer, &(reel_stage_options){.cpus = 0.5}));
    TH_OK(reel_pipeline_add(p, &def, &(reel_stage_options){.cpus = 0.5, .gather = true}));
    reel_executor_config c;
    reel_executor_config_defaults(&c);
    summaries sums = {.store = store};
    reel_run_options ro = {.store = store_path,
                           .config = &c,
                           .inputs = &in,
                           .n_inputs = 1,
                           .on_output = keep_summary,
                           .arg = &sums,
                           .flags = REEL_RUN_QUIET};
    TH_OK(reel_pipeline_run(p, &ro, NULL));
    cr_assert_eq(sums.n, 1);
    cr_assert_eq(sums.s.clips_written, 1, "the clip whose MP4 is there is written");
    char rel[256], file[512], hex[REEL_ID_HEX_LEN + 1], want[200];
    snprintf(rel, sizeof rel, "clips/%s.mp4", clips[1].uuid);
    cr_assert(!exists(root, rel), "%s", rel);
    snprintf(file, sizeof file, "%s/metas/v0/%s.json", root, clips[1].uuid);
    const char *meta = th_read_text(file);
    cr_assert(meta, "%s", file);
    reel_id_to_hex(&clips[1].mp4.id, hex);
    snprintf(want, sizeof want, "\"errors\": [\"clip-writer: its mp4 %s is not in the store\"]",
             hex);
    cr_assert(strstr(meta, want), "%s lacks %s", meta, want);
    cr_assert(strstr(meta, "\"valid\": false") && strstr(meta, "\"clip_location\": null"), "%s",
              meta);
    reel_pipeline_free(p);
    TH_OK(reel_obj_delete(store, &in));
    for (uint32_t i = 0; i < n_put; i++)
        TH_OK(reel_obj_delete(store, &put[i]));
    cr_assert_eq(th_stats(store).objects_sealed, 0);
    cr_assert_eq(th_rm_tree(root), 0);
}

/* A file is written whole under a temporary name of its own: a name another
 * writer could take (a process of the same pid on another host sharing the
 * output path, or a killed one's leftover; the old name was <path>.tmp-<pid>)
 * does not stop it, and nothing else is left beside it. */
Test(stage_task, a_file_is_written_whole_whatever_lies_beside_it) {
    char dir[] = "/tmp/reel-write-file-XXXXXX";
    cr_assert(mkdtemp(dir));
    char path[128], taken[160];
    snprintf(path, sizeof path, "%s/video.json", dir);
    snprintf(taken, sizeof taken, "%s.tmp-%d", path, (int)getpid());
    cr_assert_eq(mkdir(taken, 0700), 0);
    TH_OK(stage_write_file(path, "{}\n", 3));
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    char buf[8] = "";
    cr_assert_eq(fread(buf, 1, sizeof buf, f), 3);
    fclose(f);
    cr_assert_str_eq(buf, "{}\n");
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    mode_t mask = umask(0);
    umask(mask);
    cr_assert_eq(st.st_mode & 0777, 0644 & ~mask, "mode %o", st.st_mode & 0777);
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    int entries = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        entries += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    cr_assert_eq(entries, 2, "the file and the directory in the way, nothing else");
    /* A path whose directory is missing: an error, and nothing made. */
    char missing[160];
    snprintf(missing, sizeof missing, "%s/no/such/dir.json", dir);
    cr_assert_eq(stage_write_file(missing, "x", 1), -ENOENT);
    cr_assert_eq(rmdir(taken), 0);
    cr_assert_eq(unlink(path), 0);
    cr_assert_eq(rmdir(dir), 0);
}
