/*
 * media.h - the stages' glue to FFmpeg's libraries: demuxing and decoding a
 * video file read by range or a clip held in memory (a store object), and
 * encoding frames to H.264 in an MP4 held in memory. Internal to the stages;
 * never installed.
 *
 * FFmpeg never opens anything by name: input comes through a custom
 * AVIOContext, either read and seek over a buffer (no copy of the whole) or
 * pread() by range on the one file descriptor media_open_file() opened, so
 * a video of any size needs no more memory than the demuxer's buffers; a
 * demuxer that asks to open another file or URL is refused. The encoder's
 * MP4 goes to a growing heap buffer that the caller then copies once into
 * its output object.
 *
 * Errors: 0 or a negative code (AVERROR values turned into -errno where they
 * are one, else -EIO; -EINVAL for bad arguments; -ENOMEM); why[0..cap) gets
 * one sentence (FFmpeg's av_strerror text included).
 *
 * Frame indices: frames are numbered 0, 1, 2, ... in presentation order as
 * the decoder returns them (not from timestamps), so that a clip [start, end)
 * means the same frames to every stage and to the tests.
 *
 * FFmpeg's log: media.c installs a log callback once per process that prints
 * nothing (a library does not print) and keeps the last error line for the
 * why sentences; REEL_FFMPEG_LOG=1 in the environment also prints FFmpeg's
 * lines as usual.
 */
#ifndef REEL_STAGES_MEDIA_H
#define REEL_STAGES_MEDIA_H

#include "video_task.h"

#include <libavcodec/codec_par.h>
#include <libavcodec/packet.h>
#include <libavutil/frame.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct media_input media_input;

/* How media_open() sets up the decoder; NULL stands for all zero. */
typedef struct media_open_options {
    int threads;     /* decoding threads: 0 or 1 for one */
    bool export_mvs; /* the decoder attaches each frame's motion vectors as
                      * AV_FRAME_DATA_MOTION_VECTORS side data (an array of
                      * AVMotionVector), as PyAV's flags2 +export_mvs; decoders
                      * that have none (an I-frame, or a codec without them:
                      * VP9, MJPEG, ...) attach nothing */
    bool fast;       /* skip the in-loop deblocking filter and allow the
                      * decoder's non-bit-exact shortcuts (FFmpeg's
                      * -skip_loop_filter all -flags2 fast): for frames that
                      * are scaled down or previewed, never re-encoded */
    bool hwaccel;    /* decode on an NVIDIA GPU (NVDEC: libavcodec's CUDA
                      * hwaccel); frames are copied back into system memory
                      * before the callback sees them, so callers read them
                      * as any other. Where the codec has no CUDA decoder in
                      * this FFmpeg the open fails with -ENOTSUP, where no
                      * CUDA device opens with -ENODEV, why naming the reason:
                      * never a silent decode on the CPU. A stream NVDEC
                      * refuses (its profile, its size) is decoded by the CPU,
                      * as FFmpeg's -hwaccel cuda does. */
} media_open_options;

/* Opens the video stream of a container held in data[0..size) (which must
 * outlive the media_input) and its decoder, set up as o says (NULL: one
 * thread, nothing exported).
 * Fails with -EINVAL and a sentence for bytes that are not a video FFmpeg
 * can read: no stream found, no video stream, an unsupported codec. */
int media_open(const uint8_t *data, uint64_t size, const media_open_options *o, media_input **out,
               char *why, size_t cap);

/* Opens the video stream of the file at path, read by range (pread() on a
 * descriptor opened O_RDONLY | O_CLOEXEC and kept until media_close()), as
 * media_open() opens bytes in memory, with the same refusals. expect (may be
 * NULL) is the identity the file must still have (vt_file: size, mtime,
 * inode, device: a task's file as the reader saw it); so must it at every
 * later media_decode(), before and after it reads. Errors: -errno from
 * open()/fstat() ("<path>: cannot open: ..."); -EISDIR or -EINVAL for what
 * is not a regular file, -EINVAL for an empty one; -ESTALE, why "<path>
 * changed since it was read", for a file that is not what expect says (or,
 * in media_decode(), no longer what it was when opened); else media_open()'s.
 * num_bytes in the probe is the file's size. */
int media_open_file(const char *path, const vt_file *expect, const media_open_options *o,
                    media_input **out, char *why, size_t cap);

/* The identity of m's file as media_open_file() found it (all zero for
 * bytes in memory). */
void media_file_id(const media_input *m, vt_file *out);

/* What the container and stream say: container and codec names, duration,
 * average frame rate, width, height, num_frames (from the stream when it
 * says, else duration x fps, rounded), num_bytes = size.
 * duration_s is the video stream's own duration when the container gives
 * one (MP4/MOV), else the container's (WebM/Matroska: all streams, audio
 * included). fps is the stream's average rate, else FFmpeg's guess; 0 when
 * neither is known. num_frames is an estimate without a frame index: count
 * them with media_decode() when it matters. */
