/* Hard use of the C ABI: every exported function with NULL for each pointer argument and with freed, foreign and
 * made-up handles; zero and huge sizes; token ids out of range; context overflow; max_tokens 0 and 10^9; cancel
 * during a long prefill and a cancel with nothing running; many threads on one model (identical to serial and to
 * transformers); two threads on one session; 2,000 load/generate/free cycles with bounded RSS; freeing a model while
 * its sessions live; invalid and unterminated UTF-8; callbacks that stop at once or call back into the library.
 * Nothing may crash the host, every failure must name its function and what failed, and the results that come out
 * must still match the transformers references (Tests/Fixtures/llama4-r1like-bf16-sharded/reference.json). */
#include <pthread.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "test_support.h"

static char r1_path[1024];   /* Tests/Fixtures/llama4-r1like-bf16-sharded: random weights, no tokenizer */
static char chat_path[1024]; /* Tests/Fixtures/r1like-chat: the same weights plus a tokenizer and chat template */
static test_reference reference;
static int vocab;

/* Like CHECK_STATUS, and a failure's message must start with the name of the function called ("fn: ..."). */
#define FAILS(call, expected, fragment)                                                                    \
    do {                                                                                                   \
        CHECK_STATUS(call, expected, fragment);                                                            \
        if ((expected) != MOBILELLM_OK) check_names_function(#call, __LINE__);                             \
    } while (0)

static void check_names_function(const char *call_text, int line) {
    if (strncmp(call_text, "generate(", 9) == 0) call_text = "mobilellm_session_generate("; /* the helper below */
    size_t n = strcspn(call_text, "(");
    const char *message = mobilellm_last_error();
    test_checks++;
    if (strncmp(message, call_text, n) != 0 || message[n] != ':') {
        test_failures++;
        fprintf(stderr, "%s:%d: message \"%s\" does not start with \"%.*s:\"\n", __FILE__, line, message, (int)n, call_text);
    }
}

/* Whether `text` ends with `suffix`. */
static int ends_with(const char *text, const char *suffix) {
    size_t a = strlen(text), b = strlen(suffix);
    return a >= b && strcmp(text + a - b, suffix) == 0;
}

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static mobilellm_model *load(const char *path) {
    mobilellm_model *model = NULL;
    REQUIRE_OK(mobilellm_model_load(path, NULL, &model));
    return model;
}

static mobilellm_session *session_of(mobilellm_model *model, int32_t n_ctx) {
    mobilellm_session_params sp;
    mobilellm_session_params_init(&sp);
    sp.n_ctx = n_ctx;
    mobilellm_session *session = NULL;
    REQUIRE_OK(mobilellm_session_create(model, &sp, &session));
    return session;
}

static int32_t position_of(mobilellm_session *session) {
    int32_t position = -1;
    REQUIRE_OK(mobilellm_session_position(session, &position));
    return position;
}

/* Greedy generation with ignore_eos (the reference continuations were produced greedily by transformers). */
static mobilellm_status generate(mobilellm_session *session, const int32_t *prompt, size_t n_prompt, int32_t max_tokens,
                                 mobilellm_token_callback callback, void *user_data, int32_t *out, size_t capacity,
                                 mobilellm_generate_result *result) {
    mobilellm_generate_params gp;
    mobilellm_generate_params_init(&gp);
    gp.max_tokens = max_tokens;
    gp.ignore_eos = true;
    gp.callback = callback;
    gp.user_data = user_data;
    result->struct_size = sizeof *result;
    return mobilellm_session_generate(session, prompt, n_prompt, NULL, &gp, out, capacity, result);
}

/* Whether `n` tokens (n >= 1) agree with reference continuation `g` as far as it goes. */
static int matches_greedy(const int32_t *tokens, int n, const test_greedy *g) {
    if (n < 1) return 0;
    for (int i = 0; i < n && i < g->n_continuation; i++)
        if (tokens[i] != g->continuation[i]) return 0;
    return 1;
}

/* Tokens for a long prefill (values only need to be in the vocabulary). */
static int32_t *long_prompt(size_t n) {
    int32_t *tokens = (int32_t *)malloc(sizeof(int32_t) * n);
    for (size_t i = 0; i < n; i++) tokens[i] = (int32_t)((i * 7 + 3) % (size_t)vocab);
    return tokens;
}

/* Feeds reference sequence `s` (from position 0 of a fresh session) and compares every row with transformers. */
static void check_sequence_logits(mobilellm_session *session, const test_sequence *s, int from) {
    size_t n = (size_t)(s->n_tokens - from);
    float *logits = (float *)malloc(sizeof(float) * n * (size_t)vocab);
    CHECK_STATUS(mobilellm_session_eval(session, s->tokens + from, n, MOBILELLM_LOGITS_ALL, logits, n * (size_t)vocab),
                 MOBILELLM_OK, "");
    CHECK(test_max_abs_diff(logits, s->logits + (size_t)from * (size_t)vocab, n * (size_t)vocab) <= 1e-3f);
    free(logits);
}

/* ---- NULL for every pointer argument ---- */

static void test_null_arguments(mobilellm_model *chat) {
    int32_t ids[64];
    size_t count = 777, length = 777;
    char text[256];
    bool special = false;
    mobilellm_model_info info;
    info.struct_size = sizeof info;

    /* Initialisers and the never-failing getters accept anything. */
    mobilellm_model_params_init(NULL);
    mobilellm_session_params_init(NULL);
    mobilellm_sampler_params_init(NULL);
    mobilellm_generate_params_init(NULL);
    mobilellm_chat_params_init(NULL);
    CHECK(mobilellm_version_string() != NULL && mobilellm_last_error() != NULL);
    CHECK(strcmp(mobilellm_status_name(INT32_MIN), "unknown status") == 0);
    FAILS(mobilellm_set_log_callback(NULL, MOBILELLM_LOG_DEBUG, NULL), MOBILELLM_OK, "");

    mobilellm_model *model = NULL;
    FAILS(mobilellm_model_load(NULL, NULL, &model), MOBILELLM_ERROR_INVALID_ARGUMENT, "'path'");
    FAILS(mobilellm_model_load(chat_path, NULL, NULL), MOBILELLM_ERROR_INVALID_ARGUMENT, "'out_model'");
    CHECK(model == NULL);
    FAILS(mobilellm_model_free(NULL), MOBILELLM_OK, "");
    FAILS(mobilellm_model_get_info(NULL, &info), MOBILELLM_ERROR_INVALID_HANDLE, "'model'");
    FAILS(mobilellm_model_get_info(chat, NULL), MOBILELLM_ERROR_INVALID_ARGUMENT, "'info'");
    FAILS(mobilellm_model_eos_token_ids(NULL, ids, 64, &count), MOBILELLM_ERROR_INVALID_HANDLE, "'model'");
    FAILS(mobilellm_model_eos_token_ids(chat, NULL, 64, &count), MOBILELLM_ERROR_INVALID_ARGUMENT, "'ids'");
    FAILS(mobilellm_model_eos_token_ids(chat, ids, 64, NULL), MOBILELLM_ERROR_INVALID_ARGUMENT, "'out_count'");
    FAILS(mobilellm_model_get_metadata(NULL, "path", text, sizeof text, &length), MOBILELLM_ERROR_INVALID_HANDLE, "'model'");
    FAILS(mobilellm_model_get_metadata(chat, NULL, text, sizeof text, &length), MOBILELLM_ERROR_INVALID_ARGUMENT, "'key'");
    FAILS(mobilellm_model_get_metadata(chat, "path", NULL, sizeof text, &length), MOBILELLM_ERROR_INVALID_ARGUMENT, "'buffer'");
    FAILS(mobilellm_model_get_metadata(chat, "path", text, sizeof text, NULL), MOBILELLM_ERROR_INVALID_ARGUMENT, "'out_length'");
    /* Output arguments are written only on success (or with the size for BUFFER_TOO_SMALL). */
    CHECK(count == 777 && length == 777);

    FAILS(mobilellm_tokenize(NULL, "hi", 2, false, false, ids, 64, &count), MOBILELLM_ERROR_INVALID_HANDLE, "'model'");
    FAILS(mobilellm_tokenize(chat, NULL, 5, false, false, ids, 64, &count), MOBILELLM_ERROR_INVALID_ARGUMENT, "'text'");
    FAILS(mobilellm_tokenize(chat, "hi", 2, false, false, NULL, 64, &count), MOBILELLM_ERROR_INVALID_ARGUMENT, "'tokens'");
    FAILS(mobilellm_tokenize(chat, "hi", 2, false, false, ids, 64, NULL), MOBILELLM_ERROR_INVALID_ARGUMENT, "'out_count'");
    CHECK(count == 777);
    FAILS(mobilellm_tokenize(chat, NULL, 0, false, false, NULL, 0, &count), MOBILELLM_OK, "");
    CHECK(count == 0);

    int32_t two[2] = {5, 6};
    FAILS(mobilellm_detokenize(NULL, two, 2, false, text, sizeof text, &length), MOBILELLM_ERROR_INVALID_HANDLE, "'model'");
    FAILS(mobilellm_detokenize(chat, NULL, 2, false, text, sizeof text, &length), MOBILELLM_ERROR_INVALID_ARGUMENT, "'tokens'");
    FAILS(mobilellm_detokenize(chat, two, 2, false, NULL, sizeof text, &length), MOBILELLM_ERROR_INVALID_ARGUMENT, "'buffer'");
    FAILS(mobilellm_detokenize(chat, two, 2, false, text, sizeof text, NULL), MOBILELLM_ERROR_INVALID_ARGUMENT, "'out_length'");
    CHECK(length == 777);
    FAILS(mobilellm_detokenize(chat, NULL, 0, false, text, sizeof text, &length), MOBILELLM_OK, "");
    CHECK(length == 0 && text[0] == 0);

    FAILS(mobilellm_token_to_piece(NULL, 5, text, sizeof text, &length), MOBILELLM_ERROR_INVALID_HANDLE, "'model'");
    FAILS(mobilellm_token_to_piece(chat, 5, NULL, sizeof text, &length), MOBILELLM_ERROR_INVALID_ARGUMENT, "'buffer'");
    FAILS(mobilellm_token_to_piece(chat, 5, text, sizeof text, NULL), MOBILELLM_ERROR_INVALID_ARGUMENT, "'out_length'");
    FAILS(mobilellm_token_is_special(NULL, 5, &special), MOBILELLM_ERROR_INVALID_HANDLE, "'model'");
    FAILS(mobilellm_token_is_special(chat, 5, NULL), MOBILELLM_ERROR_INVALID_ARGUMENT, "'out_special'");
    FAILS(mobilellm_model_special_token_ids(NULL, ids, 64, &count), MOBILELLM_ERROR_INVALID_HANDLE, "'model'");
    FAILS(mobilellm_model_special_token_ids(chat, NULL, 64, &count), MOBILELLM_ERROR_INVALID_ARGUMENT, "'ids'");
    FAILS(mobilellm_model_special_token_ids(chat, ids, 64, NULL), MOBILELLM_ERROR_INVALID_ARGUMENT, "'out_count'");
    CHECK(count == 0 && length == 0);

    mobilellm_detokenizer *detokenizer = NULL;
    const char *piece = "untouched";
    FAILS(mobilellm_detokenizer_create(NULL, false, &detokenizer), MOBILELLM_ERROR_INVALID_HANDLE, "'model'");
    FAILS(mobilellm_detokenizer_create(chat, false, NULL), MOBILELLM_ERROR_INVALID_ARGUMENT, "'out_detokenizer'");
    FAILS(mobilellm_detokenizer_free(NULL), MOBILELLM_OK, "");
    FAILS(mobilellm_detokenizer_push(NULL, 5, &piece, &length), MOBILELLM_ERROR_INVALID_HANDLE, "'detokenizer'");
    FAILS(mobilellm_detokenizer_flush(NULL, &piece, &length), MOBILELLM_ERROR_INVALID_HANDLE, "'detokenizer'");
    REQUIRE_OK(mobilellm_detokenizer_create(chat, false, &detokenizer));
    FAILS(mobilellm_detokenizer_push(detokenizer, 5, NULL, &length), MOBILELLM_ERROR_INVALID_ARGUMENT, "'out_piece'");
    FAILS(mobilellm_detokenizer_push(detokenizer, 5, &piece, NULL), MOBILELLM_ERROR_INVALID_ARGUMENT, "'out_length'");
    FAILS(mobilellm_detokenizer_flush(detokenizer, NULL, &length), MOBILELLM_ERROR_INVALID_ARGUMENT, "'out_piece'");
    FAILS(mobilellm_detokenizer_flush(detokenizer, &piece, NULL), MOBILELLM_ERROR_INVALID_ARGUMENT, "'out_length'");
    CHECK(strcmp(piece, "untouched") == 0);
    mobilellm_detokenizer_free(detokenizer);

    mobilellm_chat_message message = {"user", "Hi"};
    mobilellm_chat_message no_role = {NULL, "Hi"}, no_content = {"user", NULL};
    FAILS(mobilellm_apply_chat_template(NULL, &message, 1, NULL, text, sizeof text, &length), MOBILELLM_ERROR_INVALID_HANDLE,
          "'model'");
    FAILS(mobilellm_apply_chat_template(chat, NULL, 1, NULL, text, sizeof text, &length), MOBILELLM_ERROR_INVALID_ARGUMENT,
          "'messages'");
    FAILS(mobilellm_apply_chat_template(chat, &no_role, 1, NULL, text, sizeof text, &length), MOBILELLM_ERROR_INVALID_ARGUMENT,
          "'messages[0].role'");
    FAILS(mobilellm_apply_chat_template(chat, &no_content, 1, NULL, text, sizeof text, &length),
          MOBILELLM_ERROR_INVALID_ARGUMENT, "'messages[0].content'");
    FAILS(mobilellm_apply_chat_template(chat, &message, 1, NULL, NULL, sizeof text, &length), MOBILELLM_ERROR_INVALID_ARGUMENT,
          "'buffer'");
    FAILS(mobilellm_apply_chat_template(chat, &message, 1, NULL, text, sizeof text, NULL), MOBILELLM_ERROR_INVALID_ARGUMENT,
          "'out_length'");
    FAILS(mobilellm_apply_chat_template(chat, &message, 1, NULL, text, sizeof text, &length), MOBILELLM_OK, "");

    mobilellm_session *session = NULL;
    FAILS(mobilellm_session_create(NULL, NULL, &session), MOBILELLM_ERROR_INVALID_HANDLE, "'model'");
    FAILS(mobilellm_session_create(chat, NULL, NULL), MOBILELLM_ERROR_INVALID_ARGUMENT, "'out_session'");
    CHECK(session == NULL);
    FAILS(mobilellm_session_free(NULL), MOBILELLM_OK, "");
    int32_t position = -5;
    float logits[512];
    size_t size = 777;
    unsigned char state[64];
    FAILS(mobilellm_session_reset(NULL), MOBILELLM_ERROR_INVALID_HANDLE, "'session'");
    FAILS(mobilellm_session_rewind(NULL, 0), MOBILELLM_ERROR_INVALID_HANDLE, "'session'");
    FAILS(mobilellm_session_position(NULL, &position), MOBILELLM_ERROR_INVALID_HANDLE, "'session'");
    FAILS(mobilellm_session_context_length(NULL, &position), MOBILELLM_ERROR_INVALID_HANDLE, "'session'");
    FAILS(mobilellm_session_tokens(NULL, ids, 64, &count), MOBILELLM_ERROR_INVALID_HANDLE, "'session'");
    FAILS(mobilellm_session_eval(NULL, two, 2, MOBILELLM_LOGITS_NONE, NULL, 0), MOBILELLM_ERROR_INVALID_HANDLE, "'session'");
    FAILS(mobilellm_session_logits(NULL, logits, 512, &count), MOBILELLM_ERROR_INVALID_HANDLE, "'session'");
    FAILS(mobilellm_session_cancel(NULL), MOBILELLM_ERROR_INVALID_HANDLE, "'session'");
    FAILS(mobilellm_session_state_size(NULL, &size), MOBILELLM_ERROR_INVALID_HANDLE, "'session'");
    FAILS(mobilellm_session_save_state(NULL, state, sizeof state, &size), MOBILELLM_ERROR_INVALID_HANDLE, "'session'");
    FAILS(mobilellm_session_load_state(NULL, state, sizeof state), MOBILELLM_ERROR_INVALID_HANDLE, "'session'");
    mobilellm_generate_result result;
    FAILS(generate(NULL, two, 2, 4, NULL, NULL, ids, 64, &result), MOBILELLM_ERROR_INVALID_HANDLE, "'session'");
    CHECK(position == -5 && size == 777 && count == 0);

    session = session_of(chat, 32);
    FAILS(mobilellm_session_position(session, NULL), MOBILELLM_ERROR_INVALID_ARGUMENT, "'out_position'");
    FAILS(mobilellm_session_context_length(session, NULL), MOBILELLM_ERROR_INVALID_ARGUMENT, "'out_n_ctx'");
    FAILS(mobilellm_session_eval(session, NULL, 2, MOBILELLM_LOGITS_NONE, NULL, 0), MOBILELLM_ERROR_INVALID_ARGUMENT, "'tokens'");
    FAILS(mobilellm_session_eval(session, two, 2, MOBILELLM_LOGITS_LAST, NULL, 512), MOBILELLM_ERROR_INVALID_ARGUMENT, "'logits'");
    FAILS(mobilellm_session_eval(session, NULL, 0, MOBILELLM_LOGITS_NONE, NULL, 0), MOBILELLM_OK, "");
    FAILS(mobilellm_session_eval(session, two, 2, MOBILELLM_LOGITS_LAST, logits, 512), MOBILELLM_OK, "");
    count = 777;
    FAILS(mobilellm_session_tokens(session, NULL, 64, &count), MOBILELLM_ERROR_INVALID_ARGUMENT, "'tokens'");
    FAILS(mobilellm_session_tokens(session, ids, 64, NULL), MOBILELLM_ERROR_INVALID_ARGUMENT, "'out_count'");
    FAILS(mobilellm_session_logits(session, NULL, 512, &count), MOBILELLM_ERROR_INVALID_ARGUMENT, "'logits'");
    FAILS(mobilellm_session_logits(session, logits, 512, NULL), MOBILELLM_ERROR_INVALID_ARGUMENT, "'out_count'");
    FAILS(mobilellm_session_state_size(session, NULL), MOBILELLM_ERROR_INVALID_ARGUMENT, "'out_size'");
    FAILS(mobilellm_session_save_state(session, NULL, 1 << 20, &size), MOBILELLM_ERROR_INVALID_ARGUMENT, "'buffer'");
    FAILS(mobilellm_session_save_state(session, state, sizeof state, NULL), MOBILELLM_ERROR_INVALID_ARGUMENT, "'out_size'");
    FAILS(mobilellm_session_load_state(session, NULL, 64), MOBILELLM_ERROR_INVALID_ARGUMENT, "'buffer'");
    CHECK(count == 777 && size == 777);

    mobilellm_sampler *sampler = NULL;
    int32_t token = -5;
    FAILS(mobilellm_sampler_create(NULL, NULL), MOBILELLM_ERROR_INVALID_ARGUMENT, "'out_sampler'");
    FAILS(mobilellm_sampler_create(NULL, &sampler), MOBILELLM_OK, ""); /* NULL params: greedy defaults */
    FAILS(mobilellm_sampler_free(NULL), MOBILELLM_OK, "");
    FAILS(mobilellm_sampler_sample(NULL, session, &token), MOBILELLM_ERROR_INVALID_HANDLE, "'sampler'");
    FAILS(mobilellm_sampler_sample(sampler, NULL, &token), MOBILELLM_ERROR_INVALID_HANDLE, "'session'");
    FAILS(mobilellm_sampler_sample(sampler, session, NULL), MOBILELLM_ERROR_INVALID_ARGUMENT, "'out_token'");
    FAILS(mobilellm_sampler_sample_logits(NULL, logits, 4, NULL, 0, &token), MOBILELLM_ERROR_INVALID_HANDLE, "'sampler'");
    FAILS(mobilellm_sampler_sample_logits(sampler, NULL, 4, NULL, 0, &token), MOBILELLM_ERROR_INVALID_ARGUMENT, "'logits'");
    FAILS(mobilellm_sampler_sample_logits(sampler, logits, 4, NULL, 2, &token), MOBILELLM_ERROR_INVALID_ARGUMENT, "'history'");
    FAILS(mobilellm_sampler_sample_logits(sampler, logits, 4, NULL, 0, NULL), MOBILELLM_ERROR_INVALID_ARGUMENT, "'out_token'");
    CHECK(token == -5);
    FAILS(mobilellm_sampler_sample(sampler, session, &token), MOBILELLM_OK, "");
    mobilellm_sampler_free(sampler);

    /* generate: NULL prompt with a count, NULL output with a capacity; NULL params/sampler params/result are fine. */
    FAILS(generate(session, NULL, 3, 4, NULL, NULL, ids, 64, &result), MOBILELLM_ERROR_INVALID_ARGUMENT, "'prompt'");
    FAILS(generate(session, two, 2, 4, NULL, NULL, NULL, 64, &result), MOBILELLM_ERROR_INVALID_ARGUMENT, "'out_tokens'");
    REQUIRE_OK(mobilellm_session_reset(session));
    FAILS(mobilellm_session_generate(session, two, 2, NULL, NULL, NULL, 0, NULL), MOBILELLM_OK, "");
    mobilellm_session_free(session);
}

/* ---- freed, foreign and made-up handles ---- */

static void check_bad_model(mobilellm_model *bad, const char *fragment) {
    mobilellm_model_info info;
    info.struct_size = sizeof info;
    int32_t ids[8] = {5, 6};
    size_t count = 0;
    char text[64];
    bool special = false;
    mobilellm_detokenizer *detokenizer = NULL;
    mobilellm_session *session = NULL;
    mobilellm_chat_message message = {"user", "Hi"};
    FAILS(mobilellm_model_get_info(bad, &info), MOBILELLM_ERROR_INVALID_HANDLE, fragment);
    FAILS(mobilellm_model_eos_token_ids(bad, ids, 8, &count), MOBILELLM_ERROR_INVALID_HANDLE, fragment);
    FAILS(mobilellm_model_get_metadata(bad, "path", text, sizeof text, &count), MOBILELLM_ERROR_INVALID_HANDLE, fragment);
    FAILS(mobilellm_tokenize(bad, "hi", 2, true, false, ids, 8, &count), MOBILELLM_ERROR_INVALID_HANDLE, fragment);
    FAILS(mobilellm_detokenize(bad, ids, 2, false, text, sizeof text, &count), MOBILELLM_ERROR_INVALID_HANDLE, fragment);
    FAILS(mobilellm_token_to_piece(bad, 5, text, sizeof text, &count), MOBILELLM_ERROR_INVALID_HANDLE, fragment);
    FAILS(mobilellm_token_is_special(bad, 5, &special), MOBILELLM_ERROR_INVALID_HANDLE, fragment);
    FAILS(mobilellm_model_special_token_ids(bad, ids, 8, &count), MOBILELLM_ERROR_INVALID_HANDLE, fragment);
    FAILS(mobilellm_detokenizer_create(bad, false, &detokenizer), MOBILELLM_ERROR_INVALID_HANDLE, fragment);
    FAILS(mobilellm_apply_chat_template(bad, &message, 1, NULL, text, sizeof text, &count), MOBILELLM_ERROR_INVALID_HANDLE,
          fragment);
    FAILS(mobilellm_session_create(bad, NULL, &session), MOBILELLM_ERROR_INVALID_HANDLE, fragment);
    FAILS(mobilellm_model_free(bad), MOBILELLM_ERROR_INVALID_HANDLE, fragment);
    CHECK(detokenizer == NULL && session == NULL);
}

static void check_bad_session(mobilellm_session *bad, const char *fragment) {
    int32_t ids[8] = {5, 6}, position = 0;
    size_t count = 0;
    float logits[8];
    unsigned char state[64] = {0};
    mobilellm_sampler *sampler = NULL;
    mobilellm_generate_result result;
    REQUIRE_OK(mobilellm_sampler_create(NULL, &sampler));
    FAILS(mobilellm_session_reset(bad), MOBILELLM_ERROR_INVALID_HANDLE, fragment);
    FAILS(mobilellm_session_rewind(bad, 0), MOBILELLM_ERROR_INVALID_HANDLE, fragment);
    FAILS(mobilellm_session_position(bad, &position), MOBILELLM_ERROR_INVALID_HANDLE, fragment);
    FAILS(mobilellm_session_context_length(bad, &position), MOBILELLM_ERROR_INVALID_HANDLE, fragment);
    FAILS(mobilellm_session_tokens(bad, ids, 8, &count), MOBILELLM_ERROR_INVALID_HANDLE, fragment);
    FAILS(mobilellm_session_eval(bad, ids, 2, MOBILELLM_LOGITS_NONE, NULL, 0), MOBILELLM_ERROR_INVALID_HANDLE, fragment);
    FAILS(mobilellm_session_logits(bad, logits, 8, &count), MOBILELLM_ERROR_INVALID_HANDLE, fragment);
    FAILS(mobilellm_session_cancel(bad), MOBILELLM_ERROR_INVALID_HANDLE, fragment);
    FAILS(mobilellm_session_state_size(bad, &count), MOBILELLM_ERROR_INVALID_HANDLE, fragment);
    FAILS(mobilellm_session_save_state(bad, state, sizeof state, &count), MOBILELLM_ERROR_INVALID_HANDLE, fragment);
    FAILS(mobilellm_session_load_state(bad, state, sizeof state), MOBILELLM_ERROR_INVALID_HANDLE, fragment);
    FAILS(generate(bad, ids, 2, 4, NULL, NULL, ids, 8, &result), MOBILELLM_ERROR_INVALID_HANDLE, fragment);
    FAILS(mobilellm_sampler_sample(sampler, bad, &ids[0]), MOBILELLM_ERROR_INVALID_HANDLE, fragment);
    FAILS(mobilellm_session_free(bad), MOBILELLM_ERROR_INVALID_HANDLE, fragment);
    mobilellm_sampler_free(sampler);
}

static void check_bad_sampler(mobilellm_sampler *bad, mobilellm_session *session, const char *fragment) {
    int32_t token = 0;
    float logits[4] = {1, 2, 3, 4};
    FAILS(mobilellm_sampler_sample(bad, session, &token), MOBILELLM_ERROR_INVALID_HANDLE, fragment);
    FAILS(mobilellm_sampler_sample_logits(bad, logits, 4, NULL, 0, &token), MOBILELLM_ERROR_INVALID_HANDLE, fragment);
    FAILS(mobilellm_sampler_free(bad), MOBILELLM_ERROR_INVALID_HANDLE, fragment);
}

static void check_bad_detokenizer(mobilellm_detokenizer *bad, const char *fragment) {
    const char *piece = NULL;
    size_t length = 0;
    FAILS(mobilellm_detokenizer_push(bad, 5, &piece, &length), MOBILELLM_ERROR_INVALID_HANDLE, fragment);
    FAILS(mobilellm_detokenizer_flush(bad, &piece, &length), MOBILELLM_ERROR_INVALID_HANDLE, fragment);
    FAILS(mobilellm_detokenizer_free(bad), MOBILELLM_ERROR_INVALID_HANDLE, fragment);
}

static void test_bad_handles(void) {
    /* Live objects of every kind, whose handles are then passed where another kind is expected. */
    mobilellm_model *model = load(chat_path);
    mobilellm_session *session = session_of(model, 16);
    mobilellm_sampler *sampler = NULL;
    mobilellm_detokenizer *detokenizer = NULL;
    REQUIRE_OK(mobilellm_sampler_create(NULL, &sampler));
    REQUIRE_OK(mobilellm_detokenizer_create(model, false, &detokenizer));

    /* Made-up values: small integers, all ones, a stack address, and well-formed-looking ids never issued. */
    int on_stack = 0;
    void *made_up[] = {(void *)(uintptr_t)1, (void *)(uintptr_t)0x10, (void *)UINTPTR_MAX, &on_stack,
                       (void *)(((uintptr_t)0x7fffffffff << 4) | 1), (void *)(((uintptr_t)0x7fffffffff << 4) | 2),
                       (void *)(((uintptr_t)0x7fffffffff << 4) | 3), (void *)(((uintptr_t)0x7fffffffff << 4) | 4)};
    for (size_t i = 0; i < sizeof made_up / sizeof made_up[0]; i++) {
        check_bad_model((mobilellm_model *)made_up[i], "not a live mobilellm_model");
        check_bad_session((mobilellm_session *)made_up[i], "not a live mobilellm_session");
        check_bad_sampler((mobilellm_sampler *)made_up[i], session, "not a live mobilellm_sampler");
        check_bad_detokenizer((mobilellm_detokenizer *)made_up[i], "not a live mobilellm_detokenizer");
    }
    /* The message shows the value found. */
    mobilellm_model_info info;
    info.struct_size = sizeof info;
    CHECK_STATUS(mobilellm_model_get_info((mobilellm_model *)(uintptr_t)0xabc123, &info), MOBILELLM_ERROR_INVALID_HANDLE,
                 "0xabc123");

    /* Foreign kinds: each live handle where another kind is expected is refused and the object survives. */
    check_bad_model((mobilellm_model *)session, "not a live mobilellm_model");
    check_bad_model((mobilellm_model *)sampler, "not a live mobilellm_model");
    check_bad_model((mobilellm_model *)detokenizer, "not a live mobilellm_model");
    check_bad_session((mobilellm_session *)model, "not a live mobilellm_session");
    check_bad_session((mobilellm_session *)sampler, "not a live mobilellm_session");
    check_bad_session((mobilellm_session *)detokenizer, "not a live mobilellm_session");
    check_bad_sampler((mobilellm_sampler *)model, session, "not a live mobilellm_sampler");
    check_bad_sampler((mobilellm_sampler *)session, session, "not a live mobilellm_sampler");
    check_bad_detokenizer((mobilellm_detokenizer *)model, "not a live mobilellm_detokenizer");
    check_bad_detokenizer((mobilellm_detokenizer *)session, "not a live mobilellm_detokenizer");
    mobilellm_generate_result result;
    int32_t out[4];
    const test_greedy *g = &reference.greedy[0];
    CHECK_STATUS(generate(session, g->prompt, (size_t)g->n_prompt, 4, NULL, NULL, out, 4, &result), MOBILELLM_OK, "");
    CHECK(result.n_tokens == 4 && matches_greedy(out, 4, g));
    CHECK_STATUS(mobilellm_model_get_info(model, &info), MOBILELLM_OK, "");

    /* Freed handles stay invalid for every function, and a second free is an error, not a double free. */
    REQUIRE_OK(mobilellm_detokenizer_free(detokenizer));
    REQUIRE_OK(mobilellm_sampler_free(sampler));
    check_bad_sampler(sampler, session, "not a live mobilellm_sampler");
    check_bad_detokenizer(detokenizer, "not a live mobilellm_detokenizer");
    REQUIRE_OK(mobilellm_session_free(session));
    check_bad_session(session, "not a live mobilellm_session");
    REQUIRE_OK(mobilellm_model_free(model));
    check_bad_model(model, "not a live mobilellm_model");
}

/* ---- zero and huge sizes ---- */

static void test_sizes(mobilellm_model *chat) {
    const size_t huge[] = {SIZE_MAX, (size_t)INT32_MAX, (size_t)1 << 40};
    mobilellm_session *session = session_of(chat, 32);
    int32_t ids[64] = {0, 5, 9, 17, 3}, position = 0;
    float *logits = (float *)calloc((size_t)vocab * 4, sizeof(float));
    size_t count = 0, length = 0;
    char text[256];
    unsigned char state[64] = {0};
    mobilellm_generate_result result;
    mobilellm_chat_message message = {"user", "Hi"};
    float scores[4] = {1, 2, 3, 4};
    mobilellm_sampler *sampler = NULL;
    REQUIRE_OK(mobilellm_sampler_create(NULL, &sampler));

    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        size_t n = huge[i];
        /* Counts of input arrays are checked before anything is read: too many tokens for the context, or an
         * implausible size. */
        mobilellm_status s = mobilellm_session_eval(session, ids, n, MOBILELLM_LOGITS_NONE, NULL, 0);
        CHECK(s == MOBILELLM_ERROR_INVALID_ARGUMENT || s == MOBILELLM_ERROR_CONTEXT_FULL);
        check_names_function("mobilellm_session_eval(", __LINE__);
        s = generate(session, ids, n, 4, NULL, NULL, ids, 64, &result);
        CHECK(s == MOBILELLM_ERROR_INVALID_ARGUMENT || s == MOBILELLM_ERROR_CONTEXT_FULL);
        FAILS(mobilellm_tokenize(chat, "hi", n, false, false, ids, 64, &count), MOBILELLM_ERROR_INVALID_ARGUMENT, "text_length");
        FAILS(mobilellm_detokenize(chat, ids, n, false, text, sizeof text, &length), MOBILELLM_ERROR_INVALID_ARGUMENT, "n_tokens");
        FAILS(mobilellm_sampler_sample_logits(sampler, scores, n, NULL, 0, &position), MOBILELLM_ERROR_INVALID_ARGUMENT,
              "n_logits");
        FAILS(mobilellm_sampler_sample_logits(sampler, scores, 4, ids, n, &position), MOBILELLM_ERROR_INVALID_ARGUMENT,
              "n_history");
        FAILS(mobilellm_apply_chat_template(chat, &message, n, NULL, text, sizeof text, &length),
              MOBILELLM_ERROR_INVALID_ARGUMENT, "n_messages");
        /* A state size is only checked against the header it announces (it may be gigabytes). */
        FAILS(mobilellm_session_load_state(session, state, n), MOBILELLM_ERROR_INVALID_ARGUMENT,
              n == SIZE_MAX ? "'size'" : "magic");
        mobilellm_generate_params gp;
        mobilellm_generate_params_init(&gp);
        gp.stop_token_ids = ids;
        gp.n_stop_token_ids = n;
        result.struct_size = sizeof result;
        FAILS(mobilellm_session_generate(session, ids, 2, NULL, &gp, ids, 64, &result), MOBILELLM_ERROR_INVALID_ARGUMENT,
              "n_stop_token_ids");
        CHECK(position_of(session) == 0);
    }
    /* Capacities of SIZE_MAX are refused as implausible (a negative value cast to size_t). */
    FAILS(mobilellm_session_eval(session, ids, 2, MOBILELLM_LOGITS_LAST, logits, SIZE_MAX), MOBILELLM_ERROR_INVALID_ARGUMENT,
          "logits_capacity");
    FAILS(generate(session, ids, 2, 4, NULL, NULL, ids, SIZE_MAX, &result), MOBILELLM_ERROR_INVALID_ARGUMENT, "out_capacity");
    FAILS(mobilellm_tokenize(chat, "hi", 2, false, false, ids, SIZE_MAX, &count), MOBILELLM_ERROR_INVALID_ARGUMENT, "capacity");
    FAILS(mobilellm_detokenize(chat, ids, 2, false, text, SIZE_MAX, &length), MOBILELLM_ERROR_INVALID_ARGUMENT, "capacity");
    FAILS(mobilellm_token_to_piece(chat, 5, text, SIZE_MAX, &length), MOBILELLM_ERROR_INVALID_ARGUMENT, "capacity");
    FAILS(mobilellm_model_get_metadata(chat, "path", text, SIZE_MAX, &length), MOBILELLM_ERROR_INVALID_ARGUMENT, "capacity");
    FAILS(mobilellm_session_tokens(session, ids, SIZE_MAX, &count), MOBILELLM_ERROR_INVALID_ARGUMENT, "capacity");
    FAILS(mobilellm_session_save_state(session, state, SIZE_MAX, &count), MOBILELLM_ERROR_INVALID_ARGUMENT, "capacity");
    CHECK(position_of(session) == 0);

    /* Zero: empty inputs succeed and do nothing; zero capacities report the size needed. */
    FAILS(mobilellm_session_eval(session, ids, 0, MOBILELLM_LOGITS_NONE, NULL, 0), MOBILELLM_OK, "");
    FAILS(mobilellm_tokenize(chat, "", 0, false, false, NULL, 0, &count), MOBILELLM_OK, "");
    CHECK(count == 0);
    FAILS(mobilellm_tokenize(chat, "Hello", 5, false, false, NULL, 0, &count), MOBILELLM_ERROR_BUFFER_TOO_SMALL, "tokens");
    CHECK(count > 0);
    FAILS(mobilellm_detokenize(chat, ids, 0, false, NULL, 0, &length), MOBILELLM_ERROR_BUFFER_TOO_SMALL, "needs 1");
    CHECK(length == 0);
    FAILS(mobilellm_token_to_piece(chat, 5, NULL, 0, &length), MOBILELLM_ERROR_BUFFER_TOO_SMALL, "buffer");
    CHECK(length >= 1);
    FAILS(mobilellm_session_tokens(session, NULL, 0, &count), MOBILELLM_OK, "");
    CHECK(count == 0);
    FAILS(mobilellm_session_state_size(session, &count), MOBILELLM_OK, "");
    FAILS(mobilellm_session_save_state(session, NULL, 0, &length), MOBILELLM_ERROR_BUFFER_TOO_SMALL, "buffer");
    CHECK(length == count);
    FAILS(mobilellm_session_load_state(session, state, 0), MOBILELLM_ERROR_INVALID_ARGUMENT, "size");
    FAILS(mobilellm_sampler_sample_logits(sampler, scores, 0, NULL, 0, &position), MOBILELLM_ERROR_INVALID_ARGUMENT, "n_logits");
    FAILS(mobilellm_apply_chat_template(chat, &message, 0, NULL, NULL, 0, &length), MOBILELLM_ERROR_BUFFER_TOO_SMALL, "buffer");
    FAILS(mobilellm_model_eos_token_ids(chat, NULL, 0, &count), MOBILELLM_ERROR_BUFFER_TOO_SMALL, "ids");
    FAILS(generate(session, ids, 2, 4, NULL, NULL, NULL, 0, &result), MOBILELLM_OK, "");
    CHECK(result.n_tokens == 4); /* counted, though none was stored */

    /* Huge integer parameters: refused with the field named, or bounded where the header says so. */
    REQUIRE_OK(mobilellm_session_reset(session));
    FAILS(mobilellm_session_rewind(session, INT32_MAX), MOBILELLM_ERROR_INVALID_ARGUMENT, "position");
    FAILS(mobilellm_session_rewind(session, INT32_MIN), MOBILELLM_ERROR_INVALID_ARGUMENT, "position");
    mobilellm_session_params sp;
    mobilellm_session_params_init(&sp);
    mobilellm_session *other = NULL;
    sp.n_ctx = INT32_MAX;
    FAILS(mobilellm_session_create(chat, &sp, &other), MOBILELLM_ERROR_INVALID_ARGUMENT, "n_ctx");
    sp.n_ctx = INT32_MIN;
    FAILS(mobilellm_session_create(chat, &sp, &other), MOBILELLM_ERROR_INVALID_ARGUMENT, "n_ctx");
    sp.n_ctx = 16;
    sp.struct_size = UINT32_MAX;
    FAILS(mobilellm_session_create(chat, &sp, &other), MOBILELLM_ERROR_INVALID_ARGUMENT, "struct_size");
    mobilellm_model_params mp;
    mobilellm_model_params_init(&mp);
    mobilellm_model *model = NULL;
    mp.n_threads = INT32_MAX;
    FAILS(mobilellm_model_load(chat_path, &mp, &model), MOBILELLM_ERROR_INVALID_ARGUMENT, "n_threads");
    mp.n_threads = 0;
    mp.default_context_length = INT32_MAX;
    FAILS(mobilellm_model_load(chat_path, &mp, &model), MOBILELLM_ERROR_INVALID_ARGUMENT, "default_context_length");
    mp.default_context_length = INT32_MIN;
    FAILS(mobilellm_model_load(chat_path, &mp, &model), MOBILELLM_ERROR_INVALID_ARGUMENT, "default_context_length");
    CHECK(model == NULL && other == NULL);
    mobilellm_sampler_params p;
    mobilellm_sampler_params_init(&p);
    p.top_k = INT32_MIN;
    mobilellm_sampler *bad = NULL;
    FAILS(mobilellm_sampler_create(&p, &bad), MOBILELLM_ERROR_INVALID_ARGUMENT, "top_k");
    p.top_k = 0;
    p.penalty_window = INT32_MIN;
    FAILS(mobilellm_sampler_create(&p, &bad), MOBILELLM_ERROR_INVALID_ARGUMENT, "penalty_window");
    /* top_k and penalty_window of INT32_MAX mean "all": the sampled token is the greedy one. */
    p.top_k = INT32_MAX;
    p.penalty_window = INT32_MAX;
    p.temperature = 1e-6f;
    p.use_seed = true;
    FAILS(mobilellm_sampler_create(&p, &bad), MOBILELLM_OK, "");
    FAILS(mobilellm_sampler_sample_logits(bad, scores, 4, ids, 2, &position), MOBILELLM_OK, "");
    CHECK(position == 3);
    mobilellm_sampler_free(bad);
    mobilellm_generate_params gp;
    mobilellm_generate_params_init(&gp);
    gp.max_tokens = INT32_MIN;
    result.struct_size = sizeof result;
    FAILS(mobilellm_session_generate(session, ids, 2, NULL, &gp, ids, 64, &result), MOBILELLM_ERROR_INVALID_ARGUMENT,
          "max_tokens");
    CHECK(position_of(session) == 0);

    mobilellm_sampler_free(sampler);
    mobilellm_session_free(session);
    free(logits);
}

