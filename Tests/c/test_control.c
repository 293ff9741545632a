/* Output control through the C ABI (the appended mobilellm_generate_params fields), on the r1like-chat fixture
 * (MobileLLM-R1 architecture with random weights and the Llama-3 tokenizer):
 *  - logprobs: each piece's logprob equals out_logprobs' entry, the chosen token's logprob equals a double-precision
 *    log-softmax of the logits mobilellm_session_eval gives for the same prefix (within 1e-4), top-n is ordered and
 *    its first entry is the greedy token;
 *  - logit bias: banning the greedy first token changes it; a bias by piece reaches the same token as by id;
 *  - reasoning: a prompt ending inside "<think>" starts in reasoning, the budget ends the thought after exactly N
 *    tokens (reasoning_budget_index == N), the pieces split into reasoning / marker / answer channels whose texts
 *    concatenate to the whole text;
 *  - a program built against the 64-byte struct never has the appended fields read;
 *  - a batch gives the session's tokens, logprobs and channel texts for the same options, with event pieces;
 *  - every bad field is named (and a grammar error is MOBILELLM_ERROR_GRAMMAR with line and column). */
#include <math.h>
#include <stdint.h>

#include "test_support.h"

#define MAX_TOKENS 24
#define N_CTX 256

static char chat_fixture[1024];

typedef struct {
    char text[4096], reasoning[4096], answer[4096], markers[256];
    int n_pieces, n_token_pieces, logprob_pieces;
    mobilellm_token_logprob logprobs[MAX_TOKENS + 1];
} collected;

static void append(char *buffer, size_t capacity, const char *text, size_t length) {
    size_t used = strlen(buffer);
    if (used + length + 1 > capacity) return;
    memcpy(buffer + used, text, length);
    buffer[used + length] = 0;
}

static bool on_piece(const mobilellm_piece *piece, void *user_data) {
    collected *c = user_data;
    c->n_pieces++;
    CHECK(piece->text != NULL && strlen(piece->text) == piece->text_length);
    append(c->text, sizeof c->text, piece->text, piece->text_length);
    if (piece->channel == MOBILELLM_CHANNEL_REASONING) append(c->reasoning, sizeof c->reasoning, piece->text, piece->text_length);
    if (piece->channel == MOBILELLM_CHANNEL_ANSWER) append(c->answer, sizeof c->answer, piece->text, piece->text_length);
    if (piece->channel == MOBILELLM_CHANNEL_MARKER) append(c->markers, sizeof c->markers, piece->text, piece->text_length);
    if (piece->token >= 0 && piece->logprob != NULL && c->logprob_pieces <= MAX_TOKENS) {
        CHECK(piece->logprob->token == piece->token);
        c->logprobs[c->logprob_pieces++] = *piece->logprob;
    }
    return true;
}

static mobilellm_model *load(const char *path) { return test_load_model(path); }

static mobilellm_session *session_of(mobilellm_model *model) {
    mobilellm_session_params sp;
    mobilellm_session_params_init(&sp);
    sp.n_ctx = N_CTX;
    mobilellm_session *session = NULL;
    REQUIRE_OK(mobilellm_session_create(model, &sp, &session));
    return session;
}

static size_t prompt_of(mobilellm_session *session, const char *text, int32_t *ids, size_t capacity) {
    size_t n = 0;
    REQUIRE_OK(mobilellm_session_tokenize_prompt(session, text, strlen(text), ids, capacity, &n));
    return n;
}

/* Greedy generation with the given params; fills `c` through the piece callback. */
static int generate(mobilellm_model *model, const char *prompt, mobilellm_generate_params *gp, int32_t *tokens,
                    collected *c, mobilellm_generate_result *result) {
    mobilellm_session *session = session_of(model);
    int32_t ids[64];
    size_t n = prompt_of(session, prompt, ids, 64);
    memset(c, 0, sizeof *c);
    gp->piece_callback = on_piece;
    gp->user_data = c;
    result->struct_size = sizeof *result;
    REQUIRE_OK(mobilellm_session_generate(session, ids, n, NULL, gp, tokens, MAX_TOKENS, result));
    mobilellm_session_free(session);
    return result->n_tokens;
}

