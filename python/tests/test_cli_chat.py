"""`mobilellm chat` end to end through pipes, on the real SmolLM2 GGUF: the second turn computes only its new tokens
(checked against the conversation rendered and tokenized by the separate `template` and `tokenize` commands), answers
exactly what a fresh `generate` on the whole rendered conversation answers, and Ctrl-C (SIGINT) stops a long answer
without ending the program. Runs the release CLI (.build/release/mobilellm, built by scripts/test; MOBILELLM_CLI
overrides it)."""
import json
import os
import pathlib
import re
import signal
import subprocess
import tempfile
import threading
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
CLI = pathlib.Path(os.environ.get("MOBILELLM_CLI") or REPO / ".build" / "release" / "mobilellm")
ASSETS = pathlib.Path(os.environ.get("MOBILELLM_ASSETS") or REPO / ".cache" / "assets")
SMOLLM2 = ASSETS / "smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf"

# "turn 2 | reused: 45 tokens | prompt: 12 tokens, 512.3 tok/s | generated: 30 tokens, 180.2 tok/s | first token: ..."
STATS = re.compile(r"^turn (\d+) \| reused: (\d+) tokens \| prompt: (\d+) tokens, [^|]+\| generated: (\d+) tokens, "
                   r"[^|]+\| first token: [0-9.]+ ms \| stop: (\w+)")


@pytest.fixture(scope="module")
def model():
    if not CLI.exists():
        pytest.fail(f"{CLI} is missing: build it with `swift build -c release` (or set MOBILELLM_CLI)")
    if not SMOLLM2.exists():
        pytest.fail(f"{SMOLLM2} is missing: run `python3 scripts/fetch_assets.py` (or set MOBILELLM_ASSETS)")
    return str(SMOLLM2)


def run(*args, stdin=None):
    result = subprocess.run([str(CLI), *args], input=stdin, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result


def stats(stderr):
    return [STATS.match(line).groups() for line in stderr.splitlines() if STATS.match(line)]


def rendered_ids(model, messages):
    """The conversation with the generation prompt, rendered by `template` and tokenized by `tokenize` as
    transformers' apply_chat_template(tokenize=True) does (special tokens parsed, none added)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "messages.json"
        path.write_text(json.dumps(messages))
        text = json.loads(run("template", "--model", model, "--messages", str(path), "--add-generation-prompt").stdout)["text"]
    return json.loads(run("tokenize", "--model", model, "--text", text, "--parse-special").stdout)["tokens"]


def test_second_turn_feeds_only_new_tokens(model):
    questions = ["What is the capital of France?", "And of Germany?"]
    result = run("chat", "--model", model, "--max-tokens", "48", "--json", stdin="\n".join(questions) + "\n/exit\n")
    turns = [json.loads(line) for line in result.stdout.splitlines()]
    assert [t["turn"] for t in turns] == [1, 2]
    lines = stats(result.stderr)
    assert [(int(t), int(r), int(p), int(g)) for t, r, p, g, _ in lines] == \
        [(t["turn"], t["reused_tokens"], t["prompt_tokens"], t["generated_tokens"]) for t in turns]
    first, second = turns
    assert "Paris" in first["reply"]
    assert first["reused_tokens"] == 0
    assert first["prompt_tokens"] == len(rendered_ids(model, [{"role": "user", "content": questions[0]}]))

    conversation = [{"role": "user", "content": questions[0]}, {"role": "assistant", "content": first["reply"]},
                    {"role": "user", "content": questions[1]}]
    ids = rendered_ids(model, conversation)
    # Turn one is not computed again: its prompt and answer are reused, all but the answer's last token (generation
    # leaves its final token unfed); only the rest of the rendering is computed.
    assert second["reused_tokens"] == first["prompt_tokens"] + first["generated_tokens"] - 1
    assert second["prompt_tokens"] == len(ids) - second["reused_tokens"]
    assert second["prompt_tokens"] < 20

    # A fresh `generate` on the whole rendered conversation answers the same.
    fresh = json.loads(run("generate", "--model", model, "--tokens", ",".join(map(str, ids)), "--max-tokens", "48",
                           "--json").stdout)
    assert fresh["tokens"] == second["tokens"] and fresh["text"] == second["reply"]
    assert fresh["prompt_tokens"] == len(ids)


class Chat:
    """A `mobilellm chat` process with its stdout and stderr collected by reader threads."""

    def __init__(self, *args):
        self.process = subprocess.Popen([str(CLI), "chat", *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, bufsize=0)
        self.out, self.err = bytearray(), bytearray()
        self.readers = [threading.Thread(target=self._read, args=(stream, buffer), daemon=True)
                        for stream, buffer in ((self.process.stdout, self.out), (self.process.stderr, self.err))]
        for reader in self.readers:
            reader.start()

    @staticmethod
    def _read(stream, buffer):
        while chunk := stream.read1(4096) if hasattr(stream, "read1") else stream.read(4096):
            buffer.extend(chunk)

    def send(self, line):
        self.process.stdin.write((line + "\n").encode())
        self.process.stdin.flush()

    def wait_for(self, condition, what, timeout=120):
        deadline = time.monotonic() + timeout
        while not condition():
            assert self.process.poll() is None or condition(), f"chat exited while waiting for {what}: {self.err.decode()}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {self.err.decode()}"
            time.sleep(0.01)

    def stats(self):
        return stats(self.err.decode(errors="replace"))

    def close(self):
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


def test_sigint_cancels_the_answer_not_the_program(model):
    chat = Chat("--model", model, "--max-tokens", "1000")
    try:
        chat.send("Write a very long story about a dragon who learns to cook, in many chapters.")
        chat.wait_for(lambda: len(chat.out) > 20, "the answer to start")
        chat.process.send_signal(signal.SIGINT)
        chat.wait_for(lambda: len(chat.stats()) == 1, "turn 1's statistics")
        turn, reused, fed, generated, stop = chat.stats()[0]
        assert stop == "cancelled" and 0 < int(generated) < 1000
        assert chat.process.poll() is None, "SIGINT during an answer must not end the program"

        chat.send("What is the capital of France?")
        chat.wait_for(lambda: len(chat.stats()) == 2, "turn 2's statistics")
        turn, reused, fed2, generated, stop = chat.stats()[1]
        assert stop in ("eos", "max_tokens"), stop
        assert int(reused) >= int(fed), "turn 2 reuses turn 1's prompt"

        # SIGINT at the prompt ends the chat like /exit: status 0 (the exit-code convention has no signal codes).
        chat.process.send_signal(signal.SIGINT)
        assert chat.process.wait(timeout=30) == 0
    finally:
        chat.close()


def test_commands_and_end_of_input(model):
    result = run("chat", "--model", model, "--max-tokens", "8", "--json",
                 stdin="/help\n/system You are a pirate.\nHi\n/reset\n/bogus\nHi\n")
    turns = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(turns) == 2
    assert "/reset" in result.stderr and "unknown command /bogus" in result.stderr
    # After /reset only the system message remains, so the second "Hi" renders exactly like the first: everything but
    # the last prompt token is reused from the cache.
    assert turns[1]["reused_tokens"] == turns[0]["prompt_tokens"] - 1
    assert turns[1]["tokens"] == turns[0]["tokens"]
