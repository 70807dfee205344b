/* test_ward.c — `ward up` end to end: the whole stack on free ports in a data directory
 * of its own, and the seed's flow through it. What it proves:
 *
 *   1. the stack comes up tier by tier and says where each process listens; a payment
 *      through the gateway (discovery, breaker, payment → invoice + accounting) completes;
 *   2. `ward status` lists every process ready and every service passing in the registry;
 *   3. a service killed with SIGKILL is started again by the supervisor, on the same port,
 *      and payments go on completing;
 *   4. `ward stop accounting-service` stops it and keeps it stopped: a payment then fails
 *      with its invoice voided (the compensation); `ward start` brings it back;
 *   5. SIGINT stops the stack in reverse order; `ward up` exits 0 and leaves no process;
 *   6. on PostgreSQL (one database for every service) with two payment-service instances:
 *      both register, payments through the gateway complete, and the stack ends clean;
 *   7. payment-service killed with payments in flight: started again, it finishes every
 *      payment it had accepted (none lost);
 *   8. the breaker path: invoice-service frozen (SIGSTOP), the gateway's calls to it time
 *      out until its breaker opens, then the fallback answers at once and `ward status`
 *      shows the breaker open; thawed (SIGCONT), a probe closes it again.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "pg_harness.h"

static struct h_proc *up;
static struct pg_server *pg;
static char dir[64], ward[512];

static void teardown(void)
{
    h_free(up);
    up = NULL;
    pg_stop(pg);
    pg = NULL;
    if (dir[0] != '\0') {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        cr_assert_eq(system(cmd), 0);
        dir[0] = '\0';
    }
}

TestSuite(ward, .fini = teardown, .timeout = 240);

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The port in "<label> ready on 127.0.0.1:PORT" of ward up's output. */
static uint16_t ready_port(const char *label, int timeout_ms)
{
    char needle[96];
    snprintf(needle, sizeof needle, "| %s ready on 127.0.0.1:", label);
    char *line = h_line_wait(up, needle, timeout_ms);
    cr_assert_not_null(line, "%s never got ready", label);
    uint16_t port = (uint16_t)atoi(strstr(line, "127.0.0.1:") + 10);
    free(line);
    return port;
}

/* `ward ARGS... --data-dir dir`: its exit status, its standard output in *out. */
static int ward_run(const char *a, const char *b, char **out)
{
    const char *args[] = {a, b, "--data-dir", dir, NULL};
    if (b == NULL)
        args[1] = "--data-dir", args[2] = dir, args[3] = NULL;
    char *err = NULL;
    int st = h_run("ward", args, out, &err);
    free(err);
    return st;
}

/* Asks for a payment through the gateway with key; returns its path
 * (/api/payments/<id>, caller frees). */
static char *submit(uint16_t gw, const char *key)
{
    char idem[128];
    snprintf(idem, sizeof idem, "Idempotency-Key: %s", key);
    const char *hdrs[] = {"Content-Type: application/json", idem, NULL};
    const char *body = "{\"customer_id\":\"cus_ward\",\"amount\":\"12.50\",\"currency\":\"USD\","
                       "\"description\":\"ward up test\"}";
    struct h_resp r;
    cr_assert(h_http(gw, "POST", "/api/payments", hdrs, body, strlen(body), &r));
    cr_assert(r.status == 201 || r.status == 202, "%ld %s", r.status, r.body);
    char path[128];
    snprintf(path, sizeof path, "/api/payments/%s",
             json_string_value(json_object_get(r.json, "id")));
    h_resp_free(&r);
    return strdup(path);
}

/* The payment at path's final status ("completed" or "failed"), polled until it is final;
 * answers other than 200 (the service restarting) are waited out. */
static char *final_status(uint16_t gw, const char *path)
{
    struct h_resp r;
    for (int64_t limit = now_ms() + 60000; now_ms() < limit; h_sleep_ms(100)) {
        if (!h_http(gw, "GET", path, NULL, NULL, 0, &r))
            continue;
        const char *st = r.status == 200 ? json_string_value(json_object_get(r.json, "status")) : NULL;
        char *final = st != NULL && strcmp(st, "pending") != 0 ? strdup(st) : NULL;
        h_resp_free(&r);
        if (final != NULL)
            return final;
    }
    cr_assert_fail("payment %s never ended", path);
    return NULL;
}

