/* libFuzzer target: a store file of arbitrary bytes (objstore/segment.c and
 * the rebuild in store.c). The bytes are written to a file under /dev/shm,
 * which is then opened twice, as reel-inspect and as a stage would:
 *
 *   1. as an observer (REEL_OPEN_OBSERVER): header validation, then stats and
 *      the object and client listings, which walk the tables under the lock;
 *   2. as a client: the open claims a slot (the lock, reclaiming dead clients,
 *      a rebuild of every derived table when the lock says its owner died or
 *      a bad index is seen), then stats, listings, reclaim, a zero-copy get
 *      of each sealed object listed, whose bytes and metadata are read, then
 *      creates (small, half the capacity, all of it: the allocator and the
 *      eviction of the LRU as the bytes left them), each written in full,
 *      sealed, read back and deleted, and the delete of a listed object.
 *
 * The file: /dev/shm/reel-fuzz-segment-<pid>, written before each open and
 * removed as soon as reel_store_open returns (the mapping outlives the name).
 * A process that dies inside reel_store_open leaves it behind: the next start
 * of this target removes the files of processes that are gone, and
 * scripts/fuzz.sh removes them after every run.
 *
 * The lock word: a word that names a live thread (pid 1 is one) makes every
 * opener wait for the lock, five seconds for an observer or a slot being
 * claimed: what the store does for a lock really held. A word naming a dead
 * thread, or waiters and no owner, costs a second before the store marks it
 * dead and rebuilds. Either is no use to a fuzzer at thousands of runs a
 * second: the harness keeps only the word's FUTEX_OWNER_DIED bit, so the
 * recovery path (the rebuild of every derived table from the bytes given) is
 * fuzzed, not the wait. The rest of the mutex (kind, count, owner) is left
 * as given: the kind is checked at open.
 *
 * Not fuzzed: spilling, which would write files into the spill directory the
 * header names (any path). The client pass empties that name (spilling off;
 * the observer pass sees it as given), and gets are made only on objects
 * listed as sealed in memory; a spilled one would be read back from it. */
#include "store_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PREFIX   "reel-fuzz-segment-"
#define MAX_LIST 64

static char path[64];

static void remove_file(void) {
    if (path[0])
        unlink(path);
}

static void unlink_in(const char *dir, const char *name, void *arg) {
    (void)arg;
    char file[300];
    snprintf(file, sizeof file, "%s/%s", dir, name);
    unlink(file);
}

/* Removes the files left by fuzzer processes that died mid-run. */
static void sweep_stale(void) {
    reel__each_left_by_the_dead("/dev/shm", PREFIX, 0, unlink_in, NULL);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    sweep_stale();
    snprintf(path, sizeof path, "/dev/shm/" PREFIX "%d", (int)getpid());
    atexit(remove_file);
    return 0;
}

