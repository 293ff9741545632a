#!/usr/bin/env python3
"""Writes the fuzzing fixtures and seed corpora under fuzz/ (see fuzz/README.md).

Everything is made by the reference libraries, not by hand:
* tiny models by transformers (random weights, saved with save_pretrained as safetensors): fuzz/fixtures/llama4-tiny
  (the directory the `safetensors` target loads its input into; its weights become the seeds in F32, BF16 and F16)
  and fuzz/fixtures/llama-tiny-sharded (two shards; the `safetensors-index` target fuzzes its index JSON);
* tokenizers by HF `tokenizers` (trained on a few sentences, four pipelines: GPT-2 ByteLevel, Llama-3 Split +
  ignore_merges, SmolLM2 Digits + ByteLevel, Qwen2 Split) -- each checked to load back in `tokenizers`;
* GGUF files: the tiny models converted by `mobilellm quantize` (Q4_0, Q4_1, Q8_0, F16; one carries the r1like
  tokenizer and chat template) and a vocabulary-only file written by gguf-py's GGUFWriter;
* config.json seeds: the tiny configs and every Tests/Fixtures config; encode seeds: strings from
  Tests/Fixtures/tokenizer/corpus.jsonl. Chat template seeds are Tests/Fixtures/templates/sources (read in place).

    /work/refvenv/bin/python scripts/make_fuzz_seeds.py --mobilellm .build/debug/mobilellm
"""
import argparse
import hashlib
import json
import math
import pathlib
import shutil
import subprocess
import tempfile

import gguf
import torch
from safetensors.torch import load_file, save_file
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import Llama4ForCausalLM, Llama4TextConfig, LlamaConfig, LlamaForCausalLM

ROOT = pathlib.Path(__file__).resolve().parent.parent
FUZZ = ROOT / "fuzz"
CORPUS = FUZZ / "corpus"
R1LIKE = ROOT / "Tests/Fixtures/r1like-chat"

LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_REGEX = LLAMA3_REGEX.replace(r"\p{N}{1,3}", r"\p{N}")
SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>"]
TRAINING = [
    "The quick brown fox jumps over the lazy dog. Numbers 12345 and 3.14159, symbols {}[]()<>|=+-*/ and tabs\t.",
    "Hello world! How are you today? I'm fine, you're kind, we'll see, they've gone, it's done.",
    "Unicode: naïve café, 日本語のテキスト, Ελληνικά, русский, emoji 🙂🚀, combining e\u0301.",
    "def main():\n    print('hello')\n    return 0\n\n\n  spaced   out  \r\n",
]


def llama4_config(vocab):
    """A tiny MobileLLM-R1-like llama4_text: one RoPE layer and one NoPE layer, temperature tuning, chunked attention."""
    return Llama4TextConfig(
        vocab_size=vocab, hidden_size=32, intermediate_size=32, intermediate_size_mlp=32, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=8,
        rope_parameters={"rope_type": "default", "rope_theta": 8000000.0}, no_rope_layers=[1, 0], use_qk_norm=True,
        attn_temperature_tuning=True, attn_scale=0.1, floor_scale=4, attention_chunk_size=4, moe_layers=[],
        interleave_moe_layer_step=0, num_local_experts=0, num_experts_per_tok=0, max_position_embeddings=64,
        rms_norm_eps=1e-5, tie_word_embeddings=True, bos_token_id=0, eos_token_id=[1, 2], pad_token_id=None)


