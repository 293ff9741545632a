/* Per-session thread counts, the memory estimate's arguments and errors, use_mlock and mobilellm_system_info().
 * (The estimate's agreement with measured memory is checked in python/tests/test_memory.py, in child processes.) */
#include "test_support.h"

#define FIXTURE MOBILELLM_SOURCE_DIR "/Tests/Fixtures/llama4-r1like-bf16-sharded"
#define N_PROMPT 5
#define N_GENERATED 12

/* Greedy tokens of a fixed prompt on a session of `model` running on `threads` threads (0: all). */
static void generate(mobilellm_model *model, int32_t threads, int32_t *out, float *last_logits, int32_t vocab) {
    mobilellm_session *session = NULL;
    REQUIRE_OK(mobilellm_session_create(model, NULL, &session));
    REQUIRE_OK(mobilellm_session_set_threads(session, threads));
    const int32_t prompt[N_PROMPT] = {0, 169, 380, 17, 42};
    mobilellm_sampler *sampler = NULL;
    REQUIRE_OK(mobilellm_sampler_create(NULL, &sampler));
    REQUIRE_OK(mobilellm_session_eval(session, prompt, N_PROMPT, MOBILELLM_LOGITS_NONE, NULL, 0));
    int32_t token = prompt[N_PROMPT - 1];
    for (int i = 0; i < N_GENERATED; i++) {
        REQUIRE_OK(mobilellm_session_eval(session, &token, 1, MOBILELLM_LOGITS_LAST, last_logits, (size_t)vocab));
        REQUIRE_OK(mobilellm_sampler_sample(sampler, session, &token));
        out[i] = token;
    }
    mobilellm_sampler_free(sampler);
    mobilellm_session_free(session);
}

static void check_threads(void) {
    mobilellm_model_params mp;
    mobilellm_model_params_init(&mp);
    mp.n_threads = 4; /* a pool of 4 whatever the machine, so 1, 2 and 4 threads really split the work */
    mobilellm_model *model = NULL;
    REQUIRE_OK(mobilellm_model_load(FIXTURE, &mp, &model));
    mobilellm_model_info info;
    info.struct_size = sizeof info;
    REQUIRE_OK(mobilellm_model_get_info(model, &info));
    float *logits[3];
    int32_t tokens[3][N_GENERATED];
    const int32_t counts[3] = {1, 2, 0};
    for (int run = 0; run < 3; run++) {
        logits[run] = malloc(sizeof(float) * (size_t)info.vocab_size);
        CHECK(logits[run] != NULL);
        if (!logits[run]) return;
        generate(model, counts[run], tokens[run], logits[run], info.vocab_size);
    }
    for (int run = 1; run < 3; run++) {
        /* Exact mode: the same tokens and bit-identical logits for every thread count. */
        CHECK(memcmp(tokens[0], tokens[run], sizeof tokens[0]) == 0);
        CHECK(memcmp(logits[0], logits[run], sizeof(float) * (size_t)info.vocab_size) == 0);
    }
    for (int run = 0; run < 3; run++) free(logits[run]);

    mobilellm_session *session = NULL;
    REQUIRE_OK(mobilellm_session_create(model, NULL, &session));
    CHECK_STATUS(mobilellm_session_set_threads(session, -1), MOBILELLM_ERROR_INVALID_ARGUMENT, "n_threads");
    CHECK_STATUS(mobilellm_session_set_threads(session, 5), MOBILELLM_ERROR_INVALID_ARGUMENT, "found 5");
    CHECK_STATUS(mobilellm_session_set_threads(session, 5), MOBILELLM_ERROR_INVALID_ARGUMENT, "1...4");
    CHECK_STATUS(mobilellm_session_set_threads(session, 4), MOBILELLM_OK, NULL);
    CHECK_STATUS(mobilellm_session_set_threads(NULL, 1), MOBILELLM_ERROR_INVALID_HANDLE, "session");
    mobilellm_session_free(session);
    CHECK_STATUS(mobilellm_session_set_threads(session, 1), MOBILELLM_ERROR_INVALID_HANDLE, NULL);
    mobilellm_model_free(model);
}

