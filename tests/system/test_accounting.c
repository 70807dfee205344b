/* test_accounting.c — accounting-service as a client sees it, every endpoint test on
 * SQLite and on PostgreSQL: accounts, balanced transactions and every bad input, the
 * Idempotency-Key, reversals (idempotent, race-free, never of a reversal), entries the
 * database itself refuses to change, the zero-sum invariant after a random run, two
 * instances on one PostgreSQL under concurrent retried posts, and a database that goes
 * away and comes back. */
#include <criterion/criterion.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ward/money.h>
#include <ward/store.h>

#include "harness.h"
#include "db_harness.h"

static struct pg_server *pg;
static char tmpdir[64];
static char db[512];
static struct h_proc *svc, *svc2;

static void stop_one(struct h_proc **p)
{
    if (*p == NULL)
        return;
    int st = h_stop(*p, 10000);
    h_free(*p);
    *p = NULL;
    cr_assert_eq(st, 0, "accounting-service exited with %d (a sanitizer report or a failed drain)", st);
}

static void teardown(void)
{
    struct h_proc *a = svc, *b = svc2;
    svc = svc2 = NULL;
    int sa = a != NULL ? h_stop(a, 10000) : 0;
    int sb = b != NULL ? h_stop(b, 10000) : 0;
    h_free(a);
    h_free(b);
    cr_assert(h_db_cleanup(&pg, tmpdir));
    cr_assert_eq(sa, 0, "accounting-service exited with %d", sa);
    cr_assert_eq(sb, 0, "accounting-service (second) exited with %d", sb);
}

TestSuite(accounting_sqlite, .fini = teardown, .timeout = 60);
TestSuite(accounting_pg, .fini = teardown, .timeout = 90);

static struct h_proc *start_service(void)
{
    const char *const args[] = {"--db", db, "--shutdown-delay", "0", "--threads", "4",
                                "--no-access-log", NULL};
    return h_start("accounting-service", args);
}

static void use_sqlite(void)
{
    cr_assert(h_db_sqlite(tmpdir, sizeof tmpdir, db, sizeof db, "acct", "x.db"));
    svc = start_service();
}

static void use_pg(void)
{
    cr_assert(h_db_pg(&pg, db, sizeof db), "PostgreSQL did not start");
    svc = start_service();
}

/* Every endpoint test runs on both backends. */
#define BOTH(name)                                                                        \
    static void name(void);                                                               \
    Test(accounting_sqlite, name) { use_sqlite(); name(); }                               \
    Test(accounting_pg, name) { use_pg(); name(); }                                       \
    static void name(void)

/* --- talking to the service --- */

static void post_on(struct h_proc *p, const char *path, const char *key, const char *body,
                    struct h_resp *r)
{
    char kh[320];
    const char *headers[] = {"Content-Type: application/json", NULL, NULL};
    if (key != NULL) {
        snprintf(kh, sizeof kh, "Idempotency-Key: %s", key);
        headers[1] = kh;
    }
    cr_assert(h_http(p->port, "POST", path, headers, body, body != NULL ? strlen(body) : 0, r),
              "transport error on POST %s", path);
}

static void post(const char *path, const char *key, const char *body, struct h_resp *r)
{
    post_on(svc, path, key, body, r);
}

static void get(const char *path, struct h_resp *r)
{
    cr_assert(h_http(svc->port, "GET", path, NULL, NULL, 0, r), "transport error on GET %s", path);
}

static const char *str(const json_t *o, const char *key)
{
    const char *v = json_string_value(json_object_get(o, key));
    cr_assert_not_null(v, "no string %s in %s", key, json_dumps(o, JSON_COMPACT));
    return v;
}

static bool replayed(const struct h_resp *r)
{
    char *v = h_resp_header(r, "Idempotent-Replayed");
    bool yes = v != NULL && strcmp(v, "true") == 0;
    free(v);
    return yes;
}

/* Asserts status and problem type, and (when pointer is not NULL) that errors names it. */
static void expect_problem(const struct h_resp *r, long status, const char *slug, const char *pointer)
{
    cr_assert_eq(r->status, status, "want %ld, got %ld: %s", status, r->status, r->body);
    char *ct = h_resp_header(r, "Content-Type");
    cr_assert_str_eq(ct, "application/problem+json");
    free(ct);
    char type[128];
    snprintf(type, sizeof type, "https://ward.dev/problems/%s", slug);
    cr_assert_not_null(r->json, "not JSON: %s", r->body);
    cr_assert_str_eq(str(r->json, "type"), type, "body: %s", r->body);
    if (pointer == NULL)
        return;
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(r->json, "errors"), i, e) {
        if (strcmp(json_string_value(json_object_get(e, "pointer")), pointer) == 0)
            return;
    }
    cr_assert_fail("no error for %s in %s", pointer, r->body);
}

/* Opens an account and returns its id in out. */
static void account(const char *name, const char *currency, const char *type, char *out, size_t size)
{
    char body[256];
    struct h_resp r;
    snprintf(body, sizeof body, "{\"name\":\"%s\",\"currency\":\"%s\",\"type\":\"%s\"}", name,
             currency, type);
    post("/accounts", NULL, body, &r);
    cr_assert_eq(r.status, 201, "%s", r.body);
    snprintf(out, size, "%s", str(r.json, "id"));
    h_resp_free(&r);
}

/* One entry of a transaction to post. */
struct ent {
    const char *account;
    bool debit;
    const char *amount; /* decimal text, written as a JSON string */
    const char *currency;
};

static char *txn_body(const char *description, const struct ent *e, size_t n)
{
    size_t cap = 256 + n * 256;
    char *s = malloc(cap);
    cr_assert_not_null(s);
    size_t len = (size_t)snprintf(s, cap, "{\"description\":\"%s\",\"entries\":[", description);
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(s + len, cap - len,
                                "%s{\"account_id\":\"%s\",\"direction\":\"%s\",\"amount\":\"%s\",\"currency\":\"%s\"}",
                                i > 0 ? "," : "", e[i].account, e[i].debit ? "debit" : "credit",
                                e[i].amount, e[i].currency);
    snprintf(s + len, cap - len, "]}");
    return s;
}

/* Posts a balanced pair (debit from, credit to) and returns the transaction id in out. */
static void transfer(const char *key, const char *debit, const char *credit, const char *amount,
                     const char *currency, char *out, size_t size)
{
    struct ent e[] = {{debit, true, amount, currency}, {credit, false, amount, currency}};
    char *body = txn_body("transfer", e, 2);
    struct h_resp r;
    post("/transactions", key, body, &r);
    cr_assert_eq(r.status, 201, "%s", r.body);
    if (out != NULL)
        snprintf(out, size, "%s", str(r.json, "id"));
    h_resp_free(&r);
    free(body);
}

static int64_t minor_of(const json_t *money)
{
    const struct ward_currency *cur = ward_currency_find(str(money, "currency"));
    cr_assert_not_null(cur);
    int64_t v = 0;
    cr_assert_eq(ward_money_parse(str(money, "amount"), cur, WARD_MONEY_ALLOW_NEGATIVE, &v), WARD_ERR_OK);
    return v;
}

