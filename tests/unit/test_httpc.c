/* test_httpc.c — the blocking HTTP client against the fault server: keep-alive, timeouts
 * and deadlines, propagated headers, the size limit, JSON, headers, threads, metrics. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ward/clock.h>
#include <ward/httpc.h>
#include <ward/metrics.h>

#include "fault_server.h"
#include "trace.h"

#define PARENT "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

static struct fault_server *fs;

static void setup(void)
{
    fs = fault_server_start();
    cr_assert_not_null(fs);
}

static void teardown(void)
{
    fault_server_stop(fs);
}

TestSuite(httpc, .init = setup, .fini = teardown);

static struct ward_httpc *client_with(const struct ward_httpc_settings *s)
{
    struct ward_httpc *c = NULL;

    cr_assert_eq(ward_httpc_new(s, &c), WARD_ERR_OK);
    return c;
}

/* A URL on the fault server; the buffer is static, so one at a time per thread. */
static const char *url(const char *path)
{
    static _Thread_local char buf[256];

    snprintf(buf, sizeof buf, "http://127.0.0.1:%u%s", fault_server_port(fs), path);
    return buf;
}

static struct fault_request recorded(size_t i)
{
    struct fault_request r;

    cr_assert(fault_server_request(fs, i, &r), "request %zu was not recorded", i);
    return r;
}

/* A port on which nothing listens: bound, then closed. */
static unsigned closed_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    cr_assert_geq(fd, 0);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

Test(httpc, defaults_are_documented_values)
{
    struct ward_httpc_settings s;

    ward_httpc_settings_default(&s);
    cr_assert_eq(s.connect_timeout, WARD_NS_PER_S);
    cr_assert_eq(s.total_timeout, 10 * WARD_NS_PER_S);
    cr_assert_eq(s.max_body, (size_t)4 << 20);
    cr_assert_null(s.user_agent);
    cr_assert_eq(s.max_idle, 5);
    cr_assert_eq(s.idle_age, 20 * WARD_NS_PER_S);
    cr_assert_eq(s.pool_size, 64);
    cr_assert_null(s.clock);
}

Test(httpc, new_rejects_bad_settings)
{
    struct ward_httpc_settings s;
    struct ward_httpc *c = (struct ward_httpc *)&s; /* must stay untouched */

    ward_httpc_settings_default(&s);
    s.total_timeout = WARD_NS_PER_MS - 1;
    cr_assert_eq(ward_httpc_new(&s, &c), WARD_ERR_INVAL);
    ward_httpc_settings_default(&s);
    s.max_body = 0;
    cr_assert_eq(ward_httpc_new(&s, &c), WARD_ERR_INVAL);
    ward_httpc_settings_default(&s);
    s.max_idle = 0;
    cr_assert_eq(ward_httpc_new(&s, &c), WARD_ERR_INVAL);
    cr_assert_eq(c, (struct ward_httpc *)&s);
    cr_assert_eq(ward_httpc_new(NULL, NULL), WARD_ERR_INVAL);
    ward_httpc_free(NULL);
}

Test(httpc, sequential_calls_on_one_thread_reuse_one_connection)
{
    struct ward_httpc *c = client_with(NULL);
    struct ward_http_result res;

    for (int i = 0; i < 5; i++) {
        cr_assert_eq(ward_httpc_do(c, &(struct ward_http_call){.url = url("/seq")}, &res),
                     WARD_ERR_OK);
        cr_assert_eq(res.status, 200);
        cr_assert_eq(res.connects, i == 0 ? 1 : 0, "call %d opened %ld connections", i,
                     res.connects);
        cr_assert(res.sent);
        ward_http_result_fini(&res);
    }
    cr_assert_eq(fault_server_count(fs), 5);
    ward_httpc_free(c);
}

