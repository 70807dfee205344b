/* test_store_group.c — group commit on a SQLite file (lib/store/group.c): many writers
 * share commits and lose nothing; three writers held until they all wait share exactly one
 * commit; a member that fails, asks for a retry or breaks the shared transaction leaves the
 * others' work as the contract says; group_max caps a group, and 1 turns grouping off. */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ward/metrics.h>
#include <ward/store.h>

#include "db_harness.h"
#include "store/store_int.h"

static struct pg_server *pg; /* never started: h_db_cleanup wants one */
static char tmpdir[64];
static char url[512];
static struct ward_store *st;
static struct ward_metrics *reg;

static void setup(void)
{
    cr_assert(h_db_sqlite(tmpdir, sizeof tmpdir, url, sizeof url, "group", "test.db"));
}

static void teardown(void)
{
    ward_store_close(st);
    st = NULL;
    ward_metrics_free(reg);
    reg = NULL;
    cr_assert(h_db_cleanup(&pg, tmpdir));
}

TestSuite(store_group, .init = setup, .fini = teardown, .timeout = 60);

static const struct ward_migration migrations[] = {
    {1, "CREATE TABLE items (id TEXT PRIMARY KEY, n BIGINT NOT NULL);", NULL},
};

static void open_store(int group_max)
{
    struct ward_store_settings s;
    ward_store_settings_default(&s);
    s.url = url;
    s.service = "test";
    s.migrations = migrations;
    s.n_migrations = 1;
    s.max_attempts = 1000;
    s.group_max = group_max;
    cr_assert_eq(ward_store_open(&s, &st), WARD_ERR_OK);
    reg = ward_metrics_new();
    cr_assert_not_null(reg);
    cr_assert_eq(ward_store_export(st, reg), WARD_ERR_OK);
}

static double metric(_Atomic(struct ward_metric *) *m)
{
    return ward_metric_value(atomic_load(m));
}

static double commits(void)
{
    return metric(&st->m_commits);
}

static double committed(void)
{
    return metric(&st->m_tx[WARD__TX_COMMITTED]);
}

static struct ward_query q_put = WARD_QUERY("INSERT INTO items (id, n) VALUES ($1, $2)");
static struct ward_query q_put_or_rollback =
    WARD_QUERY("INSERT OR ROLLBACK INTO items (id, n) VALUES ($1, $2)");
static struct ward_query q_has = WARD_QUERY("SELECT COUNT(*) FROM items WHERE id = $1");
static struct ward_query q_count = WARD_QUERY("SELECT COUNT(*) FROM items");

static enum ward_err put(struct ward_tx *tx, struct ward_query *q, const char *id)
{
    return ward_tx_exec(tx, q, (struct ward_param[]){WARD_P_TEXT(id), WARD_P_INT(1)}, 2, NULL);
}

struct count {
    const char *id; /* NULL: every row */
    int64_t n;
};

static enum ward_err count_fn(struct ward_tx *tx, void *arg)
{
    struct count *c = arg;
    struct ward_rows *rows = NULL;
    enum ward_err err =
        c->id != NULL
            ? ward_tx_exec(tx, &q_has, (struct ward_param[]){WARD_P_TEXT(c->id)}, 1, &rows)
            : ward_tx_exec(tx, &q_count, NULL, 0, &rows);
    if (err != WARD_ERR_OK)
        return err;
    c->n = ward_rows_next(rows) ? ward_rows_int64(rows, 0) : -1;
    ward_rows_free(rows);
    return WARD_ERR_OK;
}

static int64_t rows_with(const char *id)
{
    struct count c = {.id = id};
    cr_assert_eq(ward_store_tx(st, WARD_TX_READ, count_fn, &c), WARD_ERR_OK);
    return c.n;
}

/* ---- many writers -------------------------------------------------------------------- */

#define THREADS 8
#define EACH 40

static enum ward_err put_one(struct ward_tx *tx, void *arg)
{
    return put(tx, &q_put, arg);
}

static void *writer(void *arg)
{
    int t = (int)(intptr_t)arg;
    for (int i = 0; i < EACH; i++) {
        char id[32];
        snprintf(id, sizeof id, "t%d-%d", t, i);
        enum ward_err err = ward_store_tx(st, WARD_TX_WRITE, put_one, id);
        if (err != WARD_ERR_OK)
            return (void *)(intptr_t)err;
    }
    return NULL;
}

/* Runs the writers; returns the write transactions committed (before the reads that
 * check the rows, which count too). */
