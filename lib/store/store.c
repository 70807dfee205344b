/* store.c — the store's common part: settings and URL, the connection pools, the one
 * transaction runner (begin, work, commit; retry what the database asks to retry), the
 * per-service migrations, readiness and metrics. The backends (sqlite.c, postgres.c) only
 * talk to their database. */
#include "store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ward/log.h>
#include <ward/metrics.h>
#include <ward/thread.h>

#define NS_PER_MS INT64_C(1000000)
#define NS_PER_S INT64_C(1000000000)

/* Query ids are process-wide, as the queries are (a static query may serve several
 * stores): the one mutable global here, only ever incremented, so that each connection
 * can cache its prepared statements in an array indexed by id. */
static atomic_uint next_query_id;

static unsigned query_id(struct ward_query *q)
{
    unsigned id = atomic_load_explicit(&q->id, memory_order_acquire);
    if (id != 0)
        return id;
    unsigned fresh = atomic_fetch_add(&next_query_id, 1) + 1;
    /* another thread may have won: its id stands, ours is simply never used */
    if (atomic_compare_exchange_strong(&q->id, &id, fresh))
        return fresh;
    return id;
}

void ward_store_settings_default(struct ward_store_settings *s)
{
    *s = (struct ward_store_settings){
        .pool_size = 4,
        .busy_timeout = 5 * NS_PER_S,
        .connect_timeout = 2 * NS_PER_S,
        .acquire_timeout = 5 * NS_PER_S,
        .max_attempts = 10,
        .group_max = 64,
    };
    ward_retry_policy_default(&s->backoff);
    s->backoff.max_attempts = UINT32_MAX;
    s->backoff.base_ns = 2 * NS_PER_MS;
    s->backoff.cap_ns = 200 * NS_PER_MS;
}

static bool has_prefix(const char *s, const char *p)
{
    return strncmp(s, p, strlen(p)) == 0;
}

/* The backend of url, or 0. */
static enum ward_store_kind kind_of(const char *url, bool *memory)
{
    *memory = strcmp(url, "sqlite::memory:") == 0;
    if (*memory || (has_prefix(url, "sqlite:///") && url[10] != '\0'))
        return WARD_STORE_SQLITE;
    if ((has_prefix(url, "postgresql://") || has_prefix(url, "postgres://")))
        return WARD_STORE_POSTGRES;
    return 0;
}

static bool settings_ok(const struct ward_store_settings *s)
{
    if (s->url == NULL || s->service == NULL || s->service[0] == '\0' ||
        (s->n_migrations > 0 && s->migrations == NULL))
        return false;
    if (s->pool_size < 1 || s->pool_size > 64 || s->busy_timeout < 0 ||
        s->connect_timeout < NS_PER_S || s->acquire_timeout < NS_PER_MS || s->max_attempts < 1 ||
        s->group_max < 1 || s->group_max > 1024)
        return false;
    for (size_t i = 0; i < s->n_migrations; i++) /* 1, 2, 3 ... with SQL */
        if (s->migrations[i].version != (int)i + 1 || s->migrations[i].sqlite == NULL)
            return false;
    return ward_retry_policy_check(&s->backoff) == WARD_ERR_OK;
}

/* Copies the migrations (their SQL too: pending ones run after open returned). */
static enum ward_err copy_migrations(struct ward_store *st, const struct ward_store_settings *s)
{
    st->migrations = calloc(s->n_migrations + 1, sizeof *st->migrations);
    if (st->migrations == NULL)
        return WARD_ERR_NOMEM;
    for (size_t i = 0; i < s->n_migrations; i++) {
        const struct ward_migration *m = &s->migrations[i];
        struct ward_migration *c = &st->migrations[i];
        c->version = m->version;
        c->sqlite = strdup(m->sqlite);
        c->postgres = strdup(m->postgres != NULL ? m->postgres : m->sqlite);
        st->n_migrations = i + 1;
        if (c->sqlite == NULL || c->postgres == NULL)
            return WARD_ERR_NOMEM;
    }
    return WARD_ERR_OK;
}

