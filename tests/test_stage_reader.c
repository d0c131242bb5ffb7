/*
 * test_stage_reader.c - the reader stage (stages/reader.c) run as a
 * one-stage pipeline: a path object in, a video task out whose path, file
 * identity and probe are checked against the file (and which holds none of
 * its bytes); and every way a path can
 * fail to be a video, each a failure for good naming the path.
 *
 * The samples come from scripts/samples.sh (REEL_SAMPLES, set by ctest).
 */
#include "helpers.h"
#include "stage_fixture.h"

#include <criterion/criterion.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <reel/pipeline.h>

static const char *store_path;
static reel_store *store;

static void setup(void) {
    th_init();
    store = th_store_new(64 << 20, 1024, &store_path);
}

TestSuite(stage_reader, .init = setup, .fini = th_fini, .timeout = 60);

/* ---- helpers ---------------------------------------------------------------------- */

#define MAX_OUT 16

/* The outputs of a run, copied out of the store (which they are deleted from). */
typedef struct outputs {
    size_t n;
    reel_id input[MAX_OUT];
    uint8_t *data[MAX_OUT];
    uint64_t size[MAX_OUT];
} outputs;

static void keep(void *arg, const reel_task_result *r) {
    outputs *o = arg;
    for (uint32_t i = 0; i < r->n_outputs && o->n < MAX_OUT; i++) {
        reel_view v;
        if (reel_obj_get(store, &r->outputs[i], 1, 0, &v) != 0)
            continue;
        o->input[o->n] = r->inputs[0];
        o->data[o->n] = malloc(v.size ? v.size : 1);
        memcpy(o->data[o->n], v.data, v.size);
        o->size[o->n] = v.size;
        o->n++;
        reel_obj_release(store, &r->outputs[i]);
        reel_obj_delete(store, &r->outputs[i]);
    }
}

static void outputs_free(outputs *o) {
    for (size_t i = 0; i < o->n; i++)
        free(o->data[i]);
    o->n = 0;
}

static reel_id put_bytes(const void *s, size_t n) {
    reel_id id;
    reel_id_random(&id);
    TH_OK(reel_obj_put(store, &id, s, n, NULL, 0, 0, -1));
    return id;
}

/* Runs the reader alone over the path objects in[0..n) with ignore_failures. */
static void run_reader(const reel_id *in, size_t n, outputs *out, reel_run_result *res) {
    reel_pipeline *p;
    TH_OK(reel_pipeline_new("reader-only", &p));
    TH_OK(reel_pipeline_add(p, &stage_reader_def, NULL));
    reel_executor_config c;
    reel_executor_config_defaults(&c);
    c.logging_interval = 3600;
    c.autoscale_interval_s = 3600;
    c.ignore_failures = true;
    reel_run_options ro = {.store = store_path,
                           .config = &c,
                           .inputs = in,
                           .n_inputs = n,
                           .on_output = keep,
                           .arg = out,
                           .flags = REEL_RUN_QUIET};
    TH_OK(reel_pipeline_run(p, &ro, res));
    reel_pipeline_free(p);
    /* Nothing left behind but the inputs. */
    reel_store_stats st = th_stats(store);
    cr_assert_eq(st.objects_referenced, 0);
    cr_assert_eq(st.objects_unsealed, 0);
    cr_assert_eq(st.objects_sealed, n, "%u objects, %zu inputs", st.objects_sealed, n);
}

/* Runs the reader on one input that must succeed, and reads the video task
 * it made into t, whose views point into out: vt_free(t), then
 * outputs_free(out) and reel_run_result_free(res). */
static void read_one(const reel_id *in, outputs *out, reel_run_result *res, video_task *t) {
    run_reader(in, 1, out, res);
    cr_assert_eq(res->failed, 0, "%s", res->n_failures ? res->failures[0].error : "");
    cr_assert_eq(out->n, 1);
    char why[256];
    TH_OK(vt_read(out->data[0], out->size[0], t, why, sizeof why));
}

/* A unique path under /tmp for this test process (not created). */
static char *tmp_path(const char *what) {
    char *path;
    cr_assert_gt(asprintf(&path, "/tmp/reel-test-reader-%d-%s", (int)getpid(), what), 0);
    return path;
}

/* ---- the samples ---------------------------------------------------------------------- */

