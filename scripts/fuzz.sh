#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ (with AddressSanitizer) and runs each for SECONDS (default 30), one after the
# other, then prints each target's execution count and findings and one summary line "fuzz: N passed, N failed".
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]        # all targets unless some are named (mobilellm-fuzz --list)
#
# Each target starts from its committed seeds (fuzz/corpus/TARGET, plus the 72 real chat templates for `template`)
# and keeps what it learns in .build-fuzz/corpus/TARGET, so later runs go on from there. A crash, leak, timeout
# (-timeout, 10 s per input) or out-of-memory (-rss_limit_mb / -malloc_limit_mb, 2048 MB) stops the target and
# leaves the input in .build-fuzz/findings/; reproduce it with
#   SWIFT_BACKTRACE=enable=no fuzz/.build/release/mobilellm-fuzz TARGET FILE
# then fix the engine and commit the input as fuzz/corpus/TARGET/regression-NAME with a test in
# Tests/MobileLLMTests/FuzzRegressionTests.swift. MOBILELLM_ASSETS (or .cache/assets) adds the real Llama-3 and
# SmolLM2 vocabularies to the `encode` target when present.
set -uo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-30}
shift $(( $# > 0 ? 1 : 0 ))
work=.build-fuzz
binary=fuzz/.build/release/mobilellm-fuzz

echo "== fuzz build (release, -sanitize=fuzzer,address)"
start=$(date +%s)
# Swift code gets coverage and ASan from -sanitize; the C kernels get the same from -fsanitize (fuzzer-no-link: the
# runtime comes with the Swift link).
if ! swift build -c release --package-path fuzz -Xswiftc -sanitize=fuzzer,address \
    -Xcc -fsanitize=fuzzer-no-link,address >&2; then
    echo "fuzz: the fuzz build failed"
    echo "fuzz: 0 passed, 1 failed"
    exit 1
fi
echo "fuzz build: $(( $(date +%s) - start )) s"

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <("$binary" --list | awk 'NR > 2 {print $1}')
fi

dictionary() {
    case $1 in
        gguf) echo fuzz/dictionaries/gguf.dict ;;
        template) echo fuzz/dictionaries/template.dict ;;
        tokenizer-json | tokenizer-config | encode) echo fuzz/dictionaries/tokenizer.dict ;;
        gbnf) echo fuzz/dictionaries/gbnf.dict ;;
        json-schema) echo fuzz/dictionaries/json-schema.dict ;;
        *) echo fuzz/dictionaries/json.dict ;;
    esac
}

# The Swift runtime's crash handler would race libFuzzer's and ASan's; let them report.
export SWIFT_BACKTRACE=enable=no
export MOBILELLM_ROOT=$PWD
# Loaders that take paths read the input from a file here: tmpfs when there is one.
base=${TMPDIR:-/tmp}
[ -d /dev/shm ] && [ -w /dev/shm ] && base=/dev/shm
scratch=$(mktemp -d "$base/mobilellm-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
export MOBILELLM_FUZZ_SCRATCH=$scratch
mkdir -p "$work/findings"

passed=0
failed=0
total=0
for target in "${targets[@]}"; do
    corpus=$work/corpus/$target
    mkdir -p "$corpus"
    seeds=(fuzz/corpus/"$target")
    [ "$target" = template ] && seeds+=(Tests/Fixtures/templates/sources)
    log=$work/$target.log
    echo "== fuzz $target (${seconds} s)"
    # Leak reports of allocations that are not leaks (see the files' comments).
    suppressions=$PWD/scripts/lsan.supp
    [ -f "fuzz/$target.lsan.supp" ] && suppressions=$PWD/fuzz/$target.lsan.supp
    LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$suppressions:print_suppressions=0} \
    "$binary" "$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -dict="$(dictionary "$target")" -artifact_prefix="$work/findings/$target-" "$corpus" "${seeds[@]}" >"$log" 2>&1
    code=$?
    runs=$(grep -Eo '^stat::number_of_executed_units: [0-9]+' "$log" | grep -Eo '[0-9]+$' | tail -1 || true)
    coverage=$(grep -Eo 'cov: [0-9]+' "$log" | tail -1 | grep -Eo '[0-9]+' || true)
    finding=$(grep -Eo "Test unit written to .*" "$log" | sed 's/Test unit written to //' | tail -1)
    total=$(( total + ${runs:-0} ))
    if [ "$code" -eq 0 ] && [ -z "$finding" ] && [ "${runs:-0}" -gt 0 ]; then
        passed=$((passed + 1))
        echo "-- $target: ${runs} executions, coverage ${coverage:-?} edges, no findings"
    else
        failed=$((failed + 1))
        echo "-- $target: FAILED after ${runs:-0} executions (exit $code)${finding:+, input: $finding}"
        grep -E 'ERROR:|SUMMARY:|invariant violated|Fatal error|runtime failure' "$log" | head -5
        echo "   log: $log"
    fi
done
echo "fuzz: $total executions in all"
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
