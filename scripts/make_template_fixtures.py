#!/usr/bin/env python3
"""Generate the chat-template fixtures under Tests/Fixtures/templates/ (CI never runs this).

Run with the reference venv (jinja2 3.1.6, transformers 5.x, gguf):

    python3 scripts/fetch_assets.py llamacpp smollm2
    /work/refvenv/bin/python scripts/make_template_fixtures.py

It copies llama.cpp's real template collection (MIT, from the llama-cpp-python 0.3.36 sdist, see
Tests/Fixtures/templates/ORIGIN.md) plus SmolLM2-135M-Instruct's GGUF template and mobilellm's built-in
Llama-3 header template into Tests/Fixtures/templates/sources/, then renders each one with several message
lists through transformers' own `render_jinja_template` (so the jinja2 environment is exactly the one
transformers builds: ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols, its tojson,
raise_exception, strftime_now), with `strftime_now` pinned to a fixed date. Results go to expected.json:
the rendered text, or the fact that jinja2 raised.

It also renders a list of small Jinja snippets (semantics.json) that pin down the language semantics the Swift
implementation must match: whitespace control, trim/lstrip blocks, loop variables, scoping, filters, tests,
undefined behaviour, Python str() of values, and errors.
"""
import datetime as _datetime
import json
import os
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ASSETS = os.environ.get("MOBILELLM_ASSETS") or os.path.join(ROOT, ".cache", "assets")
OUT = os.path.join(ROOT, "Tests", "Fixtures", "templates")
SOURCES = os.path.join(OUT, "sources")

import jinja2  # noqa: E402
import transformers.utils.chat_template_utils as ctu  # noqa: E402

FIXED_NOW = _datetime.datetime(2024, 7, 26, 9, 5, 3)


class _FixedDatetime(_datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        return FIXED_NOW


# transformers' strftime_now calls `datetime.now()` from its module globals; pin it.
ctu.datetime = _FixedDatetime

VARIABLES = {"bos_token": "<|bos|>", "eos_token": "<|eos|>", "date_string": "26 Jul 2024"}

MESSAGE_SETS = [
    [{"role": "user", "content": "Hello!"}],
    [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is 2+2?"},
    ],
    [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Say hi."},
        {"role": "assistant", "content": "Hi."},
        {"role": "user", "content": "  And now in French? Ünïcödé 👋 \"quotes\" 'single' <tag> & \\ back\n"},
    ],
    [
        {"role": "user", "content": "Think first."},
        {"role": "assistant", "content": "<think>\nLet me think.\n</think>\n\nHello there!"},
    ],
    [
        {"role": "user", "content": [{"type": "text", "text": "Describe this."}]},
    ],
    # Tool use: tools passed as a variable, an assistant tool call (arguments as an object), a tool result.
    [
        {"role": "system", "content": "You can call tools."},
        {"role": "user", "content": "Weather in Paris for 2 days?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"type": "function", "id": "call_1", "function": {"name": "get_weather", "arguments": {"location": "Paris", "days": 2}}}]},
        {"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": "{\"temp_c\": 21.5, \"sky\": \"clear\"}"},
        {"role": "user", "content": "Thanks!"},
    ],
    # Reasoning: reasoning_content on an earlier assistant turn, thinking disabled.
    [
        {"role": "user", "content": "1+1?"},
        {"role": "assistant", "content": "2", "reasoning_content": "Adding one and one."},
        {"role": "user", "content": "2+2?"},
    ],
]

TOOLS = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather forecast for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "City name, e.g. Paris"},
                "days": {"type": "integer", "minimum": 1, "default": 3, "description": "Forecast length"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["location"],
        },
    },
}]

# Extra variables per message list (merged over VARIABLES).
MESSAGE_SET_VARIABLES = [{}, {}, {}, {}, {}, {"tools": TOOLS}, {"enable_thinking": False}]

