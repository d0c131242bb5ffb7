/* Several processes on one store: waiting readers, and processes that die at
 * any point (mid-create, holding references, inside the critical section). */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "helpers.h"
#include "store_internal.h" /* seg_header: who sleeps waiting for a seal */

TestSuite(multiproc, .init = th_init, .fini = th_fini, .timeout = 90);

#define MiB (1024u * 1024u)
#define KiB 1024u

typedef struct {
    const char *path;
    reel_id ids[8];
    size_t n;
    uint64_t size;
    uint64_t seed;
    uint64_t spin_ns;
    int set_spin;
    th_chan ready;
    th_chan go;
} proc_arg;

static void put_pattern(reel_store *s, const reel_id *id, uint64_t size, uint64_t seed,
                        uint32_t flags) {
    void *buf = NULL;
    TH_OK(reel_obj_create(s, id, size, "meta", 4, flags, 0, &buf));
    th_fill(buf, size, seed);
    TH_OK(reel_obj_seal(s, id));
}

static int present(reel_store *s, const reel_id *id) {
    int p = -1;
    TH_OK(reel_obj_contains(s, id, &p));
    return p;
}

static uint32_t obj_refs(reel_store *s, const reel_id *id) {
    reel_obj_info info[64];
    size_t count = 0;
    TH_OK(reel_store_objects(s, info, 64, &count));
    cr_assert_leq(count, 64u);
    for (size_t i = 0; i < count; i++)
        if (reel_id_equal(&info[i].id, id))
            return info[i].refs;
    cr_assert_fail("object not listed");
    return 0;
}

/* ---- waiting readers --------------------------------------------------------------------- */

/* Opens, signals ready, gets arg->ids (waiting), checks the pattern of each
 * (seed + index), releases. */
static int child_reader(void *p) {
    proc_arg *a = p;
    reel_store *s = NULL;
    TH_CHILD_RC(reel_store_open(a->path, 0, &s), 0);
    if (a->set_spin)
        reel_store_set_spin_ns(s, a->spin_ns);
    TH_CHILD_RC(th_chan_send(&a->ready, 'r'), 0);
    reel_view v[8];
    TH_CHILD_RC(reel_obj_get(s, a->ids, a->n, 20000, v), 0);
    for (size_t i = 0; i < a->n; i++) {
        TH_CHILD_CHECK(v[i].size == a->size, "size %llu", (unsigned long long)v[i].size);
        TH_CHILD_CHECK(reel_id_equal(&v[i].id, &a->ids[i]), "wrong view");
        size_t bad = th_mismatch(v[i].data, a->size, a->seed + i);
        TH_CHILD_CHECK(bad == a->size, "object %zu differs at byte %zu", i, bad);
        TH_CHILD_CHECK(v[i].meta_size == 4 && memcmp(v[i].meta, "meta", 4) == 0, "meta");
        TH_CHILD_CHECK(((uintptr_t)v[i].data & 63) == 0, "misaligned view in the child");
    }
    for (size_t i = 0; i < a->n; i++)
        TH_CHILD_RC(reel_obj_release(s, &a->ids[i]), 0);
    TH_CHILD_RC(reel_store_close(s), 0);
    return 0;
}

Test(multiproc, child_reads_sealed_object) {
    const char *path;
    reel_store *s = th_store_new(4 * MiB, 256, &path);
    proc_arg a = {.path = path, .n = 1, .size = 300 * KiB, .seed = 17};
    a.ids[0] = th_id_random();
    put_pattern(s, &a.ids[0], a.size, a.seed, 0);
    th_chan_open(&a.ready);
    pid_t pid = th_fork(child_reader, &a);
    cr_assert_eq(th_wait(pid, 30000), 0, "reader failed");
    reel_store_stats st = th_stats(s);
    cr_assert_eq(st.objects_referenced, 0u);
    cr_assert_eq(st.clients_alive, 1u);
    th_chan_close(&a.ready);
    TH_OK(reel_store_close(s));
}

/* Waits until n processes sleep in s waiting for a seal (a minute at most):
 * the moment the tests below act at, reached whatever the machine's speed,
 * rather than a pause that may end before it. */
static void wait_for_sleepers(reel_store *s, uint32_t n) {
    uint64_t until = th_monotonic_ns() + 60ull * 1000000000u;
    uint32_t now;
    while ((now = atomic_load(&s->hdr->seal_sleepers)) < n) {
        cr_assert_lt(th_monotonic_ns(), until, "%u of %u readers asleep in a get after a minute",
                     now, n);
        th_sleep_ms(1);
    }
}

