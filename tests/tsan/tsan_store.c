/* tsan_store.c — the store's pool and transaction runner under ThreadSanitizer: threads
 * running read and write transactions at once on SQLite (one writer, readers) and on
 * PostgreSQL (a pool smaller than the thread count, serialization failures retried), an
 * idempotency claim race among them; every increment must land exactly once. Then many
 * threads writing only, on a SQLite file, so that group commit hands the writer from
 * thread to thread, some members failing inside their groups: the counts stay exact. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ward/idempotency.h>
#include <ward/metrics.h>
#include <ward/store.h>

#include "pg_harness.h"

#include "tsan_check.h"

#define THREADS 6
#define EACH 30


static const struct ward_migration migrations[] = {
    {1, "CREATE TABLE counter (id INTEGER PRIMARY KEY, n BIGINT NOT NULL);"
        "INSERT INTO counter (id, n) VALUES (1, 0);", NULL},
    {2, WARD_IDEM_SCHEMA, NULL},
};

static struct ward_query q_read = WARD_QUERY("SELECT n FROM counter WHERE id = 1");
static struct ward_query q_write = WARD_QUERY("UPDATE counter SET n = n + 1 WHERE id = 1");

static struct ward_store *st;
static struct ward_idem *im;
static atomic_int errors, proceeded;

static enum ward_err bump(struct ward_tx *tx, void *arg)
{
    (void)arg;
    return ward_tx_exec(tx, &q_write, NULL, 0, NULL);
}

static enum ward_err peek(struct ward_tx *tx, void *arg)
{
    struct ward_rows *rows = NULL;
    enum ward_err err = ward_tx_exec(tx, &q_read, NULL, 0, &rows);
    if (err == WARD_ERR_OK) {
        *(int64_t *)arg = ward_rows_next(rows) ? ward_rows_int64(rows, 0) : -1;
        ward_rows_free(rows);
    }
    return err;
}

static void *worker(void *arg)
{
    (void)arg;
    for (int i = 0; i < EACH; i++) {
        int64_t n = 0;
        if (ward_store_tx(st, WARD_TX_WRITE, bump, NULL) != WARD_ERR_OK ||
            ward_store_tx(st, WARD_TX_READ, peek, &n) != WARD_ERR_OK)
            atomic_fetch_add(&errors, 1);
    }
    struct ward_idem_claim c;
    if (ward_idem_claim(im, "one-key", true, "POST", "/x", "{}", 2, NULL, &c) != WARD_ERR_OK)
        atomic_fetch_add(&errors, 1);
    else if (c.verdict == WARD_IDEM_PROCEED)
        atomic_fetch_add(&proceeded, 1);
    ward_idem_claim_fini(&c);
    return NULL;
}

static void run(const char *url, const char *name)
{
    struct ward_store_settings s;
    struct ward_idem_settings is;
    char what[128];
    pthread_t t[THREADS];
    int64_t n = -1;

    ward_store_settings_default(&s);
    s.url = url;
    s.service = "tsan";
    s.migrations = migrations;
    s.n_migrations = 2;
    s.pool_size = 3;
    s.max_attempts = 1000;
    ward_idem_settings_default(&is);
    is.scope = "tsan";
    is.sweep_interval = 0;
    atomic_store(&errors, 0);
    atomic_store(&proceeded, 0);
    snprintf(what, sizeof what, "%s: open", name);
    check(ward_store_open(&s, &st) == WARD_ERR_OK && ward_idem_new(st, &is, &im) == WARD_ERR_OK,
          what);
    if (st == NULL || im == NULL)
        return;
    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, worker, NULL);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    snprintf(what, sizeof what, "%s: no transaction failed", name);
    check(atomic_load(&errors) == 0, what);
    snprintf(what, sizeof what, "%s: every increment landed once", name);
    check(ward_store_tx(st, WARD_TX_READ, peek, &n) == WARD_ERR_OK && n == THREADS * EACH, what);
    snprintf(what, sizeof what, "%s: one claim of the key proceeded", name);
    check(atomic_load(&proceeded) == 1, what);
    ward_idem_free(im);
    ward_store_close(st);
    im = NULL;
    st = NULL;
}

/* ---- group commit ------------------------------------------------------------------- */

