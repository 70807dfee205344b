/* test_idempotency.c — Idempotency-Key (include/ward/idempotency.h) on both backends:
 * missing and malformed keys; the first request proceeds and its response, stored in the
 * effect's own transaction, is replayed; another body or path with the key is a mismatch;
 * a second request while the first runs is told so; a crashed request's key is taken over
 * after its lease and its late completion refused; release and finish; expiry and the
 * sweep on a fake wall clock; many threads racing for one key, one effect; the claim
 * inside the effect's own transaction, its rollback and its race. */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ward/idempotency.h>
#include <ward/store.h>

#include "db_harness.h"

#define S WARD_NS_PER_S
#define T0 (1700000000 * S) /* the fake wall clock's start: unix time in ns */

static struct pg_server *pg;
static char tmpdir[64];
static char url[512];
static struct ward_store *st;
static struct ward_idem *im;
static struct ward_clock *wall;

static void teardown(void)
{
    ward_idem_free(im);
    im = NULL;
    ward_store_close(st);
    st = NULL;
    ward_clock_free(wall);
    wall = NULL;
    cr_assert(h_db_cleanup(&pg, tmpdir));
}

TestSuite(idem_sqlite, .fini = teardown, .timeout = 60);
TestSuite(idem_pg, .fini = teardown, .timeout = 90);

static const struct ward_migration migrations[] = {
    {1, WARD_IDEM_SCHEMA, NULL},
    {2, "CREATE TABLE effects (id TEXT PRIMARY KEY);", NULL},
};

static void start(void)
{
    struct ward_store_settings s;
    ward_store_settings_default(&s);
    s.url = url;
    s.service = "test";
    s.migrations = migrations;
    s.n_migrations = 2;
    cr_assert_eq(ward_store_open(&s, &st), WARD_ERR_OK);
    wall = ward_clock_fake_new(T0);
    cr_assert_not_null(wall);
    struct ward_idem_settings is;
    ward_idem_settings_default(&is);
    is.scope = "test";
    is.wall = wall;
    is.sweep_interval = 0;
    cr_assert_eq(ward_idem_new(st, &is, &im), WARD_ERR_OK);
}

static void use_sqlite(void)
{
    cr_assert(h_db_sqlite(tmpdir, sizeof tmpdir, url, sizeof url, "idem", "test.db"));
    start();
}

static void use_pg(void)
{
    cr_assert(h_db_pg(&pg, url, sizeof url), "PostgreSQL did not start");
    start();
}

#define BOTH(name)                                                                        \
    static void name(void);                                                               \
    Test(idem_sqlite, name) { use_sqlite(); name(); }                                     \
    Test(idem_pg, name) { use_pg(); name(); }                                             \
    static void name(void)

static enum ward_idem_verdict claim(const char *key, const char *path, const char *body,
                                   struct ward_idem_claim *c)
{
    cr_assert_eq(ward_idem_claim(im, key, true, "POST", path, body, body != NULL ? strlen(body) : 0,
                                 "req-1", c),
                 WARD_ERR_OK);
    return c->verdict;
}

/* The effect: one row in effects, and the response stored with it. */
struct effect {
    const char *id;
    const struct ward_idem_claim *c;
    int status;
    const char *body;
};

static struct ward_query q_effect = WARD_QUERY("INSERT INTO effects (id) VALUES ($1)");
static struct ward_query q_effects = WARD_QUERY("SELECT COUNT(*) FROM effects");
static struct ward_query q_keys = WARD_QUERY("SELECT COUNT(*) FROM ward_idempotency");

static enum ward_err effect_fn(struct ward_tx *tx, void *arg)
{
    struct effect *e = arg;
    enum ward_err err = ward_tx_exec(tx, &q_effect, (struct ward_param[]){WARD_P_TEXT(e->id)}, 1,
                                     NULL);
    if (err == WARD_ERR_OK)
        err = ward_idem_complete(tx, im, e->c, e->status, "application/json", "/effects/1",
                                 e->body, strlen(e->body));
    return err;
}

static enum ward_err do_effect(const char *id, const struct ward_idem_claim *c)
{
    struct effect e = {id, c, 201, "{\"id\":\"e1\"}"};
    return ward_store_tx(st, WARD_TX_WRITE, effect_fn, &e);
}

struct one {
    struct ward_query *q;
    int64_t n;
};

