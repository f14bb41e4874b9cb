#!/usr/bin/env bash
# Runs a whole-heap example and checks its output against what the program did (ground truth):
#   leaky_server   exit 0, every request answered; one leaking request per cached page (the
#                  cache's size, which the program prints); the first report, the monitor's
#                  growing sites and the peak report name the cache line; the HTML flame graph
#                  (leaky_server-peak.html) holds it
#   doctor_thread  exit 0; the first failed feed's report: exactly one feed of FloatingVehicles,
#                  typed, at the line that allocated and threw; one leaking request per failed
#                  feed and none for the other route; leftovers by type: exactly the
#                  FloatingVehicles the program says it leaked, and nothing else; the monitor
#                  marks that line growing
# The lines are found in the example's source by the comment that marks them.
#
#   check.sh leaky_server|doctor_thread <binary> <example.cpp> <workdir>
set -uo pipefail

example=$1 bin=$(realpath "$2") src=$(realpath "$3") work=$4
mkdir -p "$work"
cd "$work" || exit 2
base=$(basename "$src")
fails=0
fail() {
  echo "FAIL [$example]: $*" >&2
  fails=$((fails + 1))
}
pass() { echo "ok   [$example]: $*"; }

# line_of TEXT: the line of the example holding the marker comment TEXT.
line_of() {
  local n
  n=$(grep -n -F -- "$1" "$src" | cut -d: -f1)
  if [ -z "$n" ] || [ "$(wc -l <<<"$n")" -ne 1 ]; then
    echo "check.sh: marker '$1' not found once in $src" >&2
    exit 2
  fi
  echo "$n"
}
# report FILE REGEX: the first report whose header line matches REGEX (an ERE), up to the next
# report's header or the first line that is not leakscope's. A header is a "leakscope: " line
# whose text starts at once (not indented, not a growing row's "*"). Reports from the monitor's
# thread and the requests' are written whole, one at a time.
report() {
  awk -v h="$2" 'on && (/^leakscope: [^ *]/ || !/^leakscope:/) { exit }
                 !done && $0 ~ h { on = 1; done = 1; print; next }
                 on { print }' "$1"
}
# last_report FILE REGEX: the last report whose header matches REGEX.
last_report() {
  awk -v h="$2" 'on && (/^leakscope: [^ *]/ || !/^leakscope:/) { on = 0 }
                 $0 ~ h { on = 1; text = "" }
                 on { text = text $0 "\n" }
                 END { printf "%s", text }' "$1"
}
# names TEXT LINE WHAT: TEXT (a report) has a frame at $base:LINE.
names() {
  if grep -q -E "$base:$2(\\)|\$)" <<<"$1"; then pass "$3 names $base:$2"; else
    fail "$3 does not name $base:$2"
    printf '%s\n' "$1" | head -n 40 >&2
  fi
}
has() {
  if grep -q -F -- "$2" <<<"$1"; then pass "$3"; else fail "$3: '$2' not found"; fi
}

out=$work/$example.out
"$bin" >"$out" 2>&1
rc=$?
if [ $rc -eq 0 ]; then pass "exit status 0"; else
  fail "exit status $rc"
  tail -n 40 "$out" >&2
fi
all=$(cat "$out")

