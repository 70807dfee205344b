/* test_discovery.c — the registry client (include/ward/registry.h) against a real
 * ward-registry: register, deregister, discover passing instances only, watch callbacks,
 * anti-entropy and watch recovery after a registry restart without --data-dir, the cache
 * while the registry is down and resilient calls by service name going on from it; the watch's index rules, token bucket and token header against
 * a scripted fake agent; and the static backend and URL parsing. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ward/rclient.h>
#include <ward/registry.h>

#include "harness.h"

#define MS INT64_C(1000000)

static struct h_proc *start_registry(const char *listen)
{
    const char *args[] = {"--shutdown-delay", "0", "--no-access-log", NULL, NULL, NULL};
    if (listen != NULL) {
        args[3] = "--listen";
        args[4] = listen;
    }
    return h_start("ward-registry", args);
}

static struct ward_registry *client(uint16_t port, int64_t keep_period)
{
    struct ward_registry_settings s;
    ward_registry_settings_default(&s);
    char url[64];
    snprintf(url, sizeof url, "consul://127.0.0.1:%u", (unsigned)port);
    s.url = url;
    s.watch_wait = 1000 * MS;
    s.keep_period = keep_period;
    s.backoff.base_ns = 20 * MS;
    s.backoff.cap_ns = 200 * MS;
    struct ward_registry *r = NULL;
    cr_assert_eq(ward_registry_new(&s, &r), WARD_ERR_OK);
    return r;
}

/* A registration whose /ready check targets port (the registry itself answers 200). */
static struct ward_registration web(const char *id, uint16_t port)
{
    static const char *const tags[] = {"v1", "primary", NULL};
    return (struct ward_registration){.id = id, .name = "web", .address = "127.0.0.1",
                                      .port = port, .tags = tags, .version = "0.1.0"};
}

/* What the watch callback saw. */
struct seen {
    pthread_mutex_t m;
    pthread_cond_t c;
    int calls;
    size_t len;
};

static void on_change(const struct ward_instances *now, void *arg)
{
    struct seen *s = arg;
    pthread_mutex_lock(&s->m);
    s->calls++;
    s->len = now->len;
    pthread_cond_broadcast(&s->c);
    pthread_mutex_unlock(&s->m);
}

/* Waits up to ms for a callback reporting len instances. */
static bool wait_len(struct seen *s, size_t len, int ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->m);
    int rc = 0;
    while ((s->calls == 0 || s->len != len) && rc == 0)
        rc = pthread_cond_timedwait(&s->c, &s->m, &until);
    bool ok = s->calls > 0 && s->len == len;
    pthread_mutex_unlock(&s->m);
    return ok;
}

/* The number of passing entries ward-registry lists for web. */
static size_t listed(uint16_t port)
{
    struct h_resp resp;
    cr_assert(h_http(port, "GET", "/v1/health/service/web?passing", NULL, NULL, 0, &resp));
    cr_assert_eq(resp.status, 200);
    size_t n = json_array_size(resp.json);
    h_resp_free(&resp);
    return n;
}

/* Polls until the agent knows id (bounded: a result, not a time, is awaited). */
static bool known(uint16_t port, const char *id, int ms)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/agent/service/%s", id);
    for (int i = 0; i < ms / 20; i++, h_sleep_ms(20)) {
        struct h_resp resp;
        if (h_http(port, "GET", path, NULL, NULL, 0, &resp)) {
            long st = resp.status;
            h_resp_free(&resp);
            if (st == 200)
                return true;
        }
    }
    return false;
}

