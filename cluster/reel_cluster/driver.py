"""The driver: hands videos to the nodes, takes their results, outlives nodes.

One loop, on one thread:
  - every second, ray.nodes(): a node alive with CPUs and no actor gets one
    (node affinity, not soft); a node gone takes its unfinished videos with
    it, and they go back to the queue;
  - each ready node holds up to 2 + its CPUs videos in flight, the largest
    queued video first, so that nodes finish together;
  - each video is one `curate(path)` call: its result, or the actor's death,
    comes back on that call's reference;
  - a progress line every logging_interval.
A video is recorded once, by the first result for it; a node lost after it
sent a result cannot undo it, and a video redone writes the same files (the
clip UUIDs derive from the path and the span).
"""
import heapq
import json
import math
import os
import signal
import sys
import time

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from reel_cluster.inputs import Video
from reel_cluster.node import NodeBroken, ReelNode

POLL_S = 1.0
MAX_ATTEMPTS = 3  # a video whose node died under it this often fails
MAX_ACTORS_PER_NODE = 3  # actors started on one node before it is left out
SUMMARY_NAME = "cluster_summary.json"
PATH_MAX_BYTES = 4095  # the longest line reel-curate --inputs-from takes


def log(msg):
    print(f"reel-cluster: {msg}", file=sys.stderr, flush=True)


class Node:
    def __init__(self, node_id, address, cpus, gpus, actor):
        self.node_id = node_id
        self.address = address
        self.cpus = cpus
        self.gpus = gpus
        self.actor = actor
        self.ready = False
        self.slots = 2 + max(1, math.ceil(cpus))
        self.inflight = {}  # ref -> Video
        self.joined = time.monotonic()
        self.videos = 0
        self.clips = 0
        self.video_s = 0.0
        self.lost = False

    @property
    def short(self):
        return self.node_id[:8]


class Fatal(Exception):
    def __init__(self, msg, status):
        super().__init__(msg)
        self.status = status


