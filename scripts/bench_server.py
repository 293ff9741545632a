"""Aggregate decode through `mobilellm serve` with 1, 4, 8 and 16 concurrent chat clients (the official openai
client), each generating MAX_TOKENS greedy tokens with ignore_eos, on SmolLM2 Q4_1. Not a test: run it on a quiet
machine after `swift build -c release` (openai from PyPI, e.g. in .cache/pylib-test):

    PYTHONPATH=.cache/pylib-test python3 scripts/bench_server.py [MAX_TOKENS] [extra serve flags...]
"""
import json
import pathlib
import signal
import subprocess
import sys
import threading
import time

import openai

REPO = pathlib.Path(__file__).resolve().parents[1]
CLI = str(REPO / ".build/release/mobilellm")
M = str(REPO / ".cache/assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
p = subprocess.Popen([CLI, "serve", "--model", M, "--port", "0", "--parallel", "16", *sys.argv[2:]],
                     stdout=subprocess.PIPE, text=True)
url = json.loads(p.stdout.readline())["listening"]
c = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=600)
PROMPTS = ["Write a story about a cat.", "Explain photosynthesis.", "Describe Paris.", "What is gravity?",
           "Tell me about the ocean.", "How do computers work?", "Describe a forest.", "What is music?"]
N = int(sys.argv[1]) if len(sys.argv) > 1 else 128
def one(prompt, out):
    r = c.chat.completions.create(model="default", messages=[{"role": "user", "content": prompt}], max_tokens=N,
                                  temperature=0, extra_body={"ignore_eos": True})
    out.append(r.usage.completion_tokens)
one("warm up", [])
for clients in (1, 4, 8, 16):
    out = []
    t = time.time()
    threads = [threading.Thread(target=one, args=(PROMPTS[i % 8], out)) for i in range(clients)]
    [th.start() for th in threads]; [th.join() for th in threads]
    dt = time.time() - t
    print(json.dumps({"clients": clients, "max_tokens": N, "tokens": sum(out), "seconds": round(dt, 2),
                      "aggregate_tok_s": round(sum(out) / dt, 1)}), flush=True)
p.send_signal(signal.SIGTERM); p.wait(timeout=30)
