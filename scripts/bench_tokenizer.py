#!/usr/bin/env python3
"""Tokenizer throughput: mobilellm vs HF `tokenizers`, one thread each, whole processes timed (start + load + encode).

    swift build -c release
    /work/refvenv/bin/python scripts/bench_tokenizer.py [--mb 8] [--runs 3] [--lines] [--binary .build/release/mobilellm]

Generates a deterministic multi-MB mixed-script text (English prose and code, CJK, Cyrillic, Arabic, Devanagari,
Greek, Hangul, Thai, emoji, numbers, whitespace runs) as one JSON string in a JSONL file, then times:
  ours: `mobilellm tokenize --model <llama3-tokenizer dir> --input-jsonl FILE` (ids printed as JSON, to a file)
  HF:   python -c "Tokenizer.from_file(tokenizer.json).encode(text)" with RAYON_NUM_THREADS=1 (ids written too)
and checks the two id lists are identical. With --lines the text is split into its ~paragraphs (one JSON string per
JSONL line) and HF runs `encode_batch` over them (still one thread: RAYON_NUM_THREADS=1). MB/s = input bytes / wall-clock seconds of the whole process (best run).
"""
import argparse
import json
import os
import random
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ASSETS = os.environ.get("MOBILELLM_ASSETS") or os.path.join(ROOT, ".cache", "assets")
TOKENIZER_DIR = os.path.join(ASSETS, "llama3-tokenizer")
WORK = os.path.join(ROOT, ".cache", "bench")

ENGLISH = ("the of and to in is was that for it with as his on be at by had are but from or have an they which one "
           "you were her all she there would their we him been has when who will more no if out so said what up its "
           "about into than them can only other new some could time these two may then do first any my now such like "
           "our over man me even most made after also did many before must through back years where much your way "
           "well down should because each just those people how too little state good very make world still own see "
           "men work long get here between both life being under never day same another know while last might us great "
           "old year off come since against go came right used take three tokenizer inference engine model quantized "
           "transformer attention Hello World I'm don't we've they'll it's O'Neil's").split()
SCRIPT_TEXT = {
    "cjk": "我想在苹果公司工作中文字符测试繁體中文測試日本語のテキストひらがなとカタカナ東京タワー",
    "cyrillic": "съешьжеещёэтихмягкихфранцузскихбулокдавыпейчаюпривет",
    "arabic": "العربيةلغةجميلةمرحبابالعالمفارسیزبانشیریناست",
    "devanagari": "हिन्दीभाषानमस्तेदुनियाकखगघचछजझ",
    "greek": "ΕνἀρχῇἦνὁλόγοςκαὶὁλόγοςἦνπρὸςτὸνθεόνΕλληνικά",
    "hangul": "한국어는아름답습니다안녕하세요세계",
    "thai": "ภาษาไทยเป็นภาษาที่สวยงาม",
}
EMOJI = ["🚀", "😀", "👍🏽", "🇺🇸", "👨‍👩‍👧", "✅", "❤️", "🦙"]
CODE = [
    "def f(x):\n    return [i * 2 for i in range(x) if i % 3 == 0]\n",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i] * b[i];\n}\n",
    "{\"id\": 1234, \"name\": \"value\", \"tags\": [\"a\", \"b\"], \"ok\": true}\n",
    "    if let x = y?.z { print(\"\\(x)\") }\n",
]


def make_text(megabytes, seed=7):
    rng = random.Random(seed)
    target = int(megabytes * 1_000_000)
    parts = []
    size = 0
    while size < target:
        kind = rng.random()
        if kind < 0.45:
            words = [rng.choice(ENGLISH) for _ in range(rng.randint(20, 80))]
            for i in range(len(words)):
                if rng.random() < 0.08:
                    words[i] = words[i].capitalize() + rng.choice([",", ".", ";", "!", "?"])
                if rng.random() < 0.03:
                    words[i] = str(rng.randint(0, 10 ** rng.randint(1, 7)))
            para = " ".join(words) + ".\n\n"
        elif kind < 0.55:
            para = rng.choice(CODE) * rng.randint(1, 3)
        else:
            script = rng.choice(list(SCRIPT_TEXT))
            letters = SCRIPT_TEXT[script]
            words = []
            for _ in range(rng.randint(10, 40)):
                start = rng.randrange(len(letters))
                word = letters[start:start + rng.randint(1, 8)]
                if rng.random() < 0.05:
                    word += rng.choice(EMOJI)
                words.append(word)
            sep = "" if script in ("cjk", "thai") and rng.random() < 0.5 else " "
            para = sep.join(words) + "。\n" if script == "cjk" else " ".join(words) + ".\n"
        parts.append(para)
        size += len(para.encode("utf-8"))
    return "".join(parts)


