#!/usr/bin/env python3
"""Ray beside `reel-bench pipeline`: a line of no-op actors, and the
imbalanced 1:4:2 ms pipeline with static actor pools.

8 actors start once, up front, and serve every run (a call sets the cost
of the imbalanced stages). Items are 64-byte numpy arrays put once (ray.put; 256 distinct objects, item
i is object i mod 256). Each stage is an actor (@ray.remote(num_cpus=0))
whose method returns its argument. The driver chains the calls the way Ray
pipelines are written: it passes each stage's result ref straight to the
next stage's call, without waiting (Ray resolves the ref in the next
worker), and keeps a window of items outstanding, awaiting the last stage's
refs oldest first.

  one pool, 1 hop, batch B    items/s: one actor, its method called with B
                              item refs, up to 1024 calls outstanding; from
                              the first call to the last result (the
                              per-hop floor, as reel's `one pool`)
  pipeline, 4 stages, batch B items/s: 4 stages, one actor each, B items per
                              call (B = 16: the first stage gets 16 refs and
                              returns the 16 arrays as one object, which
                              the next stages receive and return), up to
                              1024 items outstanding; counted at the last
                              stage from the result that completes the
                              first tenth of the items to the one that
                              completes the ninth, as reel counts
  pipeline, 4 stages, batch 1, refs forwarded
                              the same, but each call gets [ref] (a list,
                              which Ray does not resolve) and returns it:
                              the reference goes down the line, the item
                              is never fetched (what reel's forward does)
  static A,B,C                items/s: 3 stages whose calls cost 1, 4 and 2
                              ms (spent as --burn says; by default CPU
                              time, computing, as reel-bench pipeline's
                              default --burn cpu), A, B and C
                              actors per stage, item i going to actor
                              i mod A, i mod B, i mod C (each actor runs its
                              calls in order, so this fills them evenly),
                              up to 64 items outstanding; 600 items
                              (--quick 200), counted as above. By default
                              pools 1,4,2 (the best static: model 1000
                              items/s) and 2,2,2 (even: model 500); the
                              figure is named as reel-bench pipeline's row
                              of that allocation ("static 1,4,2"), which
                              reel's "best static (A,B,C)" and "even
                              (A,B,C)" rows also find. Ray has no autoscaler
                              of actor pools in Ray Core.

Options (reel-bench --vs-ray passes on its own; a bad value exits with 2):

  --burn MODE       how an imbalanced call spends its cost, as reel-bench
                    pipeline --burn (bench_pipeline.c's burn()): cpu
                    (default: computing until time.thread_time() has advanced
                    by the cost), sleep (time.sleep to the end, timer slack
                    1 ns), yield (a busy loop on time.perf_counter,
                    os.sched_yield() at every look) or spin (a busy loop on
                    time.perf_counter)
  --allocs LIST     the static allocations to run, semicolon-separated, each
                    A,B,C workers of the 1, 4 and 2 ms stages ("1,4,2;2,2,2",
                    the default); each at least 1, at most 7 in all (as
                    reel-bench pipeline's allocations), none twice

Usage: python3 bench/ray/pipeline.py [--quick] [--burn MODE] [--allocs LIST]
       > ray-pipeline.json
"""

import argparse
import collections
import ctypes
import os
import sys
import time

import numpy as np
import ray

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import common  # noqa: E402
from common import Budget, now_ns

ITEM_SIZE = 64
N_DISTINCT = 256
NOOP_STAGES = 4
BIG_BATCH = 16
WINDOW = 1024  # items (or hop calls) outstanding, no-op runs
IMB_WINDOW = 64  # items outstanding, imbalanced runs
IMB_COST_S = (0.001, 0.004, 0.002)
ALLOCS = ((1, 4, 2), (2, 2, 2))
MAX_WORKERS = 7  # a + b + c of an allocation, at most (bench_pipeline.c)
BURNS = ("cpu", "sleep", "yield", "spin")
BURN_TEXT = {"cpu": "of CPU time, computing", "sleep": "asleep", "yield": "spinning, yielding",
             "spin": "spinning"}
PR_SET_TIMERSLACK = 29


