#!/usr/bin/env bash
# One command: install what is missing, build, run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
bash scripts/build.sh -DREEL_WERROR=ON
ctest --test-dir build --output-on-failure --timeout 300 -j 2
