/* invoices_list.c — GET /invoices?customer_id=&status=&limit=&cursor=: invoices in
 * creation order, a page at a time, optionally of one customer and in one status. */
#include <stdio.h>
#include <string.h>

#include <ward/page.h>

#include "invoice.h"

struct list {
    struct ward_page page;
    const char *customer_id, *status;
    json_t *data; /* out */
    bool more;
    int64_t last_seq;
};

/* NULL parameters match every invoice. */
static struct ward_query q_list = WARD_QUERY(
    "SELECT " INV_COLUMNS " FROM invoices WHERE seq > $1"
    " AND (CAST($2 AS TEXT) IS NULL OR customer_id = CAST($2 AS TEXT))"
    " AND (CAST($3 AS TEXT) IS NULL OR status = CAST($3 AS TEXT))"
    " ORDER BY seq LIMIT $4");

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
    const struct ward_param p[] = {
        WARD_P_INT(l->page.after),
        WARD_P_TEXT_OR_NULL(l->customer_id),
        WARD_P_TEXT_OR_NULL(l->status),
        WARD_P_INT(l->page.limit + 1),
    };
    enum ward_err err = ward_tx_exec(tx, &q_list, p, sizeof p / sizeof p[0], &rows);
    if (err != WARD_ERR_OK)
        return err;
    while (ward_rows_next(rows)) {
        if ((int64_t)json_array_size(l->data) == l->page.limit) {
            l->more = true;
            break;
        }
        json_t *inv = inv_row_json(rows, &l->last_seq);
        if (inv == NULL || json_array_append_new(l->data, inv) != 0) {
            err = WARD_ERR_NOMEM;
            break;
        }
    }
    if (err == WARD_ERR_OK && !l->more)
        err = ward_rows_err(rows);
    ward_rows_free(rows);
    return err;
}

static void bad_param(struct ward_req *req, const char *name, const char *detail)
{
    struct ward_problem *p = ward_problem_new(WARD_PROBLEM_VALIDATION, "bad query parameter %s", name);
    char pointer[32];
    snprintf(pointer, sizeof pointer, "/%s", name);
    if (p != NULL && ward_problem_add_error(p, pointer, "%s", detail) != WARD_ERR_OK) {
        ward_problem_free(p);
        p = NULL;
    }
    ward_req_respond_problem(req, p);
}

void inv_invoices_list(struct ward_req *req, void *arg)
{
    struct ward_service *svc = arg;
    struct list l = {.customer_id = ward_req_query(req, "customer_id"),
                     .status = ward_req_query(req, "status")};
    if (!ward_page_parse(req, &l.page))
        return;
    if (l.customer_id != NULL && (l.customer_id[0] == '\0' || strlen(l.customer_id) > INV_REF_MAX)) {
        bad_param(req, "customer_id", "must be 1 to 64 bytes");
        return;
    }
    if (l.status != NULL && strcmp(l.status, "open") != 0 && strcmp(l.status, "paid") != 0 &&
        strcmp(l.status, "void") != 0) {
        bad_param(req, "status", "must be open, paid or void");
        return;
    }
    enum ward_err err = ward_store_tx(ward_service_store(svc), WARD_TX_READ, list_fn, &l);
    if (err != WARD_ERR_OK) {
        json_decref(l.data);
        ward_store_respond_error(req, err);
        return;
    }
    json_t *body = ward_page_json(l.data, l.more, l.last_seq);
    if (body == NULL) {
        ward_req_fail(req, WARD_PROBLEM_INTERNAL, "out of memory");
        return;
    }
    ward_req_respond_json(req, 200, body);
}
