/*
 * bench.c - reel-bench: runs benchmark sections and prints their reports.
 *
 *   reel-bench SECTION [--iterations N] [--sizes LIST] [--json] [--quick] [--spill]
 *                      [--long [--long-seconds S]] [--interval S]
 *                      [--burn sleep|yield|spin] [--plot DIR]
 *
 * A section is one line in the table below; "all" runs every section.
 */
#include "bench.h"
#include "bench_ray.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct bench_section {
    const char *name;
    const char *summary;
    int (*run)(const bench_options *opts, bench_report *report);
    const char *ray_script; /* bench/ray/ script measuring the same on Ray, or NULL */
} bench_section;

static const bench_section sections[] = {
    {"store", "object store: put/get throughput and latency, cross-process hand-off",
     bench_store_run, "store.py"},
    {"actors", "actor runtime: task round trip, pipelined throughput, idle CPU", bench_actors_run,
     "actors.py"},
    {"pipeline",
     "pipeline executor: no-op stages end to end, autoscaler against static allocations",
     bench_pipeline_run, "pipeline.py"},
    {"curate",
     "the video-curation pipeline on the samples beside ffmpeg decoding and encoding them",
     bench_curate_run},
    {"cluster",
     "reel-cluster on simulated Ray clusters: 2 nodes beside one reel-curate, failover, "
     "the driver's cost",
     bench_cluster_run},
};

#define NSECTIONS (sizeof(sections) / sizeof(sections[0]))

static void usage(FILE *out) {
    fprintf(out, "usage: reel-bench SECTION [options]\n\n"
                 "sections:\n");
    for (size_t i = 0; i < NSECTIONS; i++)
        fprintf(out, "  %-10s %s\n", sections[i].name, sections[i].summary);
    fprintf(out, "  %-10s every section above, in order\n\n", "all");
    fprintf(out,
            "options:\n"
            "  --iterations N  timed operations per measurement (default: per measurement,\n"
            "                  scaled to the object size); pipeline: no-op items; curate:\n"
            "                  rounds (at most 10)\n"
            "  --sizes LIST    object sizes, comma-separated, binary units: 64,4K,1M,64M\n"
            "                  (store; actors: the task argument's; not pipeline, curate)\n"
            "  --json          print the report as JSON instead of a table\n"
            "  --quick         a short run (fewer sizes and iterations)\n"
            "  --spill         store: spill and restore throughput beside write() and read()\n"
            "                  of the same bytes to the same disk (instead of the rest)\n"
            "  --long          curate: a long video made with ffmpeg (kept in $REEL_BENCH_CACHE,\n"
            "                  else /var/tmp/reel-bench) through reel-curate, beside ffmpeg\n"
            "                  -threads 0 and beside reel-curate --transcoder-workers 1\n"
            "                  (instead of the samples)\n"
            "  --long-seconds S  curate --long: the video's length (default 300; 1 to 3600)\n"
            "  --vs-ray        store, actors, pipeline: also run bench/ray/'s scripts on Ray\n"
            "                  (pip install -r bench/ray/requirements.txt) and show reel/Ray\n"
            "  --interval S    pipeline: the autoscaler's interval in seconds (default 1;\n"
            "                  0.1 to 60); the autoscaled run lasts 25 intervals (--quick: 10)\n"
            "  --burn MODE     pipeline: how the imbalanced stages spend a task's cost:\n"
            "                  cpu (default: burn that much CPU time), or that much wall-clock\n"
            "                  time: sleep, yield (spin, yielding), spin\n"
            "  --config FILE   pipeline: NeMo Curator's executor settings as JSON, then\n"
            "                  the flags below over them (--autoscale-interval-s is --interval)\n"
            "%s"
            "  --plot DIR      also draw charts (PNG, with gnuplot) of the sections run into\n"
            "                  DIR, made if missing, beside the .dat and .gp files they come from\n"
            "  --help          this text\n\n"
            "Every figure is measured in this run; targets are reported, never enforced.\n"
            "See bench/README.md for what each figure means.\n",
            reel_executor_config_flags_help());
}

/* --burn's names, in the order of enum bench_burn: what it parses, and what
 * the Ray pipeline script is passed. */
static const char *const burn_names[] = {"cpu", "sleep", "yield", "spin"};

static void die_usage(const char *fmt, const char *arg) {
    fprintf(stderr, "reel-bench: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see reel-bench --help)\n");
    exit(2);
}

