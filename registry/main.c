/* main.c — ward-registry: a single-node service registry speaking a subset of Consul's
 * HTTP API (registry-spec.md §A), behind the ward service frame. */
#include <stdio.h>
#include <string.h>

#include <ward/service.h>

#include "registry.h"

/* Blocking queries wait up to 10 min plus 1/16 of jitter: the server's request deadline
 * must outlast them, or its watchdog would answer 504 first. */
#define MIN_REQUEST_TIMEOUT (660 * WARD_NS_PER_S)

static void options(struct ward_req *req, void *arg)
{
    char allow[32];
    snprintf(allow, sizeof allow, "OPTIONS,%s", (const char *)arg);
    if (ward_req_set_header(req, "Allow", allow) != WARD_ERR_OK)
        reg_respond_error(req, 500, "out of memory");
    else
        reg_respond_empty(req);
}

enum ward_err reg_route(struct ward_server *srv, const char *method, const char *pattern,
                        ward_handler_fn fn, void *arg)
{
    enum ward_err err = ward_server_route(srv, method, pattern, fn, arg);
    if (err == WARD_ERR_OK)
        err = ward_server_route(srv, "OPTIONS", pattern, options, (void *)(uintptr_t)method);
    return err;
}

static void configure(struct ward_server_config *cfg, void *arg)
{
    (void)arg;
    cfg->any_content_type = true; /* curl -d and many Consul clients send no JSON type */
    cfg->on_error = reg_render_error;
    cfg->on_error_arg = NULL;
    if (cfg->request_timeout < MIN_REQUEST_TIMEOUT)
        cfg->request_timeout = MIN_REQUEST_TIMEOUT;
}

/* Refreshes the model's gauges at each /metrics render. */
static void collect(struct ward_metrics *m, void *arg)
{
    struct reg_ctx *ctx = arg;
    static const char *const names[] = {"passing", "warning", "critical"};
    static const char *const labels[] = {"status"};
    struct ward_metric_family *fs = ward_metrics_gauge(m, "registry_services", "Distinct service names registered.", 0, NULL);
    struct ward_metric_family *fi = ward_metrics_gauge(m, "registry_instances", "Service instances by aggregated check status.", 1, labels);
    double count[3] = {0, 0, 0};
    double distinct = 0;
    reg_state_lock(ctx->st);
    for (size_t i = 0; i < ctx->st->nsvcs; i++) {
        const struct reg_service *svc = ctx->st->svcs[i];
        count[reg_state_service_status(ctx->st, svc->id)] += 1.0;
        bool first = true;
        for (size_t k = 0; k < i && first; k++)
            first = strcmp(ctx->st->svcs[k]->name, svc->name) != 0;
        distinct += first ? 1.0 : 0.0;
    }
    reg_state_unlock(ctx->st);
    ward_gauge_set(fs != NULL ? ward_metric_get(fs, NULL) : NULL, distinct);
    for (size_t s = 0; s < 3 && fi != NULL; s++) {
        const char *v[] = {names[s]};
        ward_gauge_set(ward_metric_get(fi, v), count[s]);
    }
}

static void on_shutdown(void *arg)
{
    struct reg_ctx *ctx = arg;
    reg_watchers_drain(ctx->watchers);
}

/* Stops the reaper, the check runner and, last, the writer (so that it saves the final
 * state). Each may be NULL. */
static void stop_workers(struct reg_ctx *ctx)
{
    reg_reaper_free(ctx->reaper);
    reg_checks_free(ctx->checks);
    reg_persist_free(ctx->persist);
    ctx->reaper = NULL;
    ctx->checks = NULL;
    ctx->persist = NULL;
}

static enum ward_err setup(struct ward_service *svc, void *arg)
{
    struct reg_ctx *ctx = arg;
    struct ward_server *srv = ward_service_server(svc);
    ctx->log = ward_service_log(svc);
    ctx->metrics = ward_service_metrics(svc);
    enum ward_err err = reg_state_new(NULL, &ctx->st);
    if (err == WARD_ERR_OK)
        err = reg_watchers_new(ctx, &ctx->watchers);
    if (err == WARD_ERR_OK && ctx->data_dir != NULL && ctx->data_dir[0] != '\0')
        err = reg_persist_new(ctx, &ctx->persist);
    if (err == WARD_ERR_OK)
        err = reg_checks_new(ctx, &ctx->checks);
    if (err == WARD_ERR_OK)
        err = reg_reaper_new(ctx, &ctx->reaper);
    if (err == WARD_ERR_OK)
        err = ward_metrics_on_collect(ctx->metrics, collect, ctx);
    if (err == WARD_ERR_OK)
        err = ward_server_on_shutdown(srv, on_shutdown, ctx);
    if (err == WARD_ERR_OK)
        err = reg_agent_routes(srv, ctx);
    if (err == WARD_ERR_OK)
        err = reg_health_routes(srv, ctx);
    if (err == WARD_ERR_OK)
        err = reg_catalog_routes(srv, ctx);
    if (err == WARD_ERR_OK)
        err = reg_status_routes(srv, ctx);
    if (err != WARD_ERR_OK) {
        ward_metrics_off_collect(ctx->metrics, collect, ctx);
        stop_workers(ctx);
        reg_watchers_free(ctx->watchers);
        reg_state_free(ctx->st);
        ctx->watchers = NULL;
        ctx->st = NULL;
    }
    return err;
}

static void teardown(struct ward_service *svc, void *arg)
{
    struct reg_ctx *ctx = arg;
    (void)svc;
    ward_metrics_off_collect(ctx->metrics, collect, ctx);
    stop_workers(ctx);
    reg_watchers_free(ctx->watchers);
    reg_state_free(ctx->st);
}

int main(int argc, char **argv)
{
    struct reg_ctx ctx = {.reap_min = 60 * WARD_NS_PER_S, .reap_interval = 30 * WARD_NS_PER_S};
    const struct ward_opt opts[] = {
        {"data-dir", "WARD_DATA_DIR", WARD_OPT_STRING, &ctx.data_dir,
         "directory where registrations and check states survive a restart (none: memory only)", 0, 0},
        {"reap-min", "WARD_REAP_MIN", WARD_OPT_DURATION, &ctx.reap_min,
         "floor of DeregisterCriticalServiceAfter (Consul's 1m; lower it for tests)", WARD_NS_PER_MS,
         INT64_MAX},
        {"reap-interval", "WARD_REAP_INTERVAL", WARD_OPT_DURATION, &ctx.reap_interval,
         "how often critical services are reaped (Consul's 30s)", WARD_NS_PER_MS,
         INT64_MAX},
    };
    const struct ward_service_def def = {
        .name = "ward-registry",
        .version = WARD_VERSION,
        .summary = "single-node service registry speaking a subset of the Consul HTTP API",
        .default_listen = "127.0.0.1:8500",
        .opts = opts,
        .nopts = sizeof opts / sizeof opts[0],
        .configure = configure,
        .setup = setup,
        .teardown = teardown,
        .arg = &ctx,
    };
    return ward_service_main(&def, argc, argv);
}
