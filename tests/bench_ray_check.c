/*
 * bench_ray_check.c - a test of bench/bench_ray.c (ctest: bench_ray_check): the parser (good
 * output, malformed output of every kind, every truncation and every
 * single-byte change of a good document), bench_ray_find(), and the runner
 * against small fake scripts (failures, junk, too much output, time-outs,
 * leftover processes holding the pipes).
 *
 *   cc -std=c11 -Wall -Wextra -g -fsanitize=address,undefined -I bench \
 *      -DREEL_BENCH_RAY_DIR="\"$PWD/bench/ray\"" \
 *      tests/bench_ray_check.c bench/bench_ray.c -lm -o /tmp/bench-ray-test
 *   /tmp/bench-ray-test           # parser and runner, about 10 s
 *   /tmp/bench-ray-test --real    # also runs the real scripts, --quick (needs Ray)
 *
 * Prints one line per failed check and "N passed, N failed" at the end;
 * exits 1 if any failed.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "bench_ray.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int passed, failed;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (cond) {                                                                                \
            passed++;                                                                              \
        } else {                                                                                   \
            failed++;                                                                              \
            printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                                 \
            printf(__VA_ARGS__);                                                                   \
            printf("\n");                                                                          \
        }                                                                                          \
    } while (0)

static bench_ray_rows rows; /* 40 KiB: not on the stack */

static const char good[] =
    "{\"ray_version\": \"2.60.0\", \"notes\": [\"n1\", \"caf\\u00e9 \\ud83d\\ude00\"],\n"
    " \"rows\": [\n"
    "  {\"workload\": \"ray.put(np array of 64 B)\", \"figure\": \"put 64 B\", \"unit\": \"op/s\","
    " \"value\": 1285.29, \"p50_us\": 796.5, \"p99_us\": 1458.0},\n"
    "  {\"workload\": \"w\", \"figure\": \"round trip, no arg\", \"unit\": \"us\","
    " \"value\": 7e2, \"p50_us\": 6.5E+2, \"p99_us\": 0},\n"
    "  {\"p99_us\": null, \"p50_us\": null, \"value\": 0.5, \"unit\": \"s\","
    " \"figure\": \"idle: the 2 workers\", \"workload\": \"\"},\n"
    "  {\"workload\": \"w\", \"figure\": \"static 1,4,2\", \"unit\": \"items/s\","
    " \"value\": 338, \"p50_us\": null, \"p99_us\": null},\n"
    "  {\"workload\": \"w\", \"figure\": \"1:1, no arg\", \"unit\": \"op/s\","
    " \"value\": -0, \"p50_us\": null, \"p99_us\": null}\n"
    " ]}\n";

static int parse(const char *text, char *why, size_t cap) {
    return bench_ray_parse(text, strlen(text), &rows, why, cap);
}

