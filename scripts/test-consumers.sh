#!/usr/bin/env bash
# Builds and runs the consumer projects in tests/consumers/ against leakscope:
#   1. cmake            find_package(leakscope) from a `cmake --install` prefix
#   2. cmake_subdir     add_subdirectory(<repo>) (the FetchContent path)
#   3. meson_subproject dependency('leakscope', fallback: ...) with the repo as
#                       subprojects/leakscope (symlinked in a temp copy)
#   4. pkgconfig        plain compiler + `pkg-config --cflags leakscope`, against
#                       both the CMake- and the Meson-installed prefix
# Each consumer must exit 0 and print a leakscope report mentioning the leak on
# stderr. Any failure stops the script with a message.
#
# Env: CXX (default g++), LEAKSCOPE_CONSUMERS_KEEP=1 keeps the temp dir.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CXX=${CXX:-g++}
export CXX
WORK=$(mktemp -d "${TMPDIR:-/tmp}/leakscope-consumers.XXXXXX")
CMAKE_GEN=()
command -v ninja >/dev/null 2>&1 && CMAKE_GEN=(-G Ninja)
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2}

current="setup"
cleanup() {
  local rc=$?
  if [ $rc -ne 0 ]; then
    echo "test-consumers.sh: FAILED in step '$current' (exit $rc); work dir kept: $WORK" >&2
  elif [ "${LEAKSCOPE_CONSUMERS_KEEP:-0}" = 1 ]; then
    echo "test-consumers.sh: work dir kept: $WORK"
  else
    rm -rf "$WORK"
  fi
  exit $rc
}
trap cleanup EXIT

step() { current=$1; echo; echo "--- consumers: $1"; }
die() { echo "test-consumers.sh: $current: $*" >&2; exit 1; }

[ -f "$ROOT/include/leakscope.hpp" ] || die "missing $ROOT/include/leakscope.hpp"

# run_app NAME BINARY: must exit 0 and mention leakscope on stderr.
run_app() {
  local name=$1 bin=$2 err="$WORK/$1.stderr" rc=0
  "$bin" 2>"$err" || rc=$?
  sed 's/^/    stderr| /' "$err"
  [ $rc -eq 0 ] || die "$name exited with status $rc"
  grep -qi 'leakscope' "$err" || die "$name: stderr does not mention 'leakscope'"
  echo "    $name: OK"
}

# --- install with CMake -------------------------------------------------------
step "cmake install"
PREFIX="$WORK/prefix"
cmake -S "$ROOT" -B "$WORK/install-build" "${CMAKE_GEN[@]}" \
  -DCMAKE_CXX_COMPILER="$CXX" \
  -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_INSTALL_PREFIX="$WORK/unused-prefix" \
  -DLEAKSCOPE_BUILD_TESTS=OFF -DLEAKSCOPE_BUILD_EXAMPLES=OFF -DLEAKSCOPE_BUILD_BENCH=OFF \
  >"$WORK/install-configure.log" || { cat "$WORK/install-configure.log"; die "configure failed"; }
cmake --build "$WORK/install-build"
# --prefix at install time (not configure time): checks relocatability.
cmake --install "$WORK/install-build" --prefix "$PREFIX"
for f in include/leakscope.hpp \
         share/cmake/leakscope/leakscopeConfig.cmake \
         share/cmake/leakscope/leakscopeConfigVersion.cmake \
         share/cmake/leakscope/leakscopeTargets.cmake \
         share/pkgconfig/leakscope.pc; do
  [ -f "$PREFIX/$f" ] || die "not installed: $f"
done
if grep -rq "unused-prefix" "$PREFIX/share"; then
  die "installed package files hard-code the configure-time prefix"
fi

# --- 1. find_package ----------------------------------------------------------------
step "cmake find_package consumer"
cmake -S "$ROOT/tests/consumers/cmake" -B "$WORK/cmake" "${CMAKE_GEN[@]}" \
  -DCMAKE_CXX_COMPILER="$CXX" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$PREFIX" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
cmake --build "$WORK/cmake"
run_app cmake "$WORK/cmake/app"

# A major version we do not provide must be rejected (SameMajorVersion).
step "cmake version check"
mkdir -p "$WORK/cmake-v2"
cat >"$WORK/cmake-v2/CMakeLists.txt" <<'EOF'
cmake_minimum_required(VERSION 3.14)
project(v2 LANGUAGES CXX)
find_package(leakscope 1.0 CONFIG)
if(leakscope_FOUND)
  message(FATAL_ERROR "leakscope 0.x must not satisfy a request for 1.0")
