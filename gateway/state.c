/* state.c — a configuration made live: one breaker per upstream service, and per route a
 * resilient client (discovery through the registry's watch cache, its retry policy and
 * timeout, the service's breaker) and an inbound limiter per client. A reload builds a
 * new state and swaps it in; requests hold a reference to the state they started with. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ward/log.h>

#include "gateway.h"

/* Trips at the route's number of consecutive failures. */
static bool trip(const struct ward_breaker_counts *c, void *arg)
{
    return c->consecutive_failures >= (uint64_t)(uintptr_t)arg;
}

static void state_free(struct gw_state *st)
{
    if (st == NULL)
        return;
    for (size_t i = 0; i < st->nroutes; i++) {
        ward_rclient_free(st->routes[i].rc);
        free(st->routes[i].by_status);
        ward_keyed_limiter_free(st->routes[i].limiter);
    }
    for (size_t i = 0; i < st->nups; i++) {
        ward_breaker_free(st->ups[i].breaker);
        ward_balancer_free(st->ups[i].balancer);
        free(st->ups[i].service);
    }
    free(st->routes);
    free(st->ups);
    gw_config_free(st->cfg);
    gw_keys_free(st->keys);
    free(st);
}

/* The upstream of service, made on first sight with r's breaker settings (the
 * configuration guarantees that every route to a service agrees on them). */
static enum ward_err upstream(struct gw_ctx *ctx, struct gw_state *st, const struct gw_route *r,
                              struct gw_upstream **out)
{
    for (size_t i = 0; i < st->nups; i++)
        if (strcmp(st->ups[i].service, r->service) == 0) {
            *out = &st->ups[i];
            return WARD_ERR_OK;
        }
    struct gw_upstream *u = &st->ups[st->nups];
    struct ward_breaker_settings bs;
    gw_breaker_settings(r, &bs);
    bs.name = r->service;
    bs.ready_to_trip = trip;
    bs.arg = (void *)(uintptr_t)r->breaker.failures;
    u->service = strdup(r->service);
    if (u->service == NULL)
        return WARD_ERR_NOMEM;
    struct ward_balancer_settings lb;
    ward_balancer_settings_default(&lb);
    lb.name = r->service;
    enum ward_err err = ward_breaker_new(&bs, &u->breaker);
    if (err == WARD_ERR_OK && (err = ward_balancer_new(&lb, &u->balancer)) != WARD_ERR_OK)
        ward_breaker_free(u->breaker);
    if (err == WARD_ERR_OK && ctx->metrics != NULL &&
        ((err = ward_breaker_export(u->breaker, ctx->metrics)) != WARD_ERR_OK ||
         (err = ward_balancer_export(u->balancer, ctx->metrics)) != WARD_ERR_OK)) {
        ward_breaker_free(u->breaker);
        ward_balancer_free(u->balancer);
    }
    if (err != WARD_ERR_OK) {
        free(u->service);
        return err;
    }
    u->open_timeout_ns = r->breaker.open_timeout_ns;
    st->nups++;
    *out = u;
    return WARD_ERR_OK;
}

static enum ward_err live_route(struct gw_ctx *ctx, struct gw_state *st, const struct gw_route *r,
                                struct gw_live_route *lr)
{
    lr->route = r;
    enum ward_err err = upstream(ctx, st, r, &lr->up);
    if (err != WARD_ERR_OK)
        return err;
    struct ward_rclient_settings s;
    ward_rclient_settings_default(&s);
    s.name = r->prefix; /* labels the route's client metrics */
    s.call_timeout_ns = r->timeout_ns;
    s.breaker.shared = lr->up->breaker;
    s.retry.policy = r->retry;
    s.retry.enable = r->retry.max_attempts > 1;
    s.bulkhead.settings.max_concurrent = 10000; /* the event loop holds them cheaply */
    if (ctx->registry != NULL) {
        s.discovery.registry = ctx->registry;
        s.discovery.service = r->service;
        s.discovery.shared_balancer = lr->up->balancer;
    } else {
        s.base_url = "http://127.0.0.1:1"; /* no registry: every call is refused */
    }
    err = ward_rclient_new(&s, &lr->rc);
    if (err == WARD_ERR_OK && ctx->metrics != NULL)
        err = ward_rclient_export(lr->rc, ctx->metrics);
    if (err != WARD_ERR_OK) {
        WARD_ERROR(ctx->log, NULL, "route client refused", WARD_S("prefix", r->prefix),
                   WARD_S("error", ward_strerror(err)));
        return err;
    }
    if (ctx->m_duration != NULL) {
        const char *labels[] = {r->prefix};
        lr->duration = ward_metric_get(ctx->m_duration, labels);
        lr->by_status = calloc(GW_METHODS * 500, sizeof *lr->by_status);
        if (lr->by_status == NULL)
            return WARD_ERR_NOMEM;
    }
    if (r->limit.rate > 0) {
        struct ward_keyed_limiter_settings ks;
        ward_keyed_limiter_settings_default(&ks);
        ks.name = r->prefix;
        ks.limit = r->limit.rate;
        ks.burst = r->limit.burst;
        err = ward_keyed_limiter_new(&ks, &lr->limiter);
        if (err == WARD_ERR_OK && ctx->metrics != NULL)
            err = ward_keyed_limiter_export(lr->limiter, ctx->metrics);
    }
    return err;
}

