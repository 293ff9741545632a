#!/usr/bin/env python3
"""Measure mlx-lm's decode speed (tokens/s) on this machine's CPU for an MLX 4-bit model directory.

What it measures: greedy decoding of --gen tokens after a random --prompt-tokens prompt, driven by mlx-lm's own
decode loop (`mlx_lm.generate.generate_step`: KV cache from mlx_lm.models.cache, async evaluation of the next step
while the current token is handed out) with an argmax sampler. No tokenizer is needed. The prefill and the first
token are excluded: decode tok/s = (tokens yielded - 1) / (time from the first to the last yielded token). mlx-lm's
own `generation_tps` formula ((n + 1) / time since the first token) is printed too. It also times a plain synchronous
loop (one `model(token, cache)` + `mx.eval` per token) with --sync. A short warm-up precedes --trials timed runs;
the median is reported, with the CPU time / wall time ratio (mlx's CPU backend has no thread-count setting: its ops
run on one thread, and the mlx-cpu Linux wheel links a single-threaded reference BLAS).

As written by mlx-lm the model's scales/biases/norms are bfloat16, so MLX's CPU kernels run in bfloat16, which is
~9x slower on x86 than float32; --float32 upcasts those parameters after loading (lossless; packed weights unchanged).

How to run (venv outside the repository, see scripts/make_mlx_fixtures.py for the package versions):

    /tmp/mlxvenv/bin/python scripts/bench_mlx_lm.py --build /work/bench/r1-950m-mlx-4bit   # once, ~1 min
    /tmp/mlxvenv/bin/python scripts/bench_mlx_lm.py /work/bench/r1-950m-mlx-4bit --gen 64 --float32
    /tmp/mlxvenv/bin/python scripts/bench_mlx_lm.py /work/bench/r1-950m-mlx-4bit --gen 16 --trials 1   # bf16, slow

`--build DIR` writes a random-weight Llama with MobileLLM-R1-950M's shapes (hidden 1536, intermediate 6144,
22 layers, 24 heads, 6 KV heads, head_dim 64, vocab 128256, tied embeddings, rope_theta 8e6, 32768 positions,
rms_norm_eps 1e-5) as a plain `llama` model: bfloat16 weights ~ N(0, 0.02) (norm weights 1) drawn with mx.random,
then quantized with `mlx_lm.utils.quantize_model` (affine, 4 bits, group size 64) and written with mlx-lm's
`save_model` / `save_config` -- the files `mlx_lm.convert -q` would write, without tokenizer files.
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import sys
import time
from pathlib import Path

import mlx.core as mx
from mlx.utils import tree_flatten, tree_map

mlx_utils = importlib.import_module("mlx_lm.utils")
mlx_generate = importlib.import_module("mlx_lm.generate")
mlx_cache = importlib.import_module("mlx_lm.models.cache")
mlx_llama = importlib.import_module("mlx_lm.models.llama")

R1_950M = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 1536,
    "intermediate_size": 6144,
    "num_hidden_layers": 22,
    "num_attention_heads": 24,
    "num_key_value_heads": 6,
    "head_dim": 64,
    "vocab_size": 128256,
    "tie_word_embeddings": True,
    "rope_theta": 8000000.0,
    "rope_scaling": None,
    "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-5,
    "hidden_act": "silu",
    "attention_bias": False,
    "mlp_bias": False,
    "bos_token_id": 0,
    "eos_token_id": 1,
    "torch_dtype": "bfloat16",
}


def build(out: Path, seed: int = 0) -> None:
    if (out / "config.json").exists():
        print(f"{out} exists; not rebuilding")
        return
    config = dict(R1_950M)
    model = mlx_llama.Model(mlx_llama.ModelArgs.from_dict(config))
    key = mx.random.key(seed)
    params = {}
    names = sorted(tree_flatten(model.parameters()), key=lambda kv: kv[0])
    keys = mx.random.split(key, len(names))
    for i, (name, p) in enumerate(names):
        if p.ndim == 1:  # RMSNorm weights
            params[name] = mx.ones(p.shape, dtype=mx.bfloat16)
        else:
            params[name] = (0.02 * mx.random.normal(p.shape, key=keys[i])).astype(mx.bfloat16)
        mx.eval(params[name])
    model.load_weights(list(params.items()))
    del params
    model, config = mlx_utils.quantize_model(model, config, group_size=64, bits=4, mode="affine")
    mlx_utils.save_model(out, model, donate_model=True)
    mlx_utils.save_config(config, config_path=out / "config.json")
    print(f"wrote {out}: " + ", ".join(f"{p.name} {p.stat().st_size / 1e6:.1f} MB" for p in sorted(out.iterdir())))


def run_generate_step(model, prompt: mx.array, n: int):
    """mlx-lm's decode loop; returns (tokens, yield timestamps, cpu seconds of the decode part)."""
    times, toks, cpu0 = [], [], None
    for tok, _ in mlx_generate.generate_step(prompt, model, max_tokens=n, sampler=lambda x: mx.argmax(x, axis=-1)):
        times.append(time.perf_counter())
        if cpu0 is None:
            cpu0 = time.process_time()
        toks.append(int(tok))
    return toks, times, time.process_time() - cpu0


