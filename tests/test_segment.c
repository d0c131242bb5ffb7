/* The store file: opening files that are not valid stores, file mode,
 * destroy, and error names. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <grp.h>
#include <sys/stat.h>

#include <criterion/criterion.h>

#include "helpers.h"
#include "store_internal.h" /* reel__private_dir */

TestSuite(segment, .init = th_init, .fini = th_fini, .timeout = 60);

#define MiB (1024u * 1024u)

static void write_file(const char *path, const void *data, size_t len) {
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
    cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
    const uint8_t *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        cr_assert_gt(w, 0, "write %s: %s", path, strerror(errno));
        p += w;
        len -= (size_t)w;
    }
    close(fd);
}

static uint8_t *read_file(const char *path, size_t *len) {
    int fd = open(path, O_RDONLY);
    cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
    struct stat st;
    cr_assert_eq(fstat(fd, &st), 0);
    size_t n = (size_t)st.st_size;
    uint8_t *buf = malloc(n ? n : 1);
    cr_assert_not_null(buf);
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        cr_assert_gt(r, 0, "read %s: %s", path, strerror(errno));
        got += (size_t)r;
    }
    close(fd);
    *len = n;
    return buf;
}

/* A valid, closed store file's bytes. */
static uint8_t *valid_store_bytes(size_t *len) {
    const char *path;
    reel_store *s = th_store_new(1 * MiB, 64, &path);
    reel_id a = th_id_random();
    void *buf;
    TH_OK(reel_obj_create(s, &a, 1000, "m", 1, 0, 0, &buf));
    th_fill(buf, 1000, 1);
    TH_OK(reel_obj_seal(s, &a));
    TH_OK(reel_store_close(s));
    return read_file(path, len);
}

static int is_segment_error(int rc) {
    return rc == REEL_EFOREIGN || rc == REEL_EVERSION || rc == REEL_ECORRUPT ||
           rc == REEL_ETRUNCATED;
}

/* Opens path as a client and as an observer; both must fail with one of the
 * allowed codes and leave the file as it was. */
static void expect_open_fails(const char *path, const int *allowed, size_t nallowed,
                              const char *what) {
    size_t before_len;
    uint8_t *before = read_file(path, &before_len);
    static const uint32_t flags[] = {0, REEL_OPEN_OBSERVER, REEL_OPEN_LAZY};
    for (size_t f = 0; f < 3; f++) {
        reel_store *s = NULL;
        int rc = reel_store_open(path, flags[f], &s);
        char buf[512];
        int ok = 0;
        for (size_t k = 0; k < nallowed; k++)
            ok |= rc == allowed[k];
        if (!ok && rc == 0)
            reel_store_close(s);
        cr_assert(ok, "open(%s%s) -> %s", what,
                  flags[f] == REEL_OPEN_OBSERVER ? ", observer"
                  : flags[f]                     ? ", lazy"
                                                 : "",
                  th_rcstr(rc, buf, sizeof buf));
        const char *msg = reel_strerror(rc);
        cr_assert(msg && msg[0], "no message for %d", rc);
    }
    size_t after_len;
    uint8_t *after = read_file(path, &after_len);
    cr_assert_eq(after_len, before_len, "a failed open changed the file's size (%s)", what);
    cr_assert_eq(memcmp(before, after, before_len), 0, "a failed open wrote to the file (%s)",
                 what);
    free(before);
    free(after);
}

Test(segment, empty_file) {
    const char *path = th_store_path();
    write_file(path, "", 0);
    static const int allowed[] = {REEL_EFOREIGN, REEL_ETRUNCATED};
    expect_open_fails(path, allowed, 2, "empty file");
}

Test(segment, random_bytes) {
    static const size_t sizes[] = {1, 7, 8, 11, 12, 13, 64, 511, 4096, 65536, 1 << 20};
    uint8_t *buf = malloc(1 << 20);
    cr_assert_not_null(buf);
    const char *path = th_store_path();
    for (uint64_t seed = 1; seed <= 6; seed++)
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
            th_fill(buf, sizes[k], seed * 1000003 + k);
            write_file(path, buf, sizes[k]);
            char what[64];
            snprintf(what, sizeof what, "%zu random bytes, seed %llu", sizes[k],
                     (unsigned long long)seed);
            static const int allowed[] = {REEL_EFOREIGN, REEL_ETRUNCATED};
            expect_open_fails(path, allowed, 2, what);
        }
    free(buf);
}

