#!/usr/bin/env python3
"""Build a Qwen2.5 tokenizer.json from the Qwen2.5-Coder GGUF vocabulary and the reference ids the Swift tests compare
against.

    /work/venv/bin/python scripts/make_qwen_tokenizer_fixture.py    # needs `tokenizers`, `gguf` (and `transformers`)

Input (from `python3 scripts/fetch_assets.py`): qwen25-coder/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf.
Outputs in Tests/Fixtures/tokenizer/:
  qwen25.tokenizer.zip       tokenizer.json + tokenizer_config.json (deflated: the tokenizer.json is ~7 MB). The
                             tokenizer.json is the pipeline of Qwen2/Qwen2.5's own tokenizer.json (what transformers'
                             Qwen2Tokenizer builds): NFC normalizer; Sequence[Split(Qwen2 regex, Isolated),
                             ByteLevel(add_prefix_space=false, use_regex=false)]; BPE over the GGUF's tokens and merges;
                             ByteLevel post-processor and decoder; the GGUF's CONTROL tokens (type 3) as special added
                             tokens and USER_DEFINED ones (type 4) as plain added tokens. tokenizer_config.json names
                             EOS/PAD and carries the GGUF's chat template and added_tokens_decoder.
  qwen25.expected.jsonl      HF `tokenizers` on that tokenizer.json, in the format of make_tokenizer_fixtures.py
                             (first the prefix line, then one row per corpus.jsonl line), followed by rows for the
                             Qwen-specific extra strings below, which carry their own "text".
  qwen25.decode_cases.json   400 random id sequences with HF's decode, with and without skip_special_tokens.

The same references serve the GGUF-loaded tokenizer (`tokenizer.ggml.pre = qwen2`, which mobilellm reads as Qwen's
tokenizer.json pipeline, NFC included). Cross-checks printed, not stored: transformers' own GGUF loader (which builds a
GPT-2 style tokenizer without the NFC normalizer) on the same strings.
"""
import json
import os
import sys
import tempfile
import unicodedata
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_tokenizer_fixtures as base  # noqa: E402  (the corpus format, `expected`, `decode_cases`)

ROOT = base.ROOT
ASSETS = base.ASSETS
OUT = base.OUT
GGUF = os.path.join(ASSETS, "qwen25-coder", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")
QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
               r"|\s+(?!\S)|\s+")

# Strings on top of corpus.jsonl: Qwen's added tokens in context, text that NFC changes, digit runs, contractions.
EXTRAS = [
    "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
    "<|im_start|>assistant\n",
    "<|fim_prefix|>def add(a, b):\n    <|fim_suffix|>\n    return c<|fim_middle|>",
    "<|fim_prefix|><|fim_suffix|><|fim_middle|><|fim_pad|>", "<|repo_name|>mobilellm\n<|file_sep|>Sources/a.swift\nlet x = 1",
    "<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>", "<tool_call></tool_call><tool_call>",
    "<|endoftext|><|endoftext|>", "x<|endoftext|>y", "<|im_end|>\u0301", "<|im_start|>e\u0301", "e<|im_end|>\u0301",
    "<|object_ref_start|>a<|object_ref_end|><|box_start|>(1,2)<|box_end|>", "<|quad_start|><|quad_end|>",
    "<|vision_start|><|vision_pad|><|image_pad|><|video_pad|><|vision_end|>", "<|im_start|", "<|im_start|>>",
    "<|IM_START|>", "<|fim_prefix", "tool_call>", "< tool_call>",
    # NFC: decomposed Latin, Vietnamese, Greek, Hangul jamo, reordering, singletons, exclusions, Hangul + mark.
    "Cafe\u0301 nai\u0308ve re\u0301sume\u0301 pin\u0303a", "Vie\u0323\u0302t Nam Tie\u0302\u0301ng Vie\u0323\u0302t",
    "\u03b1\u0313\u0301 \u03c9\u0345\u0342", "\u1100\u1161\u11a8\u1102\u1165 \u1112\u1161\u11ab\u1100\u1173\u11af",
    "\uac00\u11a8 \u1100\u0301\u1161", "a\u0301\u0328 a\u0328\u0301 q\u0307\u0323 \u1e0b\u0323",
    "\u212b \u2126 \u212a Kelvin", "\u0958\u0959 \u2adc \ufb1d \u0f73 \u0344", "\u00c5\u0301\u0316 o\u0308\u0304",
    "DON\u0301'T \u00c9COLE E\u0301COLE", "\u0627\u064b\u0653 \u05e9\u05bc\u05c1", "\u3046\u3099 \u304b\u309a \u30cf\u309a",
    "\u0301\u0316 leading marks", "x\u0315\u0300\u05ae\u0300y", "\uf900 \U0002f800 \U0001d15e\U0001d160",
    "e\u0301" * 40, ("\u1100\u1161" * 30) + "\u11a8",
    # Digits: Qwen splits every digit.
    "1234567890 12345678901234567890 3.14159 -0.001 1e-10 0x1F 1,000,000", "\u0661\u0662\u0663 \uff11\uff12 \u00b2\u00b3",
    "v1.2.3-rc4 2024-06-11T12:34:56Z", "abc123def456 a1b2c3",
    # Contractions in odd case.
    "DON'T I'M YOU'RE WE'VE SHE'LL HE'D IT'S", "Don'T I'm You'Re we'VE", "'S'T'RE'VE'M'LL'D", "it'ſ 'ſ",
    # Code and whitespace.
    "def f(x):\n\treturn x  \n\n\n    # done\r\n", "if (a) {\n    b();\n}\n\n\n", "   leading and trailing   ",
    "\n\n\n\n", " \n \n ", "\t\t\t", "a  b   c    d", "\u00a0\u3000\u2028\u2029",
    "import numpy as np\nx = np.arange(10)\nprint(f\"{x.sum():,}\")\n", "SELECT * FROM t WHERE id IN (1,2,3);",
    "// \u4e2d\u6587\u6ce8\u91ca\nlet s = \"\u4f60\u597d\uff0c\u4e16\u754c\";", "\U0001f680\U0001f525 emoji \u2764\ufe0f",
]


