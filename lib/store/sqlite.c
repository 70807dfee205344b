/* sqlite.c — the store's SQLite backend: one writer and several readers on a WAL database,
 * statements prepared once per connection and cached by query id, $n placeholders bound
 * by name, SQLite's result codes mapped to the store's errors (DESIGN.md §3). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include <ward/log.h>

#include "store_int.h"

/* A cached statement; busy while a ward_rows reads it, so that it is not reset under it. */
struct slot {
    sqlite3_stmt *stmt;
    bool busy;
};

struct sconn {
    struct ward__conn c; /* first: the store sees only this */
    sqlite3 *db;
    struct slot *slots; /* slots[id - 1] */
    size_t n_slots;
};

/* One value of a result row copied out of SQLite (rows of a write statement). */
struct cell {
    bool null;
    int64_t i64;
    char *text;
};

/* A result set. A read-only statement is stepped lazily: rows come straight from SQLite.
 * A write (INSERT ... RETURNING) is run to its end inside exec and its rows copied, because
 * SQLite counts the changes only when the statement finishes and the store needs the
 * count from exec. */
struct srows {
    struct ward_rows r; /* first */
    struct sconn *conn;
    /* live rows */
    sqlite3_stmt *stmt;
    unsigned id;    /* the cache slot to release; 0: stmt is ours to finalize */
    bool pending;   /* exec stepped onto the first row; next has not returned it yet */
    bool on_row;    /* stmt (or cur) is on a row */
    bool done;
    /* copied rows */
    struct cell *cells;
    size_t n_rows, cur;
    size_t n_cols;
};

static const struct ward__rows_ops rows_ops;

/* Copies the connection's last message into c->error and maps rc (an extended code). */
static enum ward_err fail_rc(struct sconn *sc, int rc)
{
    const char *msg = sc->db != NULL ? sqlite3_errmsg(sc->db) : sqlite3_errstr(rc);

    snprintf(sc->c.error, sizeof sc->c.error, "%s", msg);
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return WARD_ERR_RETRY;
    case SQLITE_CONSTRAINT: /* also a trigger's RAISE(ABORT, ...): SQLITE_CONSTRAINT_TRIGGER */
        return WARD_ERR_CONSTRAINT;
    case SQLITE_NOMEM:
        return WARD_ERR_NOMEM;
    case SQLITE_IOERR:
        /* the file under the connection failed: a fresh connection may do better */
        sc->c.broken = true;
        return WARD_ERR_DB;
    default:
        return WARD_ERR_DB;
    }
}

static enum ward_err run(struct sconn *sc, const char *sql)
{
    int rc = sqlite3_exec(sc->db, sql, NULL, NULL, NULL);

    if (rc != SQLITE_OK)
        return fail_rc(sc, sqlite3_extended_errcode(sc->db));
    return WARD_ERR_OK;
}

/* The file name of url, or NULL when url is not an SQLite URL with an absolute path. */
static const char *filename(const char *url)
{
    static const char scheme[] = "sqlite://";

    if (strcmp(url, "sqlite::memory:") == 0)
        return ":memory:";
    if (strncmp(url, scheme, sizeof scheme - 1) == 0 && url[sizeof scheme - 1] == '/')
        return url + sizeof scheme - 1;
    return NULL;
}

static void sqlite_disconnect(struct ward__conn *c)
{
    struct sconn *sc = (struct sconn *)c;

    if (sc == NULL)
        return;
    for (size_t i = 0; i < sc->n_slots; i++)
        sqlite3_finalize(sc->slots[i].stmt);
    free(sc->slots);
    /* _v2: a statement still held by a forgotten ward_rows delays the close, not crashes */
    sqlite3_close_v2(sc->db);
    free(sc);
}

/* Opens url. Only the writer switches the file to WAL: the mode is stored in the file, so
 * readers (opened after it by the pool) inherit it, and a reader never needs the exclusive
 * lock the switch takes. Readers open read-write all the same: WAL readers write the -shm
 * index. INVAL for a URL that is not "sqlite:///abs/path" or "sqlite::memory:"; DB when
 * the file cannot be opened or set up; STORE_DOWN when it stayed locked past the busy
 * timeout during the set-up; NOMEM. Failures other than NOMEM are logged with SQLite's
 * message (there is no connection to keep it in). */
static enum ward_err sqlite_connect(struct ward_store *s, const char *url, bool writer,
                                    struct ward__conn **out)
{
    enum ward_err err = WARD_ERR_INVAL;
    struct sconn *sc = NULL;
    const char *path = url != NULL ? filename(url) : NULL;
    int64_t ms = s->s.busy_timeout / 1000000;
    int rc;