/* How many times pid has gone to sleep (its voluntary context switches). */
static long sleeps_of(pid_t pid) {
    char path[64], line[128];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long n = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "voluntary_ctxt_switches: %ld", &n) == 1)
            break;
    if (f)
        fclose(f);
    return n;
}

/* After a seal that does not complete pid's get: waits until pid has looked
 * again and gone back to sleep (it sleeps once more than the before it was
 * counted at, and sleeps in s), a minute at most. */
static void wait_for_resleep(reel_store *s, pid_t pid, long before) {
    uint64_t until = th_monotonic_ns() + 60ull * 1000000000u;
    while (sleeps_of(pid) <= before || atomic_load(&s->hdr->seal_sleepers) < 1) {
        cr_assert_lt(th_monotonic_ns(), until, "the reader never went back to waiting");
        th_sleep_ms(1);
    }
}

Test(multiproc, child_blocked_in_get_is_woken_by_seal) {
    const char *path;
    reel_store *s = th_store_new(4 * MiB, 256, &path);
    proc_arg a = {.path = path, .n = 1, .size = 100 * KiB, .seed = 5};
    a.ids[0] = th_id_random();
    void *buf;
    TH_OK(reel_obj_create(s, &a.ids[0], a.size, "meta", 4, 0, 0, &buf));
    th_chan_open(&a.ready);
    pid_t pid = th_fork(child_reader, &a);
    cr_assert_eq(th_chan_recv(&a.ready, 20000), 'r');
    wait_for_sleepers(s, 1);
    cr_assert(th_wait_asleep(pid, 60000), "the reader never reached its futex wait");
    th_fill(buf, a.size, a.seed);
    TH_OK(reel_obj_seal(s, &a.ids[0]));
    cr_assert_eq(th_wait(pid, 30000), 0, "reader failed");
    th_chan_close(&a.ready);
    TH_OK(reel_store_close(s));
}

Test(multiproc, child_waits_for_object_not_yet_created) {
    const char *path;
    reel_store *s = th_store_new(4 * MiB, 256, &path);
    proc_arg a = {.path = path, .n = 1, .size = 5000, .seed = 6, .set_spin = 1, .spin_ns = 0};
    a.ids[0] = th_id_random();
    th_chan_open(&a.ready);
    pid_t pid = th_fork(child_reader, &a);
    cr_assert_eq(th_chan_recv(&a.ready, 20000), 'r');
    wait_for_sleepers(s, 1);
    cr_assert(th_wait_asleep(pid, 60000), "the reader never reached its futex wait");
    put_pattern(s, &a.ids[0], a.size, a.seed, 0);
    cr_assert_eq(th_wait(pid, 30000), 0, "reader failed");
    th_chan_close(&a.ready);
    TH_OK(reel_store_close(s));
}

Test(multiproc, one_seal_wakes_several_children) {
    const char *path;
    reel_store *s = th_store_new(4 * MiB, 256, &path);
    enum { K = 4 };
    proc_arg a[K];
    pid_t pids[K];
    reel_id id = th_id_random();
    void *buf;
    TH_OK(reel_obj_create(s, &id, 64 * KiB, "meta", 4, 0, 0, &buf));
    for (int k = 0; k < K; k++) {
        memset(&a[k], 0, sizeof a[k]);
        a[k].path = path;
        a[k].n = 1;
        a[k].ids[0] = id;
        a[k].size = 64 * KiB;
        a[k].seed = 9;
        a[k].set_spin = k % 2;
        a[k].spin_ns = 0;
        th_chan_open(&a[k].ready);
        pids[k] = th_fork(child_reader, &a[k]);
    }
    for (int k = 0; k < K; k++)
        cr_assert_eq(th_chan_recv(&a[k].ready, 20000), 'r');
    wait_for_sleepers(s, K);
    for (int k = 0; k < K; k++)
        cr_assert(th_wait_asleep(pids[k], 60000), "reader %d never reached its futex wait", k);
    th_fill(buf, 64 * KiB, 9);
    TH_OK(reel_obj_seal(s, &id));
    for (int k = 0; k < K; k++) {
        cr_assert_eq(th_wait(pids[k], 30000), 0, "reader %d failed", k);
        th_chan_close(&a[k].ready);
    }
    cr_assert_eq(th_stats(s).objects_referenced, 0u);
    TH_OK(reel_store_close(s));
}

