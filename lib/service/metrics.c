/* The metrics table's two outputs. */
#include "metrics.h"

#include <inttypes.h>
#include <string.h>

#include "http.h"

static uint64_t u64_at(const void *snap, size_t offset)
{
    uint64_t v;
    memcpy(&v, (const char *)snap + offset, sizeof v);
    return v;
}

static double f64_at(const void *snap, size_t offset)
{
    double v;
    memcpy(&v, (const char *)snap + offset, sizeof v);
    return v;
}

void svc_metrics_pairs(const svc_metric_t *rows, size_t n, const void *snap, svc_pair_fn *add,
                       void *sink)
{
    char value[64];
    for (size_t i = 0; i < n; i++) {
        const svc_metric_t *r = &rows[i];
        if (!r->stat)
            continue;
        if (r->is_double)
            snprintf(value, sizeof value, "%.*f", r->decimals, f64_at(snap, r->offset));
        else
            snprintf(value, sizeof value, "%" PRIu64, u64_at(snap, r->offset));
        add(sink, r->stat, value);
    }
}

/* A figure scaled to seconds must be the double nearest the true quotient,
 * as ns / 1e9 and ms / 1e3 give it, so the page does not change when a
 * service moves a figure into its table; ns * 1e-9 is often one ulp away
 * (9 ms: 0.0090000000000000011 instead of 0.0089999999999999993 under
 * %.17g). So a scale that is the reciprocal of a whole number divides by it. */
static double scaled(double value, double scale)
{
    if (scale >= 1e-18 && scale < 1) { /* 1 / scale fits a uint64_t */
        double divisor = (double)(uint64_t)(1 / scale + 0.5);
        if (divisor > 1 && 1 / divisor == scale)
            return value / divisor;
    }
    return value * scale;
}

void svc_metrics_prom(const svc_metric_t *rows, size_t n, const void *snap, FILE *out)
{
    for (size_t i = 0; i < n; i++) {
        const svc_metric_t *r = &rows[i];
        if (!r->metric)
            continue;
        double scale = r->scale != 0 ? r->scale : 1;
        double value =
            scaled(r->is_double ? f64_at(snap, r->offset) : (double)u64_at(snap, r->offset), scale);
        if (r->kind == SVC_COUNTER && !r->is_double && scale == 1)
            prom_counter(out, r->metric, r->help, u64_at(snap, r->offset));
        else if (r->kind == SVC_COUNTER)
            /* A scaled counter (ns shown as seconds) is still a counter. */
            fprintf(out, "# HELP strata_%s %s\n# TYPE strata_%s counter\nstrata_%s %.17g\n",
                    r->metric, r->help, r->metric, r->metric, value);
        else
            prom_gauge(out, r->metric, r->help, value);
    }
}
