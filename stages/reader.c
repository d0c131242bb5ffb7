/*
 * reader.c - the first stage: a video's path in, its task out: the path, the
 * file's identity (size, mtime, inode, device) and what libavformat's probe
 * found, reading the file by range (media_open_file). The file's bytes do
 * not go into the store: later stages read the file by range again, after
 * checking that it is still the file the reader saw, so that a video of any
 * size curates in a store of any size.
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

    /* O_NONBLOCK: a FIFO is refused below, not waited on (regular files
     * ignore it). */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
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
    close(fd);
    if (rc)
        return rc;

    /* Probed as the later stages will read it: by range, from the file as
     * it was just found (a file replaced in between is said so). */
    vt_file id = {.size = (uint64_t)st.st_size,
                  .mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec,
                  .ino = (uint64_t)st.st_ino,
                  .dev = (uint64_t)st.st_dev};
    media_input *m;
    char why[REEL_ERROR_TEXT_MAX];
    rc = media_open_file(path, &id, NULL, &m, why, sizeof why);
    if (rc == -ESTALE) {
        reel_actor_set_error(ctx, "%s", why);
        return rc;
    }
    if (rc) {
        reel_actor_set_error(ctx, "%s: not a video FFmpeg can read: %s", path, why);
        return rc;
    }
    video_task t;
    memset(&t, 0, sizeof t);
    t.path.data = (const uint8_t *)bytes;
    t.path.size = len;
    t.file = id;
    media_probe(m, &t.probe);
    media_close(m);
    t.bytes_copied = len; /* the path, from the input object */
    return stage_write_task(ctx, out, &t, false);
}

const reel_actor_def stage_reader_def = {
    .name = "reader",
    .process = reader_process,
    .cpus = 1,
    .max_retries = 1, /* a bad file stays bad */
};
