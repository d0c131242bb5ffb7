#!/usr/bin/env python3
"""Ray beside `reel-bench actors`: actor calls 1:1, 1:n and n:n, and an idle
pool's CPU time.

The actor's method does nothing and returns None (reel's no-op stage makes no
output). An argument is put once (ray.put of a numpy uint8 array) and its ref
passed to every call that names it, so that Ray resolves it in the worker
(zero-copy from the object store), as reel's worker gets its input by ID.
Every actor is @ray.remote(num_cpus=0), as in Ray's own microbenchmark.

  round trip, ARG     us: ray.get(actor.noop.remote(...)), one call at a time
                      (value: mean; p50, p99)
  1:1, ARG            op/s: pipelined, up to 1024 calls outstanding (in
                      chunks of 128: the oldest chunk is awaited with
                      ray.get, then the next submitted)
  1:n, no arg         op/s: one driver, n actors (n = 2, 4), calls dealt out
                      round-robin, pipelined as above
  n:n, ARG           op/s, summed: n driver actors (Ray's own n:n
                      microbenchmark drives from actors too; a second
                      driver process would need a cluster to connect to),
                      each with its own actor, pipelined as above, started
                      together; the sum of each driver's calls/s. With an
                      argument, each driver gets the argument's ref (put
                      once by this driver) and passes it to every call; as
                      reel-bench, --quick measures n:n with an argument for
                      the largest size only
  idle: the 2 workers s of CPU: 2 actors ran 20,000 calls (--quick 2,000),
                      then from 200 ms on, their processes' utime + stime
                      over 5 s (--quick 1 s); "schedstat": the same summed
                      over every thread's /proc/PID/task/TID/schedstat (a
                      Ray worker has a dozen threads)
  idle: Ray's other   the same for raylet, GCS and every other process under
  processes           this driver (idle workers)

The 4 actors and 4 driver actors start once, up front, and serve every
measurement. ARG is "no arg" or "SIZE arg" for each argument size (by
default 64 B and 1 MiB: "64 B arg", "1 MiB arg"). Round trips and 1:1 run
in turns (ROUNDS), so the variants see the same machine, as in reel-bench.

Options (reel-bench --vs-ray passes on its own; a bad value exits with 2):

  --sizes LIST      the argument sizes instead of 64 B and 1 MiB: bytes or
                    binary units, comma-separated (64,1048576 or 64,1M), as
                    reel-bench actors --sizes; at most 29 sizes (the rows
                    must fit bench_ray's 128), each at most half of Ray's
                    object store (--object-store-mib)
  --iterations N    calls per measurement (round trips, pipelined runs),
                    with no time cap, as reel-bench --iterations

Usage: python3 bench/ray/actors.py [--quick] [--sizes LIST] [--iterations N]
       > ray-actors.json
"""

import collections
import os
import sys
import time

import numpy as np
import ray

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import common  # noqa: E402
from common import MiB, Budget, format_size, now_ns, summary_us

WINDOW = 1024  # calls outstanding, as reel-bench actors
CHUNK = 128
ROUNDS = 5
SIZES = [64, MiB]
SIZES_MAX = 29  # 4 * sizes + 10 rows at most, within MAX_ROWS (128)
IDLE_SETTLE_S = 0.2


@ray.remote(num_cpus=0)
class Noop:
    def noop(self, *args):
        return None

    def pid(self):
        return os.getpid()


def pipelined(submit, n, cap_ns, window=WINDOW, chunk=CHUNK):
    """Keeps up to window calls outstanding until n are done or cap_ns has
    passed (then what is outstanding is awaited too). Returns (done, ns).
    Runs in the driver and inside the n:n driver actors."""
    q = collections.deque()
    submitted = done = 0
    stop_at = n
    t0 = time.perf_counter_ns()
    while done < stop_at:
        while submitted < stop_at and submitted - done < window:
            k = min(chunk, stop_at - submitted, window - (submitted - done))
            q.append([submit() for _ in range(k)])
            submitted += k
        c = q.popleft()
        ray.get(c)
        done += len(c)
        if cap_ns and time.perf_counter_ns() - t0 > cap_ns:
            stop_at = submitted
    return done, time.perf_counter_ns() - t0


