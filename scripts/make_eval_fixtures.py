#!/usr/bin/env python3
"""Writes Tests/Fixtures/eval/: answer-equivalence labels, boxed-extraction labels and a scripted end-to-end eval,
all labelled by Hugging Face's math-verify (an implementation we did not write), for the Swift tests of `mobilellm eval`.

    python3 -m venv /tmp/eval-venv && /tmp/eval-venv/bin/pip install math-verify==0.9.0
    /tmp/eval-venv/bin/python scripts/make_eval_fixtures.py

The committed fixtures were made with math-verify 0.9.0, latex2sympy2_extended 1.11.0, sympy 1.14.0 and
antlr4-python3-runtime 4.13.2 (what that pip command installs). CI never runs this script.

Outputs (small, committed):
  pairs.jsonl       (prediction, reference) answer pairs: math-verify's verdict, the expected verdict and, where the
                    two differ, why (the Qwen2.5-Math harness that MobileLLM-R1's evaluation uses decides otherwise).
  boxed.jsonl       model responses: math-verify's last-\\boxed extraction (latex2sympy2_extended's
                    extract_boxed_content) and the expected extraction, with the reason where they differ.
  gsm8k.jsonl, math500.jsonl, aime.jsonl      a few dataset rows in the public datasets' shapes.
  responses_*.jsonl scripted model responses per item (for `eval --responses`), two samples per item.
  expected_*.json   per-item, per-sample expected answer and correctness and the expected accuracy / pass@1 /
                    pass@k, computed with math-verify on the extracted answers (plus the documented overrides).

Expected verdicts follow math-verify except in the cases listed with a reason. Two kinds of override:
  * computed: both answers are plain decimal numbers, where the harness's rule is math.isclose(rel_tol=1e-4) against
    the reference, the reference / 100 and the reference * 100 (its percentage rule); Python's math.isclose decides;
  * documented: a harness behaviour described in `harness` (its own code is not copied here).
"""
import json
import math
import os
import re
import sys

from latex2sympy2_extended.math_normalization import extract_boxed_content
from math_verify import parse, verify

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Fixtures", "eval")