Test(multiproc, multi_get_waits_for_every_object) {
    const char *path;
    reel_store *s = th_store_new(4 * MiB, 256, &path);
    proc_arg a = {.path = path, .n = 3, .size = 10000, .seed = 100};
    for (int i = 0; i < 3; i++)
        a.ids[i] = th_id_random();
    th_chan_open(&a.ready);
    pid_t pid = th_fork(child_reader, &a);
    cr_assert_eq(th_chan_recv(&a.ready, 20000), 'r');
    wait_for_sleepers(s, 1);
    /* Each seal but the last wakes it to a set still short: it waits again. */
    long before = sleeps_of(pid);
    put_pattern(s, &a.ids[1], a.size, a.seed + 1, 0);
    wait_for_resleep(s, pid, before);
    before = sleeps_of(pid);
    put_pattern(s, &a.ids[2], a.size, a.seed + 2, 0);
    wait_for_resleep(s, pid, before);
    void *buf;
    TH_OK(reel_obj_create(s, &a.ids[0], a.size, "meta", 4, 0, 0, &buf));
    th_fill(buf, a.size, a.seed);
    TH_OK(reel_obj_seal(s, &a.ids[0]));
    cr_assert_eq(th_wait(pid, 30000), 0, "reader failed");
    th_chan_close(&a.ready);
    TH_OK(reel_store_close(s));
}

/* ---- processes that die ------------------------------------------------------------------- */

/* Opens, creates ids[0] unsealed (half written), takes a reference on each
 * of ids[1..n-1], signals ready and waits to be killed. */
static int child_create_hold_and_hang(void *p) {
    proc_arg *a = p;
    reel_store *s = NULL;
    TH_CHILD_RC(reel_store_open(a->path, 0, &s), 0);
    void *buf;
    TH_CHILD_RC(reel_obj_create(s, &a->ids[0], a->size, "xx", 2, 0, 0, &buf), 0);
    memset(buf, 0xee, a->size / 2);
    for (size_t i = 1; i < a->n; i++) {
        reel_view v;
        TH_CHILD_RC(reel_obj_get(s, &a->ids[i], 1, 10000, &v), 0);
    }
    if (a->n > 1) { /* a second reference on the first held object */
        reel_view v;
        TH_CHILD_RC(reel_obj_get(s, &a->ids[1], 1, 10000, &v), 0);
    }
    TH_CHILD_RC(th_chan_send(&a->ready, 'r'), 0);
    for (;;)
        pause();
    return 0;
}

static reel_client_info find_client(reel_store *s, pid_t pid) {
    reel_client_info ci[16];
    size_t count = 0;
    TH_OK(reel_store_clients(s, ci, 16, &count));
    cr_assert_leq(count, 16u);
    for (size_t i = 0; i < count; i++)
        if (ci[i].pid == pid)
            return ci[i];
    cr_assert_fail("client of pid %d not listed", (int)pid);
    return ci[0];
}

static size_t count_clients(reel_store *s) {
    reel_client_info ci[16];
    size_t count = 0;
    TH_OK(reel_store_clients(s, ci, 16, &count));
    return count;
}

Test(multiproc, killed_mid_create_is_reclaimed) {
    const char *path;
    reel_store *s = th_store_new(4 * MiB, 256, &path);
    reel_id keep = th_id_random();
    put_pattern(s, &keep, 12345, 1, 0);
    reel_store_stats base = th_stats(s);
    uint64_t reclaims0 = base.reclaims;

    proc_arg a = {.path = path, .n = 1, .size = 700 * KiB};
    a.ids[0] = th_id_random();
    th_chan_open(&a.ready);
    pid_t pid = th_fork(child_create_hold_and_hang, &a);
    cr_assert_eq(th_chan_recv(&a.ready, 20000), 'r', "child did not get ready");
    reel_store_stats mid = th_stats(s);
    cr_assert_eq(mid.objects_unsealed, 1u);
    cr_assert_gt(mid.used, base.used);
    cr_assert_eq(th_kill_wait(pid, SIGKILL), 128 + SIGKILL);

    reel_client_info dead = find_client(s, pid);
    cr_assert_eq(dead.alive, 0, "a killed and reaped process is listed alive");
    cr_assert_eq(dead.unsealed, 1u);

    uint32_t n = 0;
    TH_OK(reel_store_reclaim(s, &n));
    cr_assert_eq(n, 1u, "reclaimed %u clients, expected the one dead child", n);
    reel_store_stats after = th_stats(s);
    th_expect_same_usage(&base, &after, "after reclaiming a child killed mid-create");
    cr_assert_eq(after.reclaims, reclaims0 + 1);
    cr_assert_eq(after.clients_dead, 0u);
    cr_assert_eq(after.clients_alive, 1u);
    cr_assert_eq(count_clients(s), 1u);
    cr_assert_eq(present(s, &a.ids[0]), 0);
    /* The dead child's ID is free again, and a second reclaim finds nothing. */
    put_pattern(s, &a.ids[0], 100, 2, 0);
    TH_OK(reel_store_reclaim(s, &n));
    cr_assert_eq(n, 0u);
    th_chan_close(&a.ready);
    TH_OK(reel_store_close(s));
}

