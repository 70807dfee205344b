/* test_store.c — the store (include/ward/store.h) on both backends, every case twice:
 * SQLite (a file in a temporary directory) and PostgreSQL (a real server started by the
 * test): migrations applied once and in order, also by instances starting together;
 * commit and rollback; values round-tripping; constraint violations and a trigger that
 * forbids updates; the runner retrying what it must (and giving up after max_attempts);
 * many threads updating one row with no lost update; a database that goes away and comes
 * back; opening while it is down; the pool's acquire timeout; metrics. */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ward/metrics.h>
#include <ward/store.h>

#include "db_harness.h"

#define MS INT64_C(1000000)

static struct pg_server *pg;
static char tmpdir[64];
static char url[512];
static bool on_pg;
static struct ward_store *st;

static void teardown(void)
{
    ward_store_close(st);
    st = NULL;
    cr_assert(h_db_cleanup(&pg, tmpdir));
}

TestSuite(store_sqlite, .fini = teardown, .timeout = 60);
TestSuite(store_pg, .fini = teardown, .timeout = 90);

static void use_sqlite(void)
{
    on_pg = false;
    cr_assert(h_db_sqlite(tmpdir, sizeof tmpdir, url, sizeof url, "store", "test.db"));
}

static void use_pg(void)
{
    on_pg = true;
    cr_assert(h_db_pg(&pg, url, sizeof url), "PostgreSQL did not start");
}

/* Every test runs on both backends. */
#define BOTH(name)                                                                        \
    static void name(void);                                                               \
    Test(store_sqlite, name) { use_sqlite(); name(); }                                    \
    Test(store_pg, name) { use_pg(); name(); }                                            \
    static void name(void)

/* The schema of the tests: a ledger-like table whose rows are never updated. */
static const struct ward_migration migrations[] = {
    {1,
     "CREATE TABLE items (id TEXT PRIMARY KEY, qty BIGINT NOT NULL CHECK (qty >= 0), "
     "note TEXT, flag BOOLEAN NOT NULL DEFAULT FALSE);",
     NULL},
    {2, "CREATE TABLE counter (id INTEGER PRIMARY KEY, n BIGINT NOT NULL);"
        "INSERT INTO counter (id, n) VALUES (1, 0);",
     NULL},
    {3,
     "CREATE TABLE entries (id TEXT PRIMARY KEY, amount BIGINT NOT NULL);"
     "CREATE TRIGGER entries_no_update BEFORE UPDATE ON entries "
     "BEGIN SELECT RAISE(ABORT, 'entries are never updated'); END;"
     "CREATE TRIGGER entries_no_delete BEFORE DELETE ON entries "
     "BEGIN SELECT RAISE(ABORT, 'entries are never deleted'); END;",
     "CREATE TABLE entries (id TEXT PRIMARY KEY, amount BIGINT NOT NULL);"
     "CREATE FUNCTION entries_frozen() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
     "RAISE EXCEPTION 'entries are never updated or deleted' USING ERRCODE = '23000'; END $$;"
     "CREATE TRIGGER entries_frozen BEFORE UPDATE OR DELETE ON entries "
     "FOR EACH ROW EXECUTE FUNCTION entries_frozen();"},
};

static void settings(struct ward_store_settings *s, size_t n_migrations)
{
    ward_store_settings_default(s);
    s->url = url;
    s->service = "test";
    s->migrations = migrations;
    s->n_migrations = n_migrations;
}

static void open_store(void)
{
    struct ward_store_settings s;
    settings(&s, 3);
    cr_assert_eq(ward_store_open(&s, &st), WARD_ERR_OK);
    cr_assert_eq(ward_store_kind(st), on_pg ? WARD_STORE_POSTGRES : WARD_STORE_SQLITE);
}

static struct ward_query q_put = WARD_QUERY("INSERT INTO items (id, qty, note, flag) VALUES ($1, $2, $3, $4)");
static struct ward_query q_get = WARD_QUERY("SELECT qty, note, flag FROM items WHERE id = $1");
static struct ward_query q_count = WARD_QUERY("SELECT COUNT(*) FROM items");
static struct ward_query q_versions =
    WARD_QUERY("SELECT version FROM ward_migrations WHERE service = $1 ORDER BY version");

struct item {
    const char *id;
    int64_t qty;
    const char *note;
    bool flag;
    enum ward_err then; /* what the work returns after its insert */
};

