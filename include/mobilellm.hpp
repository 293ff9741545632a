// mobilellm.hpp — a header-only C++17 RAII wrapper over mobilellm.h.
//
// Every failing call throws mobilellm::Error carrying the mobilellm_status and the library's message. Objects are
// move-only and free their handle in the destructor. Threading is the C contract: a Model may be shared by any
// number of Sessions on any threads; a Session (and a Sampler) is used by one thread at a time; Session::cancel()
// is safe from anywhere. A Session keeps its model alive, so destroying the Model first is allowed. A Batch runs
// many generations of one model together (mobilellm_batch_*); Batch::cancel() is safe from anywhere.
#ifndef MOBILELLM_HPP
#define MOBILELLM_HPP

#include <cstdint>
#include <exception>
#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mobilellm.h"

namespace mobilellm {

/// A failed call: the status code and the library's message (which names the file, field or argument).
class Error : public std::runtime_error {
public:
    Error(mobilellm_status status, const std::string &message) : std::runtime_error(message), status_(status) {}
    /// The MOBILELLM_ERROR_* code.
    mobilellm_status status() const noexcept { return status_; }

private:
    mobilellm_status status_;
};

/// Throws Error with this thread's last message unless `status` is MOBILELLM_OK.
inline void check(mobilellm_status status) {
    if (status != MOBILELLM_OK) throw Error(status, mobilellm_last_error());
}

/// mobilellm_model_params with the defaults filled in. Set its fields as in C, e.g. `params.quantize = "q8_0";` or
/// `params.activations = "int8";` (nullptr: the library's default, which Model::activations() reports); the strings
/// must outlive the Model constructor or estimate_memory call.
struct ModelParams : mobilellm_model_params {
    ModelParams() noexcept : mobilellm_model_params() { mobilellm_model_params_init(this); }
};

/// A memory estimate (mobilellm_memory_estimate; every field in bytes except n_ctx, kv_cache_type, n_threads).
struct MemoryEstimate : mobilellm_memory_estimate {
    MemoryEstimate() noexcept : mobilellm_memory_estimate() { struct_size = sizeof(mobilellm_memory_estimate); }
};

/// Estimates, from the model's headers only, the memory of loading `path` with `params` and filling one session of
/// `n_ctx` positions (0: the default); throws Error as loading would (mobilellm_model_estimate_memory).
inline MemoryEstimate estimate_memory(const std::string &path, const ModelParams &params = ModelParams(), int32_t n_ctx = 0) {
    MemoryEstimate estimate;
    check(mobilellm_model_estimate_memory(path.c_str(), &params, n_ctx, &estimate));
    return estimate;
}

/// The library's report of this machine: CPU features, instruction-set level, kernel per weight type and mode.
inline std::string system_info() { return mobilellm_system_info(); }

/// mobilellm_session_params with the defaults filled in.
struct SessionParams : mobilellm_session_params {
    SessionParams() noexcept : mobilellm_session_params() { mobilellm_session_params_init(this); }
    explicit SessionParams(int32_t context) noexcept : SessionParams() { n_ctx = context; }
};

/// mobilellm_sampler_params with the defaults (greedy) filled in.
struct SamplerParams : mobilellm_sampler_params {
    SamplerParams() noexcept : mobilellm_sampler_params() { mobilellm_sampler_params_init(this); }
    /// Greedy decoding.
    static SamplerParams greedy() noexcept { return SamplerParams(); }
    /// Temperature sampling with nucleus p and a fixed seed.
    static SamplerParams sampled(float temperature, float top_p, uint64_t seed) noexcept {
        SamplerParams p;
        p.temperature = temperature;
        p.top_p = top_p;
        p.seed = seed;
        p.use_seed = true;
        return p;
    }
};

/// What Session::generate (and Batch::result) produced.
struct Generation {
    std::vector<int32_t> tokens;
    int32_t stop_reason = 0;
    int32_t prompt_tokens = 0;
    /// The generated text ("" without a tokenizer), and its thought and answer parts (markers left out; without
    /// GenerateOptions::reasoning the answer is the whole text).
    std::string text, reasoning, answer;
    /// Generated tokens inside the thought.
    int32_t reasoning_tokens = 0;
    /// Where the reasoning budget ran out and the closing text was fed (an index into tokens), or -1.
    int32_t reasoning_budget_index = -1;
    /// One entry per token when GenerateOptions::logprobs >= 0, else empty.
    std::vector<mobilellm_token_logprob> logprobs;
};

/// One piece of streamed text (GenerateOptions::on_piece): valid during the call.
struct Piece {
    /// The token it completes (-1 for text released at the end).
    int32_t token = -1;
    /// MOBILELLM_CHANNEL_ANSWER, _REASONING or _MARKER.
    int32_t channel = MOBILELLM_CHANNEL_ANSWER;
    std::string_view text;
    /// The token's log-probabilities (first piece of a token, with GenerateOptions::logprobs >= 0), else nullptr.
    const mobilellm_token_logprob *logprob = nullptr;
};

/// Options of Session::generate and Batch::add (the fields of mobilellm_generate_params; see mobilellm.h for each
/// rule: the library validates every value).
struct GenerateOptions {
    int32_t max_tokens = 256;
    SamplerParams sampling;
    bool ignore_eos = false;
    /// Stop tokens; empty: the model's EOS ids.
    std::vector<int32_t> stop_token_ids;
    /// Strings that end generation (the text ends before the first to appear).
    std::vector<std::string> stop_strings;
    /// A GBNF grammar the output must match ("": none).
    std::string grammar;
    /// A JSON Schema (JSON text) the output must match ("": none).
    std::string json_schema;
    /// Values added to token logits, by id and by token text (-INFINITY bans).
    std::vector<std::pair<int32_t, float>> logit_bias;
    std::vector<std::pair<std::string, float>> logit_bias_pieces;
    /// -1: no log-probabilities; 0...20: Generation::logprobs with that many alternatives per token.
    int32_t logprobs = -1;
    bool raw_logprobs = false;
    /// Track the thought (reasoning_start ... reasoning_end, "" for the defaults "<think>" / "</think>"), with a
    /// budget of tokens (-1: none) ended by reasoning_closing ("": the library's default).
    bool reasoning = false;
    int32_t reasoning_budget = -1;
    std::string reasoning_start, reasoning_end, reasoning_closing;
    /// Sees every token and its text (empty without a tokenizer); return false to stop. May throw: the exception
    /// stops generation and is rethrown from generate(). Not for a Batch.
    std::function<bool(int32_t token, std::string_view piece)> on_token;
    /// Sees every piece with its channel and log-probabilities; return false to stop. May throw, as on_token. Not
    /// for a Batch.
    std::function<bool(const Piece &piece)> on_piece;
};

namespace detail {
/// The mobilellm_generate_params of `options` with the arrays it points into (valid while this object lives and
/// `options` is unchanged). Session::generate and Batch::add share it.
struct GenerateParams {
    mobilellm_generate_params params;
    std::vector<const char *> stop_strings, bias_pieces;
    std::vector<int32_t> bias_tokens;
    std::vector<float> bias_values, piece_values;

