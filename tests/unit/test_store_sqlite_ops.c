/* test_store_sqlite_ops.c — unit tests of the SQLite backend's ops driven directly (no pool,
 * no runner): connections and their pragmas, transactions, binding and reading every type,
 * $n placeholders, the statement cache, result rows, and the mapping of SQLite's errors. */
#include <criterion/criterion.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store/store_int.h"

#define MS 1000000LL

static char dir[64];
static char url[128];

static void make_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/ward-sqlite-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(url, sizeof url, "sqlite://%s/ledger.db", dir);
}

static void remove_dir(void)
{
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    char path[160];

    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        snprintf(path, sizeof path, "%s/ledger.db%s", dir, suffixes[i]);
        unlink(path);
    }
    cr_assert_eq(rmdir(dir), 0, "the test left files in %s", dir);
}

TestSuite(sqlite_ops, .init = make_dir, .fini = remove_dir);

static void store_init(struct ward_store *s, const char *u, int64_t busy)
{
    memset(s, 0, sizeof *s);
    s->kind = WARD_STORE_SQLITE;
    s->ops = &ward__sqlite_ops;
    s->s.busy_timeout = busy;
    s->url = (char *)(uintptr_t)u; /* never written through */
    s->s.url = u;
    s->memory = strcmp(u, "sqlite::memory:") == 0;
}

static struct ward__conn *open_conn(struct ward_store *s, bool writer)
{
    struct ward__conn *c = NULL;

    cr_assert_eq(ward__sqlite_ops.connect(s, s->url, writer, &c), WARD_ERR_OK);
    cr_assert_not_null(c);
    cr_assert_eq(c->store, s);
    cr_assert_eq(c->writer, writer);
    return c;
}

