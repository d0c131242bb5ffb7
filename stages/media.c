/*
 * media.c - FFmpeg glue for the stages: see media.h.
 *
 * Input: a custom AVIOContext reads and seeks over the caller's buffer (an
 * encoded clip in a store object) or over a file by range (pread on a
 * descriptor opened once), so libavformat never opens anything by name:
 * neither a file nor a URL, whatever the bytes say. Output: a custom
 * AVIOContext writes into a growing heap buffer; for +faststart, movenc
 * re-opens "the file" for reading once the data is written (to shift it
 * behind the moov), so the output context answers io_open with a read
 * context over that same buffer.
 *
 * FFmpeg's own log lines are kept, not printed (a library does not print):
 * a log callback installed once keeps the last error line, and the why
 * sentences quote it beside av_strerror()'s text, because it is usually the
 * more useful of the two ("moov atom not found"). REEL_FFMPEG_LOG=1 in the
 * environment prints them as well, through FFmpeg's default callback.
 */
#include "media.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/hwcontext.h>
#include <libavutil/imgutils.h>
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>
#include <libavutil/audio_fifo.h>
#include <libavutil/channel_layout.h>
#include <libswresample/swresample.h>
#include <libswscale/swscale.h>

#define IO_BUF_SIZE (64 * 1024)
#define MAX_SIDE    16384 /* pixels: the largest frame side media.c accepts */

/* ---- FFmpeg's log lines and error sentences ---------------------------------- */

static pthread_once_t log_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_last[256];
static int log_echo;
/* A demuxer logs in the thread that calls it: an error it logs while
 * media_decode() reads is how a cut or damaged file shows itself when the
 * demuxer then reports a plain end of file (Matroska: "File ended
 * prematurely"). */
static _Thread_local const void *watch_ctx;
static _Thread_local bool watch_hit;
static _Thread_local char watch_line[192];

static void log_cb(void *avcl, int level, const char *fmt, va_list vl) {
    if (log_echo) {
        va_list copy;
        va_copy(copy, vl);
        av_log_default_callback(avcl, level, fmt, copy);
        va_end(copy);
    }
    if (level > AV_LOG_ERROR)
        return;
    char line[sizeof log_last];
    int prefix = 0;
    if (av_log_format_line2(avcl, level, fmt, vl, line, sizeof line, &prefix) < 0)
        return;
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' '))
        line[--n] = '\0';
    if (!n)
        return;
    if (avcl && avcl == watch_ctx && !watch_hit) {
        watch_hit = true;
        snprintf(watch_line, sizeof watch_line, "%.*s", (int)sizeof watch_line - 1, line);
    }
    pthread_mutex_lock(&log_mu);
    memcpy(log_last, line, n + 1);
    pthread_mutex_unlock(&log_mu);
}

static void log_install(void) {
    const char *e = getenv("REEL_FFMPEG_LOG");
    log_echo = e && *e && strcmp(e, "0") != 0;
    av_log_set_callback(log_cb);
}

/* Forgets the last log line: called before the FFmpeg calls whose failure
 * may quote it. */
static void log_clear(void) {
    pthread_once(&log_once, log_install);
    pthread_mutex_lock(&log_mu);
    log_last[0] = '\0';
    pthread_mutex_unlock(&log_mu);
}

/* -errno for an AVERROR that is one, else -EIO. */
static int av_to_rc(int averr) {
    if (averr == AVERROR(ENOMEM))
        return -ENOMEM;
    if (averr < 0 && averr > -4096)
        return averr;
    return -EIO;
}

