#!/usr/bin/env bash
# Fetches Catch2 v3 for the second build of the Catch2 adapter's fixture, without installing it:
# Debian 12 ships Catch2 2.13 (what everything else builds against); bookworm-backports has
# libcatch2-dev 3.7.1 (headers, libCatch2.a, libCatch2Main.a). The package is downloaded with
# apt through a private sources list, lists and cache (the system's apt state is not touched;
# the archive's signature is checked against Debian's keyring) and unpacked with dpkg -x.
#
#   bash scripts/catch2-v3.sh      prints the prefix (PREFIX/include/catch2, PREFIX/lib/libCatch2.a)
#
# Idempotent: a prefix already unpacked for this version is printed without any download.
# Diagnostics go to stderr; exit status 1 when it cannot be fetched (no network, no such version).
# Environment:
#   LEAKSCOPE_CATCH2_V3_VERSION   the Debian version (default 3.7.1-0.4~bpo12+1)
#   LEAKSCOPE_CATCH2_V3_DIR       where to keep it (default build/deps/catch2-v3)
#   LEAKSCOPE_DEBIAN_MIRROR       the archive (default http://deb.debian.org/debian)
# (The backports package named "catch2" is a transitional one that only depends on
# libcatch2-dev; the files are in libcatch2-dev.)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VERSION=${LEAKSCOPE_CATCH2_V3_VERSION:-3.7.1-0.4~bpo12+1}
DEST=${LEAKSCOPE_CATCH2_V3_DIR:-$ROOT/build/deps/catch2-v3}
MIRROR=${LEAKSCOPE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
PREFIX=$DEST/root/usr

say() { echo "catch2-v3.sh: $*" >&2; }

if [ -f "$PREFIX/lib/libCatch2.a" ] && [ -f "$PREFIX/lib/libCatch2Main.a" ] &&
   [ -f "$PREFIX/include/catch2/catch_test_macros.hpp" ] &&
   [ "$(cat "$DEST/version" 2>/dev/null)" = "$VERSION" ]; then
  echo "$PREFIX"
  exit 0
fi

for tool in apt-get dpkg; do
  command -v "$tool" >/dev/null 2>&1 || { say "$tool not found (Debian's apt is needed)"; exit 1; }
done
[ -r "$KEYRING" ] || { say "$KEYRING not readable (package debian-archive-keyring)"; exit 1; }

apt_dir=$DEST/apt
rm -rf "$apt_dir" "$DEST/root" "$DEST/version"
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/download"
echo "deb [signed-by=$KEYRING] $MIRROR bookworm-backports main" >"$apt_dir/sources.list"
apt_opts=(
  -o "Dir::Etc::sourcelist=$apt_dir/sources.list"
  -o "Dir::Etc::sourceparts=-"
  -o "Dir::State::Lists=$apt_dir/lists"
  -o "Dir::Cache=$apt_dir/cache"
  -o "APT::Sandbox::User=$(id -un)"   # apt's _apt user could not write to this directory
  -q
)
say "fetching libcatch2-dev=$VERSION from $MIRROR bookworm-backports (private apt lists in $apt_dir)"
if ! apt-get "${apt_opts[@]}" update >"$apt_dir/update.log" 2>&1 || grep -q '^[WE]: ' "$apt_dir/update.log"; then
  sed 's/^/  apt-get update| /' "$apt_dir/update.log" >&2
  say "could not read the bookworm-backports index (no network?)"
  exit 1
fi
if ! (cd "$apt_dir/download" && apt-get "${apt_opts[@]}" download "libcatch2-dev=$VERSION") >"$apt_dir/download.log" 2>&1; then
  sed 's/^/  apt-get download| /' "$apt_dir/download.log" >&2
  say "libcatch2-dev=$VERSION could not be downloaded; bookworm-backports has:"
  apt-cache "${apt_opts[@]}" madison libcatch2-dev >&2 || true
  exit 1
fi
deb=$(find "$apt_dir/download" -name 'libcatch2-dev_*.deb' | head -n 1)
[ -n "$deb" ] || { say "apt-get download left no libcatch2-dev_*.deb"; exit 1; }
dpkg -x "$deb" "$DEST/root"
for f in lib/libCatch2.a lib/libCatch2Main.a include/catch2/catch_test_macros.hpp; do
  [ -f "$PREFIX/$f" ] || { say "$(basename "$deb") has no usr/$f"; exit 1; }
done
echo "$VERSION" >"$DEST/version"
say "Catch2 $VERSION unpacked in $DEST/root"
echo "$PREFIX"
