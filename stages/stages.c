/* The curation pipeline as a whole: the stage list and the pipeline. See
 * reel/stages.h. */
#include "check.h"
#include "stages_internal.h"

#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

REEL_API void reel_curate_stage_defs(const reel_curate_options *o,
                                     reel_actor_def defs[REEL_CURATE_STAGES]) {
    REEL_NEED_OR(o, "o", );
    REEL_NEED_OR(defs, "defs", );
    const reel_actor_def *all[REEL_CURATE_STAGES] = {
        &stage_reader_def, &stage_splitter_def,   &stage_transcoder_def, &stage_motion_def,
        &stage_frames_def, &stage_preprocess_def, &stage_preview_def,    &stage_writer_def};
    for (uint32_t i = 0; i < REEL_CURATE_STAGES; i++) {
        defs[i] = *all[i];
        defs[i].arg = (void *)o;
    }
}

/* What one item in and out is, per stage, for describe. */
static const char *const stage_io[REEL_CURATE_STAGES][2] = {
    {"video path", "video task: path, file identity, probe"},
    {"video task", "video task with clip spans"},
    {"video task with clip spans", "video task with H.264 clips, frames, previews"},
    {"video task with clips", "video task with motion scores"},
    {"video task with clips", "video task with uint8 HWC frames, for the clips that lack them"},
    {"video task with frames", "video task with float32 NCHW tensors"},
    {"video task with clips", "video task with JPEG previews, for the clips that lack them"},
    {"video task", "the video's processed_videos record"},
};

REEL_API int reel_curate_pipeline(const reel_curate_options *o,
                                  reel_actor_def defs[REEL_CURATE_STAGES], reel_pipeline **out) {
    REEL_NEED(o, "o");
    REEL_NEED(defs, "defs");
    REEL_NEED(out, "out");
    reel_curate_stage_defs(o, defs);
    /* Every stage must fit beside the others with one worker, whatever the
     * node: a worker asks for a share of the CPUs that lets all eight start
     * with half of them; the autoscaler then adds workers where time goes. */
    cpu_set_t set;
    double ncpu = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
    double share = floor(100 * ncpu * 0.5 / REEL_CURATE_STAGES) / 100;
    if (share > 1)
        share = 1;
    if (share < 0.01)
        share = 0.01;
    reel_pipeline *p;
    int rc = reel_pipeline_new("video-curation", &p);
    for (uint32_t i = 0; rc == 0 && i < REEL_CURATE_STAGES; i++) {
        /* One task per worker at a time: a task is a whole video, seconds of
         * work, and a second one prefetched would wait behind the first
         * while another worker idles. */
        reel_stage_options so = {
            .cpus = share, .slots = 1, .inputs = stage_io[i][0], .outputs = stage_io[i][1]};
        rc = reel_pipeline_add(p, &defs[i], &so);
    }
    if (rc) {
        reel_pipeline_free(p);
        return rc;
    }
    *out = p;
    return 0;
}
