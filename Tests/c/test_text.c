/* The text functions against Hugging Face tokenizers and transformers (Tests/Fixtures/r1like-chat/reference_text.json,
 * written by scripts/make_abi_text_fixture.py): tokenize, detokenize, token pieces, the streaming detokenizer, chat
 * templates, text pieces during generation, and their error paths. */
#include "test_support.h"

static mobilellm_model *model;

static int json_bool(test_json *j) {
    json_space(j);
    int value = strncmp(j->p, "true", 4) == 0;
    json_skip(j);
    return value;
}

static void check_encoding(test_json *j) {
    char key[64];
    char *text = NULL;
    int add_special = 0, parse_special = 0, n_ids = 0;
    int *ids = NULL;
    json_space(j);
    j->p++;
    while (json_key(j, key, sizeof key)) {
        if (strcmp(key, "text") == 0) text = json_string(j);
        else if (strcmp(key, "add_special") == 0) add_special = json_bool(j);
        else if (strcmp(key, "parse_special") == 0) parse_special = json_bool(j);
        else if (strcmp(key, "ids") == 0) ids = json_ints(j, &n_ids);
        else json_skip(j);
    }
    json_space(j);
    j->p++;
    int32_t tokens[256];
    size_t count = 0;
    REQUIRE_OK(mobilellm_tokenize(model, text, strlen(text), add_special, parse_special, tokens, 256, &count));
    int same = (int)count == n_ids;
    for (int i = 0; same && i < n_ids; i++) same = tokens[i] == ids[i];
    CHECK(same);
    if (!same) fprintf(stderr, "  tokenize \"%s\" add_special %d parse_special %d differs\n", text, add_special, parse_special);
    /* Size query first, then the call that fits. */
    size_t needed = 0;
    mobilellm_status status = mobilellm_tokenize(model, text, strlen(text), add_special, parse_special, NULL, 0, &needed);
    CHECK(needed == count && (count == 0 ? status == MOBILELLM_OK : status == MOBILELLM_ERROR_BUFFER_TOO_SMALL));
    free(text);
    free(ids);
}

static void check_decoding(test_json *j) {
    char key[64];
    char *text = NULL;
    int skip = 0, n_ids = 0;
    int *ids = NULL;
    json_space(j);
    j->p++;
    while (json_key(j, key, sizeof key)) {
        if (strcmp(key, "text") == 0) text = json_string(j);
        else if (strcmp(key, "skip_special") == 0) skip = json_bool(j);
        else if (strcmp(key, "ids") == 0) ids = json_ints(j, &n_ids);
        else json_skip(j);
    }
    json_space(j);
    j->p++;
    int32_t tokens[256];
    for (int i = 0; i < n_ids; i++) tokens[i] = ids[i];
    char out[1024];
    size_t length = 0;
    REQUIRE_OK(mobilellm_detokenize(model, tokens, (size_t)n_ids, skip, out, sizeof out, &length));
    CHECK(length == strlen(text) && strcmp(out, text) == 0);

    /* Streaming: only whole characters per piece; the pieces add up to the same text. */
    mobilellm_detokenizer *detokenizer = NULL;
    REQUIRE_OK(mobilellm_detokenizer_create(model, skip, &detokenizer));
    char joined[1024] = {0};
    size_t used = 0;
    for (int i = 0; i < n_ids; i++) {
        const char *piece = NULL;
        size_t n = 0;
        REQUIRE_OK(mobilellm_detokenizer_push(detokenizer, tokens[i], &piece, &n));
        CHECK(test_valid_utf8(piece, n) && piece[n] == 0);
        memcpy(joined + used, piece, n);
        used += n;
    }
    const char *rest = NULL;
    size_t n = 0;
    REQUIRE_OK(mobilellm_detokenizer_flush(detokenizer, &rest, &n));
    memcpy(joined + used, rest, n);
    used += n;
    joined[used] = 0;
    CHECK(strcmp(joined, text) == 0);
    mobilellm_detokenizer_free(detokenizer);
    free(text);
    free(ids);
}

