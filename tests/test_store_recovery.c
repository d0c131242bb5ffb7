/* White-box recovery tests: a store whose lock or derived state was left
 * broken - by a process that died mid-update, or by a corrupt lock word - is
 * rebuilt from its primary records, and nothing valid is lost. */
#include <criterion/criterion.h>

#include <signal.h>
#include <string.h>

#include "helpers.h"
#include "store_internal.h"

TestSuite(recovery, .init = th_init, .fini = th_fini);

#define N_OBJECTS 10

static void put_objects(reel_store *s, uint64_t tag) {
    for (int i = 0; i < N_OBJECTS; i++) {
        reel_id id = th_id_n(tag, (uint64_t)i);
        char data[64];
        th_fill(data, sizeof data, (uint64_t)i);
        TH_OK(reel_obj_put(s, &id, data, sizeof data, NULL, 0, i % 2 ? REEL_OBJ_EVICTABLE : 0, 0));
    }
}

static void expect_objects_intact(reel_store *s, uint64_t tag) {
    for (int i = 0; i < N_OBJECTS; i++) {
        reel_id id = th_id_n(tag, (uint64_t)i);
        reel_view v;
        TH_OK(reel_obj_get(s, &id, 1, 0, &v));
        cr_assert(th_pattern_ok(v.data, v.size, (uint64_t)i), "object %d torn after recovery", i);
        TH_OK(reel_obj_release(s, &id));
    }
}

typedef struct scribble_arg {
    const char *path;
    uint64_t tag;
    th_chan *ready;
} scribble_arg;

/* Takes references and an unsealed object, then takes the lock, scribbles
 * over derived state (as a half-done update would) and waits to be killed. */
static int die_holding_lock(void *p) {
    scribble_arg *a = p;
    reel_store *c;
    TH_CHILD_RC(reel_store_open(a->path, 0, &c), 0);
    for (int i = 0; i < 5; i++) {
        reel_id id = th_id_n(a->tag, (uint64_t)i);
        reel_view v;
        TH_CHILD_RC(reel_obj_get(c, &id, 1, 0, &v), 0);
    }
    reel_id z = th_id_random();
    void *buf;
    TH_CHILD_RC(reel_obj_create(c, &z, 100000, NULL, 0, 0, 0, &buf), 0);
    pthread_mutex_lock(&c->hdr->lock);
    c->hdr->used = 12345;
    c->hdr->lru_head = 7;
    c->hdr->class_bitmap = ~0ull;
    memset(c->index, 0xff, 256);
    th_chan_send(a->ready, 'x');
    pause();
    return 0;
}

Test(recovery, death_inside_the_lock_rebuilds_derived_state) {
    const char *path;
    reel_store *s = th_store_new(16 << 20, 1024, &path);
    put_objects(s, 1);
    reel_store_stats before = th_stats(s);
    th_chan ready;
    th_chan_open(&ready);
    scribble_arg a = {path, 1, &ready};
    pid_t child = th_fork(die_holding_lock, &a);
    cr_assert_eq(th_chan_recv(&ready, 10000), 'x', "child never took the lock");
    th_kill_wait(child, SIGKILL);

    expect_objects_intact(s, 1);
    reel_store_stats after = th_stats(s);
    th_expect_same_usage(&before, &after, "after the lock holder died");
    cr_assert_eq(after.recoveries, before.recoveries + 1);
    cr_assert_eq(after.clients_dead, 0);
    cr_assert_eq(after.objects_referenced, 0);

    /* The allocator works: delete everything and the arena is one free block again. */
    for (int i = 0; i < N_OBJECTS; i++) {
        reel_id id = th_id_n(1, (uint64_t)i);
        TH_OK(reel_obj_delete(s, &id));
    }
    reel_store_stats empty = th_stats(s);
    cr_assert_eq(empty.used, 0);
    cr_assert_eq(empty.free_blocks, 1);
    cr_assert_eq(empty.largest_free, empty.capacity);
    th_chan_close(&ready);
    reel_store_close(s);
}

Test(recovery, lock_word_naming_a_thread_that_does_not_exist) {
    const char *path;
    reel_store *s = th_store_new(1 << 20, 64, &path);
    put_objects(s, 2);
    /* A lock word whose owner TID belongs to no process: the kernel never
     * marked it dead, so only reel's owner check can free it. */
    pid_t ghost = th_gone_pid();
    __atomic_store_n(&s->hdr->lock.__data.__lock, (int)ghost, __ATOMIC_RELEASE);

    reel_store *observer;
    TH_OK(reel_store_open(path, REEL_OPEN_OBSERVER, &observer));
    reel_store_stats st;
    TH_OK(reel_store_stats_get(observer, &st));
    cr_assert_eq(st.recoveries, 1);
    cr_assert_eq(st.objects, N_OBJECTS);
    expect_objects_intact(s, 2);
    reel_store_close(observer);
    reel_store_close(s);
}

Test(recovery, corrupt_free_list_head_does_not_crash_stats_or_create) {
    const char *path;
    reel_store *s = th_store_new(1 << 20, 64, &path);
    put_objects(s, 3);
    for (int c = 0; c < SEG_CLASSES; c++)
        s->hdr->class_head[c] = 0x7fffffff;
    s->hdr->class_bitmap = ~0ull;
    reel_store_stats st;
    TH_OK(reel_store_stats_get(s, &st));
    reel_id id = th_id_random();
    void *buf;
    int rc = reel_obj_create(s, &id, 64, NULL, 0, 0, 0, &buf);
    cr_assert(rc == 0 || rc == REEL_EFULL, "create on a corrupt free list -> %s",
              reel_strerror(rc));
    expect_objects_intact(s, 3);
    reel_store_close(s);
}
