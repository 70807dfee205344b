/* test_registry.c — ward-registry as a Consul client sees it: the agent, health, catalog
 * and status endpoints, plain-text errors, JSON shapes, index rules, blocking queries by
 * index and by content hash (wake-up, timeout, 500 held at once, 404 on deregistration,
 * shutdown), TTL expiry and malformed input. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static struct h_proc *reg;

static void start(void)
{
    static const char *const args[] = {"--shutdown-delay", "0", "--no-access-log", NULL};
    reg = h_start("ward-registry", args);
}

static void stop(void)
{
    int st = reg->reaped ? reg->status : h_stop(reg, 10000);
    if (st != 0)
        h_log_dump(reg);
    h_free(reg);
    cr_assert_eq(st, 0, "ward-registry exited with %d (a sanitizer report or a failed drain)", st);
}

TestSuite(registry, .init = start, .fini = stop, .timeout = 120);

/* curl -d sends form-urlencoded: Consul clients do not say application/json */
static const char *const form_ct[] = {"Content-Type: application/x-www-form-urlencoded", NULL};

static void call(const char *method, const char *path, const char *body, struct h_resp *r)
{
    cr_assert(h_http(reg->port, method, path, body != NULL ? form_ct : NULL, body,
                     body != NULL ? strlen(body) : 0, r),
              "transport error on %s %s", method, path);
}

static void expect_text(const char *method, const char *path, const char *body, long status,
                        const char *text)
{
    struct h_resp r;
    call(method, path, body, &r);
    cr_assert_eq(r.status, status, "%s %s: want %ld, got %ld: %s", method, path, status, r.status, r.body);
    cr_assert_str_eq(r.body, text, "%s %s", method, path);
    char *ct = h_resp_header(&r, "Content-Type");
    cr_assert_str_eq(ct, "text/plain; charset=utf-8");
    free(ct);
    h_resp_free(&r);
}

static void ok_write(const char *method, const char *path, const char *body)
{
    expect_text(method, path, body, 200, "");
}

static uint64_t index_of(const struct h_resp *r)
{
    char *v = h_resp_header(r, "X-Consul-Index");
    cr_assert_not_null(v, "no X-Consul-Index: %s", r->headers);
    uint64_t n = strtoull(v, NULL, 10);
    free(v);
    cr_assert_gt(n, 0, "X-Consul-Index 0");
    return n;
}

static json_t *get_json(const char *path, long status, struct h_resp *r)
{
    call("GET", path, NULL, r);
    cr_assert_eq(r->status, status, "GET %s: %ld %s", path, r->status, r->body);
    cr_assert_not_null(r->json, "GET %s: not JSON: %s", path, r->body);
    return r->json;
}

static const char *status_of(json_t *entry, const char *check_id)
{
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(entry, "Checks"), i, c) {
        if (strcmp(json_string_value(json_object_get(c, "CheckID")), check_id) == 0)
            return json_string_value(json_object_get(c, "Status"));
    }
    cr_assert_fail("no check %s", check_id);
    return NULL;
}

Test(registry, done_when_ttl_check_goes_from_critical_to_passing)
{
    struct h_resp r;
    ok_write("PUT", "/v1/agent/service/register", "{\"Name\":\"web\",\"Port\":9999,\"Check\":{\"TTL\":\"10s\"}}");
    json_t *a = get_json("/v1/health/service/web", 200, &r);
    cr_assert_eq(json_array_size(a), 1);
    cr_assert_str_eq(status_of(json_array_get(a, 0), "service:web"), "critical");
    cr_assert_str_eq(status_of(json_array_get(a, 0), "serfHealth"), "passing");
    h_resp_free(&r);
    a = get_json("/v1/health/service/web?passing=1", 200, &r);
    cr_assert_eq(json_array_size(a), 0, "critical instance listed as passing");
    h_resp_free(&r);
    ok_write("PUT", "/v1/agent/check/pass/service:web", NULL);
    a = get_json("/v1/health/service/web?passing", 200, &r);
    cr_assert_eq(json_array_size(a), 1);
    cr_assert_str_eq(status_of(json_array_get(a, 0), "service:web"), "passing");
    h_resp_free(&r);
}