static void say(char *why, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void say(char *why, size_t cap, const char *fmt, ...) {
    if (!why || !cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, cap, fmt, ap);
    va_end(ap);
}

/* Writes "<what>: <FFmpeg's error text> (<its last log line>)" into why and
 * returns rc (0: av_to_rc(averr)). */
static int fail(char *why, size_t cap, int averr, int rc, const char *what) {
    char err[AV_ERROR_MAX_STRING_SIZE + 64];
    if (av_strerror(averr, err, sizeof err) < 0)
        snprintf(err, sizeof err, "error %d", averr);
    char last[sizeof log_last];
    pthread_mutex_lock(&log_mu);
    memcpy(last, log_last, sizeof last);
    pthread_mutex_unlock(&log_mu);
    if (last[0] && !strstr(err, last) && !strstr(what, last))
        say(why, cap, "%s: %s (%s)", what, err, last);
    else
        say(why, cap, "%s: %s", what, err);
    return rc ? rc : av_to_rc(averr);
}

/* ---- a buffer as an AVIOContext ------------------------------------------------- */

/* Reading and seeking over [data, data + size); pos is where the next read starts. */
typedef struct mem_reader {
    const uint8_t *data;
    uint64_t size, pos;
} mem_reader;

static int mem_read(void *opaque, uint8_t *buf, int n) {
    mem_reader *r = opaque;
    if (r->pos >= r->size)
        return AVERROR_EOF;
    uint64_t left = r->size - r->pos;
    size_t k = (uint64_t)n < left ? (size_t)n : (size_t)left;
    memcpy(buf, r->data + r->pos, k);
    r->pos += k;
    return (int)k;
}

/* whence: SEEK_SET/CUR/END, AVSEEK_SIZE (the size), AVSEEK_FORCE ignored.
 * Positions past the end are refused: the demuxer then knows the data ends. */
static int64_t seek_in(uint64_t size, uint64_t *pos, int64_t offset, int whence) {
    if (whence & AVSEEK_SIZE)
        return (int64_t)size;
    whence &= ~AVSEEK_FORCE;
    int64_t base;
    switch (whence) {
    case SEEK_SET:
        base = 0;
        break;
    case SEEK_CUR:
        base = (int64_t)*pos;
        break;
    case SEEK_END:
        base = (int64_t)size;
        break;
    default:
        return AVERROR(EINVAL);
    }
    if ((offset > 0 && base > INT64_MAX - offset) || base + offset < 0 ||
        (uint64_t)(base + offset) > size)
        return AVERROR(EINVAL);
    *pos = (uint64_t)(base + offset);
    return (int64_t)*pos;
}

static int64_t mem_seek(void *opaque, int64_t offset, int whence) {
    mem_reader *r = opaque;
    return seek_in(r->size, &r->pos, offset, whence);
}

/* A read context of IO_BUF_SIZE over opaque (which must outlive it): a
 * buffer, a file, an output read again. NULL when out of memory. */
static AVIOContext *read_avio(void *opaque, int (*read)(void *, uint8_t *, int),
                              int64_t (*seek)(void *, int64_t, int)) {
    uint8_t *buf = av_malloc(IO_BUF_SIZE);
    if (!buf)
        return NULL;
    AVIOContext *io = avio_alloc_context(buf, IO_BUF_SIZE, 0, opaque, read, NULL, seek);
    if (!io)
        av_free(buf);
    return io;
}

/* The context's buffer may have been replaced by FFmpeg: free the current one. */
static void avio_free(AVIOContext **io) {
    if (*io) {
        av_freep(&(*io)->buffer);
        avio_context_free(io);
    }
}

/* ---- decoding ---------------------------------------------------------------- */

struct media_input {
    mem_reader src; /* data NULL: the file fd, read by range (src.size and pos still hold) */
    int fd;         /* -1: bytes in memory */
    vt_file id;     /* the file as opened: each open and decode checks it still is */
    char *path;     /* for the why sentences */
    media_open_options opts;
    AVIOContext *io;
    AVFormatContext *fmt;
    AVCodecContext *dec;
    int stream;
    bool used;                   /* a decode has read from it: the next one opens afresh */
    vt_probe probe;              /* taken at the first open */
    double container_duration_s; /* likewise */
    AVPacket *pkt;
    AVFrame *frame;
    int64_t skipped; /* frames the last decode decoded before its start */
    /* Hardware decode (opts.hwaccel): the CUDA device, made once per input and
     * kept across the decoder's re-opens; the frame each GPU picture is
     * copied into, in system memory. */
    AVBufferRef *hw_device;
    AVFrame *sw_frame;
};

static void input_close(media_input *m) {
    avcodec_free_context(&m->dec);
    avformat_close_input(&m->fmt);
    avio_free(&m->io);
    m->used = false;
}

/* ---- a file by range as an AVIOContext ---------------------------------------------- */

static int file_read(void *opaque, uint8_t *buf, int n) {
    media_input *m = opaque;
    mem_reader *r = &m->src;
    if (r->pos >= r->size)
        return AVERROR_EOF;
    uint64_t left = r->size - r->pos;
    size_t k = (uint64_t)n < left ? (size_t)n : (size_t)left;
    ssize_t got;
    do
        got = pread(m->fd, buf, k, (off_t)r->pos);
    while (got < 0 && errno == EINTR);
    if (got < 0)
        return AVERROR(errno);
    if (got == 0) /* the file is shorter than it was: media_decode says it changed */
        return AVERROR_EOF;
    r->pos += (uint64_t)got;
    return (int)got;
}

static int64_t file_seek(void *opaque, int64_t offset, int whence) {
    media_input *m = opaque;
    return seek_in(m->src.size, &m->src.pos, offset, whence);
}

static vt_file file_id(const struct stat *st) {
    return (vt_file){.size = (uint64_t)st->st_size,
                     .mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec,
                     .ino = (uint64_t)st->st_ino,
                     .dev = (uint64_t)st->st_dev};
}

static bool same_file(const vt_file *a, const vt_file *b) {
    return a->size == b->size && a->mtime_ns == b->mtime_ns && a->ino == b->ino && a->dev == b->dev;
}

/* Whether m's file is still the one it opened (bytes in memory always are);
 * -ESTALE with why saying so when it is not. */
static int file_unchanged(const media_input *m, char *why, size_t cap) {
    if (m->fd < 0)
        return 0;
    struct stat st;
    if (fstat(m->fd, &st) != 0) {
        int err = errno;
        say(why, cap, "%s: cannot stat: %s", m->path, strerror(err));
        return -err;
    }
    vt_file now = file_id(&st);
    if (!same_file(&now, &m->id)) {
        say(why, cap, "%s changed since it was read", m->path);
        return -ESTALE;
    }
    return 0;
}

/* The input's read context over its buffer or its file. */
static AVIOContext *input_avio(media_input *m) {
    return m->fd < 0 ? read_avio(&m->src, mem_read, mem_seek) : read_avio(m, file_read, file_seek);
}

/* The input is the buffer or the file and nothing else: a demuxer that would open
 * another file or URL named in the bytes (an ffconcat list, a DASH manifest,
 * an MP4's external data reference) is refused, so that a "video" cannot make
 * reel read the files around it, or the network, into its outputs. Both
 * doors are shut: io_open, which demuxers call for the files they need, and
 * an empty protocol whitelist, which the demuxers that open a nested
 * container themselves (concat) copy into it. */
static int in_io_open(struct AVFormatContext *s, AVIOContext **pb, const char *url, int flags,
                      AVDictionary **options) {
    (void)s, (void)pb, (void)flags, (void)options;
    av_log(s, AV_LOG_ERROR, "refused to open %s: the input is one buffer\n", url ? url : "?");
    return AVERROR(EPERM);
}

/* The decoder's choice of output format under hwaccel: CUDA pictures when it
 * offers them. It offers them only when NVDEC takes the stream (codec,
 * profile, size); otherwise it decodes in software, and each frame says so
 * by its format. */
static enum AVPixelFormat hw_format(AVCodecContext *dec, const enum AVPixelFormat *offered) {
    (void)dec;
    for (const enum AVPixelFormat *f = offered; *f != AV_PIX_FMT_NONE; f++)
        if (*f == AV_PIX_FMT_CUDA)
            return *f;
    /* The first software format: another hwaccel's has no device here. */
    for (const enum AVPixelFormat *f = offered; *f != AV_PIX_FMT_NONE; f++) {
        const AVPixFmtDescriptor *d = av_pix_fmt_desc_get(*f);
        if (d && !(d->flags & AV_PIX_FMT_FLAG_HWACCEL))
            return *f;
    }
    return AV_PIX_FMT_NONE;
}

/* Sets the decoder up for NVDEC (opts.hwaccel): the codec must have a CUDA
 * configuration in this FFmpeg, and a CUDA device must open. Neither is a
 * reason to decode on the CPU instead: the caller asked for the GPU. */
static int hw_setup(media_input *m, const AVCodec *codec, char *why, size_t cap) {
    bool cuda = false;
    for (int i = 0;; i++) {
        const AVCodecHWConfig *c = avcodec_get_hw_config(codec, i);
        if (!c)
            break;
        if (c->device_type == AV_HWDEVICE_TYPE_CUDA &&
            (c->methods & AV_CODEC_HW_CONFIG_METHOD_HW_DEVICE_CTX))
            cuda = true;
    }
    if (!cuda) {
        say(why, cap, "hardware decoding: this FFmpeg's %s decoder cannot decode on CUDA (NVDEC)",
            codec->name);
        return -ENOTSUP;
    }
    if (!m->hw_device) {
        int rc = av_hwdevice_ctx_create(&m->hw_device, AV_HWDEVICE_TYPE_CUDA, NULL, NULL, 0);
        if (rc < 0)
            return fail(why, cap, rc, -ENODEV, "hardware decoding: cannot open a CUDA device");
    }
    if (!m->sw_frame && !(m->sw_frame = av_frame_alloc())) {
        say(why, cap, "out of memory");
        return -ENOMEM;
    }
    m->dec->hw_device_ctx = av_buffer_ref(m->hw_device);
    if (!m->dec->hw_device_ctx) {
        say(why, cap, "out of memory");
        return -ENOMEM;
    }
    m->dec->get_format = hw_format;
    return 0;
}

/* Opens the container over m->src and the decoder of its best video stream.
 * Bytes FFmpeg cannot read as video are -EINVAL. */
static int input_open(media_input *m, char *why, size_t cap) {
    log_clear();
    int rc = file_unchanged(m, why, cap);
    if (rc)
        return rc;
    m->src.pos = 0;
    m->io = input_avio(m);
    m->fmt = avformat_alloc_context();
    if (m->fmt)
        m->fmt->protocol_whitelist = av_strdup(""); /* freed with m->fmt */
    if (!m->io || !m->fmt || !m->fmt->protocol_whitelist) {
        say(why, cap, "out of memory opening the container");
        return -ENOMEM;
    }
    m->fmt->pb = m->io;
    m->fmt->flags |= AVFMT_FLAG_CUSTOM_IO;
    m->fmt->io_open = in_io_open;
    rc = avformat_open_input(&m->fmt, NULL, NULL, NULL);
    if (rc < 0) /* m->fmt is freed and NULL; m->io is still ours */
        return fail(why, cap, rc, rc == AVERROR(ENOMEM) ? -ENOMEM : -EINVAL,
                    "cannot open the container");
    rc = avformat_find_stream_info(m->fmt, NULL);
    if (rc < 0)
        return fail(why, cap, rc, rc == AVERROR(ENOMEM) ? -ENOMEM : -EINVAL,
                    "cannot read the container's streams");

    const AVCodec *codec = NULL;
    int s = av_find_best_stream(m->fmt, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    if (s >= 0 && (m->fmt->streams[s]->disposition & AV_DISPOSITION_ATTACHED_PIC)) {
        /* A cover image is not the video: take a real video stream if any. */
        for (unsigned i = 0; i < m->fmt->nb_streams; i++) {
            const AVStream *st = m->fmt->streams[i];
            if (st->codecpar->codec_type == AVMEDIA_TYPE_VIDEO &&
                !(st->disposition & AV_DISPOSITION_ATTACHED_PIC)) {
                s = (int)i;
                codec = avcodec_find_decoder(st->codecpar->codec_id);
                break;
            }
        }
    }
    if (s == AVERROR_STREAM_NOT_FOUND) {
        say(why, cap, "no video stream in the %s container", m->fmt->iformat->name);
        return -EINVAL;
    }
    if (s == AVERROR_DECODER_NOT_FOUND || (s >= 0 && !codec)) {
        enum AVCodecID id = AV_CODEC_ID_NONE;
        for (unsigned i = 0; i < m->fmt->nb_streams && id == AV_CODEC_ID_NONE; i++)
            if (m->fmt->streams[i]->codecpar->codec_type == AVMEDIA_TYPE_VIDEO)
                id = m->fmt->streams[i]->codecpar->codec_id;
        say(why, cap, "this FFmpeg has no decoder for its video codec (%s)", avcodec_get_name(id));
        return -EINVAL;
    }
    if (s < 0)
        return fail(why, cap, s, -EINVAL, "no video stream FFmpeg can decode");
    m->stream = s;
    AVStream *st = m->fmt->streams[s];
    for (unsigned i = 0; i < m->fmt->nb_streams; i++)
        if ((int)i != s)
            m->fmt->streams[i]->discard = AVDISCARD_ALL; /* the demuxer skips them */
    if (st->codecpar->width <= 0 || st->codecpar->height <= 0 || st->codecpar->width > MAX_SIDE ||
        st->codecpar->height > MAX_SIDE) {
        say(why, cap, "its %s video stream has no usable picture size (%dx%d)",
            avcodec_get_name(st->codecpar->codec_id), st->codecpar->width, st->codecpar->height);
        return -EINVAL;
    }

    m->dec = avcodec_alloc_context3(codec);
    if (!m->dec) {
        say(why, cap, "out of memory for the %s decoder", codec->name);
        return -ENOMEM;
    }
    rc = avcodec_parameters_to_context(m->dec, st->codecpar);
    if (rc < 0)
        return fail(why, cap, rc, 0, "cannot configure the video decoder");
    m->dec->pkt_timebase = st->time_base;
    m->dec->thread_count = m->opts.threads > 1 ? m->opts.threads : 1;
    if (m->opts.fast) {
        m->dec->skip_loop_filter = AVDISCARD_ALL;
        m->dec->flags2 |= AV_CODEC_FLAG2_FAST;
    }
    if (m->opts.export_mvs)
        m->dec->export_side_data |= AV_CODEC_EXPORT_DATA_MVS;
    if (m->opts.hwaccel && (rc = hw_setup(m, codec, why, cap)) != 0)
        return rc;
    rc = avcodec_open2(m->dec, codec, NULL);
    if (rc < 0)
        return fail(why, cap, rc, rc == AVERROR(ENOMEM) ? -ENOMEM : -EINVAL,
                    "cannot open the video decoder");
    return 0;
}

static void probe_fill(const media_input *m, vt_probe *out);

/* m's container as no read has moved it: as opened, else opened afresh;
 * marked used, so that the next reader opens it afresh. */
static int input_fresh(media_input *m, char *why, size_t cap) {
    if (m->used || !m->fmt) {
        input_close(m);
        int rc = input_open(m, why, cap);
        if (rc) {
            input_close(m);
            return rc;
        }
    }
    m->used = true;
    return 0;
}

/* Opens m (its source set) and takes the probe; frees m on failure. */
static int open_input(media_input *m, const media_open_options *o, media_input **out, char *why,
                      size_t cap) {
    if (o)
        m->opts = *o;
    m->pkt = av_packet_alloc();
    m->frame = av_frame_alloc();
    int rc = m->pkt && m->frame ? input_open(m, why, cap) : -ENOMEM;
    if (rc) {
        if (rc == -ENOMEM && !(m->pkt && m->frame))
            say(why, cap, "out of memory");
        media_close(m);
        return rc;
    }
    probe_fill(m, &m->probe);
    if (m->fmt->duration > 0) /* AV_NOPTS_VALUE is negative */
        m->container_duration_s = (double)m->fmt->duration / AV_TIME_BASE;
    *out = m;
    return 0;
}

int media_open(const uint8_t *data, uint64_t size, const media_open_options *o, media_input **out,
               char *why, size_t cap) {
    if (why && cap)
        why[0] = '\0';
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (!data || size == 0 || size > INT64_MAX) {
        say(why, cap, "no bytes to read a video from");
        return -EINVAL;
    }
    media_input *m = calloc(1, sizeof *m);
    if (!m) {
        say(why, cap, "out of memory");
        return -ENOMEM;
    }
    m->fd = -1;
    m->src.data = data;
    m->src.size = size;
    return open_input(m, o, out, why, cap);
}

int media_open_file(const char *path, const vt_file *expect, const media_open_options *o,
                    media_input **out, char *why, size_t cap) {
    if (why && cap)
        why[0] = '\0';
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (!path || !*path) {
        say(why, cap, "no file to read a video from");
        return -EINVAL;
    }
    media_input *m = calloc(1, sizeof *m);
    if (m)
        m->path = strdup(path);
    if (!m || !m->path) {
        free(m);
        say(why, cap, "out of memory");
        return -ENOMEM;
    }
    /* O_NONBLOCK: a FIFO put in the file's place must not hang the open
     * (regular files ignore it). */
    m->fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat st;
    int rc = 0;
    if (m->fd < 0 || fstat(m->fd, &st) != 0) {
        rc = -errno;
        say(why, cap, "%s: cannot open: %s", path, strerror(-rc));
    } else if (!S_ISREG(st.st_mode)) {
        rc = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
        say(why, cap, "%s: not a regular file", path);
    } else {
        m->id = file_id(&st);
        if (expect && !same_file(expect, &m->id)) {
            rc = -ESTALE;
            say(why, cap, "%s changed since it was read", path);
        } else if (st.st_size == 0) {
            rc = -EINVAL;
            say(why, cap, "%s: an empty file, no video", path);
        }
    }
    if (rc) {
        media_close(m);
        return rc;
    }
    m->src.size = (uint64_t)st.st_size;
    return open_input(m, o, out, why, cap);
}

void media_file_id(const media_input *m, vt_file *out) {
    *out = m->id;
}

void media_close(media_input *m) {
    if (!m)
        return;
    input_close(m);
    av_packet_free(&m->pkt);
    av_frame_free(&m->frame);
    av_frame_free(&m->sw_frame);
    av_buffer_unref(&m->hw_device);
    if (m->fd >= 0)
        close(m->fd);
    free(m->path);
    free(m);
}

/* ---- the audio track ---------------------------------------------------------- */

/* The sound re-encoded to AAC, for a codec an MP4 does not take as it is
 * (PCM from a camera's MOV, say): decoded, converted to the encoder's
 * planar floats, cut into its 1024-sample frames. */
typedef struct aac_path {
    AVCodecContext *dec, *enc;
    SwrContext *swr;
    AVAudioFifo *fifo;
    AVFrame *in, *out;
    AVPacket *pkt;
    int64_t next_pts; /* of the next frame to encode, in samples (1/rate) */
    bool started;
    int (*fn)(void *arg, const AVPacket *pkt);
    void *arg;
} aac_path;

static void aac_free(aac_path *a) {
    avcodec_free_context(&a->dec);
    avcodec_free_context(&a->enc);
    swr_free(&a->swr);
    if (a->fifo)
        av_audio_fifo_free(a->fifo);
    a->fifo = NULL;
    av_frame_free(&a->in);
    av_frame_free(&a->out);
    av_packet_free(&a->pkt);
}

static int aac_open(aac_path *a, const AVStream *st, char *why, size_t cap) {
    const AVCodec *dcodec = avcodec_find_decoder(st->codecpar->codec_id);
    const AVCodec *ecodec = avcodec_find_encoder(AV_CODEC_ID_AAC);
    if (!dcodec || !ecodec) {
        say(why, cap, "this FFmpeg cannot turn %s sound into AAC",
            avcodec_get_name(st->codecpar->codec_id));
        return -EINVAL;
    }
    a->dec = avcodec_alloc_context3(dcodec);
    a->enc = avcodec_alloc_context3(ecodec);
    a->in = av_frame_alloc();
    a->out = av_frame_alloc();
    a->pkt = av_packet_alloc();
    if (!a->dec || !a->enc || !a->in || !a->out || !a->pkt) {
        say(why, cap, "out of memory for the sound's encoder");
        return -ENOMEM;
    }
    int rc = avcodec_parameters_to_context(a->dec, st->codecpar);
    if (rc >= 0) {
        a->dec->pkt_timebase = st->time_base;
        rc = avcodec_open2(a->dec, dcodec, NULL);
    }
    if (rc < 0)
        return fail(why, cap, rc, -EINVAL, "cannot decode the sound");
    if (a->dec->sample_rate <= 0 || a->dec->ch_layout.nb_channels <= 0) {
        say(why, cap, "its sound has no sample rate or channels");
        return -EINVAL;
    }
    a->enc->sample_fmt = AV_SAMPLE_FMT_FLTP;
    a->enc->sample_rate = a->dec->sample_rate;
    a->enc->time_base = (AVRational){1, a->dec->sample_rate};
    a->enc->bit_rate = 128000;
    if (a->dec->ch_layout.nb_channels > 2)
        av_channel_layout_default(&a->enc->ch_layout, 2); /* AAC-LC stereo: as ffmpeg's default */
    else
        av_channel_layout_default(&a->enc->ch_layout, a->dec->ch_layout.nb_channels);
    a->enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER; /* the MP4's esds */
    if ((rc = avcodec_open2(a->enc, ecodec, NULL)) < 0)
        return fail(why, cap, rc, -EINVAL, "cannot open the AAC encoder");
    rc = swr_alloc_set_opts2(&a->swr, &a->enc->ch_layout, a->enc->sample_fmt, a->enc->sample_rate,
                             &a->dec->ch_layout, a->dec->sample_fmt, a->dec->sample_rate, 0, NULL);
    if (rc >= 0)
        rc = swr_init(a->swr);
    if (rc < 0)
        return fail(why, cap, rc, -EINVAL, "cannot convert the sound's samples");
    a->fifo = av_audio_fifo_alloc(a->enc->sample_fmt, a->enc->ch_layout.nb_channels,
                                  a->enc->frame_size > 0 ? a->enc->frame_size * 4 : 4096);
    if (!a->fifo) {
        say(why, cap, "out of memory for the sound's samples");
        return -ENOMEM;
    }
    return 0;
}

/* Encodes frame (NULL: flush) and hands every packet on. */
static int aac_encode(aac_path *a, AVFrame *frame, char *why, size_t cap) {
    int rc = avcodec_send_frame(a->enc, frame);
    if (rc < 0 && rc != AVERROR_EOF)
        return fail(why, cap, rc, 0, "the AAC encoder refused the sound");
    for (;;) {
        rc = avcodec_receive_packet(a->enc, a->pkt);
        if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF)
            return 0;
        if (rc < 0)
            return fail(why, cap, rc, 0, "the AAC encoder failed");
        rc = a->fn(a->arg, a->pkt);
        av_packet_unref(a->pkt);
        if (rc)
            return rc;
    }
}

/* Encodes the whole frames the FIFO holds (all of it when flushing). */
static int aac_drain(aac_path *a, bool flush, char *why, size_t cap) {
    int size = a->enc->frame_size > 0 ? a->enc->frame_size : 1024;
    while (av_audio_fifo_size(a->fifo) >= size || (flush && av_audio_fifo_size(a->fifo) > 0)) {
        int n = FFMIN(size, av_audio_fifo_size(a->fifo));
        av_frame_unref(a->out);
        a->out->nb_samples = n;
        a->out->format = a->enc->sample_fmt;
        a->out->sample_rate = a->enc->sample_rate;
        int rc = av_channel_layout_copy(&a->out->ch_layout, &a->enc->ch_layout);
        if (rc >= 0)
            rc = av_frame_get_buffer(a->out, 0);
        if (rc < 0 || av_audio_fifo_read(a->fifo, (void **)a->out->data, n) != n) {
            say(why, cap, "out of memory for the sound's samples");
            return -ENOMEM;
        }
        a->out->pts = a->next_pts;
        a->next_pts += n;
        if ((rc = aac_encode(a, a->out, why, cap)) != 0)
            return rc;
    }
    return flush ? aac_encode(a, NULL, why, cap) : 0;
}

/* Decodes pkt (NULL: flush), converts its samples and encodes what is whole. */
static int aac_take(aac_path *a, const AVPacket *pkt, double tb, char *why, size_t cap) {
    int rc = avcodec_send_packet(a->dec, pkt);
    if (rc < 0 && rc != AVERROR_EOF)
        return 0; /* a damaged packet: its samples are missing, the rest goes on */
    for (;;) {
        rc = avcodec_receive_frame(a->dec, a->in);
        if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF)
            break;
        if (rc < 0)
            return 0;
        if (!a->started) {
            /* The clips' times are the source's: the first sample's. */
            int64_t pts = a->in->pts != AV_NOPTS_VALUE ? a->in->pts : a->in->best_effort_timestamp;
            a->next_pts =
                pts != AV_NOPTS_VALUE ? llround((double)pts * tb * a->enc->sample_rate) : 0;
            a->started = true;
        }
        int most = swr_get_out_samples(a->swr, a->in->nb_samples);
        uint8_t **planes = NULL;
        if (most <= 0 ||
            av_samples_alloc_array_and_samples(&planes, NULL, a->enc->ch_layout.nb_channels, most,
                                               a->enc->sample_fmt, 0) < 0) {
            av_frame_unref(a->in);
            say(why, cap, "out of memory for the sound's samples");
            return -ENOMEM;
        }
        int got = swr_convert(a->swr, planes, most, (const uint8_t **)a->in->extended_data,
                              a->in->nb_samples);
        av_frame_unref(a->in);
        if (got > 0 && av_audio_fifo_write(a->fifo, (void **)planes, got) != got)
            got = -ENOMEM;
        av_freep(&planes[0]);
        av_freep(&planes);
        if (got == -ENOMEM) {
            say(why, cap, "out of memory for the sound's samples");
            return -ENOMEM;
        }
        if ((rc = aac_drain(a, false, why, cap)) != 0)
            return rc;
    }
    return pkt ? 0 : aac_drain(a, true, why, cap);
}

