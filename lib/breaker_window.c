/* breaker_window.c — the breaker's count- and time-based sliding windows, in resilience4j's
 * manner, kept as running totals so that recording a call costs O(1) amortized. */
#include "breaker_window.h"

#include <stdlib.h>
#include <string.h>

#define COUNT_SIZE_DEFAULT 100u
#define COUNT_SIZE_MAX 1000000u
#define TIME_SIZE_DEFAULT 60u
#define TIME_SIZE_MAX 86400u
#define MIN_CALLS_DEFAULT 20u
#define FAILURE_RATE_DEFAULT 50u
#define SLOW_RATE_DEFAULT 100u
#define SLOW_NS_DEFAULT (60 * WARD_NS_PER_S)

/* A call's slot in the count window. */
#define SLOT_FAILED 1u
#define SLOT_SLOW 2u

/* One second of the time window. */
struct bucket {
    uint64_t calls;
    uint64_t failures;
    uint64_t slow;
};

struct ward__bwin {
    struct ward_breaker_window cfg;
    struct ward__bwin_totals tot;
    uint8_t *slots;          /* COUNT: one per call, a ring */
    uint32_t next;           /* COUNT: where the next call goes */
    uint32_t filled;         /* COUNT: slots in use */
    struct bucket *buckets;  /* TIME: one per second, a ring indexed by second mod size */
    int64_t head_sec;        /* TIME: the newest second in the window */
    bool empty;              /* TIME: no second yet */
};

enum ward_err ward__bwin_normalize(struct ward_breaker_window *cfg)
{
    uint32_t size_default;
    uint32_t size_max;

    switch (cfg->kind) {
    case WARD_BREAKER_WINDOW_NONE:
        return WARD_ERR_OK;
    case WARD_BREAKER_WINDOW_COUNT:
        size_default = COUNT_SIZE_DEFAULT;
        size_max = COUNT_SIZE_MAX;
        break;
    case WARD_BREAKER_WINDOW_TIME:
        size_default = TIME_SIZE_DEFAULT;
        size_max = TIME_SIZE_MAX;
        break;
    default:
        return WARD_ERR_INVAL;
    }
    if (cfg->size == 0)
        cfg->size = size_default;
    if (cfg->min_calls == 0)
        cfg->min_calls = MIN_CALLS_DEFAULT;
    if (cfg->failure_rate == 0)
        cfg->failure_rate = FAILURE_RATE_DEFAULT;
    if (cfg->slow_call_rate == 0)
        cfg->slow_call_rate = SLOW_RATE_DEFAULT;
    if (cfg->slow_call_ns <= 0)
        cfg->slow_call_ns = SLOW_NS_DEFAULT;
    if (cfg->size > size_max || cfg->failure_rate > 100 || cfg->slow_call_rate > 100)
        return WARD_ERR_INVAL;
    /* resilience4j's rule: a count window can never hold more calls than its size */
    if (cfg->kind == WARD_BREAKER_WINDOW_COUNT && cfg->min_calls > cfg->size)
        cfg->min_calls = cfg->size;
    return WARD_ERR_OK;
}

enum ward_err ward__bwin_new(const struct ward_breaker_window *cfg, struct ward__bwin **out)
{
    enum ward_err err = WARD_ERR_NOMEM;
    struct ward__bwin *w = calloc(1, sizeof *w);

    if (w == NULL)
        goto fail;
    w->cfg = *cfg;
    if (cfg->kind == WARD_BREAKER_WINDOW_COUNT)
        w->slots = calloc(cfg->size, sizeof *w->slots);
    else
        w->buckets = calloc(cfg->size, sizeof *w->buckets);
    if (w->slots == NULL && w->buckets == NULL)
        goto fail;
    w->empty = true;
    *out = w;
    return WARD_ERR_OK;
fail:
    ward__bwin_free(w);
    return err;
}

void ward__bwin_free(struct ward__bwin *w)
{
    if (w == NULL)
        return;
    free(w->slots);
    free(w->buckets);
    free(w);
}

