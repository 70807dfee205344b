/* proxy.c — every request the gateway's server does not route itself: the route by path
 * prefix, then the API key, the client's rate limit and the route's fault injection, then
 * the call through the route's resilient client on the event loop (discovery, balancing,
 * the service's breaker, retries where safe, the deadline sent downstream). The request
 * is suspended meanwhile: no thread waits for an upstream. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include <ward/log.h>
#include <ward/problem.h>

#include "gateway.h"

#define MAX_HEADERS 64

/* A request on its way upstream. */
struct pending {
    struct gw_ctx *ctx;
    struct gw_state *st; /* referenced until the answer */
    struct gw_live_route *lr;
    struct ward_req *req;
    char *path;
    char *lines[MAX_HEADERS + 2]; /* forwarded "Name: value" lines, NULL-terminated */
    size_t nlines;
    bool drop_auth; /* the credential was the gateway's: not forwarded */
    /* RateLimit-* to add to the answer */
    bool limited_route;
    int64_t rl_limit, rl_remaining, rl_reset_s;
};

static void pending_free(struct pending *p)
{
    for (size_t i = 0; i < p->nlines; i++)
        free(p->lines[i]);
    free(p->path);
    gw_state_put(p->st);
    free(p);
}

/* Request headers the hop consumes, or that the client sets itself on the way out
 * (request id, trace, deadline, Idempotency-Key, Content-Type). */
static bool hop_header(const char *name)
{
    static const char *const drop[] = {
        "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "TE",
        "Trailer", "Transfer-Encoding", "Upgrade", "Host", "Content-Length", "Expect",
        "X-Request-Id", "traceparent", "tracestate", "X-Request-Timeout-Ms",
        "Idempotency-Key", "Content-Type", "X-Forwarded-For"};
    for (size_t i = 0; i < sizeof drop / sizeof drop[0]; i++)
        if (strcasecmp(name, drop[i]) == 0)
            return true;
    return false;
}

static bool add_line(struct pending *p, const char *name, const char *value)
{
    if (p->nlines >= MAX_HEADERS)
        return true; /* the rest is dropped: a client sending more is odd, not an error */
    size_t n = strlen(name) + strlen(value) + 3;
    char *line = malloc(n);
    if (line == NULL)
        return false;
    snprintf(line, n, "%s: %s", name, value);
    p->lines[p->nlines++] = line;
    return true;
}

static bool copy_header(const char *name, const char *value, void *arg)
{
    struct pending *p = arg;
    if (hop_header(name))
        return true;
    if (p->drop_auth && (strcasecmp(name, "X-API-Key") == 0 || strcasecmp(name, "Authorization") == 0))
        return true;
    return add_line(p, name, value);
}

/* The API key a client presents: X-API-Key, else Authorization: Bearer. */
static const char *presented_key(struct ward_req *req)
{
    const char *k = ward_req_header(req, "X-API-Key");
    if (k != NULL)
        return k;
    const char *a = ward_req_header(req, "Authorization");
    if (a != NULL && strncasecmp(a, "Bearer ", 7) == 0)
        return a + 7;
    return NULL;
}

static void set_header(struct ward_req *req, const char *name, const char *value)
{
    if (ward_req_set_header(req, name, value) != WARD_ERR_OK)
        WARD_WARN(ward_req_log(req), ward_req_log_ctx(req), "response header dropped",
                  WARD_S("header", name));
}

static void set_int_header(struct ward_req *req, const char *name, int64_t v)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%lld", (long long)v);
    set_header(req, name, buf);
}

static int64_t ceil_s(int64_t ns)
{
    return ns <= 0 ? 0 : (ns + WARD_NS_PER_S - 1) / WARD_NS_PER_S;
}

static void ratelimit_headers(struct pending *p)
{
    if (!p->limited_route)
        return;
    set_int_header(p->req, "RateLimit-Limit", p->rl_limit);
    set_int_header(p->req, "RateLimit-Remaining", p->rl_remaining);
    set_int_header(p->req, "RateLimit-Reset", p->rl_reset_s);
}

/* A problem of an arbitrary status (fault injection): about:blank, as RFC 9457 allows. */
static void respond_status_problem(struct ward_req *req, int status, const char *detail)
{
    json_t *j = json_pack("{s:s, s:s, s:i, s:s, s:s, s:s}", "type", "about:blank", "title",
                          "Injected fault", "status", status, "detail", detail, "instance",
                          ward_req_path(req), "request_id", ward_req_id(req));
    char *text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (text == NULL) {
        ward_req_respond_problem(req, NULL);
        return;
    }
    ward_req_respond(req, status, "application/problem+json", text, strlen(text));
    free(text);
}

