/*
 * linetable.h - from a frame's raw instruction field to a source line, for CPython 3.8-3.14.
 *
 * Two pure functions over bytes already copied out of the target: no remote reads, no
 * allocation, no global state, so they are safe on hostile input and cheap to call per frame.
 * Both are checked against CPython's own PyCode_Addr2Line()/co_lines() for every instruction
 * of large stdlib modules on every installed version (tests/unit/test_linetable.c).
 *
 * Offsets are byte offsets into the code object's instructions (co_code up to 3.10,
 * co_code_adaptive from 3.11), the unit every CPython line table is indexed by.
 */
#ifndef MEMSNAP_LINETABLE_H
#define MEMSNAP_LINETABLE_H

#include <stddef.h>
#include <stdint.h>

/* Byte offset into the code's instructions of the frame's current instruction, from the raw
 * per-frame field (lasti_model from py_offsets.h): f_lasti (bytes or 2-byte units, may be -1),
 * or a prev_instr/instr_ptr pointer minus (code_addr + code_adaptive_off). Returns -1 when the
 * frame has not started (caller then uses co_firstlineno).
 *
 * For the int models only the low 32 bits of raw are used (f_lasti is a C int; callers may
 * pass it zero- or sign-extended). For the pointer models the result is exactly CPython's own
 * _PyInterpreterFrame_LASTI() * 2, the address frame.f_lineno and tracebacks decode:
 *  - 3.11/3.12 prev_instr points at the last code unit executed (the opcode of the running
 *    instruction, or, in a caller suspended in a call, the last inline cache unit of its CALL,
 *    which the location table gives the CALL's line). A frame that has not started holds
 *    code - 1 unit, so the difference is negative and -1 is returned.
 *  - 3.13 instr_ptr points at the instruction being executed (the first one before start, so
 *    a fresh frame yields 0, the line of its RESUME, which is what CPython reports).
 * A pointer below the code or more than INT32_MAX bytes past it (garbage) also gives -1; an
 * offset past the end of the instructions is left for linetable_line() to reject. */
int64_t linetable_offset(int lasti_model, uint64_t raw, uint64_t code_addr,
                         int32_t code_adaptive_off);

/* The line of the instruction at byte offset `offset`, decoding `table` (co_lnotab, 3.10
 * co_linetable, or the 3.11+ location table, per linetable_model). offset < 0 → firstlineno.
 * Returns -1 when that instruction has no line or the table is malformed/truncated
 * (never reads past len).
 *
 * Ranges follow CPython: an entry covers [start, end) and an offset is in it when
 * start <= offset < end. co_lnotab has no end: offsets past its last entry keep its last line,
 * as in CPython 3.8/3.9. An unknown model also returns -1. */
int linetable_line(int linetable_model, const uint8_t *table, size_t len, int firstlineno,
                   int64_t offset);

#endif