/* ---- token ids out of range ---- */

static void test_token_ids(mobilellm_model *chat) {
    const int32_t bad[] = {-1, vocab, INT32_MAX, INT32_MIN};
    mobilellm_session *session = session_of(chat, 32);
    const test_sequence *s = &reference.sequences[0];
    float *logits = (float *)malloc(sizeof(float) * (size_t)vocab * 64);
    /* A known state to compare with after every refusal. */
    REQUIRE_OK(mobilellm_session_eval(session, s->tokens, 3, MOBILELLM_LOGITS_LAST, logits, (size_t)vocab));
    char text[256], expected[64];
    size_t length = 0;
    bool special = false;
    mobilellm_generate_result result;
    mobilellm_detokenizer *detokenizer = NULL;
    REQUIRE_OK(mobilellm_detokenizer_create(chat, false, &detokenizer));
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int32_t ids[4] = {5, 6, bad[i], 7};
        snprintf(expected, sizeof expected, "token id %d is outside the vocabulary", bad[i]);
        FAILS(mobilellm_session_eval(session, ids, 4, MOBILELLM_LOGITS_LAST, logits, (size_t)vocab),
              MOBILELLM_ERROR_INVALID_ARGUMENT, expected);
        CHECK(strstr(mobilellm_last_error(), "tokens[2]") != NULL);
        FAILS(generate(session, ids, 4, 4, NULL, NULL, ids, 4, &result), MOBILELLM_ERROR_INVALID_ARGUMENT, expected);
        FAILS(mobilellm_detokenize(chat, ids, 4, false, text, sizeof text, &length), MOBILELLM_ERROR_INVALID_ARGUMENT, expected);
        FAILS(mobilellm_token_to_piece(chat, bad[i], text, sizeof text, &length), MOBILELLM_ERROR_INVALID_ARGUMENT, expected);
        FAILS(mobilellm_token_is_special(chat, bad[i], &special), MOBILELLM_ERROR_INVALID_ARGUMENT, expected);
        const char *piece = NULL;
        FAILS(mobilellm_detokenizer_push(detokenizer, bad[i], &piece, &length), MOBILELLM_ERROR_INVALID_ARGUMENT, expected);
        /* Out-of-range ids in a penalty history or a stop list are harmless: ignored, and never match. */
        float scores[4] = {1, 4, 3, 2};
        int32_t history[2] = {bad[i], 1}, token = -1;
        mobilellm_sampler_params p;
        mobilellm_sampler_params_init(&p);
        p.repetition_penalty = 4;
        mobilellm_sampler *sampler = NULL;
        REQUIRE_OK(mobilellm_sampler_create(&p, &sampler));
        FAILS(mobilellm_sampler_sample_logits(sampler, scores, 4, history, 2, &token), MOBILELLM_OK, "");
        CHECK(token == 2); /* id 1 penalised (4 / 4 = 1), the out-of-range id ignored */
        mobilellm_sampler_free(sampler);
    }
    /* The session is exactly as before: same position, same logits; it goes on to match transformers. */
    CHECK(position_of(session) == 3);
    float *kept = (float *)malloc(sizeof(float) * (size_t)vocab);
    size_t count = 0;
    CHECK_STATUS(mobilellm_session_logits(session, kept, (size_t)vocab, &count), MOBILELLM_OK, "");
    CHECK(test_max_abs_diff(kept, s->logits + 2 * (size_t)vocab, (size_t)vocab) <= 1e-3f);
    check_sequence_logits(session, s, 3);
    free(kept);

    /* Stop ids out of range never match: generation runs to max_tokens and equals the reference. */
    const test_greedy *g = &reference.greedy[0];
    int32_t stops[4] = {-1, vocab, INT32_MAX, INT32_MIN}, out[8];
    mobilellm_generate_params gp;
    mobilellm_generate_params_init(&gp);
    gp.max_tokens = 8;
    gp.stop_token_ids = stops;
    gp.n_stop_token_ids = 4;
    result.struct_size = sizeof result;
    REQUIRE_OK(mobilellm_session_reset(session));
    FAILS(mobilellm_session_generate(session, g->prompt, (size_t)g->n_prompt, NULL, &gp, out, 8, &result), MOBILELLM_OK, "");
    CHECK(result.stop_reason == MOBILELLM_STOP_MAX_TOKENS && result.n_tokens == 8 && matches_greedy(out, 8, g));
    mobilellm_detokenizer_free(detokenizer);
    mobilellm_session_free(session);
    free(logits);
}

