/* Every function of every public header, called with NULL in each pointer
 * slot it needs (and with counts past their bounds): each returns -EINVAL, or
 * does nothing where it returns no code, with a reel_last_error() sentence
 * naming the argument, and none crashes - least of all inside the store's
 * lock, which the next process would have to recover. Each call runs in a
 * child of its own, so one that crashes is named and the others still run. */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/wait.h>

#include <reel/actor.h>
#include <reel/pipeline.h>
#include <reel/stages.h>
#include <reel/store.h>

#include "helpers.h"

/* What the calls below work on: real handles, so that only the one argument
 * left NULL is wrong. */
static reel_store *store;
static reel_runtime *rt;
static reel_pool *pool;
static reel_pipeline *pipe_;
static const char *store_path;
static reel_id id;
static reel_view view;
static reel_gpu_view gview;
static reel_store_stats stats;
static reel_executor_config cfg;
static reel_curate_options copts;
static reel_actor_def defs[REEL_CURATE_STAGES];
static reel_task_result result;
static reel_list list_;
static reel_clip_chunk *chunk_;
static reel_clip_chunk_info chunk_info;
static reel_clip clip_;
static uint64_t u64;
static size_t count;
static int present, idx;
static char hexbuf[REEL_ID_HEX_LEN + 1];
static char uuid[37];
static char why[64];
static uint8_t bytes[64];
static char *argv_[] = {"--logging-interval", "5", NULL};

static int noop(reel_actor_ctx *ctx, const reel_view *in, size_t n, reel_actor_out *out) {
    (void)ctx, (void)in, (void)n, (void)out;
    return 0;
}

static const reel_actor_def def_noop = {.name = "noop", .process = noop};
static const reel_actor_def *const all_defs[] = {&def_noop};

typedef struct null_case {
    const char *call; /* the function */
    const char *arg;  /* the argument that is wrong */
    bool code;        /* it returns a code, which must be -EINVAL */
    int (*run)(void);
} null_case;

#define CASE(fn, argname, expr)                                                                    \
    static int run_##fn##_##argname(void) {                                                        \
        return (expr);                                                                             \
    }
#define VOID_CASE(fn, argname, expr)                                                               \
    static int run_##fn##_##argname(void) {                                                        \
        expr;                                                                                      \
        return 0;                                                                                  \
    }
/* A call that returns a value that is not a code (a pointer, a count). */
#define VALUE_CASE(fn, argname, expr)                                                              \
    static int run_##fn##_##argname(void) {                                                        \
        (void)(expr);                                                                              \
        return 0;                                                                                  \
    }