/* Queries with the ids store.c would give them: each its own cache slot. */
#define Q(name, id_, text)                                                                  \
    static struct ward_query name = WARD_QUERY(text);                                       \
    enum { name##_id = id_ }

Q(q_insert, 1,
  "INSERT INTO ledger(account, amount, memo, settled, ref) VALUES ($1, $2, $3, $4, $5)");
Q(q_by_ref, 2, "SELECT account, amount, memo, settled, ref FROM ledger WHERE ref = $1");
Q(q_count, 3, "SELECT count(*) FROM ledger");
Q(q_twice, 4, "SELECT $1 || '/' || $1, $2 + $2, $1 = $1");
Q(q_swap, 5, "SELECT $2, $1");
Q(q_gap, 6, "SELECT $2");
Q(q_question, 7, "SELECT ?");
Q(q_all, 8, "SELECT ref, amount FROM ledger ORDER BY amount");
Q(q_update, 9, "UPDATE ledger SET amount = 1 WHERE ref = $1");
Q(q_pragma_journal, 10, "PRAGMA journal_mode");
Q(q_pragma_sync, 11, "PRAGMA synchronous");
Q(q_pragma_fk, 12, "PRAGMA foreign_keys");
Q(q_pragma_busy, 13, "PRAGMA busy_timeout");
Q(q_hold, 14, "INSERT INTO hold(account, ledger_id) VALUES ($1, $2)");
Q(q_bal_add, 15, "INSERT INTO balance(account, minor) VALUES ($1, $2)");
Q(q_bal_del, 16, "DELETE FROM balance WHERE minor < $1");
Q(q_bal_ret, 17,
  "INSERT INTO balance(account, minor) VALUES ($1, $2), ($3, $4) RETURNING account, minor");
Q(q_bad_json, 18, "SELECT x, json(CASE WHEN x = $1 THEN '{' ELSE '1' END) FROM "
                  "(SELECT 1 AS x UNION ALL SELECT 2 UNION ALL SELECT 3)");
Q(q_two_statements, 19, "SELECT 1; SELECT 2");
Q(q_syntax, 20, "SELEC 1");
Q(q_ddl, 21, "CREATE TABLE scratch(x)");
Q(q_upd_none, 22, "DELETE FROM balance WHERE account = $1");
Q(q_trailing, 23, "SELECT 1; -- the one statement\n ;");
Q(q_empty, 24, " -- nothing\n");

static const char schema[] =
    "CREATE TABLE ledger ("
    "  id INTEGER PRIMARY KEY,"
    "  account TEXT NOT NULL,"
    "  amount INTEGER NOT NULL CHECK (amount <> 0),"
    "  memo TEXT,"
    "  settled INTEGER NOT NULL DEFAULT 0,"
    "  ref TEXT NOT NULL UNIQUE);"
    "CREATE TRIGGER ledger_append_only BEFORE UPDATE ON ledger"
    "  BEGIN SELECT RAISE(ABORT, 'ledger entries are never updated'); END;"
    "CREATE TABLE hold ("
    "  account TEXT NOT NULL,"
    "  ledger_id INTEGER NOT NULL REFERENCES ledger(id));"
    "CREATE TABLE balance (account TEXT PRIMARY KEY, minor INTEGER NOT NULL);";

static void migrate(struct ward__conn *c)
{
    cr_assert_eq(ward__sqlite_ops.begin(c, WARD_TX_WRITE), WARD_ERR_OK);
    cr_assert_eq(ward__sqlite_ops.script(c, schema), WARD_ERR_OK, "%s", c->error);
    cr_assert_eq(ward__sqlite_ops.commit(c), WARD_ERR_OK);
}

static enum ward_err run(struct ward__conn *c, struct ward_query *q, unsigned id,
                         const struct ward_param *p, size_t n)
{
    int64_t changes = -1;
    enum ward_err err = ward__sqlite_ops.exec(c, q, id, p, n, NULL, &changes);

    cr_assert(changes >= 0);
    return err;
}

static enum ward_err insert(struct ward__conn *c, const char *account, int64_t amount,
                            const char *memo, bool settled, const char *ref)
{
    struct ward_param p[] = {WARD_P_TEXT_OR_NULL(account), WARD_P_INT(amount),
                             WARD_P_TEXT_OR_NULL(memo), WARD_P_BOOL(settled),
                             WARD_P_TEXT_OR_NULL(ref)};
    int64_t changes = -1;
    enum ward_err err = ward__sqlite_ops.exec(c, &q_insert, q_insert_id, p, 5, NULL, &changes);

    if (err == WARD_ERR_OK)
        cr_assert_eq(changes, 1);
    return err;
}

static struct ward_rows *query(struct ward__conn *c, struct ward_query *q, unsigned id,
                               const struct ward_param *p, size_t n)
{
    struct ward_rows *r = NULL;
    int64_t changes = -1;

    cr_assert_eq(ward__sqlite_ops.exec(c, q, id, p, n, &r, &changes), WARD_ERR_OK, "%s: %s",
                 q->sql, c->error);
    cr_assert_not_null(r);
    return r;
}

#define NEXT(r) ((r)->ops->next(r))
#define TEXT(r, col) ((r)->ops->text((r), (col)))
#define INT(r, col) ((r)->ops->int64((r), (col)))
#define ISNULL(r, col) ((r)->ops->is_null((r), (col)))
#define FREE(r) ((r)->ops->free(r))

static int64_t count(struct ward__conn *c)
{
    struct ward_rows *r = query(c, &q_count, q_count_id, NULL, 0);
    cr_assert(NEXT(r));
    int64_t n = INT(r, 0);
    cr_assert_not(NEXT(r));
    FREE(r);
    return n;
}

static int64_t pragma_int(struct ward__conn *c, struct ward_query *q, unsigned id)
{
    struct ward_rows *r = query(c, q, id, NULL, 0);
    cr_assert(NEXT(r));
    int64_t v = INT(r, 0);
    FREE(r);
    return v;
}

static void expect_text(struct ward__conn *c, struct ward_query *q, unsigned id, const char *want)
{
    struct ward_rows *r = query(c, q, id, NULL, 0);
    cr_assert(NEXT(r));
    cr_assert_str_eq(TEXT(r, 0), want);
    FREE(r);
}

Test(sqlite_ops, a_file_database_gets_wal_full_sync_foreign_keys_and_the_busy_timeout)
{
    struct ward_store s;
    store_init(&s, url, 50 * MS);
    struct ward__conn *w = open_conn(&s, true);
    struct ward__conn *r = open_conn(&s, false);

    expect_text(w, &q_pragma_journal, q_pragma_journal_id, "wal");
    expect_text(r, &q_pragma_journal, q_pragma_journal_id, "wal"); /* stored in the file */
    cr_assert_eq(pragma_int(w, &q_pragma_sync, q_pragma_sync_id), 2); /* FULL */
    cr_assert_eq(pragma_int(r, &q_pragma_sync, q_pragma_sync_id), 2);
    cr_assert_eq(pragma_int(w, &q_pragma_fk, q_pragma_fk_id), 1);
    cr_assert_eq(pragma_int(r, &q_pragma_fk, q_pragma_fk_id), 1);
    cr_assert_eq(pragma_int(w, &q_pragma_busy, q_pragma_busy_id), 50);
    cr_assert_eq(pragma_int(r, &q_pragma_busy, q_pragma_busy_id), 50);
    cr_assert_eq(access(url + strlen("sqlite://"), F_OK), 0, "the writer creates the file");
    ward__sqlite_ops.disconnect(r);
    ward__sqlite_ops.disconnect(w);
    ward__sqlite_ops.disconnect(NULL);
}

Test(sqlite_ops, memory_is_one_private_database)
{
    struct ward_store s;
    store_init(&s, "sqlite::memory:", 5000 * MS);
    struct ward__conn *c = open_conn(&s, true);
    struct ward__conn *other = open_conn(&s, true);

    expect_text(c, &q_pragma_journal, q_pragma_journal_id, "memory");
    cr_assert_eq(pragma_int(c, &q_pragma_sync, q_pragma_sync_id), 2);
    migrate(c);
    cr_assert_eq(ward__sqlite_ops.begin(c, WARD_TX_WRITE), WARD_ERR_OK);
    cr_assert_eq(insert(c, "acct-1", 100, NULL, false, "r1"), WARD_ERR_OK);
    cr_assert_eq(ward__sqlite_ops.commit(c), WARD_ERR_OK);
    cr_assert_eq(count(c), 1);
    /* a second connection has a database of its own: store.c uses one for everything */
    struct ward_rows *rows = NULL;
    cr_assert_eq(ward__sqlite_ops.exec(other, &q_count, q_count_id, NULL, 0, &rows, NULL),
                 WARD_ERR_DB);
    cr_assert_null(rows);
    cr_assert(strstr(other->error, "no such table") != NULL, "%s", other->error);
    ward__sqlite_ops.disconnect(other);
    ward__sqlite_ops.disconnect(c);
}

Test(sqlite_ops, bad_urls_and_unopenable_paths_are_refused)
{
    static const char *const invalid[] = {"sqlite://relative.db", "sqlite:", "sqlite::memory",
                                          "postgres://localhost/ward", "sqlite:relative.db"};
    struct ward_store s;
    struct ward__conn *c = (struct ward__conn *)&s;

    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
        store_init(&s, invalid[i], 50 * MS);
        cr_assert_eq(ward__sqlite_ops.connect(&s, s.url, true, &c), WARD_ERR_INVAL, "%s",
                     invalid[i]);
        cr_assert_null(c);
    }
    store_init(&s, "sqlite:///nonexistent-ward-dir/sub/ledger.db", 50 * MS);
    cr_assert_eq(ward__sqlite_ops.connect(&s, s.url, true, &c), WARD_ERR_DB);
    cr_assert_null(c);
    cr_assert_eq(ward__sqlite_ops.connect(&s, NULL, true, &c), WARD_ERR_INVAL);
}

