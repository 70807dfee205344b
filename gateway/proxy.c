/* proxy.c — every request the gateway reads, from its parse to its answer, on the worker
 * that read it: request ID, trace and deadline, the built-in /health and /ready, the route
 * by path prefix, the API key, the client's rate limit and the route's fault injection,
 * then the resilient client's policy (discovery, balancing, the service's breaker,
 * retries where safe, the deadline sent downstream) driven step by step over the
 * worker's upstream connections, and at last the answer, its access-log line and its
 * metrics. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include <ward/clock.h>
#include <ward/log.h>
#include <ward/trace.h>

#include "exchange.h"

static void attempt(struct gw_exchange *x);
static void count(struct gw_exchange *x, size_t bytes);

void gw_x_free(struct gw_exchange *x);

/* ---- the exchange's end ------------------------------------------------------------- */

void gw_x_free(struct gw_exchange *x)
{
    struct gw_worker *w = x->w;
    if (x->prev != NULL)
        x->prev->next = x->next;
    else
        w->exchanges = x->next;
    if (x->next != NULL)
        x->next->prev = x->prev;
    gw_timer_cancel(w, &x->timer);
    if (x->on_wire)
        gw_upcall_abort(&x->up);
    if (x->rcall != NULL)
        (void)ward_rcall_end(x->rcall, NULL);
    if (x->conn != NULL)
        gw_conn_set_exchange(x->conn, NULL);
    ward_http_result_fini(&x->res);
    gw_buf_free(&x->up.req);
    gw_buf_free(&x->fwd);
    gw_buf_free(&x->extra);
    free(x->path);
    gw_state_put(x->st);
    free(x);
}

void gw_proxy_client_gone(struct gw_exchange *x)
{
    x->status = 499; /* nginx's word for it */
    count(x, 0);
    x->conn = NULL; /* its request's strings go with it: the call ends here */
    gw_x_free(x);
}

void gw_proxy_stop(struct gw_worker *w)
{
    while (w->exchanges != NULL)
        gw_x_free(w->exchanges);
}

static const char *method_label(const char *m)
{
    static const char *const known[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(m, known[i]) == 0)
            return known[i];
    return "OTHER";
}

static void count(struct gw_exchange *x, size_t bytes)
{
    struct gw_ctx *ctx = x->ctx;
    int64_t elapsed = ward_clock_now(NULL) - x->start;
    const char *method = x->req != NULL ? x->req->method : "";
    if (ctx->access_log && ward_log_enabled(ctx->log, WARD_LOG_INFO))
        ward_log_write(ctx->log, WARD_LOG_INFO, &x->logctx, "request", WARD_S("method", method),
                       WARD_S("path", x->req != NULL ? x->req->target : ""),
                       WARD_S("route", x->route_label), WARD_I("status", x->status),
                       WARD_I("bytes", (int64_t)bytes),
                       WARD_D("duration_ms", (double)elapsed / 1e6),
                       WARD_S("remote", x->req != NULL ? x->req->remote : ""), WARD_KV_LAST);
    gw_metrics_count(ctx, x->lr, x->route_label, method_label(method), x->status, elapsed);
}

/* Sends the answer (head: the header lines; body of ctype) and ends the exchange. */
void gw_x_answer(struct gw_exchange *x, int status, const struct gw_buf *headers,
                 const char *ctype, const char *body, size_t len)
{
    x->status = status;
    struct gw_conn *c = x->conn; /* the exchange lets go of it before it answers */
    x->conn = NULL;
    if (c != NULL)
        gw_conn_set_exchange(c, NULL);
    char line[160];
    const char *reason = http_status_str((enum http_status)status);
    int n = snprintf(line, sizeof line, "HTTP/1.1 %d %s\r\nX-Request-Id: %s\r\n", status,
                     reason != NULL && strcmp(reason, "<unknown>") != 0 ? reason : "Status",
                     x->request_id);
    struct gw_buf head = {0};
    bool ok = gw_buf_add(&head, line, (size_t)n) &&
              (headers == NULL || gw_buf_add(&head, headers->data, headers->len)) &&
              gw_buf_add(&head, x->extra.data, x->extra.len);
    if (ok && ctype != NULL)
        ok = gw_buf_str(&head, "Content-Type: ") && gw_buf_str(&head, ctype) && gw_buf_str(&head, "\r\n");
    count(x, len);
    if (c != NULL) {
        if (ok)
            gw_conn_respond(c, status, &head, body, len);
        else
            gw_conn_close(c); /* out of memory: nothing half-said */
    }
    gw_buf_free(&head);
    gw_x_free(x);
}

