/*
 * clip_util.h - what the per-clip stages (motion, frames, preprocess,
 * preview) share: the process() each of them is - a loop over the task's
 * clips that records each clip's failure in the clip - taking chosen frames
 * out of a clip's MP4, and which frames the frames and preview stages take
 * and what they make of them (which the transcoder shares too: it takes
 * them from the pictures it encodes). Internal to the stages; never
 * installed.
 */
#ifndef REEL_STAGES_CLIP_UTIL_H
#define REEL_STAGES_CLIP_UTIL_H

#include "media.h"
#include "stages_internal.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- the stage -------------------------------------------------------------------- */

/* A per-clip stage: the clips it works on, and its work on one. */
typedef struct clip_stage {
    const char *name;     /* a clip's error reads "<name>: <why>" */
    stage_art_kind reads; /* the artifact work reads: MP4 or FRAMES, mapped while it runs */
    /* Whether the stage works on c. */
    bool (*wants)(const vt_clip *c);
    /* Works on one clip.
     *   o      in: the run's options
     *   c      in/out: the clip, to fill (on failure too, where the stage
     *          records something for a clip it could not handle)
     *   owned  out: a malloc'd buffer that c's new views point into, or
     *          NULL; freed once the task is written
     *   why    out: a sentence, why[0..cap), starting empty
     * Returns 0 (done; a sentence left in why is recorded as the clip's
     * error all the same: the clip was done only in part), -ENOMEM (the
     * video fails; why may say what the memory was for), or another
     * negative code (the clip failed: why says it, and *owned is NULL). */
    int (*work)(const reel_curate_options *o, vt_clip *c, void **owned, char *why, size_t cap);
} clip_stage;

/* A clip_stage's wants for the stages after the motion filter: a clip that
 * is kept (not filtered) and has its MP4. */
bool clip_kept_with_mp4(const vt_clip *c);

/* A per-clip stage's process() (reel_actor_def's): reads the one input task,
 * runs st->work on each clip st->wants in turn with the artifact it reads
 * mapped (stage_art_get; one that cannot be is the clip's error), appends
 * each failure to its clip's errors, and writes the task with the artifacts
 * work made (c's views into *owned) and those it kept; a task none of whose
 * clips st wants goes on as it came (reel_actor_forward). Returns 0, or the negative code
 * that fails the video with the actor's error saying why: a task that cannot
 * be read or written, or -ENOMEM. */
int clip_stage_process(reel_actor_ctx *ctx, const reel_view *in, size_t n, reel_actor_out *out,
                       const clip_stage *st);

/* ---- frames out of a clip's MP4 ------------------------------------------------------ */

/* A clip's MP4, open for clip_video_pick(). */
typedef struct clip_video {
    media_input *m;
    int64_t num_frames; /* the MP4's count, else the clip's record's */
    double fps;         /* the MP4's rate, else the clip's record's */
} clip_video;

/* Opens clip c's MP4 (c->mp4, which must outlive v). Returns 0, or
 * media_open()'s error with why saying it. */
int clip_video_open(const vt_clip *c, clip_video *v, char *why, size_t cap);

/* Decodes v once and hands take() the frames at idx[0..n) (frame indices as
 * media.h numbers them, nondecreasing, n >= 1): take(arg, k, count, frame)
 * for the samples k .. k + count - 1, which all show that frame (the frame
 * is the decoder's, valid during the call only). Should the clip decode to
 * fewer frames than idx asks for, its last frame stands in for the samples
 * past its end. take returns 0 to go on or a negative code to fail with.
 * *partial (out, may be NULL) and why: as media_decode(). Returns 0, take's
 * code, media_decode()'s error, -EIO when the clip decodes to no frame at
 * all, or -ENOMEM. */
int clip_video_pick(clip_video *v, const int64_t *idx, uint32_t n,
                    int (*take)(void *arg, uint32_t k, uint32_t count, const AVFrame *frame),
                    void *arg, bool *partial, char *why, size_t cap);

void clip_video_close(clip_video *v);

/* ---- which frames, and what of them --------------------------------------------------- */

#define CLIP_FRAMES_MAX 100000u /* samples per clip, at most (a 14-hour clip at 2 fps) */

/* The frames the frames stage takes of a clip of num_frames at fps, sampled
 * at rate (Curator's sequence policy; frames.c says how): *n samples, the
 * frame of sample k in (*idx)[k], nondecreasing; *idx is malloc'd, the
 * caller's to free(). Returns 0, -EINVAL (num_frames, fps or rate not
 * positive), -E2BIG (more than CLIP_FRAMES_MAX samples) or -ENOMEM. */
int clip_frames_plan(int64_t num_frames, double fps, double rate, int64_t **idx, uint32_t *n);

/* Bytes of one frame of the frames stage: size x size RGB24. */
size_t clip_frame_bytes(uint32_t size);

/* Samples k .. k + count - 1 of frames (n x size x size x 3) show frame:
 * one conversion to RGB at size x size, then copies. Returns 0 or
 * media_frame_to_rgb's error. */
int clip_frames_put(uint8_t *frames, uint32_t size, uint32_t k, uint32_t count,
                    const AVFrame *frame);

/* The frame the preview stage takes of n: Curator's "middle" policy, n / 2,
 * or n / 2 - 1 when n is even (0 when n <= 0). */
int64_t clip_middle_frame(int64_t n);

/* The preview of frame: scaled so that its longer side is side pixels (the
 * other in proportion, rounded, at least 1), as a JPEG in a malloc'd buffer
 * (*jpeg, *size; free() it). Returns 0, -ENOMEM, or another negative code
 * with why saying it. */
int clip_preview_jpeg(const AVFrame *frame, uint32_t side, uint8_t **jpeg, uint64_t *size,
                      char *why, size_t cap);

#endif
