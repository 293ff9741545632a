"""`mobilellm generate` control flags through the CLI on the real SmolLM2 GGUF: a raw prompt that opens <think> with
--reasoning-budget 16 (exactly 16 reasoning tokens, then the closing text's tokens as `tokenize` gives them, then the
answer; the JSON's reasoning/answer/events), --hide-reasoning, --logprobs (one entry per token, ordered top list, the
greedy token first), --ban and --logit-bias moving the greedy token, the same flags on --prompts-jsonl, and the
errors (missing grammar file, malformed schema, bad bias: exit 1 or 2 with one stderr line)."""
import json
import subprocess
import tempfile

from test_cli_chat import CLI, run  # noqa: F401
from test_cli_chat import model  # noqa: F401

THINKING = "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n<think>\n"
CLOSING = "\n\nConsidering the limited time, I have to give the answer now.\n</think>\n\n"


def generate(model, *args):
    return json.loads(run("generate", "--model", model, "--json", *args).stdout)


def ids(model, text):
    return json.loads(run("tokenize", "--model", model, "--text", text, "--parse-special").stdout)["tokens"]


def test_reasoning_budget_sixteen(model):
    out = generate(model, "--prompt", THINKING, "--no-chat-template", "--reasoning-budget", "16", "--max-tokens", "60",
                   "--ignore-eos")
    closing = ids(model, CLOSING)
    assert out["reasoning_tokens"] == 16
    assert out["events"] == [{"type": "reasoning_budget", "token_index": 16}]
    assert out["tokens"][16:16 + len(closing)] == closing
    assert out["text"] == out["reasoning"] + "</think>" + out["answer"]
    assert out["reasoning"].endswith("I have to give the answer now.\n")
    assert out["answer"].startswith("\n\n") and len(out["tokens"]) == 60
    assert "logprobs" not in out

    # The prompt opens a thought: tracking is on without any reasoning flag (no budget: nothing forced).
    free = generate(model, "--prompt", THINKING, "--no-chat-template", "--max-tokens", "16", "--ignore-eos")
    assert free["events"] == [] and free["tokens"] == out["tokens"][:16] and free["reasoning"] == free["text"]

    # --hide-reasoning prints the answer alone while streaming.
    streamed = run("generate", "--model", model, "--prompt", THINKING, "--no-chat-template", "--reasoning-budget", "16",
                   "--max-tokens", "60", "--ignore-eos", "--hide-reasoning").stdout
    assert streamed == out["answer"] + "\n"
    assert "reasoning budget ran out at token 16" in run(
        "generate", "--model", model, "--prompt", THINKING, "--no-chat-template", "--reasoning-budget", "16",
        "--max-tokens", "40", "--ignore-eos").stderr


def test_logprobs_bias_and_bans(model):
    question = ["--prompt", "What is the capital of France?", "--max-tokens", "6"]
    base = generate(model, *question, "--logprobs", "3")
    assert len(base["logprobs"]) == len(base["tokens"])
    for token, entry in zip(base["tokens"], base["logprobs"]):
        assert entry["token"] == token and entry["logprob"] <= 0
        assert len(entry["top"]) == 3
        assert entry["top"][0]["token"] == token and entry["top"][0]["logprob"] == entry["logprob"]
        assert [t["logprob"] for t in entry["top"]] == sorted((t["logprob"] for t in entry["top"]), reverse=True)
        assert isinstance(entry["piece"], str)
    first, second = base["logprobs"][0]["top"][0], base["logprobs"][0]["top"][1]
    assert generate(model, *question, "--ban", str(first["token"]))["tokens"][0] == second["token"]
    assert generate(model, *question, "--ban", first["piece"])["tokens"][0] == second["token"]
    assert generate(model, *question, "--logit-bias", "%d=-inf" % first["token"])["tokens"][0] == second["token"]
    assert generate(model, *question, "--logit-bias", "%d=100" % 504)["tokens"][0] == 504
    zero = generate(model, *question, "--logprobs", "0")
    assert all(entry["top"] == [] for entry in zero["logprobs"])

    # The same flags apply to every line of --prompts-jsonl, and the results equal single runs.
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl") as lines:
        lines.write(json.dumps({"prompt": THINKING}) + "\n" + json.dumps({"prompt": "What is the capital of France?"}) + "\n")
        lines.flush()
        result = run("generate", "--model", model, "--prompts-jsonl", lines.name, "--json", "--reasoning-budget", "4",
                     "--max-tokens", "30", "--ignore-eos", "--logprobs", "1", "--no-chat-template")
        batch = [json.loads(line) for line in result.stdout.splitlines()]
    single = generate(model, "--prompt", THINKING, "--no-chat-template", "--reasoning-budget", "4", "--max-tokens", "30",
                      "--ignore-eos", "--logprobs", "1")
    for key in ["tokens", "text", "reasoning", "answer", "reasoning_tokens", "events", "stop_reason"]:
        assert batch[0][key] == single[key], key
    assert [e["token"] for e in batch[0]["logprobs"]] == [e["token"] for e in single["logprobs"]]
    assert batch[0]["reasoning_tokens"] == 4 and batch[1]["events"] == []


