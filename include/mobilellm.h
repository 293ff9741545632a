/*
 * mobilellm.h — the C ABI of mobilellm, an embeddable inference engine for MobileLLM-R1 and Llama-architecture
 * models. This header is the whole contract: libmobilellm exports exactly the functions declared here.
 *
 * THREADING: a model may be shared by any number of sessions on any threads; a session (and a sampler or
 * detokenizer) is used by one thread at a time; mobilellm_session_cancel() is safe from anywhere.
 * (Model functions, the text functions included, may be called from any thread at once.) A batch is used like a
 * session, and its cancel functions are safe from anywhere (see "Batched generation").
 *
 * Conventions that hold for every function below unless its comment says otherwise:
 *
 *  - Errors. Every fallible function returns a mobilellm_status (MOBILELLM_OK is 0). Nothing aborts, traps or
 *    throws through this interface, whatever the arguments: NULL pointers, bad sizes, ids out of range, invalid
 *    UTF-8, a full context, and freed or made-up handles all give a status. After any status-returning call,
 *    mobilellm_last_error() returns this thread's message for it (empty after success) naming what failed: the
 *    file, field or argument and the value found. Output arguments are written only on success, except the
 *    required size reported with MOBILELLM_ERROR_BUFFER_TOO_SMALL.
 *  - Handles (mobilellm_model, mobilellm_session, mobilellm_sampler, mobilellm_detokenizer, mobilellm_batch) are
 *    opaque ids looked up in a table, never dereferenced: a freed, foreign or made-up handle gives
 *    MOBILELLM_ERROR_INVALID_HANDLE, not a crash. Each is created by one create or load call and released by the matching free call, which
 *    accepts NULL (a no-op returning MOBILELLM_OK).
 *  - Buffers are owned by the caller. A function that fills a buffer takes its capacity and reports the size it
 *    needs through an out-argument; pass a NULL buffer with capacity 0 to ask for the size alone. Text outputs
 *    are UTF-8 and NUL-terminated; their reported length excludes the NUL, so the capacity must be length + 1.
 *  - Parameter structs are passed by pointer; their first field, struct_size, is sizeof the struct as the caller
 *    compiled it. Fill them with the matching *_params_init() function and then change what you need. A NULL
 *    params pointer means the defaults. The library reads only the first struct_size bytes, so programs built
 *    against an older header keep working; a struct_size smaller than version 1 of the struct is refused.
 *  - Callbacks run on the thread that made the call, must return normally (no longjmp, no C++ exception through
 *    the library), and may call any mobilellm function: other sessions and models work normally (freeing the
 *    model included), calls on the session whose generation invoked them fail with MOBILELLM_ERROR_BUSY, except
 *    mobilellm_session_cancel() (the generation returns CANCELLED at its next token) and mobilellm_session_free()
 *    (the handle is invalid at once; the generation finishes first). Their calls do not change the status or the
 *    mobilellm_last_error() message of the call that invoked them.
 *  - Strings passed in are NUL-terminated UTF-8 and only read during the call.
 *
 * Ownership in short: a session keeps its model alive. mobilellm_model_free() releases the caller's handle; the
 * weights are unmapped when the last session of that model is freed too, so freeing a model while its sessions
 * live is allowed and those sessions keep working.
 */
#ifndef MOBILELLM_H
#define MOBILELLM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32) && defined(MOBILELLM_BUILDING)
#define MOBILELLM_API __declspec(dllexport)
#elif defined(_WIN32)
#define MOBILELLM_API __declspec(dllimport)
#elif defined(__GNUC__) || defined(__clang__)
#define MOBILELLM_API __attribute__((visibility("default")))
#else
#define MOBILELLM_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------------------------------------------ */
/* Versions                                                                                                     */
/* ------------------------------------------------------------------------------------------------------------ */

/** Version of this binary interface. Bumped only by a change that breaks programs built against an older header:
 *  a function removed or changed, a field moved or resized. Appending a field to a params struct (the library
 *  reads only the caller's struct_size bytes and uses defaults for the rest) and adding a function keep the
 *  version; abi/abi-v<N>.txt records such additions as "appended" lines. */
#define MOBILELLM_ABI_VERSION 1

/** The MOBILELLM_ABI_VERSION the library was built with; compare it with the header's to detect a mismatch.
 *  Never fails; any thread. */
MOBILELLM_API uint32_t mobilellm_abi_version(void);

/** The library version, e.g. "0.1.0". A static string owned by the library; never NULL; any thread. */
MOBILELLM_API const char *mobilellm_version_string(void);

/* ------------------------------------------------------------------------------------------------------------ */
/* Status codes and errors                                                                                      */
/* ------------------------------------------------------------------------------------------------------------ */

/** Result of every fallible call: MOBILELLM_OK (0) or one of the MOBILELLM_ERROR_* codes below. */
typedef int32_t mobilellm_status;

/** The values of mobilellm_status. New codes may be added in later versions; treat unknown ones as errors. */
enum mobilellm_status_code {
    MOBILELLM_OK = 0,
    /** An argument is NULL where it may not be, or outside its range (the message names it and its value). */
    MOBILELLM_ERROR_INVALID_ARGUMENT = 1,
    /** A handle is NULL where one is required, was freed, or never came from this library. */
    MOBILELLM_ERROR_INVALID_HANDLE = 2,
    /** A file or directory does not exist or cannot be opened. */
    MOBILELLM_ERROR_FILE_NOT_FOUND = 3,
    /** A model file is malformed or inconsistent (the message names the file, field and expected value). */
    MOBILELLM_ERROR_INVALID_FILE = 4,
    /** Well-formed input that uses something this engine does not implement. */
    MOBILELLM_ERROR_UNSUPPORTED = 5,
    /** A caller-owned buffer is too small; the size it needs was written to the size out-argument. */
    MOBILELLM_ERROR_BUFFER_TOO_SMALL = 6,
    /** The tokens do not fit in the session's context; nothing was fed. */
    MOBILELLM_ERROR_CONTEXT_FULL = 7,
    /** Stopped by mobilellm_session_cancel() or by a progress callback returning false. */
    MOBILELLM_ERROR_CANCELLED = 8,
    /** Text is not valid UTF-8 (the message gives the byte offset). */
    MOBILELLM_ERROR_INVALID_UTF8 = 9,
    /** A text function was called on a model without tokenizer files. */
    MOBILELLM_ERROR_NO_TOKENIZER = 10,
    /** A session, sampler or detokenizer is already in use by another thread (a contract violation caught). */
    MOBILELLM_ERROR_BUSY = 11,
    /** Reading a file failed. */
    MOBILELLM_ERROR_IO = 12,
    /** A memory allocation would be unreasonably large. */
    MOBILELLM_ERROR_OUT_OF_MEMORY = 13,
    /** A bug in mobilellm; the message says where. */
    MOBILELLM_ERROR_INTERNAL = 14,
    /** A chat template failed to compile or render (the message gives the template, line and column). */
    MOBILELLM_ERROR_TEMPLATE = 15,
    /** A grammar or JSON Schema failed to compile (the message gives the rule, line and column, or the schema's
     *  JSON pointer). Added in ABI v1. */
    MOBILELLM_ERROR_GRAMMAR = 16
};

/** A short constant name for a status ("MOBILELLM_ERROR_CONTEXT_FULL"); "unknown status" for other values.
 *  Static storage, never NULL; any thread. */
MOBILELLM_API const char *mobilellm_status_name(mobilellm_status status);

/** The message of the last status-returning mobilellm call made on the calling thread: empty after success,
 *  otherwise what failed with the file, field or argument and the value found. Owned by the library, valid until
 *  the next status-returning call on this thread; never NULL. Thread-local: other threads do not disturb it. */
MOBILELLM_API const char *mobilellm_last_error(void);

/* ------------------------------------------------------------------------------------------------------------ */
/* Logging (silent by default)                                                                                  */
/* ------------------------------------------------------------------------------------------------------------ */

/** Severity of a log message. */
enum mobilellm_log_level {
    MOBILELLM_LOG_NONE = 0,
    MOBILELLM_LOG_ERROR = 1,
    MOBILELLM_LOG_WARNING = 2,
    MOBILELLM_LOG_INFO = 3,
    MOBILELLM_LOG_DEBUG = 4
};

