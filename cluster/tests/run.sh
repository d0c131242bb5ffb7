#!/usr/bin/env bash
# Runs reel-cluster's tests with the checkout's virtual environment, which
# scripts/deps.sh makes; without it the test is skipped (ctest's 77).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
if [ ! -x "$root/.venv/bin/python" ]; then
  echo "reel_cluster: no $root/.venv (bash scripts/deps.sh makes it): skipped" >&2
  exit 77
fi
cd "$root"
export RAY_USAGE_STATS_ENABLED=0  # no report home from a test
exec "$root/.venv/bin/python" -W ignore::ResourceWarning cluster/tests/test_cluster.py
