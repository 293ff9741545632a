#!/usr/bin/env python3
"""Teacher-forced top-1 agreement of the mobilellm CLI with transformers on the real Qwen2.5-Coder-0.5B Q4_K_M GGUF,
over every position of Tests/Fixtures/qwen25-coder/reference.json (scripts/make_qwen_reference.py), in both
activation modes, and the greedy answers. Standard library only; run it on a release build:

    python3 scripts/check_qwen_agreement.py [--mobilellm .build/release/mobilellm]
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GGUF = os.path.join(os.environ.get("MOBILELLM_ASSETS") or os.path.join(ROOT, ".cache", "assets"),
                    "qwen25-coder", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mobilellm", default=os.path.join(ROOT, ".build", "release", "mobilellm"))
    args = ap.parse_args()
    reference = json.load(open(os.path.join(ROOT, "Tests", "Fixtures", "qwen25-coder", "reference.json")))
    for mode in ("exact", "int8"):
        agree = total = clear = clear_agree = 0
        for sequence in reference["sequences"]:
            out = subprocess.run([args.mobilellm, "logits", "--model", GGUF, "--activations", mode, "--all-positions",
                                  "--tokens", ",".join(map(str, sequence["tokens"]))],
                                 capture_output=True, text=True, check=True).stdout
            rows = json.loads(out)["logits"]
            for row, expected, margin in zip(rows, sequence["argmax"], sequence["margin"]):
                same = max(range(len(row)), key=row.__getitem__) == expected
                total += 1
                agree += same
                if margin > 0.1:
                    clear += 1
                    clear_agree += same
        print(f"{mode}: top-1 agreement {agree}/{total} ({100 * agree / total:.2f}%), "
              f"where transformers' margin > 0.1: {clear_agree}/{clear}")
    for greedy in reference["greedy"]:
        prompt = ",".join(map(str, greedy["prompt_tokens"]))
        out = subprocess.run([args.mobilellm, "generate", "--model", GGUF, "--tokens", prompt, "--max-tokens",
                              str(len(greedy["answer_tokens"])), "--json"],
                             capture_output=True, text=True, check=True).stdout
        got = json.loads(out)
        same = got["tokens"] == greedy["answer_tokens"]
        print(f"greedy {'identical' if same else 'DIFFERENT'}: {greedy['messages'][-1]['content']!r} -> {got['text']!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
