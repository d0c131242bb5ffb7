/* Ownership: objects a client owns are deleted when its process dies -
 * through a reclaim, or through the rebuild that follows a death inside the
 * store's lock - and handed to the store when it closes its handle. */
#include <criterion/criterion.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>

#include "helpers.h"
#include "store_internal.h"

TestSuite(ownership, .init = th_init, .fini = th_fini, .timeout = 60);

typedef struct owner_arg {
    const char *path;
    th_chan *ready;
    th_chan *go; /* set: take the store's lock when told, and die holding it */
} owner_arg;

#define TOKEN_TAG 0x70c

/* The owner: publishes its token in an object nobody owns, then waits to be
 * killed, holding the store's lock if asked to. */
static int owner_main(void *p) {
    owner_arg *a = p;
    reel_store *c;
    TH_CHILD_RC(reel_store_open(a->path, 0, &c), 0);
    uint64_t token;
    TH_CHILD_RC(reel_store_owner_token(c, &token), 0);
    reel_id id = th_id_n(TOKEN_TAG, 0);
    TH_CHILD_RC(reel_obj_put(c, &id, &token, sizeof token, NULL, 0, 0, 0), 0);
    th_chan_send(a->ready, 'r');
    if (a->go) {
        TH_CHILD_CHECK(th_chan_recv(a->go, 10000) == 'l', "never told to take the lock");
        pthread_mutex_lock(&c->hdr->lock);
        th_chan_send(a->ready, 'x');
    }
    pause();
    return 0;
}

/* Starts an owner and returns its token, read back from the store. */
static pid_t start_owner(reel_store *s, owner_arg *a, uint64_t *token) {
    pid_t pid = th_fork(owner_main, a);
    cr_assert_eq(th_chan_recv(a->ready, 10000), 'r', "the owner never started");
    reel_id id = th_id_n(TOKEN_TAG, 0);
    reel_view v;
    TH_OK(reel_obj_get(s, &id, 1, 0, &v));
    cr_assert_eq(v.size, sizeof *token);
    memcpy(token, v.data, sizeof *token);
    TH_OK(reel_obj_release(s, &id));
    TH_OK(reel_obj_delete(s, &id));
    return pid;
}

static void put_tagged(reel_store *s, uint64_t n) {
    char data[256];
    th_fill(data, sizeof data, n);
    reel_id id = th_id_n(0x0b1, n);
    TH_OK(reel_obj_put(s, &id, data, sizeof data, NULL, 0, 0, 0));
}

static int present(reel_store *s, uint64_t n) {
    int here = 0;
    reel_id id = th_id_n(0x0b1, n);
    TH_OK(reel_obj_contains(s, &id, &here));
    return here;
}

static pid_t owner_pid_of(reel_store *s, uint64_t n) {
    reel_obj_info info[16];
    size_t count = 0;
    TH_OK(reel_store_objects(s, info, 16, &count));
    reel_id id = th_id_n(0x0b1, n);
    for (size_t i = 0; i < count && i < 16; i++)
        if (reel_id_equal(&info[i].id, &id))
            return info[i].owner_pid;
    cr_assert_fail("object %llu not listed", (unsigned long long)n);
    return -1;
}

