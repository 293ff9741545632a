#!/usr/bin/env bash
# Runs the aarch64 NEON kernels for real on an x86_64 machine: builds scripts/check_quant_arm64.c (the kernels plus a
# NEON-vs-scalar comparison over every quantized type) as a static aarch64 Linux program with clang and lld, and runs
# it under qemu-aarch64 with every ARMv8 extension enabled (-cpu max, so DotProd is detected and used).
# Needs: qemu-user and the arm64 cross C library (Debian: qemu-user libc6-dev-arm64-cross libgcc-12-dev-arm64-cross;
# scripts/install-deps installs them). Exits 77 (ctest's "skipped") saying what is missing when they are absent.
# Usage: scripts/check_arm64_qemu.sh [clang] [output-directory]
set -euo pipefail
cd "$(dirname "$0")/.."
clang=${1:-}
[ -n "$clang" ] || clang=$(scripts/toolchain_clang.sh)
out=${2:-${TMPDIR:-/tmp}}
if ! command -v qemu-aarch64 >/dev/null; then
    echo "check_arm64_qemu: skipped: qemu-aarch64 is not installed (apt-get install qemu-user)"; exit 77
fi
if [ ! -d /usr/aarch64-linux-gnu/lib ]; then
    echo "check_arm64_qemu: skipped: no arm64 cross C library in /usr/aarch64-linux-gnu (apt-get install libc6-dev-arm64-cross libgcc-12-dev-arm64-cross)"; exit 77
fi
program="$out/check_quant_arm64.$$"
"$clang" --target=aarch64-linux-gnu -O2 -static -fuse-ld=lld -Wall -Wextra -Werror \
    -I Sources/CMobileLLMKernels/include scripts/check_quant_arm64.c -o "$program" -lm
status=0
qemu-aarch64 -cpu max "$program" || status=$?
rm -f "$program"
exit $status