Test(segment, text_file) {
    const char *path = th_store_path();
    char text[8192];
    size_t n = 0;
    while (n + 64 < sizeof text)
        n += (size_t)snprintf(text + n, sizeof text - n, "this is a text file, not a store %zu\n",
                              n);
    write_file(path, text, n);
    static const int allowed[] = {REEL_EFOREIGN};
    expect_open_fails(path, allowed, 1, "text file");
}

Test(segment, directory) {
    const char *path = th_store_path();
    cr_assert_eq(mkdir(path, 0700), 0, "mkdir: %s", strerror(errno));
    reel_store *s = NULL;
    int rc = reel_store_open(path, 0, &s);
    char buf[512];
    cr_assert(rc == -EISDIR || rc == REEL_EFOREIGN || rc == REEL_ETRUNCATED || rc == -EINVAL,
              "open(directory) -> %s", th_rcstr(rc, buf, sizeof buf));
    rc = reel_store_open(path, REEL_OPEN_OBSERVER, &s);
    cr_assert(rc < 0, "open(directory, observer) -> %s", th_rcstr(rc, buf, sizeof buf));
    rc = reel_store_create(path, NULL, &s);
    cr_assert_eq(rc, -EEXIST, "create over a directory -> %s", th_rcstr(rc, buf, sizeof buf));
    rmdir(path);
}

Test(segment, dev_null) {
    reel_store *s = NULL;
    int rc = reel_store_open("/dev/null", REEL_OPEN_OBSERVER, &s);
    char buf[512];
    cr_assert(rc < 0, "open(/dev/null) -> %s", th_rcstr(rc, buf, sizeof buf));
}

Test(segment, truncated_store) {
    size_t len;
    uint8_t *bytes = valid_store_bytes(&len);
    cr_assert_gt(len, (size_t)MiB, "store file (%zu bytes) smaller than its capacity", len);
    const size_t cuts[] = {12, 16, 64, 100, 4096, len / 4, len / 2, len - 4096, len - 64, len - 1};
    static const int allowed[] = {REEL_ETRUNCATED, REEL_ECORRUPT};
    for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++) {
        const char *path = th_store_path();
        write_file(path, bytes, cuts[k]);
        char what[64];
        snprintf(what, sizeof what, "store cut to %zu of %zu bytes", cuts[k], len);
        expect_open_fails(path, allowed, 2, what);
        unlink(path);
    }
    /* The intact copy opens: the failures above are due to the cuts. */
    const char *path = th_store_path();
    write_file(path, bytes, len);
    reel_store *s = NULL;
    TH_OK(reel_store_open(path, 0, &s));
    TH_OK(reel_store_close(s));
    free(bytes);
}

Test(segment, truncated_while_closed_then_reopened) {
    const char *path;
    reel_store *s = th_store_new(1 * MiB, 64, &path);
    TH_OK(reel_store_close(s));
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(truncate(path, st.st_size / 2), 0);
    static const int allowed[] = {REEL_ETRUNCATED, REEL_ECORRUPT};
    expect_open_fails(path, allowed, 2, "store truncated in place");
}

Test(segment, wrong_magic) {
    size_t len;
    uint8_t *bytes = valid_store_bytes(&len);
    static const int allowed[] = {REEL_EFOREIGN};
    for (int pos = 0; pos < 8; pos++) {
        const char *path = th_store_path();
        bytes[pos] ^= 0x20;
        write_file(path, bytes, len);
        bytes[pos] ^= 0x20;
        char what[64];
        snprintf(what, sizeof what, "magic byte %d changed", pos);
        expect_open_fails(path, allowed, 1, what);
        unlink(path);
    }
    const char *path = th_store_path();
    memset(bytes, 0, 8);
    write_file(path, bytes, len);
    expect_open_fails(path, allowed, 1, "magic zeroed");
    free(bytes);
}

