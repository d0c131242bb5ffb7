/* Spin-then-sleep waiting on a sequence word in shared memory. The waker
 * bumps the word and calls FUTEX_WAKE only when the sleeper count says
 * someone sleeps: a cross-core futex wake costs ~47 us here, a spin hand-off
 * ~0.3 us. Both sides use seq_cst so that either the waker sees the sleeper
 * or the sleeper sees the bump (no lost wake-up). */
#include "store_internal.h"

#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long futex(_Atomic uint32_t *addr, int op, uint32_t val, const struct timespec *ts) {
    return syscall(SYS_futex, (uint32_t *)addr, op, val, ts, NULL, 0);
}

void reel__wake_sleepers(_Atomic uint32_t *seq, _Atomic uint32_t *sleepers) {
    if (atomic_load_explicit(sleepers, memory_order_seq_cst) != 0)
        futex(seq, FUTEX_WAKE, INT_MAX, NULL);
}

void reel__wake(_Atomic uint32_t *seq, _Atomic uint32_t *sleepers) {
    atomic_fetch_add_explicit(seq, 1, memory_order_seq_cst);
    reel__wake_sleepers(seq, sleepers);
}

void reel__spin_yield(uint64_t start_ns, uint64_t now_ns) {
    if (now_ns - start_ns >= REEL_SPIN_YIELD_AFTER_NS)
        sched_yield();
}

int reel__wait_change(_Atomic uint32_t *seq, _Atomic uint32_t *sleepers, uint32_t seen,
                      uint64_t spin_ns, uint64_t deadline_ns) {
    uint64_t now = reel__now_ns(CLOCK_MONOTONIC), start = now;
    uint64_t spin_end = now + spin_ns;
    if (deadline_ns && spin_end > deadline_ns)
        spin_end = deadline_ns;
    while (now < spin_end) {
        for (int i = 0; i < 64; i++) {
            if (atomic_load_explicit(seq, memory_order_acquire) != seen)
                return 0;
            reel__cpu_relax();
        }
        now = reel__now_ns(CLOCK_MONOTONIC);
        reel__spin_yield(start, now);
    }
    int rc = 0;
    atomic_fetch_add_explicit(sleepers, 1, memory_order_seq_cst);
    while (atomic_load_explicit(seq, memory_order_seq_cst) == seen) {
        struct timespec ts, *tsp = NULL;
        if (deadline_ns) {
            now = reel__now_ns(CLOCK_MONOTONIC);
            if (now >= deadline_ns) {
                rc = -ETIMEDOUT;
                break;
            }
            uint64_t left = deadline_ns - now;
            ts.tv_sec = (time_t)(left / 1000000000ull);
            ts.tv_nsec = (long)(left % 1000000000ull);
            tsp = &ts;
        }
        futex(seq, FUTEX_WAIT, seen, tsp);
    }
    atomic_fetch_sub_explicit(sleepers, 1, memory_order_seq_cst);
    return rc;
}
