"""The mobilellm CLI on hostile model files and bad usage (issue 7): the exit-code convention.

Every case of Tests/hostile/cases.json (made by scripts/make_hostile_corpus.py) must exit 1 within a second with
exactly one stderr line "mobilellm: error: ..." containing the case's expected file/field text, and print nothing on
stdout; the controls (the undamaged files the cases were made from) must exit 0. Usage errors exit 2, --help exits 0,
for every subcommand. Runs the release CLI (`swift build -c release`, as scripts/test does) or $MOBILELLM_CLI; a
missing binary is a failure, not a skip.

    swift build -c release && python3 -m pytest -q Tests/hostile
"""
import json
import os
import re
import subprocess
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLI = os.environ.get("MOBILELLM_CLI") or os.path.join(ROOT, ".build", "release", "mobilellm")
CORPUS = json.load(open(os.path.join(ROOT, "Tests", "hostile", "cases.json")))
TIME_LIMIT = 1.0


def run(arguments, timeout=30):
    """(exit status, stdout, stderr, seconds) of the CLI run from the repository root."""
    if not os.access(CLI, os.X_OK):
        pytest.fail("the mobilellm CLI is missing at %s: build it with `swift build -c release` or set MOBILELLM_CLI" % CLI)
    start = time.monotonic()
    result = subprocess.run([CLI] + arguments, cwd=ROOT, capture_output=True, text=True, errors="replace", timeout=timeout)
    return result.returncode, result.stdout, result.stderr, time.monotonic() - start


def describe(status):
    return "killed by signal %d" % -status if status < 0 else "exit %d" % status


def test_corpus_size():
    # The issue asks for at least 25 cases across safetensors, index, config, tokenizer, template and GGUF files.
    assert len(CORPUS["cases"]) >= 25
    prefixes = {case["name"].split("-")[0] for case in CORPUS["cases"]}
    assert {"st", "idx", "cfg", "gen", "tok", "tokcfg", "tpl", "gguf"} <= prefixes


@pytest.mark.parametrize("command", CORPUS["controls"], ids=lambda c: " ".join(c[:3]))
def test_control_succeeds(command):
    status, stdout, stderr, _ = run(command)
    assert status == 0, "%s: %s\n%s" % (" ".join(command), describe(status), stderr)
    assert stdout.strip()


@pytest.mark.parametrize("case", CORPUS["cases"], ids=lambda c: c["name"])
def test_hostile_case(case):
    status, stdout, stderr, seconds = run(case["command"])
    assert status == 1, "%s: %s, stderr: %s" % (case["name"], describe(status), stderr[-500:])
    lines = stderr.split("\n")
    assert lines[-1] == "" and len(lines) == 2, "expected exactly one stderr line, got %r" % stderr[:1000]
    line = lines[0]
    assert line.startswith("mobilellm: error: ") and len(line) > len("mobilellm: error: ")
    assert case["expect"] in line, "%r not in %r" % (case["expect"], line)
    assert stdout == ""
    if seconds >= TIME_LIMIT:
        # The machine may be busy with other work: measure once more before calling it slow.
        seconds = min(seconds, run(case["command"])[3])
    assert seconds < TIME_LIMIT, "%s took %.2f s" % (case["name"], seconds)


def subcommands():
    status, stdout, _, _ = run(["--help"])
    assert status == 0
    section = stdout.split("SUBCOMMANDS:", 1)[1]
    names = re.findall(r"^  ([a-z][a-z-]*)  ", section, re.MULTILINE)
    return [name for name in names if name != "help"]


def test_root_usage():
    assert run(["--help"])[0] == 0
    assert run(["--version"])[0] == 0
    status, stdout, stderr, _ = run(["frobnicate"])
    assert status == 2 and stdout == "" and "frobnicate" in stderr
    assert run(["--no-such-flag"])[0] == 2


