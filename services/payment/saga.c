/* saga.c — one payment's steps: invoice → ledger → pay → completed, or ledger failed for
 * good → void → failed, or invoice failed for good → failed. Each step is written down
 * before it runs (`started`, and the lease renewed) and after (one transaction with the
 * outcome and the payment's next step, which starts in that same commit: one commit per
 * step, the first one's in the payment's creation), every call carries Idempotency-Key
 * "<payment id>:<step>", and a step gives up only on a definite answer (DESIGN.md §6). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ward/fault.h>
#include <ward/money.h>

#include "pay.h"

/* --- before the step --- */

struct begin {
    struct pay_ctx *ctx;
    const struct pay_row *row;
    bool ours; /* out */
};

static struct ward_query q_begin = WARD_QUERY(
    "UPDATE payments SET lease_until = $4, calling = 1"
    " WHERE id = $1 AND owner = $2 AND step = $3 AND status = 'pending'");

static enum ward_err begin_fn(struct ward_tx *tx, void *arg)
{
    struct begin *b = arg;
    b->ours = false;
    const struct ward_param p[] = {WARD_P_TEXT(b->row->id), WARD_P_TEXT(b->ctx->owner),
                                   WARD_P_TEXT(b->row->step),
                                   WARD_P_INT(pay_now_ms() + b->ctx->lease / WARD_NS_PER_MS)};
    enum ward_err err = ward_tx_exec(tx, &q_begin, p, 4, NULL);
    if (err != WARD_ERR_OK || ward_tx_changes(tx) != 1)
        return err; /* not ours any more: nothing to log */
    b->ours = true;
    return pay_log_step(tx, b->row->id, b->row->step, "started", NULL);
}

/* --- the steps --- */

static void step_invoice(struct pay_ctx *ctx, const struct pay_row *row, const char *rid,
                         const char *key, struct pay_outcome *o)
{
    char amount[WARD_MONEY_BUFSZ];
    ward_money_format(row->amount, ward_currency_find(row->currency), amount, sizeof amount);
    json_t *body = json_pack("{s:s, s:s, s:s, s:s, s:s}", "customer_id", row->customer_id,
                             "amount", amount, "currency", row->currency, "description",
                             row->description, "payment_id", row->id);
    if (body == NULL) {
        *o = (struct pay_outcome){.verdict = PAY_AGAIN, .detail = "out of memory"};
        return;
    }
    pay_call(ctx, ctx->invoices, "/invoices", body, key, rid, o, NULL);
    json_decref(body);
}

static void step_ledger(struct pay_ctx *ctx, const struct pay_row *row, const char *rid,
                        const char *key, struct pay_outcome *o)
{
    struct pay_account_set acc;
    pay_accounts_get(ctx, row->currency, rid, &acc, o);
    if (o->verdict != PAY_DONE)
        return;
    char amount[WARD_MONEY_BUFSZ], description[128];
    ward_money_format(row->amount, ward_currency_find(row->currency), amount, sizeof amount);
    snprintf(description, sizeof description, "payment %s (invoice %s)", row->id, row->invoice_id);
    json_t *body = json_pack(
        "{s:s, s:[{s:s, s:s, s:s, s:s}, {s:s, s:s, s:s, s:s}]}", "description", description,
        "entries", "account_id", acc.cash, "direction", "debit", "amount", amount, "currency",
        row->currency, "account_id", acc.revenue, "direction", "credit", "amount", amount,
        "currency", row->currency);
    if (body == NULL) {
        *o = (struct pay_outcome){.verdict = PAY_AGAIN, .detail = "out of memory"};
        return;
    }
    pay_call(ctx, ctx->ledger, "/transactions", body, key, rid, o, NULL);
    json_decref(body);
}

