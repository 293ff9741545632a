#!/usr/bin/env python3
"""Interoperability of `mobilellm quantize` output with gguf-py and llama.cpp, on a real Llama-architecture model.

    /work/refvenv/bin/python scripts/check_gguf_interop.py --mobilellm .build/release/mobilellm [--types q8_0,q4_0]

Needs, in the Python running it: gguf (gguf-py), numpy, safetensors, llama-cpp-python 0.3.36, and - only to make
the Hugging Face directory once - torch + transformers. Steps:

1. A Hugging Face directory of SmolLM2-135M-Instruct (`.cache/smollm2-hf`, or --hf-dir): made once by transformers
   from the pinned Q4_1 GGUF (scripts/fetch_assets.py smollm2), which it dequantizes and un-permutes to HF's
   half-split q/k layout; saved as BF16 safetensors with tokenizer.json, tokenizer_config.json and the chat template.
2. `mobilellm quantize --model HF_DIR --out FILE --type T` for each type.
3. gguf-py reads every file: metadata, tensor names/types/shapes; each q/k matrix, dequantized by gguf-py, must equal
   the HF matrix with llama.cpp's q/k row permutation applied (up to the quantization error), and the HF matrix
   unpermuted must be clearly further away (so the check discriminates).
4. llama.cpp (llama-cpp-python) and `mobilellm generate --activations int8` decode greedily from the same token ids
   (the chat-templated question "What is the capital of France?" and a raw text prompt) and the sequences are
   compared (reported, not required: free-running decoding diverges at the first near-tie). Then both engines score
   llama.cpp's own continuation (teacher forcing): top-1 agreement must be >= 80% and every disagreement must be a
   near-tie (llama.cpp's top-1/top-2 margin < 0.5). The same comparison on llama.cpp's own file (the pinned Q4_1
   GGUF) is printed as the baseline of engine-to-engine differences.

Exit status 0 when every check passes. Prints one line per check.
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ASSETS = os.environ.get("MOBILELLM_ASSETS") or os.path.join(ROOT, ".cache", "assets")
SMOLLM2_GGUF = os.path.join(ASSETS, "smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")


def make_hf_directory(out):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    directory, name = os.path.split(SMOLLM2_GGUF)
    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=name)
    from safetensors.torch import save_file

    model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, torch_dtype=torch.bfloat16)
    # transformers refuses save_pretrained on a GGUF-loaded model: save the tensors and the config directly.
    state = {key: value.contiguous() for key, value in model.state_dict().items()}
    if model.config.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    os.makedirs(out, exist_ok=True)
    save_file(state, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    config = model.config.to_dict()
    config.pop("quantization_config", None)
    config["torch_dtype"] = "bfloat16"
    with open(os.path.join(out, "config.json"), "w") as handle:
        json.dump(config, handle, indent=2)
    tokenizer.save_pretrained(out)
    print(f"made {out} from {SMOLLM2_GGUF}")


def interleave_rows(matrix, heads):
    """Half-split RoPE rows (x_i, x_{i+d/2}) of each head -> adjacent pairs (x_2i, x_2i+1), as llama.cpp stores q/k."""
    import numpy as np

    rows, cols = matrix.shape
    d = rows // heads
    out = np.empty_like(matrix)
    for h in range(heads):
        block = matrix[h * d:(h + 1) * d]
        out[h * d:(h + 1) * d:2] = block[: d // 2]
        out[h * d + 1:(h + 1) * d:2] = block[d // 2:]
    return out


def check_gguf_py(path, hf_dir, config, failures):
    from check_gguf_py import read_safetensors  # the same reader the gguf-py check uses

    import numpy as np
    from gguf import GGUFReader
    from gguf.quants import dequantize

    reader = GGUFReader(path)
    fields = {k: v.contents() for k, v in reader.fields.items() if not k.startswith("GGUF.")}
    arch = fields["general.architecture"]
    expected = {
        f"{arch}.block_count": config["num_hidden_layers"], f"{arch}.embedding_length": config["hidden_size"],
        f"{arch}.attention.head_count": config["num_attention_heads"],
        f"{arch}.attention.head_count_kv": config["num_key_value_heads"],
        f"{arch}.feed_forward_length": config["intermediate_size"], f"{arch}.vocab_size": config["vocab_size"],
    }
    for key, value in expected.items():
        if fields.get(key) != value:
            failures.append(f"gguf-py: {key} = {fields.get(key)!r}, expected {value!r}")
    tokens = fields.get("tokenizer.ggml.tokens")
    if not tokens or len(tokens) != config["vocab_size"]:
        failures.append(f"gguf-py: tokenizer.ggml.tokens has {len(tokens or [])} entries")
    types = {}
    for tensor in reader.tensors:
        types[tensor.tensor_type.name] = types.get(tensor.tensor_type.name, 0) + 1
    print(f"  gguf-py {gguf_version()}: {len(fields)} metadata keys, {len(reader.tensors)} tensors {types}, "
          f"pre={fields.get('tokenizer.ggml.pre')!r}, {len(fields.get('tokenizer.ggml.merges', []))} merges")

    weights = {}
    for name in sorted(os.listdir(hf_dir)):
        if name.endswith(".safetensors"):
            weights.update(read_safetensors(os.path.join(hf_dir, name)))
    by_name = {t.name: t for t in reader.tensors}
    worst_right, best_wrong = 0.0, float("inf")
    for layer in range(config["num_hidden_layers"]):
        for short, hf, heads in (("attn_q", "q_proj", config["num_attention_heads"]),
                                 ("attn_k", "k_proj", config["num_key_value_heads"])):
            tensor = by_name[f"blk.{layer}.{short}.weight"]
            ours = dequantize(tensor.data, tensor.tensor_type).reshape(tensor.data.shape[0], -1).astype(np.float32)
            source = weights[f"model.layers.{layer}.self_attn.{hf}.weight"].astype(np.float32)
            scale = np.abs(source).max()
            right = np.abs(ours - interleave_rows(source, heads)).max() / scale
            wrong = np.abs(ours - source).max() / scale
            worst_right, best_wrong = max(worst_right, right), min(best_wrong, wrong)
    print(f"  q/k rows vs llama.cpp's permutation: max rel. error {worst_right:.4f}; unpermuted: min {best_wrong:.4f}")
    if not worst_right < 0.15 or not best_wrong > 4 * worst_right:
        failures.append(f"gguf-py: q/k permutation check failed ({worst_right} vs {best_wrong})")


def gguf_version():
    try:
        from importlib.metadata import version
        return version("gguf")
    except Exception:
        return "?"


def greedy_llama_cpp(path, prompt, count, threads):
    from llama_cpp import Llama

    llm = Llama(model_path=path, n_threads=threads, n_threads_batch=threads, n_ctx=512, logits_all=True, verbose=False)
    llm.reset()
    llm.eval(prompt)
    out = []
    for _ in range(count):
        token = int(llm.scores[llm.n_tokens - 1].argmax())
        out.append(token)
        if token == llm.token_eos():
            break
        llm.eval([token])
    text = llm.detokenize(out).decode("utf-8", "replace")
    tokenize = lambda s, special: llm.tokenize(s.encode(), add_bos=False, special=special)  # noqa: E731
    return out, text, tokenize


def logits_llama_cpp(path, tokens, threads):
    import numpy as np
    from llama_cpp import Llama

    llm = Llama(model_path=path, n_threads=threads, n_threads_batch=threads, n_ctx=512, logits_all=True, verbose=False)
    llm.reset()
    llm.eval(tokens)
    return np.array(llm.scores[: len(tokens)], dtype=np.float32)


def logits_mobilellm(binary, path, tokens, threads, activations):
    import numpy as np

    result = subprocess.run([binary, "logits", "--model", path, "--tokens", ",".join(map(str, tokens)), "--all-positions",
                             "--activations", activations, "--threads", str(threads)], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(result.stderr.strip())
    return np.array(json.loads(result.stdout)["logits"], dtype=np.float32)


def teacher_forced(binary, path, tokens, first, threads, activations):
    """Top-1 agreement of mobilellm with llama.cpp on positions first..end of `tokens`, and llama.cpp's top-1/top-2
    margin wherever they disagree."""
    import numpy as np

    theirs = logits_llama_cpp(path, tokens, threads)[first:]
    ours = logits_mobilellm(binary, path, tokens, threads, activations)[first:]
    top_theirs, top_ours = theirs.argmax(axis=1), ours.argmax(axis=1)
    ordered = np.sort(theirs, axis=1)
    margins = [float(ordered[i, -1] - ordered[i, -2]) for i in np.nonzero(top_theirs != top_ours)[0]]
    scale = np.abs(theirs).max()
    return float((top_theirs == top_ours).mean()), float(np.abs(theirs - ours).max() / scale), margins


def greedy_mobilellm(binary, path, prompt, count, threads):
    result = subprocess.run([binary, "generate", "--model", path, "--tokens", ",".join(map(str, prompt)),
                             "--max-tokens", str(count), "--activations", "int8", "--threads", str(threads), "--json"],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(result.stderr.strip())
    return json.loads(result.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mobilellm", default=os.path.join(ROOT, ".build", "release", "mobilellm"))
    parser.add_argument("--hf-dir", default=os.path.join(ROOT, ".cache", "smollm2-hf"))
    parser.add_argument("--types", default="q8_0,q4_0")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=24)
    args = parser.parse_args()

    if not os.path.exists(os.path.join(args.hf_dir, "config.json")):
        make_hf_directory(args.hf_dir)
    with open(os.path.join(args.hf_dir, "config.json")) as handle:
        config = json.load(handle)
    failures = []
    for kind in args.types.split(","):
        out = os.path.join(ROOT, ".cache", f"smollm2-interop.{kind}.gguf")
        print(f"== {kind}: mobilellm quantize --model {args.hf_dir} --out {out} --type {kind}")
        subprocess.run([args.mobilellm, "quantize", "--model", args.hf_dir, "--out", out, "--type", kind, "--quiet"], check=True)
        check_gguf_py(out, args.hf_dir, config, failures)

        prompts = []
        first, _, tokenize = greedy_llama_cpp(out, [1], 1, args.threads)
        chat = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
        prompts.append(("chat", tokenize(chat, True)))
        prompts.append(("raw", tokenize("The quick brown fox jumps over the lazy dog. Meanwhile, in a distant galaxy,", False)))
        for label, prompt in prompts:
            theirs, text, _ = greedy_llama_cpp(out, prompt, args.tokens, args.threads)
            ours = greedy_mobilellm(args.mobilellm, out, prompt, args.tokens, args.threads)
            same = ours["tokens"][: len(theirs)] == theirs
            prefix = next((i for i, (a, b) in enumerate(zip(ours["tokens"], theirs)) if a != b), min(len(theirs), len(ours["tokens"])))
            print(f"  llama.cpp {label}: {len(theirs)} tokens {text!r}")
            print(f"  mobilellm {label}: {'identical' if same else f'first {prefix} identical'}; text {ours['text']!r}")
            # Free-running greedy decoding diverges at the first near-tie; teacher forcing on llama.cpp's own
            # continuation measures the agreement at every position.
            for activations in ("int8", "exact"):
                agreement, difference, margins = teacher_forced(args.mobilellm, out, prompt + theirs, len(prompt) - 1,
                                                                args.threads, activations)
                print(f"  teacher-forced ({activations} activations): top-1 agreement {agreement:.3f} over {len(theirs) + 1} "
                      f"positions, max |Δlogit| {difference:.4f} of max |logit|; llama.cpp margins where they differ: "
                      f"{[round(m, 3) for m in margins]}")
                if agreement < 0.8 or any(m > 0.5 for m in margins):
                    failures.append(f"{kind} {label} {activations}: teacher-forced agreement {agreement}, margins {margins}")
    # Baseline: the same engine-to-engine comparison on llama.cpp's own file (the pinned SmolLM2 Q4_1 GGUF).
    print(f"== baseline: llama.cpp's own {os.path.basename(SMOLLM2_GGUF)}")
    first, _, tokenize = greedy_llama_cpp(SMOLLM2_GGUF, [1], 1, args.threads)
    chat = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    for label, prompt in (("chat", tokenize(chat, True)),
                          ("raw", tokenize("The quick brown fox jumps over the lazy dog. Meanwhile, in a distant galaxy,", False))):
        theirs, text, _ = greedy_llama_cpp(SMOLLM2_GGUF, prompt, args.tokens, args.threads)
        agreement, difference, margins = teacher_forced(args.mobilellm, SMOLLM2_GGUF, prompt + theirs, len(prompt) - 1, args.threads, "int8")
        print(f"  {label}: llama.cpp {text!r}; teacher-forced (int8): agreement {agreement:.3f}, max |Δlogit| {difference:.4f} "
              f"of max |logit|, margins where they differ {[round(m, 3) for m in margins]}")
    for failure in failures:
        print("FAIL:", failure)
    print("interop:", "ok" if not failures else f"{len(failures)} failure(s)")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
