/*
 * The actor runtime's control channel (actors/control.h): encoding, strict
 * decoding, and SOCK_SEQPACKET transport with descriptors.
 *
 * Malformed messages are built with a small msgpack writer of this file's own
 * (not msgpack-c), from a table of the wire format as control.h documents it,
 * so each test can drop, duplicate or retype exactly one field.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "control.h"
#include "helpers.h"

TestSuite(control, .init = th_init, .fini = th_fini, .timeout = 60);

/* ---- sample messages ------------------------------------------------------------ */

static reel_ctl_msg blank(uint32_t type) {
    reel_ctl_msg m;
    memset(&m, 0, sizeof m);
    m.type = type;
    return m;
}

#define MAX_SAMPLES 32

/* Valid messages of every type: typical, extreme and minimal values. Fields
 * that do not belong to the type stay zero, as reel__ctl_decode leaves them. */
static size_t all_samples(reel_ctl_msg *s) {
    size_t n = 0;
    reel_ctl_msg m;

    m = blank(REEL_CTL_SPAWN);
    m.actor = 3, m.pool = 7, m.worker = 2, m.generation = 5;
    strcpy(m.path, "/dev/shm/reel-pool-7");
    s[n++] = m;
    m.actor = UINT32_MAX, m.pool = UINT32_MAX, m.worker = UINT32_MAX, m.generation = UINT32_MAX;
    memset(m.path, 'p', sizeof m.path - 1);
    m.path[sizeof m.path - 1] = '\0';
    s[n++] = m;
    m = blank(REEL_CTL_SPAWN);
    strcpy(m.path, "x");
    s[n++] = m;
    strcpy(m.cpus, "0-3,6"); /* a placement */
    strcpy(m.cvd, "GPU-1f2e,1");
    s[n++] = m;
    memset(m.cpus, '9', sizeof m.cpus - 1);
    m.cpus[sizeof m.cpus - 1] = '\0';
    m.cvd[0] = '\0';
    s[n++] = m;

    m = blank(REEL_CTL_SPAWNED);
    m.pool = 7, m.worker = 2, m.generation = 5, m.pid = 4242;
    s[n++] = m;
    m.pool = UINT32_MAX, m.worker = UINT32_MAX, m.generation = UINT32_MAX, m.pid = INT32_MAX;
    s[n++] = m;
    m = blank(REEL_CTL_SPAWNED);
    m.pid = 1;
    s[n++] = m;

    m = blank(REEL_CTL_READY);
    m.pool = 7, m.worker = 2, m.generation = 5;
    s[n++] = m;
    m.pool = UINT32_MAX, m.worker = 65536, m.generation = 256;
    s[n++] = m;
    s[n++] = blank(REEL_CTL_READY);

    s[n++] = blank(REEL_CTL_STOP);
    s[n++] = blank(REEL_CTL_DRAIN);
    s[n++] = blank(REEL_CTL_STATS_REQ);

    m = blank(REEL_CTL_STATS);
    m.done = 1000, m.failed = 3, m.busy_ns = 123456789012ull, m.rss = 1ull << 31;
    s[n++] = m;
    m.done = UINT64_MAX, m.failed = UINT64_MAX, m.busy_ns = UINT64_MAX, m.rss = UINT64_MAX;
    s[n++] = m;
    s[n++] = blank(REEL_CTL_STATS);

    m = blank(REEL_CTL_ERROR);
    m.phase = 2, m.code = -EIO, m.has_task = 1;
    for (int i = 0; i < 16; i++)
        m.task.bytes[i] = (uint8_t)(0xa0 + i);
    strcpy(m.text, "decoder: bad frame");
    s[n++] = m;
    m = blank(REEL_CTL_ERROR);
    m.phase = 1, m.code = INT32_MIN;
    memset(m.text, 't', sizeof m.text - 1);
    m.text[sizeof m.text - 1] = '\0';
    s[n++] = m;
    m = blank(REEL_CTL_ERROR);
    m.phase = 2, m.code = -1; /* a process error without a task, empty text */
    s[n++] = m;

    s[n++] = blank(REEL_CTL_EXIT);
    return n;
}

static int same_msg(const reel_ctl_msg *a, const reel_ctl_msg *b) {
    return a->type == b->type && a->actor == b->actor && a->pool == b->pool &&
           a->worker == b->worker && a->generation == b->generation && a->pid == b->pid &&
           a->phase == b->phase && a->code == b->code && !a->has_task == !b->has_task &&
           (!a->has_task || memcmp(a->task.bytes, b->task.bytes, 16) == 0) && a->done == b->done &&
           a->failed == b->failed && a->busy_ns == b->busy_ns && a->rss == b->rss &&
           strcmp(a->path, b->path) == 0 && strcmp(a->text, b->text) == 0;
}

#define EXPECT_SAME(got, want)                                                                     \
    cr_assert(same_msg(got, want), "decoded %s differs from what was sent",                        \
              reel__ctl_type_name((want)->type))

/* ---- a msgpack writer ----------------------------------------------------------- */

typedef struct mpw {
    size_t n;
    uint8_t b[REEL_CTL_MAX + 4096];
} mpw;

static void mp_raw(mpw *w, const void *p, size_t n) {
    cr_assert_leq(w->n + n, sizeof w->b);
    memcpy(w->b + w->n, p, n);
    w->n += n;
}

static void mp_byte(mpw *w, uint8_t c) {
    mp_raw(w, &c, 1);
}

static void mp_be(mpw *w, uint64_t v, int bytes) {
    for (int i = bytes - 1; i >= 0; i--)
        mp_byte(w, (uint8_t)(v >> (8 * i)));
}

static void mp_uint(mpw *w, uint64_t v) {
    if (v < 128)
        mp_byte(w, (uint8_t)v);
    else if (v <= UINT8_MAX)
        mp_byte(w, 0xcc), mp_be(w, v, 1);
    else if (v <= UINT16_MAX)
        mp_byte(w, 0xcd), mp_be(w, v, 2);
    else if (v <= UINT32_MAX)
        mp_byte(w, 0xce), mp_be(w, v, 4);
    else
        mp_byte(w, 0xcf), mp_be(w, v, 8);
}

static void mp_int(mpw *w, int64_t v) {
    if (v >= 0)
        mp_uint(w, (uint64_t)v);
    else if (v >= -32)
        mp_byte(w, (uint8_t)(int8_t)v);
    else if (v >= INT8_MIN)
        mp_byte(w, 0xd0), mp_be(w, (uint64_t)v, 1);
    else if (v >= INT16_MIN)
        mp_byte(w, 0xd1), mp_be(w, (uint64_t)v, 2);
    else if (v >= INT32_MIN)
        mp_byte(w, 0xd2), mp_be(w, (uint64_t)v, 4);
    else
        mp_byte(w, 0xd3), mp_be(w, (uint64_t)v, 8);
}

static void mp_str(mpw *w, const void *s, size_t n) {
    if (n < 32)
        mp_byte(w, (uint8_t)(0xa0 | n));
    else if (n <= UINT8_MAX)
        mp_byte(w, 0xd9), mp_be(w, n, 1);
    else if (n <= UINT16_MAX)
        mp_byte(w, 0xda), mp_be(w, n, 2);
    else
        mp_byte(w, 0xdb), mp_be(w, n, 4);
    mp_raw(w, s, n);
}

static void mp_cstr(mpw *w, const char *s) {
    mp_str(w, s, strlen(s));
}

static void mp_bin(mpw *w, const void *p, size_t n) {
    if (n <= UINT8_MAX)
        mp_byte(w, 0xc4), mp_be(w, n, 1);
    else if (n <= UINT16_MAX)
        mp_byte(w, 0xc5), mp_be(w, n, 2);
    else
        mp_byte(w, 0xc6), mp_be(w, n, 4);
    mp_raw(w, p, n);
}