/* ---- the pools -------------------------------------------------------------------- */

static int64_t now_ns(void)
{
    return ward_clock_now(ward_clock_real());
}

/* A connection for a transaction of mode: an idle one, a new one while the pool has room,
 * else wait for one to come back. SQLite writes go to the one writer; a memory database
 * has only that one connection. */
enum ward_err ward__conn_acquire(struct ward_store *s, enum ward_tx_mode mode,
                                 struct ward__conn **out)
{
    bool writer = s->kind == WARD_STORE_SQLITE && (mode != WARD_TX_READ || s->memory);
    struct ward__conn ***idle = writer ? &s->idle_w : &s->idle_r;
    size_t *n_idle = writer ? &s->n_idle_w : &s->n_idle_r;
    size_t *open = writer ? &s->open_w : &s->open_r;
    size_t max = writer ? s->max_w : s->max_r;
    int64_t t = now_ns() + s->s.acquire_timeout;
    struct timespec until = {.tv_sec = (time_t)(t / NS_PER_S), .tv_nsec = (long)(t % NS_PER_S)};
    enum ward_err err = WARD_ERR_OK;

    pthread_mutex_lock(&s->lock);
    while (*n_idle == 0 && *open >= max && err == WARD_ERR_OK)
        if (pthread_cond_timedwait(&s->freed, &s->lock, &until) != 0 && now_ns() >= t)
            err = WARD_ERR_TIMEOUT;
    if (err == WARD_ERR_OK && *n_idle > 0) {
        *out = (*idle)[--*n_idle];
        pthread_mutex_unlock(&s->lock);
        return WARD_ERR_OK;
    }
    if (err == WARD_ERR_OK)
        ++*open; /* a slot, filled outside the lock: connecting takes time */
    pthread_mutex_unlock(&s->lock);
    if (err != WARD_ERR_OK)
        return err;
    err = s->ops->connect(s, s->url, writer, out);
    if (err != WARD_ERR_OK) {
        pthread_mutex_lock(&s->lock);
        --*open;
        pthread_cond_signal(&s->freed);
        pthread_mutex_unlock(&s->lock);
    }
    return err;
}

/* Gives c back to its pool, or closes it when it is broken. */
void ward__conn_release(struct ward_store *s, struct ward__conn *c)
{
    bool drop = c->broken, writer = c->writer; /* read before disconnect frees c */
    if (drop)
        s->ops->disconnect(c);
    pthread_mutex_lock(&s->lock);
    if (drop) {
        --*(writer ? &s->open_w : &s->open_r);
    } else if (writer) {
        s->idle_w[s->n_idle_w++] = c;
    } else {
        s->idle_r[s->n_idle_r++] = c;
    }
    pthread_cond_signal(&s->freed);
    pthread_mutex_unlock(&s->lock);
}

/* ---- statements and rows ------------------------------------------------------------ */

enum ward_err ward_tx_exec(struct ward_tx *tx, struct ward_query *q,
                           const struct ward_param *params, size_t n, struct ward_rows **rows)
{
    if (rows != NULL)
        *rows = NULL;
    if (tx == NULL || q == NULL || q->sql == NULL || (n > 0 && params == NULL))
        return WARD_ERR_INVAL;
    int64_t changes = 0;
    enum ward_err err = tx->store->ops->exec(tx->conn, q, query_id(q), params, n, rows, &changes);
    tx->changes = changes;
    return err;
}

int64_t ward_tx_changes(const struct ward_tx *tx)
{
    return tx->changes;
}

const char *ward_tx_error(const struct ward_tx *tx)
{
    return tx->conn->error;
}

bool ward_rows_next(struct ward_rows *r)
{
    return r->ops->next(r);
}

enum ward_err ward_rows_err(const struct ward_rows *r)
{
    return r->err;
}

size_t ward_rows_columns(const struct ward_rows *r)
{
    return r->ops->columns(r);
}

bool ward_rows_is_null(const struct ward_rows *r, size_t col)
{
    return r->ops->is_null(r, col);
}

