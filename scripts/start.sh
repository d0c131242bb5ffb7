#!/usr/bin/env bash
# One command: install what is missing, build, run the main job.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
bash scripts/samples.sh
bash scripts/build.sh
# The main job: the built-in sample videos curated into ./reel-out (flags: reel-curate --help).
exec ./build/reel-curate "$@"