static char *pay(uint16_t gw, const char *key)
{
    char *path = submit(gw, key);
    char *st = final_status(gw, path);
    free(path);
    return st;
}

/* The pid `ward status --json` gives label, or 0. */
static pid_t pid_of(const char *label)
{
    char *out = NULL;
    cr_assert_eq(ward_run("status", "--json", &out), 0);
    json_t *doc = json_loads(out, 0, NULL);
    free(out);
    cr_assert_not_null(doc);
    pid_t pid = 0;
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(doc, "children"), i, c)
        if (strcmp(json_string_value(json_object_get(c, "label")), label) == 0)
            pid = (pid_t)json_integer_value(json_object_get(c, "pid"));
    json_decref(doc);
    return pid;
}

/* ward up --free-ports in a new data directory, with --db db and --instances inst when
 * not NULL; returns once it says the stack is up. */
static void start_stack_with(const char *db, const char *inst, const char *gateway_config);

static void start_stack(const char *db, const char *inst)
{
    start_stack_with(db, inst, NULL);
}

static void start_stack_with(const char *db, const char *inst, const char *gateway_config)
{
    snprintf(dir, sizeof dir, "/tmp/ward-up-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    const char *bin = getenv("WARD_BIN_DIR");
    cr_assert_not_null(bin);
    snprintf(ward, sizeof ward, "%s/ward", bin);
    char extra[512] = "";
    if (db != NULL)
        snprintf(extra, sizeof extra, " --db '%s'", db);
    if (inst != NULL)
        snprintf(extra + strlen(extra), sizeof extra - strlen(extra), " --instances %s", inst);
    if (gateway_config != NULL)
        snprintf(extra + strlen(extra), sizeof extra - strlen(extra), " --gateway-config %s",
                 gateway_config);
    char cmd[1024];
    /* ward up writes to its standard output: the shell puts it where the harness reads */
    snprintf(cmd, sizeof cmd,
             "exec \"$0\" up --free-ports --stop-timeout 20s --data-dir \"$1\"%s 1>&2", extra);
    up = h_spawn("/bin/sh", (const char *const[]){"sh", "-c", cmd, ward, dir, NULL});
    cr_assert_not_null(up);
    char *line = h_line_wait(up, "the stack is up", 90000);
    if (line == NULL)
        h_log_dump(up);
    cr_assert_not_null(line, "the stack did not come up");
    free(line);
}

Test(ward, up_serves_the_seed_flow_restarts_stops_and_ends_clean)
{
    start_stack(NULL, NULL);
    uint16_t gw = ready_port("ward-gateway", 1000);
    char *line;

    /* 1. the seed's flow */
    char *st = pay(gw, "ward-up-1");
    cr_assert_str_eq(st, "completed");
    free(st);

    /* 2. ward status */
    char *out = NULL;
    cr_assert_eq(ward_run("status", NULL, &out), 0);
    cr_assert_not_null(strstr(out, "payment-service"), "%s", out);
    cr_assert_eq(strstr(out, "starting") == NULL && strstr(out, "restarting") == NULL, true, "%s", out);
    const char *names[] = {"zakat-service", "invoice-service", "accounting-service",
                           "payment-service"};
    for (size_t i = 0; i < 4; i++) {
        const char *row = strstr(out, names[i]);
        cr_assert_not_null(row);
        const char *eol = strchr(row, '\n');
        cr_assert(eol != NULL && memmem(row, (size_t)(eol - row), "passing", 7) != NULL,
                  "%s not passing: %s", names[i], out);
    }
    free(out);

    /* 3. a crash: started again on its port, payments go on */
    uint16_t invoice = ready_port("invoice-service", 1000);
    pid_t victim = pid_of("invoice-service");
    cr_assert_gt(victim, 0);
    cr_assert_eq(kill(victim, SIGKILL), 0);
    line = h_line_wait(up, "invoice-service died of signal 9", 10000);
    cr_assert_not_null(line);
    free(line);
    for (int64_t limit = now_ms() + 30000; pid_of("invoice-service") == victim ||
                                           pid_of("invoice-service") == 0;
         h_sleep_ms(100))
        cr_assert_lt(now_ms(), limit, "invoice-service was not started again");
    struct h_resp r;
    for (int64_t limit = now_ms() + 30000;; h_sleep_ms(100)) {
        cr_assert_lt(now_ms(), limit, "invoice-service not ready again on %u", invoice);
        if (h_http(invoice, "GET", "/ready", NULL, NULL, 0, &r) && r.status == 200) {
            h_resp_free(&r);
            break;
        }
        h_resp_free(&r);
    }
    st = pay(gw, "ward-up-2");
    cr_assert_str_eq(st, "completed");
    free(st);

    /* 4. ward stop: the ledger away, a payment compensates; ward start brings it back */
    cr_assert_eq(ward_run("stop", "accounting-service", &out), 0, "%s", out);
    free(out);
    for (int64_t limit = now_ms() + 30000; pid_of("accounting-service") != 0; h_sleep_ms(100))
        cr_assert_lt(now_ms(), limit, "accounting-service did not stop");
    st = pay(gw, "ward-up-3");
    cr_assert_str_eq(st, "failed", "with the ledger stopped the payment must compensate");
    free(st);
    cr_assert_eq(ward_run("start", "accounting-service", &out), 0, "%s", out);
    free(out);
    for (int64_t limit = now_ms() + 30000; pid_of("accounting-service") == 0; h_sleep_ms(100))
        cr_assert_lt(now_ms(), limit, "accounting-service did not start");
    for (int64_t limit = now_ms() + 60000;; h_sleep_ms(200)) {
        cr_assert_lt(now_ms(), limit, "no payment completed after ward start");
        char key[32];
        snprintf(key, sizeof key, "ward-up-4-%lld", (long long)now_ms());
        st = pay(gw, key);
        bool done = strcmp(st, "completed") == 0;
        free(st);
        if (done)
            break;
    }

    /* 5. SIGINT: everything gone, exit 0 */
    pid_t pids[8];
    const char *labels[] = {"ward-registry", "zakat-service", "invoice-service",
                            "accounting-service", "payment-service", "ward-gateway"};
    for (size_t i = 0; i < 6; i++)
        cr_assert_gt(pids[i] = pid_of(labels[i]), 0, "%s", labels[i]);
    h_signal(up, SIGINT);
    cr_assert_eq(h_wait(up, 60000), 0, "ward up did not exit 0");
    for (size_t i = 0; i < 6; i++)
        cr_assert(kill(pids[i], 0) != 0, "%s (pid %d) is still there", labels[i], (int)pids[i]);
}

Test(ward, two_payment_instances_on_one_postgresql_database)
{
    pg = pg_start();
    cr_assert_not_null(pg);
    start_stack(pg_url(pg), "payment-service=2");
    uint16_t gw = ready_port("ward-gateway", 1000);
    ready_port("payment-service#2", 1000);
    /* both instances in the registry, passing (its checks run every 2 s) */
    for (int64_t limit = now_ms() + 20000;; h_sleep_ms(200)) {
        char *out = NULL;
        cr_assert_eq(ward_run("status", NULL, &out), 0);
        char *routes = strstr(out, "\nROUTE");
        if (routes != NULL)
            *routes = '\0'; /* the processes' table only */
        int passing = 0;
        for (const char *p = out, *row; (row = strstr(p, "\npayment-service")) != NULL;
             p = row + 1) {
            const char *eol = strchr(row + 1, '\n');
            size_t len = eol != NULL ? (size_t)(eol - row) : strlen(row);
            passing += memmem(row, len, "passing", 7) != NULL;
        }
        if (passing == 2) {
            free(out);
            break;
        }
        cr_assert_lt(now_ms(), limit, "not both payment instances passing: %s", out);
        free(out);
    }
    for (int i = 0; i < 4; i++) {
        char key[32];
        snprintf(key, sizeof key, "ward-pg-%d", i);
        char *st = pay(gw, key);
        cr_assert_str_eq(st, "completed", "payment %d", i);
        free(st);
    }
    h_signal(up, SIGINT);
    cr_assert_eq(h_wait(up, 60000), 0, "ward up did not exit 0");
}

Test(ward, a_payment_service_killed_mid_saga_loses_no_payment)
{
    start_stack(NULL, NULL);
    uint16_t gw = ready_port("ward-gateway", 1000);
    char *paths[6];
    for (int i = 0; i < 6; i++) {
        char key[32];
        snprintf(key, sizeof key, "ward-crash-%d", i);
        paths[i] = submit(gw, key);
    }
    pid_t victim = pid_of("payment-service");
    cr_assert_eq(kill(victim, SIGKILL), 0);
    char *line = h_line_wait(up, "payment-service died of signal 9", 10000);
    cr_assert_not_null(line);
    free(line);
    for (int i = 0; i < 6; i++) {
        char *st = final_status(gw, paths[i]);
        cr_assert_str_eq(st, "completed", "%s", paths[i]);
        free(st);
        free(paths[i]);
    }
    cr_assert_neq(pid_of("payment-service"), victim);
    h_signal(up, SIGINT);
    cr_assert_eq(h_wait(up, 60000), 0);
}

/* The gateway's answer to GET path and how long it took. */
static long timed_get(uint16_t gw, const char *path, int64_t *ms)
{
    struct h_resp r;
    int64_t t0 = now_ms();
    cr_assert(h_http(gw, "GET", path, NULL, NULL, 0, &r));
    *ms = now_ms() - t0;
    long st = r.status;
    h_resp_free(&r);
    return st;
}

Test(ward, a_frozen_invoice_service_opens_the_gateways_breaker_and_thawed_closes_it)
{
    char cfg[128];
    snprintf(cfg, sizeof cfg, "/tmp/ward-up-gw-%d.yaml", (int)getpid());
    FILE *f = fopen(cfg, "w");
    cr_assert_not_null(f);
    fputs("routes:\n"
          "  - {prefix: /api/payments, service: payment-service, rewrite: /payments}\n"
          "  - prefix: /api/invoices\n"
          "    service: invoice-service\n"
          "    rewrite: /invoices\n"
          "    timeout: 250ms\n"
          "    retry: {attempts: 1}\n"
          "    breaker: {failures: 2, open_timeout: 2s}\n",
          f);
    fclose(f);
    start_stack_with(NULL, NULL, cfg);
    unlink(cfg);
    uint16_t gw = ready_port("ward-gateway", 1000);
    int64_t ms;
    cr_assert_eq(timed_get(gw, "/api/invoices/inv_nothere", &ms), 404, "invoice-service answers");
    pid_t inv = pid_of("invoice-service");
    cr_assert_eq(kill(inv, SIGSTOP), 0);
    /* two calls time out at the route's 250 ms: the breaker opens */
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(timed_get(gw, "/api/invoices/inv_nothere", &ms), 504, "call %d", i);
        cr_assert_geq(ms, 200);
    }
    /* the fallback, at once */
    cr_assert_eq(timed_get(gw, "/api/invoices/inv_nothere", &ms), 503);
    cr_assert_lt(ms, 150, "the fallback took %lld ms", (long long)ms);
    char *out = NULL;
    cr_assert_eq(ward_run("status", NULL, &out), 0);
    const char *row = strstr(out, "/api/invoices");
    cr_assert_not_null(row, "%s", out);
    cr_assert(strncmp(row + strcspn(row, "o"), "open", 4) == 0 || strstr(row, " open ") != NULL,
              "the breaker is not shown open: %s", out);
    free(out);
    cr_assert_eq(kill(inv, SIGCONT), 0);
    /* after open_timeout a probe goes through, succeeds, and the breaker closes */
    for (int64_t limit = now_ms() + 20000;; h_sleep_ms(200)) {
        cr_assert_lt(now_ms(), limit, "the breaker never closed again");
        if (timed_get(gw, "/api/invoices/inv_nothere", &ms) == 404)
            break;
    }
    cr_assert_eq(ward_run("status", NULL, &out), 0);
    row = strstr(out, "/api/invoices");
    cr_assert(row != NULL && strstr(row, "closed") != NULL, "%s", out);
    free(out);
    h_signal(up, SIGINT);
    cr_assert_eq(h_wait(up, 60000), 0);
}
