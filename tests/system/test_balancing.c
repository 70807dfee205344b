/* test_balancing.c — end to end through discovery and the balancer: a real registry
 * and two zakat-service instances registered in it, called from this process by a
 * ward_rclient with discovery (watch → balancer → retries that avoid the instance that
 * just failed) under steady load from several threads:
 *   - one instance SIGKILLed: once the balancer ejected it (or the watch dropped it) no
 *     call fails; the registry lets go of it (see below) and the watch drops it;
 *   - one instance stopped gracefully (SIGTERM: deregister, shutdown delay, drain): not a
 *     single call fails.
 * Both scenarios run against both backends, with the same bodies:
 *   - consul: ward-registry (Consul's API); a killed instance's check turns critical;
 *   - etcd: a one-member etcd; the daemons register with --registry-ttl 1s, so a killed
 *     instance's key goes when its lease expires (about 1-2 s). */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ward/balancer.h>
#include <ward/clock.h>
#include <ward/rclient.h>
#include <ward/registry.h>

#include "etcd_harness.h"
#include "harness.h"

#define MS INT64_C(1000000)
#define THREADS 4
#define SERVICE "zakat-service"

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* One call of the load: when it started and ended, and what it came to. */
struct rec {
    int64_t start, end;
    enum ward_err err;
    int status;
};

struct worker {
    pthread_t thread;
    struct ward_rclient *rc;
    atomic_bool *stop;
    int id;
    struct rec *recs;
    size_t n, cap;
};

enum backend { BACKEND_CONSUL, BACKEND_ETCD };

/* Everything a test starts; torn down by teardown() whatever happened. */
struct env {
    enum backend backend;
    const char *backend_name;
    struct h_proc *reg;    /* consul: ward-registry */
    struct h_etcd *etcd;   /* etcd: the cluster (one member) */
    char url[256];         /* the registry URL for the daemons and the client */
    struct h_proc *zk[2];
    char ids[2][WARD_BALANCER_ID_MAX]; /* the balancer's ids: "127.0.0.1:<port>" */
    struct ward_registry *r;
    struct ward_rclient *rc;
    atomic_bool stop;
    struct worker w[THREADS];
    bool running;
};

static const char body[] = "{\"wealth\":10000,\"nisab\":5000}";

/* One POST /calculate through rc with a 2 s deadline and an Idempotency-Key (so that it
 * may be retried). */
static enum ward_err calculate(struct ward_rclient *rc, const char *key, int *status)
{
    struct ward_http_call call = {.method = "POST", .url = "/calculate", .body = body,
                                  .body_len = sizeof body - 1,
                                  .content_type = "application/json",
                                  .deadline = now_ns() + 2000 * MS, .idempotency_key = key};
    struct ward_http_result res = {0};
    enum ward_err err = ward_rclient_call(rc, &call, &res);
    *status = res.status;
    ward_http_result_fini(&res);
    return err;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    char key[64];
    for (unsigned long i = 0; !atomic_load(w->stop); i++) {
        if (w->n == w->cap) {
            size_t cap = w->cap == 0 ? 4096 : w->cap * 2;
            struct rec *v = realloc(w->recs, cap * sizeof *v);
            if (v == NULL)
                break;
            w->recs = v;
            w->cap = cap;
        }
        snprintf(key, sizeof key, "load-%d-%lu", w->id, i);
        struct rec *r = &w->recs[w->n];
        r->start = now_ns();
        r->err = calculate(w->rc, key, &r->status);
        r->end = now_ns();
        w->n++;
    }
    return NULL;
}

static void load_start(struct env *e)
{
    atomic_store(&e->stop, false);
    for (int i = 0; i < THREADS; i++) {
        e->w[i] = (struct worker){.rc = e->rc, .stop = &e->stop, .id = i};
        cr_assert_eq(pthread_create(&e->w[i].thread, NULL, worker_main, &e->w[i]), 0);
    }
    e->running = true;
}

static void load_stop(struct env *e)
{
    if (!e->running)
        return;
    atomic_store(&e->stop, true);
    for (int i = 0; i < THREADS; i++)
        pthread_join(e->w[i].thread, NULL);
    e->running = false;
}