static int read_audio(media_input *m, int a, double start_s, double end_s, aac_path *aac,
                      int (*fn)(void *arg, const AVPacket *pkt), void *arg, char *why, size_t cap);

int media_audio(media_input *m, double start_s, double end_s, media_audio_info *info,
                int (*fn)(void *arg, const AVPacket *pkt), void *arg, char *why, size_t cap) {
    if (why && cap)
        why[0] = '\0';
    if (info)
        memset(info, 0, sizeof *info);
    if (!m || !info || !fn || !(start_s >= 0) || !(end_s >= start_s)) {
        say(why, cap, "bad arguments to read the audio of [%g, %g) s", start_s, end_s);
        return -EINVAL;
    }
    /* No sound: nothing to open again for (info->par stays NULL). */
    if (m->fmt && av_find_best_stream(m->fmt, AVMEDIA_TYPE_AUDIO, -1, m->stream, NULL, 0) < 0)
        return 0;
    /* The container as media_open() left it, else afresh; the next
     * media_decode() opens it afresh either way. */
    int rc = input_fresh(m, why, cap);
    if (rc)
        return rc;
    log_clear();
    int a = av_find_best_stream(m->fmt, AVMEDIA_TYPE_AUDIO, -1, m->stream, NULL, 0);
    if (a < 0)
        return 0;
    AVStream *st = m->fmt->streams[a];
    if (st->time_base.num <= 0 || st->time_base.den <= 0) {
        say(why, cap, "its audio stream has no usable time base");
        return -EINVAL;
    }
    info->par = avcodec_parameters_alloc();
    if (!info->par || avcodec_parameters_copy(info->par, st->codecpar) < 0) {
        avcodec_parameters_free(&info->par);
        say(why, cap, "out of memory for the audio stream's parameters");
        return -ENOMEM;
    }
    info->time_base = st->time_base;
    aac_path aac = {.fn = fn, .arg = arg};
    if (!media_mp4_takes(st->codecpar)) {
        rc = aac_open(&aac, st, why, cap);
        if (rc == 0) {
            avcodec_parameters_free(&info->par);
            info->par = avcodec_parameters_alloc();
            if (!info->par || avcodec_parameters_from_context(info->par, aac.enc) < 0) {
                say(why, cap, "out of memory for the sound's parameters");
                rc = -ENOMEM;
            }
            info->time_base = aac.enc->time_base;
            info->reencoded = true;
        }
        if (rc) {
            aac_free(&aac);
            avcodec_parameters_free(&info->par);
            return rc;
        }
    }
    rc = read_audio(m, a, start_s, end_s, aac.enc ? &aac : NULL, fn, arg, why, cap);
    aac_free(&aac);
    return rc;
}

