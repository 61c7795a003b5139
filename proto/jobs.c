/*
 * jobs.c - one thread per job, signals blocked in all but the caller's (see jobs.h).
 */
#include "jobs.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>

int jobs_cpus(void)
{
    cpu_set_t set;
    int n = 1;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        n = CPU_COUNT(&set);
    return n < 1 ? 1 : n > JOBS_MAX ? JOBS_MAX : n;
}

void jobs_run(void *(*fn)(void *), void *jobs, size_t size, size_t n)
{
    char *job = jobs;
    pthread_t tid[JOBS_MAX];
    int started[JOBS_MAX] = {0};
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (size_t i = 1; i < n && i < JOBS_MAX; i++)
        started[i] = pthread_create(&tid[i], NULL, fn, job + i * size) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    fn(job);
    for (size_t i = 1; i < n && i < JOBS_MAX; i++) {
        if (started[i])
            pthread_join(tid[i], NULL);
        else
            fn(job + i * size);
    }
}
