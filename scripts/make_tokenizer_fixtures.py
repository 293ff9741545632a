#!/usr/bin/env python3
"""Generate the tokenizer conformance corpus and the reference ids the Swift tests compare against.

    /work/refvenv/bin/python scripts/make_tokenizer_fixtures.py     # needs `tokenizers` (and `gguf`, `transformers`)

Inputs (from `python3 scripts/fetch_assets.py`): the Llama-3 tokenizer.json and the SmolLM2 GGUF.
Outputs in Tests/Fixtures/tokenizer/:
  corpus.jsonl           one JSON string per line (deterministic; >= 2,000 strings)
  llama3.expected.jsonl  first line: {"prefix": ids add_special_tokens puts first, "prefix_text": their decoded text};
                         then per corpus line: {"plain": ids (add_special_tokens=False), "special": ids (True),
                         "literal": ids with specials in the text NOT parsed (encode_special_tokens=True,
                         add_special_tokens=False), "decoded": decode(special ids, skip_special_tokens=False),
                         "decoded_skip": decode(special ids, skip_special_tokens=True)}. To keep the files small a
                         field is left out when it has its usual value: special = prefix + plain, literal = plain,
                         decoded = prefix_text + text, decoded_skip = text.
  smollm2.expected.jsonl the same for the SmolLM2-135M-Instruct GGUF vocabulary
  decode_cases.jsonl     random id sequences (often cutting UTF-8 sequences) with HF's decode for both vocabularies
  README.md              what the references are

References:
  * Llama-3: HF `tokenizers` Tokenizer.from_file(tokenizer.json).
  * SmolLM2 GGUF: HF `tokenizers` built from the GGUF metadata (tokens, merges, token types) with the pipeline
    llama.cpp's `tokenizer.ggml.pre = "smollm"` stands for -- Digits(individual_digits) + ByteLevel(GPT-2 regex),
    ByteLevel decoder, control tokens as special added tokens, user-defined as plain added tokens -- i.e. SmolLM2's
    own tokenizer.json pipeline. transformers' GGUF loader is also run as a cross-check and its agreement is printed:
    it ignores `tokenizer.ggml.pre = smollm` (no per-digit split), so it differs on strings with digits.
"""
import json
import os
import random
import sys
import unicodedata

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ASSETS = os.environ.get("MOBILELLM_ASSETS") or os.path.join(ROOT, ".cache", "assets")
OUT = os.path.join(ROOT, "Tests", "Fixtures", "tokenizer")
LLAMA3 = os.path.join(ASSETS, "llama3-tokenizer", "tokenizer.json")
SMOLLM2 = os.path.join(ASSETS, "smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")

rng = random.Random(20240603)

# ---------------------------------------------------------------------------------------------------------------
# The corpus

