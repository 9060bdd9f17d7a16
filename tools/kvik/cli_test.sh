#!/usr/bin/env bash
# End-to-end checks of the kvik tool: exit codes, messages, a small bench (table and JSON) and a
# copy. Usage: cli_test.sh PATH/TO/kvik. Run by CTest as the test "cli".
set -euo pipefail

kvik=${1:?usage: cli_test.sh PATH/TO/kvik}
work=$(mktemp -d "${TMPDIR:-/tmp}/kvik-cli-test.XXXXXX")
trap 'rm -rf "$work"' EXIT
failures=0

# expect CODE PATTERN CMD...: runs CMD, checks its exit status and that its output (stdout and
# stderr together) matches the extended regex PATTERN (empty: any output); prints both sides
# when not.
expect() {
  local want=$1 pattern=$2 got=0
  shift 2
  "$@" >"$work/out" 2>&1 || got=$?
  if [[ $got -ne $want ]] || { [[ -n $pattern ]] && ! grep -Eq -- "$pattern" "$work/out"; }; then
    echo "FAIL: $*"
    echo "  expected exit $want and output matching: $pattern"
    echo "  got exit $got and output:"
    sed 's/^/    /' "$work/out"
    failures=$((failures + 1))
  else
    echo "ok: $*"
  fi
}

expect 0 '^kvik [0-9]+\.[0-9]+\.[0-9]+ \(libkvik ' "$kvik" --version
expect 0 'usage: kvik' "$kvik" --help
expect 0 'usage: kvik bench' "$kvik" help bench
expect 2 'unknown command' "$kvik" frobnicate
expect 2 'usage: kvik' "$kvik"

# info: every setting, its source, the pool; a path; a bad configuration.
expect 0 'KVIKIO_NTHREADS +[0-9]+ +default' env -u KVIKIO_NTHREADS -u KVIKIO_NUM_THREADS "$kvik" info
for var in COMPAT_MODE NTHREADS TASK_SIZE GDS_THRESHOLD BOUNCE_BUFFER_SIZE AUTO_DIRECT_IO_READ \
  AUTO_DIRECT_IO_READ_OVERREAD AUTO_DIRECT_IO_WRITE THREAD_POOL_PER_BLOCK_DEVICE \
  HTTP_MAX_ATTEMPTS HTTP_TIMEOUT HTTP_STATUS_CODES REMOTE_VERBOSE WEBHDFS_USERNAME LOG_LEVEL \
  LOG_FILE; do
  grep -q "KVIKIO_$var " "$work/out" || { echo "FAIL: kvik info does not list KVIKIO_$var"; failures=$((failures + 1)); }
done
expect 0 'KVIKIO_NTHREADS +3 +env' env KVIKIO_NTHREADS=3 "$kvik" info
expect 0 'thread pool: 3 threads' env KVIKIO_NTHREADS=3 "$kvik" info
expect 1 'KVIKIO_NTHREADS.*0' env KVIKIO_NTHREADS=0 "$kvik" info
expect 1 'KVIKIO_TASK_SIZE.*abc' env KVIKIO_TASK_SIZE=abc "$kvik" info
expect 0 'I/O path +posix' "$kvik" info "$work"
[[ -z $(find "$work" -name '.kvik-info-*') ]] || { echo "FAIL: kvik info left its probe file"; failures=$((failures + 1)); }
expect 0 'filesystem' "$kvik" info "$kvik"
# How much of a file is cached: all of it right after it is written and read.
head -c 100000 /dev/urandom >"$work/cached"
cat "$work/cached" >/dev/null
expect 0 'page cache +([0-9]+) of \1 pages cached \(100\.0%' "$kvik" info "$work/cached"
if grep -Eq 'page cache' < <("$kvik" info "$work"); then echo "FAIL: kvik info counts a directory's pages"; failures=$((failures + 1)); fi
expect 1 'no-such-dir' "$kvik" info "$work/no-such-dir"
# Files kvik cannot serve are refused at once, naming the type (a FIFO's open used to block
# forever): timeout turns a hang into exit 124.
mkfifo "$work/fifo"
expect 1 'is a FIFO' timeout 60 "$kvik" info "$work/fifo"
expect 1 'not a regular file' timeout 60 "$kvik" cp "$work/fifo" "$work/from-fifo"
head -c 5000 /dev/urandom >"$work/to-fifo"
expect 1 'is a FIFO' timeout 60 "$kvik" cp "$work/to-fifo" "$work/fifo"
expect 1 'is a character device' timeout 60 "$kvik" info /dev/null
rm -f "$work/fifo" "$work/from-fifo" "$work/to-fifo"

