#!/usr/bin/env bash
# Runs a fixture test program of one framework adapter and checks, exactly, what it must say:
# its exit status, which tests failed (and that no other did), the leftover counts, the leaking
# lines (found in the fixture's source by their "LEAK:<id>" markers) and, where the framework
# writes one, the XML/JUnit failure entries.
#
#   check.sh gtest|catch2|catch2_v3|doctest|benchmark <binary> <fixture.cpp> <workdir>
# (catch2_v3: the catch2 checks, and the binary must be built against Catch2 v3.)
# pipefail: a failing command inside a pipeline fails it. (grep -q reads here-strings, not
# pipes: it exits at its first match, and the writer would die of SIGPIPE.)
set -uo pipefail

framework=$1 bin=$2 src=$3 work=$4
mkdir -p "$work"
fails=0
# EXTRA_OPTIONS: appended to LEAKSCOPE_OPTIONS in every run (a second pass of a framework's checks
# with test_stacks=rerun), and named in every line.
EXTRA_OPTIONS=
fail() {
  echo "FAIL [$framework${EXTRA_OPTIONS:+ $EXTRA_OPTIONS}]: $*" >&2
  fails=$((fails + 1))
}
pass() { echo "ok   [$framework${EXTRA_OPTIONS:+ $EXTRA_OPTIONS}]: $*"; }

# The fixture's source files: FIXTURE.cpp and its further translation units FIXTURE_*.cpp.
sources=("$src")
for f in "${src%.cpp}"_*.cpp; do [ -f "$f" ] && sources+=("$f"); done
# marker_file ID: the source holding the "LEAK:ID" marker; line_of ID: its line there.
marker_file() {
  local f
  f=$(grep -l "LEAK:$1\$" "${sources[@]}" | head -n 1)
  [ -n "$f" ] || { echo "check.sh: no LEAK:$1 marker in ${sources[*]}" >&2; exit 2; }
  echo "$f"
}
line_of() {
  local n
  n=$(grep -n "LEAK:$1\$" "$(marker_file "$1")" | cut -d: -f1)
  [ -n "$n" ] || { echo "check.sh: no LEAK:$1 marker in ${sources[*]}" >&2; exit 2; }
  echo "$n"
}
# where ID: "file:line" (basename) of the marker.
where() { echo "$(basename "$(marker_file "$1")"):$(line_of "$1")"; }
# test_line NAME: the line of the first line of the fixture that contains NAME (a test's declaration).
test_line() { grep -n -F "$1" "$src" | head -n 1 | cut -d: -f1; }
base=$(basename "$src")

# run OUT STATUS ARGS...: runs the binary, output (stdout+stderr) to OUT, expects exit STATUS.
run() {
  local out=$1 want=$2
  shift 2
  if [ -n "$EXTRA_OPTIONS" ]; then
    LEAKSCOPE_OPTIONS="${LEAKSCOPE_OPTIONS:-} $EXTRA_OPTIONS" "$bin" "$@" >"$out" 2>&1
  else
    "$bin" "$@" >"$out" 2>&1
  fi
  local rc=$?
  if [ "$rc" -eq "$want" ]; then pass "exit status $rc (${*:-no arguments})"; else
    fail "exit status $rc, expected $want (${*:-no arguments}); output in $out"
    tail -n 40 "$out" >&2
  fi
}
# same_set WHAT "expected names" "actual names": exact set equality, one name per line.
same_set() {
  local what=$1 want have
  want=$(printf '%s\n' "$2" | sed '/^$/d' | sort -u)
  have=$(printf '%s\n' "$3" | sed '/^$/d' | sort -u)
  if [ "$want" = "$have" ]; then pass "$what: $(echo "$want" | paste -sd '|')"; else
    fail "$what: expected [$(echo "$want" | paste -sd '|')], got [$(echo "$have" | paste -sd '|')]"
  fi
}
# contains FILE TEXT WHAT
contains() {
  if grep -q -F -- "$2" "$1"; then pass "$3"; else fail "$3: '$2' not in $1"; fi
}
lacks() {
  if grep -q -F -- "$2" "$1"; then fail "$3: '$2' found in $1"; else pass "$3"; fi
}
# between FILE START END: the lines from the first START to the next END (fixed strings).
between() {
  awk -v s="$2" -v e="$3" 'index($0, s) { on = 1 } on { print } on && index($0, e) && !index($0, s) { exit }' "$1"
}
# site_has TEXT ID WHAT: a frame "file:line)" of the marked line appears in TEXT (a report).
site_has() {
  local at
  at=$(where "$2")
  if grep -q -E "$at(\\)|\$)" <<<"$1"; then pass "$3 names $at"; else
    fail "$3 does not name $at"
    printf '%s\n' "$1" | head -n 30 >&2
  fi
}

