/* test_payment_faults.c — payment-service under faults (issue 9), with real invoice-service
 * and accounting-service (on SQLite) and the payment database on SQLite and on PostgreSQL:
 *   - a crash (WARD_FAULTS "<point>=exit", status 86) at every saga step boundary, then a
 *     restart without faults on the same database: the payment ends, nothing is doubled;
 *   - ambiguous outcomes: accounting-service committing and answering after the step's
 *     deadline, or dying right after its commit; invoice-service dying after its commit;
 *   - the circuit breaker failing fast while invoice-service is down and closing again;
 *   - the ledger rate limiter queueing calls instead of failing payments;
 *   - load on two instances sharing PostgreSQL, repeated keys and a SIGKILL of one.
 * Every scenario ends by checking DESIGN.md §6's invariants over everything that exists:
 * no payment lost (none pending at the end), none duplicated, no paid invoice without its
 * ledger transaction, no ledger transaction without its payment, each ledger balanced. */
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <ward/fault.h>

#include "harness.h"
#include "db_harness.h"

static struct h_proc *inv, *ledger_svc, *pays[2];
static uint16_t inv_port, acct_port; /* kept across restarts: payment-service calls them */
static struct pg_server *pg;
static char tmpdir[64];
static char db[512];

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
    stop(&pays[0], "payment-service");
    stop(&pays[1], "payment-service (2)");
    stop(&inv, "invoice-service");
    stop(&ledger_svc, "accounting-service");
    inv_port = acct_port = 0;
    cr_expect(h_db_cleanup(&pg, tmpdir));
}

TestSuite(payment_faults_sqlite, .fini = teardown, .timeout = 120);
TestSuite(payment_faults_pg, .fini = teardown, .timeout = 150);

/* The payment database on either backend; the other services' files go in tmpdir. */
static void use_sqlite(void)
{
    cr_assert(h_db_sqlite(tmpdir, sizeof tmpdir, db, sizeof db, "payfault", "payment.db"));
}

static void use_pg(void)
{
    cr_assert(h_db_dir(tmpdir, sizeof tmpdir, "payfault"));
    cr_assert(h_db_pg(&pg, db, sizeof db), "PostgreSQL did not start");
}

#define BOTH(name)                                                                        \
    static void name(void);                                                               \
    Test(payment_faults_sqlite, name) { use_sqlite(); name(); }                           \
    Test(payment_faults_pg, name) { use_pg(); name(); }                                   \
    static void name(void)

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- processes --- */

/* Starts binary with args (NULL-terminated) and WARD_FAULTS=faults (NULL: none). Only
 * the test's main thread starts processes, so the environment is not raced. */
static struct h_proc *start_with_faults(const char *binary, const char *const *args,
                                        const char *faults)
{
    if (faults != NULL)
        cr_assert_eq(setenv("WARD_FAULTS", faults, 1), 0);
    struct h_proc *p = h_start(binary, args);
    unsetenv("WARD_FAULTS");
    cr_assert_not_null(p, "%s did not start", binary);
    return p;
}

/* A dependency on its SQLite file in tmpdir, on *port (0: any; the port picked is kept,
 * so that a restart answers where payment-service calls). */
static struct h_proc *start_dep(const char *binary, const char *file, uint16_t *port,
                                const char *faults)
{
    char url[256], listen[64];
    snprintf(url, sizeof url, "sqlite://%s/%s", tmpdir, file);
    snprintf(listen, sizeof listen, "127.0.0.1:%u", *port);
    const char *const args[] = {"--db", url, "--shutdown-delay", "0", "--no-access-log",
                                "--listen", listen, NULL};
    struct h_proc *p = start_with_faults(binary, args, faults);
    *port = p->port;
    return p;
}

static void start_invoice(const char *faults)
{
    inv = start_dep("invoice-service", "invoice.db", &inv_port, faults);
}

static void start_accounting(const char *faults)
{
    ledger_svc = start_dep("accounting-service", "accounting.db", &acct_port, faults);
}

/* A port nothing listens on (connections refused); a dependency may be started on it
 * later. */
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

struct popts {
    const char *faults;          /* WARD_FAULTS, or NULL */
    const char *step_timeout;    /* default "2s" */
    const char *breaker_timeout; /* default "300ms" */
    const char *extra[6];        /* more flags, NULL-terminated */
};

/* payment-service on db calling inv_port and acct_port, with short leases and recovery
 * passes so that a crashed instance's payments are taken over within about a second. */
static struct h_proc *start_pay(const struct popts *o)
{
    char ia[64], aa[64];
    snprintf(ia, sizeof ia, "127.0.0.1:%u", inv_port);
    snprintf(aa, sizeof aa, "127.0.0.1:%u", acct_port);
    const char *args[40] = {"--db", db, "--shutdown-delay", "0", "--no-access-log",
                            "--invoice-addr", ia, "--accounting-addr", aa,
                            "--step-timeout", o->step_timeout != NULL ? o->step_timeout : "2s",
                            "--breaker-timeout",
                            o->breaker_timeout != NULL ? o->breaker_timeout : "300ms",
                            "--lease", "1s", "--recovery-interval", "200ms",
                            "--retry-max", "500ms",
                            /* a key claimed by a request killed before its commit is free
                             * again after this (409 idempotency-in-flight meanwhile) */
                            "--idempotency-lease", "2s"};
    size_t n = 21;
    for (size_t i = 0; i < 6 && o->extra[i] != NULL; i++)
        args[n++] = o->extra[i];
    args[n] = NULL;
    return start_with_faults("payment-service", args, o->faults);
}

