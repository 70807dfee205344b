/* test_rclient.c — unit tests of the resilient client against the fault server: deadline
 * and trace propagation, retries and their bounds, Retry-After, the retry budget, the
 * bulkhead under concurrency, the limiter, and the breaker's whole cycle with metrics. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ward/rclient.h>

#include "fault_server.h"

#define MS WARD_NS_PER_MS
#define S WARD_NS_PER_S
#define T0 (1000 * S) /* the fake clock's start */
#define PARENT_TRACE "4bf92f3577b34da6a3ce929d0e0e4736"
#define PARENT_SPAN "00f067aa0ba902b7"

static struct fault_server *fs;
static struct ward_clock *fc;
static struct ward_metrics *reg;
static struct ward_rclient *rc;
static struct ward_http_result res;
static char base_url[64];

static void setup(void)
{
    fs = fault_server_start();
    fc = ward_clock_fake_new(T0);
    reg = ward_metrics_new();
    cr_assert(fs != NULL && fc != NULL && reg != NULL);
    snprintf(base_url, sizeof base_url, "http://127.0.0.1:%u", (unsigned)fault_server_port(fs));
}

static void teardown(void)
{
    ward_http_result_fini(&res);
    ward_rclient_free(rc);
    fault_server_stop(fs);
    ward_metrics_free(reg);
    ward_clock_free(fc);
}

TestSuite(rclient, .init = setup, .fini = teardown, .timeout = 30);

/* The defaults for dependency "dep" on the fault server and the fake clock. */
static void base(struct ward_rclient_settings *s)
{
    ward_rclient_settings_default(s);
    s->name = "dep";
    s->base_url = base_url;
    s->clock = fc;
}

static void start(const struct ward_rclient_settings *s)
{
    cr_assert_eq(ward_rclient_new(s, &rc), WARD_ERR_OK);
    cr_assert_eq(ward_rclient_export(rc, reg), WARD_ERR_OK);
}

/* One call; its result stays in res until the next one. */
static enum ward_err call(const struct ward_http_call *c)
{
    ward_http_result_fini(&res);
    return ward_rclient_call(rc, c, &res);
}

static enum ward_err get(void)
{
    return call(&(struct ward_http_call){.url = "/x"});
}

static bool two_in_a_row(const struct ward_breaker_counts *c, void *arg)
{
    (void)arg;
    return c->consecutive_failures >= 2;
}

static struct fault_request recorded(size_t i)
{
    struct fault_request r;

    cr_assert(fault_server_request(fs, i, &r), "no request %zu", i);
    return r;
}

static long timeout_ms(size_t i)
{
    return strtol(recorded(i).timeout_ms, NULL, 10);
}

/* The value of one series (name{labels}) in the rendered registry; -1 when absent. */
static double metric(const char *series)
{
    char *text = ward_metrics_render(reg, NULL);
    size_t n = strlen(series);
    double v = -1;

    cr_assert_not_null(text);
    for (const char *p = text; p != NULL && *p != '\0'; p = strchr(p, '\n'), p = p ? p + 1 : p)
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            v = strtod(p + n + 1, NULL);
    free(text);
    return v;
}

static void push(struct fault_mode m, int times)
{
    cr_assert(fault_server_push(fs, &m, times));
}

static void set(struct fault_mode m)
{
    cr_assert(fault_server_set(fs, &m));
}

Test(rclient, callee_sees_the_remaining_budget_on_the_real_clock)
{
    struct ward_rclient_settings s;
    long ms;

    base(&s);
    s.clock = NULL;
    start(&s);
    cr_assert_eq(call(&(struct ward_http_call){
                     .url = "/x", .deadline = ward_clock_now(NULL) + 2 * S}),
                 WARD_ERR_OK);
    ms = timeout_ms(0);
    cr_assert(ms <= 2000 && ms >= 1950, "X-Request-Timeout-Ms %ld", ms);
    cr_assert_eq(res.status, 200);
}

