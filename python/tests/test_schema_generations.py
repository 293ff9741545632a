"""SmolLM2-135M-Instruct (the real default model) generating under every JSON Schema of the grammar conformance
fixture (Tests/Fixtures/grammar/cases.json, 29 schemas), greedy and at T 0.6 / top-p 0.95: every output ends because
the grammar completed (or at an end-of-sequence token the grammar allowed), parses with Python's `json`, and
validates with the `jsonschema` package (not ours: scripts/test installs it from PyPI when it is missing)."""
import json
import os
import pathlib

import pytest

import mobilellm

jsonschema = pytest.importorskip("jsonschema", reason="the jsonschema package (PyPI) is not installed: scripts/test "
                                                      "installs it into .cache/pylib-test")

REPO = pathlib.Path(__file__).resolve().parents[2]
ASSETS = pathlib.Path(os.environ.get("MOBILELLM_ASSETS") or REPO / ".cache" / "assets")
SMOLLM2 = ASSETS / "smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf"
SCHEMAS = json.loads((REPO / "Tests" / "Fixtures" / "grammar" / "cases.json").read_text())["schemas"]


@pytest.fixture(scope="module")
def model():
    if not SMOLLM2.exists():
        pytest.fail(f"{SMOLLM2} is missing: run `python3 scripts/fetch_assets.py` (or set MOBILELLM_ASSETS)")
    with mobilellm.Model(SMOLLM2) as loaded:
        yield loaded


@pytest.mark.parametrize("case", SCHEMAS, ids=[case["name"] for case in SCHEMAS])
def test_outputs_validate(model, case):
    schema = json.loads(case["schema"]) if isinstance(case["schema"], str) else case["schema"]
    prompt = model.apply_chat_template([{"role": "user", "content": "Reply with JSON matching this schema: "
                                                                    + json.dumps(schema)}])
    for seed in (None, 1):
        sampling = dict(temperature=0) if seed is None else dict(temperature=0.6, top_p=0.95, seed=seed)
        with model.session(n_ctx=2048) as session:
            g = session.generate(prompt, max_tokens=400, json_schema=schema, **sampling)
        assert g.stop_reason in ("grammar", "eos"), (case["name"], g)
        value = json.loads(g.text)
        jsonschema.validate(value, schema)
