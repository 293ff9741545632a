/* Stand-in for Darwin <sys/sysctl.h> (see Tests/cross/README.md). */
#pragma once
#include <stddef.h>
int sysctlbyname(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen);