check_leaky_server() {
  local cache pages
  cache=$(line_of "// the cache line") || exit 2
  pages=$(sed -n 's/^served 2000 requests (2000 OK); \([0-9]*\) pages cached.*/\1/p' <<<"$all")
  if [ -n "$pages" ]; then pass "2000 requests, all answered 200; $pages pages cached"; else
    fail "no 'served 2000 requests (2000 OK)' line"; fi
  # Each path's first request adds its page: one leaking request per cached page, no more.
  has "$all" "scope \"GET /item\" left blocks behind ${pages:-?} times" "one leaking request per cached page ($pages)"
  local full
  full=$(grep -c '^leakscope: scope ' <<<"$all")
  if [ "$full" -eq 1 ]; then pass "one leftover report printed in full"; else
    fail "$full leftover reports printed in full, expected 1"; fi
  names "$(report "$out" '^leakscope: scope "GET /item"')" "$cache" "the first request's report"
  # The monitor: the cache line's sites grew in each of the last intervals.
  local growing
  growing=$(grep '^monitor: growing' <<<"$all")
  names "$growing" "$cache" "the monitor's growing sites"
  # The monitor's last report, as the text writer shows it: both of the cache's sites marked
  # growing (*), the pages first.
  local last
  last=$(last_report "$out" '^leakscope: interval [0-9]+ since baseline')
  if grep -q -E '^leakscope: \* +1 .*render_item$' <<<"$last" && grep -q -E '^leakscope: \* +2 .*handle$' <<<"$last"; then
    pass "the last monitor report marks render_item and handle growing (*)"
  else fail "the last monitor report does not mark render_item and handle growing: $last"; fi
  names "$last" "$cache" "the last monitor report"
  # peak(): the text report and the flame graph.
  names "$(report "$out" '^leakscope: peak')" "$cache" "the peak report"
  if [ -f leaky_server-peak.html ] && grep -q -E "$base\",$cache\\]" leaky_server-peak.html; then
    pass "leaky_server-peak.html has a frame at $base:$cache"
  else fail "leaky_server-peak.html missing or without a frame at $base:$cache"; fi
}

check_doctor_thread() {
  local throw_line leaked failed
  throw_line=$(line_of "// throws on a bad record: the batch leaks") || exit 2
  failed=$(sed -n 's/^served 2000 requests; \([0-9]*\) position feeds failed: .*/\1/p' <<<"$all")
  leaked=$(sed -n 's/.*feeds failed: \([0-9]*\) FloatingVehicle leaked on purpose$/\1/p' <<<"$all")
  if [ "$failed" = 100 ] && [ "$leaked" = 20000 ]; then pass "the program leaked 20000 FloatingVehicle in 100 failed feeds"; else
    fail "the program says failed='$failed' leaked='$leaked', expected 100 and 20000"; fi
  local first
  first=$(report "$out" '^leakscope: scope "POST /positions"')
  has "$first" "scope \"POST /positions\" left 200 blocks (8000 bytes) behind" "a failed feed leaves its 200 vehicles"
  has "$first" "200 blocks, 8000 bytes, FloatingVehicle" "typed FloatingVehicle"
  names "$first" "$throw_line" "the failed request's report"
  has "$all" "scope \"POST /positions\" left blocks behind ${failed:-?} times" "one leaking request per failed feed"
  if grep -q 'scope "GET /nearest"' <<<"$all"; then fail "GET /nearest reported leftovers"; else pass "GET /nearest is clean"; fi
  # Leftovers by type: exactly what the program leaked, and nothing else.
  local types
  types=$(sed -n '/^leftovers of all requests by type:$/,/^served/p' "$out" | grep '^  ')
  if [ "$(wc -l <<<"$types")" -eq 1 ] && grep -q -E "^  FloatingVehicle +${leaked:-x} blocks +$((${leaked:-0} * 40)) bytes$" <<<"$types"; then
    pass "leftovers by type: FloatingVehicle $leaked blocks, nothing else"
  else fail "leftovers by type: expected only FloatingVehicle $leaked blocks, got: $types"; fi
  local last
  last=$(last_report "$out" '^leakscope: interval [0-9]+ since baseline')
  if grep -q -E '^leakscope: \* +1 .*apply_feed$' <<<"$last" &&
     grep -q -E '^leakscope:   #1  growing, [0-9]+ blocks, [0-9]+ bytes, FloatingVehicle$' <<<"$last"; then
    pass "the last monitor report marks FloatingVehicle at apply_feed growing (*)"
  else fail "the last monitor report does not mark FloatingVehicle at apply_feed growing: $last"; fi
  names "$last" "$throw_line" "the last monitor report"
  local growing
  growing=$(grep '^monitor: growing' <<<"$all")
  has "$growing" "of FloatingVehicle at" "the monitor's growing site is typed FloatingVehicle"
  names "$growing" "$throw_line" "the monitor's growing site"
}

case "$example" in
  leaky_server) check_leaky_server ;;
  doctor_thread) check_doctor_thread ;;
  *) echo "check.sh: unknown example '$example'" >&2; exit 2 ;;
esac

if [ "$fails" -ne 0 ]; then
  echo "check.sh [$example]: $fails check(s) failed; output in $out" >&2
  exit 1
fi
echo "check.sh [$example]: all checks passed"