Test(registry, health_entry_shape_follows_the_spec)
{
    struct h_resp r;
    ok_write("PUT", "/v1/agent/service/register",
             "{\"Name\":\"api\",\"ID\":\"api-1\",\"Port\":8080,\"Address\":\"10.0.0.1\",\"Tags\":[\"v1\"],"
             "\"Meta\":{\"zone\":\"a\"},\"Check\":{\"TTL\":\"30s\",\"Status\":\"passing\",\"Notes\":\"n\"}}");
    json_t *e = json_array_get(get_json("/v1/health/service/api", 200, &r), 0);
    json_t *node = json_object_get(e, "Node"), *svc = json_object_get(e, "Service");
    cr_assert_str_eq(json_string_value(json_object_get(node, "Node")), "node1");
    cr_assert_str_eq(json_string_value(json_object_get(node, "Datacenter")), "dc1");
    cr_assert_str_eq(json_string_value(json_object_get(node, "Address")), "127.0.0.1");
    cr_assert(json_is_string(json_object_get(node, "ID")));
    cr_assert_str_eq(json_string_value(json_object_get(svc, "ID")), "api-1");
    cr_assert_str_eq(json_string_value(json_object_get(svc, "Service")), "api");
    cr_assert_str_eq(json_string_value(json_object_get(svc, "Address")), "10.0.0.1");
    cr_assert_eq(json_integer_value(json_object_get(svc, "Port")), 8080);
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(svc, "Tags"), 0)), "v1");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(svc, "Meta"), "zone")), "a");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(svc, "Weights"), "Passing")), 1);
    json_t *c = json_array_get(json_object_get(e, "Checks"), 1);
    cr_assert_str_eq(json_string_value(json_object_get(c, "CheckID")), "service:api-1");
    cr_assert_str_eq(json_string_value(json_object_get(c, "Name")), "Service 'api' check");
    cr_assert_str_eq(json_string_value(json_object_get(c, "Status")), "passing");
    cr_assert_str_eq(json_string_value(json_object_get(c, "Notes")), "n");
    cr_assert_str_eq(json_string_value(json_object_get(c, "ServiceName")), "api");
    cr_assert_str_eq(json_string_value(json_object_get(c, "Type")), "ttl");
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(c, "ServiceTags"), 0)), "v1");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(c, "Definition"), "Interval")), "0s");
    h_resp_free(&r);
    /* tags filter: all must match */
    cr_assert_eq(json_array_size(get_json("/v1/health/service/api?tag=v1", 200, &r)), 1);
    h_resp_free(&r);
    cr_assert_eq(json_array_size(get_json("/v1/health/service/api?tag=v1&tag=v2", 200, &r)), 0);
    h_resp_free(&r);
    cr_assert_eq(json_array_size(get_json("/v1/health/service/nobody", 200, &r)), 0);
    index_of(&r);
    h_resp_free(&r);
}

Test(registry, check_ids_count_check_then_checks_and_http_tcp_are_stored)
{
    struct h_resp r;
    ok_write("PUT", "/v1/agent/service/register",
             "{\"name\":\"db\",\"port\":5432,\"check\":{\"ttl\":\"1m30s\"},\"checks\":[{\"http\":\"http://127.0.0.1:1/ready\","
             "\"interval\":\"500ms\",\"timeout\":\"1s\",\"header\":{\"X\":[\"y\"]}},"
             "{\"TCP\":\"127.0.0.1:1\",\"Interval\":\"10s\",\"deregister_critical_service_after\":\"90m\"}]}");
    json_t *m = get_json("/v1/agent/checks", 200, &r);
    json_t *c1 = json_object_get(m, "service:db:1"), *c2 = json_object_get(m, "service:db:2"),
           *c3 = json_object_get(m, "service:db:3");
    cr_assert_not_null(c1, "%s", r.body);
    cr_assert_not_null(c2);
    cr_assert_not_null(c3);
    cr_assert_str_eq(json_string_value(json_object_get(c1, "Type")), "ttl");
    cr_assert_str_eq(json_string_value(json_object_get(c2, "Type")), "http");
    cr_assert_str_eq(json_string_value(json_object_get(c3, "Type")), "tcp");
    json_t *d2 = json_object_get(c2, "Definition"), *d3 = json_object_get(c3, "Definition");
    cr_assert_str_eq(json_string_value(json_object_get(d2, "HTTP")), "http://127.0.0.1:1/ready");
    cr_assert_str_eq(json_string_value(json_object_get(d2, "Interval")), "1s", "Consul's 1 s floor");
    cr_assert_str_eq(json_string_value(json_object_get(d2, "Timeout")), "1s");
    cr_assert_str_eq(json_string_value(json_object_get(d3, "TCP")), "127.0.0.1:1");
    cr_assert_str_eq(json_string_value(json_object_get(d3, "DeregisterCriticalServiceAfter")), "1h30m0s");
    cr_assert_str_eq(json_string_value(json_object_get(c2, "Status")), "critical");
    h_resp_free(&r);
    /* HTTP and TCP checks have no TTL */
    expect_text("PUT", "/v1/agent/check/pass/service:db:2", NULL, 500,
                "CheckID \"service:db:2\" does not have associated TTL");
}

