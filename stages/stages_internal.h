/*
 * stages_internal.h - what the stage files share: each stage's definition
 * (its file's one export), and the task plumbing every stage uses. Internal
 * to the stages; never installed.
 *
 * A stage's process() takes exactly one input, a video task record of one
 * chunk of a video's clips (video_task.h), except the reader, whose input is
 * a path object, and the writer, a gather stage, whose inputs are every
 * chunk of one video. It reads the record (stage_read_task, which checks
 * every artifact it names against the store), does its work, and writes
 * exactly one output, the next record (stage_write_task, which makes the
 * clip artifacts the stage added and carries on those it kept), except the
 * splitter, which writes one per chunk; or it returns an error that fails
 * the chunk for good: a video the stage cannot handle is marked in its
 * record instead (error, partial, a clip's errors) whenever later stages and
 * the writer can still record it, so that processed_videos/ says what
 * happened. Stages never delete an artifact or an item: the executor does.
 * The options are reel_actor_arg(ctx), a const reel_curate_options *.
 */
#ifndef REEL_STAGES_INTERNAL_H
#define REEL_STAGES_INTERNAL_H

#include "reel/stages.h"
#include "video_task.h"

/* One per stage file, in pipeline order. name, process, setup/teardown and
 * resources are set; arg is filled in by reel_curate_stage_defs(). */
extern const reel_actor_def stage_reader_def;      /* reader.c */
extern const reel_actor_def stage_splitter_def;    /* splitter.c */
extern const reel_actor_def stage_transcoder_def;  /* transcoder.c */
extern const reel_actor_def stage_motion_def;      /* motion.c */
extern const reel_actor_def stage_frames_def;      /* frames.c */
extern const reel_actor_def stage_preprocess_def;  /* preprocess.c */
extern const reel_actor_def stage_preview_def;     /* preview.c */
extern const reel_actor_def stage_clip_writer_def; /* writer.c: a chunk's clips into files */
extern const reel_actor_def stage_writer_def;      /* writer.c: a video's record (gathers) */

/* Whether the run makes frames: they are written, or made into tensors
 * (stages.c; the frames stage is in the pipeline exactly then). */
bool stage_wants_frames(const reel_curate_options *o);

/* The GPU shares of a curation run (gpu.c): per worker, 0 for a CPU-only
 * stage. */
typedef struct stage_gpu_shares {
    double preprocess; /* with write_tensors and use_gpu */
    double transcoder; /* with use_hwaccel or an NVENC encoder */
} stage_gpu_shares;

/* Whether o asks for anything a GPU does (so that the node's GPUs must be
 * counted). */
bool stage_gpu_wanted(const reel_curate_options *o);

/* The shares o gets on a node of n_gpus GPUs: none at all without a GPU
 * (the CPU path), STAGE_GPU_SHARE to each stage that asked with one.
 * Refuses, with a reel_last_error() sentence naming the option and its
 * reel-curate flag: -ENOTSUP when this FFmpeg lacks the encoder or CUDA
 * (use_hwaccel), -ENODEV when use_hwaccel or an NVENC encoder meets a node
 * without a GPU. Pure but for FFmpeg's lookups; touches no GPU. */
int stage_gpu_plan(const reel_curate_options *o, uint32_t n_gpus, stage_gpu_shares *out);

/* The node's GPUs as the scheduler counts them (reel__node_detect: in a
 * child, so that the caller never initializes CUDA); 0 without a child when
 * o wants no GPU. Errors: reel__node_detect's. */
int stage_gpu_count(const reel_curate_options *o, uint32_t *n_gpus);

/* The artifacts a clip may carry at once in a run of o: its MP4, and its
 * frames, tensor and preview when the run makes them (options.c). */
uint32_t stage_artifacts_per_clip(const reel_curate_options *o);

/* The clips per chunk of a video of n clips (n > 0) in a run of o:
 * clips_per_chunk, or automatically the fewest (see reel/stages.h), and no
 * more than an eighth of capacity per CPU in clips of clip_bytes each (0:
 * unknown), nor than a chunk's artifacts fit a result. 0 when
 * clips_per_chunk does not fit (splitter.c). */
uint32_t stage_clips_per_chunk(const reel_curate_options *o, uint32_t n, uint64_t clip_bytes,
                               uint64_t capacity);

/* Writes data[0..size) to path whole or not at all: into a temporary file
 * of a unique name beside it, then a rename (writer.c). 0 or a negative
 * errno. */
int stage_write_file(const char *path, const void *data, size_t size);