void gw_x_header(struct gw_exchange *x, const char *name, const char *value)
{
    (void)(gw_buf_str(&x->extra, name) && gw_buf_str(&x->extra, ": ") &&
           gw_buf_str(&x->extra, value) && gw_buf_str(&x->extra, "\r\n"));
}

void gw_x_int_header(struct gw_exchange *x, const char *name, int64_t v)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%lld", (long long)v);
    gw_x_header(x, name, buf);
}

/* A problem of type with its detail (status: the type's, unless nonzero). */
void gw_x_problem(struct gw_exchange *x, enum ward_problem_type type, int status,
                  const char *fmt, ...)
{
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    json_t *j = json_pack("{s:s, s:s, s:i, s:s, s:s, s:s}", "type",
                          status != 0 ? "about:blank" : ward_problem_type_uri(type), "title",
                          status != 0 ? "Injected fault" : ward_problem_type_title(type),
                          "status", status != 0 ? status : ward_problem_type_status(type),
                          "detail", detail, "instance", x->req != NULL ? x->req->target : "",
                          "request_id", x->request_id);
    char *text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    int code = status != 0 ? status : ward_problem_type_status(type);
    if (text == NULL) {
        gw_x_answer(x, 500, NULL, "text/plain", "out of memory\n", 14);
        return;
    }
    gw_x_answer(x, code, NULL, "application/problem+json", text, strlen(text));
    free(text);
}

/* ---- the upstream's answer, or why there is none ------------------------------------ */

static bool hop_response_header(const char *name)
{
    static const char *const drop[] = {"Connection", "Keep-Alive", "Transfer-Encoding",
                                       "Content-Length", "X-Request-Id", "Proxy-Authenticate",
                                       "Proxy-Connection", "Trailer", "Upgrade"};
    for (size_t i = 0; i < sizeof drop / sizeof drop[0]; i++)
        if (strcasecmp(name, drop[i]) == 0)
            return true;
    return false;
}

static bool copy_response_header(const char *name, const char *value, void *arg)
{
    struct gw_buf *b = arg;
    if (!hop_response_header(name))
        (void)(gw_buf_str(b, name) && gw_buf_str(b, ": ") && gw_buf_str(b, value) &&
               gw_buf_str(b, "\r\n"));
    return true;
}

/* The breaker is open: the route's fallback, at once. */
static void fallback(struct gw_exchange *x)
{
    const struct gw_route *r = x->lr->route;
    gw_x_int_header(x, "Retry-After", gw_ceil_s(x->lr->up->open_timeout_ns));
    if (r->fallback.body != NULL) {
        gw_x_answer(x, r->fallback.status, NULL, "application/json", r->fallback.body,
               strlen(r->fallback.body));
        return;
    }
    gw_x_problem(x, WARD_PROBLEM_UNAVAILABLE, 0, "%s is failing: its circuit breaker is open",
                   r->service);
}

