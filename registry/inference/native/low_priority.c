/* See low_priority.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "low_priority.h"

/* What lower() gives a thread: SCHED_IDLE (GOT_SCHED_IDLE), a nice value (0 to 19), or NOT_LOWERED. */
#define GOT_SCHED_IDLE 100
#define NOT_LOWERED (-1)

typedef struct {
    int64_t (*body)(void *);
    void *args;
    int64_t result;
    int64_t lowered;  /* what lower() gave the thread */
} job_t;

/* The nice value a low-priority call's thread takes, or 0 for SCHED_IDLE (low_priority_set). */
static volatile int64_t nice_wanted = 0;

/* The calling thread at the priority wanted (SCHED_IDLE, or nice_wanted), or at nice 19 where SCHED_IDLE is
   refused; what it got. Nothing raises it again: the thread exits after its one call. */
static int64_t lower(void) {
    const int64_t nice = nice_wanted;
#ifdef SCHED_IDLE
    struct sched_param param = {0};
    if (nice == 0 && pthread_setschedparam(pthread_self(), SCHED_IDLE, &param) == 0)
        return GOT_SCHED_IDLE;
#endif
#ifdef SYS_gettid
    const id_t self = (id_t)syscall(SYS_gettid);
    errno = 0;
    const int current = getpriority(PRIO_PROCESS, self);
    if (errno == 0 && current >= (nice ? nice : 19))
        return current;  /* already as low: a thread may not raise its own priority */
    if (setpriority(PRIO_PROCESS, self, (int)(nice ? nice : 19)) == 0)
        return nice ? nice : 19;
#endif
    return NOT_LOWERED;
}

static void *run(void *p) {
    job_t *job = p;
    job->lowered = lower();
    job->result = job->body(job->args);
    return NULL;
}

/* body(args) on a thread of low priority, what lower() gave it in *lowered (NOT_LOWERED: no thread was made). */
static int64_t run_lowered(int64_t (*body)(void *), void *args, int64_t *lowered) {
    job_t job = {body, args, 0, NOT_LOWERED};
    pthread_t thread;
    if (pthread_create(&thread, NULL, run, &job) != 0)
        job.result = body(args);
    else
        pthread_join(thread, NULL);
    *lowered = job.lowered;
    return job.result;
}

int64_t low_priority_run(int64_t (*body)(void *), void *args) {
    int64_t lowered;
    return run_lowered(body, args, &lowered);
}

static int64_t nothing(void *unused) {
    (void)unused;
    return 0;
}

/* What a low-priority call's thread gets: GOT_SCHED_IDLE (100), a nice value, or NOT_LOWERED (-1). */
int64_t low_priority_policy(void) {
    int64_t lowered;
    run_lowered(nothing, NULL, &lowered);
    return lowered;
}

/* The priority of every low-priority call from now on in this process: a nice value from 1 to 19, or 0 for
   SCHED_IDLE (the default). */
void low_priority_set(int64_t nice) {
    nice_wanted = nice < 0 ? 0 : nice > 19 ? 19 : nice;
}