SCRIPTS = {
    "latin": "The quick brown fox jumps over the lazy dog. Ça va très bien, naïve coöperation, Æsir, œuvre, straße",
    "latin-ext": "Łódź żółć gęślą jaźń; Ǆemal ǅ ǆ; Ðe þorn; ẞ ß; İstanbul ıi; Ågård; Čeština ěščřžýáíé",
    "vietnamese": "Tiếng Việt có dấu: Cửa Việt, người, được, những, thuở, ngữ",
    "greek": "Ἐν ἀρχῇ ἦν ὁ λόγος, καὶ ὁ λόγος ἦν πρὸς τὸν θεόν. Ελληνικά ΣΊΣΥΦΟΣ ς",
    "cyrillic": "Съешь же ещё этих мягких французских булок, да выпей чаю. Ѣ ѳ ѵ Ґ ґ Ї ї Ў ў Ӂ",
    "armenian": "Հայերեն լեզու, Երևան ﬓ",
    "georgian": "ქართული ენა, თბილისი Ა Ბ",
    "hebrew": "עִבְרִית שָׁלוֹם עוֹלָם, ירושלים 123",
    "arabic": "العربية لغة جميلة، مرحبا بالعالم ١٢٣٤٥٦٧٨٩٠ ﷺ ﻻ",
    "persian": "فارسی زبان شیرین است ۱۲۳۴۵۶۷۸۹۰",
    "urdu": "اردو زبان، پاکستان",
    "syriac": "ܠܫܢܐ ܣܘܪܝܝܐ",
    "thaana": "ދިވެހި ބަސް",
    "nko": "ߒߞߏ ߞߊ߬ ߛߓߍ߬ ߊ߲",
    "devanagari": "हिन्दी भाषा, नमस्ते दुनिया ०१२३४५६७८९ क़ ॐ",
    "bengali": "বাংলা ভাষা, আমি তোমাকে ভালোবাসি ০১২৩",
    "gurmukhi": "ਪੰਜਾਬੀ ਭਾਸ਼ਾ ੧੨੩",
    "gujarati": "ગુજરાતી ભાષા ૧૨૩",
    "oriya": "ଓଡ଼ିଆ ଭାଷା",
    "tamil": "தமிழ் மொழி, வணக்கம் ௧௨௩",
    "telugu": "తెలుగు భాష",
    "kannada": "ಕನ್ನಡ ಭಾಷೆ",
    "malayalam": "മലയാളം ഭാഷ ൧൨",
    "sinhala": "සිංහල භාෂාව",
    "thai": "ภาษาไทยเป็นภาษาที่สวยงาม ๑๒๓",
    "lao": "ພາສາລາວ",
    "tibetan": "བོད་སྐད། ༡༢༣",
    "myanmar": "မြန်မာဘာသာ ၁၂၃",
    "khmer": "កាន់តែពិសេសអាចខលចេញ ភាសាខ្មែរ",
    "mongolian": "ᠮᠣᠩᠭᠣᠯ ᠪᠢᠴᠢᠭ᠌",
    "hangul": "한국어는 아름답습니다. 안녕하세요 세계 ㄱㄴㄷ 각",
    "japanese": "日本語のテキスト、ひらがなとカタカナ。東京タワー ｶﾀｶﾅ ー",
    "chinese": "我想在apple工作1314151天～中文字符测试，繁體中文測試。",
    "cjk-ext": "𠀀𠀁𪜀𫝀𬺰𰀀 𠮷野家",
    "yi": "ꆈꌠꁱꂷ",
    "ethiopic": "ግዕዝ አማርኛ ፩፪፫",
    "cherokee": "ᏣᎳᎩ ᎦᏬᏂᎯᏍᏗ ꭰꭱ",
    "canadian": "ᐃᓄᒃᑎᑐᑦ ᓀᐦᐃᔭᐍᐏᐣ",
    "ogham-runic": "᚛ᚑᚌᚐᚋ᚜ ᚠᚢᚦᚨᚱᚲ",
    "gothic-old": "𐌲𐌿𐍄𐌹𐍃𐌺 𐎀𐎁𐎂 𐤀𐤁𐤂",
    "cuneiform": "𒀭𒂗𒆠 𓀀𓀁𓂀",
    "math": "∀x∈ℝ: x²≥0 ∑ᵢ aᵢ = ∫₀^∞ f(x)dx ≈ 3.14159… ½ ¾ ⅓ Ⅻ ⅻ ① ⑴ 𝔸𝕓𝒸 𝟘𝟙𝟚",
    "symbols": "© ® ™ § ¶ † ‡ • ‰ ′ ″ € £ ¥ ₹ ₿ ← → ↔ ⇒ ♠ ♣ ♥ ♦ ☃ ☺ ✓ ✗ ★ ☆",
    "punct": "«guillemets» „Anführung“ 『かぎ』 ¿Qué? ¡Hola! — – ‐ ‒ … ‹›",
    "fullwidth": "ＦＵＬＬＷＩＤＴＨ　ｔｅｘｔ　１２３　！？",
    "unicode16": "\u1c89\u1c8a \U00010d50\U00010d51 \U00010d40\U00010d41 \U00011f04",
}

