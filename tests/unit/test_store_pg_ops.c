/* test_store_pg_ops.c — the PostgreSQL backend's ops (lib/store/postgres.c) driven directly
 * against a real server (pg_harness), below store.c: connections, transactions, prepared
 * statements, value round trips and the SQLSTATE mapping. */
#include <criterion/criterion.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "pg_harness.h"
#include "store/store_int.h"

static const struct ward__store_ops *ops = &ward__postgres_ops;
static struct pg_server *pg;
/* The parts of a store a backend reads, filled by hand: store.c is not needed here. */
static struct ward_store store;
static char service[] = "test_store_pg_ops";

static void setup(void)
{
    pg = pg_start();
    cr_assert_not_null(pg, "pg_start failed (see stderr)");
    memset(&store, 0, sizeof store);
    store.kind = WARD_STORE_POSTGRES;
    store.ops = ops;
    store.s.connect_timeout = INT64_C(2000000000);
    store.service = service;
    store.url = (char *)(uintptr_t)pg_url(pg);
    cr_assert(pg_exec(pg, "CREATE TABLE item (id BIGINT PRIMARY KEY, name TEXT, n BIGINT,"
                          " ok BOOLEAN, qty BIGINT CHECK (qty >= 0))"));
}

static void teardown(void)
{
    pg_stop(pg);
    pg = NULL;
}

TestSuite(store_pg_ops, .init = setup, .fini = teardown, .timeout = 60);

static struct ward__conn *connect_ok(void)
{
    struct ward__conn *c = NULL;
    enum ward_err err = ops->connect(&store, pg_url(pg), false, &c);
    cr_assert_eq(err, WARD_ERR_OK, "connect: %s", ward_strerror(err));
    cr_assert_not_null(c);
    cr_assert_eq(c->store, &store);
    return c;
}

static struct ward_query q_insert =
    WARD_QUERY("INSERT INTO item (id, name, n, ok, qty) VALUES ($1, $2, $3, $4, $5)");
static struct ward_query q_get = WARD_QUERY("SELECT name, n, ok, qty FROM item WHERE id = $1");
static struct ward_query q_all = WARD_QUERY("SELECT id FROM item ORDER BY id");
static struct ward_query q_set_qty = WARD_QUERY("UPDATE item SET qty = $2 WHERE id = $1");
static struct ward_query q_sum = WARD_QUERY("SELECT sum(qty) FROM item");
static struct ward_query q_take =
    WARD_QUERY("UPDATE item SET qty = qty - $2 WHERE id = $1 RETURNING qty");
static struct ward_query q_ret = WARD_QUERY("DELETE FROM item WHERE id >= $1 RETURNING id");

enum { ID_INSERT = 1, ID_GET, ID_ALL, ID_SET_QTY, ID_SUM, ID_TAKE, ID_RET };

static enum ward_err insert(struct ward__conn *c, int64_t id, const char *name, int64_t n,
                            bool ok, int64_t qty)
{
    struct ward_param p[] = {WARD_P_INT(id), WARD_P_TEXT_OR_NULL(name), WARD_P_INT(n),
                             WARD_P_BOOL(ok), WARD_P_INT(qty)};
    int64_t changes = -1;
    enum ward_err err = ops->exec(c, &q_insert, ID_INSERT, p, 5, NULL, &changes);
    if (err == WARD_ERR_OK)
        cr_assert_eq(changes, 1);
    return err;
}

/* Runs fn in a write transaction on c and commits it; asserts both went well. */
static void insert_committed(struct ward__conn *c, int64_t id, const char *name, int64_t n,
                             bool ok, int64_t qty)
{
    cr_assert_eq(ops->begin(c, WARD_TX_WRITE), WARD_ERR_OK, "%s", c->error);
    cr_assert_eq(insert(c, id, name, n, ok, qty), WARD_ERR_OK, "%s", c->error);
    cr_assert_eq(ops->commit(c), WARD_ERR_OK, "%s", c->error);
}

