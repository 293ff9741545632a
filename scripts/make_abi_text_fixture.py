#!/usr/bin/env python3
"""Builds Tests/Fixtures/r1like-chat: the weights of Tests/Fixtures/llama4-r1like-bf16-sharded (symlinked) plus a
byte-level BPE tokenizer trained by Hugging Face `tokenizers` to exactly the model's 384 ids (ids 0-3 are the
special tokens the config names as BOS/EOS) and a Llama-3-style chat template. Records what HF `tokenizers` and
transformers' `apply_chat_template` produce for a few texts in reference_text.json, so every host's text tests
(tokenize, detokenize, streaming, chat template) compare with the reference implementation.

Run with the reference venv (scripts/requirements-reference.txt): python scripts/make_abi_text_fixture.py
"""
import json
import os
import pathlib

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "Tests/Fixtures/r1like-chat"
WEIGHTS = ROOT / "Tests/Fixtures/llama4-r1like-bf16-sharded"
SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|eom_id|>"]
TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "<|start|>{{ message['role'] }}\n{{ message['content'] | trim }}<|eot_id|>"
    "{% endfor %}{% if add_generation_prompt %}<|start|>assistant\n"
    "{% if enable_thinking is defined and not enable_thinking %}<think></think>{% endif %}{% endif %}"
)
CORPUS = [
    "The quick brown fox jumps over the lazy dog. " * 3,
    "Hello world! How are you today? I am fine, thank you.",
    "Once upon a time there was a small model that could run anywhere.",
    "user assistant system message content think answer question",
    "def main():\n    print('hello')\n    return 0\n",
    "Numbers 0 1 2 3 4 5 6 7 8 9 10 100 1000 and symbols: { } [ ] ( ) < > | = + - * /",
]


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=384, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(CORPUS * 20, trainer=trainer)
    assert tokenizer.get_vocab_size() == 384, tokenizer.get_vocab_size()
    for index, special in enumerate(SPECIALS):
        assert tokenizer.token_to_id(special) == index
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A $B:1", special_tokens=[("<|begin_of_text|>", 0)])
    tokenizer.save(str(OUT / "tokenizer.json"))
    config = {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "chat_template": TEMPLATE,
              "model_max_length": 32768, "tokenizer_class": "PreTrainedTokenizerFast"}
    (OUT / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    for file in sorted(os.listdir(WEIGHTS)):
        if file == "reference.json":
            continue
        link = OUT / file
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(os.path.relpath(WEIGHTS / file, OUT))

    from transformers import AutoTokenizer
    hf = AutoTokenizer.from_pretrained(str(OUT))
    texts = ["Hello world!", "The quick brown fox", "héllo wörld 🙂 ünïcödé", "",
             "<|eot_id|> is special", "  spaces\tand\nnewlines  "]
    encodings = []
    for text in texts:
        for add_special in (True, False):
            for parse_special in (True, False):
                if parse_special:
                    ids = hf(text, add_special_tokens=add_special)["input_ids"]
                else:
                    # transformers has no switch for this; split_special_tokens does it for fast tokenizers.
                    ids = hf(text, add_special_tokens=add_special, split_special_tokens=True)["input_ids"]
                encodings.append({"text": text, "add_special": add_special, "parse_special": parse_special, "ids": ids})
    ids = hf("héllo wörld 🙂 ünïcödé", add_special_tokens=False)["input_ids"]
    decodings = [{"ids": ids, "skip_special": False, "text": hf.decode(ids)},
                 {"ids": [0] + ids + [2], "skip_special": False, "text": hf.decode([0] + ids + [2])},
                 {"ids": [0] + ids + [2], "skip_special": True, "text": hf.decode([0] + ids + [2], skip_special_tokens=True)}]
    messages = [{"role": "system", "content": "You are brief."}, {"role": "user", "content": "Hi there!  "}]
    chats = [
        {"messages": messages, "add_generation_prompt": True, "variables": {},
         "text": hf.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)},
        {"messages": messages, "add_generation_prompt": False, "variables": {},
         "text": hf.apply_chat_template(messages, add_generation_prompt=False, tokenize=False)},
        {"messages": messages, "add_generation_prompt": True, "variables": {"enable_thinking": False},
         "text": hf.apply_chat_template(messages, add_generation_prompt=True, tokenize=False, enable_thinking=False)},
    ]
    reference = {"encodings": encodings, "decodings": decodings, "chats": chats,
                 "pieces": {str(i): hf.convert_ids_to_tokens(i) for i in (0, 2, 100, 300)}}
    (OUT / "reference_text.json").write_text(json.dumps(reference, ensure_ascii=False, indent=1) + "\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
