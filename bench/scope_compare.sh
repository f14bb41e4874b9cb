#!/usr/bin/env bash
# Issue 3's churn target, measured on two programs: the same churn (bench/tools/churn.cpp:
# strings, a vector, a map and make_shared a few calls deep, 10,000 long-lived entries replaced at
# random) built plain — no leakscope at all, so std::string and friends run exactly the code a
# program without leakscope runs — and with leakscope, each thread running its loop inside one
# LeakScope. In bench_stacks the base must call libstdc++'s operator new through a custom allocator,
# which changes the code std::string runs (its out-of-line instantiations in libstdc++.so are for
# std::allocator only); here nothing differs but leakscope.
#   plain                                 the program without leakscope
#   scope, stacks=off                     inside a scope, no stacks
#   scope, stacks=on (fast, depth 32)     the default: the target row
#   scope, stacks=on (fast, depth 16)     the target row at the issue's depth
#   scope, stacks=on (fp, depth 32)       the frame-pointer walk
# for 1 and 2 threads (each thread its own loop). Each configuration runs RUNS times, interleaved,
# and the table shows the minimum wall time (2 threads: wall of the whole run) with the ratio to
# plain and the target's verdict (<= 2.0x).
#
#   bash bench/scope_compare.sh [ITERATIONS] [RUNS]     (defaults 300000 and 7; CXX=g++)
#   bash bench/scope_compare.sh --instructions [ITERATIONS]
# CHURN_WORK=N (default 0) gives each request N rounds of work that allocates nothing (churn.cpp's
# `work`): 0 is the densest churn (heaptrack ~10x plain on it); 22 is the issue's "such a workload"
# (heaptrack ~3.9x plain, bench/heaptrack_compare.sh with the same CHURN_WORK).
# --instructions counts each configuration's instructions (1 thread) with callgrind instead: no
# noise, for a shared machine where wall time moves from run to run. Not part of CI (a timing on a
# shared machine is a figure to read, not a test). Build dir: build/scope_compare.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$ROOT/build/scope_compare
MODE=wall
if [ "${1:-}" = "--instructions" ]; then
  MODE=instructions
  shift
fi
ITERATIONS=${1:-300000}
RUNS=${2:-7}
CHURN_WORK=${CHURN_WORK:-0}
CXX=${CXX:-g++}

# shellcheck source=tools/churn_build.sh
source "$ROOT/bench/tools/churn_build.sh"
build_churn_pair "$OUT"

labels=("plain" "scope, stacks=off" "scope, stacks=on (fast, depth 32)" "scope, stacks=on (fast, depth 16)"
        "scope, stacks=on (fp, depth 32)")
options=("" "stacks=off" "stacks=on" "stacks=on stack_depth=16" "stacks=on unwinder=fp")
targets=(0 0 1 1 0)
n=${#labels[@]}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

command_of() {   # command_of I THREADS: sets the global cmd (LEAKSCOPE_OPTIONS: options[I])
  local bin=churn_leakscope
  [ "$1" -ne 0 ] || bin=churn_plain
  cmd=("$OUT/$bin" "$ITERATIONS" "$2" scope "$CHURN_WORK")
}
verdict() { awk -v a="$1" -v b="$2" 'BEGIN { r = a / b; printf "%s", (r <= 2.0 ? "met" : "**missed**") }'; }

if [ "$MODE" = instructions ]; then
  command -v valgrind >/dev/null || { echo "scope_compare.sh: valgrind not found" >&2; exit 1; }
  declare -a count
  for ((i = 0; i < n; ++i)); do
    command_of "$i" 1
    count[i]=$(LEAKSCOPE_OPTIONS="${options[i]}" valgrind --tool=callgrind --callgrind-out-file=/dev/null "${cmd[@]}" 2>&1 >/dev/null |
               awk '/refs:/ { gsub(",", "", $NF); print $NF }')
  done
  echo "churn: $ITERATIONS iterations (18 allocations each, work $CHURN_WORK), 1 thread, $CXX -O2 -g; instructions of the whole run (callgrind)"
  echo
  echo "| run | instructions | per iteration | ratio to plain |"
  echo "|---|---:|---:|---:|"
  for ((i = 0; i < n; ++i)); do
    per=$(awk -v c="${count[i]}" -v it="$ITERATIONS" 'BEGIN { printf "%.0f", c / it }')
    echo "| ${labels[$i]} | ${count[i]} | $per | $(ratio "${count[i]}" "${count[0]}") |"
  done
  echo
  echo "(The target is on time; leakscope's instructions retire faster than the workload's, so a time"
  echo "ratio is below this one. Run without --instructions on a quiet machine for the verdict.)"
  exit 0
fi

declare -A wall
expected=""
for ((k = 0; k < RUNS; ++k)); do
  for threads in 1 2; do
    for ((i = 0; i < n; ++i)); do
      command_of "$i" "$threads"
      TIMEFORMAT='%R'
      { time (LEAKSCOPE_OPTIONS="${options[i]}" "${cmd[@]}" >"$WORK/out" 2>"$WORK/err"); } 2>"$WORK/time" || {
        echo "scope_compare.sh: '${labels[$i]}' failed:" >&2
        cat "$WORK/err" >&2
        exit 1
      }
      sum="$threads:$(head -n 1 "$WORK/out")"
      key="$threads:$i"
      if [ "$i" -eq 0 ]; then expected=$sum; fi
      [ "$sum" = "$expected" ] || { echo "scope_compare.sh: '${labels[$i]}' printed '$sum', expected '$expected'" >&2; exit 1; }
      t=$(cat "$WORK/time")
      if [ -z "${wall[$key]:-}" ] || awk -v a="$t" -v b="${wall[$key]}" 'BEGIN { exit !(a < b) }'; then wall[$key]=$t; fi
    done
  done
  echo "run $((k + 1)) of $RUNS done" >&2
done

echo
echo "churn: $ITERATIONS iterations per thread (18 allocations each, work $CHURN_WORK), $CXX -O2 -g, minimum wall time of $RUNS runs"
if [ "$CHURN_WORK" = 0 ]; then
  echo "(work 0: the densest churn, heaptrack ~10x plain on it; the issue's \"such a workload\", heaptrack ~3.9x, is CHURN_WORK=22)"
fi
echo
echo "| run | threads | wall s | ratio to plain | target (<= 2.0x) |"
echo "|---|---:|---:|---:|---|"
for threads in 1 2; do
  for ((i = 0; i < n; ++i)); do
    v=""
    if [ "${targets[i]}" = 1 ]; then v=$(verdict "${wall[$threads:$i]}" "${wall[$threads:0]}"); fi
    echo "| ${labels[$i]} | $threads | ${wall[$threads:$i]} | $(ratio "${wall[$threads:$i]}" "${wall[$threads:0]}") | $v |"
  done
done
