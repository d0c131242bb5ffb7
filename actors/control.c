/* The control channel: typed msgpack messages over SOCK_SEQPACKET, with
 * descriptors. The wire format is documented in control.h. Every byte and
 * every descriptor received comes from another process and is validated, or
 * closed, before the caller sees it. */
#include "control.h"
#include "store_internal.h"

#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>

/* The longest encoding is a spawn with a 255-byte path (~310 bytes) or an
 * error with a task and a 199-byte text (~250 bytes); see the tests. */
#define CTL_ENCODED_MAX 1024

enum field_kind { K_U32, K_U64, K_PID, K_CODE, K_PHASE, K_PATH, K_TEXT, K_TASK, K_PLACE };

typedef struct ctl_field {
    const char *key;
    enum field_kind kind;
    size_t off; /* in reel_ctl_msg */
} ctl_field;

/* Order is the order of encoding; a field's bit is 1 << its index. */
static const ctl_field fields[] = {
    {"actor", K_U32, offsetof(reel_ctl_msg, actor)},
    {"pool", K_U32, offsetof(reel_ctl_msg, pool)},
    {"worker", K_U32, offsetof(reel_ctl_msg, worker)},
    {"gen", K_U32, offsetof(reel_ctl_msg, generation)},
    {"path", K_PATH, offsetof(reel_ctl_msg, path)},
    {"pid", K_PID, offsetof(reel_ctl_msg, pid)},
    {"done", K_U64, offsetof(reel_ctl_msg, done)},
    {"failed", K_U64, offsetof(reel_ctl_msg, failed)},
    {"busy", K_U64, offsetof(reel_ctl_msg, busy_ns)},
    {"rss", K_U64, offsetof(reel_ctl_msg, rss)},
    {"phase", K_PHASE, offsetof(reel_ctl_msg, phase)},
    {"code", K_CODE, offsetof(reel_ctl_msg, code)},
    {"task", K_TASK, offsetof(reel_ctl_msg, task)},
    {"text", K_TEXT, offsetof(reel_ctl_msg, text)},
    {"cpus", K_PLACE, offsetof(reel_ctl_msg, cpus)},
    {"cvd", K_PLACE, offsetof(reel_ctl_msg, cvd)},
};
#define N_FIELDS (sizeof fields / sizeof fields[0])

enum {
    F_ACTOR = 1u << 0,
    F_POOL = 1u << 1,
    F_WORKER = 1u << 2,
    F_GEN = 1u << 3,
    F_PATH = 1u << 4,
    F_PID = 1u << 5,
    F_DONE = 1u << 6,
    F_FAILED = 1u << 7,
    F_BUSY = 1u << 8,
    F_RSS = 1u << 9,
    F_PHASE = 1u << 10,
    F_CODE = 1u << 11,
    F_TASK = 1u << 12, /* optional */
    F_TEXT = 1u << 13,
    F_CPUS = 1u << 14, /* optional */
    F_CVD = 1u << 15,  /* optional */
};
_Static_assert(N_FIELDS == 16, "a field bit per entry of fields[]");

/* Fields a message of its type may leave out. */
#define F_OPTIONAL (F_TASK | F_CPUS | F_CVD)

#define TYPE_KEY "t"

typedef struct ctl_type {
    const char *name;
    uint32_t fields; /* bits of the fields it has */
    int nfds;        /* descriptors it carries */
} ctl_type;

static const ctl_type types[] = {
    [REEL_CTL_SPAWN] = {"spawn", F_ACTOR | F_POOL | F_WORKER | F_GEN | F_PATH | F_CPUS | F_CVD, 0},
    [REEL_CTL_SPAWNED] = {"spawned", F_POOL | F_WORKER | F_GEN | F_PID, 2},
    [REEL_CTL_READY] = {"ready", F_POOL | F_WORKER | F_GEN, 0},
    [REEL_CTL_STOP] = {"stop", 0, 0},
    [REEL_CTL_DRAIN] = {"drain", 0, 0},
    [REEL_CTL_STATS_REQ] = {"stats_req", 0, 0},
    [REEL_CTL_STATS] = {"stats", F_DONE | F_FAILED | F_BUSY | F_RSS, 0},
    [REEL_CTL_ERROR] = {"error", F_PHASE | F_CODE | F_TASK | F_TEXT, 0},
    [REEL_CTL_EXIT] = {"exit", 0, 0},
};

