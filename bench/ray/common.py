"""What the Ray side-by-side scripts share: options, timing, starting Ray, and
the one JSON object each prints.

Driver side only. Code that runs inside Ray's workers (actor classes, the
loops the n:n drivers run) lives in each script itself: cloudpickle ships
what __main__ defines by value, but a worker could not import this module.

Every script prints exactly one JSON object on stdout and nothing else:

    {"ray_version": "2.60.0",
     "notes": ["...", ...],
     "rows": [{"workload": "...", "figure": "...", "unit": "...",
               "value": 1.0, "p50_us": 2.0, "p99_us": 3.0}, ...]}

`figure` is the name of the reel-bench row the Ray figure stands beside,
without reel's mode (", spin" / ", sleep"); `workload` says what Ray ran.
`p50_us` and `p99_us` are both numbers or both null. bench/bench_ray.c parses
this (strictly: no other key, finite numbers, bounded lengths).

To keep stdout clean, Bench() moves the real stdout to a private descriptor
and points file descriptor 1 at stderr before Ray starts, so that Ray, its
daemons and its workers (which inherit descriptors) can write only to stderr.
"""

import argparse
import json
import logging
import math
import os
import re
import signal
import sys
import time

# no usage-stats prompt or upload attempt: this machine reaches no network
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

MiB = 1024 * 1024

# figure and unit lengths bench_ray.c accepts (bench_ray.h)
FIGURE_MAX = 63
UNIT_MAX = 15
TEXT_MAX = 159
MAX_ROWS = 128
MAX_NOTES = 12


def format_size(n):
    """As bench_format_size(): "64 B", "4 KiB", "1 MiB", "1.5 MiB"."""
    units = ["B", "KiB", "MiB", "GiB", "TiB"]
    v, u = float(n), 0
    while v >= 1024.0 and u + 1 < len(units):
        v /= 1024.0
        u += 1
    if v == math.floor(v):
        return "%.0f %s" % (v, units[u])
    return "%.3g %s" % (v, units[u])


def percentile(sorted_ns, p):
    """As bench_percentile(): nearest rank, of sorted samples."""
    n = len(sorted_ns)
    if n == 0:
        return 0
    rank = int(math.ceil(p / 100.0 * n))
    return sorted_ns[min(max(rank, 1), n) - 1]


def summary_us(samples_ns):
    """(mean, p50, p99) in microseconds."""
    s = sorted(samples_ns)
    if not s:
        return 0.0, 0.0, 0.0
    return (sum(s) / len(s) / 1e3, percentile(s, 50) / 1e3, percentile(s, 99) / 1e3)


def cpus():
    return len(os.sched_getaffinity(0))


class Stop(Exception):
    """A signal asked the script to stop."""


def _on_signal(sig, frame):
    raise Stop("signal %d" % sig)


# ---- Options ---------------------------------------------------------------
#
# The options reel-bench passes on (bench_ray_run's extra_args) are checked
# as strictly as reel-bench checks its own: a bad value exits with 2 and one
# line on stderr, before Ray starts.

