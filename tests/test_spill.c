/* Spilling: a store smaller than its working set spills sealed objects to
 * disk with io_uring and reads them back on get, intact; a spill directory
 * that fails or loses files gives clear errors and loses nothing in memory. */
#include <criterion/criterion.h>

#include <dirent.h>
#include <pthread.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "helpers.h"
#include "store_internal.h"

TestSuite(spill, .init = th_init, .fini = th_fini, .timeout = 120);

#define OBJ_SIZE (256u << 10)

/* A fresh spill directory path (not created: the store makes it). */
static const char *spill_dir(void) {
    static char dir[128];
    snprintf(dir, sizeof dir, "/tmp/reel-test-spill-%d-%08x", (int)getpid(),
             (unsigned)th_rand64(&(uint64_t){th_realtime_ns()}));
    return dir;
}

static reel_store *spilling_store(uint64_t capacity, double high_water, const char *dir,
                                  const char **path) {
    reel_store_options o = {.capacity = capacity,
                            .max_objects = 4096,
                            .flags = REEL_STORE_NO_PREFAULT,
                            .spill_dir = dir,
                            .high_water = high_water};
    return th_store_new_opts(&o, path);
}

static int count_spill_files(const char *dir) {
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strncmp(e->d_name, "spill-", 6) == 0;
    closedir(d);
    return n;
}

static void put_pattern(reel_store *s, uint64_t i) {
    static uint8_t buf[OBJ_SIZE];
    th_fill(buf, sizeof buf, i);
    reel_id id = th_id_n(0x5b111, i);
    TH_OK(reel_obj_put(s, &id, buf, sizeof buf, &i, sizeof i, 0, 1000));
}

static void expect_pattern(reel_store *s, uint64_t i) {
    reel_id id = th_id_n(0x5b111, i);
    reel_view v;
    TH_OK(reel_obj_get(s, &id, 1, 0, &v));
    cr_assert_eq(v.size, OBJ_SIZE);
    cr_assert_eq(th_mismatch(v.data, v.size, i), v.size, "object %llu torn at byte %zu",
                 (unsigned long long)i, th_mismatch(v.data, v.size, i));
    cr_assert_eq(v.meta_size, sizeof i);
    cr_assert(memcmp(v.meta, &i, sizeof i) == 0, "object %llu: metadata lost",
              (unsigned long long)i);
    TH_OK(reel_obj_release(s, &id));
}

Test(spill, working_set_four_times_the_store) {
    const char *dir = spill_dir(), *path;
    reel_store *s = spilling_store(8u << 20, 0, dir, &path);
    enum { N = 128 }; /* 32 MiB through an 8 MiB store */
    for (uint64_t i = 0; i < N; i++)
        put_pattern(s, i);
    reel_store_stats st = th_stats(s);
    cr_assert_gt(st.objects_spilled, N / 2, "only %u of %d objects spilled", st.objects_spilled, N);
    cr_assert_eq(st.objects, N);
    cr_assert_leq(st.used, st.capacity);
    cr_assert_gt(count_spill_files(dir), 0);
    /* Every object back, in a scrambled order, each read from wherever it is. */
    uint64_t seed = 7;
    for (int round = 0; round < 2; round++)
        for (uint64_t k = 0; k < N; k++)
            expect_pattern(s, (k * 37 + th_rand64(&seed) % 2) % N);
    for (uint64_t i = 0; i < N; i++) {
        int present = 0;
        reel_id id = th_id_n(0x5b111, i);
        TH_OK(reel_obj_contains(s, &id, &present));
        cr_assert(present, "object %llu missing", (unsigned long long)i);
        expect_pattern(s, i);
        TH_OK(reel_obj_delete(s, &id));
    }
    st = th_stats(s);
    cr_assert_gt(st.restores, 0);
    cr_assert_eq(st.objects, 0);
    cr_assert_eq(st.used, 0);
    cr_assert_eq(st.spill_files, 0);
    cr_assert_eq(count_spill_files(dir), 0, "spill files outlived their objects");
    reel_store_close(s);
    TH_OK(reel_store_destroy(path));
    struct stat sb;
    cr_assert(stat(dir, &sb) != 0, "the spill directory outlived its store");
}

