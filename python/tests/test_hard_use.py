"""Hard use of the Python binding: None and wrong types, integers that do not fit the C types, closed and
garbage-collected objects, context overflow, max_tokens 0 and 10**9, cancel (from another thread, from a callback,
Ctrl-C on the main thread during a long prefill), many threads on one model (identical to serial and to
transformers), two threads on one session, invalid UTF-8 and NULs, and load/generate/close cycles. Nothing may crash
the interpreter; failures are Python exceptions, carrying the library's message when the library refused."""
import ctypes
import gc
import json
import os
import pathlib
import signal
import threading
import time
import weakref

import pytest

import mobilellm
from mobilellm import MobileLLMError

REPO = pathlib.Path(__file__).resolve().parents[2]
R1 = REPO / "Tests" / "Fixtures" / "llama4-r1like-bf16-sharded"
CHAT = REPO / "Tests" / "Fixtures" / "r1like-chat"  # the same weights plus a tokenizer and chat template
REFERENCE = json.loads((R1 / "reference.json").read_text())  # transformers logits and greedy continuations
VOCAB = REFERENCE["vocab_size"]
GREEDY = REFERENCE["greedy"]
SEQUENCES = REFERENCE["sequences"]


@pytest.fixture(scope="module")
def r1():
    with mobilellm.Model(R1) as model:
        yield model


@pytest.fixture(scope="module")
def chat():
    with mobilellm.Model(CHAT) as model:
        yield model


def max_abs_diff(rows, reference_rows):
    return max(abs(a - b) for row, ref in zip(rows, reference_rows) for a, b in zip(row, ref))


def check_logits(session, sequence, start=0):
    """Feeds sequence[start:] and compares every row with transformers."""
    rows = session.eval(sequence["tokens"][start:], all_logits=True)
    assert max_abs_diff(rows, sequence["logits"][start:]) <= 1e-3


def model_handle_is_live(handle_value):
    """Whether the library still knows a model handle (asked directly through ctypes)."""
    lib = mobilellm.load_library()
    info = mobilellm._ModelInfo()
    info.struct_size = ctypes.sizeof(info)
    return lib.mobilellm_model_get_info(ctypes.c_void_p(handle_value), ctypes.byref(info)) == mobilellm.OK


def test_none_and_wrong_types_raise_python_exceptions(r1, chat):
    with pytest.raises(TypeError):
        mobilellm.Model(None)
    with pytest.raises(TypeError):
        mobilellm.Model(12)
    with pytest.raises(ValueError, match="null byte"):
        mobilellm.Model(str(R1) + "\0/ignored")
    with pytest.raises(TypeError, match="n_threads"):
        mobilellm.Model(R1, n_threads="2")
    with pytest.raises(TypeError, match="model"):
        mobilellm.Session(None)
    with pytest.raises(TypeError, match="n_ctx"):
        r1.session(n_ctx=None)
    with pytest.raises(TypeError, match="n_ctx"):
        r1.session(n_ctx=16.5)
    for bad in (None, 12, [1, 2]):
        with pytest.raises(TypeError, match="text"):
            chat.tokenize(bad)
    with pytest.raises(TypeError):
        chat.detokenize(None)
    with pytest.raises(TypeError, match="tokens"):
        chat.detokenize("abc")
    with pytest.raises(TypeError, match=r"tokens\[0\]"):
        chat.detokenize([1.0])
    with pytest.raises(TypeError, match="key"):
        chat.metadata(None)
    with pytest.raises(ValueError, match="null byte"):
        chat.metadata("path\0")
    with pytest.raises(MobileLLMError, match="nope") as info:
        chat.metadata("nope")
    assert info.value.status_name == "MOBILELLM_ERROR_INVALID_ARGUMENT"
    with pytest.raises(TypeError):
        chat.apply_chat_template(None)
    session = r1.session(n_ctx=32)
    session.eval([1, 2])
    for bad in (None, [None], ["1"], [1.5], b"\x01\x02"):
        with pytest.raises(TypeError):
            session.eval(bad)
    with pytest.raises(TypeError):
        session.generate(None, max_tokens=2)
    with pytest.raises(TypeError, match="max_tokens"):
        session.generate([1], max_tokens=None)
    with pytest.raises(TypeError, match="top_k"):
        session.generate([1], top_k=1.5)
    with pytest.raises(TypeError, match="position"):
        session.rewind(None)
    with pytest.raises(TypeError):
        session.load_state(None)
    with pytest.raises(MobileLLMError, match="magic"):
        session.load_state(b"\0" * 64)
    # Nothing above reached the session.
    assert session.n_past == 2
    session.close()