Test(sqlite_ops, every_type_survives_the_round_trip)
{
    static const char utf8[] =
        "Zak\xc4\x81t \xe2\x80\x94 2.5 % \xc2\xab\xc3\xbc\xc2\xbb \xf0\x9f\x92\xb0";
    static const char quoted[] = "O'Brien's \"memo\"; DROP TABLE ledger; --";
    struct ward_store s;
    store_init(&s, url, 5000 * MS);
    struct ward__conn *c = open_conn(&s, true);

    migrate(c);
    cr_assert_eq(ward__sqlite_ops.begin(c, WARD_TX_WRITE), WARD_ERR_OK);
    cr_assert_eq(insert(c, utf8, INT64_MAX, quoted, true, "max"), WARD_ERR_OK);
    cr_assert_eq(insert(c, "acct-2", INT64_MIN, NULL, false, "min"), WARD_ERR_OK);
    cr_assert_eq(insert(c, "", -1, "", false, "empty"), WARD_ERR_OK);
    cr_assert_eq(ward__sqlite_ops.commit(c), WARD_ERR_OK);

    cr_assert_eq(ward__sqlite_ops.begin(c, WARD_TX_READ), WARD_ERR_OK);
    struct ward_param p = WARD_P_TEXT("max");
    struct ward_rows *r = query(c, &q_by_ref, q_by_ref_id, &p, 1);
    cr_assert_eq(r->ops->columns(r), 5);
    cr_assert(NEXT(r));
    cr_assert_str_eq(TEXT(r, 0), utf8);
    cr_assert_eq(INT(r, 1), INT64_MAX);
    cr_assert_str_eq(TEXT(r, 2), quoted);
    cr_assert_eq(INT(r, 3), 1);
    cr_assert_str_eq(TEXT(r, 4), "max");
    cr_assert_not(ISNULL(r, 2));
    cr_assert(ISNULL(r, 5), "a column past the end reads as NULL");
    cr_assert_null(TEXT(r, 5));
    cr_assert_not(NEXT(r));
    cr_assert_not(NEXT(r), "the end stays the end");
    FREE(r);

    p = WARD_P_TEXT("min");
    r = query(c, &q_by_ref, q_by_ref_id, &p, 1);
    cr_assert(NEXT(r));
    cr_assert_eq(INT(r, 1), INT64_MIN);
    cr_assert(ISNULL(r, 2));
    cr_assert_null(TEXT(r, 2));
    cr_assert_eq(INT(r, 2), 0);
    cr_assert_eq(INT(r, 3), 0);
    cr_assert_str_eq(TEXT(r, 1), "-9223372036854775808");
    FREE(r);

    p = WARD_P_TEXT("empty");
    r = query(c, &q_by_ref, q_by_ref_id, &p, 1);
    cr_assert(NEXT(r));
    cr_assert_not(ISNULL(r, 2), "an empty string is not NULL");
    cr_assert_str_eq(TEXT(r, 2), "");
    FREE(r);

    p = WARD_P_TEXT("none");
    r = query(c, &q_by_ref, q_by_ref_id, &p, 1);
    cr_assert_eq(r->ops->columns(r), 5);
    cr_assert_not(NEXT(r));
    cr_assert(ISNULL(r, 0));
    FREE(r);
    cr_assert_eq(ward__sqlite_ops.commit(c), WARD_ERR_OK);
    ward__sqlite_ops.disconnect(c);
}

