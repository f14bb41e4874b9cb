#!/usr/bin/env bash
# The correctness oracle for leakscope's in-process symbolizer: builds the corpus in
# tests/symbolize/ in every variant of
#     {g++, clang++} x {-O0 -g, -O2 -g} x {PIE, non-PIE}
# plus {g++, clang++} -O2 -gdwarf-4 (PIE; DWARF 5 is both compilers' default), g++ -O2 without -g,
# g++ -O2 -g then `objcopy --strip-debug`, and g++ -O2 -g then `strip` (all -std=c++17 -pthread
# -Wall -Wextra -Werror; the dlopen'd library always -fPIC -shared, built and stripped like the
# executable) into build/symbolize/<variant>/, runs each, and prints one line per variant. Every
# return address of every capture site is symbolized with leakscope::symbolize() and compared,
# frame by frame (function, file, line; module and address too), with what
# `addr2line -i -f -C` answers for the call instruction (address - 1); see
# tests/symbolize/corpus.cpp for the sites and the rules. Where binutils' addr2line is
# contradicted by llvm-addr2line (binutils 2.40 loses clang's DWARF 5 inlined frames, and names an
# inlined innermost frame without DW_AT_linkage_name after the function it was inlined into), an
# answer with llvm-addr2line's correction passes, printed and counted in the result line. Each variant builds corpus
# (+ corpus_impl.cpp, leakscope's implementation) and the dlopen'd library twice, libsym_a.so and
# libsym_b.so (the same code with other names and lines: after a's dlclose, b loaded at the same
# address must not get a's answers). A failing variant's log: build/symbolize/<variant>/log.txt
# (both answers of every mismatching address); ORACLE_VERBOSE=1 build/symbolize/<v>/corpus
# --mode=<m> <the two .so> prints every frame.
#
# Two self-test variants check the oracle itself, with tests/symbolize/reference_symbolizer.cpp
# (it asks addr2line) in place of leakscope's symbolizer: selftest-exact (== addr2line by
# construction: must pass; if it fails, the corpus or the harness is at fault, not leakscope) and
# selftest-broken (a deliberately wrong symbolizer: must fail).
#
# Usage (from anywhere): bash scripts/test-symbolize.sh
# Environment:
#   LEAKSCOPE_SYMBOLIZE_JOBS=2         variants built and run at once (default 2)
#   LEAKSCOPE_SYMBOLIZE_VARIANTS="gcc-O2-pie clang-O0-nopie"   run only these
#   LEAKSCOPE_SYMBOLIZE_TIMEOUT=120    seconds one corpus run may take before it counts as a hang
#   LEAKSCOPE_SYMBOLIZE_TIEBREAK=0     binutils' addr2line alone, even where llvm-addr2line shows
#                                      it wrong (default 1: llvm-addr2line breaks those ties)
#   LEAKSCOPE_SYMBOLIZE_IMPL=file.cpp  build the matrix against this translation unit instead of
#                                      tests/symbolize/corpus_impl.cpp (leakscope's
#                                      implementation), e.g. tests/symbolize/reference_symbolizer.cpp
# Exit status: 0 if every variant passed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SRC=$ROOT/tests/symbolize
OUT=$ROOT/build/symbolize

ALL_VARIANTS=()
for cc in gcc clang; do
  for opt in O0 O2; do
    for pie in pie nopie; do
      ALL_VARIANTS+=("$cc-$opt-$pie")
    done
  done
done
ALL_VARIANTS+=(gcc-O2-dwarf4-pie clang-O2-dwarf4-pie gcc-O2-nodebug-pie gcc-O2-stripdebug-pie
  gcc-O2-stripall-pie selftest-exact selftest-broken)

