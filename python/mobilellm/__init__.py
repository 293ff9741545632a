"""Python bindings for mobilellm, an embeddable inference engine for MobileLLM-R1 and Llama-architecture models.

Pure ctypes over the C ABI (include/mobilellm.h) of ``libmobilellm.so``, found through, in order: the
``MOBILELLM_LIBRARY`` environment variable, a copy inside this package, then ``.build/release/libmobilellm.so`` of
the repository the package was built from (or lives in).

    import mobilellm
    with mobilellm.Model("Tests/Fixtures/llama4-r1like-bf16-sharded") as model:
        session = model.session(n_ctx=256)
        print(session.generate([0, 169, 380], max_tokens=8, temperature=0).tokens)

Threading: a Model may be shared by sessions on any threads; a Session is used by one thread at a time (a second
thread gets MOBILELLM_ERROR_BUSY); ``Session.cancel()`` is safe from anywhere. The GIL is released during every
library call, so sessions on different threads run in parallel. On the main thread, Ctrl-C (KeyboardInterrupt)
during ``generate`` or an ``eval`` of 64 tokens or more cancels the call, even inside a long prefill, and the KeyboardInterrupt propagates with
the session as before the call (eval) or holding what was fed (generate). Every failure raises
:class:`MobileLLMError` with the library's message; a session stays usable after an error. Integers that do not
fit the C types (token ids, sizes) are refused with MobileLLMError rather than silently wrapped; wrong types raise
TypeError/ValueError.
"""
import ctypes
import json
import operator
import os
import pathlib
import queue
import threading

__all__ = ["MobileLLMError", "Model", "Session", "Generation", "TokenLogprob", "MemoryEstimate", "load_library",
           "abi_version", "version", "estimate_memory", "system_info"]
__version__ = "0.1.0"

ABI_VERSION = 1

# Status codes (enum mobilellm_status_code).
OK = 0
ERROR_INVALID_ARGUMENT = 1
ERROR_INVALID_HANDLE = 2
ERROR_BUFFER_TOO_SMALL = 6
ERROR_CANCELLED = 8
ERROR_NO_TOKENIZER = 10

LOGITS_NONE, LOGITS_LAST, LOGITS_ALL = 0, 1, 2
STOP_REASONS = {1: "eos", 2: "max_tokens", 3: "context_full", 4: "callback", 5: "stop", 6: "cancelled", 7: "grammar"}
CHANNELS = {0: "answer", 1: "reasoning", 2: "marker"}
MAX_TOP_LOGPROBS = 20
BATCH_EVENT_TOKEN, BATCH_EVENT_FINISHED = 1, 2


