/* store.c — accounting-service's schema and the queries its endpoints share: rendering
 * accounts and transactions, and posting a balanced set of entries. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "accounting.h"

/* The ledger is append-only. Entries and transaction headers are never updated or
 * deleted, and an account's identity (id, name, currency, type, creation stamps) never
 * changes: triggers refuse it on both backends (SQLite RAISE(ABORT) and a PostgreSQL
 * trigger raising SQLSTATE 23000; the store maps both to CONSTRAINT). A reversal is a new
 * transaction whose reversal_of names the original; UNIQUE (reversal_of) makes it the
 * only one, so the original's reversed_by/at/request_id are read from its reversal and
 * the original's row is never touched. The one mutable column is accounts.balance: a
 * cache of sum(debits) - sum(credits) of the account's entries, moved in the same
 * transaction that inserts them (so that an overflow is refused before it happens and a
 * balance is one row read). */
#define SCHEMA_COMMON_TAIL                                                                \
    "CREATE INDEX entries_by_account ON entries (account_id, transaction_id);"

const struct ward_migration acct_migrations[] = {
    {1,
     "CREATE TABLE accounts ("
     " seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,"
     " name TEXT NOT NULL, currency TEXT NOT NULL,"
     " type TEXT NOT NULL CHECK (type IN ('asset', 'liability', 'equity', 'revenue', 'expense')),"
     " balance BIGINT NOT NULL DEFAULT 0,"
     " created_at TEXT NOT NULL, created_request_id TEXT);"
     "CREATE TABLE transactions ("
     " seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,"
     " description TEXT NOT NULL, reversal_of TEXT UNIQUE REFERENCES transactions (id),"
     " created_at TEXT NOT NULL, created_request_id TEXT);"
     "CREATE TABLE entries ("
     " seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,"
     " transaction_id TEXT NOT NULL REFERENCES transactions (id), position INTEGER NOT NULL,"
     " account_id TEXT NOT NULL REFERENCES accounts (id),"
     " direction TEXT NOT NULL CHECK (direction IN ('debit', 'credit')),"
     " amount BIGINT NOT NULL CHECK (amount > 0), currency TEXT NOT NULL,"
     " UNIQUE (transaction_id, position));" SCHEMA_COMMON_TAIL
     "CREATE TRIGGER entries_no_update BEFORE UPDATE ON entries"
     " BEGIN SELECT RAISE(ABORT, 'ledger entries are never updated'); END;"
     "CREATE TRIGGER entries_no_delete BEFORE DELETE ON entries"
     " BEGIN SELECT RAISE(ABORT, 'ledger entries are never deleted'); END;"
     "CREATE TRIGGER transactions_no_update BEFORE UPDATE ON transactions"
     " BEGIN SELECT RAISE(ABORT, 'ledger transactions are never updated'); END;"
     "CREATE TRIGGER transactions_no_delete BEFORE DELETE ON transactions"
     " BEGIN SELECT RAISE(ABORT, 'ledger transactions are never deleted'); END;"
     "CREATE TRIGGER accounts_fixed BEFORE UPDATE OF seq, id, name, currency, type, created_at,"
     " created_request_id ON accounts"
     " BEGIN SELECT RAISE(ABORT, 'only an account''s balance changes'); END;"
     "CREATE TRIGGER accounts_no_delete BEFORE DELETE ON accounts"
     " BEGIN SELECT RAISE(ABORT, 'accounts are never deleted'); END;",
     "CREATE TABLE accounts ("
     " seq BIGSERIAL PRIMARY KEY, id TEXT NOT NULL UNIQUE,"
     " name TEXT NOT NULL, currency TEXT NOT NULL,"
     " type TEXT NOT NULL CHECK (type IN ('asset', 'liability', 'equity', 'revenue', 'expense')),"
     " balance BIGINT NOT NULL DEFAULT 0,"
     " created_at TEXT NOT NULL, created_request_id TEXT);"
     "CREATE TABLE transactions ("
     " seq BIGSERIAL PRIMARY KEY, id TEXT NOT NULL UNIQUE,"
     " description TEXT NOT NULL, reversal_of TEXT UNIQUE REFERENCES transactions (id),"
     " created_at TEXT NOT NULL, created_request_id TEXT);"
     "CREATE TABLE entries ("
     " seq BIGSERIAL PRIMARY KEY, id TEXT NOT NULL UNIQUE,"
     " transaction_id TEXT NOT NULL REFERENCES transactions (id), position INTEGER NOT NULL,"
     " account_id TEXT NOT NULL REFERENCES accounts (id),"
     " direction TEXT NOT NULL CHECK (direction IN ('debit', 'credit')),"
     " amount BIGINT NOT NULL CHECK (amount > 0), currency TEXT NOT NULL,"
     " UNIQUE (transaction_id, position));" SCHEMA_COMMON_TAIL
     "CREATE FUNCTION acct_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
     " RAISE EXCEPTION 'the ledger is append-only: % on % refused', TG_OP, TG_TABLE_NAME"
     " USING ERRCODE = '23000'; END $$;"
     "CREATE TRIGGER entries_append_only BEFORE UPDATE OR DELETE ON entries"
     " FOR EACH ROW EXECUTE FUNCTION acct_append_only();"
     "CREATE TRIGGER transactions_append_only BEFORE UPDATE OR DELETE ON transactions"
     " FOR EACH ROW EXECUTE FUNCTION acct_append_only();"
     "CREATE TRIGGER accounts_fixed BEFORE DELETE OR UPDATE OF seq, id, name, currency, type,"
     " created_at, created_request_id ON accounts FOR EACH ROW EXECUTE FUNCTION acct_append_only();"
     "CREATE TRIGGER ledger_no_truncate BEFORE TRUNCATE ON entries"
     " FOR EACH STATEMENT EXECUTE FUNCTION acct_append_only();"
     "CREATE TRIGGER transactions_no_truncate BEFORE TRUNCATE ON transactions"
     " FOR EACH STATEMENT EXECUTE FUNCTION acct_append_only();"
     "CREATE TRIGGER accounts_no_truncate BEFORE TRUNCATE ON accounts"
     " FOR EACH STATEMENT EXECUTE FUNCTION acct_append_only();"},
    {2, WARD_IDEM_SCHEMA, NULL},
};
const size_t acct_n_migrations = sizeof acct_migrations / sizeof acct_migrations[0];

