/* limiter.h — a token-bucket rate limiter with golang.org/x/time/rate's semantics. */
#ifndef WARD_LIMITER_H
#define WARD_LIMITER_H

#include <float.h>
#include <stdbool.h>
#include <stdint.h>

#include <ward/err.h>

struct ward_clock;
struct ward_metrics;

/* The infinite rate: every call is allowed, whatever n and the burst (x/time/rate's Inf).
 * +INFINITY passed as a limit means the same and reads back as WARD_LIMIT_INF. */
#define WARD_LIMIT_INF DBL_MAX

/* The delay of a reservation that is not ok: the tokens never come in time. */
#define WARD_LIMITER_DELAY_INF INT64_MAX

/* A deadline for ward_limiter_wait_n that never passes. */
#define WARD_LIMITER_NO_DEADLINE INT64_MAX

/* The largest burst: bursts and token counts are doubles, exact up to 2^53. */
#define WARD_LIMITER_BURST_MAX (INT64_C(1) << 53)

/* The longest name, without its NUL. */
#define WARD_LIMITER_NAME_MAX 63

/* A bucket of `burst` tokens, full at creation, refilled at `limit` tokens per second.
 * Invariant: burst 0 goes only with limit 0 (admits nothing) or WARD_LIMIT_INF; a finite
 * non-zero rate with burst 0 would silently admit nothing, the trap x/time/rate users
 * fall into, so it is refused with WARD_ERR_INVAL. */
struct ward_limiter;

struct ward_limiter_settings {
    const char *name; /* the `name` label of the metrics; copied; default "limiter" */
    double limit;     /* events per second, >= 0; WARD_LIMIT_INF; 0 = only `burst` events
                       * ever; default 100 */
    int64_t burst;    /* bucket size: the most events at once; default 100 */
    const struct ward_clock *clock; /* NULL = the real clock; must outlive the limiter */
};

/* What a reservation holds (x/time/rate's Reservation, as a value the caller keeps). */
struct ward_limiter_reservation {
    bool ok;                /* false: not granted; nothing was taken */
    int64_t tokens;         /* tokens taken; 0 when not ok */
    int64_t time_to_act_ns; /* clock time at which the reserved events may happen */
    int64_t delay_ns;       /* time_to_act_ns minus the time of the reservation;
                             * WARD_LIMITER_DELAY_INF when not ok */
    double limit;           /* the limit when it was made (the limit may change later) */
};

/* A snapshot of a limiter. */
struct ward_limiter_stats {
    double limit;
    int64_t burst;
    double tokens;     /* at the time of the call; negative while reservations are owed */
    uint64_t admitted; /* calls that got their tokens: allow, reserve and wait */
    uint64_t rejected; /* calls that did not */
};

/* Fills s with the defaults above. */
void ward_limiter_settings_default(struct ward_limiter_settings *s);

/* The limit of one event every interval_ns (x/time/rate's Every): interval_ns <= 0
 * gives WARD_LIMIT_INF. */
double ward_limiter_every(int64_t interval_ns);

/* A limiter with settings s, its bucket full. Returns OK and the limiter in *out, which
 * the caller owns and frees with ward_limiter_free(); INVAL when s or out is NULL, the
 * name is NULL or longer than WARD_LIMITER_NAME_MAX, the limit is NaN or negative, the
 * burst is negative or above WARD_LIMITER_BURST_MAX, or burst is 0 with a finite non-zero
 * limit; NOMEM. On failure *out is NULL. */
WARD_MUST_CHECK enum ward_err ward_limiter_new(const struct ward_limiter_settings *s,
                                               struct ward_limiter **out);

/* Frees l. NULL is a no-op. No other thread may be using l. */
void ward_limiter_free(struct ward_limiter *l);

/* ward_limiter_allow_n(l, 1). */
WARD_MUST_CHECK enum ward_err ward_limiter_allow(struct ward_limiter *l);

/* Takes n tokens now if they are there (x/time/rate's AllowN): OK when taken;
 * RATE_LIMITED when there are too few (nothing is taken: drop or skip the event); BURST
 * when n exceeds the burst, which no wait can satisfy (never with WARD_LIMIT_INF);
 * INVAL when n < 0. n == 0 is OK unless reservations have left the bucket in debt.
 * Reads the clock once, before taking l's spinlock. Thread-safe. */
