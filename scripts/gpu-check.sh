#!/usr/bin/env bash
# Run on a machine with an NVIDIA GPU and its driver (never in CI): builds
# reel, runs the GPU tests - which must not skip there: pinned store arena,
# H2D/D2H round trip, a device tensor put by one process and read by a forked
# one through CUDA IPC - then reel-bench's host-to-device figures if it has them.
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
echo "gpu-check: passed"
