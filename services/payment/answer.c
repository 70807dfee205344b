/* answer.c — the payment resource as the answer to a request: 201 once the payment ended
 * (completed or failed), 202 while it is pending, with Location either way. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pay.h"

struct read {
    const char *id;
    struct pay_row row;
    bool found;
    json_t *doc; /* out */
};

static enum ward_err read_fn(struct ward_tx *tx, void *arg)
{
    struct read *r = arg;
    json_decref(r->doc);
    r->doc = NULL;
    enum ward_err err = pay_row_load(tx, r->id, &r->row, &r->found);
    if (err == WARD_ERR_OK && r->found)
        err = pay_resource(tx, &r->row, &r->doc);
    return err;
}

enum ward_err pay_read(struct pay_ctx *ctx, const char *id, json_t **doc, bool *pending)
{
    struct read *r = calloc(1, sizeof *r);
    if (r == NULL)
        return WARD_ERR_NOMEM;
    r->id = id;
    enum ward_err err = ward_store_tx(ctx->store, WARD_TX_READ, read_fn, r);
    *doc = err == WARD_ERR_OK ? r->doc : NULL;
    if (err != WARD_ERR_OK)
        json_decref(r->doc);
    *pending = r->found && strcmp(r->row.status, "pending") == 0;
    free(r);
    return err;
}

void pay_answer(struct pay_ctx *ctx, struct ward_req *req, const char *id, bool replayed)
{
    json_t *doc = NULL;
    bool pending = false;
    char location[16 + WARD_ID_MAX];
    enum ward_err err = pay_read(ctx, id, &doc, &pending);
    if (err != WARD_ERR_OK) {
        ward_store_respond_error(req, err);
        return;
    }
    if (doc == NULL) {
        ward_req_fail(req, WARD_PROBLEM_NOT_FOUND, "no such payment");
        return;
    }
    snprintf(location, sizeof location, "/payments/%s", id);
    if (ward_req_set_header(req, "Location", location) != WARD_ERR_OK ||
        (replayed && ward_req_set_header(req, "Idempotent-Replayed", "true") != WARD_ERR_OK)) {
        json_decref(doc);
        ward_req_respond_problem(req, NULL);
        return;
    }
    ward_req_respond_json(req, pending ? 202 : 201, doc);
}
