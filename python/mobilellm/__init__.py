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

__all__ = ["MobileLLMError", "Model", "Session", "Generation", "load_library", "abi_version", "version"]
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
STOP_REASONS = {1: "eos", 2: "max_tokens", 3: "context_full", 4: "callback", 5: "stop", 6: "cancelled"}
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
                ("progress_callback", _ProgressCallback), ("progress_user_data", ctypes.c_void_p)]


class _ModelInfo(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32), ("vocab_size", ctypes.c_int32), ("context_length", ctypes.c_int32),
                ("default_context_length", ctypes.c_int32), ("n_layers", ctypes.c_int32),
                ("hidden_size", ctypes.c_int32), ("n_heads", ctypes.c_int32), ("n_kv_heads", ctypes.c_int32),
                ("head_dim", ctypes.c_int32), ("n_threads", ctypes.c_int32), ("bos_token_id", ctypes.c_int32),
                ("n_eos_token_ids", ctypes.c_int32), ("has_tokenizer", ctypes.c_bool),
                ("has_chat_template", ctypes.c_bool), ("is_quantized", ctypes.c_bool)]


class _SessionParams(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32), ("n_ctx", ctypes.c_int32), ("kv_cache_type", ctypes.c_int32)]


class _SamplerParams(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32), ("temperature", ctypes.c_float), ("top_k", ctypes.c_int32),
                ("top_p", ctypes.c_float), ("min_p", ctypes.c_float), ("repetition_penalty", ctypes.c_float),
                ("frequency_penalty", ctypes.c_float), ("presence_penalty", ctypes.c_float),
                ("penalty_window", ctypes.c_int32), ("seed", ctypes.c_uint64), ("use_seed", ctypes.c_bool)]


class _GenerateParams(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32), ("max_tokens", ctypes.c_int32), ("stop_token_ids", _c_int32_p),
                ("n_stop_token_ids", ctypes.c_size_t), ("ignore_eos", ctypes.c_bool), ("callback", _TokenCallback),
                ("user_data", ctypes.c_void_p), ("stop_strings", ctypes.POINTER(ctypes.c_char_p)),
                ("n_stop_strings", ctypes.c_size_t)]