Test(ownership, objects_of_a_dead_owner_are_deleted_at_reclaim) {
    const char *path;
    reel_store *s = th_store_new(1 << 20, 64, &path);
    reel_store_stats baseline = th_stats(s);
    th_chan ready;
    th_chan_open(&ready);
    owner_arg a = {path, &ready, NULL};
    uint64_t token;
    pid_t owner = start_owner(s, &a, &token);

    /* A worker's handle: what it makes, the owner owns. */
    reel_store *w;
    TH_OK(reel_store_open(path, 0, &w));
    TH_OK(reel_store_set_owner(w, token));
    put_tagged(w, 1); /* left alone */
    put_tagged(w, 2); /* held by a reader when the owner dies */
    put_tagged(w, 3); /* handed to the store first */
    reel_id unsealed = th_id_n(0x0b1, 4);
    void *buf;
    TH_OK(reel_obj_create(w, &unsealed, 100, NULL, 0, 0, 0, &buf));
    cr_assert_eq(th_stats(s).objects_owned, 4);
    cr_assert_eq(owner_pid_of(s, 1), owner);
    reel_id held = th_id_n(0x0b1, 2), kept = th_id_n(0x0b1, 3);
    reel_view v;
    TH_OK(reel_obj_get(s, &held, 1, 0, &v));
    TH_OK(reel_obj_disown(s, &kept, 1));
    cr_assert_eq(owner_pid_of(s, 3), 0);
    cr_assert_eq(th_stats(s).objects_owned, 3);

    th_kill_wait(owner, SIGKILL);
    uint32_t reclaimed = 0;
    TH_OK(reel_store_reclaim(s, &reclaimed));
    cr_assert_eq(reclaimed, 1);

    reel_store_stats st = th_stats(s);
    cr_assert_eq(st.orphans_deleted, baseline.orphans_deleted + 2);
    cr_assert(!present(s, 1), "an object of the dead owner is still there");
    cr_assert(!present(s, 2), "a held object of the dead owner is still visible");
    cr_assert(present(s, 3), "a disowned object went with its owner");
    cr_assert_eq(st.objects_deleting, 1, "the held one waits for its reader");
    cr_assert(th_pattern_ok(v.data, v.size, 2), "the reader's view changed under it");
    TH_OK(reel_obj_release(s, &held));

    /* The unsealed one cannot be sealed for nobody: freed. New ones fail. */
    TH_RC(reel_obj_seal(w, &unsealed), REEL_EOWNERGONE);
    reel_id later = th_id_n(0x0b1, 5);
    TH_RC(reel_obj_create(w, &later, 10, NULL, 0, 0, 0, &buf), REEL_EOWNERGONE);
    TH_RC(reel_store_set_owner(w, token), REEL_EOWNERGONE);

    st = th_stats(s);
    cr_assert_eq(st.objects, baseline.objects + 1);
    cr_assert_eq(st.objects_owned, 0);
    cr_assert_eq(st.objects_unsealed, 0);
    cr_assert_eq(st.objects_deleting, 0);
    TH_OK(reel_obj_delete(s, &kept));
    reel_store_stats end = th_stats(s);
    th_expect_same_usage(&baseline, &end, "after the owner's objects went");
    TH_OK(reel_store_close(w));
    th_chan_close(&ready);
}

Test(ownership, a_death_inside_the_lock_deletes_the_owners_objects_spilled_too) {
    const char *path;
    char dir[96];
    snprintf(dir, sizeof dir, "/tmp/reel-test-ownership-%d", (int)getpid());
    reel_store_options o = {
        .capacity = 1 << 20, .max_objects = 64, .flags = REEL_STORE_NO_PREFAULT, .spill_dir = dir};
    reel_store *s = th_store_new_opts(&o, &path);
    reel_store_stats baseline = th_stats(s);
    th_chan ready, go;
    th_chan_open(&ready);
    th_chan_open(&go);
    owner_arg a = {path, &ready, &go};
    uint64_t token;
    pid_t owner = start_owner(s, &a, &token);
    reel_store *w;
    TH_OK(reel_store_open(path, 0, &w));
    TH_OK(reel_store_set_owner(w, token));
    for (uint64_t n = 1; n <= 4; n++)
        put_tagged(w, n);
    uint64_t spilled = 0;
    TH_OK(reel_store_spill(s, 2 * 256, &spilled)); /* the two least recently used */
    cr_assert_gt(spilled, 0);
    cr_assert_eq(th_stats(s).objects_spilled, 2);
    cr_assert_eq(th_stats(s).spill_files, 1);
    TH_OK(reel_store_close(w));
    cr_assert_eq(th_stats(s).objects_owned, 4, "a worker's close gave away what it made");

    /* The owner dies holding the lock: the next locker rebuilds the store,
     * and the rebuild finds the objects' owner gone. */
    th_chan_send(&go, 'l');
    cr_assert_eq(th_chan_recv(&ready, 10000), 'x', "the owner never took the lock");
    th_kill_wait(owner, SIGKILL);
    reel_store_stats st = th_stats(s);
    cr_assert_eq(st.recoveries, baseline.recoveries + 1);
    cr_assert_eq(st.orphans_deleted, baseline.orphans_deleted + 4);
    cr_assert_eq(st.objects_owned, 0);
    cr_assert_eq(st.objects_spilled, 0);
    cr_assert_eq(st.spill_files, 0, "a spill file of deleted objects stayed");
    th_expect_same_usage(&baseline, &st, "after the rebuild");
    th_chan_close(&ready);
    th_chan_close(&go);
}