Test(rclient, deadline_is_the_earlier_of_the_callers_and_the_call_timeout)
{
    struct ward_rclient_settings s;

    base(&s);
    s.call_timeout_ns = 3 * S;
    start(&s);
    cr_assert_eq(call(&(struct ward_http_call){.url = "/x", .deadline = T0 + 1500 * MS}),
                 WARD_ERR_OK);
    cr_assert_eq(get(), WARD_ERR_OK);
    cr_assert_eq(call(&(struct ward_http_call){.url = "/x", .deadline = T0 + 60 * S}),
                 WARD_ERR_OK);
    cr_assert_str_eq(recorded(0).timeout_ms, "1500");
    cr_assert_str_eq(recorded(1).timeout_ms, "3000");
    cr_assert_str_eq(recorded(2).timeout_ms, "3000");
}

Test(rclient, spent_deadline_sends_nothing)
{
    struct ward_rclient_settings s;

    base(&s);
    start(&s);
    cr_assert_eq(call(&(struct ward_http_call){.url = "/x", .deadline = T0}), WARD_ERR_DEADLINE);
    cr_assert_eq(call(&(struct ward_http_call){.url = "/x", .deadline = T0 + MS / 2}),
                 WARD_ERR_DEADLINE);
    cr_assert_eq(res.status, 0);
    cr_assert_eq(fault_server_count(fs), 0);
    cr_assert_eq(metric("ward_client_calls_total{dependency=\"dep\",result=\"deadline\"}"), 2);
}

Test(rclient, request_id_and_trace_go_to_every_attempt_with_a_new_span_each)
{
    struct ward_rclient_settings s;
    struct fault_request a, b;
    const char *prefix = "00-" PARENT_TRACE "-";

    base(&s);
    start(&s);
    push((struct fault_mode){.kind = FAULT_STATUS, .status = 503}, 1);
    cr_assert_eq(call(&(struct ward_http_call){
                     .url = "/x",
                     .request_id = "req-42",
                     .traceparent = "00-" PARENT_TRACE "-" PARENT_SPAN "-01"}),
                 WARD_ERR_OK);
    cr_assert_eq(fault_server_count(fs), 2);
    a = recorded(0);
    b = recorded(1);
    cr_assert_str_eq(a.request_id, "req-42");
    cr_assert_str_eq(b.request_id, "req-42");
    cr_assert_eq(strlen(a.traceparent), 55);
    cr_assert_eq(strncmp(a.traceparent, prefix, strlen(prefix)), 0, "%s", a.traceparent);
    cr_assert_eq(strncmp(b.traceparent, prefix, strlen(prefix)), 0, "%s", b.traceparent);
    cr_assert_str_eq(a.traceparent + 52, "-01");
    cr_assert_str_neq(a.traceparent, b.traceparent);
    cr_assert_null(strstr(a.traceparent, PARENT_SPAN));
    cr_assert_null(strstr(b.traceparent, PARENT_SPAN));
}

Test(rclient, two_503s_then_200_succeeds_on_the_third_attempt_after_exact_backoffs)
{
    struct ward_rclient_settings s;

    base(&s);
    s.retry.policy.jitter = WARD_RETRY_JITTER_NONE;
    start(&s);
    push((struct fault_mode){.kind = FAULT_STATUS, .status = 503}, 2);
    cr_assert_eq(get(), WARD_ERR_OK);
    cr_assert_eq(res.status, 200);
    cr_assert_eq(fault_server_count(fs), 3);
    cr_assert_eq(ward_clock_now(fc) - T0, 300 * MS); /* 100 ms, then 200 ms */
    cr_assert_eq(metric("ward_client_retries_total{dependency=\"dep\"}"), 2);
    cr_assert_eq(metric("ward_client_calls_total{dependency=\"dep\",result=\"ok\"}"), 1);
}

/* Each backoff is seen by the callee as that much less budget: with equal jitter the n-th
 * lies in [d/2, d] for d = 100 ms × 2^(n-1). */