static int cmp_size(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static void parse_sizes(const char *list, bench_options *opts) {
    char *copy = strdup(list);
    if (!copy)
        die_usage("%s", "out of memory");
    opts->nsizes = 0;
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        uint64_t v;
        if (bench_parse_size(tok, &v) != 0 || v == 0)
            die_usage("--sizes: '%s' is not a size (e.g. 64,4K,1M,64M)", tok);
        if (v > (1ull << 30))
            die_usage("--sizes: '%s' is larger than 1 GiB", tok);
        int dup = 0;
        for (size_t i = 0; i < opts->nsizes; i++)
            dup |= opts->sizes[i] == v;
        if (dup)
            continue;
        if (opts->nsizes == BENCH_MAX_SIZES)
            die_usage("--sizes: more than %s sizes", "32");
        opts->sizes[opts->nsizes++] = v;
    }
    if (opts->nsizes == 0)
        die_usage("--sizes: '%s' names no size", list);
    qsort(opts->sizes, opts->nsizes, sizeof(opts->sizes[0]), cmp_size);
    free(copy);
}

static double parse_interval(const char *text) {
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || !(v >= 0.1 && v <= 60))
        die_usage("--interval: '%s' is not a number of seconds from 0.1 to 60", text);
    return v;
}

static uint64_t parse_count(const char *text) {
    char *end;
    errno = 0;
    if (*text < '0' || *text > '9')
        die_usage("--iterations: '%s' is not a positive number", text);
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || *end || v == 0 || v > 1000000000ull)
        die_usage("--iterations: '%s' is not a number from 1 to 1000000000", text);
    return v;
}

/* Whether arg is the flag name ("--name", "--name=VALUE"), underscores
 * standing for hyphens as reel_executor_config_parse_flag() takes them. */
static bool flag_named(const char *arg, const char *name) {
    for (; *name; arg++, name++)
        if (*arg != *name && !(*arg == '_' && *name == '-'))
            return false;
    return *arg == '\0' || *arg == '=';
}

/* The value of an option given as "--name VALUE" or "--name=VALUE". */
static const char *option_value(int argc, char **argv, int *i, const char *name) {
    size_t len = strlen(name);
    if (strncmp(argv[*i], name, len) != 0)
        return NULL;
    if (argv[*i][len] == '=')
        return argv[*i] + len + 1;
    if (argv[*i][len] != '\0')
        return NULL;
    if (*i + 1 >= argc)
        die_usage("%s needs a value", name);
    return argv[++*i];
}

/* The arguments that make a Ray script measure what reel just did: the same
 * sizes and iterations, the same burn, and the allocations reel found best
 * and even beside 1,4,2 (Ray cannot try all 35 in reasonable time). */
#define RAY_ARGS 8

typedef struct ray_args {
    const char *argv[RAY_ARGS + 1];
    char sizes[BENCH_MAX_SIZES * 24], iterations[24], allocs[96];
} ray_args;

static void allocation_of(const bench_report *rep, const char *prefix, char *out, size_t cap) {
    size_t len = strlen(prefix);
    for (size_t i = 0; i < rep->n; i++) {
        const char *f = rep->rows[i].figure;
        const char *close = strchr(f, ')');
        if (strncmp(f, prefix, len) == 0 && close && (size_t)(close - f) > len &&
            strlen(out) + (size_t)(close - f - len) + 2 < cap) {
            char w[32];
            snprintf(w, sizeof w, "%.*s", (int)(close - f - (ptrdiff_t)len), f + len);
            if (!strstr(out, w))
                snprintf(out + strlen(out), cap - strlen(out), ";%s", w);
            return;
        }
    }
}

static void ray_args_for(const bench_section *s, const bench_options *opts, const bench_report *rep,
                         ray_args *a) {
    size_t n = 0;
    if (strcmp(s->name, "pipeline") == 0) {
        a->argv[n++] = "--burn";
        a->argv[n++] = burn_names[opts->burn];
        snprintf(a->allocs, sizeof a->allocs, "1,4,2");
        allocation_of(rep, "best static (", a->allocs, sizeof a->allocs);
        allocation_of(rep, "even (", a->allocs, sizeof a->allocs);
        a->argv[n++] = "--allocs";
        a->argv[n++] = a->allocs;
    } else {
        if (opts->nsizes) {
            size_t len = 0;
            for (size_t i = 0; i < opts->nsizes && len < sizeof a->sizes; i++)
                len += (size_t)snprintf(a->sizes + len, sizeof a->sizes - len, "%s%llu",
                                        i ? "," : "", (unsigned long long)opts->sizes[i]);
            a->argv[n++] = "--sizes";
            a->argv[n++] = a->sizes;
        }
        if (opts->iterations) {
            snprintf(a->iterations, sizeof a->iterations, "%llu",
                     (unsigned long long)opts->iterations);
            a->argv[n++] = "--iterations";
            a->argv[n++] = a->iterations;
        }
    }
    a->argv[n] = NULL;
}

