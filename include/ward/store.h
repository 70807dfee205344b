/* store.h — the services' database: one interface over SQLite (default) and PostgreSQL
 * (libpq). Prepared statements only, one transaction runner that retries what the
 * database asks to retry, versioned per-service migrations (DESIGN.md §3, STYLE.md 7). */
#ifndef WARD_STORE_H
#define WARD_STORE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ward/clock.h>
#include <ward/err.h>
#include <ward/http.h>
#include <ward/retry.h>

struct ward_store;
struct ward_tx;
struct ward_rows;
struct ward_log;
struct ward_metrics;

/* Which database a store talks to. */
enum ward_store_kind { WARD_STORE_SQLITE = 1, WARD_STORE_POSTGRES = 2 };

/* One SQL statement, written once with $1, $2 ... placeholders (PostgreSQL's; SQLite reads
 * them as named parameters) and declared static next to its only user:
 *     static struct ward_query q_get = WARD_QUERY("SELECT ... WHERE id = $1");
 * The store prepares it on first use on each connection and keeps it prepared. The text
 * must not change; it is never built from input. */
struct ward_query {
    const char *sql;
    _Atomic unsigned id; /* assigned on first use; internal */
};
#define WARD_QUERY(text) {.sql = (text)}

/* One migration: a version (1, 2, ... in order, never renumbered) and its SQL, one text
 * per backend when they differ (DDL types, triggers), several statements allowed. */
struct ward_migration {
    int version;
    const char *sqlite; /* run on SQLite */
    const char *postgres; /* run on PostgreSQL; NULL = the same text as sqlite */
};

struct ward_store_settings {
    const char *url;     /* "sqlite:///abs/path.db" (created if missing), "sqlite::memory:"
                          * (tests; one shared in-memory database), "postgresql://..." or
                          * "postgres://..." (libpq's URI); required; copied */
    const char *service; /* whose migrations these are (several services may share one
                          * database); required; copied */
    const struct ward_migration *migrations; /* applied at ward_store_open, in a
                                              * transaction each; borrowed for the call */
    size_t n_migrations;
    int pool_size;           /* PostgreSQL connections; SQLite readers (plus one writer);
                              * 1..64; default 4 */
    int64_t busy_timeout;    /* SQLite's busy_timeout, ns; default 5 s */
    int64_t connect_timeout; /* PostgreSQL's connect_timeout, ns (whole seconds); default 2 s */
    int64_t acquire_timeout; /* longest wait for a free connection, ns; default 5 s */
    uint32_t max_attempts;   /* transaction attempts on BUSY / 40001 / 40P01; default 10 */
    int group_max;           /* SQLite file: most write transactions one COMMIT (one fsync)
                              * holds when several threads write at once (group commit,
                              * docs/lib/store.md); 1 = each alone; 1..1024; default 64 */
    struct ward_retry_policy backoff; /* between attempts; default base 2 ms, cap 200 ms,
                                       * full jitter */
    const struct ward_clock *clock;   /* backoff sleeps; NULL = real */
    struct ward_log *log;             /* borrowed; NULL = silent */
};

/* A parameter of a statement; the string is borrowed for the call. */
enum ward_param_type { WARD_PARAM_NULL = 0, WARD_PARAM_TEXT, WARD_PARAM_INT64, WARD_PARAM_BOOL };
struct ward_param {
    enum ward_param_type type;
    const char *text;
    int64_t i64;
    bool b;
};
#define WARD_P_TEXT(s) ((struct ward_param){.type = WARD_PARAM_TEXT, .text = (s)})
#define WARD_P_INT(v) ((struct ward_param){.type = WARD_PARAM_INT64, .i64 = (v)})
#define WARD_P_BOOL(v) ((struct ward_param){.type = WARD_PARAM_BOOL, .b = (v)})
#define WARD_P_NULL ((struct ward_param){.type = WARD_PARAM_NULL})
/* A NULL string becomes SQL NULL. */
#define WARD_P_TEXT_OR_NULL(s) ((s) != NULL ? WARD_P_TEXT(s) : WARD_P_NULL)

/* How a transaction begins. WRITE: SQLite BEGIN IMMEDIATE on the one writer connection;
 * PostgreSQL SERIALIZABLE. READ: SQLite a deferred transaction on a reader; PostgreSQL
 * SERIALIZABLE READ ONLY. WRITE_ROWS: a write whose correctness rests only on row locks
 * and on statements that check the state they change (UPDATE ... WHERE the expected
 * state, then its changed-row count; INSERT under a unique key), never on something it
 * read staying true: PostgreSQL READ COMMITTED, so that transactions on different rows
 * never fail to serialize because their index pages are near (SSI's false positives
 * under load); SQLite the same as WRITE (its one writer serializes all writes). */
enum ward_tx_mode { WARD_TX_READ = 0, WARD_TX_WRITE = 1, WARD_TX_WRITE_ROWS = 2 };

/* The work of one transaction. Return OK to commit; any other error rolls back and is
 * returned by ward_store_tx; WARD_ERR_RETRY (or a statement that failed with it) rolls
 * back and runs fn again after a backoff. fn may therefore run several times: it must not
 * answer a request or change anything outside the database before it returns OK, and
 * should reset what it computes at its start. */
typedef enum ward_err (*ward_tx_fn)(struct ward_tx *tx, void *arg);

/* Fills s with the defaults above (url and service NULL). */
void ward_store_settings_default(struct ward_store_settings *s);

