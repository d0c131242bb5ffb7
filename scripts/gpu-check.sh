#!/usr/bin/env bash
# Run on a machine with an NVIDIA GPU and its driver (never in CI): builds
# reel, runs the GPU tests - which must not skip there: pinned store arena,
# H2D/D2H round trip, a device tensor put by one process and read by a forked
# one through CUDA IPC - then reel-bench's host-to-device figures if it has
# them; then reel-curate on the samples with --write-tensors, whose tensors
# must all be made on the GPU (the preprocess stage's GPU share and kernel),
# and, where FFmpeg has h264_nvenc and NVDEC, a run that decodes and encodes
# on the GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${REEL_BUILD_DIR:-build-gpu-check}
nvidia-smi -L
bash scripts/deps.sh
REEL_BUILD_DIR=$build CMAKE_BUILD_TYPE=Release bash scripts/build.sh -DREEL_WERROR=ON
"$build/test_gpu" --verbose --jobs 1 2>&1 | tee "$build/test_gpu.log"
# Only the no-GPU test may skip ("a GPU is present").
if grep 'SKIP' "$build/test_gpu.log" | grep -qv 'a GPU is present'; then
  echo "gpu-check: a GPU test skipped on a GPU machine" >&2; exit 1
fi
# The preprocess stage's CUDA kernel against its CPU path (within 1e-5), in
# process and as a pipeline stage on a GPU share: neither may skip here (they
# do where the build found no nvcc: the kernel is then missing).
"$build/test_stage_frames" --verbose --jobs 1 --filter 'stage_frames/*gpu*' 2>&1 |
  tee "$build/test_stage_frames_gpu.log"
if grep 'SKIP' "$build/test_stage_frames_gpu.log" | grep -qv 'Test is disabled' ||
   ! grep -q 'PASS.*preprocess_stage_on_a_gpu_share' "$build/test_stage_frames_gpu.log"; then
  echo "gpu-check: the preprocess GPU tests did not run (is nvcc on PATH?)" >&2; exit 1
fi
if "$build/reel-bench" --help 2>&1 | grep -q -- '--spill'; then "$build/reel-bench" store --spill --quick; fi
# The curation pipeline's GPU side: the shares, hardware decode and NVENC
# (test_curate_gpu must not skip its GPU tests here), then reel-curate itself.
samples=${REEL_SAMPLES:-$PWD/samples}
REEL_CURATE="$build/reel-curate" REEL_SAMPLES="$samples" \
  "$build/test_curate_gpu" --verbose --jobs 1 2>&1 | tee "$build/test_curate_gpu.log"
# Only the no-GPU tests may skip ("this node has a GPU"), and the NVENC one
# where FFmpeg was built without it.
if grep 'SKIP' "$build/test_curate_gpu.log" | grep -v 'this node has a GPU' |
   grep -qv 'this FFmpeg has no h264_nvenc'; then
  echo "gpu-check: a curate_gpu test skipped on a GPU machine" >&2; exit 1
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/reel-gpu-check.XXXXXX")
trap 'rm -rf "$work"' EXIT
"$build/reel-curate" --video-dir "$samples" --output-clip-path "$work/tensors" \
  --write-tensors --no-previews 2>&1 | tee "$work/tensors.log"
# Every clip's tensor made on the GPU, and at least one made.
if ! grep -Eq '^reel-curate: tensors: [1-9][0-9]* clips on the GPU, 0 on the CPU$' "$work/tensors.log"; then
  echo "gpu-check: reel-curate --write-tensors did not make its tensors on the GPU" >&2; exit 1
fi
# reel-curate refuses the pair, naming the reason, where its FFmpeg lacks
# h264_nvenc or CUDA: --describe asks exactly that.
if "$build/reel-curate" --describe --transcode-encoder h264_nvenc --transcode-use-hwaccel \
     >/dev/null 2>"$work/nvenc-describe.log"; then
  "$build/reel-curate" --video-dir "$samples" --output-clip-path "$work/nvenc" \
    --transcode-encoder h264_nvenc --transcode-use-hwaccel 2>&1 | tee "$work/nvenc.log"
  if ! grep -Eq '^reel-curate: 4 of 4 videos curated, [1-9][0-9]* clips written, .* 0 videos failed' \
       "$work/nvenc.log"; then
    echo "gpu-check: reel-curate with h264_nvenc and NVDEC did not curate the samples" >&2; exit 1
  fi
else
  echo "gpu-check: the NVENC/NVDEC run is left out: $(cat "$work/nvenc-describe.log")"
fi
echo "gpu-check: passed"