Test(segment, wrong_version) {
    size_t len;
    uint8_t *bytes = valid_store_bytes(&len);
    uint32_t version = (uint32_t)bytes[8] | (uint32_t)bytes[9] << 8 | (uint32_t)bytes[10] << 16 |
                       (uint32_t)bytes[11] << 24;
    cr_log_info("store format version %u", version);
    const uint32_t bad[] = {version + 1, version - 1, 0, 0xffffffffu, version ^ 0x01000000u};
    static const int allowed[] = {REEL_EVERSION};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        const char *path = th_store_path();
        uint8_t saved[4];
        memcpy(saved, bytes + 8, 4);
        for (int b = 0; b < 4; b++)
            bytes[8 + b] = (uint8_t)(bad[k] >> (8 * b));
        write_file(path, bytes, len);
        memcpy(bytes + 8, saved, 4);
        char what[64];
        snprintf(what, sizeof what, "version %u (supported %u)", bad[k], version);
        expect_open_fails(path, allowed, 1, what);
        reel_store *s = NULL;
        (void)reel_store_open(path, 0, &s);
        const char *detail = reel_last_error();
        cr_assert(detail && detail[0], "no detail sentence for a wrong version");
        unlink(path);
    }
    free(bytes);
}

static int child_open_observer(void *p) {
    const char *path = p;
    reel_store *s = NULL;
    int rc = reel_store_open(path, REEL_OPEN_OBSERVER, &s);
    if (rc == 0) {
        reel_store_stats st;
        (void)reel_store_stats_get(s, &st);
        (void)reel_store_close(s);
        return 0;
    }
    if (is_segment_error(rc))
        return 0;
    fprintf(stderr, "open -> %d (%s)\n", rc, reel_strerror(rc));
    return 2;
}

Test(segment, header_fuzz_never_crashes) {
    /* Change bytes of the header beyond magic and version: open either works or
     * says the segment is corrupt; it never crashes or hangs. Each try runs in
     * a child so that a crash or hang is reported for its byte. */
    size_t len;
    uint8_t *bytes = valid_store_bytes(&len);
    static const uint8_t vals[] = {0x00, 0xff, 0x7f, 0x80};
    const char *path = th_store_path();
    for (size_t pos = 12; pos < 128; pos++)
        for (size_t v = 0; v < sizeof vals; v++) {
            if (bytes[pos] == vals[v])
                continue;
            uint8_t saved = bytes[pos];
            bytes[pos] = vals[v];
            write_file(path, bytes, len);
            bytes[pos] = saved;
            pid_t pid = th_fork(child_open_observer, (void *)path);
            int code = th_wait(pid, 10000);
            cr_assert_neq(code, -1, "open with header byte %zu = 0x%02x hung", pos, vals[v]);
            cr_assert_lt(code, 128, "open with header byte %zu = 0x%02x died of signal %d", pos,
                         vals[v], code - 128);
            cr_assert_eq(code, 0, "open with header byte %zu = 0x%02x gave an unexpected error",
                         pos, vals[v]);
        }
    free(bytes);
}

Test(segment, file_mode_is_0600) {
    static const mode_t masks[] = {0, 022, 077};
    for (size_t k = 0; k < 3; k++) {
        mode_t old = umask(masks[k]);
        const char *path;
        reel_store *s = th_store_new(1 * MiB, 64, &path);
        umask(old);
        struct stat st;
        cr_assert_eq(stat(path, &st), 0);
        cr_assert(S_ISREG(st.st_mode));
        cr_assert_eq(st.st_mode & 07777, 0600, "store created with mode %04o under umask %04o",
                     (unsigned)(st.st_mode & 07777), (unsigned)masks[k]);
        cr_assert_eq(st.st_uid, getuid());
        TH_OK(reel_store_close(s));
    }
}

Test(segment, bare_name_goes_to_the_private_dir) {
    struct stat st;
    if (stat("/dev/shm", &st) != 0)
        cr_skip_test("no /dev/shm");
    const char *full = th_store_path(); /* registered for removal */
    const char *name = strrchr(full, '/') + 1;
    reel_store *s = NULL;
    reel_store_options opts = {
        .capacity = 1 * MiB, .max_objects = 64, .flags = REEL_STORE_NO_PREFAULT};
    char want[512];
    snprintf(want, sizeof want, "%s/%s", th_private_dir(), name);
    TH_OK(reel_store_create(name, &opts, &s));
    cr_assert_eq(stat(want, &st), 0, "%s was not created", want);
    cr_assert_eq(st.st_mode & 07777, 0600);
    reel_store *s2 = NULL;
    TH_OK(reel_store_open(name, 0, &s2));
    TH_OK(reel_store_close(s2));
    TH_OK(reel_store_open(want, 0, &s2));
    TH_OK(reel_store_close(s2));
    TH_OK(reel_store_close(s));
    TH_OK(reel_store_destroy(name));
    cr_assert_neq(stat(want, &st), 0, "destroy(bare name) left %s", want);
}