@ray.remote(num_cpus=0)
class Driver:
    """One of the n:n drivers: calls its own actor, pipelined."""

    def run(self, target, n, cap_ns, args=()):
        # args: [] or [ref]: the ref, nested in a list, reaches this actor
        # unresolved and is resolved in target's worker at each call
        return pipelined(lambda: target.noop.remote(*args), n, cap_ns)


def round_trips(actor, args, bud, lat):
    done, t0 = 0, now_ns()
    while not bud.over(done, now_ns() - t0):
        t = now_ns()
        ray.get(actor.noop.remote(*args))
        lat.append(now_ns() - t)
        done += 1
    return done


def plan(b, full, full_s, quick, quick_s):
    """As reel-bench actors' plan(): --iterations sets the count and lifts
    the time cap."""
    if b.args.iterations:
        return Budget(b.args.iterations, 0)
    return Budget(quick if b.quick else full, quick_s if b.quick else full_s, lo=1)


def measure_args(b, actor, args_list):
    """Round trips and 1:1 pipelined, each argument, in turns."""
    rb = plan(b, 200000, 2.0, 20000, 0.3)
    pb = plan(b, 5000000, 3.0, 500000, 0.5)
    nv = len(args_list)
    lat = [[] for _ in range(nv)]
    tasks, el = [0] * nv, [0] * nv
    for args in args_list:  # warm-up
        round_trips(actor, args, Budget(200, 0.05), [])
        pipelined(lambda: actor.noop.remote(*args), 2000, int(0.05e9))
    rounds = 2 if b.quick else ROUNDS
    for r in range(rounds):
        b.progress("1:1, every argument, round %d of %d", r + 1, rounds)
        for a, args in enumerate(args_list):
            round_trips(actor, args, rb.share(rounds), lat[a])
            ps = pb.share(rounds)
            n, e = pipelined(lambda: actor.noop.remote(*args), ps.n, ps.cap_ns)
            tasks[a] += n
            el[a] += e
    return lat, tasks, el


def measure_1n(b, actors):
    pb = plan(b, 5000000, 3.0, 500000, 0.5)
    k = [0]

    def submit():
        k[0] += 1
        return actors[k[0] % len(actors)].noop.remote()

    pipelined(submit, 2000, int(0.05e9))
    n, e = pipelined(submit, pb.n, pb.cap_ns)
    return n * 1e9 / e


def measure_nn(b, drivers, actors, args=()):
    pb = plan(b, 5000000, 3.0, 500000, 0.5)
    pairs = list(zip(drivers, actors))
    args = list(args)
    ray.get([d.run.remote(a, 2000, int(0.1e9), args) for d, a in pairs])  # warm-up
    res = ray.get([d.run.remote(a, pb.n, pb.cap_ns, args) for d, a in pairs])
    return sum(done * 1e9 / ns for done, ns in res)


