/* The pipeline status segment (scheduler/status.c) and `reel-inspect pipeline`
 * ($REEL_INSPECT), run on segments made by the writer and by hand. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "helpers.h"
#include "status.h"

/* Every segment name a test hands out and every writer it opens, removed by
 * ts_fini() even after a failed assert. */
#define TS_MAX 16
static char ts_paths[TS_MAX][300];
static int ts_npaths;
static reel_status_writer *ts_writers[TS_MAX];
static int ts_nwriters;

static void ts_init(void) {
    ts_npaths = ts_nwriters = 0;
}

static void ts_fini(void) {
    for (int i = 0; i < ts_nwriters; i++)
        reel__status_close(ts_writers[i]);
    ts_nwriters = 0;
    for (int i = 0; i < ts_npaths; i++) {
        struct stat st;
        if (lstat(ts_paths[i], &st) == 0 && S_ISDIR(st.st_mode))
            rmdir(ts_paths[i]);
        else
            unlink(ts_paths[i]);
    }
    ts_npaths = 0;
}

TestSuite(status, .init = ts_init, .fini = ts_fini, .timeout = 60);

/* A segment name nothing uses yet, unique to this process and call; its file
 * is removed by ts_fini(). */
static const char *ts_name(const char *tag) {
    static char names[TS_MAX][128];
    static unsigned counter;
    uint32_t r = 0;
    cr_assert_lt(ts_npaths, TS_MAX);
    cr_assert_eq(getrandom(&r, sizeof r, 0), (ssize_t)sizeof r);
    char *name = names[ts_npaths];
    snprintf(name, sizeof names[0], "reel-test-%s-%ld-%u-%08x", tag, (long)getpid(), counter++, r);
    snprintf(ts_paths[ts_npaths++], sizeof ts_paths[0], "%s/" REEL_STATUS_PREFIX "%s",
             th_private_dir(), name);
    return name;
}

static const char *ts_path(const char *name) {
    static char path[300];
    snprintf(path, sizeof path, "%s/" REEL_STATUS_PREFIX "%s", th_private_dir(), name);
    return path;
}

static reel_status_writer *ts_create(const char *name) {
    reel_status_writer *w = NULL;
    char buf[512];
    int rc = reel__status_create(name, &w);
    cr_assert_eq(rc, 0, "reel__status_create(%s) -> %s", name, th_rcstr(rc, buf, sizeof buf));
    cr_assert_not_null(w);
    cr_assert_lt(ts_nwriters, TS_MAX);
    ts_writers[ts_nwriters++] = w;
    return w;
}

/* Closes a writer ts_create() made, so that ts_fini() does not close it again. */
static void ts_close(reel_status_writer *w) {
    for (int i = 0; i < ts_nwriters; i++)
        if (ts_writers[i] == w) {
            ts_writers[i] = ts_writers[--ts_nwriters];
            break;
        }
    reel__status_close(w);
}

static int ts_read(const char *name, reel_pipeline_status *st, pid_t *pid) {
    memset(st, 0xee, sizeof *st); /* nothing left over from an earlier read */
    return reel__status_read(name, st, pid);
}

/* ---- a status where every field derives from one counter ----------------- */

static void ts_pattern(uint64_t c, reel_pipeline_status *s) {
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "pipe-%" PRIu64, c);
    s->n_stages = (uint32_t)(c % REEL_PIPELINE_MAX_STAGES) + 1;
    s->mode = (c & 1) ? REEL_EXEC_BATCH : REEL_EXEC_STREAMING;
    s->elapsed_s = (double)c * 0.25;
    s->inputs_read = c;
    s->outputs = c * 3;
    s->failures = c ^ 0xa5a5u;
    s->autoscale_rounds = (uint32_t)(c * 7);
    s->finished = (c & 2) != 0;
    for (uint32_t i = 0; i < s->n_stages; i++) {
        reel_stage_status *g = &s->stage[i];
        snprintf(g->name, sizeof g->name, "stage%" PRIu32 "-%" PRIu64, i, c);
        g->workers = (uint32_t)(c + i);
        g->workers_setup = (uint32_t)(c % 5);
        g->queued = c * 11 + i;
        g->queue_bound = c * 13 + i;
        g->in_flight = c + 2 * i;
        g->items_in = c * 17 + i;
        g->items_out = c * 19 + i;
        g->tasks_done = c * 23;
        g->tasks_failed = c * 29;
        g->retries = c * 31;
        g->restarts = c * 37;
        g->items_per_s = (double)c + i * 0.5;
        g->tasks_per_s = (double)c * 0.25 + i;
        g->busy = (double)(c % 100) / 100.0;
        g->finished = ((c + i) & 1) != 0;
        if ((c + i) % 3 == 0)
            snprintf(g->last_death, sizeof g->last_death,
                     "worker %" PRIu32 " (pid %" PRIu64 ") killed by SIGSEGV", i, c);
    }
}

/* NULL if s is ts_pattern(s->inputs_read) (stages past n_stages zeroed), else
 * the first field that is not. */