EMOJI = [
    "🚀 (normal) 😶‍🌫️ (multiple emojis concatenated) ✅ (only emoji that has its own token)",
    "👨‍👩‍👧‍👦 family", "🏳️‍🌈 🏴‍☠️ 🇺🇸🇬🇧🇯🇵🇩🇪🇫🇷 🇺🇳", "👍🏻👍🏼👍🏽👍🏾👍🏿", "1️⃣ #️⃣ *️⃣",
    "🧑🏽‍💻 👩🏾‍🚀 🫶🏼", "🏴󠁧󠁢󠁳󠁣󠁴󠁿 Scotland", "😁😁😁", "🦙.cpp", "❤️‍🔥 ❤️ ♥️", "🤦🏼‍♂️", "☕️🍵",
]

COMBINING = [
    "e\u0301 a\u0300 o\u0302 n\u0303 u\u0308", "Z\u0351\u0337\u0320a\u036b\u0334l\u0310g\u0314o\u0346",
    "\u0301 leading combining", "x\u0300\u0301\u0302\u0303\u0304\u0305\u0306\u0307\u0308\u0309",
    "क्\u200dष", "ḱ̷̢̧̛͈̹͓ṡ͎̥ ", "\u0915\u093f\u0928\u094d\u0928\u0942", "ﷺ\u0670", "ก\u0e31\u0e49", "\u3099\u309a",
    "a\u20dd b\u20e3", "\u0041\u030a vs \u00c5", "\u1100\u1161\u11a8 vs \uac01",
]

CODE = [
    'def foo(x):\n    return x ** 2  # square\n',
    'for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}\n',
    'const f = (a, b) => { return a?.b ?? [1,2,3].map(x => x*2); };',
    '{"key": "value", "list": [1, 2.5, -3e10, null, true], "nested": {"a": "\\u00e9"}}',
    '#!/bin/bash\nset -euo pipefail\necho "$HOME" | grep -E \'^/home\' && ls -la ~/.config\n',
    'SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC LIMIT 10;',
    '<html><body class="x"><p>Hello&nbsp;world &amp; co.</p></body></html>',
    'fn main() -> Result<(), Box<dyn Error>> {\n    println!("{:?}", vec![1u8; 4]);\n    Ok(())\n}\n',
    '    \n\n\t\t  indented\r\n\r\n    code\n',
    '\\begin{equation} E = mc^{2} \\end{equation} % LaTeX',
    'x = [i for i in range(10) if i % 2 == 0]\nprint(f"{x!r:>10}")',
    'https://example.com/path?query=1&b=%20x#frag user@example.org',
    '// C++\ntemplate<typename T> std::vector<T> v{1,2,3}; auto&& r = std::move(v);',
    'a\tb\tc\n1\t2\t3\n', 'if(a==b&&c!=d||e<=f){g>>=2;h<<=3;}', '```swift\nlet x: [Int32] = []\n```',
]

CONTRACTIONS = [
    "I'm", "I'M", "you're", "YOU'RE", "You'Re", "we've", "WE'VE", "she'll", "SHE'LL", "he'd", "HE'D", "it's",
    "IT'S", "don't", "DON'T", "Don'T", "'s", "'S", "'t", "'T", "'re", "'Re", "'rE", "'ve", "'VE", "'m", "'M", "'ll",
    "'Ll", "'lL", "'LL", "'d", "'D", "'ſ", "'ſx", "it'ſ", "'K", "'x", "''s", "'s's", "' s", "y'all", "rock 'n' roll",
    "O'Neil's", "’s curly", "‘quoted’", "'sup", "'tis", "'re'", "'ll've", "'\n", "'", "''", " '", "'123", "'é",
    "can't won't shouldn't've", "Hello 'Ll", "'İs", "'ŞT",
]

