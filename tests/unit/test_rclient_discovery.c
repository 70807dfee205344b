/* test_rclient_discovery.c — the resilient client calling a service by name (static
 * registry, fault servers as instances): round robin over the instances, a retry sent to
 * another instance than the one that failed, ejection of a failing or dead instance while
 * no call fails, no instance (UNAVAILABLE, retried, the breaker untouched), the balancer's
 * metrics, and the event-driven form doing the same through a loop. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ward/loop.h>
#include <ward/rclient.h>
#include <ward/registry.h>

#include "fault_server.h"

#define MS WARD_NS_PER_MS
#define S WARD_NS_PER_S
#define T0 (1000 * S)
#define N 3

static struct fault_server *fs[N];
static struct ward_clock *fc;
static struct ward_metrics *reg;
static struct ward_registry *registry;
static struct ward_rclient *rc;
static struct ward_loop *loop;
static struct ward_http_result res;

static void setup(void)
{
    for (int i = 0; i < N; i++) {
        fs[i] = fault_server_start();
        cr_assert_not_null(fs[i]);
    }
    fc = ward_clock_fake_new(T0);
    reg = ward_metrics_new();
    cr_assert(fc != NULL && reg != NULL);
}

static void teardown(void)
{
    ward_http_result_fini(&res);
    ward_loop_free(loop);
    ward_rclient_free(rc);
    ward_registry_free(registry);
    for (int i = 0; i < N; i++)
        fault_server_stop(fs[i]);
    ward_metrics_free(reg);
    ward_clock_free(fc);
}

TestSuite(rclient_discovery, .init = setup, .fini = teardown, .timeout = 30);

/* A port nothing listens on: bound once by us, then closed. */
static uint16_t dead_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    cr_assert(fd >= 0);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* A static registry listing "dep" at each of the n ports (and "other" elsewhere). */
static void registry_of(const uint16_t *ports, int n)
{
    char url[512];
    struct ward_registry_settings s;
    int len = snprintf(url, sizeof url, "static:other=127.0.0.1:1");

    for (int i = 0; i < n; i++)
        len += snprintf(url + len, sizeof url - (size_t)len, ",dep=127.0.0.1:%u",
                        (unsigned)ports[i]);
    ward_registry_settings_default(&s);
    s.url = url;
    cr_assert_eq(ward_registry_new(&s, &registry), WARD_ERR_OK);
}

/* The first n fault servers as the instances of "dep". */
static void registry_of_servers(int n)
{
    uint16_t ports[N] = {0};

    for (int i = 0; i < n; i++)
        ports[i] = fault_server_port(fs[i]);
    registry_of(ports, n);
}

static void base(struct ward_rclient_settings *s)
{
    ward_rclient_settings_default(s);
    s->name = "dep";
    s->clock = fc;
    s->discovery.registry = registry;
}

static void start(const struct ward_rclient_settings *s)
{
    cr_assert_eq(ward_rclient_new(s, &rc), WARD_ERR_OK);
    cr_assert_eq(ward_rclient_export(rc, reg), WARD_ERR_OK);
}

static enum ward_err get(void)
{
    ward_http_result_fini(&res);
    return ward_rclient_call(rc, &(struct ward_http_call){.url = "/x?y=1"}, &res);
}

static void instance(int i, struct ward_balancer_instance_stats *st)
{
    char id[64];

    snprintf(id, sizeof id, "127.0.0.1:%u", (unsigned)fault_server_port(fs[i]));
    cr_assert_eq(ward_balancer_instance_stats(ward_rclient_balancer(rc), id, st), WARD_ERR_OK,
                 "%s", id);
}

static bool rendered_has(const char *needle)
{
    size_t len = 0;
    char *text = ward_metrics_render(reg, &len);
    bool found = text != NULL && strstr(text, needle) != NULL;

    if (!found)
        cr_log_error("%s not in:\n%s", needle, text != NULL ? text : "(null)");
    free(text);
    return found;
}