WARD_MUST_CHECK enum ward_err ward_limiter_allow_n(struct ward_limiter *l, int64_t n);

/* Reserves n tokens now, taking them even if that drives the bucket into debt, and says
 * when the events may happen (x/time/rate's ReserveN): OK with *out ok and its delay (0:
 * act now); BURST when n exceeds the burst; RATE_LIMITED when the tokens would never come
 * (limit 0, or a wait too long to represent); INVAL when n < 0 or out is NULL. On any
 * error *out is not ok, with delay WARD_LIMITER_DELAY_INF, and nothing is taken. The
 * caller either waits delay_ns and acts, or gives the tokens back with
 * ward_limiter_cancel(). Thread-safe. */
WARD_MUST_CHECK enum ward_err ward_limiter_reserve_n(struct ward_limiter *l, int64_t n,
                                                     struct ward_limiter_reservation *out);

/* How long the holder of r must still wait at now_ns: 0 when it may act,
 * WARD_LIMITER_DELAY_INF when r is not ok. */
int64_t ward_limiter_reservation_delay(const struct ward_limiter_reservation *r,
                                       int64_t now_ns);

/* Gives back the tokens of r, which l granted, as far as later reservations allow
 * (x/time/rate's CancelAt at now): nothing when r is not ok, took no tokens, its time to
 * act has passed, or the limit is infinite; else its tokens minus those that later
 * reservations have already counted on, and if r was the latest reservation the time of
 * the latest one goes back to before r. Afterwards r is marked not ok, so a second cancel
 * does nothing. Thread-safe. */
void ward_limiter_cancel(struct ward_limiter *l, struct ward_limiter_reservation *r);

/* Waits until n tokens can be taken, then takes them (x/time/rate's WaitN). deadline_ns
 * is a time on l's clock (WARD_LIMITER_NO_DEADLINE for none). Fails at once, taking
 * nothing: BURST when n exceeds the burst (a finite limit); DEADLINE when the deadline
 * has passed or the wait would end after it; RATE_LIMITED when the tokens would never
 * come (limit 0); INVAL when n < 0. Otherwise the tokens are reserved, the call sleeps
 * the delay with ward_clock_sleep() (a fake clock is advanced instead) and returns OK.
 * Thread-safe; blocks the calling thread while it sleeps. */
WARD_MUST_CHECK enum ward_err ward_limiter_wait_n(struct ward_limiter *l, int64_t n,
                                                  int64_t deadline_ns);

/* Change the limit or the burst at run time, first adding the tokens earned so far at
 * the old settings (x/time/rate's SetLimitAt/SetBurstAt). Tokens above a smaller burst
 * are dropped at the next call. Reservations already made keep their times. INVAL (and
 * no change) for a NaN or negative limit, a negative or too large burst, or when the
 * change would pair burst 0 with a finite non-zero limit. Thread-safe. */
WARD_MUST_CHECK enum ward_err ward_limiter_set_limit(struct ward_limiter *l, double limit);
WARD_MUST_CHECK enum ward_err ward_limiter_set_burst(struct ward_limiter *l, int64_t burst);

/* Current settings, and the tokens there would be now (fractional; negative while
 * reservations are owed; not changed by the call). Thread-safe. */
double ward_limiter_limit(struct ward_limiter *l);
int64_t ward_limiter_burst(struct ward_limiter *l);
double ward_limiter_tokens(struct ward_limiter *l);

/* Fills *out with a consistent snapshot. Thread-safe. */
void ward_limiter_stats(struct ward_limiter *l, struct ward_limiter_stats *out);

/* Registers the counter ward_limiter_rejections_total{name} in reg and from then on adds
 * every rejected call (RATE_LIMITED, BURST, DEADLINE) to it; admitted calls cost nothing.
 * reg must outlive l. Exporting again moves the updates to the new registry. INVAL when
 * l or reg is NULL; NOMEM (or a name clash in reg) leaves l unexported. Thread-safe. */
WARD_MUST_CHECK enum ward_err ward_limiter_export(struct ward_limiter *l,
                                                  struct ward_metrics *reg);

#endif
