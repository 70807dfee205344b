/* test_rclient_async.c — the event-driven resilient call against the fault server: the
 * blocking form's scenarios (deadline, trace and request-ID propagation, retries and
 * backoffs, Retry-After, the budget under a storm, the bulkhead with many calls in flight,
 * the breaker's whole cycle with its metrics) and the loop stopping mid-call. */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ward/loop.h>
#include <ward/rclient.h>

#include "fault_server.h"

#define MS WARD_NS_PER_MS
#define S WARD_NS_PER_S
#define T0 (1000 * S)
#define PARENT_TRACE "4bf92f3577b34da6a3ce929d0e0e4736"
#define PARENT_SPAN "00f067aa0ba902b7"
#define MAXN 16

static struct fault_server *fs;
static struct ward_clock *fc;
static struct ward_metrics *reg;
static struct ward_rclient *rc;
static struct ward_loop *loop;
static char base_url[64];

/* What the callbacks record, guarded by mu; tests wait on cv. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int done;
static enum ward_err errs[MAXN];
static struct ward_http_result results[MAXN];
static struct ward_http_result res; /* the last call()'s */

static void setup(void)
{
    fs = fault_server_start();
    fc = ward_clock_fake_new(T0);
    reg = ward_metrics_new();
    cr_assert(fs != NULL && fc != NULL && reg != NULL);
    snprintf(base_url, sizeof base_url, "http://127.0.0.1:%u", (unsigned)fault_server_port(fs));
    done = 0;
    memset(results, 0, sizeof results);
}

static void teardown(void)
{
    ward_loop_free(loop);
    for (int i = 0; i < MAXN; i++)
        ward_http_result_fini(&results[i]);
    ward_http_result_fini(&res);
    ward_rclient_free(rc);
    fault_server_stop(fs);
    ward_metrics_free(reg);
    ward_clock_free(fc);
}

TestSuite(rclient_async, .init = setup, .fini = teardown, .timeout = 30);

static void base(struct ward_rclient_settings *s)
{
    ward_rclient_settings_default(s);
    s->name = "dep";
    s->base_url = base_url;
    s->clock = fc;
}

/* The client and a loop on its clock, both exported to reg. */
static void start(const struct ward_rclient_settings *s)
{
    struct ward_loop_settings ls;

    ward_loop_settings_default(&ls);
    ls.clock = s->clock;
    cr_assert_eq(ward_rclient_new(s, &rc), WARD_ERR_OK);
    cr_assert_eq(ward_rclient_export(rc, reg), WARD_ERR_OK);
    cr_assert_eq(ward_loop_new(&ls, &loop), WARD_ERR_OK);
    cr_assert_eq(ward_httpc_export(ward_loop_httpc(loop), reg), WARD_ERR_OK);
}

static void on_done(enum ward_err err, struct ward_http_result *r, void *arg)
{
    int i = (int)(intptr_t)arg;

    pthread_mutex_lock(&mu);
    errs[i] = err;
    results[i] = *r;
    done++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

/* Waits up to 10 s for n completions in all. */
static bool wait_done(int n)
{
    struct timespec until;
    bool ok = true;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&mu);
    while (done < n && ok)
        ok = pthread_cond_timedwait(&cv, &mu, &until) == 0;
    ok = done >= n;
    pthread_mutex_unlock(&mu);
    return ok;
}

static void submit(const struct ward_http_call *c, int i)
{
    cr_assert_eq(ward_rclient_call_async(rc, loop, c, on_done, (void *)(intptr_t)i),
                 WARD_ERR_OK);
}

/* One call submitted and waited for; its result stays in res until the next one. */
static enum ward_err call(const struct ward_http_call *c)
{
    int before;

    ward_http_result_fini(&res);
    pthread_mutex_lock(&mu);
    before = done;
    pthread_mutex_unlock(&mu);
    submit(c, 0);
    cr_assert(wait_done(before + 1), "the callback never ran");
    res = results[0];
    results[0] = (struct ward_http_result){0};
    return errs[0];
}

