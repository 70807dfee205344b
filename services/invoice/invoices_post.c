/* invoices_post.c — POST /invoices: a new open invoice, under a required Idempotency-Key. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ward/clock.h>
#include <ward/fault.h>
#include <ward/fields.h>
#include <ward/id.h>
#include <ward/money.h>

#include "invoice.h"

struct create {
    /* in */
    struct ward_idem *im;
    struct ward_req *req;
    struct ward_idem_claim *claim; /* made in the transaction, with the invoice */
    const char *id, *customer_id, *description, *payment_id, *created_at, *request_id,
        *location;
    int64_t amount;
    const struct ward_currency *currency;
    /* out: the body answered and stored for the key */
    char *body;
};

static struct ward_query q_insert = WARD_QUERY(
    "INSERT INTO invoices (id, customer_id, amount, currency, description, payment_id, status,"
    " created_at, created_request_id) VALUES ($1, $2, $3, $4, $5, $6, 'open', $7, $8)");

static enum ward_err create_fn(struct ward_tx *tx, void *arg)
{
    struct create *c = arg;
    json_t *inv = NULL;
    free(c->body);
    c->body = NULL;
    enum ward_err err = ward_idem_begin_in(tx, c->im, c->req, true, c->claim);
    if (err != WARD_ERR_OK || c->claim->verdict != WARD_IDEM_PROCEED)
        return err; /* a replay, a clash: answered after the transaction */
    const struct ward_param p[] = {
        WARD_P_TEXT(c->id),          WARD_P_TEXT(c->customer_id),
        WARD_P_INT(c->amount),       WARD_P_TEXT(c->currency->code),
        WARD_P_TEXT(c->description), WARD_P_TEXT_OR_NULL(c->payment_id),
        WARD_P_TEXT(c->created_at),  WARD_P_TEXT(c->request_id),
    };
    err = ward_tx_exec(tx, &q_insert, p, sizeof p / sizeof p[0], NULL);
    if (err == WARD_ERR_OK)
        err = inv_load(tx, c->id, &inv);
    if (err == WARD_ERR_OK && inv == NULL)
        err = WARD_ERR_DB; /* the row just inserted must be there */
    if (err == WARD_ERR_OK) {
        c->body = json_dumps(inv, JSON_COMPACT);
        err = c->body == NULL ? WARD_ERR_NOMEM : WARD_ERR_OK;
    }
    if (err == WARD_ERR_OK)
        err = ward_idem_complete(tx, c->im, c->claim, 201, "application/json", c->location,
                                 c->body, strlen(c->body));
    json_decref(inv);
    return err;
}

void inv_invoices_post(struct ward_req *req, void *arg)
{
    struct ward_service *svc = arg;
    struct ward_idem *im = ward_service_idem(svc);
    struct ward_idem_claim claim = {0};
    json_t *root = NULL;
    struct create c = {.im = im, .req = req, .claim = &claim, .description = "",
                       .request_id = ward_req_id(req)};

    /* the missing key first: it is the client's to fix whatever the body says */
    if (ward_req_header(req, "Idempotency-Key") == NULL) {
        claim.verdict = WARD_IDEM_MISSING;
        ward_idem_respond(req, &claim);
        return;
    }
    const struct ward_field fields[] = {
        {.name = "customer_id", .type = WARD_FIELD_STRING, .required = true, .dest = &c.customer_id,
         .max_len = INV_REF_MAX},
        {.name = "currency", .type = WARD_FIELD_CURRENCY, .required = true, .dest = &c.currency},
        {.name = "amount", .type = WARD_FIELD_AMOUNT, .required = true, .dest = &c.amount,
         .currency = &c.currency},
        {.name = "description", .type = WARD_FIELD_STRING, .dest = &c.description,
         .max_len = INV_TEXT_MAX, .allow_empty = true},
        {.name = "payment_id", .type = WARD_FIELD_STRING, .dest = &c.payment_id,
         .max_len = INV_REF_MAX},
    };
    if (!ward_req_fields(req, fields, sizeof fields / sizeof fields[0], &root))
        return;
    if (c.amount == 0) {
        struct ward_problem *p = ward_problem_new(WARD_PROBLEM_VALIDATION, "an invoice is for more than nothing");
        if (p != NULL && ward_problem_add_error(p, "/amount", "must be greater than zero") != WARD_ERR_OK) {
            ward_problem_free(p);
            p = NULL;
        }
        ward_req_respond_problem(req, p);
        goto out;
    }

    char id[WARD_ID_MAX], created_at[WARD_RFC3339_SIZE], location[16 + WARD_ID_MAX];
    if (ward_id_new(INV_ID_PREFIX, id, sizeof id) != WARD_ERR_OK) {
        ward_req_respond_problem(req, NULL);
        goto out;
    }
    ward_clock_rfc3339(ward_clock_wall(), created_at, sizeof created_at);
    snprintf(location, sizeof location, "/invoices/%s", id);
    c.id = id;
    c.created_at = created_at;
    c.location = location;
    enum ward_err err = ward_store_tx(ward_service_store(svc), WARD_TX_WRITE_ROWS, create_fn, &c);
    if (err != WARD_ERR_OK) { /* nothing committed, the key neither */
        ward_store_respond_error(req, err);
        goto out;
    }
    if (claim.verdict != WARD_IDEM_PROCEED) {
        ward_idem_respond(req, &claim);
        goto out;
    }
    ward_fault("invoice.created"); /* crash tests: committed, the answer not yet sent */
    if (ward_req_set_header(req, "Location", location) != WARD_ERR_OK) {
        ward_req_respond_problem(req, NULL);
        goto out;
    }
    ward_req_respond(req, 201, "application/json", c.body, strlen(c.body));
out:
    free(c.body);
    json_decref(root);
    ward_idem_claim_fini(&claim);
}