# ---- one variant: build, run, write $dir/result ("PASS|FAIL<TAB>detail") -----------------------
run_variant() {
  local v=$1 dir=$OUT/$1 t0=$SECONDS
  local cc opt kind=debug pie cxx impl=${LEAKSCOPE_SYMBOLIZE_IMPL:-$SRC/corpus_impl.cpp}
  local expect_fail=0 mode=debug
  local -a optflags gflags=(-g) pieflags link_pie extra=() parts
  case "$v" in
    selftest-exact)  cc=gcc; opt=O2; pie=pie; impl=$SRC/reference_symbolizer.cpp ;;
    selftest-broken) cc=gcc; opt=O2; pie=pie; impl=$SRC/reference_symbolizer.cpp
                     extra=(-DORACLE_BREAK_SYMBOLIZE); expect_fail=1 ;;
    *) IFS=- read -r -a parts <<<"$v"
       cc=${parts[0]}; opt=${parts[1]}
       if [ ${#parts[@]} -eq 4 ]; then kind=${parts[2]}; pie=${parts[3]}; else pie=${parts[2]}; fi ;;
  esac
  case "$cc" in gcc) cxx=g++ ;; clang) cxx=clang++ ;; *) echo "bad variant $v" >&2; return 2 ;; esac
  case "$opt" in
    O0) optflags=(-O0) ;;
    O2) optflags=(-O2) ;;
    *) echo "bad variant $v" >&2; return 2 ;;
  esac
  case "$kind" in
    debug) ;;
    dwarf4) gflags=(-gdwarf-4) ;;
    nodebug) gflags=(); mode=nodebug ;;
    stripdebug) mode=nodebug ;;
    stripall) mode=stripped ;;
    *) echo "bad variant $v" >&2; return 2 ;;
  esac
  case "$pie" in
    pie) pieflags=(-fPIE) ; link_pie=(-pie) ;;
    nopie) pieflags=(-fno-pie) ; link_pie=(-no-pie) ;;
    *) echo "bad variant $v" >&2; return 2 ;;
  esac
  rm -rf "$dir"
  mkdir -p "$dir"
  local log=$dir/log.txt
  local -a common=("${gflags[@]}" -std=c++17 -pthread -Wall -Wextra -Werror -I "$ROOT/include"
    "${optflags[@]}")
  {
    echo "variant $v: $cxx ${gflags[*]:-} ${optflags[*]} ${pieflags[*]} ${link_pie[*]} ${extra[*]:-} (mode $mode)"
    "$cxx" --version | head -n 1
    addr2line --version | head -n 1
  } >"$log"

  local rc=0
  local -a bins=("$dir/corpus" "$dir/libsym_a.so" "$dir/libsym_b.so")
  {
    # (each step echoed into the log; && so that the first error stops the build)
    local lib=(-fPIC -shared -Wl,-z,defs)
    echo "+ $cxx ${common[*]} ${pieflags[*]} -c corpus.cpp" &&
      "$cxx" "${common[@]}" "${pieflags[@]}" -c "$SRC/corpus.cpp" -o "$dir/corpus.o" &&
      echo "+ $cxx ${common[*]} ${pieflags[*]} ${extra[*]:-} -c ${impl#"$ROOT"/}" &&
      "$cxx" "${common[@]}" "${pieflags[@]}" "${extra[@]}" -c "$impl" -o "$dir/impl.o" &&
      echo "+ $cxx ${common[*]} ${link_pie[*]} corpus.o impl.o -o corpus -ldl" &&
      "$cxx" "${common[@]}" "${link_pie[@]}" "$dir/corpus.o" "$dir/impl.o" -o "$dir/corpus" -ldl &&
      echo "+ $cxx ${common[*]} ${lib[*]} -DLIB_VARIANT=0|1 corpus_lib.cpp -o libsym_a|b.so" &&
      "$cxx" "${common[@]}" "${lib[@]}" -DLIB_VARIANT=0 "$SRC/corpus_lib.cpp" -o "$dir/libsym_a.so" &&
      "$cxx" "${common[@]}" "${lib[@]}" -DLIB_VARIANT=1 "$SRC/corpus_lib.cpp" -o "$dir/libsym_b.so" &&
      case "$kind" in
        stripdebug) echo "+ objcopy --strip-debug corpus libsym_a.so libsym_b.so" &&
                    objcopy --strip-debug "${bins[0]}" && objcopy --strip-debug "${bins[1]}" &&
                    objcopy --strip-debug "${bins[2]}" ;;
        stripall)   echo "+ strip corpus libsym_a.so libsym_b.so" && strip "${bins[@]}" ;;
        *) true ;;
      esac
  } >>"$log" 2>&1 || rc=$?
  if [ $rc -ne 0 ]; then
    printf 'FAIL\tbuild failed (%ss)\n' "$((SECONDS - t0))" >"$dir/result"
    return 0
  fi
  # The reload test needs a library that really unloads: no STB_GNU_UNIQUE symbols.
  if readelf --dyn-syms -W "$dir/libsym_a.so" | grep -q UNIQUE; then
    readelf --dyn-syms -W "$dir/libsym_a.so" | grep UNIQUE >>"$log"
    printf 'FAIL\tlibrary has STB_GNU_UNIQUE symbols: it would never unload\n' >"$dir/result"
    return 0
  fi
  # The binaries are what the variant says they are (a build or strip step gone wrong would
  # otherwise test something else and pass).
  local b sections why=""
  for b in "${bins[@]}"; do
    sections=$(readelf -S -W "$b")
    case "$mode" in
      debug)    grep -q ' \.debug_line ' <<<"$sections" || why="$why ${b##*/}: no .debug_line;" ;;
      nodebug)  ! grep -q ' \.debug_' <<<"$sections" || why="$why ${b##*/}: has .debug_*;"
                grep -q ' \.symtab ' <<<"$sections" || why="$why ${b##*/}: no .symtab;" ;;
      stripped) ! grep -qE ' \.(debug_[a-z]*|symtab) ' <<<"$sections" ||
                  why="$why ${b##*/}: has .symtab or .debug_*;" ;;
    esac
  done
  if [ "$kind" = dwarf4 ] || [ "$kind" = debug ]; then
    local want=5
    [ "$kind" = dwarf4 ] && want=4
    local got
    got=$(readelf --debug-dump=info --dwarf-depth=1 "$dir/corpus.o" 2>/dev/null |
      awk '/^ *Version:/ && v == "" { v = $2 } END { print v }')
    [ "$got" = "$want" ] || why="$why corpus.o is DWARF '$got', not $want;"
  fi
  if [ -n "$why" ]; then
    echo "binaries not as the variant says:$why" >>"$log"
    printf 'FAIL\tbinaries not as the variant says:%s\n' "$why" >"$dir/result"
    return 0
  fi

  local -a run=("$dir/corpus" "--mode=$mode")
  [ -n "${LLVM_ADDR2LINE:-}" ] && [ "${LEAKSCOPE_SYMBOLIZE_TIEBREAK:-1}" != 0 ] &&
    run+=("--tiebreak=$LLVM_ADDR2LINE")
  run+=("$dir/libsym_a.so" "$dir/libsym_b.so")
  echo "+ ${run[*]}" >>"$log"
  rc=0
  timeout -k 5 "${LEAKSCOPE_SYMBOLIZE_TIMEOUT:-120}" "${run[@]}" >>"$log" 2>&1 || rc=$?
  echo "exit status $rc" >>"$log"
  local summary sites addrs frames llvm fails
  summary=$(grep -E '^(PASSED|FAILED): ' "$log" | tail -n 1 || true)
  read -r sites addrs frames llvm < <(sed -n 's/^[A-Z]*: \([0-9]*\) sites, \([0-9]*\) addresses, \([0-9]*\) source frames compared, [0-9]* failed, \([0-9]*\) agree only.*/\1 \2 \3 \4/p' <<<"$summary") || true
  fails=$(grep -c '^FAIL ' "$log" || true)
  local secs=$((SECONDS - t0)) what
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
    what="HUNG: killed after ${LEAKSCOPE_SYMBOLIZE_TIMEOUT:-120}s"
  elif [ $rc -gt 128 ]; then
    what="CRASHED: signal $((rc - 128))"
  elif [ $rc -ne 0 ]; then
    what="exit $rc, $fails failing checks (${sites:-?} sites, ${addrs:-?} addresses)"
  else
    what="${sites:-?} sites, ${addrs:-?} addresses, ${frames:-?} source frames agree"
    [ "${llvm:-0}" != 0 ] && what="$what ($llvm addresses only with llvm-addr2line)"
  fi
  what="$what [$mode] (${secs}s)"
  if [ "$expect_fail" = 1 ]; then
    # The broken symbolizer must be caught by frame comparisons, without crashing.
    if [ $rc -eq 1 ] && grep -q '^FAIL .*symbolize and addr2line differ' "$log"; then
      printf 'PASS\toracle caught the broken symbolizer (%s)\n' "$what" >"$dir/result"
    else
      printf 'FAIL\toracle did NOT catch the broken symbolizer (%s)\n' "$what" >"$dir/result"
    fi
  elif [ $rc -eq 0 ] && [ -n "${sites:-}" ]; then
    printf 'PASS\t%s\n' "$what" >"$dir/result"
  else
    printf 'FAIL\t%s\n' "$what" >"$dir/result"
  fi
  return 0
}

