/* transactions_post.c — POST /transactions: posts a balanced journal transaction
 * (Idempotency-Key required). At least two entries; each currency's debits equal its
 * credits; each entry in its account's currency; no sum beyond int64 minor units. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ward/clock.h>
#include <ward/fault.h>
#include <ward/id.h>

#include "accounting.h"

struct post {
    struct acct_entry entries[ACCT_MAX_ENTRIES];
    size_t n;
    const char *description;
    char id[WARD_ID_MAX], location[64], created_at[WARD_RFC3339_SIZE];
    const char *request_id;
    struct ward_idem *idem;
    struct ward_req *req;
    struct ward_idem_claim *claim; /* made in the transaction, with the posting */
    const char *body;
    struct ward_problem *problem; /* a definite 422 found in the transaction */
};

static enum ward_err post_fn(struct ward_tx *tx, void *arg)
{
    struct post *p = arg;
    ward_problem_free(p->problem);
    p->problem = NULL;
    enum ward_err err = ward_idem_begin_in(tx, p->idem, p->req, true, p->claim);
    if (err != WARD_ERR_OK || p->claim->verdict != WARD_IDEM_PROCEED)
        return err; /* a replay, a clash: answered after the transaction */
    err = acct_post_entries(tx, p->id, p->description, NULL, p->entries, p->n,
                                          p->created_at, p->request_id, &p->problem);
    if (err != WARD_ERR_OK)
        return err;
    return ward_idem_complete(tx, p->idem, p->claim, 201, "application/json", p->location, p->body,
                              strlen(p->body));
}

/* Appends sub's errors to *top (created as a 400 validation problem from sub's detail),
 * each pointer prefixed. Takes sub. NOMEM. */
static enum ward_err merge(struct ward_problem **top, struct ward_problem *sub, const char *prefix)
{
    enum ward_err err = WARD_ERR_NOMEM;
    json_t *j = ward_problem_to_json(sub, NULL, NULL);
    if (j == NULL)
        goto out;
    if (*top == NULL) {
        const char *first = json_string_value(json_object_get(
            json_array_get(json_object_get(j, "errors"), 0), "pointer"));
        const char *detail = json_string_value(json_object_get(
            json_array_get(json_object_get(j, "errors"), 0), "detail"));
        *top = ward_problem_new(WARD_PROBLEM_VALIDATION, "field %s%s: %s", prefix,
                                first != NULL ? first : "", detail != NULL ? detail : "is invalid");
        if (*top == NULL)
            goto out;
    }
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(j, "errors"), i, e) {
        const char *ptr = json_string_value(json_object_get(e, "pointer"));
        const char *detail = json_string_value(json_object_get(e, "detail"));
        char full[256];
        snprintf(full, sizeof full, "%s%s", prefix, ptr != NULL ? ptr : "");
        if (ward_problem_add_error(*top, full, "%s", detail != NULL ? detail : "is invalid") != WARD_ERR_OK)
            goto out;
    }
    err = WARD_ERR_OK;
out:
    json_decref(j);
    ward_problem_free(sub);
    return err;
}

/* Adds one validation error at pointer to *p (created when NULL). NOMEM. */
static enum ward_err invalid(struct ward_problem **p, const char *pointer, const char *detail)
{
    if (*p == NULL && (*p = ward_problem_new(WARD_PROBLEM_VALIDATION, "field %s: %s", pointer, detail)) == NULL)
        return WARD_ERR_NOMEM;
    return ward_problem_add_error(*p, pointer, "%s", detail);
}

/* Parses entry i (a JSON value) into e; problems go to *p. NOMEM. */
static enum ward_err parse_entry(const json_t *value, size_t i, struct acct_entry *e,
                                 struct ward_problem **p)
{
    static const char *const allowed[] = {"account_id", "direction", "amount", "currency"};
    char prefix[32];
    const char *direction = NULL;
    struct ward_problem *sub = NULL;
    snprintf(prefix, sizeof prefix, "/entries/%zu", i);
    const struct ward_field fields[] = {
        {.name = "account_id", .type = WARD_FIELD_STRING, .required = true, .dest = &e->account_id,
         .max_len = WARD_ID_MAX},
        {.name = "direction", .type = WARD_FIELD_STRING, .required = true, .dest = &direction},
        {.name = "amount", .type = WARD_FIELD_AMOUNT, .required = true, .dest = &e->amount,
         .currency = &e->currency},
        {.name = "currency", .type = WARD_FIELD_CURRENCY, .required = true, .dest = &e->currency},
    };
    if (!json_is_object(value))
        return invalid(p, prefix, "must be an object");
    enum ward_err err = ward_fields_parse(value, fields, sizeof fields / sizeof fields[0], &sub);
    if (err == WARD_ERR_NOMEM)
        return err;
    if (err == WARD_ERR_OK) {
        if (strcmp(direction, "debit") != 0 && strcmp(direction, "credit") != 0 &&
            invalid(&sub, "/direction", "must be debit or credit") != WARD_ERR_OK)
            return WARD_ERR_NOMEM;
        e->debit = strcmp(direction, "debit") == 0;
        if (e->amount == 0 && invalid(&sub, "/amount", "must be greater than zero") != WARD_ERR_OK)
            return WARD_ERR_NOMEM;
    }
    if (acct_reject_unknown(value, allowed, sizeof allowed / sizeof allowed[0], "", &sub) != WARD_ERR_OK) {
        ward_problem_free(sub);
        return WARD_ERR_NOMEM;
    }
    return sub != NULL ? merge(p, sub, prefix) : WARD_ERR_OK;
}