    *out = NULL;
    if (path == NULL)
        goto fail;
    err = WARD_ERR_NOMEM;
    sc = calloc(1, sizeof *sc);
    if (sc == NULL)
        goto fail;
    sc->c.store = s;
    sc->c.writer = writer;
    rc = sqlite3_open_v2(path, &sc->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        err = sc->db == NULL ? WARD_ERR_NOMEM : WARD_ERR_DB;
        if (sc->db != NULL)
            snprintf(sc->c.error, sizeof sc->c.error, "%s", sqlite3_errmsg(sc->db));
        goto fail;
    }
    sqlite3_extended_result_codes(sc->db, 1);
    if (ms == 0 && s->s.busy_timeout > 0)
        ms = 1;
    sqlite3_busy_timeout(sc->db, ms > INT_MAX ? INT_MAX : ms < 0 ? 0 : (int)ms);
    /* journal_mode answers a row ("wal", or "memory" for :memory:), so run() steps it */
    err = writer ? run(sc, "PRAGMA journal_mode=WAL") : WARD_ERR_OK;
    if (err == WARD_ERR_OK)
        err = run(sc, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON");
    if (err != WARD_ERR_OK) {
        /* BUSY while setting up (another process holds the file): the database is
         * there but not reachable now, which the store treats as down for a while */
        if (err == WARD_ERR_RETRY)
            err = WARD_ERR_STORE_DOWN;
        else if (err != WARD_ERR_NOMEM)
            err = WARD_ERR_DB;
        goto fail;
    }
    *out = &sc->c;
    return WARD_ERR_OK;

fail:
    if (err != WARD_ERR_NOMEM)
        WARD_WARN(s->s.log, NULL, "store: cannot open the SQLite database",
                  WARD_S("url", url != NULL ? url : ""),
                  WARD_S("error", sc != NULL && sc->c.error[0] != '\0' ? sc->c.error
                                                                       : "not an SQLite URL"));
    sqlite_disconnect(sc != NULL ? &sc->c : NULL);
    return err;
}

static enum ward_err sqlite_begin(struct ward__conn *c, enum ward_tx_mode mode)
{
    /* IMMEDIATE takes the write lock now, so a busy database shows at BEGIN (where the
     * runner retries cheaply) and never as a deadlock halfway through the work */
    return run((struct sconn *)c, mode != WARD_TX_READ ? "BEGIN IMMEDIATE" : "BEGIN");
}

static enum ward_err sqlite_commit(struct ward__conn *c)
{
    return run((struct sconn *)c, "COMMIT");
}

static void sqlite_rollback(struct ward__conn *c)
{
    struct sconn *sc = (struct sconn *)c;

    /* SQLite has already rolled back after some errors (IOERR, FULL, NOMEM, BUSY on
     * COMMIT in some cases): "no transaction is active" is then no failure */
    if (run(sc, "ROLLBACK") != WARD_ERR_OK && !sqlite3_get_autocommit(sc->db))
        c->broken = true;
}

/* The cached statement of query id (from 1), prepared on first use. */
static enum ward_err cached(struct sconn *sc, unsigned id, struct slot **out)
{
    if (id > sc->n_slots) {
        size_t n = sc->n_slots * 2 > id ? sc->n_slots * 2 : id;
        struct slot *slots = realloc(sc->slots, n * sizeof *slots);
        if (slots == NULL)
            return WARD_ERR_NOMEM;
        memset(slots + sc->n_slots, 0, (n - sc->n_slots) * sizeof *slots);
        sc->slots = slots;
        sc->n_slots = n;
    }
    *out = &sc->slots[id - 1];
    return WARD_ERR_OK;
}

/* Prepares sql: one statement, nothing after it. persistent: kept in the cache. */
static enum ward_err prepare(struct sconn *sc, const char *sql, bool persistent,
                             sqlite3_stmt **out)
{
    const char *tail = NULL;
    int rc = sqlite3_prepare_v3(sc->db, sql, -1, persistent ? SQLITE_PREPARE_PERSISTENT : 0,
                                out, &tail);
    bool one = *out != NULL;

    if (rc != SQLITE_OK)
        return fail_rc(sc, rc);
    /* a query is exactly one statement: SQLite would silently ignore a second one. What
     * follows the first may only be blanks, semicolons and comments, which prepare to no
     * statement at all. */
    if (one && tail != NULL && *tail != '\0') {
        sqlite3_stmt *next = NULL;
        rc = sqlite3_prepare_v3(sc->db, tail, -1, 0, &next, NULL);
        sqlite3_finalize(next);
        one = rc == SQLITE_OK && next == NULL;
    }
    if (!one) {
        snprintf(sc->c.error, sizeof sc->c.error, "not exactly one SQL statement: %.200s", sql);
        sqlite3_finalize(*out);
        *out = NULL;
        return WARD_ERR_INVAL;
    }
    return WARD_ERR_OK;
}

/* Binds params to stmt's $1..$n, which must be exactly the statement's parameters. */
static enum ward_err bind(struct sconn *sc, sqlite3_stmt *stmt, const struct ward_param *params,
                          size_t n)
{
    if ((size_t)sqlite3_bind_parameter_count(stmt) != n) {
        snprintf(sc->c.error, sizeof sc->c.error, "%zu parameters given, the statement has %d",
                 n, sqlite3_bind_parameter_count(stmt));
        return WARD_ERR_INVAL;
    }
    for (size_t i = 0; i < n; i++) {
        char name[24];
        int rc = SQLITE_OK;
        snprintf(name, sizeof name, "$%zu", i + 1);
        /* "$1" is a named parameter to SQLite; with the count equal to n and every name
         * found, $1..$n are the statement's parameters, each bound once however often
         * it appears */
        int at = sqlite3_bind_parameter_index(stmt, name);
        if (at == 0) {
            snprintf(sc->c.error, sizeof sc->c.error, "the statement has no parameter %s",
                     name);
            return WARD_ERR_INVAL;
        }
        switch (params[i].type) {
        case WARD_PARAM_TEXT:
            /* TRANSIENT: the caller's string is borrowed for the call only */
            rc = params[i].text != NULL
                     ? sqlite3_bind_text(stmt, at, params[i].text, -1, SQLITE_TRANSIENT)
                     : sqlite3_bind_null(stmt, at);
            break;
        case WARD_PARAM_INT64:
            rc = sqlite3_bind_int64(stmt, at, params[i].i64);
            break;
        case WARD_PARAM_BOOL:
            rc = sqlite3_bind_int(stmt, at, params[i].b ? 1 : 0);
            break;
        case WARD_PARAM_NULL:
            rc = sqlite3_bind_null(stmt, at);
            break;
        default:
            snprintf(sc->c.error, sizeof sc->c.error, "parameter %s has an unknown type", name);
            return WARD_ERR_INVAL;
        }
        if (rc != SQLITE_OK)
            return fail_rc(sc, rc);
    }
    return WARD_ERR_OK;
}

/* Gives stmt back: the cache keeps it for the next call, an uncached one is finalized. */
static void release(struct sconn *sc, sqlite3_stmt *stmt, unsigned id)
{
    if (stmt == NULL)
        return;
    if (id == 0) {
        sqlite3_finalize(stmt);
        return;
    }
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    sc->slots[id - 1].busy = false;
}

static void free_cells(struct srows *r)
{
    for (size_t i = 0; r->cells != NULL && i < r->n_rows * r->n_cols; i++)
        free(r->cells[i].text);
    free(r->cells);
}

/* Runs stmt (on its first row, first_rc) to its end, copying the rows into r. */
static enum ward_err copy_rows(struct sconn *sc, sqlite3_stmt *stmt, int first_rc,
                               struct srows *r)
{
    size_t cap = 0;
    int rc = first_rc;

