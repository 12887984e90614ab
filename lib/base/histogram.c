/* The log-linear latency histogram. Bucket i < 256 holds exactly the value i;
 * above that, each power of two [2^e, 2^(e+1)) is split into 128 buckets of
 * width 2^(e-7), so a bucket's width is at most 1/128 of its values. The
 * index is shift * 128 + (value >> shift), which is continuous across the
 * powers of two and needs one count-leading-zeros per record. */
#include "strata/histogram.h"

#include <stdlib.h>
#include <string.h>

#define SUB_BUCKET_BITS 7
#define SUB_BUCKETS     (1u << SUB_BUCKET_BITS)
#define LINEAR_LIMIT    (2u * SUB_BUCKETS) /* values below are their own bucket */
#define TRACKABLE_BITS  37                 /* STRATA_HISTOGRAM_MAX_TRACKABLE is 2^37 - 1 */
/* One past the index of MAX_TRACKABLE: its shift is 37 - 1 - 7 and its
 * value >> shift is 255. */
#define BUCKET_COUNT ((TRACKABLE_BITS - 1 - SUB_BUCKET_BITS) * SUB_BUCKETS + LINEAR_LIMIT)

struct strata_histogram {
    uint64_t count;
    uint64_t min;
    uint64_t max;
    uint64_t sum; /* saturates rather than wraps */
    uint64_t counts[BUCKET_COUNT];
};

static inline size_t s_bucket_index(uint64_t value)
{
    if (value > STRATA_HISTOGRAM_MAX_TRACKABLE)
        value = STRATA_HISTOGRAM_MAX_TRACKABLE;
    if (value < LINEAR_LIMIT)
        return (size_t)value;
    unsigned top_bit = 63u - (unsigned)__builtin_clzll(value);
    unsigned shift = top_bit - SUB_BUCKET_BITS;
    return (size_t)shift * SUB_BUCKETS + (size_t)(value >> shift);
}

static uint64_t s_bucket_highest(size_t index)
{
    if (index < LINEAR_LIMIT)
        return index;
    unsigned shift = (unsigned)(index / SUB_BUCKETS) - 1u;
    uint64_t sub = index - (size_t)shift * SUB_BUCKETS;
    return (sub << shift) + ((UINT64_C(1) << shift) - 1u);
}

strata_histogram_t *strata_histogram_new(void)
{
    return calloc(1, sizeof(strata_histogram_t));
}

void strata_histogram_destroy(strata_histogram_t **self_p)
{
    if (self_p && *self_p) {
        free(*self_p);
        *self_p = NULL;
    }
}

void strata_histogram_record(strata_histogram_t *self, uint64_t value_ns)
{
    self->counts[s_bucket_index(value_ns)]++;
    if (self->count == 0 || value_ns < self->min)
        self->min = value_ns;
    if (value_ns > self->max)
        self->max = value_ns;
    self->count++;
    uint64_t sum = self->sum + value_ns;
    self->sum = sum < self->sum ? UINT64_MAX : sum;
}

void strata_histogram_merge(strata_histogram_t *dst, const strata_histogram_t *src)
{
    if (src->count == 0)
        return;
    for (size_t i = 0; i < BUCKET_COUNT; i++)
        dst->counts[i] += src->counts[i];
    if (dst->count == 0 || src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
    dst->count += src->count;
    uint64_t sum = dst->sum + src->sum;
    dst->sum = sum < dst->sum ? UINT64_MAX : sum;
}

void strata_histogram_reset(strata_histogram_t *self)
{
    memset(self, 0, sizeof *self);
}

uint64_t strata_histogram_count(const strata_histogram_t *self)
{
    return self->count;
}

uint64_t strata_histogram_min(const strata_histogram_t *self)
{
    return self->min;
}

uint64_t strata_histogram_max(const strata_histogram_t *self)
{
    return self->max;
}

uint64_t strata_histogram_sum(const strata_histogram_t *self)
{
    return self->sum;
}

double strata_histogram_mean(const strata_histogram_t *self)
{
    return self->count ? (double)self->sum / (double)self->count : 0.0;
}

uint64_t strata_histogram_percentile(const strata_histogram_t *self, double percent)
{
    if (self->count == 0)
        return 0;
    if (!(percent > 0.0)) /* also catches NaN */
        percent = 0.0;
    if (percent > 100.0)
        percent = 100.0;
    /* Nearest rank, rounded as HdrHistogram does: the +0.5 keeps p99 of 100
     * values at the 99th even when percent / 100 is inexact in binary. */
    uint64_t rank = (uint64_t)(percent / 100.0 * (double)self->count + 0.5);
    if (rank < 1)
        rank = 1;
    /* The ends are known exactly, not just to a bucket. */
    if (rank == 1)
        return self->min;
    if (rank >= self->count)
        return self->max;
    uint64_t seen = 0;
    size_t index = 0;
    for (; index < BUCKET_COUNT; index++) {
        seen += self->counts[index];
        if (seen >= rank)
            break;
    }
    uint64_t value = s_bucket_highest(index);
    if (value > self->max)
        value = self->max;
    if (value < self->min)
        value = self->min;
    return value;
}

uint64_t strata_histogram_count_at_or_below(const strata_histogram_t *self, uint64_t upper_ns)
{
    if (self->count == 0 || upper_ns < self->min)
        return 0;
    if (upper_ns >= self->max)
        return self->count;
    uint64_t below = 0;
    for (size_t i = 0; i < BUCKET_COUNT && s_bucket_highest(i) <= upper_ns; i++)
        below += self->counts[i];
    return below;
}

bool strata_histogram_next_bucket(const strata_histogram_t *self, strata_histogram_cursor_t *cursor,
                                  uint64_t *upper_ns, uint64_t *cumulative)
{
    for (size_t i = cursor->next_index; i < BUCKET_COUNT; i++) {
        if (self->counts[i] == 0)
            continue;
        cursor->cumulative += self->counts[i];
        cursor->next_index = i + 1;
        *upper_ns = s_bucket_highest(i);
        *cumulative = cursor->cumulative;
        return true;
    }
    cursor->next_index = BUCKET_COUNT;
    return false;
}