Test(segment, orphans_of_dead_processes_are_destroyed_and_no_others) {
    pid_t dead = th_gone_pid();
    char prefix[64], names[4][96];
    snprintf(prefix, sizeof prefix, "reel-orphan-%d-", (int)getpid());
    snprintf(names[0], sizeof names[0], "%s%d", prefix, (int)dead);     /* an orphan */
    snprintf(names[1], sizeof names[1], "%s%d", prefix, (int)getpid()); /* alive */
    snprintf(names[2], sizeof names[2], "%s%d-x", prefix, (int)dead);   /* not the name */
    snprintf(names[3], sizeof names[3], "%sx%d", prefix, (int)dead);    /* nor this */
    reel_store_options opts = {
        .capacity = 1 * MiB, .max_objects = 64, .flags = REEL_STORE_NO_PREFAULT};
    for (int i = 0; i < 4; i++) {
        reel_store *s;
        TH_OK(reel_store_create(names[i], &opts, &s));
        TH_OK(reel_store_close(s));
    }
    cr_assert_eq(reel_store_destroy_orphans(prefix), 1);
    for (int i = 0; i < 4; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", th_private_dir(), names[i]);
        struct stat st;
        cr_assert_eq(stat(path, &st) == 0, i != 0, "%s: %s", names[i], i ? "gone" : "still there");
        if (i)
            TH_OK(reel_store_destroy(names[i]));
    }
    cr_assert_eq(reel_store_destroy_orphans(""), 0, "an empty prefix names every store");
}

Test(segment, destroy_removes_file) {
    const char *path;
    reel_store *s = th_store_new(1 * MiB, 64, &path);
    TH_OK(reel_store_close(s));
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    TH_OK(reel_store_destroy(path));
    cr_assert_neq(stat(path, &st), 0, "destroy left the file");
    cr_assert_eq(errno, ENOENT);
    TH_RC(reel_store_destroy(path), -ENOENT);
    /* The path can be used again. */
    reel_store_options opts = {
        .capacity = 1 * MiB, .max_objects = 64, .flags = REEL_STORE_NO_PREFAULT};
    TH_OK(reel_store_create(path, &opts, &s));
    TH_OK(reel_store_close(s));
}

/* A client that maps the store lazily (REEL_OPEN_LAZY, as the actor
 * runtime's workers do) reads and writes it like any other. */
Test(segment, a_lazy_client_is_a_client_like_any_other) {
    const char *path;
    reel_store *s = th_store_new(16 * MiB, 64, &path);
    reel_store *lazy;
    TH_RC(reel_store_open(path, 0x80u, &lazy), -EINVAL);
    TH_OK(reel_store_open(path, REEL_OPEN_LAZY, &lazy));
    enum { SIZE = 3 * MiB + 17 };
    uint8_t *buf = malloc(SIZE);
    cr_assert_not_null(buf);
    reel_id a, b;
    TH_OK(reel_id_random(&a));
    TH_OK(reel_id_random(&b));
    th_fill(buf, SIZE, 1);
    TH_OK(reel_obj_put(s, &a, buf, SIZE, NULL, 0, 0, -1));
    th_fill(buf, SIZE, 2);
    TH_OK(reel_obj_put(lazy, &b, buf, SIZE, NULL, 0, 0, -1));
    reel_view v;
    TH_OK(reel_obj_get(lazy, &a, 1, 0, &v));
    cr_assert_eq(v.size, SIZE);
    cr_assert_eq(th_mismatch(v.data, SIZE, 1), SIZE, "the lazy client reads other bytes");
    TH_OK(reel_obj_release(lazy, &a));
    TH_OK(reel_obj_get(s, &b, 1, 0, &v));
    cr_assert_eq(th_mismatch(v.data, SIZE, 2), SIZE, "the lazy client wrote other bytes");
    TH_OK(reel_obj_release(s, &b));
    TH_OK(reel_obj_delete(lazy, &a));
    TH_OK(reel_obj_delete(s, &b));
    TH_OK(reel_store_close(lazy));
    TH_OK(reel_store_close(s));
    free(buf);
}

Test(segment, file_size_covers_capacity) {
    const char *path;
    reel_store *s = th_store_new(3 * MiB, 64, &path);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_geq((uint64_t)st.st_size, 3ull * MiB);
    TH_OK(reel_store_close(s));
}