Test(sqlite_ops, a_placeholder_may_appear_several_times_and_in_any_order)
{
    struct ward_store s;
    store_init(&s, "sqlite::memory:", 50 * MS);
    struct ward__conn *c = open_conn(&s, true);
    struct ward_param p[] = {WARD_P_TEXT("ab'c"), WARD_P_INT(21)};

    struct ward_rows *r = query(c, &q_twice, q_twice_id, p, 2);
    cr_assert(NEXT(r));
    cr_assert_str_eq(TEXT(r, 0), "ab'c/ab'c");
    cr_assert_eq(INT(r, 1), 42);
    cr_assert_eq(INT(r, 2), 1);
    FREE(r);

    r = query(c, &q_swap, q_swap_id, p, 2);
    cr_assert(NEXT(r));
    cr_assert_eq(INT(r, 0), 21);
    cr_assert_str_eq(TEXT(r, 1), "ab'c");
    FREE(r);

    struct ward_param b[] = {WARD_P_NULL, WARD_P_BOOL(false)};
    r = query(c, &q_swap, q_swap_id, b, 2);
    cr_assert(NEXT(r));
    cr_assert_eq(INT(r, 0), 0);
    cr_assert_not(ISNULL(r, 0), "false is 0, not NULL");
    cr_assert(ISNULL(r, 1));
    FREE(r);
    ward__sqlite_ops.disconnect(c);
}

Test(sqlite_ops, the_wrong_parameters_are_invalid)
{
    struct ward_store s;
    store_init(&s, "sqlite::memory:", 50 * MS);
    struct ward__conn *c = open_conn(&s, true);
    struct ward_param p[] = {WARD_P_INT(1), WARD_P_INT(2), WARD_P_INT(3)};
    struct ward_rows *r = (struct ward_rows *)&s;

    cr_assert_eq(run(c, &q_twice, q_twice_id, p, 1), WARD_ERR_INVAL);
    cr_assert(strstr(c->error, "1 parameters given, the statement has 2") != NULL, "%s", c->error);
    cr_assert_eq(run(c, &q_twice, q_twice_id, p, 3), WARD_ERR_INVAL);
    cr_assert_eq(run(c, &q_twice, q_twice_id, p, 0), WARD_ERR_INVAL);
    cr_assert_eq(ward__sqlite_ops.exec(c, &q_twice, q_twice_id, p, 3, &r, NULL), WARD_ERR_INVAL);
    cr_assert_null(r);
    /* one parameter, but it is not $1 */
    cr_assert_eq(run(c, &q_gap, q_gap_id, p, 1), WARD_ERR_INVAL);
    cr_assert(strstr(c->error, "no parameter $1") != NULL, "%s", c->error);
    cr_assert_eq(run(c, &q_question, q_question_id, p, 1), WARD_ERR_INVAL);
    cr_assert_eq(run(c, &q_twice, q_twice_id, NULL, 2), WARD_ERR_INVAL);
    cr_assert_eq(run(c, NULL, 30, NULL, 0), WARD_ERR_INVAL);
    struct ward_param bad = {.type = (enum ward_param_type)99};
    cr_assert_eq(run(c, &q_gap, q_gap_id, &bad, 1), WARD_ERR_INVAL);
    cr_assert_eq(run(c, &q_swap, q_swap_id, (struct ward_param[]){bad, bad}, 2), WARD_ERR_INVAL);
    /* a query is one statement; the second would be silently skipped */
    cr_assert_eq(run(c, &q_two_statements, q_two_statements_id, NULL, 0), WARD_ERR_INVAL);
    cr_assert_eq(run(c, &q_empty, q_empty_id, NULL, 0), WARD_ERR_INVAL);
    cr_assert_eq(run(c, &q_trailing, q_trailing_id, NULL, 0), WARD_ERR_OK, "%s", c->error);
    cr_assert_eq(run(c, &q_syntax, q_syntax_id, NULL, 0), WARD_ERR_DB);
    cr_assert(strstr(c->error, "syntax error") != NULL, "%s", c->error);
    /* the statements still work with the right parameters */
    r = query(c, &q_twice, q_twice_id, p, 2);
    cr_assert(NEXT(r));
    cr_assert_eq(INT(r, 1), 4);
    FREE(r);
    ward__sqlite_ops.disconnect(c);
}

