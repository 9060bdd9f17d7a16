#!/usr/bin/env bash
# kvik's tool with device memory, against the fake libcuda.so.1 (LD_LIBRARY_PATH set by CTest):
# `kvik info` lists the driver and the GPUs; `kvik bench --mem device` runs every device engine
# with --verify (kvik's reads, the one-shot reads in their fresh processes, and pread+copy
# checked byte for byte), in both output formats.
# Usage: cli_device.sh KVIK_BINARY
set -uo pipefail
kvik=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
check() { # check DESCRIPTION PATTERN FILE
  grep -Eq -- "$2" "$3" || { echo "FAIL: $1: no line matching '$2' in:"; sed 's/^/    /' "$3"; failures=$((failures + 1)); }
}
"$kvik" info >"$work/info" 2>&1 || { echo "FAIL: kvik info"; cat "$work/info"; exit 1; }
check "info: driver" '^CUDA: driver 13\.0, 2 GPUs' "$work/info"
check "info: GPU 1" 'GPU 1: Fake CUDA GPU 1' "$work/info"
check "info: PCI bus" 'PCI bus +0000:27:00\.0' "$work/info"
check "info: memory kinds" 'memory kinds +device yes; managed yes' "$work/info"

TMPDIR=$work "$kvik" bench --mem device --size 6M --task-size 1M --threads 3 --repeat 2 --verify \
  >"$work/table" 2>&1 || { echo "FAIL: bench --mem device"; cat "$work/table"; exit 1; }
for row in 'write +hot +kvik-direct .* of ' 'write +hot +kvik-buffered .* of (pwrite-pinned|d2h-pinned)' \
  'write +cold +d2h-pinned' 'write +hot +pwrite-direct-mt' 'write +hot +copy\+pwrite' \
  'read +hot +kvik .* of (pread-pinned-mt|h2d-pinned); [0-9.]+x pread\+copy' \
  'read +hot +pread-pinned-mt' 'read +hot +h2d-pinned' 'read +cold +kvik .* of pread-direct' \
  'read +cold +pread-direct-1t' 'read +cold +pread-direct-mt' 'read +cold +pread\+copy' \
  '^GPU 0: Fake CUDA GPU 0' 'read +hot +kvik-oneshot .* of (pread-pinned-mt|h2d-pinned)' \
  'read +cold +kvik-oneshot .* of pread-direct' 'first calls \(ms\): open' \
  'best: [0-9.]+ GB/s with [0-9]+ threads x' 'kvik-oneshot +cold read: [0-9.]+ of the best'; do
  check "bench table" "$row" "$work/table"
done
TMPDIR=$work "$kvik" bench --mem device --size 1M --repeat 1 --cache hot --json >"$work/json" 2>&1 ||
  { echo "FAIL: bench --mem device --json"; cat "$work/json"; exit 1; }
check "json" '"engine":"kvik".*"mem":"device".*"vs":"(pread-pinned-mt|h2d-pinned)".*"gpu":"Fake CUDA GPU 0' "$work/json"
check "json one-shot" '"engine":"kvik-oneshot","baseline":false,"mem":"device".*"ratio_steady":[0-9.]+,"open_seconds"' "$work/json"
[[ $(grep -c '"mem":"device"' "$work/json") -ge 9 ]] || { echo "FAIL: json lines"; cat "$work/json"; failures=$((failures + 1)); }
[[ -z $(find "$work" -name 'kvik-bench-*') ]] || { echo "FAIL: bench left its file"; failures=$((failures + 1)); }
echo "cli_device: $failures failure(s)"
exit $((failures > 0))
