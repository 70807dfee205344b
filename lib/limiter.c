/* limiter.c — a token bucket with golang.org/x/time/rate's arithmetic, under a spinlock. */
#include <ward/limiter.h>

#include <math.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include <ward/clock.h>
#include <ward/metrics.h>

#include "limiter_int.h"
#include "spin.h"

struct ward_limiter {
    /* Set at creation, read without the lock, kept off the line the lock bounces on. */
    const struct ward_clock *clock;
    char name[WARD_LIMITER_NAME_MAX + 1];
    /* The hot line: every call takes the lock and touches these. */
    alignas(64) struct ward__spin lock;
    double limit;
    double tokens;       /* may be negative: owed to reservations in the future */
    int64_t burst;
    int64_t last;        /* when tokens was last brought up to date */
    int64_t last_event;  /* time to act of the latest reservation, past or future */
    uint64_t admitted;
    uint64_t rejected;
    struct ward_metric *m_rejected; /* NULL until exported */
};

/* Tokens earned over d ns (x/time/rate's tokensFromDuration): whole seconds and the
 * nanosecond rest are converted apart, as Go's Duration.Seconds does, so that a long d
 * loses no precision (golang.org/issue/34861). */
/* The time needed to earn tokens (x/time/rate's durationFromTokens): truncated toward
 * zero to the nanosecond, as Go's float-to-Duration conversion does; DELAY_INF when the
 * limit is 0 or the time does not fit in int64. */
static int64_t duration_from_tokens(double limit, double tokens)
{
    double ns;

    if (limit <= 0)
        return WARD_LIMITER_DELAY_INF;
    ns = tokens / limit * 1e9;
    if (ns >= 0x1p63)
        return WARD_LIMITER_DELAY_INF;
    if (ns < -0x1p63)
        return INT64_MIN;
    return (int64_t)ns;
}

/* The tokens there are at now, without changing l (x/time/rate's advance). A clock that
 * went back counts as no time passed. */
static double advance(const struct ward_limiter *l, int64_t now)
{
    double tokens = l->tokens;
    double burst = (double)l->burst;

    if (now > l->last)
        tokens += ward__tokens_from_duration(l->limit, ward__sat_sub(now, l->last));
    if (tokens > burst)
        tokens = burst;
    return tokens;
}

/* burst 0 only with no rate (admits nothing) or an infinite one (ignores the burst). */
static bool valid_pair(double limit, int64_t burst)
{
    return burst > 0 || limit == 0 || limit == WARD_LIMIT_INF;
}

/* A limit as stored: +inf becomes WARD_LIMIT_INF; NaN and negatives are refused. */
static bool normalize_limit(double limit, double *out)
{
    if (isnan(limit) || limit < 0)
        return false;
    *out = limit > WARD_LIMIT_INF ? WARD_LIMIT_INF : limit;
    return true;
}

static void not_ok(struct ward_limiter_reservation *r, double limit)
{
    r->ok = false;
    r->tokens = 0;
    r->time_to_act_ns = 0;
    r->delay_ns = WARD_LIMITER_DELAY_INF;
    r->limit = limit;
}

/* x/time/rate's reserveN with l's lock held: takes n tokens at now if the wait for them
 * is at most max_wait. Returns OK (*r granted, state updated), BURST (n > burst),
 * RATE_LIMITED (the tokens never come) or DEADLINE (they come after max_wait); on
 * failure nothing changes. Unlike x/time/rate, a never-ending wait is refused even when
 * max_wait is unbounded, which also makes limit 0 behave without a special case. */
static enum ward_err reserve_locked(struct ward_limiter *l, int64_t now, int64_t n,
                                    int64_t max_wait, struct ward_limiter_reservation *r)
{
    enum ward_err err = WARD_ERR_OK;
    int64_t wait = 0;
    double tokens;

    if (l->limit == WARD_LIMIT_INF) {
        /* nothing is taken, so the reservation holds no tokens to give back */
        r->ok = true;
        r->tokens = 0;
        r->time_to_act_ns = now;
        r->delay_ns = 0;
        r->limit = WARD_LIMIT_INF;
        return err;
    }
    tokens = advance(l, now) - (double)n;
    if (tokens < 0)
        wait = duration_from_tokens(l->limit, -tokens);
    if (n > l->burst)
        err = WARD_ERR_BURST;
    else if (wait == WARD_LIMITER_DELAY_INF)
        err = WARD_ERR_RATE_LIMITED;
    else if (wait > max_wait)
        err = WARD_ERR_DEADLINE;
    if (err != WARD_ERR_OK) {
        not_ok(r, l->limit);
        return err;
    }
    r->ok = true;
    r->tokens = n;
    r->time_to_act_ns = ward__sat_add(now, wait);
    r->delay_ns = wait;
    r->limit = l->limit;
    l->last = now;
    l->tokens = tokens;
    l->last_event = r->time_to_act_ns;
    return err;
}