Test(rclient_discovery, round_robin_spreads_calls_evenly_over_the_instances)
{
    struct ward_rclient_settings s;
    struct fault_request r;

    registry_of_servers(N);
    base(&s);
    start(&s);
    cr_assert_not_null(ward_rclient_balancer(rc));
    for (int i = 0; i < 3 * 10; i++)
        cr_assert_eq(get(), WARD_ERR_OK);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(fault_server_count(fs[i]), 10, "instance %d got %zu", i,
                     fault_server_count(fs[i]));
        cr_assert(fault_server_request(fs[i], 0, &r));
        cr_assert_str_eq(r.path, "/x");
    }
    cr_assert(rendered_has("ward_balancer_instances{name=\"dep\"} 3"));
    cr_assert(rendered_has("ward_client_calls_total{dependency=\"dep\",result=\"ok\"} 30"));
}

Test(rclient_discovery, service_name_other_than_the_dependency_name)
{
    struct ward_rclient_settings s;

    registry_of_servers(1);
    base(&s);
    s.name = "zakat";
    s.discovery.service = "dep";
    start(&s);
    cr_assert_eq(get(), WARD_ERR_OK);
    cr_assert_eq(fault_server_count(fs[0]), 1);
    cr_assert(rendered_has("ward_balancer_instances{name=\"zakat\"} 1"));
}

Test(rclient_discovery, a_retry_goes_to_another_instance_than_the_one_that_failed)
{
    struct ward_rclient_settings s;
    struct ward_balancer_instance_stats st;

    /* P2C picks either instance on a tie, so without the avoidance about half of the
     * retries would go back to the failing one, and calls would fail after 2 attempts */
    registry_of_servers(2);
    base(&s);
    s.discovery.balancer.policy = WARD_BALANCER_P2C;
    s.discovery.balancer.seed = 42;
    s.discovery.balancer.consecutive_failures = 0; /* never eject: only avoidance helps */
    s.retry.policy.max_attempts = 2;
    s.breaker.enable = false;
    start(&s);
    fault_server_set(fs[0], &(struct fault_mode){.kind = FAULT_STATUS, .status = 503});
    for (int i = 0; i < 40; i++) {
        cr_assert_eq(get(), WARD_ERR_OK, "call %d", i);
        cr_assert_eq(res.status, 200);
    }
    cr_assert_eq(fault_server_count(fs[1]), 40);
    cr_assert_gt(fault_server_count(fs[0]), 5, "P2C never chose the failing one first?");
    instance(0, &st);
    cr_assert_eq(st.failures, fault_server_count(fs[0]));
    cr_assert_eq(st.ejections, 0);
}

/* res.sent covers every attempt of the call: a 503 from one instance and then a refused
 * connection at the other is CONNECT, but the request did reach a service, and a caller
 * deciding whether a POST certainly never arrived must be told so. */
Test(rclient_discovery, sent_says_whether_any_attempt_may_have_arrived)
{
    struct ward_rclient_settings s;
    /* round robin over three with two attempts a call: each call starts one further on,
     * so one call in three goes 503 → refused */
    uint16_t ports[3] = {fault_server_port(fs[0]), dead_port(), fault_server_port(fs[1])};
    int connects = 0;

    registry_of(ports, 3);
    base(&s);
    s.discovery.balancer.consecutive_failures = 0; /* never eject: all stay in turn */
    s.retry.policy.max_attempts = 2;
    s.breaker.enable = false;
    start(&s);
    for (int i = 0; i < 2; i++)
        fault_server_set(fs[i], &(struct fault_mode){.kind = FAULT_STATUS, .status = 503});
    for (int i = 0; i < 9; i++) {
        enum ward_err err = get();
        cr_assert(err == WARD_ERR_CONNECT || err == WARD_ERR_HTTP_STATUS, "call %d: %s", i,
                  ward_strerror(err));
        cr_assert(res.sent, "call %d: a 503 attempt was sent", i);
        connects += err == WARD_ERR_CONNECT;
    }
    cr_assert_eq(connects, 3, "the calls that ended at the dead instance");
    cr_assert_eq(fault_server_count(fs[0]) + fault_server_count(fs[1]), 12);
}

