/*
 * tsan_criterion.c - lets Criterion start under ThreadSanitizer. Linked into
 * the test programs of a REEL_TSAN build only.
 *
 * Criterion (through BoxFort) maps its "inheritable arena" at a random
 * address drawn with rand_r() from 0x200000000000..0x7f0000000000, and
 * gives up after ten draws that land on memory already mapped. ThreadSanitizer
 * reserves nearly all of that range for its shadow and metadata, so the ten
 * draws almost always fail and every test program aborts with "Could not
 * initialize inheritable arena: Resource temporarily unavailable"
 * (Snaipe/Criterion#274). This rand_r() - the program's own definition comes
 * before libc's for libcriterion's calls - keeps drawing until the address
 * it would give is free (mincore() says ENOMEM: nothing mapped there; under
 * ThreadSanitizer that is application memory). Nothing else in reel or its
 * tests calls rand_r().
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

/* BoxFort's arena placement on 64-bit Linux (src/arena.c): base + r * step,
 * r masked, below the limit; the arena starts at 32 pages and may grow. */
#define ARENA_BASE  0x200000000000ull
#define ARENA_LIMIT 0x7f0000000000ull
#define ARENA_STEP  (1ull << 24)
#define ARENA_MASK  0x3fffffu
#define ARENA_PROBE (1ull << 20) /* room left free for it to grow in place */

static int mapped(uintptr_t addr) {
    unsigned char v;
    return mincore((void *)addr, 4096, &v) == 0 || errno != ENOMEM;
}

static int draw(unsigned int *seed) {
    /* xorshift32: any sequence will do, as long as it depends on the seed. */
    unsigned int x = *seed ? *seed : 0x9e3779b9u;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *seed = x;
    return (int)(x & RAND_MAX);
}

int rand_r(unsigned int *seed) {
    for (int tries = 0; tries < 1 << 20; tries++) {
        int r = draw(seed);
        uintptr_t base = ARENA_BASE + ((uintptr_t)r & ARENA_MASK) * ARENA_STEP;
        if (base + ARENA_PROBE > ARENA_LIMIT)
            continue;
        int free_here = 1;
        for (uintptr_t a = base; a < base + ARENA_PROBE && free_here; a += 4096)
            free_here = !mapped(a);
        if (free_here)
            return r;
    }
    return draw(seed);
}
