/* store.c — invoice-service's schema, the invoice row as JSON, and the answers shared by
 * the endpoints that run under an Idempotency-Key. */
#include <stdlib.h>
#include <string.h>

#include <ward/money.h>
#include <ward/problem.h>

#include "invoice.h"

/* Money as BIGINT minor units next to its currency; timestamps RFC 3339 UTC text. The
 * CHECKs pin the invariants: a positive amount, a known status, and each state's stamps
 * present exactly when the invoice is in that state. */
#define INV_TABLE(seq)                                                                    \
    "CREATE TABLE invoices (" seq ","                                                     \
    " id TEXT NOT NULL UNIQUE,"                                                           \
    " customer_id TEXT NOT NULL,"                                                         \
    " amount BIGINT NOT NULL CHECK (amount > 0),"                                         \
    " currency TEXT NOT NULL,"                                                            \
    " description TEXT NOT NULL,"                                                         \
    " payment_id TEXT,"                                                                   \
    " status TEXT NOT NULL CHECK (status IN ('open', 'paid', 'void')),"                  \
    " created_at TEXT NOT NULL, created_request_id TEXT NOT NULL,"                        \
    " paid_at TEXT, paid_request_id TEXT,"                                                \
    " voided_at TEXT, voided_request_id TEXT, void_reason TEXT,"                          \
    " CHECK ((status = 'paid') = (paid_at IS NOT NULL)),"                                 \
    " CHECK ((status = 'void') = (voided_at IS NOT NULL)));"                              \
    "CREATE INDEX invoices_customer ON invoices (customer_id, seq);"

const struct ward_migration inv_migrations[] = {
    {1, INV_TABLE("seq INTEGER PRIMARY KEY AUTOINCREMENT"), INV_TABLE("seq BIGSERIAL PRIMARY KEY")},
    {2, WARD_IDEM_SCHEMA, NULL},
};
const size_t inv_n_migrations = sizeof inv_migrations / sizeof inv_migrations[0];

/* A text column as a JSON string, null when NULL. */
static json_t *text_or_null(const struct ward_rows *r, size_t col)
{
    return ward_rows_is_null(r, col) ? json_null() : json_string(ward_rows_text(r, col));
}

json_t *inv_row_json(const struct ward_rows *r, int64_t *seq)
{
    /* members in reading order: who and how much, then the lifecycle */
    static const struct {
        const char *name;
        size_t col; /* 3: the amount, formatted in the currency of column 4 */
    } members[] = {
        {"id", 1},          {"customer_id", 2},       {"amount", 3},       {"currency", 4},
        {"description", 5}, {"payment_id", 6},        {"status", 7},       {"created_at", 8},
        {"created_request_id", 9}, {"paid_at", 10},   {"paid_request_id", 11},
        {"voided_at", 12},  {"voided_request_id", 13}, {"void_reason", 14},
    };
    const struct ward_currency *cur = ward_currency_find(ward_rows_text(r, 4));
    json_t *o = json_object();
    if (o == NULL || cur == NULL)
        goto fail;
    for (size_t i = 0; i < sizeof members / sizeof members[0]; i++) {
        size_t col = members[i].col;
        json_t *v = col == 3 ? ward_money_to_json(ward_rows_int64(r, col), cur) : text_or_null(r, col);
        if (json_object_set_new(o, members[i].name, v) != 0)
            goto fail;
    }
    if (seq != NULL)
        *seq = ward_rows_int64(r, 0);
    return o;
fail:
    json_decref(o);
    return NULL;
}

static struct ward_query q_load = WARD_QUERY("SELECT " INV_COLUMNS " FROM invoices WHERE id = $1");

enum ward_err inv_load(struct ward_tx *tx, const char *id, json_t **out)
{
    struct ward_rows *rows = NULL;
    *out = NULL;
    enum ward_err err = ward_tx_exec(tx, &q_load, (struct ward_param[]){WARD_P_TEXT(id)}, 1, &rows);
    if (err != WARD_ERR_OK)
        return err;
    if (ward_rows_next(rows)) {
        *out = inv_row_json(rows, NULL);
        err = *out == NULL ? WARD_ERR_NOMEM : WARD_ERR_OK;
    } else {
        err = ward_rows_err(rows);
    }
    ward_rows_free(rows);
    return err;
}
