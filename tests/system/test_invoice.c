/* test_invoice.c — invoice-service as a client sees it, on SQLite and on PostgreSQL alike:
 * create (with a required Idempotency-Key), read, list page by page, pay and void with
 * their 409s; every bad input a 4xx problem naming the field; replays; a pay racing a void;
 * a restart on the same database; PostgreSQL going away and coming back. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "db_harness.h"

static struct h_proc *svc;
static struct pg_server *pg;
static char tmpdir[64];
static char url[512];

static void teardown(void)
{
    if (svc != NULL) {
        int st = h_stop(svc, 10000);
        h_free(svc);
        svc = NULL;
        cr_expect_eq(st, 0, "invoice-service exited with %d (a sanitizer report or a failed drain)", st);
    }
    cr_expect(h_db_cleanup(&pg, tmpdir));
}

TestSuite(invoice_sqlite, .fini = teardown, .timeout = 90);
TestSuite(invoice_pg, .fini = teardown, .timeout = 120);

static void start_service(void)
{
    const char *const args[] = {"--db", url, "--shutdown-delay", "0", NULL};
    svc = h_start("invoice-service", args);
    cr_assert_not_null(svc);
}

static void use_sqlite(void)
{
    cr_assert(h_db_sqlite(tmpdir, sizeof tmpdir, url, sizeof url, "invoice", "x.db"));
    start_service();
}

static void use_pg(void)
{
    cr_assert(h_db_pg(&pg, url, sizeof url), "PostgreSQL did not start");
    start_service();
}

/* Every test runs on both backends. */
#define BOTH(name)                                                                        \
    static void name(void);                                                               \
    Test(invoice_sqlite, name) { use_sqlite(); name(); }                                  \
    Test(invoice_pg, name) { use_pg(); name(); }                                          \
    static void name(void)

/* --- requests --- */

/* POST path with a JSON body; key (may be NULL) as Idempotency-Key; rid (may be NULL) as
 * X-Request-Id. */
static void post(const char *path, const char *key, const char *rid, const char *body,
                 struct h_resp *r)
{
    char kh[400], rh[128];
    const char *hdr[4] = {"Content-Type: application/json", NULL, NULL, NULL};
    size_t n = 1;
    if (key != NULL) {
        snprintf(kh, sizeof kh, "Idempotency-Key: %s", key);
        hdr[n++] = kh;
    }
    if (rid != NULL) {
        snprintf(rh, sizeof rh, "X-Request-Id: %s", rid);
        hdr[n++] = rh;
    }
    cr_assert(h_http(svc->port, "POST", path, hdr, body, body != NULL ? strlen(body) : 0, r),
              "transport error on POST %s", path);
}

static void get(const char *path, struct h_resp *r)
{
    cr_assert(h_http(svc->port, "GET", path, NULL, NULL, 0, r), "transport error on GET %s", path);
}

static const char *str(const struct h_resp *r, const char *key)
{
    cr_assert_not_null(r->json, "body is not JSON: %s", r->body);
    const char *v = json_string_value(json_object_get(r->json, key));
    cr_assert_not_null(v, "no string %s in %s", key, r->body);
    return v;
}

static bool is_null(const struct h_resp *r, const char *key)
{
    return json_is_null(json_object_get(r->json, key));
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
    cr_assert_str_eq(str(r, "type"), type, "body: %s", r->body);
    cr_assert_eq(json_integer_value(json_object_get(r->json, "status")), status);
    cr_assert_not_null(json_object_get(r->json, "request_id"));
    if (pointer == NULL)
        return;
    json_t *errors = json_object_get(r->json, "errors");
    size_t i;
    json_t *e;
    json_array_foreach(errors, i, e) {
        if (strcmp(json_string_value(json_object_get(e, "pointer")), pointer) == 0)
            return;
    }
    cr_assert_fail("no error for %s in %s", pointer, r->body);
}

