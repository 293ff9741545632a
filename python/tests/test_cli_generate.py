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
