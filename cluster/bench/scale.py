#!/usr/bin/env python3
"""What the Ray layer costs, on simulated clusters (ray.cluster_utils.Cluster).

  throughput    one reel-curate on all of this machine's CPUs against
                reel-cluster on 2 nodes of half of them each, on the same videos
  failover      2 nodes, one removed once it holds videos: seconds from
                remove_node to its first video handed to the other node
  failover_ray_defaults  the same with Ray's own health-check settings
  coordination  a stub reel-curate that answers at once (bench/stub_curate.py),
                1 to 8 nodes: videos/s the driver sustains, its CPU per video,
                and what one ray.nodes() costs
  wait          one ray.wait over 100 to 10,000 calls in flight

    .venv/bin/python cluster/bench/scale.py [--sections a,b,c] [--quick] [--rows]

Prints its figures as one JSON object; with --rows, as the rows reel-bench
reads from the Ray scripts (bench/bench_ray.h), which `reel-bench cluster`
runs and reports beside their baselines and targets. Figures from one
machine go to docs/SCALE.md; nothing here is a test.
"""
import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import ray
from ray.cluster_utils import Cluster

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CURATE = os.environ.get("REEL_CURATE", os.path.join(ROOT, "build", "reel-curate"))
SAMPLES = os.environ.get("REEL_SAMPLES", os.path.join(ROOT, "samples"))
STUB = os.path.join(HERE, "stub_curate.py")
SYSTEM_CONFIG = {"health_check_period_ms": 500, "health_check_failure_threshold": 3,
                 "health_check_initial_delay_ms": 0}
FLAGS = ["--no-previews", "--store-size", "256M"]


def log(msg):
    print(f"scale: {msg}", file=sys.stderr, flush=True)


class _Cluster(Cluster):
    """A Cluster whose session files go with it."""

    def shutdown(self):
        super().shutdown()
        shutil.rmtree(self.reel_tmp, ignore_errors=True)


def cluster(workers, cpus, fast_health_checks=True):
    tmp = tempfile.mkdtemp(prefix="reel-ray-")
    head = {"num_cpus": 0, "object_store_memory": 80 << 20, "temp_dir": tmp}
    if fast_health_checks:
        head["_system_config"] = dict(SYSTEM_CONFIG)
    c = _Cluster(initialize_head=True, head_node_args=head)
    c.reel_tmp = tmp
    nodes = [c.add_node(num_cpus=cpus, object_store_memory=80 << 20, temp_dir=tmp)
             for _ in range(workers)]
    c.wait_for_nodes()
    return c, nodes


def videos(work, copies):
    paths = []
    for k in range(copies):
        for name in sorted(os.listdir(SAMPLES)):
            stem, ext = os.path.splitext(name)
            rel = os.path.join("videos", f"{stem}-{k}{ext}")
            os.makedirs(os.path.join(work, "videos"), exist_ok=True)
            shutil.copyfile(os.path.join(SAMPLES, name), os.path.join(work, rel))
            paths.append(rel)
    with open(os.path.join(work, "list"), "w") as f:
        f.write("".join(p + "\n" for p in paths))
    return paths


def run_cluster(address, work, out, program, extra=(), on_line=None, stdin_paths=None):
    """reel-cluster curate as a program; (wall s, its summary)."""
    argv = [sys.executable, "-m", "reel_cluster", "curate", "--address", address,
            "--output-clip-path", out, "--ignore-failures", "--logging-interval", "600",
            "--reel-curate", program, *extra]
    t0 = time.monotonic()
    p = subprocess.Popen(argv, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True)
    for line in p.stderr:
        if on_line:
            on_line(line)
    rc = p.wait()
    wall = time.monotonic() - t0
    if rc != 0:
        raise RuntimeError(f"reel-cluster exited with {rc}")
    with open(os.path.join(work, out, "cluster_summary.json")) as f:
        return wall, json.load(f)


