"""The Python binding against the engine's golden fixtures (transformers logits and greedy continuations), the
text reference (Hugging Face tokenizers / transformers), every error path, threads, the GIL and packaging."""
import json
import os
import pathlib
import subprocess
import sys
import threading
import time

import pytest

import mobilellm
from mobilellm import MobileLLMError

REPO = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = REPO / "Tests" / "Fixtures"
MODELS = ["llama4-r1like-bf16-sharded", "llama4-nope-f32", "llama-f16", "llama-bf16-untied"]
CHAT = REPO / "Tests" / "Fixtures" / "r1like-chat"


def reference(name):
    return json.loads((FIXTURES / name / "reference.json").read_text())


@pytest.fixture(scope="module")
def r1():
    with mobilellm.Model(FIXTURES / "llama4-r1like-bf16-sharded") as model:
        yield model


@pytest.fixture(scope="module")
def chat():
    with mobilellm.Model(CHAT) as model:
        yield model


def test_versions_and_struct_layouts():
    assert mobilellm.abi_version() == mobilellm.ABI_VERSION
    assert mobilellm.version()
    committed = {}
    for line in (REPO / "abi" / f"abi-v{mobilellm.ABI_VERSION}.txt").read_text().splitlines():
        if line.startswith("struct "):
            _, name, size = line.split()
            committed[name] = int(size)
        elif line.startswith("appended struct "):  # a field appended within the version: the newest size
            _, _, name, size = line.split()
            committed[name] = int(size)
    import ctypes
    ours = {"mobilellm_model_params": mobilellm._ModelParams, "mobilellm_model_info": mobilellm._ModelInfo,
            "mobilellm_session_params": mobilellm._SessionParams, "mobilellm_sampler_params": mobilellm._SamplerParams,
            "mobilellm_generate_params": mobilellm._GenerateParams, "mobilellm_generate_result": mobilellm._GenerateResult,
            "mobilellm_chat_params": mobilellm._ChatParams, "mobilellm_batch_params": mobilellm._BatchParams,
            "mobilellm_batch_event": mobilellm._BatchEvent}
    for name, struct in ours.items():
        assert ctypes.sizeof(struct) == committed[name], name


@pytest.mark.parametrize("name", MODELS)
def test_golden_logits_and_greedy(name):
    ref = reference(name)
    with mobilellm.Model(FIXTURES / name) as model:
        assert model.vocab_size == ref["vocab_size"]
        assert model.architecture == ref["model_type"]
        for sequence in ref["sequences"]:
            session = model.session(n_ctx=128)
            rows = session.eval(sequence["tokens"], all_logits=True)
            assert len(rows) == len(sequence["tokens"])
            worst = max(abs(a - b) for row, expected in zip(rows, sequence["logits"]) for a, b in zip(row, expected))
            assert worst <= 1e-3
            assert session.n_past == len(sequence["tokens"])
            last = model.session(n_ctx=128).eval(sequence["tokens"])
            assert last == rows[-1]
        for greedy in ref["greedy"]:
            session = model.session(n_ctx=128)
            result = session.generate(greedy["prompt"], max_tokens=len(greedy["continuation"]), temperature=0)
            assert result.tokens == greedy["continuation"]
            assert result.stop_reason == "max_tokens"


def test_model_facts(r1):
    assert r1.bos_token_id == 0
    assert r1.eos_token_ids == [1, 2, 3]
    assert r1.context_length == 32768
    assert not r1.has_tokenizer


def test_text_against_reference(chat):
    ref = json.loads((CHAT / "reference_text.json").read_text())
    for case in ref["encodings"]:
        assert chat.tokenize(case["text"], add_special=case["add_special"], parse_special=case["parse_special"]) == case["ids"]
    for case in ref["decodings"]:
        assert chat.detokenize(case["ids"], skip_special=case["skip_special"]) == case["text"]
    for case in ref["chats"]:
        text = chat.apply_chat_template(case["messages"], add_generation_prompt=case["add_generation_prompt"],
                                        **case["variables"])
        assert text == case["text"]


