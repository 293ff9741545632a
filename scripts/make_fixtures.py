#!/usr/bin/env python3
"""Generate the small model fixtures under Tests/Fixtures/ and their transformers reference outputs.

How to run (from the repository root):

    python3 -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install -r scripts/requirements-reference.txt   # torch (CPU), transformers, safetensors, numpy
    /tmp/refvenv/bin/python scripts/make_fixtures.py                     # rewrites Tests/Fixtures/<name>/

It needs torch and transformers (exact versions in scripts/requirements-reference.txt). CI never runs it: the
generated files are committed and the Swift tests only read them. Rerunning is deterministic (fixed seeds, CPU,
float32 references, deterministic algorithms); with the pinned versions it reproduces the committed bytes.

Each fixture is a Hugging Face model directory (config.json, *.safetensors [+ index], generation_config.json) plus
`reference.json`:

    {"model_type": "...", "vocab_size": N,
     "sequences": [{"tokens": [...], "logits": [[vocab floats] for every position]}, ...],
     "greedy": [{"prompt": [...], "continuation": [...], "min_margin": float}, ...],
     "discrimination": {"<mutation>": {"positions": N, "argmax_changed": M}, ...}}

* Weights are random but fan-in scaled: Linear ~ gain * N(0, 1/fan_in), embeddings ~ N(0, embed_std^2), RMSNorm
  weights 1 + 0.2 N(0, 1) (so a missing norm weight is visible). Per fixture, embed_std is 0.3-0.5 and q/k/o/down
  (and an untied lm_head) get gains of 1.5-4: with N(0, 1) embeddings the residual stream is dominated by the
  token's own embedding and a tied model's argmax is simply the input token at every position, which would make
  the references blind to attention bugs. The gains make attention sharp and the layers dominate the residual.
* References come from a FRESH float32 `from_pretrained` of the saved directory with eager attention, never from
  the live model (casting a live model to bf16 also rounds its RoPE inv_freq buffer).
* `sequences[*].logits` is a full-sequence forward without cache: one row per input position.
* `greedy[*].continuation` is the argmax continuation computed by repeated full forwards without cache; the script
  asserts that `model.generate(do_sample=False)` (with KV cache) produces the same tokens, and that prefill +
  one-token-at-a-time decoding with transformers' KV cache reproduces the full-sequence logits (also across
  chunked-attention boundaries). `min_margin` is the
  smallest top1-top2 logit gap along the continuation; prompts are chosen so it exceeds MIN_MARGIN and so no
  end-of-sequence id is generated (a runtime that stops at EOS therefore produces the full continuation).
* `discrimination` proves the reference would catch the classic implementation mistakes: the script recomputes the
  logits of all recorded sequences with a deliberately wrong variant (monkeypatched transformers) and requires the
  argmax to change at >= 25% of the positions; otherwise it fails.

Fixtures:
  llama4-r1like-bf16-sharded  MobileLLM-R1 in miniature (llama4_text, all RoPE, QK norm, theta 8e6, tied, GQA),
                              BF16 in two shards, config.json rewritten in the published 4.5x style.
  llama4-nope-f32             llama4_text with NoPE layers, attention temperature tuning, chunked attention
                              (chunk 16), untied lm_head, hidden_size != heads*head_dim, F32, config as 5.x writes it.
  llama-f16                   llama (SmolLM2 style, half-split RoPE) with llama3 rope scaling, tied, GQA, F16,
                              config.json rewritten in the 4.x style (rope_theta + rope_scaling).
  llama-bf16-untied           llama, plain RoPE, untied lm_head, MHA, BF16, config as 5.x writes it.
  qwen2-f32-tied              qwen2 (Qwen2.5 style): q/k/v biases, no o_proj bias, half-split RoPE theta 1e6, tied,
                              GQA, F32.
  qwen2-bf16-untied           qwen2, untied lm_head, MHA, BF16, theta 1e4.
  qwen3-f32-untied            qwen3: weighted per-head q_norm/k_norm before RoPE, explicit head_dim (32) !=
                              hidden/heads (16), no biases, untied, GQA, F32.
  qwen3-bf16-tied             qwen3, tied, head_dim 16 == hidden/heads, BF16.

Biases (qwen2's q/k/v) are N(0, bias_std^2) so that ignoring them visibly moves the argmax.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import os
import shutil
import sys
from pathlib import Path

import torch

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
import transformers  # noqa: E402
from transformers import (  # noqa: E402
    GenerationConfig,
    Llama4ForCausalLM,
    Llama4TextConfig,
    LlamaConfig,
    LlamaForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
)
from transformers.models.llama import modeling_llama  # noqa: E402
from transformers.models.llama4 import modeling_llama4  # noqa: E402
from transformers.models.qwen2 import modeling_qwen2  # noqa: E402
from transformers.models.qwen3 import modeling_qwen3  # noqa: E402

transformers.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()
torch.use_deterministic_algorithms(True)
torch.set_num_threads(1)  # fixed reduction order -> byte-identical reruns

REPO = Path(__file__).resolve().parent.parent
FIXTURES_DIR = REPO / "Tests" / "Fixtures"
MIN_DISCRIMINATION = 0.25  # share of positions whose argmax must change under each mutation
MIN_MARGIN = 1e-2  # smallest allowed top1-top2 gap along a greedy continuation
GREEDY_NEW_TOKENS = 24
PROMPT_CANDIDATES = 16
MIN_DISTINCT = 10  # a continuation stuck in a one-token loop discriminates little
SIG_DIGITS = 7

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


# --------------------------------------------------------------------------------------------------------------
# Fixture definitions
# --------------------------------------------------------------------------------------------------------------

FIXTURES = [
    {
        "name": "llama4-r1like-bf16-sharded",
        "family": "llama4",
        "seed": 1001,
        "dtype": "bfloat16",
        "shards": 2,
        # config.json rewritten like the published MobileLLM-R1 config (written by transformers 4.5x)
        "config_style": "r1",
        "embed_std": 0.5,
        "gains": {"q_proj": 2.0, "k_proj": 2.0, "o_proj": 2.0, "down_proj": 2.0},
        "config": dict(
            vocab_size=384,
            hidden_size=64,
            intermediate_size=96,  # unused by a dense model; deliberately != intermediate_size_mlp
            intermediate_size_mlp=160,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=16,
            rope_parameters={"rope_type": "default", "rope_theta": 8000000.0},
            no_rope_layers=[1, 1, 1],
            use_qk_norm=True,
            attn_temperature_tuning=False,
            attn_scale=0.1,
            floor_scale=8192,
            attention_chunk_size=8192,
            moe_layers=[],
            interleave_moe_layer_step=0,
            num_local_experts=0,
            num_experts_per_tok=0,
            max_position_embeddings=32768,
            rms_norm_eps=1e-5,
            tie_word_embeddings=True,
            bos_token_id=0,
            eos_token_id=[1, 2, 3],
            pad_token_id=None,
        ),
        "sequence_lengths": [8, 48, 64],
        "prompt_lengths": [5, 17],
    },
    {
        "name": "llama4-nope-f32",
        "family": "llama4",
        "seed": 2002,
        "dtype": "float32",
        "shards": 1,
        "config_style": "native",
        "embed_std": 0.3,
        "gains": {"q_proj": 1.5, "k_proj": 1.5, "o_proj": 2.0, "down_proj": 2.0, "lm_head": 4.0},
        "config": dict(
            vocab_size=448,
            hidden_size=48,  # != num_attention_heads * head_dim (64)
            intermediate_size=128,
            intermediate_size_mlp=128,
            num_hidden_layers=4,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=16,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
            no_rope_layers=[1, 0, 1, 0],
            use_qk_norm=True,
            attn_temperature_tuning=True,
            attn_scale=1.0,  # strong enough that temperature tuning moves the argmax
            floor_scale=4,
            attention_chunk_size=16,
            moe_layers=[],
            interleave_moe_layer_step=0,
            num_local_experts=0,
            max_position_embeddings=4096,
            rms_norm_eps=1e-5,
            tie_word_embeddings=False,
            bos_token_id=0,
            eos_token_id=[1, 2],
            pad_token_id=None,
        ),
        "sequence_lengths": [8, 40, 64],
        "prompt_lengths": [6, 20],
    },
    {
        "name": "llama-f16",
        "family": "llama",
        "seed": 3003,
        "dtype": "float16",
        "shards": 1,
        # config.json rewritten with top-level rope_theta + rope_scaling, like SmolLM2 / Llama 3.2 checkpoints
        "config_style": "legacy_llama",
        "embed_std": 0.5,
        "gains": {"q_proj": 2.0, "k_proj": 2.0, "o_proj": 2.0, "down_proj": 2.0},
        "config": dict(
            vocab_size=512,
            hidden_size=64,
            intermediate_size=160,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=16,
            rope_parameters={
                "rope_type": "llama3",
                "rope_theta": 10000.0,
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 64,
            },
            max_position_embeddings=2048,
            rms_norm_eps=1e-5,
            tie_word_embeddings=True,
            bos_token_id=1,
            eos_token_id=2,
            pad_token_id=None,
        ),
        "sequence_lengths": [8, 48, 64],
        "prompt_lengths": [5, 17],
    },
    {
        "name": "llama-bf16-untied",
        "family": "llama",
        "seed": 4004,
        "dtype": "bfloat16",
        "shards": 1,
        "config_style": "native",
        "embed_std": 0.3,
        "gains": {"q_proj": 2.0, "k_proj": 2.0, "o_proj": 2.0, "down_proj": 2.0, "lm_head": 4.0},
        "config": dict(
            vocab_size=416,
            hidden_size=64,
            intermediate_size=144,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=4,
            head_dim=16,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
            max_position_embeddings=2048,
            rms_norm_eps=1e-6,
            tie_word_embeddings=False,
            bos_token_id=1,
            eos_token_id=[2, 3],
            pad_token_id=None,
        ),
        "sequence_lengths": [8, 48, 64],
        "prompt_lengths": [5, 17],
    },
    {
        "name": "qwen2-f32-tied",
        "family": "qwen2",
        "seed": 5005,
        "dtype": "float32",
        "shards": 1,
        "config_style": "native",
        "embed_std": 0.3,
        "bias_std": 0.5,
        "gains": {"q_proj": 2.0, "k_proj": 2.0, "o_proj": 2.0, "down_proj": 2.0},
        "config": dict(
            vocab_size=480,
            hidden_size=64,
            intermediate_size=160,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=2,
            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
            max_position_embeddings=4096,
            rms_norm_eps=1e-6,
            tie_word_embeddings=True,
            use_sliding_window=False,
            bos_token_id=1,
            eos_token_id=[2, 3],
            pad_token_id=None,
        ),
        "sequence_lengths": [8, 48, 64],
        "prompt_lengths": [5, 17],
    },
    {
        "name": "qwen2-bf16-untied",
        "family": "qwen2",
        "seed": 6006,
        "dtype": "bfloat16",
        "shards": 1,
        "config_style": "native",
        "embed_std": 0.3,
        "bias_std": 0.5,
        "gains": {"q_proj": 2.0, "k_proj": 2.0, "o_proj": 2.0, "down_proj": 2.0, "lm_head": 4.0},
        "config": dict(
            vocab_size=400,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=4,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
            max_position_embeddings=2048,
            rms_norm_eps=1e-6,
            tie_word_embeddings=False,
            use_sliding_window=False,
            bos_token_id=1,
            eos_token_id=2,
            pad_token_id=None,
        ),
        "sequence_lengths": [8, 48, 64],
        "prompt_lengths": [5, 17],
    },
    {
        "name": "qwen3-f32-untied",
        "family": "qwen3",
        "seed": 7007,
        "dtype": "float32",
        "shards": 1,
        "config_style": "native",
        "qk_norm_std": 0.6,
        "embed_std": 0.3,
        "gains": {"q_proj": 1.5, "k_proj": 1.5, "o_proj": 2.0, "down_proj": 2.0, "lm_head": 4.0},
        "config": dict(
            vocab_size=448,
            hidden_size=64,
            intermediate_size=144,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=32,  # != hidden_size / heads (16)
            attention_bias=False,
            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
            max_position_embeddings=4096,
            rms_norm_eps=1e-6,
            tie_word_embeddings=False,
            use_sliding_window=False,
            bos_token_id=1,
            eos_token_id=[2, 3],
            pad_token_id=None,
        ),
        "sequence_lengths": [8, 48, 64],
        "prompt_lengths": [5, 17],
    },
    {
        "name": "qwen3-bf16-tied",
        "family": "qwen3",
        "seed": 8008,
        "dtype": "bfloat16",
        "shards": 1,
        "config_style": "native",
        "qk_norm_std": 0.6,
        "embed_std": 0.3,
        "gains": {"q_proj": 2.0, "k_proj": 2.0, "o_proj": 2.0, "down_proj": 2.0},
        "config": dict(
            vocab_size=512,
            hidden_size=64,
            intermediate_size=160,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=16,
            attention_bias=False,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
            max_position_embeddings=2048,
            rms_norm_eps=1e-6,
            tie_word_embeddings=True,
            use_sliding_window=False,
            bos_token_id=1,
            eos_token_id=2,
            pad_token_id=None,
        ),
        "sequence_lengths": [8, 48, 64],
        "prompt_lengths": [5, 17],
    },
]


# --------------------------------------------------------------------------------------------------------------
# Model construction
# --------------------------------------------------------------------------------------------------------------


FAMILIES = {  # family -> (config class, model class, HF model_type)
    "llama4": (Llama4TextConfig, Llama4ForCausalLM, "llama4_text"),
    "llama": (LlamaConfig, LlamaForCausalLM, "llama"),
    "qwen2": (Qwen2Config, Qwen2ForCausalLM, "qwen2"),
    "qwen3": (Qwen3Config, Qwen3ForCausalLM, "qwen3"),
}


def make_config(spec: dict):
    return FAMILIES[spec["family"]][0](**copy.deepcopy(spec["config"]))


def model_class(spec: dict):
    return FAMILIES[spec["family"]][1]


@torch.no_grad()
def init_weights(model: torch.nn.Module, seed: int, embed_std: float, gains: dict, bias_std: float = 0.0,
                 qk_norm_std: float = 0.2) -> None:
    """Fan-in scaled random weights, drawn in sorted parameter-name order from one seeded generator.

    Linear weights ~ gain * N(0, 1/fan_in) (gain 1 unless the fixture names one for that projection),
    embeddings ~ N(0, embed_std^2), RMSNorm weights ~ 1 + 0.2 N(0, 1) (qwen3's per-head q_norm/k_norm:
    1 + qk_norm_std N(0, 1); RoPE preserves a head's length, so only the weights tell a norm before RoPE from one
    after it), linear biases ~ N(0, bias_std^2).
    """
    gen = torch.Generator().manual_seed(seed)
    params = dict(model.named_parameters())  # tied lm_head is not listed separately
    for name in sorted(params):
        p = params[name]
        if name.endswith("embed_tokens.weight"):
            p.copy_(embed_std * torch.randn(p.shape, generator=gen))
        elif name.endswith(".bias"):  # qwen2's q/k/v biases
            p.copy_(bias_std * torch.randn(p.shape, generator=gen))
        elif name.endswith(("q_norm.weight", "k_norm.weight")):
            p.copy_(1.0 + qk_norm_std * torch.randn(p.shape, generator=gen))
        elif p.dim() == 1:  # RMSNorm weights
            p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
        elif p.dim() == 2:  # nn.Linear [out, in]
            gain = gains.get(name.split(".")[-2], 1.0)
            p.copy_(gain * torch.randn(p.shape, generator=gen) / math.sqrt(p.shape[1]))
        else:
            raise RuntimeError(f"unexpected parameter {name} {tuple(p.shape)}")


def shard_size_for_two(model: torch.nn.Module, dtype: torch.dtype) -> int:
    """A max_shard_size (bytes) that makes save_pretrained write exactly two shards."""
    elem = torch.empty((), dtype=dtype).element_size()
    sizes = [p.numel() * elem for _, p in model.named_parameters()]
    total = sum(sizes)
    return total // 2 + max(sizes)


def rewrite_config_r1_style(out_dir: Path, spec: dict) -> None:
    """config.json as the published MobileLLM-R1 checkpoints have it (written by transformers 4.5x)."""
    c = spec["config"]
    cfg = {
        "architectures": ["Llama4ForCausalLM"],
        "attention_bias": False,
        "attention_chunk_size": c["attention_chunk_size"],
        "attention_dropout": 0.0,
        "attn_scale": c["attn_scale"],
        "attn_temperature_tuning": c["attn_temperature_tuning"],
        "bos_token_id": c["bos_token_id"],
        "eos_token_id": c["eos_token_id"],
        "floor_scale": c["floor_scale"],
        "for_llm_compressor": False,
        "head_dim": c["head_dim"],
        "hidden_act": "silu",
        "hidden_size": c["hidden_size"],
        "initializer_range": 0.02,
        "interleave_moe_layer_step": c["interleave_moe_layer_step"],
        "intermediate_size": c["intermediate_size"],
        "intermediate_size_mlp": c["intermediate_size_mlp"],
        "max_position_embeddings": c["max_position_embeddings"],
        "model_type": "llama4_text",
        "moe_layers": c["moe_layers"],
        "no_rope_layer_interval": 4,
        "no_rope_layers": c["no_rope_layers"],
        "num_attention_heads": c["num_attention_heads"],
        "num_experts_per_tok": c["num_experts_per_tok"],
        "num_hidden_layers": c["num_hidden_layers"],
        "num_key_value_heads": c["num_key_value_heads"],
        "num_local_experts": c["num_local_experts"],
        "output_router_logits": False,
        "pad_token_id": c["pad_token_id"],
        "rms_norm_eps": c["rms_norm_eps"],
        "rope_scaling": None,
        "rope_theta": c["rope_parameters"]["rope_theta"],
        "router_aux_loss_coef": 0.001,
        "router_jitter_noise": 0.0,
        "tie_word_embeddings": True,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.55.0",
        "use_cache": True,
        "use_qk_norm": c["use_qk_norm"],
        "vocab_size": c["vocab_size"],
    }
    write_json(out_dir / "config.json", cfg, indent=2)


def rewrite_config_legacy_llama(out_dir: Path, spec: dict) -> None:
    """config.json in the transformers 4.x style of SmolLM2 / Llama 3.x: top-level rope_theta + rope_scaling."""
    c = spec["config"]
    rp = dict(c["rope_parameters"])
    theta = rp.pop("rope_theta")
    rope_type = rp.pop("rope_type")
    rope_scaling = None if rope_type == "default" else {**rp, "rope_type": rope_type}
    cfg = {
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": c["bos_token_id"],
        "eos_token_id": c["eos_token_id"],
        "head_dim": c["head_dim"],
        "hidden_act": "silu",
        "hidden_size": c["hidden_size"],
        "initializer_range": 0.02,
        "intermediate_size": c["intermediate_size"],
        "max_position_embeddings": c["max_position_embeddings"],
        "mlp_bias": False,
        "model_type": "llama",
        "num_attention_heads": c["num_attention_heads"],
        "num_hidden_layers": c["num_hidden_layers"],
        "num_key_value_heads": c["num_key_value_heads"],
        "pretraining_tp": 1,
        "rms_norm_eps": c["rms_norm_eps"],
        "rope_scaling": rope_scaling,
        "rope_theta": theta,
        "tie_word_embeddings": c["tie_word_embeddings"],
        "torch_dtype": spec["dtype"],
        "transformers_version": "4.42.3",
        "use_cache": True,
        "vocab_size": c["vocab_size"],
    }
    write_json(out_dir / "config.json", cfg, indent=2)


def write_generation_config(out_dir: Path, spec: dict) -> None:
    c = spec["config"]
    gen = {
        "_from_model_config": False,
        "bos_token_id": c["bos_token_id"],
        "do_sample": False,
        "eos_token_id": c["eos_token_id"],
        "transformers_version": transformers.__version__,
    }
    write_json(out_dir / "generation_config.json", gen, indent=2)


def write_json(path: Path, obj, indent=None) -> None:
    with open(path, "w") as f:
        json.dump(obj, f, indent=indent, sort_keys=indent is not None)
        f.write("\n")


def load_reference_model(path: Path):
    """Fresh float32 load of the saved files: the only model references are computed with."""
    cfg = json.loads((path / "config.json").read_text())
    cls = next(f[1] for f in FAMILIES.values() if f[2] == cfg["model_type"])
    model = cls.from_pretrained(path, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    for p in model.parameters():
        assert p.dtype == torch.float32, p.dtype
    return model


def save_fixture(spec: dict, out_dir: Path) -> torch.nn.Module:
    """Builds, saves and verifies the fixture directory; returns the float32 reference model."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    torch.manual_seed(spec["seed"])
    config = make_config(spec)
    model = model_class(spec)(config)
    init_weights(model, spec["seed"], spec["embed_std"], spec["gains"], spec.get("bias_std", 0.0),
                 spec.get("qk_norm_std", 0.2))
    dtype = DTYPES[spec["dtype"]]
    model = model.to(dtype)  # only for writing the files; never used for reference outputs
    kwargs = {}
    if spec["shards"] == 2:
        kwargs["max_shard_size"] = shard_size_for_two(model, dtype)
    model.save_pretrained(out_dir, **kwargs)
    del model
    write_generation_config(out_dir, spec)

    files = sorted(p.name for p in out_dir.iterdir())
    shard_files = [f for f in files if f.endswith(".safetensors")]
    if spec["shards"] == 2:
        assert shard_files == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"], files
        assert "model.safetensors.index.json" in files, files
    else:
        assert shard_files == ["model.safetensors"], files

    # Tied fixtures must not carry lm_head.weight; untied ones must.
    from safetensors import safe_open

    names, dtypes = set(), set()
    for f in shard_files:
        with safe_open(out_dir / f, "pt") as sf:
            for k in sf.keys():
                names.add(k)
                dtypes.add(sf.get_slice(k).get_dtype())
    tied = spec["config"]["tie_word_embeddings"]
    assert ("lm_head.weight" in names) != tied, (spec["name"], "lm_head.weight present?", "lm_head.weight" in names)
    expected_dtype = {"float32": "F32", "float16": "F16", "bfloat16": "BF16"}[spec["dtype"]]
    assert dtypes == {expected_dtype}, dtypes

    style = spec["config_style"]
    if style != "native":
        # Verify that transformers loads the hand-written config to exactly the same logits.
        native = load_reference_model(out_dir)
        probe = torch.tensor([[5, 17, 200, 33, 99, 4, 250, 7, 12, 64, 128, 31, 300, 8, 9, 10, 11, 42, 77, 150, 151, 152,
                               90, 91, 92, 93, 94, 95, 96, 97, 98, 99, 100, 101, 102, 103, 104, 105, 106, 107]])
        with torch.no_grad():
            expect = native(probe).logits
        del native
        if style == "r1":
            rewrite_config_r1_style(out_dir, spec)
        elif style == "legacy_llama":
            rewrite_config_legacy_llama(out_dir, spec)
        else:
            raise ValueError(style)
        model = load_reference_model(out_dir)
        with torch.no_grad():
            got = model(probe).logits
        diff = (got - expect).abs().max().item()
        if diff != 0.0:
            raise SystemExit(f"{spec['name']}: rewritten {style} config.json loads to different logits (max diff {diff})")
        return model
    return load_reference_model(out_dir)