Test(spill, high_water_mark_and_objects_being_read) {
    const char *dir = spill_dir();
    reel_store *s = spilling_store(8u << 20, 0.5, dir, NULL);
    put_pattern(s, 0);
    reel_id held = th_id_n(0x5b111, 0);
    reel_view v;
    TH_OK(reel_obj_get(s, &held, 1, 0, &v)); /* being read: never spilled */
    for (uint64_t i = 1; i < 20; i++)        /* 5 MiB: past half of the store */
        put_pattern(s, i);
    reel_store_stats st = th_stats(s);
    cr_assert_gt(st.objects_spilled, 0, "nothing spilled past the high-water mark");
    cr_assert_leq(st.used, st.capacity / 2 + OBJ_SIZE + 4096, "used %llu of %llu",
                  (unsigned long long)st.used, (unsigned long long)st.capacity);
    cr_assert_eq(th_mismatch(v.data, v.size, 0), v.size, "a held view changed under its reader");
    size_t n;
    reel_obj_info info[64];
    TH_OK(reel_store_objects(s, info, 64, &n));
    for (size_t k = 0; k < n; k++)
        if (reel_id_equal(&info[k].id, &held))
            cr_assert_eq(info[k].state, REEL_OBJ_SEALED, "the held object was spilled");
    TH_OK(reel_obj_release(s, &held));
    for (uint64_t i = 0; i < 20; i++)
        expect_pattern(s, i);
    reel_store_close(s);
}

typedef struct full_arg {
    const char *path;
} full_arg;

/* Fills a store whose spill files cannot grow past 64 KiB, less than one
 * object (RLIMIT_FSIZE: every spill write fails, as on a full disk): creates
 * must end in a clear REEL_EFULL, and every object already in memory must
 * stay intact. */
static int fill_with_small_disk(void *p) {
    full_arg *a = p;
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim = {64u << 10, 64u << 10};
    TH_CHILD_CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0, "setrlimit");
    reel_store *s;
    TH_CHILD_RC(reel_store_open(a->path, 0, &s), 0);
    static uint8_t buf[OBJ_SIZE];
    uint64_t i = 0;
    int rc = 0;
    for (; i < 200 && rc == 0; i++) {
        th_fill(buf, sizeof buf, i);
        reel_id id = th_id_n(0x5b111, i);
        rc = reel_obj_put(s, &id, buf, sizeof buf, NULL, 0, 0, 0);
    }
    TH_CHILD_CHECK(rc == REEL_EFULL, "put %llu -> %s, expected store full", (unsigned long long)i,
                   reel_strerror(rc));
    TH_CHILD_CHECK(strstr(reel_last_error(), "spilling failed") != NULL, "detail: %s",
                   reel_last_error());
    reel_store_stats st;
    TH_CHILD_RC(reel_store_stats_get(s, &st), 0);
    TH_CHILD_CHECK(st.spill_failures > 0, "no spill failure counted");
    for (uint64_t k = 0; k + 1 < i; k++) { /* all that was put is there, intact */
        reel_id id = th_id_n(0x5b111, k);
        reel_view v;
        TH_CHILD_RC(reel_obj_get(s, &id, 1, 0, &v), 0);
        TH_CHILD_CHECK(th_pattern_ok(v.data, v.size, k), "object %llu torn", (unsigned long long)k);
        TH_CHILD_RC(reel_obj_release(s, &id), 0);
    }
    reel_store_close(s);
    return 0;
}

Test(spill, full_spill_directory_is_a_clear_error_and_loses_nothing) {
    const char *path;
    reel_store *s = spilling_store(4u << 20, 0, spill_dir(), &path);
    full_arg a = {path};
    cr_assert_eq(th_wait(th_fork(fill_with_small_disk, &a), 60000), 0);
    reel_store_close(s);
}

