/* test_gateway_behaviour.c — ward-gateway's resilience behaviour end to end, in front of
 * in-process fault servers (tests/support/fault_server.h) found through a static registry
 * or a real ward-registry. What it proves:
 *
 *   1. retries only where safe: a GET is retried past a 503 instance to a healthy one
 *      (never two attempts on the 503 instance per request); a POST without
 *      Idempotency-Key is not retried (one upstream request, the 503 forwarded); a POST
 *      with one is retried, the key forwarded on each attempt;
 *   2. deadline propagation: a slow upstream gives the client 504 at the route's timeout,
 *      and X-Request-Timeout-Ms upstream is what is left of the route's timeout, or of
 *      the client's own shorter X-Request-Timeout-Ms;
 *   3. fault injection: abort_percent 100 answers abort_status without any upstream
 *      request; delay_percent 100 delays the answer by at least `delay`;
 *   4. the breaker opens after `failures`, answers the fallback without an upstream
 *      request, admits one probe after `open_timeout` and closes when it succeeds;
 *   5. body limits: a request body over `body_limit` is 413, an upstream answer over
 *      `response_limit` is 502;
 *   6. discovery is live: an instance registered in ward-registry after the start is
 *      used, and once deregistered the route answers 503 again;
 *   7. 2,000 idle client connections (the gateway started with the common soft fd
 *      limit of 1024, so it must raise its own) do not stop a normal request;
 *   8. SIGTERM with a request in flight: the request still gets its 200, the gateway
 *      exits 0;
 *   9. outlier ejection is the service's: an instance that failed on one route is ejected
 *      for every route to its service, and the others' requests no longer reach it.
 *
 * Nothing waits for a result with a sleep: results are polled with a bounded deadline. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "fault_server.h"
#include "harness.h"

#define NFS 2
static struct h_proc *gw, *reg;
static struct fault_server *fs[NFS];
static char dir[64];
static uint16_t admin_port;

static void teardown(void)
{
    h_free(gw); /* first: it holds connections to the fault servers */
    h_free(reg);
    gw = reg = NULL;
    for (size_t i = 0; i < NFS; i++) {
        fault_server_stop(fs[i]);
        fs[i] = NULL;
    }
    if (dir[0] != '\0') {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        cr_assert_eq(system(cmd), 0);
        dir[0] = '\0';
    }
}

TestSuite(gateway_behaviour, .fini = teardown, .timeout = 60);

/* ---- helpers ---- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Starts fault server i. */
static struct fault_server *upstream(size_t i)
{
    fs[i] = fault_server_start();
    cr_assert_not_null(fs[i]);
    return fs[i];
}

static void set_mode(struct fault_server *f, struct fault_mode m)
{
    cr_assert(fault_server_set(f, &m));
}

