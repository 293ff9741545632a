/* Helpers shared by the C and C++ tests: checks that count failures, a reader for the golden fixtures
 * (Tests/Fixtures/<model>/reference.json, written by scripts/make_fixtures.py from transformers) and paths.
 * Header-only and C99/C++17 clean. */
#ifndef MOBILELLM_TEST_SUPPORT_H
#define MOBILELLM_TEST_SUPPORT_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mobilellm.h"

#ifndef MOBILELLM_SOURCE_DIR
#error "define MOBILELLM_SOURCE_DIR (the repository root)"
#endif

/* Whether `message` contains `fragment`; a NULL fragment matches anything. */
static inline int test_contains(const char *message, const char *fragment) {
    return fragment == NULL || strstr(message, fragment) != NULL;
}

/* `text`, or "(null)". */
static inline const char *test_text(const char *text) { return text ? text : "(null)"; }

static int test_failures = 0;
static int test_checks = 0;

#define CHECK(condition)                                                                                   \
    do {                                                                                                   \
        test_checks++;                                                                                     \
        if (!(condition)) {                                                                                \
            test_failures++;                                                                               \
            fprintf(stderr, "%s:%d: check failed: %s (last error: %s)\n", __FILE__, __LINE__, #condition, \
                    mobilellm_last_error());                                                               \
        }                                                                                                  \
    } while (0)

/* Checks that `call` returns `expected` and that the thread's message contains `fragment` (NULL: anything). */
#define CHECK_STATUS(call, expected, fragment)                                                             \
    do {                                                                                                   \
        mobilellm_status status_ = (call);                                                                 \
        const char *message_ = test_text(mobilellm_last_error());                                          \
        test_checks++;                                                                                     \
        if (status_ != (expected)) {                                                                       \
            test_failures++;                                                                               \
            fprintf(stderr, "%s:%d: %s returned %s, expected %s (message: %s)\n", __FILE__, __LINE__,      \
                    #call, mobilellm_status_name(status_), mobilellm_status_name(expected), message_);     \
        } else if (!test_contains(message_, (fragment))) {                                                 \
            test_failures++;                                                                               \
            fprintf(stderr, "%s:%d: %s: message \"%s\" lacks \"%s\"\n", __FILE__, __LINE__, #call,         \
                    message_, test_text((const char *)(fragment)));                                     \
        }                                                                                                  \
    } while (0)

#define REQUIRE_OK(call)                                                                                   \
    do {                                                                                                   \
        mobilellm_status status_ = (call);                                                                 \
        if (status_ != MOBILELLM_OK) {                                                                     \
            fprintf(stderr, "%s:%d: %s failed: %s: %s\n", __FILE__, __LINE__, #call,                       \
                    mobilellm_status_name(status_), mobilellm_last_error());                               \
            exit(1);                                                                                       \
        }                                                                                                  \
    } while (0)

/* Loads the model at `path` on one compute thread (the tests compare runs; one thread keeps them cheap), or exits. */
static inline mobilellm_model *test_load_model(const char *path) {
    mobilellm_model_params mp;
    mobilellm_model_params_init(&mp);
    mp.n_threads = 1;
    mobilellm_model *model = NULL;
    REQUIRE_OK(mobilellm_model_load(path, &mp, &model));
    return model;
}

static inline int test_finish(const char *name) {
    printf("%s: %d checks, %d failed\n", name, test_checks, test_failures);
    return test_failures == 0 ? 0 : 1;
}

/* The golden fixtures of the engine tests (scripts/make_fixtures.py). */
static const char *const test_fixture_names[] = {"llama4-r1like-bf16-sharded", "llama4-nope-f32", "llama-f16",
                                                 "llama-bf16-untied", "qwen2-f32-tied", "qwen2-bf16-untied",
                                                 "qwen3-f32-untied", "qwen3-bf16-tied"};
#define TEST_FIXTURE_COUNT 8

static inline void test_fixture_path(char *out, size_t capacity, const char *name) {
    snprintf(out, capacity, "%s/Tests/Fixtures/%s", MOBILELLM_SOURCE_DIR, name);
}

/* ---- A minimal reader for reference.json ---- */

typedef struct {
    int n_tokens;
    int *tokens;
    float *logits; /* n_tokens × vocab_size */
} test_sequence;

typedef struct {
    int n_prompt, n_continuation;
    int *prompt, *continuation;
} test_greedy;

typedef struct {
    int vocab_size;
    int n_sequences, n_greedy;
    test_sequence sequences[16];
    test_greedy greedy[16];
} test_reference;

typedef struct {
    const char *p;
} test_json;

static inline void json_space(test_json *j) {
    while (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t') j->p++;
}

/* Skips any JSON value. */
static inline void json_skip(test_json *j) {
    json_space(j);
    if (*j->p == '{' || *j->p == '[') {
        int depth = 0;
        int in_string = 0;
        do {
            char c = *j->p;
            if (in_string) {
                if (c == '\\') j->p++;
                else if (c == '"') in_string = 0;
            } else if (c == '"') in_string = 1;
            else if (c == '{' || c == '[') depth++;
            else if (c == '}' || c == ']') depth--;
            j->p++;
        } while (depth > 0 && *j->p);
    } else if (*j->p == '"') {
        j->p++;
        while (*j->p && *j->p != '"') j->p += (*j->p == '\\') ? 2 : 1;
        j->p++;
    } else {
        while (*j->p && !strchr(",}] \n\r\t", *j->p)) j->p++;
    }
}

/* Reads an array of numbers into a growing buffer; returns the count. */
static inline int json_numbers(test_json *j, double **out) {
    int count = 0, capacity = 64;
    double *values = (double *)malloc(sizeof(double) * (size_t)capacity);
    json_space(j);
    j->p++; /* [ */
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
        if (count == capacity) {
            capacity *= 2;
            values = (double *)realloc(values, sizeof(double) * (size_t)capacity);
        }
        char *end = NULL;
        values[count++] = strtod(j->p, &end);
        j->p = end;
    }
    *out = values;
    return count;
}

static inline int *json_ints(test_json *j, int *count) {
    double *values = NULL;
    *count = json_numbers(j, &values);
    int *ints = (int *)malloc(sizeof(int) * (size_t)(*count > 0 ? *count : 1));
    for (int i = 0; i < *count; i++) ints[i] = (int)values[i];
    free(values);
    return ints;
}

/* Reads `"key": ` and leaves the cursor at the value; returns 0 at the end of the object. */
static inline int json_key(test_json *j, char *key, size_t capacity) {
    json_space(j);
    if (*j->p == ',') j->p++;
    json_space(j);
    if (*j->p != '"') return 0;
    j->p++;
    size_t n = 0;
    while (*j->p && *j->p != '"') {
        if (n + 1 < capacity) key[n++] = *j->p;
        j->p++;
    }
    key[n] = 0;
    j->p++;
    json_space(j);
    j->p++; /* : */
    return 1;
}

static inline void json_sequence(test_json *j, test_sequence *s, int vocab) {
    char key[64];
    json_space(j);
    j->p++; /* { */
    while (json_key(j, key, sizeof key)) {
        if (strcmp(key, "tokens") == 0) {
            s->tokens = json_ints(j, &s->n_tokens);
        } else if (strcmp(key, "logits") == 0) {
            json_space(j);
            j->p++; /* [ rows */
            s->logits = (float *)malloc(sizeof(float) * (size_t)vocab * 512);
            int row = 0;
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
                double *values = NULL;
                int n = json_numbers(j, &values);
                for (int i = 0; i < n && i < vocab; i++) s->logits[(size_t)row * (size_t)vocab + (size_t)i] = (float)values[i];
                free(values);
                row++;
            }
        } else {
            json_skip(j);
        }
    }
    json_space(j);
    j->p++; /* } */
}