/* media_audio's reading: packets of stream a in [start_s, end_s) to fn, or
 * through aac to it. */
static int read_audio(media_input *m, int a, double start_s, double end_s, aac_path *aac,
                      int (*fn)(void *arg, const AVPacket *pkt), void *arg, char *why, size_t cap) {
    int rc;
    AVStream *st = m->fmt->streams[a];
    for (unsigned i = 0; i < m->fmt->nb_streams; i++)
        m->fmt->streams[i]->discard = (int)i == a ? AVDISCARD_DEFAULT : AVDISCARD_ALL;
    double tb = av_q2d(st->time_base);
    if (start_s > 0) {
        /* To the packet at or before start: a failed seek reads from the top. */
        int64_t ts = (int64_t)(start_s / tb);
        if (av_seek_frame(m->fmt, a, ts, AVSEEK_FLAG_BACKWARD) < 0)
            av_seek_frame(m->fmt, a, 0, AVSEEK_FLAG_BACKWARD);
    }
    for (;;) {
        rc = av_read_frame(m->fmt, m->pkt);
        if (rc < 0) /* the end, or damage: the sound stops there, the clip does not */
            break;
        int64_t pts = m->pkt->pts != AV_NOPTS_VALUE ? m->pkt->pts : m->pkt->dts;
        if (m->pkt->stream_index != a || pts == AV_NOPTS_VALUE) {
            av_packet_unref(m->pkt);
            continue;
        }
        double t = (double)pts * tb;
        if (t < start_s) { /* before the span: the seek lands at or before it */
            av_packet_unref(m->pkt);
            continue;
        }
        if (t >= end_s) {
            av_packet_unref(m->pkt);
            break;
        }
        rc = aac ? aac_take(aac, m->pkt, tb, why, cap) : fn(arg, m->pkt);
        av_packet_unref(m->pkt);
        if (rc)
            return rc < 0 ? rc : 0;
    }
    if (aac && (rc = aac_take(aac, NULL, tb, why, cap)) != 0)
        return rc < 0 ? rc : 0;
    return file_unchanged(m, why, cap);
}

bool media_mp4_takes(const AVCodecParameters *par) {
    const AVOutputFormat *mp4 = av_guess_format("mp4", NULL, NULL);
    return par && mp4 && avformat_query_codec(mp4, par->codec_id, FF_COMPLIANCE_NORMAL) == 1;
}

static double finite_or_zero(double x) {
    return isfinite(x) && x > 0 ? x : 0;
}

static void probe_fill(const media_input *m, vt_probe *out) {
    memset(out, 0, sizeof *out);
    const AVStream *st = m->fmt->streams[m->stream];
    snprintf(out->container, sizeof out->container, "%s", m->fmt->iformat->name);
    snprintf(out->codec, sizeof out->codec, "%s", avcodec_get_name(st->codecpar->codec_id));
    /* The video stream's own duration when it has one, else the container's. */
    double d = 0;
    if (st->duration != AV_NOPTS_VALUE && st->duration > 0)
        d = (double)st->duration * av_q2d(st->time_base);
    else if (m->fmt->duration != AV_NOPTS_VALUE && m->fmt->duration > 0)
        d = (double)m->fmt->duration / AV_TIME_BASE;
    out->duration_s = finite_or_zero(d);
    AVRational fr = st->avg_frame_rate;
    if (fr.num <= 0 || fr.den <= 0)
        fr = av_guess_frame_rate(m->fmt, (AVStream *)st, NULL);
    out->fps = fr.num > 0 && fr.den > 0 ? finite_or_zero(av_q2d(fr)) : 0;
    out->width = st->codecpar->width;
    out->height = st->codecpar->height;
    if (st->nb_frames > 0)
        out->num_frames = st->nb_frames;
    else
        out->num_frames = (int64_t)llround(out->duration_s * out->fps);
    out->num_bytes = m->src.size;
}

int64_t media_curator_bit_rate(const media_input *m) {
    int64_t rate = m && m->fmt ? m->fmt->streams[m->stream]->codecpar->bit_rate : 0;
    int64_t k = rate > 0 ? rate / 1024 : 2000;
    return k * 1000; /* ffmpeg reads "K" as 1000 */
}

int64_t media_curator_frames(const vt_probe *p) {
    if (!(p->fps > 0) || !(p->duration_s > 0))
        return 0;
    char printed[64];
    snprintf(printed, sizeof printed, "%f", p->duration_s);
    return (int64_t)(strtod(printed, NULL) * p->fps);
}

