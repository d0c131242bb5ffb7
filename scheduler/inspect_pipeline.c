/*
 * reel-inspect pipeline: shows the live figures that a running pipeline
 * publishes in /dev/shm/reel-<uid>/reel-status-<name> (see status.h), as a table or as
 * one JSON object per line. Part of the reel-inspect program, not of the
 * library; objstore/inspect.c hands it the arguments after "pipeline".
 *
 * It only reads: the segment is copied under its sequence lock and validated
 * by reel__status_read() before anything here looks at it.
 *
 * Exit codes: 0 success (with --watch: the run ended, or an interruption),
 * 1 no such pipeline or its status cannot be read (with --watch: its driver
 * died without removing it), 2 bad arguments, or several pipelines running
 * and none named.
 */
#include "status.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <reel/store.h>

#include "cli.h"

#define PROG "reel-inspect"
#define SUB  PROG " pipeline"

/* How many running pipelines an unnamed call lists when it must ask. */
#define LIST_MAX 16

struct options {
    const char *name; /* NULL: the one running */
    bool json;
    double watch_s; /* 0: one snapshot */
};

static void usage(FILE *f) {
    fputs("usage: " SUB " [NAME] [--json] [--watch S]\n"
          "\n"
          "Shows the live figures of a running pipeline: what each stage has queued, in\n"
          "flight and done, its rate and how busy its workers are. The executor publishes\n"
          "them in /dev/shm/reel-<uid>/" REEL_STATUS_PREFIX
          "NAME while the run lasts; this only reads them.\n"
          "\n"
          "  NAME                the run's status name (its status_name option; by default\n"
          "                      the pipeline's name and the driver's pid), or a file path.\n"
          "                      Without NAME: the one running pipeline; when several run,\n"
          "                      they are listed and one must be named\n"
          "\n"
          "options:\n"
          "  --json              print one JSON object per snapshot, on one line\n"
          "  --watch S           refresh every S seconds (S > 0, fractions allowed) until\n"
          "                      the run ends or is interrupted (Ctrl-C)\n"
          "  -h, --help          show this text\n"
          "\n"
          "columns: WORKERS alive (of which in setup or in their grace); QUEUED/BOUND\n"
          "items waiting for the stage and its queue's bound (- unbounded); IN FLIGHT items\n"
          "in tasks handed to workers; ITEMS IN done, ITEMS OUT passed on; TASKS/S\n"
          "(batches done), ITEMS/S and BUSY (share of the workers' time in process()) over\n"
          "the last window;\n"
          "FAILED tasks failed for good; RETRIES of tasks; RESTARTS of workers; FINISHED:\n"
          "nothing more will come.\n"
          "\n"
          "exit status: 0 success (with --watch: the run ended), 1 no such pipeline, its\n"
          "status cannot be read, or (with --watch) its driver died; 2 bad arguments, or\n"
          "several pipelines run and none was named\n",
          f);
}

static void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void usage_error(const char *fmt, ...) {
    va_list ap;
    fputs(SUB ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (see " SUB " --help)\n", stderr);
    exit(2);
}

static void parse_args(int argc, char **argv, struct options *o) {
    char shown[256], shown2[256];
    bool only_operands = false;
    memset(o, 0, sizeof(*o));
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *v = NULL;
        if (only_operands || arg[0] != '-' || arg[1] == '\0') {
            if (o->name)
                usage_error("more than one pipeline given ('%s' and '%s')",
                            cli_one_line(o->name, shown, sizeof(shown)),
                            cli_one_line(arg, shown2, sizeof(shown2)));
            if (!strchr(arg, '/') && !reel__status_name_ok(arg))
                usage_error("'%s' is not a pipeline status name (1 to %u characters of A-Z, "
                            "a-z, 0-9, '.', '_' and '-') nor a path",
                            cli_one_line(arg, shown, sizeof(shown)), REEL_STATUS_NAME_MAX);
            o->name = arg;
        } else if (strcmp(arg, "--") == 0) {
            only_operands = true;
        } else if (strcmp(arg, "-h") == 0 ||
                   cli_match_option(argc, argv, &i, "--help", false, &v, usage_error)) {
            usage(stdout);
            exit(0);
        } else if (cli_match_option(argc, argv, &i, "--json", false, &v, usage_error)) {
            o->json = true;
        } else if (cli_match_option(argc, argv, &i, "--watch", true, &v, usage_error)) {
            if (!cli_parse_seconds(v, &o->watch_s))
                usage_error("--watch needs a positive number of seconds, not '%s'",
                            cli_one_line(v, shown, sizeof(shown)));
        } else {
            usage_error("unknown option '%s'", cli_one_line(arg, shown, sizeof(shown)));
        }
    }
}

