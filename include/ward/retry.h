/* retry.h — retry policy: backoff with jitter, a classifier of what is safe to retry,
 * Retry-After, and one plan function that never lets a retry sleep past the deadline.
 * Values and pure functions only: nothing here sleeps, allocates, locks or does I/O. */
#ifndef WARD_RETRY_H
#define WARD_RETRY_H

#include <stdbool.h>
#include <stdint.h>

#include <ward/err.h>

/* A deadline meaning "none" for ward_retry_plan. */
#define WARD_RETRY_NO_DEADLINE INT64_MAX

enum ward_retry_jitter {
    WARD_RETRY_JITTER_FULL = 0,     /* uniform in [0, d] (AWS's "full jitter"); the default */
    WARD_RETRY_JITTER_EQUAL,        /* d/2 + uniform in [0, d - d/2] */
    WARD_RETRY_JITTER_DECORRELATED, /* min(cap, uniform in [base, 3 × previous delay]) */
    WARD_RETRY_JITTER_NONE          /* exactly d */
};

/* A retry policy: a value the caller embeds and may share read-only between threads.
 * Durations are nanoseconds. Fill it with ward_retry_policy_default(), then change fields.
 * Below, base and cap stand for base_ns and cap_ns. */
struct ward_retry_policy {
    uint32_t max_attempts;   /* attempts in all, the first included; >= 1; default 3 */
    int64_t base_ns;         /* first retry's backoff, before jitter; > 0; default 100 ms */
    double multiplier;       /* growth per attempt; finite and >= 1; default 2 */
    int64_t cap_ns;          /* no backoff is longer; >= base_ns; default 10 s */
    enum ward_retry_jitter jitter; /* default FULL */
    int64_t max_retry_after_ns; /* a longer Retry-After stops the retries; >= 0; default 60 s */
};

/* The random source of the jitter. next == NULL uses a built-in splitmix64 on state;
 * otherwise next(arg) supplies uniformly distributed 64-bit numbers (tests inject a
 * fixed sequence). Not thread-safe: keep one per request (it lives in ward_retry_state). */
struct ward_retry_rng {
    uint64_t (*next)(void *arg);
    void *arg;
    uint64_t state;
};

/* Why a request failed, as far as retrying is concerned. */
enum ward_retry_cause {
    WARD_RETRY_CAUSE_RESPONSE = 0, /* a response arrived: its status decides */
    WARD_RETRY_CAUSE_CONNECT,      /* connect refused or host unreachable */
    WARD_RETRY_CAUSE_DNS,          /* the name did not resolve */
    WARD_RETRY_CAUSE_RESET,        /* reset or closed before the whole response arrived */
    WARD_RETRY_CAUSE_TIMEOUT,      /* the attempt's own timeout expired */
    WARD_RETRY_CAUSE_LOCAL         /* failed here without a response: err says why */
};

/* The outcome of one attempt, as the caller saw it. Borrowed: nothing is kept. */
struct ward_retry_outcome {
    enum ward_retry_cause cause;
    int status;              /* RESPONSE: the HTTP status code */
    enum ward_err err;       /* LOCAL: OPEN, TOO_MANY_REQUESTS, RATE_LIMITED, BULKHEAD_FULL,
                                BUDGET_EXHAUSTED, DEADLINE, or any other error */
    const char *method;      /* "GET", "POST", ... (case-sensitive); NULL counts as unknown */
    bool idempotency_key;    /* the request carried an Idempotency-Key header */
    const char *retry_after; /* RESPONSE: the Retry-After header's value, NULL when absent */
    int64_t wall_now_ns;     /* wall-clock ns since the epoch when the response arrived, to
                                turn an HTTP-date Retry-After into a delay; 0 = read it then */
};

/* A decision: retry, or stop and why. Numbers are stable (logs, metrics labels). */
enum ward_retry_verdict {
    WARD_RETRY_YES = 0,             /* retry after the planned delay */
    WARD_RETRY_STOP_SUCCESS,        /* a 1xx, 2xx or 3xx response: nothing to retry */
    WARD_RETRY_STOP_STATUS,         /* a status never retried: 4xx but 429, and 500, 501, 505... */
    WARD_RETRY_STOP_NOT_IDEMPOTENT, /* POST, PATCH or unknown method without Idempotency-Key */
    WARD_RETRY_STOP_REJECTED,       /* a local rejection (open circuit, rate limited, bulkhead
                                       full, budget exhausted): the request never left */
    WARD_RETRY_STOP_ERROR,          /* another local error (no memory, bad argument...) */
    WARD_RETRY_STOP_ATTEMPTS,       /* max_attempts made */
    WARD_RETRY_STOP_RETRY_AFTER,    /* the server asked to wait longer than max_retry_after_ns */
    WARD_RETRY_STOP_DEADLINE        /* the next attempt could not start before the deadline */
};

/* Per-request state for ward_retry_plan. A value; not shared between threads. */
struct ward_retry_state {
    uint32_t attempts;     /* attempts made so far: each ward_retry_plan call counts one */
    int64_t last_delay_ns; /* the delay of the last YES (decorrelated jitter); 0 before */
    struct ward_retry_rng rng;
};

