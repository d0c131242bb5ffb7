#!/usr/bin/env python3
"""Ray beside `reel-bench store`: ray.put and ray.get, one process, per size.

For each size (64 B, 1 KiB, 4 KiB, 64 KiB, 1 MiB, 16 MiB, 64 MiB; --quick:
64 B, 4 KiB, 1 MiB, 64 MiB), with a numpy uint8 array of that size (the
payload whose ray.get is zero-copy, as reel's get is):

  put SIZE            op/s: ray.put(array) into the object store. As reel
                      times create + memcpy + seal and deletes outside the
                      timed region, the refs of a batch (at most 256 KiB of
                      objects and 256 objects, at least one) are dropped
                      between batches,
                      untimed. p50/p99 from a second pass timing each put.
  put SIZE bandwidth  GB/s (10^9 B/s): the same puts, bytes per second.
  get+release SIZE    op/s: ray.get(ref) of one existing object, the result
                      dropped at the next get (its release). p50/p99 from a
                      second pass.

Before anything is timed, the object store is filled once with 64 MiB
objects, which are then dropped (reel's store is pre-faulted at creation).

Options (reel-bench --vs-ray passes on its own; a bad value exits with 2):

  --sizes LIST      the sizes instead of the ones above: bytes or binary
                    units, comma-separated (64,4096,1048576 or 64,4K,1M),
                    as reel-bench --sizes; each at most half of Ray's object
                    store (--object-store-mib)
  --iterations N    operations in each timed pass (puts, per-put latencies,
                    gets, per-get latencies), with no time cap, as
                    reel-bench --iterations

Usage: python3 bench/ray/store.py [--quick] [--sizes LIST] [--iterations N]
       > ray-store.json
"""

import sys
import time

import numpy as np

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import common  # noqa: E402
from common import MiB, Budget, format_size, now_ns, summary_us

SIZES = [64, 1024, 4096, 64 * 1024, MiB, 16 * MiB, 64 * MiB]
QUICK_SIZES = [64, 4096, MiB, 64 * MiB]
BATCH_BYTES = 256 * 1024
GROUP = "put/get, one process"


def budget(b, size):
    """As reel-bench store's count_bytes(): a byte budget spread over the
    size within [lo, hi], here also capped in time; --iterations sets the
    count and lifts the cap."""
    if b.args.iterations:
        return Budget(b.args.iterations, 0)
    total = (1024 if b.quick else 16384) * MiB
    lo, hi = (16, 50000) if b.quick else (64, 200000)
    n = min(max(total // size, lo), hi)
    return Budget(n, 0.3 if b.quick else 1.5, lo=4 if b.quick else 16)


def puts(ray, arr, bud, per_op):
    """Puts arr in batches; returns (count, timed ns, per-op samples)."""
    batch = max(1, min(256, BATCH_BYTES // arr.nbytes))
    done, timed, samples = 0, 0, []
    while not bud.over(done, timed):
        refs = []
        if per_op:
            for _ in range(batch):
                t = now_ns()
                refs.append(ray.put(arr))
                samples.append(now_ns() - t)
            timed += sum(samples[-batch:])
        else:
            t = now_ns()
            for _ in range(batch):
                refs.append(ray.put(arr))
            timed += now_ns() - t
        done += batch
        del refs  # untimed, as reel's deletes
    return done, timed, samples


def gets(ray, ref, bud, per_op):
    done, timed, samples = 0, 0, []
    x = None
    t0 = now_ns()
    while not bud.over(done, timed):
        if per_op:
            for _ in range(64):
                t = now_ns()
                x = ray.get(ref)
                samples.append(now_ns() - t)
            timed += sum(samples[-64:])
        else:
            t = now_ns()
            for _ in range(64):
                x = ray.get(ref)
            timed += now_ns() - t
        done += 64
    del x
    return done, timed, samples


def pretouch(b):
    """Fills Ray's object store once with 64 MiB objects and drops them,
    before anything is timed: reel's store is pre-faulted at creation, and
    Ray's first puts into fresh shared memory run at a fifth of the speed of
    later ones here."""
    t = now_ns()
    blob = np.zeros(64 * MiB, dtype=np.uint8)
    k = max(1, int(b.args.object_store_mib * 0.85) // 64)
    keep = [b.ray.put(blob) for _ in range(k)]
    del keep
    time.sleep(0.2)
    b.note("object store pre-touched: %d x 64 MiB put and dropped before anything is timed "
           "(%.1f s)" % (k, (now_ns() - t) / 1e9))


def measure(b):
    ray = b.ray
    sizes = b.args.sizes or (QUICK_SIZES if b.quick else SIZES)
    b.progress("pre-touching the object store")
    pretouch(b)
    b.note("payload: numpy uint8 arrays (zero-copy ray.get); refs of a put batch dropped "
           "untimed between batches of at most 256 KiB and 256 objects")
    for size in sizes:
        name = format_size(size)
        b.progress("put/get %s", name)
        arr = np.full(size, 0xA5, dtype=np.uint8)
        bud = budget(b, size)
        puts(ray, arr, Budget(max(2, bud.n // 10), bud.cap_ns / 1e10, 2), False)  # warm-up
        n, t, _ = puts(ray, arr, bud, False)
        _, _, lat = puts(ray, arr, bud, True)
        rate = n * 1e9 / t
        _, p50, p99 = summary_us(lat)
        b.row("ray.put(np array of %s)" % name, "put %s" % name, "op/s", rate, p50, p99)
        b.row("ray.put(np array of %s), bytes/s" % name, "put %s bandwidth" % name, "GB/s",
              rate * size / 1e9)

        ref = ray.put(arr)
        gets(ray, ref, Budget(1000, 0.05, 64), False)  # warm-up
        gbud = Budget(2000000, 0.3 if b.quick else 1.5, 64)
        if b.args.iterations:
            gbud = Budget(b.args.iterations, 0)
        n, t, _ = gets(ray, ref, gbud, False)
        _, _, lat = gets(ray, ref, gbud, True)
        _, p50, p99 = summary_us(lat)
        b.row("ray.get(ref) of one existing %s object, dropped at the next" % name,
              "get+release %s" % name, "op/s", n * 1e9 / t, p50, p99)
        del ref


def options(p):
    common.size_options(p, "object sizes, comma-separated: 64,4096,1048576 (or 64,4K,1M)",
                        "operations per measurement, no time cap")


def check(b):
    half = b.args.object_store_mib * MiB // 2
    for size in b.args.sizes or []:
        if size > half:
            b.usage("argument --sizes: %d is larger than half of Ray's object store (%d MiB: "
                    "--object-store-mib)" % (size, b.args.object_store_mib))


if __name__ == "__main__":
    sys.exit(common.main("Ray beside reel-bench store", measure, options, check))
