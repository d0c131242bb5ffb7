/* bench_cluster.c - reel-bench cluster: what the Ray layer (reel-cluster,
 * cluster/) costs, on simulated clusters (several raylets on this machine).
 *
 * The cluster is Ray's, so the measuring is Python: cluster/bench/scale.py
 * --rows starts the clusters, runs reel-curate and reel-cluster on the
 * samples and prints its figures as the rows bench_ray.h reads. This section
 * runs it (with this build's reel-curate) and reports each figure beside its
 * baseline and target: 2 nodes against one reel-curate on the same CPUs
 * (>= 0.9x), and a dead node's videos running elsewhere (<= 5 s). */
#include "bench.h"
#include "bench_ray.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef REEL_CLUSTER_BENCH_DIR
#define REEL_CLUSTER_BENCH_DIR "cluster/bench"
#endif
#ifndef REEL_SOURCE_DIR
#define REEL_SOURCE_DIR "."
#endif

#define SINGLE    "one reel-curate, same CPUs"
#define DRIVER    "2 nodes, from the driver's start"
#define PROGRAM   "2 nodes, from the program's start"
#define FAILOVER  "node death to its work elsewhere"
#define G_THRU    "2 simulated nodes of half the CPUs each (the samples, --no-previews)"
#define G_FAIL    "failover: a node removed while it holds videos"
#define G_COORD   "coordination: a stub reel-curate that answers at once"
#define G_WAIT    "the driver's ray.wait over the calls in flight"
#define DIE_LIMIT 5.0 /* seconds from a node's death to its work elsewhere (the target) */

/* The Python with Ray and reel_cluster: $REEL_BENCH_PYTHON, else the
 * project's .venv (scripts/deps.sh makes it), else python3. */
static const char *cluster_python(void) {
    const char *p = getenv("REEL_BENCH_PYTHON");
    if (p && p[0])
        return p;
    static const char venv[] = REEL_SOURCE_DIR "/.venv/bin/python";
    return access(venv, X_OK) == 0 ? venv : "python3";
}

int bench_cluster_report(const bench_ray_rows *rows, bench_report *rep) {
    const bench_ray_row *single = bench_ray_find(rows, SINGLE);
    for (size_t i = 0; i < rows->n; i++) {
        const bench_ray_row *x = &rows->rows[i];
        if (x == single)
            continue; /* the baseline of the rows below */
        const char *group = G_COORD;
        bool throughput = false;
        int kind = BENCH_AMOUNT; /* seconds, milliseconds: lower is better */
        if (strcmp(x->unit, "s/s") == 0 || strcmp(x->unit, "videos/s") == 0)
            kind = BENCH_RATE;
        if (strncmp(x->figure, "2 nodes, ", 9) == 0 ||
            strcmp(x->figure, "driver CPU per video") == 0) {
            group = G_THRU;
            throughput = true;
        } else if (strncmp(x->figure, "node death", 10) == 0)
            group = G_FAIL;
        else if (strncmp(x->figure, "ray.wait", 8) == 0)
            group = G_WAIT;
        bench_row *r = bench_report_add(rep, group, x->figure, x->unit, kind, x->value);
        if (!r)
            return -ENOMEM;
        if (kind == BENCH_RATE && throughput && single && strcmp(single->unit, x->unit) == 0) {
            bench_row_baseline(r, SINGLE, single->value);
            if (strcmp(x->figure, DRIVER) == 0)
                bench_row_target(r, BENCH_ON_VALUE, BENCH_GE, 0.9 * single->value,
                                 ">= 0.9 x one reel-curate");
        }
        if (strcmp(x->figure, FAILOVER) == 0)
            bench_row_target(r, BENCH_ON_VALUE, BENCH_LE, DIE_LIMIT, "<= 5 s");
    }
    if (bench_ray_find(rows, DRIVER) && !single)
        bench_report_note(rep, "no single-node figure came back: the 2-node rows stand alone");
    bench_report_note(rep, "Ray %s; simulated nodes share this machine's cores with Ray's daemons",
                      rows->ray_version);
    for (size_t i = 0; i < rows->nnotes; i++)
        bench_report_note(rep, "%s", rows->notes[i]);
    return 0;
}

int bench_cluster_run(const bench_options *opts, bench_report *rep) {
    /* What scale.py runs: the reel-curate curate --long runs. */
    char curate[PATH_MAX];
    if (bench_curate_program(curate, sizeof curate) == 0)
        setenv("REEL_CURATE", curate, 0);
    static bench_ray_rows rows; /* about 40 KiB */
    const char *extra[] = {"--rows", NULL};
    char why[256];
    const char *python = cluster_python();
    if (opts->progress)
        fprintf(stderr, "cluster: %s %s/scale.py --rows%s\n", python, REEL_CLUSTER_BENCH_DIR,
                opts->quick ? " --quick" : "");
    /* A full run is about 6 minutes on 2 cores (--quick, 2). */
    int rc = bench_ray_run_in(python, REEL_CLUSTER_BENCH_DIR, "scale.py", opts->quick, extra,
                              opts->quick ? 600 : 1800, &rows, why, sizeof why);
    if (rc) {
        bench_report_error(
            rep, "%s (the cluster needs Ray and reel_cluster in %s: scripts/deps.sh)", why, python);
        return rc;
    }
    bench_report_note(rep, "%s", why);
    return bench_cluster_report(&rows, rep);
}
