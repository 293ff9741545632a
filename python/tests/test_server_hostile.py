"""`mobilellm serve` under hostile requests over raw sockets (127.0.0.1 only, a timeout on every operation).

Each case sends one malformed or out-of-range request and proves, against docs/server.md:
- the answer is the documented 4xx (400 with `param` naming the field, 404, 405, 413), or, where the bytes are not
  parseable HTTP at all, a 4xx or a closed connection (never a hang, never a 2xx/5xx);
- every 4xx that has a body is the OpenAI error shape {"error": {"message", "type", "param", "code"}};
- the server still answers GET /health with 200 {"status": "ok"} afterwards (a crash is detected and the server is
  restarted so one bad case does not fail the others).
Plus slowloris (byte-at-a-time headers on several connections: /health keeps answering during and after) and a
crowd of idle connections. The server runs with --max-body-bytes 262144: the deep-nesting bodies (100 KB) fit, the
413 cases stay small. No `openai`
dependency: the framing is checked byte by byte here."""
import dataclasses
import json
import socket
import threading
import time

import pytest

from test_server_openai import HOST, Stream, assert_error_shape, generate, require_serve, start_server

MAX_BODY = 262144
IO_TIMEOUT = 10  # seconds for any single exchange
MAX_RESPONSE = 1 << 20


class Holder:
    server = None


@pytest.fixture(scope="module")
def hostile():
    require_serve()
    holder = Holder()
    holder.server = start_server("--parallel", "2", "--context-length", "512", "--max-body-bytes", str(MAX_BODY))
    yield holder
    server = holder.server
    if server.alive():
        code = server.stop()
        assert code == 0, f"exit {code} after SIGTERM\n{server.stderr()}"
        server.remove_log()


@pytest.fixture
def port(hostile):
    """The hostile server's port; a server that died in an earlier case is restarted (that case already failed)."""
    if not hostile.server.alive():
        hostile.server = start_server("--parallel", "2", "--context-length", "512", "--max-body-bytes", str(MAX_BODY))
    assert health(hostile.server.port), "the server does not answer /health before the case"
    yield hostile.server.port
    assert hostile.server.alive(), f"the server died\n{hostile.server.stderr()}"
    assert health(hostile.server.port), f"no 200 from /health after the case\n{hostile.server.stderr()}"


# --- raw HTTP ---------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Reply:
    status: object  # int, or None when the connection closed without a response
    headers: dict
    body: bytes
    note: str = ""


