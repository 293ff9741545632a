// The C++ wrapper: golden logits and greedy continuations, exceptions carrying status and message for each error
// path, RAII (a session outliving its model), and four threads with four sessions identical to serial.
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "mobilellm.hpp"
#include "test_support.hpp"

using mobilellm::Error;

static void golden(const char *name) {
    test_reference reference;
    test_load_reference(name, &reference);
    mobilellm::Model model(fixture(name));
    CHECK(model.vocab_size() == reference.vocab_size);
    for (int s = 0; s < reference.n_sequences; s++) {
        const test_sequence &sequence = reference.sequences[s];
        auto session = model.session(128);
        std::vector<int32_t> tokens(sequence.tokens, sequence.tokens + sequence.n_tokens);
        std::vector<float> logits = session.eval_all(tokens);
        CHECK(logits.size() == tokens.size() * static_cast<size_t>(reference.vocab_size));
        CHECK(test_max_abs_diff(logits.data(), sequence.logits, logits.size()) <= 1e-3f);
        CHECK(session.position() == sequence.n_tokens);
    }
    for (int g = 0; g < reference.n_greedy; g++) {
        const test_greedy &greedy = reference.greedy[g];
        auto session = model.session(128);
        mobilellm::GenerateOptions options;
        options.max_tokens = greedy.n_continuation;
        int streamed = 0;
        options.on_token = [&](int32_t, std::string_view) {
            streamed++;
            return true;
        };
        auto result = session.generate(std::vector<int32_t>(greedy.prompt, greedy.prompt + greedy.n_prompt), options);
        CHECK(result.tokens == std::vector<int32_t>(greedy.continuation, greedy.continuation + greedy.n_continuation));
        CHECK(result.stop_reason == MOBILELLM_STOP_MAX_TOKENS && streamed == greedy.n_continuation);
    }
    test_free_reference(&reference);
}

static void errors() {
    EXPECT_ERROR(mobilellm::Model("/nonexistent/model"), MOBILELLM_ERROR_FILE_NOT_FOUND, "/nonexistent/model");
    mobilellm::ModelParams params;
    params.n_threads = 5000;
    EXPECT_ERROR(mobilellm::Model(fixture("llama-f16"), params), MOBILELLM_ERROR_INVALID_ARGUMENT, "n_threads");
    mobilellm::Model model(fixture("llama-f16"));
    EXPECT_ERROR(model.metadata("nope"), MOBILELLM_ERROR_INVALID_ARGUMENT, "nope");
    CHECK(model.metadata("architecture") == "llama");
    CHECK(model.eos_token_ids().size() >= 1);
    EXPECT_ERROR(model.session(-5), MOBILELLM_ERROR_INVALID_ARGUMENT, "n_ctx");
    auto session = model.session(8);
    EXPECT_ERROR(session.eval({1, 2, 100000}), MOBILELLM_ERROR_INVALID_ARGUMENT, "tokens[2]");
    EXPECT_ERROR(session.eval(std::vector<int32_t>(9, 1)), MOBILELLM_ERROR_CONTEXT_FULL, "context full");
    EXPECT_ERROR(session.rewind(3), MOBILELLM_ERROR_INVALID_ARGUMENT, "position");
    EXPECT_ERROR(session.load_state({1, 2, 3}), MOBILELLM_ERROR_INVALID_ARGUMENT, "state");
    mobilellm::GenerateOptions options;
    options.max_tokens = -1;
    EXPECT_ERROR(session.generate({1, 2}, options), MOBILELLM_ERROR_INVALID_ARGUMENT, "max_tokens");
    options.max_tokens = 4;
    options.sampling.top_p = 7;
    EXPECT_ERROR(session.generate({1, 2}, options), MOBILELLM_ERROR_INVALID_ARGUMENT, "top_p");
    EXPECT_ERROR(mobilellm::Sampler(options.sampling), MOBILELLM_ERROR_INVALID_ARGUMENT, "top_p");
    mobilellm::Sampler sampler;
    EXPECT_ERROR(sampler.sample(session), MOBILELLM_ERROR_INVALID_ARGUMENT, "no logits");
    EXPECT_ERROR(sampler.sample(std::vector<float>{}), MOBILELLM_ERROR_INVALID_ARGUMENT, "n_logits");
    session.cancel(); // nothing running: does nothing
    // Still usable after every error above.
    CHECK(session.position() == 0);
    CHECK(session.eval({1, 2}).size() == static_cast<size_t>(model.vocab_size()));
    CHECK(sampler.sample(session) >= 0);
    // Cancel from the token callback: generate() throws CANCELLED and the session keeps what was fed.
    mobilellm::GenerateOptions cancelling;
    cancelling.max_tokens = 4;
    cancelling.ignore_eos = true;
    cancelling.on_token = [&session](int32_t, std::string_view) -> bool {
        session.cancel();
        return true;
    };
    EXPECT_ERROR(session.generate({3}, cancelling), MOBILELLM_ERROR_CANCELLED, "cancelled");
    CHECK(session.position() == 3);
    // An exception thrown by the token callback stops generation and comes out of generate().
    mobilellm::GenerateOptions throwing;
    throwing.max_tokens = 4;
    throwing.on_token = [](int32_t, std::string_view) -> bool { throw std::runtime_error("from the callback"); };
    session.reset();
    test_checks++;
    try {
        session.generate({1, 2}, throwing);
        test_failures++;
    } catch (const std::runtime_error &error) {
        if (std::string(error.what()) != "from the callback") test_failures++;
    }
    // State round trip.
    session.reset();
    session.feed({1, 2, 3});
    auto state = session.save_state();
    auto other = model.session(8);
    other.load_state(state);
    CHECK(other.position() == 3);
}

