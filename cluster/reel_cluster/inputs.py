"""The videos of a run: a directory's, a file's lines, or standard input's.

Paths are kept exactly as given: a clip's UUID is uuid5 of "<path>_<start>_<end>",
so the same path on any node names the same clips.
"""
import os
import threading

# reel-curate takes every extension libavformat knows; the driver, which has
# no libavformat, takes the common video containers (--video-extensions to
# choose).
VIDEO_EXTENSIONS = (
    "3g2 3gp asf avi dv f4v flv h264 hevc ivf m2t m2ts m2v m4v mj2 mjpeg mkv mov mp4 "
    "mpeg mpg mts mxf nut ogg ogv qt rm ts vob webm wmv y4m"
).split()


class Video:
    __slots__ = ("index", "path", "size", "attempts", "node", "result")

    def __init__(self, index, path):
        self.index = index
        self.path = path
        try:
            self.size = os.stat(path).st_size
        except OSError:
            self.size = 0  # the node records the error
        self.attempts = 0
        self.node = None
        self.result = None


def list_dir(directory, extensions=None, limit=0):
    """The videos of directory (not descending), sorted by name, as reel-curate."""
    exts = {e.lower().lstrip(".") for e in (extensions or VIDEO_EXTENSIONS)}
    names = sorted(
        n for n in os.listdir(directory)
        if os.path.splitext(n)[1].lower().lstrip(".") in exts
        and not os.path.isdir(os.path.join(directory, n))
    )
    if limit:
        names = names[:limit]
    return [os.path.join(directory, n) for n in names]


def parse_line(raw):
    """A path from one line as reel-curate reads it: a trailing '\\r' dropped;
    None for an empty line."""
    line = raw.rstrip("\n")
    if line.endswith("\r"):
        line = line[:-1]
    return line or None


class LineReader:
    """Reads paths from a stream on a thread of its own, so that videos start
    as their lines arrive; take() hands over what came so far."""

    def __init__(self, stream):
        self._stream = stream
        self._lock = threading.Lock()
        self._paths = []
        self.ended = False
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        for raw in self._stream:
            path = parse_line(raw)
            if path is not None:
                with self._lock:
                    self._paths.append(path)
        with self._lock:
            self.ended = True

    def take(self):
        """(paths that arrived since the last call, whether the input ended)."""
        with self._lock:
            paths, self._paths = self._paths, []
            return paths, self.ended
