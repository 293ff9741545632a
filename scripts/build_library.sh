#!/usr/bin/env bash
# Builds the package in release mode (engine, CLI and the C library in one SwiftPM build) and places the
# self-contained C library at .build/release/libmobilellm.so (a stripped copy of SwiftPM's libMobileLLMC.so, whose
# soname is already libmobilellm.so) and its static form at .build/release/libmobilellm.a
# (scripts/build_static_library.sh). Extra arguments go to `swift build`. Prints the shared library's path.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release "$@" >&2
source=.build/release/libMobileLLMC.so
target=.build/release/libmobilellm.so
if [ ! -f "$target" ] || [ "$source" -nt "$target" ]; then
    strip --strip-unneeded -o "$target.tmp" "$source"
    mv -f "$target.tmp" "$target"
fi
if [ ! -f .build/release/libmobilellm.a ] || [ "$source" -nt .build/release/libmobilellm.a ]; then
    scripts/build_static_library.sh >/dev/null
fi
echo "$PWD/$target"
