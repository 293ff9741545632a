/* Batched generation through the C ABI (mobilellm_batch_*), checked against the single-sequence path
 * (mobilellm_session_generate on a fresh session, itself checked against transformers by test_golden):
 * greedy batches are token-identical to each prompt alone, seeded samples equal fresh generations seeded seed + i,
 * kept logits equal mobilellm_session_eval's, text pieces concatenate to the result text, cancel and cancel_all end
 * sequences as CANCELLED without disturbing the others, two threads with a batch each give the serial results, and
 * every bad argument gives a status and a message naming the C argument or field. */
#include <pthread.h>
#include <stdint.h>

#include "test_support.h"

#define MAX_GENERATED 64
#define MAX_SEQUENCES 16
#define N_CTX 128

static char fixture[1024];
static char chat_fixture[1024];

/* The prompts (ids below the fixture's vocabulary of 384), of different lengths. */
static const int32_t prompt0[] = {1, 17, 42, 99};
static const int32_t prompt1[] = {5};
static const int32_t prompt2[] = {200, 201, 202, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 300, 301, 302, 303, 304,
                                  305, 306, 307, 308, 309, 310, 311, 312, 313, 314, 315, 316, 317, 318, 319, 320};
static const int32_t prompt3[] = {7, 7, 7, 8, 8};
static const int32_t *const prompts[] = {prompt0, prompt1, prompt2, prompt3};
static const size_t prompt_lengths[] = {sizeof prompt0 / sizeof *prompt0, sizeof prompt1 / sizeof *prompt1,
                                        sizeof prompt2 / sizeof *prompt2, sizeof prompt3 / sizeof *prompt3};
#define N_PROMPTS 4

typedef struct {
    int32_t tokens[MAX_GENERATED];
    int n_tokens;
    int32_t stop_reason;
} outcome;

static mobilellm_model *load(const char *path) { return test_load_model(path); }

static mobilellm_generate_params generate_params(int max_tokens) {
    mobilellm_generate_params gp;
    mobilellm_generate_params_init(&gp);
    gp.max_tokens = max_tokens;
    gp.ignore_eos = true;
    return gp;
}

static mobilellm_sampler_params sampled(uint64_t seed) {
    mobilellm_sampler_params sp;
    mobilellm_sampler_params_init(&sp);
    sp.temperature = 0.9f;
    sp.top_p = 0.95f;
    sp.seed = seed;
    sp.use_seed = true;
    return sp;
}

/* The single-sequence reference: a fresh session of N_CTX positions. */
static outcome alone(mobilellm_model *model, const int32_t *prompt, size_t n, const mobilellm_sampler_params *sp,
                     const mobilellm_generate_params *gp) {
    outcome out;
    memset(&out, 0, sizeof out);
    mobilellm_session_params params;
    mobilellm_session_params_init(&params);
    params.n_ctx = N_CTX;
    mobilellm_session *session = NULL;
    REQUIRE_OK(mobilellm_session_create(model, &params, &session));
    mobilellm_generate_result result;
    memset(&result, 0, sizeof result);
    result.struct_size = sizeof result;
    REQUIRE_OK(mobilellm_session_generate(session, prompt, n, sp, gp, out.tokens, MAX_GENERATED, &result));
    out.n_tokens = result.n_tokens;
    out.stop_reason = result.stop_reason;
    mobilellm_session_free(session);
    return out;
}

static mobilellm_batch *make_batch(mobilellm_model *model, int max_rows, bool stream_text, bool keep_logits) {
    mobilellm_batch_params bp;
    mobilellm_batch_params_init(&bp);
    bp.n_ctx = N_CTX;
    bp.max_rows_per_step = max_rows;
    bp.stream_text = stream_text;
    bp.keep_logits = keep_logits;
    mobilellm_batch *batch = NULL;
    REQUIRE_OK(mobilellm_batch_create(model, &bp, &batch));
    return batch;
}

/* Steps `batch` to the end with room for `capacity` events per call; collects every sequence's streamed tokens and
 * checks them against its result. Returns the number of step calls. */
static int drain(mobilellm_batch *batch, size_t capacity, outcome *outcomes, int n_outcomes) {
    mobilellm_batch_event events[64];
    int32_t streamed[MAX_SEQUENCES][MAX_GENERATED];
    int n_streamed[MAX_SEQUENCES] = {0};
    int calls = 0;
    for (;;) {
        size_t n = 99;
        mobilellm_status status = mobilellm_batch_step(batch, events, capacity, &n);
        CHECK(status == MOBILELLM_OK);
        if (status != MOBILELLM_OK) break;
        calls++;
        CHECK(n <= capacity);
        if (n == 0) break;
        for (size_t i = 0; i < n; i++) {
            const mobilellm_batch_event *e = &events[i];
            CHECK(e->sequence >= 0 && e->sequence < n_outcomes);
            if (e->sequence < 0 || e->sequence >= n_outcomes) continue;
            if (e->type == MOBILELLM_BATCH_EVENT_TOKEN) {
                int k = n_streamed[e->sequence]++;
                if (k < MAX_GENERATED) streamed[e->sequence][k] = e->token;
                CHECK(e->n_tokens == k + 1);
                CHECK(e->stop_reason == 0);
            } else {
                CHECK(e->type == MOBILELLM_BATCH_EVENT_FINISHED);
                CHECK(e->token == -1);
                outcome *o = &outcomes[e->sequence];
                size_t count = 0;
                mobilellm_generate_result result;
                memset(&result, 0, sizeof result);
                result.struct_size = sizeof result;
                CHECK(mobilellm_batch_result(batch, e->sequence, o->tokens, MAX_GENERATED, &count, &result) == MOBILELLM_OK);
                o->n_tokens = (int)count;
                o->stop_reason = result.stop_reason;
                CHECK(result.n_tokens == (int32_t)count && e->n_tokens == (int32_t)count);
                CHECK(e->stop_reason == result.stop_reason && e->n_prompt_tokens == result.n_prompt_tokens);
                /* Streamed tokens are the result's (an EOS that ended the sequence is not streamed). */
                int expected_streamed = o->stop_reason == MOBILELLM_STOP_EOS ? (int)count - 1 : (int)count;
                CHECK(n_streamed[e->sequence] == expected_streamed);
                CHECK(memcmp(streamed[e->sequence], o->tokens, (size_t)expected_streamed * sizeof(int32_t)) == 0);
            }
        }
    }
    size_t active = 99;
    CHECK(mobilellm_batch_active_count(batch, &active) == MOBILELLM_OK && active == 0);
    return calls;
}

