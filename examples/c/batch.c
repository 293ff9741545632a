/* Batched generation: three prompts advanced together, one forward pass per step, each sequence's tokens printed
 * as they come.  Usage: batch MODEL_DIR [MAX_TOKENS] */
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
    mobilellm_batch *batch = NULL;
    if (mobilellm_model_load(argv[1], NULL, &model) != MOBILELLM_OK) FAIL("load");
    if (mobilellm_batch_create(model, NULL, &batch) != MOBILELLM_OK) FAIL("batch");

    const int32_t prompts[3][5] = {{0, 169, 380, 264, 92}, {0, 12, 13, 14, 15}, {0, 300, 200, 100, 50}};
    mobilellm_generate_params params;
    mobilellm_generate_params_init(&params);
    params.max_tokens = argc > 2 ? atoi(argv[2]) : 16;
    for (int i = 0; i < 3; i++) {
        int32_t id;
        if (mobilellm_batch_add(batch, prompts[i], 5, NULL /* greedy */, &params, 1, &id) != MOBILELLM_OK) FAIL("add");
    }
    mobilellm_batch_event events[8]; /* 2 x the active sequences holds a whole step */
    size_t n = 0;
    do {
        if (mobilellm_batch_step(batch, events, 8, &n) != MOBILELLM_OK) FAIL("step");
        for (size_t i = 0; i < n; i++) {
            if (events[i].type == MOBILELLM_BATCH_EVENT_TOKEN) {
                printf("sequence %d: token %d\n", events[i].sequence, events[i].token);
            } else {
                int32_t tokens[256];
                size_t count = 0;
                if (mobilellm_batch_result(batch, events[i].sequence, tokens, 256, &count, NULL) != MOBILELLM_OK)
                    FAIL("result");
                printf("sequence %d finished: %zu tokens, stop reason %d\n", events[i].sequence, count,
                       events[i].stop_reason);
            }
        }
    } while (n > 0);
    mobilellm_batch_free(batch);
    mobilellm_model_free(model);
    return 0;
}
