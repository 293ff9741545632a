/*
 * A persistent fork-join thread pool with low-overhead synchronisation: workers spin briefly on a generation
 * counter (so back-to-back parallel regions cost about a microsecond), then sleep on a condition variable.
 * One pool serves one caller thread at a time (each inference session owns one).
 */
#ifndef MOBILELLM_POOL_H
#define MOBILELLM_POOL_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A task: called once on every thread of the pool with that thread's index (0 = the caller) and the count. */
typedef void (*mlk_task_fn)(void *context, int thread, int thread_count);

/** A chunked task: called once per chunk index, on whichever thread claimed it (0 = the caller). */
typedef void (*mlk_chunk_fn)(void *context, int64_t chunk, int thread);

typedef struct mlk_pool mlk_pool;

/** A pool of `thread_count` threads including the caller (thread_count - 1 workers are started).
 *  Returns NULL if threads cannot be created; thread_count < 1 is treated as 1. */
mlk_pool *mlk_pool_create(int thread_count);

/** Stops and joins the workers and frees the pool. NULL is ignored. */
void mlk_pool_destroy(mlk_pool *pool);

/** Number of threads, caller included. */
int mlk_pool_thread_count(const mlk_pool *pool);

/** Runs `task` once for every index in [0, thread count) — on whichever threads claim them (see
 *  mlk_pool_run_chunks), so an index is not a thread identity — and returns when all have finished. */
void mlk_pool_run(mlk_pool *pool, mlk_task_fn task, void *context);

/**
 * Runs `task` for every chunk in [0, chunk_count). Threads claim chunks one at a time from a shared counter, and the
 * caller claims chunks too and then waits only for chunks other threads already claimed: a worker that is slow to
 * wake (a busy machine) never delays the region, the caller simply does more of the work.
 */
void mlk_pool_run_chunks(mlk_pool *pool, mlk_chunk_fn task, void *context, int64_t chunk_count);

/** mlk_pool_run_chunks on the first `thread_limit` threads of the pool only (the caller and workers 1 ...
 *  thread_limit - 1; clamped to the pool's size; 1 or less runs every chunk on the caller): the `thread` index
 *  passed to `task` is then below thread_limit. The other workers stay idle for this job. */
void mlk_pool_run_chunks_limited(mlk_pool *pool, mlk_chunk_fn task, void *context, int64_t chunk_count,
                                 int thread_limit);

/** A CPU hint for spin loops. */
void mlk_cpu_relax(void);

#ifdef __cplusplus
}
#endif

#endif