if [ "${1:-}" = "--variant" ]; then
  run_variant "$2"
  exit 0
fi

# ---- driver -----------------------------------------------------------------------------------
cd "$ROOT"
requested=${LEAKSCOPE_SYMBOLIZE_VARIANTS:-${ALL_VARIANTS[*]}}
variants=()
for v in ${requested//,/ }; do
  ok=0
  for a in "${ALL_VARIANTS[@]}"; do [ "$v" = "$a" ] && ok=1; done
  if [ $ok -eq 0 ]; then
    echo "unknown variant '$v' (known: ${ALL_VARIANTS[*]})" >&2
    exit 2
  fi
  variants+=("$v")
done
for tool in g++ clang++ addr2line readelf objcopy strip timeout; do
  command -v "$tool" >/dev/null || { echo "test-symbolize.sh: $tool not found" >&2; exit 2; }
done
# The tie-breaker where binutils' addr2line is wrong (see corpus.cpp): LLVM's addr2line, which
# comes with clang (optional: without it, such addresses fail).
LLVM_ADDR2LINE=$(command -v llvm-addr2line || ls /usr/bin/llvm-addr2line-* 2>/dev/null | head -n 1 || true)
export LLVM_ADDR2LINE

jobs=${LEAKSCOPE_SYMBOLIZE_JOBS:-2}
start=$SECONDS
echo "symbolizer oracle: ${#variants[@]} variants, $jobs at a time, in build/symbolize/" \
  "(tie-breaker: ${LLVM_ADDR2LINE:-none})"
mkdir -p "$OUT"
printf '%s\n' "${variants[@]}" | xargs -P "$jobs" -n 1 bash "$ROOT/scripts/test-symbolize.sh" --variant

pass=0
fail=0
failed=()
for v in "${variants[@]}"; do
  res=$OUT/$v/result
  if [ -f "$res" ]; then
    IFS=$'\t' read -r status detail <"$res"
  else
    status=FAIL detail="no result (the variant's script died)"
  fi
  printf '%-4s  %-22s %s\n' "$status" "$v" "$detail"
  if [ "$status" = PASS ]; then
    pass=$((pass + 1))
  else
    fail=$((fail + 1))
    failed+=("$v")
  fi
done

for v in "${failed[@]}"; do
  echo
  echo "---- $v: build/symbolize/$v/log.txt (failures and the last lines) ----"
  if [ -f "$OUT/$v/log.txt" ]; then
    if grep -q '^exit status' "$OUT/$v/log.txt"; then
      # each failing site: its FAIL line and the frames under it
      awk '/^FAIL /{p=1; print; next} p && /^   /{print; next} {p=0}' "$OUT/$v/log.txt" |
        cut -c 1-300 | head -n 150
      echo "   ..."
      tail -n 4 "$OUT/$v/log.txt"
    else
      grep -m 1 -B 2 -A 12 -E 'error|cannot|not as the variant' "$OUT/$v/log.txt" ||
        tail -n 15 "$OUT/$v/log.txt"
    fi
  fi
done
echo
echo "symbolizer oracle: $pass passed, $fail failed ($((SECONDS - start))s)"
[ $fail -eq 0 ]