void media_probe(const media_input *m, vt_probe *out) {
    *out = m->probe;
}

int64_t media_decoded_before(const media_input *m) {
    return m->skipped;
}

double media_container_duration_s(const media_input *m) {
    return m->container_duration_s;
}

/* Where a decode stands: the caller's range and callback, what came out. */
typedef struct decode_run {
    int64_t start, end;
    int (*fn)(void *arg, int64_t index, const AVFrame *frame);
    void *arg;
    int64_t index; /* the next frame's */
    int stop;      /* fn's > 0 (stop early) or < 0 (fail) */
    int64_t first; /* the index decoding began at (0, or a keyframe seek_to found) */
    bool redo;     /* the seek cannot be trusted: decode from the first frame */
} decode_run;

/* Hands every frame the decoder has ready to the callback. Returns 0 (more
 * input wanted), AVERROR_EOF (the decoder is drained), or a decoder error. */
static int drain(media_input *m, decode_run *r) {
    for (;;) {
        int rc = avcodec_receive_frame(m->dec, m->frame);
        if (rc == AVERROR(EAGAIN))
            return 0;
        if (rc < 0)
            return rc;
        int64_t i = r->index++;
        if (r->first && i < r->start &&
            (m->frame->decode_error_flags || (m->frame->flags & AV_FRAME_FLAG_CORRUPT))) {
            /* Decoded with damage from a keyframe that a decode from the
             * first frame has whole (parameter sets in the stream that the
             * container's copy lacks, say): not the same pictures. */
            av_frame_unref(m->frame);
            r->redo = true;
            return 0;
        }
        if (i < r->start)
            m->skipped++;
        if (i >= r->start && (r->end < 0 || i < r->end)) {
            const AVFrame *f = m->frame;
            if (f->format == AV_PIX_FMT_CUDA) {
                /* A GPU picture: into system memory, where the callers
                 * (scaling, encoders) read it. */
                av_frame_unref(m->sw_frame);
                rc = av_hwframe_transfer_data(m->sw_frame, f, 0);
                if (rc >= 0)
                    rc = av_frame_copy_props(m->sw_frame, f);
                if (rc < 0) {
                    av_frame_unref(m->frame);
                    return rc;
                }
                f = m->sw_frame;
            }
            int k = r->fn(r->arg, i, f);
            if (k) {
                av_frame_unref(m->frame);
                r->stop = k;
                return 0;
            }
        }
        av_frame_unref(m->frame);
        if (r->end >= 0 && r->index >= r->end) {
            r->stop = 1; /* the range is done */
            return 0;
        }
    }
}

/* Whether a demuxer that reports a clean end of its data stopped well short
 * of the duration the stream (else the container) promised: a file whose
 * end went missing without the demuxer noticing. (A cut MP4 is caught by
 * its demuxer: the index points past the data.) */
static bool ended_early(const media_input *m, int64_t last_end) {
    const AVStream *st = m->fmt->streams[m->stream];
    double want = 0;
    if (st->duration != AV_NOPTS_VALUE && st->duration > 0)
        want = (double)st->duration * av_q2d(st->time_base);
    else if (m->fmt->duration != AV_NOPTS_VALUE && m->fmt->duration > 0)
        want = (double)m->fmt->duration / AV_TIME_BASE;
    if (last_end == AV_NOPTS_VALUE || !(want > 0))
        return false;
    double got = (double)last_end * av_q2d(st->time_base);
    if (st->start_time != AV_NOPTS_VALUE)
        got -= (double)st->start_time * av_q2d(st->time_base);
    /* Other streams (audio) may outlast the video a little. */
    return got < want * 0.9 - 1.0;
}

/* The frames a seek must leave before start: a keyframe's leading pictures
 * (open GOP: after it in decode order, before it on screen) come within the
 * decoder's reorder window, so while they are read every frame is still
 * before start, and a seek that meets one is undone before fn saw a frame. */
#define SEEK_MARGIN 16

/* Whether pkt (a keyframe of m's stream) starts anew: the frames after it
 * refer to none before it. An H.264 or HEVC keyframe must hold an IDR
 * picture (a plain I picture may be followed by pictures that refer past
 * it); other codecs' keyframes reset their references. NAL units are
 * length-prefixed as in MP4 (the extradata says how long a length is) or
 * start-coded. */
static bool starts_anew(const media_input *m, const AVPacket *pkt) {
    const AVCodecParameters *par = m->fmt->streams[m->stream]->codecpar;
    bool h264 = par->codec_id == AV_CODEC_ID_H264, hevc = par->codec_id == AV_CODEC_ID_HEVC;
    if (!h264 && !hevc)
        return true;
    const uint8_t *d = pkt->data, *x = par->extradata;
    size_t n = (size_t)pkt->size, len_size = 0;
    if (h264 && par->extradata_size > 4 && x[0] == 1)
        len_size = (x[4] & 3u) + 1;
    else if (hevc && par->extradata_size > 21 && x[0] == 1)
        len_size = (x[21] & 3u) + 1;
    for (size_t at = 0; at < n;) {
        size_t nal, next;
        if (len_size) {
            if (n - at < len_size)
                return false;
            size_t len = 0;
            for (size_t k = 0; k < len_size; k++)
                len = len << 8 | d[at + k];
            nal = at + len_size;
            if (len == 0 || len > n - nal)
                return false;
            next = nal + len;
        } else {
            if (n - at < 4 || d[at] != 0 || d[at + 1] != 0 || (d[at + 2] != 1 && d[at + 3] != 1))
                return false;
            nal = at + (d[at + 2] == 1 ? 3 : 4);
            for (next = nal; next + 3 <= n && !(d[next] == 0 && d[next + 1] == 0 &&
                                                (d[next + 2] == 1 || d[next + 2] == 0));)
                next++;
            if (next + 3 > n)
                next = n;
            if (nal >= n)
                return false;
        }
        unsigned type = h264 ? d[nal] & 0x1fu : (d[nal] >> 1) & 0x3fu;
        if ((h264 && type == 5) || (hevc && (type == 19 || type == 20)))
            return true;
        at = next;
    }
    return false;
}

/* Seeks m's stream to the last keyframe at least SEEK_MARGIN frames before
 * start, where its frame index is known exactly: a demuxer index with one
 * entry per frame in decode order (MP4, MOV), none dropped by an edit list,
 * so that an IDR keyframe's place in it is its place on screen too. Returns
 * that keyframe's index and its dts (*dts), or 0 (nothing done: decode from
 * the first frame). */
static int64_t seek_to(media_input *m, int64_t start, int64_t *dts) {
    AVStream *st = m->fmt->streams[m->stream];
    int n = avformat_index_get_entries_count(st);
    if (start < 2 * SEEK_MARGIN || n <= 0 || st->nb_frames != n || start >= n)
        return 0;
    int64_t best = -1;
    for (int i = 0; i < n; i++) {
        const AVIndexEntry *e = avformat_index_get_entry(st, i);
        if (!e || (e->flags & AVINDEX_DISCARD_FRAME) || e->timestamp == AV_NOPTS_VALUE)
            return 0;
        if ((e->flags & AVINDEX_KEYFRAME) && i <= start - SEEK_MARGIN)
            best = i;
    }
    if (best <= 0)
        return 0;
    const AVIndexEntry *e = avformat_index_get_entry(st, (int)best);
    /* To exactly its timestamp, no flag: the MOV demuxer's backward seek
     * lands on the first frame there. The first packet read is checked. */
    if (av_seek_frame(m->fmt, m->stream, e->timestamp, 0) < 0)
        return 0;
    avcodec_flush_buffers(m->dec);
    *dts = e->timestamp;
    return best;
}

