/* request.c — one HTTP request: its accessors, its body as JSON, and its single answer,
 * given by the handler or later from another thread. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <ward/clock.h>

#include "http_int.h"
#include "random.h"

struct ward_req *ward__req_new(struct ward_server *srv, struct MHD_Connection *conn,
                               const char *uri)
{
    struct ward_req *req = calloc(1, sizeof *req);
    if (req == NULL)
        return NULL;
    req->target = strndup(uri != NULL ? uri : "", WARD_TARGET_MAX);
    if (req->target == NULL || pthread_mutex_init(&req->lock, NULL) != 0) {
        free(req->target);
        free(req);
        return NULL;
    }
    req->srv = srv;
    req->conn = conn;
    req->state = WARD_REQ_READING;
    atomic_init(&req->refs, 1);
    return req;
}

void ward__req_begin(struct ward_req *req, const char *method, const char *path)
{
    struct MHD_Connection *conn = req->conn;
    req->begun = true;
    req->method = method;
    req->path = path;
    req->start = ward_clock_now(NULL);
    req->deadline = req->start + req->srv->cfg.request_timeout;

    const char *rid = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");
    if (rid != NULL && ward__request_id_valid(rid))
        memcpy(req->request_id, rid, strlen(rid) + 1);
    else
        ward__random_hex(req->request_id, 16);
    ward__trace_continue(&req->trace,
                         MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "traceparent"));
    req->logctx.request_id = req->request_id;
    req->logctx.trace_id = req->trace.trace_id;
}

static void req_free(struct ward_req *req)
{
    ward__route_free_params(req);
    if (req->response != NULL)
        MHD_destroy_response(req->response);
    for (size_t i = 0; i < req->nheaders; i++) {
        free(req->headers[i].name);
        free(req->headers[i].value);
    }
    free(req->headers);
    free(req->body);
    free(req->target);
    pthread_mutex_destroy(&req->lock);
    free(req);
}

void ward__req_unref(struct ward_req *req)
{
    if (req != NULL && atomic_fetch_sub(&req->refs, 1) == 1)
        req_free(req);
}

const char *ward_req_method(const struct ward_req *req) { return req->method; }
const char *ward_req_path(const struct ward_req *req) { return req->path; }
const char *ward_req_target(const struct ward_req *req) { return req->target; }
const char *ward_req_id(const struct ward_req *req) { return req->request_id; }
const char *ward_req_traceparent(const struct ward_req *req) { return req->trace.traceparent; }
const struct ward_log_ctx *ward_req_log_ctx(const struct ward_req *req) { return &req->logctx; }
struct ward_log *ward_req_log(const struct ward_req *req) { return req->srv->log; }
int64_t ward_req_deadline(const struct ward_req *req) { return req->deadline; }

const char *ward_req_param(const struct ward_req *req, const char *name)
{
    for (size_t i = 0; i < req->nparams; i++) {
        /* route segments are "{name}" */
        const char *seg = req->params[i].name;
        size_t n = strlen(name);
        if (strncmp(seg + 1, name, n) == 0 && seg[n + 1] == '}' && seg[n + 2] == '\0')
            return req->params[i].value;
    }
    return NULL;
}

const char *ward_req_query(const struct ward_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

struct query_walk {
    const char *name;
    size_t want, seen;
    const char *value;
    bool found;
};

static enum MHD_Result query_visit(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    struct query_walk *w = cls;
    (void)kind;
    if (key == NULL || strcmp(key, w->name) != 0)
        return MHD_YES;
    if (w->seen++ < w->want)
        return MHD_YES;
    w->value = value;
    w->found = true;
    return MHD_NO;
}

bool ward_req_query_nth(const struct ward_req *req, const char *name, size_t n,
                        const char **value)
{
    struct query_walk w = {.name = name, .want = n};
    MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, query_visit, &w);
    *value = w.value;
    return w.found;
}

const char *ward_req_header(const struct ward_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

struct header_walk {
    ward_header_fn fn;
    void *arg;
};

static enum MHD_Result header_visit(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    struct header_walk *w = cls;
    (void)kind;
    if (key == NULL)
        return MHD_YES;
    return w->fn(key, value != NULL ? value : "", w->arg) ? MHD_YES : MHD_NO;
}

void ward_req_headers(const struct ward_req *req, ward_header_fn fn, void *arg)
{
    struct header_walk w = {.fn = fn, .arg = arg};
    /* libmicrohttpd keeps the headers in a list in the order received, names as sent */
    MHD_get_connection_values(req->conn, MHD_HEADER_KIND, header_visit, &w);
}

void ward_req_client_addr(const struct ward_req *req, char *buf, size_t size)
{
    char text[INET6_ADDRSTRLEN] = "";
    if (size == 0)
        return;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci != NULL && ci->client_addr != NULL) {
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, text,
                      sizeof text);
        else if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, text,
                      sizeof text);
    }
    snprintf(buf, size, "%s", text);
}