static enum ward_err get(void)
{
    return call(&(struct ward_http_call){.url = "/x"});
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

Test(rclient_async, callee_sees_the_remaining_budget_on_the_real_clock)
{
    struct ward_rclient_settings s;
    long ms;

    base(&s);
    s.clock = NULL;
    start(&s);
    cr_assert_eq(call(&(struct ward_http_call){.url = "/x",
                                               .deadline = ward_clock_now(NULL) + 2 * S}),
                 WARD_ERR_OK);
    ms = timeout_ms(0);
    cr_assert(ms <= 2000 && ms >= 1950, "X-Request-Timeout-Ms %ld", ms);
    cr_assert_eq(res.status, 200);
}

Test(rclient_async, deadline_is_the_earlier_of_the_callers_and_the_call_timeout)
{
    struct ward_rclient_settings s;

    base(&s);
    s.call_timeout_ns = 3 * S;
    start(&s);
    cr_assert_eq(call(&(struct ward_http_call){.url = "/x", .deadline = T0 + 1500 * MS}),
                 WARD_ERR_OK);
    cr_assert_eq(get(), WARD_ERR_OK);
    cr_assert_str_eq(recorded(0).timeout_ms, "1500");
    cr_assert_str_eq(recorded(1).timeout_ms, "3000");
}

Test(rclient_async, spent_deadline_sends_nothing)
{
    struct ward_rclient_settings s;

    base(&s);
    start(&s);
    cr_assert_eq(call(&(struct ward_http_call){.url = "/x", .deadline = T0}), WARD_ERR_DEADLINE);
    cr_assert_eq(res.status, 0);
    cr_assert_eq(fault_server_count(fs), 0);
    cr_assert_eq(metric("ward_client_calls_total{dependency=\"dep\",result=\"deadline\"}"), 1);
}

Test(rclient_async, request_id_and_trace_go_to_every_attempt_with_a_new_span_each)
{
    struct ward_rclient_settings s;
    struct fault_request a, b;
    const char *prefix = "00-" PARENT_TRACE "-";

    base(&s);
    start(&s);
    push((struct fault_mode){.kind = FAULT_STATUS, .status = 503}, 1);
    {
        char rid[] = "req-42"; /* on this block's stack only: the call is copied */

        submit(&(struct ward_http_call){.url = "/x",
                                        .request_id = rid,
                                        .traceparent = "00-" PARENT_TRACE "-" PARENT_SPAN "-01"},
               0);
        memset(rid, 'z', strlen(rid));
    }
    cr_assert(wait_done(1));
    cr_assert_eq(errs[0], WARD_ERR_OK);
    cr_assert_eq(fault_server_count(fs), 2);
    a = recorded(0);
    b = recorded(1);
    cr_assert_str_eq(a.request_id, "req-42");
    cr_assert_str_eq(b.request_id, "req-42");
    cr_assert_eq(strncmp(a.traceparent, prefix, strlen(prefix)), 0, "%s", a.traceparent);
    cr_assert_eq(strncmp(b.traceparent, prefix, strlen(prefix)), 0, "%s", b.traceparent);
    cr_assert_str_neq(a.traceparent, b.traceparent);
    cr_assert_null(strstr(a.traceparent, PARENT_SPAN));
}

Test(rclient_async, two_503s_then_200_succeeds_on_the_third_attempt_after_exact_backoffs)
{
    struct ward_rclient_settings s;

    base(&s);
    s.retry.policy.jitter = WARD_RETRY_JITTER_NONE;
    start(&s);
    push((struct fault_mode){.kind = FAULT_STATUS, .status = 503}, 2);
    cr_assert_eq(get(), WARD_ERR_OK);
    cr_assert_eq(res.status, 200);
    cr_assert_eq(fault_server_count(fs), 3);
    cr_assert_eq(ward_clock_now(fc) - T0, 300 * MS, "the loop's timers moved the clock");
    cr_assert_eq(timeout_ms(0) - timeout_ms(1), 100);
    cr_assert_eq(timeout_ms(1) - timeout_ms(2), 200);
    cr_assert_eq(metric("ward_client_retries_total{dependency=\"dep\"}"), 2);
    cr_assert_eq(metric("ward_client_calls_total{dependency=\"dep\",result=\"ok\"}"), 1);
}

Test(rclient_async, backoffs_stay_within_the_jitter_bounds)
{
    struct ward_rclient_settings s;

    base(&s);
    s.retry.policy.jitter = WARD_RETRY_JITTER_EQUAL;
    start(&s);
    for (size_t i = 0; i < 5; i++) {
        long d1, d2;

        push((struct fault_mode){.kind = FAULT_STATUS, .status = 503}, 2);
        cr_assert_eq(get(), WARD_ERR_OK);
        d1 = timeout_ms(3 * i) - timeout_ms(3 * i + 1);
        d2 = timeout_ms(3 * i + 1) - timeout_ms(3 * i + 2);
        cr_assert(d1 >= 50 && d1 <= 100, "first backoff %ld ms", d1);
        cr_assert(d2 >= 100 && d2 <= 200, "second backoff %ld ms", d2);
    }
}

Test(rclient_async, retry_after_is_honoured_exactly)
{
    struct ward_rclient_settings s;

    base(&s);
    start(&s);
    push((struct fault_mode){.kind = FAULT_429, .retry_after_s = 2}, 1);
    cr_assert_eq(get(), WARD_ERR_OK);
    cr_assert_eq(fault_server_count(fs), 2);
    cr_assert_eq(ward_clock_now(fc) - T0, 2 * S);
}

Test(rclient_async, retry_after_past_the_deadline_fails_at_once)
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

Test(rclient_async, a_storm_of_failures_retries_no_more_than_the_budget)
{
    struct ward_rclient_settings s;
    struct ward_budget_stats bs;

    base(&s);
    s.retry.policy.jitter = WARD_RETRY_JITTER_NONE;
    s.retry.policy.base_ns = 1 * MS;
    s.budget.settings.percent = 20;
    s.budget.settings.min_retries_per_second = 0;
    s.breaker.enable = false;
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
}

Test(rclient_async, more_calls_in_flight_than_the_bulkhead_holds_are_rejected_at_once)
{
    struct ward_rclient_settings s;
    struct ward_bulkhead_stats bst;
    int ok = 0, full = 0;

    base(&s);
    s.bulkhead.settings.max_concurrent = 2;
    start(&s);
    set((struct fault_mode){.kind = FAULT_HANG});
    for (int i = 0; i < 6; i++)
        submit(&(struct ward_http_call){.url = "/slow"}, i);
    cr_assert(wait_done(4), "the 4 rejections come while 2 calls hang");
    cr_assert(fault_server_wait_count(fs, 2, 5000));
    cr_assert_eq(fault_server_count(fs), 2);
    set((struct fault_mode){.kind = FAULT_OK});
    fault_server_release(fs);
    cr_assert(wait_done(6));
    for (int i = 0; i < 6; i++) {
        ok += errs[i] == WARD_ERR_OK && results[i].status == 200;
        full += errs[i] == WARD_ERR_BULKHEAD_FULL && results[i].status == 0;
    }
    cr_assert_eq(ok, 2);
    cr_assert_eq(full, 4);
    for (int i = 2; i < 6; i++)
        cr_assert_eq(errs[i], WARD_ERR_BULKHEAD_FULL, "admission runs in submission order");
    ward_bulkhead_stats(ward_rclient_bulkhead(rc), &bst);
    cr_assert_eq(bst.in_use, 0, "every slot came back");
    cr_assert_eq(bst.rejections, 4);
    cr_assert_eq(metric("ward_bulkhead_rejections_total{name=\"dep\"}"), 4);
    cr_assert_eq(metric("ward_client_calls_total{dependency=\"dep\",result=\"bulkhead_full\"}"), 4);
}

static bool three_in_a_row(const struct ward_breaker_counts *c, void *arg)
{
    (void)arg;
    return c->consecutive_failures >= 3;
}

#define CALLS(result) "ward_client_calls_total{dependency=\"dep\",result=\"" result "\"}"
#define EDGE(from, to) "ward_breaker_transitions_total{name=\"dep\",from=\"" from "\",to=\"" to "\"}"

Test(rclient_async, the_breaker_opens_fails_fast_probes_and_closes)
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

Test(rclient_async, freeing_the_loop_mid_call_ends_it_with_state_and_frees_its_slot)
{
    struct ward_rclient_settings s;
    struct ward_bulkhead_stats bst;
    struct ward_breaker_stats brs;

    base(&s);
    start(&s);
    set((struct fault_mode){.kind = FAULT_HANG});
    submit(&(struct ward_http_call){.url = "/x"}, 0);
    cr_assert(fault_server_wait_count(fs, 1, 5000));
    ward_loop_free(loop);
    loop = NULL;
    cr_assert_eq(done, 1);
    cr_assert_eq(errs[0], WARD_ERR_STATE);
    ward_bulkhead_stats(ward_rclient_bulkhead(rc), &bst);
    cr_assert_eq(bst.in_use, 0);
    ward_breaker_stats(ward_rclient_breaker(rc), &brs);
    cr_assert_eq(brs.counts.total_failures, 0, "the loop's stop is not the dependency's fault");
    cr_assert_eq(fault_server_count(fs), 1, "not retried");
}

Test(rclient_async, bad_arguments_are_refused_without_a_callback)
{
    struct ward_rclient_settings s;
    struct ward_loop *other = NULL;
    const struct ward_http_call c = {.url = "/x"};

    base(&s);
    start(&s);
    cr_assert_eq(ward_rclient_call_async(NULL, loop, &c, on_done, NULL), WARD_ERR_INVAL);
    cr_assert_eq(ward_rclient_call_async(rc, NULL, &c, on_done, NULL), WARD_ERR_INVAL);
    cr_assert_eq(ward_rclient_call_async(rc, loop, NULL, on_done, NULL), WARD_ERR_INVAL);
    cr_assert_eq(ward_rclient_call_async(rc, loop, &c, NULL, NULL), WARD_ERR_INVAL);
    cr_assert_eq(ward_loop_new(NULL, &other), WARD_ERR_OK);
    cr_assert_eq(ward_rclient_call_async(rc, other, &c, on_done, NULL), WARD_ERR_INVAL,
                 "the loop runs on another clock");
    ward_loop_free(other);
    cr_assert_eq(call(&(struct ward_http_call){.url = "x"}), WARD_ERR_INVAL,
                 "a url without '/' ends through the callback");
    cr_assert_eq(done, 1);
}
