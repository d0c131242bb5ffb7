/*
 * reel/stages.h - the video-curation stages, after NeMo Curator's video
 * pipeline, as ordinary stage actors (reel/actor.h) on FFmpeg's libraries.
 *
 *   reader -> splitter -> transcoder -> motion [-> frames [-> preprocess]]
 *          [-> preview] -> clip-writer -> writer
 *
 * Nothing is computed to be thrown away: the frames stage is in the line
 * only when frames are written (write_frames) or made into tensors
 * (write_tensors), preprocess only when tensors are written, and the preview
 * stage only when previews are (previews, on by default). With the defaults
 * but previews off, reel-curate does the work of Curator's split-and-
 * transcode example: clips, their metadata and the video records.
 *
 * Items: the pipeline's inputs are store objects holding a video's path (as
 * given, no NUL). The reader's item is the video's record; the splitter
 * fans it out into chunks of its clips, one item each (clips_per_chunk), so
 * that the clips of one video are worked on by every worker of a stage at
 * once; the clip writer writes each chunk's clips into their files and
 * passes the chunk's record on without its artifacts, which the executor
 * then deletes, so that the store holds a video's clips only while they
 * wait to be written, not the whole video's; the writer gathers
 * (reel_stage_options.gather) those records of one video into one task and
 * writes, once, the video's record in processed_videos/ (a chunk that never
 * came, a stage having failed on it under ignore_failures, is recorded
 * there as failed clips). Its output is a small summary object. Each clip's MP4, frames, tensor and
 * preview is an artifact (reel/actor.h): a store object of its own, typed
 * with a reel_meta, named in the chunk's record by ID, read zero-copy by
 * the stages after it and deleted by the executor after its last reader;
 * what is copied between store objects is the records
 * (reel_curate_video_summary.bytes_copied). The video file itself never
 * enters the store: the reader records its path and identity (size, mtime,
 * inode, device), and the stages that decode it read it by range (a
 * transcoder's chunk from the keyframe before its first clip where the
 * container indexes every frame), failing the video with "<path> changed
 * since it was read" when that identity no longer holds; so a video of any
 * size curates with a store of the default size.
 *
 * reel_curate_pipeline() builds the whole pipeline from options;
 * `reel-curate` is its command-line face. reel_curate_pipeline_with() puts a
 * stage of the caller's into it, which reads and writes the chunks through
 * the calls of "your own stage" below (examples/luma_filter is one). Each stage's setup reads the
 * options it needs from the reel_curate_options the defs point at (arg),
 * which must outlive the run.
 *
 * Arguments are checked as reel/store.h says ("Arguments"): a NULL where a
 * pointer is needed is -EINVAL with a reel_last_error() sentence naming it,
 * before anything else happens.
 */
#ifndef REEL_STAGES_H
#define REEL_STAGES_H

#include <reel/pipeline.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum reel_split_algorithm {
    REEL_SPLIT_FIXED_STRIDE = 0, /* Curator's FixedStrideExtractorStage */
    REEL_SPLIT_SCENE = 1,        /* shot boundaries, with TransNetV2's stage defaults */
} reel_split_algorithm;

typedef enum reel_motion_mode {
    REEL_MOTION_DISABLE = 0,    /* no scores, nothing filtered */
    REEL_MOTION_ENABLE = 1,     /* score, and send low-motion clips to filtered_clips/ */
    REEL_MOTION_SCORE_ONLY = 2, /* score only */
} reel_motion_mode;