def read_reply(sock, deadline):
    """Reads one HTTP response (Content-Length, chunked, or to the close); None status if closed before one."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = recv(sock, deadline)
        if chunk is None:
            return Reply(None, {}, data, "timeout before a status line")
        if not chunk:
            return Reply(None, {}, data, "closed")
        data += chunk
        if len(data) > MAX_RESPONSE:
            raise AssertionError("response headers too large")
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    assert parts[0].startswith("HTTP/1."), lines[0]
    status = int(parts[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        length = int(headers["content-length"])
        while len(body) < length:
            chunk = recv(sock, deadline)
            if not chunk:
                break
            body += chunk
        body = body[:length]
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        body = dechunk(read_more(sock, deadline, body, lambda data: data.endswith(b"0\r\n\r\n")))
    elif status not in (204, 304) and not 100 <= status < 200:
        body = read_more(sock, deadline, body, lambda data: False)
    return Reply(status, headers, body)


def read_more(sock, deadline, body, complete):
    """Appends what the socket sends to `body` until `complete(body)`, the peer closes, or the deadline; refuses
    responses over MAX_RESPONSE bytes."""
    while not complete(body):
        chunk = recv(sock, deadline)
        if not chunk:
            break
        body += chunk
        if len(body) > MAX_RESPONSE:
            raise AssertionError("response too large")
    return body


def dechunk(data):
    out = b""
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        data = rest[size + 2:]
    return out


def recv(sock, deadline):
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return None
    sock.settimeout(remaining)
    try:
        return sock.recv(65536)
    except socket.timeout:
        return None
    except (ConnectionResetError, BrokenPipeError):
        return b""


def exchange(port, raw, *, half_close=False, timeout=IO_TIMEOUT):
    """Sends `raw` on a fresh connection (then shuts down writing when `half_close`) and reads one response."""
    deadline = time.monotonic() + timeout
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        try:
            sock.sendall(raw)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may stop reading and close on a request it refuses; read what it answered
        return read_reply(sock, deadline)


def health(port, timeout=IO_TIMEOUT):
    try:
        reply = exchange(port, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                         timeout=timeout)
    except OSError:
        return False
    return reply.status == 200 and json.loads(reply.body) == {"status": "ok"}


def request(method, path, body=b"", content_type="application/json", headers=(), length=None):
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    elif isinstance(body, str):
        body = body.encode()
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    if content_type:
        lines.append(f"Content-Type: {content_type}")
    lines.append(f"Content-Length: {len(body) if length is None else length}")
    lines.extend(headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def chat_body(**fields):
    base = {"model": "default", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1}
    base.update(fields)
    return base


def chat_raw(text):
    """A chat request whose body is the given JSON text (bytes or str) as is."""
    return request("POST", "/v1/chat/completions", text)


def chat_fields(**fields):
    return request("POST", "/v1/chat/completions", chat_body(**fields))


def completion_fields(**fields):
    body = {"model": "default", "prompt": "Hi", "max_tokens": 1}
    body.update(fields)
    return request("POST", "/v1/completions", body)


def without(field):
    body = chat_body()
    del body[field]
    return request("POST", "/v1/chat/completions", body)


# --- the cases --------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Case:
    raw: bytes
    statuses: tuple = (400,)  # the acceptable statuses
    may_close: bool = False  # the bytes are not parseable HTTP: a closed connection is acceptable too
    param: str = None  # the error's param must start with this
    code: str = None
    half_close: bool = False


def huge_header():
    return (b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n")


def many_headers():
    return (b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
            b"".join(b"X-H%d: v\r\n" % i for i in range(10_000)) + b"\r\n")


def chunked(body_chunks, path="/v1/chat/completions"):
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n").encode()
    return head + body_chunks


HTTP_LEVEL = (400, 408, 411, 413, 414, 431)

CASES = {
    # Framing.
    "truncated-body-then-close": Case(request("POST", "/v1/chat/completions", b'{"messages": [', length=1000),
                                      statuses=HTTP_LEVEL, may_close=True, half_close=True),
    "huge-header-100k": Case(huge_header(), statuses=HTTP_LEVEL, may_close=True),
    "huge-header-count-10k": Case(many_headers(), statuses=HTTP_LEVEL, may_close=True),
    "huge-url-100k": Case(b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", statuses=HTTP_LEVEL + (404,),
                          may_close=True),
    "not-http": Case(b"HELLO THERE\r\n\r\n", statuses=HTTP_LEVEL, may_close=True),
    "binary-garbage": Case(bytes(range(256)) * 4, statuses=HTTP_LEVEL, may_close=True),
    "bad-header-name": Case(b"GET /health HTTP/1.1\r\nHost: x\r\nBad Header: x\r\n\r\n", statuses=HTTP_LEVEL,
                            may_close=True),
    "content-length-not-a-number": Case(request("POST", "/v1/chat/completions", b"{}", length="12abc"),
                                        statuses=HTTP_LEVEL, may_close=True),
    "content-length-negative": Case(request("POST", "/v1/chat/completions", b"{}", length=-5),
                                    statuses=HTTP_LEVEL, may_close=True),
    "chunked-garbage": Case(chunked(b"zz\r\ngarbage\r\n0\r\n\r\n"), statuses=HTTP_LEVEL, may_close=True),
    "chunked-truncated": Case(chunked(b"ff\r\n{\"messages\":"), statuses=HTTP_LEVEL, may_close=True,
                              half_close=True),
    "chunked-and-content-length": Case(
        (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4\r\n"
         b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\n{}\r\n0\r\n\r\n"),
        statuses=HTTP_LEVEL, may_close=True),
    # Size limits (--max-body-bytes 262144).
    "body-over-max-body-bytes": Case(chat_fields(messages=[{"role": "user", "content": "a" * 300_000}]),
                                     statuses=(413,)),
    # A declared Content-Length over the limit is refused from the header, without waiting for the body.
    "declared-length-over-max": Case(request("POST", "/v1/chat/completions", b"{}", length=10 ** 12),
                                     statuses=(413,)),
    "chunked-body-over-max": Case(chunked(b"".join(b"4000\r\n" + b" " * 0x4000 + b"\r\n" for _ in range(20)) +
                                          b"0\r\n\r\n"), statuses=(413,)),
    # Routing.
    "unknown-path": Case(request("GET", "/v1/nothing-here"), statuses=(404,), code="not_found"),
    "unknown-path-post": Case(request("POST", "/v2/chat/completions", chat_body()), statuses=(404,), code="not_found"),
    "wrong-method-get-chat": Case(request("GET", "/v1/chat/completions"), statuses=(405,)),
    "wrong-method-delete-health": Case(request("DELETE", "/health"), statuses=(405,)),
    "wrong-method-post-models": Case(request("POST", "/v1/models", b"{}"), statuses=(405,)),
    # Bodies that are not the JSON object asked for.
    "empty-body": Case(chat_raw(b""), param=None),
    "text-plain-garbage": Case(request("POST", "/v1/chat/completions", b"hello, world", content_type="text/plain")),
    "invalid-json": Case(chat_raw(b'{"messages": [}')),
    "trailing-garbage": Case(chat_raw(json.dumps(chat_body()) + " xyz")),
    "body-is-array": Case(chat_raw(b"[1, 2, 3]")),
    "body-is-null": Case(chat_raw(b"null")),
    "invalid-utf8-in-string": Case(chat_raw(b'{"messages": [{"role": "user", "content": "\xff\xfe\xc3("}]}')),
    "deep-nesting-arrays": Case(chat_raw(b"[" * 100_000)),
    "deep-nesting-objects": Case(chat_raw(b'{"a":' * 30_000)),
    "deep-nesting-in-field": Case(chat_raw(b'{"messages": ' + b"[" * 50_000 + b"]" * 50_000 + b"}")),
    "nan-literal": Case(chat_raw(b'{"messages": [{"role": "user", "content": "Hi"}], "temperature": NaN}')),
    "infinity-literal": Case(chat_raw(b'{"messages": [{"role": "user", "content": "Hi"}], "top_p": Infinity}')),
    # Numbers out of range.
    "max-tokens-1e999": Case(chat_raw(b'{"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1e999}')),
    "temperature-1e999": Case(chat_raw(b'{"messages": [{"role": "user", "content": "Hi"}], "temperature": 1e999}')),
    "max-tokens-negative": Case(chat_fields(max_tokens=-1), param="max_tokens"),
    "max-tokens-2-64": Case(chat_fields(max_tokens=2 ** 64), param="max_tokens"),
    "max-tokens-fraction": Case(chat_fields(max_tokens=1.5), param="max_tokens"),
    "max-completion-tokens-string": Case(chat_fields(max_completion_tokens="ten"), param="max_completion_tokens"),
    "seed-2-64": Case(chat_fields(seed=2 ** 64), param="seed"),
    "seed-string": Case(chat_fields(seed="abc"), param="seed"),
    "n-0": Case(chat_fields(n=0), param="n"),
    "n-129": Case(chat_fields(n=129), param="n"),
    "n-1e9": Case(chat_fields(n=10 ** 9), param="n"),
    "top-p-0": Case(chat_fields(top_p=0), param="top_p"),
    "top-p-1.5": Case(chat_fields(top_p=1.5), param="top_p"),
    "top-k-minus-2": Case(chat_fields(top_k=-2), param="top_k"),  # 0 and -1 mean no limit (vLLM)
    "min-p-2": Case(chat_fields(min_p=2), param="min_p"),
    "temperature-3": Case(chat_fields(temperature=3), param="temperature"),
    "temperature-negative": Case(chat_fields(temperature=-0.5), param="temperature"),
    "temperature-string": Case(chat_fields(temperature="hot"), param="temperature"),
    "presence-penalty-3": Case(chat_fields(presence_penalty=3), param="presence_penalty"),
    "frequency-penalty--3": Case(chat_fields(frequency_penalty=-3), param="frequency_penalty"),
    "repetition-penalty-0": Case(chat_fields(repetition_penalty=0), param="repetition_penalty"),
    "top-logprobs-21": Case(chat_fields(logprobs=True, top_logprobs=21), param="top_logprobs"),
    "top-logprobs-negative": Case(chat_fields(logprobs=True, top_logprobs=-1), param="top_logprobs"),
    "completions-logprobs-21": Case(completion_fields(logprobs=21), param="logprobs"),
    "logit-bias-non-numeric": Case(chat_fields(logit_bias={"504": "high"}), param="logit_bias"),
    "logit-bias-out-of-range": Case(chat_fields(logit_bias={"504": 101}), param="logit_bias"),
    "logit-bias-bad-token-id": Case(chat_fields(logit_bias={"99999999": 5}), param="logit_bias"),
    "logit-bias-key-not-a-number": Case(chat_fields(logit_bias={"hello": 5}), param="logit_bias"),
    "logit-bias-not-an-object": Case(chat_fields(logit_bias=[1, 2]), param="logit_bias"),
    "stop-number": Case(chat_fields(stop=5), param="stop"),
    "stop-17-strings": Case(chat_fields(stop=[f"s{i}" for i in range(17)]), param="stop"),
    "stop-list-with-number": Case(chat_fields(stop=["a", 3]), param="stop"),
    "stream-not-bool": Case(chat_fields(stream="yes"), param="stream"),
    "stream-options-not-object": Case(chat_fields(stream=True, stream_options=5), param="stream_options"),
    "response-format-unknown-type": Case(chat_fields(response_format={"type": "yaml"}), param="response_format"),
    "response-format-not-object": Case(chat_fields(response_format="json"), param="response_format"),
    "json-schema-missing": Case(chat_fields(response_format={"type": "json_schema"}), param="response_format"),
    "json-schema-invalid-type": Case(chat_fields(response_format={
        "type": "json_schema", "json_schema": {"name": "x", "schema": {"type": 12}}}), param="response_format"),
    "json-schema-dangling-ref": Case(chat_fields(response_format={
        "type": "json_schema", "json_schema": {"name": "x", "schema": {"$ref": "#/$defs/missing"}}}),
        param="response_format"),
    "reasoning-format-unknown": Case(chat_fields(reasoning_format="xml"), param="reasoning_format"),
    "reasoning-budget-string": Case(chat_fields(reasoning_budget="ten"), param="reasoning_budget"),
    # Messages.
    "messages-missing": Case(without("messages"), param="messages"),
    "messages-not-array": Case(chat_fields(messages="Hi"), param="messages"),
    "messages-empty": Case(chat_fields(messages=[]), param="messages"),
    "message-not-object": Case(chat_fields(messages=["Hi"]), param="messages"),
    "role-unknown": Case(chat_fields(messages=[{"role": "wizard", "content": "Hi"}]), param="messages"),
    "role-missing": Case(chat_fields(messages=[{"content": "Hi"}]), param="messages"),
    "content-number": Case(chat_fields(messages=[{"role": "user", "content": 42}]), param="messages"),
    "content-part-unknown-type": Case(chat_fields(messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "http://127.0.0.1/x.png"}}]}]), param="messages"),
    "content-part-text-not-string": Case(chat_fields(messages=[{"role": "user", "content": [
        {"type": "text", "text": 5}]}]), param="messages"),
    # Completions prompts.
    "prompt-missing": Case(request("POST", "/v1/completions", {"model": "default", "max_tokens": 1}),
                           param="prompt"),
    "prompt-number": Case(completion_fields(prompt=5), param="prompt"),
    "prompt-token-out-of-vocab": Case(completion_fields(prompt=[1, 10 ** 7]), param="prompt"),
    "prompt-token-negative": Case(completion_fields(prompt=[1, -3]), param="prompt"),
    "prompt-mixed-array": Case(completion_fields(prompt=["a", 5]), param="prompt"),
    # The model field.
    "model-unknown": Case(chat_fields(model="gpt-4o"), statuses=(404,), code="model_not_found"),
    "model-not-string": Case(chat_fields(model=7), param="model"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_request(port, name):
    case = CASES[name]
    reply = exchange(port, case.raw, half_close=case.half_close)
    if reply.status is None:
        assert case.may_close and reply.note == "closed", \
            f"{name}: no response ({reply.note}); expected {case.statuses}"
        return
    assert reply.status in case.statuses, (name, reply.status, reply.body[:500])
    if reply.body:
        try:
            payload = json.loads(reply.body)
        except ValueError:
            raise AssertionError(f"{name}: a {reply.status} body that is not JSON: {reply.body[:300]!r}")
        error = assert_error_shape(payload)
        if case.param is not None:
            assert error["param"] and error["param"].startswith(case.param), (name, error)
        if case.code is not None:
            assert error["code"] == case.code, (name, error)
        if reply.status == 400:
            assert error["type"] == "invalid_request_error", (name, error)
    else:
        assert case.may_close or case.statuses == HTTP_LEVEL, f"{name}: a {reply.status} without the error body"


def test_hostile_case_count():
    assert len(CASES) >= 40


# --- slowloris and idle crowds ----------------------------------------------------------------------------------

def test_slowloris(port):
    """Eight connections send a request's headers one byte per 0.2 s for ~4 s; /health answers meanwhile and after."""
    text = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"z" * 40
    sockets = [socket.create_connection((HOST, port), timeout=IO_TIMEOUT) for _ in range(8)]
    stop = threading.Event()
    errors = []

    def drip():
        try:
            for i in range(20):  # 20 bytes x 0.2 s = 4 s, bounded
                if stop.is_set():
                    return
                for sock in sockets:
                    try:
                        sock.sendall(text[i:i + 1])
                    except OSError:
                        pass  # the server may drop a slow client: allowed
                time.sleep(0.2)
        except Exception as error:  # pragma: no cover
            errors.append(error)

    thread = threading.Thread(target=drip, daemon=True)
    thread.start()
    try:
        answered = []
        for _ in range(4):
            start = time.monotonic()
            assert health(port, timeout=5), "no /health answer while slow clients hold connections"
            answered.append(time.monotonic() - start)
            time.sleep(0.5)
        assert max(answered) < 5
    finally:
        stop.set()
        thread.join(timeout=10)
        for sock in sockets:
            sock.close()
    assert not errors
    assert health(port)