static int same(const outcome *a, const outcome *b) {
    return a->n_tokens == b->n_tokens && a->stop_reason == b->stop_reason &&
           memcmp(a->tokens, b->tokens, (size_t)a->n_tokens * sizeof(int32_t)) == 0;
}

/* Greedy: every prompt's tokens equal its own generation, whatever the rows per step and the event capacity. */
static void test_greedy_matches_alone(mobilellm_model *model) {
    mobilellm_generate_params gp = generate_params(20);
    outcome expected[N_PROMPTS];
    for (int i = 0; i < N_PROMPTS; i++) expected[i] = alone(model, prompts[i], prompt_lengths[i], NULL, &gp);
    const int rows[] = {0, 8};
    const size_t capacities[] = {64, 1, 3};
    for (int r = 0; r < 2; r++) {
        for (int c = 0; c < 3; c++) {
            mobilellm_batch *batch = make_batch(model, rows[r], false, false);
            for (int i = 0; i < N_PROMPTS; i++) {
                int32_t id = -1;
                REQUIRE_OK(mobilellm_batch_add(batch, prompts[i], prompt_lengths[i], NULL, &gp, 1, &id));
                CHECK(id == i);
            }
            size_t active = 0;
            CHECK(mobilellm_batch_active_count(batch, &active) == MOBILELLM_OK && active == N_PROMPTS);
            outcome got[N_PROMPTS];
            memset(got, 0, sizeof got);
            drain(batch, capacities[c], got, N_PROMPTS);
            for (int i = 0; i < N_PROMPTS; i++) {
                CHECK(same(&got[i], &expected[i]));
                CHECK(got[i].stop_reason == MOBILELLM_STOP_MAX_TOKENS && got[i].n_tokens == 20);
            }
            /* After the end: no events, results still readable until forgotten. */
            mobilellm_batch_event e;
            size_t n = 9;
            CHECK(mobilellm_batch_step(batch, &e, 1, &n) == MOBILELLM_OK && n == 0);
            size_t count = 0;
            CHECK(mobilellm_batch_result(batch, 0, NULL, 0, &count, NULL) == MOBILELLM_ERROR_BUFFER_TOO_SMALL && count == 20);
            CHECK(mobilellm_batch_forget(batch, 0) == MOBILELLM_OK);
            CHECK_STATUS(mobilellm_batch_result(batch, 0, NULL, 0, &count, NULL), MOBILELLM_ERROR_INVALID_ARGUMENT, "forgotten");
            CHECK_STATUS(mobilellm_batch_forget(batch, 0), MOBILELLM_ERROR_INVALID_ARGUMENT, "'id'");
            REQUIRE_OK(mobilellm_batch_free(batch));
        }
    }
    printf("greedy: %d prompts token-identical to mobilellm_session_generate alone\n", N_PROMPTS);
}

/* Samples: one prompt prefilled once, sample i equals a fresh generation seeded seed + i. */
static void test_samples(mobilellm_model *model) {
    mobilellm_generate_params gp = generate_params(16);
    const uint64_t seed = 1234;
    mobilellm_sampler_params sp = sampled(seed);
    enum { K = 4 };
    outcome expected[K];
    for (int i = 0; i < K; i++) {
        mobilellm_sampler_params each = sampled(seed + (uint64_t)i);
        expected[i] = alone(model, prompt0, prompt_lengths[0], &each, &gp);
    }
    mobilellm_batch *batch = make_batch(model, 0, false, false);
    int32_t first = -1;
    /* Another prompt first, so the samples' ids do not start at 0. */
    REQUIRE_OK(mobilellm_batch_add(batch, prompt2, prompt_lengths[2], &sp, &gp, 1, &first));
    int32_t ids[K] = {-1, -1, -1, -1};
    REQUIRE_OK(mobilellm_batch_add(batch, prompt0, prompt_lengths[0], &sp, &gp, K, ids));
    for (int i = 0; i < K; i++) CHECK(ids[i] == 1 + i);
    outcome got[1 + K];
    memset(got, 0, sizeof got);
    drain(batch, 64, got, 1 + K);
    for (int i = 0; i < K; i++) CHECK(same(&got[ids[i]], &expected[i]));
    outcome other = alone(model, prompt2, prompt_lengths[2], &sp, &gp);
    CHECK(same(&got[first], &other));
    CHECK(!same(&expected[0], &expected[1])); /* the seeds really differ */
    /* Only the first sample fed the prompt. */
    mobilellm_generate_result result;
    memset(&result, 0, sizeof result);
    result.struct_size = sizeof result;
    size_t count = 0;
    CHECK(mobilellm_batch_result(batch, ids[0], NULL, 0, &count, &result) == MOBILELLM_ERROR_BUFFER_TOO_SMALL);
    int32_t tokens[MAX_GENERATED];
    CHECK(mobilellm_batch_result(batch, ids[0], tokens, MAX_GENERATED, &count, &result) == MOBILELLM_OK);
    CHECK(result.n_prompt_tokens == (int32_t)prompt_lengths[0]);
    CHECK(mobilellm_batch_result(batch, ids[1], tokens, MAX_GENERATED, &count, &result) == MOBILELLM_OK);
    CHECK(result.n_prompt_tokens == 0);
    mobilellm_batch_free(batch);
    printf("samples: %d samples equal fresh generations seeded seed + i\n", K);
}