@ray.remote(num_cpus=0)
class Stage:
    def __init__(self):
        self.cost = 0.0
        self.burn = "sleep"

    def set_cost(self, cost_s, burn="sleep"):
        self.cost, self.burn = cost_s, burn
        # a sleeper wakes within microseconds of its cost's end, as reel's
        # burn_setup() makes it (0: the default slack back, for the others)
        ctypes.CDLL(None).prctl(PR_SET_TIMERSLACK, ctypes.c_ulong(1 if burn == "sleep" else 0),
                                ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0))

    def f(self, *items):
        # as bench_pipeline.c's burn(): the cost in wall-clock time, asleep
        # until it has passed, or spinning on the clock (yielding the CPU at
        # every look, or not)
        if self.cost:
            if self.burn == "cpu":
                # the thread's own CPU clock, as reel's burn() in its default
                # mode: the call costs that much CPU however often it is
                # preempted
                end = time.thread_time() + self.cost
                x = 0
                while time.thread_time() < end:
                    for _ in range(64):
                        x = (x * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
            elif self.burn == "sleep":
                end = time.monotonic() + self.cost
                while True:
                    left = end - time.monotonic()
                    if left <= 0:
                        break
                    time.sleep(left)
            elif self.burn == "yield":
                end = time.perf_counter() + self.cost
                while time.perf_counter() < end:
                    os.sched_yield()
            else:
                end = time.perf_counter() + self.cost
                while time.perf_counter() < end:
                    pass
        return items[0] if len(items) == 1 else items


class Counter:
    """Marks when the items out pass a tenth and nine tenths of n."""

    def __init__(self, n):
        self.n, self.out = n, 0
        self.mark = [None, None]  # (ns, items)

    def add(self, k):
        self.out += k
        t = now_ns()
        for m, frac in ((0, 1), (1, 9)):
            if self.mark[m] is None and self.out * 10 >= self.n * frac:
                self.mark[m] = (t, self.out)

    def rate(self):
        (t0, n0), (t1, n1) = self.mark
        return (n1 - n0) * 1e9 / (t1 - t0) if t1 > t0 else 0.0


def drive(submit_item, n, window, chunk, counter=None):
    """Submits items 0..n-1 (submit_item(i) returns the refs that complete
    it and how many items they carry), keeping up to window items
    outstanding, awaiting the oldest chunk at a time. Returns the items done
    (n, or up to a batch more) and the ns from the first submit to the last
    result."""
    q = collections.deque()
    submitted = done = 0
    t0 = now_ns()
    while done < n:
        while submitted < n and submitted - done < window:
            refs, k = [], 0
            while k < chunk and submitted + k < n and submitted + k - done < window:
                r, m = submit_item(submitted + k)
                refs.append(r)
                k += m
            q.append((refs, k))
            submitted += k
        refs, k = q.popleft()
        ray.get(refs)
        done += k
        if counter:
            counter.add(k)
    return done, now_ns() - t0


def noop_runs(b, actors, items):
    stages, hop = actors[:NOOP_STAGES], actors[NOOP_STAGES]
    ray.get([a.set_cost.remote(0.0) for a in actors])
    n = 1000 if b.quick else 5000
    rounds = 1 if b.quick else 3
    best = collections.defaultdict(float)

    def hop_item(batch):
        def submit(i):
            refs = [items[(i + j) % N_DISTINCT] for j in range(batch)]
            return hop.f.remote(*refs), batch
        return submit

    def line_item(batch, boxed=False):
        def submit(i):
            refs = [items[(i + j) % N_DISTINCT] for j in range(batch)]
            r = stages[0].f.remote([refs[0]]) if boxed else stages[0].f.remote(*refs)
            for s in stages[1:]:
                r = s.f.remote(r)
            return r, batch
        return submit

    warm = 300 if b.quick else 1000  # warm-up: every actor, every path
    drive(hop_item(1), warm, WINDOW, 64)
    drive(line_item(1), warm, WINDOW, 64)
    drive(line_item(1, True), warm, WINDOW, 64)
    for r in range(rounds):
        for batch in (1, BIG_BATCH):
            b.progress("no-op: one actor, batch %d, round %d of %d", batch, r + 1, rounds)
            done, ns = drive(hop_item(batch), n, WINDOW * batch, 64 * batch)
            best["hop", batch] = max(best["hop", batch], done * 1e9 / ns)
        for batch, boxed in ((1, False), (BIG_BATCH, False), (1, True)):
            b.progress("no-op: 4 stages, batch %d%s, round %d of %d", batch,
                       ", refs forwarded" if boxed else "", r + 1, rounds)
            c = Counter(n)
            drive(line_item(batch, boxed), n, WINDOW, 64, c)
            best["line", batch, boxed] = max(best["line", batch, boxed], c.rate())
    for batch in (1, BIG_BATCH):
        b.row("one actor, %d item ref%s per call, up to %d calls outstanding"
              % (batch, "s" if batch > 1 else "", WINDOW),
              "one pool, 1 hop, batch %d" % batch, "items/s", best["hop", batch])
    for batch, boxed in ((1, False), (BIG_BATCH, False), (1, True)):
        what = ("4 actors chained, each returns its argument, %d item%s per call, up to %d "
                "outstanding" % (batch, "s" if batch > 1 else "", WINDOW))
        fig = "pipeline, %d stages, batch %d" % (NOOP_STAGES, batch)
        if boxed:
            what = "4 actors chained, each gets [ref] and returns it (never fetched)"
            fig += ", refs forwarded"
        b.row(what, fig, "items/s", best["line", batch, boxed])
    b.note("no-op: %d items per run, best of %d round%s; items/s at the last stage from the "
           "first tenth of the items to the ninth (one pool: whole run)"
           % (n, rounds, "s" if rounds > 1 else ""))


def imbalanced_runs(b, actors, items):
    allocs, burn = b.args.allocs, b.args.burn
    pools, k = [], 0
    for s in range(3):
        most = max(a[s] for a in allocs)
        pools.append(actors[k : k + most])
        k += most
        ray.get([a.set_cost.remote(IMB_COST_S[s], burn) for a in pools[s]])
    n = 200 if b.quick else 600
    for alloc in allocs:
        use = [pools[s][: alloc[s]] for s in range(3)]

        def submit(i):
            r = items[i % N_DISTINCT]
            for s in range(3):
                r = use[s][i % alloc[s]].f.remote(r)
            return r, 1

        text = "%d,%d,%d" % alloc
        b.progress("imbalanced, static %s", text)
        drive(submit, 2 * sum(alloc), IMB_WINDOW, 1)  # warm-up: every actor
        c = Counter(n)
        drive(submit, n, IMB_WINDOW, 1, c)
        model = min(alloc[s] / IMB_COST_S[s] for s in range(3))
        if burn == "cpu":  # the stages share the CPUs, as in reel's model_rate()
            model = min(model, len(os.sched_getaffinity(0)) / sum(IMB_COST_S))
        b.row("3 actor pools of %s, calls of 1:4:2 ms %s (model %.0f items/s)"
              % (text, BURN_TEXT[burn], model), "static %s" % text, "items/s", c.rate())
    b.note("imbalanced, --burn %s: %d items per allocation, up to %d outstanding, dealt "
           "round-robin to each stage's actors; items/s from the first tenth to the ninth"
           % (burn, n, IMB_WINDOW))


def measure(b):
    items = [ray.put(np.full(ITEM_SIZE, i & 255, dtype=np.uint8)) for i in range(N_DISTINCT)]
    # every process up front (each a new Python worker: about a second here);
    # the no-op runs use the first 5, the imbalanced ones all 8
    n = sum(max(a[s] for a in b.args.allocs) for s in range(3))
    b.progress("starting %d actors", n)
    actors = [Stage.remote() for _ in range(max(n, NOOP_STAGES + 1))]
    ray.get([a.set_cost.remote(0.0) for a in actors])
    noop_runs(b, actors, items)
    imbalanced_runs(b, actors, items)


def allocs_arg(text):
    """--allocs: "A,B,C;A,B,C...": workers of each imbalanced stage, each at
    least 1, at most MAX_WORKERS in all, no allocation twice."""
    out = []
    for tok in text.split(";"):
        parts = tok.split(",")
        if len(parts) != 3 or not all(p.isascii() and p.isdigit() for p in parts):
            raise argparse.ArgumentTypeError(
                "'%s' is not an allocation A,B,C of workers (e.g. 1,4,2;2,2,2)" % tok)
        w = tuple(int(p) for p in parts)
        if min(w) < 1 or sum(w) > MAX_WORKERS:
            raise argparse.ArgumentTypeError(
                "'%s': each stage needs 1 worker or more, and %d at most in all"
                % (tok, MAX_WORKERS))
        if w in out:
            raise argparse.ArgumentTypeError("'%s' named twice" % tok)
        out.append(w)
    return tuple(out)


def options(p):
    p.add_argument("--burn", choices=BURNS, default="cpu",
                   help="how an imbalanced call spends its cost (default cpu)")
    p.add_argument("--allocs", type=allocs_arg, default=ALLOCS, metavar="LIST",
                   help='static allocations, e.g. "1,4,2;2,2,2" (the default)')


if __name__ == "__main__":
    sys.exit(common.main("Ray beside reel-bench pipeline", measure, options))
