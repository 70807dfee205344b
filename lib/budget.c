/* budget.c — the retry budget: deposits and withdrawals counted in time buckets that
 * rotate lazily on the injected clock, under a spinlock. */
#include <ward/budget.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "spin.h"

#define DEFAULT_PERCENT 20
#define DEFAULT_MIN_RETRIES_PER_SECOND 10
#define DEFAULT_WINDOW (10 * WARD_NS_PER_S)
#define DEFAULT_BUCKETS 10
#define MAX_PERCENT 1000
#define MAX_BUCKETS 3600

struct bucket {
    uint64_t requests;
    uint64_t retries;
};

struct ward_budget {
    struct ward__spin lock;
    /* Guarded by lock. Bucket number n covers [n × width, (n + 1) × width). */
    int64_t head;              /* the number of the newest bucket */
    int64_t head_end;          /* where the newest bucket ends: earlier times never rotate */
    uint32_t cur;              /* head's slot in ring, kept to spare a division per call */
    uint64_t requests;         /* the sums over the ring */
    uint64_t retries;
    uint64_t requests_flushed; /* deposits of buckets that are no longer the newest */
    uint64_t retries_total;
    uint64_t exhausted_total;
    struct ward_metric *m_requests;
    struct ward_metric *m_retries;
    struct ward_metric *m_exhausted;
    bool exported;
    /* Set by ward_budget_new, then read-only. */
    const struct ward_clock *clock;
    int64_t width;
    uint32_t nbuckets;
    uint32_t percent;
    uint64_t floor;
    char *name;
    struct bucket ring[];
};

void ward_budget_settings_default(struct ward_budget_settings *s)
{
    *s = (struct ward_budget_settings){
        .name = "default",
        .percent = DEFAULT_PERCENT,
        .min_retries_per_second = DEFAULT_MIN_RETRIES_PER_SECOND,
        .window_ns = DEFAULT_WINDOW,
        .buckets = DEFAULT_BUCKETS,
        .clock = NULL,
    };
}

/* Floor division, so that times before zero (a fake clock may go there) bucket right. */
static int64_t bucket_of(int64_t t, int64_t width)
{
    int64_t q = t / width;

    if (t % width < 0)
        q--;
    return q;
}

static uint32_t slot_of(int64_t n, uint32_t nbuckets)
{
    int64_t r = n % (int64_t)nbuckets;

    return (uint32_t)(r < 0 ? r + (int64_t)nbuckets : r);
}

/* The first ns after bucket n, saturating at the end of time. */
static int64_t end_of(int64_t n, int64_t width)
{
    int64_t end;

    if (n == INT64_MAX || __builtin_mul_overflow(n + 1, width, &end))
        return n < 0 ? INT64_MIN : INT64_MAX;
    return end;
}

/* min_retries_per_second × window in retries, rounded down, saturating. */
static uint64_t floor_of(uint32_t per_second, int64_t window)
{
    uint64_t whole;
    uint64_t part = (uint64_t)per_second * (uint64_t)(window % WARD_NS_PER_S) / WARD_NS_PER_S;
    uint64_t sum;

    if (__builtin_mul_overflow((uint64_t)per_second, (uint64_t)(window / WARD_NS_PER_S), &whole) ||
        __builtin_add_overflow(whole, part, &sum))
        return UINT64_MAX;
    return sum;
}

enum ward_err ward_budget_new(const struct ward_budget_settings *s, struct ward_budget **out)
{
    struct ward_budget_settings defaults;
    struct ward_budget *b = NULL;
    const char *name;
    size_t len;
    enum ward_err rc = WARD_ERR_INVAL;

    if (s == NULL) {
        ward_budget_settings_default(&defaults);
        s = &defaults;
    }
    if (out == NULL || s->percent > MAX_PERCENT || s->buckets < 1 || s->buckets > MAX_BUCKETS ||
        s->window_ns < (int64_t)s->buckets)
        goto fail;
    name = s->name != NULL ? s->name : "default";
    rc = WARD_ERR_NOMEM;
    b = calloc(1, sizeof *b + s->buckets * sizeof b->ring[0]);
    if (b == NULL)
        goto fail;
    len = strlen(name);
    b->name = malloc(len + 1);
    if (b->name == NULL)
        goto fail;
    memcpy(b->name, name, len + 1);
    ward__spin_init(&b->lock);
    b->clock = s->clock;
    b->width = s->window_ns / (int64_t)s->buckets;
    b->nbuckets = s->buckets;
    b->percent = s->percent;
    b->floor = floor_of(s->min_retries_per_second, s->window_ns);
    b->head = bucket_of(ward_clock_now(b->clock), b->width);
    b->head_end = end_of(b->head, b->width);
    b->cur = slot_of(b->head, b->nbuckets);
    *out = b;
    return WARD_ERR_OK;
fail:
    ward_budget_free(b);
    return rc;
}

void ward_budget_free(struct ward_budget *b)
{
    if (b == NULL)
        return;
    free(b->name);
    free(b);
}

/* Brings the window up to now: the buckets it slid past are emptied and the newest
 * bucket's deposits join the exported total. A time before the newest bucket's end (a
 * thread that read the clock just before another) counts in the newest bucket.
 * Caller holds the lock. */
