/* transition.c — the state change pay and void share: the Idempotency-Key's claim and a
 * conditional UPDATE inside one write transaction decide the race; whoever finds the invoice no longer open reads what
 * it became and answers 200 (already so) or 409. */
#include <stdlib.h>
#include <string.h>

#include <ward/id.h>

#include "invoice.h"

struct run {
    /* in */
    const struct inv_transition *t;
    struct ward_idem *im;
    struct ward_req *req;
    struct ward_idem_claim *claim; /* made in the transaction, with the change */
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
    enum ward_err err = ward_idem_begin_in(tx, r->im, r->req, false, r->claim);
    if (err != WARD_ERR_OK || r->claim->verdict != WARD_IDEM_PROCEED)
        return err; /* a replay, a clash: answered after the transaction */
    err = ward_tx_exec(tx, r->t->update, r->t->params, r->t->n_params, NULL);
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
    struct run r = {.t = t, .im = im, .req = req, .claim = &claim};
    enum ward_err err = ward_store_tx(ward_service_store(svc), WARD_TX_WRITE_ROWS, run_fn, &r);
    if (err != WARD_ERR_OK) { /* nothing committed, the key neither */
        ward_store_respond_error(req, err);
        goto out;
    }
    if (claim.verdict != WARD_IDEM_PROCEED) {
        ward_idem_respond(req, &claim);
        goto out;
    }
    switch (r.status) {
    case 200:
        ward_req_respond(req, 200, "application/json", r.body, strlen(r.body));
        break;
    case 404:
        ward_idem_fail(im, req, &claim, ward_problem_new(WARD_PROBLEM_NOT_FOUND, "%s", "no such invoice"));
        break;
    default:
        ward_idem_fail(im, req, &claim, ward_problem_new(WARD_PROBLEM_CONFLICT, "%s", r.clash));
        break;
    }
out:
    free(r.body);
    ward_idem_claim_fini(&claim);
}