    r->n_cols = (size_t)sqlite3_column_count(stmt);
    for (; rc == SQLITE_ROW; rc = sqlite3_step(stmt)) {
        if (r->n_rows == cap) {
            size_t ncap = cap == 0 ? 4 : cap * 2;
            struct cell *cells = realloc(r->cells, ncap * (r->n_cols ? r->n_cols : 1) *
                                                       sizeof *cells);
            if (cells == NULL)
                return WARD_ERR_NOMEM;
            r->cells = cells;
            cap = ncap;
        }
        struct cell *row = r->cells + r->n_rows * r->n_cols;
        memset(row, 0, r->n_cols * sizeof *row);
        r->n_rows++;
        for (size_t col = 0; col < r->n_cols; col++) {
            row[col].null = sqlite3_column_type(stmt, (int)col) == SQLITE_NULL;
            if (row[col].null)
                continue;
            row[col].i64 = sqlite3_column_int64(stmt, (int)col);
            const unsigned char *text = sqlite3_column_text(stmt, (int)col);
            size_t len = (size_t)sqlite3_column_bytes(stmt, (int)col);
            if (text == NULL)
                return WARD_ERR_NOMEM;
            row[col].text = malloc(len + 1);
            if (row[col].text == NULL)
                return WARD_ERR_NOMEM;
            memcpy(row[col].text, text, len);
            row[col].text[len] = '\0';
        }
    }
    if (rc != SQLITE_DONE)
        return fail_rc(sc, rc);
    r->done = true;
    return WARD_ERR_OK;
}

/* Runs q's statement. The first row is stepped here, so that a failing statement (a
 * constraint, a busy database) fails exec rather than a later ward_rows_next. When rows
 * are wanted while the cached statement still serves an earlier result set of the same
 * query, a fresh statement serves this call and is finalized with its rows. */
static enum ward_err sqlite_exec(struct ward__conn *c, struct ward_query *q, unsigned id,
                                 const struct ward_param *params, size_t n,
                                 struct ward_rows **rows, int64_t *changes)
{
    struct sconn *sc = (struct sconn *)c;
    enum ward_err err = WARD_ERR_INVAL;
    struct slot *slot = NULL;
    struct srows *r = NULL;
    sqlite3_stmt *stmt = NULL;
    sqlite3_int64 before = sqlite3_total_changes64(sc->db);
    int rc;