static const char *ts_pattern_mismatch(const reel_pipeline_status *s) {
    reel_pipeline_status w;
    ts_pattern(s->inputs_read, &w);
    if (strcmp(s->name, w.name) != 0)
        return "name";
    if (s->n_stages != w.n_stages)
        return "n_stages";
    if (s->mode != w.mode || s->elapsed_s != w.elapsed_s || s->outputs != w.outputs ||
        s->failures != w.failures || s->autoscale_rounds != w.autoscale_rounds ||
        s->finished != w.finished)
        return "a pipeline figure";
    for (uint32_t i = 0; i < REEL_PIPELINE_MAX_STAGES; i++) {
        const reel_stage_status *a = &s->stage[i], *b = &w.stage[i];
        if (strcmp(a->name, b->name) != 0 || a->workers != b->workers ||
            a->workers_setup != b->workers_setup || a->queued != b->queued ||
            a->queue_bound != b->queue_bound || a->in_flight != b->in_flight ||
            a->items_in != b->items_in || a->items_out != b->items_out ||
            a->tasks_done != b->tasks_done || a->tasks_failed != b->tasks_failed ||
            a->retries != b->retries || a->restarts != b->restarts ||
            a->items_per_s != b->items_per_s || a->tasks_per_s != b->tasks_per_s ||
            a->busy != b->busy || a->finished != b->finished ||
            strcmp(a->last_death, b->last_death) != 0)
            return "a stage figure";
    }
    return NULL;
}

/* ---- segments written by hand ---------------------------------------------- */

static void ts_good_segment(status_segment *seg, pid_t pid, uint64_t c) {
    memset(seg, 0, sizeof *seg);
    memcpy(seg->magic, REEL_STATUS_MAGIC, sizeof seg->magic);
    seg->version = REEL_STATUS_VERSION;
    seg->size = sizeof(status_segment);
    seg->pid = (int32_t)pid;
    seg->started_ns = th_realtime_ns();
    atomic_init(&seg->seq, 2);
    ts_pattern(c, &seg->status);
}

/* Writes seg (n bytes of it) as a new segment; returns its name. */
static const char *ts_write_segment(const char *tag, const status_segment *seg, size_t n) {
    const char *name = ts_name(tag);
    th_write_file(ts_path(name), seg, n);
    return name;
}

/* A pid that was just in use and is no more. */
static pid_t ts_dead_pid(void) {
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0)
        _exit(0);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    return pid;
}

/* Whether any writer's private file for name is left in the private directory. */
static bool ts_temp_left(const char *name) {
    char prefix[300];
    snprintf(prefix, sizeof prefix, "." REEL_STATUS_PREFIX "%s.", name);
    DIR *d = opendir(th_private_dir());
    cr_assert_not_null(d);
    bool found = false;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0)
            found = true;
    closedir(d);
    return found;
}

/* ---- the writer and the reader -------------------------------------------- */

Test(status, round_trip) {
    const char *name = ts_name("trip");
    reel_status_writer *w = ts_create(name);
    reel_pipeline_status st;
    pid_t pid = 0;

    /* Before the first publish: an empty, valid status. */
    TH_OK(ts_read(name, &st, &pid));
    cr_assert_eq(pid, getpid());
    cr_assert_eq(st.n_stages, 0);
    cr_assert_str_empty(st.name);
    cr_assert_eq(st.stage[0].workers, 0, "entries past n_stages are not zeroed");

    struct stat sb;
    cr_assert_eq(stat(ts_path(name), &sb), 0);
    cr_assert(S_ISREG(sb.st_mode));
    cr_assert_eq(sb.st_mode & 07777, 0600, "mode %o", (unsigned)(sb.st_mode & 07777));
    cr_assert_eq(sb.st_uid, geteuid());
    cr_assert_eq(sb.st_size, (off_t)sizeof(status_segment));
    cr_assert(!ts_temp_left(name), "the writer's private file was left behind");

    /* The header, as another process sees it. */
    status_segment head;
    int fd = open(ts_path(name), O_RDONLY);
    cr_assert_geq(fd, 0);
    cr_assert_eq(pread(fd, &head, offsetof(status_segment, seq), 0),
                 (ssize_t)offsetof(status_segment, seq));
    close(fd);
    cr_assert_eq(memcmp(head.magic, REEL_STATUS_MAGIC, 8), 0);
    cr_assert_eq(head.version, REEL_STATUS_VERSION);
    cr_assert_eq(head.size, sizeof(status_segment));
    cr_assert_eq(head.pid, getpid());
    uint64_t now = th_realtime_ns();
    cr_assert(head.started_ns <= now && head.started_ns > now - 60ull * 1000000000u,
              "started_ns %" PRIu64 " is not about now", head.started_ns);

    for (uint64_t c = 40; c < 45; c++) {
        reel_pipeline_status put;
        ts_pattern(c, &put);
        reel__status_publish(w, &put);
        TH_OK(ts_read(name, &st, NULL));
        const char *bad = ts_pattern_mismatch(&st);
        cr_assert_null(bad, "round %" PRIu64 ": %s differs", c, bad);
        cr_assert_eq(st.inputs_read, c);
    }

    /* By path too. */
    TH_OK(ts_read(ts_path(name), &st, &pid));
    cr_assert_eq(st.inputs_read, 44);

    /* What lies past n_stages is never looked at and comes back zeroed. */
    reel_pipeline_status put;
    ts_pattern(1, &put); /* 2 stages */
    memset(put.stage[5].name, 'x', sizeof put.stage[5].name);
    put.stage[5].busy = NAN;
    reel__status_publish(w, &put);
    TH_OK(ts_read(name, &st, NULL));
    cr_assert_eq(st.n_stages, 2);
    cr_assert_str_empty(st.stage[5].name);
    cr_assert_eq(st.stage[5].busy, 0.0);

    ts_close(w);
    cr_assert_eq(access(ts_path(name), F_OK), -1, "close left the segment");
    TH_RC(ts_read(name, &st, NULL), -ENOENT);
    reel__status_close(NULL);
}