#define ROW(fn, argname, is_code)                                                                  \
    { #fn, #argname, is_code, run_##fn##_##argname }

/* ---- reel/store.h ----------------------------------------------------------- */
CASE(reel_id_random, out, reel_id_random(NULL))
VOID_CASE(reel_id_derive, parent, reel_id_derive(NULL, 1, &id))
VOID_CASE(reel_id_derive, out, reel_id_derive(&id, 1, NULL))
VOID_CASE(reel_id_from_content, data, reel_id_from_content(NULL, 8, &id))
VOID_CASE(reel_id_from_content, out, reel_id_from_content(bytes, 8, NULL))
VOID_CASE(reel_id_to_hex, id, reel_id_to_hex(NULL, hexbuf))
VOID_CASE(reel_id_to_hex, hex, reel_id_to_hex(&id, NULL))
CASE(reel_id_from_hex, hex, reel_id_from_hex(NULL, &id))
CASE(reel_id_from_hex, out, reel_id_from_hex("00112233445566778899aabbccddeeff", NULL))
VALUE_CASE(reel_id_equal, a, reel_id_equal(NULL, &id))
VALUE_CASE(reel_id_equal, b, reel_id_equal(&id, NULL))
CASE(reel_store_create, path, reel_store_create(NULL, NULL, &store))
CASE(reel_store_create, out, reel_store_create("reel-test-null-args-never", NULL, NULL))
CASE(reel_store_open, path, reel_store_open(NULL, 0, &store))
CASE(reel_store_open, out, reel_store_open(store_path, 0, NULL))
CASE(reel_store_destroy, path, reel_store_destroy(NULL))
VALUE_CASE(reel_store_destroy_orphans, prefix, reel_store_destroy_orphans(NULL))
VALUE_CASE(reel_store_path, store, reel_store_path(NULL))
VALUE_CASE(reel_store_spill_dir, store, reel_store_spill_dir(NULL))
VOID_CASE(reel_store_set_spin_ns, store, reel_store_set_spin_ns(NULL, 0))
CASE(reel_store_reclaim, store, reel_store_reclaim(NULL, NULL))
CASE(reel_store_owner_token, store, reel_store_owner_token(NULL, &u64))
CASE(reel_store_owner_token, token, reel_store_owner_token(store, NULL))
CASE(reel_store_set_owner, store, reel_store_set_owner(NULL, 0))
CASE(reel_obj_disown, store, reel_obj_disown(NULL, &id, 1))
CASE(reel_obj_disown, ids, reel_obj_disown(store, NULL, 1))
CASE(reel_store_spill, store, reel_store_spill(NULL, 0, NULL))
CASE(reel_store_stats_get, store, reel_store_stats_get(NULL, &stats))
CASE(reel_store_stats_get, out, reel_store_stats_get(store, NULL))
CASE(reel_store_clients, store, reel_store_clients(NULL, NULL, 0, &count))
CASE(reel_store_clients, out, reel_store_clients(store, NULL, 4, &count))
CASE(reel_store_clients, count, reel_store_clients(store, NULL, 0, NULL))
CASE(reel_store_objects, store, reel_store_objects(NULL, NULL, 0, &count))
CASE(reel_store_objects, out, reel_store_objects(store, NULL, 4, &count))
CASE(reel_store_objects, count, reel_store_objects(store, NULL, 0, NULL))
CASE(reel_obj_create, store, reel_obj_create(NULL, &id, 8, NULL, 0, 0, 0, (void **)&u64))
CASE(reel_obj_create, id, reel_obj_create(store, NULL, 8, NULL, 0, 0, 0, (void **)&u64))
CASE(reel_obj_create, meta, reel_obj_create(store, &id, 8, NULL, 4, 0, 0, (void **)&u64))
CASE(reel_obj_create, buf, reel_obj_create(store, &id, 8, NULL, 0, 0, 0, NULL))
CASE(reel_obj_seal, store, reel_obj_seal(NULL, &id))
CASE(reel_obj_seal, id, reel_obj_seal(store, NULL))
CASE(reel_obj_abort, store, reel_obj_abort(NULL, &id))
CASE(reel_obj_abort, id, reel_obj_abort(store, NULL))
CASE(reel_obj_get, store, reel_obj_get(NULL, &id, 1, 0, &view))
CASE(reel_obj_get, ids, reel_obj_get(store, NULL, 1, 0, &view))
CASE(reel_obj_get, views, reel_obj_get(store, &id, 1, 0, NULL))
/* One ID, a count of a million: refused before the array is read past its end. */
CASE(reel_obj_get, n, reel_obj_get(store, &id, 1000000, 0, &view))
CASE(reel_obj_release, store, reel_obj_release(NULL, &id))
CASE(reel_obj_release, id, reel_obj_release(store, NULL))
CASE(reel_obj_delete, store, reel_obj_delete(NULL, &id))
CASE(reel_obj_delete, id, reel_obj_delete(store, NULL))
CASE(reel_obj_contains, store, reel_obj_contains(NULL, &id, &present))
CASE(reel_obj_contains, id, reel_obj_contains(store, NULL, &present))
CASE(reel_obj_contains, present, reel_obj_contains(store, &id, NULL))
CASE(reel_obj_put, store, reel_obj_put(NULL, &id, bytes, 8, NULL, 0, 0, 0))
CASE(reel_obj_put, id, reel_obj_put(store, NULL, bytes, 8, NULL, 0, 0, 0))
CASE(reel_obj_put, data, reel_obj_put(store, &id, NULL, 8, NULL, 0, 0, 0))
CASE(reel_obj_put, meta, reel_obj_put(store, &id, bytes, 8, NULL, 4, 0, 0))
CASE(reel_obj_put_file, store,
     reel_obj_put_file(NULL, &id, "/etc/hostname", 0, 0, NULL, 0, 0, 0, NULL))
CASE(reel_obj_put_file, id,
     reel_obj_put_file(store, NULL, "/etc/hostname", 0, 0, NULL, 0, 0, 0, NULL))
CASE(reel_obj_put_file, path, reel_obj_put_file(store, &id, NULL, 0, 0, NULL, 0, 0, 0, NULL))
CASE(reel_obj_put_file, meta,
     reel_obj_put_file(store, &id, "/etc/hostname", 0, 0, NULL, 4, 0, 0, NULL))
CASE(reel_file_read, buf, reel_file_read(0, NULL, 0, 8))
CASE(reel_meta_encode, meta, reel_meta_encode(NULL, bytes, sizeof bytes, &count))
CASE(reel_meta_encode, buf, reel_meta_encode(&(reel_meta){0}, NULL, sizeof bytes, &count))
CASE(reel_meta_encode, len, reel_meta_encode(&(reel_meta){0}, bytes, sizeof bytes, NULL))
CASE(reel_meta_decode, buf, reel_meta_decode(NULL, 8, &(reel_meta){0}))
CASE(reel_meta_decode, out, reel_meta_decode(bytes, 8, NULL))
CASE(reel_store_gpu_pin, store, reel_store_gpu_pin(NULL))
VALUE_CASE(reel_store_gpu_pinned, store, reel_store_gpu_pinned(NULL))
CASE(reel_gpu_put, store, reel_gpu_put(NULL, &id, 0, bytes, 8, NULL, 0))
CASE(reel_gpu_put, id, reel_gpu_put(store, NULL, 0, bytes, 8, NULL, 0))
CASE(reel_gpu_put, dev_ptr, reel_gpu_put(store, &id, 0, NULL, 8, NULL, 0))
CASE(reel_gpu_open, store, reel_gpu_open(NULL, &id, 0, &gview))
CASE(reel_gpu_open, id, reel_gpu_open(store, NULL, 0, &gview))
CASE(reel_gpu_open, out, reel_gpu_open(store, &id, 0, NULL))
CASE(reel_gpu_close, store, reel_gpu_close(NULL, &gview))
CASE(reel_gpu_close, view, reel_gpu_close(store, NULL))

/* ---- reel/actor.h ----------------------------------------------------------- */
VALUE_CASE(reel_actor_arg, ctx, reel_actor_arg(NULL))
VALUE_CASE(reel_actor_store, ctx, reel_actor_store(NULL))
VALUE_CASE(reel_actor_worker_index, ctx, reel_actor_worker_index(NULL))
VALUE_CASE(reel_actor_task_id, ctx, reel_actor_task_id(NULL))
VALUE_CASE(reel_actor_attempt, ctx, reel_actor_attempt(NULL))
VOID_CASE(reel_actor_set_error, ctx, reel_actor_set_error(NULL, "x"))
VOID_CASE(reel_actor_output_id, stage, reel_actor_output_id(NULL, &id, 0, &id))
VOID_CASE(reel_actor_output_id, task_id, reel_actor_output_id("noop", NULL, 0, &id))
VOID_CASE(reel_actor_output_id, out, reel_actor_output_id("noop", &id, 0, NULL))
CASE(reel_actor_output, out, reel_actor_output(NULL, 8, NULL, 0, (void **)&u64))
CASE(reel_actor_forward, out, reel_actor_forward(NULL, 0))
CASE(reel_actor_artifact, out, reel_actor_artifact(NULL, 8, NULL, 0, &id, (void **)&u64))
CASE(reel_actor_carry, out, reel_actor_carry(NULL, &id))
CASE(reel_list_create, store, reel_list_create(NULL, &id, &id, 1, NULL, NULL))
CASE(reel_list_create, id, reel_list_create(store, NULL, &id, 1, NULL, NULL))
CASE(reel_list_create, ids, reel_list_create(store, &id, NULL, 1, NULL, NULL))
CASE(reel_list_open, store, reel_list_open(NULL, &id, 0, &list_))
CASE(reel_list_open, id, reel_list_open(store, NULL, 0, &list_))
CASE(reel_list_open, out, reel_list_open(store, &id, 0, NULL))
VOID_CASE(reel_list_close, store, reel_list_close(NULL, &list_))
VOID_CASE(reel_list_close, list, reel_list_close(store, NULL))
CASE(reel_runtime_start, opts, reel_runtime_start(NULL, &rt))
CASE(reel_runtime_start, out,
     reel_runtime_start(
         &(reel_runtime_options){.store = store_path, .actors = all_defs, .n_actors = 1}, NULL))
CASE(reel_runtime_start, opts_store,
     reel_runtime_start(&(reel_runtime_options){.actors = all_defs, .n_actors = 1}, &rt))
CASE(reel_runtime_start, opts_actors,
     reel_runtime_start(&(reel_runtime_options){.store = store_path, .n_actors = 1}, &rt))
VALUE_CASE(reel_runtime_store, rt, reel_runtime_store(NULL))
CASE(reel_pool_start, rt, reel_pool_start(NULL, "noop", 1, &pool))
CASE(reel_pool_start, name, reel_pool_start(rt, NULL, 1, &pool))
CASE(reel_pool_start, out, reel_pool_start(rt, "noop", 1, NULL))
CASE(reel_pool_resize, pool, reel_pool_resize(NULL, 1))
CASE(reel_pool_submit, pool, reel_pool_submit(NULL, &id, 1, NULL, 0, NULL))
CASE(reel_pool_submit, inputs, reel_pool_submit(pool, NULL, 1, NULL, 0, NULL))
CASE(reel_pool_submit_list, pool, reel_pool_submit_list(NULL, &id, NULL, 0, NULL))
CASE(reel_pool_submit_list, list, reel_pool_submit_list(pool, NULL, NULL, 0, NULL))
CASE(reel_pool_collect, pool, reel_pool_collect(NULL, &result, 0))
CASE(reel_pool_collect, out, reel_pool_collect(pool, NULL, 0))
CASE(reel_pool_stats_get, pool, reel_pool_stats_get(NULL, &(reel_pool_stats){0}))
CASE(reel_pool_stats_get, out, reel_pool_stats_get(pool, NULL))
CASE(reel_pool_drain, pool, reel_pool_drain(NULL, 0))
CASE(reel_pool_workers, pool, reel_pool_workers(NULL, NULL, 0, &count))
CASE(reel_pool_workers, pids, reel_pool_workers(pool, NULL, 4, &count))
CASE(reel_pool_workers, count, reel_pool_workers(pool, NULL, 0, NULL))

/* ---- reel/pipeline.h ---------------------------------------------------------- */
VOID_CASE(reel_executor_config_defaults, cfg, reel_executor_config_defaults(NULL))
CASE(reel_executor_config_set, cfg, reel_executor_config_set(NULL, "logging_interval", "5"))
CASE(reel_executor_config_set, key, reel_executor_config_set(&cfg, NULL, "5"))
CASE(reel_executor_config_set, value, reel_executor_config_set(&cfg, "logging_interval", NULL))
CASE(reel_executor_config_load, cfg, reel_executor_config_load(NULL, "/nonexistent.json"))
CASE(reel_executor_config_load, path, reel_executor_config_load(&cfg, NULL))
CASE(reel_executor_config_parse_flag, cfg, reel_executor_config_parse_flag(NULL, 2, argv_, &idx))
CASE(reel_executor_config_parse_flag, argv, reel_executor_config_parse_flag(&cfg, 2, NULL, &idx))
CASE(reel_executor_config_parse_flag, i, reel_executor_config_parse_flag(&cfg, 2, argv_, NULL))
CASE(reel_executor_config_validate, cfg, reel_executor_config_validate(NULL))
CASE(reel_pipeline_new, name, reel_pipeline_new(NULL, &pipe_))
CASE(reel_pipeline_new, out, reel_pipeline_new("p", NULL))
CASE(reel_pipeline_add, p, reel_pipeline_add(NULL, &def_noop, NULL))
CASE(reel_pipeline_add, actor, reel_pipeline_add(pipe_, NULL, NULL))
CASE(reel_pipeline_describe, p, reel_pipeline_describe(NULL, stdout))
CASE(reel_pipeline_describe, out, reel_pipeline_describe(pipe_, NULL))
CASE(reel_pipeline_run, p, reel_pipeline_run(NULL, &(reel_run_options){.store = store_path}, NULL))
CASE(reel_pipeline_run, opts, reel_pipeline_run(pipe_, NULL, NULL))
CASE(reel_pipeline_run, opts_store, reel_pipeline_run(pipe_, &(reel_run_options){0}, NULL))
CASE(reel_pipeline_run, opts_inputs,
     reel_pipeline_run(pipe_, &(reel_run_options){.store = store_path, .n_inputs = 3}, NULL))

/* ---- reel/stages.h -------------------------------------------------------------- */
VOID_CASE(reel_curate_defaults, o, reel_curate_defaults(NULL))
CASE(reel_curate_validate, o, reel_curate_validate(NULL, why, sizeof why))
CASE(reel_curate_validate, why, reel_curate_validate(&copts, NULL, sizeof why))
VALUE_CASE(reel_curate_stage_defs, o, reel_curate_stage_defs(NULL, defs))
VALUE_CASE(reel_curate_stage_defs, defs, reel_curate_stage_defs(&copts, NULL))
CASE(reel_curate_pipeline, o, reel_curate_pipeline(NULL, defs, &pipe_))
CASE(reel_curate_pipeline, defs, reel_curate_pipeline(&copts, NULL, &pipe_))
CASE(reel_curate_pipeline, out, reel_curate_pipeline(&copts, defs, NULL))
CASE(reel_curate_record_failure, o, reel_curate_record_failure(NULL, "v.mp4", "bad"))
CASE(reel_curate_record_failure, path, reel_curate_record_failure(&copts, NULL, "bad"))
CASE(reel_curate_record_failure, error, reel_curate_record_failure(&copts, "v.mp4", NULL))
CASE(reel_curate_read_summary, data,
     reel_curate_read_summary(NULL, 8, &(reel_curate_video_summary){0}))
CASE(reel_curate_read_summary, out, reel_curate_read_summary(bytes, 8, NULL))
CASE(reel_uuid5_url, name, reel_uuid5_url(NULL, uuid))
VALUE_CASE(reel_curate_is_video_name, name, reel_curate_is_video_name(&copts, NULL))
CASE(reel_uuid5_url, out, reel_uuid5_url("x", NULL))
CASE(reel_curate_pipeline_with, o,
     reel_curate_pipeline_with(NULL, defs, &def_noop, NULL, NULL, &pipe_))
CASE(reel_curate_pipeline_with, defs,
     reel_curate_pipeline_with(&copts, NULL, &def_noop, NULL, NULL, &pipe_))
CASE(reel_curate_pipeline_with, extra,
     reel_curate_pipeline_with(&copts, defs, NULL, NULL, NULL, &pipe_))
CASE(reel_curate_pipeline_with, out,
     reel_curate_pipeline_with(&copts, defs, &def_noop, NULL, NULL, NULL))
/* The chunk calls check their pointers before they read through any: a
 * stand-in for the handle the check of another argument never touches. */
#define FAKE_CHUNK ((reel_clip_chunk *)bytes)
#define FAKE_CTX   ((reel_actor_ctx *)bytes)
CASE(reel_clip_chunk_read, ctx, reel_clip_chunk_read(NULL, "s", &view, &chunk_))
CASE(reel_clip_chunk_read, stage, reel_clip_chunk_read(FAKE_CTX, NULL, &view, &chunk_))
CASE(reel_clip_chunk_read, in, reel_clip_chunk_read(FAKE_CTX, "s", NULL, &chunk_))
CASE(reel_clip_chunk_read, out, reel_clip_chunk_read(FAKE_CTX, "s", &view, NULL))
VALUE_CASE(reel_clip_chunk_clips, chunk, reel_clip_chunk_clips(NULL))
CASE(reel_clip_chunk_info_get, chunk, reel_clip_chunk_info_get(NULL, &chunk_info))
CASE(reel_clip_chunk_info_get, out, reel_clip_chunk_info_get(FAKE_CHUNK, NULL))
CASE(reel_clip_chunk_clip, chunk, reel_clip_chunk_clip(NULL, 0, &clip_))
CASE(reel_clip_chunk_clip, out, reel_clip_chunk_clip(FAKE_CHUNK, 0, NULL))
CASE(reel_clip_art_get, chunk, reel_clip_art_get(NULL, 0, REEL_CLIP_MP4, &view))
CASE(reel_clip_art_get, out, reel_clip_art_get(FAKE_CHUNK, 0, REEL_CLIP_MP4, NULL))
VOID_CASE(reel_clip_art_release, chunk, reel_clip_art_release(NULL, 0, REEL_CLIP_MP4))
CASE(reel_clip_filter, chunk, reel_clip_filter(NULL, 0, "why"))
CASE(reel_clip_add_error, chunk, reel_clip_add_error(NULL, 0, "why"))
CASE(reel_clip_add_error, text, reel_clip_add_error(FAKE_CHUNK, 0, NULL))
CASE(reel_clip_chunk_write, chunk, reel_clip_chunk_write(NULL, (reel_actor_out *)bytes))
CASE(reel_clip_chunk_write, out, reel_clip_chunk_write(FAKE_CHUNK, NULL))

/* Calls that free or detach take NULL as a no-op, as free() does: they are
 * left out of the "names the argument" check (reel_store_close,
 * reel_runtime_stop, reel_pool_stop, reel_pipeline_free,
 * reel_run_result_free); the first three return 0. */
static const null_case cases[] = {
    ROW(reel_id_random, out, true),
    ROW(reel_id_derive, parent, false),
    ROW(reel_id_derive, out, false),
    ROW(reel_id_from_content, data, false),
    ROW(reel_id_from_content, out, false),
    ROW(reel_id_to_hex, id, false),
    ROW(reel_id_to_hex, hex, false),
    ROW(reel_id_from_hex, hex, true),
    ROW(reel_id_from_hex, out, true),
    ROW(reel_id_equal, a, false),
    ROW(reel_id_equal, b, false),
    ROW(reel_store_create, path, true),
    ROW(reel_store_create, out, true),
    ROW(reel_store_open, path, true),
    ROW(reel_store_open, out, true),
    ROW(reel_store_destroy, path, true),
    ROW(reel_store_destroy_orphans, prefix, false),
    ROW(reel_store_path, store, false),
    ROW(reel_store_spill_dir, store, false),
    ROW(reel_store_set_spin_ns, store, false),
    ROW(reel_store_reclaim, store, true),
    ROW(reel_store_owner_token, store, true),
    ROW(reel_store_owner_token, token, true),
    ROW(reel_store_set_owner, store, true),
    ROW(reel_obj_disown, store, true),
    ROW(reel_obj_disown, ids, true),
    ROW(reel_store_spill, store, true),
    ROW(reel_store_stats_get, store, true),
    ROW(reel_store_stats_get, out, true),
    ROW(reel_store_clients, store, true),
    ROW(reel_store_clients, out, true),
    ROW(reel_store_clients, count, true),
    ROW(reel_store_objects, store, true),
    ROW(reel_store_objects, out, true),
    ROW(reel_store_objects, count, true),
    ROW(reel_obj_create, store, true),
    ROW(reel_obj_create, id, true),
    ROW(reel_obj_create, meta, true),
    ROW(reel_obj_create, buf, true),
    ROW(reel_obj_seal, store, true),
    ROW(reel_obj_seal, id, true),
    ROW(reel_obj_abort, store, true),
    ROW(reel_obj_abort, id, true),
    ROW(reel_obj_get, store, true),
    ROW(reel_obj_get, ids, true),
    ROW(reel_obj_get, views, true),
    ROW(reel_obj_get, n, true),
    ROW(reel_obj_release, store, true),
    ROW(reel_obj_release, id, true),
    ROW(reel_obj_delete, store, true),
    ROW(reel_obj_delete, id, true),
    ROW(reel_obj_contains, store, true),
    ROW(reel_obj_contains, id, true),
    ROW(reel_obj_contains, present, true),
    ROW(reel_obj_put, store, true),
    ROW(reel_obj_put, id, true),
    ROW(reel_obj_put, data, true),
    ROW(reel_obj_put, meta, true),
    ROW(reel_obj_put_file, store, true),
    ROW(reel_obj_put_file, id, true),
    ROW(reel_obj_put_file, path, true),
    ROW(reel_obj_put_file, meta, true),
    ROW(reel_file_read, buf, true),
    ROW(reel_meta_encode, meta, true),
    ROW(reel_meta_encode, buf, true),
    ROW(reel_meta_encode, len, true),
    ROW(reel_meta_decode, buf, true),
    ROW(reel_meta_decode, out, true),
    ROW(reel_store_gpu_pin, store, true),
    ROW(reel_store_gpu_pinned, store, false),
    ROW(reel_gpu_put, store, true),
    ROW(reel_gpu_put, id, true),
    ROW(reel_gpu_put, dev_ptr, true),
    ROW(reel_gpu_open, store, true),
    ROW(reel_gpu_open, id, true),
    ROW(reel_gpu_open, out, true),
    ROW(reel_gpu_close, store, true),
    ROW(reel_gpu_close, view, true),
    ROW(reel_actor_arg, ctx, false),
    ROW(reel_actor_store, ctx, false),
    ROW(reel_actor_worker_index, ctx, false),
    ROW(reel_actor_task_id, ctx, false),
    ROW(reel_actor_attempt, ctx, false),
    ROW(reel_actor_set_error, ctx, false),
    ROW(reel_actor_output_id, stage, false),
    ROW(reel_actor_output_id, task_id, false),
    ROW(reel_actor_output_id, out, false),
    ROW(reel_actor_output, out, true),
    ROW(reel_actor_forward, out, true),
    ROW(reel_actor_artifact, out, true),
    ROW(reel_actor_carry, out, true),
    ROW(reel_list_create, store, true),
    ROW(reel_list_create, id, true),
    ROW(reel_list_create, ids, true),
    ROW(reel_list_open, store, true),
    ROW(reel_list_open, id, true),
    ROW(reel_list_open, out, true),
    ROW(reel_list_close, store, false),
    ROW(reel_list_close, list, false),
    ROW(reel_runtime_start, opts, true),
    ROW(reel_runtime_start, out, true),
    ROW(reel_runtime_start, opts_store, true),
    ROW(reel_runtime_start, opts_actors, true),
    ROW(reel_runtime_store, rt, false),
    ROW(reel_pool_start, rt, true),
    ROW(reel_pool_start, name, true),
    ROW(reel_pool_start, out, true),
    ROW(reel_pool_resize, pool, true),
    ROW(reel_pool_submit, pool, true),
    ROW(reel_pool_submit, inputs, true),
    ROW(reel_pool_submit_list, pool, true),
    ROW(reel_pool_submit_list, list, true),
    ROW(reel_pool_collect, pool, true),
    ROW(reel_pool_collect, out, true),
    ROW(reel_pool_stats_get, pool, true),
    ROW(reel_pool_stats_get, out, true),
    ROW(reel_pool_drain, pool, true),
    ROW(reel_pool_workers, pool, true),
    ROW(reel_pool_workers, pids, true),
    ROW(reel_pool_workers, count, true),
    ROW(reel_executor_config_defaults, cfg, false),
    ROW(reel_executor_config_set, cfg, true),
    ROW(reel_executor_config_set, key, true),
    ROW(reel_executor_config_set, value, true),
    ROW(reel_executor_config_load, cfg, true),
    ROW(reel_executor_config_load, path, true),
    ROW(reel_executor_config_parse_flag, cfg, true),
    ROW(reel_executor_config_parse_flag, argv, true),
    ROW(reel_executor_config_parse_flag, i, true),
    ROW(reel_executor_config_validate, cfg, true),
    ROW(reel_pipeline_new, name, true),
    ROW(reel_pipeline_new, out, true),
    ROW(reel_pipeline_add, p, true),
    ROW(reel_pipeline_add, actor, true),
    ROW(reel_pipeline_describe, p, true),
    ROW(reel_pipeline_describe, out, true),
    ROW(reel_pipeline_run, p, true),
    ROW(reel_pipeline_run, opts, true),
    ROW(reel_pipeline_run, opts_store, true),
    ROW(reel_pipeline_run, opts_inputs, true),
    ROW(reel_curate_defaults, o, false),
    ROW(reel_curate_validate, o, true),
    ROW(reel_curate_validate, why, true),
    ROW(reel_curate_stage_defs, o, false),
    ROW(reel_curate_stage_defs, defs, false),
    ROW(reel_curate_pipeline, o, true),
    ROW(reel_curate_pipeline, defs, true),
    ROW(reel_curate_pipeline, out, true),
    ROW(reel_curate_record_failure, o, true),
    ROW(reel_curate_record_failure, path, true),
    ROW(reel_curate_record_failure, error, true),
    ROW(reel_curate_read_summary, data, true),
    ROW(reel_curate_read_summary, out, true),
    ROW(reel_uuid5_url, name, true),
    ROW(reel_curate_is_video_name, name, false),
    ROW(reel_uuid5_url, out, true),
    ROW(reel_curate_pipeline_with, o, true),
    ROW(reel_curate_pipeline_with, defs, true),
    ROW(reel_curate_pipeline_with, extra, true),
    ROW(reel_curate_pipeline_with, out, true),
    ROW(reel_clip_chunk_read, ctx, true),
    ROW(reel_clip_chunk_read, stage, true),
    ROW(reel_clip_chunk_read, in, true),
    ROW(reel_clip_chunk_read, out, true),
    ROW(reel_clip_chunk_clips, chunk, false),
    ROW(reel_clip_chunk_info_get, chunk, true),
    ROW(reel_clip_chunk_info_get, out, true),
    ROW(reel_clip_chunk_clip, chunk, true),
    ROW(reel_clip_chunk_clip, out, true),
    ROW(reel_clip_art_get, chunk, true),
    ROW(reel_clip_art_get, out, true),
    ROW(reel_clip_art_release, chunk, false),
    ROW(reel_clip_filter, chunk, true),
    ROW(reel_clip_add_error, chunk, true),
    ROW(reel_clip_add_error, text, true),
    ROW(reel_clip_chunk_write, chunk, true),
    ROW(reel_clip_chunk_write, out, true),
};

/* The name the sentence must carry: "opts_store" stands for "opts->store". */
static void expected_name(const char *arg, char *out, size_t cap) {
    const char *sub = strchr(arg, '_');
    if (sub && strncmp(arg, "opts_", 5) == 0)
        snprintf(out, cap, "opts->%s", sub + 1);
    else
        snprintf(out, cap, "%s", arg);
}

/* In the child: one call. Exit 0 when it refused as promised, 1 when it did
 * not (and says how on stderr). */
static int run_case(void *arg) {
    const null_case *c = arg;
    int rc = c->run();
    const char *sentence = reel_last_error();
    char name[64];
    expected_name(c->arg, name, sizeof name);
    TH_CHILD_CHECK(!c->code || rc == -EINVAL, "%s with %s NULL or out of range returned %d (%s)",
                   c->call, c->arg, rc, reel_strerror(rc));
    TH_CHILD_CHECK(strstr(sentence, c->call) && strstr(sentence, name),
                   "%s with %s NULL: the last error \"%s\" does not name the call and %s", c->call,
                   c->arg, sentence, name);
    return 0;
}

Test(null_args, every_public_call_refuses_a_null_in_each_pointer_slot, .init = th_init,
     .fini = th_fini, .timeout = 120) {
    store = th_store_new(1 << 20, 64, &store_path);
    TH_OK(reel_id_random(&id));
    reel_executor_config_defaults(&cfg);
    reel_curate_defaults(&copts);
    copts.output_dir = th_store_path(); /* a fresh path nobody uses */
    TH_OK(reel_pipeline_new("null_args", &pipe_));
    TH_OK(reel_pipeline_add(pipe_, &def_noop, NULL));
    reel_runtime_options ro = {.store = store_path, .actors = all_defs, .n_actors = 1};
    TH_OK(reel_runtime_start(&ro, &rt));
    TH_OK(reel_pool_start(rt, "noop", 1, &pool));
    reel_store_stats before = th_stats(store);

    size_t failed = 0;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        int code = th_wait(th_fork(run_case, (void *)&cases[k]), 20000);
        if (code != 0) {
            failed++;
            cr_log_error("%s with %s NULL: child %s %d", cases[k].call, cases[k].arg,
                         code > 128 ? "killed by signal" : "exited",
                         code > 128 ? code - 128 : code);
        }
    }
    /* No call died inside the lock: the next one finds it as it was. */
    reel_store_stats after = th_stats(store);
    cr_expect_eq(after.recoveries, before.recoveries, "a call crashed holding the store's lock");
    cr_expect_eq(after.objects, before.objects, "a refused call changed the store");
    cr_assert_eq(failed, 0, "%zu of %zu calls did not refuse their NULL argument", failed,
                 sizeof cases / sizeof cases[0]);

    /* The calls that free or close take NULL as a no-op. */
    TH_OK(reel_store_close(NULL));
    TH_OK(reel_runtime_stop(NULL));
    TH_OK(reel_pool_stop(NULL, 0));
    reel_pipeline_free(NULL);
    reel_run_result_free(NULL);

    TH_OK(reel_pool_stop(pool, 5000));
    TH_OK(reel_runtime_stop(rt));
    reel_pipeline_free(pipe_);
    reel_store_close(store);
}