typedef struct reel_curate_options {
    const char *output_dir; /* where clips/, metas/v0/, ... go (required by the writer) */

    reel_split_algorithm splitting;
    /* Fixed stride (Curator's defaults): clips of clip_len_s every stride_s;
     * a last clip shorter than min_clip_s is dropped. */
    double fixed_stride_clip_len_s; /* 10 */
    double fixed_stride_stride_s;   /* 10 */
    double fixed_stride_min_clip_s; /* 2 */
    /* Scene cuts (TransNetV2 stage's defaults): scenes shorter than
     * min_clip_s are dropped, longer than max_clip_s cut by that stride,
     * crop_s taken off each end of a scene; a video with no cut is one clip. */
    double scene_min_clip_s; /* 2 */
    double scene_max_clip_s; /* 10 */
    double scene_crop_s;     /* 0.5 */
    double scene_threshold;  /* detector score above which a frame starts a shot */

    /* Fan-out: the splitter makes one item of each run of clips_per_chunk
     * of a video's clips (Curator's num_clips_per_chunk), and the stages
     * after it work on the items of one video at once. 0 (the default):
     * automatic, a video's clips over twice as many chunks as the CPUs the
     * splitter may run on (each chunk costs a seek and a decode from the
     * keyframe before it), with no more in a chunk than an eighth of the
     * store per CPU (clips guessed at the source's bytes per second: a
     * chunk's MP4s are in the store until written), and no more than an
     * item's clip artifacts (an MP4 each, and frames, tensor, preview as
     * made) with its record fit in REEL_TASK_MAX_OUTPUTS outputs (how a
     * result hands an item on). A value whose chunk cannot fit them is
     * refused. A video makes any number of chunks. */
    uint32_t clips_per_chunk;

    /* Transcoding: H.264 in MP4 through libavcodec. An NVENC encoder
     * ("h264_nvenc", Curator's name) encodes on the GPU: crf is its constant
     * quality and an x264 preset its p1..p7 (see reel_curate_pipeline()). */
    const char *encoder; /* "libx264" */
    const char *preset;  /* "veryfast" */
    int32_t crf;         /* 23 */
    /* Curator's use_input_bit_rate: each clip at the source stream's bit
     * rate (Curator's bit_rate_k: its bit_rate / 1024, in thousands of bits
     * a second; 2000 where the stream does not say) in place of crf. (false) */
    bool use_input_bit_rate;
    /* Decode on the GPU (NVDEC, libavcodec's CUDA hwaccel; Curator's
     * use_hwaccel, reel-curate's --transcode-use-hwaccel). Never a silent
     * CPU fallback: reel_curate_pipeline() refuses it where this FFmpeg has
     * no CUDA or the node no GPU, and a transcoder whose CUDA device does
     * not open fails the video, naming the reason. (false) */
    bool use_hwaccel;
    /* Threads per clip's encoder (Curator's encoder_threads), 0..64; the
     * transcoder asks for a CPU per thread. 0, the default: 1, so that the
     * clips of every video spread over as many single-threaded transcoders
     * as the node has CPUs: more clips at once on more workers encode more
     * per CPU than more threads per clip. With transcoder_workers fixed
     * below the CPUs, threads put the rest of the CPUs to work. */
    uint32_t encode_threads;
    /* The share of the CPUs the run's executor places workers on (its
     * cpu_allocation_percentage, reel/pipeline.h; reel-curate copies
     * --cpu-allocation-percentage here): the line's CPU shares are sized to
     * fit it, so that a node lent part of a machine runs. (0.95) */
    double cpu_allocation_percentage;
    /* The transcoder stage's workers: a fixed count, 1..REEL_POOL_MAX_WORKERS
     * (with 1, what a run gains from transcoding in parallel can be measured);
     * 0: autoscaled, as every other stage (the default). */
    uint32_t transcoder_workers;

    /* Motion filter (Curator's names and defaults). */
    reel_motion_mode motion;
    double motion_global_mean_threshold;       /* 0.00098 */
    double motion_per_patch_min_256_threshold; /* 0.000001 */

    /* Frame extraction, and the preprocessing for embedding models. */
    double frames_fps;     /* frames per second of clip taken (2) */
    uint32_t frames_size;  /* frames scaled to this many pixels square (256) */
    uint32_t tensor_size;  /* tensors of this many pixels square (224) */
    float mean[3], std[3]; /* normalization per channel, of values in [0, 1] (CLIP's) */
    bool use_gpu;          /* preprocess on the GPU when one exists (true) */

    /* What is made besides the clips and their metadata. Frames and tensors
     * are made only to be written, beside the clip's metadata, as NumPy
     * .npy files (format 1.0, C order), for the clips that are kept (not
     * filtered) and have their MP4:
     *   metas/v0/<uuid>.frames.npy  uint8 '|u1', (frames, size, size, 3):
     *                               RGB, HWC, frames_fps x frames_size
     *   metas/v0/<uuid>.tensor.npy  float32 '<f4', (frames, 3, size, size):
     *                               NCHW, tensor_size, normalized by mean/std
     * Each appears whole or not at all (a temporary name, then a rename). */
    bool write_frames;  /* write each clip's frames (false) */
    bool write_tensors; /* write each clip's tensor (false; made of frames, written or not) */
    bool previews;      /* previews/<uuid>/preview.jpg, one per clip (true) */
    /* Each clip carries the source's first audio stream for its span,
     * copied as it is, as Curator's clips do (true); a codec the MP4 muxer
     * does not take as it is (PCM, say) is re-encoded to AAC. */
    bool audio;
    uint32_t preview_size; /* the preview's longer side in pixels (320) */
    uint64_t video_limit;  /* videos at most (0: all) */
    /* The extensions a file's name must end in to be taken for a video, as
     * a comma-separated list ("mp4,.MOV,webm": a leading dot optional, case
     * aside). NULL: every one libavformat knows (reel_curate_known_extensions). */
    const char *video_extensions;
} reel_curate_options;

