#!/usr/bin/env bash
# One command: install what is missing, build, run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
bash scripts/samples.sh
bash scripts/build.sh -DREEL_WERROR=ON
ctest --test-dir build --output-on-failure --timeout 300 -j 2
# The same suite under AddressSanitizer + UBSan. Criterion's own runner leaks a
# few bytes per run when it forks workers: that one library is suppressed.
REEL_BUILD_DIR=build-asan bash scripts/build.sh -DREEL_WERROR=ON -DREEL_ASAN=ON
LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp \
  ctest --test-dir build-asan --output-on-failure --timeout 600 -j 2
