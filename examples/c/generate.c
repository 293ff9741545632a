/* Greedy generation from token ids with one call.  Usage: generate MODEL_DIR [MAX_TOKENS] */
#include <stdio.h>
#include <stdlib.h>

#include "mobilellm.h"

#define FAIL(what)                                                        \
    do {                                                                  \
        fprintf(stderr, "%s failed: %s\n", what, mobilellm_last_error()); \
        return 1;                                                         \
    } while (0)

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL_DIR [MAX_TOKENS]\n", argv[0]);
        return 2;
    }
    mobilellm_model *model = NULL;
    mobilellm_session *session = NULL;
    if (mobilellm_model_load(argv[1], NULL, &model) != MOBILELLM_OK) FAIL("load");
    if (mobilellm_session_create(model, NULL, &session) != MOBILELLM_OK) FAIL("session");

    const int32_t prompt[] = {0, 169, 380, 264, 92};
    mobilellm_generate_params params;
    mobilellm_generate_params_init(&params);
    params.max_tokens = argc > 2 ? atoi(argv[2]) : 24;
    int32_t tokens[256];
    mobilellm_generate_result result;
    result.struct_size = sizeof result;
    if (mobilellm_session_generate(session, prompt, 5, NULL /* greedy */, &params, tokens, 256, &result) != MOBILELLM_OK)
        FAIL("generate");
    for (int i = 0; i < result.n_tokens && i < 256; i++) printf("%s%d", i ? "," : "", tokens[i]);
    printf("\nstop reason %d after %d tokens\n", result.stop_reason, result.n_tokens);
    mobilellm_session_free(session);
    mobilellm_model_free(model);
    return 0;
}
