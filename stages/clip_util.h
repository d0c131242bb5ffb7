/*
 * clip_util.h - what the per-clip stages (motion, frames, preprocess,
 * preview) share: scratch memory that lives until the task is written (clip
 * error texts, buffers a stage hands its clips), and the per-clip error
 * sentence. Internal to the stages; never installed.
 */
#ifndef REEL_STAGES_CLIP_UTIL_H
#define REEL_STAGES_CLIP_UTIL_H

#include "video_task.h"

#include <stdint.h>

/* One task's scratch: for each clip, an error buffer (VT_TEXT_MAX bytes,
 * made on the first error) and one buffer the stage owns (frames, a tensor,
 * a JPEG) that the clip's views point into until the task is written. */
typedef struct clip_scratch {
    uint32_t n;
    char **errors;
    void **owned;
} clip_scratch;

/* For n clips. Returns 0 or -ENOMEM. */
int clip_scratch_init(clip_scratch *s, uint32_t n);

/* Frees every buffer of s (the clips' views into them die with it). */
void clip_scratch_free(clip_scratch *s);

/* Appends "<stage>: <sentence>" to clip i's errors (stage_add_error); when
 * no buffer can be had the sentence is dropped, and -ENOMEM comes back. */
int clip_error(clip_scratch *s, video_task *t, uint32_t i, const char *stage, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#endif
