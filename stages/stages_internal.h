/*
 * stages_internal.h - what the stage files share: each stage's definition
 * (its file's one export), and the task plumbing every stage uses. Internal
 * to the stages; never installed.
 *
 * A stage's process() takes exactly one input, a video task object
 * (video_task.h), except the reader, whose input is a path object. It reads
 * the task (stage_read_task), does its work, and writes exactly one output,
 * the next task (stage_write_task), or returns an error that fails the video
 * for good: a video the stage cannot handle is marked in its task instead
 * (error, partial, a clip's errors) whenever later stages and the writer can
 * still record it, so that processed_videos/ says what happened. The options
 * are reel_actor_arg(ctx), a const reel_curate_options *.
 */
#ifndef REEL_STAGES_INTERNAL_H
#define REEL_STAGES_INTERNAL_H

#include "reel/stages.h"
#include "video_task.h"

/* One per stage file, in pipeline order. name, process, setup/teardown and
 * resources are set; arg is filled in by reel_curate_stage_defs(). */
extern const reel_actor_def stage_reader_def;     /* reader.c */
extern const reel_actor_def stage_splitter_def;   /* splitter.c */
extern const reel_actor_def stage_transcoder_def; /* transcoder.c */
extern const reel_actor_def stage_motion_def;     /* motion.c */
extern const reel_actor_def stage_frames_def;     /* frames.c */
extern const reel_actor_def stage_preprocess_def; /* preprocess.c */
extern const reel_actor_def stage_preview_def;    /* preview.c */
extern const reel_actor_def stage_writer_def;     /* writer.c */

/* Whether the run makes frames: they are written, or made into tensors
 * (stages.c; the frames stage is in the pipeline exactly then). */
bool stage_wants_frames(const reel_curate_options *o);

/* The options of the run (reel_actor_arg). */
const reel_curate_options *stage_options(reel_actor_ctx *ctx);

/* Reads the one input task; n must be 1. On failure the actor's error says
 * why (reel_actor_set_error) and a negative code comes back. t is freed with
 * vt_free(). */
int stage_read_task(reel_actor_ctx *ctx, const reel_view *in, size_t n, video_task *t);

/* Writes t as the task's one output object. */
int stage_write_task(reel_actor_ctx *ctx, reel_actor_out *out, const video_task *t);

/* Opens the task's source file by range (media_open_file) with options o
 * (NULL: media_open()'s defaults), checking first that it is the file the
 * reader saw (t->file): one that changed since is -ESTALE with why
 * "<path> changed since it was read". A path that does not fit a C string
 * of PATH_MAX bytes is -ENAMETOOLONG. Else media_open_file()'s errors. */
struct media_input;
struct media_open_options;
int stage_open_source(const video_task *t, const struct media_open_options *o,
                      struct media_input **m, char *why, size_t cap);

/* Appends a sentence to a clip's error text: ("a; b"), into a buffer the
 * caller keeps alive until the task is written (cap bytes). */
void stage_add_error(vt_clip *c, char *buf, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Makes the output layout under root (mkdir -p of root, then clips/,
 * filtered_clips/, previews/, metas/v0/, processed_videos/). */
int stage_output_dirs(const char *root, char *why, size_t cap);

/* The writer's output: one per video, for reel-curate's totals. */
#define WRITER_SUMMARY_MAGIC "REELWSUM"
typedef struct writer_summary {
    char magic[8];
    uint32_t clips;          /* clips found */
    uint32_t clips_written;  /* to clips/ */
    uint32_t clips_filtered; /* to filtered_clips/ */
    uint32_t partial;        /* the video decoded only in part */
    uint32_t failed;         /* it yielded nothing (its record has the error) */
    uint32_t reserved;
    double duration_s; /* of the source */
    int64_t frames;    /* of the source */
    char name[256];    /* its processed_videos/ name, NUL-terminated */
} writer_summary;

/* ---- for the tests ----------------------------------------------------------
 * The splitter's arithmetic and detector, callable without a pipeline
 * (splitter.c). Spans are frame indices [start, end). Each returns 0, -EINVAL
 * (out-of-range arguments), -E2BIG (more than VT_MAX_CLIPS spans) or
 * -ENOMEM; the arrays it hands back are malloc'd (NULL when empty) and the
 * caller's to free. */
typedef struct stage_span {
    int64_t start, end;
} stage_span;

/* Curator's FixedStrideExtractorStage: a clip of clip_len_s every stride_s
 * seconds from 0 while the start is before duration_s, cut at duration_s,
 * dropped when shorter than min_clip_s; seconds to frames as int(s * fps). */
int stage_fixed_stride_spans(double duration_s, double fps, double clip_len_s, double stride_s,
                             double min_clip_s, stage_span **out, size_t *n);

/* Curator's TransNetV2 stage after its model: the scenes between cuts
 * (frame indices where a shot starts; the whole video when there are none)
 * cut into max_s pieces (a last piece under min_s dropped), crop_s taken
 * off both ends of each, and those under min_s dropped; seconds to frames as
 * int(s * fps), 0 seconds meaning "none". */
int stage_scene_spans(const int64_t *cuts, size_t n_cuts, int64_t n_frames, double fps,
                      double min_s, double max_s, double crop_s, stage_span **out, size_t *n);

/* The detector's decision over n frames' scores: next[i] = D(f[i-1], f[i]),
 * cross[i] = the least D between a frame of the three before i and one of
 * the three from i on (splitter.c says what D is and how it decides).
 * *cuts: the frames that start a new shot, ascending. */
int stage_find_cuts(const double *next, const double *cross, size_t n, double fps, double threshold,
                    int64_t **cuts, size_t *n_cuts);

/* Decodes the whole video m opened (media_open or media_open_file; the
 * caller closes it) and finds its cuts.
 * *n_frames: the frames decoded; *partial and why as media_decode(). Returns
 * 0, or media_decode()'s error with why saying it. */
int stage_detect_cuts(struct media_input *m, double threshold, int64_t **cuts, size_t *n_cuts,
                      int64_t *n_frames, bool *partial, char *why, size_t cap);

#endif
