/* The node's resources and the placement of workers; the rules are described
 * at the top of placement.h. */
#include "placement.h"
#include "reel/store.h"     /* reel_gpu_count */
#include "store_internal.h" /* reel__fail, reel__now_ns */

#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define UNITS   REEL_PLACEMENT_UNITS
#define CG_ROOT "/sys/fs/cgroup"

/* ---- small readers -----------------------------------------------------------------------------
 */

/* Reads a small text file into buf (NUL-terminated); 0 or -1. */
static int read_small(const char *path, char *buf, size_t cap) {
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, cap - 1, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || n == 0)
        return -1;
    buf[n] = '\0';
    return 0;
}

/* A decimal unsigned number, whole string (trailing whitespace allowed). */
static int parse_u64(const char *s, uint64_t *out) {
    while (*s == ' ' || *s == '\t')
        s++;
    if (!isdigit((unsigned char)*s))
        return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return -1;
    while (*end && isspace((unsigned char)*end))
        end++;
    if (*end)
        return -1;
    *out = v;
    return 0;
}

static int read_u64(const char *dir, const char *name, uint64_t *out) {
    char path[PATH_MAX], buf[64];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
        return -1;
    if (read_small(path, buf, sizeof buf) < 0)
        return -1;
    return parse_u64(buf, out);
}

/* ---- cgroups ------------------------------------------------------------------------------------
 */

int reel__cgroup_limits(const char *dir, double *cpus, uint64_t *memory) {
    if (!dir || !cpus || !memory)
        return reel__fail(-EINVAL, "reel__cgroup_limits: NULL argument");
    *cpus = 0;
    *memory = UINT64_MAX;
    char path[PATH_MAX], buf[128];

    /* v2: "max 100000" or "<quota> <period>". */
    if (snprintf(path, sizeof path, "%s/cpu.max", dir) < (int)sizeof path &&
        read_small(path, buf, sizeof buf) == 0) {
        char q[32], p[32];
        uint64_t quota, period;
        if (sscanf(buf, "%31s %31s", q, p) == 2 && strcmp(q, "max") != 0 &&
            parse_u64(q, &quota) == 0 && parse_u64(p, &period) == 0 && quota > 0 && period > 0)
            *cpus = (double)quota / (double)period;
    } else {
        /* v1: a quota of -1 means none. */
        uint64_t quota, period;
        if (read_u64(dir, "cpu.cfs_quota_us", &quota) == 0 &&
            read_u64(dir, "cpu.cfs_period_us", &period) == 0 && quota > 0 && period > 0)
            *cpus = (double)quota / (double)period;
    }

    uint64_t limit, used = 0;
    int have = 0;
    if (snprintf(path, sizeof path, "%s/memory.max", dir) < (int)sizeof path &&
        read_small(path, buf, sizeof buf) == 0) {
        if (parse_u64(buf, &limit) == 0) { /* "max" fails to parse: no limit */
            have = 1;
            if (read_u64(dir, "memory.current", &used) < 0)
                used = 0;
        }
    } else if (read_u64(dir, "memory.limit_in_bytes", &limit) == 0) {
        /* v1 writes "no limit" as a huge page-rounded number. */
        if (limit < (UINT64_C(1) << 62)) {
            have = 1;
            if (read_u64(dir, "memory.usage_in_bytes", &used) < 0)
                used = 0;
        }
    }
    if (have)
        *memory = used < limit ? limit - used : 0;
    return 0;
}

/* Applies the limits of dir and of each of its parents down to root. */
static void cgroup_walk(const char *root, const char *rel, double *cpus, uint64_t *memory) {
    char dir[PATH_MAX];
    if (rel[0] != '/' || strstr(rel, "/..") ||
        snprintf(dir, sizeof dir, "%s%s", root, rel) >= (int)sizeof dir)
        return;
    size_t root_len = strlen(root);
    for (;;) {
        size_t len = strlen(dir);
        while (len > root_len && dir[len - 1] == '/')
            dir[--len] = '\0';
        double c;
        uint64_t m;
        reel__cgroup_limits(dir, &c, &m);
        if (c > 0 && (*cpus == 0 || c < *cpus))
            *cpus = c;
        if (m < *memory)
            *memory = m;
        if (len <= root_len)
            break;
        char *slash = strrchr(dir + root_len, '/');
        if (!slash)
            break;
        *slash = '\0';
    }
}

