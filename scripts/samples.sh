#!/usr/bin/env bash
# Fetches the sample videos the stage tests read into samples/, from Debian
# packages that are downloaded and unpacked, never installed. Idempotent: a
# file already there with the right SHA-256 is kept. A wrong hash is an error.
set -euo pipefail
cd "$(dirname "$0")/.."

# file, package, SHA-256
samples=(
  "oa4_launch.webm renpy-demo      1a32f2934354c655d5687d1628269e24796dfd75d5a7847ae8d886bf38d0a992"
  "cockatoo.mp4    python3-imageio 5fde35f5a288ca86e216d2dc28188ab64b4560d3021f273faefdf0de80f38aa5"
  "realshort.mp4   python3-imageio a8b35c2c2130453b9ea1172ad4af68ac027bc2483ef0545769684722127bfe18"
  "diver.mov       pd-extendedview 42cd4a53a0adc4819f5ceaa8edf2d090dc0e522881f219a7bd0193d2f93645e9"
)

sha() { sha256sum "$1" | cut -d' ' -f1; }

mkdir -p samples
missing=()
for s in "${samples[@]}"; do
  read -r file pkg hash <<<"$s"
  if [ -f "samples/$file" ] && [ "$(sha "samples/$file")" = "$hash" ]; then
    continue
  fi
  missing+=("$s")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# apt downloads as the _apt user where it can: let it write there.
if [ -z "$SUDO" ] && id _apt >/dev/null 2>&1; then chown _apt "$tmp"; fi

download() { (cd "$tmp" && apt-get download -qq "$@") >/dev/null 2>&1; }

updated=0
for s in "${missing[@]}"; do
  read -r file pkg hash <<<"$s"
  if ! ls "$tmp/$pkg"_*.deb >/dev/null 2>&1; then
    echo "reel: fetching $pkg for samples/$file"
    if ! download "$pkg"; then
      if [ $updated -eq 0 ]; then
        $SUDO apt-get update -qq
        updated=1
      fi
      if ! download "$pkg"; then
        echo "reel: cannot download Debian package $pkg (for samples/$file)" >&2
        exit 1
      fi
    fi
    mkdir -p "$tmp/$pkg"
    dpkg-deb -x "$tmp/$pkg"_*.deb "$tmp/$pkg"
  fi
  # Where the package keeps it, as its file list says.
  inside=$(dpkg-deb -c "$tmp/$pkg"_*.deb | awk '{print $NF}' | grep -E "/${file//./\\.}\$" | head -n 1)
  if [ -z "$inside" ]; then
    echo "reel: package $pkg has no file named $file" >&2
    exit 1
  fi
  got=$(sha "$tmp/$pkg/$inside")
  if [ "$got" != "$hash" ]; then
    echo "reel: $file from $pkg has SHA-256 $got, expected $hash" >&2
    exit 1
  fi
  cp "$tmp/$pkg/$inside" "samples/$file.part"
  mv "samples/$file.part" "samples/$file"
  echo "reel: samples/$file ready"
done
