/* The store file: its layout, its creation (complete or not at all) and the
 * validation of a file another process wrote before anything in it is trusted. */
#include "store_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PAGE           4096u
#define MAX_CAPACITY   (1ull << 44) /* 16 TiB */
#define MAX_OBJECTS    (1u << 24)
#define MAX_CLIENTS    4096u
#define MAX_REFS       (1u << 20)
#define MAX_TABLE_SIZE (1ull << 34) /* all tables together */

static uint64_t round_up(uint64_t v, uint64_t a) {
    return (v + a - 1) / a * a;
}

static uint32_t next_pow2(uint32_t v) {
    uint32_t p = 1;
    while (p < v)
        p <<= 1;
    return p;
}

uint64_t reel__now_ns(int clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int reel__layout(seg_layout *l, uint64_t capacity, uint32_t max_objects, uint32_t max_clients,
                 uint32_t max_refs) {
    if (capacity == 0 || capacity > MAX_CAPACITY || max_objects == 0 || max_objects > MAX_OBJECTS ||
        max_clients == 0 || max_clients > MAX_CLIENTS || max_refs == 0 || max_refs > MAX_REFS)
        return -EINVAL;
    memset(l, 0, sizeof *l);
    l->capacity = round_up(capacity, PAGE);
    l->max_objects = max_objects;
    l->max_clients = max_clients;
    l->max_refs = max_refs;
    l->ref_slots = next_pow2(max_refs + max_refs / 2); /* at most 2/3 full: short probes */
    l->index_size = next_pow2(max_objects * 2);
    l->max_blocks = max_objects * 2 + 2;
    uint64_t off = round_up(sizeof(seg_header), PAGE);
    l->clients_off = off;
    off = round_up(off + (uint64_t)max_clients * sizeof(seg_client), SEG_ALIGN);
    l->refs_off = off;
    off = round_up(off + (uint64_t)max_clients * l->ref_slots * sizeof(seg_ref), SEG_ALIGN);
    l->objects_off = off;
    off = round_up(off + (uint64_t)max_objects * sizeof(seg_object), SEG_ALIGN);
    l->index_off = off;
    off = round_up(off + (uint64_t)l->index_size * sizeof(uint32_t), SEG_ALIGN);
    l->blocks_off = off;
    off = round_up(off + (uint64_t)l->max_blocks * sizeof(seg_block), SEG_ALIGN);
    l->spill_files_off = off;
    off = round_up(off + (uint64_t)SEG_SPILL_FILES * sizeof(seg_spill_file), PAGE);
    if (off > MAX_TABLE_SIZE)
        return -EINVAL;
    l->arena_off = off;
    l->file_size = off + l->capacity;
    return 0;
}

int reel__process_start_time(pid_t pid, uint64_t *out, char *state) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno; /* -ENOENT: no such process; anything else says nothing */
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return n == 0 ? -ENOENT : -errno; /* an empty stat: it is being reaped */
    buf[n] = '\0';
    /* The command name may hold spaces and parentheses: fields count from the last ')'. */
    char *p = strrchr(buf, ')');
    if (!p || p[1] != ' ' || !p[2])
        return -EIO;
    if (state)
        *state = p[2];
    int field = 2;
    for (p++; *p && field < 22; p++)
        if (*p == ' ')
            field++;
    if (field != 22)
        return -EIO;
    *out = strtoull(p, NULL, 10);
    return 0;
}