class MobileLLMError(Exception):
    """A failed library call. ``status`` is the numeric mobilellm_status, ``status_name`` its name, and the
    message is the library's (it names the file, field or argument and the value found)."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.status_name = _lib().mobilellm_status_name(status).decode() if _library is not None else str(status)
        self.message = message


# ---- ctypes mirror of the header ----

_c_size_p = ctypes.POINTER(ctypes.c_size_t)
_c_int32_p = ctypes.POINTER(ctypes.c_int32)
_c_float_p = ctypes.POINTER(ctypes.c_float)
_ProgressCallback = ctypes.CFUNCTYPE(ctypes.c_bool, ctypes.c_float, ctypes.c_void_p)
_TokenCallback = ctypes.CFUNCTYPE(ctypes.c_bool, ctypes.c_int32, ctypes.POINTER(ctypes.c_char), ctypes.c_size_t,
                                  ctypes.c_void_p)
_LogCallback = ctypes.CFUNCTYPE(None, ctypes.c_int32, ctypes.c_char_p, ctypes.c_void_p)


class _ModelParams(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32), ("n_threads", ctypes.c_int32),
                ("default_context_length", ctypes.c_int32), ("quantize", ctypes.c_char_p),
                ("progress_callback", _ProgressCallback), ("progress_user_data", ctypes.c_void_p),
                ("use_mlock", ctypes.c_bool), ("activations", ctypes.c_char_p)]


class _MemoryEstimate(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32), ("n_ctx", ctypes.c_int32), ("kv_cache_type", ctypes.c_int32),
                ("n_threads", ctypes.c_int32), ("weights_mapped_bytes", ctypes.c_uint64),
                ("weights_anonymous_bytes", ctypes.c_uint64), ("kv_bytes_per_position", ctypes.c_uint64),
                ("kv_bytes", ctypes.c_uint64), ("scratch_bytes", ctypes.c_uint64), ("total_bytes", ctypes.c_uint64)]


class _ModelInfo(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32), ("vocab_size", ctypes.c_int32), ("context_length", ctypes.c_int32),
                ("default_context_length", ctypes.c_int32), ("n_layers", ctypes.c_int32),
                ("hidden_size", ctypes.c_int32), ("n_heads", ctypes.c_int32), ("n_kv_heads", ctypes.c_int32),
                ("head_dim", ctypes.c_int32), ("n_threads", ctypes.c_int32), ("bos_token_id", ctypes.c_int32),
                ("n_eos_token_ids", ctypes.c_int32), ("has_tokenizer", ctypes.c_bool),
                ("has_chat_template", ctypes.c_bool), ("is_quantized", ctypes.c_bool),
                ("activations", ctypes.c_char_p)]


class _SessionParams(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32), ("n_ctx", ctypes.c_int32), ("kv_cache_type", ctypes.c_int32)]


class _SamplerParams(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32), ("temperature", ctypes.c_float), ("top_k", ctypes.c_int32),
                ("top_p", ctypes.c_float), ("min_p", ctypes.c_float), ("repetition_penalty", ctypes.c_float),
                ("frequency_penalty", ctypes.c_float), ("presence_penalty", ctypes.c_float),
                ("penalty_window", ctypes.c_int32), ("seed", ctypes.c_uint64), ("use_seed", ctypes.c_bool)]


class _TokenLogprob(ctypes.Structure):
    _fields_ = [("token", ctypes.c_int32), ("logprob", ctypes.c_float), ("n_top", ctypes.c_int32),
                ("top_tokens", ctypes.c_int32 * MAX_TOP_LOGPROBS), ("top_logprobs", ctypes.c_float * MAX_TOP_LOGPROBS)]


class _Piece(ctypes.Structure):
    _fields_ = [("token", ctypes.c_int32), ("channel", ctypes.c_int32), ("text", ctypes.POINTER(ctypes.c_char)),
                ("text_length", ctypes.c_size_t), ("logprob", ctypes.POINTER(_TokenLogprob))]


_PieceCallback = ctypes.CFUNCTYPE(ctypes.c_bool, ctypes.POINTER(_Piece), ctypes.c_void_p)


class _GenerateParams(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32), ("max_tokens", ctypes.c_int32), ("stop_token_ids", _c_int32_p),
                ("n_stop_token_ids", ctypes.c_size_t), ("ignore_eos", ctypes.c_bool), ("callback", _TokenCallback),
                ("user_data", ctypes.c_void_p), ("stop_strings", ctypes.POINTER(ctypes.c_char_p)),
                ("n_stop_strings", ctypes.c_size_t),
                # Output control (appended in ABI v1).
                ("grammar", ctypes.c_char_p), ("json_schema", ctypes.c_char_p), ("logit_bias_tokens", _c_int32_p),
                ("logit_bias_values", _c_float_p), ("n_logit_bias", ctypes.c_size_t), ("n_logprobs", ctypes.c_int32),
                ("raw_logprobs", ctypes.c_bool), ("reasoning", ctypes.c_bool), ("reasoning_budget", ctypes.c_int32),
                ("reasoning_start", ctypes.c_char_p), ("reasoning_end", ctypes.c_char_p),
                ("reasoning_closing", ctypes.c_char_p), ("piece_callback", _PieceCallback),
                ("logit_bias_pieces", ctypes.POINTER(ctypes.c_char_p)), ("logit_bias_piece_values", _c_float_p),
                ("n_logit_bias_pieces", ctypes.c_size_t), ("out_logprobs", ctypes.POINTER(_TokenLogprob)),
                ("out_logprobs_capacity", ctypes.c_size_t)]


class _GenerateResult(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32), ("stop_reason", ctypes.c_int32), ("n_prompt_tokens", ctypes.c_int32),
                ("n_tokens", ctypes.c_int32), ("n_reasoning_tokens", ctypes.c_int32),
                ("reasoning_budget_index", ctypes.c_int32)]


class _ChatParams(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32), ("add_generation_prompt", ctypes.c_bool),
                ("variables_json", ctypes.c_char_p), ("messages_json", ctypes.c_char_p),
                ("template_override", ctypes.c_char_p)]


class _BatchParams(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32), ("max_rows_per_step", ctypes.c_int32), ("n_ctx", ctypes.c_int32),
                ("kv_cache_type", ctypes.c_int32), ("stream_text", ctypes.c_bool), ("keep_logits", ctypes.c_bool)]


class _BatchEvent(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int32), ("sequence", ctypes.c_int32), ("token", ctypes.c_int32),
                ("stop_reason", ctypes.c_int32), ("n_tokens", ctypes.c_int32), ("n_prompt_tokens", ctypes.c_int32),
                ("text", ctypes.POINTER(ctypes.c_char)), ("text_length", ctypes.c_size_t)]


_H = ctypes.c_void_p
_PH = ctypes.POINTER(ctypes.c_void_p)
_SIGNATURES = {
    "mobilellm_abi_version": (ctypes.c_uint32, []),
    "mobilellm_version_string": (ctypes.c_char_p, []),
    "mobilellm_status_name": (ctypes.c_char_p, [ctypes.c_int32]),
    "mobilellm_last_error": (ctypes.c_char_p, []),
    "mobilellm_set_log_callback": (ctypes.c_int32, [_LogCallback, ctypes.c_int32, ctypes.c_void_p]),
    "mobilellm_model_params_init": (None, [ctypes.POINTER(_ModelParams)]),
    "mobilellm_model_load": (ctypes.c_int32, [ctypes.c_char_p, ctypes.POINTER(_ModelParams), _PH]),
    "mobilellm_model_free": (ctypes.c_int32, [_H]),
    "mobilellm_model_get_info": (ctypes.c_int32, [_H, ctypes.POINTER(_ModelInfo)]),
    "mobilellm_model_eos_token_ids": (ctypes.c_int32, [_H, _c_int32_p, ctypes.c_size_t, _c_size_p]),
    "mobilellm_model_get_metadata": (ctypes.c_int32, [_H, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t, _c_size_p]),
    "mobilellm_tokenize": (ctypes.c_int32, [_H, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_bool, ctypes.c_bool, _c_int32_p,
                                            ctypes.c_size_t, _c_size_p]),
    "mobilellm_session_tokenize_prompt": (ctypes.c_int32, [_H, ctypes.c_char_p, ctypes.c_size_t, _c_int32_p,
                                                          ctypes.c_size_t, _c_size_p]),
    "mobilellm_detokenize": (ctypes.c_int32, [_H, _c_int32_p, ctypes.c_size_t, ctypes.c_bool, ctypes.c_char_p,
                                              ctypes.c_size_t, _c_size_p]),
    "mobilellm_chat_params_init": (None, [ctypes.POINTER(_ChatParams)]),
    "mobilellm_apply_chat_template": (ctypes.c_int32, [_H, ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(_ChatParams),
                                                       ctypes.c_char_p, ctypes.c_size_t, _c_size_p]),
    "mobilellm_session_params_init": (None, [ctypes.POINTER(_SessionParams)]),
    "mobilellm_session_create": (ctypes.c_int32, [_H, ctypes.POINTER(_SessionParams), _PH]),
    "mobilellm_session_free": (ctypes.c_int32, [_H]),
    "mobilellm_session_reset": (ctypes.c_int32, [_H]),
    "mobilellm_session_rewind": (ctypes.c_int32, [_H, ctypes.c_int32]),
    "mobilellm_session_position": (ctypes.c_int32, [_H, _c_int32_p]),
    "mobilellm_session_context_length": (ctypes.c_int32, [_H, _c_int32_p]),
    "mobilellm_session_eval": (ctypes.c_int32, [_H, _c_int32_p, ctypes.c_size_t, ctypes.c_int32, _c_float_p,
                                                ctypes.c_size_t]),
    "mobilellm_session_cancel": (ctypes.c_int32, [_H]),
    "mobilellm_session_state_size": (ctypes.c_int32, [_H, _c_size_p]),
    "mobilellm_session_save_state": (ctypes.c_int32, [_H, ctypes.c_void_p, ctypes.c_size_t, _c_size_p]),
    "mobilellm_session_load_state": (ctypes.c_int32, [_H, ctypes.c_void_p, ctypes.c_size_t]),
    "mobilellm_sampler_params_init": (None, [ctypes.POINTER(_SamplerParams)]),
    "mobilellm_generate_params_init": (None, [ctypes.POINTER(_GenerateParams)]),
    "mobilellm_generate_params_init_sized": (None, [ctypes.POINTER(_GenerateParams), ctypes.c_size_t]),
    "mobilellm_session_generate": (ctypes.c_int32, [_H, _c_int32_p, ctypes.c_size_t, ctypes.POINTER(_SamplerParams),
                                                    ctypes.POINTER(_GenerateParams), _c_int32_p, ctypes.c_size_t,
                                                    ctypes.POINTER(_GenerateResult)]),
    "mobilellm_batch_params_init": (None, [ctypes.POINTER(_BatchParams)]),
    "mobilellm_batch_create": (ctypes.c_int32, [_H, ctypes.POINTER(_BatchParams), _PH]),
    "mobilellm_batch_free": (ctypes.c_int32, [_H]),
    "mobilellm_batch_add": (ctypes.c_int32, [_H, _c_int32_p, ctypes.c_size_t, ctypes.POINTER(_SamplerParams),
                                             ctypes.POINTER(_GenerateParams), ctypes.c_int32, _c_int32_p]),
    "mobilellm_batch_step": (ctypes.c_int32, [_H, ctypes.POINTER(_BatchEvent), ctypes.c_size_t, _c_size_p]),
    "mobilellm_batch_cancel_all": (ctypes.c_int32, [_H]),
    "mobilellm_batch_result": (ctypes.c_int32, [_H, ctypes.c_int32, _c_int32_p, ctypes.c_size_t, _c_size_p,
                                                ctypes.POINTER(_GenerateResult)]),
    "mobilellm_batch_result_text": (ctypes.c_int32, [_H, ctypes.c_int32, ctypes.c_char_p, ctypes.c_size_t, _c_size_p]),
    "mobilellm_batch_forget": (ctypes.c_int32, [_H, ctypes.c_int32]),
    "mobilellm_batch_event_pieces": (ctypes.c_int32, [_H, ctypes.c_size_t, ctypes.POINTER(ctypes.POINTER(_Piece)),
                                                      _c_size_p]),
    "mobilellm_batch_result_channel_text": (ctypes.c_int32, [_H, ctypes.c_int32, ctypes.c_int32, ctypes.c_char_p,
                                                             ctypes.c_size_t, _c_size_p]),
    "mobilellm_batch_result_logprobs": (ctypes.c_int32, [_H, ctypes.c_int32, ctypes.POINTER(_TokenLogprob),
                                                         ctypes.c_size_t, _c_size_p]),
    "mobilellm_token_to_piece": (ctypes.c_int32, [_H, ctypes.c_int32, ctypes.c_char_p, ctypes.c_size_t, _c_size_p]),
    "mobilellm_model_estimate_memory": (ctypes.c_int32, [ctypes.c_char_p, ctypes.POINTER(_ModelParams), ctypes.c_int32,
                                                         ctypes.POINTER(_MemoryEstimate)]),
    "mobilellm_session_set_threads": (ctypes.c_int32, [_H, ctypes.c_int32]),
    "mobilellm_batch_set_threads": (ctypes.c_int32, [_H, ctypes.c_int32]),
    "mobilellm_system_info": (ctypes.c_char_p, []),
}

_library = None
_library_lock = threading.Lock()


def _candidates():
    env = os.environ.get("MOBILELLM_LIBRARY")
    if env:
        yield pathlib.Path(env)
        return
    here = pathlib.Path(__file__).resolve().parent
    yield here / "libmobilellm.so"
    roots = [here.parent.parent]  # python/mobilellm -> repository root, when used from the source tree
    try:
        from . import _build_info  # written by the build backend at install time
        roots.append(pathlib.Path(_build_info.REPO_ROOT))
    except ImportError:
        pass
    for root in roots:
        yield root / ".build" / "release" / "libmobilellm.so"


def load_library(path=None):
    """Loads libmobilellm (from `path`, or the search order above) once and returns the ctypes library. Raises
    :class:`MobileLLMError` when it cannot be found or its ABI version differs from this binding's."""
    global _library
    with _library_lock:
        if _library is not None and path is None:
            return _library
        tried = []
        for candidate in ([pathlib.Path(path)] if path else _candidates()):
            tried.append(str(candidate))
            if candidate.is_file():
                library = ctypes.CDLL(str(candidate))  # CDLL releases the GIL during every call
                for name, (restype, argtypes) in _SIGNATURES.items():
                    function = getattr(library, name)
                    function.restype = restype
                    function.argtypes = argtypes
                found = library.mobilellm_abi_version()
                if found != ABI_VERSION:
                    raise MobileLLMError(-1, f"{candidate}: ABI version {found}, this binding needs {ABI_VERSION}")
                _library = library
                return library
        raise MobileLLMError(-1, "libmobilellm.so not found; tried " + ", ".join(tried) +
                             " (set MOBILELLM_LIBRARY or run scripts/build_library.sh)")


