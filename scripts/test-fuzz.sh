#!/usr/bin/env bash
# Fuzzes leakscope's parsers of untrusted input with libFuzzer (Debian's clang, libclang-rt-14-dev):
#   options       leakscope::configure() — the LEAKSCOPE_OPTIONS parser (report= writers built, never
#                 written)
#   suppressions  leakscope::suppress() rules, then matched against a real scope's leftovers
#   symbolize     the ELF/DWARF reader (detail::symbolize_file) on fuzzed files, seeded with small
#                 shared objects built here: {g++, clang++} x {DWARF 4 -O0, DWARF 5 -O2}, and -gz
# Each harness (tests/fuzz/fuzz_<name>.cpp) is built with clang++ -g -O1
# -fsanitize=fuzzer,address,undefined; it first replays tests/fuzz/regressions/<name>/ (inputs
# that once failed: each must pass now), then fuzzes for LEAKSCOPE_FUZZ_SECONDS from the seed
# corpus tests/fuzz/corpus/<name>/. Any crash, sanitizer report, broken property (the harnesses
# check more than "no crash": see their comments), leak or timeout fails the script; the input is
# kept in build/fuzz/artifacts/<name>/. Prints executions per second and total executions.
#
# libFuzzer's leak detection stays on: the harnesses free what they allocate (the blocks a scope
# leaks on purpose included), and leakscope's own long-lived state (rules, writer list,
# symbolizer) hangs off globals, where LeakSanitizer sees it as reachable.
#
# The harnesses run in scratch directories (build/fuzz/scratch/<name>): the options harness maps
# '/' to '_' in its input, so a fuzzed suppressions= or report= path can only name a file there;
# no report is ever written.
#
# Environment:
#   LEAKSCOPE_FUZZ_SECONDS=60        fuzzing time per harness (0: build and replay only)
#   LEAKSCOPE_FUZZ_HARNESSES="..."   which harnesses (default: options suppressions symbolize)
#   LEAKSCOPE_FUZZ_TIMEOUT=10        seconds one input may take before it counts as a hang
#   LEAKSCOPE_FUZZ_ARGS="..."        extra libFuzzer flags (e.g. -seed=1 -only_ascii=1)
#   CXX_FUZZ=clang++                 the compiler
#   LEAKSCOPE_FUZZ_CXXFLAGS="..."    extra compiler flags, placed first (-I/some/dir tries a
#                                    candidate header before include/leakscope.hpp)
# A failing input replays with: build/fuzz/fuzz_<name> -close_fd_mask=2 <file>
# shellcheck disable=SC2054,SC2012  # commas belong to compiler flags; the listed names are ours
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT="$ROOT/build/fuzz"
SECONDS_EACH=${LEAKSCOPE_FUZZ_SECONDS:-60}
TIMEOUT=${LEAKSCOPE_FUZZ_TIMEOUT:-10}
read -r -a HARNESSES <<<"${LEAKSCOPE_FUZZ_HARNESSES:-options suppressions symbolize}"
read -r -a EXTRA_ARGS <<<"${LEAKSCOPE_FUZZ_ARGS:-}"
read -r -a EXTRA_CXXFLAGS <<<"${LEAKSCOPE_FUZZ_CXXFLAGS:-}"
CXX_FUZZ=${CXX_FUZZ:-clang++}
CXXFLAGS_FUZZ=("${EXTRA_CXXFLAGS[@]}" -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
               -fno-omit-frame-pointer -Wall -Wextra -Wpedantic -Werror -I"$ROOT/include")
mkdir -p "$OUT"

# --- the toolchain: clang's libFuzzer runtime ------------------------------------------------------
probe="$OUT/probe"
mkdir -p "$probe"
printf '%s\n' '#include <cstddef>' '#include <cstdint>' \
  'extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t*, std::size_t) { return 0; }' >"$probe/probe.cpp"
