/* Persistent fork-join thread pool; see mobilellm_pool.h. */
#include "mobilellm_pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif

/* Spin iterations before a worker sleeps (~50-100 µs), and before the caller yields while waiting. */
enum { MLK_SPIN_BEFORE_SLEEP = 20000, MLK_SPIN_BEFORE_YIELD = 4000 };

struct mlk_pool {
    int thread_count;
    pthread_t *threads;
    _Atomic uint64_t generation;
    _Atomic int pending;
    _Atomic int sleeping;
    _Atomic int stopping;
    mlk_task_fn task;
    void *context;
    pthread_mutex_t mutex;
    pthread_cond_t wake;
};

typedef struct {
    mlk_pool *pool;
    int index;
} mlk_worker_start;

void mlk_cpu_relax(void) {
#if defined(__x86_64__) || defined(_M_X64)
    _mm_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static void *mlk_worker(void *argument) {
    mlk_worker_start start = *(mlk_worker_start *)argument;
    free(argument);
    mlk_pool *pool = start.pool;
    uint64_t seen = 0;
    for (;;) {
        uint64_t generation;
        int spins = 0;
        while ((generation = atomic_load(&pool->generation)) == seen && !atomic_load(&pool->stopping)) {
            if (++spins < MLK_SPIN_BEFORE_SLEEP) {
                mlk_cpu_relax();
                continue;
            }
            pthread_mutex_lock(&pool->mutex);
            atomic_fetch_add(&pool->sleeping, 1);
            while (atomic_load(&pool->generation) == seen && !atomic_load(&pool->stopping))
                pthread_cond_wait(&pool->wake, &pool->mutex);
            atomic_fetch_sub(&pool->sleeping, 1);
            pthread_mutex_unlock(&pool->mutex);
            spins = 0;
        }
        if (atomic_load(&pool->stopping)) return NULL;
        seen = generation;
        pool->task(pool->context, start.index, pool->thread_count);
        atomic_fetch_sub_explicit(&pool->pending, 1, memory_order_release);
    }
}

static void mlk_wake_sleepers(mlk_pool *pool) {
    if (atomic_load(&pool->sleeping) > 0) {
        pthread_mutex_lock(&pool->mutex);
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->mutex);
    }
}

mlk_pool *mlk_pool_create(int thread_count) {
    if (thread_count < 1) thread_count = 1;
    mlk_pool *pool = calloc(1, sizeof *pool);
    if (!pool) return NULL;
    pool->thread_count = thread_count;
    atomic_init(&pool->generation, 0);
    atomic_init(&pool->pending, 0);
    atomic_init(&pool->sleeping, 0);
    atomic_init(&pool->stopping, 0);
    pthread_mutex_init(&pool->mutex, NULL);
    pthread_cond_init(&pool->wake, NULL);
    if (thread_count > 1) {
        pool->threads = calloc((size_t)thread_count - 1, sizeof(pthread_t));
        if (!pool->threads) {
            mlk_pool_destroy(pool);
            return NULL;
        }
        for (int i = 1; i < thread_count; i++) {
            mlk_worker_start *start = malloc(sizeof *start);
            if (start) {
                start->pool = pool;
                start->index = i;
            }
            if (!start || pthread_create(&pool->threads[i - 1], NULL, mlk_worker, start) != 0) {
                free(start);
                pool->thread_count = i; /* only i-1 workers exist: destroy joins those */
                mlk_pool_destroy(pool);
                return NULL;
            }
        }
    }
    return pool;
}

void mlk_pool_destroy(mlk_pool *pool) {
    if (!pool) return;
    atomic_store(&pool->stopping, 1);
    pthread_mutex_lock(&pool->mutex);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mutex);
    if (pool->threads) {
        for (int i = 1; i < pool->thread_count; i++) pthread_join(pool->threads[i - 1], NULL);
        free(pool->threads);
    }
    pthread_mutex_destroy(&pool->mutex);
    pthread_cond_destroy(&pool->wake);
    free(pool);
}

int mlk_pool_thread_count(const mlk_pool *pool) { return pool ? pool->thread_count : 1; }

void mlk_pool_run(mlk_pool *pool, mlk_task_fn task, void *context) {
    if (!pool || pool->thread_count == 1) {
        task(context, 0, 1);
        return;
    }
    pool->task = task;
    pool->context = context;
    atomic_store(&pool->pending, pool->thread_count - 1);
    atomic_fetch_add(&pool->generation, 1);
    mlk_wake_sleepers(pool);
    task(context, 0, pool->thread_count);
    int spins = 0;
    while (atomic_load_explicit(&pool->pending, memory_order_acquire) > 0) {
        if (++spins < MLK_SPIN_BEFORE_YIELD) mlk_cpu_relax();
        else sched_yield();
    }
}