static const char *const names[] = {"cockatoo.mp4", "diver.mov", "oa4_launch.webm",
                                    "realshort.mp4"};
#define N_SAMPLES (sizeof names / sizeof names[0])

Test(stage_reader, reads_and_probes_every_sample) {
    char *paths[N_SAMPLES];
    reel_id in[N_SAMPLES];
    for (size_t i = 0; i < N_SAMPLES; i++) {
        paths[i] = sf_sample_path(names[i]);
        in[i] = put_bytes(paths[i], strlen(paths[i])); /* no NUL */
    }
    static outputs out;
    reel_run_result res;
    run_reader(in, N_SAMPLES, &out, &res);
    cr_assert_eq(res.failed, 0, "%s", res.n_failures ? res.failures[0].error : "");
    cr_assert_eq(out.n, N_SAMPLES);
    for (size_t k = 0; k < out.n; k++) {
        size_t i = 0;
        while (i < N_SAMPLES && !reel_id_equal(&out.input[k], &in[i]))
            i++;
        cr_assert_lt(i, N_SAMPLES);
        video_task t;
        char why[256];
        int rc = vt_read(out.data[k], out.size[k], &t, why, sizeof why);
        cr_assert_eq(rc, 0, "%s: %s", names[i], why);
        cr_assert_eq(t.path.size, strlen(paths[i]));
        cr_assert_eq(memcmp(t.path.data, paths[i], t.path.size), 0);
        sf_blob b = sf_file(paths[i]);
        const uint8_t *bytes = b.data;
        uint64_t size = b.size;
        vt_file id = sf_file_id(paths[i]);
        cr_assert(memcmp(&t.file, &id, sizeof id) == 0, "%s: the file's identity differs",
                  names[i]);
        cr_assert_eq(t.file.size, size, "%s", names[i]);
        cr_assert_lt(out.size[k], 4096, "%s: a task of %llu bytes holds more than the probe",
                     names[i], (unsigned long long)out.size[k]);
        cr_assert_not(t.partial);
        cr_assert_eq(t.error.size, 0);
        cr_assert_eq(t.n_clips, 0);
        /* The probe, exactly as media_probe() gives it. */
        media_input *m;
        TH_OK(media_open(bytes, size, NULL, &m, why, sizeof why));
        vt_probe want;
        media_probe(m, &want);
        media_close(m);
        cr_assert_str_eq(t.probe.container, want.container);
        cr_assert_str_eq(t.probe.codec, want.codec);
        cr_assert_eq(t.probe.width, want.width);
        cr_assert_eq(t.probe.height, want.height);
        cr_assert_eq(t.probe.fps, want.fps);
        cr_assert_eq(t.probe.duration_s, want.duration_s);
        cr_assert_eq(t.probe.num_frames, want.num_frames);
        cr_assert_eq(t.probe.num_bytes, size);
        cr_assert_gt(t.probe.num_frames, 0);
        cr_assert_gt(t.probe.fps, 0);
        cr_log_info("%s: %s %s %dx%d %.4f fps %.4f s %lld frames", names[i], t.probe.container,
                    t.probe.codec, t.probe.width, t.probe.height, t.probe.fps, t.probe.duration_s,
                    (long long)t.probe.num_frames);
        vt_free(&t);
        free(b.data);
    }
    outputs_free(&out);
    reel_run_result_free(&res);
    for (size_t i = 0; i < N_SAMPLES; i++) {
        TH_OK(reel_obj_delete(store, &in[i]));
        free(paths[i]);
    }
}

/* ---- what is not a video ---------------------------------------------------------------- */

typedef struct bad_case {
    const char *what;
    char *path;      /* given as the input's bytes (len bytes unless raw) */
    const char *raw; /* when set: these bytes, rawlen long */
    size_t rawlen;
    int status;          /* expected, 0: any negative code */
    const char *needle;  /* expected in the error */
    bool names_the_path; /* the error names the path */
} bad_case;

/* Runs the reader over the cases and checks each failed for good with a
 * sentence naming its path. */
