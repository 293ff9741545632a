#!/usr/bin/env bash
# Times grammar-constrained decoding's extra work per token (GrammarConstraint.restrict + accept) on the Llama-3
# 128K vocabulary while a ~200-token JSON object is replayed token by token: cold caches, warm caches, a fresh
# grammar, and llama.cpp's json.gbnf. Builds scripts/grammar-bench (release) first.
#
#   MOBILELLM_ASSETS=/path/to/assets scripts/bench_grammar.sh [path/to/llama3-tokenizer]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
export MOBILELLM_ASSETS="${MOBILELLM_ASSETS:-$root/.cache/assets}"
swift build -c release --package-path "$root/scripts/grammar-bench" >&2
"$root/scripts/grammar-bench/.build/release/grammar-bench" "$@"