static void teardown(struct env *e)
{
    /* daemons before their registry: a SIGTERMed instance deregisters (etcd: revokes its
     * lease) on the way out */
    load_stop(e);
    for (int i = 0; i < THREADS; i++) {
        free(e->w[i].recs);
        e->w[i].recs = NULL;
    }
    ward_rclient_free(e->rc);
    e->rc = NULL;
    ward_registry_free(e->r);
    e->r = NULL;
    for (int i = 0; i < 2; i++) {
        if (e->zk[i] != NULL && e->zk[i]->status == -1)
            (void)h_stop(e->zk[i], 10000);
        h_free(e->zk[i]);
        e->zk[i] = NULL;
    }
    if (e->reg != NULL)
        (void)h_stop(e->reg, 10000);
    h_free(e->reg);
    e->reg = NULL;
    h_etcd_stop(e->etcd);
    e->etcd = NULL;
}

/* The test's environment, where the suite's .fini finds it even after a failed
 * assertion (Criterion runs every test in its own process). */
static struct env env;

static void fini(void)
{
    teardown(&env);
}

TestSuite(balancing, .fini = fini, .timeout = 90);

/* ---- the backends ---- */

/* Starts the registry and sets e->url. */
static void registry_start(struct env *e)
{
    if (e->backend == BACKEND_CONSUL) {
        const char *rargs[] = {"--shutdown-delay", "0", "--no-access-log", NULL};
        e->reg = h_start("ward-registry", rargs);
        snprintf(e->url, sizeof e->url, "consul://127.0.0.1:%u", (unsigned)e->reg->port);
    } else {
        e->etcd = h_etcd_start(1);
        snprintf(e->url, sizeof e->url, "etcd://%s", h_etcd_endpoints(e->etcd));
    }
}

/* The instance on port as the registry lists it (all instances, not only the passing
 * ones): *listed when it is there at all, *critical when one of its checks is critical. */
static void consul_entry(uint16_t reg_port, uint16_t port, bool *listed, bool *critical)
{
    struct h_resp r;
    *listed = *critical = false;
    if (!h_http(reg_port, "GET", "/v1/health/service/" SERVICE, NULL, NULL, 0, &r))
        return;
    size_t i, j;
    json_t *entry, *c;
    json_array_foreach(r.json, i, entry) {
        json_t *svc = json_object_get(entry, "Service");
        if (json_integer_value(json_object_get(svc, "Port")) != port)
            continue;
        *listed = true;
        json_array_foreach(json_object_get(entry, "Checks"), j, c) {
            const char *st = json_string_value(json_object_get(c, "Status"));
            *critical = *critical || (st != NULL && strcmp(st, "critical") == 0);
        }
    }
    h_resp_free(&r);
}

/* Is the instance on port's key (services/<name>/127.0.0.1:<port>) in etcd? */
static bool etcd_has_key(const struct env *e, uint16_t port)
{
    char key[128];
    snprintf(key, sizeof key, "services/" SERVICE "/127.0.0.1:%u", (unsigned)port);
    char *value = h_etcd_get(e->etcd, key);
    bool has = value != NULL;
    free(value);
    return has;
}

/* Is the instance on port listed in the registry at all (whatever its health)? */
static bool listed_in_registry(const struct env *e, uint16_t port)
{
    if (e->backend == BACKEND_ETCD)
        return etcd_has_key(e, port);
    bool listed, critical;
    consul_entry(e->reg->port, port, &listed, &critical);
    return listed;
}

/* Has the registry let go of the (killed) instance on port? consul: its check is
 * critical; etcd: its key is gone (its lease expired, or its keeper's check took it down). */
static bool gone_from_registry(const struct env *e, uint16_t port)
{
    if (e->backend == BACKEND_ETCD)
        return !etcd_has_key(e, port);
    bool listed, critical;
    consul_entry(e->reg->port, port, &listed, &critical);
    return critical;
}

static size_t cached_len(struct ward_registry *r)
{
    struct ward_instances l;
    cr_assert_eq(ward_registry_cached(r, SERVICE, &l), WARD_ERR_OK);
    size_t n = l.len;
    ward_instances_fini(&l);
    return n;
}

static size_t balancer_instances(struct ward_rclient *rc)
{
    struct ward_balancer_stats st;
    ward_balancer_stats(ward_rclient_balancer(rc), &st);
    return st.instances;
}

static uint64_t picks_of(struct ward_rclient *rc, const char *id)
{
    struct ward_balancer_instance_stats st;
    if (ward_balancer_instance_stats(ward_rclient_balancer(rc), id, &st) != WARD_ERR_OK)
        return 0;
    return st.picks;
}

