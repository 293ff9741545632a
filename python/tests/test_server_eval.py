"""`mobilellm eval --endpoint` against `mobilellm serve` on the real SmolLM2 GGUF gives the same per-sample responses,
token counts and scores as in-process `mobilellm eval` on the same data and seeds (sampled at T 0.6 / top-p 0.95,
and greedy), at concurrency 1 and 3; and its usage errors."""
import json
import signal
import subprocess

import pytest

from test_cli_chat import CLI, run  # noqa: F401
from test_cli_chat import model  # noqa: F401

QUESTIONS = [{"question": "What is 2 + 3?", "answer": "#### 5"},
             {"question": "Tom has 4 apples and eats one. How many are left?", "answer": "#### 3"},
             {"question": "What is 10 times 7?", "answer": "#### 70"}]


@pytest.fixture(scope="module")
def server(model):
    """`mobilellm serve` on a free loopback port (--port 0), stopped with SIGTERM (exit 0) at the end."""
    process = subprocess.Popen([str(CLI), "serve", "--model", model, "--port", "0", "--parallel", "8"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert line, process.stderr.read()
        yield json.loads(line)["listening"]
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0


def evaluate(tmp_path, name, *source):
    data = tmp_path / "gsm8k.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in QUESTIONS))
    out = tmp_path / f"{name}.jsonl"
    result = run("eval", *source, "--task", "gsm8k", "--data", str(data), "--samples", "3", "--max-tokens", "20",
                 "--output", str(out), "--include-responses", "--json")
    summary = json.loads(result.stdout)
    summary.pop("seconds")
    summary["settings"].pop("model")  # the model path or the endpoint URL
    return summary, [json.loads(line) for line in out.read_text().splitlines()]


@pytest.mark.parametrize("temperature", ["0.6", "0"])
def test_endpoint_eval_equals_in_process_eval(model, server, tmp_path, temperature):
    local = evaluate(tmp_path, "local", "--model", model, "--temperature", temperature, "--parallel", "1")
    for concurrency in ("1", "3"):
        remote = evaluate(tmp_path, f"remote-{concurrency}", "--endpoint", server + "/v1", "--concurrency", concurrency,
                          "--temperature", temperature)
        assert remote == local
    if temperature != "0":
        # The samples differ from each other (the seeds reach the server).
        responses = [sample["response"] for sample in local[1][0]["samples"]]
        assert len(set(responses)) > 1


@pytest.mark.parametrize("args, code, message", [
    (["--endpoint", "ftp://x/v1"], 1, "expected an http(s) URL"),
    (["--endpoint", "http://127.0.0.1:9/v1"], 1, "cannot connect"),
    (["--api-key", "k"], 2, "--api-key needs --endpoint"),
    (["--endpoint", "http://127.0.0.1:9/v1", "--concurrency", "0"], 2, "--concurrency: expected 1...256"),
    (["--endpoint", "http://127.0.0.1:9/v1", "--model", "SMOLLM2"], 2, "--endpoint replaces the model"),
])
def test_endpoint_usage_errors(model, tmp_path, args, code, message):
    data = tmp_path / "gsm8k.jsonl"
    data.write_text(json.dumps(QUESTIONS[0]) + "\n")
    args = [model if a == "SMOLLM2" else a for a in args]
    result = subprocess.run([str(CLI), "eval", "--task", "gsm8k", "--data", str(data), *args], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == code and message in result.stderr, result.stderr


def test_endpoint_errors_name_the_server_answer(server, tmp_path):
    # A model name the server does not serve: the server's OpenAI error reaches the user.
    data = tmp_path / "gsm8k.jsonl"
    data.write_text(json.dumps(QUESTIONS[0]) + "\n")
    result = subprocess.run([str(CLI), "eval", "--task", "gsm8k", "--data", str(data), "--endpoint", server + "/v1",
                             "--served-model", "nope"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "HTTP 404" in result.stderr and "does not exist" in result.stderr, result.stderr
