#!/usr/bin/env python3
"""Python's json.loads verdicts on a corpus of JSON documents, for the engine's one JSON reader (JSONReader).

    python3 scripts/make_json_fixtures.py        # standard library only; writes Tests/Fixtures/json/python-json.json

Each case holds the document as bytes (hex) and what Python's `json.loads(bytes.decode("utf-8"))` gives, which is how
transformers reads config.json, tokenizer_config.json and the rest: either the value in a tagged form that keeps int
apart from float and object members in order (["i", "3"], ["f", "3.0"], ["s", text], ["b", true], ["n"],
["a", [...]], ["o", [[key, value], ...]]), or the error with its character offset, line and column. Documents that
are not UTF-8 count as errors at the first bad byte (Python's decode fails there). Two documented differences are
not in the corpus: integers beyond 64 bits (Python keeps them exact, the engine gives a float) and unpaired
surrogate escapes (Python keeps a lone surrogate, the engine gives U+FFFD).
"""
import json
import math
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "Fixtures", "json", "python-json.json")

VALID = [
    "3", "3.0", "-0", "-0.0", "1e3", "1E-3", "-12.5e+2", "9223372036854775807", "-9223372036854775808",
    "0.1", "123456789.125", "true", "false", "null", "NaN", "Infinity", "-Infinity",
    '"plain"', '"esc \\" \\\\ \\/ \\b \\f \\n \\r \\t"', '"\\u00e9\\u4e2d"', '"\\ud83d\\ude00"', '"é中😀"', '""',
    "[]", "{}", " \t\r\n[ 1 , 2 ]\n", '[1,2,{"x":[true,false,null]}]',
    '{"b":1,"a":2}', '{"a":1,"a":2}', '{"a":1,"b":2,"a":3}', '{"a":{"a":1},"a":{"b":2}}',
    '{"model_type":"qwen2","rope_theta":1000000.0,"num_hidden_layers":24,"eos_token_id":[151645,151643]}',
    "[" * 100 + "]" * 100,
]
INVALID = [
    "", " ", "01", "-01", "00", "1.", ".5", "1e", "1e+", "+1", "-", "--1", "nan", "inf", "-NaN", "tru", "nul",
    "[1,]", "[1 2]", "[,1]", "[", "]", '{"a":1,}', '{"a" 1}', '{a:1}', "{'a':1}", '{"a":1', '{"a":1}x', "1 2",
    '"abc', '"\\x"', '"\\u12"', '"\\uZZZZ"', '"tab\there"', '"line\nbreak"', "//c\n1", "/* c */ 1",
    "[1,\n 2,\n 3,,]", '{\n  "a": 1,\n  "b": tru\n}', '{"é": 1, "x": ]}',
]
INVALID_BYTES = [
    b"\xef\xbb\xbf{}",  # a UTF-8 byte order mark
    b'"\xff"', b'{"a": "\xc3"}', b'["ok", "\xed\xa0\x80"]',
]


def tagged(value):
    if value is None:
        return ["n"]
    if isinstance(value, bool):
        return ["b", value]
    if isinstance(value, int):
        return ["i", str(value)]
    if isinstance(value, float):
        return ["f", repr(value)]
    if isinstance(value, str):
        return ["s", value]
    if isinstance(value, list):
        return ["a", [tagged(v) for v in value]]
    return ["o", [[k, tagged(v)] for k, v in value.items()]]


def verdict(data: bytes):
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        return {"error": "not UTF-8", "byte": error.start}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        return {"error": error.msg, "char": error.pos, "line": error.lineno, "column": error.colno}
    return {"value": tagged(value)}


def main():
    cases = []
    for text in VALID + INVALID:
        cases.append({"hex": text.encode("utf-8").hex(), **verdict(text.encode("utf-8"))})
    for data in INVALID_BYTES:
        cases.append({"hex": data.hex(), **verdict(data)})
    for text in VALID:
        assert "value" in verdict(text.encode()), text
    for text in INVALID:
        assert "error" in verdict(text.encode()), text
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as handle:
        json.dump({"python": "json.loads", "cases": cases}, handle, ensure_ascii=True, indent=0)
        handle.write("\n")
    print(f"wrote {len(cases)} cases to {OUT}")


if __name__ == "__main__":
    main()
