/* reel-inspect: runs the program ($REEL_INSPECT) on live stores and bad inputs. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <reel/store.h>

#include "helpers.h"

/* Everything a test creates, removed by ti_fini() even after a failed assert. */
#define TI_MAX_PATHS 8
static char ti_paths[TI_MAX_PATHS][128];
static int ti_npaths;
static reel_store *ti_store;

static void ti_init(void) {
    ti_npaths = 0;
    ti_store = NULL;
}

static void ti_fini(void) {
    if (ti_store)
        reel_store_close(ti_store);
    ti_store = NULL;
    for (int i = 0; i < ti_npaths; i++)
        if (reel_store_destroy(ti_paths[i]) != 0) /* and its spill directory */
            unlink(ti_paths[i]);
    ti_npaths = 0;
}

TestSuite(inspect, .init = ti_init, .fini = ti_fini, .timeout = 60);

/* A path nothing is at yet, unique to this process and call; removed by ti_fini(). */
static const char *ti_path(const char *tag) {
    static unsigned counter;
    uint32_t r = 0;
    cr_assert_lt(ti_npaths, TI_MAX_PATHS);
    cr_assert_eq(getrandom(&r, sizeof r, 0), (ssize_t)sizeof r);
    char *p = ti_paths[ti_npaths++];
    /* In the private directory, where a bare name is looked for. */
    snprintf(p, sizeof ti_paths[0], "%s/reel-test-inspect-%s-%ld-%u-%08x", th_private_dir(), tag,
             (long)getpid(), counter++, r);
    return p;
}

static reel_store *ti_store_new(const char *path) {
    reel_store_options opts;
    memset(&opts, 0, sizeof opts);
    opts.capacity = 4u << 20;
    opts.max_objects = 256;
    opts.max_clients = 8;
    opts.flags = REEL_STORE_NO_PREFAULT;
    reel_store *s = NULL;
    int rc = reel_store_create(path, &opts, &s);
    cr_assert_eq(rc, 0, "reel_store_create(%s): %s (%s)", path, reel_strerror(rc),
                 reel_last_error());
    return s;
}

static reel_id ti_put(reel_store *s, uint64_t size, uint32_t kind) {
    reel_id id;
    cr_assert_eq(reel_id_random(&id), 0);
    uint8_t meta[256];
    size_t len = 0;
    reel_meta m;
    memset(&m, 0, sizeof m);
    m.kind = kind;
    if (kind == REEL_META_TENSOR) {
        m.dtype = REEL_DTYPE_F32;
        m.ndim = 3;
        m.shape[0] = 3;
        m.shape[1] = 4;
        m.shape[2] = 5;
    }
    cr_assert_eq(reel_meta_encode(&m, meta, sizeof meta, &len), 0);
    void *data = calloc(1, size ? size : 1);
    cr_assert_not_null(data);
    int rc = reel_obj_put(s, &id, data, size, meta, (uint32_t)len, 0, 0);
    cr_assert_eq(rc, 0, "reel_obj_put: %s (%s)", reel_strerror(rc), reel_last_error());
    free(data);
    return id;
}

static void ti_hex(const reel_id *id, char hex[REEL_ID_HEX_LEN + 1]) {
    reel_id_to_hex(id, hex);
}