Test(registry, reregistering_keeps_status_and_replace_existing_checks_drops_the_rest)
{
    struct h_resp r;
    const char *two = "{\"Name\":\"q\",\"Checks\":[{\"CheckID\":\"a\",\"TTL\":\"1m\"},{\"CheckID\":\"b\",\"TTL\":\"1m\"}]}";
    ok_write("PUT", "/v1/agent/service/register", two);
    ok_write("PUT", "/v1/agent/check/warn/a?note=slow", NULL);
    ok_write("PUT", "/v1/agent/service/register", "{\"Name\":\"q\",\"Checks\":[{\"CheckID\":\"a\",\"TTL\":\"1m\"}]}");
    json_t *m = get_json("/v1/agent/checks", 200, &r);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(m, "a"), "Status")), "warning");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(m, "a"), "Output")), "slow");
    cr_assert_not_null(json_object_get(m, "b"), "b kept without replace-existing-checks");
    h_resp_free(&r);
    ok_write("PUT", "/v1/agent/service/register?replace-existing-checks=1",
             "{\"Name\":\"q\",\"Checks\":[{\"CheckID\":\"a\",\"TTL\":\"1m\"}]}");
    m = get_json("/v1/agent/checks", 200, &r);
    cr_assert_not_null(json_object_get(m, "b"), "=1 does not count");
    h_resp_free(&r);
    ok_write("PUT", "/v1/agent/service/register?replace-existing-checks",
             "{\"Name\":\"q\",\"Checks\":[{\"CheckID\":\"a\",\"TTL\":\"1m\"}]}");
    m = get_json("/v1/agent/checks", 200, &r);
    cr_assert_null(json_object_get(m, "b"));
    cr_assert_not_null(json_object_get(m, "a"));
    h_resp_free(&r);
}

Test(registry, ttl_updates_set_status_and_output)
{
    struct h_resp r;
    ok_write("PUT", "/v1/agent/service/register", "{\"Name\":\"t\",\"Check\":{\"TTL\":\"1m\"}}");
    ok_write("PUT", "/v1/agent/check/fail/service:t?note=down+now", NULL);
    json_t *c = json_object_get(get_json("/v1/agent/checks", 200, &r), "service:t");
    cr_assert_str_eq(json_string_value(json_object_get(c, "Status")), "critical");
    cr_assert_str_eq(json_string_value(json_object_get(c, "Output")), "down now");
    h_resp_free(&r);
    ok_write("PUT", "/v1/agent/check/update/service:t", "{\"Status\":\"warning\",\"Output\":\"meh\"}");
    c = json_object_get(get_json("/v1/agent/checks", 200, &r), "service:t");
    cr_assert_str_eq(json_string_value(json_object_get(c, "Status")), "warning");
    cr_assert_str_eq(json_string_value(json_object_get(c, "Output")), "meh");
    h_resp_free(&r);
    expect_text("PUT", "/v1/agent/check/update/service:t", "{\"Status\":\"ok\"}", 400, "Invalid check status: 'ok'");
    expect_text("PUT", "/v1/agent/check/update/service:t", "", 400, "Request decode failed: EOF");
    expect_text("PUT", "/v1/agent/check/pass/nope", NULL, 404,
                "Unknown check ID \"nope\". Ensure that the check ID is passed, not the check name.");
    expect_text("PUT", "/v1/agent/check/update/nope", "{\"Status\":\"passing\"}", 404,
                "Unknown check ID \"nope\". Ensure that the check ID is passed, not the check name.");
    /* output is capped at 4 KB */
    char big[6000 + 64];
    int n = snprintf(big, sizeof big, "{\"Status\":\"passing\",\"Output\":\"");
    memset(big + n, 'x', 6000);
    snprintf(big + n + 6000, sizeof big - (size_t)n - 6000, "\"}");
    ok_write("PUT", "/v1/agent/check/update/service:t", big);
    c = json_object_get(get_json("/v1/agent/checks", 200, &r), "service:t");
    const char *out = json_string_value(json_object_get(c, "Output"));
    cr_assert_not_null(strstr(out, " ... (captured 4096 of 6000 bytes)"));
    cr_assert_eq(strlen(out), 4096 + strlen(" ... (captured 4096 of 6000 bytes)"));
    h_resp_free(&r);
}

Test(registry, deregister_and_agent_service_lookups)
{
    struct h_resp r;
    ok_write("PUT", "/v1/agent/service/register", "{\"Name\":\"x\",\"ID\":\"x-1\",\"Port\":1}");
    json_t *m = get_json("/v1/agent/services", 200, &r);
    json_t *s = json_object_get(m, "x-1");
    cr_assert_str_eq(json_string_value(json_object_get(s, "Service")), "x");
    cr_assert(json_is_array(json_object_get(s, "Tags")));
    cr_assert(json_is_object(json_object_get(s, "Meta")));
    char *idx = h_resp_header(&r, "X-Consul-Index");
    cr_assert_null(idx, "agent endpoints send no X-Consul-Index");
    h_resp_free(&r);
    s = get_json("/v1/agent/service/x-1", 200, &r);
    char *hash = h_resp_header(&r, "X-Consul-ContentHash");
    cr_assert_not_null(hash);
    cr_assert_str_eq(json_string_value(json_object_get(s, "ContentHash")), hash);
    free(hash);
    h_resp_free(&r);
    expect_text("GET", "/v1/agent/service/nope", NULL, 404, "unknown service ID: nope");
    ok_write("PUT", "/v1/agent/service/deregister/x-1", NULL);
    expect_text("PUT", "/v1/agent/service/deregister/x-1", NULL, 404,
                "Unknown service ID \"x-1\". Ensure that the service ID is passed, not the service name.");
    cr_assert_eq(json_object_size(get_json("/v1/agent/services", 200, &r)), 0);
    h_resp_free(&r);
}

