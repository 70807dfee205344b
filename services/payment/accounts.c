/* accounts.c — the ledger accounts payments post to: per currency a `cash` account (asset)
 * and a `revenue` account (revenue), created in accounting-service on first need with an
 * Idempotency-Key derived from currency and role ("payment-service:cash:USD"), remembered
 * in payment_accounts (the key's answer expires; the table does not) and cached here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pay.h"

static const char *const roles[2] = {"cash", "revenue"};
static const char *const types[2] = {"asset", "revenue"};
static const char *const names[2] = {"Payments cash", "Payments revenue"};

struct lookup {
    const char *currency;
    char ids[2][PAY_REF_MAX + 1]; /* out: "" when unknown */
};

static struct ward_query q_get = WARD_QUERY(
    "SELECT role, account_id FROM payment_accounts WHERE currency = $1");

static enum ward_err lookup_fn(struct ward_tx *tx, void *arg)
{
    struct lookup *l = arg;
    struct ward_rows *rows = NULL;
    l->ids[0][0] = l->ids[1][0] = '\0';
    enum ward_err err = ward_tx_exec(tx, &q_get, (struct ward_param[]){WARD_P_TEXT(l->currency)}, 1, &rows);
    if (err != WARD_ERR_OK)
        return err;
    while (ward_rows_next(rows)) {
        int i = strcmp(ward_rows_text(rows, 0), "cash") == 0 ? 0 : 1;
        snprintf(l->ids[i], sizeof l->ids[i], "%s", ward_rows_text(rows, 1));
    }
    err = ward_rows_err(rows);
    ward_rows_free(rows);
    return err;
}

struct remember {
    const char *currency, *role, *account_id;
};

/* The first writer wins; a second one (another instance) got the same account anyway. */
static struct ward_query q_put = WARD_QUERY(
    "INSERT INTO payment_accounts (currency, role, account_id, created_at) VALUES ($1, $2, $3, $4)"
    " ON CONFLICT (currency, role) DO NOTHING");

static enum ward_err remember_fn(struct ward_tx *tx, void *arg)
{
    struct remember *r = arg;
    char now[WARD_RFC3339_SIZE];
    pay_now_text(now);
    return ward_tx_exec(tx, &q_put,
                        (struct ward_param[]){WARD_P_TEXT(r->currency), WARD_P_TEXT(r->role),
                                              WARD_P_TEXT(r->account_id), WARD_P_TEXT(now)},
                        4, NULL);
}

static bool cached(struct pay_ctx *ctx, const char *currency, struct pay_account_set *set)
{
    bool hit = false;
    pthread_mutex_lock(&ctx->accounts.lock);
    for (size_t i = 0; i < ctx->accounts.len && !hit; i++) {
        if (strcmp(ctx->accounts.sets[i].currency, currency) == 0) {
            *set = ctx->accounts.sets[i];
            hit = true;
        }
    }
    pthread_mutex_unlock(&ctx->accounts.lock);
    return hit;
}

static void cache(struct pay_ctx *ctx, const struct pay_account_set *set)
{
    struct pay_accounts *a = &ctx->accounts;
    pthread_mutex_lock(&a->lock);
    for (size_t i = 0; i < a->len; i++) {
        if (strcmp(a->sets[i].currency, set->currency) == 0)
            goto out;
    }
    if (a->len == a->cap) {
        size_t cap = a->cap == 0 ? 8 : a->cap * 2;
        struct pay_account_set *n = realloc(a->sets, cap * sizeof *n);
        if (n == NULL)
            goto out; /* not cached: read from the table next time */
        a->sets = n;
        a->cap = cap;
    }
    a->sets[a->len++] = *set;
out:
    pthread_mutex_unlock(&a->lock);
}

void pay_accounts_get(struct pay_ctx *ctx, const char *currency, const char *request_id,
                      struct pay_account_set *set, struct pay_outcome *out)
{
    *out = (struct pay_outcome){.verdict = PAY_DONE};
    if (cached(ctx, currency, set))
        return;
    struct lookup l = {.currency = currency};
    enum ward_err err = ward_store_tx(ctx->store, WARD_TX_READ, lookup_fn, &l);
    for (int i = 0; i < 2 && err == WARD_ERR_OK; i++) {
        if (l.ids[i][0] != '\0')
            continue;
        char key[64];
        snprintf(key, sizeof key, "payment-service:%s:%s", roles[i], currency);
        json_t *body = json_pack("{s:s, s:s, s:s}", "name", names[i], "currency", currency,
                                 "type", types[i]);
        if (body == NULL) {
            err = WARD_ERR_NOMEM;
            break;
        }
        pay_call(ctx, ctx->ledger, "/accounts", body, key, request_id, out, NULL);
        json_decref(body);
        if (out->verdict != PAY_DONE) {
            char why[PAY_TEXT_MAX + 1];
            snprintf(why, sizeof why, "opening the %s %s account: %.400s", currency, roles[i], out->detail);
            snprintf(out->detail, sizeof out->detail, "%s", why);
            /* nothing of the transaction was sent: only its accounts' fate decides */
            out->sent = false;
            return;
        }
        struct remember r = {.currency = currency, .role = roles[i], .account_id = out->result_id};
        err = ward_store_tx(ctx->store, WARD_TX_WRITE, remember_fn, &r);
        if (err == WARD_ERR_OK)
            err = ward_store_tx(ctx->store, WARD_TX_READ, lookup_fn, &l); /* the winner's */
    }
    *out = (struct pay_outcome){.verdict = PAY_DONE};
    if (err != WARD_ERR_OK || l.ids[0][0] == '\0' || l.ids[1][0] == '\0') {
        out->verdict = PAY_AGAIN;
        snprintf(out->detail, sizeof out->detail, "payment accounts not recorded: %s",
                 ward_strerror(err));
        return;
    }
    snprintf(set->currency, sizeof set->currency, "%s", currency);
    snprintf(set->cash, sizeof set->cash, "%s", l.ids[0]);
    snprintf(set->revenue, sizeof set->revenue, "%s", l.ids[1]);
    cache(ctx, set);
}

void pay_accounts_fini(struct pay_accounts *a)
{
    free(a->sets);
    a->sets = NULL;
    a->len = a->cap = 0;
}
