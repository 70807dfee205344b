/* budget.h — a retry budget in Finagle's manner: every request deposits, every retry
 * withdraws, and retries stay within a share of the requests over a sliding window plus
 * a small floor, so that a failing dependency never sees a retry storm. */
#ifndef WARD_BUDGET_H
#define WARD_BUDGET_H

#include <stdint.h>

#include <ward/clock.h>
#include <ward/err.h>
#include <ward/metrics.h>

struct ward_budget;

struct ward_budget_settings {
    const char *name;        /* the `name` label of the metrics; copied; default "default" */
    uint32_t percent;        /* retries per 100 requests in the window; <= 1000; default 20 */
    uint32_t min_retries_per_second; /* the floor: min_retries_per_second × window retries
                                        per window whatever the traffic; default 10 */
    int64_t window_ns;       /* default 10 s */
    uint32_t buckets;        /* the window slides by window_ns / buckets; 1..3600; default 10 */
    const struct ward_clock *clock; /* NULL = the real clock; must outlive the budget */
};

/* A snapshot. "In the window" means the current bucket and the buckets - 1 before it. */
struct ward_budget_stats {
    uint64_t requests;        /* deposits in the window */
    uint64_t retries;         /* successful withdrawals in the window */
    uint64_t available;       /* withdrawals that would succeed now */
    uint64_t requests_total;  /* deposits since creation */
    uint64_t retries_total;   /* successful withdrawals since creation */
    uint64_t exhausted_total; /* refused withdrawals since creation */
};

/* Fills s with the defaults above. */
void ward_budget_settings_default(struct ward_budget_settings *s);

/* Creates a budget from s (NULL = the defaults). INVAL when a setting is out of range or
 * window_ns / buckets is below 1 ns; NOMEM. On success *out is set and the caller owns it
 * (ward_budget_free); on failure *out is untouched. Reads the clock once. */
WARD_MUST_CHECK enum ward_err ward_budget_new(const struct ward_budget_settings *s,
                                              struct ward_budget **out);

/* Frees b. NULL is a no-op. No other thread may be using b. */
void ward_budget_free(struct ward_budget *b);

/* Counts one request: call it once per logical request (not per retry). Thread-safe:
 * reads the clock once, outside a spinlock held for a few instructions; never fails. */
void ward_budget_deposit(struct ward_budget *b);

/* Takes one retry out of the budget: OK when retries in the window + 1 <=
 * percent × requests in the window / 100 + floor (integer division), and counts the
 * retry; BUDGET_EXHAUSTED otherwise, counted as an exhaustion. Call it after the retry
 * policy said yes and before waiting. Thread-safe, as deposit. */
WARD_MUST_CHECK enum ward_err ward_budget_try_withdraw(struct ward_budget *b);

/* How many withdrawals would succeed now. Thread-safe. */
uint64_t ward_budget_available(struct ward_budget *b);

/* Fills *out with a consistent snapshot (taken under the lock at one clock reading). */
void ward_budget_stats(struct ward_budget *b, struct ward_budget_stats *out);

/* Registers in reg, labelled name="<settings name>": ward_retry_budget_retries_total and
 * ward_retry_budget_exhausted_total, updated as retries and exhaustions happen, and
 * ward_retry_budget_requests_total, whose deposits are added once per bucket when the
 * window slides (so it lags by up to one bucket width, never by a deposit's own cost).
 * The counters start at the totals so far. reg must outlive b. INVAL on NULL or when a
 * family of that name exists with another type or labels; STATE when b was already
 * exported; NOMEM. On failure nothing is updated later (families may stay registered). */
WARD_MUST_CHECK enum ward_err ward_budget_export(struct ward_budget *b, struct ward_metrics *reg);

#endif