class Driver:
    """options: a dict with
    argv         reel-curate's command line for the nodes (program first)
    output       the output directory (every node sees it)
    ignore_failures, logging_interval, cpu_percentage, verbose
    """

    def __init__(self, options, paths=(), reader=None):
        self.o = options
        self.videos = []
        self.queue = []  # heap of (0 for a video redone else 1, -size, index)
        self.reader = reader
        self.input_ended = reader is None
        for p in paths:
            self._add(p)
        self.nodes = {}  # node_id -> Node
        self.actors_started = {}  # node_id -> how many
        self.left_out = set()
        self.ready_refs = {}  # ref -> Node
        self.owner = {}  # ref -> Node, for the curate calls
        self.done = 0
        self.failed = 0
        self.redone = 0
        self.lost_nodes = 0
        self.stop_signal = None  # set by the program's SIGTERM handler
        self.losses = []  # per node lost: when, how many videos, when redone
        self.t0 = time.monotonic()
        self.cpu0 = time.process_time()
        self.next_poll = 0.0
        self.next_log = self.t0 + options["logging_interval"]

    # ---- the queue -------------------------------------------------------------

    def _add(self, path):
        v = Video(len(self.videos), path)
        self.videos.append(v)
        heapq.heappush(self.queue, (1, -v.size, v.index))

    def _requeue(self, v, why):
        if v.result is not None:
            return
        v.attempts += 1
        if v.attempts >= MAX_ATTEMPTS:
            self._record(v, None, {"path": v.path, "failed": True, "clips": 0,
                                    "error": f"lost with {v.attempts} nodes ({why})"})
            return
        self.redone += 1
        heapq.heappush(self.queue, (0, -v.size, v.index))

    # ---- nodes -------------------------------------------------------------------

    def _poll_nodes(self):
        alive = {}
        for n in ray.nodes():
            if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) > 0:
                alive[n["NodeID"]] = n
        for node_id, node in list(self.nodes.items()):
            if node_id not in alive:
                self._lose(node, "its node left the cluster")
        for node_id, n in alive.items():
            if node_id in self.nodes or node_id in self.left_out:
                continue
            self._start_actor(node_id, n)
        if alive and not self.nodes and set(alive) <= self.left_out:
            raise Fatal("no node of the cluster can run reel-curate", 1)

    def _start_actor(self, node_id, n):
        started = self.actors_started.get(node_id, 0)
        if started >= MAX_ACTORS_PER_NODE:
            self.left_out.add(node_id)
            log(f"node {node_id[:8]} left out: its reel-curate failed {started} times")
            return
        self.actors_started[node_id] = started + 1
        res = n.get("Resources", {})
        cpus = res.get("CPU", 0)
        gpus = res.get("GPU", 0)
        slots = 2 + max(1, math.ceil(cpus))
        actor_cls = ray.remote(ReelNode).options(
            num_cpus=cpus,
            num_gpus=gpus,
            max_restarts=0,
            max_task_retries=0,
            max_concurrency=2 * slots + 4,  # a redone video may go past the slots
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
        )
        actor = actor_cls.remote(self.o["argv"], os.getcwd(), cpus, self.o["cpu_percentage"])
        node = Node(node_id, n.get("NodeManagerAddress", "?"), cpus, gpus, actor)
        self.nodes[node_id] = node
        self.ready_refs[actor.ready.remote()] = node
        log(f"node {node.short} ({node.address}, {cpus:g} CPUs) joins")

    def _lose(self, node, why):
        if node.lost:
            return
        node.lost = True
        self.nodes.pop(node.node_id, None)
        back = list(node.inflight.values())
        for ref in node.inflight:
            self.owner.pop(ref, None)
        node.inflight.clear()
        for ref, n in list(self.ready_refs.items()):
            if n is node:
                del self.ready_refs[ref]
        self.lost_nodes += 1
        log(f"node {node.short} lost ({why}); {len(back)} videos go back to the queue")
        self.losses.append({"node": node.node_id, "at": time.time(), "videos": len(back),
                            "redispatched_at": None, "pending": {v.index for v in back}})
        for v in back:
            self._requeue(v, why)
        try:
            ray.kill(node.actor)
        except Exception:  # the actor may be gone with its node
            pass

    # ---- the loop ------------------------------------------------------------------

    def _dispatch(self):
        ready = [n for n in self.nodes.values() if n.ready]
        while self.queue and ready:
            node = min(ready, key=lambda n: len(n.inflight) / n.slots)
            # A lost node's video goes out at once, past the slots if need be
            # (reel-curate starts each line as it comes): it has waited once.
            redo = self.queue[0][0] == 0
            if len(node.inflight) >= node.slots * (2 if redo else 1):
                break
            _, _, index = heapq.heappop(self.queue)
            v = self.videos[index]
            if v.result is not None:
                continue
            bad = _unsendable(v.path)
            if bad:
                self._record(v, None, {"path": v.path, "failed": True, "clips": 0, "error": bad})
                continue
            ref = node.actor.curate.remote(v.path)
            for loss in self.losses:
                if v.index in loss["pending"]:
                    loss["pending"].discard(v.index)
                    if loss["redispatched_at"] is None:
                        loss["redispatched_at"] = time.time()
            node.inflight[ref] = v
            self.owner[ref] = node
            if self.o["verbose"]:
                log(f"{v.path} -> node {node.short}")

    def _take_input(self):
        if self.reader is None:
            return
        paths, ended = self.reader.take()
        for p in paths:
            self._add(p)
        self.input_ended = ended

    def _finished(self):
        return self.input_ended and not self.queue and self.done == len(self.videos)

    def _on_ready(self, ref, node):
        del self.ready_refs[ref]
        try:
            ray.get(ref)
        except (RayActorError, RayTaskError) as e:
            self._lose(node, f"its actor did not start: {_first_line(e)}")
            return
        node.ready = True
        node.joined = time.monotonic()
        log(f"node {node.short} ready")

    def _on_result(self, ref, node):
        v = node.inflight.pop(ref)
        del self.owner[ref]
        try:
            result = ray.get(ref)
        except RayTaskError as e:
            cause = e.cause if isinstance(getattr(e, "cause", None), NodeBroken) else None
            if cause is not None and cause.returncode == 2:
                raise Fatal(f"reel-curate refused its arguments: {cause}", 2)
            node.inflight[ref] = v  # goes back with the rest of the node's
            self._lose(node, _first_line(e))
            return
        except RayActorError as e:
            node.inflight[ref] = v
            self._lose(node, _first_line(e))
            return
        if v.result is not None:
            return  # done elsewhere already
        self._record(v, node, result)

    def _record(self, v, node, result):
        v.result = result
        v.node = node.node_id if node else None
        self.done += 1
        out = self.o.get("results")
        if out is not None:
            out.write(json.dumps(dict(result, node=v.node)) + "\n")
            out.flush()
        if result.get("failed"):
            self.failed += 1
            why = f"{v.path}: {result.get('error') or 'failed'}"
            if not self.o["ignore_failures"]:
                raise Fatal(why, 1)
            log(why)
        if node:
            node.videos += 1
            node.clips += int(result.get("clips", 0))
            node.video_s += float(result.get("duration_s", 0.0))

    def _progress(self):
        now = time.monotonic()
        clips = sum(int(v.result.get("clips", 0)) for v in self.videos if v.result)
        secs = sum(float(v.result.get("duration_s", 0.0)) for v in self.videos if v.result)
        total = f"{len(self.videos)}" + ("" if self.input_ended else "+")
        parts = [f"{self.done}/{total} videos, {clips} clips, "
                 f"{secs / max(now - self.t0, 1e-9):.2f} s of video/s"]
        for n in self.nodes.values():
            rate = n.video_s / max(now - n.joined, 1e-9)
            parts.append(f"node {n.short}: {n.videos} done, {len(n.inflight)} in flight, "
                         f"{rate:.2f} s/s" + ("" if n.ready else " (starting)"))
        log("; ".join(parts))

    def run(self):
        """Curates every video; returns the exit status (0, 1, 2 or 128+signal)."""
        status = 0
        try:
            while True:
                self._take_input()
                now = time.monotonic()
                if now >= self.next_poll:
                    self._poll_nodes()
                    self.next_poll = now + POLL_S
                self._dispatch()
                if self._finished():
                    break
                if now >= self.next_log:
                    self._progress()
                    self.next_log = now + self.o["logging_interval"]
                refs = list(self.ready_refs) + list(self.owner)
                if not refs:
                    time.sleep(0.2)
                    continue
                ready, _ = ray.wait(refs, num_returns=1, timeout=0.5)
                if ready:
                    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
                for ref in ready:
                    if ref in self.ready_refs:
                        self._on_ready(ref, self.ready_refs[ref])
                    elif ref in self.owner:
                        self._on_result(ref, self.owner[ref])
        except Fatal as e:
            log(str(e))
            status = e.status
        except KeyboardInterrupt:
            log("stopped by a signal: stopping every node")
            status = 128 + (self.stop_signal or signal.SIGINT)
        self._end_nodes(stop=status != 0)
        self._write_summary(status)
        return status

    def _end_nodes(self, stop):
        calls = {}
        for node in self.nodes.values():
            calls[(node.actor.stop if stop else node.actor.close).remote()] = node
        for ref, node in calls.items():
            try:
                rc = ray.get(ref, timeout=360)
                if rc != 0 and not stop:
                    log(f"node {node.short}: reel-curate exited with status {rc}")
            except (RayActorError, RayTaskError, GetTimeoutError) as e:
                log(f"node {node.short}: {_first_line(e)}")
        # The calls the stop broke, taken so that Ray does not print them as
        # unhandled errors.
        for ref in list(self.owner):
            try:
                ray.get(ref, timeout=10)
            except Exception:
                pass
        for node in calls.values():
            try:
                ray.kill(node.actor)
            except Exception:
                pass

    def _write_summary(self, status):
        elapsed = time.monotonic() - self.t0
        records = []
        for v in self.videos:
            r = v.result or {}
            records.append({"path": v.path, "node": v.node, "attempts": v.attempts + 1,
                            "done": v.result is not None, "failed": bool(r.get("failed")),
                            "error": r.get("error", ""), "clips": r.get("clips", 0),
                            "duration_s": r.get("duration_s", 0.0)})
        done = [v.result for v in self.videos if v.result]
        summary = {
            "status": status,
            "videos": len(self.videos),
            "curated": self.done - self.failed,
            "failed": self.failed,
            "unfinished": len(self.videos) - self.done,
            "clips": sum(int(r.get("clips", 0)) for r in done),
            "clips_written": sum(int(r.get("clips_written", 0)) for r in done),
            "clips_filtered": sum(int(r.get("clips_filtered", 0)) for r in done),
            "video_s": sum(float(r.get("duration_s", 0.0)) for r in done),
            "elapsed_s": elapsed,
            "redone": self.redone,
            "nodes_lost": self.lost_nodes,
            # when a lost node's first video went to another node (wall clock)
            "losses": [{k: x for k, x in loss.items() if k != "pending"}
                       for loss in self.losses],
            # the driver's own CPU time: the cost of coordination
            "driver_cpu_s": time.process_time() - self.cpu0,
            "per_node": _per_node(self.videos),
            "records": records,
        }
        out = self.o["output"]
        os.makedirs(out, exist_ok=True)
        path = os.path.join(out, SUMMARY_NAME)
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(summary, f, indent=1)
            f.write("\n")
        os.replace(tmp, path)
        log(f"{summary['curated']} videos curated, {self.failed} failed, "
            f"{summary['unfinished']} unfinished; {summary['clips']} clips "
            f"({summary['clips_written']} written, {summary['clips_filtered']} filtered); "
            f"{summary['video_s']:.1f} s of video in {elapsed:.1f} s; "
            f"{self.lost_nodes} nodes lost, {self.redone} videos redone; summary in {path}")


def _unsendable(path):
    """Why reel-curate cannot take path as a line (it answers such a line
    without its path), or None."""
    if "\0" in path or "\n" in path:
        return "the path holds a NUL or a newline"
    if len(path.encode(errors="surrogateescape")) > PATH_MAX_BYTES:
        return f"the path is longer than {PATH_MAX_BYTES} bytes"
    return None


def _per_node(videos):
    per = {}
    for v in videos:
        if v.node and v.result:
            p = per.setdefault(v.node, {"videos": 0, "clips": 0})
            p["videos"] += 1
            p["clips"] += int(v.result.get("clips", 0))
    return per


def _first_line(e):
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