static void step_invoice_action(struct pay_ctx *ctx, const struct pay_row *row, const char *rid,
                                const char *key, const char *verb, struct pay_outcome *o)
{
    char path[64 + PAY_REF_MAX];
    snprintf(path, sizeof path, "/invoices/%s/%s", row->invoice_id, verb);
    json_t *body = strcmp(verb, "pay") == 0
                       ? json_pack("{s:s}", "payment_id", row->id)
                       : json_pack("{s:s}", "reason", row->failure_reason);
    if (body == NULL) {
        *o = (struct pay_outcome){.verdict = PAY_AGAIN, .detail = "out of memory"};
        return;
    }
    pay_call(ctx, ctx->invoices, path, body, key, rid, o, NULL);
    json_decref(body);
}

/* --- after the step --- */

struct finish {
    struct pay_ctx *ctx;
    const struct pay_row *row;
    const struct pay_outcome *o;
    bool maybe_sent; /* an earlier round of this step may have reached the service */
    /* what to write */
    const char *step, *status, *invoice_id, *txn_id, *failure_reason, *event;
    bool completed, failed, again;
    bool refused; /* again, after a definite refusal past the point of no return */
    bool ours;    /* out */
    int64_t lease_until; /* out: as written */
};

static struct ward_query q_finish = WARD_QUERY(
    "UPDATE payments SET step = $4, status = $5,"
    " invoice_id = COALESCE(CAST($6 AS TEXT), invoice_id),"
    " ledger_transaction_id = COALESCE(CAST($7 AS TEXT), ledger_transaction_id),"
    " failure_reason = COALESCE(CAST($8 AS TEXT), failure_reason),"
    " completed_at = CAST($9 AS TEXT), failed_at = CAST($10 AS TEXT),"
    " attempts = $11, next_attempt_at = $12, lease_until = $13, sent = $14, calling = $15"
    " WHERE id = $1 AND owner = $2 AND step = $3 AND status = 'pending'");

/* The delay before round attempts + 1 of a step: 250 ms doubling up to --retry-max, with
 * half of it jittered so that instances do not retry in step. */
static int64_t backoff_ms(const struct pay_ctx *ctx, int64_t attempts)
{
    int64_t cap = ctx->retry_max / WARD_NS_PER_MS, d = 250;
    for (int64_t i = 0; i < attempts && d < cap; i++)
        d *= 2;
    if (d > cap)
        d = cap;
    static _Thread_local unsigned seed;
    if (seed == 0)
        seed = (unsigned)ward_clock_now(NULL) ^ (unsigned)(uintptr_t)&seed;
    return d / 2 + (d / 2 > 0 ? rand_r(&seed) % (d / 2 + 1) : 0);
}

static enum ward_err finish_fn(struct ward_tx *tx, void *arg)
{
    struct finish *f = arg;
    f->ours = false;
    char now[WARD_RFC3339_SIZE];
    pay_now_text(now);
    int64_t now_ms = pay_now_ms();
    int64_t attempts = f->again ? f->row->attempts + 1 : 0;
    bool terminal = f->completed || f->failed;
    bool next = !f->again && !terminal; /* the next step starts in this commit */
    /* waiting: the lease is given up, recovery takes the payment when it is due */
    f->lease_until = f->again || terminal ? 0 : now_ms + f->ctx->lease / WARD_NS_PER_MS;
    const struct ward_param p[] = {
        WARD_P_TEXT(f->row->id),
        WARD_P_TEXT(f->ctx->owner),
        WARD_P_TEXT(f->row->step),
        WARD_P_TEXT(f->step),
        WARD_P_TEXT(f->status),
        WARD_P_TEXT_OR_NULL(f->invoice_id),
        WARD_P_TEXT_OR_NULL(f->txn_id),
        WARD_P_TEXT_OR_NULL(f->failure_reason),
        f->completed ? WARD_P_TEXT(now) : WARD_P_NULL,
        f->failed ? WARD_P_TEXT(now) : WARD_P_NULL,
        WARD_P_INT(attempts),
        /* a refusal past the point of no return waits the longest: it needs an operator */
        WARD_P_INT(f->again ? now_ms + backoff_ms(f->ctx, f->refused ? 64 : f->row->attempts)
                            : now_ms),
        WARD_P_INT(f->lease_until),
        WARD_P_INT(f->again && (f->maybe_sent || f->o->sent) ? 1 : 0),
        WARD_P_INT(next ? 1 : 0),
    };
    enum ward_err err = ward_tx_exec(tx, &q_finish, p, sizeof p / sizeof p[0], NULL);
    if (err != WARD_ERR_OK || ward_tx_changes(tx) != 1)
        return err;
    f->ours = true;
    err = pay_log_step(tx, f->row->id, f->row->step, f->event, f->o->detail);
    if (err == WARD_ERR_OK && next)
        err = pay_log_step(tx, f->row->id, f->step, "started", NULL);
    return err;
}

