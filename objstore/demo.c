/*
 * reel-store-demo: a short tour of the object store, run by the README's
 * first command until the real main job exists.
 *
 * The parent creates a store and forks a reader. The reader attaches as a
 * second client and waits in reel_obj_get() for frames the parent has not
 * created yet; the parent creates, fills and seals each frame; the reader
 * checks its content hash and reports back over a pipe when it got the view,
 * so the hand-off (seal -> reader holds the view) is measured on one clock.
 * Half the frames find the reader asleep on its futex, half find it spinning.
 * Then content-addressed puts show deduplication, and the store is emptied
 * and removed (or, with --keep, left for reel-inspect).
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <reel/store.h>

#define PROG "reel-store-demo"

#define FRAME_W      640u
#define FRAME_H      360u
#define FRAME_C      3u
#define FRAME_BYTES  ((size_t)FRAME_W * FRAME_H * FRAME_C)
#define FRAMES       8u /* the first half with the reader asleep, the rest spinning */
#define CAPACITY     (64ull << 20)
#define GET_WAIT_MS  10000       /* the reader's wait for one frame */
#define MSG_WAIT_MS  15000       /* the parent's wait for a word from the reader */
#define SLEEP_NS     2000000L    /* long enough for the reader to fall asleep */
#define SPIN_NS      20000000ull /* the reader's spin in the spinning half */
#define BLOB_BYTES   (1u << 20)
#define GET_ROUNDS   10000u
#define MAX_KEPT_IDS (FRAMES + 4)

enum msg_type { MSG_ATTACHED = 1, MSG_WAITING, MSG_GOT, MSG_DONE, MSG_FAIL };

/* What the reader tells the parent; one write(2) each, below PIPE_BUF. */
struct msg {
    uint32_t type;
    uint32_t index;
    uint64_t t_ns; /* CLOCK_MONOTONIC, shared by both processes */
    reel_id hash;
    uint32_t ok; /* the content and metadata were as expected */
    char text[160];
};

struct demo {
    bool keep;
    reel_store *store;
    char path[4096];
    pid_t child;
    int rfd; /* the reader's messages */
    reel_id ids[MAX_KEPT_IDS];
    size_t nids;
};

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double us(uint64_t ns) {
    return (double)ns / 1e3;
}

