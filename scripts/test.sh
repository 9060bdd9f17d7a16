#!/usr/bin/env bash
# Builds kvik and runs the whole test suite (CTest) in three builds:
#   normal  gcc, RelWithDebInfo
#   asan    clang, AddressSanitizer + UndefinedBehaviorSanitizer
#   tsan    clang, ThreadSanitizer
# Usage: scripts/test.sh [normal|asan|tsan ...]   (default: all three, in that order)
# Environment: BUILD_ROOT (default: build), JOBS (default: online CPUs), KVIK_SKIP_SETUP=1 to skip
# scripts/setup.sh (the package check).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
[[ ${KVIK_SKIP_SETUP:-0} == 1 ]] || scripts/setup.sh

builds=("$@")
[[ ${#builds[@]} -gt 0 ]] || builds=(normal asan tsan)
for b in "${builds[@]}"; do
  [[ $b == normal || $b == asan || $b == tsan ]] || {
    echo "test.sh: unknown build '$b' (normal, asan or tsan)" >&2
    exit 2
  }
done
build_root=${BUILD_ROOT:-build}
jobs=${JOBS:-$(nproc)}

# Sanitizer reports fail the test that triggers them, with a stack.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1:strict_string_checks=1:check_initialization_order=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}

# ThreadSanitizer's runtime cannot start when the kernel randomizes mmap with more bits than it
# expects ("unexpected memory mapping"); running without address-space randomization fixes it.
tsan_prefix() {
  local probe
  probe=$(mktemp -d)
  printf 'int main(void) { return 0; }\n' >"$probe/t.c"
  if clang -fsanitize=thread "$probe/t.c" -o "$probe/t" 2>/dev/null && ! "$probe/t" >/dev/null 2>&1 &&
    setarch "$(uname -m)" -R "$probe/t" >/dev/null 2>&1; then
    echo "setarch $(uname -m) -R"
  fi
  rm -rf "$probe"
}

# Runs one build and its tests; returns non-zero on the first failing step. (Called from an
# `if`, where `set -e` does not apply, hence the explicit checks.)
run_build() {
  local name=$1 cc=$2 sanitize=$3 prefix=()
  local dir=$build_root/$name start=$SECONDS
  echo "=== $name: $cc${sanitize:+, -fsanitize=$sanitize} (in $dir)"
  cmake -S . -B "$dir" -G Ninja -DCMAKE_C_COMPILER="$cc" -DKVIK_SANITIZE="$sanitize" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=ON >/dev/null || return 1
  cmake --build "$dir" -j "$jobs" || return 1
  if [[ $sanitize == thread ]]; then
    read -r -a prefix <<<"$(tsan_prefix)"
    [[ ${#prefix[@]} -eq 0 ]] || echo "=== $name: running without ASLR (${prefix[*]})"
  fi
  (cd "$dir" && "${prefix[@]}" ctest --output-on-failure -j "$jobs" --timeout 1200) || return 1
  echo "=== $name: passed in $((SECONDS - start)) s"
}

# Every build runs even when an earlier one fails, so one run shows every failure.
failed=()
for b in "${builds[@]}"; do
  case $b in
  normal) run_build normal gcc "" || failed+=("$b") ;;
  asan) run_build asan clang "address,undefined" || failed+=("$b") ;;
  tsan) run_build tsan clang "thread" || failed+=("$b") ;;
  esac
done
if [[ ${#failed[@]} -ne 0 ]]; then
  echo "=== FAILED: ${failed[*]}"
  exit 1
fi
echo "=== all builds passed: ${builds[*]}"