Test(httpc, an_http_error_status_is_not_a_transport_error)
{
    struct ward_httpc *c = client_with(NULL);
    struct ward_http_result res;

    fault_server_set(fs, &(struct fault_mode){.kind = FAULT_STATUS, .status = 503,
                                              .body = "down", .content_type = "text/plain"});
    cr_assert_eq(ward_httpc_do(c, &(struct ward_http_call){.url = url("/x")}, &res), WARD_ERR_OK);
    cr_assert_eq(res.status, 503);
    cr_assert_eq(res.body_len, 4);
    cr_assert_str_eq(res.body, "down");
    cr_assert_str_eq(ward_http_result_header(&res, "content-type"), "text/plain");
    ward_http_result_fini(&res);
    ward_http_result_fini(&res); /* twice is harmless */
    ward_httpc_free(c);
}

Test(httpc, refused_connection_is_connect_and_not_sent)
{
    struct ward_httpc *c = client_with(NULL);
    struct ward_http_result res;
    char u[64];

    snprintf(u, sizeof u, "http://127.0.0.1:%u/x", closed_port());
    cr_assert_eq(ward_httpc_do(c, &(struct ward_http_call){.url = u, .method = "POST"}, &res),
                 WARD_ERR_CONNECT);
    cr_assert_not(res.sent);
    cr_assert_eq(res.status, 0);
    cr_assert_null(res.body);
    ward_http_result_fini(&res);
    ward_httpc_free(c);
}

/* A listener whose accept queue is full and never drained drops new SYNs, so a connect
 * to it neither succeeds nor is refused: the connect timeout is what ends it. */
Test(httpc, connect_timeout_is_connect_and_not_sent)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int lfd = socket(AF_INET, SOCK_STREAM, 0), fill[3];
    struct ward_httpc_settings s;
    struct ward_httpc *c;
    struct ward_http_result res;
    char u[64];

    cr_assert_eq(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(lfd, 0), 0);
    cr_assert_eq(getsockname(lfd, (struct sockaddr *)&a, &len), 0);
    for (int i = 0; i < 3; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(fill[i], (struct sockaddr *)&a, sizeof a);
    }
    ward_httpc_settings_default(&s);
    s.connect_timeout = 100 * WARD_NS_PER_MS;
    c = client_with(&s);
    /* a handle that has sent a request before must not report this one as sent */
    cr_assert_eq(ward_httpc_do(c, &(struct ward_http_call){.url = url("/first")}, &res),
                 WARD_ERR_OK);
    ward_http_result_fini(&res);
    snprintf(u, sizeof u, "http://127.0.0.1:%u/x", ntohs(a.sin_port));
    cr_assert_eq(ward_httpc_do(c, &(struct ward_http_call){.url = u}, &res), WARD_ERR_CONNECT);
    cr_assert_not(res.sent);
    cr_assert_geq(res.elapsed, 90 * WARD_NS_PER_MS);
    cr_assert_lt(res.elapsed, 5 * WARD_NS_PER_S);
    ward_http_result_fini(&res);
    ward_httpc_free(c);
    for (int i = 0; i < 3; i++)
        close(fill[i]);
    close(lfd);
}

Test(httpc, a_hanging_server_hits_the_total_timeout)
{
    struct ward_httpc_settings s;
    struct ward_httpc *c;
    struct ward_http_result res;

    ward_httpc_settings_default(&s);
    s.total_timeout = 150 * WARD_NS_PER_MS;
    c = client_with(&s);
    fault_server_set(fs, &(struct fault_mode){.kind = FAULT_HANG});
    cr_assert_eq(ward_httpc_do(c, &(struct ward_http_call){.url = url("/hang")}, &res),
                 WARD_ERR_TIMEOUT);
    cr_assert(res.sent);
    cr_assert_null(res.body);
    cr_assert_geq(res.elapsed, 140 * WARD_NS_PER_MS);
    cr_assert_str_eq(recorded(0).timeout_ms, "150");
    ward_http_result_fini(&res);
    ward_httpc_free(c);
}