/** Receives one log message (UTF-8, NUL-terminated, no trailing newline, valid during the call). Called on the
 *  thread that produced the message, possibly several at once: it must be thread-safe. It may call mobilellm
 *  functions (including mobilellm_set_log_callback()); messages those calls would log are dropped, not delivered
 *  recursively. */
typedef void (*mobilellm_log_callback)(int32_t level, const char *message, void *user_data);

/** Sends messages of `max_level` and more severe to `callback` (NULL, or MOBILELLM_LOG_NONE: silence, the
 *  default). Process-wide; replaces the previous callback. Any thread; a message being delivered concurrently
 *  may still reach the previous callback. Fails with INVALID_ARGUMENT for a level outside 0...4. */
MOBILELLM_API mobilellm_status mobilellm_set_log_callback(mobilellm_log_callback callback, int32_t max_level,
                                                          void *user_data);

/* ------------------------------------------------------------------------------------------------------------ */
/* Models                                                                                                       */
/* ------------------------------------------------------------------------------------------------------------ */

/** A loaded model: immutable weights (memory-mapped), configuration and tokenizer. Share it freely. */
typedef struct mobilellm_model mobilellm_model;

/** Load progress in [0, 1], called several times on the loading thread. Return true to go on, false to abort
 *  the load (which then fails with MOBILELLM_ERROR_CANCELLED and frees everything). */
typedef bool (*mobilellm_progress_callback)(float progress, void *user_data);

/** How to load a model. */
typedef struct mobilellm_model_params {
    /** sizeof(mobilellm_model_params). */
    uint32_t struct_size;
    /** Compute threads each session of this model uses; 0 (the default): every core. At most 1024. The process
     *  shares one pool of this many threads; a session may use fewer (mobilellm_session_set_threads()). */
    int32_t n_threads;
    /** Context length new sessions get when they ask for 0; 0 (the default): min(4096, the model's maximum). */
    int32_t default_context_length;
    /** Weight quantization applied at load: NULL or "" (the default) keeps the stored types; "q8_0", "q4_0",
     *  "q4_1", "q4_k" or "q6_k" quantizes the projections (and embedding/output) of an unquantized model as it
     *  loads, like `mobilellm quantize` would write them. An unknown name gives INVALID_ARGUMENT. */
    const char *quantize;
    /** Optional load progress callback (NULL: none). */
    mobilellm_progress_callback progress_callback;
    /** Passed to progress_callback. */
    void *progress_user_data;
    /** Lock the memory-mapped model files in RAM after loading (mlock), so the OS never pages weights out: every
     *  page of the files is read during the load. Default false. When the system refuses (RLIMIT_MEMLOCK too low,
     *  see `ulimit -l`, or not enough memory) the load fails with INVALID_ARGUMENT naming params->use_mlock, the
     *  error and the limit, and nothing is loaded. Weights converted at load (`quantize`) are not locked.
     *  Appended in ABI v1. */
    bool use_mlock;
    /** How activations meet block-quantized weights: NULL or "" (what mobilellm_model_params_init() leaves) picks
     *  the library's default, which mobilellm_model_info.activations reports after the load; otherwise one of
     *    "exact"  f32 activations times weights dequantized in registers: the numbers transformers computes on
     *             the dequantized model (up to summation order);
     *    "int8"   activations quantized to 8 bits per 32 values for integer dot products: faster, with results
     *             that drift from "exact" by about the activation rounding;
     *    "int16"  "exact", except that prefill passes (16 rows and more) of Q4_0/Q4_1/Q8_0 weights round their
     *             activations to 16 bits per 32-value block for integer dot products on AVX-512 VNNI CPUs:
     *             1.3-1.4x exact's prefill there, logits within a few hundredths of exact's; elsewhere exactly "exact".
     *  Any other name gives INVALID_ARGUMENT naming params->activations and the accepted names. No effect on float
     *  weights. Read only when struct_size covers it (older callers get the default). Appended in ABI v1. */
    const char *activations;
} mobilellm_model_params;

/** Fills `params` with the defaults, struct_size included. Does nothing for NULL. Any thread. */
MOBILELLM_API void mobilellm_model_params_init(mobilellm_model_params *params);

/** Loads a model and stores a new handle in *out_model: a Hugging Face directory (config.json, *.safetensors,
 *  optional generation_config.json and tokenizer files) or a GGUF file (llama.cpp's llama/llama4/qwen2/qwen3
 *  layouts, float or Q4_0/Q4_1/Q5_0/Q5_1/Q8_0/IQ4_NL/Q2_K/Q3_K/Q4_K/Q5_K/Q6_K tensors, its vocabulary and chat
 *  template included); model families: llama4_text (MobileLLM-R1), llama, qwen2, qwen3. Fails with FILE_NOT_FOUND, INVALID_FILE or
 *  UNSUPPORTED naming the file and field, CANCELLED when the progress callback aborts, INVALID_ARGUMENT for
 *  NULL `path`/`out_model` or bad params. The caller owns the handle: release it with mobilellm_model_free().
 *  Any thread; several loads may run at once. */
MOBILELLM_API mobilellm_status mobilellm_model_load(const char *path, const mobilellm_model_params *params,
                                                    mobilellm_model **out_model);

/** Releases the caller's model handle (NULL: no-op). Sessions created from it keep the model alive and keep
 *  working; the memory is released when the last of them is freed. Using the handle afterwards gives
 *  MOBILELLM_ERROR_INVALID_HANDLE. Any thread, but not while another thread still uses this handle in a call. */
MOBILELLM_API mobilellm_status mobilellm_model_free(mobilellm_model *model);

/** Facts about a loaded model. */
typedef struct mobilellm_model_info {
    /** Set by the caller to sizeof(mobilellm_model_info); the library fills at most this many bytes. */
    uint32_t struct_size;
    /** Vocabulary size: length of a logits row; valid token ids are 0 ... vocab_size - 1. */
    int32_t vocab_size;
    /** Longest context the model supports (max_position_embeddings). */
    int32_t context_length;
    /** Context length of a session created with n_ctx 0. */
    int32_t default_context_length;
    /** Decoder layers. */
    int32_t n_layers;
    /** Width of the residual stream. */
    int32_t hidden_size;
    /** Query heads. */
    int32_t n_heads;
    /** Key/value heads. */
    int32_t n_kv_heads;
    /** Dimension of each head. */
    int32_t head_dim;
    /** Compute threads of each session. */
    int32_t n_threads;
    /** Beginning-of-sequence token id, or -1 when the model has none. */
    int32_t bos_token_id;
    /** Number of end-of-sequence token ids (see mobilellm_model_eos_token_ids()). */
    int32_t n_eos_token_ids;
    /** Whether the model has tokenizer files (text functions work). */
    bool has_tokenizer;
    /** Whether the model carries its own chat template (without one, mobilellm_apply_chat_template() uses the
     *  built-in Llama-3 header format). */
    bool has_chat_template;
    /** Whether any weight is block-quantized. */
    bool is_quantized;
    /** How block-quantized weights are multiplied: "exact", "int8" or "int16" (see mobilellm_model_params.activations), the
     *  library's default when the load params left it NULL or "". Reported for float models too, where it changes
     *  nothing. A static string owned by the library, valid for the life of the process. Written only when
     *  struct_size covers it. Appended in ABI v1. */
    const char *activations;
} mobilellm_model_info;

/** Fills `info` (whose struct_size the caller has set; at least the version-1 size). Any thread. */
MOBILELLM_API mobilellm_status mobilellm_model_get_info(const mobilellm_model *model, mobilellm_model_info *info);

/** Copies the end-of-sequence token ids into `ids` (capacity `capacity` ids) and their number into *out_count.
 *  BUFFER_TOO_SMALL (with *out_count set) when they do not fit. Any thread. */
MOBILELLM_API mobilellm_status mobilellm_model_eos_token_ids(const mobilellm_model *model, int32_t *ids,
                                                             size_t capacity, size_t *out_count);