/* Fills p with the defaults above. */
void ward_retry_policy_default(struct ward_retry_policy *p);

/* OK when p is usable (the bounds above), INVAL otherwise (or when p is NULL). */
WARD_MUST_CHECK enum ward_err ward_retry_policy_check(const struct ward_retry_policy *p);

/* Seeds rng's built-in generator with seed (same seed, same sequence) and clears next. */
void ward_retry_rng_seed(struct ward_retry_rng *rng, uint64_t seed);

/* Starts a request's retry state: no attempts, no previous delay, the built-in generator
 * seeded from the thread's random source (reseed st->rng for deterministic tests). */
void ward_retry_state_init(struct ward_retry_state *st);

/* The backoff before the retry that follows attempt `attempt` (1 = the first attempt
 * failed): d = min(cap, base × multiplier^(attempt − 1)), then jittered: FULL uniform in
 * [0, d], EQUAL in [d/2, d], NONE exactly d; DECORRELATED ignores attempt and multiplier
 * and gives min(cap, uniform in [base, 3 × prev_ns]) where prev_ns < base counts as base.
 * attempt 0 counts as 1. p must pass ward_retry_policy_check(). Draws at most one number
 * from rng (none for NONE). Returns ns in [0, cap]; never fails. */
int64_t ward_retry_next_delay(const struct ward_retry_policy *p, uint32_t attempt, int64_t prev_ns,
                              struct ward_retry_rng *rng);

/* Whether method may be sent twice with the effect of once: GET, HEAD, PUT, DELETE,
 * OPTIONS, TRACE (RFC 9110 §9.2.2). NULL is not. */
bool ward_retry_idempotent(const char *method);

/* Whether the outcome alone allows a retry (attempts and time aside): YES for transport
 * failures (CONNECT, DNS, RESET), TIMEOUT, and statuses 429, 502, 503 and 504; then only
 * when the method is idempotent (GET, HEAD, PUT, DELETE, OPTIONS, TRACE) or the request
 * carries an Idempotency-Key (else STOP_NOT_IDEMPOTENT). Never retried: statuses below
 * 400 (STOP_SUCCESS), every other 4xx and 5xx including 500 (STOP_STATUS), local
 * rejections (STOP_REJECTED), a local DEADLINE (STOP_DEADLINE), any other local error or
 * an unknown cause (STOP_ERROR). o must not be NULL. Pure. */
enum ward_retry_verdict ward_retry_classify(const struct ward_retry_outcome *o);

/* Parses a Retry-After value: delay-seconds ("120") or an HTTP-date in IMF-fixdate
 * ("Sun, 06 Nov 1994 08:49:37 GMT"), RFC 850 ("Sunday, 06-Nov-94 08:49:37 GMT", a
 * two-digit year more than 50 years ahead of wall_now_ns meaning the century before) or
 * asctime ("Sun Nov  6 08:49:37 1994") form, surrounding blanks allowed. A date becomes
 * its distance from wall_now_ns (ns since the epoch), 0 when already past; huge values
 * saturate at INT64_MAX. Sets *delay_ns and returns OK; SYNTAX for anything else (and
 * *delay_ns untouched); INVAL when text or delay_ns is NULL. Pure. */
WARD_MUST_CHECK enum ward_err ward_retry_after_parse(const char *text, int64_t wall_now_ns,
                                                     int64_t *delay_ns);

/* The one decision a client makes after an attempt that did not succeed: call it once
 * per finished attempt (it counts the attempt in st->attempts), with now_ns and
 * deadline_ns on the same monotonic clock (WARD_RETRY_NO_DEADLINE for none). In order:
 *   1. ward_retry_classify(o); anything but YES is returned as it is;
 *   2. st->attempts >= max_attempts → STOP_ATTEMPTS;
 *   3. the backoff ward_retry_next_delay(p, st->attempts, st->last_delay_ns, &st->rng);
 *      a parsable Retry-After longer than max_retry_after_ns → STOP_RETRY_AFTER, else the
 *      longer of the two wins (a garbage Retry-After is ignored);
 *   4. now_ns + delay >= deadline_ns → STOP_DEADLINE, at once, without waiting: the next
 *      attempt would start with no time left (also when the deadline is already past);
 *   5. YES: *delay_ns is how long to wait before the next attempt, also kept in
 *      st->last_delay_ns.
 * On every STOP *delay_ns is 0. After a YES the caller withdraws from its retry budget
 * (exhaustion stops the retries too), then waits; this function never sleeps. p must pass
 * ward_retry_policy_check(); o, st and delay_ns must not be NULL. Reads the wall clock
 * only for an HTTP-date Retry-After with o->wall_now_ns 0. */
WARD_MUST_CHECK enum ward_retry_verdict ward_retry_plan(const struct ward_retry_policy *p,
                                                        const struct ward_retry_outcome *o,
                                                        struct ward_retry_state *st,
                                                        int64_t now_ns, int64_t deadline_ns,
                                                        int64_t *delay_ns);

/* A static lowercase name for v: "retry", "success", "status", "not_idempotent",
 * "rejected", "error", "attempts", "retry_after", "deadline"; "unknown" otherwise. */
const char *ward_retry_verdict_name(enum ward_retry_verdict v);

#endif