def failure(*args):
    result = subprocess.run([str(CLI), *args], capture_output=True, text=True, timeout=300)
    lines = result.stderr.splitlines()
    # Input errors are one line; usage errors (exit 2) add ArgumentParser's usage lines after theirs.
    assert lines and lines[0].startswith("mobilellm: ") and result.stdout == "", result.stderr
    assert result.returncode == 2 or len(lines) == 1, result.stderr
    return result.returncode, lines[0]


def test_errors(model):
    base = ["generate", "--model", model, "--prompt", "Hi", "--max-tokens", "1"]
    status, line = failure(*base, "--grammar", "/nonexistent/answer.gbnf")
    assert status == 1 and "/nonexistent/answer.gbnf" in line
    with tempfile.NamedTemporaryFile("w", suffix=".json") as schema:
        schema.write('{"type": ')
        schema.flush()
        status, line = failure(*base, "--json-schema", schema.name)
        assert status == 1 and schema.name in line
    status, line = failure(*base, "--json-schema", "{not json}")
    assert status == 1 and "--json-schema (inline)" in line
    status, line = failure(*base, "--logit-bias", "7=lots")
    assert status == 2 and "--logit-bias" in line
    status, line = failure(*base, "--logit-bias", "999999=1")
    assert status == 1 and "logitBias" in line
    status, line = failure(*base, "--ban", "\u2603 no such piece \u2603")
    assert status == 1 and "logitBiasPieces" in line
    status, line = failure(*base, "--logprobs", "21")
    assert status == 2 and "--logprobs" in line


def test_logprobs_equal_log_softmax_of_mobilellm_logits(model):
    """`generate --logprobs` against `mobilellm logits` on the prompt plus each generated prefix: every chosen token's
    logprob and top-5 equal a double-precision log_softmax of those logits within 1e-5 (greedy: temperature 1, no
    other processor), and a logit bias shifts the distribution as log_softmax(logits + bias) says. Both run with int8
    activations, where a prefill row (what `logits` computes) and a decode step give the same logits; in the exact
    mode the multi-row prefill kernel agrees with the one-row decode kernel only to float rounding (4e-4 in logprob
    here), and ControlTests compares the exact mode against the session's own decode logits instead."""
    import math
    prompt = ids(model, "The capital of France is")
    out = generate(model, "--tokens", ",".join(map(str, prompt)), "--max-tokens", "6", "--ignore-eos", "--logprobs", "5",
                   "--temperature", "0", "--activations", "int8")
    rows = json.loads(run("logits", "--model", model, "--tokens", ",".join(map(str, prompt + out["tokens"][:-1])),
                          "--all-positions", "--activations", "int8").stdout)["logits"][len(prompt) - 1:]
    assert len(rows) == len(out["tokens"]) == len(out["logprobs"])

    def log_softmax(row):
        top = max(row)
        total = math.log(sum(math.exp(x - top) for x in row))
        return [x - top - total for x in row]

    for token, entry, row in zip(out["tokens"], out["logprobs"], rows):
        expected = log_softmax(row)
        assert entry["token"] == token and abs(entry["logprob"] - expected[token]) < 1e-5
        best = sorted(range(len(row)), key=lambda t: (-expected[t], t))[:5]
        assert [t["token"] for t in entry["top"]] == best
        assert all(abs(t["logprob"] - expected[t["token"]]) < 1e-5 for t in entry["top"])
    # The distribution after the processors: a bias of +2.5 on the runner-up.
    runner = out["logprobs"][0]["top"][1]["token"]
    biased = generate(model, "--tokens", ",".join(map(str, prompt)), "--max-tokens", "1", "--logprobs", "2", "--temperature", "0",
                      "--logit-bias", f"{runner}=2.5", "--activations", "int8")
    shifted = log_softmax([x + (2.5 if t == runner else 0) for t, x in enumerate(rows[0])])
    assert abs(biased["logprobs"][0]["logprob"] - shifted[biased["tokens"][0]]) < 1e-5