/** Copies the text metadata value `key` into `buffer` (see the buffer convention). Keys: "architecture"
 *  (config.json model_type: "llama4_text", "llama"), "path" (what was loaded), "kv_cache_type" ("f32" or
 *  "f16", what MOBILELLM_KV_AUTO picks), "bos_token" and "eos_token" (their text as chat templates see it; empty
 *  when the model names none) and "chat_template" (the model's Jinja source; empty when it has none).
 *  INVALID_ARGUMENT names an unknown key; INVALID_FILE a malformed tokenizer_config.json. Any thread. */
MOBILELLM_API mobilellm_status mobilellm_model_get_metadata(const mobilellm_model *model, const char *key,
                                                            char *buffer, size_t capacity, size_t *out_length);

/* ------------------------------------------------------------------------------------------------------------ */
/* Text: tokenizer and chat template (these need tokenizer files: MOBILELLM_ERROR_NO_TOKENIZER otherwise)       */
/* ------------------------------------------------------------------------------------------------------------ */

/** Token ids of `text_length` bytes (at most 2^30; no NUL needed, a NUL inside is text) of UTF-8 `text` (NULL
 *  allowed when text_length is 0), as Hugging Face tokenizers' encode gives them. `add_special` adds the model's
 *  BOS/EOS framing; `parse_special` turns special tokens written in the text (e.g. "<|eot_id|>") into their ids;
 *  leave it false for user input. The ids go to `tokens` (capacity `capacity`), their number to *out_count.
 *  INVALID_UTF8 names the first bad byte's offset. The tokenizer is loaded on the first text call (INVALID_FILE
 *  when tokenizer.json is malformed). Any thread. */
MOBILELLM_API mobilellm_status mobilellm_tokenize(const mobilellm_model *model, const char *text, size_t text_length,
                                                  bool add_special, bool parse_special, int32_t *tokens,
                                                  size_t capacity, size_t *out_count);

/** The text of `n_tokens` ids (as HF's decode: bytes joined, invalid UTF-8 replaced by U+FFFD; special tokens
 *  left out with `skip_special`) into `buffer` (see the buffer convention). INVALID_ARGUMENT names an id outside
 *  the vocabulary. Any thread. */
MOBILELLM_API mobilellm_status mobilellm_detokenize(const mobilellm_model *model, const int32_t *tokens, size_t n_tokens,
                                                    bool skip_special, char *buffer, size_t capacity,
                                                    size_t *out_length);

/** The raw bytes token `token` decodes to (possibly part of a UTF-8 sequence; use the streaming detokenizer to
 *  print text) into `buffer`, NUL-terminated, *out_length without the NUL. Any thread. */
MOBILELLM_API mobilellm_status mobilellm_token_to_piece(const mobilellm_model *model, int32_t token, char *buffer,
                                                        size_t capacity, size_t *out_length);

/** Stores in *out_special whether `token` is a special token (BOS, EOS, chat markers). INVALID_ARGUMENT for an id
 *  outside the vocabulary. Any thread. */
MOBILELLM_API mobilellm_status mobilellm_token_is_special(const mobilellm_model *model, int32_t token, bool *out_special);

/** Copies the ids of every special token into `ids` and their number into *out_count. Any thread. */
MOBILELLM_API mobilellm_status mobilellm_model_special_token_ids(const mobilellm_model *model, int32_t *ids,
                                                                 size_t capacity, size_t *out_count);

/** Turns token ids into text one at a time without ever splitting a UTF-8 character. */
typedef struct mobilellm_detokenizer mobilellm_detokenizer;

/** Creates a streaming detokenizer for `model` (which it keeps alive). Caller owns it (mobilellm_detokenizer_free). */
MOBILELLM_API mobilellm_status mobilellm_detokenizer_create(const mobilellm_model *model, bool skip_special,
                                                            mobilellm_detokenizer **out_detokenizer);

/** Frees a detokenizer (NULL: no-op). */
MOBILELLM_API mobilellm_status mobilellm_detokenizer_free(mobilellm_detokenizer *detokenizer);

/** Adds one token and points *out_piece at the text that became complete (*out_length bytes, possibly 0,
 *  NUL-terminated). The text is owned by the detokenizer and valid until its next call. The pieces concatenate
 *  to mobilellm_detokenize() of the same ids. INVALID_ARGUMENT (detokenizer unchanged) for an id outside the
 *  vocabulary. One thread at a time per detokenizer. */
MOBILELLM_API mobilellm_status mobilellm_detokenizer_push(mobilellm_detokenizer *detokenizer, int32_t token,
                                                          const char **out_piece, size_t *out_length);

/** Emits what is held back (an incomplete character becomes U+FFFD) like push, and starts over. */
MOBILELLM_API mobilellm_status mobilellm_detokenizer_flush(mobilellm_detokenizer *detokenizer, const char **out_piece,
                                                           size_t *out_length);

/** One chat message: a role ("system", "user", "assistant", ...) and its content, both UTF-8. */
typedef struct mobilellm_chat_message {
    const char *role;
    const char *content;
} mobilellm_chat_message;

/** How to render a chat. */
typedef struct mobilellm_chat_params {
    /** sizeof(mobilellm_chat_params). */
    uint32_t struct_size;
    /** End with the header of an assistant turn (default true). */
    bool add_generation_prompt;
    /** Extra template variables as a JSON object, e.g. {"enable_thinking": false} or {"tools": [...]}; NULL
     *  (the default): none. INVALID_ARGUMENT names the line and column of malformed JSON. */
    const char *variables_json;
    /** The messages as a JSON array of objects (any fields, e.g. tool calls), used instead of the `messages`
     *  argument when not NULL (the default). */
    const char *messages_json;
    /** A Jinja template to use instead of the model's (NULL, the default: the model's chat template, or the
     *  built-in Llama-3 header format when the model has none). */
    const char *template_override;
} mobilellm_chat_params;

/** Fills `params` with the defaults, struct_size included. Does nothing for NULL. Any thread. */
MOBILELLM_API void mobilellm_chat_params_init(mobilellm_chat_params *params);

/** Renders `n_messages` messages with the model's chat template exactly as transformers'
 *  apply_chat_template(..., tokenize=False) does, into `buffer` (see the buffer convention). Tokenize the result
 *  with add_special false and parse_special true. TEMPLATE for a template that fails (raise_exception included),
 *  INVALID_ARGUMENT for a NULL role or content, INVALID_UTF8 for bad text. Any thread. */
MOBILELLM_API mobilellm_status mobilellm_apply_chat_template(const mobilellm_model *model,
                                                             const mobilellm_chat_message *messages, size_t n_messages,
                                                             const mobilellm_chat_params *params, char *buffer,
                                                             size_t capacity, size_t *out_length);

/* ------------------------------------------------------------------------------------------------------------ */
/* Sessions                                                                                                     */
/* ------------------------------------------------------------------------------------------------------------ */

/** One conversation: a KV cache of fixed capacity, the tokens fed so far and the latest logits. */
typedef struct mobilellm_session mobilellm_session;

/** Element type of a session's KV cache. */
enum mobilellm_kv_cache_type {
    /** f32 for float weights (exact), f16 for quantized weights. */
    MOBILELLM_KV_AUTO = 0,
    MOBILELLM_KV_F32 = 1,
    MOBILELLM_KV_F16 = 2,
    /** ggml Q8_0 blocks (about a quarter of f32); the model's head dimension must be a multiple of 32. */
    MOBILELLM_KV_Q8_0 = 3
};

/** How to create a session. */
typedef struct mobilellm_session_params {
    /** sizeof(mobilellm_session_params). */
    uint32_t struct_size;
    /** Positions the KV cache holds; 0 (the default): the model's default context length. */
    int32_t n_ctx;
    /** A mobilellm_kv_cache_type; default MOBILELLM_KV_AUTO. */
    int32_t kv_cache_type;
} mobilellm_session_params;

/** Fills `params` with the defaults, struct_size included. Does nothing for NULL. Any thread. */
MOBILELLM_API void mobilellm_session_params_init(mobilellm_session_params *params);

/** Creates a session on `model` and stores its handle in *out_session. INVALID_ARGUMENT when n_ctx is outside
 *  1 ... context_length. The session holds a reference to the model. Caller owns the handle (free it with
 *  mobilellm_session_free()). Any thread; sessions of one model may run on different threads at once. */
MOBILELLM_API mobilellm_status mobilellm_session_create(mobilellm_model *model, const mobilellm_session_params *params,
                                                        mobilellm_session **out_session);