# (prediction, reference, note). A note "harness: True|False because ..." sets the expected verdict to the harness's
# where it differs from math-verify's; "expected: True|False because ..." sets one that neither gives, with the reason;
# any other note records where the harness differs while math-verify is followed.
PAIRS = [
    # Plain numbers, decimals, signs, thousands separators.
    ("72", "72", ""),
    ("72.0", "72", ""),
    ("72.00", "72", ""),
    ("-3", "-3", ""),
    ("-3", "3", ""),
    ("3", "-3", ""),
    ("1,000", "1000", ""),
    ("1000", "1,000", ""),
    ("1,234,567", "1234567", ""),
    ("1{,}000", "1000", ""),
    ("1000", "1,000.5", ""),
    ("5", "50", ""),
    ("72", "27", ""),
    ("0.5", "0.50", ""),
    ("18", "18.0", ""),
    (".5", "0.5", ""),
    # Fractions and decimals.
    ("0.5", "\\frac{1}{2}", ""),
    ("\\frac{1}{2}", "0.5", ""),
    ("1/2", "\\frac{1}{2}", ""),
    ("\\dfrac{1}{2}", "0.5", ""),
    ("\\tfrac12", "1/2", ""),
    ("\\frac12", "0.5", ""),
    ("2/4", "\\frac{1}{2}", ""),
    ("\\frac{-1}{2}", "-\\frac{1}{2}", ""),
    ("-0.5", "-\\frac12", ""),
    ("\\frac{1}{2}", "\\frac{1}{3}", ""),
    ("0.333", "\\frac{1}{3}", ""),
    ("0.33333", "\\frac{1}{3}", "harness: True because its numeric_equal accepts a relative error up to 1e-4 (0.33333 vs 1/3 is 1e-5); math-verify rounds to 6 digits"),
    ("\\frac{7}{3}", "2\\frac{1}{3}", "harness: False because 2\\frac{1}{3} parses as the product 2*(1/3) in sympy's LaTeX parser, not a mixed number; math-verify reads mixed numbers"),
    ("\\frac{10}{4}", "\\frac{5}{2}", ""),
    # Numeric tolerance (plain numbers: computed with math.isclose below).
    ("1.00005", "1", ""),
    ("1.001", "1", ""),
    ("3.1416", "\\pi", "harness: True because sympy evaluates pi numerically and numeric_equal accepts a relative 1e-4 (3.1416 vs pi is 2e-6); math-verify rounds to 6 digits"),
    ("3.14", "\\pi", ""),
    ("6.28", "2\\pi", ""),
    # Percentages: the harness strips % and compares plain numbers with reference / 100 and * 100 too.
    ("10\\%", "0.1", ""),
    ("10", "0.1", ""),
    ("0.1", "10", ""),
    ("50\\%", "50", ""),
    ("50", "50\\%", ""),
    ("25\\%", "\\frac{1}{4}", "harness: False because it strips the percent sign (25 against 1/4) and applies its percentage rule only when both sides are plain decimals"),
    # Units, dollars, degrees, text.
    ("\\$18", "18", ""),
    ("18 \\text{ dollars}", "18", ""),
    ("\\$18.00", "18", ""),
    ("30^\\circ", "30", ""),
    ("30^{\\circ}", "30", ""),
    ("30", "30^\\circ", ""),
    ("5 \\text{ cm}", "5", ""),
    ("5\\text{ cm}^2", "5", ""),
    ("\\text{5 cm}", "5", "harness: True because after unwrapping \\text it removes unit words (cm) from the answer; math-verify reads 5*c*m"),
    ("12 \\mbox{ inches}", "12", ""),
    ("\\text{Evelyn}", "Evelyn", ""),
    ("\\text{evelyn}", "\\text{Evelyn}", "harness: True because its first test compares the lower-cased strings"),
    ("\\text{(C)}", "C", "harness: True because for a reference that is a choice letter it compares the last stand-alone letter A-E of the prediction"),
    ("\\text{no}", "\\text{yes}", ""),
    ("five", "5", "harness: True because it converts number words to digits (word2number)"),
    # Equations and x = ... answers.
    ("x = 5", "5", ""),
    ("x=5", "5", ""),
    ("5", "x = 5", ""),
    ("k = 3", "3", ""),
    ("y = 2x + 1", "2x+1", ""),
    ("y = 2x+3", "y = 3 + 2x", ""),
    ("2x + 3 = y", "y = 2x+3", ""),
    ("y = 2x+3", "y = 2x-3", ""),
    ("x = 4", "x = 5", ""),
    ("x \\in [2, 5]", "[2,5]", ""),
    # Symbolic expressions.
    ("x^2+2x+1", "(x+1)^2", ""),
    ("(x+1)(x-1)", "x^2-1", ""),
    ("x^2-1", "x^2+1", ""),
    ("\\frac{x+2}{7}", "\\frac{x}{7}+\\frac{2}{7}", ""),
    ("a+b", "b+a", ""),
    ("x", "y", ""),
    ("x+1", "x+2", ""),
    ("\\frac{3}{4}x", "0.75x", ""),
    ("2x^{2}", "2x^2", ""),
    ("3(x-2)", "3x-6", ""),
    ("\\frac{1}{x}", "x^{-1}", ""),
    ("\\sqrt{x^2}", "x", "harness: False because sympy keeps sqrt(x**2) apart from x for a symbol of unknown sign; math-verify compares numerically"),
    # Roots, pi, powers, factorials.
    ("2\\sqrt{2}", "\\sqrt{8}", ""),
    ("\\sqrt{2}/2", "\\frac{\\sqrt{2}}{2}", ""),
    ("\\frac{1}{\\sqrt{2}}", "\\frac{\\sqrt2}{2}", ""),
    ("\\sqrt{3}", "\\sqrt{2}", ""),
    ("3\\sqrt{3}", "\\sqrt{27}", ""),
    ("\\sqrt[3]{8}", "2", ""),
    ("\\sqrt{12}", "2\\sqrt3", ""),
    ("5\\sqrt{2}", "7.0710678", ""),
    ("2\\pi", "2 \\pi", ""),
    ("\\pi r^2", "r^2\\pi", ""),
    ("\\frac{\\pi}{4}", "0.25\\pi", ""),
    ("45", "\\frac{\\pi}{4}", ""),
    ("2^{10}", "1024", ""),
    ("5!", "120", ""),
    ("\\binom{5}{2}", "10", ""),
    ("8^{2/3}", "4", ""),
    ("4\\pi\\sqrt{3}", "4\\sqrt{3}\\pi", ""),
    ("\\frac{9\\pi}{2}", "4.5\\pi", ""),
    ("-\\frac{\\sqrt{3}}{2}", "\\frac{-\\sqrt{3}}{2}", ""),
    ("\\frac{\\sqrt{3}}{2}", "-\\frac{\\sqrt{3}}{2}", ""),
    ("10^{6}", "1000000", ""),
    ("\\log_2 8", "3", ""),
    # Tuples, points, intervals, sets, lists.
    ("(1,2)", "(1, 2)", ""),
    ("(1,2)", "(2,1)", ""),
    ("(1, 4.5)", "(1,\\frac{9}{2})", ""),
    ("(-\\infty, 3)", "(-\\infty,3)", ""),
    ("(-\\infty, 3]", "(-\\infty,3)", ""),
    ("[1,2)", "(1,2]", "math-verify False; the harness says True because its list comparison ignores bracket kinds. Expected False: the intervals differ"),
    ("(2,5)", "[2,5]", "math-verify False; the harness says True (bracket kinds ignored). Expected False: open and closed intervals differ"),
    ("(3, -1)", "(3,-1)", ""),
    ("(\\frac12, 3)", "(0.5, 3)", ""),
    ("(1,2,3)", "(1,2)", ""),
    ("[2, 5]", "[2,5]", ""),
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})", ""),
    ("1, 2", "2, 1", "math-verify True (a set of solutions); the harness says False because it compares lists in order. Expected True: the order of listed solutions is not part of the answer"),
    ("\\{1,2\\}", "\\{2,1\\}", ""),
    ("1, 2", "1, 3", ""),
    ("-2, 1", "1, -2", "math-verify True; the harness False (ordered). Expected True as above"),
    ("[-2, 7]", "[-2,7]", ""),
    ("(0, \\infty)", "(0,\\infty)", ""),
    ("2 \\pm \\sqrt{3}", "2\\pm\\sqrt3", ""),
    ("2+\\sqrt{3}, 2-\\sqrt{3}", "2 \\pm \\sqrt 3", ""),
    ("2+\\sqrt{3}", "2 \\pm \\sqrt 3", ""),
    ("\\pm 2", "2, -2", ""),
    # Matrices.
    ("\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}", "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", ""),
    ("\\begin{bmatrix} 1 & 2 \\\\ 3 & 4 \\end{bmatrix}", "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", ""),
    ("\\begin{pmatrix} \\frac{1}{2} \\\\ 3 \\end{pmatrix}", "\\begin{pmatrix} 0.5 \\\\ 3 \\end{pmatrix}", ""),
    ("\\begin{pmatrix} 1 & 2 \\\\ 3 & 5 \\end{pmatrix}", "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", ""),
    # More numbers.
    ("3.50", "3.5", ""),
    ("0.0", "0", ""),
    ("-0", "0", ""),
    ("1e3", "1000", ""),
    ("12.5\\%", "12.5", ""),
    ("\\$1,000", "1000", ""),
    ("1,000,000", "10^6", ""),
    ("2,5", "2.5", ""),
    ("1234567", "1234568", ""),
    ("20\\%", "20", ""),
    ("0.2", "20\\%", ""),
    ("12345678901234567890", "12345678901234567890", ""),
    ("\\frac{2}{3}", "0.67", ""),
    ("2^{-1}", "0.5", ""),
    ("\\frac{3}{2}", "1.5", ""),
    ("\\frac{a}{b}", "a/b", ""),
    ("\\frac{1}{2}x", "\\frac{x}{2}", ""),
    ("x/2", "\\frac{x}{2}", ""),
    # More roots and constants.
    ("\\sqrt{2}\\cdot\\sqrt{3}", "\\sqrt{6}", ""),
    ("\\sqrt{50}", "5\\sqrt{2}", ""),
    ("\\frac{\\sqrt{6}}{3}", "\\sqrt{\\frac{2}{3}}", ""),
    ("2+\\sqrt{3}", "\\sqrt{3}+2", ""),
    ("2-\\sqrt{3}", "2+\\sqrt{3}", ""),
    ("\\sqrt{2}", "1.414", ""),
    ("2\\pi r", "2 r \\pi", ""),
    ("\\frac{4}{3}\\pi", "\\frac{4\\pi}{3}", ""),
    ("36\\pi", "36\\pi \\text{ cm}^2", ""),
    ("\\ln 8", "3\\ln 2", ""),
    ("\\log_{3} 81", "4", ""),
    # More expressions and equations.
    ("(x-2)(x+3)", "x^2+x-6", ""),
    ("x^2+x-6", "(x+2)(x-3)", ""),
    ("3x^2-12", "3(x-2)(x+2)", ""),
    ("\\frac{x^2-1}{x-1}", "x+1", ""),
    ("2ab", "2ba", "harness: True because sympy's LaTeX parser reads both as 2*a*b; math-verify parses 2ab as 2 (its normalization drops the 'ab')"),
    ("a^2b", "ab^2", ""),
    ("\\sin^2 x + \\cos^2 x", "1", ""),
    ("|x-1|", "|1-x|", ""),
    ("y = -\\frac{1}{2}x + 3", "y=-0.5x+3", ""),
    ("x + y = 5", "y = 5 - x", ""),
    ("x^2 + y^2 = 25", "x^2+y^2-25=0", ""),
    ("2x + 2y = 10", "x + y = 5", "math-verify True; the harness says False because it compares equations only up to sign. Expected True: the same line"),
    ("y = 2x", "2y = 4x", ""),
    ("y = 2x", "y = 3x", ""),
    # More tuples, intervals, sets.
    ("(2, -3)", "(2,-3)", ""),
    ("(-1, 2)", "(2, -1)", ""),
    ("\\left(\\frac{1}{2}, \\frac{\\sqrt{3}}{2}\\right)", "(0.5, \\frac{\\sqrt3}{2})", ""),
    ("(1, 2]", "(1, 2]", ""),
    ("[0, 1]", "[0,1)", ""),
    ("(-\\infty, -2) \\cup (2, \\infty)", "(-\\infty,-2)\\cup(2,\\infty)", ""),
    ("\\{3\\}", "3", ""),
    ("\\begin{pmatrix} 2 \\\\ -1 \\end{pmatrix}", "\\begin{pmatrix}2\\\\-1\\end{pmatrix}", ""),
    ("\\begin{pmatrix} 2 & -1 \\end{pmatrix}", "\\begin{pmatrix}2\\\\-1\\end{pmatrix}", ""),
    # More text, choices, degrees, units.
    ("\\text{Monday}", "\\text{Tuesday}", ""),
    ("\\textbf{(A)}", "A", ""),
    ("B", "A", ""),
    ("45^\\circ", "\\frac{\\pi}{4}", ""),
    ("90°", "90", "expected: True because the degree sign is a unit like ^\\circ, which both references strip; neither the harness (which then cannot parse 90°) nor math-verify knows the Unicode sign, and both say False"),
    ("4 \\text{ inches}", "4", ""),
    ("5\\text{ cm}", "6", ""),
    ("\\$ 5.50", "5.5", ""),
    ("50 \\text{ dollars}", "\\$50", ""),
    # Empty and junk.
    ("", "5", ""),
    ("\\text{undefined}", "5", ""),
]

