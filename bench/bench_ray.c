/*
 * bench_ray.c - runs bench/ray/'s scripts and parses what they print
 * (bench_ray.h).
 *
 * The script runs as a child process with stdin from /dev/null and stdout and
 * stderr on two pipes that this process drains with poll() until stdout has
 * closed and the child has been reaped, or until the time limit. The child
 * dies with this process (PR_SET_PDEATHSIG) and Ray's daemons die with it
 * (Ray ties them to the driver), so an interrupted reel-bench leaves nothing
 * running. Ray's daemons inherit the script's stderr: once the child has been
 * reaped, stderr is read for one more second at most, never waited on.
 *
 * The parser is a recursive-descent reader of exactly one shape (see
 * bench_ray.h): no generic JSON tree, no allocation, every length bounded.
 * Numbers are checked against JSON's grammar before strtod() sees them, so
 * "NaN", "Infinity", hex and leading '+' or '0' never get through; strtod()
 * assumes the "C" locale, which reel-bench never changes.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pipe2; CMake defines it for the whole build */
#endif
#include "bench_ray.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef REEL_BENCH_RAY_DIR
#define REEL_BENCH_RAY_DIR "bench/ray"
#endif

#define QUICK_LIMIT_S   300.0
#define FULL_LIMIT_S    900.0
#define PROBE_LIMIT_S   60.0
#define TERM_GRACE_MS   5000 /* SIGTERM, then this long, then SIGKILL */
#define STDERR_LINGER_S 1.0  /* stderr read after the child is reaped, at most */
#define TAIL_MAX        1024 /* the end of stderr kept for why */

static void say(char *why, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *why, size_t cap, const char *fmt, ...) {
    if (!why || cap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, cap, fmt, ap);
    va_end(ap);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

const char *bench_ray_python(void) {
    const char *p = getenv("REEL_BENCH_PYTHON");
    return p && p[0] ? p : "python3";
}

/* ---- Running a child ------------------------------------------------------ */

typedef struct child_out {
    char *out; /* stdout, terminated; BENCH_RAY_OUTPUT_MAX + 1 bytes */
    size_t out_len;
    int out_big;         /* stdout went past BENCH_RAY_OUTPUT_MAX */
    char tail[TAIL_MAX]; /* the last bytes of stderr (a ring) */
    size_t tail_len;     /* bytes written into the ring in all */
    int status;          /* waitpid()'s */
    double wall_s;
} child_out;

static void tail_add(child_out *c, const char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        c->tail[(c->tail_len++) % TAIL_MAX] = p[i];
}

/* The last non-empty line of stderr, printable, into buf. */
static void tail_last_line(const child_out *c, char *buf, size_t cap) {
    size_t n = c->tail_len < TAIL_MAX ? c->tail_len : TAIL_MAX;
    size_t start = c->tail_len - n;
    char lin[TAIL_MAX + 1];
    for (size_t i = 0; i < n; i++)
        lin[i] = c->tail[(start + i) % TAIL_MAX];
    while (n && (lin[n - 1] == '\n' || lin[n - 1] == '\r' || lin[n - 1] == ' '))
        n--;
    size_t b = n;
    while (b && lin[b - 1] != '\n')
        b--;
    size_t k = 0;
    for (size_t i = b; i < n && k + 1 < cap; i++)
        buf[k++] = (unsigned char)lin[i] < 0x20 || lin[i] == 0x7f ? '?' : lin[i];
    if (cap)
        buf[k] = '\0';
}

/* Stops pid: SIGTERM, TERM_GRACE_MS for it to exit, then SIGKILL; reaps it. */
static int stop_child(pid_t pid) {
    int status = 0;
    kill(pid, SIGTERM);
    for (int i = 0; i < TERM_GRACE_MS / 10; i++) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid || (r < 0 && errno != EINTR))
            return status;
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return status;
}

