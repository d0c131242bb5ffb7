/*
 * video_task.h - one chunk of an input video's clips as it travels the
 * curation pipeline: a small record object, read by each stage zero-copy,
 * rewritten by the stages that add to it. Internal to the stages; never
 * installed.
 *
 * Like NeMo Curator's VideoTask, the record carries everything known of its
 * video so far: the path as given, the file's identity as the reader saw it
 * (the source stays a file that the stages read by range, never bytes in the
 * record), what the probe found, and a contiguous run of the video's clips
 * (a chunk: the splitter cuts a video into chunk_count of them, so that the
 * clips of one video are worked on by every worker of a stage at once; the
 * writer gathers them again) with what each stage added: motion scores,
 * errors, and the clip's artifacts. An artifact - the encoded clip (MP4), its
 * frames (uint8 HWC), its tensor (float32 NCHW), its preview (JPEG) - is a
 * store object of its own (reel_actor_artifact), typed with a reel_meta; the
 * record holds its ID and size only, so that a stage that rewrites the
 * record copies none of them (reel_actor_carry passes them on) and a stage
 * that reads one gets it zero-copy (stage_art_get). Artifact IDs come from
 * another process: a stage checks each against the store before it reads it.
 *
 * A stage decodes its input record (views into the input object, no copy),
 * fills a video_task with its additions, and writes the result once into its
 * output object: vt_size() then vt_write() into reel_actor_output()'s buffer.
 *
 * Layout, little-endian, every offset from the start of the object:
 *
 *   vt_header          magic "REELVT03", sizes, counts, the chunk, the bytes
 *                      copied so far, the file's identity, the probe
 *   vt_clip_rec[n]     fixed-size records, one per clip of the chunk, with
 *                      its artifacts' IDs and sizes
 *   blob area          strings the records and header name by (offset,
 *                      length); 8-byte aligned
 *
 * Validation (vt_read): the magic and version; the object at least as large
 * as the header and the records; every (offset, length) inside the object
 * and not overflowing; every string free of NUL bytes and valid as a C
 * string once copied; counts and shapes bounded (VT_MAX_CLIPS, chunk_index <
 * chunk_count <= VT_MAX_CHUNKS, first_clip + n_clips <= total_clips <=
 * VT_MAX_CLIPS, frames whose n x h x w x 3 equals their artifact's size,
 * tensors likewise with 4-byte floats, an artifact with an ID exactly when
 * it has a size); doubles finite. Anything else is -EBADMSG with a sentence
 * in reel_last_error()-style text in the out-parameter's error field. That
 * an artifact's ID names an object of that size and type is checked when it
 * is read (stage_art_get), not here: the record alone cannot say.
 */
#ifndef REEL_STAGES_VIDEO_TASK_H
#define REEL_STAGES_VIDEO_TASK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <reel/store.h>

#define VT_MAGIC      "REELVT03"
#define VT_MAX_CLIPS  100000u
#define VT_MAX_CHUNKS 4096u /* chunks of one video, at most (the pipeline makes far fewer) */
#define VT_TEXT_MAX   1024u /* error texts, at most (longer ones are cut) */
#define VT_UUID_LEN   36u   /* "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" */
#define VT_CODEC_MAX  32u

/* A byte range: a view into an object or a buffer the stage owns. */
typedef struct vt_bytes {
    const uint8_t *data;
    uint64_t size;
} vt_bytes;

/* What libavformat found (the reader fills it). */
typedef struct vt_probe {
    char container[VT_CODEC_MAX]; /* "mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", ... */
    char codec[VT_CODEC_MAX];     /* "h264", "vp9", ... */
    double duration_s;
    double fps; /* average frame rate */
    int32_t width, height;
    int64_t num_frames; /* counted or estimated (duration x fps) */
    uint64_t num_bytes; /* of the file */
} vt_probe;

/* The source file as the reader found it (fstat): a stage that opens it
 * again (media_open_file) checks that it still is, so that a file changed
 * since it was read is reported, never mis-read. size 0: no file was read. */
