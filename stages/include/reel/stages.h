/*
 * reel/stages.h - the video-curation stages, after NeMo Curator's video
 * pipeline, as ordinary stage actors (reel/actor.h) on FFmpeg's libraries.
 *
 *   reader -> splitter -> transcoder -> motion [-> frames [-> preprocess]]
 *          [-> preview] -> writer
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
 * once; the writer gathers (reel_stage_options.gather) every chunk of one
 * video into one task, writes each clip's files and, once, the video's
 * record in processed_videos/ (a chunk that never came, a stage having
 * failed on it under ignore_failures, is recorded there as failed clips).
 * Its output is a small summary object. Each clip's MP4, frames, tensor and
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
 * `reel-curate` is its command-line face. Each stage's setup reads the
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
     * automatic, as few clips as can be (1), so long as a video makes at
     * most REEL_TASK_MAX_OUTPUTS items and an item's clip artifacts (an MP4
     * each, and frames, tensor, preview as made) with its record fit the
     * REEL_TASK_MAX_OUTPUTS outputs of a task. A value whose chunk cannot
     * fit them is refused; a video with more chunks than a task can output
     * gets larger ones. */
    uint32_t clips_per_chunk;

    /* Transcoding: H.264 in MP4 through libavcodec. An NVENC encoder
     * ("h264_nvenc", Curator's name) encodes on the GPU: crf is its constant
     * quality and an x264 preset its p1..p7 (see reel_curate_pipeline()). */
    const char *encoder; /* "libx264" */
    const char *preset;  /* "veryfast" */
    int32_t crf;         /* 23 */
    /* Decode on the GPU (NVDEC, libavcodec's CUDA hwaccel; Curator's
     * use_hwaccel, reel-curate's --transcode-use-hwaccel). Never a silent
     * CPU fallback: reel_curate_pipeline() refuses it where this FFmpeg has
     * no CUDA or the node no GPU, and a transcoder whose CUDA device does
     * not open fails the video, naming the reason. (false) */
    bool use_hwaccel;
    /* Threads per clip's encoder (Curator's encoder_threads). 0, the default:
     * 2 where the transcoder may run on 2 CPUs or more, else 1 - libx264
     * does 1.75 times the work on 2 threads, so that a lone transcoder (one
     * video, or a 2-CPU node) uses the node as `ffmpeg -threads 0` does,
     * while more clips at once on more workers scale better than more
     * threads per clip. */
    uint32_t encode_threads;
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
    bool write_frames;     /* write each clip's frames (false) */
    bool write_tensors;    /* write each clip's tensor (false; made of frames, written or not) */
    bool previews;         /* previews/<uuid>/preview.jpg, one per clip (true) */
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
 * (which must outlive the run). Returns n, 5 to REEL_CURATE_STAGES (0 when
 * o or defs is NULL). Stage names, those in brackets only when o needs
 * them (see write_frames, write_tensors, previews above): "reader",
 * "splitter", "transcoder", "motion", ["frames"], ["preprocess"],
 * ["preview"], "writer". */
#define REEL_CURATE_STAGES 8u /* the most there can be */
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

/* Writes processed_videos/<name>.json for a video that failed before the
 * writer saw it (its error), as the writer does for the others. */
REEL_API int reel_curate_record_failure(const reel_curate_options *o, const char *path,
                                        const char *error);

/* What the writer's output object (one per video) says. */
typedef struct reel_curate_video_summary {
    uint32_t clips, clips_written, clips_filtered;
    bool partial, failed;
    double duration_s;
    int64_t frames;
    char name[256]; /* the video's file name */
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

#ifdef __cplusplus
}
#endif

#endif /* REEL_STAGES_H */
