/* accounts_post.c — POST /accounts: opens an account in one currency (Idempotency-Key
 * accepted, not required). */
#include <stdlib.h>
#include <string.h>

#include <ward/clock.h>
#include <ward/id.h>

#include "accounting.h"

struct create {
    const char *id, *name, *currency, *type, *created_at, *request_id;
    struct ward_idem *idem;
    const struct ward_idem_claim *claim;
    const char *location, *body;
};

static struct ward_query q_insert = WARD_QUERY(
    "INSERT INTO accounts (id, name, currency, type, balance, created_at, created_request_id)"
    " VALUES ($1, $2, $3, $4, 0, $5, $6)");

static enum ward_err create_fn(struct ward_tx *tx, void *arg)
{
    struct create *c = arg;
    enum ward_err err = ward_tx_exec(tx, &q_insert,
                                     (struct ward_param[]){WARD_P_TEXT(c->id), WARD_P_TEXT(c->name),
                                                           WARD_P_TEXT(c->currency), WARD_P_TEXT(c->type),
                                                           WARD_P_TEXT(c->created_at),
                                                           WARD_P_TEXT_OR_NULL(c->request_id)},
                                     6, NULL);
    if (err != WARD_ERR_OK)
        return err;
    return ward_idem_complete(tx, c->idem, c->claim, 201, "application/json", c->location, c->body,
                              strlen(c->body));
}

/* The new account as GET /accounts/{id} shows it. */
static json_t *render(const struct create *c, const struct ward_currency *cur)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:{s:o, s:s}, s:s, s:s?}", "id", c->id, "name",
                     c->name, "currency", cur->code, "type", c->type, "normal_balance",
                     acct_normal_balance(c->type), "balance", "amount", ward_money_to_json(0, cur),
                     "currency", cur->code, "created_at", c->created_at, "created_request_id",
                     c->request_id);
}

void acct_accounts_post(struct ward_req *req, void *arg)
{
    struct acct_ctx *ctx = arg;
    static const char *const allowed[] = {"name", "currency", "type"};
    json_t *root = NULL;
    struct ward_problem *p = NULL;
    struct ward_idem_claim claim = {0};
    bool claimed = false;
    char *body = NULL;
    const char *name = NULL, *type = NULL;
    const struct ward_currency *cur = NULL;
    char id[WARD_ID_MAX], location[64], created_at[WARD_RFC3339_SIZE];
    const struct ward_field fields[] = {
        {.name = "name", .type = WARD_FIELD_STRING, .required = true, .dest = &name,
         .max_len = ACCT_NAME_MAX},
        {.name = "currency", .type = WARD_FIELD_CURRENCY, .required = true, .dest = &cur},
        {.name = "type", .type = WARD_FIELD_STRING, .required = true, .dest = &type},
    };

    if (!ward_req_json(req, &root))
        return;
    enum ward_err err = ward_fields_parse(root, fields, sizeof fields / sizeof fields[0], &p);
    if (err == WARD_ERR_OK || err == WARD_ERR_INVAL) {
        if (err == WARD_ERR_OK && acct_normal_balance(type) == NULL) {
            p = ward_problem_new(WARD_PROBLEM_VALIDATION,
                                 "field /type: must be asset, liability, equity, revenue or expense");
            if (p != NULL && ward_problem_add_error(p, "/type", "must be asset, liability, equity, revenue or expense") != WARD_ERR_OK) {
                ward_problem_free(p);
                p = NULL;
                err = WARD_ERR_NOMEM;
            }
        }
        if (err != WARD_ERR_NOMEM)
            err = acct_reject_unknown(root, allowed, sizeof allowed / sizeof allowed[0], "", &p);
    }
    if (err == WARD_ERR_NOMEM || p != NULL) {
        ward_req_respond_problem(req, p); /* NULL: a plain 500 */
        p = NULL;
        goto out;
    }

    if (!ward_idem_begin(ctx->idem, req, false, &claim))
        goto out;
    claimed = true;
    if (ward_id_new("acct", id, sizeof id) != WARD_ERR_OK) {
        acct_release(ctx->idem, &claim);
        ward_req_fail(req, WARD_PROBLEM_INTERNAL, "no randomness for an id");
        goto out;
    }
    snprintf(location, sizeof location, "/accounts/%s", id);
    ward_clock_rfc3339(ward_clock_wall(), created_at, sizeof created_at);
    struct create c = {.id = id, .name = name, .currency = cur->code, .type = type,
                       .created_at = created_at, .request_id = ward_req_id(req), .idem = ctx->idem,
                       .claim = &claim, .location = location};
    body = acct_dump(render(&c, cur));
    if (body == NULL) {
        acct_release(ctx->idem, &claim);
        ward_req_respond_problem(req, NULL);
        goto out;
    }
    c.body = body;
    err = ward_store_tx(ctx->store, WARD_TX_WRITE, create_fn, &c);
    if (err != WARD_ERR_OK) {
        ward_idem_store_failed(ctx->idem, req, &claim, err);
        goto out;
    }
    if (ward_req_set_header(req, "Location", location) != WARD_ERR_OK) {
        ward_req_respond_problem(req, NULL);
        goto out;
    }
    ward_req_respond(req, 201, "application/json", body, strlen(body));
out:
    if (claimed)
        ward_idem_claim_fini(&claim);
    free(body);
    json_decref(root);
}