/* The balance of account id in minor units (debits - credits). */
static int64_t balance(const char *id)
{
    char path[128];
    struct h_resp r;
    snprintf(path, sizeof path, "/accounts/%s", id);
    get(path, &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    int64_t v = minor_of(json_object_get(r.json, "balance"));
    h_resp_free(&r);
    return v;
}

/* Walks GET path (a list) page by page; returns how many items and, when sum_balances,
 * checks that each currency's account balances sum to zero. */
static size_t walk(const char *path, bool sum_balances)
{
    char url[512], cursor[64] = "";
    size_t total = 0;
    struct {
        char code[4];
        int64_t sum;
    } sums[8] = {0};
    size_t nsums = 0;
    for (int pages = 0; pages < 1000; pages++) {
        struct h_resp r;
        snprintf(url, sizeof url, "%s%slimit=7%s%s", path, strchr(path, '?') ? "&" : "?",
                 cursor[0] ? "&cursor=" : "", cursor);
        get(url, &r);
        cr_assert_eq(r.status, 200, "%s", r.body);
        json_t *data = json_object_get(r.json, "data");
        cr_assert(json_is_array(data));
        total += json_array_size(data);
        size_t i;
        json_t *a;
        json_array_foreach(data, i, a) {
            if (!sum_balances)
                continue;
            json_t *b = json_object_get(a, "balance");
            const char *code = str(b, "currency");
            size_t k = 0;
            while (k < nsums && strcmp(sums[k].code, code) != 0)
                k++;
            cr_assert_lt(k, 8);
            if (k == nsums)
                snprintf(sums[nsums++].code, 4, "%s", code);
            cr_assert_eq(ward_money_add(sums[k].sum, minor_of(b), &sums[k].sum), WARD_ERR_OK);
        }
        const char *next = json_string_value(json_object_get(r.json, "next_cursor"));
        if (next == NULL) {
            h_resp_free(&r);
            break;
        }
        cr_assert_eq(json_array_size(data), 7);
        snprintf(cursor, sizeof cursor, "%s", next);
        h_resp_free(&r);
    }
    for (size_t k = 0; k < nsums; k++)
        cr_assert_eq(sums[k].sum, 0, "balances in %s sum to %" PRId64, sums[k].code, sums[k].sum);
    return total;
}

/* GET /ledger/balance says every currency sums to zero. */
static void expect_ledger_balanced(void)
{
    struct h_resp r;
    get("/ledger/balance", &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(json_is_true(json_object_get(r.json, "balanced")), "%s", r.body);
    h_resp_free(&r);
}

/* --- the database itself, opened beside the service --- */

static struct ward_store *open_db(void)
{
    struct ward_store_settings s;
    struct ward_store *st = NULL;
    ward_store_settings_default(&s);
    s.url = db;
    s.service = "accounting-test-probe"; /* no migrations of its own */
    cr_assert_eq(ward_store_open(&s, &st), WARD_ERR_OK);
    return st;
}

struct exec {
    struct ward_query *q;
    int64_t n;
};

static enum ward_err exec_fn(struct ward_tx *tx, void *arg)
{
    struct exec *e = arg;
    struct ward_rows *rows = NULL;
    enum ward_err err = ward_tx_exec(tx, e->q, NULL, 0, &rows);
    if (err != WARD_ERR_OK)
        return err;
    e->n = ward_rows_next(rows) ? ward_rows_int64(rows, 0) : -1;
    err = ward_rows_err(rows);
    ward_rows_free(rows);
    return err;
}

static enum ward_err db_run(struct ward_store *st, struct ward_query *q, int64_t *n)
{
    struct exec e = {q, -1};
    enum ward_err err = ward_store_tx(st, WARD_TX_WRITE, exec_fn, &e);
    if (n != NULL)
        *n = e.n;
    return err;
}

static struct ward_query q_update_entry = WARD_QUERY("UPDATE entries SET amount = amount + 1");
static struct ward_query q_delete_entry = WARD_QUERY("DELETE FROM entries");
static struct ward_query q_update_txn = WARD_QUERY("UPDATE transactions SET description = 'forged'");
static struct ward_query q_delete_txn = WARD_QUERY("DELETE FROM transactions");
static struct ward_query q_update_acct = WARD_QUERY("UPDATE accounts SET currency = 'EUR'");
static struct ward_query q_delete_acct = WARD_QUERY("DELETE FROM accounts");
static struct ward_query q_count_entries = WARD_QUERY("SELECT COUNT(*) FROM entries");
static struct ward_query q_count_txns = WARD_QUERY("SELECT COUNT(*) FROM transactions");
/* accounts whose cached balance is not the sum of their entries */
static struct ward_query q_bad_balances = WARD_QUERY(
    "SELECT COUNT(*) FROM accounts a WHERE a.balance <> (SELECT COALESCE(SUM(CASE WHEN"
    " e.direction = 'debit' THEN e.amount ELSE -e.amount END), 0) FROM entries e WHERE e.account_id = a.id)");
/* transactions whose entries do not balance in some currency */
static struct ward_query q_unbalanced = WARD_QUERY(
    "SELECT COUNT(*) FROM (SELECT transaction_id, currency FROM entries GROUP BY transaction_id, currency"
    " HAVING SUM(CASE WHEN direction = 'debit' THEN amount ELSE -amount END) <> 0) x");

/* The stored balances are their entries' sums and every transaction balances. */
static void expect_db_consistent(void)
{
    struct ward_store *st = open_db();
    int64_t n = -1;
    cr_assert_eq(db_run(st, &q_bad_balances, &n), WARD_ERR_OK);
    cr_assert_eq(n, 0, "%" PRId64 " accounts' balances differ from their entries", n);
    cr_assert_eq(db_run(st, &q_unbalanced, &n), WARD_ERR_OK);
    cr_assert_eq(n, 0, "%" PRId64 " unbalanced transactions", n);
    ward_store_close(st);
}

/* --- accounts --- */

BOTH(accounts_are_created_read_and_listed)
{
    char ids[9][40];
    for (int i = 0; i < 9; i++) {
        char name[32];
        snprintf(name, sizeof name, "account %d", i);
        account(name, i % 2 ? "EUR" : "USD", "asset", ids[i], sizeof ids[i]);
    }
    struct h_resp r;
    /* the full resource, with Location */
    post("/accounts", NULL, "{\"name\":\"Customer receivables\",\"currency\":\"KWD\",\"type\":\"liability\"}", &r);
    cr_assert_eq(r.status, 201, "%s", r.body);
    char *loc = h_resp_header(&r, "Location");
    char want[128];
    snprintf(want, sizeof want, "/accounts/%s", str(r.json, "id"));
    cr_assert_str_eq(loc, want);
    free(loc);
    cr_assert_eq(strncmp(str(r.json, "id"), "acct_", 5), 0);
    cr_assert_str_eq(str(r.json, "name"), "Customer receivables");
    cr_assert_str_eq(str(r.json, "currency"), "KWD");
    cr_assert_str_eq(str(r.json, "type"), "liability");
    cr_assert_str_eq(str(r.json, "normal_balance"), "credit");
    cr_assert_str_eq(str(json_object_get(r.json, "balance"), "amount"), "0.000");
    cr_assert_str_eq(str(json_object_get(r.json, "balance"), "currency"), "KWD");
    str(r.json, "created_at");
    str(r.json, "created_request_id");
    char *created = json_dumps(r.json, JSON_COMPACT);
    struct h_resp g;
    get(want, &g);
    cr_assert_eq(g.status, 200);
    char *got = json_dumps(g.json, JSON_COMPACT);
    cr_assert_str_eq(got, created, "GET differs from the POST's answer");
    free(got);
    free(created);
    h_resp_free(&g);
    h_resp_free(&r);
    /* expense is debit-normal, the others as their type says */
    post("/accounts", NULL, "{\"name\":\"Fees\",\"currency\":\"JPY\",\"type\":\"expense\"}", &r);
    cr_assert_eq(r.status, 201, "%s", r.body);
    cr_assert_str_eq(str(r.json, "normal_balance"), "debit");
    cr_assert_str_eq(str(json_object_get(r.json, "balance"), "amount"), "0");
    h_resp_free(&r);
    /* 11 accounts in pages of 7, in creation order */
    cr_assert_eq(walk("/accounts", true), 11);
    get("/accounts?limit=2", &r);
    cr_assert_str_eq(str(json_array_get(json_object_get(r.json, "data"), 0), "id"), ids[0]);
    cr_assert_str_eq(str(json_array_get(json_object_get(r.json, "data"), 1), "id"), ids[1]);
    h_resp_free(&r);
    /* unknown and malformed ids are 404; bad paging is 400 */
    get("/accounts/acct_0000000000000000000000", &r);
    expect_problem(&r, 404, "not-found", NULL);
    h_resp_free(&r);
    get("/accounts/nope", &r);
    expect_problem(&r, 404, "not-found", NULL);
    h_resp_free(&r);
    get("/accounts?limit=0", &r);
    expect_problem(&r, 400, "validation", NULL);
    h_resp_free(&r);
    get("/accounts?cursor=zz", &r);
    expect_problem(&r, 400, "validation", NULL);
    h_resp_free(&r);
}

BOTH(account_creation_replays_with_an_idempotency_key)
{
    const char *body = "{\"name\":\"Cash\",\"currency\":\"USD\",\"type\":\"asset\"}";
    struct h_resp a, b, c;
    post("/accounts", "acct-key-1", body, &a);
    cr_assert_eq(a.status, 201, "%s", a.body);
    post("/accounts", "acct-key-1", body, &b);
    cr_assert_eq(b.status, 201, "%s", b.body);
    cr_assert(replayed(&b));
    cr_assert_str_eq(str(b.json, "id"), str(a.json, "id"));
    post("/accounts", "acct-key-1", "{\"name\":\"Bank\",\"currency\":\"USD\",\"type\":\"asset\"}", &c);
    expect_problem(&c, 422, "idempotency-key-reused", NULL);
    h_resp_free(&a);
    h_resp_free(&b);
    h_resp_free(&c);
    cr_assert_eq(walk("/accounts", true), 1);
}

BOTH(bad_accounts_are_4xx_problems_naming_the_field)
{
    static const struct {
        const char *body;
        long status;
        const char *slug, *pointer;
    } cases[] = {
        {"{\"currency\":\"USD\",\"type\":\"asset\"}", 400, "validation", "/name"},
        {"{\"name\":\"\",\"currency\":\"USD\",\"type\":\"asset\"}", 400, "validation", "/name"},
        {"{\"name\":5,\"currency\":\"USD\",\"type\":\"asset\"}", 400, "validation", "/name"},
        {"{\"name\":\"x\",\"type\":\"asset\"}", 400, "validation", "/currency"},
        {"{\"name\":\"x\",\"currency\":\"XXY\",\"type\":\"asset\"}", 400, "validation", "/currency"},
        {"{\"name\":\"x\",\"currency\":\"usd\",\"type\":\"asset\"}", 400, "validation", "/currency"},
        {"{\"name\":\"x\",\"currency\":\"USD\"}", 400, "validation", "/type"},
        {"{\"name\":\"x\",\"currency\":\"USD\",\"type\":\"cash\"}", 400, "validation", "/type"},
        {"{\"name\":\"x\",\"currency\":\"USD\",\"type\":true}", 400, "validation", "/type"},
        {"{\"name\":\"x\",\"currency\":\"USD\",\"type\":\"asset\",\"balance\":\"5\"}", 400, "validation", "/balance"},
        {"[]", 400, "validation", ""},
        {"{\"name\":", 400, "malformed-json", NULL},
        {"", 400, "malformed-json", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct h_resp r;
        post("/accounts", NULL, cases[i].body, &r);
        expect_problem(&r, cases[i].status, cases[i].slug, cases[i].pointer);
        h_resp_free(&r);
    }
    /* 100 bytes of name is the limit */
    char name[102], body[256];
    memset(name, 'n', 101);
    name[101] = '\0';
    snprintf(body, sizeof body, "{\"name\":\"%s\",\"currency\":\"USD\",\"type\":\"asset\"}", name);
    struct h_resp r;
    post("/accounts", NULL, body, &r);
    expect_problem(&r, 400, "validation", "/name");
    h_resp_free(&r);
    name[100] = '\0';
    snprintf(body, sizeof body, "{\"name\":\"%s\",\"currency\":\"USD\",\"type\":\"asset\"}", name);
    post("/accounts", NULL, body, &r);
    cr_assert_eq(r.status, 201, "%s", r.body);
    h_resp_free(&r);
    /* not JSON at all */
    const char *text[] = {"Content-Type: text/plain", NULL};
    cr_assert(h_http(svc->port, "POST", "/accounts", text, "x", 1, &r));
    expect_problem(&r, 415, "unsupported-media-type", NULL);
    h_resp_free(&r);
    cr_assert_eq(walk("/accounts", true), 1, "only the good account was created");
}

/* --- transactions --- */

BOTH(a_balanced_transaction_is_posted_read_and_listed)
{
    char cash[40], rev[40], recv[40];
    account("Cash", "USD", "asset", cash, sizeof cash);
    account("Revenue", "USD", "revenue", rev, sizeof rev);
    account("Receivables", "USD", "asset", recv, sizeof recv);
    struct ent e[] = {{cash, true, "60.00", "USD"}, {recv, true, "40.5", "USD"},
                      {rev, false, "100.50", "USD"}};
    char *body = txn_body("sale #1", e, 3);
    struct h_resp r;
    post("/transactions", "sale-1", body, &r);
    cr_assert_eq(r.status, 201, "%s", r.body);
    const char *id = str(r.json, "id");
    cr_assert_eq(strncmp(id, "txn_", 4), 0);
    char *loc = h_resp_header(&r, "Location");
    char path[128];
    snprintf(path, sizeof path, "/transactions/%s", id);
    cr_assert_str_eq(loc, path);
    free(loc);
    cr_assert_str_eq(str(r.json, "description"), "sale #1");
    str(r.json, "created_at");
    str(r.json, "created_request_id");
    cr_assert_null(json_object_get(r.json, "reversal_of"));
    cr_assert_null(json_object_get(r.json, "reversed_by"));
    json_t *entries = json_object_get(r.json, "entries");
    cr_assert_eq(json_array_size(entries), 3);
    cr_assert_str_eq(str(json_array_get(entries, 1), "amount"), "40.50");
    cr_assert_str_eq(str(json_array_get(entries, 1), "direction"), "debit");
    cr_assert_str_eq(str(json_array_get(entries, 2), "direction"), "credit");
    cr_assert_str_eq(str(json_array_get(entries, 2), "account_id"), rev);
    cr_assert_str_neq(str(json_array_get(entries, 0), "id"), str(json_array_get(entries, 1), "id"));
    cr_assert_eq(strncmp(str(json_array_get(entries, 0), "id"), "ent_", 4), 0);
    char *created = json_dumps(r.json, JSON_COMPACT);
    struct h_resp g;
    get(path, &g);
    cr_assert_eq(g.status, 200, "%s", g.body);
    char *got = json_dumps(g.json, JSON_COMPACT);
    cr_assert_str_eq(got, created);
    free(got);
    free(created);
    h_resp_free(&g);
    h_resp_free(&r);
    free(body);
    /* debits raise the balance, credits lower it */
    cr_assert_eq(balance(cash), 6000);
    cr_assert_eq(balance(recv), 4050);
    cr_assert_eq(balance(rev), -10050);
    /* a JSON number works as an amount too */
    char body2[512];
    snprintf(body2, sizeof body2,
             "{\"entries\":[{\"account_id\":\"%s\",\"direction\":\"debit\",\"amount\":12.5,\"currency\":\"USD\"},"
             "{\"account_id\":\"%s\",\"direction\":\"credit\",\"amount\":12.5,\"currency\":\"USD\"}]}",
             cash, recv);
    post("/transactions", "sale-2", body2, &r);
    cr_assert_eq(r.status, 201, "%s", r.body);
    cr_assert_str_eq(str(r.json, "description"), "");
    h_resp_free(&r);
    for (int i = 0; i < 10; i++) {
        char key[32];
        snprintf(key, sizeof key, "more-%d", i);
        transfer(key, cash, rev, "1.00", "USD", NULL, 0);
    }
    cr_assert_eq(balance(cash), 6000 + 1250 + 1000);
    cr_assert_eq(walk("/transactions", false), 12);
    char q[128];
    snprintf(q, sizeof q, "/transactions?account_id=%s", recv);
    cr_assert_eq(walk(q, false), 2);
    snprintf(q, sizeof q, "/transactions?account_id=%s", rev);
    cr_assert_eq(walk(q, false), 11);
    get("/transactions?account_id=acct_0000000000000000000000", &r);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(json_array_size(json_object_get(r.json, "data")), 0);
    h_resp_free(&r);
    get("/transactions?account_id=bogus", &r);
    expect_problem(&r, 400, "validation", "/account_id");
    h_resp_free(&r);
    get("/transactions/txn_0000000000000000000000", &r);
    expect_problem(&r, 404, "not-found", NULL);
    h_resp_free(&r);
    get("/transactions/bogus", &r);
    expect_problem(&r, 404, "not-found", NULL);
    h_resp_free(&r);
    walk("/accounts", true);
    expect_ledger_balanced();
    expect_db_consistent();
}

BOTH(mixed_currencies_balance_per_currency)
{
    char usd1[40], usd2[40], eur1[40], eur2[40];
    account("USD cash", "USD", "asset", usd1, sizeof usd1);
    account("USD equity", "USD", "equity", usd2, sizeof usd2);
    account("EUR cash", "EUR", "asset", eur1, sizeof eur1);
    account("EUR equity", "EUR", "equity", eur2, sizeof eur2);
    struct ent ok[] = {{usd1, true, "10.00", "USD"}, {eur1, true, "9.00", "EUR"},
                       {usd2, false, "10.00", "USD"}, {eur2, false, "9.00", "EUR"}};
    char *body = txn_body("fx", ok, 4);
    struct h_resp r;
    post("/transactions", "fx-1", body, &r);
    cr_assert_eq(r.status, 201, "%s", r.body);
    h_resp_free(&r);
    free(body);
    /* 19 debited against 19 credited, but not per currency */
    struct ent bad[] = {{usd1, true, "10.00", "USD"}, {eur1, true, "9.00", "EUR"},
                        {usd2, false, "9.00", "USD"}, {eur2, false, "10.00", "EUR"}};
    body = txn_body("fx", bad, 4);
    post("/transactions", "fx-2", body, &r);
    expect_problem(&r, 422, "unprocessable", "/entries");
    cr_assert_not_null(strstr(str(r.json, "detail"), "USD"), "%s", r.body);
    cr_assert_not_null(strstr(str(r.json, "detail"), "1.00"), "the detail says by how much: %s", r.body);
    h_resp_free(&r);
    free(body);
    cr_assert_eq(balance(usd1), 1000);
    cr_assert_eq(balance(eur2), -900);
    walk("/accounts", true);
    expect_ledger_balanced();
}

/* A transaction body with the one entry pair given raw, for bad-input cases. */
static void post_raw_entries(const char *key, const char *entries, struct h_resp *r)
{
    char *body = NULL;
    cr_assert_geq(asprintf(&body, "{\"description\":\"bad\",\"entries\":%s}", entries), 0);
    post("/transactions", key, body, r);
    free(body);
}

BOTH(bad_transactions_are_4xx_problems_naming_the_entry)
{
    char a[40], b[40], e[40];
    account("A", "USD", "asset", a, sizeof a);
    account("B", "USD", "liability", b, sizeof b);
    account("E", "EUR", "asset", e, sizeof e);
    char good_b[256];
    snprintf(good_b, sizeof good_b,
             "{\"account_id\":\"%s\",\"direction\":\"credit\",\"amount\":\"1.00\",\"currency\":\"USD\"}", b);
    char good_e[256];
    snprintf(good_e, sizeof good_e,
             "{\"account_id\":\"%s\",\"direction\":\"credit\",\"amount\":\"1.00\",\"currency\":\"EUR\"}", e);
    struct {
        char entry0[256];
        long status;
        const char *slug, *pointer;
    } cases[] = {
        {"{\"direction\":\"debit\",\"amount\":\"1.00\",\"currency\":\"USD\"}", 400, "validation", "/entries/0/account_id"},
        {"{\"account_id\":\"%s\",\"amount\":\"1.00\",\"currency\":\"USD\"}", 400, "validation", "/entries/0/direction"},
        {"{\"account_id\":\"%s\",\"direction\":\"up\",\"amount\":\"1.00\",\"currency\":\"USD\"}", 400, "validation", "/entries/0/direction"},
        {"{\"account_id\":\"%s\",\"direction\":\"debit\",\"currency\":\"USD\"}", 400, "validation", "/entries/0/amount"},
        {"{\"account_id\":\"%s\",\"direction\":\"debit\",\"amount\":\"0\",\"currency\":\"USD\"}", 400, "validation", "/entries/0/amount"},
        {"{\"account_id\":\"%s\",\"direction\":\"debit\",\"amount\":\"-1.00\",\"currency\":\"USD\"}", 400, "validation", "/entries/0/amount"},
        {"{\"account_id\":\"%s\",\"direction\":\"debit\",\"amount\":\"1.001\",\"currency\":\"USD\"}", 400, "validation", "/entries/0/amount"},
        {"{\"account_id\":\"%s\",\"direction\":\"debit\",\"amount\":\"1e2\",\"currency\":\"USD\"}", 400, "validation", "/entries/0/amount"},
        {"{\"account_id\":\"%s\",\"direction\":\"debit\",\"amount\":true,\"currency\":\"USD\"}", 400, "validation", "/entries/0/amount"},
        {"{\"account_id\":\"%s\",\"direction\":\"debit\",\"amount\":\"99999999999999999999\",\"currency\":\"USD\"}", 400, "validation", "/entries/0/amount"},
        {"{\"account_id\":\"%s\",\"direction\":\"debit\",\"amount\":\"1.00\"}", 400, "validation", "/entries/0/currency"},
        {"{\"account_id\":\"%s\",\"direction\":\"debit\",\"amount\":\"1.00\",\"currency\":\"ZZZ\"}", 400, "validation", "/entries/0/currency"},
        {"{\"account_id\":7,\"direction\":\"debit\",\"amount\":\"1.00\",\"currency\":\"USD\"}", 400, "validation", "/entries/0/account_id"},
        {"{\"account_id\":\"%s\",\"direction\":\"debit\",\"amount\":\"1.00\",\"currency\":\"USD\",\"memo\":1}", 400, "validation", "/entries/0/memo"},
        {"\"debit\"", 400, "validation", "/entries/0"},
        /* known to the parser, refused by the ledger */
        {"{\"account_id\":\"acct_0000000000000000000000\",\"direction\":\"debit\",\"amount\":\"1.00\",\"currency\":\"USD\"}", 422, "unprocessable", "/entries/0/account_id"},
        {"{\"account_id\":\"%s\",\"direction\":\"debit\",\"amount\":\"1.00\",\"currency\":\"EUR\"}", 422, "unprocessable", "/entries/0/currency"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *entry0 = NULL, *entries = NULL, key[32];
        /* "%s" in a case stands for account A */
        const char *at = strstr(cases[i].entry0, "%s");
        if (at != NULL)
            cr_assert_geq(asprintf(&entry0, "%.*s%s%s", (int)(at - cases[i].entry0),
                                   cases[i].entry0, a, at + 2), 0);
        else
            entry0 = strdup(cases[i].entry0);
        cr_assert_not_null(entry0);
        /* a wrong currency is paired with a credit in that currency, so that it balances */
        cr_assert_geq(asprintf(&entries, "[%s,%s]", entry0,
                               strstr(entry0, "\"EUR\"") != NULL ? good_e : good_b), 0);
        free(entry0);
        snprintf(key, sizeof key, "bad-%zu", i);
        struct h_resp r;
        post_raw_entries(key, entries, &r);
        free(entries);
        expect_problem(&r, cases[i].status, cases[i].slug, cases[i].pointer);
        h_resp_free(&r);
    }
    /* the shape of the whole */
    static const struct {
        const char *body;
        long status;
        const char *slug, *pointer;
    } shapes[] = {
        {"{\"description\":\"x\"}", 400, "validation", "/entries"},
        {"{\"entries\":{}}", 400, "validation", "/entries"},
        {"{\"entries\":[]}", 422, "unprocessable", "/entries"},
        {"{\"entries\":[],\"extra\":1}", 400, "validation", "/extra"},
        {"{\"entries\":[],\"description\":5}", 400, "validation", "/description"},
        {"[1,2]", 400, "validation", ""},
        {"{\"entries\":[", 400, "malformed-json", NULL},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        char key[32];
        snprintf(key, sizeof key, "shape-%zu", i);
        struct h_resp r;
        post("/transactions", key, shapes[i].body, &r);
        expect_problem(&r, shapes[i].status, shapes[i].slug, shapes[i].pointer);
        h_resp_free(&r);
    }
    struct h_resp r;
    /* one entry cannot balance anything */
    char one[512];
    snprintf(one, sizeof one, "[%s]", good_b);
    post_raw_entries("one", one, &r);
    expect_problem(&r, 422, "unprocessable", "/entries");
    h_resp_free(&r);
    /* 500 bytes of description is the limit */
    char *desc = malloc(700);
    cr_assert_not_null(desc);
    memset(desc, 'd', 501);
    desc[501] = '\0';
    struct ent pair[] = {{a, true, "1.00", "USD"}, {b, false, "1.00", "USD"}};
    char *body = txn_body(desc, pair, 2);
    post("/transactions", "long", body, &r);
    expect_problem(&r, 400, "validation", "/description");
    h_resp_free(&r);
    free(body);
    desc[500] = '\0';
    body = txn_body(desc, pair, 2);
    post("/transactions", "long-ok", body, &r);
    cr_assert_eq(r.status, 201, "%s", r.body);
    h_resp_free(&r);
    free(body);
    free(desc);
    /* an unknown account and a wrong currency, found after the key was claimed, are
     * answered again for the same key */
    char unknown[600];
    snprintf(unknown, sizeof unknown,
             "[{\"account_id\":\"acct_0000000000000000000000\",\"direction\":\"debit\",\"amount\":\"1.00\",\"currency\":\"USD\"},%s]",
             good_b);
    post_raw_entries("unknown", unknown, &r);
    expect_problem(&r, 422, "unprocessable", "/entries/0/account_id");
    cr_assert(!replayed(&r));
    h_resp_free(&r);
    post_raw_entries("unknown", unknown, &r);
    expect_problem(&r, 422, "unprocessable", "/entries/0/account_id");
    cr_assert(replayed(&r));
    h_resp_free(&r);
    cr_assert_eq(walk("/transactions", false), 1, "only the good transaction was posted");
    cr_assert_eq(balance(a), 100);
    cr_assert_eq(balance(e), 0);
}

BOTH(sums_and_balances_never_overflow)
{
    char a[40], b[40], c[40];
    account("A", "USD", "asset", a, sizeof a);
    account("B", "USD", "liability", b, sizeof b);
    account("C", "USD", "liability", c, sizeof c);
    const char *max = "92233720368547758.07"; /* INT64_MAX cents */
    struct h_resp r;
    /* the sum of the debits overflows */
    struct ent sum[] = {{a, true, max, "USD"}, {a, true, "0.01", "USD"}, {b, false, max, "USD"},
                        {c, false, "0.01", "USD"}};
    char *body = txn_body("too much", sum, 4);
    post("/transactions", "sum", body, &r);
    expect_problem(&r, 422, "unprocessable", "/entries/1/amount");
    h_resp_free(&r);
    free(body);
    /* the largest amount posts; one cent more on the same account would overflow its balance */
    transfer("max", a, b, max, "USD", NULL, 0);
    cr_assert_eq(balance(a), INT64_MAX);
    cr_assert_eq(balance(b), -INT64_MAX);
    struct ent more[] = {{a, true, "0.01", "USD"}, {c, false, "0.01", "USD"}};
    body = txn_body("one cent more", more, 2);
    post("/transactions", "more", body, &r);
    expect_problem(&r, 422, "unprocessable", "/entries/0/amount");
    h_resp_free(&r);
    free(body);
    cr_assert_eq(balance(a), INT64_MAX);
    cr_assert_eq(balance(c), 0);
    /* the ledger's sum still checks out with balances at the edge */
    transfer("max-2", c, a, max, "USD", NULL, 0);
    expect_ledger_balanced();
    walk("/accounts", true);
    expect_db_consistent();
}

BOTH(the_idempotency_key_is_required_and_replays_the_first_answer)
{
    char a[40], b[40];
    account("A", "USD", "asset", a, sizeof a);
    account("B", "USD", "revenue", b, sizeof b);
    struct ent pair[] = {{a, true, "5.00", "USD"}, {b, false, "5.00", "USD"}};
    char *body = txn_body("once", pair, 2);
    struct h_resp r, first;
    post("/transactions", NULL, body, &r);
    expect_problem(&r, 400, "idempotency-key-missing", NULL);
    h_resp_free(&r);
    char longkey[300];
    memset(longkey, 'k', 299);
    longkey[299] = '\0';
    post("/transactions", longkey, body, &r);
    expect_problem(&r, 400, "idempotency-key-invalid", NULL);
    h_resp_free(&r);
    post("/transactions", "once-1", body, &first);
    cr_assert_eq(first.status, 201, "%s", first.body);
    cr_assert(!replayed(&first));
    for (int i = 0; i < 3; i++) {
        post("/transactions", "once-1", body, &r);
        cr_assert_eq(r.status, 201, "%s", r.body);
        cr_assert(replayed(&r));
        cr_assert_str_eq(r.body, first.body);
        char *l1 = h_resp_header(&r, "Location"), *l2 = h_resp_header(&first, "Location");
        cr_assert_str_eq(l1, l2);
        free(l1);
        free(l2);
        h_resp_free(&r);
    }
    h_resp_free(&first);
    /* the same key with another body */
    struct ent other[] = {{a, true, "6.00", "USD"}, {b, false, "6.00", "USD"}};
    char *body2 = txn_body("once", other, 2);
    post("/transactions", "once-1", body2, &r);
    expect_problem(&r, 422, "idempotency-key-reused", NULL);
    h_resp_free(&r);
    free(body2);
    free(body);
    cr_assert_eq(walk("/transactions", false), 1);
    cr_assert_eq(balance(a), 500);
}

/* --- reversals --- */

BOTH(a_reversal_swaps_the_entries_once_and_cannot_be_reversed)
{
    char a[40], b[40], t[40], path[128];
    account("A", "USD", "asset", a, sizeof a);
    account("B", "USD", "revenue", b, sizeof b);
    transfer("t1", a, b, "7.25", "USD", t, sizeof t);
    snprintf(path, sizeof path, "/transactions/%s/reverse", t);
    struct h_resp r, again;
    post(path, NULL, NULL, &r);
    cr_assert_eq(r.status, 201, "%s", r.body);
    const char *rev = str(r.json, "id");
    cr_assert_str_neq(rev, t);
    cr_assert_str_eq(str(r.json, "reversal_of"), t);
    json_t *entries = json_object_get(r.json, "entries");
    cr_assert_eq(json_array_size(entries), 2);
    cr_assert_str_eq(str(json_array_get(entries, 0), "account_id"), a);
    cr_assert_str_eq(str(json_array_get(entries, 0), "direction"), "credit");
    cr_assert_str_eq(str(json_array_get(entries, 0), "amount"), "7.25");
    cr_assert_str_eq(str(json_array_get(entries, 1), "direction"), "debit");
    char *loc = h_resp_header(&r, "Location");
    char want[128];
    snprintf(want, sizeof want, "/transactions/%s", rev);
    cr_assert_str_eq(loc, want);
    free(loc);
    cr_assert_eq(balance(a), 0);
    cr_assert_eq(balance(b), 0);
    /* the original now points at its reversal, stamped */
    struct h_resp g;
    snprintf(want, sizeof want, "/transactions/%s", t);
    get(want, &g);
    cr_assert_eq(g.status, 200);
    cr_assert_str_eq(str(g.json, "reversed_by"), rev);
    cr_assert_str_eq(str(g.json, "reversed_at"), str(r.json, "created_at"));
    cr_assert_str_eq(str(g.json, "reversed_request_id"), str(r.json, "created_request_id"));
    h_resp_free(&g);
    /* again: the same reversal, 200, no second one */
    post(path, NULL, NULL, &again);
    cr_assert_eq(again.status, 200, "%s", again.body);
    cr_assert_str_eq(str(again.json, "id"), rev);
    h_resp_free(&again);
    post(path, "rev-key", NULL, &again);
    cr_assert_eq(again.status, 200, "%s", again.body);
    cr_assert_str_eq(str(again.json, "id"), rev);
    h_resp_free(&again);
    cr_assert_eq(balance(a), 0);
    cr_assert_eq(walk("/transactions", false), 2);
    /* a reversal is not reversed */
    snprintf(want, sizeof want, "/transactions/%s/reverse", rev);
    post(want, NULL, NULL, &again);
    expect_problem(&again, 409, "conflict", NULL);
    h_resp_free(&again);
    h_resp_free(&r);
    post("/transactions/txn_0000000000000000000000/reverse", NULL, NULL, &r);
    expect_problem(&r, 404, "not-found", NULL);
    h_resp_free(&r);
    post("/transactions/garbage/reverse", NULL, NULL, &r);
    expect_problem(&r, 404, "not-found", NULL);
    h_resp_free(&r);
    expect_ledger_balanced();
    expect_db_consistent();
}

struct racer {
    uint16_t port;
    const char *path;
    long status;
    char id[40];
    pthread_barrier_t *go;
};

static void *race(void *arg)
{
    struct racer *x = arg;
    struct h_resp r;
    pthread_barrier_wait(x->go);
    for (int attempt = 0; attempt < 50; attempt++) {
        if (!h_http(x->port, "POST", x->path, NULL, NULL, 0, &r))
            return NULL;
        if (r.status != 503)
            break;
        h_resp_free(&r);
        h_sleep_ms(20);
    }
    x->status = r.status;
    if (r.json != NULL && json_string_value(json_object_get(r.json, "id")) != NULL)
        snprintf(x->id, sizeof x->id, "%s", json_string_value(json_object_get(r.json, "id")));
    h_resp_free(&r);
    return NULL;
}

BOTH(concurrent_reversals_make_one)
{
    char a[40], b[40], t[40], path[128];
    account("A", "USD", "asset", a, sizeof a);
    account("B", "USD", "revenue", b, sizeof b);
    enum { N = 8 };
    for (int round = 0; round < 3; round++) {
        char key[16];
        snprintf(key, sizeof key, "r%d", round);
        transfer(key, a, b, "3.00", "USD", t, sizeof t);
        snprintf(path, sizeof path, "/transactions/%s/reverse", t);
        pthread_barrier_t go;
        pthread_barrier_init(&go, NULL, N);
        struct racer x[N];
        pthread_t th[N];
        for (int i = 0; i < N; i++) {
            x[i] = (struct racer){.port = svc->port, .path = path, .go = &go};
            cr_assert_eq(pthread_create(&th[i], NULL, race, &x[i]), 0);
        }
        for (int i = 0; i < N; i++)
            pthread_join(th[i], NULL);
        pthread_barrier_destroy(&go);
        int created = 0;
        for (int i = 0; i < N; i++) {
            cr_assert(x[i].status == 201 || x[i].status == 200, "reverse answered %ld", x[i].status);
            created += x[i].status == 201;
            cr_assert_str_eq(x[i].id, x[0].id, "two different reversals");
        }
        cr_assert_eq(created, 1);
    }
    cr_assert_eq(walk("/transactions", false), 6);
    cr_assert_eq(balance(a), 0);
    expect_db_consistent();
}

/* --- the database guards the ledger --- */

BOTH(the_database_refuses_to_change_or_delete_entries)
{
    char a[40], b[40];
    account("A", "USD", "asset", a, sizeof a);
    account("B", "USD", "revenue", b, sizeof b);
    transfer("t", a, b, "1.00", "USD", NULL, 0);
    struct ward_store *st = open_db();
    cr_assert_eq(db_run(st, &q_update_entry, NULL), WARD_ERR_CONSTRAINT);
    cr_assert_eq(db_run(st, &q_delete_entry, NULL), WARD_ERR_CONSTRAINT);
    cr_assert_eq(db_run(st, &q_update_txn, NULL), WARD_ERR_CONSTRAINT);
    cr_assert_eq(db_run(st, &q_delete_txn, NULL), WARD_ERR_CONSTRAINT);
    cr_assert_eq(db_run(st, &q_update_acct, NULL), WARD_ERR_CONSTRAINT);
    cr_assert_eq(db_run(st, &q_delete_acct, NULL), WARD_ERR_CONSTRAINT);
    int64_t n = -1;
    cr_assert_eq(db_run(st, &q_count_entries, &n), WARD_ERR_OK);
    cr_assert_eq(n, 2);
    cr_assert_eq(db_run(st, &q_count_txns, &n), WARD_ERR_OK);
    cr_assert_eq(n, 1);
    ward_store_close(st);
    if (pg != NULL) /* the superuser, through libpq, with TRUNCATE too */ {
        cr_assert(!pg_exec(pg, "UPDATE entries SET amount = 1"));
        cr_assert(!pg_exec(pg, "DELETE FROM entries"));
        cr_assert(!pg_exec(pg, "TRUNCATE entries CASCADE"));
    }
    cr_assert_eq(balance(a), 100);
    expect_db_consistent();
}

/* --- the invariant after a random run --- */

/* splitmix64: a fixed seed gives the same run every time */
static uint64_t rnd_state;
static uint64_t rnd(void)
{
    uint64_t z = (rnd_state += 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

BOTH(balances_sum_to_zero_after_a_random_run)
{
    static const char *const currencies[] = {"USD", "EUR", "JPY"};
    static const char *const types[] = {"asset", "liability", "equity", "revenue", "expense"};
    enum { ACCOUNTS = 9, OPS = 100 };
    char acct[ACCOUNTS][40];
    int64_t want[ACCOUNTS] = {0};
    for (int i = 0; i < ACCOUNTS; i++) {
        char name[16];
        snprintf(name, sizeof name, "acct %d", i);
        account(name, currencies[i % 3], types[i % 5], acct[i], sizeof acct[i]);
    }
    /* every posted transaction: its entries' effect, to undo on reversal */
    struct posted {
        char id[40];
        int64_t effect[ACCOUNTS];
        bool reversed, is_reversal;
    } *posted = calloc(OPS, sizeof *posted);
    cr_assert_not_null(posted);
    size_t nposted = 0;
    rnd_state = 20261127;
    for (int op = 0; op < OPS; op++) {
        struct h_resp r;
        if (nposted > 0 && rnd() % 4 == 0) {
            struct posted *p = &posted[rnd() % nposted];
            char path[128];
            snprintf(path, sizeof path, "/transactions/%s/reverse", p->id);
            post(path, NULL, NULL, &r);
            if (p->is_reversal) {
                expect_problem(&r, 409, "conflict", NULL);
            } else if (p->reversed) {
                cr_assert_eq(r.status, 200, "%s", r.body);
            } else {
                cr_assert_eq(r.status, 201, "%s", r.body);
                p->reversed = true;
                struct posted *q = &posted[nposted++];
                snprintf(q->id, sizeof q->id, "%s", str(r.json, "id"));
                q->is_reversal = true;
                for (int k = 0; k < ACCOUNTS; k++) {
                    q->effect[k] = -p->effect[k];
                    want[k] += q->effect[k];
                }
            }
            h_resp_free(&r);
            continue;
        }
        /* 1..3 currencies, each with 1..2 debits and 1..2 credits of random accounts */
        struct ent e[12];
        char amounts[12][32];
        size_t n = 0;
        struct posted *q = &posted[nposted];
        memset(q, 0, sizeof *q);
        int ncur = 1 + (int)(rnd() % 3);
        for (int c = 0; c < ncur; c++) {
            int cur = (c + (int)(op % 3)) % 3;
            int64_t total = 0;
            int ndebits = 1 + (int)(rnd() % 2);
            for (int d = 0; d < ndebits + 2; d++) {
                int64_t v;
                bool debit = d < ndebits;
                if (debit) {
                    v = 1 + (int64_t)(rnd() % 100000);
                    total += v;
                } else if (d == ndebits && total >= 2 && rnd() % 2 == 0) {
                    v = 1 + (int64_t)(rnd() % (uint64_t)(total - 1)); /* a first credit */
                    total -= v;
                } else if (total > 0) {
                    v = total; /* the rest */
                    total = 0;
                } else {
                    break;
                }
                int k = cur + 3 * (int)(rnd() % 3);
                if (cur == 2) /* JPY has no decimals */
                    snprintf(amounts[n], sizeof amounts[n], "%" PRId64, v);
                else
                    snprintf(amounts[n], sizeof amounts[n], "%" PRId64 ".%02" PRId64, v / 100, v % 100);
                e[n] = (struct ent){acct[k], debit, amounts[n], currencies[cur]};
                q->effect[k] += debit ? v : -v;
                n++;
            }
        }
        char key[32];
        snprintf(key, sizeof key, "rand-%d", op);
        char *body = txn_body("random", e, n);
        post("/transactions", key, body, &r);
        cr_assert_eq(r.status, 201, "op %d: %s\n%s", op, r.body, body);
        snprintf(q->id, sizeof q->id, "%s", str(r.json, "id"));
        nposted++;
        for (int k = 0; k < ACCOUNTS; k++)
            want[k] += q->effect[k];
        h_resp_free(&r);
        free(body);
    }
    for (int k = 0; k < ACCOUNTS; k++)
        cr_assert_eq(balance(acct[k]), want[k], "account %d: %" PRId64 " wanted", k, want[k]);
    cr_assert_eq(walk("/transactions", false), nposted);
    walk("/accounts", true);
    expect_ledger_balanced();
    expect_db_consistent();
    free(posted);
}

/* --- two instances, one PostgreSQL, retrying clients --- */

enum { CLIENTS = 8, PER_CLIENT = 25, POOL = CLIENTS * PER_CLIENT, NACCT = 4 };

struct shared {
    pthread_mutex_t lock;
    char acct[NACCT][40];
    uint16_t ports[2];
    struct sent {
        char key[32];
        char *body;
        int from, to;
        int64_t amount;
        char id[40];
    } sent[POOL];
    size_t nsent;
    int retries_409, retries_503, replays, created, failures;
};

struct client {
    struct shared *sh;
    int no;
    uint64_t rnd;
};

static uint64_t crnd(struct client *c)
{
    uint64_t z = (c->rnd += 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

static void *client(void *arg)
{
    struct client *c = arg;
    struct shared *sh = c->sh;
    for (int i = 0; i < PER_CLIENT; i++) {
        char key[32], idbuf[40] = "";
        char *body = NULL;
        size_t slot = SIZE_MAX;
        pthread_mutex_lock(&sh->lock);
        if (sh->nsent > 0 && crnd(c) % 5 == 0) { /* a retry of an earlier call */
            struct sent *s = &sh->sent[crnd(c) % sh->nsent];
            snprintf(key, sizeof key, "%s", s->key);
            body = strdup(s->body);
            snprintf(idbuf, sizeof idbuf, "%s", s->id);
        } else {
            slot = sh->nsent++;
            struct sent *s = &sh->sent[slot];
            snprintf(s->key, sizeof s->key, "c%d-%d", c->no, i);
            s->from = (int)(crnd(c) % NACCT);
            s->to = (s->from + 1 + (int)(crnd(c) % (NACCT - 1))) % NACCT;
            s->amount = 1 + (int64_t)(crnd(c) % 10000);
            char amount[32];
            snprintf(amount, sizeof amount, "%" PRId64 ".%02" PRId64, s->amount / 100, s->amount % 100);
            struct ent e[] = {{sh->acct[s->from], true, amount, "USD"},
                              {sh->acct[s->to], false, amount, "USD"}};
            s->body = txn_body("concurrent", e, 2);
            snprintf(key, sizeof key, "%s", s->key);
            body = strdup(s->body);
        }
        pthread_mutex_unlock(&sh->lock);
        char kh[64];
        snprintf(kh, sizeof kh, "Idempotency-Key: %s", key);
        const char *headers[] = {"Content-Type: application/json", kh, NULL};
        struct h_resp r = {0};
        bool done = false;
        for (int attempt = 0; attempt < 200 && !done; attempt++) {
            uint16_t port = sh->ports[(c->no + i + attempt) % 2];
            if (!h_http(port, "POST", "/transactions", headers, body, strlen(body), &r))
                break;
            pthread_mutex_lock(&sh->lock);
            if (r.status == 409) {
                sh->retries_409++;
            } else if (r.status == 503) {
                sh->retries_503++;
            } else if (r.status == 201 && r.json != NULL) {
                const char *id = json_string_value(json_object_get(r.json, "id"));
                if (replayed(&r))
                    sh->replays++;
                else
                    sh->created++;
                if (slot != SIZE_MAX && sh->sent[slot].id[0] == '\0')
                    snprintf(sh->sent[slot].id, sizeof sh->sent[slot].id, "%s", id);
                else if (slot != SIZE_MAX && strcmp(sh->sent[slot].id, id) != 0)
                    sh->failures++;
                if (idbuf[0] != '\0' && strcmp(idbuf, id) != 0)
                    sh->failures++; /* a retry got another transaction */
                done = true;
            } else {
                fprintf(stderr, "unexpected %ld: %s\n", r.status, r.body);
                sh->failures++;
                done = true;
            }
            pthread_mutex_unlock(&sh->lock);
            h_resp_free(&r);
            if (!done)
                h_sleep_ms(5 + (int)(crnd(c) % 20));
        }
        if (!done) {
            pthread_mutex_lock(&sh->lock);
            sh->failures++;
            pthread_mutex_unlock(&sh->lock);
        }
        free(body);
    }
    return NULL;
}

Test(accounting_pg, two_instances_with_retrying_clients_keep_the_ledger_exact, .timeout = 120)
{
    use_pg();
    svc2 = start_service();
    struct shared *sh = calloc(1, sizeof *sh);
    cr_assert_not_null(sh);
    pthread_mutex_init(&sh->lock, NULL);
    for (int k = 0; k < NACCT; k++) {
        char name[16];
        snprintf(name, sizeof name, "acct %d", k);
        account(name, "USD", k % 2 ? "liability" : "asset", sh->acct[k], sizeof sh->acct[k]);
    }
    sh->ports[0] = svc->port;
    sh->ports[1] = svc2->port;
    struct client cl[CLIENTS];
    pthread_t th[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        cl[i] = (struct client){.sh = sh, .no = i, .rnd = 1000 + (uint64_t)i};
        cr_assert_eq(pthread_create(&th[i], NULL, client, &cl[i]), 0);
    }
    for (int i = 0; i < CLIENTS; i++)
        pthread_join(th[i], NULL);
    fprintf(stderr, "accounting concurrency: %zu distinct, %d created, %d replays, %d 409 retries, %d 503 retries\n",
            sh->nsent, sh->created, sh->replays, sh->retries_409, sh->retries_503);
    cr_assert_eq(sh->failures, 0);
    cr_assert_eq((size_t)sh->created, sh->nsent, "one transaction per distinct key");
    cr_assert_gt(sh->replays, 0);
    int64_t want[NACCT] = {0};
    for (size_t i = 0; i < sh->nsent; i++) {
        want[sh->sent[i].from] += sh->sent[i].amount;
        want[sh->sent[i].to] -= sh->sent[i].amount;
        free(sh->sent[i].body);
    }
    for (int k = 0; k < NACCT; k++)
        cr_assert_eq(balance(sh->acct[k]), want[k]);
    cr_assert_eq(walk("/transactions", false), sh->nsent);
    struct ward_store *st = open_db();
    int64_t n = -1;
    cr_assert_eq(db_run(st, &q_count_txns, &n), WARD_ERR_OK);
    cr_assert_eq(n, (int64_t)sh->nsent);
    ward_store_close(st);
    walk("/accounts", true);
    expect_ledger_balanced();
    expect_db_consistent();
    pthread_mutex_destroy(&sh->lock);
    free(sh);
    stop_one(&svc2);
}

/* --- the database goes away and comes back --- */

static long ready_status(void)
{
    struct h_resp r;
    cr_assert(h_http(svc->port, "GET", "/ready", NULL, NULL, 0, &r));
    long s = r.status;
    h_resp_free(&r);
    return s;
}

static bool wait_ready(long want, int ms)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        if (ready_status() == want)
            return true;
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 > ms)
            return false;
        h_sleep_ms(50);
    }
}

Test(accounting_pg, a_database_that_goes_away_is_503_until_it_returns)
{
    use_pg();
    char a[40], b[40];
    account("A", "USD", "asset", a, sizeof a);
    account("B", "USD", "revenue", b, sizeof b);
    transfer("before", a, b, "1.00", "USD", NULL, 0);
    pg_kill(pg);
    cr_assert(wait_ready(503, 10000), "/ready did not notice the database went away");
    struct ent pair[] = {{a, true, "2.00", "USD"}, {b, false, "2.00", "USD"}};
    char *body = txn_body("during", pair, 2);
    struct h_resp r;
    post("/transactions", "during", body, &r);
    expect_problem(&r, 503, "unavailable", NULL);
    char *ra = h_resp_header(&r, "Retry-After");
    cr_assert_not_null(ra, "503 without Retry-After");
    free(ra);
    h_resp_free(&r);
    char path[128];
    snprintf(path, sizeof path, "/accounts/%s", a);
    get(path, &r);
    expect_problem(&r, 503, "unavailable", NULL);
    h_resp_free(&r);
    cr_assert(pg_restart(pg));
    cr_assert(wait_ready(200, 20000), "/ready did not recover");
    /* the client's retry with the same key goes through, once */
    post("/transactions", "during", body, &r);
    cr_assert_eq(r.status, 201, "%s", r.body);
    h_resp_free(&r);
    post("/transactions", "during", body, &r);
    cr_assert_eq(r.status, 201, "%s", r.body);
    cr_assert(replayed(&r));
    h_resp_free(&r);
    free(body);
    cr_assert_eq(balance(a), 300);
    cr_assert_eq(walk("/transactions", false), 2);
    expect_ledger_balanced();
}