def test_idle_connection_crowd(port):
    """200 connections that never send a byte do not stop /health from answering."""
    sockets = []
    try:
        for _ in range(200):
            sockets.append(socket.create_connection((HOST, port), timeout=IO_TIMEOUT))
        start = time.monotonic()
        assert health(port, timeout=5)
        assert time.monotonic() - start < 5
    finally:
        for sock in sockets:
            sock.close()


def test_pipelined_requests_answered_in_order(port):
    """Two requests in one write: both are answered, in order (HTTP/1.1 pipelining)."""
    raw = (b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n" + b"GET /v1/nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    deadline = time.monotonic() + IO_TIMEOUT
    with socket.create_connection((HOST, port), timeout=IO_TIMEOUT) as sock:
        sock.sendall(raw)
        data = b""
        while data.count(b"HTTP/1.1 ") < 2 or not data.rstrip().endswith(b"}"):
            chunk = recv(sock, deadline)
            if not chunk:
                break
            data += chunk
    assert data.startswith(b"HTTP/1.1 200"), data[:200]
    assert b"HTTP/1.1 404" in data, data[:600]


def test_slow_body(port):
    """A body trickling in one byte per 0.2 s (for ~3 s, then abandoned) does not stop /health from answering."""
    with socket.create_connection((HOST, port), timeout=IO_TIMEOUT) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 500\r\n\r\n")
        for i, byte in enumerate(b'{"messages": [{"role": "user"'[:15]):
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break  # dropped by the server: allowed
            time.sleep(0.2)
            if i % 5 == 4:
                assert health(port, timeout=5)
    assert health(port)


def test_hostile_requests_do_not_disturb_a_running_generation(port):
    """A greedy stream runs while 30 hostile requests hit the server from 6 threads: its text is still exactly the
    CLI's, and every hostile request was refused."""
    question = "What is the capital of France?"
    want = generate("--prompt", question, "--max-tokens", "16")["text"]
    fields = (None, "messages", "prompt", "response_format", "logit_bias", "stop", "n", "temperature", "max_tokens")
    names = [n for n in CASES if CASES[n].statuses == (400,) and CASES[n].param in fields][:30]
    assert len(names) == 30
    outcomes = []

    def attack(part):
        for name in part:
            outcomes.append((name, exchange(port, CASES[name].raw).status))

    stream = Stream(port, "/v1/chat/completions", {"messages": [{"role": "user", "content": question}],
                                                    "max_tokens": 16, "temperature": 0, "stream": True})
    try:
        assert stream.status == 200
        threads = [threading.Thread(target=attack, args=(names[i::6],), daemon=True) for i in range(6)]
        for thread in threads:
            thread.start()
        events = stream.rest()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        stream.close()
    assert events[-1] == "[DONE]"
    text = "".join((json.loads(e)["choices"][0]["delta"].get("content") or "")
                   for e in events[:-1] if json.loads(e)["choices"])
    assert text == want
    assert sorted(outcomes) == sorted((name, 400) for name in names)