static uint64_t realtime_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void fail(const char *name, int rc) {
    char n[256];
    cli_print_reel_error(PROG, rc, "cannot read the status of pipeline %s",
                         cli_one_line(name, n, sizeof(n)));
}

/* ---- choosing the one running pipeline ------------------------------------ */

struct running {
    char name[LIST_MAX][REEL_STATUS_NAME_MAX + 1];
    pid_t pid[LIST_MAX];
    int live;  /* readable, of this user's, its driver alive */
    int stale; /* readable, its driver gone */
};

static int note_segment(void *arg, const char *name) {
    struct running *r = arg;
    reel_pipeline_status st;
    pid_t pid;
    if (reel__status_read(name, &st, &pid) != 0)
        return 0; /* another user's, or not a segment at all: not a candidate */
    if (!reel__status_pid_alive(pid)) {
        r->stale++;
        return 0;
    }
    if (r->live < LIST_MAX) {
        snprintf(r->name[r->live], sizeof r->name[0], "%s", name);
        r->pid[r->live] = pid;
    }
    r->live++;
    return 0;
}

/* Puts the name of the one running pipeline in out, or returns the exit code. */
static int pick_one(char *out, size_t cap) {
    static struct running r; /* 3 KiB of names: off the stack */
    memset(&r, 0, sizeof r);
    int n = reel__status_list(note_segment, &r);
    if (n < 0) {
        char d[512];
        fprintf(stderr, PROG ": cannot look for running pipelines: %s (%s)\n", reel_strerror(n),
                cli_one_line(reel_last_error(), d, sizeof(d)));
        return 1;
    }
    if (r.live == 0) {
        fprintf(stderr,
                PROG ": no pipeline is running (no live /dev/shm/reel-<uid>/" REEL_STATUS_PREFIX
                     "* segment of this user's");
        if (r.stale)
            fprintf(stderr, "; %d left behind by a driver that died", r.stale);
        fputs(")\n", stderr);
        return 1;
    }
    if (r.live > 1) {
        fprintf(stderr, PROG ": %d pipelines are running; name one:", r.live);
        for (int i = 0; i < r.live && i < LIST_MAX; i++)
            fprintf(stderr, "%s %s (pid %ld)", i ? "," : "", r.name[i], (long)r.pid[i]);
        if (r.live > LIST_MAX)
            fprintf(stderr, " and %d more", r.live - LIST_MAX);
        fputc('\n', stderr);
        return 2;
    }
    snprintf(out, cap, "%s", r.name[0]);
    return 0;
}

/* ---- printing ------------------------------------------------------------- */

static const char *mode_name(reel_execution_mode m) {
    return m == REEL_EXEC_BATCH ? "batch" : "streaming";
}

static const char *run_state(const reel_pipeline_status *st, bool alive) {
    return st->finished ? "finished" : alive ? "running" : "stopped (driver gone)";
}