def _lib():
    return _library if _library is not None else load_library()


def _check(status):
    if status != OK:
        message = _lib().mobilellm_last_error().decode("utf-8", "replace")
        raise MobileLLMError(status, message)


def abi_version():
    """The library's ABI version."""
    return _lib().mobilellm_abi_version()


def version():
    """The library's version string."""
    return _lib().mobilellm_version_string().decode()


def system_info():
    """The library's report of this machine (``mobilellm_system_info``): one "key: value" line each for the
    architecture, the CPU ``features`` the kernels use (e.g. ``avx2 fma f16c avx512-vnni``), the instruction-set
    level in use, the attention kernel per K/V cache type (``attention (head size 64 / 320): f32 avx2 / avx512,
    ...``), and every weight type's kernel per mode (``q4_0: exact-decode avx2, exact-prefill avx2-gemm,
    int16-prefill avx2-gemm, int8 avx2-r8``)."""
    return _lib().mobilellm_system_info().decode()


class MemoryEstimate:
    """What :func:`estimate_memory` found, in bytes (see ``mobilellm_memory_estimate`` in mobilellm.h).

    ``total_bytes`` = ``weights_mapped_bytes`` (file-backed model bytes read during inference) +
    ``weights_anonymous_bytes`` (weights converted at load, norms and biases) + ``kv_bytes`` (a full KV cache of
    ``n_ctx`` positions, ``kv_bytes_per_position`` each, of ``kv_cache_type`` "f32" or "f16") + ``scratch_bytes``
    (one session's buffers for ``n_threads`` threads): the growth of resident memory from before the load to the
    peak of one session filling its context."""

    __slots__ = ("n_ctx", "kv_cache_type", "n_threads", "weights_mapped_bytes", "weights_anonymous_bytes",
                 "kv_bytes_per_position", "kv_bytes", "scratch_bytes", "total_bytes")

    def __init__(self, estimate):
        for name in self.__slots__:
            setattr(self, name, getattr(estimate, name))
        self.kv_cache_type = {1: "f32", 2: "f16", 3: "q8_0"}.get(estimate.kv_cache_type, str(estimate.kv_cache_type))

    def __repr__(self):
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"MemoryEstimate({fields})"


def _model_params(n_threads, quantize, use_mlock, activations=None):
    """The C load params for Model's and estimate_memory's keyword arguments."""
    params = _ModelParams()
    _lib().mobilellm_model_params_init(ctypes.byref(params))
    params.n_threads = 0 if n_threads is None else _int32(n_threads, "n_threads")
    if quantize is not None:
        params.quantize = str(quantize).encode()
    params.use_mlock = bool(use_mlock)
    if activations is not None:  # None leaves it NULL: the library's default
        params.activations = str(activations).encode()
    return params


def _path_argument(path):
    encoded = os.fsencode(path)
    if b"\0" in encoded:
        raise ValueError("path: embedded null byte")
    return encoded


def estimate_memory(path, *, n_ctx=0, n_threads=None, quantize=None, use_mlock=False, activations=None):
    """Estimates, from the model's headers only (no weights are read), the memory of loading `path` with the same
    keyword arguments as :class:`Model` (``activations="int8"`` may move quantized matrices from mapped to
    anonymous memory, where the CPU's int8 kernels rearrange them at load) and filling one session of `n_ctx`
    positions (0: the default context length) with the automatic KV cache type. Returns a :class:`MemoryEstimate`;
    raises MobileLLMError as loading would (missing file, bad format, bad arguments)."""
    params = _model_params(n_threads, quantize, use_mlock, activations)
    out = _MemoryEstimate()
    out.struct_size = ctypes.sizeof(_MemoryEstimate)
    _check(_lib().mobilellm_model_estimate_memory(_path_argument(path), ctypes.byref(params), _int32(n_ctx, "n_ctx"),
                                                  ctypes.byref(out)))
    return MemoryEstimate(out)


def _sized_text(call):
    """Runs a caller-owned-buffer text call twice: for the size, then for the text."""
    length = ctypes.c_size_t(0)
    status = call(None, 0, ctypes.byref(length))
    if status not in (OK, ERROR_BUFFER_TOO_SMALL):
        _check(status)
    buffer = ctypes.create_string_buffer(length.value + 1)
    _check(call(buffer, len(buffer), ctypes.byref(length)))
    return buffer.raw[:length.value].decode("utf-8", "replace")


INT32_MIN, INT32_MAX = -2**31, 2**31 - 1


