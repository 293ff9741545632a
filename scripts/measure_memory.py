#!/usr/bin/env python3
"""Measures what mobilellm_model_estimate_memory() predicts: run it as its own process (the tests do), so nothing
else lives in the measured memory.

    python3 scripts/measure_memory.py MODEL --n-ctx N [--fill prefill|state] [--quantize TYPE]
        [--activations exact|int8] [--threads N]

Prints one JSON object: the estimate's fields, "rss_before" (VmRSS after a warm-up load of a tiny committed model,
which makes the library's code resident, and before the model is loaded), "peak" (VmHWM at the end), "end" (VmRSS
at the end), "measured" = peak - rss_before (prefill fill) or end - rss_before (state fill, see below), the growth
of RssAnon and RssFile, and "ratio" = measured / total_bytes. The estimate is made last, in the same process. The
model is loaded and filled through raw C calls: the Python Model class reads mobilellm_model_get_info, whose
has_chat_template parses the tokenizer, which the estimate does not cover.

What fills the context (every KV cache page is allocated and written, then attention runs over all positions):
  prefill  feeds N tokens (ids i % vocab) through the model in batches of 256: the real thing, slow for long
           contexts.
  state    first prefills min(256, N) tokens (so the session's buffers reach their prefill size), saves the state,
           then restores a copy of it extended to N - 1 positions (zero K/V rows in an anonymous mapping, unmapped
           after the restore) and evaluates one more token at position N - 1: every page written, attention over
           the whole context, minutes faster at 32K positions. The kernel may back the mapping with real pages
           while the restore reads it (transparent huge pages), so this fill measures VmRSS at the end, not the
           peak.
"""
import argparse
import ctypes
import json
import mmap
import os
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))
import mobilellm  # noqa: E402


def status_kib(field):
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("--n-ctx", type=int, required=True)
    parser.add_argument("--fill", choices=["prefill", "state"], default="prefill")
    parser.add_argument("--quantize")
    parser.add_argument("--activations", help="exact or int8 (default: the library's default)")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--vocab", type=int, default=1000, help="token ids fed are below this (default 1000)")
    arguments = parser.parse_args()
    mobilellm.load_library()
    # Warm-up on a tiny committed model: the library's code pages that every load and forward pass touches become
    # resident here, not in the measurement (they are the library's, shared, and there once per process).
    with mobilellm.Model(os.path.join(ROOT, "Tests", "Fixtures", "llama-f16"), n_threads=arguments.threads) as warm:
        with warm.session(n_ctx=16) as session:
            session.eval([1, 2])
    ctypes.CDLL(None).malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")  # VmHWM := VmRSS
    rss_before = status_kib("VmRSS")
    anon_before, file_before = status_kib("RssAnon"), status_kib("RssFile")
    kwargs = {"n_threads": arguments.threads, "quantize": arguments.quantize, "activations": arguments.activations}
    # Raw C calls: the Python Model reads mobilellm_model_get_info, whose has_chat_template parses the tokenizer
    # (not part of the estimate), and Session.eval returns logits as Python floats (the script's own memory).
    lib = mobilellm._lib()
    params = mobilellm._model_params(arguments.threads, arguments.quantize, False, arguments.activations)
    model = ctypes.c_void_p()
    mobilellm._check(lib.mobilellm_model_load(mobilellm._path_argument(arguments.model), ctypes.byref(params),
                                              ctypes.byref(model)))
    session_params = mobilellm._SessionParams()
    lib.mobilellm_session_params_init(ctypes.byref(session_params))
    session_params.n_ctx = arguments.n_ctx
    handle = ctypes.c_void_p()
    mobilellm._check(lib.mobilellm_session_create(model, ctypes.byref(session_params), ctypes.byref(handle)))
    vocab = arguments.vocab
    n = arguments.n_ctx
    # Room for any vocabulary's logits row; only the row written becomes resident (like a host's own buffer).
    logits_region = mmap.mmap(-1, 4 << 20)
    logits = (ctypes.c_float * (1 << 20)).from_buffer(logits_region)

    def feed(tokens, mode=mobilellm.LOGITS_NONE):
        array = (ctypes.c_int32 * len(tokens))(*tokens)
        mobilellm._check(lib.mobilellm_session_eval(handle, array, len(tokens), mode,
                                                    logits if mode else None, len(logits) if mode else 0))

    if arguments.fill == "prefill":
        for start in range(0, n, 256):
            end = min(n, start + 256)
            feed([(i * 7919) % vocab for i in range(start, end)], mobilellm.LOGITS_LAST if end == n else 0)
    else:
        warm = min(256, n - 1)
        feed([(i * 7919) % vocab for i in range(warm)])
        size = ctypes.c_size_t(0)
        mobilellm._check(lib.mobilellm_session_state_size(handle, ctypes.byref(size)))
        saved = ctypes.create_string_buffer(size.value)
        mobilellm._check(lib.mobilellm_session_save_state(handle, saved, size.value, ctypes.byref(size)))
        positions = n - 1
        kv_bytes = (size.value - 48 - 4 * warm) // warm * positions  # K/V bytes scale with the positions
        total = 48 + 4 * positions + kv_bytes
        region = mmap.mmap(-1, total)
        region[0:48] = saved.raw[:48]
        region[40:44] = struct.pack("<I", positions)
        region[48:48 + 4 * positions] = struct.pack(f"<{positions}i", *[(i * 7919) % vocab for i in range(positions)])
        buffer = (ctypes.c_char * total).from_buffer(region)
        mobilellm._check(lib.mobilellm_session_load_state(handle, buffer, total))
        del buffer
        region.close()
        del saved
        feed([1], mobilellm.LOGITS_LAST)
    peak = status_kib("VmHWM")
    # The state fill reads the K/V rows from an anonymous mapping the kernel may back with real (huge) pages
    # while the restore reads it; it is unmapped by now, so the memory that stays is what counts for that fill.
    end = status_kib("VmRSS")
    measured = (peak if arguments.fill == "prefill" else end) - rss_before
    anon_growth, file_growth = status_kib("RssAnon") - anon_before, status_kib("RssFile") - file_before
    # Estimated last: its own parse of the headers would leave freed heap that the load then reuses.
    estimate = mobilellm.estimate_memory(arguments.model, n_ctx=arguments.n_ctx, **kwargs)
    result = {name: getattr(estimate, name) for name in estimate.__slots__}
    lib.mobilellm_session_free(handle)
    lib.mobilellm_model_free(model)
    result.update(model=arguments.model, fill=arguments.fill, rss_before=rss_before, peak=peak,
                  end=end, measured=measured, anon_growth=anon_growth, file_growth=file_growth, ratio=measured / estimate.total_bytes)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