def test_every_subcommand_help_and_unknown_flag():
    names = subcommands()
    assert {"generate", "logits", "tokenize", "detokenize", "template", "bench", "quantize"} <= set(names)
    for name in names:
        status, stdout, stderr, _ = run([name, "--help"])
        assert status == 0 and "USAGE:" in stdout, "%s --help: %s %s" % (name, describe(status), stderr)
        status, stdout, stderr, _ = run([name, "--no-such-flag"])
        assert status == 2, "%s --no-such-flag: %s" % (name, describe(status))
        assert stdout == "" and stderr.startswith("mobilellm: ")


MODEL = "Tests/hostile/controls/tiny-r1"

# Missing required options, bad values and contradictory options: usage errors, exit 2, before any model is read.
USAGE_ERRORS = [
    ["pull"],
    ["chat", "--model", MODEL, "--temperature", "hot"],
    ["generate", "--model", MODEL, "--tokens", "1", "--max-tokens", "many"],
    ["generate", "--model", MODEL, "--max-tokens", "1"],
    ["generate", "--model", MODEL, "--tokens", "1", "--prompt", "x", "--max-tokens", "1"],
    ["generate", "--model", MODEL, "--tokens", "1", "--max-tokens", "-1"],
    ["generate", "--model", MODEL, "--tokens", "1", "--max-tokens", "1", "--threads", "two"],
    ["generate", "--model", MODEL, "--tokens", "1", "--max-tokens", "1", "--activations", "int4"],
    ["generate", "--model", MODEL, "--tokens", "1", "--max-tokens", "1", "--kv-cache", "q2"],
    ["generate", "--model", MODEL, "--tokens", "1,x", "--max-tokens", "1"],
    ["logits", "--model", MODEL],
    ["logits", "--model", MODEL, "--tokens", ""],
    ["tokenize", "--model", MODEL],
    ["eval", "--task", "gsm8k"],
    ["eval", "--task", "gsm9k", "--data", "x.jsonl"],
    ["detokenize", "--model", MODEL],
    ["detokenize", "--model", MODEL, "--tokens", "1,,2"],
    ["template", "--model", MODEL],
    ["template", "--messages", "Tests/hostile/messages.json"],
    ["bench", "--synthetic", "no-such-model", "--threads", "1", "--prompt-tokens", "1", "--gen-tokens", "1", "--repetitions", "1", "--json"],
    ["bench", "--model", MODEL, "--repetitions", "0"],
    ["quantize", "--model", MODEL, "--out", "/nonexistent/x.gguf"],
    ["quantize", "--model", MODEL, "--out", "/nonexistent/x.gguf", "--type", "q3_z"],
    # The control flags: malformed values and contradictions.
    ["generate", "--model", MODEL, "--tokens", "1", "--max-tokens", "1", "--logit-bias", "5"],
    ["generate", "--model", MODEL, "--tokens", "1", "--max-tokens", "1", "--logit-bias", "5=strong"],
    ["generate", "--model", MODEL, "--tokens", "1", "--max-tokens", "1", "--logit-bias", "5=inf"],
    ["generate", "--model", MODEL, "--tokens", "1", "--max-tokens", "1", "--logit-bias", "=1"],
    ["generate", "--model", MODEL, "--tokens", "1", "--max-tokens", "1", "--ban", ""],
    ["generate", "--model", MODEL, "--tokens", "1", "--max-tokens", "1", "--logprobs", "21"],
    ["generate", "--model", MODEL, "--tokens", "1", "--max-tokens", "1", "--reasoning-budget", "-1"],
    ["generate", "--model", MODEL, "--tokens", "1", "--max-tokens", "1", "--reasoning-end", ""],
    ["generate", "--model", MODEL, "--tokens", "1", "--max-tokens", "1", "--grammar", "a.gbnf", "--json-schema", "b.json"],
    ["chat", "--model", MODEL, "--logprobs", "many"],
]


@pytest.mark.parametrize("command", USAGE_ERRORS, ids=lambda c: " ".join(c))
def test_usage_error(command):
    status, stdout, stderr, _ = run(command)
    assert status == 2, "%s, stderr: %s" % (describe(status), stderr)
    assert stdout == "" and stderr.startswith("mobilellm: ")
