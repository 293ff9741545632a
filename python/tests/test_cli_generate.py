"""`mobilellm generate` text features through the release CLI on the real SmolLM2 GGUF: the chat template by default
(against the conversation rendered by `template` and tokenized by `tokenize`), --no-chat-template, --system/--math,
--stop (against the same generation without the stop, cut with Python's str.find), --stop-at-boxed and
--extract-boxed (against a regex over the unstopped text), the statistics line and JSON fields, and usage errors."""
import json
import re
import subprocess

import pytest

from test_cli_chat import CLI, rendered_ids, run  # noqa: F401  (the `model` fixture is shared too)
from test_cli_chat import model  # noqa: F401

QUESTION = "What is the capital of France?"
# The MobileLLM-R1 model card's system message for math problems (what --math must send).
MODEL_CARD_MATH = "Please reason step by step, and put your final answer within \\boxed{}."
# A raw prompt SmolLM2 continues with more boxes: " \boxed{5} \boxed{6} ...".
BOXES = "Counting in boxes: \\boxed{1} \\boxed{2} \\boxed{3} \\boxed{4}"
STATS = re.compile(r"^prompt: (\d+) tokens, (?:[0-9.]+|-) tok/s \| generated: (\d+) tokens, (?:[0-9.]+|-) tok/s \| "
                   r"first token: [0-9.]+ ms \| stop: (\w+)$", re.M)


def generate(model, *args):
    result = run("generate", "--model", model, "--json", *args)
    output = json.loads(result.stdout)
    line = STATS.search(result.stderr)
    assert line, result.stderr
    assert (int(line[1]), int(line[2]), line[3]) == \
        (output["prompt_tokens"], output["generated_tokens"], output["stop_reason"])
    assert output["generated_tokens"] == len(output["tokens"])
    return output


def raw_ids(model, text):
    return json.loads(run("tokenize", "--model", model, "--text", text, "--add-special", "--parse-special").stdout)["tokens"]


def test_chat_template_by_default(model):
    ids = rendered_ids(model, [{"role": "user", "content": QUESTION}])
    templated = generate(model, "--prompt", QUESTION, "--max-tokens", "12")
    assert templated["prompt_tokens"] == len(ids)
    assert templated["tokens"] == generate(model, "--tokens", ",".join(map(str, ids)), "--max-tokens", "12")["tokens"]
    assert templated["text"].startswith("The capital of France is Paris")
    assert generate(model, "--prompt", QUESTION, "--max-tokens", "12", "--chat")["tokens"] == templated["tokens"]
    assert templated["prompt_tokens_per_second"] > 0 and templated["decode_tokens_per_second"] > 0
    assert templated["time_to_first_token_ms"] > 0

    raw = generate(model, "--prompt", QUESTION, "--max-tokens", "4", "--no-chat-template")
    assert raw["prompt_tokens"] == len(raw_ids(model, QUESTION))

    system = generate(model, "--prompt", QUESTION, "--max-tokens", "1", "--system", "Answer in French.")
    assert system["prompt_tokens"] == len(rendered_ids(model, [{"role": "system", "content": "Answer in French."},
                                                               {"role": "user", "content": QUESTION}]))
    math = generate(model, "--prompt", "What is 2 + 3?", "--max-tokens", "1", "--math")
    assert math["prompt_tokens"] == len(rendered_ids(model, [{"role": "system", "content": MODEL_CARD_MATH},
                                                             {"role": "user", "content": "What is 2 + 3?"}]))


def test_stop_strings_cut_the_text_across_token_boundaries(model):
    base = generate(model, "--prompt", QUESTION, "--max-tokens", "24", "--ignore-eos")
    text = base["text"]
    # A stop string made of the end of token 5's text and the start of token 6's.
    boundary = len(json.loads(run("detokenize", "--model", model, "--skip-special",
                                  "--tokens", ",".join(map(str, base["tokens"][:5]))).stdout)["text"])
    stop = text[boundary - 2:boundary + 2]
    assert len(stop) == 4
    want = text[:text.find(stop)]
    stopped = generate(model, "--prompt", QUESTION, "--max-tokens", "24", "--ignore-eos", "--stop", stop, "--stop", "@@@")
    assert stopped["text"] == want and stopped["stop_reason"] == "stop_string"
    assert stopped["tokens"] == base["tokens"][:len(stopped["tokens"])]
    # Streaming prints the same text, then a newline.
    streamed = run("generate", "--model", model, "--prompt", QUESTION, "--max-tokens", "24", "--ignore-eos", "--stop", stop)
    assert streamed.stdout == want + "\n"