def _int32(value, name, saturate=False):
    """`value` (an int, or anything with __index__) checked to fit int32_t: TypeError for other types,
    MobileLLMError (INVALID_ARGUMENT) naming `name` for a value out of range (with `saturate`, values above
    INT32_MAX become INT32_MAX)."""
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(f"{name}: expected an integer, found {type(value).__name__}") from None
    if saturate and number > INT32_MAX:
        return INT32_MAX
    if not INT32_MIN <= number <= INT32_MAX:
        raise MobileLLMError(ERROR_INVALID_ARGUMENT, f"invalid argument '{name}': {number} does not fit a 32-bit integer")
    return number


def _json_argument(value, name):
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False).encode()
    except (TypeError, ValueError) as error:
        raise MobileLLMError(1, f"invalid argument '{name}': not JSON-serializable: {error}") from None


def _int_array(values, name="tokens"):
    """An int32_t array of `values` (at least one element long) and its count. A value that does not fit int32_t is
    refused (ctypes would silently wrap it, turning a bad id into a valid one)."""
    if isinstance(values, (str, bytes)):
        raise TypeError(f"{name}: expected a sequence of integer token ids, found {type(values).__name__}")
    values = [_int32(v, f"{name}[{i}]") for i, v in enumerate(values)]
    return (ctypes.c_int32 * max(1, len(values)))(*values), len(values)


def _token_ids(text, call):
    """Ids from `call(data, ids, capacity, count_pointer)` (mobilellm_tokenize or mobilellm_session_tokenize_prompt),
    retried with a larger buffer when the library says it was too small."""
    if isinstance(text, str):
        data = text.encode("utf-8", "surrogatepass")
    elif isinstance(text, (bytes, bytearray, memoryview)):
        data = bytes(text)
    else:
        raise TypeError(f"text: expected str or bytes, found {type(text).__name__}")
    count = ctypes.c_size_t(0)
    capacity = len(data) + 8
    while True:
        ids = (ctypes.c_int32 * capacity)()
        status = call(data, ids, capacity, ctypes.byref(count))
        if status == ERROR_BUFFER_TOO_SMALL and count.value > capacity:
            capacity = count.value
            continue
        _check(status)
        return list(ids[:count.value])


def _sampler_params(temperature, top_k, top_p, min_p, repetition_penalty, seed):
    """A mobilellm_sampler_params from the keyword arguments of generate (the library checks the ranges)."""
    sampling = _SamplerParams()
    _lib().mobilellm_sampler_params_init(ctypes.byref(sampling))
    sampling.temperature = float(temperature)
    sampling.top_k = _int32(top_k, "top_k")
    sampling.top_p = float(top_p)
    sampling.min_p = float(min_p)
    sampling.repetition_penalty = float(repetition_penalty)
    if seed is not None:
        sampling.seed = int(seed) & 0xFFFFFFFFFFFFFFFF
        sampling.use_seed = True
    return sampling


def _generate_params(max_tokens, stop, ignore_eos, eos):
    """A mobilellm_generate_params from the keyword arguments of generate: `stop` holds stop strings and/or extra
    stop token ids (added to the model's EOS ids `eos`). Returns the struct, the max_tokens count and the arrays it
    points to (keep them alive while the struct is used)."""
    params = _GenerateParams()
    _lib().mobilellm_generate_params_init_sized(ctypes.byref(params), ctypes.sizeof(_GenerateParams))
    # Bounded by the context anyway: a larger count means "until the context is full".
    count = _int32(max_tokens, "max_tokens", saturate=True)
    params.max_tokens = count
    params.ignore_eos = bool(ignore_eos)
    keep = []
    stop_ids = [s for s in stop if isinstance(s, int)]
    if stop_ids:
        stop_array, n_stops = _int_array(list(eos) + stop_ids, "stop")
        params.stop_token_ids = stop_array
        params.n_stop_token_ids = n_stops
        keep.append(stop_array)
    strings = [s.encode("utf-8", "surrogatepass") for s in stop if isinstance(s, str) and s]
    if any(b"\0" in s for s in strings):
        raise ValueError("stop: embedded null byte")
    if strings:
        string_array = (ctypes.c_char_p * len(strings))(*strings)
        params.stop_strings = string_array
        params.n_stop_strings = len(strings)
        keep.append(string_array)
    return params, count, keep


_CONTROL_OPTIONS = ("grammar", "json_schema", "logit_bias", "ban", "logprobs", "raw_logprobs", "reasoning",
                    "reasoning_budget", "reasoning_start", "reasoning_end", "reasoning_closing")
CONTROL_OPTIONS_DOC = """Output control, the keyword arguments every generate/stream method takes (all off by default):

- ``grammar``: GBNF text (llama.cpp's syntax, start rule ``root``) the output must match; generation ends with stop
  reason "grammar" when the grammar is complete. ``json_schema``: a JSON Schema (a dict, or JSON text) compiled to
  a grammar. A grammar or schema that does not compile raises MobileLLMError (status MOBILELLM_ERROR_GRAMMAR) with
  the rule, line and column, or the schema's JSON pointer. With reasoning tracking they apply to the answer only.
- ``logit_bias``: a dict from token id (int) or token text (str: every token whose piece equals it) to a value added
  to the logit (``-math.inf`` bans). ``ban``: token ids or texts to ban.
- ``logprobs``: an int n in 0...20: ``Generation.logprobs`` gets one :class:`TokenLogprob` per generated token with
  the n most likely alternatives, from the distribution sampled from (after bias, grammar, penalties and
  temperature; ``raw_logprobs=True``: from the raw logits).
- ``reasoning``: True tracks the thought between ``reasoning_start`` ("<think>") and ``reasoning_end``
  ("</think>"): ``Generation.reasoning`` and ``.answer`` hold the two parts (markers left out). A prompt that ends
  inside an open thought starts in it. ``reasoning_budget`` n ends a thought after n tokens by feeding
  ``reasoning_closing`` (default: a short transition sentence and the end marker); ``Generation.events`` then holds
  ``{"type": "reasoning_budget", "token_index": i}``. Any reasoning_* argument turns tracking on."""


class TokenLogprob:
    """A generated token's log-probability: ``token``, ``logprob`` (natural log) and ``top``, a list of
    ``(token, logprob)`` pairs, most likely first."""

    __slots__ = ("token", "logprob", "top")

    def __init__(self, token, logprob, top):
        self.token = token
        self.logprob = logprob
        self.top = top

    @classmethod
    def _from_c(cls, value):
        n = max(0, min(value.n_top, MAX_TOP_LOGPROBS))
        return cls(value.token, value.logprob, [(value.top_tokens[i], value.top_logprobs[i]) for i in range(n)])

    def __eq__(self, other):
        return isinstance(other, TokenLogprob) and (self.token, self.logprob, self.top) == (other.token, other.logprob,
                                                                                            other.top)

    def __repr__(self):
        return f"TokenLogprob(token={self.token}, logprob={self.logprob:.6g}, top={self.top!r})"