static int type_known(uint64_t t) {
    return t >= REEL_CTL_SPAWN && t <= REEL_CTL_EXIT;
}

const char *reel__ctl_type_name(uint32_t type) {
    return type_known(type) ? types[type].name : "unknown";
}

/* ---- encoding ------------------------------------------------------------ */

static void pack_str(msgpack_packer *pk, const char *s, size_t n) {
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

/* Whether the field of msg is in range (encode side). */
static int field_ok(const reel_ctl_msg *msg, const ctl_field *f) {
    const char *p = (const char *)msg + f->off;
    switch (f->kind) {
    case K_PID:
        return msg->pid > 0;
    case K_CODE:
        return msg->code < 0;
    case K_PHASE:
        return msg->phase == 1 || msg->phase == 2;
    case K_PATH:
        return p[0] != '\0' && memchr(p, '\0', sizeof msg->path) != NULL;
    case K_TEXT:
        return memchr(p, '\0', sizeof msg->text) != NULL;
    case K_PLACE:
        return memchr(p, '\0', REEL_CTL_PATH_MAX) != NULL;
    default:
        return 1;
    }
}

/* The fields msg carries: its type's, less the task unless it has one. */
static uint32_t fields_of(const reel_ctl_msg *msg) {
    uint32_t mask = types[msg->type].fields;
    if (!msg->has_task)
        mask &= ~(uint32_t)F_TASK;
    if (!msg->cpus[0])
        mask &= ~(uint32_t)F_CPUS;
    if (!msg->cvd[0])
        mask &= ~(uint32_t)F_CVD;
    return mask;
}

static void pack_field(msgpack_packer *pk, const reel_ctl_msg *msg, const ctl_field *f) {
    const char *p = (const char *)msg + f->off;
    uint32_t u32;
    uint64_t u64;
    int32_t i32;
    pack_str(pk, f->key, strlen(f->key));
    switch (f->kind) {
    case K_U32:
    case K_PHASE:
        memcpy(&u32, p, sizeof u32);
        msgpack_pack_uint32(pk, u32);
        break;
    case K_U64:
        memcpy(&u64, p, sizeof u64);
        msgpack_pack_uint64(pk, u64);
        break;
    case K_PID:
    case K_CODE:
        memcpy(&i32, p, sizeof i32);
        msgpack_pack_int32(pk, i32);
        break;
    case K_PATH:
    case K_TEXT:
    case K_PLACE:
        pack_str(pk, p, strlen(p));
        break;
    case K_TASK:
        msgpack_pack_bin(pk, sizeof msg->task.bytes);
        msgpack_pack_bin_body(pk, msg->task.bytes, sizeof msg->task.bytes);
        break;
    }
}

int reel__ctl_encode(const reel_ctl_msg *msg, void *buf, size_t cap, size_t *len) {
    if (!msg || !buf || !len || !type_known(msg->type))
        return -EINVAL;
    uint32_t mask = fields_of(msg);
    uint32_t n = 1;
    for (size_t i = 0; i < N_FIELDS; i++) {
        if (!(mask & 1u << i))
            continue;
        if (!field_ok(msg, &fields[i]))
            return -EINVAL;
        n++;
    }
    if ((mask & F_TASK) && msg->phase != 2)
        return -EINVAL;

    reel__fixed_buffer fb = {.data = buf, .cap = cap};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &fb, reel__fixed_write);
    msgpack_pack_map(&pk, n);
    pack_str(&pk, TYPE_KEY, 1);
    msgpack_pack_uint32(&pk, msg->type);
    for (size_t i = 0; i < N_FIELDS; i++)
        if (mask & 1u << i)
            pack_field(&pk, msg, &fields[i]);
    if (fb.overflow)
        return -ENOSPC;
    *len = fb.len;
    return 0;
}

/* ---- decoding ------------------------------------------------------------ */

static int key_is(const msgpack_object *k, const char *s) {
    size_t n = strlen(s);
    return k->via.str.size == n && memcmp(k->via.str.ptr, s, n) == 0;
}