const char *ward_rows_text(const struct ward_rows *r, size_t col)
{
    return r->ops->text(r, col);
}

int64_t ward_rows_int64(const struct ward_rows *r, size_t col)
{
    return r->ops->int64(r, col);
}

/* SQLite stores a bool as 0/1; PostgreSQL's text form is "t"/"f". */
bool ward_rows_bool(const struct ward_rows *r, size_t col)
{
    const char *t = r->ops->text(r, col);
    return t != NULL && (t[0] == 't' || t[0] == 'T' || t[0] == '1');
}

void ward_rows_free(struct ward_rows *r)
{
    if (r != NULL)
        r->ops->free(r);
}

/* ---- the transaction runner -------------------------------------------------------- */

void ward__store_count(_Atomic(struct ward_metric *) *m)
{
    ward_counter_inc(atomic_load_explicit(m, memory_order_acquire));
}

/* One attempt: begin, fn, commit (or rollback), alone on its connection. *began: fn ran
 * (so a lost connection afterwards is not safe to retry: the commit may have happened). */
static enum ward_err attempt(struct ward_store *s, enum ward_tx_mode mode, ward_tx_fn fn,
                             void *arg, bool *began)
{
    struct ward__conn *c = NULL;
    enum ward_err err = ward__conn_acquire(s, mode, &c);
    *began = false;
    if (err != WARD_ERR_OK)
        return err;
    err = s->ops->begin(c, mode);
    if (err == WARD_ERR_OK) {
        struct ward_tx tx = {.store = s, .conn = c};
        *began = true;
        err = fn(&tx, arg);
        if (err == WARD_ERR_OK) {
            err = s->ops->commit(c);
            if (err != WARD_ERR_OK)
                s->ops->rollback(c); /* a refused commit may leave the transaction open */
            else if (mode != WARD_TX_READ)
                ward__store_count(&s->m_commits);
        } else {
            s->ops->rollback(c);
        }
        ward__store_count(&s->m_tx[err == WARD_ERR_OK ? WARD__TX_COMMITTED : WARD__TX_ROLLED_BACK]);
    }
    ward__conn_release(s, c);
    return err;
}

/* The runner itself: write transactions on a SQLite file share commits through the group
 * (group.c), the rest run alone. */
static enum ward_err run_tx(struct ward_store *s, enum ward_tx_mode mode, ward_tx_fn fn,
                            void *arg)
{
    struct ward_retry_state st;
    bool reconnected = false, began = false;
    enum ward_err err;

    ward_retry_state_init(&st);
    for (uint32_t n = 1;; n++) {
        err = mode != WARD_TX_READ && s->grouped ? ward__group_tx(s, fn, arg, &began)
                                                  : attempt(s, mode, fn, arg, &began);
        if (err == WARD_ERR_STORE_DOWN && !began && !reconnected) {
            reconnected = true; /* a connection that died idle: once more, on a new one */
            continue;
        }
        if (err != WARD_ERR_RETRY || n >= s->s.max_attempts)
            break;
        ward__store_count(&s->m_retries);
        st.attempts = n;
        st.last_delay_ns = ward_retry_next_delay(&s->s.backoff, n, st.last_delay_ns, &st.rng);
        ward_clock_sleep(s->s.clock != NULL ? s->s.clock : ward_clock_real(), st.last_delay_ns);
    }
    /* the database's failures, not the work's own answers (NOT_FOUND, CONSTRAINT...) */
    if (err == WARD_ERR_RETRY || err == WARD_ERR_STORE_DOWN || err == WARD_ERR_DB ||
        err == WARD_ERR_TIMEOUT)
        ward__store_count(&s->m_tx[WARD__TX_ERROR]);
    return err;
}

static enum ward_err migrate(struct ward_store *s);

