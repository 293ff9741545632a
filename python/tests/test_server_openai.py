"""`mobilellm serve` (docs/server.md) proven with the official `openai` Python client, on the real SmolLM2 GGUF.

What is proven against what:
- Greedy chat replies are byte-identical to `mobilellm generate --json` on the same single user message (the chat
  template by default), and a system + user pair to `generate --system`; /v1/completions with a text prompt equals
  `generate --no-chat-template`, with token ids `generate --tokens`; token counts (usage) equal the CLI's.
- Streaming (SSE) assembles to the non-streamed answer, with the documented chunk shapes (role first, one
  finish_reason per choice, the include_usage chunk with `choices: []`, `data: [DONE]`).
- `n` samples: indices 0..n-1, deterministic with `seed`, sample i equal to a single request with seed + i.
- response_format json_schema / json_object: the content validates with `jsonschema`; it equals the CLI's
  `--json-schema` output.
- The reasoning split (`reasoning_content`, reasoning_budget, reasoning_format "none", vLLM's
  continue_final_message) against `generate --reasoning-budget` on the same rendered prompt.
- logprobs (chat and completions) against `generate --logprobs`; stop strings against str.find on the unstopped
  reply; logit_bias against `generate --logit-bias`; sampling filters that keep one token (top_k 1, min_p 1,
  tiny top_p) are greedy, top_k 0/-1 are no limit; max_tokens / max_completion_tokens; context clipping with
  ignore_eos against generate's text (special tokens left out unless skip_special_tokens is false); n beyond
  --parallel.
- A client that disconnects frees its slot (a --parallel 1 server answers the next request); a full queue is a 503;
  SIGTERM ends running streams with a finish chunk and [DONE] and exits 0.
- Errors through the client (400 with `param`, 404 model_not_found, 400 context_length_exceeded, 401 with
  --api-key) and /metrics in Prometheus text with the documented names.

The server helpers here (`running_server`, `http_request`, `sse_events`) are shared by test_server_hostile.py and
test_server_load.py. Runs the release CLI (.build/release/mobilellm, MOBILELLM_CLI overrides it); skips when the
binary has no `serve` subcommand or `openai` is not importable (pinned in scripts/test: openai==3.63.0)."""
import contextlib
import functools
import http.client
import json
import os
import pathlib
import queue
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest

from test_cli_chat import CLI, SMOLLM2, run  # noqa: F401

try:
    import openai
except ImportError:  # the tests skip; the helpers below are still importable
    openai = None

try:
    import jsonschema
except ImportError:
    jsonschema = None

HOST = "127.0.0.1"
MODEL_ID = SMOLLM2.name[: -len(".gguf")]  # --model-id defaults to the file name without its extension
QUESTION = "What is the capital of France?"
POEM = "Write a short poem about the sea."
STARTUP_SECONDS = 60
STOP_SECONDS = 30


