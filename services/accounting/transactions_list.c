/* transactions_list.c — GET /transactions[?account_id=]: transactions with their entries,
 * in creation order, a page at a time; with account_id only those touching the account. */
#include "accounting.h"

#include <ward/page.h>

struct list {
    struct ward_page page;
    const char *account_id;
    json_t *data;
    bool more;
    int64_t last_seq;
};

/* the page's transactions are picked first (limit + 1 of them), then joined with their
 * entries and their reversal */
static struct ward_query q_all = WARD_QUERY(
    "SELECT " ACCT_TXN_COLUMNS " FROM (SELECT * FROM transactions WHERE seq > $1 ORDER BY seq LIMIT $2) t"
    " JOIN entries e ON e.transaction_id = t.id LEFT JOIN transactions r ON r.reversal_of = t.id"
    " ORDER BY t.seq, e.position");
static struct ward_query q_account = WARD_QUERY(
    "SELECT " ACCT_TXN_COLUMNS " FROM (SELECT * FROM transactions WHERE seq > $1"
    " AND id IN (SELECT transaction_id FROM entries WHERE account_id = $3) ORDER BY seq LIMIT $2) t"
    " JOIN entries e ON e.transaction_id = t.id LEFT JOIN transactions r ON r.reversal_of = t.id"
    " ORDER BY t.seq, e.position");

static enum ward_err list_fn(struct ward_tx *tx, void *arg)
{
    struct list *l = arg;
    struct ward_rows *rows = NULL;
    int64_t seqs[WARD_PAGE_MAX + 1];
    size_t count = 0;
    size_t limit = (size_t)l->page.limit;
    json_decref(l->data);
    l->data = NULL;
    l->more = false;
    l->last_seq = 0;
    struct ward_param params[] = {WARD_P_INT(l->page.after), WARD_P_INT(l->page.limit + 1),
                                  WARD_P_TEXT_OR_NULL(l->account_id)};
    enum ward_err err = l->account_id != NULL ? ward_tx_exec(tx, &q_account, params, 3, &rows)
                                              : ward_tx_exec(tx, &q_all, params, 2, &rows);
    if (err != WARD_ERR_OK)
        return err;
    err = acct_txn_rows_json(rows, limit + 1, &l->data, seqs, &count);
    ward_rows_free(rows);
    if (err != WARD_ERR_OK)
        return err;
    if (count > limit) {
        l->more = true;
        if (json_array_remove(l->data, limit) != 0)
            return WARD_ERR_NOMEM;
    }
    if (count > 0)
        l->last_seq = seqs[count > limit ? limit - 1 : count - 1];
    return WARD_ERR_OK;
}

void acct_transactions_list(struct ward_req *req, void *arg)
{
    struct acct_ctx *ctx = arg;
    struct list l = {.account_id = ward_req_query(req, "account_id")};
    if (!ward_page_parse(req, &l.page))
        return;
    if (l.account_id != NULL && !ward_id_valid("acct", l.account_id)) {
        struct ward_problem *p = ward_problem_new(WARD_PROBLEM_VALIDATION,
                                                  "parameter account_id: must be an account id");
        if (p != NULL && ward_problem_add_error(p, "/account_id", "must be an account id (acct_...)") != WARD_ERR_OK) {
            ward_problem_free(p);
            p = NULL;
        }
        ward_req_respond_problem(req, p);
        return;
    }
    enum ward_err err = ward_store_tx(ctx->store, WARD_TX_READ, list_fn, &l);
    if (err != WARD_ERR_OK) {
        json_decref(l.data);
        ward_store_respond_error(req, err);
        return;
    }
    json_t *body = ward_page_json(l.data, l.more, l.last_seq);
    if (body == NULL) {
        ward_req_respond_problem(req, NULL);
        return;
    }
    ward_req_respond_json(req, 200, body);
}
