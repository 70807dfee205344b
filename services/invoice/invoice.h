/* invoice.h — the internals of invoice-service: its schema, the invoice as JSON, the
 * state change shared by pay and void, and the endpoint handlers (DESIGN.md §6). */
#ifndef INV_INVOICE_H
#define INV_INVOICE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include <ward/err.h>
#include <ward/http.h>
#include <ward/idempotency.h>
#include <ward/service.h>
#include <ward/store.h>

/* The ID prefix of invoices ("inv_..."). */
#define INV_ID_PREFIX "inv"
/* Longest customer_id and payment_id, and longest description and void reason, in bytes. */
#define INV_REF_MAX 64
#define INV_TEXT_MAX 500

/* The columns every query that reads invoices selects, in the order inv_row_json reads. */
#define INV_COLUMNS                                                                       \
    "seq, id, customer_id, amount, currency, description, payment_id, status, created_at, " \
    "created_request_id, paid_at, paid_request_id, voided_at, voided_request_id, void_reason"

/* The schema: the invoices table and the Idempotency-Key table. */
extern const struct ward_migration inv_migrations[];
extern const size_t inv_n_migrations;

/* The current row of r (selected with INV_COLUMNS) as a new JSON object: every member
 * present, null where unset, the amount as a decimal string. *seq (may be NULL) gets the
 * row's sequence number. NULL when out of memory or when the row holds an unknown
 * currency (a corrupt row). */
json_t *inv_row_json(const struct ward_rows *r, int64_t *seq);

/* Reads invoice id in tx into *out (caller owns; NULL when there is none). The store's
 * error, or NOMEM. */
WARD_MUST_CHECK enum ward_err inv_load(struct ward_tx *tx, const char *id, json_t **out);

/* A state change of an open invoice (pay, void). */
struct inv_transition {
    const char *id;
    /* The conditional UPDATE: $1 the id, the other parameters the caller's; it changes the
     * row only while status = 'open'. */
    struct ward_query *update;
    const struct ward_param *params;
    size_t n_params;
    /* When the UPDATE changed nothing: NULL when the invoice (current, as JSON) already is
     * what was asked for (an idempotent repeat, answered 200), else why it is a conflict. */
    const char *(*clash)(const json_t *current, const void *arg);
    const void *clash_arg;
};

/* Runs t for req under the optional Idempotency-Key: in one write transaction, the UPDATE;
 * if it changed the row, or clash finds the current state to be the asked-for one, 200
 * with the invoice (stored for the key in the same transaction); an unknown invoice is
 * 404, a clash 409. Answers req in every case. */
void inv_transition_run(struct ward_req *req, struct ward_service *svc,
                        const struct inv_transition *t);

/* The endpoints; arg is the struct ward_service. */
void inv_invoices_post(struct ward_req *req, void *arg); /* POST /invoices */
void inv_invoices_get(struct ward_req *req, void *arg);  /* GET /invoices/{id} */
void inv_invoices_list(struct ward_req *req, void *arg); /* GET /invoices */
void inv_invoices_pay(struct ward_req *req, void *arg);  /* POST /invoices/{id}/pay */
void inv_invoices_void(struct ward_req *req, void *arg); /* POST /invoices/{id}/void */

#endif