static void test_logprobs(mobilellm_model *model, int32_t vocab) {
    mobilellm_generate_params gp;
    mobilellm_generate_params_init(&gp);
    gp.max_tokens = 8;
    gp.ignore_eos = true;
    gp.n_logprobs = 5;
    mobilellm_token_logprob out[MAX_TOKENS];
    gp.out_logprobs = out;
    gp.out_logprobs_capacity = MAX_TOKENS;
    int32_t tokens[MAX_TOKENS];
    collected c;
    mobilellm_generate_result result;
    int n = generate(model, "The answer is", &gp, tokens, &c, &result);
    CHECK(n == 8);
    CHECK(c.logprob_pieces == n);
    /* The reference: the session's own logits for each prefix, log-softmaxed in double precision. */
    mobilellm_session *session = session_of(model);
    int32_t ids[64 + MAX_TOKENS];
    size_t n_prompt = prompt_of(session, "The answer is", ids, 64);
    float *logits = malloc(sizeof(float) * (size_t)vocab);
    for (int i = 0; i < n; i++) {
        CHECK(out[i].token == tokens[i]);
        CHECK(memcmp(&out[i], &c.logprobs[i], sizeof out[i]) == 0);
        REQUIRE_OK(mobilellm_session_eval(session, i == 0 ? ids : &tokens[i - 1], i == 0 ? n_prompt : 1, MOBILELLM_LOGITS_LAST,
                                          logits, (size_t)vocab));
        double maximum = -INFINITY, total = 0;
        int argmax = 0;
        for (int32_t t = 0; t < vocab; t++) {
            if (logits[t] > maximum) {
                maximum = logits[t];
                argmax = t;
            }
        }
        for (int32_t t = 0; t < vocab; t++) total += exp((double)logits[t] - maximum);
        double expected = (double)logits[tokens[i]] - maximum - log(total);
        CHECK(fabs(expected - out[i].logprob) < 1e-4);
        CHECK(tokens[i] == argmax);
        CHECK(out[i].n_top == 5 && out[i].top_tokens[0] == tokens[i]);
        for (int k = 1; k < out[i].n_top; k++) CHECK(out[i].top_logprobs[k] <= out[i].top_logprobs[k - 1]);
    }
    free(logits);
    mobilellm_session_free(session);

    /* A program built against the 64-byte struct (stop strings, no output control): the rest is never read. */
    unsigned char raw[sizeof(mobilellm_generate_params)];
    memset(raw, 0xAB, sizeof raw);
    mobilellm_generate_params_init_sized((mobilellm_generate_params *)raw, 64);
    mobilellm_generate_params old;
    memcpy(&old, raw, sizeof old);
    CHECK(old.struct_size == 64);
    old.max_tokens = 8;
    old.ignore_eos = true;
    int32_t again[MAX_TOKENS];
    mobilellm_session *fresh = session_of(model);
    n_prompt = prompt_of(fresh, "The answer is", ids, 64);
    mobilellm_generate_result r2 = {.struct_size = sizeof r2};
    REQUIRE_OK(mobilellm_session_generate(fresh, ids, n_prompt, NULL, &old, again, MAX_TOKENS, &r2));
    CHECK(r2.n_tokens == 8 && memcmp(again, tokens, sizeof(int32_t) * 8) == 0);
    mobilellm_session_free(fresh);
    printf("logprobs: equal a double log-softmax of the session's logits; top-n ordered; old layout ignored\n");
}

