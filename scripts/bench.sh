#!/usr/bin/env bash
# Sets up, builds kvik (Release) and runs `kvik bench` on the default workload: a 1 GiB file in
# $TMPDIR (or /tmp), written then read, page cache hot and cold, kvik against a one-thread
# pwrite/pread baseline, median of 3 runs. Arguments go to `kvik bench` (see
# `kvik bench --help`), e.g. scripts/bench.sh --size 8G --json.
# Environment: BUILD_ROOT (default: build), KVIK_SKIP_SETUP=1 to skip scripts/setup.sh.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
[[ ${KVIK_SKIP_SETUP:-0} == 1 ]] || scripts/setup.sh
dir=${BUILD_ROOT:-build}/release
cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
cmake --build "$dir" --target kvik-tool
exec "$dir/tools/kvik/kvik" bench "$@"
