/* Every error path of the C ABI: each call below gets a wrong argument and must return the documented status with
 * a message naming what failed, never crash, and leave the session usable. */
#include <string.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_support.h"

static char fixture[1024];

static mobilellm_model *load_fixture(void) {
    mobilellm_model *model = NULL;
    REQUIRE_OK(mobilellm_model_load(fixture, NULL, &model));
    return model;
}

static bool abort_at_half(float progress, void *user_data) {
    int *calls = (int *)user_data;
    (*calls)++;
    return progress < 0.5f;
}

static bool count_progress(float progress, void *user_data) {
    float *last = (float *)user_data;
    if (progress < *last) *last = 2; /* must not go backwards */
    else *last = progress;
    return true;
}

static void write_file(const char *path, const char *text) {
    FILE *file = fopen(path, "wb");
    if (file) {
        fputs(text, file);
        fclose(file);
    }
}

static void test_versions(void) {
    CHECK(mobilellm_abi_version() == MOBILELLM_ABI_VERSION);
    CHECK(mobilellm_version_string() != NULL && strlen(mobilellm_version_string()) > 0);
    CHECK(strcmp(mobilellm_status_name(MOBILELLM_ERROR_CONTEXT_FULL), "MOBILELLM_ERROR_CONTEXT_FULL") == 0);
    CHECK(strcmp(mobilellm_status_name(MOBILELLM_OK), "MOBILELLM_OK") == 0);
    CHECK(strcmp(mobilellm_status_name(999), "unknown status") == 0);
    CHECK(strcmp(mobilellm_status_name(-1), "unknown status") == 0);
    CHECK(mobilellm_last_error() != NULL);
}

static void test_load_errors(void) {
    mobilellm_model *model = NULL;
    CHECK_STATUS(mobilellm_model_load(NULL, NULL, &model), MOBILELLM_ERROR_INVALID_ARGUMENT, "'path'");
    CHECK_STATUS(mobilellm_model_load(fixture, NULL, NULL), MOBILELLM_ERROR_INVALID_ARGUMENT, "out_model");
    CHECK_STATUS(mobilellm_model_load("/nonexistent/model", NULL, &model), MOBILELLM_ERROR_FILE_NOT_FOUND,
                 "/nonexistent/model");
    char config[1100];
    snprintf(config, sizeof config, "%s/config.json", fixture);
    CHECK_STATUS(mobilellm_model_load(config, NULL, &model), MOBILELLM_ERROR_INVALID_FILE, "config.json");
    CHECK_STATUS(mobilellm_model_load("/tmp/\xff\xfe", NULL, &model), MOBILELLM_ERROR_INVALID_UTF8, "byte offset 5");
    CHECK(model == NULL);

    /* A directory with a broken config.json: the message names the file. */
    char directory[] = "/tmp/mobilellm-test-XXXXXX";
    if (mkdtemp(directory)) {
        CHECK_STATUS(mobilellm_model_load(directory, NULL, &model), MOBILELLM_ERROR_FILE_NOT_FOUND, "config.json");
        char path[1100];
        snprintf(path, sizeof path, "%s/config.json", directory);
        write_file(path, "{\"model_type\": \"llama\", \"hidden_size\": \"wide\"}");
        CHECK_STATUS(mobilellm_model_load(directory, NULL, &model), MOBILELLM_ERROR_INVALID_FILE, "config.json");
        write_file(path, "{not json");
        CHECK_STATUS(mobilellm_model_load(directory, NULL, &model), MOBILELLM_ERROR_INVALID_FILE, "config.json");
        remove(path);
        rmdir(directory);
    }

    mobilellm_model_params params;
    mobilellm_model_params_init(&params);
    CHECK(params.struct_size == sizeof params && params.n_threads == 0 && params.quantize == NULL);
    mobilellm_model_params_init(NULL); /* a no-op */
    params.struct_size = 0;
    CHECK_STATUS(mobilellm_model_load(fixture, &params, &model), MOBILELLM_ERROR_INVALID_ARGUMENT, "struct_size");
    params.struct_size = 0xdeadbeef;
    CHECK_STATUS(mobilellm_model_load(fixture, &params, &model), MOBILELLM_ERROR_INVALID_ARGUMENT, "uninitialised");
    mobilellm_model_params_init(&params);
    params.n_threads = -3;
    CHECK_STATUS(mobilellm_model_load(fixture, &params, &model), MOBILELLM_ERROR_INVALID_ARGUMENT, "n_threads");
    mobilellm_model_params_init(&params);
    params.quantize = "q9_9";
    CHECK_STATUS(mobilellm_model_load(fixture, &params, &model), MOBILELLM_ERROR_INVALID_ARGUMENT, "quantize");
    CHECK(model == NULL);
    /* A known type quantizes at load (the engine's quantize-on-load). */
    params.quantize = "q4_0";
    REQUIRE_OK(mobilellm_model_load(fixture, &params, &model));
    mobilellm_model_info quantized;
    quantized.struct_size = sizeof quantized;
    REQUIRE_OK(mobilellm_model_get_info(model, &quantized));
    CHECK(quantized.is_quantized);
    REQUIRE_OK(mobilellm_model_free(model));
    model = NULL;
    mobilellm_model_params_init(&params);
    params.default_context_length = 1 << 30;
    CHECK_STATUS(mobilellm_model_load(fixture, &params, &model), MOBILELLM_ERROR_INVALID_ARGUMENT,
                 "default_context_length");

    /* The progress callback can abort a load; progress never goes backwards and ends at 1. */
    int calls = 0;
    mobilellm_model_params_init(&params);
    params.progress_callback = abort_at_half;
    params.progress_user_data = &calls;
    CHECK_STATUS(mobilellm_model_load(fixture, &params, &model), MOBILELLM_ERROR_CANCELLED, "cancelled");
    CHECK(calls >= 2);
    CHECK(model == NULL);
    float last = 0;
    params.progress_callback = count_progress;
    params.progress_user_data = &last;
    params.n_threads = 2;
    params.default_context_length = 64;
    CHECK_STATUS(mobilellm_model_load(fixture, &params, &model), MOBILELLM_OK, "");
    CHECK(last == 1.0f);
    mobilellm_model_info info;
    info.struct_size = sizeof info;
    REQUIRE_OK(mobilellm_model_get_info(model, &info));
    CHECK(info.n_threads == 2 && info.default_context_length == 64);
    CHECK_STATUS(mobilellm_model_free(model), MOBILELLM_OK, "");
}

