/*
 * bench_ray.h - Ray, side by side: runs the Python scripts in bench/ray/ that
 * measure reel-bench's workloads on Ray, on this machine, and reads back the
 * one JSON object each prints.
 *
 * The scripts (bench/ray/README.md says what each measures):
 *
 *   store.py     beside `reel-bench store`     put, put bandwidth, get+release
 *   actors.py    beside `reel-bench actors`    round trips, 1:1, 1:n, n:n, idle
 *   pipeline.py  beside `reel-bench pipeline`  one hop, 4 no-op stages, static A,B,C
 *
 * Each takes --quick and the options of its section that change what is
 * measured (store.py, actors.py: --sizes, --iterations; pipeline.py: --burn,
 * --allocs), passed through bench_ray_run()'s extra_args.
 *
 * Each prints, on stdout and nothing else:
 *
 *   {"ray_version": "2.60.0",
 *    "notes": ["...", ...],                        (optional)
 *    "rows": [{"workload": "what Ray ran", "figure": "put 64 B", "unit": "op/s",
 *              "value": 1234.5, "p50_us": 700.1, "p99_us": 1500.2}, ...]}
 *
 * A row's figure is the name of the reel-bench row it stands beside, without
 * reel's mode (", spin" / ", sleep"); its unit is that row's. p50_us and
 * p99_us are both numbers or both null. Ray is not a dependency of reel: it
 * is installed for benchmarking only (pip install -r bench/ray/requirements.txt,
 * which pins the version), and nothing but reel-bench --vs-ray looks for it.
 *
 * How `reel-bench --vs-ray` uses this:
 *
 *   1. Once, before the first section: bench_ray_available(). Where it
 *      fails, print its why as one line on stderr ("reel-bench: --vs-ray:
 *      Ray is not installed for python3: pip install -r .../requirements.txt")
 *      and run every section as without --vs-ray. Never a failure: the exit
 *      status stays what the sections make it.
 *   2. For each section that has a script (store, actors, pipeline), after
 *      the section has measured (never while it measures: Ray would take the
 *      CPUs reel is timed on), bench_ray_run(script, opts->quick, extra, ...),
 *      extra being the section's options that the script takes too (store:
 *      --sizes, --iterations; actors: --sizes, --iterations; pipeline:
 *      --burn, --allocs), so that Ray runs what reel ran. A
 *      failure is one note in the section's report ("Ray, this machine: " and
 *      the why) and the section goes on without Ray; never a failure of the
 *      section or of reel-bench.
 *   3. For each of the section's rows, bench_ray_find(&rows, row->figure):
 *      where a Ray row matches (and its unit is the row's), the Ray figure
 *      becomes the row's baseline, named "Ray, this machine" (in place of
 *      any the section set): bench_row_baseline(row, "Ray, this machine", v)
 *      with v the Ray row's p50_us for a latency row (the ratio compares
 *      p50s) and its value for any other row. bench_report_finish() then
 *      prints reel/Ray as the row's /base.
 *   4. The Ray rows that stand beside no reel row (bench_ray_find never
 *      returned them; e.g. "idle: Ray's other processes", "pipeline, 4
 *      stages, batch 1, refs forwarded") are added after reel's rows, in a
 *      group "Ray, this machine (VERSION)", with their own p50/p99, so that
 *      every Ray figure is printed.
 *   5. Notes: "Ray VERSION, this machine: SCRIPT took S s" (wall_s), then the
 *      script's own notes, as many as the report has room for.
 *
 * Conventions: 0 or a negative errno; why (cap bytes, always terminated when
 * cap > 0) says what happened in one line, on success too. Nothing here
 * prints. The scripts' stderr (progress lines, Ray's own messages) is read
 * and dropped; on failure its last line is in why. The parser trusts nothing:
 * the output comes from another program.
 */
#ifndef REEL_BENCH_RAY_H
#define REEL_BENCH_RAY_H

#include <stddef.h>

#define BENCH_RAY_MAX_ROWS    128
#define BENCH_RAY_MAX_NOTES   12
#define BENCH_RAY_FIGURE_MAX  64 /* = BENCH_NAME_MAX: a figure fits bench_row.figure */
#define BENCH_RAY_UNIT_MAX    16 /* = sizeof(bench_row.unit) */
#define BENCH_RAY_TEXT_MAX    160
#define BENCH_RAY_VERSION_MAX 32
#define BENCH_RAY_OUTPUT_MAX  (256u * 1024) /* bytes of stdout accepted from a script */
#define BENCH_RAY_MAX_ARGS    16            /* extra arguments passed on to a script, at most */
#define BENCH_RAY_ARG_MAX     1024          /* bytes of one extra argument, at most */

/* One figure measured on Ray. Strings are terminated, contain no control
 * character, and are valid UTF-8. */
typedef struct bench_ray_row {
    char workload[BENCH_RAY_TEXT_MAX]; /* what Ray ran: "ray.put(np array of 64 B)" */
    char figure[BENCH_RAY_FIGURE_MAX]; /* the reel row it stands beside: "put 64 B" */
    char unit[BENCH_RAY_UNIT_MAX];     /* "op/s", "GB/s", "us", "items/s", "s" */
    double value;                      /* finite, >= 0 */
    int has_lat;                       /* p50_us and p99_us are present */
    double p50_us, p99_us;             /* finite, >= 0, when has_lat */
} bench_ray_row;

