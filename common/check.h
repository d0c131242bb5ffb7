/*
 * check.h - the error sentence and argument checks every layer of reel uses.
 *
 * Internal: never installed. The functions live in objstore/errors.c and are
 * exported from libreel (REEL_INTERNAL) so that the stages library, built on
 * top of it, reports its failures through the same reel_last_error().
 */
#ifndef REEL_COMMON_CHECK_H
#define REEL_COMMON_CHECK_H

#ifndef REEL_INTERNAL
#define REEL_INTERNAL __attribute__((visibility("default")))
#endif

/* Empties the calling thread's reel_last_error() sentence. */
REEL_INTERNAL void reel__clear_error(void);
/* Sets the calling thread's reel_last_error() sentence; returns err. */
REEL_INTERNAL int reel__fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* -EINVAL, with "<fn>: <arg> is NULL" as the last error. */
REEL_INTERNAL int reel__null_arg(const char *fn, const char *arg);

/* Every public call checks the pointers it needs first, before any lock is
 * taken or anything is read through them: a NULL must never crash a caller's
 * process inside the store's lock, where the next process would have to
 * recover it. arg is the parameter's name in the public header. */
#define REEL_NEED(ptr, arg)                                                                        \
    do {                                                                                           \
        if (!(ptr))                                                                                \
            return reel__null_arg(__func__, arg);                                                  \
    } while (0)

/* The same for a call that returns no code: fail is returned instead (empty
 * for a void function). */
#define REEL_NEED_OR(ptr, arg, fail)                                                               \
    do {                                                                                           \
        if (!(ptr)) {                                                                              \
            reel__null_arg(__func__, arg);                                                         \
            return fail;                                                                           \
        }                                                                                          \
    } while (0)

#endif