Test(registry, health_checks_state_catalog_and_status)
{
    struct h_resp r;
    ok_write("PUT", "/v1/agent/service/register", "{\"Name\":\"c\",\"ID\":\"c1\",\"Tags\":[\"a\",\"b\"],\"Check\":{\"TTL\":\"1m\"}}");
    ok_write("PUT", "/v1/agent/service/register", "{\"Name\":\"c\",\"ID\":\"c2\",\"Tags\":[\"b\",\"c\"],\"Check\":{\"TTL\":\"1m\",\"Status\":\"passing\"}}");
    cr_assert_eq(json_array_size(get_json("/v1/health/checks/c", 200, &r)), 2);
    index_of(&r);
    h_resp_free(&r);
    cr_assert_eq(json_array_size(get_json("/v1/health/state/critical", 200, &r)), 1);
    h_resp_free(&r);
    cr_assert_eq(json_array_size(get_json("/v1/health/state/any", 200, &r)), 3, "serfHealth too");
    h_resp_free(&r);
    cr_assert_eq(json_array_size(get_json("/v1/health/state/bogus", 200, &r)), 0);
    h_resp_free(&r);
    expect_text("GET", "/v1/health/checks/", NULL, 400, "Missing service name");
    expect_text("GET", "/v1/health/state/", NULL, 400, "Missing check state");
    expect_text("GET", "/v1/catalog/service/", NULL, 400, "Missing service name");
    json_t *all = get_json("/v1/catalog/services", 200, &r);
    cr_assert_str_eq(r.body, "{\"c\":[\"a\",\"b\",\"c\"]}");
    (void)all;
    index_of(&r);
    h_resp_free(&r);
    json_t *cs = get_json("/v1/catalog/service/c?tag=c", 200, &r);
    cr_assert_eq(json_array_size(cs), 1);
    json_t *e = json_array_get(cs, 0);
    cr_assert_str_eq(json_string_value(json_object_get(e, "ServiceID")), "c2");
    cr_assert_str_eq(json_string_value(json_object_get(e, "Node")), "node1");
    cr_assert(json_is_array(json_object_get(e, "ServiceTags")));
    cr_assert_not_null(json_object_get(e, "ServiceWeights"));
    h_resp_free(&r);
    call("GET", "/v1/status/leader", NULL, &r);
    cr_assert_str_eq(r.body, "\"127.0.0.1:8300\"");
    h_resp_free(&r);
    cr_assert_str_eq(json_string_value(json_array_get(get_json("/v1/status/peers", 200, &r), 0)), "127.0.0.1:8300");
    h_resp_free(&r);
    json_t *self = get_json("/v1/agent/self", 200, &r);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(self, "Config"), "NodeName")), "node1");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(self, "Config"), "Datacenter")), "dc1");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(self, "Member"), "Name")), "node1");
    h_resp_free(&r);
}

Test(registry, transport_conventions)
{
    struct h_resp r;
    expect_text("GET", "/v1/nothing/here", NULL, 404, "Invalid URL path: not a recognized HTTP API endpoint");
    expect_text("POST", "/v1/agent/services", NULL, 405, "method POST not allowed");
    expect_text("GET", "/v1/agent/service/register", NULL, 405, "method GET not allowed");
    expect_text("DELETE", "/v1/health/service/web", NULL, 405, "method DELETE not allowed");
    call("PUT", "/v1/catalog/services", NULL, &r);
    char *allow = h_resp_header(&r, "Allow");
    cr_assert_not_null(allow);
    cr_assert_not_null(strstr(allow, "GET"));
    free(allow);
    h_resp_free(&r);
    call("OPTIONS", "/v1/agent/service/register", NULL, &r);
    cr_assert_eq(r.status, 200);
    allow = h_resp_header(&r, "Allow");
    cr_assert_str_eq(allow, "OPTIONS,PUT");
    free(allow);
    h_resp_free(&r);
    call("GET", "/v1/catalog/services?pretty", NULL, &r);
    cr_assert_str_eq(r.body, "{}");
    char *ct = h_resp_header(&r, "Content-Type");
    cr_assert_str_eq(ct, "application/json");
    free(ct);
    h_resp_free(&r);
    ok_write("PUT", "/v1/agent/service/register", "{\"Name\":\"p\",\"Tags\":[\"t\"]}");
    call("GET", "/v1/catalog/services?pretty", NULL, &r);
    cr_assert_not_null(strstr(r.body, "{\n    \"p\": [\n        \"t\"\n    ]\n}"), "%s", r.body);
    h_resp_free(&r);
    expect_text("GET", "/v1/health/service/p?passing=maybe", NULL, 400, "Invalid value for ?passing");
    expect_text("GET", "/v1/health/service/p?stale&consistent", NULL, 400,
                "Cannot specify ?stale with ?consistent, conflicting semantics.");
    expect_text("GET", "/v1/catalog/services?dc=dc9", NULL, 500, "No path to datacenter");
    call("GET", "/v1/catalog/services?dc=dc1&stale=&token=x", NULL, &r);
    cr_assert_eq(r.status, 200);
    h_resp_free(&r);
}

