#!/usr/bin/env bash
# Installs the Debian packages reel needs, only those missing, and the locale
# its tests need. Idempotent.
set -euo pipefail
packages=(build-essential cmake pkg-config clang-format
          liburing-dev libxxhash-dev libmsgpack-dev libcriterion-dev
          libavformat-dev libavcodec-dev libswscale-dev libswresample-dev libavutil-dev ffmpeg
          gnuplot-nox locales python3 python3-venv python3-pip)
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "reel: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# A locale whose decimal separator is a comma, for the test that numbers in
# reel's files and flags ignore the locale (test_config.c). Debian generates
# the locales /etc/locale.gen lists; a fresh system lists none.
if ! locale -a 2>/dev/null | grep -qix 'de_DE\.utf-\?8'; then
  echo "reel: generating the de_DE.UTF-8 locale"
  if grep -q '^# *de_DE\.UTF-8 UTF-8' /etc/locale.gen 2>/dev/null; then
    $SUDO sed -i 's/^# *\(de_DE\.UTF-8 UTF-8\)/\1/' /etc/locale.gen
  elif ! grep -qx 'de_DE\.UTF-8 UTF-8' /etc/locale.gen 2>/dev/null; then
    echo 'de_DE.UTF-8 UTF-8' | $SUDO tee -a /etc/locale.gen >/dev/null
  fi
  $SUDO locale-gen
fi

# reel-cluster (cluster/) and its tests: a virtual environment in the
# checkout's .venv (git-ignored), with Ray at the version bench/ray pins and
# reel-cluster installed editable from this checkout. In the checkout, not in
# /opt: it needs no root, each checkout's editable install points at its own
# cluster/, and it goes with the checkout. pip's cache keeps a rebuild quick.
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.venv"
ray_pin=$(grep -E '^ray==' "$root/bench/ray/requirements.txt")
if [ ! -x "$venv/bin/python" ]; then
  echo "reel: making the virtual environment $venv"
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import sys, ray; sys.exit(ray.__version__ != '${ray_pin#ray==}')" 2>/dev/null; then
  echo "reel: installing $ray_pin into $venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "$ray_pin"
fi
if ! "$venv/bin/python" -c "import sys, reel_cluster; sys.exit(not reel_cluster.__file__.startswith('$root/cluster/'))" 2>/dev/null; then
  echo "reel: installing reel-cluster (cluster/) into $venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -e "$root/cluster"
fi