    explicit GenerateParams(const GenerateOptions &options) {
        mobilellm_generate_params_init(&params);
        params.max_tokens = options.max_tokens;
        params.ignore_eos = options.ignore_eos;
        if (!options.stop_token_ids.empty()) {
            params.stop_token_ids = options.stop_token_ids.data();
            params.n_stop_token_ids = options.stop_token_ids.size();
        }
        for (const std::string &s : options.stop_strings) stop_strings.push_back(s.c_str());
        if (!stop_strings.empty()) {
            params.stop_strings = stop_strings.data();
            params.n_stop_strings = stop_strings.size();
        }
        if (!options.grammar.empty()) params.grammar = options.grammar.c_str();
        if (!options.json_schema.empty()) params.json_schema = options.json_schema.c_str();
        for (const auto &[token, value] : options.logit_bias) {
            bias_tokens.push_back(token);
            bias_values.push_back(value);
        }
        if (!bias_tokens.empty()) {
            params.logit_bias_tokens = bias_tokens.data();
            params.logit_bias_values = bias_values.data();
            params.n_logit_bias = bias_tokens.size();
        }
        for (const auto &[piece, value] : options.logit_bias_pieces) {
            bias_pieces.push_back(piece.c_str());
            piece_values.push_back(value);
        }
        if (!bias_pieces.empty()) {
            params.logit_bias_pieces = bias_pieces.data();
            params.logit_bias_piece_values = piece_values.data();
            params.n_logit_bias_pieces = bias_pieces.size();
        }
        params.n_logprobs = options.logprobs;
        params.raw_logprobs = options.raw_logprobs;
        params.reasoning = options.reasoning;
        params.reasoning_budget = options.reasoning_budget;
        if (!options.reasoning_start.empty()) params.reasoning_start = options.reasoning_start.c_str();
        if (!options.reasoning_end.empty()) params.reasoning_end = options.reasoning_end.c_str();
        if (!options.reasoning_closing.empty()) params.reasoning_closing = options.reasoning_closing.c_str();
    }
};
} // namespace detail

class Session;

/// A loaded model (immutable; share it across threads).
class Model {
public:
    /// Loads a model directory; throws Error.
    explicit Model(const std::string &path, const ModelParams &params = ModelParams()) {
        check(mobilellm_model_load(path.c_str(), &params, &handle_));
    }
    ~Model() { mobilellm_model_free(handle_); }
    Model(Model &&other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
    Model &operator=(Model &&other) noexcept {
        if (this != &other) {
            mobilellm_model_free(handle_);
            handle_ = std::exchange(other.handle_, nullptr);
        }
        return *this;
    }
    Model(const Model &) = delete;
    Model &operator=(const Model &) = delete;

    /// Facts about the model.
    mobilellm_model_info info() const {
        mobilellm_model_info value{};
        value.struct_size = sizeof value;
        check(mobilellm_model_get_info(handle_, &value));
        return value;
    }
    int32_t vocab_size() const { return info().vocab_size; }
    int32_t context_length() const { return info().context_length; }
    /// How block-quantized weights are multiplied: "exact", "int8" or "int16" (ModelParams::activations, or the library's
    /// default).
    std::string activations() const {
        const char *name = info().activations;
        return name ? name : "";
    }

    /// End-of-sequence token ids.
    std::vector<int32_t> eos_token_ids() const {
        size_t count = 0;
        mobilellm_status status = mobilellm_model_eos_token_ids(handle_, nullptr, 0, &count);
        if (status != MOBILELLM_ERROR_BUFFER_TOO_SMALL) check(status);
        std::vector<int32_t> ids(count);
        check(mobilellm_model_eos_token_ids(handle_, ids.data(), ids.size(), &count));
        return ids;
    }

    /// A metadata value ("architecture", "path", "kv_cache_type").
    std::string metadata(const std::string &key) const {
        size_t length = 0;
        mobilellm_status status = mobilellm_model_get_metadata(handle_, key.c_str(), nullptr, 0, &length);
        if (status != MOBILELLM_ERROR_BUFFER_TOO_SMALL) check(status);
        std::string text(length + 1, '\0');
        check(mobilellm_model_get_metadata(handle_, key.c_str(), text.data(), text.size(), &length));
        text.resize(length);
        return text;
    }

    /// A new session (n_ctx 0: the model's default context length).
    Session session(int32_t n_ctx = 0) const;

    /// The C handle (owned by this object).
    mobilellm_model *handle() const noexcept { return handle_; }

private:
    mobilellm_model *handle_ = nullptr;
};

/// A sampler with its own random state.
class Sampler {
public:
    explicit Sampler(const SamplerParams &params = SamplerParams()) { check(mobilellm_sampler_create(&params, &handle_)); }
    ~Sampler() { mobilellm_sampler_free(handle_); }
    Sampler(Sampler &&other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
    Sampler &operator=(Sampler &&other) noexcept {
        if (this != &other) {
            mobilellm_sampler_free(handle_);
            handle_ = std::exchange(other.handle_, nullptr);
        }
        return *this;
    }
    Sampler(const Sampler &) = delete;
    Sampler &operator=(const Sampler &) = delete;

    /// A token chosen from the session's latest logits.
    int32_t sample(const Session &session);
    /// A token chosen from raw logits with a penalty history.
    int32_t sample(const std::vector<float> &logits, const std::vector<int32_t> &history = {}) {
        int32_t token = -1;
        check(mobilellm_sampler_sample_logits(handle_, logits.data(), logits.size(), history.data(), history.size(), &token));
        return token;
    }

private:
    mobilellm_sampler *handle_ = nullptr;
};

/// One conversation: KV cache, position and latest logits. One thread at a time.
class Session {
public:
    /// A session of `model`.
    explicit Session(const Model &model, const SessionParams &params = SessionParams()) {
        check(mobilellm_session_create(model.handle(), &params, &handle_));
        mobilellm_model_info info = model.info();
        vocab_ = info.vocab_size;
        has_tokenizer_ = info.has_tokenizer;
    }
    ~Session() { mobilellm_session_free(handle_); }
    Session(Session &&other) noexcept
        : handle_(std::exchange(other.handle_, nullptr)), vocab_(other.vocab_), has_tokenizer_(other.has_tokenizer_) {}
    Session &operator=(Session &&other) noexcept {
        if (this != &other) {
            mobilellm_session_free(handle_);
            handle_ = std::exchange(other.handle_, nullptr);
            vocab_ = other.vocab_;
            has_tokenizer_ = other.has_tokenizer_;
        }
        return *this;
    }
    Session(const Session &) = delete;
    Session &operator=(const Session &) = delete;