/* The cgroup CPU quota (0: none) and the memory left under the cgroup's
 * limits (UINT64_MAX: none) of this process. Anything unreadable is "none". */
static void cgroup_detect(double *cpus, uint64_t *memory) {
    *cpus = 0;
    *memory = UINT64_MAX;
    FILE *f = fopen("/proc/self/cgroup", "re");
    if (!f)
        return;
    char line[PATH_MAX + 64];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        /* "hierarchy-ID:controller-list:path" */
        char *c1 = strchr(line, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        *c1 = *c2 = '\0';
        const char *ctrl = c1 + 1, *rel = c2 + 1;
        if (strcmp(line, "0") == 0 && ctrl[0] == '\0') {
            cgroup_walk(CG_ROOT, rel, cpus, memory);
            continue;
        }
        /* v1: each controller has its own mount; inside a container the path
         * may not exist under it, and then the mount's root is the group. */
        char list[256];
        snprintf(list, sizeof list, ",%s,", ctrl);
        const char *mount = NULL;
        if (strstr(list, ",cpu,"))
            mount = strstr(list, ",cpuacct,") ? CG_ROOT "/cpu,cpuacct" : CG_ROOT "/cpu";
        else if (strstr(list, ",memory,"))
            mount = CG_ROOT "/memory";
        if (!mount)
            continue;
        char probe[PATH_MAX];
        if (snprintf(probe, sizeof probe, "%s%s", mount, rel) < (int)sizeof probe &&
            access(probe, F_OK) == 0)
            cgroup_walk(mount, rel, cpus, memory);
        else
            cgroup_walk(mount, "/", cpus, memory);
    }
    fclose(f);
}

/* ---- the node
 * ------------------------------------------------------------------------------------ */

static int percentage_ok(double p) {
    return isfinite(p) && p > 0 && p <= 1;
}

static void node_finish(reel_node *n, double pct) {
    n->n_cpus = (uint32_t)CPU_COUNT(&n->cpu_set);
    n->cpu_allocation_percentage = pct;
    double base = n->n_cpus;
    if (n->cpu_quota > 0 && n->cpu_quota < base)
        base = n->cpu_quota;
    n->cpus = base * pct;
}

static void gpu_ids_default(reel_node *n) {
    for (uint32_t i = 0; i < n->n_gpus; i++)
        snprintf(n->gpu_id[i], sizeof n->gpu_id[i], "%" PRIu32, i);
}

int reel__node_set(uint32_t n_cpus, double cpu_allocation_percentage, uint64_t memory,
                   uint32_t n_gpus, const uint64_t *gpu_memory, reel_node *out) {
    if (!out)
        return reel__fail(-EINVAL, "reel__node_set: out is NULL");
    memset(out, 0, sizeof *out);
    if (n_cpus < 1 || n_cpus > REEL_NODE_MAX_CPUS)
        return reel__fail(-EINVAL, "reel__node_set: %" PRIu32 " CPUs (1 to %d)", n_cpus,
                          REEL_NODE_MAX_CPUS);
    if (!percentage_ok(cpu_allocation_percentage))
        return reel__fail(-EINVAL, "reel__node_set: cpu_allocation_percentage %g is not in (0, 1]",
                          cpu_allocation_percentage);
    if (memory == 0)
        return reel__fail(-EINVAL, "reel__node_set: no memory");
    if (n_gpus > REEL_NODE_MAX_GPUS)
        return reel__fail(-EINVAL, "reel__node_set: %" PRIu32 " GPUs (at most %u)", n_gpus,
                          REEL_NODE_MAX_GPUS);
    for (uint32_t i = 0; i < n_cpus; i++)
        CPU_SET(i, &out->cpu_set);
    out->memory = memory;
    out->n_gpus = n_gpus;
    for (uint32_t i = 0; gpu_memory && i < n_gpus; i++)
        out->gpu_memory[i] = gpu_memory[i];
    gpu_ids_default(out);
    node_finish(out, cpu_allocation_percentage);
    return 0;
}

