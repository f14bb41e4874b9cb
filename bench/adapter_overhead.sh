#!/usr/bin/env bash
# What the test-framework adapters cost a suite of 1000 trivial tests: for GoogleTest, Catch2 and
# doctest, builds the same generated suite three times —
#   plain    the framework alone
#   hooked   + leakscope's implementation (operator new replaced), no adapter
#   adapter  + leakscope/<framework>.hpp (every test in its own scope, judged at its end)
# — runs each RUNS times (default 21, alternating) and prints the minimum wall time and the
# adapter's cost against `hooked` (the adapter's own work) and against `plain`.
#   bash bench/adapter_overhead.sh [RUNS]      (g++ -O2 -g; build dir build/adapter_overhead)
# No assertion: a timing on a shared VM is a figure to read, not a test.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$ROOT/build/adapter_overhead
RUNS=${1:-21}
TESTS=1000
CXX=${CXX:-g++}
mkdir -p "$OUT"

# gen FRAMEWORK VARIANT: the suite's source on stdout.
gen() {
  local fw=$1 variant=$2 i
  case "$variant" in
    hooked) echo '#define LEAKSCOPE_IMPLEMENTATION'; echo '#include <leakscope.hpp>' ;;
    adapter) echo '#define LEAKSCOPE_IMPLEMENTATION'; echo "#include <leakscope/$fw.hpp>" ;;
  esac
  case "$fw" in
    gtest) echo '#include <gtest/gtest.h>' ;;
    catch2) echo '#define CATCH_CONFIG_MAIN'; echo '#include <catch2/catch.hpp>' ;;
    doctest) echo '#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN'; echo '#include <doctest/doctest.h>' ;;
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

now_ns() { date +%s%N; }

for fw in gtest catch2 doctest; do
  for variant in plain hooked adapter; do
    src=$OUT/${fw}_$variant.cpp
    bin=$OUT/${fw}_$variant
    gen "$fw" "$variant" >"$src.new"
    if ! cmp -s "$src.new" "$src" || [ ! -x "$bin" ]; then
      mv "$src.new" "$src"
      echo "building $bin" >&2
      # shellcheck disable=SC2046
      "$CXX" -std=c++17 -O2 -g -I"$ROOT/include" "$src" -o "$bin" $(libs "$fw") -pthread -ldl
    else
      rm -f "$src.new"
    fi
  done
done

declare -A best
for ((r = 0; r < RUNS; ++r)); do
  for fw in gtest catch2 doctest; do
    for variant in plain hooked adapter; do
      bin=$OUT/${fw}_$variant
      t0=$(now_ns)
      "$bin" >/dev/null 2>&1 || { echo "$bin failed" >&2; exit 1; }
      t=$(($(now_ns) - t0))
      key=$fw.$variant
      if [ -z "${best[$key]:-}" ] || [ "$t" -lt "${best[$key]}" ]; then best[$key]=$t; fi
    done
  done
done

printf '%-8s %10s %10s %10s %16s %16s\n' framework "plain ms" "hooked ms" "adapter ms" "adapter/hooked" "adapter/plain"
for fw in gtest catch2 doctest; do
  p=${best[$fw.plain]} h=${best[$fw.hooked]} a=${best[$fw.adapter]}
  awk -v fw="$fw" -v p="$p" -v h="$h" -v a="$a" 'BEGIN {
    printf "%-8s %10.2f %10.2f %10.2f %15.1f%% %15.1f%%\n", fw, p / 1e6, h / 1e6, a / 1e6, (a / h - 1) * 100, (a / p - 1) * 100 }'
done
echo "($TESTS trivial tests each, minimum of $RUNS runs, output to /dev/null)"