Test(status, names) {
    reel_status_writer *w = (reel_status_writer *)&w;
    char long_name[REEL_STATUS_NAME_MAX + 2];
    TH_RC(reel__status_create("", &w), -EINVAL);
    cr_assert_null(w);
    TH_RC(reel__status_create(NULL, &w), -EINVAL);
    TH_RC(reel__status_create("a b", &w), -EINVAL);
    TH_RC(reel__status_create("a/b", &w), -EINVAL);
    TH_RC(reel__status_create("tab\there", &w), -EINVAL);
    cr_assert_neq(strstr(reel_last_error(), "not a status segment name"), NULL, "%s",
                  reel_last_error());
    memset(long_name, 'n', sizeof long_name);
    long_name[REEL_STATUS_NAME_MAX + 1] = '\0';
    TH_RC(reel__status_create(long_name, &w), -EINVAL);

    reel_pipeline_status st;
    TH_RC(reel__status_read("a b", &st, NULL), -EINVAL);
    TH_RC(reel__status_read("", &st, NULL), -EINVAL);
    TH_RC(reel__status_read(long_name, &st, NULL), -EINVAL);

    /* The longest name, built from a unique one. */
    const char *base = ts_name("long");
    snprintf(long_name, sizeof long_name, "%s", base);
    for (size_t n = strlen(long_name); n < REEL_STATUS_NAME_MAX; n++)
        long_name[n] = "._-"[n % 3];
    long_name[REEL_STATUS_NAME_MAX] = '\0';
    snprintf(ts_paths[ts_npaths - 1], sizeof ts_paths[0], "%s", ts_path(long_name));
    w = ts_create(long_name);
    TH_OK(ts_read(long_name, &st, NULL));
    cr_assert(reel__status_name_ok(long_name));
    cr_assert(!reel__status_name_ok("x\x7f"));
}

/* ---- the sequence lock ----------------------------------------------------- */

struct ts_writer_arg {
    reel_status_writer *w;
    atomic_bool stop;
    uint64_t published;
};

/* Publishes ts_pattern(1), (2), ... until told to stop, pausing a few
 * microseconds between publishes so that readers also find quiet moments. */
static void *ts_writer_loop(void *p) {
    struct ts_writer_arg *a = p;
    reel_pipeline_status s;
    uint64_t c = 1;
    while (!atomic_load(&a->stop)) {
        ts_pattern(c++, &s);
        reel__status_publish(a->w, &s);
        uint64_t until = th_realtime_ns() + 3000;
        while (th_realtime_ns() < until)
            ;
    }
    a->published = c - 1;
    return NULL;
}

struct ts_tally {
    int ok, again, torn, other;
    char first_bad[256];
};

/* Reads name for ms milliseconds, checking every copy. */
static void ts_read_for(const char *name, int ms, struct ts_tally *t) {
    memset(t, 0, sizeof *t);
    uint64_t until = th_realtime_ns() + (uint64_t)ms * 1000000u;
    uint64_t last = 0;
    while (th_realtime_ns() < until) {
        reel_pipeline_status st;
        int rc = reel__status_read(name, &st, NULL);
        if (rc == -EAGAIN) {
            t->again++;
            continue;
        }
        if (rc != 0) {
            if (!t->other && !t->torn)
                snprintf(t->first_bad, sizeof t->first_bad, "rc %d: %s", rc, reel_last_error());
            t->other++;
            continue;
        }
        const char *bad = ts_pattern_mismatch(&st);
        if (!bad && st.inputs_read < last)
            bad = "an older copy after a newer one";
        if (bad) {
            if (!t->other && !t->torn)
                snprintf(t->first_bad, sizeof t->first_bad, "counter %" PRIu64 ": %s",
                         st.inputs_read, bad);
            t->torn++;
        } else {
            last = st.inputs_read;
            t->ok++;
        }
    }
}

Test(status, seqlock_never_torn_between_threads) {
    const char *name = ts_name("torn");
    struct ts_writer_arg a = {.w = ts_create(name)};
    reel_pipeline_status first;
    ts_pattern(0, &first);
    reel__status_publish(a.w, &first);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, ts_writer_loop, &a), 0);
    struct ts_tally t;
    ts_read_for(name, 500, &t);
    atomic_store(&a.stop, true);
    pthread_join(th, NULL);
    cr_assert_eq(t.torn + t.other, 0, "%d torn and %d failed reads (%d good); first: %s", t.torn,
                 t.other, t.ok, t.first_bad);
    cr_assert_geq(t.ok, 20, "only %d good reads (%d gave up) in 0.5 s", t.ok, t.again);
    cr_assert_gt(a.published, 100, "the writer published only %" PRIu64 " times", a.published);
}