static void test_good(void) {
    char why[200];
    int rc = parse(good, why, sizeof(why));
    CHECK(rc == 0, "rc %d: %s", rc, why);
    if (rc)
        return;
    CHECK(strcmp(rows.ray_version, "2.60.0") == 0, "version %s", rows.ray_version);
    CHECK(rows.n == 5, "n %zu", rows.n);
    CHECK(rows.nnotes == 2, "nnotes %zu", rows.nnotes);
    CHECK(strcmp(rows.notes[1], "caf\xc3\xa9 \xf0\x9f\x98\x80") == 0, "note '%s'", rows.notes[1]);
    CHECK(rows.rows[0].value == 1285.29 && rows.rows[0].has_lat && rows.rows[0].p50_us == 796.5 &&
              rows.rows[0].p99_us == 1458.0,
          "row 0");
    CHECK(rows.rows[1].value == 700 && rows.rows[1].p50_us == 650 && rows.rows[1].p99_us == 0,
          "row 1");
    CHECK(!rows.rows[2].has_lat && rows.rows[2].value == 0.5 && rows.rows[2].workload[0] == 0,
          "row 2");
    CHECK(rows.rows[4].value == 0 && !signbit(rows.rows[4].value), "-0 is 0");
    CHECK(strstr(why, "5 rows") != NULL, "why '%s'", why);

    /* no notes key at all; raw UTF-8; no whitespace */
    rc = parse("{\"rows\":[{\"workload\":\"\xc2\xb5s\",\"figure\":\"f\",\"unit\":\"u\",\"value\":1,"
               "\"p50_us\":null,\"p99_us\":null}],\"ray_version\":\"x\"}",
               why, sizeof(why));
    CHECK(rc == 0 && rows.nnotes == 0 && strcmp(rows.rows[0].workload, "\xc2\xb5s") == 0, "%s",
          why);

    /* the longest figure that fits, and the most rows */
    char fig[BENCH_RAY_FIGURE_MAX];
    memset(fig, 'f', sizeof(fig) - 1);
    fig[sizeof(fig) - 1] = 0;
    static char big[BENCH_RAY_OUTPUT_MAX];
    size_t n = (size_t)snprintf(big, sizeof(big), "{\"ray_version\":\"v\",\"rows\":[");
    for (int i = 0; i < BENCH_RAY_MAX_ROWS; i++)
        n += (size_t)snprintf(big + n, sizeof(big) - n,
                              "%s{\"workload\":\"w\",\"figure\":\"%s\",\"unit\":\"u\","
                              "\"value\":%d,\"p50_us\":1,\"p99_us\":2}",
                              i ? "," : "", fig, i);
    snprintf(big + n, sizeof(big) - n, "]}");
    rc = parse(big, why, sizeof(why));
    CHECK(rc == 0 && rows.n == BENCH_RAY_MAX_ROWS && rows.rows[127].value == 127, "%s", why);
}

