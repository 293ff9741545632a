#!/usr/bin/env python3
"""Side-by-side speed comparison: mobilellm vs llama.cpp (and optionally transformers) on the same GGUF, same threads.

    python scripts/bench_vs_llamacpp.py --gguf .cache/assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf \
        [--threads 2] [--prompt-tokens 512] [--gen-tokens 128] [--repetitions 3] \
        [--mobilellm .build/release/mobilellm] [--llama-bench PATH] [--transformers]

Needs, in the Python running it: llama-cpp-python==0.3.36 built natively
(CMAKE_ARGS="-DGGML_NATIVE=ON" pip install llama-cpp-python==0.3.36 diskcache), and for --transformers
torch + transformers + gguf. --llama-bench points at llama.cpp's own C++ llama-bench (built from the
vendored sources of that same package) for the fairer C++ figure.

Each tool measures prefill (one batch of P random tokens in a fresh context) and decode (G single-token steps),
best of R repetitions; tools run in alternating order so that machine noise affects them alike. Prints a table
and the ratios mobilellm / llama.cpp.
"""
import argparse
import json
import random
import subprocess
import sys
import time


def bench_llama_cpp_python(path, threads, prompt_tokens, gen_tokens):
    from llama_cpp import Llama

    llm = Llama(model_path=path, n_threads=threads, n_threads_batch=threads, n_ctx=prompt_tokens + gen_tokens + 8,
                n_batch=prompt_tokens, n_ubatch=prompt_tokens, verbose=False)
    rng = random.Random(0)
    prompt = [rng.randrange(100, llm.n_vocab()) for _ in range(prompt_tokens)]

    def once():
        llm.reset()
        start = time.perf_counter()
        llm.eval(prompt)
        prefill = prompt_tokens / (time.perf_counter() - start)
        start = time.perf_counter()
        for index in range(gen_tokens):
            llm.eval([prompt[index % prompt_tokens]])
        decode = gen_tokens / (time.perf_counter() - start)
        return prefill, decode

    return once


def bench_llama_bench(binary, path, threads, prompt_tokens, gen_tokens):
    def once():
        out = subprocess.run([binary, "-m", path, "-t", str(threads), "-p", str(prompt_tokens), "-n", str(gen_tokens),
                              "-r", "1", "-o", "json"], capture_output=True, text=True, check=True).stdout
        rows = json.loads(out)
        prefill = next(r["avg_ts"] for r in rows if r["n_prompt"] > 0)
        decode = next(r["avg_ts"] for r in rows if r["n_gen"] > 0)
        return prefill, decode

    return once


def bench_mobilellm(binary, path, threads, prompt_tokens, gen_tokens, activations="exact"):
    def once():
        out = subprocess.run([binary, "bench", "--model", path, "--threads", str(threads), "--prompt-tokens",
                              str(prompt_tokens), "--gen-tokens", str(gen_tokens), "--repetitions", "1", "--json",
                              "--activations", activations],
                             capture_output=True, text=True, check=True).stdout
        result = json.loads(out)
        return result["prefill_tok_s"], result["decode_tok_s"]

    return once


def bench_transformers(path, threads, prompt_tokens, gen_tokens):
    import os

    import torch
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(threads)
    model = AutoModelForCausalLM.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path),
                                                 torch_dtype=torch.float32)
    model.eval()
    rng = random.Random(0)
    prompt = torch.tensor([[rng.randrange(100, model.config.vocab_size) for _ in range(prompt_tokens)]])

    def once():
        with torch.no_grad():
            start = time.perf_counter()
            out = model(prompt, use_cache=True)
            prefill = prompt_tokens / (time.perf_counter() - start)
            cache = out.past_key_values
            token = prompt[:, -1:]
            start = time.perf_counter()
            for _ in range(gen_tokens):
                out = model(token, past_key_values=cache, use_cache=True)
                cache = out.past_key_values
                token = out.logits[:, -1:].argmax(-1)
            decode = gen_tokens / (time.perf_counter() - start)
        return prefill, decode

    return once


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gguf", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--prompt-tokens", type=int, default=512)
    parser.add_argument("--gen-tokens", type=int, default=128)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--mobilellm", default=".build/release/mobilellm")
    parser.add_argument("--llama-bench")
    parser.add_argument("--transformers", action="store_true")
    parser.add_argument("--int8", action="store_true", help="also run mobilellm with int8 activations")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    args = parser.parse_args()

    tools = {"mobilellm": bench_mobilellm(args.mobilellm, args.gguf, args.threads, args.prompt_tokens, args.gen_tokens)}
    if args.int8:
        tools["mobilellm int8"] = bench_mobilellm(args.mobilellm, args.gguf, args.threads, args.prompt_tokens,
                                                  args.gen_tokens, "int8")
    try:
        tools["llama.cpp (llama-cpp-python)"] = bench_llama_cpp_python(args.gguf, args.threads, args.prompt_tokens, args.gen_tokens)
    except ImportError as error:
        if not args.llama_bench:
            sys.exit(f"bench_vs_llamacpp: llama-cpp-python is not importable ({error}) and no --llama-bench; see the docstring")
        print(f"bench_vs_llamacpp: llama-cpp-python is not importable ({error}); llama-bench only", file=sys.stderr)
    if args.llama_bench:
        tools["llama.cpp (llama-bench)"] = bench_llama_bench(args.llama_bench, args.gguf, args.threads, args.prompt_tokens, args.gen_tokens)
    if args.transformers:
        tools["transformers (f32, dequantized)"] = bench_transformers(args.gguf, args.threads, args.prompt_tokens, args.gen_tokens)

    best = {name: [0.0, 0.0] for name in tools}
    names = list(tools)
    for repetition in range(args.repetitions):
        order = names if repetition % 2 == 0 else list(reversed(names))
        for name in order:
            prefill, decode = tools[name]()
            best[name][0] = max(best[name][0], prefill)
            best[name][1] = max(best[name][1], decode)
            print(f"  rep {repetition + 1} {name}: prefill {prefill:.1f} tok/s, decode {decode:.1f} tok/s", file=sys.stderr)

    print(f"\n{args.gguf}, {args.threads} threads, prefill {args.prompt_tokens} tokens, decode {args.gen_tokens} tokens, best of {args.repetitions}\n")
    print(f"| {'runtime':34} | prefill tok/s | decode tok/s |")
    print(f"|{'-' * 36}|---------------|--------------|")
    for name in names:
        print(f"| {name:34} | {best[name][0]:13.1f} | {best[name][1]:12.1f} |")
    print()
    for mine in [n for n in names if n.startswith("mobilellm")]:
        for name in names:
            if "llama" in name:
                print(f"{mine} / {name}: prefill {best[mine][0] / best[name][0]:.2f}x, decode {best[mine][1] / best[name][1]:.2f}x")
    if args.json:
        print(json.dumps({name: {"prefill_tok_s": v[0], "decode_tok_s": v[1]} for name, v in best.items()}))


if __name__ == "__main__":
    main()
