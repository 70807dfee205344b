/* test_http.c — the HTTP server in-process: routing and parameters, 404/405, readiness
 * checks, handlers that answer later from another thread, shutdown hooks and drain. */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ward/http.h>
#include <ward/service.h>

#include "trace.h"

static struct ward_server *srv;
static struct ward_metrics *metrics;

struct reply {
    long status;
    char body[65536];
    size_t len;
    char headers[4096];
    size_t hlen;
};

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct reply *r = arg;
    size_t len = size * n;
    if (r->len + len < sizeof r->body) {
        memcpy(r->body + r->len, p, len);
        r->len += len;
        r->body[r->len] = '\0';
    }
    return len;
}

static void call_with(const char *method, const char *path, const char *body, const char *header,
                      struct reply *r);

static void call(const char *method, const char *path, const char *body, struct reply *r)
{
    call_with(method, path, body, NULL, r);
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    struct reply *r = arg;
    size_t len = size * n;
    if (r->hlen + len < sizeof r->headers) {
        memcpy(r->headers + r->hlen, p, len);
        r->hlen += len;
        r->headers[r->hlen] = '\0';
    }
    return len;
}

static void call_with(const char *method, const char *path, const char *body, const char *header,
                      struct reply *r)
{
    memset(r, 0, sizeof *r);
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", ward_server_port(srv), path);
    CURL *c = curl_easy_init();
    cr_assert_not_null(c);
    bool own_type = header != NULL && strncmp(header, "Content-Type:", 13) == 0;
    struct curl_slist *h = own_type ? NULL : curl_slist_append(NULL, "Content-Type: application/json");
    if (header != NULL)
        h = curl_slist_append(h, header);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (body != NULL)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    cr_assert_eq(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
}

static void echo_param(struct ward_req *req, void *arg)
{
    (void)arg;
    json_t *body = json_pack("{s:s, s:s, s:s?}", "id", ward_req_param(req, "id"), "action",
                             ward_req_param(req, "action"), "q", ward_req_query(req, "q"));
    ward_req_respond_json(req, 200, body);
}

static void *answer_later(void *arg)
{
    struct ward_req *req = arg;
    struct timespec ts = {0, 50 * 1000000L};
    nanosleep(&ts, NULL);
    ward_req_respond(req, 202, "application/json", "{\"later\":true}", 14);
    return NULL;
}

static void suspend_handler(struct ward_req *req, void *arg)
{
    (void)arg;
    pthread_t t;
    ward_req_suspend(req);
    cr_assert_eq(pthread_create(&t, NULL, answer_later, req), 0);
    pthread_detach(t);
}

static void *answer_now(void *arg)
{
    ward_req_respond(arg, 200, "application/json", "{}", 2);
    return NULL;
}

/* answers from another thread before the handler has even returned */
static void race_handler(struct ward_req *req, void *arg)
{
    (void)arg;
    pthread_t t;
    ward_req_suspend(req);
    cr_assert_eq(pthread_create(&t, NULL, answer_now, req), 0);
    pthread_join(t, NULL);
}

static struct ward_req *hung;

/* suspends and leaves the answer to the test, after the deadline */
static void hang_handler(struct ward_req *req, void *arg)
{
    (void)arg;
    ward_req_suspend(req);
    hung = req;
}

static void silent_handler(struct ward_req *req, void *arg)
{
    (void)req, (void)arg;
}

static enum ward_health db_check(void *arg, char *out, size_t size)
{
    int *state = arg;
    snprintf(out, size, "%s", *state ? "connection refused" : "");
    return *state ? WARD_HEALTH_FAIL : WARD_HEALTH_PASS;
}

static int db_down;
static int hook_runs, drained_runs, drained_after_hook;

static void hook(void *arg)
{
    (void)arg;
    hook_runs++;
}

/* After the drain: the shutdown hooks ran before it, and the server still serves. */
static void drained(void *arg)
{
    (void)arg;
    drained_runs++;
    drained_after_hook = hook_runs;
}

static void setup(void)
{
    struct ward_server_config cfg;
    ward_server_config_defaults(&cfg);
    cfg.shutdown_delay = 0;
    cfg.drain_timeout = 2000000000;
    cfg.access_log = false;
    metrics = ward_metrics_new();
    cr_assert_eq(ward_server_new(&cfg, NULL, metrics, &srv), WARD_ERR_OK);
    cr_assert_eq(ward_server_route(srv, "GET", "/things/{id}/{action}", echo_param, NULL), WARD_ERR_OK);
    cr_assert_eq(ward_server_route(srv, "DELETE", "/things/{id}/{action}", echo_param, NULL), WARD_ERR_OK);
    cr_assert_eq(ward_server_route(srv, "POST", "/later", suspend_handler, NULL), WARD_ERR_OK);
    cr_assert_eq(ward_server_route(srv, "POST", "/race", race_handler, NULL), WARD_ERR_OK);
    cr_assert_eq(ward_server_route(srv, "GET", "/silent", silent_handler, NULL), WARD_ERR_OK);
    cr_assert_eq(ward_server_route(srv, "GET", "/hang", hang_handler, NULL), WARD_ERR_OK);
    cr_assert_eq(ward_server_add_check(srv, "database", db_check, &db_down), WARD_ERR_OK);
    cr_assert_eq(ward_server_on_shutdown(srv, hook, NULL), WARD_ERR_OK);
    cr_assert_eq(ward_server_on_drained(srv, drained, NULL), WARD_ERR_OK);
    cr_assert_eq(ward_server_start(srv), WARD_ERR_OK);
    cr_assert_neq(ward_server_port(srv), 0);
}

static void teardown(void)
{
    ward_server_free(srv);
    ward_metrics_free(metrics);
}

TestSuite(http, .init = setup, .fini = teardown, .timeout = 30);

Test(http, path_parameters_and_query)
{
    struct reply r;
    call("GET", "/things/42/pay?q=a%20b", NULL, &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(r.body, "{\"id\":\"42\",\"action\":\"pay\",\"q\":\"a b\"}");
}

Test(http, unknown_path_is_404_and_wrong_method_405_with_allow)
{
    struct reply r;
    call("GET", "/things/42", NULL, &r);
    cr_assert_eq(r.status, 404);
    call("GET", "/things//pay", NULL, &r);
    cr_assert_eq(r.status, 404);
    call("PUT", "/things/1/pay", NULL, &r);
    cr_assert_eq(r.status, 405);
    cr_assert_not_null(strstr(r.headers, "Allow: GET, HEAD, DELETE\r\n"), "%s", r.headers);
}

Test(http, head_is_served_by_get_routes)
{
    struct reply r;
    call("HEAD", "/health", NULL, &r);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.len, 0);
    cr_assert_not_null(strstr(r.headers, "application/health+json"));
}

Test(http, handler_answers_later_from_another_thread)
{
    struct reply r;
    call("POST", "/later", "{}", &r);
    cr_assert_eq(r.status, 202);
    cr_assert_str_eq(r.body, "{\"later\":true}");
}

Test(http, answer_before_the_handler_returns)
{
    for (int i = 0; i < 20; i++) {
        struct reply r;
        call("POST", "/race", "{}", &r);
        cr_assert_eq(r.status, 200);
    }
}

Test(http, suspended_request_past_its_deadline_is_504)
{
    struct reply r;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    call_with("GET", "/hang", NULL, "X-Request-Timeout-Ms: 150", &r);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    cr_assert_eq(r.status, 504, "%s", r.body);
    cr_assert_not_null(strstr(r.body, "deadline-exceeded"));
    double took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    cr_assert(took >= 0.14 && took < 5.0, "took %f s", took);
    /* the handler's late answer is dropped, and releases the request */
    cr_assert_not_null(hung);
    ward_req_respond(hung, 200, "application/json", "{}", 2);
    call("GET", "/health", NULL, &r);
    cr_assert_eq(r.status, 200);
}

Test(http, handler_without_answer_is_500_problem)
{
    struct reply r;
    call("GET", "/silent", NULL, &r);
    cr_assert_eq(r.status, 500);
    cr_assert_not_null(strstr(r.body, "https://ward.dev/problems/internal"));
}

Test(http, ready_follows_its_checks)
{
    struct reply r;
    call("GET", "/ready", NULL, &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    db_down = 1;
    call("GET", "/ready", NULL, &r);
    cr_assert_eq(r.status, 503, "%s", r.body);
    cr_assert_not_null(strstr(r.body, "\"database\":[{\"status\":\"fail\""), "%s", r.body);
    cr_assert_not_null(strstr(r.body, "connection refused"));
    call("GET", "/health", NULL, &r); /* liveness does not follow dependencies */
    cr_assert_eq(r.status, 200);
    db_down = 0;
}

Test(http, shutdown_runs_hooks_and_drains)
{
    cr_assert_eq(ward_server_draining(srv), false);
    cr_assert_eq(ward_server_shutdown(srv), 0);
    cr_assert_eq(hook_runs, 1);
    cr_assert_eq(drained_runs, 1, "the drained hook runs once");
    cr_assert_eq(drained_after_hook, 1, "after the shutdown hooks");
    cr_assert(ward_server_draining(srv));
}

static void *hang_long(void *arg)
{
    call_with("GET", "/hang", NULL, "X-Request-Timeout-Ms: 2500", arg);
    return NULL;
}

/* The watchdog sleeps until the earliest deadline and is woken only by an earlier one:
 * a short deadline after a long one still ends on time. */
Test(http, a_shorter_deadline_after_a_longer_one_still_ends_on_time)
{
    struct reply first, r;
    pthread_t t;
    hung = NULL;
    cr_assert_eq(pthread_create(&t, NULL, hang_long, &first), 0);
    for (int i = 0; i < 200 && __atomic_load_n(&hung, __ATOMIC_ACQUIRE) == NULL; i++)
        usleep(10 * 1000); /* the first request is suspended, its watchdog asleep */
    cr_assert_not_null(hung);
    struct ward_req *long_one = hung;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    call_with("GET", "/hang", NULL, "X-Request-Timeout-Ms: 100", &r);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    cr_assert_eq(r.status, 504, "%s", r.body);
    cr_assert(took < 1.5, "the 100 ms deadline waited for the 2.5 s one: %f s", took);
    pthread_join(t, NULL);
    cr_assert_eq(first.status, 504);
    /* the handlers' late answers are dropped, and release the requests */
    ward_req_respond(hung, 200, "application/json", "{}", 2);
    ward_req_respond(long_one, 200, "application/json", "{}", 2);
}

Test(http, metrics_count_by_route)
{
    struct reply r;
    call("GET", "/things/1/a", NULL, &r);
    call("GET", "/things/2/b", NULL, &r);
    call("GET", "/metrics", NULL, &r);
    cr_assert_eq(r.status, 200);
    cr_assert_not_null(strstr(r.body, "http_requests_total{route=\"/things/{id}/{action}\",method=\"GET\",status=\"200\"} 2\n"),
                       "%s", r.body);
}

Test(trace, continues_a_valid_traceparent)
{
    struct ward_trace t;
    cr_assert(ward__trace_continue(&t, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
    cr_assert_str_eq(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    cr_assert_str_eq(t.parent_id, "00f067aa0ba902b7");
    cr_assert_str_neq(t.span_id, "00f067aa0ba902b7");
    cr_assert_eq(strlen(t.traceparent), 55);
    cr_assert_eq(strncmp(t.traceparent, "00-4bf92f3577b34da6a3ce929d0e0e4736-", 36), 0);
    cr_assert_str_eq(t.traceparent + 53, "01");
}

Test(trace, restarts_on_invalid_values)
{
    static const char *const bad[] = {
        "",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct ward_trace t;
        cr_assert_not(ward__trace_continue(&t, bad[i]), "accepted %s", bad[i]);
        cr_assert_eq(strlen(t.trace_id), 32);
        cr_assert_str_eq(t.parent_id, "");
    }
}

Test(trace, future_versions_keep_the_known_prefix)
{
    struct ward_trace t;
    cr_assert(ward__trace_continue(&t, "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what"));
    cr_assert_str_eq(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
}

Test(trace, request_ids_are_checked)
{
    cr_assert(ward__request_id_valid("abc-123_X.y"));
    cr_assert_not(ward__request_id_valid(""));
    cr_assert_not(ward__request_id_valid("has space"));
    char longer[200];
    memset(longer, 'a', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    cr_assert_not(ward__request_id_valid(longer));
}

/* --- a server with an error renderer, any body media type and repeated query keys --- */

static void plain_error(struct ward_req *req, int status, const char *detail, void *arg)
{
    int *calls = arg;
    char text[600];
    (*calls)++;
    int n = snprintf(text, sizeof text, "plain %d: %s", status, detail);
    ward_req_respond(req, status, "text/plain; charset=utf-8", text, (size_t)n);
}

static int plain_calls;

static void echo_body(struct ward_req *req, void *arg)
{
    (void)arg;
    size_t len = 0;
    const char *body = ward_req_body(req, &len);
    ward_req_respond(req, 200, "text/plain", body, len);
}

static void list_tags(struct ward_req *req, void *arg)
{
    (void)arg;
    char out[256] = "";
    size_t used = 0;
    const char *v = NULL;
    for (size_t i = 0; ward_req_query_nth(req, "tag", i, &v); i++)
        used += (size_t)snprintf(out + used, sizeof out - used, "[%s]", v != NULL ? v : "(null)");
    bool has = ward_req_query_nth(req, "pretty", 0, &v);
    used += (size_t)snprintf(out + used, sizeof out - used, "pretty=%s", has ? (v ? v : "(null)") : "absent");
    ward_req_respond(req, 200, "text/plain", out, used);
}

static void setup_custom(void)
{
    struct ward_server_config cfg;
    ward_server_config_defaults(&cfg);
    cfg.shutdown_delay = 0;
    cfg.drain_timeout = 2000000000;
    cfg.access_log = false;
    cfg.any_content_type = true;
    cfg.on_error = plain_error;
    cfg.on_error_arg = &plain_calls;
    plain_calls = 0;
    metrics = ward_metrics_new();
    cr_assert_eq(ward_server_new(&cfg, NULL, metrics, &srv), WARD_ERR_OK);
    cr_assert_eq(ward_server_route(srv, "PUT", "/echo", echo_body, NULL), WARD_ERR_OK);
    cr_assert_eq(ward_server_route(srv, "GET", "/tags", list_tags, NULL), WARD_ERR_OK);
    cr_assert_eq(ward_server_route(srv, "GET", "/hang", hang_handler, NULL), WARD_ERR_OK);
    cr_assert_eq(ward_server_route(srv, "GET", "/silent", silent_handler, NULL), WARD_ERR_OK);
    cr_assert_eq(ward_server_start(srv), WARD_ERR_OK);
}

TestSuite(http_custom, .init = setup_custom, .fini = teardown, .timeout = 30);

Test(http_custom, error_renderer_answers_404_and_405_in_its_own_format)
{
    struct reply r;
    call("GET", "/nowhere", NULL, &r);
    cr_assert_eq(r.status, 404);
    cr_assert_str_eq(r.body, "plain 404: no route for GET /nowhere");
    cr_assert_not_null(strstr(r.headers, "text/plain; charset=utf-8"));
    call("POST", "/echo", "x", &r);
    cr_assert_eq(r.status, 405);
    cr_assert_not_null(strstr(r.body, "plain 405: "), "%s", r.body);
    cr_assert_not_null(strstr(r.headers, "Allow: PUT\r\n"), "%s", r.headers);
    call_with("GET", "/tags", NULL, "X-Request-Timeout-Ms: soon", &r);
    cr_assert_eq(r.status, 400);
    cr_assert_eq(strncmp(r.body, "plain 400: ", 11), 0);
    call("GET", "/silent", NULL, &r);
    cr_assert_eq(r.status, 500);
    cr_assert_str_eq(r.body, "plain 500: the handler gave no answer");
    cr_assert_eq(plain_calls, 4);
}

Test(http_custom, error_renderer_answers_the_watchdogs_504)
{
    struct reply r;
    hung = NULL;
    call_with("GET", "/hang", NULL, "X-Request-Timeout-Ms: 100", &r);
    cr_assert_eq(r.status, 504);
    cr_assert_eq(strncmp(r.body, "plain 504: ", 11), 0, "%s", r.body);
    /* the handler still holds its reference: its late answer is dropped and frees it */
    cr_assert_not_null(hung);
    ward_req_respond(hung, 200, "text/plain", "late", 4);
    call("GET", "/tags", NULL, &r);
    cr_assert_eq(r.status, 200);
}

Test(http_custom, any_content_type_accepts_form_bodies)
{
    struct reply r;
    call_with("PUT", "/echo", "{\"Name\":\"web\"}", "Content-Type: application/x-www-form-urlencoded", &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(r.body, "{\"Name\":\"web\"}");
}

Test(http_custom, repeated_query_keys_and_keys_without_value)
{
    struct reply r;
    call("GET", "/tags?tag=a&x=1&tag=b%20c&tag=", NULL, &r);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "[a][b c][]pretty=absent");
    call("GET", "/tags?pretty", NULL, &r);
    cr_assert_str_eq(r.body, "pretty=(null)");
    call("GET", "/tags?pretty=", NULL, &r);
    cr_assert_str_eq(r.body, "pretty=");
}

Test(http, json_content_type_is_still_required_by_default)
{
    struct reply r;
    call_with("POST", "/later", "{}", "Content-Type: text/plain", &r);
    cr_assert_eq(r.status, 415);
    cr_assert_not_null(strstr(r.body, "unsupported-media-type"), "%s", r.body);
}

/* --- ward_service_def.configure: runs after the flags, before the server exists --- */

struct seen {
    int calls;
    char listen[64];
};

static void configure_bad_listen(struct ward_server_config *cfg, void *arg)
{
    struct seen *seen = arg;
    seen->calls++;
    snprintf(seen->listen, sizeof seen->listen, "%s", cfg->listen);
    cfg->listen = "not an address"; /* so ward_server_new fails and nothing starts */
}

static enum ward_err setup_never(struct ward_service *svc, void *arg)
{
    (void)svc;
    ((struct seen *)arg)->calls += 100;
    return WARD_ERR_OK;
}

Test(service, configure_sees_parsed_flags_and_shapes_the_server)
{
    struct seen seen = {0};
    const struct ward_service_def def = {
        .name = "configured", .version = "1", .summary = "test", .default_listen = "127.0.0.1:0",
        .configure = configure_bad_listen, .setup = setup_never, .arg = &seen,
    };
    char *argv[] = {(char *)(uintptr_t) "configured", (char *)(uintptr_t) "--listen",
                    (char *)(uintptr_t) "127.0.0.1:7", (char *)(uintptr_t) "--log-level",
                    (char *)(uintptr_t) "off", NULL};
    cr_assert_eq(ward_service_main(&def, 5, argv), 2, "the address configure set was used");
    cr_assert_eq(seen.calls, 1, "configure once, setup never");
    cr_assert_str_eq(seen.listen, "127.0.0.1:7");
}