Test(discovery, register_lists_with_passing_check_and_deregister_removes)
{
    struct h_proc *reg = start_registry(NULL);
    struct ward_registry *r = client(reg->port, 10000 * MS);
    struct ward_registration w1 = web("web-1", reg->port);
    cr_assert_eq(ward_registry_register(r, &w1), WARD_ERR_OK);
    cr_assert_eq(listed(reg->port), 1);

    struct h_resp resp;
    cr_assert(h_http(reg->port, "GET", "/v1/agent/service/web-1", NULL, NULL, 0, &resp));
    cr_assert_eq(resp.status, 200);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(resp.json, "Meta"),
                                                       "version")), "0.1.0");
    cr_assert_eq(json_array_size(json_object_get(resp.json, "Tags")), 2);
    cr_assert_eq(json_integer_value(json_object_get(resp.json, "Port")), reg->port);
    h_resp_free(&resp);
    cr_assert(h_http(reg->port, "GET", "/v1/agent/checks", NULL, NULL, 0, &resp));
    json_t *check = json_object_get(resp.json, "service:web-1");
    cr_assert_str_eq(json_string_value(json_object_get(check, "Status")), "passing");
    char want[64];
    snprintf(want, sizeof want, "http://127.0.0.1:%u/ready", (unsigned)reg->port);
    json_t *def = json_object_get(check, "Definition");
    cr_assert_str_eq(json_string_value(json_object_get(def, "HTTP")), want);
    cr_assert_str_eq(json_string_value(json_object_get(def, "Interval")), "2s");
    cr_assert_str_eq(json_string_value(json_object_get(def, "Timeout")), "1s");
    h_resp_free(&resp);

    struct ward_instances got;
    cr_assert_eq(ward_registry_discover(r, "web", &got), WARD_ERR_OK);
    cr_assert_eq(got.len, 1);
    cr_assert_str_eq(got.items[0].id, "web-1");
    cr_assert_str_eq(got.items[0].address, "127.0.0.1");
    cr_assert_eq(got.items[0].port, reg->port);
    ward_instances_fini(&got);

    cr_assert_eq(ward_registry_deregister(r, "web-1"), WARD_ERR_OK);
    cr_assert_eq(listed(reg->port), 0);
    cr_assert_eq(ward_registry_deregister(r, "web-1"), WARD_ERR_NOT_FOUND);
    ward_registry_free(r);
    cr_assert_eq(h_stop(reg, 10000), 0);
    h_free(reg);
}

Test(discovery, discover_returns_only_passing_instances)
{
    struct h_proc *reg = start_registry(NULL);
    struct ward_registry *r = client(reg->port, 10000 * MS);
    struct ward_registration ok = web("web-ok", reg->port);
    struct ward_registration bad = web("web-bad", 1); /* nothing listens on port 1 */
    bad.initial_status = "critical";
    cr_assert_eq(ward_registry_register(r, &ok), WARD_ERR_OK);
    cr_assert_eq(ward_registry_register(r, &bad), WARD_ERR_OK);
    struct ward_instances got;
    cr_assert_eq(ward_registry_discover(r, "web", &got), WARD_ERR_OK);
    cr_assert_eq(got.len, 1);
    cr_assert_str_eq(got.items[0].id, "web-ok");
    ward_instances_fini(&got);
    cr_assert_eq(ward_registry_discover(r, "nobody", &got), WARD_ERR_OK);
    cr_assert_eq(got.len, 0);
    ward_registry_free(r);
    cr_assert_eq(h_stop(reg, 10000), 0);
    h_free(reg);
}

Test(discovery, watch_calls_back_on_register_and_deregister_within_a_second)
{
    struct h_proc *reg = start_registry(NULL);
    struct ward_registry *r = client(reg->port, 10000 * MS);
    struct seen s = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 99};
    cr_assert_eq(ward_registry_watch(r, "web", on_change, &s), WARD_ERR_OK);
    cr_assert_eq(ward_registry_watch(r, "web", on_change, &s), WARD_ERR_EXISTS);
    cr_assert(wait_len(&s, 0, 1000), "no first answer");
    struct ward_registration w1 = web("web-1", reg->port);
    cr_assert_eq(ward_registry_register(r, &w1), WARD_ERR_OK);
    cr_assert(wait_len(&s, 1, 1000), "register not seen within 1 s");
    struct ward_instances got;
    cr_assert_eq(ward_registry_cached(r, "web", &got), WARD_ERR_OK);
    cr_assert_eq(got.len, 1);
    cr_assert_str_eq(got.items[0].id, "web-1");
    ward_instances_fini(&got);
    cr_assert_eq(ward_registry_cached(r, "other", &got), WARD_ERR_NOT_FOUND);
    cr_assert_eq(ward_registry_deregister(r, "web-1"), WARD_ERR_OK);
    cr_assert(wait_len(&s, 0, 1000), "deregister not seen within 1 s");
    pthread_mutex_lock(&s.m);
    cr_assert_eq(s.calls, 3);
    pthread_mutex_unlock(&s.m);
    ward_registry_free(r);
    cr_assert_eq(h_stop(reg, 10000), 0);
    h_free(reg);
}

