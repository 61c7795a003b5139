/*
 * proc_tree.h - a process's descendants, from the parent links in /proc/PID/stat.
 *
 * A service is a tree: a gunicorn master and its workers, a shell wrapper and its Pythons,
 * multiprocessing's pool. `attach --children` and `run --follow-fork` poll this to find every
 * process to record, including those born during the window. One scan reads every
 * /proc/N/stat once (a few ms for a thousand processes); nothing is stopped or touched.
 * Processes appear and exit during the scan: those are simply missed or listed (a listed pid
 * may be gone by the time the caller looks, which the caller must handle anyway).
 */
#ifndef MEMSNAP_PROC_TREE_H
#define MEMSNAP_PROC_TREE_H

#include <stddef.h>
#include <sys/types.h>

#include "error.h"

/* Fills out[0..cap) with the descendants of root (children, grandchildren, ...; not root
 * itself) in breadth-first order, and returns how many there are in all (which may exceed
 * cap: only cap are written). -1 with err when /proc cannot be read. Threads are not
 * processes: only thread-group leaders are listed. */
int proc_tree_descendants(pid_t root, pid_t *out, size_t cap, ms_error *err);

/* The parent of pid from /proc/PID/stat, 0 when pid is gone or unreadable. */
pid_t proc_tree_parent(pid_t pid);

#endif
