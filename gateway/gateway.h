/* gateway.h — the insides of ward-gateway: the routes of the configuration made live
 * (a resilient client per route, one breaker per upstream service, an inbound limiter per
 * route), the process-wide context the engine's workers share (engine.h), and the admin
 * listener. Requests never hold a thread: each lives on the worker that read it. */
#ifndef GW_GATEWAY_H
#define GW_GATEWAY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ward/breaker.h>
#include <ward/http.h>
#include <ward/keyed_limiter.h>
#include <ward/metrics.h>
#include <ward/rclient.h>
#include <ward/registry.h>
#include <ward/service.h>

#include "config.h"
#include "keys.h"

/* One upstream service: the breaker and the balancer (with its outlier ejection) every
 * route to it shares. */
struct gw_upstream {
    char *service; /* owned */
    struct ward_breaker *breaker;
    struct ward_balancer *balancer;
    int64_t open_timeout_ns; /* for Retry-After while open */
};

/* One route, live. */
struct gw_live_route {
    const struct gw_route *route;      /* in the state's config */
    struct gw_upstream *up;            /* in the state */
    struct ward_rclient *rc;           /* discovery, retries, deadline, the shared breaker */
    struct ward_keyed_limiter *limiter; /* per client; NULL when the route has no limit */
    atomic_uint_fast64_t requests, faults;
    struct ward_metric *duration;       /* ward_gateway_request_duration_seconds{route} */
    /* ward_gateway_requests_total's children by method and status, found once each */
    _Atomic(struct ward_metric *) *by_status; /* [GW_METHODS][500]: statuses 100..599 */
};

/* The methods labelled by name (the rest are "OTHER"), for the metrics. */
#define GW_METHODS 8
extern const char *const gw_method_labels[GW_METHODS];

/* What a configuration makes live; swapped whole on a reload, freed when the last request
 * using it has ended. */
struct gw_state {
    struct gw_config *cfg;
    struct gw_keys *keys; /* NULL: no --api-keys, every auth route answers 401 */
    struct gw_live_route *routes;
    size_t nroutes;
    struct gw_upstream *ups;
    size_t nups;
    atomic_int refs;
};

struct gw_ctx {
    struct ward_log *log;
    struct ward_metrics *metrics;
    const char *version;
    int64_t start_mono;
    bool access_log;
    atomic_bool draining; /* a shutdown began: /health and /ready answer 503 */
    const char *config_path, *keys_path, *admin_listen; /* flags */
    struct ward_registry *registry; /* NULL when there is no --registry */
    struct ward_server *admin;
    pthread_mutex_t state_lock; /* swapping and taking the state */
    struct gw_state *state;
    struct ward_metric_family *m_requests; /* ward_gateway_requests_total{route,method,status} */
    struct ward_metric_family *m_duration; /* ward_gateway_request_duration_seconds{route} */
};

/* Makes cfg and keys live (both taken, also on failure). OK and *out; NOMEM, or INVAL
 * when a client refuses its settings (logged). */
WARD_MUST_CHECK enum ward_err gw_state_new(struct gw_ctx *ctx, struct gw_config *cfg,
                                           struct gw_keys *keys, struct gw_state **out);
/* The current state with a reference taken; gw_state_put gives it back. */
struct gw_state *gw_state_get(struct gw_ctx *ctx);
void gw_state_put(struct gw_state *st);

/* Registers the gateway's request metrics in ctx->metrics; NOMEM. */
WARD_MUST_CHECK enum ward_err gw_metrics_init(struct gw_ctx *ctx);
/* Counts an answered request (lr NULL when no route took it); method: an index into
 * gw_method_labels. */
void gw_metrics_count(struct gw_ctx *ctx, struct gw_live_route *lr, const char *route,
                      size_t method, int status, int64_t elapsed_ns);
/* The index of method in gw_method_labels. */
size_t gw_method_index(const char *method);

/* The admin listener: GET /admin/status and GET /metrics on --admin-listen. */
WARD_MUST_CHECK enum ward_err gw_admin_start(struct gw_ctx *ctx);
void gw_admin_stop(struct gw_ctx *ctx);

#endif
