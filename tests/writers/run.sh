#!/usr/bin/env bash
# The writers stage (scripts/test.sh): the reports leakscope writes, read by their real readers.
#   JSON     python3's json module (every document; JSON Lines line by line), strictly: NaN and
#            Infinity, which it would accept, are refused; the whole-heap members of the
#            monitor, sampled and huge reports
#   folded   the flamegraph.pl line grammar (frames split on ';', count after the last space)
#   pprof    the pprof tool, built offline from Debian's golang-github-google-pprof-dev:
#            -top and -traces on the fixed, empty, 100k-site and a real report; the monitor's
#            comments and labels (-tagfocus=growing=true), the sampled report's period and
#            samples label, the huge report's values clamped to int64; the fixed
#            report's -traces compared with tests/golden/report.pprof-traces.txt; the real
#            report's mappings carry the build ids readelf reports
#   HTML     headless Chromium (tests/writers/check_html.py): loads with no console message,
#            widest frame, click zoom, tooltip, table; the monitor page's growing rows and freed
#            table, the sampled page's estimates; screenshots kept in build/writers/reports
# Needs: g++, python3, chromium, golang-go, golang-github-google-pprof-dev (scripts/setup.sh).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT="$ROOT/build/writers"
REPORTS="$OUT/reports"
mkdir -p "$OUT"
rm -rf "$REPORTS"
mkdir -p "$REPORTS"
failures=0
ok() { echo "ok   $*"; }
fail() { echo "FAIL $*"; failures=$((failures + 1)); }

echo "-- building make_reports"
g++ -std=c++17 -O2 -g -Wall -Wextra -Wpedantic -Werror -I"$ROOT/include" \
  "$ROOT/tests/writers/make_reports.cpp" -o "$OUT/make_reports" -pthread -ldl
"$OUT/make_reports" "$REPORTS"

echo "-- JSON (python3's json module, NaN and Infinity refused)"
for stem in golden empty many real monitor sampled huge; do
  if python3 -c '
import json, sys
def refuse(name): raise ValueError("not JSON: " + name)
json.loads(open(sys.argv[1], encoding="utf-8").read(), parse_constant=refuse)
' "$REPORTS/$stem.json"; then ok "$stem.json parses"; else fail "$stem.json"; fi
done
if python3 -c '
import json, sys
d = lambda stem: json.load(open(sys.argv[1] + "/" + stem + ".json", encoding="utf-8"))
m, s, h = d("monitor"), d("sampled"), d("huge")
keys = ["leakscope", "kind", "scope", "file", "line", "by_exception", "blocks", "bytes", "released_blocks",
        "released_bytes", "sites", "suppressed", "released_sites", "rss_bytes", "sample_bytes", "error", "interval",
        "growth_intervals"]
assert list(m) == keys and list(s) == keys and list(h) == keys, list(m)
site = ["blocks", "bytes", "type", "frames", "allocator_frames", "samples", "growing"]
assert all(list(x) == site for x in m["sites"] + m["released_sites"]), m["sites"][0].keys()
assert m["kind"] == "monitor" and m["interval"] == 12 and m["growth_intervals"] == 3 and m["rss_bytes"] == 92483584
assert [x["growing"] for x in m["sites"]] == [False, True, True, False]
assert len(m["released_sites"]) == 7 and m["released_bytes"] == sum(x["bytes"] for x in m["released_sites"])
assert s["sample_bytes"] == 524288 and s["error"] == 0.031 and [x["samples"] for x in s["sites"]] == [9, 2, 1]
assert h["error"] is None and h["released_sites"][0]["bytes"] == 2**64 - 1 and h["interval"] == 2**32 - 1
' "$REPORTS"; then ok "the whole-heap members (monitor, sampled, huge)"; else fail "the whole-heap members"; fi
if python3 -c '
import json, sys
lines = open(sys.argv[1], encoding="utf-8").read().splitlines()
assert len(lines) == 2, lines
docs = [json.loads(l) for l in lines]
assert [d["scope"] for d in docs] == ["GET /page", ""], docs
assert all(list(d)[0] == "leakscope" for d in docs)
' "$REPORTS/appended.jsonl"; then ok "appended.jsonl: two JSON Lines"; else fail "appended.jsonl"; fi

