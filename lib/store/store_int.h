/* store_int.h — what the store's common part (store.c: pool, transaction runner,
 * migrations, metrics; group.c: SQLite's group commit) asks of a backend (sqlite.c,
 * postgres.c): connections, one transaction at a time on each, prepared statements cached
 * per connection, result rows. */
#ifndef WARD_LIB_STORE_INT_H
#define WARD_LIB_STORE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <ward/store.h>

struct ward_metric;

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

/* One member's part of a shared write transaction (group commit): MARK starts it, KEEP
 * ends it keeping its work, UNDO ends it undoing its work. */
enum ward__part { WARD__PART_MARK, WARD__PART_KEEP, WARD__PART_UNDO };

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
    /* Group commit (SQLite; NULL where the backend has none): a savepoint around one
     * member's work inside the current write transaction. KEEP answers CONSTRAINT, keeping
     * the savepoint, when the work left a deferred foreign key unresolved (the COMMIT would
     * fail for the whole group): the caller then UNDOes it. Any other error means the
     * shared transaction cannot go on (the statement failed, or the database already rolled
     * the transaction back after IOERR, FULL, NOMEM): the group is broken. */
    enum ward_err (*part)(struct ward__conn *c, enum ward__part what);
};

extern const struct ward__store_ops ward__sqlite_ops;
extern const struct ward__store_ops ward__postgres_ops;

/* A thread whose work the open group kept, waiting for the group's outcome; lives on its
 * stack. */
struct ward__member {
    struct ward__member *next;
    enum ward_err err; /* the outcome, once done */
    bool done;
};

/* Group commit on SQLite's writer (group.c): the connection is handed from member to
 * member inside one transaction, then committed once. lock guards waiting, busy, and the
 * kept list with its records; conn, members and broken belong to the thread that has the
 * connection (busy), the lock hand-over ordering them between threads. */
struct ward__group {
    pthread_mutex_t lock;
    pthread_cond_t turn;  /* the connection came free (CLOCK_MONOTONIC) */
    pthread_cond_t ended; /* a group ended: its kept members' outcomes are set */
    size_t waiting;       /* threads waiting for the connection */
    bool busy;            /* a thread opens the group or runs its work in it */
    struct ward__conn *conn;     /* the writer, in a transaction; NULL: no group is open */
    int members;                 /* members that ran in the open group */
    bool broken;                 /* the transaction cannot go on: no one joins, roll back */
    struct ward__member *kept;   /* members whose work is kept, waiting for the outcome */
};

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
    bool grouped; /* write transactions go through the group (a SQLite file, group_max > 1) */
    struct ward__group group;
    _Atomic(struct ward_metric *) m_tx[3], m_retries, m_commits;
};

struct ward_tx {
    struct ward_store *store;
    struct ward__conn *conn;
    int64_t changes;
};

/* The results ward_store_transactions_total counts: s->m_tx[result]. */
enum ward__tx_result { WARD__TX_COMMITTED, WARD__TX_ROLLED_BACK, WARD__TX_ERROR };

/* store.c. A connection for a transaction of mode (SQLite's writer for WRITE), waiting up
 * to acquire_timeout: OK, TIMEOUT, or connect's error. */
enum ward_err ward__conn_acquire(struct ward_store *s, enum ward_tx_mode mode,
                                 struct ward__conn **out);
/* Gives c back to its pool, or closes it when it is broken. Any thread may. */
void ward__conn_release(struct ward_store *s, struct ward__conn *c);
/* Adds 1 to a metric that ward_store_export may not have set yet (then a no-op). */
void ward__store_count(_Atomic(struct ward_metric *) *m);

/* group.c. ward__group_init: SYSTEM when a mutex or condition cannot be made. fini: no
 * group may be open. */
enum ward_err ward__group_init(struct ward__group *g);
void ward__group_fini(struct ward__group *g);
/* One attempt of a write transaction through the group: fn runs on this thread in its own
 * savepoint of the shared transaction. Returns fn's error (its part undone, without
 * waiting for the commit), else the group's outcome: OK once the COMMIT that holds the
 * work succeeded, the COMMIT's error, or RETRY when the group broke; TIMEOUT when the
 * connection did not come free within acquire_timeout; begin's or acquire's error when
 * opening a group failed. *began: fn ran. Counts the transaction's result. */
enum ward_err ward__group_tx(struct ward_store *s, ward_tx_fn fn, void *arg, bool *began);
/* Threads waiting for the writer of s right now (tests). */
size_t ward__store_writers_waiting(struct ward_store *s);

#endif