static void expect_failures(bad_case *cases, size_t n) {
    reel_id in[16];
    cr_assert_leq(n, 16);
    for (size_t i = 0; i < n; i++)
        in[i] = cases[i].raw ? put_bytes(cases[i].raw, cases[i].rawlen)
                             : put_bytes(cases[i].path, strlen(cases[i].path));
    static outputs out;
    reel_run_result res;
    run_reader(in, n, &out, &res);
    cr_assert_eq(out.n, 0, "%zu outputs", out.n);
    cr_assert_eq(res.failed, n);
    cr_assert_eq(res.n_failures, n);
    for (size_t k = 0; k < res.n_failures; k++) {
        const reel_failure *f = &res.failures[k];
        size_t i = 0;
        while (i < n && !reel_id_equal(&f->inputs[0], &in[i]))
            i++;
        cr_assert_lt(i, n);
        cr_log_info("%s: %d: %s", cases[i].what, f->status, f->error);
        cr_assert_eq(f->stage, 0);
        cr_assert_lt(f->status, 0);
        if (cases[i].status)
            cr_assert_eq(f->status, cases[i].status, "%s: status %d (%s)", cases[i].what, f->status,
                         f->error);
        cr_assert(strncmp(f->error, "reader: ", 8) == 0, "%s", f->error);
        if (cases[i].names_the_path)
            cr_assert(strstr(f->error, cases[i].path), "%s: %s", cases[i].what, f->error);
        cr_assert(strstr(f->error, cases[i].needle), "%s: \"%s\" not in: %s", cases[i].what,
                  cases[i].needle, f->error);
    }
    reel_run_result_free(&res);
    for (size_t i = 0; i < n; i++)
        TH_OK(reel_obj_delete(store, &in[i]));
}

/* A WAV file of 800 bytes of silence: a container FFmpeg reads, with no video. */
static void write_wav(const char *path) {
    uint8_t wav[44 + 800];
    memset(wav, 0, sizeof wav);
    const uint32_t u32[] = {sizeof wav - 8, 16, 8000, 16000, 800};
    const uint16_t u16[] = {1, 1, 2, 16};
    memcpy(wav, "RIFF", 4);
    memcpy(wav + 4, &u32[0], 4);
    memcpy(wav + 8, "WAVEfmt ", 8);
    memcpy(wav + 16, &u32[1], 4);
    memcpy(wav + 20, &u16[0], 2);
    memcpy(wav + 22, &u16[1], 2);
    memcpy(wav + 24, &u32[2], 4);
    memcpy(wav + 28, &u32[3], 4);
    memcpy(wav + 32, &u16[2], 2);
    memcpy(wav + 34, &u16[3], 2);
    memcpy(wav + 36, "data", 4);
    memcpy(wav + 40, &u32[4], 4);
    th_write_file(path, wav, sizeof wav);
}

Test(stage_reader, bad_files_fail_for_good_naming_the_path) {
    char *empty = tmp_path("empty.mp4");
    char *text = tmp_path("text.mp4");
    char *missing = tmp_path("missing.mp4");
    char *dir = tmp_path("dir.mp4");
    char *audio = tmp_path("audio-only.mp4");
    char *fifo = tmp_path("fifo.mp4");
    unlink(empty), unlink(text), rmdir(dir), unlink(audio), unlink(fifo);
    cr_assert_eq(mkfifo(fifo, 0600), 0, "%s", strerror(errno));
    write_wav(audio);
    th_write_file(empty, "", 0);
    const char words[] = "Not a video at all: these are words in a file named .mp4.\n";
    th_write_file(text, words, sizeof words - 1);
    cr_assert_eq(mkdir(dir, 0700), 0);
    bad_case cases[] = {
        {"zero bytes", empty, NULL, 0, -ENODATA, "empty file", true},
        {"text named .mp4", text, NULL, 0, -EINVAL, "not a video FFmpeg can read", true},
        {"missing", missing, NULL, 0, -ENOENT, "No such file", true},
        {"directory", dir, NULL, 0, -EISDIR, "directory", true},
        {"no video stream", audio, NULL, 0, -EINVAL, "no video stream", true},
        /* Refused, not waited on for a writer that never comes. */
        {"a FIFO", fifo, NULL, 0, -EINVAL, "not a regular file", true},
    };
    expect_failures(cases, sizeof cases / sizeof cases[0]);
    unlink(empty), unlink(text), rmdir(dir), unlink(audio), unlink(fifo);
    free(empty), free(text), free(missing), free(dir), free(audio), free(fifo);
}