Test(spill, spill_file_removed_underneath) {
    const char *dir = spill_dir();
    reel_store *s = spilling_store(4u << 20, 0, dir, NULL);
    enum { N = 40 };
    for (uint64_t i = 0; i < N; i++)
        put_pattern(s, i);
    cr_assert_gt(th_stats(s).objects_spilled, 0);
    DIR *d = opendir(dir);
    struct dirent *e;
    while ((e = readdir(d)))
        if (strncmp(e->d_name, "spill-", 6) == 0)
            unlinkat(dirfd(d), e->d_name, 0);
    closedir(d);
    int lost = 0;
    for (uint64_t i = 0; i < N; i++) {
        reel_id id = th_id_n(0x5b111, i);
        reel_view v;
        int rc = reel_obj_get(s, &id, 1, 0, &v);
        if (rc == REEL_ESPILLLOST) {
            lost++;
            cr_assert(strstr(reel_last_error(), dir), "the error names the file: %s",
                      reel_last_error());
        } else {
            TH_OK(rc);
            cr_assert(th_pattern_ok(v.data, v.size, i), "object %llu torn", (unsigned long long)i);
            TH_OK(reel_obj_release(s, &id));
        }
        TH_OK(reel_obj_delete(s, &id)); /* a lost object can still be deleted */
    }
    cr_assert_gt(lost, 0);
    reel_store_stats st = th_stats(s);
    cr_assert_eq(st.objects, 0);
    cr_assert_eq(st.used, 0);
    cr_assert_eq(st.spill_files, 0);
    reel_store_close(s);
}

static int reader(void *p) {
    full_arg *a = p;
    reel_store *s;
    TH_CHILD_RC(reel_store_open(a->path, 0, &s), 0);
    for (uint64_t i = 0; i < 40; i++) {
        reel_id id = th_id_n(0x5b111, i);
        reel_view v;
        TH_CHILD_RC(reel_obj_get(s, &id, 1, 0, &v), 0);
        TH_CHILD_CHECK(th_pattern_ok(v.data, v.size, i), "object %llu torn", (unsigned long long)i);
        TH_CHILD_RC(reel_obj_release(s, &id), 0);
    }
    reel_store_close(s);
    return 0;
}

Test(spill, spilled_objects_read_back_by_another_process) {
    const char *path;
    reel_store *s = spilling_store(4u << 20, 0, spill_dir(), &path);
    for (uint64_t i = 0; i < 40; i++)
        put_pattern(s, i);
    cr_assert_gt(th_stats(s).objects_spilled, 0);
    full_arg a = {path};
    cr_assert_eq(th_wait(th_fork(reader, &a), 60000), 0);
    reel_store_close(s);
}

Test(spill, spill_on_demand_then_read_back) {
    reel_store *s = spilling_store(8u << 20, 1.0, spill_dir(), NULL);
    for (uint64_t i = 0; i < 16; i++) /* 4 MiB: no pressure at all */
        put_pattern(s, i);
    cr_assert_eq(th_stats(s).objects_spilled, 0);
    uint64_t spilled = 0;
    TH_OK(reel_store_spill(s, 0, &spilled));
    reel_store_stats st = th_stats(s);
    cr_assert_eq(spilled, 16ull * OBJ_SIZE + 16 * 64, "spilled %llu", (unsigned long long)spilled);
    cr_assert_eq(st.objects_spilled, 16);
    cr_assert_eq(st.used, 0);
    cr_assert_eq(st.spill_files, 1, "one pass, one file: %u", st.spill_files);
    for (uint64_t i = 0; i < 16; i++)
        expect_pattern(s, i);
    st = th_stats(s);
    cr_assert_eq(st.restores, 16);
    cr_assert_eq(st.spill_files, 0, "a file goes with its last object");
    reel_store_close(s);
    reel_store *plain = th_store_new(1 << 20, 16, NULL);
    TH_RC(reel_store_spill(plain, 0, NULL), -ENOTSUP);
    reel_store_close(plain);
}

