/* The curation pipeline as a whole: the stage list and the pipeline. See
 * reel/stages.h. */
#include "check.h"
#include "stages_internal.h"

#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

/* What one item in and out is, per stage, for describe. */
typedef struct stage_entry {
    const reel_actor_def *def;
    const char *in, *out;
} stage_entry;

static const stage_entry stage_reader = {&stage_reader_def, "video path",
                                         "video task: path, file identity, probe"};
static const stage_entry stage_splitter = {&stage_splitter_def, "video task",
                                           "video task with clip spans"};
static const stage_entry stage_transcoder = {
    &stage_transcoder_def, "video task with clip spans",
    "video task with H.264 clips (and the frames and previews the later stages want)"};
static const stage_entry stage_motion = {&stage_motion_def, "video task with clips",
                                         "video task with motion scores"};
static const stage_entry stage_frames = {
    &stage_frames_def, "video task with clips",
    "video task with uint8 HWC frames, for the clips that lack them"};
static const stage_entry stage_preprocess = {&stage_preprocess_def, "video task with frames",
                                             "video task with float32 NCHW tensors"};
static const stage_entry stage_preview = {
    &stage_preview_def, "video task with clips",
    "video task with JPEG previews, for the clips that lack them"};
static const stage_entry stage_writer = {&stage_writer_def, "video task",
                                         "the video's processed_videos record"};

bool stage_wants_frames(const reel_curate_options *o) {
    return o->write_frames || o->write_tensors;
}

/* The stages o needs, in order, into list; their count. */
static uint32_t stage_list(const reel_curate_options *o,
                           const stage_entry *list[REEL_CURATE_STAGES]) {
    uint32_t n = 0;
    list[n++] = &stage_reader;
    list[n++] = &stage_splitter;
    list[n++] = &stage_transcoder;
    list[n++] = &stage_motion;
    if (stage_wants_frames(o))
        list[n++] = &stage_frames;
    if (o->write_tensors)
        list[n++] = &stage_preprocess;
    if (o->previews)
        list[n++] = &stage_preview;
    list[n++] = &stage_writer;
    return n;
}

REEL_API uint32_t reel_curate_stage_defs(const reel_curate_options *o,
                                         reel_actor_def defs[REEL_CURATE_STAGES]) {
    REEL_NEED_OR(o, "o", 0);
    REEL_NEED_OR(defs, "defs", 0);
    const stage_entry *list[REEL_CURATE_STAGES];
    uint32_t n = stage_list(o, list);
    for (uint32_t i = 0; i < n; i++) {
        defs[i] = *list[i]->def;
        defs[i].arg = (void *)o;
    }
    return n;
}

REEL_API int reel_curate_pipeline(const reel_curate_options *o,
                                  reel_actor_def defs[REEL_CURATE_STAGES], reel_pipeline **out) {
    REEL_NEED(o, "o");
    REEL_NEED(defs, "defs");
    REEL_NEED(out, "out");
    const stage_entry *list[REEL_CURATE_STAGES];
    uint32_t n = stage_list(o, list);
    reel_curate_stage_defs(o, defs);
    /* Every stage must fit beside the others with one worker, whatever the
     * node: a worker asks for a share of the CPUs that lets all of them
     * start with half of them; the autoscaler then adds workers where time
     * goes. */
    cpu_set_t set;
    double ncpu = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
    double share = floor(100 * ncpu * 0.5 / n) / 100;
    if (share > 1)
        share = 1;
    if (share < 0.01)
        share = 0.01;
    reel_pipeline *p;
    int rc = reel_pipeline_new("video-curation", &p);
    for (uint32_t i = 0; rc == 0 && i < n; i++) {
        /* One task per worker at a time: a task is a whole video, seconds of
         * work, and a second one prefetched would wait behind the first
         * while another worker idles. */
        reel_stage_options so = {
            .cpus = share, .slots = 1, .inputs = list[i]->in, .outputs = list[i]->out};
        if (list[i] == &stage_transcoder)
            so.workers = o->transcoder_workers; /* 0: autoscaled */
        rc = reel_pipeline_add(p, &defs[i], &so);
    }
    if (rc) {
        reel_pipeline_free(p);
        return rc;
    }
    *out = p;
    return 0;
}