SIZE_MAX = 1 << 30  # as reel-bench --sizes
SIZES_MAX = 32  # BENCH_MAX_SIZES
ITERATIONS_MAX = 1000000000  # as reel-bench --iterations


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line: "PROG: error: what"."""

    def error(self, message):
        self.exit(2, "%s: error: %s\n" % (self.prog, message))


def parse_size(text):
    """As bench_parse_size(): "64", "4K", "1M", "64MiB", "1GB" (binary
    units, case-insensitive); returns bytes or None."""
    m = re.fullmatch(r"([0-9]+)(?:([kKmMgG])[iI]?)?[bB]?", text)
    if not m:
        return None
    return int(m.group(1)) << {None: 0, "k": 10, "m": 20, "g": 30}[
        m.group(2).lower() if m.group(2) else None]


def sizes_arg(text):
    """--sizes: comma-separated sizes, each 1 B to 1 GiB; duplicates
    dropped, sorted ascending, as reel-bench --sizes."""
    out = []
    for tok in text.split(","):
        v = parse_size(tok)
        if v is None or v == 0:
            raise argparse.ArgumentTypeError("'%s' is not a size (e.g. 64,4K,1M,64M)" % tok)
        if v > SIZE_MAX:
            raise argparse.ArgumentTypeError("'%s' is larger than 1 GiB" % tok)
        if v not in out:
            out.append(v)
    if len(out) > SIZES_MAX:
        raise argparse.ArgumentTypeError("more than %d sizes" % SIZES_MAX)
    return sorted(out)


def iterations_arg(text):
    """--iterations: timed operations per measurement, 1 to 10^9."""
    if not re.fullmatch(r"[0-9]+", text) or not 1 <= int(text) <= ITERATIONS_MAX:
        raise argparse.ArgumentTypeError(
            "'%s' is not a number from 1 to %d" % (text, ITERATIONS_MAX))
    return int(text)


def size_options(p, sizes_help, iterations_help):
    """--sizes and --iterations, as reel-bench passes them on."""
    p.add_argument("--sizes", type=sizes_arg, metavar="LIST", help=sizes_help)
    p.add_argument("--iterations", type=iterations_arg, metavar="N", help=iterations_help)


class Bench:
    """One script's run: options, Ray, rows, notes, and the JSON at the end.
    options(parser), if given, adds the script's own options; check(bench)
    then validates them together (it calls bench.usage() on a bad one)."""

    def __init__(self, what, options=None, check=None):
        p = Parser(description=what)
        p.add_argument("--quick", action="store_true", help="a short run")
        p.add_argument(
            "--object-store-mib", type=int, default=1024, help="Ray's object store (default 1024)"
        )
        if options:
            options(p)
        self.parser = p
        self.args = p.parse_args()
        if not 64 <= self.args.object_store_mib <= 1 << 20:
            p.error("argument --object-store-mib: %d is not from 64 to %d"
                    % (self.args.object_store_mib, 1 << 20))
        if check:
            check(self)
        self.quick = self.args.quick
        self.rows = []
        self.notes = []
        self.t0 = time.monotonic()
        self.out = os.fdopen(os.dup(1), "w")  # not inherited: os.dup is close-on-exec
        sys.stdout.flush()
        os.dup2(2, 1)
        signal.signal(signal.SIGTERM, _on_signal)
        signal.signal(signal.SIGHUP, _on_signal)
        self.ray = None

    # ---- Ray ---------------------------------------------------------------

    def start_ray(self):
        import ray

        t = time.monotonic()
        ray.init(
            num_cpus=cpus(),
            object_store_memory=self.args.object_store_mib * MiB,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
        )
        self.ray = ray
        with open("/proc/loadavg") as f:
            load = " ".join(f.read().split()[:3])
        self.note(
            "Ray %s, ray.init(num_cpus=%d, object_store_memory=%d MiB) took %.1f s; "
            "load average %s" % (ray.__version__, cpus(), self.args.object_store_mib,
                                 time.monotonic() - t, load)
        )
        return ray

    # ---- Output ------------------------------------------------------------

    def usage(self, message):
        """A bad option: one line on stderr, exit status 2."""
        self.parser.error(message)

    def progress(self, fmt, *a):
        text = fmt % a if a else fmt
        print("ray: %6.1f s: %s" % (time.monotonic() - self.t0, text), file=sys.stderr, flush=True)

    def note(self, text):
        if len(self.notes) < MAX_NOTES:
            self.notes.append(text[:TEXT_MAX])

    def row(self, workload, figure, unit, value, p50_us=None, p99_us=None):
        if len(figure) > FIGURE_MAX or len(unit) > UNIT_MAX or len(workload) > TEXT_MAX:
            raise ValueError("row text too long: %r" % figure)
        if len(self.rows) >= MAX_ROWS:
            raise ValueError("more than %d rows" % MAX_ROWS)
        if (p50_us is None) != (p99_us is None):
            raise ValueError("p50 and p99 go together: %r" % figure)
        for v in (value, p50_us, p99_us):
            if v is not None and not (math.isfinite(v) and v >= 0):
                raise ValueError("%r: not a finite figure: %r" % (figure, v))
        self.rows.append(
            {
                "workload": workload,
                "figure": figure,
                "unit": unit,
                "value": float(value),
                "p50_us": None if p50_us is None else float(p50_us),
                "p99_us": None if p99_us is None else float(p99_us),
            }
        )
        self.progress("%-40s %12.4g %s", figure, value, unit)

    def finish(self):
        """Shuts Ray down, prints the JSON object; returns the exit status."""
        version = self.ray.__version__ if self.ray else "none"
        if self.ray:
            self.ray.shutdown()
        self.note("the script took %.1f s, ray.init included" % (time.monotonic() - self.t0))
        doc = {"ray_version": version, "notes": self.notes, "rows": self.rows}
        self.out.write(json.dumps(doc, allow_nan=False) + "\n")
        self.out.flush()
        return 0


def main(what, measure, options=None, check=None):
    """Runs measure(bench) between Ray's start and the JSON; any failure exits
    with 1 and one line on stderr, and prints nothing on stdout. A bad option
    (options, check: as Bench's) exits with 2 and one line, before Ray
    starts."""
    b = None
    try:
        b = Bench(what, options, check)
        b.start_ray()
        measure(b)
        return b.finish()
    except (Stop, KeyboardInterrupt) as e:
        print("ray: stopped (%s)" % (e or "interrupt"), file=sys.stderr)
    except Exception as e:  # one clear line for bench_ray.c, the trace above it
        import traceback

        traceback.print_exc()
        print("ray: %s: %s" % (type(e).__name__, e), file=sys.stderr)
    try:
        if b and b.ray:
            b.ray.shutdown()
    except Exception:
        pass
    return 1


# ---- Timing ------------------------------------------------------------------


def now_ns():
    return time.perf_counter_ns()


class Budget:
    """How many operations, and for how long (seconds; 0: no limit); a
    measurement stops at n, or at the time limit once it has at least lo."""

    def __init__(self, n, cap_s, lo=1):
        self.n, self.cap_ns, self.lo = n, int(cap_s * 1e9), lo

    def over(self, done, elapsed_ns):
        return done >= self.n or (self.cap_ns and elapsed_ns >= self.cap_ns and done >= self.lo)

    def share(self, k):
        """One of k rounds' share of this budget."""
        return Budget(max(1, (self.n + k - 1) // k), self.cap_ns / 1e9 / k, max(1, self.lo // k))
