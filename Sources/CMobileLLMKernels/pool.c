/* Persistent thread pool with chunk claiming; see mobilellm_pool.h.
 *
 * A job is published as (task, context, chunk_count) and then made visible by storing a new job number into the
 * claim word (high 32 bits: job number, low 32 bits: next unclaimed chunk) and bumping `generation` to wake
 * sleepers. Every thread, the caller included, claims chunks with a compare-and-swap on the claim word; a claim
 * succeeds only while the job number is unchanged and chunks remain. Before the fields are written the claim word
 * is closed under the new job number (low half all ones), so no thread can combine an old job's word with the new
 * job's fields. The caller returns once `chunks_done`
 * reaches the chunk count, so it never waits for a worker that has not claimed anything. The next job's fields
 * are written only after every chunk of the current job was claimed and finished, so a claim that succeeds for
 * job j always reads job j's task and context (they were stored before job j's claim word was published). */
#include "mobilellm_pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif

/* Low half of a claim word while a job is being published: no chunk can be claimed. */
#define MLK_CLAIM_CLOSED 0xFFFFFFFFu

/* Spin iterations before a worker sleeps (~50-100 µs), and before the caller yields while waiting. */
enum { MLK_SPIN_BEFORE_SLEEP = 20000, MLK_SPIN_BEFORE_YIELD = 2000 };

struct mlk_pool {
    int thread_count;
    pthread_t *threads;
    _Atomic uint64_t generation;
    _Atomic uint64_t claim;
    _Atomic int64_t chunks_done;
    _Atomic int sleeping;
    _Atomic int stopping;
    /* The current job; written by the caller only between jobs. */
    _Atomic(mlk_chunk_fn) task;
    _Atomic(void *) context;
    _Atomic int64_t chunk_count;
    /* Threads that may claim chunks of the current job (indexes 0 ... limit - 1); written with the job. */
    _Atomic int limit;
    uint32_t job;
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

/* Claims and runs chunks of the current job until none are left or the job changed. */
static void mlk_claim_chunks(mlk_pool *pool, int thread) {
    uint64_t word = atomic_load(&pool->claim);
    for (;;) {
        const uint32_t job = (uint32_t)(word >> 32);
        /* Read after the word: a stale word fails the compare-and-swap below, so a limit read with it is never used
         * for a claim. Threads past the limit sit this job out (the caller, thread 0, always takes part). */
        if (thread >= atomic_load(&pool->limit)) return;
        const int64_t count = atomic_load(&pool->chunk_count);
        mlk_chunk_fn task = atomic_load(&pool->task);
        void *context = atomic_load(&pool->context);
        const uint64_t next = word & 0xFFFFFFFFu;
        if (!task || (int64_t)next >= count) return;
        if (!atomic_compare_exchange_weak(&pool->claim, &word, ((uint64_t)job << 32) | (next + 1))) continue;
        task(context, (int64_t)next, thread);
        atomic_fetch_add_explicit(&pool->chunks_done, 1, memory_order_release);
        word = atomic_load(&pool->claim);
    }
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
        mlk_claim_chunks(pool, start.index);
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
    atomic_init(&pool->claim, 0);
    atomic_init(&pool->chunks_done, 0);
    atomic_init(&pool->sleeping, 0);
    atomic_init(&pool->stopping, 0);
    atomic_init(&pool->task, NULL);
    atomic_init(&pool->context, NULL);
    atomic_init(&pool->chunk_count, 0);
    atomic_init(&pool->limit, thread_count);
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

void mlk_pool_run_chunks(mlk_pool *pool, mlk_chunk_fn task, void *context, int64_t chunk_count) {
    mlk_pool_run_chunks_limited(pool, task, context, chunk_count, mlk_pool_thread_count(pool));
}

void mlk_pool_run_chunks_limited(mlk_pool *pool, mlk_chunk_fn task, void *context, int64_t chunk_count,
                                 int thread_limit) {
    if (chunk_count <= 0 || !task) return;
    if (pool && thread_limit > pool->thread_count) thread_limit = pool->thread_count;
    if (!pool || pool->thread_count == 1 || thread_limit <= 1 || chunk_count == 1 ||
        chunk_count >= (int64_t)MLK_CLAIM_CLOSED) {
        for (int64_t chunk = 0; chunk < chunk_count; chunk++) task(context, chunk, 0);
        return;
    }
    /* Close the claim word under the new job number first: a worker still holding the previous job's exhausted
     * word (job, count) must not pair it with this job's larger count and claim chunk `count` of the wrong job
     * (found by the compute-pool test under ThreadSanitizer: a chunk ran twice and the caller returned early). */
    pool->job++;
    atomic_store(&pool->claim, ((uint64_t)pool->job << 32) | MLK_CLAIM_CLOSED);
    atomic_store(&pool->task, task);
    atomic_store(&pool->context, context);
    atomic_store(&pool->chunk_count, chunk_count);
    atomic_store(&pool->limit, thread_limit);
    atomic_store(&pool->chunks_done, 0);
    atomic_store(&pool->claim, (uint64_t)pool->job << 32);
    atomic_fetch_add(&pool->generation, 1);
    mlk_wake_sleepers(pool);
    mlk_claim_chunks(pool, 0);
    int spins = 0;
    while (atomic_load_explicit(&pool->chunks_done, memory_order_acquire) < chunk_count) {
        if (++spins < MLK_SPIN_BEFORE_YIELD) mlk_cpu_relax();
        else sched_yield();
    }
}

typedef struct {
    mlk_task_fn task;
    void *context;
    int thread_count;
} mlk_fork_join;

static void mlk_fork_join_chunk(void *context, int64_t chunk, int thread) {
    (void)thread;
    const mlk_fork_join *job = context;
    job->task(job->context, (int)chunk, job->thread_count);
}

void mlk_pool_run(mlk_pool *pool, mlk_task_fn task, void *context) {
    if (!task) return;
    const int count = mlk_pool_thread_count(pool);
    mlk_fork_join job = {task, context, count};
    mlk_pool_run_chunks(pool, mlk_fork_join_chunk, &job, count);
}
