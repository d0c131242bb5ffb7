/* reel-curate's streaming seam; see curate_stream.h. */
#include "curate_stream.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct line_source {
    int fd;
    bool own_fd, eof;
    bool skipping; /* inside a refused line: drop bytes up to its '\n' */
    int skip_rc;   /* why it was refused */
    size_t len;    /* bytes in buf */
    char buf[LINE_SOURCE_MAX + 2];
    char line[LINE_SOURCE_MAX + 1]; /* the line handed out */
};

int line_source_open(const char *path, line_source **out) {
    if (!path || !out)
        return -EINVAL;
    line_source *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    if (strcmp(path, "-") == 0) {
        s->fd = STDIN_FILENO;
    } else {
        s->fd = open(path, O_RDONLY | O_CLOEXEC);
        if (s->fd < 0) {
            int e = errno;
            free(s);
            return -e;
        }
        s->own_fd = true;
    }
    *out = s;
    return 0;
}

void line_source_close(line_source *s) {
    if (!s)
        return;
    if (s->own_fd)
        close(s->fd);
    free(s);
}

/* Hands out buf[0..n) as the line (a '\r' before its end dropped) and drops
 * it and its '\n' (at buf[n], when nl) from buf. */
static int hand_out(line_source *s, size_t n, bool nl, const char **line) {
    size_t len = n;
    if (len && s->buf[len - 1] == '\r')
        len--;
    int rc = 1;
    if (len > LINE_SOURCE_MAX) {
        len = 64; /* its first bytes, for the message */
        rc = -E2BIG;
    }
    memcpy(s->line, s->buf, len);
    s->line[len] = '\0';
    size_t used = n + (nl ? 1 : 0);
    memmove(s->buf, s->buf + used, s->len - used);
    s->len -= used;
    *line = s->line;
    if (rc == 1 && memchr(s->line, '\0', len))
        rc = -EBADMSG;
    return rc;
}

int line_source_next(line_source *s, const char **line) {
    if (!s || !line)
        return -EINVAL;
    for (;;) {
        char *nl = memchr(s->buf, '\n', s->len);
        if (s->skipping) {
            /* The rest of a refused line, up to its '\n'. */
            if (!nl) {
                s->len = 0;
            } else {
                size_t used = (size_t)(nl - s->buf) + 1;
                memmove(s->buf, s->buf + used, s->len - used);
                s->len -= used;
                s->skipping = false;
                continue;
            }
        } else if (nl) {
            size_t n = (size_t)(nl - s->buf);
            if (n == 0 || (n == 1 && s->buf[0] == '\r')) {
                memmove(s->buf, s->buf + n + 1, s->len - n - 1);
                s->len -= n + 1;
                continue; /* an empty line */
            }
            return hand_out(s, n, true, line);
        } else if (s->len > LINE_SOURCE_MAX) {
            /* No '\n' in more than a line's worth: refused whole. */
            memcpy(s->line, s->buf, 64);
            s->line[64] = '\0';
            *line = s->line;
            s->len = 0;
            s->skipping = true;
            return -E2BIG;
        } else if (s->eof) {
            if (s->len == 0)
                return 0;
            return hand_out(s, s->len, false, line);
        }
        if (s->eof)
            return 0;
        /* Read what there is, without waiting for more. */
        struct pollfd p = {.fd = s->fd, .events = POLLIN};
        int pr = poll(&p, 1, 0);
        if (pr < 0)
            return errno == EINTR ? -EAGAIN : -errno;
        if (pr == 0)
            return -EAGAIN;
        ssize_t got = read(s->fd, s->buf + s->len, sizeof s->buf - s->len);
        if (got < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return -EAGAIN;
            return -errno;
        }
        if (got == 0)
            s->eof = true;
        s->len += (size_t)got;
    }
}

/* s as a JSON string, escaped, with bytes of 0x80 and up passed on as they
 * are: not cli_json_str(), which replaces bytes that are not UTF-8, since a
 * launcher matches each result to the path it sent, byte for byte (a path
 * need not be UTF-8; reel-cluster reads them with surrogateescape). */
static void json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", f);
        else if (*p == '\t')
            fputs("\\t", f);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

int results_line_write(FILE *f, const reel_curate_video_summary *s, double elapsed_s) {
    if (!f || !s)
        return -EINVAL;
    fputs("{\"path\": ", f);
    json_string(f, s->path);
    fputs(", \"name\": ", f);
    json_string(f, s->name);
    fprintf(f,
            ", \"clips\": %u, \"clips_written\": %u, \"clips_filtered\": %u, \"partial\": %s, "
            "\"failed\": %s, \"error\": ",
            s->clips, s->clips_written, s->clips_filtered, s->partial ? "true" : "false",
            s->failed ? "true" : "false");
    json_string(f, s->error);
    fprintf(f, ", \"duration_s\": %.6g, \"frames\": %lld, \"elapsed_s\": %.3f}\n",
            isfinite(s->duration_s) ? s->duration_s : 0.0, (long long)s->frames,
            isfinite(elapsed_s) ? elapsed_s : 0.0);
    return fflush(f) == 0 && !ferror(f) ? 0 : -EIO;
}