def _control_params(params, keep, control):
    """Fills the output-control fields of `params` from the keyword arguments `control` (see CONTROL_OPTIONS_DOC);
    arrays and strings the struct points to are appended to `keep`. The library checks values and ranges."""
    unknown = sorted(set(control) - set(_CONTROL_OPTIONS))
    if unknown:
        raise TypeError(f"unexpected keyword argument {unknown[0]!r} (output control takes {', '.join(_CONTROL_OPTIONS)})")

    def text(value, name):
        if not isinstance(value, str):
            raise TypeError(f"{name}: expected str, found {type(value).__name__}")
        data = value.encode("utf-8", "surrogatepass")
        if b"\0" in data:
            raise ValueError(f"{name}: embedded null byte")
        keep.append(data)
        return data

    if control.get("grammar") is not None:
        params.grammar = text(control["grammar"], "grammar")
    schema = control.get("json_schema")
    if schema is not None:
        params.json_schema = text(schema if isinstance(schema, str) else json.dumps(schema), "json_schema")
    bias = dict(control.get("logit_bias") or {})
    ban = control.get("ban") or ()
    if isinstance(ban, (str, int)):
        ban = [ban]
    for item in ban:
        bias[item] = float("-inf")
    by_id = [(k, v) for k, v in bias.items() if isinstance(k, int) and not isinstance(k, bool)]
    by_piece = [(k, v) for k, v in bias.items() if isinstance(k, str)]
    if len(by_id) + len(by_piece) != len(bias):
        bad = next(k for k in bias if not isinstance(k, (int, str)) or isinstance(k, bool))
        raise TypeError(f"logit_bias/ban: expected token ids (int) or token texts (str), found {type(bad).__name__}")
    if by_id:
        ids, n = _int_array([k for k, _ in by_id], "logit_bias")
        values = (ctypes.c_float * n)(*[float(v) for _, v in by_id])
        params.logit_bias_tokens, params.logit_bias_values, params.n_logit_bias = ids, values, n
        keep += [ids, values]
    if by_piece:
        pieces = (ctypes.c_char_p * len(by_piece))(*[text(k, "logit_bias") for k, _ in by_piece])
        values = (ctypes.c_float * len(by_piece))(*[float(v) for _, v in by_piece])
        params.logit_bias_pieces, params.logit_bias_piece_values = pieces, values
        params.n_logit_bias_pieces = len(by_piece)
        keep += [pieces, values]
    if control.get("logprobs") is not None:
        params.n_logprobs = _int32(control["logprobs"], "logprobs")
    params.raw_logprobs = bool(control.get("raw_logprobs", False))
    names = ("reasoning_budget", "reasoning_start", "reasoning_end", "reasoning_closing")
    reasoning = control.get("reasoning")
    if reasoning is None:
        reasoning = any(control.get(name) is not None for name in names)
    params.reasoning = bool(reasoning)
    if control.get("reasoning_budget") is not None:
        params.reasoning_budget = _int32(control["reasoning_budget"], "reasoning_budget")
    for name in names[1:]:
        if control.get(name) is not None:
            setattr(params, name, text(control[name], name))


_close_lock = threading.Lock()


class _HandleOwner:
    """The lifetime of one library handle: close() frees it (idempotent), `with` closes on exit, and garbage
    collection closes a forgotten one. Subclasses name the free function and what the handle is."""

    _free_function = ""
    _kind = ""

    def close(self):
        """Frees the handle (idempotent, also when threads race to close)."""
        with _close_lock:
            handle, self._handle = getattr(self, "_handle", None), None
        if handle:
            getattr(_lib(), self._free_function)(handle)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def _live(self):
        if not getattr(self, "_handle", None):
            raise MobileLLMError(2, f"the {self._kind} was closed")
        return self._handle


