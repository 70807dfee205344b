/* store_int.h — what the store's common part (store.c: pool, transaction runner,
 * migrations, metrics) asks of a backend (sqlite.c, postgres.c): connections, one
 * transaction at a time on each, prepared statements cached per connection, result rows. */
#ifndef WARD_LIB_STORE_INT_H
#define WARD_LIB_STORE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <ward/store.h>

/* One connection of a backend; the backend's own struct starts with this one. */
struct ward__conn {
    struct ward_store *store;
    bool writer;  /* SQLite: the one writer connection */
    bool broken;  /* the connection was lost: store.c drops it instead of reusing it */
    char error[256]; /* the last error's message */
};

/* One result set; the backend's own struct starts with this one. err: why next returned
 * false early (OK at the true end), set by the backend. */
struct ward_rows {
    const struct ward__rows_ops *ops;
    enum ward_err err;
};

struct ward__rows_ops {
    bool (*next)(struct ward_rows *r);
    size_t (*columns)(const struct ward_rows *r);
    bool (*is_null)(const struct ward_rows *r, size_t col);
    const char *(*text)(const struct ward_rows *r, size_t col); /* NULL for SQL NULL */
    int64_t (*int64)(const struct ward_rows *r, size_t col);    /* 0 for NULL */
    void (*free)(struct ward_rows *r);
};

/* A backend. Every function runs on one connection from one thread at a time. Errors are
 * the store's: RETRY (busy, locked, 40001, 40P01), STORE_DOWN (the connection is gone:
 * also set c->broken), CONSTRAINT (23xxx, SQLITE_CONSTRAINT, a trigger's RAISE(ABORT) /
 * RAISE EXCEPTION with SQLSTATE 23xxx), DB (the rest; message in c->error), NOMEM. */
struct ward__store_ops {
    /* A new connection to url (writer: SQLite's writer; PostgreSQL ignores it). Returns
     * STORE_DOWN when the database cannot be reached, DB when it refuses (bad path, bad
     * credentials), NOMEM. */
    enum ward_err (*connect)(struct ward_store *s, const char *url, bool writer,
                             struct ward__conn **out);
    void (*disconnect)(struct ward__conn *c);
    enum ward_err (*begin)(struct ward__conn *c, enum ward_tx_mode mode);
    enum ward_err (*commit)(struct ward__conn *c);
    void (*rollback)(struct ward__conn *c); /* best effort; marks broken on failure */
    /* Runs q (prepared once per connection, cached by q's id, an index from 1) with the
     * n parameters; rows as ward_tx_exec; *changes gets the rows an INSERT, UPDATE or
     * DELETE changed. INVAL when n differs from the statement's parameter count. */
    enum ward_err (*exec)(struct ward__conn *c, struct ward_query *q, unsigned id,
                          const struct ward_param *params, size_t n, struct ward_rows **rows,
                          int64_t *changes);
    /* Runs a script of several statements without parameters (migrations), inside the
     * current transaction. */
    enum ward_err (*script)(struct ward__conn *c, const char *sql);
    /* Takes (lock) or gives back (!lock) the lock that serializes migrations across
     * processes, outside any transaction, so that the migration's transaction takes its
     * snapshot after the previous migrator committed (PostgreSQL: a session-level
     * pg_advisory_lock; SQLite: nothing, BEGIN IMMEDIATE on the writer already does). */
    enum ward_err (*lock_migrations)(struct ward__conn *c, bool lock);
    /* A round trip (SELECT 1) outside any transaction. */
    enum ward_err (*ping)(struct ward__conn *c);
};

extern const struct ward__store_ops ward__sqlite_ops;
extern const struct ward__store_ops ward__postgres_ops;

/* The parts of the store a backend reads. */
struct ward_store {
    enum ward_store_kind kind;
    const struct ward__store_ops *ops;
    struct ward_store_settings s; /* url and service point to the copies below */
    char *url, *service;
    bool memory; /* sqlite::memory: one connection serves everything */
    /* the pools: SQLite's writer (one) and readers; PostgreSQL uses readers only */
    pthread_mutex_t lock;
    pthread_cond_t freed; /* a connection came back (CLOCK_MONOTONIC) */
    struct ward__conn **idle_r, **idle_w;
    size_t n_idle_r, n_idle_w;
    size_t open_r, open_w; /* connections that exist, idle or busy */
    size_t max_r, max_w;
    pthread_mutex_t migrate_lock;
    atomic_bool migrated;
    struct ward_migration *migrations; /* copies */
    size_t n_migrations;
    _Atomic(struct ward_metric *) m_tx[3], m_retries;
};

struct ward_tx {
    struct ward_store *store;
    struct ward__conn *conn;
    int64_t changes;
};

#endif