static void mp_map(mpw *w, uint32_t n) {
    if (n < 16)
        mp_byte(w, (uint8_t)(0x80 | n));
    else if (n <= UINT16_MAX)
        mp_byte(w, 0xde), mp_be(w, n, 2);
    else
        mp_byte(w, 0xdf), mp_be(w, n, 4);
}

static void mp_arr(mpw *w, uint32_t n) {
    if (n < 16)
        mp_byte(w, (uint8_t)(0x90 | n));
    else if (n <= UINT16_MAX)
        mp_byte(w, 0xdc), mp_be(w, n, 2);
    else
        mp_byte(w, 0xdd), mp_be(w, n, 4);
}

static void mp_f64(mpw *w, double d) {
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    mp_byte(w, 0xcb), mp_be(w, u, 8);
}

static mpw *mpw_new(void) {
    mpw *w = calloc(1, sizeof *w);
    cr_assert_not_null(w);
    return w;
}

/* ---- the wire format, as control.h documents it ------------------------------- */

enum vk { VK_U32, VK_U64, VK_PID, VK_CODE, VK_PHASE, VK_PATH, VK_TEXT, VK_TASK };

typedef struct wfield {
    const char *key;
    enum vk kind;
} wfield;

typedef struct wtype {
    uint32_t type;
    int n;
    wfield f[5];
} wtype;

static const wtype wire[] = {
    {REEL_CTL_SPAWN,
     5,
     {{"actor", VK_U32}, {"pool", VK_U32}, {"worker", VK_U32}, {"gen", VK_U32}, {"path", VK_PATH}}},
    {REEL_CTL_SPAWNED, 4, {{"pool", VK_U32}, {"worker", VK_U32}, {"gen", VK_U32}, {"pid", VK_PID}}},
    {REEL_CTL_READY, 3, {{"pool", VK_U32}, {"worker", VK_U32}, {"gen", VK_U32}}},
    {REEL_CTL_STOP, 0, {{0}}},
    {REEL_CTL_DRAIN, 0, {{0}}},
    {REEL_CTL_STATS_REQ, 0, {{0}}},
    {REEL_CTL_STATS, 4, {{"done", VK_U64}, {"failed", VK_U64}, {"busy", VK_U64}, {"rss", VK_U64}}},
    {REEL_CTL_ERROR,
     4,
     {{"phase", VK_PHASE}, {"code", VK_CODE}, {"task", VK_TASK}, {"text", VK_TEXT}}},
    {REEL_CTL_EXIT, 0, {{0}}},
};
#define N_WIRE (sizeof wire / sizeof wire[0])

static const uint8_t task16[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

static void put_good(mpw *w, enum vk k) {
    switch (k) {
    case VK_U32:
        mp_uint(w, 77);
        break;
    case VK_U64:
        mp_uint(w, 1ull << 40);
        break;
    case VK_PID:
        mp_uint(w, 4242);
        break;
    case VK_CODE:
        mp_int(w, -5);
        break;
    case VK_PHASE:
        mp_uint(w, 2);
        break;
    case VK_PATH:
        mp_cstr(w, "/dev/shm/pool");
        break;
    case VK_TEXT:
        mp_cstr(w, "boom");
        break;
    case VK_TASK:
        mp_bin(w, task16, 16);
        break;
    }
}

/* Writes bad value number i for a field of kind k: the wrong msgpack type or
 * out of range. Returns 0 once i is past the last one. */
static int put_bad(mpw *w, enum vk k, int i) {
    char big[300];
    memset(big, 'a', sizeof big);
    /* Wrong msgpack types, bad for every kind; each kind's own follow. */
    switch (i) {
    case 0:
        mp_byte(w, 0xc0); /* nil */
        return 1;
    case 1:
        mp_byte(w, 0xc3); /* true */
        return 1;
    case 2:
        mp_f64(w, 1.0);
        return 1;
    case 3:
        mp_arr(w, 1), mp_uint(w, 1);
        return 1;
    case 4:
        mp_map(w, 1), mp_cstr(w, "a"), mp_uint(w, 1);
        return 1;
    case 5:
        mp_byte(w, 0xd4), mp_byte(w, 1), mp_byte(w, 1); /* fixext 1 */
        return 1;
    case 6: /* a string, except where a string is right: then a bin */
        if (k == VK_PATH || k == VK_TEXT)
            mp_bin(w, "abc", 3);
        else
            mp_cstr(w, "1");
        return 1;
    case 7: /* an integer where a string or bin is right */
        if (k == VK_PATH || k == VK_TEXT || k == VK_TASK) {
            mp_uint(w, 1);
            return 1;
        }
        break;
    default:
        break;
    }
    i -= 7;
    switch (k) {
    case VK_U32: {
        const int64_t v[] = {-1, INT32_MIN, (int64_t)UINT32_MAX + 1, INT64_MAX};
        if (i >= 4)
            return 0;
        if (i == 3)
            mp_uint(w, UINT64_MAX);
        else
            mp_int(w, v[i]);
        return 1;
    }
    case VK_U64:
        if (i >= 2)
            return 0;
        mp_int(w, i == 0 ? -1 : INT64_MIN);
        return 1;
    case VK_PID: {
        const int64_t v[] = {0, -1, -4242, (int64_t)INT32_MAX + 1, (int64_t)UINT32_MAX};
        if (i >= 5)
            return 0;
        mp_int(w, v[i]);
        return 1;
    }
    case VK_CODE: {
        const int64_t v[] = {0, 1, 5, (int64_t)INT32_MIN - 1, INT64_MIN};
        if (i >= 5)
            return 0;
        mp_int(w, v[i]);
        return 1;
    }
    case VK_PHASE: {
        const int64_t v[] = {0, 3, -1, 1ll << 32 | 1};
        if (i >= 4)
            return 0;
        mp_int(w, v[i]);
        return 1;
    }
    case VK_PATH:
    case VK_TEXT: {
        size_t too_long = k == VK_PATH ? REEL_CTL_PATH_MAX : REEL_ERROR_TEXT_MAX;
        if (i == 1)
            mp_str(w, big, too_long); /* one byte past the limit */
        else if (i == 2)
            mp_str(w, "ab\0cd", 5);
        else if (i == 3)
            mp_str(w, "\0", 1);
        else if (i == 4 && k == VK_PATH)
            mp_str(w, "", 0);
        else
            return 0;
        return 1;
    }
    case VK_TASK:
        if (i == 1)
            mp_bin(w, task16, 15);
        else if (i == 2)
            mp_bin(w, big, 17);
        else if (i == 3)
            mp_str(w, task16, 16);
        else if (i == 4)
            mp_bin(w, "", 0);
        else
            return 0;
        return 1;
    }
    return 0;
}

/* Writes a message of type t whose fields are all good, except: field omit is
 * left out, field bad gets bad value bad_i, field dup appears twice (each -1
 * for none). Returns 0 if bad_i is past the last bad value. */
static int build(mpw *w, const wtype *t, int omit, int bad, int bad_i, int dup) {
    w->n = 0;
    mp_map(w, (uint32_t)(1 + t->n - (omit >= 0) + (dup >= 0)));
    mp_cstr(w, "t");
    mp_uint(w, t->type);
    for (int f = 0; f < t->n; f++) {
        if (f == omit)
            continue;
        for (int rep = 0; rep < (f == dup ? 2 : 1); rep++) {
            mp_cstr(w, t->f[f].key);
            if (f == bad) {
                if (!put_bad(w, t->f[f].kind, bad_i))
                    return 0;
            } else {
                put_good(w, t->f[f].kind);
            }
        }
    }
    return 1;
}

/* ---- sockets ------------------------------------------------------------------- */

static void pair(int sv[2]) {
    cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0, "socketpair: %s",
                 strerror(errno));
}