class Model(_HandleOwner):
    """A loaded model (a Hugging Face directory: config.json + safetensors, optional tokenizer files).

    Immutable and shareable across threads. ``close()`` (or leaving a ``with`` block) frees the handle: the model's
    methods then raise MobileLLMError (MOBILELLM_ERROR_INVALID_HANDLE), while sessions already created keep working,
    text included (the library keeps the weights until the last session is freed).
    """

    _free_function = "mobilellm_model_free"
    _kind = "model"

    def __init__(self, path, *, n_threads=None, quantize=None, use_mlock=False, activations=None):
        """Loads `path` on `n_threads` compute threads (None: every core), quantizing an unquantized model to
        `quantize` ("q8_0", "q4_0", ...) as it loads; `use_mlock` locks the mapped files in RAM (MobileLLMError
        naming params->use_mlock when RLIMIT_MEMLOCK is too low). `activations` chooses how block-quantized weights
        are multiplied: "exact" (f32 activations times weights dequantized in registers, the numbers transformers
        computes on the dequantized model), "int8" (activations quantized to 8 bits per 32 values for integer dot
        products: faster, results drift by the activation rounding) or "int16" (exact, except that prefill rounds
        activations to 16 bits per 32 values on AVX-512 VNNI CPUs: faster prefill, logits within a few hundredths);
        None: the library's default, which the
        :attr:`activations` property reports. Another name raises MobileLLMError naming params->activations. No
        effect on float weights."""
        lib = _lib()
        params = _model_params(n_threads, quantize, use_mlock, activations)
        encoded = _path_argument(path)
        handle = ctypes.c_void_p()
        _check(lib.mobilellm_model_load(encoded, ctypes.byref(params), ctypes.byref(handle)))
        self._handle = handle
        info = _ModelInfo()
        info.struct_size = ctypes.sizeof(_ModelInfo)
        _check(lib.mobilellm_model_get_info(handle, ctypes.byref(info)))
        self._info = info
        self.path = os.fspath(path)

    # -- facts
    @property
    def vocab_size(self):
        """Vocabulary size (length of a logits row)."""
        return self._info.vocab_size

    @property
    def context_length(self):
        """Longest context the model supports."""
        return self._info.context_length

    @property
    def architecture(self):
        """config.json model_type, e.g. "llama4_text" or "llama"."""
        return self.metadata("architecture")

    @property
    def bos_token_id(self):
        """The beginning-of-sequence id, or None."""
        return None if self._info.bos_token_id < 0 else self._info.bos_token_id

    @property
    def eos_token_ids(self):
        """The ids that end generation."""
        lib, count = _lib(), ctypes.c_size_t(0)
        ids = (ctypes.c_int32 * max(1, self._info.n_eos_token_ids))()
        _check(lib.mobilellm_model_eos_token_ids(self._live(), ids, len(ids), ctypes.byref(count)))
        return list(ids[:count.value])

    @property
    def has_tokenizer(self):
        """Whether text functions work."""
        return bool(self._info.has_tokenizer)

    @property
    def is_quantized(self):
        """Whether the weights are block-quantized (a quantized GGUF, or ``quantize=`` at load)."""
        return bool(self._info.is_quantized)

    @property
    def activations(self):
        """How block-quantized weights are multiplied: "exact", "int8" or "int16" (``activations=`` at load, or the
        library's default)."""
        return self._info.activations.decode()

    def metadata(self, key):
        """A metadata string: architecture, path, kv_cache_type, bos_token, eos_token, chat_template."""
        return self._metadata(self._live(), key)

    @staticmethod
    def _metadata(handle, key):
        if not isinstance(key, str):
            raise TypeError(f"key: expected str, found {type(key).__name__}")
        data = key.encode("utf-8", "surrogatepass")
        if b"\0" in data:
            raise ValueError("key: embedded null byte")
        return _sized_text(lambda b, n, out: _lib().mobilellm_model_get_metadata(handle, data, b, n, out))

    # -- text
    def tokenize(self, text, add_special=True, parse_special=False):
        """Token ids of `text` (str, or UTF-8 bytes) as Hugging Face tokenizers gives them."""
        return self._tokenize(self._live(), text, add_special, parse_special)

    @staticmethod
    def _tokenize(handle, text, add_special, parse_special):
        lib = _lib()
        return _token_ids(text, lambda data, ids, capacity, count: lib.mobilellm_tokenize(
            handle, data, len(data), add_special, parse_special, ids, capacity, count))

    def detokenize(self, ids, skip_special=False):
        """The text of `ids` (invalid UTF-8 becomes U+FFFD, as in Hugging Face decode)."""
        return self._detokenize(self._live(), ids, skip_special)

    @staticmethod
    def _detokenize(handle, ids, skip_special):
        array, n = _int_array(ids)
        return _sized_text(lambda b, c, out: _lib().mobilellm_detokenize(handle, array, n, skip_special, b, c, out))

    def apply_chat_template(self, messages, add_generation_prompt=True, **variables):
        """Renders `messages` (dicts with role and content, or any fields the template reads) with the model's
        chat template, as transformers' apply_chat_template(tokenize=False); keyword arguments become template
        variables (e.g. enable_thinking=False, tools=[...])."""
        handle = self._live()
        params = _ChatParams()
        _lib().mobilellm_chat_params_init(ctypes.byref(params))
        params.add_generation_prompt = bool(add_generation_prompt)
        params.messages_json = _json_argument(list(messages), "messages")
        params.variables_json = _json_argument(variables, "variables")
        return _sized_text(lambda b, n, out: _lib().mobilellm_apply_chat_template(handle, None, 0, ctypes.byref(params),
                                                                                 b, n, out))

    # -- sessions
    def session(self, n_ctx=4096):
        """A new session whose KV cache holds `n_ctx` tokens."""
        return Session(self, n_ctx)

    # -- batched generation
    def generate_batch(self, prompts, max_tokens=256, temperature=0.8, top_k=0, top_p=1.0, min_p=0.0,
                       repetition_penalty=1.0, seed=None, stop=(), ignore_eos=False, samples=1, n_ctx=4096, n_threads=0,
                       **control):
        """Generates from every prompt of `prompts` together (one forward pass per step for all of them: the
        weights are read once per step instead of once per prompt) and returns a list of :class:`Generation`, the
        one for prompt i at index i. Prompts and keyword arguments are those of :meth:`Session.generate`, each prompt
        on a fresh session of `n_ctx` positions, so each result equals ``model.session(n_ctx).generate(prompt,
        ...)``. With ``samples`` = k > 1 each prompt is fed once and continued k times (sample j seeded seed + j);
        the list then holds k results per prompt, prompt i's sample j at index i * k + j. A stop reason may also be
        "cancelled" (never from this method: only when a batch is cancelled). Output control (grammar, logprobs,
        reasoning, ...; see ``CONTROL_OPTIONS_DOC``) applies to every sequence. Raises :class:`MobileLLMError` for a
        bad prompt or argument (nothing is generated then). `n_threads` runs the steps on that many threads of the
        model's pool (0: all; identical results). The GIL is released during every step; Ctrl-C takes effect between
        steps."""
        run = self._batch(prompts, samples, n_ctx, max_tokens, temperature, top_k, top_p, min_p, repetition_penalty,
                          seed, stop, ignore_eos, control, n_threads)
        try:
            for index, item in run:
                if index is None:
                    return item
            return []
        finally:
            run.close()  # frees the batch now, not when the generator is collected

    def stream_batch(self, prompts, max_tokens=256, temperature=0.8, top_k=0, top_p=1.0, min_p=0.0,
                     repetition_penalty=1.0, seed=None, stop=(), ignore_eos=False, samples=1, n_ctx=4096, n_threads=0,
                     **control):
        """Like :meth:`generate_batch`, but yields ``(index, piece)`` tuples as text is produced: `index` is the
        result's index in generate_batch's list and `piece` a non-empty text piece (whole UTF-8 characters); the
        pieces of one index concatenate to that Generation's text. Runs on the calling thread, one step per
        resumption; closing the generator early stops and frees the batch."""
        run = self._batch(prompts, samples, n_ctx, max_tokens, temperature, top_k, top_p, min_p, repetition_penalty,
                          seed, stop, ignore_eos, control, n_threads)
        try:
            for index, item in run:
                if index is None:
                    return
                if item:
                    yield index, item
        finally:
            run.close()

    def _batch(self, prompts, samples, n_ctx, max_tokens, temperature, top_k, top_p, min_p, repetition_penalty, seed,
               stop, ignore_eos, control, n_threads=0):
        """Runs a batch of `prompts`: yields ``(index, piece)`` for every text piece, then ``(None, generations)``."""
        lib = _lib()
        handle = self._live()
        if isinstance(prompts, (str, bytes)):
            raise TypeError(f"prompts: expected a list of prompts (str or token id lists), found {type(prompts).__name__}")
        prompts = list(prompts)
        samples = _int32(samples, "samples")
        sampling = _sampler_params(temperature, top_k, top_p, min_p, repetition_penalty, seed)
        params, _count, keep = _generate_params(max_tokens, stop, ignore_eos, self.eos_token_ids)
        _control_params(params, keep, control)
        batch_params = _BatchParams()
        lib.mobilellm_batch_params_init(ctypes.byref(batch_params))
        batch_params.n_ctx = _int32(n_ctx, "n_ctx")
        batch_params.stream_text = self.has_tokenizer
        batch = ctypes.c_void_p()
        _check(lib.mobilellm_batch_create(handle, ctypes.byref(batch_params), ctypes.byref(batch)))
        try:
            if n_threads:
                _check(lib.mobilellm_batch_set_threads(batch, _int32(n_threads, "n_threads")))
            index_of = {}
            text_session = None  # an empty session: text prompts are tokenized by the library's prompt rule
            try:
                for i, prompt in enumerate(prompts):
                    if isinstance(prompt, str):
                        if text_session is None:
                            text_session = Session(self, n_ctx)
                        prompt = text_session._prompt_ids(prompt)
                    array, n = _int_array(prompt, f"prompts[{i}]")
                    # Out of any plausible range: no buffer, so the library reports n_samples.
                    ids = (ctypes.c_int32 * samples)() if 1 <= samples <= 1 << 20 else None
                    _check(lib.mobilellm_batch_add(batch, array, n, ctypes.byref(sampling), ctypes.byref(params), samples,
                                                   ids))
                    for j in range(samples):
                        index_of[ids[j]] = i * samples + j
            finally:
                if text_session is not None:
                    text_session.close()
            capacity = 2 * len(index_of) + 2  # room for a whole step: a token and an end per sequence
            events = (_BatchEvent * capacity)()
            count = ctypes.c_size_t(0)
            generations = [None] * len(index_of)
            while True:
                _check(lib.mobilellm_batch_step(batch, events, capacity, ctypes.byref(count)))
                if count.value == 0:
                    break
                for k in range(count.value):
                    event = events[k]
                    index = index_of[event.sequence]
                    if event.text and event.text_length:
                        # Valid until the next step, which runs only after the consumer resumes this generator.
                        yield index, ctypes.string_at(event.text, event.text_length).decode("utf-8", "replace")
                    if event.type == BATCH_EVENT_FINISHED:
                        generations[index] = self._batch_generation(batch, event.sequence, params.n_logprobs >= 0)
            yield None, generations
        finally:
            lib.mobilellm_batch_free(batch)

    @staticmethod
    def _batch_generation(batch, sequence, with_logprobs=False):
        """The Generation of finished sequence `sequence` of `batch` (its kept result is released)."""
        lib = _lib()
        count = ctypes.c_size_t(0)
        status = lib.mobilellm_batch_result(batch, sequence, None, 0, ctypes.byref(count), None)
        if status not in (OK, ERROR_BUFFER_TOO_SMALL):
            _check(status)
        tokens = (ctypes.c_int32 * max(1, count.value))()
        result = _GenerateResult()
        result.struct_size = ctypes.sizeof(_GenerateResult)
        _check(lib.mobilellm_batch_result(batch, sequence, tokens, len(tokens), ctypes.byref(count), ctypes.byref(result)))
        text = _sized_text(lambda b, n, out: lib.mobilellm_batch_result_text(batch, sequence, b, n, out))
        reasoning, answer = (_sized_text(lambda b, n, out, c=channel: lib.mobilellm_batch_result_channel_text(
            batch, sequence, c, b, n, out)) for channel in (1, 0))
        logprobs = None
        if with_logprobs:
            entries = (_TokenLogprob * max(1, count.value))()
            n = ctypes.c_size_t(0)
            _check(lib.mobilellm_batch_result_logprobs(batch, sequence, entries, len(entries), ctypes.byref(n)))
            logprobs = [TokenLogprob._from_c(entries[i]) for i in range(n.value)]
        _check(lib.mobilellm_batch_forget(batch, sequence))
        return Generation(list(tokens[:count.value]), text, STOP_REASONS.get(result.stop_reason, str(result.stop_reason)),
                          reasoning=reasoning, answer=answer, reasoning_tokens=result.n_reasoning_tokens,
                          logprobs=logprobs, events=_events(result))