static enum ward_err one_fn(struct ward_tx *tx, void *arg)
{
    struct one *o = arg;
    struct ward_rows *rows = NULL;
    enum ward_err err = ward_tx_exec(tx, o->q, NULL, 0, &rows);
    if (err == WARD_ERR_OK) {
        o->n = ward_rows_next(rows) ? ward_rows_int64(rows, 0) : -1;
        ward_rows_free(rows);
    }
    return err;
}

static int64_t count(struct ward_query *q)
{
    struct one o = {q, -1};
    cr_assert_eq(ward_store_tx(st, WARD_TX_READ, one_fn, &o), WARD_ERR_OK);
    return o.n;
}

BOTH(missing_and_malformed_keys)
{
    struct ward_idem_claim c;
    cr_assert_eq(claim(NULL, "/x", "{}", &c), WARD_IDEM_MISSING);
    cr_assert_eq(ward_idem_claim(im, NULL, false, "POST", "/x", "{}", 2, NULL, &c), WARD_ERR_OK);
    cr_assert_eq(c.verdict, WARD_IDEM_PROCEED, "not required: go on without a key");
    cr_assert_eq(do_effect("e0", &c), WARD_ERR_OK, "nothing stored, nothing refused");
    char long_key[300];
    memset(long_key, 'k', 256);
    long_key[256] = '\0';
    const char *bad[] = {"", "has space", "tab\there", long_key, "caf\xc3\xa9"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(claim(bad[i], "/x", "{}", &c), WARD_IDEM_INVALID, "%s", bad[i]);
    long_key[255] = '\0';
    cr_assert_eq(claim(long_key, "/x", "{}", &c), WARD_IDEM_PROCEED, "255 characters are fine");
    cr_assert_eq(ward_idem_release(im, &c), WARD_ERR_OK);
}

BOTH(the_first_response_is_replayed_and_another_request_is_a_mismatch)
{
    struct ward_idem_claim c;
    cr_assert_eq(claim("k1", "/effects", "{\"a\":1}", &c), WARD_IDEM_PROCEED);
    cr_assert_eq(do_effect("e1", &c), WARD_ERR_OK);
    ward_idem_claim_fini(&c);

    cr_assert_eq(claim("k1", "/effects", "{\"a\":1}", &c), WARD_IDEM_REPLAY);
    cr_assert_eq(c.status, 201);
    cr_assert_str_eq(c.content_type, "application/json");
    cr_assert_str_eq(c.location, "/effects/1");
    cr_assert_eq(c.body_len, strlen("{\"id\":\"e1\"}"));
    cr_assert_str_eq(c.body, "{\"id\":\"e1\"}");
    ward_idem_claim_fini(&c);

    cr_assert_eq(claim("k1", "/effects", "{\"a\":2}", &c), WARD_IDEM_MISMATCH);
    cr_assert_eq(claim("k1", "/other", "{\"a\":1}", &c), WARD_IDEM_MISMATCH);
    cr_assert_eq(count(&q_effects), 1, "the effect happened once");
}

BOTH(a_running_key_is_refused_until_its_lease_runs_out)
{
    struct ward_idem_claim first, second, third;
    cr_assert_eq(claim("k2", "/effects", "{}", &first), WARD_IDEM_PROCEED);
    cr_assert_eq(claim("k2", "/effects", "{}", &second), WARD_IDEM_RUNNING);
    cr_assert_eq(claim("k2", "/effects", "{\"x\":1}", &second), WARD_IDEM_MISMATCH);
    /* the first request "crashed": after its 60 s lease the key is free again */
    ward_clock_fake_advance(wall, 61 * S);
    cr_assert_eq(claim("k2", "/effects", "{}", &third), WARD_IDEM_PROCEED);
    cr_assert_str_neq(third.owner, first.owner);
    /* the first one's late completion is refused and its effect rolled back */
    cr_assert_eq(do_effect("late", &first), WARD_ERR_CONFLICT);
    cr_assert_eq(do_effect("e3", &third), WARD_ERR_OK);
    cr_assert_eq(count(&q_effects), 1);
}

BOTH(release_frees_the_key_and_finish_stores_an_answer_without_effect)
{
    struct ward_idem_claim c;
    cr_assert_eq(claim("k3", "/effects", "{}", &c), WARD_IDEM_PROCEED);
    cr_assert_eq(ward_idem_release(im, &c), WARD_ERR_OK);
    cr_assert_eq(claim("k3", "/effects", "{}", &c), WARD_IDEM_PROCEED, "released: runs anew");
    const char *problem = "{\"status\":422}";
    cr_assert_eq(ward_idem_finish(im, &c, 422, "application/problem+json", problem,
                                  strlen(problem)),
                 WARD_ERR_OK);
    cr_assert_eq(claim("k3", "/effects", "{}", &c), WARD_IDEM_REPLAY);
    cr_assert_eq(c.status, 422);
    cr_assert_str_eq(c.content_type, "application/problem+json");
    cr_assert_null(c.location);
    cr_assert_str_eq(c.body, problem);
    ward_idem_claim_fini(&c);
}

BOTH(keys_expire_after_their_ttl_and_the_sweep_deletes_them)
{
    struct ward_idem_claim c;
    cr_assert_eq(claim("k4", "/effects", "{}", &c), WARD_IDEM_PROCEED);
    cr_assert_eq(do_effect("e4", &c), WARD_ERR_OK);
    cr_assert_eq(claim("k5", "/effects", "{}", &c), WARD_IDEM_PROCEED);
    cr_assert_eq(do_effect("e5", &c), WARD_ERR_OK);
    int64_t deleted = -1;
    ward_clock_fake_advance(wall, 23 * 3600 * S);
    cr_assert_eq(ward_idem_sweep(im, &deleted), WARD_ERR_OK);
    cr_assert_eq(deleted, 0, "23 h: kept");
    cr_assert_eq(claim("k4", "/effects", "{}", &c), WARD_IDEM_REPLAY);
    ward_idem_claim_fini(&c);
    ward_clock_fake_advance(wall, 3600 * S + 1);
    /* expired but not swept yet: a new request with the key is a new operation */
    cr_assert_eq(claim("k4", "/effects", "{\"new\":true}", &c), WARD_IDEM_PROCEED);
    cr_assert_eq(ward_idem_release(im, &c), WARD_ERR_OK);
    cr_assert_eq(ward_idem_sweep(im, &deleted), WARD_ERR_OK);
    cr_assert_eq(deleted, 1, "k5 expired (k4 was released)");
    cr_assert_eq(count(&q_keys), 0);
}

/* Many requests with one key at once: one proceeds, does the effect; none duplicates it. */
#define RACERS 8

static void *racer(void *arg)
{
    struct ward_idem_claim c;
    intptr_t i = (intptr_t)arg;
    if (ward_idem_claim(im, "race", true, "POST", "/effects", "{}", 2, NULL, &c) != WARD_ERR_OK)
        return (void *)-1;
    intptr_t v = c.verdict;
    if (c.verdict == WARD_IDEM_PROCEED) {
        char id[16];
        snprintf(id, sizeof id, "r%ld", (long)i);
        if (do_effect(id, &c) != WARD_ERR_OK)
            v = -2;
    }
    ward_idem_claim_fini(&c);
    return (void *)v;
}

BOTH(racing_requests_with_one_key_do_the_work_once)
{
    pthread_t t[RACERS];
    int proceeded = 0, other = 0;
    for (intptr_t i = 0; i < RACERS; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, racer, (void *)i), 0);
    for (int i = 0; i < RACERS; i++) {
        void *v;
        pthread_join(t[i], &v);
        intptr_t r = (intptr_t)v;
        cr_assert(r >= 0, "racer %d failed: %ld", i, (long)r);
        if (r == WARD_IDEM_PROCEED)
            proceeded++;
        else if (r == WARD_IDEM_RUNNING || r == WARD_IDEM_REPLAY)
            other++;
    }
    cr_assert_eq(proceeded, 1);
    cr_assert_eq(other, RACERS - 1);
    cr_assert_eq(count(&q_effects), 1);
}

