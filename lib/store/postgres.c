/* postgres.c — the store's PostgreSQL backend over libpq: blocking connections, SERIALIZABLE
 * transactions, statements prepared once per connection, text parameters and results. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "store_int.h"

#define NS_PER_S INT64_C(1000000000)

/* The advisory lock that serializes migrations across processes: "ward" then 1. Fixed
 * forever: instances of different versions must still exclude each other. */
#define MIGRATION_LOCK INT64_C(0x7761726400000001)

/* A statement as one connection knows it: prepared as "ward_q<id>" with nparams
 * parameters. */
struct prep {
    bool prepared;
    int nparams;
};

struct pg_conn {
    struct ward__conn base;
    PGconn *pg;
    struct prep *preps; /* indexed by query id - 1 */
    size_t n_preps;
    /* The mapped error of the statement that aborted the current transaction: PostgreSQL
     * refuses every later statement (25P02) and turns COMMIT into a rollback. */
    enum ward_err aborted;
};

struct pg_rows {
    struct ward_rows base;
    PGresult *res;
    int row; /* the current row; -1 before the first ward_rows_next */
    int n_rows;
};

static void ignore_notice(void *arg, const char *message)
{
    /* "relation already exists, skipping" and the like would go to stderr unasked */
    (void)arg;
    (void)message;
}

/* Copies msg (libpq's end in a newline) into c->error. */
static void set_error(struct pg_conn *c, const char *msg)
{
    snprintf(c->base.error, sizeof c->base.error, "%s", msg != NULL ? msg : "");
    size_t n = strlen(c->base.error);
    while (n > 0 && (c->base.error[n - 1] == '\n' || c->base.error[n - 1] == ' '))
        c->base.error[--n] = '\0';
}

/* The store's error for a failed command (res may be NULL); records the message, marks a
 * lost connection broken and remembers what aborted the transaction. */
static enum ward_err fail_with(struct pg_conn *c, const PGresult *res)
{
    const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res != NULL ? PQresultErrorMessage(res) : NULL;
    set_error(c, msg != NULL && *msg != '\0' ? msg : PQerrorMessage(c->pg));
    enum ward_err err = WARD_ERR_DB;
    if (PQstatus(c->pg) == CONNECTION_BAD) {
        /* libpq's own errors (the server closed the connection) carry no SQLSTATE */
        err = WARD_ERR_STORE_DOWN;
    } else if (state == NULL) {
        err = res == NULL && c->base.error[0] == '\0' ? WARD_ERR_NOMEM : WARD_ERR_DB;
    } else if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0) {
        err = WARD_ERR_RETRY; /* serialization failure, deadlock */
    } else if (strncmp(state, "23", 2) == 0) {
        err = WARD_ERR_CONSTRAINT; /* integrity constraint violation, triggers included */
    } else if (strncmp(state, "08", 2) == 0 || strcmp(state, "57P01") == 0 ||
               strcmp(state, "57P02") == 0 || strcmp(state, "57P03") == 0) {
        /* connection exceptions; the server shutting down, crashed or starting up: the
         * session ends (or never begins) whatever libpq says about it yet */
        err = WARD_ERR_STORE_DOWN;
    }
    if (err == WARD_ERR_STORE_DOWN)
        c->base.broken = true;
    if (c->aborted == WARD_ERR_OK && PQtransactionStatus(c->pg) == PQTRANS_INERROR)
        c->aborted = err;
    return err;
}

/* Runs a statement without parameters whose result is not wanted. */
static enum ward_err simple(struct pg_conn *c, const char *sql)
{
    PGresult *res = PQexec(c->pg, sql);
    ExecStatusType st = PQresultStatus(res);
    enum ward_err err = WARD_ERR_OK;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        err = fail_with(c, res);
    PQclear(res);
    return err;
}

/* Whether a message from a server that answered means it refuses us for good (a bad
 * database, user or password) rather than for now (starting up, too many connections).
 * libpq keeps no SQLSTATE for a failed connection, so this reads the (English) text. */