/* A string field: at most max - 1 bytes, no NUL; empty only if allowed. */
static int get_str(const msgpack_object *v, char *dst, size_t max, int empty_ok) {
    if (v->type != MSGPACK_OBJECT_STR || v->via.str.size >= max ||
        (v->via.str.size == 0 && !empty_ok) || memchr(v->via.str.ptr, '\0', v->via.str.size))
        return -1;
    memcpy(dst, v->via.str.ptr, v->via.str.size);
    dst[v->via.str.size] = '\0';
    return 0;
}

static const char *kind_desc(enum field_kind k) {
    switch (k) {
    case K_U32:
        return "an unsigned 32-bit integer";
    case K_U64:
        return "an unsigned 64-bit integer";
    case K_PID:
        return "a pid (1..INT32_MAX)";
    case K_CODE:
        return "a negative 32-bit integer";
    case K_PHASE:
        return "1 (setup) or 2 (process)";
    case K_PATH:
        return "a string of 1..255 bytes without NUL";
    case K_TEXT:
        return "a string shorter than REEL_ERROR_TEXT_MAX without NUL";
    case K_TASK:
        return "a 16-byte bin";
    case K_PLACE:
        return "a string of 1..255 bytes without NUL";
    }
    return "?";
}

/* Reads the value v of field f into m; -1 if it has the wrong type or range. */
static int get_field(const msgpack_object *v, const ctl_field *f, reel_ctl_msg *m) {
    char *p = (char *)m + f->off;
    int pos = v->type == MSGPACK_OBJECT_POSITIVE_INTEGER;
    uint32_t u32;
    int32_t i32;
    switch (f->kind) {
    case K_U32:
    case K_PHASE:
        if (!pos || v->via.u64 > UINT32_MAX)
            return -1;
        u32 = (uint32_t)v->via.u64;
        if (f->kind == K_PHASE && u32 != 1 && u32 != 2)
            return -1;
        memcpy(p, &u32, sizeof u32);
        return 0;
    case K_U64:
        if (!pos)
            return -1;
        memcpy(p, &v->via.u64, sizeof v->via.u64);
        return 0;
    case K_PID:
        if (!pos || v->via.u64 < 1 || v->via.u64 > INT32_MAX)
            return -1;
        i32 = (int32_t)v->via.u64;
        memcpy(p, &i32, sizeof i32);
        return 0;
    case K_CODE:
        /* msgpack-c reports every value >= 0 as POSITIVE_INTEGER. */
        if (v->type != MSGPACK_OBJECT_NEGATIVE_INTEGER || v->via.i64 < INT32_MIN)
            return -1;
        i32 = (int32_t)v->via.i64;
        memcpy(p, &i32, sizeof i32);
        return 0;
    case K_PATH:
        return get_str(v, p, sizeof m->path, 0);
    case K_TEXT:
        return get_str(v, p, sizeof m->text, 1);
    case K_PLACE:
        return get_str(v, p, REEL_CTL_PATH_MAX, 0);
    case K_TASK:
        if (v->type != MSGPACK_OBJECT_BIN || v->via.bin.size != sizeof m->task.bytes)
            return -1;
        memcpy(m->task.bytes, v->via.bin.ptr, sizeof m->task.bytes);
        m->has_task = 1;
        return 0;
    }
    return -1;
}