Test(stage_reader, cut_videos_open_or_fail_clearly) {
    /* cockatoo.mp4's moov comes last: half of it does not open. Half a WebM
     * opens (the reader only probes; decoding says partial later). */
    char *cock = sf_sample_path("cockatoo.mp4"), *webm = sf_sample_path("oa4_launch.webm");
    sf_blob b1 = sf_file(cock), b2 = sf_file(webm);
    uint64_t n1 = b1.size, n2 = b2.size;
    char *cut1 = tmp_path("cut-cockatoo.mp4"), *cut2 = tmp_path("cut-oa4_launch.webm");
    unlink(cut1), unlink(cut2);
    th_write_file(cut1, b1.data, (size_t)(n1 / 2));
    th_write_file(cut2, b2.data, (size_t)(n2 / 2));
    bad_case cases[] = {
        {"cut mp4", cut1, NULL, 0, -EINVAL, "moov atom not found", true},
    };
    expect_failures(cases, 1);

    reel_id in = put_bytes(cut2, strlen(cut2));
    static outputs out;
    reel_run_result res;
    video_task t;
    read_one(&in, &out, &res, &t);
    cr_assert_eq(t.file.size, n2 / 2);
    cr_assert_str_eq(t.probe.codec, "vp8");
    cr_assert_eq(t.probe.num_bytes, n2 / 2);
    vt_free(&t);
    outputs_free(&out);
    reel_run_result_free(&res);
    TH_OK(reel_obj_delete(store, &in));
    unlink(cut1), unlink(cut2);
    free(cut1), free(cut2), free(b1.data), free(b2.data), free(cock), free(webm);
}

Test(stage_reader, bad_path_bytes_are_refused) {
    static char long_path[5000];
    memset(long_path, 'a', sizeof long_path);
    long_path[0] = '/';
    bad_case cases[] = {
        {"NUL inside", NULL, "/tmp/a\0b.mp4", 12, -EINVAL, "NUL", false},
        {"too long", NULL, long_path, sizeof long_path, -ENAMETOOLONG, "bytes", false},
        {"empty path", NULL, "", 0, -EINVAL, "empty video path", false},
    };
    expect_failures(cases, sizeof cases / sizeof cases[0]);
}

/* Copies the file at from to dir/name, mode 0755. */
static void copy_executable(const char *from, const char *dir, const char *name) {
    char to[PATH_MAX];
    snprintf(to, sizeof to, "%s/%s", dir, name);
    int in = open(from, O_RDONLY | O_CLOEXEC);
    cr_assert_geq(in, 0, "%s: %s", from, strerror(errno));
    struct stat st;
    cr_assert_eq(fstat(in, &st), 0);
    int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
    cr_assert_geq(out, 0, "%s: %s", to, strerror(errno));
    for (off_t left = st.st_size; left > 0;) {
        ssize_t n = copy_file_range(in, NULL, out, NULL, (size_t)left, 0);
        cr_assert_gt(n, 0, "copying %s: %s", from, strerror(errno));
        left -= n;
    }
    close(in);
    close(out);
}

/* Root reads a file of mode 000 all the same, and CI runs as root (as the
 * tests that act as another user need): there, this test runs itself again
 * as another user (util-linux's setpriv), in a fresh process of this program
 * whose store and files are that user's own, and its outcome is this one's.
 * That user may not enter the build directory (a checkout under /root), so
 * the program and libreel run from copies in a directory all may read. */
