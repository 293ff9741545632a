#!/usr/bin/env python3
"""Writes Tests/Fixtures/quant/quant_reference.json: external references for the quantized formats.

Run with a venv that has numpy + gguf (0.19):  /work/venv/bin/python scripts/make_quant_fixtures.py
CI never runs this; the JSON is committed.

For Q8_0, Q4_0, Q4_1, Q5_0 and Q5_1, gguf-py (gguf.quants) is the external reference for both directions: the
stored bytes are what gguf.quants.quantize produces, the stored floats what gguf.quants.dequantize returns.

gguf-py has no quantizer for Q4_K, Q5_K and Q6_K (only dequantize). For those the bytes come from ggml itself:
quantize_row_q4_K_ref / quantize_row_q5_K_ref / quantize_row_q6_K_ref in the libggml-base.so that the llama-cpp-python wheel installs
in the same venv (called through ctypes), and the floats from gguf.quants.dequantize of those bytes. Without
llama-cpp-python the script falls back to this project's C quantizer (built here with clang) and says so in
"quantized_by" (every K-quant entry in the committed fixture was made with ggml: Q4_K and Q6_K with the
llama-cpp-python wheel's library, Q5_K with libggml-base built from llama-cpp-python 0.3.36's vendored llama.cpp). Types
are generated in a fixed order from one random stream, so adding a type at the end of TYPES leaves the entries
of the earlier types unchanged. The script also prints how many rows our C quantizer (and, for the legacy types, ggml's _ref
functions) differ on: 0 for every type when this fixture was made.

Every type also gets "random_blocks": random bytes (with finite f16 scale fields) and gguf's dequantization of
them, which exercises every bit of the block layouts, including scale/min bit patterns the quantizer never
produces.

All floats are stored as hex of little-endian float32 (exact); bytes as hex.
"""
import json
import os
import subprocess
import sys
import tempfile
import ctypes

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import quants

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "Fixtures", "quant", "quant_reference.json")

# New types go at the end: the random stream is consumed in this order.
TYPES = {"q8_0": (T.Q8_0, 8), "q4_0": (T.Q4_0, 2), "q4_1": (T.Q4_1, 3), "q4_K": (T.Q4_K, 12), "q6_K": (T.Q6_K, 14),
         "q5_0": (T.Q5_0, 6), "q5_1": (T.Q5_1, 7), "q5_K": (T.Q5_K, 13), "iq4_nl": (T.IQ4_NL, 20),
         "q2_K": (T.Q2_K, 10), "q3_K": (T.Q3_K, 11)}
# Types mobilellm reads but does not write: only random blocks and gguf's dequantization of them.
DEQUANTIZE_ONLY = {"iq4_nl", "q2_K", "q3_K"}
HAS_GGUF_QUANTIZE = {"q8_0", "q4_0", "q4_1", "q5_0", "q5_1"}
# Entries kept from the committed fixture when this run cannot reproduce their source (ggml's K-quant quantizers
# need llama-cpp-python); regenerated otherwise.
GGML_ONLY = {"q4_K", "q6_K"}


def f32hex(a):
    return np.ascontiguousarray(a, dtype="<f4").tobytes().hex()


def build_c_quantizer():
    """Compiles the project's C quantizer into a temporary shared library and returns a ctypes handle."""
    src = os.path.join(ROOT, "Sources", "CMobileLLMKernels")
    tmp = tempfile.mkdtemp()
    lib = os.path.join(tmp, "libmlkquant.so")
    files = [os.path.join(src, f) for f in ("kernels.c", "quant.c", "quant_x86.c")]
    subprocess.check_call(["clang", "-O1", "-shared", "-fPIC", "-I", os.path.join(src, "include"), *files, "-o", lib])
    handle = ctypes.CDLL(lib)
    handle.mlk_q_quantize_rows.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
    handle.mlk_q_row_bytes.argtypes = [ctypes.c_int, ctypes.c_int64]
    handle.mlk_q_row_bytes.restype = ctypes.c_size_t
    return handle