/* Kept logits: a sequence's first-step logits equal mobilellm_session_eval's for its prompt. */
static void test_logits(mobilellm_model *model) {
    mobilellm_model_info info;
    info.struct_size = sizeof info;
    REQUIRE_OK(mobilellm_model_get_info(model, &info));
    size_t vocab = (size_t)info.vocab_size;
    float *expected = (float *)calloc(vocab, sizeof(float));
    float *got = (float *)calloc(vocab, sizeof(float));
    mobilellm_session_params params;
    mobilellm_session_params_init(&params);
    params.n_ctx = N_CTX;
    mobilellm_session *session = NULL;
    REQUIRE_OK(mobilellm_session_create(model, &params, &session));
    REQUIRE_OK(mobilellm_session_eval(session, prompt3, prompt_lengths[3], MOBILELLM_LOGITS_LAST, expected, vocab));

    mobilellm_generate_params gp = generate_params(4);
    mobilellm_batch *batch = make_batch(model, 0, false, true);
    int32_t ids[2];
    REQUIRE_OK(mobilellm_batch_add(batch, prompt0, prompt_lengths[0], NULL, &gp, 1, &ids[0]));
    REQUIRE_OK(mobilellm_batch_add(batch, prompt3, prompt_lengths[3], NULL, &gp, 2, ids));
    size_t count = 0;
    CHECK_STATUS(mobilellm_batch_logits(batch, ids[0], got, vocab, &count), MOBILELLM_ERROR_INVALID_ARGUMENT,
                 "sampled no token");
    mobilellm_batch_event events[16];
    size_t n = 0;
    REQUIRE_OK(mobilellm_batch_step(batch, events, 16, &n));
    CHECK(n == 3); /* one token each */
    for (int k = 0; k < 2; k++) {
        CHECK(mobilellm_batch_logits(batch, ids[k], got, vocab, &count) == MOBILELLM_OK && count == vocab);
        CHECK(memcmp(got, expected, vocab * sizeof(float)) == 0); /* a fork samples from its prompt's logits */
    }
    CHECK_STATUS(mobilellm_batch_logits(batch, ids[0], got, 2, &count), MOBILELLM_ERROR_BUFFER_TOO_SMALL, "logits");
    CHECK(count == vocab);
    /* The next step's logits: those of prompt + the token sampled. */
    int32_t next[16];
    memcpy(next, prompt3, prompt_lengths[3] * sizeof(int32_t));
    next[prompt_lengths[3]] = events[1].sequence == ids[0] ? events[1].token : events[2].token;
    REQUIRE_OK(mobilellm_session_reset(session));
    REQUIRE_OK(mobilellm_session_eval(session, next, prompt_lengths[3] + 1, MOBILELLM_LOGITS_LAST, expected, vocab));
    REQUIRE_OK(mobilellm_batch_step(batch, events, 16, &n));
    CHECK(mobilellm_batch_logits(batch, ids[0], got, vocab, &count) == MOBILELLM_OK);
    CHECK(memcmp(got, expected, vocab * sizeof(float)) == 0);
    mobilellm_batch_free(batch);

    batch = make_batch(model, 0, false, false);
    CHECK_STATUS(mobilellm_batch_logits(batch, 0, got, vocab, &count), MOBILELLM_ERROR_INVALID_ARGUMENT, "keep_logits");
    mobilellm_batch_free(batch);
    mobilellm_session_free(session);
    free(expected);
    free(got);
    printf("logits: kept per-sequence logits equal mobilellm_session_eval\n");
}

