/* test_gateway.c — ward-gateway in front of real zakat-service instances found through a
 * static registry: routing with the prefix rewritten on segment boundaries and unknown
 * paths refused; headers both ways (request id, X-Forwarded-For, the API key stripped);
 * API keys (401 without or with an unknown key); the inbound limit per client with its
 * RateLimit headers and 429; the breaker opening on a dead upstream and the fallback
 * answered at once without a call, configured body included; a config error with its
 * line; /admin/status on the admin listener only; SIGHUP reloading a good file, refusing
 * a bad one with its line, a kept-alive connection serving across both. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

static struct h_proc *zakat, *gw;
static char dir[64];
static uint16_t admin_port;

static void teardown(void)
{
    h_free(gw);
    h_free(zakat);
    gw = zakat = NULL;
    if (dir[0] != '\0') {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        cr_assert_eq(system(cmd), 0);
        dir[0] = '\0';
    }
}

TestSuite(gateway, .fini = teardown, .timeout = 60);

static void write_file(const char *name, const char *text, char *path, size_t n)
{
    if (dir[0] == '\0') {
        snprintf(dir, sizeof dir, "/tmp/ward-gw-XXXXXX");
        cr_assert_not_null(mkdtemp(dir));
    }
    snprintf(path, n, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

/* A port nothing listens on. */
static uint16_t dead_port(void)
{
    struct h_proc *p = h_start("zakat-service", (const char *const[]){"--shutdown-delay", "0", NULL});
    uint16_t port = p->port;
    cr_assert_eq(h_stop(p, 5000), 0);
    h_free(p);
    return port;
}

/* Starts the gateway with config (YAML text, NULL: built-in routes) and keys (NULL: none),
 * zakat-service registered statically under its name and "dead-service" at dead. */
static void start(const char *config, const char *keys, uint16_t dead)
{
    char reg[160], cfg[128], keyf[128];
    snprintf(reg, sizeof reg, "static:zakat-service=127.0.0.1:%u,dead-service=127.0.0.1:%u",
             (unsigned)zakat->port, (unsigned)dead);
    const char *args[16] = {"--shutdown-delay", "0", "--registry", reg, "--admin-listen",
                            "127.0.0.1:0"};
    size_t n = 6;
    if (config != NULL) {
        write_file("gateway.yaml", config, cfg, sizeof cfg);
        args[n++] = "--config";
        args[n++] = cfg;
    }
    if (keys != NULL) {
        write_file("keys", keys, keyf, sizeof keyf);
        args[n++] = "--api-keys";
        args[n++] = keyf;
    }
    args[n] = NULL;
    gw = h_start("ward-gateway", args);
    cr_assert_not_null(gw);
    json_t *line = h_log_wait(gw, "admin listening", 5000);
    cr_assert_not_null(line);
    admin_port = (uint16_t)json_integer_value(json_object_get(line, "port"));
    json_decref(line);
}

static void start_zakat(void)
{
    zakat = h_start("zakat-service", (const char *const[]){"--shutdown-delay", "0", NULL});
}

static const char *const json_ct[] = {"Content-Type: application/json", NULL};
#define CALC "{\"wealth\":10000,\"nisab\":5000}"