# --------------------------------------------------------------------------------------------------------------
# Reference computation
# --------------------------------------------------------------------------------------------------------------


@torch.no_grad()
def full_logits(model, tokens: list[int]) -> torch.Tensor:
    out = model(torch.tensor([tokens]), use_cache=False)
    return out.logits[0].float()


@torch.no_grad()
def greedy_pure(model, prompt: list[int], n: int) -> tuple[list[int], float]:
    """Argmax continuation by repeated full forwards without cache; returns tokens and the smallest top1-top2 gap."""
    seq = list(prompt)
    cont, margin = [], math.inf
    for _ in range(n):
        last = full_logits(model, seq)[-1]
        top = torch.topk(last, 2)
        margin = min(margin, (top.values[0] - top.values[1]).item())
        nxt = int(top.indices[0])
        cont.append(nxt)
        seq.append(nxt)
    return cont, margin


@torch.no_grad()
def cached_logits(model, tokens: list[int], prefill: int) -> torch.Tensor:
    """Prefill `prefill` tokens with a KV cache, then feed the rest one at a time (what a runtime does)."""
    out = model(torch.tensor([tokens[:prefill]]), use_cache=True)
    cache, rows = out.past_key_values, [out.logits[0]]
    for t in tokens[prefill:]:
        out = model(torch.tensor([[t]]), past_key_values=cache, use_cache=True)
        cache = out.past_key_values
        rows.append(out.logits[0])
    return torch.cat(rows).float()