/* The registry (consul: ward-registry `--shutdown-delay 0`; etcd: one member), two
 * zakat-service instances registered in it with `--shutdown-delay delay` (etcd: and a
 * lease TTL of 1 s), and the client side; returns once both instances are passing,
 * watched, in the balancer and answering through it. */
static void setup(struct env *e, enum backend backend, const char *delay)
{
    memset(e, 0, sizeof *e);
    e->backend = backend;
    e->backend_name = backend == BACKEND_CONSUL ? "consul" : "etcd";
    registry_start(e);
    const char *url = e->url;
    const char *zargs_consul[] = {"--registry", url, "--shutdown-delay", delay,
                                  "--no-access-log", NULL};
    const char *zargs_etcd[] = {"--registry", url, "--registry-ttl", "1s", "--shutdown-delay",
                                delay, "--no-access-log", NULL};
    const char *const *zargs = backend == BACKEND_CONSUL ? zargs_consul : zargs_etcd;
    for (int i = 0; i < 2; i++) {
        e->zk[i] = h_start("zakat-service", zargs);
        json_t *line = h_log_wait(e->zk[i], "\"msg\":\"registered\"", 5000);
        cr_assert_not_null(line, "zakat-service %d did not register", i);
        json_decref(line);
        snprintf(e->ids[i], sizeof e->ids[i], "127.0.0.1:%u", (unsigned)e->zk[i]->port);
    }

    struct ward_registry_settings rs;
    ward_registry_settings_default(&rs);
    rs.url = url;
    rs.watch_wait = 1000 * MS;
    rs.backoff.base_ns = 20 * MS;
    rs.backoff.cap_ns = 200 * MS;
    cr_assert_eq(ward_registry_new(&rs, &e->r), WARD_ERR_OK);

    struct ward_rclient_settings s;
    ward_rclient_settings_default(&s);
    s.name = "zakat";
    s.call_timeout_ns = 2000 * MS;
    s.discovery.registry = e->r;
    s.discovery.service = SERVICE;
    cr_assert_eq(ward_rclient_new(&s, &e->rc), WARD_ERR_OK);

    /* both passing in the registry, in the watch's cache, and in the balancer (which
     * follows the watch on the next call) */
    bool ready = false;
    for (int64_t until = now_ns() + 5000 * MS; !ready && now_ns() < until; h_sleep_ms(10)) {
        int status;
        enum ward_err err = calculate(e->rc, NULL, &status);
        ready = err == WARD_ERR_OK && status == 200 && cached_len(e->r) == 2 &&
                balancer_instances(e->rc) == 2;
    }
    cr_assert(ready, "the balancer did not get both instances: cached %zu, balancer %zu",
              cached_len(e->r), balancer_instances(e->rc));
    for (int i = 0; i < 2; i++)
        cr_assert(listed_in_registry(e, e->zk[i]->port) &&
                      !gone_from_registry(e, e->zk[i]->port),
                  "instance %s is not listed as healthy in the registry", e->ids[i]);
    /* round robin: a few calls reach both */
    for (int i = 0; i < 10; i++) {
        int status;
        cr_assert_eq(calculate(e->rc, NULL, &status), WARD_ERR_OK);
        cr_assert_eq(status, 200);
    }
    for (int i = 0; i < 2; i++)
        cr_assert_geq(picks_of(e->rc, e->ids[i]), 4, "instance %s got %llu picks", e->ids[i],
                      (unsigned long long)picks_of(e->rc, e->ids[i]));
}

/* What the load came to: every call, the failed ones, the failed ones that started at or
 * after t (0 = none), the successful ones that started at or after ok_after, and the
 * latest start of a failed call. */
struct tally {
    size_t calls, failed, failed_after, ok_after;
    int64_t first_start, last_end, last_failed_start;
    enum ward_err first_err;
    int first_status;
};