Test(httpc, a_hanging_server_hits_the_callers_deadline)
{
    struct ward_httpc *c = client_with(NULL);
    struct ward_http_result res;
    int64_t deadline = ward_clock_now(NULL) + 150 * WARD_NS_PER_MS;

    fault_server_set(fs, &(struct fault_mode){.kind = FAULT_HANG});
    cr_assert_eq(ward_httpc_do(c, &(struct ward_http_call){.url = url("/hang"),
                                                          .deadline = deadline},
                               &res),
                 WARD_ERR_DEADLINE);
    cr_assert(res.sent);
    cr_assert_geq(ward_clock_now(NULL), deadline - WARD_NS_PER_MS);
    ward_http_result_fini(&res);
    ward_httpc_free(c);
}

Test(httpc, a_spent_deadline_sends_nothing)
{
    struct ward_clock *clk = ward_clock_fake_new(5 * WARD_NS_PER_S);
    struct ward_httpc_settings s;
    struct ward_httpc *c;
    struct ward_http_result res;
    const int64_t deadlines[] = {5 * WARD_NS_PER_S, 4 * WARD_NS_PER_S,
                                 5 * WARD_NS_PER_S + WARD_NS_PER_MS - 1};

    ward_httpc_settings_default(&s);
    s.clock = clk;
    c = client_with(&s);
    for (size_t i = 0; i < sizeof deadlines / sizeof deadlines[0]; i++) {
        cr_assert_eq(ward_httpc_do(c, &(struct ward_http_call){.url = url("/x"),
                                                              .deadline = deadlines[i]},
                                   &res),
                     WARD_ERR_DEADLINE, "deadline %zu", i);
        cr_assert_not(res.sent);
        cr_assert_eq(res.status, 0);
        ward_http_result_fini(&res);
    }
    cr_assert_eq(fault_server_count(fs), 0);
    ward_httpc_free(c);
    ward_clock_free(clk);
}

Test(httpc, the_timeout_header_carries_the_remaining_budget)
{
    struct ward_clock *clk = ward_clock_fake_new(5 * WARD_NS_PER_S);
    struct ward_httpc_settings s;
    struct ward_httpc *c;
    struct ward_http_result res;
    const int64_t now = 5 * WARD_NS_PER_S;
    const int64_t deadlines[] = {now + 1500 * WARD_NS_PER_MS + 700 * WARD_NS_PER_US,
                                 now + 250 * WARD_NS_PER_MS, 0, now + 60 * WARD_NS_PER_S};
    const char *const expect[] = {"1500", "250", "10000", "10000"};

    ward_httpc_settings_default(&s);
    s.clock = clk;
    c = client_with(&s);
    for (size_t i = 0; i < 4; i++) {
        cr_assert_eq(ward_httpc_do(c, &(struct ward_http_call){.url = url("/t"),
                                                              .deadline = deadlines[i]},
                                   &res),
                     WARD_ERR_OK);
        ward_http_result_fini(&res);
        cr_assert_str_eq(recorded(i).timeout_ms, expect[i], "deadline %zu", i);
    }
    ward_httpc_free(c);
    ward_clock_free(clk);
}

Test(httpc, request_id_and_a_child_traceparent_are_propagated)
{
    struct ward_httpc *c = client_with(NULL);
    struct ward_http_result res;
    struct ward_trace t;
    struct fault_request r;

    cr_assert_eq(ward_httpc_do(c, &(struct ward_http_call){.url = url("/t"),
                                                          .request_id = "req-42",
                                                          .traceparent = PARENT},
                               &res),
                 WARD_ERR_OK);
    ward_http_result_fini(&res);
    r = recorded(0);
    cr_assert_str_eq(r.request_id, "req-42");
    cr_assert_eq(strlen(r.traceparent), WARD_TRACEPARENT_LEN);
    cr_assert(ward__trace_continue(&t, r.traceparent), "invalid: %s", r.traceparent);
    cr_assert_str_eq(t.trace_id, "0af7651916cd43dd8448eb211c80319c");
    cr_assert_str_neq(t.parent_id, "b7ad6b7169203331");
    cr_assert_str_eq(t.flags, "01");

    /* no parent: a new valid trace, and no X-Request-Id */
    cr_assert_eq(ward_httpc_do(c, &(struct ward_http_call){.url = url("/t")}, &res), WARD_ERR_OK);
    ward_http_result_fini(&res);
    r = recorded(1);
    cr_assert_str_eq(r.request_id, "");
    cr_assert(ward__trace_continue(&t, r.traceparent), "invalid: %s", r.traceparent);
    cr_assert_str_neq(t.trace_id, "0af7651916cd43dd8448eb211c80319c");
    ward_httpc_free(c);
}