static void lifetime() {
    mobilellm::Session session = [] {
        mobilellm::Model model(fixture("llama4-r1like-bf16-sharded"));
        return model.session(64);
    }(); // the model object is gone; the session keeps the weights alive
    auto result = session.generate({0, 169, 380, 264, 92}, [] {
        mobilellm::GenerateOptions o;
        o.max_tokens = 3;
        return o;
    }());
    CHECK((result.tokens == std::vector<int32_t>{99, 291, 12}));
    mobilellm::Session moved = std::move(session);
    CHECK(moved.position() == 7);
}

static void threads() {
    test_reference reference;
    test_load_reference("llama-bf16-untied", &reference);
    mobilellm::ModelParams params;
    params.n_threads = 1;
    mobilellm::Model model(fixture("llama-bf16-untied"), params);
    const test_sequence &sequence = reference.sequences[reference.n_sequences - 1];
    std::vector<int32_t> tokens(sequence.tokens, sequence.tokens + sequence.n_tokens);
    auto work = [&](int index, std::vector<float> &logits, std::vector<int32_t> &generated) {
        auto session = model.session(128);
        logits = session.eval_all(tokens);
        session.reset();
        mobilellm::GenerateOptions options;
        options.max_tokens = 20;
        options.ignore_eos = true;
        options.sampling = mobilellm::SamplerParams::sampled(0.9f, 0.95f, static_cast<uint64_t>(index));
        generated = session.generate({1, 2, 3, 4}, options).tokens;
    };
    std::vector<float> serial_logits[4], parallel_logits[4];
    std::vector<int32_t> serial_tokens[4], parallel_tokens[4];
    for (int i = 0; i < 4; i++) work(i, serial_logits[i], serial_tokens[i]);
    std::vector<std::thread> pool;
    for (int i = 0; i < 4; i++) pool.emplace_back(work, i, std::ref(parallel_logits[i]), std::ref(parallel_tokens[i]));
    for (auto &thread : pool) thread.join();
    for (int i = 0; i < 4; i++) {
        CHECK(serial_logits[i] == parallel_logits[i]);
        CHECK(serial_tokens[i] == parallel_tokens[i] && serial_tokens[i].size() == 20);
        CHECK(test_max_abs_diff(parallel_logits[i].data(), sequence.logits, parallel_logits[i].size()) <= 1e-3f);
    }
    test_free_reference(&reference);
}

/* Memory estimate, per-session threads and the system report through the wrapper. */
static void system() {
    auto estimate = mobilellm::estimate_memory(fixture("llama-bf16-untied"), mobilellm::ModelParams(), 128);
    CHECK(estimate.n_ctx == 128 && estimate.total_bytes > estimate.kv_bytes && estimate.kv_bytes > 0);
    EXPECT_ERROR(mobilellm::estimate_memory(fixture("no-such-model")), MOBILELLM_ERROR_FILE_NOT_FOUND, "no-such-model");
    mobilellm::ModelParams params;
    params.n_threads = 2;
    mobilellm::Model model(fixture("llama-bf16-untied"), params);
    std::vector<int32_t> tokens[2];
    for (int threads = 1; threads <= 2; threads++) {
        auto session = model.session(64);
        session.set_threads(threads);
        mobilellm::GenerateOptions options;
        options.max_tokens = 8;
        options.ignore_eos = true;
        tokens[threads - 1] = session.generate({1, 2, 3, 4}, options).tokens;
    }
    CHECK(tokens[0] == tokens[1] && tokens[0].size() == 8);
    auto session = model.session(64);
    EXPECT_ERROR(session.set_threads(3), MOBILELLM_ERROR_INVALID_ARGUMENT, "n_threads");
    CHECK(mobilellm::system_info().find("q4_0: exact-decode ") != std::string::npos);
}

/* ModelParams::activations reaches the engine: a bad name throws naming the field (load and estimate), int8 logits
 * of a model quantized at load differ from exact ones, and the model reports what it runs. */
static void activations() {
    mobilellm::ModelParams params;
    params.n_threads = 1;
    params.quantize = "q8_0";
    params.activations = "int4";
    EXPECT_ERROR(mobilellm::Model(fixture("llama-f16"), params), MOBILELLM_ERROR_INVALID_ARGUMENT, "params->activations");
    EXPECT_ERROR(mobilellm::estimate_memory(fixture("llama-f16"), params), MOBILELLM_ERROR_INVALID_ARGUMENT,
                 "params->activations");
    std::vector<float> logits[2];
    const char *names[2] = {"exact", "int8"};
    for (int i = 0; i < 2; i++) {
        params.activations = names[i];
        mobilellm::Model model(fixture("llama-f16"), params);
        CHECK(model.activations() == names[i]);
        logits[i] = model.session(32).eval_all({1, 169, 380, 17, 42, 311, 7});
    }
    CHECK(logits[0].size() == logits[1].size() && !logits[0].empty());
    CHECK(logits[0] != logits[1]);
}

int main() {
    for (int i = 0; i < TEST_FIXTURE_COUNT; i++) golden(test_fixture_names[i]);
    errors();
    lifetime();
    threads();
    system();
    activations();
    return test_finish("test_cpp");
}
