/* http.h — the HTTP server of libward over libmicrohttpd: routing (and a fallback for what
 * no route takes), JSON bodies, request IDs, trace context, deadlines, access log, metrics,
 * /health, /ready, /metrics, handlers that answer later, and graceful shutdown
 * (DESIGN.md §3–5). */
#ifndef WARD_HTTP_H
#define WARD_HTTP_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <ward/err.h>
#include <ward/fields.h>
#include <ward/log.h>
#include <ward/metrics.h>
#include <ward/problem.h>

struct ward_server;
struct ward_req;

/* Renders an error the framework itself detects (404 no route, 405 with Allow already
 * set, 413, 415, 400 bad deadline header, 504, 500 no answer) instead of the default
 * problem+json: it answers req with a ward_req_respond* call (from the calling thread,
 * before returning). status is the code the framework chose, detail its explanation.
 * If it returns without answering, the framework answers status with detail as text. */
typedef void (*ward_error_fn)(struct ward_req *req, int status, const char *detail, void *arg);

struct ward_server_config {
    const char *service;     /* name in logs and health bodies */
    const char *version;     /* shown by /health */
    const char *listen;      /* "HOST:PORT"; port 0 picks a free one */
    int64_t threads;         /* event-loop threads (epoll); default 1 */
    int64_t body_limit;      /* bytes; larger bodies get 413; default 1 MiB */
    int64_t max_connections; /* beyond it new connections are refused; default 10000 */
    int64_t conn_timeout;    /* ns a connection may sit idle or stall mid-request; default 30 s */
    int64_t request_timeout; /* ns: the server's own cap on a request's deadline; default 30 s */
    int64_t shutdown_delay;  /* ns still serving after a signal; default 1 s */
    int64_t drain_timeout;   /* ns to let in-flight requests finish; default 30 s */
    bool access_log;         /* one line per request; default true */
    bool any_content_type;   /* accept bodies of any media type (no 415); default false */
    ward_error_fn on_error;  /* renders the framework's own errors; NULL: problem+json */
    void *on_error_arg;
};

/* Fills cfg with the defaults above (listen "127.0.0.1:0"). */
void ward_server_config_defaults(struct ward_server_config *cfg);

/* A handler answers req once, now or later (see ward_req_suspend), with one of the
 * ward_req_respond* calls. arg is what was given to ward_server_route. */
typedef void (*ward_handler_fn)(struct ward_req *req, void *arg);

enum ward_health { WARD_HEALTH_PASS, WARD_HEALTH_WARN, WARD_HEALTH_FAIL };

/* A readiness check: returns its status and may write a short reason into output. */
typedef enum ward_health (*ward_check_fn)(void *arg, char *output, size_t size);

/* Called once when a graceful shutdown begins (deregistration plugs in here). */
typedef void (*ward_shutdown_fn)(void *arg);

/* A server for cfg (copied; strings must outlive the server) logging to log and counting
 * into metrics (both borrowed, may be NULL). Nothing listens before ward_server_start.
 * Errors: NOMEM, ADDRESS (listen unparsable), INVAL. */
WARD_MUST_CHECK enum ward_err ward_server_new(const struct ward_server_config *cfg,
                                              struct ward_log *log, struct ward_metrics *metrics,
                                              struct ward_server **out);

/* Routes method ("GET", "POST", ...) on pattern ("/invoices/{id}/pay") to fn. A pattern
 * is matched segment by segment; {name} matches one non-empty segment, read back with
 * ward_req_param. Register before ward_server_start. GET routes also answer HEAD. */
WARD_MUST_CHECK enum ward_err ward_server_route(struct ward_server *srv, const char *method,
                                                const char *pattern, ward_handler_fn fn, void *arg);

/* Answers every request that no route matches — any method, any path — with fn(req, arg)
 * instead of the framework's 404 / 405 (the gateway forwards them). The request is a full
 * ward_req (headers, body read and limited as for a route, deadline, request id, access
 * log, suspend and answer from another thread). Metrics label it route="fallback". Set
 * before ward_server_start; NULL fn restores 404/405. INVAL on NULL srv.
 * A method no route has on a routed path also goes to fn (no 405): the fallback owns
 * every method the server does not route itself (GET /health stays the health route,
 * POST /health reaches fn). Bodies to fn may be of any media type
 * (no 415: they are forwarded, not read); the body limit (413) and the deadline header
 * (400) apply as for a route. INVAL too once the server is started. */
WARD_MUST_CHECK enum ward_err ward_server_fallback(struct ward_server *srv, ward_handler_fn fn,
                                                   void *arg);

/* Adds a readiness check named name, run by each GET /ready. */
WARD_MUST_CHECK enum ward_err ward_server_add_check(struct ward_server *srv, const char *name,
                                                    ward_check_fn fn, void *arg);

/* Adds a hook run when a graceful shutdown begins, before the shutdown delay. */
WARD_MUST_CHECK enum ward_err ward_server_on_shutdown(struct ward_server *srv, ward_shutdown_fn fn,
                                                      void *arg);

/* Adds a hook run after the drain (in-flight requests answered, or the drain timeout
 * passed) and before the server stops: the place to stop what may still answer requests
 * from other threads (an event loop), while its answers can still go out. */
WARD_MUST_CHECK enum ward_err ward_server_on_drained(struct ward_server *srv,
                                                     ward_shutdown_fn fn, void *arg);

