/* httpc.h — the blocking HTTP client of libward over libcurl: kept-alive connections,
 * connect and total timeouts, the caller's deadline sent as X-Request-Timeout-Ms,
 * X-Request-Id and traceparent propagation, a response size limit, JSON helpers and
 * metrics (DESIGN.md §3–4). */
#ifndef WARD_HTTPC_H
#define WARD_HTTPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <ward/clock.h>
#include <ward/err.h>
#include <ward/metrics.h>

struct ward_httpc;

struct ward_httpc_settings {
    int64_t connect_timeout;    /* ns to resolve and connect (TLS included); default 1 s */
    int64_t total_timeout;      /* ns for a whole call, connect included; >= 1 ms; default 10 s */
    size_t max_body;            /* response body bytes; more is TOO_LARGE; default 4 MiB */
    const char *user_agent;     /* copied; NULL = "ward/<WARD_VERSION>" (the default) */
    uint32_t max_idle;          /* idle kept-alive connections each pooled handle keeps
                                 * (CURLOPT_MAXCONNECTS); >= 1; default 5 */
    int64_t idle_age;           /* ns an idle connection may wait for reuse before it is
                                 * closed; default 20 s, below ward's server 30 s idle
                                 * timeout so that we, not the server, close it */
    uint32_t pool_size;         /* idle easy handles kept between calls; default 64 */
    const struct ward_clock *clock; /* deadlines and durations; NULL = the real clock */
};

/* One request. Strings are borrowed for the call only. */
struct ward_http_call {
    const char *method;            /* "GET" when NULL; any token ("POST", "HEAD", ...) */
    const char *url;               /* "http://host:port/path?query" (http and https only) */
    const char *const *headers;    /* extra "Name: value" lines, NULL-terminated; may be NULL */
    const void *body;              /* sent as is; may be NULL when body_len is 0 */
    size_t body_len;
    const char *content_type;      /* Content-Type of body; NULL sends none */
    int64_t deadline;              /* monotonic ns on the client's clock; 0 = none */
    const char *request_id;        /* X-Request-Id; NULL sends none */
    const char *traceparent;       /* the caller's; a child of it is sent (same trace, new
                                    * span); NULL or invalid starts a new trace */
    const char *idempotency_key;   /* Idempotency-Key; NULL sends none */
};

/* What came back. ward_httpc_do fills it whatever it returns; release it with
 * ward_http_result_fini. */
struct ward_http_result {
    int status;      /* the HTTP status; 0 when no response line arrived */
    char *body;      /* malloc'ed and NUL-terminated (for convenience: the body may hold
                      * NULs too); "" when empty; NULL when the call failed */
    size_t body_len;
    int64_t elapsed; /* ns on the client's clock, the whole call */
    bool sent;       /* false only when the request certainly never left this process */
    long connects;   /* new connections opened; 0 when a kept-alive one was reused */
    char *headers_;  /* private: response headers as "name\0value\0" pairs */
    size_t headers_len_;
};

/* Fills s with the defaults above. */
void ward_httpc_settings_default(struct ward_httpc_settings *s);

/* Creates a client from s (NULL = the defaults; copied). The first call in the process
 * initialises libcurl (once, thread-safe). INVAL on a bad setting or a NULL out; NOMEM;
 * SYSTEM when libcurl cannot be initialised. On success the caller owns *out
 * (ward_httpc_free); on failure *out is untouched. */
WARD_MUST_CHECK enum ward_err ward_httpc_new(const struct ward_httpc_settings *s,
                                             struct ward_httpc **out);

/* Closes every pooled connection and frees c. NULL is a no-op. No call may be running. */
void ward_httpc_free(struct ward_httpc *c);