static void write_config(const char *text, char *path, size_t n)
{
    if (dir[0] == '\0') {
        snprintf(dir, sizeof dir, "/tmp/ward-gwb-XXXXXX");
        cr_assert_not_null(mkdtemp(dir));
    }
    snprintf(path, n, "%s/gateway.yaml", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

/* Starts the gateway with the YAML config and --registry registry; remembers the admin
 * port from the "admin listening" line. */
static void start_gateway(const char *config, const char *registry)
{
    char cfg[128];
    write_config(config, cfg, sizeof cfg);
    gw = h_start("ward-gateway",
                 (const char *const[]){"--shutdown-delay", "0", "--registry", registry,
                                       "--admin-listen", "127.0.0.1:0", "--config", cfg, NULL});
    cr_assert_not_null(gw);
    json_t *line = h_log_wait(gw, "admin listening", 5000);
    cr_assert_not_null(line);
    admin_port = (uint16_t)json_integer_value(json_object_get(line, "port"));
    json_decref(line);
}

/* "static:name=127.0.0.1:PORT" for one fault server. */
static const char *static1(char *buf, size_t n, const char *name, struct fault_server *f)
{
    snprintf(buf, n, "static:%s=127.0.0.1:%u", name, (unsigned)fault_server_port(f));
    return buf;
}

/* One request through the gateway; fails the test on a transport error. Returns the status
 * and, when elapsed is not NULL, how long it took in ms. */
static long call(const char *method, const char *path, const char *const *headers,
                 const char *body, size_t len, struct h_resp *r, int64_t *elapsed)
{
    int64_t t0 = now_ms();
    cr_assert(h_http(gw->port, method, path, headers, body, len, r), "%s %s: no answer",
              method, path);
    if (elapsed != NULL)
        *elapsed = now_ms() - t0;
    return r->status;
}

/* GET path until it answers want, for at most timeout_ms; returns the last status. */
static long poll_until(const char *path, long want, int timeout_ms)
{
    long st = -1;
    for (int64_t limit = now_ms() + timeout_ms; now_ms() < limit; h_sleep_ms(20)) {
        struct h_resp r;
        st = call("GET", path, NULL, NULL, 0, &r, NULL);
        h_resp_free(&r);
        if (st == want)
            break;
    }
    return st;
}

/* The state of the first route's breaker in /admin/status. Caller frees. */
static char *breaker_state(void)
{
    struct h_resp r;
    cr_assert(h_http(admin_port, "GET", "/admin/status", NULL, NULL, 0, &r));
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    json_t *br = json_object_get(json_array_get(json_object_get(r.json, "routes"), 0), "breaker");
    const char *s = json_string_value(json_object_get(br, "state"));
    cr_assert_not_null(s, "%s", r.body);
    char *copy = strdup(s);
    h_resp_free(&r);
    return copy;
}

/* The i-th request fault server f recorded. */
static struct fault_request recorded(struct fault_server *f, size_t i)
{
    struct fault_request q;
    cr_assert(fault_server_request(f, i, &q), "no request %zu recorded", i);
    return q;
}

static const char *const json_ct[] = {"Content-Type: application/json", NULL};
#define BODY "{\"amount\":100}"

/* ---- 1. retries only where safe ---- */

Test(gateway_behaviour, retries_only_where_safe)
{
    struct fault_server *bad = upstream(0), *good = upstream(1);
    set_mode(bad, (struct fault_mode){.kind = FAULT_STATUS, .status = 503,
                                      .body = "{\"from\":\"upstream\"}"});
    char regs[160];
    snprintf(regs, sizeof regs, "static:flaky=127.0.0.1:%u,flaky=127.0.0.1:%u,lone=127.0.0.1:%u",
             (unsigned)fault_server_port(bad), (unsigned)fault_server_port(good),
             (unsigned)fault_server_port(bad));
    /* the breakers are kept out of the way: this is about the retry policy */
    start_gateway("defaults:\n"
                  "  retry: {attempts: 2, base: 1ms, cap: 5ms}\n"
                  "  breaker: {failures: 1000}\n"
                  "routes:\n"
                  "  - prefix: /flaky\n"
                  "    service: flaky\n"
                  "  - prefix: /lone\n"
                  "    service: lone\n",
                  regs);
    struct h_resp r;
    for (int i = 0; i < 10; i++) {
        size_t bad0 = fault_server_count(bad), good0 = fault_server_count(good);
        cr_assert_eq(call("GET", "/flaky/x", NULL, NULL, 0, &r, NULL), 200, "GET %d: %ld %s", i,
                     r.status, r.body);
        h_resp_free(&r);
        cr_assert_leq(fault_server_count(bad) - bad0, 1, "GET %d: the 503 instance saw %zu", i,
                      fault_server_count(bad) - bad0);
        cr_assert_eq(fault_server_count(good) - good0, 1, "GET %d: the good instance saw %zu", i,
                     fault_server_count(good) - good0);
    }

    /* a POST without Idempotency-Key: one attempt, the upstream's 503 forwarded */
    size_t n0 = fault_server_count(bad);
    cr_assert_eq(call("POST", "/lone/x", json_ct, BODY, strlen(BODY), &r, NULL), 503, "%ld %s",
                 r.status, r.body);
    cr_assert_not_null(strstr(r.body, "upstream"), "not the upstream's answer: %s", r.body);
    h_resp_free(&r);
    cr_assert_eq(fault_server_count(bad) - n0, 1, "a POST without a key was retried");

    /* with Idempotency-Key: retried, the key on every attempt */
    const char *keyed[] = {"Content-Type: application/json", "Idempotency-Key: gwb-key-1", NULL};
    n0 = fault_server_count(bad);
    cr_assert_eq(call("POST", "/lone/x", keyed, BODY, strlen(BODY), &r, NULL), 503, "%ld %s",
                 r.status, r.body);
    h_resp_free(&r);
    cr_assert_eq(fault_server_count(bad) - n0, 2, "a POST with a key: %zu attempts",
                 fault_server_count(bad) - n0);
    for (size_t i = n0; i < n0 + 2; i++) {
        struct fault_request q = recorded(bad, i);
        cr_assert_str_eq(q.method, "POST");
        cr_assert_str_eq(q.idempotency_key, "gwb-key-1", "attempt %zu", i - n0);
        cr_assert_str_eq(q.body, BODY);
    }
    cr_assert_eq(h_stop(gw, 10000), 0);
}

/* ---- 2. deadline propagation ---- */

Test(gateway_behaviour, the_deadline_goes_downstream_and_ends_in_504)
{
    struct fault_server *slow = upstream(0);
    set_mode(slow, (struct fault_mode){.kind = FAULT_SLOW, .delay_ms = 3000});
    char regs[96];
    start_gateway("routes:\n"
                  "  - prefix: /slow\n"
                  "    service: slow\n"
                  "    timeout: 500ms\n",
                  static1(regs, sizeof regs, "slow", slow));
    struct h_resp r;
    int64_t ms;
    cr_assert_eq(call("GET", "/slow/x", NULL, NULL, 0, &r, &ms), 504, "%ld %s", r.status, r.body);
    cr_assert_not_null(strstr(r.body, "deadline-exceeded"), "%s", r.body);
    h_resp_free(&r);
    cr_assert_lt(ms, 1500, "504 after %lld ms", (long long)ms);
    cr_assert(fault_server_wait_count(slow, 1, 5000));
    struct fault_request q = recorded(slow, 0);
    int left = atoi(q.timeout_ms);
    cr_assert(left > 0 && left <= 500, "X-Request-Timeout-Ms upstream: \"%s\"", q.timeout_ms);

    /* the client's own, shorter deadline wins */
    size_t n0 = fault_server_count(slow);
    const char *hurried[] = {"X-Request-Timeout-Ms: 200", NULL};
    cr_assert_eq(call("GET", "/slow/y", hurried, NULL, 0, &r, &ms), 504, "%ld %s", r.status,
                 r.body);
    h_resp_free(&r);
    cr_assert_lt(ms, 1500, "504 after %lld ms", (long long)ms);
    cr_assert(fault_server_wait_count(slow, n0 + 1, 5000));
    q = recorded(slow, n0);
    left = atoi(q.timeout_ms);
    cr_assert(left > 0 && left <= 200, "X-Request-Timeout-Ms upstream: \"%s\"", q.timeout_ms);
    cr_assert_eq(h_stop(gw, 10000), 0);
}

/* ---- 3. fault injection ---- */

Test(gateway_behaviour, injected_aborts_never_reach_the_upstream_and_delays_delay)
{
    struct fault_server *up = upstream(0);
    char regs[96];
    start_gateway("routes:\n"
                  "  - prefix: /abort\n"
                  "    service: up\n"
                  "    fault: {abort_percent: 100, abort_status: 418}\n"
                  "  - prefix: /delay\n"
                  "    service: up\n"
                  "    fault: {delay_percent: 100, delay: 300ms}\n",
                  static1(regs, sizeof regs, "up", up));
    struct h_resp r;
    for (int i = 0; i < 10; i++) {
        cr_assert_eq(call("GET", "/abort/x", NULL, NULL, 0, &r, NULL), 418, "%d: %ld %s", i,
                     r.status, r.body);
        h_resp_free(&r);
    }
    cr_assert_eq(call("POST", "/abort/x", json_ct, BODY, strlen(BODY), &r, NULL), 418);
    cr_assert_not_null(strstr(r.body, "Injected fault"), "%s", r.body);
    h_resp_free(&r);
    cr_assert_eq(fault_server_count(up), 0, "an aborted request went upstream");

    int64_t ms;
    cr_assert_eq(call("GET", "/delay/x", NULL, NULL, 0, &r, &ms), 200, "%ld %s", r.status, r.body);
    h_resp_free(&r);
    cr_assert_geq(ms, 300, "the injected delay of 300 ms took %lld ms", (long long)ms);
    cr_assert_eq(fault_server_count(up), 1);
    cr_assert_eq(h_stop(gw, 10000), 0);
}

/* ---- 4. the breaker recovers through half-open ---- */

Test(gateway_behaviour, the_breaker_recovers_through_a_half_open_probe)
{
    struct fault_server *up = upstream(0);
    set_mode(up, (struct fault_mode){.kind = FAULT_STATUS, .status = 503,
                                     .body = "{\"from\":\"upstream\"}"});
    char regs[96];
    start_gateway("routes:\n"
                  "  - prefix: /b\n"
                  "    service: brk\n"
                  "    retry: {attempts: 1}\n"
                  "    breaker: {failures: 2, open_timeout: 3s}\n",
                  static1(regs, sizeof regs, "brk", up));
    struct h_resp r;
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(call("GET", "/b/x", NULL, NULL, 0, &r, NULL), 503);
        cr_assert_not_null(strstr(r.body, "upstream"), "%d: %s", i, r.body);
        h_resp_free(&r);
    }
    cr_assert_eq(fault_server_count(up), 2);
    /* open: the fallback, without an upstream request */
    cr_assert_eq(call("GET", "/b/x", NULL, NULL, 0, &r, NULL), 503);
    cr_assert_not_null(strstr(r.body, "circuit breaker is open"), "%s", r.body);
    char *ra = h_resp_header(&r, "Retry-After");
    cr_assert_str_eq(ra, "3", "Retry-After for a 3s open_timeout: %s", ra);
    free(ra);
    h_resp_free(&r);
    cr_assert_eq(fault_server_count(up), 2, "an open breaker let a request through");
    /* open (3 s, long enough for a loaded machine to look before it half-opens) */
    char *state = breaker_state();
    cr_assert_str_eq(state, "open");
    free(state);

    /* the upstream heals; after open_timeout one probe is admitted and closes it */
    set_mode(up, (struct fault_mode){.kind = FAULT_OK});
    long st = -1;
    for (int64_t limit = now_ms() + 15000; now_ms() < limit; h_sleep_ms(20)) {
        st = call("GET", "/b/x", NULL, NULL, 0, &r, NULL);
        if (st != 200)
            cr_assert_not_null(strstr(r.body, "circuit breaker is open"), "%ld %s", st, r.body);
        h_resp_free(&r);
        if (st == 200)
            break;
    }
    cr_assert_eq(st, 200, "no probe admitted within 15 s of a 3s open_timeout");
    cr_assert_eq(fault_server_count(up), 3, "only the probe reached the upstream");
    state = breaker_state();
    cr_assert_str_eq(state, "closed");
    free(state);
    cr_assert_eq(call("GET", "/b/y", NULL, NULL, 0, &r, NULL), 200);
    h_resp_free(&r);
    cr_assert_eq(h_stop(gw, 10000), 0);
}

/* ---- 5. body limits ---- */

Test(gateway_behaviour, body_and_response_limits)
{
    struct fault_server *up = upstream(0);
    char regs[96];
    start_gateway("body_limit: 1k\n"
                  "response_limit: 1m\n"
                  "routes:\n"
                  "  - prefix: /u\n"
                  "    service: up\n",
                  static1(regs, sizeof regs, "up", up));
    struct h_resp r;
    char big[2048 + 1];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    const char *text[] = {"Content-Type: text/plain", NULL};
    cr_assert_eq(call("POST", "/u/x", text, big, 2048, &r, NULL), 413, "%ld %s", r.status, r.body);
    h_resp_free(&r);
    cr_assert_eq(fault_server_count(up), 0, "an over-limit body went upstream");
    /* at the limit it passes */
    cr_assert_eq(call("POST", "/u/x", text, big, 1024, &r, NULL), 200, "%ld %s", r.status, r.body);
    h_resp_free(&r);
    cr_assert_eq(recorded(up, 0).body_len, 1024);

    /* an answer under response_limit comes through whole, one over it is a 502 */
    set_mode(up, (struct fault_mode){.kind = FAULT_BIG, .big_bytes = 512 * 1024});
    cr_assert_eq(call("GET", "/u/half", NULL, NULL, 0, &r, NULL), 200, "%ld", r.status);
    cr_assert_eq(r.len, 512 * 1024);
    h_resp_free(&r);
    set_mode(up, (struct fault_mode){.kind = FAULT_BIG, .big_bytes = 2 * 1024 * 1024});
    cr_assert_eq(call("GET", "/u/big", NULL, NULL, 0, &r, NULL), 502, "%ld %.200s", r.status,
                 r.body);
    cr_assert_not_null(strstr(r.body, "bad-gateway"), "%.200s", r.body);
    h_resp_free(&r);
    cr_assert_eq(h_stop(gw, 10000), 0);
}

/* ---- 6. discovery picked up live ---- */

/* A PUT to ward-registry's agent API that must answer 200. */
static void agent_put(const char *path, const char *body)
{
    struct h_resp r;
    cr_assert(h_http(reg->port, "PUT", path, NULL, body, body != NULL ? strlen(body) : 0, &r));
    cr_assert_eq(r.status, 200, "PUT %s: %ld %s", path, r.status, r.body);
    h_resp_free(&r);
}

Test(gateway_behaviour, an_instance_registered_later_is_used_and_its_removal_seen)
{
    struct fault_server *up = upstream(0);
    reg = h_start("ward-registry", (const char *const[]){"--shutdown-delay", "0",
                                                         "--no-access-log", NULL});
    char url[64];
    snprintf(url, sizeof url, "consul://127.0.0.1:%u", (unsigned)reg->port);
    start_gateway("routes:\n"
                  "  - prefix: /live\n"
                  "    service: live-svc\n",
                  url);
    struct h_resp r;
    cr_assert_eq(call("GET", "/live/x", NULL, NULL, 0, &r, NULL), 503, "%ld %s", r.status, r.body);
    h_resp_free(&r);

    /* a TTL check registered passing: listed at once, and nothing probes it */
    char svc[256];
    snprintf(svc, sizeof svc,
             "{\"Name\":\"live-svc\",\"ID\":\"live-1\",\"Address\":\"127.0.0.1\",\"Port\":%u,"
             "\"Check\":{\"TTL\":\"10m\",\"Status\":\"passing\"}}",
             (unsigned)fault_server_port(up));
    agent_put("/v1/agent/service/register", svc);
    long st = poll_until("/live/x", 200, 5000);
    cr_assert_eq(st, 200, "the registered instance was not used within 5 s (last %ld)", st);
    cr_assert_geq(fault_server_count(up), 1);

    agent_put("/v1/agent/service/deregister/live-1", NULL);
    st = poll_until("/live/x", 503, 5000);
    cr_assert_eq(st, 503, "the deregistration was not seen within 5 s (last %ld)", st);
    size_t n = fault_server_count(up);
    cr_assert_eq(call("GET", "/live/y", NULL, NULL, 0, &r, NULL), 503);
    h_resp_free(&r);
    cr_assert_eq(fault_server_count(up), n, "a deregistered instance was still called");
    cr_assert_eq(h_stop(gw, 10000), 0);
    cr_assert_eq(h_stop(reg, 10000), 0);
}

/* ---- 7. 2,000 idle client connections ---- */

#define IDLE_CONNS 2000

/* The number of open fds of process pid (/proc), or -1. */
static int fd_count(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    if (d == NULL)
        return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

Test(gateway_behaviour, two_thousand_idle_connections_do_not_stop_a_request)
{
    struct rlimit lim;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &lim), 0);
    if (lim.rlim_max != RLIM_INFINITY && lim.rlim_max < IDLE_CONNS + 200)
        cr_skip_test("the hard fd limit (%llu) is too low for %d connections",
                     (unsigned long long)lim.rlim_max, IDLE_CONNS);
    struct fault_server *up = upstream(0);
    char regs[96];
    /* the gateway starts with the usual soft limit of 1024 and must raise its own */
    struct rlimit low = {.rlim_cur = lim.rlim_max < 1024 ? lim.rlim_max : 1024,
                         .rlim_max = lim.rlim_max};
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    start_gateway("routes:\n"
                  "  - prefix: /u\n"
                  "    service: up\n",
                  static1(regs, sizeof regs, "up", up));
    struct rlimit high = {.rlim_cur = lim.rlim_max, .rlim_max = lim.rlim_max};
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &high), 0);

    static int fds[IDLE_CONNS];
    static const char cut[] = "GET /u/idle HTTP/1.1\r\nHost: x\r\n";
    int base = fd_count(gw->pid);
    for (int i = 0; i < IDLE_CONNS; i++) {
        fds[i] = h_connect(gw->port);
        cr_assert_geq(fds[i], 0, "connection %d refused", i);
        /* half send nothing, half a request cut short in its headers */
        if (i % 2 == 1)
            cr_assert(h_send(fds[i], cut, strlen(cut)));
    }
    /* the gateway has accepted them all (each is an fd of its own) */
    int held = -1;
    for (int64_t limit = now_ms() + 10000; now_ms() < limit; h_sleep_ms(20))
        if ((held = fd_count(gw->pid)) - base >= IDLE_CONNS - 10)
            break;
    /* a little slack: fds of the gateway's own (the harness's /ready probe) may close */
    cr_assert_geq(held - base, IDLE_CONNS - 10,
                  "the gateway holds %d fds more than before %d connections: it cannot accept "
                  "them all (does it raise its RLIMIT_NOFILE?)",
                  held - base, IDLE_CONNS);

    struct h_resp r;
    int64_t ms;
    cr_assert_eq(call("GET", "/u/x", NULL, NULL, 0, &r, &ms), 200, "%ld %s", r.status, r.body);
    h_resp_free(&r);
    cr_assert_lt(ms, 1000, "a request took %lld ms beside %d idle connections", (long long)ms,
                 IDLE_CONNS);
    for (int i = 0; i < IDLE_CONNS; i++)
        close(fds[i]);
    cr_assert_eq(h_stop(gw, 10000), 0);
}