/* Checks that each currency's debits equal its credits, no sum overflowing; a 422 in *p
 * otherwise. NOMEM. */
static enum ward_err check_balanced(const struct post *r, struct ward_problem **p)
{
    struct sums {
        const struct ward_currency *cur;
        int64_t debits, credits;
        bool overflow;
    } sums[ACCT_MAX_ENTRIES];
    size_t nsums = 0;
    char ptr[64], a[WARD_MONEY_BUFSZ], b[WARD_MONEY_BUFSZ], d[WARD_MONEY_BUFSZ];
    for (size_t i = 0; i < r->n; i++) {
        const struct acct_entry *e = &r->entries[i];
        size_t k = 0;
        while (k < nsums && sums[k].cur != e->currency)
            k++;
        if (k == nsums)
            sums[nsums++] = (struct sums){.cur = e->currency};
        if (sums[k].overflow)
            continue;
        int64_t *sum = e->debit ? &sums[k].debits : &sums[k].credits;
        if (ward_money_add(*sum, e->amount, sum) != WARD_ERR_OK) {
            sums[k].overflow = true;
            snprintf(ptr, sizeof ptr, "/entries/%zu/amount", i);
            if (*p == NULL &&
                (*p = ward_problem_new(WARD_PROBLEM_UNPROCESSABLE, "%s: the sum of the %ss in %s overflows", ptr,
                                       e->debit ? "debit" : "credit", e->currency->code)) == NULL)
                return WARD_ERR_NOMEM;
            if (ward_problem_add_error(*p, ptr, "the sum of the %ss in %s goes beyond int64 minor units",
                                       e->debit ? "debit" : "credit", e->currency->code) != WARD_ERR_OK)
                return WARD_ERR_NOMEM;
        }
    }
    for (size_t k = 0; k < nsums; k++) {
        if (sums[k].overflow || sums[k].debits == sums[k].credits)
            continue;
        /* both sums are >= 0: their difference fits */
        int64_t diff = sums[k].debits - sums[k].credits;
        ward_money_format(sums[k].debits, sums[k].cur, a, sizeof a);
        ward_money_format(sums[k].credits, sums[k].cur, b, sizeof b);
        ward_money_format(diff < 0 ? -diff : diff, sums[k].cur, d, sizeof d);
        if (*p == NULL &&
            (*p = ward_problem_new(WARD_PROBLEM_UNPROCESSABLE,
                                   "the entries do not balance in %s: debits %s, credits %s (%s %s more %s)",
                                   sums[k].cur->code, a, b, d, sums[k].cur->code,
                                   diff > 0 ? "debited" : "credited")) == NULL)
            return WARD_ERR_NOMEM;
        if (ward_problem_add_error(*p, "/entries", "unbalanced in %s: debits %s, credits %s, off by %s",
                                   sums[k].cur->code, a, b, d) != WARD_ERR_OK)
            return WARD_ERR_NOMEM;
    }
    return WARD_ERR_OK;
}

/* Parses and checks the body into r: a 400 or 422 problem in *p when it is bad. NOMEM. */
static enum ward_err parse(const json_t *root, struct post *r, struct ward_problem **p)
{
    static const char *const allowed[] = {"description", "entries"};
    /* entries is an array of objects, which the field parser does not read: parse_entry
     * parses each with a spec of its own */
    const struct ward_field fields[] = {
        {.name = "description", .type = WARD_FIELD_STRING, .dest = &r->description,
         .max_len = ACCT_DESCRIPTION_MAX, .allow_empty = true},
    };
    enum ward_err err = ward_fields_parse(root, fields, sizeof fields / sizeof fields[0], p);
    if (err == WARD_ERR_NOMEM)
        return err;
    if (!json_is_object(root))
        return WARD_ERR_OK; /* *p names "" */
    if (acct_reject_unknown(root, allowed, 2, "", p) != WARD_ERR_OK)
        return WARD_ERR_NOMEM;
    const json_t *entries = json_object_get(root, "entries");
    if (entries == NULL || json_is_null(entries))
        return invalid(p, "/entries", "is required");
    if (!json_is_array(entries))
        return invalid(p, "/entries", "must be an array of entries");
    r->n = json_array_size(entries);
    if (r->n > ACCT_MAX_ENTRIES) {
        char d[64];
        snprintf(d, sizeof d, "must have at most %d entries", ACCT_MAX_ENTRIES);
        return invalid(p, "/entries", d);
    }
    for (size_t i = 0; i < r->n; i++) {
        if (parse_entry(json_array_get(entries, i), i, &r->entries[i], p) != WARD_ERR_OK)
            return WARD_ERR_NOMEM;
    }
    if (*p != NULL)
        return WARD_ERR_OK;
    if (r->n < 2) {
        *p = ward_problem_new(WARD_PROBLEM_UNPROCESSABLE,
                              "a transaction needs at least two entries (a debit and a credit)");
        if (*p == NULL || ward_problem_add_error(*p, "/entries", "needs at least two entries") != WARD_ERR_OK)
            return WARD_ERR_NOMEM;
        return WARD_ERR_OK;
    }
    return check_balanced(r, p);
}