static void rerun_as_another_user(const char *test) {
    char exe[PATH_MAX], filter[128], libdir_env[PATH_MAX + 32];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    cr_assert_gt(n, 0, "/proc/self/exe: %s", strerror(errno));
    exe[n] = '\0';
    Dl_info lib;
    cr_assert(dladdr((void *)reel_strerror, &lib) && lib.dli_fname, "where is libreel?");
    char dir[] = "/tmp/reel-test-as-another-user-XXXXXX";
    cr_assert_neq(mkdtemp(dir), NULL, "mkdtemp: %s", strerror(errno));
    cr_assert_eq(chmod(dir, 0755), 0);
    copy_executable(exe, dir, "test_stage_reader");
    const char *soname = strrchr(lib.dli_fname, '/');
    copy_executable(lib.dli_fname, dir, soname ? soname + 1 : lib.dli_fname);
    snprintf(exe, sizeof exe, "%s/test_stage_reader", dir);
    snprintf(libdir_env, sizeof libdir_env, "LD_LIBRARY_PATH=%s", dir);
    snprintf(filter, sizeof filter, "--filter=stage_reader/%s", test);
    const char *setpriv = "/usr/bin/setpriv";
    cr_assert_eq(access(setpriv, X_OK), 0, "%s: %s (util-linux)", setpriv, strerror(errno));
    /* Without BoxFort's variable, which would make it one of this runner's
     * workers rather than a runner of its own; in a directory it may enter. */
    th_result r = th_run_limit("/usr/bin/env", NULL,
                               (const char *[]){"-u", "BXFI_MAP", "-C", "/", libdir_env, setpriv,
                                                "--reuid=65534", "--regid=65534", "--clear-groups",
                                                "--", exe, filter, "--jobs=1", NULL},
                               60000);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, soname ? soname + 1 : lib.dli_fname);
    unlink(path);
    unlink(exe);
    rmdir(dir);
    cr_assert_eq(r.code, 0, "as uid 65534: exit %d:\n%s", r.code, r.err);
    cr_assert(strstr(r.err, "Tested: 1 | Passing: 1 | Failing: 0 | Crashing: 0"),
              "as uid 65534, not run or not passed:\n%s", r.err);
    th_result_free(&r);
}

Test(stage_reader, an_unreadable_file_fails_naming_the_path) {
    if (geteuid() == 0) {
        rerun_as_another_user("an_unreadable_file_fails_naming_the_path");
        return;
    }
    char *path = tmp_path("unreadable.mp4");
    unlink(path);
    th_write_file(path, "x", 1);
    cr_assert_eq(chmod(path, 0), 0);
    bad_case cases[] = {{"unreadable", path, NULL, 0, -EACCES, "Permission denied", true}};
    expect_failures(cases, 1);
    unlink(path);
    free(path);
}

/* The bound on a path is the buffer it is copied into, NUL included: 4095
 * bytes are a path (here a real video, read and probed), 4096 are refused
 * by the reader itself, saying so, before anything is copied. */
Test(stage_reader, a_path_of_4095_bytes_is_read_and_one_of_4096_refused) {
    char *top = tmp_path("long");
    size_t top_len = strlen(top);
    char path[4096 + 1];
    memcpy(path, top, top_len + 1);
    cr_assert_eq(mkdir(path, 0700), 0, "%s: %s", path, strerror(errno));
    /* Directories of 200 bytes each (a name's limit is 255), then the file,
     * whose name makes the path exactly 4095 bytes. */
    size_t len = top_len;
    while (4095 - len > 200 + 1 + 100) {
        path[len++] = '/';
        memset(path + len, 'd', 200);
        len += 200;
        path[len] = '\0';
        cr_assert_eq(mkdir(path, 0700), 0, "%zu bytes: %s", len, strerror(errno));
    }
    path[len++] = '/';
    size_t name = 4095 - len;
    memset(path + len, 'v', name - 4);
    memcpy(path + len + name - 4, ".mp4", 5);
    cr_assert_eq(strlen(path), 4095);
    sf_blob b = sf_file(sf_sample_path("realshort.mp4"));
    th_write_file(path, b.data, (size_t)b.size);

    reel_id in = put_bytes(path, 4095);
    static outputs out;
    reel_run_result res;
    video_task t;
    read_one(&in, &out, &res, &t);
    cr_assert_eq(t.path.size, 4095);
    cr_assert_eq(t.file.size, b.size);
    cr_assert_gt(t.probe.num_frames, 0);
    vt_free(&t);
    outputs_free(&out);
    reel_run_result_free(&res);
    TH_OK(reel_obj_delete(store, &in));

    /* One byte more: the same file's path with a second slash in it. */
    char longer[4096];
    memcpy(longer, path, top_len);
    longer[top_len] = '/';
    memcpy(longer + top_len + 1, path + top_len, 4095 - top_len);
    bad_case cases[] = {
        {"4096 bytes", NULL, longer, sizeof longer, -ENAMETOOLONG, "a video path of 4096 bytes",
         false},
    };
    expect_failures(cases, 1);

    unlink(path);
    while ((len = (size_t)(strrchr(path, '/') - path)) > top_len) {
        path[len] = '\0';
        rmdir(path);
    }
    rmdir(top);
    free(top);
    free(b.data);
}