Test(spill, two_stores_sharing_a_spill_directory_stay_apart) {
    const char *dir = spill_dir(), *pa, *pb;
    reel_store *a = spilling_store(8u << 20, 1.0, dir, &pa);
    reel_store *b = spilling_store(8u << 20, 1.0, dir, &pb);
    uint8_t buf[OBJ_SIZE];
    reel_id id = th_id_n(0x5b111, 1); /* the same ID, different bytes, in each store */
    memset(buf, 0xaa, sizeof buf);
    TH_OK(reel_obj_put(a, &id, buf, sizeof buf, NULL, 0, 0, 0));
    memset(buf, 0xbb, sizeof buf);
    TH_OK(reel_obj_put(b, &id, buf, sizeof buf, NULL, 0, 0, 0));
    TH_OK(reel_store_spill(a, 0, NULL));
    TH_OK(reel_store_spill(b, 0, NULL));
    reel_store_close(b);
    TH_OK(reel_store_destroy(pb)); /* removes b's files only */
    reel_view v;
    TH_OK(reel_obj_get(a, &id, 1, 0, &v));
    cr_assert_eq(((const uint8_t *)v.data)[0], 0xaa, "store a read store b's bytes");
    cr_assert_eq(((const uint8_t *)v.data)[OBJ_SIZE - 1], 0xaa);
    TH_OK(reel_obj_release(a, &id));
    reel_store_close(a);
}

typedef struct mover_arg {
    const char *path;
} mover_arg;

/* Marks an object as being spilled by this client, as a spiller does before
 * its unlocked write, then waits to be killed in the middle of it. */
static int die_while_spilling(void *p) {
    mover_arg *a = p;
    reel_store *c;
    TH_CHILD_RC(reel_store_open(a->path, 0, &c), 0);
    reel_id id = th_id_n(0x5b111, 0);
    pthread_mutex_lock(&c->hdr->lock);
    for (uint32_t i = 0; i < c->lay.max_objects; i++) {
        seg_object *o = &c->objects[i];
        if (o->state == OBJ_SEALED && reel_id_equal(&o->id, &id)) {
            o->flags |= OBJF_SPILLING;
            o->mover = c->slot + 1;
            o->spill_file = 3;
            c->spill_files[3].live = 2; /* the object and the writer */
            c->spill_files[3].writer = c->slot + 1;
            c->hdr->spill_files++;
        }
    }
    pthread_mutex_unlock(&c->hdr->lock);
    pause();
    return 0;
}

Test(spill, a_spiller_killed_mid_write_is_undone_by_reclaim) {
    const char *path;
    reel_store *s = spilling_store(8u << 20, 1.0, spill_dir(), &path);
    put_pattern(s, 0);
    reel_store_stats before = th_stats(s);
    mover_arg a = {path};
    pid_t child = th_fork(die_while_spilling, &a);
    for (int t = 0; t < 500 && th_stats(s).spill_files == 0; t++)
        th_sleep_ms(2);
    th_kill_wait(child, SIGKILL);
    TH_OK(reel_store_reclaim(s, NULL));
    reel_store_stats st = th_stats(s);
    cr_assert_eq(st.spill_files, 0, "the dead spiller's file is still counted");
    th_expect_same_usage(&before, &st, "after the dead spiller was reclaimed");
    expect_pattern(s, 0);
    uint64_t spilled;
    TH_OK(reel_store_spill(s, 0, &spilled)); /* spillable again */
    cr_assert_gt(spilled, 0);
    expect_pattern(s, 0);
    reel_store_close(s);
}

Test(spill, a_relative_spill_directory_is_refused) {
    reel_store_options o = {.capacity = 1 << 20, .spill_dir = "relative/dir"};
    reel_store *s;
    TH_RC(reel_store_create(th_store_path(), &o, &s), -EINVAL);
    cr_assert(strstr(reel_last_error(), "absolute"), "%s", reel_last_error());
}

typedef struct unpin_arg {
    reel_store *holder;
    reel_id ids[64];
    int n;
} unpin_arg;

/* Unpins once the test's get sleeps waiting for room (the store's space
 * sleepers, and the main thread asleep), so that it is woken by the unpin
 * and does not find the room already made. */
static void *unpin_later(void *p) {
    unpin_arg *a = p;
    uint64_t until = th_monotonic_ns() + 60ull * 1000000000u;
    while (atomic_load(&a->holder->hdr->space_sleepers) < 1 && th_monotonic_ns() < until)
        th_sleep_ms(1);
    th_wait_asleep(getpid(), 60000);
    for (int i = 0; i < a->n; i++) {
        reel_obj_release(a->holder, &a->ids[i]);
        reel_obj_delete(a->holder, &a->ids[i]);
    }
    return NULL;
}

