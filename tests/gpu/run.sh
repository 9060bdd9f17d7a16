#!/usr/bin/env bash
# The real-GPU run, in one call: records the machine, builds kvik (gcc, RelWithDebInfo with
# asserts kept), runs the GPU tests against the system's libcuda.so.1, and benchmarks
# (`kvik bench --mem device`, hot and cold, and `--mem host`, hot), then prints a short table.
#
# Needs: gcc, cmake, ninja, the CUDA driver. cmocka comes from the system, else from the .deb
# files in .deb/ (unpacked with dpkg -x into a folder of its own; no network needed).
# Environment:
#   OUT                   where logs and JSON lines go (default .gpu/logs)
#   KVIK_GPU_SIZE         bytes for the round trip and the benchmarks (default 8G)
#   KVIK_GPU_WORK         build and data directory (default .gpu in the repository, git-ignored)
#   KVIK_GPU_BUDGET       seconds the whole run may take (default 500); a step that would start
#                         with less than 20 s left is skipped, and each runs under a timeout
#   KVIK_GPU_REPEAT       runs per benchmark measurement (default 2)
#   KVIK_GPU_STEPS        an extended regular expression: only the steps whose names match run
#                         (machine, build and info always do); default: every step. One device
#                         call may run 10 minutes, so a whole run is split over two calls.
#   KVIK_PEERS_PATH       directory of the safetensors loaders to compare with (pip --target);
#                         default $KVIK_GPU_WORK/peers. bench/loaders.py reports missing ones.
#   KVIK_PYTHON_WHEEL     a kvik wheel built elsewhere, used when this machine's python3 has no
#                         headers (Python.h) to build the extension module with CMake
# Exit status: 0 if every step passed, 1 otherwise.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
work=${KVIK_GPU_WORK:-$root/.gpu}
size=${KVIK_GPU_SIZE:-8G}
budget=${KVIK_GPU_BUDGET:-500}
repeat=${KVIK_GPU_REPEAT:-2}
logs=${OUT:-$work/logs}
build=$work/build
data=$work/data
mkdir -p "$logs" "$data"
rm -f "$logs"/bench.jsonl "$logs"/experiments.jsonl
start=$SECONDS
status=()

# step NAME MAX_SECONDS COMMAND...: runs COMMAND under a timeout, output to $logs/NAME.log (and
# the terminal's tail), and records the outcome for the table.
step() {
  local name=$1 max=$2
  shift 2
  if [[ -n ${KVIK_GPU_STEPS:-} && ! $name =~ ^(machine|build|info)$ && ! $name =~ ^(${KVIK_GPU_STEPS})$ ]]; then
    status+=("$name|not selected (KVIK_GPU_STEPS)|0")
    return 0
  fi
  local left=$((budget - (SECONDS - start)))
  if ((left < 20)); then
    status+=("$name|skipped (time budget spent)|0")
    echo "=== $name: skipped, ${left} s of the budget left"
    return 1
  fi
  ((max > left)) && max=$left
  echo "=== $name (up to ${max} s)"
  local t0=$SECONDS rc
  # Through bash -c, so COMMAND may be one of the functions below (exported).
  timeout --kill-after=10 "$max" bash -c '"$@"' "$name" "$@" >"$logs/$name.log" 2>&1
  rc=$?
  local took=$((SECONDS - t0)) what=passed
  ((rc == 124 || rc == 137)) && what="TIMED OUT after ${max} s"
  ((rc != 0 && rc != 124 && rc != 137)) && what="FAILED (exit $rc)"
  status+=("$name|$what|$took")
  tail -n "${TAIL_LINES:-25}" "$logs/$name.log"
  echo "=== $name: $what in ${took} s"
  return $rc
}