def test_out_of_range_integers_are_refused_not_wrapped(r1):
    session = r1.session(n_ctx=32)
    check_logits(session, SEQUENCES[0], 0)
    position = session.n_past
    # In int32 range but not in the vocabulary: the library's message.
    for bad in (-1, VOCAB, 2**31 - 1, -2**31):
        with pytest.raises(MobileLLMError, match=rf"tokens\[1\]': token id {bad} is outside the vocabulary") as info:
            session.eval([5, bad])
        assert info.value.status_name == "MOBILELLM_ERROR_INVALID_ARGUMENT"
        with pytest.raises(MobileLLMError, match=f"token id {bad}"):
            session.generate([5, bad], max_tokens=2)
    # Beyond int32: refused by the binding (ctypes would wrap 2**32 + 5 to the valid id 5).
    for bad in (2**31, 2**32 + 5, -2**31 - 1, 10**30):
        with pytest.raises(MobileLLMError, match="does not fit a 32-bit integer") as info:
            session.eval([5, bad])
        assert info.value.status_name == "MOBILELLM_ERROR_INVALID_ARGUMENT"
        with pytest.raises(MobileLLMError, match="does not fit"):
            session.generate([bad], max_tokens=2)
        with pytest.raises(MobileLLMError, match="does not fit"):
            session.rewind(bad)
        with pytest.raises(MobileLLMError, match="n_ctx"):
            r1.session(n_ctx=bad + 16 if bad > 0 else bad)
        with pytest.raises(MobileLLMError, match="top_k"):
            session.generate([1], top_k=bad)
    with pytest.raises(MobileLLMError, match="n_threads"):
        mobilellm.Model(R1, n_threads=2**32)  # would wrap to 0 (every core)
    with pytest.raises(MobileLLMError, match="max_tokens"):
        session.generate([1], max_tokens=-2**40)
    with pytest.raises(MobileLLMError, match="stop"):
        session.generate([1], max_tokens=2, stop=[2**40])
    # Stop ids in range but outside the vocabulary never match.
    assert session.n_past == position
    session.reset()
    g = GREEDY[0]
    result = session.generate(g["prompt"], max_tokens=8, temperature=0, stop=[-1, VOCAB, 2**31 - 1])
    assert result.tokens == g["continuation"][:8] and result.stop_reason == "max_tokens"


def test_context_overflow_leaves_the_session_unchanged(r1):
    sequence = SEQUENCES[2]
    session = r1.session(n_ctx=16)
    session.eval(sequence["tokens"][:10])
    for n in (7, 16, 17, 1000):
        with pytest.raises(MobileLLMError, match="context full: the session holds 16 tokens, 10 are used") as info:
            session.eval([1] * n, all_logits=True)
        assert info.value.status_name == "MOBILELLM_ERROR_CONTEXT_FULL"
        with pytest.raises(MobileLLMError, match="context full"):
            session.generate([1] * n, max_tokens=2)
    assert session.n_past == 10
    rows = session.eval(sequence["tokens"][10:16], all_logits=True)
    assert max_abs_diff(rows, sequence["logits"][10:16]) <= 1e-3
    with pytest.raises(MobileLLMError, match="context full"):
        session.eval([1])


@pytest.mark.parametrize("max_tokens", [10**9, 2**31 - 1, 10**12])
def test_huge_max_tokens_is_bounded_by_the_context(r1, max_tokens):
    g = GREEDY[0]
    session = r1.session(n_ctx=64)
    start = time.monotonic()
    result = session.generate(g["prompt"], max_tokens=max_tokens, temperature=0, ignore_eos=True)
    assert time.monotonic() - start < 10
    assert result.stop_reason == "context_full"
    assert len(result.tokens) == 64 - len(g["prompt"]) + 1
    assert result.tokens[:len(g["continuation"])] == g["continuation"]
    assert session.n_past == 64


def test_max_tokens_zero_feeds_the_prompt_only(r1):
    g = GREEDY[1]
    session = r1.session(n_ctx=64)
    result = session.generate(g["prompt"], max_tokens=0, temperature=0)
    assert result.tokens == [] and result.stop_reason == "max_tokens"
    assert session.n_past == len(g["prompt"])
    # Continuing gives the reference continuation.
    assert session.generate([], max_tokens=4, temperature=0, ignore_eos=True).tokens == g["continuation"][:4]