/* Performs call and fills *res. Thread-safe: any number of threads may share c. Each call
 * borrows a libcurl handle from c's pool (the one most recently returned, so sequential
 * calls on one thread reuse its kept-alive connection) and gives it back afterwards.
 *
 * Sent with every request: X-Request-Timeout-Ms, the whole milliseconds of the budget
 * (the smaller of deadline - now and the total timeout), which also bounds libcurl's
 * total timeout (its connect timeout is the smaller of the setting and the budget);
 * traceparent (a child of call->traceparent); User-Agent; X-Request-Id and
 * Idempotency-Key when given; and no "Expect: 100-continue". Redirects are not followed.
 *
 * Returns OK whenever a whole response arrived, whatever its status: an HTTP error status
 * is not a transport error, callers decide. Otherwise (res->body NULL):
 *   DEADLINE  less than 1 ms of the deadline left at the start: nothing sent; or the
 *             deadline was the limit and passed during the call (sent unless it passed
 *             while connecting);
 *   CONNECT   name resolution, refusal, connect timeout or TLS handshake failed: not sent;
 *   TIMEOUT   the total timeout fired with deadline left (sent, unless still connecting);
 *   TRANSPORT the connection failed after the request was (or may have been) sent: reset,
 *             closed without an answer, a truncated or malformed response (sent);
 *   TOO_LARGE the body would pass max_body: the transfer is aborted (sent; status and
 *             headers are kept);
 *   INVAL     a NULL argument, a bad URL or scheme, a method that is not a token, a
 *             header with CR or LF or without a colon, a content_type over 255 bytes, an
 *             invalid request_id or idempotency_key (1-255 visible ASCII bytes): not sent;
 *   NOMEM     out of memory (sent may be either).
 * res->sent is true when the server may have seen the request (a retry of a
 * non-idempotent request is then unsafe). */
WARD_MUST_CHECK enum ward_err ward_httpc_do(struct ward_httpc *c, const struct ward_http_call *call,
                                            struct ward_http_result *res);

/* ward_httpc_do with a JSON body and answer: body (borrowed, may be NULL for none) is
 * sent compact as application/json (call->body and content_type are ignored), and
 * "Accept: application/json" is added unless call->headers has an Accept line. When the
 * call returns OK and the response's Content-Type is JSON (application/json or any
 * "+json" type) with a body, *out receives the parsed value (any JSON value; the caller
 * owns it); else *out is NULL — a response that does not parse also leaves *out NULL
 * and still returns OK with res->status: look at the status first. Errors as
 * ward_httpc_do; INVAL also when body cannot be serialised. */
WARD_MUST_CHECK enum ward_err ward_httpc_json(struct ward_httpc *c,
                                              const struct ward_http_call *call, json_t *body,
                                              struct ward_http_result *res, json_t **out);

/* Value of response header name (case-insensitive, without surrounding blanks; the first
 * when repeated), or NULL. Borrowed from res until ward_http_result_fini. */
const char *ward_http_result_header(const struct ward_http_result *res, const char *name);

/* Calls fn(name, value, arg) for each response header in the order received (a repeated
 * header once per line); stops early when fn returns false. For a proxy that forwards
 * them. */
typedef bool (*ward_http_header_fn)(const char *name, const char *value, void *arg);
void ward_http_result_headers(const struct ward_http_result *res, ward_http_header_fn fn,
                              void *arg);

/* Frees what res holds and zeroes it; calling it twice is harmless. NULL is a no-op. */
void ward_http_result_fini(struct ward_http_result *res);

/* Registers in reg and counts every later call into
 *   ward_http_client_requests_total{method,status}  status "2xx".."5xx", or "error"
 *                                                    when ward_httpc_do did not return OK
 *   ward_http_client_request_duration_seconds{method}  histogram of elapsed
 * method is GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS or "other", so that the series
 * stay few. reg must outlive c. INVAL on NULL or a clash with families registered
 * otherwise; STATE when c was already exported; NOMEM. Thread-safe against calls. */
WARD_MUST_CHECK enum ward_err ward_httpc_export(struct ward_httpc *c, struct ward_metrics *reg);

#endif
