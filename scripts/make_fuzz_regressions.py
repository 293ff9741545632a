#!/usr/bin/env python3
"""Records what the reference implementations make of every fuzzing regression input (fuzz/corpus/*/regression-*),
in Tests/Fixtures/fuzz/regressions.json, which Tests/MobileLLMTests/FuzzRegressionTests.swift compares with:

* config/*: Python's json.loads (how transformers reads config.json) -- the value, or that it is rejected;
* tokenizer-json/*: Hugging Face `tokenizers` -- the ids of a few texts (with and without special tokens);
* template/*: jinja2 as transformers configures it -- the render of a fixed conversation.

Run with the reference venv after adding a regression input:
    /work/refvenv/bin/python scripts/make_fuzz_regressions.py
"""
import json
import pathlib

import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz/corpus"
OUT = ROOT / "Tests/Fixtures/fuzz/regressions.json"

# Texts each regression tokenizer encodes; repeated words exercise the encoder's pre-token cache.
TEXTS = ["Hello world! How are you?", "naïve café 日本語 🙂 e\u0301", "12345 3.14  \n\n\t x",
         "xyz xyz xyz qqq qqq", "<|begin_of_text|>Hi<|eot_id|> <|eot_id|>"]
MESSAGES = [{"role": "system", "content": "You are helpful."}, {"role": "user", "content": " What is 2+2? "},
            {"role": "assistant", "content": "4"}, {"role": "user", "content": "Thanks"}]


def json_reference(path: pathlib.Path):
    try:
        return {"value": json.loads(path.read_bytes().decode("utf-8"))}
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        return {"error": str(error)}


def tokenizer_reference(path: pathlib.Path):
    tokenizer = Tokenizer.from_file(str(path))
    return {"texts": TEXTS,
            "with_special": [tokenizer.encode(text, add_special_tokens=True).ids for text in TEXTS],
            "without_special": [tokenizer.encode(text, add_special_tokens=False).ids for text in TEXTS]}


def template_reference(path: pathlib.Path):
    # As transformers' _compile_jinja_template: sandboxed, trim_blocks, lstrip_blocks, loop controls.
    environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                                extensions=[jinja2.ext.loopcontrols])
    template = environment.from_string(path.read_text())
    return {"messages": MESSAGES,
            "render": template.render(messages=MESSAGES, add_generation_prompt=True)}


def main():
    readers = {"config": json_reference, "tokenizer-json": tokenizer_reference, "template": template_reference}
    result = {}
    for target, reader in readers.items():
        for path in sorted((CORPUS / target).glob("regression-*")):
            result[f"{target}/{path.name}"] = reader(path)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    print(f"{OUT.relative_to(ROOT)}: {len(result)} regression inputs")


if __name__ == "__main__":
    main()