static void check_chat(test_json *j) {
    char key[64];
    char *expected = NULL;
    int add_generation_prompt = 0;
    char variables[512] = "{}";
    mobilellm_chat_message messages[8];
    char *owned[16];
    int n_messages = 0, n_owned = 0;
    json_space(j);
    j->p++;
    while (json_key(j, key, sizeof key)) {
        if (strcmp(key, "text") == 0) expected = json_string(j);
        else if (strcmp(key, "add_generation_prompt") == 0) add_generation_prompt = json_bool(j);
        else if (strcmp(key, "variables") == 0) {
            json_space(j);
            const char *start = j->p;
            json_skip(j);
            snprintf(variables, sizeof variables, "%.*s", (int)(j->p - start), start);
        } else if (strcmp(key, "messages") == 0) {
            json_space(j);
            j->p++;
            for (;;) {
                json_space(j);
                if (*j->p == ']') {
                    j->p++;
                    break;
                }
                if (*j->p == ',') {
                    j->p++;
                    continue;
                }
                char field[64];
                j->p++;
                while (json_key(j, field, sizeof field)) {
                    char *value = json_string(j);
                    owned[n_owned++] = value;
                    if (strcmp(field, "role") == 0) messages[n_messages].role = value;
                    else messages[n_messages].content = value;
                }
                json_space(j);
                j->p++;
                n_messages++;
            }
        } else json_skip(j);
    }
    json_space(j);
    j->p++;
    mobilellm_chat_params params;
    mobilellm_chat_params_init(&params);
    params.add_generation_prompt = add_generation_prompt;
    params.variables_json = variables;
    char out[2048];
    size_t length = 0;
    REQUIRE_OK(mobilellm_apply_chat_template(model, messages, (size_t)n_messages, &params, out, sizeof out, &length));
    CHECK(strcmp(out, expected) == 0);
    if (strcmp(out, expected) != 0) fprintf(stderr, "  chat: got [%s]\n  expected [%s]\n", out, expected);
    for (int i = 0; i < n_owned; i++) free(owned[i]);
    free(expected);
}

static void check_reference(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/Tests/Fixtures/r1like-chat/reference_text.json", MOBILELLM_SOURCE_DIR);
    char *text = test_read_file(path);
    test_json j = {text};
    char key[64];
    int checked = 0;
    json_space(&j);
    j.p++;
    while (json_key(&j, key, sizeof key)) {
        void (*each)(test_json *) = strcmp(key, "encodings") == 0 ? check_encoding
                                  : strcmp(key, "decodings") == 0 ? check_decoding
                                  : strcmp(key, "chats") == 0     ? check_chat
                                                                  : NULL;
        if (!each) {
            json_skip(&j);
            continue;
        }
        json_space(&j);
        j.p++;
        for (;;) {
            json_space(&j);
            if (*j.p == ']') {
                j.p++;
                break;
            }
            if (*j.p == ',') {
                j.p++;
                continue;
            }
            each(&j);
            checked++;
        }
    }
    printf("reference_text.json: %d cases\n", checked);
    CHECK(checked >= 30);
    free(text);
}

typedef struct {
    char text[8192];
    size_t length;
    int calls, valid;
} collected;

static bool collect(int32_t token, const char *piece, size_t length, void *user_data) {
    (void)token;
    collected *c = (collected *)user_data;
    c->calls++;
    if (piece && test_valid_utf8(piece, length) && piece[length] == 0) c->valid++;
    if (piece && c->length + length < sizeof c->text) {
        memcpy(c->text + c->length, piece, length);
        c->length += length;
        c->text[c->length] = 0;
    }
    return true;
}

static void check_generation_text(void) {
    /* Chat prompt -> tokens -> generation with text pieces that add up to the detokenized tokens. */
    mobilellm_chat_message messages[1] = {{"user", "Hello world!"}};
    char prompt[512];
    size_t length = 0;
    REQUIRE_OK(mobilellm_apply_chat_template(model, messages, 1, NULL, prompt, sizeof prompt, &length));
    int32_t ids[256];
    size_t n = 0;
    REQUIRE_OK(mobilellm_tokenize(model, prompt, length, false, true, ids, 256, &n));
    CHECK(ids[0] == 0); /* the template writes BOS; parse_special turns it into id 0 */
    mobilellm_session *session = NULL;
    REQUIRE_OK(mobilellm_session_create(model, NULL, &session));
    collected c;
    memset(&c, 0, sizeof c);
    mobilellm_generate_params params;
    mobilellm_generate_params_init(&params);
    params.max_tokens = 40;
    params.ignore_eos = true;
    params.callback = collect;
    params.user_data = &c;
    int32_t out[40];
    mobilellm_generate_result result;
    result.struct_size = sizeof result;
    REQUIRE_OK(mobilellm_session_generate(session, ids, n, NULL, &params, out, 40, &result));
    CHECK(c.calls == 40 && c.valid == 40);
    char full[8192];
    REQUIRE_OK(mobilellm_detokenize(model, out, 40, false, full, sizeof full, &length));
    /* The pieces are the full text except for bytes of a character still incomplete at the end. */
    CHECK(c.length <= length && length - c.length < 4 && memcmp(full, c.text, c.length) == 0);
    mobilellm_session_free(session);
}