/* ---- error names ---------------------------------------------------------------------- */

Test(segment, strerror_reel_codes) {
    static const struct {
        int code;
        const char *msg;
    } table[] = {
#define ROW(name, msg) {REEL_E##name, msg},
        REEL_ERRNO_MAP(ROW)
#undef ROW
    };
    size_t n = sizeof table / sizeof table[0];
    cr_assert_eq(n, (size_t)REEL_ERRNO_COUNT_);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(table[i].code, -4000 - (int)i);
        const char *s = reel_strerror(table[i].code);
        cr_assert_not_null(s, "reel_strerror(%d) is NULL", table[i].code);
        cr_assert_gt(strlen(s), 0u);
        cr_assert_str_eq(s, table[i].msg, "reel_strerror(%d)", table[i].code);
        for (size_t j = 0; j < i; j++)
            cr_assert_str_neq(s, reel_strerror(table[j].code), "codes %d and %d share a name",
                              table[i].code, table[j].code);
    }
}

Test(segment, strerror_errnos_and_others) {
    const char *ok = reel_strerror(0);
    cr_assert_not_null(ok);
    cr_assert(strcasestr(ok, "success") != NULL, "reel_strerror(0) = \"%s\"", ok);
    static const int errs[] = {ENOENT, EINVAL, ENOMEM, ETIMEDOUT, EEXIST, ENOSPC, EACCES, EPERM};
    for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++) {
        const char *s = reel_strerror(-errs[i]);
        cr_assert_not_null(s);
        cr_assert_gt(strlen(s), 0u, "empty name for -%d", errs[i]);
        cr_assert_str_neq(s, ok);
        for (size_t j = 0; j < i; j++)
            cr_assert_str_neq(s, reel_strerror(-errs[j]), "-%d and -%d share a name", errs[i],
                              errs[j]);
        for (int k = 0; k < REEL_ERRNO_COUNT_; k++)
            cr_assert_str_neq(s, reel_strerror(-4000 - k));
    }
    /* Strings are static: a second call does not change the first. */
    const char *a = reel_strerror(-ENOENT);
    char copy[256];
    snprintf(copy, sizeof copy, "%s", a);
    (void)reel_strerror(-EINVAL);
    (void)reel_strerror(REEL_EFULL);
    cr_assert_str_eq(a, copy);
    /* Unknown codes still get a string. */
    static const int odd[] = {
        -3999, -4000 - REEL_ERRNO_COUNT_, -5000, -100000, 5, 4000, INT32_MIN, INT32_MAX};
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        const char *s = reel_strerror(odd[i]);
        cr_assert_not_null(s, "reel_strerror(%d) is NULL", odd[i]);
        cr_assert_gt(strlen(s), 0u, "reel_strerror(%d) is empty", odd[i]);
    }
}

Test(segment, last_error_never_null) {
    cr_assert_not_null(reel_last_error());
    reel_store *s = NULL;
    (void)reel_store_open("/nonexistent-dir-for-reel/x", 0, &s);
    cr_assert_not_null(reel_last_error());
}

/* ---- access control -------------------------------------------------------------- */

#define OTHER_UID 65534 /* nobody */

typedef struct other_try {
    const char *path;
    int want;
} other_try;

/* In a child that has become another user: opening path gives want. */
static int open_as_other(void *arg) {
    const other_try *t = arg;
    TH_CHILD_CHECK(setgroups(0, NULL) == 0 && setgid(OTHER_UID) == 0 && setuid(OTHER_UID) == 0,
                   "cannot become uid %d: %s", OTHER_UID, strerror(errno));
    reel_store *s = NULL;
    TH_CHILD_RC(reel_store_open(t->path, 0, &s), t->want);
    TH_CHILD_RC(reel_store_open(t->path, REEL_OPEN_OBSERVER, &s), t->want);
    return 0;
}

/* As another user: the private directory must be its own and private. */
static int private_dir_as_other(void *arg) {
    (void)arg;
    TH_CHILD_CHECK(setgroups(0, NULL) == 0 && setgid(OTHER_UID) == 0 && setuid(OTHER_UID) == 0,
                   "cannot become uid %d: %s", OTHER_UID, strerror(errno));
    char dir[64];
    TH_CHILD_RC(reel__private_dir(dir, sizeof dir), -EACCES);
    TH_CHILD_CHECK(strstr(reel_last_error(), "not a private directory"), "%s", reel_last_error());
    reel_store *s = NULL;
    TH_CHILD_RC(reel_store_create("planted", NULL, &s), -EACCES);
    return 0;
}

