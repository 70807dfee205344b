/* metrics_int.h — the types shared by metrics.c (registry, updates) and
 * metrics_render.c (text format); library-internal. */
#ifndef WARD_METRICS_INT_H
#define WARD_METRICS_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include <ward/metrics.h>

enum ward__metric_kind { WARD__COUNTER, WARD__GAUGE, WARD__HISTOGRAM };

struct ward_metric {
    struct ward_metric *chain; /* next in the same hash slot */
    struct ward_metric *next; /* next in creation order: children render in that order */
    enum ward__metric_kind kind;
    uint64_t hash;
    char **values; /* the label values; one allocation holding pointers and text */
    const double *bounds; /* histogram: the family's upper bounds */
    size_t nbounds; /* histogram: buckets[] holds nbounds + 1 counts, the last +Inf */
    /* counter: the count; gauge: bits of the double; histogram: bits of the sum */
    _Atomic uint64_t value;
    _Atomic uint64_t buckets[]; /* histogram: observations per bucket, not cumulative */
};

struct ward_metric_family {
    pthread_mutex_t lock; /* guards slots, nslots, count, first and last */
    char *name;
    char *help;
    enum ward__metric_kind kind;
    size_t nlabels;
    char **labels;
    size_t nbounds;
    double *bounds;
    struct ward_metric **slots; /* hash table of children by label values; nslots a power of 2 */
    size_t nslots;
    size_t count;
    struct ward_metric *first;
    struct ward_metric *last;
    struct ward_metric *only; /* the single child of a family without labels */
};

struct ward__collector {
    ward_metrics_collect_fn fn;
    void *arg;
};

struct ward_metrics {
    pthread_mutex_t lock;         /* guards both arrays */
    pthread_mutex_t collect_lock; /* held while collectors run, so off_collect can wait them out */
    struct ward_metric_family **families;
    size_t nfamilies, families_cap;
    struct ward__collector *collectors;
    size_t ncollectors, collectors_cap;
};

static inline uint64_t ward__to_bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

static inline double ward__from_bits(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

#endif