# --- helpers shared by the server test modules ------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def serve_supported():
    """Whether the CLI has a `serve` subcommand (its help names `mobilellm serve`)."""
    if not CLI.exists():
        return False
    try:
        result = subprocess.run([str(CLI), "serve", "--help"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0 and "mobilellm serve" in result.stdout + result.stderr


def require_serve():
    if not CLI.exists():
        pytest.fail(f"{CLI} is missing: build it with `swift build -c release` (or set MOBILELLM_CLI)")
    if not SMOLLM2.exists():
        pytest.fail(f"{SMOLLM2} is missing: run `python3 scripts/fetch_assets.py` (or set MOBILELLM_ASSETS)")
    if not serve_supported():
        pytest.skip(f"{CLI} has no `serve` subcommand")


class Server:
    """A running `mobilellm serve` child process on 127.0.0.1."""

    def __init__(self, proc, port, model_id, stderr_path):
        self.proc, self.port, self.model_id, self.stderr_path = proc, port, model_id, stderr_path

    @property
    def base_url(self):
        return f"http://{HOST}:{self.port}/v1"

    def stderr(self):
        try:
            return pathlib.Path(self.stderr_path).read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def remove_log(self):
        with contextlib.suppress(OSError):
            os.unlink(self.stderr_path)

    def alive(self):
        return self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=STOP_SECONDS):
        """Sends `sig` and returns the exit code; kills the process (and fails) if it does not exit in time."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            pytest.fail(f"mobilellm serve did not exit within {timeout} s of {sig.name}\n{self.stderr()}")


def start_server(*args, model=None):
    """Starts `mobilellm serve --port 0 ARGS` and waits (at most 60 s) for its `{"listening", "model"}` line."""
    require_serve()
    stderr = tempfile.NamedTemporaryFile(prefix="mobilellm-serve-", suffix=".log", delete=False)
    proc = subprocess.Popen([str(CLI), "serve", "--model", str(model or SMOLLM2), "--port", "0", *args],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, text=True)
    stderr.close()
    lines = queue.Queue()

    def drain():  # the first line goes to the queue; anything later is read and dropped so the pipe never fills
        first = True
        for line in proc.stdout:
            if first:
                lines.put(line)
                first = False
        if first:
            lines.put(None)

    threading.Thread(target=drain, daemon=True).start()
    server = Server(proc, None, None, stderr.name)
    try:
        line = lines.get(timeout=STARTUP_SECONDS)
    except queue.Empty:
        line = None
    if line is None:
        proc.kill()
        proc.wait(timeout=10)
        pytest.fail(f"mobilellm serve printed no listening line within {STARTUP_SECONDS} s\n{server.stderr()}")
    try:
        listening = json.loads(line)
        match = re.fullmatch(r"http://127\.0\.0\.1:(\d+)", listening["listening"])
        assert match, listening
        server.port, server.model_id = int(match[1]), listening["model"]
        assert 0 < server.port < 65536
    except Exception:
        proc.kill()
        proc.wait(timeout=10)
        raise AssertionError(f"bad listening line {line!r}\n{server.stderr()}")
    return server


@contextlib.contextmanager
def running_server(*args, model=None):
    """A server for the block; at the end SIGTERM must stop it with exit code 0 within 30 s."""
    server = start_server(*args, model=model)
    try:
        yield server
    except BaseException:
        if server.alive():
            server.stop()
        raise
    code = server.stop()
    assert code == 0, f"mobilellm serve exited {code} after SIGTERM\n{server.stderr()}"
    server.remove_log()


def http_request(port, method, path, body=None, headers=None, timeout=60):
    """One HTTP/1.1 exchange with 127.0.0.1:port: (status, lower-cased headers, body bytes)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers = {"Content-Type": "application/json", **(headers or {})}
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def http_json(port, method, path, body=None, headers=None, timeout=60):
    status, _, data = http_request(port, method, path, body, headers, timeout)
    return status, json.loads(data)


def assert_error_shape(payload, status=None):
    """The OpenAI error body: {"error": {"message": str, "type": str, "param": str|null, "code": str|null}}."""
    assert isinstance(payload, dict) and set(payload) == {"error"}, payload
    error = payload["error"]
    assert isinstance(error, dict), payload
    assert {"message", "type", "param", "code"} <= set(error), payload
    assert isinstance(error["message"], str) and error["message"], payload
    assert isinstance(error["type"], str) and error["type"], payload
    assert error["param"] is None or isinstance(error["param"], str), payload
    assert error["code"] is None or isinstance(error["code"], (str, int)), payload
    return error


class Stream:
    """A raw streaming request over http.client: the SSE `data:` payloads one at a time."""

    def __init__(self, port, path, body, headers=None, timeout=60):
        self.conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
        self.conn.request("POST", path, body=json.dumps(body).encode(),
                          headers={"Content-Type": "application/json", **(headers or {})})
        self.response = self.conn.getresponse()
        self.status = self.response.status
        self.headers = {k.lower(): v for k, v in self.response.getheaders()}

    def next_data(self, max_lines=10000):
        """The next `data:` payload (a string: JSON text or "[DONE]"), or None at the end of the body."""
        for _ in range(max_lines):
            line = self.response.readline()
            if not line:
                return None
            line = line.decode().rstrip("\r\n")
            if line.startswith("data:"):
                return line[5:].strip()
        raise AssertionError("no data line in 10000 lines")

    def rest(self, max_events=100000):
        events = []
        for _ in range(max_events):
            data = self.next_data()
            if data is None:
                return events
            events.append(data)
        raise AssertionError("stream too long")

    def close(self):
        try:
            self.conn.sock and self.conn.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.conn.close()


def sse_events(port, path, body, headers=None, timeout=120):
    """A whole streaming request: (status, headers, [data payloads])."""
    stream = Stream(port, path, body, headers, timeout)
    try:
        if stream.status != 200:
            return stream.status, stream.headers, [stream.response.read().decode(errors="replace")]
        return stream.status, stream.headers, stream.rest()
    finally:
        stream.close()


METRIC_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)(\s+\d+)?$")


def metrics(port):
    """/metrics parsed: {name: {labels-string: value}} (labels-string "" when there are none)."""
    status, headers, data = http_request(port, "GET", "/metrics", timeout=30)
    assert status == 200, data
    assert headers.get("content-type", "").startswith("text/plain"), headers
    parsed = {}
    for line in data.decode().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        match = METRIC_LINE.match(line)
        assert match, f"not Prometheus text: {line!r}"
        parsed.setdefault(match[1], {})[match[2] or ""] = float(match[3])
    return parsed


def metric_total(parsed, name):
    return sum(parsed.get(name, {}).values())


def wait_for(predicate, timeout, interval=0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


# --- the CLI reference ------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def generate(*args):
    """`mobilellm generate --model SMOLLM2 --json ARGS` (cached: the reference answers)."""
    return json.loads(run("generate", "--model", str(SMOLLM2), "--json", *args).stdout)


@functools.lru_cache(maxsize=None)
def tokenize(text, special=False):
    flags = ["--add-special", "--parse-special"] if special else ["--parse-special"]
    return json.loads(run("tokenize", "--model", str(SMOLLM2), "--text", text, *flags).stdout)["tokens"]


def continued_ids(messages):
    """vLLM's continue_final_message rendering: the conversation without a generation prompt, cut right after the
    final (assistant) message's content, tokenized with special tokens parsed."""
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "messages.json"
        path.write_text(json.dumps(messages))
        text = json.loads(run("template", "--model", str(SMOLLM2), "--messages", str(path)).stdout)["text"]
    last = messages[-1]["content"]
    return tokenize(text[: text.rfind(last) + len(last)])


FINISH = {"eos": "stop", "stop_string": "stop", "grammar": "stop", "max_tokens": "length", "context_full": "length"}


# --- fixtures ---------------------------------------------------------------------------------------------------

CONTEXT = 1024


@pytest.fixture(scope="module")
def server():
    if openai is None:
        pytest.skip("the `openai` package is not importable (pip install openai==3.63.0)")
    with running_server("--parallel", "8", "--context-length", str(CONTEXT)) as s:
        yield s


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0, timeout=120)