Test(discovery, registry_down_keeps_cache_and_restart_reregisters_and_watch_resumes)
{
    struct h_proc *reg = start_registry(NULL);
    uint16_t port = reg->port;
    struct ward_registry *r = client(port, 100 * MS);
    struct seen s = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 99};
    struct ward_registration w1 = web("web-1", port);
    cr_assert_eq(ward_registry_register(r, &w1), WARD_ERR_OK);
    cr_assert_eq(ward_registry_keep_registered(r, &w1), WARD_ERR_OK);
    cr_assert_eq(ward_registry_keep_registered(r, &w1), WARD_ERR_EXISTS);
    cr_assert_eq(ward_registry_watch(r, "web", on_change, &s), WARD_ERR_OK);
    cr_assert(wait_len(&s, 1, 1000));

    h_signal(reg, SIGKILL);
    cr_assert_neq(h_wait(reg, 10000), -1);
    h_free(reg);
    struct ward_instances got;
    cr_assert_eq(ward_registry_discover(r, "web", &got), WARD_ERR_CONNECT);
    cr_assert_eq(got.len, 0);
    cr_assert_eq(ward_registry_cached(r, "web", &got), WARD_ERR_OK);
    cr_assert_eq(got.len, 1, "the cache keeps the last known instances");
    ward_instances_fini(&got);

    char listen[32];
    snprintf(listen, sizeof listen, "127.0.0.1:%u", (unsigned)port);
    reg = start_registry(listen); /* no --data-dir: it forgot us */
    cr_assert_eq(reg->port, port);
    cr_assert(known(port, "web-1", 3000), "keep_registered did not register again");
    struct ward_registration w2 = web("web-2", port);
    cr_assert_eq(ward_registry_register(r, &w2), WARD_ERR_OK);
    cr_assert(wait_len(&s, 2, 3000), "the watch did not resume");
    cr_assert_eq(ward_registry_cached(r, "web", &got), WARD_ERR_OK);
    cr_assert_eq(got.len, 2);
    cr_assert_str_eq(got.items[0].id, "web-1");
    cr_assert_str_eq(got.items[1].id, "web-2");
    ward_instances_fini(&got);
    /* Deregistration stops the keeper: web-1 stays gone. */
    cr_assert_eq(ward_registry_deregister(r, "web-1"), WARD_ERR_OK);
    cr_assert(wait_len(&s, 1, 1000));
    ward_registry_free(r);
    cr_assert_eq(known(port, "web-1", 40), false);
    cr_assert_eq(h_stop(reg, 10000), 0);
    h_free(reg);
}

/* The successes the client's balancer counted for the instance on port. */
static uint64_t successes(struct ward_rclient *rc, uint16_t port)
{
    char id[32];
    struct ward_balancer_instance_stats st;
    snprintf(id, sizeof id, "127.0.0.1:%u", (unsigned)port);
    cr_assert_eq(ward_balancer_instance_stats(ward_rclient_balancer(rc), id, &st), WARD_ERR_OK);
    return st.successes;
}

static void call_web(struct ward_rclient *rc, int n)
{
    for (int i = 0; i < n; i++) {
        struct ward_http_result res = {0};
        enum ward_err err =
            ward_rclient_call(rc, &(struct ward_http_call){.url = "/v1/status/leader"}, &res);
        cr_assert_eq(err, WARD_ERR_OK, "call %d: %s", i, ward_strerror(err));
        cr_assert_eq(res.status, 200);
        ward_http_result_fini(&res);
    }
}