static void test_handles(mobilellm_model *model) {
    mobilellm_model_info info;
    info.struct_size = sizeof info;
    CHECK_STATUS(mobilellm_model_get_info(NULL, &info), MOBILELLM_ERROR_INVALID_HANDLE, "NULL");
    CHECK_STATUS(mobilellm_model_get_info((mobilellm_model *)(uintptr_t)0x1234, &info), MOBILELLM_ERROR_INVALID_HANDLE,
                 "0x1234");
    CHECK_STATUS(mobilellm_model_get_info((mobilellm_model *)&info, &info), MOBILELLM_ERROR_INVALID_HANDLE, "not a live");
    CHECK_STATUS(mobilellm_model_get_info(model, NULL), MOBILELLM_ERROR_INVALID_ARGUMENT, "info");
    info.struct_size = 3;
    CHECK_STATUS(mobilellm_model_get_info(model, &info), MOBILELLM_ERROR_INVALID_ARGUMENT, "struct_size");

    /* A session handle is not a model handle, and a freed handle stays invalid. */
    mobilellm_session *session = NULL;
    REQUIRE_OK(mobilellm_session_create(model, NULL, &session));
    CHECK_STATUS(mobilellm_model_get_info((mobilellm_model *)session, &info), MOBILELLM_ERROR_INVALID_HANDLE,
                 "mobilellm_model");
    CHECK_STATUS(mobilellm_session_free(session), MOBILELLM_OK, "");
    int32_t position = 0;
    CHECK_STATUS(mobilellm_session_position(session, &position), MOBILELLM_ERROR_INVALID_HANDLE, "mobilellm_session");
    CHECK_STATUS(mobilellm_session_free(session), MOBILELLM_ERROR_INVALID_HANDLE, "freed");
    CHECK_STATUS(mobilellm_session_cancel(session), MOBILELLM_ERROR_INVALID_HANDLE, "session");
    CHECK_STATUS(mobilellm_session_free(NULL), MOBILELLM_OK, "");
    CHECK_STATUS(mobilellm_model_free(NULL), MOBILELLM_OK, "");
    CHECK_STATUS(mobilellm_sampler_free(NULL), MOBILELLM_OK, "");

    mobilellm_model *other = load_fixture();
    CHECK_STATUS(mobilellm_model_free(other), MOBILELLM_OK, "");
    CHECK_STATUS(mobilellm_model_free(other), MOBILELLM_ERROR_INVALID_HANDLE, "mobilellm_model");
    CHECK_STATUS(mobilellm_session_create(other, NULL, &session), MOBILELLM_ERROR_INVALID_HANDLE, "model");
}

