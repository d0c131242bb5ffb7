/* Resources and placement (scheduler/placement.h): CPU packing, whole and
 * fractional; fractional GPUs packed best fit onto hand-built nodes (no GPU
 * is needed); whole-GPU workers; refusals that name the stage and what is
 * missing; detection on this machine; cgroup files; and a placement applied
 * in a forked child. */
#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "helpers.h"
#include "placement.h"
#include "reel/store.h"

TestSuite(placement, .init = th_init, .fini = th_fini, .timeout = 30);

#define GIB  (1024ull * 1024 * 1024)
#define MAXW 64

static reel_node node_of(uint32_t cpus, double pct, uint32_t gpus) {
    reel_node n;
    TH_OK(reel__node_set(cpus, pct, 64 * GIB, gpus, NULL, &n));
    return n;
}

static reel_placement_stage st(const char *name, double cpus, double gpus, uint32_t workers) {
    return (reel_placement_stage){
        .name = name, .cpus = cpus, .gpus = gpus, .memory = 0, .workers = workers};
}

/* Places, asserting success; returns the worker count. */
static uint32_t place(const reel_placement_stage *s, uint32_t n, const reel_node *node,
                      reel_worker_placement *out) {
    uint32_t got = 0;
    TH_OK(reel__place(s, n, node, out, MAXW, &got));
    return got;
}

static const char *cpus_of(const reel_worker_placement *p) {
    static char buf[8][64];
    static int next;
    char *b = buf[next++ % 8];
    reel__cpuset_format(&p->cpus, b, 64);
    return b;
}

/* Expects a refusal with this code and exactly this sentence. */
static void refused(const reel_placement_stage *s, uint32_t n, const reel_node *node, int want,
                    const char *msg) {
    reel_worker_placement out[MAXW];
    uint32_t got = 0;
    TH_RC(reel__place(s, n, node, out, MAXW, &got), want);
    if (msg)
        cr_expect_str_eq(reel_last_error(), msg);
}

/* ---- CPUs
 * ---------------------------------------------------------------------------------------- */

Test(placement, whole_cpus_round_robin) {
    reel_node node = node_of(4, 1.0, 0);
    reel_placement_stage s[] = {st("read", 1, 0, 2), st("decode", 2, 0, 1)};
    reel_worker_placement out[MAXW];
    cr_assert_eq(place(s, 2, &node, out), 3);
    cr_expect_eq(out[0].stage, 0);
    cr_expect_eq(out[1].worker, 1);
    cr_expect_eq(out[2].stage, 1);
    cr_expect_eq(out[2].worker, 0);
    cr_expect_str_eq(cpus_of(&out[0]), "0");
    cr_expect_str_eq(cpus_of(&out[1]), "1");
    cr_expect_str_eq(cpus_of(&out[2]), "2-3");
    cr_expect_eq(out[2].n_cpus, 2);
    for (int i = 0; i < 3; i++) {
        cr_expect_eq(out[i].gpu, -1);
        cr_expect_eq(out[i].n_gpus, 0);
        cr_expect_str_eq(out[i].cuda_visible_devices, "", "a CPU worker sees no GPU");
    }
}

Test(placement, fractional_cpus_share_one) {
    reel_node node = node_of(3, 1.0, 0);
    /* 4 x 0.25 fill CPU 0; the fifth opens CPU 1; 0.5 fits beside it; then
     * a whole CPU skips the partly used one. */
    reel_placement_stage s[] = {st("filter", 0.25, 0, 5), st("meta", 0.5, 0, 1),
                                st("write", 1, 0, 1)};
    reel_worker_placement out[MAXW];
    cr_assert_eq(place(s, 3, &node, out), 7);
    for (int i = 0; i < 4; i++)
        cr_expect_str_eq(cpus_of(&out[i]), "0", "worker %d", i);
    cr_expect_str_eq(cpus_of(&out[4]), "1");
    cr_expect_str_eq(cpus_of(&out[5]), "1");
    cr_expect_str_eq(cpus_of(&out[6]), "2");
}