int media_decode(media_input *m, int64_t start, int64_t end,
                 int (*fn)(void *arg, int64_t index, const AVFrame *frame), void *arg,
                 bool *partial, char *why, size_t cap) {
    if (partial)
        *partial = false;
    if (why && cap)
        why[0] = '\0';
    if (!m || !fn || start < 0 || (end >= 0 && end < start)) {
        say(why, cap, "bad arguments to decode frames [%lld, %lld)", (long long)start,
            (long long)end);
        return -EINVAL;
    }
    int fresh = input_fresh(m, why, cap); /* each call starts from the first frame */
    if (fresh)
        return fresh;
    m->skipped = 0;
    if (end >= 0 && end == start)
        return 0;
    log_clear();

    decode_run r = {.start = start, .end = end, .fn = fn, .arg = arg};
    int64_t key_dts = AV_NOPTS_VALUE, key_pts = AV_NOPTS_VALUE;
    r.first = r.index = seek_to(m, start, &key_dts);
    int64_t read_since_seek = 0;
    int64_t last_end = AV_NOPTS_VALUE;
    int err = 0;             /* the error that stopped decoding */
    const char *what = NULL; /* and where it came from */
    bool eof = false;
    watch_ctx = m->fmt;
    watch_hit = false;
    while (!r.stop && !eof) {
        if (r.redo) {
            /* The seek is not to be trusted: from the first frame, as if it
             * had not been made (fn has seen no frame: all were before
             * start). */
            watch_ctx = NULL;
            input_close(m);
            int reopened = input_open(m, why, cap);
            if (reopened) {
                input_close(m);
                return reopened;
            }
            m->used = true;
            m->skipped = 0;
            r = (decode_run){.start = start, .end = end, .fn = fn, .arg = arg};
            read_since_seek = 0;
            last_end = AV_NOPTS_VALUE;
            watch_ctx = m->fmt;
            watch_hit = false;
        }
        int rc = av_read_frame(m->fmt, m->pkt);
        if (rc == AVERROR_EOF) {
            eof = true;
            if (watch_hit) {
                err = AVERROR_INVALIDDATA;
                what = "the data is cut short or damaged";
            } else if (ended_early(m, last_end)) {
                err = AVERROR_INVALIDDATA;
                what = "the data ends before the video does (truncated?)";
            }
            rc = avcodec_send_packet(m->dec, NULL); /* flush what the decoder holds */
        } else if (rc < 0) {
            /* Damaged or cut data: decode what was read, then stop. */
            err = rc;
            what = "cannot read past a damaged or missing part of the data";
            eof = true;
            rc = avcodec_send_packet(m->dec, NULL);
        } else {
            if (m->pkt->stream_index != m->stream) {
                av_packet_unref(m->pkt);
                continue;
            }
            if (r.first && read_since_seek++ < SEEK_MARGIN) {
                /* After a seek: the keyframe the index named first, then
                 * no picture shown before it (a leading picture of an open
                 * GOP would put the numbering off). Else decode from frame
                 * 0 after all: fn has seen no frame yet. */
                bool key = read_since_seek == 1;
                if (key)
                    key_pts = m->pkt->pts;
                if ((key && (!(m->pkt->flags & AV_PKT_FLAG_KEY) || m->pkt->dts != key_dts ||
                             key_pts == AV_NOPTS_VALUE || !starts_anew(m, m->pkt))) ||
                    (!key && (m->pkt->pts == AV_NOPTS_VALUE || m->pkt->pts < key_pts))) {
                    av_packet_unref(m->pkt);
                    r.redo = true;
                    continue;
                }
            }
            if (m->pkt->pts != AV_NOPTS_VALUE && m->pkt->duration > 0) {
                int64_t e = m->pkt->pts + m->pkt->duration;
                if (last_end == AV_NOPTS_VALUE || e > last_end)
                    last_end = e;
            } else if (m->pkt->pts != AV_NOPTS_VALUE &&
                       (last_end == AV_NOPTS_VALUE || m->pkt->pts > last_end)) {
                last_end = m->pkt->pts;
            }
            rc = avcodec_send_packet(m->dec, m->pkt);
            av_packet_unref(m->pkt);
            if (rc == AVERROR(EAGAIN))
                rc = 0; /* cannot happen: drain() empties the decoder after each packet */
            if (rc < 0 && rc != AVERROR_EOF) {
                err = rc;
                what = "the video stream is damaged";
                eof = true;
                rc = avcodec_send_packet(m->dec, NULL);
            }
        }
        if (rc < 0 && rc != AVERROR_EOF && !err) {
            err = rc;
            what = "the decoder failed";
        }
        rc = drain(m, &r);
        if (rc == AVERROR_EOF)
            break;
        if (rc < 0) {
            if (!err) {
                err = rc;
                what = "the video stream is damaged";
            }
            break;
        }
    }
    watch_ctx = NULL;
    if (r.stop < 0)
        return r.stop;
    /* A file rewritten while it was read: what came out may be of neither. */
    int changed = file_unchanged(m, why, cap);
    if (changed)
        return changed;
    if (r.stop > 0 || !err)
        return 0;
    char text[256];
    if (watch_hit && strstr(what, "cut short"))
        snprintf(text, sizeof text, "%s after %lld frames (%s)", what, (long long)r.index,
                 watch_line);
    else
        snprintf(text, sizeof text, "%s after %lld frames", what, (long long)r.index);
    if (r.index == r.first)
        return fail(why, cap, err, 0, text);
    fail(why, cap, err, 0, text);
    if (partial)
        *partial = true;
    return 0;
}

/* ---- pixels ------------------------------------------------------------------ */

/* A scaler from frame's pixels to w x h of dst_fmt, told when the frame is
 * full-range YUV in a format whose name does not say so. */
static struct SwsContext *scaler_for(struct SwsContext *old, const AVFrame *f, int w, int h,
                                     enum AVPixelFormat dst_fmt) {
    struct SwsContext *s = sws_getCachedContext(old, f->width, f->height, f->format, w, h, dst_fmt,
                                                SWS_BILINEAR, NULL, NULL, NULL);
    if (s && f->color_range == AVCOL_RANGE_JPEG) {
        int *inv, *tab, src_range, dst_range, bri, con, sat;
        if (sws_getColorspaceDetails(s, &inv, &src_range, &tab, &dst_range, &bri, &con, &sat) >=
                0 &&
            !src_range)
            sws_setColorspaceDetails(s, inv, 1, tab, dst_range, bri, con, sat);
    }
    return s;
}

static bool frame_ok(const AVFrame *f) {
    return f && f->width > 0 && f->height > 0 && f->width <= MAX_SIDE && f->height <= MAX_SIDE &&
           f->format >= 0 && sws_isSupportedInput(f->format);
}

int media_frame_to_rgb(const AVFrame *frame, uint32_t w, uint32_t h, uint8_t *dst) {
    if (!frame_ok(frame) || !dst || w == 0 || h == 0 || w > MAX_SIDE || h > MAX_SIDE)
        return -EINVAL;
    struct SwsContext *s = scaler_for(NULL, frame, (int)w, (int)h, AV_PIX_FMT_RGB24);
    if (!s)
        return -ENOMEM;
    uint8_t *planes[4] = {dst, NULL, NULL, NULL};
    int strides[4] = {(int)w * 3, 0, 0, 0};
    int rc = sws_scale(s, (const uint8_t *const *)frame->data, frame->linesize, 0, frame->height,
                       planes, strides);
    sws_freeContext(s);
    return rc == (int)h ? 0 : rc < 0 ? av_to_rc(rc) : -EIO;
}

/* ---- encoding ------------------------------------------------------------------ */

struct media_output {
    /* The MP4 being written: buf[0, size), the muxer's position pos. */
    uint8_t *buf;
    uint64_t size, cap, pos;
    int write_err; /* the first failed write (out of memory) */
    mem_reader reread;
    AVIOContext *io;
    AVFormatContext *fmt;
    AVCodecContext *enc;
    AVStream *st;
    AVStream *audio; /* the source's sound, copied: NULL when none */
    AVRational audio_src_tb;
    struct SwsContext *sws;
    AVFrame *yuv;
    AVPacket *pkt;
    int64_t next_pts;
    bool header, finished;
};

#if LIBAVFORMAT_VERSION_MAJOR < 61
#define WRITE_CONST
#else
#define WRITE_CONST const
#endif

static int out_write(void *opaque, WRITE_CONST uint8_t *data, int n) {
    media_output *e = opaque;
    if (n <= 0)
        return 0;
    uint64_t end = e->pos + (uint64_t)n;
    if (end > e->cap) {
        uint64_t cap = e->cap ? e->cap : 1u << 20;
        while (cap < end)
            cap *= 2;
        uint8_t *b = realloc(e->buf, cap);
        if (!b) {
            e->write_err = AVERROR(ENOMEM);
            return AVERROR(ENOMEM);
        }
        e->buf = b;
        e->cap = cap;
    }
    if (e->pos > e->size) /* a seek past the end leaves a gap: zeros, as in a file */
        memset(e->buf + e->size, 0, e->pos - e->size);
    memcpy(e->buf + e->pos, data, (size_t)n);
    e->pos = end;
    if (end > e->size)
        e->size = end;
    return n;
}

static int64_t out_seek(void *opaque, int64_t offset, int whence) {
    media_output *e = opaque;
    if (whence & AVSEEK_SIZE)
        return (int64_t)e->size;
    /* movenc's faststart seeks past the end when the header it moves to the
     * front is larger than the clip's data; out_write fills such a gap with
     * zeros. A bound keeps a bad seek from asking for a huge buffer. */
    int64_t base = (whence & ~AVSEEK_FORCE) == SEEK_END ? (int64_t)e->size : 0;
    if ((whence & ~AVSEEK_FORCE) == SEEK_END)
        whence = SEEK_SET, offset = base + offset;
    return seek_in(e->size + (1ull << 30), &e->pos, offset, whence);
}

/* The reader movenc's faststart opens on "the file" it wrote: the same
 * buffer, read while the muxer rewrites it behind the read position. */
static int reread_read(void *opaque, uint8_t *buf, int n) {
    media_output *e = opaque;
    e->reread.data = e->buf;
    e->reread.size = e->size;
    return mem_read(&e->reread, buf, n);
}

static int64_t reread_seek(void *opaque, int64_t offset, int whence) {
    media_output *e = opaque;
    return seek_in(e->size, &e->reread.pos, offset, whence);
}

static int out_io_open(struct AVFormatContext *s, AVIOContext **pb, const char *url, int flags,
                       AVDictionary **options) {
    (void)url, (void)options;
    media_output *e = s->opaque;
    if ((flags & AVIO_FLAG_WRITE) || !e)
        return AVERROR(EPERM);
    e->reread.pos = 0;
    *pb = read_avio(e, reread_read, reread_seek);
    return *pb ? 0 : AVERROR(ENOMEM);
}

