#include "helpers.h"
#include "status.h"         /* status_segment, REEL_STATUS_PREFIX */
#include "store_internal.h" /* reel__private_dir */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include <criterion/criterion.h>
#include <xxhash.h>

/* ---- fixture ------------------------------------------------------------------ */

#define TH_MAX_PATHS    64
#define TH_MAX_CHILDREN 256

static char *th_paths[TH_MAX_PATHS];
static size_t th_npaths;
static unsigned th_counter;
static pid_t th_children[TH_MAX_CHILDREN];

/* Removes the stores (and scratch directories) of test processes killed before their
 * th_fini() (a timeout, a crash, Ctrl-C): each may hold hundreds of MiB of
 * /dev/shm. Only those older than any test runs: a store a test's child
 * named may still be in use by the test after the child is gone. */
static void remove_if_old(const char *dir, const char *name, void *arg) {
    (void)arg;
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    struct stat st;
    if (lstat(path, &st) != 0 || st.st_mtime > time(NULL) - 3600)
        return;
    if (S_ISDIR(st.st_mode)) { /* a test's scratch directory: flat, its files only */
        DIR *d = opendir(path);
        struct dirent *e;
        while (d && (e = readdir(d)))
            if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
                unlinkat(dirfd(d), e->d_name, 0);
        if (d)
            closedir(d);
        rmdir(path);
        return;
    }
    if (reel_store_destroy(path) != 0)
        unlink(path);
}

static void remove_dead_tests_stores(void) {
    reel__each_left_by_the_dead("/dev/shm", "reel-test-", 1, remove_if_old, NULL);
}

/* Removes the status segments of test processes killed before their
 * th_fini(): reel-status-reel-test-<tag>-<pid>-... The tag comes before the
 * pid in the name, so the pipeline's own sweep (reel__status_sweep, default
 * names <pipeline>-<pid> only) leaves them; reel__status_remove_stale()
 * reads their writer from the header. Only old ones, as for the stores: a
 * test may write a dead pid into a segment it is still using. */
static int remove_if_dead_tests(void *dir, const char *name) {
    char path[PATH_MAX];
    struct stat st;
    snprintf(path, sizeof path, "%s/" REEL_STATUS_PREFIX "%s", (const char *)dir, name);
    if (strncmp(name, "reel-test-", 10) == 0 && stat(path, &st) == 0 &&
        st.st_mtime <= time(NULL) - 3600)
        (void)reel__status_remove_stale(path, 0);
    return 0;
}

static void remove_dead_tests_status_segments(void) {
    char dir[64];
    if (reel__private_dir(dir, sizeof dir) == 0)
        (void)reel__status_list(remove_if_dead_tests, dir);
}

static pid_t th_paths_owner; /* the process whose paths they are */

static void remove_paths(void) {
    if (getpid() != th_paths_owner) /* a child that exit()ed: the stores are not its */
        return;
    for (size_t i = 0; i < th_npaths; i++) {
        /* destroy also removes the store's spill directory; unlink what it cannot open. */
        if (reel_store_destroy(th_paths[i]) != 0)
            unlink(th_paths[i]);
        free(th_paths[i]);
        th_paths[i] = NULL;
    }
    th_npaths = 0;
}

void th_init(void) {
    /* A child that outlives a failing check must not take the runner down with a
     * write to a closed pipe. */
    signal(SIGPIPE, SIG_IGN);
    remove_dead_tests_stores();
    remove_dead_tests_status_segments();
    /* A skipped test ends without its .fini: its stores go at exit instead. */
    th_paths_owner = getpid();
    static bool registered;
    if (!registered && atexit(remove_paths) == 0)
        registered = true;
}

void th_fini(void) {
    th_reap_all();
    remove_paths();
}

/* ---- store paths ---------------------------------------------------------------- */

