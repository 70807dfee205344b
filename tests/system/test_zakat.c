/* test_zakat.c — zakat-service as a client sees it: the API, every bad input as a 4xx
 * problem, request IDs, trace context, deadlines, the access log and /metrics. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static struct h_proc *svc;

static void start(void)
{
    static const char *const args[] = {"--shutdown-delay", "0", NULL};
    svc = h_start("zakat-service", args);
}

static void stop(void)
{
    int st = h_stop(svc, 10000);
    h_free(svc);
    cr_assert_eq(st, 0, "zakat-service exited with %d (a sanitizer report or a failed drain)", st);
}

TestSuite(zakat, .init = start, .fini = stop, .timeout = 60);

static const char *const json_ct[] = {"Content-Type: application/json", NULL};

static void calc(const char *body, struct h_resp *r)
{
    cr_assert(h_http(svc->port, "POST", "/calculate", json_ct, body, strlen(body), r),
              "transport error");
}

static const char *str(const struct h_resp *r, const char *key)
{
    cr_assert_not_null(r->json, "body is not JSON: %s", r->body);
    const char *v = json_string_value(json_object_get(r->json, key));
    cr_assert_not_null(v, "no string %s in %s", key, r->body);
    return v;
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
    cr_assert_not_null(json_object_get(r->json, "title"));
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

Test(zakat, whole_wealth_above_nisab_owes_two_and_a_half_percent)
{
    struct h_resp r;
    calc("{\"wealth\":10000,\"nisab\":5000}", &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(str(&r, "zakat_due"), "250.00");
    cr_assert_str_eq(str(&r, "wealth"), "10000.00");
    cr_assert_str_eq(str(&r, "nisab"), "5000.00");
    cr_assert_str_eq(str(&r, "currency"), "USD");
    cr_assert(json_is_true(json_object_get(r.json, "is_eligible")));
    h_resp_free(&r);
}

Test(zakat, below_nisab_owes_nothing)
{
    struct h_resp r;
    calc("{\"wealth\":\"4999.99\",\"nisab\":\"5000\"}", &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(str(&r, "zakat_due"), "0.00");
    cr_assert(json_is_false(json_object_get(r.json, "is_eligible")));
    h_resp_free(&r);
}

Test(zakat, exactly_nisab_is_eligible)
{
    struct h_resp r;
    calc("{\"wealth\":5000,\"nisab\":5000}", &r);
    cr_assert_str_eq(str(&r, "zakat_due"), "125.00");
    cr_assert(json_is_true(json_object_get(r.json, "is_eligible")));
    h_resp_free(&r);
}

Test(zakat, rounds_half_up_to_the_minor_unit)
{
    struct h_resp r;
    calc("{\"wealth\":\"100.20\",\"nisab\":\"1\"}", &r); /* 2.505 */
    cr_assert_str_eq(str(&r, "zakat_due"), "2.51");
    h_resp_free(&r);
    calc("{\"wealth\":\"100.19\",\"nisab\":\"1\"}", &r); /* 2.50475 */
    cr_assert_str_eq(str(&r, "zakat_due"), "2.50");
    h_resp_free(&r);
}