def run_sync(model, prompt: mx.array, n: int):
    cache = mlx_cache.make_prompt_cache(model)
    logits = model(prompt[None], cache=cache)
    tok = mx.argmax(logits[:, -1, :], axis=-1)
    mx.eval(tok)
    toks, t0, c0 = [int(tok.item())], time.perf_counter(), time.process_time()
    for _ in range(n - 1):
        logits = model(tok[:, None], cache=cache)
        tok = mx.argmax(logits[:, -1, :], axis=-1)
        mx.eval(tok)
        toks.append(int(tok.item()))
    return toks, time.perf_counter() - t0, time.process_time() - c0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", nargs="?", type=Path, help="MLX model directory")
    ap.add_argument("--build", type=Path, help="write the random R1-950M-shaped 4-bit model here and exit")
    ap.add_argument("--prompt-tokens", type=int, default=16)
    ap.add_argument("--gen", type=int, default=64, help="tokens to generate (the first one comes from the prefill)")
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--float32", action="store_true",
                    help="upcast every float parameter (norms, scales, biases) to float32 after loading (lossless); "
                         "activations then run in float32 too")
    ap.add_argument("--sync", action="store_true", help="also time a plain synchronous decode loop")
    args = ap.parse_args()
    mx.set_default_device(mx.cpu)
    if args.build:
        build(args.build, args.seed)
        return 0
    if args.model is None:
        ap.error("model directory required")

    import mlx_lm

    t = time.perf_counter()
    model, config = mlx_utils.load_model(args.model)
    print(f"mlx {mx.__version__}, mlx-lm {mlx_lm.__version__}, device {mx.default_device()}; "
          f"loaded {args.model} in {time.perf_counter() - t:.1f} s; quantization "
          f"{json.dumps({k: v for k, v in config.get('quantization', {}).items() if not isinstance(v, dict)})}")
    if args.float32:
        model.update(tree_map(lambda v: v.astype(mx.float32) if mx.issubdtype(v.dtype, mx.floating) else v,
                              model.parameters()))
    dtypes = sorted({str(v.dtype) for _, v in tree_flatten(model.parameters())})
    print(f"parameter dtypes {dtypes}; prompt {args.prompt_tokens} tokens, {args.gen} generated, {args.trials} trials")
    mx.random.seed(args.seed)
    prompt = mx.random.randint(0, config["vocab_size"], (args.prompt_tokens,))

    run_generate_step(model, prompt, 2)  # warm-up
    rates, mlx_rates, ratios, ref = [], [], [], None
    for i in range(args.trials):
        t = time.perf_counter()
        toks, times, cpu = run_generate_step(model, prompt, args.gen)
        assert len(toks) == args.gen
        ref = ref or toks
        assert toks == ref, "decoding is not deterministic"
        span = times[-1] - times[0]
        rates.append((len(toks) - 1) / span)
        mlx_rates.append(len(toks) / span)
        ratios.append(cpu / span)
        print(f"  generate_step trial {i + 1}: decode {rates[-1]:.2f} tok/s ({len(toks) - 1} steps in {span:.2f} s), "
              f"prefill+first token {times[0] - t:.2f} s; cpu/wall {ratios[-1]:.2f}")
    print(f"decode (mlx_lm.generate.generate_step, median of {args.trials}): {statistics.median(rates):.3f} tok/s; "
          f"mlx-lm's generation_tps formula: {statistics.median(mlx_rates):.3f} tok/s; "
          f"cpu/wall {statistics.median(ratios):.2f}")
    if args.sync:
        sync_toks, sync_t, sync_cpu = run_sync(model, prompt, args.gen)
        assert sync_toks == ref, "synchronous loop decodes different tokens"
        print(f"decode (synchronous model() + mx.eval loop): {(args.gen - 1) / sync_t:.3f} tok/s; "
              f"cpu/wall {sync_cpu / sync_t:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
