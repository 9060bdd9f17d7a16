#!/usr/bin/env bash
# The cuFile part of the real-GPU run (issue 4): kvik's cuFile path, batch and stream-ordered I/O
# against the machine's libcufile.so.0 and libcuda.so.1, then compat OFF against AUTO with
# `kvik bench --mem device`, page cache hot.
#
# usage: tests/gpu/cufile.sh [BUILD_DIR [DATA_DIR [LOG_DIR]]]
#   BUILD_DIR   a kvik build tree configured with tests (tests/gpu/run.sh's .gpu/build will do);
#               configured and built here when it has no build.ninja (default .gpu/build-cufile);
#               the targets kvik, test_cufile, test_cufile_mirror and kvik-tool are built
#   DATA_DIR    test files (default $KVIK_GPU_WORK/data); enable-cufile.sh is run on it
#   LOG_DIR     logs and JSON lines (default $OUT, else $KVIK_GPU_WORK/logs)
# Takes about 2 to 4 minutes on an H200 (most of it the OFF benchmark: cuFile's compatibility
# mode reads at 1.7 GB/s there); every step has its own time limit.
# Environment:
#   KVIK_GPU_WORK   work directory (default .gpu in the repository); data goes to $KVIK_GPU_WORK/data
#   KVIK_GPU_SIZE   bytes for the OFF-vs-AUTO benchmark (default 8G)
#   KVIK_GPU_REPEAT runs per benchmark measurement (default 3)
#   OUT             where logs go (default $KVIK_GPU_WORK/logs); JSON lines in cufile-bench-*.jsonl
#   KVIK_CMAKE_ARGS extra cmake arguments when configuring (run.sh passes its cmocka location)
# Steps (each prints its output; the last lines are a summary):
#   1. machine facts: GPU, nvidia-fs, cufile.h, cuFile's version and properties (kvik info)
#   2. enable-cufile.sh on the data directory (root; without udev data cuFile registers nothing)
#   3. cufile_mirror: kvik's mirror of cufile.h against /usr/local/cuda/include/cufile.h
#   4. test_cufile with KVIK_TEST_REAL_CUDA=1: OFF is cuFile (its compat mode here) and passes the
#      device grid subset, AUTO picks kvik's path and says why, registration, batch and async on
#      both paths, exit with handles and buffers still registered
#   5. cufile_kernel (nvcc): kernels before a write_async and after a read_async on one stream
#   6. kvik bench --mem device --cache hot, --compat auto then --compat off on the same file
# Exit status: 0 if every step passed.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
work=${KVIK_GPU_WORK:-$root/.gpu}
build=${1:-$work/build-cufile}
data=${2:-$work/data}
logs=${3:-${OUT:-$work/logs}}
size=${KVIK_GPU_SIZE:-8G}
repeat=${KVIK_GPU_REPEAT:-3}
mkdir -p "$data" "$logs"
fails=()
summary=()
note() { summary+=("$*"); }

echo "=== cufile: machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | head -2
card=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
if [[ -r /proc/driver/nvidia-fs/version ]]; then
  echo "nvidia-fs: $(tr '\n' ' ' </proc/driver/nvidia-fs/version)"
else
  echo "nvidia-fs: not loaded (no /proc/driver/nvidia-fs/version)"
fi
ls -l /usr/local/cuda/include/cufile.h 2>&1 | head -1
ls -l /usr/local/cuda/lib64/libcufile.so* /usr/lib/x86_64-linux-gnu/libcufile.so* 2>/dev/null | head -3
findmnt -T "$data" -o TARGET,SOURCE,FSTYPE 2>&1 | tail -1