Test(multiproc, killed_holding_references_is_reclaimed) {
    const char *path;
    reel_store *s = th_store_new(4 * MiB, 256, &path);
    reel_id A = th_id_n(1, 'A'), B = th_id_n(1, 'B'), D = th_id_n(1, 'D');
    put_pattern(s, &A, 50000, 'A', 0);
    put_pattern(s, &B, 60000, 'B', REEL_OBJ_EVICTABLE);
    reel_view pv;
    TH_OK(reel_obj_get(s, &A, 1, 0, &pv)); /* the parent's own reference survives */
    reel_store_stats base = th_stats(s);
    put_pattern(s, &D, 70000, 'D', 0);

    proc_arg a = {.path = path, .n = 4, .size = 4096};
    a.ids[0] = th_id_random(); /* its unsealed object */
    a.ids[1] = A;
    a.ids[2] = B;
    a.ids[3] = D;
    th_chan_open(&a.ready);
    pid_t pid = th_fork(child_create_hold_and_hang, &a);
    cr_assert_eq(th_chan_recv(&a.ready, 20000), 'r', "child did not get ready");
    cr_assert_eq(obj_refs(s, &A), 3u); /* parent + child twice */
    cr_assert_eq(obj_refs(s, &B), 1u);
    /* Deferred delete: D now lives only through the child's reference. */
    TH_OK(reel_obj_delete(s, &D));
    cr_assert_eq(th_stats(s).objects_deleting, 1u);
    cr_assert_eq(th_kill_wait(pid, SIGKILL), 128 + SIGKILL);

    reel_client_info dead = find_client(s, pid);
    cr_assert_eq(dead.alive, 0);
    cr_assert_eq(dead.refs, 4u, "dead child holds %u references, expected 4", dead.refs);

    uint32_t n = 0;
    TH_OK(reel_store_reclaim(s, &n));
    cr_assert_eq(n, 1u);
    reel_store_stats after = th_stats(s);
    th_expect_same_usage(&base, &after, "after reclaiming a child killed holding references");
    cr_assert_eq(after.objects_deleting, 0u, "the deleted object held by the dead child stays");
    cr_assert_eq(obj_refs(s, &A), 1u, "the parent's reference was lost or the child's kept");
    cr_assert_eq(obj_refs(s, &B), 0u);
    cr_assert_eq(after.objects_evictable, 1u); /* B is evictable again */
    cr_assert(th_pattern_ok(pv.data, 50000, 'A'));
    TH_OK(reel_obj_release(s, &A));
    TH_RC(reel_obj_release(s, &A), REEL_ENOTREF);
    th_chan_close(&a.ready);
    TH_OK(reel_store_close(s));
}

Test(multiproc, death_is_noticed_at_next_open) {
    const char *path;
    reel_store *s = th_store_new(4 * MiB, 256, &path);
    reel_id A = th_id_random();
    put_pattern(s, &A, 1000, 1, 0);
    reel_store_stats base = th_stats(s);
    proc_arg a = {.path = path, .n = 2, .size = 200 * KiB};
    a.ids[0] = th_id_random();
    a.ids[1] = A;
    th_chan_open(&a.ready);
    pid_t pid = th_fork(child_create_hold_and_hang, &a);
    cr_assert_eq(th_chan_recv(&a.ready, 20000), 'r');
    cr_assert_eq(th_kill_wait(pid, SIGKILL), 128 + SIGKILL);
    /* No reel_store_reclaim(): the next open notices. */
    reel_store *s2 = NULL;
    TH_OK(reel_store_open(path, 0, &s2));
    reel_store_stats after = th_stats(s);
    th_expect_same_usage(&base, &after, "after the next open");
    cr_assert_eq(after.clients_dead, 0u);
    cr_assert_eq(after.clients_alive, 2u);
    TH_OK(reel_store_close(s2));
    th_chan_close(&a.ready);
    TH_OK(reel_store_close(s));
}

