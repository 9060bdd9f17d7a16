#!/usr/bin/env bash
# Runs kvik's unit tests under valgrind memcheck (DESIGN.md, section 4): every test below must
# exit 0 under valgrind with no memory error and no definitely or indirectly lost block. The
# build is the normal one (gcc, RelWithDebInfo, $BUILD_ROOT/normal, as scripts/test.sh makes it);
# CTest's memcheck mode wraps each test's command in valgrind.
#
# Usage: scripts/valgrind.sh [CTEST_REGEX]   (default: the list below)
#
# valgrind's error status is 99, not 1: processes that tests fork are checked too, and a child's
# exit status is part of some tests' protocol (test_faults reads 1 as "done"), so a status of its
# own makes a child's report fail the test instead of passing for something else.
# Environment: BUILD_ROOT (default build), JOBS (default: online CPUs).
#
# Not counted as errors: "possibly lost" blocks (what only an interior pointer reaches: the
# thread-local storage of pool workers that are still alive at exit, and the slabs that kvik
# keeps for the life of the process and hands out piecewise) and "still reachable" ones (caches
# kept until exit on purpose). Suppressions, each with its reason, are in tests/valgrind.supp.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
command -v valgrind >/dev/null || {
  echo "valgrind.sh: valgrind not found (apt-get install valgrind; scripts/setup.sh installs it)" >&2
  exit 2
}
# The unit tests, the fake-CUDA and fake-cuFile tests, and the URL parser's. Left out: tests
# that are shell scripts (cli, install, cuda_cli_device, so_ptx_current), the remote tests that
# move hundreds of MiB through servers (valgrind's slowdown makes their timeouts meaningless),
# and the torture and soak drivers (tests/torture/run.sh runs its own valgrind sample).
regex=${1:-'^(errors|config|pool|pool_nested|bad_input|faults|io_grid\..*|remote_url|cuda_fake|cuda_memkind|cuda_load_.*|cuda_devio\..*|cufile\..*|cufile_scenario\..*)$'}
dir=${BUILD_ROOT:-build}/normal
jobs=${JOBS:-$(nproc)}
opts="--error-exitcode=99 --leak-check=full --show-leak-kinds=definite,indirect"
opts+=" --errors-for-leak-kinds=definite,indirect --child-silent-after-fork=yes --num-callers=30"
cmake -S . -B "$dir" -G Ninja -DCMAKE_C_COMPILER=gcc -DKVIK_SANITIZE= \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=ON \
  -DMEMORYCHECK_COMMAND="$(command -v valgrind)" -DMEMORYCHECK_COMMAND_OPTIONS="$opts" \
  -DMEMORYCHECK_SUPPRESSIONS_FILE="$root/tests/valgrind.supp" >/dev/null
cmake --build "$dir" -j "$jobs"
start=$SECONDS
cd "$dir"
# Tests that hand the kernel deliberately bad buffers skip those cases under valgrind, saying so.
export KVIK_TEST_VALGRIND=1
rm -f Testing/Temporary/MemoryChecker.*.log Testing/Temporary/LastTestsFailed*.log
if ctest -T memcheck -R "$regex" -j "$jobs" --timeout 3000 --output-on-failure; then
  echo "=== valgrind: all passed in $((SECONDS - start)) s"
  exit 0
fi
# Each failing test's valgrind report (CTest keeps it in a file of its own).
for f in Testing/Temporary/LastTestsFailed*.log; do
  [[ -e $f ]] || continue
  while IFS=: read -r num name; do
    echo "=== valgrind report of $name:"
    grep -E '^==[0-9]+== ' "Testing/Temporary/MemoryChecker.$num.log" 2>/dev/null |
      grep -vE 'Memcheck, a memory|Copyright|Using Valgrind|Command:|Parent PID' || true
  done <"$f"
done
echo "=== valgrind: FAILED after $((SECONDS - start)) s"
exit 1
