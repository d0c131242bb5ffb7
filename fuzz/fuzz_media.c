/* libFuzzer target: the video reader's probe on arbitrary bytes, as the
 * reader stage meets them in a file someone dropped into the input folder
 * (stages/media.h): media_open_file over a file holding them (read by range,
 * as the reader, the splitter and the transcoder read a video), then
 * media_open over the same bytes in memory (as the motion, frames and
 * preview stages read a clip), which must agree with it: each is
 * libavformat's probe, the stream choice, the checks on the picture size,
 * the decoder's setup, then media_probe,
 * media_container_duration_s, then media_decode of the first frames only,
 * each converted to a small RGB picture as the frames and preview stages do,
 * its motion vectors (when the decoder exports them) read as the motion
 * filter reads them.
 *
 * One more property: the input is the bytes and nothing else. A demuxer
 * that opens files named in the bytes (an ffconcat list: "file a") must be
 * refused. Each run happens in a private directory, /tmp/reel-fuzz-media-<pid>,
 * holding one file, "a", watched with inotify: any open of it aborts the run.
 * (So a crash artifact written with libFuzzer's default -artifact_prefix
 * "./" may land there; scripts/fuzz.sh passes an absolute prefix. The next
 * start of this target removes the directories of dead processes, leaving
 * any such artifact in place.)
 *
 * Bounded: at most FRAMES frames are decoded, on one thread. FFmpeg's own
 * code is not instrumented (it is the system's library), so the fuzzer's
 * coverage guidance comes from reel's glue; AddressSanitizer still sees
 * FFmpeg's heap through its interceptors (memcpy, malloc and free). */
#include "media.h"
#include "store_internal.h" /* reel__each_left_by_the_dead */

#include <libavutil/motion_vector.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PREFIX "reel-fuzz-media-"
#define CANARY "a"

static char dir[64];
static int dir_fd = -1, home_fd = -1, watch_fd = -1;
/* The input as a file: a memfd, opened by media_open_file through its
 * /proc/self/fd name (outside the watched directory). */
static int input_fd = -1;
static char input_path[64];

/* Removes the canary and the directory (which stays if a crash artifact is in it). */
static void remove_dir_at(int parent, const char *name) {
    char canary[128];
    snprintf(canary, sizeof canary, "%s/" CANARY, name);
    unlinkat(parent, canary, 0);
    unlinkat(parent, name, AT_REMOVEDIR);
}

static void remove_dir(void) {
    if (dir[0])
        remove_dir_at(AT_FDCWD, dir);
}

static void remove_dir_in(const char *parent, const char *name, void *arg) {
    (void)arg;
    char path[300];
    snprintf(path, sizeof path, "%s/%s", parent, name);
    remove_dir_at(AT_FDCWD, path);
}

/* Removes the directories left by fuzzer processes that died mid-run. */
static void sweep_stale(void) {
    reel__each_left_by_the_dead("/tmp", PREFIX, 0, remove_dir_in, NULL);
}