Test(multiproc, death_is_noticed_when_space_runs_short) {
    const char *path;
    reel_store *s = th_store_new(1 * MiB, 256, &path);
    proc_arg a = {.path = path, .n = 1, .size = 900 * KiB};
    a.ids[0] = th_id_random();
    th_chan_open(&a.ready);
    pid_t pid = th_fork(child_create_hold_and_hang, &a);
    cr_assert_eq(th_chan_recv(&a.ready, 20000), 'r');
    cr_assert_eq(th_kill_wait(pid, SIGKILL), 128 + SIGKILL);
    /* The dead child's unsealed 900 KiB stand in the way until reclaimed. */
    reel_id b = th_id_random();
    void *buf;
    TH_OK(reel_obj_create(s, &b, 500 * KiB, NULL, 0, 0, 5000, &buf));
    TH_OK(reel_obj_seal(s, &b));
    cr_assert_eq(present(s, &a.ids[0]), 0);
    cr_assert_eq(th_stats(s).objects, 1u);
    th_chan_close(&a.ready);
    TH_OK(reel_store_close(s));
}

static int child_exit_without_close(void *p) {
    proc_arg *a = p;
    reel_store *s = NULL;
    TH_CHILD_RC(reel_store_open(a->path, 0, &s), 0);
    void *buf;
    TH_CHILD_RC(reel_obj_create(s, &a->ids[0], 1000, NULL, 0, 0, 0, &buf), 0);
    reel_view v;
    TH_CHILD_RC(reel_obj_get(s, &a->ids[1], 1, 0, &v), 0);
    return 0; /* _exit() without reel_store_close() */
}

Test(multiproc, exit_without_close_is_reclaimed) {
    const char *path;
    reel_store *s = th_store_new(1 * MiB, 256, &path);
    proc_arg a = {.path = path, .n = 2};
    a.ids[0] = th_id_random();
    a.ids[1] = th_id_random();
    put_pattern(s, &a.ids[1], 100, 1, 0);
    reel_store_stats base = th_stats(s);
    pid_t pid = th_fork(child_exit_without_close, &a);
    cr_assert_eq(th_wait(pid, 20000), 0);
    uint32_t n = 0;
    TH_OK(reel_store_reclaim(s, &n));
    cr_assert_eq(n, 1u);
    reel_store_stats after = th_stats(s);
    th_expect_same_usage(&base, &after, "after a child exited without closing");
    TH_OK(reel_store_close(s));
}

/* A live client is never reclaimed. */
static int child_hold_until_told(void *p) {
    proc_arg *a = p;
    reel_store *s = NULL;
    TH_CHILD_RC(reel_store_open(a->path, 0, &s), 0);
    reel_view v;
    TH_CHILD_RC(reel_obj_get(s, &a->ids[0], 1, 10000, &v), 0);
    TH_CHILD_RC(th_chan_send(&a->ready, 'r'), 0);
    TH_CHILD_CHECK(th_chan_recv(&a->go, 20000) == 'g', "no go");
    TH_CHILD_CHECK(th_pattern_ok(v.data, 4096, 3), "object changed while held");
    TH_CHILD_RC(reel_obj_release(s, &a->ids[0]), 0);
    TH_CHILD_RC(reel_store_close(s), 0);
    return 0;
}

