/*
 * extensions.c - which file names reel-curate takes for videos: the
 * extensions libavformat itself knows (reel/stages.h), so that every
 * container FFmpeg reads is curated without a list typed by hand going stale.
 *
 * libavformat keeps a container's extensions partly on its demuxer and partly
 * on its muxer: FFmpeg 5.1's ogg demuxer lists "ogg" while "ogv" is on the ogv
 * muxer, and the MPEG-TS, MPEG-PS, MXF and VOB demuxers list none at all (they
 * are found by their bytes). So the list is every extension of every demuxer,
 * and of every muxer that writes video. That takes in names that are seldom
 * footage, and they stay in, because libavformat reads them and nothing in
 * it tells footage from the rest (the mp3 muxer has a video codec, for cover
 * art): audio (mp3, wav), subtitles (srt), pictures (png, jpg: a video of one
 * frame, which gives no clip) and tty's text (txt). The reader refuses a file
 * without video in it, by its bytes, naming it ("no video stream", "not a
 * video FFmpeg can read"); reel-curate's --video-extensions narrows the list
 * for a directory that holds such files beside its videos.
 */
#include "check.h"
#include "reel/stages.h"

#include <libavformat/avformat.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define EXT_MAX     32u /* longer "extensions" are not taken */
#define DEMUXED     1u
#define MUXED_VIDEO 2u
#define EXTS_MAX    2048u /* libavformat 5.1 names about 400 */

typedef struct ext_entry {
    char name[EXT_MAX];
    unsigned from; /* DEMUXED, MUXED_VIDEO, or 0: a muxer's without video */
} ext_entry;

static ext_entry exts[EXTS_MAX];
static size_t n_exts;
static char *known; /* "3g2,3gp,...": built once, kept for the process's life */
static pthread_once_t known_once = PTHREAD_ONCE_INIT;

static void add_list(const char *list, unsigned from) {
    for (const char *p = list; p && *p;) {
        p += strspn(p, " "); /* some lists say "a, b" */
        size_t len = strcspn(p, ", ");
        if (len > 0 && len < EXT_MAX && n_exts < EXTS_MAX) {
            ext_entry *e = &exts[n_exts++];
            memset(e, 0, sizeof *e);
            for (size_t i = 0; i < len; i++) {
                char c = p[i];
                e->name[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
            }
            e->from = from;
        }
        p += strcspn(p, ",");
        p += *p == ',';
    }
}

static int cmp_ext(const void *a, const void *b) {
    return strcmp(((const ext_entry *)a)->name, ((const ext_entry *)b)->name);
}

static void build_known(void) {
    void *it = NULL;
    const AVInputFormat *in;
    while ((in = av_demuxer_iterate(&it)))
        if (!(in->flags & AVFMT_NOFILE))
            add_list(in->extensions, DEMUXED);
    it = NULL;
    const AVOutputFormat *out;
    while ((out = av_muxer_iterate(&it)))
        if (!(out->flags & AVFMT_NOFILE))
            add_list(out->extensions, out->video_codec != AV_CODEC_ID_NONE ? MUXED_VIDEO : 0);
    if (n_exts)
        qsort(exts, n_exts, sizeof exts[0], cmp_ext);
    size_t cap = 1, len = 0;
    for (size_t i = 0; i < n_exts; i++)
        cap += strlen(exts[i].name) + 1;
    known = malloc(cap);
    if (!known)
        return;
    known[0] = '\0';
    for (size_t i = 0; i < n_exts;) {
        size_t j = i;
        unsigned from = 0;
        for (; j < n_exts && strcmp(exts[j].name, exts[i].name) == 0; j++)
            from |= exts[j].from;
        if (from & (DEMUXED | MUXED_VIDEO)) {
            size_t n = strlen(exts[i].name);
            if (len)
                known[len++] = ',';
            memcpy(known + len, exts[i].name, n + 1);
            len += n;
        }
        i = j;
    }
}

REEL_API const char *reel_curate_known_extensions(void) {
    pthread_once(&known_once, build_known);
    return known ? known : "";
}

/* Whether ext (len bytes, no dot) is an item of the comma-separated list,
 * whose items may start with a dot; case aside. */
static bool in_list(const char *list, const char *ext, size_t len) {
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        const char *item = p;
        if (n > 0 && *item == '.')
            item++, n--;
        if (n == len && strncasecmp(item, ext, len) == 0)
            return true;
        p += strcspn(p, ",");
        p += *p == ',';
    }
    return false;
}

REEL_API bool reel_curate_is_video_name(const reel_curate_options *o, const char *name) {
    REEL_NEED_OR(name, "name", false);
    if (name[0] == '.') /* hidden, or "." and ".." */
        return false;
    const char *dot = strrchr(name, '.');
    if (!dot || !dot[1])
        return false;
    const char *list =
        o && o->video_extensions ? o->video_extensions : reel_curate_known_extensions();
    return in_list(list, dot + 1, strlen(dot + 1));
}