/* Decides what the outcome o of row's step makes of the payment. */
static void decide(struct finish *f)
{
    const struct pay_row *row = f->row;
    const struct pay_outcome *o = f->o;
    const char *s = row->step;
    f->step = s;
    f->status = "pending";
    if (o->verdict == PAY_DONE) {
        f->event = "succeeded";
        if (strcmp(s, "invoice") == 0) {
            f->step = "ledger";
            f->invoice_id = o->result_id;
        } else if (strcmp(s, "ledger") == 0) {
            f->step = "pay";
            f->txn_id = o->result_id;
        } else if (strcmp(s, "pay") == 0) {
            f->step = "done";
            f->status = "completed";
            f->completed = true;
        } else {
            f->step = "done";
            f->status = "failed";
            f->failed = true;
        }
        return;
    }
    bool definite = o->verdict == PAY_GIVE_UP && !(o->unreached && f->maybe_sent);
    if (definite && strcmp(s, "invoice") == 0) {
        f->event = "failed";
        f->step = "done";
        f->status = "failed";
        f->failed = true;
        f->failure_reason = o->detail;
        return;
    }
    if (definite && strcmp(s, "ledger") == 0) {
        f->event = "failed"; /* compensate: void the invoice, then failed */
        f->step = "void";
        f->failure_reason = o->detail;
        return;
    }
    /* ambiguous; or pay/void refused: after the ledger step only forward, and the void is
     * retried until it succeeds — both wait and ask again (the log says why) */
    f->event = "retry";
    f->again = true;
    f->refused = o->verdict == PAY_GIVE_UP && !o->unreached; /* a 4xx, not "unreached" */
}

/* Whether the step of row was started in the commit that made it current (the payment's
 * creation, the previous step's outcome) and that commit is recent (half the lease left,
 * not queued here for long): then a commit of its own would only repeat it. Recovery
 * clears calling when it takes a payment over, so a step interrupted by a crash always
 * starts anew, in the log too. */
static bool started_already(const struct pay_ctx *ctx, const struct pay_row *row)
{
    int64_t need = ctx->lease / 2 / WARD_NS_PER_MS;
    return row->calling && strcmp(row->owner, ctx->owner) == 0 &&
           row->lease_until > pay_now_ms() + need;
}

/* The payment as finish_fn left it when its next step started: the saga goes on from it
 * without reading it again. */
static void advance(struct pay_row *row, const struct finish *f)
{
    if (f->invoice_id != NULL)
        snprintf(row->invoice_id, sizeof row->invoice_id, "%s", f->invoice_id);
    if (f->txn_id != NULL)
        snprintf(row->ledger_transaction_id, sizeof row->ledger_transaction_id, "%s", f->txn_id);
    if (f->failure_reason != NULL) {
        snprintf(row->failure_reason, sizeof row->failure_reason, "%s", f->failure_reason);
        row->has_failure_reason = true;
    }
    if (f->step != row->step)
        snprintf(row->step, sizeof row->step, "%s", f->step);
    row->attempts = 0;
    row->sent = false;
    row->calling = true;
    row->lease_until = f->lease_until;
}