Test(rclient, backoffs_stay_within_the_jitter_bounds)
{
    struct ward_rclient_settings s;

    base(&s);
    s.retry.policy.jitter = WARD_RETRY_JITTER_EQUAL;
    start(&s);
    for (size_t i = 0; i < 10; i++) {
        long d1, d2;

        push((struct fault_mode){.kind = FAULT_STATUS, .status = 503}, 2);
        cr_assert_eq(get(), WARD_ERR_OK);
        d1 = timeout_ms(3 * i) - timeout_ms(3 * i + 1);
        d2 = timeout_ms(3 * i + 1) - timeout_ms(3 * i + 2);
        cr_assert(d1 >= 50 && d1 <= 100, "first backoff %ld ms", d1);
        cr_assert(d2 >= 100 && d2 <= 200, "second backoff %ld ms", d2);
    }
}

Test(rclient, post_is_retried_only_with_an_idempotency_key)
{
    struct ward_rclient_settings s;

    base(&s);
    start(&s);
    set((struct fault_mode){.kind = FAULT_STATUS, .status = 503});
    cr_assert_eq(call(&(struct ward_http_call){.method = "POST", .url = "/pay"}),
                 WARD_ERR_HTTP_STATUS);
    cr_assert_eq(res.status, 503);
    cr_assert_eq(fault_server_count(fs), 1);
    fault_server_reset(fs);
    push((struct fault_mode){.kind = FAULT_STATUS, .status = 503}, 1);
    cr_assert_eq(call(&(struct ward_http_call){
                     .method = "POST", .url = "/pay", .idempotency_key = "k-1"}),
                 WARD_ERR_OK);
    cr_assert_eq(fault_server_count(fs), 2);
    cr_assert_str_eq(recorded(1).idempotency_key, "k-1");
    cr_assert_str_eq(recorded(1).method, "POST");
}

Test(rclient, client_errors_and_500_are_never_retried)
{
    static const unsigned codes[] = {400, 404, 409, 500, 501};
    struct ward_rclient_settings s;

    base(&s);
    start(&s);
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        set((struct fault_mode){.kind = FAULT_STATUS, .status = codes[i]});
        cr_assert_eq(get(), WARD_ERR_HTTP_STATUS);
        cr_assert_eq(res.status, (int)codes[i]);
        cr_assert_not_null(strstr(res.body, "\"title\""), "the problem body is kept");
        cr_assert_eq(fault_server_count(fs), i + 1);
    }
    cr_assert_eq(ward_clock_now(fc), T0);
}