/* A sequence on an existing session: the same tokens, and the session keeps the prompt and all but the last. */
static void test_add_session(mobilellm_model *model) {
    mobilellm_generate_params gp = generate_params(12);
    outcome expected = alone(model, prompt2, prompt_lengths[2], NULL, &gp);
    mobilellm_session_params params;
    mobilellm_session_params_init(&params);
    params.n_ctx = N_CTX;
    mobilellm_session *session = NULL;
    REQUIRE_OK(mobilellm_session_create(model, &params, &session));
    mobilellm_batch *batch = make_batch(model, 0, false, false);
    int32_t ids[2];
    REQUIRE_OK(mobilellm_batch_add_session(batch, session, prompt2, prompt_lengths[2], NULL, &gp, &ids[0]));
    CHECK_STATUS(mobilellm_batch_add_session(batch, session, prompt1, 1, NULL, &gp, &ids[1]),
                 MOBILELLM_ERROR_INVALID_ARGUMENT, "session");
    REQUIRE_OK(mobilellm_batch_add(batch, prompt1, 1, NULL, &gp, 1, &ids[1]));
    outcome got[2];
    memset(got, 0, sizeof got);
    drain(batch, 64, got, 2);
    CHECK(same(&got[ids[0]], &expected));
    int32_t position = 0;
    REQUIRE_OK(mobilellm_session_position(session, &position));
    CHECK(position == (int32_t)prompt_lengths[2] + expected.n_tokens - 1);
    /* Continue from the session (n_prompt 0) in a batch: as mobilellm_session_generate continues. */
    mobilellm_session *twin = NULL;
    REQUIRE_OK(mobilellm_session_create(model, &params, &twin));
    outcome first_twin;
    mobilellm_generate_result result;
    memset(&result, 0, sizeof result);
    result.struct_size = sizeof result;
    REQUIRE_OK(mobilellm_session_generate(twin, prompt2, prompt_lengths[2], NULL, &gp, first_twin.tokens, MAX_GENERATED, &result));
    REQUIRE_OK(mobilellm_session_generate(twin, &first_twin.tokens[result.n_tokens - 1], 1, NULL, &gp, expected.tokens,
                                          MAX_GENERATED, &result));
    expected.n_tokens = result.n_tokens;
    int32_t last = got[ids[0]].tokens[got[ids[0]].n_tokens - 1];
    int32_t id = -1;
    REQUIRE_OK(mobilellm_batch_add_session(batch, session, &last, 1, NULL, &gp, &id));
    CHECK(id == 2);
    outcome more[3];
    memset(more, 0, sizeof more);
    drain(batch, 64, more, 3);
    CHECK(same(&more[2], &expected));
    /* A session of another model is refused. */
    mobilellm_model *other = load(fixture);
    mobilellm_session *foreign = NULL;
    REQUIRE_OK(mobilellm_session_create(other, &params, &foreign));
    CHECK_STATUS(mobilellm_batch_add_session(batch, foreign, prompt1, 1, NULL, &gp, &id), MOBILELLM_ERROR_INVALID_ARGUMENT,
                 "another model");
    mobilellm_session_free(foreign);
    mobilellm_model_free(other);
    mobilellm_batch_free(batch);
    mobilellm_session_free(twin);
    mobilellm_session_free(session);
    printf("add_session: same tokens as mobilellm_session_generate, session keeps its tokens\n");
}

/* Cancel one: it ends CANCELLED early, the others are unchanged. cancel_all ends every one; later adds run. */
static void test_cancel(mobilellm_model *model) {
    mobilellm_generate_params gp = generate_params(16);
    outcome expected[N_PROMPTS];
    for (int i = 0; i < N_PROMPTS; i++) expected[i] = alone(model, prompts[i], prompt_lengths[i], NULL, &gp);
    mobilellm_batch *batch = make_batch(model, 0, false, false);
    int32_t id;
    for (int i = 0; i < N_PROMPTS; i++) REQUIRE_OK(mobilellm_batch_add(batch, prompts[i], prompt_lengths[i], NULL, &gp, 1, &id));
    mobilellm_batch_event events[16];
    size_t n = 0;
    REQUIRE_OK(mobilellm_batch_step(batch, events, 16, &n));
    REQUIRE_OK(mobilellm_batch_step(batch, events, 16, &n));
    REQUIRE_OK(mobilellm_batch_cancel(batch, 1));
    outcome got[N_PROMPTS];
    memset(got, 0, sizeof got);
    /* drain checks the streamed tokens of whole runs only; here the first two steps were taken above. */
    for (;;) {
        REQUIRE_OK(mobilellm_batch_step(batch, events, 16, &n));
        if (n == 0) break;
        for (size_t i = 0; i < n; i++) {
            if (events[i].type != MOBILELLM_BATCH_EVENT_FINISHED) continue;
            size_t count = 0;
            outcome *o = &got[events[i].sequence];
            REQUIRE_OK(mobilellm_batch_result(batch, events[i].sequence, o->tokens, MAX_GENERATED, &count, NULL));
            o->n_tokens = (int)count;
            o->stop_reason = events[i].stop_reason;
        }
    }
    CHECK(got[1].stop_reason == MOBILELLM_STOP_CANCELLED && got[1].n_tokens == 2);
    CHECK(memcmp(got[1].tokens, expected[1].tokens, 2 * sizeof(int32_t)) == 0);
    for (int i = 0; i < N_PROMPTS; i++) {
        if (i != 1) CHECK(same(&got[i], &expected[i]));
    }
    REQUIRE_OK(mobilellm_batch_cancel(batch, 1)); /* finished: ignored */

    /* cancel_all before any step: every sequence ends CANCELLED with nothing generated. */
    int32_t ids[3];
    REQUIRE_OK(mobilellm_batch_add(batch, prompt0, prompt_lengths[0], NULL, &gp, 3, ids));
    REQUIRE_OK(mobilellm_batch_cancel_all(batch));
    REQUIRE_OK(mobilellm_batch_add(batch, prompt3, prompt_lengths[3], NULL, &gp, 1, &id)); /* not affected */
    memset(got, 0, sizeof got);
    outcome all[N_PROMPTS + 4];
    memset(all, 0, sizeof all);
    drain(batch, 64, all, N_PROMPTS + 4);
    for (int k = 0; k < 3; k++) CHECK(all[ids[k]].stop_reason == MOBILELLM_STOP_CANCELLED && all[ids[k]].n_tokens == 0);
    CHECK(same(&all[id], &expected[3]));
    mobilellm_batch_free(batch);
    printf("cancel: one and all\n");
}