const char *acct_normal_balance(const char *type)
{
    if (strcmp(type, "asset") == 0 || strcmp(type, "expense") == 0)
        return "debit";
    if (strcmp(type, "liability") == 0 || strcmp(type, "equity") == 0 ||
        strcmp(type, "revenue") == 0)
        return "credit";
    return NULL;
}

char *acct_dump(json_t *j)
{
    char *s = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return s;
}

/* {"amount": "...", "currency": "..."}; NULL on NOMEM. */
static json_t *money(int64_t minor, const struct ward_currency *cur)
{
    json_t *o = json_object();
    if (o == NULL || json_object_set_new(o, "amount", ward_money_to_json(minor, cur)) != 0 ||
        json_object_set_new(o, "currency", json_string(cur->code)) != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* Sets key to the text of column col, or to null when it is NULL. */
static bool set_text(json_t *o, const char *key, struct ward_rows *rows, size_t col)
{
    json_t *v = ward_rows_is_null(rows, col) ? json_null() : json_string(ward_rows_text(rows, col));
    return json_object_set_new(o, key, v) == 0;
}

json_t *acct_account_json(struct ward_rows *rows)
{
    const struct ward_currency *cur = ward_currency_find(ward_rows_text(rows, 3));
    const char *normal = acct_normal_balance(ward_rows_text(rows, 4));
    json_t *o = json_object();
    if (cur == NULL || normal == NULL || o == NULL)
        goto fail;
    if (!set_text(o, "id", rows, 1) || !set_text(o, "name", rows, 2) ||
        !set_text(o, "currency", rows, 3) || !set_text(o, "type", rows, 4) ||
        json_object_set_new(o, "normal_balance", json_string(normal)) != 0 ||
        json_object_set_new(o, "balance", money(ward_rows_int64(rows, 5), cur)) != 0 ||
        !set_text(o, "created_at", rows, 6) || !set_text(o, "created_request_id", rows, 7))
        goto fail;
    return o;
fail:
    json_decref(o);
    return NULL;
}

/* A new transaction object from the header columns of the current row. */
static json_t *txn_header(struct ward_rows *rows)
{
    json_t *o = json_object();
    if (o == NULL || !set_text(o, "id", rows, 1) || !set_text(o, "description", rows, 2) ||
        json_object_set_new(o, "entries", json_array()) != 0 ||
        !set_text(o, "created_at", rows, 3) || !set_text(o, "created_request_id", rows, 4))
        goto fail;
    if (!ward_rows_is_null(rows, 5) && !set_text(o, "reversal_of", rows, 5))
        goto fail;
    if (!ward_rows_is_null(rows, 6) &&
        (!set_text(o, "reversed_by", rows, 6) || !set_text(o, "reversed_at", rows, 7) ||
         !set_text(o, "reversed_request_id", rows, 8)))
        goto fail;
    return o;
fail:
    json_decref(o);
    return NULL;
}

/* The entry of the current row, appended to txn's entries. */
static enum ward_err txn_entry(json_t *txn, struct ward_rows *rows)
{
    const struct ward_currency *cur = ward_currency_find(ward_rows_text(rows, 13));
    if (cur == NULL)
        return WARD_ERR_DB;
    json_t *e = json_object();
    if (e == NULL || !set_text(e, "id", rows, 9) || !set_text(e, "account_id", rows, 10) ||
        !set_text(e, "direction", rows, 11) ||
        json_object_set_new(e, "amount", ward_money_to_json(ward_rows_int64(rows, 12), cur)) != 0 ||
        json_object_set_new(e, "currency", json_string(cur->code)) != 0 ||
        json_array_append_new(json_object_get(txn, "entries"), e) != 0) {
        json_decref(e);
        return WARD_ERR_NOMEM;
    }
    return WARD_ERR_OK;
}

enum ward_err acct_txn_rows_json(struct ward_rows *rows, size_t max, json_t **out, int64_t *seqs,
                                 size_t *count)
{
    json_t *cur = NULL;
    int64_t cur_seq = 0;
    *count = 0;
    if (*out == NULL && (*out = json_array()) == NULL)
        return WARD_ERR_NOMEM;
    while (ward_rows_next(rows)) {
        int64_t seq = ward_rows_int64(rows, 0);
        if (cur == NULL || seq != cur_seq) {
            if (*count == max)
                return WARD_ERR_OK;
            cur = txn_header(rows);
            if (cur == NULL || json_array_append_new(*out, cur) != 0)
                return WARD_ERR_NOMEM;
            cur_seq = seq;
            if (seqs != NULL)
                seqs[*count] = seq;
            (*count)++;
        }
        enum ward_err err = txn_entry(cur, rows);
        if (err != WARD_ERR_OK)
            return err;
    }
    return ward_rows_err(rows);
}

static struct ward_query q_txn_one = WARD_QUERY(
    "SELECT " ACCT_TXN_COLUMNS " FROM transactions t JOIN entries e ON e.transaction_id = t.id"
    " LEFT JOIN transactions r ON r.reversal_of = t.id WHERE t.id = $1 ORDER BY e.position");

enum ward_err acct_txn_load(struct ward_tx *tx, const char *id, json_t **out)
{
    struct ward_rows *rows = NULL;
    json_t *arr = NULL;
    size_t count = 0;
    *out = NULL;
    enum ward_err err = ward_tx_exec(tx, &q_txn_one, (struct ward_param[]){WARD_P_TEXT(id)}, 1, &rows);
    if (err == WARD_ERR_OK)
        err = acct_txn_rows_json(rows, 1, &arr, NULL, &count);
    ward_rows_free(rows);
    if (err == WARD_ERR_OK && count == 0)
        err = WARD_ERR_NOT_FOUND;
    if (err == WARD_ERR_OK)
        *out = json_incref(json_array_get(arr, 0));
    json_decref(arr);
    return err;
}

/* Adds an error at pointer to *p, creating the 422 problem (its detail the first error's)
 * when NULL. NOMEM. */
static enum ward_err unprocessable(struct ward_problem **p, const char *pointer, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum ward_err unprocessable(struct ward_problem **p, const char *pointer, const char *fmt, ...)
{
    char detail[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    if (*p == NULL && (*p = ward_problem_new(WARD_PROBLEM_UNPROCESSABLE, "%s: %s", pointer, detail)) == NULL)
        return WARD_ERR_NOMEM;
    return ward_problem_add_error(*p, pointer, "%s", detail);
}

/* One account the entries move, with its balance before and the net change. */
struct moved {
    const char *id;
    int64_t balance, delta;
    size_t first; /* the first entry naming it, for errors */
};

static struct ward_query q_account_for_post =
    WARD_QUERY("SELECT currency, balance FROM accounts WHERE id = $1");
static struct ward_query q_set_balance = WARD_QUERY("UPDATE accounts SET balance = $2 WHERE id = $1");
/* Takes the row's lock before it is read: under READ COMMITTED (WARD_TX_WRITE_ROWS) the
 * balance read next is then the latest and stays so until the commit. */
static struct ward_query q_lock_account =
    WARD_QUERY("UPDATE accounts SET balance = balance WHERE id = $1");

static int by_text(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Locks the accounts entries name, each once, in one order for every transaction (no
 * deadlock between two posts); an unknown account locks nothing and is reported later. */
static enum ward_err lock_accounts(struct ward_tx *tx, const struct acct_entry *entries, size_t n)
{
    const char *ids[ACCT_MAX_ENTRIES];
    for (size_t i = 0; i < n; i++)
        ids[i] = entries[i].account_id;
    qsort(ids, n, sizeof ids[0], by_text);
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && strcmp(ids[i], ids[i - 1]) == 0)
            continue;
        enum ward_err err =
            ward_tx_exec(tx, &q_lock_account, (struct ward_param[]){WARD_P_TEXT(ids[i])}, 1, NULL);
        if (err != WARD_ERR_OK)
            return err;
    }
    return WARD_ERR_OK;
}
static struct ward_query q_insert_txn = WARD_QUERY(
    "INSERT INTO transactions (id, description, reversal_of, created_at, created_request_id)"
    " VALUES ($1, $2, $3, $4, $5)");
static struct ward_query q_insert_entry = WARD_QUERY(
    "INSERT INTO entries (id, transaction_id, position, account_id, direction, amount, currency)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7)");

enum ward_err acct_post_entries(struct ward_tx *tx, const char *txn_id, const char *description,
                                const char *reversal_of, const struct acct_entry *entries, size_t n,
                                const char *created_at, const char *request_id,
                                struct ward_problem **problem)
{
    struct moved moved[ACCT_MAX_ENTRIES];
    size_t nmoved = 0;
    char ptr[64];
    enum ward_err err = WARD_ERR_OK;
    *problem = NULL;
    if (n > ACCT_MAX_ENTRIES)
        return WARD_ERR_INVAL;
    err = lock_accounts(tx, entries, n);
    if (err != WARD_ERR_OK)
        return err;
    for (size_t i = 0; i < n; i++) {
        const struct acct_entry *e = &entries[i];
        size_t m = 0;
        while (m < nmoved && strcmp(moved[m].id, e->account_id) != 0)
            m++;
        if (m == nmoved) {
            struct ward_rows *rows = NULL;
            char currency[8] = "";
            bool found = false;
            int64_t balance = 0;
            err = ward_tx_exec(tx, &q_account_for_post, (struct ward_param[]){WARD_P_TEXT(e->account_id)},
                               1, &rows);
            if (err != WARD_ERR_OK)
                return err;
            if (ward_rows_next(rows)) {
                found = true;
                snprintf(currency, sizeof currency, "%s", ward_rows_text(rows, 0));
                balance = ward_rows_int64(rows, 1);
            } else {
                err = ward_rows_err(rows);
            }
            ward_rows_free(rows);
            if (err != WARD_ERR_OK)
                return err;
            if (!found) {
                snprintf(ptr, sizeof ptr, "/entries/%zu/account_id", i);
                err = unprocessable(problem, ptr, "no account %s", e->account_id);
                if (err != WARD_ERR_OK)
                    goto fail;
                continue;
            }
            if (strcmp(currency, e->currency->code) != 0) {
                snprintf(ptr, sizeof ptr, "/entries/%zu/currency", i);
                err = unprocessable(problem, ptr, "account %s is in %s, the entry in %s",
                                    e->account_id, currency, e->currency->code);
                if (err != WARD_ERR_OK)
                    goto fail;
                continue;
            }
            moved[m] = (struct moved){.id = e->account_id, .balance = balance, .first = i};
            nmoved++;
        }
        /* an entry naming a known account again is checked against its first lookup */
        int64_t d;
        if (e->debit)
            err = ward_money_add(moved[m].delta, e->amount, &d);
        else
            err = ward_money_sub(moved[m].delta, e->amount, &d);
        if (err != WARD_ERR_OK) {
            snprintf(ptr, sizeof ptr, "/entries/%zu/amount", i);
            err = unprocessable(problem, ptr, "the net change of account %s overflows", e->account_id);
            if (err != WARD_ERR_OK)
                goto fail;
            continue;
        }
        moved[m].delta = d;
    }
    if (*problem != NULL)
        return WARD_ERR_INVAL;
    for (size_t m = 0; m < nmoved; m++) {
        int64_t after = 0;
        if (ward_money_add(moved[m].balance, moved[m].delta, &after) != WARD_ERR_OK) {
            snprintf(ptr, sizeof ptr, "/entries/%zu/amount", moved[m].first);
            err = unprocessable(problem, ptr, "the balance of account %s would leave the range of int64 minor units",
                                moved[m].id);
            if (err != WARD_ERR_OK)
                goto fail;
        }
        moved[m].balance = after;
    }
    if (*problem != NULL)
        return WARD_ERR_INVAL;
    for (size_t m = 0; m < nmoved; m++) {
        if (moved[m].delta == 0)
            continue;
        err = ward_tx_exec(tx, &q_set_balance,
                           (struct ward_param[]){WARD_P_TEXT(moved[m].id), WARD_P_INT(moved[m].balance)},
                           2, NULL);
        if (err != WARD_ERR_OK)
            return err;
    }
    err = ward_tx_exec(tx, &q_insert_txn,
                       (struct ward_param[]){WARD_P_TEXT(txn_id), WARD_P_TEXT(description),
                                             WARD_P_TEXT_OR_NULL(reversal_of), WARD_P_TEXT(created_at),
                                             WARD_P_TEXT_OR_NULL(request_id)},
                       5, NULL);
    if (err != WARD_ERR_OK)
        return err;
    for (size_t i = 0; i < n; i++) {
        const struct acct_entry *e = &entries[i];
        err = ward_tx_exec(tx, &q_insert_entry,
                           (struct ward_param[]){WARD_P_TEXT(e->id), WARD_P_TEXT(txn_id),
                                                 WARD_P_INT((int64_t)i), WARD_P_TEXT(e->account_id),
                                                 WARD_P_TEXT(e->debit ? "debit" : "credit"),
                                                 WARD_P_INT(e->amount), WARD_P_TEXT(e->currency->code)},
                           7, NULL);
        if (err != WARD_ERR_OK)
            return err;
    }
    return WARD_ERR_OK;
fail:
    ward_problem_free(*problem);
    *problem = NULL;
    return err;
}