/* Binds and starts serving. SYSTEM when the address cannot be bound (logged). */
WARD_MUST_CHECK enum ward_err ward_server_start(struct ward_server *srv);

/* The bound port (after start). */
uint16_t ward_server_port(const struct ward_server *srv);

/* Blocks SIGTERM and SIGINT in the calling thread; call it first in main, before any
 * thread exists, so that every thread inherits the mask and ward_server_run alone
 * receives them. */
void ward_signals_block(void);

/* Serves until SIGTERM or SIGINT, then shuts down gracefully (DESIGN.md §5): health
 * answers 503 and the shutdown hooks run at once; requests are still served for the
 * shutdown delay; then the listener closes, in-flight requests (suspended ones too) get
 * up to the drain timeout, and the server stops. A second signal exits the process at
 * once with status 1. Returns 0 after a clean drain, 1 when the drain timed out. */
int ward_server_run(struct ward_server *srv);

/* The same shutdown without signals (tests, embedding): returns as ward_server_run. */
int ward_server_shutdown(struct ward_server *srv);

/* True once a shutdown has begun. */
bool ward_server_draining(const struct ward_server *srv);

/* Stops at once if still running and frees. NULL is a no-op. */
void ward_server_free(struct ward_server *srv);

/* --- the request, valid from the handler's call until its response is sent --- */

const char *ward_req_method(const struct ward_req *req);
/* The path, percent-decoded, without the query. */
const char *ward_req_path(const struct ward_req *req);
/* The request target as the client sent it: the path and the query string, undecoded
 * ("/a%20b/c?x=1&y=%2F"), for forwarding unchanged. Never NULL. */
const char *ward_req_target(const struct ward_req *req);
/* Value of path parameter {name}, or NULL. */
const char *ward_req_param(const struct ward_req *req, const char *name);
/* Value of query argument name (decoded), or NULL. */
const char *ward_req_query(const struct ward_req *req, const char *name);
/* The n-th (from 0, in request order) value of query argument name, decoded, into
 * *value: true when there is one. *value is NULL for a key given without '='
 * ("?pretty"), "" for "?pretty=". Repeated keys ("tag=a&tag=b") are read this way. */
bool ward_req_query_nth(const struct ward_req *req, const char *name, size_t n,
                        const char **value);
/* Value of request header name (case-insensitive), or NULL. */
const char *ward_req_header(const struct ward_req *req, const char *name);

/* Calls fn(name, value, arg) for each request header, in the order received (names as
 * sent); stops early when fn returns false. A header sent twice is seen twice. name and
 * value are borrowed for the request's lifetime. */
typedef bool (*ward_header_fn)(const char *name, const char *value, void *arg);
void ward_req_headers(const struct ward_req *req, ward_header_fn fn, void *arg);

/* The client's IP address as text ("127.0.0.1", "::1"; no port) into buf (NUL-terminated,
 * truncated to size); "" when unknown. Nothing is written when size is 0. */
void ward_req_client_addr(const struct ward_req *req, char *buf, size_t size);
/* The raw body (not NUL-terminated; may be NULL when empty). */
const char *ward_req_body(const struct ward_req *req, size_t *len);

const char *ward_req_id(const struct ward_req *req);
/* The traceparent to send downstream: this request's trace, this hop's span. */
const char *ward_req_traceparent(const struct ward_req *req);
const struct ward_log_ctx *ward_req_log_ctx(const struct ward_req *req);
struct ward_log *ward_req_log(const struct ward_req *req);
/* Monotonic deadline (ns, ward_clock_now) adopted from X-Request-Timeout-Ms and the
 * server's request timeout. */
int64_t ward_req_deadline(const struct ward_req *req);

/* Parses the body as a JSON value into *root (caller owns it). On failure it has
 * already answered the problem (400 empty or malformed, with line and column) and
 * returns false. Duplicate member names are malformed. */
bool ward_req_json(struct ward_req *req, json_t **root);

/* ward_req_json, then ward_fields_parse: on failure answers the problem and returns
 * false; on success *root holds the document the borrowed strings point into. */
bool ward_req_fields(struct ward_req *req, const struct ward_field *fields, size_t n,
                     json_t **root);

/* Adds a response header (copied). NOMEM, or INVAL after the response was sent. */
WARD_MUST_CHECK enum ward_err ward_req_set_header(struct ward_req *req, const char *name,
                                                  const char *value);

/* Answers status with body (copied) of content_type. From the handler or, after
 * ward_req_suspend, from any thread; a second answer is ignored. */
void ward_req_respond(struct ward_req *req, int status, const char *content_type,
                      const char *body, size_t len);
/* Answers status with body serialized compactly; takes ownership of body. */
void ward_req_respond_json(struct ward_req *req, int status, json_t *body);
/* Answers the problem (status from its type), with instance and request_id filled;
 * takes ownership of p. A NULL p (allocation failed) answers a plain 500. */
void ward_req_respond_problem(struct ward_req *req, struct ward_problem *p);
/* Shorthand: a problem of type with a formatted detail. */
void ward_req_fail(struct ward_req *req, enum ward_problem_type type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Declares that the handler returns without answering: the connection is suspended and
 * the answer comes later through a ward_req_respond* call from any thread. Call it before
 * handing req to another thread. If the deadline passes first, the server answers 504
 * and the late answer is dropped; the handler must answer all the same, because its
 * answer releases req. Graceful shutdown waits for it within the drain timeout. */
void ward_req_suspend(struct ward_req *req);

#endif