#define RAY_SETTLE_MAX_S 30.0 /* the longest reel-bench waits for Ray's processes to go */

/* Ray's figures for one section, measured after reel's (never while reel is
 * timed), as bench_ray.h says: a matching row gets Ray as its baseline, the
 * others are printed in a group of their own. Never fails the section. */
static void add_ray(const bench_section *s, const bench_options *opts, bench_report *rep) {
    static bench_ray_rows ray;
    char why[512];
    if (opts->progress)
        fprintf(stderr, "%s: Ray, this machine (%s)\n", s->name, s->ray_script);
    ray_args args;
    memset(&args, 0, sizeof args);
    ray_args_for(s, opts, rep, &args);
    int rc = bench_ray_run(s->ray_script, opts->quick, args.argv, &ray, why, sizeof why);
    if (rc) {
        bench_report_note(rep, "Ray, this machine: %s", why);
        return;
    }
    bool used[BENCH_RAY_MAX_ROWS] = {false};
    size_t n_reel = rep->n;
    for (size_t i = 0; i < n_reel; i++) {
        bench_row *row = &rep->rows[i];
        const bench_ray_row *r = bench_ray_find(&ray, row->figure);
        if (!r || strcmp(r->unit, row->unit) != 0)
            continue;
        double v = row->kind == BENCH_LATENCY && r->has_lat ? r->p50_us : r->value;
        bench_row_ray_baseline(row, v, r->has_lat, r->p50_us, r->p99_us);
        used[r - ray.rows] = true;
    }
    char group[96];
    snprintf(group, sizeof group, "Ray, this machine (%s)", ray.ray_version);
    for (size_t k = 0; k < ray.n; k++) {
        if (used[k])
            continue;
        const bench_ray_row *r = &ray.rows[k];
        char figure[BENCH_NAME_MAX];
        snprintf(figure, sizeof figure, "Ray %.*s", (int)sizeof figure - 5, r->figure);
        bench_row *row =
            bench_report_add(rep, group, figure, r->unit,
                             strcmp(r->unit, "us") == 0 ? BENCH_LATENCY : BENCH_RATE, r->value);
        if (row && r->has_lat)
            bench_row_latency(row, r->p50_us, r->p99_us, 0);
    }
    double quiet = bench_wait_quiet(RAY_SETTLE_MAX_S);
    bench_report_note(rep,
                      "Ray %s, this machine: %s took %.1f s, then %.1f s for its processes to "
                      "leave the CPUs (%.0f%% busy or less)",
                      ray.ray_version, s->ray_script, ray.wall_s, quiet, BENCH_QUIET_BUSY * 100);
    for (size_t k = 0; k < ray.nnotes; k++)
        bench_report_note(rep, "Ray: %s", ray.notes[k]);
}