Test(ownership, an_owner_that_closes_hands_its_objects_to_the_store) {
    const char *path;
    reel_store *s = th_store_new(1 << 20, 64, &path);
    reel_store *owner, *w;
    TH_OK(reel_store_open(path, 0, &owner));
    TH_OK(reel_store_open(path, 0, &w));
    uint64_t token;
    TH_OK(reel_store_owner_token(owner, &token));
    TH_OK(reel_store_set_owner(w, token));
    put_tagged(w, 1);
    reel_id unsealed = th_id_n(0x0b1, 2);
    void *buf;
    TH_OK(reel_obj_create(w, &unsealed, 256, NULL, 0, 0, 0, &buf));
    th_fill(buf, 256, 2);
    cr_assert_eq(owner_pid_of(s, 1), getpid());
    TH_OK(reel_store_close(owner));

    /* Both stay, the one being written included; nobody owns them. */
    TH_OK(reel_obj_seal(w, &unsealed));
    cr_assert(present(s, 1) && present(s, 2));
    cr_assert_eq(owner_pid_of(s, 1), 0);
    cr_assert_eq(owner_pid_of(s, 2), 0);
    cr_assert_eq(th_stats(s).objects_owned, 0);
    cr_assert_eq(th_stats(s).orphans_deleted, 0);

    /* The token named that attach only: a client in the same slot is another. */
    reel_id next = th_id_n(0x0b1, 3);
    TH_RC(reel_obj_create(w, &next, 10, NULL, 0, 0, 0, &buf), REEL_EOWNERGONE);
    reel_store *again;
    TH_OK(reel_store_open(path, 0, &again));
    uint64_t token2;
    TH_OK(reel_store_owner_token(again, &token2));
    cr_assert_neq(token2, token);
    TH_RC(reel_store_set_owner(w, token), REEL_EOWNERGONE);
    TH_OK(reel_store_set_owner(w, 0)); /* nobody: as without a token */
    put_tagged(w, 3);
    cr_assert_eq(owner_pid_of(s, 3), 0);
    TH_OK(reel_store_close(again));
    TH_OK(reel_store_close(w));
}

Test(ownership, bad_tokens_are_refused) {
    const char *path;
    reel_store *s = th_store_new(1 << 20, 64, &path);
    uint64_t token;
    TH_OK(reel_store_owner_token(s, &token));
    TH_RC(reel_store_set_owner(s, (uint64_t)100000 << 32 | 1), -EINVAL);    /* no such slot */
    TH_RC(reel_store_set_owner(s, token & ~(uint64_t)UINT32_MAX), -EINVAL); /* epoch 0 */
    TH_RC(reel_store_set_owner(s, token + 1), REEL_EOWNERGONE);             /* another attach */
    TH_RC(reel_store_owner_token(s, NULL), -EINVAL);
    reel_store *obs;
    TH_OK(reel_store_open(path, REEL_OPEN_OBSERVER, &obs));
    TH_RC(reel_store_owner_token(obs, &token), REEL_EOBSERVER);
    TH_OK(reel_store_close(obs));
    TH_RC(reel_obj_disown(s, NULL, 1), -EINVAL);
    reel_id missing = th_id_n(0x0b1, 9);
    TH_OK(reel_obj_disown(s, &missing, 1)); /* skipped */
    /* A client may own what it makes itself. */
    TH_OK(reel_store_set_owner(s, token));
    put_tagged(s, 1);
    cr_assert_eq(owner_pid_of(s, 1), getpid());
}
