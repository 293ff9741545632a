#!/usr/bin/env python3
"""Writes Tests/Fixtures/qwen25coder/reference.json: transformers' logits for the real Qwen2.5-Coder-0.5B-Instruct
Q4_K_M GGUF (asset qwen25-coder of scripts/fetch_assets.py), whose tensors are Q5_0 (token embedding and most
projections), Q8_0 (output), Q4_K, Q6_K and F32.

    /work/venv/bin/python scripts/make_qwen_quant_reference.py [path/to/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf]

Needs torch, transformers and gguf (transformers dequantizes the GGUF tensors with gguf-py and runs the model in
float32 eager mode). The prompt is tokenized by transformers' own GGUF tokenizer, so the fixture stores token ids
and the test needs no tokenizer. Per position it stores the arg-max, the top-1 / top-2 margin and the 32 largest
logits (ids and values). CI never runs this; the JSON is committed.
"""
import json
import os
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT = os.path.join(os.environ.get("MOBILELLM_ASSETS") or os.path.join(ROOT, ".cache", "assets"), "qwen25-coder",
                       "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")
OUT = os.path.join(ROOT, "Tests", "Fixtures", "qwen25coder", "reference.json")
PROMPT = ("<|im_start|>user\nWrite a Python function that returns the n-th Fibonacci number.<|im_end|>\n"
          "<|im_start|>assistant\n")
TOP = 32


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else DEFAULT
    directory, name = os.path.dirname(os.path.abspath(path)), os.path.basename(path)
    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=name)
    tokens = tokenizer.encode(PROMPT, add_special_tokens=False)
    model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, dtype=torch.float32)
    model.eval()
    with torch.no_grad():
        logits = model(torch.tensor([tokens])).logits[0]
    positions = []
    for row in logits:
        values, ids = torch.topk(row, TOP)
        positions.append({"argmax": int(ids[0]), "margin": float(values[0] - values[1]),
                          "top_ids": [int(i) for i in ids], "top_logits": [float(v) for v in values]})
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump({"model": name, "prompt": PROMPT, "tokens": tokens, "positions": positions}, f, indent=1)
        f.write("\n")
    print(f"wrote {OUT}: {len(tokens)} tokens")


if __name__ == "__main__":
    sys.exit(main())