static void test_model_queries(mobilellm_model *model) {
    mobilellm_model_info info;
    info.struct_size = sizeof info;
    REQUIRE_OK(mobilellm_model_get_info(model, &info));
    CHECK(info.vocab_size == 384 && info.n_layers == 3 && info.context_length == 32768);
    CHECK(info.default_context_length == 4096 && info.bos_token_id == 0 && info.n_eos_token_ids == 3);

    int32_t ids[8];
    size_t count = 0;
    CHECK_STATUS(mobilellm_model_eos_token_ids(model, ids, 2, &count), MOBILELLM_ERROR_BUFFER_TOO_SMALL, "needs 3");
    CHECK(count == 3);
    CHECK_STATUS(mobilellm_model_eos_token_ids(model, NULL, 0, &count), MOBILELLM_ERROR_BUFFER_TOO_SMALL, "");
    CHECK_STATUS(mobilellm_model_eos_token_ids(model, ids, 8, NULL), MOBILELLM_ERROR_INVALID_ARGUMENT, "out_count");
    CHECK_STATUS(mobilellm_model_eos_token_ids(model, ids, 8, &count), MOBILELLM_OK, "");
    CHECK(count == 3 && ids[0] == 1 && ids[1] == 2 && ids[2] == 3);
    CHECK_STATUS(mobilellm_model_eos_token_ids(model, ids, (size_t)-1, &count), MOBILELLM_ERROR_INVALID_ARGUMENT, "capacity");

    char text[64];
    size_t length = 0;
    CHECK_STATUS(mobilellm_model_get_metadata(model, "architecture", NULL, 0, &length), MOBILELLM_ERROR_BUFFER_TOO_SMALL,
                 "needs 12");
    CHECK(length == 11);
    CHECK_STATUS(mobilellm_model_get_metadata(model, "architecture", text, 11, &length), MOBILELLM_ERROR_BUFFER_TOO_SMALL, "");
    CHECK_STATUS(mobilellm_model_get_metadata(model, "architecture", text, 12, &length), MOBILELLM_OK, "");
    CHECK(strcmp(text, "llama4_text") == 0);
    CHECK_STATUS(mobilellm_model_get_metadata(model, "kv_cache_type", text, sizeof text, &length), MOBILELLM_OK, "");
    CHECK(strcmp(text, "f32") == 0);
    CHECK_STATUS(mobilellm_model_get_metadata(model, "colour", text, sizeof text, &length), MOBILELLM_ERROR_INVALID_ARGUMENT,
                 "colour");
    CHECK_STATUS(mobilellm_model_get_metadata(model, NULL, text, sizeof text, &length), MOBILELLM_ERROR_INVALID_ARGUMENT, "key");
    CHECK_STATUS(mobilellm_model_get_metadata(model, "\xc3\x28", text, sizeof text, &length), MOBILELLM_ERROR_INVALID_UTF8,
                 "offset 0");
}

