/* payments_post.c — POST /payments: records a pending payment under a required
 * Idempotency-Key and hands it to the workers; the request waits for the saga until its
 * deadline (minus a margin): 201 when the payment ended, else 202 while it goes on. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ward/fault.h>
#include <ward/fields.h>
#include <ward/money.h>

#include "pay.h"

struct create {
    /* in */
    struct pay_ctx *ctx;
    struct ward_req *req;
    struct ward_idem_claim *claim; /* made in the transaction, with the payment */
    const char *id, *customer_id, *description, *request_id, *location;
    int64_t amount;
    const struct ward_currency *currency;
};

/* Owned by this instance from the start, with a lease: recovery leaves it alone while
 * the workers here drive it. Its invoice step starts in the same commit (calling, and
 * "started" in the log), so that the worker calls invoice-service at once. */
static struct ward_query q_insert = WARD_QUERY(
    "INSERT INTO payments (id, customer_id, amount, currency, description, status, step,"
    " created_at, created_request_id, owner, lease_until, attempts, next_attempt_at, calling)"
    " VALUES ($1, $2, $3, $4, $5, 'pending', 'invoice', $6, $7, $8, $9, 0, $10, 1)");

static enum ward_err create_fn(struct ward_tx *tx, void *arg)
{
    struct create *c = arg;
    char now[WARD_RFC3339_SIZE], body[64 + WARD_ID_MAX];
    int64_t now_ms = pay_now_ms();
    pay_now_text(now);
    enum ward_err err = ward_idem_begin_in(tx, c->ctx->idem, c->req, true, c->claim);
    if (err != WARD_ERR_OK || c->claim->verdict != WARD_IDEM_PROCEED)
        return err; /* a replay, a clash: answered after the transaction */
    const struct ward_param p[] = {
        WARD_P_TEXT(c->id),          WARD_P_TEXT(c->customer_id),
        WARD_P_INT(c->amount),       WARD_P_TEXT(c->currency->code),
        WARD_P_TEXT(c->description), WARD_P_TEXT(now),
        WARD_P_TEXT(c->request_id),  WARD_P_TEXT(c->ctx->owner),
        WARD_P_INT(now_ms + c->ctx->lease / WARD_NS_PER_MS), WARD_P_INT(now_ms),
    };
    err = ward_tx_exec(tx, &q_insert, p, sizeof p / sizeof p[0], NULL);
    if (err == WARD_ERR_OK)
        err = pay_log_step(tx, c->id, "invoice", "started", NULL);
    if (err != WARD_ERR_OK)
        return err;
    /* the key's record names the payment only: a replay answers its state then */
    int len = snprintf(body, sizeof body, "{\"payment_id\":\"%s\"}", c->id);
    return ward_idem_complete(tx, c->ctx->idem, c->claim, 202, "application/json", c->location,
                              body, (size_t)len);
}

static void bad_amount(struct ward_req *req)
{
    struct ward_problem *p = ward_problem_new(WARD_PROBLEM_VALIDATION, "a payment is for more than nothing");
    if (p != NULL && ward_problem_add_error(p, "/amount", "must be greater than zero") != WARD_ERR_OK) {
        ward_problem_free(p);
        p = NULL;
    }
    ward_req_respond_problem(req, p);
}

/* A replay answers the payment the key created, as it is now. */
static void replay(struct pay_ctx *ctx, struct ward_req *req, const struct ward_idem_claim *claim)
{
    json_t *doc = claim->body != NULL ? json_loadb(claim->body, claim->body_len, 0, NULL) : NULL;
    const char *id = json_string_value(json_object_get(doc, "payment_id"));
    if (id != NULL && ward_id_valid(PAY_ID_PREFIX, id))
        pay_answer(ctx, req, id, true);
    else
        ward_idem_respond(req, claim); /* not a record of ours: as it was stored */
    json_decref(doc);
}

void pay_payments_post(struct ward_req *req, void *arg)
{
    struct pay_ctx *ctx = arg;
    struct ward_idem_claim claim = {0};
    json_t *root = NULL;
    struct create c = {.ctx = ctx, .req = req, .claim = &claim, .description = "",
                       .request_id = ward_req_id(req)};

    /* the missing key first: it is the client's to fix whatever the body says */
    if (ward_req_header(req, "Idempotency-Key") == NULL) {
        claim.verdict = WARD_IDEM_MISSING;
        ward_idem_respond(req, &claim);
        return;
    }
    const struct ward_field fields[] = {
        {.name = "customer_id", .type = WARD_FIELD_STRING, .required = true,
         .dest = &c.customer_id, .max_len = PAY_REF_MAX},
        {.name = "currency", .type = WARD_FIELD_CURRENCY, .required = true, .dest = &c.currency},
        {.name = "amount", .type = WARD_FIELD_AMOUNT, .required = true, .dest = &c.amount,
         .currency = &c.currency},
        {.name = "description", .type = WARD_FIELD_STRING, .dest = &c.description,
         .max_len = PAY_TEXT_MAX, .allow_empty = true},
    };
    if (!ward_req_fields(req, fields, sizeof fields / sizeof fields[0], &root))
        return;
    if (c.amount == 0) {
        bad_amount(req);
        goto out;
    }

    char id[WARD_ID_MAX], location[16 + WARD_ID_MAX];
    if (ward_id_new(PAY_ID_PREFIX, id, sizeof id) != WARD_ERR_OK) {
        ward_req_respond_problem(req, NULL);
        goto out;
    }
    snprintf(location, sizeof location, "/payments/%s", id);
    c.id = id;
    c.location = location;
    enum ward_err err = ward_store_tx(ctx->store, WARD_TX_WRITE_ROWS, create_fn, &c);
    if (err != WARD_ERR_OK) { /* nothing committed, the key neither */
        ward_store_respond_error(req, err);
        goto out;
    }
    if (claim.verdict == WARD_IDEM_REPLAY) {
        replay(ctx, req, &claim);
        goto out;
    }
    if (claim.verdict != WARD_IDEM_PROCEED) {
        ward_idem_respond(req, &claim);
        goto out;
    }
    ward_fault("payment.accepted"); /* crash tests: recorded, not yet queued nor answered */
    /* suspended before another thread may answer it; the waiter is registered before
     * the saga can end, so its end is never missed */
    ward_req_suspend(req);
    pay_waiters_add(ctx, req, id);
    pay_workers_submit(ctx, id);
out:
    json_decref(root);
    ward_idem_claim_fini(&claim);
}
