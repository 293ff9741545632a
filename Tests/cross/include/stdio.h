/* Stand-in for the target's <stdio.h> (see Tests/cross/README.md): only the formatting functions the kernels use. */
#pragma once
#include <stdarg.h>
#include <stddef.h>
int snprintf(char *restrict buffer, size_t size, const char *restrict format, ...);
int vsnprintf(char *restrict buffer, size_t size, const char *restrict format, va_list arguments);