/* The breaker is open: the route's fallback, at once. */
static void fallback(struct pending *p)
{
    const struct gw_route *r = p->lr->route;
    set_int_header(p->req, "Retry-After", ceil_s(p->lr->up->open_timeout_ns));
    ratelimit_headers(p);
    if (r->fallback.body != NULL) {
        ward_req_respond(p->req, r->fallback.status, "application/json", r->fallback.body,
                         strlen(r->fallback.body));
        return;
    }
    ward_req_fail(p->req, WARD_PROBLEM_UNAVAILABLE, "%s is failing: its circuit breaker is open",
                  r->service);
}

/* Response headers the hop consumes, or that this server sets itself. */
static bool hop_response_header(const char *name)
{
    static const char *const drop[] = {"Connection", "Keep-Alive", "Transfer-Encoding",
                                       "Content-Length", "Content-Type", "Date",
                                       "X-Request-Id", "Server", "Proxy-Authenticate",
                                       "Trailer", "Upgrade"};
    for (size_t i = 0; i < sizeof drop / sizeof drop[0]; i++)
        if (strcasecmp(name, drop[i]) == 0)
            return true;
    return false;
}

static bool copy_response_header(const char *name, const char *value, void *arg)
{
    if (!hop_response_header(name))
        set_header(arg, name, value);
    return true;
}

/* The upstream's answer, or why there is none (on the loop thread). */
static void done(enum ward_err err, struct ward_http_result *res, void *arg)
{
    struct pending *p = arg;
    struct ward_req *req = p->req;
    const char *service = p->lr->route->service;
    switch (err) {
    case WARD_ERR_OK:
    case WARD_ERR_HTTP_STATUS: {
        ward_http_result_headers(res, copy_response_header, req);
        ratelimit_headers(p);
        const char *ct = ward_http_result_header(res, "Content-Type");
        ward_req_respond(req, res->status, ct != NULL ? ct : "application/octet-stream",
                         res->body != NULL ? res->body : "", res->body_len);
        break;
    }
    case WARD_ERR_OPEN:
    case WARD_ERR_TOO_MANY_REQUESTS:
        fallback(p);
        break;
    case WARD_ERR_DEADLINE:
    case WARD_ERR_TIMEOUT:
        ratelimit_headers(p);
        ward_req_fail(req, WARD_PROBLEM_DEADLINE_EXCEEDED, "%s did not answer within the route's time",
                      service);
        break;
    case WARD_ERR_STATE: /* the loop stopped under the call */
    case WARD_ERR_UNAVAILABLE:
    case WARD_ERR_BULKHEAD_FULL:
    case WARD_ERR_BUDGET_EXHAUSTED:
    case WARD_ERR_RATE_LIMITED:
        set_header(req, "Retry-After", "1");
        ratelimit_headers(p);
        ward_req_fail(req, WARD_PROBLEM_UNAVAILABLE, "%s: %s", service, ward_strerror(err));
        break;
    default: /* CONNECT, TRANSPORT, TOO_LARGE, NOMEM */
        ratelimit_headers(p);
        ward_req_fail(req, WARD_PROBLEM_BAD_GATEWAY, "%s: %s", service, ward_strerror(err));
        break;
    }
    ward_http_result_fini(res);
    pending_free(p);
}

static void start_call(void *arg)
{
    struct pending *p = arg;
    struct gw_ctx *ctx = p->ctx; /* p may be gone as soon as the call started */
    pthread_rwlock_rdlock(&ctx->loop_lock);
    if (ctx->stopping) {
        pthread_rwlock_unlock(&ctx->loop_lock);
        set_header(p->req, "Retry-After", "1");
        ward_req_fail(p->req, WARD_PROBLEM_UNAVAILABLE, "the gateway is stopping");
        pending_free(p);
        return;
    }
    size_t len = 0;
    const char *body = ward_req_body(p->req, &len);
    struct ward_http_call call = {
        .method = ward_req_method(p->req),
        .url = p->path,
        .headers = (const char *const *)p->lines,
        .body = body,
        .body_len = len,
        .content_type = ward_req_header(p->req, "Content-Type"),
        .deadline = ward_req_deadline(p->req),
        .request_id = ward_req_id(p->req),
        .traceparent = ward_req_traceparent(p->req),
        .idempotency_key = ward_req_header(p->req, "Idempotency-Key"),
    };
    enum ward_err err = ward_rclient_call_async(p->lr->rc, ctx->loop, &call, done, p);
    pthread_rwlock_unlock(&ctx->loop_lock);
    if (err != WARD_ERR_OK) { /* done will not run */
        ward_req_fail(p->req, WARD_PROBLEM_UNAVAILABLE, "the gateway is shutting down");
        pending_free(p);
    }
}