# Reports handed to the writers the program chose (LEAKSCOPE_OPTIONS=report=json...), read with
# python3's json module: json_runs FILE... prints one row per report,
#   scope <TAB> file:line (basename) <TAB> blocks <TAB> frames[0] of each site (basename:line)
json_runs() {
  python3 - "$@" <<'PY'
import json, os, sys
for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as f:
        for text in f:
            if not text.strip():
                continue
            r = json.loads(text)
            sites = sorted({"%s:%d" % (os.path.basename(s["frames"][0]["file"]), s["frames"][0]["line"])
                            for s in r["sites"] if s["frames"]})
            print("%s\t%s:%d\t%d\t%s" % (r["scope"], os.path.basename(r["file"]), r["line"], r["blocks"], " ".join(sites)))
PY
}
# json_case ROWS SCOPE WHERE BLOCKS ID: exactly one report of SCOPE, opened at WHERE (base:line),
# with BLOCKS leftover blocks, a site at the marked line.
json_case() {
  local row n
  row=$(awk -F'\t' -v s="$2" '$1 == s' <<<"$1")
  n=$(printf '%s' "$row" | grep -c '^' || true)
  if [ "$n" -ne 1 ]; then fail "JSON: $n reports of \"$2\", expected 1"; return; fi
  local where blocks sites
  where=$(cut -f2 <<<"$row") blocks=$(cut -f3 <<<"$row") sites=$(cut -f4 <<<"$row")
  [ "$where" = "$3" ] && pass "JSON \"$2\": opened at $3" || fail "JSON \"$2\": opened at '$where', expected $3"
  [ "$blocks" = "$4" ] && pass "JSON \"$2\": $4 block(s)" || fail "JSON \"$2\": $blocks blocks, expected $4"
  local at
  at=$(where "$5")
  if grep -q -w -F "$at" <<<"$sites"; then pass "JSON \"$2\": a site at $at"; else
    fail "JSON \"$2\": no site at $at (sites: $sites)"; fi
}
# json_scopes ROWS: the scope of every report.
json_scopes() { cut -f1 <<<"$1"; }

# gtest_rerun_checks OUT RUNS: what test_stacks=rerun (GoogleTest's default) must have done in the
# run whose output is OUT and whose fixture::note_run lines are in RUNS.
gtest_rerun_checks() {
  local out=$1 runs=$2 r
  # A clean test never runs again; a leaking one runs once more, alone; so does one whose only
  # leftover is GoogleTest's (its property), which that run then clears.
  same_set "tests run again alone (test_stacks=rerun)" \
    "$(printf '%s\n' Noise.RecordProperty Leaks.OneBlock Rerun.LeaksOnlyAfterPrepares)" \
    "$(sed -n 's/ child$//p' "$runs")"
  local n
  n=$(grep -c ' child$' "$runs")
  [ "$n" -eq 3 ] && pass "test_stacks=rerun: 3 runs in a child, each once" || fail "$n runs in a child, expected 3"
  lacks "$out" "Noise.RecordProperty\" left" "Noise.RecordProperty: GoogleTest's property cleared by the run alone"
  r=$(between "$out" "[ RUN      ] Leaks.OneBlock" "[  FAILED  ] Leaks.OneBlock")
  grep -q -F "leakscope: stacks from this test run again alone, in a child process (test_stacks=rerun)" <<<"$r" &&
    pass "Leaks.OneBlock: its stacks come from the run alone" || fail "Leaks.OneBlock: no re-run note: $r"
  # Order-dependent: alone it leaves nothing, so the suite's run is reported, exact and stackless.
  r=$(between "$out" "[ RUN      ] Rerun.LeaksOnlyAfterPrepares" "[  FAILED  ] Rerun.LeaksOnlyAfterPrepares")
  grep -q -F "scope \"Rerun.LeaksOnlyAfterPrepares\" left 1 block (4 bytes) behind" <<<"$r" &&
    grep -q -F "leakscope: no stacks: run again alone (for its stacks), it left 0 blocks (0 bytes); LEAKSCOPE_OPTIONS=test_stacks=inline captures them in the run itself" <<<"$r" &&
    pass "Rerun.LeaksOnlyAfterPrepares: 1 block, stackless, and why" || fail "Rerun.LeaksOnlyAfterPrepares report: $r"
  r=$(between "$out" "[ RUN      ] Rerun.DiesAlone" "[  FAILED  ] Rerun.DiesAlone")
  grep -q -F "scope \"Rerun.DiesAlone\" left 1 block (8 bytes) behind" <<<"$r" &&
    grep -q -F "leakscope: no stacks: it could not be run again alone for its stacks: the child died of signal 15" <<<"$r" &&
    pass "Rerun.DiesAlone: 1 block, stackless, the child's death said" || fail "Rerun.DiesAlone report: $r"
}