static void test_session_errors(mobilellm_model *model) {
    mobilellm_session *session = NULL;
    mobilellm_session_params sp;
    mobilellm_session_params_init(&sp);
    CHECK(sp.struct_size == sizeof sp && sp.n_ctx == 0 && sp.kv_cache_type == MOBILELLM_KV_AUTO);
    sp.n_ctx = -1;
    CHECK_STATUS(mobilellm_session_create(model, &sp, &session), MOBILELLM_ERROR_INVALID_ARGUMENT, "n_ctx");
    sp.n_ctx = 1 << 20;
    CHECK_STATUS(mobilellm_session_create(model, &sp, &session), MOBILELLM_ERROR_INVALID_ARGUMENT, "32768");
    sp.n_ctx = 16;
    sp.kv_cache_type = 7;
    CHECK_STATUS(mobilellm_session_create(model, &sp, &session), MOBILELLM_ERROR_INVALID_ARGUMENT, "kv_cache_type");
    sp.kv_cache_type = MOBILELLM_KV_AUTO;
    CHECK_STATUS(mobilellm_session_create(model, &sp, NULL), MOBILELLM_ERROR_INVALID_ARGUMENT, "out_session");
    REQUIRE_OK(mobilellm_session_create(model, &sp, &session));
    int32_t n_ctx = 0;
    REQUIRE_OK(mobilellm_session_context_length(session, &n_ctx));
    CHECK(n_ctx == 16);

    float logits[384 * 20];
    int32_t tokens[20] = {0, 5, 9, 17, 3};
    int32_t position = -1;
    size_t count = 0;
    CHECK_STATUS(mobilellm_session_eval(session, NULL, 3, MOBILELLM_LOGITS_LAST, logits, 384), MOBILELLM_ERROR_INVALID_ARGUMENT,
                 "'tokens'");
    tokens[1] = 384;
    CHECK_STATUS(mobilellm_session_eval(session, tokens, 3, MOBILELLM_LOGITS_LAST, logits, 384), MOBILELLM_ERROR_INVALID_ARGUMENT,
                 "tokens[1]");
    tokens[1] = -7;
    CHECK_STATUS(mobilellm_session_eval(session, tokens, 3, MOBILELLM_LOGITS_LAST, logits, 384), MOBILELLM_ERROR_INVALID_ARGUMENT,
                 "-7");
    tokens[1] = 5;
    CHECK_STATUS(mobilellm_session_eval(session, tokens, 17, MOBILELLM_LOGITS_LAST, logits, 384), MOBILELLM_ERROR_CONTEXT_FULL,
                 "16");
    CHECK_STATUS(mobilellm_session_eval(session, tokens, (size_t)-1, MOBILELLM_LOGITS_LAST, logits, 384),
                 MOBILELLM_ERROR_INVALID_ARGUMENT, "n_tokens");
    CHECK_STATUS(mobilellm_session_eval(session, tokens, 3, 9, logits, 384), MOBILELLM_ERROR_INVALID_ARGUMENT, "mode");
    CHECK_STATUS(mobilellm_session_eval(session, tokens, 3, MOBILELLM_LOGITS_LAST, logits, 383),
                 MOBILELLM_ERROR_BUFFER_TOO_SMALL, "needs 384");
    CHECK_STATUS(mobilellm_session_eval(session, tokens, 3, MOBILELLM_LOGITS_ALL, logits, 384), MOBILELLM_ERROR_BUFFER_TOO_SMALL,
                 "needs 1152");
    CHECK_STATUS(mobilellm_session_eval(session, tokens, 3, MOBILELLM_LOGITS_LAST, NULL, 384), MOBILELLM_ERROR_INVALID_ARGUMENT,
                 "logits");
    CHECK_STATUS(mobilellm_session_eval(session, tokens, 0, MOBILELLM_LOGITS_LAST, logits, 384), MOBILELLM_ERROR_INVALID_ARGUMENT,
                 "at least 1");
    CHECK_STATUS(mobilellm_session_logits(session, logits, 384, &count), MOBILELLM_ERROR_INVALID_ARGUMENT, "no logits");
    /* After all that, nothing was fed and the session works. */
    REQUIRE_OK(mobilellm_session_position(session, &position));
    CHECK(position == 0);
    CHECK_STATUS(mobilellm_session_eval(session, tokens, 0, MOBILELLM_LOGITS_NONE, NULL, 0), MOBILELLM_OK, "");
    CHECK_STATUS(mobilellm_session_eval(session, tokens, 3, MOBILELLM_LOGITS_LAST, logits, 384), MOBILELLM_OK, "");
    float again[384];
    CHECK_STATUS(mobilellm_session_logits(session, again, 383, &count), MOBILELLM_ERROR_BUFFER_TOO_SMALL, "");
    CHECK(count == 384);
    CHECK_STATUS(mobilellm_session_logits(session, again, 384, &count), MOBILELLM_OK, "");
    CHECK(memcmp(again, logits, sizeof again) == 0);

    int32_t held[4];
    CHECK_STATUS(mobilellm_session_tokens(session, held, 2, &count), MOBILELLM_ERROR_BUFFER_TOO_SMALL, "");
    CHECK(count == 3);
    CHECK_STATUS(mobilellm_session_tokens(session, held, 4, &count), MOBILELLM_OK, "");
    CHECK(count == 3 && held[0] == 0 && held[1] == 5 && held[2] == 9);

    CHECK_STATUS(mobilellm_session_rewind(session, 4), MOBILELLM_ERROR_INVALID_ARGUMENT, "0...3");
    CHECK_STATUS(mobilellm_session_rewind(session, -1), MOBILELLM_ERROR_INVALID_ARGUMENT, "position");
    CHECK_STATUS(mobilellm_session_rewind(session, 1), MOBILELLM_OK, "");
    REQUIRE_OK(mobilellm_session_position(session, &position));
    CHECK(position == 1);
    CHECK_STATUS(mobilellm_session_logits(session, again, 384, &count), MOBILELLM_ERROR_INVALID_ARGUMENT, "no logits");
    CHECK_STATUS(mobilellm_session_position(session, NULL), MOBILELLM_ERROR_INVALID_ARGUMENT, "out_position");
    /* Fill the context exactly, then one more token does not fit. */
    CHECK_STATUS(mobilellm_session_eval(session, tokens, 15, MOBILELLM_LOGITS_NONE, NULL, 0), MOBILELLM_OK, "");
    CHECK_STATUS(mobilellm_session_eval(session, tokens, 1, MOBILELLM_LOGITS_NONE, NULL, 0), MOBILELLM_ERROR_CONTEXT_FULL,
                 "context full");
    CHECK_STATUS(mobilellm_session_reset(session), MOBILELLM_OK, "");
    REQUIRE_OK(mobilellm_session_position(session, &position));
    CHECK(position == 0);
    mobilellm_session_free(session);
}

