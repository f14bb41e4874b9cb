#!/usr/bin/env bash
# What the test-framework adapters cost a suite of 1000 trivial tests: for GoogleTest, Catch2 and
# doctest, builds the same generated suite three times —
#   plain    the framework alone
#   hooked   + leakscope's implementation (operator new replaced), no adapter
#   adapter  + leakscope/<framework>.hpp (every test in its own scope, judged at its end)
# — and measures each, plus the adapter binary run with test_stacks=inline (every test's scope
# captures stacks), test_stacks=rerun (none; a leaking test would run again alone for them) and
# stacks=off (LEAKSCOPE_OPTIONS; `adapter` alone is the default, test_stacks=auto), two ways:
#   wall time     RUNS runs of each (default 21, interleaved), the minimum; noisy on a shared VM
#   instructions  one run under valgrind --tool=callgrind (the whole process: loader, start-up,
#                 the tests, exit), which neighbours on the machine cannot change; `perf stat -e
#                 instructions` instead when the kernel exposes the counter (most VMs do not)
# and prints each against `plain` (what the include costs a suite) and `hooked` (the adapter's
# own work on top of leakscope's hook).
#   bash bench/adapter_overhead.sh [RUNS]      (g++ -O2 -g; build dir build/adapter_overhead)
# Environment: FRAMEWORKS="gtest catch2 doctest" (a subset), INSTRUCTIONS=0 (wall time only),
#              CXX (default g++), TESTS (default 1000).
# No assertion: a figure to read, not a test.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$ROOT/build/adapter_overhead
RUNS=${1:-21}
TESTS=${TESTS:-1000}
CXX=${CXX:-g++}
read -r -a FWS <<<"${FRAMEWORKS:-gtest catch2 doctest}"
INSTRUCTIONS=${INSTRUCTIONS:-1}
mkdir -p "$OUT"

# gen FRAMEWORK VARIANT: the suite's source on stdout.
gen() {
  local fw=$1 variant=$2 i
  # The framework's main first: Catch2 v2's implementation comes with the first include of its
  # header, which the adapter makes.
  case "$fw" in
    catch2) echo '#define CATCH_CONFIG_MAIN' ;;
    doctest) echo '#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN' ;;
  esac
  case "$variant" in
    hooked) echo '#define LEAKSCOPE_IMPLEMENTATION'; echo '#include <leakscope.hpp>' ;;
    adapter) echo '#define LEAKSCOPE_IMPLEMENTATION'; echo "#include <leakscope/$fw.hpp>" ;;
  esac
  case "$fw" in
    gtest) echo '#include <gtest/gtest.h>' ;;
    catch2) echo '#include <catch2/catch.hpp>' ;;
    doctest) echo '#include <doctest/doctest.h>' ;;
  esac
  echo '#include <string>'
  echo '#include <vector>'
  for ((i = 0; i < TESTS; ++i)); do
    case "$fw" in
      gtest) echo "TEST(Suite, T$i) { std::vector<int> v($i % 7 + 1); std::string s(40, 'x'); EXPECT_EQ(v.size(), std::size_t($i % 7 + 1)); EXPECT_EQ(s.size(), 40u); }" ;;
      *) echo "TEST_CASE(\"test $i\") { std::vector<int> v($i % 7 + 1); std::string s(40, 'x'); CHECK(v.size() == std::size_t($i % 7 + 1)); CHECK(s.size() == 40u); }" ;;
    esac
  done
}

libs() {
  case "$1" in
    gtest) echo "-lgtest_main -lgtest" ;;
    *) echo "" ;;
  esac
}

for fw in "${FWS[@]}"; do
  for variant in plain hooked adapter; do
    src=$OUT/${fw}_$variant.cpp
    bin=$OUT/${fw}_$variant
    gen "$fw" "$variant" >"$src.new"
    # The headers count too: a changed leakscope.hpp or adapter rebuilds the suite.
    if ! cmp -s "$src.new" "$src" || [ ! -x "$bin" ] ||
       { [ "$variant" != plain ] && [ -n "$(find "$ROOT/include" -name '*.hpp' -newer "$bin" | head -n 1)" ]; }; then
      mv "$src.new" "$src"
      echo "building $bin" >&2
      # shellcheck disable=SC2046
      "$CXX" -std=c++17 -O2 -g -I"$ROOT/include" "$src" -o "$bin" $(libs "$fw") -pthread -ldl
    else
      rm -f "$src.new"
    fi
  done
done

# The measured configurations: NAME BINARY-VARIANT LEAKSCOPE_OPTIONS
CONFIGS=("plain plain -" "hooked hooked -" "adapter adapter -" "adapter,test_stacks=inline adapter test_stacks=inline"
         "adapter,test_stacks=rerun adapter test_stacks=rerun" "adapter,stacks=off adapter stacks=off")