/* Counts the outcome with the lock held; returns the counter to bump once unlocked. */
static struct ward_metric *count_locked(struct ward_limiter *l, enum ward_err err)
{
    if (err == WARD_ERR_OK) {
        l->admitted++;
        return NULL;
    }
    l->rejected++;
    return l->m_rejected;
}

void ward_limiter_settings_default(struct ward_limiter_settings *s)
{
    s->name = "limiter";
    s->limit = 100;
    s->burst = 100;
    s->clock = NULL;
}

double ward_limiter_every(int64_t interval_ns)
{
    if (interval_ns <= 0)
        return WARD_LIMIT_INF;
    return 1e9 / (double)interval_ns;
}

enum ward_err ward_limiter_new(const struct ward_limiter_settings *s, struct ward_limiter **out)
{
    struct ward_limiter *l = NULL;
    enum ward_err err = WARD_ERR_INVAL;
    double limit = 0;

    if (out == NULL)
        goto fail;
    *out = NULL;
    if (s == NULL || s->name == NULL || strlen(s->name) > WARD_LIMITER_NAME_MAX)
        goto fail;
    if (!normalize_limit(s->limit, &limit) || s->burst < 0 || s->burst > WARD_LIMITER_BURST_MAX)
        goto fail;
    if (!valid_pair(limit, s->burst))
        goto fail;
    err = WARD_ERR_NOMEM;
    l = aligned_alloc(alignof(struct ward_limiter), sizeof *l);
    if (l == NULL)
        goto fail;
    memset(l, 0, sizeof *l);
    l->clock = s->clock;
    strcpy(l->name, s->name);
    ward__spin_init(&l->lock);
    l->limit = limit;
    l->burst = s->burst;
    l->tokens = (double)s->burst;
    l->last = ward_clock_now(l->clock);
    l->last_event = l->last;
    *out = l;
    l = NULL;
    err = WARD_ERR_OK;
fail:
    free(l);
    return err;
}

void ward_limiter_free(struct ward_limiter *l)
{
    free(l);
}

enum ward_err ward_limiter_allow(struct ward_limiter *l)
{
    return ward_limiter_allow_n(l, 1);
}

enum ward_err ward_limiter_allow_n(struct ward_limiter *l, int64_t n)
{
    struct ward_limiter_reservation r;
    struct ward_metric *m;
    enum ward_err err = WARD_ERR_INVAL;
    int64_t now;

    if (n >= 0) {
        now = ward_clock_now(l->clock);
        ward__spin_lock(&l->lock);
        err = reserve_locked(l, now, n, 0, &r);
        m = count_locked(l, err);
        ward__spin_unlock(&l->lock);
        if (err != WARD_ERR_OK) {
            ward_counter_inc(m);
            if (err == WARD_ERR_DEADLINE)
                err = WARD_ERR_RATE_LIMITED;
        }
    }
    return err;
}

enum ward_err ward_limiter_reserve_n(struct ward_limiter *l, int64_t n,
                                     struct ward_limiter_reservation *out)
{
    struct ward_metric *m;
    enum ward_err err = WARD_ERR_INVAL;
    int64_t now;

    if (out != NULL && n < 0)
        not_ok(out, ward_limiter_limit(l));
    if (out != NULL && n >= 0) {
        now = ward_clock_now(l->clock);
        ward__spin_lock(&l->lock);
        err = reserve_locked(l, now, n, WARD_LIMITER_DELAY_INF, out);
        m = count_locked(l, err);
        ward__spin_unlock(&l->lock);
        if (err != WARD_ERR_OK)
            ward_counter_inc(m);
    }
    return err;
}

int64_t ward_limiter_reservation_delay(const struct ward_limiter_reservation *r, int64_t now_ns)
{
    int64_t delay;

    if (r == NULL || !r->ok)
        return WARD_LIMITER_DELAY_INF;
    delay = ward__sat_sub(r->time_to_act_ns, now_ns);
    return delay < 0 ? 0 : delay;
}

void ward_limiter_cancel(struct ward_limiter *l, struct ward_limiter_reservation *r)
{
    double restore;
    double tokens;
    int64_t prev;
    int64_t now;

    if (r == NULL || !r->ok)
        return;
    now = ward_clock_now(l->clock);
    ward__spin_lock(&l->lock);
    if (l->limit != WARD_LIMIT_INF && r->tokens != 0 && r->time_to_act_ns >= now) {
        /* tokens that later reservations already counted on stay taken */
        restore = (double)r->tokens -
                  ward__tokens_from_duration(r->limit, ward__sat_sub(l->last_event, r->time_to_act_ns));
        if (restore > 0) {
            tokens = advance(l, now) + restore;
            if (tokens > (double)l->burst)
                tokens = (double)l->burst;
            l->last = now;
            l->tokens = tokens;
            /* r was the latest: the latest is now the one before it, unless that one is
             * past. At limit 0 every reservation acts at once, so there is nothing to
             * move (x/time/rate would move it to the end of time). */
            if (r->time_to_act_ns == l->last_event && r->limit > 0) {
                prev = ward__sat_add(r->time_to_act_ns,
                               duration_from_tokens(r->limit, -(double)r->tokens));
                if (prev >= now)
                    l->last_event = prev;
            }
        }
    }
    ward__spin_unlock(&l->lock);
    not_ok(r, r->limit);
}