/* Curator's defaults, as in the comments above; output_dir "./reel-out".
 * Frames and tensors are not written, previews are. */
REEL_API void reel_curate_defaults(reel_curate_options *o);

/* 0, or -EINVAL with why[0..cap) naming the first bad option. */
REEL_API int reel_curate_validate(const reel_curate_options *o, char *why, size_t cap);

/* The extensions of the files libavformat reads, lower case, sorted, each
 * once, comma-separated ("264,265,3g2,3gp,..."): every extension of every
 * demuxer (AVInputFormat.extensions) and of every muxer that writes video
 * (ogv, ts, mts, m2ts, mpg, vob, mxf are only there). That includes audio
 * (mp3, wav), subtitles (srt), pictures (png) and text (txt): libavformat
 * reads them, and the reader refuses a file with no video stream, naming it.
 * Built at the first call (thread-safe); the string is static, valid for the
 * process's life; "" if memory ran out. */
REEL_API const char *reel_curate_known_extensions(void);

/* Whether name (a file name, not a path) is a video's by its extension: in
 * o->video_extensions, or (when that is NULL, or o is NULL) in
 * reel_curate_known_extensions(), case aside. Hidden names (".x") and names
 * without an extension are not. */
REEL_API bool reel_curate_is_video_name(const reel_curate_options *o, const char *name);

/* The stages o asks for, in pipeline order, into defs[0..n), with arg = o
 * (which must outlive the run). Returns n, 6 to REEL_CURATE_STAGES (0 when
 * o or defs is NULL). Stage names, those in brackets only when o needs
 * them (see write_frames, write_tensors, previews above): "reader",
 * "splitter", "transcoder", "motion", ["frames"], ["preprocess"],
 * ["preview"], "clip-writer", "writer". */
#define REEL_CURATE_STAGES 9u /* the most there can be */
REEL_API uint32_t reel_curate_stage_defs(const reel_curate_options *o,
                                         reel_actor_def defs[REEL_CURATE_STAGES]);

/* A pipeline named "video-curation" of the stages reel_curate_stage_defs()
 * picks, with their resources (defs must outlive it).
 *
 * GPUs: when o asks for GPU work - write_tensors with use_gpu, use_hwaccel,
 * or an NVENC encoder ("h264_nvenc") - it counts the node's GPUs as the
 * scheduler does, in a short-lived child, so that the calling process never
 * initializes CUDA (and may still fork its workers). With a GPU, the
 * preprocess stage (write_tensors and use_gpu) and the transcoder
 * (use_hwaccel or NVENC) ask for 0.25 of a device per worker: the scheduler
 * shows them the device, and several workers share it. Without one, no
 * stage asks for a GPU, and every share is what it is on a CPU node.
 * Errors: -EINVAL (a NULL); -ENOTSUP when this FFmpeg has no encoder named
 * o->encoder, or no CUDA for use_hwaccel; -ENODEV when use_hwaccel or an
 * NVENC encoder meets a node without a GPU; reel_last_error() names the
 * option, its reel-curate flag and the reason. Then reel_pipeline_new's and
 * reel_pipeline_add's. */
REEL_API int reel_curate_pipeline(const reel_curate_options *o,
                                  reel_actor_def defs[REEL_CURATE_STAGES], reel_pipeline **out);

