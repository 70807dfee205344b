/* bulkhead.c — a lock-free cap on concurrent calls: one atomic counter moved by
 * compare-and-swap, so it never passes the cap even for an instant. */
#include <ward/bulkhead.h>

#include <assert.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_MAX_CONCURRENT 25
#define CACHE_LINE 64

struct ward_bulkhead {
    /* The hot line: the counter and what acquire reads with it. */
    alignas(CACHE_LINE) _Atomic uint32_t in_use;
    uint32_t max;
    char *name;
    /* Written on rejections and renders only, kept off the hot line. */
    alignas(CACHE_LINE) _Atomic uint64_t rejections;
    _Atomic uint64_t reported;  /* rejections already added to the exported counter */
    atomic_bool exported;
    /* Set by ward_bulkhead_export before the collector is registered; read by it only. */
    struct ward_metric *m_in_use;
    struct ward_metric *m_max;
    struct ward_metric *m_rejections;
    struct ward_metrics *reg; /* where collect is registered, to unregister on free */
};

void ward_bulkhead_settings_default(struct ward_bulkhead_settings *s)
{
    *s = (struct ward_bulkhead_settings){
        .name = "default",
        .max_concurrent = DEFAULT_MAX_CONCURRENT,
    };
}

enum ward_err ward_bulkhead_new(const struct ward_bulkhead_settings *s,
                                struct ward_bulkhead **out)
{
    struct ward_bulkhead_settings defaults;
    struct ward_bulkhead *bh = NULL;
    const char *name;
    size_t len;
    enum ward_err rc = WARD_ERR_INVAL;

    if (s == NULL) {
        ward_bulkhead_settings_default(&defaults);
        s = &defaults;
    }
    if (out == NULL || s->max_concurrent < 1)
        goto fail;
    name = s->name != NULL ? s->name : "default";
    rc = WARD_ERR_NOMEM;
    /* sizeof is a multiple of the alignment, as aligned_alloc wants */
    bh = aligned_alloc(alignof(struct ward_bulkhead), sizeof *bh);
    if (bh == NULL)
        goto fail;
    memset(bh, 0, sizeof *bh);
    len = strlen(name);
    bh->name = malloc(len + 1);
    if (bh->name == NULL)
        goto fail;
    memcpy(bh->name, name, len + 1);
    atomic_init(&bh->in_use, 0);
    atomic_init(&bh->rejections, 0);
    atomic_init(&bh->reported, 0);
    atomic_init(&bh->exported, false);
    bh->max = s->max_concurrent;
    *out = bh;
    return WARD_ERR_OK;
fail:
    ward_bulkhead_free(bh);
    return rc;
}

static void collect(struct ward_metrics *reg, void *arg);

void ward_bulkhead_free(struct ward_bulkhead *bh)
{
    if (bh == NULL)
        return;
    /* waits out a render that is running collect right now */
    if (bh->reg != NULL)
        ward_metrics_off_collect(bh->reg, collect, bh);
    free(bh->name);
    free(bh);
}

enum ward_err ward_bulkhead_acquire(struct ward_bulkhead *bh)
{
    uint32_t cur = atomic_load_explicit(&bh->in_use, memory_order_relaxed);
    enum ward_err rc = WARD_ERR_OK;

    do {
        if (cur >= bh->max) {
            atomic_fetch_add_explicit(&bh->rejections, 1, memory_order_relaxed);
            rc = WARD_ERR_BULKHEAD_FULL;
            break;
        }
    } while (!atomic_compare_exchange_weak_explicit(&bh->in_use, &cur, cur + 1,
                                                    memory_order_acquire, memory_order_relaxed));
    return rc;
}

void ward_bulkhead_release(struct ward_bulkhead *bh)
{
    uint32_t cur = atomic_load_explicit(&bh->in_use, memory_order_relaxed);

    do {
        /* a compare-and-swap rather than a decrement, so a stray release cannot wrap the
         * counter to 2^32 - 1 and shut the bulkhead for good */
        if (cur == 0) {
            assert(!"ward_bulkhead_release without a slot taken");
            break;
        }
    } while (!atomic_compare_exchange_weak_explicit(&bh->in_use, &cur, cur - 1,
                                                    memory_order_release, memory_order_relaxed));
}

void ward_bulkhead_stats(const struct ward_bulkhead *bh, struct ward_bulkhead_stats *out)
{
    out->in_use = atomic_load_explicit(&bh->in_use, memory_order_relaxed);
    out->max = bh->max;
    out->rejections = atomic_load_explicit(&bh->rejections, memory_order_relaxed);
}

/* Runs at the start of every render: the gauge reads in_use now, and the counter gains
 * the rejections since the last render. Two renders at once claim disjoint shares
 * through the compare-and-swap on reported, so none is added twice. */
static void collect(struct ward_metrics *reg, void *arg)
{
    struct ward_bulkhead *bh = arg;
    uint64_t now = atomic_load_explicit(&bh->rejections, memory_order_relaxed);
    uint64_t prev = atomic_load_explicit(&bh->reported, memory_order_relaxed);

    (void)reg;
    ward_gauge_set(bh->m_in_use,
                   (double)atomic_load_explicit(&bh->in_use, memory_order_relaxed));
    while (now > prev) {
        if (atomic_compare_exchange_weak_explicit(&bh->reported, &prev, now, memory_order_relaxed,
                                                  memory_order_relaxed)) {
            ward_counter_add(bh->m_rejections, now - prev);
            break;
        }
    }
}

/* The child labelled name=<name> of family f in *m: INVAL when f is NULL (a clash with
 * a family registered before, or no memory to make it), NOMEM for the child. */
static enum ward_err child(struct ward_metric_family *f, const char *name, struct ward_metric **m)
{
    if (f == NULL)
        return WARD_ERR_INVAL;
    *m = ward_metric_get(f, (const char *const[]){name});
    return *m != NULL ? WARD_ERR_OK : WARD_ERR_NOMEM;
}

enum ward_err ward_bulkhead_export(struct ward_bulkhead *bh, struct ward_metrics *reg)
{
    static const char *const labels[] = {"name"};
    enum ward_err rc;

    if (bh == NULL || reg == NULL)
        return WARD_ERR_INVAL;
    if (atomic_exchange(&bh->exported, true))
        return WARD_ERR_STATE;
    rc = child(ward_metrics_gauge(reg, "ward_bulkhead_in_use", "Bulkhead slots taken.", 1,
                                  labels),
               bh->name, &bh->m_in_use);
    if (rc != WARD_ERR_OK)
        goto fail;
    rc = child(ward_metrics_gauge(reg, "ward_bulkhead_max", "Bulkhead slots in all.", 1, labels),
               bh->name, &bh->m_max);
    if (rc != WARD_ERR_OK)
        goto fail;
    rc = child(ward_metrics_counter(reg, "ward_bulkhead_rejections_total",
                                    "Calls refused because the bulkhead was full.", 1, labels),
               bh->name, &bh->m_rejections);
    if (rc != WARD_ERR_OK)
        goto fail;
    ward_gauge_set(bh->m_max, (double)bh->max);
    rc = ward_metrics_on_collect(reg, collect, bh);
    if (rc != WARD_ERR_OK)
        goto fail;
    bh->reg = reg;
    return WARD_ERR_OK;
fail:
    atomic_store(&bh->exported, false);
    return rc;
}