static void test_sampler_errors(mobilellm_model *model) {
    mobilellm_sampler_params p;
    mobilellm_sampler *sampler = NULL;
    mobilellm_sampler_params_init(&p);
    CHECK(p.temperature == 0 && p.top_p == 1 && p.penalty_window == -1 && !p.use_seed);
    p.temperature = -1;
    CHECK_STATUS(mobilellm_sampler_create(&p, &sampler), MOBILELLM_ERROR_INVALID_ARGUMENT, "temperature");
    p.temperature = NAN;
    CHECK_STATUS(mobilellm_sampler_create(&p, &sampler), MOBILELLM_ERROR_INVALID_ARGUMENT, "temperature");
    mobilellm_sampler_params_init(&p);
    p.top_p = 0;
    CHECK_STATUS(mobilellm_sampler_create(&p, &sampler), MOBILELLM_ERROR_INVALID_ARGUMENT, "top_p");
    mobilellm_sampler_params_init(&p);
    p.top_k = -2;
    CHECK_STATUS(mobilellm_sampler_create(&p, &sampler), MOBILELLM_ERROR_INVALID_ARGUMENT, "top_k");
    mobilellm_sampler_params_init(&p);
    p.min_p = 2;
    CHECK_STATUS(mobilellm_sampler_create(&p, &sampler), MOBILELLM_ERROR_INVALID_ARGUMENT, "min_p");
    mobilellm_sampler_params_init(&p);
    p.repetition_penalty = 0;
    CHECK_STATUS(mobilellm_sampler_create(&p, &sampler), MOBILELLM_ERROR_INVALID_ARGUMENT, "repetition_penalty");
    mobilellm_sampler_params_init(&p);
    p.penalty_window = -5;
    CHECK_STATUS(mobilellm_sampler_create(&p, &sampler), MOBILELLM_ERROR_INVALID_ARGUMENT, "penalty_window");
    mobilellm_sampler_params_init(&p);
    CHECK_STATUS(mobilellm_sampler_create(&p, NULL), MOBILELLM_ERROR_INVALID_ARGUMENT, "out_sampler");
    REQUIRE_OK(mobilellm_sampler_create(&p, &sampler));

    mobilellm_session *session = NULL;
    REQUIRE_OK(mobilellm_session_create(model, NULL, &session));
    int32_t token = -1;
    CHECK_STATUS(mobilellm_sampler_sample(sampler, session, &token), MOBILELLM_ERROR_INVALID_ARGUMENT, "no logits");
    CHECK_STATUS(mobilellm_sampler_sample(sampler, NULL, &token), MOBILELLM_ERROR_INVALID_HANDLE, "session");
    CHECK_STATUS(mobilellm_sampler_sample((mobilellm_sampler *)session, session, &token), MOBILELLM_ERROR_INVALID_HANDLE,
                 "sampler");
    float logits[4] = {0.5f, 3.0f, -1.0f, 3.0f};
    CHECK_STATUS(mobilellm_sampler_sample_logits(sampler, logits, 0, NULL, 0, &token), MOBILELLM_ERROR_INVALID_ARGUMENT,
                 "n_logits");
    CHECK_STATUS(mobilellm_sampler_sample_logits(sampler, NULL, 4, NULL, 0, &token), MOBILELLM_ERROR_INVALID_ARGUMENT, "logits");
    CHECK_STATUS(mobilellm_sampler_sample_logits(sampler, logits, 4, NULL, 2, &token), MOBILELLM_ERROR_INVALID_ARGUMENT,
                 "history");
    CHECK_STATUS(mobilellm_sampler_sample_logits(sampler, logits, 4, NULL, 0, &token), MOBILELLM_OK, "");
    CHECK(token == 1); /* greedy, lowest id on ties */
    int32_t history[1] = {1};
    mobilellm_sampler *penalised = NULL;
    p.repetition_penalty = 2;
    REQUIRE_OK(mobilellm_sampler_create(&p, &penalised));
    CHECK_STATUS(mobilellm_sampler_sample_logits(penalised, logits, 4, history, 1, &token), MOBILELLM_OK, "");
    CHECK(token == 3);
    mobilellm_sampler_free(penalised);
    mobilellm_sampler_free(sampler);
    mobilellm_session_free(session);
}

static bool stop_after_three(int32_t token, const char *piece, size_t length, void *user_data) {
    (void)token;
    (void)piece;
    (void)length;
    int *seen = (int *)user_data;
    return ++(*seen) < 3;
}

typedef struct {
    mobilellm_session *session;
    mobilellm_status nested;
} reentry;

static bool reenter(int32_t token, const char *piece, size_t length, void *user_data) {
    (void)piece;
    (void)length;
    reentry *r = (reentry *)user_data;
    r->nested = mobilellm_session_eval(r->session, &token, 1, MOBILELLM_LOGITS_NONE, NULL, 0);
    return false;
}

