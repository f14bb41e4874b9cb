#!/usr/bin/env bash
# leakscope against heaptrack on the same allocation churn (bench/tools/churn.cpp: strings, a
# vector, a map and make_shared a few calls deep, and 10,000 long-lived entries replaced at random;
# one thread). The program is built twice, -O2 -g: plain (no leakscope; what heaptrack runs) and
# with leakscope's hook linked in (LEAKSCOPE_OPTIONS picks the mode). Each configuration runs RUNS
# times, alternating, and the table shows the minimum wall time (and CPU time, children included:
# heaptrack's interpreter runs as a second process) with ratios:
#   plain                                   the program alone
#   leakscope idle                          hook linked, track=scopes (nothing tracked)
#   leakscope track=all stacks=off          every block tracked, no stack
#   leakscope track=all                     every block tracked with its allocating stack: the fair
#                                           comparison (heaptrack records a stack per allocation)
#   leakscope track=all sample_bytes=524288 sampled (n/a while sample_bytes= is not available)
#   heaptrack                               `heaptrack ./churn_plain` (its data file goes to a
#                                           temporary directory, deleted afterwards)
# Issue 7's target: heaptrack's time at least 5x leakscope track=all's.
#
#   bash bench/heaptrack_compare.sh [ITERATIONS] [RUNS]    (defaults 1000000 and 3; CXX=g++)
# CHURN_WORK=N (default 0): N rounds of work per request that allocate nothing (churn.cpp's `work`;
# 22 makes heaptrack ~3.9x plain, issue 3's "such a workload").
# Needs heaptrack (Debian: apt-get install -y heaptrack). Not part of CI: a timing on a shared
# machine is a figure to read, not a test. Build dir: build/heaptrack_compare.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$ROOT/build/heaptrack_compare
ITERATIONS=${1:-1000000}
RUNS=${2:-3}
CHURN_WORK=${CHURN_WORK:-0}
CXX=${CXX:-g++}

command -v heaptrack >/dev/null || {
  echo "heaptrack_compare.sh: heaptrack not found (Debian: apt-get install -y heaptrack)" >&2
  exit 1
}
# shellcheck source=tools/churn_build.sh
source "$ROOT/bench/tools/churn_build.sh"
build_churn_pair "$OUT"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

labels=("plain" "leakscope idle (track=scopes)" "leakscope track=all stacks=off" "leakscope track=all (stacks on)"
        "leakscope track=all sample_bytes=524288" "heaptrack")
options=("" "track=scopes" "track=all stacks=off" "track=all" "track=all sample_bytes=524288" "")
n=${#labels[@]}
declare -a wall cpu note
expected=""

# run I: one run of configuration I; sets the globals t_wall and t_cpu (seconds).
run() {
  local i=$1 out=$WORK/out err=$WORK/err times=$WORK/times
  local -a cmd
  case $i in
    0) cmd=("$OUT/churn_plain" "$ITERATIONS" 1 noscope "$CHURN_WORK") ;;
    5) cmd=(heaptrack "$OUT/churn_plain" "$ITERATIONS" 1 noscope "$CHURN_WORK") ;;
    *) cmd=(env "LEAKSCOPE_OPTIONS=${options[$i]}" "$OUT/churn_leakscope" "$ITERATIONS" 1 noscope "$CHURN_WORK") ;;
  esac
  local TIMEFORMAT='%R %U %S'
  { time (cd "$WORK" && "${cmd[@]}" >"$out" 2>"$err"); } 2>"$times" || {
    echo "heaptrack_compare.sh: '${labels[$i]}' failed:" >&2
    cat "$err" >&2
    exit 1
  }
  rm -f "$WORK"/heaptrack.*
  local sum
  sum=$(grep -E '^[0-9]+$' "$out" | head -n 1)
  if [ -z "$expected" ]; then expected=$sum; fi
  [ "$sum" = "$expected" ] || { echo "heaptrack_compare.sh: '${labels[$i]}' printed '$sum', expected '$expected'" >&2; exit 1; }
  if grep -q "not available" "$err"; then note[i]="n/a: $(grep -m1 'not available' "$err")"; fi
  read -r r u s <"$times"
  t_wall=$r
  t_cpu=$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.3f", u + s }')
}

for ((k = 0; k < RUNS; ++k)); do
  for ((i = 0; i < n; ++i)); do
    run "$i"
    if [ -z "${wall[i]:-}" ] || awk -v a="$t_wall" -v b="${wall[i]}" 'BEGIN { exit !(a < b) }'; then wall[i]=$t_wall; fi
    if [ -z "${cpu[i]:-}" ] || awk -v a="$t_cpu" -v b="${cpu[i]}" 'BEGIN { exit !(a < b) }'; then cpu[i]=$t_cpu; fi
  done
  echo "run $((k + 1)) of $RUNS done" >&2
done

echo
echo "churn: $ITERATIONS iterations (18 allocations each, work $CHURN_WORK), $CXX -O2 -g, minimum of $RUNS runs"
echo
echo "| run | wall s | CPU s | wall / plain | heaptrack wall / this |"
echo "|---|---:|---:|---:|---:|"
for ((i = 0; i < n; ++i)); do
  if [ -n "${note[i]:-}" ]; then
    echo "| ${labels[$i]} | n/a | n/a | n/a | n/a |"
    continue
  fi
  echo "| ${labels[$i]} | ${wall[i]} | ${cpu[i]} | $(ratio "${wall[i]}" "${wall[0]}") | $(ratio "${wall[5]}" "${wall[i]}") |"
done
for ((i = 0; i < n; ++i)); do
  if [ -n "${note[i]:-}" ]; then echo "${labels[$i]}: ${note[i]}"; fi
done
echo
verdict=$(awk -v h="${wall[5]}" -v l="${wall[3]}" 'BEGIN { printf "%.2fx: %s", h / l, (h / l >= 5 ? "met" : "MISSED") }')
echo "heaptrack / leakscope track=all (stacks on), wall time: $verdict (target >= 5x)"
