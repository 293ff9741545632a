#!/usr/bin/env python3
"""Acceptance check: the mobilellm CLI against transformers on models of shapes the fixtures do not have.

    /path/to/refvenv/bin/python scripts/check_cli_vs_transformers.py --mobilellm .build/release/mobilellm [--keep DIR]
    /path/to/refvenv/bin/python scripts/check_cli_vs_transformers.py --self-test

Needs torch, transformers and tokenizers (scripts/requirements-reference.txt); CI never runs it.

It builds, in a temporary directory (or DIR with --keep, which is then left in place), small random models with the
same recipe as scripts/make_fixtures.py but other shapes: 6 query / 2 KV heads with head_dim 24 and 4 layers,
hidden_size != heads * head_dim, BF16 in two shards, a llama4_text variant with NoPE layers + temperature tuning +
chunked attention, a llama with llama3 rope scaling in F16, an MHA llama in two BF16 shards, a qwen2 with q/k/v
biases, 6/2 heads of head_dim 20 (implicit: hidden/heads) in two BF16 shards, and a qwen3 with 6/2 heads of explicit
head_dim 24 != hidden/heads, weighted q_norm/k_norm before RoPE, untied, F16. Each directory also gets
a byte-level BPE tokenizer.json covering the whole vocabulary (the CLI is driven with token ids; the tokenizer
only lets `generate` produce its "text" field). References are transformers float32 eager logits from a fresh
`from_pretrained` of the saved files. It then runs

    BINARY logits   --model DIR --tokens 1,2,3 --all-positions   -> {"logits": [[vocab floats], ...]}  (one row per position)
    BINARY logits   --model DIR --tokens 1,2,3                   -> {"logits": [[vocab floats]]}       (last position only)
    BINARY generate --model DIR --tokens 1,2,3 --max-tokens N --json -> {"tokens": [generated ids], "text": ...}

With --through-gguf every case runs a second time on the GGUF that `BINARY quantize --type f32` writes from the
directory (the same references). It requires max |logit difference| <= --tolerance (default 1e-3), exactly one row without --all-positions, and a
greedy continuation identical to transformers' (prompts are chosen so the top1-top2 gap along the continuation is
comfortable and no end-of-sequence id is produced). Exit status 0 only if every check passes.

--self-test runs the whole check against a built-in stand-in CLI written in plain numpy from the documented semantics
(interleaved RoPE + weightless QK norm after RoPE on RoPE layers, temperature tuning on NoPE layers, chunked
attention on RoPE layers, half-split RoPE + llama3 scaling for llama, q/k/v biases for qwen2, weighted per-head
q_norm/k_norm before half-split RoPE for qwen3) and expects it to pass, then against a
deliberately wrong stand-in (half-split RoPE for llama4) and expects it to fail.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent


# --------------------------------------------------------------------------------------------------------------
# Model definitions (shapes deliberately different from Tests/Fixtures)
# --------------------------------------------------------------------------------------------------------------

MODELS = [
    {
        "name": "llama4-r1like-6h-bf16-sharded",
        "family": "llama4",
        "seed": 7101,
        "dtype": "bfloat16",
        "shards": 2,
        "config_style": "r1",
        "embed_std": 0.5,
        "gains": {"q_proj": 2.0, "k_proj": 2.0, "o_proj": 2.0, "down_proj": 2.0},
        "config": dict(
            vocab_size=400, hidden_size=128, intermediate_size=256, intermediate_size_mlp=200,
            num_hidden_layers=4, num_attention_heads=6, num_key_value_heads=2, head_dim=24,
            rope_parameters={"rope_type": "default", "rope_theta": 8000000.0},
            no_rope_layers=[1, 1, 1, 1], use_qk_norm=True, attn_temperature_tuning=False, attn_scale=0.1,
            floor_scale=8192, attention_chunk_size=8192, moe_layers=[], interleave_moe_layer_step=0,
            num_local_experts=0, num_experts_per_tok=0, max_position_embeddings=32768, rms_norm_eps=1e-5,
            tie_word_embeddings=True, bos_token_id=0, eos_token_id=[1, 2, 3], pad_token_id=None,
        ),
    },
    {
        "name": "llama4-nope-6h-bf16",
        "family": "llama4",
        "seed": 7202,
        "dtype": "bfloat16",
        "shards": 1,
        "config_style": "native",
        "embed_std": 0.3,
        "gains": {"q_proj": 1.5, "k_proj": 1.5, "o_proj": 2.0, "down_proj": 2.0, "lm_head": 2.0},
        "config": dict(
            vocab_size=400, hidden_size=96, intermediate_size=192, intermediate_size_mlp=192,
            num_hidden_layers=4, num_attention_heads=6, num_key_value_heads=2, head_dim=24,
            rope_parameters={"rope_type": "default", "rope_theta": 50000.0},
            no_rope_layers=[0, 1, 1, 0], use_qk_norm=True, attn_temperature_tuning=True, attn_scale=0.8,
            floor_scale=3, attention_chunk_size=12, moe_layers=[], interleave_moe_layer_step=0,
            num_local_experts=0, max_position_embeddings=4096, rms_norm_eps=1e-5,
            tie_word_embeddings=False, bos_token_id=0, eos_token_id=[1, 2], pad_token_id=None,
        ),
    },
    {
        "name": "llama-6h-f16",
        "family": "llama",
        "seed": 7303,
        "dtype": "float16",
        "shards": 1,
        "config_style": "native",
        "embed_std": 0.5,
        "gains": {"q_proj": 2.0, "k_proj": 2.0, "o_proj": 2.0, "down_proj": 2.0},
        "config": dict(
            vocab_size=400, hidden_size=120, intermediate_size=224, num_hidden_layers=4,
            num_attention_heads=6, num_key_value_heads=2, head_dim=24,
            rope_parameters={"rope_type": "llama3", "rope_theta": 20000.0, "factor": 4.0, "low_freq_factor": 1.0,
                             "high_freq_factor": 4.0, "original_max_position_embeddings": 48},
            max_position_embeddings=2048, rms_norm_eps=1e-5, tie_word_embeddings=True,
            bos_token_id=0, eos_token_id=1, pad_token_id=None,
        ),
    },
    {
        "name": "llama-mha-bf16-sharded",
        "family": "llama",
        "seed": 7404,
        "dtype": "bfloat16",
        "shards": 2,
        "config_style": "legacy_llama",
        "embed_std": 0.3,
        "gains": {"q_proj": 2.0, "k_proj": 2.0, "o_proj": 2.0, "down_proj": 2.0, "lm_head": 2.0},
        "config": dict(
            vocab_size=400, hidden_size=80, intermediate_size=160, num_hidden_layers=4,
            num_attention_heads=4, num_key_value_heads=4, head_dim=24,
            rope_parameters={"rope_type": "default", "rope_theta": 100000.0},
            max_position_embeddings=2048, rms_norm_eps=1e-5, tie_word_embeddings=False,
            bos_token_id=0, eos_token_id=[1, 2], pad_token_id=None,
        ),
    },
    {
        "name": "qwen2-6h-bias-bf16-sharded",
        "family": "qwen2",
        "seed": 7505,
        "dtype": "bfloat16",
        "shards": 2,
        "config_style": "native",
        "embed_std": 0.3,
        "bias_std": 0.5,
        "gains": {"q_proj": 3.0, "k_proj": 3.0, "o_proj": 3.0, "down_proj": 3.0},
        "config": dict(
            vocab_size=400, hidden_size=120, intermediate_size=256, num_hidden_layers=4,
            num_attention_heads=6, num_key_value_heads=2,
            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
            max_position_embeddings=4096, rms_norm_eps=1e-6, tie_word_embeddings=True, use_sliding_window=False,
            bos_token_id=0, eos_token_id=[1, 2], pad_token_id=None,
        ),
    },
    {
        "name": "qwen3-6h-hd24-f16",
        "family": "qwen3",
        "seed": 7606,
        "dtype": "float16",
        "shards": 1,
        "config_style": "native",
        "embed_std": 0.3,
        "qk_norm_std": 0.6,
        "gains": {"q_proj": 1.5, "k_proj": 1.5, "o_proj": 2.0, "down_proj": 2.0, "lm_head": 2.0},
        "config": dict(
            vocab_size=400, hidden_size=96, intermediate_size=192, num_hidden_layers=4,
            num_attention_heads=6, num_key_value_heads=2, head_dim=24, attention_bias=False,
            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
            max_position_embeddings=4096, rms_norm_eps=1e-6, tie_word_embeddings=False, use_sliding_window=False,
            bos_token_id=0, eos_token_id=[1, 2], pad_token_id=None,
        ),
    },
]

SEQUENCE_LENGTHS = [40, 5, 1]
PROMPT_LENGTH = 8
PROMPT_CANDIDATES = 8
GREEDY_TOKENS = 20
MIN_MARGIN = 5e-2
SPECIAL_TOKENS = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|eom_id|>"]


# --------------------------------------------------------------------------------------------------------------
# Building the models and transformers references
# --------------------------------------------------------------------------------------------------------------


def write_tokenizer(out_dir: Path, vocab_size: int, bos: int, eos: list[int]) -> None:
    """A byte-level BPE tokenizer whose vocabulary is exactly vocab_size ids (specials, 256 bytes, merges)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for ch in alphabet:
        vocab[ch] = len(vocab)
    merges = []
    letters = "etaoinshrdlucmfwypvbgk"
    firsts = ["\u0120"] + list(letters)  # "Ġ" is the byte-level space
    for a in firsts:
        for b in letters:
            if len(vocab) >= vocab_size:
                break
            if a + b not in vocab:
                merges.append((a, b))
                vocab[a + b] = len(vocab)
    if len(vocab) != vocab_size:
        raise SystemExit(f"tokenizer: could not fill a vocabulary of {vocab_size}")
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    tok.save(str(out_dir / "tokenizer.json"))
    tcfg = {
        "bos_token": SPECIAL_TOKENS[bos],
        "eos_token": SPECIAL_TOKENS[eos[0]],
        "model_max_length": 4096,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(tcfg, indent=2) + "\n")


