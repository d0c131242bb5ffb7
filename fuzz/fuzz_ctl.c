/* libFuzzer target: reel__ctl_decode, the decoder of every control packet the
 * driver, the zygote and the workers read off their sockets (actors/control.h).
 *
 * Beyond "no crash, no sanitizer report", one property: whatever the decoder
 * accepts, the encoder takes back and the decoder then reads as the same
 * message (decode -> encode -> decode is the identity on accepted input).
 * A decoded message the encoder refuses would be one the runtime could
 * receive but never send: a range check that differs between the two. */
#include "control.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int same(const reel_ctl_msg *a, const reel_ctl_msg *b) {
    /* Field by field: a struct copy need not copy padding. */
    return a->type == b->type && a->actor == b->actor && a->pool == b->pool &&
           a->worker == b->worker && a->generation == b->generation && a->pid == b->pid &&
           a->phase == b->phase && a->code == b->code && a->has_task == b->has_task &&
           memcmp(&a->task, &b->task, sizeof a->task) == 0 && a->done == b->done &&
           a->failed == b->failed && a->busy_ns == b->busy_ns && a->rss == b->rss &&
           strcmp(a->path, b->path) == 0 && strcmp(a->text, b->text) == 0 &&
           strcmp(a->cpus, b->cpus) == 0 && strcmp(a->cvd, b->cvd) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    reel_ctl_msg m;
    if (reel__ctl_decode(data, size, &m) != 0)
        return 0;
    /* Accepted: the strings it wrote must be terminated inside their arrays. */
    if (!memchr(m.path, '\0', sizeof m.path) || !memchr(m.text, '\0', sizeof m.text) ||
        !memchr(m.cpus, '\0', sizeof m.cpus) || !memchr(m.cvd, '\0', sizeof m.cvd)) {
        fprintf(stderr, "fuzz_ctl: a decoded string is not terminated\n");
        abort();
    }
    (void)reel__ctl_type_name(m.type);
    uint8_t buf[REEL_CTL_MAX];
    size_t len = 0;
    int rc = reel__ctl_encode(&m, buf, sizeof buf, &len);
    if (rc != 0) {
        fprintf(stderr, "fuzz_ctl: a decoded %s message does not encode: %d\n",
                reel__ctl_type_name(m.type), rc);
        abort();
    }
    reel_ctl_msg again;
    rc = reel__ctl_decode(buf, len, &again);
    if (rc != 0 || !same(&m, &again)) {
        fprintf(stderr, "fuzz_ctl: a %s message changed on re-encoding (rc %d)\n",
                reel__ctl_type_name(m.type), rc);
        abort();
    }
    return 0;
}