Test(registry, malformed_bodies_are_400_plain_text)
{
    const char *reg_path = "/v1/agent/service/register";
    expect_text("PUT", reg_path, "", 400, "Request decode failed: EOF");
    expect_text("PUT", reg_path, "{\"Name\":\"x\",\"Port\":\"8080\"}", 400,
                "Request decode failed: json: cannot unmarshal into Go struct field Port of type int");
    expect_text("PUT", reg_path, "{}", 400, "Missing service name");
    expect_text("PUT", reg_path, "{\"Name\":\"x\",\"Address\":\"0.0.0.0\"}", 400, "Invalid service address");
    expect_text("PUT", reg_path, "{\"Name\":\"x\",\"Check\":{\"TTL\":\"1s\",\"Interval\":\"1s\"}}", 400,
                "Invalid check: Interval and TTL cannot both be specified");
    expect_text("PUT", reg_path, "{\"Name\":\"x\",\"Check\":{\"HTTP\":\"http://a\"}}", 400,
                "Invalid check: Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks");
    expect_text("PUT", reg_path, "{\"Name\":\"x\",\"Check\":{}}", 400, "Invalid check: TTL must be > 0 for TTL checks");
    expect_text("PUT", reg_path, "{\"Name\":\"x\",\"Check\":{\"TTL\":\"1s\",\"Status\":\"ok\"}}", 400,
                "Status for checks must 'passing', 'warning', 'critical'");
    expect_text("PUT", reg_path, "{\"Name\":\"x\",\"Check\":{\"TTL\":\"ten\"}}", 400,
                "Request decode failed: time: invalid duration \"ten\"");
    expect_text("PUT", reg_path, "{\"Name\":\"x\",\"Meta\":{\"consul-x\":\"y\"}}", 400,
                "Invalid Service Meta: Couldn't load metadata pair ('consul-x', 'y')");
    static const char *const junk[] = {
        "{", "[]", "\"x\"", "42", "null", "{\"Name\":1}", "{\"Name\":\"x\",\"Tags\":\"a\"}",
        "{\"Name\":\"x\",\"Tags\":[1]}", "{\"Name\":\"x\",\"Checks\":{}}", "{\"Name\":\"x\",\"Checks\":[1]}",
        "{\"Name\":\"x\",\"Meta\":{\"a\":1}}", "{\"Name\":\"x\",\"Weights\":{\"Passing\":0}}",
        "{\"Name\":\"x\",\"Check\":{\"TTL\":-5}}", "{\"Name\":\"x\",\"Check\":{\"TTL\":\"99999999999h\"}}",
        "{\"Name\":\"x\",\"Port\":70000}", "\xff\xfe", "{\"Name\":\"x\",\"Check\":{\"Header\":{\"a\":\"b\"},\"TTL\":\"1s\"}}",
    };
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
        struct h_resp r;
        call("PUT", reg_path, junk[i], &r);
        cr_assert_eq(r.status, 400, "%s: %ld %s", junk[i], r.status, r.body);
        cr_assert_null(r.json, "error bodies are plain text: %s", r.body);
        h_resp_free(&r);
    }
    expect_text("GET", "/v1/health/service/x?index=abc", NULL, 400, "Invalid index");
    expect_text("GET", "/v1/health/service/x?index=-1", NULL, 400, "Invalid index");
    expect_text("GET", "/v1/health/service/x?index=1&wait=soon", NULL, 400, "Invalid wait time");
    struct h_resp r;
    call("GET", "/v1/agent/services", NULL, &r);
    cr_assert_str_eq(r.body, "{}", "nothing was registered by bad input");
    h_resp_free(&r);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Sends a GET on a fresh connection without reading the answer. */
static int send_get(const char *path)
{
    int fd = h_connect(reg->port);
    cr_assert_geq(fd, 0);
    char req[512];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", path);
    cr_assert(h_send(fd, req, (size_t)n));
    return fd;
}

/* Waits (without sleeping blindly) until the registry holds n watchers. */
static void await_watchers(int n)
{
    char want[64];
    snprintf(want, sizeof want, "registry_watchers %d\n", n);
    double limit = now_s() + 20.0;
    for (;;) {
        struct h_resp r;
        call("GET", "/metrics", NULL, &r);
        bool ok = strstr(r.body, want) != NULL;
        h_resp_free(&r);
        if (ok)
            return;
        cr_assert_lt(now_s(), limit, "never reached %d watchers", n);
        h_sleep_ms(20);
    }
}