HF_SCRIPT = r"""
import json, sys
from tokenizers import Tokenizer
tk = Tokenizer.from_file(sys.argv[1])
with open(sys.argv[2], encoding="utf-8") as f:
    texts = [json.loads(line) for line in f]
if len(texts) == 1:
    rows = [tk.encode(texts[0], add_special_tokens=False).ids]
else:
    rows = [e.ids for e in tk.encode_batch(texts, add_special_tokens=False)]
with open(sys.argv[3], "w") as f:
    for ids in rows:
        f.write(json.dumps(ids) + "\n")
"""


def timed(command, env=None):
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=float, default=8.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--binary", default=os.path.join(ROOT, ".build", "release", "mobilellm"))
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--lines", action="store_true", help="one JSONL line per paragraph instead of one string")
    args = parser.parse_args()
    if not os.path.exists(os.path.join(TOKENIZER_DIR, "tokenizer.json")):
        sys.exit("missing the Llama-3 tokenizer: run python3 scripts/fetch_assets.py")
    if not os.path.exists(args.binary):
        sys.exit(f"missing {args.binary}: run swift build -c release")
    os.makedirs(WORK, exist_ok=True)
    text = make_text(args.mb)
    nbytes = len(text.encode("utf-8"))
    input_path = os.path.join(WORK, "bench.jsonl")
    with open(input_path, "w", encoding="utf-8") as f:
        if args.lines:
            for line in text.splitlines(keepends=True):
                f.write(json.dumps(line, ensure_ascii=False) + "\n")
        else:
            f.write(json.dumps(text, ensure_ascii=False) + "\n")
    ours_out = os.path.join(WORK, "ours.jsonl")
    hf_out = os.path.join(WORK, "hf.jsonl")
    env = dict(os.environ, RAYON_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    ours_cmd = ["taskset", "-c", "0", args.binary, "tokenize", "--model", TOKENIZER_DIR, "--input-jsonl", input_path]
    hf_cmd = ["taskset", "-c", "0", args.python, "-c", HF_SCRIPT, os.path.join(TOKENIZER_DIR, "tokenizer.json"),
              input_path, hf_out]
    ours_times, hf_times = [], []
    for _ in range(args.runs):
        with open(ours_out, "w") as out:
            start = time.perf_counter()
            subprocess.run(ours_cmd, check=True, stdout=out)
            ours_times.append(time.perf_counter() - start)
        hf_times.append(timed(hf_cmd, env))
    with open(ours_out) as f:
        ours_ids = [json.loads(line) for line in f]
    with open(hf_out) as f:
        hf_ids = [json.loads(line) for line in f]
    identical = ours_ids == hf_ids
    token_count = sum(len(ids) for ids in hf_ids)
    ours, hf = min(ours_times), min(hf_times)
    shape = f"{len(hf_ids)} JSONL lines" if args.lines else "one JSON string"
    print(f"input: {nbytes / 1e6:.2f} MB, {token_count} tokens ({shape}), one thread (taskset -c 0)")
    print(f"mobilellm tokenize : {ours:.3f} s  {nbytes / 1e6 / ours:7.2f} MB/s  (runs: {', '.join(f'{t:.3f}' for t in ours_times)})")
    print(f"HF tokenizers      : {hf:.3f} s  {nbytes / 1e6 / hf:7.2f} MB/s  (runs: {', '.join(f'{t:.3f}' for t in hf_times)})")
    print(f"speed-up: {hf / ours:.2f}x; ids identical: {identical}")
    if not identical:
        sys.exit(1)


if __name__ == "__main__":
    main()
