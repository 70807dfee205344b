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

#define SPARE_MAX 256

static void buffers_free(struct gw_exchange *x)
{
    gw_buf_free(&x->up.req);
    gw_buf_free(&x->up.answer_body);
    gw_buf_free(&x->up.answer_headers);
    gw_buf_free(&x->path);
    gw_buf_free(&x->fwd);
    gw_buf_free(&x->extra);
    gw_buf_free(&x->head);
    free(x);
}

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
    gw_state_put(x->st); /* x->res points into x->up's buffers: nothing of its own */
    if (w->nspare >= SPARE_MAX) {
        buffers_free(x);
        return;
    }
    x->next = w->spare; /* its buffers stay: the next request writes over them */
    w->spare = x;
    w->nspare++;
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
    while (w->spare != NULL) {
        struct gw_exchange *x = w->spare;
        w->spare = x->next;
        buffers_free(x);
    }
    w->nspare = 0;
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
    gw_metrics_count(ctx, x->lr, x->route_label, gw_method_index(method), x->status, elapsed);
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
    const char *reason = http_status_str((enum http_status)status);
    if (reason == NULL || strcmp(reason, "<unknown>") == 0)
        reason = "Status";
    struct gw_buf *head = &x->head;
    head->len = 0;
    bool ok = gw_buf_add(head, "HTTP/1.1 ", 9) && gw_buf_int(head, status) &&
              gw_buf_add(head, " ", 1) && gw_buf_str(head, reason) &&
              gw_buf_add(head, "\r\nX-Request-Id: ", 16) && gw_buf_str(head, x->request_id) &&
              gw_buf_add(head, "\r\n", 2) &&
              (headers == NULL || gw_buf_add(head, headers->data, headers->len)) &&
              gw_buf_add(head, x->extra.data, x->extra.len);
    if (ok && ctype != NULL)
        ok = gw_buf_add(head, "Content-Type: ", 14) && gw_buf_str(head, ctype) &&
             gw_buf_add(head, "\r\n", 2);
    count(x, len);
    if (c != NULL) {
        if (ok)
            gw_conn_respond(c, status, head, body, len);
        else
            gw_conn_close(c); /* out of memory: nothing half-said */
    }
    gw_x_free(x);
}

void gw_x_header(struct gw_exchange *x, const char *name, const char *value)
{
    (void)(gw_buf_str(&x->extra, name) && gw_buf_str(&x->extra, ": ") &&
           gw_buf_str(&x->extra, value) && gw_buf_str(&x->extra, "\r\n"));
}

void gw_x_int_header(struct gw_exchange *x, const char *name, int64_t v)
{
    (void)(gw_buf_str(&x->extra, name) && gw_buf_str(&x->extra, ": ") &&
           gw_buf_int(&x->extra, v) && gw_buf_str(&x->extra, "\r\n"));
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
    const char *instance = x->req != NULL ? x->req->target : "";
    json_t *j = NULL;
    if (status == 0) { /* a problem type of ward's: the library renders it, as every service */
        struct ward_problem *p = ward_problem_new(type, "%s", detail);
        j = p != NULL ? ward_problem_to_json(p, instance, x->request_id) : NULL;
        ward_problem_free(p);
    } else { /* an injected status: RFC 9457's about:blank */
        j = json_pack("{s:s, s:s, s:i, s:s, s:s, s:s}", "type", "about:blank", "title",
                      "Injected fault", "status", status, "detail", detail, "instance",
                      instance, "request_id", x->request_id);
    }
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

/* Response headers the hop consumes, or that the gateway sets itself. */
static bool hop_response_header(const char *name)
{
    switch (strlen(name)) {
    case 7:
        return strcasecmp(name, "Trailer") == 0 || strcasecmp(name, "Upgrade") == 0;
    case 10:
        return strcasecmp(name, "Connection") == 0 || strcasecmp(name, "Keep-Alive") == 0;
    case 12:
        return strcasecmp(name, "X-Request-Id") == 0;
    case 14:
        return strcasecmp(name, "Content-Length") == 0;
    case 16:
        return strcasecmp(name, "Proxy-Connection") == 0;
    case 17:
        return strcasecmp(name, "Transfer-Encoding") == 0;
    case 18:
        return strcasecmp(name, "Proxy-Authenticate") == 0;
    default:
        return false;
    }
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
        ward_http_result_headers(&x->res, copy_response_header, &x->extra);
        gw_x_answer(x, x->res.status, NULL, NULL, x->res.body != NULL ? x->res.body : "",
                    x->res.body_len);
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
    x->res = (struct ward_http_result){.sent = true};
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
        gw_timer_set(x->w, &x->timer, x->w->now + wait);
    } else {
        attempt(x);
    }
}