Test(store_pg_ops, round_trips_text_int64_null_and_bool)
{
    struct ward__conn *c = connect_ok();
    cr_assert_eq(ops->begin(c, WARD_TX_WRITE), WARD_ERR_OK, "%s", c->error);
    cr_assert_eq(insert(c, 1, "zakat 2.5% — ünïcode", INT64_MAX, true, 5), WARD_ERR_OK, "%s",
                 c->error);
    cr_assert_eq(insert(c, 2, NULL, INT64_MIN, false, 0), WARD_ERR_OK, "%s", c->error);
    cr_assert_eq(insert(c, 3, "", 0, true, 1), WARD_ERR_OK, "%s", c->error);
    cr_assert_eq(ops->commit(c), WARD_ERR_OK, "%s", c->error);

    cr_assert_eq(ops->begin(c, WARD_TX_READ), WARD_ERR_OK, "%s", c->error);
    struct ward_rows *r = NULL;
    struct ward_param id1[] = {WARD_P_INT(1)};
    cr_assert_eq(ops->exec(c, &q_get, ID_GET, id1, 1, &r, NULL), WARD_ERR_OK, "%s", c->error);
    cr_assert_not_null(r);
    cr_assert_eq(r->ops->columns(r), 4);
    cr_assert(r->ops->next(r));
    cr_assert_str_eq(r->ops->text(r, 0), "zakat 2.5% — ünïcode");
    cr_assert_eq(r->ops->int64(r, 1), INT64_MAX);
    cr_assert_str_eq(r->ops->text(r, 1), "9223372036854775807");
    cr_assert_str_eq(r->ops->text(r, 2), "t"); /* booleans come back as t / f */
    cr_assert_not(r->ops->is_null(r, 2));
    cr_assert(r->ops->is_null(r, 9), "a column out of range reads as NULL");
    cr_assert_null(r->ops->text(r, 9));
    cr_assert_not(r->ops->next(r));
    cr_assert_not(r->ops->next(r), "next stays false past the end");
    r->ops->free(r);

    struct ward_param id2[] = {WARD_P_INT(2)};
    cr_assert_eq(ops->exec(c, &q_get, ID_GET, id2, 1, &r, NULL), WARD_ERR_OK, "%s", c->error);
    cr_assert(r->ops->next(r));
    cr_assert(r->ops->is_null(r, 0));
    cr_assert_null(r->ops->text(r, 0));
    cr_assert_eq(r->ops->int64(r, 0), 0, "NULL reads as 0");
    cr_assert_eq(r->ops->int64(r, 1), INT64_MIN);
    cr_assert_str_eq(r->ops->text(r, 2), "f");
    r->ops->free(r);

    struct ward_param id3[] = {WARD_P_INT(3)};
    cr_assert_eq(ops->exec(c, &q_get, ID_GET, id3, 1, &r, NULL), WARD_ERR_OK, "%s", c->error);
    cr_assert(r->ops->next(r));
    cr_assert_not(r->ops->is_null(r, 0), "the empty string is not NULL");
    cr_assert_str_eq(r->ops->text(r, 0), "");
    r->ops->free(r);

    /* the same statement again (cached), and one with no rows and no parameters */
    cr_assert_eq(ops->exec(c, &q_all, ID_ALL, NULL, 0, &r, NULL), WARD_ERR_OK, "%s", c->error);
    int64_t want = 1;
    while (r->ops->next(r))
        cr_assert_eq(r->ops->int64(r, 0), want++);
    cr_assert_eq(want, 4);
    r->ops->free(r);
    cr_assert_eq(ops->commit(c), WARD_ERR_OK, "%s", c->error);

    /* changes: UPDATE, UPDATE ... RETURNING, DELETE ... RETURNING; none for SELECT */
    cr_assert_eq(ops->begin(c, WARD_TX_WRITE), WARD_ERR_OK, "%s", c->error);
    int64_t changes = -1;
    struct ward_param none[] = {WARD_P_INT(42), WARD_P_INT(1)};
    cr_assert_eq(ops->exec(c, &q_set_qty, ID_SET_QTY, none, 2, NULL, &changes), WARD_ERR_OK);
    cr_assert_eq(changes, 0);
    struct ward_param take[] = {WARD_P_INT(1), WARD_P_INT(2)};
    cr_assert_eq(ops->exec(c, &q_take, ID_TAKE, take, 2, &r, &changes), WARD_ERR_OK, "%s",
                 c->error);
    cr_assert_eq(changes, 1);
    cr_assert(r->ops->next(r));
    cr_assert_eq(r->ops->int64(r, 0), 3);
    r->ops->free(r);
    struct ward_param from2[] = {WARD_P_INT(2)};
    cr_assert_eq(ops->exec(c, &q_ret, ID_RET, from2, 1, NULL, &changes), WARD_ERR_OK);
    cr_assert_eq(changes, 2);
    cr_assert_eq(ops->exec(c, &q_all, ID_ALL, NULL, 0, NULL, &changes), WARD_ERR_OK);
    cr_assert_eq(changes, 0);
    ops->rollback(c);
    cr_assert_not(c->broken);

    /* a read-only transaction refuses writes (25006: DB, not CONSTRAINT) */
    cr_assert_eq(ops->begin(c, WARD_TX_READ), WARD_ERR_OK, "%s", c->error);
    cr_assert_eq(insert(c, 9, "x", 0, true, 0), WARD_ERR_DB);
    cr_assert(strstr(c->error, "read-only") != NULL, "%s", c->error);
    ops->rollback(c);
    cr_assert_not(c->broken);
    ops->disconnect(c);
}