/* Waits for p to end with the fault's exit status, then frees it. */
static void expect_fault_exit(struct h_proc **p, const char *what)
{
    int st = h_wait(*p, 15000);
    if (st != WARD_FAULT_EXIT_STATUS)
        h_log_dump(*p);
    cr_assert_eq(st, WARD_FAULT_EXIT_STATUS, "%s: exit status %d, not the fault's", what, st);
    h_free(*p);
    *p = NULL;
}

/* --- requests --- */

static void headers(const char *key, int timeout_ms, char kh[400], char th[64],
                    const char *hdr[4])
{
    size_t n = 0;
    hdr[n++] = "Content-Type: application/json";
    if (key != NULL) {
        snprintf(kh, 400, "Idempotency-Key: %s", key);
        hdr[n++] = kh;
    }
    if (timeout_ms > 0) {
        snprintf(th, 64, "X-Request-Timeout-Ms: %d", timeout_ms);
        hdr[n++] = th;
    }
    hdr[n] = NULL;
}

/* POST /payments to port; false on a transport error (the process died). Thread-safe. */
static bool try_post(uint16_t port, const char *key, const char *body, int timeout_ms,
                     struct h_resp *r)
{
    char kh[400], th[64];
    const char *hdr[4];
    headers(key, timeout_ms, kh, th, hdr);
    bool ok = h_http(port, "POST", "/payments", hdr, body, strlen(body), r);
    if (!ok)
        h_resp_free(r);
    return ok;
}

static void post(struct h_proc *p, const char *key, const char *body, int timeout_ms,
                 struct h_resp *r)
{
    cr_assert(try_post(p->port, key, body, timeout_ms, r), "transport error posting %s", key);
}

static void get(struct h_proc *p, const char *path, struct h_resp *r)
{
    cr_assert(h_http(p->port, "GET", path, NULL, NULL, 0, r), "transport error on GET %s", path);
    cr_assert_eq(r->status, 200, "GET %s: %ld %s", path, r->status, r->body);
}

