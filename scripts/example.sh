#!/usr/bin/env bash
# Builds leakscope's examples (Release, -O2 -g) into build/example and runs the
# main example, examples/leaky_request, showing the leak report it prints on
# stderr. Extra arguments are passed to the example.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD="$ROOT/build/example"
EXAMPLE=leaky_request

if [ "${LEAKSCOPE_SKIP_SETUP:-0}" != 1 ]; then
  bash "$ROOT/scripts/setup.sh"
fi

if [ ! -f "$ROOT/examples/$EXAMPLE.cpp" ]; then
  echo "example.sh: examples/$EXAMPLE.cpp does not exist (yet); nothing to run" >&2
  exit 1
fi

export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2}
cmake -S "$ROOT" -B "$BUILD" -G Ninja \
  -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CXX_FLAGS_RELEASE="-O2 -g" \
  -DLEAKSCOPE_BUILD_TESTS=OFF \
  -DLEAKSCOPE_BUILD_BENCH=OFF \
  -DLEAKSCOPE_BUILD_EXAMPLES=ON
cmake --build "$BUILD" --target "$EXAMPLE"

echo
echo "=== running $BUILD/examples/$EXAMPLE $* (leak report on stderr) ==="
rc=0
"$BUILD/examples/$EXAMPLE" "$@" || rc=$?
echo "=== $EXAMPLE exited with status $rc ==="
exit $rc