def gguf_vocabulary(path):
    from gguf import GGUFReader

    reader = GGUFReader(path)
    fields = reader.fields

    def string(key):
        field = fields.get(key)
        return None if field is None else bytes(field.parts[-1]).decode("utf-8")

    def strings(key):
        field = fields[key]
        return [bytes(field.parts[i]).decode("utf-8") for i in field.data]

    def ints(key):
        field = fields[key]
        return [int(field.parts[i][0]) for i in field.data]

    def integer(key):
        field = fields.get(key)
        return None if field is None else int(field.parts[-1][0])

    assert string("tokenizer.ggml.model") == "gpt2", string("tokenizer.ggml.model")
    assert string("tokenizer.ggml.pre") == "qwen2", string("tokenizer.ggml.pre")
    add_bos = fields.get("tokenizer.ggml.add_bos_token")
    return {
        "tokens": strings("tokenizer.ggml.tokens"),
        "types": ints("tokenizer.ggml.token_type"),
        "merges": strings("tokenizer.ggml.merges"),
        "bos": integer("tokenizer.ggml.bos_token_id"),
        "eos": integer("tokenizer.ggml.eos_token_id"),
        "pad": integer("tokenizer.ggml.padding_token_id"),
        "add_bos": bool(add_bos.parts[-1][0]) if add_bos is not None else False,
        "chat_template": string("tokenizer.chat_template"),
    }