def chat(client, content, **kwargs):
    messages = content if isinstance(content, list) else [{"role": "user", "content": content}]
    kwargs.setdefault("temperature", 0)
    return client.chat.completions.create(model=MODEL_ID, messages=messages, **kwargs)


def message_text(choice):
    return choice.message.content or ""


def reasoning_text(message):
    value = getattr(message, "reasoning_content", None)
    if value is None and message.model_extra:
        value = message.model_extra.get("reasoning_content")
    return value


# --- endpoints --------------------------------------------------------------------------------------------------

def test_health_and_models(server, client):
    assert server.model_id == MODEL_ID
    status, body = http_json(server.port, "GET", "/health")
    assert (status, body) == (200, {"status": "ok"})

    models = client.models.list()
    ids = [m.id for m in models.data]
    assert ids == [MODEL_ID]
    model = models.data[0]
    assert model.object == "model" and model.owned_by == "mobilellm" and isinstance(model.created, int)
    status, raw = http_json(server.port, "GET", "/v1/models")
    assert status == 200 and raw["object"] == "list"
    # vLLM reports the configured context length as max_model_len.
    assert raw["data"][0]["max_model_len"] == CONTEXT


def test_chat_equals_generate(server, client):
    for prompt, k in [(QUESTION, 16), (POEM, 24)]:
        want = generate("--prompt", prompt, "--max-tokens", str(k))
        got = chat(client, prompt, max_tokens=k)
        assert got.object == "chat.completion" and got.id and isinstance(got.created, int)
        assert got.model == MODEL_ID
        assert len(got.choices) == 1
        choice = got.choices[0]
        assert choice.index == 0 and choice.message.role == "assistant"
        assert message_text(choice) == want["text"]
        assert choice.finish_reason == FINISH[want["stop_reason"]]
        assert got.usage.prompt_tokens == want["prompt_tokens"]
        assert got.usage.completion_tokens == want["generated_tokens"]
        assert got.usage.total_tokens == want["prompt_tokens"] + want["generated_tokens"]
        assert got.usage.completion_tokens_details.reasoning_tokens == 0
        assert not reasoning_text(choice.message)
    # The POEM answer is longer than 24 tokens: it stops for length.
    assert generate("--prompt", POEM, "--max-tokens", "24")["stop_reason"] == "max_tokens"


def test_system_message_and_content_parts_equal_generate(server, client):
    system = "Answer in French."
    want = generate("--prompt", QUESTION, "--system", system, "--max-tokens", "16")
    got = chat(client, [{"role": "system", "content": system}, {"role": "user", "content": QUESTION}], max_tokens=16)
    assert message_text(got.choices[0]) == want["text"]
    assert got.usage.prompt_tokens == want["prompt_tokens"]
    # Content as an array of text parts is the same message.
    parts = chat(client, [{"role": "system", "content": [{"type": "text", "text": system}]},
                          {"role": "user", "content": [{"type": "text", "text": "What is the capital "},
                                                       {"type": "text", "text": "of France?"}]}], max_tokens=16)
    assert message_text(parts.choices[0]) == want["text"]
    # "developer" is an accepted role; "model": "default" and a missing model both mean the served model.
    developer = chat(client, [{"role": "developer", "content": system}, {"role": "user", "content": QUESTION}],
                     max_tokens=2)
    assert developer.choices[0].finish_reason in ("stop", "length")
    status, body = http_json(server.port, "POST", "/v1/chat/completions",
                             {"model": "default", "messages": [{"role": "user", "content": QUESTION}],
                              "max_tokens": 16, "temperature": 0})
    assert status == 200 and body["choices"][0]["message"]["content"] == generate(
        "--prompt", QUESTION, "--max-tokens", "16")["text"]
    status, body = http_json(server.port, "POST", "/v1/chat/completions",
                             {"messages": [{"role": "user", "content": QUESTION}], "max_tokens": 16, "temperature": 0})
    assert status == 200 and body["choices"][0]["message"]["content"] == generate(
        "--prompt", QUESTION, "--max-tokens", "16")["text"]


