/* breaker.h — a circuit breaker with sony/gobreaker's semantics (closed, open, half-open,
 * generations, lazy transitions), plus excluded outcomes, a half-open probe deadline, a
 * growing open duration and an optional resilience4j-style sliding window. */
#ifndef WARD_BREAKER_H
#define WARD_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

#include <ward/clock.h>
#include <ward/err.h>

struct ward_breaker;
struct ward_metrics;

/* The numbers are gobreaker's and the value of the ward_breaker_state gauge. */
enum ward_breaker_state {
    WARD_BREAKER_CLOSED = 0,
    WARD_BREAKER_HALF_OPEN = 1,
    WARD_BREAKER_OPEN = 2,
};

/* What a call that the breaker let through came to. EXCLUDED (the caller's own
 * cancellation, a bad request of its own making) counts as neither success nor failure:
 * the call is taken back out of the counts, and in half-open its probe slot is freed. */
enum ward_breaker_outcome {
    WARD_BREAKER_SUCCESS = 0,
    WARD_BREAKER_FAILURE = 1,
    WARD_BREAKER_EXCLUDED = 2,
};

/* Counts of the current generation; cleared on every state change and, when closed, at
 * every interval. requests counts admitted calls, whether or not they have reported. */
struct ward_breaker_counts {
    uint64_t requests;
    uint64_t total_successes;
    uint64_t total_failures;
    uint64_t consecutive_successes;
    uint64_t consecutive_failures;
};

enum ward_breaker_window_kind {
    WARD_BREAKER_WINDOW_NONE = 0, /* gobreaker's counts and ready_to_trip */
    WARD_BREAKER_WINDOW_COUNT,    /* the last `size` calls */
    WARD_BREAKER_WINDOW_TIME,     /* the calls of the last `size` seconds, 1 s buckets */
};

/* Sliding-window mode (resilience4j's): while closed, the breaker trips when at least
 * min_calls calls are in the window and failures or slow calls reach their rate. A call is
 * slow when more than slow_call_ns passed on the breaker's clock between allow and done.
 * Zero in any field means its default. */
struct ward_breaker_window {
    enum ward_breaker_window_kind kind;
    uint32_t size;           /* calls (COUNT, max 1000000; default 100) or seconds
                              * (TIME, max 86400; default 60) */
    uint32_t min_calls;      /* default 20; COUNT caps it at size */
    uint32_t failure_rate;   /* percent, 1..100; default 50 */
    uint32_t slow_call_rate; /* percent, 1..100; default 100 */
    int64_t slow_call_ns;    /* default 60 s */
};

/* Called under the breaker's lock with the counts, when a call fails while closed: true
 * trips the breaker. Must be quick and must not call into the breaker. */
typedef bool (*ward_breaker_trip_fn)(const struct ward_breaker_counts *counts, void *arg);

/* Called after every state change, outside the breaker's lock, one call at a time and in
 * the order of the changes (a later change waits until this callback returns). It may call
 * into the breaker; it must not wait for another thread that is using the breaker. */
typedef void (*ward_breaker_change_fn)(const char *name, enum ward_breaker_state from,
                                       enum ward_breaker_state to, void *arg);

/* Maps a caller's status code (ward_breaker_done_code) to an outcome. */
typedef enum ward_breaker_outcome (*ward_breaker_classify_fn)(int code, void *arg);

/* What ward_breaker_execute runs: the call itself, returning its outcome. */
typedef enum ward_breaker_outcome (*ward_breaker_fn)(void *arg);

/* A zeroed struct is a valid configuration equal to the defaults (as gobreaker's
 * Settings{}); ward_breaker_settings_default spells them out. Durations are nanoseconds. */
struct ward_breaker_settings {
    const char *name;      /* copied; NULL means "" */
    uint32_t max_requests; /* calls admitted in half-open; 0 means 1 */
    int64_t interval_ns;   /* while closed, clear the counts this often; <= 0 never */
    int64_t timeout_ns;    /* open duration before half-open; <= 0 means 60 s */
    /* Half-open with probes outstanding this long reopens; <= 0 means timeout_ns. */
    int64_t probe_deadline_ns;
    /* Each trip before the breaker closes again multiplies the open duration by this, up
     * to max_open_ns (<= 0 means 300 s; never below timeout_ns). 0 means 1 (off). */
    double backoff;
    int64_t max_open_ns;
    ward_breaker_trip_fn ready_to_trip;     /* NULL: consecutive_failures > 5 */
    ward_breaker_change_fn on_state_change; /* may be NULL */
    ward_breaker_classify_fn is_successful; /* NULL: code 0 success, others failure */
    void *arg;                              /* passed to the three callbacks */
    const struct ward_clock *clock;         /* NULL: the real clock */
    struct ward_breaker_window window;      /* kind NONE: gobreaker's mode */
};

/* What ward_breaker_allow hands out and ward_breaker_done takes back: the generation the
 * call was admitted in and when. A plain value; copy it freely. Generations start at 1,
 * so a zeroed ticket is never current. */
struct ward_breaker_ticket {
    uint64_t generation;
    int64_t start_ns;
};