static void test_bias(mobilellm_model *model) {
    mobilellm_generate_params gp;
    mobilellm_generate_params_init(&gp);
    gp.max_tokens = 1;
    gp.ignore_eos = true;
    int32_t tokens[MAX_TOKENS], banned[MAX_TOKENS];
    collected c;
    mobilellm_generate_result result;
    generate(model, "The answer is", &gp, tokens, &c, &result);
    char first[256];
    strcpy(first, c.text);
    float minus_infinity = -INFINITY;
    gp.logit_bias_tokens = tokens;
    gp.logit_bias_values = &minus_infinity;
    gp.n_logit_bias = 1;
    generate(model, "The answer is", &gp, banned, &c, &result);
    CHECK(banned[0] != tokens[0]);
    /* The same ban by the token's text reaches the same choice (when the text is the token's whole piece). */
    mobilellm_generate_params by_piece;
    mobilellm_generate_params_init(&by_piece);
    by_piece.max_tokens = 1;
    by_piece.ignore_eos = true;
    const char *pieces[] = {first};
    by_piece.logit_bias_pieces = pieces;
    by_piece.logit_bias_piece_values = &minus_infinity;
    by_piece.n_logit_bias_pieces = 1;
    int32_t by_text[MAX_TOKENS];
    generate(model, "The answer is", &by_piece, by_text, &c, &result);
    CHECK(by_text[0] != tokens[0]);
    printf("logit bias: a ban by id or by text moves the arg-max\n");
}

static void test_reasoning(mobilellm_model *model) {
    for (int budget = 0; budget <= 5; budget += 5) {
        mobilellm_generate_params gp;
        mobilellm_generate_params_init(&gp);
        gp.max_tokens = MAX_TOKENS;
        gp.ignore_eos = true;
        gp.reasoning = true;
        gp.reasoning_budget = budget;
        gp.reasoning_closing = "</think>\n\n";
        int32_t tokens[MAX_TOKENS];
        collected c;
        mobilellm_generate_result result;
        int n = generate(model, "Question: 2+2?\n<think>\n", &gp, tokens, &c, &result);
        CHECK(n == MAX_TOKENS);
        CHECK(result.reasoning_budget_index == budget);
        CHECK(result.n_reasoning_tokens == budget);
        CHECK(strcmp(c.markers, "</think>") == 0);
        char joined[8192] = "";
        append(joined, sizeof joined, c.reasoning, strlen(c.reasoning));
        append(joined, sizeof joined, "</think>", 8);
        append(joined, sizeof joined, c.answer, strlen(c.answer));
        CHECK(strcmp(joined, c.text) == 0);
        CHECK(strstr(c.answer, "</think>") == NULL);
        if (budget == 0) CHECK(c.reasoning[0] == 0);
    }
    printf("reasoning: budget ends the thought after exactly N tokens; channels concatenate to the text\n");
}

