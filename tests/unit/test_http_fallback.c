/* test_http_fallback.c — ward_server_fallback and what a forwarding handler reads: the raw
 * target, the headers in order, the client address; routes keep their paths, a wrong
 * method goes to the fallback, and the body limit still holds. */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <ward/http.h>

static struct ward_server *srv;
static struct ward_metrics *metrics;
static atomic_int fallback_calls;

struct reply {
    long status;
    char body[16384];
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

/* method target (sent as is: no dot-segment squashing) with body (NULL: none) and up to
 * four extra header lines (NULL-terminated). */
static void call(const char *method, const char *target, const char *body,
                 const char *const *headers, struct reply *r)
{
    memset(r, 0, sizeof *r);
    char url[512];
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", ward_server_port(srv), target);
    CURL *c = curl_easy_init();
    cr_assert_not_null(c);
    struct curl_slist *h = NULL;
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i++)
        h = curl_slist_append(h, headers[i]);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
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

struct dump {
    char text[8192];
    size_t used;
    size_t seen, stop_after; /* stop_after 0: all */
};

__attribute__((format(printf, 2, 3))) static void dump_add(struct dump *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(d->text + d->used, sizeof d->text - d->used, fmt, ap);
    va_end(ap);
    if (w > 0 && (size_t)w < sizeof d->text - d->used)
        d->used += (size_t)w;
}

static bool dump_header(const char *name, const char *value, void *arg)
{
    struct dump *d = arg;
    dump_add(d, "h:%s=%s\n", name, value);
    d->seen++;
    return d->stop_after == 0 || d->seen < d->stop_after;
}

/* Answers 200 with everything a forwarder reads, one "key=value" line each, and the
 * method in X-Seen-Method (for HEAD, which gets no body). */
static void show(struct ward_req *req, void *arg)
{
    (void)arg;
    atomic_fetch_add(&fallback_calls, 1);
    struct dump d = {.used = 0};
    char addr[64], shortaddr[4];
    size_t len = 0;
    const char *body = ward_req_body(req, &len);
    ward_req_client_addr(req, addr, sizeof addr);
    ward_req_client_addr(req, shortaddr, sizeof shortaddr);
    dump_add(&d, "method=%s\ntarget=%s\n", ward_req_method(req), ward_req_target(req));
    dump_add(&d, "path=%s\naddr=%s\n", ward_req_path(req), addr);
    dump_add(&d, "short=%s\nid=%s\n", shortaddr, ward_req_id(req));
    char blen[32], text[1024];
    snprintf(blen, sizeof blen, "%zu", len);
    snprintf(text, sizeof text, "%.*s", (int)(len < sizeof text ? len : sizeof text - 1),
             body != NULL ? body : "");
    dump_add(&d, "body_len=%s\nbody=%s\n", blen, text);
    struct dump first = {.stop_after = 1};
    ward_req_headers(req, dump_header, &first);
    dump_add(&d, "headers_until_stop=%zu\n", first.seen);
    ward_req_headers(req, dump_header, &d);
    cr_assert_eq(ward_req_set_header(req, "X-Seen-Method", ward_req_method(req)), WARD_ERR_OK);
    ward_req_respond(req, 200, "text/plain", d.text, d.used);
}

static void *answer_later(void *arg)
{
    struct ward_req *req = arg;
    struct timespec ts = {0, 50 * 1000000L};
    nanosleep(&ts, NULL);
    char text[600];
    int n = snprintf(text, sizeof text, "later %s %s", ward_req_method(req), ward_req_target(req));
    ward_req_respond(req, 202, "text/plain", text, (size_t)n);
    return NULL;
}

/* The gateway's shape: /slow/... is answered later from another thread, the rest at once. */
static void forward(struct ward_req *req, void *arg)
{
    if (strncmp(ward_req_path(req), "/slow/", 6) == 0) {
        atomic_fetch_add(&fallback_calls, 1);
        pthread_t t;
        ward_req_suspend(req);
        cr_assert_eq(pthread_create(&t, NULL, answer_later, req), 0);
        pthread_detach(t);
        return;
    }
    show(req, arg);
}

static void routed(struct ward_req *req, void *arg)
{
    (void)arg;
    char text[600];
    int n = snprintf(text, sizeof text, "routed %s %s %s", ward_req_method(req),
                     ward_req_param(req, "id"), ward_req_target(req));
    ward_req_respond(req, 200, "text/plain", text, (size_t)n);
}

static struct ward_server *make_server(bool with_fallback)
{
    struct ward_server_config cfg;
    struct ward_server *s = NULL;
    ward_server_config_defaults(&cfg);
    cfg.shutdown_delay = 0;
    cfg.drain_timeout = 2000000000;
    cfg.access_log = false;
    cfg.body_limit = 64;
    atomic_store(&fallback_calls, 0);
    metrics = ward_metrics_new();
    cr_assert_eq(ward_server_new(&cfg, NULL, metrics, &s), WARD_ERR_OK);
    cr_assert_eq(ward_server_route(s, "GET", "/things/{id}", routed, NULL), WARD_ERR_OK);
    cr_assert_eq(ward_server_route(s, "POST", "/things", routed, NULL), WARD_ERR_OK);
    if (with_fallback)
        cr_assert_eq(ward_server_fallback(s, forward, NULL), WARD_ERR_OK);
    return s;
}

static void setup(void)
{
    srv = make_server(true);
    cr_assert_eq(ward_server_start(srv), WARD_ERR_OK);
}

static void teardown(void)
{
    ward_server_free(srv);
    ward_metrics_free(metrics);
}

static bool has(const struct reply *r, const char *line)
{
    return strstr(r->body, line) != NULL;
}

TestSuite(http_fallback, .init = setup, .fini = teardown, .timeout = 30);

Test(http_fallback, get_to_an_unrouted_path_sees_the_raw_target_headers_and_address)
{
    struct reply r;
    const char *const hdrs[] = {"X-First: 1", "X-Custom: hello world", "X-Dup: one", "X-Dup: two", NULL};
    call("GET", "/a%20b/c%2Fd?x=1&y=%2F&z", NULL, hdrs, &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(has(&r, "method=GET\n"), "%s", r.body);
    cr_assert(has(&r, "target=/a%20b/c%2Fd?x=1&y=%2F&z\n"), "%s", r.body);
    cr_assert(has(&r, "path=/a b/c/d\n"), "%s", r.body);
    cr_assert(has(&r, "addr=127.0.0.1\n"), "%s", r.body);
    cr_assert(has(&r, "short=127\n"), "truncated to the buffer: %s", r.body);
    cr_assert(has(&r, "headers_until_stop=1\n"), "%s", r.body);
    cr_assert(has(&r, "h:X-Custom=hello world\n"), "%s", r.body);
    /* in the order sent, the repeated one twice */
    const char *first = strstr(r.body, "h:X-First=1\n");
    const char *dup = strstr(r.body, "h:X-Custom=hello world\nh:X-Dup=one\nh:X-Dup=two\n");
    cr_assert_not_null(first, "%s", r.body);
    cr_assert_not_null(dup, "%s", r.body);
    cr_assert(first < dup);
    cr_assert(has(&r, "h:Host=127.0.0.1:"), "%s", r.body);
    /* a full request: it has its request id, echoed in the answer */
    const char *id = strstr(r.body, "id=");
    cr_assert_not_null(id);
    char echoed[80];
    snprintf(echoed, sizeof echoed, "X-Request-Id: %.32s\r\n", id + 3);
    cr_assert_not_null(strstr(r.headers, echoed), "%s / %s", r.headers, r.body);
}

Test(http_fallback, every_method_reaches_it_with_its_body)
{
    struct reply r;
    const char *const form[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    call("POST", "/upstream/orders?dry=1", "a=1&b=2", form, &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(has(&r, "method=POST\ntarget=/upstream/orders?dry=1\n"), "%s", r.body);
    cr_assert(has(&r, "body_len=7\nbody=a=1&b=2\n"), "any media type, read whole: %s", r.body);

    call("DELETE", "/upstream/orders/7", NULL, NULL, &r);
    cr_assert_eq(r.status, 200);
    cr_assert(has(&r, "method=DELETE\ntarget=/upstream/orders/7\n"), "%s", r.body);

    const char *const json[] = {"Content-Type: application/merge-patch+json", NULL};
    call("PATCH", "/upstream/orders/7", "{\"x\":1}", json, &r);
    cr_assert_eq(r.status, 200);
    cr_assert(has(&r, "method=PATCH\n"), "%s", r.body);
    cr_assert(has(&r, "body={\"x\":1}\n"), "%s", r.body);

    call("OPTIONS", "/upstream", NULL, NULL, &r);
    cr_assert_eq(r.status, 200);
    cr_assert(has(&r, "method=OPTIONS\n"), "%s", r.body);

    call("HEAD", "/upstream/orders/7", NULL, NULL, &r);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.len, 0);
    cr_assert_not_null(strstr(r.headers, "X-Seen-Method: HEAD\r\n"), "%s", r.headers);
    cr_assert_eq(atomic_load(&fallback_calls), 5);
}

Test(http_fallback, routes_keep_their_paths_and_a_wrong_method_goes_to_the_fallback)
{
    struct reply r;
    call("GET", "/things/9", NULL, NULL, &r);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "routed GET 9 /things/9");
    call("HEAD", "/things/9", NULL, NULL, &r); /* a GET route still answers HEAD */
    cr_assert_eq(r.status, 200);
    cr_assert_null(strstr(r.headers, "X-Seen-Method"), "%s", r.headers);
    cr_assert_eq(atomic_load(&fallback_calls), 0);

    call("DELETE", "/things/9", NULL, NULL, &r); /* routed path, no DELETE route: no 405 */
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(has(&r, "method=DELETE\ntarget=/things/9\n"), "%s", r.body);
    cr_assert_null(strstr(r.headers, "Allow:"), "%s", r.headers);
    call("POST", "/health", "{}", NULL, &r);
    cr_assert_eq(r.status, 200);
    cr_assert(has(&r, "method=POST\ntarget=/health\n"), "%s", r.body);
    cr_assert_eq(atomic_load(&fallback_calls), 2);

    call("GET", "/health", NULL, NULL, &r);
    cr_assert_eq(r.status, 200);
    cr_assert_not_null(strstr(r.headers, "application/health+json"), "%s", r.headers);
    cr_assert_eq(atomic_load(&fallback_calls), 2);
}

Test(http_fallback, routes_still_require_json_bodies)
{
    struct reply r;
    const char *const text[] = {"Content-Type: text/plain", NULL};
    call("POST", "/things", "hi", text, &r);
    cr_assert_eq(r.status, 415, "%s", r.body);
    cr_assert_eq(atomic_load(&fallback_calls), 0);
}

Test(http_fallback, suspends_and_answers_from_another_thread)
{
    for (int i = 0; i < 5; i++) {
        struct reply r;
        call("PUT", "/slow/job?n=%41", "{}", NULL, &r);
        cr_assert_eq(r.status, 202, "%s", r.body);
        cr_assert_str_eq(r.body, "later PUT /slow/job?n=%41");
    }
    cr_assert_eq(atomic_load(&fallback_calls), 5);
}

Test(http_fallback, a_body_over_the_limit_is_413_before_the_fallback)
{
    struct reply r;
    char big[200];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    call("POST", "/upstream/big", big, NULL, &r);
    cr_assert_eq(r.status, 413, "%s", r.body);
    cr_assert_not_null(strstr(r.body, "body-too-large"), "%s", r.body);
    /* chunked: no length up front, so read and dropped past the limit, then answered */
    const char *const chunked[] = {"Transfer-Encoding: chunked", NULL};
    call("PATCH", "/upstream/big", big, chunked, &r);
    cr_assert_eq(r.status, 413, "%s", r.body);
    cr_assert_eq(atomic_load(&fallback_calls), 0);
    /* within the limit it goes through */
    big[64] = '\0';
    call("POST", "/upstream/big", big, chunked, &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(has(&r, "body_len=64\n"), "%s", r.body);
    cr_assert(has(&r, "h:Transfer-Encoding=chunked\n"), "%s", r.body);
}

Test(http_fallback, the_deadline_header_is_checked_as_for_a_route)
{
    struct reply r;
    const char *const bad[] = {"X-Request-Timeout-Ms: soon", NULL};
    call("GET", "/upstream", NULL, bad, &r);
    cr_assert_eq(r.status, 400, "%s", r.body);
    cr_assert_eq(atomic_load(&fallback_calls), 0);
}

Test(http_fallback, metrics_label_it_fallback_by_method)
{
    struct reply r;
    call("DELETE", "/upstream/1", NULL, NULL, &r);
    call("DELETE", "/upstream/2", NULL, NULL, &r);
    call("BREW", "/pot", NULL, NULL, &r);
    call("GET", "/metrics", NULL, NULL, &r);
    cr_assert_eq(r.status, 200);
    cr_assert(has(&r, "http_requests_total{route=\"fallback\",method=\"DELETE\",status=\"200\"} 2\n"),
              "%s", r.body);
    cr_assert(has(&r, "http_requests_total{route=\"fallback\",method=\"other\",status=\"200\"} 1\n"),
              "unknown methods stay bounded: %s", r.body);
    cr_assert(has(&r, "http_request_duration_seconds_count{route=\"fallback\",method=\"DELETE\"} 2\n"),
              "%s", r.body);
    cr_assert_null(strstr(r.body, "route=\"unmatched\""), "%s", r.body);
}

Test(http_fallback, it_is_set_before_start_only)
{
    cr_assert_eq(ward_server_fallback(NULL, forward, NULL), WARD_ERR_INVAL);
    cr_assert_eq(ward_server_fallback(srv, NULL, NULL), WARD_ERR_INVAL, "running: refused");
    struct reply r;
    call("GET", "/still/forwarded", NULL, NULL, &r);
    cr_assert_eq(r.status, 200);
}

/* libmicrohttpd makes the request at its request line (on_uri); one it never hands to the
 * access handler must still be freed (ASan's leak check) and never counted in flight. */
Test(http_fallback, requests_refused_before_their_headers_leak_nothing)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(ward_server_port(srv))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    const char partial[] = "GET /gone?x=1 HTTP/1.1\r\nHost: a\r\n";
    cr_assert_eq(write(fd, partial, sizeof partial - 1), (ssize_t)(sizeof partial - 1));
    struct timespec ts = {0, 50 * 1000000L};
    nanosleep(&ts, NULL);
    close(fd);

    static char huge[48 * 1024];
    memcpy(huge, "X-Huge: ", 8);
    memset(huge + 8, 'h', sizeof huge - 9);
    const char *const hdrs[] = {huge, NULL};
    struct reply r;
    call("GET", "/big/headers", NULL, hdrs, &r);
    cr_assert_geq(r.status, 400, "libmicrohttpd refuses it itself");
    cr_assert_eq(atomic_load(&fallback_calls), 0);

    call("GET", "/metrics", NULL, NULL, &r);
    cr_assert(has(&r, "http_requests_in_flight 1\n"), "only /metrics itself: %s", r.body);
}

/* --- without a fallback (never set, or set back to NULL): 404 and 405 as before --- */

static void setup_none(void)
{
    srv = make_server(true);
    cr_assert_eq(ward_server_fallback(srv, NULL, NULL), WARD_ERR_OK);
    cr_assert_eq(ward_server_start(srv), WARD_ERR_OK);
}

TestSuite(http_no_fallback, .init = setup_none, .fini = teardown, .timeout = 30);

Test(http_no_fallback, unrouted_is_404_and_wrong_method_405)
{
    struct reply r;
    call("GET", "/upstream/x", NULL, NULL, &r);
    cr_assert_eq(r.status, 404, "%s", r.body);
    cr_assert_not_null(strstr(r.body, "not-found"), "%s", r.body);
    call("DELETE", "/things/9", NULL, NULL, &r);
    cr_assert_eq(r.status, 405, "%s", r.body);
    cr_assert_not_null(strstr(r.headers, "Allow: GET, HEAD\r\n"), "%s", r.headers);
    call("GET", "/things/9", NULL, NULL, &r);
    cr_assert_str_eq(r.body, "routed GET 9 /things/9");
    call("GET", "/metrics", NULL, NULL, &r);
    cr_assert(has(&r, "http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"} 1\n"),
              "%s", r.body);
    cr_assert_eq(atomic_load(&fallback_calls), 0);
}

Test(http_no_fallback, the_target_is_there_for_routes_too)
{
    struct reply r;
    call("GET", "/things/%39?q=%20", NULL, NULL, &r);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "routed GET 9 /things/%39?q=%20");
}
