/* A stage of the caller's reads and writes chunk records: reel/stages.h,
 * "your own stage". A thin face over the stages' own record code
 * (video_task.c) and task plumbing (stage_common.c), so that the format has
 * one reader and one writer. */
#include "check.h"
#include "stages_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct reel_clip_chunk {
    reel_actor_ctx *ctx;
    char stage[REEL_ACTOR_NAME_MAX];
    video_task t;
    char *path;       /* t.path as a C string */
    reel_view *views; /* n_clips x REEL_CLIP_ARTS, made at the first get */
    bool written;
};

/* Clip i's error text buffer (t.clip_texts, as stage_check_artifacts
 * uses it), made at the first need; NULL when memory ran out. */
static char *clip_text(reel_clip_chunk *ch, uint32_t i) {
    video_task *t = &ch->t;
    if (!t->clip_texts && !(t->clip_texts = calloc(t->n_clips, VT_TEXT_MAX)))
        return NULL;
    return t->clip_texts + (size_t)i * VT_TEXT_MAX;
}

static int clip_index(const reel_clip_chunk *ch, uint32_t i, const char *fn) {
    if (i >= ch->t.n_clips)
        return reel__fail(-EINVAL, "%s: clip %u of a chunk of %u", fn, i, ch->t.n_clips);
    return 0;
}

REEL_API int reel_clip_chunk_read(reel_actor_ctx *ctx, const char *stage, const reel_view *in,
                                  reel_clip_chunk **out) {
    REEL_NEED(out, "out");
    *out = NULL;
    REEL_NEED(ctx, "ctx");
    REEL_NEED(stage, "stage");
    REEL_NEED(in, "in");
    if (strlen(stage) >= REEL_ACTOR_NAME_MAX) {
        reel_actor_set_error(ctx, "a stage name of %zu bytes", strlen(stage));
        return reel__fail(-EINVAL, "reel_clip_chunk_read: a stage name of %zu bytes (at most %d)",
                          strlen(stage), REEL_ACTOR_NAME_MAX - 1);
    }
    reel_clip_chunk *ch = calloc(1, sizeof *ch);
    if (!ch) {
        reel_actor_set_error(ctx, "out of memory");
        return reel__fail(-ENOMEM, "reel_clip_chunk_read: out of memory");
    }
    ch->ctx = ctx;
    memcpy(ch->stage, stage, strlen(stage) + 1);
    char why[256];
    int rc = vt_read(in->data, in->size, &ch->t, why, sizeof why);
    if (rc == -EBADMSG) {
        reel_actor_set_error(ctx, "%s", why);
        free(ch);
        return reel__fail(rc, "reel_clip_chunk_read: %s", why);
    }
    /* Every artifact it names is in the store as it says, or gone from its
     * clip with an error: what the stage reads or carries on is there. */
    if (rc == 0)
        rc = stage_check_artifacts(ctx, stage, &ch->t);
    if (rc == 0 && !(ch->path = malloc(ch->t.path.size + 1)))
        rc = -ENOMEM;
    if (rc) {
        reel_actor_set_error(ctx, "out of memory");
        reel_clip_chunk_free(ch);
        return reel__fail(rc, "reel_clip_chunk_read: out of memory");
    }
    vt_text(ch->t.path, ch->path, ch->t.path.size + 1);
    *out = ch;
    return 0;
}

REEL_API uint32_t reel_clip_chunk_clips(const reel_clip_chunk *chunk) {
    REEL_NEED_OR(chunk, "chunk", 0);
    return chunk->t.n_clips;
}

REEL_API int reel_clip_chunk_info_get(const reel_clip_chunk *chunk, reel_clip_chunk_info *out) {
    REEL_NEED(chunk, "chunk");
    REEL_NEED(out, "out");
    const video_task *t = &chunk->t;
    *out = (reel_clip_chunk_info){.path = chunk->path,
                                  .clips = t->n_clips,
                                  .first_clip = t->first_clip,
                                  .total_clips = t->total_clips,
                                  .chunk_index = t->chunk_index,
                                  .chunk_count = t->chunk_count,
                                  .duration_s = t->probe.duration_s,
                                  .fps = t->probe.fps,
                                  .width = t->probe.width,
                                  .height = t->probe.height,
                                  .partial = t->partial};
    return 0;
}

REEL_API int reel_clip_chunk_clip(reel_clip_chunk *chunk, uint32_t i, reel_clip *out) {
    REEL_NEED(chunk, "chunk");
    REEL_NEED(out, "out");
    int rc = clip_index(chunk, i, __func__);
    if (rc)
        return rc;
    vt_clip *c = &chunk->t.clips[i];
    const char *errors = "";
    if (c->errors.size) {
        /* The record's text has no NUL: it is copied into the clip's own
         * buffer once, where stage_add_error appends to it too. */
        char *buf = clip_text(chunk, i);
        if (!buf)
            return reel__fail(-ENOMEM, "reel_clip_chunk_clip: out of memory");
        if (c->errors.data != (const uint8_t *)buf) {
            vt_text(c->errors, buf, VT_TEXT_MAX);
            c->errors = (vt_bytes){(const uint8_t *)buf, strlen(buf)};
        }
        errors = buf;
    }
    *out = (reel_clip){.uuid = c->uuid,
                       .start_frame = c->start_frame,
                       .end_frame = c->end_frame,
                       .start_s = c->start_s,
                       .end_s = c->end_s,
                       .fps = c->fps,
                       .width = c->width,
                       .height = c->height,
                       .num_frames = c->num_frames,
                       .filtered = c->filtered,
                       .has_motion = c->has_motion,
                       .motion_global_mean = c->motion_global_mean,
                       .motion_patch_min = c->motion_patch_min,
                       .frames_n = c->frames_n,
                       .frames_h = c->frames_h,
                       .frames_w = c->frames_w,
                       .frames_fps = c->frames_fps,
                       .tensor_n = c->tensor_n,
                       .tensor_h = c->tensor_h,
                       .tensor_w = c->tensor_w,
                       .errors = errors};
    for (int k = 0; k < (int)REEL_CLIP_ARTS; k++) {
        const vt_art *a = stage_clip_art(c, (stage_art_kind)k);
        if (vt_art_present(a))
            out->art[k] = (reel_clip_artifact){.id = a->id, .size = a->size};
    }
    return 0;
}