Test(discovery, registry_down_calls_keep_going_to_known_instances)
{
    /* two more ward-registry processes play the instances of "web": they answer /ready
     * (so their checks pass) and /v1/status/leader */
    struct h_proc *reg = start_registry(NULL), *a = start_registry(NULL),
                  *b = start_registry(NULL);
    struct ward_registry *r = client(reg->port, 10000 * MS);
    struct ward_registration wa = web("web-a", a->port), wb = web("web-b", b->port);
    cr_assert_eq(ward_registry_register(r, &wa), WARD_ERR_OK);
    cr_assert_eq(ward_registry_register(r, &wb), WARD_ERR_OK);
    struct ward_rclient_settings s;
    ward_rclient_settings_default(&s);
    s.name = "web";
    s.discovery.registry = r;
    struct ward_rclient *rc = NULL;
    cr_assert_eq(ward_rclient_new(&s, &rc), WARD_ERR_OK);
    call_web(rc, 20);
    cr_assert_eq(successes(rc, a->port), 10);
    cr_assert_eq(successes(rc, b->port), 10);

    h_signal(reg, SIGKILL);
    cr_assert_neq(h_wait(reg, 10000), -1);
    call_web(rc, 40); /* from the watch's cache: no call needs the registry */
    cr_assert_eq(successes(rc, a->port), 30);
    cr_assert_eq(successes(rc, b->port), 30);

    ward_rclient_free(rc);
    ward_registry_free(r);
    h_free(reg);
    cr_assert_eq(h_stop(a, 10000), 0);
    cr_assert_eq(h_stop(b, 10000), 0);
    h_free(a);
    h_free(b);
}

Test(discovery, static_url_lists_instances_and_register_is_a_noop)
{
    struct ward_registry_settings st;
    ward_registry_settings_default(&st);
    st.url = "static:zakat=127.0.0.1:8082,zakat=127.0.0.1:8081,pay=[::1]:9000";
    struct ward_registry *r = NULL;
    cr_assert_eq(ward_registry_new(&st, &r), WARD_ERR_OK);
    struct ward_instances got;
    cr_assert_eq(ward_registry_discover(r, "zakat", &got), WARD_ERR_OK);
    cr_assert_eq(got.len, 2);
    cr_assert_str_eq(got.items[0].id, "zakat@127.0.0.1:8081");
    cr_assert_str_eq(got.items[0].address, "127.0.0.1");
    cr_assert_eq(got.items[0].port, 8081);
    cr_assert_eq(got.items[1].port, 8082);
    ward_instances_fini(&got);
    cr_assert_eq(ward_registry_discover(r, "pay", &got), WARD_ERR_OK);
    cr_assert_eq(got.len, 1);
    cr_assert_str_eq(got.items[0].address, "[::1]");
    ward_instances_fini(&got);
    struct seen s = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 99};
    cr_assert_eq(ward_registry_watch(r, "zakat", on_change, &s), WARD_ERR_OK);
    cr_assert_eq(s.calls, 1);
    cr_assert_eq(s.len, 2);
    cr_assert_eq(ward_registry_cached(r, "zakat", &got), WARD_ERR_OK);
    cr_assert_eq(got.len, 2);
    ward_instances_fini(&got);
    struct ward_registration w = web("x", 1);
    cr_assert_eq(ward_registry_register(r, &w), WARD_ERR_OK);
    cr_assert_eq(ward_registry_keep_registered(r, &w), WARD_ERR_OK);
    cr_assert_eq(ward_registry_deregister(r, "x"), WARD_ERR_OK);
    ward_registry_free(r);
}

Test(discovery, no_url_means_no_registry)
{
    struct ward_registry_settings st;
    ward_registry_settings_default(&st);
    struct ward_registry *r = NULL;
    cr_assert_eq(ward_registry_new(&st, &r), WARD_ERR_OK);
    struct ward_registration w = web("x", 1);
    cr_assert_eq(ward_registry_register(r, &w), WARD_ERR_OK);
    struct ward_instances got;
    cr_assert_eq(ward_registry_discover(r, "web", &got), WARD_ERR_OK);
    cr_assert_eq(got.len, 0);
    w.address = "0.0.0.0";
    cr_assert_eq(ward_registry_register(r, &w), WARD_ERR_INVAL);
    ward_registry_free(r);
}

