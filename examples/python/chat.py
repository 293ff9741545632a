#!/usr/bin/env python3
"""Load a model, render a chat, stream the answer, then show logits and a greedy generation from token ids.

    MOBILELLM_LIBRARY=.build/release/libmobilellm.so python3 examples/python/chat.py Tests/Fixtures/r1like-chat
"""
import sys

import mobilellm


def main(path):
    with mobilellm.Model(path, n_threads=2) as model:
        print(f"{model.architecture}: vocabulary {model.vocab_size}, context {model.context_length}, "
              f"BOS {model.bos_token_id}, EOS {model.eos_token_ids}")
        session = model.session(n_ctx=1024)
        if model.has_tokenizer:
            prompt = model.apply_chat_template([{"role": "user", "content": "Hello! Who are you?"}])
            for piece in session.stream(prompt, max_tokens=32, temperature=0.6, top_p=0.95, seed=0):
                print(piece, end="", flush=True)
            print()
            session.reset()
        logits = session.eval([0, 169, 380])
        print("arg-max after 3 tokens:", max(range(len(logits)), key=logits.__getitem__))
        print("greedy:", session.generate([], max_tokens=8, temperature=0).tokens)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "Tests/Fixtures/r1like-chat")
