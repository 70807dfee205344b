/* tsan_store.c — the store's pool and transaction runner under ThreadSanitizer: threads
 * running read and write transactions at once on SQLite (one writer, readers) and on
 * PostgreSQL (a pool smaller than the thread count, serialization failures retried), an
 * idempotency claim race among them; every increment must land exactly once. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ward/idempotency.h>
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

int main(void)
{
    char dir[] = "/tmp/ward-tsan-store-XXXXXX", url[128];
    if (mkdtemp(dir) == NULL)
        return 1;
    snprintf(url, sizeof url, "sqlite://%s/t.db", dir);
    run(url, "sqlite");
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
