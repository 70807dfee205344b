/* breaker_window.h — the breaker's sliding window (count- or time-based), internal to
 * lib/breaker.c. Not thread-safe: the breaker calls it under its own lock. */
#ifndef WARD_LIB_BREAKER_WINDOW_H
#define WARD_LIB_BREAKER_WINDOW_H

#include <stdbool.h>
#include <stdint.h>

#include <ward/breaker.h>

struct ward__bwin;

/* The window's totals at some time. */
struct ward__bwin_totals {
    uint64_t calls;
    uint64_t failures;
    uint64_t slow;
};

/* Fills the defaults of the zero fields of *cfg and checks it: INVAL for an unknown kind,
 * a rate above 100 or a size above its maximum. kind NONE is accepted and left alone. */
WARD_MUST_CHECK enum ward_err ward__bwin_normalize(struct ward_breaker_window *cfg);

/* An empty window for a normalized cfg whose kind is not NONE; NOMEM when out of memory. */
WARD_MUST_CHECK enum ward_err ward__bwin_new(const struct ward_breaker_window *cfg,
                                             struct ward__bwin **out);

void ward__bwin_free(struct ward__bwin *w);

/* Forgets every call (a new generation). */
void ward__bwin_clear(struct ward__bwin *w);

/* Records one call that ended at now_ns and reports whether the window now holds at least
 * min_calls calls with a failure or slow-call rate at or above its threshold. */
bool ward__bwin_record(struct ward__bwin *w, int64_t now_ns, bool failed, int64_t duration_ns);

/* The totals of the calls in the window at now_ns. */
void ward__bwin_totals(struct ward__bwin *w, int64_t now_ns, struct ward__bwin_totals *out);

#endif
