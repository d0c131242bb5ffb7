/* The curation options: Curator's defaults, and their checks (reel/stages.h). */
#include "check.h"
#include "stages_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

REEL_API void reel_curate_defaults(reel_curate_options *o) {
    REEL_NEED_OR(o, "o", );
    memset(o, 0, sizeof *o);
    o->output_dir = "./reel-out";
    o->splitting = REEL_SPLIT_FIXED_STRIDE;
    o->fixed_stride_clip_len_s = 10;
    o->fixed_stride_stride_s = 10;
    o->fixed_stride_min_clip_s = 2;
    o->scene_min_clip_s = 2;
    o->scene_max_clip_s = 10;
    o->scene_crop_s = 0.5;
    o->scene_threshold = 0.4;
    o->encoder = "libx264";
    o->preset = "veryfast";
    o->crf = 23;
    o->encode_threads = 0; /* as many as stage_encode_threads() says */
    o->motion = REEL_MOTION_ENABLE;
    o->motion_global_mean_threshold = 0.00098;
    o->motion_per_patch_min_256_threshold = 0.000001;
    o->frames_fps = 2;
    o->frames_size = 256;
    o->tensor_size = 224;
    /* CLIP's normalization, which most of Curator's embedding models use. */
    o->mean[0] = 0.48145466f, o->mean[1] = 0.4578275f, o->mean[2] = 0.40821073f;
    o->std[0] = 0.26862954f, o->std[1] = 0.26130258f, o->std[2] = 0.27577711f;
    o->use_gpu = true;
    o->cpu_allocation_percentage = 0.95; /* the executor's default */
    o->previews = true;
    o->audio = true;
    o->preview_size = 320;
}

/* A comma-separated list of extensions: each 1..31 characters of [A-Za-z0-9_+-]
 * after an optional dot. */
static bool extensions_ok(const char *list) {
    if (!*list)
        return false;
    for (const char *p = list;;) {
        p += *p == '.';
        size_t n = strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-");
        if (n == 0 || n > 31 || (p[n] != ',' && p[n] != '\0'))
            return false;
        if (!p[n])
            return true;
        p += n + 1;
    }
}

uint32_t stage_artifacts_per_clip(const reel_curate_options *o) {
    return 1 + (o->write_frames || o->write_tensors) + o->write_tensors + o->previews;
}

static int positive(double x) {
    return isfinite(x) && x > 0;
}

REEL_API int reel_curate_validate(const reel_curate_options *o, char *why, size_t cap) {
    REEL_NEED(o, "o");
    REEL_NEED(why || cap == 0, "why");
    const char *bad = NULL;
    if (!o->output_dir || !*o->output_dir)
        bad = "output_dir: empty";
    else if (o->splitting != REEL_SPLIT_FIXED_STRIDE && o->splitting != REEL_SPLIT_SCENE)
        bad = "splitting: neither fixed_stride nor scene";
    else if (!positive(o->fixed_stride_clip_len_s) || !positive(o->fixed_stride_stride_s))
        bad = "fixed_stride_split_duration: must be a positive number of seconds";
    else if (!isfinite(o->fixed_stride_min_clip_s) || o->fixed_stride_min_clip_s < 0)
        bad = "fixed_stride_min_clip_s: must be 0 or more seconds";
    else if (!positive(o->scene_max_clip_s) || !isfinite(o->scene_min_clip_s) ||
             o->scene_min_clip_s < 0 || o->scene_min_clip_s > o->scene_max_clip_s)
        bad = "scene clip lengths: need 0 <= min <= max, max > 0";
    else if (!isfinite(o->scene_crop_s) || o->scene_crop_s < 0)
        bad = "scene_crop_s: must be 0 or more seconds";
    else if (!isfinite(o->scene_threshold) || o->scene_threshold <= 0 || o->scene_threshold >= 1)
        bad = "scene_threshold: must be in (0, 1)";
    else if (!o->encoder || !*o->encoder || !o->preset || !*o->preset)
        bad = "encoder and preset: empty";
    else if (o->crf < 0 || o->crf > 51)
        bad = "crf: must be 0..51";
    else if (o->motion != REEL_MOTION_DISABLE && o->motion != REEL_MOTION_ENABLE &&
             o->motion != REEL_MOTION_SCORE_ONLY)
        bad = "motion_filter: neither disable, enable nor score-only";
    else if (!isfinite(o->motion_global_mean_threshold) || o->motion_global_mean_threshold < 0 ||
             !isfinite(o->motion_per_patch_min_256_threshold) ||
             o->motion_per_patch_min_256_threshold < 0)
        bad = "motion thresholds: must be 0 or more";
    else if (!positive(o->frames_fps) || o->frames_fps > 240)
        bad = "frames_fps: must be in (0, 240]";
    else if (o->frames_size < 8 || o->frames_size > 4096 || o->tensor_size < 8 ||
             o->tensor_size > 4096 || o->preview_size < 8 || o->preview_size > 4096)
        bad = "frame, tensor and preview sizes: must be 8..4096 pixels";
    else if (!positive(o->cpu_allocation_percentage) || o->cpu_allocation_percentage > 1)
        bad = "cpu_allocation_percentage: must be in (0, 1]";
    else if (o->transcoder_workers > REEL_POOL_MAX_WORKERS)
        bad = "transcoder_workers: at most 256 (0: autoscaled)";
    else if (o->clips_per_chunk > (REEL_TASK_MAX_OUTPUTS - 1) / stage_artifacts_per_clip(o))
        bad = "clips_per_chunk: a chunk's clip artifacts (an MP4 each, and frames, tensor and "
              "preview as made) and its record must fit a task's REEL_TASK_MAX_OUTPUTS outputs";
    else if (o->video_extensions && !extensions_ok(o->video_extensions))
        bad = "video_extensions: a comma-separated list of extensions such as mp4,mov,ogv";
    for (int c = 0; !bad && c < 3; c++)
        if (!isfinite(o->mean[c]) || !isfinite(o->std[c]) || !(o->std[c] > 0))
            bad = "mean and std: finite, std above 0";
    if (!bad)
        return 0;
    if (cap)
        snprintf(why, cap, "%s", bad);
    return reel__fail(-EINVAL, "%s", bad);
}