Test(gateway, routes_rewrite_on_segment_boundaries_and_refuse_the_rest)
{
    start_zakat();
    start(NULL, NULL, dead_port());
    struct h_resp r;
    /* /api/zakat/calculate → zakat-service /calculate */
    cr_assert(h_http(gw->port, "POST", "/api/zakat/calculate", json_ct, CALC, strlen(CALC), &r));
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "zakat_due")), "250.00", "%s", r.body);
    h_resp_free(&r);
    /* the upstream's own answers come through: its 405 and its 404 */
    cr_assert(h_http(gw->port, "GET", "/api/zakat/calculate", NULL, NULL, 0, &r));
    cr_assert_eq(r.status, 405, "%ld %s", r.status, r.body);
    h_resp_free(&r);
    /* not on a segment boundary, or no route at all: the gateway's 404 */
    cr_assert(h_http(gw->port, "POST", "/api/zakatx/calculate", json_ct, CALC, strlen(CALC), &r));
    cr_assert_eq(r.status, 404, "%ld %s", r.status, r.body);
    cr_assert_not_null(strstr(r.body, "no route"), "%s", r.body);
    h_resp_free(&r);
    cr_assert(h_http(gw->port, "GET", "/elsewhere", NULL, NULL, 0, &r));
    cr_assert_eq(r.status, 404);
    h_resp_free(&r);
    cr_assert_eq(h_stop(gw, 10000), 0);
}

Test(gateway, a_request_id_goes_both_ways_and_the_key_stays_at_the_gateway)
{
    start_zakat();
    start("routes:\n"
          "  - prefix: /z\n"
          "    service: zakat-service\n"
          "    rewrite: \"\"\n"
          "    auth: true\n",
          "alice 0123456789abcdef0123\n", dead_port());
    struct h_resp r;
    const char *hdrs[] = {"Content-Type: application/json", "X-Request-Id: gw-test-1",
                          "X-API-Key: 0123456789abcdef0123", NULL};
    cr_assert(h_http(gw->port, "POST", "/z/calculate", hdrs, CALC, strlen(CALC), &r));
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    char *rid = h_resp_header(&r, "X-Request-Id");
    cr_assert_str_eq(rid, "gw-test-1");
    free(rid);
    h_resp_free(&r);
    /* zakat-service logged the same request id: the hop kept it */
    json_t *line = h_log_wait(zakat, "gw-test-1", 5000);
    cr_assert_not_null(line, "the request id did not reach the upstream");
    json_decref(line);
}

Test(gateway, api_keys_guard_the_routes_that_ask_for_them)
{
    start_zakat();
    start("routes:\n"
          "  - prefix: /open\n"
          "    service: zakat-service\n"
          "    rewrite: \"\"\n"
          "  - prefix: /closed\n"
          "    service: zakat-service\n"
          "    rewrite: \"\"\n"
          "    auth: true\n",
          "# clients\nalice 0123456789abcdef0123\nbob fedcba9876543210fedc\n", dead_port());
    struct h_resp r;
    cr_assert(h_http(gw->port, "POST", "/open/calculate", json_ct, CALC, strlen(CALC), &r));
    cr_assert_eq(r.status, 200);
    h_resp_free(&r);
    cr_assert(h_http(gw->port, "POST", "/closed/calculate", json_ct, CALC, strlen(CALC), &r));
    cr_assert_eq(r.status, 401, "%ld %s", r.status, r.body);
    cr_assert_not_null(strstr(r.body, "unauthorized"), "%s", r.body);
    char *www = h_resp_header(&r, "WWW-Authenticate");
    cr_assert_str_eq(www, "Bearer");
    free(www);
    h_resp_free(&r);
    const char *bad[] = {"Content-Type: application/json", "X-API-Key: 0123456789abcdef012", NULL};
    cr_assert(h_http(gw->port, "POST", "/closed/calculate", bad, CALC, strlen(CALC), &r));
    cr_assert_eq(r.status, 401, "a prefix of a real key is not a key");
    h_resp_free(&r);
    const char *bearer[] = {"Content-Type: application/json",
                            "Authorization: Bearer fedcba9876543210fedc", NULL};
    cr_assert(h_http(gw->port, "POST", "/closed/calculate", bearer, CALC, strlen(CALC), &r));
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    h_resp_free(&r);
}