Test(placement, partial_cpu_request_rounds_up_and_wraps) {
    reel_node node = node_of(2, 1.0, 0);
    reel_placement_stage s[] = {st("split", 1.5, 0, 1), st("meta", 0.5, 0, 1)};
    reel_worker_placement out[MAXW];
    cr_assert_eq(place(s, 2, &node, out), 2);
    cr_expect_str_eq(cpus_of(&out[0]), "0-1", "1.5 CPUs get 2 whole CPUs");
    cr_expect_str_eq(cpus_of(&out[1]), "0", "the cursor wraps around");
}

Test(placement, gpu_worker_without_cpus_is_not_pinned) {
    reel_node node = node_of(4, 1.0, 1);
    reel_placement_stage s[] = {st("embed", 0, 1, 1)};
    reel_worker_placement out[MAXW];
    cr_assert_eq(place(s, 1, &node, out), 1);
    cr_expect_str_eq(cpus_of(&out[0]), "0-3");
    cr_expect_str_eq(out[0].cuda_visible_devices, "0");
}

Test(placement, zero_workers_and_buffer_size) {
    reel_node node = node_of(4, 1.0, 0);
    reel_placement_stage s[] = {st("a", 1, 0, 0), st("b", 1, 0, 3)};
    uint32_t n = 0;
    TH_RC(reel__place(s, 2, &node, NULL, 0, &n), -ENOBUFS);
    cr_expect_eq(n, 3, "the count comes back so that the caller can size out");
    reel_worker_placement out[3];
    TH_OK(reel__place(s, 2, &node, out, 3, &n));
    cr_expect_eq(out[0].stage, 1);
    cr_expect_str_eq(cpus_of(&out[2]), "2");
}

/* ---- GPUs
 * ---------------------------------------------------------------------------------------- */

Test(placement, quarter_gpus_fill_one_device_then_the_next) {
    reel_node node = node_of(16, 1.0, 2);
    reel_placement_stage s[] = {st("embed", 1, 0.25, 8)};
    reel_worker_placement out[MAXW];
    cr_assert_eq(place(s, 1, &node, out), 8);
    for (int i = 0; i < 8; i++) {
        cr_expect_eq(out[i].gpu, i < 4 ? 0 : 1, "worker %d", i);
        cr_expect_eq(out[i].n_gpus, 1);
        cr_expect_float_eq(out[i].gpu_share, 0.25, 1e-12);
        cr_expect_str_eq(out[i].cuda_visible_devices, i < 4 ? "0" : "1", "worker %d", i);
    }
}

/* Places the stages on a node of 8 CPUs and gpus GPUs, and expects each
 * worker's device in want[]. */
static void expect_devices(const reel_placement_stage *s, uint32_t n, uint32_t gpus,
                           const int *want, uint32_t workers) {
    reel_node node = node_of(8, 1.0, gpus);
    reel_worker_placement out[MAXW];
    cr_assert_eq(place(s, n, &node, out), workers);
    for (uint32_t i = 0; i < workers; i++)
        cr_expect_eq(out[i].gpu, want[i], "worker %u: device %d, want %d", i, out[i].gpu, want[i]);
}

Test(placement, half_gpu_goes_beside_a_half_before_an_empty_device) {
    /* Best fit: after a's 0.5, device 0 has exactly 0.5 left for c. */
    reel_placement_stage s[] = {st("a", 1, 0.5, 1), st("b", 1, 0.25, 1), st("c", 1, 0.5, 1)};
    expect_devices(s, 3, 2, (const int[]){0, 1, 0}, 3);
}

Test(placement, largest_requests_are_packed_first) {
    /* In stage order 0.25 and 0.5 would go to device 0, the second 0.5 to
     * device 1, and 0.75 would fit nowhere. */
    reel_placement_stage s[] = {st("a", 1, 0.25, 1), st("b", 1, 0.5, 2), st("c", 1, 0.75, 1)};
    expect_devices(s, 3, 2, (const int[]){0, 1, 1, 0}, 4);
}