typedef struct vt_file {
    uint64_t size;    /* bytes */
    int64_t mtime_ns; /* last modification, ns since the epoch */
    uint64_t ino, dev;
} vt_file;

/* A clip's artifact: a store object of its own, named in the record by ID
 * and size. data is not in the record: it is the bytes while a stage has
 * them in hand (its view of the object from stage_art_get, or the buffer of
 * one it is making), NULL otherwise. An all-zero ID: no artifact. */
typedef struct vt_art {
    reel_id id;
    uint64_t size;
    const uint8_t *data;
} vt_art;

/* Whether a has an object (a nonzero ID). */
bool vt_art_present(const vt_art *a);

typedef struct vt_clip {
    char uuid[VT_UUID_LEN + 1];     /* uuid5(NAMESPACE_URL, "<path>_<start>_<end>") */
    int64_t start_frame, end_frame; /* [start, end) frame indices in the source */
    double start_s, end_s;          /* frame / fps */
    vt_art mp4;                     /* the clip in H.264/MP4, after transcode */
    int32_t width, height;          /* the clip's, after transcode */
    double fps;
    int64_t num_frames;
    bool has_motion; /* motion filter ran */
    double motion_global_mean, motion_patch_min;
    bool filtered;       /* below the motion thresholds */
    bool written;        /* its MP4 is in clips/ or filtered_clips/ (the clip writer) */
    bool tensor_written; /* and its tensor in metas/v0/ (tensor_gpu: made on the GPU) */
    vt_art frames;       /* uint8 HWC, frames_n x frames_h x frames_w x 3 */
    uint32_t frames_n, frames_h, frames_w;
    double frames_fps;
    vt_art tensor; /* float32 NCHW, normalized, tensor_n x 3 x tensor_h x tensor_w */
    uint32_t tensor_n, tensor_h, tensor_w;
    bool tensor_gpu; /* the tensor was made by the CUDA kernel (else on the CPU) */
    vt_art preview;  /* a JPEG image */
    vt_bytes errors; /* text, "" when none */
} vt_clip;

typedef struct video_task {
    vt_bytes path; /* the input path as given (not NUL-terminated in the object) */
    vt_probe probe;
    vt_file file;   /* the source file's identity as the reader saw it */
    bool partial;   /* the video decoded only in part */
    vt_bytes error; /* why the video yielded nothing, "" when it did */
    /* The chunk: clips [first_clip, first_clip + n_clips) of the video's
     * total_clips, chunk chunk_index of chunk_count. vt_write writes a
     * chunk_count of 0 as 1 and a total_clips below first_clip + n_clips as
     * that sum (a whole video in one record). */
    uint32_t chunk_index, chunk_count;
    uint32_t first_clip, total_clips;
    /* Bytes the stages so far copied from an input store object into an
     * output one, summed along this chunk's way (stage_write_task adds each
     * stage's): the records rewritten, never an artifact. */
    uint64_t bytes_copied;
    uint32_t n_clips;
    vt_clip *clips; /* n_clips entries; vt_read allocates, vt_free frees */
    /* Not in the record: error texts a reader of the record made for its
     * clips (n_clips x VT_TEXT_MAX, or NULL), which vt_free frees too. */
    char *clip_texts;
} video_task;

/* Reads a task from an object's bytes. The views in *out point into data,
 * which must outlive them. Returns 0, -ENOMEM, or -EBADMSG with why[0..cap)
 * saying what was wrong. */
int vt_read(const void *data, uint64_t size, video_task *out, char *why, size_t cap);

/* Bytes vt_write needs for t. */
uint64_t vt_size(const video_task *t);

/* Writes t into buf (cap >= vt_size(t)). Returns 0, or -ENOSPC. */
int vt_write(const video_task *t, void *buf, uint64_t cap);

/* Frees what vt_read allocated (the clip array) and clip_texts, not the
 * views. */
void vt_free(video_task *t);

/* Copies a view's text into buf as a C string (cut to cap - 1 bytes). */
const char *vt_text(vt_bytes b, char *buf, size_t cap);

#endif
