/* test_loop.c — unit tests of the event loop: posted functions, timers on a fake and on
 * the real clock, non-blocking HTTP calls against the fault server (many at once, the
 * request headers, the errors), and freeing the loop with work still pending. */
#include <criterion/criterion.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ward/loop.h>

#include "fault_server.h"

#define MS WARD_NS_PER_MS
#define S WARD_NS_PER_S
#define T0 (1000 * S)
#define PARENT "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
#define MAXN 64

static struct fault_server *fs;
static struct ward_clock *fc;
static struct ward_loop *loop;

/* What the callbacks record, guarded by mu; the test waits on cv. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int done;
static int order[MAXN];
static int64_t seen_at[MAXN];
static pthread_t ran_on[MAXN];
static enum ward_err errs[MAXN];
static struct ward_http_result results[MAXN];

static void setup(void)
{
    fs = fault_server_start();
    fc = ward_clock_fake_new(T0);
    cr_assert(fs != NULL && fc != NULL);
    done = 0;
    memset(results, 0, sizeof results);
}

static void teardown(void)
{
    ward_loop_free(loop);
    loop = NULL;
    for (int i = 0; i < MAXN; i++)
        ward_http_result_fini(&results[i]);
    fault_server_stop(fs);
    ward_clock_free(fc);
}

TestSuite(loop, .init = setup, .fini = teardown, .timeout = 30);

static void start_on(const struct ward_clock *clock)
{
    struct ward_loop_settings s;

    ward_loop_settings_default(&s);
    s.clock = clock;
    cr_assert_eq(ward_loop_new(&s, &loop), WARD_ERR_OK);
}

/* Waits up to 5 s for n completions in all; false when they did not come. */
static bool wait_done(int n)
{
    struct timespec until;
    bool ok = true;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 5;
    pthread_mutex_lock(&mu);
    while (done < n && ok)
        ok = pthread_cond_timedwait(&cv, &mu, &until) == 0;
    ok = done >= n;
    pthread_mutex_unlock(&mu);
    return ok;
}

/* Records that task i ran (on which thread, at what time on the fake clock). */
static void mark(void *arg)
{
    int i = (int)(intptr_t)arg;

    pthread_mutex_lock(&mu);
    order[done++] = i;
    seen_at[i] = ward_clock_now(ward_loop_clock(loop));
    ran_on[i] = pthread_self();
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

/* Completion of send i: keeps the result. */
static void on_done(enum ward_err err, struct ward_http_result *res, void *arg)
{
    int i = (int)(intptr_t)arg;

    pthread_mutex_lock(&mu);
    errs[i] = err;
    results[i] = *res;
    ran_on[i] = pthread_self();
    order[done++] = i;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static const char *url(const char *path)
{
    static char buf[256];

    snprintf(buf, sizeof buf, "http://127.0.0.1:%u%s", fault_server_port(fs), path);
    return buf;
}

Test(loop, posted_functions_run_once_in_order_on_the_loop_thread)
{
    start_on(fc);
    for (int i = 0; i < 50; i++)
        cr_assert_eq(ward_loop_post(loop, mark, (void *)(intptr_t)i), WARD_ERR_OK);
    cr_assert(wait_done(50));
    for (int i = 0; i < 50; i++) {
        cr_assert_eq(order[i], i);
        cr_assert(!pthread_equal(ran_on[i], pthread_self()));
        cr_assert(pthread_equal(ran_on[i], ran_on[0]));
    }
    cr_assert_eq(ward_clock_now(fc), T0, "posting does not move the clock");
}

/* Arms the timers from the loop thread, so that all are filed before any is due. */
static void arm(void *arg)
{
    static const int64_t delays[] = {300 * MS, 100 * MS, 200 * MS, 100 * MS, 0};

    (void)arg;
    for (int i = 0; i < 5; i++)
        cr_assert_eq(ward_loop_after(loop, delays[i], mark, (void *)(intptr_t)i), WARD_ERR_OK);
}

Test(loop, fake_clock_timers_run_at_once_in_due_order_moving_the_clock)
{
    start_on(fc);
    cr_assert_eq(ward_loop_post(loop, arm, NULL), WARD_ERR_OK);
    cr_assert(wait_done(5));
    cr_assert_eq(order[0], 4);
    cr_assert_eq(order[1], 1);
    cr_assert_eq(order[2], 3, "equal due times run in arming order");
    cr_assert_eq(order[3], 2);
    cr_assert_eq(order[4], 0);
    cr_assert_eq(seen_at[4], T0);
    cr_assert_eq(seen_at[1], T0 + 100 * MS);
    cr_assert_eq(seen_at[3], T0 + 100 * MS);
    cr_assert_eq(seen_at[2], T0 + 200 * MS);
    cr_assert_eq(seen_at[0], T0 + 300 * MS);
    cr_assert_eq(ward_clock_now(fc), T0 + 300 * MS);
}

static void arm_real(void *arg)
{
    (void)arg;
    cr_assert_eq(ward_loop_after(loop, 30 * MS, mark, (void *)(intptr_t)0), WARD_ERR_OK);
    cr_assert_eq(ward_loop_after(loop, 10 * MS, mark, (void *)(intptr_t)1), WARD_ERR_OK);
}

Test(loop, real_clock_timers_wait_their_delay)
{
    int64_t t0 = ward_clock_now(NULL);

    start_on(NULL);
    cr_assert_eq(ward_loop_post(loop, arm_real, NULL), WARD_ERR_OK);
    cr_assert(wait_done(2));
    cr_assert_eq(order[0], 1);
    cr_assert_eq(order[1], 0);
    cr_assert_geq(seen_at[1] - t0, 10 * MS);
    cr_assert_geq(seen_at[0] - t0, 30 * MS);
    cr_assert_lt(seen_at[0] - t0, 5 * S);
}

Test(loop, many_concurrent_transfers_complete_with_their_own_bodies)
{
    char path[32];
    int64_t t0 = ward_clock_now(NULL);
    int n = 40;

    start_on(NULL);
    cr_assert(fault_server_set(fs, &(struct fault_mode){.kind = FAULT_SLOW, .delay_ms = 200}));
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "/item/%d", i);
        cr_assert_eq(ward_httpc_send(loop, &(struct ward_http_call){.url = url(path)}, on_done,
                                     (void *)(intptr_t)i),
                     WARD_ERR_OK);
    }
    cr_assert(wait_done(n));
    cr_assert_lt(ward_clock_now(NULL) - t0, 4 * S, "the 200 ms answers overlapped");
    for (int i = 0; i < n; i++) {
        char want[48];

        snprintf(want, sizeof want, "\"path\":\"/item/%d\"", i);
        cr_assert_eq(errs[i], WARD_ERR_OK);
        cr_assert_eq(results[i].status, 200);
        cr_assert_not_null(strstr(results[i].body, want), "%s", results[i].body);
        cr_assert(!pthread_equal(ran_on[i], pthread_self()));
    }
    cr_assert_eq(fault_server_count(fs), (size_t)n);
}