echo "-- folded stacks (flamegraph.pl's grammar; the + side only)"
folded_lines() {   # the sites of each report: one line each
  case $1 in
    golden | sampled) echo 3 ;;
    empty) echo 0 ;;
    many) echo 100000 ;;
    real) echo 1 ;;
    monitor | huge) echo 4 ;;
  esac
}
for stem in golden empty many real monitor sampled huge; do
  if python3 -c '
import re, sys
data = open(sys.argv[1], "rb").read().decode("utf-8")   # valid UTF-8
n = 0
for line in data.splitlines():
    assert re.fullmatch(r"[^;\x00-\x1f\x7f]+(;[^;\x00-\x1f\x7f]+)* [0-9]+", line), line
    n += 1
assert n == int(sys.argv[2]), n
' "$REPORTS/$stem.folded" "$(folded_lines "$stem")"; then
    ok "$stem.folded"
  else
    fail "$stem.folded"
  fi
done

echo "-- pprof"
PPROF="$OUT/pprof"
if [ ! -x "$PPROF" ]; then
  echo "-- building pprof from Debian's sources (offline)"
  (cd "$OUT" && GOPATH=/usr/share/gocode GO111MODULE=off GOCACHE="$OUT/go-cache" \
    go build -o "$PPROF" github.com/google/pprof)
fi
pprof_ok() {   # pprof_ok WHAT ARGS...: runs pprof, keeps its output in $REPORTS/WHAT.out
  local what=$1
  shift
  if "$PPROF" "$@" >"$REPORTS/$what.out" 2>"$REPORTS/$what.err"; then
    ok "pprof $* "
  else
    fail "pprof $*: $(head -n 3 "$REPORTS/$what.err")"
  fi
}
pprof_ok golden-top -top "$REPORTS/golden.pb.gz"
pprof_ok golden-traces -traces "$REPORTS/golden.pb.gz"
if diff -u "$ROOT/tests/golden/report.pprof-traces.txt" "$REPORTS/golden-traces.out"; then
  ok "pprof -traces of the fixed report matches tests/golden/report.pprof-traces.txt"
else
  fail "pprof -traces of the fixed report differs from the golden file"
fi
grep -Eq '^ +120B +60\.00% +60\.00% +120B +60\.00%  render_page\(Request const&\) \(inline\)$' "$REPORTS/golden-top.out" &&
  ok "pprof -top: render_page holds 120B (60%) flat" || fail "pprof -top of the fixed report: $(cat "$REPORTS/golden-top.out")"
pprof_ok golden-objects -top -sample_index=inuse_objects "$REPORTS/golden.pb.gz"
grep -q 'of 6 total' "$REPORTS/golden-objects.out" && ok "pprof: inuse_objects totals 6 blocks" || fail "inuse_objects total"
pprof_ok empty-top -top "$REPORTS/empty.pb.gz"
pprof_ok many-top -top -nodecount=5 "$REPORTS/many.pb.gz"
pprof_ok many-traces -traces "$REPORTS/many.pb.gz"
samples=$(grep -c '^-----------+' "$REPORTS/many-traces.out" || true)
[ "$samples" = 100001 ] && ok "pprof -traces: 100000 samples" || fail "pprof -traces of many: $samples separators"
grep -q 'of 149.01GB total' "$REPORTS/many-top.out" && ok "pprof: the 100k-site total" || fail "many total"
pprof_ok real-top -top "$REPORTS/real.pb.gz"
grep -q 'leak_here' "$REPORTS/real-top.out" && ok "pprof -top names the real leak's function" || fail "real -top"
pprof_ok real-raw -raw "$REPORTS/real.pb.gz"
build_id=$(readelf -n "$OUT/make_reports" | sed -n 's/.*Build ID: *//p' | head -n 1)
if [ -n "$build_id" ] && grep -q "make_reports $build_id \[FN\]\[FL\]\[LN\]\[IN\]" "$REPORTS/real-raw.out"; then
  ok "the executable's mapping carries its build id ($build_id)"
else
  fail "build id $build_id not in the mappings: $(sed -n '/Mappings/,$p' "$REPORTS/real-raw.out")"