check_gtest() {
  local out=$work/gtest.out xml=$work/gtest.xml runs=$work/gtest.runs
  rm -f "$xml" "$runs"
  FIXTURE_RUNS=$runs run "$out" 1 --gtest_filter=-ExitCall.*:Twelve/* --gtest_output=xml:"$xml"
  local expected
  expected=$(printf '%s\n' Leaks.OneBlock Leaks.OnExceptionPath Escape.ExpectTwoButOne Bad.ThrowsOutOfBody Bad.AlreadyFailed \
    Rerun.LeaksOnlyAfterPrepares Rerun.DiesAlone)
  same_set "failed tests (summary)" "$expected" \
    "$(sed -n 's/^\[  FAILED  \] \([^ ]*\)$/\1/p' "$out")"
  contains "$out" "[==========] 24 tests from 10 test suites ran." "24 tests ran"
  gtest_rerun_checks "$out" "$runs"
  local r
  r=$(between "$out" "[ RUN      ] Leaks.OneBlock" "[  FAILED  ] Leaks.OneBlock")
  grep -q -F "scope \"Leaks.OneBlock\" left 1 block (4 bytes) behind" <<<"$r" &&
    grep -q -E "opened at .*$base:$(test_line 'TEST(Leaks, OneBlock)')\$" <<<"$r" &&
    pass "Leaks.OneBlock: 1 block, 4 bytes, at the test's line" || fail "Leaks.OneBlock report: $r"
  site_has "$r" gtest_one_block "Leaks.OneBlock's report"
  r=$(between "$out" "[ RUN      ] Leaks.OnExceptionPath" "[  FAILED  ] Leaks.OnExceptionPath")
  grep -q -F "left 1 block (16 bytes) behind" <<<"$r" && pass "Leaks.OnExceptionPath: 1 block" ||
    fail "Leaks.OnExceptionPath report: $r"
  site_has "$r" gtest_exception_path "Leaks.OnExceptionPath's report"
  r=$(between "$out" "[ RUN      ] Escape.ExpectTwoButOne" "[  FAILED  ] Escape.ExpectTwoButOne")
  grep -q -F "leakscope: expected 2 leftover blocks, found 1" <<<"$r" &&
    pass "Escape.ExpectTwoButOne: expected 2, found 1" || fail "Escape.ExpectTwoButOne: $r"
  site_has "$r" gtest_expect_two_but_one "Escape.ExpectTwoButOne's report"
  for t in Bad.ThrowsOutOfBody Bad.AlreadyFailed; do
    r=$(between "$out" "[ RUN      ] $t" "[  FAILED  ] $t")
    if grep -q leakscope <<<"$r"; then fail "$t got a leak verdict: $r"; else
      pass "$t: failed for its own reason only"; fi
  done
  # Every test that is not listed passed without a word from leakscope.
  local leak_lines
  leak_lines=$(grep -c '^leakscope: scope ' "$out")
  [ "$leak_lines" -eq 5 ] && pass "5 leak reports in all" || fail "$leak_lines leak reports, expected 5"
  # The same run with stacks captured in every test (test_stacks=inline): the same verdicts, no
  # test runs again, and the order-dependent leaks have their stacks.
  local inline_out=$work/gtest_inline.out
  rm -f "$runs"
  FIXTURE_RUNS=$runs LEAKSCOPE_OPTIONS=test_stacks=inline run "$inline_out" 1 --gtest_filter=-ExitCall.*:Twelve/*
  same_set "failed tests (test_stacks=inline)" "$expected" \
    "$(sed -n 's/^\[  FAILED  \] \([^ ]*\)$/\1/p' "$inline_out")"
  n=$(grep -c ' child$' "$runs")
  [ "$n" -eq 0 ] && pass "test_stacks=inline: no test runs again" || fail "test_stacks=inline: $n runs in a child"
  lacks "$inline_out" "test_stacks=rerun" "test_stacks=inline: no re-run notes"
  # test_stacks=auto re-runs 8 tests alone, then the tests capture their stacks themselves; every
  # report names the leaking line either way. (test_stacks=rerun: all 12 re-run.)
  local many=$work/gtest_many.out at
  at=$(where gtest_many)
  for opts in "" test_stacks=rerun; do
    LEAKSCOPE_OPTIONS=$opts run "$many" 1 "--gtest_filter=Twelve/*"
    n=$(grep -c '^leakscope: scope "Twelve/Many.Leaks/[0-9]*" left 1 block (4 bytes) behind$' "$many")
    [ "$n" -eq 12 ] && pass "${opts:-auto}: 12 leaking tests, 12 reports" || fail "${opts:-auto}: $n reports, expected 12"
    n=$(grep -c -E "$at(\)|\$)" "$many")
    [ "$n" -eq 12 ] && pass "${opts:-auto}: every report names $at" || fail "${opts:-auto}: $n reports name $at, expected 12"
    n=$(grep -c '^leakscope: stacks from this test run again alone' "$many")
    local want=8
    [ -n "$opts" ] && want=12
    [ "$n" -eq "$want" ] && pass "${opts:-auto}: $want tests re-run alone" || fail "${opts:-auto}: $n tests re-run alone, expected $want"
  done
  LEAKSCOPE_OPTIONS= run "$many" 1 "--gtest_filter=Twelve/*"
  r=$(between "$many" "[ RUN      ] Twelve/Many.Leaks/7" "[  FAILED  ] Twelve/Many.Leaks/7")
  grep -q -F "stacks from this test run again alone" <<<"$r" && pass "auto: the 8th leaking test is re-run" ||
    fail "auto: the 8th leaking test is not re-run: $r"
  r=$(between "$many" "[ RUN      ] Twelve/Many.Leaks/8" "[  FAILED  ] Twelve/Many.Leaks/8")
  grep -q -F "stacks from this test run again alone" <<<"$r" && fail "auto: the 9th leaking test is re-run: $r" ||
    pass "auto: the 9th captures its stacks itself"
  site_has "$r" gtest_many "auto: the 9th leaking test's report"
  # A program that closed stdin and stderr: the pipe from the child must not land on a standard
  # stream the child's output replaces.
  local closed_out=$work/gtest_closed.out
  "$bin" --gtest_filter=Leaks.OneBlock 0<&- 2>&- >"$closed_out"
  contains "$closed_out" "leakscope: stacks from this test run again alone" "stdin and stderr closed: the run alone still answers"
  leak_lines=$(grep -c '^leakscope: scope ' "$inline_out")
  [ "$leak_lines" -eq 5 ] && pass "test_stacks=inline: 5 leak reports" || fail "test_stacks=inline: $leak_lines leak reports, expected 5"
  r=$(between "$inline_out" "[ RUN      ] Leaks.OneBlock" "[  FAILED  ] Leaks.OneBlock")
  site_has "$r" gtest_one_block "Leaks.OneBlock's report (test_stacks=inline)"
  r=$(between "$inline_out" "[ RUN      ] Rerun.LeaksOnlyAfterPrepares" "[  FAILED  ] Rerun.LeaksOnlyAfterPrepares")
  site_has "$r" gtest_order_dependent "Rerun.LeaksOnlyAfterPrepares's report (test_stacks=inline)"
  r=$(between "$inline_out" "[ RUN      ] Rerun.DiesAlone" "[  FAILED  ] Rerun.DiesAlone")
  site_has "$r" gtest_dies_alone "Rerun.DiesAlone's report (test_stacks=inline)"
  # The XML: failures on exactly these test cases, with the report as the message.
  if [ -f "$xml" ]; then
    same_set "failed tests (XML)" "$expected" "$(awk '
      /<testcase / { match($0, /name="[^"]*"/); n = substr($0, RSTART + 6, RLENGTH - 7)
                     match($0, /classname="[^"]*"/); c = substr($0, RSTART + 11, RLENGTH - 12) }
      /<failure / { print c "." n }' "$xml" | sort -u)"
    contains "$xml" "leakscope: scope &quot;Leaks.OneBlock&quot; left 1 block (4 bytes) behind" "XML failure message carries the report"
  else
    fail "no XML written"
  fi
  # The writers the program chose get each leaking test's report as well, named after the test;
  # the output is the same (no second copy on stderr).
  local jsonl=$work/gtest.jsonl rows
  rm -f "$jsonl" "$work"/gtest-*.json
  LEAKSCOPE_OPTIONS="report=jsonl=$jsonl" run "$out.jsonl" 1 --gtest_filter=-ExitCall.*:Twelve/*
  same_set "failed tests (summary, report=jsonl)" "$expected" \
    "$(sed -n 's/^\[  FAILED  \] \([^ ]*\)$/\1/p' "$out.jsonl")"
  leak_lines=$(grep -c '^leakscope: scope ' "$out.jsonl")
  [ "$leak_lines" -eq 5 ] && pass "report=jsonl: still 5 leak reports in the output" ||
    fail "report=jsonl: $leak_lines leak reports in the output, expected 5"
  rows=$(json_runs "$jsonl") || fail "report=jsonl: $jsonl is not JSON Lines"
  same_set "report=jsonl: the leaking tests' reports" \
    "$(printf '%s\n' Leaks.OneBlock Leaks.OnExceptionPath Escape.ExpectTwoButOne Rerun.LeaksOnlyAfterPrepares Rerun.DiesAlone)" \
    "$(json_scopes "$rows")"
  json_case "$rows" Leaks.OneBlock "$base:$(test_line 'TEST(Leaks, OneBlock)')" 1 gtest_one_block
  json_case "$rows" Leaks.OnExceptionPath "$base:$(test_line 'TEST(Leaks, OnExceptionPath)')" 1 gtest_exception_path
  json_case "$rows" Escape.ExpectTwoButOne "$base:$(test_line 'TEST(Escape, ExpectTwoButOne)')" 1 gtest_expect_two_but_one
  # One leaking test, report=json with %n: one file, that test's report.
  LEAKSCOPE_OPTIONS="report=json=$work/gtest-%n.json" run "$out.json" 1 --gtest_filter=Leaks.OneBlock:Noise.*
  local files
  files=$(cd "$work" && ls gtest-*.json 2>/dev/null | paste -sd ' ')
  [ "$files" = "gtest-1.json" ] && pass "report=json=gtest-%n.json: one file, gtest-1.json" ||
    fail "report=json=gtest-%n.json: files '$files', expected gtest-1.json"
  if [ -f "$work/gtest-1.json" ]; then
    rows=$(json_runs "$work/gtest-1.json") || fail "gtest-1.json is not JSON"
    json_case "$rows" Leaks.OneBlock "$base:$(test_line 'TEST(Leaks, OneBlock)')" 1 gtest_one_block
  fi
  # A test that calls exit(): the process ends with its status; no verdict, no report, no crash.
  run "$work/gtest_exit.out" 3 --gtest_filter=ExitCall.*
  lacks "$work/gtest_exit.out" "leakscope" "exit() inside a test: no report"
}

# The listener routes (Catch2, doctest) print one header line per leaking run:
#   leakscope: test case "NAME" [section|subcase "PATH"] (file:line) FAILED: ...
# listener_runs OUT: "NAME / PATH" per leaking run.
listener_runs() {
  sed -n -e 's/^leakscope: test case "\(.*\)" \(section\|subcase\) "\(.*\)" (.*) FAILED: .*/\1 \/ \3/p' \
    -e 's/^leakscope: test case "\([^"]*\)" (.*) FAILED: .*/\1/p' "$1"
}
# listener_report OUT NAME: the report of the leaking run whose header names NAME.
listener_report() {
  awk -v n="leakscope: test case \"$2\"" '
    index($0, "leakscope: test case ") == 1 { on = (index($0, n) == 1) }
    index($0, "leakscope: ") != 1 { on = 0 }
    on { print }' "$1"
}
# listener_case OUT NAME LEFT ID: that run's report says "left LEFT" and names the marked line.
listener_case() {
  local r
  r=$(listener_report "$1" "$2")
  if grep -q -F "left $3 behind" <<<"$r"; then pass "\"$2\": left $3"; else
    fail "\"$2\": no 'left $3 behind' in: $r"; fi
  site_has "$r" "$4" "\"$2\"'s report"
}
# junit_failed FILE: "name" of every JUnit <testcase> holding a <failure>.
junit_failed() {
  awk '/<testcase / { match($0, / name="[^"]*"/); n = substr($0, RSTART + 7, RLENGTH - 8) }
       /<failure/ { print n }' "$1" | sed 's/&quot;/"/g; s/&amp;/\&/g' | sort -u
}