Test(gateway, the_inbound_limit_is_per_client_with_its_headers)
{
    start_zakat();
    start("routes:\n"
          "  - prefix: /z\n"
          "    service: zakat-service\n"
          "    rewrite: \"\"\n"
          "    auth: true\n"
          "    rate_limit: {rate: 0.01, burst: 2}\n",
          "alice 0123456789abcdef0123\nbob fedcba9876543210fedc\n", dead_port());
    const char *alice[] = {"Content-Type: application/json", "X-API-Key: 0123456789abcdef0123", NULL};
    const char *bob[] = {"Content-Type: application/json", "X-API-Key: fedcba9876543210fedc", NULL};
    struct h_resp r;
    for (int i = 0; i < 2; i++) {
        cr_assert(h_http(gw->port, "POST", "/z/calculate", alice, CALC, strlen(CALC), &r));
        cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
        char *lim = h_resp_header(&r, "RateLimit-Limit"), *rem = h_resp_header(&r, "RateLimit-Remaining");
        cr_assert_str_eq(lim, "2");
        cr_assert_eq(atoi(rem), 1 - i, "remaining %s", rem);
        free(lim);
        free(rem);
        h_resp_free(&r);
    }
    cr_assert(h_http(gw->port, "POST", "/z/calculate", alice, CALC, strlen(CALC), &r));
    cr_assert_eq(r.status, 429, "%ld %s", r.status, r.body);
    char *ra = h_resp_header(&r, "Retry-After"), *reset = h_resp_header(&r, "RateLimit-Reset");
    cr_assert_not_null(ra);
    cr_assert_gt(atoi(ra), 0, "a token comes after 100 s at 0.01/s: %s", ra);
    cr_assert_gt(atoi(reset), 0);
    free(ra);
    free(reset);
    h_resp_free(&r);
    /* another client has its own bucket */
    cr_assert(h_http(gw->port, "POST", "/z/calculate", bob, CALC, strlen(CALC), &r));
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    h_resp_free(&r);
}

Test(gateway, a_dead_upstream_opens_the_breaker_and_the_fallback_answers_at_once)
{
    start_zakat();
    start("routes:\n"
          "  - prefix: /dead\n"
          "    service: dead-service\n"
          "    retry: {attempts: 1}\n"
          "    breaker: {failures: 3, open_timeout: 30s}\n"
          "  - prefix: /dead2\n"
          "    service: dead-service\n"
          "    retry: {attempts: 1}\n"
          "    breaker: {failures: 3, open_timeout: 30s}\n"
          "    fallback: {status: 200, body: '{\"zakat\": \"unknown\", \"degraded\": true}'}\n",
          NULL, dead_port());
    struct h_resp r;
    for (int i = 0; i < 3; i++) { /* connection refused: 502, counted as failures */
        cr_assert(h_http(gw->port, "GET", "/dead/x", NULL, NULL, 0, &r));
        cr_assert_eq(r.status, 502, "%d: %ld %s", i, r.status, r.body);
        h_resp_free(&r);
    }
    cr_assert(h_http(gw->port, "GET", "/dead/x", NULL, NULL, 0, &r));
    cr_assert_eq(r.status, 503, "%ld %s", r.status, r.body);
    cr_assert_not_null(strstr(r.body, "circuit breaker is open"), "%s", r.body);
    char *ra = h_resp_header(&r, "Retry-After");
    cr_assert_str_eq(ra, "30");
    free(ra);
    h_resp_free(&r);
    /* the breaker is the service's: the other route to it answers its configured body */
    cr_assert(h_http(gw->port, "GET", "/dead2/x", NULL, NULL, 0, &r));
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    cr_assert(json_is_true(json_object_get(r.json, "degraded")), "%s", r.body);
    h_resp_free(&r);
    /* the admin status shows it open, and is not on the public port */
    cr_assert(h_http(admin_port, "GET", "/admin/status", NULL, NULL, 0, &r));
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    json_t *routes = json_object_get(r.json, "routes");
    cr_assert_eq(json_array_size(routes), 2, "%s", r.body);
    json_t *br = json_object_get(json_array_get(routes, 0), "breaker");
    cr_assert_str_eq(json_string_value(json_object_get(br, "state")), "open", "%s", r.body);
    cr_assert_geq(json_integer_value(json_object_get(br, "rejected_open")), 2, "%s", r.body);
    h_resp_free(&r);
    cr_assert(h_http(gw->port, "GET", "/admin/status", NULL, NULL, 0, &r));
    cr_assert_eq(r.status, 404);
    h_resp_free(&r);
    /* a clean stop: exit 0 (under ASan, nothing leaked) */
    cr_assert_eq(h_stop(gw, 10000), 0);
}