def build_models(root: Path, only=None) -> list[dict]:
    import torch

    sys.path.insert(0, str(SCRIPTS))
    import make_fixtures as mf

    cases = []
    for spec in MODELS:
        if only and spec["name"] not in only:
            continue
        out_dir = root / spec["name"]
        model = mf.save_fixture(spec, out_dir)  # fresh float32 eager from_pretrained of the saved files
        c = spec["config"]
        eos = mf.eos_ids(spec)
        write_tokenizer(out_dir, c["vocab_size"], c["bos_token_id"], eos)
        avoid = set(eos) | {c["bos_token_id"]}
        gen = torch.Generator().manual_seed(spec["seed"] + 5)
        sequences = []
        for n in SEQUENCE_LENGTHS:
            toks = [c["bos_token_id"]] + mf.random_tokens(gen, n - 1, c["vocab_size"], avoid) if n > 1 else \
                mf.random_tokens(gen, 1, c["vocab_size"], avoid)
            sequences.append({"tokens": toks, "logits": mf.full_logits(model, toks).tolist()})
        best = None
        for _ in range(PROMPT_CANDIDATES):
            prompt = [c["bos_token_id"]] + mf.random_tokens(gen, PROMPT_LENGTH - 1, c["vocab_size"], avoid)
            cont, margin = mf.greedy_pure(model, prompt, GREEDY_TOKENS)
            if any(t in eos for t in cont):
                continue
            if best is None or margin > best[2]:
                best = (prompt, cont, margin)
        if best is None or best[2] < MIN_MARGIN:
            raise SystemExit(f"{spec['name']}: no greedy prompt with margin >= {MIN_MARGIN} and no EOS")
        prompt, cont, margin = best
        with_cache = mf.greedy_generate(model, prompt, GREEDY_TOKENS, eos)
        if with_cache != cont:
            raise SystemExit(f"{spec['name']}: transformers generate() {with_cache} != full-forward greedy {cont}")
        from tokenizers import Tokenizer

        text = Tokenizer.from_file(str(out_dir / "tokenizer.json")).decode(cont, skip_special_tokens=False)
        cases.append({"name": spec["name"], "dir": out_dir, "vocab": c["vocab_size"], "sequences": sequences,
                      "prompt": prompt, "continuation": cont, "margin": margin, "text": text})
        del model
    return cases


