/*
 * bench.h - what the sections of reel-bench share: options, timing, and the
 * report every section fills.
 *
 * A section measures, adds one bench_row per figure to a bench_report, and
 * returns. bench.c prints the report as a table or as JSON. Every row carries
 * its own references (a baseline: what others achieve; a limit: what the
 * hardware allows), both measured in the same run unless the name says
 * otherwise ("Ray (published)"), and optionally a target that is checked and
 * printed, never enforced: a missed target does not fail the run.
 */
#ifndef REEL_BENCH_H
#define REEL_BENCH_H

#include <sched.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <reel/pipeline.h>

/* ---- Options ------------------------------------------------------------ */

#define BENCH_MAX_SIZES 32

typedef struct bench_options {
    uint64_t iterations;             /* 0: each measurement's default */
    uint64_t sizes[BENCH_MAX_SIZES]; /* object sizes in bytes, ascending */
    size_t nsizes;                   /* 0: the section's default sizes */
    int json;                        /* print JSON instead of the table */
    int quick;                       /* smaller defaults: the whole run well under a minute */
    int progress;                    /* print what runs now to stderr */
    int spill;                       /* store: also measure spilling (--spill) */
    int long_video;                  /* curate: the long video instead of the samples (--long) */
    double long_s;                   /* curate: its length in seconds (--long-seconds; 0: 300) */
    double interval_s;               /* pipeline: autoscale_interval_s (--interval; 0: 1 s) */
    int burn;                        /* pipeline: how a task spends its cost (enum bench_burn) */
    reel_executor_config executor;   /* pipeline: NeMo Curator's executor flags, --config */
    int logging_interval_set;        /* pipeline: --logging-interval given (else no lines) */
} bench_options;

/* How the pipeline section's imbalanced stages spend a task's wall-clock cost. */
enum bench_burn {
    BENCH_BURN_CPU = 0,   /* computing until the thread has used that much CPU time */
    BENCH_BURN_SLEEP = 1, /* asleep until that much wall-clock time has passed */
    BENCH_BURN_YIELD = 2, /* spinning on the wall clock, sched_yield() at every look */
    BENCH_BURN_SPIN = 3,  /* spinning on the wall clock */
};

/* ---- Report ------------------------------------------------------------- */

/* What a row's headline is: a rate (ops/s, GB/s; higher is better), a
 * latency (unit "us", value is the mean; lower is better) or an amount used
 * (CPU seconds; lower is better). Ratios compare the p50 of a latency row,
 * and the value of any other row, to each reference. */
enum bench_kind {
    BENCH_RATE = 0,
    BENCH_LATENCY = 1,
    BENCH_AMOUNT = 2,
};

/* Which figure of a row its target constrains. */
enum bench_metric {
    BENCH_ON_VALUE = 0, /* the value, in the row's unit */
    BENCH_ON_P50 = 1,   /* the p50, in microseconds */
    BENCH_ON_LIMIT = 2, /* value (or p50) / limit */
};

enum bench_op {
    BENCH_LE = 0, /* met when measured <= threshold */
    BENCH_GE = 1, /* met when measured >= threshold */
};

#define BENCH_NAME_MAX 64

typedef struct bench_row {
    char group[96];              /* rows of one group print under one heading */
    char figure[BENCH_NAME_MAX]; /* "put 64 B", "hand-off, reader spins" */
    char unit[16];               /* "op/s", "GB/s", "us" */
    int kind;                    /* enum bench_kind */
    double value;
    int has_lat; /* p50/p99 present (microseconds) */
    double p50_us, p99_us;
    uint64_t samples; /* operations measured (timed, after warm-up) */

    int has_baseline;
    char baseline_name[BENCH_NAME_MAX];
    double baseline;  /* in the row's unit (us for latency rows) */
    int baseline_ray; /* the baseline is Ray, measured on this machine (--vs-ray) */
    int baseline_has_lat;
    double baseline_p50_us, baseline_p99_us; /* the baseline's own percentiles */
    int has_limit;
    char limit_name[BENCH_NAME_MAX];
    double limit;

    int has_target;
    int target_metric; /* enum bench_metric */
    int target_op;     /* enum bench_op */
    double target;
    char target_text[BENCH_NAME_MAX]; /* "p50 <= 0.5 us" */

    /* A ratio to beat against Ray: reel's speed at least vs_ray times Ray's
     * (a rate over Ray's rate; for a latency, Ray's p50 over reel's). Checked
     * only where the baseline is Ray measured in the same run. */
    int has_vs_ray;
    double vs_ray;
    char vs_ray_text[BENCH_NAME_MAX]; /* ">= 100x Ray" */

    /* filled by bench_report_finish() */
    double ratio_baseline; /* compared figure / baseline, 0 if none */
    double ratio_limit;    /* compared figure / limit, 0 if none */
    int target_met;
    double target_miss;     /* how many times off when missed (>= 1) */
    int vs_ray_state;       /* enum bench_vs_ray_state */
    double vs_ray_measured; /* reel's speed / Ray's, when measured */
} bench_row;