Test(registry, blocking_query_is_woken_by_a_change_and_index_grows)
{
    struct h_resp r;
    ok_write("PUT", "/v1/agent/service/register", "{\"Name\":\"b\",\"ID\":\"b1\",\"Check\":{\"TTL\":\"1m\"}}");
    get_json("/v1/health/service/b", 200, &r);
    uint64_t i1 = index_of(&r);
    h_resp_free(&r);
    char path[128];
    snprintf(path, sizeof path, "/v1/health/service/b?index=%llu&wait=30s", (unsigned long long)i1);
    double t0 = now_s();
    int fd = send_get(path);
    await_watchers(1);
    /* a change to another service does not wake it */
    ok_write("PUT", "/v1/agent/service/register", "{\"Name\":\"other\"}");
    ok_write("PUT", "/v1/agent/check/pass/service:b1", NULL);
    char *body = NULL;
    cr_assert_eq(h_read_response(fd, 10000, &body), 200);
    close(fd);
    cr_assert_lt(now_s() - t0, 10.0);
    cr_assert_not_null(strstr(body, "\"Status\":\"passing\""), "%s", body);
    free(body);
    get_json("/v1/health/service/b", 200, &r);
    cr_assert_gt(index_of(&r), i1);
    h_resp_free(&r);
    /* an index below the current one answers at once */
    get_json("/v1/health/service/b?index=1&wait=30s", 200, &r);
    h_resp_free(&r);
}

Test(registry, blocking_query_times_out_after_wait)
{
    struct h_resp r;
    get_json("/v1/catalog/services", 200, &r);
    uint64_t i1 = index_of(&r);
    h_resp_free(&r);
    char path[128];
    snprintf(path, sizeof path, "/v1/catalog/services?index=%llu&wait=400ms", (unsigned long long)i1);
    double t0 = now_s();
    get_json(path, 200, &r);
    double took = now_s() - t0;
    cr_assert_geq(took, 0.39, "answered after %f s", took);
    cr_assert_lt(took, 0.4 * 17 / 16 + 1.0, "answered after %f s", took);
    cr_assert_eq(index_of(&r), i1);
    h_resp_free(&r);
}

Test(registry, ttl_check_expires_to_critical)
{
    struct h_resp r;
    ok_write("PUT", "/v1/agent/service/register", "{\"Name\":\"e\",\"Check\":{\"TTL\":\"300ms\"}}");
    ok_write("PUT", "/v1/agent/check/pass/service:e?note=fine", NULL);
    json_t *a = get_json("/v1/health/service/e", 200, &r);
    cr_assert_str_eq(status_of(json_array_get(a, 0), "service:e"), "passing");
    uint64_t i1 = index_of(&r);
    h_resp_free(&r);
    char path[128];
    snprintf(path, sizeof path, "/v1/health/service/e?index=%llu&wait=10s", (unsigned long long)i1);
    double t0 = now_s();
    a = get_json(path, 200, &r);
    double took = now_s() - t0;
    cr_assert_lt(took, 5.0, "expiry took %f s", took);
    json_t *c = json_array_get(json_object_get(json_array_get(a, 0), "Checks"), 1);
    cr_assert_str_eq(json_string_value(json_object_get(c, "Status")), "critical");
    cr_assert_str_eq(json_string_value(json_object_get(c, "Output")),
                     "TTL expired (last output before timeout follows): fine");
    cr_assert_gt(index_of(&r), i1);
    h_resp_free(&r);
}

Test(registry, five_hundred_watchers_are_held_while_writes_proceed)
{
    enum { N = 500 };
    static int fds[N];
    struct h_resp r;
    get_json("/v1/health/service/many", 200, &r);
    uint64_t i1 = index_of(&r);
    h_resp_free(&r);
    char path[128];
    snprintf(path, sizeof path, "/v1/health/service/many?index=%llu&wait=60s", (unsigned long long)i1);
    for (int i = 0; i < N; i++)
        fds[i] = send_get(path);
    await_watchers(N);
    /* writes and reads still go through while they wait */
    for (int i = 0; i < 20; i++) {
        char body[128];
        snprintf(body, sizeof body, "{\"Name\":\"noise\",\"ID\":\"noise-%d\"}", i);
        ok_write("PUT", "/v1/agent/service/register", body);
    }
    cr_assert_eq(json_object_size(get_json("/v1/agent/services", 200, &r)), 20);
    h_resp_free(&r);
    ok_write("PUT", "/v1/agent/service/register", "{\"Name\":\"many\",\"Port\":1}");
    for (int i = 0; i < N; i++) {
        char *body = NULL;
        int st = h_read_response(fds[i], 10000, &body);
        cr_assert_eq(st, 200, "watcher %d: %d", i, st);
        cr_assert_not_null(strstr(body, "\"Service\":\"many\""), "watcher %d: %s", i, body);
        free(body);
        close(fds[i]);
    }
    await_watchers(0);
}

