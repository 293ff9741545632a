// Output control through the C++ wrapper (GenerateOptions' grammar, logit bias, logprobs, reasoning and stop
// strings; Generation's text, reasoning, answer and logprobs) on the r1like-chat fixture (MobileLLM-R1
// architecture, random weights, Llama-3 tokenizer): the pieces the callback sees rebuild the returned text per
// channel, the reasoning budget ends the thought after exactly N tokens, a batch returns the session's tokens,
// logprobs and channel texts for the same options (its events' pieces too), a stop string ends the text, a ban
// moves the arg-max, and bad values throw mobilellm::Error naming the C field.
#include <cmath>
#include <string>
#include <vector>

#include "test_support.hpp"

static std::vector<int32_t> prompt_ids(const mobilellm::Model &model, const std::string &text) {
    std::vector<int32_t> ids(256);
    size_t n = 0;
    mobilellm_session *scratch = nullptr;
    mobilellm::check(mobilellm_session_create(model.handle(), nullptr, &scratch));
    mobilellm_status status = mobilellm_session_tokenize_prompt(scratch, text.c_str(), text.size(), ids.data(), ids.size(), &n);
    mobilellm_session_free(scratch);
    mobilellm::check(status);
    ids.resize(n);
    return ids;
}

int main() {
    mobilellm::ModelParams model_params;
    model_params.n_threads = 1;
    mobilellm::Model model(fixture("r1like-chat"), model_params);
    std::vector<int32_t> prompt = prompt_ids(model, "Question: 2+2?\n<think>\n");

    mobilellm::GenerateOptions options;
    options.max_tokens = 16;
    options.ignore_eos = true;
    options.logprobs = 2;
    options.reasoning = true;
    options.reasoning_budget = 4;
    options.reasoning_closing = "</think>\n\n";
    std::string seen_reasoning, seen_answer, seen_marker;
    int logprob_pieces = 0;
    options.on_piece = [&](const mobilellm::Piece &piece) {
        if (piece.channel == MOBILELLM_CHANNEL_REASONING) seen_reasoning += piece.text;
        if (piece.channel == MOBILELLM_CHANNEL_ANSWER) seen_answer += piece.text;
        if (piece.channel == MOBILELLM_CHANNEL_MARKER) seen_marker += piece.text;
        if (piece.logprob) logprob_pieces++;
        return true;
    };
    mobilellm::Session session = model.session(256);
    mobilellm::Generation alone = session.generate(prompt, options);
    CHECK(alone.tokens.size() == 16);
    CHECK(alone.reasoning_tokens == 4 && alone.reasoning_budget_index == 4);
    CHECK(alone.reasoning == seen_reasoning && alone.answer == seen_answer && seen_marker == "</think>");
    CHECK(alone.text == alone.reasoning + "</think>" + alone.answer);
    CHECK(alone.logprobs.size() == alone.tokens.size() && logprob_pieces == 16);
    for (size_t i = 0; i < alone.logprobs.size(); i++) CHECK(alone.logprobs[i].token == alone.tokens[i]);

    // The same options in a batch (no callbacks there).
    mobilellm::GenerateOptions batch_options = options;
    batch_options.on_piece = nullptr;
    mobilellm::BatchParams batch_params;
    batch_params.n_ctx = 256;
    mobilellm::Batch batch(model, batch_params);
    int32_t id = batch.add(prompt, batch_options)[0];
    std::string streamed;
    batch.run([&](const mobilellm::BatchEvent &event) {
        for (const mobilellm::BatchPiece &piece : event.pieces) streamed += piece.text;
        return true;
    });
    mobilellm::Generation together = batch.result(id);
    CHECK(together.tokens == alone.tokens);
    CHECK(together.text == alone.text && streamed == alone.text);
    CHECK(together.reasoning == alone.reasoning && together.answer == alone.answer);
    CHECK(together.reasoning_tokens == 4 && together.reasoning_budget_index == 4);
    CHECK(together.logprobs.size() == alone.logprobs.size());
    for (size_t i = 0; i < together.logprobs.size() && i < alone.logprobs.size(); i++) {
        CHECK(std::memcmp(&together.logprobs[i], &alone.logprobs[i], sizeof together.logprobs[i]) == 0);
    }

    // Stop strings (now in the C++ options) and a ban.
    mobilellm::GenerateOptions plain;
    plain.max_tokens = 12;
    plain.ignore_eos = true;
    std::vector<int32_t> hello = prompt_ids(model, "Hello");
    mobilellm::Generation free_run = model.session(256).generate(hello, plain);
    CHECK(!free_run.text.empty());
    if (free_run.text.size() > 2) {
        mobilellm::GenerateOptions stopped = plain;
        stopped.stop_strings = {free_run.text.substr(1, 1)};
        mobilellm::Generation cut = model.session(256).generate(hello, stopped);
        CHECK(cut.stop_reason == MOBILELLM_STOP_STRING);
        CHECK(cut.text == free_run.text.substr(0, cut.text.size()) && cut.text.find(stopped.stop_strings[0]) == std::string::npos);
    }
    mobilellm::GenerateOptions banned = plain;
    banned.max_tokens = 1;
    banned.logit_bias = {{free_run.tokens[0], -INFINITY}};
    CHECK(model.session(256).generate(hello, banned).tokens[0] != free_run.tokens[0]);

    mobilellm::GenerateOptions bad = plain;
    bad.logprobs = 99;
    EXPECT_ERROR(session.generate(hello, bad), MOBILELLM_ERROR_INVALID_ARGUMENT, "params->n_logprobs");
    bad = plain;
    bad.grammar = "root ::= [a-";
    EXPECT_ERROR(session.generate(hello, bad), MOBILELLM_ERROR_GRAMMAR, "line 1");
    bad = plain;
    bad.logit_bias_pieces = {{"no token has this text", 1.0f}};
    EXPECT_ERROR(session.generate(hello, bad), MOBILELLM_ERROR_INVALID_ARGUMENT, "params->logit_bias_pieces");
    bad = plain;
    bad.on_piece = [](const mobilellm::Piece &) { return true; };
    EXPECT_ERROR(batch.add(hello, bad), MOBILELLM_ERROR_INVALID_ARGUMENT, "params->piece_callback");
    return test_finish("test_cpp_control");
}
