/* test_etcd.c — the registry client's etcd backend against real etcd: registration as a
 * key in etcd's endpoints format under a lease, discovery by range (foreign values
 * skipped), the watch seeing adds and removes, deregistration revoking the lease; a lease
 * revoked behind the client's back re-registered; the instance's own check taking its
 * key down and putting it back; zakat-service registered with --registry etcd://, its key
 * expiring after SIGKILL and revoked on SIGTERM; recovery from an etcd restart, with its
 * data and without (everything registered again); and a
 * three-member cluster losing a member while discovery and keep-alive go on. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ward/log.h>
#include <ward/registry.h>

#include "etcd_harness.h"

#define MS INT64_C(1000000)

static struct h_etcd *etcd;
static struct ward_registry *client_a, *client_b;

static void teardown(void)
{
    ward_registry_free(client_a);
    ward_registry_free(client_b);
    client_a = client_b = NULL;
    h_etcd_stop(etcd);
    etcd = NULL;
}

TestSuite(etcd, .fini = teardown, .timeout = 90);

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A client of the cluster with the test's short timings (TTL: etcd's least, 1 s here),
 * trying member `first` first (-1: in order). */
static struct ward_registry *client_of(struct ward_log *log, int first)
{
    char url[256];
    struct ward_registry_settings s;
    struct ward_registry *r = NULL;

    snprintf(url, sizeof url, "etcd://%s", h_etcd_endpoints(etcd));
    if (first >= 0) {
        int n = snprintf(url, sizeof url, "etcd://127.0.0.1:%u",
                         (unsigned)h_etcd_client_port(etcd, first));
        for (int i = 0; i < h_etcd_members(etcd); i++)
            if (i != first)
                n += snprintf(url + n, sizeof url - (size_t)n, ",127.0.0.1:%u",
                              (unsigned)h_etcd_client_port(etcd, i));
    }
    ward_registry_settings_default(&s);
    s.url = url;
    s.lease_ttl = 1000 * MS;
    s.request_timeout = 1000 * MS;
    s.backoff.base_ns = 20 * MS;
    s.backoff.cap_ns = 200 * MS;
    s.log = log;
    cr_assert_eq(ward_registry_new(&s, &r), WARD_ERR_OK);
    return r;
}

static struct ward_registry *client(struct ward_log *log)
{
    return client_of(log, -1);
}

/* A registration of "web" at port (no check unless check_path is set). */
static struct ward_registration web(const char *id, uint16_t port)
{
    static const char *const tags[] = {"v1", NULL};
    return (struct ward_registration){.id = id, .name = "web", .address = "127.0.0.1",
                                      .port = port, .tags = tags, .version = "1.2.3",
                                      .check_path = ""};
}

static char *key_of(uint16_t port)
{
    char *k = malloc(64);
    cr_assert_not_null(k);
    snprintf(k, 64, "services/web/127.0.0.1:%u", (unsigned)port);
    return k;
}

/* Polls until the number of keys under prefix is n. */
static bool wait_count(const char *prefix, size_t n, int ms)
{
    int64_t until = now_ms() + ms;
    do {
        if (h_etcd_count_prefix(etcd, prefix) == n)
            return true;
        h_sleep_ms(10);
    } while (now_ms() < until);
    return false;
}

/* What a watch callback saw. */
struct seen {
    pthread_mutex_t m;
    int calls;
    size_t len;
    char first_id[64];
};

static void on_change(const struct ward_instances *now, void *arg)
{
    struct seen *s = arg;
    pthread_mutex_lock(&s->m);
    s->calls++;
    s->len = now->len;
    snprintf(s->first_id, sizeof s->first_id, "%s", now->len > 0 ? now->items[0].id : "");
    pthread_mutex_unlock(&s->m);
}

static bool wait_seen(struct seen *s, size_t len, int ms)
{
    int64_t until = now_ms() + ms;
    for (;;) {
        pthread_mutex_lock(&s->m);
        bool ok = s->calls > 0 && s->len == len;
        pthread_mutex_unlock(&s->m);
        if (ok)
            return true;
        if (now_ms() >= until)
            return false;
        h_sleep_ms(5);
    }
}