# Responses for boxed extraction. (response, note): a note documents an expected extraction that differs from
# latex2sympy2_extended's extract_boxed_content(mode="last"); the expected text follows "expected: ".
RESPONSES = [
    ("The sum is $2+3=5$, so the answer is $\\boxed{5}$.", ""),
    ("First \\boxed{3}. On reflection the answer is \\boxed{4}.", ""),
    ("We get \\boxed{\\frac{1}{2}}.", ""),
    ("So $x = \\boxed{\\dfrac{\\sqrt{3}}{2}}$", ""),
    ("The answer: \\boxed{\\text{(C)}}", ""),
    ("\\fbox{42}", ""),
    ("Thus \\boxed{(1, 2)} is the point.", ""),
    ("Nested: \\boxed{\\left\\{ 1, 2 \\right\\}} done", ""),
    ("\\boxed{x^{2}+\\frac{1}{x}}", ""),
    ("No box here, the answer is 7.", "expected: none because there is no box (extract_boxed_content returns its input unchanged when nothing is boxed)"),
    ("Cut off: \\boxed{12", "expected: none because the box never closes (extract_boxed_content returns the rest, '{12'; AnswerExtractor then takes the text after the box's brace, as the harness does)"),
    ("The roots are \\boxed{2} and \\boxed{3}", "expected: 3 because the harness (and BoxedAnswer) take only the last box; extract_boxed_content joins boxes separated by 'and' or a comma"),
    ("\\boxed{1}, \\boxed{2}", "expected: 2 because only the last box counts in the harness; extract_boxed_content joins nearby boxes"),
    ("Answer \\boxed {9} done", "expected: {9} done because the harness reads a box keyword followed by a space up to the next $ or line end (its `\\boxed 5` form); extract_boxed_content skips the space"),
    ("\\boxed{a}{b}", ""),
    ("$\\boxed{1000}$ dollars", ""),
    ("\\boxed{\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}}", ""),
    ("Final: \\boxed{-\\infty, 3}", ""),
]