/* Sends raw bytes as one packet with descriptors, bypassing reel__ctl_send's checks. */
static void raw_send(int sock, const void *buf, size_t len, const int *fds, int nfds) {
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int) * 8)];
    } cm;
    if (nfds > 0) {
        memset(&cm, 0, sizeof cm);
        mh.msg_control = cm.buf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
    }
    ssize_t n = sendmsg(sock, &mh, MSG_NOSIGNAL);
    cr_assert_eq(n, (ssize_t)len, "sendmsg of %zu bytes: %s", len, strerror(errno));
}

static int count_open_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    cr_assert_not_null(d);
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

/* A valid message must still get through after whatever came before it. */
static void expect_channel_works(int tx, int rx) {
    reel_ctl_msg m = blank(REEL_CTL_READY), got;
    m.pool = 9, m.worker = 8, m.generation = 7;
    int fds[REEL_CTL_MAX_FDS] = {-1, -1, -1, -1}, nfds = -1;
    TH_OK(reel__ctl_send(tx, &m, NULL, 0));
    TH_OK(reel__ctl_recv(rx, &got, fds, &nfds, 1000));
    cr_assert_eq(nfds, 0);
    EXPECT_SAME(&got, &m);
}

/* Sends raw bytes (and fds), expects recv to fail with want, no descriptor
 * left open, and the channel to work afterwards. */
static void expect_rejected_on_wire(int sv[2], const void *buf, size_t len, const int *fds,
                                    int nfds, int want) {
    int before = count_open_fds();
    raw_send(sv[0], buf, len, fds, nfds);
    reel_ctl_msg got;
    int out[REEL_CTL_MAX_FDS] = {-1, -1, -1, -1}, nout = -1;
    TH_RC(reel__ctl_recv(sv[1], &got, out, &nout, 1000), want);
    cr_assert_eq(nout, 0);
    cr_assert_eq(count_open_fds(), before, "a received descriptor was left open");
    expect_channel_works(sv[0], sv[1]);
}

/* ---- encode / decode ------------------------------------------------------------- */

Test(control, type_names) {
    const char *want[] = {"unknown",   "spawn", "spawned", "ready", "stop",   "drain",
                          "stats_req", "stats", "error",   "exit",  "unknown"};
    for (uint32_t t = 0; t <= 10; t++)
        cr_assert_str_eq(reel__ctl_type_name(t), want[t]);
    cr_assert_str_eq(reel__ctl_type_name(UINT32_MAX), "unknown");
}

Test(control, roundtrip_every_type) {
    reel_ctl_msg s[MAX_SAMPLES];
    size_t n = all_samples(s);
    int seen[REEL_CTL_EXIT + 1] = {0};
    for (size_t i = 0; i < n; i++) {
        uint8_t buf[1024];
        size_t len = 0;
        TH_OK(reel__ctl_encode(&s[i], buf, sizeof buf, &len));
        cr_assert_gt(len, 0);
        reel_ctl_msg got;
        memset(&got, 0x5a, sizeof got);
        TH_OK(reel__ctl_decode(buf, len, &got));
        EXPECT_SAME(&got, &s[i]);
        seen[s[i].type] = 1;

        /* Exactly len bytes of room is enough; any less is -ENOSPC. */
        uint8_t exact[1024];
        size_t len2 = 0;
        TH_OK(reel__ctl_encode(&s[i], exact, len, &len2));
        cr_assert_eq(len2, len);
        cr_assert(memcmp(exact, buf, len) == 0);
        for (size_t cap = 0; cap < len; cap++)
            TH_RC(reel__ctl_encode(&s[i], exact, cap, &len2), -ENOSPC);
    }
    for (uint32_t t = REEL_CTL_SPAWN; t <= REEL_CTL_EXIT; t++)
        cr_assert(seen[t], "no sample of type %u", t);
}

Test(control, encode_ignores_fields_of_other_types) {
    reel_ctl_msg m = blank(REEL_CTL_READY), got;
    m.pool = 1, m.worker = 2, m.generation = 3;
    m.pid = -7, m.code = 5, m.phase = 99, m.has_task = 1, m.done = 4;
    memset(m.path, 'x', sizeof m.path); /* not terminated: ignored all the same */
    uint8_t buf[1024];
    size_t len;
    TH_OK(reel__ctl_encode(&m, buf, sizeof buf, &len));
    TH_OK(reel__ctl_decode(buf, len, &got));
    reel_ctl_msg want = blank(REEL_CTL_READY);
    want.pool = 1, want.worker = 2, want.generation = 3;
    EXPECT_SAME(&got, &want);
}

Test(control, encode_rejects_bad_fields) {
    uint8_t buf[1024];
    size_t len;
    reel_ctl_msg s[MAX_SAMPLES];
    all_samples(s);
    reel_ctl_msg m;

    TH_RC(reel__ctl_encode(NULL, buf, sizeof buf, &len), -EINVAL);
    TH_RC(reel__ctl_encode(&s[0], NULL, sizeof buf, &len), -EINVAL);
    TH_RC(reel__ctl_encode(&s[0], buf, sizeof buf, NULL), -EINVAL);
    m = blank(0);
    TH_RC(reel__ctl_encode(&m, buf, sizeof buf, &len), -EINVAL);
    m = blank(REEL_CTL_EXIT + 1);
    TH_RC(reel__ctl_encode(&m, buf, sizeof buf, &len), -EINVAL);

    m = blank(REEL_CTL_SPAWN); /* empty path */
    TH_RC(reel__ctl_encode(&m, buf, sizeof buf, &len), -EINVAL);
    memset(m.path, 'p', sizeof m.path); /* not terminated */
    TH_RC(reel__ctl_encode(&m, buf, sizeof buf, &len), -EINVAL);

    int32_t pids[] = {0, -1, INT32_MIN};
    for (size_t i = 0; i < 3; i++) {
        m = blank(REEL_CTL_SPAWNED);
        m.pid = pids[i];
        TH_RC(reel__ctl_encode(&m, buf, sizeof buf, &len), -EINVAL);
    }

    m = blank(REEL_CTL_ERROR);
    m.phase = 2, m.code = 0;
    TH_RC(reel__ctl_encode(&m, buf, sizeof buf, &len), -EINVAL);
    m.code = 1;
    TH_RC(reel__ctl_encode(&m, buf, sizeof buf, &len), -EINVAL);
    m.code = -1, m.phase = 0;
    TH_RC(reel__ctl_encode(&m, buf, sizeof buf, &len), -EINVAL);
    m.phase = 3;
    TH_RC(reel__ctl_encode(&m, buf, sizeof buf, &len), -EINVAL);
    m.phase = 1, m.has_task = 1; /* a setup error has no task */
    TH_RC(reel__ctl_encode(&m, buf, sizeof buf, &len), -EINVAL);
    m.phase = 2;
    memset(m.text, 't', sizeof m.text); /* not terminated */
    TH_RC(reel__ctl_encode(&m, buf, sizeof buf, &len), -EINVAL);
    m.text[sizeof m.text - 1] = '\0';
    TH_OK(reel__ctl_encode(&m, buf, sizeof buf, &len));
}