Test(segment, the_private_dir_is_the_users_alone) {
    struct stat st;
    const char *dir = th_private_dir();
    cr_assert_eq(lstat(dir, &st), 0);
    cr_assert(S_ISDIR(st.st_mode));
    cr_assert_eq(st.st_uid, geteuid());
    cr_assert_eq(st.st_mode & 0777, 0700, "mode %03o", st.st_mode & 0777);
}

Test(segment, another_user_cannot_attach) {
    if (geteuid() != 0)
        cr_skip_test("needs root to act as another user");
    const char *full = th_store_path();
    const char *name = strrchr(full, '/') + 1;
    reel_store *s = NULL;
    reel_store_options opts = {
        .capacity = 1 * MiB, .max_objects = 64, .flags = REEL_STORE_NO_PREFAULT};
    TH_OK(reel_store_create(name, &opts, &s));
    char in_private[512];
    snprintf(in_private, sizeof in_private, "%s/%s", th_private_dir(), name);
    /* In the private directory: not even reachable. Given by path in a shared
     * directory: the file's own mode (0600) refuses. */
    other_try a = {.path = in_private, .want = -EACCES};
    cr_assert_eq(th_wait(th_fork(open_as_other, &a), 10000), 0);
    reel_store *t = NULL;
    TH_OK(reel_store_create(full, &opts, &t));
    other_try b = {.path = full, .want = -EACCES};
    cr_assert_eq(th_wait(th_fork(open_as_other, &b), 10000), 0);
    TH_OK(reel_store_close(t));
    TH_OK(reel_store_close(s));
    TH_OK(reel_store_destroy(name));
}

Test(segment, a_private_dir_someone_else_made_is_refused) {
    if (geteuid() != 0)
        cr_skip_test("needs root to act as another user");
    char planted[64];
    snprintf(planted, sizeof planted, "/dev/shm/reel-%d", OTHER_UID);
    struct stat st;
    if (lstat(planted, &st) == 0)
        cr_skip_test("%s exists already: not touching it", planted);
    /* Made by root, open to all: the other user must refuse to use it. */
    cr_assert_eq(mkdir(planted, 0777), 0);
    cr_assert_eq(chmod(planted, 0777), 0);
    int code = th_wait(th_fork(private_dir_as_other, NULL), 10000);
    rmdir(planted);
    cr_assert_eq(code, 0);
}

/* ---- what the open checks beyond the header ------------------------------------ */

/* A store of three sealed 1000-byte objects, closed; returns its path. */
static const char *three_objects(reel_id ids[3]) {
    const char *path;
    reel_store *s = th_store_new(1 * MiB, 64, &path);
    uint8_t data[1000] = {0};
    for (int k = 0; k < 3; k++) {
        data[0] = (uint8_t)k;
        TH_OK(reel_obj_put(s, &ids[k], data, sizeof data, NULL, 0, REEL_OBJ_CONTENT_ID, 0));
    }
    TH_OK(reel_store_close(s));
    return path;
}

/* The object table's slot of an ID, found by walking the table. */
static seg_object *object_of(reel_store *s, const reel_id *id) {
    for (uint32_t i = 0; i < s->lay.max_objects; i++)
        if (s->objects[i].state != 0 && reel_id_equal(&s->objects[i].id, id))
            return &s->objects[i];
    cr_assert_fail("object not in the table");
    return NULL;
}

Test(segment, a_used_counter_that_disagrees_with_the_objects_is_repaired_at_open) {
    reel_id ids[3];
    const char *path = three_objects(ids);
    reel_store *s;
    TH_OK(reel_store_open(path, REEL_OPEN_OBSERVER, &s));
    uint64_t used = s->hdr->used, recoveries = s->hdr->recoveries;
    s->hdr->used = 18446744073709544767ull; /* what an outside probe planted */
    s->hdr->n_sealed = 7;
    TH_OK(reel_store_close(s));

    TH_OK(reel_store_open(path, 0, &s));
    cr_assert(strstr(reel_last_error(), "repaired") && strstr(reel_last_error(), "used"),
              "no sentence for the repair: \"%s\"", reel_last_error());
    reel_store_stats st = th_stats(s);
    cr_assert_eq(st.used, used, "used is %llu after the open, not %llu",
                 (unsigned long long)st.used, (unsigned long long)used);
    cr_assert_eq(st.free, st.capacity - used);
    cr_assert_eq(st.objects_sealed, 3u);
    cr_assert_eq(st.recoveries, recoveries + 1);
    reel_view v[3];
    TH_OK(reel_obj_get(s, ids, 3, 0, v)); /* nothing was lost */
    for (int k = 0; k < 3; k++)
        TH_OK(reel_obj_release(s, &ids[k]));
    TH_OK(reel_store_close(s));
}