static void test_batch(mobilellm_model *model) {
    mobilellm_generate_params gp;
    mobilellm_generate_params_init(&gp);
    gp.max_tokens = 12;
    gp.ignore_eos = true;
    gp.n_logprobs = 2;
    gp.reasoning = true;
    gp.reasoning_budget = 3;
    int32_t tokens[MAX_TOKENS];
    collected alone;
    mobilellm_generate_result result;
    int n = generate(model, "Question: 3+4?\n<think>\n", &gp, tokens, &alone, &result);
    gp.piece_callback = NULL;
    gp.user_data = NULL;

    mobilellm_batch_params bp;
    mobilellm_batch_params_init(&bp);
    bp.n_ctx = N_CTX;
    mobilellm_batch *batch = NULL;
    REQUIRE_OK(mobilellm_batch_create(model, &bp, &batch));
    mobilellm_session *scratch = session_of(model);
    int32_t ids[64];
    size_t n_prompt = prompt_of(scratch, "Question: 3+4?\n<think>\n", ids, 64);
    mobilellm_session_free(scratch);
    int32_t id = -1;
    REQUIRE_OK(mobilellm_batch_add(batch, ids, n_prompt, NULL, &gp, 1, &id));
    mobilellm_batch_event events[4];
    size_t count = 0;
    char streamed[4096] = "", reasoning[4096] = "";
    int logprob_pieces = 0;
    while (mobilellm_batch_step(batch, events, 4, &count) == MOBILELLM_OK && count > 0) {
        for (size_t i = 0; i < count; i++) {
            const mobilellm_piece *pieces = NULL;
            size_t n_pieces = 0;
            REQUIRE_OK(mobilellm_batch_event_pieces(batch, i, &pieces, &n_pieces));
            for (size_t k = 0; k < n_pieces; k++) {
                append(streamed, sizeof streamed, pieces[k].text, pieces[k].text_length);
                if (pieces[k].channel == MOBILELLM_CHANNEL_REASONING) append(reasoning, sizeof reasoning, pieces[k].text, pieces[k].text_length);
                if (pieces[k].logprob) logprob_pieces++;
            }
        }
        CHECK_STATUS(mobilellm_batch_event_pieces(batch, count, &(const mobilellm_piece *){NULL}, &(size_t){0}),
                     MOBILELLM_ERROR_INVALID_ARGUMENT, "index");
    }
    int32_t batch_tokens[MAX_TOKENS];
    mobilellm_generate_result batch_result = {.struct_size = sizeof batch_result};
    REQUIRE_OK(mobilellm_batch_result(batch, id, batch_tokens, MAX_TOKENS, &count, &batch_result));
    CHECK((int)count == n && memcmp(batch_tokens, tokens, sizeof(int32_t) * (size_t)n) == 0);
    CHECK(batch_result.n_reasoning_tokens == result.n_reasoning_tokens);
    CHECK(batch_result.reasoning_budget_index == 3);
    mobilellm_token_logprob logprobs[MAX_TOKENS];
    REQUIRE_OK(mobilellm_batch_result_logprobs(batch, id, logprobs, MAX_TOKENS, &count));
    CHECK((int)count == n && logprob_pieces == n);
    for (int i = 0; i < n && i < (int)count; i++) CHECK(memcmp(&logprobs[i], &alone.logprobs[i], sizeof logprobs[i]) == 0);
    char text[4096];
    size_t length = 0;
    REQUIRE_OK(mobilellm_batch_result_channel_text(batch, id, MOBILELLM_CHANNEL_REASONING, text, sizeof text, &length));
    CHECK(strcmp(text, alone.reasoning) == 0 && strcmp(reasoning, alone.reasoning) == 0);
    REQUIRE_OK(mobilellm_batch_result_channel_text(batch, id, MOBILELLM_CHANNEL_ANSWER, text, sizeof text, &length));
    CHECK(strcmp(text, alone.answer) == 0);
    CHECK(strcmp(streamed, alone.text) == 0);
    CHECK_STATUS(mobilellm_batch_result_channel_text(batch, id, 7, text, sizeof text, &length), MOBILELLM_ERROR_INVALID_ARGUMENT,
                 "channel");
    mobilellm_generate_params with_callback = gp;
    with_callback.piece_callback = on_piece;
    CHECK_STATUS(mobilellm_batch_add(batch, ids, n_prompt, NULL, &with_callback, 1, &id), MOBILELLM_ERROR_INVALID_ARGUMENT,
                 "params->piece_callback");
    mobilellm_batch_free(batch);
    printf("batch: tokens, logprobs and channel texts equal the session's; event pieces stream them\n");
}

