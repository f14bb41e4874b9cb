#!/bin/sh
# Helper for the Meson build (Meson has no glob). POSIX sh, no bash needed.
#
#   meson-sources.sh list DIR
#       Print the *.cpp file names (basenames, sorted) in DIR, one per line.
#       Prints nothing (and succeeds) when there are none or DIR is missing.
#   meson-sources.sh directive NAME FILE
#       Print the value of the first "// leakscope-test-<NAME>: ..." line of
#       FILE (e.g. NAME=defines or NAME=env), or nothing.
#   meson-sources.sh own-implementation FILE...
#       Print "yes" if one of FILEs defines LEAKSCOPE_IMPLEMENTATION itself, else "no" (the
#       others link tests/support/implementation.cpp, compiled once).
#
# Same convention as leakscope_read_directives() in cmake/leakscopeDev.cmake.
# Note: Meson does not re-run this on its own when files are added; use
# `meson setup --reconfigure <builddir>` after adding sources.
set -eu

case "${1:-}" in
  list)
    dir=$2
    [ -d "$dir" ] || exit 0
    for f in "$dir"/*.cpp; do
      [ -f "$f" ] && printf '%s\n' "${f##*/}"
    done
    exit 0
    ;;
  directive)
    name=$2
    file=$3
    sed -n "s|^[[:space:]]*//[[:space:]]*leakscope-test-${name}:[[:space:]]*||p" "$file" | head -n 1
    exit 0
    ;;
  own-implementation)
    shift
    if grep -q '^[[:space:]]*#[[:space:]]*define[[:space:]][[:space:]]*LEAKSCOPE_IMPLEMENTATION' "$@"; then
      echo yes
    else
      echo no
    fi
    exit 0
    ;;
  *)
    echo "usage: $0 list DIR | directive NAME FILE | own-implementation FILE..." >&2
    exit 2
    ;;
esac