static void test_generate_errors(mobilellm_model *model) {
    mobilellm_session_params sp;
    mobilellm_session_params_init(&sp);
    sp.n_ctx = 32;
    mobilellm_session *session = NULL;
    REQUIRE_OK(mobilellm_session_create(model, &sp, &session));
    mobilellm_generate_params gp;
    mobilellm_generate_params_init(&gp);
    CHECK(gp.max_tokens == 256 && gp.callback == NULL && !gp.ignore_eos);
    CHECK(gp.struct_size == sizeof gp && gp.stop_strings == NULL && gp.n_stop_strings == 0);
    {
        /* A program built before fields were appended calls the exported function on a first-release-size struct:
         * it must fill 48 bytes and not one more. (The parentheses call the function, not the header's macro.) */
        unsigned char bytes[sizeof(mobilellm_generate_params)];
        memset(bytes, 0xAB, sizeof bytes);
        (mobilellm_generate_params_init)((mobilellm_generate_params *)(void *)bytes);
        uint32_t size;
        memcpy(&size, bytes, sizeof size);
        CHECK(size == 48);
        int untouched = 1;
        for (size_t i = 48; i < sizeof bytes; i++) untouched &= bytes[i] == 0xAB;
        CHECK(untouched);
        memset(bytes, 0xAB, sizeof bytes);
        mobilellm_generate_params_init_sized((mobilellm_generate_params *)(void *)bytes, 40); /* too small: no-op */
        CHECK(bytes[0] == 0xAB);
    }
    mobilellm_generate_result result;
    result.struct_size = sizeof result;
    int32_t prompt[40] = {0, 169, 380, 264, 92};
    int32_t out[64];

    gp.max_tokens = -1;
    CHECK_STATUS(mobilellm_session_generate(session, prompt, 5, NULL, &gp, out, 64, &result), MOBILELLM_ERROR_INVALID_ARGUMENT,
                 "max_tokens");
    mobilellm_generate_params_init(&gp);
    CHECK_STATUS(mobilellm_session_generate(session, prompt, 33, NULL, &gp, out, 64, &result), MOBILELLM_ERROR_CONTEXT_FULL,
                 "context full");
    CHECK_STATUS(mobilellm_session_generate(session, prompt, 0, NULL, &gp, out, 64, &result), MOBILELLM_ERROR_INVALID_ARGUMENT,
                 "prompt");
    CHECK_STATUS(mobilellm_session_generate(session, prompt, 5, NULL, &gp, NULL, 64, &result), MOBILELLM_ERROR_INVALID_ARGUMENT,
                 "out_tokens");
    result.struct_size = 0;
    CHECK_STATUS(mobilellm_session_generate(session, prompt, 5, NULL, &gp, out, 64, &result), MOBILELLM_ERROR_INVALID_ARGUMENT,
                 "result->struct_size");
    result.struct_size = sizeof result;
    gp.n_stop_token_ids = 2;
    CHECK_STATUS(mobilellm_session_generate(session, prompt, 5, NULL, &gp, out, 64, &result), MOBILELLM_ERROR_INVALID_ARGUMENT,
                 "stop_token_ids");
    mobilellm_generate_params_init(&gp);
    prompt[2] = 100000;
    CHECK_STATUS(mobilellm_session_generate(session, prompt, 5, NULL, &gp, out, 64, &result), MOBILELLM_ERROR_INVALID_ARGUMENT,
                 "tokens[2]");
    prompt[2] = 380;
    int32_t position = -1;
    REQUIRE_OK(mobilellm_session_position(session, &position));
    CHECK(position == 0);

    /* max_tokens 0 produces nothing; a callback returning false stops; a huge max_tokens is bounded by the context. */
    gp.max_tokens = 0;
    CHECK_STATUS(mobilellm_session_generate(session, prompt, 5, NULL, &gp, out, 64, &result), MOBILELLM_OK, "");
    CHECK(result.n_tokens == 0 && result.stop_reason == MOBILELLM_STOP_MAX_TOKENS && result.n_prompt_tokens == 5);
    mobilellm_session_reset(session);
    int seen = 0;
    mobilellm_generate_params_init(&gp);
    gp.callback = stop_after_three;
    gp.user_data = &seen;
    gp.ignore_eos = true;
    CHECK_STATUS(mobilellm_session_generate(session, prompt, 5, NULL, &gp, out, 64, &result), MOBILELLM_OK, "");
    CHECK(result.stop_reason == MOBILELLM_STOP_CALLBACK && result.n_tokens == 3 && seen == 3);
    mobilellm_session_reset(session);
    mobilellm_generate_params_init(&gp);
    gp.max_tokens = 1000000000;
    gp.ignore_eos = true;
    CHECK_STATUS(mobilellm_session_generate(session, prompt, 5, NULL, &gp, out, 4, &result), MOBILELLM_OK, "");
    CHECK(result.stop_reason == MOBILELLM_STOP_CONTEXT_FULL && result.n_tokens == 32 - 5 + 1);

    /* Using a session from its own callback is refused with BUSY instead of corrupting it. */
    mobilellm_session_reset(session);
    reentry r = {session, MOBILELLM_OK};
    mobilellm_generate_params_init(&gp);
    gp.callback = reenter;
    gp.user_data = &r;
    CHECK_STATUS(mobilellm_session_generate(session, prompt, 5, NULL, &gp, out, 64, &result), MOBILELLM_OK, "");
    CHECK(r.nested == MOBILELLM_ERROR_BUSY);
    CHECK(result.stop_reason == MOBILELLM_STOP_CALLBACK);

    /* Continue from the cache with an empty prompt. */
    mobilellm_generate_params_init(&gp);
    gp.max_tokens = 2;
    CHECK_STATUS(mobilellm_session_generate(session, NULL, 0, NULL, &gp, out, 64, &result), MOBILELLM_OK, "");
    CHECK(result.n_tokens == 2 && result.n_prompt_tokens == 0);
    mobilellm_session_free(session);
}

typedef struct {
    mobilellm_session *session;
    volatile int done;
} canceller;

static void *cancel_until_done(void *argument) {
    canceller *c = (canceller *)argument;
    while (!c->done) {
        mobilellm_session_cancel(c->session);
        usleep(200);
    }
    return NULL;
}