    /// Feeds tokens and returns the last position's logits.
    std::vector<float> eval(const std::vector<int32_t> &tokens) {
        std::vector<float> logits(static_cast<size_t>(vocab_));
        check(mobilellm_session_eval(handle_, tokens.data(), tokens.size(), MOBILELLM_LOGITS_LAST, logits.data(), logits.size()));
        return logits;
    }
    /// Feeds tokens and returns every position's logits (row-major, tokens.size() × vocab_size).
    std::vector<float> eval_all(const std::vector<int32_t> &tokens) {
        std::vector<float> logits(tokens.size() * static_cast<size_t>(vocab_));
        check(mobilellm_session_eval(handle_, tokens.data(), tokens.size(), MOBILELLM_LOGITS_ALL, logits.data(), logits.size()));
        return logits;
    }
    /// Feeds tokens without computing logits.
    void feed(const std::vector<int32_t> &tokens) {
        check(mobilellm_session_eval(handle_, tokens.data(), tokens.size(), MOBILELLM_LOGITS_NONE, nullptr, 0));
    }

    /// Generates from `prompt` (empty: continue from the cache). With a tokenizer, the text (and its reasoning and
    /// answer parts) is streamed through the library's piece callback and returned in the Generation.
    Generation generate(const std::vector<int32_t> &prompt, const GenerateOptions &options = GenerateOptions()) {
        struct Context {
            const GenerateOptions *options;
            Generation *out;
            std::exception_ptr error;
        } context{&options, nullptr, nullptr};
        Generation out;
        context.out = &out;
        detail::GenerateParams request(options);
        mobilellm_generate_params &params = request.params;
        params.user_data = &context;
        if (options.on_token) {
            params.callback = [](int32_t token, const char *piece, size_t length, void *user_data) -> bool {
                auto *c = static_cast<Context *>(user_data);
                try {
                    return c->options->on_token(token, piece ? std::string_view(piece, length) : std::string_view());
                } catch (...) {
                    c->error = std::current_exception();
                    return false;
                }
            };
        }
        if (has_tokenizer_) {
            params.piece_callback = [](const mobilellm_piece *piece, void *user_data) -> bool {
                auto *c = static_cast<Context *>(user_data);
                std::string_view text(piece->text, piece->text_length);
                c->out->text += text;
                if (piece->channel == MOBILELLM_CHANNEL_REASONING) c->out->reasoning += text;
                if (piece->channel == MOBILELLM_CHANNEL_ANSWER) c->out->answer += text;
                if (!c->options->on_piece || c->error) return !c->error;
                try {
                    return c->options->on_piece(Piece{piece->token, piece->channel, text, piece->logprob});
                } catch (...) {
                    c->error = std::current_exception();
                    return false;
                }
            };
        }
        size_t capacity = options.max_tokens > 0 ? static_cast<size_t>(options.max_tokens) : 0;
        if (capacity > 1u << 16) capacity = 1u << 16;
        out.tokens.resize(capacity);
        if (options.logprobs >= 0) {
            out.logprobs.resize(capacity);
            params.out_logprobs = out.logprobs.data();
            params.out_logprobs_capacity = out.logprobs.size();
        }
        mobilellm_generate_result result{};
        result.struct_size = sizeof result;
        mobilellm_status status = mobilellm_session_generate(handle_, prompt.data(), prompt.size(), &options.sampling, &params,
                                                             out.tokens.data(), out.tokens.size(), &result);
        if (context.error) std::rethrow_exception(context.error);
        check(status);
        size_t n = static_cast<size_t>(result.n_tokens) < out.tokens.size() ? static_cast<size_t>(result.n_tokens)
                                                                             : out.tokens.size();
        out.tokens.resize(n);
        if (!out.logprobs.empty()) out.logprobs.resize(n);
        out.stop_reason = result.stop_reason;
        out.prompt_tokens = result.n_prompt_tokens;
        out.reasoning_tokens = result.n_reasoning_tokens;
        out.reasoning_budget_index = result.reasoning_budget_index;
        return out;
    }

