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
                                           "chunk of clip spans (one item per chunk)"};
static const stage_entry stage_transcoder = {
    &stage_transcoder_def, "chunk of clip spans",
    "chunk with an H.264 clip artifact each (and the frames and previews the later stages "
    "want)"};
static const stage_entry stage_motion = {&stage_motion_def, "chunk of clips",
                                         "chunk with motion scores"};
static const stage_entry stage_frames = {
    &stage_frames_def, "chunk of clips",
    "chunk with uint8 HWC frame artifacts, for the clips that lack them"};
static const stage_entry stage_preprocess = {&stage_preprocess_def, "chunk with frames",
                                             "chunk with float32 NCHW tensor artifacts"};
static const stage_entry stage_preview = {
    &stage_preview_def, "chunk of clips",
    "chunk with JPEG preview artifacts, for the clips that lack them"};
static const stage_entry stage_clip_writer = {
    &stage_clip_writer_def, "chunk of clips",
    "chunk of clips written to clips/, previews/, metas/v0/ (its artifacts gone)"};
static const stage_entry stage_writer = {&stage_writer_def, "every chunk of one video (gather)",
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
    list[n++] = &stage_clip_writer;
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

/* The caller's stage of reel_curate_pipeline_with(), and its place: after
 * list[after]. */
typedef struct extra_stage {
    const reel_actor_def *def;
    const reel_stage_options *opts; /* may be NULL */
    uint32_t after;
} extra_stage;

/* The curation line of o into *out, with extra (NULL: none) in it. */
static int build(const reel_curate_options *o, reel_actor_def defs[REEL_CURATE_STAGES],
                 const extra_stage *extra, reel_pipeline **out) {
    /* GPU shares where the node has a GPU and a stage can use it (gpu.c);
     * none, and today's CPU path, where it has none. */
    uint32_t n_gpus;
    stage_gpu_shares gpu;
    int gpu_rc = stage_gpu_count(o, &n_gpus);
    if (gpu_rc == 0)
        gpu_rc = stage_gpu_plan(o, n_gpus, &gpu);
    if (gpu_rc)
        return gpu_rc;
    const stage_entry *list[REEL_CURATE_STAGES];
    uint32_t n = stage_list(o, list);
    reel_curate_stage_defs(o, defs);
    /* What a worker of each stage really uses, so that the autoscaler
     * places them by it (issue 14, item 4):
     *   - the transcoder: a CPU per encoder thread. Its encoder has one
     *     thread unless told (--transcode-encoder-threads): the clips of
     *     every video are spread over the transcoders, and as many
     *     single-threaded transcoders as CPUs encode more per CPU than fewer
     *     with threads (on the samples, 2 x 1 thread on 2 CPUs did 7.0-7.5
     *     s of video per second where 1 x 2 threads did 5.6). The line is
     *     sized for as many transcoders as the CPUs hold (or as are fixed).
     *   - the splitter: one CPU when it detects scenes (it decodes the whole
     *     video); with a fixed stride it only does arithmetic on the probe.
     *   - the reader (a probe) and the writer (files out of the store):
     *     mostly waiting on the disk, a small share.
     *   - motion: half a CPU when it scores (it decodes each clip's MP4 once,
     *     single-threaded, in a fraction of the time its encode took); a
     *     small share when disabled (it passes items on).
     *   - frames and preview: a small share: the transcoder takes frames and
     *     previews from the pictures it encodes, and these stages decode an
     *     MP4 only for the clips it could not.
     *   - preprocess: a quarter of a CPU (a resize and a scale per frame
     *     at 2 frames a second of clip).
     * Where that line does not fit within 95% of the CPUs the executor
     * places workers on (cpu_allocation_percentage of the node's, 95% by
     * default), every share is scaled down alike, so that on a 2-CPU node two
     * transcoders start beside one worker of every other stage; the
     * autoscaler then counts each worker by the CPU it measurably takes and
     * moves workers where time goes. */
    cpu_set_t set;
    double ncpu = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
    /* The CPUs the executor will place workers on, as it counts them; as
     * many transcoders as they hold, rounded (2 on 1.9). */
    double budget = ncpu * o->cpu_allocation_percentage;
    uint32_t threads = stage_encode_threads(o);
    uint32_t transcoders = o->transcoder_workers     ? o->transcoder_workers
                           : budget / threads >= 1.5 ? (uint32_t)floor(budget / threads + 0.5)
                                                     : 1;
    double want[REEL_CURATE_STAGES];
    double total = 0, extra_want = 0;
    if (extra) {
        /* Scaled with the others: a stage of a whole CPU on a 2-CPU node
         * would not fit beside them otherwise. */
        extra_want = extra->opts && extra->opts->cpus > 0 ? extra->opts->cpus
                     : extra->def->cpus > 0               ? extra->def->cpus
                                                          : 1;
        total += extra_want;
    }
    for (uint32_t i = 0; i < n; i++) {
        const reel_actor_def *d = list[i]->def;
        if (d == &stage_transcoder_def)
            want[i] = threads;
        else if (d == &stage_splitter_def)
            want[i] = o->splitting == REEL_SPLIT_SCENE ? 1 : 0.05;
        else if (d == &stage_motion_def)
            want[i] = o->motion == REEL_MOTION_DISABLE ? 0.05 : 0.5;
        else if (d == &stage_preprocess_def)
            want[i] = 0.25;
        else
            want[i] = 0.1;
        total += d == &stage_transcoder_def ? want[i] * transcoders : want[i];
    }
    /* 95% of the budget: shares are cut to hundredths, and the executor
     * refuses a line over its budget. */
    double scale = total > 0.95 * budget ? 0.95 * budget / total : 1;
    reel_pipeline *p;
    int rc = reel_pipeline_new("video-curation", &p);
    for (uint32_t i = 0; rc == 0 && i < n; i++) {
        double share = floor(100 * want[i] * scale) / 100;
        /* One task per worker at a time: a transcoder's chunk is seconds of
         * work, and a second one prefetched would wait behind the first
         * while another worker idles. The writer gathers every chunk of a
         * video into one task (processed_videos/ is written once). */
        reel_stage_options so = {.cpus = share < 0.01 ? 0.01 : share,
                                 .slots = 1,
                                 .gather = list[i]->def == &stage_writer_def,
                                 .inputs = list[i]->in,
                                 .outputs = list[i]->out};
        if (list[i] == &stage_transcoder)
            so.workers = o->transcoder_workers; /* 0: autoscaled */
        so.gpus = list[i] == &stage_preprocess   ? gpu.preprocess
                  : list[i] == &stage_transcoder ? gpu.transcoder
                                                 : 0;
        rc = reel_pipeline_add(p, &defs[i], &so);
        if (rc == 0 && extra && i == extra->after) {
            reel_stage_options xo = extra->opts ? *extra->opts : (reel_stage_options){0};
            double xs = floor(100 * extra_want * scale) / 100;
            xo.cpus = xs < 0.01 ? 0.01 : xs;
            if (!xo.inputs)
                xo.inputs = "chunk of clips";
            if (!xo.outputs)
                xo.outputs = "chunk of clips";
            rc = reel_pipeline_add(p, extra->def, &xo);
        }
    }
    if (rc) {
        reel_pipeline_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

REEL_API int reel_curate_pipeline(const reel_curate_options *o,
                                  reel_actor_def defs[REEL_CURATE_STAGES], reel_pipeline **out) {
    REEL_NEED(o, "o");
    REEL_NEED(defs, "defs");
    REEL_NEED(out, "out");
    return build(o, defs, NULL, out);
}

REEL_API int reel_curate_pipeline_with(const reel_curate_options *o,
                                       reel_actor_def defs[REEL_CURATE_STAGES],
                                       const reel_actor_def *extra, const char *after_stage,
                                       const reel_stage_options *extra_opts, reel_pipeline **out) {
    REEL_NEED(o, "o");
    REEL_NEED(defs, "defs");
    REEL_NEED(extra, "extra");
    REEL_NEED(out, "out");
    const char *after = after_stage ? after_stage : "motion";
    const stage_entry *list[REEL_CURATE_STAGES];
    uint32_t n = stage_list(o, list);
    char names[160] = "";
    uint32_t at = n;
    for (uint32_t i = 0; i < n; i++) {
        if (strcmp(list[i]->def->name, after) == 0)
            at = i;
        size_t len = strlen(names);
        snprintf(names + len, sizeof names - len, "%s%s", i ? ", " : "", list[i]->def->name);
    }
    if (at == n)
        return reel__fail(-EINVAL,
                          "reel_curate_pipeline_with: no stage \"%s\" in this line (%s): "
                          "the options leave it out, or there is none of that name",
                          after, names);
    /* An item before the transcoder is a video, or a chunk with no clip
     * made yet; after the clip writer its clips are written and its
     * artifacts gone; the writer gathers and ends the line. */
    if (list[at]->def == &stage_reader_def || list[at]->def == &stage_splitter_def ||
        list[at]->def == &stage_clip_writer_def || list[at]->def == &stage_writer_def)
        return reel__fail(-EINVAL,
                          "reel_curate_pipeline_with: a stage cannot go after the %s: stages "
                          "of the caller's go between the transcoder and the clip writer, "
                          "after one of %s but the first two and the last two",
                          after, names);
    if (extra_opts && extra_opts->gather)
        return reel__fail(-EINVAL,
                          "reel_curate_pipeline_with: stage %s gathers: a stage of the "
                          "caller's takes one chunk a task (the writer gathers)",
                          extra->name ? extra->name : "(unnamed)");
    extra_stage x = {.def = extra, .opts = extra_opts, .after = at};
    return build(o, defs, &x, out);
}