enum ward_err ward_store_tx(struct ward_store *s, enum ward_tx_mode mode, ward_tx_fn fn,
                            void *arg)
{
    enum ward_err err;

    if (s == NULL || fn == NULL || (mode != WARD_TX_READ && mode != WARD_TX_WRITE &&
                                    mode != WARD_TX_WRITE_ROWS))
        return WARD_ERR_INVAL;
    /* nothing runs on a schema that is not there yet */
    if (!atomic_load(&s->migrated) && (err = migrate(s)) != WARD_ERR_OK)
        return err;
    return run_tx(s, mode, fn, arg);
}

/* ---- migrations --------------------------------------------------------------------- */

static struct ward_query q_migrations_table = WARD_QUERY(
    "CREATE TABLE IF NOT EXISTS ward_migrations (service TEXT NOT NULL, version INTEGER NOT "
    "NULL, applied_at TEXT NOT NULL, PRIMARY KEY (service, version))");
/* PostgreSQL: the migrations of every service sharing a database, one at a time (two
 * starting together would race to create the tables they share). */
static struct ward_query q_migrations_lock = WARD_QUERY("SELECT pg_advisory_xact_lock(7263522010)");
static struct ward_query q_migrations_max =
    WARD_QUERY("SELECT COALESCE(MAX(version), 0) FROM ward_migrations WHERE service = $1");
static struct ward_query q_migrations_add = WARD_QUERY(
    "INSERT INTO ward_migrations (service, version, applied_at) VALUES ($1, $2, $3)");

struct migration_step {
    struct ward_store *s;
    bool done; /* nothing was left to apply */
    int applied;
};

/* The current UTC time as RFC 3339. */
static void utc_now(char *buf, size_t n)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Applies the next pending migration, if any, in this transaction. */
static enum ward_err migrate_one(struct ward_tx *tx, void *arg)
{
    struct migration_step *m = arg;
    struct ward_store *s = m->s;
    struct ward_rows *rows = NULL;
    m->done = false;
    enum ward_err err = WARD_ERR_OK;
    if (s->kind == WARD_STORE_POSTGRES)
        err = ward_tx_exec(tx, &q_migrations_lock, NULL, 0, NULL);
    if (err == WARD_ERR_OK)
        err = ward_tx_exec(tx, &q_migrations_table, NULL, 0, NULL);
    if (err == WARD_ERR_OK)
        err = ward_tx_exec(tx, &q_migrations_max,
                           (struct ward_param[]){WARD_P_TEXT(s->service)}, 1, &rows);
    if (err != WARD_ERR_OK)
        goto done;
    int64_t have = ward_rows_next(rows) ? ward_rows_int64(rows, 0) : 0;
    ward_rows_free(rows);
    rows = NULL;
    if (have >= (int64_t)s->n_migrations) {
        m->done = true;
        goto done;
    }
    const struct ward_migration *mig = &s->migrations[have];
    err = s->ops->script(tx->conn, s->kind == WARD_STORE_SQLITE ? mig->sqlite : mig->postgres);
    char now[32];
    utc_now(now, sizeof now);
    if (err == WARD_ERR_OK)
        err = ward_tx_exec(tx, &q_migrations_add,
                           (struct ward_param[]){WARD_P_TEXT(s->service),
                                                 WARD_P_INT(mig->version), WARD_P_TEXT(now)},
                           3, NULL);
    if (err == WARD_ERR_OK)
        m->applied = mig->version;
    else if (err != WARD_ERR_RETRY && err != WARD_ERR_STORE_DOWN)
        WARD_ERROR(s->s.log, NULL, "migration failed", WARD_S("service", s->service),
                   WARD_I("version", mig->version), WARD_S("error", tx->conn->error));
done:
    ward_rows_free(rows);
    return err;
}

/* One migration step on one connection: the cross-process lock first, outside the
 * transaction, so that the transaction's snapshot sees what the previous holder committed;
 * given back after the commit (a connection that cannot give it back is dropped, which
 * releases it too). */