/* Inside a worker, the output calls refuse a NULL too; a worker reports what
 * it saw through its task's error. */
static int probes_outputs(reel_actor_ctx *ctx, const reel_view *in, size_t n, reel_actor_out *out) {
    (void)in, (void)n;
    void *buf;
    int rc = reel_actor_output(out, 8, NULL, 0, NULL);
    if (rc != -EINVAL || !strstr(reel_last_error(), "buf")) {
        reel_actor_set_error(ctx, "reel_actor_output(buf NULL) -> %d \"%s\"", rc,
                             reel_last_error());
        return -EPROTO;
    }
    rc = reel_actor_output(out, 8, NULL, 4, &buf);
    if (rc != -EINVAL || !strstr(reel_last_error(), "meta")) {
        reel_actor_set_error(ctx, "reel_actor_output(meta NULL, size 4) -> %d \"%s\"", rc,
                             reel_last_error());
        return -EPROTO;
    }
    reel_id art;
    static const char *const what[] = {"id", "buf", "artifact"};
    for (int k = 0; k < 3; k++) {
        rc = k == 0   ? reel_actor_artifact(out, 8, NULL, 0, NULL, &buf)
             : k == 1 ? reel_actor_artifact(out, 8, NULL, 0, &art, NULL)
                      : reel_actor_carry(out, NULL);
        if (rc != -EINVAL || !strstr(reel_last_error(), what[k])) {
            reel_actor_set_error(ctx, "%s NULL -> %d \"%s\"", what[k], rc, reel_last_error());
            return -EPROTO;
        }
    }
    return 0;
}

static const reel_actor_def def_probes = {
    .name = "probes", .process = probes_outputs, .max_retries = REEL_ACTOR_NONE};
static const reel_actor_def *const probe_defs[] = {&def_probes};

Test(null_args, output_calls_in_a_worker_refuse_a_null, .init = th_init, .fini = th_fini,
     .timeout = 60) {
    const char *path;
    reel_store *s = th_store_new(1 << 20, 64, &path);
    reel_runtime *r;
    reel_pool *p;
    reel_runtime_options ro = {.store = path, .actors = probe_defs, .n_actors = 1};
    TH_OK(reel_runtime_start(&ro, &r));
    TH_OK(reel_pool_start(r, "probes", 1, &p));
    reel_id in;
    TH_OK(reel_obj_put(s, &in, "abc", 3, NULL, 0, REEL_OBJ_CONTENT_ID, 0));
    TH_OK(reel_pool_submit(p, &in, 1, NULL, 5000, NULL));
    reel_task_result res;
    TH_OK(reel_pool_collect(p, &res, 30000));
    cr_assert_eq(res.status, 0, "the worker saw: %s", res.error);
    TH_OK(reel_pool_stop(p, 5000));
    TH_OK(reel_runtime_stop(r));
    reel_store_close(s);
}
