/* bulkhead.h — a cap on the calls in flight to one dependency: a slot is taken before a
 * call and given back after it, and when none is free the call fails at once. */
#ifndef WARD_BULKHEAD_H
#define WARD_BULKHEAD_H

#include <stdint.h>

#include <ward/err.h>
#include <ward/metrics.h>

struct ward_bulkhead;

/* No clock: a bulkhead never waits and never looks at time. */
struct ward_bulkhead_settings {
    const char *name;        /* the `name` label of the metrics; copied; default "default" */
    uint32_t max_concurrent; /* slots; >= 1; default 25 (resilience4j's) */
};

struct ward_bulkhead_stats {
    uint32_t in_use;     /* slots taken now */
    uint32_t max;        /* max_concurrent */
    uint64_t rejections; /* acquisitions refused since creation */
};

/* Fills s with the defaults above. */
void ward_bulkhead_settings_default(struct ward_bulkhead_settings *s);

/* Creates a bulkhead from s (NULL = the defaults). INVAL when max_concurrent is 0 or out
 * is NULL; NOMEM. On success *out is set and the caller owns it (ward_bulkhead_free); on
 * failure *out is untouched. */
WARD_MUST_CHECK enum ward_err ward_bulkhead_new(const struct ward_bulkhead_settings *s,
                                                struct ward_bulkhead **out);

/* Frees bh. NULL is a no-op. No other thread may be using bh. When exported, it first
 * unregisters its collect callback, waiting for a render that is running it. */
void ward_bulkhead_free(struct ward_bulkhead *bh);

/* Takes a slot: OK, and the caller owes one ward_bulkhead_release; or BULKHEAD_FULL at
 * once when max_concurrent slots are taken (counted as a rejection). Never waits, never
 * takes more than max_concurrent slots. Lock-free (one compare-and-swap when not full). */
WARD_MUST_CHECK enum ward_err ward_bulkhead_acquire(struct ward_bulkhead *bh);

/* Gives back a slot taken by a successful ward_bulkhead_acquire. A release with no slot
 * taken is a caller's bug: asserted in debug builds, ignored otherwise. Lock-free. */
void ward_bulkhead_release(struct ward_bulkhead *bh);

/* Fills *out: in_use and rejections are read one after the other, each exact. */
void ward_bulkhead_stats(const struct ward_bulkhead *bh, struct ward_bulkhead_stats *out);

/* Registers in reg, labelled name="<settings name>": the counter
 * ward_bulkhead_rejections_total and the gauges ward_bulkhead_in_use and
 * ward_bulkhead_max. A collect callback brings them up to date at every render (the
 * counter gains the rejections since the last render, so it is exact and starts from the
 * rejections before the export), which is why acquire and release pay nothing for them.
 * reg must outlive bh; ward_bulkhead_free unregisters the callback
 * (ward_metrics_off_collect), so renders after it are safe.
 * INVAL on NULL or when a family of that name exists with another type or labels; STATE
 * when bh was already exported; NOMEM. Thread-safe against acquire and release. */
WARD_MUST_CHECK enum ward_err ward_bulkhead_export(struct ward_bulkhead *bh,
                                                   struct ward_metrics *reg);

#endif