static void finish(struct gw_exchange *x)
{
    enum ward_err err = ward_rcall_end(x->rcall, NULL);
    x->rcall = NULL;
    const char *service = x->lr->route->service;
    switch (err) {
    case WARD_ERR_OK:
    case WARD_ERR_HTTP_STATUS: {
        struct gw_buf h = {0};
        ward_http_result_headers(&x->res, copy_response_header, &h);
        gw_x_answer(x, x->res.status, &h, NULL, x->res.body != NULL ? x->res.body : "", x->res.body_len);
        gw_buf_free(&h);
        return;
    }
    case WARD_ERR_OPEN:
    case WARD_ERR_TOO_MANY_REQUESTS:
        fallback(x);
        return;
    case WARD_ERR_DEADLINE:
    case WARD_ERR_TIMEOUT:
        gw_x_problem(x, WARD_PROBLEM_DEADLINE_EXCEEDED, 0,
                       "%s did not answer within the route's time", service);
        return;
    case WARD_ERR_UNAVAILABLE:
    case WARD_ERR_BULKHEAD_FULL:
    case WARD_ERR_BUDGET_EXHAUSTED:
    case WARD_ERR_RATE_LIMITED:
    case WARD_ERR_STATE:
        gw_x_header(x, "Retry-After", "1");
        gw_x_problem(x, WARD_PROBLEM_UNAVAILABLE, 0, "%s: %s", service, ward_strerror(err));
        return;
    default: /* CONNECT, TRANSPORT, TOO_LARGE, NOMEM */
        gw_x_problem(x, WARD_PROBLEM_BAD_GATEWAY, 0, "%s: %s", service, ward_strerror(err));
        return;
    }
}

/* ---- driving the policy ----------------------------------------------------------------- */

static void on_timer(struct gw_timer *t)
{
    struct gw_exchange *x = (struct gw_exchange *)((char *)t - offsetof(struct gw_exchange, timer));
    if (!x->on_wire) { /* a wait of the policy (backoff, a fault's delay) ended */
        if (x->rcall != NULL)
            attempt(x);
        else
            gw_proxy_call(x);
        return;
    }
    /* the attempt's deadline: the attempt is given up, and the policy decides */
    gw_upcall_abort(&x->up);
    x->on_wire = false;
    ward_http_result_fini(&x->res);
    x->res.sent = true;
    int64_t wait = 0;
    enum ward_rstep s = ward_rcall_outcome(x->rcall, WARD_ERR_DEADLINE, &x->res, &wait);
    if (s == WARD_RSTEP_WAIT) {
        gw_timer_set(x->w, &x->timer, x->w->now + wait);
        return;
    }
    finish(x);
}

static void follow(struct gw_exchange *x, enum ward_rstep s, int64_t wait)
{
    if (s == WARD_RSTEP_DONE) {
        finish(x);
    } else if (wait > 0) {
        gw_timer_set(x->w, &x->timer, ward_clock_now(NULL) + wait);
    } else {
        attempt(x);
    }
}

static void on_answer(struct gw_upcall *u, enum ward_err err, struct ward_http_result *res)
{
    struct gw_exchange *x = (struct gw_exchange *)((char *)u - offsetof(struct gw_exchange, up));
    x->on_wire = false;
    gw_timer_cancel(x->w, &x->timer);
    ward_http_result_fini(&x->res);
    x->res = *res;
    int64_t wait = 0;
    enum ward_rstep s = ward_rcall_outcome(x->rcall, err, &x->res, &wait);
    follow(x, s, wait);
}