/* ---- 8. graceful shutdown with a request in flight ---- */

struct inflight {
    long status;
    bool answered;
};

static void *slow_client(void *arg)
{
    struct inflight *c = arg;
    struct h_resp r;
    c->answered = h_http(gw->port, "GET", "/u/slow", NULL, NULL, 0, &r);
    c->status = r.status;
    h_resp_free(&r);
    return NULL;
}

Test(gateway_behaviour, sigterm_lets_the_request_in_flight_finish)
{
    struct fault_server *up = upstream(0);
    set_mode(up, (struct fault_mode){.kind = FAULT_SLOW, .delay_ms = 800});
    char regs[96];
    start_gateway("routes:\n"
                  "  - prefix: /u\n"
                  "    service: up\n",
                  static1(regs, sizeof regs, "up", up));
    struct inflight c = {0};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, slow_client, &c), 0);
    bool arrived = fault_server_wait_count(up, 1, 5000);
    if (arrived)
        h_signal(gw, SIGTERM);
    pthread_join(t, NULL);
    cr_assert(arrived, "the request never reached the upstream");
    cr_assert(c.answered, "the request in flight got no answer");
    cr_assert_eq(c.status, 200, "the request in flight got %ld", c.status);
    cr_assert_eq(h_wait(gw, 10000), 0, "the gateway did not exit 0 after SIGTERM");
    cr_assert_eq(fault_server_count(up), 1);
}