/* Opens the database and applies the migrations of s->service newer than the recorded
 * version, each in its own write transaction with its version recorded in
 * ward_migrations(service, version, applied_at) — safe when several instances start at
 * once (PostgreSQL: an advisory lock; SQLite: the one writer). A database that cannot be
 * reached yet is no error: the store opens with its migrations pending, transactions
 * answer STORE_DOWN, and the first ward_store_ping that reaches it migrates (a service
 * starts unready rather than not at all). INVAL on bad settings or an unknown URL scheme;
 * DB when a migration fails or SQLite cannot open its file; NOMEM. On success the caller
 * owns *out. */
WARD_MUST_CHECK enum ward_err ward_store_open(const struct ward_store_settings *s,
                                              struct ward_store **out);

/* Closes every connection and frees s. No transaction may run. NULL is a no-op. */
void ward_store_close(struct ward_store *s);

enum ward_store_kind ward_store_kind(const struct ward_store *s);

/* Runs fn(tx, arg) in a transaction of the given mode: begin, fn, commit. On a SQLite file,
 * write transactions of several threads may share one database transaction and COMMIT
 * (group_max), each fn in its own savepoint, on its caller's thread; ward_store_tx still
 * returns OK only after the COMMIT that made fn's work durable. Retries (with
 * backoff, at most max_attempts in all) when SQLite is busy or locked, or PostgreSQL
 * reports a serialization failure (40001) or a deadlock (40P01), or fn returns RETRY; a
 * lost connection is reconnected and retried once. Returns fn's error (after a rollback),
 * OK after a commit, RETRY when the attempts ran out, STORE_DOWN when the database cannot
 * be reached, TIMEOUT when no connection came free within acquire_timeout, DB for other
 * database errors. Thread-safe: transactions on a store run concurrently, each on its own
 * connection (SQLite writers one at a time). */
WARD_MUST_CHECK enum ward_err ward_store_tx(struct ward_store *s, enum ward_tx_mode mode,
                                            ward_tx_fn fn, void *arg);

/* Runs q with params in tx. A statement that fails ends the transaction's usefulness on
 * PostgreSQL (every later statement fails until the rollback): return its error from the
 * work (or RETRY to run it again), do not carry on. When rows is not NULL, *rows gets the result set (freed with
 * ward_rows_free, before the transaction ends); else the result is dropped. Returns OK;
 * CONSTRAINT (a unique, foreign-key, check or not-null violation, or a trigger refusing the
 * change: the caller's conflict to report); RETRY (busy, serialization failure, deadlock:
 * return it from fn); STORE_DOWN (connection lost); DB (anything else: a bug); INVAL for
 * a NULL argument or the wrong number of parameters; NOMEM. */
WARD_MUST_CHECK enum ward_err ward_tx_exec(struct ward_tx *tx, struct ward_query *q,
                                           const struct ward_param *params, size_t n,
                                           struct ward_rows **rows);

/* Rows changed by the last statement ward_tx_exec ran in tx (an INSERT, UPDATE or DELETE;
 * 0 after any other). */
int64_t ward_tx_changes(const struct ward_tx *tx);

/* The message of the last database error in tx (for logs), or "". */
const char *ward_tx_error(const struct ward_tx *tx);

/* Moves to the next row: true while there is one. */
bool ward_rows_next(struct ward_rows *r);
/* After ward_rows_next returned false: OK at the true end, else why the rows ended early
 * (RETRY, STORE_DOWN, DB...: return it from the transaction's work). */
enum ward_err ward_rows_err(const struct ward_rows *r);
/* Columns of the current row, from 0. A NULL value: text NULL, int 0, bool false. Text is
 * owned by r and valid until the next ward_rows_next or ward_rows_free. */
size_t ward_rows_columns(const struct ward_rows *r);
bool ward_rows_is_null(const struct ward_rows *r, size_t col);
const char *ward_rows_text(const struct ward_rows *r, size_t col);
int64_t ward_rows_int64(const struct ward_rows *r, size_t col);
bool ward_rows_bool(const struct ward_rows *r, size_t col);
void ward_rows_free(struct ward_rows *r);

/* Whether the database answers now (SELECT 1 on a connection of the pool, within
 * connect_timeout); for /ready. Also applies migrations left pending by an open that could
 * not reach the database. OK, STORE_DOWN, or DB when a pending migration fails (or
 * migrations are pending and did not run). Thread-safe. */
WARD_MUST_CHECK enum ward_err ward_store_ping(struct ward_store *s);

/* Registers ward_store_transactions_total{service,result} (committed, rolled_back, and
 * error: a transaction the database failed — down, out of retries, a database error),
 * ward_store_retries_total{service} and ward_store_commits_total{service} (the database
 * COMMITs of write transactions, each a sync: a SQLite group counts once, so committed
 * write transactions / commits is the mean group size; transactions_total counts reads
 * too). reg must outlive s. INVAL, NOMEM. */
WARD_MUST_CHECK enum ward_err ward_store_export(struct ward_store *s, struct ward_metrics *reg);

/* Answers req for a store error a handler cannot do anything about: STORE_DOWN, TIMEOUT
 * and RETRY are 503 unavailable with Retry-After: 1 (the client may retry, with its
 * Idempotency-Key); CONSTRAINT is 409 conflict; anything else is logged and 500. */
void ward_store_respond_error(struct ward_req *req, enum ward_err err);

#endif