SPECIAL_LOOKALIKES = [
    "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
    "<|eot_id|><|eot_id|>", "<|eot_id", "eot_id|>", "<|EOT_ID|>", "< |eot_id|>", "<|eot_id|eot_id|>",
    "<|reserved_special_token_5|>", "<|reserved_special_token_250|>", "<|reserved_special_token_999|>",
    "text<|eot_id|>text", " <|eot_id|> ", "\n<|eot_id|>\n", "<<|eot_id|>>", "<|<|eot_id|>|>", "<|python_tag|>",
    "<|im_start|>system\nYou are helpful<|im_end|>\n", "<|im_start|>", "<|im_end|>", "<|endoftext|>",
    "<repo_name>x<file_sep>y", "<|im_start|><|im_start|>", "<|im_end", "<|endoftext|>hi<|endoftext|>", "<think>",
    "</s><s>[INST]", "<|finetune_right_pad_id|>", "<|step_id|>", "<|begin_of_text|>Hello", "a<|im_end|>b",
    "<|end_header_id|>", "<||>", "<|>", "|>", "<|", "<|begin_of_text", "<issue_start>", "<jupyter_code>",
]

WHITESPACE_CHARS = [" ", "\t", "\n", "\r\n", "\r", "\u00a0", "\u3000", "\u2028", "\u2029", "\u000b", "\u000c",
                    "\u0085", "\u2003", "\u200b", "\u1680", "\u202f", "\u205f", "\ufeff"]

DIGITS = "0123456789"
OTHER_DIGITS = ["٠١٢٣٤٥٦٧٨٩", "०१२३४५६७८९", "０１２３４５６７８９", "²³¹⁴", "½¼¾⅓", "ⅠⅡⅢⅣ", "①②③", "𝟎𝟏𝟐", "᠐᠑᠒"]


def char_pool():
    """Characters of every general category from across the code space, for random strings."""
    pool = []
    ranges = [(0x20, 0x7F), (0xA0, 0x250), (0x370, 0x530), (0x530, 0x700), (0x900, 0xDFF), (0xE00, 0xFFF),
              (0x1000, 0x1100), (0x1100, 0x1200), (0x1E00, 0x2000), (0x2000, 0x2BFF), (0x3000, 0x3100),
              (0x4E00, 0x4F00), (0xAC00, 0xAD00), (0xFB00, 0xFFFD), (0x10000, 0x10200), (0x1D400, 0x1D800),
              (0x1F300, 0x1FAFF), (0x20000, 0x20100)]
    for low, high in ranges:
        for cp in range(low, high):
            c = chr(cp)
            if unicodedata.category(c) in ("Cn", "Cs", "Co"):
                continue
            pool.append(c)
    return pool


