/* test_balancing.c — end to end through discovery and the balancer: a real ward-registry
 * and two zakat-service instances registered in it, called from this process by a
 * ward_rclient with discovery (watch → balancer → retries that avoid the instance that
 * just failed) under steady load from several threads:
 *   - one instance SIGKILLed: once the balancer ejected it (or the watch dropped it) no
 *     call fails; the registry marks it critical and the watch drops it;
 *   - one instance stopped gracefully (SIGTERM: deregister, shutdown delay, drain): not a
 *     single call fails. */
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

#include "harness.h"

#define MS INT64_C(1000000)
#define THREADS 4
#define SERVICE "zakat-service"

TestSuite(balancing, .timeout = 60);

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

/* Everything a test starts; torn down by teardown() whatever happened. */
struct env {
    struct h_proc *reg;
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
    load_stop(e);
    for (int i = 0; i < THREADS; i++) {
        free(e->w[i].recs);
        e->w[i].recs = NULL;
    }
    ward_rclient_free(e->rc);
    ward_registry_free(e->r);
    for (int i = 0; i < 2; i++) {
        if (e->zk[i] != NULL && e->zk[i]->status == -1)
            (void)h_stop(e->zk[i], 10000);
        h_free(e->zk[i]);
    }
    if (e->reg != NULL)
        (void)h_stop(e->reg, 10000);
    h_free(e->reg);
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

/* The registry (`--shutdown-delay 0`), two zakat-service instances registered in it with
 * `--shutdown-delay delay`, and the client side; returns once both instances are passing,
 * watched, in the balancer and answering through it. */
static void setup(struct env *e, const char *delay)
{
    memset(e, 0, sizeof *e);
    const char *rargs[] = {"--shutdown-delay", "0", "--no-access-log", NULL};
    e->reg = h_start("ward-registry", rargs);
    char url[64];
    snprintf(url, sizeof url, "consul://127.0.0.1:%u", (unsigned)e->reg->port);
    const char *zargs[] = {"--registry", url, "--shutdown-delay", delay, "--no-access-log", NULL};
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

/* Is the check of the instance on port critical in the registry (all instances listed,
 * not only the passing ones)? */
static bool critical_in_registry(uint16_t reg_port, uint16_t port)
{
    struct h_resp r;
    bool critical = false;
    if (!h_http(reg_port, "GET", "/v1/health/service/" SERVICE, NULL, NULL, 0, &r))
        return false;
    size_t i, j;
    json_t *entry, *c;
    json_array_foreach(r.json, i, entry) {
        json_t *svc = json_object_get(entry, "Service");
        if (json_integer_value(json_object_get(svc, "Port")) != port)
            continue;
        json_array_foreach(json_object_get(entry, "Checks"), j, c) {
            const char *st = json_string_value(json_object_get(c, "Status"));
            critical = critical || (st != NULL && strcmp(st, "critical") == 0);
        }
    }
    h_resp_free(&r);
    return critical;
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

Test(balancing, sigkill_under_load_ejects_then_no_call_fails)
{
    struct env e;
    setup(&e, "0");
    struct h_proc *victim = e.zk[0];
    const char *vid = e.ids[0];

    load_start(&e);
    h_sleep_ms(300); /* steady load before the kill */
    int64_t t_kill = now_ns();
    h_signal(victim, SIGKILL);

    int64_t t_eject = 0, t_crit = 0, t_drop = 0, t_bal = 0, next_http = 0;
    int64_t until = t_kill + 10000 * MS;
    while ((t_eject == 0 || t_crit == 0 || t_drop == 0 || t_bal == 0) && now_ns() < until) {
        int64_t t = now_ns();
        struct ward_balancer_stats bs;
        ward_balancer_stats(ward_rclient_balancer(e.rc), &bs);
        if (t_eject == 0 && bs.ejections >= 1)
            t_eject = t;
        if (t_bal == 0 && bs.instances == 1)
            t_bal = t;
        if (t_drop == 0 && cached_len(e.r) == 1)
            t_drop = t;
        if (t_crit == 0 && t >= next_http) {
            if (critical_in_registry(e.reg->port, victim->port))
                t_crit = now_ns();
            next_http = now_ns() + 20 * MS;
        }
        h_sleep_ms(1);
    }
    int64_t t_gone = t_eject != 0 && (t_drop == 0 || t_eject < t_drop) ? t_eject : t_drop;
    bool dropped = t_drop != 0;
    /* the load goes on for a while after the watch dropped it */
    if (dropped)
        h_sleep_ms(1500);
    load_stop(&e);

    struct ward_balancer_instance_stats is;
    bool removed = ward_balancer_instance_stats(ward_rclient_balancer(e.rc), vid, &is) ==
                   WARD_ERR_NOT_FOUND;
    struct tally y = count(&e, t_gone != 0 ? t_gone : until, INT64_MAX);
    double secs = ms_between(y.first_start, y.last_end) / 1e3;
    fprintf(stderr,
            "balancing/sigkill: %zu calls in %.2f s (%.0f/s), %zu failed (all before t_gone: "
            "%s; last failed call started %.1f ms after the kill), %zu failed after t_gone; "
            "kill → ejection %.1f ms, kill → critical %.1f ms, kill → watch drop %.1f ms, "
            "kill → balancer at 1 instance %.1f ms\n",
            y.calls, secs, (double)y.calls / secs, y.failed, y.failed_after == 0 ? "yes" : "no",
            y.failed > 0 ? ms_between(t_kill, y.last_failed_start) : 0.0, y.failed_after,
            t_eject != 0 ? ms_between(t_kill, t_eject) : -1.0,
            t_crit != 0 ? ms_between(t_kill, t_crit) : -1.0,
            t_drop != 0 ? ms_between(t_kill, t_drop) : -1.0,
            t_bal != 0 ? ms_between(t_kill, t_bal) : -1.0);

    cr_expect_eq(h_wait(victim, 5000), 128 + SIGKILL);
    cr_expect_neq(t_gone, 0, "the killed instance was neither ejected nor dropped");
    cr_expect_eq(y.failed_after, 0,
                 "%zu calls that started after the instance was gone failed (first: %s, "
                 "status %d)",
                 y.failed_after, ward_strerror(y.first_err), y.first_status);
    cr_expect_neq(t_crit, 0, "the registry did not mark the killed instance critical");
    /* one check interval (2 s) and a refused probe, with room for a slow (sanitizer) run */
    cr_expect(t_crit == 0 || t_crit - t_kill <= 5000 * MS, "critical only after %.1f ms",
              ms_between(t_kill, t_crit));
    cr_expect(dropped, "the watch did not drop the killed instance");
    cr_expect_neq(t_bal, 0, "the balancer did not drop the killed instance");
    cr_expect(removed, "the killed instance is still in the balancer");
    cr_expect_eq(balancer_instances(e.rc), 1);
    cr_expect_geq(picks_of(e.rc, e.ids[1]), 100, "the survivor took the load");
    cr_expect_gt(y.calls, y.failed + 100, "too little load");
    teardown(&e);
}

Test(balancing, graceful_stop_under_load_loses_no_call)
{
    struct env e;
    setup(&e, "1s");
    struct h_proc *leaving = e.zk[0];

    load_start(&e);
    h_sleep_ms(300);
    int64_t t_term = now_ns();
    h_signal(leaving, SIGTERM);
    int64_t t_drop = 0, t_exit = 0;
    int64_t until = t_term + 10000 * MS;
    while ((t_drop == 0 || t_exit == 0) && now_ns() < until) {
        if (t_drop == 0 && cached_len(e.r) == 1)
            t_drop = now_ns();
        if (t_exit == 0 && h_wait(leaving, 1) != -1)
            t_exit = now_ns();
        h_sleep_ms(1);
    }
    if (t_exit != 0)
        h_sleep_ms(500); /* the survivor alone, some more */
    load_stop(&e);

    struct tally y = count(&e, 1, t_exit != 0 ? t_exit : INT64_MAX);
    double secs = ms_between(y.first_start, y.last_end) / 1e3;
    fprintf(stderr,
            "balancing/graceful: %zu calls in %.2f s (%.0f/s), %zu failed, %zu succeeded after "
            "the instance exited; SIGTERM → watch drop %.1f ms, SIGTERM → exit %.1f ms\n",
            y.calls, secs, (double)y.calls / secs, y.failed, y.ok_after,
            t_drop != 0 ? ms_between(t_term, t_drop) : -1.0,
            t_exit != 0 ? ms_between(t_term, t_exit) : -1.0);

    cr_expect_neq(t_drop, 0, "the watch did not drop the deregistered instance");
    cr_expect_neq(t_exit, 0, "the instance did not exit");
    cr_expect_eq(leaving->status, 0, "the instance exited with %d", leaving->status);
    cr_expect_eq(y.failed, 0, "%zu calls failed (first: %s, status %d)", y.failed,
                 ward_strerror(y.first_err), y.first_status);
    cr_expect_gt(y.ok_after, 0, "no call succeeded after the stop");
    cr_expect_gt(y.calls, 100, "too little load");
    teardown(&e);
}