static const char *fmt_bytes(uint64_t b, char *buf, size_t cap) {
    if (b < 1024)
        snprintf(buf, cap, "%" PRIu64 " B", b);
    else if (b < (1u << 20))
        snprintf(buf, cap, "%.1f KiB", (double)b / 1024);
    else
        snprintf(buf, cap, "%.1f MiB", (double)b / (1 << 20));
    return buf;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Sorts v and returns its median. */
static uint64_t median(uint64_t *v, size_t n) {
    qsort(v, n, sizeof(*v), cmp_u64);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Prints "what: error (detail)" and returns -1. */
static int fail(const char *what, int rc) {
    const char *detail = reel_last_error(); /* before any other reel call */
    fprintf(stderr, PROG ": %s: %s%s%s%s\n", what, reel_strerror(rc), detail[0] ? " (" : "", detail,
            detail[0] ? ")" : "");
    return -1;
}

/* A gradient that differs per frame, so each frame has its own hash. */
static void fill_frame(uint8_t *p, uint32_t index) {
    for (uint32_t y = 0; y < FRAME_H; y++) {
        for (uint32_t x = 0; x < FRAME_W; x++) {
            uint8_t *px = p + ((size_t)y * FRAME_W + x) * FRAME_C;
            px[0] = (uint8_t)(x * 255u / (FRAME_W - 1));
            px[1] = (uint8_t)(y * 255u / (FRAME_H - 1));
            px[2] = (uint8_t)((x + y) / 4u + index * 32u);
        }
    }
}

static int frame_meta(uint32_t index, uint8_t *buf, size_t cap, size_t *len) {
    reel_meta m;
    memset(&m, 0, sizeof(m));
    m.kind = REEL_META_FRAME;
    m.dtype = REEL_DTYPE_U8;
    m.ndim = 3;
    m.shape[0] = FRAME_H;
    m.shape[1] = FRAME_W;
    m.shape[2] = FRAME_C;
    snprintf(m.format, sizeof(m.format), "rgb24");
    m.pts_us = (int64_t)index * 33333;
    m.duration_us = 33333;
    return reel_meta_encode(&m, buf, cap, len);
}

/* ---- the reader (child) --------------------------------------------------- */

static void send_msg(int fd, uint32_t type, uint32_t index, const char *text) {
    struct msg m;
    memset(&m, 0, sizeof(m));
    m.type = type;
    m.index = index;
    m.t_ns = now_ns();
    if (text)
        snprintf(m.text, sizeof(m.text), "%s", text);
    if (write(fd, &m, sizeof(m)) != (ssize_t)sizeof(m))
        _exit(3);
}

static void send_fail(int fd, uint32_t index, const char *what, int rc) {
    char text[160];
    const char *detail = reel_last_error();
    snprintf(text, sizeof(text), "%s: %s%s%s%s", what, reel_strerror(rc), detail[0] ? " (" : "",
             detail, detail[0] ? ")" : "");
    send_msg(fd, MSG_FAIL, index, text);
    _exit(1);
}

static bool frame_meta_ok(const reel_view *v) {
    reel_meta m;
    if (reel_meta_decode(v->meta, v->meta_size, &m) != 0)
        return false;
    return m.kind == REEL_META_FRAME && m.dtype == REEL_DTYPE_U8 && m.ndim == 3 &&
           m.shape[0] == FRAME_H && m.shape[1] == FRAME_W && m.shape[2] == FRAME_C &&
           strcmp(m.format, "rgb24") == 0;
}

static _Noreturn void reader(const char *path, const reel_id *base, pid_t parent, int fd) {
    reel_store *store;
    uint8_t *expected = malloc(FRAME_BYTES);
    int rc;

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(1);
    if (!expected) {
        send_fail(fd, 0, "reader: cannot allocate", -ENOMEM);
    }
    rc = reel_store_open(path, 0, &store);
    if (rc)
        send_fail(fd, 0, "reader: cannot open the store", rc);
    send_msg(fd, MSG_ATTACHED, 0, NULL);

    for (uint32_t i = 0; i < FRAMES; i++) {
        reel_id id;
        reel_view v;
        reel_id_derive(base, i, &id);
        reel_store_set_spin_ns(store, i < FRAMES / 2 ? 50000 : SPIN_NS);
        send_msg(fd, MSG_WAITING, i, NULL);
        rc = reel_obj_get(store, &id, 1, GET_WAIT_MS, &v);
        uint64_t woke = now_ns();
        if (rc)
            send_fail(fd, i, "reader: reel_obj_get", rc);

        struct msg m;
        memset(&m, 0, sizeof(m));
        m.type = MSG_GOT;
        m.index = i;
        m.t_ns = woke;
        reel_id want;
        fill_frame(expected, i);
        reel_id_from_content(expected, FRAME_BYTES, &want);
        if (v.size == FRAME_BYTES)
            reel_id_from_content(v.data, v.size, &m.hash);
        m.ok = v.size == FRAME_BYTES && reel_id_equal(&m.hash, &want) && frame_meta_ok(&v);
        if (!m.ok)
            snprintf(m.text, sizeof(m.text),
                     "frame %" PRIu32 ": size %" PRIu64 ", hash or metadata not as written", i,
                     v.size);
        rc = reel_obj_release(store, &id);
        if (rc)
            send_fail(fd, i, "reader: reel_obj_release", rc);
        if (write(fd, &m, sizeof(m)) != (ssize_t)sizeof(m))
            _exit(3);
    }
    rc = reel_store_close(store);
    if (rc)
        send_fail(fd, FRAMES, "reader: reel_store_close", rc);
    send_msg(fd, MSG_DONE, FRAMES, NULL);
    free(expected);
    _exit(0);
}

/* ---- the parent ------------------------------------------------------------ */

/* Waits for the reader to end (killing it first if kill_it) and, unless
 * killed, says how it ended. Returns 0 if it exited with status 0. */
static int reap(struct demo *d, bool kill_it) {
    int st = 0;
    if (d->child <= 0)
        return 0;
    if (kill_it)
        kill(d->child, SIGKILL);
    while (waitpid(d->child, &st, 0) < 0 && errno == EINTR)
        ;
    pid_t pid = d->child;
    d->child = 0;
    if (kill_it)
        return -1;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
        printf("  the reader (pid %ld) detached and exited with status 0\n", (long)pid);
        return 0;
    }
    if (WIFEXITED(st))
        fprintf(stderr, PROG ": the reader exited with status %d\n", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        fprintf(stderr, PROG ": the reader was killed by signal %d (%s)\n", WTERMSIG(st),
                strsignal(WTERMSIG(st)));
    return -1;
}

/* Waits for the reader's next message, which must be of type want. */
static int expect(struct demo *d, uint32_t want, uint32_t index, struct msg *m) {
    struct pollfd p = {.fd = d->rfd, .events = POLLIN};
    size_t got = 0;
    while (got < sizeof(*m)) {
        int n = poll(&p, 1, MSG_WAIT_MS);
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0) {
            fprintf(stderr, PROG ": the reader said nothing for %d s\n", MSG_WAIT_MS / 1000);
            return -1;
        }
        ssize_t r = read(d->rfd, (char *)m + got, sizeof(*m) - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            fprintf(stderr, PROG ": the reader went away%s%s\n", r < 0 ? ": " : "",
                    r < 0 ? strerror(errno) : "");
            reap(d, false);
            return -1;
        }
        got += (size_t)r;
    }
    m->text[sizeof(m->text) - 1] = '\0';
    if (m->type == MSG_FAIL) {
        fprintf(stderr, PROG ": %s\n", m->text);
        return -1;
    }
    if (m->type != want || m->index != index) {
        fprintf(stderr, PROG ": unexpected message %" PRIu32 "/%" PRIu32 " from the reader\n",
                m->type, m->index);
        return -1;
    }
    return 0;
}

static int put_blob(struct demo *d, const reel_id *id, const void *data, uint64_t size,
                    const reel_meta *m, uint32_t flags, const char *what) {
    uint8_t meta[512];
    size_t len;
    reel_id copy = *id;
    int rc = reel_meta_encode(m, meta, sizeof(meta), &len);
    if (rc)
        return fail("reel_meta_encode", rc);
    rc = reel_obj_put(d->store, &copy, data, size, meta, (uint32_t)len, flags, 1000);
    if (rc)
        return fail(what, rc);
    d->ids[d->nids++] = copy;
    return 0;
}

static int stats(struct demo *d, reel_store_stats *st) {
    int rc = reel_store_stats_get(d->store, st);
    return rc ? fail("reel_store_stats_get", rc) : 0;
}

static int run(struct demo *d) {
    uint64_t t_create[FRAMES], t_fill[FRAMES], t_seal[FRAMES], t_hand[FRAMES];
    reel_id base, frame0_hash;
    uint8_t meta[256];
    size_t meta_len;
    char a[32], b[32], hex[REEL_ID_HEX_LEN + 1];
    struct msg m;
    int fds[2], rc;

    memset(&frame0_hash, 0, sizeof(frame0_hash));
    rc = reel_id_random(&base);
    if (rc)
        return fail("reel_id_random", rc);
    if (pipe(fds) != 0) {
        fprintf(stderr, PROG ": pipe: %s\n", strerror(errno));
        return -1;
    }
    fflush(NULL); /* nothing buffered may be written twice */
    pid_t parent = getpid();
    d->child = fork();
    if (d->child < 0) {
        fprintf(stderr, PROG ": fork: %s\n", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (d->child == 0) {
        close(fds[0]);
        reader(d->path, &base, parent, fds[1]); /* never returns */
    }
    close(fds[1]);
    d->rfd = fds[0];

    if (expect(d, MSG_ATTACHED, 0, &m))
        return -1;
    printf("  reader process %ld attached as a second client\n", (long)d->child);

    for (uint32_t i = 0; i < FRAMES; i++) {
        bool asleep = i < FRAMES / 2;
        reel_id id;
        void *buf;
        reel_id_derive(&base, i, &id);
        rc = frame_meta(i, meta, sizeof(meta), &meta_len);
        if (rc)
            return fail("reel_meta_encode", rc);
        if (asleep) {
            /* The reader asks before the frame exists and falls asleep. */
            if (expect(d, MSG_WAITING, i, &m))
                return -1;
            struct timespec pause = {0, SLEEP_NS};
            nanosleep(&pause, NULL);
        }
        uint64_t t0 = now_ns();
        rc = reel_obj_create(d->store, &id, FRAME_BYTES, meta, (uint32_t)meta_len, 0, 1000, &buf);
        if (rc)
            return fail("reel_obj_create (frame)", rc);
        uint64_t t1 = now_ns();
        fill_frame(buf, i);
        uint64_t t2 = now_ns();
        if (!asleep) {
            /* The frame is ready first; the reader asks and spins. */
            if (expect(d, MSG_WAITING, i, &m))
                return -1;
        }
        uint64_t t3 = now_ns();
        rc = reel_obj_seal(d->store, &id);
        uint64_t t4 = now_ns();
        if (rc)
            return fail("reel_obj_seal", rc);
        d->ids[d->nids++] = id;
        if (expect(d, MSG_GOT, i, &m))
            return -1;
        if (!m.ok) {
            fprintf(stderr, PROG ": the reader found %s\n", m.text);
            return -1;
        }
        if (i == 0)
            frame0_hash = m.hash;
        t_create[i] = t1 - t0;
        t_fill[i] = t2 - t1;
        t_seal[i] = t4 - t3;
        t_hand[i] = m.t_ns > t3 ? m.t_ns - t3 : 0;
    }
    if (expect(d, MSG_DONE, FRAMES, &m))
        return -1;

    const size_t half = FRAMES / 2;
    uint64_t asleep_min, asleep_max, spin_min, spin_max, asleep_med, spin_med;
    asleep_med = median(t_hand, half);
    asleep_min = t_hand[0];
    asleep_max = t_hand[half - 1];
    spin_med = median(t_hand + half, FRAMES - half);
    spin_min = t_hand[half];
    spin_max = t_hand[FRAMES - 1];
    printf("  %u frames %ux%u rgb24 (%s each): create %.1f us, fill %.1f us, seal %.1f us "
           "(medians)\n",
           FRAMES, FRAME_W, FRAME_H, fmt_bytes(FRAME_BYTES, a, sizeof(a)),
           us(median(t_create, FRAMES)), us(median(t_fill, FRAMES)), us(median(t_seal, FRAMES)));
    reel_id_to_hex(&frame0_hash, hex);
    printf("  the reader checked every frame's content hash and metadata: all %u match "
           "(frame 0: %s)\n",
           FRAMES, hex);
    printf("  hand-off, reader asleep in reel_obj_get: seal -> reader holds the view in %.1f us "
           "(median of %zu; %.1f..%.1f)\n",
           us(asleep_med), half, us(asleep_min), us(asleep_max));
    printf("  hand-off, reader spinning in reel_obj_get: %.1f us (median of %zu; %.1f..%.1f)\n",
           us(spin_med), FRAMES - half, us(spin_min), us(spin_max));
    if (reap(d, false) != 0)
        return -1;

    /* A zero-copy get is a table lookup and a counter, whatever the size. */
    reel_view v;
    uint64_t g0 = now_ns();
    for (uint32_t r = 0; r < GET_ROUNDS; r++) {
        rc = reel_obj_get(d->store, &d->ids[0], 1, 0, &v);
        if (rc)
            return fail("reel_obj_get", rc);
        rc = reel_obj_release(d->store, &d->ids[0]);
        if (rc)
            return fail("reel_obj_release", rc);
    }
    uint64_t g1 = now_ns();
    printf("  zero-copy get + release of a sealed frame: %.2f us (mean of %u)\n",
           us(g1 - g0) / GET_ROUNDS, GET_ROUNDS);

    /* Content-addressed: the same bytes put twice are stored once. */
    uint8_t *blob = malloc(BLOB_BYTES);
    if (!blob) {
        fprintf(stderr, PROG ": out of memory\n");
        return -1;
    }
    for (size_t k = 0; k < BLOB_BYTES; k++)
        blob[k] = (uint8_t)(k * 2654435761u >> 24);
    reel_meta bm;
    memset(&bm, 0, sizeof(bm));
    bm.kind = REEL_META_BYTES;
    rc = reel_meta_encode(&bm, meta, sizeof(meta), &meta_len);
    if (rc) {
        free(blob);
        return fail("reel_meta_encode", rc);
    }
    reel_id cid1, cid2;
    reel_store_stats s0, s1, s2;
    memset(&cid1, 0, sizeof(cid1));
    memset(&cid2, 0, sizeof(cid2));
    if (stats(d, &s0)) {
        free(blob);
        return -1;
    }
    uint64_t p0 = now_ns();
    rc = reel_obj_put(d->store, &cid1, blob, BLOB_BYTES, meta, (uint32_t)meta_len,
                      REEL_OBJ_CONTENT_ID, 1000);
    uint64_t p1 = now_ns();
    if (rc) {
        free(blob);
        return fail("reel_obj_put (content-addressed)", rc);
    }
    d->ids[d->nids++] = cid1;
    if (stats(d, &s1)) {
        free(blob);
        return -1;
    }
    uint64_t p2 = now_ns();
    rc = reel_obj_put(d->store, &cid2, blob, BLOB_BYTES, meta, (uint32_t)meta_len,
                      REEL_OBJ_CONTENT_ID, 1000);
    uint64_t p3 = now_ns();
    free(blob);
    if (rc)
        return fail("reel_obj_put (content-addressed, again)", rc);
    if (stats(d, &s2))
        return -1;
    reel_id_to_hex(&cid1, hex);
    bool same = reel_id_equal(&cid1, &cid2);
    bool dedup = same && s2.objects == s1.objects && s2.used == s1.used;
    printf("  content-addressed put of %s: first %.1f us (copied; id %s)\n",
           fmt_bytes(BLOB_BYTES, a, sizeof(a)), us(p1 - p0), hex);
    printf("  the same bytes again: %.1f us, %s (objects %" PRIu32 " -> %" PRIu32 " -> %" PRIu32
           ")\n",
           us(p3 - p2), dedup ? "deduplicated: same id, nothing copied" : "NOT deduplicated",
           s0.objects, s1.objects, s2.objects);
    if (!dedup) {
        fprintf(stderr, PROG ": the second content-addressed put %s\n",
                same ? "changed the store" : "returned another id");
        return -1;
    }
    /* Anyone holding the bytes' address can get them, and check them against it. */
    reel_id check;
    uint64_t q0 = now_ns();
    rc = reel_obj_get(d->store, &cid1, 1, 0, &v);
    uint64_t q1 = now_ns();
    if (rc)
        return fail("reel_obj_get (content-addressed)", rc);
    reel_id_from_content(v.data, v.size, &check);
    bool intact = v.size == BLOB_BYTES && reel_id_equal(&check, &cid1);
    rc = reel_obj_release(d->store, &cid1);
    if (rc)
        return fail("reel_obj_release", rc);
    printf("  get by that id: %.1f us, zero-copy; the bytes %s their id\n", us(q1 - q0),
           intact ? "hash to" : "DO NOT hash to");
    if (!intact) {
        fprintf(stderr, PROG ": the content-addressed object does not match its id\n");
        return -1;
    }

    /* Two more kinds of object, so that reel-inspect has something to show. */
    float *tensor = calloc(3 * 224 * 224, sizeof(float));
    if (!tensor) {
        fprintf(stderr, PROG ": out of memory\n");
        return -1;
    }
    for (size_t k = 0; k < 3 * 224 * 224; k++)
        tensor[k] = (float)(k % 224) / 224.0f;
    reel_meta tm;
    memset(&tm, 0, sizeof(tm));
    tm.kind = REEL_META_TENSOR;
    tm.dtype = REEL_DTYPE_F32;
    tm.ndim = 3;
    tm.shape[0] = 3;
    tm.shape[1] = 224;
    tm.shape[2] = 224;
    reel_id tid, eid;
    reel_id_derive(&base, 1000, &tid);
    rc = put_blob(d, &tid, tensor, 3 * 224 * 224 * sizeof(float), &tm, 0, "reel_obj_put (tensor)");
    free(tensor);
    if (rc)
        return -1;

    uint8_t stream[4096];
    for (size_t k = 0; k < sizeof(stream); k++)
        stream[k] = (uint8_t)(k % 251);
    memcpy(stream, "\0\0\0\1\x67", 5); /* looks like an H.264 SPS */
    reel_meta em;
    memset(&em, 0, sizeof(em));
    em.kind = REEL_META_ENCODED;
    snprintf(em.format, sizeof(em.format), "h264");
    em.duration_us = 2000000;
    reel_id_derive(&base, 1001, &eid);
    if (put_blob(d, &eid, stream, sizeof(stream), &em, REEL_OBJ_EVICTABLE,
                 "reel_obj_put (encoded)"))
        return -1;
    printf("  also put: a tensor f32[3,224,224] and 4 KiB of encoded h264 (evictable)\n");

    reel_store_stats st;
    if (stats(d, &st))
        return -1;
    printf("  store now: %" PRIu32 " objects, used %s (%.1f%%), free %s\n", st.objects,
           fmt_bytes(st.used, a, sizeof(a)), 100.0 * (double)st.used / (double)st.capacity,
           fmt_bytes(st.free, b, sizeof(b)));

    if (d->keep)
        return 0;
    for (size_t k = 0; k < d->nids; k++) {
        rc = reel_obj_delete(d->store, &d->ids[k]);
        if (rc)
            return fail("reel_obj_delete", rc);
    }
    if (stats(d, &st))
        return -1;
    printf("  deleted %zu objects: the store holds %" PRIu32 ", used %s\n", d->nids, st.objects,
           fmt_bytes(st.used, a, sizeof(a)));
    if (st.objects != 0) {
        fprintf(stderr, PROG ": %" PRIu32 " objects are left after deleting every one\n",
                st.objects);
        return -1;
    }
    return 0;
}

static void usage(FILE *f) {
    fputs("usage: " PROG " [--keep]\n"
          "\n"
          "A short tour of the reel object store: creates a 64 MiB store under /dev/shm,\n"
          "hands frames to a second process through it (zero-copy; the reader checks\n"
          "every frame's content hash), shows deduplicated content-addressed puts,\n"
          "prints timings, then deletes everything and removes the store.\n"
          "\n"
          "  --keep      leave the store and a few objects in it, and print its path, so\n"
          "              that reel-inspect can look inside (remove it with rm)\n"
          "  -h, --help  show this text\n",
          f);
}

int main(int argc, char **argv) {
    struct demo d;
    reel_store_options opts;
    char a[32];
    int rc, status = 0;

    memset(&d, 0, sizeof(d));
    d.rfd = -1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--keep") == 0) {
            d.keep = true;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, PROG ": unknown argument '%s' (see --help)\n", argv[i]);
            return 2;
        }
    }

    memset(&opts, 0, sizeof(opts));
    opts.capacity = CAPACITY;
    char name[64];
    uint64_t t0 = now_ns();
    rc = -EEXIST;
    for (int n = 0; n < 100 && rc == -EEXIST; n++) {
        if (n == 0)
            snprintf(name, sizeof(name), "reel-demo-%ld", (long)getpid());
        else
            snprintf(name, sizeof(name), "reel-demo-%ld-%d", (long)getpid(), n);
        rc = reel_store_create(name, &opts, &d.store);
    }
    uint64_t t1 = now_ns();
    if (rc) {
        char what[128];
        snprintf(what, sizeof(what), "cannot create the store /dev/shm/%s", name);
        fail(what, rc);
        return 1;
    }
    snprintf(d.path, sizeof(d.path), "%s", reel_store_path(d.store));
    printf(PROG ": a tour of the reel object store\n");
    printf("  created the store %s: %s, pre-faulted, in %.1f ms\n", d.path,
           fmt_bytes(CAPACITY, a, sizeof(a)), us(t1 - t0) / 1e3);

    if (run(&d) != 0)
        status = 1;

    reap(&d, true); /* only still running after a failure */
    if (d.rfd >= 0)
        close(d.rfd);
    rc = reel_store_close(d.store);
    if (rc && status == 0) {
        fail("reel_store_close", rc);
        status = 1;
    }
    if (d.keep) {
        printf("  kept the store: %s\n"
               "  look inside:    reel-inspect %s\n"
               "  remove it:      rm %s\n",
               d.path, d.path, d.path);
    } else {
        rc = reel_store_destroy(d.path);
        if (rc && status == 0) {
            fail("reel_store_destroy", rc);
            status = 1;
        } else if (rc == 0 && status == 0) {
            printf("  the store is destroyed\n");
        }
    }
    if (status == 0)
        printf(PROG ": done\n");
    else
        fprintf(stderr, PROG ": failed; see above\n");
    return status;
}
