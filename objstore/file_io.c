/* Files and the store: bytes move between a file and an object's buffer
 * directly, in large chunks; reads with io_uring, several requests in
 * flight, writes with pwrite(). Used to read files into objects and to
 * spill objects to disk and back. */
#include "store_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK (4u << 20) /* bytes per request */
#define DEPTH 4u         /* requests in flight: more only contend for the file */

/* Where io_uring is not allowed (a seccomp filter, an old kernel): pread/pwrite. */
static int io_plain(int fd, const reel__io_piece *pieces, size_t n, int write) {
    for (size_t p = 0; p < n; p++) {
        uint64_t done = 0;
        while (done < pieces[p].length) {
            uint64_t left = pieces[p].length - done;
            size_t len = left < CHUNK ? (size_t)left : CHUNK;
            uint8_t *buf = (uint8_t *)pieces[p].buf + done;
            off_t at = (off_t)(pieces[p].offset + done);
            ssize_t r = write ? pwrite(fd, buf, len, at) : pread(fd, buf, len, at);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0)
                return -errno;
            if (r == 0)
                return reel__fail(-EIO, "the file ended %llu bytes early",
                                  (unsigned long long)left);
            done += (uint64_t)r;
        }
    }
    return 0;
}

/* One request in flight: which bytes it moves. */
typedef struct io_request {
    uint8_t *buf;
    uint64_t offset;
    unsigned length;
} io_request;

static void prep(struct io_uring_sqe *sqe, int fd, const io_request *r, int write, unsigned slot) {
    if (write)
        io_uring_prep_write(sqe, fd, r->buf, r->length, r->offset);
    else
        io_uring_prep_read(sqe, fd, r->buf, r->length, r->offset);
    io_uring_sqe_set_data64(sqe, slot);
}

/* One ring per thread, set up on first use and kept: setting one up costs
 * tens of microseconds, as much as reading a whole 1 MiB object. It is closed
 * when its thread ends. A child after fork() must not share its parent's
 * ring: it makes its own. Only success is kept: a failed setup (out of fds,
 * say) is tried again by the next call, which meanwhile uses pread/pwrite. */
typedef struct thread_ring {
    struct io_uring ring;
    pid_t pid;
} thread_ring;

static pthread_key_t ring_key;
static pthread_once_t ring_key_once = PTHREAD_ONCE_INIT;

static void ring_destroy(void *p) {
    thread_ring *t = p;
    if (t->pid == getpid())
        io_uring_queue_exit(&t->ring);
    free(t);
}

static void ring_key_create(void) {
    pthread_key_create(&ring_key, ring_destroy);
}

/* Returns this thread's ring, or NULL where none can be had now. */
static struct io_uring *get_ring(void) {
    pthread_once(&ring_key_once, ring_key_create);
    thread_ring *t = pthread_getspecific(ring_key);
    if (t && t->pid != getpid()) { /* inherited across fork(): the parent's */
        io_uring_queue_exit(&t->ring);
        free(t);
        t = NULL;
        pthread_setspecific(ring_key, NULL);
    }
    if (!t) {
        t = calloc(1, sizeof *t);
        if (!t)
            return NULL;
        if (io_uring_queue_init(DEPTH, &t->ring, 0) < 0) {
            free(t);
            return NULL;
        }
        t->pid = getpid();
        pthread_setspecific(ring_key, t);
    }
    return &t->ring;
}

static void drop_ring(void) {
    thread_ring *t = pthread_getspecific(ring_key);
    if (t) {
        io_uring_queue_exit(&t->ring);
        free(t);
        pthread_setspecific(ring_key, NULL);
    }
}