/* The claim inside the effect's own transaction (ward_idem_claim_in): one commit for
 * claim, effect and answer; fail: the work refuses after claiming (rolled back). */
struct inline_effect {
    const char *key, *body, *id;
    bool fail;
    struct ward_idem_claim c;
};

static enum ward_err inline_fn(struct ward_tx *tx, void *arg)
{
    struct inline_effect *e = arg;
    enum ward_err err = ward_idem_claim_in(tx, im, e->key, true, "POST", "/effects", e->body,
                                           strlen(e->body), "req-2", &e->c);
    if (err != WARD_ERR_OK || e->c.verdict != WARD_IDEM_PROCEED)
        return err;
    err = ward_tx_exec(tx, &q_effect, (struct ward_param[]){WARD_P_TEXT(e->id)}, 1, NULL);
    if (err == WARD_ERR_OK)
        err = ward_idem_complete(tx, im, &e->c, 201, "application/json", NULL, "{\"id\":1}", 8);
    return err == WARD_ERR_OK && e->fail ? WARD_ERR_NOT_FOUND : err;
}

static enum ward_idem_verdict inline_run(const char *key, const char *body, const char *id,
                                        bool fail, enum ward_err want)
{
    struct inline_effect e = {.key = key, .body = body, .id = id, .fail = fail};
    cr_assert_eq(ward_store_tx(st, WARD_TX_WRITE, inline_fn, &e), want);
    enum ward_idem_verdict v = e.c.verdict;
    ward_idem_claim_fini(&e.c);
    return v;
}