fi
# The whole-heap reports: the minus side, RSS and growth as comments, growing and samples as labels,
# the sample rate as the period; -tagfocus keeps the growing sites alone; huge counts clamped.
pprof_ok monitor-traces -traces "$REPORTS/monitor.pb.gz"
grep -q '^not in it: the - side, freed since baseline: 363 blocks (1276184 bytes)$' "$REPORTS/monitor-traces.out" &&
  grep -q '^resident set (RSS): 92483584 bytes$' "$REPORTS/monitor-traces.out" &&
  [ "$(grep -c '^   growing:  true$' "$REPORTS/monitor-traces.out")" = 2 ] &&
  ok "pprof -traces: the minus side and RSS as comments, two samples labelled growing" ||
  fail "monitor -traces: $(cat "$REPORTS/monitor-traces.out")"
pprof_ok monitor-growing -top -tagfocus=growing=true "$REPORTS/monitor.pb.gz"
grep -Eq '^ +600kB +20\.38% +20\.38% +600kB +20\.38%  Cache::fill$' "$REPORTS/monitor-growing.out" &&
  ! grep -q render_page "$REPORTS/monitor-growing.out" && ok "pprof -tagfocus=growing=true keeps the growing sites" ||
  fail "monitor -tagfocus: $(cat "$REPORTS/monitor-growing.out")"
pprof_ok sampled-raw -raw "$REPORTS/sampled.pb.gz"
grep -q '^Period: 524288$' "$REPORTS/sampled-raw.out" && grep -q 'samples:\[9 count\]' "$REPORTS/sampled-raw.out" &&
  grep -q '^       9000    4718592: ' "$REPORTS/sampled-raw.out" &&
  ok "pprof -raw: the estimates as values, the sample rate as period, a samples label" ||
  fail "sampled -raw: $(cat "$REPORTS/sampled-raw.out")"
pprof_ok huge-top -top "$REPORTS/huge.pb.gz"
pprof_ok huge-raw -raw "$REPORTS/huge.pb.gz"
grep -q '2305843009213693951 2305843009213693951: ' "$REPORTS/huge-raw.out" && ! grep -q -- ' -[0-9]' "$REPORTS/huge-raw.out" &&
  ! grep -q -- ' -[0-9]' "$REPORTS/huge-top.out" &&
  ok "pprof: counts near SIZE_MAX stop where neither a value nor pprof's total turns negative" ||
  fail "huge: $(head -30 "$REPORTS/huge-raw.out" "$REPORTS/huge-top.out")"

libc_build_id=$(readelf -n "$(ldd "$OUT/make_reports" | sed -n 's/.*libc\.so\.6 => \([^ ]*\).*/\1/p')" |
  sed -n 's/.*Build ID: *//p' | head -n 1)
grep -q "libc.so.6 $libc_build_id" "$REPORTS/real-raw.out" && ok "libc's mapping carries its build id" ||
  fail "libc build id $libc_build_id"

echo "-- HTML (headless Chromium)"
python3 "$ROOT/tests/writers/check_html.py" golden "$REPORTS/golden.html" "$REPORTS" || failures=$((failures + 1))
python3 "$ROOT/tests/writers/check_html.py" load "$REPORTS/empty.html" 0 "$REPORTS" || failures=$((failures + 1))
python3 "$ROOT/tests/writers/check_html.py" load "$REPORTS/real.html" 1 "$REPORTS" || failures=$((failures + 1))
python3 "$ROOT/tests/writers/check_html.py" load "$REPORTS/many.html" 100000 "$REPORTS" || failures=$((failures + 1))
python3 "$ROOT/tests/writers/check_html.py" monitor "$REPORTS/monitor.html" "$REPORTS" || failures=$((failures + 1))
python3 "$ROOT/tests/writers/check_html.py" sampled "$REPORTS/sampled.html" "$REPORTS" || failures=$((failures + 1))
python3 "$ROOT/tests/writers/check_html.py" load "$REPORTS/huge.html" 4 "$REPORTS" || failures=$((failures + 1))
echo "-- screenshots: $(cd "$REPORTS" && ls ./*.png | tr '\n' ' ')"

if [ "$failures" -ne 0 ]; then
  echo "writers: $failures check(s) failed"
  exit 1
fi
echo "writers: all checks passed"