Test(placement, tenths_fill_a_device_exactly) {
    reel_placement_stage s[] = {st("a", 0.5, 0.1, 10)};
    expect_devices(s, 1, 1, (const int[]){0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 10);
}

Test(placement, whole_gpus) {
    reel_node node = node_of(16, 1.0, 4);
    reel_placement_stage s[] = {st("small", 1, 0.5, 1), st("big", 1, 2, 1), st("one", 1, 1, 1)};
    reel_worker_placement out[MAXW];
    cr_assert_eq(place(s, 3, &node, out), 3);
    cr_expect_eq(out[1].gpu, 0);
    cr_expect_eq(out[1].n_gpus, 2);
    cr_expect_str_eq(out[1].cuda_visible_devices, "0,1");
    cr_expect_float_eq(out[1].gpu_share, 1.0, 1e-12);
    cr_expect_eq(out[2].gpu, 2);
    cr_expect_str_eq(out[2].cuda_visible_devices, "2");
    cr_expect_eq(out[0].gpu, 3, "the half takes what the whole workers left");
}

Test(placement, gpu_names_follow_the_node) {
    /* A driver started with CUDA_VISIBLE_DEVICES=GPU-aaa,GPU-bbb: its
     * ordinals 0 and 1 are those devices for the workers too. */
    reel_node node = node_of(4, 1.0, 2);
    snprintf(node.gpu_id[0], sizeof node.gpu_id[0], "GPU-aaa");
    snprintf(node.gpu_id[1], sizeof node.gpu_id[1], "GPU-bbb");
    reel_placement_stage s[] = {st("a", 1, 2, 1)};
    reel_worker_placement out[MAXW];
    cr_assert_eq(place(s, 1, &node, out), 1);
    cr_expect_str_eq(out[0].cuda_visible_devices, "GPU-aaa,GPU-bbb");
}

/* ---- refusals
 * ------------------------------------------------------------------------------------- */

Test(placement, refuses_gpu_stage_without_gpu) {
    reel_node node = node_of(8, 0.95, 0);
    reel_placement_stage s[] = {st("decode", 1, 0, 2), st("transcode", 1, 0.25, 1)};
    refused(s, 2, &node, -ENODEV, "stage transcode needs a GPU and this node has none");
}

Test(placement, refuses_too_many_cpus) {
    reel_node node = node_of(2, 0.95, 0);
    reel_placement_stage s[] = {st("decode", 2, 0, 4)};
    refused(s, 1, &node, -ENOSPC,
            "stage decode: 4 workers x 2.0 CPUs = 8.0 CPUs, the node has 1.9 (2 CPUs x 0.95)");
    reel_node big = node_of(10, 0.95, 0);
    reel_placement_stage two[] = {st("read", 1, 0, 3), st("decode", 2, 0, 4)};
    refused(two, 2, &big, -ENOSPC,
            "stage decode: 4 workers x 2.0 CPUs = 8.0 CPUs on top of 3.0 CPUs for the stages "
            "before it, the node has 9.5 (10 CPUs x 0.95)");
    /* 2 x 0.95 is just short of 2 whole CPUs. */
    reel_placement_stage one[] = {st("a", 1, 0, 2)};
    refused(one, 1, &node, -ENOSPC,
            "stage a: 2 workers x 1.0 CPUs = 2.0 CPUs, the node has 1.9 (2 CPUs x 0.95)");
    reel_placement_stage frac[] = {st("a", 0.95, 0, 2)};
    reel_worker_placement out[MAXW];
    cr_expect_eq(place(frac, 1, &node, out), 2, "exactly the node's 1.9 fits");
}

Test(placement, refuses_too_much_memory) {
    reel_node node;
    TH_OK(reel__node_set(16, 1.0, 6 * GIB, 0, NULL, &node));
    reel_placement_stage s[] = {st("read", 1, 0, 1), st("decode", 1, 0, 4)};
    s[0].memory = 1 * GIB;
    s[1].memory = 2 * GIB;
    refused(s, 2, &node, -ENOSPC,
            "stage decode: 4 workers x 2.0 GiB = 8.0 GiB of memory on top of 1.0 GiB for the "
            "stages before it, the node has 6.0 GiB");
    s[1].workers = 2;
    reel_worker_placement out[MAXW];
    cr_expect_eq(place(s, 2, &node, out), 3);
    s[1].memory = UINT64_MAX / 2;
    s[1].workers = 3;
    refused(s, 2, &node, -ENOSPC, NULL);
    cr_expect(strstr(reel_last_error(), "more than 16 EiB"), "%s", reel_last_error());
}

Test(placement, refuses_too_many_gpus) {
    reel_node node = node_of(16, 1.0, 2);
    reel_placement_stage s[] = {st("caption", 1, 0.5, 2), st("embed", 1, 1, 2)};
    refused(s, 2, &node, -ENOSPC,
            "stage embed: 2 workers x 1.0 GPUs = 2.0 GPUs on top of 1.0 GPUs for the stages "
            "before it, the node has 2 GPUs");
}

Test(placement, refuses_fractions_that_do_not_pack) {
    reel_node node = node_of(16, 1.0, 2);
    reel_placement_stage s[] = {st("embed", 1, 0.6, 3)};
    refused(s, 1, &node, -ENOSPC,
            "stage embed: worker 3 of 3 needs 0.6 of one GPU, and no device has that much free "
            "once the larger requests are placed (the most is 0.4); a worker with less than "
            "one GPU cannot span devices");
}

Test(placement, refuses_bad_requests) {
    reel_node node = node_of(4, 1.0, 2);
    reel_placement_stage s[] = {st("a", 1, 1.5, 1)};
    refused(s, 1, &node, -EINVAL, NULL);
    cr_expect(strstr(reel_last_error(), "whole number"), "%s", reel_last_error());
    s[0] = st("a", NAN, 0, 1);
    refused(s, 1, &node, -EINVAL, NULL);
    s[0] = st("a", -1, 0, 1);
    refused(s, 1, &node, -EINVAL, NULL);
    s[0] = st("a", 0, 0, 1);
    refused(s, 1, &node, -EINVAL, "stage a asks for neither CPUs nor GPUs");
    s[0] = st("", 1, 0, 1);
    refused(s, 1, &node, -EINVAL, NULL);
    s[0] = st(NULL, 1, 0, 1);
    refused(s, 1, &node, -EINVAL, NULL);
    s[0] = st("a", 1, 0, REEL_PLACEMENT_MAX_WORKERS + 1);
    refused(s, 1, &node, -EINVAL, NULL);
    refused(s, 0, &node, -EINVAL, NULL);
    uint32_t n;
    TH_RC(reel__place(s, 1, NULL, NULL, 0, &n), -EINVAL);
    reel_node bad = node;
    CPU_ZERO(&bad.cpu_set);
    s[0] = st("a", 1, 0, 1);
    refused(s, 1, &bad, -EINVAL, NULL);
}

/* ---- nodes
 * ---------------------------------------------------------------------------------------- */

Test(placement, node_set) {
    uint64_t mem[2] = {80 * GIB, 40 * GIB};
    reel_node n;
    TH_OK(reel__node_set(8, 0.5, 32 * GIB, 2, mem, &n));
    cr_expect_eq(n.n_cpus, 8);
    cr_expect_float_eq(n.cpus, 4.0, 1e-12);
    cr_expect_eq(n.memory, 32 * GIB);
    cr_expect_eq(n.n_gpus, 2);
    cr_expect_eq(n.gpu_memory[1], 40 * GIB);
    cr_expect_str_eq(n.gpu_id[1], "1");
    TH_RC(reel__node_set(0, 1, GIB, 0, NULL, &n), -EINVAL);
    TH_RC(reel__node_set(2, 0, GIB, 0, NULL, &n), -EINVAL);
    TH_RC(reel__node_set(2, 1.01, GIB, 0, NULL, &n), -EINVAL);
    TH_RC(reel__node_set(2, 1, 0, 0, NULL, &n), -EINVAL);
    TH_RC(reel__node_set(2, 1, GIB, REEL_NODE_MAX_GPUS + 1, NULL, &n), -EINVAL);
}

Test(placement, detect_this_machine) {
    reel_node n, half;
    TH_OK(reel__node_detect(0.95, &n));
    cpu_set_t mine;
    CPU_ZERO(&mine);
    cr_assert_eq(sched_getaffinity(0, sizeof mine, &mine), 0);
    cr_expect_geq(n.n_cpus, 1);
    cr_expect_eq(n.n_cpus, (uint32_t)CPU_COUNT(&mine));
    cr_expect(CPU_EQUAL(&n.cpu_set, &mine));
    double base = n.cpu_quota > 0 && n.cpu_quota < n.n_cpus ? n.cpu_quota : n.n_cpus;
    cr_expect_float_eq(n.cpus, base * 0.95, 1e-9);
    cr_expect_gt(n.memory, 0);
    int gpus = reel_gpu_count();
    cr_expect_eq(n.n_gpus,
                 (uint32_t)(gpus > (int)REEL_NODE_MAX_GPUS ? (int)REEL_NODE_MAX_GPUS : gpus));
    for (uint32_t i = 0; i < n.n_gpus; i++)
        cr_expect_neq(n.gpu_id[i][0], '\0');
    TH_OK(reel__node_detect(0.5, &half));
    cr_expect_float_eq(half.cpus, base * 0.5, 1e-9);
    cr_log_info("detected: %u CPUs (cgroup quota %.2f) -> %.2f usable at 0.95, %.1f GiB, %u GPUs",
                n.n_cpus, n.cpu_quota, n.cpus, (double)n.memory / GIB, n.n_gpus);
    TH_RC(reel__node_detect(0, &n), -EINVAL);
    TH_RC(reel__node_detect(1.5, &n), -EINVAL);
    TH_RC(reel__node_detect(NAN, &n), -EINVAL);
    TH_RC(reel__node_detect(0.95, NULL), -EINVAL);
}

/* GPUs are counted in a child, reaped before detection returns: the caller
 * has no child left and never loads the CUDA driver, so it may fork workers
 * that use the GPU afterwards. Without the GPUs, nothing is forked. */
Test(placement, detection_counts_gpus_in_a_child_and_leaves_no_trace) {
    reel_node n, cpus_only;
    TH_OK(reel__node_detect(0.95, &n));
    errno = 0;
    cr_expect_eq(waitpid(-1, NULL, WNOHANG), -1, "a child is left");
    cr_expect_eq(errno, ECHILD);
    void *drv = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
    cr_expect_null(drv, "the CUDA driver was loaded into the caller");
    if (drv)
        dlclose(drv);
    TH_OK(reel__node_detect_cpus(0.95, &cpus_only));
    cr_expect_eq(cpus_only.n_gpus, 0);
    cr_expect(CPU_EQUAL(&cpus_only.cpu_set, &n.cpu_set));
    cr_expect_float_eq(cpus_only.cpus, n.cpus, 1e-9);
    TH_RC(reel__node_detect_cpus(0, &cpus_only), -EINVAL);
}

static void write_file(const char *dir, const char *name, const char *text) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert(f, "%s", path);
    fputs(text, f);
    fclose(f);
}

