/* payments_get.c — GET /payments/{id}: the payment with its step history, or 404. */
#include "pay.h"

void pay_payments_get(struct ward_req *req, void *arg)
{
    struct pay_ctx *ctx = arg;
    const char *id = ward_req_param(req, "id");
    json_t *doc = NULL;
    bool pending = false;
    if (!ward_id_valid(PAY_ID_PREFIX, id)) {
        ward_req_fail(req, WARD_PROBLEM_NOT_FOUND, "no such payment");
        return;
    }
    enum ward_err err = pay_read(ctx, id, &doc, &pending);
    if (err != WARD_ERR_OK) {
        ward_store_respond_error(req, err);
        return;
    }
    if (doc == NULL) {
        ward_req_fail(req, WARD_PROBLEM_NOT_FOUND, "no such payment");
        return;
    }
    ward_req_respond_json(req, 200, doc);
}
