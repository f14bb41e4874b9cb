#!/usr/bin/env bash
# Install everything leakscope's build/test scripts need on Debian 12.
# Idempotent: does nothing (no apt-get update) when all packages are present.
set -euo pipefail

packages=(
  build-essential g++ clang cmake ninja-build meson pkgconf
  catch2 libbenchmark-dev libgtest-dev googletest doctest-dev
  valgrind binutils llvm
  # the writers stage: the HTML report in headless Chromium, the pprof report read by pprof
  # (built offline from Debian's Go sources)
  chromium golang-go golang-github-google-pprof-dev
  # Catch2 v3 is not installed: scripts/catch2-v3.sh (run by scripts/test.sh) downloads it from
  # bookworm-backports with private apt lists and checks the archive's signature with the keyring:
  debian-archive-keyring
)

# The clang runtime (sanitizers, and libFuzzer for the fuzz stage) is libclang-rt-14-dev on Debian 12; newer
# releases call it libclang-rt-dev. Prefer whichever is already installed.
clang_rt=libclang-rt-14-dev
if ! dpkg -s "$clang_rt" >/dev/null 2>&1 && dpkg -s libclang-rt-dev >/dev/null 2>&1; then
  clang_rt=libclang-rt-dev
fi
packages+=("$clang_rt")

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup.sh: all ${#packages[@]} packages already installed"
  exit 0
fi

echo "setup.sh: installing: ${missing[*]}"
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  else
    echo "setup.sh: not root and sudo is not available; cannot install: ${missing[*]}" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
if ! apt-cache show "$clang_rt" >/dev/null 2>&1; then
  # Not Debian 12: fall back to the unversioned runtime package name.
  for i in "${!missing[@]}"; do
    [ "${missing[$i]}" = "$clang_rt" ] && missing[i]=libclang-rt-dev
  done
fi
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "setup.sh: done"