@torch.no_grad()
def greedy_generate(model, prompt: list[int], n: int, eos) -> list[int]:
    gc = GenerationConfig(do_sample=False, max_new_tokens=n, min_new_tokens=0, eos_token_id=eos,
                          pad_token_id=0, bos_token_id=None)
    out = model.generate(torch.tensor([prompt]), generation_config=gc, attention_mask=torch.ones(1, len(prompt),
                                                                                                    dtype=torch.long))
    return out[0, len(prompt):].tolist()


def round_sig(x: float) -> float:
    return float(f"{x:.{SIG_DIGITS}g}")


def eos_ids(spec: dict) -> list[int]:
    e = spec["config"]["eos_token_id"]
    return list(e) if isinstance(e, list) else [e]


def random_tokens(gen: torch.Generator, n: int, vocab: int, avoid: set[int]) -> list[int]:
    toks = []
    while len(toks) < n:
        t = int(torch.randint(0, vocab, (1,), generator=gen))
        if t not in avoid:
            toks.append(t)
    return toks


# --------------------------------------------------------------------------------------------------------------
# Mutations (deliberately wrong variants) for the discrimination proof
# --------------------------------------------------------------------------------------------------------------


def _half_split_rope_llama4(xq, xk, freqs_cis):
    """Llama-4 RoPE angles applied to (x_i, x_{i+d/2}) pairs instead of interleaved pairs."""
    cos = freqs_cis.real[:, :, None, :].float()
    sin = freqs_cis.imag[:, :, None, :].float()

    def rot(x):
        xf = x.float()
        h = xf.shape[-1] // 2
        x1, x2 = xf[..., :h], xf[..., h:]
        return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).type_as(x)

    return rot(xq), rot(xk)