check_catch2() {
  local out=$work/catch2${EXTRA_OPTIONS:+.rerun} version major
  # The same fixture is built against Catch2 v2 and v3; they differ in the exit status of failed
  # tests (v2: the number of failed assertions; v3: 42) and in JUnit attributes.
  version=$("$bin" --libidentify 2>/dev/null | sed -n 's/^version:[[:space:]]*//p')
  major=${version%%.*}
  case "$framework:$major" in
    catch2:2 | catch2:3 | catch2_v3:3) pass "Catch2 $version" ;;
    catch2_v3:*) fail "built against Catch2 '$version', not v3 (--libidentify)"; major=${major:-2} ;;
    *) fail "cannot tell the Catch2 version ('$version' from --libidentify)"; major=2 ;;
  esac
  # failed_status N: the exit status of a run with N failed assertions.
  failed_status() { if [ "$major" -ge 3 ]; then echo 42; else echo "$1"; fi; }
  # Clean tests stay clean under every reporter; the exit status stays 0.
  for rep in console junit xml compact; do
    run "$out.noise.$rep" 0 "[noise]" -r "$rep"
    lacks "$out.noise.$rep" "leakscope" "[noise] with -r $rep: nothing from leakscope"
  done
  run "$out.noise.s" 0 "[noise]" -s
  lacks "$out.noise.s" "leakscope" "[noise] with -s: nothing from leakscope"
  # Catch2's reporters work behind Ignore: even without stacks (nothing to tell Catch2's blocks
  # from the test's) they leave nothing in a run, the first run of the process included.
  for rep in console junit xml compact; do
    LEAKSCOPE_OPTIONS=stacks=off run "$out.reporters.$rep" 0 "[reporters]" -r "$rep" -s
    lacks "$out.reporters.$rep" "leakscope" "[reporters] with -r $rep -s, stacks=off: nothing from leakscope"
  done
  # Passing assertions reach the reporters only when they ask (JUnit, XML) or -s does: a listener
  # alone does not make Catch2 v2 build a report of each one.
  run "$out.successes" 0 "[successes]"
  contains "$out.successes" "fixture: passing assertions reported: 0" "console reporter: passing assertions not reported"
  run "$out.successes.s" 0 "[successes]" -s
  contains "$out.successes.s" "fixture: passing assertions reported: 1" "-s: passing assertions reported"
  local wanting=xml   # the reporters that ask for them (v3's JUnit reporter does not)
  [ "$major" -ge 3 ] || wanting="junit xml"
  for rep in $wanting; do
    run "$out.successes.$rep" 0 "[successes]" -r "$rep"
    contains "$out.successes.$rep" "fixture: passing assertions reported: 1" "-r $rep: passing assertions reported"
  done
  # The listener: each leaking run named, with its sections; exit status 1 though Catch2 says 0.
  run "$out.listener" 1 "[listener]"
  contains "$out.listener" "All tests passed" "Catch2 itself saw no failure"
  same_set "leaking runs (listener)" "$(printf '%s\n' \
    "listener: leaks one block" \
    "listener: leaks in one section only / leaking section" \
    "listener: leaks three sections deep / level one / level two / level three" \
    "listener: leaks on an exception path" \
    "listener: expects two, leaves one")" "$(listener_runs "$out.listener")"
  listener_case "$out.listener" "listener: leaks one block" "1 block (4 bytes)" catch2_one_block
  listener_case "$out.listener" "listener: leaks in one section only\" section \"leaking section" "1 block (8 bytes)" catch2_section
  listener_case "$out.listener" "listener: leaks three sections deep\" section \"level one / level two / level three" \
    "1 block (2 bytes)" catch2_deep
  listener_case "$out.listener" "listener: leaks on an exception path" "1 block (16 bytes)" catch2_exception_path
  listener_case "$out.listener" "listener: expects two, leaves one" "1 block (4 bytes)" catch2_expect_two_but_one
  contains "$out.listener" "leakscope: expected 2 leftover blocks, found 1" "expects two, leaves one: says so"
  contains "$out.listener" "leakscope: 5 test runs left allocations behind" "summary: 5 leaking runs"
  local n
  n=$(grep -c '^leakscope: scope ' "$out.listener")
  [ "$n" -eq 5 ] && pass "5 reports in the output" || fail "$n reports in the output, expected 5"
  # With writers of the program's own (report=jsonl): each leaking run's report goes there too,
  # named after the test and its sections; the output stays the same.
  local jsonl=$work/catch2.jsonl rows
  rm -f "$jsonl"
  LEAKSCOPE_OPTIONS="report=jsonl=$jsonl" run "$out.listener.jsonl" 1 "[listener]"
  n=$(grep -c '^leakscope: scope ' "$out.listener.jsonl")
  [ "$n" -eq 5 ] && pass "report=jsonl: still 5 reports in the output" || fail "report=jsonl: $n reports in the output, expected 5"
  rows=$(json_runs "$jsonl") || fail "report=jsonl: $jsonl is not JSON Lines"
  same_set "report=jsonl: the leaking runs' reports" "$(listener_runs "$out.listener")" "$(json_scopes "$rows")"
  json_case "$rows" "listener: leaks one block" "$base:$(test_line 'TEST_CASE("listener: leaks one block"')" 1 catch2_one_block
  json_case "$rows" "listener: leaks three sections deep / level one / level two / level three" \
    "$base:$(test_line 'TEST_CASE("listener: leaks three sections deep"')" 1 catch2_deep
  # The guard: failures inside Catch2 — its totals, its exit status (2 failed assertions), JUnit.
  local xml=$work/catch2.junit.xml
  rm -f "$xml"
  run "$out.guard" "$(failed_status 2)" "[guard]" -r junit -o "$xml"
  same_set "failed test cases (JUnit)" "$(printf '%s\n' "guard: leaks one block" "guard: leaks in one section")" \
    "$(junit_failed "$xml")"
  if grep -q -E '<testsuite [^>]*failures="2"( skipped="0")? tests="4"' "$xml"; then
    pass "JUnit: 2 failures in 4 test runs"; else fail "JUnit: not 2 failures in 4 test runs: $(grep '<testsuite ' "$xml")"; fi
  contains "$xml" "<failure type=\"LEAKSCOPE_GUARD\">" "JUnit failure type names the guard"
  if grep -q -E "^at .*$base:$(line_of catch2_guard_line)\$" "$xml"; then pass "JUnit failure at the guard's line"; else
    fail "JUnit failure not at the guard's line $(line_of catch2_guard_line)"; fi
  site_has "$(cat "$xml")" catch2_guard_leak "JUnit failure message (guard: leaks one block)"
  site_has "$(cat "$xml")" catch2_guard_section "JUnit failure message (guard: leaks in one section)"
  contains "$xml" "scope \"guard: leaks in one section / leaking\"" "JUnit message names the section"
  lacks "$out.guard" "leakscope: test case" "guarded runs: the listener stays quiet"
  rm -f "$jsonl"
  LEAKSCOPE_OPTIONS="report=jsonl=$jsonl" run "$out.guard.jsonl" "$(failed_status 2)" "[guard]"
  rows=$(json_runs "$jsonl") || fail "report=jsonl: $jsonl is not JSON Lines"
  same_set "report=jsonl: the guarded runs' reports" "$(printf '%s\n' "guard: leaks one block" "guard: leaks in one section / leaking")" \
    "$(json_scopes "$rows")"
  json_case "$rows" "guard: leaks one block" "$base:$(line_of catch2_guard_line)" 1 catch2_guard_leak
  json_case "$rows" "guard: leaks in one section / leaking" \
    "$base:$(($(test_line 'TEST_CASE("guard: leaks in one section"') + 1))" 1 catch2_guard_section
  # Tests that fail for their own reasons: Catch2's status (3 failed assertions), no verdict.
  run "$out.bad" "$(failed_status 3)" "[bad]"
  lacks "$out.bad" "leakscope" "[bad]: no leak verdict on failed tests"
  run "$out.exit" 3 "[.exit]"
  lacks "$out.exit" "leakscope" "exit() inside a test: no report"
  # Further translation units: one includes the adapter without CATCH_CONFIG_MAIN, one includes
  # Catch2 first; the listener (registered once) and the guards judge their runs the same way.
  rm -f "$xml"
  run "$out.more" "$(failed_status 2)" "[more],[first]" -r junit -o "$xml"
  same_set "leaking runs in the other files (listener)" "$(printf '%s\n' "more: leaks in a second file" \
    "first: leaks, Catch2 included first")" "$(listener_runs "$out.more")"
  listener_case "$out.more" "more: leaks in a second file" "1 block (4 bytes)" catch2_more_listener
  listener_case "$out.more" "first: leaks, Catch2 included first" "1 block (4 bytes)" catch2_first_listener
  same_set "failed test cases in the other files (JUnit)" "$(printf '%s\n' "more: guarded, leaks in a second file" \
    "first: guarded, leaks, Catch2 included first")" "$(junit_failed "$xml")"
  site_has "$(cat "$xml")" catch2_more_guard "JUnit failure message (more: guarded)"
  site_has "$(cat "$xml")" catch2_first_guard "JUnit failure message (first: guarded)"
  for id in catch2_more_guard_line catch2_first_guard_line; do
    if grep -q -E "^at .*$(where "$id")\$" "$xml"; then pass "JUnit failure at the guard's line $(where "$id")"; else
      fail "JUnit failure not at the guard's line $(where "$id")"; fi
  done
  n=$(grep -c '^leakscope: test case ' "$out.more")
  [ "$n" -eq 2 ] && pass "2 listener reports in the other files" || fail "$n listener reports in the other files, expected 2"
  if [ -n "$EXTRA_OPTIONS" ]; then
    # test_stacks=rerun: every report above came from a child (the same sites, checked above).
    n=$(grep -c '^leakscope: stacks from this test run again alone' "$out.listener")
    [ "$n" -eq 5 ] && pass "5 listener reports with stacks from a run alone" || fail "$n listener reports from a run alone, expected 5"
    for f in "$out.listener" "$out.guard" "$out.more" "$xml"; do lacks "$f" "no stacks:" "every run alone matched ($(basename "$f"))"; done
    # GENERATE's values outlive a run: without stacks they are leftovers, which one child (for
    # all 9 runs of the test case, not one each) shows to be Catch2's.
    local runs=$work/catch2.runs
    rm -f "$runs"
    FIXTURE_RUNS=$runs run "$out.generators" 0 "generators stay clean"
    lacks "$out.generators" "leakscope" "generators: nothing from leakscope"
    n=$(grep -c '^generators stay clean child$' "$runs")
    [ "$n" -eq 9 ] && pass "generators: one child ran the 9 runs" || fail "generators: $n runs in children, expected 9 (one child)"
  fi
}