/* The pipeline of reel_curate_pipeline() with one stage of the caller's,
 * extra, inserted right after the stage named after_stage (NULL: "motion"):
 * a per-chunk stage (see "Your own stage" below) that reads each chunk the
 * stage before it writes, and writes it on to the stage after it. after_stage
 * is one of the stages in o's line from "transcoder" to the last before the
 * clip writer ("transcoder", "motion", ["frames"], ["preprocess"],
 * ["preview"]): before the transcoder an item is a video or a chunk with no
 * clip made yet, after the clip writer its clips are written and their
 * artifacts gone, and after the writer there is nothing to write on to.
 *   o, defs     as reel_curate_pipeline()'s; the curation stages' defs
 *   extra       in: the stage, copied; its arg (the caller's, not o) must
 *               stay valid until the run ends, its name must be none of the
 *               curation stages'
 *   extra_opts  in: its resources and workers (NULL: the def's), as
 *               reel_pipeline_add() takes them; gather is refused (the
 *               writer gathers). Its CPU share (extra_opts->cpus, else
 *               extra->cpus, else 1) is scaled with the others' to fit the
 *               node, as theirs are.
 *   out         out: the pipeline, the caller's to reel_pipeline_free()
 * Returns 0, or -EINVAL with reel_last_error() saying why (after_stage not
 * in o's line, or before the transcoder, or the writer; a gathering extra
 * stage; a duplicate name) and reel_pipeline_add()'s errors. The stages of
 * o's line are the same, with the same resources, as reel_curate_pipeline()
 * makes them. */
REEL_API int reel_curate_pipeline_with(const reel_curate_options *o,
                                       reel_actor_def defs[REEL_CURATE_STAGES],
                                       const reel_actor_def *extra, const char *after_stage,
                                       const reel_stage_options *extra_opts, reel_pipeline **out);

/* Writes processed_videos/<name>.json for a video that failed before the
 * writer saw it (its error), as the writer does for the others. */
REEL_API int reel_curate_record_failure(const reel_curate_options *o, const char *path,
                                        const char *error);

/* What the writer's output object (one per video) says. */
#define REEL_CURATE_PATH_MAX  4096u /* a summary's path, NUL included */
#define REEL_CURATE_ERROR_MAX 1024u /* a summary's error text, NUL included */

typedef struct reel_curate_video_summary {
    uint32_t clips, clips_written, clips_filtered;
    bool partial, failed;
    double duration_s;
    int64_t frames;
    char name[256];                    /* the video's file name */
    char path[REEL_CURATE_PATH_MAX];   /* its path as given to the reader */
    char error[REEL_CURATE_ERROR_MAX]; /* what went wrong ("" if nothing): the
                                          sentences of its processed_videos/ record */
    /* Bytes the stages copied from one store object into another for this
     * video (records rewritten; artifacts pass by ID and count nothing), and
     * the source file's size: reel-curate prints their ratio. */
    uint64_t bytes_copied, source_bytes;
    /* Tensors written (write_tensors), by where the preprocess stage made
     * them: by the CUDA kernel on a GPU, or on the CPU. */
    uint32_t tensors_gpu, tensors_cpu;
} reel_curate_video_summary;

/* Reads a writer output's bytes; -EBADMSG if they are not one. */
REEL_API int reel_curate_read_summary(const void *data, uint64_t size,
                                      reel_curate_video_summary *out);

/* uuid5(NAMESPACE_URL, name) in its canonical text form, as Python's
 * uuid.uuid5(uuid.NAMESPACE_URL, name). Returns 0, or -ENOMEM (out is ""). */
REEL_API int reel_uuid5_url(const char *name, char out[37]);

/* ---- your own stage: the chunks of clips a stage reads and writes --------------
 *
 * Between the transcoder and the writer each item is a chunk: a small record
 * object naming a run of one video's clips, each with its span, what the
 * stages found (motion scores, the filtered flag, errors) and its artifacts -
 * the encoded clip (MP4), its frames, its tensor and its preview, each a
 * store object of its own (reel/actor.h, "artifacts") that the record names
 * by ID and size. A stage of the caller's, inserted with
 * reel_curate_pipeline_with(), does in its process():
 *
 *     reel_clip_chunk *ch;
 *     int rc = reel_clip_chunk_read(ctx, "luma", &in[0], &ch);  // n is 1
 *     for (uint32_t i = 0; rc == 0 && i < reel_clip_chunk_clips(ch); i++) {
 *         reel_view mp4;
 *         if (reel_clip_art_get(ch, i, REEL_CLIP_MP4, &mp4) != 0)
 *             continue;                        // no MP4: an earlier stage said why
 *         bool dark = mean_luma(mp4.data, mp4.size) < 40;
 *         reel_clip_art_release(ch, i, REEL_CLIP_MP4);
 *         if (dark)
 *             rc = reel_clip_filter(ch, i, NULL);  // to filtered_clips/
 *     }
 *     if (rc == 0)
 *         rc = reel_clip_chunk_write(ch, out);
 *     reel_clip_chunk_free(ch);
 *     return rc;
 *
 * examples/luma_filter/ is that stage in full. The stage reads artifacts
 * zero-copy and never copies one: the chunk it writes carries every artifact
 * it names on (reel_actor_carry), and the executor deletes those it no longer
 * names (a filtered clip's frames, tensor and preview) after the task. What
 * is copied is the record, a few hundred bytes a clip, counted in the
 * video's reel_curate_video_summary.bytes_copied.
 *
 * The chunk is the caller's from reel_clip_chunk_read() to
 * reel_clip_chunk_free(), and lives in one worker's process() (it holds the
 * task's context and views into its input). A chunk is not thread-safe. */

