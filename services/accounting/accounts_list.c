/* accounts_list.c — GET /accounts: every account with its balance, in creation order,
 * a page at a time. */
#include "accounting.h"

#include <ward/page.h>

struct list {
    struct ward_page page;
    json_t *data;
    bool more;
    int64_t last_seq;
};

static struct ward_query q_list = WARD_QUERY(
    "SELECT seq, id, name, currency, type, balance, created_at, created_request_id FROM accounts"
    " WHERE seq > $1 ORDER BY seq LIMIT $2");

static enum ward_err list_fn(struct ward_tx *tx, void *arg)
{
    struct list *l = arg;
    struct ward_rows *rows = NULL;
    json_decref(l->data);
    l->data = json_array();
    l->more = false;
    l->last_seq = 0;
    if (l->data == NULL)
        return WARD_ERR_NOMEM;
    enum ward_err err = ward_tx_exec(tx, &q_list,
                                     (struct ward_param[]){WARD_P_INT(l->page.after),
                                                           WARD_P_INT(l->page.limit + 1)},
                                     2, &rows);
    if (err != WARD_ERR_OK)
        return err;
    while (ward_rows_next(rows)) {
        if ((int64_t)json_array_size(l->data) == l->page.limit) {
            l->more = true;
            break;
        }
        json_t *a = acct_account_json(rows);
        if (a == NULL || json_array_append_new(l->data, a) != 0) {
            err = WARD_ERR_NOMEM;
            break;
        }
        l->last_seq = ward_rows_int64(rows, 0);
    }
    if (err == WARD_ERR_OK && !l->more)
        err = ward_rows_err(rows);
    ward_rows_free(rows);
    return err;
}

void acct_accounts_list(struct ward_req *req, void *arg)
{
    struct acct_ctx *ctx = arg;
    struct list l = {0};
    if (!ward_page_parse(req, &l.page))
        return;
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