static bool refused_for_good(const char *msg)
{
    static const char *const permanent[] = {
        "does not exist", "authentication failed", "no pg_hba.conf entry",
        "password", "permission denied", "invalid", "not permitted",
    };
    for (size_t i = 0; i < sizeof permanent / sizeof permanent[0]; i++)
        if (strstr(msg, permanent[i]) != NULL)
            return true;
    return false;
}

static void pg_disconnect(struct ward__conn *wc)
{
    struct pg_conn *c = (struct pg_conn *)wc;
    if (c == NULL)
        return;
    PQfinish(c->pg);
    free(c->preps);
    free(c);
}

/* connect_timeout and application_name from the settings; the URL's own application_name
 * wins (fallback_application_name), its connect_timeout does not. */
static enum ward_err pg_connect(struct ward_store *s, const char *url, bool writer,
                                struct ward__conn **out)
{
    (void)writer;
    enum ward_err err = WARD_ERR_NOMEM;
    char *parse_error = NULL;
    PQconninfoOption *opts = NULL;
    struct pg_conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        goto fail;
    c->base.store = s;
    opts = PQconninfoParse(url, &parse_error);
    if (opts == NULL) {
        err = parse_error != NULL ? WARD_ERR_DB : WARD_ERR_NOMEM;
        set_error(c, parse_error);
        goto fail;
    }
    int64_t timeout = s->s.connect_timeout > 0 ? s->s.connect_timeout : 2 * NS_PER_S;
    char seconds[24];
    /* whole seconds, at least 1 (libpq reads 1 as 2 anyway) */
    snprintf(seconds, sizeof seconds, "%" PRId64,
             timeout / NS_PER_S > 0 ? timeout / NS_PER_S : 1);
    const char *const keys[] = {"dbname", "connect_timeout", "fallback_application_name",
                                NULL};
    const char *const values[] = {url, seconds, s->service != NULL ? s->service : "ward",
                                  NULL};
    c->pg = PQconnectdbParams(keys, values, 1);
    if (c->pg == NULL)
        goto fail;
    if (PQstatus(c->pg) != CONNECTION_OK) {
        const char *msg = PQerrorMessage(c->pg);
        set_error(c, msg);
        err = refused_for_good(msg) ? WARD_ERR_DB : WARD_ERR_STORE_DOWN;
        goto fail;
    }
    PQsetNoticeProcessor(c->pg, ignore_notice, NULL);
    PQconninfoFree(opts);
    *out = &c->base;
    return WARD_ERR_OK;
fail:
    /* the reason is lost with c; a store that logs it would need it copied out first */
    PQfreemem(parse_error);
    PQconninfoFree(opts);
    pg_disconnect(c != NULL ? &c->base : NULL);
    return err;
}

static enum ward_err pg_begin(struct ward__conn *wc, enum ward_tx_mode mode)
{
    struct pg_conn *c = (struct pg_conn *)wc;
    c->aborted = WARD_ERR_OK;
    if (mode == WARD_TX_WRITE_ROWS)
        return simple(c, "BEGIN ISOLATION LEVEL READ COMMITTED");
    return simple(c, mode == WARD_TX_READ ? "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY"
                                          : "BEGIN ISOLATION LEVEL SERIALIZABLE");
}

/* A serialization failure may come at COMMIT too (SSI finds the dangerous structure only
 * then): it maps to RETRY like any other. */
static enum ward_err pg_commit(struct ward__conn *wc)
{
    struct pg_conn *c = (struct pg_conn *)wc;
    PGresult *res = PQexec(c->pg, "COMMIT");
    enum ward_err err = WARD_ERR_OK;
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        err = fail_with(c, res);
    } else if (strcmp(PQcmdStatus(res), "ROLLBACK") == 0) {
        /* COMMIT of an aborted transaction succeeds as a rollback: report what aborted it */
        err = c->aborted != WARD_ERR_OK ? c->aborted : WARD_ERR_DB;
        if (c->base.error[0] == '\0')
            set_error(c, "the transaction was aborted by an earlier error and rolled back");
    }
    c->aborted = WARD_ERR_OK;
    PQclear(res);
    return err;
}