static void print_table(FILE *f, const reel_pipeline_status *st, const char *segment, pid_t pid,
                        bool alive) {
    char name[REEL_PIPELINE_NAME_MAX + REEL_STATUS_NAME_MAX], el[32];
    cli_one_line(st->name[0] ? st->name : segment, name, sizeof(name));
    fprintf(f,
            "pipeline %s  mode %s  elapsed %s  inputs read %" PRIu64 "  outputs %" PRIu64
            "  failures %" PRIu64 "  autoscale rounds %" PRIu32 "  %s  driver pid %ld\n",
            name, mode_name(st->mode), cli_format_duration(st->elapsed_s, el, sizeof(el)),
            st->inputs_read, st->outputs, st->failures, st->autoscale_rounds, run_state(st, alive),
            (long)pid);

    int w = 5; /* "STAGE" */
    for (uint32_t i = 0; i < st->n_stages; i++) {
        int n = (int)strlen(st->stage[i].name);
        w = n > w ? n : w;
    }
    fprintf(f, "%-*s %11s %15s %9s %10s %10s %9s %9s %5s %7s %8s %8s %8s\n", w, "STAGE", "WORKERS",
            "QUEUED/BOUND", "IN FLIGHT", "ITEMS IN", "ITEMS OUT", "TASKS/S", "ITEMS/S", "BUSY",
            "FAILED", "RETRIES", "RESTARTS", "FINISHED");
    for (uint32_t i = 0; i < st->n_stages; i++) {
        const reel_stage_status *g = &st->stage[i];
        char sn[REEL_ACTOR_NAME_MAX], workers[32], queue[48], busy[16];
        snprintf(workers, sizeof(workers), "%" PRIu32 " (%" PRIu32 ")", g->workers,
                 g->workers_setup);
        if (g->queue_bound)
            snprintf(queue, sizeof(queue), "%" PRIu64 "/%" PRIu64, g->queued, g->queue_bound);
        else
            snprintf(queue, sizeof(queue), "%" PRIu64 "/-", g->queued);
        snprintf(busy, sizeof(busy), "%.0f%%", g->busy * 100 < 1e9 ? g->busy * 100 : 1e9);
        fprintf(f,
                "%-*s %11s %15s %9" PRIu64 " %10" PRIu64 " %10" PRIu64 " %9.1f %9.1f %5s %7" PRIu64
                " %8" PRIu64 " %8" PRIu64 " %8s\n",
                w, cli_one_line(g->name, sn, sizeof(sn)), workers, queue, g->in_flight, g->items_in,
                g->items_out, g->tasks_per_s, g->items_per_s, busy, g->tasks_failed, g->retries,
                g->restarts, g->finished ? "yes" : "no");
    }
    for (uint32_t i = 0; i < st->n_stages; i++) {
        const reel_stage_status *g = &st->stage[i];
        char sn[REEL_ACTOR_NAME_MAX], death[REEL_ERROR_TEXT_MAX];
        if (g->last_death[0])
            fprintf(f, "%s: last death: %s\n", cli_one_line(g->name, sn, sizeof(sn)),
                    cli_one_line(g->last_death, death, sizeof(death)));
    }
}

static void print_json(FILE *f, const reel_pipeline_status *st, const char *segment, pid_t pid,
                       bool alive, uint64_t now_ns) {
    fprintf(f, "{\"time_ns\":%" PRIu64 ",\"segment\":", now_ns);
    cli_json_str(f, segment);
    fputs(",\"name\":", f);
    cli_json_str(f, st->name);
    fprintf(f,
            ",\"pid\":%ld,\"driver_alive\":%s,\"state\":\"%s\",\"mode\":\"%s\",\"elapsed_s\":%.3f"
            ",\"inputs_read\":%" PRIu64 ",\"outputs\":%" PRIu64 ",\"failures\":%" PRIu64
            ",\"autoscale_rounds\":%" PRIu32 ",\"finished\":%s,\"stages\":[",
            (long)pid, alive ? "true" : "false",
            st->finished ? "finished"
            : alive      ? "running"
                         : "stopped",
            mode_name(st->mode), st->elapsed_s, st->inputs_read, st->outputs, st->failures,
            st->autoscale_rounds, st->finished ? "true" : "false");
    for (uint32_t i = 0; i < st->n_stages; i++) {
        const reel_stage_status *g = &st->stage[i];
        fputs(i ? ",{\"name\":" : "{\"name\":", f);
        cli_json_str(f, g->name);
        /* Validation made the doubles finite; 15 digits give back what was
         * written as a short decimal (0.87, not 0.86999999999999999). */
        fprintf(f,
                ",\"workers\":%" PRIu32 ",\"workers_setup\":%" PRIu32 ",\"queued\":%" PRIu64
                ",\"queue_bound\":%" PRIu64 ",\"in_flight\":%" PRIu64 ",\"items_in\":%" PRIu64
                ",\"items_out\":%" PRIu64 ",\"tasks_done\":%" PRIu64 ",\"tasks_failed\":%" PRIu64
                ",\"retries\":%" PRIu64 ",\"restarts\":%" PRIu64
                ",\"tasks_per_s\":%.15g,\"items_per_s\":%.15g,\"busy\":%.15g,\"last_death\":",
                g->workers, g->workers_setup, g->queued, g->queue_bound, g->in_flight, g->items_in,
                g->items_out, g->tasks_done, g->tasks_failed, g->retries, g->restarts,
                g->tasks_per_s, g->items_per_s, g->busy);
        cli_json_str(f, g->last_death);
        fprintf(f, ",\"finished\":%s}", g->finished ? "true" : "false");
    }
    fputs("]}\n", f);
}

