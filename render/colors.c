/*
 * colors.c - frame colours by code family and file, and diff colours by change (colors.h).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "colors.h"

static uint32_t hash_str(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 16777619u;
    }
    return h;
}

/* HSL (degrees, 0..1, 0..1) to "#rrggbb". */
static void hsl_hex(double h, double s, double l, char out[8])
{
    double c = (1 - fabs(2 * l - 1)) * s;
    double hp = fmod(h, 360.0) / 60.0;
    double x = c * (1 - fabs(fmod(hp, 2.0) - 1));
    double r = 0, g = 0, b = 0;
    if (hp < 1)
        r = c, g = x;
    else if (hp < 2)
        r = x, g = c;
    else if (hp < 3)
        g = c, b = x;
    else if (hp < 4)
        g = x, b = c;
    else if (hp < 5)
        r = x, b = c;
    else
        r = c, b = x;
    double m = l - c / 2;
    snprintf(out, 8, "#%02x%02x%02x", (unsigned)lround((r + m) * 255),
             (unsigned)lround((g + m) * 255), (unsigned)lround((b + m) * 255));
}

static int is_library(const char *file)
{
    return strstr(file, "/site-packages/") || strstr(file, "/dist-packages/");
}

static int is_stdlib(const char *file)
{
    return !strncmp(file, "<frozen ", 8) || strstr(file, "/lib/python") ||
           !strcmp(file, "<string>");
}

void colors_frame(const char *file, int kind, char out[8])
{
    uint32_t h = hash_str(file);
    double jitter = (double)(h % 1000) / 1000.0;         /* hue within the family */
    double shade = (double)((h / 1000) % 1000) / 1000.0; /* lightness within the family */
    if (kind == FLAME_ROOT || kind == FLAME_OTHER)
        hsl_hex(0, 0, 0.80, out);
    else if (kind == FLAME_IMPORT)
        hsl_hex(265 + 25 * jitter, 0.45, 0.72 + 0.06 * shade, out);
    else if (is_library(file))
        hsl_hex(90 + 60 * jitter, 0.45, 0.58 + 0.12 * shade, out);
    else if (is_stdlib(file))
        hsl_hex(190 + 30 * jitter, 0.50, 0.66 + 0.10 * shade, out);
    else
        hsl_hex(5 + 45 * jitter, 0.80, 0.58 + 0.10 * shade, out);
}

void colors_diff(int64_t before, int64_t after, char out[8])
{
    if (before == after) {
        snprintf(out, 8, "#f2f2f2");
        return;
    }
    double b = (double)before, a = (double)after;
    double rel = fabs(a - b) / fmax(fabs(a), fabs(b)); /* 0 < rel <= 1 */
    /* A floor of visible tint so any change shows, then proportional to the change. */
    unsigned fade = (unsigned)lround(230 - 150 * rel); /* 80..230: labels stay legible */
    if (after > before)
        snprintf(out, 8, "#ff%02x%02x", fade, fade);
    else
        snprintf(out, 8, "#%02x%02xff", fade, fade);
}