typedef struct {
    mobilellm_model *model;
    int offset;
    outcome results[N_PROMPTS];
    mobilellm_status status;
} batch_work;

/* A batch of every prompt, sampled with seed 100 + offset. */
static void *run_batch(void *argument) {
    batch_work *w = (batch_work *)argument;
    mobilellm_generate_params gp = generate_params(16);
    mobilellm_sampler_params sp = sampled(100 + (uint64_t)w->offset);
    mobilellm_batch *batch = NULL;
    w->status = mobilellm_batch_create(w->model, NULL, &batch);
    for (int i = 0; i < N_PROMPTS && w->status == MOBILELLM_OK; i++) {
        int p = (i + w->offset) % N_PROMPTS;
        int32_t id;
        w->status = mobilellm_batch_add(batch, prompts[p], prompt_lengths[p], &sp, &gp, 1, &id);
    }
    mobilellm_batch_event events[2 * N_PROMPTS];
    while (w->status == MOBILELLM_OK) {
        size_t n = 0;
        w->status = mobilellm_batch_step(batch, events, 2 * N_PROMPTS, &n);
        if (w->status != MOBILELLM_OK || n == 0) break;
        for (size_t i = 0; i < n && w->status == MOBILELLM_OK; i++) {
            if (events[i].type != MOBILELLM_BATCH_EVENT_FINISHED) continue;
            outcome *o = &w->results[events[i].sequence];
            size_t count = 0;
            w->status = mobilellm_batch_result(batch, events[i].sequence, o->tokens, MAX_GENERATED, &count, NULL);
            o->n_tokens = (int)count;
            o->stop_reason = events[i].stop_reason;
        }
    }
    mobilellm_batch_free(batch);
    return NULL;
}

static void test_two_threads(mobilellm_model *model) {
    batch_work serial[2], parallel[2];
    memset(serial, 0, sizeof serial);
    memset(parallel, 0, sizeof parallel);
    for (int t = 0; t < 2; t++) {
        serial[t].model = parallel[t].model = model;
        serial[t].offset = parallel[t].offset = t;
        run_batch(&serial[t]);
        CHECK(serial[t].status == MOBILELLM_OK);
    }
    pthread_t threads[2];
    for (int t = 0; t < 2; t++) pthread_create(&threads[t], NULL, run_batch, &parallel[t]);
    for (int t = 0; t < 2; t++) pthread_join(threads[t], NULL);
    for (int t = 0; t < 2; t++) {
        CHECK(parallel[t].status == MOBILELLM_OK);
        for (int i = 0; i < N_PROMPTS; i++) CHECK(same(&parallel[t].results[i], &serial[t].results[i]));
    }
    printf("threads: two batches on two threads give the serial results\n");
}

/* Cancel from another thread while the batch steps. */
typedef struct {
    mobilellm_batch *batch;
    volatile int started;
} canceller;

static void *cancel_soon(void *argument) {
    canceller *c = (canceller *)argument;
    while (!c->started) {
    }
    CHECK(mobilellm_batch_cancel_all(c->batch) == MOBILELLM_OK);
    return NULL;
}

static void test_cancel_from_thread(mobilellm_model *model) {
    mobilellm_generate_params gp = generate_params(1000);
    mobilellm_batch *batch = make_batch(model, 0, false, false);
    int32_t ids[4];
    REQUIRE_OK(mobilellm_batch_add(batch, prompt0, prompt_lengths[0], NULL, &gp, 4, ids));
    canceller c = {batch, 0};
    pthread_t thread;
    pthread_create(&thread, NULL, cancel_soon, &c);
    mobilellm_batch_event events[8];
    int cancelled = 0, steps = 0;
    for (;;) {
        size_t n = 0;
        REQUIRE_OK(mobilellm_batch_step(batch, events, 8, &n));
        c.started = 1;
        if (n == 0) break;
        steps++;
        for (size_t i = 0; i < n; i++) {
            if (events[i].type == MOBILELLM_BATCH_EVENT_FINISHED) cancelled += events[i].stop_reason == MOBILELLM_STOP_CANCELLED;
        }
    }
    pthread_join(thread, NULL);
    CHECK(cancelled == 4);
    CHECK(steps < N_CTX); /* stopped long before the context filled */
    mobilellm_batch_free(batch);
}

/* Text: events carry pieces that concatenate to the result text, equal to mobilellm_session_generate's pieces;
 * a stop string ends a sequence as it ends a single generation. */
typedef struct {
    char text[4096];
    size_t length;
} text_buffer;

static bool collect_piece(int32_t token, const char *piece, size_t length, void *user_data) {
    (void)token;
    text_buffer *b = (text_buffer *)user_data;
    if (piece && b->length + length < sizeof b->text) {
        memcpy(b->text + b->length, piece, length);
        b->length += length;
        b->text[b->length] = 0;
    }
    return true;
}