Test(spill, a_get_waits_for_room_to_read_back) {
    const char *path;
    reel_store *s = spilling_store(4u << 20, 1.0, spill_dir(), &path);
    put_pattern(s, 0);
    TH_OK(reel_store_spill(s, 0, NULL));
    /* Fill the memory with objects another client holds: nothing can go. */
    reel_store *holder;
    TH_OK(reel_store_open(path, 0, &holder));
    static unpin_arg a;
    a.holder = holder;
    a.n = 0;
    uint8_t buf[OBJ_SIZE];
    memset(buf, 1, sizeof buf);
    for (;;) {
        reel_id id = th_id_n(0x9177, (uint64_t)a.n);
        if (reel_obj_put(s, &id, buf, sizeof buf, NULL, 0, 0, 0) != 0)
            break;
        reel_view v;
        TH_OK(reel_obj_get(holder, &id, 1, 0, &v));
        a.ids[a.n++] = id;
        cr_assert_lt(a.n, 64);
    }
    reel_id first = th_id_n(0x5b111, 0);
    reel_view v;
    TH_RC(reel_obj_get(s, &first, 1, 0, &v), REEL_EFULL); /* no wait asked: full */
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, unpin_later, &a), 0);
    TH_OK(reel_obj_get(s, &first, 1, 60000, &v)); /* waits for the unpin */
    cr_assert(th_pattern_ok(v.data, v.size, 0));
    TH_OK(reel_obj_release(s, &first));
    pthread_join(t, NULL);
    reel_store_close(holder);
    reel_store_close(s);
}

static int destroy_store(void *p) {
    full_arg *a = p;
    TH_CHILD_RC(reel_store_destroy(a->path), 0);
    return 0;
}

/* Another program destroys the store while this process is attached with
 * objects on disk: it keeps reading them back, and the spill files go with
 * its close, the last one out. */
Test(spill, destroy_keeps_the_spill_files_of_attached_processes) {
    const char *dir = spill_dir(), *path;
    reel_store *s = spilling_store(8u << 20, 1.0, dir, &path);
    for (uint64_t i = 0; i < 16; i++)
        put_pattern(s, i);
    TH_OK(reel_store_spill(s, 0, NULL));
    cr_assert_eq(th_stats(s).objects_spilled, 16);
    full_arg a = {path};
    cr_assert_eq(th_wait(th_fork(destroy_store, &a), 60000), 0);
    struct stat sb;
    cr_assert(stat(path, &sb) != 0, "the store's file outlived reel_store_destroy()");
    cr_assert_eq(count_spill_files(dir), 1, "the destroy removed files an attached process needs");
    for (uint64_t i = 0; i < 8; i++) /* read back; the rest stay on disk */
        expect_pattern(s, i);
    put_pattern(s, 100); /* and it still spills */
    TH_OK(reel_store_spill(s, 0, NULL));
    cr_assert_eq(count_spill_files(dir), 2);
    expect_pattern(s, 15);
    reel_store_close(s);
    cr_assert(stat(dir, &sb) != 0, "the last close left the spill directory %s", dir);
}

/* The state of object i of put_pattern(). */
static uint32_t pattern_state(reel_store *s, uint64_t i) {
    reel_id id = th_id_n(0x5b111, i);
    static reel_obj_info info[64];
    size_t n;
    TH_OK(reel_store_objects(s, info, 64, &n));
    cr_assert_leq(n, 64u);
    for (size_t k = 0; k < n; k++)
        if (reel_id_equal(&info[k].id, &id))
            return info[k].state;
    cr_assert_fail("object %llu not listed", (unsigned long long)i);
    return 0;
}

/* Reads set the recency, in an order unlike that of the puts; spills of a
 * byte budget take exactly the least recently used objects, in that order. */
