/* timer.c — the engine's timers: a binary min-heap of deadlines per worker, so that
 * arming, cancelling and finding the next one cost O(log n) with thousands armed (a
 * timer per connection and per request in flight). */
#include <stdlib.h>

#include "engine.h"

static void heap_place(struct gw_timers *ts, size_t i, struct gw_timer *t)
{
    ts->heap[i] = t;
    t->slot = i + 1;
}

static void heap_up(struct gw_timers *ts, size_t i)
{
    struct gw_timer *t = ts->heap[i];
    while (i > 0 && ts->heap[(i - 1) / 2]->at > t->at) {
        heap_place(ts, i, ts->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_place(ts, i, t);
}

static void heap_down(struct gw_timers *ts, size_t i)
{
    struct gw_timer *t = ts->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= ts->n)
            break;
        if (c + 1 < ts->n && ts->heap[c + 1]->at < ts->heap[c]->at)
            c++;
        if (ts->heap[c]->at >= t->at)
            break;
        heap_place(ts, i, ts->heap[c]);
        i = c;
    }
    heap_place(ts, i, t);
}

void gw_timers_cancel(struct gw_timers *ts, struct gw_timer *t)
{
    if (t->slot == 0)
        return;
    size_t i = t->slot - 1;
    t->slot = 0;
    struct gw_timer *last = ts->heap[--ts->n];
    if (i == ts->n)
        return;
    heap_place(ts, i, last);
    if (i > 0 && ts->heap[(i - 1) / 2]->at > last->at)
        heap_up(ts, i);
    else
        heap_down(ts, i);
}

bool gw_timers_set(struct gw_timers *ts, struct gw_timer *t, int64_t at)
{
    gw_timers_cancel(ts, t);
    if (ts->n == ts->cap) {
        size_t cap = ts->cap ? ts->cap * 2 : 256;
        struct gw_timer **h = realloc(ts->heap, cap * sizeof *h);
        if (h == NULL)
            return false;
        ts->heap = h;
        ts->cap = cap;
    }
    t->at = at;
    heap_place(ts, ts->n++, t);
    heap_up(ts, ts->n - 1);
    return true;
}

void gw_timers_run(struct gw_timers *ts, int64_t now)
{
    while (ts->n > 0 && ts->heap[0]->at <= now) {
        struct gw_timer *t = ts->heap[0];
        gw_timers_cancel(ts, t);
        t->fn(t);
    }
}

int64_t gw_timers_next(const struct gw_timers *ts)
{
    return ts->n > 0 ? ts->heap[0]->at : INT64_MAX;
}