Test(httpc, a_post_sends_its_body_type_and_idempotency_key)
{
    struct ward_httpc *c = client_with(NULL);
    struct ward_http_result res;
    struct fault_request r;
    const char *body = "{\"amount\":\"1.00\"}";

    cr_assert_eq(ward_httpc_do(c, &(struct ward_http_call){.method = "POST",
                                                          .url = url("/payments?x=1"),
                                                          .body = body,
                                                          .body_len = strlen(body),
                                                          .content_type = "application/json",
                                                          .idempotency_key = "key-7"},
                               &res),
                 WARD_ERR_OK);
    ward_http_result_fini(&res);
    r = recorded(0);
    cr_assert_str_eq(r.method, "POST");
    cr_assert_str_eq(r.path, "/payments");
    cr_assert_str_eq(r.body, body);
    cr_assert_eq(r.body_len, strlen(body));
    cr_assert_str_eq(r.content_type, "application/json");
    cr_assert_str_eq(r.idempotency_key, "key-7");
    ward_httpc_free(c);
}

Test(httpc, other_methods_and_a_body_without_a_type)
{
    struct ward_httpc *c = client_with(NULL);
    struct ward_http_result res;
    const char *methods[] = {"PUT", "DELETE", "HEAD", "PATCH"};

    for (size_t i = 0; i < 4; i++) {
        cr_assert_eq(ward_httpc_do(c, &(struct ward_http_call){.method = methods[i],
                                                              .url = url("/m"),
                                                              .body = i == 0 ? "raw" : NULL,
                                                              .body_len = i == 0 ? 3 : 0},
                                   &res),
                     WARD_ERR_OK);
        cr_assert_eq(res.status, 200);
        if (i == 2)
            cr_assert_eq(res.body_len, 0, "HEAD has no body");
        ward_http_result_fini(&res);
        cr_assert_str_eq(recorded(i).method, methods[i]);
    }
    cr_assert_str_eq(recorded(0).body, "raw");
    cr_assert_str_eq(recorded(0).content_type, "", "no form type is made up");
    ward_httpc_free(c);
}

Test(httpc, unsafe_header_values_are_refused_before_sending)
{
    struct ward_httpc *c = client_with(NULL);
    struct ward_http_result res;
    const char *const smuggle[] = {"X-A: 1\r\nX-B: 2", NULL};
    const char *const no_colon[] = {"X-A", NULL};
    const struct ward_http_call calls[] = {
        {.url = url("/x"), .headers = smuggle},
        {.url = url("/x"), .headers = no_colon},
        {.url = url("/x"), .request_id = "has space"},
        {.url = url("/x"), .request_id = ""},
        {.url = url("/x"), .idempotency_key = "k\n"},
        {.url = url("/x"), .content_type = "a/b\r\nX: y"},
        {.url = url("/x"), .body_len = 3},
        {.url = url("/x"), .method = "GET /other HTTP/1.1\r\nX:"},
        {.url = url("/x"), .method = ""},
        {.url = NULL},
        {.url = "file:///etc/passwd"},
    };

    for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
        cr_assert_eq(ward_httpc_do(c, &calls[i], &res), WARD_ERR_INVAL, "call %zu", i);
        cr_assert_not(res.sent, "call %zu", i);
        ward_http_result_fini(&res);
    }
    cr_assert_eq(ward_httpc_do(NULL, &calls[0], &res), WARD_ERR_INVAL);
    cr_assert_eq(ward_httpc_do(c, NULL, &res), WARD_ERR_INVAL);
    cr_assert_eq(fault_server_count(fs), 0);
    ward_httpc_free(c);
}