/* Runs row's current step; true when the next one started (row now describes it). */
static bool run_step(struct pay_ctx *ctx, struct pay_row *row, bool *terminal)
{
    struct begin b = {.ctx = ctx, .row = row};
    enum ward_err err = WARD_ERR_OK;
    /* calling set by an earlier round (not this one's start) means it may have been sent */
    bool earlier_call = row->calling && !started_already(ctx, row);
    if (earlier_call || !row->calling)
        err = ward_store_tx(ctx->store, WARD_TX_WRITE_ROWS, begin_fn, &b);
    else
        b.ours = true;
    if (err != WARD_ERR_OK || !b.ours) {
        if (err != WARD_ERR_OK)
            WARD_WARN(ctx->log, NULL, "payment step not started", WARD_S("payment_id", row->id),
                      WARD_S("step", row->step), WARD_S("error", ward_strerror(err)));
        return false;
    }
    char key[WARD_ID_MAX + 16];
    snprintf(key, sizeof key, "%s:%s", row->id, row->step);
    const char *rid = row->created_request_id[0] != '\0' ? row->created_request_id : NULL;
    struct pay_outcome o;
    /* crash tests: "payment.<step>.before_call" (started logged, nothing sent) and
     * "payment.<step>.after_call" (the call answered, its outcome not recorded) */
    char point[32 + sizeof row->step];
    snprintf(point, sizeof point, "payment.%s.before_call", row->step);
    ward_fault(point);
    if (strcmp(row->step, "invoice") == 0)
        step_invoice(ctx, row, rid, key, &o);
    else if (strcmp(row->step, "ledger") == 0)
        step_ledger(ctx, row, rid, key, &o);
    else
        step_invoice_action(ctx, row, rid, key, row->step, &o);
    snprintf(point, sizeof point, "payment.%s.after_call", row->step);
    ward_fault(point);

    struct finish f = {.ctx = ctx, .row = row, .o = &o, .maybe_sent = row->sent || earlier_call};
    decide(&f);
    if (f.refused)
        WARD_ERROR(ctx->log, NULL, "payment step refused after the point of no return",
                   WARD_S("payment_id", row->id), WARD_S("step", row->step),
                   WARD_S("detail", o.detail));
    err = ward_store_tx(ctx->store, WARD_TX_WRITE_ROWS, finish_fn, &f);
    if (err != WARD_ERR_OK) /* the lease runs out and recovery runs the step again */
        WARD_WARN(ctx->log, NULL, "payment step outcome not recorded", WARD_S("payment_id", row->id),
                  WARD_S("step", row->step), WARD_S("error", ward_strerror(err)));
    WARD_DEBUG(ctx->log, NULL, "payment step", WARD_S("payment_id", row->id),
               WARD_S("step", row->step), WARD_S("event", f.event), WARD_S("detail", o.detail));
    *terminal = f.completed || f.failed;
    bool more = err == WARD_ERR_OK && f.ours && !f.again && !*terminal;
    if (more)
        advance(row, &f);
    return more;
}

struct load {
    const char *id;
    struct pay_row row;
    bool found;
};

static enum ward_err load_fn(struct ward_tx *tx, void *arg)
{
    struct load *l = arg;
    return pay_row_load(tx, l->id, &l->row, &l->found);
}

void pay_saga_drive(struct pay_ctx *ctx, const char *id)
{
    struct load *l = malloc(sizeof *l);
    if (l == NULL)
        return; /* the lease runs out; recovery tries again */
    l->id = id;
    enum ward_err err = ward_store_tx(ctx->store, WARD_TX_READ, load_fn, l);
    if (err != WARD_ERR_OK || !l->found)
        goto out;
    if (strcmp(l->row.status, "pending") != 0) {
        pay_waiters_done(ctx, id);
        goto out;
    }
    if (strcmp(l->row.owner, ctx->owner) != 0)
        goto out;
    /* each step's outcome commits the next one's start: the row stays current here */
    for (;;) {
        if (atomic_load(&ctx->stopping))
            break;
        bool terminal = false;
        bool more = run_step(ctx, &l->row, &terminal);
        if (terminal)
            pay_waiters_done(ctx, id);
        if (!more)
            break;
    }
out:
    free(l);
}