echo "=== cufile: build ($build)"
if [[ ! -f $build/build.ninja ]]; then
  if [[ -z ${KVIK_CMAKE_ARGS:-} ]] && ! echo '#include <cmocka.h>' | gcc -E -include stdarg.h \
    -include stddef.h -include setjmp.h -include stdint.h - >/dev/null 2>&1; then
    deps=/tmp/kvik-deps
    rm -rf "$deps" && mkdir -p "$deps"
    for deb in "$root"/.deb/libcmocka*.deb; do dpkg -x "$deb" "$deps"; done
    KVIK_CMAKE_ARGS="-DCMAKE_PREFIX_PATH=$deps/usr -DCMAKE_DISABLE_FIND_PACKAGE_PkgConfig=ON"
    echo "cmocka unpacked into $deps"
  fi
  # shellcheck disable=SC2086
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_C_COMPILER=gcc -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DBUILD_TESTING=ON -DKVIK_REMOTE=OFF ${KVIK_CMAKE_ARGS:-} >"$logs/cufile-configure.log" 2>&1 ||
    { tail -30 "$logs/cufile-configure.log"; echo "cufile: configure FAILED"; exit 1; }
fi
if ! ninja -C "$build" -j "$(nproc)" kvik test_cufile >"$logs/cufile-build.log" 2>&1; then
  tail -40 "$logs/cufile-build.log"
  echo "cufile: build FAILED"
  exit 1
fi
# The mirror test is a target only where cufile.h compiles (else a test that prints why).
ninja -C "$build" -t targets all 2>/dev/null | grep -q '^test_cufile_mirror:' &&
  { ninja -C "$build" test_cufile_mirror >>"$logs/cufile-build.log" 2>&1 || echo "(test_cufile_mirror did not build)"; }
ninja -C "$build" -j "$(nproc)" kvik-tool >>"$logs/cufile-build.log" 2>&1 || echo "(kvik tool did not build: no bench)"
kvik=$build/tools/kvik/kvik

echo "=== cufile: enable-cufile.sh $data"
sh "$root/tests/gpu/enable-cufile.sh" "$data" 2>&1 || echo "enable-cufile.sh failed (not root?)"
if [[ -x $kvik ]]; then
  "$kvik" info "$data" 2>&1 | sed -n '/^path:/,$p'
  for c in off auto; do
    echo "--- KVIKIO_COMPAT_MODE=$c: $(KVIKIO_COMPAT_MODE=$c "$kvik" info "$data" 2>&1 | grep 'I/O path')"
  done
fi

echo "=== cufile: mirror of cufile.h"
(cd "$build" && ctest -R cufile_mirror --output-on-failure 2>&1 | grep -v '^$' | tail -15)
if (cd "$build" && ctest -R cufile_mirror >/dev/null 2>&1); then note "cufile_mirror: passed"; else
  note "cufile_mirror: FAILED (or skipped)"; fails+=(mirror); fi

echo "=== cufile: test_cufile against the real libraries"
# In parts, each under its own time limit, so a hang in one does not hide the others.
rm -f "$logs/cufile-tests.log"
for part in misc path grid batch async; do
  t0=$SECONDS
  TMPDIR=$data KVIK_TEST_REAL_CUDA=1 timeout 60 stdbuf -oL "$build/tests/cufile/test_cufile" "${part}_*" \
    >"$logs/cufile-tests-$part.log" 2>&1
  rc=$?
  cat "$logs/cufile-tests-$part.log" >>"$logs/cufile-tests.log"
  grep -vE '^\[ +(RUN|OK) +\]|^\[=+\]|^ *$|SKIPPED TEST|FAILED TEST|^\[  (PASSED|SKIPPED|FAILED)  \] [a-z]' \
    "$logs/cufile-tests-$part.log" | tail -25
  res=$(grep -E '^\[  (PASSED|FAILED|SKIPPED)  \] [0-9]' "$logs/cufile-tests-$part.log" | tr '\n' ' ')
  ((rc == 124)) && res="TIMED OUT (last: $(grep -E '^\[ RUN' "$logs/cufile-tests-$part.log" | tail -1))"
  echo "--- ${part}_*: exit $rc in $((SECONDS - t0)) s: $res"
  note "test_cufile ${part}_* (real): exit $rc: $res"
  ((rc == 0)) || fails+=("test_cufile:$part")
done