machine() {
  echo "date: $(date -u)"
  echo "kernel: $(uname -r), $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2 " GiB RAM"}')"
  nvidia-smi --query-gpu=index,name,memory.total,pci.bus_id,pcie.link.gen.max,pcie.link.width.max,driver_version \
    --format=csv 2>&1 || echo "nvidia-smi failed"
  echo "work directory: $work"
  findmnt -T "$work" -o TARGET,SOURCE,FSTYPE,OPTIONS 2>&1 | head -3
  df -h "$work" | tail -1
  lsmod 2>/dev/null | grep -E '^nvidia_fs|^nvidia ' || echo "(no nvidia_fs module)"
  cmake --version | head -1
  gcc --version | head -1
  ninja --version
}

# cmocka: the system's if the compiler finds it, else unpacked from .deb/.
deps() {
  KVIK_CMAKE_ARGS=""
  if [[ ${KVIK_GPU_FORCE_DEBS:-0} != 1 ]] && echo '#include <cmocka.h>' | gcc -E -include stdarg.h -include stddef.h -include setjmp.h \
    -include stdint.h - >/dev/null 2>&1; then
    echo "cmocka: from the system"
    return 0
  fi
  local prefix=/tmp/kvik-deps
  rm -rf "$prefix" && mkdir -p "$prefix"
  local deb found=0
  for deb in "$root"/.deb/libcmocka*.deb; do
    [[ -e $deb ]] || continue
    dpkg -x "$deb" "$prefix" || return 1
    found=1
    echo "unpacked $(basename "$deb")"
  done
  ((found)) || { echo "cmocka is not installed and .deb/ holds no libcmocka*.deb"; return 1; }
  # The .pc file in the .deb names /usr as its prefix: find cmocka by header and library
  # instead (tests/CMakeLists.txt falls back to that when pkg-config is not used).
  KVIK_CMAKE_ARGS="-DCMAKE_PREFIX_PATH=$prefix/usr -DCMAKE_DISABLE_FIND_PACKAGE_PkgConfig=ON"
  echo "cmocka: $prefix/usr ($(find "$prefix" -name 'libcmocka.so*' | head -3 | tr '\n' ' '))"
}

# The Python package: built by CMake into $build/python (KVIK_PYTHON=ON, no pip, no network)
# where python3 has its headers; else installed from $KVIK_PYTHON_WHEEL with pip --target.
python_has_headers() {
  python3 -c 'import os, sysconfig, sys
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' 2>/dev/null
}

configure_build() {
  local py=() targets=()
  if python_has_headers; then
    py=(-DKVIK_PYTHON=ON -DPython_EXECUTABLE="$(command -v python3)")
    targets=(kvik_python kvik_python_files)
  fi
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_C_COMPILER=gcc -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O2 -g" -DBUILD_TESTING=ON -DKVIK_GPU_TESTS=ON \
    -DKVIK_REMOTE=OFF $KVIK_CMAKE_ARGS "${py[@]}" &&
    ninja -C "$build" -j "$(nproc)" kvik-tool test_devio test_gpu_extra test_mmap_device \
      "${targets[@]}"
}

# Prints the directory to put on PYTHONPATH for `import kvik`, or fails saying why.
python_path() {
  if [[ -e $build/python/kvik/_kvik.abi3.so ]]; then
    echo "$build/python"
  elif [[ -n ${KVIK_PYTHON_WHEEL:-} ]]; then
    python3 -m pip install -q --no-deps --no-index --upgrade --target "$work/pykvik" \
      "$KVIK_PYTHON_WHEEL" >&2 && echo "$work/pykvik"
  else
    echo "no kvik Python package: python3 has no Python.h and KVIK_PYTHON_WHEEL is not set" >&2
    return 1
  fi
}

python_gpu() {
  local pp
  pp=$(python_path) || return 1
  TMPDIR=$data PYTHONPATH=$pp python3 "$root/tests/gpu/python/test_gpu_python.py"
}

loaders() {
  local pp
  pp=$(python_path) || return 1
  TMPDIR=$data PYTHONPATH=$pp python3 "$root/bench/loaders.py" \
    --peers-path "${KVIK_PEERS_PATH:-$work/peers}" --file "$data/loaders.safetensors" \
    --json-out "$logs/loaders.jsonl"
}