if ! "$CXX_FUZZ" -fsanitize=fuzzer,address "$probe/probe.cpp" -o "$probe/probe" 2>"$probe/probe.log"; then
  cat "$probe/probe.log" >&2
  echo "test-fuzz.sh: $CXX_FUZZ cannot link -fsanitize=fuzzer; on Debian 12 libFuzzer is in" \
       "libclang-rt-14-dev (scripts/setup.sh installs it)" >&2
  exit 1
fi
"$CXX_FUZZ" --version | head -n 1

# --- build the harnesses (two at a time) -----------------------------------------------------------
# A harness is rebuilt when it, the shared harness code or the header is newer than its binary,
# or the compiler command changed.
stamp="$OUT/.flags"
flags_now="$CXX_FUZZ ${CXXFLAGS_FUZZ[*]}"
if [ "$(cat "$stamp" 2>/dev/null)" != "$flags_now" ]; then
  rm -f "$OUT"/fuzz_*
  printf '%s\n' "$flags_now" >"$stamp"
fi
build_one() {
  local name=$1 bin="$OUT/fuzz_$1" src="$ROOT/tests/fuzz/fuzz_$1.cpp"
  if [ -x "$bin" ] && [ "$bin" -nt "$src" ] && [ "$bin" -nt "$ROOT/tests/fuzz/fuzz_common.hpp" ] &&
     [ "$bin" -nt "$ROOT/include/leakscope.hpp" ]; then
    return 0
  fi
  echo "-- building fuzz_$name"
  "$CXX_FUZZ" "${CXXFLAGS_FUZZ[@]}" "$src" -o "$bin.tmp" -pthread -ldl && mv "$bin.tmp" "$bin"
}
pids=()
for name in "${HARNESSES[@]}"; do
  [ -f "$ROOT/tests/fuzz/fuzz_$name.cpp" ] || { echo "test-fuzz.sh: no harness tests/fuzz/fuzz_$name.cpp" >&2; exit 2; }
  if [ ${#pids[@]} -ge 2 ]; then
    wait "${pids[0]}" || exit 1
    pids=("${pids[@]:1}")
  fi
  build_one "$name" &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || exit 1; done

# --- seeds for the ELF/DWARF reader: real small objects, built here (not checked in) --------------
seed_dir="$OUT/seeds/symbolize"
build_seeds() {
  local src="$ROOT/tests/fuzz/seeds/symbolize_seed.cpp"
  mkdir -p "$seed_dir"
  # No libc and no page padding keep them a few KB: small inputs, many executions per second.
  local small=(-shared -fPIC -nostdlib -Wl,--build-id=none -Wl,-z,noseparate-code -Wl,-z,max-page-size=16
               -Wl,-z,norelro)
  local cxx flags out
  for cxx in g++ clang++; do
    for flags in "-gdwarf-4 -O0" "-gdwarf-5 -O2" "-gdwarf-4 -O2" "-gdwarf-5 -O0"; do
      out="$seed_dir/${cxx%++}pp$(echo "$flags" | tr -d ' -').so"
      [ "$out" -nt "$src" ] && continue
      # shellcheck disable=SC2086  # $flags is two words
      "$cxx" -g $flags "${small[@]}" "$src" -o "$out"
    done
  done
  # compressed debug sections: the reader names from the symbol table only
  [ "$seed_dir/gpp_gz.so" -nt "$src" ] || g++ -g -gz -O2 "${small[@]}" "$src" -o "$seed_dir/gpp_gz.so"
  # stripped: symbols only
  [ "$seed_dir/gpp_stripped.so" -nt "$src" ] ||
    { g++ -O2 "${small[@]}" "$src" -o "$seed_dir/gpp_stripped.so" && strip --strip-debug "$seed_dir/gpp_stripped.so"; }
}
if [[ " ${HARNESSES[*]} " == *" symbolize "* ]]; then
  build_seeds
  echo "-- symbolize seeds: $(ls "$seed_dir" | wc -l) objects, $(du -sk "$seed_dir" | cut -f1) KB in $seed_dir"
fi

# --- run -------------------------------------------------------------------------------------------
# -close_fd_mask=2: leakscope's diagnostics (one per malformed input) would flood the log; libFuzzer
# and the sanitizers keep reporting on a duplicate of stderr, and the harnesses check the
# diagnostics themselves.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
summary=()
status=0
for name in "${HARNESSES[@]}"; do
  bin="$OUT/fuzz_$name"
  scratch="$OUT/scratch/$name"
  artifacts="$OUT/artifacts/$name"
  work="$OUT/corpus/$name"   # what this run adds to the seeds (kept between local runs)
  log="$OUT/$name.log"
  rm -rf "$scratch" "$artifacts"
  mkdir -p "$scratch" "$artifacts" "$work"
  flags=(-close_fd_mask=2 -timeout="$TIMEOUT" -rss_limit_mb=2048 -artifact_prefix="$artifacts/"
         -print_final_stats=1 "${EXTRA_ARGS[@]}")
  echo
  echo "== fuzz_$name"

  regressions=("$ROOT/tests/fuzz/regressions/$name"/*)
  if [ -e "${regressions[0]}" ]; then
    echo "-- replaying ${#regressions[@]} regression input(s) from tests/fuzz/regressions/$name"
    if ! LEAKSCOPE_FUZZ_SCRATCH="$scratch" "$bin" "${flags[@]}" "${regressions[@]}" >"$log.regressions" 2>&1; then
      grep -E '^(fuzz:|==[0-9]+==ERROR|SUMMARY|Running:)' "$log.regressions" | tail -n 20 >&2 || true
      echo "!! fuzz_$name: a regression input fails (full output: $log.regressions)" >&2
      summary+=("fuzz_$name: FAILED on a regression input")
      status=1
      continue
    fi
  fi
  [ "$SECONDS_EACH" -gt 0 ] || { summary+=("fuzz_$name: regressions replayed, not fuzzed"); continue; }

  dict="$ROOT/tests/fuzz/$name.dict"
  [ -f "$dict" ] && flags+=(-dict="$dict")
  corpora=("$work" "$ROOT/tests/fuzz/corpus/$name")
  [ "$name" = symbolize ] && corpora+=("$seed_dir")
  echo "-- fuzzing for ${SECONDS_EACH}s (log: $log)"
  rc=0
  # The outer timeout only guards against libFuzzer itself wedging.
  LEAKSCOPE_FUZZ_SCRATCH="$scratch" timeout --signal=KILL $((SECONDS_EACH + TIMEOUT + 120)) \
    "$bin" "${flags[@]}" -max_total_time="$SECONDS_EACH" "${corpora[@]}" >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -n 1)
  cov=$(grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE) +cov:' "$log" | tail -n 1 | sed -n 's/.*cov: *\([0-9]*\).*/\1/p')
  found=$(ls "$artifacts" 2>/dev/null | head -n 5 | tr '\n' ' ')
  if [ "$rc" -ne 0 ] || [ -n "$found" ]; then
    grep -E '^(fuzz:|==[0-9]+==ERROR|SUMMARY|    #[0-9] )' "$log" | head -n 30 >&2 || true
    echo "!! fuzz_$name failed (exit $rc); input(s): ${found:-none} in $artifacts; log: $log" >&2
    echo "!! replay: LEAKSCOPE_FUZZ_SCRATCH=$scratch $bin -close_fd_mask=2 $artifacts/<file>" >&2
    summary+=("fuzz_$name: FAILED (exit $rc) after ${execs:-?} executions")
    status=1
    continue
  fi
  summary+=("$(printf 'fuzz_%-13s %9s executions in %3ss, %6s exec/s, coverage %5s, peak RSS %4s MB' \
    "$name" "${execs:-?}" "$SECONDS_EACH" "${rate:-?}" "${cov:-?}" "${rss:-?}")")
done

echo
echo "fuzzing summary:"
printf '  %s\n' "${summary[@]}"
exit $status