/* The real arrangement: the reader is another process. */
Test(status, seqlock_never_torn_between_processes) {
    const char *name = ts_name("tornp");
    reel_status_writer *w = ts_create(name);
    reel_pipeline_status s;
    ts_pattern(0, &s);
    reel__status_publish(w, &s);
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        struct ts_tally t;
        ts_read_for(name, 500, &t);
        ssize_t n = write(fds[1], &t, sizeof t);
        _exit(n == (ssize_t)sizeof t ? 0 : 1);
    }
    close(fds[1]);
    uint64_t c = 1;
    int status;
    while (waitpid(pid, &status, WNOHANG) == 0) {
        ts_pattern(c++, &s);
        reel__status_publish(w, &s);
        uint64_t until = th_realtime_ns() + 3000;
        while (th_realtime_ns() < until)
            ;
    }
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the reader failed: %d", status);
    struct ts_tally t;
    cr_assert_eq(read(fds[0], &t, sizeof t), (ssize_t)sizeof t);
    close(fds[0]);
    cr_assert_eq(t.torn + t.other, 0, "%d torn and %d failed reads (%d good); first: %s", t.torn,
                 t.other, t.ok, t.first_bad);
    cr_assert_geq(t.ok, 20, "only %d good reads (%d gave up)", t.ok, t.again);
}

Test(status, writer_stuck_mid_write_gives_eagain) {
    static status_segment seg;
    ts_good_segment(&seg, getpid(), 3);
    atomic_store(&seg.seq, 7);
    const char *name = ts_write_segment("odd", &seg, sizeof seg);
    reel_pipeline_status st;
    TH_RC(ts_read(name, &st, NULL), -EAGAIN);
}

/* ---- validation -------------------------------------------------------------- */

Test(status, hand_written_good_segment_reads) {
    static status_segment seg;
    ts_good_segment(&seg, getpid(), 9);
    const char *name = ts_write_segment("good", &seg, sizeof seg);
    reel_pipeline_status st;
    pid_t pid = 0;
    TH_OK(ts_read(name, &st, &pid));
    cr_assert_eq(pid, getpid());
    cr_assert_null(ts_pattern_mismatch(&st));
    cr_assert_eq(st.inputs_read, 9);
}

enum ts_damage {
    TS_MAGIC,
    TS_VERSION,
    TS_SIZE_FIELD,
    TS_PID,
    TS_STAGES_33,
    TS_NAME_UNTERMINATED,
    TS_STAGE_NAME_UNTERMINATED,
    TS_NAN,
    TS_NEGATIVE,
    TS_INFINITE,
    TS_TASKS_NAN,
    TS_MODE,
    TS_BOOL,
    TS_STAGE_BOOL,
    TS_LAST_DEATH_UNTERMINATED,
    TS_DAMAGE_COUNT
};

static const char *const ts_damage_names[] = {
    "wrong magic",
    "wrong version",
    "wrong size field",
    "pid 0",
    "33 stages",
    "unterminated name",
    "unterminated stage name",
    "NaN elapsed_s",
    "negative items/s",
    "infinite busy",
    "NaN tasks/s",
    "mode 2",
    "finished 2",
    "stage finished 7",
    "unterminated last death",
};

static void ts_damage(status_segment *seg, enum ts_damage d) {
    reel_pipeline_status *s = &seg->status;
    int two = 2;
    unsigned char b;
    switch (d) {
    case TS_MAGIC:
        seg->magic[0] = 'X';
        break;
    case TS_VERSION:
        seg->version = REEL_STATUS_VERSION + 1;
        break;
    case TS_SIZE_FIELD:
        seg->size = sizeof(status_segment) - 8;
        break;
    case TS_PID:
        seg->pid = 0;
        break;
    case TS_STAGES_33:
        s->n_stages = REEL_PIPELINE_MAX_STAGES + 1;
        break;
    case TS_NAME_UNTERMINATED:
        memset(s->name, 'a', sizeof s->name);
        break;
    case TS_STAGE_NAME_UNTERMINATED:
        memset(s->stage[s->n_stages - 1].name, 'b', sizeof s->stage[0].name);
        break;
    case TS_NAN:
        s->elapsed_s = NAN;
        break;
    case TS_NEGATIVE:
        s->stage[0].items_per_s = -1.0;
        break;
    case TS_INFINITE:
        s->stage[s->n_stages - 1].busy = INFINITY;
        break;
    case TS_TASKS_NAN:
        s->stage[1].tasks_per_s = NAN;
        break;
    case TS_MODE:
        memcpy(&s->mode, &two, sizeof two);
        break;
    case TS_BOOL:
        b = 2;
        memcpy(&s->finished, &b, 1);
        break;
    case TS_STAGE_BOOL:
        b = 7;
        memcpy(&s->stage[0].finished, &b, 1);
        break;
    case TS_LAST_DEATH_UNTERMINATED:
        memset(s->stage[0].last_death, 'c', sizeof s->stage[0].last_death);
        break;
    case TS_DAMAGE_COUNT:
        break;
    }
}

Test(status, validation_rejects_damage) {
    _Static_assert(sizeof ts_damage_names / sizeof ts_damage_names[0] == TS_DAMAGE_COUNT,
                   "a name per damage");
    _Static_assert(sizeof(reel_execution_mode) == sizeof(int), "the mode is written as an int");
    static status_segment seg;
    for (int d = 0; d < TS_DAMAGE_COUNT; d++) {
        ts_good_segment(&seg, getpid(), 5); /* 6 stages */
        ts_damage(&seg, (enum ts_damage)d);
        const char *name = ts_write_segment("bad", &seg, sizeof seg);
        reel_pipeline_status st;
        int rc = ts_read(name, &st, NULL);
        cr_assert_eq(rc, -EBADMSG, "%s: read gave %d (%s), not -EBADMSG", ts_damage_names[d], rc,
                     reel_strerror(rc));
        cr_assert_neq(strstr(reel_last_error(), ts_path(name)), NULL,
                      "%s: the sentence does not name the file: %s", ts_damage_names[d],
                      reel_last_error());
        unlink(ts_path(name));
        ts_npaths--; /* reuse the slot: the file is gone */
    }
}

