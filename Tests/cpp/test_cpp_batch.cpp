// The C++ Batch wrapper against Session::generate (the single-sequence path): greedy batches token-identical to
// each prompt alone, seeded samples equal to fresh generations seeded seed + i, run() with a stop request and with
// cancel(), kept logits equal to Session::eval, errors as exceptions naming the argument, and move-only RAII.
#include <cstring>
#include <map>
#include <string>
#include <type_traits>
#include <vector>

#include "mobilellm.hpp"
#include "test_support.hpp"

using mobilellm::Error;

static_assert(!std::is_copy_constructible_v<mobilellm::Batch>, "Batch is move-only");
static_assert(std::is_nothrow_move_constructible_v<mobilellm::Batch>, "Batch moves without throwing");

static const std::vector<std::vector<int32_t>> prompts = {
    {1, 17, 42, 99}, {5}, {200, 201, 202, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 300, 301, 302}, {7, 7, 7, 8, 8}};

int main() {
    mobilellm::ModelParams model_params;
    model_params.n_threads = 1;
    mobilellm::Model model(fixture("llama4-r1like-bf16-sharded"), model_params);
    mobilellm::BatchParams batch_params;
    batch_params.n_ctx = 128;
    mobilellm::GenerateOptions options;
    options.max_tokens = 16;
    options.ignore_eos = true;

    // Greedy: each prompt's tokens equal Session::generate's.
    {
        mobilellm::Batch batch(model, batch_params);
        std::vector<int32_t> ids;
        for (const auto &prompt : prompts) ids.push_back(batch.add(prompt, options).at(0));
        CHECK(batch.active_count() == prompts.size());
        std::map<int32_t, std::vector<int32_t>> streamed;
        int finished = 0;
        batch.run([&](const mobilellm::BatchEvent &event) {
            if (event.finished()) finished++;
            else streamed[event.sequence].push_back(event.token);
            CHECK(!event.has_text);
            return true;
        });
        CHECK(finished == static_cast<int>(prompts.size()));
        CHECK(batch.active_count() == 0);
        for (size_t i = 0; i < prompts.size(); i++) {
            auto expected = model.session(128).generate(prompts[i], options);
            auto got = batch.result(ids[i]);
            CHECK(got.tokens == expected.tokens);
            CHECK(got.stop_reason == expected.stop_reason && got.stop_reason == MOBILELLM_STOP_MAX_TOKENS);
            CHECK(got.prompt_tokens == static_cast<int32_t>(prompts[i].size()));
            CHECK(streamed[ids[i]] == expected.tokens);
            CHECK(batch.text(ids[i]).empty());
        }
        batch.forget(ids[0]);
        EXPECT_ERROR(batch.result(ids[0]), MOBILELLM_ERROR_INVALID_ARGUMENT, "'id'");
        CHECK(batch.step().empty());
    }

    // Samples: prefilled once; sample i equals a fresh generation seeded seed + i. Moving the batch keeps it working.
    {
        mobilellm::GenerateOptions sampled = options;
        sampled.sampling = mobilellm::SamplerParams::sampled(0.9f, 0.95f, 77);
        mobilellm::Batch first(model, batch_params);
        std::vector<int32_t> ids = first.add(prompts[0], sampled, 3);
        CHECK(ids.size() == 3 && ids[0] == 0 && ids[2] == 2);
        mobilellm::Batch batch(std::move(first));
        CHECK(first.handle() == nullptr);
        batch.run([](const mobilellm::BatchEvent &) { return true; });
        for (int i = 0; i < 3; i++) {
            mobilellm::GenerateOptions each = options;
            each.sampling = mobilellm::SamplerParams::sampled(0.9f, 0.95f, 77 + static_cast<uint64_t>(i));
            CHECK(batch.result(ids[static_cast<size_t>(i)]).tokens == model.session(128).generate(prompts[0], each).tokens);
        }
        CHECK(batch.result(ids[0]).tokens != batch.result(ids[1]).tokens);
    }

    // run() stopped by its callback: everything finishes CANCELLED; cancel(id) ends one sequence only.
    {
        mobilellm::Batch batch(model, batch_params);
        for (const auto &prompt : prompts) batch.add(prompt, options);
        int events = 0;
        batch.run([&](const mobilellm::BatchEvent &) { return ++events < 3; });
        for (int32_t id = 0; id < static_cast<int32_t>(prompts.size()); id++) {
            CHECK(batch.result(id).stop_reason == MOBILELLM_STOP_CANCELLED);
        }
        std::vector<int32_t> ids;
        for (const auto &prompt : prompts) ids.push_back(batch.add(prompt, options).at(0));
        batch.step();
        batch.cancel(ids[2]);
        batch.run([](const mobilellm::BatchEvent &) { return true; });
        CHECK(batch.result(ids[2]).stop_reason == MOBILELLM_STOP_CANCELLED);
        CHECK(batch.result(ids[2]).tokens.size() == 1);
        CHECK(batch.result(ids[0]).tokens == model.session(128).generate(prompts[0], options).tokens);
    }

    // Kept logits equal Session::eval's; a sequence on an existing session.
    {
        mobilellm::BatchParams keeping = batch_params;
        keeping.keep_logits = true;
        mobilellm::Batch batch(model, keeping);
        auto session = model.session(128);
        int32_t id = batch.add(session, prompts[3], options);
        batch.step();
        CHECK(batch.logits(id) == model.session(128).eval(prompts[3]));
        batch.run([](const mobilellm::BatchEvent &) { return true; });
        auto expected = model.session(128).generate(prompts[3], options);
        CHECK(batch.result(id).tokens == expected.tokens);
        CHECK(session.position() == static_cast<int32_t>(prompts[3].size() + expected.tokens.size() - 1));
    }

    // Errors carry the library's status and message.
    {
        mobilellm::Batch batch(model, batch_params);
        EXPECT_ERROR(batch.add({}, options), MOBILELLM_ERROR_INVALID_ARGUMENT, "prompt");
        EXPECT_ERROR(batch.add(prompts[0], options, 0), MOBILELLM_ERROR_INVALID_ARGUMENT, "n_samples");
        EXPECT_ERROR(batch.add({1, 99999}, options), MOBILELLM_ERROR_INVALID_ARGUMENT, "[1]");
        mobilellm::GenerateOptions with_callback = options;
        with_callback.on_token = [](int32_t, std::string_view) { return true; };
        EXPECT_ERROR(batch.add(prompts[0], with_callback), MOBILELLM_ERROR_INVALID_ARGUMENT, "params->callback");
        EXPECT_ERROR(batch.cancel(5), MOBILELLM_ERROR_INVALID_ARGUMENT, "never issued");
        EXPECT_ERROR(batch.logits(0), MOBILELLM_ERROR_INVALID_ARGUMENT, "keep_logits");
        mobilellm::BatchParams bad = batch_params;
        bad.max_rows_per_step = 1000;
        EXPECT_ERROR(mobilellm::Batch(model, bad), MOBILELLM_ERROR_INVALID_ARGUMENT, "params->max_rows_per_step");
        mobilellm::BatchParams texts = batch_params;
        texts.stream_text = true;
        mobilellm::Batch streaming(model, texts);
        EXPECT_ERROR(streaming.add(prompts[0], options), MOBILELLM_ERROR_NO_TOKENIZER, "");
    }
    return test_finish("cpp_test_batch");
}
