/* store.c — payment-service's schema, the payment row, its step log and the payment
 * resource as JSON. */
#include <stdio.h>
#include <string.h>

#include <ward/clock.h>
#include <ward/money.h>

#include "pay.h"

/* Money as BIGINT minor units next to its currency; timestamps RFC 3339 UTC text; leases
 * and retry times unix milliseconds (shared by every instance on the database). The
 * CHECKs pin the saga's invariants: a pending payment has a step to run, a terminal one
 * none; a completed payment has both its invoice and its ledger transaction; the void
 * step (the compensation) never follows a recorded ledger transaction. */
#define PAY_TABLE(seq)                                                                    \
    "CREATE TABLE payments (" seq ","                                                     \
    " id TEXT NOT NULL UNIQUE,"                                                           \
    " customer_id TEXT NOT NULL,"                                                         \
    " amount BIGINT NOT NULL CHECK (amount > 0),"                                         \
    " currency TEXT NOT NULL,"                                                            \
    " description TEXT NOT NULL,"                                                         \
    " status TEXT NOT NULL CHECK (status IN ('pending', 'completed', 'failed')),"         \
    " failure_reason TEXT,"                                                               \
    " step TEXT NOT NULL CHECK (step IN ('invoice', 'ledger', 'pay', 'void', 'done')),"   \
    " invoice_id TEXT, ledger_transaction_id TEXT,"                                       \
    " created_at TEXT NOT NULL, created_request_id TEXT NOT NULL,"                        \
    " completed_at TEXT, failed_at TEXT,"                                                 \
    " owner TEXT, lease_until BIGINT NOT NULL,"                                           \
    " attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at BIGINT NOT NULL,"              \
    " sent INTEGER NOT NULL DEFAULT 0, calling INTEGER NOT NULL DEFAULT 0,"               \
    " CHECK ((status = 'pending') = (step <> 'done')),"                                   \
    " CHECK ((status = 'completed') = (completed_at IS NOT NULL)),"                       \
    " CHECK ((status = 'failed') = (failed_at IS NOT NULL)),"                             \
    " CHECK (status <> 'failed' OR failure_reason IS NOT NULL),"                          \
    " CHECK (status <> 'completed' OR"                                                    \
    "        (invoice_id IS NOT NULL AND ledger_transaction_id IS NOT NULL)),"            \
    " CHECK (step NOT IN ('ledger', 'pay', 'void') OR invoice_id IS NOT NULL),"           \
    " CHECK (step <> 'pay' OR ledger_transaction_id IS NOT NULL),"                        \
    " CHECK (step <> 'void' OR ledger_transaction_id IS NULL));"                          \
    "CREATE INDEX payments_customer ON payments (customer_id, seq);"                      \
    "CREATE INDEX payments_due ON payments (status, next_attempt_at);"                    \
    "CREATE TABLE payment_steps ("                                                        \
    " payment_id TEXT NOT NULL, n INTEGER NOT NULL,"                                      \
    " step TEXT NOT NULL,"                                                                \
    " event TEXT NOT NULL CHECK (event IN ('started', 'succeeded', 'retry', 'failed')),"  \
    " detail TEXT, at TEXT NOT NULL,"                                                     \
    " PRIMARY KEY (payment_id, n));"                                                      \
    "CREATE TABLE payment_accounts ("                                                     \
    " currency TEXT NOT NULL, role TEXT NOT NULL CHECK (role IN ('cash', 'revenue')),"    \
    " account_id TEXT NOT NULL, created_at TEXT NOT NULL,"                                \
    " PRIMARY KEY (currency, role));"

const struct ward_migration pay_migrations[] = {
    {1, PAY_TABLE("seq INTEGER PRIMARY KEY AUTOINCREMENT"), PAY_TABLE("seq BIGSERIAL PRIMARY KEY")},
    {2, WARD_IDEM_SCHEMA, NULL},
};
const size_t pay_n_migrations = sizeof pay_migrations / sizeof pay_migrations[0];

int64_t pay_now_ms(void)
{
    return ward_clock_wall() / WARD_NS_PER_MS;
}

void pay_now_text(char buf[WARD_RFC3339_SIZE])
{
    ward_clock_rfc3339(ward_clock_wall(), buf, WARD_RFC3339_SIZE);
}

static void text(const struct ward_rows *r, size_t col, char *buf, size_t size)
{
    const char *v = ward_rows_is_null(r, col) ? "" : ward_rows_text(r, col);
    snprintf(buf, size, "%s", v != NULL ? v : "");
}