Test(inspect, json_lists_live_objects) {
    const char *path = ti_path("live");
    ti_store = ti_store_new(path);
    reel_id a = ti_put(ti_store, 1000, REEL_META_BYTES);
    reel_id b = ti_put(ti_store, 60 * 1024, REEL_META_TENSOR);
    reel_id c;
    void *buf;
    cr_assert_eq(reel_id_random(&c), 0);
    cr_assert_eq(reel_obj_create(ti_store, &c, 4096, NULL, 0, 0, 0, &buf), 0);
    char ha[33], hb[33], hc[33];
    ti_hex(&a, ha);
    ti_hex(&b, hb);
    ti_hex(&c, hc);

    th_result r = th_run_inspect(NULL, (const char *[]){"--json", "--limit", "0", path, NULL});
    cr_assert_eq(r.signal, 0);
    cr_assert_eq(r.code, 0, "exit %d; stderr: %s", r.code, r.err);
    cr_assert_str_empty(r.err);
    cr_assert_eq(r.out[0], '{', "not a JSON object: %s", r.out);
    cr_assert_eq(th_count(r.out, "\n"), 1, "not one line: %s", r.out);
    cr_assert_neq(strstr(r.out, "\"summary\":{"), NULL);
    cr_assert_neq(strstr(r.out, "\"clients\":["), NULL);
    cr_assert_neq(strstr(r.out, "\"objects\":["), NULL);
    cr_assert_neq(strstr(r.out, ha), NULL, "object %s missing: %s", ha, r.out);
    cr_assert_neq(strstr(r.out, hb), NULL, "object %s missing: %s", hb, r.out);
    cr_assert_neq(strstr(r.out, hc), NULL, "object %s missing: %s", hc, r.out);
    cr_assert_neq(strstr(r.out, "\"objects\":3,"), NULL, "%s", r.out);
    cr_assert_neq(strstr(r.out, "tensor f32[3,4,5]"), NULL, "%s", r.out);
    cr_assert_neq(strstr(r.out, "\"state\":\"unsealed\""), NULL, "%s", r.out);
    /* this process is the one client; reel-inspect took no slot */
    cr_assert_neq(strstr(r.out, "\"clients_alive\":1,"), NULL, "%s", r.out);
    th_result_free(&r);

    r = th_run_inspect(NULL, (const char *[]){"--json", "--state", "unsealed", path, NULL});
    cr_assert_eq(r.code, 0, "stderr: %s", r.err);
    cr_assert_neq(strstr(r.out, hc), NULL, "%s", r.out);
    cr_assert_eq(strstr(r.out, ha), NULL, "%s", r.out);
    cr_assert_eq(strstr(r.out, hb), NULL, "%s", r.out);
    th_result_free(&r);

    r = th_run_inspect(NULL, (const char *[]){"--json", "--min-size", "8K", path, NULL});
    cr_assert_eq(r.code, 0, "stderr: %s", r.err);
    cr_assert_neq(strstr(r.out, hb), NULL, "%s", r.out);
    cr_assert_eq(strstr(r.out, ha), NULL, "%s", r.out);
    cr_assert_eq(strstr(r.out, hc), NULL, "%s", r.out);
    th_result_free(&r);

    r = th_run_inspect(NULL, (const char *[]){"--json", "--no-objects", path, NULL});
    cr_assert_eq(r.code, 0, "stderr: %s", r.err);
    cr_assert_eq(strstr(r.out, "\"objects\":["), NULL, "%s", r.out);
    th_result_free(&r);

    r = th_run_inspect(NULL, (const char *[]){"--limit", "1", "--sort", "size", path, NULL});
    cr_assert_eq(r.code, 0, "stderr: %s", r.err);
    cr_assert_neq(strstr(r.out, hb), NULL, "the largest object is not listed first: %s", r.out);
    cr_assert_eq(strstr(r.out, ha), NULL, "%s", r.out);
    th_result_free(&r);
}

Test(inspect, table_by_name) {
    const char *path = ti_path("name");
    ti_store = ti_store_new(path);
    reel_id a = ti_put(ti_store, 123, REEL_META_BYTES);
    char ha[33];
    ti_hex(&a, ha);
    th_result r = th_run_inspect(NULL, (const char *[]){strrchr(path, '/') + 1, NULL});
    cr_assert_eq(r.code, 0, "stderr: %s", r.err);
    cr_assert_neq(strstr(r.out, path), NULL, "%s", r.out);
    cr_assert_neq(strstr(r.out, ha), NULL, "%s", r.out);
    cr_assert_str_empty(r.err);
    th_result_free(&r);
}

static int ti_dead_client(const char *path, const reel_id *id) {
    reel_store *s;
    reel_view v;
    if (reel_store_open(path, 0, &s) != 0)
        return 1;
    if (reel_obj_get(s, id, 1, 1000, &v) != 0)
        return 2;
    return 0; /* exits holding a client slot and a reference */
}

Test(inspect, reclaim_dead_client) {
    const char *path = ti_path("dead");
    ti_store = ti_store_new(path);
    reel_id a = ti_put(ti_store, 4096, REEL_META_BYTES);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0)
        _exit(ti_dead_client(path, &a));
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child failed: %d", status);

    th_result r = th_run_inspect(NULL, (const char *[]){"--reclaim", "--json", path, NULL});
    cr_assert_eq(r.code, 0, "stderr: %s", r.err);
    cr_assert_neq(strstr(r.out, "\"reclaimed\":1,"), NULL, "%s", r.out);
    cr_assert_neq(strstr(r.out, "\"clients_dead\":0,"), NULL, "%s", r.out);
    th_result_free(&r);
}