/* The client's identity for its rate limit: its key's name, else its address. */
static void identity(const char *key_name, const char *addr, char *buf, size_t size)
{
    if (key_name != NULL)
        snprintf(buf, size, "key:%s", key_name);
    else
        snprintf(buf, size, "addr:%s", addr);
}

/* Takes a token for the client; false when the request was answered 429. */
static bool admit(struct pending *p, const char *who)
{
    const struct gw_route *r = p->lr->route;
    struct ward_keyed_limiter_result lim = {0};
    enum ward_err err = ward_keyed_limiter_allow(p->lr->limiter, who, 1, &lim);
    p->limited_route = true;
    p->rl_limit = r->limit.burst;
    p->rl_remaining = lim.remaining;
    p->rl_reset_s = ceil_s(lim.reset_ns);
    if (err == WARD_ERR_OK)
        return true;
    set_int_header(p->req, "Retry-After", lim.retry_after_ns > 0 ? ceil_s(lim.retry_after_ns) : 1);
    ratelimit_headers(p);
    ward_req_fail(p->req, WARD_PROBLEM_RATE_LIMITED, "more than %g requests a second on %s",
                  r->limit.rate, r->prefix);
    return false;
}

/* Whether a request falls into percent of all: a fresh random draw per request. */
static bool chance(double percent)
{
    if (percent <= 0)
        return false;
    if (percent >= 100)
        return true;
    static _Thread_local unsigned seed;
    if (seed == 0)
        seed = (unsigned)ward_clock_now(NULL) ^ (unsigned)(uintptr_t)&seed;
    return (double)rand_r(&seed) / ((double)RAND_MAX + 1.0) * 100.0 < percent;
}

void gw_proxy(struct ward_req *req, void *arg)
{
    struct gw_ctx *ctx = arg;
    struct pending *p = calloc(1, sizeof *p);
    if (p == NULL) {
        ward_req_respond_problem(req, NULL);
        return;
    }
    p->ctx = ctx;
    p->req = req;
    p->st = gw_state_get(ctx);
    const char *target = ward_req_target(req);
    size_t cap = strlen(target) + p->st->cfg->rewrite_grow + 2;
    p->path = malloc(cap);
    if (p->path == NULL) {
        ward_req_respond_problem(req, NULL);
        goto drop;
    }
    const struct gw_route *r = gw_route_match(p->st->cfg, target, p->path, cap);
    if (r == NULL) {
        ward_req_fail(req, WARD_PROBLEM_NOT_FOUND, "no route for %s", ward_req_path(req));
        goto drop;
    }
    p->lr = &p->st->routes[r - p->st->cfg->routes];
    atomic_fetch_add(&p->lr->requests, 1);

    const char *key_name = NULL;
    if (r->auth) {
        const char *presented = presented_key(req);
        key_name = gw_keys_find(p->st->keys, presented);
        if (key_name == NULL) {
            set_header(req, "WWW-Authenticate", "Bearer");
            ward_req_fail(req, WARD_PROBLEM_UNAUTHORIZED, "%s",
                          presented == NULL ? "this route needs an API key (X-API-Key)"
                                            : "unknown API key");
            goto drop;
        }
        p->drop_auth = true;
    }
    char addr[64]; /* for the limit's identity and X-Forwarded-For: looked up once */
    ward_req_client_addr(req, addr, sizeof addr);
    if (p->lr->limiter != NULL) {
        char who[GW_KEY_NAME_MAX + 72];
        identity(key_name, addr, who, sizeof who);
        if (!admit(p, who))
            goto drop;
    }
    if (chance(r->fault.abort_percent)) {
        atomic_fetch_add(&p->lr->faults, 1);
        respond_status_problem(req, r->fault.abort_status, "fault injected by the gateway");
        goto drop;
    }

    const char *xff = ward_req_header(req, "X-Forwarded-For");
    char fwd[512];
    if (xff != NULL)
        snprintf(fwd, sizeof fwd, "%s, %s", xff, addr);
    else
        snprintf(fwd, sizeof fwd, "%s", addr);
    ward_req_headers(req, copy_header, p);
    if (!add_line(p, "X-Forwarded-For", fwd)) {
        ward_req_respond_problem(req, NULL);
        goto drop;
    }

    ward_req_suspend(req);
    if (chance(r->fault.delay_percent) && r->fault.delay_ns > 0) {
        atomic_fetch_add(&p->lr->faults, 1);
        pthread_rwlock_rdlock(&ctx->loop_lock);
        bool later = !ctx->stopping &&
                     ward_loop_after(ctx->loop, r->fault.delay_ns, start_call, p) == WARD_ERR_OK;
        pthread_rwlock_unlock(&ctx->loop_lock);
        if (later)
            return;
    }
    start_call(p);
    return;
drop:
    pending_free(p);
}