# mobilellm's built-in template for models without one (the Llama-3 header format MobileLLM-R1 uses).
# Must equal ChatTemplate.llama3HeaderSource in Sources/MobileLLM/ChatTemplate/ChatTemplate.swift.
LLAMA3_DEFAULT = (
    "{% for message in messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = (bos_token | default('')) + content %}{% endif %}"
    "{{ content }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)


def render(source, messages, add_generation_prompt, variables):
    rendered, _ = ctu.render_jinja_template(
        conversations=[messages], chat_template=source, add_generation_prompt=add_generation_prompt, **variables
    )
    return rendered[0]


def error_text(exc):
    return f"{type(exc).__name__}: {exc}"


def smollm2_template():
    import gguf

    path = os.path.join(ASSETS, "smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
    reader = gguf.GGUFReader(path)
    field = reader.fields["tokenizer.chat_template"]
    return bytes(field.parts[field.data[0]]).decode("utf-8")


def collect_sources():
    shutil.rmtree(SOURCES, ignore_errors=True)
    os.makedirs(SOURCES)
    names = []
    folder = os.path.join(ASSETS, "llamacpp", "templates")
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".jinja"):
            continue
        shutil.copyfile(os.path.join(folder, name), os.path.join(SOURCES, name))
        names.append(name)
    extra = {
        "HuggingFaceTB-SmolLM2-135M-Instruct.jinja": smollm2_template(),
        "mobilellm-llama3-header.jinja": LLAMA3_DEFAULT,
    }
    for name, text in extra.items():
        with open(os.path.join(SOURCES, name), "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        names.append(name)
    return sorted(names)


def make_expected():
    names = collect_sources()
    templates = {}
    for name in names:
        with open(os.path.join(SOURCES, name), encoding="utf-8", newline="") as handle:
            source = handle.read()
        entry = {"compile_error": None, "renders": []}
        try:
            ctu._compile_jinja_template(source)
        except Exception as exc:  # noqa: BLE001 - any failure is a fact to record
            entry["compile_error"] = error_text(exc)
            templates[name] = entry
            continue
        for index, messages in enumerate(MESSAGE_SETS):
            for agp in (False, True):
                case = {"messages": index, "add_generation_prompt": agp}
                try:
                    variables = dict(VARIABLES, **json.loads(json.dumps(MESSAGE_SET_VARIABLES[index])))
                    case["text"] = render(source, json.loads(json.dumps(messages)), agp, variables)
                except Exception as exc:  # noqa: BLE001
                    case["error"] = error_text(exc)
                entry["renders"].append(case)
        templates[name] = entry
    return {
        "generator": "scripts/make_template_fixtures.py",
        "jinja2": jinja2.__version__,
        "now": FIXED_NOW.isoformat(),
        "variables": VARIABLES,
        "message_sets": MESSAGE_SETS,
        "message_set_variables": MESSAGE_SET_VARIABLES,
        "templates": templates,
    }


# (name, template source, variables). Rendered with the same transformers environment, without messages.
SEMANTICS = [
    # whitespace control, trim_blocks, lstrip_blocks
    ("trim_blocks", "{% if true %}\nyes\n{% endif %}\nend", {}),
    ("lstrip_blocks", "  {% if true %}\n  x\n  {% endif %}\n", {}),
    ("lstrip_not_variables", "  {{ 'v' }}\n  {% if true %}a{% endif %}", {}),
    ("lstrip_mid_line", "a  {% if true %}b{% endif %}  c", {}),
    ("lstrip_tabs", "\t \t{% if true %}x{% endif %}\n", {}),
    ("minus_left", "a   \n\n  {%- if true %}b{% endif %}", {}),
    ("minus_right", "{% if true -%}   \n\n  b{% endif %}", {}),
    ("minus_var", "a \n {{- 'b' -}} \n c", {}),
    ("plus_lstrip", "  {%+ if true %}x{% endif %}", {}),
    ("plus_trim", "{% if true +%}\nx{% endif %}", {}),
    ("comment_trim", "a\n  {# note #}\nb", {}),
    ("comment_minus", "a  {#- note -#}  b", {}),
    ("trailing_newline", "x\n", {}),
    ("two_trailing_newlines", "x\n\n", {}),
    ("crlf_source", "a\r\n{% if true %}\r\nb\r\n{% endif %}\r\nc", {}),
    ("var_no_trim", "{{ 'a' }}\nb", {}),
    ("first_line_lstrip", "   {% set x = 1 %}{{ x }}", {}),
    ("lstrip_after_var", "{{ 'a' }}  {% if true %}b{% endif %}", {}),
    ("lstrip_after_block_newline", "{% if true %}\n   {% if true %}z{% endif %}{% endif %}", {}),
    # literals and str()
    ("literals", "{{ 1 }} {{ 1.5 }} {{ 2.0 }} {{ -3 }} {{ 1e3 }} {{ 1_000 }} {{ true }} {{ False }} {{ none }} {{ None }}", {}),
    ("string_escapes", "{{ 'a\\nb\\tc\\\\d\\'e\"f' }}|{{ \"x\\\"y\" }}|{{ 'caf\\u00e9' }}|{{ '\\x41' }}|{{ 'q\\q' }}", {}),
    ("string_concat_adjacent", "{{ 'a' 'b' \"c\" }}", {}),
    ("str_list", "{{ [1, 'a', none, true, 2.5, [\"x\"]] }}", {}),
    ("str_dict", "{{ {'a': 1, 'b': 'c', 'd': {'e': none}} }}", {}),
    ("str_tuple", "{{ (1, 'a') }} {{ (1,) }} {{ () }}", {}),
    ("str_quotes", "{{ [\"it's\", 'say \"hi\"', 'both \\' \"', 'nl\\n', 'ü'] }}", {}),
    ("str_float", "{{ 0.1 + 0.2 }} {{ 1e16 }} {{ 1e-5 }} {{ 123456789.0 }} {{ 1.0e15 }} {{ 3 / 2 }} {{ 4 / 2 }}", {}),
    ("int_var", "{{ n }} {{ f }} {{ n + 1 }} {{ f * 2 }}", {"n": 3, "f": 3.0}),
    ("int_vars_in_list", "{{ xs }} {{ xs|tojson }}", {"xs": [1, 2.0, 3.5]}),
    # arithmetic and operators
    ("arith", "{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 7 / 2 }} {{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }}", {}),
    ("concat", "{{ 'a' ~ 1 ~ none ~ true }} {{ 'a' + 'b' }} {{ [1] + [2] }} {{ 'ab' * 3 }}", {}),
    ("compare", "{{ 1 < 2 }} {{ 'a' == 'a' }} {{ 1 == 1.0 }} {{ true == 1 }} {{ [1,2] == [1,2] }} {{ 'b' > 'a' }} {{ 1 != 2 }}", {}),
    ("in_ops", "{{ 'a' in 'cat' }} {{ 2 in [1,2] }} {{ 'k' in {'k': 1} }} {{ 3 not in [1] }} {{ not true }}", {}),
    ("and_or_values", "{{ 0 or 'x' }} {{ 'a' and 'b' }} {{ '' and 'b' }} {{ none or none }}", {}),
    ("cond_expr", "{{ 'y' if true else 'n' }} {{ 'y' if false else 'n' }} [{{ 'y' if false }}]", {}),
    ("unary_minus_filter", "{{ -1|abs }} {{ -(2) }}", {}),
    ("truthiness", "{% for v in [0, 1, '', 'a', [], [0], {}, none, 0.0] %}{{ 'T' if v else 'F' }}{% endfor %}", {}),
    # subscripts and slices
    ("subscript", "{{ d.a }} {{ d['a'] }} {{ xs[0] }} {{ xs[-1] }} [{{ xs[9] }}] {{ 'abc'[1] }}", {"d": {"a": 1}, "xs": [1, 2, 3]}),
    ("slices", "{{ xs[1:] }} {{ xs[:2] }} {{ xs[::-1] }} {{ 'hello'[1:3] }} {{ 'hello'[::-1] }} {{ xs[-2:] }} {{ 'héllo'[::2] }}", {"xs": [1, 2, 3, 4]}),
    ("dict_attr_method", "{{ d.get('a') }} {{ d.get('z', 'dflt') }} [{{ d.get('z') }}] {{ d.items()|list }} {{ d.keys()|list }} {{ d.values()|list }}", {"d": {"a": 1, "b": 2}}),
    # loops
    ("loop_vars", "{% for x in 'abc' %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }};{% endfor %}", {}),
    ("loop_prev_next", "{% for x in [1,2,3] %}[{{ loop.previtem }}|{{ loop.nextitem }}]{% endfor %}", {}),
    ("loop_else", "{% for x in [] %}x{% else %}empty{% endfor %}{% for x in [1] %}{{ x }}{% else %}no{% endfor %}", {}),
    ("loop_filter", "{% for x in range(10) if x is odd %}{{ x }}{{ loop.index }},{% endfor %}", {}),
    ("loop_break_continue", "{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 5 %}{% break %}{% endif %}{{ x }}{% endfor %}", {}),
    ("loop_unpack", "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{% for a, b in [[1, 2], [3, 4]] %}{{ a + b }}{% endfor %}", {"d": {"x": 1, "y": "z"}}),
    ("loop_dict", "{% for k in d %}{{ k }}{% endfor %}", {"d": {"b": 1, "a": 2}}),
    ("loop_scope", "{% set x = 0 %}{% for i in [1, 2] %}{{ x }}{% set x = i %}{{ x }}{% endfor %}{{ x }}", {}),
    ("nested_loops", "{% for a in [1,2] %}{% for b in [3,4] %}{{ loop.index }}{{ a }}{{ b }} {% endfor %}{{ loop.index }}|{% endfor %}", {}),
    ("range_forms", "{{ range(3)|list }} {{ range(1, 4)|list }} {{ range(10, 0, -3)|list }}", {}),
    ("loop_undefined", "{% for x in nothing %}x{% else %}none{% endfor %}", {}),
    # set / namespace / scoping
    ("set_if_leaks", "{% if true %}{% set y = 5 %}{% endif %}{{ y }}", {}),
    ("namespace", "{% set ns = namespace(count=0, found=false) %}{% for i in [1,2,3] %}{% set ns.count = ns.count + i %}{% endfor %}{{ ns.count }} {{ ns.found }}", {}),
    ("block_set", "{% set body %}\n  a {{ 1 + 1 }}\n{% endset %}[{{ body }}]", {}),
    ("set_tuple", "{% set a, b = 1, 2 %}{{ a }}{{ b }}", {}),
    ("macro", "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('a') }} {{ greet('b', punct='?') }} {{ greet(name='c') }}", {}),
    ("macro_outer_var", "{% set g = 'G' %}{% macro m() %}{{ g }}{% endmacro %}{{ m() }}", {}),
    ("macro_whitespace", "{% macro m(x) %}\n  [{{ x }}]\n{% endmacro %}\n{{ m(1) }}{{ m(2) }}", {}),
    ("filter_block", "{% filter upper %}abc {{ 'd' }}{% endfilter %}", {}),
    ("generation_block", "a{% generation %}b{% endgeneration %}c", {}),
    # filters
    ("f_trim_len", "[{{ '  x y  '|trim }}] {{ 'abc'|length }} {{ [1,2]|count }} {{ {'a':1}|length }} {{ 'héllo👋'|length }}", {}),
    ("f_trim_chars", "{{ 'xxaxx'|trim('x') }}", {}),
    ("f_case", "{{ 'hello wORLD'|upper }} {{ 'HeLLo'|lower }} {{ 'hello wORLD'|capitalize }} {{ 'hello wORLD-foo(bar)'|title }}", {}),
    ("f_replace", "{{ 'aaa'|replace('a', 'b') }} {{ 'aaa'|replace('a', 'b', 2) }}", {}),
    ("f_join", "{{ [1, 2, 'x']|join(', ') }} {{ ['a','b']|join }} {{ users|join(',', attribute='name') }}", {"users": [{"name": "u1"}, {"name": "u2"}]}),
    ("f_default", "{{ nothing|default('d') }} {{ ''|default('e') }} {{ ''|default('e', true) }} {{ none|default('n') }} {{ nothing|d('x') }} {{ false|default('f', boolean=true) }}", {}),
    ("f_first_last", "{{ [1,2,3]|first }} {{ [1,2,3]|last }} {{ 'abc'|first }} [{{ []|first }}]", {}),
    ("f_string_int_float", "{{ 5|string ~ 'x' }} {{ '42'|int + 1 }} {{ '4.7'|int }} {{ 'z'|int }} {{ 3.9|int }} {{ '2.5'|float }} {{ true|int }}", {}),
    ("f_list_items", "{{ 'ab'|list }} {{ {'a':1}|items|list }} {{ {'b':1,'a':2}|dictsort }}", {}),
    ("f_tojson", "{{ d|tojson }}|{{ d|tojson(indent=2) }}|{{ 'é\"\\n<'|tojson }}|{{ [1, 2.5, true, none]|tojson }}|{{ d|tojson(sort_keys=true) }}", {"d": {"b": [1, {"x": "y"}], "a": "ü", "e": {}, "f": []}}),
    ("f_tojson_indent_str", "{{ {'a': [1]}|tojson(indent=4) }}", {}),
    ("f_tojson_separators", "{{ {'a': [1, 2]}|tojson(separators=(',', ':')) }}", {}),
    ("f_selectattr", "{{ ms|selectattr('role', 'equalto', 'user')|map(attribute='content')|list }} {{ ms|rejectattr('role', 'equalto', 'user')|list|length }} {{ ms|selectattr('tool')|list|length }} {{ ms|selectattr('tool', 'defined')|list|length }}", {"ms": [{"role": "user", "content": "a"}, {"role": "bot", "content": "b", "tool": 1}, {"role": "user", "content": "c"}]}),
    ("f_select_reject_map", "{{ [1,2,3,4]|select('odd')|list }} {{ ['a','b']|reject('equalto','a')|list }} {{ ['a','b']|map('upper')|list }} {{ [1,none,2]|select|list }}", {}),
    ("f_indent", "{{ 'a\\nb\\n\\nc'|indent }}|{{ 'a\\nb'|indent(2, first=true) }}|{{ 'a\\n\\nb'|indent(2, blank=true) }}|{{ 'x\\n'|indent(3) }}", {}),
    ("f_misc", "{{ [3,1,2]|sort }} {{ [3,1,2]|sort(reverse=true) }} {{ [1,2,1]|unique|list }} {{ [3,1,2]|min }} {{ [3,1,2]|max }} {{ [1,2]|sum }} {{ 2.567|round(1) }} {{ [1,2]|reverse|list }} {{ 'abc'|reverse }}", {}),
    ("f_sort_attr", "{{ xs|sort(attribute='k')|map(attribute='k')|join }}", {"xs": [{"k": "b"}, {"k": "a"}, {"k": "c"}]}),
    ("f_safe_string", "{{ '<b>'|safe }} {{ none|string }} {{ [1]|string }}", {}),
    ("f_wordcount_center", "{{ 'a b c'|wordcount }} [{{ 'ab'|center(6) }}]", {}),
    ("markup_add", "{{ 'a'|safe + '<b>' }}|{{ '<i>' + 'x'|safe }}|{{ 'a'|safe ~ '<b>' }}|{{ ('a'|safe + {'k': '\"'}|tojson) }}|{{ '<'|e }}|{{ ('<'|e + '<')|length }}", {}),
    ("markup_mul", "{{ ('<'|safe) * 2 + '<' }}", {}),
    ("generators", "{{ 'T' if ([]|select) else 'F' }} {{ [1,2]|map('string')|join('-') }} {{ [3,1]|unique|list }} {{ {'a': 1}|items|list }} {{ [1,2]|reverse|list }}", {}),
    ("generator_tojson_error", "{{ [1]|map('string')|tojson }}", {}),
    ("generator_length_error", "{{ [1]|select|length }}", {}),
    ("soft_unknown_filter", "{% if false %}{{ x|no_such_filter }}{% endif %}ok", {}),
    ("soft_unknown_filter_runs", "{% if true %}{{ 'x'|no_such_filter }}{% endif %}", {}),
    ("int_dict_keys", "{% set d = {0: 'a', 2: 'b', 1.0: 'c'} %}{{ d[1] }}{{ d[0] }} {{ d }} {{ d|tojson }} {% for k, v in d|dictsort %}{{ k }}{{ v }}{% endfor %}", {}),
    # tests
    ("tests_types", "{{ 1 is number }} {{ 1.5 is number }} {{ true is number }} {{ 'a' is string }} {{ {} is mapping }} {{ [] is sequence }} {{ 'a' is sequence }} {{ {} is sequence }} {{ 1 is iterable }} {{ 'a' is iterable }} {{ true is boolean }} {{ 1 is boolean }} {{ 1 is integer }} {{ 1.0 is float }} {{ true is integer }}", {}),
    ("tests_defined_none", "{{ x is defined }} {{ y is defined }} {{ y is undefined }} {{ none is none }} {{ x is none }} {{ x is not none }} {{ z is none }}", {"x": None}),
    ("tests_values", "{{ true is true }} {{ 1 is true }} {{ false is false }} {{ 0 is false }} {{ 2 is even }} {{ 3 is odd }} {{ 9 is divisibleby 3 }} {{ 'a' is equalto 'a' }} {{ 1 is eq 1 }} {{ 2 is gt 1 }} {{ 'ab' is lower }} {{ 1 is in [1] }} {{ none is sameas none }}", {}),
    ("test_undefined_iterable", "{{ nothing is iterable }} {{ nothing is sequence }} {{ nothing is mapping }} {{ nothing is string }}", {}),
    # undefined behaviour
    ("undefined_render", "[{{ nothing }}] [{{ d.missing }}] [{{ xs[5] }}] {{ nothing|length }} [{{ nothing|trim }}] [{{ nothing ~ 'x' }}] {{ nothing == nothing }} {{ d.missing is defined }}", {"d": {}, "xs": []}),
    ("undefined_attr_error", "{{ nothing.attr }}", {}),
    ("undefined_call_error", "{{ nothing() }}", {}),
    ("undefined_add_error", "{{ nothing + 1 }}", {}),
    ("undefined_tojson_error", "{{ nothing|tojson }}", {}),
    ("undefined_upper", "[{{ nothing|upper }}] [{{ nothing|join(',') }}] [{{ nothing|string }}]", {}),
    ("none_attr", "[{{ x.a }}]", {"x": None}),
    # string methods
    ("str_methods", "{{ ' a '.strip() }}|{{ 'xay'.strip('xy') }}|{{ ' a '.lstrip() }}|{{ ' a '.rstrip() }}|{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|{{ 'a b c'.split(' ', 1) }}|{{ 'abc'.startswith('ab') }}|{{ 'abc'.endswith(('x', 'c')) }}|{{ 'Ab'.upper() }}{{ 'Ab'.lower() }}|{{ 'aXa'.replace('a', 'b') }}|{{ 'hello world'.title() }}|{{ 'a-{}-{}'.format(1, 'x') }}|{{ '{0}{name}'.format('p', name='q') }}", {}),
    ("str_methods2", "{{ 'a\\nb'.splitlines() }} {{ 'abcabc'.find('c') }} {{ 'abc'.count('b') }} {{ 'a b'.rsplit(' ', 1) }} {{ 'abc'.capitalize() }} {{ '12'.isdigit() }} {{ 'x'.join(['a','b']) }}", {}),
    ("split_content", "{% set c = content.split('</think>')[-1].lstrip('\\n') %}{{ c }}|{{ content.split('<think>')[1].split('</think>')[0].strip() }}", {"content": "<think>\nhmm\n</think>\n\nanswer"}),
    # globals
    ("raise_exception", "{{ raise_exception('bad role') }}", {}),
    ("strftime_now", "{{ strftime_now('%d %b %Y') }} {{ strftime_now('%Y-%m-%d %H:%M:%S %A %B') }}", {}),
    ("dict_global", "{{ dict(a=1, b='x') }}", {}),
    # sandbox
    ("sandbox_append", "{% set xs = [1] %}{% set _ = xs.append(2) %}{{ xs }}", {}),
    ("sandbox_dict_update", "{% set d = {} %}{% set _ = d.update({'a': 1}) %}{{ d }}", {}),
    # errors (line numbers)
    ("error_syntax", "line1\n{% if %}\n", {}),
    ("error_unknown_filter", "a\n{{ x|nosuchfilter }}", {}),
    ("error_unclosed", "{% for x in y %}\nx", {}),
    ("error_type_add", "{{ 1 + 'a' }}", {}),
    ("error_compare_type", "{{ 1 < 'a' }}", {}),
    ("error_endfor_mismatch", "{% if true %}{% endfor %}", {}),
]


def make_semantics():
    cases = []
    for name, source, variables in SEMANTICS:
        case = {"name": name, "source": source, "variables": variables}
        try:
            template = ctu._compile_jinja_template(source)
            case["text"] = template.render(**variables)
        except Exception as exc:  # noqa: BLE001
            case["error"] = error_text(exc)
            lineno = getattr(exc, "lineno", None)
            if lineno is not None:
                case["error_line"] = lineno
        cases.append(case)
    return {"generator": "scripts/make_template_fixtures.py", "jinja2": jinja2.__version__, "now": FIXED_NOW.isoformat(),
            "cases": cases}


def main():
    os.makedirs(OUT, exist_ok=True)
    expected = make_expected()
    with open(os.path.join(OUT, "expected.json"), "w", encoding="utf-8") as handle:
        json.dump(expected, handle, ensure_ascii=False, indent=1)
        handle.write("\n")
    semantics = make_semantics()
    with open(os.path.join(OUT, "semantics.json"), "w", encoding="utf-8") as handle:
        json.dump(semantics, handle, ensure_ascii=False, indent=1)
        handle.write("\n")
    total = len(expected["templates"])
    compiled = sum(1 for e in expected["templates"].values() if e["compile_error"] is None)
    renders = sum(1 for e in expected["templates"].values() for r in e["renders"] if "text" in r)
    errors = sum(1 for e in expected["templates"].values() for r in e["renders"] if "error" in r)
    print(f"templates: {total} ({compiled} compile in jinja2); renders: {renders} texts, {errors} jinja2 errors; "
          f"semantics cases: {len(semantics['cases'])}", file=sys.stderr)


if __name__ == "__main__":
    main()