check_doctest() {
  local out=$work/doctest
  for rep in console junit xml; do
    run "$out.noise.$rep" 0 -ts=noise -r="$rep"
    lacks "$out.noise.$rep" "leakscope" "noise with -r=$rep: nothing from leakscope"
  done
  run "$out.noise.s" 0 -ts=noise -s
  lacks "$out.noise.s" "leakscope" "noise with -s: nothing from leakscope"
  # doctest's other reporters work behind Ignore: even without stacks they leave nothing. (Not
  # with -s: stringifying passing assertions grows doctest's own string-stream stack in the test.)
  for rep in console junit xml; do
    LEAKSCOPE_OPTIONS=stacks=off run "$out.reporters.$rep" 0 -ts=reporters -r="$rep"
    lacks "$out.reporters.$rep" "leakscope" "reporters with -r=$rep, stacks=off: nothing from leakscope"
  done
  run "$out.listener" 1 -ts=listener
  contains "$out.listener" "[doctest] Status: SUCCESS!" "doctest itself saw no failure"
  same_set "leaking runs (listener)" "$(printf '%s\n' \
    "listener: leaks one block" \
    "listener: leaks in one subcase only / leaking subcase" \
    "listener: leaks three subcases deep / level one / level two / level three" \
    "listener: leaks on an exception path" \
    "listener: expects two, leaves one")" "$(listener_runs "$out.listener")"
  listener_case "$out.listener" "listener: leaks one block" "1 block (4 bytes)" doctest_one_block
  listener_case "$out.listener" "listener: leaks in one subcase only\" subcase \"leaking subcase" "1 block (8 bytes)" doctest_subcase
  listener_case "$out.listener" "listener: leaks three subcases deep\" subcase \"level one / level two / level three" \
    "1 block (2 bytes)" doctest_deep
  listener_case "$out.listener" "listener: leaks on an exception path" "1 block (16 bytes)" doctest_exception_path
  listener_case "$out.listener" "listener: expects two, leaves one" "1 block (4 bytes)" doctest_expect_two_but_one
  contains "$out.listener" "leakscope: expected 2 leftover blocks, found 1" "expects two, leaves one: says so"
  contains "$out.listener" "leakscope: 5 test runs left allocations behind" "summary: 5 leaking runs"
  local n
  n=$(grep -c '^leakscope: scope ' "$out.listener")
  [ "$n" -eq 5 ] && pass "5 reports in the output" || fail "$n reports in the output, expected 5"
  local jsonl=$work/doctest.jsonl rows
  rm -f "$jsonl"
  LEAKSCOPE_OPTIONS="report=jsonl=$jsonl" run "$out.listener.jsonl" 1 -ts=listener
  n=$(grep -c '^leakscope: scope ' "$out.listener.jsonl")
  [ "$n" -eq 5 ] && pass "report=jsonl: still 5 reports in the output" || fail "report=jsonl: $n reports in the output, expected 5"
  rows=$(json_runs "$jsonl") || fail "report=jsonl: $jsonl is not JSON Lines"
  same_set "report=jsonl: the leaking runs' reports" "$(listener_runs "$out.listener")" "$(json_scopes "$rows")"
  json_case "$rows" "listener: leaks one block" "$base:$(test_line 'TEST_CASE("listener: leaks one block"')" 1 doctest_one_block
  json_case "$rows" "listener: leaks three subcases deep / level one / level two / level three" \
    "$base:$(test_line 'TEST_CASE("listener: leaks three subcases deep"')" 1 doctest_deep
  rm -f "$jsonl"
  LEAKSCOPE_OPTIONS="report=jsonl=$jsonl" run "$out.guard.jsonl" 1 -ts=guard
  rows=$(json_runs "$jsonl") || fail "report=jsonl: $jsonl is not JSON Lines"
  same_set "report=jsonl: the guarded runs' reports" "$(printf '%s\n' "guard: leaks one block" "guard: leaks in one subcase / leaking")" \
    "$(json_scopes "$rows")"
  json_case "$rows" "guard: leaks one block" "$base:$(line_of doctest_guard_line)" 1 doctest_guard_leak
  local xml=$work/doctest.junit.xml
  "$bin" -ts=guard -r=junit >"$xml" 2>"$out.guard.err"
  local rc=$?
  [ $rc -eq 1 ] && pass "exit status 1 (-ts=guard -r=junit)" || fail "exit status $rc (-ts=guard -r=junit), expected 1"
  same_set "failed test runs (JUnit)" "$(printf '%s\n' "guard: leaks one block" "guard: leaks in one subcase/leaking")" \
    "$(junit_failed "$xml")"
  contains "$xml" "failures=\"2\" tests=\"4\"" "JUnit: 2 failures in 4 test runs"
  if grep -q -E "$base:$(line_of doctest_guard_line):\$" "$xml"; then pass "JUnit failure at the guard's line"; else
    fail "JUnit failure not at the guard's line $(line_of doctest_guard_line)"; fi
  site_has "$(cat "$xml")" doctest_guard_leak "JUnit failure message (guard: leaks one block)"
  site_has "$(cat "$xml")" doctest_guard_subcase "JUnit failure message (guard: leaks in one subcase)"
  contains "$xml" "scope &quot;guard: leaks in one subcase / leaking&quot;" "JUnit message names the subcase"
  lacks "$out.guard.err" "leakscope: test case" "guarded runs: the listener stays quiet"
  run "$out.bad" 1 -ts=bad
  lacks "$out.bad" "leakscope" "bad: no leak verdict on failed tests"
  contains "$out.bad" "test cases: 3 | 0 passed | 3 failed" "bad: the 3 tests failed for their own reasons"
  run "$out.exit" 3 -ts=exit
  lacks "$out.exit" "leakscope" "exit() inside a test: no report"
}

