/*
 * stats.c - what the sections share: timing and percentiles, CPU pinning,
 * the plain cross-process hand-offs that are every section's physical limit,
 * progress, sizes, and the report printed as a table or as JSON.
 */
#include "bench.h"

#include <reel/store.h>

#include <ctype.h>
#include <errno.h>
#include <linux/futex.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- Timing and statistics ---------------------------------------------- */

uint64_t bench_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void bench_spin_ns(uint64_t ns) {
    uint64_t end = bench_now_ns() + ns;
    while (bench_now_ns() < end)
        bench_cpu_relax();
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

uint64_t bench_percentile(const uint64_t *sorted, size_t n, double p) {
    if (n == 0)
        return 0;
    /* nearest rank: the smallest sample with at least p% of samples <= it */
    double rank = ceil(p / 100.0 * (double)n);
    size_t i = rank < 1.0 ? 0 : (size_t)rank - 1;
    if (i >= n)
        i = n - 1;
    return sorted[i];
}

void bench_summarize(uint64_t *samples, size_t n, bench_summary *out) {
    memset(out, 0, sizeof(*out));
    if (n == 0)
        return;
    qsort(samples, n, sizeof(samples[0]), cmp_u64);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += (double)samples[i];
    out->n = n;
    out->mean_ns = sum / (double)n;
    out->min_ns = (double)samples[0];
    out->max_ns = (double)samples[n - 1];
    out->p50_ns = (double)bench_percentile(samples, n, 50);
    out->p99_ns = (double)bench_percentile(samples, n, 99);
}

double bench_timer_p50_us(uint64_t *scratch, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint64_t a = bench_now_ns();
        scratch[i] = bench_now_ns() - a;
    }
    bench_summary s;
    bench_summarize(scratch, n, &s);
    return s.p50_ns / 1000.0;
}

int bench_pin_cpu(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof(set), &set) ? -errno : 0;
}

int bench_cpus(cpu_set_t *set, int *ncpu, int *first, int *second) {
    if (sched_getaffinity(0, sizeof(*set), set))
        return -errno;
    *ncpu = CPU_COUNT(set);
    *first = *second = -1;
    for (int i = 0; i < CPU_SETSIZE; i++) {
        if (!CPU_ISSET(i, set))
            continue;
        if (*first < 0)
            *first = i;
        else if (*second < 0)
            *second = i;
    }
    return 0;
}

/* ---- Cross-process hand-off floors --------------------------------------- */

#define PP_WAIT_NS (10ull * 1000000000u) /* longest either side waits for the other */

/* The parent writes odd values, the child answers with the next even one. */
struct pp_shared {
    _Alignas(64) _Atomic uint64_t spin;
    _Alignas(64) _Atomic uint32_t futex;
};

static long pp_futex(_Atomic uint32_t *word, int op, uint32_t val) {
    /* a sleeper wakes now and then to look at its deadline */
    struct timespec ts = {0, 100000000};
    return syscall(SYS_futex, (uint32_t *)word, op, val, op == FUTEX_WAIT ? &ts : NULL, NULL, 0);
}

/* Waits until the word reaches want (wrap-around is not reached). 0, or
 * -ETIMEDOUT after PP_WAIT_NS. A spinning side reads the clock only every
 * 1024 looks, to keep the loop tight. */
static int pp_wait(struct pp_shared *sh, int kind, int yield, uint64_t want) {
    uint64_t deadline = 0;
    for (unsigned k = 1;; k++) {
        if (kind == BENCH_PP_FUTEX) {
            uint32_t v = atomic_load_explicit(&sh->futex, memory_order_acquire);
            if (v >= (uint32_t)want)
                return 0;
            pp_futex(&sh->futex, FUTEX_WAIT, v);
        } else {
            if (atomic_load_explicit(&sh->spin, memory_order_acquire) >= want)
                return 0;
            if (yield)
                sched_yield();
            else
                bench_cpu_relax();
            if ((k & 1023) != 0)
                continue;
        }
        uint64_t now = bench_now_ns();
        if (!deadline)
            deadline = now + PP_WAIT_NS;
        else if (now > deadline)
            return -ETIMEDOUT;
    }
}