static void advance(struct ward_budget *b, int64_t now)
{
    int64_t n;
    uint64_t steps;
    uint64_t flushed;

    if (now < b->head_end)
        return;
    n = bucket_of(now, b->width);
    if (n <= b->head)
        return;
    flushed = b->ring[b->cur].requests;
    b->requests_flushed += flushed;
    if (flushed > 0)
        ward_counter_add(b->m_requests, flushed);
    steps = (uint64_t)n - (uint64_t)b->head;
    if (steps >= b->nbuckets) {
        memset(b->ring, 0, b->nbuckets * sizeof b->ring[0]);
        b->requests = 0;
        b->retries = 0;
        b->cur = slot_of(n, b->nbuckets);
    } else {
        for (uint64_t i = 0; i < steps; i++) {
            b->cur = b->cur + 1 < b->nbuckets ? b->cur + 1 : 0;
            b->requests -= b->ring[b->cur].requests;
            b->retries -= b->ring[b->cur].retries;
            b->ring[b->cur] = (struct bucket){0, 0};
        }
    }
    b->head = n;
    b->head_end = end_of(n, b->width);
}

/* percent × requests / 100 + floor − retries, never below 0. Caller holds the lock. */
static uint64_t allowance(const struct ward_budget *b)
{
    uint64_t share;
    uint64_t total;

    if (__builtin_mul_overflow(b->requests, (uint64_t)b->percent, &share))
        share = UINT64_MAX;
    if (__builtin_add_overflow(share / 100, b->floor, &total))
        total = UINT64_MAX;
    return total > b->retries ? total - b->retries : 0;
}

void ward_budget_deposit(struct ward_budget *b)
{
    int64_t now = ward_clock_now(b->clock);

    ward__spin_lock(&b->lock);
    advance(b, now);
    b->ring[b->cur].requests++;
    b->requests++;
    ward__spin_unlock(&b->lock);
}

enum ward_err ward_budget_try_withdraw(struct ward_budget *b)
{
    int64_t now = ward_clock_now(b->clock);
    struct ward_metric *m;
    enum ward_err rc;

    ward__spin_lock(&b->lock);
    advance(b, now);
    if (allowance(b) > 0) {
        b->ring[b->cur].retries++;
        b->retries++;
        b->retries_total++;
        m = b->m_retries;
        rc = WARD_ERR_OK;
    } else {
        b->exhausted_total++;
        m = b->m_exhausted;
        rc = WARD_ERR_BUDGET_EXHAUSTED;
    }
    ward__spin_unlock(&b->lock);
    ward_counter_inc(m);
    return rc;
}

uint64_t ward_budget_available(struct ward_budget *b)
{
    int64_t now = ward_clock_now(b->clock);
    uint64_t n;

    ward__spin_lock(&b->lock);
    advance(b, now);
    n = allowance(b);
    ward__spin_unlock(&b->lock);
    return n;
}

void ward_budget_stats(struct ward_budget *b, struct ward_budget_stats *out)
{
    int64_t now = ward_clock_now(b->clock);

    ward__spin_lock(&b->lock);
    advance(b, now);
    *out = (struct ward_budget_stats){
        .requests = b->requests,
        .retries = b->retries,
        .available = allowance(b),
        .requests_total = b->requests_flushed + b->ring[b->cur].requests,
        .retries_total = b->retries_total,
        .exhausted_total = b->exhausted_total,
    };
    ward__spin_unlock(&b->lock);
}

/* The child labelled name=<name> of a counter family in *m: INVAL when the family
 * clashes with one registered before (or could not be made), NOMEM for the child. */
static enum ward_err counter(struct ward_metrics *reg, const char *family, const char *help,
                             const char *name, struct ward_metric **m)
{
    static const char *const labels[] = {"name"};
    struct ward_metric_family *f = ward_metrics_counter(reg, family, help, 1, labels);

    if (f == NULL)
        return WARD_ERR_INVAL;
    *m = ward_metric_get(f, (const char *const[]){name});
    return *m != NULL ? WARD_ERR_OK : WARD_ERR_NOMEM;
}

enum ward_err ward_budget_export(struct ward_budget *b, struct ward_metrics *reg)
{
    struct ward_metric *requests = NULL;
    struct ward_metric *retries = NULL;
    struct ward_metric *exhausted = NULL;
    enum ward_err rc;

    if (b == NULL || reg == NULL)
        return WARD_ERR_INVAL;
    rc = counter(reg, "ward_retry_budget_requests_total",
                 "Requests deposited in the retry budget (added as its window slides).", b->name,
                 &requests);
    if (rc != WARD_ERR_OK)
        return rc;
    rc = counter(reg, "ward_retry_budget_retries_total", "Retries the retry budget allowed.",
                 b->name, &retries);
    if (rc != WARD_ERR_OK)
        return rc;
    rc = counter(reg, "ward_retry_budget_exhausted_total",
                 "Retries refused because the retry budget was exhausted.", b->name, &exhausted);
    if (rc != WARD_ERR_OK)
        return rc;
    ward__spin_lock(&b->lock);
    if (b->exported) {
        rc = WARD_ERR_STATE;
        goto out;
    }
    b->m_requests = requests;
    b->m_retries = retries;
    b->m_exhausted = exhausted;
    b->exported = true;
    /* under the lock, so no deposit or retry is counted twice or lost */
    ward_counter_add(requests, b->requests_flushed);
    ward_counter_add(retries, b->retries_total);
    ward_counter_add(exhausted, b->exhausted_total);
out:
    ward__spin_unlock(&b->lock);
    return rc;
}
