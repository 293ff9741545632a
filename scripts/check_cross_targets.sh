#!/usr/bin/env bash
# Compiles every C kernel source (Sources/CMobileLLMKernels/*.c) for the targets the package declares but this
# machine cannot run: Apple arm64 and x86_64 (macOS, iOS, visionOS) and Android (arm64, x86_64), with
# clang --target=T -fsyntax-only -Werror. There is no Apple SDK or Android NDK here, so the C library comes from the
# stand-in headers in Tests/cross/include (see Tests/cross/README.md); the compiler's own intrinsic headers are real.
# The aarch64 Linux build runs for real under qemu (scripts/check_arm64_qemu.sh).
# Usage: scripts/check_cross_targets.sh [clang]   (default: the clang next to swift, else clang on PATH)
set -euo pipefail
cd "$(dirname "$0")/.."
clang=${1:-}
[ -n "$clang" ] || clang=$(scripts/toolchain_clang.sh)
targets=(
    arm64-apple-macos15.0
    x86_64-apple-macos15.0
    arm64-apple-ios18.0
    arm64-apple-ios18.0-simulator
    arm64-apple-xros2.0
    aarch64-linux-android26
    x86_64-linux-android26
)
failed=0
for target in "${targets[@]}"; do
    target_failed=0
    for source in Sources/CMobileLLMKernels/*.c; do
        if ! "$clang" --target="$target" -std=c11 -O2 -fsyntax-only -Wall -Wextra -Werror \
                -ffreestanding -nostdlibinc -isystem Tests/cross/include \
                -I Sources/CMobileLLMKernels/include "$source"; then
            echo "check_cross_targets: $source does not compile for $target" >&2
            target_failed=1
        fi
    done
    if [ $target_failed -eq 0 ]; then echo "$target: ok"; else echo "$target: FAILED"; failed=1; fi
done
exit $failed