static void pp_post(struct pp_shared *sh, int kind, uint64_t v) {
    if (kind == BENCH_PP_FUTEX) {
        atomic_store_explicit(&sh->futex, (uint32_t)v, memory_order_release);
        pp_futex(&sh->futex, FUTEX_WAKE, 1);
    } else {
        atomic_store_explicit(&sh->spin, v, memory_order_release);
    }
}

int bench_pingpong(int kind, int child_cpu, int yield, uint64_t n, uint64_t warm, uint64_t *rtt_ns,
                   char *err, size_t errcap) {
    struct pp_shared *sh =
        mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED) {
        int rc = -errno;
        snprintf(err, errcap, "mmap(MAP_SHARED): %s", strerror(-rc));
        return rc;
    }
    /* round 0 is the handshake, rounds 1..warm warm up, the rest are timed */
    uint64_t rounds = 1 + warm + n;
    fflush(NULL);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        if (child_cpu >= 0 && bench_pin_cpu(child_cpu) != 0)
            _exit(1);
        for (uint64_t i = 0; i < rounds; i++) {
            if (pp_wait(sh, kind, yield, 2 * i + 1) != 0)
                _exit(1);
            pp_post(sh, kind, 2 * i + 2);
        }
        _exit(0);
    }
    int rc = 0;
    if (pid < 0) {
        rc = -errno;
        snprintf(err, errcap, "fork: %s", strerror(-rc));
        munmap(sh, sizeof(*sh));
        return rc;
    }
    for (uint64_t i = 0; !rc && i < rounds; i++) {
        uint64_t t0 = bench_now_ns();
        pp_post(sh, kind, 2 * i + 1);
        rc = pp_wait(sh, kind, yield, 2 * i + 2);
        uint64_t t1 = bench_now_ns();
        if (i > warm)
            rtt_ns[i - warm - 1] = t1 - t0;
    }
    if (rc) {
        snprintf(err, errcap, "ping-pong: no answer from the other process within %llu s",
                 PP_WAIT_NS / 1000000000u);
        kill(pid, SIGKILL);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!rc && (!WIFEXITED(status) || WEXITSTATUS(status) != 0)) {
        snprintf(err, errcap, "ping-pong: the other process failed (status 0x%x)", status);
        rc = -ECHILD;
    }
    munmap(sh, sizeof(*sh));
    return rc;
}

int bench_handoff_limits(const bench_options *opts, bench_report *report, const char *group,
                         int one_way, int child_cpu, int yield, uint64_t *scratch, size_t scratch_n,
                         double *spin_p50_us, double *futex_p50_us) {
    static const struct {
        int kind;
        const char *one_way, *round_trip;
        uint64_t full, quick;
    } kinds[] = {
        {BENCH_PP_SPIN, "spin hand-off (one-way)", "spin round trip", 200000, 20000},
        {BENCH_PP_FUTEX, "futex hand-off (one-way)", "futex round trip", 5000, 1000},
    };
    for (size_t k = 0; k < 2; k++) {
        const char *figure = one_way ? kinds[k].one_way : kinds[k].round_trip;
        bench_progress(opts, report->section, "%s", figure);
        uint64_t n = opts->iterations ? opts->iterations
                     : opts->quick    ? kinds[k].quick
                                      : kinds[k].full;
        n = n < scratch_n ? n : scratch_n;
        uint64_t warm = n / 10 + 1 < 1000 ? n / 10 + 1 : 1000;
        int err = bench_pingpong(kinds[k].kind, child_cpu, yield, n, warm, scratch, report->error,
                                 sizeof(report->error));
        if (err)
            return err;
        for (uint64_t i = 0; one_way && i < n; i++)
            scratch[i] /= 2;
        bench_summary s;
        bench_summarize(scratch, n, &s);
        bench_row *r =
            bench_report_add(report, group, figure, "us", BENCH_LATENCY, s.mean_ns / 1e3);
        bench_row_latency(r, s.p50_ns / 1e3, s.p99_ns / 1e3, n);
        *(kinds[k].kind == BENCH_PP_SPIN ? spin_p50_us : futex_p50_us) = s.p50_ns / 1e3;
    }
    return 0;
}