# --------------------------------------------------------------------------------------------------------------
# Running the CLI
# --------------------------------------------------------------------------------------------------------------


class CLIError(Exception):
    pass


def parse_json_output(stdout: str):
    try:
        return json.loads(stdout)
    except json.JSONDecodeError:
        pass
    # Tolerate log lines before the JSON document.
    dec = json.JSONDecoder()
    for i, ch in enumerate(stdout):
        if ch == "{" and (i == 0 or stdout[i - 1] == "\n"):
            try:
                obj, _ = dec.raw_decode(stdout[i:])
                return obj
            except json.JSONDecodeError:
                continue
    raise CLIError(f"stdout is not JSON: {stdout[:300]!r}")


def run_cli(cmd_prefix: list[str], args: list[str], timeout: float):
    cmd = cmd_prefix + args
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise CLIError(f"timed out after {timeout:.0f}s: {' '.join(cmd)}")
    except OSError as e:
        raise CLIError(f"cannot run {cmd[0]}: {e}")
    if proc.returncode != 0:
        raise CLIError(f"exit status {proc.returncode}: {' '.join(cmd)}\n  stderr: {proc.stderr.strip()[:2000]}")
    return parse_json_output(proc.stdout)


def check_case(cmd_prefix: list[str], case: dict, tol: float, timeout: float) -> list[tuple[str, bool, str]]:
    """Returns (check name, passed, detail) rows."""
    import numpy as np

    results = []
    model = str(case["dir"])

    def tok_arg(toks):
        return ",".join(str(t) for t in toks)

    for seq in case["sequences"]:
        toks, ref = seq["tokens"], np.asarray(seq["logits"], dtype=np.float64)
        label = f"logits --all-positions ({len(toks)} tokens)"
        try:
            out = run_cli(cmd_prefix, ["logits", "--model", model, "--tokens", tok_arg(toks), "--all-positions"],
                          timeout)
            got = np.asarray(out["logits"], dtype=np.float64)
            if got.shape != ref.shape:
                results.append((label, False, f"shape {got.shape}, expected {ref.shape}"))
            else:
                diff = float(np.abs(got - ref).max())
                results.append((label, diff <= tol, f"max |diff| {diff:.3e}"))
        except (CLIError, KeyError, ValueError, TypeError) as e:
            results.append((label, False, f"{type(e).__name__}: {e}"))

    seq = case["sequences"][0]
    toks, ref = seq["tokens"], np.asarray(seq["logits"][-1], dtype=np.float64)
    label = f"logits last position only ({len(toks)} tokens)"
    try:
        out = run_cli(cmd_prefix, ["logits", "--model", model, "--tokens", tok_arg(toks)], timeout)
        got = np.asarray(out["logits"], dtype=np.float64)
        if got.ndim != 2 or got.shape[0] != 1:
            results.append((label, False, f"expected exactly one row, got shape {got.shape}"))
        elif got.shape[1] != ref.shape[0]:
            results.append((label, False, f"row has {got.shape[1]} values, expected {ref.shape[0]}"))
        else:
            diff = float(np.abs(got[0] - ref).max())
            results.append((label, diff <= tol, f"1 row, max |diff| {diff:.3e}"))
    except (CLIError, KeyError, ValueError, TypeError) as e:
        results.append((label, False, f"{type(e).__name__}: {e}"))

    label = f"generate greedy ({len(case['prompt'])} prompt + {GREEDY_TOKENS} tokens)"
    try:
        out = run_cli(cmd_prefix, ["generate", "--model", model, "--tokens", tok_arg(case["prompt"]),
                                   "--max-tokens", str(GREEDY_TOKENS), "--json"], timeout)
        got = [int(t) for t in out["tokens"]]
        ok = got == case["continuation"]
        detail = "identical" if ok else f"got {got}\n      expected {case['continuation']}"
        detail += f" (reference min top1-top2 gap {case['margin']:.3g})"
        if ok and out.get("text") is not None and out.get("text") != case["text"]:
            detail += f"; note: text {out.get('text')!r} != tokenizers decode {case['text']!r} (not checked)"
        results.append((label, ok, detail))
    except (CLIError, KeyError, ValueError, TypeError) as e:
        results.append((label, False, f"{type(e).__name__}: {e}"))
    return results