void pay_row_read(const struct ward_rows *r, struct pay_row *row)
{
    row->seq = ward_rows_int64(r, 0);
    text(r, 1, row->id, sizeof row->id);
    text(r, 2, row->customer_id, sizeof row->customer_id);
    row->amount = ward_rows_int64(r, 3);
    text(r, 4, row->currency, sizeof row->currency);
    text(r, 5, row->description, sizeof row->description);
    text(r, 6, row->status, sizeof row->status);
    row->has_failure_reason = !ward_rows_is_null(r, 7);
    text(r, 7, row->failure_reason, sizeof row->failure_reason);
    text(r, 8, row->step, sizeof row->step);
    text(r, 9, row->invoice_id, sizeof row->invoice_id);
    text(r, 10, row->ledger_transaction_id, sizeof row->ledger_transaction_id);
    text(r, 11, row->created_at, sizeof row->created_at);
    text(r, 12, row->created_request_id, sizeof row->created_request_id);
    text(r, 13, row->completed_at, sizeof row->completed_at);
    text(r, 14, row->failed_at, sizeof row->failed_at);
    text(r, 15, row->owner, sizeof row->owner);
    row->lease_until = ward_rows_int64(r, 16);
    row->attempts = ward_rows_int64(r, 17);
    row->next_attempt_at = ward_rows_int64(r, 18);
    row->sent = ward_rows_int64(r, 19) != 0;
    row->calling = ward_rows_int64(r, 20) != 0;
}

static struct ward_query q_load = WARD_QUERY("SELECT " PAY_COLUMNS " FROM payments WHERE id = $1");

enum ward_err pay_row_load(struct ward_tx *tx, const char *id, struct pay_row *row, bool *found)
{
    struct ward_rows *rows = NULL;
    *found = false;
    enum ward_err err = ward_tx_exec(tx, &q_load, (struct ward_param[]){WARD_P_TEXT(id)}, 1, &rows);
    if (err != WARD_ERR_OK)
        return err;
    if (ward_rows_next(rows)) {
        pay_row_read(rows, row);
        *found = true;
    } else {
        err = ward_rows_err(rows);
    }
    ward_rows_free(rows);
    return err;
}

/* n is the next number in the payment's log; the primary key refuses a duplicate. */
static struct ward_query q_log = WARD_QUERY(
    "INSERT INTO payment_steps (payment_id, n, step, event, detail, at)"
    " SELECT $1, COALESCE(MAX(n), 0) + 1, $2, $3, $4, $5 FROM payment_steps WHERE payment_id = $1");

enum ward_err pay_log_step(struct ward_tx *tx, const char *id, const char *step, const char *event,
                           const char *detail)
{
    char at[WARD_RFC3339_SIZE];
    pay_now_text(at);
    const struct ward_param p[] = {WARD_P_TEXT(id), WARD_P_TEXT(step), WARD_P_TEXT(event),
                                   WARD_P_TEXT_OR_NULL(detail), WARD_P_TEXT(at)};
    return ward_tx_exec(tx, &q_log, p, 5, NULL);
}

static struct ward_query q_steps = WARD_QUERY(
    "SELECT step, event, at, detail FROM payment_steps WHERE payment_id = $1 ORDER BY n");

static json_t *str_or_null(const char *s, bool present)
{
    return present ? json_string(s) : json_null();
}

static enum ward_err steps_json(struct ward_tx *tx, const char *id, json_t *arr)
{
    struct ward_rows *rows = NULL;
    enum ward_err err = ward_tx_exec(tx, &q_steps, (struct ward_param[]){WARD_P_TEXT(id)}, 1, &rows);
    if (err != WARD_ERR_OK)
        return err;
    while (ward_rows_next(rows)) {
        json_t *s = json_pack("{s:s, s:s, s:s, s:o}", "step", ward_rows_text(rows, 0), "event",
                              ward_rows_text(rows, 1), "at", ward_rows_text(rows, 2), "detail",
                              ward_rows_is_null(rows, 3) ? json_null()
                                                         : json_string(ward_rows_text(rows, 3)));
        if (s == NULL || json_array_append_new(arr, s) != 0) {
            ward_rows_free(rows);
            return WARD_ERR_NOMEM;
        }
    }
    err = ward_rows_err(rows);
    ward_rows_free(rows);
    return err;
}

enum ward_err pay_resource(struct ward_tx *tx, const struct pay_row *row, json_t **out)
{
    *out = NULL;
    const struct ward_currency *cur = ward_currency_find(row->currency);
    if (cur == NULL)
        return WARD_ERR_DB; /* a corrupt row: the currency was checked on the way in */
    bool failed = strcmp(row->status, "failed") == 0;
    json_t *steps = json_array();
    json_t *o = json_pack(
        "{s:s, s:s, s:o, s:s, s:s, s:s, s:o, s:o, s:o, s:s, s:s, s:o, s:o, s:o}", "id", row->id,
        "customer_id", row->customer_id, "amount", ward_money_to_json(row->amount, cur),
        "currency", cur->code, "description", row->description, "status", row->status,
        "failure_reason", str_or_null(row->failure_reason, row->has_failure_reason),
        "invoice_id", str_or_null(row->invoice_id, row->invoice_id[0] != '\0'),
        "ledger_transaction_id",
        str_or_null(row->ledger_transaction_id, row->ledger_transaction_id[0] != '\0'),
        "created_at", row->created_at, "created_request_id", row->created_request_id,
        "completed_at", str_or_null(row->completed_at, row->completed_at[0] != '\0'),
        "failed_at", str_or_null(row->failed_at, failed && row->failed_at[0] != '\0'),
        "steps", steps);
    if (o == NULL)
        return WARD_ERR_NOMEM;
    enum ward_err err = steps_json(tx, row->id, steps);
    if (err != WARD_ERR_OK) {
        json_decref(o);
        return err;
    }
    *out = o;
    return WARD_ERR_OK;
}