/* ---- context overflow and max_tokens 0 / 10^9 ---- */

static void test_context(mobilellm_model *model) {
    const test_sequence *s = &reference.sequences[2];
    const test_greedy *g = &reference.greedy[0];
    mobilellm_session *session = session_of(model, 16);
    float *logits = (float *)malloc(sizeof(float) * (size_t)vocab * 1000);
    int32_t *many = long_prompt(1000);
    REQUIRE_OK(mobilellm_session_eval(session, s->tokens, 10, MOBILELLM_LOGITS_LAST, logits, (size_t)vocab));
    size_t sizes[] = {7, 16, 17, 1000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        FAILS(mobilellm_session_eval(session, many, sizes[i], MOBILELLM_LOGITS_ALL, logits, (size_t)vocab * 1000),
              MOBILELLM_ERROR_CONTEXT_FULL, "context full: the session holds 16 tokens, 10 are used");
        mobilellm_generate_result result;
        int32_t out[4];
        FAILS(generate(session, many, sizes[i], 4, NULL, NULL, out, 4, &result), MOBILELLM_ERROR_CONTEXT_FULL, "context full");
    }
    free(many);
    /* Unchanged (position and latest logits) and still usable: fill it exactly, then one more is refused. */
    CHECK(position_of(session) == 10);
    size_t count = 0;
    CHECK_STATUS(mobilellm_session_logits(session, logits, (size_t)vocab, &count), MOBILELLM_OK, "");
    CHECK(test_max_abs_diff(logits, s->logits + 9 * (size_t)vocab, (size_t)vocab) <= 1e-3f);
    float *rows = (float *)malloc(sizeof(float) * (size_t)vocab * 6);
    CHECK_STATUS(mobilellm_session_eval(session, s->tokens + 10, 6, MOBILELLM_LOGITS_ALL, rows, (size_t)vocab * 6), MOBILELLM_OK,
                 "");
    CHECK(test_max_abs_diff(rows, s->logits + 10 * (size_t)vocab, (size_t)vocab * 6) <= 1e-3f);
    FAILS(mobilellm_session_eval(session, s->tokens, 1, MOBILELLM_LOGITS_NONE, NULL, 0), MOBILELLM_ERROR_CONTEXT_FULL,
          "holds 16 tokens, 16 are used");
    /* Continuing a full session produces nothing new beyond the one token that fits the last position. */
    mobilellm_generate_result result;
    int32_t out[64];
    FAILS(generate(session, NULL, 0, 1000000000, NULL, NULL, out, 64, &result), MOBILELLM_OK, "");
    CHECK(result.stop_reason == MOBILELLM_STOP_CONTEXT_FULL && result.n_tokens == 1);
    CHECK(position_of(session) == 16);
    mobilellm_session_free(session);

    /* max_tokens 0: the prompt is fed, nothing is generated. */
    session = session_of(model, 64);
    FAILS(generate(session, g->prompt, (size_t)g->n_prompt, 0, NULL, NULL, out, 64, &result), MOBILELLM_OK, "");
    CHECK(result.stop_reason == MOBILELLM_STOP_MAX_TOKENS && result.n_tokens == 0 && result.n_prompt_tokens == g->n_prompt);
    CHECK(position_of(session) == g->n_prompt);
    /* max_tokens 10^9 and INT32_MAX are bounded by the context (64): no allocation of 10^9, quick, and right. */
    const int32_t big[] = {1000000000, INT32_MAX};
    for (int i = 0; i < 2; i++) {
        REQUIRE_OK(mobilellm_session_reset(session));
        double start = now_seconds();
        FAILS(generate(session, g->prompt, (size_t)g->n_prompt, big[i], NULL, NULL, out, 64, &result), MOBILELLM_OK, "");
        double seconds = now_seconds() - start;
        CHECK(result.stop_reason == MOBILELLM_STOP_CONTEXT_FULL && result.n_tokens == 64 - g->n_prompt + 1);
        CHECK(matches_greedy(out, g->n_continuation, g));
        CHECK(position_of(session) == 64);
        CHECK(seconds < 10);
        printf("max_tokens %d with n_ctx 64: %d tokens, stop reason context full, %.3f s\n", big[i], result.n_tokens, seconds);
    }
    mobilellm_session_free(session);
    free(rows);
    free(logits);
}