static void print_ended(const struct options *o, const char *segment, uint64_t now_ns) {
    char n[256];
    if (o->json) {
        fprintf(stdout, "{\"time_ns\":%" PRIu64 ",\"segment\":", now_ns);
        cli_json_str(stdout, segment);
        fputs(",\"ended\":true}\n", stdout);
    } else {
        printf("%spipeline %s: the run ended\n", o->watch_s > 0 ? "\n" : "",
               cli_one_line(segment, n, sizeof(n)));
    }
}

/* ---- main ----------------------------------------------------------------- */

int reel__inspect_pipeline_main(int argc, char **argv) {
    struct options o;
    char chosen[REEL_STATUS_NAME_MAX + 1];
    int status = 0;

    parse_args(argc, argv, &o);
    if (!o.name) {
        int rc = pick_one(chosen, sizeof(chosen));
        if (rc)
            return rc;
        o.name = chosen;
    }

    sigset_t stop;
    sigemptyset(&stop);
    if (o.watch_s > 0)
        cli_watch_block_signals(&stop);
    bool tty = isatty(STDOUT_FILENO);
    pid_t watched = 0; /* the driver of the run being watched */

    for (bool first = true;; first = false) {
        reel_pipeline_status st;
        pid_t pid = 0;
        int rc = reel__status_read(o.name, &st, &pid);
        uint64_t now = realtime_ns();
        if (!first && (rc == -ENOENT || (rc == 0 && pid != watched))) {
            print_ended(&o, o.name, now); /* removed, or a new run took the name */
            break;
        }
        /* Caught mid-write at every try: the next refresh will do. */
        bool transient = !first && rc == -EAGAIN && reel__status_pid_alive(watched);
        if (rc && !transient) {
            fail(o.name, rc);
            status = 1;
            break;
        }
        if (rc == 0) {
            watched = pid;
            bool alive = reel__status_pid_alive(pid);
            if (o.watch_s > 0 && !o.json) {
                char n[256];
                cli_print_watch_banner(stdout, o.watch_s, SUB, cli_one_line(o.name, n, sizeof(n)),
                                       now, first, tty);
            }
            if (o.json)
                print_json(stdout, &st, o.name, pid, alive, now);
            else
                print_table(stdout, &st, o.name, pid, alive);
            if (fflush(stdout) != 0 || ferror(stdout)) {
                fprintf(stderr, PROG ": cannot write the report: %s\n", strerror(errno));
                status = 1;
                break;
            }
            if (o.watch_s <= 0)
                break;
            if (!alive && !st.finished) {
                char n[256];
                fprintf(stderr,
                        PROG ": the driver of pipeline %s (pid %ld) is gone; its run ended "
                             "without removing its status\n",
                        cli_one_line(o.name, n, sizeof(n)), (long)pid);
                status = 1;
                break;
            }
        }
        if (cli_watch_sleep(&stop, o.watch_s))
            break; /* interrupted: a clean stop */
    }
    if (fflush(stdout) != 0 && status == 0) {
        fprintf(stderr, PROG ": cannot write the report: %s\n", strerror(errno));
        status = 1;
    }
    return status;
}