static void check_errors(void) {
    int32_t ids[16];
    size_t n = 0;
    char out[64];
    CHECK_STATUS(mobilellm_tokenize(model, "ab\xff", 3, true, false, ids, 16, &n), MOBILELLM_ERROR_INVALID_UTF8, "byte offset 2");
    CHECK_STATUS(mobilellm_tokenize(model, NULL, 3, true, false, ids, 16, &n), MOBILELLM_ERROR_INVALID_ARGUMENT, "'text'");
    CHECK_STATUS(mobilellm_tokenize(model, NULL, 0, false, false, ids, 16, &n), MOBILELLM_OK, "");
    CHECK(n == 0);
    CHECK_STATUS(mobilellm_tokenize(model, "Hello world!", 12, true, false, ids, 2, &n), MOBILELLM_ERROR_BUFFER_TOO_SMALL, "needs 7");
    CHECK(n == 7);
    CHECK_STATUS(mobilellm_tokenize(model, "x", 1, true, false, ids, 16, NULL), MOBILELLM_ERROR_INVALID_ARGUMENT, "out_count");
    ids[0] = 5;
    ids[1] = 384;
    CHECK_STATUS(mobilellm_detokenize(model, ids, 2, false, out, sizeof out, &n), MOBILELLM_ERROR_INVALID_ARGUMENT, "tokens[1]");
    ids[1] = 300;
    CHECK_STATUS(mobilellm_detokenize(model, ids, 2, false, out, 3, &n), MOBILELLM_ERROR_BUFFER_TOO_SMALL, "");
    CHECK(n >= 5);
    CHECK_STATUS(mobilellm_detokenize(model, ids, 2, false, out, 6, &n), MOBILELLM_OK, "");
    CHECK(n == strlen(out) && strcmp(out + n - 4, " fox") == 0);
    CHECK_STATUS(mobilellm_token_to_piece(model, 300, out, sizeof out, &n), MOBILELLM_OK, "");
    CHECK(n == 4 && strcmp(out, " fox") == 0);
    CHECK_STATUS(mobilellm_token_to_piece(model, -1, out, sizeof out, &n), MOBILELLM_ERROR_INVALID_ARGUMENT, "-1");
    CHECK_STATUS(mobilellm_token_to_piece(model, 300, out, 4, &n), MOBILELLM_ERROR_BUFFER_TOO_SMALL, "needs 5");
    bool special = false;
    CHECK_STATUS(mobilellm_token_is_special(model, 2, &special), MOBILELLM_OK, "");
    CHECK(special);
    CHECK_STATUS(mobilellm_token_is_special(model, 300, &special), MOBILELLM_OK, "");
    CHECK(!special);
    CHECK_STATUS(mobilellm_token_is_special(model, 999, &special), MOBILELLM_ERROR_INVALID_ARGUMENT, "999");
    CHECK_STATUS(mobilellm_model_special_token_ids(model, ids, 16, &n), MOBILELLM_OK, "");
    CHECK(n == 4 && ids[0] == 0 && ids[3] == 3);

    mobilellm_detokenizer *detokenizer = NULL;
    const char *piece = NULL;
    REQUIRE_OK(mobilellm_detokenizer_create(model, true, &detokenizer));
    CHECK_STATUS(mobilellm_detokenizer_push(detokenizer, 5000, &piece, &n), MOBILELLM_ERROR_INVALID_ARGUMENT, "5000");
    CHECK_STATUS(mobilellm_detokenizer_push(detokenizer, 5, NULL, &n), MOBILELLM_ERROR_INVALID_ARGUMENT, "out_piece");
    CHECK_STATUS(mobilellm_detokenizer_push(detokenizer, 0, &piece, &n), MOBILELLM_OK, "");
    CHECK(n == 0 && strcmp(piece, "") == 0); /* special, skipped */
    CHECK_STATUS(mobilellm_detokenizer_free(detokenizer), MOBILELLM_OK, "");
    CHECK_STATUS(mobilellm_detokenizer_push(detokenizer, 5, &piece, &n), MOBILELLM_ERROR_INVALID_HANDLE, "mobilellm_detokenizer");

    mobilellm_chat_message messages[2] = {{"user", "hi"}, {NULL, "x"}};
    mobilellm_chat_params params;
    mobilellm_chat_params_init(&params);
    CHECK(params.add_generation_prompt && params.variables_json == NULL && params.struct_size == sizeof params);
    CHECK_STATUS(mobilellm_apply_chat_template(model, messages, 2, &params, out, sizeof out, &n), MOBILELLM_ERROR_INVALID_ARGUMENT,
                 "messages[1].role");
    messages[1].role = "assistant";
    messages[1].content = "\xc0\xaf";
    CHECK_STATUS(mobilellm_apply_chat_template(model, messages, 2, &params, out, sizeof out, &n), MOBILELLM_ERROR_INVALID_UTF8,
                 "messages[1].content");
    params.variables_json = "{\"enable_thinking\": fals}";
    CHECK_STATUS(mobilellm_apply_chat_template(model, messages, 1, &params, out, sizeof out, &n), MOBILELLM_ERROR_INVALID_ARGUMENT,
                 "variables_json");
    params.variables_json = "[1]";
    CHECK_STATUS(mobilellm_apply_chat_template(model, messages, 1, &params, out, sizeof out, &n), MOBILELLM_ERROR_INVALID_ARGUMENT,
                 "JSON object");
    mobilellm_chat_params_init(&params);
    params.template_override = "{{ raise_exception('no system role here') }}";
    CHECK_STATUS(mobilellm_apply_chat_template(model, messages, 1, &params, out, sizeof out, &n), MOBILELLM_ERROR_TEMPLATE,
                 "no system role here");
    params.template_override = "{% for %}";
    CHECK_STATUS(mobilellm_apply_chat_template(model, messages, 1, &params, out, sizeof out, &n), MOBILELLM_ERROR_TEMPLATE, "line 1");
    params.template_override = "{% for m in messages %}[{{ m.role }}:{{ m.content }}]{% endfor %}";
    params.messages_json = "[{\"role\": \"tool\", \"content\": \"42\", \"name\": \"calc\"}]";
    CHECK_STATUS(mobilellm_apply_chat_template(model, NULL, 0, &params, out, sizeof out, &n), MOBILELLM_OK, "");
    CHECK(strcmp(out, "[tool:42]") == 0);
    params.messages_json = "{\"role\": 1}";
    CHECK_STATUS(mobilellm_apply_chat_template(model, NULL, 0, &params, out, sizeof out, &n), MOBILELLM_ERROR_INVALID_ARGUMENT,
                 "messages_json");
    CHECK_STATUS(mobilellm_apply_chat_template(model, messages, 1, NULL, out, 4, &n), MOBILELLM_ERROR_BUFFER_TOO_SMALL, "");

    char text[1024];
    CHECK_STATUS(mobilellm_model_get_metadata(model, "eos_token", text, sizeof text, &n), MOBILELLM_OK, "");
    CHECK(strcmp(text, "<|eot_id|>") == 0);
    CHECK_STATUS(mobilellm_model_get_metadata(model, "chat_template", text, sizeof text, &n), MOBILELLM_OK, "");
    CHECK(strncmp(text, "{{ bos_token }}", 15) == 0);
    mobilellm_model_info info;
    info.struct_size = sizeof info;
    REQUIRE_OK(mobilellm_model_get_info(model, &info));
    CHECK(info.has_tokenizer && info.has_chat_template);

    /* A model without tokenizer files: every text call says so; the built-in template still renders. */
    char plain_path[1024];
    test_fixture_path(plain_path, sizeof plain_path, "llama-f16");
    mobilellm_model *plain = NULL;
    REQUIRE_OK(mobilellm_model_load(plain_path, NULL, &plain));
    REQUIRE_OK(mobilellm_model_get_info(plain, &info));
    CHECK(!info.has_tokenizer && !info.has_chat_template);
    CHECK_STATUS(mobilellm_tokenize(plain, "hi", 2, true, false, ids, 16, &n), MOBILELLM_ERROR_NO_TOKENIZER, "tokenizer.json");
    CHECK_STATUS(mobilellm_detokenize(plain, ids, 0, false, out, sizeof out, &n), MOBILELLM_ERROR_NO_TOKENIZER, "tokenizer");
    CHECK_STATUS(mobilellm_detokenizer_create(plain, false, &detokenizer), MOBILELLM_ERROR_NO_TOKENIZER, "tokenizer");
    /* (The built-in template needs bos_token, which a model without tokenizer_config.json lacks: pass it.) */
    mobilellm_chat_params_init(&params);
    params.variables_json = "{\"bos_token\": \"<s>\"}";
    CHECK_STATUS(mobilellm_apply_chat_template(plain, messages, 1, &params, text, sizeof text, &n), MOBILELLM_OK, "");
    CHECK(strstr(text, "<|start_header_id|>user<|end_header_id|>") != NULL);
    mobilellm_model_free(plain);
}

int main(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/Tests/Fixtures/r1like-chat", MOBILELLM_SOURCE_DIR);
    REQUIRE_OK(mobilellm_model_load(path, NULL, &model));
    check_reference();
    check_generation_text();
    check_errors();
    mobilellm_model_free(model);
    return test_finish("test_text");
}
