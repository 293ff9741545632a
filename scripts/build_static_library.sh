#!/usr/bin/env bash
# Builds .build/release/libmobilellm.a, the static form of libmobilellm.so, from the objects of the last release
# build (run scripts/build_library.sh first; it calls this script).
#
# The archive holds ONE relocatable object: the library's objects (the MobileLLMC product's link list) partially
# linked (ld -r) with the members of the Swift runtime's static libraries they need (swiftCore, Synchronization,
# FoundationEssentials, Dispatch, ...), and then every symbol but the mobilellm_* functions made local (objcopy
# --keep-global-symbol). So a host sees the same exports as the shared library and nothing of the Swift runtime:
# no duplicate-symbol clash with the host's own copy of libstdc++ helpers, Swift runtime or anything else.
# COMDAT groups are turned into plain sections (--force-group-allocation), so the host's linker cannot discard a
# group of ours in favour of a same-named one of its own.
#
# A host links it with: libmobilellm.a -lstdc++ -lm -ldl -lpthread (pkg-config --static --libs mobilellm).
# Caveat: a host that itself contains Swift code gets a second, private Swift runtime; such a host should use the
# MobileLLM Swift package product instead.
set -euo pipefail
cd "$(dirname "$0")/.."
build=.build/release
list=$build/MobileLLMC.product/Objects.LinkFileList
if [ ! -f "$list" ]; then
    echo "build_static_library: $list is missing; run scripts/build_library.sh first" >&2
    exit 1
fi
resources=$(swift -print-target-info | python3 -c 'import json,sys; print(json.load(sys.stdin)["paths"]["runtimeResourcePath"])')
runtime="${resources%/swift}/swift_static/linux"
swiftrt="$runtime/$(uname -m)/swiftrt.o"
if [ ! -f "$swiftrt" ]; then
    echo "build_static_library: no static Swift runtime at $runtime (swiftrt.o missing)" >&2
    exit 1
fi
# Every static runtime library but the ones that need system libraries a host may lack (curl, libxml2); ld -r takes
# only the members something refers to.
archives=()
for archive in "$runtime"/*.a; do
    case "$(basename "$archive")" in
        libFoundationNetworking.a|libFoundationXML.a|lib_CFURLSessionInterface.a|lib_CFXMLInterface.a) ;;
        *) archives+=("$archive") ;;
    esac
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ld -r --force-group-allocation -o "$work/prelinked.o" "$swiftrt" "@$list" --start-group "${archives[@]}" --end-group
objcopy --wildcard --keep-global-symbol='mobilellm_*' --strip-unneeded "$work/prelinked.o" "$work/mobilellm.o"
rm -f "$work/libmobilellm.a"
ar rcsD "$work/libmobilellm.a" "$work/mobilellm.o"
mv -f "$work/libmobilellm.a" "$build/libmobilellm.a"
echo "$PWD/$build/libmobilellm.a"
