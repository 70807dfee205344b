/* test_payment.c — payment-service with real invoice-service and accounting-service (both
 * on SQLite), its own database on SQLite and on PostgreSQL alike: the saga's success,
 * replays answering the payment's current state, the request checks, the compensation
 * when the ledger is down, failing fast when invoices are down, and recovery of a payment
 * left pending by a SIGKILL. Every test ends by checking the saga's invariants. */
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "db_harness.h"

static struct h_proc *inv, *ledger_svc, *pay;
static struct pg_server *pg;
static char tmpdir[64];
static char db[512];
static int hole = -1; /* a listening socket that never accepts: a dependency that hangs */

static void stop(struct h_proc **p, const char *name)
{
    if (*p == NULL)
        return;
    int st = h_stop(*p, 15000);
    h_free(*p);
    *p = NULL;
    cr_expect_eq(st, 0, "%s exited with %d (a sanitizer report or a failed drain)", name, st);
}

static void teardown(void)
{
    stop(&pay, "payment-service");
    stop(&inv, "invoice-service");
    stop(&ledger_svc, "accounting-service");
    if (hole >= 0)
        close(hole);
    hole = -1;
    cr_expect(h_db_cleanup(&pg, tmpdir));
}

TestSuite(payment_sqlite, .fini = teardown, .timeout = 120);
TestSuite(payment_pg, .fini = teardown, .timeout = 150);

/* The payment database on either backend; the other services' files go in tmpdir. */
static void use_sqlite(void)
{
    cr_assert(h_db_sqlite(tmpdir, sizeof tmpdir, db, sizeof db, "payment", "payment.db"));
}

static void use_pg(void)
{
    cr_assert(h_db_dir(tmpdir, sizeof tmpdir, "payment"));
    cr_assert(h_db_pg(&pg, db, sizeof db), "PostgreSQL did not start");
}

/* Every test runs with the payment database on both backends. */
#define BOTH(name)                                                                        \
    static void name(void);                                                               \
    Test(payment_sqlite, name) { use_sqlite(); name(); }                                  \
    Test(payment_pg, name) { use_pg(); name(); }                                          \
    static void name(void)

/* --- processes --- */

static struct h_proc *start_dep(const char *binary, const char *file)
{
    char url[256];
    snprintf(url, sizeof url, "sqlite://%s/%s", tmpdir, file);
    const char *const args[] = {"--db", url, "--shutdown-delay", "0", "--no-access-log", NULL};
    struct h_proc *p = h_start(binary, args);
    cr_assert_not_null(p, "%s did not start", binary);
    return p;
}

static void start_invoice(void) { inv = start_dep("invoice-service", "invoice.db"); }
static void start_accounting(void) { ledger_svc = start_dep("accounting-service", "accounting.db"); }