/* ---- cancel: during a long prefill, during decode, with nothing running ---- */

typedef struct {
    mobilellm_session *session;
    const int32_t *tokens;
    size_t n;
    float *logits;
    mobilellm_status status;
    volatile int started, done;
    double ended;
    char message[256];
} eval_job;

static void *run_eval(void *argument) {
    eval_job *job = (eval_job *)argument;
    job->started = 1;
    job->status = mobilellm_session_eval(job->session, job->tokens, job->n, job->logits ? MOBILELLM_LOGITS_LAST :
                                         MOBILELLM_LOGITS_NONE, job->logits, job->logits ? (size_t)vocab : 0);
    snprintf(job->message, sizeof job->message, "%s", mobilellm_last_error()); /* thread-local: read it here */
    job->ended = now_seconds();
    job->done = 1;
    return NULL;
}

/* Starts `job` on a thread and waits until it has (very probably) entered the library. */
static pthread_t start_job(eval_job *job) {
    pthread_t thread;
    pthread_create(&thread, NULL, run_eval, job);
    while (!job->started) usleep(100);
    usleep(20000);
    return thread;
}

/* Cancels until the job returns (a request that arrives before the call starts is dropped, so repeat); returns the
 * seconds from the first request to the job's return. */
static double cancel_until_done(eval_job *job, mobilellm_session *session) {
    double first = now_seconds();
    while (!job->done) {
        mobilellm_session_cancel(session);
        usleep(500);
    }
    return job->ended - first;
}