def test_closed_objects_raise(r1):
    model = mobilellm.Model(R1)
    session = model.session(n_ctx=16)
    session.close()
    session.close()  # idempotent
    for call in (lambda: session.eval([1]), lambda: session.generate([1], max_tokens=2), session.cancel,
                 lambda: session.n_past, session.reset, lambda: session.rewind(0), session.save_state,
                 lambda: session.load_state(b"x")):
        with pytest.raises(MobileLLMError, match="the session was closed") as info:
            call()
        assert info.value.status_name == "MOBILELLM_ERROR_INVALID_HANDLE"
    model.close()
    model.close()
    for call in (lambda: model.session(16), lambda: model.metadata("path"), lambda: model.eos_token_ids,
                 lambda: model.detokenize([1]), lambda: model.tokenize("x")):
        with pytest.raises(MobileLLMError, match="the model was closed") as info:
            call()
        assert info.value.status_name == "MOBILELLM_ERROR_INVALID_HANDLE"
    with mobilellm.Model(R1) as scoped:
        inner = scoped.session(n_ctx=16)
    with pytest.raises(MobileLLMError, match="closed"):
        scoped.session(16)
    assert len(inner.eval([1, 2])) == VOCAB  # sessions outlive their model's `with` block
    inner.close()


def test_closing_a_model_keeps_its_sessions_working_text_included():
    model = mobilellm.Model(CHAT)
    handle = model._handle.value
    session = model.session(n_ctx=256)
    expected = model.session(n_ctx=256).generate("Hello world", max_tokens=8, temperature=0, ignore_eos=True)
    model.close()
    with pytest.raises(MobileLLMError, match="closed"):
        model.tokenize("Hello")
    # The handle is freed at once (the binding counts no references); the library keeps the weights for the
    # session, whose text calls go through the session itself: generation is unchanged.
    assert not model_handle_is_live(handle)
    result = session.generate("Hello world", max_tokens=8, temperature=0, ignore_eos=True, stop=["\u2603never"])
    assert result.tokens == expected.tokens and result.text == expected.text and result.text
    assert "".join(session.stream("Hello", max_tokens=4, temperature=0, ignore_eos=True))
    session.close()


def test_garbage_collection_of_a_model_with_live_sessions():
    def session_only():
        model = mobilellm.Model(R1)
        return model.session(n_ctx=64), weakref.ref(model), model._handle.value

    session, model_ref, handle = session_only()
    gc.collect()
    assert model_ref() is not None  # the session references its model
    g = GREEDY[0]
    assert session.generate(g["prompt"], max_tokens=24, temperature=0, ignore_eos=True).tokens == g["continuation"]
    session_handle = session._handle.value
    del session
    gc.collect()
    assert model_ref() is None
    assert not model_handle_is_live(handle)
    lib = mobilellm.load_library()
    assert lib.mobilellm_session_free(ctypes.c_void_p(session_handle)) == 2  # already freed by the collector


def test_cancel_with_nothing_running_does_not_linger(r1):
    session = r1.session(n_ctx=64)
    session.cancel()
    session.cancel()
    g = GREEDY[0]
    assert session.generate(g["prompt"], max_tokens=4, temperature=0, ignore_eos=True).tokens == g["continuation"][:4]


def test_cancel_from_another_thread_during_decode_keeps_what_was_fed(r1):
    g = GREEDY[1]
    session = r1.session(n_ctx=4096)
    seen = []
    outcome = {}

    def work():
        try:
            session._run(g["prompt"], 100_000, 0, 0, 1, 0, 1, None, (), True,
                         lambda token, text, _channel: seen.append(token) or time.sleep(0.0002) or True)
        except MobileLLMError as error:
            outcome["error"] = error

    thread = threading.Thread(target=work)
    thread.start()
    while len(seen) < 5 and thread.is_alive():
        time.sleep(0.0005)
    while thread.is_alive():
        session.cancel()
        thread.join(0.001)
    assert outcome["error"].status_name == "MOBILELLM_ERROR_CANCELLED"
    assert str(outcome["error"]).endswith("cancelled: mobilellm_session_cancel() was called; the session holds what was "
                                          "fed before")
    fed = session.n_past - len(g["prompt"])
    assert 4 <= fed < 4000
    # Feed the reference's next token and go on: the rest of the reference continuation.
    if fed + 1 < len(g["continuation"]):
        rest = session.generate([g["continuation"][fed]], max_tokens=len(g["continuation"]) - fed - 1, temperature=0,
                                ignore_eos=True)
        assert rest.tokens == g["continuation"][fed + 1:]