Test(inspect, watch_stops_on_sigint) {
    const char *path = ti_path("watch");
    ti_store = ti_store_new(path);
    ti_put(ti_store, 100, REEL_META_BYTES);
    th_when interrupt = {.ms = 900}; /* no fn: SIGINT after 900 ms */
    th_result r =
        th_run_inspect(&interrupt, (const char *[]){"--watch", "0.2", "--json", path, NULL});
    cr_assert_eq(r.signal, 0, "killed by signal %d", r.signal);
    cr_assert_eq(r.code, 0, "stderr: %s", r.err);
    cr_assert_geq(th_count(r.out, "\"time_ns\""), 2, "fewer than two refreshes: %s", r.out);
    cr_assert_eq(th_count(r.out, "\"time_ns\""), th_count(r.out, "\n"), "%s", r.out);
    th_result_free(&r);
}

Test(inspect, missing_store) {
    const char *path = ti_path("missing");
    th_result r = th_run_inspect(NULL, (const char *[]){path, NULL});
    th_assert_one_error_line(&r, 1, "reel-inspect: ", "missing store");
    cr_assert_neq(strstr(r.err, path), NULL, "the error does not name the path: %s", r.err);
    th_result_free(&r);
}

Test(inspect, random_bytes_file) {
    const char *path = ti_path("random");
    static uint8_t junk[256 * 1024];
    for (size_t i = 0; i < sizeof junk; i += 256)
        cr_assert_eq(getrandom(junk + i, 256, 0), 256);
    th_write_file(path, junk, sizeof junk);
    th_result r = th_run_inspect(NULL, (const char *[]){path, NULL});
    th_assert_one_error_line(&r, 1, "reel-inspect: ", "random bytes");
    th_result_free(&r);
}

Test(inspect, empty_and_truncated_files) {
    const char *empty = ti_path("empty");
    th_write_file(empty, "", 0);
    th_result r = th_run_inspect(NULL, (const char *[]){empty, NULL});
    th_assert_one_error_line(&r, 1, "reel-inspect: ", "empty file");
    th_result_free(&r);

    /* The first 4 KiB of a real store: a valid header, the rest missing. */
    const char *real = ti_path("real");
    ti_store = ti_store_new(real);
    int fd = open(real, O_RDONLY);
    cr_assert_geq(fd, 0);
    static uint8_t head[4096];
    cr_assert_eq(pread(fd, head, sizeof head, 0), (ssize_t)sizeof head);
    close(fd);
    const char *cut = ti_path("cut");
    th_write_file(cut, head, sizeof head);
    r = th_run_inspect(NULL, (const char *[]){cut, "--json", NULL});
    th_assert_one_error_line(&r, 1, "reel-inspect: ", "truncated store");
    th_result_free(&r);
}

/* Copies of a real store with bytes flipped in its first 64 KiB (header and
 * tables): reel-inspect must end with 0 or 1, never by a signal or a hang. */
Test(inspect, corrupt_copies_never_crash, .timeout = 240) {
    const char *real = ti_path("orig");
    ti_store = ti_store_new(real);
    for (int i = 0; i < 6; i++)
        ti_put(ti_store, 1000u * (unsigned)(i + 1), (uint32_t)(i % 4));
    void *buf;
    reel_id u;
    cr_assert_eq(reel_id_random(&u), 0);
    cr_assert_eq(reel_obj_create(ti_store, &u, 512, NULL, 0, 0, 0, &buf), 0);

    int fd = open(real, O_RDONLY);
    cr_assert_geq(fd, 0);
    struct stat st;
    cr_assert_eq(fstat(fd, &st), 0);
    size_t size = (size_t)st.st_size;
    uint8_t *orig = malloc(size), *copy = malloc(size);
    cr_assert(orig && copy);
    cr_assert_eq(pread(fd, orig, size, 0), (ssize_t)size);
    close(fd);

    size_t span = size < 65536 ? size : 65536;
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    const char *bad = ti_path("bad");
    for (int round = 0; round < 40; round++) {
        memcpy(copy, orig, size);
        int flips = 1 + round % 8;
        for (int k = 0; k < flips; k++) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            size_t at = (size_t)(seed % span);
            copy[at] ^= (uint8_t)(seed >> 56 | 1);
        }
        unlink(bad);
        th_write_file(bad, copy, size);
        th_result r = th_run_inspect(NULL, (const char *[]){"--json", "--limit", "0", bad, NULL});
        cr_assert_eq(r.signal, 0, "round %d: killed by signal %d; stderr: %s", round, r.signal,
                     r.err);
        cr_assert(r.code == 0 || r.code == 1, "round %d: exit %d", round, r.code);
        if (r.code == 1)
            th_assert_one_error_line(&r, 1, "reel-inspect: ", "corrupt store");
        th_result_free(&r);
    }
    free(orig);
    free(copy);
}

