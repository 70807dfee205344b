/* transaction_reverse.c — POST /transactions/{id}/reverse: the compensation. A new
 * transaction with every entry's direction swapped and reversal_of naming the original
 * (201). Idempotent by nature: a transaction has at most one reversal (UNIQUE
 * reversal_of), and asking again answers it with 200; reversing a reversal is 409. An
 * Idempotency-Key is accepted, not required. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ward/clock.h>
#include <ward/id.h>

#include "accounting.h"

struct reverse {
    const char *original;
    char id[WARD_ID_MAX], created_at[WARD_RFC3339_SIZE], description[WARD_ID_MAX + 16];
    char entry_ids[ACCT_MAX_ENTRIES][WARD_ID_MAX];
    const char *request_id;
    struct ward_idem *idem;
    const struct ward_idem_claim *claim;
    /* the outcome, reset by each attempt */
    struct acct_entry entries[ACCT_MAX_ENTRIES];
    char accounts[ACCT_MAX_ENTRIES][WARD_ID_MAX];
    int status;
    char location[64];
    char *body;
    struct ward_problem *problem;
};

static struct ward_query q_original =
    WARD_QUERY("SELECT reversal_of FROM transactions WHERE id = $1");
static struct ward_query q_reversal =
    WARD_QUERY("SELECT id FROM transactions WHERE reversal_of = $1");
static struct ward_query q_entries = WARD_QUERY(
    "SELECT account_id, direction, amount, currency FROM entries WHERE transaction_id = $1"
    " ORDER BY position");

/* A 404 or 409 for the request, as a definite answer. */
static enum ward_err refuse(struct reverse *r, enum ward_problem_type type, const char *detail)
{
    r->problem = ward_problem_new(type, "%s", detail);
    return r->problem != NULL ? WARD_ERR_INVAL : WARD_ERR_NOMEM;
}

/* Reads the original's entries swapped into r->entries; *n gets how many. */
static enum ward_err swapped_entries(struct ward_tx *tx, struct reverse *r, size_t *n)
{
    struct ward_rows *rows = NULL;
    *n = 0;
    enum ward_err err = ward_tx_exec(tx, &q_entries, (struct ward_param[]){WARD_P_TEXT(r->original)}, 1, &rows);
    if (err != WARD_ERR_OK)
        return err;
    while (ward_rows_next(rows)) {
        const struct ward_currency *cur = ward_currency_find(ward_rows_text(rows, 3));
        if (*n == ACCT_MAX_ENTRIES || cur == NULL) {
            err = WARD_ERR_DB; /* a row the service could not have written */
            break;
        }
        struct acct_entry *e = &r->entries[*n];
        snprintf(r->accounts[*n], sizeof r->accounts[*n], "%s", ward_rows_text(rows, 0));
        memcpy(e->id, r->entry_ids[*n], sizeof e->id);
        e->account_id = r->accounts[*n];
        e->debit = strcmp(ward_rows_text(rows, 1), "debit") != 0; /* swapped */
        e->amount = ward_rows_int64(rows, 2);
        e->currency = cur;
        (*n)++;
    }
    if (err == WARD_ERR_OK)
        err = ward_rows_err(rows);
    ward_rows_free(rows);
    return err;
}

static enum ward_err reverse_fn(struct ward_tx *tx, void *arg)
{
    struct reverse *r = arg;
    struct ward_rows *rows = NULL;
    json_t *txn = NULL;
    bool found = false, is_reversal = false;
    char existing[WARD_ID_MAX] = "";
    size_t n = 0;
    free(r->body);
    r->body = NULL;
    ward_problem_free(r->problem);
    r->problem = NULL;

    enum ward_err err = ward_tx_exec(tx, &q_original, (struct ward_param[]){WARD_P_TEXT(r->original)}, 1, &rows);
    if (err != WARD_ERR_OK)
        return err;
    if (ward_rows_next(rows)) {
        found = true;
        is_reversal = !ward_rows_is_null(rows, 0);
    } else {
        err = ward_rows_err(rows);
    }
    ward_rows_free(rows);
    if (err != WARD_ERR_OK)
        return err;
    if (!found)
        return refuse(r, WARD_PROBLEM_NOT_FOUND, "no such transaction");
    if (is_reversal)
        return refuse(r, WARD_PROBLEM_CONFLICT,
                      "this transaction is a reversal and cannot be reversed; post a new transaction instead");