def run_checks(cmd_prefix: list[str], cases: list[dict], tol: float, timeout: float, quiet=False) -> tuple[int, int]:
    passed = failed = 0
    for case in cases:
        if not quiet:
            print(f"\n{case['name']}  ({case['dir']})")
        for label, ok, detail in check_case(cmd_prefix, case, tol, timeout):
            passed += ok
            failed += not ok
            if not quiet:
                print(f"  [{'PASS' if ok else 'FAIL'}] {label}: {detail}")
    return passed, failed


# --------------------------------------------------------------------------------------------------------------
# Self-test: a stand-in CLI in plain numpy, written from the documented semantics (not from transformers)
# --------------------------------------------------------------------------------------------------------------


def _np_load(model_dir: Path):
    import numpy as np
    from safetensors import safe_open

    cfg = json.loads((model_dir / "config.json").read_text())
    weights = {}
    for f in sorted(model_dir.glob("*.safetensors")):
        with safe_open(f, "pt") as sf:  # torch only to read BF16; the maths below is numpy
            for k in sf.keys():
                weights[k] = sf.get_tensor(k).float().numpy().astype(np.float64)
    return cfg, weights


def _np_forward(cfg: dict, w: dict, toks: list[int], wrong_rope: bool = False):
    import numpy as np

    is_l4 = cfg["model_type"] == "llama4_text"
    is_qwen3 = cfg["model_type"] == "qwen3"
    n, nh, nkv = len(toks), cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim") or cfg["hidden_size"] // nh
    eps = cfg["rms_norm_eps"]

    def rms(x, weight=None):
        y = x / np.sqrt((x * x).mean(-1, keepdims=True) + eps)
        return y * weight if weight is not None else y

    rp = cfg.get("rope_parameters") or {**(cfg.get("rope_scaling") or {}), "rope_theta": cfg["rope_theta"]}
    rope_type = rp.get("rope_type", rp.get("type", "default"))
    inv = 1.0 / (rp["rope_theta"] ** (np.arange(0, hd, 2) / hd))
    if rope_type == "llama3":
        fac, lo, hi = rp["factor"], rp["low_freq_factor"], rp["high_freq_factor"]
        old = rp["original_max_position_embeddings"]
        wavelen = 2 * math.pi / inv
        scaled = np.where(wavelen > old / lo, inv / fac, inv)
        smooth = (old / wavelen - lo) / (hi - lo)
        mid = (wavelen >= old / hi) & (wavelen <= old / lo)
        inv = np.where(mid, (1 - smooth) * scaled / fac + smooth * scaled, scaled)
    elif rope_type != "default":
        raise SystemExit(f"stand-in CLI: rope type {rope_type} not supported")
    pos = np.arange(n, dtype=np.float64)
    ang = pos[:, None] * inv[None, :]
    cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]

    def rope(x):
        interleaved = is_l4 != wrong_rope
        if interleaved:  # pairs (x0, x1), (x2, x3), ...
            a, b = x[..., 0::2], x[..., 1::2]
            out = np.empty_like(x)
            out[..., 0::2], out[..., 1::2] = a * cos - b * sin, a * sin + b * cos
            return out
        h = hd // 2  # pairs (x_i, x_{i+d/2})
        a, b = x[..., :h], x[..., h:]
        return np.concatenate([a * cos - b * sin, a * sin + b * cos], -1)

    x = w["model.embed_tokens.weight"][toks]
    idx = np.arange(n)
    for li in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{li}."
        h = rms(x, w[p + "input_layernorm.weight"])
        def proj(name, heads):
            y = h @ w[p + f"self_attn.{name}.weight"].T + w.get(p + f"self_attn.{name}.bias", 0.0)
            return y.reshape(n, heads, hd)

        q, k, v = proj("q_proj", nh), proj("k_proj", nkv), proj("v_proj", nkv)
        if is_qwen3:  # weighted per-head norms before RoPE
            q, k = rms(q, w[p + "self_attn.q_norm.weight"]), rms(k, w[p + "self_attn.k_norm.weight"])
        visible = idx[None, :] <= idx[:, None]
        uses_rope = cfg["no_rope_layers"][li] == 1 if is_l4 else True
        if uses_rope:
            q, k = rope(q), rope(k)
            if is_l4 and cfg.get("use_qk_norm", False):
                q, k = rms(q), rms(k)
            if is_l4 and cfg.get("attention_chunk_size"):
                chunk = cfg["attention_chunk_size"]
                visible = visible & (idx[None, :] // chunk == idx[:, None] // chunk)
        elif cfg.get("attn_temperature_tuning", False):
            scale = np.log1p(np.floor((pos + 1) / cfg["floor_scale"])) * cfg["attn_scale"] + 1
            q = q * scale[:, None, None]
        att = np.zeros((n, nh, hd))
        for hh in range(nh):
            kv = hh // (nh // nkv)
            s = q[:, hh] @ k[:, kv].T / math.sqrt(hd)
            s = np.where(visible, s, -np.inf)
            s = np.exp(s - s.max(-1, keepdims=True))
            att[:, hh] = (s / s.sum(-1, keepdims=True)) @ v[:, kv]
        x = x + att.reshape(n, nh * hd) @ w[p + "self_attn.o_proj.weight"].T
        h = rms(x, w[p + "post_attention_layernorm.weight"])
        mp = p + ("feed_forward." if is_l4 else "mlp.")
        g, u = h @ w[mp + "gate_proj.weight"].T, h @ w[mp + "up_proj.weight"].T
        x = x + (g / (1 + np.exp(-g)) * u) @ w[mp + "down_proj.weight"].T
    x = rms(x, w["model.norm.weight"])
    return x @ w.get("lm_head.weight", w["model.embed_tokens.weight"]).T


def fake_cli(argv: list[str]) -> int:
    """`check_cli_vs_transformers.py fake-cli [--wrong-rope] {logits,generate} ...`: the CLI contract in numpy."""
    ap = argparse.ArgumentParser(prog="fake-cli")
    ap.add_argument("--wrong-rope", action="store_true")
    ap.add_argument("command", choices=["logits", "generate"])
    ap.add_argument("--model", required=True, type=Path)
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--all-positions", action="store_true")
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    cfg, w = _np_load(a.model)
    toks = [int(t) for t in a.tokens.split(",")]
    if a.command == "logits":
        lg = _np_forward(cfg, w, toks, a.wrong_rope)
        rows = lg if a.all_positions else lg[-1:]
        print(json.dumps({"logits": [[float(v) for v in r] for r in rows]}))
        return 0
    gen_cfg = json.loads((a.model / "generation_config.json").read_text())
    eos = gen_cfg.get("eos_token_id")
    eos = set(eos if isinstance(eos, list) else [eos])
    out = []
    for _ in range(a.max_tokens):
        t = int(_np_forward(cfg, w, toks + out, a.wrong_rope)[-1].argmax())
        out.append(t)
        if t in eos:
            break
    print(json.dumps({"tokens": out, "text": None}))
    return 0


def self_test(cases: list[dict], tol: float, timeout: float) -> int:
    me = [sys.executable, str(Path(__file__).resolve()), "fake-cli"]
    print("self-test 1: numpy stand-in CLI (documented semantics) must pass")
    p, f = run_checks(me, cases, tol, timeout)
    ok1 = f == 0 and p > 0
    print("\nself-test 2: stand-in with the wrong RoPE pairing must fail")
    p2, f2 = run_checks(me + ["--wrong-rope"], cases, tol, timeout, quiet=True)
    ok2 = f2 > 0
    print(f"  wrong-RoPE stand-in: {p2} passed, {f2} failed -> {'detected' if ok2 else 'NOT DETECTED'}")
    print(f"\nself-test {'passed' if ok1 and ok2 else 'FAILED'}")
    return 0 if ok1 and ok2 else 1


# --------------------------------------------------------------------------------------------------------------


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "fake-cli":
        return fake_cli(sys.argv[2:])
    ap = argparse.ArgumentParser(description="Compare the mobilellm CLI with transformers on small random models.")
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--mobilellm", type=Path, help="path to the mobilellm CLI binary")
    g.add_argument("--self-test", action="store_true", help="check the checker against a numpy stand-in CLI")
    ap.add_argument("--keep", type=Path, help="build the models in DIR and keep them (DIR is emptied first)")
    ap.add_argument("--tolerance", type=float, default=1e-3, help="max abs logit difference (default 1e-3)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per CLI invocation (default 600)")
    ap.add_argument("--through-gguf", action="store_true",
                    help="also run every case on the F32 GGUF that `quantize --type f32` writes from it")
    ap.add_argument("--only", action="append", help="build only this model (repeatable)")
    args = ap.parse_args()

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.mobilellm is not None:
        binary = args.mobilellm.resolve()
        if not (binary.is_file() and os.access(binary, os.X_OK)):
            print(f"error: {args.mobilellm} is not an executable file", file=sys.stderr)
            return 2

    tmp = None
    if args.keep:
        root = args.keep.resolve()
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="mobilellm-check-")
        root = Path(tmp.name)
    try:
        import torch
        import transformers

        print(f"torch {torch.__version__}, transformers {transformers.__version__}; models in {root}")
        cases = build_models(root, args.only)
        for c in cases:
            print(f"  built {c['name']}: vocab {c['vocab']}, greedy min top1-top2 gap {c['margin']:.3g}")
        if args.self_test:
            return self_test(cases, args.tolerance, args.timeout)
        if args.through_gguf:
            for c in list(cases):
                gguf = root / f"{c['name']}.f32.gguf"
                r = subprocess.run([str(binary), "quantize", "--model", str(c["dir"]), "--out", str(gguf), "--type",
                                    "f32", "--quiet"], capture_output=True, text=True)
                if r.returncode != 0:
                    print(f"error: quantize --type f32 of {c['name']} failed: {r.stderr.strip()}", file=sys.stderr)
                    return 1
                cases.append({**c, "name": c["name"] + " (f32 GGUF)", "dir": gguf})
        passed, failed = run_checks([str(binary)], cases, args.tolerance, args.timeout)
        print(f"\n{passed} passed, {failed} failed")
        return 0 if failed == 0 else 1
    finally:
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
