/* account_get.c — GET /accounts/{id}: one account with its balance, the sum of its debits
 * minus the sum of its credits. */
#include "accounting.h"

struct get {
    const char *id;
    json_t *account;
};

static struct ward_query q_get = WARD_QUERY(
    "SELECT seq, id, name, currency, type, balance, created_at, created_request_id FROM accounts"
    " WHERE id = $1");

static enum ward_err get_fn(struct ward_tx *tx, void *arg)
{
    struct get *g = arg;
    struct ward_rows *rows = NULL;
    json_decref(g->account);
    g->account = NULL;
    enum ward_err err = ward_tx_exec(tx, &q_get, (struct ward_param[]){WARD_P_TEXT(g->id)}, 1, &rows);
    if (err != WARD_ERR_OK)
        return err;
    if (ward_rows_next(rows)) {
        g->account = acct_account_json(rows);
        if (g->account == NULL)
            err = WARD_ERR_NOMEM;
    } else {
        err = ward_rows_err(rows);
    }
    ward_rows_free(rows);
    return err;
}

void acct_account_get(struct ward_req *req, void *arg)
{
    struct acct_ctx *ctx = arg;
    struct get g = {.id = ward_req_param(req, "id")};
    if (!ward_id_valid("acct", g.id)) {
        ward_req_fail(req, WARD_PROBLEM_NOT_FOUND, "no account %s", g.id);
        return;
    }
    enum ward_err err = ward_store_tx(ctx->store, WARD_TX_READ, get_fn, &g);
    if (err != WARD_ERR_OK) {
        json_decref(g.account);
        ward_store_respond_error(req, err);
        return;
    }
    if (g.account == NULL) {
        ward_req_fail(req, WARD_PROBLEM_NOT_FOUND, "no account %s", g.id);
        return;
    }
    ward_req_respond_json(req, 200, g.account);
}