/** Frees a session (NULL: no-op). If another thread is still inside a call on it (a contract violation), that
 *  call finishes first and the memory goes with it; the handle is invalid at once. */
MOBILELLM_API mobilellm_status mobilellm_session_free(mobilellm_session *session);

/** Empties the KV cache and forgets the latest logits. */
MOBILELLM_API mobilellm_status mobilellm_session_reset(mobilellm_session *session);

/** Keeps the first `position` tokens and drops the rest, so the next token fed goes to `position`.
 *  INVALID_ARGUMENT unless 0 <= position <= the current position. Forgets the latest logits. */
MOBILELLM_API mobilellm_status mobilellm_session_rewind(mobilellm_session *session, int32_t position);

/** Stores the number of tokens in the KV cache (the position the next token goes to) in *out_position. */
MOBILELLM_API mobilellm_status mobilellm_session_position(const mobilellm_session *session, int32_t *out_position);

/** Stores the session's capacity in tokens in *out_n_ctx. */
MOBILELLM_API mobilellm_status mobilellm_session_context_length(const mobilellm_session *session, int32_t *out_n_ctx);

/** Copies the tokens in the KV cache into `tokens` (capacity `capacity`), their number into *out_count. */
MOBILELLM_API mobilellm_status mobilellm_session_tokens(const mobilellm_session *session, int32_t *tokens,
                                                        size_t capacity, size_t *out_count);

/** Which logits mobilellm_session_eval() returns. */
enum mobilellm_logits_mode {
    /** None: the tokens only extend the KV cache. */
    MOBILELLM_LOGITS_NONE = 0,
    /** The last fed position's row (vocab_size floats). */
    MOBILELLM_LOGITS_LAST = 1,
    /** One row per fed token (n_tokens × vocab_size floats, row-major). */
    MOBILELLM_LOGITS_ALL = 2
};

/** Feeds `n_tokens` tokens at the current position (prefill or decode; both give the same numbers) and copies
 *  the logits `mode` asks for into `logits` (capacity `logits_capacity` floats; may be NULL with mode NONE).
 *  Checked before any work, so nothing is fed when they fail: INVALID_ARGUMENT for an id outside the vocabulary
 *  (message names the index and id), CONTEXT_FULL when the tokens do not fit, BUFFER_TOO_SMALL when the logits
 *  do not fit. CANCELLED after mobilellm_session_cancel() (also during a long prefill); the position is then
 *  back where it was. After any failure the session is exactly as before, its latest logits included. On
 *  success the last position's logits are kept for mobilellm_session_logits() and sampling (none with mode NONE).
 *  One thread at a time per session (BUSY otherwise). */
MOBILELLM_API mobilellm_status mobilellm_session_eval(mobilellm_session *session, const int32_t *tokens,
                                                      size_t n_tokens, int32_t mode, float *logits,
                                                      size_t logits_capacity);

/** Copies the logits of the last position fed by mobilellm_session_eval() (vocab_size floats) into `logits`;
 *  *out_count receives vocab_size. INVALID_ARGUMENT when there are none (nothing evaluated since creation,
 *  reset, rewind, an eval with MOBILELLM_LOGITS_NONE, or a generation, unless it failed before feeding
 *  anything). */
MOBILELLM_API mobilellm_status mobilellm_session_logits(const mobilellm_session *session, float *logits,
                                                        size_t capacity, size_t *out_count);

/** Asks the eval or generate running on `session` to stop: it returns MOBILELLM_ERROR_CANCELLED within one
 *  layer's work. With nothing running this does nothing (and returns MOBILELLM_OK): a request never lingers to
 *  cancel a later call, so a cancel that races with the natural end of a call is harmless and nothing needs
 *  clearing; a cancel sent just before a call starts is lost too, so a host that must stop a call it is about to
 *  start keeps its own flag (checked before the call and in the token callback) or repeats the cancel until the
 *  call returns. THE one call that is safe from any thread at any time, including from a callback of that
 *  session. */
MOBILELLM_API mobilellm_status mobilellm_session_cancel(mobilellm_session *session);

/** Stores in *out_size the bytes mobilellm_session_save_state() needs for the current position. */
MOBILELLM_API mobilellm_status mobilellm_session_state_size(const mobilellm_session *session, size_t *out_size);

/** Saves the tokens and KV cache (only the used positions) into `buffer`; *out_size gets the byte count
 *  (BUFFER_TOO_SMALL with the required size when it does not fit). Restore it into any session of a model with
 *  the same weights to reuse a prefix without recomputing it. */
MOBILELLM_API mobilellm_status mobilellm_session_save_state(const mobilellm_session *session, void *buffer,
                                                            size_t capacity, size_t *out_size);

/** Replaces the session's tokens and KV cache with a saved state. INVALID_ARGUMENT naming the field when the
 *  bytes are not a state, come from a different model or KV cache type, or do not fit this session; the
 *  session is unchanged then. Forgets the latest logits (evaluate one more token to get fresh ones). */
MOBILELLM_API mobilellm_status mobilellm_session_load_state(mobilellm_session *session, const void *buffer,
                                                            size_t size);

/* ------------------------------------------------------------------------------------------------------------ */
/* Sampling                                                                                                     */
/* ------------------------------------------------------------------------------------------------------------ */

/** How tokens are chosen. Applied in transformers' order: repetition penalty, frequency and presence
 *  penalties, then (unless greedy) temperature, top-k, top-p, min-p and a seeded draw. */
typedef struct mobilellm_sampler_params {
    /** sizeof(mobilellm_sampler_params). */
    uint32_t struct_size;
    /** Softmax temperature >= 0; 0 (the default) is greedy: the arg-max, lowest id on ties. */
    float temperature;
    /** Keep the k most likely tokens; 0 (default): off. */
    int32_t top_k;
    /** Nucleus sampling in (0, 1]; 1 (default): off. */
    float top_p;
    /** Drop tokens below min_p × the top probability, in [0, 1]; 0 (default): off. */
    float min_p;
    /** transformers' repetition penalty (> 0); 1 (default): off. */
    float repetition_penalty;
    /** Subtracted once per earlier occurrence; 0 (default): off. */
    float frequency_penalty;
    /** Subtracted when a token occurred at all; 0 (default): off. */
    float presence_penalty;
    /** Most recent tokens the penalties look at; -1 (default): all, prompt included. */
    int32_t penalty_window;
    /** Random seed; the same seed gives the same tokens. */
    uint64_t seed;
    /** When false (the default), a fresh random seed is used and `seed` is ignored. */
    bool use_seed;
} mobilellm_sampler_params;

/** Fills `params` with the defaults (greedy), struct_size included. Does nothing for NULL. Any thread. */
MOBILELLM_API void mobilellm_sampler_params_init(mobilellm_sampler_params *params);

/** A sampler: the parameters plus the random state, so a seeded sequence continues across calls. */
typedef struct mobilellm_sampler mobilellm_sampler;

/** Creates a sampler; INVALID_ARGUMENT names a parameter out of range. Caller owns it (mobilellm_sampler_free). */
MOBILELLM_API mobilellm_status mobilellm_sampler_create(const mobilellm_sampler_params *params,
                                                        mobilellm_sampler **out_sampler);

/** Frees a sampler (NULL: no-op). */
MOBILELLM_API mobilellm_status mobilellm_sampler_free(mobilellm_sampler *sampler);

/** Chooses the next token from the session's latest logits, with the session's tokens as penalty history, and
 *  stores it in *out_token. Does not feed it. INVALID_ARGUMENT when the session has no logits. */
MOBILELLM_API mobilellm_status mobilellm_sampler_sample(mobilellm_sampler *sampler, const mobilellm_session *session,
                                                        int32_t *out_token);

/** Chooses a token from `n_logits` raw logits with `history` (`n_history` ids, NULL when 0) as penalty history. */
MOBILELLM_API mobilellm_status mobilellm_sampler_sample_logits(mobilellm_sampler *sampler, const float *logits,
                                                               size_t n_logits, const int32_t *history,
                                                               size_t n_history, int32_t *out_token);