/* Creates an invoice and returns its id (caller frees). */
static char *create(const char *customer, const char *amount, const char *payment_id)
{
    static unsigned n;
    char key[64], body[512];
    snprintf(key, sizeof key, "create-%u-%ld", n++, (long)getpid());
    int len = snprintf(body, sizeof body, "{\"customer_id\":\"%s\",\"amount\":\"%s\",\"currency\":\"USD\","
                                         "\"description\":\"test\"", customer, amount);
    if (payment_id != NULL)
        len += snprintf(body + len, sizeof body - (size_t)len, ",\"payment_id\":\"%s\"", payment_id);
    snprintf(body + len, sizeof body - (size_t)len, "}");
    struct h_resp r;
    post("/invoices", key, NULL, body, &r);
    cr_assert_eq(r.status, 201, "%s", r.body);
    char *id = strdup(str(&r, "id"));
    h_resp_free(&r);
    return id;
}

static void action(const char *id, const char *verb, const char *key, const char *body,
                   struct h_resp *r)
{
    char path[128];
    snprintf(path, sizeof path, "/invoices/%s/%s", id, verb);
    post(path, key, NULL, body, r);
}

static size_t count(const char *query)
{
    char path[256];
    snprintf(path, sizeof path, "/invoices?limit=100%s", query);
    struct h_resp r;
    get(path, &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    size_t n = json_array_size(json_object_get(r.json, "data"));
    h_resp_free(&r);
    return n;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Polls GET path until it answers want, for at most ms. */
static bool wait_status(const char *path, long want, int ms)
{
    int64_t end = now_ms() + ms;
    do {
        struct h_resp r;
        bool ok = h_http(svc->port, "GET", path, NULL, NULL, 0, &r);
        long st = r.status;
        h_resp_free(&r);
        if (ok && st == want)
            return true;
        h_sleep_ms(50);
    } while (now_ms() < end);
    return false;
}

/* --- create and read --- */

BOTH(create_answers_201_with_location_and_the_invoice)
{
    struct h_resp r;
    post("/invoices", "k-create", "rid-create-1",
         "{\"customer_id\":\"cust_1\",\"amount\":\"12.50\",\"currency\":\"USD\",\"description\":\"March\"}", &r);
    cr_assert_eq(r.status, 201, "%s", r.body);
    const char *id = str(&r, "id");
    cr_assert_eq(strncmp(id, "inv_", 4), 0, "%s", id);
    char want[128];
    snprintf(want, sizeof want, "/invoices/%s", id);
    char *loc = h_resp_header(&r, "Location");
    cr_assert_str_eq(loc, want);
    free(loc);
    char *ct = h_resp_header(&r, "Content-Type");
    cr_assert_str_eq(ct, "application/json");
    free(ct);
    cr_assert_str_eq(str(&r, "customer_id"), "cust_1");
    cr_assert_str_eq(str(&r, "amount"), "12.50");
    cr_assert_str_eq(str(&r, "currency"), "USD");
    cr_assert_str_eq(str(&r, "description"), "March");
    cr_assert_str_eq(str(&r, "status"), "open");
    cr_assert_str_eq(str(&r, "created_request_id"), "rid-create-1");
    cr_assert_eq(strlen(str(&r, "created_at")), 24, "%s", str(&r, "created_at"));
    cr_assert(is_null(&r, "payment_id") && is_null(&r, "paid_at") && is_null(&r, "voided_at"));

    struct h_resp g;
    get(want, &g);
    cr_assert_eq(g.status, 200, "%s", g.body);
    cr_assert(json_equal(g.json, r.json), "GET %s differs from POST %s", g.body, r.body);
    h_resp_free(&g);
    h_resp_free(&r);
}

BOTH(amounts_keep_their_currency_decimals_and_number_form)
{
    struct h_resp r;
    post("/invoices", "k-jpy", NULL, "{\"customer_id\":\"c\",\"amount\":1500,\"currency\":\"JPY\"}", &r);
    cr_assert_eq(r.status, 201, "%s", r.body);
    cr_assert_str_eq(str(&r, "amount"), "1500");
    cr_assert_str_eq(str(&r, "description"), "");
    h_resp_free(&r);
    post("/invoices", "k-kwd", NULL,
         "{\"customer_id\":\"c\",\"amount\":0.125,\"currency\":\"KWD\",\"payment_id\":\"pay_9\"}", &r);
    cr_assert_eq(r.status, 201, "%s", r.body);
    cr_assert_str_eq(str(&r, "amount"), "0.125");
    cr_assert_str_eq(str(&r, "payment_id"), "pay_9");
    h_resp_free(&r);
    post("/invoices", "k-big", NULL,
         "{\"customer_id\":\"c\",\"amount\":\"90071992547409.93\",\"currency\":\"USD\"}", &r);
    cr_assert_eq(r.status, 201, "%s", r.body);
    cr_assert_str_eq(str(&r, "amount"), "90071992547409.93");
    h_resp_free(&r);
}

BOTH(unknown_or_malformed_id_is_404)
{
    const char *paths[] = {"/invoices/inv_0000000000000000000000", "/invoices/nope",
                           "/invoices/pay_0000000000000000000000"};
    for (size_t i = 0; i < 3; i++) {
        struct h_resp r;
        get(paths[i], &r);
        expect_problem(&r, 404, "not-found", NULL);
        h_resp_free(&r);
    }
    const char *verbs[] = {"pay", "void"};
    for (size_t i = 0; i < 2; i++) {
        struct h_resp r;
        action("inv_0000000000000000000000", verbs[i], NULL, NULL, &r);
        expect_problem(&r, 404, "not-found", NULL);
        h_resp_free(&r);
        action("garbage", verbs[i], NULL, NULL, &r);
        expect_problem(&r, 404, "not-found", NULL);
        h_resp_free(&r);
    }
}

/* --- bad input --- */

struct bad_case {
    const char *body;
    const char *slug;
    const char *pointer;
};

BOTH(every_bad_create_body_is_a_400_naming_the_field)
{
    char long_id[200], long_desc[700], body_id[300], body_desc[800], body_pay[300];
    memset(long_id, 'x', 65);
    long_id[65] = '\0';
    memset(long_desc, 'd', 501);
    long_desc[501] = '\0';
    snprintf(body_id, sizeof body_id, "{\"customer_id\":\"%s\",\"amount\":1,\"currency\":\"USD\"}", long_id);
    snprintf(body_desc, sizeof body_desc,
             "{\"customer_id\":\"c\",\"amount\":1,\"currency\":\"USD\",\"description\":\"%s\"}", long_desc);
    snprintf(body_pay, sizeof body_pay,
             "{\"customer_id\":\"c\",\"amount\":1,\"currency\":\"USD\",\"payment_id\":\"%s\"}", long_id);
    const struct bad_case cases[] = {
        {"{\"customer_id\":", "malformed-json", NULL},
        {"not json", "malformed-json", NULL},
        {"", "malformed-json", NULL},
        {"{\"customer_id\":\"c\",\"amount\":NaN,\"currency\":\"USD\"}", "malformed-json", NULL},
        {"{\"customer_id\":\"c\",\"amount\":1,\"amount\":2,\"currency\":\"USD\"}", "malformed-json", NULL},
        {"[1,2]", "validation", ""},
        {"{}", "validation", "/customer_id"},
        {"{}", "validation", "/amount"},
        {"{}", "validation", "/currency"},
        {"{\"amount\":1,\"currency\":\"USD\"}", "validation", "/customer_id"},
        {"{\"customer_id\":\"\",\"amount\":1,\"currency\":\"USD\"}", "validation", "/customer_id"},
        {body_id, "validation", "/customer_id"},
        {"{\"customer_id\":7,\"amount\":1,\"currency\":\"USD\"}", "validation", "/customer_id"},
        {"{\"customer_id\":\"c\",\"currency\":\"USD\"}", "validation", "/amount"},
        {"{\"customer_id\":\"c\",\"amount\":\"-1.00\",\"currency\":\"USD\"}", "validation", "/amount"},
        {"{\"customer_id\":\"c\",\"amount\":-5,\"currency\":\"USD\"}", "validation", "/amount"},
        {"{\"customer_id\":\"c\",\"amount\":0,\"currency\":\"USD\"}", "validation", "/amount"},
        {"{\"customer_id\":\"c\",\"amount\":\"0.00\",\"currency\":\"USD\"}", "validation", "/amount"},
        {"{\"customer_id\":\"c\",\"amount\":\"1.001\",\"currency\":\"USD\"}", "validation", "/amount"},
        {"{\"customer_id\":\"c\",\"amount\":1.001,\"currency\":\"USD\"}", "validation", "/amount"},
        {"{\"customer_id\":\"c\",\"amount\":\"1.5\",\"currency\":\"JPY\"}", "validation", "/amount"},
        {"{\"customer_id\":\"c\",\"amount\":\"NaN\",\"currency\":\"USD\"}", "validation", "/amount"},
        {"{\"customer_id\":\"c\",\"amount\":\"Infinity\",\"currency\":\"USD\"}", "validation", "/amount"},
        {"{\"customer_id\":\"c\",\"amount\":\"1e3\",\"currency\":\"USD\"}", "validation", "/amount"},
        {"{\"customer_id\":\"c\",\"amount\":\"ten\",\"currency\":\"USD\"}", "validation", "/amount"},
        {"{\"customer_id\":\"c\",\"amount\":\" 1\",\"currency\":\"USD\"}", "validation", "/amount"},
        {"{\"customer_id\":\"c\",\"amount\":\"99999999999999999999\",\"currency\":\"USD\"}", "validation", "/amount"},
        {"{\"customer_id\":\"c\",\"amount\":true,\"currency\":\"USD\"}", "validation", "/amount"},
        {"{\"customer_id\":\"c\",\"amount\":{},\"currency\":\"USD\"}", "validation", "/amount"},
        {"{\"customer_id\":\"c\",\"amount\":1}", "validation", "/currency"},
        {"{\"customer_id\":\"c\",\"amount\":1,\"currency\":\"XYZ\"}", "validation", "/currency"},
        {"{\"customer_id\":\"c\",\"amount\":1,\"currency\":\"usd\"}", "validation", "/currency"},
        {"{\"customer_id\":\"c\",\"amount\":1,\"currency\":840}", "validation", "/currency"},
        {body_desc, "validation", "/description"},
        {"{\"customer_id\":\"c\",\"amount\":1,\"currency\":\"USD\",\"description\":[]}", "validation", "/description"},
        {body_pay, "validation", "/payment_id"},
        {"{\"customer_id\":\"c\",\"amount\":1,\"currency\":\"USD\",\"payment_id\":\"\"}", "validation", "/payment_id"},
        {"{\"customer_id\":\"c\",\"amount\":1,\"currency\":\"USD\",\"payment_id\":42}", "validation", "/payment_id"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char key[32];
        snprintf(key, sizeof key, "bad-%zu", i);
        struct h_resp r;
        post("/invoices", key, NULL, cases[i].body, &r);
        cr_log_info("case %zu: %s -> %ld %s", i, cases[i].body, r.status, r.body);
        expect_problem(&r, 400, cases[i].slug, cases[i].pointer);
        h_resp_free(&r);
    }
    cr_assert_eq(count(""), 0, "a bad request created an invoice");
}

BOTH(idempotency_key_is_required_and_checked)
{
    const char *body = "{\"customer_id\":\"c\",\"amount\":1,\"currency\":\"USD\"}";
    struct h_resp r;
    post("/invoices", NULL, NULL, body, &r);
    expect_problem(&r, 400, "idempotency-key-missing", NULL);
    h_resp_free(&r);
    char key[300];
    memset(key, 'k', 256);
    key[256] = '\0';
    post("/invoices", key, NULL, body, &r);
    expect_problem(&r, 400, "idempotency-key-invalid", NULL);
    h_resp_free(&r);
    cr_assert_eq(count(""), 0);
}

BOTH(wrong_content_type_is_415)
{
    static const char *const text[] = {"Content-Type: text/plain", "Idempotency-Key: ct-1", NULL};
    const char *body = "{\"customer_id\":\"c\",\"amount\":1,\"currency\":\"USD\"}";
    struct h_resp r;
    cr_assert(h_http(svc->port, "POST", "/invoices", text, body, strlen(body), &r));
    expect_problem(&r, 415, "unsupported-media-type", NULL);
    h_resp_free(&r);
    char *id = create("c", "1", NULL);
    char path[128];
    snprintf(path, sizeof path, "/invoices/%s/pay", id);
    cr_assert(h_http(svc->port, "POST", path, text, "{}", 2, &r));
    expect_problem(&r, 415, "unsupported-media-type", NULL);
    h_resp_free(&r);
    free(id);
    cr_assert_eq(count(""), 1);
}

BOTH(bad_pay_and_void_bodies_are_400)
{
    char *id = create("c", "1", NULL);
    const struct {
        const char *verb, *body, *slug, *pointer;
    } cases[] = {
        {"pay", "{", "malformed-json", NULL},
        {"pay", "{\"payment_id\":5}", "validation", "/payment_id"},
        {"pay", "{\"payment_id\":\"\"}", "validation", "/payment_id"},
        {"pay", "[]", "validation", ""},
        {"void", "{\"reason\":false}", "validation", "/reason"},
        {"void", "nope", "malformed-json", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct h_resp r;
        action(id, cases[i].verb, NULL, cases[i].body, &r);
        cr_log_info("case %zu: %s %s -> %ld %s", i, cases[i].verb, cases[i].body, r.status, r.body);
        expect_problem(&r, 400, cases[i].slug, cases[i].pointer);
        h_resp_free(&r);
    }
    struct h_resp g;
    char path[128];
    snprintf(path, sizeof path, "/invoices/%s", id);
    get(path, &g);
    cr_assert_str_eq(str(&g, "status"), "open");
    h_resp_free(&g);
    free(id);
}

/* --- idempotency --- */

BOTH(same_key_and_body_replays_and_creates_once)
{
    const char *body = "{\"customer_id\":\"c\",\"amount\":\"9.99\",\"currency\":\"EUR\"}";
    struct h_resp a, b;
    post("/invoices", "replay-1", NULL, body, &a);
    cr_assert_eq(a.status, 201, "%s", a.body);
    post("/invoices", "replay-1", NULL, body, &b);
    cr_assert_eq(b.status, 201, "%s", b.body);
    cr_assert_str_eq(b.body, a.body);
    char *replayed = h_resp_header(&b, "Idempotent-Replayed");
    cr_assert_str_eq(replayed, "true");
    free(replayed);
    char *la = h_resp_header(&a, "Location"), *lb = h_resp_header(&b, "Location");
    cr_assert_str_eq(lb, la);
    free(la);
    free(lb);
    cr_assert_null(h_resp_header(&a, "Idempotent-Replayed"));
    h_resp_free(&a);
    h_resp_free(&b);
    cr_assert_eq(count(""), 1);

    struct h_resp c;
    post("/invoices", "replay-1", NULL, "{\"customer_id\":\"c\",\"amount\":\"10.00\",\"currency\":\"EUR\"}", &c);
    expect_problem(&c, 422, "idempotency-key-reused", NULL);
    h_resp_free(&c);
    cr_assert_eq(count(""), 1);
}

BOTH(pay_and_void_accept_a_key_and_replay)
{
    char *id = create("c", "5", NULL);
    struct h_resp a, b;
    action(id, "pay", "pay-key", "{\"payment_id\":\"pay_1\"}", &a);
    cr_assert_eq(a.status, 200, "%s", a.body);
    action(id, "pay", "pay-key", "{\"payment_id\":\"pay_1\"}", &b);
    cr_assert_eq(b.status, 200, "%s", b.body);
    cr_assert_str_eq(b.body, a.body);
    char *replayed = h_resp_header(&b, "Idempotent-Replayed");
    cr_assert_str_eq(replayed, "true");
    free(replayed);
    h_resp_free(&b);
    /* a conflict answered under a key is replayed too */
    action(id, "void", "void-key", NULL, &b);
    expect_problem(&b, 409, "conflict", NULL);
    struct h_resp c;
    action(id, "void", "void-key", NULL, &c);
    expect_problem(&c, 409, "conflict", NULL);
    cr_assert_str_eq(c.body, b.body);
    replayed = h_resp_header(&c, "Idempotent-Replayed");
    cr_assert_str_eq(replayed, "true");
    free(replayed);
    h_resp_free(&c);
    h_resp_free(&b);
    action(id, "pay", "pay-key", "{\"payment_id\":\"pay_2\"}", &b);
    expect_problem(&b, 422, "idempotency-key-reused", NULL);
    h_resp_free(&b);
    h_resp_free(&a);
    free(id);
}

/* --- state changes --- */

BOTH(pay_stamps_the_invoice_and_is_idempotent_by_state)
{
    char *id = create("c", "20.00", NULL);
    struct h_resp a;
    char path[128];
    snprintf(path, sizeof path, "/invoices/%s/pay", id);
    post(path, NULL, "rid-pay-1", "{\"payment_id\":\"pay_A\"}", &a);
    cr_assert_eq(a.status, 200, "%s", a.body);
    cr_assert_str_eq(str(&a, "status"), "paid");
    cr_assert_str_eq(str(&a, "payment_id"), "pay_A");
    cr_assert_str_eq(str(&a, "paid_request_id"), "rid-pay-1");
    cr_assert_eq(strlen(str(&a, "paid_at")), 24);
    cr_assert(is_null(&a, "voided_at"));

    struct h_resp r;
    action(id, "pay", NULL, "{\"payment_id\":\"pay_A\"}", &r); /* same payment */
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(json_equal(r.json, a.json), "%s vs %s", r.body, a.body);
    h_resp_free(&r);
    action(id, "pay", NULL, NULL, &r); /* no payment named */
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(json_equal(r.json, a.json));
    h_resp_free(&r);
    action(id, "pay", NULL, "{}", &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    h_resp_free(&r);
    action(id, "pay", NULL, "{\"payment_id\":\"pay_B\"}", &r); /* another payment */
    expect_problem(&r, 409, "conflict", NULL);
    h_resp_free(&r);
    action(id, "void", NULL, NULL, &r); /* a paid invoice cannot be voided */
    expect_problem(&r, 409, "conflict", NULL);
    h_resp_free(&r);

    struct h_resp g;
    snprintf(path, sizeof path, "/invoices/%s", id);
    get(path, &g);
    cr_assert(json_equal(g.json, a.json), "%s vs %s", g.body, a.body);
    h_resp_free(&g);
    h_resp_free(&a);
    free(id);
}

BOTH(pay_without_body_keeps_the_payment_named_at_creation)
{
    char *id = create("c", "3", "pay_X");
    struct h_resp r;
    action(id, "pay", NULL, "{\"payment_id\":\"pay_Y\"}", &r); /* not the invoice's payment */
    expect_problem(&r, 409, "conflict", NULL);
    h_resp_free(&r);
    action(id, "pay", NULL, NULL, &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(str(&r, "payment_id"), "pay_X");
    cr_assert_str_eq(str(&r, "status"), "paid");
    h_resp_free(&r);
    action(id, "pay", NULL, "{\"payment_id\":\"pay_X\"}", &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    h_resp_free(&r);
    free(id);
}

BOTH(void_stamps_the_invoice_and_is_idempotent)
{
    char *id = create("c", "7.10", NULL);
    char path[128];
    snprintf(path, sizeof path, "/invoices/%s/void", id);
    struct h_resp a, r;
    post(path, "void-1", "rid-void-1", "{\"reason\":\"ledger refused\"}", &a);
    cr_assert_eq(a.status, 200, "%s", a.body);
    cr_assert_str_eq(str(&a, "status"), "void");
    cr_assert_str_eq(str(&a, "void_reason"), "ledger refused");
    cr_assert_str_eq(str(&a, "voided_request_id"), "rid-void-1");
    cr_assert_eq(strlen(str(&a, "voided_at")), 24);
    cr_assert(is_null(&a, "paid_at"));
    action(id, "void", NULL, NULL, &r); /* void of void: the same body */
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(r.body, a.body);
    h_resp_free(&r);
    action(id, "void", "void-2", "{\"reason\":\"again\"}", &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(str(&r, "void_reason"), "ledger refused");
    h_resp_free(&r);
    action(id, "pay", NULL, NULL, &r); /* paying a void invoice */
    expect_problem(&r, 409, "conflict", NULL);
    h_resp_free(&r);
    action(id, "pay", NULL, "{\"payment_id\":\"p\"}", &r);
    expect_problem(&r, 409, "conflict", NULL);
    h_resp_free(&r);
    h_resp_free(&a);
    free(id);
}

/* --- lists --- */

BOTH(lists_page_through_in_creation_order)
{
    char *ids[25];
    for (int i = 0; i < 25; i++)
        ids[i] = create("pager", "1", NULL);
    char *other = create("someone_else", "1", NULL);
    char path[256] = "/invoices?customer_id=pager&limit=10";
    size_t sizes[3] = {0}, seen = 0;
    int pages = 0;
    for (;;) {
        struct h_resp r;
        get(path, &r);
        cr_assert_eq(r.status, 200, "%s", r.body);
        cr_assert_lt(pages, 3, "more than 3 pages");
        json_t *data = json_object_get(r.json, "data");
        sizes[pages++] = json_array_size(data);
        size_t i;
        json_t *inv;
        json_array_foreach(data, i, inv) {
            cr_assert_str_eq(json_string_value(json_object_get(inv, "id")), ids[seen], "order at %zu", seen);
            cr_assert_str_eq(json_string_value(json_object_get(inv, "customer_id")), "pager");
            seen++;
        }
        const char *next = json_string_value(json_object_get(r.json, "next_cursor"));
        if (next == NULL) {
            cr_assert_null(json_object_get(r.json, "next_cursor"), "%s", r.body);
            h_resp_free(&r);
            break;
        }
        snprintf(path, sizeof path, "/invoices?customer_id=pager&limit=10&cursor=%s", next);
        h_resp_free(&r);
    }
    cr_assert_eq(pages, 3);
    cr_assert_eq(sizes[0], 10);
    cr_assert_eq(sizes[1], 10);
    cr_assert_eq(sizes[2], 5);
    cr_assert_eq(seen, 25);
    cr_assert_eq(count(""), 26);
    cr_assert_eq(count("&customer_id=someone_else"), 1);
    cr_assert_eq(count("&customer_id=nobody"), 0);

    struct h_resp r;
    action(ids[3], "pay", NULL, NULL, &r);
    h_resp_free(&r);
    action(ids[4], "void", NULL, NULL, &r);
    h_resp_free(&r);
    cr_assert_eq(count("&status=paid"), 1);
    cr_assert_eq(count("&status=void"), 1);
    cr_assert_eq(count("&status=open"), 24);
    cr_assert_eq(count("&status=open&customer_id=pager"), 23);

    const struct {
        const char *path, *pointer;
    } bad[] = {
        {"/invoices?cursor=bogus", "/cursor"},
        {"/invoices?cursor=c", "/cursor"},
        {"/invoices?cursor=c-5", "/cursor"},
        {"/invoices?limit=0", "/limit"},
        {"/invoices?limit=101", "/limit"},
        {"/invoices?limit=ten", "/limit"},
        {"/invoices?status=closed", "/status"},
        {"/invoices?customer_id=", "/customer_id"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        get(bad[i].path, &r);
        expect_problem(&r, 400, "validation", bad[i].pointer);
        h_resp_free(&r);
    }
    for (int i = 0; i < 25; i++)
        free(ids[i]);
    free(other);
}

/* --- races --- */

struct racer {
    uint16_t port;
    char path[128];
    pthread_barrier_t *go;
    long status;
};

static void *race(void *arg)
{
    struct racer *r = arg;
    static const char *const hdr[] = {"Content-Type: application/json", NULL};
    pthread_barrier_wait(r->go);
    struct h_resp resp;
    r->status = h_http(r->port, "POST", r->path, hdr, NULL, 0, &resp) ? resp.status : -1;
    h_resp_free(&resp);
    return NULL;
}

BOTH(concurrent_pay_and_void_end_in_one_state)
{
    for (int round = 0; round < 10; round++) {
        char *id = create("racer", "1", NULL);
        pthread_barrier_t go;
        pthread_barrier_init(&go, NULL, 2);
        struct racer rs[2] = {{.port = svc->port, .go = &go}, {.port = svc->port, .go = &go}};
        snprintf(rs[0].path, sizeof rs[0].path, "/invoices/%s/pay", id);
        snprintf(rs[1].path, sizeof rs[1].path, "/invoices/%s/void", id);
        pthread_t t[2];
        for (int i = 0; i < 2; i++)
            cr_assert_eq(pthread_create(&t[i], NULL, race, &rs[i]), 0);
        for (int i = 0; i < 2; i++)
            pthread_join(t[i], NULL);
        pthread_barrier_destroy(&go);
        cr_assert((rs[0].status == 200 && rs[1].status == 409) || (rs[0].status == 409 && rs[1].status == 200),
                  "round %d: pay %ld, void %ld", round, rs[0].status, rs[1].status);
        char path[128];
        snprintf(path, sizeof path, "/invoices/%s", id);
        struct h_resp g;
        get(path, &g);
        const char *want = rs[0].status == 200 ? "paid" : "void";
        cr_assert_str_eq(str(&g, "status"), want, "round %d: %s", round, g.body);
        cr_assert(rs[0].status == 200 ? is_null(&g, "voided_at") : is_null(&g, "paid_at"), "%s", g.body);
        h_resp_free(&g);
        free(id);
    }
}

/* --- lifecycle --- */

BOTH(a_restart_on_the_same_database_keeps_everything)
{
    char *id = create("c", "42.00", NULL);
    struct h_resp before, r;
    action(id, "pay", NULL, "{\"payment_id\":\"pay_R\"}", &before);
    cr_assert_eq(before.status, 200, "%s", before.body);
    const char *body = "{\"customer_id\":\"c\",\"amount\":\"1.00\",\"currency\":\"USD\"}";
    struct h_resp first;
    post("/invoices", "restart-key", NULL, body, &first);
    cr_assert_eq(first.status, 201, "%s", first.body);

    int st = h_stop(svc, 10000);
    h_free(svc);
    svc = NULL;
    cr_assert_eq(st, 0);
    start_service();

    char path[128];
    snprintf(path, sizeof path, "/invoices/%s", id);
    get(path, &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(json_equal(r.json, before.json), "%s vs %s", r.body, before.body);
    h_resp_free(&r);
    post("/invoices", "restart-key", NULL, body, &r);
    cr_assert_eq(r.status, 201, "%s", r.body);
    cr_assert_str_eq(r.body, first.body);
    char *replayed = h_resp_header(&r, "Idempotent-Replayed");
    cr_assert_str_eq(replayed, "true");
    free(replayed);
    h_resp_free(&r);
    cr_assert_eq(count(""), 2);
    h_resp_free(&first);
    h_resp_free(&before);
    free(id);
}

static void expect_unavailable(const struct h_resp *r)
{
    expect_problem(r, 503, "unavailable", NULL);
    char *ra = h_resp_header(r, "Retry-After");
    cr_assert_not_null(ra, "503 without Retry-After");
    free(ra);
}

Test(invoice_pg, postgres_down_is_503_and_recovery_is_automatic)
{
    use_pg();
    char *id = create("c", "1", NULL);
    pg_kill(pg);
    cr_assert(wait_status("/ready", 503, 15000), "/ready did not fail with the database gone");

    const char *body = "{\"customer_id\":\"c\",\"amount\":\"2.00\",\"currency\":\"USD\"}";
    struct h_resp r;
    post("/invoices", "down-key", NULL, body, &r);
    expect_unavailable(&r);
    h_resp_free(&r);
    char path[128];
    snprintf(path, sizeof path, "/invoices/%s", id);
    get(path, &r);
    expect_unavailable(&r);
    h_resp_free(&r);
    get("/invoices", &r);
    expect_unavailable(&r);
    h_resp_free(&r);
    action(id, "pay", NULL, NULL, &r);
    expect_unavailable(&r);
    h_resp_free(&r);
    struct h_resp health;
    get("/health", &health);
    cr_assert_eq(health.status, 200, "liveness must not depend on the database: %s", health.body);
    h_resp_free(&health);

    cr_assert(pg_restart(pg), "PostgreSQL did not come back");
    cr_assert(wait_status("/ready", 200, 20000), "/ready did not recover");
    get(path, &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    h_resp_free(&r);
    /* the key of the request that failed was not consumed: it runs anew */
    post("/invoices", "down-key", NULL, body, &r);
    cr_assert_eq(r.status, 201, "%s", r.body);
    cr_assert_null(h_resp_header(&r, "Idempotent-Replayed"));
    h_resp_free(&r);
    action(id, "pay", NULL, NULL, &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    h_resp_free(&r);
    cr_assert_eq(count(""), 2);
    free(id);
}