Test(etcd, register_in_endpoints_format_discover_and_deregister)
{
    etcd = h_etcd_start(1);
    client_a = client(NULL);
    struct ward_registration w1 = web("web-1", 8081), w2 = web("web-2", 8082);
    cr_assert_eq(ward_registry_register(client_a, &w1), WARD_ERR_OK);
    cr_assert_eq(ward_registry_register(client_a, &w2), WARD_ERR_OK);

    /* etcd's endpoints package format, under a lease */
    char *key = key_of(8081);
    char *value = h_etcd_get(etcd, key);
    cr_assert_not_null(value);
    json_t *v = json_loads(value, 0, NULL);
    cr_assert_not_null(v, "%s", value);
    cr_assert(json_is_integer(json_object_get(v, "Op")) &&
              json_integer_value(json_object_get(v, "Op")) == 0);
    cr_assert_str_eq(json_string_value(json_object_get(v, "Addr")), "127.0.0.1:8081");
    json_t *meta = json_object_get(v, "Metadata");
    cr_assert_str_eq(json_string_value(json_object_get(meta, "id")), "web-1");
    cr_assert_str_eq(json_string_value(json_object_get(meta, "version")), "1.2.3");
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(meta, "tags"), 0)), "v1");
    json_decref(v);
    free(value);
    char *k64 = h_etcd_b64(key, strlen(key));
    struct h_resp r;
    cr_assert(h_etcd_post(etcd, -1, "/v3/kv/range", json_pack("{s:s}", "key", k64), &r));
    const char *lease = json_string_value(
        json_object_get(json_array_get(json_object_get(r.json, "kvs"), 0), "lease"));
    cr_assert_not_null(lease, "the key is not under a lease: %s", r.body);
    h_resp_free(&r);
    free(k64);

    /* a value that is not an endpoints Add is skipped, as etcd's resolver skips it */
    cr_assert(h_etcd_put(etcd, "services/web/junk", "not json", NULL));
    cr_assert(h_etcd_put(etcd, "services/webapp/127.0.0.1:9", "{\"Op\":0,\"Addr\":\"127.0.0.1:9\"}",
                         NULL));
    struct ward_instances got;
    cr_assert_eq(ward_registry_discover(client_a, "web", &got), WARD_ERR_OK);
    cr_assert_eq(got.len, 2, "the trailing slash keeps webapp out, junk is skipped");
    cr_assert_str_eq(got.items[0].id, "web-1");
    cr_assert_str_eq(got.items[0].address, "127.0.0.1");
    cr_assert_eq(got.items[0].port, 8081);
    cr_assert_str_eq(got.items[1].id, "web-2");
    ward_instances_fini(&got);

    /* lives past several TTLs: the keep-alive works */
    h_sleep_ms(2500);
    cr_assert_eq(h_etcd_count_prefix(etcd, "services/web/"), 3);

    /* deregister revokes: the key goes at once */
    cr_assert_eq(ward_registry_deregister(client_a, "web-1"), WARD_ERR_OK);
    value = h_etcd_get(etcd, key);
    cr_assert_null(value, "still there after deregister");
    cr_assert_eq(ward_registry_deregister(client_a, "web-1"), WARD_ERR_NOT_FOUND);
    free(key);
}

Test(etcd, watch_sees_adds_and_removes_and_a_lease_gone_is_registered_again)
{
    etcd = h_etcd_start(1);
    struct ward_log *log = ward_log_new("test", WARD_LOG_INFO, 1);
    cr_assert_not_null(log);
    client_a = client(log);
    client_b = client(NULL);
    struct seen s = {PTHREAD_MUTEX_INITIALIZER, 0, 99, ""};
    cr_assert_eq(ward_registry_watch(client_b, "web", on_change, &s), WARD_ERR_OK);
    cr_assert(wait_seen(&s, 0, 2000), "no first answer");

    struct ward_registration w1 = web("web-1", 8081);
    int64_t t0 = now_ms();
    cr_assert_eq(ward_registry_register(client_a, &w1), WARD_ERR_OK);
    cr_assert(wait_seen(&s, 1, 1000), "add not seen within 1 s");
    fprintf(stderr, "etcd watch: add seen in %lld ms\n", (long long)(now_ms() - t0));
    pthread_mutex_lock(&s.m);
    cr_assert_str_eq(s.first_id, "web-1");
    pthread_mutex_unlock(&s.m);

    /* the lease revoked behind the client's back: the key goes, the next keep-alive
     * finds no TTL, and the client grants anew and puts the key again */
    char *key = key_of(8081), *k64 = h_etcd_b64(key, strlen(key));
    struct h_resp r;
    cr_assert(h_etcd_post(etcd, -1, "/v3/kv/range", json_pack("{s:s}", "key", k64), &r));
    char *lease = strdup(json_string_value(
        json_object_get(json_array_get(json_object_get(r.json, "kvs"), 0), "lease")));
    h_resp_free(&r);
    cr_assert(h_etcd_lease_revoke(etcd, lease));
    cr_assert(wait_seen(&s, 0, 1000), "the revoke's delete not seen");
    t0 = now_ms();
    cr_assert(wait_seen(&s, 1, 3000), "not registered again after the lease was lost");
    fprintf(stderr, "etcd: re-registered %lld ms after the revoke\n",
            (long long)(now_ms() - t0));
    cr_assert(h_etcd_post(etcd, -1, "/v3/kv/range", json_pack("{s:s}", "key", k64), &r));
    const char *lease2 = json_string_value(
        json_object_get(json_array_get(json_object_get(r.json, "kvs"), 0), "lease"));
    cr_assert(lease2 != NULL && strcmp(lease2, lease) != 0, "not under a new lease");
    h_resp_free(&r);

    t0 = now_ms();
    cr_assert_eq(ward_registry_deregister(client_a, "web-1"), WARD_ERR_OK);
    cr_assert(wait_seen(&s, 0, 1000), "remove not seen within 1 s");
    fprintf(stderr, "etcd watch: remove seen in %lld ms\n", (long long)(now_ms() - t0));
    free(lease);
    free(key);
    free(k64);
    ward_registry_free(client_a);
    client_a = NULL;
    ward_log_free(log);
}