static enum ward_err put(struct ward_tx *tx, void *arg)
{
    const struct item *it = arg;
    enum ward_err err = ward_tx_exec(
        tx, &q_put,
        (struct ward_param[]){WARD_P_TEXT(it->id), WARD_P_INT(it->qty),
                              WARD_P_TEXT_OR_NULL(it->note), WARD_P_BOOL(it->flag)},
        4, NULL);
    if (err == WARD_ERR_OK)
        cr_assert_eq(ward_tx_changes(tx), 1);
    return err != WARD_ERR_OK ? err : it->then;
}

struct got {
    const char *id;
    bool found, null_note, flag;
    int64_t qty;
    char note[128];
};

static enum ward_err get(struct ward_tx *tx, void *arg)
{
    struct got *g = arg;
    struct ward_rows *rows = NULL;
    enum ward_err err = ward_tx_exec(tx, &q_get, (struct ward_param[]){WARD_P_TEXT(g->id)}, 1,
                                     &rows);
    if (err != WARD_ERR_OK)
        return err;
    g->found = ward_rows_next(rows);
    if (g->found) {
        cr_assert_eq(ward_rows_columns(rows), 3);
        g->qty = ward_rows_int64(rows, 0);
        g->null_note = ward_rows_is_null(rows, 1);
        snprintf(g->note, sizeof g->note, "%s", g->null_note ? "" : ward_rows_text(rows, 1));
        g->flag = ward_rows_bool(rows, 2);
        cr_assert_not(ward_rows_next(rows));
    }
    ward_rows_free(rows);
    return WARD_ERR_OK;
}

/* A query whose rows' first column is read as integers, run in a read transaction. */
struct ints {
    struct ward_query *q;
    struct ward_param p[2];
    size_t n;
    int64_t v[16];
    size_t rows;
};

static enum ward_err ints_fn(struct ward_tx *tx, void *arg)
{
    struct ints *x = arg;
    struct ward_rows *rows = NULL;
    x->rows = 0;
    enum ward_err err = ward_tx_exec(tx, x->q, x->p, x->n, &rows);
    if (err != WARD_ERR_OK)
        return err;
    while (ward_rows_next(rows))
        if (x->rows < 16)
            x->v[x->rows++] = ward_rows_int64(rows, 0);
    ward_rows_free(rows);
    return WARD_ERR_OK;
}

static struct ints run_ints(struct ward_query *q, const struct ward_param *p, size_t n)
{
    struct ints x = {.q = q, .n = n};
    if (n > 0)
        memcpy(x.p, p, n * sizeof *p);
    cr_assert_eq(ward_store_tx(st, WARD_TX_READ, ints_fn, &x), WARD_ERR_OK);
    return x;
}

static int64_t count_items(void)
{
    return run_ints(&q_count, NULL, 0).v[0];
}

BOTH(migrations_apply_once_in_order_and_resume_with_new_ones)
{
    struct ward_store_settings s;
    settings(&s, 2);
    cr_assert_eq(ward_store_open(&s, &st), WARD_ERR_OK);
    ward_store_close(st);
    st = NULL;
    /* a new version of the service brings migration 3: only it runs */
    open_store();
    struct ints v = run_ints(&q_versions, (struct ward_param[]){WARD_P_TEXT("test")}, 1);
    cr_assert_eq(v.rows, 3);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(v.v[i], i + 1);
    ward_store_close(st);
    st = NULL;
    open_store(); /* nothing left to apply: "counter" would get a second row otherwise */
    static struct ward_query q_counter_rows = WARD_QUERY("SELECT COUNT(*) FROM counter");
    cr_assert_eq(run_ints(&q_counter_rows, NULL, 0).v[0], 1);
    /* another service's migrations in the same database are its own */
    struct ward_store *other = NULL;
    static const struct ward_migration theirs[] = {{1, "CREATE TABLE theirs (x INTEGER);", NULL}};
    settings(&s, 1);
    s.service = "other";
    s.migrations = theirs;
    cr_assert_eq(ward_store_open(&s, &other), WARD_ERR_OK);
    ward_store_close(other);
    v = run_ints(&q_versions, (struct ward_param[]){WARD_P_TEXT("test")}, 1);
    cr_assert_eq(v.rows, 3);
}

/* Opens a store from a thread (several start at once). */
static void *open_thread(void *arg)
{
    struct ward_store_settings s;
    struct ward_store **out = arg;
    settings(&s, 3);
    return (void *)(intptr_t)ward_store_open(&s, out);
}

