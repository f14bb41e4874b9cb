#!/usr/bin/env bash
# The correctness oracle for leakscope's fast DWARF-CFI unwinder: builds the corpus in
# tests/unwind/ in every variant of
#     {g++, clang++} x {-O0, -O2, -O2 -fomit-frame-pointer} x {PIE, non-PIE}
# (all -g -std=c++17 -pthread -Wall -Wextra -Werror; the dlopen'd library always -fPIC -shared)
# into build/unwind/<variant>/, runs each, and prints one line per variant. At every check site of
# the corpus, current_stack(Unwinder::fast) must give exactly what current_stack(Unwinder::libgcc)
# (_Unwind_Backtrace) gives; see tests/unwind/corpus.cpp for the chains. Each variant builds
# corpus (+ corpus_impl.cpp, leakscope's implementation) and the dlopen'd library twice,
# libunwind_a.so / libunwind_b.so (same code, different frame sizes: at -O2 a stale per-address
# rule cache after dlclose shows as a mismatch), plus libunwind_host.so (a copy of a, which
# unloads the others). A failing variant's log: build/unwind/<variant>/log.txt (both stacks of
# every failing check, symbolized); ORACLE_VERBOSE=1 build/unwind/<v>/corpus <the three .so>
# prints every stack.
#
# Two self-test variants check the oracle itself, with tests/unwind/reference_unwinder.cpp in place
# of leakscope's unwinders: selftest-exact (fast == libgcc by construction: must pass; if it fails,
# the corpus is at fault, not leakscope) and selftest-broken (a deliberately wrong fast: must fail).
#
# Usage (from anywhere): bash scripts/test-unwind.sh
# Environment:
#   LEAKSCOPE_UNWIND_JOBS=2        variants built and run at once (default 2)
#   LEAKSCOPE_UNWIND_VARIANTS="gcc-O2-pie clang-O0-nopie"   run only these
#   LEAKSCOPE_UNWIND_TIMEOUT=120   seconds one corpus run may take before it counts as a hang
#   LEAKSCOPE_UNWIND_IMPL=file.cpp build the matrix against this translation unit instead of
#                                  tests/unwind/corpus_impl.cpp (which is leakscope's
#                                  implementation), e.g. tests/unwind/reference_unwinder.cpp
# Exit status: 0 if every variant passed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SRC=$ROOT/tests/unwind
OUT=$ROOT/build/unwind

ALL_VARIANTS=()
for cc in gcc clang; do
  for opt in O0 O2 O2-omitfp; do
    for pie in pie nopie; do
      ALL_VARIANTS+=("$cc-$opt-$pie")
    done
  done
done
ALL_VARIANTS+=(selftest-exact selftest-broken)