static void close_fd(int *fd) {
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* Runs argv (argv[0] looked up in PATH), collecting stdout (at most
 * BENCH_RAY_OUTPUT_MAX bytes) and the end of stderr, for at most timeout_s.
 * Returns 0 once the child has exited (any status: see c->status), -ENOENT
 * when argv[0] cannot be run, -ETIMEDOUT, -E2BIG, or a negative errno. */
static int run_child(char *const argv[], double timeout_s, child_out *c, char *why, size_t cap) {
    int out_p[2] = {-1, -1}, err_p[2] = {-1, -1}, exec_p[2] = {-1, -1};
    int rc = 0;
    if (pipe2(out_p, O_CLOEXEC) || pipe2(err_p, O_CLOEXEC) || pipe2(exec_p, O_CLOEXEC)) {
        rc = -errno;
        say(why, cap, "pipe: %s", strerror(-rc));
        goto out;
    }
    double t0 = now_s();
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        rc = -errno;
        say(why, cap, "fork: %s", strerror(-rc));
        goto out;
    }
    if (pid == 0) {
        /* only async-signal-safe calls from here to exec */
        int e = 0;
        int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent)
            _exit(127);
        if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(out_p[1], 1) < 0 || dup2(err_p[1], 2) < 0)
            e = errno ? errno : EIO;
        else
            execvp(argv[0], argv);
        if (!e)
            e = errno;
        (void)!write(exec_p[1], &e, sizeof(e));
        _exit(127);
    }
    close_fd(&out_p[1]);
    close_fd(&err_p[1]);
    close_fd(&exec_p[1]);

    /* the exec pipe closes on a successful exec, or carries the errno */
    int e = 0;
    ssize_t r;
    while ((r = read(exec_p[0], &e, sizeof(e))) < 0 && errno == EINTR)
        ;
    if (r == (ssize_t)sizeof(e)) {
        while (waitpid(pid, &c->status, 0) < 0 && errno == EINTR)
            ;
        rc = e == ENOENT || e == EACCES || e == ENOTDIR ? -ENOENT : -e;
        say(why, cap, "cannot run %s: %s", argv[0], strerror(e));
        goto out;
    }

    fcntl(out_p[0], F_SETFL, O_NONBLOCK);
    fcntl(err_p[0], F_SETFL, O_NONBLOCK);
    int reaped = 0;
    double reaped_at = 0;
    char buf[4096];
    for (;;) {
        double now = now_s();
        if (!reaped) {
            pid_t w = waitpid(pid, &c->status, WNOHANG);
            if (w == pid || (w < 0 && errno == ECHILD)) {
                /* ECHILD: reaped behind our back (SIGCHLD ignored): the
                 * status is lost, so count it a failure */
                if (w < 0)
                    c->status = 255 << 8;
                reaped = 1;
                reaped_at = now;
            }
        }
        /* done: stdout closed and the child gone; stderr only lingers */
        if (reaped && out_p[0] < 0 && (err_p[0] < 0 || now - reaped_at > STDERR_LINGER_S))
            break;
        if (reaped && now - reaped_at > STDERR_LINGER_S) /* a leftover holds stdout */
            break;
        if (now - t0 > timeout_s) {
            if (!reaped)
                c->status = stop_child(pid);
            rc = -ETIMEDOUT;
            say(why, cap, "%s did not finish within %.0f s: stopped", argv[1] ? argv[1] : argv[0],
                timeout_s);
            goto out;
        }
        struct pollfd pf[2] = {{out_p[0], POLLIN, 0}, {err_p[0], POLLIN, 0}};
        int pr = poll(pf, 2, 50);
        if (pr < 0 && errno != EINTR) {
            rc = -errno;
            say(why, cap, "poll: %s", strerror(-rc));
            if (!reaped)
                c->status = stop_child(pid);
            goto out;
        }
        for (int k = 0; pr > 0 && k < 2; k++) {
            if (pf[k].fd < 0 || !(pf[k].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t n = read(pf[k].fd, buf, sizeof(buf));
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            if (n <= 0) {
                close_fd(k ? &err_p[0] : &out_p[0]);
                continue;
            }
            if (k == 1) {
                tail_add(c, buf, (size_t)n);
            } else if (c->out_len + (size_t)n > BENCH_RAY_OUTPUT_MAX) {
                c->out_big = 1;
                if (!reaped)
                    c->status = stop_child(pid);
                rc = -E2BIG;
                say(why, cap, "%s wrote more than %u bytes on stdout: stopped",
                    argv[1] ? argv[1] : argv[0], BENCH_RAY_OUTPUT_MAX);
                goto out;
            } else {
                memcpy(c->out + c->out_len, buf, (size_t)n);
                c->out_len += (size_t)n;
            }
        }
    }
    c->out[c->out_len] = '\0';
    c->wall_s = now_s() - t0;
out:
    close_fd(&out_p[0]);
    close_fd(&out_p[1]);
    close_fd(&err_p[0]);
    close_fd(&err_p[1]);
    close_fd(&exec_p[0]);
    close_fd(&exec_p[1]);
    return rc;
}

/* ---- Availability ----------------------------------------------------------- */

int bench_ray_available(char *why, size_t cap) {
    const char *py = bench_ray_python();
    char code[] = "import ray, sys; sys.stdout.write(ray.__version__)";
    char *argv[] = {(char *)py, "-c", code, NULL};
    child_out *c = calloc(1, sizeof(*c));
    char *out = malloc(BENCH_RAY_OUTPUT_MAX + 1);
    int rc;
    if (!c || !out) {
        rc = -ENOMEM;
        say(why, cap, "out of memory");
        goto done;
    }
    c->out = out;
    rc = run_child(argv, PROBE_LIMIT_S, c, why, cap);
    if (rc == -ENOENT) {
        say(why, cap,
            "Ray is not installed: %s cannot be run; install Python 3, then: "
            "pip install -r %s/requirements.txt",
            py, REEL_BENCH_RAY_DIR);
        goto done;
    }
    if (rc)
        goto done;
    if (!WIFEXITED(c->status) || WEXITSTATUS(c->status) != 0) {
        rc = -ENOENT;
        say(why, cap, "Ray is not installed for %s: pip install -r %s/requirements.txt", py,
            REEL_BENCH_RAY_DIR);
        goto done;
    }
    /* the version: printable and short, or not shown */
    size_t n = c->out_len;
    int ok = n > 0 && n < BENCH_RAY_VERSION_MAX;
    for (size_t i = 0; ok && i < n; i++)
        ok = out[i] > 0x20 && out[i] < 0x7f;
    say(why, cap, "Ray %s (%s)", ok ? out : "of an unknown version", py);
done:
    free(out);
    free(c);
    return rc;
}

/* ---- Running a script ------------------------------------------------------- */

static int script_name_ok(const char *s) {
    size_t n = s ? strlen(s) : 0;
    if (n < 4 || n > 64 || s[0] == '.' || strcmp(s + n - 3, ".py") != 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '/' || (unsigned char)s[i] <= 0x20 || s[i] == 0x7f)
            return 0;
    return 1;
}

/* An extra argument: non-empty, shorter than BENCH_RAY_ARG_MAX, printable
 * (no control character: it would garble why and the script's one line). */
static int extra_arg_ok(const char *s) {
    size_t n = strnlen(s, BENCH_RAY_ARG_MAX);
    if (n == 0 || n == BENCH_RAY_ARG_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 0;
    return 1;
}

int bench_ray_run_in(const char *python, const char *dir, const char *script, int quick,
                     const char *const *extra_args, double timeout_s, bench_ray_rows *out,
                     char *why, size_t cap) {
    if (!script_name_ok(script) || !python || !python[0] || !dir || !dir[0] || !out ||
        !(timeout_s > 0)) {
        say(why, cap, "bad arguments (script '%s')", script ? script : "(null)");
        return -EINVAL;
    }
    size_t nextra = 0;
    for (; extra_args && extra_args[nextra]; nextra++) {
        if (nextra == BENCH_RAY_MAX_ARGS) {
            say(why, cap, "%s: more than %d extra arguments", script, BENCH_RAY_MAX_ARGS);
            return -EINVAL;
        }
        if (!extra_arg_ok(extra_args[nextra])) {
            say(why, cap, "%s: extra argument %zu is empty, too long or not printable", script,
                nextra + 1);
            return -EINVAL;
        }
    }
    char path[4096];
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, script) >= sizeof(path)) {
        say(why, cap, "%s: path too long", script);
        return -EINVAL;
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
        say(why, cap, "%s: no such script", path);
        return -ENOENT;
    }
    /* python, path, --quick, the extras, NULL */
    char *argv[3 + 1 + BENCH_RAY_MAX_ARGS];
    size_t na = 0;
    argv[na++] = (char *)python;
    argv[na++] = path;
    if (quick)
        argv[na++] = "--quick";
    for (size_t k = 0; k < nextra; k++)
        argv[na++] = (char *)extra_args[k];
    argv[na] = NULL;
    child_out *c = calloc(1, sizeof(*c));
    char *text = malloc(BENCH_RAY_OUTPUT_MAX + 1);
    int rc;
    if (!c || !text) {
        rc = -ENOMEM;
        say(why, cap, "out of memory");
        goto done;
    }
    c->out = text;
    if ((rc = run_child(argv, timeout_s, c, why, cap)))
        goto done;
    if (!WIFEXITED(c->status) || WEXITSTATUS(c->status) != 0) {
        char last[200];
        tail_last_line(c, last, sizeof(last));
        rc = -ECHILD;
        if (WIFSIGNALED(c->status))
            say(why, cap, "%s died of signal %d%s%s", script, WTERMSIG(c->status),
                last[0] ? ": " : "", last);
        else
            say(why, cap, "%s exited with %d%s%s", script, WEXITSTATUS(c->status),
                last[0] ? ": " : "", last);
        goto done;
    }
    char perr[200];
    if ((rc = bench_ray_parse(text, c->out_len, out, perr, sizeof(perr)))) {
        say(why, cap, "%s: its output is not what bench_ray reads: %s", script, perr);
        goto done;
    }
    out->wall_s = c->wall_s;
    say(why, cap, "%s: %zu rows, Ray %s, %.1f s", script, out->n, out->ray_version, c->wall_s);
done:
    free(text);
    free(c);
    return rc;
}

