/*
 * The status segment of a running pipeline; its layout and the sequence lock
 * are described at the top of status.h.
 *
 * Creation is atomic: the writer fills a private file (O_EXCL, under a
 * dot-name that nobody lists) and then links it to the public name, so a
 * reader or a second creator never meets a half-written header, and a crash
 * never leaves a public file without its pid.
 *
 * The payload is moved as 64-bit words, stored with release and loaded with
 * acquire: the writer makes seq odd, stores the words, makes seq even with
 * release; the reader loads seq with acquire, then the words, then seq
 * again. A reader that loads any word of a newer write synchronizes with that
 * store, so its second look at seq sees the odd value (or later) and the copy
 * is thrown away; one that sees the same even seq twice read no newer word.
 * Per-word ordering instead of standalone fences because ThreadSanitizer does
 * not model fences (GCC refuses them under -fsanitize=thread); on x86 these
 * loads and stores are plain moves anyway. Every access to the shared bytes
 * is atomic, so there is no data race in C11's sense. (A memcpy under the
 * lock would work on every machine reel runs on, but is a race by the letter
 * of the standard and a report under ThreadSanitizer.)
 */
#include "status.h"
#include "store_internal.h" /* reel__fail, reel__process_start_time */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Segments live in this user's private directory (reel__private_dir). */
#define STATUS_WORDS (sizeof(reel_pipeline_status) / sizeof(uint64_t))
#define PATH_CAP     (64 + sizeof REEL_STATUS_PREFIX + REEL_STATUS_NAME_MAX)

/* A reader gives up after this many copies that overlapped a write; the
 * writer rewrites a few kilobytes at most every few milliseconds, so two in a
 * row are already rare. */
#define READ_TRIES    20
#define READ_PAUSE_NS 100000L

/* A process that started this long after the run it is supposed to drive
 * holds a reused pid. Generous, so that a step of the wall clock is not
 * mistaken for reuse. */
#define PID_REUSE_SLACK_NS (60ull * 1000000000ull)

_Static_assert(sizeof(reel_pipeline_status) % sizeof(uint64_t) == 0,
               "the status is copied in 64-bit words");
_Static_assert(offsetof(status_segment, status) % sizeof(uint64_t) == 0,
               "the status is copied in aligned 64-bit words");
_Static_assert(sizeof(_Atomic uint64_t) == sizeof(uint64_t) && ATOMIC_LLONG_LOCK_FREE == 2,
               "64-bit atomics must be plain, lock-free words");
_Static_assert(sizeof(bool) == 1, "a bool is checked as one byte");

struct reel_status_writer {
    status_segment *seg;
    dev_t dev; /* the file's identity, so that close removes this file only */
    ino_t ino;
    uint64_t words[STATUS_WORDS]; /* the caller's status, staged as the words the lock copies */
    char path[PATH_CAP];
};

