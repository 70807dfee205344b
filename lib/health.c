/* health.c — the built-in endpoints: /health (liveness), /ready (readiness checks) and
 * /metrics (Prometheus text), in the manner of the health-check-response draft. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ward/clock.h>

#include "http_int.h"

static const char *health_name(enum ward_health h)
{
    return h == WARD_HEALTH_PASS ? "pass" : h == WARD_HEALTH_WARN ? "warn" : "fail";
}

/* The common body; checks is added by the caller (stolen). */
static void answer(struct ward_req *req, enum ward_health status, json_t *checks)
{
    struct ward_server *srv = req->srv;
    char ts[80];
    int64_t now = ward_clock_wall();
    ward_clock_rfc3339(now, ts, sizeof ts);
    bool draining = atomic_load(&srv->draining);
    if (draining)
        status = WARD_HEALTH_FAIL;
    json_t *body = json_pack("{s:s, s:s, s:s, s:f, s:s}", "status", health_name(status),
                             "version", srv->cfg.version, "serviceId", srv->cfg.service,
                             "uptime", (double)(ward_clock_now(NULL) - srv->start_mono) / 1e9,
                             "timestamp", ts);
    if (body != NULL && draining)
        json_object_set_new(body, "output", json_string("shutting down"));
    if (body != NULL && checks != NULL)
        json_object_set_new(body, "checks", checks);
    else
        json_decref(checks);
    char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (text == NULL) {
        ward_req_respond(req, 503, "text/plain", "out of memory\n", 14);
        return;
    }
    if (ward_req_set_header(req, "Cache-Control", "no-store") != WARD_ERR_OK)
        status = WARD_HEALTH_FAIL; /* out of memory: say so rather than answer half */
    int code = status == WARD_HEALTH_FAIL ? 503 : 200;
    ward_req_respond(req, code, "application/health+json", text, strlen(text));
    free(text);
}

static void get_health(struct ward_req *req, void *arg)
{
    (void)arg;
    answer(req, WARD_HEALTH_PASS, NULL);
}

static void get_ready(struct ward_req *req, void *arg)
{
    struct ward_server *srv = arg;
    enum ward_health worst = WARD_HEALTH_PASS;
    json_t *checks = json_object();
    char ts[80];
    ward_clock_rfc3339(ward_clock_wall(), ts, sizeof ts);
    for (size_t i = 0; i < srv->nchecks; i++) {
        char output[256] = "";
        enum ward_health h = srv->checks[i].fn(srv->checks[i].arg, output, sizeof output);
        if (h > worst)
            worst = h;
        json_t *entry = json_pack("[{s:s, s:s}]", "status", health_name(h), "time", ts);
        if (entry != NULL && output[0] != '\0')
            json_object_set_new(json_array_get(entry, 0), "output", json_string(output));
        if (checks != NULL && entry != NULL)
            json_object_set_new(checks, srv->checks[i].name, entry);
        else
            json_decref(entry);
    }
    answer(req, worst, checks);
}

static void get_metrics(struct ward_req *req, void *arg)
{
    struct ward_server *srv = arg;
    size_t len = 0;
    char *text = srv->metrics != NULL ? ward_metrics_render(srv->metrics, &len) : NULL;
    if (text == NULL) {
        ward_req_fail(req, WARD_PROBLEM_UNAVAILABLE, "metrics are not available");
        return;
    }
    ward_req_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
    free(text);
}

enum ward_err ward__health_routes(struct ward_server *srv)
{
    enum ward_err err = ward_server_route(srv, "GET", "/health", get_health, srv);
    if (err == WARD_ERR_OK)
        err = ward_server_route(srv, "GET", "/ready", get_ready, srv);
    if (err == WARD_ERR_OK)
        err = ward_server_route(srv, "GET", "/metrics", get_metrics, srv);
    return err;
}