int bench_ray_run(const char *script, int quick, const char *const *extra_args, bench_ray_rows *out,
                  char *why, size_t cap) {
    return bench_ray_run_in(bench_ray_python(), REEL_BENCH_RAY_DIR, script, quick, extra_args,
                            quick ? QUICK_LIMIT_S : FULL_LIMIT_S, out, why, cap);
}

/* ---- The parser ---------------------------------------------------------------- */

typedef struct jp {
    const char *s;
    size_t n, i;
    char *why;
    size_t cap;
} jp;

static int bad(jp *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(jp *p, const char *fmt, ...) {
    char what[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    say(p->why, p->cap, "byte %zu: %s", p->i, what);
    return -EPROTO;
}

static void skip_ws(jp *p) {
    while (p->i < p->n &&
           (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r'))
        p->i++;
}

static int peek(jp *p) {
    skip_ws(p);
    return p->i < p->n ? (unsigned char)p->s[p->i] : -1;
}

static int expect(jp *p, char ch) {
    if (peek(p) != (unsigned char)ch)
        return bad(p, "expected '%c'", ch);
    p->i++;
    return 0;
}

static int hex4(jp *p, uint32_t *out) {
    if (p->n - p->i < 4)
        return bad(p, "a \\u escape needs 4 hex digits");
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) {
        char ch = p->s[p->i + (size_t)k];
        int d = ch >= '0' && ch <= '9'   ? ch - '0'
                : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                         : -1;
        if (d < 0)
            return bad(p, "a \\u escape needs 4 hex digits");
        v = v * 16 + (uint32_t)d;
    }
    p->i += 4;
    *out = v;
    return 0;
}

/* Appends code point cp as UTF-8 to dst (len so far, cap bytes with the
 * terminator). */
static int put_cp(jp *p, uint32_t cp, char *dst, size_t *len, size_t cap, const char *what) {
    unsigned char b[4];
    size_t k;
    if (cp < 0x20 || cp == 0x7f)
        return bad(p, "%s: a control character", what);
    if (cp < 0x80) {
        b[0] = (unsigned char)cp;
        k = 1;
    } else if (cp < 0x800) {
        b[0] = (unsigned char)(0xc0 | (cp >> 6));
        b[1] = (unsigned char)(0x80 | (cp & 0x3f));
        k = 2;
    } else if (cp < 0x10000) {
        b[0] = (unsigned char)(0xe0 | (cp >> 12));
        b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        b[2] = (unsigned char)(0x80 | (cp & 0x3f));
        k = 3;
    } else {
        b[0] = (unsigned char)(0xf0 | (cp >> 18));
        b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
        b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        b[3] = (unsigned char)(0x80 | (cp & 0x3f));
        k = 4;
    }
    if (*len + k >= cap)
        return bad(p, "%s: longer than %zu bytes", what, cap - 1);
    memcpy(dst + *len, b, k);
    *len += k;
    return 0;
}

/* The length of the valid UTF-8 sequence at s (n bytes left), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n, uint32_t *cp) {
    size_t k;
    uint32_t v, min;
    if (s[0] < 0x80)
        return *cp = s[0], 1;
    if ((s[0] & 0xe0) == 0xc0)
        k = 2, v = s[0] & 0x1f, min = 0x80;
    else if ((s[0] & 0xf0) == 0xe0)
        k = 3, v = s[0] & 0x0f, min = 0x800;
    else if ((s[0] & 0xf8) == 0xf0)
        k = 4, v = s[0] & 0x07, min = 0x10000;
    else
        return 0;
    if (n < k)
        return 0;
    for (size_t j = 1; j < k; j++) {
        if ((s[j] & 0xc0) != 0x80)
            return 0;
        v = (v << 6) | (s[j] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return k;
}

/* A string into dst (cap bytes, terminator included); longer is an error. */
static int parse_string(jp *p, char *dst, size_t cap, const char *what) {
    int rc;
    if (peek(p) != '"')
        return bad(p, "%s: expected a string", what);
    p->i++;
    size_t len = 0;
    for (;;) {
        if (p->i >= p->n)
            return bad(p, "%s: the string does not end", what);
        unsigned char ch = (unsigned char)p->s[p->i];
        if (ch == '"') {
            p->i++;
            break;
        }
        uint32_t cp;
        if (ch == '\\') {
            if (p->n - p->i < 2)
                return bad(p, "%s: the string does not end", what);
            char esc = p->s[p->i + 1];
            p->i += 2;
            switch (esc) {
            case '"':
            case '\\':
            case '/':
                cp = (uint32_t)esc;
                break;
            case 'b':
            case 'f':
            case 'n':
            case 'r':
            case 't':
                p->i -= 2;
                return bad(p, "%s: a control character", what);
            case 'u':
                if ((rc = hex4(p, &cp)))
                    return rc;
                if (cp >= 0xdc00 && cp <= 0xdfff)
                    return bad(p, "%s: a lone low surrogate", what);
                if (cp >= 0xd800 && cp <= 0xdbff) {
                    uint32_t lo;
                    if (p->n - p->i < 2 || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u')
                        return bad(p, "%s: a lone high surrogate", what);
                    p->i += 2;
                    if ((rc = hex4(p, &lo)))
                        return rc;
                    if (lo < 0xdc00 || lo > 0xdfff)
                        return bad(p, "%s: a high surrogate without its low one", what);
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                }
                break;
            default:
                p->i -= 2;
                return bad(p, "%s: an unknown escape", what);
            }
        } else {
            size_t k = utf8_len((const unsigned char *)p->s + p->i, p->n - p->i, &cp);
            if (k == 0)
                return bad(p, "%s: not UTF-8", what);
            p->i += k;
        }
        if ((rc = put_cp(p, cp, dst, &len, cap, what)))
            return rc;
    }
    dst[len] = '\0';
    return 0;
}

/* A number: JSON's grammar, then strtod; finite and >= 0. */
static int parse_number(jp *p, double *out, const char *what) {
    skip_ws(p);
    size_t b = p->i, i = p->i;
    const char *s = p->s;
    if (i < p->n && s[i] == '-')
        i++;
    if (i < p->n && s[i] == '0') {
        i++;
    } else if (i < p->n && s[i] >= '1' && s[i] <= '9') {
        while (i < p->n && s[i] >= '0' && s[i] <= '9')
            i++;
    } else {
        return bad(p, "%s: expected a number", what);
    }
    if (i < p->n && s[i] == '.') {
        i++;
        if (i >= p->n || s[i] < '0' || s[i] > '9')
            return bad(p, "%s: expected digits after '.'", what);
        while (i < p->n && s[i] >= '0' && s[i] <= '9')
            i++;
    }
    if (i < p->n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < p->n && (s[i] == '+' || s[i] == '-'))
            i++;
        if (i >= p->n || s[i] < '0' || s[i] > '9')
            return bad(p, "%s: expected digits in the exponent", what);
        while (i < p->n && s[i] >= '0' && s[i] <= '9')
            i++;
    }
    char num[64];
    if (i - b >= sizeof(num))
        return bad(p, "%s: a number of more than %zu characters", what, sizeof(num) - 1);
    memcpy(num, s + b, i - b);
    num[i - b] = '\0';
    double v = strtod(num, NULL);
    if (!isfinite(v))
        return bad(p, "%s: %s is out of range", what, num);
    if (v < 0)
        return bad(p, "%s: %s is negative", what, num);
    p->i = i;
    *out = v == 0 ? 0 : v; /* "-0" is 0 */
    return 0;
}

static int parse_null(jp *p) {
    skip_ws(p);
    if (p->n - p->i >= 4 && memcmp(p->s + p->i, "null", 4) == 0) {
        p->i += 4;
        return 0;
    }
    return -EPROTO;
}

/* A number or null: *has says which. */
static int parse_opt_number(jp *p, double *out, int *has, const char *what) {
    if (peek(p) == 'n') {
        if (parse_null(p))
            return bad(p, "%s: expected a number or null", what);
        *has = 0;
        *out = 0;
        return 0;
    }
    *has = 1;
    return parse_number(p, out, what);
}

/* Calls each(p, key, arg) for every member of an object, checking the
 * punctuation; an empty object is allowed. */
static int parse_object(jp *p, const char *what, int (*each)(jp *, const char *, void *),
                        void *arg) {
    char key[32];
    int rc;
    if (peek(p) != '{')
        return bad(p, "%s: expected an object", what);
    p->i++;
    if (peek(p) == '}') {
        p->i++;
        return 0;
    }
    for (;;) {
        if ((rc = parse_string(p, key, sizeof(key), "a key")) || (rc = expect(p, ':')) ||
            (rc = each(p, key, arg)))
            return rc;
        int ch = peek(p);
        if (ch == ',') {
            p->i++;
            continue;
        }
        if (ch == '}') {
            p->i++;
            return 0;
        }
        return bad(p, "%s: expected ',' or '}'", what);
    }
}

enum {
    R_WORKLOAD = 1 << 0,
    R_FIGURE = 1 << 1,
    R_UNIT = 1 << 2,
    R_VALUE = 1 << 3,
    R_P50 = 1 << 4,
    R_P99 = 1 << 5,
    R_ALL = (1 << 6) - 1,
};

typedef struct row_state {
    bench_ray_row *row;
    unsigned seen;
    int has50, has99;
} row_state;

static int seen_once(jp *p, unsigned *seen, unsigned bit, const char *key) {
    if (*seen & bit)
        return bad(p, "the key \"%s\" twice", key);
    *seen |= bit;
    return 0;
}

static int row_member(jp *p, const char *key, void *arg) {
    row_state *st = arg;
    bench_ray_row *r = st->row;
    int rc;
    if (strcmp(key, "workload") == 0) {
        if (!(rc = seen_once(p, &st->seen, R_WORKLOAD, key)))
            rc = parse_string(p, r->workload, sizeof(r->workload), "workload");
    } else if (strcmp(key, "figure") == 0) {
        if (!(rc = seen_once(p, &st->seen, R_FIGURE, key)))
            rc = parse_string(p, r->figure, sizeof(r->figure), "figure");
        if (!rc && !r->figure[0])
            rc = bad(p, "figure: empty");
    } else if (strcmp(key, "unit") == 0) {
        if (!(rc = seen_once(p, &st->seen, R_UNIT, key)))
            rc = parse_string(p, r->unit, sizeof(r->unit), "unit");
        if (!rc && !r->unit[0])
            rc = bad(p, "unit: empty");
    } else if (strcmp(key, "value") == 0) {
        if (!(rc = seen_once(p, &st->seen, R_VALUE, key)))
            rc = parse_number(p, &r->value, "value");
    } else if (strcmp(key, "p50_us") == 0) {
        if (!(rc = seen_once(p, &st->seen, R_P50, key)))
            rc = parse_opt_number(p, &r->p50_us, &st->has50, "p50_us");
    } else if (strcmp(key, "p99_us") == 0) {
        if (!(rc = seen_once(p, &st->seen, R_P99, key)))
            rc = parse_opt_number(p, &r->p99_us, &st->has99, "p99_us");
    } else {
        rc = bad(p, "a row has an unknown key \"%s\"", key);
    }
    return rc;
}

static int parse_row(jp *p, bench_ray_row *r) {
    row_state st = {r, 0, 0, 0};
    memset(r, 0, sizeof(*r));
    size_t at = p->i;
    int rc = parse_object(p, "a row", row_member, &st);
    if (rc)
        return rc;
    if (st.seen != R_ALL) {
        static const char *const names[] = {"workload", "figure", "unit",
                                            "value",    "p50_us", "p99_us"};
        for (int k = 0; k < 6; k++)
            if (!(st.seen & (1u << k))) {
                p->i = at;
                return bad(p, "a row without \"%s\"", names[k]);
            }
    }
    if (st.has50 != st.has99) {
        p->i = at;
        return bad(p, "row \"%s\": p50_us and p99_us must both be numbers or both null", r->figure);
    }
    r->has_lat = st.has50;
    return 0;
}

/* Calls each(p, index, arg) for every element of an array of at most max. */
static int parse_array(jp *p, const char *what, size_t max, int (*each)(jp *, size_t, void *),
                       void *arg, size_t *count) {
    int rc;
    *count = 0;
    if (peek(p) != '[')
        return bad(p, "%s: expected an array", what);
    p->i++;
    if (peek(p) == ']') {
        p->i++;
        return 0;
    }
    for (;;) {
        if (*count == max)
            return bad(p, "%s: more than %zu", what, max);
        if ((rc = each(p, *count, arg)))
            return rc;
        ++*count;
        int ch = peek(p);
        if (ch == ',') {
            p->i++;
            continue;
        }
        if (ch == ']') {
            p->i++;
            return 0;
        }
        return bad(p, "%s: expected ',' or ']'", what);
    }
}

static int row_elem(jp *p, size_t k, void *arg) {
    return parse_row(p, &((bench_ray_rows *)arg)->rows[k]);
}

static int note_elem(jp *p, size_t k, void *arg) {
    bench_ray_rows *o = arg;
    return parse_string(p, o->notes[k], sizeof(o->notes[k]), "a note");
}

enum { T_VERSION = 1 << 0, T_ROWS = 1 << 1, T_NOTES = 1 << 2 };

typedef struct top_state {
    bench_ray_rows *out;
    unsigned seen;
} top_state;

static int top_member(jp *p, const char *key, void *arg) {
    top_state *st = arg;
    bench_ray_rows *o = st->out;
    int rc;
    if (strcmp(key, "ray_version") == 0) {
        if ((rc = seen_once(p, &st->seen, T_VERSION, key)) ||
            (rc = parse_string(p, o->ray_version, sizeof(o->ray_version), "ray_version")))
            return rc;
        if (!o->ray_version[0])
            return bad(p, "ray_version: empty");
        return 0;
    }
    if (strcmp(key, "rows") == 0) {
        if ((rc = seen_once(p, &st->seen, T_ROWS, key)))
            return rc;
        return parse_array(p, "rows", BENCH_RAY_MAX_ROWS, row_elem, o, &o->n);
    }
    if (strcmp(key, "notes") == 0) {
        if ((rc = seen_once(p, &st->seen, T_NOTES, key)))
            return rc;
        return parse_array(p, "notes", BENCH_RAY_MAX_NOTES, note_elem, o, &o->nnotes);
    }
    return bad(p, "an unknown key \"%s\"", key);
}

int bench_ray_parse(const char *text, size_t len, bench_ray_rows *out, char *why, size_t cap) {
    jp p = {text, len, 0, why, cap};
    if (!text || !out) {
        say(why, cap, "nothing to parse");
        return -EPROTO;
    }
    memset(out, 0, sizeof(*out));
    if (memchr(text, '\0', len)) {
        p.i = (size_t)((const char *)memchr(text, '\0', len) - text);
        return bad(&p, "a NUL byte");
    }
    top_state st = {out, 0};
    if (peek(&p) < 0)
        return bad(&p, "no output");
    int rc = parse_object(&p, "the output", top_member, &st);
    if (rc)
        return rc;
    if (peek(&p) >= 0)
        return bad(&p, "more after the object");
    if (!(st.seen & T_VERSION))
        return bad(&p, "no \"ray_version\"");
    if (!(st.seen & T_ROWS))
        return bad(&p, "no \"rows\"");
    if (out->n == 0)
        return bad(&p, "no rows");
    say(why, cap, "%zu rows, Ray %s", out->n, out->ray_version);
    return 0;
}

/* ---- Matching reel's rows ------------------------------------------------------- */

static const bench_ray_row *find_exact(const bench_ray_rows *rows, const char *figure) {
    for (size_t i = 0; i < rows->n; i++)
        if (strcmp(rows->rows[i].figure, figure) == 0)
            return &rows->rows[i];
    return NULL;
}

const bench_ray_row *bench_ray_find(const bench_ray_rows *rows, const char *reel_figure) {
    if (!rows || !reel_figure)
        return NULL;
    const bench_ray_row *r = find_exact(rows, reel_figure);
    if (r)
        return r;
    char buf[256];
    size_t n = strlen(reel_figure);
    if (n >= sizeof(buf))
        return NULL;
    static const char *const modes[] = {", spin", ", sleep"};
    for (int m = 0; m < 2; m++) {
        size_t k = strlen(modes[m]);
        for (const char *at = strstr(reel_figure, modes[m]); at; at = strstr(at + 1, modes[m])) {
            char next = at[k];
            if (next != '\0' && next != ',' && next != ':')
                continue;
            size_t pre = (size_t)(at - reel_figure);
            memcpy(buf, reel_figure, pre);
            strcpy(buf + pre, at + k);
            if ((r = find_exact(rows, buf)))
                return r;
        }
    }
    static const char *const alloc_names[] = {"best static (", "even ("};
    for (int a = 0; a < 2; a++) {
        size_t k = strlen(alloc_names[a]);
        if (strncmp(reel_figure, alloc_names[a], k) == 0 && n > k + 1 &&
            reel_figure[n - 1] == ')') {
            snprintf(buf, sizeof(buf), "static %.*s", (int)(n - k - 1), reel_figure + k);
            return find_exact(rows, buf);
        }
    }
    return NULL;
}
