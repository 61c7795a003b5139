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
 *   - each object's unwind table is found where the object is LOADED: its ELF header, its
 *     PT_GNU_EH_FRAME (.eh_frame_hdr) and the .eh_frame it indexes, read through the page
 *     cache, whose pages come from the mapped file only when proc_maps_open proves it is the
 *     mapped one (same device and inode), else from the target's memory. libunwind-ptrace's
 *     find_proc_info is not used: it opens the maps path in memsnap's own mount namespace,
 *     which for a deleted, upgraded or chroot'ed library is another file or none, and then
 *     libunwind guesses frames from frame pointers (see "Fail closed" below);
 *   - native_unwind_walk on a thread that is NOT stopped (registers from
 *     /proc/PID/task/TID/syscall, which a thread blocked in a syscall exposes: its stack
 *     pointer and program counter) rehearses the walk before the stop: its answer means
 *     nothing, but it loads the tables and caches the pages the real walk will need.
 * A walk of a warmed unwinder makes a handful of syscalls (the stack pages).
 *
 * Fail closed: a walk succeeds (0) only when every frame lies in an object whose table has
 * an FDE covering it, and the last frame's CFI ends the chain (return address undefined).
 * find_proc_info never answers -UNW_ENOINFO, the one answer after which libunwind falls back
 * to frame-pointer and PLT heuristics; a frame in anonymous code, in an object without a
 * searchable table, or outside every FDE stops the walk (-1, reason in native_unwind_why).
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
 * _start), with that frame's ip in *last_ip (may be NULL), every frame proven by CFI; -1
 * when it stopped short (unreadable memory, a frame without unwind information, max_frames
 * reached): native_unwind_why says why. */
int native_unwind_walk(struct native_unwind *u, const struct user_regs_struct *regs, int max_frames,
                       native_frame_fn visit, void *ctx, uint64_t *last_ip);

/* Why the last walk stopped short (a sentence fragment: "no unwind information covers
 * 0x... in /lib/..."). */
const char *native_unwind_why(const struct native_unwind *u);

/* Frees the unwinder (NULL is fine). */
void native_unwind_close(struct native_unwind *u);

#endif