# run_one FW CONFIG [PREFIX...]: runs it once (output to /dev/null).
run_one() {
  local fw=$1 cfg=$2
  shift 2
  local name variant opts
  read -r name variant opts <<<"$cfg"
  local bin=$OUT/${fw}_$variant
  if [ "$opts" = - ]; then
    "$@" "$bin" >/dev/null 2>&1
  else
    LEAKSCOPE_OPTIONS=$opts "$@" "$bin" >/dev/null 2>&1
  fi
}

# Timed by bench/tools/runs (interleaved whole-process runs, spawned directly: a shell loop
# around `date` added ~2 ms of its own to each 5 ms sample, and most of the noise).
RUNS_TOOL=$OUT/runs
if [ ! -x "$RUNS_TOOL" ] || [ "$ROOT/bench/tools/runs.cpp" -nt "$RUNS_TOOL" ]; then
  "$CXX" -std=c++17 -O2 "$ROOT/bench/tools/runs.cpp" -o "$RUNS_TOOL"
fi
commands=$OUT/commands
: >"$commands"
keys=()
for fw in "${FWS[@]}"; do
  for cfg in "${CONFIGS[@]}"; do
    read -r name variant opts <<<"$cfg"
    if [ "$opts" = - ]; then echo "$OUT/${fw}_$variant" >>"$commands"; else
      echo "LEAKSCOPE_OPTIONS=$opts $OUT/${fw}_$variant" >>"$commands"; fi
    keys+=("$fw.$name")
  done
done
# Every test of the suite is clean: a run must exit 0. Without stacks (stacks=off, and demand for
# names that never leaked) the framework's own blocks cannot be told from the test's (README), so
# such a run may fail a test: noted under the table, still timed.
declare -A best instr status
i=0
while read -r wall_min _p25 _median _cpu rc; do
  key=${keys[$i]}
  best[$key]=$((wall_min * 1000))
  if [ "$rc" -ne 0 ]; then
    case "$key" in
      *stacks=*) status[$key]=$rc ;;
      *) echo "$key failed: exit status $rc" >&2; exit 1 ;;
    esac
  fi
  i=$((i + 1))
done < <("$RUNS_TOOL" "$RUNS" "$commands")

counter=none
if [ "$INSTRUCTIONS" = 1 ]; then
  if perf stat -x, -e instructions:u true 2>&1 >/dev/null | grep -q '^[0-9]'; then
    counter=perf
  elif command -v valgrind >/dev/null 2>&1; then
    counter=callgrind
  else
    echo "neither perf's instruction counter nor valgrind: wall time only" >&2
  fi
fi
count_instructions() {   # FW CONFIG: prints the instructions of one run
  local fw=$1 cfg=$2 log=$OUT/count.log
  case "$counter" in
    perf)
      run_one "$fw" "$cfg" perf stat -x, -e instructions:u -o "$log" || true
      awk -F, '/instructions/ { print $1 }' "$log" ;;
    callgrind)
      run_one "$fw" "$cfg" valgrind --tool=callgrind --callgrind-out-file=/dev/null --log-file="$log" || true
      sed -n 's/.*Collected : *//p' "$log" | tr -d , ;;
  esac
}
if [ "$counter" != none ]; then
  for fw in "${FWS[@]}"; do
    for cfg in "${CONFIGS[@]}"; do
      instr[$fw.${cfg%% *}]=$(count_instructions "$fw" "$cfg")
    done
  done
fi

printf '%-8s %-22s %9s %8s %8s %15s %8s %8s\n' framework configuration "wall ms" "/plain" "/hooked" instructions "/plain" "/hooked"
for fw in "${FWS[@]}"; do
  for cfg in "${CONFIGS[@]}"; do
    name=${cfg%% *}
    awk -v fw="$fw" -v name="$name" -v t="${best[$fw.$name]}" -v tp="${best[$fw.plain]}" -v th="${best[$fw.hooked]}" \
        -v i="${instr[$fw.$name]:-0}" -v ip="${instr[$fw.plain]:-0}" -v ih="${instr[$fw.hooked]:-0}" '
      function pct(a, b) { return b > 0 ? sprintf("%+7.1f%%", (a / b - 1) * 100) : "       -" }
      BEGIN {
        printf "%-8s %-22s %9.2f %8s %8s %15s %8s %8s\n", fw, name, t / 1e6, pct(t, tp), pct(t, th),
               (i > 0 ? i : "-"), (i > 0 ? pct(i, ip) : "       -"), (i > 0 ? pct(i, ih) : "       -") }'
  done
done
echo "($TESTS trivial tests each; wall: minimum of $RUNS interleaved runs, output to /dev/null; instructions: one run, $counter)"
for key in "${!status[@]}"; do
  echo "note: $key exited with status ${status[$key]}: without stacks a framework block was blamed on a test"
done