/* A port nothing listens on (connections refused). */
static uint16_t dead_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    cr_assert(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* A port whose connections are accepted by the kernel and never answered. */
static uint16_t hole_port(void)
{
    hole = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    cr_assert(hole >= 0 && bind(hole, (struct sockaddr *)&a, sizeof a) == 0);
    cr_assert_eq(listen(hole, 128), 0);
    cr_assert_eq(getsockname(hole, (struct sockaddr *)&a, &len), 0);
    return ntohs(a.sin_port);
}

/* Starts payment-service on db, calling invoices and the ledger on the given ports. */
static void start_payment(uint16_t inv_port, uint16_t acct_port, const char *step_timeout)
{
    char ia[64], aa[64];
    snprintf(ia, sizeof ia, "127.0.0.1:%u", inv_port);
    snprintf(aa, sizeof aa, "127.0.0.1:%u", acct_port);
    const char *const args[] = {"--db", db, "--shutdown-delay", "0", "--invoice-addr", ia,
                                "--accounting-addr", aa, "--step-timeout", step_timeout,
                                "--lease", "1s", "--recovery-interval", "200ms",
                                "--retry-max", "500ms", NULL};
    pay = h_start("payment-service", args);
    cr_assert_not_null(pay, "payment-service did not start");
}

/* The whole stack up. */
static void start_all(void)
{
    start_invoice();
    start_accounting();
    start_payment(inv->port, ledger_svc->port, "2s");
}

/* --- requests --- */

static void request(struct h_proc *p, const char *method, const char *path, const char *key,
                    int timeout_ms, const char *body, struct h_resp *r)
{
    char kh[400], th[64];
    const char *hdr[4] = {"Content-Type: application/json", NULL, NULL, NULL};
    size_t n = 1;
    if (key != NULL) {
        snprintf(kh, sizeof kh, "Idempotency-Key: %s", key);
        hdr[n++] = kh;
    }
    if (timeout_ms > 0) {
        snprintf(th, sizeof th, "X-Request-Timeout-Ms: %d", timeout_ms);
        hdr[n++] = th;
    }
    cr_assert(h_http(p->port, method, path, hdr, body, body != NULL ? strlen(body) : 0, r),
              "transport error on %s %s", method, path);
}

static void get(struct h_proc *p, const char *path, struct h_resp *r)
{
    request(p, "GET", path, NULL, 0, NULL, r);
}

static void post_payment(const char *key, const char *body, int timeout_ms, struct h_resp *r)
{
    request(pay, "POST", "/payments", key, timeout_ms, body, r);
}

static const char *str(const struct h_resp *r, const char *key)
{
    cr_assert_not_null(r->json, "body is not JSON: %s", r->body);
    const char *v = json_string_value(json_object_get(r->json, key));
    cr_assert_not_null(v, "no string %s in %s", key, r->body);
    return v;
}

static bool is_null(const json_t *o, const char *key)
{
    return json_is_null(json_object_get(o, key));
}

static void expect_problem(const struct h_resp *r, long status, const char *slug, const char *pointer)
{
    cr_assert_eq(r->status, status, "want %ld, got %ld: %s", status, r->status, r->body);
    char type[128];
    snprintf(type, sizeof type, "https://ward.dev/problems/%s", slug);
    cr_assert_str_eq(str(r, "type"), type, "body: %s", r->body);
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

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Polls GET /payments/id until its status is want; the last answer stays in *r. */
static bool wait_payment(const char *id, const char *want, int ms, struct h_resp *r)
{
    char path[128];
    snprintf(path, sizeof path, "/payments/%s", id);
    int64_t end = now_ms() + ms;
    for (;;) {
        get(pay, path, r);
        const char *st = json_string_value(json_object_get(r->json, "status"));
        if (r->status == 200 && st != NULL && strcmp(st, want) == 0)
            return true;
        if (now_ms() >= end)
            return false;
        h_resp_free(r);
        h_sleep_ms(50);
    }
}

/* How many events of step (and event) the payment's log holds. */
static size_t steps(const json_t *payment, const char *step, const char *event)
{
    size_t i, n = 0;
    json_t *s;
    json_array_foreach(json_object_get(payment, "steps"), i, s) {
        if (strcmp(json_string_value(json_object_get(s, "step")), step) == 0 &&
            (event == NULL || strcmp(json_string_value(json_object_get(s, "event")), event) == 0))
            n++;
    }
    return n;
}

static size_t list_size(struct h_proc *p, const char *path)
{
    struct h_resp r;
    get(p, path, &r);
    cr_assert_eq(r.status, 200, "%s: %s", path, r.body);
    size_t n = json_array_size(json_object_get(r.json, "data"));
    h_resp_free(&r);
    return n;
}

static const char *const BODY =
    "{\"customer_id\":\"cust_1\",\"amount\":\"12.50\",\"currency\":\"USD\",\"description\":\"March\"}";

/* --- the invariants (DESIGN.md §6), checked with what is up --- */

static void check_invariants(void)
{
    struct h_resp r;
    get(pay, "/payments?limit=100", &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    size_t i, with_txn = 0;
    json_t *p;
    json_array_foreach(json_object_get(r.json, "data"), i, p) {
        const char *id = json_string_value(json_object_get(p, "id"));
        const char *st = json_string_value(json_object_get(p, "status"));
        const char *inv_id = json_string_value(json_object_get(p, "invoice_id"));
        const char *txn = json_string_value(json_object_get(p, "ledger_transaction_id"));
        with_txn += txn != NULL;
        char path[128];
        struct h_resp x;
        if (strcmp(st, "completed") == 0) {
            cr_assert(inv_id != NULL && txn != NULL, "completed without both: %s", id);
            cr_assert(is_null(p, "failure_reason"));
            if (inv != NULL) {
                snprintf(path, sizeof path, "/invoices/%s", inv_id);
                get(inv, path, &x);
                cr_assert_str_eq(json_string_value(json_object_get(x.json, "status")), "paid", "%s", x.body);
                cr_assert_str_eq(json_string_value(json_object_get(x.json, "payment_id")), id);
                h_resp_free(&x);
            }
            if (ledger_svc != NULL) {
                snprintf(path, sizeof path, "/transactions/%s", txn);
                get(ledger_svc, path, &x);
                cr_assert_eq(x.status, 200, "ledger transaction of %s: %s", id, x.body);
                h_resp_free(&x);
            }
        } else if (strcmp(st, "failed") == 0) {
            cr_assert_null(txn, "failed with a ledger transaction: %s", id);
            cr_assert_not_null(json_string_value(json_object_get(p, "failure_reason")));
            if (inv_id != NULL && inv != NULL) {
                snprintf(path, sizeof path, "/invoices/%s", inv_id);
                get(inv, path, &x);
                cr_assert_str_eq(json_string_value(json_object_get(x.json, "status")), "void", "%s", x.body);
                h_resp_free(&x);
            }
        }
    }
    h_resp_free(&r);
    if (inv != NULL) { /* no paid invoice without its ledger transaction */
        get(inv, "/invoices?status=paid&limit=100", &r);
        json_array_foreach(json_object_get(r.json, "data"), i, p) {
            char path[128];
            struct h_resp x;
            snprintf(path, sizeof path, "/payments/%s", json_string_value(json_object_get(p, "payment_id")));
            get(pay, path, &x);
            cr_assert_eq(x.status, 200, "%s", x.body);
            cr_assert_not_null(json_string_value(json_object_get(x.json, "ledger_transaction_id")),
                               "paid invoice without its ledger transaction: %s", x.body);
            h_resp_free(&x);
        }
        h_resp_free(&r);
    }
    if (ledger_svc != NULL) { /* one ledger transaction per payment that has one; balanced */
        cr_assert_eq(list_size(ledger_svc, "/transactions?limit=100"), with_txn);
        get(ledger_svc, "/ledger/balance", &r);
        cr_assert(json_is_true(json_object_get(r.json, "balanced")), "%s", r.body);
        h_resp_free(&r);
    }
}

/* --- the saga --- */

BOTH(a_payment_completes_with_its_invoice_paid_and_its_ledger_transaction)
{
    start_all();
    struct h_resp r;
    post_payment("k-ok", BODY, 0, &r);
    cr_assert_eq(r.status, 201, "%s", r.body);
    const char *id = str(&r, "id");
    cr_assert_eq(strncmp(id, "pay_", 4), 0, "%s", id);
    char want[128];
    snprintf(want, sizeof want, "/payments/%s", id);
    char *loc = h_resp_header(&r, "Location");
    cr_assert_str_eq(loc, want);
    free(loc);
    cr_assert_str_eq(str(&r, "status"), "completed");
    cr_assert_str_eq(str(&r, "amount"), "12.50");
    cr_assert_str_eq(str(&r, "currency"), "USD");
    cr_assert_str_eq(str(&r, "customer_id"), "cust_1");
    cr_assert_str_eq(str(&r, "description"), "March");
    cr_assert(is_null(r.json, "failure_reason") && is_null(r.json, "failed_at"));
    cr_assert_not_null(json_string_value(json_object_get(r.json, "completed_at")));
    cr_assert_not_null(json_string_value(json_object_get(r.json, "created_request_id")));
    const char *steps_want[] = {"invoice", "ledger", "pay"};
    for (size_t i = 0; i < 3; i++) {
        cr_assert_eq(steps(r.json, steps_want[i], "started"), 1, "%s: %s", steps_want[i], r.body);
        cr_assert_eq(steps(r.json, steps_want[i], "succeeded"), 1, "%s: %s", steps_want[i], r.body);
    }
    cr_assert_eq(json_array_size(json_object_get(r.json, "steps")), 6);

    struct h_resp g;
    get(pay, want, &g);
    cr_assert_eq(g.status, 200, "%s", g.body);
    cr_assert(json_equal(g.json, r.json), "GET %s differs from POST %s", g.body, r.body);
    h_resp_free(&g);
    cr_assert_eq(list_size(pay, "/payments?customer_id=cust_1"), 1);
    cr_assert_eq(list_size(pay, "/payments?customer_id=cust_2"), 0);
    /* the accounts: a cash and a revenue account in USD, 12.50 on each side */
    get(ledger_svc, "/accounts", &g);
    cr_assert_eq(json_array_size(json_object_get(g.json, "data")), 2, "%s", g.body);
    h_resp_free(&g);
    h_resp_free(&r);
    check_invariants();
}

BOTH(a_replay_answers_the_same_payment_and_does_nothing_twice)
{
    start_all();
    struct h_resp a, b;
    post_payment("k-replay", BODY, 0, &a);
    cr_assert_eq(a.status, 201, "%s", a.body);
    post_payment("k-replay", BODY, 0, &b);
    cr_assert_eq(b.status, 201, "%s", b.body);
    cr_assert_str_eq(str(&b, "id"), str(&a, "id"));
    cr_assert_str_eq(str(&b, "status"), "completed");
    char *replayed = h_resp_header(&b, "Idempotent-Replayed");
    cr_assert_str_eq(replayed, "true");
    free(replayed);
    h_resp_free(&a);
    h_resp_free(&b);
    cr_assert_eq(list_size(pay, "/payments"), 1);
    cr_assert_eq(list_size(inv, "/invoices"), 1);
    cr_assert_eq(list_size(ledger_svc, "/transactions"), 1);
    /* a second payment with another key is another payment, on the same accounts */
    post_payment("k-replay-2", BODY, 0, &a);
    cr_assert_eq(a.status, 201, "%s", a.body);
    h_resp_free(&a);
    cr_assert_eq(list_size(ledger_svc, "/accounts"), 2);
    check_invariants();
}

BOTH(the_request_is_checked_before_anything_happens)
{
    start_all();
    struct h_resp r;
    post_payment("k-same", BODY, 0, &r);
    cr_assert_eq(r.status, 201, "%s", r.body);
    h_resp_free(&r);
    post_payment("k-same", "{\"customer_id\":\"cust_1\",\"amount\":\"99.00\",\"currency\":\"USD\"}", 0, &r);
    expect_problem(&r, 422, "idempotency-key-reused", NULL);
    h_resp_free(&r);
    post_payment(NULL, BODY, 0, &r);
    expect_problem(&r, 400, "idempotency-key-missing", NULL);
    h_resp_free(&r);

    static const struct {
        const char *body, *pointer;
    } bad[] = {
        {"{\"amount\":\"1.00\",\"currency\":\"USD\"}", "/customer_id"},
        {"{\"customer_id\":\"\",\"amount\":\"1.00\",\"currency\":\"USD\"}", "/customer_id"},
        {"{\"customer_id\":\"c\",\"amount\":\"0.00\",\"currency\":\"USD\"}", "/amount"},
        {"{\"customer_id\":\"c\",\"amount\":\"-1.00\",\"currency\":\"USD\"}", "/amount"},
        {"{\"customer_id\":\"c\",\"amount\":\"1.001\",\"currency\":\"USD\"}", "/amount"},
        {"{\"customer_id\":\"c\",\"amount\":\"ten\",\"currency\":\"USD\"}", "/amount"},
        {"{\"customer_id\":\"c\",\"currency\":\"USD\"}", "/amount"},
        {"{\"customer_id\":\"c\",\"amount\":\"1.00\",\"currency\":\"XYZ\"}", "/currency"},
        {"{\"customer_id\":\"c\",\"amount\":\"1.00\"}", "/currency"},
        {"{\"customer_id\":\"c\",\"amount\":\"1.00\",\"currency\":\"USD\",\"description\":7}", "/description"},
        {"{\"customer_id\":7,\"amount\":\"1.00\",\"currency\":\"USD\"}", "/customer_id"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char key[32];
        snprintf(key, sizeof key, "k-bad-%zu", i);
        post_payment(key, bad[i].body, 0, &r);
        expect_problem(&r, 400, "validation", bad[i].pointer);
        h_resp_free(&r);
    }
    char big[700];
    snprintf(big, sizeof big, "{\"customer_id\":\"%065d\",\"amount\":\"1.00\",\"currency\":\"USD\"}", 0);
    post_payment("k-long", big, 0, &r);
    expect_problem(&r, 400, "validation", "/customer_id");
    h_resp_free(&r);
    post_payment("k-json", "{\"customer_id\":", 0, &r);
    expect_problem(&r, 400, "malformed-json", NULL);
    h_resp_free(&r);
    get(pay, "/payments/nope", &r);
    expect_problem(&r, 404, "not-found", NULL);
    h_resp_free(&r);
    get(pay, "/payments/pay_0000000000000000000000", &r);
    expect_problem(&r, 404, "not-found", NULL);
    h_resp_free(&r);
    get(pay, "/payments?limit=0", &r);
    expect_problem(&r, 400, "validation", "/limit");
    h_resp_free(&r);
    get(pay, "/payments?customer_id=", &r);
    expect_problem(&r, 400, "validation", "/customer_id");
    h_resp_free(&r);
    /* nothing but the first payment happened */
    cr_assert_eq(list_size(pay, "/payments"), 1);
    cr_assert_eq(list_size(inv, "/invoices"), 1);
    check_invariants();
}

BOTH(the_ledger_down_voids_the_invoice_and_fails_the_payment)
{
    start_all();
    struct h_resp r;
    post_payment("k-before", BODY, 0, &r);
    cr_assert_eq(r.status, 201, "%s", r.body);
    h_resp_free(&r);
    /* accounting-service goes away: connections are refused, a definite "never reached" */
    stop(&ledger_svc, "accounting-service");
    int64_t t0 = now_ms();
    post_payment("k-ledger-down", BODY, 0, &r);
    cr_assert_eq(r.status, 201, "%s", r.body);
    cr_assert_lt(now_ms() - t0, 10000);
    cr_assert_str_eq(str(&r, "status"), "failed");
    cr_assert_not_null(strstr(str(&r, "failure_reason"), "accounting-service"), "%s", r.body);
    cr_assert(is_null(r.json, "ledger_transaction_id") && is_null(r.json, "completed_at"));
    cr_assert_not_null(json_string_value(json_object_get(r.json, "failed_at")));
    cr_assert_eq(steps(r.json, "ledger", "failed"), 1, "%s", r.body);
    cr_assert_eq(steps(r.json, "void", "succeeded"), 1, "%s", r.body);
    cr_assert_eq(steps(r.json, "pay", NULL), 0, "%s", r.body);
    char path[128];
    snprintf(path, sizeof path, "/invoices/%s", str(&r, "invoice_id"));
    struct h_resp x;
    get(inv, path, &x);
    cr_assert_str_eq(str(&x, "status"), "void");
    cr_assert_str_eq(str(&x, "void_reason"), str(&r, "failure_reason"));
    h_resp_free(&x);
    h_resp_free(&r);
    check_invariants();
    /* the ledger as it was: the first payment's transaction only, balanced */
    start_accounting(); /* same database file */
    check_invariants();
}

BOTH(the_invoice_service_down_fails_fast_without_a_ledger_transaction)
{
    start_accounting();
    start_payment(dead_port(), ledger_svc->port, "2s");
    for (int i = 0; i < 3; i++) {
        char key[32];
        snprintf(key, sizeof key, "k-inv-down-%d", i);
        struct h_resp r;
        int64_t t0 = now_ms();
        post_payment(key, BODY, 0, &r);
        cr_assert_eq(r.status, 201, "%s", r.body);
        cr_assert_lt(now_ms() - t0, 3000, "not fast: %lld ms", (long long)(now_ms() - t0));
        cr_assert_str_eq(str(&r, "status"), "failed");
        cr_assert_not_null(strstr(str(&r, "failure_reason"), "invoice-service"), "%s", r.body);
        cr_assert(is_null(r.json, "invoice_id") && is_null(r.json, "ledger_transaction_id"));
        cr_assert_eq(steps(r.json, "invoice", "failed"), 1, "%s", r.body);
        cr_assert_eq(steps(r.json, "ledger", NULL), 0, "%s", r.body);
        h_resp_free(&r);
    }
    cr_assert_eq(list_size(ledger_svc, "/transactions"), 0);
    check_invariants();
}

BOTH(a_payment_left_pending_by_a_crash_is_resumed_by_recovery)
{
    start_invoice();
    /* the ledger hangs: every call times out, an ambiguous outcome retried later */
    start_payment(inv->port, hole_port(), "300ms");
    struct h_resp r;
    post_payment("k-crash", BODY, 1500, &r);
    cr_assert_eq(r.status, 202, "%s", r.body);
    cr_assert_str_eq(str(&r, "status"), "pending");
    char *id = strdup(str(&r, "id"));
    char *loc = h_resp_header(&r, "Location");
    cr_assert_not_null(loc);
    free(loc);
    cr_assert_not_null(json_string_value(json_object_get(r.json, "invoice_id")), "%s", r.body);
    cr_assert(is_null(r.json, "failure_reason"), "%s", r.body);
    h_resp_free(&r);
    /* a replay while pending answers the current state: still 202 */
    post_payment("k-crash", BODY, 1500, &r);
    cr_assert_eq(r.status, 202, "%s", r.body);
    cr_assert_str_eq(str(&r, "id"), id);
    h_resp_free(&r);

    h_signal(pay, SIGKILL);
    cr_assert_neq(h_wait(pay, 5000), -1);
    h_free(pay);
    pay = NULL;
    close(hole);
    hole = -1;

    start_accounting();
    start_payment(inv->port, ledger_svc->port, "2s");
    cr_assert(wait_payment(id, "completed", 20000, &r), "not resumed: %s", r.body);
    cr_assert_gt(steps(r.json, "ledger", "retry"), 0, "%s", r.body);
    cr_assert_eq(steps(r.json, "invoice", "succeeded"), 1, "%s", r.body);
    cr_assert_eq(steps(r.json, "ledger", "succeeded"), 1, "%s", r.body);
    cr_assert_eq(steps(r.json, "pay", "succeeded"), 1, "%s", r.body);
    h_resp_free(&r);
    /* the replay now answers the payment as it is: completed */
    post_payment("k-crash", BODY, 0, &r);
    cr_assert_eq(r.status, 201, "%s", r.body);
    cr_assert_str_eq(str(&r, "status"), "completed");
    h_resp_free(&r);
    cr_assert_eq(list_size(inv, "/invoices"), 1);
    free(id);
    check_invariants();
}