Test(rclient, connect_failures_are_retried_even_for_post)
{
    struct ward_rclient_settings s;
    struct ward_breaker_stats bs;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    char url[64];

    /* a port that was just free: nothing listens there */
    cr_assert(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    close(fd);
    snprintf(url, sizeof url, "http://127.0.0.1:%u", (unsigned)ntohs(a.sin_port));
    base(&s);
    s.base_url = url;
    start(&s);
    cr_assert_eq(call(&(struct ward_http_call){.method = "POST", .url = "/pay"}),
                 WARD_ERR_CONNECT);
    ward_breaker_stats(ward_rclient_breaker(rc), &bs);
    cr_assert_eq(bs.counts.requests, 3);
    cr_assert_eq(bs.counts.consecutive_failures, 3);
    cr_assert_eq(metric("ward_client_calls_total{dependency=\"dep\",result=\"connect\"}"), 1);
}

Test(rclient, closed_connections_are_retried_then_reported_as_transport)
{
    struct ward_rclient_settings s;

    base(&s);
    start(&s);
    set((struct fault_mode){.kind = FAULT_CLOSE});
    cr_assert_eq(get(), WARD_ERR_TRANSPORT);
    cr_assert_eq(fault_server_count(fs), 3);
}

Test(rclient, retry_after_is_honoured_exactly)
{
    struct ward_rclient_settings s;

    base(&s);
    start(&s);
    push((struct fault_mode){.kind = FAULT_429, .retry_after_s = 2}, 1);
    cr_assert_eq(get(), WARD_ERR_OK);
    cr_assert_eq(fault_server_count(fs), 2);
    cr_assert_eq(ward_clock_now(fc) - T0, 2 * S);
}

Test(rclient, retry_after_past_the_deadline_fails_at_once)
{
    struct ward_rclient_settings s;

    base(&s);
    s.call_timeout_ns = 1 * S;
    start(&s);
    set((struct fault_mode){.kind = FAULT_429, .retry_after_s = 5});
    cr_assert_eq(get(), WARD_ERR_DEADLINE);
    cr_assert_eq(res.status, 429, "the last response is kept");
    cr_assert_eq(ward_clock_now(fc), T0);
    cr_assert_eq(fault_server_count(fs), 1);
}

Test(rclient, an_attempt_timeout_is_retried_within_the_call)
{
    struct ward_rclient_settings s;
    struct ward_breaker_stats bs;

    base(&s);
    s.attempt_timeout_ns = 200 * MS;
    start(&s);
    push((struct fault_mode){.kind = FAULT_HANG}, 1);
    cr_assert_eq(get(), WARD_ERR_OK);
    cr_assert_eq(fault_server_count(fs), 2);
    cr_assert_str_eq(recorded(0).timeout_ms, "200");
    ward_breaker_stats(ward_rclient_breaker(rc), &bs);
    cr_assert_eq(bs.counts.total_failures, 1);
    cr_assert_eq(bs.counts.total_successes, 1);
}

Test(rclient, the_callers_deadline_passing_mid_call_is_not_held_against_the_dependency)
{
    struct ward_rclient_settings s;
    struct ward_breaker_stats bs;

    base(&s);
    start(&s);
    push((struct fault_mode){.kind = FAULT_HANG}, 1);
    cr_assert_eq(call(&(struct ward_http_call){.url = "/x", .deadline = T0 + 200 * MS}),
                 WARD_ERR_DEADLINE);
    cr_assert_eq(fault_server_count(fs), 1, "not retried");
    ward_breaker_stats(ward_rclient_breaker(rc), &bs);
    cr_assert_eq(bs.counts.requests, 0, "excluded from the breaker's counts");
    cr_assert_eq(bs.counts.total_failures, 0);
}

Test(rclient, its_own_call_timeout_passing_is_held_against_the_dependency)
{
    struct ward_rclient_settings s;
    struct ward_breaker_stats bs;

    base(&s);
    s.clock = NULL;               /* the real one: the time has to pass for rc too */
    s.call_timeout_ns = 200 * MS; /* rc's own limit, not the caller's: the dependency is slow */
    start(&s);
    push((struct fault_mode){.kind = FAULT_HANG}, 1);
    enum ward_err err = get();
    cr_assert_eq(err, WARD_ERR_DEADLINE, "%s", ward_strerror(err));
    cr_assert_eq(fault_server_count(fs), 1, "no time left for a retry");
    ward_breaker_stats(ward_rclient_breaker(rc), &bs);
    cr_assert_eq(bs.counts.total_failures, 1, "a dependency that did not answer in time failed");
}

Test(rclient, a_breaker_that_opens_between_attempts_stops_the_retries)
{
    struct ward_rclient_settings s;

    base(&s);
    s.breaker.settings.ready_to_trip = two_in_a_row;
    start(&s);
    set((struct fault_mode){.kind = FAULT_STATUS, .status = 503});
    cr_assert_eq(get(), WARD_ERR_OPEN);
    cr_assert_eq(res.status, 503, "the last response is kept");
    cr_assert_eq(fault_server_count(fs), 2);
}

/* Two clients guarding one dependency with one breaker: failures through one open it for
 * the other, which then refuses without a request; the owner frees it, not the clients. */
Test(rclient, clients_sharing_a_breaker_open_and_refuse_together)
{
    struct ward_breaker_settings bs;
    ward_breaker_settings_default(&bs);
    bs.name = "shared";
    bs.clock = fc;
    bs.ready_to_trip = two_in_a_row;
    struct ward_breaker *br = NULL;
    cr_assert_eq(ward_breaker_new(&bs, &br), WARD_ERR_OK);
    struct ward_rclient_settings s;
    base(&s);
    s.retry.enable = false;
    s.breaker.shared = br;
    start(&s);
    struct ward_rclient *other = NULL;
    s.name = "dep2";
    cr_assert_eq(ward_rclient_new(&s, &other), WARD_ERR_OK);
    cr_assert_eq(ward_rclient_export(other, reg), WARD_ERR_OK, "the shared breaker is not exported twice");
    cr_assert_eq(ward_rclient_breaker(other), br);
    set((struct fault_mode){.kind = FAULT_STATUS, .status = 503});
    cr_assert_eq(get(), WARD_ERR_HTTP_STATUS);
    cr_assert_eq(get(), WARD_ERR_HTTP_STATUS);
    size_t before = fault_server_count(fs);
    struct ward_http_result r2 = {0};
    cr_assert_eq(ward_rclient_call(other, &(struct ward_http_call){.url = "/x"}, &r2), WARD_ERR_OPEN);
    ward_http_result_fini(&r2);
    cr_assert_eq(fault_server_count(fs), before, "refused without a request");
    ward_rclient_free(other);
    ward_rclient_free(rc);
    rc = NULL;
    struct ward_breaker_stats st;
    ward_breaker_stats(br, &st); /* still alive: the clients did not free it */
    cr_assert_eq(st.state, WARD_BREAKER_OPEN);
    ward_breaker_free(br);
}

/* Every request deposits and every retry withdraws: with 20 % and no floor, call k may
 * retry while retries + 1 <= k / 5, so 100 failing calls make exactly 20 retries. */
Test(rclient, a_storm_of_failures_retries_no_more_than_the_budget)
{
    struct ward_rclient_settings s;
    struct ward_budget_stats bs;

    base(&s);
    s.retry.policy.jitter = WARD_RETRY_JITTER_NONE;
    s.retry.policy.base_ns = 1 * MS;
    s.budget.settings.percent = 20;
    s.budget.settings.min_retries_per_second = 0;
    s.breaker.enable = false; /* it would open after 6 failures and end the storm */
    start(&s);
    set((struct fault_mode){.kind = FAULT_STATUS, .status = 503});
    for (int i = 0; i < 100; i++) {
        cr_assert_eq(get(), WARD_ERR_BUDGET_EXHAUSTED);
        cr_assert_eq(res.status, 503, "the last response is kept");
    }
    cr_assert_eq(fault_server_count(fs), 120);
    ward_budget_stats(ward_rclient_budget(rc), &bs);
    cr_assert_eq(bs.retries_total, 20);
    cr_assert_eq(bs.exhausted_total, 100);
    cr_assert_eq(metric("ward_client_retries_total{dependency=\"dep\"}"), 20);
    cr_assert_eq(metric("ward_client_calls_total{dependency=\"dep\",result=\"budget_exhausted\"}"),
                 100);
    cr_assert_eq(metric("ward_retry_budget_exhausted_total{name=\"dep\"}"), 100);
}

struct caller {
    pthread_t thread;
    enum ward_err err;
    int status;
    int64_t elapsed;
};

static void *call_thread(void *arg)
{
    struct caller *c = arg;
    struct ward_http_result r;
    int64_t t = ward_clock_now(NULL);

    c->err = ward_rclient_call(rc, &(struct ward_http_call){.url = "/slow"}, &r);
    c->elapsed = ward_clock_now(NULL) - t;
    c->status = r.status;
    ward_http_result_fini(&r);
    return NULL;
}

Test(rclient, a_full_bulkhead_rejects_at_once_without_reaching_the_server)
{
    struct ward_rclient_settings s;
    struct ward_bulkhead_stats bst;
    struct caller held[2], late[4];

    base(&s);
    s.clock = NULL;
    s.bulkhead.settings.max_concurrent = 2;
    start(&s);
    set((struct fault_mode){.kind = FAULT_HANG});
    for (int i = 0; i < 2; i++)
        cr_assert_eq(pthread_create(&held[i].thread, NULL, call_thread, &held[i]), 0);
    cr_assert(fault_server_wait_count(fs, 2, 5000));
    for (int i = 0; i < 4; i++)
        cr_assert_eq(pthread_create(&late[i].thread, NULL, call_thread, &late[i]), 0);
    for (int i = 0; i < 4; i++) {
        pthread_join(late[i].thread, NULL);
        cr_assert_eq(late[i].err, WARD_ERR_BULKHEAD_FULL);
        cr_assert_eq(late[i].status, 0);
        cr_assert(late[i].elapsed < 1 * S, "rejected after %lld ns", (long long)late[i].elapsed);
    }
    cr_assert_eq(fault_server_count(fs), 2);
    set((struct fault_mode){.kind = FAULT_OK});
    fault_server_release(fs);
    for (int i = 0; i < 2; i++) {
        pthread_join(held[i].thread, NULL);
        cr_assert_eq(held[i].err, WARD_ERR_OK);
    }
    ward_bulkhead_stats(ward_rclient_bulkhead(rc), &bst);
    cr_assert_eq(bst.in_use, 0);
    cr_assert_eq(bst.rejections, 4);
    cr_assert_eq(metric("ward_bulkhead_rejections_total{name=\"dep\"}"), 4);
    cr_assert_eq(metric("ward_client_calls_total{dependency=\"dep\",result=\"bulkhead_full\"}"), 4);
}

Test(rclient, the_limiter_fails_fast_or_waits_within_the_deadline)
{
    struct ward_rclient_settings s;

    base(&s);
    s.limiter.enable = true;
    s.limiter.settings.limit = 1;
    s.limiter.settings.burst = 1;
    start(&s);
    cr_assert_eq(get(), WARD_ERR_OK);
    cr_assert_eq(get(), WARD_ERR_RATE_LIMITED);
    cr_assert_eq(fault_server_count(fs), 1);
    cr_assert_eq(metric("ward_client_calls_total{dependency=\"dep\",result=\"rate_limited\"}"), 1);
    ward_rclient_free(rc);
    ward_metrics_free(reg);
    reg = ward_metrics_new();
    s.limiter.wait = true;
    s.call_timeout_ns = 500 * MS;
    start(&s);
    cr_assert_eq(get(), WARD_ERR_OK);
    cr_assert_eq(get(), WARD_ERR_RATE_LIMITED, "the token comes after the deadline");
    cr_assert_eq(ward_clock_now(fc), T0);
    ward_rclient_free(rc);
    ward_metrics_free(reg);
    reg = ward_metrics_new();
    s.call_timeout_ns = 2 * S;
    start(&s);
    cr_assert_eq(get(), WARD_ERR_OK);
    cr_assert_eq(get(), WARD_ERR_OK);
    cr_assert_eq(ward_clock_now(fc), T0 + 1 * S, "waited for the token");
    cr_assert_str_eq(recorded(3).timeout_ms, "1000", "the wait came out of the budget");
}

static bool three_in_a_row(const struct ward_breaker_counts *c, void *arg)
{
    (void)arg;
    return c->consecutive_failures >= 3;
}

#define CALLS(result) "ward_client_calls_total{dependency=\"dep\",result=\"" result "\"}"
#define EDGE(from, to) "ward_breaker_transitions_total{name=\"dep\",from=\"" from "\",to=\"" to "\"}"

Test(rclient, the_breaker_opens_fails_fast_probes_and_closes)
{
    struct ward_rclient_settings s;

    base(&s);
    s.retry.enable = false;
    s.breaker.settings.ready_to_trip = three_in_a_row;
    s.breaker.settings.timeout_ns = 30 * S;
    start(&s);
    set((struct fault_mode){.kind = FAULT_STATUS, .status = 503});
    for (int i = 0; i < 3; i++)
        cr_assert_eq(get(), WARD_ERR_HTTP_STATUS);
    cr_assert_eq(ward_breaker_state(ward_rclient_breaker(rc)), WARD_BREAKER_OPEN);
    cr_assert_eq(metric("ward_breaker_state{name=\"dep\"}"), 2);
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(get(), WARD_ERR_OPEN);
        cr_assert_eq(res.status, 0);
    }
    cr_assert_eq(fault_server_count(fs), 3, "no network call while open");
    set((struct fault_mode){.kind = FAULT_OK});
    ward_clock_fake_advance(fc, 30 * S - 1);
    cr_assert_eq(get(), WARD_ERR_OPEN);
    ward_clock_fake_advance(fc, 1);
    cr_assert_eq(get(), WARD_ERR_OK, "the half-open probe goes through");
    cr_assert_eq(fault_server_count(fs), 4);
    cr_assert_eq(ward_breaker_state(ward_rclient_breaker(rc)), WARD_BREAKER_CLOSED);
    cr_assert_eq(metric("ward_breaker_state{name=\"dep\"}"), 0);
    cr_assert_eq(metric(EDGE("closed", "open")), 1);
    cr_assert_eq(metric(EDGE("open", "half-open")), 1);
    cr_assert_eq(metric(EDGE("half-open", "closed")), 1);
    cr_assert_eq(metric(EDGE("half-open", "open")), 0);
    cr_assert_eq(metric("ward_breaker_rejections_total{name=\"dep\",reason=\"open\"}"), 6);
    cr_assert_eq(metric(CALLS("http_status")), 3);
    cr_assert_eq(metric(CALLS("open")), 6);
    cr_assert_eq(metric(CALLS("ok")), 1);
    cr_assert_eq(metric("ward_http_client_requests_total{method=\"GET\",status=\"5xx\"}"), 3);
}

