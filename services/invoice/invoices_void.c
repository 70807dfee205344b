/* invoices_void.c — POST /invoices/{id}/void: the saga's compensation, open → void with an
 * optional reason; voiding a void invoice again is 200, voiding a paid one 409. */
#include <string.h>

#include <ward/clock.h>
#include <ward/id.h>

#include "invoice.h"

static struct ward_query q_void = WARD_QUERY(
    "UPDATE invoices SET status = 'void', voided_at = $2, voided_request_id = $3, void_reason = $4"
    " WHERE id = $1 AND status = 'open'");

static const char *clash(const json_t *inv, const void *arg)
{
    (void)arg;
    const char *status = json_string_value(json_object_get(inv, "status"));
    if (strcmp(status, "void") == 0)
        return NULL; /* void already: the first reason stays */
    if (strcmp(status, "paid") == 0)
        return "the invoice is paid and cannot be voided";
    return "the invoice changed concurrently";
}

void inv_invoices_void(struct ward_req *req, void *arg)
{
    const char *id = ward_req_param(req, "id");
    const char *reason = NULL;
    json_t *root = NULL;
    if (!ward_id_valid(INV_ID_PREFIX, id)) {
        ward_req_fail(req, WARD_PROBLEM_NOT_FOUND, "no such invoice");
        return;
    }
    size_t len = 0;
    (void)ward_req_body(req, &len);
    if (len > 0) { /* the body is optional */
        const struct ward_field fields[] = {
            {.name = "reason", .type = WARD_FIELD_STRING, .dest = &reason, .max_len = INV_TEXT_MAX,
             .allow_empty = true},
        };
        if (!ward_req_fields(req, fields, 1, &root))
            return;
    }
    char now[WARD_RFC3339_SIZE];
    ward_clock_rfc3339(ward_clock_wall(), now, sizeof now);
    const struct ward_param p[] = {WARD_P_TEXT(id), WARD_P_TEXT(now), WARD_P_TEXT(ward_req_id(req)),
                                   WARD_P_TEXT_OR_NULL(reason)};
    const struct inv_transition t = {.id = id, .update = &q_void, .params = p, .n_params = 4,
                                     .clash = clash};
    inv_transition_run(req, arg, &t);
    json_decref(root);
}
