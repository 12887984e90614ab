/* A log-linear latency histogram (HdrHistogram's idea): exact below 256 ns,
 * then 128 linear buckets per power of two, so any recorded value is known
 * to within 1/128 (0.8%) up to about 137 s. Not thread-safe: keep one per
 * thread and merge them at the end. Used by strata-bench and, later, the
 * services' /metrics (as Prometheus buckets). */
#ifndef STRATA_HISTOGRAM_H
#define STRATA_HISTOGRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct strata_histogram strata_histogram_t;

/* Values above this are counted in the top bucket; min, max, sum and mean
 * still see the exact value. */
#define STRATA_HISTOGRAM_MAX_TRACKABLE ((UINT64_C(1) << 37) - 1)

/* A new, empty histogram, or NULL when out of memory. */
strata_histogram_t *strata_histogram_new(void);
/* Frees and nulls *self_p; a NULL *self_p is fine. */
void strata_histogram_destroy(strata_histogram_t **self_p);

void strata_histogram_record(strata_histogram_t *self, uint64_t value_ns);
/* Adds src's counts into dst; src is unchanged. */
void strata_histogram_merge(strata_histogram_t *dst, const strata_histogram_t *src);
void strata_histogram_reset(strata_histogram_t *self);

uint64_t strata_histogram_count(const strata_histogram_t *self);
/* min and max are exact; both are 0 when the histogram is empty. */
uint64_t strata_histogram_min(const strata_histogram_t *self);
uint64_t strata_histogram_max(const strata_histogram_t *self);
uint64_t strata_histogram_sum(const strata_histogram_t *self);
double strata_histogram_mean(const strata_histogram_t *self);

/* The smallest value v such that at least percent% of the recorded values
 * are <= v, rounded up to its bucket's highest value and clamped to
 * [min, max]; percent is clamped to [0, 100]. 0 when empty. */
uint64_t strata_histogram_percentile(const strata_histogram_t *self, double percent);

/* Values recorded that are <= upper_ns, for fixed Prometheus `le` buckets.
 * A bucket straddling upper_ns counts as above it, so the answer may be
 * low by the values within 0.8% below upper_ns. */
uint64_t strata_histogram_count_at_or_below(const strata_histogram_t *self, uint64_t upper_ns);

/* Position of a bucket walk; zero it (= {0}) to start from the lowest. */
typedef struct {
    size_t next_index;
    uint64_t cumulative;
} strata_histogram_cursor_t;

/* Walks the non-empty buckets in ascending order: each call that returns
 * true gives the bucket's highest value in *upper_ns and the count of all
 * values <= it in *cumulative. Returns false past the last non-empty
 * bucket. The histogram must not change during the walk. */
bool strata_histogram_next_bucket(const strata_histogram_t *self, strata_histogram_cursor_t *cursor,
                                  uint64_t *upper_ns, uint64_t *cumulative);

#endif
