/* accounting.h — the internals of accounting-service, a double-entry ledger
 * (DESIGN.md §6): the schema, the shared queries and JSON renderers, the handlers. */
#ifndef ACCT_ACCOUNTING_H
#define ACCT_ACCOUNTING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <ward/http.h>
#include <ward/id.h>
#include <ward/idempotency.h>
#include <ward/money.h>
#include <ward/store.h>

/* The most entries one transaction may have. */
#define ACCT_MAX_ENTRIES 100
#define ACCT_NAME_MAX 100
#define ACCT_DESCRIPTION_MAX 500

/* What every handler reaches: the service's store and idempotency keys (both owned by
 * the service frame). */
struct acct_ctx {
    struct ward_store *store;
    struct ward_idem *idem;
};

/* The schema: accounts, transactions, entries (append-only, enforced by triggers) and
 * the idempotency keys. */
extern const struct ward_migration acct_migrations[];
extern const size_t acct_n_migrations;

/* "debit" for asset and expense accounts, "credit" for liability, equity and revenue;
 * NULL for an unknown type. */
const char *acct_normal_balance(const char *type);

/* The account of the current row of a query selecting, in order: seq, id, name,
 * currency, type, balance, created_at, created_request_id. NULL on NOMEM or a currency
 * the service does not know (a corrupt row). The caller owns the result. */
json_t *acct_account_json(struct ward_rows *rows);

/* Appends to *out (a JSON array it creates when NULL) each transaction whose rows the
 * query selected (the columns of ACCT_TXN_COLUMNS, ordered by transaction seq then entry
 * position), at most max of them; seqs (room for max) gets their sequence numbers.
 * *count gets how many. OK, NOMEM, DB (a corrupt row), or the rows' own error. */
#define ACCT_TXN_COLUMNS                                                              \
    "t.seq, t.id, t.description, t.created_at, t.created_request_id, t.reversal_of, " \
    "r.id, r.created_at, r.created_request_id, e.id, e.account_id, e.direction, e.amount, e.currency"
WARD_MUST_CHECK enum ward_err acct_txn_rows_json(struct ward_rows *rows, size_t max, json_t **out,
                                                 int64_t *seqs, size_t *count);

/* The transaction id, fully rendered, into *out (caller owns it): NOT_FOUND when there is
 * none, else as acct_txn_rows_json. */
WARD_MUST_CHECK enum ward_err acct_txn_load(struct ward_tx *tx, const char *id, json_t **out);

/* A parsed, validated entry of a transaction being posted. */
struct acct_entry {
    char id[WARD_ID_MAX];
    const char *account_id;
    bool debit;
    int64_t amount;
    const struct ward_currency *currency;
};

/* Posts entries[0..n) as transaction txn_id inside tx: checks every account exists and
 * has the entry's currency, moves the accounts' balances (never beyond int64: checked),
 * inserts the transaction header and the entries. On a definite client fault it returns
 * INVAL with *problem set (422, naming /entries/N/...; the caller owns it); else OK or
 * the store's error (CONSTRAINT when the reversal_of link is taken). */
WARD_MUST_CHECK enum ward_err acct_post_entries(struct ward_tx *tx, const char *txn_id,
                                                const char *description, const char *reversal_of,
                                                const struct acct_entry *entries, size_t n,
                                                const char *created_at, const char *request_id,
                                                struct ward_problem **problem);

/* Gives up a claimed key (ward_idem_release); a failure only leaves it to its lease. */
void acct_release(struct ward_idem *idem, const struct ward_idem_claim *c);

/* Adds a validation error to *p (created as a 400 validation problem when NULL) for each
 * member of obj not named in allowed[0..n), at prefix + "/" + name. NOMEM. */
WARD_MUST_CHECK enum ward_err acct_reject_unknown(const json_t *obj, const char *const *allowed,
                                                  size_t n, const char *prefix,
                                                  struct ward_problem **p);

/* Serializes j compactly into a new string (caller frees); NULL on NOMEM. Takes j. */
char *acct_dump(json_t *j);

/* The handlers; arg is the struct acct_ctx. */
void acct_accounts_post(struct ward_req *req, void *arg);
void acct_accounts_list(struct ward_req *req, void *arg);
void acct_account_get(struct ward_req *req, void *arg);
void acct_transactions_post(struct ward_req *req, void *arg);
void acct_transactions_list(struct ward_req *req, void *arg);
void acct_transaction_get(struct ward_req *req, void *arg);
void acct_transaction_reverse(struct ward_req *req, void *arg);
void acct_ledger_balance(struct ward_req *req, void *arg);

#endif
