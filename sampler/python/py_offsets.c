/*
 * py_offsets.c - looks up the generated per-version offset row (py_offsets_table.c), and
 * overlays a live process's own _Py_DebugOffsets on it (3.13+); see py_offsets.h.
 *
 * Kept apart from the generated table so the table file holds nothing but generated data.
 */
#include "py_offsets.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* No CPython struct we read is anywhere near this big; a larger "offset" is garbage. */
#define LIVE_OFFSET_MAX (1 << 20)

const struct py_offsets *py_offsets_find(int major, int minor)
{
    for (int i = 0; i < py_offsets_count; i++) {
        if (py_offsets_table[i].major == major && py_offsets_table[i].minor == minor)
            return &py_offsets_table[i];
    }
    return NULL;
}

const struct py_debug_table *py_debug_find(int major, int minor)
{
    if (major != 3)
        return NULL;
    for (int i = 0; i < py_debug_tables_count; i++)
        if (py_debug_tables[i].minor == minor)
            return &py_debug_tables[i];
    return NULL;
}

const char *py_offsets_supported(void)
{
    static char text[32];
    if (!text[0])
        snprintf(text, sizeof text, "%d.%d-%d.%d", py_offsets_table[0].major,
                 py_offsets_table[0].minor, py_offsets_table[py_offsets_count - 1].major,
                 py_offsets_table[py_offsets_count - 1].minor);
    return text;
}

static int32_t field_get(const struct py_offsets *o, size_t field)
{
    int32_t v;
    memcpy(&v, (const char *)o + field, sizeof v);
    return v;
}

static void field_set(struct py_offsets *o, size_t field, int32_t v)
{
    memcpy((char *)o + field, &v, sizeof v);
}

/* Fields the debug table does not state, kept at their generated distance from one it does. */
static const struct {
    size_t field, anchor;
} anchored[] = {
    {offsetof(struct py_offsets, runtime_interpreters_main),
     offsetof(struct py_offsets, runtime_interpreters_head)},
    {offsetof(struct py_offsets, runtime_main_thread),
     offsetof(struct py_offsets, runtime_interpreters_head)},
};

int py_offsets_apply_debug(struct py_offsets *o, const struct py_debug_table *dt,
                           const uint8_t *raw, ms_error *err)
{
    const struct py_offsets before = *o;
    for (int i = 0; i < dt->count; i++) {
        const struct py_debug_check *c = &dt->checks[i];
        if (c->debug_pos < 0 || c->debug_pos + 8 > dt->layout->size)
            continue;
        uint64_t live;
        memcpy(&live, raw + c->debug_pos, 8);
        if (live >= LIVE_OFFSET_MAX)
            return ms_error_set(err,
                                "its _Py_DebugOffsets gives %s as %" PRIu64 ", which is absurd",
                                c->name, live);
        field_set(o, c->field, (int32_t)live);
    }
    for (size_t i = 0; i < sizeof anchored / sizeof anchored[0]; i++) {
        int32_t f = field_get(&before, anchored[i].field);
        int32_t a0 = field_get(&before, anchored[i].anchor);
        int32_t a1 = field_get(o, anchored[i].anchor);
        if (f >= 0 && a0 >= 0 && a1 >= 0)
            field_set(o, anchored[i].field, f + (a1 - a0));
    }
    return 0;
}

/* One present field must lie inside its struct of `size` bytes (width bytes wide). */
static int inside(int32_t off, int32_t width, int32_t size, const char *what, ms_error *err)
{
    if (off == -1)
        return 0;
    if (off < 0 || size <= 0 || off + width > size)
        return ms_error_set(err, "%s at %d does not fit in its struct of %d bytes", what, off,
                            size);
    return 0;
}

int py_offsets_validate(const struct py_offsets *o, ms_error *err)
{
    const int32_t rt = o->runtime_size, in = o->interp_size, ts = o->tstate_size;
    const int32_t fr = o->iframe_size, co = o->code_size;
    struct {
        int32_t off, width, size;
        const char *what;
    } f[] = {
        {o->runtime_interpreters_head, 8, rt, "interpreters.head"},
        {o->runtime_interpreters_main, 8, rt, "interpreters.main"},
        {o->runtime_main_thread, 8, rt, "main_thread"},
        {o->runtime_gilstate_tstate_current, 8, rt, "gilstate.tstate_current"},
        {o->runtime_debug_offsets, 8, rt, "debug_offsets"},
        {o->interp_next, 8, in, "interp.next"},
        {o->interp_tstate_head, 8, in, "interp.tstate_head"},
        {o->interp_threads_head, 8, in, "interp.threads.head"},
        {o->interp_threads_main, 8, in, "interp.threads.main"},
        {o->interp_gil_ptr, 8, in, "interp.ceval.gil"},
        {o->tstate_prev, 8, ts, "tstate.prev"},
        {o->tstate_next, 8, ts, "tstate.next"},
        {o->tstate_interp, 8, ts, "tstate.interp"},
        {o->tstate_frame, 8, ts, "tstate.frame"},
        {o->tstate_cframe, 8, ts, "tstate.cframe"},
        {o->tstate_current_frame, 8, ts, "tstate.current_frame"},
        {o->tstate_thread_id, 8, ts, "tstate.thread_id"},
        {o->tstate_native_thread_id, 8, ts, "tstate.native_thread_id"},
        {o->iframe_code, 8, fr, "frame.f_executable"},
        {o->iframe_previous, 8, fr, "frame.previous"},
        {o->iframe_instr, 8, fr, "frame.instr_ptr"},
        {o->iframe_owner, 1, fr, "frame.owner"},
        {o->code_firstlineno, 4, co, "code.co_firstlineno"},
        {o->code_filename, 8, co, "code.co_filename"},
        {o->code_name, 8, co, "code.co_name"},
        {o->code_qualname, 8, co, "code.co_qualname"},
        {o->code_linetable, 8, co, "code.co_linetable"},
        {o->code_lnotab, 8, co, "code.co_lnotab"},
        {o->code_code, 8, co, "code.co_code"},
        {o->code_code_adaptive, 0, co, "code.co_code_adaptive"},
        {o->object_type, 8, o->varobject_size, "ob_type"},
        {o->varobject_size, 8, o->bytes_sval, "ob_size"},
        {o->unicode_length, 8, o->unicode_ascii_size, "str.length"},
        {o->unicode_state, 1, o->unicode_ascii_size, "str.state"},
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (inside(f[i].off, f[i].width, f[i].size, f[i].what, err))
            return -1;
    if (o->unicode_ascii_size <= 0 || o->unicode_compact_size <= o->unicode_ascii_size)
        return ms_error_set(err, "the str header sizes %d and %d are inconsistent",
                            o->unicode_ascii_size, o->unicode_compact_size);
    if (o->code_tag_mask < -1 || o->code_tag_mask > 7)
        return ms_error_set(err, "the tag mask %d of frame references is absurd", o->code_tag_mask);
    return 0;
}
