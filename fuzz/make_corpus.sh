#!/usr/bin/env bash
# Regenerates the seed corpora under fuzz/corpus/ (checked in; run by hand
# only when an encoding changes): ctl, meta and segment from reel's own
# encoders (reel-fuzz-seeds, built by scripts/fuzz.sh into build-fuzz), media
# from the ffmpeg program: tiny videos (16x16, 3 frames) in the containers and
# codecs the reader meets, a still image, a cover-art file and a cut MP4.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${REEL_FUZZ_BUILD_DIR:-build-fuzz}
seeds=$build/fuzz/reel-fuzz-seeds
[ -x "$seeds" ] || { echo "make_corpus.sh: build $seeds first (bash scripts/fuzz.sh --build-only)" >&2; exit 1; }

corpus=fuzz/corpus
rm -rf "${corpus:?}/ctl" "${corpus:?}/meta" "${corpus:?}/segment" "${corpus:?}/media"
"$seeds" "$corpus"

m=$corpus/media
mkdir -p "$m"
ff() { ffmpeg -nostdin -hide_banner -loglevel error -y "$@"; }
src=(-f lavfi -i "testsrc=size=16x16:rate=10")
out=(-frames:v 3)
exact=(-map_metadata -1 -fflags +bitexact -flags:v +bitexact -flags:a +bitexact)
ff "${src[@]}" "${out[@]}" -c:v libx264 -preset ultrafast -pix_fmt yuv420p -movflags +faststart "${exact[@]}" "$m/h264.mp4"
ff "${src[@]}" -f lavfi -i "sine=frequency=440:duration=0.3" "${out[@]}" -c:v libx264 -preset ultrafast \
   -pix_fmt yuv420p -c:a aac -b:a 16k "${exact[@]}" "$m/h264-aac.mp4"
ff "${src[@]}" "${out[@]}" -c:v libvpx-vp9 -deadline realtime -b:v 20k "${exact[@]}" "$m/vp9.webm"
ff "${src[@]}" "${out[@]}" -c:v libvpx -deadline realtime -b:v 20k "${exact[@]}" "$m/vp8.webm"
ff "${src[@]}" "${out[@]}" -c:v mjpeg -q:v 10 "${exact[@]}" "$m/mjpeg.mov"
ff "${src[@]}" "${out[@]}" -c:v mpeg4 -q:v 10 "${exact[@]}" "$m/mpeg4.mkv"
ff "${src[@]}" "${out[@]}" -c:v ffv1 "${exact[@]}" "$m/ffv1.mkv"
ff "${src[@]}" "${out[@]}" -c:v gif "${exact[@]}" "$m/anim.gif"
ff -f lavfi -i "testsrc=size=16x16:rate=1" -frames:v 1 -c:v mjpeg -q:v 10 "${exact[@]}" "$m/still.jpg"
# Audio with a cover picture and no video stream: the reader must refuse it.
ff -f lavfi -i "testsrc=size=16x16:rate=1" -frames:v 1 "${exact[@]}" "$corpus/cover.png"
ff -f lavfi -i "sine=frequency=440:duration=0.3" -i "$corpus/cover.png" -map 0:a -map 1:v \
   -c:a aac -b:a 16k -c:v png -disposition:v attached_pic "${exact[@]}" "$m/cover-art.m4a"
rm -f "$corpus/cover.png"
# A cut file: the first half of the MP4 (moov first, so it opens, then ends early).
head -c "$(( $(stat -c %s "$m/h264.mp4") / 2 ))" "$m/h264.mp4" >"$m/h264-cut.mp4"
du -sh "$corpus"/*
