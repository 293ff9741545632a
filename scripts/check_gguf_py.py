#!/usr/bin/env python3
"""gguf-py (the `gguf` package of llama.cpp) reads what `mobilellm quantize` writes.

    python3 scripts/check_gguf_py.py [--mobilellm PATH]      # needs: gguf, numpy

For every committed model fixture (Tests/Fixtures: llama4_text, llama, qwen2, qwen3) and every type f32, f16, q8_0, q4_1, q4_0, it
runs `mobilellm quantize --json`, then with gguf-py's GGUFReader checks: the metadata llama.cpp needs (architecture,
sizes, heads, vocabulary, RoPE base), tensor names, types (as the --json summary says) and ggml shapes, data offsets
aligned to general.alignment, and every tensor's values, dequantized by gguf-py, against the safetensors weights
(llama q/k rows permuted into llama.cpp's interleaved layout; qwen2/qwen3 rows as stored, NEOX RoPE): F32 exactly, F16 within f16 rounding, Q8_0/Q4_x within
the block quantization error. Prints one line per file and exits 1 on any failure. scripts/test runs it.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = ["llama4-r1like-bf16-sharded", "llama4-nope-f32", "llama-f16", "llama-bf16-untied",
            "qwen2-f32-tied", "qwen2-bf16-untied", "qwen3-f32-untied", "qwen3-bf16-tied"]
# config.json model_type -> llama.cpp's general.architecture
ARCHITECTURES = {"llama4_text": "llama4", "llama": "llama", "qwen2": "qwen2", "qwen3": "qwen3"}
TYPES = ["f32", "f16", "q8_0", "q4_1", "q4_0"]
# Largest |error| / (largest |weight| of its 32-block) each type may have: half a step for Q8_0 (step amax/127) and
# Q4_1 (step (max-min)/15 <= 2 amax/15), a whole step for Q4_0 (step amax/8; the value opposite the extreme may clamp),
# plus the f16 rounding of the block scales.
TOLERANCE = {"F32": 0.0, "F16": 1e-3, "BF16": 8e-3, "Q8_0": 0.5 / 127 + 1e-3, "Q4_1": 1 / 15 + 2e-3, "Q4_0": 1 / 8 + 2e-3}


def read_safetensors(path):
    """Every tensor of a .safetensors file as float32 numpy arrays (BF16 included, which numpy lacks)."""
    with open(path, "rb") as handle:
        size = int.from_bytes(handle.read(8), "little")
        header = json.loads(handle.read(size))
        data = handle.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw = data[begin:end]
        if info["dtype"] == "BF16":
            values = (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            values = np.frombuffer(raw, dtype={"F16": np.float16, "F32": np.float32}[info["dtype"]]).astype(np.float32)
        out[name] = values.reshape(info["shape"])
    return out


def interleave_rows(matrix, heads):
    """Half-split RoPE rows (x_i, x_{i+d/2}) of each head -> adjacent pairs (x_2i, x_2i+1), as llama.cpp stores q/k."""
    d = matrix.shape[0] // heads
    out = np.empty_like(matrix)
    for h in range(heads):
        block = matrix[h * d:(h + 1) * d]
        out[h * d:(h + 1) * d:2] = block[: d // 2]
        out[h * d + 1:(h + 1) * d:2] = block[d // 2:]
    return out


def hf_name(gguf_name, mlp):
    table = {"attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm", "attn_q": "self_attn.q_proj",
             "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj",
             "attn_q_norm": "self_attn.q_norm", "attn_k_norm": "self_attn.k_norm", "ffn_gate": f"{mlp}.gate_proj", "ffn_up": f"{mlp}.up_proj", "ffn_down": f"{mlp}.down_proj"}
    fixed = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
             "output.weight": "lm_head.weight"}
    if gguf_name in fixed:
        return fixed[gguf_name]
    _, layer, short, suffix = gguf_name.split(".")
    return f"model.layers.{layer}.{table[short]}.{suffix}"


def check(binary, fixture, kind, directory):
    problems = []
    model_dir = os.path.join(ROOT, "Tests", "Fixtures", fixture)
    out = os.path.join(directory, f"{fixture}.{kind}.gguf")
    result = subprocess.run([binary, "quantize", "--model", model_dir, "--out", out, "--type", kind, "--json", "--quiet"],
                            capture_output=True, text=True)
    if result.returncode != 0:
        return [f"mobilellm quantize failed: {result.stderr.strip()}"]
    summary = json.loads(result.stdout)
    with open(os.path.join(model_dir, "config.json")) as handle:
        config = json.load(handle)
    weights = {}
    for name in sorted(os.listdir(model_dir)):
        if name.endswith(".safetensors"):
            weights.update(read_safetensors(os.path.join(model_dir, name)))

    reader = GGUFReader(out)
    fields = {k: v.contents() for k, v in reader.fields.items() if not k.startswith("GGUF.")}
    llama4 = config["model_type"] == "llama4_text"
    arch = ARCHITECTURES[config["model_type"]]
    head_dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    rope_theta = config.get("rope_theta") or config.get("rope_parameters", {}).get("rope_theta")
    expected = {
        "general.architecture": arch, f"{arch}.block_count": config["num_hidden_layers"],
        f"{arch}.embedding_length": config["hidden_size"], f"{arch}.attention.head_count": config["num_attention_heads"],
        f"{arch}.attention.head_count_kv": config["num_key_value_heads"], f"{arch}.vocab_size": config["vocab_size"],
        f"{arch}.feed_forward_length": config["intermediate_size_mlp" if llama4 else "intermediate_size"],
        f"{arch}.context_length": config["max_position_embeddings"], f"{arch}.rope.freq_base": rope_theta,
        f"{arch}.attention.key_length": head_dim, f"{arch}.rope.dimension_count": head_dim,
    }
    if llama4:
        expected["llama4.no_rope_layers"] = config["no_rope_layers"]
        expected["llama4.use_qk_norm"] = config["use_qk_norm"]
        expected["llama4.expert_count"] = 0
    for key, value in expected.items():
        if fields.get(key) != value:
            problems.append(f"{key} = {fields.get(key)!r}, expected {value!r}")
    alignment = fields.get("general.alignment", 32)
    if reader.data_offset % alignment:
        problems.append(f"data section at {reader.data_offset} is not aligned to {alignment}")
    types = {}
    for tensor in reader.tensors:
        types[tensor.tensor_type.name.lower()] = types.get(tensor.tensor_type.name.lower(), 0) + 1
        if tensor.data_offset % alignment:
            problems.append(f"{tensor.name}: data at {tensor.data_offset} is not aligned to {alignment}")
    if types != summary["types"]:
        problems.append(f"tensor types {types} differ from the --json summary {summary['types']}")

    mlp = "feed_forward" if llama4 else "mlp"
    seen = set()
    for tensor in reader.tensors:
        if tensor.name == "rope_freqs.weight":
            continue
        name = hf_name(tensor.name, mlp)
        seen.add(name)
        source = weights[name]
        if arch == "llama" and (".q_proj." in name or ".k_proj." in name):
            heads = config["num_attention_heads"] if ".q_proj." in name else config["num_key_value_heads"]
            source = interleave_rows(source, heads)
        if list(reversed([int(d) for d in tensor.shape])) != list(source.shape):
            problems.append(f"{tensor.name}: ggml shape {list(tensor.shape)} vs {list(source.shape)}")
            continue
        values = dequantize(tensor.data, tensor.tensor_type).reshape(source.shape)
        error = np.abs(values - source)
        if tensor.tensor_type.name == "F32":
            bad = error.max() > 0
        else:
            rows = source.reshape(-1, 32) if source.size % 32 == 0 else source.reshape(1, -1)
            scale = np.abs(rows).max(axis=1, keepdims=True) + 1e-12
            bad = (error.reshape(rows.shape) / scale).max() > TOLERANCE[tensor.tensor_type.name]
        if bad:
            problems.append(f"{tensor.name} ({tensor.tensor_type.name}): max |error| {error.max():.3g}")
    missing = [n for n in weights if n not in seen and not (n == "lm_head.weight" and config.get("tie_word_embeddings"))]
    if missing:
        problems.append(f"weights missing from the file: {missing}")
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mobilellm", default=os.path.join(ROOT, ".build", "debug", "mobilellm"))
    args = parser.parse_args()
    failed = 0
    total = 0
    with tempfile.TemporaryDirectory() as directory:
        for fixture in FIXTURES:
            for kind in TYPES:
                total += 1
                problems = check(args.mobilellm, fixture, kind, directory)
                print(f"{'ok  ' if not problems else 'FAIL'} {fixture} {kind}" + "".join(f"\n     {p}" for p in problems))
                failed += bool(problems)
    print(f"gguf-py: {total - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