Test(gateway, a_bad_config_is_refused_at_start_with_its_line)
{
    char cfg[128];
    write_file("bad.yaml", "routes:\n  - prefix: /z\n    service: zakat-service\n    timeot: 5s\n",
               cfg, sizeof cfg);
    char *out = NULL, *err = NULL;
    int rc = h_run("ward-gateway", (const char *const[]){"--config", cfg, "--listen",
                                                         "127.0.0.1:0", NULL},
                   &out, &err);
    cr_assert_neq(rc, 0);
    char want[160];
    snprintf(want, sizeof want, "%s:4:", cfg);
    cr_assert_not_null(strstr(err, want), "%s", err);
    cr_assert_not_null(strstr(err, "timeot"), "%s", err);
    free(out);
    free(err);
}

/* One request on an open connection (keep-alive): its status. */
static int on_conn(int fd, const char *path)
{
    char req[256];
    int n = snprintf(req, sizeof req,
                     "POST %s HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     path, strlen(CALC), CALC);
    cr_assert(h_send(fd, req, (size_t)n));
    return h_read_response(fd, 5000, NULL);
}

/* Polls (bounded) until path answers want through a fresh connection. */
static bool eventually(const char *path, long want)
{
    for (int i = 0; i < 100; i++) {
        struct h_resp r;
        cr_assert(h_http(gw->port, "POST", path, json_ct, CALC, strlen(CALC), &r));
        long got = r.status;
        h_resp_free(&r);
        if (got == want)
            return true;
        h_sleep_ms(50);
    }
    return false;
}

Test(gateway, sighup_reloads_a_good_config_refuses_a_bad_one_and_keeps_connections)
{
    start_zakat();
    start("routes:\n  - prefix: /z\n    service: zakat-service\n    rewrite: \"\"\n", NULL,
          dead_port());
    int fd = h_connect(gw->port);
    cr_assert_geq(fd, 0);
    cr_assert_eq(on_conn(fd, "/z/calculate"), 200);

    char cfg[128];
    write_file("gateway.yaml", "routes:\n  - prefix: /y\n    service: zakat-service\n    rewrite: \"\"\n",
               cfg, sizeof cfg);
    h_signal(gw, SIGHUP);
    cr_assert(eventually("/y/calculate", 200), "the new route never came");
    cr_assert(eventually("/z/calculate", 404), "the old route stayed");
    /* the connection opened before the reload still works, with the new routes */
    cr_assert_eq(on_conn(fd, "/y/calculate"), 200);

    write_file("gateway.yaml", "routes:\n  - prefix: /x\n    service: zakat-service\n    bogus: 1\n",
               cfg, sizeof cfg);
    h_signal(gw, SIGHUP);
    char want[160];
    snprintf(want, sizeof want, "%s:4:", cfg);
    json_t *line = h_log_wait(gw, "reload refused", 5000);
    cr_assert_not_null(line, "no refusal logged");
    cr_assert_not_null(strstr(json_string_value(json_object_get(line, "error")), want), "%s",
                       json_string_value(json_object_get(line, "error")));
    json_decref(line);
    cr_assert_eq(on_conn(fd, "/y/calculate"), 200, "the configuration in use stays");
    close(fd);
    cr_assert_eq(h_stop(gw, 10000), 0);
}