static int affinity_detect(cpu_set_t *set) {
    CPU_ZERO(set);
    if (sched_getaffinity(0, sizeof *set, set) == 0)
        return 0;
    if (errno != EINVAL)
        return reel__fail(-errno, "sched_getaffinity: %s", strerror(errno));
    /* More CPUs than cpu_set_t holds: read a larger mask, keep what fits. */
    int rc = 0;
    size_t ncpu = 8 * (size_t)CPU_SETSIZE;
    cpu_set_t *big = CPU_ALLOC(ncpu);
    if (!big)
        return reel__fail(-ENOMEM, "sched_getaffinity: no memory for a mask of %zu CPUs", ncpu);
    size_t sz = CPU_ALLOC_SIZE(ncpu);
    if (sched_getaffinity(0, sz, big) == 0) {
        for (int i = 0; i < CPU_SETSIZE; i++)
            if (CPU_ISSET_S(i, sz, big))
                CPU_SET(i, set);
    } else {
        rc = reel__fail(-errno, "sched_getaffinity: %s", strerror(errno));
    }
    CPU_FREE(big);
    return rc;
}

static int meminfo_available(uint64_t *bytes) {
    FILE *f = fopen("/proc/meminfo", "re");
    if (!f)
        return reel__fail(-EIO, "/proc/meminfo: %s", strerror(errno));
    char line[256];
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        unsigned long long kb;
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1 && kb <= UINT64_MAX / 1024) {
            *bytes = (uint64_t)kb * 1024;
            found = 1;
        }
    }
    fclose(f);
    if (!found)
        return reel__fail(-EIO, "/proc/meminfo has no MemAvailable line");
    return 0;
}

/* The driver's CUDA_VISIBLE_DEVICES entries name its ordinals for workers;
 * without it, or with fewer entries than devices, the ordinals do. */
static void gpu_ids_detect(reel_node *n) {
    gpu_ids_default(n);
    const char *cvd = getenv("CUDA_VISIBLE_DEVICES");
    if (!cvd || !*cvd)
        return;
    char ids[REEL_NODE_MAX_GPUS][REEL_NODE_GPU_ID_MAX];
    uint32_t k = 0;
    const char *p = cvd;
    while (k < n->n_gpus) {
        size_t len = strcspn(p, ",");
        while (len > 0 && isspace((unsigned char)*p))
            p++, len--;
        size_t l = len;
        while (l > 0 && isspace((unsigned char)p[l - 1]))
            l--;
        if (l == 0 || l >= REEL_NODE_GPU_ID_MAX)
            return;
        memcpy(ids[k], p, l);
        ids[k][l] = '\0';
        k++;
        if (p[len] != ',')
            break;
        p += len + 1;
    }
    if (k < n->n_gpus)
        return;
    memcpy(n->gpu_id, ids, sizeof ids[0] * k);
}

/* Per-device memory through the driver API, which reel_gpu_count() has loaded
 * and initialized by now (RTLD_NOLOAD: nothing new is loaded). Best effort. */
static void gpu_memory_detect(reel_node *n) {
    void *drv = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
    if (!drv) {
        (void)dlerror();
        return;
    }
    typedef int (*device_get_fn)(int *, int);
    typedef int (*total_mem_fn)(size_t *, int);
    device_get_fn device_get = (device_get_fn)dlsym(drv, "cuDeviceGet");
    total_mem_fn total_mem = (total_mem_fn)dlsym(drv, "cuDeviceTotalMem_v2");
    (void)dlerror();
    for (uint32_t i = 0; device_get && total_mem && i < n->n_gpus; i++) {
        int dev = 0;
        size_t bytes = 0;
        if (device_get(&dev, (int)i) == 0 && total_mem(&bytes, dev) == 0)
            n->gpu_memory[i] = bytes;
    }
    dlclose(drv); /* drops only the reference NOLOAD took */
}

/* What the probe child reports. */
typedef struct gpu_probe_msg {
    int32_t count;
    uint32_t reserved;
    uint64_t memory[REEL_NODE_MAX_GPUS];
} gpu_probe_msg;

/* CUDA initialization on a large node takes seconds; a probe that takes this
 * long is stuck (a lock a thread of the parent held at fork, a hung driver). */
#define GPU_PROBE_TIMEOUT_MS 60000

static void gpus_in_process(reel_node *n) {
    int gpus = reel_gpu_count();
    n->n_gpus = gpus <= 0                             ? 0
                : (uint32_t)gpus > REEL_NODE_MAX_GPUS ? REEL_NODE_MAX_GPUS
                                                      : (uint32_t)gpus;
    if (n->n_gpus > 0)
        gpu_memory_detect(n);
}

static bool cuda_loaded(void) {
    void *drv = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
    if (!drv) {
        (void)dlerror();
        return false;
    }
    dlclose(drv); /* drops only the reference NOLOAD took */
    return true;
}