static int out_io_close2(struct AVFormatContext *s, AVIOContext *pb) {
    (void)s;
    avio_free(&pb);
    return 0;
}

void media_encode_free(media_output *e) {
    if (!e)
        return;
    if (e->fmt) {
        e->fmt->pb = NULL; /* ours: freed below */
        avformat_free_context(e->fmt);
    }
    avio_free(&e->io);
    avcodec_free_context(&e->enc);
    sws_freeContext(e->sws);
    av_frame_free(&e->yuv);
    av_packet_free(&e->pkt);
    free(e->buf);
    free(e);
}

bool media_is_nvenc(const char *encoder) {
    size_t n = encoder ? strlen(encoder) : 0;
    return n > 6 && strcmp(encoder + n - 6, "_nvenc") == 0;
}

bool media_has_encoder(const char *encoder) {
    const AVCodec *c = encoder ? avcodec_find_encoder_by_name(encoder) : NULL;
    return c && c->type == AVMEDIA_TYPE_VIDEO;
}

bool media_has_cuda(void) {
    for (enum AVHWDeviceType t = AV_HWDEVICE_TYPE_NONE;
         (t = av_hwdevice_iterate_types(t)) != AV_HWDEVICE_TYPE_NONE;)
        if (t == AV_HWDEVICE_TYPE_CUDA)
            return true;
    return false;
}

static bool x264_preset(const char *p) {
    static const char *const names[] = {"ultrafast", "superfast", "veryfast", "faster",
                                        "fast",      "medium",    "slow",     "slower",
                                        "veryslow",  "placebo"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(p, names[i]) == 0)
            return true;
    return false;
}

int media_encode_start(const media_encode_options *o, media_output **out, char *why, size_t cap) {
    if (why && cap)
        why[0] = '\0';
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (!o || o->width <= 0 || o->height <= 0 || o->width > MAX_SIDE || o->height > MAX_SIDE ||
        (o->width | o->height) & 1) {
        say(why, cap, "cannot encode %dx%d: width and height must be even, 2..%d", o ? o->width : 0,
            o ? o->height : 0, MAX_SIDE);
        return -EINVAL;
    }
    if (!isfinite(o->fps) || o->fps <= 0 || o->fps > 1000) {
        say(why, cap, "cannot encode at %g frames per second", o->fps);
        return -EINVAL;
    }
    if (o->crf < 0 || o->crf > 51) {
        say(why, cap, "crf %d is outside 0..51", o->crf);
        return -EINVAL;
    }
    const char *name = o->encoder && *o->encoder ? o->encoder : "libx264";
    log_clear();
    const AVCodec *codec = avcodec_find_encoder_by_name(name);
    if (!codec || codec->type != AVMEDIA_TYPE_VIDEO) {
        say(why, cap, "no video encoder named \"%s\" in this FFmpeg", name);
        return -EINVAL;
    }
    media_output *e = calloc(1, sizeof *e);
    if (!e) {
        say(why, cap, "out of memory");
        return -ENOMEM;
    }
    int rc = avformat_alloc_output_context2(&e->fmt, NULL, "mp4", NULL);
    if (rc < 0 || !e->fmt) {
        rc = fail(why, cap, rc < 0 ? rc : AVERROR(ENOMEM), 0, "cannot set up an MP4 muxer");
        goto out;
    }
    e->fmt->opaque = e;
    e->fmt->io_open = out_io_open;
    e->fmt->io_close2 = out_io_close2;
    e->fmt->flags |= AVFMT_FLAG_CUSTOM_IO;
    uint8_t *iobuf = av_malloc(IO_BUF_SIZE);
    if (iobuf) {
        e->io = avio_alloc_context(iobuf, IO_BUF_SIZE, 1, e, NULL, out_write, out_seek);
        if (!e->io)
            av_free(iobuf);
    }
    e->enc = avcodec_alloc_context3(codec);
    e->yuv = av_frame_alloc();
    e->pkt = av_packet_alloc();
    e->st = avformat_new_stream(e->fmt, NULL);
    if (!e->io || !e->enc || !e->yuv || !e->pkt || !e->st) {
        say(why, cap, "out of memory setting up the %s encoder", name);
        rc = -ENOMEM;
        goto out;
    }
    e->fmt->pb = e->io;

    AVRational rate = av_d2q(o->fps, 1000000);
    if (rate.num <= 0 || rate.den <= 0) {
        say(why, cap, "cannot encode at %g frames per second", o->fps);
        rc = -EINVAL;
        goto out;
    }
    e->enc->width = o->width;
    e->enc->height = o->height;
    e->enc->pix_fmt = AV_PIX_FMT_YUV420P;
    e->enc->framerate = rate;
    e->enc->time_base = av_inv_q(rate); /* a frame's pts is its index */
    e->enc->sample_aspect_ratio = (AVRational){1, 1};
    e->enc->thread_count = o->threads > 1 ? o->threads : 1;
    if (e->fmt->oformat->flags & AVFMT_GLOBALHEADER)
        e->enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    if (o->preset && *o->preset && strncmp(name, "libx264", 7) == 0 && !x264_preset(o->preset)) {
        /* Said here: x264 would print its own complaint to stderr. */
        say(why, cap, "encoder %s has no preset \"%s\" (ultrafast ... placebo)", name, o->preset);
        rc = -EINVAL;
        goto out;
    }
    const char *preset = o->preset;
    bool nvenc = media_is_nvenc(name);
    if (nvenc && preset && x264_preset(preset)) {
        /* x264's speed steps onto NVENC's (p1 fastest .. p7 slowest). */
        static const char *const steps[][2] = {
            {"ultrafast", "p1"}, {"superfast", "p2"}, {"veryfast", "p2"}, {"faster", "p3"},
            {"fast", "p4"},      {"medium", "p5"},    {"slow", "p6"},     {"slower", "p7"},
            {"veryslow", "p7"},  {"placebo", "p7"}};
        for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++)
            if (strcmp(preset, steps[i][0]) == 0)
                preset = steps[i][1];
    }
    if (preset && *preset) {
        rc = av_opt_set(e->enc->priv_data, "preset", preset, 0);
        if (rc < 0) {
            char what[96];
            snprintf(what, sizeof what, "encoder %s refuses preset \"%s\"", name, o->preset);
            rc = fail(why, cap, rc, -EINVAL, what);
            goto out;
        }
    }
    if (o->bit_rate > 0) {
        /* An average bit rate, as ffmpeg's -b:v: no constant quality. */
        e->enc->bit_rate = o->bit_rate;
        rc = nvenc ? av_opt_set(e->enc->priv_data, "rc", "vbr", 0) : 0;
    } else if (nvenc) {
        /* NVENC's constant quality: its cq in place of x264's crf. */
        e->enc->bit_rate = 0;
        rc = av_opt_set(e->enc->priv_data, "rc", "vbr", 0);
        if (rc >= 0)
            rc = av_opt_set_double(e->enc->priv_data, "cq", o->crf, 0);
    } else {
        rc = av_opt_set_double(e->enc->priv_data, "crf", o->crf, 0);
    }
    if (rc < 0) {
        char what[96];
        snprintf(what, sizeof what, "encoder %s refuses crf %d", name, o->crf);
        rc = fail(why, cap, rc, -EINVAL, what);
        goto out;
    }
    rc = avcodec_open2(e->enc, codec, NULL);
    if (rc < 0) {
        char what[96];
        snprintf(what, sizeof what, "cannot open encoder %s at %dx%d", name, o->width, o->height);
        rc = fail(why, cap, rc, 0, what);
        goto out;
    }
    rc = avcodec_parameters_from_context(e->st->codecpar, e->enc);
    if (rc < 0) {
        rc = fail(why, cap, rc, 0, "cannot hand the encoder's parameters to the muxer");
        goto out;
    }
    e->st->time_base = e->enc->time_base;
    e->st->avg_frame_rate = rate;
    if (o->audio) {
        if (!media_mp4_takes(o->audio) || o->audio_time_base.num <= 0 ||
            o->audio_time_base.den <= 0) {
            say(why, cap, "cannot copy %s sound into an MP4", avcodec_get_name(o->audio->codec_id));
            rc = -EINVAL;
            goto out;
        }
        e->audio = avformat_new_stream(e->fmt, NULL);
        if (!e->audio || (rc = avcodec_parameters_copy(e->audio->codecpar, o->audio)) < 0) {
            rc = fail(why, cap, e->audio ? rc : AVERROR(ENOMEM), 0,
                      "cannot set up the sound's stream");
            goto out;
        }
        e->audio->codecpar->codec_tag = 0; /* the MP4 muxer's own tag for the codec */
        e->audio->time_base = o->audio_time_base;
        e->audio_src_tb = o->audio_time_base;
    }

    e->yuv->format = AV_PIX_FMT_YUV420P;
    e->yuv->width = o->width;
    e->yuv->height = o->height;
    rc = av_frame_get_buffer(e->yuv, 0);
    if (rc < 0) {
        rc = fail(why, cap, rc, 0, "cannot allocate the encoder's picture");
        goto out;
    }

    AVDictionary *opts = NULL;
    rc = av_dict_set(&opts, "movflags", "+faststart", 0);
    if (rc >= 0)
        rc = avformat_write_header(e->fmt, &opts);
    av_dict_free(&opts);
    if (rc < 0) {
        rc = fail(why, cap, e->write_err ? e->write_err : rc, 0, "cannot start the MP4");
        goto out;
    }
    e->header = true;
    *out = e;
    return 0;