Test(store_pg_ops, constraint_violations_are_constraint)
{
    cr_assert(pg_exec(pg, "CREATE FUNCTION frozen() RETURNS trigger LANGUAGE plpgsql AS $$"
                          " BEGIN IF OLD.name = 'frozen' THEN"
                          " RAISE EXCEPTION 'item % is frozen', OLD.id USING ERRCODE = '23001';"
                          " END IF; RETURN NEW; END $$;"
                          "CREATE TRIGGER item_frozen BEFORE UPDATE ON item"
                          " FOR EACH ROW EXECUTE FUNCTION frozen()"));
    struct ward__conn *c = connect_ok();
    insert_committed(c, 1, "frozen", 0, true, 5);

    /* unique: the transaction is aborted; COMMIT then rolls back and says why */
    cr_assert_eq(ops->begin(c, WARD_TX_WRITE), WARD_ERR_OK);
    cr_assert_eq(insert(c, 1, "again", 0, true, 1), WARD_ERR_CONSTRAINT);
    cr_assert(strstr(c->error, "duplicate key") != NULL, "%s", c->error);
    cr_assert_eq(insert(c, 2, "later", 0, true, 1), WARD_ERR_DB, "25P02 after an abort");
    cr_assert_eq(ops->commit(c), WARD_ERR_CONSTRAINT, "COMMIT of an aborted transaction");
    cr_assert_not(c->broken);

    /* check */
    cr_assert_eq(ops->begin(c, WARD_TX_WRITE), WARD_ERR_OK);
    cr_assert_eq(insert(c, 3, "neg", 0, true, -1), WARD_ERR_CONSTRAINT);
    cr_assert(strstr(c->error, "check constraint") != NULL, "%s", c->error);
    ops->rollback(c);
    cr_assert_not(c->broken);

    /* a trigger refusing the change with a 23xxx SQLSTATE */
    cr_assert_eq(ops->begin(c, WARD_TX_WRITE), WARD_ERR_OK);
    struct ward_param p[] = {WARD_P_INT(1), WARD_P_INT(4)};
    cr_assert_eq(ops->exec(c, &q_set_qty, ID_SET_QTY, p, 2, NULL, NULL), WARD_ERR_CONSTRAINT);
    cr_assert(strstr(c->error, "item 1 is frozen") != NULL, "%s", c->error);
    ops->rollback(c);

    /* a plain error is DB with the message; the connection stays usable */
    static struct ward_query q_bad = WARD_QUERY("SELECT 1 / 0");
    cr_assert_eq(ops->begin(c, WARD_TX_READ), WARD_ERR_OK);
    cr_assert_eq(ops->exec(c, &q_bad, 30, NULL, 0, NULL, NULL), WARD_ERR_DB);
    cr_assert(strstr(c->error, "division by zero") != NULL, "%s", c->error);
    ops->rollback(c);
    static struct ward_query q_syntax = WARD_QUERY("SELEKT 1");
    cr_assert_eq(ops->exec(c, &q_syntax, 31, NULL, 0, NULL, NULL), WARD_ERR_DB);
    cr_assert_not(c->broken);
    cr_assert_eq(ops->ping(c), WARD_ERR_OK);
    ops->disconnect(c);
}