Test(control, hand_built_messages_decode) {
    /* The test's copy of the wire format agrees with the code, so the
     * rejections below are for the one thing each test breaks. */
    mpw *w = mpw_new();
    for (size_t t = 0; t < N_WIRE; t++) {
        cr_assert(build(w, &wire[t], -1, -1, 0, -1));
        reel_ctl_msg got;
        TH_OK(reel__ctl_decode(w->b, w->n, &got));
        cr_assert_eq(got.type, wire[t].type);
    }
    free(w);
}

Test(control, unknown_keys_are_ignored) {
    mpw *w = mpw_new();
    w->n = 0;
    mp_map(w, 7);
    mp_cstr(w, "t");
    mp_uint(w, REEL_CTL_READY);
    mp_cstr(w, "zzz"); /* a later version's field */
    mp_arr(w, 2), mp_uint(w, 1), mp_cstr(w, "x");
    mp_cstr(w, "pool");
    mp_uint(w, 1);
    mp_cstr(w, "pid"); /* a field of another type, even malformed: not ours */
    mp_cstr(w, "not a pid");
    mp_cstr(w, "worker");
    mp_uint(w, 2);
    mp_cstr(w, "");
    mp_byte(w, 0xc0);
    mp_cstr(w, "gen");
    mp_uint(w, 3);
    reel_ctl_msg got;
    TH_OK(reel__ctl_decode(w->b, w->n, &got));
    reel_ctl_msg want = blank(REEL_CTL_READY);
    want.pool = 1, want.worker = 2, want.generation = 3;
    EXPECT_SAME(&got, &want);
    free(w);
}

Test(control, non_minimal_integers_accepted) {
    /* msgpack lets a writer choose a wider encoding; the value is what counts. */
    mpw *w = mpw_new();
    mp_map(w, 4);
    mp_cstr(w, "t");
    mp_byte(w, 0xcf), mp_be(w, REEL_CTL_READY, 8);
    mp_cstr(w, "pool");
    mp_byte(w, 0xd0), mp_be(w, 5, 1); /* int8 5 */
    mp_cstr(w, "worker");
    mp_byte(w, 0xd3), mp_be(w, 6, 8); /* int64 6 */
    mp_cstr(w, "gen");
    mp_byte(w, 0xcd), mp_be(w, 7, 2);
    reel_ctl_msg got;
    TH_OK(reel__ctl_decode(w->b, w->n, &got));
    cr_assert_eq(got.type, REEL_CTL_READY);
    cr_assert_eq(got.pool, 5);
    cr_assert_eq(got.worker, 6);
    cr_assert_eq(got.generation, 7);
    free(w);
}

Test(control, random_bytes_rejected) {
    int sv[2];
    pair(sv);
    uint8_t buf[512];
    for (uint64_t seed = 1; seed <= 3000; seed++) {
        uint64_t st = seed;
        size_t len = 1 + th_rand64(&st) % sizeof buf;
        for (size_t i = 0; i < len; i++)
            buf[i] = (uint8_t)th_rand64(&st);
        reel_ctl_msg got;
        TH_RC(reel__ctl_decode(buf, len, &got), -EBADMSG);
        if (seed % 50 == 0)
            expect_rejected_on_wire(sv, buf, len, NULL, 0, -EBADMSG);
    }
    close(sv[0]);
    close(sv[1]);
}

Test(control, truncated_at_every_length) {
    int sv[2];
    pair(sv);
    reel_ctl_msg s[MAX_SAMPLES];
    size_t n = all_samples(s);
    for (size_t i = 0; i < n; i++) {
        uint8_t buf[1024];
        size_t len;
        TH_OK(reel__ctl_encode(&s[i], buf, sizeof buf, &len));
        for (size_t cut = 0; cut < len; cut++) {
            reel_ctl_msg got;
            TH_RC(reel__ctl_decode(buf, cut, &got), -EBADMSG);
            /* Over the wire too (cut 0 is an empty packet). */
            if (i == 0 || i == 15)
                expect_rejected_on_wire(sv, buf, cut, NULL, 0, -EBADMSG);
        }
    }
    close(sv[0]);
    close(sv[1]);
}

Test(control, trailing_bytes_rejected) {
    reel_ctl_msg m = blank(REEL_CTL_STOP), got;
    uint8_t buf[1024];
    size_t len;
    TH_OK(reel__ctl_encode(&m, buf, sizeof buf, &len));
    buf[len] = 0xc0;
    TH_RC(reel__ctl_decode(buf, len + 1, &got), -EBADMSG);
    memcpy(buf + len, buf, len); /* two messages in one packet */
    TH_RC(reel__ctl_decode(buf, 2 * len, &got), -EBADMSG);
    TH_OK(reel__ctl_decode(buf, len, &got));
    TH_RC(reel__ctl_decode(NULL, len, &got), -EBADMSG);
    TH_RC(reel__ctl_decode(buf, len, NULL), -EBADMSG);
}

Test(control, not_a_map_rejected) {
    mpw *w = mpw_new();
    reel_ctl_msg got;
    for (int i = 0; i < 10; i++) {
        w->n = 0;
        switch (i) {
        case 0:
            mp_uint(w, REEL_CTL_STOP);
            break;
        case 1:
            mp_cstr(w, "t");
            break;
        case 2:
            mp_arr(w, 2), mp_cstr(w, "t"), mp_uint(w, REEL_CTL_STOP);
            break;
        case 3:
            mp_byte(w, 0xc0);
            break;
        case 4:
            mp_byte(w, 0xc2);
            break;
        case 5:
            mp_bin(w, "\x81\xa1t\x04", 4);
            break;
        case 6:
            mp_f64(w, 4.0);
            break;
        case 7:
            mp_map(w, 0);
            break;
        case 8:
            mp_arr(w, 1), mp_map(w, 1), mp_cstr(w, "t"), mp_uint(w, REEL_CTL_STOP);
            break;
        case 9:
            mp_int(w, -4);
            break;
        }
        TH_RC(reel__ctl_decode(w->b, w->n, &got), -EBADMSG);
    }
    free(w);
}

Test(control, wrong_type_codes_rejected) {
    mpw *w = mpw_new();
    reel_ctl_msg got;
    const int64_t bad[] = {0,     REEL_CTL_EXIT + 1,       100, 255,
                           65536, (int64_t)UINT32_MAX + 1, -1,  INT64_MIN};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        w->n = 0;
        mp_map(w, 1), mp_cstr(w, "t"), mp_int(w, bad[i]);
        TH_RC(reel__ctl_decode(w->b, w->n, &got), -EBADMSG);
    }
    for (int i = 0; i < 8; i++) {
        w->n = 0;
        switch (i) {
        case 0: /* a type that is not an integer */
            mp_map(w, 1), mp_cstr(w, "t"), mp_cstr(w, "4");
            break;
        case 1:
            mp_map(w, 1), mp_cstr(w, "t"), mp_byte(w, 0xc0);
            break;
        case 2:
            mp_map(w, 1), mp_cstr(w, "t"), mp_f64(w, 4.0);
            break;
        case 3: /* no type */
            mp_map(w, 1), mp_cstr(w, "pool"), mp_uint(w, 4);
            break;
        case 4: /* not first */
            mp_map(w, 2), mp_cstr(w, "zzz"), mp_uint(w, 1), mp_cstr(w, "t"), mp_uint(w, 4);
            break;
        case 5: /* twice */
            mp_map(w, 2), mp_cstr(w, "t"), mp_uint(w, 4), mp_cstr(w, "t"), mp_uint(w, 4);
            break;
        case 6: /* a key that is not a string */
            mp_map(w, 2), mp_cstr(w, "t"), mp_uint(w, 4), mp_uint(w, 1), mp_uint(w, 1);
            break;
        case 7: /* the type key as a bin */
            mp_map(w, 1), mp_bin(w, "t", 1), mp_uint(w, 4);
            break;
        }
        TH_RC(reel__ctl_decode(w->b, w->n, &got), -EBADMSG);
    }
    free(w);
}