const char *ward_req_body(const struct ward_req *req, size_t *len)
{
    if (len != NULL)
        *len = req->body_len;
    return req->body;
}

bool ward_req_json(struct ward_req *req, json_t **root)
{
    json_error_t jerr;
    *root = NULL;
    if (req->body_len == 0) {
        ward_req_fail(req, WARD_PROBLEM_MALFORMED_JSON, "the request body is empty; send a JSON object");
        return false;
    }
    json_t *doc = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL) {
        ward_req_fail(req, WARD_PROBLEM_MALFORMED_JSON, "%s (line %d, column %d)", jerr.text,
                      jerr.line, jerr.column);
        return false;
    }
    *root = doc;
    return true;
}

bool ward_req_fields(struct ward_req *req, const struct ward_field *fields, size_t n,
                     json_t **root)
{
    struct ward_problem *problem = NULL;
    if (!ward_req_json(req, root))
        return false;
    enum ward_err err = ward_fields_parse(*root, fields, n, &problem);
    if (err == WARD_ERR_OK)
        return true;
    json_decref(*root);
    *root = NULL;
    if (problem == NULL)
        problem = ward_problem_new(WARD_PROBLEM_INTERNAL, "%s", ward_strerror(err));
    ward_req_respond_problem(req, problem);
    return false;
}

enum ward_err ward_req_set_header(struct ward_req *req, const char *name, const char *value)
{
    enum ward_err err = WARD_ERR_OK;
    pthread_mutex_lock(&req->lock);
    if (req->state >= WARD_REQ_ANSWERED) {
        err = WARD_ERR_INVAL;
        goto out;
    }
    struct ward_header *grown = realloc(req->headers, (req->nheaders + 1) * sizeof *grown);
    if (grown == NULL) {
        err = WARD_ERR_NOMEM;
        goto out;
    }
    req->headers = grown;
    struct ward_header *h = &req->headers[req->nheaders];
    h->name = strdup(name);
    h->value = strdup(value);
    if (h->name == NULL || h->value == NULL) {
        free(h->name);
        free(h->value);
        err = WARD_ERR_NOMEM;
        goto out;
    }
    req->nheaders++;
out:
    pthread_mutex_unlock(&req->lock);
    return err;
}

/* Builds the libmicrohttpd response from body (taken over when must_free) and records
 * it; resumes a suspended connection. Called once per request; later calls are dropped. */
/* After the answer of a suspended handler, its reference goes: the request may be freed
 * as soon as this returns. */
static void release_handler(struct ward_req *req, bool by_handler)
{
    if (!by_handler)
        return;
    pthread_mutex_lock(&req->lock);
    bool held = req->handler_ref;
    req->handler_ref = false;
    pthread_mutex_unlock(&req->lock);
    if (held)
        ward__req_unref(req);
}

static void answer(struct ward_req *req, int status, const char *content_type, char *body,
                   size_t len, bool must_free, bool by_handler)
{
    struct MHD_Response *resp = NULL;
    pthread_mutex_lock(&req->lock);
    if (req->framework_answer && pthread_equal(req->framework_thread, pthread_self()))
        by_handler = false;
    if (req->state >= WARD_REQ_ANSWERED)
        goto drop;
    resp = MHD_create_response_from_buffer(len, body,
                                           must_free ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_MUST_COPY);
    if (resp == NULL)
        goto drop;
    must_free = false;
    bool ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type) == MHD_YES &&
              MHD_add_response_header(resp, "X-Request-Id", req->request_id) == MHD_YES;
    for (size_t i = 0; ok && i < req->nheaders; i++)
        ok = MHD_add_response_header(resp, req->headers[i].name, req->headers[i].value) == MHD_YES;
    if (ok && atomic_load(&req->srv->closing))
        ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close") == MHD_YES;
    if (!ok) {
        MHD_destroy_response(resp);
        resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
        status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        len = 0;
        if (resp == NULL)
            goto drop;
    }
    bool resume = req->state == WARD_REQ_SUSPENDED;
    req->response = resp;
    req->status = status;
    req->bytes = len;
    req->state = WARD_REQ_ANSWERED;
    pthread_mutex_unlock(&req->lock);
    if (resume) {
        ward__watchdog_remove(req->srv, req);
        MHD_resume_connection(req->conn);
    }
    release_handler(req, by_handler);
    return;
