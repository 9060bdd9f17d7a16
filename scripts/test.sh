#!/usr/bin/env bash
# Builds kvik and runs the whole test suite (CTest) in three builds, then the Python package's:
#   normal  gcc, RelWithDebInfo (with the Python extension module, KVIK_PYTHON=ON)
#   asan    clang, AddressSanitizer + UndefinedBehaviorSanitizer
#   tsan    clang, ThreadSanitizer
#   python  `pip install .` into a virtual environment under the build root, with pytest, numpy
#           and safetensors, then pytest python/tests (device tests through normal's fake
#           libcuda); skipped, saying why, when pip cannot reach a package index
# Usage: scripts/test.sh [normal|asan|tsan|python ...]   (default: all four, in that order)
# Environment: BUILD_ROOT (default: build), JOBS (default: online CPUs), KVIK_SKIP_SETUP=1 to skip
# scripts/setup.sh (the package check), PYTHON (default: python3) for the python step.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
[[ ${KVIK_SKIP_SETUP:-0} == 1 ]] || scripts/setup.sh

builds=("$@")
[[ ${#builds[@]} -gt 0 ]] || builds=(normal asan tsan python)
for b in "${builds[@]}"; do
  [[ $b == normal || $b == asan || $b == tsan || $b == python ]] || {
    echo "test.sh: unknown build '$b' (normal, asan, tsan or python)" >&2
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
  local name=$1 cc=$2 sanitize=$3 prefix=() extra=()
  local dir=$build_root/$name start=$SECONDS
  echo "=== $name: $cc${sanitize:+, -fsanitize=$sanitize} (in $dir)"
  # The normal build also compiles the Python extension module (the GPU machine's route), where
  # Python's headers are installed.
  if [[ -z $sanitize ]] && python_has_headers; then
    extra=(-DKVIK_PYTHON=ON -DPython_EXECUTABLE="$(command -v "${PYTHON:-python3}")")
  fi
  cmake -S . -B "$dir" -G Ninja -DCMAKE_C_COMPILER="$cc" -DKVIK_SANITIZE="$sanitize" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=ON "${extra[@]}" >/dev/null || return 1
  cmake --build "$dir" -j "$jobs" || return 1
  if [[ $sanitize == thread ]]; then
    read -r -a prefix <<<"$(tsan_prefix)"
    [[ ${#prefix[@]} -eq 0 ]] || echo "=== $name: running without ASLR (${prefix[*]})"
  fi
  (cd "$dir" && "${prefix[@]}" ctest --output-on-failure -j "$jobs" --timeout 1200) || return 1
  echo "=== $name: passed in $((SECONDS - start)) s"
}

python_has_headers() {
  "${PYTHON:-python3}" -c 'import os, sysconfig, sys
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' 2>/dev/null
}

# The Python package: installed from the checkout as the README says, tested with pytest. A venv
# keeps pip away from the system's python. Only a package index out of reach skips the step.
run_python() {
  local py=${PYTHON:-python3} venv=$build_root/python/venv start=$SECONDS
  [[ $venv == /* ]] || venv=$root/$venv
  echo "=== python: pip install . into $venv, then pytest python/tests"
  if ! command -v "$py" >/dev/null 2>&1; then
    echo "=== python: SKIP: no $py on PATH"
    return 0
  fi
  if [[ ! -x $venv/bin/python ]]; then
    "$py" -m venv "$venv" || {
      echo "=== python: FAILED: $py -m venv (install python3-venv)"
      return 1
    }
  fi
  if ! "$venv/bin/python" -m pip install -q pytest numpy safetensors; then
    echo "=== python: SKIP: pip could not install pytest, numpy and safetensors (no package index reachable?)"
    return 0
  fi
  "$venv/bin/python" -m pip install -q . || return 1
  local fake=$build_root/normal/tests/fake/lib
  [[ $fake == /* ]] || fake=$root/$fake
  (cd python/tests && KVIK_TEST_FAKE_CUDA_DIR=$fake "$venv/bin/python" -m pytest -q -rs \
    -p no:cacheprovider .) || return 1
  echo "=== python: passed in $((SECONDS - start)) s"
}

# Every build runs even when an earlier one fails, so one run shows every failure.
failed=()
for b in "${builds[@]}"; do
  case $b in
  normal) run_build normal gcc "" || failed+=("$b") ;;
  asan) run_build asan clang "address,undefined" || failed+=("$b") ;;
  tsan) run_build tsan clang "thread" || failed+=("$b") ;;
  python) run_python || failed+=("$b") ;;
  esac
done
if [[ ${#failed[@]} -ne 0 ]]; then
  echo "=== FAILED: ${failed[*]}"
  exit 1
fi
echo "=== all builds passed: ${builds[*]}"
