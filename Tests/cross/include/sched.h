/* Stand-in for the target's <sched.h> (see Tests/cross/README.md). */
#pragma once
int sched_yield(void);