typedef struct reel_clip_chunk reel_clip_chunk;

/* A clip's artifacts. */
typedef enum reel_clip_art {
    REEL_CLIP_MP4 = 0,     /* the clip in H.264/MP4 (made by the transcoder) */
    REEL_CLIP_FRAMES = 1,  /* uint8 RGB, HWC: frames_n x frames_h x frames_w x 3 */
    REEL_CLIP_TENSOR = 2,  /* float32, NCHW, normalized: tensor_n x 3 x tensor_h x tensor_w */
    REEL_CLIP_PREVIEW = 3, /* a JPEG image */
} reel_clip_art;
#define REEL_CLIP_ARTS 4u

/* An artifact as the record names it: an all-zero id and size 0 when the
 * clip has none (not made, or dropped by a stage that said why in errors). */
typedef struct reel_clip_artifact {
    reel_id id;
    uint64_t size; /* bytes */
} reel_clip_artifact;

/* One clip of a chunk, as reel_clip_chunk_clip() fills it. The strings point
 * into the chunk: valid until reel_clip_chunk_free(), or (errors) until the
 * next change to that clip. */
typedef struct reel_clip {
    const char *uuid;               /* uuid5(NAMESPACE_URL, "<path>_<start>_<end>") */
    int64_t start_frame, end_frame; /* [start, end) frame indices in the source */
    double start_s, end_s;          /* the same span in seconds of the source */
    double fps;                     /* the clip's (after transcode; 0 before) */
    int32_t width, height;          /* likewise */
    int64_t num_frames;
    bool filtered;             /* headed for filtered_clips/ (the motion filter, or a stage's) */
    bool has_motion;           /* the motion stage scored it: */
    double motion_global_mean; /*   Curator's global_mean, and */
    double motion_patch_min;   /*   per_patch_min_256 (-1: could not score) */
    uint32_t frames_n, frames_h, frames_w; /* the frames' shape (with the artifact) */
    double frames_fps;
    uint32_t tensor_n, tensor_h, tensor_w;  /* the tensor's (with the artifact) */
    reel_clip_artifact art[REEL_CLIP_ARTS]; /* by reel_clip_art */
    const char *errors; /* what went wrong for it, "a: x; b: y", "" when nothing did */
} reel_clip;

/* What the chunk says of its video and its place in it. path points into the
 * chunk (valid until reel_clip_chunk_free()). */
typedef struct reel_clip_chunk_info {
    const char *path;       /* the source video, as the pipeline's input gave it */
    uint32_t clips;         /* in this chunk (reel_clip_chunk_clips()) */
    uint32_t first_clip;    /* its first clip's index among the video's */
    uint32_t total_clips;   /* the video's */
    uint32_t chunk_index;   /* 0 .. chunk_count - 1 */
    uint32_t chunk_count;   /* the video's chunks */
    double duration_s, fps; /* the source's, as probed */
    int32_t width, height;  /* likewise */
    bool partial;           /* the source decoded only in part */
} reel_clip_chunk_info;

/* Reads a chunk record: one item a stage gets between the transcoder and the
 * writer (in a process() of one input, &in[0]).
 *   ctx    in: the running task's (the store, and the task's error)
 *   stage  in: the stage's name, as clip errors name it ("luma: ..."),
 *          at most REEL_ACTOR_NAME_MAX - 1 bytes
 *   in     in: the item's view; its bytes must stay mapped until
 *          reel_clip_chunk_free() (an input of process() is, until it
 *          returns)
 *   out    out: the chunk, the caller's to reel_clip_chunk_free()
 * Every field is checked (the layout, every offset and length inside the
 * object, counts, shapes against sizes, strings, finite numbers), and each
 * artifact the record names against the store: one that is not there, or is
 * not the size and type the record says, is dropped from its clip with an
 * error in its errors ("luma: its mp4 <hex> is not in the store"), so that
 * what the chunk names can be read and carried on. Returns 0; -EBADMSG (not
 * a chunk record, or a damaged one), -EINVAL (stage too long), -ENOMEM; each
 * with a reel_last_error() sentence, also set as the task's error
 * (reel_actor_set_error) so that a process() may return the code as is. */