Test(store_pg_ops, write_skew_is_retry)
{
    struct ward__conn *a = connect_ok(), *b = connect_ok();
    insert_committed(a, 1, "x", 0, true, 100);
    insert_committed(a, 2, "y", 0, true, 100);
    /* each reads both rows, then takes 150 from a different one: no serial order allows
     * both (the sum would go negative), so one of them must fail with 40001 */
    cr_assert_eq(ops->begin(a, WARD_TX_WRITE), WARD_ERR_OK);
    cr_assert_eq(ops->begin(b, WARD_TX_WRITE), WARD_ERR_OK);
    struct ward_rows *r = NULL;
    cr_assert_eq(ops->exec(a, &q_sum, ID_SUM, NULL, 0, &r, NULL), WARD_ERR_OK, "%s", a->error);
    cr_assert(r->ops->next(r));
    cr_assert_eq(r->ops->int64(r, 0), 200);
    r->ops->free(r);
    cr_assert_eq(ops->exec(b, &q_sum, ID_SUM, NULL, 0, &r, NULL), WARD_ERR_OK, "%s", b->error);
    r->ops->free(r);
    struct ward_param pa[] = {WARD_P_INT(1), WARD_P_INT(-50)};
    struct ward_param pb[] = {WARD_P_INT(2), WARD_P_INT(-50)};
    cr_assert_eq(ops->exec(a, &q_set_qty, ID_SET_QTY, pa, 2, NULL, NULL), WARD_ERR_CONSTRAINT,
                 "the CHECK sees -50 first");
    ops->rollback(a);
    ops->rollback(b);

    cr_assert_eq(ops->begin(a, WARD_TX_WRITE), WARD_ERR_OK);
    cr_assert_eq(ops->begin(b, WARD_TX_WRITE), WARD_ERR_OK);
    cr_assert_eq(ops->exec(a, &q_sum, ID_SUM, NULL, 0, NULL, NULL), WARD_ERR_OK);
    cr_assert_eq(ops->exec(b, &q_sum, ID_SUM, NULL, 0, NULL, NULL), WARD_ERR_OK);
    pa[1] = WARD_P_INT(10);
    pb[1] = WARD_P_INT(10);
    cr_assert_eq(ops->exec(a, &q_set_qty, ID_SET_QTY, pa, 2, NULL, NULL), WARD_ERR_OK);
    enum ward_err at_write = ops->exec(b, &q_set_qty, ID_SET_QTY, pb, 2, NULL, NULL);
    cr_assert_eq(ops->commit(a), WARD_ERR_OK, "%s", a->error);
    enum ward_err at_commit = at_write == WARD_ERR_OK ? ops->commit(b) : WARD_ERR_OK;
    if (at_write != WARD_ERR_OK) {
        cr_assert_eq(at_write, WARD_ERR_RETRY, "%s", b->error);
        cr_assert_eq(ops->commit(b), WARD_ERR_RETRY, "COMMIT after the failure");
    } else {
        cr_assert_eq(at_commit, WARD_ERR_RETRY, "%s", b->error);
    }
    fprintf(stderr, "write skew: 40001 at %s: %s\n", at_write != WARD_ERR_OK ? "the write" :
            "COMMIT", b->error);
    cr_assert_not(b->broken);

    /* the retry succeeds and sees the winner's write */
    cr_assert_eq(ops->begin(b, WARD_TX_WRITE), WARD_ERR_OK);
    cr_assert_eq(ops->exec(b, &q_sum, ID_SUM, NULL, 0, &r, NULL), WARD_ERR_OK);
    cr_assert(r->ops->next(r));
    cr_assert_eq(r->ops->int64(r, 0), 110);
    r->ops->free(r);
    cr_assert_eq(ops->exec(b, &q_set_qty, ID_SET_QTY, pb, 2, NULL, NULL), WARD_ERR_OK);
    cr_assert_eq(ops->commit(b), WARD_ERR_OK, "%s", b->error);
    ops->disconnect(a);
    ops->disconnect(b);
}

