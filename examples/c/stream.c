/* Streams tokens as they are generated, with seeded sampling, and stops from the callback.
 * Usage: stream MODEL_DIR */
#include <stdio.h>

#include "mobilellm.h"

static bool on_token(int32_t token, const char *piece, size_t length, void *user_data) {
    int *count = (int *)user_data;
    if (piece) printf("%.*s", (int)length, piece); /* text, when the model has a tokenizer */
    else printf("[%d]", token);
    fflush(stdout);
    return ++(*count) < 20; /* false stops generation */
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL_DIR\n", argv[0]);
        return 2;
    }
    mobilellm_model *model = NULL;
    mobilellm_session *session = NULL;
    if (mobilellm_model_load(argv[1], NULL, &model) != MOBILELLM_OK ||
        mobilellm_session_create(model, NULL, &session) != MOBILELLM_OK) {
        fprintf(stderr, "error: %s\n", mobilellm_last_error());
        return 1;
    }
    mobilellm_sampler_params sampling;
    mobilellm_sampler_params_init(&sampling);
    sampling.temperature = 0.7f;
    sampling.top_p = 0.9f;
    sampling.seed = 42;
    sampling.use_seed = true;
    int count = 0;
    mobilellm_generate_params params;
    mobilellm_generate_params_init(&params);
    params.max_tokens = 100;
    params.callback = on_token;
    params.user_data = &count;
    const int32_t prompt[] = {0, 169, 380};
    mobilellm_generate_result result;
    result.struct_size = sizeof result;
    mobilellm_status status = mobilellm_session_generate(session, prompt, 3, &sampling, &params, NULL, 0, &result);
    printf("\n%s: %d tokens, stop reason %d\n", mobilellm_status_name(status), result.n_tokens, result.stop_reason);
    mobilellm_session_free(session);
    mobilellm_model_free(model);
    return status == MOBILELLM_OK && count == 20 && result.stop_reason == MOBILELLM_STOP_CALLBACK ? 0 : 1;
}