enum ward_err gw_state_new(struct gw_ctx *ctx, struct gw_config *cfg, struct gw_keys *keys,
                           struct gw_state **out)
{
    enum ward_err err = WARD_ERR_NOMEM;
    struct gw_state *st = calloc(1, sizeof *st);
    if (st == NULL) {
        gw_config_free(cfg);
        gw_keys_free(keys);
        return err;
    }
    st->cfg = cfg;
    st->keys = keys;
    atomic_init(&st->refs, 1);
    st->routes = calloc(cfg->nroutes, sizeof *st->routes);
    st->ups = calloc(cfg->nroutes, sizeof *st->ups); /* at most one per route */
    if (st->routes == NULL || st->ups == NULL)
        goto fail;
    for (size_t i = 0; i < cfg->nroutes; i++) {
        err = live_route(ctx, st, &cfg->routes[i], &st->routes[i]);
        st->nroutes = i + 1; /* freed with the rest, whatever it holds */
        if (err != WARD_ERR_OK)
            goto fail;
    }
    *out = st;
    return WARD_ERR_OK;
fail:
    state_free(st);
    return err;
}

struct gw_state *gw_state_get(struct gw_ctx *ctx)
{
    pthread_mutex_lock(&ctx->state_lock);
    struct gw_state *st = ctx->state;
    atomic_fetch_add(&st->refs, 1);
    pthread_mutex_unlock(&ctx->state_lock);
    return st;
}

void gw_state_put(struct gw_state *st)
{
    if (st != NULL && atomic_fetch_sub(&st->refs, 1) == 1)
        state_free(st);
}

/* ---- request metrics ------------------------------------------------------------------ */

enum ward_err gw_metrics_init(struct gw_ctx *ctx)
{
    static const char *const req_labels[] = {"route", "method", "status"};
    static const char *const dur_labels[] = {"route"};
    ctx->m_requests = ward_metrics_counter(ctx->metrics, "gateway_requests_total",
                                           "Requests answered by the gateway, by route (its "
                                           "prefix), method and status.",
                                           3, req_labels);
    ctx->m_duration = ward_metrics_histogram(
        ctx->metrics, "gateway_request_duration_seconds",
        "Time from a request's last byte in to its answer, by route.", 1, dur_labels, NULL, 0);
    return ctx->m_requests != NULL && ctx->m_duration != NULL ? WARD_ERR_OK : WARD_ERR_NOMEM;
}

const char *const gw_method_labels[GW_METHODS] = {"GET", "HEAD", "POST", "PUT", "DELETE",
                                                   "PATCH", "OPTIONS", "OTHER"};

size_t gw_method_index(const char *method)
{
    for (size_t i = 0; i < GW_METHODS - 1; i++)
        if (strcmp(method, gw_method_labels[i]) == 0)
            return i;
    return GW_METHODS - 1;
}

void gw_metrics_count(struct gw_ctx *ctx, struct gw_live_route *lr, const char *route,
                      size_t method, int status, int64_t elapsed_ns)
{
    _Atomic(struct ward_metric *) *slot = NULL;
    struct ward_metric *m = NULL;
    if (lr != NULL && lr->by_status != NULL && status >= 100 && status <= 599) {
        slot = &lr->by_status[method * 500 + (size_t)(status - 100)];
        m = atomic_load_explicit(slot, memory_order_acquire);
    }
    if (m == NULL) {
        char code[8];
        snprintf(code, sizeof code, "%d", status);
        const char *labels[] = {route, gw_method_labels[method], code};
        m = ward_metric_get(ctx->m_requests, labels);
        if (slot != NULL)
            atomic_store_explicit(slot, m, memory_order_release);
    }
    ward_counter_inc(m);
    struct ward_metric *d = lr != NULL ? lr->duration : NULL;
    if (d == NULL) {
        const char *dl[] = {route};
        d = ward_metric_get(ctx->m_duration, dl);
    }
    ward_histogram_observe(d, (double)elapsed_ns / 1e9);
}