# Evals of fewer tokens run directly even on the main thread: the helper thread costs about a millisecond on a
# busy machine, too much per decoded token, and such a call is short anyway.
_INTERRUPTIBLE_TOKENS = 64


def _check_interruptible(handle, call):
    """Runs `call()`, one long library call on the session `handle` returning a status, and raises MobileLLMError
    for a failure (with the message read on the thread that made the call: it is thread-local). On the main thread
    the call runs on a helper thread while this one waits, so Ctrl-C works during it: a KeyboardInterrupt (or any
    exception a signal handler raises) cancels the call, waits for it to return, and propagates. Elsewhere the call
    runs directly (signals only reach the main thread)."""
    def checked():
        _check(call())

    if threading.current_thread() is not threading.main_thread():
        checked()
        return
    outcome = {}
    entered, done = threading.Event(), threading.Event()

    def work():
        entered.set()
        try:
            checked()
        except BaseException as error:  # noqa: BLE001 - handed to the waiting thread
            outcome["error"] = error
        finally:
            done.set()

    try:
        threading.Thread(target=work, name="mobilellm-call", daemon=True).start()
        while not done.wait(0.05):
            pass
    except BaseException:
        # The interrupt may land while the worker is being started: once it runs (it has not if it never shows up),
        # cancel until the call returns, repeating because the library drops a cancel sent before a call starts.
        if entered.wait(5):
            while not done.wait(0.001):
                _lib().mobilellm_session_cancel(handle)
        raise
    if "error" in outcome:
        raise outcome["error"]


class Generation:
    """The result of :meth:`Session.generate` (and of each prompt of :meth:`Model.generate_batch`): ``tokens``
    (generated ids, a stopping EOS included, forced reasoning-closing tokens too), ``text`` (their text, cut before a
    matched stop string; "" without a tokenizer), ``stop_reason`` ("eos", "max_tokens", "context_full", "stop" for a
    stop string, "callback", "grammar", "cancelled"), and with output control (see ``CONTROL_OPTIONS_DOC``):
    ``reasoning`` and ``answer`` (the thought and the rest, markers left out; without reasoning tracking ``answer``
    is ``text``), ``reasoning_tokens``, ``logprobs`` (a list of :class:`TokenLogprob`, one per token, or None when
    not requested) and ``events`` (dicts, e.g. ``{"type": "reasoning_budget", "token_index": 12}``)."""

    def __init__(self, tokens, text, stop_reason, reasoning="", answer=None, reasoning_tokens=0, logprobs=None,
                 events=()):
        self.tokens = tokens
        self.text = text
        self.stop_reason = stop_reason
        self.reasoning = reasoning
        self.answer = text if answer is None else answer
        self.reasoning_tokens = reasoning_tokens
        self.logprobs = logprobs
        self.events = list(events)

    def __repr__(self):
        extra = ""
        if self.reasoning or self.reasoning_tokens:
            extra += f", reasoning={self.reasoning!r}, answer={self.answer!r}"
        return f"Generation(tokens={self.tokens!r}, text={self.text!r}, stop_reason={self.stop_reason!r}{extra})"


def _events(result):
    """The events of a mobilellm_generate_result as dicts."""
    if result.reasoning_budget_index >= 0:
        return [{"type": "reasoning_budget", "token_index": result.reasoning_budget_index}]
    return []