static inline void json_greedy(test_json *j, test_greedy *g) {
    char key[64];
    json_space(j);
    j->p++;
    while (json_key(j, key, sizeof key)) {
        if (strcmp(key, "prompt") == 0) g->prompt = json_ints(j, &g->n_prompt);
        else if (strcmp(key, "continuation") == 0) g->continuation = json_ints(j, &g->n_continuation);
        else json_skip(j);
    }
    json_space(j);
    j->p++;
}

/* Loads Tests/Fixtures/<name>/reference.json; exits on a missing file. vocab_size must precede sequences. */
static inline void test_load_reference(const char *name, test_reference *r) {
    char path[1024];
    snprintf(path, sizeof path, "%s/Tests/Fixtures/%s/reference.json", MOBILELLM_SOURCE_DIR, name);
    FILE *file = fopen(path, "rb");
    if (!file) {
        fprintf(stderr, "cannot open %s\n", path);
        exit(1);
    }
    fseek(file, 0, SEEK_END);
    long size = ftell(file);
    fseek(file, 0, SEEK_SET);
    char *text = (char *)malloc((size_t)size + 1);
    size_t read = fread(text, 1, (size_t)size, file);
    text[read] = 0;
    fclose(file);
    memset(r, 0, sizeof *r);
    test_json j = {text};
    char key[64];
    json_space(&j);
    j.p++;
    while (json_key(&j, key, sizeof key)) {
        if (strcmp(key, "vocab_size") == 0) {
            r->vocab_size = (int)strtol(j.p, (char **)&j.p, 10);
        } else if (strcmp(key, "sequences") == 0 || strcmp(key, "greedy") == 0) {
            int is_sequences = key[0] == 's';
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
                if (is_sequences && r->n_sequences < 16) json_sequence(&j, &r->sequences[r->n_sequences++], r->vocab_size);
                else if (!is_sequences && r->n_greedy < 16) json_greedy(&j, &r->greedy[r->n_greedy++]);
                else json_skip(&j);
            }
        } else {
            json_skip(&j);
        }
    }
    free(text);
}