const char *th_store_path(void) {
    cr_assert_lt(th_npaths, (size_t)TH_MAX_PATHS, "too many store paths in one test");
    uint32_t rnd = 0;
    if (getrandom(&rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
        rnd = (uint32_t)th_realtime_ns();
    struct stat st;
    const char *dir = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : NULL;
    if (!dir)
        dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char buf[512];
    snprintf(buf, sizeof buf, "%s/reel-test-%d-%u-%08x", dir, (int)getpid(), th_counter++, rnd);
    char *p = strdup(buf);
    cr_assert_not_null(p);
    th_paths[th_npaths++] = p;
    return p;
}

reel_store *th_store_new_opts(const reel_store_options *opts, const char **path_out) {
    const char *path = th_store_path();
    reel_store *store = NULL;
    int rc = reel_store_create(path, opts, &store);
    char buf[512];
    cr_assert_eq(rc, 0, "reel_store_create(%s) -> %s", path, th_rcstr(rc, buf, sizeof buf));
    cr_assert_not_null(store);
    if (path_out)
        *path_out = path;
    return store;
}

reel_store *th_store_new(uint64_t capacity, uint32_t max_objects, const char **path_out) {
    reel_store_options opts = {0};
    opts.capacity = capacity;
    opts.max_objects = max_objects;
    opts.flags = REEL_STORE_NO_PREFAULT | REEL_STORE_NO_SPILL;
    return th_store_new_opts(&opts, path_out);
}

reel_store_stats th_stats(reel_store *store) {
    reel_store_stats st;
    memset(&st, 0xa5, sizeof st);
    int rc = reel_store_stats_get(store, &st);
    char buf[512];
    cr_assert_eq(rc, 0, "reel_store_stats_get -> %s", th_rcstr(rc, buf, sizeof buf));
    return st;
}

void th_expect_same_usage(const reel_store_stats *want, const reel_store_stats *got,
                          const char *when) {
#define TH_SAME_(field)                                                                            \
    cr_assert_eq(got->field, want->field, "%s: " #field " is %llu, expected %llu", when,           \
                 (unsigned long long)got->field, (unsigned long long)want->field)
    TH_SAME_(used);
    TH_SAME_(free);
    TH_SAME_(largest_free);
    TH_SAME_(free_blocks);
    TH_SAME_(objects);
    TH_SAME_(objects_unsealed);
    TH_SAME_(objects_sealed);
    TH_SAME_(objects_deleting);
    TH_SAME_(objects_evictable);
    TH_SAME_(objects_referenced);
    TH_SAME_(objects_owned);
#undef TH_SAME_
}

const char *th_rcstr(int rc, char *buf, size_t cap) {
    /* Copy the detail first: reel_strerror() is a reel call too. */
    char detail[256];
    const char *d = reel_last_error();
    snprintf(detail, sizeof detail, "%s", d ? d : "(null)");
    const char *name = reel_strerror(rc);
    if (rc != 0 && detail[0])
        snprintf(buf, cap, "%d (%s) [%s]", rc, name ? name : "(null)", detail);
    else
        snprintf(buf, cap, "%d (%s)", rc, name ? name : "(null)");
    return buf;
}

/* ---- children ------------------------------------------------------------------- */

static void th_forget(pid_t pid) {
    for (size_t i = 0; i < TH_MAX_CHILDREN; i++)
        if (th_children[i] == pid)
            th_children[i] = 0;
}

pid_t th_fork(th_child_fn fn, void *arg) {
    size_t slot = TH_MAX_CHILDREN;
    for (size_t i = 0; i < TH_MAX_CHILDREN; i++)
        if (th_children[i] == 0) {
            slot = i;
            break;
        }
    cr_assert_lt(slot, (size_t)TH_MAX_CHILDREN, "too many live children");
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_neq(pid, -1, "fork: %s", strerror(errno));
    if (pid == 0) {
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
            _exit(125);
        if (getppid() != parent) /* the parent died before prctl() */
            _exit(125);
        memset(th_children, 0, sizeof th_children);
        int rc = fn(arg);
        fflush(NULL);
        _exit(rc & 0xff);
    }
    th_children[slot] = pid;
    return pid;
}

static int th_status_code(int status) {
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return -1;
}

uint64_t th_monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int exit_at_once(void *arg) {
    (void)arg;
    return 0;
}

pid_t th_gone_pid(void) {
    pid_t pid = th_fork(exit_at_once, NULL);
    cr_assert_eq(th_wait(pid, 10000), 0, "a child that only exits did not");
    return pid;
}

int th_wait(pid_t pid, int timeout_ms) {
    uint64_t deadline = th_monotonic_ns() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms) * 1000000u;
    for (;;) {
        int status;
        pid_t r = waitpid(pid, &status, timeout_ms < 0 ? 0 : WNOHANG);
        if (r == pid) {
            th_forget(pid);
            return th_status_code(status);
        }
        if (r < 0 && errno != EINTR) {
            th_forget(pid);
            return -1;
        }
        if (r == 0 && th_monotonic_ns() >= deadline) {
            kill(pid, SIGKILL);
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
            th_forget(pid);
            return -1;
        }
        if (r == 0)
            th_sleep_us(1000);
    }
}

int th_kill_wait(pid_t pid, int sig) {
    kill(pid, sig);
    int status;
    pid_t r;
    while ((r = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
        ;
    th_forget(pid);
    if (r != pid)
        return -1;
    return th_status_code(status);
}

void th_reap_all(void) {
    for (size_t i = 0; i < TH_MAX_CHILDREN; i++) {
        pid_t pid = th_children[i];
        if (pid > 0) {
            kill(pid, SIGKILL);
            int status;
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
            th_children[i] = 0;
        }
    }
}

/* ---- running a program ---------------------------------------------------------- */

/* Reads all of a memfd the program wrote to, and closes it. */
static char *th_slurp(int fd) {
    off_t n = lseek(fd, 0, SEEK_END);
    cr_assert_geq(n, 0);
    char *buf = malloc((size_t)n + 1);
    cr_assert_not_null(buf);
    cr_assert_eq(pread(fd, buf, (size_t)n, 0), (ssize_t)n);
    buf[n] = '\0';
    close(fd);
    return buf;
}

th_result th_run(const char *bin, const th_when *when, const char *const *args) {
    return th_run_limit(bin, when, args, 20000);
}

th_result th_run_limit(const char *bin, const th_when *when, const char *const *args,
                       int limit_ms) {
    const char *argv[32];
    int argc = 0;
    argv[argc++] = bin;
    for (; *args; args++) {
        cr_assert_lt(argc, 31);
        argv[argc++] = *args;
    }
    argv[argc] = NULL;

    /* Files rather than pipes: the program never blocks on a full pipe while
     * this polls for its end. */
    int out = memfd_create("th-run-out", 0), err = memfd_create("th-run-err", 0);
    cr_assert(out >= 0 && err >= 0, "memfd_create: %s", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        int null = open("/dev/null", O_RDONLY);
        if (null < 0 || dup2(null, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
            _exit(126);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    uint64_t start = th_monotonic_ns();
    int status = 0;
    bool done = false;
    for (;;) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            break;
        int64_t ms = (int64_t)((th_monotonic_ns() - start) / 1000000);
        if (when && !done && ms >= when->ms) {
            if (when->fn)
                when->fn(when->arg);
            else
                kill(pid, SIGINT);
            done = true;
        }
        if (ms > limit_ms) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            cr_assert_fail("%s did not finish within %d ms", bin, limit_ms);
        }
        th_sleep_ms(5);
    }
    th_result r;
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    r.out = th_slurp(out);
    r.err = th_slurp(err);
    cr_assert_neq(r.code, 127, "cannot execute %s", bin);
    return r;
}

th_result th_run_inspect(const th_when *when, const char *const *args) {
    const char *bin = getenv("REEL_INSPECT");
    if (!bin || !*bin)
        cr_skip_test("REEL_INSPECT is not set (ctest sets it to the reel-inspect binary)");
    return th_run(bin, when, args);
}

void th_result_free(th_result *r) {
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

int th_curate_lock(int how) {
    char path[128];
    snprintf(path, sizeof path, "%s/curate-test-sweep.lock", th_private_dir());
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
    while (flock(fd, how) != 0)
        cr_assert_eq(errno, EINTR, "flock %s: %s", path, strerror(errno));
    return fd;
}

int th_rm_tree(const char *dir) {
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

const char *th_read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

int th_count_files(const char *dir, const char *sub, const char *suffix) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, sub);
    DIR *d = opendir(path);
    if (!d)
        return 0;
    int n = 0;
    size_t want = suffix ? strlen(suffix) : 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        n += e->d_name[0] != '.' &&
             (!suffix || (len >= want && strcmp(e->d_name + len - want, suffix) == 0));
    }
    closedir(d);
    return n;
}

const char *th_curate_bin(void) {
    const char *bin = getenv("REEL_CURATE");
    if (!bin || !*bin)
        cr_skip_test("REEL_CURATE is not set (ctest sets it to the reel-curate binary)");
    return bin;
}

const char *th_sample(const char *name, char *buf, size_t cap) {
    const char *dir = getenv("REEL_SAMPLES");
    if (!dir)
        cr_skip_test("REEL_SAMPLES is not set (ctest sets it; scripts/samples.sh fetches them)");
    snprintf(buf, cap, "%s/%s", dir, name);
    if (access(buf, R_OK) != 0)
        cr_skip_test("%s is missing: run scripts/samples.sh", buf);
    return buf;
}

void th_assert_one_error_line(const th_result *r, int code, const char *prefix, const char *what) {
    cr_assert_eq(r->signal, 0, "%s: killed by signal %d", what, r->signal);
    cr_assert_eq(r->code, code, "%s: exit %d, expected %d; stderr: %s", what, r->code, code,
                 r->err);
    cr_assert_eq(strncmp(r->err, prefix, strlen(prefix)), 0, "%s: stderr is '%s'", what, r->err);
    cr_assert_eq(th_count(r->err, "\n"), 1, "%s: stderr is not one line: '%s'", what, r->err);
    size_t n = strlen(r->err);
    cr_assert(n > 0 && r->err[n - 1] == '\n', "%s: stderr does not end its line", what);
    cr_assert_str_empty(r->out, "%s: stdout is '%s'", what, r->out);
}

int th_count(const char *s, const char *what) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, what)); p += strlen(what))
        n++;
    return n;
}