static void remove_dir(const char *dir) {
    static const char *const names[] = {"cpu.max",
                                        "memory.max",
                                        "memory.current",
                                        "cpu.cfs_quota_us",
                                        "cpu.cfs_period_us",
                                        "memory.limit_in_bytes",
                                        "memory.usage_in_bytes"};
    char path[512];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
}

/* Reads dir's limits and expects these. */
static void expect_limits(const char *dir, double want_cpus, uint64_t want_mem, const char *why) {
    double cpus = -1;
    uint64_t mem = 1;
    TH_OK(reel__cgroup_limits(dir, &cpus, &mem));
    cr_expect_float_eq(cpus, want_cpus, 1e-12, "%s: CPUs %g", why, cpus);
    cr_expect_eq(mem, want_mem, "%s: memory %llu", why, (unsigned long long)mem);
}

Test(placement, cgroup_files) {
    char dir[] = "/tmp/reel-placement-XXXXXX";
    cr_assert(mkdtemp(dir));
    expect_limits(dir, 0, UINT64_MAX, "no files: no limit");
    write_file(dir, "cpu.max", "150000 100000\n");
    write_file(dir, "memory.max", "1000000\n");
    write_file(dir, "memory.current", "400000\n");
    expect_limits(dir, 1.5, 600000, "v2 limits");
    write_file(dir, "cpu.max", "max 100000\n");
    write_file(dir, "memory.max", "max\n");
    expect_limits(dir, 0, UINT64_MAX, "v2 max");
    write_file(dir, "cpu.max", "garbage\n");
    write_file(dir, "memory.max", "12abc\n");
    expect_limits(dir, 0, UINT64_MAX, "malformed files are no limit");
    write_file(dir, "cpu.max", "0 100000\n");
    expect_limits(dir, 0, UINT64_MAX, "a zero quota is no limit");
    remove_dir(dir);

    snprintf(dir, sizeof dir, "/tmp/reel-placement-XXXXXX");
    cr_assert(mkdtemp(dir));
    write_file(dir, "cpu.cfs_quota_us", "-1\n");
    write_file(dir, "cpu.cfs_period_us", "100000\n");
    write_file(dir, "memory.limit_in_bytes", "9223372036854771712\n");
    expect_limits(dir, 0, UINT64_MAX, "v1 without limits");
    write_file(dir, "cpu.cfs_quota_us", "50000\n");
    write_file(dir, "memory.limit_in_bytes", "2000\n");
    write_file(dir, "memory.usage_in_bytes", "3000\n");
    expect_limits(dir, 0.5, 0, "v1: usage above the limit leaves nothing");
    remove_dir(dir);
    double cpus;
    uint64_t mem;
    TH_RC(reel__cgroup_limits(NULL, &cpus, &mem), -EINVAL);
}