Test(status, validation_rejects_wrong_files) {
    static status_segment seg;
    reel_pipeline_status st;
    ts_good_segment(&seg, getpid(), 2);

    const char *name = ts_write_segment("short", &seg, sizeof seg - 1);
    TH_RC(ts_read(name, &st, NULL), -EBADMSG);
    cr_assert_neq(strstr(reel_last_error(), "bytes"), NULL, "%s", reel_last_error());

    name = ts_name("long");
    int fd = open(ts_path(name), O_WRONLY | O_CREAT | O_EXCL, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, &seg, sizeof seg), (ssize_t)sizeof seg);
    cr_assert_eq(write(fd, "x", 1), 1);
    close(fd);
    TH_RC(ts_read(name, &st, NULL), -EBADMSG);

    name = ts_write_segment("empty", &seg, 0);
    TH_RC(ts_read(name, &st, NULL), -EBADMSG);

    /* A symbolic link to a good segment is refused, not followed. */
    const char *good = ts_write_segment("target", &seg, sizeof seg);
    TH_OK(ts_read(good, &st, NULL));
    char target[300];
    snprintf(target, sizeof target, "%s", ts_path(good));
    name = ts_name("link");
    cr_assert_eq(symlink(target, ts_path(name)), 0, "symlink: %s", strerror(errno));
    TH_RC(ts_read(name, &st, NULL), -EBADMSG);

    /* A FIFO is refused without waiting for a writer; a directory too. */
    name = ts_name("fifo");
    cr_assert_eq(mkfifo(ts_path(name), 0600), 0);
    TH_RC(ts_read(name, &st, NULL), -EBADMSG);
    name = ts_name("dir");
    cr_assert_eq(mkdir(ts_path(name), 0700), 0);
    TH_RC(ts_read(name, &st, NULL), -EBADMSG);

    TH_RC(ts_read(ts_name("missing"), &st, NULL), -ENOENT);

    /* Another user's segment: only root can make one here. */
    if (geteuid() == 0) {
        name = ts_write_segment("owner", &seg, sizeof seg);
        cr_assert_eq(chown(ts_path(name), 4242, 4242), 0, "chown: %s", strerror(errno));
        TH_RC(ts_read(name, &st, NULL), -EACCES);
    }
}

/* ---- stale and live segments ------------------------------------------------- */

Test(status, stale_segment_of_a_dead_driver_is_replaced) {
    static status_segment seg;
    ts_good_segment(&seg, ts_dead_pid(), 12);
    const char *name = ts_write_segment("stale", &seg, sizeof seg);
    reel_pipeline_status st;
    TH_OK(ts_read(name, &st, NULL));
    cr_assert_eq(st.inputs_read, 12);

    reel_status_writer *w = ts_create(name);
    pid_t pid = 0;
    TH_OK(ts_read(name, &st, &pid));
    cr_assert_eq(pid, getpid());
    cr_assert_eq(st.n_stages, 0, "the old figures are still there");
    cr_assert(!ts_temp_left(name));
    (void)w;
}

Test(status, segment_of_a_reused_pid_is_replaced) {
    /* This process, but it started long after that run: its pid was reused. */
    static status_segment seg;
    ts_good_segment(&seg, getpid(), 12);
    seg.started_ns -= 3600ull * 1000000000u;
    const char *name = ts_write_segment("reused", &seg, sizeof seg);
    ts_create(name);
    reel_pipeline_status st;
    TH_OK(ts_read(name, &st, NULL));
    cr_assert_eq(st.n_stages, 0);
}

Test(status, live_segment_is_kept) {
    const char *name = ts_name("live");
    reel_status_writer *w = ts_create(name), *w2 = NULL;
    reel_pipeline_status put, st;
    ts_pattern(21, &put);
    reel__status_publish(w, &put);
    TH_RC(reel__status_create(name, &w2), -EEXIST);
    cr_assert_null(w2);
    cr_assert_neq(strstr(reel_last_error(), "running process"), NULL, "%s", reel_last_error());
    TH_OK(ts_read(name, &st, NULL));
    cr_assert_eq(st.inputs_read, 21, "the live segment was touched");
    cr_assert(!ts_temp_left(name), "the refused writer's private file was left behind");

    /* By hand: a live process that started before the run (pid 1 always has). */
    static status_segment seg;
    ts_good_segment(&seg, 1, 4);
    name = ts_write_segment("init", &seg, sizeof seg);
    TH_RC(reel__status_create(name, &w2), -EEXIST);
    TH_OK(ts_read(name, &st, NULL));
    cr_assert_eq(st.inputs_read, 4);

    /* Not a status segment at all: left alone. */
    name = ts_name("other");
    th_write_file(ts_path(name), "not mine", 8);
    TH_RC(reel__status_create(name, &w2), -EEXIST);
    struct stat sb;
    cr_assert_eq(stat(ts_path(name), &sb), 0);
    cr_assert_eq(sb.st_size, 8);
}