def load_ggml():
    """ggml's own reference quantizers (quantize_row_*_ref) from a libggml-base: $MOBILELLM_LIBGGML_BASE if set
    (e.g. built from the llama.cpp that llama-cpp-python's sdist vendors: `cmake -S vendor/llama.cpp/ggml -B b
    -DGGML_CPU=OFF -DBUILD_SHARED_LIBS=ON && cmake --build b --target ggml-base`), else the llama-cpp-python wheel's
    in this venv; None if neither exists."""
    path = os.environ.get("MOBILELLM_LIBGGML_BASE")
    if not path:
        try:
            import llama_cpp
        except ImportError:
            return None
        path = os.path.join(os.path.dirname(llama_cpp.__file__), "lib", "libggml-base.so")
    if not os.path.exists(path):
        return None
    handle = ctypes.CDLL(path)
    for fn in ("quantize_row_q4_0_ref", "quantize_row_q4_1_ref", "quantize_row_q8_0_ref", "quantize_row_q5_0_ref",
               "quantize_row_q5_1_ref", "quantize_row_q4_K_ref", "quantize_row_q5_K_ref", "quantize_row_q6_K_ref"):
        getattr(handle, fn).argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    return handle


def ggml_quantize(ggml, name, rows):
    rows = np.ascontiguousarray(rows, dtype=np.float32)
    n, k = rows.shape
    _, nbytes = quants.GGML_QUANT_SIZES[TYPES[name][0]]
    bs = quants.GGML_QUANT_SIZES[TYPES[name][0]][0]
    out = np.zeros((n, k // bs * nbytes), dtype=np.uint8)
    fn = getattr(ggml, f"quantize_row_{name}_ref")
    for i in range(n):
        fn(rows[i].ctypes.data, out[i].ctypes.data, k)
    return out


def c_quantize(lib, type_id, rows):
    rows = np.ascontiguousarray(rows, dtype=np.float32)
    n, k = rows.shape
    rb = lib.mlk_q_row_bytes(type_id, k)
    out = np.zeros(n * rb, dtype=np.uint8)
    lib.mlk_q_quantize_rows(type_id, rows.ctypes.data, n, k, out.ctypes.data)
    return out.reshape(n, rb)


def input_rows(rng):
    """Rows of 512 floats (two K super-blocks, sixteen 32-blocks) with ordinary and awkward contents."""
    k = 512
    rows = []
    rows.append(rng.standard_normal(k))                           # ordinary
    rows.append(rng.standard_normal(k) * 0.02)                    # weight-like magnitudes
    rows.append(rng.uniform(-1, 1, k) * 1e4)                      # huge (f16 scales near their top)
    rows.append(rng.uniform(-1, 1, k) * 1e-5)                     # tiny (f16 subnormal scales)
    rows.append(np.zeros(k))                                      # all zero
    rows.append(np.full(k, 0.375))                                # all equal, positive
    rows.append(np.full(k, -1.25))                                # all equal, negative
    rows.append(-np.abs(rng.standard_normal(k)))                  # negative only
    rows.append(np.abs(rng.standard_normal(k)) + 3.0)             # positive only, offset
    r = rng.standard_normal(k)                                    # mixed: zero blocks, spikes, equal blocks
    r[0:32] = 0.0
    r[40] = 50.0
    r[64:96] = 7.0
    r[100] = -80.0
    r[256:288] = 0.0
    r[300:316] = 1e-3
    rows.append(r)
    r = np.round(rng.standard_normal(k) * 4) / 2                  # many exact ties of the rounding rules
    rows.append(r)
    r = rng.standard_normal(k) * np.repeat(np.exp(rng.uniform(-6, 3, k // 16)), 16)  # scale varies per 16
    rows.append(r)
    for i in range(6):                                            # more ordinary rows for the K-quant searches
        rows.append(rng.standard_t(3 + i, k) * 10.0 ** rng.uniform(-3, 1))
    return np.array(rows, dtype=np.float32)


def random_blocks(rng, name, type_id):
    """Random block bytes with finite f16 scale fields, 8 blocks (2048 weights for the dequantize-only types)."""
    qt, _ = TYPES[name]
    bs, nbytes = quants.GGML_QUANT_SIZES[qt]
    nblocks = 2048 // bs if name in DEQUANTIZE_ONLY else 8
    raw = rng.integers(0, 256, size=(nblocks, nbytes), dtype=np.uint8)
    halves = lambda n: (rng.standard_normal(n) * 0.05).astype(np.float16).view(np.uint8).reshape(n, 2)
    if name in ("q8_0", "q4_0", "iq4_nl"):
        raw[:, 0:2] = halves(nblocks)
    elif name == "q4_1":
        raw[:, 0:2] = halves(nblocks)
        raw[:, 2:4] = halves(nblocks)
    elif name == "q4_K":
        raw[:, 0:2] = halves(nblocks)
        raw[:, 2:4] = halves(nblocks)
    elif name == "q6_K":
        raw[:, 208:210] = halves(nblocks)
    elif name == "q5_0":
        raw[:, 0:2] = halves(nblocks)
    elif name in ("q5_1", "q5_K"):
        raw[:, 0:2] = halves(nblocks)
        raw[:, 2:4] = halves(nblocks)
    elif name == "q2_K":
        raw[:, 80:82] = halves(nblocks)
        raw[:, 82:84] = halves(nblocks)
    elif name == "q3_K":
        raw[:, 108:110] = halves(nblocks)
    k = nblocks * bs
    deq = quants.dequantize(raw.reshape(1, -1), qt).reshape(-1)
    return {"count": k, "bytes": raw.tobytes().hex(), "dequantized": f32hex(deq)}


def main():
    rng = np.random.default_rng(20250517)
    rows = input_rows(rng)
    lib = build_c_quantizer()
    fixture = {
        "k": int(rows.shape[1]),
        "rows": [f32hex(r) for r in rows],
        "types": {},
        "note": "bytes for q8_0/q4_0/q4_1/q5_0/q5_1 from gguf.quants.quantize; for q4_K/q6_K from ggml's "
                "quantize_row_*_ref (libggml-base of llama-cpp-python; gguf-py has no K-quant quantizer); for q5_K "
                "see its quantized_by; iq4_nl, q2_K, q3_K (read-only in mobilellm) have random blocks only; "
                "dequantized floats always from gguf.quants.dequantize",
    }
    ggml = load_ggml()
    previous = None
    if ggml is None and os.path.exists(OUT):
        with open(OUT) as f:
            previous = json.load(f)
    for name, (qt, type_id) in TYPES.items():
        if name in DEQUANTIZE_ONLY:
            fixture["types"][name] = {"type_id": type_id, "quantized_by": "none (dequantize only)", "rows": [],
                                      "random_blocks": random_blocks(rng, name, type_id)}
            print(f"{name}: dequantize-only, {fixture['types'][name]['random_blocks']['count']} random weights")
            continue
        ours = c_quantize(lib, type_id, rows)
        if name in GGML_ONLY and ggml is None and previous is not None and name in previous["types"]:
            # Keep ggml's bytes; still draw this type's random blocks so later types see the same stream.
            kept = previous["types"][name]
            kept_bytes = np.array([np.frombuffer(bytes.fromhex(r["bytes"]), dtype=np.uint8) for r in kept["rows"]])
            mismatched = int((kept_bytes != ours).any(axis=1).sum())
            print(f"{name}: kept ggml's bytes from the committed fixture; our C quantizer differs on {mismatched} rows")
            deq = quants.dequantize(kept_bytes, qt)
            for i in range(len(rows)):
                assert kept["rows"][i]["dequantized"] == f32hex(deq[i]), f"{name} row {i}: gguf dequantize changed"
            fresh = random_blocks(rng, name, type_id)
            assert fresh == kept["random_blocks"], f"{name}: random blocks changed"
            fixture["types"][name] = kept
            continue
        if name in HAS_GGUF_QUANTIZE:
            qbytes, source = quants.quantize(rows, qt), "gguf"
        elif ggml is not None:
            qbytes, source = ggml_quantize(ggml, name, rows), "ggml"
        else:
            qbytes, source = ours, "mobilellm-c"
        entry = {"type_id": type_id, "quantized_by": source, "rows": []}
        mismatched = int((qbytes != ours).any(axis=1).sum())
        print(f"{name}: bytes from {source}; our C quantizer differs on {mismatched} of {len(rows)} rows")
        if ggml is not None and source != "ggml":
            g = ggml_quantize(ggml, name, rows)
            print(f"{name}: ggml's quantize_row_{name}_ref differs from {source} on {int((g != qbytes).any(axis=1).sum())} rows")
        deq = quants.dequantize(qbytes, qt)
        for i in range(len(rows)):
            entry["rows"].append({"bytes": qbytes[i].tobytes().hex(), "dequantized": f32hex(deq[i])})
        entry["random_blocks"] = random_blocks(rng, name, type_id)
        fixture["types"][name] = entry
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(fixture, f, indent=1)
        f.write("\n")
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    sys.exit(main())