static void test_batch_text(void) {
    mobilellm_model *model = load(chat_fixture);
    const char *stop[] = {"e"};
    for (int with_stop = 0; with_stop < 2; with_stop++) {
        mobilellm_generate_params gp = generate_params(24);
        if (with_stop) {
            gp.stop_strings = stop;
            gp.n_stop_strings = 1;
        }
        text_buffer expected[2];
        outcome expected_tokens[2];
        for (int i = 0; i < 2; i++) {
            memset(&expected[i], 0, sizeof expected[i]);
            mobilellm_generate_params with_callback = gp;
            with_callback.callback = collect_piece;
            with_callback.user_data = &expected[i];
            expected_tokens[i] = alone(model, prompts[i * 2], prompt_lengths[i * 2], NULL, &with_callback);
        }
        mobilellm_batch *batch = make_batch(model, 0, !with_stop, false); /* stop strings stream text by themselves */
        int32_t id;
        for (int i = 0; i < 2; i++) REQUIRE_OK(mobilellm_batch_add(batch, prompts[i * 2], prompt_lengths[i * 2], NULL, &gp, 1, &id));
        text_buffer streamed[2];
        memset(streamed, 0, sizeof streamed);
        mobilellm_batch_event events[8];
        size_t n = 0;
        int finished = 0;
        do {
            REQUIRE_OK(mobilellm_batch_step(batch, events, 8, &n));
            for (size_t i = 0; i < n; i++) {
                CHECK(events[i].text != NULL && strlen(events[i].text) == events[i].text_length);
                collect_piece(events[i].token, events[i].text, events[i].text_length, &streamed[events[i].sequence]);
                if (events[i].type != MOBILELLM_BATCH_EVENT_FINISHED) continue;
                finished++;
                outcome o;
                size_t count = 0;
                mobilellm_generate_result result;
                result.struct_size = sizeof result;
                REQUIRE_OK(mobilellm_batch_result(batch, events[i].sequence, o.tokens, MAX_GENERATED, &count, &result));
                o.n_tokens = (int)count;
                o.stop_reason = result.stop_reason;
                CHECK(same(&o, &expected_tokens[events[i].sequence]));
            }
        } while (n > 0);
        CHECK(finished == 2);
        for (int i = 0; i < 2; i++) {
            char text[4096];
            size_t length = 0;
            REQUIRE_OK(mobilellm_batch_result_text(batch, i, text, sizeof text, &length));
            CHECK(length == streamed[i].length && memcmp(text, streamed[i].text, length) == 0);
            CHECK(length == expected[i].length && memcmp(text, expected[i].text, length) == 0);
            if (with_stop) CHECK(expected_tokens[i].stop_reason != MOBILELLM_STOP_STRING || strchr(text, 'e') == NULL);
        }
        size_t length = 0;
        CHECK_STATUS(mobilellm_batch_result_text(batch, 0, NULL, 0, &length), MOBILELLM_ERROR_BUFFER_TOO_SMALL, "buffer");
        mobilellm_batch_free(batch);
    }
    /* Without stream_text, events carry no text and results have "". */
    mobilellm_generate_params gp = generate_params(4);
    mobilellm_batch *batch = make_batch(model, 0, false, false);
    int32_t id;
    REQUIRE_OK(mobilellm_batch_add(batch, prompt0, prompt_lengths[0], NULL, &gp, 1, &id));
    mobilellm_batch_event events[4];
    size_t n = 0;
    do {
        REQUIRE_OK(mobilellm_batch_step(batch, events, 4, &n));
        for (size_t i = 0; i < n; i++) CHECK(events[i].text == NULL && events[i].text_length == 0);
    } while (n > 0);
    char text[8];
    size_t length = 9;
    CHECK(mobilellm_batch_result_text(batch, id, text, sizeof text, &length) == MOBILELLM_OK && length == 0);
    mobilellm_batch_free(batch);
    mobilellm_model_free(model);
    printf("text: pieces concatenate to the result text, equal to mobilellm_session_generate's\n");
}

static bool never(int32_t token, const char *piece, size_t length, void *user_data) {
    (void)token, (void)piece, (void)length, (void)user_data;
    return true;
}