Test(multiproc, reclaim_spares_live_clients) {
    const char *path;
    reel_store *s = th_store_new(1 * MiB, 256, &path);
    proc_arg a = {.path = path, .n = 1};
    a.ids[0] = th_id_random();
    put_pattern(s, &a.ids[0], 4096, 3, 0);
    th_chan_open(&a.ready);
    th_chan_open(&a.go);
    pid_t pid = th_fork(child_hold_until_told, &a);
    cr_assert_eq(th_chan_recv(&a.ready, 20000), 'r');
    uint32_t n = 99;
    TH_OK(reel_store_reclaim(s, &n));
    cr_assert_eq(n, 0u, "reclaim took a live client");
    cr_assert_eq(obj_refs(s, &a.ids[0]), 1u);
    reel_store_stats st = th_stats(s);
    cr_assert_eq(st.clients_alive, 2u);
    cr_assert_eq(st.clients_dead, 0u);
    cr_assert_eq(find_client(s, pid).alive, 1);
    TH_OK(reel_obj_delete(s, &a.ids[0])); /* deferred while the child reads */
    TH_OK(th_chan_send(&a.go, 'g'));
    cr_assert_eq(th_wait(pid, 20000), 0, "child failed");
    cr_assert_eq(th_stats(s).objects, 0u);
    th_chan_close(&a.ready);
    th_chan_close(&a.go);
    TH_OK(reel_store_close(s));
}

static int child_wait_forever(void *p) {
    proc_arg *a = p;
    reel_store *s = NULL;
    TH_CHILD_RC(reel_store_open(a->path, 0, &s), 0);
    reel_store_set_spin_ns(s, 0);
    TH_CHILD_RC(th_chan_send(&a->ready, 'r'), 0);
    reel_view v;
    (void)reel_obj_get(s, a->ids, 1, -1, &v);
    return 3; /* should not get here: killed while waiting */
}

Test(multiproc, killed_while_waiting) {
    const char *path;
    reel_store *s = th_store_new(1 * MiB, 256, &path);
    reel_store_stats base = th_stats(s);
    proc_arg a = {.path = path, .n = 1};
    a.ids[0] = th_id_random();
    th_chan_open(&a.ready);
    pid_t pid = th_fork(child_wait_forever, &a);
    cr_assert_eq(th_chan_recv(&a.ready, 20000), 'r');
    wait_for_sleepers(s, 1);
    cr_assert_eq(th_kill_wait(pid, SIGKILL), 128 + SIGKILL, "the waiter returned early");
    uint32_t n = 0;
    TH_OK(reel_store_reclaim(s, &n));
    cr_assert_eq(n, 1u);
    put_pattern(s, &a.ids[0], 100, 1, 0);
    reel_view v;
    TH_OK(reel_obj_get(s, a.ids, 1, 1000, &v));
    TH_OK(reel_obj_release(s, a.ids));
    TH_OK(reel_obj_delete(s, a.ids));
    reel_store_stats after = th_stats(s);
    th_expect_same_usage(&base, &after, "after killing a waiter");
    th_chan_close(&a.ready);
    TH_OK(reel_store_close(s));
}

/* ---- death at random moments, inside the critical section too ------------------------------- */

#define HAMMER_TAG 0x4841u
/* Each round costs a few milliseconds; more rounds land more kills inside the
 * critical section. */
#define KILL_ROUNDS 100

typedef struct {
    const char *path;
    reel_id shared; /* a parent object the child keeps getting */
    th_chan ready;
} hammer_arg;