static void test_cancel(mobilellm_model *model) {
    mobilellm_session_params sp;
    mobilellm_session_params_init(&sp);
    sp.n_ctx = 4096;
    mobilellm_session *session = NULL;
    REQUIRE_OK(mobilellm_session_create(model, &sp, &session));
    int32_t *tokens = (int32_t *)malloc(sizeof(int32_t) * 4000);
    for (int i = 0; i < 4000; i++) tokens[i] = (i * 7) % 384;
    float logits[384];

    /* A cancel with nothing running does nothing: the next call runs normally. */
    CHECK_STATUS(mobilellm_session_cancel(session), MOBILELLM_OK, "");
    CHECK_STATUS(mobilellm_session_eval(session, tokens, 4, MOBILELLM_LOGITS_LAST, logits, 384), MOBILELLM_OK, "");
    int32_t position = -1;
    REQUIRE_OK(mobilellm_session_position(session, &position));
    CHECK(position == 4);

    /* Cancel from another thread during a 4000-token prefill. */
    canceller c = {session, 0};
    pthread_t thread;
    pthread_create(&thread, NULL, cancel_until_done, &c);
    usleep(1000);
    CHECK_STATUS(mobilellm_session_eval(session, tokens, 4000, MOBILELLM_LOGITS_LAST, logits, 384), MOBILELLM_ERROR_CANCELLED,
                 "cancelled");
    c.done = 1;
    pthread_join(thread, NULL);
    REQUIRE_OK(mobilellm_session_position(session, &position));
    CHECK(position == 4);
    /* Cancels that arrived after the eval returned do nothing; the session works normally. */
    CHECK_STATUS(mobilellm_session_eval(session, tokens, 8, MOBILELLM_LOGITS_LAST, logits, 384), MOBILELLM_OK, "");
    free(tokens);
    mobilellm_session_free(session);
}

static void test_state_errors(mobilellm_model *model) {
    mobilellm_session *session = NULL, *small = NULL;
    REQUIRE_OK(mobilellm_session_create(model, NULL, &session));
    mobilellm_session_params sp;
    mobilellm_session_params_init(&sp);
    sp.n_ctx = 4;
    REQUIRE_OK(mobilellm_session_create(model, &sp, &small));
    int32_t tokens[6] = {0, 1, 2, 3, 4, 5};
    REQUIRE_OK(mobilellm_session_eval(session, tokens, 6, MOBILELLM_LOGITS_NONE, NULL, 0));
    size_t size = 0, written = 0;
    REQUIRE_OK(mobilellm_session_state_size(session, &size));
    CHECK(size > 48);
    unsigned char *state = (unsigned char *)malloc(size);
    CHECK_STATUS(mobilellm_session_save_state(session, state, size - 1, &written), MOBILELLM_ERROR_BUFFER_TOO_SMALL, "needs");
    CHECK(written == size);
    CHECK_STATUS(mobilellm_session_save_state(session, NULL, size, &written), MOBILELLM_ERROR_INVALID_ARGUMENT, "buffer");
    CHECK_STATUS(mobilellm_session_save_state(session, state, size, &written), MOBILELLM_OK, "");
    CHECK_STATUS(mobilellm_session_load_state(small, state, size), MOBILELLM_ERROR_INVALID_ARGUMENT, "n_tokens");
    CHECK_STATUS(mobilellm_session_load_state(session, state, size - 1), MOBILELLM_ERROR_INVALID_ARGUMENT, "size");
    CHECK_STATUS(mobilellm_session_load_state(session, state, 10), MOBILELLM_ERROR_INVALID_ARGUMENT, "size");
    CHECK_STATUS(mobilellm_session_load_state(session, NULL, 10), MOBILELLM_ERROR_INVALID_ARGUMENT, "buffer");
    state[0] ^= 0xff;
    CHECK_STATUS(mobilellm_session_load_state(session, state, size), MOBILELLM_ERROR_INVALID_ARGUMENT, "magic");
    state[0] ^= 0xff;
    sp.n_ctx = 64;
    sp.kv_cache_type = MOBILELLM_KV_F16;
    mobilellm_session *half = NULL;
    REQUIRE_OK(mobilellm_session_create(model, &sp, &half));
    CHECK_STATUS(mobilellm_session_load_state(half, state, size), MOBILELLM_ERROR_INVALID_ARGUMENT, "kv_cache_type");

    /* Another model with the same shape but different weights is refused. */
    char other_path[1024];
    test_fixture_path(other_path, sizeof other_path, "llama4-nope-f32");
    mobilellm_model *other = NULL;
    REQUIRE_OK(mobilellm_model_load(other_path, NULL, &other));
    mobilellm_session *foreign = NULL;
    REQUIRE_OK(mobilellm_session_create(other, NULL, &foreign));
    mobilellm_status status = mobilellm_session_load_state(foreign, state, size);
    CHECK(status == MOBILELLM_ERROR_INVALID_ARGUMENT && strstr(mobilellm_last_error(), "another model") != NULL);
    int32_t position = -1;
    REQUIRE_OK(mobilellm_session_position(foreign, &position));
    CHECK(position == 0);
    mobilellm_session_free(foreign);
    mobilellm_model_free(other);
    mobilellm_session_free(half);
    mobilellm_session_free(small);
    mobilellm_session_free(session);
    free(state);
}

