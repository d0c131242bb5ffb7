/* Helpers shared by reel's programs: see cli.h. */
#include "cli.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <reel/store.h>

/* ---- arguments -------------------------------------------------------------- */

bool cli_match_option(int argc, char **argv, int *i, const char *name, bool needs_value,
                      const char **value, cli_usage_error_fn usage_error) {
    const char *arg = argv[*i];
    size_t n = strlen(name);
    if (strncmp(arg, name, n) != 0 || (arg[n] != '\0' && arg[n] != '='))
        return false;
    if (!needs_value) {
        if (arg[n] == '=')
            usage_error("option %s takes no value", name);
        return true;
    }
    if (arg[n] == '=') {
        *value = arg + n + 1;
    } else {
        if (*i + 1 >= argc)
            usage_error("option %s needs a value", name);
        *value = argv[++*i];
    }
    return true;
}

bool cli_parse_seconds(const char *s, double *out) {
    /* Checked by hand first: strtod alone would take signs, blanks, exponents,
     * "inf" and hex. */
    bool digit = false, dot = false;
    for (const char *p = s; *p; p++) {
        if (*p >= '0' && *p <= '9')
            digit = true;
        else if (*p == '.' && !dot)
            dot = true;
        else
            return false;
    }
    if (!digit)
        return false;
    double v = strtod(s, NULL);
    if (!(v > 0) || v > 1e7)
        return false;
    *out = v;
    return true;
}

/* ---- printing what came from outside ---------------------------------------- */

const char *cli_one_line(const char *s, char *buf, size_t cap) {
    size_t i = 0;
    for (; s && s[i] && i + 1 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    buf[i] = '\0';
    return buf;
}

void cli_json_str(FILE *f, const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    fputc('"', f);
    while (*p) {
        unsigned char c = *p;
        if (c == '"' || c == '\\') {
            fputc('\\', f);
            fputc(c, f);
            p++;
        } else if (c < 0x20 || c == 0x7f) {
            fprintf(f, "\\u%04x", c);
            p++;
        } else if (c < 0x80) {
            fputc(c, f);
            p++;
        } else {
            size_t len = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 0;
            bool ok = len > 0;
            for (size_t k = 1; ok && k < len; k++)
                ok = (p[k] & 0xc0) == 0x80;
            if (ok && len == 3) /* no overlongs, no surrogates */
                ok = !(c == 0xe0 && p[1] < 0xa0) && !(c == 0xed && p[1] >= 0xa0);
            if (ok && len == 4)
                ok = !(c == 0xf0 && p[1] < 0x90) && !(c == 0xf4 && p[1] >= 0x90);
            if (ok) {
                fwrite(p, 1, len, f);
                p += len;
            } else {
                fputs("\\ufffd", f);
                p++;
            }
        }
    }
    fputc('"', f);
}

const char *cli_format_duration(double s, char *buf, size_t cap) {
    /* Clamped so that the conversion stays defined: no run lasts 3e7 years. */
    uint64_t whole = s < 1e15 ? (uint64_t)s : UINT64_C(1000000000000000);
    if (s < 60)
        snprintf(buf, cap, "%.1fs", s);
    else if (whole < 3600)
        snprintf(buf, cap, "%" PRIu64 "m%02" PRIu64 "s", whole / 60, whole % 60);
    else if (whole < 86400)
        snprintf(buf, cap, "%" PRIu64 "h%02" PRIu64 "m", whole / 3600, whole % 3600 / 60);
    else
        snprintf(buf, cap, "%" PRIu64 "d%02" PRIu64 "h", whole / 86400, whole % 86400 / 3600);
    return buf;
}

void cli_print_reel_error(const char *prog, int rc, const char *fmt, ...) {
    char d[512];
    cli_one_line(reel_last_error(), d, sizeof(d)); /* before any other reel call */
    if (strstr(d, reel_strerror(rc)))
        d[0] = '\0'; /* it only restates the error */
    va_list ap;
    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, ": %s%s%s%s\n", reel_strerror(rc), d[0] ? " (" : "", d, d[0] ? ")" : "");
}

/* ---- --watch ----------------------------------------------------------------- */

/* The signals that ask a program to stop: a run, or a --watch. */
static const int stop_signals[3] = {SIGINT, SIGTERM, SIGHUP};

volatile sig_atomic_t cli_stop_signal;
static struct sigaction replaced[3];

static void on_stop_signal(int sig) {
    cli_stop_signal = sig;
}

void cli_catch_stop_signals(bool reset_hand) {
    cli_stop_signal = 0;
    struct sigaction sa = {.sa_handler = on_stop_signal,
                           .sa_flags = SA_RESTART | (reset_hand ? SA_RESETHAND : 0)};
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < 3; i++)
        sigaction(stop_signals[i], &sa, &replaced[i]);
}

void cli_release_stop_signals(void) {
    for (int i = 0; i < 3; i++)
        sigaction(stop_signals[i], &replaced[i], NULL);
}

void cli_watch_block_signals(sigset_t *stop) {
    sigemptyset(stop);
    for (int i = 0; i < 3; i++)
        sigaddset(stop, stop_signals[i]);
    sigprocmask(SIG_BLOCK, stop, NULL);
}

bool cli_watch_sleep(const sigset_t *stop, double seconds) {
    struct timespec period;
    period.tv_sec = (time_t)seconds;
    period.tv_nsec = (long)((seconds - (double)period.tv_sec) * 1e9);
    if (period.tv_nsec >= 1000000000L)
        period.tv_nsec = 999999999L;
    return sigtimedwait(stop, NULL, &period) > 0;
}

void cli_print_watch_banner(FILE *f, double every_s, const char *prog, const char *target,
                            uint64_t now_ns, bool first, bool tty) {
    char when[64];
    time_t t = (time_t)(now_ns / 1000000000u);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
    if (tty)
        fputs("\033[H\033[2J", f);
    else if (!first)
        fputc('\n', f);
    fprintf(f, "every %gs: %s %s    %s\n\n", every_s, prog, target, when);
}
