/* Files into the store with io_uring: the bytes land straight in the new
 * object's buffer, read in large chunks with several reads in flight. */
#include "store_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK (1u << 20) /* bytes per read */
#define DEPTH 8u         /* reads in flight */

/* Reads length bytes at offset of fd into buf. Returns 0, -EIO if the file
 * ended early (it shrank underneath), or a negative errno. */
/* Where io_uring is not allowed (a seccomp filter, an old kernel): pread. */
static int read_all_pread(int fd, uint8_t *buf, uint64_t offset, uint64_t length) {
    uint64_t done = 0;
    while (done < length) {
        size_t n = length - done < CHUNK ? (size_t)(length - done) : CHUNK;
        ssize_t r = pread(fd, buf + done, n, (off_t)(offset + done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            return reel__fail(-EIO, "the file ended %llu bytes early",
                              (unsigned long long)(length - done));
        done += (uint64_t)r;
    }
    return 0;
}

static int read_all(int fd, uint8_t *buf, uint64_t offset, uint64_t length) {
    struct io_uring ring;
    int rc = io_uring_queue_init(DEPTH, &ring, 0);
    if (rc == -ENOSYS || rc == -EPERM)
        return read_all_pread(fd, buf, offset, length);
    if (rc < 0)
        return rc;
    uint64_t next = 0; /* first byte not yet asked for */
    uint64_t done = 0; /* bytes read */
    unsigned inflight = 0;
    while (rc == 0 && done < length) {
        while (inflight < DEPTH && next < length) {
            struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
            if (!sqe)
                break;
            unsigned n = length - next < CHUNK ? (unsigned)(length - next) : CHUNK;
            io_uring_prep_read(sqe, fd, buf + next, n, offset + next);
            /* The chunk's start and length ride in user_data to resubmit a short read. */
            io_uring_sqe_set_data64(sqe, next << 21 | n);
            next += n;
            inflight++;
        }
        int s = io_uring_submit(&ring);
        if (s < 0) {
            rc = s;
            break;
        }
        struct io_uring_cqe *cqe;
        s = io_uring_wait_cqe(&ring, &cqe);
        if (s < 0) {
            rc = s;
            break;
        }
        uint64_t data = io_uring_cqe_get_data64(cqe);
        int res = cqe->res;
        io_uring_cqe_seen(&ring, cqe);
        inflight--;
        uint64_t start = data >> 21;
        unsigned n = (unsigned)(data & ((1u << 21) - 1));
        if (res < 0) {
            rc = res;
        } else if (res == 0) {
            rc = reel__fail(-EIO, "the file ended %llu bytes early",
                            (unsigned long long)(length - done));
        } else {
            done += (unsigned)res;
            if ((unsigned)res < n) { /* short read: ask for the rest of the chunk */
                struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
                if (!sqe) {
                    rc = -EBUSY;
                    break;
                }
                io_uring_prep_read(sqe, fd, buf + start + res, n - (unsigned)res,
                                   offset + start + (unsigned)res);
                io_uring_sqe_set_data64(sqe, (start + (unsigned)res) << 21 | (n - (unsigned)res));
                inflight++;
            }
        }
    }
    /* On failure, wait for what is still in flight: it writes into buf. */
    while (inflight > 0) {
        struct io_uring_cqe *cqe;
        io_uring_submit(&ring);
        if (io_uring_wait_cqe(&ring, &cqe) < 0)
            break;
        io_uring_cqe_seen(&ring, cqe);
        inflight--;
    }
    io_uring_queue_exit(&ring);
    return rc;
}

REEL_API int reel_obj_put_file(reel_store *s, const reel_id *id, const char *path, uint64_t offset,
                               uint64_t length, const void *meta, uint32_t meta_size,
                               uint32_t flags, int timeout_ms, uint64_t *size_out) {
    reel__clear_error();
    if (!s || !id || !path)
        return -EINVAL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return reel__fail(-e, "cannot open %s: %s", path, strerror(e));
    }
    struct stat st;
    int rc = fstat(fd, &st) == 0 ? 0 : -errno;
    if (rc == 0 && !S_ISREG(st.st_mode))
        rc = reel__fail(-EINVAL, "%s is not a regular file", path);
    uint64_t fsize = rc == 0 ? (uint64_t)st.st_size : 0;
    if (rc == 0 && (offset > fsize || (length && length > fsize - offset)))
        rc = reel__fail(-EINVAL, "%s: range %llu+%llu is outside its %llu bytes", path,
                        (unsigned long long)offset, (unsigned long long)length,
                        (unsigned long long)fsize);
    if (rc == 0 && length == 0)
        length = fsize - offset;
    void *buf = NULL;
    if (rc == 0)
        rc = reel_obj_create(s, id, length, meta, meta_size, flags, timeout_ms, &buf);
    if (rc == 0 && length > 0) {
        rc = read_all(fd, buf, offset, length);
        if (rc)
            reel_obj_abort(s, id);
    }
    if (rc == 0)
        rc = reel_obj_seal(s, id);
    close(fd);
    if (rc == 0 && size_out)
        *size_out = length;
    return rc;
}