/* Greedy tokens of a batch of one prompt on `threads` threads (0: all). */
static size_t batch_generate(mobilellm_model *model, int32_t threads, int32_t *out, size_t capacity) {
    mobilellm_batch *batch = NULL;
    REQUIRE_OK(mobilellm_batch_create(model, NULL, &batch));
    REQUIRE_OK(mobilellm_batch_set_threads(batch, threads));
    const int32_t prompt[N_PROMPT] = {0, 169, 380, 17, 42};
    mobilellm_generate_params gp;
    mobilellm_generate_params_init(&gp);
    gp.max_tokens = N_GENERATED;
    gp.ignore_eos = true;
    int32_t id = -1;
    REQUIRE_OK(mobilellm_batch_add(batch, prompt, N_PROMPT, NULL, &gp, 1, &id));
    mobilellm_batch_event events[8];
    size_t n_events = 0;
    do {
        REQUIRE_OK(mobilellm_batch_step(batch, events, 8, &n_events));
    } while (n_events > 0);
    size_t n = 0;
    REQUIRE_OK(mobilellm_batch_result(batch, id, out, capacity, &n, NULL));
    CHECK_STATUS(mobilellm_batch_set_threads(batch, 99), MOBILELLM_ERROR_INVALID_ARGUMENT, "n_threads");
    mobilellm_batch_free(batch);
    return n;
}

static void check_batch_threads(void) {
    mobilellm_model_params mp;
    mobilellm_model_params_init(&mp);
    mp.n_threads = 3;
    mobilellm_model *model = NULL;
    REQUIRE_OK(mobilellm_model_load(FIXTURE, &mp, &model));
    int32_t one[N_GENERATED], all[N_GENERATED];
    size_t n_one = batch_generate(model, 1, one, N_GENERATED);
    size_t n_all = batch_generate(model, 0, all, N_GENERATED);
    CHECK(n_one == N_GENERATED && n_all == N_GENERATED);
    CHECK(memcmp(one, all, sizeof one) == 0);
    CHECK_STATUS(mobilellm_batch_set_threads(NULL, 1), MOBILELLM_ERROR_INVALID_HANDLE, "batch");
    mobilellm_model_free(model);
}