static double many_writers(void)
{
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, writer, (void *)(intptr_t)i), 0);
    for (int i = 0; i < THREADS; i++) {
        void *rc;
        pthread_join(t[i], &rc);
        cr_assert_null(rc, "a writer failed: %s", ward_strerror((enum ward_err)(intptr_t)rc));
    }
    double writes = committed();
    cr_assert_eq(writes, THREADS * EACH);
    cr_assert_eq(rows_with(NULL), THREADS * EACH);
    for (int i = 0; i < THREADS; i++)
        for (int j = 0; j < EACH; j++) {
            char id[32];
            snprintf(id, sizeof id, "t%d-%d", i, j);
            cr_assert_eq(rows_with(id), 1, "%s", id);
        }
    return writes;
}

Test(store_group, many_writers_share_commits_and_lose_nothing)
{
    open_store(64);
    double writes = many_writers();
    cr_log_info("%.0f transactions in %.0f commits", writes, commits());
    cr_assert_gt(commits(), 0);
    cr_assert_lt(commits(), writes, "no transactions were grouped");
}

Test(store_group, group_max_1_commits_every_transaction_alone)
{
    open_store(1);
    cr_assert_not(st->grouped);
    double writes = many_writers();
    cr_assert_eq(commits(), writes);
}

/* ---- three members, held until they all wait ------------------------------------------ */

/* A member: inserts id, then (optionally) a second row, then answers as told. */
struct member {
    const char *id;
    struct ward_query *dup_q; /* a second insert of dup, or NULL */
    const char *dup;
    int retry_first;   /* runs answering RETRY after their inserts */
    enum ward_err then; /* what the work returns after its inserts */
    bool hold;          /* the first run waits for the gate */
    int runs;
    enum ward_err result;
};

static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static bool held, gate_open;

/* Waits (at most 10 s) until *flag is true, under gate_lock. */
static bool wait_flag(bool *flag)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&gate_lock);
    while (!*flag && pthread_cond_timedwait(&gate_cond, &gate_lock, &until) == 0)
        ;
    bool ok = *flag;
    pthread_mutex_unlock(&gate_lock);
    return ok;
}

static void set_flag(bool *flag)
{
    pthread_mutex_lock(&gate_lock);
    *flag = true;
    pthread_cond_broadcast(&gate_cond);
    pthread_mutex_unlock(&gate_lock);
}

static enum ward_err member_fn(struct ward_tx *tx, void *arg)
{
    struct member *m = arg;
    if (++m->runs == 1 && m->hold) {
        set_flag(&held);
        if (!wait_flag(&gate_open))
            return WARD_ERR_TIMEOUT;
    }
    enum ward_err err = put(tx, &q_put, m->id);
    if (err == WARD_ERR_OK && m->dup_q != NULL)
        err = put(tx, m->dup_q, m->dup);
    if (err != WARD_ERR_OK)
        return err;
    return m->runs <= m->retry_first ? WARD_ERR_RETRY : m->then;
}

static void *member_thread(void *arg)
{
    struct member *m = arg;
    m->result = ward_store_tx(st, WARD_TX_WRITE, member_fn, m);
    return NULL;
}

/* Runs a, held in its work until b and c both wait to write, then lets them all go. The
 * order in which b and c follow a is the scheduler's: the tests hold for either. */
static void run_three(struct member *a, struct member *b, struct member *c)
{
    pthread_t ta, tb, tc;
    held = gate_open = false;
    a->hold = true;
    cr_assert_eq(pthread_create(&ta, NULL, member_thread, a), 0);
    cr_assert(wait_flag(&held), "a never ran");
    cr_assert_eq(pthread_create(&tb, NULL, member_thread, b), 0);
    cr_assert_eq(pthread_create(&tc, NULL, member_thread, c), 0);
    for (int i = 0; i < 10000 && ward__store_writers_waiting(st) < 2; i++)
        usleep(1000); /* polling only: the count decides, not the time */
    cr_assert_eq(ward__store_writers_waiting(st), 2, "b and c never waited to write");
    set_flag(&gate_open);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    pthread_join(tc, NULL);
}

Test(store_group, three_waiting_writers_share_one_commit)
{
    open_store(64);
    struct member a = {.id = "a"}, b = {.id = "b"}, c = {.id = "c"};
    double before = commits();
    run_three(&a, &b, &c);
    cr_assert_eq(a.result, WARD_ERR_OK);
    cr_assert_eq(b.result, WARD_ERR_OK);
    cr_assert_eq(c.result, WARD_ERR_OK);
    cr_assert_eq(commits() - before, 1);
    cr_assert_eq(committed(), 3);
    cr_assert_eq(rows_with(NULL), 3);
}

Test(store_group, group_max_caps_a_group)
{
    open_store(2);
    struct member a = {.id = "a"}, b = {.id = "b"}, c = {.id = "c"};
    double before = commits();
    run_three(&a, &b, &c);
    cr_assert(a.result == WARD_ERR_OK && b.result == WARD_ERR_OK && c.result == WARD_ERR_OK);
    cr_assert_eq(commits() - before, 2, "a with one follower, then the other alone");
    cr_assert_eq(rows_with(NULL), 3);
}