void media_probe(const media_input *m, vt_probe *out);

/* The bit rate Curator encodes a clip of m's video at with
 * use_input_bit_rate: "-b:v <k>K", k = the stream's bit_rate / 1024
 * (truncated), or 2000 where the stream does not say; in bits a second. */
int64_t media_curator_bit_rate(const media_input *m);

/* The frame count Curator takes for a video of probe p
 * (extract_video_metadata): int(duration x average rate), the duration as
 * ffprobe prints it ("%f", 6 decimals). Curator's spans and UUIDs come from
 * it; it can differ from the frames there are (a variable rate: 242 where
 * the container counts 243; 40 frames at 30 fps: 39). 0 when p has no
 * duration or rate. */
int64_t media_curator_frames(const vt_probe *p);

/* Frames the last media_decode() on m decoded and dropped before its
 * start: start itself when it decoded from the first frame, fewer when it
 * seeked. */
int64_t media_decoded_before(const media_input *m);

/* The container's own duration in seconds, over all its streams (PyAV's
 * container.duration / 1e6), as it was when media_open() read it; 0 when
 * the container does not say. media_probe()'s duration_s prefers the video
 * stream's; the motion filter takes this one, as Curator does. */
double media_container_duration_s(const media_input *m);

/* Calls fn for every decoded frame with index in [start, end) (end < 0: to
 * the end), in order; frames before start are decoded and dropped (frame
 * accurate, whatever the keyframes). fn returns 0 to go on, > 0 to stop
 * early (not an error), < 0 to fail with that code. The frame is the
 * decoder's (valid during the call only).
 * *partial (out, may be NULL) is set when decoding stopped on damaged or
 * truncated data after at least one frame: the frames before it were
 * delivered and the call returns 0, with why saying what went wrong.
 * Returns 0, fn's negative code, the decoder's error when not even one
 * frame could be decoded, or -ESTALE for a file that changed (checked
 * before and after the frames are read: frames of a file rewritten while it
 * was read may already have reached fn, and the caller drops them). Each
 * call decodes from the start of the stream.
 *
 * A start far into the video seeks first, where the frame numbering stays
 * exact: to the last keyframe SEEK_MARGIN (16) or more frames before start
 * that the demuxer's index places (MP4 and MOV index every frame; a stream
 * without such an index, or a keyframe with leading pictures, decodes from
 * the first frame as before). media_decoded_before() says how many frames
 * before start were decoded.
 *
 * Notes for callers:
 * - Each call after the first re-opens the container and decoder (so that
 *   every call sees exactly the same frames): to handle several clips of a
 *   video, make ONE call over [first start, last end) and dispatch frames by
 *   index in fn, rather than one call per clip (which decodes the head of
 *   the video again each time).
 * - end == start, or a start past the last frame: 0 with no frame delivered;
 *   likewise a stream that ends cleanly without a frame. Count in fn.
 * - partial comes from a demuxer or decoder error (including a packet cut
 *   short), or from the data ending before the container's index or duration
 *   says the video does (cut files: MP4 with its moov first, WebM). An MP4
 *   whose moov came last and was cut does not open at all (media_open fails).
 * - frame's pixel format is the decoder's own (yuv420p, yuv444p, yuvj422p
 *   for MJPEG, ...): use media_frame_to_rgb() or media_encode_frame(), which
 *   take any. */
int media_decode(media_input *m, int64_t start, int64_t end,
                 int (*fn)(void *arg, int64_t index, const AVFrame *frame), void *arg,
                 bool *partial, char *why, size_t cap);

void media_close(media_input *m);

/* The source's sound, as media_audio() finds it: par (NULL: no audio
 * stream; else the caller's, freed with avcodec_parameters_free()) and the
 * time base of its packets. */
typedef struct media_audio_info {
    AVCodecParameters *par;
    AVRational time_base;
    bool reencoded; /* the packets are AAC made here: the MP4 muxer did not take the codec */
} media_audio_info;

/* Reads the packets of m's audio stream (the one FFmpeg deems best beside
 * the video) whose timestamps lie in [start_s, end_s), in order, without
 * decoding them, and hands each to fn (valid during the call; fn returns 0
 * to go on, > 0 to stop, < 0 to fail with that code). A codec the MP4 muxer
 * does not take as it is (PCM, say) is decoded and re-encoded to AAC
 * (128 kb/s, its rate, mono or stereo) instead, as ffmpeg would for an MP4:
 * info->reencoded, and the packets are those, timed as the source's
 * samples. A container without
 * sound is 0 with info->par NULL and no call. Seeks first (the demuxer's
 * own seek), reading only that stream; damaged data ends the sound there,
 * without an error. Like media_decode(), it opens the container afresh and
 * fails with -ESTALE for a file that changed. */