def _interleaved_rope_llama(q, k, cos, sin, unsqueeze_dim=1):
    """Llama RoPE angles applied to interleaved (x_2i, x_2i+1) pairs instead of half-split pairs."""
    cos = cos.unsqueeze(unsqueeze_dim)
    sin = sin.unsqueeze(unsqueeze_dim)
    h = cos.shape[-1] // 2
    c = cos[..., :h].repeat_interleave(2, dim=-1)
    s = sin[..., :h].repeat_interleave(2, dim=-1)

    def rot(x):
        rotated = torch.stack([-x[..., 1::2], x[..., 0::2]], dim=-1).flatten(-2)
        return x * c + rotated * s

    return rot(q), rot(k)


def _tiled_repeat_kv(hidden_states, n_rep):
    """Wrong GQA grouping: query head h reads kv head h % n_kv instead of h // n_rep."""
    if n_rep == 1:
        return hidden_states
    return hidden_states.repeat(1, n_rep, 1, 1)


@contextlib.contextmanager
def patched(obj, attr, value):
    old = getattr(obj, attr)
    setattr(obj, attr, value)
    try:
        yield
    finally:
        setattr(obj, attr, old)


@contextlib.contextmanager
def attn_attr(model, attr, value):
    olds = [getattr(layer.self_attn, attr) for layer in model.model.layers]
    for layer in model.model.layers:
        setattr(layer.self_attn, attr, value)
    try:
        yield
    finally:
        for layer, old in zip(model.model.layers, olds):
            setattr(layer.self_attn, attr, old)