static const char *jstr(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static const char *str(const struct h_resp *r, const char *key)
{
    cr_assert_not_null(r->json, "body is not JSON: %s", r->body);
    const char *v = jstr(r->json, key);
    cr_assert_not_null(v, "no string %s in %s", key, r->body);
    return v;
}

static void body_for(char *buf, size_t size, const char *customer, const char *amount)
{
    snprintf(buf, size,
             "{\"customer_id\":\"%s\",\"amount\":\"%s\",\"currency\":\"USD\","
             "\"description\":\"fault test\"}",
             customer, amount);
}

/* Every item of a paginated list (path may hold a query), as a new array. */
static json_t *fetch_all(struct h_proc *p, const char *path)
{
    json_t *all = json_array();
    char *cursor = NULL;
    for (int pages = 0; pages < 1000; pages++) {
        char url[1024];
        snprintf(url, sizeof url, "%s%slimit=100%s%s", path, strchr(path, '?') ? "&" : "?",
                 cursor != NULL ? "&cursor=" : "", cursor != NULL ? cursor : "");
        struct h_resp r;
        get(p, url, &r);
        cr_assert(json_array_extend(all, json_object_get(r.json, "data")) == 0);
        free(cursor);
        cursor = jstr(r.json, "next_cursor") != NULL ? strdup(jstr(r.json, "next_cursor")) : NULL;
        h_resp_free(&r);
        if (cursor == NULL)
            return all;
    }
    cr_assert_fail("%s: endless pages", path);
    return NULL;
}

/* Polls GET /payments/id on p until its status is want; the last answer stays in *r. */
static bool wait_payment(struct h_proc *p, const char *id, const char *want, int ms,
                         struct h_resp *r)
{
    char path[128];
    snprintf(path, sizeof path, "/payments/%s", id);
    int64_t end = now_ms() + ms;
    for (;;) {
        cr_assert(h_http(p->port, "GET", path, NULL, NULL, 0, r));
        const char *st = jstr(r->json, "status");
        if (r->status == 200 && st != NULL && strcmp(st, want) == 0)
            return true;
        if (now_ms() >= end)
            return false;
        h_resp_free(r);
        h_sleep_ms(50);
    }
}

/* How many events of step (and event, NULL: any) the payment's log holds. */
static size_t steps(const json_t *payment, const char *step, const char *event)
{
    size_t i, n = 0;
    json_t *s;
    json_array_foreach(json_object_get(payment, "steps"), i, s) {
        if (strcmp(jstr(s, "step"), step) == 0 &&
            (event == NULL || strcmp(jstr(s, "event"), event) == 0))
            n++;
    }
    return n;
}

/* The customer's invoices. */
static json_t *invoices_of(const char *customer)
{
    char path[160];
    snprintf(path, sizeof path, "/invoices?customer_id=%s", customer);
    return fetch_all(inv, path);
}

/* The id of accounting-service's "Payments cash" account in currency, or NULL. */
static char *cash_account(const char *currency)
{
    json_t *accounts = fetch_all(ledger_svc, "/accounts");
    size_t i;
    json_t *a;
    char *id = NULL;
    json_array_foreach(accounts, i, a) {
        if (strcmp(jstr(a, "name"), "Payments cash") == 0 &&
            strcmp(jstr(a, "currency"), currency) == 0)
            id = strdup(jstr(a, "id"));
    }
    json_decref(accounts);
    return id;
}

/* How many ledger transactions on the USD cash account name payment id. */
static size_t ledger_txns_of(const char *pay_id)
{
    char *cash = cash_account("USD");
    if (cash == NULL)
        return 0;
    char path[160], needle[128];
    snprintf(path, sizeof path, "/transactions?account_id=%s", cash);
    snprintf(needle, sizeof needle, "payment %s ", pay_id);
    free(cash);
    json_t *txns = fetch_all(ledger_svc, path);
    size_t i, n = 0;
    json_t *t;
    json_array_foreach(txns, i, t) {
        n += strncmp(jstr(t, "description"), needle, strlen(needle)) == 0;
    }
    json_decref(txns);
    return n;
}

static size_t ledger_txns_total(void)
{
    json_t *txns = fetch_all(ledger_svc, "/transactions");
    size_t n = json_array_size(txns);
    json_decref(txns);
    return n;
}

/* --- the invariants (DESIGN.md §6) over every payment, invoice and transaction --- */

struct tally {
    size_t payments, completed, failed;
};

/* Checks the invariants through p (any instance on db), with invoice-service and
 * accounting-service up; every payment must have ended. */
static struct tally check_invariants(struct h_proc *p)
{
    struct tally t = {0};
    json_t *payments = fetch_all(p, "/payments");
    json_t *invoices = fetch_all(inv, "/invoices");
    json_t *txns = fetch_all(ledger_svc, "/transactions");
    json_t *by_id = json_object(), *inv_count = json_object(), *txn_count = json_object();
    size_t i;
    json_t *x;

    json_array_foreach(payments, i, x) {
        const char *id = jstr(x, "id"), *st = jstr(x, "status");
        cr_assert_null(json_object_get(by_id, id), "payment %s listed twice", id);
        json_object_set(by_id, id, x);
        t.payments++;
        cr_assert_str_neq(st, "pending", "payment lost: still pending: %s", id);
        bool has_inv = jstr(x, "invoice_id") != NULL, has_txn = jstr(x, "ledger_transaction_id") != NULL;
        if (strcmp(st, "completed") == 0) {
            t.completed++;
            cr_assert(has_inv && has_txn, "completed without both ids: %s", id);
            cr_assert(json_is_null(json_object_get(x, "failure_reason")), "%s", id);
        } else {
            cr_assert_str_eq(st, "failed");
            t.failed++;
            cr_assert(!has_txn, "failed with a ledger transaction: %s", id);
            cr_assert_not_null(jstr(x, "failure_reason"), "%s", id);
        }
    }
    /* every invoice belongs to one payment, is the one it recorded, and its state follows
     * the payment's: paid ⇔ completed (so a paid invoice has its ledger transaction),
     * void ⇔ failed after the invoice step; no invoice is left open */
    json_array_foreach(invoices, i, x) {
        const char *pid = jstr(x, "payment_id"), *st = jstr(x, "status");
        cr_assert_not_null(pid, "an invoice without payment: %s", jstr(x, "id"));
        json_t *pay = json_object_get(by_id, pid);
        cr_assert_not_null(pay, "invoice %s of unknown payment %s", jstr(x, "id"), pid);
        json_int_t n = json_integer_value(json_object_get(inv_count, pid)) + 1;
        json_object_set_new(inv_count, pid, json_integer(n));
        cr_assert_eq(n, 1, "duplicate invoice for payment %s", pid);
        cr_assert_str_eq(jstr(pay, "invoice_id"), jstr(x, "id"), "payment %s", pid);
        if (strcmp(st, "paid") == 0)
            cr_assert_str_eq(jstr(pay, "status"), "completed", "paid invoice of %s", pid);
        else if (strcmp(st, "void") == 0)
            cr_assert_str_eq(jstr(pay, "status"), "failed", "void invoice of %s", pid);
        else
            cr_assert_fail("invoice %s of %s left %s", jstr(x, "id"), pid, st);
    }
    /* every ledger transaction belongs to one completed payment and is the one it
     * recorded (none is reversed in these tests) */
    json_array_foreach(txns, i, x) {
        const char *d = jstr(x, "description");
        char pid[64] = "";
        cr_assert(d != NULL && sscanf(d, "payment %63s", pid) == 1, "transaction %s", jstr(x, "id"));
        json_t *pay = json_object_get(by_id, pid);
        cr_assert_not_null(pay, "transaction %s of unknown payment %s", jstr(x, "id"), pid);
        json_int_t n = json_integer_value(json_object_get(txn_count, pid)) + 1;
        json_object_set_new(txn_count, pid, json_integer(n));
        cr_assert_eq(n, 1, "duplicate ledger transaction for payment %s", pid);
        cr_assert_str_eq(jstr(pay, "ledger_transaction_id"), jstr(x, "id"), "payment %s", pid);
    }
    json_array_foreach(payments, i, x) {
        const char *id = jstr(x, "id");
        bool completed = strcmp(jstr(x, "status"), "completed") == 0;
        cr_assert_eq(json_integer_value(json_object_get(txn_count, id)), completed ? 1 : 0,
                     "ledger transactions of %s", id);
        if (completed)
            cr_assert_eq(json_integer_value(json_object_get(inv_count, id)), 1, "invoice of %s", id);
    }
    struct h_resp r;
    get(ledger_svc, "/ledger/balance", &r);
    cr_assert(json_is_true(json_object_get(r.json, "balanced")), "ledger not balanced: %s", r.body);
    h_resp_free(&r);
    json_decref(payments);
    json_decref(invoices);
    json_decref(txns);
    json_decref(by_id);
    json_decref(inv_count);
    json_decref(txn_count);
    return t;
}

/* --- crashes at every saga step boundary --- */

struct point {
    const char *name;
    const char *step;  /* the step whose boundary it is, or NULL */
    bool after;        /* after the call: its effect happened downstream */
    bool fails;        /* the ledger refused (accounting-service down): compensated */
};

static const struct point points[] = {
    {"payment.accepted", NULL, false, false},
    {"payment.invoice.before_call", "invoice", false, false},
    {"payment.invoice.after_call", "invoice", true, false},
    {"payment.ledger.before_call", "ledger", false, false},
    {"payment.ledger.after_call", "ledger", true, false},
    {"payment.pay.before_call", "pay", false, false},
    {"payment.pay.after_call", "pay", true, false},
    {"payment.void.before_call", "void", false, true},
    {"payment.void.after_call", "void", true, true},
};

/* What invoice-service and accounting-service hold for the customer while
 * payment-service lies dead at point pt: the call before it happened, its own not. */
static void check_downstream_at_crash(const struct point *pt, const char *customer,
                                      size_t txns_before)
{
    json_t *invs = invoices_of(customer);
    size_t n = json_array_size(invs);
    const char *st = n > 0 ? jstr(json_array_get(invs, 0), "status") : NULL;
    const char *s = pt->step != NULL ? pt->step : "";
    if (pt->step == NULL || (strcmp(s, "invoice") == 0 && !pt->after)) {
        cr_assert_eq(n, 0, "%s: an invoice already: %s", pt->name, json_dumps(invs, 0));
    } else {
        cr_assert_eq(n, 1, "%s: invoices %zu", pt->name, n);
        const char *want = "open";
        if (strcmp(s, "pay") == 0 && pt->after)
            want = "paid";
        if (strcmp(s, "void") == 0 && pt->after)
            want = "void";
        cr_assert_str_eq(st, want, "%s: the invoice is %s", pt->name, st);
    }
    json_decref(invs);
    if (ledger_svc != NULL) {
        bool ledger_done = strcmp(s, "pay") == 0 || (strcmp(s, "ledger") == 0 && pt->after);
        cr_assert_eq(ledger_txns_total(), txns_before + (ledger_done ? 1 : 0), "%s", pt->name);
    }
}

BOTH(a_crash_at_every_saga_step_boundary_is_resumed_without_duplicates)
{
    start_invoice(NULL);
    start_accounting(NULL);
    for (size_t i = 0; i < sizeof points / sizeof points[0]; i++) {
        const struct point *pt = &points[i];
        int64_t t0 = now_ms();
        char customer[64], key[96], body[256], faults[96];
        snprintf(customer, sizeof customer, "crash-%zu", i);
        snprintf(key, sizeof key, "k-%s", pt->name);
        snprintf(faults, sizeof faults, "%s=exit", pt->name);
        body_for(body, sizeof body, customer, "7.25");
        size_t txns_before = ledger_txns_total();
        if (pt->fails) /* connection refused: the ledger step fails for good, compensates */
            stop(&ledger_svc, "accounting-service");

        /* the crash: the POST gets no answer, the process the fault's status */
        pays[0] = start_pay(&(struct popts){.faults = faults});
        struct h_resp r;
        bool answered = try_post(pays[0]->port, key, body, 8000, &r);
        cr_assert(!answered, "%s: answered %ld %s before the crash", pt->name, r.status, r.body);
        expect_fault_exit(&pays[0], pt->name);
        check_downstream_at_crash(pt, customer, txns_before);
        if (pt->fails)
            start_accounting(NULL); /* same port, same file */

        /* the restart, without faults, on the same database */
        pays[0] = start_pay(&(struct popts){0});
        char path[128];
        snprintf(path, sizeof path, "/payments?customer_id=%s", customer);
        json_t *mine = fetch_all(pays[0], path);
        cr_assert_eq(json_array_size(mine), 1, "%s: payments %s", pt->name, json_dumps(mine, 0));
        char *id = strdup(jstr(json_array_get(mine, 0), "id"));
        json_decref(mine);
        const char *want = pt->fails ? "failed" : "completed";
        cr_assert(wait_payment(pays[0], id, want, 15000, &r), "%s: not %s: %s", pt->name, want, r.body);
        /* the step log: the step the point belongs to started twice (before the crash and
         * after the restart) and ended once */
        if (pt->step != NULL) {
            cr_assert_eq(steps(r.json, pt->step, "started"), 2, "%s: %s", pt->name, r.body);
            cr_assert_eq(steps(r.json, pt->step, "succeeded"), 1, "%s: %s", pt->name, r.body);
        } else { /* the invoice step starts in the payment's own commit: again after it */
            cr_assert_eq(steps(r.json, "invoice", "started"), 2, "%s: %s", pt->name, r.body);
        }
        cr_assert_eq(steps(r.json, "invoice", "succeeded"), 1, "%s: %s", pt->name, r.body);
        if (pt->fails) {
            cr_assert_eq(steps(r.json, "ledger", "failed"), 1, "%s: %s", pt->name, r.body);
            cr_assert_eq(steps(r.json, "pay", NULL), 0, "%s: %s", pt->name, r.body);
            cr_assert_not_null(strstr(str(&r, "failure_reason"), "accounting-service"), "%s", r.body);
        } else {
            cr_assert_eq(steps(r.json, "ledger", "succeeded"), 1, "%s: %s", pt->name, r.body);
            cr_assert_eq(steps(r.json, "pay", "succeeded"), 1, "%s: %s", pt->name, r.body);
            cr_assert_eq(steps(r.json, "void", NULL), 0, "%s: %s", pt->name, r.body);
        }
        h_resp_free(&r);

        /* exactly one invoice, paid iff completed; one ledger transaction iff completed */
        json_t *invs = invoices_of(customer);
        cr_assert_eq(json_array_size(invs), 1, "%s: %s", pt->name, json_dumps(invs, 0));
        cr_assert_str_eq(jstr(json_array_get(invs, 0), "status"), pt->fails ? "void" : "paid");
        cr_assert_str_eq(jstr(json_array_get(invs, 0), "payment_id"), id);
        json_decref(invs);
        cr_assert_eq(ledger_txns_of(id), pt->fails ? 0 : 1, "%s", pt->name);
        /* the replay: the same payment, as it ended */
        post(pays[0], key, body, 0, &r);
        cr_assert_eq(r.status, 201, "%s: %s", pt->name, r.body);
        cr_assert_str_eq(str(&r, "id"), id);
        cr_assert_str_eq(str(&r, "status"), want);
        char *replayed = h_resp_header(&r, "Idempotent-Replayed");
        cr_assert_str_eq(replayed, "true");
        free(replayed);
        h_resp_free(&r);
        /* over everything so far: one payment per point, each ended as it should */
        struct tally t = check_invariants(pays[0]);
        cr_assert_eq(t.payments, i + 1, "%s: %zu payments", pt->name, t.payments);
        cr_assert_eq(t.failed, pt->fails ? i + 1 - 7 : 0, "%s: %zu failed", pt->name, t.failed);
        stop(&pays[0], "payment-service");
        free(id);
        fprintf(stderr, "[timing] %s: crash + resume %lld ms\n", pt->name, (long long)(now_ms() - t0));
    }
}

/* --- ambiguous outcomes: retried with the same key, never compensated --- */

BOTH(a_ledger_answering_after_the_step_timeout_is_retried_not_compensated)
{
    start_invoice(NULL);
    /* committed, then the answer 3 s later: after payment-service's 1 s step deadline */
    start_accounting("accounting.transaction.committed=sleep:3000");
    pays[0] = start_pay(&(struct popts){.step_timeout = "1s"});
    char body[256];
    body_for(body, sizeof body, "slow-ledger", "3.00");
    struct h_resp r;
    int64_t t0 = now_ms();
    post(pays[0], "k-slow-ledger", body, 9000, &r);
    char *id = strdup(str(&r, "id"));
    h_resp_free(&r);
    cr_assert(wait_payment(pays[0], id, "completed", 15000, &r), "not completed: %s", r.body);
    fprintf(stderr, "[timing] slow ledger: completed after %lld ms\n", (long long)(now_ms() - t0));
    cr_assert_geq(steps(r.json, "ledger", "retry"), 1, "the timeout was not retried: %s", r.body);
    cr_assert_eq(steps(r.json, "ledger", "succeeded"), 1, "%s", r.body);
    cr_assert_eq(steps(r.json, "ledger", "failed"), 0, "%s", r.body);
    cr_assert_eq(steps(r.json, "void", NULL), 0, "compensated on a guess: %s", r.body);
    h_resp_free(&r);
    cr_assert_eq(ledger_txns_of(id), 1);
    cr_assert_eq(ledger_txns_total(), 1);
    free(id);
    struct tally t = check_invariants(pays[0]);
    cr_assert_eq(t.completed, 1);

    /* accounting-service killed right after its commit: no answer ever; restarted */
    stop(&ledger_svc, "accounting-service");
    start_accounting("accounting.transaction.committed=exit");
    body_for(body, sizeof body, "killed-ledger", "4.00");
    t0 = now_ms();
    post(pays[0], "k-killed-ledger", body, 1500, &r);
    cr_assert_eq(r.status, 202, "%s", r.body);
    cr_assert_str_eq(str(&r, "status"), "pending");
    id = strdup(str(&r, "id"));
    h_resp_free(&r);
    expect_fault_exit(&ledger_svc, "accounting-service");
    start_accounting(NULL);
    cr_assert(wait_payment(pays[0], id, "completed", 15000, &r), "not completed: %s", r.body);
    fprintf(stderr, "[timing] killed ledger: completed after %lld ms\n", (long long)(now_ms() - t0));
    cr_assert_geq(steps(r.json, "ledger", "retry"), 1, "%s", r.body);
    cr_assert_eq(steps(r.json, "ledger", "succeeded"), 1, "%s", r.body);
    cr_assert_eq(steps(r.json, "void", NULL), 0, "%s", r.body);
    h_resp_free(&r);
    cr_assert_eq(ledger_txns_of(id), 1);
    free(id);
    t = check_invariants(pays[0]);
    cr_assert_eq(t.completed, 2);
}

BOTH(invoice_service_killed_after_its_commit_leaves_one_invoice)
{
    start_invoice("invoice.created=exit");
    start_accounting(NULL);
    pays[0] = start_pay(&(struct popts){0});
    char body[256];
    body_for(body, sizeof body, "killed-invoice", "5.00");
    struct h_resp r;
    int64_t t0 = now_ms();
    post(pays[0], "k-killed-invoice", body, 1500, &r);
    cr_assert_eq(r.status, 202, "%s", r.body);
    cr_assert_str_eq(str(&r, "status"), "pending");
    char *id = strdup(str(&r, "id"));
    h_resp_free(&r);
    expect_fault_exit(&inv, "invoice-service");
    start_invoice(NULL); /* same port, same file: the invoice is there */
    json_t *invs = invoices_of("killed-invoice");
    cr_assert_eq(json_array_size(invs), 1, "the commit was lost: %s", json_dumps(invs, 0));
    json_decref(invs);
    cr_assert(wait_payment(pays[0], id, "completed", 15000, &r), "not completed: %s", r.body);
    fprintf(stderr, "[timing] killed invoice: completed after %lld ms\n", (long long)(now_ms() - t0));
    cr_assert_geq(steps(r.json, "invoice", "retry"), 1, "%s", r.body);
    cr_assert_eq(steps(r.json, "invoice", "succeeded"), 1, "%s", r.body);
    cr_assert_eq(steps(r.json, "invoice", "failed"), 0, "%s", r.body);
    h_resp_free(&r);
    invs = invoices_of("killed-invoice");
    cr_assert_eq(json_array_size(invs), 1, "%s", json_dumps(invs, 0));
    cr_assert_str_eq(jstr(json_array_get(invs, 0), "status"), "paid");
    json_decref(invs);
    cr_assert_eq(ledger_txns_of(id), 1);
    free(id);
    check_invariants(pays[0]);
}

/* --- the circuit breaker and the rate limiter --- */

BOTH(the_breaker_opens_while_invoices_are_down_fails_fast_and_closes_again)
{
    start_accounting(NULL);
    inv_port = dead_port(); /* refused until invoice-service starts there */
    pays[0] = start_pay(&(struct popts){.breaker_timeout = "2s"});
    char body[256], key[64];
    body_for(body, sizeof body, "breaker", "1.00");
    struct h_resp r;
    int n = 0, fast = 0;
    int64_t tripped = 0;
    /* a payment's invoice call makes 3 refused attempts: the breaker trips after more
     * than 5 consecutive failures, so by the third payment it is open */
    while (fast < 3) {
        cr_assert_lt(n, 6, "the breaker never opened");
        snprintf(key, sizeof key, "k-breaker-%d", n++);
        int64_t t0 = now_ms();
        post(pays[0], key, body, 0, &r);
        int64_t took = now_ms() - t0;
        cr_assert_eq(r.status, 201, "%s", r.body);
        cr_assert_str_eq(str(&r, "status"), "failed");
        const char *why = str(&r, "failure_reason");
        cr_assert_not_null(strstr(why, "invoice-service"), "%s", why);
        cr_assert(json_is_null(json_object_get(r.json, "invoice_id")), "%s", r.body);
        if (strstr(why, "circuit breaker is open") != NULL) {
            fprintf(stderr, "[timing] breaker open: payment %d failed in %lld ms\n", n,
                    (long long)took);
            cr_assert_lt(took, 100, "not fast: %lld ms", (long long)took);
            fast++;
        } else {
            cr_assert_eq(fast, 0, "the breaker closed again: %s", why);
            tripped = now_ms();
        }
        h_resp_free(&r);
    }
    cr_assert_geq(n, 3, "opened before enough failures");
    start_invoice(NULL); /* on the port payment-service calls */
    int64_t up = now_ms();
    /* while the breaker is still open (2 s), payments still fail fast; after it a probe
     * goes through and payments complete */
    for (;;) {
        cr_assert_lt(now_ms() - up, 10000, "payments never completed again");
        snprintf(key, sizeof key, "k-breaker-%d", n++);
        post(pays[0], key, body, 0, &r);
        if (strcmp(str(&r, "status"), "completed") == 0) {
            h_resp_free(&r);
            break;
        }
        cr_assert_not_null(strstr(str(&r, "failure_reason"), "circuit breaker is open"), "%s", r.body);
        h_resp_free(&r);
        h_sleep_ms(100);
    }
    int64_t closed = now_ms() - tripped;
    fprintf(stderr, "[timing] breaker: first completion %lld ms after the trip\n", (long long)closed);
    cr_assert_geq(closed, 1900, "closed before its open timeout: %lld ms", (long long)closed);
    snprintf(key, sizeof key, "k-breaker-%d", n++);
    post(pays[0], key, body, 0, &r);
    cr_assert_str_eq(str(&r, "status"), "completed", "%s", r.body);
    h_resp_free(&r);
    struct tally t = check_invariants(pays[0]);
    cr_assert_eq(t.completed, 2);
    cr_assert_eq(t.payments, (size_t)n);
}

struct rl_client {
    int i;
    uint16_t port;
    long status;
    char state[16];
};

static void *rl_post(void *arg)
{
    struct rl_client *c = arg;
    char key[32], body[256], customer[32];
    snprintf(key, sizeof key, "k-rate-%d", c->i);
    snprintf(customer, sizeof customer, "rate-%d", c->i);
    body_for(body, sizeof body, customer, "2.00");
    struct h_resp r;
    if (try_post(c->port, key, body, 9000, &r)) {
        c->status = r.status;
        snprintf(c->state, sizeof c->state, "%s", jstr(r.json, "status") ? jstr(r.json, "status") : "?");
        h_resp_free(&r);
    }
    return NULL;
}

BOTH(the_ledger_rate_limit_queues_payments_instead_of_failing_them)
{
    start_invoice(NULL);
    start_accounting(NULL);
    /* 5 calls a second, burst 1: 15 transactions (and the 2 accounts) take >= 3 s; with
     * 8 workers a call waits at most ~1.6 s for its token, within the step's deadline */
    pays[0] = start_pay(&(struct popts){.step_timeout = "4s",
                                        .extra = {"--ledger-rate", "5", "--ledger-burst", "1"}});
    enum { N = 15 };
    struct rl_client c[N];
    pthread_t th[N];
    int64_t t0 = now_ms();
    for (int i = 0; i < N; i++) {
        c[i] = (struct rl_client){.i = i, .port = pays[0]->port};
        cr_assert_eq(pthread_create(&th[i], NULL, rl_post, &c[i]), 0);
    }
    for (int i = 0; i < N; i++)
        pthread_join(th[i], NULL);
    int64_t took = now_ms() - t0;
    fprintf(stderr, "[timing] rate limit: %d payments in %lld ms\n", N, (long long)took);
    for (int i = 0; i < N; i++)
        cr_assert(c[i].status == 201 || c[i].status == 202, "payment %d: %ld", i, c[i].status);
    /* the answers may come before the end (202): wait for every payment */
    json_t *all = fetch_all(pays[0], "/payments");
    cr_assert_eq(json_array_size(all), N);
    size_t i;
    json_t *p;
    json_array_foreach(all, i, p) {
        struct h_resp r;
        cr_assert(wait_payment(pays[0], jstr(p, "id"), "completed", 15000, &r), "%s", r.body);
        cr_assert_eq(steps(r.json, "ledger", "failed"), 0, "%s", r.body);
        h_resp_free(&r);
    }
    json_decref(all);
    took = now_ms() - t0;
    cr_assert_geq(took, 2000, "not limited: %lld ms", (long long)took);
    struct tally t = check_invariants(pays[0]);
    cr_assert_eq(t.completed, N);
}

/* --- load: two instances on one PostgreSQL, repeated keys, one SIGKILL --- */

enum { LOAD_THREADS = 6, LOAD_POSTS = 20 }; /* 120 posts, every 5th a repeated key */

static _Atomic uint16_t load_ports[2];
static atomic_int load_done;

struct load_client {
    int t;
    char *ids[LOAD_POSTS]; /* the payment each post answered */
    int keys[LOAD_POSTS];
    char error[256];
};

/* The key of post j of thread t: a fresh one, or (every 5th) the key another thread
 * uses for its post j - 1, so that a key is used by two threads, on either instance. */
static int load_key(int t, int j)
{
    return j % 5 == 4 ? ((t + 1) % LOAD_THREADS) * LOAD_POSTS + j - 1 : t * LOAD_POSTS + j;
}

static void *load_client(void *arg)
{
    struct load_client *c = arg;
    for (int j = 0; j < LOAD_POSTS; j++) {
        int k = load_key(c->t, j), which = (c->t + j) % 2;
        c->keys[j] = k;
        char key[32], body[256], customer[32], amount[16];
        snprintf(key, sizeof key, "k-load-%d", k);
        snprintf(customer, sizeof customer, "load-%d", k % 7);
        snprintf(amount, sizeof amount, "%d.%02d", 1 + k, k % 100);
        body_for(body, sizeof body, customer, amount);
        int64_t end = now_ms() + 30000;
        char last[160] = "nothing";
        for (;;) {
            if (now_ms() > end) {
                snprintf(c->error, sizeof c->error, "post %d (key %d) never answered: last %s",
                         j, k, last);
                return NULL;
            }
            struct h_resp r;
            if (!try_post(atomic_load(&load_ports[which]), key, body, 3000, &r)) {
                snprintf(last, sizeof last, "a transport error from instance %d", which);
                which = 1 - which; /* killed, or restarting: the other instance */
                h_sleep_ms(20);
                continue;
            }
            snprintf(last, sizeof last, "%ld %.120s", r.status, r.body);
            const char *id = jstr(r.json, "id");
            if ((r.status == 201 || r.status == 202) && id != NULL) {
                c->ids[j] = strdup(id);
                h_resp_free(&r);
                break;
            }
            if (r.status != 409 && r.status != 503) { /* in flight, or the database busy */
                snprintf(c->error, sizeof c->error, "post %d (key %d): %ld %.150s", j, k,
                         r.status, r.body);
                h_resp_free(&r);
                return NULL;
            }
            h_resp_free(&r);
            h_sleep_ms(50);
        }
        atomic_fetch_add(&load_done, 1);
    }
    return NULL;
}

Test(payment_faults_pg, load_on_two_instances_with_repeated_keys_and_a_kill)
{
    use_pg();
    start_invoice(NULL);
    start_accounting(NULL);
    pays[0] = start_pay(&(struct popts){0});
    pays[1] = start_pay(&(struct popts){0});
    atomic_store(&load_ports[0], pays[0]->port);
    atomic_store(&load_ports[1], pays[1]->port);
    atomic_store(&load_done, 0);
    static struct load_client c[LOAD_THREADS];
    pthread_t th[LOAD_THREADS];
    int64_t t0 = now_ms();
    for (int t = 0; t < LOAD_THREADS; t++) {
        memset(&c[t], 0, sizeof c[t]);
        c[t].t = t;
        cr_assert_eq(pthread_create(&th[t], NULL, load_client, &c[t]), 0);
    }
    /* a third of the way in, instance 0 is SIGKILLed and restarted */
    while (atomic_load(&load_done) < LOAD_THREADS * LOAD_POSTS / 3 && now_ms() - t0 < 30000)
        h_sleep_ms(5);
    h_signal(pays[0], SIGKILL);
    cr_assert_eq(h_wait(pays[0], 5000), 128 + SIGKILL);
    h_free(pays[0]);
    pays[0] = start_pay(&(struct popts){0});
    atomic_store(&load_ports[0], pays[0]->port);
    for (int t = 0; t < LOAD_THREADS; t++)
        pthread_join(th[t], NULL);
    int64_t posted = now_ms() - t0;

    /* the same key always answered the same payment; distinct keys distinct payments */
    const char *by_key[LOAD_THREADS * LOAD_POSTS] = {0};
    size_t distinct = 0;
    for (int t = 0; t < LOAD_THREADS; t++) {
        cr_assert_eq(c[t].error[0], '\0', "client %d: %s", t, c[t].error);
        for (int j = 0; j < LOAD_POSTS; j++) {
            int k = c[t].keys[j];
            if (by_key[k] == NULL) {
                by_key[k] = c[t].ids[j];
                distinct++;
            } else {
                cr_assert_str_eq(by_key[k], c[t].ids[j], "key %d answered two payments", k);
            }
        }
    }
    cr_assert_eq(distinct, LOAD_THREADS * (LOAD_POSTS - LOAD_POSTS / 5));

    /* every payment ends: poll until none is pending */
    int64_t end = now_ms() + 30000;
    size_t resumed = 0;
    for (;;) {
        json_t *all = fetch_all(pays[1], "/payments");
        size_t i, pending = 0;
        json_t *p;
        resumed = 0;
        json_array_foreach(all, i, p) {
            pending += strcmp(jstr(p, "status"), "pending") == 0;
            /* a step started more often than it ended: the kill interrupted it */
            resumed += steps(p, "invoice", "started") + steps(p, "ledger", "started") +
                           steps(p, "pay", "started") >
                       json_array_size(json_object_get(p, "steps")) / 2;
        }
        json_decref(all);
        if (pending == 0)
            break;
        cr_assert_lt(now_ms(), end, "%zu payments still pending", pending);
        h_sleep_ms(100);
    }
    fprintf(stderr, "[timing] load: %d posts in %lld ms, all ended after %lld ms; %zu "
            "payments resumed after the kill\n", LOAD_THREADS * LOAD_POSTS, (long long)posted,
            (long long)(now_ms() - t0), resumed);
    struct tally t = check_invariants(pays[1]);
    cr_assert_eq(t.payments, distinct, "%zu payments for %zu keys", t.payments, distinct);
    cr_assert_eq(t.completed, distinct, "%zu failed", t.failed);
    for (int i = 0; i < LOAD_THREADS; i++)
        for (int j = 0; j < LOAD_POSTS; j++)
            free(c[i].ids[j]);
}
