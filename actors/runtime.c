/* The driver side of the actor runtime: the zygote, pools of worker
 * processes, dispatch of tasks to workers and supervision. The pool segment
 * and the wake-up protocol are described in actor_internal.h. */
#include "actor_internal.h"
#include "control.h"
#include "store_internal.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_SPIN_NS      50000u
#define DEFAULT_MAX_RETRIES  3u
#define DEFAULT_MAX_RESTARTS 16u
#define DEFAULT_SLOTS        2u
#define MAX_SLOTS            64u
#define PENDING_LIMIT        4096u      /* tasks a pool queues before submit waits */
#define CHECK_INTERVAL_NS    1000000ull /* control and death checks while busy */
#define SPAWN_TIMEOUT_MS     10000
#define STOP_GRACE_MS        5000 /* teardown of an idle worker a stop waited for */
#define STOP_NOW_GRACE_MS    200  /* the same, when the caller would not wait (timeout 0) */
/* A worker busy this long (in one task, or in setup) loses the tasks it only
 * prefetched to an idle worker: long against a hand-off, short against a hang. */
#define STEAL_AFTER_NS 100000000ull
#define EXIT_LOG_SIZE  1024u /* deaths the zygote remembers for the driver */
#define EXIT_WAIT_MS   2000  /* how long a death waits for the zygote's word on it */

enum { W_EMPTY = 0, W_LIVE = 1 };

typedef struct task_entry {
    reel_id id;
    uint32_t attempt;
    uint32_t flags; /* REEL_RESULT_INPUT_LIST */
    uint32_t n_inputs;
    reel_id inputs[REEL_TASK_MAX_INPUTS];
    int status;
    int timed_out; /* its worker was killed for running past the task timeout */
    char error[REEL_ERROR_TEXT_MAX];
    uint32_t next_free;
} task_entry;

typedef struct worker_slot {
    int state;
    pid_t pid;
    uint64_t spawn_ns;   /* CLOCK_MONOTONIC when it was forked */
    uint64_t exits_then; /* exit_log.next then: its exit is logged at or after it */
    int pidfd, ctl_fd;
    uint32_t generation;
    int ready, stopping;
    uint64_t ready_ns;        /* CLOCK_MONOTONIC when it reported ready; 0 in setup */
    int drain_wait;           /* a DRAIN was sent; its STATS answer has not come */
    uint64_t rss;             /* resident bytes, as last reported */
    uint32_t held[MAX_SLOTS]; /* task entries, in the order they were pushed */
    uint32_t nheld;
    int wake_due; /* tasks were pushed while wakes were held */
} worker_slot;

/* How each worker ended. The zygote reaps its workers, so the driver, which
 * is not their parent, cannot wait for them; the zygote writes each exit
 * status here, into a page shared with the driver before the zygote was
 * forked. Only the zygote writes. An entry is one 64-bit word, the pid
 * above the status (as waitpid() reports it), so a reader never sees one
 * pid's status beside another's pid, without fences (which TSan cannot
 * check). */
typedef struct exit_entry {
    _Atomic uint64_t pid_status;
} exit_entry;

typedef struct exit_log {
    _Atomic uint64_t next; /* entries written, ever */
    exit_entry e[EXIT_LOG_SIZE];
} exit_log;

/* A growable FIFO of fixed-size items, local to the driver. */
typedef struct fifo {
    uint8_t *items;
    size_t item_size, cap, head, count;
} fifo;

struct reel_pool {
    reel_runtime *rt;
    reel_pool *next;
    uint32_t id, actor;
    const reel_actor_def *def;
    uint32_t slots, max_retries, max_restarts;
    char path[256];
    pool_header *hdr;
    size_t size;
    uint32_t target;
    uint32_t nslots; /* slots ever used: loops over workers stop here */
    worker_slot workers[POOL_MAX_WORKERS];
    task_entry *entries;
    uint32_t entries_cap, free_head;
    fifo pending; /* entry indexes */
    fifo done;    /* reel_task_result */
    uint32_t held_total;
    reel_id base;
    uint64_t seq;
    uint64_t submitted, completed, failed, retried, stolen, busy_ns;
    uint64_t cpu_ns, wait_ns, measured_ns; /* of the tasks whose CPU use was measured */
    uint32_t restarts;
    char last_death[REEL_ERROR_TEXT_MAX]; /* reel__pool_last_death() */
    int ever_ready;
    int failed_rc;
    char failed_msg[256];
    uint64_t last_check_ns;
    int draining;            /* reel_pool_drain(): hand out no task */
    int hold_wakes;          /* reel__pool_hold_wakes(): push tasks without waking */
    reel_pool_placer placer; /* where each new worker runs; NULL: anywhere */
    void *placer_arg;
    uint64_t grace_ns; /* reel__pool_set_grace() */
};

struct reel_runtime {
    reel_store *store;
    char *store_path;
    reel_actor_def *defs;
    size_t n_defs;
    pid_t zygote;
    int zygote_fd;
    pthread_mutex_t zygote_lock; /* one spawn request and its reply at a time */
    int event_fd; /* workers write it to wake a sleeping driver; inherited through the zygote */
    uint64_t spin_ns;
    uint64_t owner_token; /* of store: the workers' outputs are owned by this process */
    uint32_t next_pool;
    reel_pool *pools;
    exit_log *exits; /* shared with the zygote */
};

/* ---- output IDs ------------------------------------------------------------ */

void reel__output_parent(const char *stage, const reel_id *task_id, reel_id *out) {
    reel_id stage_id;
    reel_id_from_content(stage, strlen(stage), &stage_id);
    reel_id mixed;
    for (int i = 0; i < 16; i++)
        mixed.bytes[i] = task_id->bytes[i] ^ stage_id.bytes[i];
    reel_id_derive(&mixed, UINT64_MAX, out);
}

REEL_API void reel_actor_output_id(const char *stage, const reel_id *task_id, uint32_t index,
                                   reel_id *out) {
    REEL_NEED_OR(stage, "stage", );
    REEL_NEED_OR(task_id, "task_id", );
    REEL_NEED_OR(out, "out", );
    reel_id parent;
    reel__output_parent(stage, task_id, &parent);
    reel_id_derive(&parent, index, out);
}

/* ---- fifo ---------------------------------------------------------------- */

static int fifo_push(fifo *f, const void *item, int front) {
    if (f->count == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 64;
        uint8_t *n = malloc(cap * f->item_size);
        if (!n)
            return -ENOMEM;
        for (size_t i = 0; i < f->count; i++)
            memcpy(n + i * f->item_size, f->items + ((f->head + i) % f->cap) * f->item_size,
                   f->item_size);
        free(f->items);
        f->items = n;
        f->cap = cap;
        f->head = 0;
    }
    size_t slot;
    if (front) {
        f->head = (f->head + f->cap - 1) % f->cap;
        slot = f->head;
    } else {
        slot = (f->head + f->count) % f->cap;
    }
    memcpy(f->items + slot * f->item_size, item, f->item_size);
    f->count++;
    return 0;
}

static int fifo_pop(fifo *f, void *item) {
    if (f->count == 0)
        return 0;
    memcpy(item, f->items + f->head * f->item_size, f->item_size);
    f->head = (f->head + 1) % f->cap;
    f->count--;
    return 1;
}

/* ---- the zygote ---------------------------------------------------------- */

