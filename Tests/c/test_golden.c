/* The C ABI against transformers: logits at every position within 1e-3 and identical greedy continuations for
 * every golden fixture, both with one-call generation and with an eval + sample loop; state save/restore reuses a
 * prefix exactly; seeded sampling repeats. */
#include "test_support.h"

static int argmax(const float *row, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (row[i] > row[best]) best = i;
    return best;
}

static void check_fixture(const char *name) {
    char path[1024];
    test_fixture_path(path, sizeof path, name);
    test_reference reference;
    test_load_reference(name, &reference);
    mobilellm_model *model = NULL;
    REQUIRE_OK(mobilellm_model_load(path, NULL, &model));
    mobilellm_model_info info;
    info.struct_size = sizeof info;
    REQUIRE_OK(mobilellm_model_get_info(model, &info));
    CHECK(info.vocab_size == reference.vocab_size);
    const int vocab = info.vocab_size;
    mobilellm_session_params sp;
    mobilellm_session_params_init(&sp);
    sp.n_ctx = 128;

    for (int s = 0; s < reference.n_sequences; s++) {
        test_sequence *sequence = &reference.sequences[s];
        mobilellm_session *session = NULL;
        REQUIRE_OK(mobilellm_session_create(model, &sp, &session));
        size_t n = (size_t)sequence->n_tokens;
        float *logits = (float *)malloc(sizeof(float) * n * (size_t)vocab);
        REQUIRE_OK(mobilellm_session_eval(session, sequence->tokens, n, MOBILELLM_LOGITS_ALL, logits, n * (size_t)vocab));
        float worst = test_max_abs_diff(logits, sequence->logits, n * (size_t)vocab);
        CHECK(worst <= 1e-3f);
        for (size_t row = 0; row < n; row++)
            CHECK(argmax(logits + row * (size_t)vocab, vocab) == argmax(sequence->logits + row * (size_t)vocab, vocab));
        printf("%s sequence %d: %zu positions, max |dlogit| %.2e\n", name, s, n, (double)worst);

        /* Prefix reuse: save after the first half, restore into a fresh session, feed the rest: same last row. */
        size_t half = n / 2;
        mobilellm_session *first = NULL, *second = NULL;
        REQUIRE_OK(mobilellm_session_create(model, &sp, &first));
        REQUIRE_OK(mobilellm_session_create(model, &sp, &second));
        REQUIRE_OK(mobilellm_session_eval(first, sequence->tokens, half, MOBILELLM_LOGITS_NONE, NULL, 0));
        size_t size = 0;
        REQUIRE_OK(mobilellm_session_state_size(first, &size));
        void *state = malloc(size);
        REQUIRE_OK(mobilellm_session_save_state(first, state, size, &size));
        REQUIRE_OK(mobilellm_session_load_state(second, state, size));
        int32_t position = 0;
        REQUIRE_OK(mobilellm_session_position(second, &position));
        CHECK((size_t)position == half);
        float *last = (float *)malloc(sizeof(float) * (size_t)vocab);
        REQUIRE_OK(mobilellm_session_eval(second, sequence->tokens + half, n - half, MOBILELLM_LOGITS_LAST, last, (size_t)vocab));
        CHECK(memcmp(last, logits + (n - 1) * (size_t)vocab, sizeof(float) * (size_t)vocab) == 0);
        free(last);
        free(state);
        free(logits);
        mobilellm_session_free(first);
        mobilellm_session_free(second);
        mobilellm_session_free(session);
    }

    for (int g = 0; g < reference.n_greedy; g++) {
        test_greedy *greedy = &reference.greedy[g];
        mobilellm_session *session = NULL;
        REQUIRE_OK(mobilellm_session_create(model, &sp, &session));
        mobilellm_generate_params gp;
        mobilellm_generate_params_init(&gp);
        gp.max_tokens = greedy->n_continuation;
        int32_t out[256];
        mobilellm_generate_result result;
        result.struct_size = sizeof result;
        REQUIRE_OK(mobilellm_session_generate(session, greedy->prompt, (size_t)greedy->n_prompt, NULL, &gp, out, 256, &result));
        CHECK(result.n_tokens == greedy->n_continuation && result.stop_reason == MOBILELLM_STOP_MAX_TOKENS);
        CHECK(memcmp(out, greedy->continuation, sizeof(int32_t) * (size_t)greedy->n_continuation) == 0);

        /* The same with eval + sampler, one token at a time. */
        mobilellm_sampler *sampler = NULL;
        REQUIRE_OK(mobilellm_sampler_create(NULL, &sampler));
        REQUIRE_OK(mobilellm_session_reset(session));
        REQUIRE_OK(mobilellm_session_eval(session, greedy->prompt, (size_t)greedy->n_prompt, MOBILELLM_LOGITS_NONE, NULL, 0));
        /* Recompute the last prompt position's logits with a rewind, as generate does when continuing. */
        REQUIRE_OK(mobilellm_session_rewind(session, greedy->n_prompt - 1));
        float *row = (float *)malloc(sizeof(float) * (size_t)vocab);
        REQUIRE_OK(mobilellm_session_eval(session, greedy->prompt + greedy->n_prompt - 1, 1, MOBILELLM_LOGITS_LAST, row, (size_t)vocab));
        int same = 1;
        for (int i = 0; i < greedy->n_continuation; i++) {
            int32_t token = -1;
            REQUIRE_OK(mobilellm_sampler_sample(sampler, session, &token));
            if (token != greedy->continuation[i]) same = 0;
            REQUIRE_OK(mobilellm_session_eval(session, &token, 1, MOBILELLM_LOGITS_LAST, row, (size_t)vocab));
        }
        CHECK(same);
        free(row);
        mobilellm_sampler_free(sampler);
        mobilellm_session_free(session);
    }
    printf("%s: greedy continuations checked (%d)\n", name, reference.n_greedy);

    /* Seeded sampling repeats exactly. */
    mobilellm_sampler_params p;
    mobilellm_sampler_params_init(&p);
    p.temperature = 0.9f;
    p.top_k = 50;
    p.top_p = 0.95f;
    p.seed = 1234;
    p.use_seed = true;
    int32_t runs[2][16];
    for (int run = 0; run < 2; run++) {
        mobilellm_session *session = NULL;
        REQUIRE_OK(mobilellm_session_create(model, &sp, &session));
        mobilellm_generate_params gp;
        mobilellm_generate_params_init(&gp);
        gp.max_tokens = 16;
        gp.ignore_eos = true;
        REQUIRE_OK(mobilellm_session_generate(session, reference.greedy[0].prompt, (size_t)reference.greedy[0].n_prompt, &p, &gp,
                                              runs[run], 16, NULL));
        mobilellm_session_free(session);
    }
    CHECK(memcmp(runs[0], runs[1], sizeof runs[0]) == 0);
    mobilellm_model_free(model);
    test_free_reference(&reference);
}

int main(void) {
    for (int i = 0; i < TEST_FIXTURE_COUNT; i++) check_fixture(test_fixture_names[i]);
    return test_finish("test_golden");
}
