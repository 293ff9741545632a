#!/usr/bin/env python3
"""Builds Tests/hostile: a corpus of hostile model files (issue 7), each with exactly one defect, and cases.json.

Standard library only. Everything starts from committed fixtures: a tiny 2-layer MobileLLM-R1-style model sliced out of
Tests/Fixtures/llama4-r1like-bf16-sharded (hidden 16, 2 heads of 8, 1 KV head, MLP 32, its 384-token vocabulary), with
the tokenizer files of Tests/Fixtures/r1like-chat. From it come three controls that load and run (a directory with
model.safetensors, a sharded directory, and a GGUF file written here with llama.cpp's llama4 keys), and every case
differs from a control by one defect. Unchanged files are relative symlinks to the control's, so the corpus stays small.

    python3 scripts/make_hostile_corpus.py        # rewrites Tests/hostile (deterministic output)

cases.json lists, per case: "name", "command" (CLI arguments, paths relative to the repository root), and "expect",
a substring of the one-line error naming the file and field. "controls" lists commands that must succeed (exit 0) on
the controls. Tests/hostile/test_hostile_cli.py runs them all against the built CLI.
"""
import json
import os
import shutil
import struct

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE = os.path.join(ROOT, "Tests", "Fixtures", "llama4-r1like-bf16-sharded")
TOKENIZER = os.path.join(ROOT, "Tests", "Fixtures", "r1like-chat")
OUT = os.path.join(ROOT, "Tests", "hostile")
REL = "Tests/hostile"

HIDDEN, HEADS, KV_HEADS, HEAD_DIM, MLP, LAYERS, VOCAB = 16, 2, 1, 8, 32, 2, 384

cases = []
controls = []


# ---------------------------------------------------------------------------------------------------------------------
# safetensors


def read_safetensors(path):
    """{name: (dtype, shape, bytes)} of a safetensors file."""
    blob = open(path, "rb").read()
    (length,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + length])
    data = blob[8 + length :]
    return {name: (e["dtype"], e["shape"], data[e["data_offsets"][0] : e["data_offsets"][1]])
            for name, e in header.items() if name != "__metadata__"}


def slice_bf16(tensor, shape):
    """The leading `shape` block of a 1-D or 2-D BF16 tensor."""
    dtype, full, data = tensor
    assert dtype == "BF16"
    if len(shape) == 1:
        return data[: 2 * shape[0]]
    row = 2 * full[1]
    return b"".join(data[r * row : r * row + 2 * shape[1]] for r in range(shape[0]))


def tiny_tensors():
    """[(name, shape, bf16 bytes)] of the tiny model, in a fixed order."""
    source = {}
    for name in sorted(os.listdir(SOURCE)):
        if name.endswith(".safetensors"):
            source.update(read_safetensors(os.path.join(SOURCE, name)))
    shapes = [("model.embed_tokens.weight", [VOCAB, HIDDEN])]
    for layer in range(LAYERS):
        p = "model.layers.%d." % layer
        shapes += [
            (p + "input_layernorm.weight", [HIDDEN]),
            (p + "self_attn.q_proj.weight", [HEADS * HEAD_DIM, HIDDEN]),
            (p + "self_attn.k_proj.weight", [KV_HEADS * HEAD_DIM, HIDDEN]),
            (p + "self_attn.v_proj.weight", [KV_HEADS * HEAD_DIM, HIDDEN]),
            (p + "self_attn.o_proj.weight", [HIDDEN, HEADS * HEAD_DIM]),
            (p + "post_attention_layernorm.weight", [HIDDEN]),
            (p + "feed_forward.gate_proj.weight", [MLP, HIDDEN]),
            (p + "feed_forward.up_proj.weight", [MLP, HIDDEN]),
            (p + "feed_forward.down_proj.weight", [HIDDEN, MLP]),
        ]
    shapes.append(("model.norm.weight", [HIDDEN]))
    return [(name, shape, slice_bf16(source[name], shape)) for name, shape in shapes]


def safetensors_bytes(tensors, header_edit=None, raw_header=None, declared_length=None):
    """A safetensors file of [(name, shape, bytes)] (BF16). `header_edit(header)` may change the header dict;
    `raw_header` replaces the JSON text; `declared_length` replaces the 8-byte length."""
    header, data = {"__metadata__": {"format": "pt"}}, b""
    for name, shape, blob, *dtype in tensors:  # an optional 4th item is the dtype (default BF16)
        header[name] = {"dtype": dtype[0] if dtype else "BF16", "shape": shape, "data_offsets": [len(data), len(data) + len(blob)]}
        data += blob
    if header_edit:
        header_edit(header)
    text = raw_header if raw_header is not None else json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    length = len(text) if declared_length is None else declared_length
    return struct.pack("<Q", length) + text + data


# ---------------------------------------------------------------------------------------------------------------------
# GGUF (llama.cpp's format, version 3, little-endian)

U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)
GGML_BF16 = 30


def gstr(text):
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def gvalue(kind, value):
    if kind == STR:
        return gstr(value)
    if kind == ARR:
        element, items = value
        return struct.pack("<IQ", element, len(items)) + b"".join(gvalue(element, item) for item in items)
    return struct.pack({U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f", BOOL: "<?",
                        U64: "<Q", I64: "<q", F64: "<d"}[kind], value)


def kv(key, kind, value):
    return gstr(key) + struct.pack("<I", kind) + gvalue(kind, value)


def tokenizer_parts():
    tok = json.load(open(os.path.join(TOKENIZER, "tokenizer.json")))
    vocab = tok["model"]["vocab"]
    tokens = [None] * VOCAB
    for text, index in vocab.items():
        tokens[index] = text
    specials = {t["id"] for t in tok["added_tokens"] if t["special"]}
    for t in tok["added_tokens"]:
        tokens[t["id"]] = t["content"]
    types = [3 if i in specials else 1 for i in range(VOCAB)]
    merges = [m if isinstance(m, str) else m[0] + " " + m[1] for m in tok["model"]["merges"]]
    template = json.load(open(os.path.join(TOKENIZER, "tokenizer_config.json")))["chat_template"]
    return tokens, types, merges, template