def test_stream_chat_equals_non_stream(server, client):
    full = chat(client, POEM, max_tokens=20)
    chunks = list(chat(client, POEM, max_tokens=20, stream=True, stream_options={"include_usage": True}))
    assert chunks, "no chunks"
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    # With include_usage the last chunk has no choices and the usage; the others carry no usage.
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert last.usage.prompt_tokens == full.usage.prompt_tokens
    assert last.usage.completion_tokens == full.usage.completion_tokens
    assert last.usage.total_tokens == full.usage.total_tokens
    assert all(c.usage is None for c in chunks[:-1])
    body = [c for c in chunks[:-1]]
    assert all(len(c.choices) == 1 and c.choices[0].index == 0 for c in body)
    assert body[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in body if c.choices[0].finish_reason]
    assert finishes == [full.choices[0].finish_reason] == ["length"]
    assert body[-1].choices[0].finish_reason == "length"
    text = "".join(c.choices[0].delta.content or "" for c in body)
    assert text == message_text(full.choices[0])

    # Without include_usage: no usage chunk; the same text.
    chunks = list(chat(client, POEM, max_tokens=20, stream=True))
    assert all(c.choices for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == message_text(full.choices[0])


def test_stream_raw_sse_framing(server):
    body = {"model": MODEL_ID, "messages": [{"role": "user", "content": QUESTION}], "max_tokens": 8,
            "temperature": 0, "stream": True, "n": 2}
    status, headers, events = sse_events(server.port, "/v1/chat/completions", body)
    assert status == 200, events
    assert headers.get("content-type", "").startswith("text/event-stream"), headers
    assert events[-1] == "[DONE]" and events.count("[DONE]") == 1
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    want = generate("--prompt", QUESTION, "--max-tokens", "8")
    for index in (0, 1):
        mine = [choice for c in chunks for choice in c["choices"] if choice["index"] == index]
        assert mine and mine[0]["delta"].get("role") == "assistant"
        assert "".join(choice["delta"].get("content") or "" for choice in mine) == want["text"]
        assert [choice["finish_reason"] for choice in mine if choice.get("finish_reason")] == \
            [FINISH[want["stop_reason"]]]
        assert mine[-1]["finish_reason"] == FINISH[want["stop_reason"]]


def test_completions_text_and_token_prompts_equal_generate(server, client):
    prompt = "The three primary colors are"
    want = generate("--no-chat-template", "--prompt", prompt, "--max-tokens", "12")
    got = client.completions.create(model=MODEL_ID, prompt=prompt, max_tokens=12, temperature=0)
    assert got.object == "text_completion"
    assert len(got.choices) == 1 and got.choices[0].index == 0
    assert got.choices[0].text == want["text"]
    assert got.choices[0].finish_reason == FINISH[want["stop_reason"]]
    assert got.usage.prompt_tokens == want["prompt_tokens"]
    assert got.usage.completion_tokens == want["generated_tokens"]

    ids = tokenize("Once upon a time", special=True)
    want_ids = generate("--tokens", ",".join(map(str, ids)), "--max-tokens", "12")
    got = client.completions.create(model=MODEL_ID, prompt=ids, max_tokens=12, temperature=0)
    assert got.choices[0].text == want_ids["text"]
    assert got.usage.prompt_tokens == len(ids)
    assert got.usage.completion_tokens == want_ids["generated_tokens"]

    # Several prompts with n=2: index runs over prompts x n (prompt-major, as OpenAI and vLLM).
    got = client.completions.create(model=MODEL_ID, prompt=[prompt, ids], n=2, max_tokens=12, temperature=0)
    assert [c.index for c in sorted(got.choices, key=lambda c: c.index)] == [0, 1, 2, 3]
    texts = {c.index: c.text for c in got.choices}
    assert [texts[0], texts[1], texts[2], texts[3]] == [want["text"], want["text"], want_ids["text"], want_ids["text"]]

    # Streaming completions assemble to the same text.
    chunks = list(client.completions.create(model=MODEL_ID, prompt=prompt, max_tokens=12, temperature=0,
                                            stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == want["text"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == want["generated_tokens"]


def test_n_samples_are_seeded_per_index(server, client):
    prompt = "Write one sentence about a dog."
    kwargs = dict(temperature=0.8, seed=1234, max_tokens=12)
    first = chat(client, prompt, n=4, **kwargs)
    assert sorted(c.index for c in first.choices) == [0, 1, 2, 3]
    texts = [c.message.content for c in sorted(first.choices, key=lambda c: c.index)]
    again = chat(client, prompt, n=4, **kwargs)
    assert [c.message.content for c in sorted(again.choices, key=lambda c: c.index)] == texts, \
        (first.choices, first.usage, again.choices, again.usage)
    assert len(set(texts)) > 1, texts  # different seeds per sample
    singles = [chat(client, prompt, n=1, temperature=0.8, seed=1234 + i, max_tokens=12) for i in range(4)]
    assert [s.choices[0].message.content for s in singles] == texts
    # The prompt is counted once; the completion tokens of every sample add up.
    assert first.usage.prompt_tokens == singles[0].usage.prompt_tokens
    assert first.usage.completion_tokens == sum(s.usage.completion_tokens for s in singles)


SCHEMA = {"type": "object",
          "properties": {"name": {"type": "string", "maxLength": 20},
                         "color": {"type": "string", "enum": ["red", "green", "blue"]},
                         "legs": {"type": "integer"}},
          "required": ["name", "color", "legs"], "additionalProperties": False}


def test_response_format_json_schema_and_json_object(server, client):
    if jsonschema is None:
        pytest.skip("jsonschema is not importable")
    prompt = "Give me a JSON object describing a red cat named Tom with four legs."
    got = chat(client, prompt, max_tokens=60,
               response_format={"type": "json_schema", "json_schema": {"name": "cat", "schema": SCHEMA, "strict": True}})
    content = message_text(got.choices[0])
    value = json.loads(content)
    jsonschema.validate(value, SCHEMA)
    assert got.choices[0].finish_reason == "stop"
    want = generate("--prompt", prompt, "--max-tokens", "60", "--json-schema", json.dumps(SCHEMA))
    assert content == want["text"]

    got = chat(client, "Describe the planet Mars in JSON.", max_tokens=48, response_format={"type": "json_object"})
    if got.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(message_text(got.choices[0])), dict)
    else:  # cut by max_tokens: still the start of an object
        assert message_text(got.choices[0]).lstrip().startswith("{")
    # A small budget that still finishes: an object with one short field.
    tiny = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"],
            "additionalProperties": False}
    got = chat(client, "Is water wet? Answer in JSON.", max_tokens=24,
               response_format={"type": "json_schema", "json_schema": {"name": "t", "schema": tiny}})
    jsonschema.validate(json.loads(message_text(got.choices[0])), tiny)
    # {"type": "text"} is plain generation.
    plain = chat(client, QUESTION, max_tokens=16, response_format={"type": "text"})
    assert message_text(plain.choices[0]) == generate("--prompt", QUESTION, "--max-tokens", "16")["text"]


THINK_MESSAGES = [{"role": "user", "content": "What is 7 times 8?"}, {"role": "assistant", "content": "<think>\n"}]
CONTINUE = {"continue_final_message": True, "add_generation_prompt": False}


def test_reasoning_content_split_and_budget(server, client):
    ids = continued_ids(THINK_MESSAGES)
    want = generate("--tokens", ",".join(map(str, ids)), "--max-tokens", "40", "--reasoning-budget", "6")
    assert want["reasoning_tokens"] == 6 and want["answer"].strip()
    got = chat(client, THINK_MESSAGES, max_tokens=40, extra_body={**CONTINUE, "reasoning_budget": 6})
    message = got.choices[0].message
    reasoning, content = reasoning_text(message), message.content or ""
    assert reasoning, message
    assert "<think>" not in content and "</think>" not in content
    assert "<think>" not in reasoning and "</think>" not in reasoning
    assert reasoning.strip() == want["reasoning"].strip()
    assert content.strip() == want["answer"].strip()
    assert got.usage.prompt_tokens == len(ids)
    assert got.usage.completion_tokens == want["generated_tokens"]
    assert got.usage.completion_tokens_details.reasoning_tokens == 6

    # Streamed: reasoning arrives as delta.reasoning_content, the answer as delta.content.
    chunks = list(chat(client, THINK_MESSAGES, max_tokens=40, stream=True,
                       extra_body={**CONTINUE, "reasoning_budget": 6}))
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    streamed_reasoning = "".join((getattr(d, "reasoning_content", None) or
                                  (d.model_extra or {}).get("reasoning_content") or "") for d in deltas)
    assert streamed_reasoning == reasoning
    assert "".join(d.content or "" for d in deltas) == content

    # reasoning_format "none": everything in content (the same text as the CLI's, which keeps the markers).
    plain = generate("--tokens", ",".join(map(str, ids)), "--max-tokens", "20")
    got = chat(client, THINK_MESSAGES, max_tokens=20, extra_body={**CONTINUE, "reasoning_format": "none"})
    message = got.choices[0].message
    assert not reasoning_text(message)
    assert message.content == plain["text"]
    assert got.usage.completion_tokens == plain["generated_tokens"]


def test_logprobs_chat_and_completions(server, client):
    want = generate("--prompt", QUESTION, "--max-tokens", "6", "--logprobs", "3")
    got = chat(client, QUESTION, max_tokens=6, logprobs=True, top_logprobs=3)
    entries = got.choices[0].logprobs.content
    assert len(entries) == got.usage.completion_tokens == want["generated_tokens"] == 6
    assert "".join(e.token for e in entries) == message_text(got.choices[0]) == want["text"]
    for entry, ref in zip(entries, want["logprobs"]):
        assert entry.logprob <= 0
        tops = entry.top_logprobs
        assert len(tops) == 3
        values = [t.logprob for t in tops]
        assert values == sorted(values, reverse=True) and all(v <= 0 for v in values)
        assert tops[0].token == entry.token and abs(tops[0].logprob - entry.logprob) < 1e-6  # greedy: top-1
        # The same distribution as the CLI reports (batched arithmetic may differ in the last bits).
        assert entry.token == ref["piece"]
        assert abs(entry.logprob - ref["logprob"]) < 0.02, (entry, ref)
        assert [t.token for t in tops] == [t["piece"] for t in ref["top"]] or \
            max(abs(a.logprob - b["logprob"]) for a, b in zip(tops, ref["top"])) < 0.02

    # Without logprobs there are none.
    assert chat(client, QUESTION, max_tokens=2).choices[0].logprobs is None

    prompt = "The three primary colors are"
    done = client.completions.create(model=MODEL_ID, prompt=prompt, max_tokens=8, temperature=0, logprobs=2)
    lp = done.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == done.usage.completion_tokens
    assert "".join(lp.tokens) == done.choices[0].text
    assert all(v <= 0 for v in lp.token_logprobs)
    for top, token, value in zip(lp.top_logprobs, lp.tokens, lp.token_logprobs):
        assert 1 <= len(top) <= 2
        assert max(top.values()) == pytest.approx(value, abs=1e-6)  # greedy: the chosen token is the most likely
        assert top.get(token) == pytest.approx(value, abs=1e-6)
    if lp.text_offset is not None:
        assert lp.text_offset == sorted(lp.text_offset)


def test_stop_strings_cut_before_the_stop(server, client):
    unstopped = message_text(chat(client, POEM, max_tokens=24).choices[0])
    assert len(unstopped) > 20, unstopped
    middle = len(unstopped) // 2
    stop = unstopped[middle:middle + 4]
    want = unstopped[: unstopped.find(stop)]
    got = chat(client, POEM, max_tokens=24, stop=stop)
    assert message_text(got.choices[0]) == want and got.choices[0].finish_reason == "stop"
    got = chat(client, POEM, max_tokens=24, stop=["@@never@@", stop])
    assert message_text(got.choices[0]) == want and got.choices[0].finish_reason == "stop"
    assert got.usage.completion_tokens < 24
    chunks = list(chat(client, POEM, max_tokens=24, stop=[stop], stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == want
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    # Completions too.
    raw = client.completions.create(model=MODEL_ID, prompt="One, two, three, four,", max_tokens=16, temperature=0)
    text = raw.choices[0].text
    stop = text[len(text) // 2: len(text) // 2 + 3]
    cut = client.completions.create(model=MODEL_ID, prompt="One, two, three, four,", max_tokens=16, temperature=0,
                                    stop=stop)
    assert cut.choices[0].text == text[: text.find(stop)] and cut.choices[0].finish_reason == "stop"


def test_logit_bias_bans_the_first_greedy_token(server, client):
    first = generate("--prompt", QUESTION, "--max-tokens", "6")["tokens"][0]
    want = generate("--prompt", QUESTION, "--max-tokens", "6", "--logit-bias", f"{first}=-100")
    base = chat(client, QUESTION, max_tokens=6, logprobs=True, top_logprobs=1)
    biased = chat(client, QUESTION, max_tokens=6, logit_bias={str(first): -100}, logprobs=True, top_logprobs=1)
    assert biased.choices[0].logprobs.content[0].token != base.choices[0].logprobs.content[0].token
    assert message_text(biased.choices[0]) == want["text"] != message_text(base.choices[0])
    # Completions take logit_bias too.
    prompt = "The three primary colors are"
    plain = generate("--no-chat-template", "--prompt", prompt, "--max-tokens", "4")
    got = client.completions.create(model=MODEL_ID, prompt=prompt, max_tokens=4, temperature=0,
                                    logit_bias={str(plain["tokens"][0]): -100})
    assert got.choices[0].text == generate("--no-chat-template", "--prompt", prompt, "--max-tokens", "4",
                                           "--logit-bias", f"{plain['tokens'][0]}=-100")["text"]


def test_sampling_filters_that_keep_one_token_are_greedy(server, client):
    greedy = generate("--prompt", POEM, "--max-tokens", "12")["text"]
    for extra in [{"top_k": 1}, {"min_p": 1.0}]:
        got = chat(client, POEM, max_tokens=12, temperature=1.0, seed=7, extra_body=extra)
        assert message_text(got.choices[0]) == greedy, extra
    got = chat(client, POEM, max_tokens=12, temperature=1.0, seed=7, top_p=1e-6)
    assert message_text(got.choices[0]) == greedy
    # top_k 0 and -1 mean no limit (as in vLLM): the same seeded sample as without top_k.
    free = message_text(chat(client, POEM, max_tokens=12, temperature=0.9, seed=11).choices[0])
    for top_k in (0, -1):
        got = chat(client, POEM, max_tokens=12, temperature=0.9, seed=11, extra_body={"top_k": top_k})
        assert message_text(got.choices[0]) == free, top_k


def test_max_tokens_and_max_completion_tokens(server, client):
    for kwargs, count in [({"max_tokens": 3}, 3), ({"max_completion_tokens": 5}, 5),
                          # vLLM: max_completion_tokens wins over the deprecated max_tokens.
                          ({"max_tokens": 7, "max_completion_tokens": 3}, 3)]:
        got = chat(client, POEM, **kwargs)
        assert got.usage.completion_tokens == count, kwargs
        assert got.choices[0].finish_reason == "length", kwargs
        assert message_text(got.choices[0]) == generate("--prompt", POEM, "--max-tokens", str(count))["text"]
    got = client.completions.create(model=MODEL_ID, prompt="Once upon a time", max_tokens=4, temperature=0)
    assert got.usage.completion_tokens == 4 and got.choices[0].finish_reason == "length"


# --- a tiny context: clipping and overflow ----------------------------------------------------------------------

TINY = 64


@pytest.fixture(scope="module")
def tiny(server):
    with running_server("--parallel", "2", "--context-length", str(TINY)) as s:
        yield s, openai.OpenAI(base_url=s.base_url, api_key="x", max_retries=0, timeout=120)


def test_max_tokens_clipped_to_the_context(tiny):
    s, c = tiny
    # The CLI's text past the end of the turn (ignore_eos): special tokens are left out of the text, as with
    # skip_special_tokens (default true, as in vLLM).
    long = generate("--prompt", QUESTION, "--max-tokens", "40", "--ignore-eos")["text"]
    for kwargs in [{"max_tokens": 500}, {}]:  # beyond the room left, and the default (the room left)
        got = chat(c, QUESTION, extra_body={"ignore_eos": True}, **kwargs)
        used = got.usage.prompt_tokens + got.usage.completion_tokens
        assert got.choices[0].finish_reason == "length", kwargs
        assert used in (TINY, TINY + 1), (kwargs, got.usage)  # the last token need not be fed
        content = message_text(got.choices[0])
        assert "<|im_end|>" not in content and "<|im_start|>" not in content, (kwargs, content)
        assert long.startswith(content), (kwargs, content, long)
    # skip_special_tokens false (vLLM's extension) keeps their text.
    got = chat(c, QUESTION, max_tokens=500, extra_body={"ignore_eos": True, "skip_special_tokens": False})
    assert "<|im_end|>" in message_text(got.choices[0])
    assert got.choices[0].finish_reason == "length"


def test_context_overflow_is_400(tiny):
    s, c = tiny
    with pytest.raises(openai.BadRequestError) as info:
        chat(c, "word " * 200, max_tokens=4)
    assert info.value.status_code == 400 and info.value.code == "context_length_exceeded"
    assert info.value.type == "invalid_request_error"
    with pytest.raises(openai.BadRequestError) as info:
        c.completions.create(model=MODEL_ID, prompt=[1] + [504] * 100, max_tokens=4)
    assert info.value.code == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError) as info:
        chat(c, "word " * 200, max_tokens=4, stream=True)
    assert info.value.code == "context_length_exceeded"
    # The server is fine afterwards.
    assert chat(c, QUESTION, max_tokens=2).usage.completion_tokens == 2


def test_n_beyond_parallel_completes(tiny):
    """n=16 samples on a --parallel 2 server: the forks wait their turn, none is lost."""
    s, c = tiny
    got = chat(c, QUESTION, n=16, max_tokens=2, temperature=0.7, seed=3)
    assert sorted(ch.index for ch in got.choices) == list(range(16))
    assert all(ch.finish_reason in ("stop", "length") for ch in got.choices)
    singles = {i: chat(c, QUESTION, n=1, max_tokens=2, temperature=0.7, seed=3 + i).choices[0].message.content
               for i in (0, 15)}
    assert {ch.index: ch.message.content for ch in got.choices if ch.index in singles} == singles


# --- errors through the client ----------------------------------------------------------------------------------

def test_errors_through_the_client(server, client):
    with pytest.raises(openai.BadRequestError) as info:
        chat(client, QUESTION, temperature=5, max_tokens=2)
    assert info.value.status_code == 400 and info.value.param == "temperature"
    assert info.value.type == "invalid_request_error"
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    assert info.value.status_code == 404 and info.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError) as info:
        client.completions.create(model="nope", prompt="hi", max_tokens=2)
    assert info.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL_ID, messages=[], max_tokens=2)
    assert info.value.status_code == 400 and info.value.param and info.value.param.startswith("messages")
    with pytest.raises(openai.BadRequestError) as info:
        chat(client, QUESTION, top_logprobs=21, logprobs=True, max_tokens=2)
    assert info.value.param == "top_logprobs"
    with pytest.raises(openai.BadRequestError) as info:
        chat(client, QUESTION, n=0, max_tokens=2)
    assert info.value.param == "n"
    # A streaming request that is refused is a plain JSON error, before any event.
    with pytest.raises(openai.BadRequestError) as info:
        chat(client, QUESTION, temperature=5, max_tokens=2, stream=True)
    assert info.value.param == "temperature"
    # Unknown fields are ignored.
    got = chat(client, QUESTION, max_tokens=2, extra_body={"no_such_field": {"x": 1}}, user="someone", store=False)
    assert got.usage.completion_tokens == 2


def test_api_key_and_model_id(server):
    with running_server("--parallel", "2", "--api-key", "secret", "--model-id", "my-model") as s:
        assert s.model_id == "my-model"
        wrong = openai.OpenAI(base_url=s.base_url, api_key="wrong", max_retries=0, timeout=60)
        with pytest.raises(openai.AuthenticationError) as info:
            chat(wrong, QUESTION, max_tokens=2)
        assert info.value.status_code == 401
        assert "invalid_api_key" in (info.value.code, info.value.type)
        with pytest.raises(openai.AuthenticationError):
            wrong.models.list()
        status, body = http_json(s.port, "POST", "/v1/chat/completions",
                                 {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
        assert status == 401
        assert_error_shape(body)
        right = openai.OpenAI(base_url=s.base_url, api_key="secret", max_retries=0, timeout=60)
        assert [m.id for m in right.models.list().data] == ["my-model"]
        got = right.chat.completions.create(model="my-model", messages=[{"role": "user", "content": QUESTION}],
                                            max_tokens=16, temperature=0)
        assert got.model == "my-model"
        assert message_text(got.choices[0]) == generate("--prompt", QUESTION, "--max-tokens", "16")["text"]
        # With --model-id, the file name is just another unknown model.
        with pytest.raises(openai.NotFoundError) as info:
            chat(right, QUESTION, max_tokens=2)
        assert info.value.code == "model_not_found"
        # /health and /metrics stay open.
        assert http_json(s.port, "GET", "/health") == (200, {"status": "ok"})
        assert "mobilellm_requests_total" in metrics(s.port)


# --- /metrics ---------------------------------------------------------------------------------------------------

NAMES = ["mobilellm_requests_total", "mobilellm_prompt_tokens_total", "mobilellm_generation_tokens_total",
         "mobilellm_queue_depth", "mobilellm_running_sequences", "mobilellm_decode_tokens_per_second"]


def test_metrics(server, client):
    chat(client, QUESTION, max_tokens=4)
    before = metrics(server.port)
    for name in NAMES:
        assert name in before, (name, sorted(before))
    labels = list(before["mobilellm_requests_total"])
    assert all('endpoint="' in l and 'status="' in l for l in labels), labels
    assert any('status="200"' in l and "chat" in l for l in labels), labels
    got = chat(client, POEM, max_tokens=6)
    after = metrics(server.port)
    assert metric_total(after, "mobilellm_generation_tokens_total") - \
        metric_total(before, "mobilellm_generation_tokens_total") == got.usage.completion_tokens
    assert metric_total(after, "mobilellm_prompt_tokens_total") - \
        metric_total(before, "mobilellm_prompt_tokens_total") == got.usage.prompt_tokens
    assert metric_total(after, "mobilellm_requests_total") > metric_total(before, "mobilellm_requests_total")
    assert metric_total(after, "mobilellm_running_sequences") == 0
    assert metric_total(after, "mobilellm_queue_depth") == 0
    assert metric_total(after, "mobilellm_decode_tokens_per_second") >= 0
    # A 400 is counted under its status.
    http_json(server.port, "POST", "/v1/chat/completions", {"messages": []})
    labels = list(metrics(server.port)["mobilellm_requests_total"])
    assert any('status="400"' in l for l in labels), labels


# --- slots: disconnects, a full queue, SIGTERM ------------------------------------------------------------------

LONG = {"model": MODEL_ID, "messages": [{"role": "user", "content": POEM}], "max_tokens": 2000,
        "ignore_eos": True, "temperature": 0}


@pytest.fixture(scope="module")
def single(server):
    with running_server("--parallel", "1", "--context-length", "4096") as s:
        yield s, openai.OpenAI(base_url=s.base_url, api_key="x", max_retries=0, timeout=60)


def running(port):
    return metric_total(metrics(port), "mobilellm_running_sequences")


def test_stream_disconnect_frees_the_slot(single):
    s, c = single
    stream = Stream(s.port, "/v1/chat/completions", {**LONG, "stream": True}, timeout=60)
    try:
        assert stream.status == 200
        assert stream.next_data() and stream.next_data()
        assert running(s.port) == 1
    finally:
        stream.close()
    assert_slot_freed(s, c)


def test_non_stream_disconnect_frees_the_slot(single):
    s, c = single
    conn = http.client.HTTPConnection(HOST, s.port, timeout=30)
    conn.request("POST", "/v1/chat/completions", body=json.dumps(LONG).encode(),
                 headers={"Content-Type": "application/json"})
    assert wait_for(lambda: running(s.port) == 1, 10), "the long request never started"
    conn.sock.shutdown(socket.SHUT_RDWR)
    conn.close()
    assert_slot_freed(s, c)


def assert_slot_freed(s, c):
    """The --parallel 1 server's only slot is free: a short request completes within 20 s (it would wait for the
    abandoned one otherwise), and no sequence is left running."""
    start = time.monotonic()
    got = chat(c, QUESTION, max_tokens=4, timeout=20)
    assert got.usage.completion_tokens == 4 and time.monotonic() - start < 20
    assert wait_for(lambda: running(s.port) == 0, 10)


def test_full_queue_is_503(server):
    with running_server("--parallel", "1", "--max-queue", "1") as s:
        first = Stream(s.port, "/v1/chat/completions", {**LONG, "stream": True}, timeout=60)
        queued = None
        try:
            assert first.status == 200 and first.next_data()
            queued = http.client.HTTPConnection(HOST, s.port, timeout=60)
            queued.request("POST", "/v1/chat/completions", headers={"Content-Type": "application/json"},
                           body=json.dumps({"messages": [{"role": "user", "content": QUESTION}], "max_tokens": 2,
                                            "temperature": 0}).encode())
            assert wait_for(lambda: metric_total(metrics(s.port), "mobilellm_queue_depth") == 1, 10)
            status, body = http_json(s.port, "POST", "/v1/chat/completions",
                                     {"messages": [{"role": "user", "content": QUESTION}], "max_tokens": 2})
            assert status == 503, body
            assert_error_shape(body)
        finally:
            first.close()
        # The queued request runs once the first one is gone.
        response = queued.getresponse()
        assert response.status == 200
        assert json.loads(response.read())["usage"]["completion_tokens"] == 2
        queued.close()


def test_sigterm_ends_streams_and_exits_0(server):
    s = start_server("--parallel", "2")
    try:
        stream = Stream(s.port, "/v1/chat/completions", {**LONG, "stream": True}, timeout=60)
        assert stream.status == 200 and stream.next_data() and stream.next_data()
        s.proc.send_signal(signal.SIGTERM)
        events = stream.rest()
        stream.close()
        assert events and events[-1] == "[DONE]", events[-3:]
        finishes = [json.loads(e)["choices"][0]["finish_reason"] for e in events[:-1]
                    if json.loads(e)["choices"] and json.loads(e)["choices"][0].get("finish_reason")]
        assert len(finishes) == 1, events[-3:]
        assert s.proc.wait(timeout=STOP_SECONDS) == 0, s.stderr()
        s.remove_log()
    finally:
        if s.alive():
            s.stop(signal.SIGKILL)
    # SIGINT on an idle server: exit 0 too.
    s = start_server("--parallel", "1")
    assert http_json(s.port, "GET", "/health") == (200, {"status": "ok"})
    assert s.stop(signal.SIGINT) == 0, s.stderr()
    s.remove_log()