    err = ward_tx_exec(tx, &q_reversal, (struct ward_param[]){WARD_P_TEXT(r->original)}, 1, &rows);
    if (err != WARD_ERR_OK)
        return err;
    if (ward_rows_next(rows))
        snprintf(existing, sizeof existing, "%s", ward_rows_text(rows, 0));
    else
        err = ward_rows_err(rows);
    ward_rows_free(rows);
    if (err != WARD_ERR_OK)
        return err;

    if (existing[0] != '\0') {
        r->status = 200; /* reversed before: the same reversal again */
        snprintf(r->location, sizeof r->location, "/transactions/%s", existing);
        err = acct_txn_load(tx, existing, &txn);
    } else {
        r->status = 201;
        snprintf(r->location, sizeof r->location, "/transactions/%s", r->id);
        err = swapped_entries(tx, r, &n);
        if (err == WARD_ERR_OK)
            err = acct_post_entries(tx, r->id, r->description, r->original, r->entries, n,
                                    r->created_at, r->request_id, &r->problem);
        /* a concurrent reversal took the link first: run again and find it */
        if (err == WARD_ERR_CONSTRAINT)
            return WARD_ERR_RETRY;
        if (err == WARD_ERR_OK)
            err = acct_txn_load(tx, r->id, &txn);
    }
    if (err != WARD_ERR_OK)
        return err;
    r->body = acct_dump(txn);
    if (r->body == NULL)
        return WARD_ERR_NOMEM;
    return ward_idem_complete(tx, r->idem, r->claim, r->status, "application/json", r->location,
                              r->body, strlen(r->body));
}

void acct_transaction_reverse(struct ward_req *req, void *arg)
{
    struct acct_ctx *ctx = arg;
    struct ward_idem_claim claim = {0};
    bool claimed = false;
    const char *original = ward_req_param(req, "id");
    struct reverse *r = NULL;
    if (!ward_id_valid("txn", original)) {
        ward_req_fail(req, WARD_PROBLEM_NOT_FOUND, "no transaction %s", original);
        return;
    }
    r = calloc(1, sizeof *r);
    if (r == NULL) {
        ward_req_respond_problem(req, NULL);
        return;
    }
    if (!ward_idem_begin(ctx->idem, req, false, &claim))
        goto out;
    claimed = true;
    bool ids = ward_id_new("txn", r->id, sizeof r->id) == WARD_ERR_OK;
    for (size_t i = 0; ids && i < ACCT_MAX_ENTRIES; i++)
        ids = ward_id_new("ent", r->entry_ids[i], sizeof r->entry_ids[i]) == WARD_ERR_OK;
    if (!ids) {
        acct_release(ctx->idem, &claim);
        ward_req_fail(req, WARD_PROBLEM_INTERNAL, "no randomness for an id");
        goto out;
    }
    r->original = original;
    snprintf(r->description, sizeof r->description, "reversal of %s", original);
    ward_clock_rfc3339(ward_clock_wall(), r->created_at, sizeof r->created_at);
    r->request_id = ward_req_id(req);
    r->idem = ctx->idem;
    r->claim = &claim;
    enum ward_err err = ward_store_tx(ctx->store, WARD_TX_WRITE, reverse_fn, r);
    if (err == WARD_ERR_INVAL && r->problem != NULL) {
        ward_idem_fail(ctx->idem, req, &claim, r->problem);
        r->problem = NULL;
        goto out;
    }
    if (err != WARD_ERR_OK) {
        ward_idem_store_failed(ctx->idem, req, &claim, err);
        goto out;
    }
    if (ward_req_set_header(req, "Location", r->location) != WARD_ERR_OK) {
        ward_req_respond_problem(req, NULL);
        goto out;
    }
    ward_req_respond(req, r->status, "application/json", r->body, strlen(r->body));
out:
    if (claimed)
        ward_idem_claim_fini(&claim);
    if (r != NULL) {
        ward_problem_free(r->problem);
        free(r->body);
        free(r);
    }
}