endif()
find_package(leakscope 0.1.0 EXACT CONFIG REQUIRED)
EOF
cmake -S "$WORK/cmake-v2" -B "$WORK/cmake-v2/build" "${CMAKE_GEN[@]}" \
  -DCMAKE_CXX_COMPILER="$CXX" -DCMAKE_PREFIX_PATH="$PREFIX" >/dev/null \
  || die "version compatibility check failed"
echo "    version check: OK"

# --- 2. add_subdirectory ------------------------------------------------------------
step "cmake add_subdirectory consumer"
cmake -S "$ROOT/tests/consumers/cmake_subdir" -B "$WORK/cmake_subdir" "${CMAKE_GEN[@]}" \
  -DCMAKE_CXX_COMPILER="$CXX" -DCMAKE_BUILD_TYPE=Release \
  -DLEAKSCOPE_SOURCE_DIR="$ROOT"
cmake --build "$WORK/cmake_subdir"
run_app cmake_subdir "$WORK/cmake_subdir/app"

# --- 3. meson subproject ------------------------------------------------------------
step "meson subproject consumer"
cp -R "$ROOT/tests/consumers/meson_subproject" "$WORK/meson_subproject"
cp "$ROOT/tests/consumers/main.cpp" "$WORK/meson_subproject/main.cpp"
mkdir -p "$WORK/meson_subproject/subprojects"
ln -s "$ROOT" "$WORK/meson_subproject/subprojects/leakscope"
CXX="$CXX" meson setup "$WORK/meson_subproject/build" "$WORK/meson_subproject" \
  --buildtype=release --force-fallback-for=leakscope
meson compile -C "$WORK/meson_subproject/build"
if [ -e "$WORK/meson_subproject/build/subprojects/leakscope/tests" ]; then
  die "leakscope built its tests as a meson subproject"
fi
run_app meson_subproject "$WORK/meson_subproject/build/app"

# --- 4. pkg-config ------------------------------------------------------------------
# pc_consumer LABEL PKGCONFIG_DIR
pc_consumer() {
  local label=$1 pcdir=$2 cflags libs
  [ -f "$pcdir/leakscope.pc" ] || die "$label: no $pcdir/leakscope.pc"
  if grep -Eq '^[[:space:]]*Libs(\.private)?[[:space:]]*:' "$pcdir/leakscope.pc"; then
    cat "$pcdir/leakscope.pc"
    die "$label: leakscope.pc has a Libs line (header-only library)"
  fi
  export PKG_CONFIG_PATH="$pcdir"
  pkg-config --exists --print-errors leakscope || die "$label: pkg-config cannot find leakscope"
  [ "$(pkg-config --modversion leakscope)" = "0.1.0" ] || die "$label: wrong --modversion"
  cflags=$(pkg-config --cflags leakscope)
  libs=$(pkg-config --libs leakscope)
  echo "    cflags: $cflags"
  if [ -n "${libs//[[:space:]]/}" ]; then
    die "$label: pkg-config --libs leakscope printed '$libs' (expected nothing)"
  fi
  # shellcheck disable=SC2086  # word splitting of $cflags is intended
  "$CXX" -std=c++17 $cflags "$ROOT/tests/consumers/main.cpp" \
    -o "$WORK/pkgconfig-$label" -pthread -ldl
  run_app "pkgconfig-$label" "$WORK/pkgconfig-$label"
  unset PKG_CONFIG_PATH
}

step "pkg-config consumer (cmake install)"
pc_consumer cmake "$PREFIX/share/pkgconfig"

step "pkg-config consumer (meson install)"
MPREFIX="$WORK/meson-prefix"
CXX="$CXX" meson setup "$WORK/meson-install-build" "$ROOT" \
  --prefix="$MPREFIX" -Dtests=disabled -Dexamples=disabled -Dbench=disabled \
  >"$WORK/meson-install.log" || { cat "$WORK/meson-install.log"; die "meson setup failed"; }
meson install -C "$WORK/meson-install-build" >>"$WORK/meson-install.log" \
  || { cat "$WORK/meson-install.log"; die "meson install failed"; }
[ -f "$MPREFIX/include/leakscope.hpp" ] || die "meson did not install include/leakscope.hpp"
pc_consumer meson "$MPREFIX/share/pkgconfig"

current="done"
echo
echo "test-consumers.sh: all consumers OK"
