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
# And under ThreadSanitizer: the whole suite, every process halting on its
# first report. Reports go to files, so that one in a forked worker, whose
# death the runtime would survive, still fails the run. Criterion starts under
# TSan only with tests/tsan_criterion.c, linked in by REEL_TSAN; see
# docs/RELIABILITY.md for what TSan checks and what it cannot.
# The fuzz targets, briefly: every regression input, then 20,000 executions
# each (scripts/fuzz.sh; it installs clang where it is missing).
bash scripts/fuzz.sh --ci
REEL_BUILD_DIR=build-tsan bash scripts/build.sh -DREEL_WERROR=ON -DREEL_TSAN=ON
rm -rf build-tsan/tsan-reports && mkdir -p build-tsan/tsan-reports
tsan_rc=0
TSAN_OPTIONS="halt_on_error=1 log_path=$PWD/build-tsan/tsan-reports/report" \
  ctest --test-dir build-tsan --output-on-failure --timeout 600 -j 2 || tsan_rc=$?
if compgen -G "build-tsan/tsan-reports/report*" >/dev/null; then
  cat build-tsan/tsan-reports/report* >&2
  echo "ThreadSanitizer reported the above" >&2
  tsan_rc=1
fi
exit "$tsan_rc"
