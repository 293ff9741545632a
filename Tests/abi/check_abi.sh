#!/usr/bin/env bash
# ABI guard. Usage: check_abi.sh [--self-test] ABI_DESCRIBE LIBRARY ABI_DIR [STATIC_LIBRARY]
#
# With STATIC_LIBRARY (libmobilellm.a) it also checks that the static library defines exactly the shared library's
# exported functions as its only global symbols (nm -g --defined-only), so nothing of its private Swift runtime
# enters the host's namespace.
#
# Describes the built library (its ABI version, every exported function, sizeof every params struct) and compares
# that with the committed ABI_DIR/abi-v<version>.txt: its first-release lines, updated by its "appended" lines
# (`appended struct NAME SIZE`: a field appended at the end, never a smaller size, or a struct new in the version;
# `appended function NAME`: a new function; both keep binary compatibility, and Sources/MobileLLMC/Header/layout.c checks that every earlier
# offset stays). Any other difference means the export list or a struct_size changed without bumping
# MOBILELLM_ABI_VERSION; after a breaking change, bump the version in mobilellm.h and run scripts/update_abi.sh. Also fails when anything but mobilellm_* functions is exported, when the header
# and library versions differ, or when the library needs a Swift runtime library or anything beyond libc, libm, libdl,
# libpthread, libstdc++ and libgcc_s.
# --self-test: tampers with a copy of the committed description and checks that the guard then fails.
set -uo pipefail
self_test=0
if [ "${1:-}" = "--self-test" ]; then
    self_test=1
    shift
fi
describe=$1 library=$2 abi_dir=$3 static_library=${4:-}
here=$(cd "$(dirname "$0")" && pwd)

describe_library() {
    "$describe" | grep -v '^library_abi_version'
    nm -D --defined-only --extern-only "$library" | awk '{print "function " $3}' | LC_ALL=C sort
}

if [ $self_test -eq 1 ]; then
    version=$("$describe" | awk '/^abi_version/ {print $2}')
    temp=$(mktemp -d)
    trap 'rm -rf "$temp"' EXIT
    failures=0
    # 1. a function disappears from the list; 2. a struct grows; 3. a new function appears; 4. an appended line
    # shrinks a struct.
    grep -v 'function mobilellm_session_cancel$' "$abi_dir/abi-v$version.txt" > "$temp/abi-v$version.txt"
    if "$here/check_abi.sh" "$describe" "$library" "$temp" >/dev/null 2>&1; then echo "guard missed a removed export"; failures=1; fi
    sed 's/^struct mobilellm_sampler_params \([0-9]*\)$/struct mobilellm_sampler_params 64/' "$abi_dir/abi-v$version.txt" > "$temp/abi-v$version.txt"
    if "$here/check_abi.sh" "$describe" "$library" "$temp" >/dev/null 2>&1; then echo "guard missed a struct_size change"; failures=1; fi
    { cat "$abi_dir/abi-v$version.txt"; echo "function mobilellm_zzz_new"; } > "$temp/abi-v$version.txt"
    if "$here/check_abi.sh" "$describe" "$library" "$temp" >/dev/null 2>&1; then echo "guard missed an added export"; failures=1; fi
    { cat "$abi_dir/abi-v$version.txt"; echo "appended struct mobilellm_session_params 8"; } > "$temp/abi-v$version.txt"
    if "$here/check_abi.sh" "$describe" "$library" "$temp" >/dev/null 2>&1; then echo "guard missed a shrinking appended struct"; failures=1; fi
    rm -f "$temp/abi-v$version.txt"
    if "$here/check_abi.sh" "$describe" "$library" "$temp" >/dev/null 2>&1; then echo "guard missed a version without a committed list"; failures=1; fi
    [ $failures -eq 0 ] && echo "abi guard self-test: 5 tampered descriptions all rejected"
    exit $failures
fi

status=0
header_version=$("$describe" | awk '/^abi_version/ {print $2}')
library_version=$("$describe" | awk '/^library_abi_version/ {print $2}')
if [ "$header_version" != "$library_version" ]; then
    echo "ABI version mismatch: header $header_version, library $library_version"
    status=1