def test_text_generation_stream_and_stop(chat):
    prompt = chat.apply_chat_template([{"role": "user", "content": "Hello world!"}])
    session = chat.session(n_ctx=512)
    full = session.generate(prompt, max_tokens=30, temperature=0.7, seed=11, ignore_eos=True)
    assert len(full.tokens) == 30 and full.text == chat.detokenize(full.tokens)
    session.reset()
    pieces = list(session.stream(prompt, max_tokens=30, temperature=0.7, seed=11, ignore_eos=True))
    assert "".join(pieces) == full.text[:len("".join(pieces))] and len(full.text) - len("".join(pieces)) < 4
    # A stop string cuts the text and ends generation early.
    stop = full.text[5:8]
    if stop.strip() and "\ufffd" not in stop:
        session.reset()
        cut = session.generate(prompt, max_tokens=30, temperature=0.7, seed=11, ignore_eos=True, stop=[stop])
        assert cut.stop_reason == "stop" and cut.text == full.text[:full.text.find(stop)] and len(cut.tokens) < 30
        session.reset()
        streamed = "".join(session.stream(prompt, max_tokens=30, temperature=0.7, seed=11, ignore_eos=True, stop=[stop]))
        assert streamed == cut.text
    # A stop token id.
    session.reset()
    stop_token = full.tokens[-1]
    by_id = session.generate(prompt, max_tokens=30, temperature=0.7, seed=11, stop=[stop_token])
    assert by_id.tokens == full.tokens[:full.tokens.index(stop_token) + 1] and by_id.stop_reason == "eos"


def _activation_logits(**kwargs):
    """llama-f16 quantized to q8_0 at load with `kwargs` (activations=...): the precision the model reports and its
    logits for every position of a prefill plus one decode step, flattened."""
    with mobilellm.Model(FIXTURES / "llama-f16", n_threads=1, quantize="q8_0", **kwargs) as model:
        assert model.is_quantized
        session = model.session(n_ctx=32)
        rows = session.eval([1, 169, 380, 17, 42, 311, 7], all_logits=True)
        rows.append(session.eval([99]))
        return model.activations, [value for row in rows for value in row]


def test_activations_choose_how_quantized_weights_are_multiplied():
    with pytest.raises(MobileLLMError, match=r"params->activations") as info:
        mobilellm.Model(FIXTURES / "llama-f16", quantize="q8_0", activations="int4")
    assert info.value.status_name == "MOBILELLM_ERROR_INVALID_ARGUMENT"
    assert '"exact"' in str(info.value) and '"int8"' in str(info.value)  # the accepted names are listed
    exact_name, exact = _activation_logits(activations="exact")
    int8_name, int8 = _activation_logits(activations="int8")
    assert (exact_name, int8_name) == ("exact", "int8")
    assert exact != int8  # int8 activations are not exact ...
    spread = max(exact) - min(exact)
    worst = max(abs(a - b) for a, b in zip(exact, int8))
    assert spread > 0 and worst <= 0.05 * spread  # ... but close: within 5% of the logit range
    # None (and "") give the library's default, whichever it is: the model reports it, and the logits are bit for
    # bit those of naming it.
    default_name, default = _activation_logits()
    assert default_name in ("exact", "int8")
    assert default == {"exact": exact, "int8": int8}[default_name]
    assert _activation_logits(activations="") == (default_name, default)


