/* invoices_get.c — GET /invoices/{id}: one invoice, or 404. */
#include <ward/id.h>

#include "invoice.h"

struct get {
    const char *id;
    json_t *inv; /* out */
};

static enum ward_err get_fn(struct ward_tx *tx, void *arg)
{
    struct get *g = arg;
    json_decref(g->inv);
    return inv_load(tx, g->id, &g->inv);
}

void inv_invoices_get(struct ward_req *req, void *arg)
{
    struct ward_service *svc = arg;
    struct get g = {.id = ward_req_param(req, "id")};
    if (!ward_id_valid(INV_ID_PREFIX, g.id)) {
        ward_req_fail(req, WARD_PROBLEM_NOT_FOUND, "no such invoice");
        return;
    }
    enum ward_err err = ward_store_tx(ward_service_store(svc), WARD_TX_READ, get_fn, &g);
    if (err != WARD_ERR_OK) {
        json_decref(g.inv);
        ward_store_respond_error(req, err);
        return;
    }
    if (g.inv == NULL) {
        ward_req_fail(req, WARD_PROBLEM_NOT_FOUND, "no such invoice");
        return;
    }
    ward_req_respond_json(req, 200, g.inv);
}