out:
    media_encode_free(e);
    return rc;
}

/* Sends frame (NULL: flush) to the encoder and muxes every packet it has ready. */
static int encode_send(media_output *e, const AVFrame *frame, char *why, size_t cap) {
    int rc = avcodec_send_frame(e->enc, frame);
    if (rc < 0)
        return fail(why, cap, rc, 0, "the encoder refused a frame");
    for (;;) {
        rc = avcodec_receive_packet(e->enc, e->pkt);
        if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF)
            return 0;
        if (rc < 0)
            return fail(why, cap, rc, 0, "the encoder failed");
        av_packet_rescale_ts(e->pkt, e->enc->time_base, e->st->time_base);
        e->pkt->stream_index = e->st->index;
        rc = av_interleaved_write_frame(e->fmt, e->pkt); /* takes the packet's data */
        if (rc < 0)
            return fail(why, cap, e->write_err ? e->write_err : rc, 0,
                        "cannot write a packet into the MP4");
    }
}

int media_encode_frame(media_output *e, const AVFrame *frame, char *why, size_t cap) {
    if (why && cap)
        why[0] = '\0';
    if (!e || e->finished) {
        say(why, cap, "the encoder is %s", e ? "finished" : "missing");
        return -EINVAL;
    }
    if (!frame_ok(frame)) {
        say(why, cap, "cannot encode a frame of %dx%d in pixel format %d", frame ? frame->width : 0,
            frame ? frame->height : 0, frame ? frame->format : -1);
        return -EINVAL;
    }
    log_clear();
    e->sws = scaler_for(e->sws, frame, e->enc->width, e->enc->height, AV_PIX_FMT_YUV420P);
    if (!e->sws) {
        say(why, cap, "cannot convert %dx%d %s frames to %dx%d yuv420p", frame->width,
            frame->height, av_get_pix_fmt_name(frame->format), e->enc->width, e->enc->height);
        return -ENOMEM;
    }
    /* The encoder may still hold the last picture: write into a fresh one then. */
    int rc = av_frame_make_writable(e->yuv);
    if (rc < 0)
        return fail(why, cap, rc, 0, "cannot get a picture to encode into");
    rc = sws_scale(e->sws, (const uint8_t *const *)frame->data, frame->linesize, 0, frame->height,
                   e->yuv->data, e->yuv->linesize);
    if (rc != e->enc->height)
        return fail(why, cap, rc < 0 ? rc : AVERROR(EIO), 0, "cannot convert a frame to yuv420p");
    e->yuv->pts = e->next_pts++;
    return encode_send(e, e->yuv, why, cap);
}

int media_encode_audio(media_output *e, const AVPacket *pkt, int64_t offset, char *why,
                       size_t cap) {
    if (why && cap)
        why[0] = '\0';
    if (!e || e->finished || !e->audio || !pkt) {
        say(why, cap, "no sound stream to write into");
        return -EINVAL;
    }
    AVPacket *p = av_packet_clone(pkt);
    if (!p) {
        say(why, cap, "out of memory for a sound packet");
        return -ENOMEM;
    }
    /* The clip's sound starts where its pictures do. */
    if (p->pts != AV_NOPTS_VALUE)
        p->pts -= offset;
    p->dts = p->dts != AV_NOPTS_VALUE ? p->dts - offset : p->pts;
    if (p->pts != AV_NOPTS_VALUE && p->dts > p->pts)
        p->dts = p->pts;
    av_packet_rescale_ts(p, e->audio_src_tb, e->audio->time_base);
    p->stream_index = e->audio->index;
    p->pos = -1;
    int rc = av_interleaved_write_frame(e->fmt, p); /* takes the packet's data */
    av_packet_free(&p);
    if (rc < 0)
        return fail(why, cap, e->write_err ? e->write_err : rc, 0,
                    "cannot write a sound packet into the MP4");
    return 0;
}

const AVFrame *media_encode_picture(const media_output *e) {
    return e && e->next_pts > 0 && !e->finished ? e->yuv : NULL;
}

int media_encode_finish(media_output *e, const uint8_t **data, uint64_t *size, char *why,
                        size_t cap) {
    if (why && cap)
        why[0] = '\0';
    if (!e || !data || !size || e->finished) {
        say(why, cap, "the encoder is %s", e && e->finished ? "already finished" : "missing");
        return -EINVAL;
    }
    *data = NULL;
    *size = 0;
    e->finished = true;
    if (e->next_pts == 0) {
        say(why, cap, "no frames to encode");
        return -ENODATA;
    }
    log_clear();
    int rc = encode_send(e, NULL, why, cap);
    if (rc)
        return rc;
    rc = av_write_trailer(e->fmt);
    if (rc < 0)
        return fail(why, cap, e->write_err ? e->write_err : rc, 0, "cannot finish the MP4");
    avio_flush(e->io);
    if (e->write_err)
        return fail(why, cap, e->write_err, 0, "cannot finish the MP4");
    *data = e->buf;
    *size = e->size;
    return 0;
}

/* ---- JPEG ----------------------------------------------------------------------- */

int media_jpeg(const uint8_t *rgb, uint32_t w, uint32_t h, int quality, uint8_t **out,
               uint64_t *size, char *why, size_t cap) {
    if (why && cap)
        why[0] = '\0';
    if (out)
        *out = NULL;
    if (size)
        *size = 0;
    if (!rgb || !out || !size || w == 0 || h == 0 || w > MAX_SIDE || h > MAX_SIDE) {
        say(why, cap, "cannot make a JPEG of %ux%u", w, h);
        return -EINVAL;
    }
    if (quality < 1)
        quality = 1;
    if (quality > 100)
        quality = 100;
    log_clear();
    const AVCodec *codec = avcodec_find_encoder(AV_CODEC_ID_MJPEG);
    if (!codec) {
        say(why, cap, "this FFmpeg has no JPEG encoder");
        return -ENOSYS;
    }
    AVCodecContext *c = avcodec_alloc_context3(codec);
    AVFrame *f = av_frame_alloc();
    AVPacket *pkt = av_packet_alloc();
    struct SwsContext *s = NULL;
    int rc;
    if (!c || !f || !pkt) {
        say(why, cap, "out of memory for the JPEG encoder");
        rc = -ENOMEM;
        goto out;
    }
    /* quality 1..100 onto mjpeg's qscale 31..2 (lower is finer). */
    int q = 2 + (100 - quality) * 29 / 99;
    c->width = (int)w;
    c->height = (int)h;
    c->pix_fmt = AV_PIX_FMT_YUVJ420P;
    c->time_base = (AVRational){1, 25};
    c->flags |= AV_CODEC_FLAG_QSCALE;
    c->global_quality = q * FF_QP2LAMBDA;
    c->qmin = c->qmax = q;
    rc = avcodec_open2(c, codec, NULL);
    if (rc < 0) {
        rc = fail(why, cap, rc, 0, "cannot open the JPEG encoder");
        goto out;
    }
    f->format = AV_PIX_FMT_YUVJ420P;
    f->width = (int)w;
    f->height = (int)h;
    f->quality = c->global_quality;
    f->pts = 0;
    rc = av_frame_get_buffer(f, 0);
    if (rc < 0) {
        rc = fail(why, cap, rc, 0, "cannot allocate the JPEG's picture");
        goto out;
    }
    s = sws_getContext((int)w, (int)h, AV_PIX_FMT_RGB24, (int)w, (int)h, AV_PIX_FMT_YUVJ420P,
                       SWS_BILINEAR, NULL, NULL, NULL);
    if (!s) {
        say(why, cap, "cannot convert RGB to the JPEG's pixels");
        rc = -ENOMEM;
        goto out;
    }
    const uint8_t *src[4] = {rgb, NULL, NULL, NULL};
    int src_stride[4] = {(int)w * 3, 0, 0, 0};
    rc = sws_scale(s, src, src_stride, 0, (int)h, f->data, f->linesize);
    if (rc != (int)h) {
        rc = fail(why, cap, rc < 0 ? rc : AVERROR(EIO), 0,
                  "cannot convert RGB to the JPEG's pixels");
        goto out;
    }
    rc = avcodec_send_frame(c, f);
    if (rc >= 0)
        rc = avcodec_send_frame(c, NULL);
    if (rc >= 0)
        rc = avcodec_receive_packet(c, pkt);
    if (rc < 0) {
        rc = fail(why, cap, rc, 0, "the JPEG encoder failed");
        goto out;
    }
    *out = malloc(pkt->size ? (size_t)pkt->size : 1);
    if (!*out) {
        say(why, cap, "out of memory for a %d-byte JPEG", pkt->size);
        rc = -ENOMEM;
        goto out;
    }
    memcpy(*out, pkt->data, (size_t)pkt->size);
    *size = (uint64_t)pkt->size;
    rc = 0;
out:
    sws_freeContext(s);
    av_packet_free(&pkt);
    av_frame_free(&f);
    avcodec_free_context(&c);
    return rc;
}
