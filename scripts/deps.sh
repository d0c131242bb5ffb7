#!/usr/bin/env bash
# Installs the Debian packages reel needs, only those missing. Idempotent.
set -euo pipefail
packages=(build-essential cmake pkg-config clang-format
          liburing-dev libxxhash-dev libmsgpack-dev libcriterion-dev
          libavformat-dev libavcodec-dev libswscale-dev libavutil-dev ffmpeg
          gnuplot-nox)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "reel: installing ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