typedef struct {
    mobilellm_session *session;
    volatile int seen;
} counting;

static bool count_tokens(int32_t token, const char *piece, size_t length, void *user_data) {
    (void)token;
    (void)piece;
    (void)length;
    ((counting *)user_data)->seen++;
    usleep(200);
    return true;
}

typedef struct {
    counting *c;
    int32_t *out;
    size_t capacity;
    const test_greedy *g;
    mobilellm_generate_result result;
    mobilellm_status status;
    volatile int done;
} generate_job;

static void *run_generate(void *argument) {
    generate_job *job = (generate_job *)argument;
    job->status = generate(job->c->session, job->g->prompt, (size_t)job->g->n_prompt, 100000, count_tokens, job->c, job->out,
                           job->capacity, &job->result);
    job->done = 1;
    return NULL;
}

static void test_cancel(mobilellm_model *model) {
    const test_sequence *s = &reference.sequences[2];
    mobilellm_session *session = session_of(model, 4096);
    float *logits = (float *)malloc(sizeof(float) * (size_t)vocab * 64);
    int32_t *tokens = long_prompt(4000);

    /* A cancel with nothing running is a no-op: it does not linger and cancel the next call. */
    CHECK_STATUS(mobilellm_session_cancel(session), MOBILELLM_OK, "");
    CHECK_STATUS(mobilellm_session_cancel(session), MOBILELLM_OK, "");
    CHECK_STATUS(mobilellm_session_eval(session, s->tokens, 4, MOBILELLM_LOGITS_LAST, logits, (size_t)vocab), MOBILELLM_OK, "");
    CHECK(position_of(session) == 4);

    /* Cancel from another thread during a 4000-token prefill: CANCELLED promptly, the position and the latest logits
     * back as they were, and the rest of the reference sequence still gives transformers' logits. */
    eval_job job = {session, tokens, 4000, logits, MOBILELLM_OK, 0, 0, 0, {0}};
    pthread_t thread = start_job(&job);
    double latency = cancel_until_done(&job, session);
    pthread_join(thread, NULL);
    CHECK(job.status == MOBILELLM_ERROR_CANCELLED);
    CHECK(strcmp(job.message, "mobilellm_session_eval: cancelled: mobilellm_session_cancel() was called; nothing was fed") == 0);
    CHECK(latency < 2.0);
    printf("cancel during a 4000-token prefill: returned %s %.1f ms after the request\n", mobilellm_status_name(job.status),
           latency * 1000);
    CHECK(position_of(session) == 4);
    size_t count = 0;
    CHECK_STATUS(mobilellm_session_logits(session, logits, (size_t)vocab, &count), MOBILELLM_OK, "");
    CHECK(test_max_abs_diff(logits, s->logits + 3 * (size_t)vocab, (size_t)vocab) <= 1e-3f);
    check_sequence_logits(session, s, 4);

    /* Cancel during decode: the session keeps what was fed, and continuing gives the reference continuation. */
    const test_greedy *g = &reference.greedy[1];
    REQUIRE_OK(mobilellm_session_reset(session));
    int32_t out[4096];
    counting c = {session, 0};
    generate_job gj = {&c, out, 4096, g, {0, 0, 0, 0, 0, 0}, MOBILELLM_OK, 0};
    pthread_t generator;
    pthread_create(&generator, NULL, run_generate, &gj);
    while (c.seen < 5 && !gj.done) usleep(100);
    while (!gj.done) {
        mobilellm_session_cancel(session);
        usleep(500);
    }
    pthread_join(generator, NULL);
    CHECK(gj.status == MOBILELLM_ERROR_CANCELLED);
    int32_t fed = position_of(session);
    int generated = fed - g->n_prompt + 1; /* generated so far: the fed ones and the last, not yet fed */
    CHECK(generated >= 5 && generated < 4000);
    int32_t held[4096];
    REQUIRE_OK(mobilellm_session_tokens(session, held, 4096, &count));
    CHECK(count == (size_t)fed && matches_greedy(held + g->n_prompt, fed - g->n_prompt, g));
    /* Continue: feed the reference's next token and generate the rest. */
    int remaining = g->n_continuation - (fed - g->n_prompt) - 1;
    if (remaining > 0) {
        mobilellm_generate_result result;
        int32_t next = g->continuation[fed - g->n_prompt];
        CHECK_STATUS(generate(session, &next, 1, remaining, NULL, NULL, out, 4096, &result), MOBILELLM_OK, "");
        CHECK(result.n_tokens == remaining);
        for (int i = 0; i < remaining; i++) CHECK(out[i] == g->continuation[fed - g->n_prompt + 1 + i]);
    }

    /* A cancel that raced with the end of a call is gone by the next call. */
    REQUIRE_OK(mobilellm_session_reset(session));
    CHECK_STATUS(mobilellm_session_cancel(session), MOBILELLM_OK, "");
    mobilellm_generate_result result;
    CHECK_STATUS(generate(session, g->prompt, (size_t)g->n_prompt, 8, NULL, NULL, out, 8, &result), MOBILELLM_OK, "");
    CHECK(result.n_tokens == 8 && matches_greedy(out, 8, g));
    mobilellm_session_free(session);
    free(tokens);
    free(logits);
}