@contextlib.contextmanager
def plain_inv_freq(model, theta=None):
    """Replace the RoPE inverse frequencies by unscaled ones (optionally with another theta)."""
    rot = model.model.rotary_emb
    cfg = model.config
    dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    theta = cfg.rope_parameters["rope_theta"] if theta is None else theta
    plain = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float) / dim))
    old = rot.inv_freq.clone()
    assert not torch.equal(old, plain), "mutation does not change inv_freq"
    rot.inv_freq.copy_(plain)
    try:
        yield
    finally:
        rot.inv_freq.copy_(old)


def _rmsnorm_without_weight_llama4(self, x):
    return self._norm(x.float()).type_as(x)


def _rmsnorm_without_weight_llama(self, hidden_states):
    h = hidden_states.to(torch.float32)
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)
    return h.to(hidden_states.dtype)


@contextlib.contextmanager
def qk_norm_after_rope(model, rope_module):
    """Qwen3's weighted q_norm/k_norm applied after RoPE instead of before it."""
    layers = [layer.self_attn for layer in model.model.layers]
    norms = [(a.q_norm, a.k_norm) for a in layers]
    current = {}
    original_rope = rope_module.apply_rotary_pos_emb

    def rope_then_norm(q, k, cos, sin, unsqueeze_dim=1):
        q, k = original_rope(q, k, cos, sin, unsqueeze_dim)
        qn, kn = current["norms"]
        return qn(q), kn(k)

    hooks = [a.register_forward_pre_hook(lambda m, args, n=n: current.__setitem__("norms", n))
             for a, n in zip(layers, norms)]
    for a in layers:
        a.q_norm, a.k_norm = torch.nn.Identity(), torch.nn.Identity()
    rope_module.apply_rotary_pos_emb = rope_then_norm
    try:
        yield
    finally:
        rope_module.apply_rotary_pos_emb = original_rope
        for h in hooks:
            h.remove()
        for a, (qn, kn) in zip(layers, norms):
            a.q_norm, a.k_norm = qn, kn