static void pg_rollback(struct ward__conn *wc)
{
    struct pg_conn *c = (struct pg_conn *)wc;
    c->aborted = WARD_ERR_OK;
    if (PQstatus(c->pg) == CONNECTION_BAD) {
        c->base.broken = true;
        return;
    }
    PGresult *res = PQexec(c->pg, "ROLLBACK");
    if (PQresultStatus(res) != PGRES_COMMAND_OK ||
        PQtransactionStatus(c->pg) != PQTRANS_IDLE)
        c->base.broken = true;
    PQclear(res);
}

/* ---- rows ---- */

static bool rows_next(struct ward_rows *wr)
{
    struct pg_rows *r = (struct pg_rows *)wr;
    if (r->row >= r->n_rows)
        return false;
    r->row++;
    return r->row < r->n_rows;
}

static size_t rows_columns(const struct ward_rows *wr)
{
    const struct pg_rows *r = (const struct pg_rows *)wr;
    int n = PQnfields(r->res);
    return n > 0 ? (size_t)n : 0;
}

/* Whether (current row, col) names a value; a bad column reads as NULL. */
static bool rows_valid(const struct pg_rows *r, size_t col)
{
    return r->row >= 0 && r->row < r->n_rows && col < (size_t)PQnfields(r->res);
}

static bool rows_is_null(const struct ward_rows *wr, size_t col)
{
    const struct pg_rows *r = (const struct pg_rows *)wr;
    return !rows_valid(r, col) || PQgetisnull(r->res, r->row, (int)col);
}

static const char *rows_text(const struct ward_rows *wr, size_t col)
{
    const struct pg_rows *r = (const struct pg_rows *)wr;
    if (rows_is_null(wr, col))
        return NULL;
    return PQgetvalue(r->res, r->row, (int)col);
}

static int64_t rows_int64(const struct ward_rows *wr, size_t col)
{
    const char *text = rows_text(wr, col);
    return text != NULL ? (int64_t)strtoll(text, NULL, 10) : 0;
}

static void rows_free(struct ward_rows *wr)
{
    struct pg_rows *r = (struct pg_rows *)wr;
    if (r == NULL)
        return;
    PQclear(r->res);
    free(r);
}

static const struct ward__rows_ops pg_rows_ops = {
    .next = rows_next,
    .columns = rows_columns,
    .is_null = rows_is_null,
    .text = rows_text,
    .int64 = rows_int64,
    .free = rows_free,
};

/* ---- statements ---- */

/* Prepares q as "ward_q<id>" on c unless it is already, and learns its parameter count. */
static enum ward_err prepare(struct pg_conn *c, struct ward_query *q, unsigned id,
                             const char *name, int *nparams)
{
    enum ward_err err = WARD_ERR_NOMEM;
    PGresult *res = NULL;
    if (id > c->n_preps) {
        size_t n = c->n_preps > 0 ? c->n_preps : 16;
        while (n < id)
            n *= 2;
        struct prep *grown = realloc(c->preps, n * sizeof *grown);
        if (grown == NULL)
            goto fail;
        memset(grown + c->n_preps, 0, (n - c->n_preps) * sizeof *grown);
        c->preps = grown;
        c->n_preps = n;
    }
    struct prep *p = &c->preps[id - 1];
    if (!p->prepared) {
        res = PQprepare(c->pg, name, q->sql, 0, NULL);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            err = fail_with(c, res);
            goto fail;
        }
        PQclear(res);
        res = PQdescribePrepared(c->pg, name);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            err = fail_with(c, res);
            /* prepared but not described: drop it so that the next try starts over */
            PQclear(res);
            char dealloc[48];
            snprintf(dealloc, sizeof dealloc, "DEALLOCATE %s", name);
            res = PQexec(c->pg, dealloc);
            goto fail;
        }
        p->nparams = PQnparams(res);
        p->prepared = true;
    }
    *nparams = p->nparams;
    err = WARD_ERR_OK;
fail:
    PQclear(res);
    return err;
}