Test(httpc, a_closed_connection_is_a_transport_error_after_sending)
{
    struct ward_httpc *c = client_with(NULL);
    struct ward_http_result res;

    fault_server_set(fs, &(struct fault_mode){.kind = FAULT_CLOSE});
    cr_assert_eq(ward_httpc_do(c, &(struct ward_http_call){.url = url("/x")}, &res),
                 WARD_ERR_TRANSPORT);
    cr_assert(res.sent);
    cr_assert_null(res.body);
    ward_http_result_fini(&res);
    ward_httpc_free(c);
}

Test(httpc, a_body_over_the_limit_is_too_large)
{
    struct ward_httpc_settings s;
    struct ward_httpc *c;
    struct ward_http_result res;

    ward_httpc_settings_default(&s);
    s.max_body = 100000;
    c = client_with(&s);
    fault_server_push(fs, &(struct fault_mode){.kind = FAULT_BIG, .big_bytes = 100000}, 1);
    fault_server_push(fs, &(struct fault_mode){.kind = FAULT_BIG, .big_bytes = 100001}, 1);
    cr_assert_eq(ward_httpc_do(c, &(struct ward_http_call){.url = url("/big")}, &res),
                 WARD_ERR_OK);
    cr_assert_eq(res.body_len, 100000);
    cr_assert_eq(res.body[99999], 'x');
    cr_assert_eq(res.body[100000], '\0');
    ward_http_result_fini(&res);
    cr_assert_eq(ward_httpc_do(c, &(struct ward_http_call){.url = url("/big")}, &res),
                 WARD_ERR_TOO_LARGE);
    cr_assert_eq(res.status, 200);
    cr_assert(res.sent);
    cr_assert_null(res.body);
    ward_http_result_fini(&res);
    ward_httpc_free(c);
}

/* Answers one connection with a body delimited by the close, so no Content-Length
 * warns the client and only the body callback can stop it. */
static void *raw_server(void *arg)
{
    int lfd = *(int *)arg, fd = accept(lfd, NULL, NULL);
    static const char head[] = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n";
    char chunk[4096];
    char req[4096];

    memset(chunk, 'y', sizeof chunk);
    if (fd >= 0) {
        (void)!read(fd, req, sizeof req);
        (void)!write(fd, head, sizeof head - 1);
        for (int i = 0; i < 64 && write(fd, chunk, sizeof chunk) > 0; i++)
            ;
        close(fd);
    }
    return NULL;
}

Test(httpc, a_body_without_length_is_cut_at_the_limit)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct ward_httpc_settings s;
    struct ward_httpc *c;
    struct ward_http_result res;
    pthread_t t;
    char u[64];

    cr_assert_eq(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(lfd, 4), 0);
    cr_assert_eq(getsockname(lfd, (struct sockaddr *)&a, &len), 0);
    cr_assert_eq(pthread_create(&t, NULL, raw_server, &lfd), 0);
    ward_httpc_settings_default(&s);
    s.max_body = 10000;
    c = client_with(&s);
    snprintf(u, sizeof u, "http://127.0.0.1:%u/raw", ntohs(a.sin_port));
    cr_assert_eq(ward_httpc_do(c, &(struct ward_http_call){.url = u}, &res), WARD_ERR_TOO_LARGE);
    cr_assert_eq(res.status, 200);
    cr_assert_null(res.body);
    ward_http_result_fini(&res);
    ward_httpc_free(c);
    pthread_join(t, NULL);
    close(lfd);
}

struct seen_headers {
    size_t n, stop_after;
    bool retry_after, custom;
};

static bool see_header(const char *name, const char *value, void *arg)
{
    struct seen_headers *s = arg;
    s->n++;
    s->retry_after |= strcasecmp(name, "Retry-After") == 0 && strcmp(value, "7") == 0;
    s->custom |= strcasecmp(name, "X-Custom") == 0 && strcmp(value, "v 1") == 0;
    return s->stop_after == 0 || s->n < s->stop_after;
}