/* Counts the GPUs (and their memory) in a short-lived child, so that this
 * process never initializes CUDA and may still fork workers that use it.
 * Anything that goes wrong - no fork, a child that crashes, hangs or says
 * nothing sensible - is "no GPU". A process that has CUDA loaded already
 * has nothing left to protect: it counts in place. */
static void gpus_detect(reel_node *n) {
    n->n_gpus = 0;
    memset(n->gpu_memory, 0, sizeof n->gpu_memory);
    if (cuda_loaded()) {
        gpus_in_process(n);
        return;
    }
    int fd[2];
    if (pipe2(fd, O_CLOEXEC) != 0)
        return;
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]);
        close(fd[1]);
        return;
    }
    if (pid == 0) {
        close(fd[0]);
        reel_node c;
        memset(&c, 0, sizeof c);
        gpus_in_process(&c);
        gpu_probe_msg m;
        memset(&m, 0, sizeof m);
        m.count = (int32_t)c.n_gpus;
        memcpy(m.memory, c.gpu_memory, sizeof m.memory);
        ssize_t w = write(fd[1], &m, sizeof m);
        _exit(w == (ssize_t)sizeof m ? 0 : 1); /* no atexit handlers: they are the parent's */
    }
    close(fd[1]);
    gpu_probe_msg m;
    size_t got = 0;
    int64_t deadline = (int64_t)(reel__now_ns(CLOCK_MONOTONIC) / 1000000) + GPU_PROBE_TIMEOUT_MS;
    while (got < sizeof m) {
        int64_t left = deadline - (int64_t)(reel__now_ns(CLOCK_MONOTONIC) / 1000000);
        if (left <= 0)
            break;
        struct pollfd pfd = {.fd = fd[0], .events = POLLIN};
        int pr = poll(&pfd, 1, (int)left);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            break;
        ssize_t k = read(fd[0], (char *)&m + got, sizeof m - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    close(fd[0]);
    if (got < sizeof m)
        kill(pid, SIGKILL);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (got < sizeof m || m.count <= 0 || (uint32_t)m.count > REEL_NODE_MAX_GPUS)
        return;
    n->n_gpus = (uint32_t)m.count;
    memcpy(n->gpu_memory, m.memory, sizeof n->gpu_memory);
}

static int node_detect(double cpu_allocation_percentage, bool count_gpus, reel_node *out) {
    if (!out)
        return reel__fail(-EINVAL, "reel__node_detect: out is NULL");
    memset(out, 0, sizeof *out);
    if (!percentage_ok(cpu_allocation_percentage))
        return reel__fail(-EINVAL, "cpu_allocation_percentage %g is not in (0, 1]",
                          cpu_allocation_percentage);
    reel_node n;
    memset(&n, 0, sizeof n);
    int rc = affinity_detect(&n.cpu_set);
    if (rc < 0)
        return rc;
    if (CPU_COUNT(&n.cpu_set) == 0)
        return reel__fail(-EIO, "this process's CPU affinity mask is empty");
    uint64_t avail = 0, cg_mem;
    if ((rc = meminfo_available(&avail)) < 0)
        return rc;
    cgroup_detect(&n.cpu_quota, &cg_mem);
    n.memory = cg_mem < avail ? cg_mem : avail;
    if (n.memory == 0)
        n.memory = 1; /* a node with nothing left still has a memory budget of its own */
    if (count_gpus)
        gpus_detect(&n);
    gpu_ids_detect(&n);
    node_finish(&n, cpu_allocation_percentage);
    *out = n;
    return 0;
}

int reel__node_detect(double cpu_allocation_percentage, reel_node *out) {
    return node_detect(cpu_allocation_percentage, true, out);
}

int reel__node_detect_cpus(double cpu_allocation_percentage, reel_node *out) {
    return node_detect(cpu_allocation_percentage, false, out);
}

static int node_check(const reel_node *n) {
    uint32_t count = (uint32_t)CPU_COUNT(&n->cpu_set);
    if (count == 0 || count != n->n_cpus)
        return reel__fail(-EINVAL, "malformed node: %" PRIu32 " CPUs, %" PRIu32 " in its set",
                          n->n_cpus, count);
    if (!percentage_ok(n->cpu_allocation_percentage) || !isfinite(n->cpus) || n->cpus < 0 ||
        n->cpus > n->n_cpus || !isfinite(n->cpu_quota) || n->cpu_quota < 0)
        return reel__fail(-EINVAL, "malformed node: CPUs %g, quota %g, percentage %g", n->cpus,
                          n->cpu_quota, n->cpu_allocation_percentage);
    if (n->n_gpus > REEL_NODE_MAX_GPUS)
        return reel__fail(-EINVAL, "malformed node: %" PRIu32 " GPUs", n->n_gpus);
    for (uint32_t i = 0; i < n->n_gpus; i++)
        if (!memchr(n->gpu_id[i], '\0', sizeof n->gpu_id[i]) || !n->gpu_id[i][0])
            return reel__fail(-EINVAL, "malformed node: GPU %" PRIu32 " has no name", i);
    return 0;
}

/* ---- formatting for messages
 * --------------------------------------------------------------------- */

/* A quantity with at least one decimal and at most two: 2.0, 1.9, 0.25. */
static const char *num(double v, char *buf, size_t cap) {
    snprintf(buf, cap, "%.2f", v);
    size_t len = strlen(buf);
    char *dot = strchr(buf, '.');
    while (dot && len > (size_t)(dot - buf) + 2 && buf[len - 1] == '0')
        buf[--len] = '\0';
    return buf;
}

static const char *bytes_str(uint64_t b, char *buf, size_t cap) {
    static const char *const unit[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)b;
    int u = 0;
    while (v >= 1024 && u < 4)
        v /= 1024, u++;
    if (u == 0)
        snprintf(buf, cap, "%" PRIu64 " bytes", b);
    else
        snprintf(buf, cap, "%.1f %s", v, unit[u]);
    return buf;
}

/* "1.9 (2 CPUs x 0.95)", or with a cgroup quota below the CPU count
 * "1.9 (a cgroup quota of 2.0 CPUs x 0.95)". */
static const char *node_cpus_str(const reel_node *n, char *buf, size_t cap) {
    char a[32], b[32];
    if (n->cpu_quota > 0 && n->cpu_quota < n->n_cpus)
        snprintf(buf, cap, "%s (a cgroup quota of %s CPUs x %g)", num(n->cpus, a, sizeof a),
                 num(n->cpu_quota, b, sizeof b), n->cpu_allocation_percentage);
    else
        snprintf(buf, cap, "%s (%" PRIu32 " CPU%s x %g)", num(n->cpus, a, sizeof a), n->n_cpus,
                 n->n_cpus == 1 ? "" : "s", n->cpu_allocation_percentage);
    return buf;
}

int reel__cpuset_format(const cpu_set_t *set, char *buf, size_t cap) {
    if (!set || (!buf && cap))
        return reel__fail(-EINVAL, "reel__cpuset_format: NULL argument");
    size_t len = 0;
    char dummy[1];
    if (!buf)
        buf = dummy, cap = 0;
    if (cap)
        buf[0] = '\0';
    for (int i = 0; i < CPU_SETSIZE; i++) {
        if (!CPU_ISSET(i, set))
            continue;
        int j = i;
        while (j + 1 < CPU_SETSIZE && CPU_ISSET(j + 1, set))
            j++;
        char part[32];
        int w = j == i ? snprintf(part, sizeof part, "%s%d", len ? "," : "", i)
                       : snprintf(part, sizeof part, "%s%d-%d", len ? "," : "", i, j);
        if (len + (size_t)w < cap) {
            memcpy(buf + len, part, (size_t)w + 1);
        } else if (cap) {
            size_t room = cap - 1 > len ? cap - 1 - len : 0;
            memcpy(buf + (len < cap ? len : cap - 1), part, room);
            buf[cap - 1] = '\0';
        }
        len += (size_t)w;
        i = j;
    }
    return (int)len;
}

/* ---- placement
 * -------------------------------------------------------------------------------------- */

/* Requests in units of 1/UNITS, rounded to the nearest unit (v >= 0 and
 * bounded: checked before; no libm, which libreel does not link). */
typedef struct req {
    int64_t cpu; /* per worker */
    int64_t gpu;
} req;

static int64_t units(double v) {
    return (int64_t)(v * UNITS + 0.5);
}

static const char *plural(uint64_t n) {
    return n == 1 ? "" : "s";
}

static int check_stage(const reel_placement_stage *s, uint32_t i, req *r) {
    if (!s->name || !s->name[0])
        return reel__fail(-EINVAL, "stage %" PRIu32 " has no name", i);
    const char *name = s->name;
    if (!isfinite(s->cpus) || s->cpus < 0 || s->cpus > (double)REEL_NODE_MAX_CPUS)
        return reel__fail(-EINVAL, "stage %s: %g CPUs per worker", name, s->cpus);
    if (!isfinite(s->gpus) || s->gpus < 0 || s->gpus > (double)REEL_NODE_MAX_GPUS)
        return reel__fail(-EINVAL, "stage %s: %g GPUs per worker", name, s->gpus);
    if (s->workers > REEL_PLACEMENT_MAX_WORKERS)
        return reel__fail(-EINVAL, "stage %s: %" PRIu32 " workers (at most %u)", name, s->workers,
                          REEL_PLACEMENT_MAX_WORKERS);
    r->cpu = units(s->cpus);
    r->gpu = units(s->gpus);
    if (r->cpu == 0 && r->gpu == 0)
        return reel__fail(-EINVAL, "stage %s asks for neither CPUs nor GPUs", name);
    if (r->gpu > UNITS && r->gpu % UNITS != 0)
        return reel__fail(-EINVAL,
                          "stage %s: %g GPUs per worker: above one GPU a worker takes whole "
                          "devices, so it must ask for a whole number",
                          name, s->gpus);
    return 0;
}

/* "stage decode: 4 workers x 2.0 CPUs = 8.0 CPUs[ on top of 3.0 CPUs for
 * the stages before it], the node has ..." */
static int refuse_total(const reel_placement_stage *s, const char *per, const char *total,
                        const char *before, const char *node_has) {
    if (before)
        return reel__fail(-ENOSPC,
                          "stage %s: %" PRIu32 " worker%s x %s = %s on top of %s for the stages "
                          "before it, the node has %s",
                          s->name, s->workers, plural(s->workers), per, total, before, node_has);
    return reel__fail(-ENOSPC, "stage %s: %" PRIu32 " worker%s x %s = %s, the node has %s", s->name,
                      s->workers, plural(s->workers), per, total, node_has);
}

/* A quantity of units with its unit: "2.0 CPUs". */
static const char *qty(int64_t u, const char *unit, char *buf, size_t cap) {
    char n[32];
    snprintf(buf, cap, "%s %s", num((double)u / UNITS, n, sizeof n), unit);
    return buf;
}

static int check_totals(const reel_placement_stage *stages, uint32_t n, const req *r,
                        const reel_node *node) {
    int64_t cpu_have = units(node->cpus), gpu_have = (int64_t)node->n_gpus * UNITS;
    int64_t cpu_used = 0, gpu_used = 0;
    uint64_t mem_used = 0;
    char a[64], b[64], c[64], d[96];
    for (uint32_t i = 0; i < n; i++) {
        const reel_placement_stage *s = &stages[i];
        if (s->workers == 0)
            continue;
        if (r[i].gpu > 0 && node->n_gpus == 0)
            return reel__fail(-ENODEV, "stage %s needs a GPU and this node has none", s->name);
        int64_t cpu = r[i].cpu * s->workers;
        if (cpu_used + cpu > cpu_have)
            return refuse_total(s, qty(r[i].cpu, "CPUs", a, sizeof a),
                                qty(cpu, "CPUs", b, sizeof b),
                                cpu_used ? qty(cpu_used, "CPUs", c, sizeof c) : NULL,
                                node_cpus_str(node, d, sizeof d));
        cpu_used += cpu;
        uint64_t mem = s->memory * s->workers;
        int wrapped = s->memory && mem / s->memory != s->workers;
        if (wrapped || mem > UINT64_MAX - mem_used || mem_used + mem > node->memory) {
            char t[48];
            bytes_str(s->memory, a, sizeof a);
            snprintf(b, sizeof b, "%s of memory",
                     wrapped ? "more than 16 EiB" : bytes_str(mem, t, sizeof t));
            return refuse_total(s, a, b, mem_used ? bytes_str(mem_used, c, sizeof c) : NULL,
                                bytes_str(node->memory, d, sizeof d));
        }
        mem_used += mem;
        int64_t gpu = r[i].gpu * s->workers;
        if (gpu_used + gpu > gpu_have) {
            snprintf(d, sizeof d, "%" PRIu32 " GPU%s", node->n_gpus, plural(node->n_gpus));
            return refuse_total(s, qty(r[i].gpu, "GPUs", a, sizeof a),
                                qty(gpu, "GPUs", b, sizeof b),
                                gpu_used ? qty(gpu_used, "GPUs", c, sizeof c) : NULL, d);
        }
        gpu_used += gpu;
    }
    return 0;
}

/* Packs the GPU workers, largest request first; stage, then worker order
 * among equals. */
static int pack_gpus(const reel_placement_stage *stages, uint32_t n, const req *r,
                     const reel_node *node, reel_worker_placement *out) {
    int64_t free_units[REEL_NODE_MAX_GPUS];
    for (uint32_t d = 0; d < node->n_gpus; d++)
        free_units[d] = UNITS;
    /* One pass per distinct request size: a stable sort without a buffer. */
    int64_t prev = INT64_MAX;
    for (;;) {
        int64_t size = 0;
        for (uint32_t i = 0; i < n; i++)
            if (stages[i].workers && r[i].gpu < prev && r[i].gpu > size)
                size = r[i].gpu;
        if (size == 0)
            return 0;
        prev = size;
        uint32_t base = 0;
        for (uint32_t i = 0; i < n; base += stages[i].workers, i++) {
            if (r[i].gpu != size)
                continue;
            for (uint32_t w = 0; w < stages[i].workers; w++) {
                reel_worker_placement *p = &out[base + w];
                if (size >= UNITS) {
                    uint32_t want = (uint32_t)(size / UNITS), got = 0;
                    for (uint32_t d = 0; d < node->n_gpus && got < want; d++)
                        got += free_units[d] == UNITS;
                    if (got < want)
                        return reel__fail(-ENOSPC,
                                          "stage %s: worker %" PRIu32 " of %" PRIu32
                                          " needs %" PRIu32 " whole GPU%s, and %" PRIu32
                                          " %s wholly free once the larger requests are placed",
                                          stages[i].name, w + 1, stages[i].workers, want,
                                          plural(want), got, got == 1 ? "is" : "are");
                    size_t len = 0;
                    p->gpu = -1;
                    p->gpu_share = 1;
                    got = 0;
                    for (uint32_t d = 0; d < node->n_gpus && got < want; d++) {
                        if (free_units[d] != UNITS)
                            continue;
                        free_units[d] = 0;
                        if (p->gpu < 0)
                            p->gpu = (int32_t)d;
                        int wr = snprintf(p->cuda_visible_devices + len,
                                          sizeof p->cuda_visible_devices - len, "%s%s",
                                          len ? "," : "", node->gpu_id[d]);
                        if (wr < 0 || (size_t)wr >= sizeof p->cuda_visible_devices - len)
                            return reel__fail(-EINVAL,
                                              "stage %s: the CUDA_VISIBLE_DEVICES of a worker "
                                              "with %" PRIu32 " GPUs exceeds %u bytes",
                                              stages[i].name, want, REEL_PLACEMENT_CVD_MAX);
                        len += (size_t)wr;
                        got++;
                    }
                    p->n_gpus = want;
                    continue;
                }
                int best = -1;
                int64_t most = 0;
                for (uint32_t d = 0; d < node->n_gpus; d++) {
                    if (free_units[d] > most)
                        most = free_units[d];
                    if (free_units[d] >= size && (best < 0 || free_units[d] < free_units[best]))
                        best = (int)d;
                }
                if (best < 0) {
                    char a[32], b[32];
                    return reel__fail(
                        -ENOSPC,
                        "stage %s: worker %" PRIu32 " of %" PRIu32 " needs %s of one GPU, and no "
                        "device has that much free once the larger requests are placed (the "
                        "most is %s); a worker with less than one GPU cannot span devices",
                        stages[i].name, w + 1, stages[i].workers, num((double)size / UNITS, a, 32),
                        num((double)most / UNITS, b, 32));
                }
                free_units[best] -= size;
                p->gpu = best;
                p->n_gpus = 1;
                p->gpu_share = (double)size / UNITS;
                snprintf(p->cuda_visible_devices, sizeof p->cuda_visible_devices, "%s",
                         node->gpu_id[best]);
            }
        }
    }
}

/* The round-robin cursor over the node's CPUs: cpu[k] is filled to fill
 * units. */
typedef struct cursor {
    int cpu[REEL_NODE_MAX_CPUS];
    uint32_t n, k;
    int64_t fill;
} cursor;

static void cursor_next(cursor *c) {
    c->k = (c->k + 1) % c->n;
    c->fill = 0;
}

static void place_cpus(cursor *c, int64_t want, cpu_set_t *set) {
    CPU_ZERO(set);
    if (want == 0) { /* not pinned: every CPU */
        for (uint32_t i = 0; i < c->n; i++)
            CPU_SET(c->cpu[i], set);
        return;
    }
    if (want < UNITS) {
        if (c->fill + want > UNITS)
            cursor_next(c);
        CPU_SET(c->cpu[c->k], set);
        c->fill += want;
        if (c->fill >= UNITS)
            cursor_next(c);
        return;
    }
    if (c->fill > 0)
        cursor_next(c);
    int64_t whole = (want + UNITS - 1) / UNITS;
    if (whole > (int64_t)c->n)
        whole = c->n;
    for (int64_t j = 0; j < whole; j++) {
        CPU_SET(c->cpu[c->k], set);
        cursor_next(c);
    }
}

int reel__place(const reel_placement_stage *stages, uint32_t n_stages, const reel_node *node,
                reel_worker_placement *out, uint32_t cap, uint32_t *n_out) {
    if (!stages || !node || !n_out || (!out && cap))
        return reel__fail(-EINVAL, "reel__place: NULL argument");
    if (n_stages == 0 || n_stages > REEL_PLACEMENT_MAX_STAGES)
        return reel__fail(-EINVAL, "%" PRIu32 " stages (1 to %u)", n_stages,
                          REEL_PLACEMENT_MAX_STAGES);
    int rc = node_check(node);
    if (rc < 0)
        return rc;
    req r[REEL_PLACEMENT_MAX_STAGES];
    uint32_t total = 0;
    for (uint32_t i = 0; i < n_stages; i++) {
        if ((rc = check_stage(&stages[i], i, &r[i])) < 0)
            return rc;
        total += stages[i].workers;
    }
    if ((rc = check_totals(stages, n_stages, r, node)) < 0)
        return rc;
    *n_out = total;
    if (cap < total)
        return reel__fail(-ENOBUFS, "%" PRIu32 " workers to place, room for %" PRIu32, total, cap);

    /* GPU packing is the one step that can still refuse; on a refusal the
     * entries it half filled are zeroed again. */
    for (uint32_t i = 0, base = 0; i < n_stages; base += stages[i].workers, i++)
        for (uint32_t w = 0; w < stages[i].workers; w++) {
            reel_worker_placement *p = &out[base + w];
            memset(p, 0, sizeof *p);
            p->stage = i;
            p->worker = w;
            p->gpu = -1;
        }
    if ((rc = pack_gpus(stages, n_stages, r, node, out)) < 0) {
        memset(out, 0, sizeof *out * total);
        return rc;
    }

    cursor c = {.n = 0, .k = 0, .fill = 0};
    for (int i = 0; i < CPU_SETSIZE && c.n < node->n_cpus; i++)
        if (CPU_ISSET(i, &node->cpu_set))
            c.cpu[c.n++] = i;
    for (uint32_t i = 0, base = 0; i < n_stages; base += stages[i].workers, i++)
        for (uint32_t w = 0; w < stages[i].workers; w++) {
            reel_worker_placement *p = &out[base + w];
            place_cpus(&c, r[i].cpu, &p->cpus);
            p->n_cpus = (uint32_t)CPU_COUNT(&p->cpus);
        }
    return 0;
}

int reel__apply_placement(const reel_worker_placement *p) {
    if (!p)
        return reel__fail(-EINVAL, "reel__apply_placement: NULL placement");
    if (CPU_COUNT(&p->cpus) == 0)
        return reel__fail(-EINVAL,
                          "placement of worker %" PRIu32 " of stage %" PRIu32 " has no CPU",
                          p->worker, p->stage);
    if (!memchr(p->cuda_visible_devices, '\0', sizeof p->cuda_visible_devices))
        return reel__fail(-EINVAL, "placement's CUDA_VISIBLE_DEVICES is not terminated");
    if (sched_setaffinity(0, sizeof p->cpus, &p->cpus) < 0) {
        int e = errno;
        char cpus[256];
        reel__cpuset_format(&p->cpus, cpus, sizeof cpus);
        return reel__fail(-e, "sched_setaffinity to CPUs %s: %s", cpus, strerror(e));
    }
    if (setenv("CUDA_VISIBLE_DEVICES", p->cuda_visible_devices, 1) < 0)
        return reel__fail(-errno, "setenv CUDA_VISIBLE_DEVICES: %s", strerror(errno));
    return 0;
}