static int decode_map(const msgpack_object *root, reel_ctl_msg *m) {
    if (root->type != MSGPACK_OBJECT_MAP || root->via.map.size == 0)
        return reel__fail(-EBADMSG, "control message: not a map");
    const msgpack_object_kv *kv = root->via.map.ptr;
    if (kv[0].key.type != MSGPACK_OBJECT_STR || !key_is(&kv[0].key, TYPE_KEY))
        return reel__fail(-EBADMSG, "control message: first key is not \"t\"");
    if (kv[0].val.type != MSGPACK_OBJECT_POSITIVE_INTEGER || !type_known(kv[0].val.via.u64))
        return reel__fail(-EBADMSG, "control message: unknown type");
    m->type = (uint32_t)kv[0].val.via.u64;
    const ctl_type *t = &types[m->type];

    uint32_t seen = 0;
    for (uint32_t i = 1; i < root->via.map.size; i++) {
        const msgpack_object *k = &kv[i].key;
        if (k->type != MSGPACK_OBJECT_STR)
            return reel__fail(-EBADMSG, "control message %s: a key is not a string", t->name);
        if (key_is(k, TYPE_KEY))
            return reel__fail(-EBADMSG, "control message %s: key \"t\" twice", t->name);
        size_t f = 0;
        while (f < N_FIELDS && !key_is(k, fields[f].key))
            f++;
        if (f == N_FIELDS || !(t->fields & 1u << f))
            continue; /* not ours, or a later version's: skip it */
        if (seen & 1u << f)
            return reel__fail(-EBADMSG, "control message %s: key \"%s\" twice", t->name,
                              fields[f].key);
        if (get_field(&kv[i].val, &fields[f], m))
            return reel__fail(-EBADMSG, "control message %s: \"%s\" is not %s", t->name,
                              fields[f].key, kind_desc(fields[f].kind));
        seen |= 1u << f;
    }
    uint32_t missing = t->fields & ~(uint32_t)F_OPTIONAL & ~seen;
    if (missing) {
        size_t f = 0;
        while (!(missing & 1u << f))
            f++;
        return reel__fail(-EBADMSG, "control message %s: no \"%s\"", t->name, fields[f].key);
    }
    if (m->has_task && m->phase != 2)
        return reel__fail(-EBADMSG, "control message %s: a task with a setup error", t->name);
    return 0;
}

int reel__ctl_decode(const void *buf, size_t len, reel_ctl_msg *out) {
    if (!buf || !out)
        return reel__fail(-EBADMSG, "control message: NULL buffer");
    if (len == 0 || len > REEL_CTL_MAX)
        return reel__fail(-EBADMSG, "control message: %zu bytes", len);
    /* Bound every declared count by the bytes present before msgpack-c
     * allocates from it. */
    size_t used;
    if (reel__msgpack_check(buf, len, &used) != 0)
        return reel__fail(-EBADMSG, "control message: not msgpack, or a declared size exceeds "
                                    "the message");
    if (used != len)
        return reel__fail(-EBADMSG, "control message: %zu bytes after the message", len - used);

    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    int rc;
    if (msgpack_unpack_next(&up, buf, len, &off) != MSGPACK_UNPACK_SUCCESS || off != len) {
        /* Well-formed by the check but refused by msgpack-c: nesting deeper
         * than its stack, or out of memory. */
        rc = reel__fail(-EBADMSG, "control message: msgpack-c could not unpack it");
    } else {
        reel_ctl_msg m;
        memset(&m, 0, sizeof m);
        rc = decode_map(&up.data, &m);
        if (rc == 0)
            *out = m;
    }
    msgpack_unpacked_destroy(&up);
    return rc;
}

/* ---- the socket ---------------------------------------------------------- */

typedef union ctl_cmsg {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int) * REEL_CTL_MAX_FDS)];
} ctl_cmsg;

int reel__ctl_send(int sock, const reel_ctl_msg *msg, const int *fds, int nfds) {
    char buf[CTL_ENCODED_MAX];
    size_t len;
    int rc = reel__ctl_encode(msg, buf, sizeof buf, &len);
    if (rc)
        return rc;
    if (nfds != types[msg->type].nfds || (nfds > 0 && !fds))
        return -EINVAL;
    for (int i = 0; i < nfds; i++)
        if (fds[i] < 0)
            return -EINVAL;

    struct iovec iov = {.iov_base = buf, .iov_len = len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    ctl_cmsg cm;
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
    /* A SEQPACKET send is all or nothing: no partial writes to resume. */
    for (;;) {
        if (sendmsg(sock, &mh, MSG_NOSIGNAL) >= 0)
            return 0;
        if (errno == EINTR)
            continue;
        /* A peer that closed with packets of ours unread: ECONNRESET, once. */
        return errno == ECONNRESET ? -EPIPE : -errno;
    }
}

static void close_all(int *fds, int *nfds) {
    for (int i = 0; i < *nfds; i++)
        close(fds[i]);
    *nfds = 0;
}

/* Takes every descriptor the kernel installed for this packet into fds. The
 * control buffer holds REEL_CTL_MAX_FDS, so more arrive only as MSG_CTRUNC;
 * the bound below is for fds[]'s sake. */
static void take_fds(struct msghdr *mh, int *fds, int *nfds) {
    for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        const unsigned char *data = CMSG_DATA(c);
        for (size_t i = 0; i < n; i++) {
            int fd;
            memcpy(&fd, data + i * sizeof fd, sizeof fd);
            if (*nfds < REEL_CTL_MAX_FDS)
                fds[(*nfds)++] = fd;
            else
                close(fd);
        }
    }
}