Test(httpc, response_headers_are_found_by_name_in_any_case)
{
    struct ward_httpc *c = client_with(NULL);
    struct ward_http_result res;

    fault_server_set(fs, &(struct fault_mode){.kind = FAULT_429, .retry_after_s = 7,
                                              .headers = {{"X-Custom", "  v 1 "}}});
    cr_assert_eq(ward_httpc_do(c, &(struct ward_http_call){.url = url("/x")}, &res), WARD_ERR_OK);
    cr_assert_eq(res.status, 429);
    cr_assert_str_eq(ward_http_result_header(&res, "Retry-After"), "7");
    cr_assert_str_eq(ward_http_result_header(&res, "retry-after"), "7");
    cr_assert_str_eq(ward_http_result_header(&res, "X-CUSTOM"), "v 1");
    cr_assert_not_null(ward_http_result_header(&res, "Content-Type"));
    cr_assert_null(ward_http_result_header(&res, "X-Absent"));
    cr_assert_null(ward_http_result_header(&res, "Retry"));
    /* every header in turn, as received (what a proxy forwards) */
    struct seen_headers sh = {0};
    ward_http_result_headers(&res, see_header, &sh);
    cr_assert(sh.retry_after && sh.custom, "%zu headers seen", sh.n);
    cr_assert_geq(sh.n, 3);
    struct seen_headers first = {.stop_after = 1};
    ward_http_result_headers(&res, see_header, &first);
    cr_assert_eq(first.n, 1, "stops when told");
    ward_http_result_fini(&res);
    cr_assert_null(ward_http_result_header(&res, "Retry-After"));
    ward_httpc_free(c);
}

Test(httpc, json_calls_send_json_and_parse_json_answers)
{
    struct ward_httpc *c = client_with(NULL);
    struct ward_http_result res;
    json_t *body = json_pack("{s:i}", "a", 1), *out = NULL;
    struct fault_request r;

    cr_assert_eq(ward_httpc_json(c, &(struct ward_http_call){.method = "POST", .url = url("/j")},
                                 body, &res, &out),
                 WARD_ERR_OK);
    cr_assert_eq(res.status, 200);
    cr_assert_not_null(out);
    cr_assert_str_eq(json_string_value(json_object_get(out, "method")), "POST");
    cr_assert_str_eq(json_string_value(json_object_get(out, "path")), "/j");
    json_decref(out);
    ward_http_result_fini(&res);
    r = recorded(0);
    cr_assert_str_eq(r.body, "{\"a\":1}");
    cr_assert_str_eq(r.content_type, "application/json");
    json_decref(body);
    ward_httpc_free(c);
}

Test(httpc, json_answers_that_are_not_json_leave_out_null)
{
    struct ward_httpc *c = client_with(NULL);
    struct ward_http_result res;
    json_t *out = (json_t *)&res;
    const struct fault_mode modes[] = {
        {.kind = FAULT_STATUS, .status = 502, .body = "{broken"},
        {.kind = FAULT_OK, .body = "{\"a\":1}", .content_type = "text/plain"},
        {.kind = FAULT_STATUS, .status = 404, .body = "{\"title\":\"nope\"}",
         .content_type = "application/problem+json; charset=utf-8"},
        {.kind = FAULT_OK, .body = "true"},
    };

    for (size_t i = 0; i < 4; i++)
        fault_server_push(fs, &modes[i], 1);
    cr_assert_eq(ward_httpc_json(c, &(struct ward_http_call){.url = url("/j")}, NULL, &res, &out),
                 WARD_ERR_OK);
    cr_assert_eq(res.status, 502);
    cr_assert_null(out, "malformed JSON");
    ward_http_result_fini(&res);
    cr_assert_eq(ward_httpc_json(c, &(struct ward_http_call){.url = url("/j")}, NULL, &res, &out),
                 WARD_ERR_OK);
    cr_assert_null(out, "not a JSON type");
    ward_http_result_fini(&res);
    cr_assert_eq(ward_httpc_json(c, &(struct ward_http_call){.url = url("/j")}, NULL, &res, &out),
                 WARD_ERR_OK);
    cr_assert_eq(res.status, 404);
    cr_assert_str_eq(json_string_value(json_object_get(out, "title")), "nope");
    json_decref(out);
    ward_http_result_fini(&res);
    cr_assert_eq(ward_httpc_json(c, &(struct ward_http_call){.url = url("/j")}, NULL, &res, &out),
                 WARD_ERR_OK);
    cr_assert(json_is_true(out), "any JSON value");
    json_decref(out);
    ward_http_result_fini(&res);
    cr_assert_str_eq(recorded(0).method, "GET");
    cr_assert_eq(recorded(0).body_len, 0);
    ward_httpc_free(c);
}