drop:
    pthread_mutex_unlock(&req->lock);
    if (must_free)
        free(body);
    release_handler(req, by_handler);
}

bool ward__req_queue(struct ward_req *req)
{
    pthread_mutex_lock(&req->lock);
    bool ok = true;
    if (req->state == WARD_REQ_ANSWERED) {
        ok = MHD_queue_response(req->conn, (unsigned)req->status, req->response) == MHD_YES;
        req->state = WARD_REQ_QUEUED;
    }
    pthread_mutex_unlock(&req->lock);
    return ok;
}

void ward_req_respond(struct ward_req *req, int status, const char *content_type,
                      const char *body, size_t len)
{
    answer(req, status, content_type, (char *)(uintptr_t)body, len, false, true);
}

void ward_req_respond_json(struct ward_req *req, int status, json_t *body)
{
    /* most answers fit on the stack: json_dumpb there saves the growing heap buffer
     * json_dumps would build, and libmicrohttpd copies the bytes once */
    char stack[2048];
    size_t len = body != NULL ? json_dumpb(body, stack, sizeof stack, JSON_COMPACT) : 0;
    if (len > 0 && len <= sizeof stack) {
        json_decref(body);
        answer(req, status, "application/json", stack, len, false, true);
        return;
    }
    char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (text == NULL) {
        answer(req, 500, "text/plain", (char *)(uintptr_t) "out of memory\n", 14, false, true);
        return;
    }
    answer(req, status, "application/json", text, strlen(text), true, true);
}

static void respond_problem(struct ward_req *req, struct ward_problem *p, bool by_handler)
{
    json_t *doc = p != NULL ? ward_problem_to_json(p, req->path, req->request_id) : NULL;
    int status = p != NULL ? ward_problem_status(p) : 500;
    ward_problem_free(p);
    char *text = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (text == NULL) {
        answer(req, 500, "text/plain", (char *)(uintptr_t) "out of memory\n", 14, false, by_handler);
        return;
    }
    answer(req, status, "application/problem+json", text, strlen(text), true, by_handler);
}

void ward_req_respond_problem(struct ward_req *req, struct ward_problem *p)
{
    respond_problem(req, p, true);
}

void ward__req_error(struct ward_req *req, enum ward_problem_type type, bool by_handler,
                     const char *fmt, ...)
{
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    struct ward_problem *p = ward_problem_new(type, "%s", detail);
    ward_error_fn render = req->srv->cfg.on_error;
    if (render == NULL || p == NULL) {
        respond_problem(req, p, by_handler);
        return;
    }
    int status = ward_problem_status(p);
    ward_problem_free(p);
    /* the renderer answers through ward_req_respond*, which must not take the handler's
     * reference when the watchdog answers in the handler's stead */
    pthread_mutex_lock(&req->lock);
    req->framework_answer = !by_handler;
    req->framework_thread = pthread_self();
    pthread_mutex_unlock(&req->lock);
    render(req, status, detail, req->srv->cfg.on_error_arg);
    pthread_mutex_lock(&req->lock);
    req->framework_answer = false;
    bool answered = req->state >= WARD_REQ_ANSWERED;
    pthread_mutex_unlock(&req->lock);
    if (!answered)
        answer(req, status, "text/plain; charset=utf-8", detail, strlen(detail), false, by_handler);
}

void ward__req_expire(struct ward_req *req)
{
    ward__req_error(req, WARD_PROBLEM_DEADLINE_EXCEEDED, false,
                    "the request's deadline passed before it was answered");
}

void ward_req_fail(struct ward_req *req, enum ward_problem_type type, const char *fmt, ...)
{
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    ward_req_respond_problem(req, ward_problem_new(type, "%s", detail));
}

void ward_req_suspend(struct ward_req *req)
{
    pthread_mutex_lock(&req->lock);
    bool watch = false;
    if (req->state == WARD_REQ_RUNNING) {
        req->state = WARD_REQ_SUSPENDED;
        req->suspended = true;
        req->handler_ref = true;
        atomic_fetch_add(&req->refs, 1);
        MHD_suspend_connection(req->conn);
        watch = true;
    }
    pthread_mutex_unlock(&req->lock);
    if (watch)
        ward__watchdog_add(req->srv, req);
}