/** Token ids of `text` (as mobilellm_tokenize) as the next input of `session`, by the prompt rule every host
 *  shares: special tokens written in the text are parsed, and BOS is added when the session is empty unless the
 *  text starts with the BOS token. Output and errors as mobilellm_tokenize. Appended in ABI v1. One thread at a
 *  time per session (BUSY otherwise). */
MOBILELLM_API mobilellm_status mobilellm_session_tokenize_prompt(mobilellm_session *session, const char *text,
                                                                 size_t text_length, int32_t *tokens,
                                                                 size_t capacity, size_t *out_count);

/* ------------------------------------------------------------------------------------------------------------ */
/* One-call generation                                                                                          */
/* ------------------------------------------------------------------------------------------------------------ */

/** Sees each generated token as it is chosen. `piece` is the text that token completes, from a streaming
 *  detokenizer: only whole UTF-8 characters (possibly empty while a character is split across tokens; special
 *  tokens appear as their text), `piece_length` bytes, NUL-terminated, valid during the call. NULL with length 0
 *  when the model has no (loadable) tokenizer. Return true to go on, false to stop generating. */
typedef bool (*mobilellm_token_callback)(int32_t token, const char *piece, size_t piece_length, void *user_data);

/** Why a generation ended. */
enum mobilellm_stop_reason {
    /** An end-of-sequence (or stop) token was produced; it is the last token and was not passed to the callback. */
    MOBILELLM_STOP_EOS = 1,
    /** max_tokens tokens were produced. */
    MOBILELLM_STOP_MAX_TOKENS = 2,
    /** The session's context filled up. */
    MOBILELLM_STOP_CONTEXT_FULL = 3,
    /** The callback returned false. */
    MOBILELLM_STOP_CALLBACK = 4,
    /** One of mobilellm_generate_params.stop_strings appeared in the text (appended in ABI v1). */
    MOBILELLM_STOP_STRING = 5,
    /** The sequence was cancelled (batch sequences only; appended in ABI v1). */
    MOBILELLM_STOP_CANCELLED = 6,
    /** The grammar or JSON Schema (mobilellm_generate_params.grammar / json_schema) matched a whole string and
     *  nothing more may follow, or no token was allowed (appended in ABI v1). */
    MOBILELLM_STOP_GRAMMAR = 7
};

/** Where a piece of generated text belongs when reasoning is tracked (mobilellm_generate_params.reasoning).
 *  Appended in ABI v1. Without reasoning tracking every piece is an answer piece. */
enum mobilellm_channel {
    /** Text of the answer (after the thought, or all text when no thought is open). */
    MOBILELLM_CHANNEL_ANSWER = 0,
    /** Text inside the thought, without its markers. */
    MOBILELLM_CHANNEL_REASONING = 1,
    /** The text of a start or end marker itself ("<think>", "</think>"); never split across pieces. */
    MOBILELLM_CHANNEL_MARKER = 2
};

/** Most alternatives a mobilellm_token_logprob carries. */
#define MOBILELLM_MAX_TOP_LOGPROBS 20

/** A generated token's log-probability and its most likely alternatives, from the distribution the token was
 *  sampled from: after logit bias, bans, the grammar mask, penalties and temperature (temperature 1 when
 *  greedy), before top-k / top-p / min-p truncation; with mobilellm_generate_params.raw_logprobs, from the raw
 *  logits instead. Natural logarithms. A fixed layout (appended in ABI v1). */
typedef struct mobilellm_token_logprob {
    /** The chosen token. */
    int32_t token;
    /** Its log-probability (0 for a token the engine forced, which was not sampled). */
    float logprob;
    /** Entries used in top_tokens / top_logprobs (mobilellm_generate_params.n_logprobs, or fewer). */
    int32_t n_top;
    /** The n_top most likely tokens, most likely first (ties: lower id first). */
    int32_t top_tokens[MOBILELLM_MAX_TOP_LOGPROBS];
    /** Their log-probabilities. */
    float top_logprobs[MOBILELLM_MAX_TOP_LOGPROBS];
} mobilellm_token_logprob;

/** One piece of streamed text with what it belongs to (appended in ABI v1). */
typedef struct mobilellm_piece {
    /** The token whose text this piece completes; -1 for text released at the end (held back for stop strings
     *  or markers). A token may deliver several pieces when its text crosses a marker. */
    int32_t token;
    /** A mobilellm_channel. */
    int32_t channel;
    /** UTF-8, `text_length` bytes, NUL-terminated (whole characters only; possibly empty). Valid during the call. */
    const char *text;
    /** Bytes of text. */
    size_t text_length;
    /** With n_logprobs >= 0: the token's log-probabilities on its first piece (NULL on its other pieces and on
     *  the final rest; a token the engine forced, such as a reasoning budget's closing text, has logprob 0 and no
     *  alternatives). Otherwise NULL. Valid during the call. */
    const mobilellm_token_logprob *logprob;
} mobilellm_piece;

/** Sees each piece of generated text as it becomes final (appended in ABI v1): `piece` and what it points to are
 *  valid during the call. Return true to go on, false to stop generating (MOBILELLM_STOP_CALLBACK). */
typedef bool (*mobilellm_piece_callback)(const mobilellm_piece *piece, void *user_data);

/** Settings of mobilellm_session_generate(). */
typedef struct mobilellm_generate_params {
    /** sizeof(mobilellm_generate_params). */
    uint32_t struct_size;
    /** Most tokens to produce (default 256; 0 produces none; large values are bounded by the context). */
    int32_t max_tokens;
    /** Tokens that end generation (`n_stop_token_ids` of them); NULL (the default): the model's EOS ids. */
    const int32_t *stop_token_ids;
    /** Number of stop_token_ids. */
    size_t n_stop_token_ids;
    /** Keep going past end-of-sequence tokens (default false). */
    bool ignore_eos;
    /** Called for every token but a final end-of-sequence token (NULL: none). */
    mobilellm_token_callback callback;
    /** Passed to callback. */
    void *user_data;
    /** Appended in ABI v1 (read only when struct_size covers it): strings that end generation when they appear in
     *  the text (`n_stop_strings` NUL-terminated UTF-8 strings, read during the call; NULL: none; empty strings
     *  are ignored). With stop strings the callback's pieces hold back text that could begin one, a final call
     *  with token -1 delivers the held-back rest when no stop string matched, and the stop reason is
     *  MOBILELLM_STOP_STRING when one did (the text then ends just before it). Needs a tokenizer
     *  (MOBILELLM_ERROR_NO_TOKENIZER otherwise). */
    const char *const *stop_strings;
    /** Number of stop_strings (at most 1024). */
    size_t n_stop_strings;

    /* Output control, appended in ABI v1 (read only when struct_size covers them; defaults: all off). Every string
     * is NUL-terminated UTF-8 read during the call. */

    /** A GBNF grammar (llama.cpp's syntax, start rule "root") every generated token must keep the output inside;
     *  NULL: none. When the grammar has matched a whole string and nothing more may follow, generation ends with
     *  MOBILELLM_STOP_GRAMMAR; end-of-sequence tokens are allowed only where the grammar may end. With reasoning
     *  tracking the grammar applies to the answer only (after the end marker). A grammar that does not compile
     *  fails the call with MOBILELLM_ERROR_GRAMMAR giving the rule, line and column. Needs a tokenizer. */
    const char *grammar;
    /** A JSON Schema (JSON text) compiled to a grammar, as `grammar`; NULL: none. Setting both is an
     *  INVALID_ARGUMENT. An unsupported or malformed schema fails with MOBILELLM_ERROR_GRAMMAR naming the JSON
     *  pointer. */
    const char *json_schema;
    /** Logit bias: `n_logit_bias` token ids and the values added to their logits (-INFINITY bans the token;
     *  other values must be finite). NULL when n_logit_bias is 0; at most 1 << 20 entries. */
    const int32_t *logit_bias_tokens;
    /** The values for logit_bias_tokens. */
    const float *logit_bias_values;
    /** Number of logit bias entries. */
    size_t n_logit_bias;
    /** -1 (the default): no log-probabilities; 0 ... MOBILELLM_MAX_TOP_LOGPROBS: each piece_callback piece gets its
     *  token's log-probability and that many alternatives. */
    int32_t n_logprobs;
    /** Log-probabilities from the raw logits' log-softmax instead of the distribution sampled from (default
     *  false). */
    bool raw_logprobs;
    /** Track reasoning (default false): pieces are tagged MOBILELLM_CHANNEL_REASONING inside the thought (between
     *  reasoning_start and reasoning_end), MOBILELLM_CHANNEL_MARKER for the markers and MOBILELLM_CHANNEL_ANSWER
     *  after it. A prompt that ends inside an open thought starts in reasoning. Needs a tokenizer. */
    bool reasoning;
    /** Most reasoning tokens (-1, the default: no limit; 0: close a thought as soon as it opens). When the budget
     *  runs out inside a thought, the engine feeds reasoning_closing (its tokens count as generated tokens but are
     *  not sampled) and generation goes on with the answer; mobilellm_generate_result reports where. */
    int32_t reasoning_budget;
    /** The thought's start marker; NULL: "<think>". */
    const char *reasoning_start;
    /** The thought's end marker; NULL: "</think>". */
    const char *reasoning_end;
    /** The text fed when the budget runs out; it must contain reasoning_end. NULL: the engine's default (a short
     *  transition sentence and the end marker; see the README). */
    const char *reasoning_closing;
    /** Called for each piece of text with its channel and log-probabilities (NULL: none). Passed `user_data`.
     *  May be set together with `callback`; pieces then stream through the engine's text rules (hold-back of
     *  stop-string and marker candidates) for both. */
    mobilellm_piece_callback piece_callback;
    /** Logit bias by text: `n_logit_bias_pieces` strings, each applying its value to every token whose piece (its
     *  text, as mobilellm_token_to_piece gives it) equals the string; a string no token has is an
     *  INVALID_ARGUMENT. Values as logit_bias_values. NULL when n_logit_bias_pieces is 0; at most 1 << 16. Needs
     *  a tokenizer. */
    const char *const *logit_bias_pieces;
    /** The values for logit_bias_pieces. */
    const float *logit_bias_piece_values;
    /** Number of logit_bias_pieces. */
    size_t n_logit_bias_pieces;
    /** With n_logprobs >= 0, mobilellm_session_generate() writes the log-probabilities of the generated tokens
     *  here, one per token in order (a stopping end-of-sequence token included; forced tokens get logprob 0 and no
     *  alternatives), at most `out_logprobs_capacity` of them (the rest are dropped; result->n_tokens says how
     *  many tokens there were). NULL: not written. Batches ignore it (see mobilellm_batch_result_logprobs()). */
    mobilellm_token_logprob *out_logprobs;
    /** Entries out_logprobs has room for. */
    size_t out_logprobs_capacity;
} mobilellm_generate_params;

