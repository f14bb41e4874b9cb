#!/usr/bin/env bash
# The exit report's block and byte counts against Valgrind's "in use at exit" for the same program
# (tests/heap/oracle_program.cpp): HOOKED is built with leakscope's hook and runs with
# exit_report=1; PLAIN is the same source with LEAKSCOPE_NO_NEW_DELETE, run under Valgrind.
# Usage: valgrind_oracle.sh HOOKED PLAIN. Exit 0 when both say the same.
set -euo pipefail
hooked=$1 plain=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

LEAKSCOPE_OPTIONS="exit_report=1 stacks=off report=json=$work/exit.json" "$hooked"
ours_blocks=$(sed -n 's/.*"kind":"exit".*"blocks":\([0-9]*\),"bytes":\([0-9]*\).*/\1/p' "$work/exit.json")
ours_bytes=$(sed -n 's/.*"kind":"exit".*"blocks":\([0-9]*\),"bytes":\([0-9]*\).*/\2/p' "$work/exit.json")

valgrind --tool=memcheck --leak-check=no --log-file="$work/valgrind.txt" "$plain"
# "==123==   in use at exit: 61,234 bytes in 321 blocks"
line=$(grep "in use at exit:" "$work/valgrind.txt")
vg_bytes=$(sed -n 's/.*in use at exit: \([0-9,]*\) bytes in \([0-9,]*\) blocks.*/\1/p' <<<"$line" | tr -d ,)
vg_blocks=$(sed -n 's/.*in use at exit: \([0-9,]*\) bytes in \([0-9,]*\) blocks.*/\2/p' <<<"$line" | tr -d ,)

echo "leakscope exit report: $ours_blocks blocks, $ours_bytes bytes"
echo "valgrind in use at exit: $vg_blocks blocks, $vg_bytes bytes"
if [ -z "$ours_blocks" ] || [ -z "$vg_blocks" ]; then
  echo "FAIL: a count is missing"; cat "$work/exit.json" "$work/valgrind.txt"; exit 1
fi
if [ "$ours_blocks" != "$vg_blocks" ] || [ "$ours_bytes" != "$vg_bytes" ]; then
  echo "FAIL: the exit report and Valgrind disagree"; exit 1
fi
echo "ok: the same"