static struct tally count(const struct env *e, int64_t t, int64_t ok_after)
{
    struct tally y = {.first_start = INT64_MAX, .first_err = WARD_ERR_OK};
    for (int i = 0; i < THREADS; i++) {
        for (size_t k = 0; k < e->w[i].n; k++) {
            const struct rec *r = &e->w[i].recs[k];
            bool ok = r->err == WARD_ERR_OK && r->status == 200;
            y.calls++;
            if (r->start < y.first_start)
                y.first_start = r->start;
            if (r->end > y.last_end)
                y.last_end = r->end;
            if (!ok) {
                y.failed++;
                if (r->start > y.last_failed_start)
                    y.last_failed_start = r->start;
                if (t != 0 && r->start >= t) {
                    if (y.failed_after == 0) {
                        y.first_err = r->err;
                        y.first_status = r->status;
                    }
                    y.failed_after++;
                }
            } else if (r->start >= ok_after) {
                y.ok_after++;
            }
        }
    }
    return y;
}

static double ms_between(int64_t a, int64_t b)
{
    return (double)(b - a) / 1e6;
}

/* One instance SIGKILLed under load. */
static void sigkill_under_load(enum backend backend)
{
    struct env *e = &env;
    setup(e, backend, "0");
    struct h_proc *victim = e->zk[0];
    const char *vid = e->ids[0];

    load_start(e);
    h_sleep_ms(300); /* steady load before the kill */
    int64_t t_kill = now_ns();
    h_signal(victim, SIGKILL);

    int64_t t_eject = 0, t_reg = 0, t_drop = 0, t_bal = 0, next_http = 0;
    int64_t until = t_kill + 10000 * MS;
    while ((t_eject == 0 || t_reg == 0 || t_drop == 0 || t_bal == 0) && now_ns() < until) {
        int64_t t = now_ns();
        struct ward_balancer_stats bs;
        ward_balancer_stats(ward_rclient_balancer(e->rc), &bs);
        if (t_eject == 0 && bs.ejections >= 1)
            t_eject = t;
        if (t_bal == 0 && bs.instances == 1)
            t_bal = t;
        if (t_drop == 0 && cached_len(e->r) == 1)
            t_drop = t;
        if (t_reg == 0 && t >= next_http) {
            if (gone_from_registry(e, victim->port))
                t_reg = now_ns();
            next_http = now_ns() + 20 * MS;
        }
        h_sleep_ms(1);
    }
    int64_t t_gone = t_eject != 0 && (t_drop == 0 || t_eject < t_drop) ? t_eject : t_drop;
    bool dropped = t_drop != 0;
    /* the load goes on for a while after the watch dropped it */
    if (dropped)
        h_sleep_ms(1500);
    load_stop(e);

    struct ward_balancer_instance_stats is;
    bool removed = ward_balancer_instance_stats(ward_rclient_balancer(e->rc), vid, &is) ==
                   WARD_ERR_NOT_FOUND;
    struct tally y = count(e, t_gone != 0 ? t_gone : until, INT64_MAX);
    double secs = ms_between(y.first_start, y.last_end) / 1e3;
    fprintf(stderr,
            "balancing/sigkill [%s]: %zu calls in %.2f s (%.0f/s), %zu failed (all before "
            "t_gone: %s; last failed call started %.1f ms after the kill), %zu failed after "
            "t_gone; kill → ejection %.1f ms, kill → gone from the registry (%s) %.1f ms, "
            "kill → watch drop %.1f ms, kill → balancer at 1 instance %.1f ms\n",
            e->backend_name, y.calls, secs, (double)y.calls / secs, y.failed,
            y.failed_after == 0 ? "yes" : "no",
            y.failed > 0 ? ms_between(t_kill, y.last_failed_start) : 0.0, y.failed_after,
            t_eject != 0 ? ms_between(t_kill, t_eject) : -1.0,
            e->backend == BACKEND_CONSUL ? "check critical" : "key deleted",
            t_reg != 0 ? ms_between(t_kill, t_reg) : -1.0,
            t_drop != 0 ? ms_between(t_kill, t_drop) : -1.0,
            t_bal != 0 ? ms_between(t_kill, t_bal) : -1.0);

    cr_expect_eq(h_wait(victim, 5000), 128 + SIGKILL);
    cr_expect_neq(t_gone, 0, "the killed instance was neither ejected nor dropped");
    cr_expect_eq(y.failed_after, 0,
                 "%zu calls that started after the instance was gone failed (first: %s, "
                 "status %d)",
                 y.failed_after, ward_strerror(y.first_err), y.first_status);
    if (e->backend == BACKEND_CONSUL)
        cr_expect_neq(t_reg, 0, "the registry did not mark the killed instance critical");
    else
        cr_expect_neq(t_reg, 0, "the killed instance's key stayed in etcd");
    /* consul: one check interval (2 s) and a refused probe; etcd: the lease's TTL (1 s)
     * and etcd's expiry sweep (or the keeper's 2 s check, were it alive); with room for a
     * slow (sanitizer) run */
    cr_expect(t_reg == 0 || t_reg - t_kill <= 5000 * MS, "%s only after %.1f ms",
              e->backend == BACKEND_CONSUL ? "critical" : "key gone",
              ms_between(t_kill, t_reg));
    cr_expect(dropped, "the watch did not drop the killed instance");
    cr_expect_neq(t_bal, 0, "the balancer did not drop the killed instance");
    cr_expect(removed, "the killed instance is still in the balancer");
    cr_expect_eq(balancer_instances(e->rc), 1);
    cr_expect_geq(picks_of(e->rc, e->ids[1]), 100, "the survivor took the load");
    cr_expect_gt(y.calls, y.failed + 100, "too little load");
}

