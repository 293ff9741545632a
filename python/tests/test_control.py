"""Output control through the Python binding (grammar, json_schema, logit_bias, ban, logprobs, reasoning*) on the
r1like-chat fixture (MobileLLM-R1 architecture, random weights, Llama-3 tokenizer): logprobs equal a double-precision
log-softmax of the session's own logits, bans and biases move the arg-max, the reasoning budget ends the thought after
exactly N tokens with reasoning/answer rebuilding the text, streamed channels match, a batch equals the session for
the same control, constrained output parses, and every bad value raises with the field named."""
import json
import math
import pathlib

import pytest

import mobilellm
from mobilellm import MobileLLMError

REPO = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = REPO / "Tests" / "Fixtures"
THINK = "Question: 2+2?\n<think>\n"


@pytest.fixture(scope="module")
def chat():
    with mobilellm.Model(FIXTURES / "r1like-chat", n_threads=1) as model:
        yield model


def run(model, prompt, **settings):
    with model.session(n_ctx=256) as session:
        return session.generate(prompt, temperature=0, ignore_eos=True, **settings)


def log_softmax(logits, index):
    top = max(logits)
    return logits[index] - top - math.log(sum(math.exp(x - top) for x in logits))


def test_logprobs_are_log_softmax_of_the_logits(chat):
    g = run(chat, "The answer is", max_tokens=6, logprobs=4)
    assert len(g.logprobs) == len(g.tokens) == 6
    with chat.session(n_ctx=256) as session:
        ids = session._prompt_ids("The answer is")
        for i, entry in enumerate(g.logprobs):
            logits = session.eval(ids if i == 0 else [g.tokens[i - 1]])
            assert entry.token == g.tokens[i]
            assert abs(entry.logprob - log_softmax(logits, g.tokens[i])) < 1e-4
            assert len(entry.top) == 4 and entry.top[0][0] == g.tokens[i]
            assert all(a[1] >= b[1] for a, b in zip(entry.top, entry.top[1:]))
    raw = run(chat, "The answer is", max_tokens=6, logprobs=0, raw_logprobs=True, logit_bias={g.tokens[0]: -5.0})
    assert raw.logprobs[0].top == []
    assert run(chat, "The answer is", max_tokens=3).logprobs is None


def test_ban_and_bias_by_id_and_text(chat):
    first = run(chat, "The answer is", max_tokens=1)
    assert run(chat, "The answer is", max_tokens=1, ban=first.tokens[0]).tokens[0] != first.tokens[0]
    assert run(chat, "The answer is", max_tokens=1, ban=[first.text]).tokens[0] != first.tokens[0]
    other = run(chat, "The answer is", max_tokens=1, ban=first.tokens)
    assert run(chat, "The answer is", max_tokens=1, logit_bias={other.tokens[0]: 100.0}).tokens == other.tokens


@pytest.mark.parametrize("budget", [0, 3, 7])
def test_reasoning_budget(chat, budget):
    g = run(chat, THINK, max_tokens=20, reasoning_budget=budget, reasoning_closing="</think>\n\n")
    assert g.reasoning_tokens == budget
    assert g.events == [{"type": "reasoning_budget", "token_index": budget}]
    assert g.text == g.reasoning + "</think>" + g.answer
    with chat.session(n_ctx=256) as session:
        pieces = list(session.stream(THINK, max_tokens=20, temperature=0, ignore_eos=True, channels=True,
                                     reasoning_budget=budget, reasoning_closing="</think>\n\n"))
    assert "".join(t for c, t in pieces if c == "reasoning") == g.reasoning
    assert "".join(t for c, t in pieces if c == "answer") == g.answer
    assert [t for c, t in pieces if c == "marker"] == ["</think>"]


def test_without_tracking_everything_is_answer(chat):
    g = run(chat, THINK, max_tokens=8)
    assert g.reasoning == "" and g.answer == g.text and g.reasoning_tokens == 0 and g.events == []


def test_batch_equals_session_with_control(chat):
    settings = dict(max_tokens=14, temperature=0, ignore_eos=True, logprobs=2, reasoning_budget=5)
    batch = chat.generate_batch([THINK, "Hello"], n_ctx=256, **settings)
    for prompt, together in zip([THINK, "Hello"], batch):
        with chat.session(n_ctx=256) as session:
            alone = session.generate(prompt, **settings)
        assert (together.tokens, together.text, together.reasoning, together.answer) == \
            (alone.tokens, alone.text, alone.reasoning, alone.answer)
        assert together.logprobs == alone.logprobs
        assert together.events == alone.events and together.reasoning_tokens == alone.reasoning_tokens


def test_json_schema_output_parses(chat):
    schema = {"type": "object", "properties": {"answer": {"type": "integer", "minimum": 0, "maximum": 99},
                                               "unit": {"enum": ["cm", "m"]}},
              "required": ["answer", "unit"], "additionalProperties": False}
    for seed in range(3):
        with chat.session(n_ctx=256) as session:
            g = session.generate("Reply in JSON:", max_tokens=400, temperature=0.8, seed=seed, json_schema=schema)
        assert g.stop_reason == "grammar", g
        value = json.loads(g.text)
        assert set(value) == {"answer", "unit"} and 0 <= value["answer"] <= 99 and value["unit"] in ("cm", "m")


def test_grammar_constrains_and_stops(chat):
    g = run(chat, "Pick:", max_tokens=40, grammar='root ::= ("yes" | "no") "!"')
    assert g.stop_reason == "grammar" and g.text in ("yes!", "no!")


def test_bad_control_values(chat):
    with chat.session(n_ctx=64) as session:
        cases = [
            (dict(logprobs=21), "params->n_logprobs"),
            (dict(logit_bias={1 << 30: 1.0}), "params->logit_bias_tokens"),
            (dict(logit_bias={"no token has this text": 1.0}), "params->logit_bias_pieces"),
            (dict(grammar="root ::= [a-"), "line 1"),
            (dict(json_schema={"type": "object", "patternProperties": {}}), "patternProperties"),
            (dict(grammar='root ::= "a"', json_schema={}), "params->json_schema"),
            (dict(reasoning_closing="no end marker"), "params->reasoning_closing"),
            (dict(reasoning_budget=-3), "params->reasoning_budget"),
        ]
        for settings, field in cases:
            with pytest.raises(MobileLLMError) as raised:
                session.generate("Hi", max_tokens=4, **settings)
            assert field in str(raised.value), (settings, str(raised.value))
        with pytest.raises(MobileLLMError) as raised:
            session.generate("Hi", max_tokens=4, grammar="root ::= missing")
        assert raised.value.status_name == "MOBILELLM_ERROR_GRAMMAR"
        with pytest.raises(TypeError, match="grammer"):
            session.generate("Hi", grammer="root ::= \"a\"")
        with pytest.raises(TypeError):
            session.generate("Hi", logit_bias={1.5: 1.0})
        assert session.n_past == 0