/** Fills `params` with the defaults, struct_size included. Does nothing for NULL. Any thread.
 *  The exported function fills the first-release layout only (48 bytes on LP64, struct_size 48), so programs built
 *  against an older header are never overrun; this header turns the call into
 *  mobilellm_generate_params_init_sized(params, sizeof *params), which fills the appended fields too. */
MOBILELLM_API void mobilellm_generate_params_init(mobilellm_generate_params *params);

/** Fills the first `size` bytes of `params` (at most the library's layout) with the defaults and sets struct_size
 *  to the bytes filled. Does nothing for NULL or a size below the first-release layout. Any thread. Appended in
 *  ABI v1. */
MOBILELLM_API void mobilellm_generate_params_init_sized(mobilellm_generate_params *params, size_t size);
#define mobilellm_generate_params_init(params) mobilellm_generate_params_init_sized((params), sizeof *(params))

/** What a generation produced. */
typedef struct mobilellm_generate_result {
    /** Set by the caller to sizeof(mobilellm_generate_result); the library fills at most this many bytes. */
    uint32_t struct_size;
    /** A mobilellm_stop_reason. */
    int32_t stop_reason;
    /** Prompt tokens fed. */
    int32_t n_prompt_tokens;
    /** Tokens generated (the stopping EOS token included); all were written when they fit in out_tokens. */
    int32_t n_tokens;
    /** Appended in ABI v1 (written only when struct_size covers it): generated tokens inside the thought (with
     *  mobilellm_generate_params.reasoning; 0 otherwise). */
    int32_t n_reasoning_tokens;
    /** Appended in ABI v1: the index (in the generated tokens) where the reasoning budget ran out and the closing
     *  text was fed, or -1. */
    int32_t reasoning_budget_index;
} mobilellm_generate_result;

/** Feeds `prompt` (`n_prompt` ids; with 0 it continues from the tokens already in the session) and produces
 *  tokens with `sampler_params` (NULL: greedy) until a stop token, max_tokens, a full context or the callback
 *  says stop. Generated ids go to `out_tokens` (capacity `out_capacity`, NULL when 0; extra ids are dropped,
 *  result->n_tokens says how many there were) and `result` (may be NULL) gets the stop reason and counts. The
 *  session keeps the prompt and every generated token but the last, so a follow-up should feed that last token.
 *  Fails like mobilellm_session_eval() for the prompt (nothing fed), INVALID_ARGUMENT for bad params and
 *  CANCELLED after mobilellm_session_cancel() (the session then holds what was fed before the cancel).
 *  One thread at a time per session (BUSY otherwise). */
MOBILELLM_API mobilellm_status mobilellm_session_generate(mobilellm_session *session, const int32_t *prompt,
                                                          size_t n_prompt,
                                                          const mobilellm_sampler_params *sampler_params,
                                                          const mobilellm_generate_params *params,
                                                          int32_t *out_tokens, size_t out_capacity,
                                                          mobilellm_generate_result *result);

/* ------------------------------------------------------------------------------------------------------------ */
/* Batched generation (appended in ABI v1)                                                                      */
/* ------------------------------------------------------------------------------------------------------------ */

/** Many generations of one model advanced together: every mobilellm_batch_step() is one forward pass that reads
 *  the weights once for all running sequences (one decode token each, plus prompt chunks of sequences still
 *  reading their prompts: a sequence added while others decode joins at the next step). Each sequence runs on its
 *  own KV cache, and its tokens are those mobilellm_session_generate() gives for the same prompt and settings on
 *  a fresh session (bit-identical logits for float weights; quantized weights agree to float rounding).
 *
 *  Sequences are named by ids: 0, 1, 2, ... in the order they were added to the batch. A sequence reports
 *  MOBILELLM_BATCH_EVENT_TOKEN events while it generates and one MOBILELLM_BATCH_EVENT_FINISHED event when it
 *  ends; its tokens and result stay readable (mobilellm_batch_result()) until mobilellm_batch_forget() or
 *  mobilellm_batch_free().
 *
 *  THREADING: add, step, result, logits and forget calls on one batch are made by one thread at a time (BUSY
 *  otherwise); mobilellm_batch_cancel(), mobilellm_batch_cancel_all() and mobilellm_batch_active_count() are safe
 *  from any thread at any time, also while another thread is inside mobilellm_batch_step(). Different batches
 *  (and sessions) run on different threads at once; their forward passes take turns on the compute threads.
 *  A batch keeps its model alive. Appended in ABI v1, like everything in this section. */
typedef struct mobilellm_batch mobilellm_batch;

/** How to create a batch. */
typedef struct mobilellm_batch_params {
    /** sizeof(mobilellm_batch_params). */
    uint32_t struct_size;
    /** Most rows (tokens) one step computes, 1 ... 256: every running sequence's decode token, plus prompt chunks
     *  up to this; 0 (the default): 256. Bounds a step's scratch memory and duration. */
    int32_t max_rows_per_step;
    /** Positions of the KV cache of each sequence mobilellm_batch_add() creates; 0 (the default): the model's
     *  default context length (as mobilellm_session_params.n_ctx). */
    int32_t n_ctx;
    /** A mobilellm_kv_cache_type for those caches; default MOBILELLM_KV_AUTO. */
    int32_t kv_cache_type;
    /** Whether events carry text (default false): token events get the text their token completes and finished
     *  events the held-back rest, as mobilellm_session_generate()'s callback pieces (whole UTF-8 characters,
     *  special tokens as their text, stop-string candidates held back), and mobilellm_batch_result_text() gives
     *  each sequence's text. Needs a tokenizer: adds fail with NO_TOKENIZER without one. Stop strings
     *  (mobilellm_generate_params.stop_strings) always stream text for their sequence. */
    bool stream_text;
    /** Whether each step keeps the logits every sequence sampled from, for mobilellm_batch_logits() (default
     *  false: keeping them copies vocab_size floats per sequence and step). */
    bool keep_logits;
} mobilellm_batch_params;