@contextlib.contextmanager
def qk_norm_weight_ignored(model):
    """Only the per-head q_norm/k_norm lose their weights (the layer norms keep theirs)."""
    norms = [n for layer in model.model.layers for n in (layer.self_attn.q_norm, layer.self_attn.k_norm)]
    olds = [n.weight.detach().clone() for n in norms]
    with torch.no_grad():
        for n in norms:
            n.weight.fill_(1.0)
    try:
        yield
    finally:
        with torch.no_grad():
            for n, w in zip(norms, olds):
                n.weight.copy_(w)


@contextlib.contextmanager
def qkv_bias_ignored(model):
    """qwen2's q/k/v biases dropped."""
    projs = [getattr(layer.self_attn, n) for layer in model.model.layers for n in ("q_proj", "k_proj", "v_proj")]
    olds = [p.bias.detach().clone() for p in projs]
    with torch.no_grad():
        for p in projs:
            p.bias.zero_()
    try:
        yield
    finally:
        with torch.no_grad():
            for p, b in zip(projs, olds):
                p.bias.copy_(b)


@contextlib.contextmanager
def o_proj_bias_added(model, seed: int):
    """An o_proj bias where the family has none (what a loader that treats o like q/k/v would apply)."""
    gen = torch.Generator().manual_seed(seed)
    projs = [layer.self_attn.o_proj for layer in model.model.layers]
    assert all(p.bias is None for p in projs)
    for p in projs:
        p.bias = torch.nn.Parameter(0.5 * torch.randn(p.out_features, generator=gen), requires_grad=False)
    try:
        yield
    finally:
        for p in projs:
            p.bias = None


@contextlib.contextmanager
def attn_norms_identity(model):
    """Qwen3's q_norm/k_norm skipped entirely."""
    layers = [layer.self_attn for layer in model.model.layers]
    norms = [(a.q_norm, a.k_norm) for a in layers]
    for a in layers:
        a.q_norm, a.k_norm = torch.nn.Identity(), torch.nn.Identity()
    try:
        yield
    finally:
        for a, (qn, kn) in zip(layers, norms):
            a.q_norm, a.k_norm = qn, kn


