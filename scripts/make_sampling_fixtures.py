#!/usr/bin/env python3
"""Record transformers' logits processors on random logits, as a reference for mobilellm's Sampler.

Needs torch + transformers (see scripts/requirements-reference.txt); CI never runs it.
    /work/refvenv/bin/python scripts/make_sampling_fixtures.py
writes Tests/Fixtures/sampling/reference.json: for each case the raw logits, the token history, the parameters,
and the scores after transformers' RepetitionPenalty -> Temperature -> TopK -> TopP -> MinP chain (removed
tokens are null). The Swift test checks that Sampler.distribution keeps exactly the same tokens with
probabilities equal to the softmax of these scores.
"""
import json
import os

import torch
from transformers.generation.logits_process import (
    MinPLogitsWarper,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "Fixtures", "sampling", "reference.json")


def main():
    generator = torch.Generator().manual_seed(1234)
    vocab = 64
    cases = []
    settings = [
        dict(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, repetition_penalty=1.0),
        dict(temperature=0.7, top_k=10, top_p=1.0, min_p=0.0, repetition_penalty=1.0),
        dict(temperature=1.3, top_k=0, top_p=0.9, min_p=0.0, repetition_penalty=1.0),
        dict(temperature=0.6, top_k=0, top_p=0.95, min_p=0.0, repetition_penalty=1.0),
        dict(temperature=1.0, top_k=0, top_p=1.0, min_p=0.1, repetition_penalty=1.0),
        dict(temperature=0.8, top_k=20, top_p=0.8, min_p=0.05, repetition_penalty=1.3),
        dict(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, repetition_penalty=1.5),
        dict(temperature=2.0, top_k=5, top_p=0.5, min_p=0.2, repetition_penalty=0.8),
    ]
    for index, params in enumerate(settings * 3):
        logits = torch.randn(1, vocab, generator=generator) * 3
        history = torch.randint(0, vocab, (1, 12), generator=generator)
        scores = logits.clone()
        if params["repetition_penalty"] != 1.0:
            scores = RepetitionPenaltyLogitsProcessor(params["repetition_penalty"])(history, scores)
        scores = TemperatureLogitsWarper(params["temperature"])(history, scores)
        if params["top_k"] > 0:
            scores = TopKLogitsWarper(params["top_k"])(history, scores)
        if params["top_p"] < 1.0:
            scores = TopPLogitsWarper(params["top_p"])(history, scores)
        if params["min_p"] > 0.0:
            scores = MinPLogitsWarper(params["min_p"])(history, scores)
        processed = [None if v == float("-inf") else round(v, 7) for v in scores[0].tolist()]
        cases.append({
            "params": params,
            "logits": [round(v, 7) for v in logits[0].tolist()],
            "history": history[0].tolist(),
            "scores": processed,
        })
    # The cases must exercise the filters: the number of kept tokens has to vary across cases.
    kept = [sum(v is not None for v in c["scores"]) for c in cases]
    assert len(set(kept)) > 3, "cases do not exercise the filters"
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as handle:
        json.dump({"source": "transformers logits processors", "cases": cases}, handle)
    print(f"wrote {len(cases)} cases to {OUT}; kept-token counts {kept}")


if __name__ == "__main__":
    main()
