/* transition.c — the state change pay and void share: a conditional UPDATE inside one
 * write transaction decides the race; whoever finds the invoice no longer open reads what
 * it became and answers 200 (already so) or 409. */
#include <stdlib.h>
#include <string.h>

#include <ward/id.h>

#include "invoice.h"

struct run {
    /* in */
    const struct inv_transition *t;
    struct ward_idem *im;
    const struct ward_idem_claim *claim;
    /* out, reset on each attempt */
    int status;          /* 200, 404 or 409 */
    const char *clash;   /* 409: why */
    char *body;          /* 200: the invoice */
};

static enum ward_err run_fn(struct ward_tx *tx, void *arg)
{
    struct run *r = arg;
    json_t *inv = NULL;
    free(r->body);
    r->body = NULL;
    r->status = 0;
    r->clash = NULL;
    enum ward_err err = ward_tx_exec(tx, r->t->update, r->t->params, r->t->n_params, NULL);
    if (err != WARD_ERR_OK)
        return err;
    bool changed = ward_tx_changes(tx) == 1;
    err = inv_load(tx, r->t->id, &inv);
    if (err != WARD_ERR_OK)
        return err;
    if (inv == NULL) {
        r->status = 404;
        return WARD_ERR_OK;
    }
    r->clash = changed ? NULL : r->t->clash(inv, r->t->clash_arg);
    if (r->clash != NULL) {
        r->status = 409;
        goto out;
    }
    r->status = 200;
    r->body = json_dumps(inv, JSON_COMPACT);
    err = r->body == NULL ? WARD_ERR_NOMEM
                          : ward_idem_complete(tx, r->im, r->claim, 200, "application/json", NULL,
                                               r->body, strlen(r->body));
out:
    json_decref(inv);
    return err;
}

void inv_transition_run(struct ward_req *req, struct ward_service *svc,
                        const struct inv_transition *t)
{
    struct ward_idem *im = ward_service_idem(svc);
    struct ward_idem_claim claim = {0};
    struct run r = {.t = t, .im = im, .claim = &claim};
    size_t body_len = 0;
    const char *body = ward_req_body(req, &body_len);
    enum ward_err err = ward_idem_claim(im, ward_req_header(req, "Idempotency-Key"), false, "POST",
                                        ward_req_path(req), body, body_len, ward_req_id(req),
                                        &claim);
    if (err != WARD_ERR_OK) {
        ward_store_respond_error(req, err);
        goto out;
    }
    if (claim.verdict != WARD_IDEM_PROCEED) {
        ward_idem_respond(req, &claim);
        goto out;
    }
    err = ward_store_tx(ward_service_store(svc), WARD_TX_WRITE, run_fn, &r);
    if (err != WARD_ERR_OK) {
        inv_answer_store_error(req, im, &claim, err);
        goto out;
    }
    switch (r.status) {
    case 200:
        ward_req_respond(req, 200, "application/json", r.body, strlen(r.body));
        break;
    case 404:
        inv_answer_problem(req, im, &claim, WARD_PROBLEM_NOT_FOUND, "no such invoice");
        break;
    default:
        inv_answer_problem(req, im, &claim, WARD_PROBLEM_CONFLICT, r.clash);
        break;
    }
out:
    free(r.body);
    ward_idem_claim_fini(&claim);
}