/* ---- A quiet machine ----------------------------------------------------- */

/* The busy share of all CPUs over the next window_ms, from /proc/stat; -1
 * where it cannot be read. */
static double busy_share(int window_ms) {
    unsigned long long a[2][8];
    for (int k = 0; k < 2; k++) {
        FILE *f = fopen("/proc/stat", "r");
        if (!f)
            return -1;
        int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &a[k][0], &a[k][1],
                       &a[k][2], &a[k][3], &a[k][4], &a[k][5], &a[k][6], &a[k][7]);
        fclose(f);
        if (n != 8)
            return -1;
        if (k == 0) {
            struct timespec ts = {window_ms / 1000, (long)(window_ms % 1000) * 1000000L};
            while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
                ;
        }
    }
    unsigned long long total = 0, idle = 0;
    for (int i = 0; i < 8; i++)
        total += a[1][i] - a[0][i];
    idle = (a[1][3] - a[0][3]) + (a[1][4] - a[0][4]); /* idle + iowait */
    return total ? 1.0 - (double)idle / (double)total : 0;
}

double bench_wait_quiet(double max_s) {
    uint64_t t0 = bench_now_ns();
    while ((double)(bench_now_ns() - t0) / 1e9 < max_s) {
        double busy = busy_share(250);
        if (busy < 0 || busy <= BENCH_QUIET_BUSY)
            break;
    }
    return (double)(bench_now_ns() - t0) / 1e9;
}

/* ---- Progress ------------------------------------------------------------ */