def gguf_metadata():
    """[(key, kind, value)] of the control GGUF."""
    tokens, types, merges, template = tokenizer_parts()
    return [
        ("general.architecture", STR, "llama4"),
        ("general.alignment", U32, 32),
        ("llama4.vocab_size", U32, VOCAB),
        ("llama4.block_count", U32, LAYERS),
        ("llama4.context_length", U32, 32768),
        ("llama4.embedding_length", U32, HIDDEN),
        ("llama4.feed_forward_length", U32, MLP),
        ("llama4.attention.head_count", U32, HEADS),
        ("llama4.attention.head_count_kv", U32, KV_HEADS),
        ("llama4.attention.key_length", U32, HEAD_DIM),
        ("llama4.attention.value_length", U32, HEAD_DIM),
        ("llama4.rope.freq_base", F32, 8000000.0),
        ("llama4.attention.layer_norm_rms_epsilon", F32, 1e-5),
        ("llama4.no_rope_layers", ARR, (I32, [1] * LAYERS)),
        ("llama4.use_qk_norm", BOOL, True),
        ("llama4.attention.chunk_size", U32, 8192),
        ("llama4.attention.temperature_tuning", BOOL, False),
        ("tokenizer.ggml.model", STR, "gpt2"),
        ("tokenizer.ggml.pre", STR, "gpt-2"),
        ("tokenizer.ggml.tokens", ARR, (STR, tokens)),
        ("tokenizer.ggml.token_type", ARR, (I32, types)),
        ("tokenizer.ggml.merges", ARR, (STR, merges)),
        ("tokenizer.ggml.bos_token_id", U32, 0),
        ("tokenizer.ggml.eos_token_id", U32, 2),
        ("tokenizer.chat_template", STR, template),
    ]


GGUF_NAMES = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight"}
GGUF_LAYER = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm", "self_attn.q_proj": "attn_q",
              "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
              "feed_forward.gate_proj": "ffn_gate", "feed_forward.up_proj": "ffn_up", "feed_forward.down_proj": "ffn_down"}


def gguf_name(name):
    if name in GGUF_NAMES:
        return GGUF_NAMES[name]
    parts = name.split(".")
    return "blk.%s.%s.weight" % (parts[2], GGUF_LAYER[".".join(parts[3:-1])])


def gguf_tensors():
    """[{name, dims (ggml order), type, data}] of the control GGUF."""
    return [{"name": gguf_name(n), "dims": list(reversed(s)), "type": GGML_BF16, "data": d} for n, s, d in tiny_tensors()]


def gguf_bytes(metadata=None, tensors=None, magic=b"GGUF", version=3, tensor_count=None, kv_count=None,
               raw_kv=b"", alignment=32, offsets=None, header_only=False):
    """A GGUF file. `metadata` [(key, kind, value)], `raw_kv` extra pre-encoded pairs appended (counted), `offsets`
    overrides tensor offsets (list, None entries keep the computed one); `header_only` leaves out the data section (for
    defects the reader meets before it)."""
    metadata = gguf_metadata() if metadata is None else metadata
    tensors = gguf_tensors() if tensors is None else tensors
    pairs = b"".join(kv(*m) for m in metadata) + raw_kv
    count = len(metadata) + (1 if raw_kv else 0)
    infos, data = b"", b""
    for index, t in enumerate(tensors):
        data += b"\0" * (-len(data) % alignment)
        offset = len(data) if offsets is None or offsets[index] is None else offsets[index]
        infos += gstr(t["name"]) + struct.pack("<I", len(t["dims"])) + b"".join(struct.pack("<Q", d) for d in t["dims"])
        infos += struct.pack("<IQ", t["type"], offset)
        data += t["data"]
    head = magic + struct.pack("<IQQ", version, len(tensors) if tensor_count is None else tensor_count,
                               count if kv_count is None else kv_count) + pairs + infos
    if header_only:
        return head
    return head + b"\0" * (-len(head) % alignment) + data


def replace(metadata, key, kind, value):
    """A copy of `metadata` with `key` set (appended when absent; removed when kind is None)."""
    result = [m for m in metadata if m[0] != key] if kind is None else [(k, kind, value) if k == key else (k, t, v) for k, t, v in metadata]
    if kind is not None and not any(m[0] == key for m in metadata):
        result.append((key, kind, value))
    return result


# ---------------------------------------------------------------------------------------------------------------------
# writing


def write(path, content):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(content if isinstance(content, bytes) else content.encode())