static enum ward_err migrate_attempt(struct ward_store *s, struct migration_step *m)
{
    struct ward__conn *c = NULL;
    enum ward_err err = ward__conn_acquire(s, WARD_TX_WRITE, &c);
    if (err != WARD_ERR_OK)
        return err;
    err = s->ops->lock_migrations(c, true);
    if (err == WARD_ERR_OK) {
        err = s->ops->begin(c, WARD_TX_WRITE);
        if (err == WARD_ERR_OK) {
            struct ward_tx tx = {.store = s, .conn = c};
            err = migrate_one(&tx, m);
            if (err == WARD_ERR_OK)
                err = s->ops->commit(c);
            if (err != WARD_ERR_OK)
                s->ops->rollback(c);
        }
        if (s->ops->lock_migrations(c, false) != WARD_ERR_OK)
            c->broken = true;
    }
    ward__conn_release(s, c);
    return err;
}

/* Applies every pending migration, one transaction each; once it succeeded, never again. */
static enum ward_err migrate(struct ward_store *s)
{
    enum ward_err err = WARD_ERR_OK;
    pthread_mutex_lock(&s->migrate_lock);
    while (!atomic_load(&s->migrated)) {
        struct migration_step m = {.s = s};
        for (uint32_t n = 1;; n++) {
            err = migrate_attempt(s, &m);
            if (err != WARD_ERR_RETRY || n >= s->s.max_attempts)
                break;
            ward_clock_sleep(s->s.clock != NULL ? s->s.clock : ward_clock_real(),
                             s->s.backoff.base_ns * n);
        }
        if (err != WARD_ERR_OK)
            break;
        if (m.done)
            atomic_store(&s->migrated, true);
        else
            WARD_INFO(s->s.log, NULL, "migrated", WARD_S("service", s->service),
                      WARD_I("version", m.applied));
    }
    pthread_mutex_unlock(&s->migrate_lock);
    return err;
}

/* ---- open, close, ping ---------------------------------------------------------------- */

enum ward_err ward_store_open(const struct ward_store_settings *set, struct ward_store **out)
{
    enum ward_err err = WARD_ERR_INVAL;
    struct ward_store *s = NULL;
    bool memory = false;
    enum ward_store_kind kind;

    if (out == NULL)
        return err;
    *out = NULL;
    if (set == NULL || !settings_ok(set) || (kind = kind_of(set->url, &memory)) == 0)
        return err;
    err = WARD_ERR_NOMEM;
    s = calloc(1, sizeof *s);
    if (s == NULL)
        return err;
    s->kind = kind;
    s->ops = kind == WARD_STORE_SQLITE ? &ward__sqlite_ops : &ward__postgres_ops;
    s->s = *set;
    s->memory = memory;
    s->url = strdup(set->url);
    s->service = strdup(set->service);
    s->s.url = s->url;
    s->s.service = s->service;
    s->s.migrations = NULL;
    s->max_w = kind == WARD_STORE_SQLITE ? 1 : 0;
    s->max_r = memory ? 0 : (size_t)set->pool_size;
    s->idle_r = calloc(s->max_r + 1, sizeof *s->idle_r);
    s->idle_w = calloc(s->max_w + 1, sizeof *s->idle_w);
    if (s->url == NULL || s->service == NULL || s->idle_r == NULL || s->idle_w == NULL ||
        copy_migrations(s, set) != WARD_ERR_OK)
        goto fail;
    err = WARD_ERR_SYSTEM;
    if (pthread_mutex_init(&s->lock, NULL) != 0)
        goto fail;
    if (ward_cond_init_monotonic(&s->freed) != WARD_ERR_OK) {
        pthread_mutex_destroy(&s->lock);
        goto fail;
    }
    if (pthread_mutex_init(&s->migrate_lock, NULL) != 0) {
        pthread_cond_destroy(&s->freed);
        pthread_mutex_destroy(&s->lock);
        goto fail;
    }
    if (ward__group_init(&s->group) != WARD_ERR_OK) {
        pthread_mutex_destroy(&s->migrate_lock);
        pthread_cond_destroy(&s->freed);
        pthread_mutex_destroy(&s->lock);
        goto fail;
    }
    /* a memory database has one connection for reads too: its writes stay alone */
    s->grouped = kind == WARD_STORE_SQLITE && !memory && set->group_max > 1;
    *out = s;
    err = migrate(s);
    if (err == WARD_ERR_STORE_DOWN) {
        WARD_WARN(s->s.log, NULL, "database unreachable; migrations pending",
                  WARD_S("service", s->service));
        return WARD_ERR_OK;
    }
    if (err != WARD_ERR_OK) {
        ward_store_close(s);
        *out = NULL;
    }
    return err;
fail:
    free(s->idle_r);
    free(s->idle_w);
    for (size_t i = 0; i < s->n_migrations; i++) {
        free((char *)(uintptr_t)s->migrations[i].sqlite);
        free((char *)(uintptr_t)s->migrations[i].postgres);
    }
    free(s->migrations);
    free(s->url);
    free(s->service);
    free(s);
    return err;
}

