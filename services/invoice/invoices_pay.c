/* invoices_pay.c — POST /invoices/{id}/pay: open → paid, optionally naming the payment;
 * paying again for the same payment is 200, for another payment (or a void invoice) 409. */
#include <string.h>

#include <ward/clock.h>
#include <ward/id.h>

#include "invoice.h"

/* Only while open, and only for the payment the invoice was created for, if any. */
static struct ward_query q_pay = WARD_QUERY(
    "UPDATE invoices SET status = 'paid', paid_at = $2, paid_request_id = $3,"
    " payment_id = COALESCE(CAST($4 AS TEXT), payment_id)"
    " WHERE id = $1 AND status = 'open'"
    " AND (CAST($4 AS TEXT) IS NULL OR payment_id IS NULL OR payment_id = CAST($4 AS TEXT))");

static const char *clash(const json_t *inv, const void *arg)
{
    const char *payment_id = arg;
    const char *status = json_string_value(json_object_get(inv, "status"));
    const char *paid_by = json_string_value(json_object_get(inv, "payment_id"));
    if (strcmp(status, "void") == 0)
        return "the invoice is void and cannot be paid";
    if (strcmp(status, "open") == 0)
        return "the invoice is for another payment";
    if (payment_id == NULL || (paid_by != NULL && strcmp(paid_by, payment_id) == 0))
        return NULL; /* paid already, by this payment */
    return "the invoice was paid by another payment";
}

void inv_invoices_pay(struct ward_req *req, void *arg)
{
    const char *id = ward_req_param(req, "id");
    const char *payment_id = NULL;
    json_t *root = NULL;
    if (!ward_id_valid(INV_ID_PREFIX, id)) {
        ward_req_fail(req, WARD_PROBLEM_NOT_FOUND, "no such invoice");
        return;
    }
    size_t len = 0;
    (void)ward_req_body(req, &len);
    if (len > 0) { /* the body is optional */
        const struct ward_field fields[] = {
            {.name = "payment_id", .type = WARD_FIELD_STRING, .dest = &payment_id,
             .max_len = INV_REF_MAX},
        };
        if (!ward_req_fields(req, fields, 1, &root))
            return;
    }
    char now[WARD_RFC3339_SIZE];
    ward_clock_rfc3339(ward_clock_wall(), now, sizeof now);
    const struct ward_param p[] = {WARD_P_TEXT(id), WARD_P_TEXT(now), WARD_P_TEXT(ward_req_id(req)),
                                   WARD_P_TEXT_OR_NULL(payment_id)};
    const struct inv_transition t = {
        .id = id, .update = &q_pay, .params = p, .n_params = 4, .clash = clash, .clash_arg = payment_id,
    };
    inv_transition_run(req, arg, &t);
    json_decref(root);
}
