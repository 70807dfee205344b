/* test_registry_checks.c — ward-registry running its checks against real targets: HTTP
 * (2xx, 429, 5xx, timeout) and TCP probes, the success/failure thresholds, the reaper
 * (with --reap-min/--reap-interval), --data-dir across a restart, and the run metrics. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

/* --- a target: a tiny HTTP server answering every request with a chosen status --- */

struct target {
    int fd;
    uint16_t port;
    atomic_int status; /* 0: accept and never answer; 201: a 5000-byte body */
    atomic_bool stop;
    pthread_t thread;
};

static int listener(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(fd, 64), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static void *target_main(void *arg)
{
    struct target *t = arg;
    while (!atomic_load(&t->stop)) {
        struct pollfd p = {.fd = t->fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        int c = accept(t->fd, NULL, NULL);
        if (c < 0)
            continue;
        char buf[4096];
        ssize_t n = read(c, buf, sizeof buf); /* the probe's request fits */
        (void)n;
        int status = atomic_load(&t->status);
        if (n > 0 && strncmp(buf, "GET /loop", 9) == 0) {
            static const char loop[] = "HTTP/1.1 302 Found\r\nLocation: /loop\r\n"
                                       "Content-Length: 0\r\nConnection: close\r\n\r\n";
            cr_assert(h_send(c, loop, strlen(loop)));
        } else if (n > 0 && strncmp(buf, "GET /moved", 10) == 0) {
            static const char moved[] = "HTTP/1.1 301 Moved Permanently\r\nLocation: /health\r\n"
                                        "Content-Length: 0\r\nConnection: close\r\n\r\n";
            cr_assert(h_send(c, moved, strlen(moved)));
        } else if (status == 0) {
            /* hold the connection without answering until the prober gives up */
            struct pollfd q = {.fd = c, .events = POLLIN};
            for (int i = 0; i < 100 && !atomic_load(&t->stop); i++)
                if (poll(&q, 1, 50) > 0)
                    break;
        } else {
            static char big[5001];
            memset(big, 'x', 5000);
            const char *text = status == 201 ? big : "ok";
            char resp[256];
            int len = snprintf(resp, sizeof resp,
                               "HTTP/1.1 %d X\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                               "Connection: close\r\n\r\n",
                               status, strlen(text));
            cr_assert(h_send(c, resp, (size_t)len));
            cr_assert(h_send(c, text, strlen(text)));
        }
        close(c);
    }
    return NULL;
}

static struct target *target_start(int status)
{
    struct target *t = calloc(1, sizeof *t);
    cr_assert_not_null(t);
    t->fd = listener(&t->port);
    atomic_init(&t->status, status);
    atomic_init(&t->stop, false);
    cr_assert_eq(pthread_create(&t->thread, NULL, target_main, t), 0);
    return t;
}

static void target_stop(struct target *t)
{
    atomic_store(&t->stop, true);
    pthread_join(t->thread, NULL);
    close(t->fd);
    free(t);
}

/* --- the registry --- */

static struct h_proc *start_registry(const char *const *extra)
{
    const char *args[16] = {"--shutdown-delay", "0", "--no-access-log"};
    size_t n = 3;
    for (size_t i = 0; extra != NULL && extra[i] != NULL && n < 15; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    return h_start("ward-registry", args);
}

static void stop_registry(struct h_proc *reg)
{
    int st = h_stop(reg, 15000);
    if (st != 0)
        h_log_dump(reg);
    h_free(reg);
    cr_assert_eq(st, 0, "ward-registry exited with %d", st);
}

static void put(struct h_proc *reg, const char *path, const char *body)
{
    struct h_resp r;
    cr_assert(h_http(reg->port, "PUT", path, NULL, body, body != NULL ? strlen(body) : 0, &r));
    cr_assert_eq(r.status, 200, "PUT %s: %ld %s", path, r.status, r.body);
    h_resp_free(&r);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The check's object from /v1/agent/checks (a new reference), or NULL. */
static json_t *get_check(struct h_proc *reg, const char *id)
{
    struct h_resp r;
    cr_assert(h_http(reg->port, "GET", "/v1/agent/checks", NULL, NULL, 0, &r));
    json_t *c = json_incref(json_object_get(r.json, id));
    h_resp_free(&r);
    return c;
}

/* Waits (blocking queries on the service's health) until the check has status want;
 * returns its output (caller frees). */
static char *wait_status(struct h_proc *reg, const char *service, const char *id,
                         const char *want, int timeout_ms)
{
    int64_t end = now_ms() + timeout_ms;
    uint64_t index = 0;
    for (;;) {
        json_t *c = get_check(reg, id);
        const char *s = json_string_value(json_object_get(c, "Status"));
        if (s != NULL && strcmp(s, want) == 0) {
            char *out = strdup(json_string_value(json_object_get(c, "Output")));
            json_decref(c);
            return out;
        }
        cr_assert_lt(now_ms(), end, "check %s stayed %s, not %s", id, s != NULL ? s : "(none)", want);
        json_decref(c);
        char path[256];
        snprintf(path, sizeof path, "/v1/health/checks/%s?index=%llu&wait=500ms", service,
                 (unsigned long long)index);
        struct h_resp r;
        cr_assert(h_http(reg->port, "GET", path, NULL, NULL, 0, &r));
        char *v = h_resp_header(&r, "X-Consul-Index");
        index = v != NULL ? strtoull(v, NULL, 10) : 0;
        free(v);
        h_resp_free(&r);
    }
}

/* The value of a metric line (exact series text), 0 when absent. */
static long metric(struct h_proc *reg, const char *series)
{
    struct h_resp r;
    cr_assert(h_http(reg->port, "GET", "/metrics", NULL, NULL, 0, &r));
    long v = 0;
    const char *p = strstr(r.body, series);
    if (p != NULL)
        v = strtol(p + strlen(series), NULL, 10);
    h_resp_free(&r);
    return v;
}

/* Waits until the series counts at least n. */
static void wait_metric(struct h_proc *reg, const char *series, long n, int timeout_ms)
{
    int64_t end = now_ms() + timeout_ms;
    while (metric(reg, series) < n) {
        cr_assert_lt(now_ms(), end, "%s stayed below %ld", series, n);
        h_sleep_ms(20);
    }
}

#define RUNS(type, status) "registry_check_runs_total{type=\"" type "\",status=\"" status "\"} "

TestSuite(registry_checks, .timeout = 120);

Test(registry_checks, http_check_runs_at_once_and_maps_2xx_429_and_5xx)
{
    struct target *t = target_start(200);
    struct h_proc *reg = start_registry(NULL);
    char body[256];
    snprintf(body, sizeof body,
             "{\"Name\":\"web\",\"Check\":{\"HTTP\":\"http://127.0.0.1:%u/health\",\"Interval\":\"1s\"}}",
             t->port);
    put(reg, "/v1/agent/service/register", body);
    /* the first probe runs at once: well before the 1 s interval */
    char *out = wait_status(reg, "web", "service:web", "passing", 900);
    char want[256];
    snprintf(want, sizeof want, "HTTP GET http://127.0.0.1:%u/health: 200 OK Output: ok", t->port);
    cr_assert_str_eq(out, want);
    free(out);
    atomic_store(&t->status, 429);
    out = wait_status(reg, "web", "service:web", "warning", 5000);
    cr_assert(strstr(out, ": 429 Too Many Requests Output: ok") != NULL, "%s", out);
    free(out);
    atomic_store(&t->status, 500);
    out = wait_status(reg, "web", "service:web", "critical", 5000);
    cr_assert(strstr(out, ": 500 Internal Server Error Output: ok") != NULL, "%s", out);
    free(out);
    cr_assert_geq(metric(reg, RUNS("http", "passing")), 1);
    cr_assert_geq(metric(reg, RUNS("http", "warning")), 1);
    cr_assert_geq(metric(reg, RUNS("http", "critical")), 1);
    cr_assert_eq(metric(reg, RUNS("tcp", "passing")), 0);
    stop_registry(reg);
    target_stop(t);
}

Test(registry_checks, http_check_output_is_capped_at_4_kb)
{
    struct target *t = target_start(201);
    struct h_proc *reg = start_registry(NULL);
    char body[256];
    snprintf(body, sizeof body,
             "{\"Name\":\"big\",\"Check\":{\"HTTP\":\"http://127.0.0.1:%u/\",\"Interval\":\"10s\"}}",
             t->port);
    put(reg, "/v1/agent/service/register", body);
    char *out = wait_status(reg, "big", "service:big", "passing", 3000);
    char head[128];
    int n = snprintf(head, sizeof head, "HTTP GET http://127.0.0.1:%u/: 201 Created Output: xxx", t->port);
    cr_assert_eq(strncmp(out, head, (size_t)n), 0, "%.100s", out);
    const char *tail = strstr(out, " ... (captured 4096 of ");
    cr_assert_not_null(tail, "%s", out + 4000);
    cr_assert_eq(tail - out, 4096);
    free(out);
    stop_registry(reg);
    target_stop(t);
}

Test(registry_checks, http_check_follows_redirects_unless_disabled)
{
    struct target *t = target_start(200);
    struct h_proc *reg = start_registry(NULL);
    char body[512];
    snprintf(body, sizeof body,
             "{\"Name\":\"r\",\"Checks\":[{\"CheckID\":\"follow\",\"HTTP\":\"http://127.0.0.1:%u/moved\","
             "\"Interval\":\"10s\"},{\"CheckID\":\"nofollow\",\"HTTP\":\"http://127.0.0.1:%u/moved\","
             "\"Interval\":\"10s\",\"DisableRedirects\":true,\"Status\":\"passing\"},"
             "{\"CheckID\":\"loop\",\"HTTP\":\"http://127.0.0.1:%u/loop\",\"Interval\":\"10s\","
             "\"Status\":\"passing\"}]}",
             t->port, t->port, t->port);
    put(reg, "/v1/agent/service/register", body);
    char *out = wait_status(reg, "r", "follow", "passing", 3000);
    char want[128];
    snprintf(want, sizeof want, "HTTP GET http://127.0.0.1:%u/moved: 200 OK Output: ok", t->port);
    cr_assert_str_eq(out, want);
    free(out);
    out = wait_status(reg, "r", "nofollow", "critical", 3000);
    cr_assert(strstr(out, ": 301 Moved Permanently Output: ") != NULL, "%s", out);
    free(out);
    out = wait_status(reg, "r", "loop", "critical", 3000);
    cr_assert(strstr(out, "stopped after 10 redirects") != NULL, "%s", out);
    free(out);
    stop_registry(reg);
    target_stop(t);
}

Test(registry_checks, http_check_of_a_real_ward_service_health)
{
    struct h_proc *zakat = h_start("zakat-service", NULL);
    struct h_proc *reg = start_registry(NULL);
    char body[256];
    snprintf(body, sizeof body,
             "{\"Name\":\"zakat\",\"Port\":%u,\"Check\":{\"HTTP\":\"http://127.0.0.1:%u/health\","
             "\"Interval\":\"1s\",\"Timeout\":\"2s\"}}",
             zakat->port, zakat->port);
    put(reg, "/v1/agent/service/register", body);
    char *out = wait_status(reg, "zakat", "service:zakat", "passing", 3000);
    cr_assert(strstr(out, "/health: 200 OK Output: ") != NULL, "%s", out);
    free(out);
    /* the service goes away: the next probe cannot connect */
    cr_assert_eq(h_stop(zakat, 10000), 0);
    h_free(zakat);
    out = wait_status(reg, "zakat", "service:zakat", "critical", 5000);
    cr_assert(strstr(out, "GET http://127.0.0.1:") != NULL, "%s", out);
    free(out);
    stop_registry(reg);
}

Test(registry_checks, http_check_that_times_out_is_critical)
{
    struct target *t = target_start(0);
    struct h_proc *reg = start_registry(NULL);
    char body[256];
    snprintf(body, sizeof body,
             "{\"Name\":\"slow\",\"Check\":{\"HTTP\":\"http://127.0.0.1:%u/\",\"Interval\":\"10s\","
             "\"Timeout\":\"300ms\",\"Status\":\"passing\"}}",
             t->port);
    put(reg, "/v1/agent/service/register", body);
    char *out = wait_status(reg, "slow", "service:slow", "critical", 3000);
    cr_assert(strstr(out, "timeout") != NULL, "%s", out);
    free(out);
    stop_registry(reg);
    target_stop(t);
}

Test(registry_checks, tcp_check_passes_on_connect_and_fails_on_refusal)
{
    uint16_t port = 0;
    int fd = listener(&port);
    struct h_proc *reg = start_registry(NULL);
    char body[256];
    snprintf(body, sizeof body,
             "{\"Name\":\"db\",\"Check\":{\"TCP\":\"127.0.0.1:%u\",\"Interval\":\"1s\"}}", port);
    put(reg, "/v1/agent/service/register", body);
    char *out = wait_status(reg, "db", "service:db", "passing", 900);
    char want[128];
    snprintf(want, sizeof want, "TCP connect 127.0.0.1:%u: Success", port);
    cr_assert_str_eq(out, want);
    free(out);
    close(fd); /* now the port refuses */
    out = wait_status(reg, "db", "service:db", "critical", 5000);
    cr_assert(strstr(out, "onnection refused") != NULL, "%s", out);
    free(out);
    cr_assert_geq(metric(reg, RUNS("tcp", "passing")), 1);
    cr_assert_geq(metric(reg, RUNS("tcp", "critical")), 1);
    stop_registry(reg);
}

Test(registry_checks, thresholds_hold_the_status_until_reached)
{
    struct target *t = target_start(200);
    struct h_proc *reg = start_registry(NULL);
    char body[512];
    snprintf(body, sizeof body,
             "{\"Name\":\"th\",\"Check\":{\"HTTP\":\"http://127.0.0.1:%u/\",\"Interval\":\"1s\","
             "\"SuccessBeforePassing\":2,\"FailuresBeforeWarning\":2,\"FailuresBeforeCritical\":3}}",
             t->port);
    put(reg, "/v1/agent/service/register", body);
    /* the counters start at their thresholds: the first success publishes at once */
    free(wait_status(reg, "th", "service:th", "passing", 900));
    atomic_store(&t->status, 500);
    wait_metric(reg, RUNS("http", "critical"), 1, 5000);
    json_t *c = get_check(reg, "service:th");
    cr_assert_str_eq(json_string_value(json_object_get(c, "Status")), "passing",
                     "one failure of 2/3 changed it");
    json_decref(c);
    free(wait_status(reg, "th", "service:th", "warning", 5000)); /* second failure */
    cr_assert_eq(metric(reg, RUNS("http", "critical")), 2);
    free(wait_status(reg, "th", "service:th", "critical", 5000)); /* third */
    cr_assert_eq(metric(reg, RUNS("http", "critical")), 3);
    atomic_store(&t->status, 200);
    long before = metric(reg, RUNS("http", "passing"));
    wait_metric(reg, RUNS("http", "passing"), before + 1, 5000);
    c = get_check(reg, "service:th");
    cr_assert_str_eq(json_string_value(json_object_get(c, "Status")), "critical",
                     "one success of 2 changed it");
    json_decref(c);
    free(wait_status(reg, "th", "service:th", "passing", 5000));
    cr_assert_eq(metric(reg, RUNS("http", "passing")), before + 2);
    stop_registry(reg);
    target_stop(t);
}

Test(registry_checks, reaper_removes_services_critical_past_the_limit)
{
    static const char *const flags[] = {"--reap-min", "200ms", "--reap-interval", "100ms", NULL};
    struct h_proc *reg = start_registry(flags);
    put(reg, "/v1/agent/service/register",
        "{\"Name\":\"dead\",\"Check\":{\"TTL\":\"1h\",\"DeregisterCriticalServiceAfter\":\"300ms\"}}");
    put(reg, "/v1/agent/service/register",
        "{\"Name\":\"alive\",\"Check\":{\"TTL\":\"1h\",\"Status\":\"passing\","
        "\"DeregisterCriticalServiceAfter\":\"300ms\"}}");
    put(reg, "/v1/agent/service/register",
        "{\"Name\":\"kept\",\"Check\":{\"TTL\":\"1h\"}}"); /* critical, but no limit */
    json_t *line = h_log_wait(reg, "service reaped", 5000);
    cr_assert_not_null(line, "nothing reaped");
    cr_assert_str_eq(json_string_value(json_object_get(line, "service_id")), "dead");
    json_decref(line);
    struct h_resp r;
    cr_assert(h_http(reg->port, "GET", "/v1/agent/services", NULL, NULL, 0, &r));
    cr_assert_null(json_object_get(r.json, "dead"), "%s", r.body);
    cr_assert_not_null(json_object_get(r.json, "alive"), "%s", r.body);
    cr_assert_not_null(json_object_get(r.json, "kept"), "%s", r.body);
    h_resp_free(&r);
    stop_registry(reg);
}

Test(registry_checks, reap_min_raises_a_short_limit)
{
    static const char *const flags[] = {"--reap-min", "1500ms", "--reap-interval", "50ms", NULL};
    struct h_proc *reg = start_registry(flags);
    int64_t t0 = now_ms();
    put(reg, "/v1/agent/service/register",
        "{\"Name\":\"dead\",\"Check\":{\"TTL\":\"1h\",\"DeregisterCriticalServiceAfter\":\"100ms\"}}");
    json_t *line = h_log_wait(reg, "service reaped", 5000);
    cr_assert_not_null(line, "nothing reaped");
    json_decref(line);
    cr_assert_geq(now_ms() - t0, 1500, "reaped before --reap-min");
    stop_registry(reg);
}

static void temp_dir(char *buf, size_t size)
{
    snprintf(buf, size, "/tmp/ward-reg-test-XXXXXX");
    cr_assert_not_null(mkdtemp(buf));
}

static void remove_dir(const char *dir)
{
    char path[512];
    snprintf(path, sizeof path, "%s/registry.json", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/registry.json.tmp", dir);
    unlink(path);
    rmdir(dir);
}

Test(registry_checks, data_dir_keeps_services_and_check_states_across_a_restart)
{
    char dir[64];
    temp_dir(dir, sizeof dir);
    const char *const flags[] = {"--data-dir", dir, NULL};
    struct h_proc *reg = start_registry(flags);
    put(reg, "/v1/agent/service/register",
        "{\"Name\":\"web\",\"ID\":\"web-1\",\"Port\":8080,\"Tags\":[\"v1\"],\"Meta\":{\"a\":\"b\"},"
        "\"Check\":{\"TTL\":\"1h\"}}");
    put(reg, "/v1/agent/service/register", "{\"Name\":\"db\",\"Check\":{\"TTL\":\"1h\"}}");
    put(reg, "/v1/agent/check/pass/service:web-1?note=hello", NULL);
    put(reg, "/v1/agent/check/register", "{\"Name\":\"maint\",\"TTL\":\"1h\",\"Status\":\"warning\"}");
    put(reg, "/v1/agent/service/register",
        "{\"Name\":\"h\",\"Check\":{\"HTTP\":\"http://127.0.0.1:1/x\",\"Interval\":\"1h\","
        "\"Timeout\":\"2s\",\"Header\":{\"X-A\":[\"b\"]},\"FailuresBeforeCritical\":3}}");
    stop_registry(reg);

    reg = start_registry(flags);
    struct h_resp r;
    cr_assert(h_http(reg->port, "GET", "/v1/agent/services", NULL, NULL, 0, &r));
    json_t *web = json_object_get(r.json, "web-1");
    cr_assert_not_null(web, "%s", r.body);
    cr_assert_not_null(json_object_get(r.json, "db"), "%s", r.body);
    cr_assert_eq(json_integer_value(json_object_get(web, "Port")), 8080);
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(web, "Tags"), 0)), "v1");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(web, "Meta"), "a")), "b");
    h_resp_free(&r);
    json_t *c = get_check(reg, "service:web-1");
    cr_assert_str_eq(json_string_value(json_object_get(c, "Status")), "passing");
    cr_assert_str_eq(json_string_value(json_object_get(c, "Output")), "hello");
    cr_assert_str_eq(json_string_value(json_object_get(c, "Type")), "ttl");
    json_decref(c);
    c = get_check(reg, "service:db");
    cr_assert_str_eq(json_string_value(json_object_get(c, "Status")), "critical");
    json_decref(c);
    c = get_check(reg, "maint");
    cr_assert_str_eq(json_string_value(json_object_get(c, "Status")), "warning");
    json_decref(c);
    c = get_check(reg, "service:h");
    cr_assert_str_eq(json_string_value(json_object_get(c, "Type")), "http");
    json_t *def = json_object_get(c, "Definition");
    cr_assert_str_eq(json_string_value(json_object_get(def, "HTTP")), "http://127.0.0.1:1/x");
    cr_assert_str_eq(json_string_value(json_object_get(def, "Interval")), "1h0m0s");
    cr_assert_str_eq(json_string_value(json_object_get(def, "Timeout")), "2s");
    cr_assert_str_eq(
        json_string_value(json_array_get(json_object_get(json_object_get(def, "Header"), "X-A"), 0)), "b");
    json_decref(c);
    /* still a TTL check that takes updates */
    put(reg, "/v1/agent/check/fail/service:web-1?note=down", NULL);
    stop_registry(reg);

    reg = start_registry(flags);
    c = get_check(reg, "service:web-1");
    cr_assert_str_eq(json_string_value(json_object_get(c, "Status")), "critical");
    cr_assert_str_eq(json_string_value(json_object_get(c, "Output")), "down");
    json_decref(c);
    stop_registry(reg);
    remove_dir(dir);
}

Test(registry_checks, corrupt_data_file_is_logged_and_the_registry_starts_empty)
{
    char dir[64], path[128];
    temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/registry.json", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("{\"Version\":1,\"Services\":[{\"ID\":", f);
    fclose(f);
    const char *const flags[] = {"--data-dir", dir, NULL};
    struct h_proc *reg = start_registry(flags);
    json_t *line = h_log_wait(reg, "cannot load the data file", 5000);
    cr_assert_not_null(line);
    json_decref(line);
    struct h_resp r;
    cr_assert(h_http(reg->port, "GET", "/v1/agent/services", NULL, NULL, 0, &r));
    cr_assert_str_eq(r.body, "{}");
    h_resp_free(&r);
    /* and it writes a good file again */
    put(reg, "/v1/agent/service/register", "{\"Name\":\"x\",\"Check\":{\"TTL\":\"1h\"}}");
    stop_registry(reg);
    reg = start_registry(flags);
    cr_assert(h_http(reg->port, "GET", "/v1/agent/services", NULL, NULL, 0, &r));
    cr_assert_not_null(json_object_get(r.json, "x"), "%s", r.body);
    h_resp_free(&r);
    stop_registry(reg);
    remove_dir(dir);
}