def throughput(res, copies, rounds):
    """The best of rounds runs of each, one after the other: the machine is
    shared, and a run only ever loses time to other work."""
    cpus = len(os.sched_getaffinity(0))
    work = tempfile.mkdtemp(prefix="reel-scale-")
    try:
        paths = videos(work, copies)
        single = wall = run_s = float("inf")
        s = None
        for r in range(rounds):
            for out in ("single", "multi"):
                shutil.rmtree(os.path.join(work, out), ignore_errors=True)
            t0 = time.monotonic()
            subprocess.run([CURATE, "--inputs-from", "list", "--results-jsonl", "single.jsonl",
                            "--output-clip-path", "single", "--ignore-failures", *FLAGS],
                           cwd=work, check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            single = min(single, time.monotonic() - t0)
            c, _ = cluster(2, cpus / 2)
            try:
                w, summary = run_cluster(c.address, work, "multi", CURATE,
                                         ["--inputs-from", "list", *FLAGS])
            finally:
                c.shutdown()
            log(f"throughput round {r + 1}: single {single:.1f} s, cluster {w:.1f} s "
                f"({summary['elapsed_s']:.1f} s from the driver's start)")
            if summary["elapsed_s"] < run_s:
                wall, run_s, s = w, summary["elapsed_s"], summary
        clip_bytes = sum(os.path.getsize(os.path.join(work, "multi", "clips", n))
                         for n in os.listdir(os.path.join(work, "multi", "clips")))
        res["throughput"] = {
            "copies": copies, "rounds": rounds, "videos": len(paths), "video_s": s["video_s"],
            "cpus": cpus,
            "single_node_s": single, "cluster_2_nodes_s": wall,
            "cluster_2_nodes_run_s": s["elapsed_s"],
            "ratio": single / wall, "ratio_without_connect": single / s["elapsed_s"],
            "driver_cpu_s": s["driver_cpu_s"],
            "clip_bytes_per_video_s": clip_bytes / s["video_s"],
        }
        log(f"throughput: {res['throughput']}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def failover(res, fast_health_checks):
    work = tempfile.mkdtemp(prefix="reel-scale-")
    try:
        videos(work, 3)
        c, nodes = cluster(2, 1, fast_health_checks)
        removed = {}
        victim = nodes[1]

        def on_line(line):
            if not removed and f"-> node {victim.node_id[:8]}" in line:
                removed["at"] = time.time()
                threading.Thread(target=c.remove_node, args=(victim, False)).start()

        try:
            _, s = run_cluster(c.address, work, "out", CURATE,
                               ["--inputs-from", "list", "--verbose", *FLAGS], on_line=on_line)
        finally:
            c.shutdown()
        loss = s["losses"][0]
        key = "failover" if fast_health_checks else "failover_ray_defaults"
        res[key] = {
            "noticed_s": loss["at"] - removed["at"],
            "redispatched_s": (loss["redispatched_at"] or float("nan")) - removed["at"],
            "videos_back": loss["videos"], "unfinished": s["unfinished"],
            "health_check": SYSTEM_CONFIG if fast_health_checks else "Ray's defaults",
        }
        log(f"{key}: {res[key]}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def coordination(res, counts, n_videos):
    rows = []
    work = tempfile.mkdtemp(prefix="reel-scale-")
    try:
        with open(os.path.join(work, "list"), "w") as f:
            f.write("".join(f"v/{k:06d}.mp4\n" for k in range(n_videos)))
        for n in counts:
            c, _ = cluster(n, 1)
            try:
                ray.init(address=c.address, logging_level="WARNING")
                t0 = time.perf_counter()
                for _ in range(20):
                    ray.nodes()
                nodes_ms = (time.perf_counter() - t0) / 20 * 1e3
                ray.shutdown()
                wall, s = run_cluster(c.address, work, f"out{n}", STUB, ["--inputs-from", "list"])
            finally:
                c.shutdown()
            row = {"nodes": n, "videos": n_videos, "run_s": s["elapsed_s"],
                   "videos_per_s": n_videos / s["elapsed_s"],
                   "driver_cpu_ms_per_video": s["driver_cpu_s"] / n_videos * 1e3,
                   "ray_nodes_ms": nodes_ms}
            rows.append(row)
            log(f"coordination: {row}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    res["coordination"] = rows


@ray.remote
class _Pending:
    async def wait(self, s):
        import asyncio
        await asyncio.sleep(s)


def wait_cost(res, counts):
    """What one ray.wait(num_returns=1, timeout=0) costs over N pending calls:
    the driver makes one per turn of its loop over every call in flight."""
    rows = []
    tmp = tempfile.mkdtemp(prefix="reel-ray-")
    ray.init(num_cpus=1, logging_level="WARNING", include_dashboard=False, _temp_dir=tmp)
    try:
        actor = _Pending.options(max_concurrency=max(counts) + 1).remote()
        for n in counts:
            refs = [actor.wait.remote(60) for _ in range(n)]
            ray.wait(refs, num_returns=1, timeout=0)
            t0 = time.perf_counter()
            for _ in range(10):
                ray.wait(refs, num_returns=1, timeout=0)
            rows.append({"in_flight": n, "wait_ms": (time.perf_counter() - t0) / 10 * 1e3})
            log(f"wait: {rows[-1]}")
            ray.kill(actor)
            actor = _Pending.options(max_concurrency=max(counts) + 1).remote()
    finally:
        ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
    res["wait"] = rows


def _row(workload, figure, unit, value):
    """One row; None for a figure not measured (a NaN: e.g. no video handed back)."""
    if not math.isfinite(value):
        return None
    return {"workload": workload, "figure": figure, "unit": unit, "value": max(0.0, value),
            "p50_us": None, "p99_us": None}


def rows(res):
    """The figures as bench_ray rows: reel-bench cluster pairs them by figure."""
    out, notes = [], []
    t = res.get("throughput")
    if t:
        notes.append(f"throughput: {t['videos']} videos ({t['video_s']:.1f} s of video: the "
                     f"samples {t['copies']} times), {t['cpus']} CPUs, --no-previews, the best "
                     f"of {t.get('rounds', 1)} runs of each")
        out += [
            _row("reel-curate --inputs-from, all CPUs", "one reel-curate, same CPUs", "s/s",
                 t["video_s"] / t["single_node_s"]),
            _row("reel-cluster: head of 0 CPUs + 2 nodes of half the CPUs",
                 "2 nodes, from the driver's start", "s/s", t["video_s"] / t["cluster_2_nodes_run_s"]),
            _row("the same, from reel-cluster's start (ray.init, actors, reel-curates)",
                 "2 nodes, from the program's start", "s/s", t["video_s"] / t["cluster_2_nodes_s"]),
            _row("driver process CPU (Ray's threads in it) over the videos",
                 "driver CPU per video", "ms", t["driver_cpu_s"] / t["videos"] * 1e3),
        ]
    for key, what in (("failover", "health checks 500 ms x 3"),
                      ("failover_ray_defaults", "Ray's default health checks")):
        f = res.get(key)
        if f:
            tag = "" if key == "failover" else ", Ray defaults"
            out += [
                _row(f"remove_node -> driver sees the loss ({what})", "node death noticed" + tag,
                     "s", f["noticed_s"]),
                _row(f"remove_node -> its first video sent to another node ({what})",
                     "node death to its work elsewhere" + tag, "s", f["redispatched_s"]),
            ]
    for c in res.get("coordination", []):
        n = c["nodes"]
        out += [
            _row(f"stub reel-curate answering at once, {c['videos']} videos",
                 f"{n} nodes: videos handed out", "videos/s", c["videos_per_s"]),
            _row("driver CPU per video, stub reel-curate", f"{n} nodes: driver CPU per video",
                 "ms", c["driver_cpu_ms_per_video"]),
            _row("one ray.nodes()", f"{n} nodes: one ray.nodes()", "ms", c["ray_nodes_ms"]),
        ]
    for w in res.get("wait", []):
        out.append(_row("ray.wait(num_returns=1, timeout=0)",
                        f"ray.wait over {w['in_flight']} calls", "ms", w["wait_ms"]))
    return {"ray_version": ray.__version__, "notes": notes, "rows": [r for r in out if r]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sections",
                    default="throughput,failover,failover_ray_defaults,coordination,wait")
    ap.add_argument("--nodes", default="1,2,4,8")
    ap.add_argument("--copies", type=int, default=8,
                    help="throughput: each sample this many times")
    ap.add_argument("--rounds", type=int, default=2,
                    help="throughput: runs of each, the best kept")
    ap.add_argument("--stub-videos", type=int, default=2000)
    ap.add_argument("--json", action="store_true", help="(the default; kept for old scripts)")
    ap.add_argument("--rows", action="store_true", help="print reel-bench's rows")
    ap.add_argument("--quick", action="store_true",
                    help="throughput (the samples once) and failover only, 1 and 2 stub nodes")
    a = ap.parse_args()
    if a.quick:
        a.sections, a.copies, a.nodes, a.stub_videos = "throughput,failover", 1, "1,2", 500
        a.rounds = 1
    # Only the figures go to stdout: whatever else writes there while they are
    # measured (Ray, reel-curate's summary, the processes they start) goes to
    # stderr, at the descriptor, so that children inherit it too.
    sys.stdout.flush()
    figures_out = os.dup(1)
    os.dup2(2, 1)
    res = {}
    sections = a.sections.split(",")
    if "throughput" in sections:
        throughput(res, a.copies, max(1, a.rounds))
    if "failover" in sections:
        failover(res, True)
    if "failover_ray_defaults" in sections:
        failover(res, False)
    if "coordination" in sections:
        coordination(res, [int(x) for x in a.nodes.split(",")], a.stub_videos)
    if "wait" in sections:
        wait_cost(res, [100, 1000, 10000])
    sys.stdout.flush()
    os.dup2(figures_out, 1)
    print(json.dumps(rows(res) if a.rows else res, indent=1), flush=True)


if __name__ == "__main__":
    main()