static enum ward_err pg_exec(struct ward__conn *wc, struct ward_query *q, unsigned id,
                             const struct ward_param *params, size_t n,
                             struct ward_rows **rows, int64_t *changes)
{
    struct pg_conn *c = (struct pg_conn *)wc;
    enum ward_err err = WARD_ERR_INVAL;
    const char **values = NULL;
    char(*ints)[24] = NULL;
    PGresult *res = NULL;
    struct pg_rows *r = NULL;
    int nparams = 0;
    if (rows != NULL)
        *rows = NULL;
    if (changes != NULL)
        *changes = 0;
    if (q == NULL || q->sql == NULL || id == 0 || (n > 0 && params == NULL) || n > 65535)
        goto fail;
    char name[24];
    snprintf(name, sizeof name, "ward_q%u", id);
    err = prepare(c, q, id, name, &nparams);
    if (err != WARD_ERR_OK)
        goto fail;
    if ((size_t)nparams != n) {
        err = WARD_ERR_INVAL;
        snprintf(c->base.error, sizeof c->base.error,
                 "statement %u takes %d parameters, %zu given", id, nparams, n);
        goto fail;
    }
    err = WARD_ERR_NOMEM;
    if (n > 0) {
        values = calloc(n, sizeof *values);
        ints = calloc(n, sizeof *ints);
        if (values == NULL || ints == NULL)
            goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        switch (params[i].type) {
        case WARD_PARAM_NULL:
            values[i] = NULL;
            break;
        case WARD_PARAM_TEXT:
            values[i] = params[i].text; /* a NULL string is SQL NULL too */
            break;
        case WARD_PARAM_INT64:
            snprintf(ints[i], sizeof ints[i], "%" PRId64, params[i].i64);
            values[i] = ints[i];
            break;
        case WARD_PARAM_BOOL:
            values[i] = params[i].b ? "true" : "false";
            break;
        default:
            err = WARD_ERR_INVAL;
            goto fail;
        }
    }
    if (rows != NULL) {
        r = calloc(1, sizeof *r);
        if (r == NULL)
            goto fail;
    }
    res = PQexecPrepared(c->pg, name, (int)n, values, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        err = fail_with(c, res);
        goto fail;
    }
    const char *tag = PQcmdStatus(res);
    if (changes != NULL && (strncmp(tag, "INSERT", 6) == 0 || strncmp(tag, "UPDATE", 6) == 0 ||
                            strncmp(tag, "DELETE", 6) == 0 || strncmp(tag, "MERGE", 5) == 0))
        *changes = atoll(PQcmdTuples(res));
    if (r != NULL) {
        r->base.ops = &pg_rows_ops;
        r->res = res;
        r->row = -1;
        r->n_rows = PQntuples(res);
        res = NULL;
        *rows = &r->base;
        r = NULL;
    }
    err = WARD_ERR_OK;
fail:
    PQclear(res);
    free(r);
    free(values);
    free(ints);
    return err;
}

/* Several statements in one simple-query message; the first that fails stops the rest. */
static enum ward_err pg_script(struct ward__conn *wc, const char *sql)
{
    struct pg_conn *c = (struct pg_conn *)wc;
    if (sql == NULL)
        return WARD_ERR_INVAL;
    return simple(c, sql);
}

static enum ward_err pg_lock_migrations(struct ward__conn *wc, bool lock)
{
    char sql[64];
    snprintf(sql, sizeof sql, "SELECT pg_advisory_%slock(%" PRId64 ")", lock ? "" : "un",
             MIGRATION_LOCK);
    return simple((struct pg_conn *)wc, sql);
}

static enum ward_err pg_ping(struct ward__conn *wc)
{
    struct pg_conn *c = (struct pg_conn *)wc;
    if (PQstatus(c->pg) == CONNECTION_BAD) {
        c->base.broken = true;
        set_error(c, PQerrorMessage(c->pg));
        return WARD_ERR_STORE_DOWN;
    }
    return simple(c, "SELECT 1");
}

const struct ward__store_ops ward__postgres_ops = {
    .connect = pg_connect,
    .disconnect = pg_disconnect,
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .exec = pg_exec,
    .script = pg_script,
    .lock_migrations = pg_lock_migrations,
    .ping = pg_ping,
};