/* A snapshot (ward_breaker_stats). Window fields are 0 outside window mode. */
struct ward_breaker_stats {
    enum ward_breaker_state state;
    uint64_t generation;
    struct ward_breaker_counts counts;
    uint64_t transitions;       /* state changes since ward_breaker_new */
    uint64_t rejected_open;     /* calls refused with WARD_ERR_OPEN */
    uint64_t rejected_too_many; /* calls refused with WARD_ERR_TOO_MANY_REQUESTS */
    uint32_t trips;             /* trips since the breaker last closed */
    int64_t open_ns;            /* length of the current (or last) open period */
    uint64_t window_calls;
    uint64_t window_failures;
    uint64_t window_slow;
};

/* Fills s with the defaults: name NULL, max_requests 1, interval 0 (never), timeout 60 s,
 * probe deadline 0 (= timeout), backoff 1 (off), max open 300 s, no callbacks, real clock,
 * no window (and the window's defaults: size 0 = 100 calls or 60 s, min_calls 20,
 * failure_rate 50, slow_call_rate 100, slow_call_ns 60 s, for when kind is set). */
void ward_breaker_settings_default(struct ward_breaker_settings *s);

/* A new closed breaker with settings s (copied; the clock must outlive the breaker).
 * Returns OK and the breaker in *out, which the caller owns (ward_breaker_free); INVAL
 * when s or out is NULL, backoff is below 1 or not finite, the window kind is unknown, a
 * rate is above 100, a window size is above its maximum, or window mode is combined with
 * interval_ns > 0 or ready_to_trip (the window replaces both); NOMEM or SYSTEM otherwise,
 * with *out untouched. */
WARD_MUST_CHECK enum ward_err ward_breaker_new(const struct ward_breaker_settings *s,
                                               struct ward_breaker **out);

/* Frees br. NULL is a no-op. No call may be using br. */
void ward_breaker_free(struct ward_breaker *br);

/* Asks to make one call. Applies the clock first (open becomes half-open once its open
 * duration has passed; half-open whose probes missed the probe deadline reopens; closed
 * starts a new generation at each interval). Returns OK and fills *ticket when the call
 * may go ahead: the caller must then report it with ward_breaker_done (or _done_code)
 * exactly once. Returns WARD_ERR_OPEN when open, WARD_ERR_TOO_MANY_REQUESTS when half-open
 * with max_requests calls already admitted, INVAL when br or ticket is NULL. Thread-safe;
 * takes the breaker's spinlock once; may run on_state_change before returning. */
WARD_MUST_CHECK enum ward_err ward_breaker_allow(struct ward_breaker *br,
                                                 struct ward_breaker_ticket *ticket);

/* Reports the outcome of a call admitted with ticket. Applies the clock first; an outcome
 * for an earlier generation than the current one is ignored. While closed a failure asks
 * ready_to_trip (or, in window mode, the rates; those count every outcome) and may open
 * the breaker; half-open, one failure reopens and max_requests consecutive successes
 * close. An outcome outside the enum counts as a failure. NULL br is a no-op. Thread-safe,
 * as allow. */
void ward_breaker_done(struct ward_breaker *br, struct ward_breaker_ticket ticket,
                       enum ward_breaker_outcome outcome);

/* ward_breaker_done with the outcome that the is_successful setting gives code (by
 * default: 0 success, anything else failure). is_successful runs outside the lock. */
void ward_breaker_done_code(struct ward_breaker *br, struct ward_breaker_ticket ticket, int code);

/* allow, then fn(arg), then done with its outcome. Returns OK when fn ran (whatever its
 * outcome: fn passes its results back through arg), else what allow returned, without
 * running fn. */
WARD_MUST_CHECK enum ward_err ward_breaker_execute(struct ward_breaker *br, ward_breaker_fn fn,
                                                   void *arg);

/* The current state, after applying the clock (as gobreaker's State()); br must not be
 * NULL. Thread-safe; may run on_state_change before returning. */
enum ward_breaker_state ward_breaker_state(struct ward_breaker *br);

/* The name given in the settings ("" when none); owned by br. */
const char *ward_breaker_name(const struct ward_breaker *br);

/* Fills *out with a consistent snapshot, after applying the clock; br and out must not be
 * NULL. Thread-safe; may run on_state_change before returning. */
void ward_breaker_stats(struct ward_breaker *br, struct ward_breaker_stats *out);

/* "closed", "half-open", "open"; "unknown" for other values. Static strings. */
const char *ward_breaker_state_name(enum ward_breaker_state state);

/* Registers in reg, labelled name="<the breaker's name>":
 *   ward_breaker_state (gauge: 0 closed, 1 half-open, 2 open),
 *   ward_breaker_transitions_total{from,to} (counter, the four possible changes),
 *   ward_breaker_rejections_total{reason="open"|"too_many_requests"} (counter),
 * and from then on updates them on state changes and rejections only (so, like the
 * breaker, the gauge is lazy: an open breaker nobody calls stays 2). reg must outlive
 * br. Give each breaker in one registry its own name. A second call moves the breaker to
 * the new registry. Returns OK, INVAL for NULL arguments, NOMEM when reg cannot hold the
 * families (out of memory, or clashing families of the same names already in reg). */
WARD_MUST_CHECK enum ward_err ward_breaker_export(struct ward_breaker *br,
                                                  struct ward_metrics *reg);

#endif
