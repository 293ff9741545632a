/* Stand-in for the target's <stdlib.h> (see Tests/cross/README.md). */
#pragma once
#include <stddef.h>
void *malloc(size_t size);
void *calloc(size_t count, size_t size);
void *realloc(void *p, size_t size);
void free(void *p);
int posix_memalign(void **out, size_t alignment, size_t size);
void *aligned_alloc(size_t alignment, size_t size);
void abort(void);
char *getenv(const char *name);