/** Fills `params` with the defaults, struct_size included. Does nothing for NULL. Any thread. */
MOBILELLM_API void mobilellm_batch_params_init(mobilellm_batch_params *params);

/** Creates an empty batch of `model` (which it keeps alive) and stores its handle in *out_batch. `params` NULL:
 *  the defaults. INVALID_ARGUMENT names a field out of range. Caller owns the handle (mobilellm_batch_free()). */
MOBILELLM_API mobilellm_status mobilellm_batch_create(const mobilellm_model *model,
                                                      const mobilellm_batch_params *params, mobilellm_batch **out_batch);

/** Frees a batch (NULL: no-op): running sequences are dropped, event texts and results released. Sessions given
 *  to mobilellm_batch_add_session() stay valid (holding what their sequence had fed). If another thread is still
 *  inside a call on it (a contract violation), that call finishes first; the handle is invalid at once. */
MOBILELLM_API mobilellm_status mobilellm_batch_free(mobilellm_batch *batch);

/** Adds `n_samples` (>= 1) sequences that continue `prompt` (`n_prompt` ids, at least 1) on new KV caches (see
 *  mobilellm_batch_params.n_ctx) and writes their ids to `out_ids` (room for n_samples ids). The prompt is fed
 *  once, and the other samples fork its cache (sharing its memory) and sample their first token from the same
 *  logits; with sampler_params->use_seed, sample i uses seed + i, so each sample's tokens are those of a single
 *  generation seeded with seed + i. `sampler_params` (NULL: greedy) and `params` (NULL: the defaults) are read as
 *  mobilellm_session_generate() reads them (struct_size rules, stop ids, stop strings, max_tokens, ignore_eos),
 *  except that params->callback must be NULL: tokens arrive as events. Fails, adding nothing, with
 *  INVALID_ARGUMENT (a NULL pointer, n_samples < 1, an id outside the vocabulary naming its index, an empty
 *  prompt, a bad field named as params->... or sampler_params->...), CONTEXT_FULL when the prompt does not fit,
 *  NO_TOKENIZER when text is streamed without a tokenizer. The sequences start at the next step. */
MOBILELLM_API mobilellm_status mobilellm_batch_add(mobilellm_batch *batch, const int32_t *prompt, size_t n_prompt,
                                                   const mobilellm_sampler_params *sampler_params,
                                                   const mobilellm_generate_params *params, int32_t n_samples,
                                                   int32_t *out_ids);

/** Adds one sequence that feeds `prompt` to an existing `session` of the batch's model (n_prompt 0 continues
 *  from its last token, as mobilellm_session_generate() does) and then generates; its id goes to *out_id. The
 *  session belongs to the batch until the sequence finishes (or the batch is freed): calls on it wait for a
 *  running step meanwhile, and it keeps the prompt and the generated tokens but the last. Its latest logits are
 *  forgotten. Fails as mobilellm_batch_add(), and with INVALID_ARGUMENT when the session belongs to another model
 *  or already runs a sequence of this batch. The session handle may be freed while its sequence runs. */
MOBILELLM_API mobilellm_status mobilellm_batch_add_session(mobilellm_batch *batch, mobilellm_session *session,
                                                           const int32_t *prompt, size_t n_prompt,
                                                           const mobilellm_sampler_params *sampler_params,
                                                           const mobilellm_generate_params *params,
                                                           int32_t *out_id);

/** What happened to a sequence in a step. */
enum mobilellm_batch_event_type {
    /** The sequence produced `token` (not an end-of-sequence token that ended it). */
    MOBILELLM_BATCH_EVENT_TOKEN = 1,
    /** The sequence ended; its tokens and text are readable with mobilellm_batch_result(). */
    MOBILELLM_BATCH_EVENT_FINISHED = 2
};

/** One event of mobilellm_batch_step(). A fixed layout (no struct_size): a later version that needs more
 *  fields adds a new step function. */
typedef struct mobilellm_batch_event {
    /** A mobilellm_batch_event_type. */
    int32_t type;
    /** The sequence's id. */
    int32_t sequence;
    /** TOKEN: the token. FINISHED: -1. */
    int32_t token;
    /** FINISHED: a mobilellm_stop_reason (MOBILELLM_STOP_CANCELLED after a cancel). TOKEN: 0. */
    int32_t stop_reason;
    /** FINISHED: tokens generated (a stopping EOS token included). TOKEN: tokens generated so far, this one
     *  included. */
    int32_t n_tokens;
    /** FINISHED: prompt tokens fed for the sequence (0 for a sample that forked another's prompt). TOKEN: 0. */
    int32_t n_prompt_tokens;
    /** With mobilellm_batch_params.stream_text (or stop strings): TOKEN: the text this token completes (possibly
     *  empty); FINISHED: the held-back rest released at the end (possibly empty). Otherwise NULL. UTF-8,
     *  `text_length` bytes, NUL-terminated; owned by the batch and valid until the next mobilellm_batch_step()
     *  or mobilellm_batch_free() on it. */
    const char *text;
    /** Bytes of `text` (0 when NULL). */
    size_t text_length;
} mobilellm_batch_event;

/** Runs one step and copies its events (tokens produced, sequences finished) into
 *  `events` (capacity `capacity` >= 1 events); *out_count gets how many were written. When a step produces more
 *  than `capacity` events, the rest are delivered by the next calls before any further step runs (2 ×
 *  mobilellm_batch_active_count() always holds a whole step). *out_count is 0 when no sequence is left. Sequences
 *  asked to stop finish with MOBILELLM_STOP_CANCELLED here. A failing forward pass leaves the sequences as they
 *  were before the step. Event texts of the previous call are released at the start of this one. */
MOBILELLM_API mobilellm_status mobilellm_batch_step(mobilellm_batch *batch, mobilellm_batch_event *events,
                                                    size_t capacity, size_t *out_count);

/** Stores the number of sequences not yet finished (events still waiting to be delivered by
 *  mobilellm_batch_step() included) in *out_count. Any thread. */
MOBILELLM_API mobilellm_status mobilellm_batch_active_count(const mobilellm_batch *batch, size_t *out_count);

/** Asks sequence `id` to stop: it finishes with MOBILELLM_STOP_CANCELLED at the next step (what it generated is
 *  kept). A finished id is ignored; INVALID_ARGUMENT for an id this batch never issued. Any thread, any time. */
MOBILELLM_API mobilellm_status mobilellm_batch_cancel(mobilellm_batch *batch, int32_t id);

/** Asks every sequence added so far to stop: a running step ends within one layer's work, and each finishes with
 *  MOBILELLM_STOP_CANCELLED at the next step. Sequences added later are not affected. Any thread, any time. */
MOBILELLM_API mobilellm_status mobilellm_batch_cancel_all(mobilellm_batch *batch);

/** Copies the generated tokens of finished sequence `id` into `tokens` (capacity `capacity`; see the buffer
 *  convention) and their number into *out_count, and fills `result` (may be NULL; caller sets its struct_size)
 *  with its stop reason and counts. INVALID_ARGUMENT when `id` has not finished (or was forgotten). */
MOBILELLM_API mobilellm_status mobilellm_batch_result(mobilellm_batch *batch, int32_t id, int32_t *tokens,
                                                      size_t capacity, size_t *out_count,
                                                      mobilellm_generate_result *result);

/** Copies the text of finished sequence `id` (as mobilellm_batch_params.stream_text describes; "" when the batch
 *  does not stream text) into `buffer` (see the buffer convention). INVALID_ARGUMENT when `id` has not finished. */
MOBILELLM_API mobilellm_status mobilellm_batch_result_text(mobilellm_batch *batch, int32_t id, char *buffer,
                                                           size_t capacity, size_t *out_length);

/** Releases the kept result of finished sequence `id` (a long-running batch calls it after reading a result).
 *  INVALID_ARGUMENT when `id` has not finished or was already forgotten. */
MOBILELLM_API mobilellm_status mobilellm_batch_forget(mobilellm_batch *batch, int32_t id);