static int pidfd_open_(pid_t pid) {
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

static int pidfd_kill(int pidfd, int sig) {
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

/* Dies with its parent; returns 0, or -1 if the parent is already gone. */
static int die_with_parent(pid_t parent) {
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
        return -1;
    return getppid() == parent ? 0 : -1;
}

/* The zygote's children, so that it can end them all before it exits. */
static pid_t *zygote_children;
static size_t zygote_nchildren, zygote_cap;
static sigset_t zygote_old_mask;
static int zygote_sigfd = -1;

static void zygote_track(pid_t pid) {
    if (zygote_nchildren == zygote_cap) {
        size_t cap = zygote_cap ? zygote_cap * 2 : 64;
        pid_t *n = realloc(zygote_children, cap * sizeof *n);
        if (!n)
            return; /* untracked: it still dies with us through PR_SET_PDEATHSIG */
        zygote_children = n;
        zygote_cap = cap;
    }
    zygote_children[zygote_nchildren++] = pid;
}

static exit_log *zygote_exits;

static void zygote_reap(void) {
    pid_t pid;
    int status;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (zygote_exits) {
            uint64_t i = atomic_load_explicit(&zygote_exits->next, memory_order_relaxed);
            exit_entry *x = &zygote_exits->e[i % EXIT_LOG_SIZE];
            atomic_store_explicit(&x->pid_status, (uint64_t)(uint32_t)pid << 32 | (uint32_t)status,
                                  memory_order_release);
            atomic_store_explicit(&zygote_exits->next, i + 1, memory_order_release);
        }
        for (size_t i = 0; i < zygote_nchildren; i++)
            if (zygote_children[i] == pid) {
                zygote_children[i] = zygote_children[--zygote_nchildren];
                break;
            }
    }
}

/* Parses a CPU list ("0-3,6") into set; -EINVAL for anything else, or an
 * empty set. */
static int parse_cpu_list(const char *s, cpu_set_t *set) {
    CPU_ZERO(set);
    while (*s) {
        char *end;
        errno = 0;
        unsigned long a = strtoul(s, &end, 10), b = a;
        if (end == s || errno || a >= CPU_SETSIZE)
            return -EINVAL;
        s = end;
        if (*s == '-') {
            b = strtoul(++s, &end, 10);
            if (end == s || errno || b >= CPU_SETSIZE || b < a)
                return -EINVAL;
            s = end;
        }
        for (unsigned long c = a; c <= b; c++)
            CPU_SET(c, set);
        if (*s == ',')
            s++;
        else if (*s)
            return -EINVAL;
    }
    return CPU_COUNT(set) ? 0 : -EINVAL;
}

/* In a new worker, before it runs anything of the stage: its CPUs and GPUs. */
static int apply_spawn_placement(const reel_ctl_msg *m) {
    if (m->cpus[0]) {
        cpu_set_t set;
        if (parse_cpu_list(m->cpus, &set) != 0)
            return -EINVAL;
        if (sched_setaffinity(0, sizeof set, &set) != 0)
            return -errno;
    }
    if (m->cvd[0]) {
        for (const char *c = m->cvd; *c; c++)
            if (!isalnum((unsigned char)*c) && !strchr(",-_:.", *c))
                return -EINVAL;
        if (setenv("CUDA_VISIBLE_DEVICES", m->cvd, 1) != 0)
            return -errno;
    }
    return 0;
}

static void zygote_spawn(reel_runtime *rt, int sock, const reel_ctl_msg *m) {
    int sv[2];
    reel_ctl_msg reply = {.type = REEL_CTL_ERROR,
                          .phase = 1,
                          .pool = m->pool,
                          .worker = m->worker,
                          .generation = m->generation};
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        reply.code = -errno;
        snprintf(reply.text, sizeof reply.text, "socketpair: %s", strerror(errno));
        reel__ctl_send(sock, &reply, NULL, 0);
        return;
    }
    pid_t zygote = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        if (die_with_parent(zygote) != 0)
            _exit(1);
        sigprocmask(SIG_SETMASK, &zygote_old_mask, NULL);
        if (zygote_sigfd >= 0)
            close(zygote_sigfd);
        close(sock);
        close(sv[0]);
        const reel_actor_def *def = &rt->defs[m->actor];
        int prc = apply_spawn_placement(m);
        if (prc) {
            reel_ctl_msg e = {.type = REEL_CTL_ERROR, .phase = 1, .code = prc};
            snprintf(e.text, sizeof e.text,
                     "%s: cannot apply placement cpus \"%.40s\" cvd \"%.40s\": %s", def->name,
                     m->cpus, m->cvd, reel_strerror(prc));
            reel__ctl_send(sv[1], &e, NULL, 0);
            _exit(1);
        }
        char name[16];
        snprintf(name, sizeof name, "reel:%s", def->name);
        prctl(PR_SET_NAME, name);
        int rc = reel__worker_main(def, rt->store_path, m->path, m->worker, m->generation, sv[1],
                                   rt->event_fd, rt->spin_ns, rt->owner_token);
        _exit(rc ? 1 : 0);
    }
    close(sv[1]);
    if (pid < 0) {
        reply.code = -errno;
        snprintf(reply.text, sizeof reply.text, "fork: %s", strerror(errno));
        reel__ctl_send(sock, &reply, NULL, 0);
        close(sv[0]);
        return;
    }
    zygote_track(pid);
    /* The child cannot be reaped before we wait for it, so its pid is still ours. */
    int pidfd = pidfd_open_(pid);
    if (pidfd < 0) {
        reply.code = -errno;
        snprintf(reply.text, sizeof reply.text, "pidfd_open: %s", strerror(errno));
        kill(pid, SIGKILL);
        reel__ctl_send(sock, &reply, NULL, 0);
        close(sv[0]);
        return;
    }
    reply = (reel_ctl_msg){.type = REEL_CTL_SPAWNED,
                           .pool = m->pool,
                           .worker = m->worker,
                           .generation = m->generation,
                           .pid = pid};
    int fds[2] = {pidfd, sv[0]};
    reel__ctl_send(sock, &reply, fds, 2);
    close(pidfd);
    close(sv[0]);
}

/* The zygote and so every worker would inherit whatever the driver had
 * open (sockets, files, pipes of a test harness): keep only stdio and what
 * the runtime needs. */
static void close_other_fds(int keep_a, int keep_b) {
    int fds[1024], n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) && n < (int)(sizeof fds / sizeof fds[0])) {
        int fd = atoi(e->d_name);
        if (fd > 2 && fd != keep_a && fd != keep_b && fd != dirfd(d))
            fds[n++] = fd;
    }
    closedir(d);
    for (int i = 0; i < n; i++)
        close(fds[i]);
}

