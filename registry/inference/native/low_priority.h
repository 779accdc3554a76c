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

/*
 * LOWERED(function, PARAMETERS) defines function##_low: function's parameters, function run with them through
 * low_priority_run and waited for, what it returns returned. PARAMETERS(P, L) lists function's parameters in
 * order, each as P(type, name) and the last as L(type, name), so that one list makes the arguments' struct, the
 * body that calls function with them, and the exported function that takes them.
 */
#define LOWERED(function, PARAMETERS)                                                                          \
    typedef struct {                                                                                           \
        PARAMETERS(LOWERED_FIELD, LOWERED_FIELD)                                                               \
    } function##_args_t;                                                                                       \
    static int64_t function##_body(void *p) {                                                                  \
        const function##_args_t *a = p;                                                                        \
        return function(PARAMETERS(LOWERED_READ, LOWERED_READ_LAST));                                          \
    }                                                                                                          \
    int64_t function##_low(PARAMETERS(LOWERED_PARAMETER, LOWERED_PARAMETER_LAST)) {                            \
        function##_args_t args = {PARAMETERS(LOWERED_NAME, LOWERED_NAME_LAST)};                                \
        return low_priority_run(function##_body, &args);                                                       \
    }
#define LOWERED_FIELD(type, name) type name;
#define LOWERED_READ(type, name) a->name,
#define LOWERED_READ_LAST(type, name) a->name
#define LOWERED_PARAMETER(type, name) type name,
#define LOWERED_PARAMETER_LAST(type, name) type name
#define LOWERED_NAME(type, name) name,
#define LOWERED_NAME_LAST(type, name) name

#endif