/* ---- 9. ejection per service ---- */

/* Whether /admin/status shows the instance on port as ejected on the route of prefix. */
static bool ejected_on(const char *prefix, uint16_t port)
{
    struct h_resp r;
    cr_assert(h_http(admin_port, "GET", "/admin/status", NULL, NULL, 0, &r));
    json_t *doc = json_loads(r.body, 0, NULL);
    h_resp_free(&r);
    cr_assert_not_null(doc);
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%u", (unsigned)port);
    bool found = false, ejected = false;
    size_t i, j;
    json_t *route, *in;
    json_array_foreach(json_object_get(doc, "routes"), i, route)
    {
        if (strcmp(json_string_value(json_object_get(route, "prefix")), prefix) != 0)
            continue;
        json_array_foreach(json_object_get(route, "instances"), j, in)
        {
            if (strcmp(json_string_value(json_object_get(in, "address")), addr) == 0) {
                found = true;
                ejected = json_is_true(json_object_get(in, "ejected"));
            }
        }
    }
    json_decref(doc);
    cr_assert(found, "%s not listed on %s", addr, prefix);
    return ejected;
}

Test(gateway_behaviour, an_instance_ejected_on_one_route_is_ejected_for_its_whole_service)
{
    struct fault_server *bad = upstream(0), *good = upstream(1);
    set_mode(bad, (struct fault_mode){.kind = FAULT_STATUS, .status = 503});
    char regs[160];
    snprintf(regs, sizeof regs, "static:svc=127.0.0.1:%u,svc=127.0.0.1:%u",
             (unsigned)fault_server_port(bad), (unsigned)fault_server_port(good));
    /* no retries and a breaker out of the way: each request is one attempt, and what
     * keeps it from the bad instance is the balancer alone */
    start_gateway("defaults:\n"
                  "  retry: {attempts: 1}\n"
                  "  breaker: {failures: 1000}\n"
                  "routes:\n"
                  "  - {prefix: /a, service: svc}\n"
                  "  - {prefix: /b, service: svc}\n",
                  regs);
    cr_assert(!ejected_on("/b", fault_server_port(bad)));
    /* round robin: the bad instance fails every other request on /a until its fifth
     * failure in a row ejects it */
    struct h_resp r;
    int failures = 0;
    for (int i = 0; i < 40 && failures < 5; i++) {
        if (call("GET", "/a/x", NULL, NULL, 0, &r, NULL) == 503)
            failures++;
        h_resp_free(&r);
    }
    cr_assert_eq(failures, 5);
    cr_assert(ejected_on("/a", fault_server_port(bad)));
    cr_assert(ejected_on("/b", fault_server_port(bad)), "the other route still uses it");
    size_t bad0 = fault_server_count(bad);
    for (int i = 0; i < 10; i++) {
        cr_assert_eq(call("GET", "/b/x", NULL, NULL, 0, &r, NULL), 200, "GET %d on /b: %ld", i,
                     r.status);
        h_resp_free(&r);
    }
    cr_assert_eq(fault_server_count(bad), bad0, "/b sent to the ejected instance");
    cr_assert_eq(h_stop(gw, 10000), 0);
}