Test(spill, least_recently_used_go_to_disk_first_under_a_byte_budget) {
    reel_store *s = spilling_store(8u << 20, 1.0, spill_dir(), NULL);
    enum { N = 12 };
    static const uint64_t order[N] = {5, 0, 11, 3, 8, 1, 10, 6, 2, 9, 4, 7};
    for (uint64_t i = 0; i < N; i++)
        put_pattern(s, i);
    for (int k = 0; k < N; k++) /* released: last used now */
        expect_pattern(s, order[k]);
    const uint64_t alloc = OBJ_SIZE + 64; /* data, then its 8 bytes of metadata aligned */
    uint64_t spilled = 0;
    TH_OK(reel_store_spill(s, 5 * alloc, &spilled));
    cr_assert_eq(spilled, 5 * alloc, "spilled %llu bytes", (unsigned long long)spilled);
    for (int k = 0; k < N; k++)
        cr_assert_eq(pattern_state(s, order[k]), k < 5 ? REEL_OBJ_SPILLED : REEL_OBJ_SEALED,
                     "object %llu, %d-th least recently used, %s", (unsigned long long)order[k],
                     k + 1, k < 5 ? "stayed in memory" : "went to disk before older ones");
    /* The next budget takes the next oldest: those on disk are not counted. */
    TH_OK(reel_store_spill(s, 3 * alloc, &spilled));
    for (int k = 5; k < N; k++)
        cr_assert_eq(pattern_state(s, order[k]), k < 8 ? REEL_OBJ_SPILLED : REEL_OBJ_SEALED,
                     "object %llu, %d-th least recently used", (unsigned long long)order[k], k + 1);
    reel_store_close(s);
}

static int fs_in_memory(const char *dir) {
    struct statfs fs;
    cr_assert_eq(statfs(dir, &fs), 0, "statfs %s: %s", dir, strerror(errno));
    return fs.f_type == TMPFS_MAGIC || fs.f_type == RAMFS_MAGIC;
}

/* Spill files by default go where they free memory: a directory on a file
 * system with a disk below it, passing over tmpfs. */
Test(spill, the_default_spill_directory_is_on_disk) {
    cr_assert(fs_in_memory("/dev/shm"), "this test needs /dev/shm on tmpfs");
    static const char *const cands[] = {"/dev/shm", "/var/tmp", "/tmp"};
    const char *got = reel__disk_dir(cands, 3);
    int var_tmp_mem = fs_in_memory("/var/tmp"), tmp_mem = fs_in_memory("/tmp");
    const char *want = !var_tmp_mem ? "/var/tmp" : !tmp_mem ? "/tmp" : "/dev/shm";
    cr_assert_str_eq(got, want, "chose %s among /dev/shm, /var/tmp and /tmp", got);

    reel_store_options o = {.capacity = 1 << 20, .flags = REEL_STORE_NO_PREFAULT};
    const char *path;
    reel_store *s = th_store_new_opts(&o, &path);
    const char *dir = reel_store_spill_dir(s);
    const char *base = strrchr(path, '/') + 1;
    char expect[256];
    snprintf(expect, sizeof expect, "%s/reel-spill-%s",
             var_tmp_mem && !tmp_mem ? "/tmp" : "/var/tmp", base);
    cr_assert_str_eq(dir, expect);
    cr_assert_eq(th_stats(s).spill_dir_in_memory, (uint32_t)(var_tmp_mem && tmp_mem));
    reel_store_close(s);
}

/* A spill directory on tmpfs is allowed (the caller may know better) but
 * flagged, and reel-inspect says why it is a bad idea. */
Test(spill, a_spill_directory_in_memory_is_flagged_and_reel_inspect_warns) {
    char dir[128];
    snprintf(dir, sizeof dir, "/dev/shm/reel-test-spill-%d/below", (int)getpid());
    const char *path;
    reel_store *s = spilling_store(4u << 20, 1.0, dir, &path);
    cr_assert_str_eq(reel_store_spill_dir(s), dir);
    cr_assert_eq(th_stats(s).spill_dir_in_memory, 1, "a spill directory on tmpfs is not flagged");
    th_result r = th_run_inspect(NULL, (const char *[]){path, NULL});
    cr_assert_eq(r.code, 0, "stderr: %s", r.err);
    cr_assert(strstr(r.out, "warning") && strstr(r.out, dir) && strstr(r.out, "frees no memory"),
              "no warning in:\n%s", r.out);
    th_result_free(&r);
    reel_store_close(s);

    s = spilling_store(4u << 20, 1.0, spill_dir(), &path); /* under /tmp: on disk here? */
    cr_assert_eq(th_stats(s).spill_dir_in_memory, (uint32_t)fs_in_memory("/tmp"));
    reel_store_close(s);
}