Test(segment, two_objects_at_the_same_offset_are_noticed_at_open) {
    reel_id ids[3];
    const char *path = three_objects(ids);
    reel_store *s;
    TH_OK(reel_store_open(path, REEL_OPEN_OBSERVER, &s));
    object_of(s, &ids[2])->offset = object_of(s, &ids[1])->offset;
    TH_OK(reel_store_close(s));

    TH_OK(reel_store_open(path, REEL_OPEN_OBSERVER, &s));
    cr_assert(strstr(reel_last_error(), "repaired"), "no sentence for the repair: \"%s\"",
              reel_last_error());
    /* One of the two is dropped; what is left shares no byte. */
    reel_store_stats st = th_stats(s);
    cr_assert_eq(st.objects, 2u);
    seg_object *kept[2];
    uint32_t n = 0;
    for (uint32_t i = 0; i < s->lay.max_objects && n < 2; i++)
        if (s->objects[i].state != 0)
            kept[n++] = &s->objects[i];
    cr_assert_eq(n, 2u);
    cr_assert(kept[0]->offset + kept[0]->alloc <= kept[1]->offset ||
                  kept[1]->offset + kept[1]->alloc <= kept[0]->offset,
              "the objects left still overlap");
    cr_assert_eq(st.used, kept[0]->alloc + kept[1]->alloc);
    TH_OK(reel_store_close(s));
}

Test(segment, a_store_used_as_it_should_be_is_never_repaired) {
    const char *path;
    reel_store *s = th_store_new(1 * MiB, 64, &path);
    uint64_t recoveries = th_stats(s).recoveries;
    uint8_t data[3000] = {0};
    reel_id ids[40];
    for (int k = 0; k < 40; k++) { /* evictions, deletes, unsealed and held objects */
        data[0] = (uint8_t)k;
        ids[k] = th_id_random();
        TH_OK(reel_obj_put(s, &ids[k], data, 1000 + 50 * (uint64_t)k, NULL, 0,
                           k % 3 ? REEL_OBJ_EVICTABLE : 0, 0));
        if (k % 5 == 0)
            TH_OK(reel_obj_delete(s, &ids[k]));
    }
    reel_view v;
    TH_OK(reel_obj_get(s, &ids[3], 1, 0, &v));
    void *buf;
    reel_id u = th_id_random();
    TH_OK(reel_obj_create(s, &u, 500, NULL, 0, 0, 0, &buf));
    reel_store *again;
    TH_OK(reel_store_open(path, 0, &again));
    TH_OK(reel_store_close(again));
    reel_store *observer;
    TH_OK(reel_store_open(path, REEL_OPEN_OBSERVER, &observer));
    TH_OK(reel_store_close(observer));
    cr_assert_eq(th_stats(s).recoveries, recoveries, "a healthy store was repaired at open: %s",
                 reel_last_error());
    TH_OK(reel_obj_release(s, &ids[3]));
    TH_OK(reel_store_close(s));
}

Test(segment, a_store_in_use_whose_counter_cannot_be_right_is_repaired_at_open) {
    const char *path;
    reel_store *keeper = th_store_new(1 * MiB, 64, &path); /* attached: the store is in use */
    reel_id id;
    TH_OK(reel_obj_put(keeper, &id, "abc", 3, NULL, 0, REEL_OBJ_CONTENT_ID, 0));
    uint64_t used = keeper->hdr->used;
    keeper->hdr->used = 18446744073709544767ull;
    reel_store *s;
    TH_OK(reel_store_open(path, 0, &s));
    cr_assert(strstr(reel_last_error(), "repaired"), "no sentence for the repair: \"%s\"",
              reel_last_error());
    cr_assert_eq(th_stats(s).used, used);
    TH_OK(reel_store_close(s));
    TH_OK(reel_store_close(keeper));
}
