#!/usr/bin/env bash
# Runs the Swift test suite under a sanitizer and ends with one line "sanitize MODE: N passed, N failed".
#
#   scripts/sanitize.sh address|thread [swift test options, e.g. --filter HardUse]
#
# address: AddressSanitizer (+ LeakSanitizer at exit) over the engine, the C kernels and the tests.
# thread:  ThreadSanitizer: data races between sessions, the thread pool, cancellation and the C ABI's handle tables.
# Each mode builds into its own folder (.build-asan, .build-tsan), so it does not disturb the normal build.
# The C kernels get the same sanitizer through -Xcc; MOBILELLM_SANITIZE=1 tells Package.swift to link
# libMobileLLMC.so without -static-stdlib and --no-undefined (a sanitizer runtime cannot go into it). MOBILELLM_ASSETS (or .cache/assets, fetched by
# scripts/fetch_assets.py) adds the real-model tests, as in scripts/test.
set -uo pipefail
cd "$(dirname "$0")/.."

mode=${1:-}
case $mode in
    address) build=.build-asan ;;
    thread) build=.build-tsan ;;
    *) echo "usage: scripts/sanitize.sh address|thread [swift test options]" >&2; exit 2 ;;
esac
shift

# The Swift runtime's backtracer would race the sanitizer's own report; let the sanitizer print it.
export SWIFT_BACKTRACE=enable=no
# Fail on the first report, with the full stack; ASan also reports leaks at exit.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/scripts/lsan.supp:print_suppressions=0}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}
[ -z "${MOBILELLM_ASSETS:-}" ] && [ -d .cache/assets ] && export MOBILELLM_ASSETS=$PWD/.cache/assets

log=$(mktemp)
trap 'rm -f "$log"' EXIT
start=$(date +%s)
MOBILELLM_SANITIZE=1 swift test --scratch-path "$build" --sanitize="$mode" -Xcc -fsanitize="$mode" "$@" 2>&1 | tee "$log"
code=${PIPESTATUS[0]}
seconds=$(( $(date +%s) - start ))

n=$(grep -Eo 'Test run with [0-9]+ tests?' "$log" | tail -1 | grep -Eo '[0-9]+' || true)
f=$(grep -Ec '^✘ Test "[^"]*"( with [0-9]+ test cases?)? failed' "$log" || true)
reports=$(grep -Ec 'ERROR: (AddressSanitizer|LeakSanitizer)|WARNING: ThreadSanitizer' "$log" || true)
if [ -z "$n" ] || [ "$n" -eq 0 ]; then
    echo "sanitize $mode: the test run did not finish (exit $code, $reports sanitizer reports)"
    grep -E -A12 'ERROR: (AddressSanitizer|LeakSanitizer)|WARNING: ThreadSanitizer' "$log" | head -40
    echo "sanitize $mode: 0 passed, 1 failed"
    exit 1
fi
[ "$code" -ne 0 ] && [ "$f" -eq 0 ] && f=1
echo "sanitize $mode: $reports sanitizer reports, $seconds s"
echo "sanitize $mode: $(( n - f )) passed, $f failed"
[ "$code" -eq 0 ] && [ "$reports" -eq 0 ]
