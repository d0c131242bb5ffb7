/* reel-bench store --spill: spill and restore throughput of the store beside
 * plain write() and read() of the same bytes to and from the same disk,
 * measured in the same run. */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <reel/store.h>

#include "gpu.h" /* the host-to-device timer, exported for tests and benchmarks */

#define OBJ (1u << 20)

typedef struct spill_round {
    double spill_gbps, restore_gbps, write_gbps, read_gbps;
    double hot_write_gbps, hot_read_gbps; /* through one 1 MiB buffer */
} spill_round;

static double gbps(uint64_t bytes, uint64_t ns) {
    return ns ? (double)bytes / (double)ns : 0;
}

/* write() then read() n blocks of OBJ bytes through one file in dir, from
 * and into mem + i * step: step OBJ moves the same bytes out of as much
 * memory as the store spills from and restores into; step 0 moves one
 * buffer that stays in the CPU's cache, which no store of n objects can. */
static int plain_io(const char *dir, uint8_t *mem, uint64_t step, uint64_t n, double *write_gbps,
                    double *read_gbps, bench_report *rep) {
    char path[256];
    snprintf(path, sizeof path, "%s/baseline", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        bench_report_error(rep, "cannot open %s: %s", path, strerror(errno));
        return -errno;
    }
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < n; i++)
        if (write(fd, mem + i * step, OBJ) != (ssize_t)OBJ) {
            bench_report_error(rep, "write %s: %s", path, strerror(errno));
            close(fd);
            unlink(path);
            return -EIO;
        }
    uint64_t t1 = bench_now_ns();
    for (uint64_t i = 0; i < n; i++)
        if (pread(fd, mem + i * step, OBJ, (off_t)(i * OBJ)) != (ssize_t)OBJ) {
            bench_report_error(rep, "read %s: %s", path, strerror(errno));
            close(fd);
            unlink(path);
            return -EIO;
        }
    uint64_t t2 = bench_now_ns();
    close(fd);
    unlink(path);
    *write_gbps = gbps(n * OBJ, t1 - t0);
    *read_gbps = gbps(n * OBJ, t2 - t1);
    return 0;
}

/* Fills a store with n objects (the bytes of buf), spills them all in one pass, reads them all
 * back with gets, and deletes them. */
static int store_io(reel_store *s, uint8_t *buf, uint64_t n, spill_round *r, bench_report *rep) {
    reel_id parent = {{0x5b}};
    for (uint64_t i = 0; i < n; i++) {
        reel_id id;
        reel_id_derive(&parent, i, &id);
        int rc = reel_obj_put(s, &id, buf + i * OBJ, OBJ, NULL, 0, 0, 0);
        if (rc) {
            bench_report_error(rep, "put: %s %s", reel_strerror(rc), reel_last_error());
            return rc;
        }
    }
    uint64_t spilled = 0, t0 = bench_now_ns();
    int rc = reel_store_spill(s, 0, &spilled);
    uint64_t t1 = bench_now_ns();
    if (rc == 0 && spilled < n * OBJ)
        rc = -EAGAIN;
    if (rc) {
        bench_report_error(rep, "spill: %s %s", reel_strerror(rc), reel_last_error());
        return rc;
    }
    uint64_t t2 = bench_now_ns();
    for (uint64_t i = 0; i < n && rc == 0; i++) {
        reel_id id;
        reel_id_derive(&parent, i, &id);
        reel_view v;
        rc = reel_obj_get(s, &id, 1, 0, &v);
        if (rc == 0)
            rc = reel_obj_release(s, &id);
    }
    uint64_t t3 = bench_now_ns();
    if (rc) {
        bench_report_error(rep, "restore: %s %s", reel_strerror(rc), reel_last_error());
        return rc;
    }
    for (uint64_t i = 0; i < n; i++) {
        reel_id id;
        reel_id_derive(&parent, i, &id);
        reel_obj_delete(s, &id);
    }
    r->spill_gbps = gbps(spilled, t1 - t0);
    r->restore_gbps = gbps(n * OBJ, t3 - t2);
    return 0;
}

/* On a machine with a GPU: host-to-device copies from the store's (pinned)
 * arena, beside pageable malloc memory and cudaMallocHost memory. */