def qwen_tokenizer(vocabulary):
    """HF `tokenizers` with the pipeline of Qwen2/Qwen2.5's tokenizer.json (transformers' Qwen2Tokenizer)."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    tokens, types = vocabulary["tokens"], vocabulary["types"]
    vocab = {t: i for i, t in enumerate(tokens)}
    merges = [tuple(m.split(" ")) for m in vocabulary["merges"]]
    tk = Tokenizer(models.BPE(vocab=vocab, merges=merges, dropout=None, unk_token=None, continuing_subword_prefix="",
                              end_of_word_suffix="", fuse_unk=False, byte_fallback=False, ignore_merges=False))
    tk.normalizer = normalizers.NFC()
    tk.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False, trim_offsets=False),
    ])
    tk.post_processor = processors.ByteLevel(trim_offsets=False)
    tk.decoder = decoders.ByteLevel()
    special = [AddedToken(t, special=True, normalized=False) for t, k in zip(tokens, types) if k == 3]
    plain = [AddedToken(t, special=False, normalized=False) for t, k in zip(tokens, types) if k == 4]
    tk.add_special_tokens(special)
    if plain:
        tk.add_tokens(plain)
    assert not vocabulary["add_bos"], "this GGUF adds BOS: the post-processor would need a template"
    return tk


def tokenizer_config(tk, vocabulary):
    tokens = vocabulary["tokens"]
    decoder = {}
    for id_, token in sorted(tk.get_added_tokens_decoder().items()):
        decoder[str(id_)] = {"content": token.content, "lstrip": token.lstrip, "normalized": token.normalized,
                             "rstrip": token.rstrip, "single_word": token.single_word, "special": token.special}
    return {
        "add_bos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": decoder,
        "bos_token": None,
        "chat_template": vocabulary["chat_template"],
        "clean_up_tokenization_spaces": False,
        "eos_token": tokens[vocabulary["eos"]] if vocabulary["eos"] is not None else None,
        "model_max_length": 32768,
        "pad_token": tokens[vocabulary["pad"]] if vocabulary["pad"] is not None else None,
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
    }


def main():
    if not os.path.exists(GGUF):
        sys.exit(f"missing {GGUF}: run python3 scripts/fetch_assets.py first")
    vocabulary = gguf_vocabulary(GGUF)
    kinds = {k: vocabulary["types"].count(k) for k in sorted(set(vocabulary["types"]))}
    print(f"{len(vocabulary['tokens'])} tokens (types {kinds}), {len(vocabulary['merges'])} merges, "
          f"bos {vocabulary['bos']} eos {vocabulary['eos']} pad {vocabulary['pad']}")
    tk = qwen_tokenizer(vocabulary)

    with tempfile.TemporaryDirectory() as tmp:
        json_path = os.path.join(tmp, "tokenizer.json")
        tk.save(json_path, pretty=False)
        print(f"tokenizer.json: {os.path.getsize(json_path)} bytes")
        config = json.dumps(tokenizer_config(tk, vocabulary), ensure_ascii=False, indent=2)
        archive = os.path.join(OUT, "qwen25.tokenizer.zip")
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
            for name, data in (("tokenizer.json", open(json_path, "rb").read()), ("tokenizer_config.json", config.encode())):
                info = zipfile.ZipInfo(name, date_time=(2025, 1, 1, 0, 0, 0))   # fixed time: reproducible bytes
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, data, compresslevel=9)
        print(f"{archive}: {os.path.getsize(archive)} bytes")
        # The reference is the tokenizer.json as saved and reloaded, exactly what the Swift test loads.
        from tokenizers import Tokenizer
        tk = Tokenizer.from_file(json_path)

    corpus = [json.loads(line) for line in open(os.path.join(OUT, "corpus.jsonl"), encoding="utf-8")]
    rows = base.expected(tk, corpus)
    extra_rows = base.expected(tk, EXTRAS)[1:]
    for text, row in zip(EXTRAS, extra_rows):
        row["text"] = text
    base.write_jsonl(os.path.join(OUT, "qwen25.expected.jsonl"), rows + extra_rows)
    cases = base.decode_cases(tk, tk.get_vocab_size(with_added_tokens=True), 400)
    with open(os.path.join(OUT, "qwen25.decode_cases.json"), "w", encoding="utf-8") as f:
        json.dump({"qwen25": cases}, f, ensure_ascii=False, separators=(",", ":"))
    texts = corpus + EXTRAS
    all_rows = rows[1:] + extra_rows
    nfc_changed = sum(unicodedata.normalize("NFC", t) != t for t in texts)
    print(f"{len(texts)} strings ({len(corpus)} corpus + {len(EXTRAS)} extras), {nfc_changed} changed by NFC")

    # Cross-check: transformers' own GGUF tokenizer loading (no NFC normalizer).
    try:
        from transformers import AutoTokenizer
        hf = AutoTokenizer.from_pretrained(os.path.dirname(GGUF), gguf_file=os.path.basename(GGUF))
    except Exception as error:  # noqa: BLE001 -- a cross-check only
        print(f"transformers GGUF loading failed: {error}", file=sys.stderr)
        hf = None
    if hf is not None:
        same = same_nfc = total_nfc = 0
        for text, row in zip(texts, all_rows):
            ids = hf.encode(text, add_special_tokens=False)
            same += ids == row["plain"]
            if unicodedata.normalize("NFC", text) == text:
                total_nfc += 1
                same_nfc += ids == row["plain"]
        print(f"transformers GGUF tokenizer agrees on {same}/{len(texts)} strings; "
              f"{same_nfc}/{total_nfc} of those already in NFC")
    for name in ("qwen25.tokenizer.zip", "qwen25.expected.jsonl", "qwen25.decode_cases.json"):
        print(f"{name}: {os.path.getsize(os.path.join(OUT, name))} bytes")


if __name__ == "__main__":
    main()
