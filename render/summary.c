/*
 * summary.c - the recording's facts as display-ready (label, value) pairs (see summary.h).
 */
#include <stdio.h>
#include <string.h>

#include "summary.h"
#include "units.h"

static char *add(struct summary *s, const char *label)
{
    if (s->n >= SUMMARY_MAX_ITEMS)
        return NULL;
    s->items[s->n].label = label;
    s->items[s->n].value[0] = '\0';
    return s->items[s->n++].value;
}

char *summary_value(const struct flame_tree *t, int64_t v, char *buf, size_t len)
{
    if (t && !strcmp(t->metric_unit, "bytes"))
        return units_bytes(v, buf, len);
    char n[UNITS_BUF];
    units_count(v, n, sizeof n);
    if (t && t->metric_unit[0] && strcmp(t->metric_unit, "count"))
        snprintf(buf, len, "%s %s", n, t->metric_unit);
    else
        snprintf(buf, len, "%s", n);
    return buf;
}

void summary_items(const struct profile *p, const struct flame_tree *t, struct summary *out)
{
    const struct profile_meta *m = &p->meta;
    char a[UNITS_BUF], b[UNITS_BUF];
    char *v;
    out->n = 0;
    if (m->mode && (v = add(out, "mode")))
        snprintf(v, 256, "%s", p->strings[m->mode]);
    if (m->pid > 0 && (v = add(out, "pid")))
        snprintf(v, 256, "%lld", (long long)m->pid);
    if (m->python_version && (v = add(out, "python")))
        snprintf(v, 256, "%s", p->strings[m->python_version]);
    if (m->command && (v = add(out, "command")))
        snprintf(v, 256, "%s", p->strings[m->command]);
    int64_t duration = m->duration_ns ? m->duration_ns : p->duration_nanos;
    if (duration > 0 && (v = add(out, "duration")))
        units_duration(duration, v, 256);
    int64_t rate = m->rate ? m->rate : p->period;
    if (rate > 0 && (v = add(out, "sampling"))) {
        if (rate == 1)
            snprintf(v, 256, "every allocation");
        else
            snprintf(v, 256, "1 sample per %s (mean)", units_bytes(rate, a, sizeof a));
    }
    if (m->peak_heap > 0 && (v = add(out, "peak heap"))) {
        units_bytes(m->peak_heap, v, 256);
        if (m->peak_time_ns > 0)
            snprintf(v + strlen(v), 256 - strlen(v), " at %s",
                     units_duration(m->peak_time_ns, a, sizeof a));
    }
    if (m->peak_rss > 0 && (v = add(out, "peak RSS")))
        units_bytes(m->peak_rss, v, 256);
    if (m->total_alloc_bytes > 0 && (v = add(out, "allocated")))
        snprintf(v, 256, "%s in %s blocks", units_bytes(m->total_alloc_bytes, a, sizeof a),
                 units_count(m->total_alloc_count, b, sizeof b));
    if (t && (v = add(out, t->metric)))
        summary_value(t, t->nodes[0].total, v, 256);
    if (t && t->has_base && (v = add(out, "before"))) {
        summary_value(t, t->nodes[0].base_total, v, 256);
    }
    if ((v = add(out, "samples")))
        units_count((int64_t)p->n_samples, v, 256);
    if ((m->dropped_events > 0 || m->mode) && (v = add(out, "dropped"))) {
        units_count(m->dropped_events, a, sizeof a);
        if (m->dropped_bytes > 0)
            snprintf(v, 256, "%s events (%s)", a, units_bytes(m->dropped_bytes, b, sizeof b));
        else
            snprintf(v, 256, "%s events", a);
    }
}
