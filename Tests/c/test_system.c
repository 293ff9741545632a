/* Per-session thread counts, the memory estimate's arguments and errors, use_mlock, params->activations and
 * mobilellm_system_info(). (The estimate's agreement with measured memory is checked in python/tests/test_memory.py,
 * in child processes.) */
#include <stddef.h>

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

#define LLAMA_F16 MOBILELLM_SOURCE_DIR "/Tests/Fixtures/llama-f16"
#define N_ACT_PROMPT 7
#define N_ACT_ROWS (N_ACT_PROMPT + 1)

/* llama-f16 quantized to q8_0 at load with params->activations = `activations` (NULL: left as params_init leaves
 * it): the logits of every prompt position (a prefill) and of one more token (a decode step), N_ACT_ROWS rows of
 * *vocab floats (the caller frees them), and the precision the model reports into `reported`. */
static float *activation_logits(const char *activations, char *reported, size_t reported_size, int32_t *vocab) {
    mobilellm_model_params mp;
    mobilellm_model_params_init(&mp);
    CHECK(mp.activations == NULL);
    mp.n_threads = 1;
    mp.quantize = "q8_0";
    mp.activations = activations;
    mobilellm_model *model = NULL;
    REQUIRE_OK(mobilellm_model_load(LLAMA_F16, &mp, &model));
    mobilellm_model_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    REQUIRE_OK(mobilellm_model_get_info(model, &info));
    CHECK(info.is_quantized);
    CHECK(info.activations != NULL);
    snprintf(reported, reported_size, "%s", test_text(info.activations));
    *vocab = info.vocab_size;
    float *logits = malloc(sizeof(float) * (size_t)info.vocab_size * N_ACT_ROWS);
    if (!logits) exit(1);
    mobilellm_session *session = NULL;
    REQUIRE_OK(mobilellm_session_create(model, NULL, &session));
    const int32_t prompt[N_ACT_PROMPT] = {1, 169, 380, 17, 42, 311, 7};
    REQUIRE_OK(mobilellm_session_eval(session, prompt, N_ACT_PROMPT, MOBILELLM_LOGITS_ALL, logits,
                                      (size_t)info.vocab_size * N_ACT_PROMPT));
    const int32_t next = 99;
    REQUIRE_OK(mobilellm_session_eval(session, &next, 1, MOBILELLM_LOGITS_LAST,
                                      logits + (size_t)info.vocab_size * N_ACT_PROMPT, (size_t)info.vocab_size));
    mobilellm_session_free(session);
    mobilellm_model_free(model);
    return logits;
}

static void check_activations(void) {
    /* An unknown name: INVALID_ARGUMENT naming the field and listing the accepted names, for load and estimate. */
    mobilellm_model_params mp;
    mobilellm_model_params_init(&mp);
    mp.quantize = "q8_0";
    mp.activations = "int4";
    mobilellm_model *model = NULL;
    CHECK_STATUS(mobilellm_model_load(LLAMA_F16, &mp, &model), MOBILELLM_ERROR_INVALID_ARGUMENT, "params->activations");
    CHECK(test_contains(mobilellm_last_error(), "int4"));
    CHECK(test_contains(mobilellm_last_error(), "\"exact\"") && test_contains(mobilellm_last_error(), "\"int8\""));
    CHECK(model == NULL);
    mobilellm_memory_estimate estimate;
    memset(&estimate, 0, sizeof estimate);
    estimate.struct_size = sizeof estimate;
    CHECK_STATUS(mobilellm_model_estimate_memory(LLAMA_F16, &mp, 64, &estimate), MOBILELLM_ERROR_INVALID_ARGUMENT,
                 "params->activations");
    /* A caller built before the field (struct_size without it) gets the default: the field is never read. */
    mp.struct_size = (uint32_t)offsetof(mobilellm_model_params, activations);
    REQUIRE_OK(mobilellm_model_load(LLAMA_F16, &mp, &model));
    mobilellm_model_info old_info;
    memset(&old_info, 0, sizeof old_info);
    const char sentinel[] = "untouched";
    old_info.activations = sentinel;
    old_info.struct_size = (uint32_t)offsetof(mobilellm_model_info, activations);
    REQUIRE_OK(mobilellm_model_get_info(model, &old_info));
    CHECK(old_info.activations == sentinel); /* an older info struct is not written past its size */
    CHECK(old_info.is_quantized);
    mobilellm_model_free(model);

    /* Both names load a quantized model; int8 is not exact but stays close. */
    char exact_name[32], int8_name[32], default_name[32], empty_name[32];
    int32_t vocab = 0;
    float *exact = activation_logits("exact", exact_name, sizeof exact_name, &vocab);
    float *int8 = activation_logits("int8", int8_name, sizeof int8_name, &vocab);
    CHECK(strcmp(exact_name, "exact") == 0);
    CHECK(strcmp(int8_name, "int8") == 0);
    size_t count = (size_t)vocab * N_ACT_ROWS;
    float low = exact[0], high = exact[0], worst = 0;
    for (size_t i = 0; i < count; i++) {
        if (exact[i] < low) low = exact[i];
        if (exact[i] > high) high = exact[i];
        float difference = fabsf(exact[i] - int8[i]);
        if (difference > worst) worst = difference;
    }
    CHECK(memcmp(exact, int8, sizeof(float) * count) != 0);
    CHECK(high > low && worst <= 0.05f * (high - low));
    printf("activations: int8 vs exact, largest logit difference %g (logit range %g)\n", (double)worst,
           (double)(high - low));

    /* NULL and "" give the library's default, whichever it is: the model reports it, and its logits are bit for
     * bit those of asking for that precision by name. */
    float *automatic = activation_logits(NULL, default_name, sizeof default_name, &vocab);
    float *empty = activation_logits("", empty_name, sizeof empty_name, &vocab);
    CHECK(strcmp(default_name, "exact") == 0 || strcmp(default_name, "int8") == 0);
    CHECK(strcmp(empty_name, default_name) == 0);
    const float *named = strcmp(default_name, "int8") == 0 ? int8 : exact;
    CHECK(memcmp(automatic, named, sizeof(float) * count) == 0);
    CHECK(memcmp(empty, named, sizeof(float) * count) == 0);
    free(exact);
    free(int8);
    free(automatic);
    free(empty);

    /* The estimate takes the option: both names give an estimate of the same total (rearranging for the int8
     * kernels moves bytes between mapped and anonymous memory, it adds none). */
    mobilellm_memory_estimate by_name[2];
    const char *names[2] = {"exact", "int8"};
    for (int i = 0; i < 2; i++) {
        mobilellm_model_params_init(&mp);
        mp.quantize = "q8_0";
        mp.activations = names[i];
        memset(&by_name[i], 0, sizeof by_name[i]);
        by_name[i].struct_size = sizeof by_name[i];
        REQUIRE_OK(mobilellm_model_estimate_memory(LLAMA_F16, &mp, 64, &by_name[i]));
    }
    CHECK(by_name[0].total_bytes == by_name[1].total_bytes);
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
    check_activations();
    check_system_info();
    return test_finish("test_system");
}