static inline void test_free_reference(test_reference *r) {
    for (int i = 0; i < r->n_sequences; i++) {
        free(r->sequences[i].tokens);
        free(r->sequences[i].logits);
    }
    for (int i = 0; i < r->n_greedy; i++) {
        free(r->greedy[i].prompt);
        free(r->greedy[i].continuation);
    }
}

static inline float test_max_abs_diff(const float *a, const float *b, size_t n) {
    float worst = 0;
    for (size_t i = 0; i < n; i++) {
        float d = fabsf(a[i] - b[i]);
        if (d > worst || d != d) worst = (d != d) ? INFINITY : d;
    }
    return worst;
}

/* Reads a JSON string (escapes and \uXXXX surrogate pairs decoded to UTF-8) into a malloc'ed buffer. */
static inline char *json_string(test_json *j) {
    json_space(j);
    size_t capacity = 64, n = 0;
    char *out = (char *)malloc(capacity);
    j->p++; /* " */
    while (*j->p && *j->p != '"') {
        unsigned long code = (unsigned char)*j->p++;
        int raw = 1;
        if (code == '\\') {
            char e = *j->p++;
            raw = 0;
            switch (e) {
            case 'n': code = '\n'; break;
            case 't': code = '\t'; break;
            case 'r': code = '\r'; break;
            case 'b': code = '\b'; break;
            case 'f': code = '\f'; break;
            case 'u': {
                char hex[5] = {j->p[0], j->p[1], j->p[2], j->p[3], 0};
                code = strtoul(hex, NULL, 16);
                j->p += 4;
                if (code >= 0xD800 && code < 0xDC00 && j->p[0] == '\\' && j->p[1] == 'u') {
                    char low[5] = {j->p[2], j->p[3], j->p[4], j->p[5], 0};
                    code = 0x10000 + ((code - 0xD800) << 10) + (strtoul(low, NULL, 16) - 0xDC00);
                    j->p += 6;
                }
                break;
            }
            default: code = (unsigned char)e; break;
            }
        }
        if (n + 5 >= capacity) {
            capacity *= 2;
            out = (char *)realloc(out, capacity);
        }
        if (raw || code < 0x80) out[n++] = (char)code;
        else if (code < 0x800) {
            out[n++] = (char)(0xC0 | (code >> 6));
            out[n++] = (char)(0x80 | (code & 0x3F));
        } else if (code < 0x10000) {
            out[n++] = (char)(0xE0 | (code >> 12));
            out[n++] = (char)(0x80 | ((code >> 6) & 0x3F));
            out[n++] = (char)(0x80 | (code & 0x3F));
        } else {
            out[n++] = (char)(0xF0 | (code >> 18));
            out[n++] = (char)(0x80 | ((code >> 12) & 0x3F));
            out[n++] = (char)(0x80 | ((code >> 6) & 0x3F));
            out[n++] = (char)(0x80 | (code & 0x3F));
        }
    }
    j->p++;
    out[n] = 0;
    return out;
}

/* Reads a whole file into a malloc'ed NUL-terminated buffer; exits when it cannot. */
static inline char *test_read_file(const char *path) {
    FILE *file = fopen(path, "rb");
    if (!file) {
        fprintf(stderr, "cannot open %s\n", path);
        exit(1);
    }
    fseek(file, 0, SEEK_END);
    long size = ftell(file);
    fseek(file, 0, SEEK_SET);
    char *text = (char *)malloc((size_t)size + 1);
    size_t read = fread(text, 1, (size_t)size, file);
    text[read] = 0;
    fclose(file);
    return text;
}

/* Whether `n` bytes are valid UTF-8. */
static inline int test_valid_utf8(const char *text, size_t n) {
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0;
    while (i < n) {
        int extra = s[i] < 0x80 ? 0 : (s[i] >> 5) == 6 ? 1 : (s[i] >> 4) == 14 ? 2 : (s[i] >> 3) == 30 ? 3 : -1;
        if (extra < 0 || i + (size_t)extra >= n + (extra ? 0 : 1)) return 0;
        for (int k = 1; k <= extra; k++)
            if (i + (size_t)k >= n || (s[i + (size_t)k] & 0xC0) != 0x80) return 0;
        i += (size_t)extra + 1;
    }
    return 1;
}

#endif
