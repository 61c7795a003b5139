/*
 * fuzz_profile_read.c - libFuzzer target for the profile reader, the parser of untrusted
 * files that `memsnap render` and `memsnap stats` run on whatever they are given.
 *
 * Each input goes through profile_read_mem(). When it is accepted, every reference the
 * header promises is in range is followed, as a consumer would without checking, so that
 * AddressSanitizer catches any broken promise (memsnap's comments included: the timeline
 * they carry must be bounded and in order); then the builder adopts the profile and adds
 * to it, which re-indexes everything that was read. Built and run by scripts/fuzz.d/profile.sh.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "profile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Touches a string the way a renderer would (its length and last byte). */
static size_t string_touch(const struct profile *p, uint32_t i)
{
    const char *s = p->strings[i];
    size_t n = strlen(s);
    return n ? (unsigned char)s[n - 1] + n : 0;
}

static size_t profile_walk(const struct profile *p)
{
    size_t sum = string_touch(p, 0);
    for (size_t i = 0; i < p->n_sample_types; i++)
        sum += string_touch(p, p->sample_types[i].type) + string_touch(p, p->sample_types[i].unit);
    sum += string_touch(p, p->sample_types[p->default_sample_type].type);
    sum += string_touch(p, p->period_type.type) + string_touch(p, p->period_type.unit);
    sum += string_touch(p, p->meta.command) + string_touch(p, p->meta.python_version) +
           string_touch(p, p->meta.mode);
    for (size_t i = 0; i < p->n_samples; i++) {
        const struct profile_sample *s = &p->samples[i];
        sum += string_touch(p, s->thread);
        for (size_t t = 0; t < p->n_sample_types; t++)
            sum += (size_t)p->values[i * p->n_sample_types + t];
        for (uint32_t k = 0; k < s->n_locs; k++) {
            const struct profile_location *l = &p->locations[p->stack_locs[s->first_loc + k]];
            if (l->n_lines == 0)
                __builtin_trap(); /* the reader promises at least one line */
            for (uint32_t j = 0; j < l->n_lines; j++) {
                const struct profile_function *f =
                    &p->functions[p->lines[l->first_line + j].function];
                sum += string_touch(p, f->name) + string_touch(p, f->filename);
            }
        }
    }
    if (p->n_timeline > PROFILE_MAX_TIMELINE_POINTS)
        __builtin_trap();
    for (size_t i = 0; i < p->n_timeline; i++) {
        if (p->timeline[i].t_ns < 0 || p->timeline[i].rss < 0 || p->timeline[i].heap < 0 ||
            (i && p->timeline[i].t_ns < p->timeline[i - 1].t_ns))
            __builtin_trap(); /* memsnap's comments are validated before they are kept */
        sum += (size_t)p->timeline[i].rss;
    }
    for (size_t i = 0; i < p->n_comments; i++)
        sum += string_touch(p, p->comments[i]);
    return sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct profile *p = NULL;
    ms_error err;
    if (profile_read_mem(data, size, &p, &err) != 0) {
        if (p || !err.msg[0])
            __builtin_trap(); /* a refusal must come with a message and no profile */
        return 0;
    }
    volatile size_t sink = profile_walk(p);
    (void)sink;
    uint32_t f = profile_add_function(p, "fuzz", "fuzz.py", 1);
    if (f != UINT32_MAX) {
        struct profile_line line = {f, 2};
        profile_add_location(p, &line, 1);
    }
    profile_add_comment(p, "fuzz");
    profile_free(p);
    return 0;
}