/* ---- many sessions on one model across threads ---- */

#define N_THREADS 8
#define N_SAMPLED 16

typedef struct {
    mobilellm_model *model;
    int index;
    float *logits;
    int32_t greedy[32];
    int32_t sampled[N_SAMPLED];
    mobilellm_status status;
} thread_work;

static void *run_work(void *argument) {
    thread_work *w = (thread_work *)argument;
    const test_sequence *s = &reference.sequences[w->index % reference.n_sequences];
    const test_greedy *g = &reference.greedy[w->index % reference.n_greedy];
    mobilellm_session_params sp;
    mobilellm_session_params_init(&sp);
    sp.n_ctx = 128;
    mobilellm_session *session = NULL;
    if ((w->status = mobilellm_session_create(w->model, &sp, &session)) != MOBILELLM_OK) return NULL;
    size_t n = (size_t)s->n_tokens;
    w->status = mobilellm_session_eval(session, s->tokens, n, MOBILELLM_LOGITS_ALL, w->logits, n * (size_t)vocab);
    mobilellm_generate_result result;
    if (w->status == MOBILELLM_OK && (w->status = mobilellm_session_reset(session)) == MOBILELLM_OK)
        w->status = generate(session, g->prompt, (size_t)g->n_prompt, g->n_continuation, NULL, NULL, w->greedy, 32, &result);
    if (w->status == MOBILELLM_OK && (w->status = mobilellm_session_reset(session)) == MOBILELLM_OK) {
        mobilellm_sampler_params p;
        mobilellm_sampler_params_init(&p);
        p.temperature = 0.9f;
        p.top_k = 40;
        p.seed = (uint64_t)w->index;
        p.use_seed = true;
        mobilellm_generate_params gp;
        mobilellm_generate_params_init(&gp);
        gp.max_tokens = N_SAMPLED;
        gp.ignore_eos = true;
        w->status = mobilellm_session_generate(session, g->prompt, (size_t)g->n_prompt, &p, &gp, w->sampled, N_SAMPLED, NULL);
    }
    mobilellm_session_free(session);
    return NULL;
}

static void test_threads(void) {
    mobilellm_model *model = load(r1_path); /* every core per session: compute pools run concurrently too */
    thread_work serial[N_THREADS], parallel[N_THREADS];
    pthread_t threads[N_THREADS];
    for (int i = 0; i < N_THREADS; i++) {
        size_t floats = (size_t)reference.sequences[i % reference.n_sequences].n_tokens * (size_t)vocab;
        memset(&serial[i], 0, sizeof serial[i]);
        serial[i].model = model;
        serial[i].index = i;
        parallel[i] = serial[i];
        serial[i].logits = (float *)calloc(floats, sizeof(float));
        parallel[i].logits = (float *)calloc(floats, sizeof(float));
        run_work(&serial[i]);
        CHECK(serial[i].status == MOBILELLM_OK);
    }
    for (int i = 0; i < N_THREADS; i++) pthread_create(&threads[i], NULL, run_work, &parallel[i]);
    for (int i = 0; i < N_THREADS; i++) pthread_join(threads[i], NULL);
    for (int i = 0; i < N_THREADS; i++) {
        const test_sequence *s = &reference.sequences[i % reference.n_sequences];
        const test_greedy *g = &reference.greedy[i % reference.n_greedy];
        size_t floats = (size_t)s->n_tokens * (size_t)vocab;
        CHECK(parallel[i].status == MOBILELLM_OK);
        CHECK(memcmp(serial[i].logits, parallel[i].logits, floats * sizeof(float)) == 0);
        CHECK(memcmp(serial[i].greedy, parallel[i].greedy, sizeof serial[i].greedy) == 0);
        CHECK(memcmp(serial[i].sampled, parallel[i].sampled, sizeof serial[i].sampled) == 0);
        CHECK(test_max_abs_diff(parallel[i].logits, s->logits, floats) <= 1e-3f);
        CHECK(matches_greedy(parallel[i].greedy, g->n_continuation, g));
        free(serial[i].logits);
        free(parallel[i].logits);
    }
    CHECK(memcmp(serial[0].sampled, serial[1].sampled, sizeof serial[0].sampled) != 0); /* seeds differ */
    printf("%d threads x 1 session each on one model: identical to serial and to transformers\n", N_THREADS);
    mobilellm_model_free(model);
}

/* ---- two threads on one session, sampler or detokenizer ---- */

typedef struct {
    mobilellm_sampler *sampler;
    const float *logits;
    size_t n;
    int ok, busy, other;
    int32_t expected;
} sampler_job;

static void *hammer_sampler(void *argument) {
    sampler_job *job = (sampler_job *)argument;
    for (int i = 0; i < 200; i++) {
        int32_t token = -1;
        mobilellm_status status = mobilellm_sampler_sample_logits(job->sampler, job->logits, job->n, NULL, 0, &token);
        if (status == MOBILELLM_OK && token == job->expected) job->ok++;
        else if (status == MOBILELLM_ERROR_BUSY && strstr(mobilellm_last_error(), "in use by another thread")) job->busy++;
        else job->other++;
    }
    return NULL;
}

static void test_shared_session(mobilellm_model *model) {
    mobilellm_session *session = session_of(model, 4096);
    int32_t *tokens = long_prompt(4000);
    int32_t ids[2] = {5, 6}, position = 0, n_ctx = 0, token = 0;
    float *logits = (float *)malloc(sizeof(float) * (size_t)vocab);
    size_t count = 0;
    unsigned char state[64] = {0};
    mobilellm_generate_result result;
    mobilellm_sampler *sampler = NULL;
    REQUIRE_OK(mobilellm_sampler_create(NULL, &sampler));
    REQUIRE_OK(mobilellm_session_eval(session, ids, 2, MOBILELLM_LOGITS_LAST, logits, (size_t)vocab));

    /* While one thread is inside a call, every other call on the session is refused with BUSY (the header's
     * contract: one thread at a time per session), except the immutable context length and cancel. The job is
     * then cancelled, which proves it was still running during every probe. */
    eval_job job = {session, tokens, 4000, NULL, MOBILELLM_OK, 0, 0, 0, {0}};
    pthread_t thread = start_job(&job);
    const char *busy = "mobilellm_session is in use by another thread";
    FAILS(mobilellm_session_eval(session, ids, 2, MOBILELLM_LOGITS_NONE, NULL, 0), MOBILELLM_ERROR_BUSY, busy);
    FAILS(generate(session, ids, 2, 4, NULL, NULL, ids, 2, &result), MOBILELLM_ERROR_BUSY, busy);
    FAILS(mobilellm_session_reset(session), MOBILELLM_ERROR_BUSY, busy);
    FAILS(mobilellm_session_rewind(session, 0), MOBILELLM_ERROR_BUSY, busy);
    FAILS(mobilellm_session_position(session, &position), MOBILELLM_ERROR_BUSY, busy);
    FAILS(mobilellm_session_tokens(session, NULL, 0, &count), MOBILELLM_ERROR_BUSY, busy);
    FAILS(mobilellm_session_logits(session, logits, (size_t)vocab, &count), MOBILELLM_ERROR_BUSY, busy);
    FAILS(mobilellm_session_state_size(session, &count), MOBILELLM_ERROR_BUSY, busy);
    FAILS(mobilellm_session_save_state(session, state, sizeof state, &count), MOBILELLM_ERROR_BUSY, busy);
    FAILS(mobilellm_session_load_state(session, state, sizeof state), MOBILELLM_ERROR_BUSY, busy);
    FAILS(mobilellm_sampler_sample(sampler, session, &token), MOBILELLM_ERROR_BUSY, busy);
    FAILS(mobilellm_session_context_length(session, &n_ctx), MOBILELLM_OK, "");
    CHECK(n_ctx == 4096);
    cancel_until_done(&job, session);
    pthread_join(thread, NULL);
    CHECK(job.status == MOBILELLM_ERROR_CANCELLED);
    CHECK(position_of(session) == 2);
    FAILS(mobilellm_sampler_sample(sampler, session, &token), MOBILELLM_OK, "");

    /* Freeing the session while another thread is inside a call: the handle is invalid at once, the call finishes
     * normally and the memory goes with it. */
    eval_job freed = {session, tokens, 600, logits, MOBILELLM_OK, 0, 0, 0, {0}};
    thread = start_job(&freed);
    FAILS(mobilellm_session_free(session), MOBILELLM_OK, "");
    FAILS(mobilellm_session_cancel(session), MOBILELLM_ERROR_INVALID_HANDLE, "not a live mobilellm_session");
    pthread_join(thread, NULL);
    CHECK(freed.status == MOBILELLM_OK || freed.status == MOBILELLM_ERROR_INVALID_HANDLE);

    /* Two threads on one sampler: each call either works (and gives the right token) or is refused with BUSY. */
    size_t n = 1 << 18;
    float *scores = (float *)malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) scores[i] = (float)((i * 2654435761u) % 1000003u);
    int32_t best = 0;
    for (size_t i = 1; i < n; i++)
        if (scores[i] > scores[best]) best = (int32_t)i;
    sampler_job a = {sampler, scores, n, 0, 0, 0, best}, b = a;
    pthread_t ta, tb;
    pthread_create(&ta, NULL, hammer_sampler, &a);
    pthread_create(&tb, NULL, hammer_sampler, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    CHECK(a.other == 0 && b.other == 0 && a.ok + b.ok > 0);
    printf("two threads on one sampler: %d ok, %d busy, %d wrong\n", a.ok + b.ok, a.busy + b.busy, a.other + b.other);
    mobilellm_sampler_free(sampler);
    free(scores);
    free(tokens);
    free(logits);
}

/* ---- 2,000 load/generate/free cycles ---- */