void bench_progress(const bench_options *opts, const char *section, const char *fmt, ...) {
    if (!opts->progress)
        return;
    fprintf(stderr, "\r\033[Kreel-bench: %s: ", section);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

void bench_progress_done(const bench_options *opts) {
    if (opts->progress)
        fprintf(stderr, "\r\033[K");
}

/* ---- Sizes -------------------------------------------------------------- */

int bench_parse_size(const char *text, uint64_t *out) {
    const char *p = text;
    if (!isdigit((unsigned char)*p))
        return -EINVAL;
    uint64_t v = 0;
    while (isdigit((unsigned char)*p)) {
        uint64_t d = (uint64_t)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -EINVAL;
        v = v * 10 + d;
        p++;
    }
    unsigned shift = 0;
    switch (tolower((unsigned char)*p)) {
    case 'k':
        shift = 10;
        break;
    case 'm':
        shift = 20;
        break;
    case 'g':
        shift = 30;
        break;
    default:
        break;
    }
    if (shift) {
        p++;
        if (tolower((unsigned char)*p) == 'i')
            p++;
        if (tolower((unsigned char)*p) == 'b')
            p++;
    } else if (tolower((unsigned char)*p) == 'b') {
        p++;
    }
    if (*p != '\0')
        return -EINVAL;
    if (shift && v > (UINT64_MAX >> shift))
        return -EINVAL;
    *out = v << shift;
    return 0;
}

void bench_format_size(uint64_t bytes, char *buf, size_t cap) {
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    unsigned u = 0;
    double v = (double)bytes;
    while (v >= 1024.0 && u + 1 < sizeof(units) / sizeof(units[0])) {
        v /= 1024.0;
        u++;
    }
    if (v == floor(v))
        snprintf(buf, cap, "%.0f %s", v, units[u]);
    else
        snprintf(buf, cap, "%.3g %s", v, units[u]);
}

/* ---- Report ------------------------------------------------------------- */

bench_row *bench_report_add(bench_report *report, const char *group, const char *figure,
                            const char *unit, int kind, double value) {
    if (report->n == report->cap) {
        size_t cap = report->cap ? report->cap * 2 : 64;
        bench_row *rows = realloc(report->rows, cap * sizeof(*rows));
        if (!rows)
            return NULL;
        report->rows = rows;
        report->cap = cap;
    }
    bench_row *row = &report->rows[report->n++];
    memset(row, 0, sizeof(*row));
    snprintf(row->group, sizeof(row->group), "%s", group);
    snprintf(row->figure, sizeof(row->figure), "%s", figure);
    snprintf(row->unit, sizeof(row->unit), "%s", unit);
    row->kind = kind;
    row->value = value;
    return row;
}

void bench_report_note(bench_report *report, const char *fmt, ...) {
    if (report->nnotes >= sizeof(report->notes) / sizeof(report->notes[0]))
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(report->notes[report->nnotes++], sizeof(report->notes[0]), fmt, ap);
    va_end(ap);
}

void bench_report_error(bench_report *report, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(report->error, sizeof(report->error), fmt, ap);
    va_end(ap);
}

void bench_row_latency(bench_row *row, double p50_us, double p99_us, uint64_t samples) {
    if (!row)
        return;
    row->has_lat = 1;
    row->p50_us = p50_us;
    row->p99_us = p99_us;
    row->samples = samples;
}

void bench_row_baseline(bench_row *row, const char *name, double value) {
    if (!row)
        return;
    row->has_baseline = 1;
    snprintf(row->baseline_name, sizeof(row->baseline_name), "%s", name);
    row->baseline = value;
}

void bench_row_limit(bench_row *row, const char *name, double value) {
    if (!row)
        return;
    row->has_limit = 1;
    snprintf(row->limit_name, sizeof(row->limit_name), "%s", name);
    row->limit = value;
}

void bench_row_target(bench_row *row, int metric, int op, double threshold, const char *text) {
    if (!row)
        return;
    row->has_target = 1;
    row->target_metric = metric;
    row->target_op = op;
    row->target = threshold;
    snprintf(row->target_text, sizeof(row->target_text), "%s", text);
}

void bench_row_ray_baseline(bench_row *row, double value, int has_lat, double p50_us,
                            double p99_us) {
    if (!row)
        return;
    bench_row_baseline(row, "Ray, this machine", value);
    row->baseline_ray = 1;
    row->baseline_has_lat = has_lat;
    row->baseline_p50_us = p50_us;
    row->baseline_p99_us = p99_us;
}

void bench_row_vs_ray(bench_row *row, double times) {
    if (!row)
        return;
    row->has_vs_ray = 1;
    row->vs_ray = times;
    snprintf(row->vs_ray_text, sizeof(row->vs_ray_text), ">= %gx Ray", times);
}

static double compared_figure(const bench_row *row) {
    return row->kind == BENCH_LATENCY ? row->p50_us : row->value;
}

static double target_measured(const bench_row *row) {
    switch (row->target_metric) {
    case BENCH_ON_P50:
        return row->p50_us;
    case BENCH_ON_LIMIT:
        return row->ratio_limit;
    default:
        return row->value;
    }
}

void bench_report_finish(bench_report *report) {
    for (size_t i = 0; i < report->n; i++) {
        bench_row *r = &report->rows[i];
        double x = compared_figure(r);
        r->ratio_baseline = r->has_baseline && r->baseline > 0 ? x / r->baseline : 0;
        r->ratio_limit = r->has_limit && r->limit > 0 ? x / r->limit : 0;
        r->vs_ray_state = BENCH_VS_RAY_UNMEASURED;
        if (r->has_vs_ray && r->baseline_ray && r->ratio_baseline > 0) {
            /* speed: a latency's ratio is reel's p50 over Ray's, its inverse */
            r->vs_ray_measured =
                r->kind == BENCH_LATENCY ? 1.0 / r->ratio_baseline : r->ratio_baseline;
            r->vs_ray_state =
                r->vs_ray_measured >= r->vs_ray ? BENCH_VS_RAY_MET : BENCH_VS_RAY_MISSED;
        }
        if (!r->has_target)
            continue;
        double m = target_measured(r);
        if (r->target_op == BENCH_LE) {
            r->target_met = m <= r->target;
            r->target_miss = r->target > 0 ? m / r->target : INFINITY;
        } else {
            r->target_met = m >= r->target;
            r->target_miss = m > 0 ? r->target / m : INFINITY;
        }
        if (r->target_met)
            r->target_miss = 1.0;
    }
}

bench_series *bench_report_series(bench_report *report, const char *name, const char *title,
                                  size_t ncols, const char *const *cols, const char *const *units,
                                  const int *steps) {
    if (ncols < 2 || ncols > BENCH_SERIES_COLS)
        return NULL;
    bench_series *all = realloc(report->series, (report->nseries + 1) * sizeof(*all));
    if (!all)
        return NULL;
    report->series = all;
    bench_series *s = &all[report->nseries++];
    memset(s, 0, sizeof(*s));
    snprintf(s->name, sizeof(s->name), "%s", name);
    snprintf(s->title, sizeof(s->title), "%s", title);
    s->ncols = ncols;
    for (size_t k = 0; k < ncols; k++) {
        snprintf(s->col[k], sizeof(s->col[k]), "%s", cols[k]);
        snprintf(s->unit[k], sizeof(s->unit[k]), "%s", units[k]);
        s->steps[k] = steps ? steps[k] : 0;
    }
    return s;
}

int bench_series_add(bench_series *series, const double *values) {
    if (series->n == series->cap) {
        size_t cap = series->cap ? series->cap * 2 : 64;
        double *v = realloc(series->v, cap * series->ncols * sizeof(*v));
        if (!v)
            return -ENOMEM;
        series->v = v;
        series->cap = cap;
    }
    memcpy(series->v + series->n * series->ncols, values, series->ncols * sizeof(*values));
    series->n++;
    return 0;
}

void bench_report_free(bench_report *report) {
    free(report->rows);
    report->rows = NULL;
    report->n = report->cap = 0;
    for (size_t i = 0; i < report->nseries; i++)
        free(report->series[i].v);
    free(report->series);
    report->series = NULL;
    report->nseries = 0;
}

/* A number in at most 7 characters: 3 significant digits, k/M/G above 10^4. */
static void fmt_num(double v, char *buf, size_t cap) {
    double a = fabs(v);
    if (!isfinite(v))
        snprintf(buf, cap, "-");
    else if (a >= 1e9)
        snprintf(buf, cap, "%.3gG", v / 1e9);
    else if (a >= 1e6)
        snprintf(buf, cap, "%.3gM", v / 1e6);
    else if (a >= 1e4)
        snprintf(buf, cap, "%.3gk", v / 1e3);
    else if (a >= 100)
        snprintf(buf, cap, "%.0f", v);
    else if (a >= 10)
        snprintf(buf, cap, "%.1f", v);
    else if (a >= 1)
        snprintf(buf, cap, "%.2f", v);
    else if (a >= 0.01 || a == 0)
        snprintf(buf, cap, "%.3f", v);
    else
        snprintf(buf, cap, "%.2g", v);
}

static void fmt_ref(const char *name, double v, const char *unit, char *buf, size_t cap) {
    char num[32];
    fmt_num(v, num, sizeof(num));
    snprintf(buf, cap, "%s %s %s", name, num, unit);
}

static void fmt_target(const bench_row *r, char *buf, size_t cap) {
    if (!r->has_target) {
        snprintf(buf, cap, "-");
        return;
    }
    if (r->target_met) {
        snprintf(buf, cap, "%s: met", r->target_text);
    } else {
        char num[32];
        fmt_num(r->target_miss, num, sizeof(num));
        snprintf(buf, cap, "%s: missed by %sx", r->target_text, num);
    }
}

static void fmt_measured(const bench_row *r, char *buf, size_t cap) {
    char num[32];
    double m = target_measured(r);
    fmt_num(m, num, sizeof(num));
    switch (r->target_metric) {
    case BENCH_ON_P50:
        snprintf(buf, cap, "p50 %s us", num);
        break;
    case BENCH_ON_LIMIT:
        snprintf(buf, cap, "%sx %s", num, r->limit_name);
        break;
    default:
        snprintf(buf, cap, "%s %s", num, r->unit);
        break;
    }
}

typedef struct cells {
    char v[32], p50[32], p99[32], base[160], rb[32], lim[160], rl[32], tgt[128];
} cells;

static void fmt_cells(const bench_row *r, cells *c) {
    const char *ref_unit = r->kind == BENCH_LATENCY ? "us" : r->unit;
    strcpy(c->p50, "-");
    strcpy(c->p99, "-");
    strcpy(c->base, "-");
    strcpy(c->rb, "-");
    strcpy(c->lim, "-");
    strcpy(c->rl, "-");
    fmt_num(r->value, c->v, sizeof(c->v));
    if (r->has_lat) {
        fmt_num(r->p50_us, c->p50, sizeof(c->p50));
        fmt_num(r->p99_us, c->p99, sizeof(c->p99));
    }
    if (r->has_baseline) {
        fmt_ref(r->baseline_name, r->baseline, ref_unit, c->base, sizeof(c->base));
        if (r->baseline_has_lat && r->kind == BENCH_LATENCY) {
            char p99[32];
            size_t len = strlen(c->base);
            fmt_num(r->baseline_p99_us, p99, sizeof(p99));
            snprintf(c->base + len, sizeof(c->base) - len, " (p99 %s)", p99);
        }
        fmt_num(r->ratio_baseline, c->rb, sizeof(c->rb));
    }
    if (r->has_limit) {
        fmt_ref(r->limit_name, r->limit, ref_unit, c->lim, sizeof(c->lim));
        fmt_num(r->ratio_limit, c->rl, sizeof(c->rl));
    }
    fmt_target(r, c->tgt, sizeof(c->tgt));
}

static int max_int(int a, int b) {
    return a > b ? a : b;
}

void bench_report_print_table(FILE *out, const bench_report *report) {
    fprintf(out, "reel-bench %s\n", report->section);
    for (size_t i = 0; i < report->nnotes; i++)
        fprintf(out, "  %s\n", report->notes[i]);

    /* columns as wide as their widest cell */
    int wf = 6, wb = 8, wl = 5;
    for (size_t i = 0; i < report->n; i++) {
        cells c;
        fmt_cells(&report->rows[i], &c);
        wf = max_int(wf, (int)strlen(report->rows[i].figure));
        wb = max_int(wb, (int)strlen(c.base));
        wl = max_int(wl, (int)strlen(c.lim));
    }
    fprintf(out, "\n%-*s %-5s %7s %8s %8s  %-*s %7s  %-*s %7s  %s\n", wf, "figure", "unit", "value",
            "p50 us", "p99 us", wb, "baseline", "/base", wl, "limit", "/limit", "target");
    const char *group = NULL;
    for (size_t i = 0; i < report->n; i++) {
        const bench_row *r = &report->rows[i];
        if (!group || strcmp(group, r->group) != 0) {
            fprintf(out, "-- %s\n", r->group);
            group = r->group;
        }
        cells c;
        fmt_cells(r, &c);
        fprintf(out, "%-*s %-5s %7s %8s %8s  %-*s %7s  %-*s %7s  %s\n", wf, r->figure, r->unit, c.v,
                c.p50, c.p99, wb, c.base, c.rb, wl, c.lim, c.rl, c.tgt);
    }

    int any = 0;
    for (size_t i = 0; i < report->n; i++) {
        const bench_row *r = &report->rows[i];
        if (!r->has_target)
            continue;
        if (!any)
            fprintf(out, "\ntargets (checked and reported, never enforced):\n");
        any = 1;
        char m[160], tgt[128];
        fmt_measured(r, m, sizeof(m));
        fmt_target(r, tgt, sizeof(tgt));
        fprintf(out, "  %-7s %-*s %-34s measured %s\n", r->target_met ? "met" : "MISSED", wf,
                r->figure, tgt, m);
    }
    any = 0;
    for (size_t i = 0; i < report->n; i++) {
        const bench_row *r = &report->rows[i];
        if (!r->has_vs_ray)
            continue;
        if (!any)
            fprintf(out, "\nratios to beat against Ray (checked and reported, never enforced):\n");
        any = 1;
        char m[64];
        if (r->vs_ray_state == BENCH_VS_RAY_UNMEASURED) {
            fprintf(out, "  %-7s %-*s %-34s no Ray figure beside it (reel-bench --vs-ray)\n", "-",
                    wf, r->figure, r->vs_ray_text);
            continue;
        }
        fmt_num(r->vs_ray_measured, m, sizeof(m));
        fprintf(out, "  %-7s %-*s %-34s measured %sx Ray\n",
                r->vs_ray_state == BENCH_VS_RAY_MET ? "met" : "MISSED", wf, r->figure,
                r->vs_ray_text, m);
    }
}

/* ---- JSON --------------------------------------------------------------- */

static void json_str(FILE *out, const char *s) {
    fputc('"', out);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c < 0x20)
            fprintf(out, "\\u%04x", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
}

static void json_num(FILE *out, double v) {
    if (isfinite(v))
        fprintf(out, "%.6g", v);
    else
        fputs("null", out);
}

static void json_row(FILE *out, const bench_row *r) {
    fputs("{\"group\": ", out);
    json_str(out, r->group);
    fputs(", \"figure\": ", out);
    json_str(out, r->figure);
    fputs(", \"unit\": ", out);
    json_str(out, r->unit);
    static const char *const kinds[] = {"rate", "latency", "amount"};
    fprintf(out, ", \"kind\": \"%s\", \"value\": ", kinds[r->kind]);
    json_num(out, r->value);
    if (r->has_lat) {
        fputs(", \"p50_us\": ", out);
        json_num(out, r->p50_us);
        fputs(", \"p99_us\": ", out);
        json_num(out, r->p99_us);
        fprintf(out, ", \"samples\": %llu", (unsigned long long)r->samples);
    }
    if (r->has_baseline) {
        fputs(", \"baseline\": {\"name\": ", out);
        json_str(out, r->baseline_name);
        fputs(", \"value\": ", out);
        json_num(out, r->baseline);
        fputs(", \"ratio\": ", out);
        json_num(out, r->ratio_baseline);
        if (r->baseline_has_lat) {
            fputs(", \"p50_us\": ", out);
            json_num(out, r->baseline_p50_us);
            fputs(", \"p99_us\": ", out);
            json_num(out, r->baseline_p99_us);
        }
        fputs("}", out);
    }
    if (r->has_vs_ray) {
        fputs(", \"vs_ray\": {\"text\": ", out);
        json_str(out, r->vs_ray_text);
        fputs(", \"threshold\": ", out);
        json_num(out, r->vs_ray);
        if (r->vs_ray_state == BENCH_VS_RAY_UNMEASURED) {
            fputs(", \"measured\": null, \"met\": null}", out);
        } else {
            fputs(", \"measured\": ", out);
            json_num(out, r->vs_ray_measured);
            fprintf(out, ", \"met\": %s}", r->vs_ray_state == BENCH_VS_RAY_MET ? "true" : "false");
        }
    }
    if (r->has_limit) {
        fputs(", \"limit\": {\"name\": ", out);
        json_str(out, r->limit_name);
        fputs(", \"value\": ", out);
        json_num(out, r->limit);
        fputs(", \"ratio\": ", out);
        json_num(out, r->ratio_limit);
        fputs("}", out);
    }
    if (r->has_target) {
        static const char *const metrics[] = {"value", "p50_us", "ratio_to_limit"};
        fputs(", \"target\": {\"text\": ", out);
        json_str(out, r->target_text);
        fprintf(out, ", \"on\": \"%s\", \"op\": \"%s\", \"threshold\": ", metrics[r->target_metric],
                r->target_op == BENCH_LE ? "<=" : ">=");
        json_num(out, r->target);
        fputs(", \"measured\": ", out);
        json_num(out, target_measured(r));
        fprintf(out, ", \"met\": %s, \"missed_by\": ", r->target_met ? "true" : "false");
        json_num(out, r->target_miss);
        fputs("}", out);
    }
    fputs("}", out);
}

/* A curve of the plots, in numbers: its columns, their units, its points. */
static void json_series(FILE *out, const bench_series *ser, size_t index) {
    fputs(index ? ",\n    {\"name\": " : "\n    {\"name\": ", out);
    json_str(out, ser->name);
    fputs(", \"title\": ", out);
    json_str(out, ser->title);
    const char *keys[] = {"columns", "units"};
    for (int k = 0; k < 2; k++) {
        fprintf(out, ", \"%s\": [", keys[k]);
        for (size_t c = 0; c < ser->ncols; c++) {
            if (c)
                fputs(", ", out);
            json_str(out, k ? ser->unit[c] : ser->col[c]);
        }
        fputs("]", out);
    }
    fputs(", \"points\": [", out);
    for (size_t i = 0; i < ser->n; i++) {
        fputs(i ? ", [" : "[", out);
        for (size_t c = 0; c < ser->ncols; c++) {
            if (c)
                fputs(", ", out);
            json_num(out, ser->v[i * ser->ncols + c]);
        }
        fputs("]", out);
    }
    fputs("]}", out);
}

void bench_report_print_json(FILE *out, const bench_report *reports, size_t n) {
    fputs("{\"sections\": [", out);
    for (size_t s = 0; s < n; s++) {
        const bench_report *rep = &reports[s];
        fputs(s ? ",\n  {\"section\": " : "\n  {\"section\": ", out);
        json_str(out, rep->section);
        if (rep->failed) {
            fputs(", \"error\": ", out);
            json_str(out, rep->error);
        }
        fputs(", \"notes\": [", out);
        for (size_t i = 0; i < rep->nnotes; i++) {
            if (i)
                fputs(", ", out);
            json_str(out, rep->notes[i]);
        }
        fputs("],\n   \"rows\": [", out);
        for (size_t i = 0; i < rep->n; i++) {
            fputs(i ? ",\n    " : "\n    ", out);
            json_row(out, &rep->rows[i]);
        }
        fputs("],\n   \"series\": [", out);
        for (size_t i = 0; i < rep->nseries; i++)
            json_series(out, &rep->series[i], i);
        fputs("]}", out);
    }
    fputs("\n]}\n", out);
}

void bench_describe_failure(char *buf, size_t cap, int err, int reel_call, const char *fmt,
                            va_list ap) {
    char what[160];
    vsnprintf(what, sizeof(what), fmt, ap);
    const char *detail = reel_call ? reel_last_error() : "";
    snprintf(buf, cap, "%s: %s%s%s", what, reel_strerror(err), detail[0] ? ": " : "", detail);
}
