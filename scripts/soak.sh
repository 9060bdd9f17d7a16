#!/usr/bin/env bash
# The soak: random reads and writes, checked against plain pread, on a disk-backed directory and
# on tmpfs at once, while direct-I/O settings, bounce-buffer and task sizes, thread counts and
# pools change under them (tests/soak/soak.c says what exactly). Prints the seed first, progress
# every 10 s, then operations and bytes verified; exits non-zero on any mismatch or failed call.
# CTest runs it for 20 s in every build ('soak' test); this script runs it as long as you like.
#
# Usage: scripts/soak.sh [SECONDS] [--seed N] [--threads T] [--disk DIR] [--tmpfs DIR]
#   SECONDS defaults to 300; the seed to 1 (pass --seed $RANDOM for a new sequence: a failure
#   prints the seed that reproduces it).
# Environment: BUILD_ROOT (default build), SOAK_BUILD=normal|asan|tsan (default normal: the build
# directory and flags scripts/test.sh uses), JOBS (build parallelism).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
secs=300
if [[ $# -gt 0 && $1 != --* ]]; then
  secs=$1
  shift
fi
kind=${SOAK_BUILD:-normal}
prefix=()
case $kind in
normal) cc=gcc san= ;;
asan) cc=clang san=address,undefined ;;
tsan)
  cc=clang san=thread
  # As in scripts/test.sh: TSan's runtime wants the mmap layout without randomization.
  prefix=(setarch "$(uname -m)" -R)
  ;;
*)
  echo "soak.sh: SOAK_BUILD must be normal, asan or tsan" >&2
  exit 2
  ;;
esac
dir=${BUILD_ROOT:-build}/$kind
cmake -S . -B "$dir" -G Ninja -DCMAKE_C_COMPILER="$cc" -DKVIK_SANITIZE="$san" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=ON >/dev/null
cmake --build "$dir" -j "${JOBS:-$(nproc)}" --target soak >/dev/null
exec "${prefix[@]}" "$dir/tests/soak/soak" --seconds "$secs" "$@"