void ward_store_close(struct ward_store *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n_idle_r; i++)
        s->ops->disconnect(s->idle_r[i]);
    for (size_t i = 0; i < s->n_idle_w; i++)
        s->ops->disconnect(s->idle_w[i]);
    free(s->idle_r);
    free(s->idle_w);
    for (size_t i = 0; i < s->n_migrations; i++) {
        free((char *)(uintptr_t)s->migrations[i].sqlite);
        free((char *)(uintptr_t)s->migrations[i].postgres);
    }
    free(s->migrations);
    ward__group_fini(&s->group);
    pthread_mutex_destroy(&s->migrate_lock);
    pthread_cond_destroy(&s->freed);
    pthread_mutex_destroy(&s->lock);
    free(s->url);
    free(s->service);
    free(s);
}

enum ward_store_kind ward_store_kind(const struct ward_store *s)
{
    return s->kind;
}

enum ward_err ward_store_ping(struct ward_store *s)
{
    struct ward__conn *c = NULL;
    if (s == NULL)
        return WARD_ERR_INVAL;
    enum ward_err err = ward__conn_acquire(s, WARD_TX_READ, &c);
    if (err == WARD_ERR_OK) {
        err = s->ops->ping(c);
        ward__conn_release(s, c);
    }
    if (err == WARD_ERR_OK && !atomic_load(&s->migrated))
        err = migrate(s);
    return err;
}

/* ---- metrics ------------------------------------------------------------------------- */

enum ward_err ward_store_export(struct ward_store *s, struct ward_metrics *reg)
{
    static const char *const labels[] = {"service", "result"};
    static const char *const results[] = {"committed", "rolled_back", "error"};
    if (s == NULL || reg == NULL)
        return WARD_ERR_INVAL;
    struct ward_metric_family *tx = ward_metrics_counter(
        reg, "ward_store_transactions_total", "Store transactions by result.", 2, labels);
    struct ward_metric_family *re = ward_metrics_counter(
        reg, "ward_store_retries_total", "Transactions run again (busy, serialization, deadlock).",
        1, labels);
    struct ward_metric_family *co = ward_metrics_counter(
        reg, "ward_store_commits_total",
        "Database commits of write transactions (each a sync; one SQLite group counts once).", 1,
        labels);
    if (tx == NULL || re == NULL || co == NULL)
        return WARD_ERR_INVAL;
    struct ward_metric *m[3], *r, *c;
    for (int i = 0; i < 3; i++) {
        m[i] = ward_metric_get(tx, (const char *const[]){s->service, results[i]});
        if (m[i] == NULL)
            return WARD_ERR_NOMEM;
    }
    r = ward_metric_get(re, (const char *const[]){s->service});
    c = ward_metric_get(co, (const char *const[]){s->service});
    if (r == NULL || c == NULL)
        return WARD_ERR_NOMEM;
    for (int i = 0; i < 3; i++)
        atomic_store_explicit(&s->m_tx[i], m[i], memory_order_release);
    atomic_store_explicit(&s->m_retries, r, memory_order_release);
    atomic_store_explicit(&s->m_commits, c, memory_order_release);
    return WARD_ERR_OK;
}