def llama_config(vocab):
    """A tiny SmolLM2/Llama-3-like llama with biases, untied output and llama3 RoPE scaling."""
    return LlamaConfig(
        vocab_size=vocab, hidden_size=32, intermediate_size=32, num_hidden_layers=1, num_attention_heads=4,
        num_key_value_heads=2, head_dim=8, attention_bias=True, mlp_bias=True,
        rope_parameters={"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 16},
        max_position_embeddings=64, rms_norm_eps=1e-5, tie_word_embeddings=False, bos_token_id=0, eos_token_id=1,
        pad_token_id=None)


@torch.no_grad()
def save_model(model_class, config, out: pathlib.Path, seed: int, dtype=torch.float32, max_shard_size=None):
    torch.manual_seed(seed)
    model = model_class(config)
    for name, p in sorted(model.named_parameters()):
        p.copy_(torch.randn(p.shape) / math.sqrt(p.shape[-1]) if p.dim() == 2 else 1 + 0.1 * torch.randn(p.shape))
    model = model.to(dtype)
    out.mkdir(parents=True, exist_ok=True)
    kwargs = {"max_shard_size": max_shard_size} if max_shard_size else {}
    model.save_pretrained(out, **kwargs)


def write(path: pathlib.Path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def keep_only(directory: pathlib.Path, names):
    for entry in directory.iterdir():
        if entry.name not in names:
            entry.unlink()


def train_tokenizer(pre_tokenizer, vocab_size=320):
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizer
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(TRAINING * 10, trainer=trainer)
    return tokenizer


def tokenizer_seeds():
    """Four byte-level BPE pipelines the loader implements, plus r1like's own file."""
    out = CORPUS / "tokenizer-json"
    seeds = {"r1like.json": (R1LIKE / "tokenizer.json").read_text()}

    gpt2 = train_tokenizer(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True))
    gpt2.post_processor = processors.ByteLevel(trim_offsets=False)
    seeds["gpt2.json"] = gpt2.to_str()

    llama3 = train_tokenizer(pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]))
    llama3.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A $B:1",
                                      special_tokens=[("<|begin_of_text|>", 0)])])
    document = json.loads(llama3.to_str())
    document["model"]["ignore_merges"] = True
    document["model"]["merges"] = [" ".join(pair) for pair in document["model"]["merges"]]  # the older format
    seeds["llama3.json"] = json.dumps(document, ensure_ascii=False)

    smollm = train_tokenizer(pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]))
    smollm.add_tokens(["<think>", "</think>"])  # non-special added tokens
    seeds["smollm.json"] = smollm.to_str()

    qwen2 = train_tokenizer(pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]))
    seeds["qwen2.json"] = qwen2.to_str()

    for name, text in seeds.items():
        Tokenizer.from_str(text)  # every seed loads in the reference implementation
        write(out / name, text.encode())

    configs = CORPUS / "tokenizer-config"
    configs.mkdir(parents=True, exist_ok=True)
    shutil.copy(R1LIKE / "tokenizer_config.json", configs / "r1like.json")
    base = json.loads((R1LIKE / "tokenizer_config.json").read_text())
    named = dict(base, bos_token={"content": "<|begin_of_text|>", "lstrip": False, "rstrip": False,
                                  "normalized": False, "single_word": False, "__type": "AddedToken"},
                 chat_template=[{"name": "default", "template": base["chat_template"]},
                                {"name": "tool_use", "template": "{{ messages | tojson }}"}])
    write(configs / "named-templates.json", json.dumps(named, indent=2).encode())
    return seeds


def encode_seeds():
    out = CORPUS / "encode"
    out.mkdir(parents=True, exist_ok=True)
    lines = [json.loads(line) for line in (ROOT / "Tests/Fixtures/tokenizer/corpus.jsonl").read_text().split("\n") if line]
    texts = [entry["text"] if isinstance(entry, dict) else entry for entry in lines]
    # Every 50th string (a spread of the categories), plus special-token text and invalid UTF-8.
    chosen = [text.encode() for text in texts[::50]]
    chosen += ["<|begin_of_text|>Hi<|eot_id|> <|eot_id|>x<|start_header_id|>".encode(), b"\xff\xfe\xc3\x28 \xe2\x82 ok"]
    for data in chosen:
        write(out / hashlib.sha1(data).hexdigest()[:16], data)