static int child_hammer(void *p) {
    hammer_arg *a = p;
    reel_store *s = NULL;
    TH_CHILD_RC(reel_store_open(a->path, 0, &s), 0);
    TH_CHILD_RC(th_chan_send(&a->ready, 'r'), 0);
    uint64_t rng = (uint64_t)getpid() * 0x9e3779b97f4a7c15ull;
    static uint8_t data[32 * 1024];
    th_fill(data, sizeof data, 1);
    for (uint64_t i = 0;; i++) {
        reel_id id = th_id_n(HAMMER_TAG, ((uint64_t)getpid() << 32) | i);
        uint64_t size = 1 + th_rand64(&rng) % sizeof data;
        void *buf;
        reel_view v[2];
        reel_id both[2] = {id, a->shared};
        switch (i % 5) {
        case 0: /* create, seal, get, delete while referenced, release */
            TH_CHILD_RC(reel_obj_create(s, &id, size, "h", 1, 0, 1000, &buf), 0);
            memcpy(buf, data, size);
            TH_CHILD_RC(reel_obj_seal(s, &id), 0);
            TH_CHILD_RC(reel_obj_get(s, &id, 1, 0, v), 0);
            TH_CHILD_RC(reel_obj_delete(s, &id), 0);
            TH_CHILD_RC(reel_obj_release(s, &id), 0);
            break;
        case 1: /* put, get, release, delete */
            TH_CHILD_RC(reel_obj_put(s, &id, data, size, NULL, 0, 0, 1000), 0);
            TH_CHILD_RC(reel_obj_get(s, &id, 1, 0, v), 0);
            TH_CHILD_RC(reel_obj_release(s, &id), 0);
            TH_CHILD_RC(reel_obj_delete(s, &id), 0);
            break;
        case 2: /* create, abort */
            TH_CHILD_RC(reel_obj_create(s, &id, size, NULL, 0, 0, 1000, &buf), 0);
            TH_CHILD_RC(reel_obj_abort(s, &id), 0);
            break;
        case 3: { /* evictable put, multi-get with the parent's object */
            TH_CHILD_RC(reel_obj_put(s, &id, data, size, NULL, 0, REEL_OBJ_EVICTABLE, 1000), 0);
            int present = 0;
            TH_CHILD_RC(reel_obj_contains(s, &id, &present), 0);
            TH_CHILD_RC(reel_obj_get(s, both, 2, 0, v), 0);
            TH_CHILD_RC(reel_obj_release(s, &a->shared), 0);
            TH_CHILD_RC(reel_obj_release(s, &id), 0);
            TH_CHILD_RC(reel_obj_delete(s, &id), 0);
            break;
        }
        case 4: { /* read-only calls */
            reel_store_stats st;
            TH_CHILD_RC(reel_store_stats_get(s, &st), 0);
            reel_obj_info info[4];
            size_t count;
            TH_CHILD_RC(reel_store_objects(s, info, 4, &count), 0);
            reel_client_info ci[4];
            TH_CHILD_RC(reel_store_clients(s, ci, 4, &count), 0);
            break;
        }
        }
    }
    return 0;
}

static int is_hammer_object(const reel_id *id) {
    reel_id tag = th_id_n(HAMMER_TAG, 0);
    return memcmp(id->bytes, tag.bytes, 8) == 0;
}

Test(multiproc, killed_at_random_moments, .timeout = 120) {
    const char *path;
    reel_store *s = th_store_new(4 * MiB, 1024, &path);
    hammer_arg a = {.path = path, .shared = th_id_random()};
    put_pattern(s, &a.shared, 1000, 42, 0);
    reel_id mine = th_id_random();
    put_pattern(s, &mine, 2000, 43, REEL_OBJ_EVICTABLE);
    reel_view pv;
    TH_OK(reel_obj_get(s, &a.shared, 1, 0, &pv));
    reel_store_stats base = th_stats(s);
    uint64_t rng = 12345;
    uint64_t leftovers = 0;
    for (int round = 0; round < KILL_ROUNDS; round++) {
        th_chan_open(&a.ready);
        pid_t pid = th_fork(child_hammer, &a);
        cr_assert_eq(th_chan_recv(&a.ready, 20000), 'r', "round %d: child did not start", round);
        th_sleep_us((long)(th_rand64(&rng) % 3000));
        int code = th_kill_wait(pid, SIGKILL);
        cr_assert_eq(code, 128 + SIGKILL,
                     "round %d: the hammering child stopped on its own (exit %d): see its "
                     "stderr",
                     round, code);
        th_chan_close(&a.ready);

        /* The store is usable at once, whatever the child was doing. */
        reel_id probe = th_id_n(2, (uint64_t)round);
        uint8_t data[3000];
        th_fill(data, sizeof data, (uint64_t)round);
        TH_OK(reel_obj_put(s, &probe, data, sizeof data, NULL, 0, 0, 5000));
        reel_view v;
        TH_OK(reel_obj_get(s, &probe, 1, 1000, &v));
        cr_assert(th_pattern_ok(v.data, sizeof data, (uint64_t)round));
        TH_OK(reel_obj_release(s, &probe));
        TH_OK(reel_obj_delete(s, &probe));

        uint32_t n = 0;
        TH_OK(reel_store_reclaim(s, &n));
        cr_assert_leq(n, 1u);
        cr_assert_eq(count_clients(s), 1u, "round %d: the dead child is still listed", round);

        /* What the child left sealed belongs to the store; delete it. Nothing it
         * left unsealed or half-deleted may remain. */
        reel_obj_info info[64];
        size_t count = 0;
        TH_OK(reel_store_objects(s, info, 64, &count));
        cr_assert_leq(count, 64u);
        for (size_t i = 0; i < count; i++) {
            if (!is_hammer_object(&info[i].id))
                continue;
            cr_assert_eq(info[i].state, (uint32_t)REEL_OBJ_SEALED,
                         "round %d: reclaim left a child object in state %u", round, info[i].state);
            cr_assert_eq(info[i].refs, 0u, "round %d: reclaim left a child reference", round);
            TH_OK(reel_obj_delete(s, &info[i].id));
            leftovers++;
        }
        cr_assert_eq(obj_refs(s, &a.shared), 1u, "round %d: references on the shared object",
                     round);
        reel_store_stats st = th_stats(s);
        char when[64];
        snprintf(when, sizeof when, "round %d after reclaim", round);
        th_expect_same_usage(&base, &st, when);
        cr_assert_eq(st.clients_dead, 0u);
        TH_OK(reel_store_objects(s, info, 64, &count));
        cr_assert_eq(count, (size_t)st.objects, "round %d: %zu objects listed, stats say %u", round,
                     count, st.objects);
        /* The free space the stats report is really there, in one piece. */
        reel_id whole = th_id_n(3, (uint64_t)round);
        void *buf = NULL;
        TH_OK(reel_obj_create(s, &whole, st.largest_free, NULL, 0, 0, 0, &buf));
        memset(buf, 0x5a, st.largest_free);
        TH_OK(reel_obj_abort(s, &whole));
        cr_assert(th_pattern_ok(pv.data, 1000, 42), "round %d: shared object overwritten", round);
    }
    reel_store_stats st = th_stats(s);
    cr_log_info("%d kills: %llu reclaims, %llu lock recoveries, %llu sealed leftovers", KILL_ROUNDS,
                (unsigned long long)st.reclaims, (unsigned long long)st.recoveries,
                (unsigned long long)leftovers);
    cr_assert_eq(st.reclaims, (uint64_t)KILL_ROUNDS, "reclaims counter %llu after %d dead children",
                 (unsigned long long)st.reclaims, KILL_ROUNDS);
    cr_assert(th_pattern_ok(pv.data, 1000, 42));
    TH_OK(reel_obj_release(s, &a.shared));
    TH_OK(reel_store_close(s));
}