Test(loop, sequential_sends_reuse_one_kept_alive_connection)
{
    start_on(fc);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(ward_httpc_send(loop, &(struct ward_http_call){.url = url("/k")}, on_done,
                                     (void *)(intptr_t)i),
                     WARD_ERR_OK);
        cr_assert(wait_done(i + 1));
        cr_assert_eq(errs[i], WARD_ERR_OK);
    }
    cr_assert_eq(results[0].connects, 1);
    cr_assert_eq(results[1].connects, 0, "the second call reused the connection");
    cr_assert_eq(results[2].connects, 0);
}

Test(loop, a_timer_armed_from_another_thread_moves_the_fake_clock_by_its_delay)
{
    start_on(fc);
    cr_assert_eq(ward_loop_after(loop, 250 * MS, mark, (void *)(intptr_t)0), WARD_ERR_OK);
    cr_assert(wait_done(1));
    cr_assert_eq(seen_at[0], T0 + 250 * MS);
    cr_assert_eq(ward_clock_now(fc), T0 + 250 * MS);
}

Test(loop, a_send_carries_the_headers_and_a_copy_of_the_stack_call)
{
    struct fault_request r;
    const char *prefix = "00-0af7651916cd43dd8448eb211c80319c-";

    start_on(fc);
    {
        char body[] = "{\"a\":1}";
        char key[] = "key-1";
        const char *hdrs[] = {"X-Extra: yes", NULL};
        struct ward_http_call call = {.method = "POST",
                                      .url = url("/pay"),
                                      .headers = hdrs,
                                      .body = body,
                                      .body_len = strlen(body),
                                      .content_type = "application/json",
                                      .deadline = T0 + 1500 * MS,
                                      .request_id = "req-7",
                                      .traceparent = PARENT,
                                      .idempotency_key = key};

        cr_assert_eq(ward_httpc_send(loop, &call, on_done, (void *)(intptr_t)0), WARD_ERR_OK);
        memset(body, 'z', strlen(body)); /* the call was copied: changing it is harmless */
        memset(key, 'z', strlen(key));
    }
    cr_assert(wait_done(1));
    cr_assert_eq(errs[0], WARD_ERR_OK);
    cr_assert(fault_server_request(fs, 0, &r));
    cr_assert_str_eq(r.method, "POST");
    cr_assert_str_eq(r.path, "/pay");
    cr_assert_str_eq(r.body, "{\"a\":1}");
    cr_assert_str_eq(r.content_type, "application/json");
    cr_assert_str_eq(r.idempotency_key, "key-1");
    cr_assert_str_eq(r.request_id, "req-7");
    cr_assert_str_eq(r.timeout_ms, "1500");
    cr_assert_eq(strncmp(r.traceparent, prefix, strlen(prefix)), 0, "%s", r.traceparent);
    cr_assert_str_neq(r.traceparent, PARENT);
}