/* Every one must fail with -EPROTO and say why. */
static void test_malformed(void) {
#define ROW(v)                                                                                     \
    "{\"workload\":\"w\",\"figure\":\"f\",\"unit\":\"u\",\"value\":" v                             \
    ",\"p50_us\":null,\"p99_us\":null}"
#define DOC(r) "{\"ray_version\":\"v\",\"rows\":[" r "]}"
    static const char *const cases[] = {
        "",
        "   \n",
        "{",
        "{}",
        "[]",
        "null",
        "{\"ray_version\":\"v\"}",
        "{\"rows\":[" ROW("1") "]}",
        DOC(""),
        "{\"ray_version\":\"\",\"rows\":[" ROW("1") "]}",
        "{\"ray_version\":\"v\",\"rows\":[" ROW("1") "],\"extra\":1}",
        "{\"ray_version\":\"v\",\"ray_version\":\"w\",\"rows\":[" ROW("1") "]}",
        "{\"ray_version\":\"v\",\"rows\":[" ROW("1") "],\"rows\":[" ROW("1") "]}",
        "{\"ray_version\":\"v\",\"rows\":[" ROW("1") "],\"notes\":[1]}",
        "{\"ray_version\":\"v\",\"rows\":[" ROW("1") "],\"notes\":\"n\"}",
        "{\"ray_version\":\"v\",\"rows\":{}}",
        "{\"ray_version\":1,\"rows\":[" ROW("1") "]}",
        DOC("[]"),
        DOC(ROW("1") ","),
        DOC(ROW("1") ",]"),
        "{\"ray_version\":\"v\",\"rows\":[" ROW("1") "],}",
        "{\"ray_version\":\"v\" \"rows\":[" ROW("1") "]}",
        "{\"ray_version\" \"v\",\"rows\":[" ROW("1") "]}",
        "{ray_version:\"v\",\"rows\":[" ROW("1") "]}",
        "{'ray_version':'v','rows':[" ROW("1") "]}",
        DOC(ROW("1")) "x",
        DOC(ROW("1")) DOC(ROW("1")),
        DOC(ROW("-1")),
        DOC(ROW("NaN")),
        DOC(ROW("Infinity")),
        DOC(ROW("-Infinity")),
        DOC(ROW("1e999")),
        DOC(ROW("01")),
        DOC(ROW("+1")),
        DOC(ROW(".5")),
        DOC(ROW("1.")),
        DOC(ROW("1e")),
        DOC(ROW("1e+")),
        DOC(ROW("0x10")),
        DOC(ROW("1 2")),
        DOC(ROW("\"1\"")),
        DOC(ROW("true")),
        DOC(ROW("null")),
        DOC(ROW("[1]")),
        DOC(ROW("1111111111111111111111111111111111111111111111111111111111111111111111")),
        DOC("{\"workload\":\"w\",\"figure\":\"f\",\"unit\":\"u\",\"p50_us\":null,\"p99_us\":null}"),
        DOC("{\"workload\":\"w\",\"figure\":\"f\",\"unit\":\"u\",\"value\":1,\"p50_us\":null}"),
        DOC("{\"workload\":\"w\",\"figure\":\"f\",\"unit\":\"u\",\"value\":1,\"p50_us\":1,"
            "\"p99_us\":null}"),
        DOC("{\"workload\":\"w\",\"figure\":\"f\",\"unit\":\"u\",\"value\":1,\"p50_us\":nul,"
            "\"p99_us\":null}"),
        DOC("{\"workload\":\"w\",\"figure\":\"f\",\"unit\":\"u\",\"value\":1,\"p50_us\":null,"
            "\"p99_us\":null,\"x\":1}"),
        DOC("{\"workload\":\"w\",\"figure\":\"f\",\"figure\":\"g\",\"unit\":\"u\",\"value\":1,"
            "\"p50_us\":null,\"p99_us\":null}"),
        DOC("{\"workload\":\"w\",\"figure\":\"\",\"unit\":\"u\",\"value\":1,\"p50_us\":null,"
            "\"p99_us\":null}"),
        DOC("{\"workload\":\"w\",\"figure\":\"f\",\"unit\":\"\",\"value\":1,\"p50_us\":null,"
            "\"p99_us\":null}"),
        DOC("{\"workload\":\"w\",\"figure\":\"f\",\"unit\":\"0123456789abcdef\",\"value\":1,"
            "\"p50_us\":null,\"p99_us\":null}"),
        DOC("{\"workload\":\"w\",\"figure\":\"f\",\"unit\":\"u\",\"value\":1,\"p50_us\":-1,"
            "\"p99_us\":1}"),
        DOC("{\"workload\":\"w\",\"figure\":\"f\",\"unit\":\"u\",\"value\":1,\"p50_us\":1,"
            "\"p99_us\":1e400}"),
        DOC("{\"workload\":\"w\",\"figure\":\"f\",\"unit\":\"u\",\"value\":1,\"p50_us\":null,"
            "\"p99_us\":null"),
        DOC("{\"workload\":\"w\",\"figure\":\"f\" , \"unit\":\"u\",\"value\":1 \"p50_us\":null,"
            "\"p99_us\":null}"),
        DOC("{\"\":\"w\",\"figure\":\"f\",\"unit\":\"u\",\"value\":1,\"p50_us\":null,"
            "\"p99_us\":null}"),
        DOC("{\"workloadworkloadworkloadworkloadworkload\":\"w\"}"),
        /* strings */
        DOC("{\"workload\":\"w,\"figure\":\"f\",\"unit\":\"u\",\"value\":1,\"p50_us\":null,"
            "\"p99_us\":null}"),
        "{\"ray_version\":\"v",
        "{\"ray_version\":\"v\\",
        "{\"ray_version\":\"a\x01\",\"rows\":[" ROW("1") "]}",
        "{\"ray_version\":\"a\tb\",\"rows\":[" ROW("1") "]}",
        "{\"ray_version\":\"a\\nb\",\"rows\":[" ROW("1") "]}",
        "{\"ray_version\":\"a\\u0000b\",\"rows\":[" ROW("1") "]}",
        "{\"ray_version\":\"a\\u007fb\",\"rows\":[" ROW("1") "]}",
        "{\"ray_version\":\"a\\xb\",\"rows\":[" ROW("1") "]}",
        "{\"ray_version\":\"a\\u12\",\"rows\":[" ROW("1") "]}",
        "{\"ray_version\":\"a\\u12g4\",\"rows\":[" ROW("1") "]}",
        "{\"ray_version\":\"a\\ud800\",\"rows\":[" ROW("1") "]}",
        "{\"ray_version\":\"a\\udc00\",\"rows\":[" ROW("1") "]}",
        "{\"ray_version\":\"a\\ud800\\u0041\",\"rows\":[" ROW("1") "]}",
        "{\"ray_version\":\"a\\ud800x\",\"rows\":[" ROW("1") "]}",
        "{\"ray_version\":\"a\xff\",\"rows\":[" ROW("1") "]}",
        "{\"ray_version\":\"a\xc0\xaf\",\"rows\":[" ROW("1") "]}",
        "{\"ray_version\":\"a\xed\xa0\x80\",\"rows\":[" ROW("1") "]}",
        "{\"ray_version\":\"a\xf4\x90\x80\x80\",\"rows\":[" ROW("1") "]}",
        "{\"ray_version\":\"a\xe2\x82\",\"rows\":[" ROW("1") "]}",
        "{\"ray_version\":\"a\xc3\",\"rows\":[" ROW("1") "]}",
        "{\"ray_version\":\"0123456789012345678901234567890123\",\"rows\":[" ROW("1") "]}",
        /* ray_version of exactly 32 bytes: one too many */
        "{\"ray_version\":\"01234567890123456789012345678901\",\"rows\":[" ROW("1") "]}",
        "{\"ray_version\":\"v\",\"rows\":[" ROW(
            "1") "],\"notes\":[\"1\",\"2\",\"3\",\"4\",\"5\","
                 "\"6\",\"7\",\"8\",\"9\",\"10\",\"11\",\"12\",\"13\"]}",
    };
#undef ROW
#undef DOC
    char why[200];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        why[0] = 0;
        int rc = parse(cases[i], why, sizeof(why));
        CHECK(rc == -EPROTO && why[0], "case %zu accepted (rc %d): %s", i, rc, cases[i]);
    }

    /* a figure one byte too long */
    char doc[512], fig[BENCH_RAY_FIGURE_MAX + 1];
    memset(fig, 'f', sizeof(fig) - 1);
    fig[sizeof(fig) - 1] = 0;
    snprintf(doc, sizeof(doc),
             "{\"ray_version\":\"v\",\"rows\":[{\"workload\":\"w\",\"figure\":\"%s\",\"unit\":"
             "\"u\",\"value\":1,\"p50_us\":null,\"p99_us\":null}]}",
             fig);
    CHECK(parse(doc, why, sizeof(why)) == -EPROTO && strstr(why, "longer"), "%s", why);
    /* a multi-byte character that would cross the end */
    memset(fig, 'f', sizeof(fig) - 1);
    memcpy(fig + BENCH_RAY_FIGURE_MAX - 2, "\xc3\xa9", 3);
    snprintf(doc, sizeof(doc),
             "{\"ray_version\":\"v\",\"rows\":[{\"workload\":\"w\",\"figure\":\"%s\",\"unit\":"
             "\"u\",\"value\":1,\"p50_us\":null,\"p99_us\":null}]}",
             fig);
    CHECK(parse(doc, why, sizeof(why)) == -EPROTO && strstr(why, "longer"), "%s", why);

    /* one row too many */
    static char big[BENCH_RAY_OUTPUT_MAX];
    size_t n = (size_t)snprintf(big, sizeof(big), "{\"ray_version\":\"v\",\"rows\":[");
    for (int i = 0; i <= BENCH_RAY_MAX_ROWS; i++)
        n += (size_t)snprintf(big + n, sizeof(big) - n,
                              "%s{\"workload\":\"w\",\"figure\":\"f\",\"unit\":\"u\","
                              "\"value\":1,\"p50_us\":null,\"p99_us\":null}",
                              i ? "," : "");
    snprintf(big + n, sizeof(big) - n, "]}");
    CHECK(parse(big, why, sizeof(why)) == -EPROTO && strstr(why, "more than"), "%s", why);

    /* a NUL byte inside, with the length given */
    char nul[] = "{\"ray_version\":\"v\0\",\"rows\":[]}";
    CHECK(bench_ray_parse(nul, sizeof(nul) - 1, &rows, why, sizeof(why)) == -EPROTO, "NUL");
    CHECK(bench_ray_parse(NULL, 0, &rows, why, sizeof(why)) == -EPROTO, "NULL text");
    /* why of 0 and 1 bytes */
    CHECK(parse("{", NULL, 0) == -EPROTO, "no why");
    char tiny[1] = {'x'};
    CHECK(parse("{", tiny, 1) == -EPROTO && tiny[0] == 0, "why of one byte");
}