echo "=== cufile: kernels around stream-ordered I/O (nvcc)"
nvcc=${NVCC:-/usr/local/cuda/bin/nvcc}
if [[ -x $nvcc ]] && { "$nvcc" -O2 -arch=sm_90 -o "$build/cufile_kernel" "$root/tests/gpu/cufile_kernel.cu" \
  -I"$root/include" -L"$build" -lkvik -Xlinker -rpath="$build" >"$logs/cufile-nvcc.log" 2>&1 ||
  "$nvcc" -O2 -o "$build/cufile_kernel" "$root/tests/gpu/cufile_kernel.cu" -I"$root/include" \
    -L"$build" -lkvik -Xlinker -rpath="$build" >>"$logs/cufile-nvcc.log" 2>&1; }; then
  timeout 60 "$build/cufile_kernel" "$data" 256 2>&1 | tee "$logs/cufile-kernel.log"
  rc=${PIPESTATUS[0]}
  note "cufile_kernel: exit $rc: $(tail -1 "$logs/cufile-kernel.log")"
  ((rc == 0)) || fails+=(kernel)
else
  tail -20 "$logs/cufile-nvcc.log" 2>/dev/null
  note "cufile_kernel: not built (nvcc missing or failed)"
  fails+=(kernel)
fi

echo "=== stream-ordered I/O on kvik's path vs kvik's parallel device I/O (bench/stream_io.cu)"
if [[ -x $nvcc ]] && "$nvcc" -O2 -o "$build/stream_io" "$root/bench/stream_io.cu" -I"$root/include" \
  -L"$build" -lkvik -Xlinker -rpath="$build" >"$logs/stream-io-nvcc.log" 2>&1; then
  f=$data/stream-io.dat
  dd if=/dev/zero of="$f" bs=16M count=128 status=none
  timeout 120 "$build/stream_io" "$f" 3 2>&1 | tee "$logs/stream-io.log"
  rc=${PIPESTATUS[0]}
  rm -f "$f"
  note "stream_io ($card): exit $rc: $(tail -1 "$logs/stream-io.log")"
  ((rc == 0)) || fails+=(stream_io)
else
  tail -20 "$logs/stream-io-nvcc.log" 2>/dev/null
  note "stream_io: not built"
  fails+=(stream_io)
fi

echo "=== cufile: kvik bench --mem device --cache hot, compat AUTO vs OFF, $size"
gb() { # the kvik read's GB/s from a JSON-lines file
  grep '"op":"read"' "$1" 2>/dev/null | grep '"engine":"kvik"' | sed -n 's/.*"gbps":\([0-9.]*\).*/\1/p' | head -1
}
if [[ -x $kvik ]]; then
  f=$data/cufile-bench.dat
  rm -f "$logs"/cufile-bench-*.jsonl
  # Reads only: the file is written once with dd (the write figures are not the question here).
  bytes=$(numfmt --from=iec "$size" 2>/dev/null || echo $((8 << 30)))
  dd if=/dev/zero of="$f" bs=16M count=$((bytes >> 24)) status=none
  for c in auto off; do
    TMPDIR=$data timeout 100 "$kvik" bench --mem device --cache hot --compat $c --no-write \
      --repeat "$repeat" --file "$f" --json-out "$logs/cufile-bench-$c.jsonl" 2>&1 | tail -9
  done
  rm -f "$f"
  auto=$(gb "$logs/cufile-bench-auto.jsonl")
  off=$(gb "$logs/cufile-bench-off.jsonl")
  if [[ -n $auto && -n $off ]]; then
    ratio=$(awk -v a="$auto" -v o="$off" 'BEGIN { printf "%.1f", a / o }')
    note "bench ($card, $size hot device read): AUTO $auto GB/s, OFF $off GB/s, AUTO/OFF = ${ratio}x"
    awk -v r="$ratio" 'BEGIN { exit !(r >= 10) }' || { note "bench: AUTO < 10x OFF"; fails+=(bench); }
  else
    note "bench: no figures (auto '$auto', off '$off')"
    fails+=(bench)
  fi
else
  note "bench: kvik tool missing"
  fails+=(bench)
fi
rm -rf "$data"/kvik-test-* "$data"/cufile-kernel-*

echo
echo "==================== cufile summary ===================="
for s in "${summary[@]}"; do echo "$s"; done
if ((${#fails[@]})); then
  echo "cufile: FAILED: ${fails[*]}"
  exit 1
fi
echo "cufile: all passed"