# Eval datasets (the public datasets' shapes) and scripted responses: two samples per item.
GSM8K = [
    ({"question": "Tom has 3 apples and buys 4 more. How many apples does he have?", "answer": "3 + 4 = <<3+4=7>>7\n#### 7"},
     ["He has 3 + 4 = 7 apples. \\boxed{7}", "3 plus 4 is 8, so \\boxed{8}"]),
    ({"question": "A shop sells 1,200 pens a day for 3 days. How many pens?", "answer": "1200*3=3600\n#### 3,600"},
     ["1,200 x 3 = 3,600. The answer is $\\boxed{3,600}$.", "So the shop sells \\boxed{3600} pens."]),
    ({"question": "Jan earns $18 per hour for 2 hours. How much?", "answer": "#### 36"},
     ["She earns \\boxed{\\$36}.", "The answer is 36 dollars."]),
    ({"question": "How many legs do 2 cats have?", "answer": "2*4=8\n#### 8"},
     ["Each cat has 4 legs... I am not sure.", "Cats have four legs, so 2 cats have 8 legs. \\boxed{6}"]),
]
MATH500 = [
    ({"problem": "Simplify $\\frac{2}{4}$.", "answer": "\\frac{1}{2}", "subject": "Prealgebra", "level": 1, "unique_id": "test/prealgebra/1.json"},
     ["We divide: \\boxed{0.5}", "\\boxed{\\dfrac12}"]),
    ({"problem": "Solve $x^2 = 4$ for $x > 0$.", "answer": "2", "unique_id": "test/algebra/2.json"},
     ["x = 2, so \\boxed{x = 2}", "\\boxed{-2}"]),
    ({"problem": "Write $(x+1)^2$ expanded.", "solution": "We get $x^2 + 2x + 1$, so the answer is $\\boxed{x^2+2x+1}$.", "unique_id": "test/algebra/3.json"},
     ["\\boxed{x^2 + 2x + 1}", "\\boxed{(x+1)^2}"]),
    ({"problem": "What is $\\sqrt{8}$ in simplest form?", "answer": "2\\sqrt{2}", "unique_id": "test/algebra/4.json"},
     ["\\boxed{2\\sqrt2}", "\\boxed{\\sqrt{8}}"]),
    ({"problem": "Give the point where $y=x$ meets $y=2$.", "answer": "(2,2)", "unique_id": "test/algebra/5.json"},
     ["\\boxed{(2, 2)}", "\\boxed{(2, 3)}"]),
]
AIME = [
    ({"ID": "2024-I-1", "Problem": "Find the remainder when $2^{10}$ is divided by $1000$.", "Answer": 24},
     ["$2^{10}=1024$, remainder \\boxed{24}", "\\boxed{024}"]),
    ({"id": 61, "problem": "Find $7 \\cdot 11 \\cdot 13$.", "answer": "1001"},
     ["\\boxed{1001}", "\\boxed{1000}"]),
    ({"id": 62, "question": "Compute $1+2+\\cdots+20$.", "answer": "210"},
     ["The sum is \\boxed{210}.", "\\boxed{220}"]),
]


