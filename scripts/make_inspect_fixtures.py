#!/usr/bin/env python3
"""Writes Tests/Fixtures/inspect/expected.json: what `mobilellm inspect --json --tensors` must report for the model
fixtures and the SmolLM2 GGUF asset, read with the reference tools rather than with mobilellm's own readers:
transformers' AutoConfig (layers, heads, head_dim, the dense MLP width, which layers use RoPE, tied embeddings) and
AutoTokenizer (vocabulary, BOS/EOS, chat template), the safetensors headers (tensor names, dtypes, shapes, byte
ranges) and tokenizer.json, and gguf-py's GGUFReader for the GGUF file (metadata, tensor types, shapes in ggml
order, byte sizes).

Run with the reference venv (scripts/requirements-reference.txt) after scripts/fetch_assets.py:
    /path/to/venv/bin/python scripts/make_inspect_fixtures.py
"""
import json
import os
import pathlib
import struct

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "Tests/Fixtures/inspect/expected.json"
ASSETS = pathlib.Path(os.environ.get("MOBILELLM_ASSETS") or ROOT / ".cache/assets")
DIRECTORIES = ["Tests/Fixtures/llama4-r1like-bf16-sharded", "Tests/Fixtures/llama4-nope-f32", "Tests/Fixtures/llama-f16",
               "Tests/Fixtures/llama-bf16-untied", "Tests/Fixtures/r1like-chat"]
GGUF = "smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"  # relative to the assets folder
DTYPE_BYTES = {"F32": 4, "F16": 2, "BF16": 2}


def safetensors_header(path):
    with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
    header.pop("__metadata__", None)
    return header


def by_type(tensors):
    groups = {}
    for t in tensors:
        g = groups.setdefault(t["type"], {"type": t["type"], "count": 0, "parameters": 0, "bytes": 0})
        g["count"] += 1
        g["parameters"] += prod(t["shape"])
        g["bytes"] += t["bytes"]
    return [groups[k] for k in sorted(groups)]


def prod(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def first_line(text):
    return text.split("\n")[0]


def directory(relative):
    from transformers import AutoConfig, AutoTokenizer

    path = ROOT / relative
    config = AutoConfig.from_pretrained(path)
    files = sorted({str(f) for f in path.glob("*.safetensors")})
    tensors = []
    for file in files:
        for name, info in safetensors_header(file).items():
            begin, end = info["data_offsets"]
            assert end - begin == prod(info["shape"]) * DTYPE_BYTES[info["dtype"]]
            tensors.append({"name": name, "shape": info["shape"], "type": info["dtype"], "bytes": end - begin})
    tensors.sort(key=lambda t: t["name"])
    text = config.get_text_config()
    if text.model_type == "llama4_text":
        # Dense Llama-4 layers use intermediate_size_mlp (Llama4TextMLP); no_rope_layers[i] == 1 means RoPE.
        intermediate = text.intermediate_size_mlp
        rope = "".join("R" if flag else "N" for flag in text.no_rope_layers)
    else:
        intermediate = text.intermediate_size
        rope = "R" * text.num_hidden_layers
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    report = {
        "format": "safetensors",
        "architecture": config.architectures[0],
        "model_type": text.model_type,
        "config": {
            "layers": text.num_hidden_layers, "heads": text.num_attention_heads, "kv_heads": text.num_key_value_heads,
            "head_dim": head_dim, "hidden_size": text.hidden_size, "intermediate_size": intermediate,
            "vocab_size": text.vocab_size, "context_length": text.max_position_embeddings,
            "rope_theta": text.rope_theta if hasattr(text, "rope_theta") else text.rope_parameters["rope_theta"],
            "rope_layers": rope, "nope_layers": [i for i, c in enumerate(rope) if c == "N"],
            "tied_embeddings": bool(config.tie_word_embeddings),
        },
        "parameters": sum(prod(t["shape"]) for t in tensors),
        "file_bytes": sum(os.path.getsize(f) for f in files),
        "tensor_types": by_type(tensors),
        "tensors": tensors,
        "tokenizer": None,
        "chat_template": {"present": False, "source": None, "length": None, "first_line": None},
    }
    if (path / "tokenizer.json").exists():
        tokenizer = AutoTokenizer.from_pretrained(path)
        document = json.loads((path / "tokenizer.json").read_text())
        report["tokenizer"] = {
            "vocab_size": len(tokenizer), "model": document["model"]["type"],
            "pre_tokenizer": pre_tokenizer_name(document.get("pre_tokenizer")),
            "bos_token": tokenizer.bos_token, "bos_token_id": tokenizer.bos_token_id,
            "eos_token": tokenizer.eos_token, "eos_token_id": tokenizer.eos_token_id,
        }
        if tokenizer.chat_template:
            report["chat_template"] = {"present": True, "length": len(tokenizer.chat_template),
                                       "first_line": first_line(tokenizer.chat_template)}
    return report


def pre_tokenizer_name(node):
    if node is None:
        return None
    if node["type"] == "Sequence":
        return "Sequence[" + ", ".join(pre_tokenizer_name(n) for n in node["pretokenizers"]) + "]"
    return node["type"]


def gguf_file(relative):
    from gguf import GGUFReader

    path = ASSETS / relative
    reader = GGUFReader(path)

    def field(key):
        f = reader.fields.get(key)
        if f is None:
            return None
        value = f.contents()
        return value

    arch = field("general.architecture")
    tensors = sorted(({"name": t.name, "shape": [int(d) for d in t.shape], "type": t.tensor_type.name,
                       "bytes": int(t.n_bytes)} for t in reader.tensors), key=lambda t: t["name"])
    names = {t["name"] for t in tensors}
    heads = field(f"{arch}.attention.head_count")
    hidden = field(f"{arch}.embedding_length")
    tokens = field("tokenizer.ggml.tokens")
    bos, eos = field("tokenizer.ggml.bos_token_id"), field("tokenizer.ggml.eos_token_id")
    template = field("tokenizer.chat_template")
    layers = field(f"{arch}.block_count")
    return {
        "format": "gguf",
        "architecture": arch,
        "config": {
            "layers": layers, "heads": heads, "kv_heads": field(f"{arch}.attention.head_count_kv"),
            "head_dim": field(f"{arch}.attention.key_length") or hidden // heads, "hidden_size": hidden,
            "intermediate_size": field(f"{arch}.feed_forward_length"), "vocab_size": len(tokens),
            "context_length": field(f"{arch}.context_length"), "rope_theta": field(f"{arch}.rope.freq_base"),
            "rope_layers": "R" * layers, "nope_layers": [],
            "tied_embeddings": "output.weight" not in names,
        },
        "parameters": sum(prod(t["shape"]) for t in tensors),
        "file_bytes": os.path.getsize(path),
        "tensor_types": by_type(tensors),
        "tensors": tensors,
        "tokenizer": {
            "vocab_size": len(tokens), "model": field("tokenizer.ggml.model"), "pre_tokenizer": field("tokenizer.ggml.pre"),
            "bos_token": tokens[bos], "bos_token_id": bos, "eos_token": tokens[eos], "eos_token_id": eos,
        },
        "chat_template": {"present": True, "length": len(template), "first_line": first_line(template)},
    }


def main():
    expected = {"directories": {name: directory(name) for name in DIRECTORIES},
                "assets": {GGUF: gguf_file(GGUF)}}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(expected, indent=1) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