Test(loop, failed_sends_report_the_blocking_errors_through_the_callback)
{
    start_on(fc);
    cr_assert_eq(ward_httpc_send(loop,
                                 &(struct ward_http_call){.url = url("/x"), .deadline = T0},
                                 on_done, (void *)(intptr_t)0),
                 WARD_ERR_OK);
    cr_assert_eq(ward_httpc_send(loop, &(struct ward_http_call){.url = "ftp://127.0.0.1/x"},
                                 on_done, (void *)(intptr_t)1),
                 WARD_ERR_OK);
    cr_assert_eq(ward_httpc_send(loop,
                                 &(struct ward_http_call){.url = url("/x"),
                                                          .request_id = "bad id"},
                                 on_done, (void *)(intptr_t)2),
                 WARD_ERR_OK);
    cr_assert(fault_server_set(fs, &(struct fault_mode){.kind = FAULT_CLOSE}));
    cr_assert_eq(ward_httpc_send(loop, &(struct ward_http_call){.url = url("/x")}, on_done,
                                 (void *)(intptr_t)3),
                 WARD_ERR_OK);
    cr_assert(wait_done(4));
    cr_assert_eq(errs[0], WARD_ERR_DEADLINE);
    cr_assert_eq(results[0].sent, false);
    cr_assert_eq(errs[1], WARD_ERR_INVAL);
    cr_assert_eq(errs[2], WARD_ERR_INVAL);
    cr_assert_eq(errs[3], WARD_ERR_TRANSPORT);
    cr_assert_eq(results[3].sent, true);
    cr_assert_null(results[3].body);
    cr_assert_eq(fault_server_count(fs), 1);
}

Test(loop, bad_arguments_are_refused_without_a_callback)
{
    start_on(fc);
    cr_assert_eq(ward_loop_post(NULL, mark, NULL), WARD_ERR_INVAL);
    cr_assert_eq(ward_loop_post(loop, NULL, NULL), WARD_ERR_INVAL);
    cr_assert_eq(ward_loop_after(loop, 1, NULL, NULL), WARD_ERR_INVAL);
    cr_assert_eq(ward_httpc_send(loop, NULL, on_done, NULL), WARD_ERR_INVAL);
    cr_assert_eq(ward_httpc_send(loop, &(struct ward_http_call){.url = NULL}, on_done, NULL),
                 WARD_ERR_INVAL);
    cr_assert_eq(ward_httpc_send(loop, &(struct ward_http_call){.url = "http://x/"}, NULL,
                                 NULL),
                 WARD_ERR_INVAL);
    cr_assert_eq(ward_httpc_send(loop,
                                 &(struct ward_http_call){.url = "http://x/", .body_len = 3},
                                 on_done, NULL),
                 WARD_ERR_INVAL);
    cr_assert_eq(ward_loop_new(NULL, NULL), WARD_ERR_INVAL);
    cr_assert_eq(done, 0);
}

Test(loop, free_fails_transfers_in_flight_and_fires_pending_timers_once)
{
    start_on(NULL);
    cr_assert(fault_server_set(fs, &(struct fault_mode){.kind = FAULT_HANG}));
    for (int i = 0; i < 5; i++)
        cr_assert_eq(ward_httpc_send(loop, &(struct ward_http_call){.url = url("/hang")},
                                     on_done, (void *)(intptr_t)i),
                     WARD_ERR_OK);
    cr_assert_eq(ward_loop_after(loop, 60 * S, mark, (void *)(intptr_t)5), WARD_ERR_OK);
    cr_assert(fault_server_wait_count(fs, 5, 5000));
    ward_loop_free(loop);
    loop = NULL;
    cr_assert_eq(done, 6, "every callback ran exactly once");
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(errs[i], WARD_ERR_STATE);
        cr_assert_eq(results[i].sent, true);
        cr_assert_null(results[i].body);
    }
    cr_assert_eq(order[5], 5, "the 60 s timer fired at the end without waiting");
}

static int term_blocked = -1;

static void read_mask(void *arg)
{
    sigset_t m;

    pthread_sigmask(SIG_SETMASK, NULL, &m);
    term_blocked = sigismember(&m, SIGTERM) && sigismember(&m, SIGINT);
    mark(arg);
}

Test(loop, the_loop_thread_blocks_every_signal)
{
    sigset_t before, after;

    pthread_sigmask(SIG_SETMASK, NULL, &before);
    start_on(fc);
    pthread_sigmask(SIG_SETMASK, NULL, &after);
    cr_assert_eq(sigismember(&before, SIGTERM), sigismember(&after, SIGTERM),
                 "the caller's mask is restored");
    cr_assert_eq(ward_loop_post(loop, read_mask, (void *)(intptr_t)0), WARD_ERR_OK);
    cr_assert(wait_done(1));
    cr_assert_eq(term_blocked, 1);
}
