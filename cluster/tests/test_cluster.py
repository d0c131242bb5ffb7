"""reel-cluster on a simulated Ray cluster (ray.cluster_utils.Cluster).

Each case starts a head with no CPUs and worker nodes of 1 CPU on this
machine, runs `reel-cluster curate` as a program against it, and checks the
output against one `reel-curate --inputs-from` run on the same paths: every
video curated exactly once, the same clip UUIDs, spans and files.

Needs reel-curate ($REEL_CURATE, else build/reel-curate) and the samples
($REEL_SAMPLES, else samples/). Deadlines are generous; nothing is timed.
"""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import ray
from ray.cluster_utils import Cluster

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CURATE = os.environ.get("REEL_CURATE", os.path.join(ROOT, "build", "reel-curate"))
SAMPLES = os.environ.get("REEL_SAMPLES", os.path.join(ROOT, "samples"))
CLUSTER = [sys.executable, "-m", "reel_cluster"]
DEADLINE_S = 240
# Node death noticed in about a second: the simulated raylets share this machine.
SYSTEM_CONFIG = {"health_check_period_ms": 500, "health_check_failure_threshold": 3,
                 "health_check_initial_delay_ms": 0}
NODE_ARGS = {"num_cpus": 1, "object_store_memory": 80 << 20}
# The flags of every run, single-node and cluster alike.
FLAGS = ["--no-previews", "--store-size", "128M"]


def make_videos(work, plan, first=0):
    """Copies of the samples under new names; plan is [(sample, copies)].
    Returns the paths, relative to work (the runs' directory)."""
    paths = []
    for sample, copies in plan:
        stem, ext = os.path.splitext(sample)
        for k in range(first, first + copies):
            rel = video_path(f"{stem}-{k}{ext}")
            os.makedirs(os.path.join(work, os.path.dirname(rel)), exist_ok=True)
            shutil.copyfile(os.path.join(SAMPLES, sample), os.path.join(work, rel))
            paths.append(rel)
    return paths


def video_path(name):
    # One directory per video, each name unique (processed_videos/ is by name).
    return os.path.join("videos", os.path.splitext(name)[0], name)


def tree(out):
    """{relative path: digest} of an output directory; clip_location in the
    metadata names the directory, so it is cut to its file name."""
    files = {}
    for d, _, names in os.walk(out):
        for n in names:
            full = os.path.join(d, n)
            rel = os.path.relpath(full, out)
            # A temporary name is no clip (a killed writer may leave one).
            if rel == "cluster_summary.json" or ".tmp-" in n:
                continue
            with open(full, "rb") as f:
                data = f.read()
            if rel.startswith("metas/") and rel.endswith(".json"):
                meta = json.loads(data)
                if meta.get("clip_location"):
                    meta["clip_location"] = os.path.basename(meta["clip_location"])
                data = json.dumps(meta, sort_keys=True).encode()
            files[rel] = hashlib.sha256(data).hexdigest()
    return files


def single_node(work, paths, out):
    """One reel-curate --inputs-from run; its result lines by path."""
    lst = os.path.join(work, out + ".list")
    with open(lst, "w") as f:
        f.write("".join(p + "\n" for p in paths))
    r = subprocess.run([CURATE, "--inputs-from", lst, "--results-jsonl", "-",
                        "--output-clip-path", out, "--ignore-failures", *FLAGS],
                       cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=DEADLINE_S)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    return {json.loads(l)["path"]: json.loads(l) for l in r.stdout.decode().splitlines()}