enum bench_vs_ray_state {
    BENCH_VS_RAY_UNMEASURED = 0, /* Ray did not run (no --vs-ray, or not installed) */
    BENCH_VS_RAY_MET = 1,
    BENCH_VS_RAY_MISSED = 2,
};

/* A measured curve a section keeps beside its rows for the plots (--plot),
 * e.g. the autoscaler's trace: n points of ncols numbers each. Column 0 is
 * the x axis; every other column is one line, in a panel of its own unit
 * (columns of one unit share a panel, panels in the order their units first
 * appear). */
#define BENCH_SERIES_COLS 8

typedef struct bench_series {
    char name[32];                    /* file stem of its plot: "pipeline-autoscaler" */
    char title[BENCH_NAME_MAX];       /* "autoscaler trace, interval 1 s" */
    size_t ncols;                     /* 2..BENCH_SERIES_COLS */
    char col[BENCH_SERIES_COLS][48];  /* each column's title: "t", "workers: cost-1" */
    char unit[BENCH_SERIES_COLS][16]; /* each column's unit: "s", "workers", "items/s" */
    int steps[BENCH_SERIES_COLS];     /* drawn as steps: the value holds until the next x */
    double *v;                        /* point i, column k: v[i * ncols + k] */
    size_t n, cap;
} bench_series;

typedef struct bench_report {
    const char *section;
    bench_row *rows;
    size_t n, cap;
    char notes[24][160]; /* one-line facts about the run (CPUs, pinning) */
    size_t nnotes;
    char error[256];      /* why the section failed, when it returns an error */
    int failed;           /* set by bench.c when the section returned an error */
    bench_series *series; /* optional curves for the plots (bench_report_series) */
    size_t nseries;
} bench_report;

/* A new zeroed row at the end of report, or NULL when out of memory. */
bench_row *bench_report_add(bench_report *report, const char *group, const char *figure,
                            const char *unit, int kind, double value);