/* The store's high mark is shown beside used: in the table on the used line,
 * in JSON as peak_used (bytes), after the objects that made it are gone. */
Test(inspect, peak_use_is_shown_beside_used) {
    const char *path = ti_path("peak");
    ti_store = ti_store_new(path);
    reel_id big = ti_put(ti_store, 1u << 20, REEL_META_BYTES);
    cr_assert_eq(reel_obj_delete(ti_store, &big), 0);
    (void)ti_put(ti_store, 1000, REEL_META_BYTES);
    reel_store_stats st;
    cr_assert_eq(reel_store_stats_get(ti_store, &st), 0);
    cr_assert_gt(st.peak_used, 1u << 20);
    cr_assert_lt(st.used, st.peak_used);

    th_result r = th_run_inspect(NULL, (const char *[]){"--json", path, NULL});
    cr_assert_eq(r.code, 0, "stderr: %s", r.err);
    char want[64];
    snprintf(want, sizeof want, "\"peak_used\":%llu,", (unsigned long long)st.peak_used);
    cr_assert_neq(strstr(r.out, want), NULL, "no %s in %s", want, r.out);
    th_result_free(&r);

    r = th_run_inspect(NULL, (const char *[]){path, NULL});
    cr_assert_eq(r.code, 0, "stderr: %s", r.err);
    const char *line = strstr(r.out, "\nused ");
    cr_assert_not_null(line, "no used line: %s", r.out);
    const char *end = strchr(line + 1, '\n');
    const char *peak = strstr(line, ", peak 1.0");
    cr_assert(peak && (!end || peak < end), "no peak of about 1 MiB on the used line: %s", r.out);
    th_result_free(&r);
}

Test(inspect, bad_arguments) {
    const char *path = ti_path("args");
    ti_store = ti_store_new(path);
    static const char *const cases[][3] = {
        {"--bogus", NULL, NULL},    {"--limit", "x", NULL},      {"--limit", "-1", NULL},
        {"--watch", "0", NULL},     {"--watch", "-1", NULL},     {"--watch", "abc", NULL},
        {"--sort", "colour", NULL}, {"--state", "weird", NULL},  {"--min-size", "12Q", NULL},
        {"--min-size", "", NULL},   {"--json=yes", NULL, NULL},  {"--limit", NULL, NULL},
        {"-x", NULL, NULL},         {"--min-size", "1.5", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        th_result r =
            th_run_inspect(NULL, (const char *[]){cases[i][0], cases[i][1] ? cases[i][1] : path,
                                                  cases[i][1] ? path : NULL, NULL});
        char what[64];
        snprintf(what, sizeof what, "%s %s", cases[i][0], cases[i][1] ? cases[i][1] : "");
        th_assert_one_error_line(&r, 2, "reel-inspect: ", what);
        th_result_free(&r);
    }
    th_result r = th_run_inspect(NULL, (const char *[]){NULL});
    th_assert_one_error_line(&r, 2, "reel-inspect: ", "no store");
    th_result_free(&r);
    r = th_run_inspect(NULL, (const char *[]){path, path, NULL});
    th_assert_one_error_line(&r, 2, "reel-inspect: ", "two stores");
    th_result_free(&r);
}

Test(inspect, help) {
    th_result r = th_run_inspect(NULL, (const char *[]){"--help", NULL});
    cr_assert_eq(r.code, 0);
    cr_assert_neq(strstr(r.out, "usage: reel-inspect"), NULL, "%s", r.out);
    cr_assert_str_empty(r.err);
    th_result_free(&r);
}
