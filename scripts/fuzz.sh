#!/usr/bin/env bash
# Builds kvik's libFuzzer harnesses (clang, ASan+UBSan) and runs each one for a bounded time on a
# copy of its checked-in corpus (tests/fuzz/corpus/NAME), so the checked-in seeds stay as they are.
# Usage: scripts/fuzz.sh [SECONDS_PER_HARNESS] [NAME...]   (default 60 s, every harness)
# Environment: BUILD_ROOT (default build). Exit status: non-zero if a harness found a crash; the
# crashing input is left in $BUILD_ROOT/fuzz-out/NAME/ and named in the output.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
secs=${1:-60}
shift || true
dir=${BUILD_ROOT:-build}/fuzz
cmake -S . -B "$dir" -G Ninja -DCMAKE_C_COMPILER=clang -DKVIK_FUZZ=ON \
  -DKVIK_SANITIZE=address,undefined -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF >/dev/null
cmake --build "$dir" -j "${JOBS:-$(nproc)}" >/dev/null
names=("$@")
if [[ ${#names[@]} -eq 0 ]]; then
  for f in tests/fuzz/fuzz_*.c; do
    n=$(basename "$f" .c)
    names+=("${n#fuzz_}")
  done
fi
out=${BUILD_ROOT:-build}/fuzz-out
failed=()
for n in "${names[@]}"; do
  rm -rf "$out/$n" && mkdir -p "$out/$n/corpus"
  [[ -d tests/fuzz/corpus/$n ]] && cp -r "tests/fuzz/corpus/$n/." "$out/$n/corpus/"
  echo "=== fuzz_$n: ${secs} s"
  if "$dir/tests/fuzz/fuzz_$n" -max_total_time="$secs" -artifact_prefix="$out/$n/" \
    -print_final_stats=1 "$out/$n/corpus" >"$out/$n/log" 2>&1; then
    grep -E '^stat::number_of_executed_units' "$out/$n/log" | sed "s/^/fuzz_$n: /"
  else
    tail -n 40 "$out/$n/log"
    echo "=== fuzz_$n: FAILED (input in $out/$n/)"
    failed+=("$n")
  fi
done
if [[ ${#failed[@]} -ne 0 ]]; then
  echo "=== fuzz: FAILED: ${failed[*]}"
  exit 1
fi
echo "=== fuzz: all passed: ${names[*]}"