def build_corpus():
    corpus = []
    add = corpus.append
    for name, text in SCRIPTS.items():
        add(text)
        words = text.split(" ")
        for k in range(6):
            add(" ".join(rng.sample(words, min(len(words), rng.randint(1, 4)))))
        add(" " + text)
        add(text + " ")
        add(text.upper())
    for text in EMOJI + COMBINING + CODE + CONTRACTIONS + SPECIAL_LOOKALIKES:
        add(text)
        add(" " + text)
        add(text + "  ")
        add("Hello " + text + " world")
    # digit runs of all lengths, in several contexts
    for n in range(1, 41):
        digits = "".join(rng.choice(DIGITS) for _ in range(n))
        add(digits)
        add(" " + digits)
        add("x" + digits + "y")
        add("3" * n)
        add("v" + ".".join(digits))
        add(digits + ".5e-3")
    for digits in OTHER_DIGITS:
        add(digits)
        add("a" + digits + digits)
        add(" " + digits + " 12 " + digits[::-1])
    # whitespace runs
    for n in range(1, 8):
        for c in WHITESPACE_CHARS:
            add(c * n)
            add("a" + c * n + "b")
            add(c * n + "word")
            add("word" + c * n)
    for _ in range(150):
        run = "".join(rng.choice(WHITESPACE_CHARS) for _ in range(rng.randint(1, 10)))
        add(rng.choice(["", "x", "hello", "1", "!", "é"]) + run + rng.choice(["", "y", "world", "2", "?", "ß"]))
    # llama.cpp's own test strings (also in its .inp files)
    add("ied 4 ½ months")
    add("Führer")
    add("   Hello\n    Hello")
    add("\n =")
    add("' era")
    add("Hello, y'all! How are you 😁 ?我想在apple工作1314151天～")
    add("!!!!!!")
    add("Cửa Việt")
    add(" discards")
    add("")
    # very long words and pieces
    add("a" * 1000)
    add("ab" * 700)
    add("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(3000)))
    add("中" * 800)
    add("".join(chr(rng.randint(0x4E00, 0x9FFF)) for _ in range(1500)))
    add("".join(chr(rng.randint(0xAC00, 0xD7A3)) for _ in range(1000)))
    add("Pneumonoultramicroscopicsilicovolcanoconiosis " * 20)
    add("=" * 500)
    add("-" * 257 + "\n" + "*" * 100)
    add(" " * 2000)
    add("\n" * 300)
    add("😀" * 300)
    add("0123456789" * 60)
    add("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0NTY3ODkrLw==" * 5)
    # control characters
    for c in ["\x00", "\x01", "\x1b", "\x7f", "\u200d", "\u00ad", "\ufffd", "\u2060", "\u061c", "\u202e"]:
        add("a" + c + "b")
        add(c)
        add(c + " " + c)
    # random mixtures
    pool = char_pool()
    pieces = list(SCRIPTS.values()) + EMOJI + CODE + CONTRACTIONS + SPECIAL_LOOKALIKES + WHITESPACE_CHARS
    for _ in range(700):
        n = rng.randint(1, 60)
        add("".join(rng.choice(pool) for _ in range(n)))
    for _ in range(400):
        parts = []
        for _ in range(rng.randint(1, 6)):
            piece = rng.choice(pieces)
            if len(piece) > 30:
                start = rng.randint(0, len(piece) - 1)
                piece = piece[start:start + rng.randint(1, 30)]
            parts.append(piece)
        add(rng.choice(["", " ", "\n", "\t"]).join(parts))
    for _ in range(200):
        n = rng.randint(1, 12)
        add("".join(rng.choice(["a", "A", " ", "'", "s", "S", "1", "\n", "\r", "!", "é", "ſ", "ll", "LL", "re", "\u00a0", "\t"])
                    for _ in range(n)))
    # deduplicate, keep order
    seen = set()
    unique = []
    for text in corpus:
        if text not in seen:
            seen.add(text)
            unique.append(text)
    return unique


# ---------------------------------------------------------------------------------------------------------------
# References

def llama3_tokenizer():
    from tokenizers import Tokenizer
    return Tokenizer.from_file(LLAMA3)


def smollm2_tokenizer():
    """HF tokenizers pipeline for the GGUF vocabulary, as llama.cpp's tokenizer.ggml.pre = "smollm" defines it."""
    from gguf import GGUFReader
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    reader = GGUFReader(SMOLLM2)
    fields = reader.fields

    def strings(key):
        field = fields[key]
        return [bytes(field.parts[i]).decode("utf-8") for i in field.data]

    def ints(key):
        field = fields[key]
        return [int(field.parts[i][0]) for i in field.data]

    assert bytes(fields["tokenizer.ggml.model"].parts[-1]).decode() == "gpt2"
    pre = bytes(fields["tokenizer.ggml.pre"].parts[-1]).decode()
    assert pre == "smollm", pre
    tokens = strings("tokenizer.ggml.tokens")
    types = ints("tokenizer.ggml.token_type")
    merges = [tuple(m.split(" ")) for m in strings("tokenizer.ggml.merges")]
    vocab = {t: i for i, t in enumerate(tokens)}
    tk = Tokenizer(models.BPE(vocab=vocab, merges=merges, ignore_merges=False))
    tk.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tk.decoder = decoders.ByteLevel()
    added = []
    for token, kind in zip(tokens, types):
        if kind == 3:
            added.append(AddedToken(token, special=True, normalized=False))
        elif kind == 4:
            added.append(AddedToken(token, special=False, normalized=False))
    specials = [t for t in added if t.special]
    plain = [t for t in added if not t.special]
    tk.add_special_tokens(specials)
    if plain:
        tk.add_tokens(plain)
    # add_bos_token is false in this file: no post-processor.
    return tk


def transformers_gguf_tokenizer():
    try:
        from transformers import AutoTokenizer
        return AutoTokenizer.from_pretrained(os.path.dirname(SMOLLM2), gguf_file=os.path.basename(SMOLLM2))
    except Exception as error:  # noqa: BLE001 -- a cross-check only
        print(f"transformers GGUF loading failed: {error}", file=sys.stderr)
        return None


def expected(tk, corpus):
    prefix = tk.encode("", add_special_tokens=True).ids
    prefix_text = tk.decode(prefix, skip_special_tokens=False)
    rows = [{"prefix": prefix, "prefix_text": prefix_text}]
    for text in corpus:
        tk.encode_special_tokens = False
        plain = tk.encode(text, add_special_tokens=False).ids
        special = tk.encode(text, add_special_tokens=True).ids
        tk.encode_special_tokens = True
        literal = tk.encode(text, add_special_tokens=False).ids
        tk.encode_special_tokens = False
        row = {"plain": plain}
        if special != prefix + plain:
            row["special"] = special
        if literal != plain:
            row["literal"] = literal
        decoded = tk.decode(special, skip_special_tokens=False)
        if decoded != prefix_text + text:
            row["decoded"] = decoded
        decoded_skip = tk.decode(special, skip_special_tokens=True)
        if decoded_skip != text:
            row["decoded_skip"] = decoded_skip
        rows.append(row)
    return rows


def decode_cases(tk, vocab_size, count):
    cases = []
    for _ in range(count):
        n = rng.randint(1, 24)
        if rng.random() < 0.5:
            ids = [rng.randrange(vocab_size) for _ in range(n)]
        else:
            ids = [rng.randrange(min(vocab_size, 1200)) for _ in range(n)]   # many single bytes and short pieces
        cases.append({"ids": ids, "text": tk.decode(ids, skip_special_tokens=False),
                      "text_skip": tk.decode(ids, skip_special_tokens=True)})
    return cases


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")


def main():
    for path in (LLAMA3, SMOLLM2):
        if not os.path.exists(path):
            sys.exit(f"missing {path}: run python3 scripts/fetch_assets.py first")
    os.makedirs(OUT, exist_ok=True)
    corpus = build_corpus()
    print(f"{len(corpus)} corpus strings")
    write_jsonl(os.path.join(OUT, "corpus.jsonl"), corpus)

    llama = llama3_tokenizer()
    write_jsonl(os.path.join(OUT, "llama3.expected.jsonl"), expected(llama, corpus))
    smol = smollm2_tokenizer()
    smol_rows = expected(smol, corpus)
    write_jsonl(os.path.join(OUT, "smollm2.expected.jsonl"), smol_rows)
    cases = {"llama3": decode_cases(llama, llama.get_vocab_size(with_added_tokens=True), 400),
             "smollm2": decode_cases(smol, smol.get_vocab_size(with_added_tokens=True), 400)}
    with open(os.path.join(OUT, "decode_cases.json"), "w", encoding="utf-8") as f:
        json.dump(cases, f, ensure_ascii=False, separators=(",", ":"))

    # Cross-check: transformers' own GGUF tokenizer loading.
    hf = transformers_gguf_tokenizer()
    if hf is not None:
        same = same_no_digit = total_no_digit = 0
        for text, row in zip(corpus, smol_rows[1:]):
            ids = hf.encode(text, add_special_tokens=False)
            has_digit = any(unicodedata.category(c).startswith("N") for c in text)
            if ids == row["plain"]:
                same += 1
            if not has_digit:
                total_no_digit += 1
                same_no_digit += ids == row["plain"]
        print(f"transformers GGUF tokenizer agrees on {same}/{len(corpus)} strings; "
              f"{same_no_digit}/{total_no_digit} of those without \\p{{N}} characters")
    for name in ("corpus.jsonl", "llama3.expected.jsonl", "smollm2.expected.jsonl", "decode_cases.json"):
        print(f"{name}: {os.path.getsize(os.path.join(OUT, name))} bytes")


if __name__ == "__main__":
    main()
