#!/usr/bin/env bash
# One command: install what is missing, build, run the main job.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
bash scripts/build.sh
# The main job (reel-curate) does not exist yet; until it does, a short store demo runs.
exec ./build/reel-store-demo "$@"
