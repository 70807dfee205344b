/* waiters.c — POST /payments requests suspended until their saga ends or their deadline
 * (minus a margin) comes: exactly one answer each. A waiter is answered by whoever takes
 * it off the list under the lock — the worker that ended the saga, or the timer thread at
 * the deadline — and its atomic `answered` flag refuses any second answer: after an answer
 * the request is released and touching it again would be a use-after-free. */
#include <stdlib.h>
#include <string.h>

#include <ward/thread.h>

#include "pay.h"

struct pay_waiter {
    struct pay_waiter *next;
    struct ward_req *req;
    char id[WARD_ID_MAX];
    int64_t answer_at; /* monotonic ns */
    atomic_bool answered;
};

/* How long before the caller's deadline the answer goes out: a tenth of the budget,
 * between 50 ms and 500 ms, so that it arrives before the caller gives up. */
static int64_t answer_time(struct ward_req *req)
{
    int64_t now = ward_clock_now(NULL), deadline = ward_req_deadline(req);
    int64_t margin = (deadline - now) / 10;
    if (margin < 50 * WARD_NS_PER_MS)
        margin = 50 * WARD_NS_PER_MS;
    if (margin > 500 * WARD_NS_PER_MS)
        margin = 500 * WARD_NS_PER_MS;
    return deadline - margin;
}

static void answer(struct pay_ctx *ctx, struct pay_waiter *w)
{
    if (!atomic_exchange(&w->answered, true))
        pay_answer(ctx, w->req, w->id, false);
    free(w);
}

void pay_waiters_add(struct pay_ctx *ctx, struct ward_req *req, const char *id)
{
    struct pay_waiters *ws = &ctx->waiters;
    struct pay_waiter *w = calloc(1, sizeof *w);
    if (w == NULL) {
        pay_answer(ctx, req, id, false); /* the payment goes on; say so now */
        return;
    }
    w->req = req;
    strncpy(w->id, id, sizeof w->id - 1);
    w->answer_at = answer_time(req);
    atomic_init(&w->answered, false);
    pthread_mutex_lock(&ws->lock);
    bool now = ws->closing || w->answer_at <= ward_clock_now(NULL);
    if (!now) {
        w->next = ws->list;
        ws->list = w;
        pthread_cond_signal(&ws->cond);
    }
    pthread_mutex_unlock(&ws->lock);
    if (now)
        answer(ctx, w);
}

/* Takes off the list the waiters that match (id, or the due ones when id is NULL, or all
 * when all) into a list of its own. */
static struct pay_waiter *take(struct pay_waiters *ws, const char *id, bool all, int64_t now,
                               int64_t *next_at)
{
    struct pay_waiter *out = NULL;
    *next_at = INT64_MAX;
    pthread_mutex_lock(&ws->lock);
    for (struct pay_waiter **p = &ws->list; *p != NULL;) {
        struct pay_waiter *w = *p;
        bool hit = all || (id != NULL ? strcmp(w->id, id) == 0 : w->answer_at <= now);
        if (hit) {
            *p = w->next;
            w->next = out;
            out = w;
        } else {
            if (w->answer_at < *next_at)
                *next_at = w->answer_at;
            p = &w->next;
        }
    }
    pthread_mutex_unlock(&ws->lock);
    return out;
}

static void answer_all(struct pay_ctx *ctx, struct pay_waiter *list)
{
    while (list != NULL) {
        struct pay_waiter *next = list->next;
        answer(ctx, list);
        list = next;
    }
}

void pay_waiters_done(struct pay_ctx *ctx, const char *id)
{
    int64_t next_at;
    answer_all(ctx, take(&ctx->waiters, id, false, 0, &next_at));
}

static void *timer(void *arg)
{
    struct pay_ctx *ctx = arg;
    struct pay_waiters *ws = &ctx->waiters;
    for (;;) {
        int64_t next_at;
        answer_all(ctx, take(ws, NULL, false, ward_clock_now(NULL), &next_at));
        pthread_mutex_lock(&ws->lock);
        if (ws->stop) {
            pthread_mutex_unlock(&ws->lock);
            break;
        }
        /* next_at may be stale by now: a new waiter signals, a wrong wake-up only loops */
        if (ws->list == NULL || next_at == INT64_MAX) {
            pthread_cond_wait(&ws->cond, &ws->lock);
        } else {
            struct timespec ts = {.tv_sec = next_at / WARD_NS_PER_S,
                                  .tv_nsec = next_at % WARD_NS_PER_S};
            pthread_cond_timedwait(&ws->cond, &ws->lock, &ts);
        }
        pthread_mutex_unlock(&ws->lock);
    }
    return NULL;
}

enum ward_err pay_waiters_start(struct pay_ctx *ctx)
{
    enum ward_err err = ward_thread_start(&ctx->waiters.thread, timer, ctx);
    ctx->waiters.started = err == WARD_ERR_OK;
    return err;
}

void pay_waiters_flush(struct pay_ctx *ctx)
{
    struct pay_waiters *ws = &ctx->waiters;
    int64_t next_at;
    pthread_mutex_lock(&ws->lock);
    ws->closing = true;
    pthread_mutex_unlock(&ws->lock);
    answer_all(ctx, take(ws, NULL, true, 0, &next_at));
}

void pay_waiters_stop(struct pay_ctx *ctx)
{
    struct pay_waiters *ws = &ctx->waiters;
    pay_waiters_flush(ctx);
    pthread_mutex_lock(&ws->lock);
    ws->stop = true;
    pthread_cond_broadcast(&ws->cond);
    pthread_mutex_unlock(&ws->lock);
    if (ws->started)
        pthread_join(ws->thread, NULL);
    ws->started = false;
}
