/*
 * helpers.h - shared helpers for reel's Criterion tests.
 *
 * Store paths: th_store_path() hands out a unique path per call
 * (/dev/shm/reel-test-<pid>-<counter>-<random>) and remembers it; th_fini()
 * removes every path handed out in the test process.
 *
 * Children: th_fork() forks a child that dies with its parent
 * (PR_SET_PDEATHSIG) and runs a function whose return value is the exit code.
 * Children never use Criterion's asserts (they would report into the parent's
 * test): they use TH_CHILD_CHECK, which prints why and returns 1. The parent
 * reaps each child with th_wait()/th_kill_wait(); th_fini() kills and reaps any
 * child a failing test left behind, so no zombie or orphan survives a test.
 *
 * Programs: th_run() runs a program (th_run_inspect(): reel-inspect) to its
 * end and hands back its exit code and everything it printed, for a test to
 * check; th_assert_one_error_line() checks the shape of a failure.
 *
 * Use th_init/th_fini as the suite's .init/.fini.
 */
#ifndef REEL_TESTS_HELPERS_H
#define REEL_TESTS_HELPERS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <unistd.h>

#include <reel/store.h>

/* ---- fixture -------------------------------------------------------------- */

void th_init(void);
void th_fini(void);

/* ---- store paths ---------------------------------------------------------- */

/* This user's private directory, where bare store names, pool segments and
 * status segments live (/dev/shm/reel-<uid>); asserts it can be made. */
const char *th_private_dir(void);

/* A fresh unique path (no file there yet), removed by th_fini(). The string
 * stays valid until th_fini(). */
const char *th_store_path(void);

/* Creates a store at a fresh path with the given sizes (0 = default),
 * REEL_STORE_NO_PREFAULT and REEL_STORE_NO_SPILL: a memory-only store, whose
 * fullness, eviction and waiting the store tests check. Spilling is tested on
 * stores made with th_store_new_opts(). Asserts success. */
reel_store *th_store_new(uint64_t capacity, uint32_t max_objects, const char **path_out);
reel_store *th_store_new_opts(const reel_store_options *opts, const char **path_out);

/* Stats, asserting success. */
reel_store_stats th_stats(reel_store *store);

/* Asserts that two snapshots agree on space and object counters, to the byte:
 * used, free, largest_free, free_blocks and the object counts by state. */
void th_expect_same_usage(const reel_store_stats *want, const reel_store_stats *got,
                          const char *when);

/* ---- return code assertions ----------------------------------------------- */

/* Formats "rc (name) [detail]" into buf for assertion messages. */
const char *th_rcstr(int rc, char *buf, size_t cap);

#define TH_OK(expr)                                                                                \
    do {                                                                                           \
        int th_rc_ = (expr);                                                                       \
        char th_buf_[512];                                                                         \
        cr_assert_eq(th_rc_, 0, "%s:%d: %s -> %s", __FILE__, __LINE__, #expr,                      \
                     th_rcstr(th_rc_, th_buf_, sizeof th_buf_));                                   \
    } while (0)

#define TH_RC(expr, want)                                                                          \
    do {                                                                                           \
        int th_rc_ = (expr);                                                                       \
        int th_want_ = (want);                                                                     \
        char th_buf_[512];                                                                         \
        cr_assert_eq(th_rc_, th_want_, "%s:%d: %s -> %s, expected %d (%s)", __FILE__, __LINE__,    \
                     #expr, th_rcstr(th_rc_, th_buf_, sizeof th_buf_), th_want_,                   \
                     reel_strerror(th_want_));                                                     \
    } while (0)

/* ---- children --------------------------------------------------------------- */

typedef int (*th_child_fn)(void *arg);

/* Forks a child that runs fn(arg) and _exit()s with its return value (0..255).
 * The child gets SIGKILL if the parent dies. Asserts the fork worked. */
pid_t th_fork(th_child_fn fn, void *arg);

/* Waits for a child. Returns its exit code (0..255), 128 + signal if a signal
 * killed it, or -1 if it did not end within timeout_ms (then it is killed and
 * reaped, never left behind). */
int th_wait(pid_t pid, int timeout_ms);

/* The pid of a child that exited at once and was reaped: a pid that names no
 * process (until the kernel hands it out again), for what a dead process
 * leaves behind. */
pid_t th_gone_pid(void);

/* Sends sig to the child and reaps it; returns as th_wait(). */
int th_kill_wait(pid_t pid, int sig);

/* Kills (SIGKILL) and reaps every child still running. */
void th_reap_all(void);

/* In a child: print why and return 1 from the child function. */
#define TH_CHILD_CHECK(cond, ...)                                                                  \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "child %d: %s:%d: check failed: %s: ", (int)getpid(), __FILE__,        \
                    __LINE__, #cond);                                                              \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            fflush(stderr);                                                                        \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

/* In a child: check a reel return code. */
#define TH_CHILD_RC(expr, want)                                                                    \
    do {                                                                                           \
        int th_rc_ = (expr);                                                                       \
        int th_want_ = (want);                                                                     \
        char th_buf_[512];                                                                         \
        TH_CHILD_CHECK(th_rc_ == th_want_, "%s -> %s, expected %d (%s)", #expr,                    \
                       th_rcstr(th_rc_, th_buf_, sizeof th_buf_), th_want_,                        \
                       reel_strerror(th_want_));                                                   \
    } while (0)

/* ---- running a program ---------------------------------------------------------- */

/* What a program that th_run() ran did. out and err are the caller's, freed by
 * th_result_free(). */
typedef struct th_result {
    int code;   /* exit code, or -1 when a signal ended it */
    int signal; /* the signal that ended it, or 0 */
    char *out;  /* everything it wrote to stdout, NUL-terminated */
    char *err;  /* everything it wrote to stderr, NUL-terminated */
} th_result;