def proc_cpu(pid):
    """utime + stime (clock ticks, every thread) of pid, and the run time (ns)
    of all its threads from /proc/PID/task/TID/schedstat (-1 if none)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    run_ns = -1
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            try:
                with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                    run_ns = max(run_ns, 0) + int(f.read().split()[0])
            except OSError:  # the thread ended meanwhile
                pass
    except OSError:
        pass
    return ticks, run_ns


def descendants(root):
    """Every process under root (by parent pid), from /proc."""
    parent = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    parent[int(d)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        out += kids
        todo += kids
    return out


def cpu_of(pids):
    ticks = run = 0
    for p in pids:
        try:
            t, r = proc_cpu(p)
        except OSError:  # gone meanwhile
            continue
        ticks += t
        run += max(r, 0)
    return ticks, run


def measure_idle(b, actors):
    idle_s = 1.0 if b.quick else 5.0
    b.progress("idle pool of 2 actors, %.0f s", idle_s)
    k = [0]

    def submit():
        k[0] += 1
        return actors[k[0] % 2].noop.remote()

    pipelined(submit, 2000 if b.quick else 20000, 0)
    pids = ray.get([a.pid.remote() for a in actors])
    time.sleep(IDLE_SETTLE_S)
    others = [p for p in descendants(os.getpid()) if p not in pids]
    w0, o0 = cpu_of(pids), cpu_of(others)
    time.sleep(idle_s)
    w1, o1 = cpu_of(pids), cpu_of(others)
    hz = os.sysconf("SC_CLK_TCK")
    what = "2 idle actors, %.0f s from %.0f ms after their last call" % (idle_s, IDLE_SETTLE_S * 1e3)
    b.row(what + ", utime+stime", "idle: the 2 workers", "s", (w1[0] - w0[0]) / hz)
    if w1[1] >= 0:
        b.row(what + ", schedstat of every thread", "idle: the 2 workers, schedstat", "s",
              (w1[1] - w0[1]) / 1e9)
    b.row("raylet, GCS, idle workers, over the same %.0f s, utime+stime" % idle_s,
          "idle: Ray's other processes", "s", (o1[0] - o0[0]) / hz)
    if o1[1] >= 0:
        b.row("raylet, GCS, idle workers, over the same %.0f s, schedstat" % idle_s,
              "idle: Ray's other processes, schedstat", "s", (o1[1] - o0[1]) / 1e9)
    b.note("idle: %d other Ray processes under the driver (raylet, GCS, idle workers)"
           % len(others))


def measure(b):
    args_list = [()]
    labels = ["no arg"]
    sizes = b.args.sizes or SIZES
    for size in sizes:
        args_list.append((ray.put(np.full(size, 0xA5, dtype=np.uint8)),))
        labels.append("%s arg" % format_size(size))
    b.note("actors @ray.remote(num_cpus=0); arguments put once (numpy uint8), their refs "
           "passed; pipelined: up to %d calls outstanding, awaited in chunks of %d"
           % (WINDOW, CHUNK))
    # every process up front (each a new Python worker: about a second here),
    # reused by every measurement
    b.progress("starting 4 actors and 4 driver actors")
    pool = [Noop.remote() for _ in range(4)]
    drivers = [Driver.remote() for _ in range(4)]
    ray.get([a.pid.remote() for a in pool] + [d.run.remote(pool[0], 1, 0) for d in drivers])

    lat, tasks, el = measure_args(b, pool[0], args_list)
    for a, label in enumerate(labels):
        mean, p50, p99 = summary_us(lat[a])
        b.row("ray.get(actor.noop.remote(%s)), one at a time" % ("" if a == 0 else "ref"),
              "round trip, %s" % label, "us", mean, p50, p99)
    for a, label in enumerate(labels):
        b.row("actor.noop.remote(%s), up to %d outstanding" % ("" if a == 0 else "ref", WINDOW),
              "1:1, %s" % label, "op/s", tasks[a] * 1e9 / el[a])

    for n in (2, 4):
        b.progress("1:%d", n)
        rate = measure_1n(b, pool[:n])
        b.row("one driver, %d actors round-robin, up to %d outstanding" % (n, WINDOW),
              "1:%d, no arg" % n, "op/s", rate)
    # n:n with every argument (--quick: no argument and the largest size)
    nn_args = [0] + ([len(sizes)] if b.quick else list(range(1, len(sizes) + 1)))
    for a in nn_args:
        for n in (2, 4):
            b.progress("%d:%d, %s", n, n, labels[a])
            rate = measure_nn(b, drivers[:n], pool[:n], args_list[a])
            b.row("%d driver actors, each its own actor%s, summed"
                  % (n, "" if a == 0 else ", ref of a %s array" % format_size(sizes[a - 1])),
                  "%d:%d, %s" % (n, n, labels[a]), "op/s", rate)
    for d in drivers:
        ray.kill(d)
    measure_idle(b, pool[:2])


def options(p):
    common.size_options(p, "argument sizes, comma-separated: 64,1048576 (or 64,1M)",
                        "calls per measurement, no time cap")


def check(b):
    sizes = b.args.sizes or []
    if len(sizes) > SIZES_MAX:
        b.usage("argument --sizes: more than %d sizes" % SIZES_MAX)
    half = b.args.object_store_mib * MiB // 2
    for size in sizes:
        if size > half:
            b.usage("argument --sizes: %d is larger than half of Ray's object store (%d MiB: "
                    "--object-store-mib)" % (size, b.args.object_store_mib))


if __name__ == "__main__":
    sys.exit(common.main("Ray beside reel-bench actors", measure, options, check))