Test(rclient, half_open_admits_one_probe_and_refuses_the_rest)
{
    struct ward_rclient_settings s;
    struct caller probe;

    base(&s);
    s.retry.enable = false;
    s.breaker.settings.ready_to_trip = three_in_a_row;
    start(&s);
    set((struct fault_mode){.kind = FAULT_STATUS, .status = 502});
    for (int i = 0; i < 3; i++)
        cr_assert_eq(get(), WARD_ERR_HTTP_STATUS);
    ward_clock_fake_advance(fc, 60 * S);
    set((struct fault_mode){.kind = FAULT_HANG});
    cr_assert_eq(pthread_create(&probe.thread, NULL, call_thread, &probe), 0);
    cr_assert(fault_server_wait_count(fs, 4, 5000));
    cr_assert_eq(get(), WARD_ERR_TOO_MANY_REQUESTS);
    cr_assert_eq(fault_server_count(fs), 4);
    set((struct fault_mode){.kind = FAULT_OK});
    fault_server_release(fs);
    pthread_join(probe.thread, NULL);
    cr_assert_eq(probe.err, WARD_ERR_OK);
    cr_assert_eq(ward_breaker_state(ward_rclient_breaker(rc)), WARD_BREAKER_CLOSED);
    cr_assert_eq(metric(CALLS("too_many_requests")), 1);
}