/* ---- files ------------------------------------------------------------------------ */

void th_write_file(const char *path, const void *data, size_t n) {
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
    cr_assert_eq(write(fd, data, n), (ssize_t)n);
    close(fd);
}

/* ---- pipes ------------------------------------------------------------------------- */

void th_chan_open(th_chan *ch) {
    cr_assert_eq(pipe2(ch->fd, O_CLOEXEC), 0, "pipe2: %s", strerror(errno));
}

void th_chan_close(th_chan *ch) {
    for (int i = 0; i < 2; i++)
        if (ch->fd[i] >= 0) {
            close(ch->fd[i]);
            ch->fd[i] = -1;
        }
}

int th_chan_send(th_chan *ch, char c) {
    for (;;) {
        ssize_t w = write(ch->fd[1], &c, 1);
        if (w == 1)
            return 0;
        if (w < 0 && errno != EINTR)
            return -errno;
    }
}

int th_chan_recv(th_chan *ch, int timeout_ms) {
    struct pollfd pfd = {.fd = ch->fd[0], .events = POLLIN};
    for (;;) {
        int r = poll(&pfd, 1, timeout_ms);
        if (r == 0)
            return -ETIMEDOUT;
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        unsigned char c;
        ssize_t n = read(ch->fd[0], &c, 1);
        if (n == 1)
            return c;
        if (n == 0)
            return -EPIPE;
        if (errno != EINTR && errno != EAGAIN)
            return -errno;
    }
}