static int write_file(const uint8_t *data, size_t size, int no_spill) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -1;
    size_t done = 0;
    while (done < size) {
        ssize_t n = write(fd, data + done, size - done);
        if (n <= 0) {
            close(fd);
            return -1;
        }
        done += (size_t)n;
    }
    /* Keep only the lock word's OWNER_DIED bit (see above). */
    size_t word = offsetof(seg_header, lock) + offsetof(pthread_mutex_t, __data.__lock);
    if (size >= word + sizeof(int)) {
        int v;
        memcpy(&v, data + word, sizeof v);
        v &= FUTEX_OWNER_DIED;
        if (pwrite(fd, &v, sizeof v, (off_t)word) != (ssize_t)sizeof v) {
            close(fd);
            return -1;
        }
    }
    /* The client pass writes objects: an empty spill directory keeps its
     * creates from spilling into the directory the bytes name. */
    size_t dir = offsetof(seg_header, spill_dir);
    if (no_spill && size > dir && pwrite(fd, "", 1, (off_t)dir) != 1) {
        close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

/* What a reader of someone else's store does with it. */
static void use(reel_store *s, int client) {
    reel_store_stats st;
    (void)reel_store_stats_get(s, &st);
    reel_client_info clients[8];
    size_t nclients = 0;
    (void)reel_store_clients(s, clients, 8, &nclients);
    static reel_obj_info objs[MAX_LIST]; /* 20 KiB: not on the stack */
    size_t nobjs = 0;
    if (reel_store_objects(s, objs, MAX_LIST, &nobjs) != 0)
        nobjs = 0;
    if (nobjs > MAX_LIST)
        nobjs = MAX_LIST;
    for (size_t i = 0; i < nobjs; i++) {
        reel_meta m;
        uint32_t n =
            objs[i].meta_size < REEL_OBJ_INFO_META_MAX ? objs[i].meta_size : REEL_OBJ_INFO_META_MAX;
        (void)reel_meta_decode(objs[i].meta, n, &m);
    }
    if (!client)
        return;
    uint32_t reclaimed;
    (void)reel_store_reclaim(s, &reclaimed);
    for (size_t i = 0; i < nobjs; i++) {
        int present = 0;
        (void)reel_obj_contains(s, &objs[i].id, &present);
        if (objs[i].state != REEL_OBJ_SEALED)
            continue;
        reel_view v;
        if (reel_obj_get(s, &objs[i].id, 1, 0, &v) != 0)
            continue;
        /* Touch both ends of the data and the metadata: they must be mapped. */
        volatile uint8_t sink = 0;
        if (v.size)
            sink ^= ((const uint8_t *)v.data)[0] ^ ((const uint8_t *)v.data)[v.size - 1];
        if (v.meta_size)
            sink ^= ((const uint8_t *)v.meta)[0] ^ ((const uint8_t *)v.meta)[v.meta_size - 1];
        (void)sink;
        reel_meta m;
        (void)reel_meta_decode(v.meta, v.meta_size, &m);
        (void)reel_obj_release(s, &objs[i].id);
    }
    /* A writer in a store whose allocator, free lists and LRU are as given:
     * small and large creates (which may evict), each written in full,
     * sealed, read back and deleted, then the delete of a listed object,
     * whose block is coalesced with its neighbours. */
    reel_store_stats st2;
    uint64_t cap = reel_store_stats_get(s, &st2) == 0 ? st2.capacity : 4096;
    const uint64_t sizes[] = {100, cap / 2, cap};
    static const char meta[] = "fuzz";
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        reel_id id;
        reel_id_derive(&(reel_id){{0xf0, 0x22}}, k, &id);
        void *buf;
        if (reel_obj_create(s, &id, sizes[k], meta, sizeof meta, REEL_OBJ_EVICTABLE, 0, &buf) != 0)
            continue;
        memset(buf, 0x5a, sizes[k]);
        if (reel_obj_seal(s, &id) != 0) {
            (void)reel_obj_abort(s, &id);
            continue;
        }
        reel_view v;
        if (reel_obj_get(s, &id, 1, 0, &v) == 0) {
            if (v.size != sizes[k] || v.meta_size != sizeof meta ||
                memcmp(v.meta, meta, sizeof meta) != 0) {
                fprintf(stderr, "fuzz_segment: object %zu read back wrong\n", k);
                abort();
            }
            (void)reel_obj_release(s, &id);
        }
        (void)reel_obj_delete(s, &id);
    }
    for (size_t i = 0; i < nobjs; i++)
        if (objs[i].state == REEL_OBJ_SEALED) {
            (void)reel_obj_delete(s, &objs[i].id);
            break;
        }
}

/* Writes the file, opens it and removes it at once: the mapping outlives the
 * name, so the file exists only while reel_store_open runs. */
static int attach(const uint8_t *data, size_t size, uint32_t flags, reel_store **s) {
    int no_spill = !(flags & REEL_OPEN_OBSERVER);
    int rc = write_file(data, size, no_spill) == 0 ? reel_store_open(path, flags, s) : -1;
    remove_file();
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    reel_store *s;
    if (attach(data, size, REEL_OPEN_OBSERVER, &s) == 0) {
        use(s, 0);
        reel_store_close(s);
    }
    /* The same bytes again: the observer's calls may have rebuilt the tables. */
    if (attach(data, size, 0, &s) == 0) {
        use(s, 1);
        reel_store_close(s);
    }
    return 0;
}