static int gpu_rows(const bench_options *opts, bench_report *report) {
    if (reel_gpu_count() <= 0) {
        bench_report_note(report, "no GPU here: the host-to-device rows are left out (%s)",
                          reel_last_error()[0] ? reel_last_error() : "no device");
        return 0;
    }
    size_t len = opts->quick ? (16u << 20) : (64u << 20);
    int iters = opts->quick ? 5 : 20;
    char name[64];
    snprintf(name, sizeof name, "reel-bench-h2d-%d", (int)getpid());
    reel_store_options so = {.capacity = len + (4u << 20), .flags = REEL_STORE_NO_SPILL};
    reel_store *s;
    int rc = reel_store_create(name, &so, &s);
    if (rc) {
        bench_report_error(report, "h2d store: %s", reel_strerror(rc));
        return rc;
    }
    double store_gbps = 0, pageable_gbps = 0, pinned_gbps = 0;
    void *buf = NULL, *pinned = NULL;
    uint8_t *pageable = malloc(len);
    reel_id id = {{0x42}};
    rc = pageable ? reel_store_gpu_pin(s) : -ENOMEM;
    if (rc == 0)
        rc = reel_obj_create(s, &id, len, NULL, 0, 0, 0, &buf);
    if (rc == 0) {
        memset(buf, 7, len);
        memset(pageable, 7, len);
        rc = reel_obj_seal(s, &id);
    }
    if (rc == 0)
        rc = reel__gpu_h2d_bandwidth(buf, len, iters, &store_gbps);
    if (rc == 0)
        rc = reel__gpu_h2d_bandwidth(pageable, len, iters, &pageable_gbps);
    if (rc == 0)
        rc = reel__gpu_host_alloc(len, &pinned);
    if (rc == 0) {
        memset(pinned, 7, len);
        rc = reel__gpu_h2d_bandwidth(pinned, len, iters, &pinned_gbps);
        reel__gpu_host_free(pinned);
    }
    free(pageable);
    reel_store_close(s);
    reel_store_destroy(name);
    if (rc) {
        bench_report_error(report, "host-to-device: %s %s", reel_strerror(rc), reel_last_error());
        return rc;
    }
    char dev[128] = "";
    reel__gpu_device_name(0, dev, sizeof dev);
    bench_report_note(report, "GPU: %s; %zu MiB copies, %d each", dev, len >> 20, iters);
    const char *group = "host to device (GPU 0)";
    bench_row *row = bench_report_add(report, group, "H2D from store memory (pinned)", "GB/s",
                                      BENCH_RATE, store_gbps);
    if (row) {
        bench_row_baseline(row, "pageable malloc", pageable_gbps);
        bench_row_limit(row, "cudaMallocHost", pinned_gbps);
        bench_row_target(row, BENCH_ON_LIMIT, BENCH_GE, 0.9, ">= 0.9 x pinned");
    }
    return 0;
}

int bench_spill_run(const bench_options *opts, bench_report *report) {
    uint64_t total = opts->quick ? (64u << 20) : (256u << 20);
    uint64_t n = total / OBJ;
    int rounds = opts->quick ? 1 : 3;
    char dir[128], name[64];
    snprintf(dir, sizeof dir, "/var/tmp/reel-bench-spill-%d", (int)getpid());
    snprintf(name, sizeof name, "reel-bench-spill-%d", (int)getpid());
    reel_store_options so = {.capacity = total + (16u << 20), .spill_dir = dir, .high_water = 1.0};
    reel_store *s;
    int rc = reel_store_create(name, &so, &s);
    if (rc) {
        bench_report_error(report, "cannot create the store: %s %s", reel_strerror(rc),
                           reel_last_error());
        return rc;
    }
    reel_store_stats st;
    if (reel_store_stats_get(s, &st) == 0 && st.spill_dir_in_memory)
        bench_report_note(report,
                          "warning: %s is on tmpfs or ramfs: spilling there frees no memory", dir);
    uint8_t *buf = malloc(n * OBJ); /* the objects' bytes, one after another */
    if (!buf) {
        reel_store_close(s);
        reel_store_destroy(name);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n * OBJ; i++) /* touched and not all zeros */
        buf[i] = (uint8_t)(i * 131 + 7);
    spill_round best = {0};
    for (int k = 0; k < rounds && rc == 0; k++) {
        spill_round r = {0};
        /* Alternate which goes first, so both meet the same machine. */
        if (k % 2 == 0)
            rc = store_io(s, buf, n, &r, report);
        if (rc == 0)
            rc = plain_io(dir, buf, OBJ, n, &r.write_gbps, &r.read_gbps, report);
        if (rc == 0)
            rc = plain_io(dir, buf, 0, n, &r.hot_write_gbps, &r.hot_read_gbps, report);
        if (rc == 0 && k % 2 == 1)
            rc = store_io(s, buf, n, &r, report);
        if (r.spill_gbps > best.spill_gbps)
            best.spill_gbps = r.spill_gbps;
        if (r.restore_gbps > best.restore_gbps)
            best.restore_gbps = r.restore_gbps;
        if (r.write_gbps > best.write_gbps)
            best.write_gbps = r.write_gbps;
        if (r.read_gbps > best.read_gbps)
            best.read_gbps = r.read_gbps;
        if (r.hot_write_gbps > best.hot_write_gbps)
            best.hot_write_gbps = r.hot_write_gbps;
        if (r.hot_read_gbps > best.hot_read_gbps)
            best.hot_read_gbps = r.hot_read_gbps;
    }
    free(buf);
    reel_store_close(s);
    reel_store_destroy(name);
    if (rc)
        return rc;
    if ((rc = gpu_rows(opts, report)) != 0)
        return rc;
    const char *group = "spilling (1 MiB objects, one spill file per pass)";
    bench_report_note(
        report, "spill: %llu MiB through %s (page cache, no fsync on either side), best of %d",
        (unsigned long long)(total >> 20), dir, rounds);
    bench_row *row = bench_report_add(report, group, "spill (reel_store_spill)", "GB/s", BENCH_RATE,
                                      best.spill_gbps);
    if (row) {
        bench_row_baseline(row, "write() 1 MiB cached", best.hot_write_gbps);
        bench_row_limit(row, "write() same bytes", best.write_gbps);
        bench_row_target(row, BENCH_ON_LIMIT, BENCH_GE, 0.8, ">= 0.8 x write()");
    }
    row = bench_report_add(report, group, "restore (get of spilled)", "GB/s", BENCH_RATE,
                           best.restore_gbps);
    if (row) {
        bench_row_baseline(row, "read() 1 MiB cached", best.hot_read_gbps);
        bench_row_limit(row, "read() same bytes", best.read_gbps);
        bench_row_target(row, BENCH_ON_LIMIT, BENCH_GE, 0.8, ">= 0.8 x read()");
    }
    return 0;
}
