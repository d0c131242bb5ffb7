/*
 * reader.c - the first stage: a video's path in, its task out, the file's
 * bytes read straight into the task object (io_uring, no copy in between)
 * and probed there by libavformat.
 *
 * A file that cannot be a video now will not be one on a retry either, so
 * every failure here is a sentence naming the path and a negative code, and
 * the stage retries once at most (a flaky read, not a bad file, is what a
 * retry is for).
 */
#include "media.h"
#include "stages_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define READER_PATH_MAX 4096u

static int reader_process(reel_actor_ctx *ctx, const reel_view *in, size_t n, reel_actor_out *out) {
    if (n != 1) {
        reel_actor_set_error(ctx, "a task takes one video path, not %zu", n);
        return -EINVAL;
    }
    const char *bytes = in[0].data;
    uint64_t len = in[0].size;
    if (len == 0 || !bytes) {
        reel_actor_set_error(ctx, "an empty video path");
        return -EINVAL;
    }
    if (len >= READER_PATH_MAX) {
        reel_actor_set_error(ctx, "a video path of %llu bytes (at most %u)",
                             (unsigned long long)len, READER_PATH_MAX - 1);
        return -ENAMETOOLONG;
    }
    if (memchr(bytes, '\0', len)) {
        reel_actor_set_error(ctx, "a video path with a NUL byte in it");
        return -EINVAL;
    }
    char path[READER_PATH_MAX];
    memcpy(path, bytes, len);
    path[len] = '\0';

    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        reel_actor_set_error(ctx, "%s: cannot open: %s", path, strerror(err));
        return -err;
    }
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0) {
        rc = -errno;
        reel_actor_set_error(ctx, "%s: cannot stat: %s", path, strerror(-rc));
    } else if (S_ISDIR(st.st_mode)) {
        rc = -EISDIR;
        reel_actor_set_error(ctx, "%s: is a directory, not a video file", path);
    } else if (!S_ISREG(st.st_mode)) {
        rc = -EINVAL;
        reel_actor_set_error(ctx, "%s: not a regular file", path);
    } else if (st.st_size == 0) {
        rc = -ENODATA;
        reel_actor_set_error(ctx, "%s: empty file (0 bytes), not a video", path);
    }
    if (rc) {
        close(fd);
        return rc;
    }

    video_task t;
    memset(&t, 0, sizeof t);
    t.path.data = (const uint8_t *)bytes;
    t.path.size = len;
    t.source.data = NULL; /* room left for the file, filled below */
    t.source.size = (uint64_t)st.st_size;
    uint64_t size = vt_size(&t);
    void *buf;
    rc = reel_actor_output(out, size, NULL, 0, &buf);
    if (rc) {
        reel_actor_set_error(ctx, "%s: cannot make its %llu-byte task: %s", path,
                             (unsigned long long)size, reel_strerror(rc));
        close(fd);
        return rc;
    }
    rc = vt_write(&t, buf, size);
    if (rc) {
        reel_actor_set_error(ctx, "%s: cannot write its task: %s", path, reel_strerror(rc));
        close(fd);
        return rc;
    }
    uint8_t *source = vt_source_slot(buf);
    rc = reel_file_read(fd, source, 0, t.source.size);
    close(fd);
    if (rc) {
        reel_actor_set_error(
            ctx, "%s: cannot read its %llu bytes: %s", path, (unsigned long long)t.source.size,
            rc == -EIO ? "the file ended early or a read failed" : reel_strerror(rc));
        return rc;
    }

    media_input *m;
    char why[REEL_ERROR_TEXT_MAX];
    rc = media_open(source, t.source.size, NULL, &m, why, sizeof why);
    if (rc) {
        reel_actor_set_error(ctx, "%s: not a video FFmpeg can read: %s", path, why);
        return rc;
    }
    vt_probe probe;
    media_probe(m, &probe);
    media_close(m);
    vt_patch_probe(buf, &probe);
    return 0;
}

const reel_actor_def stage_reader_def = {
    .name = "reader",
    .process = reader_process,
    .cpus = 1,
    .max_retries = 1, /* a bad file stays bad */
};