void bench_report_note(bench_report *report, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Records why the section failed; bench.c prints it as "reel-bench: SECTION: ...". */
void bench_report_error(bench_report *report, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void bench_row_latency(bench_row *row, double p50_us, double p99_us, uint64_t samples);
void bench_row_baseline(bench_row *row, const char *name, double value);
void bench_row_limit(bench_row *row, const char *name, double value);
void bench_row_target(bench_row *row, int metric, int op, double threshold, const char *text);
/* Makes Ray, measured in the same run, row's baseline, with its percentiles
 * when it has them (has_lat). */
void bench_row_ray_baseline(bench_row *row, double value, int has_lat, double p50_us,
                            double p99_us);
/* A ratio to beat against Ray: reel at least `times` as fast. */
void bench_row_vs_ray(bench_row *row, double times);

/* A new empty series at the end of report's, or NULL when out of memory or
 * ncols is not 2..BENCH_SERIES_COLS. cols and units: ncols strings each
 * (cut to fit); steps: ncols flags, or NULL for none. The report owns it
 * (bench_report_free). */
bench_series *bench_report_series(bench_report *report, const char *name, const char *title,
                                  size_t ncols, const char *const *cols, const char *const *units,
                                  const int *steps);
/* Appends one point: ncols values. Returns 0 or -ENOMEM. */
int bench_series_add(bench_series *series, const double *values);

/* Computes ratios and target checks of every row. */
void bench_report_finish(bench_report *report);
void bench_report_free(bench_report *report);

void bench_report_print_table(FILE *out, const bench_report *report);
/* Prints reports[0..n) as one JSON document. */
void bench_report_print_json(FILE *out, const bench_report *reports, size_t n);

/* ---- Timing and statistics ---------------------------------------------- */

/* CLOCK_MONOTONIC in nanoseconds: comparable across the processes of one
 * machine. */
uint64_t bench_now_ns(void);

typedef struct bench_summary {
    uint64_t n;
    double mean_ns, min_ns, p50_ns, p99_ns, max_ns;
} bench_summary;

/* Sorts samples (nanoseconds) in place and summarizes them. */
void bench_summarize(uint64_t *samples, size_t n, bench_summary *out);

/* The p-th percentile (0..100) of n sorted samples, nearest rank. */
uint64_t bench_percentile(const uint64_t *sorted, size_t n, double p);

/* Spins (without sleeping) until ns nanoseconds have passed. */
void bench_spin_ns(uint64_t ns);

/* The p50 cost of a pair of bench_now_ns() calls in microseconds, from n
 * samples timed into scratch (n entries). */
double bench_timer_p50_us(uint64_t *scratch, size_t n);

/* Describes a failed call into buf: "<what fmt says>: <err's name>", then
 * ": <reel_last_error()>" for a reel call (reel_call set) that left one. */
void bench_describe_failure(char *buf, size_t cap, int err, int reel_call, const char *fmt,
                            va_list ap);

/* Waits, up to max_s seconds, until the machine's CPUs are at most
 * BENCH_QUIET_BUSY busy over a quarter of a second: after Ray, whose
 * processes go on exiting for seconds after its script has, so that the
 * next section is not measured beside them. Returns the seconds waited. */
#define BENCH_QUIET_BUSY 0.15
double bench_wait_quiet(double max_s);

/* Pins the calling process to one CPU. Returns 0 or a negative errno. */
int bench_pin_cpu(int cpu);

/* The CPUs the calling process may run on: the set, how many, and the first
 * two of them (-1 where there is none). Returns 0 or a negative errno. */
int bench_cpus(cpu_set_t *set, int *ncpu, int *first, int *second);

/* One pause instruction for spin loops. */
static inline void bench_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

/* Keeps the compiler from dropping stores to p (e.g. a memcpy whose result
 * nobody reads). */
static inline void bench_clobber(const void *p) {
    __asm__ __volatile__("" : : "r"(p) : "memory");
}

/* ---- Cross-process hand-off floors --------------------------------------- */

enum bench_pingpong_kind {
    BENCH_PP_SPIN = 0,  /* each side spins on the shared word */
    BENCH_PP_FUTEX = 1, /* each side sleeps in FUTEX_WAIT, woken by FUTEX_WAKE */
};

/* Measures the floor of any hand-off between two processes: this process and
 * a child it forks ping-pong a counter in a MAP_SHARED anonymous mapping.
 *   kind:      enum bench_pingpong_kind.
 *   child_cpu: the CPU the child pins itself to, or -1 (this process stays
 *              where it is).
 *   yield:     spinning sides call sched_yield() between looks (one CPU).
 *   n, warm:   round trips timed, after one handshake and warm untimed ones.
 *   rtt_ns:    out, the n round trips in nanoseconds (n entries).
 *   err:       out, why it failed (errcap bytes).
 * The child dies with this process (PR_SET_PDEATHSIG) and is always reaped.
 * Returns 0, -ETIMEDOUT (a side waited 10 s for the other), -ECHILD (the
 * child failed), or a negative errno from mmap or fork. */
int bench_pingpong(int kind, int child_cpu, int yield, uint64_t n, uint64_t warm, uint64_t *rtt_ns,
                   char *err, size_t errcap);

/* Runs both ping-pongs (as many round trips as opts says: 200000 spinning and
 * 5000 sleeping, a tenth of that with --quick) and adds one row for each to
 * report under group: "spin hand-off (one-way)" and "futex hand-off
 * (one-way)" (half of each round trip) when one_way, else "spin round trip"
 * and "futex round trip". child_cpu and yield as bench_pingpong().
 *   scratch: scratch_n entries for the samples.
 *   spin_p50_us, futex_p50_us: out, the p50 of each row.
 * Returns 0, or bench_pingpong()'s error (described in report->error). */
int bench_handoff_limits(const bench_options *opts, bench_report *report, const char *group,
                         int one_way, int child_cpu, int yield, uint64_t *scratch, size_t scratch_n,
                         double *spin_p50_us, double *futex_p50_us);

/* ---- Progress ------------------------------------------------------------ */

/* Shows "reel-bench: SECTION: what runs now" on stderr over the previous line,
 * if opts->progress; bench_progress_done() clears it. */
void bench_progress(const bench_options *opts, const char *section, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void bench_progress_done(const bench_options *opts);

/* ---- Sizes -------------------------------------------------------------- */

/* Parses "64", "4K", "1M", "64MiB" (binary units, case-insensitive).
 * Returns 0 or -EINVAL. */
int bench_parse_size(const char *text, uint64_t *out);

/* "64 B", "4 KiB", "1.5 MiB". */
void bench_format_size(uint64_t bytes, char *buf, size_t cap);

/* ---- Plots (plot.c) ------------------------------------------------------ */

/* Makes dir (one level, mode 0777 & ~umask) unless it exists, and checks it
 * is a directory this process can write to, before anything is measured.
 *   why: out, what is wrong (cap bytes).
 * Returns 0 or a negative errno. */
int bench_plot_prepare(const char *dir, char *why, size_t cap);

/* Writes the charts of reports[0..n) into dir: for each section with
 * something to plot, SECTION-*.dat (the numbers) and SECTION.gp (a gnuplot
 * script that reads them, run in dir), then runs gnuplot once on the scripts,
 * which writes SECTION-*.png. What is plotted (bench/README.md, "Plots"):
 *   store:    throughput against object size, GB/s and op/s (every rate row
 *             whose figure names a size; Ray's rows and baselines beside them)
 *   actors:   calls per second of every op/s row and of every round trip
 *             (1 / mean), reel's spin and sleep beside Ray's
 *   pipeline: every bench_series of the report (the autoscaler's trace)
 * Sections with nothing to plot are skipped.
 *   rendered: out, 1 when gnuplot ran and made every PNG; 0 when gnuplot is
 *             not installed (the .dat and .gp files are written all the same).
 *   msg:      out, one line: the PNGs made, how to install gnuplot, or what
 *             failed (cap bytes).
 * Returns 0 (rendered or not), or a negative errno: a file could not be
 * written, gnuplot failed (-ECHILD) or left a PNG out (-EIO). Prints nothing
 * itself; gnuplot's own messages go to stderr. */
int bench_plot(const char *dir, const bench_report *reports, size_t n, int *rendered, char *msg,
               size_t cap);

/* ---- Sections ----------------------------------------------------------- */

/* Each section measures into report and returns 0, or records what failed
 * with bench_report_error() and returns a negative code. */
int bench_store_run(const bench_options *opts, bench_report *report);
int bench_actors_run(const bench_options *opts, bench_report *report);
int bench_pipeline_run(const bench_options *opts, bench_report *report);
int bench_curate_run(const bench_options *opts, bench_report *report);
/* The reel-curate to run: $REEL_CURATE, else the one beside this program
 * (bench_long.c). 0, or -errno when it is not an executable. */
int bench_curate_program(char *buf, size_t cap);

/* reel-bench cluster (bench_cluster.c): runs cluster/bench/scale.py --rows. */
int bench_cluster_run(const bench_options *opts, bench_report *report);
struct bench_ray_rows;
/* The cluster section's report from scale.py's rows: each beside its
 * baseline and target. 0 or -ENOMEM. */
int bench_cluster_report(const struct bench_ray_rows *rows, bench_report *report);
/* The curate section's --long part (bench_long.c). */
int bench_curate_long_run(const bench_options *opts, bench_report *report);
/* The store section's --spill part (bench_spill.c). */
int bench_spill_run(const bench_options *opts, bench_report *report);

#endif /* REEL_BENCH_H */