/* One instance stopped with SIGTERM under load. */
static void graceful_stop_under_load(enum backend backend)
{
    struct env *e = &env;
    setup(e, backend, "1s");
    struct h_proc *leaving = e->zk[0];
    uint16_t leaving_port = leaving->port;

    load_start(e);
    h_sleep_ms(300);
    int64_t t_term = now_ns();
    h_signal(leaving, SIGTERM);
    int64_t t_drop = 0, t_exit = 0, t_unlisted = 0, next_http = 0;
    int64_t until = t_term + 10000 * MS;
    while ((t_drop == 0 || t_exit == 0 || t_unlisted == 0) && now_ns() < until) {
        if (t_drop == 0 && cached_len(e->r) == 1)
            t_drop = now_ns();
        if (t_exit == 0 && h_wait(leaving, 1) != -1)
            t_exit = now_ns();
        if (t_unlisted == 0 && now_ns() >= next_http) {
            if (!listed_in_registry(e, leaving_port))
                t_unlisted = now_ns();
            next_http = now_ns() + 20 * MS;
        }
        h_sleep_ms(1);
    }
    if (t_exit != 0)
        h_sleep_ms(500); /* the survivor alone, some more */
    load_stop(e);

    struct tally y = count(e, 1, t_exit != 0 ? t_exit : INT64_MAX);
    double secs = ms_between(y.first_start, y.last_end) / 1e3;
    fprintf(stderr,
            "balancing/graceful [%s]: %zu calls in %.2f s (%.0f/s), %zu failed, %zu succeeded "
            "after the instance exited; SIGTERM → gone from the registry %.1f ms, SIGTERM → watch "
            "drop %.1f ms, SIGTERM → exit %.1f ms\n",
            e->backend_name, y.calls, secs, (double)y.calls / secs, y.failed, y.ok_after,
            t_unlisted != 0 ? ms_between(t_term, t_unlisted) : -1.0,
            t_drop != 0 ? ms_between(t_term, t_drop) : -1.0,
            t_exit != 0 ? ms_between(t_term, t_exit) : -1.0);

    cr_expect_neq(t_drop, 0, "the watch did not drop the deregistered instance");
    cr_expect_neq(t_exit, 0, "the instance did not exit");
    cr_expect_eq(leaving->status, 0, "the instance exited with %d", leaving->status);
    cr_expect_eq(y.failed, 0, "%zu calls failed (first: %s, status %d)", y.failed,
                 ward_strerror(y.first_err), y.first_status);
    cr_expect_gt(y.ok_after, 0, "no call succeeded after the stop");
    cr_expect_gt(y.calls, 100, "too little load");
    cr_expect_neq(t_unlisted, 0, "the stopped instance is still in the registry (%s)",
                  e->backend == BACKEND_CONSUL ? "not deregistered" : "its key stayed");
}

Test(balancing, consul_sigkill_under_load_ejects_then_no_call_fails, .timeout = 60)
{
    sigkill_under_load(BACKEND_CONSUL);
}

Test(balancing, etcd_sigkill_under_load_ejects_then_no_call_fails, .timeout = 60)
{
    sigkill_under_load(BACKEND_ETCD);
}

Test(balancing, consul_graceful_stop_under_load_loses_no_call, .timeout = 60)
{
    graceful_stop_under_load(BACKEND_CONSUL);
}

Test(balancing, etcd_graceful_stop_under_load_loses_no_call, .timeout = 60)
{
    graceful_stop_under_load(BACKEND_ETCD);
}