/* Every proper prefix of a good document fails; every single-byte change
 * either parses or fails cleanly (run under ASan/UBSan to see the latter). */
static void test_truncations_and_mutations(void) {
    size_t len = strlen(good);
    char *buf = malloc(len + 1);
    char why[200];
    int prefix_ok = 1;
    for (size_t k = 0; k < len; k++) {
        int rc = bench_ray_parse(good, k, &rows, why, sizeof(why));
        /* what follows the closing '}' is whitespace: only prefixes through it pass */
        int whole = strspn(good + k, " \n") == len - k;
        if (whole ? rc != 0 : rc != -EPROTO) {
            prefix_ok = 0;
            printf("prefix %zu: rc %d: %s\n", k, rc, why);
        }
    }
    CHECK(prefix_ok, "every proper prefix fails");
    static const char subst[] = {0,   1,   '"', '\\', '{', '}', '[',        ']',       ',',
                                 ':', '-', '0', 'e',  'n', ' ', (char)0x80, (char)0xff};
    size_t ok = 0, bad = 0;
    for (size_t k = 0; k < len; k++) {
        for (size_t s = 0; s < sizeof(subst); s++) {
            memcpy(buf, good, len + 1);
            buf[k] = subst[s];
            int rc = bench_ray_parse(buf, len, &rows, why, sizeof(why));
            if (rc == 0)
                ok++;
            else if (rc == -EPROTO)
                bad++;
            else
                CHECK(0, "mutation at %zu: rc %d", k, rc);
            if (rc == 0)
                for (size_t i = 0; i < rows.n; i++)
                    CHECK(rows.rows[i].value >= 0 && isfinite(rows.rows[i].value), "value");
        }
    }
    CHECK(ok + bad == len * sizeof(subst), "mutations: %zu parsed, %zu refused", ok, bad);
    free(buf);
}