Test(rclient_discovery, a_failing_instance_is_ejected_and_no_call_fails)
{
    struct ward_rclient_settings s;
    struct ward_balancer_instance_stats st;
    size_t before;

    registry_of_servers(3);
    base(&s);
    s.breaker.enable = false;
    start(&s);
    fault_server_set(fs[1], &(struct fault_mode){.kind = FAULT_STATUS, .status = 500});
    /* 500 is not retried, so the calls that reach it fail until it is ejected */
    int failed = 0;
    for (int i = 0; i < 30; i++)
        failed += get() != WARD_ERR_OK;
    cr_assert_eq(failed, 5, "the 5th consecutive 500 ejects it");
    instance(1, &st);
    cr_assert(st.ejected);
    cr_assert_eq(st.ejections, 1);
    before = fault_server_count(fs[1]);
    for (int i = 0; i < 30; i++)
        cr_assert_eq(get(), WARD_ERR_OK);
    cr_assert_eq(fault_server_count(fs[1]), before, "an ejected instance got calls");
    /* after its 30 s it comes back */
    ward_clock_fake_advance(fc, 30 * S);
    fault_server_set(fs[1], NULL);
    for (int i = 0; i < 30; i++)
        cr_assert_eq(get(), WARD_ERR_OK);
    cr_assert_gt(fault_server_count(fs[1]), before);
    instance(1, &st);
    cr_assert_not(st.ejected);
    cr_assert(rendered_has("ward_balancer_ejections_total{name=\"dep\"} 1"));
}

Test(rclient_discovery, a_dead_instance_costs_no_call_with_retries)
{
    struct ward_rclient_settings s;
    uint16_t ports[3] = {fault_server_port(fs[0]), dead_port(), fault_server_port(fs[1])};
    struct ward_balancer_stats bst;

    registry_of(ports, 3);
    base(&s);
    start(&s);
    /* a refused connection was certainly never sent: retried at once elsewhere */
    for (int i = 0; i < 60; i++)
        cr_assert_eq(get(), WARD_ERR_OK, "call %d: %s", i, ward_strerror(get()));
    ward_balancer_stats(ward_rclient_balancer(rc), &bst);
    cr_assert_eq(bst.ejected, 1);
    cr_assert_eq(fault_server_count(fs[0]) + fault_server_count(fs[1]), 60);
    /* the breaker saw failures between successes: never 6 in a row */
    cr_assert_eq(ward_breaker_state(ward_rclient_breaker(rc)), WARD_BREAKER_CLOSED);
}

Test(rclient_discovery, no_instance_is_unavailable_retried_and_spares_the_breaker)
{
    struct ward_rclient_settings s;

    registry_of_servers(0);
    base(&s);
    s.retry.policy.max_attempts = 3;
    start(&s);
    for (int i = 0; i < 10; i++) {
        cr_assert_eq(get(), WARD_ERR_UNAVAILABLE);
        cr_assert_eq(res.status, 0);
    }
    cr_assert_eq(ward_breaker_state(ward_rclient_breaker(rc)), WARD_BREAKER_CLOSED);
    cr_assert(rendered_has(
        "ward_client_calls_total{dependency=\"dep\",result=\"unavailable\"} 10"));
    cr_assert(rendered_has("ward_client_retries_total{dependency=\"dep\"} 20"));
}

Test(rclient_discovery, a_bad_path_or_service_is_refused)
{
    struct ward_rclient_settings s;

    registry_of_servers(1);
    base(&s);
    s.discovery.service = "";
    cr_assert_eq(ward_rclient_new(&s, &rc), WARD_ERR_INVAL);
    base(&s);
    start(&s);
    ward_http_result_fini(&res);
    cr_assert_eq(ward_rclient_call(rc, &(struct ward_http_call){.url = "x"}, &res),
                 WARD_ERR_INVAL);
    cr_assert_eq(fault_server_count(fs[0]), 0);
}

Test(rclient_discovery, two_clients_share_one_watch)
{
    struct ward_rclient_settings s;
    struct ward_rclient *second = NULL;
    struct ward_http_result r2 = {0};

    registry_of_servers(2);
    base(&s);
    start(&s);
    base(&s);
    s.name = "dep2";
    s.discovery.service = "dep";
    cr_assert_eq(ward_rclient_new(&s, &second), WARD_ERR_OK);
    cr_assert_eq(get(), WARD_ERR_OK);
    cr_assert_eq(ward_rclient_call(second, &(struct ward_http_call){.url = "/x"}, &r2),
                 WARD_ERR_OK);
    ward_http_result_fini(&r2);
    ward_rclient_free(second);
    cr_assert_eq(fault_server_count(fs[0]) + fault_server_count(fs[1]), 2);
}