Test(sqlite_ops, violations_are_constraint_errors_with_the_message)
{
    struct ward_store s;
    store_init(&s, url, 50 * MS);
    struct ward__conn *c = open_conn(&s, true);

    migrate(c);
    cr_assert_eq(ward__sqlite_ops.begin(c, WARD_TX_WRITE), WARD_ERR_OK);
    cr_assert_eq(insert(c, "acct-1", 500, "first", false, "pay-1"), WARD_ERR_OK);

    cr_assert_eq(insert(c, "acct-1", 500, "again", false, "pay-1"), WARD_ERR_CONSTRAINT);
    cr_assert(strstr(c->error, "UNIQUE constraint failed: ledger.ref") != NULL, "%s", c->error);
    cr_assert_eq(insert(c, "acct-1", 0, NULL, false, "pay-2"), WARD_ERR_CONSTRAINT);
    cr_assert(strstr(c->error, "CHECK constraint failed") != NULL, "%s", c->error);
    cr_assert_eq(insert(c, NULL, 5, NULL, false, "pay-3"), WARD_ERR_CONSTRAINT);
    cr_assert(strstr(c->error, "NOT NULL constraint failed: ledger.account") != NULL, "%s",
              c->error);
    struct ward_param ref = WARD_P_TEXT("pay-1");
    cr_assert_eq(run(c, &q_update, q_update_id, &ref, 1), WARD_ERR_CONSTRAINT);
    cr_assert_str_eq(c->error, "ledger entries are never updated");
    struct ward_param hold[] = {WARD_P_TEXT("acct-1"), WARD_P_INT(999)};
    cr_assert_eq(run(c, &q_hold, q_hold_id, hold, 2), WARD_ERR_CONSTRAINT, "foreign keys are on");
    cr_assert(strstr(c->error, "FOREIGN KEY constraint failed") != NULL, "%s", c->error);

    /* a failed statement undoes itself only: the transaction goes on and commits */
    cr_assert_eq(insert(c, "acct-2", -500, NULL, false, "pay-4"), WARD_ERR_OK);
    cr_assert_str_eq(c->error, "", "a success clears the last error");
    cr_assert_eq(ward__sqlite_ops.commit(c), WARD_ERR_OK);
    cr_assert_eq(count(c), 2);
    cr_assert_not(c->broken);
    ward__sqlite_ops.disconnect(c);
}