def test_errors_raise_with_messages_and_session_survives(r1, chat):
    with pytest.raises(MobileLLMError, match="/nonexistent/model") as info:
        mobilellm.Model("/nonexistent/model")
    assert info.value.status_name == "MOBILELLM_ERROR_FILE_NOT_FOUND"
    with pytest.raises(MobileLLMError, match="config.json"):
        mobilellm.Model(FIXTURES / "llama-f16" / "config.json")
    with pytest.raises(MobileLLMError, match="n_threads"):
        mobilellm.Model(FIXTURES / "llama-f16", n_threads=-1)
    with pytest.raises(MobileLLMError, match="quantize") as info:
        mobilellm.Model(FIXTURES / "llama-f16", quantize="q9_9")
    assert info.value.status_name == "MOBILELLM_ERROR_INVALID_ARGUMENT"
    with mobilellm.Model(FIXTURES / "llama-f16", quantize="q4_0") as quantized:  # quantize on load
        assert quantized.is_quantized
    with pytest.raises(MobileLLMError, match="n_ctx"):
        r1.session(n_ctx=10**7)
    with pytest.raises(MobileLLMError, match="tokenizer"):
        r1.tokenize("hello")
    session = r1.session(n_ctx=16)
    with pytest.raises(MobileLLMError, match=r"tokens\[1\]"):
        session.eval([1, 384])
    with pytest.raises(MobileLLMError, match=r"tokens\[0\]"):
        session.eval([-5])
    with pytest.raises(MobileLLMError, match="context full"):
        session.eval(list(range(17)))
    with pytest.raises(MobileLLMError, match="position"):
        session.rewind(5)
    with pytest.raises(MobileLLMError, match="temperature"):
        session.generate([1, 2], temperature=-1)
    with pytest.raises(MobileLLMError, match="top_p"):
        session.generate([1, 2], top_p=0)
    with pytest.raises(MobileLLMError, match="max_tokens"):
        session.generate([1, 2], max_tokens=-3)
    with pytest.raises(MobileLLMError, match="prompt"):
        session.generate([], max_tokens=3)
    with pytest.raises(MobileLLMError, match="magic"):
        session.load_state(b"x" * 100)
    with pytest.raises(MobileLLMError, match="variables"):
        chat.apply_chat_template([{"role": "user", "content": "x"}], bad=float("nan"))
    with pytest.raises(MobileLLMError, match="messages"):
        chat.apply_chat_template([{"role": "user", "content": object()}])
    with pytest.raises(MobileLLMError, match="text"):
        chat.tokenize(b"\xff\xfe")
    with pytest.raises(MobileLLMError, match=r"tokens\[0\]"):
        chat.detokenize([10**6])
    session.cancel()  # nothing running: does nothing, and does not cancel the next call
    # The session is intact after every error.
    assert session.n_past == 0
    assert len(session.eval([1, 2, 3])) == r1.vocab_size
    session.rewind(1)
    assert session.n_past == 1
    assert session.generate([], max_tokens=2, temperature=0).tokens
    # A Python exception inside the token callback stops generation and propagates.
    with pytest.raises(ZeroDivisionError):
        session.reset()
        session._run([1, 2], 5, 0, 0, 1, 0, 1, None, (), True, lambda token, text, _channel: 1 / 0)
    assert session.n_past >= 2


def test_limits(r1):
    session = r1.session(n_ctx=32)
    assert session.generate([0, 1], max_tokens=0, temperature=0).tokens == []
    session.reset()
    huge = session.generate([0, 169], max_tokens=10**9, temperature=0, ignore_eos=True)
    assert huge.stop_reason == "context_full" and len(huge.tokens) == 31


def test_closed_model_keeps_sessions_working():
    model = mobilellm.Model(FIXTURES / "llama4-r1like-bf16-sharded")
    session = model.session(n_ctx=64)
    model.close()
    model.close()
    assert session.generate([0, 169, 380, 264, 92], max_tokens=3, temperature=0).tokens == [99, 291, 12]
    with pytest.raises(MobileLLMError):
        model.session()


def test_state_prefix_reuse(r1):
    tokens = reference("llama4-r1like-bf16-sharded")["sequences"][1]["tokens"]
    first = r1.session(n_ctx=128)
    first.eval(tokens[:20])
    state = first.save_state()
    second = r1.session(n_ctx=128)
    second.load_state(state)
    assert second.n_past == 20
    assert second.eval(tokens[20:]) == r1.session(n_ctx=128).eval(tokens)