/* The event-driven form: calls through a loop, collected here. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int done_calls, ok_calls;

static void on_done(enum ward_err err, struct ward_http_result *r, void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    done_calls++;
    ok_calls += err == WARD_ERR_OK && r->status == 200;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    ward_http_result_fini(r);
}

Test(rclient_discovery, the_async_form_balances_and_fails_over_too)
{
    struct ward_rclient_settings s;
    struct ward_loop_settings ls;
    uint16_t ports[3] = {fault_server_port(fs[0]), dead_port(), fault_server_port(fs[1])};
    struct ward_balancer_stats bst;

    registry_of(ports, 3);
    base(&s);
    start(&s);
    ward_loop_settings_default(&ls);
    ls.clock = fc;
    cr_assert_eq(ward_loop_new(&ls, &loop), WARD_ERR_OK);
    done_calls = ok_calls = 0;
    for (int i = 0; i < 30; i++) {
        /* one at a time, so that round robin's order is the calls' order */
        cr_assert_eq(ward_rclient_call_async(rc, loop, &(struct ward_http_call){.url = "/a"},
                                             on_done, NULL),
                     WARD_ERR_OK);
        pthread_mutex_lock(&mu);
        while (done_calls < i + 1)
            pthread_cond_wait(&cv, &mu);
        pthread_mutex_unlock(&mu);
    }
    cr_assert_eq(ok_calls, 30);
    cr_assert_eq(fault_server_count(fs[0]), 15);
    cr_assert_eq(fault_server_count(fs[1]), 15);
    ward_balancer_stats(ward_rclient_balancer(rc), &bst);
    cr_assert_eq(bst.ejected, 1);
}

Test(rclient_discovery, two_clients_of_one_service_share_a_balancer_and_its_ejections)
{
    struct ward_rclient_settings s;
    struct ward_balancer_settings bs;
    struct ward_balancer *shared = NULL;
    struct ward_rclient *other = NULL;
    struct ward_balancer_instance_stats st;

    ward_balancer_settings_default(&bs);
    bs.name = "dep";
    bs.clock = fc;
    bs.consecutive_failures = 2;
    cr_assert_eq(ward_balancer_new(&bs, &shared), WARD_ERR_OK);
    fault_server_set(fs[0], &(struct fault_mode){.kind = FAULT_STATUS, .status = 503});
    registry_of_servers(2);
    base(&s);
    s.retry.enable = false;
    s.breaker.enable = false;
    s.discovery.shared_balancer = shared;
    s.discovery.balancer.consecutive_failures = 1000; /* ignored: the shared one rules */
    start(&s);
    s.name = "dep-too";
    s.discovery.service = "dep";
    cr_assert_eq(ward_rclient_new(&s, &other), WARD_ERR_OK);
    cr_assert_eq(ward_rclient_balancer(rc), shared);
    cr_assert_eq(ward_rclient_balancer(other), shared);
    /* the first client meets the failing instance twice (round robin): ejected */
    for (int i = 0; i < 4; i++)
        (void)get();
    instance(0, &st);
    cr_assert(st.ejected);
    /* the second client's calls all go to the other instance */
    size_t before = fault_server_count(fs[0]);
    for (int i = 0; i < 6; i++) {
        ward_http_result_fini(&res);
        cr_assert_eq(ward_rclient_call(other, &(struct ward_http_call){.url = "/x"}, &res),
                     WARD_ERR_OK);
    }
    cr_assert_eq(fault_server_count(fs[0]), before);
    /* the balancer is its owner's: the clients export and free none of it */
    size_t len = 0;
    char *text = ward_metrics_render(reg, &len);
    cr_assert_not_null(text);
    cr_assert_null(strstr(text, "ward_balancer_instances{name=\"dep\"}"), "%s", text);
    free(text);
    ward_rclient_free(other);
    ward_rclient_free(rc);
    rc = NULL;
    cr_assert_eq(ward_balancer_instance_stats(shared, "nonexistent", &st), WARD_ERR_NOT_FOUND);
    ward_balancer_free(shared);
}