static uint64_t clock_ns(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The payload as the words it is copied in. Only ever accessed this way. */
static _Atomic uint64_t *payload(status_segment *seg) {
    return (_Atomic uint64_t *)(void *)&seg->status;
}

REEL_INTERNAL bool reel__status_name_ok(const char *name) {
    size_t n = 0;
    if (!name)
        return false;
    for (; name[n]; n++) {
        char c = name[n];
        if (n >= REEL_STATUS_NAME_MAX)
            return false;
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return n > 0;
}

static int bad_name(const char *name) {
    return reel__fail(-EINVAL,
                      "'%.*s' is not a status segment name (1 to %u characters of A-Z, a-z, 0-9, "
                      "'.', '_' and '-')",
                      name ? 64 : 6, name ? name : "(null)", REEL_STATUS_NAME_MAX);
}

/* Gone for sure: no such process, a zombie, or (when started_ns is given) a
 * process that started well after the run did, so its pid was reused. What
 * cannot be told counts as alive: replacing a live run's segment would hide
 * that run. */
static bool driver_alive(pid_t pid, uint64_t started_ns) {
    if (pid <= 0)
        return false;
    if (kill(pid, 0) != 0 && errno == ESRCH)
        return false;
    uint64_t ticks;
    char state = '?';
    int rc = reel__process_start_time(pid, &ticks, &state);
    if (rc == -ENOENT || rc == -ESRCH)
        return false;
    if (rc != 0)
        return true;
    if (state == 'Z' || state == 'X')
        return false;
    long hz = sysconf(_SC_CLK_TCK);
    if (started_ns == 0 || hz <= 0)
        return true;
    /* /proc gives the start in ticks since boot; CLOCK_BOOTTIME counts the same. */
    uint64_t since_boot = clock_ns(CLOCK_BOOTTIME), now = clock_ns(CLOCK_REALTIME);
    uint64_t start_since_boot = ticks * (1000000000u / (uint64_t)hz);
    if (start_since_boot > since_boot || since_boot - start_since_boot > now)
        return true;
    uint64_t start = now - (since_boot - start_since_boot);
    return start <= started_ns + PID_REUSE_SLACK_NS;
}

REEL_INTERNAL bool reel__status_pid_alive(pid_t pid) {
    return driver_alive(pid, 0);
}

REEL_INTERNAL int reel__status_remove_stale(const char *path, pid_t owner) {
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        return reel__fail(-EEXIST, "%s exists and cannot be opened to see whose it is (%s)", path,
                          strerror(errno));
    }
    struct stat st;
    status_segment h;
    const size_t head = offsetof(status_segment, seq);
    int rc = fstat(fd, &st) != 0 ? -errno : 0;
    if (rc == 0 &&
        (!S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
         st.st_size != (off_t)sizeof(status_segment) || pread(fd, &h, head, 0) != (ssize_t)head ||
         memcmp(h.magic, REEL_STATUS_MAGIC, sizeof h.magic) != 0 ||
         h.version != REEL_STATUS_VERSION || h.size != sizeof(status_segment)))
        rc = reel__fail(-EEXIST, "%s exists and is not a status segment of this user's", path);
    close(fd);
    if (rc == -EEXIST)
        return rc;
    if (rc != 0)
        return reel__fail(-EEXIST, "%s exists and cannot be examined (%s)", path, strerror(-rc));
    if (owner && h.pid != owner)
        return reel__fail(-EEXIST, "%s belongs to pid %d, not %d", path, (int)h.pid, (int)owner);
    if (driver_alive(h.pid, h.started_ns))
        return reel__fail(-EEXIST, "%s belongs to a running process (pid %d)", path, (int)h.pid);
    /* Only the file just judged: another creator may have replaced it since. */
    struct stat now;
    if (stat(path, &now) == 0 && now.st_dev == st.st_dev && now.st_ino == st.st_ino)
        unlink(path);
    return 0;
}

REEL_INTERNAL int reel__status_create(const char *name, reel_status_writer **out) {
    static _Atomic unsigned counter;
    char tmp[PATH_CAP + 40];
    int fd = -1, rc;

    if (!out)
        return -EINVAL;
    *out = NULL;
    if (!reel__status_name_ok(name))
        return bad_name(name);
    reel_status_writer *w = calloc(1, sizeof *w);
    if (!w)
        return -ENOMEM;
    w->seg = MAP_FAILED;
    char dir[64];
    rc = reel__private_dir(dir, sizeof dir);
    if (rc) {
        free(w);
        return rc;
    }
    snprintf(w->path, sizeof w->path, "%s/" REEL_STATUS_PREFIX "%s", dir, name);

    for (int i = 0; fd < 0 && i < 8; i++) {
        unsigned n = atomic_fetch_add_explicit(&counter, 1, memory_order_relaxed);
        snprintf(tmp, sizeof tmp, "%s/.%s%s.%ld.%u", dir, REEL_STATUS_PREFIX, name, (long)getpid(),
                 n);
        fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd < 0) {
        rc = reel__fail(-errno, "cannot create a file in %s for %s", dir, w->path);
        free(w);
        return rc;
    }
    struct stat st;
    if (fchmod(fd, 0600) != 0 || ftruncate(fd, sizeof(status_segment)) != 0 ||
        fstat(fd, &st) != 0) {
        rc = reel__fail(-errno, "cannot size the status segment %s", w->path);
        goto fail;
    }
    w->dev = st.st_dev;
    w->ino = st.st_ino;
    w->seg = mmap(NULL, sizeof(status_segment), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (w->seg == MAP_FAILED) {
        rc = reel__fail(-errno, "cannot map the status segment %s", w->path);
        goto fail;
    }
    close(fd);
    fd = -1;

    /* The file is zeroed: an empty status (no stages) is already valid. */
    memcpy(w->seg->magic, REEL_STATUS_MAGIC, sizeof w->seg->magic);
    w->seg->version = REEL_STATUS_VERSION;
    w->seg->size = sizeof(status_segment);
    w->seg->pid = (int32_t)getpid();
    w->seg->started_ns = clock_ns(CLOCK_REALTIME);
    atomic_store_explicit(&w->seg->seq, 0, memory_order_relaxed);

    for (int i = 0; i < 3; i++) {
        if (link(tmp, w->path) == 0) {
            unlink(tmp);
            *out = w;
            return 0;
        }
        if (errno != EEXIST) {
            rc = reel__fail(-errno, "cannot create the status segment %s", w->path);
            goto fail;
        }
        if ((rc = reel__status_remove_stale(w->path, 0)) != 0)
            goto fail;
    }
    rc = reel__fail(-EEXIST, "%s keeps being created by another process", w->path);
fail:
    if (fd >= 0)
        close(fd);
    if (w->seg != MAP_FAILED)
        munmap(w->seg, sizeof(status_segment));
    unlink(tmp);
    free(w);
    return rc;
}

REEL_INTERNAL void reel__status_publish(reel_status_writer *w, const reel_pipeline_status *s) {
    if (!w || !s)
        return;
    memcpy(w->words, s, sizeof *s);
    _Atomic uint64_t *dst = payload(w->seg);
    uint64_t seq = atomic_load_explicit(&w->seg->seq, memory_order_relaxed);
    atomic_store_explicit(&w->seg->seq, seq + 1, memory_order_relaxed);
    /* Release: a reader that sees any of these words also sees seq odd on its
     * second look. */
    for (size_t i = 0; i < STATUS_WORDS; i++)
        atomic_store_explicit(&dst[i], w->words[i], memory_order_release);
    atomic_store_explicit(&w->seg->seq, seq + 2, memory_order_release);
}

REEL_INTERNAL void reel__status_close(reel_status_writer *w) {
    if (!w)
        return;
    /* Only this writer's file: were it judged stale and replaced, the name is
     * another run's now. */
    struct stat st;
    if (stat(w->path, &st) == 0 && st.st_dev == w->dev && st.st_ino == w->ino)
        unlink(w->path);
    munmap(w->seg, sizeof(status_segment));
    free(w);
}

/* ---- reading ------------------------------------------------------------ */

static bool bool_ok(const bool *b) {
    unsigned char c;
    memcpy(&c, b, 1);
    return c <= 1;
}

static bool amount_ok(double v) {
    return isfinite(v) && v >= 0;
}

static int corrupt(const char *path, const char *what, unsigned stage, const char *field) {
    if (stage == UINT32_MAX)
        return reel__fail(-EBADMSG, "%s: %s %s", path, field, what);
    return reel__fail(-EBADMSG, "%s: stage %u's %s %s", path, stage, field, what);
}

/* The checks of status.h on a copy; stages past n_stages are zeroed, so that
 * nothing unchecked reaches the caller. */
static int validate(const char *path, reel_pipeline_status *s) {
    if (s->n_stages > REEL_PIPELINE_MAX_STAGES)
        return reel__fail(-EBADMSG, "%s: %u stages, more than the %u a pipeline may have", path,
                          s->n_stages, REEL_PIPELINE_MAX_STAGES);
    if (!memchr(s->name, '\0', sizeof s->name))
        return corrupt(path, "is not terminated", UINT32_MAX, "the pipeline name");
    int mode = (int)s->mode;
    if (mode != REEL_EXEC_STREAMING && mode != REEL_EXEC_BATCH)
        return reel__fail(-EBADMSG, "%s: execution mode %d is neither streaming nor batch", path,
                          mode);
    if (!amount_ok(s->elapsed_s))
        return corrupt(path, "is not a finite number >= 0", UINT32_MAX, "elapsed_s");
    if (!bool_ok(&s->finished))
        return corrupt(path, "is neither true nor false", UINT32_MAX, "finished");
    for (unsigned i = 0; i < s->n_stages; i++) {
        const reel_stage_status *g = &s->stage[i];
        if (!memchr(g->name, '\0', sizeof g->name))
            return corrupt(path, "is not terminated", i, "name");
        if (!memchr(g->last_death, '\0', sizeof g->last_death))
            return corrupt(path, "is not terminated", i, "last death");
        if (!amount_ok(g->items_per_s))
            return corrupt(path, "is not a finite number >= 0", i, "items_per_s");
        if (!amount_ok(g->tasks_per_s))
            return corrupt(path, "is not a finite number >= 0", i, "tasks_per_s");
        if (!amount_ok(g->busy))
            return corrupt(path, "is not a finite number >= 0", i, "busy");
        if (!bool_ok(&g->finished))
            return corrupt(path, "is neither true nor false", i, "finished");
    }
    memset(&s->stage[s->n_stages], 0,
           (REEL_PIPELINE_MAX_STAGES - s->n_stages) * sizeof(s->stage[0]));
    return 0;
}

/* Copies the payload under the sequence lock into words. */
static int copy_locked(status_segment *seg, uint64_t *words) {
    _Atomic uint64_t *src = payload(seg);
    for (int t = 0; t < READ_TRIES; t++) {
        if (t > 0) {
            struct timespec pause = {0, READ_PAUSE_NS};
            nanosleep(&pause, NULL);
        }
        uint64_t before = atomic_load_explicit(&seg->seq, memory_order_acquire);
        if (before & 1)
            continue;
        /* Acquire: the second look at seq comes after every word, and a word
         * from a newer write means seq has moved too. */
        for (size_t i = 0; i < STATUS_WORDS; i++)
            words[i] = atomic_load_explicit(&src[i], memory_order_acquire);
        if (atomic_load_explicit(&seg->seq, memory_order_relaxed) == before)
            return 0;
    }
    return -EAGAIN;
}

REEL_INTERNAL int reel__status_read(const char *name, reel_pipeline_status *status, pid_t *pid) {
    char path[PATH_CAP];
    uint64_t words[STATUS_WORDS];

    if (!name || !status)
        return -EINVAL;
    if (strchr(name, '/')) {
        if (strlen(name) >= sizeof path)
            return reel__fail(-ENAMETOOLONG, "the path %.64s... is too long", name);
        strcpy(path, name);
    } else {
        if (!reel__status_name_ok(name))
            return bad_name(name);
        char dir[64];
        int drc = reel__private_dir(dir, sizeof dir);
        if (drc)
            return drc;
        snprintf(path, sizeof path, "%s/" REEL_STATUS_PREFIX "%s", dir, name);
    }

    /* O_NONBLOCK: a FIFO put there must not hang the reader. */
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == ELOOP)
            return reel__fail(-EBADMSG, "%s is a symbolic link, not a status segment", path);
        if (e == ENOENT)
            return reel__fail(-ENOENT, "no status segment at %s", path);
        return reel__fail(-e, "cannot open %s", path);
    }
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0)
        rc = reel__fail(-errno, "cannot examine %s", path);
    else if (!S_ISREG(st.st_mode))
        rc = reel__fail(-EBADMSG, "%s is not a regular file", path);
    else if (st.st_uid != geteuid())
        rc = reel__fail(-EACCES, "%s belongs to uid %u, not to this user (uid %u)", path,
                        (unsigned)st.st_uid, (unsigned)geteuid());
    else if (st.st_size != (off_t)sizeof(status_segment))
        rc = reel__fail(-EBADMSG, "%s is %lld bytes, not the %zu of a status segment", path,
                        (long long)st.st_size, sizeof(status_segment));
    if (rc) {
        close(fd);
        return rc;
    }
    /* A file of this user's could still be cut short after the check above,
     * and touching its lost pages would raise SIGBUS; only this user can do
     * that to this user's reader, so it is not guarded against. */
    status_segment *seg = mmap(NULL, sizeof(status_segment), PROT_READ, MAP_SHARED, fd, 0);
    int map_errno = errno;
    close(fd);
    if (seg == MAP_FAILED)
        return reel__fail(-map_errno, "cannot map %s", path);

    if (memcmp(seg->magic, REEL_STATUS_MAGIC, sizeof seg->magic) != 0)
        rc = reel__fail(-EBADMSG, "%s does not begin with the status segment's magic", path);
    else if (seg->version != REEL_STATUS_VERSION)
        rc = reel__fail(-EBADMSG, "%s has format version %u; this reader knows %u", path,
                        seg->version, REEL_STATUS_VERSION);
    else if (seg->size != sizeof(status_segment))
        rc = reel__fail(-EBADMSG, "%s says it is %u bytes, not %zu", path, seg->size,
                        sizeof(status_segment));
    else if (seg->pid <= 0)
        rc = reel__fail(-EBADMSG, "%s names no driver (pid %d)", path, (int)seg->pid);
    else if (copy_locked(seg, words) != 0)
        rc =
            reel__fail(-EAGAIN, "%s changed during each of %d reads (or its writer died mid-write)",
                       path, READ_TRIES);
    pid_t driver = seg->pid;
    munmap(seg, sizeof(status_segment));
    if (rc)
        return rc;

    reel_pipeline_status copy;
    memcpy(&copy, words, sizeof copy);
    if ((rc = validate(path, &copy)) != 0)
        return rc;
    *status = copy;
    if (pid)
        *pid = driver;
    return 0;
}

