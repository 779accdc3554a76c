/*
 * A call run on a thread of its own at a lower CPU priority, its caller waiting for it: the library's
 * large walks and explanations, so that on a busy machine whatever else wants a core (a worker's small
 * requests, its refusals, the machine's other work) takes it first, and alone the walk has the core as
 * before. The thread never touches Python: its caller (in a ctypes call that let go of the GIL) waits in
 * pthread_join, so no thread of low priority ever holds the GIL that a thread of normal priority waits for.
 */
#ifndef REGISTRY_LOW_PRIORITY_H
#define REGISTRY_LOW_PRIORITY_H

#include <stdint.h>

/* body(args) on a thread of lower priority (low_priority_set's: a nice value, or SCHED_IDLE and nice 19 where
   that is refused), waited for; on the caller's own thread where no thread can be made. */
int64_t low_priority_run(int64_t (*body)(void *), void *args);

#endif