static void fatal(const char *what) {
    fprintf(stderr, "fuzz_media: %s: %s\n", what, strerror(errno));
    exit(1);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    sweep_stale();
    snprintf(dir, sizeof dir, "/tmp/" PREFIX "%d", (int)getpid());
    remove_dir(); /* a dead process's, under a reused pid */
    if (mkdir(dir, 0700) != 0)
        fatal(dir);
    atexit(remove_dir);
    if ((dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
        (home_fd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        fatal("open");
    int fd = openat(dir_fd, CANARY, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, "canary\n", 7) != 7 || close(fd) != 0)
        fatal("the canary file");
    input_fd = memfd_create("reel-fuzz-media-input", MFD_CLOEXEC);
    if (input_fd < 0)
        fatal("memfd_create");
    snprintf(input_path, sizeof input_path, "/proc/self/fd/%d", input_fd);
    watch_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (watch_fd < 0 || inotify_add_watch(watch_fd, dir, IN_OPEN | IN_ACCESS) < 0)
        fatal("inotify");
    return 0;
}

/* Aborts if anything opened or read the canary since the last call. */
static void check_canary(void) {
    char ev[sizeof(struct inotify_event) + 256];
    ssize_t n = read(watch_fd, ev, sizeof ev);
    if (n > 0) {
        fprintf(stderr, "fuzz_media: the input made FFmpeg open %s/" CANARY "\n", dir);
        abort();
    }
}

#define FRAMES 3
#define RGB_W  16
#define RGB_H  12

typedef struct seen {
    int64_t frames;
    int64_t last;
} seen;

static int on_frame(void *arg, int64_t index, const AVFrame *frame) {
    seen *s = arg;
    /* Indices come in order, from 0, one by one (media.h's promise). */
    if (index != s->last + 1) {
        fprintf(stderr, "fuzz_media: frame %lld after frame %lld\n", (long long)index,
                (long long)s->last);
        abort();
    }
    s->last = index;
    s->frames++;
    const AVFrameSideData *sd = av_frame_get_side_data(frame, AV_FRAME_DATA_MOTION_VECTORS);
    if (sd) {
        const AVMotionVector *mv = (const AVMotionVector *)sd->data;
        volatile int64_t sum = 0;
        for (size_t i = 0; i < sd->size / sizeof *mv; i++)
            sum += mv[i].motion_x + mv[i].motion_y;
        (void)sum;
    }
    uint8_t rgb[RGB_W * RGB_H * 3];
    (void)media_frame_to_rgb(frame, RGB_W, RGB_H, rgb);
    return 0;
}

static void run(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (fchdir(dir_fd) != 0)
        fatal("fchdir");
    run(data, size);
    if (fchdir(home_fd) != 0)
        fatal("fchdir");
    check_canary();
    return 0;
}

/* The checks on an input that opened: its probe, then its first frames. */
static void check(media_input *m, size_t size, vt_probe *p) {
    char why[256];
    media_probe(m, p);
    if (p->width <= 0 || p->height <= 0 || p->width > 16384 || p->height > 16384 ||
        p->num_bytes != size || !memchr(p->container, '\0', sizeof p->container) ||
        !memchr(p->codec, '\0', sizeof p->codec)) {
        fprintf(stderr, "fuzz_media: probe out of range: %dx%d, %llu bytes\n", (int)p->width,
                (int)p->height, (unsigned long long)p->num_bytes);
        abort();
    }
    double d = media_container_duration_s(m);
    if (!(d >= 0)) {
        fprintf(stderr, "fuzz_media: container duration %g\n", d);
        abort();
    }
    seen s = {.last = -1};
    bool partial = false;
    int rc = media_decode(m, 0, FRAMES, on_frame, &s, &partial, why, sizeof why);
    if (rc == 0 && s.frames > FRAMES) {
        fprintf(stderr, "fuzz_media: %lld frames for [0, %d)\n", (long long)s.frames, FRAMES);
        abort();
    }
    media_close(m);
}

static void run(const uint8_t *data, size_t size) {
    char why[256];
    /* As the motion filter opens it (the reader's probe is the same without
     * the motion vectors): the decoder's side data is read below. */
    const media_open_options o = {.threads = 1, .export_mvs = true};
    if (ftruncate(input_fd, 0) != 0 || (size && pwrite(input_fd, data, size, 0) != (ssize_t)size))
        fatal("writing the input file");
    media_input *f = NULL, *m = NULL;
    int rf = media_open_file(input_path, NULL, &o, &f, why, sizeof why);
    int rm = media_open(data, size, &o, &m, why, sizeof why);
    if ((rf != 0 && f) || (rm != 0 && m)) {
        fprintf(stderr, "fuzz_media: a failed open handed out an input\n");
        abort();
    }
    if ((rf == 0) != (rm == 0)) {
        fprintf(stderr, "fuzz_media: the file %s (%d), the same bytes in memory %s (%d)\n",
                rf ? "does not open" : "opens", rf, rm ? "do not" : "do", rm);
        abort();
    }
    if (rf != 0)
        return;
    vt_probe pf, pm;
    check(f, size, &pf);
    check(m, size, &pm);
    if (memcmp(&pf, &pm, sizeof pf) != 0) {
        fprintf(stderr, "fuzz_media: the file's probe differs from the bytes'\n");
        abort();
    }
}