int main(int argc, char **argv) {
    bench_options opts;
    memset(&opts, 0, sizeof(opts));
    const char *section = NULL, *plot_dir = NULL;
    int vs_ray = 0, interval_config = 0, interval_flag = 0;
    reel_executor_config_defaults(&opts.executor);

    /* the configuration file first, so that flags override it whatever their order */
    for (int i = 1; i < argc; i++) {
        const char *v = option_value(argc, argv, &i, "--config");
        if (v && reel_executor_config_load(&opts.executor, v) != 0)
            die_usage("%s", reel_last_error());
        if (v) {
            reel_executor_config dflt;
            reel_executor_config_defaults(&dflt);
            interval_config |= opts.executor.autoscale_interval_s != dflt.autoscale_interval_s;
            opts.logging_interval_set |= opts.executor.logging_interval != dflt.logging_interval;
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int before = i;
        int rc = reel_executor_config_parse_flag(&opts.executor, argc, argv, &i);
        if (rc < 0)
            die_usage("%s", reel_last_error());
        if (rc > 0) {
            opts.logging_interval_set |= flag_named(argv[before], "--logging-interval");
            interval_flag |= flag_named(argv[before], "--autoscale-interval-s");
            continue;
        }
        if ((v = option_value(argc, argv, &i, "--config"))) {
            continue;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--json") == 0) {
            opts.json = 1;
        } else if (strcmp(a, "--quick") == 0) {
            opts.quick = 1;
        } else if (strcmp(a, "--spill") == 0) {
            opts.spill = 1;
        } else if (strcmp(a, "--long") == 0) {
            opts.long_video = 1;
        } else if ((v = option_value(argc, argv, &i, "--long-seconds"))) {
            char *end;
            errno = 0;
            opts.long_s = strtod(v, &end);
            if (errno || end == v || *end || !(opts.long_s >= 1 && opts.long_s <= 3600))
                die_usage("--long-seconds: '%s' is not a number of seconds from 1 to 3600", v);
        } else if (strcmp(a, "--vs-ray") == 0) {
            vs_ray = 1;
        } else if ((v = option_value(argc, argv, &i, "--iterations"))) {
            opts.iterations = parse_count(v);
        } else if ((v = option_value(argc, argv, &i, "--sizes"))) {
            parse_sizes(v, &opts);
        } else if ((v = option_value(argc, argv, &i, "--interval"))) {
            opts.interval_s = parse_interval(v);
        } else if ((v = option_value(argc, argv, &i, "--plot"))) {
            plot_dir = v;
        } else if ((v = option_value(argc, argv, &i, "--burn"))) {
            size_t k = 0;
            while (k < sizeof burn_names / sizeof burn_names[0] && strcmp(v, burn_names[k]) != 0)
                k++;
            if (k == sizeof burn_names / sizeof burn_names[0])
                die_usage("--burn: '%s' is not cpu, sleep, yield or spin", v);
            opts.burn = (int)k;
        } else if (a[0] == '-') {
            die_usage("unknown option '%s'", a);
        } else if (section) {
            die_usage("one section at a time (got '%s' too)", a);
        } else {
            section = a;
        }
    }
    if (!section)
        die_usage("%s", "no section given");
    if (interval_flag && opts.interval_s > 0)
        die_usage("%s", "--interval and --autoscale-interval-s: give one of them");
    /* a flag over the configuration file's interval */
    if (interval_flag || (interval_config && opts.interval_s == 0)) {
        double v = opts.executor.autoscale_interval_s;
        if (!(v >= 0.1 && v <= 60)) /* the executor takes more than reel-bench runs */
            die_usage(interval_flag ? "--autoscale-interval-s: %s"
                                    : "autoscale_interval_s of --config: %s",
                      "reel-bench pipeline takes 0.1 to 60 seconds");
        opts.interval_s = v;
    }

    size_t first = 0, count = 0;
    if (strcmp(section, "all") == 0) {
        count = NSECTIONS;
    } else {
        for (size_t i = 0; i < NSECTIONS; i++) {
            if (strcmp(section, sections[i].name) == 0) {
                first = i;
                count = 1;
            }
        }
        if (!count)
            die_usage("unknown section '%s'", section);
    }
    /* the stores of reel-bench runs that were killed (SIGKILL leaves no time
     * to remove them): each may hold hundreds of MiB of /dev/shm */
    static const char *const own_prefixes[] = {"reel-bench-", "reel-bench-actors-",
                                               "reel-bench-pipeline-", "reel-bench-spill-",
                                               "reel-bench-h2d-"};
    for (size_t k = 0; k < sizeof own_prefixes / sizeof own_prefixes[0]; k++)
        reel_store_destroy_orphans(own_prefixes[k]);
    opts.progress = isatty(STDERR_FILENO);
    char why[512];
    if (vs_ray && bench_ray_available(why, sizeof why) != 0) {
        fprintf(stderr, "reel-bench: --vs-ray: %s; going on without Ray\n", why);
        vs_ray = 0;
    }
    if (plot_dir && bench_plot_prepare(plot_dir, why, sizeof(why)) != 0)
        die_usage("--plot: %s", why);

    bench_report reports[NSECTIONS];
    memset(reports, 0, sizeof(reports));
    int status = 0;
    for (size_t k = 0; k < count; k++) {
        const bench_section *s = &sections[first + k];
        bench_report *rep = &reports[k];
        rep->section = s->name;
        int err = s->run(&opts, rep);
        if (err) {
            /* one line for it; the sections after it still run, and the
             * JSON keeps what this one measured beside its error */
            if (!rep->error[0])
                snprintf(rep->error, sizeof(rep->error), "%s", strerror(-err));
            rep->failed = 1;
            fprintf(stderr, "reel-bench: %s: %s\n", s->name, rep->error);
            status = 1;
            bench_report_finish(rep);
            continue;
        }
        if (vs_ray && s->ray_script)
            add_ray(s, &opts, rep);
        bench_report_finish(rep);
        if (!opts.json) {
            if (k)
                fputc('\n', stdout);
            bench_report_print_table(stdout, rep);
            fflush(stdout);
        }
    }
    if (opts.json)
        bench_report_print_json(stdout, reports, count);
    if (plot_dir && count) {
        int rendered = 0;
        fflush(stdout);
        int err = bench_plot(plot_dir, reports, count, &rendered, why, sizeof(why));
        fprintf(stderr, "reel-bench: --plot: %s\n", why[0] ? why : strerror(-err));
        if (err)
            status = 1;
    }
    for (size_t k = 0; k < NSECTIONS; k++)
        bench_report_free(&reports[k]);
    return status;
}