    if (rows != NULL)
        *rows = NULL;
    if (changes != NULL)
        *changes = 0;
    c->error[0] = '\0';
    if (q == NULL || q->sql == NULL || id == 0 || (n > 0 && params == NULL))
        goto fail;
    err = cached(sc, id, &slot);
    if (err != WARD_ERR_OK)
        goto fail;
    if (slot->busy) {
        id = 0;
        err = prepare(sc, q->sql, false, &stmt);
    } else if (slot->stmt == NULL) {
        err = prepare(sc, q->sql, true, &slot->stmt);
        stmt = slot->stmt;
    } else {
        stmt = slot->stmt;
    }
    if (err != WARD_ERR_OK)
        goto fail;
    err = bind(sc, stmt, params, n);
    if (err != WARD_ERR_OK)
        goto fail;

    if (rows != NULL) {
        err = WARD_ERR_NOMEM;
        r = calloc(1, sizeof *r);
        if (r == NULL)
            goto fail;
        r->r.ops = &rows_ops;
        r->conn = sc;
    }
    rc = sqlite3_step(stmt);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        err = fail_rc(sc, rc);
        goto fail;
    }
    if (r != NULL && rc == SQLITE_ROW && sqlite3_stmt_readonly(stmt)) {
        r->stmt = stmt;
        r->id = id;
        r->pending = true;
        if (id != 0)
            slot->busy = true;
        *rows = &r->r;
        return WARD_ERR_OK; /* no changes: the statement is read-only */
    }
    if (r != NULL) {
        err = copy_rows(sc, stmt, rc, r);
    } else {
        while (rc == SQLITE_ROW)
            rc = sqlite3_step(stmt);
        err = rc == SQLITE_DONE ? WARD_ERR_OK : fail_rc(sc, rc);
    }
    if (err != WARD_ERR_OK)
        goto fail;
    /* sqlite3_changes64 keeps the count of the last INSERT, UPDATE or DELETE however
     * long ago; a statement that changed nothing (DDL, a SELECT, an UPDATE matching no
     * row) must report 0 */
    if (changes != NULL && sqlite3_total_changes64(sc->db) != before)
        *changes = sqlite3_changes64(sc->db);
    release(sc, stmt, id);
    if (r != NULL) {
        r->done = true;
        *rows = &r->r;
    }
    return WARD_ERR_OK;

fail:
    release(sc, stmt, id);
    if (r != NULL)
        free_cells(r);
    free(r);
    return err;
}

static enum ward_err sqlite_script(struct ward__conn *c, const char *sql)
{
    if (sql == NULL)
        return WARD_ERR_INVAL;
    c->error[0] = '\0';
    return run((struct sconn *)c, sql);
}

/* The savepoints of group commit. The deferred foreign keys are checked at KEEP because
 * the COMMIT would refuse them for every member, and the members before this one left none.
 * After a successful statement the transaction must still be open: SQLite rolls it back
 * by itself after IOERR, FULL or NOMEM, and the savepoint then names nothing. */
static enum ward_err sqlite_part(struct ward__conn *c, enum ward__part what)
{
    static const char *const sql[] = {
        [WARD__PART_MARK] = "SAVEPOINT ward_g",
        [WARD__PART_KEEP] = "RELEASE ward_g",
        [WARD__PART_UNDO] = "ROLLBACK TO ward_g; RELEASE ward_g",
    };
    struct sconn *sc = (struct sconn *)c;
    int deferred = 0, high = 0;