class _GenerateResult(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32), ("stop_reason", ctypes.c_int32), ("n_prompt_tokens", ctypes.c_int32),
                ("n_tokens", ctypes.c_int32)]


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

    def __init__(self, path, *, n_threads=None, quantize=None):
        lib = _lib()
        params = _ModelParams()
        lib.mobilellm_model_params_init(ctypes.byref(params))
        params.n_threads = 0 if n_threads is None else _int32(n_threads, "n_threads")
        if quantize is not None:
            params.quantize = str(quantize).encode()
        encoded = os.fsencode(path)
        if b"\0" in encoded:
            raise ValueError("path: embedded null byte")
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
                       repetition_penalty=1.0, seed=None, stop=(), ignore_eos=False, samples=1, n_ctx=4096):
        """Generates from every prompt of `prompts` together (one forward pass per step for all of them: the
        weights are read once per step instead of once per prompt) and returns a list of :class:`Generation`, the
        one for prompt i at index i. Prompts and keyword arguments are those of :meth:`Session.generate`, each prompt
        on a fresh session of `n_ctx` positions, so each result equals ``model.session(n_ctx).generate(prompt,
        ...)``. With ``samples`` = k > 1 each prompt is fed once and continued k times (sample j seeded seed + j);
        the list then holds k results per prompt, prompt i's sample j at index i * k + j. A stop reason may also be
        "cancelled" (never from this method: only when a batch is cancelled). Raises :class:`MobileLLMError` for a
        bad prompt or argument (nothing is generated then). The GIL is released during every step; Ctrl-C takes
        effect between steps."""
        run = self._batch(prompts, samples, n_ctx, max_tokens, temperature, top_k, top_p, min_p, repetition_penalty,
                          seed, stop, ignore_eos)
        try:
            for index, item in run:
                if index is None:
                    return item
            return []
        finally:
            run.close()  # frees the batch now, not when the generator is collected

    def stream_batch(self, prompts, max_tokens=256, temperature=0.8, top_k=0, top_p=1.0, min_p=0.0,
                     repetition_penalty=1.0, seed=None, stop=(), ignore_eos=False, samples=1, n_ctx=4096):
        """Like :meth:`generate_batch`, but yields ``(index, piece)`` tuples as text is produced: `index` is the
        result's index in generate_batch's list and `piece` a non-empty text piece (whole UTF-8 characters); the
        pieces of one index concatenate to that Generation's text. Runs on the calling thread, one step per
        resumption; closing the generator early stops and frees the batch."""
        run = self._batch(prompts, samples, n_ctx, max_tokens, temperature, top_k, top_p, min_p, repetition_penalty,
                          seed, stop, ignore_eos)
        try:
            for index, item in run:
                if index is None:
                    return
                if item:
                    yield index, item
        finally:
            run.close()

    def _batch(self, prompts, samples, n_ctx, max_tokens, temperature, top_k, top_p, min_p, repetition_penalty, seed,
               stop, ignore_eos):
        """Runs a batch of `prompts`: yields ``(index, piece)`` for every text piece, then ``(None, generations)``."""
        lib = _lib()
        handle = self._live()
        if isinstance(prompts, (str, bytes)):
            raise TypeError(f"prompts: expected a list of prompts (str or token id lists), found {type(prompts).__name__}")
        prompts = list(prompts)
        samples = _int32(samples, "samples")
        sampling = _sampler_params(temperature, top_k, top_p, min_p, repetition_penalty, seed)
        params, _count, _keep = _generate_params(max_tokens, stop, ignore_eos, self.eos_token_ids)
        batch_params = _BatchParams()
        lib.mobilellm_batch_params_init(ctypes.byref(batch_params))
        batch_params.n_ctx = _int32(n_ctx, "n_ctx")
        batch_params.stream_text = self.has_tokenizer
        batch = ctypes.c_void_p()
        _check(lib.mobilellm_batch_create(handle, ctypes.byref(batch_params), ctypes.byref(batch)))
        try:
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
                        generations[index] = self._batch_generation(batch, event.sequence)
            yield None, generations
        finally:
            lib.mobilellm_batch_free(batch)

    @staticmethod
    def _batch_generation(batch, sequence):
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
        _check(lib.mobilellm_batch_forget(batch, sequence))
        return Generation(list(tokens[:count.value]), text, STOP_REASONS.get(result.stop_reason, str(result.stop_reason)))


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
    """The result of :meth:`Session.generate` (and of each prompt of :meth:`Model.generate_batch`): ``tokens`` (generated ids, a stopping EOS included), ``text``
    (their text, cut before a matched stop string; "" without a tokenizer) and ``stop_reason`` ("eos",
    "max_tokens", "context_full", "stop" for a stop string, "callback")."""

    def __init__(self, tokens, text, stop_reason):
        self.tokens = tokens
        self.text = text
        self.stop_reason = stop_reason

    def __repr__(self):
        return f"Generation(tokens={self.tokens!r}, text={self.text!r}, stop_reason={self.stop_reason!r})"


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
             on_piece):
        """Runs one generation; `on_piece(token, text)` returns False to stop. Returns (tokens, stop_reason)."""
        lib = _lib()
        handle = self._live()
        ids = self._prompt_ids(prompt)
        prompt_array, n_prompt = _int_array(ids, "prompt")
        sampling = _sampler_params(temperature, top_k, top_p, min_p, repetition_penalty, seed)
        params, count, _keep = _generate_params(max_tokens, stop, ignore_eos, self._eos)
        failure = []

        def callback(token, piece, length, _user_data):
            try:
                text = ctypes.string_at(piece, length).decode("utf-8", "replace") if piece else ""
                return bool(on_piece(token, text))
            except BaseException as error:  # noqa: BLE001 - re-raised after the call
                failure.append(error)
                return False

        params.callback = _TokenCallback(callback)
        capacity = max(1, min(max(0, count), self.n_ctx + 1))
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
        tokens = list(out[:min(capacity, result.n_tokens)])
        return tokens, STOP_REASONS.get(result.stop_reason, str(result.stop_reason))

    def generate(self, prompt, max_tokens=256, temperature=0.8, top_k=0, top_p=1.0, min_p=0.0, repetition_penalty=1.0,
                 seed=None, stop=(), ignore_eos=False):
        """Feeds `prompt` (text, tokenized with the model's tokenizer, special tokens parsed, BOS added on an empty
        session unless the text starts with it; or a list of ids) and generates. `stop` holds strings that end
        generation (cut from the text) and/or extra stop token ids. temperature 0 is greedy. Returns a
        :class:`Generation`. The session keeps the prompt and the generated tokens but the last."""
        pieces = []

        def on_piece(token, text):
            pieces.append(text)
            return True

        tokens, reason = self._run(prompt, max_tokens, temperature, top_k, top_p, min_p, repetition_penalty, seed, stop,
                                   ignore_eos, on_piece)
        text = "".join(pieces) if self.model.has_tokenizer else ""
        return Generation(tokens, text, reason)

    def stream(self, prompt, max_tokens=256, temperature=0.8, top_k=0, top_p=1.0, min_p=0.0, repetition_penalty=1.0,
               seed=None, stop=(), ignore_eos=False):
        """Like :meth:`generate`, but yields text pieces (whole UTF-8 characters) as they are produced. Generation
        runs on a worker thread; closing the generator early stops it (cancelling a running prefill)."""
        pieces = queue.Queue()
        stop_flag = threading.Event()
        done = object()

        def on_piece(token, text):
            if stop_flag.is_set():
                return False
            pieces.put(text)
            return True

        def work():
            try:
                self._run(prompt, max_tokens, temperature, top_k, top_p, min_p, repetition_penalty, seed, stop,
                          ignore_eos, on_piece)
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
                if item:
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