BOTH(instances_starting_together_apply_each_migration_once)
{
    pthread_t t[4];
    struct ward_store *stores[4] = {0};
    for (int i = 0; i < 4; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, open_thread, &stores[i]), 0);
    for (int i = 0; i < 4; i++) {
        void *rc;
        pthread_join(t[i], &rc);
        cr_assert_eq((intptr_t)rc, WARD_ERR_OK, "open %d: %s", i,
                     ward_strerror((enum ward_err)(intptr_t)rc));
    }
    st = stores[0];
    for (int i = 1; i < 4; i++)
        ward_store_close(stores[i]);
    struct ints v = run_ints(&q_versions, (struct ward_param[]){WARD_P_TEXT("test")}, 1);
    cr_assert_eq(v.rows, 3);
    static struct ward_query q_counter_rows = WARD_QUERY("SELECT COUNT(*) FROM counter");
    cr_assert_eq(run_ints(&q_counter_rows, NULL, 0).v[0], 1);
}

BOTH(values_round_trip_and_errors_roll_back)
{
    open_store();
    struct item a = {"a", INT64_MAX, "naïve \"quoted\" 'text'", true, WARD_ERR_OK};
    struct item b = {"b", 0, NULL, false, WARD_ERR_OK};
    cr_assert_eq(ward_store_tx(st, WARD_TX_WRITE, put, &a), WARD_ERR_OK);
    cr_assert_eq(ward_store_tx(st, WARD_TX_WRITE, put, &b), WARD_ERR_OK);
    struct got g = {.id = "a"};
    cr_assert_eq(ward_store_tx(st, WARD_TX_READ, get, &g), WARD_ERR_OK);
    cr_assert(g.found);
    cr_assert_eq(g.qty, INT64_MAX);
    cr_assert_str_eq(g.note, "naïve \"quoted\" 'text'");
    cr_assert(g.flag);
    g = (struct got){.id = "b"};
    cr_assert_eq(ward_store_tx(st, WARD_TX_READ, get, &g), WARD_ERR_OK);
    cr_assert(g.found && g.null_note && !g.flag && g.qty == 0);
    g = (struct got){.id = "none"};
    cr_assert_eq(ward_store_tx(st, WARD_TX_READ, get, &g), WARD_ERR_OK);
    cr_assert_not(g.found);

    /* the work's own error rolls back what it did */
    struct item c = {"c", 1, NULL, false, WARD_ERR_NOT_FOUND};
    cr_assert_eq(ward_store_tx(st, WARD_TX_WRITE, put, &c), WARD_ERR_NOT_FOUND);
    cr_assert_eq(count_items(), 2);
    /* the database's constraints: a duplicate key, a CHECK */
    cr_assert_eq(ward_store_tx(st, WARD_TX_WRITE, put, &a), WARD_ERR_CONSTRAINT);
    struct item neg = {"n", -1, NULL, false, WARD_ERR_OK};
    cr_assert_eq(ward_store_tx(st, WARD_TX_WRITE, put, &neg), WARD_ERR_CONSTRAINT);
    cr_assert_eq(count_items(), 2);
}

static enum ward_err bad_params(struct ward_tx *tx, void *arg)
{
    (void)arg;
    return ward_tx_exec(tx, &q_get, (struct ward_param[]){WARD_P_TEXT("a"), WARD_P_INT(1)}, 2,
                        NULL);
}

BOTH(a_wrong_parameter_count_is_inval)
{
    open_store();
    cr_assert_eq(ward_store_tx(st, WARD_TX_READ, bad_params, NULL), WARD_ERR_INVAL);
}

static struct ward_query q_entry = WARD_QUERY("INSERT INTO entries (id, amount) VALUES ($1, $2)");
static struct ward_query q_entry_update = WARD_QUERY("UPDATE entries SET amount = $2 WHERE id = $1");
static struct ward_query q_entry_delete = WARD_QUERY("DELETE FROM entries WHERE id = $1");

static enum ward_err change_entry(struct ward_tx *tx, void *arg)
{
    struct ward_query *q = arg;
    if (q == &q_entry_delete)
        return ward_tx_exec(tx, q, (struct ward_param[]){WARD_P_TEXT("e1")}, 1, NULL);
    return ward_tx_exec(tx, q, (struct ward_param[]){WARD_P_TEXT("e1"), WARD_P_INT(7)}, 2,
                        NULL);
}

