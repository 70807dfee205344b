/* transaction_get.c — GET /transactions/{id}: one transaction with its entries and its
 * reversal links. */
#include "accounting.h"

struct get {
    const char *id;
    json_t *txn;
};

static enum ward_err get_fn(struct ward_tx *tx, void *arg)
{
    struct get *g = arg;
    json_decref(g->txn);
    g->txn = NULL;
    return acct_txn_load(tx, g->id, &g->txn);
}

void acct_transaction_get(struct ward_req *req, void *arg)
{
    struct acct_ctx *ctx = arg;
    struct get g = {.id = ward_req_param(req, "id")};
    enum ward_err err = ward_id_valid("txn", g.id) ? ward_store_tx(ctx->store, WARD_TX_READ, get_fn, &g)
                                                   : WARD_ERR_NOT_FOUND;
    if (err == WARD_ERR_NOT_FOUND) {
        ward_req_fail(req, WARD_PROBLEM_NOT_FOUND, "no transaction %s", g.id);
        return;
    }
    if (err != WARD_ERR_OK) {
        json_decref(g.txn);
        ward_store_respond_error(req, err);
        return;
    }
    ward_req_respond_json(req, 200, g.txn);
}