def write_json(path, value):
    write(path, json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def link(directory, name, target_directory):
    """directory/name -> the same file in target_directory, as a relative symlink."""
    os.makedirs(directory, exist_ok=True)
    os.symlink(os.path.relpath(os.path.join(target_directory, name), directory), os.path.join(directory, name))


def case_dir(name, base, files, skip=()):
    """cases/name: `files` {file: bytes or JSON value} written, every other file of `base` linked."""
    directory = os.path.join(OUT, "cases", name)
    for file, content in files.items():
        if isinstance(content, (bytes, str)):
            write(os.path.join(directory, file), content)
        else:
            write_json(os.path.join(directory, file), content)
    for file in sorted(os.listdir(base)):
        if file not in files and file not in skip:
            link(directory, file, base)
    return "%s/cases/%s" % (REL, name)


def add(name, command, expect):
    cases.append({"name": name, "command": command, "expect": expect})


def generate(model):
    return ["generate", "--model", model, "--tokens", "1", "--max-tokens", "1"]


def tokenize(model):
    return ["tokenize", "--model", model, "--text", "hello world"]


MESSAGES = REL + "/messages.json"


def template(model, messages=MESSAGES):
    return ["template", "--model", model, "--messages", messages, "--add-generation-prompt"]


# ---------------------------------------------------------------------------------------------------------------------


def build_controls():
    config = json.load(open(os.path.join(SOURCE, "config.json")))
    config.update(hidden_size=HIDDEN, head_dim=HEAD_DIM, num_attention_heads=HEADS, num_key_value_heads=KV_HEADS,
                  intermediate_size=MLP, intermediate_size_mlp=MLP, num_hidden_layers=LAYERS, no_rope_layers=[1] * LAYERS)
    tensors = tiny_tensors()
    single = os.path.join(OUT, "controls", "tiny-r1")
    write_json(os.path.join(single, "config.json"), config)
    shutil.copy(os.path.join(SOURCE, "generation_config.json"), single)
    write(os.path.join(single, "model.safetensors"), safetensors_bytes(tensors))
    for name in ["tokenizer.json", "tokenizer_config.json"]:
        shutil.copy(os.path.join(TOKENIZER, name), single)

    sharded = os.path.join(OUT, "controls", "tiny-r1-sharded")
    for name in ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"]:
        link(sharded, name, single)
    half = len(tensors) // 2
    shards = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    weight_map = {}
    for shard, part in zip(shards, [tensors[:half], tensors[half:]]):
        write(os.path.join(sharded, shard), safetensors_bytes(part))
        weight_map.update({name: shard for name, _, _ in part})
    write_json(os.path.join(sharded, "model.safetensors.index.json"), {"metadata": {"total_size": sum(len(d) for _, _, d in tensors)},
                                                                       "weight_map": dict(sorted(weight_map.items()))})
    write(os.path.join(OUT, "controls", "tiny-r1.gguf"), gguf_bytes())
    write_json(os.path.join(OUT, "messages.json"), [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi!"}])

    for model in [REL + "/controls/tiny-r1", REL + "/controls/tiny-r1-sharded", REL + "/controls/tiny-r1.gguf"]:
        controls.append(generate(model))
        controls.append(["generate", "--model", model, "--prompt", "hello world", "--chat", "--max-tokens", "2", "--json"])
        controls.append(tokenize(model))
    controls.append(template(REL + "/controls/tiny-r1"))
    controls.append(template(REL + "/controls/tiny-r1.gguf"))
    return config, tensors, single, sharded, shards, weight_map


def safetensors_cases(tensors, single):
    def st(name, expect, blob):
        add(name, generate(case_dir(name, single, {"model.safetensors": blob})), expect)

    def edit(function):
        return safetensors_bytes(tensors, header_edit=function)

    good = safetensors_bytes(tensors)
    first = "model.embed_tokens.weight"
    st("st-empty", "model.safetensors: field 'header length'", b"")
    st("st-short-length", "model.safetensors: field 'header length'", good[:5])
    st("st-header-length-2^63", "model.safetensors: field 'header length'", safetensors_bytes(tensors, declared_length=1 << 63))
    st("st-header-length-past-end", "model.safetensors: field 'header length'", safetensors_bytes(tensors, declared_length=len(good)))
    st("st-header-not-json", "model.safetensors: field '(document)'", safetensors_bytes(tensors, raw_header=b'{"model.embed_tokens.weight": {"dtype": '))
    st("st-header-array", "model.safetensors: field '(document)'", safetensors_bytes(tensors, raw_header=b"[1, 2, 3]"))
    st("st-entry-not-object", "model.safetensors: field '%s'" % first, edit(lambda h: h.update({first: "BF16"})))
    st("st-dtype-unknown", "model.safetensors: field '%s.dtype'" % first, edit(lambda h: h[first].update(dtype="Q7")))
    st("st-dtype-unsupported", "model.safetensors: unsupported: dtype F8_E4M3 of tensor '%s' (field '%s.dtype'" % (first, first), edit(lambda h: h[first].update(dtype="F8_E4M3")))
    st("st-dtype-number", "model.safetensors: field '%s.dtype'" % first, edit(lambda h: h[first].update(dtype=16)))
    st("st-shape-negative", "model.safetensors: field '%s.shape'" % first, edit(lambda h: h[first].update(shape=[-384, -16])))
    st("st-shape-huge", "model.safetensors: field '%s.shape'" % first, edit(lambda h: h[first].update(shape=[1 << 40, 1 << 40])))
    st("st-shape-float", "model.safetensors: field '%s.shape[0]'" % first, edit(lambda h: h[first].update(shape=[384.5, 16])))
    st("st-offsets-reversed", "model.safetensors: field '%s.data_offsets'" % first, edit(lambda h: h[first].update(data_offsets=[12288, 0])))
    st("st-offsets-shape-mismatch", "model.safetensors: field '%s.data_offsets'" % first, edit(lambda h: h[first].update(shape=[383, 16])))
    st("st-truncated-data", "model.safetensors: field 'model.norm.weight.data_offsets'", good[:-10])
    st("st-overlap", "model.safetensors: field 'model.layers.0.input_layernorm.weight.data_offsets'",
       edit(lambda h: h["model.layers.0.input_layernorm.weight"].update(data_offsets=[32, 64])))
    st("st-hole", "model.safetensors: field '(data)'", good + b"\0" * 64)
    st("st-gap", "model.safetensors: field 'model.layers.0.input_layernorm.weight.data_offsets'",
       edit(lambda h: [h[n].update(data_offsets=[o + 2 for o in h[n]["data_offsets"]]) for n in h if n.startswith("model.layers.0.in")]))
    st("st-metadata-not-strings", "model.safetensors: field '__metadata__.format'", edit(lambda h: h.update({"__metadata__": {"format": 1}})))


def config_cases(config, single):
    def cfg(name, expect, changes=None, remove=(), command=generate, raw=None):
        value = dict(config)
        value.update(changes or {})
        for key in remove:
            value.pop(key, None)
        model = case_dir(name, single, {"config.json": raw if raw is not None else value})
        add(name, command(model), expect)

    cfg("cfg-not-json", "config.json: field '(document)'", raw='{"model_type": "llama4_text", "hidden_size": 1')
    cfg("cfg-not-object", "config.json: field '(document)'", raw='[{"model_type": "llama4_text"}]\n')
    cfg("cfg-deep-nesting", "config.json: field '(document)'", raw="[" * 5000 + "]" * 5000)
    cfg("cfg-unknown-model-type", "config.json: unsupported: model_type \"gpt_neox\"", {"model_type": "gpt_neox"})
    cfg("cfg-model-type-missing", "config.json: field 'model_type'", remove=["model_type"])
    cfg("cfg-hidden-size-string", "config.json: field 'hidden_size'", {"hidden_size": "16"})
    cfg("cfg-hidden-size-zero", "config.json: field 'hidden_size'", {"hidden_size": 0})
    cfg("cfg-layers-huge", "config.json: field 'num_hidden_layers'", {"num_hidden_layers": 1 << 40})
    cfg("cfg-heads-not-dividing", "config.json: field 'num_attention_heads': expected a positive integer dividing hidden_size 16, found 3",
        {"num_attention_heads": 3}, remove=["head_dim"])
    cfg("cfg-kv-heads-not-dividing", "config.json: field 'num_key_value_heads'", {"num_key_value_heads": 3, "num_attention_heads": 4})
    cfg("cfg-head-dim-odd", "config.json: field 'head_dim'", {"head_dim": 7})
    cfg("cfg-eps-negative", "config.json: field 'rms_norm_eps'", {"rms_norm_eps": -1})
    cfg("cfg-rope-theta-huge", "config.json: field 'rope_theta'", {"rope_theta": 1e300})
    cfg("cfg-rope-theta-string", "config.json: field 'rope_theta'", {"rope_theta": "high"})
    cfg("cfg-rope-scaling-unknown", "config.json: unsupported: rope_scaling.rope_type \"yarn\"", {"rope_scaling": {"rope_type": "yarn", "factor": 4.0}})
    cfg("cfg-moe", "config.json: unsupported: mixture-of-experts", {"moe_layers": [0]})
    cfg("cfg-no-rope-layers-short", "config.json: field 'no_rope_layers'", {"no_rope_layers": [1]})
    cfg("cfg-eos-outside-vocab", "config.json: field 'eos_token_id'", {"eos_token_id": [1, 384]})
    cfg("cfg-bos-negative", "config.json: field 'bos_token_id'", {"bos_token_id": -1})
    cfg("cfg-max-positions-huge", "config.json: field 'max_position_embeddings'", {"max_position_embeddings": 1 << 40})
    cfg("cfg-more-layers-than-weights", "model.safetensors: field 'model.layers.2.input_layernorm.weight': tensor missing (expected shape [16] = [hidden_size] from the configuration; layer 2 of num_hidden_layers 3)",
        {"num_hidden_layers": 3, "no_rope_layers": [1, 1, 1]})
    cfg("cfg-hidden-vs-weights", "model.safetensors: field 'model.embed_tokens.weight'", {"hidden_size": 32, "head_dim": 16})
    cfg("cfg-vocab-vs-embedding", "model.safetensors: field 'model.embed_tokens.weight': shape [384, 16], expected [400, 16] = [vocab_size, hidden_size]", {"vocab_size": 400})
    cfg("cfg-mlp-vs-weights", "model.safetensors: field 'model.layers.0.feed_forward.gate_proj.weight': shape [32, 16], expected [64, 16] = [intermediate_size_mlp, hidden_size]", {"intermediate_size_mlp": 64})
    cfg("cfg-kv-cache-too-large", "contextLength", {"max_position_embeddings": 1 << 30},
        command=lambda m: generate(m) + ["--context-length", str(1 << 30)])

    directory = case_dir("cfg-is-directory", single, {"config.json/README": "config.json is a directory here\n"}, skip=("config.json",))
    add("cfg-is-directory", generate(directory), "config.json: field '(file)': is a directory")

    def gen(name, expect, value):
        add(name, generate(case_dir(name, single, {"generation_config.json": value})), expect)

    gen("gen-eos-outside-vocab", "generation_config.json: field 'eos_token_id'", {"eos_token_id": [2, 100000]})
    gen("gen-bos-outside-vocab", "generation_config.json: field 'bos_token_id'", {"bos_token_id": 384})
    gen("gen-eos-string", "generation_config.json: field 'eos_token_id'", {"eos_token_id": "<|eot_id|>"})


def index_cases(sharded, shards, weight_map):
    def index(name, expect, value=None, raw=None, files=None):
        content = dict(files or {})
        content["model.safetensors.index.json"] = raw if raw is not None else {"weight_map": value}
        add(name, generate(case_dir(name, sharded, content)), expect)

    def moved(key, target):
        value = dict(weight_map)
        value[key] = target
        return value

    first = "model.embed_tokens.weight"
    index("idx-path-traversal", "model.safetensors.index.json: field 'weight_map.%s'" % first, moved(first, "../../etc/passwd"))
    index("idx-absolute-path", "model.safetensors.index.json: field 'weight_map.%s'" % first, moved(first, "/etc/passwd"))
    index("idx-hidden-file", "model.safetensors.index.json: field 'weight_map.%s'" % first, moved(first, ".."))
    index("idx-missing-shard", "model-00003-of-00003.safetensors", moved(first, "model-00003-of-00003.safetensors"))
    index("idx-not-object", "model.safetensors.index.json: field 'weight_map'", raw={"weight_map": [shards[0]]})
    index("idx-file-number", "model.safetensors.index.json: field 'weight_map.%s'" % first, moved(first, 7))
    index("idx-tensor-absent", "field 'model.layers.9.input_layernorm.weight'", moved("model.layers.9.input_layernorm.weight", shards[0]))
    index("idx-not-json", "model.safetensors.index.json: field '(document)'", raw='{"weight_map": {')
    both = read_safetensors(os.path.join(OUT, "controls", "tiny-r1-sharded", shards[0]))
    duplicate = [(n, s, d) for n, (_, s, d) in sorted(both.items())] + [("model.norm.weight", [HIDDEN], b"\0" * (2 * HIDDEN))]
    index("idx-tensor-in-two-shards", "field 'model.norm.weight'", weight_map, files={shards[0]: safetensors_bytes(duplicate)})


def tokenizer_cases(single):
    base = json.load(open(os.path.join(single, "tokenizer.json")))
    base_config = json.load(open(os.path.join(single, "tokenizer_config.json")))
    only = ("config.json", "generation_config.json", "model.safetensors")

    def tok(name, expect, edit=None, raw=None, command=tokenize, skip=only):
        value = json.loads(json.dumps(base))
        if edit:
            edit(value)
        add(name, command(case_dir(name, single, {"tokenizer.json": raw if raw is not None else value}, skip=skip)), expect)

    tok("tok-truncated", "tokenizer.json: field '(document)'", raw=json.dumps(base)[:5000])
    tok("tok-deep-nesting", "tokenizer.json: field '(document)'", raw='{"model": ' + "[" * 5000 + "]" * 5000 + "}")
    tok("tok-model-missing", "tokenizer.json: field 'model'", lambda t: t.pop("model"))
    tok("tok-unigram", "tokenizer.json: unsupported: model.type \"Unigram\"", lambda t: t["model"].update(type="Unigram"))
    tok("tok-vocab-id-negative", "tokenizer.json: field 'model.vocab[\"he\"]'", lambda t: t["model"]["vocab"].update(he=-5))
    tok("tok-vocab-id-huge", "tokenizer.json: field 'model.vocab[\"he\"]'", lambda t: t["model"]["vocab"].update(he=1 << 40))
    tok("tok-sparse-ids", "tokenizer.json: field 'model.vocab': token id 16777215 leaves more than 65536 ids unused",
        lambda t: t["model"]["vocab"].update(zz=16777215))
    tok("tok-merge-unknown-token", "tokenizer.json: field 'model.merges[0]'", lambda t: t["model"]["merges"].__setitem__(0, ["h", "zz"]))
    tok("tok-merge-not-pair", "tokenizer.json: field 'model.merges[1]'", lambda t: t["model"]["merges"].__setitem__(1, ["h", "e", "x"]))
    tok("tok-added-id-huge", "tokenizer.json: field 'added_tokens[0].id'", lambda t: t["added_tokens"][0].update(id=1 << 30))
    tok("tok-added-content-empty", "tokenizer.json: field 'added_tokens[1].content'", lambda t: t["added_tokens"][1].update(content=""))
    tok("tok-post-processor-unknown-id", "tokenizer.json: field 'post_processor'",
        lambda t: t["post_processor"]["special_tokens"]["<|begin_of_text|>"].update(ids=[99999]))
    tok("tok-pre-tokenizer-unknown", "tokenizer.json: unsupported: pre_tokenizer type \"Metaspace\"",
        lambda t: t.update(pre_tokenizer={"type": "Metaspace", "replacement": "_"}))
    tok("tok-beyond-model-vocab", "tokenizer.json: field 'model.vocab'",
        lambda t: t["model"]["vocab"].update({"zz": 500}),
        command=lambda m: ["generate", "--model", m, "--prompt", "hello", "--max-tokens", "1"], skip=())

    def tcfg(name, expect, edit=None, raw=None, command=tokenize, skip=only):
        value = json.loads(json.dumps(base_config))
        if edit:
            edit(value)
        add(name, command(case_dir(name, single, {"tokenizer_config.json": raw if raw is not None else value}, skip=skip)), expect)

    tcfg("tokcfg-not-json", "tokenizer_config.json: field '(document)'", raw='{"bos_token": "<|begin')
    tcfg("tokcfg-bos-number", "tokenizer_config.json: field 'bos_token'", lambda c: c.update(bos_token=0))
    tcfg("tokcfg-added-tokens-decoder-outside", "tokenizer_config.json: field 'added_tokens_decoder.99999'",
         lambda c: c.update(added_tokens_decoder={"99999": {"content": "<|x|>", "special": True}}))
    tcfg("tokcfg-added-tokens-decoder-key", "tokenizer_config.json: field 'added_tokens_decoder.first'",
         lambda c: c.update(added_tokens_decoder={"first": {"content": "<|begin_of_text|>", "special": True}}))
    tcfg("tokcfg-chat-template-number", "tokenizer_config.json: field 'chat_template'", lambda c: c.update(chat_template=5),
         command=template, skip=())


def template_cases(single):
    base_config = json.load(open(os.path.join(single, "tokenizer_config.json")))

    def tpl(name, expect, source):
        value = dict(base_config, chat_template=source)
        add(name, template(case_dir(name, single, {"tokenizer_config.json": value}, skip=("config.json", "generation_config.json", "model.safetensors"))), expect)

    tpl("tpl-syntax-error", "tokenizer_config.json chat_template: line 1 column", "{% for message in messages %}{{ message['content'] }")
    tpl("tpl-unknown-filter", "tokenizer_config.json chat_template: line 1 column", "{{ messages | explode }}")
    tpl("tpl-recursion", "tokenizer_config.json chat_template: line 1 column", "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}")
    tpl("tpl-gigantic-string", "tokenizer_config.json chat_template: line 1 column",
        "{% set ns = namespace(s='xxxxxxxx') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s | length }}")
    tpl("tpl-gigantic-list", "tokenizer_config.json chat_template: line 1 column",
        "{% set ns = namespace(s=[1]) %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s | length }}")
    tpl("tpl-endless-loops", "tokenizer_config.json chat_template: line 1 column",
        "{% for i in range(1000000) %}{% for j in range(1000000) %}{% endfor %}{% endfor %}")
    tpl("tpl-gigantic-repeat", "tokenizer_config.json chat_template: line 1 column", "{{ 'x' * 1000000000000 }}")
    tpl("tpl-exponential-macro", "tokenizer_config.json chat_template: line 1 column",
        "{% macro f(n) %}{% if n < 40 %}{{ f(n + 1) }}{{ f(n + 1) }}{% endif %}{% endmacro %}{{ f(0) }}")
    tpl("tpl-quadratic-append", "tokenizer_config.json chat_template: line 1 column",
        "{% set ns = namespace(s='') %}{% for i in range(1000000) %}{% set ns.s = ns.s + 'abcdefghijklmnopqrstuvwxyz0123456789' %}{% endfor %}")
    tpl("tpl-join-bomb", "tokenizer_config.json chat_template: line 1 column",
        "{% set s = 'x' * 16000000 %}{{ ([s] * 1000000) | join | length }}")
    tpl("tpl-print-bomb", "tokenizer_config.json chat_template: line 1 column", "{% set s = 'x' * 16000000 %}{{ [s] * 1000000 }}")
    tpl("tpl-tojson-bomb", "tokenizer_config.json chat_template: line 1 column",
        "{{ (range(100000) | list) | tojson(indent='x' * 16000000) | length }}")
    tpl("tpl-replace-bomb", "tokenizer_config.json chat_template: line 1 column", "{{ ('x' * 1000000) | replace('x', 'y' * 1000000) | length }}")
    tpl("tpl-repeat-overflow", "tokenizer_config.json chat_template: line 1 column", "{{ 'ab' * 4611686018427387904 }}")
    tpl("tpl-list-repeat-overflow", "tokenizer_config.json chat_template: line 1 column", "{{ [1, 2] * 4611686018427387904 }}")
    tpl("tpl-center-huge", "tokenizer_config.json chat_template: line 1 column", "{{ 'x' | center(1000000000000) }}")
    tpl("tpl-indent-huge", "tokenizer_config.json chat_template: line 1 column", "{{ 'a\\nb' | indent(1000000000000) }}")
    tpl("tpl-raise-exception", "tokenizer_config.json chat_template: line 1 column", "{{ raise_exception('hostile template') }}")
    tpl("tpl-deep-nesting", "tokenizer_config.json chat_template: line 1 column", "{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}")
    directory = case_dir("tpl-jinja-not-utf8", single, {"chat_template.jinja": b"{{ messages }}\xff\xfe"},
                         skip=("config.json", "generation_config.json", "model.safetensors"))
    add("tpl-jinja-not-utf8", template(directory), "chat_template.jinja: field '(document)'")
    add("msg-not-list", template(REL + "/controls/tiny-r1", case_file("msg-not-list.json", '{"role": "user"}')), "msg-not-list.json: field '(document)'")
    add("msg-role-missing", template(REL + "/controls/tiny-r1", case_file("msg-role-missing.json", '[{"content": "hi"}]')), "msg-role-missing.json: field '[0].role'")


def case_file(name, content):
    write(os.path.join(OUT, "cases", name), content)
    return "%s/cases/%s" % (REL, name)


def gguf_cases():
    good = gguf_bytes()
    meta = gguf_metadata()

    def g(name, expect, blob, command=generate):
        add(name, command(case_file(name + ".gguf", blob)), expect)

    def header_only(*args, **options):
        return gguf_bytes(*args, header_only=True, **options)

    g("gguf-empty", ".gguf: field '(file)'", b"")
    g("gguf-bad-magic", ".gguf: field '(file)'", b"GGUX" + good[4:4096])
    g("gguf-truncated-header", ".gguf: field 'tensor_count'", good[:12])
    g("gguf-truncated-metadata", ".gguf: field 'tokenizer.ggml.tokens'", good[:1000])
    g("gguf-version-99", ".gguf: unsupported: GGUF version 99", header_only(version=99))
    g("gguf-tensor-count-2^62", ".gguf: field 'tensor_count'", header_only(tensor_count=1 << 62))
    g("gguf-kv-count-2^40", ".gguf: field 'metadata_kv_count'", header_only(kv_count=1 << 40))
    g("gguf-key-length-2^63", ".gguf: field 'metadata[25].key'", header_only(raw_kv=struct.pack("<Q", 1 << 63) + b"general.name"))
    g("gguf-string-length-2^63", ".gguf: field 'general.name'",
      header_only(raw_kv=gstr("general.name") + struct.pack("<IQ", STR, 1 << 63) + b"x"))
    g("gguf-array-count-2^62", ".gguf: field 'general.tags'",
      header_only(raw_kv=gstr("general.tags") + struct.pack("<IIQ", ARR, U64, 1 << 62)))
    nested = struct.pack("<I", U32) + struct.pack("<Q", 0)
    for _ in range(12):
        nested = struct.pack("<I", ARR) + struct.pack("<Q", 1) + nested
    g("gguf-nested-arrays", ".gguf: field 'general.nested'", header_only(raw_kv=gstr("general.nested") + struct.pack("<I", ARR) + nested))
    g("gguf-unknown-value-type", ".gguf: field 'general.mystery'", header_only(raw_kv=gstr("general.mystery") + struct.pack("<II", 13, 0)))
    g("gguf-unknown-array-type", ".gguf: field 'general.mystery'", header_only(raw_kv=gstr("general.mystery") + struct.pack("<IIQ", ARR, 77, 1)))
    g("gguf-bool-byte-2", ".gguf: field 'llama4.use_qk_norm'", gguf_bytes(header_only=True).replace(
        gstr("llama4.use_qk_norm") + struct.pack("<IB", BOOL, 1), gstr("llama4.use_qk_norm") + struct.pack("<IB", BOOL, 2)))
    g("gguf-duplicate-key", ".gguf: field 'general.architecture'", header_only(meta + [("general.architecture", STR, "llama4")]))
    g("gguf-alignment-48", ".gguf: field 'general.alignment'", header_only(replace(meta, "general.alignment", U32, 48), alignment=48))
    g("gguf-alignment-zero", ".gguf: field 'general.alignment'", header_only(replace(meta, "general.alignment", U32, 0)))
    g("gguf-alignment-string", ".gguf: field 'general.alignment'", header_only(replace(meta, "general.alignment", STR, "32")))
    tensors = gguf_tensors()
    g("gguf-n-dims-5", ".gguf: field 'tensor token_embd.weight.n_dims'",
      gguf_bytes(tensors=[dict(tensors[0], dims=[16, 384, 1, 1, 1])] + tensors[1:]))
    g("gguf-dim-2^40", ".gguf: field 'tensor token_embd.weight.dims'", gguf_bytes(tensors=[dict(tensors[0], dims=[16, 1 << 40])] + tensors[1:]))
    g("gguf-elements-overflow", ".gguf: field 'tensor token_embd.weight.dims'",
      gguf_bytes(tensors=[dict(tensors[0], dims=[1 << 30, 1 << 30, 1 << 30, 1])] + tensors[1:]))
    g("gguf-duplicate-tensor", ".gguf: field 'tensor blk.0.attn_norm.weight'", gguf_bytes(tensors=tensors + [tensors[1]]))
    g("gguf-tensor-past-end", ".gguf: field 'tensor output_norm.weight'", good[:-8])
    g("gguf-offset-past-end", ".gguf: field 'tensor blk.0.attn_norm.weight.offset'", gguf_bytes(offsets=[None, 1 << 50] + [None] * (len(tensors) - 2)))
    g("gguf-offset-misaligned", ".gguf: field 'tensor blk.0.attn_norm.weight.offset'", gguf_bytes(offsets=[None, 12290] + [None] * (len(tensors) - 2)))
    g("gguf-overlapping-tensors", ".gguf: field 'tensor blk.0.attn_norm.weight.offset'", gguf_bytes(offsets=[None, 0] + [None] * (len(tensors) - 2)))
    g("gguf-unknown-tensor-type", ".gguf: field 'tensor token_embd.weight.type'", gguf_bytes(tensors=[dict(tensors[0], type=99)] + tensors[1:]))
    g("gguf-unsupported-tensor-type", ".gguf: unsupported: tensor 'token_embd.weight' has type i8",
      gguf_bytes(tensors=[dict(tensors[0], type=24, data=b"\0" * (384 * 16))] + tensors[1:]))
    g("gguf-architecture-unknown", ".gguf: unsupported: general.architecture \"gpt2\"", gguf_bytes(replace(meta, "general.architecture", STR, "gpt2")))
    g("gguf-architecture-number", ".gguf: field 'general.architecture'", gguf_bytes(replace(meta, "general.architecture", U32, 4)))
    g("gguf-block-count-2^40", ".gguf: field 'llama4.block_count'", gguf_bytes(replace(meta, "llama4.block_count", U64, 1 << 40)))
    g("gguf-block-count-more-than-weights", ".gguf: field 'blk.2.attn_norm.weight': tensor missing (expected shape [16] = [llama4.embedding_length] from the configuration; layer 2 of llama4.block_count 3)",
      gguf_bytes(replace(replace(meta, "llama4.block_count", U32, 3), "llama4.no_rope_layers", ARR, (I32, [1, 1, 1]))))
    g("gguf-embedding-length-lie", ".gguf: field 'token_embd.weight'", gguf_bytes(replace(meta, "llama4.embedding_length", U32, 32)))
    g("gguf-head-count-not-dividing", ".gguf: field 'llama4.attention.head_count': expected a positive integer dividing llama4.embedding_length 16, found 3",
      gguf_bytes(replace(replace(replace(meta, "llama4.attention.head_count", U32, 3), "llama4.attention.key_length", None, 0),
                         "llama4.attention.value_length", None, 0)))
    g("gguf-head-count-kv-not-dividing", ".gguf: field 'llama4.attention.head_count_kv'",
      gguf_bytes(replace(replace(meta, "llama4.attention.head_count", U32, 4), "llama4.attention.head_count_kv", U32, 3)))
    g("gguf-context-length-2^40", ".gguf: field 'llama4.context_length'", gguf_bytes(replace(meta, "llama4.context_length", U64, 1 << 40)))
    g("gguf-vocab-size-vs-embedding", ".gguf: field 'token_embd.weight': shape [384, 16], expected [400, 16] = [llama4.vocab_size, llama4.embedding_length]", gguf_bytes(replace(meta, "llama4.vocab_size", U32, 400)))
    g("gguf-bos-outside-vocab", ".gguf: field 'tokenizer.ggml.bos_token_id'", gguf_bytes(replace(meta, "tokenizer.ggml.bos_token_id", U32, 384)))
    g("gguf-eos-outside-vocab", ".gguf: field 'tokenizer.ggml.eos_token_id'", gguf_bytes(replace(meta, "tokenizer.ggml.eos_token_id", U32, 1 << 31)))
    tokens, types, merges, _ = tokenizer_parts()
    g("gguf-tokens-beyond-model-vocab", ".gguf: field 'tokenizer.ggml.tokens'",
      gguf_bytes(replace(replace(meta, "tokenizer.ggml.tokens", ARR, (STR, tokens + ["zz"])), "tokenizer.ggml.token_type", ARR, (I32, types + [1]))),
      command=lambda m: ["generate", "--model", m, "--prompt", "hello", "--max-tokens", "1"])
    g("gguf-token-type-count", ".gguf: field 'tokenizer.ggml.token_type'", gguf_bytes(replace(meta, "tokenizer.ggml.token_type", ARR, (I32, types[:-1]))),
      command=tokenize)
    g("gguf-tokens-not-strings", ".gguf: field 'tokenizer.ggml.tokens'", gguf_bytes(replace(meta, "tokenizer.ggml.tokens", ARR, (I32, list(range(VOCAB))))),
      command=tokenize)
    g("gguf-merge-unknown-token", ".gguf: field 'tokenizer.ggml.merges[0]'", gguf_bytes(replace(meta, "tokenizer.ggml.merges", ARR, (STR, ["h zz"] + merges[1:]))),
      command=tokenize)
    g("gguf-tokenizer-model-unknown", ".gguf: unsupported: tokenizer.ggml.model \"llama\"", gguf_bytes(replace(meta, "tokenizer.ggml.model", STR, "llama")),
      command=tokenize)
    g("gguf-chat-template-broken", ".gguf tokenizer.chat_template: line 1 column", gguf_bytes(replace(meta, "tokenizer.chat_template", STR, "{% if %}")),
      command=template)


def control_cases():
    """The control flags (--grammar, --json-schema, --logit-bias, --ban) on the undamaged tiny model: a missing grammar
    file, a schema that is not JSON (a file and inline), a bias on a piece no token has, a token id outside the
    vocabulary. Each fails before generating, with the file or the option's field named."""
    model = REL + "/controls/tiny-r1"

    def run(*flags):
        return ["generate", "--model", model, "--tokens", "1", "--max-tokens", "1"] + list(flags)

    add("ctl-grammar-missing", run("--grammar", REL + "/cases/ctl-no-such-grammar.gbnf"), "ctl-no-such-grammar.gbnf: --grammar: no such file")
    add("ctl-json-schema-missing", run("--json-schema", REL + "/cases/ctl-no-such-schema.json"), "ctl-no-such-schema.json: --json-schema: no such file")
    add("ctl-json-schema-malformed", run("--json-schema", case_file("ctl-json-schema-malformed.json", '{"type": "object", "properties": ')),
        "ctl-json-schema-malformed.json: field '(json)'")
    add("ctl-json-schema-inline-malformed", run("--json-schema", '{"type": }'), "--json-schema (inline): field '(json)'")
    add("ctl-logit-bias-unknown-piece", run("--logit-bias", "no such piece=1.5"), "invalid argument 'logitBiasPieces'")
    add("ctl-ban-unknown-piece", run("--ban", "no such piece"), "invalid argument 'logitBiasPieces'")
    add("ctl-logit-bias-id-outside", run("--logit-bias", "384=2"), "invalid argument 'logitBias'")

    # Hostile grammars and schemas: each is refused at compile time, quickly, with the rule, line and column (or the
    # schema's JSON pointer, or the file).
    def grammar(name, text, expect):
        add(name, run("--grammar", case_file(name + ".gbnf", text)), expect)

    grammar("grm-left-recursion", 'root ::= root "a" | "b"', "left recursion: rule 'root' can begin with itself")
    grammar("grm-indirect-left-recursion", 'root ::= a "x"\na ::= b | "y"\nb ::= "" root', "left recursion")
    grammar("grm-empty-language", 'root ::= a\na ::= "x" a', "grammar: line 1 column 1 (rule 'root'): the grammar matches no string")
    grammar("grm-huge-repetition", 'root ::= "a"{0,1000000000}', "repetition count 1000000000 is above the limit of 10000")
    grammar("grm-deep-nesting", "root ::= " + "(" * 10000 + '"a"' + ")" * 10000, "parentheses nested more than 256 deep")
    grammar("grm-undefined-rule", "root ::= missing", "grammar: line 1 column 10 (rule 'root'): undefined rule 'missing'")
    grammar("grm-unterminated-class", "root ::= [a-", "unterminated character class")
    grammar("grm-unterminated-string", 'root ::= "abc', "grammar: line 1 column")
    add("grm-invalid-utf8", run("--grammar", case_file("grm-invalid-utf8.gbnf", b'root ::= "\xff\xfe"')),
        "grm-invalid-utf8.gbnf: field '(text)': not UTF-8")
    add("sch-unknown-keyword", run("--json-schema", '{"type": "string", "pattern": "a+"}'),
        "JSON Schema at '#/pattern': unsupported keyword 'pattern'")
    add("sch-deep-nesting", run("--json-schema", case_file("sch-deep-nesting.json", "[" * 5000)),
        "sch-deep-nesting.json: field '(json)': not valid JSON at byte 512")
    add("sch-bad-bound", run("--json-schema", '{"type": "integer", "minimum": "zero"}'), "JSON Schema at '#/minimum'")
    add("sch-huge-min-items", run("--json-schema", '{"type": "array", "minItems": 100000000}'), "JSON Schema at '#/minItems'")


# ---------------------------------------------------------------------------------------------------------------------
# MLX (mlx-lm's affine quantization: U32 codes + scales + biases; the real format is proven by the fixtures of
# scripts/make_mlx_fixtures.py, this only damages a tiny valid instance of it)


def bf16_to_float(blob):
    return [struct.unpack("<f", b"\0\0" + blob[i : i + 2])[0] for i in range(0, len(blob), 2)]


def float_to_bf16(value):
    bits = struct.unpack("<I", struct.pack("<f", value))[0]
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16  # round to nearest even
    return struct.pack("<H", bits)


def mlx_quantize(shape, blob, bits=4, group=32):
    """(words, scales, biases) bytes of a [rows, k] BF16 matrix in MLX's affine format (codes little-endian in U32)."""
    rows, k = shape
    values = bf16_to_float(blob)
    words, scales, biases = b"", b"", b""
    top = (1 << bits) - 1
    for r in range(rows):
        codes = []
        for g in range(0, k, group):
            chunk = values[r * k + g : r * k + g + group]
            low, high = min(chunk), max(chunk)
            scale_bytes, bias_bytes = float_to_bf16(max(high - low, 1e-6) / top), float_to_bf16(low)
            scale, bias = bf16_to_float(scale_bytes)[0], bf16_to_float(bias_bytes)[0]
            codes += [min(top, max(0, round((v - bias) / scale))) for v in chunk]
            scales += scale_bytes
            biases += bias_bytes
        stream = sum(c << (bits * i) for i, c in enumerate(codes))
        words += stream.to_bytes(k * bits // 8, "little")
    return words, scales, biases


MLX_RECIPE = {"group_size": 32, "bits": 4, "mode": "affine"}


def mlx_tensors(tensors):
    """The tiny model with every down_proj (the only matrices whose rows, MLP = 32, hold a whole group) quantized."""
    out = []
    for name, shape, blob in tensors:
        if name.endswith("down_proj.weight"):
            words, scales, biases = mlx_quantize(shape, blob)
            module = name[: -len(".weight")]
            out += [(name, [shape[0], shape[1] * 4 // 32], words, "U32"), (module + ".scales", [shape[0], shape[1] // 32], scales),
                    (module + ".biases", [shape[0], shape[1] // 32], biases)]
        else:
            out.append((name, shape, blob))
    return out


def mlx_cases(config, tensors, single):
    """A tiny MLX directory that loads (a control) and one defect per case: recipes that are not MLX affine ones,
    missing or misshapen scales and biases, packed codes without a recipe or with one that leaves the module float."""
    quantized = mlx_tensors(tensors)
    control = os.path.join(OUT, "controls", "tiny-r1-mlx")
    mlx_config = dict(config, quantization=MLX_RECIPE, quantization_config=MLX_RECIPE)
    write_json(os.path.join(control, "config.json"), mlx_config)
    write(os.path.join(control, "model.safetensors"), safetensors_bytes(quantized))
    for name in ["generation_config.json", "tokenizer.json", "tokenizer_config.json"]:
        link(control, name, single)
    model = REL + "/controls/tiny-r1-mlx"
    controls.append(generate(model))
    controls.append(["inspect", "--model", model])

    def recipe(name, expect, quantization):
        value = dict(config)
        if quantization is not None:
            value.update(quantization=quantization)
        add(name, generate(case_dir(name, control, {"config.json": value})), expect)

    module = "model.layers.0.feed_forward.down_proj"
    recipe("mlx-mode-mxfp4", 'config.json: unsupported: MLX quantization mode "mxfp4"', dict(MLX_RECIPE, mode="mxfp4"))
    recipe("mlx-bits-7", "config.json: field 'quantization.bits': 7 is not an MLX affine bit width", dict(MLX_RECIPE, bits=7))
    recipe("mlx-group-48", "config.json: field 'quantization.group_size': 48 is not an MLX group size", dict(MLX_RECIPE, group_size=48))
    recipe("mlx-no-recipe", "config.json: field 'quantization': missing: %s.weight" % module, None)
    recipe("mlx-module-false", "config.json: field 'quantization.%s': says the module is not quantized" % module,
           dict(MLX_RECIPE, **{module: False}))
    recipe("mlx-module-number", "config.json: field 'quantization.%s': expected a module's" % module, dict(MLX_RECIPE, **{module: 4}))
    recipe("mlx-bits-vs-words", "model.safetensors: field '%s.weight.shape'" % module, dict(MLX_RECIPE, bits=8))

    def weights(name, expect, kept):
        add(name, generate(case_dir(name, control, {"model.safetensors": safetensors_bytes(kept)})), expect)

    weights("mlx-scales-missing", "model.safetensors: field '%s.scales': missing" % module,
            [t for t in quantized if t[0] != module + ".scales"])
    weights("mlx-biases-missing", "model.safetensors: field '%s.biases': missing" % module,
            [t for t in quantized if t[0] != module + ".biases"])
    weights("mlx-scales-shape", "model.safetensors: field '%s.scales.shape'" % module,
            [(n, [s[1], s[0]], b) if n == module + ".scales" else (n, s, b, *d) for n, s, b, *d in quantized])
    weights("mlx-u32-norm", "model.safetensors: field 'model.norm.weight.shape'",
            [(n, [s[0] // 2], b, "U32") if n == "model.norm.weight" else (n, s, b, *d) for n, s, b, *d in quantized])


def main():
    for generated in ["cases", "controls"]:
        shutil.rmtree(os.path.join(OUT, generated), ignore_errors=True)
    config, tensors, single, sharded, shards, weight_map = build_controls()
    safetensors_cases(tensors, single)
    config_cases(config, single)
    index_cases(sharded, shards, weight_map)
    tokenizer_cases(single)
    template_cases(single)
    gguf_cases()
    control_cases()
    mlx_cases(config, tensors, single)
    names = [c["name"] for c in cases]
    assert len(names) == len(set(names)), "duplicate case names"
    write_json(os.path.join(OUT, "cases.json"), {
        "about": "Generated by scripts/make_hostile_corpus.py; run by Tests/hostile/test_hostile_cli.py. Each case must "
                 "exit 1 within a second with one stderr line 'mobilellm: error: ...' containing 'expect'; controls exit 0.",
        "controls": controls,
        "cases": cases,
    })
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(OUT) for f in fs if not os.path.islink(os.path.join(d, f)))
    print("Tests/hostile: %d cases, %d controls, %d bytes" % (len(cases), len(controls), size))


if __name__ == "__main__":
    main()