static void init_header(uint8_t *base, const seg_layout *l, const char *spill_dir,
                        uint32_t high_water) {
    seg_header *h = (seg_header *)base;
    memset(h, 0, sizeof *h);
    h->version = SEG_FORMAT_VERSION;
    h->header_size = sizeof(seg_header);
    h->file_size = l->file_size;
    h->capacity = l->capacity;
    h->max_objects = l->max_objects;
    h->max_clients = l->max_clients;
    h->max_refs = l->max_refs;
    h->index_size = l->index_size;
    h->max_blocks = l->max_blocks;
    h->clients_off = l->clients_off;
    h->refs_off = l->refs_off;
    h->objects_off = l->objects_off;
    h->index_off = l->index_off;
    h->blocks_off = l->blocks_off;
    h->spill_files_off = l->spill_files_off;
    h->high_water = high_water;
    snprintf(h->spill_dir, sizeof h->spill_dir, "%s", spill_dir ? spill_dir : "");
    if (getentropy(&h->spill_token, sizeof h->spill_token) != 0)
        h->spill_token = reel__now_ns(CLOCK_REALTIME) ^ (uint64_t)getpid() << 40;
    h->arena_off = l->arena_off;
    h->created_ns = reel__now_ns(CLOCK_REALTIME);

    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&h->lock, &a);
    pthread_mutexattr_destroy(&a);

    /* Object slots all free; one free block spans the arena. */
    seg_object *objects = (seg_object *)(base + l->objects_off);
    for (uint32_t i = 0; i < l->max_objects; i++) {
        objects[i].state = OBJ_FREE;
        objects[i].lru_prev = SEG_NIL;
        objects[i].lru_next = i + 1 < l->max_objects ? i + 1 : SEG_NIL;
    }
    h->object_free_head = 0;
    h->lru_head = h->lru_tail = SEG_NIL;
    for (int c = 0; c < SEG_CLASSES; c++)
        h->class_head[c] = SEG_NIL;
    seg_block *blocks = (seg_block *)(base + l->blocks_off);
    for (uint32_t i = 0; i < l->max_blocks; i++) {
        blocks[i].state = BLOCK_UNUSED;
        blocks[i].free_next = i + 1 < l->max_blocks ? i + 1 : SEG_NIL;
    }
    h->block_unused_head = 0;
    /* The store is empty: let the rebuild lay out the free space. */
    reel_store tmp = {
        .lay = *l,
        .base = base,
        .hdr = h,
        .clients = (seg_client *)(base + l->clients_off),
        .refs = (seg_ref *)(base + l->refs_off),
        .objects = objects,
        .index = (uint32_t *)(base + l->index_off),
        .blocks = blocks,
        .spill_files = (seg_spill_file *)(base + l->spill_files_off),
        .arena = base + l->arena_off,
        .slot = SEG_NIL,
    };
    reel__rebuild(&tmp);
}

int reel__segment_create(const char *path, const seg_layout *l, int prefault, const char *spill_dir,
                         uint32_t high_water) {
    char tmp[PATH_MAX];
    uint32_t salt;
    if (getentropy(&salt, sizeof salt) != 0)
        salt = (uint32_t)reel__now_ns(CLOCK_MONOTONIC);
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%d.%08x", path, (int)getpid(), salt) >= (int)sizeof tmp)
        return -ENAMETOOLONG;
    int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    int rc = 0;
    uint8_t *base = MAP_FAILED;
    if (ftruncate(fd, (off_t)l->file_size) != 0) {
        rc = -errno;
        goto fail;
    }
    /* Allocate every page now (tmpfs zeroes it here, at 1-2 GB/s) rather than
     * on the hot path; a file system without fallocate gets its pages touched. */
    if (prefault) {
        int frc = posix_fallocate(fd, 0, (off_t)l->file_size);
        if (frc == ENOSPC || frc == ENOMEM) {
            rc = -frc;
            goto fail;
        }
    }
    /* Not populated: only the header and the tables are written here, and
     * the creator's attach maps (and populates) the file again. */
    base = mmap(NULL, l->file_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) {
        rc = -errno;
        goto fail;
    }
    init_header(base, l, spill_dir, high_water);
    /* The magic goes in last: an opener never sees a half-made store. */
    memcpy(((seg_header *)base)->magic, SEG_MAGIC, 8);
    if (msync(base, sizeof(seg_header), MS_SYNC) != 0) {
        rc = -errno;
        goto fail;
    }
    munmap(base, l->file_size);
    base = MAP_FAILED;
    /* link() fails if the path exists, so two creators cannot both win. */
    if (link(tmp, path) != 0) {
        rc = -errno;
        goto fail;
    }
    unlink(tmp);
    close(fd);
    return 0;
fail:
    if (base != MAP_FAILED)
        munmap(base, l->file_size);
    unlink(tmp);
    close(fd);
    return rc;
}

/* Whether a mutex found in a segment is what init_header made: robust,
 * process-shared, of the plain type. Any other kind is not ours: a mutex that
 * is not robust, held by a process that died, blocks every opener for good; a
 * process-private one never wakes a waiter in another process; a priority
 * inheriting or protecting one has other futex rules. glibc keeps the kind in
 * __data.__kind (as store.c reads the owner in __data.__lock); the elision
 * bits glibc may set on its own (256 and 512) are left out of the comparison. */