static void check_estimate(void) {
    mobilellm_memory_estimate estimate;
    memset(&estimate, 0, sizeof estimate);
    estimate.struct_size = sizeof estimate;
    REQUIRE_OK(mobilellm_model_estimate_memory(FIXTURE, NULL, 64, &estimate));
    CHECK(estimate.n_ctx == 64);
    CHECK(estimate.kv_cache_type == MOBILELLM_KV_F32); /* bf16 weights are not block-quantized */
    CHECK(estimate.weights_mapped_bytes > 0);
    CHECK(estimate.kv_bytes >= 64 * estimate.kv_bytes_per_position);
    CHECK(estimate.total_bytes == estimate.weights_mapped_bytes + estimate.weights_anonymous_bytes +
                                      estimate.kv_bytes + estimate.scratch_bytes);
    /* n_ctx 0: the session default (min(4096, the model's maximum)); a bigger context needs more KV. */
    mobilellm_memory_estimate automatic;
    memset(&automatic, 0, sizeof automatic);
    automatic.struct_size = sizeof automatic;
    REQUIRE_OK(mobilellm_model_estimate_memory(FIXTURE, NULL, 0, &automatic));
    CHECK(automatic.n_ctx > 64);
    CHECK(automatic.kv_bytes > estimate.kv_bytes);
    /* Quantize on load: the converted matrices move to anonymous memory. */
    mobilellm_model_params mp;
    mobilellm_model_params_init(&mp);
    mp.quantize = "q8_0";
    mobilellm_memory_estimate quantized;
    memset(&quantized, 0, sizeof quantized);
    quantized.struct_size = sizeof quantized;
    REQUIRE_OK(mobilellm_model_estimate_memory(FIXTURE, &mp, 64, &quantized));
    CHECK(quantized.weights_anonymous_bytes > estimate.weights_anonymous_bytes);
    CHECK(quantized.weights_mapped_bytes < estimate.weights_mapped_bytes);
    CHECK(quantized.kv_cache_type == MOBILELLM_KV_F16);

    /* Errors: as model_load, with its messages. */
    mobilellm_model *model = NULL;
    mobilellm_status load_status = mobilellm_model_load("/nonexistent/model.gguf", NULL, &model);
    /* The same message after the function name ("mobilellm_model_load: /nonexistent/...: no such file ..."). */
    char load_message[512];
    const char *after_name = strchr(mobilellm_last_error(), ':');
    snprintf(load_message, sizeof load_message, "%s", after_name ? after_name : "(no message)");
    CHECK_STATUS(mobilellm_model_estimate_memory("/nonexistent/model.gguf", NULL, 0, &estimate), load_status, load_message);
    CHECK(load_status == MOBILELLM_ERROR_FILE_NOT_FOUND);
    CHECK_STATUS(mobilellm_model_estimate_memory(MOBILELLM_SOURCE_DIR "/README.md", NULL, 0, &estimate),
                 MOBILELLM_ERROR_INVALID_FILE, "README.md");
    CHECK_STATUS(mobilellm_model_estimate_memory(NULL, NULL, 0, &estimate), MOBILELLM_ERROR_INVALID_ARGUMENT, "path");
    CHECK_STATUS(mobilellm_model_estimate_memory(FIXTURE, NULL, 0, NULL), MOBILELLM_ERROR_INVALID_ARGUMENT, "out");
    CHECK_STATUS(mobilellm_model_estimate_memory(FIXTURE, NULL, -1, &estimate), MOBILELLM_ERROR_INVALID_ARGUMENT, "n_ctx");
    CHECK_STATUS(mobilellm_model_estimate_memory(FIXTURE, NULL, 1 << 30, &estimate), MOBILELLM_ERROR_INVALID_ARGUMENT, "n_ctx");
    mp.quantize = "q9_9";
    CHECK_STATUS(mobilellm_model_estimate_memory(FIXTURE, &mp, 0, &estimate), MOBILELLM_ERROR_INVALID_ARGUMENT,
                 "params->quantize");
    mobilellm_model_params_init(&mp);
    mp.n_threads = 2000;
    CHECK_STATUS(mobilellm_model_estimate_memory(FIXTURE, &mp, 0, &estimate), MOBILELLM_ERROR_INVALID_ARGUMENT,
                 "params->n_threads");
    mobilellm_memory_estimate small;
    small.struct_size = 8;
    CHECK_STATUS(mobilellm_model_estimate_memory(FIXTURE, NULL, 0, &small), MOBILELLM_ERROR_INVALID_ARGUMENT,
                 "out->struct_size");
}

static void check_mlock(void) {
    /* The fixture is small (under 1 MB): locking it fits the usual 64 KB ... 8 MB RLIMIT_MEMLOCK or fails with a
     * message that names the field and the limit. */
    mobilellm_model_params mp;
    mobilellm_model_params_init(&mp);
    mp.n_threads = 1;
    mp.use_mlock = true;
    mobilellm_model *model = NULL;
    mobilellm_status status = mobilellm_model_load(FIXTURE, &mp, &model);
    if (status == MOBILELLM_OK) {
        mobilellm_model_free(model);
    } else {
        CHECK(status == MOBILELLM_ERROR_INVALID_ARGUMENT);
        CHECK(test_contains(mobilellm_last_error(), "params->use_mlock"));
        CHECK(test_contains(mobilellm_last_error(), "RLIMIT_MEMLOCK"));
    }
}

static void check_system_info(void) {
    const char *info = mobilellm_system_info();
    CHECK(info != NULL && info == mobilellm_system_info());
    if (!info) return;
    CHECK(test_contains(info, "arch: "));
    CHECK(test_contains(info, "features:"));
    CHECK(test_contains(info, "\nisa: "));
    CHECK(test_contains(info, "\nf32: "));
    CHECK(test_contains(info, "\nq4_0: exact-decode "));
    CHECK(test_contains(info, "\nq6_k: exact-decode "));
    CHECK(test_contains(info, ", int8 "));
}

int main(void) {
    check_threads();
    check_batch_threads();
    check_estimate();
    check_mlock();
    check_system_info();
    return test_finish("test_system");
}