Test(control, missing_required_fields_rejected) {
    mpw *w = mpw_new();
    for (size_t t = 0; t < N_WIRE; t++) {
        for (int f = 0; f < wire[t].n; f++) {
            cr_assert(build(w, &wire[t], f, -1, 0, -1));
            reel_ctl_msg got;
            int rc = reel__ctl_decode(w->b, w->n, &got);
            if (wire[t].f[f].kind == VK_TASK) { /* the one optional field */
                TH_OK(rc);
                cr_assert_eq(got.has_task, 0);
                continue;
            }
            TH_RC(rc, -EBADMSG);
            cr_assert(strstr(reel_last_error(), wire[t].f[f].key), "detail \"%s\" lacks \"%s\"",
                      reel_last_error(), wire[t].f[f].key);
        }
    }
    free(w);
}

Test(control, wrong_field_types_rejected) {
    mpw *w = mpw_new();
    int tried = 0;
    for (size_t t = 0; t < N_WIRE; t++) {
        for (int f = 0; f < wire[t].n; f++) {
            for (int i = 0; build(w, &wire[t], -1, f, i, -1); i++, tried++) {
                reel_ctl_msg got;
                int rc = reel__ctl_decode(w->b, w->n, &got);
                cr_assert_eq(rc, -EBADMSG, "%s field %s bad value %d: got %d",
                             reel__ctl_type_name(wire[t].type), wire[t].f[f].key, i, rc);
            }
        }
    }
    cr_assert_gt(tried, 100);
    free(w);
}

Test(control, duplicate_fields_rejected) {
    mpw *w = mpw_new();
    for (size_t t = 0; t < N_WIRE; t++) {
        for (int f = 0; f < wire[t].n; f++) {
            cr_assert(build(w, &wire[t], -1, -1, 0, f));
            reel_ctl_msg got;
            TH_RC(reel__ctl_decode(w->b, w->n, &got), -EBADMSG);
        }
    }
    free(w);
}

Test(control, negative_pid_rejected) {
    mpw *w = mpw_new();
    const int64_t pids[] = {-1, -4242, INT32_MIN, 0};
    for (size_t i = 0; i < 4; i++) {
        w->n = 0;
        mp_map(w, 5);
        mp_cstr(w, "t"), mp_uint(w, REEL_CTL_SPAWNED);
        mp_cstr(w, "pool"), mp_uint(w, 1);
        mp_cstr(w, "worker"), mp_uint(w, 1);
        mp_cstr(w, "gen"), mp_uint(w, 1);
        mp_cstr(w, "pid"), mp_int(w, pids[i]);
        reel_ctl_msg got;
        TH_RC(reel__ctl_decode(w->b, w->n, &got), -EBADMSG);
        cr_assert(strstr(reel_last_error(), "pid"));
    }
    free(w);
}

/* A spawn whose path is the given bytes. */
static void spawn_with_path(mpw *w, const char *path, size_t n) {
    w->n = 0;
    mp_map(w, 6);
    mp_cstr(w, "t"), mp_uint(w, REEL_CTL_SPAWN);
    mp_cstr(w, "actor"), mp_uint(w, 1);
    mp_cstr(w, "pool"), mp_uint(w, 1);
    mp_cstr(w, "worker"), mp_uint(w, 1);
    mp_cstr(w, "gen"), mp_uint(w, 1);
    mp_cstr(w, "path"), mp_str(w, path, n);
}

/* An error whose text is the given bytes. */
static void error_with_text(mpw *w, const char *text, size_t n) {
    w->n = 0;
    mp_map(w, 4);
    mp_cstr(w, "t"), mp_uint(w, REEL_CTL_ERROR);
    mp_cstr(w, "phase"), mp_uint(w, 1);
    mp_cstr(w, "code"), mp_int(w, -22);
    mp_cstr(w, "text"), mp_str(w, text, n);
}

Test(control, string_too_long_rejected) {
    mpw *w = mpw_new();
    char big[REEL_CTL_MAX];
    memset(big, 'a', sizeof big);
    reel_ctl_msg got;
    spawn_with_path(w, big, REEL_CTL_PATH_MAX - 1);
    TH_OK(reel__ctl_decode(w->b, w->n, &got));
    cr_assert_eq(strlen(got.path), REEL_CTL_PATH_MAX - 1);
    size_t paths[] = {REEL_CTL_PATH_MAX, REEL_CTL_PATH_MAX + 1, 4096, 60000};
    for (size_t i = 0; i < 4; i++) {
        spawn_with_path(w, big, paths[i]);
        TH_RC(reel__ctl_decode(w->b, w->n, &got), -EBADMSG);
    }
    error_with_text(w, big, REEL_ERROR_TEXT_MAX - 1);
    TH_OK(reel__ctl_decode(w->b, w->n, &got));
    cr_assert_eq(strlen(got.text), REEL_ERROR_TEXT_MAX - 1);
    size_t texts[] = {REEL_ERROR_TEXT_MAX, REEL_ERROR_TEXT_MAX + 1, 60000};
    for (size_t i = 0; i < 3; i++) {
        error_with_text(w, big, texts[i]);
        TH_RC(reel__ctl_decode(w->b, w->n, &got), -EBADMSG);
    }
    free(w);
}

Test(control, string_with_nul_rejected) {
    mpw *w = mpw_new();
    reel_ctl_msg got;
    spawn_with_path(w, "/dev/shm/a\0b", 12);
    TH_RC(reel__ctl_decode(w->b, w->n, &got), -EBADMSG);
    spawn_with_path(w, "/dev/shm/ab\0", 12);
    TH_RC(reel__ctl_decode(w->b, w->n, &got), -EBADMSG);
    spawn_with_path(w, "", 0);
    TH_RC(reel__ctl_decode(w->b, w->n, &got), -EBADMSG);
    error_with_text(w, "\0oops", 5);
    TH_RC(reel__ctl_decode(w->b, w->n, &got), -EBADMSG);
    error_with_text(w, "", 0); /* empty text is fine */
    TH_OK(reel__ctl_decode(w->b, w->n, &got));
    free(w);
}

Test(control, task_with_setup_error_rejected) {
    mpw *w = mpw_new();
    w->n = 0;
    mp_map(w, 5);
    mp_cstr(w, "t"), mp_uint(w, REEL_CTL_ERROR);
    mp_cstr(w, "phase"), mp_uint(w, 1);
    mp_cstr(w, "code"), mp_int(w, -22);
    mp_cstr(w, "task"), mp_bin(w, task16, 16);
    mp_cstr(w, "text"), mp_cstr(w, "setup failed");
    reel_ctl_msg got;
    TH_RC(reel__ctl_decode(w->b, w->n, &got), -EBADMSG);
    free(w);
}