Test(rclient, an_oversized_answer_is_too_large_and_not_retried)
{
    struct ward_rclient_settings s;
    struct ward_httpc_settings hs;
    struct ward_httpc *hc = NULL;
    struct ward_breaker_stats bs;

    ward_httpc_settings_default(&hs);
    hs.clock = fc;
    hs.max_body = 1024;
    cr_assert_eq(ward_httpc_new(&hs, &hc), WARD_ERR_OK);
    base(&s);
    s.httpc = hc;
    start(&s);
    set((struct fault_mode){.kind = FAULT_BIG, .big_bytes = 4096});
    cr_assert_eq(get(), WARD_ERR_TOO_LARGE);
    cr_assert_eq(fault_server_count(fs), 1);
    ward_breaker_stats(ward_rclient_breaker(rc), &bs);
    cr_assert_eq(bs.counts.total_successes, 1, "the dependency answered");
    cr_assert_eq(metric(CALLS("too_large")), 1);
    cr_assert_eq(metric("ward_http_client_requests_total{method=\"GET\",status=\"error\"}"), -1,
                 "a borrowed client is its owner's to export");
    ward_rclient_free(rc);
    rc = NULL;
    ward_httpc_free(hc);
}

Test(rclient, every_layer_can_be_turned_off)
{
    struct ward_rclient_settings s;

    base(&s);
    s.bulkhead.enable = false;
    s.breaker.enable = false;
    s.retry.enable = false;
    start(&s);
    cr_assert_null(ward_rclient_breaker(rc));
    cr_assert_null(ward_rclient_bulkhead(rc));
    cr_assert_null(ward_rclient_limiter(rc));
    cr_assert_null(ward_rclient_budget(rc));
    push((struct fault_mode){.kind = FAULT_STATUS, .status = 503}, 1);
    cr_assert_eq(get(), WARD_ERR_HTTP_STATUS);
    cr_assert_eq(get(), WARD_ERR_OK);
    cr_assert_eq(fault_server_count(fs), 2);
    cr_assert_str_eq(ward_rclient_name(rc), "dep");
}