/* The request line and headers of an attempt to url. */
static bool build_request(struct gw_exchange *x, const struct ward_http_call *out,
                          const char **authority_out)
{
    static char authority[256];
    const char *a = strstr(out->url, "://");
    a = a != NULL ? a + 3 : out->url;
    const char *slash = strchr(a, '/');
    size_t alen = slash != NULL ? (size_t)(slash - a) : strlen(a);
    if (alen == 0 || alen >= sizeof authority)
        return false;
    memcpy(authority, a, alen);
    authority[alen] = '\0';
    *authority_out = authority;
    const char *path = slash != NULL ? slash : "/";
    char tp[WARD_TRACEPARENT_LEN + 1];
    ward_trace_child(x->trace.traceparent, tp);
    int64_t left = out->deadline - ward_clock_now(NULL);
    int64_t ms = left <= WARD_NS_PER_MS ? 1 : left / WARD_NS_PER_MS;
    struct gw_request *r = x->req;
    char tail[256];
    int n = snprintf(tail, sizeof tail,
                     "X-Request-Id: %s\r\ntraceparent: %s\r\nX-Request-Timeout-Ms: %lld\r\n",
                     x->request_id, tp, (long long)ms);
    struct gw_buf *b = &x->up.req;
    b->len = 0;
    bool ok = gw_buf_str(b, r->method) && gw_buf_add(b, " ", 1) && gw_buf_str(b, path) &&
              gw_buf_str(b, " HTTP/1.1\r\nHost: ") && gw_buf_add(b, authority, alen) &&
              gw_buf_add(b, "\r\n", 2) && gw_buf_add(b, x->fwd.data, x->fwd.len) &&
              gw_buf_add(b, tail, (size_t)n);
    bool bodied = r->body_len > 0 || strcmp(r->method, "POST") == 0 ||
                  strcmp(r->method, "PUT") == 0 || strcmp(r->method, "PATCH") == 0;
    if (ok && bodied) {
        n = snprintf(tail, sizeof tail, "Content-Length: %zu\r\n", r->body_len);
        ok = gw_buf_add(b, tail, (size_t)n);
    }
    return ok && gw_buf_add(b, "\r\n", 2);
}

static void attempt(struct gw_exchange *x)
{
    struct ward_http_call out;
    int64_t wait = 0;
    enum ward_rstep s = ward_rcall_attempt(x->rcall, &out, &wait);
    if (s != WARD_RSTEP_SEND) {
        follow(x, s, wait);
        return;
    }
    const char *authority = NULL;
    if (!build_request(x, &out, &authority)) {
        struct ward_http_result none = {0};
        s = ward_rcall_outcome(x->rcall, WARD_ERR_NOMEM, &none, &wait);
        follow(x, s, wait);
        return;
    }
    x->up.done = on_answer;
    x->up.body = x->req->body;
    x->up.body_len = x->req->body_len;
    x->up.head_method = strcmp(x->req->method, "HEAD") == 0;
    x->up.resend_ok = x->call.idempotency_key != NULL || ward_retry_idempotent(x->req->method);
    x->on_wire = true;
    gw_timer_set(x->w, &x->timer, out.deadline);
    gw_upcall_start(x->w, authority, &x->up);
}

void gw_proxy_call(struct gw_exchange *x)
{
    x->call = (struct ward_http_call){
        .method = x->req->method,
        .url = x->path,
        .deadline = x->deadline,
        .request_id = x->request_id,
        .idempotency_key = gw_headers_get(&x->req->headers, "Idempotency-Key"),
    };
    enum ward_rstep s;
    int64_t wait = 0;
    if (ward_rcall_new(x->lr->rc, &x->call, &x->rcall, &s, &wait) != WARD_ERR_OK) {
        gw_x_problem(x, WARD_PROBLEM_INTERNAL, 0, "out of memory");
        return;
    }
    follow(x, s, wait);
}

/* ---- the exchange's start --------------------------------------------------------- */

struct gw_exchange *gw_x_new(struct gw_worker *w, struct gw_conn *c,
                                        struct gw_request *req)
{
    struct gw_exchange *x = calloc(1, sizeof *x);
    if (x == NULL)
        return NULL;
    x->w = w;
    x->ctx = gw_worker_ctx(w);
    x->conn = c;
    x->req = req;
    x->start = ward_clock_now(NULL);
    x->route_label = "unmatched";
    x->timer.fn = on_timer;
    const char *rid = gw_headers_get(&req->headers, "X-Request-Id");
    if (rid != NULL && ward_request_id_valid(rid))
        snprintf(x->request_id, sizeof x->request_id, "%s", rid);
    else
        ward_request_id_new(x->request_id);
    ward_trace_continue(&x->trace, gw_headers_get(&req->headers, "traceparent"));
    x->logctx = (struct ward_log_ctx){.request_id = x->request_id, .trace_id = x->trace.trace_id};
    x->next = w->exchanges;
    if (w->exchanges != NULL)
        w->exchanges->prev = x;
    w->exchanges = x;
    gw_conn_set_exchange(c, x);
    return x;
}

