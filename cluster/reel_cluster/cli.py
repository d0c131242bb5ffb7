"""reel-cluster curate --address ADDRESS [every reel-curate flag]

The flags that choose the videos, the output and the failure policy are the
driver's; every other flag goes to each node's reel-curate as given.
"""
import argparse
import json
import os
import shutil
import signal
import sys

USAGE = """usage: reel-cluster curate --address ADDRESS [options] [reel-curate flags]

Runs reel-curate on every node of a Ray cluster that has CPUs, one per node,
and hands the videos out to them, largest first.

options read by the driver:
  --address ADDRESS                the Ray cluster (host:port, ray://..., or auto)
  --video-dir DIR                  the videos of DIR (common video extensions)
  --inputs-from FILE|-             video paths, one per line; - is standard input,
                                   read as it arrives
  --video-limit N                  the first N videos of --video-dir by name
  --video-extensions LIST          the extensions --video-dir takes (mp4,mov)
  --output-clip-path DIR           where the results go, seen by every node
                                   (default ./reel-out); the run's summary is
                                   DIR/cluster_summary.json
  --ignore-failures                record a failed video and go on (without it
                                   the first failure stops every node)
  --logging-interval S             a progress line every S seconds (60)
  --cpu-allocation-percentage P    the share of each node's Ray CPUs reel-curate
                                   takes (0.95)
  --reel-curate PATH               the program on the nodes (default $REEL_CURATE,
                                   else reel-curate on PATH)
  --results-jsonl FILE|-           a JSON line per video as it ends: reel-curate's,
                                   with the node that curated it ("node")
  --verbose                        a line per video handed out
Every other flag is reel-curate's (reel-curate --help), given to each node.
Relative paths are resolved in this directory on every node (a shared
filesystem), so that the clips get the UUIDs a reel-curate run here gives them.
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        print(f"reel-cluster: {message}", file=sys.stderr)
        sys.exit(2)


def _parser():
    p = _Parser(prog="reel-cluster curate", add_help=False, allow_abbrev=False)
    p.add_argument("--address", required=True)
    p.add_argument("--video-dir")
    p.add_argument("--inputs-from")
    p.add_argument("--video-limit", type=int, default=0)
    p.add_argument("--video-extensions")
    p.add_argument("--output-clip-path", default="reel-out")
    p.add_argument("--ignore-failures", action="store_true")
    p.add_argument("--logging-interval", type=float)
    p.add_argument("--cpu-allocation-percentage", type=float)
    p.add_argument("--config")
    p.add_argument("--reel-curate")
    p.add_argument("--results-jsonl")
    p.add_argument("--describe", action="store_true")
    p.add_argument("--verbose", action="store_true")
    return p


def _config_keys(path):
    """The executor settings the driver uses, from a reel-curate --config file."""
    try:
        with open(path) as f:
            cfg = json.load(f)
    except (OSError, ValueError) as e:
        print(f"reel-cluster: --config {path}: {e}", file=sys.stderr)
        sys.exit(2)
    return cfg if isinstance(cfg, dict) else {}


def parse(argv):
    """(the driver's options, the paths or reader) from argv after 'curate'."""
    from reel_cluster.inputs import LineReader, list_dir

    a, rest = _parser().parse_known_args(argv)
    if a.describe:
        _usage_error("--describe: run reel-curate --describe on a node")
    if bool(a.video_dir) == bool(a.inputs_from):
        _usage_error("give one of --video-dir and --inputs-from")
    cfg = _config_keys(a.config) if a.config else {}
    interval = a.logging_interval if a.logging_interval is not None \
        else float(cfg.get("logging_interval", 60.0))
    percentage = a.cpu_allocation_percentage if a.cpu_allocation_percentage is not None \
        else float(cfg.get("cpu_allocation_percentage", 0.95))
    if not 0 < percentage <= 1:
        _usage_error("--cpu-allocation-percentage must be in (0, 1]")
    if interval <= 0:
        _usage_error("--logging-interval must be above 0")
    program = a.reel_curate or os.environ.get("REEL_CURATE") or shutil.which("reel-curate")
    if not program or not os.access(program, os.X_OK):
        _usage_error("reel-curate not found: give --reel-curate PATH or set REEL_CURATE")
    output = os.path.abspath(a.output_clip_path)
    node_argv = [os.path.abspath(program), "--inputs-from", "-", "--results-jsonl", "-",
                 "--output-clip-path", output, "--ignore-failures",
                 "--logging-interval", f"{interval:g}"]
    if a.config:
        node_argv += ["--config", os.path.abspath(a.config)]
    node_argv += rest
    options = {
        "address": a.address,
        "argv": node_argv,
        "output": output,
        "ignore_failures": a.ignore_failures or bool(cfg.get("ignore_failures", False)),
        "logging_interval": interval,
        "cpu_percentage": percentage,
        "verbose": a.verbose,
        "results": None,
    }
    if a.results_jsonl == "-":
        options["results"] = sys.stdout
    elif a.results_jsonl:
        try:
            options["results"] = open(a.results_jsonl, "w")
        except OSError as e:
            _usage_error(f"--results-jsonl {a.results_jsonl}: {e.strerror}")
    paths, reader = [], None
    if a.video_dir:
        exts = a.video_extensions.split(",") if a.video_extensions else None
        try:
            paths = list_dir(a.video_dir, exts, a.video_limit)
        except OSError as e:
            _usage_error(f"--video-dir {a.video_dir}: {e.strerror}")
    elif a.inputs_from == "-":
        reader = LineReader(sys.stdin)
    else:
        try:
            with open(a.inputs_from, newline="\n") as f:
                reader = LineReader(f.readlines())
        except OSError as e:
            _usage_error(f"--inputs-from {a.inputs_from}: {e.strerror}")
    return options, paths, reader


def _usage_error(msg):
    print(f"reel-cluster: {msg}", file=sys.stderr)
    sys.exit(2)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0 if argv else 2
    if argv[0] != "curate":
        _usage_error(f"unknown command '{argv[0]}' (the command is curate)")
    if "--help" in argv[1:] or "-h" in argv[1:]:
        print(USAGE, end="")
        return 0
    options, paths, reader = parse(argv[1:])

    import ray

    from reel_cluster.driver import Driver

    ray.init(address=options["address"], logging_level="WARNING")

    # SIGTERM stops the run as Ctrl-C does: every node stopped cleanly. Set
    # after ray.init(), whose own handler would replace it.
    driver = Driver(options, paths, reader)

    def _stop(signum, frame):
        driver.stop_signal = signum
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    try:
        return driver.run()
    finally:
        ray.shutdown()
