#!/usr/bin/env python3
"""Hostile-input probe for the mobilellm CLI (a starting point for issue 7's committed corpus and fuzzing).

Corrupts real files (the SmolLM2 GGUF asset, the Llama-3 tokenizer.json, a safetensors fixture and its config.json):
truncations, random byte flips, wrong-typed config fields, and checks that every run exits 0 (the corruption hit
only weight values) or 1 with a message on stderr — never a signal or exit code 2+.

    python3 scripts/fetch_assets.py && swift build -c release && python3 scripts/probe_hostile_inputs.py
"""
import json, os, random, shutil, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, ".build", "release", "mobilellm")
ASSETS = os.environ.get("MOBILELLM_ASSETS") or os.path.join(ROOT, ".cache", "assets")
WORK = tempfile.mkdtemp(prefix="mobilellm-hostile-")
failures = 0
count = 0


def run(args):
    global failures, count
    count += 1
    r = subprocess.run([BINARY] + args, capture_output=True, text=True, timeout=120)
    if r.returncode not in (0, 1) or (r.returncode == 1 and not r.stderr.strip()):
        failures += 1
        print("BAD", args[:4], r.returncode, r.stderr[-300:])


def gguf_cases():
    data = open(os.path.join(ASSETS, "smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"), "rb").read()
    cases = [("trunc%d" % cut, data[:cut]) for cut in
             [0, 3, 4, 8, 15, 24, 100, 1000, 5000, 50000, 500000, 1500000, 5000000, 50000000, len(data) - 1]]
    for i in range(40):
        head = bytearray(data[:3000000])
        for _ in range(random.randint(1, 8)):
            head[random.randrange(len(head))] = random.randrange(256)
        cases.append(("flip%d" % i, bytes(head) + data[3000000:]))
    for name, blob in cases:
        path = os.path.join(WORK, name + ".gguf")
        open(path, "wb").write(blob)
        run(["generate", "--model", path, "--tokens", "1,2,3", "--max-tokens", "2", "--json"])
        os.remove(path)


def tokenizer_cases():
    tok = open(os.path.join(ASSETS, "llama3-tokenizer", "tokenizer.json"), "rb").read()
    cfg = open(os.path.join(ASSETS, "llama3-tokenizer", "tokenizer_config.json"), "rb").read()
    d = os.path.join(WORK, "tokdir")
    os.makedirs(d, exist_ok=True)
    open(os.path.join(d, "tokenizer_config.json"), "wb").write(cfg)
    for cut in [0, 1, 10, 1000, 100000, 2000000, 5000000, len(tok) - 2]:
        open(os.path.join(d, "tokenizer.json"), "wb").write(tok[:cut])
        run(["tokenize", "--model", d, "--text", "Hello world 123"])
    for _ in range(15):
        b = bytearray(tok)
        for _ in range(5):
            b[random.randrange(len(b))] = random.choice(b'{}[]",:0123456789abc\\')
        open(os.path.join(d, "tokenizer.json"), "wb").write(bytes(b))
        run(["tokenize", "--model", d, "--text", "Hello world 123 <|eot_id|>", "--parse-special"])


def safetensors_cases():
    src = os.path.join(ROOT, "Tests", "Fixtures", "llama-f16")
    target = os.path.join(WORK, "st")
    for i in range(20):
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(src, target)
        p = os.path.join(target, "model.safetensors")
        b = bytearray(open(p, "rb").read())
        for _ in range(random.randint(1, 6)):
            b[random.randrange(0, min(len(b), 4000))] = random.randrange(256)
        if i % 4 == 0:
            b = b[:random.randrange(len(b))]
        open(p, "wb").write(bytes(b))
        run(["logits", "--model", target, "--tokens", "1,2,3"])
    for _ in range(15):
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(src, target)
        config = json.load(open(os.path.join(target, "config.json")))
        config[random.choice(list(config))] = random.choice([None, -1, 0, 10 ** 12, "x", [], {}, 3.5, True])
        json.dump(config, open(os.path.join(target, "config.json"), "w"))
        run(["generate", "--model", target, "--tokens", "1,2", "--max-tokens", "2"])


def main():
    random.seed(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
    gguf_cases()
    tokenizer_cases()
    safetensors_cases()
    shutil.rmtree(WORK, ignore_errors=True)
    print(f"{count - failures} passed, {failures} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
