/* The pattern a game or editor plugin needs: generation runs on a worker thread, the frame loop polls the streamed
 * pieces without ever blocking, and the user cancels mid-answer. Afterwards the session is still usable.
 * Usage: plugin_frame_loop MODEL_DIR */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "mobilellm.h"

#define QUEUE 4096

/* Pieces travel from the worker to the frame loop through a mutex-protected queue; the frame side only trylocks. */
typedef struct {
    pthread_mutex_t lock;
    int32_t tokens[QUEUE];
    int head, tail;
    int finished;
    mobilellm_status status;
    mobilellm_generate_result result;
    mobilellm_session *session;
} channel;

static bool on_token(int32_t token, const char *piece, size_t length, void *user_data) {
    (void)piece;
    (void)length;
    channel *c = (channel *)user_data;
    pthread_mutex_lock(&c->lock);
    if ((c->tail + 1) % QUEUE != c->head) {
        c->tokens[c->tail] = token;
        c->tail = (c->tail + 1) % QUEUE;
    }
    pthread_mutex_unlock(&c->lock);
    return true;
}

static void *worker(void *argument) {
    channel *c = (channel *)argument;
    const int32_t prompt[] = {0, 169, 380, 264, 92};
    mobilellm_generate_params params;
    mobilellm_generate_params_init(&params);
    params.max_tokens = 3000;
    params.ignore_eos = true;
    params.callback = on_token;
    params.user_data = c;
    c->result.struct_size = sizeof c->result;
    mobilellm_status status = mobilellm_session_generate(c->session, prompt, 5, NULL, &params, NULL, 0, &c->result);
    pthread_mutex_lock(&c->lock);
    c->status = status;
    c->finished = 1;
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

static void sleep_ms(long ms) {
    struct timespec t = {0, ms * 1000000L};
    nanosleep(&t, NULL);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL_DIR\n", argv[0]);
        return 2;
    }
    mobilellm_model *model = NULL;
    channel c;
    memset(&c, 0, sizeof c);
    pthread_mutex_init(&c.lock, NULL);
    mobilellm_session_params sp;
    mobilellm_session_params_init(&sp);
    sp.n_ctx = 4096;
    if (mobilellm_model_load(argv[1], NULL, &model) != MOBILELLM_OK ||
        mobilellm_session_create(model, &sp, &c.session) != MOBILELLM_OK) {
        fprintf(stderr, "error: %s\n", mobilellm_last_error());
        return 1;
    }
    pthread_t thread;
    pthread_create(&thread, NULL, worker, &c);

    int received = 0, frames = 0, cancelled_at = -1, done = 0;
    while (!done) {
        frames++;
        /* One frame: take whatever arrived, never wait for the worker. */
        if (pthread_mutex_trylock(&c.lock) == 0) {
            while (c.head != c.tail) {
                c.head = (c.head + 1) % QUEUE;
                received++;
            }
            done = c.finished;
            pthread_mutex_unlock(&c.lock);
        }
        /* The user presses "stop" once the answer has started. */
        if (cancelled_at < 0 && received >= 8) {
            cancelled_at = received;
            mobilellm_session_cancel(c.session);
        }
        sleep_ms(1); /* the rest of the frame */
    }
    pthread_join(thread, NULL);
    int32_t position = 0;
    mobilellm_session_position(c.session, &position);
    printf("frames %d, pieces %d, cancel after %d, status %s, position %d\n", frames, received, cancelled_at,
           mobilellm_status_name(c.status), position);
    int ok = c.status == MOBILELLM_ERROR_CANCELLED && received < 3000 && cancelled_at >= 8;

    /* The session is usable after the cancel: continue from where it stopped. */
    mobilellm_generate_params params;
    mobilellm_generate_params_init(&params);
    params.max_tokens = 4;
    params.ignore_eos = true;
    mobilellm_generate_result result;
    result.struct_size = sizeof result;
    ok = ok && mobilellm_session_generate(c.session, NULL, 0, NULL, &params, NULL, 0, &result) == MOBILELLM_OK &&
         result.n_tokens == 4;
    printf("%s\n", ok ? "cancelled mid-answer; session still usable" : "FAILED");
    mobilellm_session_free(c.session);
    mobilellm_model_free(model);
    pthread_mutex_destroy(&c.lock);
    return ok ? 0 : 1;
}