/* Threads per clip's encoder: o->encode_threads, or 1 with 0 (see
 * reel_curate_options). */
uint32_t stage_encode_threads(const reel_curate_options *o);

/* The options of the run (reel_actor_arg). */
const reel_curate_options *stage_options(reel_actor_ctx *ctx);

/* Reads the one input task; n must be 1. On failure the actor's error says
 * why (reel_actor_set_error) and a negative code comes back. t is freed with
 * vt_free(). stage_check_artifacts() has run on it: every artifact it names
 * is in the store as the record describes it, or gone from the clip with an
 * error saying so. */
int stage_read_task(reel_actor_ctx *ctx, const char *stage, const reel_view *in, size_t n,
                    video_task *t);

/* Reads one record of a task's inputs (in, any stage): as stage_read_task.
 * stage names the stage in the clip errors. */
int stage_read_record(reel_actor_ctx *ctx, const char *stage, const reel_view *in, video_task *t);

/* Checks each artifact of t's clips against the store (reel_obj_get, then
 * reel_obj_release): an ID that is not there, or whose object's size or
 * reel_meta disagrees with the record, is a clip error ("<stage>: its mp4
 * <hex> is not in the store"), and the clip loses that artifact (so nothing
 * reads or carries it). Returns 0, or -ENOMEM. */
int stage_check_artifacts(reel_actor_ctx *ctx, const char *stage, video_task *t);

/* Writes t as one output item of the task. First each clip artifact that
 * has bytes in hand but no object yet (data set, no ID: the stage made it)
 * becomes an artifact of the item (reel_actor_artifact, typed with
 * stage_art_meta), and each one with an ID is carried on
 * (reel_actor_carry); then the record. copied: t was rewritten from an
 * input record, and its bytes count in bytes_copied (all of them, the few
 * the stage changed too: an upper bound). */
int stage_write_task(reel_actor_ctx *ctx, reel_actor_out *out, video_task *t, bool copied);

/* The artifacts of a clip. */
typedef enum stage_art_kind {
    STAGE_ART_MP4,
    STAGE_ART_FRAMES,
    STAGE_ART_TENSOR,
    STAGE_ART_PREVIEW,
} stage_art_kind;

/* The reel_meta an artifact of c is typed with: ENCODED "mp4" or "jpeg" for
 * the clip and its preview, FRAME u8 (n, h, w, 3) "rgb24" for its frames,
 * TENSOR f32 (n, 3, h, w) for its tensor; pts_us and duration_us the clip's
 * span in the source. */
void stage_art_meta(const vt_clip *c, stage_art_kind k, reel_meta *m);

/* Maps a clip's artifact k for reading, zero-copy: a->data points into the
 * object until stage_art_release(). The object must be a's size and typed as
 * stage_art_meta says. Returns 0, or a negative code with why saying it
 * (-ENOENT: not in the store). */
int stage_art_get(reel_actor_ctx *ctx, const vt_clip *c, stage_art_kind k, vt_art *a, char *why,
                  size_t cap);

/* stage_art_get(), and the object's whole view (its reel_meta too) into
 * *view. */
int stage_art_map(reel_actor_ctx *ctx, const vt_clip *c, stage_art_kind k, vt_art *a,
                  reel_view *view, char *why, size_t cap);

/* The artifact k of c. */
vt_art *stage_clip_art(vt_clip *c, stage_art_kind k);

/* Its name in messages: "mp4", "frames", "tensor", "preview". */
const char *stage_art_name(stage_art_kind k);

/* Takes artifact k from c, with its shape (the artifact goes on with the
 * item no more: the executor deletes it). */
void stage_art_drop(vt_clip *c, stage_art_kind k);

/* Drops the view stage_art_get() took (a no-op when there is none). */
void stage_art_release(reel_actor_ctx *ctx, vt_art *a);

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
    /* Tensors written, by where the preprocess stage made them: what shows
     * that the CUDA kernel ran (scripts/gpu-check.sh reads it). */
    uint32_t tensors_gpu, tensors_cpu;
    double duration_s; /* of the source */
    int64_t frames;    /* of the source */
    /* Bytes copied between store objects for this video, summed over its
     * chunks (video_task.bytes_copied), and the source file's size. */
    uint64_t bytes_copied, source_bytes;
    char name[256];                    /* its processed_videos/ name, NUL-terminated */
    char path[REEL_CURATE_PATH_MAX];   /* the input path as given, NUL-terminated */
    char error[REEL_CURATE_ERROR_MAX]; /* what went wrong, or "" */
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