def test_ctrl_c_during_a_long_prefill_cancels_it(r1):
    """SIGINT on the main thread (what Ctrl-C sends) while eval runs a 4000-token prefill: KeyboardInterrupt comes
    out promptly, the session is as before, and it still gives transformers' logits."""
    sequence = SEQUENCES[2]
    session = r1.session(n_ctx=4096)
    session.eval(sequence["tokens"][:4])
    armed = threading.Event()
    main = threading.main_thread().ident

    def on_sigint(signum, frame):
        if armed.is_set():
            armed.clear()
            raise KeyboardInterrupt
    previous = signal.signal(signal.SIGINT, on_sigint)
    sent = {}

    def interrupt():
        time.sleep(0.05)
        sent["at"] = time.monotonic()
        signal.pthread_kill(main, signal.SIGINT)

    sender = threading.Thread(target=interrupt)
    try:
        armed.set()
        sender.start()
        with pytest.raises(KeyboardInterrupt):
            session.eval([(i * 7 + 3) % VOCAB for i in range(4000)])
        latency = time.monotonic() - sent["at"]
    finally:
        sender.join()  # before the handler goes: a late SIGINT must not reach pytest
        armed.clear()
        signal.signal(signal.SIGINT, previous)
    print(f"Ctrl-C during a 4000-token prefill: KeyboardInterrupt {latency * 1000:.1f} ms after SIGINT")
    assert latency < 2
    assert session.n_past == 4
    check_logits(session, sequence, 4)


def test_ctrl_c_during_generation_keeps_what_was_fed(r1):
    g = GREEDY[0]
    session = r1.session(n_ctx=4096)
    main = threading.main_thread().ident
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    count = [0]

    def on_piece(token, text, _channel):
        count[0] += 1
        if count[0] == 6:
            signal.pthread_kill(main, signal.SIGINT)
            time.sleep(0.01)
        return True

    try:
        with pytest.raises(KeyboardInterrupt):
            session._run(g["prompt"], 100_000, 0, 0, 1, 0, 1, None, (), True, on_piece)
    finally:
        signal.signal(signal.SIGINT, previous)
    fed = session.n_past - len(g["prompt"])
    assert 5 <= fed < 4000
    held = session.save_state()  # the session is usable
    assert len(held) > 0


def test_callbacks_that_stop_or_reenter(r1):
    g = GREEDY[0]
    session, other = r1.session(n_ctx=64), r1.session(n_ctx=64)
    # Stop at once: one token, the right one, the prompt kept.
    stopped = session._run(g["prompt"], 100, 0, 0, 1, 0, 1, None, (), True, lambda token, text, _channel: False)
    assert stopped.tokens == g["continuation"][:1] and stopped.stop_reason == "callback"
    assert session.n_past == len(g["prompt"])
    # Using the same session from its callback: BUSY, raised out of generate; the session is still usable.
    session.reset()
    with pytest.raises(MobileLLMError, match="in use by another thread") as info:
        session._run(g["prompt"], 5, 0, 0, 1, 0, 1, None, (), True, lambda token, text, _channel: session.eval([token]))
    assert info.value.status_name == "MOBILELLM_ERROR_BUSY"
    assert session.n_past == len(g["prompt"])
    # Another session generates correctly from inside the callback.
    session.reset()
    nested = []

    def generate_nested(token, text, _channel):
        if not nested:
            other.reset()
            nested.append(other.generate(GREEDY[1]["prompt"], max_tokens=24, temperature=0, ignore_eos=True).tokens)
        return True

    tokens = session._run(g["prompt"], 24, 0, 0, 1, 0, 1, None, (), True, generate_nested).tokens
    assert tokens == g["continuation"] and nested[0] == GREEDY[1]["continuation"]
    # Cancelling its own session from the callback.
    session.reset()

    def cancel_own(token, text, _channel):
        session.cancel()
        return True

    with pytest.raises(MobileLLMError, match="cancelled") as info:
        session._run(g["prompt"], 20, 0, 0, 1, 0, 1, None, (), True, cancel_own)
    assert info.value.status_name == "MOBILELLM_ERROR_CANCELLED"
    assert session.n_past == len(g["prompt"])
    assert session.generate([], max_tokens=4, temperature=0, ignore_eos=True).tokens == g["continuation"][:4]


def run_work(model, index, n_sampled=16):
    """One thread's work: all logits of a reference sequence, a greedy continuation and a seeded sample."""
    sequence, g = SEQUENCES[index % len(SEQUENCES)], GREEDY[index % len(GREEDY)]
    with model.session(n_ctx=128) as session:
        logits = session.eval(sequence["tokens"], all_logits=True)
        session.reset()
        greedy = session.generate(g["prompt"], max_tokens=len(g["continuation"]), temperature=0, ignore_eos=True).tokens
        session.reset()
        sampled = session.generate(g["prompt"], max_tokens=n_sampled, temperature=0.9, top_k=40, seed=index,
                                   ignore_eos=True).tokens
    return logits, greedy, sampled


