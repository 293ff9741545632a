#!/usr/bin/env bash
# Writes abi/abi-v<N>.txt, the committed description of ABI version N (MOBILELLM_ABI_VERSION in include/mobilellm.h):
# sizeof every params struct and every exported function of the built library. The ABI guard (ctest abi_guard)
# compares the build with it. A released version's file must never change: bump the version instead. --force
# rewrites an existing file (only for a version that has not been released yet).
# Usage: scripts/update_abi.sh [--force] [BUILD_DIR (default: build)]
set -euo pipefail
cd "$(dirname "$0")/.."
force=0
if [ "${1:-}" = "--force" ]; then force=1; shift; fi
build=${1:-build}
describe="$build/abi_describe"
library="$build/libmobilellm.so"
[ -x "$describe" ] && [ -f "$library" ] || { echo "build first: cmake -S . -B $build && cmake --build $build" >&2; exit 1; }
version=$("$describe" | awk '/^abi_version/ {print $2}')
target="abi/abi-v$version.txt"
if [ -f "$target" ] && [ $force -eq 0 ]; then
    echo "$target exists; an ABI version's description never changes. Bump MOBILELLM_ABI_VERSION, or pass --force if v$version is unreleased." >&2
    exit 1
fi
{
    echo "# libmobilellm ABI version $version: struct sizes (LP64) and exported functions. Written by scripts/update_abi.sh;"
    echo "# checked by Tests/abi/check_abi.sh. Never edit by hand; a changed ABI gets a new version and a new file."
    "$describe" | grep -v '^library_abi_version'
    nm -D --defined-only --extern-only "$library" | awk '{print "function " $3}' | LC_ALL=C sort
} > "$target"
echo "wrote $target"
