#!/usr/bin/env bash
# Allocation torture at the libc level, as curl does it: for each workload, one fresh process
# per N = 1, 2, 3, ... with the failmalloc shim (LD_PRELOAD) failing the Nth allocation of the
# workload (kvik, libcurl, OpenSSL, glibc's helpers), until a run reaches its end with nothing
# injected. Every run must end in success or clean errors (the driver checks every call and
# every byte, then runs the workload again with nothing failing: it must succeed), without a
# signal or a hang. A sample of the runs goes under valgrind, where a memory error or definitely
# or indirectly lost memory fails.
#
# Usage: run.sh SHIM NAME=DRIVER...   (CTest's 'torture' test passes the built shim and drivers)
# Environment:
#   KVIK_TORTURE_CAP=400       runs per workload at most: a workload that makes more allocations
#                              than this is tried every ceil(count/cap)-th N (said in the output)
#   KVIK_TORTURE_STRIDE=S      try every S-th N instead (1: every allocation, however many)
#   KVIK_TORTURE_VALGRIND=4    runs per workload under valgrind memcheck (0: none); skipped with
#                              the reason when valgrind is missing
#   KVIK_TORTURE_TIMEOUT=300   seconds one run may take before it counts as a hang
#   KVIK_TORTURE_JOBS=4        runs at once (they mostly wait: on the loopback server, the disk)
#   KVIK_TORTURE_KEEP=DIR      keep every run's output in DIR (default: only the failing ones,
#                              printed)
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[[ $# -ge 2 ]] || {
  echo "usage: run.sh SHIM NAME=DRIVER..." >&2
  exit 2
}
shim=$(realpath "$1")
shift
cap=${KVIK_TORTURE_CAP:-400}
vg_runs=${KVIK_TORTURE_VALGRIND:-4}
limit=${KVIK_TORTURE_TIMEOUT:-300}
jobs=${KVIK_TORTURE_JOBS:-4}
work=$(mktemp -d "${TMPDIR:-/tmp}/kvik-torture-run-XXXXXX")
server_pid=
# The server serves until its stdin closes.
stop_server() {
  if [[ -n $server_pid ]]; then
    eval "exec ${server[1]}>&-"
    wait "$server_pid" 2>/dev/null
    server_pid=
  fi
}
cleanup() {
  stop_server
  rm -rf "$work"
}
trap cleanup EXIT

# somalloc=nouserintercepts: valgrind takes over malloc only inside libc (where the shim hands
# each request on), not the shim's own malloc, which would otherwise never run.
valgrind=(valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect
  --show-leak-kinds=definite,indirect --soname-synonyms=somalloc=nouserintercepts
  --suppressions="$here/../valgrind.supp" --child-silent-after-fork=yes)
if [[ $vg_runs -gt 0 ]] && ! command -v valgrind >/dev/null; then
  echo "torture: valgrind not found (apt-get install valgrind): no run checks leaks"
  vg_runs=0
fi

# Runs one driver process. $1 driver, $2 N (0: count only), $3 log, $4 "vg" for valgrind.
# Prints the exit status.
one() {
  local pre=()
  if [[ ${4:-} == vg ]]; then pre=("${valgrind[@]}"); fi
  KVIK_TORTURE_FAIL_AT=$2 LD_PRELOAD=$shim timeout -k 10 "$limit" "${pre[@]}" "$1" >"$3" 2>&1
  echo $?
}

summary_field() { sed -n "s/^torture [a-z]*: fail_at=.* $1=\([^ ]*\).*/\1/p" "$2" | tail -n 1; }

failed=()
for arg in "$@"; do
  name=${arg%%=*}
  drv=${arg#*=}
  start=$SECONDS
  # The remote workload gets one nginx for all its runs (its driver can start one itself, but
  # thousands of starts would cost more than the runs).
  if [[ $name == remote && -z ${KVIK_TORTURE_URL:-} ]]; then
    coproc server { exec "$drv" --serve; }
    server_pid=$server_PID
    read -r base <&"${server[0]}" || base=
    if [[ $base != http* ]]; then
      echo "torture remote: ${base:-the server did not start}"
      [[ $base == SKIP* ]] && continue
      failed+=("$name (server)")
      continue
    fi
    export KVIK_TORTURE_URL=$base
  fi

  # One run with nothing injected: it must pass, and gives the count.
  log=$work/$name.count.log
  rc=$(one "$drv" 0 "$log" "")
  count=$(summary_field allocations "$log")
  if [[ $rc != 0 || -z $count ]]; then
    echo "torture $name: the run without failures failed (exit $rc):"
    cat "$log"
    failed+=("$name")
    continue
  fi
  stride=${KVIK_TORTURE_STRIDE:-$(((count + cap - 1) / cap))}
  [[ $stride -ge 1 ]] || stride=1
  note=
  [[ $stride -gt 1 ]] && note=" (every ${stride}th: KVIK_TORTURE_CAP=$cap runs at most; KVIK_TORTURE_STRIDE=1 tries each)"
  echo "torture $name: $count allocations in one run without failures; failing N = 1, $((1 + stride)), ...$note"

  # Which runs go under valgrind: spread over the range.
  runs_est=$(((count + stride - 1) / stride + 1))
  vg_every=0
  [[ $vg_runs -gt 0 ]] && vg_every=$(((runs_est + vg_runs - 1) / vg_runs))

  runs=0 injected=0 errors=0 absorbed=0 vg_done=0 bad=0 n=1 last=0 done=0
  while [[ $done == 0 ]]; do
    # A batch of runs at once (they mostly wait on the loopback server and on the disk), then
    # their results in the order of N.
    batch=() pids=()
    for ((k = 0; k < jobs; k++)); do
      m=$((n + k * stride))
      mode=
      [[ $vg_every -gt 0 && $(((runs + k) % vg_every)) == $((vg_every / 2)) ]] && mode=vg
      batch+=("$m:$mode")
      one "$drv" "$m" "$work/$name.$m.log" "$mode" >"$work/$name.$m.rc" &
      pids+=($!)
    done
    wait "${pids[@]}" # not a bare wait: the server is a child too
    for b in "${batch[@]}"; do
      m=${b%%:*} mode=${b#*:}
      log=$work/$name.$m.log
      rc=$(cat "$work/$name.$m.rc")
      runs=$((runs + 1))
      [[ $mode == vg ]] && vg_done=$((vg_done + 1))
      inj=$(summary_field injected "$log")
      why=
      case $rc in
      0) [[ -n $inj ]] || why="no summary line" ;;
      1) why="a broken promise (BAD lines)" ;;
      99) why="valgrind: a memory error or lost memory" ;;
      124 | 137) why="hung (over ${limit} s)" ;;
      *) if [[ $rc -gt 128 ]]; then why="killed by signal $((rc - 128))"; else why="exit status $rc"; fi ;;
      esac
      if [[ -n $why ]]; then
        echo "torture $name: N=$m${mode:+ (valgrind)}: $why; output:"
        sed 's/^/    /' "$log"
        bad=$((bad + 1)) # and on: one run shows every failing N
      fi
      if [[ $inj == yes ]]; then
        injected=$((injected + 1))
        if grep -q 'first error:' "$log"; then errors=$((errors + 1)); else absorbed=$((absorbed + 1)); fi
      fi
      [[ -n ${KVIK_TORTURE_KEEP:-} ]] && mkdir -p "$KVIK_TORTURE_KEEP" && cp "$log" "$KVIK_TORTURE_KEEP/"
      last=$m
      # The end: a run that reached its end before allocation N (and so passed untouched);
      # the rest of the batch is past it too.
      if [[ $inj == no ]]; then
        done=1
        break
      fi
    done
    rm -f "$work/$name".*.log "$work/$name".*.rc
    n=$((n + jobs * stride))
    if [[ $done == 0 && $n -gt $((4 * count + 1000)) ]]; then
      echo "torture $name: still injecting at N=$n, four times the count of a clean run: stopping"
      bad=$((bad + 1))
      break
    fi
  done
  echo "torture $name: N = 1..$last step $stride: $runs runs, $injected failures injected" \
    "($errors reported as clean errors, $absorbed absorbed with the workload succeeding)," \
    "$vg_done under valgrind, $bad bad, $((SECONDS - start)) s"
  [[ $bad -eq 0 ]] || failed+=("$name")
  stop_server
done
if [[ ${#failed[@]} -ne 0 ]]; then
  echo "torture: FAILED: ${failed[*]}"
  exit 1
fi
echo "torture: passed"