/* The transaction as GET /transactions/{id} shows it; NULL on NOMEM. */
static json_t *render(const struct post *r)
{
    json_t *entries = json_array();
    json_t *o = json_pack("{s:s, s:s, s:o, s:s, s:s?}", "id", r->id, "description", r->description,
                          "entries", entries, "created_at", r->created_at, "created_request_id",
                          r->request_id);
    if (o == NULL)
        return NULL;
    for (size_t i = 0; i < r->n; i++) {
        const struct acct_entry *e = &r->entries[i];
        json_t *j = json_pack("{s:s, s:s, s:s, s:o, s:s}", "id", e->id, "account_id", e->account_id,
                              "direction", e->debit ? "debit" : "credit", "amount",
                              ward_money_to_json(e->amount, e->currency), "currency", e->currency->code);
        if (j == NULL || json_array_append_new(entries, j) != 0) {
            json_decref(j);
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

void acct_transactions_post(struct ward_req *req, void *arg)
{
    struct acct_ctx *ctx = arg;
    json_t *root = NULL;
    struct ward_problem *p = NULL;
    struct ward_idem_claim claim = {0};
    char *body = NULL;
    struct post *r = calloc(1, sizeof *r);
    if (r == NULL) {
        ward_req_respond_problem(req, NULL);
        return;
    }
    r->description = "";
    if (!ward_req_json(req, &root))
        goto out;
    if (parse(root, r, &p) != WARD_ERR_OK) {
        ward_problem_free(p);
        ward_req_respond_problem(req, NULL);
        goto out;
    }
    if (p != NULL) {
        ward_req_respond_problem(req, p);
        goto out;
    }

    bool ids = ward_id_new("txn", r->id, sizeof r->id) == WARD_ERR_OK;
    for (size_t i = 0; ids && i < r->n; i++)
        ids = ward_id_new("ent", r->entries[i].id, sizeof r->entries[i].id) == WARD_ERR_OK;
    if (!ids) {
        ward_req_fail(req, WARD_PROBLEM_INTERNAL, "no randomness for an id");
        goto out;
    }
    snprintf(r->location, sizeof r->location, "/transactions/%s", r->id);
    ward_clock_rfc3339(ward_clock_wall(), r->created_at, sizeof r->created_at);
    r->request_id = ward_req_id(req);
    r->idem = ctx->idem;
    r->req = req;
    r->claim = &claim;
    body = acct_dump(render(r));
    if (body == NULL) {
        ward_req_respond_problem(req, NULL);
        goto out;
    }
    r->body = body;
    enum ward_err err = ward_store_tx(ctx->store, WARD_TX_WRITE_ROWS, post_fn, r);
    if (err == WARD_ERR_INVAL && r->problem != NULL) {
        /* a definite refusal, stored for the key so that a retry gets it again: the
         * transaction that found it rolled back with its claim, so claim anew (rare) */
        ward_idem_claim_fini(&claim);
        if (ward_idem_begin(ctx->idem, req, true, &claim))
            ward_idem_fail(ctx->idem, req, &claim, r->problem);
        else
            ward_problem_free(r->problem);
        r->problem = NULL;
        goto out;
    }
    if (err != WARD_ERR_OK) { /* nothing committed, the key neither */
        ward_store_respond_error(req, err);
        goto out;
    }
    if (claim.verdict != WARD_IDEM_PROCEED) {
        ward_idem_respond(req, &claim);
        goto out;
    }
    /* crash tests: committed, answer late or never (an ambiguous outcome for the caller) */
    ward_fault("accounting.transaction.committed");
    if (ward_req_set_header(req, "Location", r->location) != WARD_ERR_OK) {
        ward_req_respond_problem(req, NULL);
        goto out;
    }
    ward_req_respond(req, 201, "application/json", body, strlen(body));
out:
    ward_idem_claim_fini(&claim);
    ward_problem_free(r->problem);
    free(r);
    free(body);
    json_decref(root);
}