static void test_find(void) {
    char why[200];
    int rc = parse(good, why, sizeof(why));
    CHECK(rc == 0, "%s", why);
    const bench_ray_row *r;
    r = bench_ray_find(&rows, "put 64 B");
    CHECK(r && r == &rows.rows[0], "exact");
    CHECK(!bench_ray_find(&rows, "put 64 B bandwidth"), "no prefix match");
    CHECK(!bench_ray_find(&rows, "put 64"), "no partial match");
    r = bench_ray_find(&rows, "round trip, no arg, spin");
    CHECK(r && r == &rows.rows[1], "spin suffix");
    r = bench_ray_find(&rows, "round trip, no arg, sleep");
    CHECK(r && r == &rows.rows[1], "sleep suffix");
    CHECK(!bench_ray_find(&rows, "round trip, no arg, spinning"), "spinning is no mode");
    r = bench_ray_find(&rows, "idle, sleep: the 2 workers");
    CHECK(r && r == &rows.rows[2], "mode before ':'");
    r = bench_ray_find(&rows, "idle, spin: the 2 workers");
    CHECK(r && r == &rows.rows[2], "mode before ':'");
    r = bench_ray_find(&rows, "1:1, no arg, spin");
    CHECK(r && r == &rows.rows[4], "1:1");
    CHECK(!bench_ray_find(&rows, "1:1, no arg, slots 64, spin"), "slots 64 has no Ray row");
    r = bench_ray_find(&rows, "best static (1,4,2)");
    CHECK(r && r == &rows.rows[3], "best static");
    CHECK(!bench_ray_find(&rows, "best static (2,3,2)"), "another best static");
    CHECK(!bench_ray_find(&rows, "even (2,2,2)"), "no 2,2,2 row here");
    CHECK(!bench_ray_find(&rows, "best static ("), "degenerate");
    CHECK(!bench_ray_find(&rows, "even ()"), "degenerate");
    CHECK(!bench_ray_find(&rows, ""), "empty");
    CHECK(!bench_ray_find(NULL, "x") && !bench_ray_find(&rows, NULL), "NULL");
    char longname[400];
    memset(longname, 'x', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = 0;
    CHECK(!bench_ray_find(&rows, longname), "long name");
}

/* ---- The runner, against fake scripts ---------------------------------------------- */

static char dir[64];

static void write_script(const char *name, const char *body) {
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(2);
    }
    fputs(body, f);
    fclose(f);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#define OK_JSON                                                                                    \
    "import json, sys\n"                                                                           \
    "doc = {'ray_version': 'fake', 'notes': [' '.join(sys.argv[1:])], 'rows': [{'workload': 'w', " \
    "'figure': 'put 64 B', 'unit': 'op/s', 'value': 5.0, 'p50_us': 1.0, 'p99_us': 2.0}]}\n"

static int run(const char *script, double limit, char *why, size_t cap, double *took) {
    double t0 = now_s();
    int rc = bench_ray_run_in("python3", dir, script, 1, NULL, limit, &rows, why, cap);
    *took = now_s() - t0;
    return rc;
}

static void test_runner(void) {
    snprintf(dir, sizeof(dir), "/tmp/bench-ray-test-%ld", (long)getpid());
    mkdir(dir, 0700);
    write_script("ok.py", OK_JSON "sys.stderr.write('noise\\n' * 10000)\n"
                                  "print(json.dumps(doc))\n");
    write_script("fail.py", "import sys\nprint('partial')\nsys.stderr.write('trace\\n"
                            "ray: ValueError: boom\\n\\n')\nsys.exit(3)\n");
    write_script("junk.py", "print('hello')\n");
    write_script("empty.py", "pass\n");
    write_script("big.py", "import sys\nsys.stdout.write('x' * 300000)\n");
    write_script("slow.py", "import time\ntime.sleep(30)\n");
    write_script("stubborn.py", "import signal, time\nsignal.signal(signal.SIGTERM, "
                                "signal.SIG_IGN)\ntime.sleep(30)\n");
    write_script("killed.py", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n");
    /* leftovers: a grandchild keeps stderr (as Ray's daemons could), or stdout */
    write_script("linger_err.py", OK_JSON "import subprocess\n"
                                          "subprocess.Popen(['sleep', '20'], stdout=subprocess."
                                          "DEVNULL)\nprint(json.dumps(doc))\n");
    write_script("linger_out.py", OK_JSON "import subprocess\nprint(json.dumps(doc), flush=True)\n"
                                          "subprocess.Popen(['sleep', '20'])\n");
    char why[300];
    double took;
    int rc;

    rc = run("ok.py", 20, why, sizeof(why), &took);
    CHECK(rc == 0 && rows.n == 1 && rows.rows[0].value == 5.0 && rows.wall_s > 0, "rc %d: %s", rc,
          why);
    CHECK(rc == 0 && strcmp(rows.notes[0], "--quick") == 0, "--quick passed: '%s'", rows.notes[0]);
    CHECK(strstr(why, "ok.py: 1 rows, Ray fake") != NULL, "why '%s'", why);
    rc = bench_ray_run_in("python3", dir, "ok.py", 0, NULL, 20, &rows, why, sizeof(why));
    CHECK(rc == 0 && rows.notes[0][0] == 0, "no --quick: '%s'", rows.notes[0]);

    /* extra arguments: passed on as they are, each its own, after --quick */
    static const char *const extra[] = {"--sizes",     "64,4096,1048576", "--allocs",
                                        "1,4,2;2,2,2", "a b $x",          NULL};
    rc = bench_ray_run_in("python3", dir, "ok.py", 1, extra, 20, &rows, why, sizeof(why));
    CHECK(rc == 0 && strcmp(rows.notes[0], "--quick --sizes 64,4096,1048576 --allocs "
                                           "1,4,2;2,2,2 a b $x") == 0,
          "extra args: rc %d, '%s'", rc, rows.notes[0]);
    write_script("argc.py", "import sys\nif len(sys.argv) != 2:\n    sys.exit(9)\n" OK_JSON
                            "print(json.dumps(doc))\n");
    static const char *const one[] = {"a b", NULL};
    rc = bench_ray_run_in("python3", dir, "argc.py", 0, one, 20, &rows, why, sizeof(why));
    CHECK(rc == 0, "one extra argument with a space stays one: rc %d: %s", rc, why);
    static const char *const none[] = {NULL};
    rc = bench_ray_run_in("python3", dir, "ok.py", 0, none, 20, &rows, why, sizeof(why));
    CHECK(rc == 0 && rows.notes[0][0] == 0, "empty extra list: rc %d, '%s'", rc, rows.notes[0]);
    /* a script that refuses an argument, as argparse does: exit 2, one line */
    write_script("usage.py", "import sys\nsys.stderr.write('usage.py: error: argument --burn: "
                             "invalid choice\\n')\nsys.exit(2)\n");
    static const char *const burn[] = {"--burn", "fast", NULL};
    rc = bench_ray_run_in("python3", dir, "usage.py", 1, burn, 20, &rows, why, sizeof(why));
    CHECK(rc == -ECHILD && strstr(why, "exited with 2: usage.py: error: argument --burn"),
          "usage error: rc %d: %s", rc, why);
    static const char *const bad_empty[] = {"--sizes", "", NULL};
    static const char *const bad_ctl[] = {"--sizes", "64\n", NULL}; /* a control character */
    static const char *const *const bads[] = {bad_empty, bad_ctl};
    static char longarg[BENCH_RAY_ARG_MAX + 1];
    memset(longarg, 'x', BENCH_RAY_ARG_MAX);
    const char *bad_long[] = {longarg, NULL};
    const char *many[BENCH_RAY_MAX_ARGS + 2];
    for (size_t i = 0; i < BENCH_RAY_MAX_ARGS + 1; i++)
        many[i] = "x";
    many[BENCH_RAY_MAX_ARGS + 1] = NULL;
    for (size_t i = 0; i < 2; i++) {
        rc = bench_ray_run_in("python3", dir, "ok.py", 1, bads[i], 20, &rows, why, sizeof(why));
        CHECK(rc == -EINVAL, "bad extra argument %zu: rc %d", i, rc);
    }
    rc = bench_ray_run_in("python3", dir, "ok.py", 1, bad_long, 20, &rows, why, sizeof(why));
    CHECK(rc == -EINVAL, "a %d-byte extra argument: rc %d", BENCH_RAY_ARG_MAX, rc);
    rc = bench_ray_run_in("python3", dir, "ok.py", 1, many, 20, &rows, why, sizeof(why));
    CHECK(rc == -EINVAL, "%d extra arguments: rc %d", BENCH_RAY_MAX_ARGS + 1, rc);
    many[BENCH_RAY_MAX_ARGS] = NULL;
    rc = bench_ray_run_in("python3", dir, "ok.py", 0, many, 20, &rows, why, sizeof(why));
    CHECK(rc == 0, "%d extra arguments: rc %d: %s", BENCH_RAY_MAX_ARGS, rc, why);

    rc = run("fail.py", 20, why, sizeof(why), &took);
    CHECK(rc == -ECHILD && strstr(why, "exited with 3: ray: ValueError: boom"), "rc %d: %s", rc,
          why);
    rc = run("killed.py", 20, why, sizeof(why), &took);
    CHECK(rc == -ECHILD && strstr(why, "signal 9"), "rc %d: %s", rc, why);
    rc = run("junk.py", 20, why, sizeof(why), &took);
    CHECK(rc == -EPROTO && strstr(why, "junk.py: its output"), "rc %d: %s", rc, why);
    rc = run("empty.py", 20, why, sizeof(why), &took);
    CHECK(rc == -EPROTO && strstr(why, "no output"), "rc %d: %s", rc, why);
    rc = run("big.py", 20, why, sizeof(why), &took);
    CHECK(rc == -E2BIG, "rc %d: %s", rc, why);
    rc = run("slow.py", 1, why, sizeof(why), &took);
    CHECK(rc == -ETIMEDOUT && took < 3, "rc %d, %.1f s: %s", rc, took, why);
    rc = run("stubborn.py", 1, why, sizeof(why), &took);
    CHECK(rc == -ETIMEDOUT && took > 5 && took < 9, "rc %d, %.1f s: %s", rc, took, why);
    rc = run("linger_err.py", 20, why, sizeof(why), &took);
    CHECK(rc == 0 && took < 5, "rc %d, %.1f s: %s", rc, took, why);
    rc = run("linger_out.py", 20, why, sizeof(why), &took);
    CHECK(rc == 0 && took < 5, "rc %d, %.1f s: %s", rc, took, why);

    rc = run("missing.py", 20, why, sizeof(why), &took);
    CHECK(rc == -ENOENT, "rc %d: %s", rc, why);
    static const char *const names[] = {"../ok.py", "ok.sh", ".py", ".hidden.py",
                                        "a b.py",   "",      NULL};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        rc = bench_ray_run_in("python3", dir, names[i], 1, NULL, 20, &rows, why, sizeof(why));
        CHECK(rc == -EINVAL, "name '%s': rc %d", names[i] ? names[i] : "(null)", rc);
    }
    rc = bench_ray_run_in("python3", dir, "ok.py", 1, NULL, 0, &rows, why, sizeof(why));
    CHECK(rc == -EINVAL, "limit 0: rc %d", rc);
    rc = bench_ray_run_in("/nonexistent/python3", dir, "ok.py", 1, NULL, 20, &rows, why,
                          sizeof(why));
    CHECK(rc == -ENOENT && strstr(why, "cannot run"), "rc %d: %s", rc, why);

    /* bench_ray_available with a Python that is not there */
    setenv("REEL_BENCH_PYTHON", "/nonexistent/python3", 1);
    rc = bench_ray_available(why, sizeof(why));
    CHECK(rc == -ENOENT && strstr(why, "pip install -r"), "rc %d: %s", rc, why);
    /* with one that has no Ray: a shell that fails like a failed import */
    setenv("REEL_BENCH_PYTHON", "false", 1);
    rc = bench_ray_available(why, sizeof(why));
    CHECK(rc == -ENOENT && strstr(why, "Ray is not installed for false"), "rc %d: %s", rc, why);
    unsetenv("REEL_BENCH_PYTHON");
    rc = bench_ray_available(why, sizeof(why));
    printf("bench_ray_available: rc %d: %s\n", rc, why);
    CHECK(rc == 0 || rc == -ENOENT, "rc %d", rc);

    static const char *const all[] = {"ok.py",         "fail.py",       "junk.py",     "empty.py",
                                      "big.py",        "slow.py",       "stubborn.py", "killed.py",
                                      "linger_err.py", "linger_out.py", "argc.py",     "usage.py"};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        char path[128];
        snprintf(path, sizeof(path), "%s/%s", dir, all[i]);
        unlink(path);
    }
    rmdir(dir);
}

static void test_real(void) {
    static const char *const scripts[] = {"store.py", "actors.py", "pipeline.py"};
    char why[300];
    if (bench_ray_available(why, sizeof(why)) != 0) {
        printf("--real: skipped: %s\n", why);
        return;
    }
    for (size_t s = 0; s < 3; s++) {
        int rc = bench_ray_run(scripts[s], 1, NULL, &rows, why, sizeof(why));
        CHECK(rc == 0, "%s: rc %d: %s", scripts[s], rc, why);
        printf("%s\n", why);
        for (size_t i = 0; rc == 0 && i < rows.nnotes; i++)
            printf("  note: %s\n", rows.notes[i]);
        for (size_t i = 0; rc == 0 && i < rows.n; i++) {
            const bench_ray_row *r = &rows.rows[i];
            printf("  %-48s %-8s %12.4g", r->figure, r->unit, r->value);
            if (r->has_lat)
                printf("  p50 %10.1f us  p99 %10.1f us", r->p50_us, r->p99_us);
            printf("\n");
        }
    }
}

int main(int argc, char **argv) {
    test_good();
    test_malformed();
    test_truncations_and_mutations();
    test_find();
    test_runner();
    if (argc > 1 && strcmp(argv[1], "--real") == 0)
        test_real();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
