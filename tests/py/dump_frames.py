"""dump_frames.py - raw instruction fields of live frames next to CPython's own f_lineno.

For tests/unit/test_linetable.c: builds frames in many states (callers suspended in calls
spread over several lines, in loops, in except/finally blocks, comprehensions, lambdas, class
bodies, suspended and not-yet-started generators and coroutines), then reads, with ctypes,
the same raw field memsnap reads remotely and prints it with frame.f_lineno, so the C side
can require linetable_offset() + linetable_line() to reproduce f_lineno exactly.

Usage: dump_frames.py lasti FRAME_LASTI_OFFSET      (3.8-3.10: int f_lasti in PyFrameObject)
       dump_frames.py instr IFRAME_INSTR_OFFSET     (3.11+: pointer in _PyInterpreterFrame)
Output: "F <raw> <code address> <f_lineno or -1> <co_firstlineno> <table hex or -> <what>"
per frame, then "T <frames>".
"""
import ctypes
import sys

MODE, FIELD = sys.argv[1], int(sys.argv[2])
# 3.11+: PyFrameObject is PyObject_HEAD, f_back, then f_frame (the _PyInterpreterFrame).
FRAME_F_FRAME = 24
printed = 0


def raw_field(frame):
    if MODE == "lasti":
        return ctypes.c_uint32.from_address(id(frame) + FIELD).value
    iframe = ctypes.c_void_p.from_address(id(frame) + FRAME_F_FRAME).value
    return ctypes.c_void_p.from_address(iframe + FIELD).value or 0


def emit(frame, what):
    global printed
    code = frame.f_code
    table = code.co_linetable if sys.version_info >= (3, 10) else code.co_lnotab
    lineno = frame.f_lineno
    print("F %d %d %d %d %s %s" % (raw_field(frame), id(code), -1 if lineno is None else lineno,
                                   code.co_firstlineno, table.hex() or "-", what))
    printed += 1


def dump_stack(what):
    """Every frame above this one: each is suspended in a call (the caller's view)."""
    frame = sys._getframe(1)
    depth = 0
    while frame is not None:
        emit(frame, "%s[%d]" % (what, depth))
        frame = frame.f_back
        depth += 1
    return 0


def spread_call(a, b, c):
    return dump_stack("spread")


def in_spread_call():
    total = spread_call(
        1,
        2,
        dump_stack("spread-arg"),
    )
    return total


def in_loop():
    result = []
    for i in range(3):
        if i == 2:
            result.append(dump_stack("loop"))
        else:
            result.append(i)
    return result


def in_except():
    try:
        raise ValueError("x")
    except ValueError:
        dump_stack("except")
    finally:
        dump_stack("finally")


def in_comprehension():
    return [dump_stack("listcomp") for _ in range(1)] + list(
        dump_stack("genexpr") for _ in range(1))


in_lambda = lambda: dump_stack("lambda")  # noqa: E731


class InClassBody:
    marker = dump_stack("classbody")


def with_keywords():
    return dict(a=1,
                b=dump_stack("kwarg"),
                c=3)


def gen_suspended():
    yield 1
    x = 2
    yield x


def gen_waiting():
    yield from gen_suspended()


async def coro_body():
    return 1


def nested_deep(n):
    if n == 0:
        return dump_stack("deep")
    return nested_deep(n - 1)


def main():
    in_spread_call()
    in_loop()
    in_except()
    in_comprehension()
    in_lambda()
    with_keywords()
    nested_deep(5)
    fresh = gen_suspended()
    emit(fresh.gi_frame, "gen-not-started")
    started = gen_suspended()
    next(started)
    emit(started.gi_frame, "gen-first-yield")
    next(started)
    emit(started.gi_frame, "gen-second-yield")
    outer = gen_waiting()
    next(outer)
    emit(outer.gi_frame, "gen-yield-from")
    coro = coro_body()
    emit(coro.cr_frame, "coro-not-started")
    coro.close()
    print("T %d" % printed)


main()
