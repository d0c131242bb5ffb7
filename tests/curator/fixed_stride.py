#!/usr/bin/env python3
"""NeMo Curator's fixed-stride clips of videos, by Curator's own formulas.

Curator 1.4.0 reads a video's metadata with ffprobe (utils/decoder_utils.py,
extract_video_metadata): fps is the video stream's avg_frame_rate, num/den;
the duration is the stream's "duration" as ffprobe prints it, else the
format's; num_frames = int(duration * fps). FixedStrideExtractorStage then
cuts [0, num_frames / fps) into clips of clip_len_s every stride_s, keeping
those of min_clip_length_s or more, and names each
uuid5(NAMESPACE_URL, f"{path}_{int(start * fps)}_{int(end * fps)}").

This script does the same, in Python's double arithmetic as Curator does,
and prints one JSON object: {path: [[uuid, start_s, end_s], ...], ...}, or
with --lines one clip a line: "uuid start_s end_s" (repr of the floats).
The test suite (curate::fixed_stride_clips_are_curators) runs it beside
reel-curate on the same paths.

    tests/curator/fixed_stride.py [--len 10] [--stride 10] [--min 2] [--lines] PATH...
"""
import argparse
import json
import subprocess
import sys
import uuid


def metadata(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of",
                          "json", path], check=True, capture_output=True).stdout
    info = json.loads(out)
    video = [s for s in info["streams"] if s["codec_type"] == "video"][-1]
    num, den = map(int, video["avg_frame_rate"].split("/"))
    fps = num / den
    duration = float(video["duration"] if "duration" in video else info["format"]["duration"])
    return fps, int(duration * fps)


def clips(path, clip_len, stride, min_len):
    fps, num_frames = metadata(path)
    duration = num_frames / fps if fps > 0 else -1
    start, out = 0.0, []
    while start < duration:
        end = min(start + clip_len, duration)
        if end - start >= min_len:
            name = f"{path}_{int(start * fps)}_{int(end * fps)}"
            out.append([str(uuid.uuid5(uuid.NAMESPACE_URL, name)), start, end])
        start += stride
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--len", type=float, default=10.0)
    ap.add_argument("--stride", type=float, default=10.0)
    ap.add_argument("--min", type=float, default=2.0)
    ap.add_argument("--lines", action="store_true")
    ap.add_argument("paths", nargs="+")
    a = ap.parse_args()
    found = {p: clips(p, a.len, a.stride, a.min) for p in a.paths}
    if a.lines:
        for p in a.paths:
            for u, start, end in found[p]:
                print(f"{u} {start!r} {end!r}")
    else:
        json.dump(found, sys.stdout)


if __name__ == "__main__":
    main()
