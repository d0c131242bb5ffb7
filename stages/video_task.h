/*
 * video_task.h - one input video's task as it travels the curation pipeline:
 * a single store object per video, read by each stage zero-copy, rewritten
 * by the stages that add to it. Internal to the stages; never installed.
 *
 * Like NeMo Curator's VideoTask, the task carries everything known of its
 * video so far: the path as given, the file's identity as the reader saw it
 * (the source stays a file that the stages read by range, never bytes in the
 * task), what the probe found, and the clips with what each stage added (the encoded clip, motion
 * scores, frames, tensors, a preview). A stage decodes its input task (views into the input object,
 * no copy), fills a video_task with its additions (pointers to its own buffers, or views it kept
 * from the input), and writes the result once into its output object: vt_size() then vt_write()
 * into reel_actor_output()'s buffer.
 *
 * Layout, little-endian, every offset from the start of the object:
 *
 *   vt_header          magic "REELVT02", sizes, counts, the file's
 *                      identity, the probe
 *   vt_clip_rec[n]     fixed-size records, one per clip
 *   blob area          strings and byte ranges the records and header name
 *                      by (offset, length); 8-byte aligned
 *
 * Validation (vt_read): the magic and version; the object at least as large
 * as the header and the records; every (offset, length) inside the object
 * and not overflowing; every string free of NUL bytes and valid as a C
 * string once copied; counts and shapes bounded (VT_MAX_CLIPS, frames whose
 * n x h x w x 3 equals their byte length, tensors likewise with 4-byte
 * floats); doubles finite. Anything else is -EBADMSG with a sentence in
 * reel_last_error()-style text in the out-parameter's error field.
 */
#ifndef REEL_STAGES_VIDEO_TASK_H
#define REEL_STAGES_VIDEO_TASK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VT_MAGIC     "REELVT02"
#define VT_MAX_CLIPS 100000u
#define VT_TEXT_MAX  1024u /* error texts, at most (longer ones are cut) */
#define VT_UUID_LEN  36u   /* "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" */
#define VT_CODEC_MAX 32u

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

typedef struct vt_clip {
    char uuid[VT_UUID_LEN + 1];     /* uuid5(NAMESPACE_URL, "<path>_<start>_<end>") */
    int64_t start_frame, end_frame; /* [start, end) frame indices in the source */
    double start_s, end_s;          /* frame / fps */
    vt_bytes mp4;                   /* the clip in H.264/MP4, after transcode */
    int32_t width, height;          /* the clip's, after transcode */
    double fps;
    int64_t num_frames;
    bool has_motion; /* motion filter ran */
    double motion_global_mean, motion_patch_min;
    bool filtered;   /* below the motion thresholds */
    vt_bytes frames; /* uint8 HWC, frames_n x frames_h x frames_w x 3 */
    uint32_t frames_n, frames_h, frames_w;
    double frames_fps;
    vt_bytes tensor; /* float32 NCHW, normalized, tensor_n x 3 x tensor_h x tensor_w */
    uint32_t tensor_n, tensor_h, tensor_w;
    vt_bytes preview; /* a JPEG image */
    vt_bytes errors;  /* text, "" when none */
} vt_clip;

typedef struct video_task {
    vt_bytes path; /* the input path as given (not NUL-terminated in the object) */
    vt_probe probe;
    vt_file file;   /* the source file's identity as the reader saw it */
    bool partial;   /* the video decoded only in part */
    vt_bytes error; /* why the video yielded nothing, "" when it did */
    uint32_t n_clips;
    vt_clip *clips; /* n_clips entries; vt_read allocates, vt_free frees */
} video_task;

/* Reads a task from an object's bytes. The views in *out point into data,
 * which must outlive them. Returns 0, -ENOMEM, or -EBADMSG with why[0..cap)
 * saying what was wrong. */
int vt_read(const void *data, uint64_t size, video_task *out, char *why, size_t cap);

/* Bytes vt_write needs for t. */
uint64_t vt_size(const video_task *t);

/* Writes t into buf (cap >= vt_size(t)). Returns 0, or -ENOSPC. */
int vt_write(const video_task *t, void *buf, uint64_t cap);

/* Frees what vt_read allocated (the clip array), not the views. */
void vt_free(video_task *t);

/* Copies a view's text into buf as a C string (cut to cap - 1 bytes). */
const char *vt_text(vt_bytes b, char *buf, size_t cap);

#endif