Test(sqlite_ops, rollback_undoes_and_tolerates_no_transaction)
{
    struct ward_store s;
    store_init(&s, url, 50 * MS);
    struct ward__conn *c = open_conn(&s, true);

    migrate(c);
    cr_assert_eq(ward__sqlite_ops.begin(c, WARD_TX_WRITE), WARD_ERR_OK);
    cr_assert_eq(insert(c, "acct-1", 500, NULL, false, "pay-1"), WARD_ERR_OK);
    cr_assert_eq(count(c), 1);
    ward__sqlite_ops.rollback(c);
    cr_assert_eq(count(c), 0);
    ward__sqlite_ops.rollback(c); /* none active */
    cr_assert_not(c->broken);
    cr_assert_eq(ward__sqlite_ops.commit(c), WARD_ERR_DB, "no transaction to commit");
    cr_assert_eq(ward__sqlite_ops.begin(c, WARD_TX_READ), WARD_ERR_OK);
    cr_assert_eq(ward__sqlite_ops.begin(c, WARD_TX_READ), WARD_ERR_DB, "no nesting");
    ward__sqlite_ops.rollback(c);
    cr_assert_not(c->broken);
    ward__sqlite_ops.disconnect(c);
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

Test(sqlite_ops, a_second_writer_waits_the_busy_timeout_then_must_retry)
{
    struct ward_store s;
    store_init(&s, url, 50 * MS);
    struct ward__conn *a = open_conn(&s, true);
    struct ward__conn *b = open_conn(&s, true);

    migrate(a);
    cr_assert_eq(ward__sqlite_ops.begin(a, WARD_TX_WRITE), WARD_ERR_OK);
    int64_t t0 = now_ns();
    cr_assert_eq(ward__sqlite_ops.begin(b, WARD_TX_WRITE), WARD_ERR_RETRY);
    int64_t waited = now_ns() - t0;
    cr_assert(waited >= 40 * MS && waited < 2000 * MS, "waited %lld ns", (long long)waited);
    cr_assert(strstr(b->error, "locked") != NULL, "%s", b->error);
    ward__sqlite_ops.rollback(b); /* what the runner does; nothing to undo */
    cr_assert_not(b->broken);

    /* a deferred reader that then writes meets the lock at its first write */
    cr_assert_eq(ward__sqlite_ops.begin(b, WARD_TX_READ), WARD_ERR_OK);
    cr_assert_eq(insert(b, "acct-1", 1, NULL, false, "pay-b"), WARD_ERR_RETRY);
    ward__sqlite_ops.rollback(b);

    cr_assert_eq(ward__sqlite_ops.commit(a), WARD_ERR_OK);
    cr_assert_eq(ward__sqlite_ops.begin(b, WARD_TX_WRITE), WARD_ERR_OK);
    cr_assert_eq(insert(b, "acct-1", 1, NULL, false, "pay-b"), WARD_ERR_OK);
    cr_assert_eq(ward__sqlite_ops.commit(b), WARD_ERR_OK);
    ward__sqlite_ops.disconnect(b);
    ward__sqlite_ops.disconnect(a);
}

Test(sqlite_ops, a_reader_sees_committed_data_while_the_writer_holds_its_transaction)
{
    struct ward_store s;
    store_init(&s, url, 50 * MS);
    struct ward__conn *w = open_conn(&s, true);
    struct ward__conn *r = open_conn(&s, false);

    migrate(w);
    cr_assert_eq(ward__sqlite_ops.begin(w, WARD_TX_WRITE), WARD_ERR_OK);
    cr_assert_eq(insert(w, "acct-1", 100, NULL, false, "pay-1"), WARD_ERR_OK);
    cr_assert_eq(ward__sqlite_ops.commit(w), WARD_ERR_OK);

    cr_assert_eq(ward__sqlite_ops.begin(w, WARD_TX_WRITE), WARD_ERR_OK);
    cr_assert_eq(insert(w, "acct-1", 200, NULL, false, "pay-2"), WARD_ERR_OK);
    /* a reader blocked by the writer would answer RETRY after 50 ms */
    cr_assert_eq(ward__sqlite_ops.begin(r, WARD_TX_READ), WARD_ERR_OK);
    cr_assert_eq(count(r), 1, "the committed row only");
    cr_assert_eq(ward__sqlite_ops.commit(w), WARD_ERR_OK);
    cr_assert_eq(count(r), 1, "a read transaction keeps its snapshot");
    cr_assert_eq(ward__sqlite_ops.commit(r), WARD_ERR_OK);
    cr_assert_eq(ward__sqlite_ops.begin(r, WARD_TX_READ), WARD_ERR_OK);
    cr_assert_eq(count(r), 2);
    cr_assert_eq(ward__sqlite_ops.commit(r), WARD_ERR_OK);
    cr_assert_eq(ward__sqlite_ops.ping(r), WARD_ERR_OK);
    ward__sqlite_ops.disconnect(r);
    ward__sqlite_ops.disconnect(w);
}

Test(sqlite_ops, a_cached_statement_serves_many_calls)
{
    struct ward_store s;
    store_init(&s, url, 50 * MS);
    struct ward__conn *c = open_conn(&s, true);
    char ref[32];

    migrate(c);
    cr_assert_eq(ward__sqlite_ops.begin(c, WARD_TX_WRITE), WARD_ERR_OK);
    for (int i = 1; i <= 2000; i++) {
        snprintf(ref, sizeof ref, "pay-%d", i);
        /* the ref is bound TRANSIENT: overwriting the buffer must not change the row */
        cr_assert_eq(insert(c, "acct", i, NULL, i % 2 == 0, ref), WARD_ERR_OK, "%s", c->error);
        memset(ref, 'x', sizeof ref - 1);
    }
    cr_assert_eq(ward__sqlite_ops.commit(c), WARD_ERR_OK);
    for (int i = 1; i <= 2000; i += 111) {
        snprintf(ref, sizeof ref, "pay-%d", i);
        struct ward_param p = WARD_P_TEXT(ref);
        struct ward_rows *r = query(c, &q_by_ref, q_by_ref_id, &p, 1);
        cr_assert(NEXT(r));
        cr_assert_eq(INT(r, 1), i);
        cr_assert_eq(INT(r, 3), i % 2 == 0);
        cr_assert_str_eq(TEXT(r, 4), ref);
        FREE(r);
    }
    cr_assert_eq(count(c), 2000);
    ward__sqlite_ops.disconnect(c);
}

Test(sqlite_ops, rows_of_a_query_stay_valid_while_the_query_runs_again)
{
    struct ward_store s;
    store_init(&s, url, 50 * MS);
    struct ward__conn *c = open_conn(&s, true);

    migrate(c);
    cr_assert_eq(ward__sqlite_ops.begin(c, WARD_TX_WRITE), WARD_ERR_OK);
    cr_assert_eq(insert(c, "a", 1, NULL, false, "one"), WARD_ERR_OK);
    cr_assert_eq(insert(c, "a", 2, NULL, false, "two"), WARD_ERR_OK);
    cr_assert_eq(insert(c, "a", 3, NULL, false, "three"), WARD_ERR_OK);

    struct ward_rows *outer = query(c, &q_all, q_all_id, NULL, 0);
    cr_assert(NEXT(outer));
    cr_assert_str_eq(TEXT(outer, 0), "one");
    /* the same query again while outer reads the cached statement: a statement of its own */
    struct ward_rows *inner = query(c, &q_all, q_all_id, NULL, 0);
    struct ward_rows *third = query(c, &q_all, q_all_id, NULL, 0);
    int64_t sum = 0;
    while (NEXT(inner))
        sum += INT(inner, 1);
    cr_assert_eq(sum, 6);
    FREE(inner);
    cr_assert_str_eq(TEXT(outer, 0), "one", "outer has not moved");
    cr_assert(NEXT(outer));
    cr_assert_eq(INT(outer, 1), 2);
    cr_assert(NEXT(third));
    cr_assert_eq(INT(third, 1), 1);
    FREE(third);
    cr_assert(NEXT(outer));
    cr_assert_str_eq(TEXT(outer, 0), "three");
    cr_assert_not(NEXT(outer));
    FREE(outer);
    /* the cached statement is free again, and other queries ran meanwhile too */
    cr_assert_eq(count(c), 3);
    struct ward_rows *again = query(c, &q_all, q_all_id, NULL, 0);
    cr_assert(NEXT(again));
    cr_assert_str_eq(TEXT(again, 0), "one");
    FREE(again);
    cr_assert_eq(ward__sqlite_ops.commit(c), WARD_ERR_OK);
    ward__sqlite_ops.disconnect(c);
}

Test(sqlite_ops, changes_count_only_what_the_statement_changed)
{
    struct ward_store s;
    store_init(&s, "sqlite::memory:", 50 * MS);
    struct ward__conn *c = open_conn(&s, true);
    int64_t changes = -1;

    migrate(c);
    cr_assert_eq(ward__sqlite_ops.begin(c, WARD_TX_WRITE), WARD_ERR_OK);
    for (int i = 0; i < 5; i++) {
        char acct[16];
        snprintf(acct, sizeof acct, "acct-%d", i);
        struct ward_param p[] = {WARD_P_TEXT(acct), WARD_P_INT(i * 10)};
        cr_assert_eq(ward__sqlite_ops.exec(c, &q_bal_add, q_bal_add_id, p, 2, NULL, &changes),
                     WARD_ERR_OK);
        cr_assert_eq(changes, 1);
    }
    struct ward_param lt = WARD_P_INT(25);
    cr_assert_eq(ward__sqlite_ops.exec(c, &q_bal_del, q_bal_del_id, &lt, 1, NULL, &changes),
                 WARD_ERR_OK);
    cr_assert_eq(changes, 3);
    struct ward_rows *r = NULL;
    cr_assert_eq(ward__sqlite_ops.exec(c, &q_count, q_count_id, NULL, 0, &r, &changes),
                 WARD_ERR_OK);
    cr_assert_eq(changes, 0, "a SELECT changes nothing");
    FREE(r);
    struct ward_param none = WARD_P_TEXT("nobody");
    cr_assert_eq(ward__sqlite_ops.exec(c, &q_upd_none, q_upd_none_id, &none, 1, NULL, &changes),
                 WARD_ERR_OK);
    cr_assert_eq(changes, 0);
    cr_assert_eq(ward__sqlite_ops.exec(c, &q_ddl, q_ddl_id, NULL, 0, NULL, &changes),
                 WARD_ERR_OK);
    cr_assert_eq(changes, 0);

    /* RETURNING: SQLite counts the changes when the statement ends, so exec runs it to the
     * end and keeps the rows */
    struct ward_param two[] = {WARD_P_TEXT("x"), WARD_P_INT(7), WARD_P_TEXT("y"), WARD_P_INT(8)};
    cr_assert_eq(ward__sqlite_ops.exec(c, &q_bal_ret, q_bal_ret_id, two, 4, &r, &changes),
                 WARD_ERR_OK);
    cr_assert_eq(changes, 2);
    cr_assert_eq(r->ops->columns(r), 2);
    cr_assert_null(TEXT(r, 0), "no row before the first next");
    cr_assert(NEXT(r));
    cr_assert_str_eq(TEXT(r, 0), "x");
    cr_assert_eq(INT(r, 1), 7);
    cr_assert_str_eq(TEXT(r, 1), "7");
    cr_assert_not(ISNULL(r, 1));
    cr_assert(ISNULL(r, 2));
    cr_assert(NEXT(r));
    cr_assert_str_eq(TEXT(r, 0), "y");
    cr_assert_not(NEXT(r));
    cr_assert(ISNULL(r, 0));
    FREE(r);
    cr_assert_eq(ward__sqlite_ops.exec(c, &q_bal_ret, q_bal_ret_id, two, 4, &r, &changes),
                 WARD_ERR_CONSTRAINT, "the primary key");
    cr_assert_null(r);
    cr_assert_eq(ward__sqlite_ops.commit(c), WARD_ERR_OK);
    ward__sqlite_ops.disconnect(c);
}

Test(sqlite_ops, an_error_on_the_first_row_fails_exec_and_on_a_later_row_ends_the_rows)
{
    struct ward_store s;
    store_init(&s, "sqlite::memory:", 50 * MS);
    struct ward__conn *c = open_conn(&s, true);
    struct ward_rows *r = NULL;

    struct ward_param at = WARD_P_INT(1);
    cr_assert_eq(ward__sqlite_ops.exec(c, &q_bad_json, q_bad_json_id, &at, 1, &r, NULL),
                 WARD_ERR_DB);
    cr_assert_null(r);
    cr_assert(strstr(c->error, "malformed JSON") != NULL, "%s", c->error);

    at = WARD_P_INT(2);
    r = query(c, &q_bad_json, q_bad_json_id, &at, 1);
    cr_assert_str_eq(c->error, "");
    cr_assert(NEXT(r));
    cr_assert_eq(INT(r, 0), 1);
    cr_assert_not(NEXT(r));
    cr_assert(strstr(c->error, "malformed JSON") != NULL, "%s", c->error);
    cr_assert_not(NEXT(r));
    FREE(r);

    at = WARD_P_INT(0);
    r = query(c, &q_bad_json, q_bad_json_id, &at, 1);
    int n = 0;
    while (NEXT(r))
        n++;
    cr_assert_eq(n, 3, "the statement is reusable after its error");
    FREE(r);
    ward__sqlite_ops.disconnect(c);
}

Test(sqlite_ops, a_script_runs_every_statement_and_ping_answers)
{
    struct ward_store s;
    store_init(&s, url, 50 * MS);
    struct ward__conn *c = open_conn(&s, true);

    cr_assert_eq(ward__sqlite_ops.ping(c), WARD_ERR_OK);
    migrate(c);
    cr_assert_eq(ward__sqlite_ops.begin(c, WARD_TX_WRITE), WARD_ERR_OK);
    cr_assert_eq(ward__sqlite_ops.lock_migrations(c, true), WARD_ERR_OK);
    cr_assert_eq(ward__sqlite_ops.script(
                     c, "INSERT INTO ledger(account, amount, ref) VALUES ('a', 1, 's1');\n"
                        "INSERT INTO ledger(account, amount, ref) VALUES ('a', 2, 's2');\n"
                        "-- a comment\n"
                        "INSERT INTO ledger(account, amount, ref) VALUES ('a', 3, 's3');"),
                 WARD_ERR_OK, "%s", c->error);
    cr_assert_eq(count(c), 3);
    /* a failing statement stops the script with the store's error */
    cr_assert_eq(ward__sqlite_ops.script(c, "INSERT INTO ledger(account, amount, ref) VALUES "
                                            "('a', 4, 's4'); INSERT INTO ledger(account, amount, "
                                            "ref) VALUES ('a', 5, 's1');"),
                 WARD_ERR_CONSTRAINT);
    cr_assert(strstr(c->error, "UNIQUE") != NULL, "%s", c->error);
    cr_assert_eq(ward__sqlite_ops.script(c, "CREATE TABLE broken("), WARD_ERR_DB);
    cr_assert_eq(ward__sqlite_ops.script(c, NULL), WARD_ERR_INVAL);
    cr_assert_eq(ward__sqlite_ops.commit(c), WARD_ERR_OK);
    cr_assert_eq(count(c), 4, "the script's statements before the failure stay");
    cr_assert_eq(ward__sqlite_ops.ping(c), WARD_ERR_OK);
    ward__sqlite_ops.disconnect(c);
}

Test(sqlite_ops, a_file_locked_past_the_busy_timeout_at_connect_is_down_for_now)
{
    struct ward_store s;
    sqlite3 *other = NULL;
    struct ward__conn *c = (struct ward__conn *)&s;

    /* another process's rollback-journal database, held exclusively */
    store_init(&s, url, 50 * MS);
    cr_assert_eq(sqlite3_open(url + strlen("sqlite://"), &other), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(other, "CREATE TABLE t(x); BEGIN EXCLUSIVE; INSERT INTO t VALUES (1)",
                              NULL, NULL, NULL), SQLITE_OK);
    cr_assert_eq(ward__sqlite_ops.connect(&s, s.url, true, &c), WARD_ERR_STORE_DOWN);
    cr_assert_null(c);
    cr_assert_eq(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_close(other), SQLITE_OK);
    c = open_conn(&s, true);
    expect_text(c, &q_pragma_journal, q_pragma_journal_id, "wal");
    ward__sqlite_ops.disconnect(c);
}
