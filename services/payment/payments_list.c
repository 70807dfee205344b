/* payments_list.c — GET /payments?customer_id=&limit=&cursor=: payments in creation
 * order, a page at a time, optionally of one customer, each with its step history. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ward/page.h>

#include "pay.h"

struct list {
    struct ward_page page;
    const char *customer_id;
    json_t *data; /* out */
    bool more;
    int64_t last_seq;
    struct pay_row row;
};

static struct ward_query q_list = WARD_QUERY(
    "SELECT " PAY_COLUMNS " FROM payments WHERE seq > $1"
    " AND (CAST($2 AS TEXT) IS NULL OR customer_id = CAST($2 AS TEXT))"
    " ORDER BY seq LIMIT $3");

static enum ward_err list_fn(struct ward_tx *tx, void *arg)
{
    struct list *l = arg;
    struct ward_rows *rows = NULL;
    json_decref(l->data);
    l->more = false;
    l->last_seq = 0;
    l->data = json_array();
    if (l->data == NULL)
        return WARD_ERR_NOMEM;
    const struct ward_param p[] = {WARD_P_INT(l->page.after), WARD_P_TEXT_OR_NULL(l->customer_id),
                                   WARD_P_INT(l->page.limit + 1)};
    enum ward_err err = ward_tx_exec(tx, &q_list, p, 3, &rows);
    if (err != WARD_ERR_OK)
        return err;
    /* the rows first (a statement's rows stay open until freed), then their steps */
    json_t *found = json_array();
    while (found != NULL && ward_rows_next(rows)) {
        if ((int64_t)json_array_size(found) == l->page.limit) {
            l->more = true;
            break;
        }
        pay_row_read(rows, &l->row);
        l->last_seq = l->row.seq;
        if (json_array_append_new(found, json_string(l->row.id)) != 0)
            err = WARD_ERR_NOMEM;
    }
    if (found == NULL)
        err = WARD_ERR_NOMEM;
    if (err == WARD_ERR_OK && !l->more)
        err = ward_rows_err(rows);
    ward_rows_free(rows);
    for (size_t i = 0; err == WARD_ERR_OK && i < json_array_size(found); i++) {
        bool ok = false;
        json_t *doc = NULL;
        err = pay_row_load(tx, json_string_value(json_array_get(found, i)), &l->row, &ok);
        if (err == WARD_ERR_OK && ok)
            err = pay_resource(tx, &l->row, &doc);
        if (err == WARD_ERR_OK && doc != NULL && json_array_append_new(l->data, doc) != 0)
            err = WARD_ERR_NOMEM;
    }
    json_decref(found);
    return err;
}

void pay_payments_list(struct ward_req *req, void *arg)
{
    struct pay_ctx *ctx = arg;
    struct list *l = calloc(1, sizeof *l);
    if (l == NULL) {
        ward_req_respond_problem(req, NULL);
        return;
    }
    l->customer_id = ward_req_query(req, "customer_id");
    if (!ward_page_parse(req, &l->page))
        goto out;
    if (l->customer_id != NULL &&
        (l->customer_id[0] == '\0' || strlen(l->customer_id) > PAY_REF_MAX)) {
        struct ward_problem *p = ward_problem_new(WARD_PROBLEM_VALIDATION, "bad query parameter customer_id");
        if (p != NULL && ward_problem_add_error(p, "/customer_id", "must be 1 to 64 bytes") != WARD_ERR_OK) {
            ward_problem_free(p);
            p = NULL;
        }
        ward_req_respond_problem(req, p);
        goto out;
    }
    enum ward_err err = ward_store_tx(ctx->store, WARD_TX_READ, list_fn, l);
    if (err != WARD_ERR_OK) {
        json_decref(l->data);
        ward_store_respond_error(req, err);
        goto out;
    }
    json_t *body = ward_page_json(l->data, l->more, l->last_seq);
    if (body == NULL) {
        ward_req_fail(req, WARD_PROBLEM_INTERNAL, "out of memory");
        goto out;
    }
    ward_req_respond_json(req, 200, body);
out:
    free(l);
}