def mv_equal(prediction, reference):
    """math-verify's verdict on two extracted answers (each wrapped in a box so its extraction takes all of it)."""
    gold = parse("\\boxed{" + reference + "}")
    pred = parse("\\boxed{" + prediction + "}")
    return bool(gold) and bool(pred) and verify(gold, pred)


PLAIN = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")  # what Python's float() reads


def plain(text):
    """A plain decimal after removing what the harness removes from numbers: \\%, %, thousands commas."""
    t = text.replace("\\%", "").replace("%", "").replace(" ", "")
    if re.fullmatch(r"[+-]?\d{1,3}(,\d{3})+(\.\d+)?", t):
        t = t.replace(",", "")
    return float(t) if PLAIN.match(t) else None


def harness_numeric(prediction, reference):
    """The harness's plain-number rule, with Python's math.isclose: None unless both are plain decimals."""
    p, r = plain(prediction), plain(reference)
    if p is None or r is None:
        return None
    return any(math.isclose(c, p, rel_tol=1e-4) for c in (r / 100, r, r * 100))


def label_pair(prediction, reference, note):
    mv = mv_equal(prediction, reference) if prediction else False
    expected, reason = mv, ""
    numeric = harness_numeric(prediction, reference)
    if numeric is not None and numeric != mv:
        expected, reason = numeric, "computed: both are plain numbers; the harness rule (math.isclose rel_tol=1e-4 against reference, reference/100, reference*100) says %s" % numeric
    if note.startswith("harness: ") or note.startswith("expected: "):
        expected = note.split()[1] == "True"
        reason = note
    elif note:
        reason = note  # math-verify is followed; the note records where the harness differs.
    return {"prediction": prediction, "reference": reference, "math_verify": mv, "expected": expected, "reason": reason}