Test(discovery, bad_urls_are_rejected_with_inval)
{
    static const char *const bad[] = {
        "consul://", "consul://127.0.0.1", "consul://127.0.0.1:0", "consul://h:65536",
        "consul://h:12x", "consul://:8500", "consul://h:8500/v1", "http://h:8500", "static:",
        "static:a", "static:a=h", "static:=h:1", "static:a=h:1,", "static:a=h:1,b",
        "static:a=::1:80", "consul:/h:1", "etcd://", "etcd://h", "etcd://h:0", "etcd://h:1,",
        "etcd://h:1,,h:2", "etcd://h:1/v3", "etcd:/h:1", "zk://h:2181"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct ward_registry_settings st;
        ward_registry_settings_default(&st);
        st.url = bad[i];
        struct ward_registry *r = (struct ward_registry *)&st;
        cr_assert_eq(ward_registry_new(&st, &r), WARD_ERR_INVAL, "%s", bad[i]);
        cr_assert_null(r, "%s", bad[i]);
    }
    struct ward_registry_settings st;
    ward_registry_settings_default(&st);
    st.url = "consul://localhost:8500/";
    st.token = "secret";
    struct ward_registry *r = NULL;
    cr_assert_eq(ward_registry_new(&st, &r), WARD_ERR_OK);
    ward_registry_free(r);
    st.url = "etcd://127.0.0.1:2379,[::1]:2379,h3:2379/";
    cr_assert_eq(ward_registry_new(&st, &r), WARD_ERR_OK);
    ward_registry_free(r);
    st.url = "etcd://127.0.0.1:2379";
    st.lease_ttl = 999 * MS; /* etcd leases are whole seconds */
    cr_assert_eq(ward_registry_new(&st, &r), WARD_ERR_INVAL);
    st.lease_ttl = 10000 * MS;
    st.url = "consul://localhost:8500/";
    st.token = "a\r\nX-Evil: 1";
    cr_assert_eq(ward_registry_new(&st, &r), WARD_ERR_INVAL);
    cr_assert_null(r);
    st.token = NULL;
    st.watch_wait = 0;
    cr_assert_eq(ward_registry_new(&st, &r), WARD_ERR_INVAL);
}

/* A scripted fake agent: answers each request with "[]" and the next X-Consul-Index. */
struct fake {
    int fd;
    uint16_t port;
    pthread_t thread;
    pthread_mutex_t m;
    const uint64_t *script;
    size_t script_len;
    char *requests[16]; /* the raw request heads, in order */
    struct timespec at[16];
    size_t n;
};

static void *fake_main(void *arg)
{
    struct fake *f = arg;
    for (;;) {
        int c = accept(f->fd, NULL, NULL);
        if (c < 0)
            break;
        char buf[4096];
        size_t len = 0;
        while (len < sizeof buf - 1 && (len < 4 || memcmp(buf + len - 4, "\r\n\r\n", 4) != 0)) {
            ssize_t got = read(c, buf + len, sizeof buf - 1 - len);
            if (got <= 0)
                break;
            len += (size_t)got;
        }
        buf[len] = '\0';
        pthread_mutex_lock(&f->m);
        size_t i = f->n;
        if (i < 16) {
            f->requests[i] = strdup(buf);
            clock_gettime(CLOCK_MONOTONIC, &f->at[i]);
            f->n++;
        }
        uint64_t index = i < f->script_len ? f->script[i] : 99;
        pthread_mutex_unlock(&f->m);
        char resp[256];
        int n = snprintf(resp, sizeof resp,
                         "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         "X-Consul-Index: %llu\r\nContent-Length: 2\r\n"
                         "Connection: close\r\n\r\n[]", (unsigned long long)index);
        cr_assert(write(c, resp, (size_t)n) == n);
        close(c);
    }
    return NULL;
}