def test_boxed_helpers(model):
    base = generate(model, "--prompt", BOXES, "--no-chat-template", "--max-tokens", "24")
    text = base["text"]
    boxes = re.findall(r"\\boxed\{([^{}]*)\}", text)
    assert len(boxes) >= 2, text

    first = generate(model, "--prompt", BOXES, "--no-chat-template", "--max-tokens", "24", "--stop-at-boxed")
    assert first["stop_reason"] == "boxed" and first["text"] == text[:text.index("}") + 1]

    extracted = generate(model, "--prompt", BOXES, "--no-chat-template", "--max-tokens", "24", "--extract-boxed")
    assert extracted["boxed"] == boxes[-1] and extracted["text"] == text
    plain = run("generate", "--model", model, "--prompt", BOXES, "--no-chat-template", "--max-tokens", "24", "--extract-boxed")
    assert plain.stdout == boxes[-1] + "\n"
    both = generate(model, "--prompt", BOXES, "--no-chat-template", "--max-tokens", "24", "--stop-at-boxed", "--extract-boxed")
    assert both["boxed"] == boxes[0]


@pytest.mark.parametrize("args", [
    ["--prompt", "x", "--math", "--system", "y"],
    ["--prompt", "x", "--final-only", "--math"],
    ["--prompt", "x", "--no-chat-template", "--chat"],
    ["--prompt", "x", "--no-chat-template", "--system", "y"],
    ["--tokens", "1,2", "--system", "y"],
    ["--prompt", "x", "--stop", ""],
])
def test_usage_errors(model, args):
    result = subprocess.run([str(CLI), "generate", "--model", model, *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stdout == "", result.stderr


# --- generate --prompts-jsonl, eval --parallel, bench --batch/--depth (issue 13, items 7 and 8) -------------------

def write_lines(tmp_path, lines, name="prompts.jsonl"):
    path = tmp_path / name
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return str(path)


def batch_outputs(model, path, *args):
    result = run("generate", "--model", model, "--prompts-jsonl", path, "--json", *args)
    assert re.search(r"^requests: \d+, at most \d+ at a time \| generated: \d+ tokens", result.stderr, re.M), result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


SINGLE_FIELDS = ["tokens", "text", "stop_reason", "prompt_tokens", "generated_tokens"]


def test_prompts_jsonl_matches_single_generate_in_input_order(model, tmp_path):
    ids = raw_ids(model, "The sky is")
    lines = [{"prompt": QUESTION, "max_tokens": 20},
             {"prompt": "Name three colors."},
             {"tokens": ids, "max_tokens": 6},
             {"prompt": "What is 2 + 3?", "max_tokens": 0},
             {"prompt": "Count to five."}]
    path = write_lines(tmp_path, lines[:2] + [""] + lines[2:])  # a blank line is skipped
    # Three at a time: later lines join as earlier ones end, and finish out of order.
    outputs = batch_outputs(model, path, "--max-tokens", "12", "--parallel", "3")
    assert len(outputs) == len(lines)
    singles = [generate(model, "--prompt", QUESTION, "--max-tokens", "20"),
               generate(model, "--prompt", "Name three colors.", "--max-tokens", "12"),
               generate(model, "--tokens", ",".join(map(str, ids)), "--max-tokens", "6"),
               generate(model, "--prompt", "What is 2 + 3?", "--max-tokens", "0"),
               generate(model, "--prompt", "Count to five.", "--max-tokens", "12")]
    for output, single in zip(outputs, singles):
        assert list(output) == list(single)  # the same fields, in the same order
        assert {k: output[k] for k in SINGLE_FIELDS} == {k: single[k] for k in SINGLE_FIELDS}
    assert outputs[3]["tokens"] == [] and outputs[3]["stop_reason"] == "max_tokens"
    # --parallel 1 (one at a time) and the chat/math options apply to "prompt" lines as --prompt does.
    assert [o["tokens"] for o in batch_outputs(model, path, "--max-tokens", "12", "--parallel", "1")] == [o["tokens"] for o in outputs]
    math = batch_outputs(model, write_lines(tmp_path, [{"prompt": "What is 2 + 3?", "max_tokens": 8}], "math.jsonl"), "--math")
    single = generate(model, "--prompt", "What is 2 + 3?", "--max-tokens", "8", "--math")
    assert {k: math[0][k] for k in SINGLE_FIELDS} == {k: single[k] for k in SINGLE_FIELDS}


def test_prompts_jsonl_stop_strings_and_boxed(model, tmp_path):
    path = write_lines(tmp_path, [{"prompt": BOXES, "max_tokens": 24}, {"prompt": QUESTION, "max_tokens": 24}])
    args = ["--no-chat-template", "--stop-at-boxed", "--extract-boxed", "--stop", " Paris"]
    outputs = batch_outputs(model, path, *args, "--parallel", "2")
    for output, prompt in zip(outputs, [BOXES, QUESTION]):
        single = generate(model, "--prompt", prompt, "--max-tokens", "24", *args)
        assert {k: output[k] for k in SINGLE_FIELDS + ["boxed"]} == {k: single[k] for k in SINGLE_FIELDS + ["boxed"]}
    assert outputs[0]["stop_reason"] == "boxed"


def test_prompts_jsonl_seeds(model, tmp_path):
    # int8 activations: a batch row's logits are bit-identical to a lone generation's there (the exact mode's
    # multi-row tile kernel agrees with the one-row kernel only to float rounding, which a T 0.9 draw near a
    # boundary can turn into another token), so the seeds alone decide the samples.
    sampling = ["--temperature", "0.9", "--max-tokens", "16", "--ignore-eos", "--activations", "int8"]
    path = write_lines(tmp_path, [{"prompt": QUESTION, "seed": 11}, {"prompt": QUESTION, "seed": 12}, {"prompt": QUESTION},
                                  {"prompt": QUESTION, "seed": 11}])
    outputs = batch_outputs(model, path, *sampling, "--seed", "5", "--parallel", "4")
    expected = [generate(model, "--prompt", QUESTION, *sampling, "--seed", str(seed))["tokens"] for seed in (11, 12, 5)]
    assert [o["tokens"] for o in outputs] == expected + [expected[0]]
    assert expected[0] != expected[1]  # the seeds matter


@pytest.mark.parametrize("line, field, message", [
    ("not json", "(line)", "not valid JSON"),
    ("[1, 2]", "(line)", "not a JSON object"),
    ({"prompt": "a", "tokens": [1]}, "prompt", "exactly one of"),
    ({"seed": 1}, "prompt", "exactly one of"),
    ({"prompt": 3}, "prompt", "expected a string"),
    ({"tokens": "1,2"}, "tokens", "expected an array"),
    ({"tokens": []}, "tokens", "at least one token id"),
    ({"tokens": [1, "2"]}, "tokens[1]", "expected an integer token id"),
    ({"tokens": [1, 49152]}, "tokens[1]", "outside the vocabulary (0..<49152)"),
    ({"tokens": [-1]}, "tokens[0]", "outside the vocabulary"),
    ({"prompt": "a", "seed": -1}, "seed", "expected an integer >= 0"),
    ({"prompt": "a", "seed": "7"}, "seed", "expected an integer >= 0"),
    ({"prompt": "a", "max_tokens": 1.5}, "max_tokens", "expected an integer >= 0"),
    ({"prompt": "a", "id": 1}, "id", "unknown field"),
])
def test_prompts_jsonl_bad_lines(model, tmp_path, line, field, message):
    # The bad line is the third of four: nothing is generated (every line is checked first).
    path = write_lines(tmp_path, [{"prompt": "fine"}, "", line, {"prompt": "also fine"}])
    result = subprocess.run([str(CLI), "generate", "--model", model, "--prompts-jsonl", path, "--json"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"mobilellm: error: {path}:3: field '{field}':"), result.stderr
    assert message in lines[0]


@pytest.mark.parametrize("args", [
    ["--prompts-jsonl", "x.jsonl"],  # needs --json
    ["--prompts-jsonl", "x.jsonl", "--json", "--prompt", "y"],
    ["--prompts-jsonl", "x.jsonl", "--json", "--parallel", "0"],
])
def test_prompts_jsonl_usage_errors(model, args):
    result = subprocess.run([str(CLI), "generate", "--model", model, *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stdout == "", result.stderr


def test_eval_parallel_gives_the_same_samples_and_scores(model, tmp_path):
    data = write_lines(tmp_path, [{"question": "What is 2 + 3?", "answer": "#### 5"},
                                  {"question": "Tom has 4 apples and eats one. How many are left?", "answer": "#### 3"},
                                  {"question": "What is 10 times 7?", "answer": "#### 70"}], "gsm8k.jsonl")

    def evaluate(parallel, *extra):
        out = tmp_path / f"eval-{parallel}-{len(extra)}.jsonl"
        result = run("eval", "--model", model, "--task", "gsm8k", "--data", data, "--samples", "3", "--max-tokens", "20",
                     "--parallel", str(parallel), "--output", str(out), "--include-responses", "--json", *extra)
        summary = json.loads(result.stdout)
        summary.pop("seconds")
        return summary, out.read_text()

    sampled = None
    for extra in [(), ("--temperature", "0")]:
        one = evaluate(1, *extra)
        assert evaluate(4, *extra) == one  # 3 samples of one question at a time, forked from one prefill
        assert evaluate(16, *extra) == one  # every question at once
        sampled = sampled or one
    # Sample k of a question is `generate --seed k` for it (the sampled path at the default temperature 0.6).
    first = json.loads(sampled[1].splitlines()[0])
    for sample in first["samples"]:
        single = generate(model, "--prompt", "What is 2 + 3?", "--max-tokens", "20", "--temperature", "0.6", "--top-p", "0.95",
                          "--seed", str(sample["seed"]))
        assert single["generated_tokens"] == sample["tokens"]
        assert single["text"].strip() == sample["response"]


def test_bench_batch_depth_sampling_fields(model):
    result = run("bench", "--model", model, "--batch", "2", "--depth", "8", "--temperature", "0.6", "--top-p", "0.95",
                 "--gen-tokens", "4", "--prompt-tokens", "16", "--repetitions", "1", "--json", "--activations", "int8")
    report = json.loads(result.stdout)
    assert report["batch"] == 2 and report["depth"] == 8
    assert report["activations"] == "int8"
    assert report["decode_tok_s"] > 0 and report["prefill_tok_s"] > 0
    assert report["per_sequence_decode_tok_s"] == pytest.approx(report["decode_tok_s"] / 2, abs=0.01)
    # SmolLM2: 30 layers × 2 (K, V) × 3 KV heads × 64 × 2 bytes (f16 cache) per position; the batched decode steps
    # feed positions 7..10, which attend 8..11 positions: 9.5 on average.
    assert report["kv_cache"] == "f16"
    assert report["kv_bytes_per_token"] == 30 * 2 * 3 * 64 * 2 * 19 // 2
    assert report["sampling"] == "temperature 0.6, top-p 0.95"

    single = json.loads(run("bench", "--model", model, "--depth", "8", "--gen-tokens", "4", "--prompt-tokens", "16",
                            "--repetitions", "1", "--json").stdout)
    assert single["batch"] == 1 and single["depth"] == 8 and single["sampling"] == "greedy"
    assert single["kv_bytes_per_token"] == 30 * 2 * 3 * 64 * 2 * 21 // 2  # positions 8..11 attend 9..12
    assert single["per_sequence_decode_tok_s"] == single["decode_tok_s"]


def test_bench_synthetic_chunked_attention_window():
    # MobileLLM-R1 shapes (llama4_text) with its 32K chunk: below the chunk size every earlier position is read.
    report = json.loads(run("bench", "--synthetic", "mobilellm-r1-140m", "--quant", "q4_0", "--batch", "3", "--depth", "8",
                            "--gen-tokens", "2", "--prompt-tokens", "8", "--repetitions", "1", "--json").stdout)
    assert report["batch"] == 3 and report["depth"] == 8
    assert report["kv_bytes_per_token"] == 15 * 2 * 3 * 64 * 2 * 17 // 2  # positions 7, 8 attend 8, 9


@pytest.mark.parametrize("args", [["--batch", "0"], ["--depth", "0"], ["--temperature", "-1"]])
def test_bench_usage_errors(model, args):
    result = subprocess.run([str(CLI), "bench", "--model", model, *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stdout == "", result.stderr


def test_quantize_synthetic_writes_a_loadable_gguf(model, tmp_path):
    out = tmp_path / "synthetic.gguf"
    # SmolLM2's shapes with random weights; the tokenizer comes from the real SmolLM2 GGUF (same 49,152 tokens).
    summary = json.loads(run("quantize", "--synthetic", "smollm2-135m", "--tokenizer", model, "--type", "q4_0",
                             "--out", str(out), "--json", "--quiet").stdout)
    assert summary["architecture"] == "llama" and summary["types"]["q4_0"] > 0
    output = generate(str(out), "--prompt", "Hello", "--no-chat-template", "--max-tokens", "3", "--ignore-eos")
    assert output["generated_tokens"] == 3 and isinstance(output["text"], str)
    # The same seed writes the same file.
    again = tmp_path / "again.gguf"
    run("quantize", "--synthetic", "smollm2-135m", "--tokenizer", model, "--type", "q4_0", "--out", str(again), "--quiet")
    assert again.read_bytes() == out.read_bytes()


@pytest.mark.parametrize("args, code, message", [
    (["--synthetic", "nope"], 2, "unknown shape"),
    (["--synthetic", "smollm2-135m", "--model", "x"], 2, "exactly one of --model or --synthetic"),
    (["--model", "x", "--tokenizer", "y"], 2, "--tokenizer goes with --synthetic"),
    (["--synthetic", "llama-r1-950m", "--tokenizer", "SMOLLM2"], 1, "field 'tokenizer.ggml.tokens': 49152 tokens"),
])
def test_quantize_synthetic_errors(model, tmp_path, args, code, message):
    args = [model if a == "SMOLLM2" else a for a in args]
    result = subprocess.run([str(CLI), "quantize", *args, "--type", "q4_0", "--out", str(tmp_path / "x.gguf")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == code and message in result.stderr, result.stderr
    assert not (tmp_path / "x.gguf").exists()