def mutations(spec: dict, model):
    """name -> context manager factory. Only mutations that apply to the fixture are listed."""
    c = spec["config"]
    muts = {}
    gqa = c["num_attention_heads"] != c["num_key_value_heads"]
    if spec["family"] == "llama4":
        rope_layers = any(c["no_rope_layers"])
        if rope_layers:
            muts["half_split_rope"] = lambda: patched(modeling_llama4, "apply_rotary_emb", _half_split_rope_llama4)
        if c["use_qk_norm"] and rope_layers:
            muts["no_qk_norm"] = lambda: patched(modeling_llama4.Llama4TextL2Norm, "forward", lambda self, x: x)
            # QK norm on every layer (also NoPE layers) is wrong too; only meaningful if NoPE layers exist.
        if c["attn_temperature_tuning"] and not all(c["no_rope_layers"]):
            muts["no_temperature_tuning"] = lambda: attn_attr(model, "attn_temperature_tuning", False)
        if rope_layers and c["attention_chunk_size"] < max(spec["sequence_lengths"]):
            muts["full_causal_instead_of_chunked"] = lambda: patched(
                modeling_llama4, "create_chunked_causal_mask", modeling_llama4.create_causal_mask)
        if gqa:
            muts["gqa_tiled_kv_heads"] = lambda: patched(modeling_llama4, "repeat_kv", _tiled_repeat_kv)
        muts["rmsnorm_weight_ignored"] = lambda: patched(
            modeling_llama4.Llama4TextRMSNorm, "forward", _rmsnorm_without_weight_llama4)
    elif spec["family"] in ("qwen2", "qwen3"):
        mod = modeling_qwen2 if spec["family"] == "qwen2" else modeling_qwen3
        norm_class = mod.Qwen2RMSNorm if spec["family"] == "qwen2" else mod.Qwen3RMSNorm
        muts["interleaved_rope"] = lambda: patched(mod, "apply_rotary_pos_emb", _interleaved_rope_llama)
        if gqa:
            muts["gqa_tiled_kv_heads"] = lambda: patched(mod, "repeat_kv", _tiled_repeat_kv)
        muts["rmsnorm_weight_ignored"] = lambda: patched(norm_class, "forward", _rmsnorm_without_weight_llama)
        muts["o_proj_bias_added"] = lambda: o_proj_bias_added(model, spec["seed"] + 5)
        if spec["family"] == "qwen2":
            muts["qkv_bias_ignored"] = lambda: qkv_bias_ignored(model)
        else:
            muts["qk_norm_after_rope"] = lambda: qk_norm_after_rope(model, mod)
            muts["qk_norm_weight_ignored"] = lambda: qk_norm_weight_ignored(model)
            muts["qk_norm_dropped"] = lambda: attn_norms_identity(model)
    else:
        muts["interleaved_rope"] = lambda: patched(modeling_llama, "apply_rotary_pos_emb", _interleaved_rope_llama)
        if c["rope_parameters"]["rope_type"] != "default":
            muts["rope_scaling_ignored"] = lambda: plain_inv_freq(model)
        if gqa:
            muts["gqa_tiled_kv_heads"] = lambda: patched(modeling_llama, "repeat_kv", _tiled_repeat_kv)
        muts["rmsnorm_weight_ignored"] = lambda: patched(
            modeling_llama.LlamaRMSNorm, "forward", _rmsnorm_without_weight_llama)
    theta = c["rope_parameters"]["rope_theta"]
    wrong_theta = 10000.0 if theta != 10000.0 else 500000.0
    muts[f"rope_theta_{int(wrong_theta)}"] = lambda: plain_inv_freq(model, wrong_theta)
    return muts


# --------------------------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------------------------


