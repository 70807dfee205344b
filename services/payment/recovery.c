/* recovery.c — at start and every --recovery-interval: claims the pending payments whose
 * lease ran out (their instance crashed or gave them up to wait) and whose next attempt is
 * due, and queues them. The claim is a conditional UPDATE of owner and lease_until, so of
 * two instances sharing the database only one drives a payment at a time. */
#include <stdlib.h>
#include <string.h>

#include <ward/thread.h>

#include "pay.h"

#define CLAIM_BATCH 100

struct claim {
    struct pay_ctx *ctx;
    char (*ids)[WARD_ID_MAX]; /* out: the claimed */
    size_t n;
};

static struct ward_query q_due = WARD_QUERY(
    "SELECT id FROM payments WHERE status = 'pending' AND lease_until < $1"
    " AND next_attempt_at <= $1 ORDER BY next_attempt_at LIMIT $2");

/* A step that was calling when its instance lost the payment may have reached the
 * service: that stays known as sent, and the step starts anew (its own commit). */
static struct ward_query q_claim = WARD_QUERY(
    "UPDATE payments SET owner = $2, lease_until = $3,"
    " sent = CASE WHEN calling <> 0 THEN 1 ELSE sent END, calling = 0"
    " WHERE id = $1 AND status = 'pending' AND lease_until < $4 AND next_attempt_at <= $4");

static enum ward_err claim_fn(struct ward_tx *tx, void *arg)
{
    struct claim *c = arg;
    struct ward_rows *rows = NULL;
    char (*due)[WARD_ID_MAX] = c->ids + CLAIM_BATCH; /* the second half: candidates */
    size_t n_due = 0;
    int64_t now = pay_now_ms();
    c->n = 0;
    enum ward_err err = ward_tx_exec(tx, &q_due, (struct ward_param[]){WARD_P_INT(now), WARD_P_INT(CLAIM_BATCH)}, 2, &rows);
    if (err != WARD_ERR_OK)
        return err;
    while (ward_rows_next(rows) && n_due < CLAIM_BATCH)
        strncpy(due[n_due++], ward_rows_text(rows, 0), WARD_ID_MAX - 1);
    err = ward_rows_err(rows);
    ward_rows_free(rows);
    for (size_t i = 0; i < n_due && err == WARD_ERR_OK; i++) {
        if (pay_workers_active(c->ctx, due[i]))
            continue; /* ours already, and about to renew its lease */
        const struct ward_param p[] = {
            WARD_P_TEXT(due[i]), WARD_P_TEXT(c->ctx->owner),
            WARD_P_INT(now + c->ctx->lease / WARD_NS_PER_MS), WARD_P_INT(now)};
        err = ward_tx_exec(tx, &q_claim, p, 4, NULL);
        if (err == WARD_ERR_OK && ward_tx_changes(tx) == 1)
            memcpy(c->ids[c->n++], due[i], WARD_ID_MAX);
    }
    return err;
}

/* One pass; true when it claimed a full batch (more may be due). */
static bool pass(struct pay_ctx *ctx, char (*ids)[WARD_ID_MAX])
{
    struct claim c = {.ctx = ctx, .ids = ids};
    enum ward_err err = ward_store_tx(ctx->store, WARD_TX_WRITE_ROWS, claim_fn, &c);
    if (err != WARD_ERR_OK) {
        WARD_WARN(ctx->log, NULL, "recovery pass failed", WARD_S("error", ward_strerror(err)));
        return false;
    }
    if (c.n > 0)
        WARD_INFO(ctx->log, NULL, "recovered payments", WARD_I("count", c.n));
    for (size_t i = 0; i < c.n; i++)
        pay_workers_submit(ctx, ids[i]);
    return c.n == CLAIM_BATCH;
}

static void *recovery(void *arg)
{
    struct pay_ctx *ctx = arg;
    struct pay_recovery *r = &ctx->recovery;
    char (*ids)[WARD_ID_MAX] = calloc(2 * CLAIM_BATCH, WARD_ID_MAX);
    for (;;) {
        bool more = ids != NULL && pass(ctx, ids);
        pthread_mutex_lock(&r->lock);
        if (!r->stop && !more) {
            int64_t at = ward_clock_now(NULL) + ctx->recovery_interval;
            struct timespec ts = {.tv_sec = at / WARD_NS_PER_S, .tv_nsec = at % WARD_NS_PER_S};
            pthread_cond_timedwait(&r->cond, &r->lock, &ts);
        }
        bool stop = r->stop;
        pthread_mutex_unlock(&r->lock);
        if (stop)
            break;
        if (ids == NULL)
            ids = calloc(2 * CLAIM_BATCH, WARD_ID_MAX);
    }
    free(ids);
    return NULL;
}

enum ward_err pay_recovery_start(struct pay_ctx *ctx)
{
    enum ward_err err = ward_thread_start(&ctx->recovery.thread, recovery, ctx);
    ctx->recovery.started = err == WARD_ERR_OK;
    return err;
}

void pay_recovery_stop(struct pay_ctx *ctx)
{
    struct pay_recovery *r = &ctx->recovery;
    pthread_mutex_lock(&r->lock);
    r->stop = true;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
    if (r->started)
        pthread_join(r->thread, NULL);
    r->started = false;
}