/* ---- data ---------------------------------------------------------------------------- */

uint64_t th_rand64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void th_fill(void *buf, size_t n, uint64_t seed) {
    uint8_t *p = buf;
    uint64_t st = seed;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v = th_rand64(&st);
        memcpy(p + i, &v, 8);
    }
    if (i < n) {
        uint64_t v = th_rand64(&st);
        memcpy(p + i, &v, n - i);
    }
}

size_t th_mismatch(const void *buf, size_t n, uint64_t seed) {
    const uint8_t *p = buf;
    uint64_t st = seed;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v = th_rand64(&st);
        if (memcmp(p + i, &v, 8) != 0) {
            const uint8_t *e = (const uint8_t *)&v;
            for (size_t k = 0; k < 8; k++)
                if (p[i + k] != e[k])
                    return i + k;
        }
    }
    if (i < n) {
        uint64_t v = th_rand64(&st);
        const uint8_t *e = (const uint8_t *)&v;
        for (size_t k = 0; i + k < n; k++)
            if (p[i + k] != e[k])
                return i + k;
    }
    return n;
}

int th_pattern_ok(const void *buf, size_t n, uint64_t seed) {
    return th_mismatch(buf, n, seed) == n;
}

void th_hash128(const void *data, size_t n, uint8_t out[16]) {
    XXH128_hash_t h = XXH3_128bits(data, n);
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, h);
    memcpy(out, c.digest, 16);
}