Test(store_pg_ops, wrong_parameter_count_is_inval)
{
    struct ward__conn *c = connect_ok();
    cr_assert_eq(ops->begin(c, WARD_TX_WRITE), WARD_ERR_OK);
    struct ward_param p[] = {WARD_P_INT(1), WARD_P_INT(2)};
    cr_assert_eq(ops->exec(c, &q_get, ID_GET, p, 2, NULL, NULL), WARD_ERR_INVAL);
    cr_assert_eq(ops->exec(c, &q_get, ID_GET, NULL, 0, NULL, NULL), WARD_ERR_INVAL);
    cr_assert_eq(ops->exec(c, &q_get, ID_GET, NULL, 1, NULL, NULL), WARD_ERR_INVAL);
    cr_assert_eq(ops->exec(c, &q_all, ID_ALL, p, 1, NULL, NULL), WARD_ERR_INVAL);
    /* refused before it reached the server: the transaction goes on */
    cr_assert_eq(insert(c, 1, "a", 1, true, 1), WARD_ERR_OK, "%s", c->error);
    cr_assert_eq(ops->exec(c, &q_get, ID_GET, p, 1, NULL, NULL), WARD_ERR_OK, "%s", c->error);
    cr_assert_eq(ops->commit(c), WARD_ERR_OK, "%s", c->error);
    /* a high id grows the cache */
    static struct ward_query q_far = WARD_QUERY("SELECT $1::bigint + 1");
    struct ward_rows *r = NULL;
    cr_assert_eq(ops->begin(c, WARD_TX_READ), WARD_ERR_OK);
    cr_assert_eq(ops->exec(c, &q_far, 1000, p, 1, &r, NULL), WARD_ERR_OK, "%s", c->error);
    cr_assert(r->ops->next(r));
    cr_assert_eq(r->ops->int64(r, 0), 2);
    r->ops->free(r);
    cr_assert_eq(ops->commit(c), WARD_ERR_OK);
    ops->disconnect(c);
}

Test(store_pg_ops, lost_server_is_store_down_until_it_returns)
{
    struct ward__conn *c = connect_ok(), *idle = connect_ok();
    insert_committed(c, 1, "kept", 7, true, 1);
    cr_assert_eq(ops->begin(c, WARD_TX_WRITE), WARD_ERR_OK);
    pg_kill(pg);

    struct ward_param p[] = {WARD_P_INT(1)};
    cr_assert_eq(ops->exec(c, &q_get, ID_GET, p, 1, NULL, NULL), WARD_ERR_STORE_DOWN);
    cr_assert(c->broken);
    fprintf(stderr, "after SIGKILL, exec: %s\n", c->error);
    ops->rollback(c);
    cr_assert(c->broken);
    cr_assert_eq(ops->ping(idle), WARD_ERR_STORE_DOWN);
    cr_assert(idle->broken);
    fprintf(stderr, "after SIGKILL, ping: %s\n", idle->error);
    ops->disconnect(c);
    ops->disconnect(idle);

    struct ward__conn *none = NULL;
    cr_assert_eq(ops->connect(&store, pg_url(pg), false, &none), WARD_ERR_STORE_DOWN);
    cr_assert_null(none);

    cr_assert(pg_restart(pg));
    c = connect_ok();
    struct ward_rows *r = NULL;
    cr_assert_eq(ops->begin(c, WARD_TX_READ), WARD_ERR_OK);
    cr_assert_eq(ops->exec(c, &q_get, ID_GET, p, 1, &r, NULL), WARD_ERR_OK, "%s", c->error);
    cr_assert(r->ops->next(r), "committed before the crash, recovered after it");
    cr_assert_eq(r->ops->int64(r, 1), 7);
    r->ops->free(r);
    cr_assert_eq(ops->commit(c), WARD_ERR_OK);
    cr_assert_eq(ops->ping(c), WARD_ERR_OK);
    ops->disconnect(c);
}