Test(etcd, a_failing_check_takes_the_key_down_until_it_passes)
{
    /* The instance's check is a ward-registry's /v1/agent/service/flag: 404 until a
     * service "flag" is registered there, 200 while it is. */
    etcd = h_etcd_start(1);
    const char *args[] = {"--shutdown-delay", "0", "--no-access-log", NULL};
    struct h_proc *agent = h_start("ward-registry", args);
    client_a = client(NULL);
    struct ward_registration w = web("web-1", agent->port);
    w.check_path = "/v1/agent/service/flag";
    w.check_interval = 100 * MS;
    cr_assert_eq(ward_registry_register(client_a, &w), WARD_ERR_OK);
    cr_assert(wait_count("services/web/", 0, 2000), "a failing check left the key up");

    const char *flag = "{\"ID\":\"flag\",\"Name\":\"flag\",\"Port\":1}";
    struct h_resp r;
    cr_assert(h_http(agent->port, "PUT", "/v1/agent/service/register", NULL, flag,
                     strlen(flag), &r));
    cr_assert_eq(r.status, 200);
    h_resp_free(&r);
    cr_assert(wait_count("services/web/", 1, 2000), "a passing check did not put it back");

    cr_assert(h_http(agent->port, "PUT", "/v1/agent/service/deregister/flag", NULL, NULL, 0,
                     &r));
    h_resp_free(&r);
    cr_assert(wait_count("services/web/", 0, 2000), "failing again, the key stayed");
    ward_registry_free(client_a);
    client_a = NULL;
    cr_assert_eq(h_stop(agent, 10000), 0);
    h_free(agent);
}

/* zakat-service registered in the cluster with the least TTL. */
static struct h_proc *zakat(void)
{
    char url[256];
    snprintf(url, sizeof url, "etcd://%s", h_etcd_endpoints(etcd));
    const char *args[] = {"--registry", url, "--registry-ttl", "1s", "--shutdown-delay", "1s",
                          "--no-access-log", NULL};
    struct h_proc *p = h_start("zakat-service", args);
    json_t *line = h_log_wait(p, "\"msg\":\"registered\"", 5000);
    cr_assert_not_null(line, "zakat-service did not register");
    json_decref(line);
    return p;
}

Test(etcd, zakat_service_expires_after_sigkill_and_leaves_at_once_on_sigterm)
{
    etcd = h_etcd_start(1);
    struct h_proc *a = zakat(), *b = zakat();
    cr_assert_eq(h_etcd_count_prefix(etcd, "services/zakat-service/"), 2);

    int64_t t0 = now_ms();
    h_signal(a, SIGKILL);
    cr_assert_neq(h_wait(a, 5000), -1);
    cr_assert(wait_count("services/zakat-service/", 1, 4000), "the lease did not expire");
    int64_t expired = now_ms() - t0;
    fprintf(stderr, "etcd: SIGKILL → key gone in %lld ms (TTL 1 s)\n", (long long)expired);
    cr_assert_geq(expired, 300, "gone too soon for an expiry");

    /* SIGTERM: deregistered first thing, while the shutdown delay still serves */
    t0 = now_ms();
    h_signal(b, SIGTERM);
    cr_assert(wait_count("services/zakat-service/", 0, 900), "not revoked before exit");
    fprintf(stderr, "etcd: SIGTERM → key gone in %lld ms\n", (long long)(now_ms() - t0));
    cr_assert_eq(h_wait(b, 10000), 0);
    h_free(a);
    h_free(b);
}