void ward__bwin_clear(struct ward__bwin *w)
{
    memset(&w->tot, 0, sizeof w->tot);
    w->next = 0;
    w->filled = 0;
    if (w->buckets != NULL)
        memset(w->buckets, 0, (size_t)w->cfg.size * sizeof *w->buckets);
    w->empty = true;
}

/* Whole seconds of a time, rounded down also for the negative times a fake clock allows. */
static int64_t floor_sec(int64_t ns)
{
    int64_t s = ns / WARD_NS_PER_S;

    return (ns % WARD_NS_PER_S < 0) ? s - 1 : s;
}

static size_t bucket_of(const struct ward__bwin *w, int64_t sec)
{
    int64_t m = sec % (int64_t)w->cfg.size;

    return (size_t)(m < 0 ? m + (int64_t)w->cfg.size : m);
}

static void drop_bucket(struct ward__bwin *w, struct bucket *b)
{
    w->tot.calls -= b->calls;
    w->tot.failures -= b->failures;
    w->tot.slow -= b->slow;
    memset(b, 0, sizeof *b);
}

/* Moves the time window's head to sec, emptying the seconds that fall out of it. A sec
 * older than the head (a caller that read the clock just before another one) stays at
 * the head: the call is counted in the newest second. */
static void advance(struct ward__bwin *w, int64_t sec)
{
    int64_t gap;

    if (w->empty) {
        w->head_sec = sec;
        w->empty = false;
        return;
    }
    if (sec <= w->head_sec)
        return;
    if (__builtin_sub_overflow(sec, w->head_sec, &gap) || gap >= (int64_t)w->cfg.size) {
        for (uint32_t i = 0; i < w->cfg.size; i++)
            drop_bucket(w, &w->buckets[i]);
    } else {
        for (int64_t s = w->head_sec + 1; s <= sec; s++)
            drop_bucket(w, &w->buckets[bucket_of(w, s)]);
    }
    w->head_sec = sec;
}

static bool exceeded(const struct ward__bwin *w)
{
    const struct ward__bwin_totals *t = &w->tot;

    if (t->calls == 0 || t->calls < w->cfg.min_calls)
        return false;
    return t->failures * 100 >= (uint64_t)w->cfg.failure_rate * t->calls ||
           t->slow * 100 >= (uint64_t)w->cfg.slow_call_rate * t->calls;
}

bool ward__bwin_record(struct ward__bwin *w, int64_t now_ns, bool failed, int64_t duration_ns)
{
    /* resilience4j: slow means strictly longer than the threshold */
    bool slow = duration_ns > w->cfg.slow_call_ns;

    if (w->slots != NULL) {
        uint8_t *slot = &w->slots[w->next];

        if (w->filled == w->cfg.size) {
            w->tot.calls--;
            w->tot.failures -= (*slot & SLOT_FAILED) ? 1 : 0;
            w->tot.slow -= (*slot & SLOT_SLOW) ? 1 : 0;
        } else {
            w->filled++;
        }
        *slot = (uint8_t)((failed ? SLOT_FAILED : 0u) | (slow ? SLOT_SLOW : 0u));
        w->next = (w->next + 1 == w->cfg.size) ? 0 : w->next + 1;
    } else {
        struct bucket *b;

        advance(w, floor_sec(now_ns));
        b = &w->buckets[bucket_of(w, w->head_sec)];
        b->calls++;
        b->failures += failed ? 1 : 0;
        b->slow += slow ? 1 : 0;
    }
    w->tot.calls++;
    w->tot.failures += failed ? 1 : 0;
    w->tot.slow += slow ? 1 : 0;
    return exceeded(w);
}

void ward__bwin_totals(struct ward__bwin *w, int64_t now_ns, struct ward__bwin_totals *out)
{
    if (w->buckets != NULL && !w->empty)
        advance(w, floor_sec(now_ns));
    *out = w->tot;
}