enum ward_err ward_limiter_wait_n(struct ward_limiter *l, int64_t n, int64_t deadline_ns)
{
    struct ward_limiter_reservation r;
    struct ward_metric *m;
    enum ward_err err = WARD_ERR_INVAL;
    int64_t now;

    if (n >= 0) {
        now = ward_clock_now(l->clock);
        ward__spin_lock(&l->lock);
        if (n > l->burst && l->limit != WARD_LIMIT_INF)
            err = WARD_ERR_BURST;
        else if (now >= deadline_ns)
            err = WARD_ERR_DEADLINE;
        else
            err = reserve_locked(l, now, n, ward__sat_sub(deadline_ns, now), &r);
        m = count_locked(l, err);
        ward__spin_unlock(&l->lock);
        if (err == WARD_ERR_OK)
            ward_clock_sleep(l->clock, r.delay_ns);
        else
            ward_counter_inc(m);
    }
    return err;
}

enum ward_err ward_limiter_set_limit(struct ward_limiter *l, double limit)
{
    enum ward_err err = WARD_ERR_INVAL;
    double v;
    int64_t now;

    if (normalize_limit(limit, &v)) {
        now = ward_clock_now(l->clock);
        ward__spin_lock(&l->lock);
        if (valid_pair(v, l->burst)) {
            l->tokens = advance(l, now);
            l->last = now;
            l->limit = v;
            err = WARD_ERR_OK;
        }
        ward__spin_unlock(&l->lock);
    }
    return err;
}

enum ward_err ward_limiter_set_burst(struct ward_limiter *l, int64_t burst)
{
    enum ward_err err = WARD_ERR_INVAL;
    int64_t now;

    if (burst >= 0 && burst <= WARD_LIMITER_BURST_MAX) {
        now = ward_clock_now(l->clock);
        ward__spin_lock(&l->lock);
        if (valid_pair(l->limit, burst)) {
            l->tokens = advance(l, now);
            l->last = now;
            l->burst = burst;
            err = WARD_ERR_OK;
        }
        ward__spin_unlock(&l->lock);
    }
    return err;
}

double ward_limiter_limit(struct ward_limiter *l)
{
    double v;

    ward__spin_lock(&l->lock);
    v = l->limit;
    ward__spin_unlock(&l->lock);
    return v;
}

int64_t ward_limiter_burst(struct ward_limiter *l)
{
    int64_t v;

    ward__spin_lock(&l->lock);
    v = l->burst;
    ward__spin_unlock(&l->lock);
    return v;
}

double ward_limiter_tokens(struct ward_limiter *l)
{
    int64_t now = ward_clock_now(l->clock);
    double v;

    ward__spin_lock(&l->lock);
    v = advance(l, now);
    ward__spin_unlock(&l->lock);
    return v;
}

void ward_limiter_stats(struct ward_limiter *l, struct ward_limiter_stats *out)
{
    int64_t now = ward_clock_now(l->clock);

    ward__spin_lock(&l->lock);
    out->limit = l->limit;
    out->burst = l->burst;
    out->tokens = advance(l, now);
    out->admitted = l->admitted;
    out->rejected = l->rejected;
    ward__spin_unlock(&l->lock);
}

enum ward_err ward_limiter_export(struct ward_limiter *l, struct ward_metrics *reg)
{
    static const char *const labels[] = {"name"};
    struct ward_metric_family *fam;
    struct ward_metric *m = NULL;
    const char *values[1];
    enum ward_err err = WARD_ERR_INVAL;

    if (l == NULL || reg == NULL)
        goto fail;
    err = WARD_ERR_NOMEM;
    fam = ward_metrics_counter(reg, "ward_limiter_rejections_total",
                               "Calls a rate limiter turned away (rate limited, over the "
                               "burst, or past the deadline).",
                               1, labels);
    values[0] = l->name;
    m = ward_metric_get(fam, values);
    if (m == NULL)
        goto fail;
    ward__spin_lock(&l->lock);
    l->m_rejected = m;
    ward__spin_unlock(&l->lock);
    err = WARD_ERR_OK;
fail:
    return err;
}