    /// Empties the session.
    void reset() { check(mobilellm_session_reset(handle_)); }
    /// Runs later evals and generations on `n_threads` threads of the model's pool (0: all; identical results).
    void set_threads(int32_t n_threads) { check(mobilellm_session_set_threads(handle_, n_threads)); }
    /// Keeps the first `position` tokens.
    void rewind(int32_t position) { check(mobilellm_session_rewind(handle_, position)); }
    /// Tokens in the KV cache.
    int32_t position() const {
        int32_t value = 0;
        check(mobilellm_session_position(handle_, &value));
        return value;
    }
    /// Stops the running eval/generate (which throws Error with MOBILELLM_ERROR_CANCELLED); does nothing when none
    /// is running. Any thread.
    void cancel() { check(mobilellm_session_cancel(handle_)); }

    /// The tokens and KV cache as bytes.
    std::vector<uint8_t> save_state() const {
        size_t size = 0;
        check(mobilellm_session_state_size(handle_, &size));
        std::vector<uint8_t> bytes(size);
        check(mobilellm_session_save_state(handle_, bytes.data(), bytes.size(), &size));
        bytes.resize(size);
        return bytes;
    }
    /// Restores bytes from save_state() of a session of the same model.
    void load_state(const std::vector<uint8_t> &bytes) { check(mobilellm_session_load_state(handle_, bytes.data(), bytes.size())); }