# ---- one variant: build, run, write $dir/result ("PASS|FAIL<TAB>detail") -----------------------
run_variant() {
  local v=$1 dir=$OUT/$1 t0=$SECONDS
  local cc opt pie cxx impl=${LEAKSCOPE_UNWIND_IMPL:-$SRC/corpus_impl.cpp} expect_fail=0
  local -a optflags pieflags link_pie extra=()
  case "$v" in
    selftest-exact)  cc=gcc; opt=O2; pie=pie; impl=$SRC/reference_unwinder.cpp ;;
    selftest-broken) cc=gcc; opt=O2; pie=pie; impl=$SRC/reference_unwinder.cpp
                     extra=(-DORACLE_BREAK_FAST); expect_fail=1 ;;
    *) IFS=- read -r cc opt rest <<<"$v"
       case "$rest" in omitfp-*) opt="$opt-omitfp"; pie=${rest#omitfp-} ;; *) pie=$rest ;; esac ;;
  esac
  case "$cc" in gcc) cxx=g++ ;; clang) cxx=clang++ ;; *) echo "bad variant $v" >&2; return 2 ;; esac
  case "$opt" in
    O0) optflags=(-O0) ;;
    O2) optflags=(-O2) ;;
    O2-omitfp) optflags=(-O2 -fomit-frame-pointer) ;;
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
  local -a common=(-g -std=c++17 -pthread -Wall -Wextra -Werror -I "$ROOT/include" "${optflags[@]}")
  {
    echo "variant $v: $cxx ${optflags[*]} ${pieflags[*]} ${link_pie[*]} ${extra[*]:-}"
    "$cxx" --version | head -n 1
  } >"$log"

  local rc=0
  {
    # (each step echoed into the log; && so that the first error stops the build)
    local lib=(-fPIC -shared -Wl,-z,defs)
    echo "+ $cxx ${common[*]} ${pieflags[*]} -c corpus.cpp" &&
      "$cxx" "${common[@]}" "${pieflags[@]}" -c "$SRC/corpus.cpp" -o "$dir/corpus.o" &&
      echo "+ $cxx ${common[*]} ${pieflags[*]} ${extra[*]:-} -c ${impl#"$ROOT"/}" &&
      "$cxx" "${common[@]}" "${pieflags[@]}" "${extra[@]}" -c "$impl" -o "$dir/impl.o" &&
      # corpus.o first: its static initializer runs before leakscope's (see corpus.cpp).
      echo "+ $cxx ${common[*]} ${link_pie[*]} corpus.o impl.o -o corpus -ldl" &&
      "$cxx" "${common[@]}" "${link_pie[@]}" "$dir/corpus.o" "$dir/impl.o" -o "$dir/corpus" -ldl &&
      echo "+ $cxx ${common[*]} ${lib[*]} -DLIB_VARIANT=0|1 corpus_lib.cpp -o libunwind_a|b.so" &&
      "$cxx" "${common[@]}" "${lib[@]}" -DLIB_VARIANT=0 "$SRC/corpus_lib.cpp" -o "$dir/libunwind_a.so" &&
      "$cxx" "${common[@]}" "${lib[@]}" -DLIB_VARIANT=1 "$SRC/corpus_lib.cpp" -o "$dir/libunwind_b.so" &&
      cp "$dir/libunwind_a.so" "$dir/libunwind_host.so"
  } >>"$log" 2>&1 || rc=$?
  if [ $rc -ne 0 ]; then
    printf 'FAIL\tbuild failed (%ss)\n' "$((SECONDS - t0))" >"$dir/result"
    return 0
  fi
  # The reload tests need libraries that really unload: no STB_GNU_UNIQUE symbols.
  if readelf --dyn-syms -W "$dir/libunwind_a.so" "$dir/libunwind_b.so" | grep -q UNIQUE; then
    readelf --dyn-syms -W "$dir/libunwind_a.so" | grep UNIQUE >>"$log"
    printf 'FAIL\tlibrary has STB_GNU_UNIQUE symbols: it would never unload\n' >"$dir/result"
    return 0
  fi
  # For the record: FDEs describing the CFA with a DWARF expression (the fast unwinder's
  # fallback case; the PLT's and oracle_drap_call's in every variant, GCC's DRAP functions).
  echo "DW_CFA_def_cfa_expression in corpus: $(readelf --debug-dump=frames "$dir/corpus" 2>/dev/null |
    grep -c 'DW_CFA_def_cfa_expression' || true)" >>"$log"

  local -a run=("$dir/corpus" "$dir/libunwind_a.so" "$dir/libunwind_b.so" "$dir/libunwind_host.so")
  echo "+ ${run[*]}" >>"$log"
  rc=0
  timeout -k 5 "${LEAKSCOPE_UNWIND_TIMEOUT:-120}" "${run[@]}" >>"$log" 2>&1 || rc=$?
  echo "exit status $rc" >>"$log"
  local checks fails summary
  summary=$(grep -E '^(PASSED|FAILED): ' "$log" | tail -n 1 || true)
  checks=$(sed -n 's/^\(PASSED\|FAILED\): \([0-9]*\) checks.*/\2/p' <<<"$summary")
  fails=$(grep -c '^FAIL ' "$log" || true)
  local secs=$((SECONDS - t0)) what
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
    what="HUNG: killed after ${LEAKSCOPE_UNWIND_TIMEOUT:-120}s"
  elif [ $rc -gt 128 ]; then
    what="CRASHED: signal $((rc - 128))"
  elif [ $rc -ne 0 ]; then
    what="exit $rc, $fails failing checks of ${checks:-?}"
  else
    what="${checks:-?} checks agree"
  fi
  what="$what (${secs}s)"
  if [ "$expect_fail" = 1 ]; then
    # The broken unwinder must be caught by frame comparisons, without crashing.
    if [ $rc -eq 1 ] && grep -q '^FAIL .*differ' "$log"; then
      printf 'PASS\toracle caught the broken unwinder (%s)\n' "$what" >"$dir/result"
    else
      printf 'FAIL\toracle did NOT catch the broken unwinder (%s)\n' "$what" >"$dir/result"
    fi
  elif [ $rc -eq 0 ] && [ -n "$checks" ]; then
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
requested=${LEAKSCOPE_UNWIND_VARIANTS:-${ALL_VARIANTS[*]}}
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
for tool in g++ clang++ readelf timeout; do
  command -v "$tool" >/dev/null || { echo "test-unwind.sh: $tool not found" >&2; exit 2; }
done

jobs=${LEAKSCOPE_UNWIND_JOBS:-2}
start=$SECONDS
echo "unwinder oracle: ${#variants[@]} variants, $jobs at a time, in build/unwind/"
mkdir -p "$OUT"
printf '%s\n' "${variants[@]}" | xargs -P "$jobs" -n 1 bash "$ROOT/scripts/test-unwind.sh" --variant

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
  echo "---- $v: build/unwind/$v/log.txt (failures and the last lines) ----"
  if [ -f "$OUT/$v/log.txt" ]; then
    if grep -q '^exit status' "$OUT/$v/log.txt"; then
      # each failing check: its FAIL line and the two stacks under it
      awk '/^FAIL /{p=1; print; next} p && /^   /{print; next} {p=0}' "$OUT/$v/log.txt" |
        head -n 150
      echo "   ..."
      tail -n 4 "$OUT/$v/log.txt"
    else
      grep -m 1 -B 2 -A 12 -E 'error|cannot' "$OUT/$v/log.txt" || tail -n 15 "$OUT/$v/log.txt"
    fi
  fi
done
echo
echo "unwinder oracle: $pass passed, $fail failed ($((SECONDS - start))s)"
[ $fail -eq 0 ]
