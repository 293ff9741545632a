"""`mobilellm serve` under load: 16 concurrent streaming clients (threads, one keep-alive connection each) x 20
requests, over 8 distinct short prompts (4 chat, 4 completions), temperature 0, max_tokens 8, on a --parallel 8
server (so requests also wait in the queue).

Proven against the serial run (one client, one request at a time, one per distinct prompt, computed first): 0 errors,
every streamed reply (text, finish_reason, usage) equals its serial counterpart (continuous batching and queueing do
not change greedy output), every stream ends with one finish chunk and `data: [DONE]`, the whole run stays bounded
(under 240 s), and afterwards /metrics shows no running or queued sequence. Aggregate decode throughput vs the single
client is printed (pytest -s) and written to /tmp/mobilellm_server_load.json. No `openai` dependency (raw SSE over
http.client)."""
import http.client
import json
import threading
import time

import pytest

from test_server_openai import HOST, metric_total, metrics, running_server

CLIENTS = 16
REQUESTS_PER_CLIENT = 20
MAX_TOKENS = 8
WALL_LIMIT = 240  # seconds for the concurrent phase
REPORT = "/tmp/mobilellm_server_load.json"

# Chat prompts carry a short system message: SmolLM2's template otherwise adds its ~20-token default one, and the
# prompts' prefill would dominate the run.
SYSTEM = {"role": "system", "content": "Be brief."}
PROMPTS = [
    ("/v1/chat/completions", {"messages": [SYSTEM, {"role": "user", "content": "Name a fruit."}]}),
    ("/v1/chat/completions", {"messages": [SYSTEM, {"role": "user", "content": "What is 2 + 2?"}]}),
    ("/v1/chat/completions", {"messages": [SYSTEM, {"role": "user", "content": "Say hello."}]}),
    ("/v1/chat/completions", {"messages": [SYSTEM, {"role": "user", "content": "What color is the sky?"}]}),
    ("/v1/completions", {"prompt": "The capital of Italy is"}),
    ("/v1/completions", {"prompt": "One, two, three,"}),
    ("/v1/completions", {"prompt": "def add(a, b):"}),
    ("/v1/completions", {"prompt": "Roses are red,"}),
]


@pytest.fixture(scope="module")
def load_server():
    with running_server("--parallel", "8", "--context-length", "256") as s:
        yield s


class Client:
    """One keep-alive connection; `stream(i)` runs PROMPTS[i] streamed and returns the assembled result."""

    def __init__(self, port):
        self.port = port
        self.conn = http.client.HTTPConnection(HOST, port, timeout=120)

    def stream(self, index):
        path, fields = PROMPTS[index]
        body = {"model": "default", "temperature": 0, "max_tokens": MAX_TOKENS, "stream": True,
                "stream_options": {"include_usage": True}, **fields}
        self.conn.request("POST", path, body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        response = self.conn.getresponse()
        if response.status != 200:
            raise AssertionError(f"status {response.status}: {response.read()[:300]!r}")
        events = []
        for _ in range(10000):
            line = response.readline()
            if not line:
                break
            line = line.decode().strip()
            if line.startswith("data:"):
                events.append(line[5:].strip())
                if events[-1] == "[DONE]":
                    break
        response.read()  # the chunked terminator, so the connection can carry the next request
        if response.will_close:
            self.conn.close()
        if not events or events[-1] != "[DONE]" or events.count("[DONE]") != 1:
            raise AssertionError(f"stream did not end with one [DONE]: {events[-3:]}")
        chunks = [json.loads(e) for e in events[:-1]]
        text, finishes, usage = [], [], None
        for chunk in chunks:
            if chunk.get("usage"):
                usage = chunk["usage"]
            for choice in chunk["choices"]:
                if path.endswith("/chat/completions"):
                    text.append(choice["delta"].get("content") or "")
                else:
                    text.append(choice.get("text") or "")
                if choice.get("finish_reason"):
                    finishes.append(choice["finish_reason"])
        if len(finishes) != 1 or usage is None or chunks[-1]["choices"] != []:
            raise AssertionError(f"bad stream framing: finishes {finishes}, usage {usage}")
        return {"text": "".join(text), "finish_reason": finishes[0], "completion_tokens": usage["completion_tokens"],
                "prompt_tokens": usage["prompt_tokens"]}

    def close(self):
        self.conn.close()


def test_concurrent_streams_equal_serial(load_server):
    port = load_server.port
    # The serial answers: one client, one request at a time (each prompt twice: the second is the timed one).
    serial = Client(port)
    expected, serial_tokens, serial_seconds = [], 0, 0.0
    try:
        for index in range(len(PROMPTS)):
            serial.stream(index)  # warm-up
            start = time.monotonic()
            result = serial.stream(index)
            serial_seconds += time.monotonic() - start
            serial_tokens += result["completion_tokens"]
            expected.append(result)
    finally:
        serial.close()
    assert all(e["completion_tokens"] > 0 for e in expected), expected

    errors, mismatches, tokens = [], [], [0] * CLIENTS
    lock = threading.Lock()

    def worker(k):
        client = Client(port)
        try:
            for j in range(REQUESTS_PER_CLIENT):
                index = (k + j) % len(PROMPTS)
                try:
                    result = client.stream(index)
                except Exception as error:
                    with lock:
                        errors.append(f"client {k} request {j} (prompt {index}): {error!r}")
                    client.close()
                    client = Client(port)
                    continue
                tokens[k] += result["completion_tokens"]
                if result != expected[index]:
                    with lock:
                        mismatches.append((k, j, index, result, expected[index]))
        finally:
            client.close()

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(CLIENTS)]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max(1.0, WALL_LIMIT - (time.monotonic() - start)))
    wall = time.monotonic() - start
    hung = [t for t in threads if t.is_alive()]

    report = {
        "clients": CLIENTS, "requests_per_client": REQUESTS_PER_CLIENT, "max_tokens": MAX_TOKENS,
        "requests": CLIENTS * REQUESTS_PER_CLIENT, "errors": len(errors), "mismatches": len(mismatches),
        "wall_seconds": round(wall, 3), "generated_tokens": sum(tokens),
        "aggregate_tokens_per_second": round(sum(tokens) / wall, 2) if wall else None,
        "single_client_tokens_per_second": round(serial_tokens / serial_seconds, 2) if serial_seconds else None,
        "requests_per_second": round(CLIENTS * REQUESTS_PER_CLIENT / wall, 2) if wall else None,
        "first_errors": errors[:5],
    }
    if report["aggregate_tokens_per_second"] and report["single_client_tokens_per_second"]:
        report["speedup"] = round(report["aggregate_tokens_per_second"] / report["single_client_tokens_per_second"], 2)
    with open(REPORT, "w") as f:
        json.dump(report, f, indent=2)
    print(f"\nserver load: {json.dumps(report)}")

    assert not errors, errors[:5]
    assert not mismatches, mismatches[:3]
    assert not hung, f"{len(hung)} clients still running after {WALL_LIMIT} s"
    assert wall < WALL_LIMIT
    # Nothing left running or queued once every client is done.
    after = metrics(port)
    assert metric_total(after, "mobilellm_running_sequences") == 0
    assert metric_total(after, "mobilellm_queue_depth") == 0
