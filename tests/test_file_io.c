/* Files into the store with io_uring: whole files and ranges land intact in
 * the object; bad paths and ranges fail cleanly and leave nothing behind. */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"

TestSuite(file_io, .init = th_init, .fini = th_fini, .timeout = 60);

/* Writes n pattern bytes (seed) to a fresh temporary file; returns its path. */
static char *pattern_file(size_t n, uint64_t seed) {
    char *path = strdup("/tmp/reel-test-file-XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    uint8_t *buf = malloc(n ? n : 1);
    th_fill(buf, n, seed);
    cr_assert_eq(write(fd, buf, n), (ssize_t)n);
    free(buf);
    close(fd);
    return path;
}

Test(file_io, whole_files_of_many_sizes) {
    reel_store *s = th_store_new(64 << 20, 64, NULL);
    /* Around the chunk size, several chunks in flight, and the empty file. */
    size_t sizes[] = {0, 1, 4095, 1 << 20, (1 << 20) + 17, (9 << 20) + 5};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        char *path = pattern_file(sizes[k], k + 1);
        reel_id id = th_id_n(1, k);
        uint64_t size = 123;
        TH_OK(reel_obj_put_file(s, &id, path, 0, 0, NULL, 0, 0, 0, &size));
        unlink(path);
        free(path);
        cr_assert_eq(size, sizes[k]);
        reel_view v;
        TH_OK(reel_obj_get(s, &id, 1, 0, &v));
        cr_assert_eq(v.size, sizes[k]);
        cr_assert_eq(th_mismatch(v.data, v.size, k + 1), v.size, "size %zu: byte %zu differs",
                     sizes[k], th_mismatch(v.data, v.size, k + 1));
        TH_OK(reel_obj_release(s, &id));
        TH_OK(reel_obj_delete(s, &id));
    }
    cr_assert_eq(th_stats(s).used, 0);
    reel_store_close(s);
}

Test(file_io, a_range_lands_in_the_object) {
    reel_store *s = th_store_new(16 << 20, 64, NULL);
    size_t n = 3 << 20;
    char *path = pattern_file(n, 42);
    uint8_t *want = malloc(n);
    th_fill(want, n, 42);
    reel_id id = th_id_n(2, 0);
    const char meta[] = "range";
    TH_OK(reel_obj_put_file(s, &id, path, 1000, (2 << 20) + 3, meta, sizeof meta, 0, 0, NULL));
    reel_view v;
    TH_OK(reel_obj_get(s, &id, 1, 0, &v));
    cr_assert_eq(v.size, (2u << 20) + 3);
    cr_assert(memcmp(v.data, want + 1000, v.size) == 0);
    cr_assert_eq(v.meta_size, sizeof meta);
    cr_assert_str_eq(v.meta, meta);
    TH_OK(reel_obj_release(s, &id));
    unlink(path);
    free(path);
    free(want);
    reel_store_close(s);
}

Test(file_io, bad_paths_and_ranges_leave_nothing) {
    reel_store *s = th_store_new(16 << 20, 64, NULL);
    reel_store_stats before = th_stats(s);
    reel_id id = th_id_n(3, 0);
    TH_RC(reel_obj_put_file(s, &id, "/nonexistent/reel/file", 0, 0, NULL, 0, 0, 0, NULL), -ENOENT);
    TH_RC(reel_obj_put_file(s, &id, "/tmp", 0, 0, NULL, 0, 0, 0, NULL), -EINVAL);
    char *path = pattern_file(1000, 7);
    TH_RC(reel_obj_put_file(s, &id, path, 1001, 0, NULL, 0, 0, 0, NULL), -EINVAL);
    TH_RC(reel_obj_put_file(s, &id, path, 500, 501, NULL, 0, 0, 0, NULL), -EINVAL);
    /* Larger than the store: the create's error, nothing left. */
    reel_store_options small = {.capacity = 4096, .max_objects = 4};
    reel_store *tiny = th_store_new_opts(&small, NULL);
    char *big = pattern_file(8192, 8);
    TH_RC(reel_obj_put_file(tiny, &id, big, 0, 0, NULL, 0, 0, 0, NULL), REEL_ETOOBIG);
    unlink(big);
    unlink(path);
    free(big);
    free(path);
    reel_store_stats after = th_stats(s);
    th_expect_same_usage(&before, &after, "after the failed puts");
    cr_assert_eq(th_stats(tiny).objects, 0);
    reel_store_close(tiny);
    reel_store_close(s);
}
