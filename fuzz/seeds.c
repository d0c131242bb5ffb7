/* reel-fuzz-seeds OUTDIR: writes seed inputs for the ctl, meta and segment
 * fuzz targets into OUTDIR/<target>/, each a real encoding made by reel's own
 * encoders (reel__ctl_encode, reel_meta_encode, reel_store_create), so the
 * fuzzers start from inputs that get past the first checks. fuzz/make_corpus.sh
 * runs it; the files it wrote are checked in under fuzz/corpus/. */
#include "control.h"

#include <reel/store.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *outdir;

static void die(const char *what, int rc) {
    fprintf(stderr, "reel-fuzz-seeds: %s: %s (%s)\n", what, reel_strerror(rc), reel_last_error());
    exit(1);
}

static void put(const char *target, const char *name, const void *data, size_t size) {
    char dir[4096], file[4200];
    snprintf(dir, sizeof dir, "%s/%s", outdir, target);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        die(dir, -errno);
    snprintf(file, sizeof file, "%s/%s", dir, name);
    FILE *f = fopen(file, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
        die(file, -EIO);
}

/* ---- control messages: one of every type, optional fields with and without */

static void ctl(const char *name, const reel_ctl_msg *m) {
    uint8_t buf[2048];
    size_t len;
    int rc = reel__ctl_encode(m, buf, sizeof buf, &len);
    if (rc)
        die(name, rc);
    put("ctl", name, buf, len);
}

static void ctl_seeds(void) {
    reel_ctl_msg m;
    memset(&m, 0, sizeof m);
    m.type = REEL_CTL_SPAWN;
    m.actor = 3;
    m.pool = 1;
    m.worker = 7;
    m.generation = 2;
    snprintf(m.path, sizeof m.path, "/dev/shm/reel-rt-1234-w7");
    ctl("spawn", &m);
    snprintf(m.cpus, sizeof m.cpus, "0-3,6");
    snprintf(m.cvd, sizeof m.cvd, "-1");
    ctl("spawn-affinity", &m);

    memset(&m, 0, sizeof m);
    m.type = REEL_CTL_SPAWNED;
    m.pool = 1;
    m.worker = 7;
    m.generation = 2;
    m.pid = 4242;
    ctl("spawned", &m);

    memset(&m, 0, sizeof m);
    m.type = REEL_CTL_READY;
    m.pool = 4294967295u;
    m.worker = 255;
    m.generation = 1;
    ctl("ready", &m);

    const uint32_t bare[] = {REEL_CTL_STOP, REEL_CTL_DRAIN, REEL_CTL_STATS_REQ, REEL_CTL_EXIT};
    for (size_t i = 0; i < sizeof bare / sizeof *bare; i++) {
        memset(&m, 0, sizeof m);
        m.type = bare[i];
        ctl(reel__ctl_type_name(bare[i]), &m);
    }

    memset(&m, 0, sizeof m);
    m.type = REEL_CTL_STATS;
    m.done = 1000;
    m.failed = 3;
    m.busy_ns = 123456789012ull;
    m.rss = 1ull << 33;
    ctl("stats", &m);

    memset(&m, 0, sizeof m);
    m.type = REEL_CTL_ERROR;
    m.phase = 1;
    m.code = -22;
    snprintf(m.text, sizeof m.text, "setup: cannot open the model");
    ctl("error-setup", &m);
    m.phase = 2;
    m.code = -4006;
    m.has_task = 1;
    reel_id_derive(&(reel_id){{1, 2, 3}}, 9, &m.task);
    snprintf(m.text, sizeof m.text, "process: store full");
    ctl("error-process", &m);
}

/* ---- object metadata: one of each kind ----------------------------------- */

static void meta(const char *name, const reel_meta *m) {
    uint8_t buf[512];
    size_t len;
    int rc = reel_meta_encode(m, buf, sizeof buf, &len);
    if (rc)
        die(name, rc);
    put("meta", name, buf, len);
}

static void meta_seeds(void) {
    meta("bytes", &(reel_meta){.kind = REEL_META_BYTES});
    meta("encoded",
         &(reel_meta){.kind = REEL_META_ENCODED, .format = "h264", .duration_us = 4000000});
    meta("frame", &(reel_meta){.kind = REEL_META_FRAME,
                               .dtype = REEL_DTYPE_U8,
                               .ndim = 3,
                               .shape = {1080, 1920, 3},
                               .format = "rgb24",
                               .pts_us = 33366,
                               .duration_us = 33367});
    meta("tensor", &(reel_meta){.kind = REEL_META_TENSOR,
                                .dtype = REEL_DTYPE_F32,
                                .ndim = 8,
                                .shape = {1, 2, 3, 4, 5, 6, 7, UINT64_MAX},
                                .format = "cuda:0000:3B:00.0",
                                .pts_us = -1,
                                .duration_us = INT64_MIN});
}

/* ---- store segments: the smallest sizes, empty and with objects ----------- */

static void copy_store(const char *src, const char *name) {
    int fd = open(src, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0)
        die(src, -errno);
    uint8_t *buf = malloc((size_t)st.st_size);
    if (!buf || read(fd, buf, (size_t)st.st_size) != st.st_size)
        die(src, -EIO);
    close(fd);
    put("segment", name, buf, (size_t)st.st_size);
    free(buf);
}

static void segment_seeds(void) {
    char path[64];
    snprintf(path, sizeof path, "/dev/shm/reel-fuzz-seeds-%d", (int)getpid());
    reel_store_options o = {.capacity = 4096,
                            .max_objects = 4,
                            .max_clients = 2,
                            .max_refs_per_client = 2,
                            .flags = REEL_STORE_NO_SPILL};
    reel_store *s;
    int rc = reel_store_create(path, &o, &s);
    if (rc)
        die("create", rc);
    reel_store_close(s);
    copy_store(path, "empty");

    /* Objects of every state: sealed (with metadata, one evictable and owned), one
     * deleted while referenced, one unsealed; copied while this process is
     * attached and holds references, so that the fuzzer's opener finds a
     * client that is gone by then and reclaims what it held. */
    if ((rc = reel_store_open(path, 0, &s)) != 0)
        die("open", rc);
    uint8_t metabuf[128];
    size_t mlen;
    reel_meta fm = {.kind = REEL_META_FRAME,
                    .dtype = REEL_DTYPE_U8,
                    .ndim = 3,
                    .shape = {4, 4, 3},
                    .format = "rgb24"};
    if ((rc = reel_meta_encode(&fm, metabuf, sizeof metabuf, &mlen)) != 0)
        die("meta", rc);
    reel_id ids[4];
    for (int i = 0; i < 4; i++)
        reel_id_derive(&(reel_id){{0x5e, 0xed}}, (uint64_t)i, &ids[i]);
    uint8_t pixels[48];
    for (int i = 0; i < 48; i++)
        pixels[i] = (uint8_t)(i * 5);
    /* The evictable one is owned by this client: deleted with it by the
     * fuzzer's opener, handed to the store by the close. */
    uint64_t token = 0;
    if ((rc = reel_obj_put(s, &ids[0], pixels, sizeof pixels, metabuf, (uint32_t)mlen, 0, 0)) ||
        (rc = reel_store_owner_token(s, &token)) || (rc = reel_store_set_owner(s, token)) ||
        (rc = reel_obj_put(s, &ids[1], "evict me", 8, NULL, 0, REEL_OBJ_EVICTABLE, 0)) ||
        (rc = reel_store_set_owner(s, 0)) ||
        (rc = reel_obj_put(s, &ids[2], "deleted", 7, NULL, 0, 0, 0)))
        die("put", rc);
    reel_view v;
    if ((rc = reel_obj_get(s, &ids[2], 1, 0, &v)) || (rc = reel_obj_delete(s, &ids[2])) ||
        (rc = reel_obj_get(s, &ids[0], 1, 0, &v)))
        die("get", rc);
    void *buf;
    if ((rc = reel_obj_create(s, &ids[3], 100, NULL, 0, 0, 0, &buf)) != 0)
        die("create", rc);
    memset(buf, 0xab, 100);
    copy_store(path, "objects-attached");
    reel_store_close(s);
    copy_store(path, "objects");
    reel_store_destroy(path);
}

int main(int argc, char **argv) {
    if (argc != 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: reel-fuzz-seeds OUTDIR\n"
                        "Writes seed inputs for the ctl, meta and segment fuzz targets "
                        "into OUTDIR/<target>/.\n");
        return argc == 2 && strcmp(argv[1], "--help") == 0 ? 0 : 2;
    }
    outdir = argv[1];
    if (mkdir(outdir, 0755) != 0 && errno != EEXIST)
        die(outdir, -errno);
    ctl_seeds();
    meta_seeds();
    segment_seeds();
    return 0;
}