class Session(_HandleOwner):
    """One conversation: a KV cache, the tokens fed so far and the latest logits. One thread at a time;
    ``cancel()`` from anywhere. ``close()`` (or leaving a ``with`` block) frees it."""

    _free_function = "mobilellm_session_free"
    _kind = "session"

    def __init__(self, model, n_ctx=4096):
        lib = _lib()
        if not isinstance(model, Model):
            raise TypeError(f"model: expected a mobilellm.Model, found {type(model).__name__}")
        params = _SessionParams()
        lib.mobilellm_session_params_init(ctypes.byref(params))
        params.n_ctx = _int32(n_ctx, "n_ctx")
        handle = ctypes.c_void_p()
        _check(lib.mobilellm_session_create(model._live(), ctypes.byref(params), ctypes.byref(handle)))
        self._handle = handle
        self.model = model
        self._vocab = model.vocab_size
        self._eos = model.eos_token_ids
        n = ctypes.c_int32(0)
        _check(lib.mobilellm_session_context_length(handle, ctypes.byref(n)))
        self.n_ctx = n.value

    @property
    def n_past(self):
        """Tokens in the KV cache."""
        n = ctypes.c_int32(0)
        _check(_lib().mobilellm_session_position(self._live(), ctypes.byref(n)))
        return n.value

    def reset(self):
        """Empties the session."""
        _check(_lib().mobilellm_session_reset(self._live()))

    def set_threads(self, n):
        """Runs this session's later evals and generations on `n` threads of the model's pool (1 ... the model's
        thread count; 0: all of them). Results are identical for every count. MobileLLMError (INVALID_ARGUMENT)
        naming n_threads otherwise."""
        _check(_lib().mobilellm_session_set_threads(self._live(), _int32(n, "n_threads")))

    def rewind(self, n):
        """Keeps the first `n` tokens (n_past becomes n) and drops the rest."""
        _check(_lib().mobilellm_session_rewind(self._live(), _int32(n, "position")))

    def cancel(self):
        """Stops the eval/generate running on this session, which then raises MobileLLMError with status_name
        MOBILELLM_ERROR_CANCELLED; does nothing when none is running (a request never lingers to cancel a later
        call). Safe from any thread, and from inside a generation's callbacks."""
        _check(_lib().mobilellm_session_cancel(self._live()))

    def eval(self, tokens, all_logits=False):
        """Feeds `tokens`; returns the last position's logits (a list of floats), or with `all_logits` one row per
        token."""
        array, n = _int_array(tokens)
        handle = self._live()
        rows = n if all_logits else 1
        if rows > self.n_ctx:  # would not fit anyway; do not allocate rows × vocab floats for it
            rows = 1
        logits = (ctypes.c_float * (rows * self._vocab))()
        mode = LOGITS_ALL if all_logits else LOGITS_LAST
        call = lambda: _lib().mobilellm_session_eval(handle, array, n, mode, logits, len(logits))  # noqa: E731
        if n >= _INTERRUPTIBLE_TOKENS:
            _check_interruptible(handle, call)
        else:
            _check(call())
        values = list(logits)
        if not all_logits:
            return values
        return [values[i * self._vocab:(i + 1) * self._vocab] for i in range(n)]

    def save_state(self):
        """The tokens and KV cache as bytes (restore into a session of the same model with load_state)."""
        size = ctypes.c_size_t(0)
        _check(_lib().mobilellm_session_state_size(self._live(), ctypes.byref(size)))
        buffer = ctypes.create_string_buffer(max(1, size.value))
        _check(_lib().mobilellm_session_save_state(self._live(), buffer, len(buffer), ctypes.byref(size)))
        return buffer.raw[:size.value]

    def load_state(self, state):
        """Restores bytes from save_state."""
        data = bytes(state)
        _check(_lib().mobilellm_session_load_state(self._live(), data, len(data)))

    # -- generation
    def _prompt_ids(self, prompt):
        if isinstance(prompt, str):
            handle = self._live()
            return _token_ids(prompt, lambda data, ids, capacity, count: _lib().mobilellm_session_tokenize_prompt(
                handle, data, len(data), ids, capacity, count))
        return prompt

    def _run(self, prompt, max_tokens, temperature, top_k, top_p, min_p, repetition_penalty, seed, stop, ignore_eos,
             on_piece, control=None):
        """Runs one generation; `on_piece(token, text, channel)` sees every piece (token -1 for a piece that continues
        a token or releases held-back text at the end; without a tokenizer one call per token with text "") and
        returns False to stop. `control` holds the output-control keyword arguments. Returns a Generation whose
        text fields are empty (the caller assembles them from the pieces)."""
        lib = _lib()
        handle = self._live()
        ids = self._prompt_ids(prompt)
        prompt_array, n_prompt = _int_array(ids, "prompt")
        sampling = _sampler_params(temperature, top_k, top_p, min_p, repetition_penalty, seed)
        params, count, keep = _generate_params(max_tokens, stop, ignore_eos, self._eos)
        _control_params(params, keep, control or {})
        failure = []
        capacity = max(1, min(max(0, count), self.n_ctx + 1))

        def guard(call):
            try:
                return bool(call())
            except BaseException as error:  # noqa: BLE001 - re-raised after the call
                failure.append(error)
                return False

        if self.model.has_tokenizer:
            # Pieces from the engine's text stream, tagged by channel.
            def piece_callback(piece, _user_data):
                value = piece.contents
                text = ctypes.string_at(value.text, value.text_length).decode("utf-8", "replace")
                return guard(lambda: on_piece(value.token, text, CHANNELS.get(value.channel, "answer")))

            params.piece_callback = _PieceCallback(piece_callback)
        else:
            params.callback = _TokenCallback(lambda token, piece, length, _u: guard(lambda: on_piece(token, "", "answer")))
        logprobs = None
        if params.n_logprobs >= 0:
            logprobs = (_TokenLogprob * capacity)()
            params.out_logprobs = logprobs
            params.out_logprobs_capacity = capacity
        out = (ctypes.c_int32 * capacity)()
        result = _GenerateResult()
        result.struct_size = ctypes.sizeof(_GenerateResult)
        try:
            _check_interruptible(handle, lambda: lib.mobilellm_session_generate(
                handle, prompt_array, n_prompt, ctypes.byref(sampling), ctypes.byref(params), out, capacity,
                ctypes.byref(result)))
        finally:
            if failure:  # an exception from the callback (which then stopped the generation) comes first
                raise failure[0]
        n = min(capacity, result.n_tokens)
        return Generation(list(out[:n]), "", STOP_REASONS.get(result.stop_reason, str(result.stop_reason)),
                          reasoning_tokens=result.n_reasoning_tokens,
                          logprobs=None if logprobs is None else [TokenLogprob._from_c(logprobs[i]) for i in range(n)],
                          events=_events(result))

    def generate(self, prompt, max_tokens=256, temperature=0.8, top_k=0, top_p=1.0, min_p=0.0, repetition_penalty=1.0,
                 seed=None, stop=(), ignore_eos=False, **control):
        """Feeds `prompt` (text, tokenized with the model's tokenizer, special tokens parsed, BOS added on an empty
        session unless the text starts with it; or a list of ids) and generates. `stop` holds strings that end
        generation (cut from the text) and/or extra stop token ids. temperature 0 is greedy. The keyword arguments
        of output control (grammar, json_schema, logit_bias, ban, logprobs, reasoning, reasoning_budget, ...) are
        described in ``mobilellm.CONTROL_OPTIONS_DOC``. Returns a :class:`Generation`. The session keeps the prompt
        and the generated tokens but the last."""
        parts = {"answer": [], "reasoning": [], "marker": []}
        order = []

        def on_piece(_token, text, channel):
            parts[channel].append(text)
            order.append(text)
            return True

        generation = self._run(prompt, max_tokens, temperature, top_k, top_p, min_p, repetition_penalty, seed, stop,
                               ignore_eos, on_piece, control)
        generation.text = "".join(order)
        generation.reasoning = "".join(parts["reasoning"])
        generation.answer = "".join(parts["answer"])
        return generation

    def stream(self, prompt, max_tokens=256, temperature=0.8, top_k=0, top_p=1.0, min_p=0.0, repetition_penalty=1.0,
               seed=None, stop=(), ignore_eos=False, channels=False, **control):
        """Like :meth:`generate`, but yields text pieces (whole UTF-8 characters) as they are produced; with
        ``channels=True`` it yields ``(channel, text)`` pairs, channel "reasoning", "answer" or "marker" (reasoning
        tracking: see ``CONTROL_OPTIONS_DOC``). Generation runs on a worker thread; closing the generator early stops
        it (cancelling a running prefill)."""
        pieces = queue.Queue()
        stop_flag = threading.Event()
        done = object()

        def on_piece(_token, text, channel):
            if stop_flag.is_set():
                return False
            pieces.put((channel, text) if channels else text)
            return True

        def work():
            try:
                self._run(prompt, max_tokens, temperature, top_k, top_p, min_p, repetition_penalty, seed, stop,
                          ignore_eos, on_piece, control)
                pieces.put(done)
            except BaseException as error:  # noqa: BLE001 - handed to the consumer
                pieces.put(error)

        worker = threading.Thread(target=work, daemon=True)
        worker.start()
        finished = False
        try:
            while True:
                item = pieces.get()
                if item is done:
                    finished = True
                    break
                if isinstance(item, BaseException):
                    finished = True
                    raise item
                if item if not channels else item[1]:
                    yield item
        finally:
            if not finished:
                stop_flag.set()
                # Cancel until the worker is done: the library drops a cancel sent before the call starts (and one
                # sent after it ended does nothing), so repeating is safe and reaches a prefill that starts late.
                while worker.is_alive():
                    try:
                        self.cancel()
                    except MobileLLMError:
                        break
                    worker.join(0.001)
                worker.join()