static long resident_pages(void) {
    long size = 0, resident = 0;
    FILE *file = fopen("/proc/self/statm", "r");
    if (!file) return 0;
    if (fscanf(file, "%ld %ld", &size, &resident) != 2) resident = 0;
    fclose(file);
    return resident;
}

static bool collect_piece(int32_t token, const char *piece, size_t length, void *user_data) {
    (void)token;
    size_t *total = (size_t *)user_data;
    if (piece && piece[length] == 0 && test_valid_utf8(piece, length)) *total += length;
    return true;
}

/* One cycle: load the chat model, tokenize, generate greedily with text pieces, stream-detokenize, free everything.
 * `n_threads` > 1 gives the session a compute pool (worker threads created and joined). */
static int cycle(const test_greedy *g, int32_t n_threads) {
    mobilellm_model_params mp;
    mobilellm_model_params_init(&mp);
    mp.n_threads = n_threads;
    mobilellm_model *model = NULL;
    if (mobilellm_model_load(chat_path, &mp, &model) != MOBILELLM_OK) return 0;
    int32_t ids[16], out[8];
    size_t count = 0, text_bytes = 0;
    int ok = mobilellm_tokenize(model, "Hello world!", 12, true, false, ids, 16, &count) == MOBILELLM_OK && count > 1;
    mobilellm_session *session = NULL;
    ok = ok && mobilellm_session_create(model, NULL, &session) == MOBILELLM_OK;
    mobilellm_generate_result result;
    ok = ok && generate(session, g->prompt, (size_t)g->n_prompt, 6, collect_piece, &text_bytes, out, 8, &result) == MOBILELLM_OK;
    ok = ok && result.n_tokens == 6 && matches_greedy(out, 6, g);
    mobilellm_detokenizer *detokenizer = NULL;
    ok = ok && mobilellm_detokenizer_create(model, false, &detokenizer) == MOBILELLM_OK;
    const char *piece = NULL;
    size_t length = 0;
    for (int i = 0; ok && i < 6; i++) ok = mobilellm_detokenizer_push(detokenizer, out[i], &piece, &length) == MOBILELLM_OK;
    mobilellm_detokenizer_free(detokenizer);
    mobilellm_model_free(model); /* before the session: the session keeps the model alive */
    mobilellm_session_free(session);
    return ok;
}

static void test_cycles(void) {
    const test_greedy *g = &reference.greedy[0];
    const int warm_up = 200, total = 2000;
    long warm = 0;
    int failed = 0;
    double start = now_seconds();
    for (int i = 0; i < total; i++) {
        if (!cycle(g, i % 4 == 0 ? 2 : 1)) failed++; /* joining pool threads is slow on a busy machine: every 4th */
        if (i + 1 == warm_up) warm = resident_pages();
    }
    long end = resident_pages();
    double growth = warm > 0 ? (double)(end - warm) / (double)warm : 1;
    long page = sysconf(_SC_PAGESIZE);
    printf("%d load/generate/free cycles in %.1f s: RSS %.1f MiB after %d, %.1f MiB at the end (%+.2f%%)\n", total,
           now_seconds() - start, (double)(warm * page) / 1048576.0, warm_up, (double)(end * page) / 1048576.0,
           growth * 100);
    CHECK(failed == 0);
    CHECK(growth < 0.05);
}

/* ---- freeing a model while its sessions live ---- */

typedef struct {
    mobilellm_model *model;
    mobilellm_status freed;
} free_in_callback;

static bool free_model_from_callback(int32_t token, const char *piece, size_t length, void *user_data) {
    (void)token;
    (void)piece;
    (void)length;
    free_in_callback *f = (free_in_callback *)user_data;
    if (f->model) {
        f->freed = mobilellm_model_free(f->model);
        f->model = NULL;
    }
    return true;
}

static void test_model_freed_with_live_sessions(void) {
    const test_greedy *g = &reference.greedy[1];
    const test_sequence *s = &reference.sequences[1];
    mobilellm_model *model = load(chat_path);
    mobilellm_session *first = session_of(model, 64), *second = session_of(model, 64);
    mobilellm_detokenizer *detokenizer = NULL;
    REQUIRE_OK(mobilellm_detokenizer_create(model, false, &detokenizer));
    REQUIRE_OK(mobilellm_model_free(model));
    /* The handle is gone... */
    check_bad_model(model, "not a live mobilellm_model");
    /* ...but the sessions and the detokenizer keep working, with the right numbers. */
    mobilellm_generate_result result;
    int32_t out[32];
    CHECK_STATUS(generate(first, g->prompt, (size_t)g->n_prompt, g->n_continuation, NULL, NULL, out, 32, &result),
                 MOBILELLM_OK, "");
    CHECK(matches_greedy(out, g->n_continuation, g));
    const char *piece = NULL;
    size_t length = 0;
    CHECK_STATUS(mobilellm_detokenizer_push(detokenizer, 326, &piece, &length), MOBILELLM_OK, "");
    REQUIRE_OK(mobilellm_detokenizer_free(detokenizer));
    REQUIRE_OK(mobilellm_session_free(first));
    check_sequence_logits(second, s, 0);
    REQUIRE_OK(mobilellm_session_free(second)); /* the last reference: the weights go now */

    /* Freed from another thread while a session of it is in a prefill on this one. */
    model = load(r1_path);
    mobilellm_session *session = session_of(model, 4096);
    int32_t *tokens = long_prompt(1500);
    eval_job job = {session, tokens, 1500, NULL, MOBILELLM_OK, 0, 0, 0, {0}};
    pthread_t thread;
    pthread_create(&thread, NULL, run_eval, &job);
    while (!job.started) usleep(100);
    CHECK_STATUS(mobilellm_model_free(model), MOBILELLM_OK, "");
    pthread_join(thread, NULL);
    CHECK(job.status == MOBILELLM_OK && position_of(session) == 1500);
    REQUIRE_OK(mobilellm_session_reset(session));
    check_sequence_logits(session, s, 0);
    mobilellm_session_free(session);
    free(tokens);

    /* Freed from inside a token callback of its own session's generation. */
    model = load(r1_path);
    session = session_of(model, 64);
    free_in_callback f = {model, MOBILELLM_ERROR_INTERNAL};
    CHECK_STATUS(generate(session, g->prompt, (size_t)g->n_prompt, g->n_continuation, free_model_from_callback, &f, out, 32,
                          &result),
                 MOBILELLM_OK, "");
    CHECK(f.freed == MOBILELLM_OK && matches_greedy(out, g->n_continuation, g));
    mobilellm_session_free(session);
}

/* ---- UTF-8: invalid, unterminated, embedded NUL ---- */

static void test_utf8(mobilellm_model *chat) {
    /* Invalid sequences (RFC 3629): the message gives the offset of the first bad byte. */
    struct {
        const char *text;
        size_t length;
        const char *suffix;
    } bad[] = {
        {"ab\x80", 3, "'text' at byte offset 2"},             /* lone continuation byte */
        {"\xc0\xaf", 2, "'text' at byte offset 0"},           /* overlong encoding of '/' */
        {"a\xed\xa0\x80z", 5, "'text' at byte offset 1"},     /* UTF-16 surrogate */
        {"abc\xe2\x82", 5, "'text' at byte offset 3"},        /* truncated at the end */
        {"\xf4\x90\x80\x80", 4, "'text' at byte offset 0"},   /* above U+10FFFF */
        {"ok \xff", 4, "'text' at byte offset 3"},            /* never valid */
        {"h\xc3\xa9llo", 2, "'text' at byte offset 1"},       /* a length that cuts a character */
    };
    int32_t ids[64], again[64];
    size_t count = 0, count_again = 0, length = 0;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        FAILS(mobilellm_tokenize(chat, bad[i].text, bad[i].length, true, false, ids, 64, &count), MOBILELLM_ERROR_INVALID_UTF8,
              "invalid UTF-8");
        CHECK(ends_with(mobilellm_last_error(), bad[i].suffix));
    }
    /* Text given with a length is read to that length only: no NUL needed, NULs inside are text. */
    char *unterminated = (char *)malloc(12);
    memcpy(unterminated, "Hello world!", 12);
    REQUIRE_OK(mobilellm_tokenize(chat, unterminated, 12, false, false, ids, 64, &count));
    REQUIRE_OK(mobilellm_tokenize(chat, "Hello world!", 12, false, false, again, 64, &count_again));
    CHECK(count == count_again && memcmp(ids, again, count * sizeof(int32_t)) == 0);
    REQUIRE_OK(mobilellm_tokenize(chat, unterminated, 5, false, false, ids, 64, &count));
    REQUIRE_OK(mobilellm_tokenize(chat, "Hello", 5, false, false, again, 64, &count_again));
    CHECK(count == count_again && memcmp(ids, again, count * sizeof(int32_t)) == 0);
    free(unterminated);
    const char with_nul[] = {'a', 0, 'b', 0, 0};
    CHECK_STATUS(mobilellm_tokenize(chat, with_nul, 4, false, false, ids, 64, &count), MOBILELLM_OK, "");
    char text[256];
    CHECK_STATUS(mobilellm_detokenize(chat, ids, count, false, text, sizeof text, &length), MOBILELLM_OK, "");
    CHECK(length == 4 && memcmp(text, with_nul, 4) == 0 && text[4] == 0); /* byte-level BPE round-trips */

    /* NUL-terminated string arguments with invalid UTF-8 name the argument. */
    FAILS(mobilellm_model_get_metadata(chat, "pa\xffth", text, sizeof text, &length), MOBILELLM_ERROR_INVALID_UTF8, "'key'");
    mobilellm_model *model = NULL;
    FAILS(mobilellm_model_load("/tmp/\xed\xa0\x80", NULL, &model), MOBILELLM_ERROR_INVALID_UTF8, "'path'");
    mobilellm_model_params mp;
    mobilellm_model_params_init(&mp);
    mp.quantize = "q4\xc0";
    FAILS(mobilellm_model_load(chat_path, &mp, &model), MOBILELLM_ERROR_INVALID_UTF8, "quantize");
    mobilellm_chat_message role = {"us\x80r", "Hi"}, content = {"user", "H\xc3"};
    FAILS(mobilellm_apply_chat_template(chat, &role, 1, NULL, text, sizeof text, &length), MOBILELLM_ERROR_INVALID_UTF8,
          "'messages[0].role'");
    FAILS(mobilellm_apply_chat_template(chat, &content, 1, NULL, text, sizeof text, &length), MOBILELLM_ERROR_INVALID_UTF8,
          "'messages[0].content'");
    mobilellm_chat_message message = {"user", "Hi"};
    mobilellm_chat_params cp;
    mobilellm_chat_params_init(&cp);
    cp.variables_json = "{\"x\": \"\xff\"}";
    FAILS(mobilellm_apply_chat_template(chat, &message, 1, &cp, text, sizeof text, &length), MOBILELLM_ERROR_INVALID_UTF8,
          "variables_json");
    mobilellm_chat_params_init(&cp);
    cp.messages_json = "[{\"role\": \"user\", \"content\": \"\xe2\x82\"}]";
    FAILS(mobilellm_apply_chat_template(chat, NULL, 0, &cp, text, sizeof text, &length), MOBILELLM_ERROR_INVALID_UTF8,
          "messages_json");
    mobilellm_chat_params_init(&cp);
    cp.template_override = "{{ '\xc0\xaf' }}";
    FAILS(mobilellm_apply_chat_template(chat, &message, 1, &cp, text, sizeof text, &length), MOBILELLM_ERROR_INVALID_UTF8,
          "template_override");

    /* Ids whose bytes are not UTF-8 on their own decode to U+FFFD (Hugging Face's errors="replace"), never to
     * invalid text, and the streaming detokenizer only ever hands out whole characters. */
    int32_t lone = -1;
    for (int32_t id = 0; id < vocab && lone < 0; id++) {
        unsigned char piece[16];
        if (mobilellm_token_to_piece(chat, id, (char *)piece, sizeof piece, &length) == MOBILELLM_OK && length == 1 &&
            piece[0] >= 0x80 && piece[0] < 0xc0)
            lone = id;
    }
    CHECK(lone >= 0);
    int32_t mixed[3] = {lone, 326, lone};
    CHECK_STATUS(mobilellm_detokenize(chat, mixed, 3, false, text, sizeof text, &length), MOBILELLM_OK, "");
    CHECK(test_valid_utf8(text, length) && strncmp(text, "\xef\xbf\xbd", 3) == 0 && ends_with(text, "\xef\xbf\xbd"));
    mobilellm_detokenizer *detokenizer = NULL;
    REQUIRE_OK(mobilellm_detokenizer_create(chat, false, &detokenizer));
    char joined[256];
    size_t used = 0;
    for (int i = 0; i < 3; i++) {
        const char *piece = NULL;
        size_t n = 0;
        CHECK_STATUS(mobilellm_detokenizer_push(detokenizer, mixed[i], &piece, &n), MOBILELLM_OK, "");
        CHECK(test_valid_utf8(piece, n));
        memcpy(joined + used, piece, n);
        used += n;
    }
    const char *rest = NULL;
    size_t n = 0;
    CHECK_STATUS(mobilellm_detokenizer_flush(detokenizer, &rest, &n), MOBILELLM_OK, "");
    CHECK(test_valid_utf8(rest, n));
    memcpy(joined + used, rest, n);
    used += n;
    CHECK(used == length && memcmp(joined, text, length) == 0);
    mobilellm_detokenizer_free(detokenizer);
}