/* What one script printed. The caller allocates it (about 40 KiB); nothing
 * in it needs freeing. */
typedef struct bench_ray_rows {
    char ray_version[BENCH_RAY_VERSION_MAX]; /* non-empty */
    bench_ray_row rows[BENCH_RAY_MAX_ROWS];
    size_t n; /* >= 1 after a successful parse */
    char notes[BENCH_RAY_MAX_NOTES][BENCH_RAY_TEXT_MAX];
    size_t nnotes;
    double wall_s; /* how long the script ran (bench_ray_run); 0 after bench_ray_parse */
} bench_ray_rows;

/* The Python that runs the scripts: $REEL_BENCH_PYTHON where set and not
 * empty, else "python3" (looked up in PATH). The returned string is static or
 * the environment's. */
const char *bench_ray_python(void);

/* Whether Ray can be imported: runs PYTHON -c "import ray; ..." (at most
 * 60 s).
 *   why: out, "Ray 2.60.0 (python3)" when it can; else how to install it.
 * Returns 0 when Ray is importable; -ENOENT when the Python or Ray is not
 * there (why: "... pip install -r REEL_BENCH_RAY_DIR/requirements.txt");
 * -ETIMEDOUT; or a negative errno from pipe, fork or poll. */
int bench_ray_available(char *why, size_t cap);

/* Runs PYTHON REEL_BENCH_RAY_DIR/script [--quick] [extra_args...] and
 * parses its stdout into *out (bench_ray_parse), with a time limit of 300 s
 * (--quick) or 900 s: the scripts take about 1 and 5 minutes in all.
 *   script:     a file name in REEL_BENCH_RAY_DIR ("store.py"): no '/', no
 *               leading '.', ends in ".py".
 *   quick:      passes "--quick" first.
 *   extra_args: in, NULL-terminated, or NULL for none: reel-bench's common
 *               options as the script spells them, each its own argument
 *               ("--sizes", "64,4096,1048576", "--iterations", "1000"; see
 *               bench/ray/README.md for what each script takes). At most
 *               BENCH_RAY_MAX_ARGS, each non-empty, shorter than
 *               BENCH_RAY_ARG_MAX bytes, with no control character. Passed
 *               as they are (no shell); the caller keeps them.
 *   out:        out, the rows (undefined on failure).
 *   why:        out, "store.py: 21 rows, Ray 2.60.0, 12.3 s"; or what went
 *               wrong (a script exits with 2 and one line on stderr for an
 *               argument it does not take or a bad value: why has that line).
 * Returns 0; -EINVAL (a bad script name or extra argument); -ENOENT (no
 * such Python or script);
 * -ETIMEDOUT (the limit passed: the script was sent SIGTERM, then SIGKILL
 * 5 s later, and reaped); -ECHILD (it exited non-zero or died of a signal:
 * why has the last line of its stderr); -E2BIG (more than
 * BENCH_RAY_OUTPUT_MAX bytes on stdout: the script was stopped as on a
 * time-out); -EPROTO (its stdout is not the JSON above: why says where and
 * what); or a negative errno from pipe, fork or poll. */
int bench_ray_run(const char *script, int quick, const char *const *extra_args, bench_ray_rows *out,
                  char *why, size_t cap);

/* bench_ray_run() with everything chosen: the Python, the directory holding
 * the script, and the time limit in seconds (> 0). For tests. */
int bench_ray_run_in(const char *python, const char *dir, const char *script, int quick,
                     const char *const *extra_args, double timeout_s, bench_ray_rows *out,
                     char *why, size_t cap);

/* Parses one script's output: exactly the JSON object above, optionally
 * surrounded by whitespace; no other key, no duplicate key, every row with
 * all six keys; strings within the sizes above (longer is an error, not a
 * truncation); numbers finite and >= 0; at least one row, at most
 * BENCH_RAY_MAX_ROWS; at most BENCH_RAY_MAX_NOTES notes.
 *   text, len: the output (need not be terminated; a NUL byte is an error).
 *   out:       out (undefined on failure).
 *   why:       out, on failure "byte N: what was expected".
 * Returns 0 or -EPROTO. */
int bench_ray_parse(const char *text, size_t len, bench_ray_rows *out, char *why, size_t cap);

/* The Ray row that stands beside reel's row named reel_figure, or NULL:
 * the row whose figure is reel_figure itself; else reel_figure without its
 * mode (", spin" or ", sleep" followed by the end, ',' or ':': "round trip,
 * no arg, spin" -> "round trip, no arg"; "idle, sleep: the 2 workers" ->
 * "idle: the 2 workers"); else, for "best static (A,B,C)" and
 * "even (A,B,C)", the row "static A,B,C". The pointer is into rows. */
const bench_ray_row *bench_ray_find(const bench_ray_rows *rows, const char *reel_figure);

#endif /* REEL_BENCH_RAY_H */