Test(control, allocation_bombs_rejected_before_unpacking) {
    /* Each declares far more than it holds. msgpack-c would size an
     * allocation from the count; the bounds check must refuse first, which
     * the detail tells apart from msgpack-c's own refusal. */
    static const uint8_t bombs[][16] = {
        {0xdd, 0xff, 0xff, 0xff, 0xff},       /* array32 of 2^32-1 */
        {0xdf, 0xff, 0xff, 0xff, 0xff},       /* map32 */
        {0xdb, 0xff, 0xff, 0xff, 0xff},       /* str32 */
        {0xc6, 0xff, 0xff, 0xff, 0xff},       /* bin32 */
        {0xc9, 0xff, 0xff, 0xff, 0xff, 0x01}, /* ext32 */
        {0xdc, 0xff, 0xff},                   /* array16 */
        {0xde, 0xff, 0xff},                   /* map16 */
        /* inside a message that starts well: {"t": 4, "zzz": array32 of 2^32-1} */
        {0x82, 0xa1, 't', 0x04, 0xa3, 'z', 'z', 'z', 0xdd, 0xff, 0xff, 0xff, 0xff},
        /* {"t": 4, "zzz": [array32 of 2^31 ...]} */
        {0x82, 0xa1, 't', 0x04, 0xa3, 'z', 'z', 'z', 0x91, 0xdd, 0x80, 0, 0, 0},
        /* the map itself: map32 of 2^31 pairs, first "t": 4 */
        {0xdf, 0x80, 0, 0, 0, 0xa1, 't', 0x04},
    };
    static const size_t lens[] = {5, 5, 5, 5, 6, 3, 3, 13, 14, 8};
    int sv[2];
    pair(sv);
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        reel_ctl_msg got;
        TH_RC(reel__ctl_decode(bombs[i], lens[i], &got), -EBADMSG);
        cr_assert(strstr(reel_last_error(), "declared size"), "bomb %zu: detail \"%s\"", i,
                  reel_last_error());
        expect_rejected_on_wire(sv, bombs[i], lens[i], NULL, 0, -EBADMSG);
    }

    /* A full-size packet of one array declaring 2^32-1 elements, padded with
     * nils: still far more than it holds. */
    uint8_t *big = malloc(REEL_CTL_MAX);
    cr_assert_not_null(big);
    memset(big, 0xc0, REEL_CTL_MAX);
    memcpy(big, bombs[0], 5);
    reel_ctl_msg got;
    TH_RC(reel__ctl_decode(big, REEL_CTL_MAX, &got), -EBADMSG);
    cr_assert(strstr(reel_last_error(), "declared size"));
    expect_rejected_on_wire(sv, big, REEL_CTL_MAX, NULL, 0, -EBADMSG);
    free(big);
    close(sv[0]);
    close(sv[1]);
}

Test(control, deep_nesting_rejected) {
    /* Well-formed, but nested deeper than msgpack-c's unpacking stack. */
    mpw *w = mpw_new();
    mp_map(w, 2);
    mp_cstr(w, "t"), mp_uint(w, REEL_CTL_STOP);
    mp_cstr(w, "zzz");
    for (int i = 0; i < 10000; i++)
        mp_arr(w, 1);
    mp_uint(w, 0);
    reel_ctl_msg got;
    TH_RC(reel__ctl_decode(w->b, w->n, &got), -EBADMSG);
    free(w);
}

/* ---- the socket ---------------------------------------------------------------- */

Test(control, socket_roundtrip_every_type) {
    int sv[2];
    pair(sv);
    reel_ctl_msg s[MAX_SAMPLES];
    size_t n = all_samples(s);
    int p[2];
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    for (size_t i = 0; i < n; i++) {
        int nf = s[i].type == REEL_CTL_SPAWNED ? 2 : 0;
        TH_OK(reel__ctl_send(sv[0], &s[i], nf ? p : NULL, nf));
    }
    /* Both directions. */
    TH_OK(reel__ctl_send(sv[1], &s[0], NULL, 0));
    for (size_t i = 0; i < n; i++) {
        reel_ctl_msg got;
        int fds[REEL_CTL_MAX_FDS], nfds = -1;
        TH_OK(reel__ctl_recv(sv[1], &got, fds, &nfds, 1000));
        EXPECT_SAME(&got, &s[i]);
        cr_assert_eq(nfds, s[i].type == REEL_CTL_SPAWNED ? 2 : 0);
        for (int k = 0; k < nfds; k++)
            close(fds[k]);
    }
    reel_ctl_msg got;
    int fds[REEL_CTL_MAX_FDS], nfds = -1;
    TH_OK(reel__ctl_recv(sv[0], &got, fds, &nfds, 0));
    EXPECT_SAME(&got, &s[0]);
    TH_RC(reel__ctl_recv(sv[1], &got, fds, &nfds, 0), -EAGAIN);
    close(p[0]);
    close(p[1]);
    close(sv[0]);
    close(sv[1]);
}

Test(control, fds_passed) {
    int sv[2], p[2];
    pair(sv);
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    reel_ctl_msg m = blank(REEL_CTL_SPAWNED), got;
    m.pool = 1, m.worker = 2, m.generation = 3, m.pid = 99;
    TH_OK(reel__ctl_send(sv[0], &m, p, 2));
    int fds[REEL_CTL_MAX_FDS] = {-1, -1, -1, -1}, nfds = -1;
    TH_OK(reel__ctl_recv(sv[1], &got, fds, &nfds, 1000));
    EXPECT_SAME(&got, &m);
    cr_assert_eq(nfds, 2);
    cr_assert_neq(fds[0], p[0]);
    cr_assert_neq(fds[1], p[1]);
    for (int k = 0; k < 2; k++) {
        int fl = fcntl(fds[k], F_GETFD);
        cr_assert_geq(fl, 0);
        cr_assert(fl & FD_CLOEXEC, "received descriptors are close-on-exec");
    }
    /* The received write end feeds our read end, and our write end the
     * received read end: they are the same pipe. */
    char c = 0;
    cr_assert_eq(write(fds[1], "a", 1), 1);
    cr_assert_eq(read(p[0], &c, 1), 1);
    cr_assert_eq(c, 'a');
    cr_assert_eq(write(p[1], "b", 1), 1);
    cr_assert_eq(read(fds[0], &c, 1), 1);
    cr_assert_eq(c, 'b');
    /* The sender keeps its own: closing them leaves the received ones working. */
    close(p[0]);
    close(p[1]);
    cr_assert_eq(write(fds[1], "c", 1), 1);
    cr_assert_eq(read(fds[0], &c, 1), 1);
    cr_assert_eq(c, 'c');
    close(fds[0]);
    close(fds[1]);
    close(sv[0]);
    close(sv[1]);
}

static int child_sends_spawned(void *arg) {
    int sock = *(int *)arg;
    int p[2];
    TH_CHILD_CHECK(pipe(p) == 0, "pipe: %s", strerror(errno));
    th_wait_asleep(getppid(), 60000); /* the parent waits in its receive */
    reel_ctl_msg m = blank(REEL_CTL_SPAWNED);
    m.pool = 4, m.worker = 5, m.generation = 6, m.pid = (int32_t)getpid();
    TH_CHILD_RC(reel__ctl_send(sock, &m, p, 2), 0);
    TH_CHILD_CHECK(write(p[1], "z", 1) == 1, "write: %s", strerror(errno));
    return 0;
}

Test(control, fds_passed_between_processes) {
    int sv[2];
    pair(sv);
    pid_t pid = th_fork(child_sends_spawned, &sv[0]);
    reel_ctl_msg got;
    int fds[REEL_CTL_MAX_FDS], nfds = -1;
    TH_OK(reel__ctl_recv(sv[1], &got, fds, &nfds, -1));
    cr_assert_eq(got.type, REEL_CTL_SPAWNED);
    cr_assert_eq(got.pid, pid);
    cr_assert_eq(nfds, 2);
    cr_assert_eq(th_wait(pid, 5000), 0);
    char c = 0;
    cr_assert_eq(read(fds[0], &c, 1), 1);
    cr_assert_eq(c, 'z');
    close(fds[1]); /* the child's copy died with it: end of file */
    cr_assert_eq(read(fds[0], &c, 1), 0);
    close(fds[0]);
    close(sv[0]);
    close(sv[1]);
}