struct worker {
    struct ward_httpc *c;
    int id;
    int wrong;
};

#define THREADS 8
#define CALLS 25

static void *work(void *arg)
{
    struct worker *w = arg;
    char path[64];

    for (int j = 0; j < CALLS; j++) {
        struct ward_http_result res;
        json_t *out = NULL;
        snprintf(path, sizeof path, "/w%d/c%d", w->id, j);
        if (ward_httpc_json(w->c, &(struct ward_http_call){.url = url(path)}, NULL, &res, &out) !=
                WARD_ERR_OK ||
            res.status != 200 || out == NULL ||
            strcmp(json_string_value(json_object_get(out, "path")), path) != 0)
            w->wrong++;
        json_decref(out);
        ward_http_result_fini(&res);
    }
    return NULL;
}

Test(httpc, many_threads_share_one_client_and_each_gets_its_answers)
{
    struct ward_httpc *c = client_with(NULL);
    struct worker w[THREADS];
    pthread_t t[THREADS];

    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){.c = c, .id = i};
        cr_assert_eq(pthread_create(&t[i], NULL, work, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        cr_assert_eq(w[i].wrong, 0, "thread %d got %d wrong answers", i, w[i].wrong);
    }
    cr_assert_eq(fault_server_count(fs), THREADS * CALLS);
    ward_httpc_free(c);
}

Test(httpc, calls_are_counted_in_metrics)
{
    struct ward_metrics *reg = ward_metrics_new();
    struct ward_httpc *c = client_with(NULL);
    struct ward_http_result res;
    char u[64], *text;
    static const char *const lines[] = {
        "ward_http_client_requests_total{method=\"GET\",status=\"5xx\"} 1\n",
        "ward_http_client_requests_total{method=\"GET\",status=\"2xx\"} 1\n",
        "ward_http_client_requests_total{method=\"other\",status=\"2xx\"} 1\n",
        "ward_http_client_requests_total{method=\"GET\",status=\"error\"} 1\n",
        "ward_http_client_request_duration_seconds_count{method=\"GET\"} 3\n",
        "ward_http_client_request_duration_seconds_count{method=\"other\"} 1\n",
    };

    cr_assert_eq(ward_httpc_export(c, reg), WARD_ERR_OK);
    cr_assert_eq(ward_httpc_export(c, reg), WARD_ERR_STATE);
    fault_server_push(fs, &(struct fault_mode){.kind = FAULT_STATUS, .status = 503}, 1);
    cr_assert_eq(ward_httpc_do(c, &(struct ward_http_call){.url = url("/a")}, &res), WARD_ERR_OK);
    ward_http_result_fini(&res);
    cr_assert_eq(ward_httpc_do(c, &(struct ward_http_call){.url = url("/a")}, &res), WARD_ERR_OK);
    ward_http_result_fini(&res);
    cr_assert_eq(ward_httpc_do(c, &(struct ward_http_call){.method = "BREW", .url = url("/a")},
                               &res),
                 WARD_ERR_OK);
    ward_http_result_fini(&res);
    snprintf(u, sizeof u, "http://127.0.0.1:%u/x", closed_port());
    cr_assert_eq(ward_httpc_do(c, &(struct ward_http_call){.url = u}, &res), WARD_ERR_CONNECT);
    ward_http_result_fini(&res);
    text = ward_metrics_render(reg, NULL);
    cr_assert_not_null(text);
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        cr_assert_not_null(strstr(text, lines[i]), "missing %s in:\n%s", lines[i], text);
    free(text);
    ward_httpc_free(c);
    ward_metrics_free(reg);
}
