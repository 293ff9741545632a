/* Loads a model with a progress callback and prints what it is.  Usage: load MODEL_DIR */
#include <stdio.h>

#include "mobilellm.h"

static bool show_progress(float progress, void *user_data) {
    (void)user_data;
    fprintf(stderr, "\rloading %3.0f%%", (double)progress * 100);
    if (progress >= 1.0f) fprintf(stderr, "\n");
    return true; /* false would abort the load */
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL_DIR\n", argv[0]);
        return 2;
    }
    if (mobilellm_abi_version() != MOBILELLM_ABI_VERSION) {
        fprintf(stderr, "libmobilellm ABI %u, header %d\n", mobilellm_abi_version(), MOBILELLM_ABI_VERSION);
        return 1;
    }
    mobilellm_model_params params;
    mobilellm_model_params_init(&params);
    params.progress_callback = show_progress;
    mobilellm_model *model = NULL;
    if (mobilellm_model_load(argv[1], &params, &model) != MOBILELLM_OK) {
        fprintf(stderr, "error: %s\n", mobilellm_last_error());
        return 1;
    }
    mobilellm_model_info info;
    info.struct_size = sizeof info;
    mobilellm_model_get_info(model, &info);
    char architecture[64];
    size_t length = 0;
    mobilellm_model_get_metadata(model, "architecture", architecture, sizeof architecture, &length);
    printf("mobilellm %s: %s, %d layers, hidden %d, %d/%d heads, vocabulary %d, context %d, BOS %d, %d EOS ids\n",
           mobilellm_version_string(), architecture, info.n_layers, info.hidden_size, info.n_heads, info.n_kv_heads,
           info.vocab_size, info.context_length, info.bos_token_id, info.n_eos_token_ids);
    mobilellm_model_free(model);
    return 0;
}