Test(zakat, exact_for_amounts_a_double_cannot_hold)
{
    struct h_resp r;
    calc("{\"wealth\":\"90071992547409.93\",\"nisab\":\"1\"}", &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(str(&r, "zakat_due"), "2251799813685.25"); /* 2251799813685.24825 */
    h_resp_free(&r);
}

Test(zakat, currencies_use_their_own_decimals)
{
    struct h_resp r;
    calc("{\"wealth\":1000000,\"nisab\":500000,\"currency\":\"JPY\"}", &r);
    cr_assert_str_eq(str(&r, "zakat_due"), "25000");
    cr_assert_str_eq(str(&r, "currency"), "JPY");
    h_resp_free(&r);
    calc("{\"wealth\":\"1000.001\",\"nisab\":\"1\",\"currency\":\"KWD\"}", &r);
    cr_assert_str_eq(str(&r, "zakat_due"), "25.000");
    h_resp_free(&r);
}

Test(zakat, nisab_from_gold_and_silver_prices)
{
    struct h_resp r;
    calc("{\"wealth\":10000,\"gold_price_per_gram\":\"100.00\"}", &r); /* nisab 8500 */
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(str(&r, "nisab"), "8500.00");
    cr_assert_str_eq(str(&r, "nisab_basis"), "gold");
    cr_assert_str_eq(str(&r, "zakat_due"), "250.00");
    h_resp_free(&r);
    calc("{\"wealth\":400,\"silver_price_per_gram\":\"0.80\"}", &r); /* nisab 476 */
    cr_assert_str_eq(str(&r, "nisab"), "476.00");
    cr_assert(json_is_false(json_object_get(r.json, "is_eligible")));
    h_resp_free(&r);
}

struct bad_case {
    const char *body;
    long status;
    const char *slug;
    const char *pointer;
};

Test(zakat, every_bad_body_is_a_4xx_problem_naming_the_field)
{
    static const struct bad_case cases[] = {
        {"{\"wealth\":", 400, "malformed-json", NULL},
        {"not json", 400, "malformed-json", NULL},
        {"{\"wealth\":NaN,\"nisab\":1}", 400, "malformed-json", NULL},
        {"{\"wealth\":Infinity,\"nisab\":1}", 400, "malformed-json", NULL},
        {"{\"wealth\":1e400,\"nisab\":1}", 400, "malformed-json", NULL},
        {"{\"wealth\":1,\"wealth\":2,\"nisab\":1}", 400, "malformed-json", NULL},
        {"[1,2]", 400, "validation", ""},
        {"{}", 400, "validation", "/wealth"},
        {"{\"nisab\":1}", 400, "validation", "/wealth"},
        {"{\"wealth\":1}", 400, "validation", "/nisab"},
        {"{\"wealth\":true,\"nisab\":1}", 400, "validation", "/wealth"},
        {"{\"wealth\":{},\"nisab\":1}", 400, "validation", "/wealth"},
        {"{\"wealth\":\"ten\",\"nisab\":1}", 400, "validation", "/wealth"},
        {"{\"wealth\":-1,\"nisab\":1}", 400, "validation", "/wealth"},
        {"{\"wealth\":\"-0.01\",\"nisab\":1}", 400, "validation", "/wealth"},
        {"{\"wealth\":1,\"nisab\":-5}", 400, "validation", "/nisab"},
        {"{\"wealth\":\"1.001\",\"nisab\":1}", 400, "validation", "/wealth"},
        {"{\"wealth\":1.001,\"nisab\":1}", 400, "validation", "/wealth"},
        {"{\"wealth\":\"99999999999999999999\",\"nisab\":1}", 400, "validation", "/wealth"},
        {"{\"wealth\":99999999999999999999,\"nisab\":1}", 400, "malformed-json", NULL},
        {"{\"wealth\":123456789012345.67,\"nisab\":1}", 400, "validation", "/wealth"},
        {"{\"wealth\":1,\"nisab\":1,\"currency\":\"XYZ\"}", 400, "validation", "/currency"},
        {"{\"wealth\":1,\"nisab\":1,\"currency\":\"usd\"}", 400, "validation", "/currency"},
        {"{\"wealth\":1,\"nisab\":1,\"currency\":5}", 400, "validation", "/currency"},
        {"{\"wealth\":1,\"nisab\":1,\"gold_price_per_gram\":1}", 400, "validation", ""},
        {"{\"wealth\":1,\"gold_price_per_gram\":\"999999999999999999\"}", 400, "validation",
         "/gold_price_per_gram"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct h_resp r;
        calc(cases[i].body, &r);
        cr_log_info("case %zu: %s -> %ld %s", i, cases[i].body, r.status, r.body);
        expect_problem(&r, cases[i].status, cases[i].slug, cases[i].pointer);
        h_resp_free(&r);
    }
}

Test(zakat, several_bad_fields_are_all_named)
{
    struct h_resp r;
    calc("{\"wealth\":-1,\"nisab\":\"x\"}", &r);
    expect_problem(&r, 400, "validation", "/wealth");
    expect_problem(&r, 400, "validation", "/nisab");
    h_resp_free(&r);
}

Test(zakat, empty_body_is_400)
{
    struct h_resp r;
    cr_assert(h_http(svc->port, "POST", "/calculate", json_ct, "", 0, &r));
    expect_problem(&r, 400, "malformed-json", NULL);
    h_resp_free(&r);
}

Test(zakat, body_over_the_limit_is_413)
{
    size_t n = (1u << 20) + 10;
    char *big = malloc(n + 1);
    memset(big, ' ', n);
    big[0] = '{';
    big[n - 1] = '}';
    big[n] = '\0';
    struct h_resp r;
    cr_assert(h_http(svc->port, "POST", "/calculate", json_ct, big, n, &r));
    expect_problem(&r, 413, "body-too-large", NULL);
    h_resp_free(&r);
    free(big);
}

Test(zakat, chunked_body_over_the_limit_is_413)
{
    static const char *const chunked[] = {"Content-Type: application/json",
                                          "Transfer-Encoding: chunked", NULL};
    size_t n = (1u << 20) + 10;
    char *big = malloc(n);
    memset(big, ' ', n);
    struct h_resp r;
    cr_assert(h_http(svc->port, "POST", "/calculate", chunked, big, n, &r));
    expect_problem(&r, 413, "body-too-large", NULL);
    h_resp_free(&r);
    free(big);
}

Test(zakat, wrong_method_is_405_with_allow)
{
    struct h_resp r;
    cr_assert(h_http(svc->port, "GET", "/calculate", NULL, NULL, 0, &r));
    expect_problem(&r, 405, "method-not-allowed", NULL);
    char *allow = h_resp_header(&r, "Allow");
    cr_assert_str_eq(allow, "POST");
    free(allow);
    h_resp_free(&r);
}

Test(zakat, wrong_content_type_is_415)
{
    static const char *const text[] = {"Content-Type: text/plain", NULL};
    struct h_resp r;
    const char *body = "{\"wealth\":1,\"nisab\":1}";
    cr_assert(h_http(svc->port, "POST", "/calculate", text, body, strlen(body), &r));
    expect_problem(&r, 415, "unsupported-media-type", NULL);
    h_resp_free(&r);
    static const char *const none[] = {"Content-Type:", NULL};
    cr_assert(h_http(svc->port, "POST", "/calculate", none, body, strlen(body), &r));
    expect_problem(&r, 415, "unsupported-media-type", NULL);
    h_resp_free(&r);
}

Test(zakat, json_with_charset_is_accepted)
{
    static const char *const ct[] = {"Content-Type: application/json; charset=utf-8", NULL};
    struct h_resp r;
    const char *body = "{\"wealth\":100,\"nisab\":1}";
    cr_assert(h_http(svc->port, "POST", "/calculate", ct, body, strlen(body), &r));
    cr_assert_eq(r.status, 200, "%s", r.body);
    h_resp_free(&r);
}

Test(zakat, unknown_path_is_404_problem)
{
    struct h_resp r;
    cr_assert(h_http(svc->port, "GET", "/nope", NULL, NULL, 0, &r));
    expect_problem(&r, 404, "not-found", NULL);
    h_resp_free(&r);
    cr_assert(h_http(svc->port, "POST", "/calculate/", json_ct, "{}", 2, &r));
    expect_problem(&r, 404, "not-found", NULL);
    h_resp_free(&r);
}

Test(zakat, request_id_is_echoed_and_logged)
{
    static const char *const hdr[] = {"Content-Type: application/json", "X-Request-Id: test-req-42", NULL};
    struct h_resp r;
    const char *body = "{\"wealth\":10000,\"nisab\":5000}";
    cr_assert(h_http(svc->port, "POST", "/calculate", hdr, body, strlen(body), &r));
    char *rid = h_resp_header(&r, "X-Request-Id");
    cr_assert_str_eq(rid, "test-req-42");
    free(rid);
    h_resp_free(&r);
    json_t *line = h_log_wait(svc, "\"request_id\":\"test-req-42\"", 5000);
    cr_assert_not_null(line, "no access log line for the request");
    cr_assert_str_eq(json_string_value(json_object_get(line, "msg")), "request");
    cr_assert_str_eq(json_string_value(json_object_get(line, "level")), "info");
    cr_assert_str_eq(json_string_value(json_object_get(line, "service")), "zakat-service");
    cr_assert_str_eq(json_string_value(json_object_get(line, "method")), "POST");
    cr_assert_str_eq(json_string_value(json_object_get(line, "path")), "/calculate");
    cr_assert_eq(json_integer_value(json_object_get(line, "status")), 200);
    cr_assert_gt(json_integer_value(json_object_get(line, "bytes")), 50);
    cr_assert(json_is_number(json_object_get(line, "duration_ms")));
    cr_assert_not_null(json_object_get(line, "ts"));
    json_decref(line);
}

Test(zakat, request_id_is_generated_when_absent)
{
    struct h_resp r;
    cr_assert(h_http(svc->port, "GET", "/health", NULL, NULL, 0, &r));
    char *rid = h_resp_header(&r, "X-Request-Id");
    cr_assert_not_null(rid);
    cr_assert_eq(strlen(rid), 32);
    struct h_resp r2;
    cr_assert(h_http(svc->port, "GET", "/health", NULL, NULL, 0, &r2));
    char *rid2 = h_resp_header(&r2, "X-Request-Id");
    cr_assert_str_neq(rid, rid2);
    free(rid);
    free(rid2);
    h_resp_free(&r);
    h_resp_free(&r2);
}

Test(zakat, traceparent_is_continued_or_started)
{
    static const char *const hdr[] = {
        "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "X-Request-Id: traced-1", NULL};
    struct h_resp r;
    cr_assert(h_http(svc->port, "GET", "/health", hdr, NULL, 0, &r));
    h_resp_free(&r);
    json_t *line = h_log_wait(svc, "\"request_id\":\"traced-1\"", 5000);
    cr_assert_not_null(line);
    cr_assert_str_eq(json_string_value(json_object_get(line, "trace_id")),
                     "4bf92f3577b34da6a3ce929d0e0e4736");
    json_decref(line);

    static const char *const bad[] = {"traceparent: 00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                                      "X-Request-Id: traced-2", NULL};
    cr_assert(h_http(svc->port, "GET", "/health", bad, NULL, 0, &r));
    h_resp_free(&r);
    line = h_log_wait(svc, "\"request_id\":\"traced-2\"", 5000);
    cr_assert_not_null(line);
    const char *tid = json_string_value(json_object_get(line, "trace_id"));
    cr_assert_eq(strlen(tid), 32);
    cr_assert_str_neq(tid, "00000000000000000000000000000000");
    json_decref(line);
}

Test(zakat, spent_deadline_is_504)
{
    static const char *const hdr[] = {"Content-Type: application/json", "X-Request-Timeout-Ms: 0", NULL};
    struct h_resp r;
    const char *body = "{\"wealth\":1,\"nisab\":1}";
    cr_assert(h_http(svc->port, "POST", "/calculate", hdr, body, strlen(body), &r));
    expect_problem(&r, 504, "deadline-exceeded", NULL);
    h_resp_free(&r);
}

Test(zakat, deadline_spent_while_the_body_arrives_is_504)
{
    int fd = h_connect(svc->port);
    cr_assert_geq(fd, 0);
    const char *head = "POST /calculate HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                       "X-Request-Timeout-Ms: 100\r\nContent-Length: 22\r\n\r\n{\"wealth\":1,";
    cr_assert(h_send(fd, head, strlen(head)));
    h_sleep_ms(300);
    cr_assert(h_send(fd, "\"nisab\":1}", 10));
    cr_assert_eq(h_read_response(fd, 5000, NULL), 504);
    close(fd);
}

Test(zakat, generous_deadline_is_served)
{
    static const char *const hdr[] = {"Content-Type: application/json", "X-Request-Timeout-Ms: 5000", NULL};
    struct h_resp r;
    const char *body = "{\"wealth\":1,\"nisab\":1}";
    cr_assert(h_http(svc->port, "POST", "/calculate", hdr, body, strlen(body), &r));
    cr_assert_eq(r.status, 200);
    h_resp_free(&r);
}

Test(zakat, bad_deadline_header_is_400)
{
    static const char *const hdr[] = {"Content-Type: application/json", "X-Request-Timeout-Ms: soon", NULL};
    struct h_resp r;
    const char *body = "{\"wealth\":1,\"nisab\":1}";
    cr_assert(h_http(svc->port, "POST", "/calculate", hdr, body, strlen(body), &r));
    expect_problem(&r, 400, "bad-header", NULL);
    h_resp_free(&r);
}

Test(zakat, health_and_ready_pass)
{
    const char *paths[] = {"/health", "/ready"};
    for (int i = 0; i < 2; i++) {
        struct h_resp r;
        cr_assert(h_http(svc->port, "GET", paths[i], NULL, NULL, 0, &r));
        cr_assert_eq(r.status, 200);
        char *ct = h_resp_header(&r, "Content-Type");
        cr_assert_str_eq(ct, "application/health+json");
        free(ct);
        cr_assert_str_eq(str(&r, "status"), "pass");
        cr_assert_not_null(json_object_get(r.json, "uptime"));
        cr_assert_not_null(json_object_get(r.json, "timestamp"));
        cr_assert_not_null(json_object_get(r.json, "version"));
        h_resp_free(&r);
    }
}

Test(zakat, metrics_count_requests_and_pass_promtool)
{
    for (int i = 0; i < 3; i++) {
        struct h_resp r;
        calc("{\"wealth\":10000,\"nisab\":5000}", &r);
        h_resp_free(&r);
    }
    struct h_resp bad;
    calc("{}", &bad);
    h_resp_free(&bad);
    struct h_resp r;
    cr_assert(h_http(svc->port, "GET", "/metrics", NULL, NULL, 0, &r));
    cr_assert_eq(r.status, 200);
    cr_assert_not_null(strstr(r.body, "http_requests_total{route=\"/calculate\",method=\"POST\",status=\"200\"} 3\n"),
                       "%s", r.body);
    cr_assert_not_null(strstr(r.body, "http_requests_total{route=\"/calculate\",method=\"POST\",status=\"400\"} 1\n"),
                       "%s", r.body);
    cr_assert_not_null(strstr(r.body, "http_request_duration_seconds_count{route=\"/calculate\",method=\"POST\"} 4\n"),
                       "%s", r.body);
    char path[] = "/tmp/ward-metrics-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, r.body, r.len), (ssize_t)r.len);
    close(fd);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "promtool check metrics < %s", path);
    int st = system(cmd);
    unlink(path);
    cr_assert_eq(st, 0, "promtool check metrics failed (status %d) on:\n%s", st, r.body);
    h_resp_free(&r);
}

/* Mutations of good bodies (bytes flipped, cut, repeated) must all be 200 or a 4xx
 * problem: never a 5xx, a hang or a crash (the fixture checks the exit status). */
Test(zakat, mutated_bodies_never_get_5xx)
{
    static const char *const seeds[] = {
        "{\"wealth\":10000,\"nisab\":5000}",
        "{\"wealth\":\"123.45\",\"gold_price_per_gram\":\"65.10\",\"currency\":\"EUR\"}",
        "{\"wealth\":1e3,\"silver_price_per_gram\":0.5,\"currency\":\"KWD\"}",
    };
    static const char alphabet[] = "{}[]\":,.-+eE0123456789 \\u\"nulltruefalseNaN\x01\xff";
    unsigned seed = 12345;
    for (int i = 0; i < 300; i++) {
        char body[256];
        const char *base = seeds[i % 3];
        size_t n = strlen(base);
        memcpy(body, base, n + 1);
        int edits = 1 + (int)(rand_r(&seed) % 4);
        for (int e = 0; e < edits; e++) {
            size_t at = (size_t)rand_r(&seed) % n;
            switch (rand_r(&seed) % 3) {
            case 0: /* replace a byte */
                body[at] = alphabet[(size_t)rand_r(&seed) % (sizeof alphabet - 1)];
                break;
            case 1: /* cut */
                body[at] = '\0';
                n = at;
                break;
            default: /* duplicate the tail */
                if (n + (n - at) < sizeof body) {
                    memmove(body + n, body + at, n - at);
                    n += n - at;
                    body[n] = '\0';
                }
                break;
            }
            if (n == 0)
                break;
        }
        struct h_resp r;
        cr_assert(h_http(svc->port, "POST", "/calculate", json_ct, body, n, &r), "transport error on %s", body);
        cr_assert(r.status == 200 || (r.status >= 400 && r.status < 500), "%ld for body %.*s: %s", r.status,
                  (int)n, body, r.body);
        if (r.status != 200) {
            char *ct = h_resp_header(&r, "Content-Type");
            cr_assert_str_eq(ct, "application/problem+json");
            free(ct);
        }
        h_resp_free(&r);
    }
}