BOTH(a_trigger_forbids_updating_or_deleting_entries)
{
    open_store();
    cr_assert_eq(ward_store_tx(st, WARD_TX_WRITE, change_entry, &q_entry), WARD_ERR_OK);
    cr_assert_eq(ward_store_tx(st, WARD_TX_WRITE, change_entry, &q_entry_update),
                 WARD_ERR_CONSTRAINT);
    cr_assert_eq(ward_store_tx(st, WARD_TX_WRITE, change_entry, &q_entry_delete),
                 WARD_ERR_CONSTRAINT);
    static struct ward_query q_amount = WARD_QUERY("SELECT amount FROM entries WHERE id = $1");
    cr_assert_eq(run_ints(&q_amount, (struct ward_param[]){WARD_P_TEXT("e1")}, 1).v[0], 7);
}

struct flaky {
    int runs, fail_first;
};

static enum ward_err flaky_fn(struct ward_tx *tx, void *arg)
{
    struct flaky *f = arg;
    (void)tx;
    return ++f->runs <= f->fail_first ? WARD_ERR_RETRY : WARD_ERR_OK;
}

BOTH(retry_runs_the_work_again_up_to_max_attempts)
{
    struct ward_store_settings s;
    settings(&s, 3);
    s.max_attempts = 4;
    cr_assert_eq(ward_store_open(&s, &st), WARD_ERR_OK);
    struct flaky f = {0, 3};
    cr_assert_eq(ward_store_tx(st, WARD_TX_WRITE, flaky_fn, &f), WARD_ERR_OK);
    cr_assert_eq(f.runs, 4);
    f = (struct flaky){0, 10};
    cr_assert_eq(ward_store_tx(st, WARD_TX_WRITE, flaky_fn, &f), WARD_ERR_RETRY);
    cr_assert_eq(f.runs, 4);
}

/* Many threads add 1 to one row, read-modify-write: without the runner's retries some
 * updates would be lost (PostgreSQL: serialization failures; SQLite: busy). */
static struct ward_query q_read_counter = WARD_QUERY("SELECT n FROM counter WHERE id = 1");
static struct ward_query q_write_counter = WARD_QUERY("UPDATE counter SET n = $1 WHERE id = 1");

static enum ward_err increment(struct ward_tx *tx, void *arg)
{
    struct ward_rows *rows = NULL;
    (void)arg;
    enum ward_err err = ward_tx_exec(tx, &q_read_counter, NULL, 0, &rows);
    if (err != WARD_ERR_OK)
        return err;
    int64_t n = ward_rows_next(rows) ? ward_rows_int64(rows, 0) : -1;
    ward_rows_free(rows);
    return ward_tx_exec(tx, &q_write_counter, (struct ward_param[]){WARD_P_INT(n + 1)}, 1,
                        NULL);
}

#define INC_THREADS 6
#define INC_EACH 25

static void *incrementer(void *arg)
{
    (void)arg;
    for (int i = 0; i < INC_EACH; i++) {
        enum ward_err err = ward_store_tx(st, WARD_TX_WRITE, increment, NULL);
        if (err != WARD_ERR_OK)
            return (void *)(intptr_t)err;
    }
    return NULL;
}

BOTH(concurrent_read_modify_write_loses_no_update)
{
    struct ward_store_settings s;
    settings(&s, 3);
    s.max_attempts = 1000;
    cr_assert_eq(ward_store_open(&s, &st), WARD_ERR_OK);
    struct ward_metrics *reg = ward_metrics_new();
    cr_assert_eq(ward_store_export(st, reg), WARD_ERR_OK);
    pthread_t t[INC_THREADS];
    for (int i = 0; i < INC_THREADS; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, incrementer, NULL), 0);
    for (int i = 0; i < INC_THREADS; i++) {
        void *rc;
        pthread_join(t[i], &rc);
        cr_assert_null(rc, "a thread failed: %s", ward_strerror((enum ward_err)(intptr_t)rc));
    }
    cr_assert_eq(run_ints(&q_read_counter, NULL, 0).v[0], INC_THREADS * INC_EACH);
    size_t len = 0;
    char *text = ward_metrics_render(reg, &len);
    cr_assert_not_null(strstr(text, "ward_store_transactions_total{service=\"test\",result=\"committed\"}"));
    cr_log_info("%s", text);
    free(text);
    ward_metrics_free(reg);
}

/* Holds the only connection for a while. */
static enum ward_err slow(struct ward_tx *tx, void *arg)
{
    (void)tx;
    (void)arg;
    usleep(300000);
    return WARD_ERR_OK;
}

static void *slow_thread(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)ward_store_tx(st, WARD_TX_WRITE, slow, NULL);
}

