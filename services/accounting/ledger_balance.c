/* ledger_balance.c — GET /ledger/balance: the ledger's invariant, shown. For each
 * currency the sum of all account balances, which double entry keeps at zero. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "accounting.h"

struct sum {
    json_t *currencies;
    bool balanced;
    int64_t *v; /* one currency's non-zero balances, ascending */
    size_t n, cap;
};

static struct ward_query q_balances = WARD_QUERY(
    "SELECT currency, balance FROM accounts WHERE balance <> 0 ORDER BY currency, balance");

/* Sums s->v without overflowing on the way: the running sum takes a negative balance
 * while it is >= 0 and a positive one while it is < 0, so it stays within int64 unless
 * the total itself does not fit (then OVERFLOW). */
static enum ward_err total(const struct sum *s, int64_t *out)
{
    size_t neg = 0, pos = 0;
    while (pos < s->n && s->v[pos] < 0)
        pos++;
    size_t neg_end = pos;
    int64_t t = 0;
    while (neg < neg_end || pos < s->n) {
        bool take_neg = neg < neg_end && (t >= 0 || pos == s->n);
        int64_t b = take_neg ? s->v[neg++] : s->v[pos++];
        if (ward_money_add(t, b, &t) != WARD_ERR_OK)
            return WARD_ERR_OVERFLOW;
    }
    *out = t;
    return WARD_ERR_OK;
}

/* Appends the finished currency code to s->currencies. */
static enum ward_err flush(struct sum *s, const char *code)
{
    const struct ward_currency *cur = ward_currency_find(code);
    int64_t t = 0;
    if (cur == NULL)
        return WARD_ERR_DB;
    bool fits = total(s, &t) == WARD_ERR_OK;
    json_t *sum = fits ? json_pack("{s:o, s:s}", "amount", ward_money_to_json(t, cur), "currency", code)
                       : json_null();
    json_t *o = json_pack("{s:s, s:o, s:b, s:I}", "currency", code, "sum", sum, "balanced",
                          fits && t == 0, "accounts_with_balance", (json_int_t)s->n);
    if (o == NULL || json_array_append_new(s->currencies, o) != 0) {
        json_decref(o);
        return WARD_ERR_NOMEM;
    }
    s->balanced = s->balanced && fits && t == 0;
    s->n = 0;
    return WARD_ERR_OK;
}

static enum ward_err sum_fn(struct ward_tx *tx, void *arg)
{
    struct sum *s = arg;
    struct ward_rows *rows = NULL;
    char code[8] = "";
    json_decref(s->currencies);
    s->currencies = json_array();
    s->balanced = true;
    s->n = 0;
    if (s->currencies == NULL)
        return WARD_ERR_NOMEM;
    enum ward_err err = ward_tx_exec(tx, &q_balances, NULL, 0, &rows);
    if (err != WARD_ERR_OK)
        return err;
    while (err == WARD_ERR_OK && ward_rows_next(rows)) {
        const char *c = ward_rows_text(rows, 0);
        if (code[0] != '\0' && strcmp(c, code) != 0)
            err = flush(s, code);
        if (err != WARD_ERR_OK)
            break;
        snprintf(code, sizeof code, "%s", c);
        if (s->n == s->cap) {
            size_t cap = s->cap == 0 ? 64 : s->cap * 2;
            int64_t *v = realloc(s->v, cap * sizeof *v);
            if (v == NULL) {
                err = WARD_ERR_NOMEM;
                break;
            }
            s->v = v;
            s->cap = cap;
        }
        s->v[s->n++] = ward_rows_int64(rows, 1);
    }
    if (err == WARD_ERR_OK)
        err = ward_rows_err(rows);
    ward_rows_free(rows);
    if (err == WARD_ERR_OK && code[0] != '\0')
        err = flush(s, code);
    return err;
}

void acct_ledger_balance(struct ward_req *req, void *arg)
{
    struct acct_ctx *ctx = arg;
    struct sum s = {0};
    enum ward_err err = ward_store_tx(ctx->store, WARD_TX_READ, sum_fn, &s);
    free(s.v);
    if (err != WARD_ERR_OK) {
        json_decref(s.currencies);
        ward_store_respond_error(req, err);
        return;
    }
    json_t *body = json_pack("{s:b, s:o}", "balanced", s.balanced, "currencies", s.currencies);
    if (body == NULL) {
        ward_req_respond_problem(req, NULL);
        return;
    }
    ward_req_respond_json(req, 200, body);
}