Test(placement, cpuset_format) {
    cpu_set_t s;
    CPU_ZERO(&s);
    char buf[64];
    cr_expect_eq(reel__cpuset_format(&s, buf, sizeof buf), 0);
    cr_expect_str_eq(buf, "");
    int cpus[] = {0, 1, 2, 3, 6, 8, 9};
    for (size_t i = 0; i < sizeof cpus / sizeof cpus[0]; i++)
        CPU_SET(cpus[i], &s);
    cr_expect_eq(reel__cpuset_format(&s, buf, sizeof buf), 9);
    cr_expect_str_eq(buf, "0-3,6,8-9");
    char small[5];
    cr_expect_eq(reel__cpuset_format(&s, small, sizeof small), 9);
    cr_expect_str_eq(small, "0-3,");
    cr_expect_eq(reel__cpuset_format(&s, NULL, 0), 9);
}

/* ---- applying
 * --------------------------------------------------------------------------------------- */

static int child_apply(void *arg) {
    const reel_worker_placement *p = arg;
    TH_CHILD_RC(reel__apply_placement(p), 0);
    cpu_set_t now;
    CPU_ZERO(&now);
    TH_CHILD_CHECK(sched_getaffinity(0, sizeof now, &now) == 0, "sched_getaffinity");
    TH_CHILD_CHECK(CPU_EQUAL(&now, &p->cpus), "affinity %d CPUs, want %d", CPU_COUNT(&now),
                   CPU_COUNT(&p->cpus));
    const char *cvd = getenv("CUDA_VISIBLE_DEVICES");
    TH_CHILD_CHECK(cvd && strcmp(cvd, p->cuda_visible_devices) == 0, "CUDA_VISIBLE_DEVICES %s",
                   cvd ? cvd : "(unset)");
    return 0;
}

Test(placement, apply_in_a_child) {
    /* This machine's CPUs (the child may only be pinned to allowed ones),
     * and two pretend GPUs: applying touches no CUDA. */
    reel_node node;
    TH_OK(reel__node_detect(1.0, &node));
    node.n_gpus = 2;
    snprintf(node.gpu_id[0], sizeof node.gpu_id[0], "0");
    snprintf(node.gpu_id[1], sizeof node.gpu_id[1], "1");
    reel_placement_stage s[] = {st("cpu", 0.5, 0, 1), st("gpu", 0.5, 0.75, 2)};
    reel_worker_placement out[MAXW];
    cr_assert_eq(place(s, 2, &node, out), 3);
    cr_assert_str_eq(out[2].cuda_visible_devices, "1");
    cr_assert_eq(out[2].n_cpus, 1);
    for (int i = 0; i < 3; i++) {
        pid_t pid = th_fork(child_apply, &out[i]);
        cr_expect_eq(th_wait(pid, 10000), 0, "worker %d", i);
    }
    reel_worker_placement bad = out[0];
    CPU_ZERO(&bad.cpus);
    TH_RC(reel__apply_placement(&bad), -EINVAL);
    TH_RC(reel__apply_placement(NULL), -EINVAL);
}