/* The state letter of process pid in /proc/<pid>/stat, or '?'. */
static char proc_state(pid_t pid) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return '?';
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *paren = strrchr(buf, ')'); /* the name may hold spaces and parentheses */
    return paren && paren[1] == ' ' ? paren[2] : '?';
}

/* A killed child its parent has not reaped yet is a zombie: its pid and its
 * start time are still there, and only its state says it is dead. A
 * supervisor that reclaims before it reaps must get the child's share back. */
Test(multiproc, killed_child_not_yet_reaped_is_reclaimed) {
    const char *path;
    reel_store *s = th_store_new(4 * MiB, 256, &path);
    reel_id A = th_id_n(2, 'A');
    put_pattern(s, &A, 50000, 'A', 0);
    reel_store_stats base = th_stats(s);

    proc_arg a = {.path = path, .n = 2, .size = 300 * KiB};
    a.ids[0] = th_id_random(); /* its unsealed object */
    a.ids[1] = A;
    th_chan_open(&a.ready);
    pid_t pid = th_fork(child_create_hold_and_hang, &a);
    cr_assert_eq(th_chan_recv(&a.ready, 20000), 'r', "child did not get ready");
    cr_assert_eq(obj_refs(s, &A), 2u);
    cr_assert_eq(kill(pid, SIGKILL), 0);
    uint64_t deadline = th_monotonic_ns() + 20ull * 1000000000ull;
    while (proc_state(pid) != 'Z' && th_monotonic_ns() < deadline)
        th_sleep_ms(1);
    cr_assert_eq(proc_state(pid), 'Z', "the killed child is not a zombie yet");

    reel_client_info dead = find_client(s, pid);
    cr_assert_eq(dead.alive, 0, "a zombie is listed alive");
    uint32_t n = 0;
    TH_OK(reel_store_reclaim(s, &n));
    cr_assert_eq(n, 1u, "reclaimed %u clients, expected the zombie", n);
    reel_store_stats after = th_stats(s);
    th_expect_same_usage(&base, &after, "after reclaiming a zombie child");
    cr_assert_eq(obj_refs(s, &A), 0u, "the zombie's reference was kept");
    cr_assert_eq(proc_state(pid), 'Z', "reaped before the reclaim: the test proved nothing");
    cr_assert_eq(th_wait(pid, 20000), 128 + SIGKILL);
    th_chan_close(&a.ready);
    TH_OK(reel_store_close(s));
}
