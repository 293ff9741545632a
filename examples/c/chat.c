/* One chat turn: render the model's chat template, tokenize, and stream the answer as text.
 * Usage: chat MODEL_DIR [MESSAGE]   (the model needs tokenizer files) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mobilellm.h"

static bool print_piece(int32_t token, const char *piece, size_t length, void *user_data) {
    (void)token;
    (void)user_data;
    fwrite(piece, 1, length, stdout); /* whole UTF-8 characters only */
    fflush(stdout);
    return true;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL_DIR [MESSAGE]\n", argv[0]);
        return 2;
    }
    mobilellm_model *model = NULL;
    mobilellm_session *session = NULL;
    if (mobilellm_model_load(argv[1], NULL, &model) != MOBILELLM_OK ||
        mobilellm_session_create(model, NULL, &session) != MOBILELLM_OK) {
        fprintf(stderr, "error: %s\n", mobilellm_last_error());
        return 1;
    }
    mobilellm_chat_message messages[2] = {{"system", "You are a helpful assistant."},
                                          {"user", argc > 2 ? argv[2] : "Hello! Who are you?"}};
    /* Ask for the size, then render. */
    size_t length = 0;
    mobilellm_apply_chat_template(model, messages, 2, NULL, NULL, 0, &length);
    char *prompt = (char *)malloc(length + 1);
    size_t n_tokens = 0;
    int32_t *tokens = NULL;
    int ok = mobilellm_apply_chat_template(model, messages, 2, NULL, prompt, length + 1, &length) == MOBILELLM_OK;
    if (ok) {
        mobilellm_tokenize(model, prompt, length, false, true, NULL, 0, &n_tokens);
        tokens = (int32_t *)malloc(sizeof(int32_t) * (n_tokens + 1));
        ok = mobilellm_tokenize(model, prompt, length, false, true, tokens, n_tokens, &n_tokens) == MOBILELLM_OK;
    }
    if (ok) {
        mobilellm_sampler_params sampling;
        mobilellm_sampler_params_init(&sampling);
        sampling.temperature = 0.6f;
        sampling.top_p = 0.95f;
        sampling.seed = 7;
        sampling.use_seed = true;
        mobilellm_generate_params params;
        mobilellm_generate_params_init(&params);
        params.max_tokens = 48;
        params.callback = print_piece;
        mobilellm_generate_result result;
        result.struct_size = sizeof result;
        ok = mobilellm_session_generate(session, tokens, n_tokens, &sampling, &params, NULL, 0, &result) == MOBILELLM_OK;
        printf("\n[%zu prompt tokens, %d generated, stop reason %d]\n", n_tokens, result.n_tokens, result.stop_reason);
    }
    if (!ok) fprintf(stderr, "error: %s\n", mobilellm_last_error());
    free(tokens);
    free(prompt);
    mobilellm_session_free(session);
    mobilellm_model_free(model);
    return ok ? 0 : 1;
}