def test_threads_on_one_model_match_serial_and_transformers(r1):
    n = 8
    serial = [run_work(r1, i) for i in range(n)]
    parallel = [None] * n
    errors = []

    def work(i):
        try:
            parallel[i] = run_work(r1, i)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for i in range(n):
        assert parallel[i] == serial[i]
        sequence, g = SEQUENCES[i % len(SEQUENCES)], GREEDY[i % len(GREEDY)]
        assert max_abs_diff(parallel[i][0], sequence["logits"]) <= 1e-3
        assert parallel[i][1] == g["continuation"]
    assert serial[0][2] != serial[1][2]  # different seeds: independent runs


def test_two_threads_on_one_session_get_busy(r1):
    session = r1.session(n_ctx=4096)
    session.eval([1, 2])
    outcome = {}

    def prefill():
        try:
            session.eval([(i * 7 + 3) % VOCAB for i in range(4000)])
        except MobileLLMError as error:
            outcome["error"] = error

    thread = threading.Thread(target=prefill)
    thread.start()
    time.sleep(0.05)
    busy = []
    for call in (lambda: session.eval([1]), lambda: session.n_past, session.reset, session.save_state):
        try:
            call()
        except MobileLLMError as error:
            busy.append(error.status_name)
    while thread.is_alive():
        session.cancel()
        thread.join(0.001)
    # The prefill was cancelled, so it was running during every probe above: each was refused.
    assert outcome["error"].status_name == "MOBILELLM_ERROR_CANCELLED"
    assert busy == ["MOBILELLM_ERROR_BUSY"] * 4
    assert session.n_past == 2


def test_invalid_utf8_and_nuls(chat):
    for data, offset in ((b"ab\x80", 2), (b"\xc0\xaf", 0), (b"a\xed\xa0\x80z", 1), (b"abc\xe2\x82", 3), (b"ok \xff", 3)):
        with pytest.raises(MobileLLMError, match=f"invalid UTF-8 in 'text' at byte offset {offset}$") as info:
            chat.tokenize(data)
        assert info.value.status_name == "MOBILELLM_ERROR_INVALID_UTF8"
    with pytest.raises(MobileLLMError, match="byte offset 1"):
        chat.tokenize("a\ud800b")  # a lone surrogate is not UTF-8
    # NULs are text: byte-level BPE round-trips them.
    assert chat.detokenize(chat.tokenize("a\0b\0", add_special=False)) == "a\0b\0"
    with pytest.raises(MobileLLMError, match="invalid argument 'messages'.*surrogates not allowed"):
        chat.apply_chat_template([{"role": "user", "content": "\ud800"}])


def rss_bytes():
    with open("/proc/self/statm") as file:
        return int(file.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_load_generate_close_cycles_do_not_grow_memory():
    g = GREEDY[0]

    def cycle():
        model = mobilellm.Model(CHAT, n_threads=1)
        session = model.session(n_ctx=64)
        model.close()  # before the session: it keeps the model alive
        result = session.generate(g["prompt"], max_tokens=6, temperature=0, ignore_eos=True)
        assert result.tokens == g["continuation"][:6] and isinstance(result.text, str)
        session.close()

    for _ in range(100):
        cycle()
    gc.collect()
    warm = rss_bytes()
    for _ in range(500):
        cycle()
    gc.collect()
    end = rss_bytes()
    growth = (end - warm) / warm
    print(f"500 Python load/generate/close cycles: RSS {warm / 2**20:.1f} MiB -> {end / 2**20:.1f} MiB ({growth:+.2%})")
    assert growth < 0.05


def test_ctrl_c_while_a_stream_waits_for_its_prefill(r1):
    """Ctrl-C while `next(stream)` waits for the worker's 4000-token prefill: KeyboardInterrupt comes out, closing
    the stream cancels the worker's call (repeating the cancel until it lands), and the session is usable."""
    session = r1.session(n_ctx=4096)
    prompt = [(i * 7 + 3) % VOCAB for i in range(4000)]
    main = threading.main_thread().ident
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    stream = session.stream(prompt, max_tokens=5, temperature=0, ignore_eos=True)
    timer = threading.Timer(0.05, signal.pthread_kill, (main, signal.SIGINT))
    try:
        timer.start()
        start = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            next(stream)
        stream.close()
        elapsed = time.monotonic() - start
    finally:
        timer.join()
        signal.signal(signal.SIGINT, previous)
    assert elapsed < 5
    assert session.n_past == 0  # the prefill was cancelled, not completed
    check_logits(session, SEQUENCES[1])