int reel__io_pieces(int fd, const reel__io_piece *pieces, size_t n, int write) {
    /* Writes go through pwrite() in the caller's thread. A buffered write
     * does not complete inside io_uring_enter() (profiled: every request
     * went to an io-wq worker, iou-wrk), and the workers then take turns
     * at the file's inode lock: requests in flight bought nothing, and the
     * hand-offs cost a third of the speed of write() on some machines
     * (bench/README.md). Reads from the page cache do complete inline, and
     * reads from disk overlap: they keep the ring. */
    if (write)
        return io_plain(fd, pieces, n, write);
    struct io_uring *rp = get_ring();
    if (!rp)
        return io_plain(fd, pieces, n, write);
    int rc = 0;
    io_request reqs[DEPTH];
    unsigned free_slots[DEPTH], nfree = DEPTH, inflight = 0;
    for (unsigned i = 0; i < DEPTH; i++)
        free_slots[i] = i;
    size_t piece = 0;
    uint64_t pos = 0; /* next byte of pieces[piece] not yet asked for */
    for (;;) {
        /* Keep DEPTH requests of up to CHUNK bytes in flight, in file order. */
        while (rc == 0 && nfree > 0 && piece < n) {
            if (pos == pieces[piece].length) {
                piece++;
                pos = 0;
                continue;
            }
            uint64_t left = pieces[piece].length - pos;
            unsigned slot = free_slots[--nfree];
            reqs[slot] = (io_request){.buf = (uint8_t *)pieces[piece].buf + pos,
                                      .offset = pieces[piece].offset + pos,
                                      .length = left < CHUNK ? (unsigned)left : CHUNK};
            pos += reqs[slot].length;
            prep(io_uring_get_sqe(rp), fd, &reqs[slot], write, slot);
            inflight++;
        }
        if (inflight == 0)
            break;
        int r = io_uring_submit_and_wait(rp, 1);
        if (r < 0 && r != -EINTR) {
            rc = rc ? rc : r;
            break; /* nothing more completes: the kernel has it all or nothing */
        }
        struct io_uring_cqe *cqe;
        while (io_uring_peek_cqe(rp, &cqe) == 0) {
            unsigned slot = (unsigned)io_uring_cqe_get_data64(cqe);
            int res = cqe->res;
            io_uring_cqe_seen(rp, cqe);
            inflight--;
            io_request *q = &reqs[slot];
            if (rc == 0 && res < 0)
                rc = res;
            else if (rc == 0 && res == 0)
                rc = reel__fail(-EIO, "the file ended %u bytes early", q->length);
            if (rc == 0 && (unsigned)res < q->length) { /* short: the rest again */
                q->buf += res;
                q->offset += (unsigned)res;
                q->length -= (unsigned)res;
                prep(io_uring_get_sqe(rp), fd, q, write, slot);
                inflight++;
            } else {
                free_slots[nfree++] = slot;
            }
        }
    }
    if (inflight > 0) { /* gave up with requests in flight: this ring is spent */
        /* Wait for them first: they write into memory the caller will reuse. */
        struct io_uring_cqe *cqe;
        while (inflight > 0 && io_uring_wait_cqe(rp, &cqe) == 0) {
            io_uring_cqe_seen(rp, cqe);
            inflight--;
        }
        drop_ring();
    }
    return rc;
}

int reel__read_range(int fd, void *buf, uint64_t offset, uint64_t length) {
    reel__io_piece p = {buf, offset, length};
    return reel__io_pieces(fd, &p, 1, 0);
}

REEL_API int reel_file_read(int fd, void *buf, uint64_t offset, uint64_t length) {
    REEL_NEED(buf || length == 0, "buf");
    if (fd < 0)
        return reel__fail(-EINVAL, "reel_file_read: fd is %d", fd);
    return length ? reel__read_range(fd, buf, offset, length) : 0;
}

REEL_API int reel_obj_put_file(reel_store *s, const reel_id *id, const char *path, uint64_t offset,
                               uint64_t length, const void *meta, uint32_t meta_size,
                               uint32_t flags, int timeout_ms, uint64_t *size_out) {
    REEL_NEED(s, "store");
    REEL_NEED(id, "id");
    REEL_NEED(path, "path");
    REEL_NEED(meta || meta_size == 0, "meta");
    reel__clear_error();
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
        rc = reel__read_range(fd, buf, offset, length);
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

REEL_INTERNAL unsigned
reel__each_left_by_the_dead(const char *in, const char *prefix, int any_suffix,
                            void (*fn)(const char *dir, const char *name, void *arg), void *arg) {
    char dir[256];
    if (in)
        snprintf(dir, sizeof dir, "%s", in);
    else if (reel__private_dir(dir, sizeof dir) != 0)
        return 0;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    size_t plen = strlen(prefix);
    unsigned n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, prefix, plen) != 0)
            continue;
        char *end;
        errno = 0;
        long pid = strtol(e->d_name + plen, &end, 10);
        if (end == e->d_name + plen || errno || pid <= 0 || pid > INT32_MAX ||
            (*end && !(any_suffix && *end == '-')))
            continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        fn(dir, e->d_name, arg);
        n++;
    }
    closedir(d);
    return n;
}

REEL_INTERNAL int reel__private_dir(char *buf, size_t cap) {
    uid_t uid = geteuid();
    if ((size_t)snprintf(buf, cap, "/dev/shm/reel-%u", (unsigned)uid) >= cap)
        return -ENAMETOOLONG;
    if (mkdir(buf, 0700) != 0 && errno != EEXIST)
        return reel__fail(-errno, "cannot make %s: %s", buf, strerror(errno));
    struct stat st;
    if (lstat(buf, &st) != 0)
        return reel__fail(-errno, "cannot check %s: %s", buf, strerror(errno));
    if (!S_ISDIR(st.st_mode) || st.st_uid != uid || (st.st_mode & 077) != 0)
        return reel__fail(-EACCES,
                          "%s is not a private directory of this user (owner %u, mode %03o): "
                          "remove it, or ask who made it",
                          buf, (unsigned)st.st_uid, (unsigned)(st.st_mode & 0777));
    return 0;
}
