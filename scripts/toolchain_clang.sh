#!/usr/bin/env bash
# Prints the clang to cross-compile the C kernels with: the one beside swift (it has every LLVM target and lld),
# else clang on PATH. Used by check_cross_targets.sh and check_arm64_qemu.sh.
swift_bin=$(dirname "$(readlink -f "$(command -v swift 2>/dev/null || echo /opt/swift/usr/bin/swift)")")
if [ -x "$swift_bin/clang" ]; then echo "$swift_bin/clang"; else echo clang; fi