Test(control, send_checks_descriptors) {
    int sv[2], p[2];
    pair(sv);
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    int five[5] = {p[0], p[1], p[0], p[1], p[0]};
    reel_ctl_msg spawned = blank(REEL_CTL_SPAWNED), stop = blank(REEL_CTL_STOP);
    spawned.pid = 1;
    TH_RC(reel__ctl_send(sv[0], &spawned, NULL, 0), -EINVAL);
    TH_RC(reel__ctl_send(sv[0], &spawned, p, 1), -EINVAL);
    TH_RC(reel__ctl_send(sv[0], &spawned, five, 3), -EINVAL);
    TH_RC(reel__ctl_send(sv[0], &spawned, five, 5), -EINVAL);
    TH_RC(reel__ctl_send(sv[0], &spawned, NULL, 2), -EINVAL);
    int neg[2] = {p[0], -1};
    TH_RC(reel__ctl_send(sv[0], &spawned, neg, 2), -EINVAL);
    TH_RC(reel__ctl_send(sv[0], &stop, p, 1), -EINVAL);
    TH_RC(reel__ctl_send(sv[0], &stop, p, -1), -EINVAL);
    reel_ctl_msg bad = blank(REEL_CTL_SPAWN); /* empty path */
    TH_RC(reel__ctl_send(sv[0], &bad, NULL, 0), -EINVAL);
    TH_RC(reel__ctl_send(sv[0], NULL, NULL, 0), -EINVAL);
    /* Nothing was sent. */
    reel_ctl_msg got;
    int fds[REEL_CTL_MAX_FDS], nfds = -1;
    TH_RC(reel__ctl_recv(sv[1], &got, fds, &nfds, 0), -EAGAIN);
    cr_assert_eq(nfds, 0);
    TH_RC(reel__ctl_send(p[1], &stop, NULL, 0), -ENOTSOCK);
    TH_RC(reel__ctl_send(-1, &stop, NULL, 0), -EBADF);
    close(p[0]);
    close(p[1]);
    close(sv[0]);
    close(sv[1]);
}

