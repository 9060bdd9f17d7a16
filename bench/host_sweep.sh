#!/usr/bin/env bash
# Sweeps kvik's host read over thread counts and task sizes on one file, hot, and compares cold
# reads buffered vs O_DIRECT. Usage: bench/host_sweep.sh KVIK_BINARY FILE SIZE
# Prints one line per setting: threads task_size cache direct GB/s (median of 3).
set -euo pipefail
kvik=$1 file=$2 size=$3
"$kvik" bench --file "$file" --size "$size" --force --cache hot --repeat 1 >/dev/null
row() { # cache direct threads task
  "$kvik" bench --file "$file" --no-write --cache "$1" --direct-io "$2" --threads "$3" \
    --task-size "$4" --repeat "${REPEAT:-3}" --json 2>/dev/null |
    awk -v t="$3" -v ts="$4" -v c="$1" -v d="$2" -F'"gbps":' '/"engine":"kvik"/ {
      split($2, a, ","); printf "%-6s %-8s %-5s %-4s %8.2f\n", t, ts, c, d, a[1] }'
}
printf '%-6s %-8s %-5s %-4s %8s\n' threads task cache dio GB/s
for t in ${THREADS:-8 16 32 64}; do
  for ts in ${TASKS:-1M 4M 16M}; do row hot off "$t" "$ts"; done
done
for t in ${COLD_THREADS:-1 16}; do
  row cold off "$t" 4M
  row cold on "$t" 4M
done
