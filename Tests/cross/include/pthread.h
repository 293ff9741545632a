/* Stand-in for the target's <pthread.h> (see Tests/cross/README.md): opaque types of a plausible size; only the functions the
 * kernels call. */
#pragma once
#include <stdint.h>
typedef uintptr_t pthread_t;
typedef struct { long opaque[8]; } pthread_mutex_t;
typedef struct { long opaque[8]; } pthread_cond_t;
typedef struct { long opaque[8]; } pthread_attr_t;
typedef struct { long opaque[2]; } pthread_mutexattr_t;
typedef struct { long opaque[2]; } pthread_condattr_t;
typedef struct { long opaque[2]; } pthread_once_t;
#define PTHREAD_ONCE_INIT {{0, 0}}
int pthread_create(pthread_t *thread, const pthread_attr_t *attr, void *(*start)(void *), void *arg);
int pthread_join(pthread_t thread, void **result);
int pthread_mutex_init(pthread_mutex_t *mutex, const pthread_mutexattr_t *attr);
int pthread_mutex_destroy(pthread_mutex_t *mutex);
int pthread_mutex_lock(pthread_mutex_t *mutex);
int pthread_mutex_unlock(pthread_mutex_t *mutex);
int pthread_cond_init(pthread_cond_t *cond, const pthread_condattr_t *attr);
int pthread_cond_destroy(pthread_cond_t *cond);
int pthread_cond_wait(pthread_cond_t *cond, pthread_mutex_t *mutex);
int pthread_cond_broadcast(pthread_cond_t *cond);
int pthread_cond_signal(pthread_cond_t *cond);
int pthread_once(pthread_once_t *once, void (*routine)(void));