REEL_INTERNAL int reel__status_list(int (*fn)(void *arg, const char *name), void *arg) {
    const size_t plen = strlen(REEL_STATUS_PREFIX);
    char dir[64];
    int drc = reel__private_dir(dir, sizeof dir);
    if (drc)
        return drc;
    DIR *d = opendir(dir);
    if (!d)
        return reel__fail(-errno, "cannot list %s", dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, REEL_STATUS_PREFIX, plen) != 0)
            continue;
        if (e->d_type != DT_REG && e->d_type != DT_UNKNOWN)
            continue;
        const char *name = e->d_name + plen;
        if (!reel__status_name_ok(name))
            continue; /* not one that reel__status_create() could have made */
        n++;
        if (fn && fn(arg, name))
            break;
    }
    closedir(d);
    return n;
}

/* The driver's pid a name ends in, as the default names do
 * ("<pipeline>-<pid>"); 0 for other names. */
static pid_t name_pid(const char *name) {
    const char *dash = strrchr(name, '-');
    if (!dash || dash[1] < '1' || dash[1] > '9')
        return 0;
    char *end;
    errno = 0;
    long v = strtol(dash + 1, &end, 10);
    return *end || errno || v > INT32_MAX ? 0 : (pid_t)v;
}

static int sweep_one(void *arg, const char *name) {
    (void)arg;
    pid_t pid = name_pid(name);
    if (pid > 0) {
        char dir[64], path[PATH_CAP];
        if (reel__private_dir(dir, sizeof dir) != 0)
            return 1;
        snprintf(path, sizeof path, "%s/" REEL_STATUS_PREFIX "%s", dir, name);
        reel__status_remove_stale(path, pid);
    }
    return 0;
}

REEL_INTERNAL void reel__status_sweep(void) {
    reel__status_list(sweep_one, NULL);
    reel__clear_error(); /* what stays, stays for a reason: not a failure of the caller's */
}