Test(store_group, a_member_failing_after_its_insert_is_undone_alone)
{
    open_store(64);
    struct member a = {.id = "a"}, c = {.id = "c"};
    struct member b = {.id = "b", .then = WARD_ERR_NOT_FOUND};
    double before = commits();
    run_three(&a, &b, &c);
    cr_assert_eq(b.result, WARD_ERR_NOT_FOUND);
    cr_assert_eq(a.result, WARD_ERR_OK);
    cr_assert_eq(c.result, WARD_ERR_OK);
    cr_assert_eq(commits() - before, 1);
    cr_assert_eq(committed(), 2);
    cr_assert_eq(metric(&st->m_tx[WARD__TX_ROLLED_BACK]), 1);
    cr_assert_eq(rows_with("b"), 0);
    cr_assert_eq(rows_with("a"), 1);
    cr_assert_eq(rows_with("c"), 1);
}

Test(store_group, a_member_hitting_a_constraint_is_undone_alone)
{
    open_store(64);
    /* b's second insert repeats a's key, which a's kept savepoint holds */
    struct member a = {.id = "a"}, c = {.id = "c"};
    struct member b = {.id = "b", .dup_q = &q_put, .dup = "a"};
    double before = commits();
    run_three(&a, &b, &c);
    cr_assert_eq(b.result, WARD_ERR_CONSTRAINT);
    cr_assert(a.result == WARD_ERR_OK && c.result == WARD_ERR_OK);
    cr_assert_eq(rows_with("b"), 0);
    cr_assert_eq(rows_with("a"), 1);
    cr_assert_eq(rows_with("c"), 1);
    cr_assert_eq(commits() - before, 1);
}

Test(store_group, a_member_asking_for_a_retry_runs_again_and_commits)
{
    open_store(64);
    struct member a = {.id = "a"}, c = {.id = "c"};
    struct member b = {.id = "b", .retry_first = 1};
    run_three(&a, &b, &c);
    cr_assert(a.result == WARD_ERR_OK && b.result == WARD_ERR_OK && c.result == WARD_ERR_OK);
    cr_assert_eq(a.runs, 1);
    cr_assert_eq(b.runs, 2);
    cr_assert_eq(c.runs, 1);
    cr_assert_eq(committed(), 3);
    cr_assert_eq(metric(&st->m_retries), 1);
    cr_assert_eq(rows_with("a"), 1);
    cr_assert_eq(rows_with("b"), 1);
    cr_assert_eq(rows_with("c"), 1);
}

Test(store_group, a_member_rolling_back_the_transaction_breaks_the_group)
{
    open_store(64);
    /* INSERT OR ROLLBACK on a's key: SQLite rolls the whole transaction back, a's kept work
     * with it; a (and c, when it ran before b) get RETRY and run again in a new group */
    struct member a = {.id = "a"}, c = {.id = "c"};
    struct member b = {.id = "b", .dup_q = &q_put_or_rollback, .dup = "a"};
    run_three(&a, &b, &c);
    cr_assert_eq(b.result, WARD_ERR_CONSTRAINT);
    cr_assert_eq(a.result, WARD_ERR_OK);
    cr_assert_eq(c.result, WARD_ERR_OK);
    cr_assert_eq(a.runs, 2, "a's work was rolled back with the group: it must run again");
    cr_assert_eq(committed(), 2);
    cr_assert_geq(metric(&st->m_retries), 1);
    cr_assert_eq(rows_with("a"), 1);
    cr_assert_eq(rows_with("b"), 0);
    cr_assert_eq(rows_with("c"), 1);
    /* the group goes on with new members afterwards */
    struct member d = {.id = "d"};
    cr_assert_eq(ward_store_tx(st, WARD_TX_WRITE, member_fn, &d), WARD_ERR_OK);
    cr_assert_eq(rows_with(NULL), 3);
}

Test(store_group, group_max_is_validated_and_memory_databases_are_not_grouped)
{
    struct ward_store_settings s;
    struct ward_store *x = NULL;
    ward_store_settings_default(&s);
    cr_assert_eq(s.group_max, 64);
    s.url = url;
    s.service = "test";
    s.group_max = 0;
    cr_assert_eq(ward_store_open(&s, &x), WARD_ERR_INVAL);
    s.group_max = 1025;
    cr_assert_eq(ward_store_open(&s, &x), WARD_ERR_INVAL);
    s.group_max = 1024;
    cr_assert_eq(ward_store_open(&s, &x), WARD_ERR_OK);
    cr_assert(x->grouped);
    ward_store_close(x);
    s.url = "sqlite::memory:";
    cr_assert_eq(ward_store_open(&s, &x), WARD_ERR_OK);
    cr_assert_not(x->grouped);
    ward_store_close(x);
}
