#!/usr/bin/env bash
# Instructions per 32-byte allocate/free pair, counted by callgrind: plain malloc/free, the
# hook idle, inside a scope, whole-heap tracking, and sampled; and the floor model of exact tracking
# (bench/tools/floor_model.hpp). Deterministic (the same binary gives the same counts), so use
# it to judge hot-path changes; bench_core gives the wall-time ratios.
#   bash bench/instructions.sh [CXX]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cxx=${1:-g++}
work="$root/build/instructions"   # kept: callgrind_annotate build/instructions/cg.scope
mkdir -p "$work"
"$cxx" -std=c++17 -O2 -g -I"$root/include" "$root/bench/tools/pair_loop.cpp" -o "$work/pair_loop" -pthread
pairs=1000000
count() {   # count MODE PAIRS [LEAKSCOPE_OPTIONS]
  LEAKSCOPE_OPTIONS=${3:-} valgrind --tool=callgrind --callgrind-out-file="$work/cg.$1${3:+.${3//[^a-z]/_}}" "$work/pair_loop" "$1" "$2" 2>&1 |
    sed -n 's/.*refs: *//p' | tr -d ,
}
base=$(count none 0)
plain=$(( ($(count plain $pairs) - base) / pairs ))
idle=$(( ($(count idle $pairs) - base) / pairs ))
scope=$(( ($(count scope $pairs) - base) / pairs ))
scope_nostacks=$(( ($(count scope $pairs stacks=off) - base) / pairs ))
heap=$(( ($(count heap $pairs) - base) / pairs ))
sampled=$(( ($(count sampled $pairs) - base) / pairs ))
model_idle=$(( ($(count model_idle $pairs) - base) / pairs ))
model=$(( ($(count model $pairs) - base) / pairs ))
echo "| pair | instructions | ratio to plain |"
echo "|---|---:|---:|"
for row in "plain malloc/free:$plain" "hook idle:$idle" "inside a scope (stacks on, the default):$scope" \
           "inside a scope, stacks off:$scope_nostacks" \
           "track=all, stacks off:$heap" "track=all sample_bytes=512K:$sampled" \
           "floor model, nothing tracked:$model_idle" "floor model, every block tracked, no stacks:$model"; do
  name=${row%%:*}; n=${row##*:}
  awk -v name="$name" -v n="$n" -v p="$plain" 'BEGIN { printf "| %s | %d | %.2fx |\n", name, n, n / p }'
done
echo
echo "where the in-scope instructions go: callgrind_annotate --auto=yes $work/cg.scope"
