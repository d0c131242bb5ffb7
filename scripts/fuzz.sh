#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/) into build-fuzz with clang and runs them.
#
#   scripts/fuzz.sh --ci [TARGET...]        replay fuzz/regressions/, then a short fixed
#                                           run per target; non-zero exit on any finding
#   scripts/fuzz.sh --hours N [TARGET...]   fuzz each target N hours (by hand)
#   scripts/fuzz.sh --runs N [TARGET...]    fuzz each target for N executions (by hand)
#   scripts/fuzz.sh --build-only            build (reel-fuzz-seeds too), run nothing
#   scripts/fuzz.sh TARGET...               fuzz those targets until Ctrl-C
#
# Targets: ctl meta segment media (all four when none is named). By hand, the
# new inputs a target finds accumulate in build-fuzz/corpus/<target>/ (kept
# from run to run; the checked-in seeds in fuzz/corpus/<target>/ are read,
# never written); in --ci they go to a scratch directory that is removed.
# A finding (crash, sanitizer report, leak, hang over 10 s) is written to
# build-fuzz/artifacts/<target>/: reproduce it with
#   build-fuzz/fuzz/reel-fuzz-<target> <file>
# then fix it and check the file in under fuzz/regressions/<target>/, which
# every --ci run replays. Extra libFuzzer flags: REEL_FUZZ_ARGS="-jobs=2 ...".
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=${REEL_FUZZ_BUILD_DIR:-build-fuzz}
all=(ctl meta segment media)

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; }

mode=forever
limit=
targets=()
while [ $# -gt 0 ]; do
  case $1 in
    --ci) mode=ci ;;
    --hours) mode=hours; limit=${2:?--hours needs a number}; shift ;;
    --runs) mode=runs; limit=${2:?--runs needs a number}; shift ;;
    --build-only) mode=build ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) [[ " ${all[*]} " == *" $1 "* ]] || { echo "fuzz.sh: no target $1 (${all[*]})" >&2; exit 2; }
       targets+=("$1") ;;
  esac
  shift
done
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
if [ "$mode" = hours ] || [ "$mode" = runs ]; then
  [[ $limit =~ ^[0-9]+([.][0-9]+)?$ ]] || { echo "fuzz.sh: not a number: $limit" >&2; exit 2; }
fi

# clang and its libFuzzer runtime (Debian: clang, libclang-rt-dev), as deps.sh installs the rest.
if ! command -v clang >/dev/null || ! ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
  bash scripts/deps.sh
  echo "fuzz.sh: installing clang and libclang-rt-dev"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends clang libclang-rt-dev
fi

# No CUDA here: the targets never reach the preprocess kernel, and nvcc would
# not take the sanitizer flags. No tests: Criterion has its own build trees.
CC=clang cmake -S . -B "$build" -DREEL_FUZZ=ON -DREEL_TESTS=OFF \
  -DCMAKE_DISABLE_FIND_PACKAGE_CUDAToolkit=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
bins=()
for t in "${targets[@]}"; do bins+=(--target "reel-fuzz-$t"); done
[ "$mode" = build ] && bins=(--target reel-fuzz) # the four and reel-fuzz-seeds
cmake --build "$build" -j "$(nproc)" "${bins[@]}"
[ "$mode" = build ] && exit 0

timeout=10 # seconds: a slower input is a hang, and a finding
# Per target: the largest input worth trying. Control packets and metadata
# are small; a store file must hold a header and its tables (the seeds are
# 36 KiB); a video past 16 KiB mostly costs time.
max_len() {
  case $1 in
    ctl|meta) echo 4096 ;;
    segment) echo 65536 ;;
    media) echo 16384 ;;
  esac
}

# Files a target left behind if it died mid-run (each target also removes
# those of dead processes when it starts).
sweep() {
  local f pid
  for f in /dev/shm/reel-fuzz-segment-* /tmp/reel-fuzz-media-*; do
    [ -e "$f" ] || continue
    pid=${f##*-}
    kill -0 "$pid" 2>/dev/null && continue
    if [ -d "$f" ]; then rm -f "$f/a"; rmdir "$f" 2>/dev/null || true; else rm -f "$f"; fi
  done
}
trap sweep EXIT

failed=()
for t in "${targets[@]}"; do
  bin=$root/$build/fuzz/reel-fuzz-$t
  seeds=$root/fuzz/corpus/$t
  art=$root/$build/artifacts/$t
  mkdir -p "$art"
  common=(-timeout="$timeout" -max_len="$(max_len "$t")" -artifact_prefix="$art/"
          -print_final_stats=1)
  # shellcheck disable=SC2206
  extra=(${REEL_FUZZ_ARGS:-})
  if [ "$mode" = ci ]; then
    regressions=("$root/fuzz/regressions/$t"/*)
    if [ -e "${regressions[0]}" ]; then
      echo "fuzz.sh: $t: replaying ${#regressions[@]} regression inputs"
      if ! "$bin" "${common[@]}" "${regressions[@]}" >"$art/replay.log" 2>&1; then
        tail -n 40 "$art/replay.log" >&2
        failed+=("$t (regressions)")
        continue
      fi
    fi
    # Fixed seed and run count: the same mutations every time, capped in
    # time so that a slow machine still finishes (all four: ~1 minute).
    work=$(mktemp -d)
    echo "fuzz.sh: $t: 20000 runs from the seed corpus"
    if "$bin" "${common[@]}" -seed=1 -runs=20000 -max_total_time=30 "${extra[@]}" \
        "$work" "$seeds" >"$art/ci.log" 2>&1; then
      grep -E '^(Done|stat::number_of_executed_units)' "$art/ci.log" | sed "s/^/fuzz.sh: $t: /"
    else
      tail -n 60 "$art/ci.log" >&2
      failed+=("$t")
    fi
    rm -rf "$work"
  else
    corpus=$root/$build/corpus/$t
    mkdir -p "$corpus"
    case $mode in
      hours) run=(-max_total_time="$(awk -v h="$limit" 'BEGIN { printf "%d", h * 3600 }')") ;;
      runs) run=(-runs="$limit") ;;
      *) run=() ;;
    esac
    echo "fuzz.sh: $t: fuzzing (new inputs in $corpus, findings in $art)"
    start=$(date +%s)
    if ! "$bin" "${common[@]}" "${run[@]}" "${extra[@]}" "$corpus" "$seeds"; then
      failed+=("$t")
    fi
    echo "fuzz.sh: $t: $(( $(date +%s) - start )) s, corpus $(find "$corpus" -type f | wc -l) files"
  fi
  sweep
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: FAILED: ${failed[*]} (inputs in $build/artifacts/<target>/)" >&2
  exit 1
fi
echo "fuzz.sh: ok: ${targets[*]}"