def build(spec: dict, out_root: Path) -> dict:
    name = spec["name"]
    out_dir = out_root / name
    model = save_fixture(spec, out_dir)
    c = spec["config"]
    vocab = c["vocab_size"]
    eos = eos_ids(spec)
    avoid = set(eos) | {c["bos_token_id"]}

    gen = torch.Generator().manual_seed(spec["seed"] + 17)
    sequences = []
    base_logits = []
    for n in spec["sequence_lengths"]:
        toks = [c["bos_token_id"]] + random_tokens(gen, n - 1, vocab, avoid)
        lg = full_logits(model, toks)
        base_logits.append(lg)
        sequences.append({"tokens": toks, "logits": [[round_sig(v) for v in row.tolist()] for row in lg]})

    # Incremental decoding with transformers' KV cache (chunked layers keep a sliding window of chunk-1 keys) must
    # reproduce the full-sequence logits, with the prefill ending before, at and after chunk boundaries.
    cache_diff = 0.0
    longest = max(range(len(sequences)), key=lambda i: len(sequences[i]["tokens"]))
    for prefill in (1, 7, 16, 37):
        got = cached_logits(model, sequences[longest]["tokens"], prefill)
        cache_diff = max(cache_diff, (got - base_logits[longest]).abs().max().item())
    if cache_diff > 5e-4:  # float noise is ~1e-5 relative; a semantic mismatch is O(1)
        raise SystemExit(f"{name}: KV-cache decoding differs from full forward by {cache_diff}")

    # Greedy prompts: of PROMPT_CANDIDATES deterministic random prompts per length, keep the one whose continuation
    # has the largest smallest top1-top2 gap (and generates no EOS), so float noise cannot flip the reference.
    greedy = []
    pgen = torch.Generator().manual_seed(spec["seed"] + 31)
    for plen in spec["prompt_lengths"]:
        best = None
        for _ in range(PROMPT_CANDIDATES):
            prompt = [c["bos_token_id"]] + random_tokens(pgen, plen - 1, vocab, avoid)
            cont, margin = greedy_pure(model, prompt, GREEDY_NEW_TOKENS)
            if any(t in eos for t in cont) or len(set(cont)) < MIN_DISTINCT:
                continue
            if best is None or margin > best[2]:
                best = (prompt, cont, margin)
        if best is None or best[2] <= MIN_MARGIN:
            raise SystemExit(f"{name}: no greedy prompt of length {plen} with margin > {MIN_MARGIN}, "
                             f">= {MIN_DISTINCT} distinct tokens and no EOS")
        prompt, cont, margin = best
        with_cache = greedy_generate(model, prompt, GREEDY_NEW_TOKENS, eos)
        if with_cache != cont:
            raise SystemExit(f"{name}: generate() with cache {with_cache} != full-forward greedy {cont}")
        greedy.append({"prompt": prompt, "continuation": cont, "min_margin": round_sig(margin)})

    # Discrimination: every mutation must change the argmax at >= MIN_DISCRIMINATION of all recorded positions.
    base_argmax = torch.cat([lg.argmax(-1) for lg in base_logits])
    discrimination = {}
    for mname, ctx in mutations(spec, model).items():
        with ctx():
            mut = torch.cat([full_logits(model, s["tokens"]).argmax(-1) for s in sequences])
        changed = int((mut != base_argmax).sum())
        discrimination[mname] = {"positions": int(base_argmax.numel()), "argmax_changed": changed}
    # Sanity: after restoring every patch the model reproduces the reference exactly.
    for s, lg in zip(sequences, base_logits):
        assert torch.equal(full_logits(model, s["tokens"]), lg), "a mutation was not restored"

    print(f"  [{name}] KV-cache decode vs full forward: max |diff| {cache_diff:.2e}")
    ref = {
        "model_type": model.config.model_type,
        "vocab_size": vocab,
        "sequences": sequences,
        "greedy": greedy,
        "discrimination": discrimination,
    }
    write_reference(out_dir / "reference.json", ref)
    return ref


def write_reference(path: Path, ref: dict) -> None:
    """Compact JSON with one logits row per line (small, diffable, still one standard JSON document)."""
    d = lambda o: json.dumps(o, separators=(",", ":"))  # noqa: E731
    lines = ["{", f'"model_type":{d(ref["model_type"])},', f'"vocab_size":{ref["vocab_size"]},', '"sequences":[']
    for i, s in enumerate(ref["sequences"]):
        lines.append(f'{{"tokens":{d(s["tokens"])},')
        lines.append('"logits":[')
        rows = [d(r) for r in s["logits"]]
        lines.append(",\n".join(rows))
        lines.append("]}" + ("," if i + 1 < len(ref["sequences"]) else ""))
    lines.append("],")
    lines.append('"greedy":[')
    lines.append(",\n".join(d(g) for g in ref["greedy"]))
    lines.append("],")
    lines.append(f'"discrimination":{d(ref["discrimination"])}')
    lines.append("}")
    text = "\n".join(lines) + "\n"
    assert json.loads(text) == json.loads(json.dumps(ref)), "reference.json round trip"
    path.write_text(text)


def dir_size(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=FIXTURES_DIR, help="output root (default Tests/Fixtures)")
    ap.add_argument("--only", action="append", help="build only this fixture (repeatable)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    print(f"torch {torch.__version__}, transformers {transformers.__version__}")
    failures = []
    total = 0
    for spec in FIXTURES:
        if args.only and spec["name"] not in args.only:
            continue
        ref = build(spec, args.out)
        c = spec["config"]
        size = dir_size(args.out / spec["name"])
        total += size
        print(f"\n{spec['name']}: {ref['model_type']} {spec['dtype']} shards={spec['shards']} "
              f"vocab={c['vocab_size']} hidden={c['hidden_size']} layers={c['num_hidden_layers']} "
              f"heads={c['num_attention_heads']}/{c['num_key_value_heads']} head_dim={c.get('head_dim', c['hidden_size'] // c['num_attention_heads'])} "
              f"tied={c['tie_word_embeddings']}  size={size / 1024:.0f} KiB")
        print(f"  sequences: lengths {[len(s['tokens']) for s in ref['sequences']]}")
        for g in ref["greedy"]:
            print(f"  greedy: prompt len {len(g['prompt'])} -> {len(g['continuation'])} tokens, "
                  f"min_margin {g['min_margin']:.4g}")
        for m, d in ref["discrimination"].items():
            share = d["argmax_changed"] / d["positions"]
            ok = share >= MIN_DISCRIMINATION
            print(f"  mutation {m:32s} argmax changed {d['argmax_changed']:3d}/{d['positions']} "
                  f"({100 * share:5.1f}%) {'ok' if ok else 'TOO FEW'}")
            if not ok:
                failures.append(f"{spec['name']}:{m}")
    print(f"\ntotal fixture size: {total / 1024:.0f} KiB")
    if failures:
        print("FAILED: mutations that do not change the argmax often enough: " + ", ".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