/* A test process killed before its .fini leaves its segments; the next
 * test process's th_init() removes those whose writer is gone once they are
 * old (a young one may be a live test's, with a dead pid written in it). */
Test(status, a_killed_test_processs_segments_go_at_the_next_test_start) {
    static status_segment seg;
    const struct timespec two_hours_ago[2] = {{.tv_sec = time(NULL) - 7200},
                                              {.tv_sec = time(NULL) - 7200}};
    ts_good_segment(&seg, ts_dead_pid(), 3);
    const char *dead_old = ts_write_segment("killed", &seg, sizeof seg);
    cr_assert_eq(utimensat(AT_FDCWD, ts_path(dead_old), two_hours_ago, 0), 0);
    const char *dead_young = ts_write_segment("killed-young", &seg, sizeof seg);
    ts_good_segment(&seg, getpid(), 3);
    const char *live_old = ts_write_segment("live-old", &seg, sizeof seg);
    cr_assert_eq(utimensat(AT_FDCWD, ts_path(live_old), two_hours_ago, 0), 0);
    th_init();
    struct stat sb;
    cr_assert_neq(stat(ts_path(dead_old), &sb), 0, "a killed test's old segment was left");
    cr_assert_eq(stat(ts_path(dead_young), &sb), 0, "a young segment was taken");
    cr_assert_eq(stat(ts_path(live_old), &sb), 0, "a live process's segment was taken");
}

/* ---- listing ------------------------------------------------------------------- */

struct ts_seen {
    const char *want[2];
    bool found[2];
    int calls;
    int stop_after; /* 0: never stop */
};

static int ts_note(void *arg, const char *name) {
    struct ts_seen *s = arg;
    s->calls++;
    for (int i = 0; i < 2; i++)
        if (strcmp(name, s->want[i]) == 0)
            s->found[i] = true;
    return s->stop_after && s->calls >= s->stop_after;
}

Test(status, list_finds_segments) {
    struct ts_seen seen = {.want = {ts_name("lista"), ts_name("listb")}};
    ts_create(seen.want[0]);
    ts_create(seen.want[1]);
    int n = reel__status_list(ts_note, &seen);
    cr_assert_geq(n, 2);
    cr_assert_eq(n, seen.calls);
    cr_assert(seen.found[0] && seen.found[1], "the list missed a segment");

    struct ts_seen once = {.want = {"", ""}, .stop_after = 1};
    cr_assert_eq(reel__status_list(ts_note, &once), 1);
    cr_assert_eq(once.calls, 1);
}

/* ---- reel-inspect pipeline -------------------------------------------------------- */

static void tp_contains(const char *text, const char *want) {
    cr_assert_neq(strstr(text, want), NULL, "'%s' is missing from:\n%s", want, text);
}

/* A status of two stages with recognisable figures. */
static void tp_two_stages(reel_pipeline_status *s) {
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "curate-test");
    s->n_stages = 2;
    s->mode = REEL_EXEC_STREAMING;
    s->elapsed_s = 65.5;
    s->inputs_read = 500;
    s->outputs = 480;
    s->failures = 2;
    s->autoscale_rounds = 3;
    reel_stage_status *a = &s->stage[0], *b = &s->stage[1];
    snprintf(a->name, sizeof a->name, "decode");
    a->workers = 3;
    a->workers_setup = 1;
    a->queued = 17;
    a->queue_bound = 64;
    a->in_flight = 5;
    a->items_in = 1234;
    a->items_out = 2468;
    a->tasks_done = 600;
    a->tasks_failed = 2;
    a->retries = 4;
    a->restarts = 1;
    a->items_per_s = 12.5;
    a->tasks_per_s = 3.3;
    a->busy = 0.87;
    snprintf(a->last_death, sizeof a->last_death,
             "worker 1 (pid 4242) killed by SIGSEGV while running task 00ff");
    snprintf(b->name, sizeof b->name, "cap\"tion");
    b->workers = 8;
    b->queued = 99;
    b->in_flight = 6;
    b->items_in = 2000;
    b->items_out = 1999;
    b->items_per_s = 33.4;
    b->tasks_per_s = 8.5;
    b->busy = 0.5;
    b->finished = true;
}

static const char *tp_live_two_stages(const char *tag, reel_status_writer **w) {
    const char *name = ts_name(tag);
    reel_pipeline_status s;
    tp_two_stages(&s);
    *w = ts_create(name);
    reel__status_publish(*w, &s);
    return name;
}