def vocab_only_gguf(path: pathlib.Path):
    """A vocabulary-only GGUF (as llama.cpp's ggml-vocab-*.gguf files are) of the r1like tokenizer, by gguf-py."""
    document = json.loads((R1LIKE / "tokenizer.json").read_text())
    vocab = document["model"]["vocab"]
    tokens = [""] * len(vocab)
    for token, index in vocab.items():
        tokens[index] = token
    types = [3 if any(a["id"] == i and a["special"] for a in document["added_tokens"]) else 1 for i in range(len(tokens))]
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges([" ".join(pair) for pair in document["model"]["merges"]])
    writer.add_bos_token_id(0)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(True)
    writer.add_chat_template(json.loads((R1LIKE / "tokenizer_config.json").read_text())["chat_template"])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mobilellm", required=True, help="the mobilellm CLI (for `quantize`)")
    args = parser.parse_args()
    if CORPUS.exists():
        shutil.rmtree(CORPUS)
    fixtures = FUZZ / "fixtures"
    if fixtures.exists():
        shutil.rmtree(fixtures)

    with tempfile.TemporaryDirectory() as scratch:
        scratch = pathlib.Path(scratch)

        # safetensors: a tiny llama4_text; the fixture keeps only its configs, the weights become the seeds.
        llama4 = fixtures / "llama4-tiny"
        save_model(Llama4ForCausalLM, llama4_config(32), llama4, seed=1)
        weights = load_file(llama4 / "model.safetensors")
        for dtype, name in [(torch.float32, "f32"), (torch.bfloat16, "bf16"), (torch.float16, "f16")]:
            save_file({k: v.to(dtype).contiguous() for k, v in weights.items()}, scratch / f"{name}.safetensors",
                      metadata={"format": "pt"})
            write(CORPUS / "safetensors" / f"llama4-tiny-{name}.safetensors", (scratch / f"{name}.safetensors").read_bytes())
        shutil.copytree(llama4, scratch / "llama4-tiny")
        keep_only(llama4, {"config.json", "generation_config.json"})

        # safetensors-index: a tiny llama in two shards; the index is the fuzzed input.
        sharded = fixtures / "llama-tiny-sharded"
        save_model(LlamaForCausalLM, llama_config(32), sharded, seed=2, dtype=torch.bfloat16, max_shard_size="8KB")
        index = sharded / "model.safetensors.index.json"
        shards = sorted(p.name for p in sharded.glob("model-*.safetensors"))
        assert len(shards) >= 2, shards
        write(CORPUS / "safetensors-index" / "llama-tiny-sharded.json", index.read_bytes())
        shutil.copytree(sharded, scratch / "llama-tiny-sharded")
        index.unlink()

        # GGUF: the tiny models through `mobilellm quantize`, one with the r1like tokenizer, and a vocabulary-only file.
        r1 = scratch / "llama4-r1like-tokenizer"
        save_model(Llama4ForCausalLM, llama4_config(384), r1, seed=3)
        for name in ["tokenizer.json", "tokenizer_config.json"]:
            shutil.copy(R1LIKE / name, r1 / name)
        conversions = [("llama4-tiny", "q4_0"), ("llama4-tiny", "q8_0"), ("llama-tiny-sharded", "q4_1"),
                       ("llama-tiny-sharded", "f16"), ("llama4-r1like-tokenizer", "q4_0")]
        for model, kind in conversions:
            target = CORPUS / "gguf" / f"{model}-{kind}.gguf"
            target.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([args.mobilellm, "quantize", "--model", str(scratch / model), "--out", str(target),
                            "--type", kind, "--quiet"], check=True)
            gguf.GGUFReader(str(target))  # gguf-py reads every seed
        vocab_only_gguf(CORPUS / "gguf" / "r1like-vocab-only.gguf")
        gguf.GGUFReader(str(CORPUS / "gguf" / "r1like-vocab-only.gguf"))

    # config.json seeds.
    for config in sorted(ROOT.glob("Tests/Fixtures/*/config.json")) + [llama4 / "config.json", sharded / "config.json"]:
        write(CORPUS / "config" / f"{config.parent.name}.json", config.read_bytes())

    tokenizer_seeds()
    encode_seeds()
    for directory in sorted(CORPUS.iterdir()):
        files = list(directory.iterdir())
        print(f"{directory.name}: {len(files)} seeds, {sum(f.stat().st_size for f in files)} bytes")


if __name__ == "__main__":
    main()