/** Copies the logits sequence `id` sampled its token from in the latest step (vocab_size floats; a sample's
 *  first token comes from its prompt's logits) into `logits`, and vocab_size into *out_count. Needs
 *  mobilellm_batch_params.keep_logits; INVALID_ARGUMENT when the sequence sampled nothing in the latest step. */
MOBILELLM_API mobilellm_status mobilellm_batch_logits(mobilellm_batch *batch, int32_t id, float *logits,
                                                      size_t capacity, size_t *out_count);

/** The pieces of events[`index`] of the latest mobilellm_batch_step() call: its text split by channel (see
 *  mobilellm_piece; the first piece of a TOKEN event carries the token and, with params->n_logprobs >= 0, its
 *  log-probabilities; a FINISHED event's pieces are its held-back rest). *out_pieces gets an array of *out_count
 *  pieces (0 and NULL for an event without text, i.e. a sequence that streams no text), owned by the batch and
 *  valid until the next mobilellm_batch_step() or mobilellm_batch_free(). INVALID_ARGUMENT when `index` is not an
 *  event of that call. One thread at a time per batch, as step. Appended in ABI v1. */
MOBILELLM_API mobilellm_status mobilellm_batch_event_pieces(mobilellm_batch *batch, size_t index,
                                                            const mobilellm_piece **out_pieces, size_t *out_count);

/** Copies one channel of finished sequence `id`'s text (MOBILELLM_CHANNEL_REASONING: the thought without its
 *  markers; MOBILELLM_CHANNEL_ANSWER: the rest without markers; needs params->reasoning, else the answer is the
 *  whole text) into `buffer` (see the buffer convention). INVALID_ARGUMENT for another channel or an id that has
 *  not finished. Appended in ABI v1. */
MOBILELLM_API mobilellm_status mobilellm_batch_result_channel_text(mobilellm_batch *batch, int32_t id, int32_t channel,
                                                                   char *buffer, size_t capacity, size_t *out_length);

/** Copies the log-probabilities of finished sequence `id`'s generated tokens (one per token, in order; none
 *  unless params->n_logprobs >= 0) into `logprobs` (capacity `capacity` entries; see the buffer convention) and
 *  their number into *out_count. Appended in ABI v1. */
MOBILELLM_API mobilellm_status mobilellm_batch_result_logprobs(mobilellm_batch *batch, int32_t id,
                                                               mobilellm_token_logprob *logprobs, size_t capacity,
                                                               size_t *out_count);

/* ------------------------------------------------------------------------------------------------------------ */
/* Memory, threads and the system (appended in ABI v1)                                                         */
/* ------------------------------------------------------------------------------------------------------------ */

/** What a model and one full session of it will hold in memory, estimated before loading. The parts add up to
 *  total_bytes: the growth of the process's resident memory from just before mobilellm_model_load() to the peak
 *  of a session that fills n_ctx positions (the tests compare it with peak RSS (VmHWM) minus RSS before the load,
 *  measured in a child process after a warm-up load of a tiny model, within 5%; see scripts/measure_memory.py).
 *  Not counted: the library's own code pages (a few MB, resident after the first load in a process), the
 *  tokenizer (parsed on the first text call or mobilellm_model_get_info(): a few MB for a 50K vocabulary),
 *  batches, forks, and logits a caller asks for beyond the last row. Appended in ABI v1. */
typedef struct mobilellm_memory_estimate {
    /** Set by the caller to sizeof(mobilellm_memory_estimate); the library fills at most this many bytes. */
    uint32_t struct_size;
    /** The context length estimated for (n_ctx, or the default it stands for). */
    int32_t n_ctx;
    /** The KV cache type estimated for: MOBILELLM_KV_F32 or MOBILELLM_KV_F16, what MOBILELLM_KV_AUTO picks. */
    int32_t kv_cache_type;
    /** Compute threads estimated for (params->n_threads, or every core). */
    int32_t n_threads;
    /** Model file bytes that are memory-mapped and read during inference (file-backed pages the OS may drop and read
     *  back): headers and used tensors, less tensors converted or rearranged at load (not less them with
     *  params->use_mlock, which locks the whole files in). */
    uint64_t weights_mapped_bytes;
    /** Weight bytes in anonymous memory: matrices converted at load (params->quantize), quantized matrices
     *  rearranged at load for the int8 kernels (params->activations "int8", where the CPU's kernels want it) and the
     *  norm weights and biases (kept as f32). */
    uint64_t weights_anonymous_bytes;
    /** KV cache bytes one position adds, over all layers. */
    uint64_t kv_bytes_per_position;
    /** KV cache bytes of a full session of n_ctx positions (allocated in pages as the context fills). */
    uint64_t kv_bytes;
    /** One session's forward-pass buffers: activations of a full prefill batch, attention scratch for n_ctx
     *  positions on every thread, the last logits row. */
    uint64_t scratch_bytes;
    /** weights_mapped_bytes + weights_anonymous_bytes + kv_bytes + scratch_bytes. */
    uint64_t total_bytes;
} mobilellm_memory_estimate;

/** Estimates the memory of loading the model at `path` with `params` (NULL: defaults) and filling one session of
 *  `n_ctx` positions (0: the default context length, as mobilellm_session_params.n_ctx 0) with a MOBILELLM_KV_AUTO
 *  cache, and writes it to *out (whose struct_size the caller has set; at least the version-1 size). Reads only
 *  headers (GGUF metadata and tensor table, or config.json and safetensors headers), never tensor data, and
 *  applies the loader's own rules (params->quantize, params->activations, the KV cache's pages, the session's
 *  buffers). Fails as mobilellm_model_load() does, with the same messages: FILE_NOT_FOUND, INVALID_FILE or
 *  UNSUPPORTED naming the file and field, INVALID_ARGUMENT for NULL `path`/`out`, bad params, or n_ctx outside
 *  0 ... the model's context_length. params->progress_callback is not called. Any thread; *out is written only on
 *  success. */
MOBILELLM_API mobilellm_status mobilellm_model_estimate_memory(const char *path, const mobilellm_model_params *params,
                                                               int32_t n_ctx, mobilellm_memory_estimate *out);

/** Makes the session's later evals and generations run on `n_threads` threads of the model's compute pool: 1 ...
 *  the model's n_threads (mobilellm_model_info.n_threads), or 0 for all of them (the default). The pool is shared
 *  by the process and never grows; the other threads stay idle during this session's work. Results do not depend
 *  on it: work is split by output rows and fixed attention segments, never by summation order, so every thread
 *  count gives bit-identical logits and tokens. INVALID_ARGUMENT (naming n_threads and the range) otherwise;
 *  BUSY from the session's own callbacks. One thread at a time per session, like eval. Appended in ABI v1. */
MOBILELLM_API mobilellm_status mobilellm_session_set_threads(mobilellm_session *session, int32_t n_threads);

/** mobilellm_session_set_threads() for a batch: its later steps run on `n_threads` threads of the model's pool
 *  (0: all; 1 ... the model's n_threads), with identical results. INVALID_ARGUMENT naming n_threads otherwise;
 *  one thread at a time, like mobilellm_batch_step() (BUSY otherwise). Appended in ABI v1. */
MOBILELLM_API mobilellm_status mobilellm_batch_set_threads(mobilellm_batch *batch, int32_t n_threads);

/** A report of this machine and build, one "key: value" line each: the architecture, the CPU features the kernels
 *  use (x86: avx2 fma f16c avx512f avx512bw avx512vl avx512dq avx512vbmi avx512-vnni avx512-bf16; ARM64: neon
 *  dotprod fp16 i8mm bf16), the instruction-set level in use, the attention kernel per K/V cache type ("attention
 *  (head size 64 / 320): f32 avx2 / avx512, ..."), and for every weight type the kernel each mode runs ("f16: avx2",
 *  "q4_0: exact-decode avx2, exact-prefill avx2-gemm, int16-prefill avx2-gemm, int8 avx2-r8"), as the kernels' own dispatch decides it. A static NUL-terminated UTF-8 string owned by the library, valid forever; never NULL; never fails; any
 *  thread. Appended in ABI v1. */
MOBILELLM_API const char *mobilellm_system_info(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* MOBILELLM_H */