def test_four_threads_identical_to_serial():
    ref = reference("llama-f16")
    tokens = ref["sequences"][-1]["tokens"]
    with mobilellm.Model(FIXTURES / "llama-f16", n_threads=1) as model:
        def work(index):
            session = model.session(n_ctx=128)
            rows = session.eval(tokens, all_logits=True)
            session.reset()
            generated = session.generate([1, 2, 3], max_tokens=20, temperature=0.9, top_p=0.95, seed=index,
                                         ignore_eos=True).tokens
            return rows, generated

        serial = [work(i) for i in range(4)]
        parallel = [None] * 4

        def run(i):
            parallel[i] = work(i)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert parallel == serial
        assert serial[0][1] != serial[1][1]
        worst = max(abs(a - b) for row, exp in zip(parallel[2][0], ref["sequences"][-1]["logits"]) for a, b in zip(row, exp))
        assert worst <= 1e-3


def test_gil_is_released_during_eval(r1):
    session = r1.session(n_ctx=4096)
    prompt = [(i * 7) % 384 for i in range(3000)]
    done = threading.Event()
    elapsed = []

    def prefill():
        start = time.perf_counter()
        for _ in range(3):
            session.reset()
            session.eval(prompt)
        elapsed.append(time.perf_counter() - start)
        done.set()

    thread = threading.Thread(target=prefill)
    counter = 0
    thread.start()
    while not done.is_set():
        counter += 1
    thread.join()
    # With the GIL held for the whole call, this loop could not run while the prefill does.
    assert counter > 10_000, (counter, elapsed)


def test_cancel_from_another_thread_during_prefill(r1):
    session = r1.session(n_ctx=4096)
    prompt = [(i * 7) % 384 for i in range(4000)]
    stop = threading.Event()

    def canceller():
        while not stop.is_set():
            session.cancel()
            time.sleep(0.0002)

    thread = threading.Thread(target=canceller)
    thread.start()
    try:
        with pytest.raises(MobileLLMError, match="cancelled"):
            session.eval(prompt)
    finally:
        stop.set()
        thread.join()
    assert session.n_past == 0
    session.reset()
    assert len(session.eval([1, 2])) == 384


def test_stream_closed_early_leaves_session_usable(chat):
    session = chat.session(n_ctx=2048)
    stream = session.stream("Hello", max_tokens=1000, temperature=0, ignore_eos=True)
    first = next(stream)
    assert isinstance(first, str)
    stream.close()
    position = session.n_past
    assert 1 <= position < 1000
    assert session.generate([], max_tokens=2, temperature=0).tokens  # no stale cancel request


def test_pip_install_works(tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", "--target", str(target),
                    str(REPO / "python")], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("MOBILELLM_LIBRARY", "PYTHONPATH")}
    env["PYTHONPATH"] = str(target)
    code = ("import mobilellm, pathlib; m = mobilellm.Model(%r); "
            "print(pathlib.Path(mobilellm.__file__).parent.parent, m.vocab_size)") % str(FIXTURES / "llama-f16")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=str(tmp_path), capture_output=True, text=True, check=True)
    assert out.stdout.split() == [str(target), "512"]


GGUF = REPO / ".cache" / "assets" / "smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.mark.skipif(not GGUF.exists(), reason="run scripts/fetch_assets.py for the SmolLM2 GGUF")
def test_real_gguf_model_chat_answer():
    ref = json.loads((FIXTURES / "smollm2" / "reference.json").read_text())["chat"]
    with mobilellm.Model(GGUF) as model:
        assert model.architecture == "llama" and model.has_tokenizer
        prompt = model.apply_chat_template(ref["messages"])
        ids = model.tokenize(prompt, add_special=False, parse_special=True)
        assert ids == ref["prompt_tokens"]
        session = model.session(n_ctx=512)
        answer = session.generate(prompt, max_tokens=len(ref["answer_tokens"]) + 8, temperature=0)
        assert answer.tokens == ref["answer_tokens"]
        assert answer.text == ref["answer"] and answer.stop_reason == "eos"
