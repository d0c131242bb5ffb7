"""The node actor: one reel-curate per node, fed one path per line.

The actor runs `reel-curate --inputs-from - --results-jsonl -` as its child
and turns each result line back into the return value of the `curate(path)`
call that sent the path: one Ray call per video, so that a call that fails
because the actor or its node died names exactly the video to redo.

The child dies with the actor (PR_SET_PDEATHSIG: SIGTERM, which reel-curate
takes as a clean stop), so a node whose actor is gone writes nothing more.
"""
import collections
import ctypes
import json
import os
import signal
import subprocess
import sys
import threading

import ray

_PR_SET_PDEATHSIG = 1
_STDERR_KEPT = 20  # the last lines of reel-curate's stderr, for the error


class NodeBroken(RuntimeError):
    """reel-curate ended while videos were in flight on it."""

    def __init__(self, returncode, stderr_tail):
        self.returncode = returncode
        self.stderr_tail = stderr_tail
        last = stderr_tail[-1] if stderr_tail else "no message"
        super().__init__(f"reel-curate exited with status {returncode}: {last}")

    def __reduce__(self):
        return (NodeBroken, (self.returncode, self.stderr_tail))


def _die_with_parent():
    # Runs in the child between fork and exec.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def cpu_share(node_cpus, percentage):
    """The --cpu-allocation-percentage that gives reel-curate node_cpus CPUs.

    reel-curate takes its CPUs from its affinity mask, which holds every core
    of the machine: more than Ray lends a node of a simulated cluster (whose
    raylets share one machine) or a node declared with fewer CPUs than cores.
    reel-curate sizes its line to the share it is given, however small.
    """
    visible = len(os.sched_getaffinity(0))
    if node_cpus >= visible:
        return percentage
    return min(1.0, percentage * node_cpus / visible)


class ReelNode:
    """One reel-curate on this node. Methods run on Ray's threads."""

    def __init__(self, argv, cwd, cpus, cpu_percentage):
        # reel-curate sizes itself by the CPUs Ray lends this node.
        argv = list(argv) + ["--cpu-allocation-percentage",
                             "%.6f" % cpu_share(cpus, cpu_percentage)]
        self._lock = threading.Lock()
        self._waiters = collections.defaultdict(collections.deque)
        self._stderr = collections.deque(maxlen=_STDERR_KEPT)
        self._broken = None
        # The driver's directory where this node sees it (a shared filesystem):
        # relative paths then name the same files, and the clips the same UUIDs.
        self._proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd if cwd and os.path.isdir(cwd) else None,
            preexec_fn=_die_with_parent,
        )
        threading.Thread(target=self._read_results, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def ready(self):
        """The node's figures, once reel-curate runs."""
        return {"node_id": ray.get_runtime_context().get_node_id(), "pid": self._proc.pid}

    def curate(self, path):
        """Curates one video; returns its result line as a dict.

        Raises NodeBroken when reel-curate ends before the video's line."""
        done = threading.Event()
        box = {}
        with self._lock:
            if self._broken is not None:
                raise self._broken
            self._waiters[path].append((done, box))
            try:
                self._proc.stdin.write(path.encode(errors="surrogateescape") + b"\n")
                self._proc.stdin.flush()
            except OSError:
                pass  # the child is gone: _read_results breaks the waiters
        done.wait()
        if "error" in box:
            raise box["error"]
        return box["result"]

    def close(self, timeout_s=300):
        """Ends the input; returns reel-curate's exit status."""
        try:
            self._proc.stdin.close()
        except OSError:
            pass
        return self._wait(timeout_s)

    def stop(self, timeout_s=60):
        """Stops reel-curate cleanly (SIGTERM); returns its exit status."""
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
        return self._wait(timeout_s)

    def _wait(self, timeout_s):
        try:
            return self._proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            return self._proc.wait()

    def _read_results(self):
        for raw in self._proc.stdout:
            try:
                result = json.loads(raw.decode(errors="surrogateescape"))
                path = result["path"]
            except (ValueError, KeyError, TypeError):
                print(f"reel-cluster: a line reel-curate wrote is not a result: {raw[:200]!r}",
                      file=sys.stderr)
                continue
            with self._lock:
                queue = self._waiters.get(path)
                if not queue:
                    print(f"reel-cluster: a result for {path!r}, which was not asked for",
                          file=sys.stderr)
                    continue
                done, box = queue.popleft()
                if not queue:
                    del self._waiters[path]
            box["result"] = result
            done.set()
        rc = self._proc.wait()
        with self._lock:
            self._broken = NodeBroken(rc, list(self._stderr))
            waiters = [w for queue in self._waiters.values() for w in queue]
            self._waiters.clear()
        for done, box in waiters:
            box["error"] = self._broken
            done.set()

    def _read_stderr(self):
        # Passed on to the actor's stderr, which Ray forwards to the driver.
        for raw in self._proc.stderr:
            line = raw.decode(errors="replace").rstrip("\n")
            self._stderr.append(line)
            print(line, file=sys.stderr, flush=True)