# bench: bad options, then a small run with verification; the temporary file is removed.
expect 2 'invalid --mem' "$kvik" bench --mem gpu
expect 2 'invalid --size' "$kvik" bench --size 12Q
expect 2 'invalid --size' "$kvik" bench --size 0
expect 2 'invalid --direct-io' "$kvik" bench --direct-io maybe
expect 2 'needs|give it with --file' "$kvik" bench --no-write
expect 0 '^read +hot +kvik ' env TMPDIR="$work" "$kvik" bench --size 4M --repeat 2 --verify
grep -Eq '^read +hot +pread ' "$work/out" || { echo "FAIL: no pread baseline row"; failures=$((failures + 1)); }
grep -Eq '^write +hot +pwrite ' "$work/out" || { echo "FAIL: no pwrite baseline row"; failures=$((failures + 1)); }
# The one-shot reads (a fresh process, --verify checking its bytes) beside the steady state.
grep -Eq '^read +hot +kvik-oneshot ' "$work/out" || { echo "FAIL: no kvik-oneshot row"; failures=$((failures + 1)); }
grep -Eq 'hot +[0-9.]+ GB/s, [0-9.]+ of kvik.s steady' "$work/out" || { echo "FAIL: no one-shot summary"; failures=$((failures + 1)); }
grep -Eq 'first calls \(ms\): open [0-9.]+, pread call [0-9.]+, wait [0-9.]+' "$work/out" || { echo "FAIL: no first-call breakdown"; failures=$((failures + 1)); }
expect 0 '' env TMPDIR="$work" "$kvik" bench --size 1M --repeat 1 --no-oneshot --cache hot
if grep -q 'kvik-oneshot' "$work/out"; then echo "FAIL: --no-oneshot ran it"; failures=$((failures + 1)); fi
expect 2 'invalid --probe' "$kvik" bench --probe sometimes
expect 2 'invalid --probe-time' "$kvik" bench --probe-time 0
expect 2 'usage: kvik __oneshot' "$kvik" __oneshot
[[ -z $(find "$work" -name 'kvik-bench-*') ]] || { echo "FAIL: bench left its temporary file"; failures=$((failures + 1)); }

expect 2 'invalid --size' "$kvik" bench --size 1M+13
expect 0 '"op":"read"' env TMPDIR="$work" "$kvik" bench --size 1000005 --repeat 1 --json --threads 3 --task-size 64K --direct-io on --verify
fields=('"cache":"(hot|cold)"' '"bytes":1000005' '"seconds":' '"gbps":' '"threads":3'
  '"task_size":65536' '"engine":"pread"' '"engine":"pwrite"' '"ratio":')
# Where O_DIRECT works (not tmpfs), kvik goes direct and the O_DIRECT baselines run beside it.
cp "$work/out" "$work/json"
if "$kvik" info "$work" | grep -Eq 'O_DIRECT +supported'; then
  fields+=('"engine":"pread-direct"' '"engine":"pwrite-direct"')
fi
cp "$work/json" "$work/out"
fields+=('"engine":"kvik-oneshot".*"vs_steady":"kvik","ratio_steady":[0-9.]+,"open_seconds":[0-9.]+,"submit_seconds":[0-9.]+,"wait_seconds":[0-9.]+,"close_seconds":[0-9.]+,"process_seconds":[0-9.]+')
# Where cold reads run (not tmpfs), the O_DIRECT probe runs before them.
if grep -q '"cache":"cold"' "$work/out"; then
  fields+=('"engine":"probe-direct","baseline":true.*"block_size":[0-9]+,"queue_depth":[0-9]+,"best":true,"probe":"quick"'
    '"cache":"cold","engine":"kvik",.*"vs_probe":"probe-direct","ratio_probe":[0-9.]+,"probe_threads":[0-9]+,"probe_block_size":[0-9]+')
fi
lines=$(grep -c '^{"op":' "$work/out" || true)
[[ $lines -ge 4 ]] || { echo "FAIL: expected at least 4 JSON lines, got $lines"; failures=$((failures + 1)); }
for field in "${fields[@]}"; do
  grep -Eq "$field" "$work/out" || { echo "FAIL: JSON lacks $field"; failures=$((failures + 1)); }
done

# --file: created and kept; not overwritten without --force; read back with --no-write.
expect 0 'write +hot +kvik' "$kvik" bench --file "$work/data" --size 2M --repeat 1
[[ $(stat -c %s "$work/data") -eq 2097152 ]] || { echo "FAIL: --file not kept at 2 MiB"; failures=$((failures + 1)); }
expect 1 'would overwrite' "$kvik" bench --file "$work/data" --size 2M --repeat 1
expect 0 '^read +(hot|cold) +kvik' "$kvik" bench --file "$work/data" --no-write --repeat 1
if grep -Eq '^write' "$work/out"; then echo "FAIL: --no-write wrote"; failures=$((failures + 1)); fi
expect 0 '^write +hot +kvik' "$kvik" bench --file "$work/data" --size 1M --repeat 1 --force --cache hot

# cp: odd sizes, a directory as destination, the same file twice.
head -c 5000003 /dev/urandom >"$work/src"
expect 0 '' "$kvik" cp --chunk 1M --threads 2 --task-size 100K "$work/src" "$work/dst"
cmp "$work/src" "$work/dst" || { echo "FAIL: cp copy differs"; failures=$((failures + 1)); }
mkdir "$work/dir"
expect 0 'copied' "$kvik" cp -v "$work/src" "$work/dir"
cmp "$work/src" "$work/dir/src" || { echo "FAIL: cp into a directory differs"; failures=$((failures + 1)); }
: >"$work/empty"
expect 0 '' "$kvik" cp "$work/empty" "$work/empty2"
[[ -f $work/empty2 && ! -s $work/empty2 ]] || { echo "FAIL: empty copy"; failures=$((failures + 1)); }
expect 1 'same file' "$kvik" cp "$work/src" "$work/src"
expect 1 'src-missing' "$kvik" cp "$work/src-missing" "$work/x"

if [[ $failures -ne 0 ]]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all checks passed"