class Run:
    """reel-cluster curate as a program, its stderr read line by line."""

    def __init__(self, address, work, args, stdin=None):
        self.lines = []
        self.cond = threading.Condition()
        env = dict(os.environ, REEL_CURATE=CURATE)
        self.proc = subprocess.Popen(
            [*CLUSTER, "curate", "--address", address, "--verbose", *FLAGS, *args],
            cwd=work, env=env, stdin=stdin, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stderr:
            sys.stderr.write(line)
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()

    def wait_line(self, pred, what):
        """The first stderr line for which pred holds, waiting for it."""
        end = time.monotonic() + DEADLINE_S
        seen = 0
        with self.cond:
            while True:
                for line in self.lines[seen:]:
                    if pred(line):
                        return line
                seen = len(self.lines)
                left = end - time.monotonic()
                if left <= 0 or self.proc.poll() is not None and seen == len(self.lines):
                    raise AssertionError(f"no line {what} in reel-cluster's stderr")
                self.cond.wait(min(left, 1.0))

    def finish(self):
        try:
            return self.proc.wait(DEADLINE_S)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


class TestInputs(unittest.TestCase):
    """The driver's reading of its inputs, without a cluster."""

    def test_a_directory_gives_its_videos_sorted_and_limited(self):
        from reel_cluster.inputs import list_dir
        with tempfile.TemporaryDirectory() as d:
            for name in ("b.MP4", "a.webm", "notes.txt", "c.mov"):
                open(os.path.join(d, name), "w").close()
            os.mkdir(os.path.join(d, "sub.mp4"))
            self.assertEqual([os.path.basename(p) for p in list_dir(d)],
                             ["a.webm", "b.MP4", "c.mov"])
            self.assertEqual([os.path.basename(p) for p in list_dir(d, ["mov", "mp4"], 1)],
                             ["b.MP4"])

    def test_lines_are_read_as_reel_curate_reads_them(self):
        from reel_cluster.inputs import LineReader
        r = LineReader(["a.mp4\r\n", "\n", "\r\n", "dir/b c.mp4\n", "last.mp4"])
        deadline = time.monotonic() + 10
        got, ended = [], False
        while not ended and time.monotonic() < deadline:
            paths, ended = r.take()
            got += paths
        self.assertEqual(got, ["a.mp4", "dir/b c.mp4", "last.mp4"])


class ClusterCase(unittest.TestCase):
    WORKERS = 2

    @classmethod
    def setUpClass(cls):
        if not os.access(CURATE, os.X_OK):
            raise unittest.SkipTest(f"no reel-curate at {CURATE}")
        # Ray's session files (logs, sockets) in a directory of the test's own.
        cls.ray_tmp = tempfile.mkdtemp(prefix="reel-ray-")
        cls.node_args = dict(NODE_ARGS, temp_dir=cls.ray_tmp)
        cls.cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 0, "object_store_memory": 80 << 20, "temp_dir": cls.ray_tmp,
            "_system_config": dict(SYSTEM_CONFIG)})
        cls.workers = [cls.cluster.add_node(**cls.node_args) for _ in range(cls.WORKERS)]
        cls.cluster.wait_for_nodes()

    @classmethod
    def tearDownClass(cls):
        cls.cluster.shutdown()
        shutil.rmtree(cls.ray_tmp, ignore_errors=True)

    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="reel-cluster-test-")

    def tearDown(self):
        shutil.rmtree(self.work, ignore_errors=True)

    def summary(self, out):
        with open(os.path.join(self.work, out, "cluster_summary.json")) as f:
            return json.load(f)

    def assert_same_as_single_node(self, paths, out, expect_failed=()):
        """Every path done once, as one reel-curate run on the same paths did."""
        ref = single_node(self.work, paths, "ref")
        s = self.summary(out)
        by_path = {}
        for r in s["records"]:
            self.assertNotIn(r["path"], by_path, "a video recorded twice")
            by_path[r["path"]] = r
        self.assertEqual(sorted(by_path), sorted(paths))
        for p in paths:
            self.assertTrue(by_path[p]["done"], p)
            self.assertEqual(by_path[p]["failed"], p in expect_failed, p)
            self.assertEqual(by_path[p]["clips"], ref[p]["clips"], p)
            self.assertEqual(ref[p]["failed"], p in expect_failed, p)
        self.assertEqual(s["unfinished"], 0)
        got = tree(os.path.join(self.work, out))
        want = tree(os.path.join(self.work, "ref"))
        self.assertEqual(sorted(got), sorted(want), "not the same files")
        for rel in want:
            self.assertEqual(got[rel], want[rel], rel)
        return s


