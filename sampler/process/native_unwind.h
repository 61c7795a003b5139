/*
 * native_unwind.h - unwinding the native stack of a thread of another process, fast enough
 * to do while that thread is held stopped.
 *
 * Why not plain libunwind-ptrace: its accessors read the target one word per ptrace call,
 * read registers with ptrace, and its find_proc_info keeps the unwind tables of ONE object at
 * a time, so every frame that crosses from python into libc and back re-reads /proc/PID/maps
 * and re-maps an ELF file. An idle CPython's stack crosses objects a few times: about 220
 * syscalls, 1.3-1.8 ms on this machine, all of it while the target thread was stopped.
 *
 * Here, instead:
 *   - memory is read a page at a time with process_vm_readv and cached; pages of read-only
 *     file mappings (code, .eh_frame, .eh_frame_hdr) stay cached for the life of the unwinder,
 *     other pages (stacks) are dropped before every walk, because they change between stops;
 *   - registers come from a register set the caller captured (PTRACE_GETREGS), no ptrace;
 *   - every executable object gets its own libunwind-ptrace state, so the tables of each
 *     object are loaded once and kept;
 *   - native_unwind_walk on a thread that is NOT stopped (registers from
 *     /proc/PID/task/TID/syscall, which a thread blocked in a syscall exposes: its stack
 *     pointer and program counter) rehearses the walk before the stop: its answer means
 *     nothing, but it loads the tables and caches the pages the real walk will need.
 * A walk of a warmed unwinder makes a handful of syscalls (the stack pages).
 *
 * The unwinder borrows maps (the target's /proc/PID/maps, read by the caller) and must be
 * used from one thread. Remote memory is untrusted: a torn or hostile stack makes the walk
 * stop short (-1), never crash.
 */
#ifndef MEMSNAP_NATIVE_UNWIND_H
#define MEMSNAP_NATIVE_UNWIND_H

#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

#include "error.h"
#include "proc_maps.h"

struct native_unwind;

/* Called for each frame, innermost first: ip is the frame's instruction pointer (for depth >
 * 0, a return address, i.e. just after the call). Returns 0 to go on, > 0 to stop the walk. */
typedef int (*native_frame_fn)(uint64_t ip, int depth, void *ctx);

/* Creates an unwinder for process pid, whose mappings are maps (borrowed: it must outlive
 * the unwinder). Returns 0 and *out, or -1 with err (out of memory, libunwind failure). */
int native_unwind_open(pid_t pid, const struct proc_maps *maps, struct native_unwind **out,
                       ms_error *err);

/* Walks the stack whose innermost registers are regs, at most max_frames frames, calling
 * visit (may be NULL) on each. Returns the visitor's non-zero value when it stopped the walk;
 * 0 when the walk reached the outermost frame (its return address is undefined: clone3 or
 * _start), with that frame's ip in *last_ip (may be NULL); -1 when it stopped short
 * (unreadable memory, a frame without unwind information, max_frames reached). */
int native_unwind_walk(struct native_unwind *u, const struct user_regs_struct *regs, int max_frames,
                       native_frame_fn visit, void *ctx, uint64_t *last_ip);

/* Frees the unwinder (NULL is fine). */
void native_unwind_close(struct native_unwind *u);

#endif