REEL_API int reel_clip_art_get(reel_clip_chunk *chunk, uint32_t i, reel_clip_art k,
                               reel_view *out) {
    REEL_NEED(chunk, "chunk");
    REEL_NEED(out, "out");
    int rc = clip_index(chunk, i, __func__);
    if (rc)
        return rc;
    if ((unsigned)k >= REEL_CLIP_ARTS)
        return reel__fail(-EINVAL, "reel_clip_art_get: artifact %d (0 to %u)", (int)k,
                          REEL_CLIP_ARTS - 1);
    vt_clip *c = &chunk->t.clips[i];
    vt_art *a = stage_clip_art(c, (stage_art_kind)k);
    if (!vt_art_present(a))
        return reel__fail(-ENOENT, "reel_clip_art_get: clip %s has no %s", c->uuid,
                          stage_art_name((stage_art_kind)k));
    if (!chunk->views &&
        !(chunk->views = calloc((size_t)chunk->t.n_clips * REEL_CLIP_ARTS, sizeof *chunk->views)))
        return reel__fail(-ENOMEM, "reel_clip_art_get: out of memory");
    reel_view *v = &chunk->views[(size_t)i * REEL_CLIP_ARTS + k];
    if (!a->data) {
        char why[256];
        rc = stage_art_map(chunk->ctx, c, (stage_art_kind)k, a, v, why, sizeof why);
        if (rc)
            return reel__fail(rc, "reel_clip_art_get: clip %s: %s", c->uuid, why);
    }
    *out = *v;
    return 0;
}

REEL_API void reel_clip_art_release(reel_clip_chunk *chunk, uint32_t i, reel_clip_art k) {
    REEL_NEED_OR(chunk, "chunk", );
    if (i >= chunk->t.n_clips || (unsigned)k >= REEL_CLIP_ARTS)
        return;
    stage_art_release(chunk->ctx, stage_clip_art(&chunk->t.clips[i], (stage_art_kind)k));
}

/* Appends "<stage>: <text>" to clip i's errors. */
static int add_error(reel_clip_chunk *ch, uint32_t i, const char *what, const char *text,
                     const char *fn) {
    char *buf = clip_text(ch, i);
    if (!buf)
        return reel__fail(-ENOMEM, "%s: out of memory", fn);
    stage_add_error(&ch->t.clips[i], buf, VT_TEXT_MAX, "%s: %s%s", ch->stage, what, text);
    return 0;
}

REEL_API int reel_clip_filter(reel_clip_chunk *chunk, uint32_t i, const char *reason) {
    REEL_NEED(chunk, "chunk");
    int rc = clip_index(chunk, i, __func__);
    if (rc)
        return rc;
    vt_clip *c = &chunk->t.clips[i];
    c->filtered = true;
    /* What the stages after a filter make for kept clips only goes, as the
     * motion filter's does: released first, as the view names it by ID. */
    static const stage_art_kind gone[] = {STAGE_ART_FRAMES, STAGE_ART_TENSOR, STAGE_ART_PREVIEW};
    for (size_t k = 0; k < sizeof gone / sizeof gone[0]; k++) {
        stage_art_release(chunk->ctx, stage_clip_art(c, gone[k]));
        stage_art_drop(c, gone[k]);
    }
    return reason ? add_error(chunk, i, "filtered: ", reason, __func__) : 0;
}

REEL_API int reel_clip_add_error(reel_clip_chunk *chunk, uint32_t i, const char *text) {
    REEL_NEED(chunk, "chunk");
    REEL_NEED(text, "text");
    int rc = clip_index(chunk, i, __func__);
    return rc ? rc : add_error(chunk, i, "", text, __func__);
}

REEL_API int reel_clip_chunk_write(reel_clip_chunk *chunk, reel_actor_out *out) {
    REEL_NEED(chunk, "chunk");
    REEL_NEED(out, "out");
    if (chunk->written)
        return reel__fail(-EEXIST, "reel_clip_chunk_write: the chunk was written already");
    /* Artifacts mapped or not are carried by ID (their data is never
     * copied); the record is, and counts in bytes_copied. */
    int rc = stage_write_task(chunk->ctx, out, &chunk->t, true);
    if (rc)
        return reel__fail(rc, "reel_clip_chunk_write: cannot write the chunk of %s on: %s",
                          chunk->path, reel_strerror(rc));
    chunk->written = true;
    return 0;
}

REEL_API void reel_clip_chunk_free(reel_clip_chunk *chunk) {
    if (!chunk)
        return;
    /* (clips is NULL where vt_read ran out of memory for them) */
    for (uint32_t i = 0; chunk->t.clips && i < chunk->t.n_clips; i++)
        for (int k = 0; k < (int)REEL_CLIP_ARTS; k++)
            stage_art_release(chunk->ctx, stage_clip_art(&chunk->t.clips[i], (stage_art_kind)k));
    vt_free(&chunk->t);
    free(chunk->views);
    free(chunk->path);
    free(chunk);
}