fi
others=$(nm -D --defined-only --extern-only "$library" | awk '$3 !~ /^mobilellm_/ || ($2 != "T" && $2 != "W") {print}')
if [ -n "$others" ]; then
    echo "exported symbols other than mobilellm_* functions:"
    echo "$others"
    status=1
fi
swift_libraries=$(ldd "$library" | grep -Ei 'swift|Foundation|dispatch|BlocksRuntime|icu' || true)
if [ -n "$swift_libraries" ]; then
    echo "the library needs Swift runtime libraries (it must link them statically):"
    echo "$swift_libraries"
    status=1
fi
if [ -n "$static_library" ]; then
    static_globals=$(nm -g --defined-only "$static_library" | awk 'NF == 3 {print $2, $3}' | LC_ALL=C sort)
    shared_functions=$(nm -D --defined-only --extern-only "$library" | awk '{print "T", $3}' | LC_ALL=C sort)
    if [ "$static_globals" != "$shared_functions" ]; then
        echo "the static library's global symbols differ from the shared library's exports (< static, > shared):"
        diff <(echo "$static_globals") <(echo "$shared_functions") | head -40
        status=1
    else
        echo "static library: the same $(echo "$static_globals" | wc -l) mobilellm_* functions and no other global symbol"
    fi
fi
# Only the C and C++ runtimes: libc, libm, libdl, libpthread, libstdc++, libgcc_s (and the vDSO and the loader).
unexpected=$(ldd "$library" | awk '{print $1}' |
             grep -Ev '^(linux-vdso\.so|/lib.*/ld-linux.*\.so|ld-linux.*\.so|lib(c|m|dl|pthread|stdc\+\+|gcc_s)\.so)' || true)
if [ -n "$unexpected" ]; then
    echo "the library needs more than libc, libm, libdl, libpthread, libstdc++ and libgcc_s:"
    echo "$unexpected"
    status=1
fi
committed="$abi_dir/abi-v$header_version.txt"
if [ ! -f "$committed" ]; then
    echo "no committed description of ABI version $header_version: run scripts/update_abi.sh and commit $committed"
    exit 1
fi
# The committed description with its appended lines applied.
expected_description() {
    # First-release structs at their newest size, then structs first appended within the version (in the order of
    # their first appended line, which is the order abi_describe prints them in).
    awk 'NR == FNR { if ($1 == "struct") base[$2] = 1
                     if ($1 == "appended" && $2 == "struct") { if (!($3 in size)) order[++n] = $3; size[$3] = $4 }
                     next }
         /^#/ || $1 == "appended" || $1 == "function" { next }
         $1 == "struct" && ($2 in size) { print "struct", $2, size[$2]; next }
         { print }
         END { for (i = 1; i <= n; i++) if (!(order[i] in base)) print "struct", order[i], size[order[i]] }' "$1" "$1"
    { grep '^function ' "$1"; awk '$1 == "appended" && $2 == "function" { print "function", $3 }' "$1"; } | LC_ALL=C sort
}
shrunk=$(awk 'NR == FNR { if ($1 == "struct") base[$2] = $3; next }
              $1 == "appended" && $2 == "struct" && ($3 in base) && $4 + 0 < base[$3] + 0 { print $3 }' "$committed" "$committed")
if [ -n "$shrunk" ]; then
    echo "appended lines may only grow a struct; smaller than first released: $shrunk"
    status=1
fi
if ! diff <(expected_description "$committed") <(describe_library) > /tmp/abi-diff.$$; then
    echo "the ABI changed without a version bump (MOBILELLM_ABI_VERSION is still $header_version)."
    echo "< committed in $committed, > built:"
    cat /tmp/abi-diff.$$
    echo "If the change is intended: bump MOBILELLM_ABI_VERSION in include/mobilellm.h, then run scripts/update_abi.sh."
    status=1
fi
rm -f /tmp/abi-diff.$$
[ $status -eq 0 ] && echo "ABI v$header_version: $(describe_library | grep -c '^function') functions and $(describe_library | grep -c '^struct') struct sizes as committed; only mobilellm_* exported; needs only libc, libm, libstdc++ and libgcc_s"
exit $status