/* One thing to do while the program runs: after ms milliseconds, call
 * fn(arg), or send the program SIGINT when fn is NULL. */
typedef struct th_when {
    int ms;
    void (*fn)(void *arg);
    void *arg;
} th_when;

/* Runs the program at path bin with args (NULL-terminated, at most 30) as its
 * arguments, stdin /dev/null, and stdout and stderr captured in full; when,
 * unless NULL, says what to do while it runs. Fails the test when the program
 * cannot be executed, and kills it and fails the test when it has not ended
 * within 20 s. Release the result with th_result_free(). */
th_result th_run(const char *bin, const th_when *when, const char *const *args);

/* th_run() with a time limit of limit_ms instead of 20 s. */
th_result th_run_limit(const char *bin, const th_when *when, const char *const *args, int limit_ms);

/* Takes the lock the reel-curate tests share (how LOCK_SH) or one of them
 * holds alone (LOCK_EX): every run of reel-curate removes the stores that
 * killed runs left, so the test of that sweep runs alone. Returns its file
 * descriptor; closing it (or the test's death) lets go. */
int th_curate_lock(int how);

/* Removes dir and everything under it. 0, or -1 if that failed. */
int th_rm_tree(const char *dir);

/* The text of the file at path (at most 64 KiB; NUL-terminated), in a buffer
 * that the next call reuses, or NULL if it cannot be opened. */
const char *th_read_text(const char *path);

/* How many entries dir/sub holds whose names end in suffix (NULL: any), dot
 * files aside; 0 if it does not exist. */
int th_count_files(const char *dir, const char *sub, const char *suffix);

/* The reel-curate binary $REEL_CURATE names (ctest sets it). Skips the test
 * when it is not set. */
const char *th_curate_bin(void);

/* The path of the sample video name ($REEL_SAMPLES/name) in buf. Skips the
 * test when $REEL_SAMPLES is not set or the file is missing. */
const char *th_sample(const char *name, char *buf, size_t cap);

/* th_run() on reel-inspect: the binary $REEL_INSPECT names (ctest sets it).
 * Skips the test when it is not set. */
th_result th_run_inspect(const th_when *when, const char *const *args);

/* Frees what a th_result holds. */
void th_result_free(th_result *r);

/* Asserts that a run failed cleanly: not ended by a signal, exit code code,
 * exactly one line on stderr that starts with prefix, nothing on stdout.
 * what names the case in the failure messages. */
void th_assert_one_error_line(const th_result *r, int code, const char *prefix, const char *what);

/* How many times what occurs in s, without overlaps. */
int th_count(const char *s, const char *what);

/* ---- files ------------------------------------------------------------------------ */

/* Writes n bytes of data to a new file at path (mode 0600; it must not exist
 * yet). Asserts success. */
void th_write_file(const char *path, const void *data, size_t n);

/* ---- processes ------------------------------------------------------------- */

/* Reads /proc/PID/stat: its parent, state letter and name (at most 31
 * bytes; name may be NULL). Returns 1, or 0 when the process is gone or
 * unreadable. */
int th_proc_stat(pid_t pid, pid_t *ppid, char *state, char name[32]);

/* Waits until pid is asleep (state S: blocked, in a futex wait say) for up
 * to timeout_ms. Returns 1 once it is, 0 at the deadline or when it is gone.
 * For a test that must act while another process waits, in place of a pause
 * that may end before it does. */
int th_wait_asleep(pid_t pid, int timeout_ms);

/* The processes below root, zombies too when with_zombies, into out (at most
 * cap; out may be NULL when cap is 0). Returns how many there are. */
size_t th_processes_below(pid_t root, int with_zombies, pid_t *out, size_t cap);

/* ---- pipes for hand-shakes ---------------------------------------------------- */

typedef struct th_chan {
    int fd[2]; /* fd[0] read end, fd[1] write end */
} th_chan;

/* Opens a pipe (asserts success); close with th_chan_close(). */
void th_chan_open(th_chan *ch);
void th_chan_close(th_chan *ch);

/* Writes one byte; returns 0 or -errno. */
int th_chan_send(th_chan *ch, char c);

/* Reads one byte within timeout_ms (negative: forever); returns the byte
 * (0..255), -ETIMEDOUT, or -EPIPE at end of file. */
int th_chan_recv(th_chan *ch, int timeout_ms);

/* ---- data ----------------------------------------------------------------------- */

/* A splitmix64 step: deterministic pseudo-random numbers from a state. */
uint64_t th_rand64(uint64_t *state);

/* Fills n bytes with a pattern determined by seed. */
void th_fill(void *buf, size_t n, uint64_t seed);

/* Index of the first byte that differs from th_fill(seed), or n if none does. */
size_t th_mismatch(const void *buf, size_t n, uint64_t seed);

/* 1 if buf holds the pattern of seed. */
int th_pattern_ok(const void *buf, size_t n, uint64_t seed);

/* XXH3-128 of the bytes in canonical (big-endian) byte order. */
void th_hash128(const void *data, size_t n, uint8_t out[16]);

/* A random ID (asserting success) and a test-local deterministic ID. */
reel_id th_id_random(void);
reel_id th_id_n(uint64_t tag, uint64_t n);

/* Sleeps for ms milliseconds. */
void th_sleep_ms(int ms);

/* Microsecond sleep used to pick random kill points. */
void th_sleep_us(long us);

/* CLOCK_REALTIME in nanoseconds. */
uint64_t th_realtime_ns(void);

/* CLOCK_MONOTONIC in nanoseconds: one clock for every process. */
uint64_t th_monotonic_ns(void);

#endif /* REEL_TESTS_HELPERS_H */