gpu_tests() {
  cd "$build" && TMPDIR=$data KVIK_TEST_DIR=$data ctest -L gpu -E gpu_extra -j 4 \
    --output-on-failure --timeout 300
}

round_trip() {
  TMPDIR=$data KVIK_TEST_DIR=$data KVIK_TEST_REAL_CUDA=1 KVIK_TEST_ROUNDTRIP_SIZE=$size \
    "$build/tests/cuda/test_gpu_extra" round_trip
}

# The default pool resized up and down 50 times between device writes and reads (it crashed in
# cuStreamDestroy_v2 when workers destroyed their streams on the way out).
pool_resize() {
  TMPDIR=$data KVIK_TEST_DIR=$data KVIK_TEST_REAL_CUDA=1 "$build/tests/cuda/test_gpu_extra" pool_resize
}

bench() { # bench NAME ARGS...
  TMPDIR=$data "$build/tools/kvik/kvik" bench --size "$size" --repeat "$repeat" \
    --file "$data/bench.dat" --json-out "$logs/${JSONL:-bench.jsonl}" "$@"
}

# Where the first device read of a fresh process spends its time (bench/first_call.cu, issue
# #10): each mode in a fresh process, on the hot benchmark file.
first_call() {
  local nvcc=${NVCC:-/usr/local/cuda/bin/nvcc}
  "$nvcc" -O2 -o "$build/first_call" "$root/bench/first_call.cu" -I"$root/include" \
    -L"$build" -lkvik -Xlinker -rpath="$build" || return 1
  # The bench steps leave an 8 GiB file; when they did not run, one is written here.
  [[ -s $data/bench.dat ]] || head -c "$(numfmt --from=iec "$size")" /dev/zero >"$data/bench.dat" ||
    return 1
  cat "$data/bench.dat" >/dev/null
  "$build/first_call" "$data/bench.dat" raw && "$build/first_call" "$data/bench.dat" kvik &&
    "$build/first_call" "$data/bench.dat" kvik &&
    "$build/first_call" "$data/bench.dat" kvik_prepared
}

echo "kvik GPU run: size $size, budget ${budget} s, logs in $logs"
export root work size budget repeat logs build data
export -f machine configure_build gpu_tests round_trip pool_resize bench first_call \
  python_has_headers python_path python_gpu loaders
TAIL_LINES=40 step machine 30 machine
KVIK_CMAKE_ARGS=""
deps >"$logs/deps.log" 2>&1
deps_rc=$?
export KVIK_CMAKE_ARGS
cat "$logs/deps.log"
if ((deps_rc != 0)); then
  status+=("deps|FAILED (no cmocka)|0")
elif step build 240 configure_build; then
  sh tests/gpu/enable-cufile.sh "$data" >"$logs/enable-cufile.log" 2>&1 ||
    echo "enable-cufile.sh: failed (see its log); harmless for the POSIX path"
  TAIL_LINES=40 step info 30 "$build/tools/kvik/kvik" info "$data"
  TAIL_LINES=30 step gpu_tests 180 gpu_tests
  TAIL_LINES=20 step round_trip 120 round_trip
  TAIL_LINES=12 step pool_resize 90 pool_resize
  TAIL_LINES=30 step bench_device_hot 200 bench --mem device --cache hot --force
  TAIL_LINES=14 step bench_device_cold 120 bench --mem device --cache cold --no-write
  TAIL_LINES=14 step bench_host_hot 120 bench --mem host --cache hot --force
  TAIL_LINES=32 step first_call 120 first_call
  # Experiments, not kvik's defaults (the figures above are): what bounds the hot and cold
  # device reads. Tagged in the JSON lines by their settings.
  TAIL_LINES=12 step x_task16M_hot 100 env JSONL=experiments.jsonl KVIKIO_TASK_SIZE=16M \
    bash -c 'bench --mem device --cache hot --no-write'
  TAIL_LINES=10 step x_directread_cold 100 env JSONL=experiments.jsonl \
    KVIKIO_AUTO_DIRECT_IO_READ=1 bash -c 'bench --mem device --cache cold --no-write'
  # The host buffer backed by transparent huge pages (as numpy backs large arrays).
  TAIL_LINES=8 step x_hugepages_host_hot 100 env JSONL=experiments.jsonl \
    bash -c 'bench --mem host --cache hot --no-write --hugepages'
  # The Python package on the GPU (CuPy, torch, DLPack, stream-ordered reads, safetensors), and
  # the safetensors loader benchmark (8 GiB, every loader hot and cold, fresh process each).
  TAIL_LINES=20 step python_gpu 180 python_gpu
  TAIL_LINES=30 step loaders 400 loaders
  # cuFile's own path (tests/gpu/cufile.sh: OFF vs AUTO, batch, async), when present.
  if [[ -x tests/gpu/cufile.sh ]]; then
    TAIL_LINES=40 step cufile 240 tests/gpu/cufile.sh "$build" "$data" "$logs"
  fi