    if (what == WARD__PART_KEEP &&
        sqlite3_db_status(sc->db, SQLITE_DBSTATUS_DEFERRED_FKS, &deferred, &high, 0) ==
            SQLITE_OK &&
        deferred > 0) {
        snprintf(c->error, sizeof c->error, "a deferred foreign key constraint is not met");
        return WARD_ERR_CONSTRAINT;
    }
    enum ward_err err = run(sc, sql[what]);
    if (err == WARD_ERR_OK && sqlite3_get_autocommit(sc->db)) {
        snprintf(c->error, sizeof c->error, "the transaction was rolled back");
        err = WARD_ERR_DB;
    }
    return err;
}

static enum ward_err sqlite_lock_migrations(struct ward__conn *c, bool lock)
{
    (void)c; /* BEGIN IMMEDIATE on the one writer already serializes migrations */
    (void)lock;
    return WARD_ERR_OK;
}

static enum ward_err sqlite_ping(struct ward__conn *c)
{
    /* reads the schema, not just "SELECT 1": that touches the file (a read lock and page
     * 1), so a database that became unreadable or corrupt answers DB */
    c->error[0] = '\0';
    return run((struct sconn *)c, "SELECT count(*) FROM sqlite_schema");
}

static bool rows_next(struct ward_rows *rows)
{
    struct srows *r = (struct srows *)rows;

    if (r->stmt == NULL) {
        /* copied rows: cur is one past the current row */
        r->on_row = r->cur < r->n_rows;
        if (r->on_row)
            r->cur++;
        return r->on_row;
    }
    if (r->pending) {
        r->pending = false;
        r->on_row = true;
        return true;
    }
    r->on_row = false;
    if (r->done)
        return false;
    int rc = sqlite3_step(r->stmt);
    if (rc == SQLITE_ROW) {
        r->on_row = true;
        return true;
    }
    r->done = true;
    if (rc != SQLITE_DONE)
        r->r.err = fail_rc(r->conn, rc); /* the rows end early: ward_rows_err says why */
    return false;
}

static size_t rows_columns(const struct ward_rows *rows)
{
    const struct srows *r = (const struct srows *)rows;

    return r->stmt != NULL ? (size_t)sqlite3_column_count(r->stmt) : r->n_cols;
}

/* The copied cell at col of the current row, or NULL (no row, no such column). */
static const struct cell *cell(const struct srows *r, size_t col)
{
    if (!r->on_row || col >= r->n_cols)
        return NULL;
    return &r->cells[(r->cur - 1) * r->n_cols + col];
}

static bool live(const struct srows *r, size_t col)
{
    return r->stmt != NULL && r->on_row && col < (size_t)sqlite3_column_count(r->stmt);
}

static bool rows_is_null(const struct ward_rows *rows, size_t col)
{
    const struct srows *r = (const struct srows *)rows;

    if (r->stmt != NULL)
        return !live(r, col) || sqlite3_column_type(r->stmt, (int)col) == SQLITE_NULL;
    return cell(r, col) == NULL || cell(r, col)->null;
}

static const char *rows_text(const struct ward_rows *rows, size_t col)
{
    const struct srows *r = (const struct srows *)rows;

    if (r->stmt != NULL)
        return live(r, col) ? (const char *)sqlite3_column_text(r->stmt, (int)col) : NULL;
    return cell(r, col) != NULL ? cell(r, col)->text : NULL;
}

static int64_t rows_int64(const struct ward_rows *rows, size_t col)
{
    const struct srows *r = (const struct srows *)rows;

    if (r->stmt != NULL)
        return live(r, col) ? sqlite3_column_int64(r->stmt, (int)col) : 0;
    return cell(r, col) != NULL ? cell(r, col)->i64 : 0;
}

static void rows_free(struct ward_rows *rows)
{
    struct srows *r = (struct srows *)rows;

    if (r == NULL)
        return;
    release(r->conn, r->stmt, r->id);
    free_cells(r);
    free(r);
}

static const struct ward__rows_ops rows_ops = {
    .next = rows_next,
    .columns = rows_columns,
    .is_null = rows_is_null,
    .text = rows_text,
    .int64 = rows_int64,
    .free = rows_free,
};

const struct ward__store_ops ward__sqlite_ops = {
    .connect = sqlite_connect,
    .disconnect = sqlite_disconnect,
    .begin = sqlite_begin,
    .commit = sqlite_commit,
    .rollback = sqlite_rollback,
    .exec = sqlite_exec,
    .script = sqlite_script,
    .lock_migrations = sqlite_lock_migrations,
    .ping = sqlite_ping,
    .part = sqlite_part,
};
