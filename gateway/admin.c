/* admin.c — the admin listener (--admin-listen, not the public port): GET /admin/status
 * shows each route with its service's instances (health as the registry lists them,
 * ejection as the route's balancer sees it), the service's breaker and the route's
 * inbound limiter; /health, /ready and /metrics come with every ward server. */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include <ward/log.h>

#include "gateway.h"

static json_t *breaker_json(struct gw_upstream *up)
{
    struct ward_breaker_stats bs;
    ward_breaker_stats(up->breaker, &bs);
    return json_pack("{s:s, s:I, s:I, s:I, s:I, s:I}", "state", ward_breaker_state_name(bs.state),
                     "requests", (json_int_t)bs.counts.requests, "consecutive_failures",
                     (json_int_t)bs.counts.consecutive_failures, "transitions",
                     (json_int_t)bs.transitions, "rejected_open", (json_int_t)bs.rejected_open,
                     "trips", (json_int_t)bs.trips);
}

static json_t *limiter_json(const struct gw_live_route *lr)
{
    if (lr->limiter == NULL)
        return json_null();
    struct ward_keyed_limiter_stats ks;
    ward_keyed_limiter_stats(lr->limiter, &ks);
    return json_pack("{s:f, s:I, s:I, s:I, s:I}", "rate", lr->route->limit.rate, "burst",
                     (json_int_t)lr->route->limit.burst, "clients", (json_int_t)ks.keys,
                     "admitted", (json_int_t)ks.admitted, "limited", (json_int_t)ks.limited);
}

/* The instances the registry lists for the route's service, with the route's view of
 * each (a balancer per route: ejection is per route). */
static json_t *instances_json(struct gw_ctx *ctx, const struct gw_live_route *lr)
{
    json_t *arr = json_array();
    struct ward_instances list = {0};
    if (arr == NULL || ctx->registry == NULL ||
        ward_registry_cached(ctx->registry, lr->route->service, &list) != WARD_ERR_OK)
        return arr;
    struct ward_balancer *b = ward_rclient_balancer(lr->rc);
    for (size_t i = 0; i < list.len; i++) {
        char id[300];
        const struct ward_instance *in = &list.items[i];
        snprintf(id, sizeof id, strchr(in->address, ':') != NULL ? "[%s]:%u" : "%s:%u",
                 in->address, (unsigned)in->port);
        struct ward_balancer_instance_stats is = {0};
        bool known = b != NULL && ward_balancer_instance_stats(b, id, &is) == WARD_ERR_OK;
        json_t *o = json_pack("{s:s, s:s, s:b, s:I, s:I, s:I, s:I}", "id", in->id, "address", id,
                              "ejected", known && is.ejected, "outstanding",
                              (json_int_t)is.outstanding, "successes", (json_int_t)is.successes,
                              "failures", (json_int_t)is.failures, "ejections",
                              (json_int_t)is.ejections);
        if (o == NULL || json_array_append_new(arr, o) != 0)
            break;
    }
    ward_instances_fini(&list);
    return arr;
}

static void get_status(struct ward_req *req, void *arg)
{
    struct gw_ctx *ctx = arg;
    struct gw_state *st = gw_state_get(ctx);
    json_t *routes = json_array();
    for (size_t i = 0; routes != NULL && i < st->nroutes; i++) {
        struct gw_live_route *lr = &st->routes[i];
        const struct gw_route *r = lr->route;
        json_t *o = json_pack("{s:s, s:s, s:s?, s:I, s:b, s:o, s:o, s:o, s:I, s:I}", "prefix",
                              r->prefix, "service", r->service, "rewrite", r->rewrite,
                              "timeout_ms", (json_int_t)(r->timeout_ns / WARD_NS_PER_MS), "auth",
                              r->auth, "instances", instances_json(ctx, lr), "breaker",
                              breaker_json(lr->up), "limiter", limiter_json(lr), "requests",
                              (json_int_t)atomic_load(&lr->requests), "faults_injected",
                              (json_int_t)atomic_load(&lr->faults));
        if (o == NULL || json_array_append_new(routes, o) != 0) {
            json_decref(routes);
            routes = NULL;
        }
    }
    json_t *doc = routes == NULL ? NULL
                                 : json_pack("{s:s?, s:b, s:I, s:o}", "config", st->cfg->path,
                                             "registry", ctx->registry != NULL, "api_keys",
                                             (json_int_t)(st->keys != NULL ? st->keys->n : 0),
                                             "routes", routes);
    gw_state_put(st);
    if (doc == NULL) {
        ward_req_respond_problem(req, NULL);
        return;
    }
    ward_req_respond_json(req, 200, doc);
}

enum ward_err gw_admin_start(struct gw_ctx *ctx)
{
    struct ward_server_config cfg;
    ward_server_config_defaults(&cfg);
    cfg.service = "ward-gateway-admin";
    cfg.listen = ctx->admin_listen;
    cfg.access_log = false;
    enum ward_err err = ward_server_new(&cfg, ctx->log, ctx->metrics, &ctx->admin);
    if (err == WARD_ERR_OK)
        err = ward_server_route(ctx->admin, "GET", "/admin/status", get_status, ctx);
    if (err == WARD_ERR_OK)
        err = ward_server_start(ctx->admin);
    if (err == WARD_ERR_OK)
        WARD_INFO(ctx->log, NULL, "admin listening", WARD_S("listen", ctx->admin_listen),
                  WARD_I("port", ward_server_port(ctx->admin)));
    return err;
}

void gw_admin_stop(struct gw_ctx *ctx)
{
    ward_server_free(ctx->admin);
    ctx->admin = NULL;
}