/* The path of the one spill file in dir, into out. */
static void only_spill_file(const char *dir, char *out, size_t cap) {
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "no spill directory %s", dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strncmp(e->d_name, "spill-", 6) == 0 && n++ == 0)
            cr_assert_lt((size_t)snprintf(out, cap, "%s/%.64s", dir, e->d_name), cap);
    closedir(d);
    cr_assert_eq(n, 1, "%d spill files in %s, expected one", n, dir);
}

static uint64_t disk_bytes(const char *path) {
    struct stat sb;
    cr_assert_eq(stat(path, &sb), 0, "stat %s: %s", path, strerror(errno));
    return (uint64_t)sb.st_blocks * 512;
}

/* Objects leave a spill file (read back, deleted) one by one: their bytes
 * are punched out of it, and the one left keeps no more than its own. */
Test(spill, a_file_keeps_disk_space_only_for_the_objects_still_in_it) {
    const char *dir = spill_dir();
    reel_store *s = spilling_store(8u << 20, 1.0, dir, NULL);
    enum { N = 16 };
    for (uint64_t i = 0; i < N; i++)
        put_pattern(s, i);
    TH_OK(reel_store_spill(s, 0, NULL));
    char file[512];
    only_spill_file(dir, file, sizeof file);
    uint64_t full = disk_bytes(file);
    cr_assert_geq(full, N * OBJ_SIZE, "the file holds %llu bytes on disk",
                  (unsigned long long)full);
    for (uint64_t i = 0; i < N - 1; i++) {
        reel_id id = th_id_n(0x5b111, i);
        if (i % 2)
            expect_pattern(s, i); /* read back */
        else
            TH_OK(reel_obj_delete(s, &id)); /* deleted while on disk */
    }
    cr_assert_eq(th_stats(s).objects_spilled, 1);
    uint64_t left = disk_bytes(file);
    cr_assert_leq(left, OBJ_SIZE + 64 + 2 * 4096,
                  "one %u-byte object left keeps %llu bytes of its file (%llu at first)", OBJ_SIZE,
                  (unsigned long long)left, (unsigned long long)full);
    expect_pattern(s, N - 1); /* its neighbours' holes left it intact */
    cr_assert_eq(count_spill_files(dir), 0);
    reel_store_close(s);
}

#define SMALL 4096u

/* More spill passes than the table has files, each leaving its object on
 * disk: spilling goes on (into the files there, past their ends), and every
 * object reads back intact. */
Test(spill, spilling_goes_on_when_the_file_table_is_full) {
    const char *dir = spill_dir();
    reel_store *s = spilling_store(8u << 20, 1.0, dir, NULL);
    enum { N = SEG_SPILL_FILES + 40 };
    static uint8_t buf[SMALL];
    for (uint64_t i = 0; i < N; i++) {
        th_fill(buf, sizeof buf, i);
        reel_id id = th_id_n(0x5a11, i);
        TH_OK(reel_obj_put(s, &id, buf, sizeof buf, NULL, 0, 0, 0));
        uint64_t spilled = 0;
        TH_OK(reel_store_spill(s, 0, &spilled));
        cr_assert_eq(spilled, SMALL, "pass %llu spilled %llu bytes", (unsigned long long)i,
                     (unsigned long long)spilled);
    }
    reel_store_stats st = th_stats(s);
    cr_assert_eq(st.objects_spilled, N);
    cr_assert_leq(st.spill_files, SEG_SPILL_FILES);
    cr_assert_eq(count_spill_files(dir), (int)st.spill_files);
    for (uint64_t i = N; i-- > 0;) {
        reel_id id = th_id_n(0x5a11, i);
        reel_view v;
        TH_OK(reel_obj_get(s, &id, 1, 0, &v));
        cr_assert(th_pattern_ok(v.data, v.size, i), "object %llu torn", (unsigned long long)i);
        TH_OK(reel_obj_release(s, &id));
        TH_OK(reel_obj_delete(s, &id));
    }
    st = th_stats(s);
    cr_assert_eq(st.objects, 0);
    cr_assert_eq(st.spill_files, 0);
    cr_assert_eq(count_spill_files(dir), 0);
    reel_store_close(s);
}
