"""Model.generate_batch and Model.stream_batch against the single-prompt path (Session.generate on a fresh session,
itself checked against transformers by test_mobilellm): greedy batches equal each prompt alone, seeded samples equal
fresh generations seeded seed + j, streamed pieces concatenate to each Generation's text, and errors raise
MobileLLMError."""
import pathlib
import threading

import pytest

import mobilellm
from mobilellm import MobileLLMError

REPO = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = REPO / "Tests" / "Fixtures"
PROMPTS = [[1, 17, 42, 99], [5], list(range(200, 240)), [7, 7, 7, 8, 8]]


@pytest.fixture(scope="module")
def r1():
    with mobilellm.Model(FIXTURES / "llama4-r1like-bf16-sharded", n_threads=1) as model:
        yield model


@pytest.fixture(scope="module")
def chat():
    with mobilellm.Model(FIXTURES / "r1like-chat", n_threads=1) as model:
        yield model


def alone(model, prompt, **settings):
    with model.session(n_ctx=settings.pop("n_ctx", 4096)) as session:
        return session.generate(prompt, **settings)


def same(a, b):
    return (a.tokens, a.text, a.stop_reason) == (b.tokens, b.text, b.stop_reason)


def test_greedy_batch_equals_each_prompt_alone(r1):
    settings = dict(max_tokens=20, temperature=0, ignore_eos=True)
    results = r1.generate_batch(PROMPTS, **settings)
    assert len(results) == len(PROMPTS)
    for prompt, result in zip(PROMPTS, results):
        assert isinstance(result, mobilellm.Generation)
        expected = alone(r1, prompt, **settings)
        assert same(result, expected) and result.stop_reason == "max_tokens" and len(result.tokens) == 20
        assert result.text == ""  # no tokenizer: as the single path
    assert r1.generate_batch([], max_tokens=4) == []


def test_seeded_samples_and_seeded_prompts(r1):
    settings = dict(max_tokens=16, temperature=0.9, top_p=0.95, seed=321, ignore_eos=True)
    k = 3
    results = r1.generate_batch(PROMPTS[:2], samples=k, **settings)
    assert len(results) == 2 * k
    for i, prompt in enumerate(PROMPTS[:2]):
        for j in range(k):
            expected = alone(r1, prompt, **dict(settings, seed=321 + j))
            assert same(results[i * k + j], expected), (i, j)
    assert results[0].tokens != results[1].tokens
    # With one sample per prompt, every prompt uses the seed itself.
    for prompt, result in zip(PROMPTS, r1.generate_batch(PROMPTS, **settings)):
        assert same(result, alone(r1, prompt, **settings))


def test_text_prompts_stream_and_stop_strings(chat):
    prompts = [chat.apply_chat_template([{"role": "user", "content": "Hello world!"}]), "Once upon a time", [1, 2, 3]]
    settings = dict(max_tokens=24, temperature=0.7, seed=5, ignore_eos=True)
    results = chat.generate_batch(prompts, **settings)
    for prompt, result in zip(prompts, results):
        expected = alone(chat, prompt, **settings)
        assert same(result, expected)
        assert result.text == chat.detokenize(result.tokens)
    pieces = {}
    for index, piece in chat.stream_batch(prompts, **settings):
        assert isinstance(index, int) and piece
        pieces[index] = pieces.get(index, "") + piece
    assert [pieces.get(i, "") for i in range(len(prompts))] == [r.text for r in results]
    # A stop string ends one sequence as it ends a single generation; the others run on.
    stop = results[0].text[4:7]
    if stop.strip() and "\ufffd" not in stop:
        cut = chat.generate_batch(prompts, stop=[stop], **settings)
        for prompt, result in zip(prompts, cut):
            assert same(result, alone(chat, prompt, stop=[stop], **settings))
        assert cut[0].stop_reason == "stop" and cut[0].text == results[0].text[:results[0].text.find(stop)]
        streamed = {}
        for index, piece in chat.stream_batch(prompts, stop=[stop], **settings):
            streamed[index] = streamed.get(index, "") + piece
        assert [streamed.get(i, "") for i in range(len(prompts))] == [r.text for r in cut]


def test_stream_closed_early_frees_the_batch(chat):
    stream = chat.stream_batch(["Hello", "World"], max_tokens=200, temperature=0, ignore_eos=True)
    first = next(stream)
    assert first[0] in (0, 1)
    stream.close()
    # The model is still fully usable.
    assert len(chat.generate_batch(["Hello"], max_tokens=3, temperature=0, ignore_eos=True)[0].tokens) == 3


def test_errors_raise_mobilellm_error(r1, chat):
    with pytest.raises(MobileLLMError, match="tokens\\[1\\]") as info:
        r1.generate_batch([[1, 2], [1, 99999]], max_tokens=4)
    assert info.value.status_name == "MOBILELLM_ERROR_INVALID_ARGUMENT"
    with pytest.raises(MobileLLMError, match="prompt"):
        r1.generate_batch([[]], max_tokens=4)
    with pytest.raises(MobileLLMError, match="n_samples"):
        r1.generate_batch([[1]], samples=0)
    with pytest.raises(MobileLLMError, match="n_samples"):
        r1.generate_batch([[1]], samples=2**31 - 1)
    with pytest.raises(MobileLLMError, match="temperature"):
        r1.generate_batch([[1]], temperature=-1)
    with pytest.raises(MobileLLMError, match="n_ctx"):
        r1.generate_batch([[1]], n_ctx=-3)
    with pytest.raises(MobileLLMError) as info:
        r1.generate_batch([[1]], max_tokens=4, stop=["x"])  # stop strings need a tokenizer, as in generate
    assert info.value.status_name == "MOBILELLM_ERROR_NO_TOKENIZER"
    with pytest.raises(MobileLLMError, match="CONTEXT_FULL|context"):
        r1.generate_batch([list(range(40))], n_ctx=16)
    with pytest.raises(MobileLLMError) as info:
        r1.generate_batch(["text"])  # text prompts need a tokenizer
    assert info.value.status_name == "MOBILELLM_ERROR_NO_TOKENIZER"
    with pytest.raises(MobileLLMError, match="prompts\\[1\\]\\[0\\]"):
        r1.generate_batch([[1], [2**40]])
    with pytest.raises(TypeError):
        r1.generate_batch("not a list")
    with pytest.raises(MobileLLMError):
        list(r1.stream_batch([[1, 99999]]))
    closed = mobilellm.Model(FIXTURES / "llama4-r1like-bf16-sharded", n_threads=1)
    closed.close()
    with pytest.raises(MobileLLMError, match="closed"):
        closed.generate_batch([[1]])


def test_two_threads_each_with_a_batch_give_the_serial_results(r1):
    settings = dict(max_tokens=12, temperature=0.8, seed=9, ignore_eos=True)
    serial = [r1.generate_batch(PROMPTS[t:] + PROMPTS[:t], **settings) for t in range(2)]
    parallel = [None, None]

    def work(t):
        parallel[t] = r1.generate_batch(PROMPTS[t:] + PROMPTS[:t], **settings)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for t in range(2):
        assert [g.tokens for g in parallel[t]] == [g.tokens for g in serial[t]]
