/* A service's figures as rows of one table: each row names the figure in the
 * `stats` reply and/or on the Prometheus `/metrics` page, with its help, its
 * type and where it sits in the service's snapshot struct. The service fills
 * one snapshot; both outputs come from it and the same rows, so the two can
 * never disagree. Histograms stay with the service (prom_latency). */
#ifndef STRATA_SVC_METRICS_H
#define STRATA_SVC_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum { SVC_COUNTER, SVC_GAUGE } svc_metric_kind_t;

typedef struct {
    const char *stat;   /* name in the stats reply; NULL: /metrics only */
    const char *metric; /* family name after strata_; NULL: stats only */
    const char *help;
    svc_metric_kind_t kind;
    size_t offset;  /* of the value in the snapshot */
    bool is_double; /* a double there, else a uint64_t */
    double scale;   /* /metrics shows value * scale (0: 1), e.g. ns to seconds; 1e-9
                     * divides by 1e9, for the exact quotient */
    int decimals;   /* the stats reply's digits after the point, for a double */
} svc_metric_t;

typedef void svc_pair_fn(void *sink, const char *name, const char *value);

/* Every row with a stats name, in table order. */
void svc_metrics_pairs(const svc_metric_t *rows, size_t n, const void *snap, svc_pair_fn *add,
                       void *sink);
/* Every row with a metric name: # HELP, # TYPE, value (counters end _total). */
void svc_metrics_prom(const svc_metric_t *rows, size_t n, const void *snap, FILE *out);

#endif
