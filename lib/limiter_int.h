/* limiter_int.h — token-bucket arithmetic shared by the limiter and the keyed limiter. */
#ifndef WARD_LIB_LIMITER_INT_H
#define WARD_LIB_LIMITER_INT_H

#include <stdint.h>

#include <ward/clock.h>

/* a + b and a - b, saturating at the int64 range instead of overflowing. */
static inline int64_t ward__sat_add(int64_t a, int64_t b)
{
    int64_t r;

    if (__builtin_add_overflow(a, b, &r))
        r = b > 0 ? INT64_MAX : INT64_MIN;
    return r;
}

static inline int64_t ward__sat_sub(int64_t a, int64_t b)
{
    int64_t r;

    if (__builtin_sub_overflow(a, b, &r))
        r = b < 0 ? INT64_MAX : INT64_MIN;
    return r;
}

/* Tokens earned over d ns (x/time/rate's tokensFromDuration): whole seconds and the
 * nanosecond rest are converted apart, as Go's Duration.Seconds does, so that a long d
 * loses no precision (golang.org/issue/34861). */
static inline double ward__tokens_from_duration(double limit, int64_t d)
{
    if (limit <= 0)
        return 0;
    return ((double)(d / WARD_NS_PER_S) + (double)(d % WARD_NS_PER_S) / 1e9) * limit;
}

#endif
