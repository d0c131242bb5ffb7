/* reel_strerror() and the per-thread detail sentence behind reel_last_error(). */
#include "store_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const reel_error_messages[REEL_ERRNO_COUNT_] = {
#define REEL_ERRNO_MSG_(name, msg) msg,
    REEL_ERRNO_MAP(REEL_ERRNO_MSG_)
#undef REEL_ERRNO_MSG_
};

static _Thread_local char reel_error_detail[512];

REEL_API const char *reel_strerror(int err) {
    if (err == 0)
        return "success";
    if (err <= -4000 && err > -4000 - REEL_ERRNO_COUNT_)
        return reel_error_messages[-4000 - err];
    if (err < 0 && err > -4000) {
        /* strerrordesc_np is thread-safe and static, unlike strerror(). */
        const char *s = strerrordesc_np(-err);
        if (s)
            return s;
    }
    return "unknown error";
}

REEL_API const char *reel_last_error(void) {
    return reel_error_detail;
}

void reel__clear_error(void) {
    reel_error_detail[0] = '\0';
}

int reel__fail(int err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reel_error_detail, sizeof reel_error_detail, fmt, ap);
    va_end(ap);
    return err;
}

int reel__null_arg(const char *fn, const char *arg) {
    return reel__fail(-EINVAL, "%s: %s is NULL", fn, arg);
}