/* ---- callbacks: stop at once, re-enter the library ---- */

static bool stop_at_once(int32_t token, const char *piece, size_t length, void *user_data) {
    (void)token;
    (void)piece;
    (void)length;
    (*(int *)user_data)++;
    return false;
}

typedef struct {
    mobilellm_session *own, *other;
    mobilellm_model *model;
    mobilellm_status own_eval, nested_generate, tokenize, bad_call, cancel, free_own;
    int32_t nested[32];
    int calls;
    int mode; /* 0: probe the library, 1: cancel own session, 2: free own session */
} reentry;

static bool reenter(int32_t token, const char *piece, size_t length, void *user_data) {
    (void)token;
    (void)piece;
    (void)length;
    reentry *r = (reentry *)user_data;
    r->calls++;
    if (r->calls > 1) return true;
    if (r->mode == 1) {
        r->cancel = mobilellm_session_cancel(r->own);
        return true;
    }
    if (r->mode == 2) {
        r->free_own = mobilellm_session_free(r->own);
        return true;
    }
    r->own_eval = mobilellm_session_eval(r->own, &token, 1, MOBILELLM_LOGITS_NONE, NULL, 0);
    const test_greedy *g = &reference.greedy[1];
    mobilellm_generate_result result;
    r->nested_generate = generate(r->other, g->prompt, (size_t)g->n_prompt, g->n_continuation, NULL, NULL, r->nested, 32, &result);
    int32_t ids[16];
    size_t count = 0;
    r->tokenize = mobilellm_tokenize(r->model, "Hi", 2, true, false, ids, 16, &count);
    mobilellm_model_info info;
    r->bad_call = mobilellm_model_get_info(NULL, &info); /* leaves a message on this thread */
    return true;
}

static bool abort_load(float progress, void *user_data) {
    (void)progress;
    (*(int *)user_data)++;
    return false;
}

static bool load_inside_progress(float progress, void *user_data) {
    mobilellm_status *nested = (mobilellm_status *)user_data;
    if (progress == 0 && *nested == MOBILELLM_ERROR_INTERNAL) {
        mobilellm_model *inner = NULL;
        *nested = mobilellm_model_load(r1_path, NULL, &inner);
        mobilellm_model_free(inner);
    }
    return true;
}

typedef struct {
    int messages;
    int uninstall;
} log_state;

static void reentrant_log(int32_t level, const char *message, void *user_data) {
    (void)level;
    (void)message;
    log_state *state = (log_state *)user_data;
    state->messages++;
    /* Status-returning calls from a log callback must not replace the message of the call being logged. */
    mobilellm_model_info info;
    mobilellm_model_get_info(NULL, &info);
    if (state->uninstall) mobilellm_set_log_callback(NULL, MOBILELLM_LOG_NONE, NULL);
}

static void test_callbacks(mobilellm_model *chat) {
    const test_greedy *g = &reference.greedy[0];
    mobilellm_session *session = session_of(chat, 64), *other = session_of(chat, 64);
    mobilellm_generate_result result;
    int32_t out[64];

    /* A callback that stops at once: one token, chosen right, the prompt kept. */
    int calls = 0;
    CHECK_STATUS(generate(session, g->prompt, (size_t)g->n_prompt, 100, stop_at_once, &calls, out, 64, &result), MOBILELLM_OK,
                 "");
    CHECK(calls == 1 && result.stop_reason == MOBILELLM_STOP_CALLBACK && result.n_tokens == 1 && out[0] == g->continuation[0]);
    CHECK(position_of(session) == g->n_prompt);

    /* Re-entering: the own session is BUSY, another session generates correctly (nested), text functions work, a
     * failing call inside does not leak its message into the outer call's result. */
    REQUIRE_OK(mobilellm_session_reset(session));
    reentry r;
    memset(&r, 0, sizeof r);
    r.own = session;
    r.other = other;
    r.model = chat;
    CHECK_STATUS(generate(session, g->prompt, (size_t)g->n_prompt, g->n_continuation, reenter, &r, out, 64, &result),
                 MOBILELLM_OK, "");
    CHECK(strcmp(mobilellm_last_error(), "") == 0);
    CHECK(r.own_eval == MOBILELLM_ERROR_BUSY && r.nested_generate == MOBILELLM_OK && r.tokenize == MOBILELLM_OK);
    CHECK(r.bad_call == MOBILELLM_ERROR_INVALID_HANDLE);
    CHECK(matches_greedy(out, g->n_continuation, g) && matches_greedy(r.nested, reference.greedy[1].n_continuation,
                                                                      &reference.greedy[1]));

    /* Cancelling its own session from the callback: the generation returns CANCELLED and the session stays usable. */
    REQUIRE_OK(mobilellm_session_reset(session));
    memset(&r, 0, sizeof r);
    r.own = session;
    r.mode = 1;
    CHECK_STATUS(generate(session, g->prompt, (size_t)g->n_prompt, 20, reenter, &r, out, 64, &result),
                 MOBILELLM_ERROR_CANCELLED,
                 "mobilellm_session_generate: cancelled: mobilellm_session_cancel() was called; the session holds what "
                 "was fed before");
    CHECK(r.cancel == MOBILELLM_OK && r.calls == 1);
    CHECK(position_of(session) == g->n_prompt);
    CHECK_STATUS(generate(session, NULL, 0, 4, NULL, NULL, out, 64, &result), MOBILELLM_OK, "");
    CHECK(result.n_tokens == 4 && matches_greedy(out, 4, g));

    /* Freeing its own session from the callback: the generation finishes, then the handle is gone. */
    memset(&r, 0, sizeof r);
    r.own = session;
    r.mode = 2;
    REQUIRE_OK(mobilellm_session_reset(session));
    CHECK_STATUS(generate(session, g->prompt, (size_t)g->n_prompt, 6, reenter, &r, out, 64, &result), MOBILELLM_OK, "");
    CHECK(r.free_own == MOBILELLM_OK && result.n_tokens == 6 && matches_greedy(out, 6, g));
    check_bad_session(session, "not a live mobilellm_session");
    mobilellm_session_free(other);

    /* Progress callbacks: aborting at the first call, and loading another model from inside one. */
    mobilellm_model_params mp;
    mobilellm_model_params_init(&mp);
    int progress_calls = 0;
    mp.progress_callback = abort_load;
    mp.progress_user_data = &progress_calls;
    mobilellm_model *model = NULL;
    FAILS(mobilellm_model_load(r1_path, &mp, &model), MOBILELLM_ERROR_CANCELLED,
          "cancelled: the progress callback returned false; nothing was loaded");
    CHECK(progress_calls == 1 && model == NULL);
    mobilellm_status nested = MOBILELLM_ERROR_INTERNAL;
    mp.progress_callback = load_inside_progress;
    mp.progress_user_data = &nested;
    CHECK_STATUS(mobilellm_model_load(r1_path, &mp, &model), MOBILELLM_OK, "");
    CHECK(nested == MOBILELLM_OK);
    mobilellm_model_free(model);

    /* A log callback that calls into the library: the logged call's own message survives; one that uninstalls
     * itself from inside does not deadlock. */
    log_state state = {0, 0};
    REQUIRE_OK(mobilellm_set_log_callback(reentrant_log, MOBILELLM_LOG_DEBUG, &state));
    FAILS(mobilellm_model_load("/nonexistent/hard-use", NULL, &model), MOBILELLM_ERROR_FILE_NOT_FOUND, "/nonexistent/hard-use");
    CHECK(state.messages >= 1);
    state.uninstall = 1;
    FAILS(mobilellm_model_load("/nonexistent/again", NULL, &model), MOBILELLM_ERROR_FILE_NOT_FOUND, "/nonexistent/again");
    int before = state.messages;
    FAILS(mobilellm_model_load("/nonexistent/silent", NULL, &model), MOBILELLM_ERROR_FILE_NOT_FOUND, "/nonexistent/silent");
    CHECK(state.messages == before);
}

int main(void) {
    test_fixture_path(r1_path, sizeof r1_path, "llama4-r1like-bf16-sharded");
    snprintf(chat_path, sizeof chat_path, "%s/Tests/Fixtures/r1like-chat", MOBILELLM_SOURCE_DIR);
    test_load_reference("llama4-r1like-bf16-sharded", &reference);
    vocab = reference.vocab_size;
    mobilellm_model *chat = load(chat_path);
    mobilellm_model_info info;
    info.struct_size = sizeof info;
    REQUIRE_OK(mobilellm_model_get_info(chat, &info));
    CHECK(info.vocab_size == vocab && info.has_tokenizer);

    test_null_arguments(chat);
    test_bad_handles();
    test_sizes(chat);
    test_token_ids(chat);
    test_context(chat);
    test_cancel(chat);
    test_threads();
    test_shared_session(chat);
    test_model_freed_with_live_sessions();
    test_utf8(chat);
    test_callbacks(chat);
    test_cycles();
    mobilellm_model_free(chat);
    test_free_reference(&reference);
    return test_finish("test_hard_use");
}
