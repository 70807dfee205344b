/* admit.c — a request's way in: its deadline, the built-in /health and /ready, the route
 * by path prefix, the API key, the client's rate limit and the route's fault injection,
 * and the client's headers to forward. What passes goes on to the upstream call. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include <ward/clock.h>

#include "exchange.h"

/* X-Request-Timeout-Ms: the caller's budget (DESIGN.md §4); false when it is not a
 * number of milliseconds. */
static bool adopt_deadline(struct gw_exchange *x)
{
    int64_t limit = gw_worker_settings(x->w)->request_timeout;
    const char *h = gw_headers_get(&x->req->headers, "X-Request-Timeout-Ms");
    if (h != NULL) {
        char *end = NULL;
        long long ms = strtoll(h, &end, 10);
        if (h[0] < '0' || h[0] > '9' || *end != '\0' || ms < 0)
            return false;
        if (ms < limit / WARD_NS_PER_MS)
            limit = ms * WARD_NS_PER_MS;
    }
    x->deadline = x->start + limit;
    return true;
}

/* ---- /health and /ready -------------------------------------------------------------- */

/* GET or HEAD of /health or /ready (the query aside): answered here, 503 once draining. */
static bool builtin(struct gw_exchange *x)
{
    const char *t = x->req->target;
    size_t n = strcspn(t, "?");
    bool health = n == 7 && strncmp(t, "/health", 7) == 0;
    bool ready = n == 6 && strncmp(t, "/ready", 6) == 0;
    if (!health && !ready)
        return false;
    if (strcmp(x->req->method, "GET") != 0 && strcmp(x->req->method, "HEAD") != 0)
        return false; /* the routes may want it */
    struct gw_ctx *ctx = x->ctx;
    x->route_label = health ? "/health" : "/ready";
    bool draining = atomic_load(&ctx->draining);
    char ts[80];
    ward_clock_rfc3339(ward_clock_wall(), ts, sizeof ts);
    json_t *body = json_pack("{s:s, s:s, s:s, s:f, s:s}", "status", draining ? "fail" : "pass",
                             "version", ctx->version, "serviceId", "ward-gateway", "uptime",
                             (double)(ward_clock_now(NULL) - ctx->start_mono) / 1e9,
                             "timestamp", ts);
    if (body != NULL && draining)
        json_object_set_new(body, "output", json_string("shutting down"));
    if (body != NULL && ready)
        json_object_set_new(body, "checks", json_object());
    char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    gw_x_header(x, "Cache-Control", "no-store");
    if (text == NULL) {
        gw_x_answer(x, 503, NULL, "text/plain", "out of memory\n", 14);
        return true;
    }
    gw_x_answer(x, draining ? 503 : 200, NULL, "application/health+json", text, strlen(text));
    free(text);
    return true;
}

/* ---- the route's gates ---------------------------------------------------------------- */

/* The API key a client presents: X-API-Key, else Authorization: Bearer. */
static const char *presented_key(const struct gw_request *req)
{
    const char *k = gw_headers_get(&req->headers, "X-API-Key");
    if (k != NULL)
        return k;
    const char *a = gw_headers_get(&req->headers, "Authorization");
    if (a != NULL && strncasecmp(a, "Bearer ", 7) == 0)
        return a + 7;
    return NULL;
}

/* Takes a token for the client (its key's name, else its address); false when the
 * request was answered 429. The RateLimit-* headers go on every answer of the route. */