int media_audio(media_input *m, double start_s, double end_s, media_audio_info *info,
                int (*fn)(void *arg, const AVPacket *pkt), void *arg, char *why, size_t cap);

/* Whether the MP4 muxer takes par's codec as it is (a stream copy). */
bool media_mp4_takes(const AVCodecParameters *par);

/* Converts a decoded frame to packed RGB24 of w x h (bilinear scaling)
 * into dst (w * h * 3 bytes, rows packed with no padding). Returns 0 or a
 * negative code (-EINVAL: no picture, a size of 0 or above 16384, dst NULL).
 * It makes a scaler per call (cheap next to decoding, but not free). */
int media_frame_to_rgb(const AVFrame *frame, uint32_t w, uint32_t h, uint8_t *dst);

/* ---- encoding --------------------------------------------------------------- */

typedef struct media_output media_output;

typedef struct media_encode_options {
    const char *encoder; /* "libx264" */
    const char *preset;  /* "veryfast" */
    int32_t crf;         /* 23 */
    int threads;         /* 0 or 1: one */
    int32_t width, height;
    double fps;       /* the source's: frames get timestamps index / fps */
    int64_t bit_rate; /* bits a second in place of crf (average bit rate); 0: crf */
    /* The source's sound, copied into the clip as it is (media_encode_audio):
     * NULL for none; a codec the MP4 muxer does not take is -EINVAL. */
    const AVCodecParameters *audio;
    AVRational audio_time_base; /* of the packets given */
} media_encode_options;

/* Starts an H.264 MP4 in memory. Frames of any pixel format and size are
 * converted to the encoder's (yuv420p at width x height).
 * width and height must be even (yuv420p), 2..16384: an odd size is -EINVAL
 * (round it down before); fps in (0, 1000], crf 0..51; preset and crf are
 * the encoder's private options (libx264's names; an encoder without them
 * is -EINVAL naming it). The MP4's time base is 1/fps as a fraction
 * (av_d2q: 30000/1001 stays exact). An NVENC encoder (a name ending in
 * "_nvenc", as h264_nvenc) has neither libx264 option: crf is its constant
 * quality (rc vbr, cq crf, no bit-rate cap), and an x264 preset name is
 * taken to NVENC's p1 (ultrafast) .. p7 (slower, veryslow, placebo); other
 * names go to it as they are. *out is freed with media_encode_free(),
 * also after a failed media_encode_frame()/finish(). */
int media_encode_start(const media_encode_options *o, media_output **out, char *why, size_t cap);

/* Whether encoder names an NVENC encoder (ends in "_nvenc": h264_nvenc). */
bool media_is_nvenc(const char *encoder);

/* Whether this FFmpeg has a video encoder of that name (a lookup only: it
 * opens nothing, so it touches no GPU). */
bool media_has_encoder(const char *encoder);

/* Whether this FFmpeg was built with CUDA devices (hardware decoding's
 * hwcontext). A lookup only: it loads no driver and opens no device. */
bool media_has_cuda(void);

/* Encodes one frame (the next in the clip): its timestamp is its index in
 * the clip / fps; the frame's own pts, picture type and size are ignored
 * (it is scaled). The caller keeps the frame (a decoder's frame is fine). */
int media_encode_frame(media_output *e, const AVFrame *frame, char *why, size_t cap);

/* Copies one packet of the source's sound into the clip (options.audio),
 * its timestamps less offset (the clip's start, in the packets' time
 * base). The caller keeps pkt. */
int media_encode_audio(media_output *e, const AVPacket *pkt, int64_t offset, char *why, size_t cap);

/* Flushes the encoder and finishes the MP4 (moov at the front, so a player
 * can start at once); *data and *size (out) are the file's bytes, owned by e
 * until media_encode_free(). Once only; -ENODATA when no frame was encoded. */
/* The picture the last media_encode_frame() handed the encoder: the frame as
 * converted to yuv420p at the encoder's size, the clip's own pixels before
 * compression (NULL before the first frame). The encoder's, read-only; valid
 * until the next media_encode_frame(), finish or free. */
const AVFrame *media_encode_picture(const media_output *e);

int media_encode_finish(media_output *e, const uint8_t **data, uint64_t *size, char *why,
                        size_t cap);

void media_encode_free(media_output *e);

/* Encodes one RGB24 image (w x h, rows packed; any size up to 16384, odd
 * included) as a JPEG into a malloc'd buffer (*out, *size; free() it).
 * quality: 1..100 (clamped), higher is finer, as libjpeg's; mapped onto the
 * mjpeg encoder's qscale 31..2. */
int media_jpeg(const uint8_t *rgb, uint32_t w, uint32_t h, int quality, uint8_t **out,
               uint64_t *size, char *why, size_t cap);

#endif
