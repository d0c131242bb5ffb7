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
                              ms of wall-clock time (asleep to the end of
                              the cost, timer slack 1 ns, as reel-bench
                              pipeline's default --burn sleep), A, B and C
                              actors per stage, item i going to actor
                              i mod A, i mod B, i mod C (each actor runs its
                              calls in order, so this fills them evenly),
                              up to 64 items outstanding; 600 items
                              (--quick 200), counted as above. Pools 1,4,2
                              (the best static: model 1000 items/s) and
                              2,2,2 (even: model 500). Ray has no autoscaler
                              of actor pools in Ray Core.

Usage: python3 bench/ray/pipeline.py [--quick] > ray-pipeline.json
"""

import collections
import ctypes
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


@ray.remote(num_cpus=0)
class Stage:
    def __init__(self):
        self.cost = 0.0
        # PR_SET_TIMERSLACK: wake within microseconds of a cost's end, as
        # reel's burn_setup() does
        ctypes.CDLL(None).prctl(29, ctypes.c_ulong(1), ctypes.c_ulong(0), ctypes.c_ulong(0),
                                ctypes.c_ulong(0))

    def set_cost(self, cost_s):
        self.cost = cost_s

    def f(self, *items):
        if self.cost:
            end = time.monotonic() + self.cost
            while True:
                left = end - time.monotonic()
                if left <= 0:
                    break
                time.sleep(left)
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
    pools, k = [], 0
    for s in range(3):
        most = max(a[s] for a in ALLOCS)
        pools.append(actors[k : k + most])
        k += most
        ray.get([a.set_cost.remote(IMB_COST_S[s]) for a in pools[s]])
    n = 200 if b.quick else 600
    for alloc in ALLOCS:
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
        b.row("3 actor pools of %s, calls of 1:4:2 ms asleep (model %.0f items/s)"
              % (text, model), "static %s" % text, "items/s", c.rate())
    b.note("imbalanced: %d items per allocation, up to %d outstanding, round-robin over each "
           "stage's actors; items/s from the first tenth of the items to the ninth"
           % (n, IMB_WINDOW))


def measure(b):
    items = [ray.put(np.full(ITEM_SIZE, i & 255, dtype=np.uint8)) for i in range(N_DISTINCT)]
    # every process up front (each a new Python worker: about a second here);
    # the no-op runs use the first 5, the imbalanced ones all 8
    n = sum(max(a[s] for a in ALLOCS) for s in range(3))
    b.progress("starting %d actors", n)
    actors = [Stage.remote() for _ in range(max(n, NOOP_STAGES + 1))]
    ray.get([a.set_cost.remote(0.0) for a in actors])
    noop_runs(b, actors, items)
    imbalanced_runs(b, actors, items)


if __name__ == "__main__":
    sys.exit(common.main("Ray beside reel-bench pipeline", measure))