static enum ward_err nothing(struct ward_tx *tx, void *arg)
{
    (void)tx;
    (void)arg;
    return WARD_ERR_OK;
}

BOTH(no_free_connection_in_time_is_a_timeout)
{
    struct ward_store_settings s;
    settings(&s, 3);
    s.pool_size = 1;
    s.acquire_timeout = 50 * MS;
    cr_assert_eq(ward_store_open(&s, &st), WARD_ERR_OK);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, slow_thread, NULL), 0);
    usleep(100000);
    cr_assert_eq(ward_store_tx(st, WARD_TX_WRITE, nothing, NULL), WARD_ERR_TIMEOUT);
    void *rc;
    pthread_join(t, &rc);
    cr_assert_eq((intptr_t)rc, WARD_ERR_OK);
    cr_assert_eq(ward_store_tx(st, WARD_TX_WRITE, nothing, NULL), WARD_ERR_OK);
}

Test(store_sqlite, memory_database_and_bad_settings)
{
    struct ward_store_settings s;
    snprintf(url, sizeof url, "sqlite::memory:");
    settings(&s, 3);
    cr_assert_eq(ward_store_open(&s, &st), WARD_ERR_OK);
    struct item a = {"a", 1, NULL, false, WARD_ERR_OK};
    cr_assert_eq(ward_store_tx(st, WARD_TX_WRITE, put, &a), WARD_ERR_OK);
    cr_assert_eq(count_items(), 1);
    static const char *const bad[] = {"sqlite://relative.db", "sqlite://", "mysql://x", "",
                                      "sqlite:/x.db"};
    struct ward_store *x = (struct ward_store *)&s;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        s.url = bad[i];
        cr_assert_eq(ward_store_open(&s, &x), WARD_ERR_INVAL, "%s", bad[i]);
        cr_assert_null(x);
    }
    s.url = "sqlite:///nonexistent-dir/x/y.db";
    cr_assert_eq(ward_store_open(&s, &x), WARD_ERR_DB);
    s.url = url;
    s.pool_size = 0;
    cr_assert_eq(ward_store_open(&s, &x), WARD_ERR_INVAL);
    static const struct ward_migration gap[] = {{2, "SELECT 1;", NULL}};
    settings(&s, 1);
    s.migrations = gap;
    cr_assert_eq(ward_store_open(&s, &x), WARD_ERR_INVAL);
}

Test(store_pg, the_database_goes_away_and_comes_back)
{
    use_pg();
    open_store();
    struct item a = {"a", 1, NULL, false, WARD_ERR_OK};
    cr_assert_eq(ward_store_tx(st, WARD_TX_WRITE, put, &a), WARD_ERR_OK);
    cr_assert_eq(ward_store_ping(st), WARD_ERR_OK);
    pg_kill(pg);
    cr_assert_eq(ward_store_ping(st), WARD_ERR_STORE_DOWN);
    struct item b = {"b", 1, NULL, false, WARD_ERR_OK};
    cr_assert_eq(ward_store_tx(st, WARD_TX_WRITE, put, &b), WARD_ERR_STORE_DOWN);
    cr_assert(pg_restart(pg));
    cr_assert_eq(ward_store_ping(st), WARD_ERR_OK);
    cr_assert_eq(ward_store_tx(st, WARD_TX_WRITE, put, &b), WARD_ERR_OK);
    cr_assert_eq(count_items(), 2);
}

Test(store_pg, opening_while_the_database_is_down_migrates_once_it_is_up)
{
    use_pg();
    pg_kill(pg);
    struct ward_store_settings s;
    settings(&s, 3);
    cr_assert_eq(ward_store_open(&s, &st), WARD_ERR_OK, "a database down is no reason not to start");
    cr_assert_eq(ward_store_ping(st), WARD_ERR_STORE_DOWN);
    struct item a = {"a", 1, NULL, false, WARD_ERR_OK};
    cr_assert_eq(ward_store_tx(st, WARD_TX_WRITE, put, &a), WARD_ERR_STORE_DOWN);
    cr_assert(pg_restart(pg));
    cr_assert_eq(ward_store_ping(st), WARD_ERR_OK);
    cr_assert_eq(ward_store_tx(st, WARD_TX_WRITE, put, &a), WARD_ERR_OK);
    struct ints v = run_ints(&q_versions, (struct ward_param[]){WARD_P_TEXT("test")}, 1);
    cr_assert_eq(v.rows, 3);
}