class TestTwoNodes(ClusterCase):
    WORKERS = 2

    def test_same_as_single_node_with_bad_inputs(self):
        paths = make_videos(self.work, [("cockatoo.mp4", 1), ("diver.mov", 1),
                                        ("oa4_launch.webm", 3), ("realshort.mp4", 2)])
        bad = [video_path("notes.mp4"), video_path("missing.mp4")]
        os.makedirs(os.path.join(self.work, os.path.dirname(bad[0])))
        with open(os.path.join(self.work, bad[0]), "w") as f:
            f.write("not a video\n")
        lst = os.path.join(self.work, "list")
        with open(lst, "w") as f:
            f.write("".join(p + "\n" for p in paths + bad))
        run = Run(self.cluster.address, self.work,
                  ["--inputs-from", "list", "--output-clip-path", "out", "--ignore-failures",
                   "--logging-interval", "2", "--results-jsonl", "results.jsonl"])
        self.assertEqual(run.finish(), 0)
        s = self.assert_same_as_single_node(paths + bad, "out", expect_failed=bad)
        with open(os.path.join(self.work, "results.jsonl")) as f:
            lines = [json.loads(line) for line in f]
        self.assertEqual(sorted(r["path"] for r in lines), sorted(paths + bad))
        self.assertEqual({r["node"] for r in lines}, set(s["per_node"]))
        self.assertEqual(s["failed"], 2)
        # Both nodes worked, and progress lines came.
        self.assertEqual(len(s["per_node"]), 2, s["per_node"])
        self.assertTrue(any("videos," in line and "node " in line for line in run.lines))

    def test_first_failure_stops_the_run(self):
        paths = make_videos(self.work, [("realshort.mp4", 2)])
        lst = os.path.join(self.work, "list")
        with open(lst, "w") as f:
            f.write("videos/missing.mp4\n" + "".join(p + "\n" for p in paths))
        run = Run(self.cluster.address, self.work,
                  ["--inputs-from", "list", "--output-clip-path", "out"])
        self.assertEqual(run.finish(), 1)
        s = self.summary("out")
        self.assertEqual(s["status"], 1)
        self.assertEqual(s["failed"], 1)
        self.assertTrue(any("missing.mp4" in line for line in run.lines))

    def test_a_flag_reel_curate_refuses_stops_the_run(self):
        paths = make_videos(self.work, [("realshort.mp4", 1)])
        lst = os.path.join(self.work, "list")
        with open(lst, "w") as f:
            f.write("".join(p + "\n" for p in paths))
        run = Run(self.cluster.address, self.work,
                  ["--inputs-from", "list", "--output-clip-path", "out", "--no-such-flag"])
        self.assertEqual(run.finish(), 2)
        self.assertTrue(any("no-such-flag" in line for line in run.lines))

    def test_sigterm_stops_every_node(self):
        paths = make_videos(self.work, [("diver.mov", 4)])
        lst = os.path.join(self.work, "list")
        with open(lst, "w") as f:
            f.write("".join(p + "\n" for p in paths))
        run = Run(self.cluster.address, self.work,
                  ["--inputs-from", "list", "--output-clip-path", "out"])
        run.wait_line(lambda l: " -> node " in l, "a video handed out")
        run.proc.send_signal(signal.SIGTERM)
        self.assertEqual(run.finish(), 128 + signal.SIGTERM)
        s = self.summary("out")
        self.assertEqual(s["status"], 128 + signal.SIGTERM)
        self.assertGreaterEqual(s["unfinished"], 1)


class TestThreeNodes(ClusterCase):
    WORKERS = 3

    def test_node_removed_and_node_added_mid_run(self):
        # diver.mov, the largest sample, takes seconds: once every node is
        # ready, each gets one of the three first (largest first, to the node
        # with the most room), and still holds it when its node goes.
        first = make_videos(self.work, [("diver.mov", 3), ("realshort.mp4", 2)])
        more = make_videos(self.work, [("cockatoo.mp4", 1), ("oa4_launch.webm", 8)])
        run = Run(self.cluster.address, self.work,
                  ["--inputs-from", "-", "--output-clip-path", "out", "--logging-interval", "2"],
                  stdin=subprocess.PIPE)
        for w in self.workers:
            run.wait_line(lambda l, w=w: f"node {w.node_id[:8]} ready" in l, "a node ready")
        run.proc.stdin.write("".join(p + "\n" for p in first))
        run.proc.stdin.flush()
        # The third worker is removed once it holds a video.
        victim = self.workers[2]
        run.wait_line(lambda l: f"-> node {victim.node_id[:8]}" in l, "handing work to node 3")
        self.cluster.remove_node(victim, allow_graceful=False)
        run.wait_line(lambda l: f"node {victim.node_id[:8]} lost" in l, "losing node 3")
        # A node added now gets work: the rest of the input comes once it is
        # ready, more videos than the other nodes have room for.
        joined = self.cluster.add_node(**self.node_args)
        run.wait_line(lambda l: f"node {joined.node_id[:8]} ready" in l, "the new node ready")
        run.proc.stdin.write("".join(p + "\n" for p in more))
        run.proc.stdin.close()
        self.assertEqual(run.finish(), 0)
        s = self.assert_same_as_single_node(first + more, "out")
        self.assertGreaterEqual(s["nodes_lost"], 1)
        self.assertGreaterEqual(s["redone"], 1, "the lost node held no video")
        self.assertGreaterEqual(s["per_node"].get(joined.node_id, {}).get("videos", 0), 1,
                                s["per_node"])
        leftovers = [n for n in os.listdir(os.path.join(self.work, "out", "clips")) if ".tmp-" in n]
        if leftovers:
            print(f"temporary files a killed writer left: {leftovers}", file=sys.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