check_benchmark() {
  local json=$work/benchmark.json
  "$bin" --benchmark_format=json >"$json" 2>"$work/benchmark.err"
  local rc=$?
  [ $rc -eq 0 ] && pass "exit status 0" || fail "exit status $rc"
  # field BENCHMARK KEY: the value of KEY in that benchmark's JSON object.
  field() {
    awk -v b="\"name\": \"$1\"," -v k="\"$2\": " '
      index($0, b) { on = 1 } on && index($0, k) { v = substr($0, index($0, k) + length(k)); sub(/,$/, "", v); print v; exit }' "$json"
  }
  expect_field() {
    local v
    v=$(field "$1" "$2")
    [ "$v" = "$3" ] && pass "$1: $2 = $3" || fail "$1: $2 = '$v', expected $3"
  }
  # Google Benchmark 1.7 allocates one ThreadManager inside the measured run: +1 allocation over
  # the run's min(16, iterations) iterations.
  expect_field churn/iterations:10 allocs_per_iter 2.1000000000000001e+00
  expect_field churn/iterations:10 net_heap_growth 0
  expect_field grows/iterations:10 allocs_per_iter 1.1000000000000001e+00
  expect_field grows/iterations:10 net_heap_growth 80
  expect_field grows/iterations:10 max_bytes_used 80
  expect_field peak/iterations:4 net_heap_growth 0
  local peak
  peak=$(field peak/iterations:4 max_bytes_used)
  if [ -n "$peak" ] && [ "$peak" -ge 1048576 ] && [ "$peak" -lt 1114112 ]; then
    pass "peak/iterations:4: max_bytes_used $peak (1 MiB held at once, within 64 KiB)"
  else fail "peak/iterations:4: max_bytes_used '$peak', expected 1 MiB to 1 MiB + 64 KiB"; fi
  # total_allocated_bytes: each run's bytes plus the same ThreadManager: exact differences.
  local churn_bytes grows_bytes peak_bytes
  churn_bytes=$(field churn/iterations:10 total_allocated_bytes)
  grows_bytes=$(field grows/iterations:10 total_allocated_bytes)
  peak_bytes=$(field peak/iterations:4 total_allocated_bytes)
  if [ -n "$churn_bytes" ] && [ -n "$grows_bytes" ] && [ -n "$peak_bytes" ] &&
     [ "$churn_bytes" -ge 400 ] && [ $((churn_bytes - grows_bytes)) -eq 320 ] &&
     [ $((peak_bytes - churn_bytes)) -eq $((4 * 1048576 - 400)) ]; then
    pass "total_allocated_bytes: churn $churn_bytes, grows $grows_bytes, peak $peak_bytes (exact differences)"
  else fail "total_allocated_bytes: churn '$churn_bytes', grows '$grows_bytes', peak '$peak_bytes'"; fi
}

case "$framework" in
  benchmark) check_benchmark ;;
  gtest) check_gtest ;;
  catch2 | catch2_v3)
    check_catch2
    EXTRA_OPTIONS=test_stacks=rerun
    check_catch2
    EXTRA_OPTIONS= ;;
  doctest) check_doctest ;;
  *) echo "check.sh: unknown framework '$framework'" >&2; exit 2 ;;
esac

if [ "$fails" -ne 0 ]; then
  echo "check.sh [$framework]: $fails check(s) failed" >&2
  exit 1
fi
echo "check.sh [$framework]: all checks passed"