Test(store_pg_ops, script_lock_and_ping)
{
    struct ward__conn *c = connect_ok(), *other = connect_ok();
    cr_assert_eq(ops->ping(c), WARD_ERR_OK);
    /* the lock is taken before the transaction, so its snapshot follows the last migrator */
    cr_assert_eq(ops->lock_migrations(c, true), WARD_ERR_OK, "%s", c->error);
    cr_assert_eq(ops->begin(c, WARD_TX_WRITE), WARD_ERR_OK);
    cr_assert_eq(ops->script(c, "CREATE TABLE IF NOT EXISTS item (id BIGINT);"
                                "CREATE TABLE ledger (id BIGSERIAL PRIMARY KEY, amount BIGINT);"
                                "INSERT INTO ledger (amount) VALUES (1), (2);"
                                "CREATE INDEX ledger_amount ON ledger (amount);"),
                 WARD_ERR_OK, "%s", c->error);
    /* another session cannot have it while this one holds it, across the commit */
    cr_assert(pg_exec(pg, "DO $$ BEGIN"
                          " IF pg_try_advisory_xact_lock(8602282537076654081) THEN"
                          " RAISE 'the migration lock was free'; END IF; END $$"));
    cr_assert_eq(ops->commit(c), WARD_ERR_OK, "%s", c->error);
    cr_assert(pg_exec(pg, "DO $$ BEGIN"
                          " IF pg_try_advisory_xact_lock(8602282537076654081) THEN"
                          " RAISE 'the migration lock was free after commit'; END IF; END $$"));
    cr_assert_eq(ops->lock_migrations(c, false), WARD_ERR_OK, "%s", c->error);
    cr_assert(pg_exec(pg, "DO $$ BEGIN IF NOT pg_try_advisory_xact_lock(8602282537076654081)"
                          " THEN RAISE 'the migration lock is still held'; END IF; END $$"));

    static struct ward_query q_ledger = WARD_QUERY("SELECT sum(amount) FROM ledger");
    struct ward_rows *r = NULL;
    cr_assert_eq(ops->begin(other, WARD_TX_READ), WARD_ERR_OK);
    cr_assert_eq(ops->exec(other, &q_ledger, 1, NULL, 0, &r, NULL), WARD_ERR_OK, "%s",
                 other->error);
    cr_assert(r->ops->next(r));
    cr_assert_eq(r->ops->int64(r, 0), 3);
    r->ops->free(r);
    cr_assert_eq(ops->commit(other), WARD_ERR_OK);

    /* a failing script stops at its first error and leaves nothing */
    cr_assert_eq(ops->begin(c, WARD_TX_WRITE), WARD_ERR_OK);
    cr_assert_eq(ops->script(c, "INSERT INTO ledger (amount) VALUES (5); SELECT nope;"),
                 WARD_ERR_DB);
    cr_assert(strstr(c->error, "nope") != NULL, "%s", c->error);
    ops->rollback(c);
    cr_assert_not(c->broken);
    cr_assert_eq(ops->ping(c), WARD_ERR_OK);
    ops->disconnect(c);
    ops->disconnect(other);
}

Test(store_pg_ops, connect_failures)
{
    struct ward__conn *c = NULL;
    char url[160];
    snprintf(url, sizeof url, "postgresql://postgres@127.0.0.1:%u/no_such_db",
             (unsigned)pg_port(pg));
    cr_assert_eq(ops->connect(&store, url, false, &c), WARD_ERR_DB, "refused for good");
    cr_assert_null(c);
    cr_assert_eq(ops->connect(&store, "postgresql://[::1:bad", false, &c), WARD_ERR_DB);
    uint16_t port = pg_port(pg);
    pg_stop(pg);
    pg = NULL;
    snprintf(url, sizeof url, "postgresql://postgres@127.0.0.1:%u/ward_test", (unsigned)port);
    cr_assert_eq(ops->connect(&store, url, false, &c), WARD_ERR_STORE_DOWN, "nobody listens");
    cr_assert_null(c);
}