static bool admit(struct gw_exchange *x, const char *key_name)
{
    const struct gw_route *r = x->lr->route;
    char who[GW_KEY_NAME_MAX + 72]; /* "key:NAME" or "addr:ADDRESS", without printf */
    const char *tag = key_name != NULL ? "key:" : "addr:";
    const char *id = key_name != NULL ? key_name : x->req->remote;
    size_t tlen = strlen(tag), ilen = strnlen(id, sizeof who - tlen - 1);
    memcpy(who, tag, tlen);
    memcpy(who + tlen, id, ilen);
    who[tlen + ilen] = '\0';
    struct ward_keyed_limiter_result lim = {0};
    enum ward_err err = ward_keyed_limiter_allow(x->lr->limiter, who, 1, &lim);
    gw_x_int_header(x, "RateLimit-Limit", r->limit.burst);
    gw_x_int_header(x, "RateLimit-Remaining", lim.remaining);
    gw_x_int_header(x, "RateLimit-Reset", gw_ceil_s(lim.reset_ns));
    if (err == WARD_ERR_OK)
        return true;
    gw_x_int_header(x, "Retry-After", lim.retry_after_ns > 0 ? gw_ceil_s(lim.retry_after_ns) : 1);
    gw_x_problem(x, WARD_PROBLEM_RATE_LIMITED, 0, "more than %g requests a second on %s",
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

/* Request headers the hop consumes, or that the gateway sets itself on the way out
 * (Host, the request id, trace and deadline, the length): looked up by length first,
 * since every forwarded header asks. */
static bool hop_header(const char *name, size_t n)
{
    static const char *const by_len[][4] = {
        [2] = {"TE"},
        [4] = {"Host"},
        [6] = {"Expect"},
        [7] = {"Trailer", "Upgrade"},
        [10] = {"Connection", "Keep-Alive"},
        [11] = {"traceparent"},
        [12] = {"X-Request-Id"},
        [14] = {"Content-Length"},
        [15] = {"X-Forwarded-For"},
        [16] = {"Proxy-Connection"},
        [17] = {"Transfer-Encoding"},
        [18] = {"Proxy-Authenticate"},
        [19] = {"Proxy-Authorization"},
        [20] = {"X-Request-Timeout-Ms"},
    };
    if (n >= sizeof by_len / sizeof by_len[0])
        return false;
    for (size_t i = 0; i < 4 && by_len[n][i] != NULL; i++)
        if (strcasecmp(name, by_len[n][i]) == 0)
            return true;
    return false;
}

struct fwd {
    struct gw_buf *b;
    bool drop_auth; /* the credential was the gateway's: not forwarded */
    bool ok;
};

static bool copy_header(const char *name, size_t nlen, const char *value, void *arg)
{
    struct fwd *f = arg;
    if (hop_header(name, nlen) ||
        (f->drop_auth && (strcasecmp(name, "X-API-Key") == 0 || strcasecmp(name, "Authorization") == 0)))
        return true;
    f->ok = f->ok && gw_buf_add(f->b, name, nlen) && gw_buf_add(f->b, ": ", 2) &&
            gw_buf_str(f->b, value) && gw_buf_add(f->b, "\r\n", 2);
    return f->ok;
}

static bool forwarded_headers(struct gw_exchange *x, bool drop_auth)
{
    struct fwd f = {.b = &x->fwd, .drop_auth = drop_auth, .ok = true};
    gw_headers_each(&x->req->headers, copy_header, &f);
    const char *xff = gw_headers_get(&x->req->headers, "X-Forwarded-For");
    return f.ok && gw_buf_str(&x->fwd, "X-Forwarded-For: ") &&
           (xff == NULL || (gw_buf_str(&x->fwd, xff) && gw_buf_str(&x->fwd, ", "))) &&
           gw_buf_str(&x->fwd, x->req->remote) && gw_buf_str(&x->fwd, "\r\n");
}

static void route(struct gw_exchange *x)
{
    struct gw_request *req = x->req;
    x->st = gw_state_get(x->ctx);
    size_t cap = strlen(req->target) + x->st->cfg->rewrite_grow + 2;
    if (!gw_buf_reserve(&x->path, cap)) {
        gw_x_problem(x, WARD_PROBLEM_INTERNAL, 0, "out of memory");
        return;
    }
    const struct gw_route *r = gw_route_match(x->st->cfg, req->target, x->path.data, cap);
    if (r == NULL) {
        gw_x_problem(x, WARD_PROBLEM_NOT_FOUND, 0, "no route for %.*s",
                     (int)strcspn(req->target, "?"), req->target);
        return;
    }
    x->lr = &x->st->routes[r - x->st->cfg->routes];
    x->route_label = r->prefix;
    atomic_fetch_add(&x->lr->requests, 1);
    const char *key_name = NULL;
    if (r->auth) {
        const char *presented = presented_key(req);
        key_name = gw_keys_find(x->st->keys, presented);
        if (key_name == NULL) {
            gw_x_header(x, "WWW-Authenticate", "Bearer");
            gw_x_problem(x, WARD_PROBLEM_UNAUTHORIZED, 0, "%s",
                         presented == NULL ? "this route needs an API key (X-API-Key)"
                                           : "unknown API key");
            return;
        }
    }
    if (x->lr->limiter != NULL && !admit(x, key_name))
        return;
    if (chance(r->fault.abort_percent)) {
        atomic_fetch_add(&x->lr->faults, 1);
        gw_x_problem(x, WARD_PROBLEM_INTERNAL, r->fault.abort_status, "fault injected by the gateway");
        return;
    }
    if (!forwarded_headers(x, r->auth)) {
        gw_x_problem(x, WARD_PROBLEM_INTERNAL, 0, "out of memory");
        return;
    }
    if (chance(r->fault.delay_percent) && r->fault.delay_ns > 0) {
        atomic_fetch_add(&x->lr->faults, 1);
        gw_timer_set(x->w, &x->timer, ward_clock_now(NULL) + r->fault.delay_ns);
        return; /* the timer calls on */
    }
    gw_proxy_call(x);
}

void gw_proxy_handle(struct gw_worker *w, struct gw_conn *c, struct gw_request *req)
{
    struct gw_exchange *x = gw_x_new(w, c, req);
    if (x == NULL) {
        gw_conn_close(c);
        return;
    }
    if (!adopt_deadline(x)) {
        gw_x_problem(x, WARD_PROBLEM_BAD_HEADER, 0,
                     "X-Request-Timeout-Ms must be a whole number of milliseconds");
        return;
    }
    if (!builtin(x))
        route(x);
}

void gw_proxy_reject(struct gw_worker *w, struct gw_conn *c, struct gw_request *req,
                     enum ward_problem_type type, const char *detail)
{
    struct gw_exchange *x = gw_x_new(w, c, req);
    if (x == NULL) {
        gw_conn_close(c);
        return;
    }
    gw_x_problem(x, type, 0, "%s", detail);
}