typedef struct {
    int messages;
    int level_ok;
    char last[512];
} log_sink;

static void on_log(int32_t level, const char *message, void *user_data) {
    log_sink *sink = (log_sink *)user_data;
    sink->messages++;
    if (level >= MOBILELLM_LOG_ERROR && level <= MOBILELLM_LOG_DEBUG) sink->level_ok++;
    snprintf(sink->last, sizeof sink->last, "%s", message);
}

static void test_logging(void) {
    log_sink sink;
    memset(&sink, 0, sizeof sink);
    mobilellm_model *model = NULL;
    /* Silent by default: nothing is delivered until a callback is set. */
    CHECK_STATUS(mobilellm_set_log_callback(on_log, 9, &sink), MOBILELLM_ERROR_INVALID_ARGUMENT, "max_level");
    CHECK_STATUS(mobilellm_set_log_callback(on_log, MOBILELLM_LOG_DEBUG, &sink), MOBILELLM_OK, "");
    mobilellm_model_load("/nonexistent", NULL, &model);
    CHECK(sink.messages == 1 && sink.level_ok == 1 && strstr(sink.last, "/nonexistent") != NULL);
    model = load_fixture();
    CHECK(sink.messages == 2 && strstr(sink.last, "loaded") != NULL);
    CHECK_STATUS(mobilellm_set_log_callback(on_log, MOBILELLM_LOG_ERROR, &sink), MOBILELLM_OK, "");
    mobilellm_model_load("/nonexistent", NULL, &model);
    CHECK(sink.messages == 2); /* errors returned to the caller are debug messages */
    CHECK_STATUS(mobilellm_set_log_callback(NULL, MOBILELLM_LOG_DEBUG, NULL), MOBILELLM_OK, "");
    mobilellm_model_load("/nonexistent", NULL, &model);
    CHECK(sink.messages == 2);
    mobilellm_model_free(model);
}

static void test_model_freed_while_session_lives(void) {
    mobilellm_model *model = load_fixture();
    mobilellm_session *session = NULL;
    REQUIRE_OK(mobilellm_session_create(model, NULL, &session));
    REQUIRE_OK(mobilellm_model_free(model));
    int32_t prompt[5] = {0, 169, 380, 264, 92};
    int32_t out[8];
    mobilellm_generate_params gp;
    mobilellm_generate_params_init(&gp);
    gp.max_tokens = 8;
    mobilellm_generate_result result;
    result.struct_size = sizeof result;
    CHECK_STATUS(mobilellm_session_generate(session, prompt, 5, NULL, &gp, out, 8, &result), MOBILELLM_OK, "");
    CHECK(result.n_tokens == 8 && out[0] == 99 && out[1] == 291);
    CHECK_STATUS(mobilellm_session_create(model, NULL, &session), MOBILELLM_ERROR_INVALID_HANDLE, "model");
    CHECK_STATUS(mobilellm_session_free(session), MOBILELLM_OK, "");
}

static void *last_error_in_thread(void *argument) {
    (void)argument;
    mobilellm_model *model = NULL;
    mobilellm_model_load(NULL, NULL, &model);
    return (void *)(strstr(mobilellm_last_error(), "'path'") != NULL ? (intptr_t)1 : (intptr_t)0);
}

static void test_last_error_is_thread_local(void) {
    mobilellm_model *model = NULL;
    mobilellm_model_load("/nonexistent/here", NULL, &model);
    pthread_t thread;
    void *ok = NULL;
    pthread_create(&thread, NULL, last_error_in_thread, "");
    pthread_join(thread, &ok);
    CHECK(ok == (void *)(intptr_t)1);
    CHECK(strstr(mobilellm_last_error(), "/nonexistent/here") != NULL);
    CHECK(mobilellm_abi_version() == MOBILELLM_ABI_VERSION);
    CHECK(strstr(mobilellm_last_error(), "/nonexistent/here") != NULL); /* non-status calls leave it */
    mobilellm_session_free(NULL);
    CHECK(strcmp(mobilellm_last_error(), "") == 0); /* success clears it */
}

int main(void) {
    test_fixture_path(fixture, sizeof fixture, "llama4-r1like-bf16-sharded");
    test_versions();
    test_load_errors();
    mobilellm_model *model = load_fixture();
    test_handles(model);
    test_model_queries(model);
    test_session_errors(model);
    test_sampler_errors(model);
    test_generate_errors(model);
    test_cancel(model);
    test_state_errors(model);
    mobilellm_model_free(model);
    test_logging();
    test_model_freed_while_session_lives();
    test_last_error_is_thread_local();
    return test_finish("test_errors");
}
