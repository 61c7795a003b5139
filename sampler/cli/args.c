/*
 * args.c - size and duration arguments in one grammar for every subcommand (args.h), so that
 * `attach --rate 512k` and `run --rate 512k` mean the same thing.
 */
#include "args.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int args_parse_size(const char *s, uint64_t max, uint64_t *out)
{
    if (!s || !isdigit((unsigned char)s[0]))
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || v == 0)
        return -1;
    static const struct {
        const char *suffix;
        unsigned shift;
    } units[] = {{"", 0},    {"b", 0},    {"k", 10}, {"kb", 10}, {"kib", 10}, {"m", 20},
                 {"mb", 20}, {"mib", 20}, {"g", 30}, {"gb", 30}, {"gib", 30}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcasecmp(end, units[i].suffix) != 0)
            continue;
        if (v > (max >> units[i].shift))
            return -1;
        *out = (uint64_t)v << units[i].shift;
        return 0;
    }
    return -1;
}

int args_parse_duration(const char *s, double max_s, double *out)
{
    if (!s || !(isdigit((unsigned char)s[0]) || s[0] == '.'))
        return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s)
        return -1;
    double scale;
    if (!*end || !strcmp(end, "s"))
        scale = 1;
    else if (!strcmp(end, "ms"))
        scale = 1e-3;
    else if (!strcmp(end, "m") || !strcmp(end, "min"))
        scale = 60;
    else if (!strcmp(end, "h"))
        scale = 3600;
    else
        return -1;
    v *= scale;
    if (!(v > 0) || v > max_s)
        return -1;
    *out = v;
    return 0;
}