Test(registry, shutdown_answers_pending_watchers)
{
    struct h_resp r;
    get_json("/v1/catalog/services", 200, &r);
    uint64_t i1 = index_of(&r);
    h_resp_free(&r);
    char path[128];
    snprintf(path, sizeof path, "/v1/catalog/services?index=%llu&wait=60s", (unsigned long long)i1);
    int fd = send_get(path);
    await_watchers(1);
    h_signal(reg, SIGTERM);
    char *body = NULL;
    cr_assert_eq(h_read_response(fd, 10000, &body), 200);
    cr_assert_str_eq(body, "{}");
    free(body);
    close(fd);
    cr_assert_eq(h_wait(reg, 10000), 0);
}

Test(registry, metrics_show_services_and_instances_by_status)
{
    struct h_resp r;
    ok_write("PUT", "/v1/agent/service/register", "{\"Name\":\"m\",\"ID\":\"m1\",\"Check\":{\"TTL\":\"1m\"}}");
    ok_write("PUT", "/v1/agent/service/register", "{\"Name\":\"m\",\"ID\":\"m2\",\"Check\":{\"TTL\":\"1m\",\"Status\":\"passing\"}}");
    call("GET", "/metrics", NULL, &r);
    cr_assert_not_null(strstr(r.body, "registry_services 1\n"), "%s", r.body);
    cr_assert_not_null(strstr(r.body, "registry_instances{status=\"passing\"} 1\n"), "%s", r.body);
    cr_assert_not_null(strstr(r.body, "registry_instances{status=\"critical\"} 1\n"), "%s", r.body);
    h_resp_free(&r);
}

Test(registry, check_register_and_deregister_on_their_own)
{
    struct h_resp r;
    ok_write("PUT", "/v1/agent/service/register", "{\"Name\":\"k\",\"ID\":\"k1\"}");
    expect_text("PUT", "/v1/agent/check/register", "{\"TTL\":\"1m\"}", 400, "Missing check name");
    expect_text("PUT", "/v1/agent/check/register", "{\"Name\":\"x\",\"TTL\":\"1m\",\"ServiceID\":\"nope\"}", 404,
                "ServiceID \"nope\" does not exist");
    ok_write("PUT", "/v1/agent/check/register", "{\"Name\":\"k-ttl\",\"ServiceID\":\"k1\",\"TTL\":\"1m\",\"Status\":\"passing\"}");
    json_t *c = json_object_get(get_json("/v1/agent/checks", 200, &r), "k-ttl");
    cr_assert_str_eq(json_string_value(json_object_get(c, "ServiceID")), "k1");
    cr_assert_str_eq(json_string_value(json_object_get(c, "Status")), "passing");
    h_resp_free(&r);
    /* a node-level check counts for every instance */
    ok_write("PUT", "/v1/agent/check/register", "{\"ID\":\"maint\",\"Name\":\"node maintenance\",\"TTL\":\"1m\"}");
    cr_assert_eq(json_array_size(get_json("/v1/health/service/k?passing", 200, &r)), 0);
    uint64_t i1 = index_of(&r);
    h_resp_free(&r);
    ok_write("PUT", "/v1/agent/check/pass/maint", NULL);
    cr_assert_eq(json_array_size(get_json("/v1/health/service/k?passing", 200, &r)), 1);
    cr_assert_gt(index_of(&r), i1, "a node check change moves every service's index");
    h_resp_free(&r);
    ok_write("PUT", "/v1/agent/check/deregister/k-ttl", NULL);
    ok_write("PUT", "/v1/agent/check/deregister/maint", NULL);
    expect_text("PUT", "/v1/agent/check/deregister/maint", NULL, 404,
                "Unknown check ID \"maint\". Ensure that the check ID is passed, not the check name.");
    expect_text("PUT", "/v1/agent/check/deregister/serfHealth", NULL, 404,
                "Unknown check ID \"serfHealth\". Ensure that the check ID is passed, not the check name.");
    cr_assert_eq(json_object_size(get_json("/v1/agent/checks", 200, &r)), 0);
    h_resp_free(&r);
}

/* The ContentHash of GET /v1/agent/service/<id>, checked against its header. */
static char *content_hash_of(const char *id)
{
    struct h_resp r;
    char path[128];
    snprintf(path, sizeof path, "/v1/agent/service/%s", id);
    json_t *s = get_json(path, 200, &r);
    char *hash = h_resp_header(&r, "X-Consul-ContentHash");
    cr_assert_not_null(hash);
    cr_assert_eq(strlen(hash), 16, "hash %s", hash);
    cr_assert_str_eq(json_string_value(json_object_get(s, "ContentHash")), hash);
    h_resp_free(&r);
    return hash;
}