static void zygote_main(reel_runtime *rt, int sock, pid_t driver) {
    if (die_with_parent(driver) != 0)
        _exit(1);
    close_other_fds(sock, rt->event_fd);
    prctl(PR_SET_NAME, "reel-zygote");
    zygote_exits = rt->exits;
    /* SIGCHLD through a signalfd: a worker that ends is reaped at once. */
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, &zygote_old_mask);
    zygote_sigfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
    for (;;) {
        struct pollfd pfd[2] = {{.fd = sock, .events = POLLIN},
                                {.fd = zygote_sigfd, .events = POLLIN}};
        if (poll(pfd, zygote_sigfd >= 0 ? 2 : 1, zygote_sigfd >= 0 ? -1 : 100) < 0 &&
            errno != EINTR)
            break;
        if (zygote_sigfd >= 0 && (pfd[1].revents & POLLIN)) {
            struct signalfd_siginfo si;
            while (read(zygote_sigfd, &si, sizeof si) > 0)
                ;
        }
        zygote_reap();
        if (!(pfd[0].revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        reel_ctl_msg m;
        int fds[4], nfds = 0;
        int rc = reel__ctl_recv(sock, &m, fds, &nfds, 0);
        if (rc == -ETIMEDOUT || rc == -EAGAIN || rc == -EINTR)
            continue;
        if (rc == -ECONNRESET)
            break;
        if (rc == 0 && m.type == REEL_CTL_SPAWN && m.actor < rt->n_defs && nfds == 0)
            zygote_spawn(rt, sock, &m);
        for (int i = 0; i < nfds; i++)
            close(fds[i]);
        if (rc == 0 && m.type == REEL_CTL_EXIT)
            break;
    }
    /* End every worker and reap it, so that none outlives us even as a zombie. */
    for (size_t i = 0; i < zygote_nchildren; i++)
        kill(zygote_children[i], SIGKILL);
    while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
        ;
    _exit(0);
}

/* ---- the runtime ---------------------------------------------------------- */

static int valid_name(const char *name) {
    if (!name || !*name || strlen(name) >= REEL_ACTOR_NAME_MAX)
        return 0;
    for (const char *p = name; *p; p++)
        if (*p <= ' ' || *p == '/' || *p == 0x7f)
            return 0;
    return 1;
}

/* Pool segments are named for their driver's pid; a driver killed outright
 * leaves its segments behind, and the next runtime to start removes them. */
static void unlink_in(const char *dir, const char *name, void *arg) {
    (void)arg;
    char path[384];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unlink(path);
}

static void remove_stale_pool_segments(void) {
    reel__each_left_by_the_dead(NULL, "reel-pool-", 1, unlink_in, NULL);
}

REEL_API int reel_runtime_start(const reel_runtime_options *opts, reel_runtime **out) {
    REEL_NEED(opts, "opts");
    REEL_NEED(out, "out");
    REEL_NEED(opts->store, "opts->store");
    REEL_NEED(opts->actors, "opts->actors");
    reel__clear_error();
    if (opts->n_actors == 0 || (opts->flags & ~REEL_RUNTIME_NO_SPIN))
        return reel__fail(-EINVAL, "reel_runtime_start: no actors, or unknown flags 0x%x",
                          opts->flags);
    for (size_t i = 0; i < opts->n_actors; i++) {
        const reel_actor_def *d = opts->actors[i];
        if (!d || !valid_name(d->name) || !d->process || d->cpus < 0 || d->gpus < 0 ||
            d->slots > MAX_SLOTS)
            return reel__fail(-EINVAL, "actor %zu: %s", i,
                              !d || !valid_name(d ? d->name : NULL) ? "bad or missing name"
                              : !d->process                         ? "no process function"
                                            : "resources or slots out of range");
        for (size_t j = 0; j < i; j++)
            if (strcmp(opts->actors[j]->name, d->name) == 0)
                return reel__fail(-EINVAL, "two actors are named %s", d->name);
    }
    reel_runtime *rt = calloc(1, sizeof *rt);
    if (!rt)
        return -ENOMEM;
    rt->zygote_fd = -1;
    pthread_mutex_init(&rt->zygote_lock, NULL);
    rt->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    rt->spin_ns = (opts->flags & REEL_RUNTIME_NO_SPIN) ? 0
                  : opts->spin_ns                      ? opts->spin_ns
                                                       : DEFAULT_SPIN_NS;
    rt->n_defs = opts->n_actors;
    rt->defs = calloc(opts->n_actors, sizeof *rt->defs);
    rt->store_path = strdup(opts->store);
    int rc = rt->defs && rt->store_path ? 0 : -ENOMEM;
    if (rc == 0 && rt->event_fd < 0)
        rc = -errno;
    if (rc == 0) {
        void *m =
            mmap(NULL, sizeof(exit_log), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED)
            rc = -errno;
        else
            rt->exits = m;
    }
    for (size_t i = 0; rc == 0 && i < opts->n_actors; i++) {
        reel_actor_def *d = &rt->defs[i];
        *d = *opts->actors[i];
        if (d->cpus == 0)
            d->cpus = 1;
        if (d->batch_size == 0)
            d->batch_size = 1;
        /* 0 means the default; REEL_ACTOR_NONE asks for none. */
        if (d->max_retries == 0)
            d->max_retries = DEFAULT_MAX_RETRIES;
        else if (d->max_retries == REEL_ACTOR_NONE)
            d->max_retries = 0;
        if (d->max_restarts == 0)
            d->max_restarts = DEFAULT_MAX_RESTARTS;
        else if (d->max_restarts == REEL_ACTOR_NONE)
            d->max_restarts = 0;
        if (d->slots == 0)
            d->slots = DEFAULT_SLOTS;
    }
    remove_stale_pool_segments();
    /* Check the store opens before forking anything. Lazily, as the workers
     * do (worker.c): the driver touches little of it. */
    if (rc == 0)
        rc = reel_store_open(rt->store_path, REEL_OPEN_LAZY, &rt->store);
    if (rc == 0)
        rc = reel_store_owner_token(rt->store, &rt->owner_token);
    int sv[2] = {-1, -1};
    if (rc == 0 && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
        rc = -errno;
    if (rc == 0) {
        pid_t driver = getpid();
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            close(sv[0]);
            zygote_main(rt, sv[1], driver);
        }
        if (pid < 0)
            rc = -errno;
        rt->zygote = pid > 0 ? pid : 0;
        close(sv[1]);
        rt->zygote_fd = sv[0];
        if (rc)
            close(sv[0]);
    }
    if (rc) {
        reel_store_close(rt->store);
        if (rt->event_fd >= 0)
            close(rt->event_fd);
        if (rt->exits)
            munmap(rt->exits, sizeof(exit_log));
        free(rt->defs);
        free(rt->store_path);
        free(rt);
        return rc;
    }
    *out = rt;
    return 0;
}

REEL_API reel_store *reel_runtime_store(reel_runtime *rt) {
    REEL_NEED_OR(rt, "rt", NULL);
    return rt->store;
}

REEL_API int reel_runtime_stop(reel_runtime *rt) {
    if (!rt)
        return 0;
    /* All pools at once: none waits for another's workers. */
    size_t n = 0;
    for (reel_pool *p = rt->pools; p; p = p->next)
        n++;
    reel_pool **all = n ? malloc(n * sizeof *all) : NULL;
    if (all) {
        n = 0;
        for (reel_pool *p = rt->pools; p; p = p->next)
            all[n++] = p;
        reel__pools_stop(all, n, 1);
        free(all);
    }
    while (rt->pools)
        reel_pool_stop(rt->pools, 0);
    reel_ctl_msg m = {.type = REEL_CTL_EXIT};
    reel__ctl_send(rt->zygote_fd, &m, NULL, 0);
    close(rt->zygote_fd);
    if (rt->zygote > 0) {
        /* It exits on EXIT or on the closed socket; give it a moment, then insist. */
        int status;
        for (int i = 0; i < 200 && waitpid(rt->zygote, &status, WNOHANG) == 0; i++)
            usleep(10000);
        if (kill(rt->zygote, SIGKILL) == 0)
            waitpid(rt->zygote, &status, 0);
    }
    int rc = reel_store_close(rt->store);
    close(rt->event_fd);
    munmap(rt->exits, sizeof(exit_log));
    free(rt->defs);
    free(rt->store_path);
    free(rt);
    return rc;
}

/* ---- pools: workers ------------------------------------------------------- */

static void publish(reel_pool *p) {
    pool_header *h = p->hdr;
    uint32_t live = 0;
    for (uint32_t i = 0; i < p->nslots; i++)
        live += p->workers[i].state == W_LIVE;
    atomic_store_explicit(&h->workers, live, memory_order_relaxed);
    atomic_store_explicit(&h->queued, (uint32_t)p->pending.count, memory_order_relaxed);
    atomic_store_explicit(&h->in_flight, p->held_total, memory_order_relaxed);
    atomic_store_explicit(&h->completed, p->completed, memory_order_relaxed);
    atomic_store_explicit(&h->failed, p->failed, memory_order_relaxed);
    atomic_store_explicit(&h->retried, p->retried, memory_order_relaxed);
    atomic_store_explicit(&h->restarts, p->restarts, memory_order_relaxed);
}

static void pool_fail(reel_pool *p, int rc, const char *fmt, const char *detail) {
    if (p->failed_rc)
        return;
    p->failed_rc = rc;
    snprintf(p->failed_msg, sizeof p->failed_msg, fmt, p->def->name, detail);
}

/* Forks a worker into slot w through the zygote. */
static int spawn_worker(reel_pool *p, uint32_t w) {
    worker_slot *ws = &p->workers[w];
    int rc = reel__ring_init(pool_task_ring(p->hdr, w), p->hdr->ring_bytes, p->hdr->ring_capacity,
                             sizeof(task_record));
    if (rc == 0)
        rc = reel__ring_init(pool_result_ring(p->hdr, w), p->hdr->ring_bytes, p->hdr->ring_capacity,
                             sizeof(result_record));
    if (rc)
        return rc;
    pool_worker *pw = pool_worker_at(p->hdr, w);
    memset(pw, 0, sizeof *pw);
    uint32_t gen = ws->generation + 1;
    reel_ctl_msg m = {
        .type = REEL_CTL_SPAWN, .actor = p->actor, .pool = p->id, .worker = w, .generation = gen};
    snprintf(m.path, sizeof m.path, "%s", p->path);
    if (p->placer) {
        rc = p->placer(p->placer_arg, w, m.cpus, m.cvd);
        if (rc)
            return rc;
    }
    reel_ctl_msg r;
    int fds[4], nfds = 0;
    pthread_mutex_lock(&p->rt->zygote_lock);
    /* Read before the zygote forks: a worker that dies at once may be reaped
     * and logged before its SPAWNED reply is read here. */
    uint64_t exits_then = atomic_load(&p->rt->exits->next);
    rc = reel__ctl_send(p->rt->zygote_fd, &m, NULL, 0);
    if (rc == 0)
        rc = reel__ctl_recv(p->rt->zygote_fd, &r, fds, &nfds, SPAWN_TIMEOUT_MS);
    pthread_mutex_unlock(&p->rt->zygote_lock);
    if (rc) /* on an error no descriptor was received */
        return reel__fail(rc, "no answer from the zygote: %s", reel_strerror(rc));
    if (r.type == REEL_CTL_SPAWNED && nfds == 2 && r.pool == p->id && r.worker == w &&
        r.generation == gen && r.pid > 0) {
        *ws = (worker_slot){.state = W_LIVE,
                            .pid = r.pid,
                            .spawn_ns = reel__now_ns(CLOCK_MONOTONIC),
                            .exits_then = exits_then,
                            .pidfd = fds[0],
                            .ctl_fd = fds[1],
                            .generation = gen};
        if (w >= p->nslots)
            p->nslots = w + 1;
        /* A busy worker reads its socket only between tasks: the driver never
         * blocks on it (a full socket is -EAGAIN, tried again later). */
        fcntl(fds[1], F_SETFL, fcntl(fds[1], F_GETFL) | O_NONBLOCK);
        return 0;
    }
    for (int i = 0; i < nfds; i++)
        close(fds[i]);
    return reel__fail(r.type == REEL_CTL_ERROR ? r.code : -EPROTO, "zygote: %s",
                      r.type == REEL_CTL_ERROR ? r.text : "unexpected reply");
}

static uint32_t live_workers(const reel_pool *p, int count_stopping) {
    uint32_t n = 0;
    for (uint32_t i = 0; i < p->nslots; i++)
        n += p->workers[i].state == W_LIVE && (count_stopping || !p->workers[i].stopping);
    return n;
}

static int grow(reel_pool *p) {
    while (live_workers(p, 0) < p->target) {
        uint32_t w = 0;
        while (w < POOL_MAX_WORKERS && p->workers[w].state != W_EMPTY)
            w++;
        if (w == POOL_MAX_WORKERS)
            return reel__fail(-EINVAL, "a pool holds at most %u workers", POOL_MAX_WORKERS);
        int rc = spawn_worker(p, w);
        if (rc)
            return rc;
    }
    return 0;
}

static void stop_worker(reel_pool *p, uint32_t w) {
    worker_slot *ws = &p->workers[w];
    if (ws->state != W_LIVE || ws->stopping)
        return;
    ws->stopping = 1;
    reel__ring_close(pool_task_ring(p->hdr, w));
    reel_ctl_msg m = {.type = REEL_CTL_STOP};
    reel__ctl_send(ws->ctl_fd, &m, NULL, 0);
}

/* ---- pools: tasks ---------------------------------------------------------- */

static uint32_t entry_new(reel_pool *p) {
    if (p->free_head == UINT32_MAX) {
        uint32_t cap = p->entries_cap ? p->entries_cap * 2 : 256;
        task_entry *n = realloc(p->entries, cap * sizeof *n);
        if (!n)
            return UINT32_MAX;
        for (uint32_t i = cap; i-- > p->entries_cap;) {
            n[i].next_free = p->free_head;
            p->free_head = i;
        }
        p->entries = n;
        p->entries_cap = cap;
    }
    uint32_t e = p->free_head;
    p->free_head = p->entries[e].next_free;
    return e;
}

static void entry_free(reel_pool *p, uint32_t e) {
    p->entries[e].next_free = p->free_head;
    p->free_head = e;
}

/* A task ended; the result names its outputs (those of r, NULL: none). */
static void finish(reel_pool *p, uint32_t e, int status, const result_record *rec) {
    task_entry *t = &p->entries[e];
    reel_task_result r;
    memset(&r, 0, sizeof r);
    r.task_id = t->id;
    r.status = status;
    r.attempts = t->attempt;
    r.flags = t->flags;
    if (rec) {
        r.flags |= rec->flags;
        r.n_outputs = rec->n_outputs;
        r.forwarded = rec->forwarded;
        r.artifacts = rec->artifacts;
        memcpy(r.outputs, rec->outputs,
               (rec->flags & REEL_RESULT_OUTPUT_LIST ? 1 : rec->n_outputs) * sizeof(reel_id));
    }
    r.n_inputs = t->n_inputs;
    memcpy(r.inputs, t->inputs, t->n_inputs * sizeof(reel_id));
    if (status) {
        snprintf(r.error, sizeof r.error, "%s", t->error[0] ? t->error : reel_strerror(status));
        p->failed++;
    } else {
        p->completed++;
    }
    if (fifo_push(&p->done, &r, 0) != 0)
        pool_fail(p, -ENOMEM, "%s: %s", "out of memory for results");
    entry_free(p, e);
}

/* A task failed on a worker (an error or the worker's death): again, or for good. */
static void retry_or_fail(reel_pool *p, uint32_t e, int status) {
    task_entry *t = &p->entries[e];
    t->status = status;
    if (t->attempt <= p->max_retries) {
        t->attempt++;
        p->retried++;
        t->error[0] = '\0'; /* the next attempt reports its own */
        t->timed_out = 0;
        fifo_push(&p->pending, &e, 1);
    } else {
        finish(p, e, status, NULL);
    }
}

static void unhold(reel_pool *p, worker_slot *ws, uint32_t k) {
    memmove(&ws->held[k], &ws->held[k + 1], (ws->nheld - k - 1) * sizeof ws->held[0]);
    ws->nheld--;
    p->held_total--;
}

static void read_control(reel_pool *p, worker_slot *ws) {
    for (;;) {
        reel_ctl_msg m;
        int fds[4], nfds = 0;
        int rc = reel__ctl_recv(ws->ctl_fd, &m, fds, &nfds, 0);
        for (int i = 0; i < nfds; i++)
            close(fds[i]);
        if (rc == -EAGAIN || rc == -ECONNRESET || (rc != 0 && rc != -EBADMSG && rc != -EMSGSIZE))
            return;
        if (rc != 0)
            continue;
        if (m.type == REEL_CTL_STATS) {
            ws->drain_wait = 0;
            ws->rss = m.rss;
        } else if (m.type == REEL_CTL_READY && m.generation == ws->generation) {
            if (!ws->ready)
                ws->ready_ns = reel__now_ns(CLOCK_MONOTONIC);
            ws->ready = 1;
            p->ever_ready = 1;
        } else if (m.type == REEL_CTL_ERROR && m.phase == 2 && m.has_task) {
            for (uint32_t k = 0; k < ws->nheld; k++)
                if (reel_id_equal(&p->entries[ws->held[k]].id, &m.task))
                    snprintf(p->entries[ws->held[k]].error, REEL_ERROR_TEXT_MAX, "%s", m.text);
        } else if (m.type == REEL_CTL_ERROR && m.phase == 1 && !p->ever_ready) {
            /* No worker of this stage ever got through setup: it will not now. */
            pool_fail(p, m.code ? m.code : -EIO, "stage %s: setup failed: %s", m.text);
        }
    }
}

/* Whether output k of a task, id, is one its attempt may name: made by it
 * (the ID it derives), or one of its inputs passed on; an input's artifact
 * carried on the executor checks. */
static bool output_ok(const reel_pool *p, const reel_id *task, const reel_id *inputs,
                      uint32_t n_inputs, uint32_t k, const reel_id *id, bool forwarded,
                      bool artifact) {
    if (forwarded && artifact)
        return true;
    if (forwarded) {
        for (uint32_t i = 0; i < n_inputs; i++)
            if (reel_id_equal(&inputs[i], id))
                return true;
        return false;
    }
    reel_id want;
    reel_actor_output_id(p->def->name, task, k, &want);
    return reel_id_equal(&want, id);
}

/* The ID of the output list of a task of p's stage (the worker's
 * write_output_list() derives the same). */
static void output_list_id(const reel_pool *p, const reel_id *task, reel_id *out) {
    reel_id parent;
    reel__output_parent(p->def->name, task, &parent);
    reel_id_derive(&parent, OUTPUT_LIST_INDEX, out);
}

/* Whether a result names exactly the outputs its task's attempt derives:
 * a worker is another process, and the driver deletes what results name.
 * The outputs are the result's own, or (REEL_RESULT_OUTPUT_LIST) those of
 * the list at the ID the task derives, as many as the result says; the
 * inputs a forwarded output may be are the task's own or its input list's. */
static bool outputs_ok(const reel_pool *p, const task_entry *t, const result_record *r) {
    if (r->flags & ~REEL_RESULT_OUTPUT_LIST)
        return false;
    const reel_id *ids = r->outputs;
    const uint64_t *fwd = &r->forwarded, *art = &r->artifacts;
    uint32_t n = r->n_outputs;
    reel_list outs, ins;
    bool listed = r->flags & REEL_RESULT_OUTPUT_LIST;
    if (listed) {
        reel_id want;
        output_list_id(p, &r->task_id, &want);
        if (n <= REEL_TASK_MAX_OUTPUTS || r->forwarded || r->artifacts ||
            !reel_id_equal(&want, &r->outputs[0]) ||
            reel_list_open(p->rt->store, &want, 0, &outs) != 0)
            return false;
        ids = outs.ids;
        fwd = outs.forwarded;
        art = outs.artifacts;
    } else if (n > REEL_TASK_MAX_OUTPUTS) {
        return false;
    }
    /* The last output is an item, and the bits past n are clear: readers
     * count artifacts by words. */
    uint32_t tail = n & 63;
    bool ok = (!listed || outs.n == n) && (n == 0 || !reel_list_bit(art, n - 1)) &&
              ((tail == 0 && n > 0) || ((fwd[n >> 6] | art[n >> 6]) >> tail) == 0);
    const reel_id *inputs = t->inputs;
    uint32_t n_inputs = t->n_inputs;
    bool in_listed = ok && (t->flags & REEL_RESULT_INPUT_LIST);
    if (in_listed) {
        in_listed = reel_list_open(p->rt->store, &t->inputs[0], 0, &ins) == 0;
        ok = in_listed;
        inputs = in_listed ? ins.ids : NULL;
        n_inputs = in_listed ? ins.n : 0;
    }
    for (uint32_t k = 0; ok && k < n; k++)
        ok = output_ok(p, &r->task_id, inputs, n_inputs, k, &ids[k], reel_list_bit(fwd, k),
                       reel_list_bit(art, k));
    if (in_listed)
        reel_list_close(p->rt->store, &ins);
    if (listed)
        reel_list_close(p->rt->store, &outs);
    return ok;
}

/* A result refused: its output list, if it is at the ID the task derives
 * (what else it names may be no object of this task's), goes. */
static void drop_output_list(const reel_pool *p, const result_record *r) {
    reel_id want;
    output_list_id(p, &r->task_id, &want);
    if ((r->flags & REEL_RESULT_OUTPUT_LIST) && reel_id_equal(&want, &r->outputs[0]))
        reel_obj_delete(p->rt->store, &want);
}

static int drain_results(reel_pool *p, uint32_t w) {
    worker_slot *ws = &p->workers[w];
    reel_ring *ring = pool_result_ring(p->hdr, w);
    int n = 0;
    result_record r;
    while (reel__ring_pop(ring, &r, 0, 0) == 0) {
        n++;
        uint32_t k = 0;
        while (k < ws->nheld && !reel_id_equal(&p->entries[ws->held[k]].id, &r.task_id))
            k++;
        if (k == ws->nheld)
            continue; /* not a task this worker holds: never trusted */
        uint32_t e = ws->held[k];
        if (r.status != 0)
            read_control(p, ws); /* its error text came first: match it while still held */
        unhold(p, ws, k);
        p->busy_ns += r.busy_ns;
        if (r.measured_ns >= r.wait_ns) {
            p->cpu_ns += r.cpu_ns;
            p->wait_ns += r.wait_ns;
            p->measured_ns += r.measured_ns;
        }
        if (r.status == 0 && outputs_ok(p, &p->entries[e], &r)) {
            finish(p, e, 0, &r);
        } else {
            if (r.status == 0)
                snprintf(p->entries[e].error, REEL_ERROR_TEXT_MAX,
                         "%s: the worker named outputs that are not this task's", p->def->name);
            drop_output_list(p, &r);
            retry_or_fail(p, e, r.status < 0 ? r.status : -EPROTO);
        }
    }
    return n;
}

/* The name of signal sig, as a shell prints it. */
static const char *signal_name(int sig, char *buf, size_t cap) {
    const char *abbrev = sigabbrev_np(sig); /* glibc's own list: "SEGV", NULL if none */
    if (abbrev)
        snprintf(buf, cap, "SIG%s", abbrev);
    else
        snprintf(buf, cap, "signal %d", sig);
    return buf;
}

/* How pid ended, from the zygote's log entries since since (an earlier
 * process may have had the pid): 1 and *status, or 0 if the zygote has not
 * reaped it by EXIT_WAIT_MS (it reaps at once; it may be gone). */
static int exit_status_of(reel_runtime *rt, pid_t pid, uint64_t since, int *status) {
    uint64_t deadline = reel__now_ns(CLOCK_MONOTONIC) + EXIT_WAIT_MS * 1000000ull;
    for (int round = 0; round == 0 || reel__now_ns(CLOCK_MONOTONIC) < deadline; round++) {
        if (round > 0) { /* not there at once: is there a zygote to write it? */
            siginfo_t si = {0};
            if (waitid(P_PID, (id_t)rt->zygote, &si, WEXITED | WNOHANG | WNOWAIT) != 0 ||
                si.si_pid != 0)
                return 0;
        }
        uint64_t n = atomic_load_explicit(&rt->exits->next, memory_order_acquire);
        for (uint64_t k = n; k-- > since && n - k <= EXIT_LOG_SIZE;) {
            exit_entry *x = &rt->exits->e[k % EXIT_LOG_SIZE];
            uint64_t v = atomic_load_explicit(&x->pid_status, memory_order_acquire);
            if ((int32_t)(uint32_t)(v >> 32) == (int32_t)pid) {
                *status = (int)(uint32_t)v;
                return 1;
            }
        }
        usleep(100);
    }
    return 0;
}

/* "killed by SIGSEGV", "exited with status 1" or "died" (the cause unknown). */
static void death_cause(reel_runtime *rt, const worker_slot *ws, int *clean, char *buf,
                        size_t cap) {
    int status;
    char sig[32];
    *clean = 0;
    if (!exit_status_of(rt, ws->pid, ws->exits_then, &status))
        snprintf(buf, cap, "died");
    else if (WIFSIGNALED(status))
        snprintf(buf, cap, "killed by %s", signal_name(WTERMSIG(status), sig, sizeof sig));
    else if (WIFEXITED(status)) {
        *clean = WEXITSTATUS(status) == 0;
        snprintf(buf, cap, "exited with status %d", WEXITSTATUS(status));
    } else
        snprintf(buf, cap, "died");
}

/* Worker w has exited. With stopped set the pool asked it to: its tasks are
 * not retried (the pool goes) and its cause is not looked for. Otherwise the
 * tasks it held are retried, each told how it ended and which task it was
 * running, and it is replaced while restarts remain. */
static void worker_died(reel_pool *p, uint32_t w, int stopped) {
    worker_slot *ws = &p->workers[w];
    read_control(p, ws);
    drain_results(p, w); /* results it pushed before dying are good */
    char cause[64] = "stopped", running[REEL_ID_HEX_LEN + 1] = "";
    int clean = 1;
    if (!stopped) {
        death_cause(p->rt, ws, &clean, cause, sizeof cause);
        /* Results taken, held[0] is the task it was running, if it had begun one. */
        if (ws->nheld > 0 && atomic_load(&pool_worker_at(p->hdr, w)->task_start_ns) != 0)
            reel_id_to_hex(&p->entries[ws->held[0]].id, running);
        if (!(clean && ws->stopping)) /* a removed worker that exited as asked is no news */
            snprintf(p->last_death, sizeof p->last_death, "worker %u (pid %d) %s%s%s", w,
                     (int)ws->pid, cause, running[0] ? " while running task " : "", running);
    }
    for (uint32_t k = 0; ws->nheld > 0; k++) {
        uint32_t e = ws->held[0];
        unhold(p, ws, 0);
        task_entry *t = &p->entries[e];
        char hex[REEL_ID_HEX_LEN + 1];
        reel_id_to_hex(&t->id, hex);
        int ran = k == 0 && running[0];
        if (!ran && !t->timed_out) {
            /* Only prefetched: the death was not its doing, so it costs no
             * attempt (a stage without retries would lose it otherwise). */
            t->error[0] = '\0';
            fifo_push(&p->pending, &e, 1);
            continue;
        }
        if (!t->timed_out)
            snprintf(t->error, REEL_ERROR_TEXT_MAX,
                     "%s: worker %u (pid %d) %s while running task %s", p->def->name, w,
                     (int)ws->pid, cause, hex);
        retry_or_fail(p, e, t->timed_out ? -ETIMEDOUT : -ECHILD);
    }
    close(ws->pidfd);
    close(ws->ctl_fd);
    int was_stopping = ws->stopping;
    ws->state = W_EMPTY;
    ws->pidfd = ws->ctl_fd = -1;
    ws->ready = ws->stopping = 0;
    ws->ready_ns = 0;
    reel_store_reclaim(p->rt->store, NULL); /* its references and unsealed outputs */
    if (was_stopping || p->failed_rc)
        return;
    if (p->restarts >= p->max_restarts) {
        if (live_workers(p, 0) == 0)
            pool_fail(p, -EPIPE, "stage %s: %s", "no worker left: maximum restarts reached");
        return;
    }
    p->restarts++;
    int rc = grow(p);
    if (rc && live_workers(p, 0) == 0)
        pool_fail(p, rc, "stage %s: cannot replace a worker: %s", reel_strerror(rc));
}

/* Deaths, control messages and hung tasks: checked every CHECK_INTERVAL_NS
 * while busy, and whenever poll() said something happened. */
static void check_workers(reel_pool *p, uint64_t now) {
    p->last_check_ns = now;
    for (uint32_t w = 0; w < p->nslots; w++) {
        worker_slot *ws = &p->workers[w];
        if (ws->state != W_LIVE)
            continue;
        read_control(p, ws);
        struct pollfd pfd = {.fd = ws->pidfd, .events = POLLIN};
        if (poll(&pfd, 1, 0) > 0) {
            worker_died(p, w, 0);
            continue;
        }
        uint64_t start = atomic_load(&pool_worker_at(p->hdr, w)->task_start_ns);
        uint32_t limit = p->def->task_timeout_ms;
        if (limit && start && now > start && now - start > (uint64_t)limit * 1000000ull &&
            ws->nheld > 0) {
            drain_results(p, w); /* what finished first: held[0] is then the running task */
            if (ws->nheld == 0)
                continue;
            task_entry *t = &p->entries[ws->held[0]];
            t->timed_out = 1;
            snprintf(t->error, REEL_ERROR_TEXT_MAX, "%s: task ran past %u ms: worker killed",
                     p->def->name, limit);
            pidfd_kill(ws->pidfd, SIGKILL);
        }
    }
}

static void dispatch(reel_pool *p) {
    while (p->pending.count > 0 && !p->draining) {
        uint32_t best = UINT32_MAX, best_held = p->slots;
        for (uint32_t w = 0; w < p->nslots; w++) {
            worker_slot *ws = &p->workers[w];
            if (ws->state == W_LIVE && !ws->stopping && ws->nheld < best_held) {
                best = w;
                best_held = ws->nheld;
                if (best_held == 0)
                    break;
            }
        }
        if (best == UINT32_MAX)
            return;
        uint32_t e;
        fifo_pop(&p->pending, &e);
        task_entry *t = &p->entries[e];
        task_record rec;
        rec.task_id = t->id;
        rec.attempt = t->attempt;
        rec.flags = t->flags;
        rec.reserved = 0;
        rec.n_inputs = t->n_inputs;
        memcpy(rec.inputs, t->inputs, t->n_inputs * sizeof(reel_id));
        reel_ring *ring = pool_task_ring(p->hdr, best);
        worker_slot *ws = &p->workers[best];
        if ((p->hold_wakes ? reel__ring_push_quiet(ring, &rec)
                           : reel__ring_push(ring, &rec, 0, 0)) != 0) {
            fifo_push(&p->pending, &e, 1); /* cannot happen while nheld < slots */
            return;
        }
        ws->wake_due |= p->hold_wakes;
        ws->held[ws->nheld++] = e;
        p->held_total++;
    }
}

/* Whether worker w has been busy past STEAL_AFTER_NS, in one task or in its
 * setup: what it only prefetched would wait for it. */
static bool busy_too_long(reel_pool *p, uint32_t w, uint64_t now) {
    const worker_slot *ws = &p->workers[w];
    uint64_t start = ws->ready ? atomic_load_explicit(&pool_worker_at(p->hdr, w)->task_start_ns,
                                                      memory_order_acquire)
                               : ws->spawn_ns;
    return start && now > start && now - start >= STEAL_AFTER_NS;
}

/* Hands tasks that busy workers only prefetched to idle ones. The driver
 * pops the task from the holder's ring, where the holder pops it too: the
 * ring's CAS on its read position gives each record to exactly one of them,
 * so a task is either begun by its holder (and stays its) or taken back
 * (and never seen by it), never both, never neither. A task taken back
 * keeps its attempt number: it never ran. */
static void steal(reel_pool *p, uint64_t now) {
    if (p->draining || p->pending.count > 0)
        return; /* an idle worker gets queued work from dispatch() first */
    /* Cheap checks first: pump() calls this on every round. */
    uint32_t idle[POOL_MAX_WORKERS], nidle = 0, from[POOL_MAX_WORKERS], nfrom = 0;
    for (uint32_t w = 0; w < p->nslots; w++) {
        const worker_slot *ws = &p->workers[w];
        if (ws->state == W_LIVE && !ws->stopping && ws->ready && ws->nheld == 0)
            idle[nidle++] = w;
    }
    if (nidle == 0)
        return;
    for (uint32_t w = 0; w < p->nslots; w++) {
        const worker_slot *ws = &p->workers[w];
        /* A ready worker holds what it runs and what it prefetched. */
        if (ws->state == W_LIVE && ws->nheld > (ws->ready ? 1u : 0u) && busy_too_long(p, w, now) &&
            reel__ring_depth(pool_task_ring(p->hdr, w)) > 0)
            from[nfrom++] = w;
    }
    for (uint32_t i = 0, v = 0; i < nidle && v < nfrom;) {
        worker_slot *fw = &p->workers[from[v]], *tw = &p->workers[idle[i]];
        task_record rec;
        if (reel__ring_pop(pool_task_ring(p->hdr, from[v]), &rec, 0, 0) != 0) {
            v++; /* its holder began what it had left meanwhile */
            continue;
        }
        uint32_t k = 0;
        while (k < fw->nheld && !reel_id_equal(&p->entries[fw->held[k]].id, &rec.task_id))
            k++;
        if (k == fw->nheld)
            continue; /* not held: a worker answered for it early; it is done with */
        uint32_t e = fw->held[k];
        unhold(p, fw, k);
        p->stolen++;
        reel_ring *ring = pool_task_ring(p->hdr, idle[i]);
        if ((p->hold_wakes ? reel__ring_push_quiet(ring, &rec)
                           : reel__ring_push(ring, &rec, 0, 0)) != 0) {
            fifo_push(&p->pending, &e, 1); /* cannot happen: it held none */
            return;
        }
        tw->wake_due |= p->hold_wakes;
        tw->held[tw->nheld++] = e;
        p->held_total++;
        i++;
    }
}

/* The sentence a collect that timed out leaves: where the tasks are. */
static int timed_out(reel_pool *p) {
    char buf[400];
    size_t len = 0;
    uint64_t now = reel__now_ns(CLOCK_MONOTONIC);
    int n = snprintf(buf, sizeof buf, "%u task%s in flight, %zu queued", p->held_total,
                     p->held_total == 1 ? "" : "s", p->pending.count);
    len = n > 0 && (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1;
    const char *sep = ": ";
    for (uint32_t w = 0; w < p->nslots && len < sizeof buf - 1; w++) {
        const worker_slot *ws = &p->workers[w];
        if (ws->state != W_LIVE || ws->nheld == 0)
            continue;
        uint64_t start = atomic_load(&pool_worker_at(p->hdr, w)->task_start_ns);
        char running[64] = ", none begun";
        if (!ws->ready)
            snprintf(running, sizeof running, ", in setup");
        else if (start && now > start)
            snprintf(running, sizeof running, ", one running for %llu ms",
                     (unsigned long long)((now - start) / 1000000ull));
        n = snprintf(buf + len, sizeof buf - len, "%sworker %u (pid %d) holds %u%s", sep, w,
                     (int)ws->pid, ws->nheld, running);
        len += n > 0 && (size_t)n < sizeof buf - len ? (size_t)n : sizeof buf - 1 - len;
        sep = "; ";
    }
    return reel__fail(-ETIMEDOUT, "%s", buf);
}

/* Whether a worker has pushed a result the driver has not taken yet. */
static int results_waiting(reel_pool *p) {
    for (uint32_t w = 0; w < p->nslots; w++)
        if (p->workers[w].state == W_LIVE && p->workers[w].nheld > 0 &&
            reel__ring_depth(pool_result_ring(p->hdr, w)) > 0)
            return 1;
    return 0;
}

/* One round of supervision; waits up to deadline_ns (0: do not wait) when
 * there was nothing to do. Returns how many results came in. */
static int pump(reel_pool *p, uint64_t deadline_ns) {
    uint64_t now = reel__now_ns(CLOCK_MONOTONIC);
    if (now - p->last_check_ns >= CHECK_INTERVAL_NS)
        check_workers(p, now);
    int got = 0;
    for (uint32_t w = 0; w < p->nslots; w++)
        if (p->workers[w].state == W_LIVE && p->workers[w].nheld > 0)
            got += drain_results(p, w);
    dispatch(p);
    steal(p, now);
    if (got || deadline_ns == 0 || p->done.count || p->failed_rc) {
        publish(p);
        return got;
    }
    /* Nothing yet: spin on the result rings, then sleep in poll(). */
    uint64_t spin_start = now, spin_end = now + p->rt->spin_ns;
    for (;;) {
        if (results_waiting(p))
            return got;
        now = reel__now_ns(CLOCK_MONOTONIC);
        if (now >= spin_end || now >= deadline_ns)
            break;
        reel__spin_yield(spin_start, now);
    }
    if (now >= deadline_ns)
        return got;
    struct pollfd fds[1 + 2 * POOL_MAX_WORKERS];
    nfds_t n = 0;
    fds[n++] = (struct pollfd){.fd = p->rt->event_fd, .events = POLLIN};
    for (uint32_t w = 0; w < p->nslots; w++) {
        if (p->workers[w].state != W_LIVE)
            continue;
        fds[n++] = (struct pollfd){.fd = p->workers[w].pidfd, .events = POLLIN};
        fds[n++] = (struct pollfd){.fd = p->workers[w].ctl_fd, .events = POLLIN};
    }
    atomic_store_explicit(&p->hdr->driver_sleeping, 1, memory_order_seq_cst);
    if (!results_waiting(p)) { /* the last look, now that workers will wake us */
        uint64_t left_ms = (deadline_ns - now + 999999) / 1000000;
        int r = poll(fds, n, left_ms > 100 ? 100 : (int)left_ms);
        if (r > 0) {
            uint64_t drain;
            if (fds[0].revents & POLLIN)
                while (read(p->rt->event_fd, &drain, sizeof drain) > 0)
                    ;
            for (nfds_t i = 1; i < n; i++)
                if (fds[i].revents)
                    p->last_check_ns = 0; /* a death or a message: look now */
        }
    }
    atomic_store_explicit(&p->hdr->driver_sleeping, 0, memory_order_relaxed);
    return got;
}

void reel__pool_hold_wakes(reel_pool *p, int hold) {
    p->hold_wakes = hold;
    if (hold)
        return;
    for (uint32_t w = 0; w < p->nslots; w++)
        if (p->workers[w].wake_due) {
            p->workers[w].wake_due = 0;
            if (p->workers[w].state == W_LIVE)
                reel__ring_wake_consumers(pool_task_ring(p->hdr, w));
        }
}

/* Several pools driven by one thread: waits until any of them has a result,
 * a death or a message, or until deadline_ns; spins first, as pump() does. */
int reel__pools_wait(reel_runtime *rt, reel_pool *const *pools, size_t n, uint64_t deadline_ns) {
    uint64_t now = reel__now_ns(CLOCK_MONOTONIC), spin_start = now;
    uint64_t spin_end = now + rt->spin_ns;
    for (;;) {
        for (size_t i = 0; i < n; i++)
            if (pools[i] && (results_waiting(pools[i]) || pools[i]->done.count))
                return 1;
        now = reel__now_ns(CLOCK_MONOTONIC);
        if (now >= spin_end || now >= deadline_ns)
            break;
        reel__spin_yield(spin_start, now);
    }
    if (now >= deadline_ns)
        return 0;
    size_t cap = 1;
    for (size_t i = 0; i < n; i++)
        cap += pools[i] ? 2 * (size_t)pools[i]->nslots : 0;
    struct pollfd *fds = malloc(cap * sizeof *fds);
    uint32_t *owner = malloc(cap * sizeof *owner);
    if (!fds || !owner) {
        free(fds);
        free(owner);
        return -ENOMEM;
    }
    nfds_t nf = 0;
    fds[nf++] = (struct pollfd){.fd = rt->event_fd, .events = POLLIN};
    for (size_t i = 0; i < n; i++) {
        reel_pool *p = pools[i];
        if (!p)
            continue;
        for (uint32_t w = 0; w < p->nslots; w++) {
            if (p->workers[w].state != W_LIVE)
                continue;
            owner[nf] = (uint32_t)i;
            fds[nf++] = (struct pollfd){.fd = p->workers[w].pidfd, .events = POLLIN};
            owner[nf] = (uint32_t)i;
            fds[nf++] = (struct pollfd){.fd = p->workers[w].ctl_fd, .events = POLLIN};
        }
        atomic_store_explicit(&p->hdr->driver_sleeping, 1, memory_order_seq_cst);
    }
    int waiting = 0;
    for (size_t i = 0; i < n && !waiting; i++) /* the last look, now that workers will wake us */
        waiting = pools[i] && results_waiting(pools[i]);
    if (!waiting) {
        uint64_t left_ms = (deadline_ns - now + 999999) / 1000000;
        int r = poll(fds, nf, left_ms > 100 ? 100 : (int)left_ms);
        if (r > 0) {
            uint64_t drain;
            if (fds[0].revents & POLLIN)
                while (read(rt->event_fd, &drain, sizeof drain) > 0)
                    ;
            for (nfds_t k = 1; k < nf; k++)
                if (fds[k].revents)
                    pools[owner[k]]->last_check_ns = 0; /* a death or a message */
        }
    }
    /* Take in those deaths and messages now: a pool the caller does not
     * collect from would otherwise keep poll() returning at once. */
    now = reel__now_ns(CLOCK_MONOTONIC);
    for (size_t i = 0; i < n; i++)
        if (pools[i] && pools[i]->last_check_ns == 0)
            check_workers(pools[i], now);
    for (size_t i = 0; i < n; i++)
        if (pools[i])
            atomic_store_explicit(&pools[i]->hdr->driver_sleeping, 0, memory_order_relaxed);
    free(fds);
    free(owner);
    return 1;
}

/* ---- pools: the API --------------------------------------------------------- */

static const reel_actor_def *find_actor(reel_runtime *rt, const char *name, uint32_t *index) {
    for (size_t i = 0; i < rt->n_defs; i++)
        if (strcmp(rt->defs[i].name, name) == 0) {
            *index = (uint32_t)i;
            return &rt->defs[i];
        }
    return NULL;
}

static int create_segment(reel_pool *p) {
    uint32_t cap = 2;
    while (cap < p->slots)
        cap <<= 1;
    size_t rb = reel__ring_bytes(cap, sizeof(result_record));
    size_t tb = reel__ring_bytes(cap, sizeof(task_record));
    size_t ring_bytes = ((rb > tb ? rb : tb) + 63) & ~(size_t)63;
    if (ring_bytes == 0)
        return -EINVAL;
    size_t workers_off = (sizeof(pool_header) + 63) & ~(size_t)63;
    size_t rings_off = workers_off + POOL_MAX_WORKERS * sizeof(pool_worker);
    rings_off = (rings_off + 4095) & ~(size_t)4095;
    size_t size = rings_off + (size_t)POOL_MAX_WORKERS * 2 * ring_bytes;
    uint32_t salt;
    reel_id_random((reel_id *)&p->base);
    memcpy(&salt, p->base.bytes, sizeof salt);
    char dir[64];
    int drc = reel__private_dir(dir, sizeof dir);
    if (drc)
        return drc;
    snprintf(p->path, sizeof p->path, "%s/reel-pool-%d-%u-%08x", dir, (int)getpid(), p->id, salt);
    int fd = open(p->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    /* Reserve the pages now: on a full /dev/shm a first touch later would be SIGBUS. */
    int rc = -posix_fallocate(fd, 0, (off_t)size);
    void *base = rc ? MAP_FAILED : mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (base == MAP_FAILED) {
        rc = rc ? rc : -errno;
        unlink(p->path);
        return rc;
    }
    pool_header *h = base;
    memset(h, 0, sizeof *h);
    h->version = POOL_VERSION;
    h->max_workers = POOL_MAX_WORKERS;
    h->size = size;
    h->ring_capacity = cap;
    h->ring_bytes = (uint32_t)ring_bytes;
    h->workers_off = workers_off;
    h->rings_off = rings_off;
    snprintf(h->stage, sizeof h->stage, "%s", p->def->name);
    memcpy(h->magic, POOL_MAGIC, 8);
    p->hdr = h;
    p->size = size;
    return 0;
}

static void pool_free(reel_pool *p) {
    for (reel_pool **pp = &p->rt->pools; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    if (p->hdr) {
        munmap(p->hdr, p->size);
        unlink(p->path);
    }
    free(p->entries);
    free(p->pending.items);
    free(p->done.items);
    free(p);
}

REEL_API int reel_pool_start(reel_runtime *rt, const char *name, uint32_t workers,
                             reel_pool **out) {
    REEL_NEED(rt, "rt");
    REEL_NEED(name, "name");
    REEL_NEED(out, "out");
    return reel__pool_start_placed(rt, name, workers, NULL, NULL, out);
}

int reel__pool_start_placed(reel_runtime *rt, const char *name, uint32_t workers,
                            reel_pool_placer placer, void *placer_arg, reel_pool **out) {
    reel__clear_error();
    if (!rt || !name || !out || workers > POOL_MAX_WORKERS)
        return -EINVAL;
    uint32_t actor;
    const reel_actor_def *def = find_actor(rt, name, &actor);
    if (!def)
        return reel__fail(-ENOENT, "no actor named %s was given to reel_runtime_start", name);
    reel_pool *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->rt = rt;
    p->placer = placer;
    p->placer_arg = placer_arg;
    p->id = rt->next_pool++;
    p->actor = actor;
    p->def = def;
    p->slots = def->slots;
    p->max_retries = def->max_retries;
    p->max_restarts = def->max_restarts;
    p->free_head = UINT32_MAX;
    p->pending.item_size = sizeof(uint32_t);
    p->done.item_size = sizeof(reel_task_result);
    for (uint32_t w = 0; w < POOL_MAX_WORKERS; w++)
        p->workers[w].pidfd = p->workers[w].ctl_fd = -1;
    p->next = rt->pools;
    rt->pools = p;
    int rc = create_segment(p);
    if (rc == 0) {
        p->target = workers;
        rc = grow(p);
    }
    if (rc) {
        reel_pool_stop(p, 0);
        return rc;
    }
    publish(p);
    *out = p;
    return 0;
}

/* A ready worker within the grace reel__pool_set_grace() gave it, from
 * the moment the driver read its READY. */
static bool in_grace(const reel_pool *p, const worker_slot *ws, uint64_t now) {
    return ws->ready && now - ws->ready_ns < p->grace_ns;
}

/* The worker reel_pool_resize() removes next: one past setup and its grace
 * before one within its grace, before one still in setup (it has cost its
 * setup and not produced yet); among those the least loaded, which gives
 * back its tasks soonest; then the one ready longest. */
static uint32_t removal_pick(const reel_pool *p, uint64_t now) {
    uint32_t pick = UINT32_MAX, pick_rank = 0;
    for (uint32_t w = 0; w < p->nslots; w++) {
        const worker_slot *ws = &p->workers[w];
        if (ws->state != W_LIVE || ws->stopping)
            continue;
        uint32_t rank = !ws->ready ? 2 : in_grace(p, ws, now) ? 1 : 0;
        if (pick == UINT32_MAX || rank < pick_rank ||
            (rank == pick_rank &&
             (ws->nheld < p->workers[pick].nheld ||
              (ws->nheld == p->workers[pick].nheld && ws->ready_ns < p->workers[pick].ready_ns)))) {
            pick = w;
            pick_rank = rank;
        }
    }
    return pick;
}

REEL_API int reel_pool_resize(reel_pool *p, uint32_t workers) {
    REEL_NEED(p, "pool");
    if (workers > POOL_MAX_WORKERS)
        return reel__fail(-EINVAL, "reel_pool_resize: %u workers, more than %u", workers,
                          POOL_MAX_WORKERS);
    p->target = workers;
    uint32_t live = live_workers(p, 0);
    uint64_t now = reel__now_ns(CLOCK_MONOTONIC);
    for (; live > workers; live--)
        stop_worker(p, removal_pick(p, now));
    int rc = grow(p);
    dispatch(p);
    publish(p);
    return rc;
}

void reel__pool_set_grace(reel_pool *p, uint64_t grace_ns) {
    p->grace_ns = grace_ns;
}

void reel__pool_census(reel_pool *p, reel_pool_census *out) {
    memset(out, 0, sizeof *out);
    uint32_t stopping = 0;
    for (uint32_t w = 0; w < p->nslots; w++)
        stopping += p->workers[w].state == W_LIVE && p->workers[w].stopping;
    uint64_t now = reel__now_ns(CLOCK_MONOTONIC);
    if (stopping) /* learn which have exited since the last look */
        check_workers(p, now);
    for (uint32_t w = 0; w < p->nslots; w++) {
        const worker_slot *ws = &p->workers[w];
        if (ws->state != W_LIVE)
            continue;
        if (ws->stopping) {
            out->stopping++;
            continue;
        }
        out->live++;
        out->setup += !ws->ready;
        out->settling += !ws->ready || in_grace(p, ws, now);
    }
}

static int submit(reel_pool *p, const reel_id *inputs, uint32_t n, uint32_t flags,
                  const reel_id *task_id, int timeout_ms, reel_id *task_id_out);

REEL_API int reel_pool_submit(reel_pool *p, const reel_id *inputs, uint32_t n,
                              const reel_id *task_id, int timeout_ms, reel_id *task_id_out) {
    REEL_NEED(p, "pool");
    REEL_NEED(inputs || n == 0, "inputs");
    if (n > REEL_TASK_MAX_INPUTS)
        return reel__fail(-EINVAL,
                          "reel_pool_submit: %u inputs, more than %u (reel_pool_submit_list() "
                          "takes any number)",
                          n, REEL_TASK_MAX_INPUTS);
    return submit(p, inputs, n, 0, task_id, timeout_ms, task_id_out);
}

REEL_API int reel_pool_submit_list(reel_pool *p, const reel_id *list, const reel_id *task_id,
                                   int timeout_ms, reel_id *task_id_out) {
    REEL_NEED(p, "pool");
    REEL_NEED(list, "list");
    reel_list l;
    int rc = reel_list_open(p->rt->store, list, 0, &l);
    if (rc)
        return reel__fail(rc, "reel_pool_submit_list: the list: %s", reel_strerror(rc));
    reel_list_close(p->rt->store, &l);
    return submit(p, list, 1, REEL_RESULT_INPUT_LIST, task_id, timeout_ms, task_id_out);
}

static int submit(reel_pool *p, const reel_id *inputs, uint32_t n, uint32_t flags,
                  const reel_id *task_id, int timeout_ms, reel_id *task_id_out) {
    if (p->failed_rc)
        return reel__fail(-EPIPE, "%s", p->failed_msg);
    uint64_t deadline = timeout_ms < 0
                            ? UINT64_MAX
                            : reel__now_ns(CLOCK_MONOTONIC) + (uint64_t)timeout_ms * 1000000ull;
    while (p->pending.count >= PENDING_LIMIT) {
        if (timeout_ms == 0 || reel__now_ns(CLOCK_MONOTONIC) >= deadline)
            return -ETIMEDOUT;
        pump(p, deadline);
        if (p->failed_rc)
            return reel__fail(-EPIPE, "%s", p->failed_msg);
    }
    uint32_t e = entry_new(p);
    if (e == UINT32_MAX)
        return -ENOMEM;
    task_entry *t = &p->entries[e];
    memset(t, 0, offsetof(task_entry, next_free));
    if (task_id)
        t->id = *task_id;
    else
        reel_id_derive(&p->base, p->seq++, &t->id);
    t->attempt = 1;
    t->flags = flags;
    t->n_inputs = n;
    if (n)
        memcpy(t->inputs, inputs, n * sizeof *inputs);
    if (fifo_push(&p->pending, &e, 0) != 0) {
        entry_free(p, e);
        return -ENOMEM;
    }
    p->submitted++;
    if (task_id_out)
        *task_id_out = t->id;
    dispatch(p);
    return 0;
}

REEL_API int reel_pool_collect(reel_pool *p, reel_task_result *out, int timeout_ms) {
    REEL_NEED(p, "pool");
    REEL_NEED(out, "out");
    uint64_t deadline = timeout_ms < 0
                            ? UINT64_MAX
                            : reel__now_ns(CLOCK_MONOTONIC) + (uint64_t)timeout_ms * 1000000ull;
    for (;;) {
        if (fifo_pop(&p->done, out))
            return 0;
        if (p->failed_rc)
            return reel__fail(-EPIPE, "%s", p->failed_msg);
        if (p->pending.count == 0 && p->held_total == 0)
            return -ENODATA;
        if (timeout_ms == 0) {
            pump(p, 0);
            if (p->done.count == 0 && !p->failed_rc)
                return -ETIMEDOUT; /* a look, not a wait: no sentence to write */
            continue;
        }
        if (reel__now_ns(CLOCK_MONOTONIC) >= deadline)
            return timed_out(p);
        pump(p, deadline);
    }
}

REEL_API int reel_pool_stats_get(reel_pool *p, reel_pool_stats *out) {
    REEL_NEED(p, "pool");
    REEL_NEED(out, "out");
    /* Take in what happened, but hand out nothing: stats never change the pool. */
    check_workers(p, reel__now_ns(CLOCK_MONOTONIC));
    for (uint32_t w = 0; w < p->nslots; w++)
        if (p->workers[w].state == W_LIVE && p->workers[w].nheld > 0)
            drain_results(p, w);
    publish(p);
    memset(out, 0, sizeof *out);
    for (uint32_t w = 0; w < p->nslots; w++) {
        if (p->workers[w].state != W_LIVE)
            continue;
        out->workers++;
        out->workers_ready += p->workers[w].ready;
        out->rss_bytes += p->workers[w].rss;
    }
    out->submitted = p->submitted;
    out->completed = p->completed;
    out->failed = p->failed;
    out->retried = p->retried;
    out->stolen = p->stolen;
    out->restarts = p->restarts;
    out->queued = (uint32_t)p->pending.count;
    out->in_flight = p->held_total;
    out->busy_seconds = (double)p->busy_ns / 1e9;
    out->cpu_seconds = (double)p->cpu_ns / 1e9;
    out->cpu_wait_seconds = (double)p->wait_ns / 1e9;
    out->measured_seconds = (double)p->measured_ns / 1e9;
    return 0;
}

REEL_API int reel_pool_drain(reel_pool *p, int timeout_ms) {
    REEL_NEED(p, "pool");
    uint64_t deadline = timeout_ms < 0
                            ? UINT64_MAX
                            : reel__now_ns(CLOCK_MONOTONIC) + (uint64_t)timeout_ms * 1000000ull;
    p->draining = 1;
    for (uint32_t w = 0; w < p->nslots; w++) {
        worker_slot *ws = &p->workers[w];
        if (ws->state != W_LIVE || ws->stopping)
            continue;
        if (ws->drain_wait)
            continue; /* asked already; its answer has not come */
        reel_ctl_msg m = {.type = REEL_CTL_DRAIN};
        ws->drain_wait = reel__ctl_send(ws->ctl_fd, &m, NULL, 0) == 0;
    }
    int rc = 0;
    for (;;) {
        int waiting = 0;
        for (uint32_t w = 0; w < p->nslots; w++)
            waiting |= p->workers[w].state == W_LIVE && p->workers[w].drain_wait;
        if (p->held_total == 0 && !waiting)
            break;
        if (p->failed_rc) {
            rc = reel__fail(-EPIPE, "%s", p->failed_msg);
            break;
        }
        if (reel__now_ns(CLOCK_MONOTONIC) >= deadline) {
            rc = -ETIMEDOUT;
            break;
        }
        p->last_check_ns = 0; /* read the workers' answers on every round */
        pump(p, deadline);
    }
    p->draining = 0;
    publish(p);
    return rc;
}

REEL_API int reel_pool_workers(reel_pool *p, pid_t *pids, size_t cap, size_t *count) {
    REEL_NEED(p, "pool");
    REEL_NEED(pids || cap == 0, "pids");
    REEL_NEED(count, "count");
    size_t n = 0;
    for (uint32_t w = 0; w < p->nslots; w++) {
        if (p->workers[w].state != W_LIVE)
            continue;
        if (n < cap)
            pids[n] = p->workers[w].pid;
        n++;
    }
    *count = n;
    return 0;
}

/* Asks every worker of p to stop, once the caller is done waiting for its
 * tasks: what each has not begun is taken from its ring (its result would
 * be dropped), so it exits as soon as it is between tasks. One still in a
 * task is killed at once, and with now set one still in its setup too:
 * nobody waits for either. */
static void stop_begin(reel_pool *p, int now) {
    p->target = 0;
    for (uint32_t w = 0; w < p->nslots; w++) {
        worker_slot *ws = &p->workers[w];
        if (ws->state != W_LIVE)
            continue;
        read_control(p, ws); /* a READY not read yet: that worker is out of its setup */
        stop_worker(p, w);
        task_record rec;
        while (reel__ring_pop(pool_task_ring(p->hdr, w), &rec, 0, 0) == 0)
            ;
        if (atomic_load(&pool_worker_at(p->hdr, w)->task_start_ns) != 0 || (now && !ws->ready))
            pidfd_kill(ws->pidfd, SIGKILL);
    }
}

/* Waits until every worker of pools[0..n) (NULL entries skipped) has
 * exited and been reaped; kills those still there at grace_ns. */
static void stop_wait(reel_pool *const *pools, size_t n, uint64_t grace_ns) {
    for (;;) {
        struct pollfd fds[POOL_MAX_WORKERS];
        size_t owner[POOL_MAX_WORKERS];
        uint32_t slot[POOL_MAX_WORKERS];
        nfds_t nf = 0;
        int live = 0;
        for (size_t i = 0; i < n; i++)
            for (uint32_t w = 0; pools[i] && w < pools[i]->nslots; w++) {
                if (pools[i]->workers[w].state != W_LIVE)
                    continue;
                live = 1;
                if (nf < sizeof fds / sizeof fds[0]) {
                    owner[nf] = i;
                    slot[nf] = w;
                    fds[nf++] = (struct pollfd){.fd = pools[i]->workers[w].pidfd, .events = POLLIN};
                }
            }
        if (!live)
            return;
        uint64_t now = reel__now_ns(CLOCK_MONOTONIC);
        if (now >= grace_ns) /* teardown took too long */
            for (size_t i = 0; i < n; i++)
                for (uint32_t w = 0; pools[i] && w < pools[i]->nslots; w++)
                    if (pools[i]->workers[w].state == W_LIVE)
                        pidfd_kill(pools[i]->workers[w].pidfd, SIGKILL);
        uint64_t left_ms = now >= grace_ns ? 10 : (grace_ns - now + 999999) / 1000000;
        if (poll(fds, nf, left_ms > 10 ? 10 : (int)left_ms) <= 0)
            continue;
        for (nfds_t k = 0; k < nf; k++) {
            if (!fds[k].revents)
                continue;
            reel_pool *p = pools[owner[k]];
            pid_t pid = p->workers[slot[k]].pid;
            worker_died(p, slot[k], 1);
            /* It has exited; the zygote reaps it at once. Return only when
             * it is gone, so that a stopped pool leaves not even a zombie. */
            for (int t = 0; t < 1000 && kill(pid, 0) == 0; t++)
                usleep(1000);
        }
    }
}

/* Results nobody collected: their outputs would leak, so delete them; then
 * the pool goes. */
static void stop_free(reel_pool *p) {
    reel_task_result r;
    while (fifo_pop(&p->done, &r)) {
        reel_list l;
        if (!(r.flags & REEL_RESULT_OUTPUT_LIST)) {
            for (uint32_t i = 0; i < r.n_outputs; i++)
                if (!(r.forwarded >> i & 1)) /* inputs passed on are not the pool's */
                    reel_obj_delete(p->rt->store, &r.outputs[i]);
        } else if (reel_list_open(p->rt->store, &r.outputs[0], 0, &l) == 0) {
            for (uint32_t i = 0; i < l.n; i++)
                if (!reel_list_bit(l.forwarded, i))
                    reel_obj_delete(p->rt->store, &l.ids[i]);
            reel_list_close(p->rt->store, &l);
            reel_obj_delete(p->rt->store, &r.outputs[0]);
        }
    }
    pool_free(p);
}

REEL_API int reel_pool_stop(reel_pool *p, int timeout_ms) {
    if (!p)
        return 0;
    uint64_t now = reel__now_ns(CLOCK_MONOTONIC);
    uint64_t deadline = timeout_ms < 0 ? UINT64_MAX : now + (uint64_t)timeout_ms * 1000000ull;
    /* Let outstanding tasks finish, keeping their results for the drop below. */
    while (!p->failed_rc && (p->pending.count || p->held_total) &&
           reel__now_ns(CLOCK_MONOTONIC) < deadline)
        pump(p, deadline);
    reel__pools_stop(&p, 1, timeout_ms == 0);
    return 0;
}

void reel__pools_stop(reel_pool *const *pools, size_t n, int now) {
    for (size_t i = 0; i < n; i++)
        if (pools[i])
            stop_begin(pools[i], now);
    uint64_t grace = (uint64_t)(now ? STOP_NOW_GRACE_MS : STOP_GRACE_MS) * 1000000ull;
    stop_wait(pools, n, reel__now_ns(CLOCK_MONOTONIC) + grace);
    for (size_t i = 0; i < n; i++)
        if (pools[i])
            stop_free(pools[i]);
}

const char *reel__pool_last_death(const reel_pool *p) {
    return p->last_death;
}