Test(control, rejected_message_closes_its_fds) {
    int sv[2], p[2];
    pair(sv);
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    uint8_t junk[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
    int before = count_open_fds();
    raw_send(sv[0], junk, sizeof junk, p, 2);
    reel_ctl_msg got;
    int fds[REEL_CTL_MAX_FDS] = {-1, -1, -1, -1}, nfds = -1;
    TH_RC(reel__ctl_recv(sv[1], &got, fds, &nfds, 1000), -EBADMSG);
    cr_assert_eq(nfds, 0);
    cr_assert_eq(count_open_fds(), before);
    /* With its write end only ours, the pipe ends when we close it: the
     * received copy was closed, not leaked. */
    close(p[1]);
    char c;
    cr_assert_eq(read(p[0], &c, 1), 0);
    close(p[0]);
    expect_channel_works(sv[0], sv[1]);
    close(sv[0]);
    close(sv[1]);
}

Test(control, descriptors_on_the_wrong_message_are_closed) {
    int sv[2], p[2];
    pair(sv);
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    uint8_t buf[1024];
    size_t len;
    reel_ctl_msg stop = blank(REEL_CTL_STOP), spawned = blank(REEL_CTL_SPAWNED);
    spawned.pid = 7;
    TH_OK(reel__ctl_encode(&stop, buf, sizeof buf, &len));
    expect_rejected_on_wire(sv, buf, len, p, 1, -EBADMSG); /* none expected */
    expect_rejected_on_wire(sv, buf, len, p, 2, -EBADMSG);
    TH_OK(reel__ctl_encode(&spawned, buf, sizeof buf, &len));
    expect_rejected_on_wire(sv, buf, len, NULL, 0, -EBADMSG); /* two expected */
    expect_rejected_on_wire(sv, buf, len, p, 1, -EBADMSG);
    int three[3] = {p[0], p[1], p[0]};
    expect_rejected_on_wire(sv, buf, len, three, 3, -EBADMSG);
    /* An empty packet with descriptors. */
    expect_rejected_on_wire(sv, buf, 0, p, 2, -EBADMSG);
    close(p[0]);
    close(p[1]);
    close(sv[0]);
    close(sv[1]);
}

Test(control, too_many_descriptors) {
    int sv[2], p[2];
    pair(sv);
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    uint8_t buf[1024];
    size_t len;
    reel_ctl_msg spawned = blank(REEL_CTL_SPAWNED);
    spawned.pid = 7;
    TH_OK(reel__ctl_encode(&spawned, buf, sizeof buf, &len));
    int many[8] = {p[0], p[1], p[0], p[1], p[0], p[1], p[0], p[1]};
    expect_rejected_on_wire(sv, buf, len, many, 5, -EMSGSIZE);
    expect_rejected_on_wire(sv, buf, len, many, 8, -EMSGSIZE);
    close(p[1]);
    char c;
    cr_assert_eq(read(p[0], &c, 1), 0, "a received write end is still open");
    close(p[0]);
    close(sv[0]);
    close(sv[1]);
}

Test(control, oversized_packet) {
    int sv[2], p[2];
    pair(sv);
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    uint8_t *big = malloc(100000);
    cr_assert_not_null(big);
    memset(big, 0xc0, 100000);
    expect_rejected_on_wire(sv, big, REEL_CTL_MAX + 1, NULL, 0, -EMSGSIZE);
    expect_rejected_on_wire(sv, big, 100000, NULL, 0, -EMSGSIZE);
    expect_rejected_on_wire(sv, big, REEL_CTL_MAX + 1, p, 2, -EMSGSIZE);
    cr_assert(strstr(reel_last_error(), "longer"));
    /* Exactly REEL_CTL_MAX bytes is a packet, here a junk one... */
    expect_rejected_on_wire(sv, big, REEL_CTL_MAX, NULL, 0, -EBADMSG);
    free(big);

    /* ...or a valid one: a ready padded with a later version's field. */
    mpw *w = mpw_new();
    mp_map(w, 5);
    mp_cstr(w, "t"), mp_uint(w, REEL_CTL_READY);
    mp_cstr(w, "pool"), mp_uint(w, 1);
    mp_cstr(w, "worker"), mp_uint(w, 2);
    mp_cstr(w, "gen"), mp_uint(w, 3);
    mp_cstr(w, "pad");
    size_t pad = REEL_CTL_MAX - w->n - 5; /* bin32 header */
    uint8_t *zeros = calloc(1, pad);
    cr_assert_not_null(zeros);
    mp_byte(w, 0xc6), mp_be(w, pad, 4), mp_raw(w, zeros, pad);
    cr_assert_eq(w->n, REEL_CTL_MAX);
    raw_send(sv[0], w->b, w->n, NULL, 0);
    reel_ctl_msg got;
    int fds[REEL_CTL_MAX_FDS], nfds = -1;
    TH_OK(reel__ctl_recv(sv[1], &got, fds, &nfds, 1000));
    cr_assert_eq(got.type, REEL_CTL_READY);
    cr_assert_eq(got.generation, 3);
    /* One byte more is over the limit, whatever the bytes. */
    mp_byte(w, 0);
    expect_rejected_on_wire(sv, w->b, w->n, NULL, 0, -EMSGSIZE);
    free(zeros);
    free(w);
    close(p[0]);
    close(p[1]);
    close(sv[0]);
    close(sv[1]);
}

Test(control, empty_packet) {
    int sv[2];
    pair(sv);
    expect_rejected_on_wire(sv, "", 0, NULL, 0, -EBADMSG);
    cr_assert(strstr(reel_last_error(), "empty"));
    close(sv[0]);
    close(sv[1]);
}

Test(control, peer_closed) {
    int sv[2];
    pair(sv);
    reel_ctl_msg got;
    int fds[REEL_CTL_MAX_FDS], nfds = -1;
    close(sv[0]);
    TH_RC(reel__ctl_recv(sv[1], &got, fds, &nfds, -1), -ECONNRESET);
    TH_RC(reel__ctl_recv(sv[1], &got, fds, &nfds, 0), -ECONNRESET);
    TH_RC(reel__ctl_recv(sv[1], &got, fds, &nfds, 100), -ECONNRESET);
    cr_assert_eq(nfds, 0);
    close(sv[1]);
}

Test(control, peer_closed_after_sending) {
    /* The peer sends, then closes with a message of ours unread: its messages
     * still arrive, then the end. */
    int sv[2];
    pair(sv);
    reel_ctl_msg drain = blank(REEL_CTL_DRAIN), err = blank(REEL_CTL_ERROR), got;
    err.phase = 1, err.code = -ENOMEM;
    strcpy(err.text, "out of memory");
    TH_OK(reel__ctl_send(sv[1], &drain, NULL, 0));
    TH_OK(reel__ctl_send(sv[0], &err, NULL, 0));
    TH_OK(reel__ctl_send(sv[0], &drain, NULL, 0));
    close(sv[0]);
    int fds[REEL_CTL_MAX_FDS], nfds = -1;
    TH_OK(reel__ctl_recv(sv[1], &got, fds, &nfds, 0));
    EXPECT_SAME(&got, &err);
    TH_OK(reel__ctl_recv(sv[1], &got, fds, &nfds, -1));
    EXPECT_SAME(&got, &drain);
    TH_RC(reel__ctl_recv(sv[1], &got, fds, &nfds, 1000), -ECONNRESET);
    close(sv[1]);
}

Test(control, send_to_closed_peer) {
    /* SIGPIPE at its default: a send without MSG_NOSIGNAL would kill us. */
    signal(SIGPIPE, SIG_DFL);
    int sv[2];
    pair(sv);
    reel_ctl_msg stop = blank(REEL_CTL_STOP);
    close(sv[1]);
    TH_RC(reel__ctl_send(sv[0], &stop, NULL, 0), -EPIPE);
    close(sv[0]);
    /* The peer closed with our message unread: the kernel says ECONNRESET once. */
    pair(sv);
    TH_OK(reel__ctl_send(sv[0], &stop, NULL, 0));
    close(sv[1]);
    TH_RC(reel__ctl_send(sv[0], &stop, NULL, 0), -EPIPE);
    TH_RC(reel__ctl_send(sv[0], &stop, NULL, 0), -EPIPE);
    close(sv[0]);
}

Test(control, timeout) {
    int sv[2];
    pair(sv);
    reel_ctl_msg got;
    int fds[REEL_CTL_MAX_FDS], nfds = -1;
    TH_RC(reel__ctl_recv(sv[1], &got, fds, &nfds, 0), -EAGAIN);
    cr_assert_eq(nfds, 0);
    uint64_t t0 = th_realtime_ns();
    TH_RC(reel__ctl_recv(sv[1], &got, fds, &nfds, 50), -ETIMEDOUT);
    cr_assert_geq(th_realtime_ns() - t0, 40 * 1000000ull, "returned before the timeout");
    cr_assert_eq(nfds, 0);
    /* A message already waiting is taken at once, whatever the timeout. */
    reel_ctl_msg m = blank(REEL_CTL_STATS_REQ);
    TH_OK(reel__ctl_send(sv[0], &m, NULL, 0));
    TH_OK(reel__ctl_recv(sv[1], &got, fds, &nfds, 0));
    cr_assert_eq(got.type, REEL_CTL_STATS_REQ);
    close(sv[0]);
    close(sv[1]);
}

Test(control, recv_bad_arguments) {
    int sv[2], p[2];
    pair(sv);
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    reel_ctl_msg got;
    int fds[REEL_CTL_MAX_FDS], nfds = -1;
    TH_RC(reel__ctl_recv(sv[1], NULL, fds, &nfds, 0), -EINVAL);
    cr_assert_eq(nfds, 0);
    TH_RC(reel__ctl_recv(sv[1], &got, NULL, &nfds, 0), -EINVAL);
    TH_RC(reel__ctl_recv(sv[1], &got, fds, NULL, 0), -EINVAL);
    TH_RC(reel__ctl_recv(p[0], &got, fds, &nfds, 0), -ENOTSOCK);
    TH_RC(reel__ctl_recv(-1, &got, fds, &nfds, 0), -EBADF);
    TH_RC(reel__ctl_recv(-1, &got, fds, &nfds, 100), -EBADF);
    close(p[0]);
    close(p[1]);
    close(sv[0]);
    close(sv[1]);
}

/* ---- fuzz ------------------------------------------------------------------------- */

static void mutate(uint8_t *b, size_t *len, size_t cap, uint64_t *st) {
    static const uint8_t interesting[] = {0x00, 0x01, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf,
                                          0xc0, 0xc1, 0xc2, 0xc4, 0xc6, 0xcc, 0xcf, 0xd0, 0xd3,
                                          0xd9, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xe0, 0xff, 't'};
    size_t n = *len;
    size_t at = n ? th_rand64(st) % n : 0;
    switch (th_rand64(st) % 8) {
    case 0:
        if (n)
            b[at] ^= (uint8_t)(1u << th_rand64(st) % 8);
        break;
    case 1:
        if (n)
            b[at] = (uint8_t)th_rand64(st);
        break;
    case 2:
        if (n)
            b[at] = interesting[th_rand64(st) % sizeof interesting];
        break;
    case 3:
        if (n)
            n = th_rand64(st) % n; /* truncate */
        break;
    case 4:
        if (n < cap) { /* insert */
            memmove(b + at + 1, b + at, n - at);
            b[at] = (uint8_t)th_rand64(st);
            n++;
        }
        break;
    case 5:
        if (n) { /* delete */
            memmove(b + at, b + at + 1, n - at - 1);
            n--;
        }
        break;
    case 6: /* append */
        for (uint64_t k = th_rand64(st) % 8; k > 0 && n < cap; k--)
            b[n++] = (uint8_t)th_rand64(st);
        break;
    case 7: { /* repeat a slice */
        size_t sl = n ? 1 + th_rand64(st) % 8 : 0;
        if (at + sl <= n && n + sl <= cap) {
            memmove(b + at + sl, b + at, n - at);
            n += sl;
        }
        break;
    }
    }
    *len = n;
}

Test(control, fuzz_mutated_encodings) {
    reel_ctl_msg s[MAX_SAMPLES];
    size_t ns = all_samples(s);
    uint64_t st = 0x5eedc0de;
    int decoded = 0;
    for (int it = 0; it < 20000; it++) {
        uint8_t b[2048];
        size_t len;
        TH_OK(reel__ctl_encode(&s[th_rand64(&st) % ns], b, sizeof b, &len));
        for (uint64_t k = 1 + th_rand64(&st) % 4; k > 0; k--)
            mutate(b, &len, sizeof b, &st);
        reel_ctl_msg got;
        int rc = reel__ctl_decode(b, len, &got);
        cr_assert(rc == 0 || rc == -EBADMSG, "iteration %d: %d", it, rc);
        if (rc)
            continue;
        decoded++;
        uint8_t again[1024];
        size_t len2;
        reel_ctl_msg back;
        TH_OK(reel__ctl_encode(&got, again, sizeof again, &len2));
        TH_OK(reel__ctl_decode(again, len2, &back));
        cr_assert(same_msg(&back, &got), "iteration %d: re-encoding changed the message", it);
    }
    /* Some mutations leave a valid message (a changed number, a cut-off unknown key...). */
    cr_assert_gt(decoded, 0);
}