static void test_errors(mobilellm_model *model) {
    mobilellm_batch *batch = NULL;
    mobilellm_batch_params bp;
    mobilellm_batch_params_init(&bp);
    CHECK(bp.struct_size == sizeof bp && bp.max_rows_per_step == 0 && bp.n_ctx == 0 && !bp.stream_text && !bp.keep_logits);
    mobilellm_batch_params_init(NULL);
    CHECK_STATUS(mobilellm_batch_create(NULL, NULL, &batch), MOBILELLM_ERROR_INVALID_HANDLE, "'model'");
    CHECK_STATUS(mobilellm_batch_create(model, NULL, NULL), MOBILELLM_ERROR_INVALID_ARGUMENT, "out_batch");
    bp.max_rows_per_step = 300;
    CHECK_STATUS(mobilellm_batch_create(model, &bp, &batch), MOBILELLM_ERROR_INVALID_ARGUMENT, "params->max_rows_per_step");
    bp.max_rows_per_step = -1;
    CHECK_STATUS(mobilellm_batch_create(model, &bp, &batch), MOBILELLM_ERROR_INVALID_ARGUMENT, "params->max_rows_per_step");
    bp.max_rows_per_step = 0;
    bp.n_ctx = -5;
    CHECK_STATUS(mobilellm_batch_create(model, &bp, &batch), MOBILELLM_ERROR_INVALID_ARGUMENT, "params->n_ctx");
    bp.n_ctx = 0;
    bp.kv_cache_type = 9;
    CHECK_STATUS(mobilellm_batch_create(model, &bp, &batch), MOBILELLM_ERROR_INVALID_ARGUMENT, "params->kv_cache_type");
    bp.kv_cache_type = 0;
    bp.struct_size = 4;
    CHECK_STATUS(mobilellm_batch_create(model, &bp, &batch), MOBILELLM_ERROR_INVALID_ARGUMENT, "params->struct_size");
    CHECK(batch == NULL);

    /* Handles: NULL, made up, freed, of another kind. */
    int32_t id = -1;
    size_t n = 0;
    mobilellm_batch_event event;
    mobilellm_batch *fake = (mobilellm_batch *)(uintptr_t)0x12345;
    CHECK_STATUS(mobilellm_batch_add(NULL, prompt0, 4, NULL, NULL, 1, &id), MOBILELLM_ERROR_INVALID_HANDLE, "'batch'");
    CHECK_STATUS(mobilellm_batch_step(fake, &event, 1, &n), MOBILELLM_ERROR_INVALID_HANDLE, "not a live mobilellm_batch");
    CHECK_STATUS(mobilellm_batch_cancel(fake, 0), MOBILELLM_ERROR_INVALID_HANDLE, "'batch'");
    CHECK_STATUS(mobilellm_batch_cancel_all(fake), MOBILELLM_ERROR_INVALID_HANDLE, "'batch'");
    CHECK_STATUS(mobilellm_batch_free(fake), MOBILELLM_ERROR_INVALID_HANDLE, "'batch'");
    CHECK_STATUS(mobilellm_batch_step((mobilellm_batch *)model, &event, 1, &n), MOBILELLM_ERROR_INVALID_HANDLE, "'batch'");
    CHECK(mobilellm_batch_free(NULL) == MOBILELLM_OK);
    REQUIRE_OK(mobilellm_batch_create(model, NULL, &batch));
    mobilellm_batch *freed = batch;
    REQUIRE_OK(mobilellm_batch_free(freed));
    CHECK_STATUS(mobilellm_batch_active_count(freed, &n), MOBILELLM_ERROR_INVALID_HANDLE, "'batch'");
    CHECK_STATUS(mobilellm_batch_free(freed), MOBILELLM_ERROR_INVALID_HANDLE, "'batch'");

    bp.struct_size = sizeof bp;
    bp.n_ctx = 16;
    REQUIRE_OK(mobilellm_batch_create(model, &bp, &batch));
    mobilellm_generate_params gp = generate_params(4);
    const int32_t bad[] = {1, 999999};
    int32_t long_prompt[20] = {0};
    CHECK_STATUS(mobilellm_batch_add(batch, prompt0, 4, NULL, &gp, 0, &id), MOBILELLM_ERROR_INVALID_ARGUMENT, "n_samples");
    CHECK_STATUS(mobilellm_batch_add(batch, prompt0, 4, NULL, &gp, 1000000, &id), MOBILELLM_ERROR_INVALID_ARGUMENT, "n_samples");
    CHECK_STATUS(mobilellm_batch_add(batch, prompt0, 4, NULL, &gp, 1, NULL), MOBILELLM_ERROR_INVALID_ARGUMENT, "out_ids");
    CHECK_STATUS(mobilellm_batch_add(batch, NULL, 4, NULL, &gp, 1, &id), MOBILELLM_ERROR_INVALID_ARGUMENT, "'prompt'");
    CHECK_STATUS(mobilellm_batch_add(batch, NULL, 0, NULL, &gp, 1, &id), MOBILELLM_ERROR_INVALID_ARGUMENT, "prompt");
    CHECK_STATUS(mobilellm_batch_add(batch, bad, 2, NULL, &gp, 1, &id), MOBILELLM_ERROR_INVALID_ARGUMENT, "[1]");
    CHECK_STATUS(mobilellm_batch_add(batch, long_prompt, 20, NULL, &gp, 1, &id), MOBILELLM_ERROR_CONTEXT_FULL, NULL);
    CHECK_STATUS(mobilellm_batch_add(batch, prompt0, (size_t)-1, NULL, &gp, 1, &id), MOBILELLM_ERROR_INVALID_ARGUMENT, "n_prompt");
    mobilellm_generate_params bad_gp = gp;
    bad_gp.max_tokens = -1;
    CHECK_STATUS(mobilellm_batch_add(batch, prompt0, 4, NULL, &bad_gp, 1, &id), MOBILELLM_ERROR_INVALID_ARGUMENT, "params->max_tokens");
    bad_gp = gp;
    bad_gp.callback = never;
    CHECK_STATUS(mobilellm_batch_add(batch, prompt0, 4, NULL, &bad_gp, 1, &id), MOBILELLM_ERROR_INVALID_ARGUMENT, "params->callback");
    bad_gp = gp;
    bad_gp.struct_size = 8;
    CHECK_STATUS(mobilellm_batch_add(batch, prompt0, 4, NULL, &bad_gp, 1, &id), MOBILELLM_ERROR_INVALID_ARGUMENT, "params->struct_size");
    bad_gp = gp;
    bad_gp.n_stop_token_ids = 2;
    CHECK_STATUS(mobilellm_batch_add(batch, prompt0, 4, NULL, &bad_gp, 1, &id), MOBILELLM_ERROR_INVALID_ARGUMENT, "params->stop_token_ids");
    mobilellm_sampler_params sp;
    mobilellm_sampler_params_init(&sp);
    sp.temperature = -1;
    CHECK_STATUS(mobilellm_batch_add(batch, prompt0, 4, &sp, &gp, 1, &id), MOBILELLM_ERROR_INVALID_ARGUMENT, "sampler_params->temperature");
    /* Stop strings need a tokenizer (this fixture has none), as in mobilellm_session_generate. */
    const char *stop[] = {"x"};
    bad_gp = gp;
    bad_gp.stop_strings = stop;
    bad_gp.n_stop_strings = 1;
    CHECK_STATUS(mobilellm_batch_add(batch, prompt0, 4, NULL, &bad_gp, 1, &id), MOBILELLM_ERROR_NO_TOKENIZER, NULL);
    CHECK(mobilellm_batch_active_count(batch, &n) == MOBILELLM_OK && n == 0); /* nothing was added */
    CHECK_STATUS(mobilellm_batch_active_count(batch, NULL), MOBILELLM_ERROR_INVALID_ARGUMENT, "out_count");

    CHECK_STATUS(mobilellm_batch_step(batch, &event, 0, &n), MOBILELLM_ERROR_INVALID_ARGUMENT, "capacity");
    CHECK_STATUS(mobilellm_batch_step(batch, NULL, 4, &n), MOBILELLM_ERROR_INVALID_ARGUMENT, "events");
    CHECK_STATUS(mobilellm_batch_step(batch, &event, 1, NULL), MOBILELLM_ERROR_INVALID_ARGUMENT, "out_count");
    CHECK_STATUS(mobilellm_batch_cancel(batch, 0), MOBILELLM_ERROR_INVALID_ARGUMENT, "never issued");
    CHECK_STATUS(mobilellm_batch_cancel(batch, -1), MOBILELLM_ERROR_INVALID_ARGUMENT, "'id'");

    REQUIRE_OK(mobilellm_batch_add(batch, prompt0, 4, NULL, &gp, 1, &id));
    size_t count = 0;
    int32_t tokens[8];
    CHECK_STATUS(mobilellm_batch_result(batch, id, tokens, 8, &count, NULL), MOBILELLM_ERROR_INVALID_ARGUMENT, "has not finished");
    CHECK_STATUS(mobilellm_batch_result(batch, 7, tokens, 8, &count, NULL), MOBILELLM_ERROR_INVALID_ARGUMENT, "never issued");
    CHECK_STATUS(mobilellm_batch_result(batch, id, tokens, 8, NULL, NULL), MOBILELLM_ERROR_INVALID_ARGUMENT, "out_count");
    char text[4];
    CHECK_STATUS(mobilellm_batch_result_text(batch, id, text, 4, NULL), MOBILELLM_ERROR_INVALID_ARGUMENT, "out_length");
    CHECK_STATUS(mobilellm_batch_forget(batch, id), MOBILELLM_ERROR_INVALID_ARGUMENT, "has not finished");
    float logits[4];
    CHECK_STATUS(mobilellm_batch_logits(batch, id, logits, 4, NULL), MOBILELLM_ERROR_INVALID_ARGUMENT, "out_count");
    while (mobilellm_batch_step(batch, &event, 1, &n) == MOBILELLM_OK && n > 0) {
    }
    mobilellm_generate_result result;
    memset(&result, 0, sizeof result);
    CHECK_STATUS(mobilellm_batch_result(batch, id, tokens, 8, &count, &result), MOBILELLM_ERROR_INVALID_ARGUMENT, "result->struct_size");
    result.struct_size = sizeof result;
    CHECK(mobilellm_batch_result(batch, id, tokens, 8, &count, &result) == MOBILELLM_OK && count == 4);
    CHECK(strcmp(mobilellm_last_error(), "") == 0);

    /* Text streaming without a tokenizer. */
    bp.stream_text = true;
    mobilellm_batch *texts = NULL;
    REQUIRE_OK(mobilellm_batch_create(model, &bp, &texts));
    CHECK_STATUS(mobilellm_batch_add(texts, prompt0, 4, NULL, &gp, 1, &id), MOBILELLM_ERROR_NO_TOKENIZER, NULL);
    mobilellm_batch_free(texts);
    mobilellm_batch_free(batch);

    /* A batch keeps its model alive. */
    mobilellm_model *own = load(fixture);
    REQUIRE_OK(mobilellm_batch_create(own, NULL, &batch));
    REQUIRE_OK(mobilellm_model_free(own));
    REQUIRE_OK(mobilellm_batch_add(batch, prompt0, 4, NULL, &gp, 1, &id));
    while (mobilellm_batch_step(batch, &event, 1, &n) == MOBILELLM_OK && n > 0) {
    }
    CHECK(mobilellm_batch_result(batch, id, tokens, 8, &count, NULL) == MOBILELLM_OK && count == 4);
    mobilellm_batch_free(batch);
    printf("errors: every bad argument named\n");
}

int main(void) {
    test_fixture_path(fixture, sizeof fixture, "llama4-r1like-bf16-sharded");
    test_fixture_path(chat_fixture, sizeof chat_fixture, "r1like-chat");
    mobilellm_model *model = load(fixture);
    test_greedy_matches_alone(model);
    test_samples(model);
    test_logits(model);
    test_add_session(model);
    test_cancel(model);
    test_cancel_from_thread(model);
    test_two_threads(model);
    test_batch_text();
    test_errors(model);
    mobilellm_model_free(model);
    return test_finish("test_batch");
}