static int lock_kind_ok(const pthread_mutex_t *m) {
    pthread_mutexattr_t a;
    pthread_mutex_t want;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&want, &a);
    pthread_mutexattr_destroy(&a);
    const int elision = 256 | 512;
    return (m->__data.__kind & ~elision) == (want.__data.__kind & ~elision);
}

/* Reads and checks the header of an open file. Never maps a file it has not
 * sized, so a truncated file cannot raise SIGBUS. */
static int validate_header(int fd, const char *path, seg_header *h, seg_layout *l) {
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return reel__fail(REEL_EFOREIGN, "%s is not a regular file", path);
    memset(h, 0, sizeof *h);
    ssize_t n = pread(fd, h, sizeof *h, 0);
    if (n < 0)
        return -errno;
    if ((size_t)n < sizeof h->magic || memcmp(h->magic, SEG_MAGIC, 8) != 0)
        return reel__fail(REEL_EFOREIGN, "%s has no reel store magic", path);
    if ((size_t)n < sizeof *h)
        return reel__fail(REEL_ETRUNCATED, "%s is %lld bytes, shorter than a store header", path,
                          (long long)st.st_size);
    if (h->version != SEG_FORMAT_VERSION)
        return reel__fail(REEL_EVERSION, "%s has format version %u, this build reads version %u",
                          path, h->version, SEG_FORMAT_VERSION);
    if (h->header_size != sizeof(seg_header))
        return reel__fail(REEL_ECORRUPT, "%s: header size %u, expected %zu", path, h->header_size,
                          sizeof(seg_header));
    if (reel__layout(l, h->capacity, h->max_objects, h->max_clients, h->max_refs) != 0)
        return reel__fail(REEL_ECORRUPT, "%s: sizes out of range", path);
    if (l->capacity != h->capacity || l->max_refs != h->max_refs ||
        l->index_size != h->index_size || l->max_blocks != h->max_blocks ||
        l->clients_off != h->clients_off || l->refs_off != h->refs_off ||
        l->objects_off != h->objects_off || l->index_off != h->index_off ||
        l->blocks_off != h->blocks_off || l->spill_files_off != h->spill_files_off ||
        l->arena_off != h->arena_off || l->file_size != h->file_size)
        return reel__fail(REEL_ECORRUPT, "%s: layout fields disagree with the store's sizes", path);
    if (!memchr(h->spill_dir, '\0', sizeof h->spill_dir) || h->high_water > 1000)
        return reel__fail(REEL_ECORRUPT, "%s: spill settings out of range", path);
    if (!lock_kind_ok(&h->lock))
        return reel__fail(REEL_ECORRUPT, "%s: its lock is not a robust process-shared mutex", path);
    if ((uint64_t)st.st_size < l->file_size)
        return reel__fail(REEL_ETRUNCATED, "%s is %lld bytes, its header says %llu", path,
                          (long long)st.st_size, (unsigned long long)l->file_size);
    return 0;
}

int reel__segment_map(reel_store *s, const char *path, int populate) {
    int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        int e = errno;
        return reel__fail(-e, "cannot open %s: %s", path, strerror(e));
    }
    seg_header h;
    seg_layout l;
    int rc = validate_header(fd, path, &h, &l);
    if (rc == 0) {
        void *base = mmap(NULL, l.file_size, PROT_READ | PROT_WRITE,
                          MAP_SHARED | (populate ? MAP_POPULATE : 0), fd, 0);
        if (base == MAP_FAILED) {
            rc = -errno;
        } else {
            s->lay = l;
            s->base = base;
            s->map_size = l.file_size;
            s->hdr = base;
            s->clients = (seg_client *)(s->base + l.clients_off);
            s->refs = (seg_ref *)(s->base + l.refs_off);
            s->objects = (seg_object *)(s->base + l.objects_off);
            s->index = (uint32_t *)(s->base + l.index_off);
            s->blocks = (seg_block *)(s->base + l.blocks_off);
            s->spill_files = (seg_spill_file *)(s->base + l.spill_files_off);
            s->arena = s->base + l.arena_off;
        }
    }
    close(fd);
    return rc;
}