REEL_API int reel_clip_chunk_read(reel_actor_ctx *ctx, const char *stage, const reel_view *in,
                                  reel_clip_chunk **out);

/* The clips in the chunk (0 for a video that yielded none: its error is in
 * the record, and the chunk goes on to the writer as it is). 0 for NULL. */
REEL_API uint32_t reel_clip_chunk_clips(const reel_clip_chunk *chunk);

/* What the chunk says of its video. Returns 0. */
REEL_API int reel_clip_chunk_info_get(const reel_clip_chunk *chunk, reel_clip_chunk_info *out);

/* Clip i of the chunk, 0 .. reel_clip_chunk_clips() - 1, into *out (strings:
 * see reel_clip). Returns 0, or -EINVAL (i out of range). */
REEL_API int reel_clip_chunk_clip(reel_clip_chunk *chunk, uint32_t i, reel_clip *out);

/* Maps artifact k of clip i for reading, zero-copy: out->data is the
 * object's bytes (out->size of them, the size the record says; out->meta its
 * reel_meta), read-only, valid until reel_clip_art_release() of the same
 * artifact or reel_clip_chunk_free(), whichever comes first. Getting one
 * already mapped gives the same view. Returns 0, or -EINVAL (i or k out of
 * range), -ENOENT (the clip has no such artifact, or it is no longer in the
 * store), -EBADMSG (the object is not the size or type the record says), and
 * reel_obj_get()'s errors, with a reel_last_error() sentence naming the clip
 * and the artifact. */
REEL_API int reel_clip_art_get(reel_clip_chunk *chunk, uint32_t i, reel_clip_art k, reel_view *out);

/* Releases what reel_clip_art_get() mapped (a no-op when it is not mapped,
 * or i or k is out of range). */
REEL_API void reel_clip_art_release(reel_clip_chunk *chunk, uint32_t i, reel_clip_art k);

/* Marks clip i filtered: the writer puts its MP4 in filtered_clips/, counts
 * it in num_clips_filtered, and writes its metadata with "filtered": true.
 * As the motion filter does, the clip keeps its MP4 and loses its frames,
 * tensor and preview (the stages after it make none for a filtered clip, and
 * the writer writes none: they are not carried on, and the executor deletes
 * them). reason (may be NULL): appended to the clip's errors as "<stage>:
 * filtered: <reason>", so that its metadata says why - and, having an
 * error, "valid": false; NULL filters without a word, as the motion filter
 * does. Filtering a filtered clip again only adds the reason. Returns 0, or
 * -EINVAL (i out of range). */
REEL_API int reel_clip_filter(reel_clip_chunk *chunk, uint32_t i, const char *reason);

/* Appends "<stage>: <text>" to clip i's errors ("a; b", cut at 1023 bytes
 * in all): the clip's metadata then says "valid": false. For a clip the
 * stage could not handle; the clip goes on. Returns 0, -EINVAL (i out of
 * range) or -ENOMEM. */
REEL_API int reel_clip_add_error(reel_clip_chunk *chunk, uint32_t i, const char *text);

/* Writes the chunk, with its changes, as the task's one output item: first
 * every artifact it names is carried on to it (reel_actor_carry, no copy),
 * then the record. Call it once per chunk, in the process() that read it,
 * with that process()'s out. Returns 0, or reel_actor_carry()'s and
 * reel_actor_output()'s errors (-E2BIG: more outputs than a task makes;
 * -EEXIST: written already), with the task's error and reel_last_error()
 * saying why. */
REEL_API int reel_clip_chunk_write(reel_clip_chunk *chunk, reel_actor_out *out);

/* Releases the artifacts still mapped and frees the chunk. NULL is a no-op. */
REEL_API void reel_clip_chunk_free(reel_clip_chunk *chunk);

#ifdef __cplusplus
}
#endif

#endif /* REEL_STAGES_H */