reel_id th_id_random(void) {
    reel_id id;
    int rc = reel_id_random(&id);
    char buf[512];
    cr_assert_eq(rc, 0, "reel_id_random -> %s", th_rcstr(rc, buf, sizeof buf));
    return id;
}

reel_id th_id_n(uint64_t tag, uint64_t n) {
    reel_id id;
    for (int i = 0; i < 8; i++) {
        id.bytes[i] = (uint8_t)(tag >> (8 * i));
        id.bytes[8 + i] = (uint8_t)(n >> (8 * i));
    }
    return id;
}

void th_sleep_us(long us) {
    struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

void th_sleep_ms(int ms) {
    th_sleep_us((long)ms * 1000);
}

uint64_t th_realtime_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

const char *th_private_dir(void) {
    static char dir[64];
    int rc = reel__private_dir(dir, sizeof dir);
    cr_assert_eq(rc, 0, "reel__private_dir: %s", reel_last_error());
    return dir;
}

int th_wait_asleep(pid_t pid, int timeout_ms) {
    uint64_t until = th_monotonic_ns() + (uint64_t)timeout_ms * 1000000u;
    for (;;) {
        pid_t ppid;
        char state = '?';
        if (!th_proc_stat(pid, &ppid, &state, NULL))
            return 0;
        if (state == 'S')
            return 1;
        if (th_monotonic_ns() >= until)
            return 0;
        th_sleep_ms(1);
    }
}

/* A process's parent, state and name from /proc; 0 if it is gone. */
int th_proc_stat(pid_t pid, pid_t *ppid, char *state, char name[32]) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = '\0';
    char *open = strchr(buf, '('), *close = strrchr(buf, ')');
    int parent = 0;
    if (!open || !close || close < open || sscanf(close + 2, "%c %d", state, &parent) != 2)
        return 0;
    if (name) {
        size_t nlen = (size_t)(close - open - 1);
        if (nlen > 31)
            nlen = 31;
        memcpy(name, open + 1, nlen);
        name[nlen] = '\0';
    }
    *ppid = parent;
    return 1;
}

/* The processes below root (zombies too when with_zombies), into out (at
 * most cap); how many there are. */
size_t th_processes_below(pid_t root, int with_zombies, pid_t *out, size_t cap) {
    pid_t set[1024];
    size_t n = 1;
    set[0] = root;
    for (int grew = 1; grew;) {
        grew = 0;
        DIR *d = opendir("/proc");
        struct dirent *e;
        while (d && (e = readdir(d))) {
            char *end;
            long pid = strtol(e->d_name, &end, 10);
            pid_t ppid;
            char state, name[32];
            if (*end || pid <= 0 || !th_proc_stat((pid_t)pid, &ppid, &state, name))
                continue;
            if (!with_zombies && (state == 'Z' || state == 'X'))
                continue;
            int known = 0, parent_in = 0;
            for (size_t k = 0; k < n; k++) {
                known |= set[k] == (pid_t)pid;
                parent_in |= set[k] == ppid;
            }
            if (!known && parent_in && n < sizeof set / sizeof set[0]) {
                set[n++] = (pid_t)pid;
                grew = 1;
            }
        }
        if (d)
            closedir(d);
    }
    for (size_t i = 1; i < n && i <= cap; i++)
        out[i - 1] = set[i];
    return n - 1;
}

/* Every process below us, zombies included. */