Test(etcd, recovers_from_an_etcd_restart)
{
    etcd = h_etcd_start(1);
    client_a = client(NULL);
    client_b = client(NULL);
    struct seen s = {PTHREAD_MUTEX_INITIALIZER, 0, 99, ""};
    cr_assert_eq(ward_registry_watch(client_b, "web", on_change, &s), WARD_ERR_OK);
    struct ward_registration w1 = web("web-1", 8081), w2 = web("web-2", 8082);
    cr_assert_eq(ward_registry_register(client_a, &w1), WARD_ERR_OK);
    cr_assert(wait_seen(&s, 1, 2000));

    h_etcd_kill(etcd, 0);
    h_sleep_ms(1500); /* down for longer than the TTL: keep-alives and the watch fail */
    struct ward_instances got;
    cr_assert_eq(ward_registry_cached(client_b, "web", &got), WARD_ERR_OK);
    cr_assert_eq(got.len, 1, "the cache keeps the last known instances");
    ward_instances_fini(&got);
    h_etcd_restart(etcd, 0);

    /* the watch comes back (a new registration is seen) and web-1 is (still or again)
     * registered: etcd restores leases with a fresh TTL, and a lost one is granted anew */
    cr_assert_eq(ward_registry_register(client_a, &w2), WARD_ERR_OK);
    cr_assert(wait_seen(&s, 2, 5000), "the watch did not resume after the restart");
    h_sleep_ms(2000);
    cr_assert_eq(h_etcd_count_prefix(etcd, "services/web/"), 2, "web-1 was not kept");

    /* etcd comes back empty (its data lost): no key, no lease, revisions start over; the
     * keepers find their leases gone and register again, and the watch follows */
    h_etcd_kill(etcd, 0);
    h_etcd_restart_empty(etcd);
    int64_t t0 = now_ms();
    cr_assert(wait_count("services/web/", 2, 5000), "not registered again on a new etcd");
    fprintf(stderr, "etcd: both registered again %lld ms after an empty restart\n",
            (long long)(now_ms() - t0));
    cr_assert_eq(ward_registry_deregister(client_a, "web-2"), WARD_ERR_OK);
    cr_assert(wait_seen(&s, 1, 3000), "the watch did not follow the new cluster");
}

Test(etcd, a_three_member_cluster_loses_one_and_discovery_goes_on)
{
    etcd = h_etcd_start(3);
    int leader = h_etcd_leader(etcd);
    cr_assert_geq(leader, 0);
    /* both clients talk to the leader: killing it cuts their streams and calls it
     * stalls writes until the other two have elected a new one */
    client_a = client_of(NULL, leader);
    client_b = client_of(NULL, leader);
    struct seen s = {PTHREAD_MUTEX_INITIALIZER, 0, 99, ""};
    cr_assert_eq(ward_registry_watch(client_b, "web", on_change, &s), WARD_ERR_OK);
    struct ward_registration w1 = web("web-1", 8081), w2 = web("web-2", 8082);
    cr_assert_eq(ward_registry_register(client_a, &w1), WARD_ERR_OK);
    cr_assert(wait_seen(&s, 1, 2000));

    int64_t t0 = now_ms();
    h_etcd_kill(etcd, leader);
    cr_assert(h_etcd_wait_healthy(etcd, 10000), "the other two lost their quorum");
    cr_assert_eq(ward_registry_register(client_a, &w2), WARD_ERR_OK);
    cr_assert(wait_seen(&s, 2, 8000), "the watch did not move to another member");
    fprintf(stderr, "etcd: member killed → a new registration seen in %lld ms\n",
            (long long)(now_ms() - t0));
    struct ward_instances got;
    cr_assert_eq(ward_registry_discover(client_b, "web", &got), WARD_ERR_OK);
    cr_assert_eq(got.len, 2);
    ward_instances_fini(&got);
    h_sleep_ms(2500); /* several TTLs: the keep-alives go to the others */
    cr_assert_eq(h_etcd_count_prefix(etcd, "services/web/"), 2);
}
