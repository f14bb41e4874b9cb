# Sourced by bench/heaptrack_compare.sh and bench/scope_compare.sh (ROOT set by them).
# build_churn_pair DIR: builds bench/tools/churn.cpp twice into DIR, g++ -O2 -g (CXX to change):
#   DIR/churn_plain       without leakscope at all
#   DIR/churn_leakscope   with leakscope's hook (-DCHURN_LEAKSCOPE; LEAKSCOPE_OPTIONS picks the mode)
# each rebuilt only when the source or the header is newer.
build_churn_pair() {
  local dir=$1 src=$ROOT/bench/tools/churn.cpp header=$ROOT/include/leakscope.hpp bin
  mkdir -p "$dir"
  for bin in churn_plain churn_leakscope; do
    local -a flags=()
    if [ "$bin" = churn_leakscope ]; then flags=(-DCHURN_LEAKSCOPE -I"$ROOT/include" -ldl); fi
    if [ ! -x "$dir/$bin" ] || [ "$src" -nt "$dir/$bin" ] || [ "$header" -nt "$dir/$bin" ]; then
      echo "building $dir/$bin" >&2
      "${CXX:-g++}" -std=c++17 -O2 -g "${flags[@]}" "$src" -o "$dir/$bin" -pthread
    fi
  done
}
# ratio A B: A / B as "1.23x" ("n/a" when B is 0).
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "n/a" }'; }