Test(rclient, bad_settings_and_arguments_are_refused)
{
    struct ward_rclient_settings s;
    struct ward_rclient *bad = NULL;
    char long_name[WARD_RCLIENT_NAME_MAX + 2];

    memset(long_name, 'n', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    base(&s);
    cr_assert_eq(ward_rclient_new(NULL, &bad), WARD_ERR_INVAL);
    cr_assert_eq(ward_rclient_new(&s, NULL), WARD_ERR_INVAL);
    s.base_url = "ftp://x";
    cr_assert_eq(ward_rclient_new(&s, &bad), WARD_ERR_INVAL);
    s.base_url = "http://";
    cr_assert_eq(ward_rclient_new(&s, &bad), WARD_ERR_INVAL);
    base(&s);
    s.name = "";
    cr_assert_eq(ward_rclient_new(&s, &bad), WARD_ERR_INVAL);
    s.name = long_name;
    cr_assert_eq(ward_rclient_new(&s, &bad), WARD_ERR_INVAL);
    base(&s);
    s.call_timeout_ns = 0;
    cr_assert_eq(ward_rclient_new(&s, &bad), WARD_ERR_INVAL);
    base(&s);
    s.attempt_timeout_ns = 1;
    cr_assert_eq(ward_rclient_new(&s, &bad), WARD_ERR_INVAL);
    base(&s);
    s.retry.policy.max_attempts = 0;
    cr_assert_eq(ward_rclient_new(&s, &bad), WARD_ERR_INVAL);
    base(&s);
    s.bulkhead.settings.max_concurrent = 0;
    cr_assert_eq(ward_rclient_new(&s, &bad), WARD_ERR_INVAL);
    cr_assert_null(bad);

    base(&s);
    s.base_url = "http://127.0.0.1:1///";
    start(&s);
    cr_assert_eq(call(&(struct ward_http_call){.url = "x"}), WARD_ERR_INVAL);
    cr_assert_eq(call(&(struct ward_http_call){.url = NULL}), WARD_ERR_INVAL);
    cr_assert_eq(ward_rclient_call(rc, NULL, &res), WARD_ERR_INVAL);
    cr_assert_eq(ward_rclient_call(NULL, &(struct ward_http_call){.url = "/"}, &res),
                 WARD_ERR_INVAL);
    cr_assert_eq(ward_rclient_call(rc, &(struct ward_http_call){.url = "/"}, NULL),
                 WARD_ERR_INVAL);
    cr_assert_eq(ward_rclient_export(rc, reg), WARD_ERR_STATE);
    cr_assert_eq(metric(CALLS("error")), 3);
}