Test(status, inspect_table) {
    reel_status_writer *w;
    const char *name = tp_live_two_stages("table", &w);
    th_result r = th_run_inspect(NULL, (const char *[]){"pipeline", name, NULL});
    cr_assert_eq(r.signal, 0);
    cr_assert_eq(r.code, 0, "exit %d; stderr: %s", r.code, r.err);
    cr_assert_str_empty(r.err);
    cr_assert_eq(th_count(r.out, "\n"), 5, "not a header, a title, two rows and a death:\n%s",
                 r.out);
    char pid[64];
    snprintf(pid, sizeof pid, "driver pid %ld", (long)getpid());
    static const char *const want[] = {
        "pipeline curate-test",
        "mode streaming",
        "elapsed 1m05s",
        "inputs read 500",
        "outputs 480",
        "failures 2",
        "autoscale rounds 3",
        "running",
        "STAGE",
        "QUEUED/BOUND",
        "TASKS/S",
        "ITEMS/S",
        "3.3",
        "8.5",
        "decode",
        "cap\"tion",
        "3 (1)",
        "17/64",
        "99/-",
        "1234",
        "2468",
        "12.5",
        "87%",
        "33.4",
        "50%",
        "1999",
        "\ndecode: last death: worker 1 (pid 4242) killed by SIGSEGV while running task 00ff\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        tp_contains(r.out, want[i]);
    tp_contains(r.out, pid);
    th_result_free(&r);

    /* By path, the same. */
    r = th_run_inspect(NULL, (const char *[]){"pipeline", ts_path(name), NULL});
    cr_assert_eq(r.code, 0, "stderr: %s", r.err);
    tp_contains(r.out, "decode");
    th_result_free(&r);
}

Test(status, inspect_json) {
    reel_status_writer *w;
    const char *name = tp_live_two_stages("json", &w);
    th_result r = th_run_inspect(NULL, (const char *[]){"pipeline", "--json", name, NULL});
    cr_assert_eq(r.code, 0, "exit %d; stderr: %s", r.code, r.err);
    cr_assert_str_empty(r.err);
    cr_assert_eq(r.out[0], '{', "not a JSON object: %s", r.out);
    cr_assert_eq(th_count(r.out, "\n"), 1, "not one line: %s", r.out);
    char pid[64];
    snprintf(pid, sizeof pid, "\"pid\":%ld,", (long)getpid());
    static const char *const want[] = {
        "\"name\":\"curate-test\"",
        "\"mode\":\"streaming\"",
        "\"state\":\"running\"",
        "\"elapsed_s\":65.500",
        "\"inputs_read\":500,",
        "\"outputs\":480,",
        "\"failures\":2,",
        "\"autoscale_rounds\":3,",
        "\"stages\":[{\"name\":\"decode\"",
        "\"name\":\"cap\\\"tion\"",
        "\"workers\":3,",
        "\"workers_setup\":1,",
        "\"queued\":17,",
        "\"queue_bound\":64,",
        "\"items_in\":1234,",
        "\"items_out\":2468,",
        "\"tasks_done\":600,",
        "\"tasks_failed\":2,",
        "\"retries\":4,",
        "\"restarts\":1,",
        "\"items_per_s\":12.5,",
        "\"items_per_s\":33.4,",
        "\"busy\":0.87,",
        "\"tasks_per_s\":3.3,",
        "\"tasks_per_s\":8.5,",
        "\"finished\":true}]}",
        "\"last_death\":\"worker 1 (pid 4242) killed by SIGSEGV while running task 00ff\",",
        "\"busy\":0.5,\"last_death\":\"\",",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        tp_contains(r.out, want[i]);
    tp_contains(r.out, pid);
    th_result_free(&r);
}

Test(status, inspect_control_characters_stay_harmless) {
    reel_pipeline_status s;
    tp_two_stages(&s);
    snprintf(s.stage[0].name, sizeof s.stage[0].name, "bad\033[2Jname\n");
    const char *name = ts_name("ctl");
    reel_status_writer *w = ts_create(name);
    reel__status_publish(w, &s);
    th_result r = th_run_inspect(NULL, (const char *[]){"pipeline", name, NULL});
    cr_assert_eq(r.code, 0, "stderr: %s", r.err);
    cr_assert_eq(strchr(r.out, '\033'), NULL, "an escape reached the terminal: %s", r.out);
    tp_contains(r.out, "bad?[2Jname?");
    th_result_free(&r);
    r = th_run_inspect(NULL, (const char *[]){"pipeline", "--json", name, NULL});
    cr_assert_eq(r.code, 0, "stderr: %s", r.err);
    tp_contains(r.out, "\"bad\\u001b[2Jname\\u000a\"");
    cr_assert_eq(th_count(r.out, "\n"), 1, "%s", r.out);
    th_result_free(&r);
}

static void tp_close_writer(void *arg) {
    ts_close(arg);
}

Test(status, inspect_watch_until_the_run_ends) {
    reel_status_writer *w;
    const char *name = tp_live_two_stages("watch", &w);
    th_when end = {.ms = 600, .fn = tp_close_writer, .arg = w};
    th_result r =
        th_run_inspect(&end, (const char *[]){"pipeline", name, "--watch", "0.1", "--json", NULL});
    cr_assert_eq(r.signal, 0);
    cr_assert_eq(r.code, 0, "exit %d; stderr: %s", r.code, r.err);
    cr_assert_str_empty(r.err);
    cr_assert_geq(th_count(r.out, "\"stages\":["), 2, "fewer than two snapshots: %s", r.out);
    cr_assert_eq(th_count(r.out, "\"ended\":true"), 1, "%s", r.out);
    cr_assert_eq(th_count(r.out, "\"time_ns\""), th_count(r.out, "\n"), "%s", r.out);
    th_result_free(&r);

    /* The table says it in words. */
    name = tp_live_two_stages("watcht", &w);
    end.arg = w;
    r = th_run_inspect(&end, (const char *[]){"pipeline", "--watch", "0.1", name, NULL});
    cr_assert_eq(r.code, 0, "exit %d; stderr: %s", r.code, r.err);
    cr_assert_geq(th_count(r.out, "decode"), 2, "%s", r.out);
    tp_contains(r.out, "the run ended");
    th_result_free(&r);
}

Test(status, inspect_watch_stops_on_sigint) {
    reel_status_writer *w;
    const char *name = tp_live_two_stages("sigint", &w);
    th_when interrupt = {.ms = 500};
    th_result r = th_run_inspect(&interrupt,
                                 (const char *[]){"pipeline", "--json", "--watch=0.1", name, NULL});
    cr_assert_eq(r.signal, 0, "killed by signal %d", r.signal);
    cr_assert_eq(r.code, 0, "exit %d; stderr: %s", r.code, r.err);
    cr_assert_geq(th_count(r.out, "\"stages\":["), 2, "%s", r.out);
    cr_assert_eq(th_count(r.out, "\"ended\""), 0, "%s", r.out);
    th_result_free(&r);
}

Test(status, inspect_dead_driver) {
    static status_segment seg;
    ts_good_segment(&seg, ts_dead_pid(), 3);
    seg.status.finished = false;
    const char *name = ts_write_segment("dead", &seg, sizeof seg);
    th_result r = th_run_inspect(NULL, (const char *[]){"pipeline", name, NULL});
    cr_assert_eq(r.code, 0, "stderr: %s", r.err);
    tp_contains(r.out, "driver gone");
    th_result_free(&r);
    r = th_run_inspect(NULL, (const char *[]){"pipeline", name, "--watch", "0.1", NULL});
    cr_assert_eq(r.code, 1, "stdout: %s\nstderr: %s", r.out, r.err);
    tp_contains(r.err, "is gone");
    cr_assert_eq(th_count(r.err, "\n"), 1, "%s", r.err);
    th_result_free(&r);
}

Test(status, inspect_missing_and_corrupt) {
    const char *name = ts_name("absent");
    th_result r = th_run_inspect(NULL, (const char *[]){"pipeline", name, NULL});
    th_assert_one_error_line(&r, 1, "reel-inspect", "missing segment");
    tp_contains(r.err, name);
    th_result_free(&r);

    r = th_run_inspect(NULL, (const char *[]){"pipeline", "--watch", "0.1", name, NULL});
    th_assert_one_error_line(&r, 1, "reel-inspect", "missing segment, watched");
    th_result_free(&r);

    static status_segment seg;
    ts_good_segment(&seg, getpid(), 5);
    seg.status.n_stages = 33;
    name = ts_write_segment("corrupt", &seg, sizeof seg);
    r = th_run_inspect(NULL, (const char *[]){"pipeline", "--json", name, NULL});
    th_assert_one_error_line(&r, 1, "reel-inspect", "33 stages");
    tp_contains(r.err, "33 stages");
    th_result_free(&r);
}

Test(status, inspect_several_running_and_none_named) {
    /* Other pipelines may run beside this test: there are at least these two. */
    reel_status_writer *w;
    const char *a = tp_live_two_stages("mine1", &w);
    const char *b = tp_live_two_stages("mine2", &w);
    th_result r = th_run_inspect(NULL, (const char *[]){"pipeline", NULL});
    th_assert_one_error_line(&r, 2, "reel-inspect", "two running, none named");
    tp_contains(r.err, "name one");
    char pid[64];
    snprintf(pid, sizeof pid, "(pid %ld)", (long)getpid());
    tp_contains(r.err, pid);
    if (th_count(r.err, ",") < 15) { /* fewer than the 16 it lists */
        tp_contains(r.err, a);
        tp_contains(r.err, b);
    }
    th_result_free(&r);
}

Test(status, inspect_bad_arguments) {
    const char *name = ts_name("args");
    /* "@" stands for a segment's name. */
    static const char *const cases[][4] = {
        {"pipeline", "--bogus", "@", NULL},    {"pipeline", "--watch", "0", "@"},
        {"pipeline", "--watch", "-1", "@"},    {"pipeline", "--watch", "abc", "@"},
        {"pipeline", "@", "--watch", NULL},    {"pipeline", "--json=yes", "@", NULL},
        {"pipeline", "-x", "@", NULL},         {"pipeline", "two", "names", NULL},
        {"pipeline", "bad name", NULL, NULL},  {"pipeline", "", NULL, NULL},
        {"pipeline", "--help=me", NULL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *args[5];
        int n = 0;
        for (int k = 0; k < 4 && cases[i][k]; k++)
            args[n++] = strcmp(cases[i][k], "@") == 0 ? name : cases[i][k];
        args[n] = NULL;
        char what[64];
        snprintf(what, sizeof what, "case %zu (%s %s)", i, cases[i][1],
                 cases[i][2] ? cases[i][2] : "");
        th_result r = th_run_inspect(NULL, args);
        th_assert_one_error_line(&r, 2, "reel-inspect", what);
        th_result_free(&r);
    }
}

Test(status, inspect_help) {
    th_result r = th_run_inspect(NULL, (const char *[]){"pipeline", "--help", NULL});
    cr_assert_eq(r.code, 0);
    cr_assert_str_empty(r.err);
    tp_contains(r.out, "usage: reel-inspect pipeline [NAME] [--json] [--watch S]");
    th_result_free(&r);
    r = th_run_inspect(NULL, (const char *[]){"--help", NULL});
    cr_assert_eq(r.code, 0);
    tp_contains(r.out, "reel-inspect pipeline");
    th_result_free(&r);
}
