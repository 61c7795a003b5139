/*
 * jobs.h - running a few independent jobs at once, one thread each, for the parts of memsnap
 * that work through big arrays (compressing and inflating profiles, decoding samples,
 * building the flame tree).
 *
 * Threads exist only for the duration of one jobs_run() call and block every signal, so the
 * caller's signal handlers keep running on the caller's thread and no system call of the
 * caller is interrupted on their account. A job must touch only its own data (the caller
 * merges the results after jobs_run returns).
 */
#ifndef MEMSNAP_JOBS_H
#define MEMSNAP_JOBS_H

#include <stddef.h>

/* At most this many jobs run at once. */
#define JOBS_MAX 8

/* The CPUs this process may run on, between 1 and JOBS_MAX. */
int jobs_cpus(void);

/* Runs fn(jobs + i * size) for i in [0, n), n <= JOBS_MAX: the first on the calling thread,
 * the others on threads of their own; a job whose thread cannot be created runs on the
 * calling thread. Returns when all are done. */
void jobs_run(void *(*fn)(void *), void *jobs, size_t size, size_t n);

#endif