Test(registry, hash_blocking_is_woken_by_a_change_to_that_service_only)
{
    ok_write("PUT", "/v1/agent/service/register", "{\"Name\":\"hb\",\"ID\":\"hb1\",\"Port\":1,\"Check\":{\"TTL\":\"1m\"}}");
    ok_write("PUT", "/v1/agent/service/register", "{\"Name\":\"hb\",\"ID\":\"hb2\",\"Port\":1}");
    char *h1 = content_hash_of("hb1");
    char path[128];
    snprintf(path, sizeof path, "/v1/agent/service/hb1?hash=%s&wait=30s", h1);
    double t0 = now_s();
    int fd = send_get(path);
    await_watchers(1);
    /* another service, and a check status of this one, leave its hash as it was */
    ok_write("PUT", "/v1/agent/service/register", "{\"Name\":\"hb\",\"ID\":\"hb2\",\"Port\":2}");
    ok_write("PUT", "/v1/agent/check/pass/service:hb1", NULL);
    await_watchers(1);
    ok_write("PUT", "/v1/agent/service/register", "{\"Name\":\"hb\",\"ID\":\"hb1\",\"Port\":3,\"Check\":{\"TTL\":\"1m\"}}");
    char *body = NULL;
    cr_assert_eq(h_read_response(fd, 10000, &body), 200);
    close(fd);
    cr_assert_lt(now_s() - t0, 10.0);
    json_t *s = json_loads(body, 0, NULL);
    cr_assert_not_null(s, "%s", body);
    cr_assert_eq(json_integer_value(json_object_get(s, "Port")), 3);
    const char *h2 = json_string_value(json_object_get(s, "ContentHash"));
    cr_assert_not_null(h2);
    cr_assert_str_neq(h2, h1, "the hash did not change with the service");
    char *now = content_hash_of("hb1");
    cr_assert_str_eq(now, h2);
    free(now);
    json_decref(s);
    free(body);
    free(h1);
    await_watchers(0);
}

Test(registry, hash_blocking_with_a_different_hash_answers_at_once)
{
    ok_write("PUT", "/v1/agent/service/register", "{\"Name\":\"hd\",\"ID\":\"hd1\",\"Port\":1}");
    char *h = content_hash_of("hd1");
    static const char *const other[] = {"0000000000000000", "zz", "", "ABCDEF0123456789"};
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
        struct h_resp r;
        char path[128];
        snprintf(path, sizeof path, "/v1/agent/service/hd1?hash=%s&wait=30s", other[i]);
        double t0 = now_s();
        json_t *s = get_json(path, 200, &r);
        cr_assert_lt(now_s() - t0, 5.0, "hash=%s blocked", other[i]);
        cr_assert_str_eq(json_string_value(json_object_get(s, "ContentHash")), h);
        h_resp_free(&r);
    }
    free(h);
    /* an unknown ID answers 404 at once, whatever the hash */
    expect_text("GET", "/v1/agent/service/nope?hash=0000000000000000&wait=30s", NULL, 404,
                "unknown service ID: nope");
    expect_text("GET", "/v1/agent/service/hd1?hash=0000000000000000&wait=soon", NULL, 400,
                "Invalid wait time");
}

Test(registry, hash_blocking_times_out_after_wait)
{
    struct h_resp r;
    ok_write("PUT", "/v1/agent/service/register", "{\"Name\":\"ht\",\"ID\":\"ht1\",\"Port\":1}");
    char *h = content_hash_of("ht1");
    char path[128];
    snprintf(path, sizeof path, "/v1/agent/service/ht1?hash=%s&wait=400ms", h);
    double t0 = now_s();
    json_t *s = get_json(path, 200, &r);
    double took = now_s() - t0;
    cr_assert_geq(took, 0.39, "answered after %f s", took);
    cr_assert_lt(took, 0.4 * 17 / 16 + 1.0, "answered after %f s", took);
    cr_assert_str_eq(json_string_value(json_object_get(s, "ContentHash")), h);
    char *hdr = h_resp_header(&r, "X-Consul-ContentHash");
    cr_assert_str_eq(hdr, h);
    free(hdr);
    hdr = h_resp_header(&r, "X-Consul-Index");
    cr_assert_null(hdr, "agent endpoints send no X-Consul-Index");
    h_resp_free(&r);
    free(h);
}

Test(registry, hash_blocking_answers_404_when_the_service_is_deregistered)
{
    ok_write("PUT", "/v1/agent/service/register", "{\"Name\":\"hx\",\"ID\":\"hx1\",\"Port\":1}");
    char *h = content_hash_of("hx1");
    char path[128];
    snprintf(path, sizeof path, "/v1/agent/service/hx1?hash=%s&wait=30s", h);
    int fd = send_get(path);
    await_watchers(1);
    ok_write("PUT", "/v1/agent/service/deregister/hx1", NULL);
    char *body = NULL;
    cr_assert_eq(h_read_response(fd, 10000, &body), 404);
    close(fd);
    cr_assert_str_eq(body, "unknown service ID: hx1");
    free(body);
    free(h);
    await_watchers(0);
}