/* Waits until sock is readable or deadline_ns (CLOCK_MONOTONIC; 0: forever)
 * passes. 0, -ETIMEDOUT, or -errno. */
static int wait_readable(int sock, uint64_t deadline_ns) {
    for (;;) {
        int ms = -1;
        if (deadline_ns) {
            uint64_t now = reel__now_ns(CLOCK_MONOTONIC);
            if (now >= deadline_ns)
                return -ETIMEDOUT;
            uint64_t left = (deadline_ns - now + 999999) / 1000000;
            ms = left > INT32_MAX ? INT32_MAX : (int)left;
        }
        struct pollfd p = {.fd = sock, .events = POLLIN};
        int n = poll(&p, 1, ms);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            continue; /* the deadline is checked above */
        return p.revents & POLLNVAL ? -EBADF : 0;
    }
}

/* recvmsg returned 0: the peer closed, or sent an empty packet. A closed peer
 * leaves our end shut for reading, which poll reports as POLLRDHUP. */
static int peer_closed(int sock) {
    struct pollfd p = {.fd = sock, .events = POLLRDHUP};
    return poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP));
}

int reel__ctl_recv(int sock, reel_ctl_msg *out, int *fds_out, int *nfds, int timeout_ms) {
    if (nfds)
        *nfds = 0;
    if (!out || !fds_out || !nfds)
        return -EINVAL;
    if (sock < 0)
        return -EBADF; /* poll would ignore it and wait out the timeout */
    uint64_t deadline_ns = 0;
    if (timeout_ms > 0)
        deadline_ns = reel__now_ns(CLOCK_MONOTONIC) + (uint64_t)timeout_ms * 1000000u;

    /* A longer packet comes back cut to this size, flagged MSG_TRUNC, its
     * tail discarded by the kernel. */
    char buf[REEL_CTL_MAX];
    struct iovec iov = {.iov_base = buf, .iov_len = sizeof buf};
    ctl_cmsg cm;
    struct msghdr mh;
    ssize_t n;
    for (;;) {
        if (timeout_ms != 0) {
            int rc = wait_readable(sock, deadline_ns);
            if (rc)
                return rc;
        }
        memset(&mh, 0, sizeof mh);
        mh.msg_iov = &iov;
        mh.msg_iovlen = 1;
        mh.msg_control = cm.buf;
        mh.msg_controllen = sizeof cm.buf;
        n = recvmsg(sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n >= 0)
            break;
        /* ECONNRESET: the peer closed with packets of ours unread. The
         * kernel reports it once, ahead of the packets the peer sent before
         * closing; read those first, then the end of file. */
        if (errno == EINTR || errno == ECONNRESET)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (timeout_ms == 0)
                return -EAGAIN;
            continue; /* another reader took it: wait again */
        }
        return -errno;
    }

    take_fds(&mh, fds_out, nfds);
    reel_ctl_msg m;
    int rc = 0;
    if (mh.msg_flags & MSG_TRUNC)
        rc = reel__fail(-EMSGSIZE, "control message: longer than %d bytes", REEL_CTL_MAX);
    else if (mh.msg_flags & MSG_CTRUNC)
        rc = reel__fail(-EMSGSIZE, "control message: more than %d descriptors", REEL_CTL_MAX_FDS);
    else if (n == 0)
        rc = peer_closed(sock) ? reel__fail(-ECONNRESET, "control socket: the peer closed it")
                               : reel__fail(-EBADMSG, "control message: an empty packet");
    else if ((rc = reel__ctl_decode(buf, (size_t)n, &m)) == 0 && *nfds != types[m.type].nfds)
        rc = reel__fail(-EBADMSG, "control message %s: %d descriptors, expected %d",
                        types[m.type].name, *nfds, types[m.type].nfds);
    if (rc) {
        close_all(fds_out, nfds);
        return rc;
    }
    *out = m;
    return 0;
}
