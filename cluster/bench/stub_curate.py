#!/usr/bin/env python3
"""A stand-in for `reel-curate --inputs-from - --results-jsonl -` that does no
work: it answers each path at once with a result of one clip of 10 s. With it,
a reel-cluster run measures only what the Ray layer costs per video."""
import json
import sys
import time


def main():
    t0 = time.monotonic()
    for raw in sys.stdin.buffer:
        path = raw.rstrip(b"\n").rstrip(b"\r").decode(errors="surrogateescape")
        if not path:
            continue
        name = path.rsplit("/", 1)[-1]
        line = {"path": path, "name": name, "clips": 1, "clips_written": 1,
                "clips_filtered": 0, "partial": False, "failed": False, "error": "",
                "duration_s": 10.0, "frames": 300, "elapsed_s": time.monotonic() - t0}
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