def mv_boxed(response):
    """latex2sympy2_extended's last-box extraction; None when nothing is boxed (it then returns its input)."""
    out = extract_boxed_content(response, "last")
    return None if out == response else out


def label_response(response, note):
    mv = mv_boxed(response)
    expected = mv
    if note.startswith("expected: "):
        rest = note[len("expected: "):]
        value = rest.split(" because ")[0]
        expected = None if value == "none" else value
    return {"response": response, "math_verify": mv, "expected": expected, "reason": note}


def reference_for(task, row):
    """The reference answer as the task defines it (see Sources/MobileLLMTools/Eval/EvalDataset.swift)."""
    if task == "gsm8k":
        return row["answer"].split("####")[-1].strip().replace(",", "")
    if task == "math500":
        if "answer" in row:
            return str(row["answer"])
        return mv_boxed(row["solution"])
    return str(row.get("answer", row.get("Answer")))


def expected_answer(response):
    """The extracted answer: the last box (math-verify's extraction where no box joining applies), else None."""
    return mv_boxed(response)


def write_task(task, rows):
    with open(os.path.join(OUT, task + ".jsonl"), "w") as f:
        for row, _ in rows:
            f.write(json.dumps(row) + "\n")
    items = []
    with open(os.path.join(OUT, "responses_" + task + ".jsonl"), "w") as f:
        for index, (row, responses) in enumerate(rows):
            item_id = str(row.get("id", row.get("ID", row.get("unique_id", index))))
            f.write(json.dumps({"id": item_id, "responses": [
                {"text": text, "tokens": len(text.split()), "stop_reason": "eos"} for text in responses]}) + "\n")
            reference = reference_for(task, row)
            samples = []
            for text in responses:
                answer = expected_answer(text)
                if answer is None:
                    # No box: the harness falls back to "The answer is ..." or the last number; math-verify's own
                    # extraction of the whole response (without anchors) finds the same final number here.
                    found = parse(text)
                    answer = found[1] if len(found) > 1 else None
                correct = answer is not None and (harness_numeric(answer, reference) if harness_numeric(answer, reference) is not None else mv_equal(answer, reference))
                samples.append({"answer": answer, "correct": bool(correct)})
            items.append({"id": item_id, "reference": reference, "samples": samples})
    k = len(rows[0][1])
    summary = {
        "accuracy": sum(item["samples"][0]["correct"] for item in items) / len(items),
        "pass_at_1": sum(sum(s["correct"] for s in item["samples"]) / k for item in items) / len(items),
        "pass_at_k": sum(any(s["correct"] for s in item["samples"]) for item in items) / len(items),
    }
    with open(os.path.join(OUT, "expected_" + task + ".json"), "w") as f:
        json.dump({"task": task, "samples": k, "items": items, "summary": summary}, f, indent=1)
        f.write("\n")


def main():
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "pairs.jsonl"), "w") as f:
        for pair in PAIRS:
            f.write(json.dumps(label_pair(*pair)) + "\n")
    with open(os.path.join(OUT, "boxed.jsonl"), "w") as f:
        for response in RESPONSES:
            f.write(json.dumps(label_response(*response)) + "\n")
    write_task("gsm8k", GSM8K)
    write_task("math500", MATH500)
    write_task("aime", AIME)
    disagreements = [p for p in PAIRS if p[2]]
    print("wrote %d pairs (%d with a documented note), %d responses, 3 tasks to %s" % (len(PAIRS), len(disagreements), len(RESPONSES), os.path.normpath(OUT)), file=sys.stderr)


if __name__ == "__main__":
    main()