BOTH(a_claim_inside_the_effects_transaction_commits_or_vanishes_with_it)
{
    cr_assert_eq(inline_run(NULL, "{}", "x", false, WARD_ERR_OK), WARD_IDEM_MISSING);
    cr_assert_eq(inline_run("bad key", "{}", "x", false, WARD_ERR_OK), WARD_IDEM_INVALID);
    cr_assert_eq(count(&q_keys), 0, "no verdict of the key alone touches the table");
    /* the work refused after claiming: the claim is rolled back with it, no key stays */
    cr_assert_eq(inline_run("k6", "{}", "e6", true, WARD_ERR_NOT_FOUND), WARD_IDEM_PROCEED);
    cr_assert_eq(count(&q_keys), 0);
    cr_assert_eq(count(&q_effects), 0);
    /* then it succeeds: replayed afterwards, by either kind of claim */
    cr_assert_eq(inline_run("k6", "{}", "e6", false, WARD_ERR_OK), WARD_IDEM_PROCEED);
    cr_assert_eq(inline_run("k6", "{}", "e6b", false, WARD_ERR_OK), WARD_IDEM_REPLAY);
    cr_assert_eq(inline_run("k6", "{\"b\":2}", "e6c", false, WARD_ERR_OK), WARD_IDEM_MISMATCH);
    struct ward_idem_claim c;
    cr_assert_eq(claim("k6", "/effects", "{}", &c), WARD_IDEM_REPLAY);
    cr_assert_str_eq(c.body, "{\"id\":1}");
    ward_idem_claim_fini(&c);
    cr_assert_eq(count(&q_effects), 1);
    /* a key running under a two-transaction claim is refused inside a transaction too */
    cr_assert_eq(claim("k7", "/effects", "{}", &c), WARD_IDEM_PROCEED);
    cr_assert_eq(inline_run("k7", "{}", "e7", false, WARD_ERR_OK), WARD_IDEM_RUNNING);
    cr_assert_eq(count(&q_effects), 1);
}

static void *inline_racer(void *arg)
{
    char id[16];
    snprintf(id, sizeof id, "q%ld", (long)(intptr_t)arg);
    struct inline_effect e = {.key = "race2", .body = "{}", .id = id};
    enum ward_err err = ward_store_tx(st, WARD_TX_WRITE, inline_fn, &e);
    intptr_t v = err == WARD_ERR_OK ? (intptr_t)e.c.verdict : -1;
    ward_idem_claim_fini(&e.c);
    return (void *)v;
}

BOTH(racing_requests_claiming_inside_their_transactions_do_the_work_once)
{
    pthread_t t[RACERS];
    int proceeded = 0, replayed = 0;
    for (intptr_t i = 0; i < RACERS; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, inline_racer, (void *)i), 0);
    for (int i = 0; i < RACERS; i++) {
        void *v;
        pthread_join(t[i], &v);
        intptr_t r = (intptr_t)v;
        cr_assert(r >= 0, "racer %d failed", i);
        proceeded += r == WARD_IDEM_PROCEED;
        replayed += r == WARD_IDEM_REPLAY; /* never RUNNING: nobody sees the claim uncommitted */
    }
    cr_assert_eq(proceeded, 1);
    cr_assert_eq(replayed, RACERS - 1);
    cr_assert_eq(count(&q_effects), 1);
}