static void test_errors(mobilellm_model *model) {
    mobilellm_session *session = session_of(model);
    int32_t ids[64], tokens[MAX_TOKENS];
    size_t n = prompt_of(session, "Hi", ids, 64);
    mobilellm_generate_params gp;
    float bias = 1;
    int32_t outside = 1 << 30;

    mobilellm_generate_params_init(&gp);
    gp.grammar = "root ::= \"a\"";
    gp.json_schema = "{}";
    CHECK_STATUS(mobilellm_session_generate(session, ids, n, NULL, &gp, tokens, MAX_TOKENS, NULL),
                 MOBILELLM_ERROR_INVALID_ARGUMENT, "params->json_schema");
    mobilellm_generate_params_init(&gp);
    gp.grammar = "root ::= \"a\" (";
    CHECK_STATUS(mobilellm_session_generate(session, ids, n, NULL, &gp, tokens, MAX_TOKENS, NULL), MOBILELLM_ERROR_GRAMMAR,
                 "line 1");
    mobilellm_generate_params_init(&gp);
    gp.json_schema = "{\"type\": \"object\", \"patternProperties\": {}}";
    CHECK_STATUS(mobilellm_session_generate(session, ids, n, NULL, &gp, tokens, MAX_TOKENS, NULL), MOBILELLM_ERROR_GRAMMAR,
                 "patternProperties");
    mobilellm_generate_params_init(&gp);
    gp.n_logprobs = 21;
    CHECK_STATUS(mobilellm_session_generate(session, ids, n, NULL, &gp, tokens, MAX_TOKENS, NULL),
                 MOBILELLM_ERROR_INVALID_ARGUMENT, "params->n_logprobs");
    mobilellm_generate_params_init(&gp);
    gp.n_logit_bias = 1;
    CHECK_STATUS(mobilellm_session_generate(session, ids, n, NULL, &gp, tokens, MAX_TOKENS, NULL),
                 MOBILELLM_ERROR_INVALID_ARGUMENT, "params->logit_bias_tokens");
    gp.logit_bias_tokens = &outside;
    gp.logit_bias_values = &bias;
    CHECK_STATUS(mobilellm_session_generate(session, ids, n, NULL, &gp, tokens, MAX_TOKENS, NULL),
                 MOBILELLM_ERROR_INVALID_ARGUMENT, "params->logit_bias_tokens");
    mobilellm_generate_params_init(&gp);
    const char *unknown[] = {"no token has this text \xe2\x9c\x93"};
    gp.logit_bias_pieces = unknown;
    gp.logit_bias_piece_values = &bias;
    gp.n_logit_bias_pieces = 1;
    CHECK_STATUS(mobilellm_session_generate(session, ids, n, NULL, &gp, tokens, MAX_TOKENS, NULL),
                 MOBILELLM_ERROR_INVALID_ARGUMENT, "params->logit_bias_pieces");
    mobilellm_generate_params_init(&gp);
    gp.reasoning_budget = 4;
    CHECK_STATUS(mobilellm_session_generate(session, ids, n, NULL, &gp, tokens, MAX_TOKENS, NULL),
                 MOBILELLM_ERROR_INVALID_ARGUMENT, "params->reasoning");
    gp.reasoning = true;
    gp.reasoning_closing = "no end marker here";
    CHECK_STATUS(mobilellm_session_generate(session, ids, n, NULL, &gp, tokens, MAX_TOKENS, NULL),
                 MOBILELLM_ERROR_INVALID_ARGUMENT, "params->reasoning_closing");
    gp.reasoning_closing = NULL;
    gp.reasoning_budget = -2;
    CHECK_STATUS(mobilellm_session_generate(session, ids, n, NULL, &gp, tokens, MAX_TOKENS, NULL),
                 MOBILELLM_ERROR_INVALID_ARGUMENT, "params->reasoning_budget");
    mobilellm_generate_params_init(&gp);
    gp.n_logprobs = 0;
    gp.out_logprobs_capacity = 4;
    CHECK_STATUS(mobilellm_session_generate(session, ids, n, NULL, &gp, tokens, MAX_TOKENS, NULL),
                 MOBILELLM_ERROR_INVALID_ARGUMENT, "params->out_logprobs");
    /* The session is untouched by every refused call. */
    int32_t position = -1;
    REQUIRE_OK(mobilellm_session_position(session, &position));
    CHECK(position == 0);
    mobilellm_session_free(session);
    printf("errors: every bad field named\n");
}

int main(void) {
    test_fixture_path(chat_fixture, sizeof chat_fixture, "r1like-chat");
    mobilellm_model *model = load(chat_fixture);
    mobilellm_model_info info = {.struct_size = sizeof info};
    REQUIRE_OK(mobilellm_model_get_info(model, &info));
    test_logprobs(model, info.vocab_size);
    test_bias(model);
    test_reasoning(model);
    test_batch(model);
    test_errors(model);
    mobilellm_model_free(model);
    return test_finish("test_control");
}