#define G_THREADS 8
#define G_EACH 40
#define G_FAIL_EVERY 5 /* each thread's 5th, 10th ... transaction fails after its update */

static enum ward_err bump_or_fail(struct ward_tx *tx, void *arg)
{
    enum ward_err err = ward_tx_exec(tx, &q_write, NULL, 0, NULL);
    if (err != WARD_ERR_OK)
        return err;
    return *(const bool *)arg ? WARD_ERR_NOT_FOUND : WARD_ERR_OK;
}

static void *group_worker(void *arg)
{
    (void)arg;
    for (int i = 1; i <= G_EACH; i++) {
        bool fail = i % G_FAIL_EVERY == 0;
        enum ward_err want = fail ? WARD_ERR_NOT_FOUND : WARD_ERR_OK;
        if (ward_store_tx(st, WARD_TX_WRITE, bump_or_fail, &fail) != want)
            atomic_fetch_add(&errors, 1);
    }
    return NULL;
}

/* The value of the counter family name{service="tsan"[,result]} in reg. */
static double counter(struct ward_metrics *reg, const char *name, const char *result)
{
    static const char *const labels[] = {"service", "result"};
    struct ward_metric_family *f =
        ward_metrics_counter(reg, name, "", result != NULL ? 2 : 1, labels);
    struct ward_metric *m =
        f != NULL ? ward_metric_get(f, (const char *const[]){"tsan", result}) : NULL;
    return m != NULL ? ward_metric_value(m) : -1;
}

static void run_grouped(const char *url)
{
    struct ward_store_settings s;
    struct ward_metrics *reg = ward_metrics_new();
    pthread_t t[G_THREADS];
    int64_t n = -1;
    const int failing = G_THREADS * (G_EACH / G_FAIL_EVERY), total = G_THREADS * G_EACH;

    ward_store_settings_default(&s);
    s.url = url;
    s.service = "tsan";
    s.migrations = migrations;
    s.n_migrations = 1;
    s.max_attempts = 1000;
    atomic_store(&errors, 0);
    check(reg != NULL && ward_store_open(&s, &st) == WARD_ERR_OK &&
              ward_store_export(st, reg) == WARD_ERR_OK,
          "grouped: open");
    if (st == NULL || reg == NULL) {
        ward_store_close(st);
        st = NULL;
        ward_metrics_free(reg);
        return;
    }
    for (int i = 0; i < G_THREADS; i++)
        pthread_create(&t[i], NULL, group_worker, NULL);
    for (int i = 0; i < G_THREADS; i++)
        pthread_join(t[i], NULL);
    check(atomic_load(&errors) == 0, "grouped: every transaction answered as its work did");
    double committed = counter(reg, "ward_store_transactions_total", "committed");
    double rolled_back = counter(reg, "ward_store_transactions_total", "rolled_back");
    double commits = counter(reg, "ward_store_commits_total", NULL);
    printf("# grouped: %.0f transactions committed in %.0f commits\n", committed, commits);
    check(committed == total - failing && rolled_back == failing,
          "grouped: transactions counted exactly");
    check(commits >= 1 && commits < committed, "grouped: transactions shared commits");
    check(ward_store_tx(st, WARD_TX_READ, peek, &n) == WARD_ERR_OK && n == total - failing,
          "grouped: every kept increment landed once, no failed one did");
    ward_store_close(st);
    st = NULL;
    ward_metrics_free(reg);
}

int main(void)
{
    char dir[] = "/tmp/ward-tsan-store-XXXXXX", url[128];
    if (mkdtemp(dir) == NULL)
        return 1;
    snprintf(url, sizeof url, "sqlite://%s/t.db", dir);
    run(url, "sqlite");
    snprintf(url, sizeof url, "sqlite://%s/grouped.db", dir);
    run_grouped(url);
    struct pg_server *pg = pg_start();
    check(pg != NULL, "postgresql started");
    if (pg != NULL)
        run(pg_url(pg), "postgresql");
    pg_stop(pg);
    snprintf(url, sizeof url, "rm -rf '%s'", dir);
    if (system(url) != 0)
        return 1;
    return tsan_summary();
}