fi
rm -f "$data/bench.dat" "$data/loaders.safetensors" "$data/loaders.safetensors.json"
rm -rf "$data"/kvik-test-*

# ---- the short table, last ---------------------------------------------------------------
echo
echo "==================== kvik GPU run summary ===================="
nvidia-smi --query-gpu=name,memory.total,pci.bus_id --format=csv,noheader 2>/dev/null | sed 's/^/GPU: /'
fail=0
printf '%-18s %-34s %6s\n' step result seconds
for s in "${status[@]}"; do
  IFS='|' read -r n r t <<<"$s"
  printf '%-18s %-34s %6s\n' "$n" "$r" "$t"
  [[ $r == passed || $r == not\ selected* ]] || fail=1
done
if [[ -s $logs/gpu_tests.log ]]; then
  grep -E 'tests passed|tests failed|SKIP|Not Run|\*\*\*' "$logs/gpu_tests.log" | head -12
fi
if [[ -s $logs/round_trip.log ]]; then
  grep -E '^# (device 0|write|cold|hot|round|bounce)|segment hashes|PASSED|FAILED|SKIP' \
    "$logs/round_trip.log" | head -14
fi
if [[ -s $logs/pool_resize.log ]]; then
  grep -E '^# [0-9]+ pool resizes|PASSED|FAILED|SKIP' "$logs/pool_resize.log" | head -4
fi
if [[ -s $logs/bench.jsonl ]]; then
  echo
  printf '%-6s %-5s %-6s %-17s %8s  %s\n' op cache mem engine GB/s "vs bound (and vs naive)"
  sed -E 's/.*"op":"([a-z]+)","cache":"([a-z]+)","engine":"([^"]+)","baseline":([a-z]+),"mem":"([a-z]+)".*"gbps":([0-9.]+).*/\1 \2 \5 \3 \6 \4 &/' \
    "$logs/bench.jsonl" | while read -r op cache mem eng gbps base rest; do
    vs=$(sed -nE 's/.*"vs":"([^"]+)","ratio":([0-9.]+).*/\2 of \1/p' <<<"$rest")
    nv=$(sed -nE 's/.*"vs_naive":"([^"]+)","ratio_naive":([0-9.]+).*/; \2x \1/p' <<<"$rest")
    [[ $base == true ]] && vs="" nv=""
    printf '%-6s %-5s %-6s %-17s %8s  %s%s\n' "$op" "$cache" "$mem" "$eng" "$gbps" "$vs" "$nv"
  done
fi
if [[ -s $logs/experiments.jsonl ]]; then
  echo "experiments (not the defaults): kvik rows"
  grep '"baseline":false' "$logs/experiments.jsonl" |
    sed -E 's/.*"op":"([a-z]+)","cache":"([a-z]+)","engine":"([^"]+)".*"gbps":([0-9.]+).*"task_size":([0-9]+),"direct_io":([0-9]).*"vs":"([^"]+)","ratio":([0-9.]+).*/\1 \2 \3 \4 GB\/s task_size=\5 direct_io=\6: \8 of \7/'
fi
echo "total: $((SECONDS - start)) s; logs: $logs"
exit $fail