static void fake_start(struct fake *f, const uint64_t *script, size_t n)
{
    *f = (struct fake){.script = script, .script_len = n};
    pthread_mutex_init(&f->m, NULL);
    f->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(f->fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    cr_assert(bind(f->fd, (struct sockaddr *)&a, sizeof a) == 0);
    cr_assert(listen(f->fd, 16) == 0);
    cr_assert(getsockname(f->fd, (struct sockaddr *)&a, &al) == 0);
    f->port = ntohs(a.sin_port);
    cr_assert(pthread_create(&f->thread, NULL, fake_main, f) == 0);
}

static void fake_stop(struct fake *f)
{
    shutdown(f->fd, SHUT_RDWR);
    pthread_join(f->thread, NULL);
    close(f->fd);
    for (size_t i = 0; i < f->n; i++)
        free(f->requests[i]);
    pthread_mutex_destroy(&f->m);
}

/* The request line's target of request i ("" past the end). */
static void target(struct fake *f, size_t i, char *out, size_t n)
{
    pthread_mutex_lock(&f->m);
    const char *req = i < f->n ? f->requests[i] : "";
    const char *sp = strchr(req, ' ');
    const char *end = sp != NULL ? strchr(sp + 1, ' ') : NULL;
    size_t len = end != NULL ? (size_t)(end - sp - 1) : 0;
    snprintf(out, n, "%.*s", (int)len, sp != NULL ? sp + 1 : "");
    pthread_mutex_unlock(&f->m);
}

Test(discovery, watch_follows_index_rules_and_its_token_bucket)
{
    /* 5, then 7; 3 goes backwards (reset: no index); 0 counts as 1; then 2. */
    static const uint64_t script[] = {5, 7, 3, 0, 2};
    struct fake f;
    fake_start(&f, script, 5);
    struct ward_registry_settings st;
    ward_registry_settings_default(&st);
    char url[64];
    snprintf(url, sizeof url, "consul://127.0.0.1:%u", (unsigned)f.port);
    st.url = url;
    st.token = "s3cret";
    st.watch_wait = 1000 * MS;
    st.watch_rate = 5; /* burst 2, then one every 200 ms */
    struct ward_registry *r = NULL;
    cr_assert_eq(ward_registry_new(&st, &r), WARD_ERR_OK);
    struct seen s = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 99};
    cr_assert_eq(ward_registry_watch(r, "web", on_change, &s), WARD_ERR_OK);
    cr_assert(wait_len(&s, 0, 2000));
    bool six = false;
    for (int i = 0; i < 150 && !six; i++, h_sleep_ms(20)) {
        pthread_mutex_lock(&f.m);
        six = f.n >= 6;
        pthread_mutex_unlock(&f.m);
    }
    ward_registry_free(r);
    cr_assert(six, "fewer than 6 queries in 3 s");
    static const char *const want[] = {
        "/v1/health/service/web?passing",
        "/v1/health/service/web?passing&index=5&wait=1s",
        "/v1/health/service/web?passing&index=7&wait=1s",
        "/v1/health/service/web?passing",
        "/v1/health/service/web?passing&index=1&wait=1s",
        "/v1/health/service/web?passing&index=2&wait=1s",
    };
    for (size_t i = 0; i < 6; i++) {
        char got[256];
        target(&f, i, got, sizeof got);
        cr_assert_str_eq(got, want[i], "request %zu", i);
    }
    cr_assert(strstr(f.requests[0], "X-Consul-Token: s3cret\r\n") != NULL);
    /* Burst 2 at 5/s: the 6th query cannot start before 4 × 200 ms after the 1st. */
    int64_t gap = (f.at[5].tv_sec - f.at[0].tv_sec) * 1000000000LL + f.at[5].tv_nsec -
                  f.at[0].tv_nsec;
    cr_assert_geq(gap, 780 * MS, "the 6th query came after %lld ns", (long long)gap);
    pthread_mutex_lock(&s.m);
    cr_assert_eq(s.calls, 1, "only the first answer is a change");
    pthread_mutex_unlock(&s.m);
    fake_stop(&f);
}