    /// The C handle (owned by this object).
    mobilellm_session *handle() const noexcept { return handle_; }

private:
    mobilellm_session *handle_ = nullptr;
    int32_t vocab_ = 0;
    bool has_tokenizer_ = false;
};

inline Session Model::session(int32_t n_ctx) const { return Session(*this, SessionParams(n_ctx)); }

/// mobilellm_batch_params with the defaults filled in.
struct BatchParams : mobilellm_batch_params {
    BatchParams() noexcept : mobilellm_batch_params() { mobilellm_batch_params_init(this); }
};

/// A piece of a batch event's text (a copy of mobilellm_piece).
struct BatchPiece {
    int32_t channel = MOBILELLM_CHANNEL_ANSWER;
    std::string text;
    bool has_logprob = false;
    mobilellm_token_logprob logprob{};
};

/// One event of Batch::step(): mobilellm_batch_event with its text copied.
struct BatchEvent {
    /// MOBILELLM_BATCH_EVENT_TOKEN or MOBILELLM_BATCH_EVENT_FINISHED.
    int32_t type = 0;
    /// The sequence's id (as Batch::add returned it).
    int32_t sequence = -1;
    /// TOKEN: the token; FINISHED: -1.
    int32_t token = -1;
    /// FINISHED: a mobilellm_stop_reason; TOKEN: 0.
    int32_t stop_reason = 0;
    /// Tokens generated so far (FINISHED: in all).
    int32_t n_tokens = 0;
    /// FINISHED: prompt tokens fed for the sequence.
    int32_t n_prompt_tokens = 0;
    /// The text piece (TOKEN) or held-back rest (FINISHED) when the sequence streams text (has_text), else empty.
    std::string text;
    /// Whether the sequence streams text.
    bool has_text = false;
    /// `text` split by channel (the first piece of a TOKEN event carries its log-probabilities when requested).
    std::vector<BatchPiece> pieces;
    /// Whether the sequence ended with this event.
    bool finished() const noexcept { return type == MOBILELLM_BATCH_EVENT_FINISHED; }
};

/// Many generations of one model advanced together (mobilellm_batch): each step() is one forward pass over every
/// running sequence. add/step/run/result are used by one thread at a time; cancel(), cancel_all() and
/// active_count() from any thread. A Batch keeps its model alive. Move-only.
class Batch {
public:
    /// An empty batch of `model`.
    explicit Batch(const Model &model, const BatchParams &params = BatchParams()) {
        check(mobilellm_batch_create(model.handle(), &params, &handle_));
    }
    ~Batch() { mobilellm_batch_free(handle_); }
    Batch(Batch &&other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
    Batch &operator=(Batch &&other) noexcept {
        if (this != &other) {
            mobilellm_batch_free(handle_);
            handle_ = std::exchange(other.handle_, nullptr);
        }
        return *this;
    }
    Batch(const Batch &) = delete;
    Batch &operator=(const Batch &) = delete;

    /// Adds `n_samples` sequences continuing `prompt` (prefilled once, forked for the others; sample i seeded
    /// seed + i) and returns their ids. options.on_token must be empty (the library refuses a callback: tokens
    /// arrive as events).
    std::vector<int32_t> add(const std::vector<int32_t> &prompt, const GenerateOptions &options = GenerateOptions(),
                             int32_t n_samples = 1) {
        GenerateParams request(options);
        std::vector<int32_t> ids(n_samples > 0 ? static_cast<size_t>(n_samples) : 1);
        check(mobilellm_batch_add(handle_, prompt.data(), prompt.size(), &options.sampling, &request.params, n_samples,
                                  ids.data()));
        return ids;
    }

    /// Adds a sequence on an existing session (an empty prompt continues from its last token); returns its id.
    int32_t add(Session &session, const std::vector<int32_t> &prompt, const GenerateOptions &options = GenerateOptions()) {
        GenerateParams request(options);
        int32_t id = -1;
        check(mobilellm_batch_add_session(handle_, session.handle(), prompt.data(), prompt.size(), &options.sampling,
                                          &request.params, &id));
        return id;
    }

    /// Runs one step and returns all its events (none when no sequence is left).
    std::vector<BatchEvent> step() {
        std::vector<mobilellm_batch_event> raw(2 * active_count() + 2);
        size_t n = 0;
        check(mobilellm_batch_step(handle_, raw.data(), raw.size(), &n));
        std::vector<BatchEvent> events;
        events.reserve(n);
        for (size_t i = 0; i < n; i++) {
            const mobilellm_batch_event &e = raw[i];
            BatchEvent event;
            event.type = e.type;
            event.sequence = e.sequence;
            event.token = e.token;
            event.stop_reason = e.stop_reason;
            event.n_tokens = e.n_tokens;
            event.n_prompt_tokens = e.n_prompt_tokens;
            event.has_text = e.text != nullptr;
            if (e.text) event.text.assign(e.text, e.text_length);
            const mobilellm_piece *pieces = nullptr;
            size_t n_pieces = 0;
            check(mobilellm_batch_event_pieces(handle_, i, &pieces, &n_pieces));
            for (size_t k = 0; k < n_pieces; k++) {
                BatchPiece piece;
                piece.channel = pieces[k].channel;
                piece.text.assign(pieces[k].text, pieces[k].text_length);
                piece.has_logprob = pieces[k].logprob != nullptr;
                if (piece.has_logprob) piece.logprob = *pieces[k].logprob;
                event.pieces.push_back(std::move(piece));
            }
            events.push_back(std::move(event));
        }
        return events;
    }

    /// Steps until every sequence has finished, calling `on_event` for each event; returning false from it cancels
    /// every sequence (they finish as MOBILELLM_STOP_CANCELLED, reported too). An exception from on_event
    /// propagates (the batch stays usable).
    void run(const std::function<bool(const BatchEvent &)> &on_event) {
        for (;;) {
            std::vector<BatchEvent> events = step();
            if (events.empty()) return;
            for (const BatchEvent &event : events) {
                if (!on_event(event)) cancel_all();
            }
        }
    }

    /// Asks sequence `id` to stop (any thread).
    void cancel(int32_t id) { check(mobilellm_batch_cancel(handle_, id)); }
    /// Asks every sequence added so far to stop (any thread).
    void cancel_all() { check(mobilellm_batch_cancel_all(handle_)); }
    /// Runs later steps on `n_threads` threads of the model's pool (0: all; identical results).
    void set_threads(int32_t n_threads) { check(mobilellm_batch_set_threads(handle_, n_threads)); }
    /// Sequences not yet finished (any thread).
    size_t active_count() const {
        size_t n = 0;
        check(mobilellm_batch_active_count(handle_, &n));
        return n;
    }

    /// The tokens, stop reason and prompt count of finished sequence `id`.
    Generation result(int32_t id) const {
        size_t count = 0;
        mobilellm_status status = mobilellm_batch_result(handle_, id, nullptr, 0, &count, nullptr);
        if (status != MOBILELLM_ERROR_BUFFER_TOO_SMALL) check(status);
        Generation out;
        out.tokens.resize(count);
        mobilellm_generate_result result{};
        result.struct_size = sizeof result;
        check(mobilellm_batch_result(handle_, id, out.tokens.data(), out.tokens.size(), &count, &result));
        out.tokens.resize(count);
        out.stop_reason = result.stop_reason;
        out.prompt_tokens = result.n_prompt_tokens;
        out.reasoning_tokens = result.n_reasoning_tokens;
        out.reasoning_budget_index = result.reasoning_budget_index;
        out.text = text(id);
        out.reasoning = channel_text(id, MOBILELLM_CHANNEL_REASONING);
        out.answer = channel_text(id, MOBILELLM_CHANNEL_ANSWER);
        size_t n = 0;
        status = mobilellm_batch_result_logprobs(handle_, id, nullptr, 0, &n);
        if (status != MOBILELLM_ERROR_BUFFER_TOO_SMALL) check(status);
        out.logprobs.resize(n);
        if (n > 0) check(mobilellm_batch_result_logprobs(handle_, id, out.logprobs.data(), out.logprobs.size(), &n));
        return out;
    }
    /// One channel's text of finished sequence `id` (MOBILELLM_CHANNEL_REASONING or MOBILELLM_CHANNEL_ANSWER).
    std::string channel_text(int32_t id, int32_t channel) const {
        size_t length = 0;
        mobilellm_status status = mobilellm_batch_result_channel_text(handle_, id, channel, nullptr, 0, &length);
        if (status != MOBILELLM_ERROR_BUFFER_TOO_SMALL) check(status);
        std::string value(length + 1, '\0');
        check(mobilellm_batch_result_channel_text(handle_, id, channel, value.data(), value.size(), &length));
        value.resize(length);
        return value;
    }
    /// The text of finished sequence `id` ("" unless it streamed text).
    std::string text(int32_t id) const {
        size_t length = 0;
        mobilellm_status status = mobilellm_batch_result_text(handle_, id, nullptr, 0, &length);
        if (status != MOBILELLM_ERROR_BUFFER_TOO_SMALL) check(status);
        std::string value(length + 1, '\0');
        check(mobilellm_batch_result_text(handle_, id, value.data(), value.size(), &length));
        value.resize(length);
        return value;
    }
    /// Releases the kept result of finished sequence `id`.
    void forget(int32_t id) { check(mobilellm_batch_forget(handle_, id)); }
    /// The logits sequence `id` sampled from in the latest step (needs BatchParams::keep_logits).
    std::vector<float> logits(int32_t id) const {
        size_t count = 0;
        mobilellm_status status = mobilellm_batch_logits(handle_, id, nullptr, 0, &count);
        if (status != MOBILELLM_ERROR_BUFFER_TOO_SMALL) check(status);
        std::vector<float> values(count);
        check(mobilellm_batch_logits(handle_, id, values.data(), values.size(), &count));
        return values;
    }

    /// The C handle (owned by this object).
    mobilellm_batch *handle() const noexcept { return handle_; }

private:
    /// The request's params; a callback is passed on (never called) so the library reports it as the error it is
    /// for a batch.
    struct GenerateParams : detail::GenerateParams {
        explicit GenerateParams(const GenerateOptions &options) : detail::GenerateParams(options) {
            if (options.on_token) params.callback = [](int32_t, const char *, size_t, void *) -> bool { return false; };
            if (options.on_piece) params.piece_callback = [](const mobilellm_piece *, void *) -> bool { return false; };
        }
    };

    mobilellm_batch *handle_ = nullptr;
};

inline int32_t Sampler::sample(const Session &session) {
    int32_t token = -1;
    check(mobilellm_sampler_sample(handle_, session.handle(), &token));
    return token;
}

} // namespace mobilellm

#endif // MOBILELLM_HPP