static void on_answer(struct gw_upcall *u, enum ward_err err, struct ward_http_result *res)
{
    struct gw_exchange *x = (struct gw_exchange *)((char *)u - offsetof(struct gw_exchange, up));
    x->on_wire = false;
    gw_timer_cancel(x->w, &x->timer);
    x->res = *res; /* into x->up's buffers, or nothing */
    int64_t wait = 0;
    enum ward_rstep s = ward_rcall_outcome(x->rcall, err, &x->res, &wait);
    follow(x, s, wait);
}

/* The request line and headers of an attempt to url. */
static bool build_request(struct gw_exchange *x, const struct ward_http_call *out)
{
    const char *a = strstr(out->url, "://");
    a = a != NULL ? a + 3 : out->url;
    const char *slash = strchr(a, '/');
    size_t alen = slash != NULL ? (size_t)(slash - a) : strlen(a);
    if (alen == 0 || alen >= sizeof x->authority)
        return false;
    memcpy(x->authority, a, alen);
    x->authority[alen] = '\0';
    const char *path = slash != NULL ? slash : "/";
    char tp[WARD_TRACEPARENT_LEN + 1];
    ward_trace_span(&x->trace, tp);
    int64_t left = out->deadline - x->w->now;
    int64_t ms = left <= WARD_NS_PER_MS ? 1 : left / WARD_NS_PER_MS;
    struct gw_request *r = x->req;
    struct gw_buf *b = &x->up.req;
    b->len = 0;
    bool ok = gw_buf_str(b, r->method) && gw_buf_add(b, " ", 1) && gw_buf_str(b, path) &&
              gw_buf_add(b, " HTTP/1.1\r\nHost: ", 17) && gw_buf_add(b, x->authority, alen) &&
              gw_buf_add(b, "\r\n", 2) && gw_buf_add(b, x->fwd.data, x->fwd.len) &&
              gw_buf_add(b, "X-Request-Id: ", 14) && gw_buf_str(b, x->request_id) &&
              gw_buf_add(b, "\r\ntraceparent: ", 15) && gw_buf_add(b, tp, WARD_TRACEPARENT_LEN) &&
              gw_buf_add(b, "\r\nX-Request-Timeout-Ms: ", 24) && gw_buf_int(b, ms) &&
              gw_buf_add(b, "\r\n", 2);
    bool bodied = r->body_len > 0 || strcmp(r->method, "POST") == 0 ||
                  strcmp(r->method, "PUT") == 0 || strcmp(r->method, "PATCH") == 0;
    if (ok && bodied)
        ok = gw_buf_add(b, "Content-Length: ", 16) && gw_buf_int(b, (int64_t)r->body_len) &&
             gw_buf_add(b, "\r\n", 2);
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
    if (!build_request(x, &out)) {
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
    gw_upcall_start(x->w, x->authority, &x->up);
}

void gw_proxy_call(struct gw_exchange *x)
{
    x->call = (struct ward_http_call){
        .method = x->req->method,
        .url = x->path.data,
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

struct gw_exchange *gw_x_new(struct gw_worker *w, struct gw_conn *c, struct gw_request *req)
{
    struct gw_exchange *x = w->spare;
    if (x != NULL) { /* everything anew but the buffers' room */
        w->spare = x->next;
        w->nspare--;
        struct gw_buf keep[7] = {x->up.req, x->up.answer_body, x->up.answer_headers, x->path,
                                 x->fwd,    x->extra,   x->head};
        memset(x, 0, sizeof *x);
        struct gw_buf *to[7] = {&x->up.req, &x->up.answer_body, &x->up.answer_headers, &x->path,
                                &x->fwd,    &x->extra,   &x->head};
        for (size_t i = 0; i < 7; i++) {
            *to[i] = keep[i];
            to[i]->len = 0;
        }
    } else if ((x = calloc(1, sizeof *x)) == NULL) {
        return NULL;
    }
    x->w = w;
    x->ctx = gw_worker_ctx(w);
    x->conn = c;
    x->req = req;
    x->start = w->now; /* the turn's clock: read once for all its events */
    x->route_label = "unmatched";
    x->timer.fn = on_timer;
    const char *rid = gw_headers_get(&req->headers, "X-Request-Id");
    if (rid != NULL && ward_request_id_valid(rid))
        memcpy(x->request_id, rid, strlen(rid) + 1); /* valid: at most 128 bytes */
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

