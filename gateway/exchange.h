/* exchange.h — a request in flight through the gateway's engine, shared by the policy's
 * driver and answers (proxy.c) and the admission of a request (admit.c). */
#ifndef GW_EXCHANGE_H
#define GW_EXCHANGE_H

#include <ward/log.h>
#include <ward/trace.h>

#include "engine.h"
#include "gateway.h"

/* A request in flight. */
struct gw_exchange {
    struct gw_exchange *next, *prev; /* the worker's list */
    struct gw_worker *w;
    struct gw_ctx *ctx;
    struct gw_conn *conn; /* NULL once the client went */
    struct gw_request *req;
    struct gw_state *st;
    struct gw_live_route *lr;
    const char *route_label;
    int64_t start, deadline;
    char request_id[WARD_REQUEST_ID_MAX + 1];
    struct ward_trace trace;
    struct ward_log_ctx logctx;
    /* buffers kept from one request to the next on the worker's spare list */
    struct gw_buf path;  /* the target, rewritten for the upstream */
    struct gw_buf fwd;   /* the client's headers to forward, as "Name: value\r\n" lines */
    struct gw_buf extra; /* headers of the answer the gateway adds */
    struct gw_buf head;  /* the answer's status line and headers */
    struct ward_http_call call;
    struct ward_rcall *rcall;
    struct gw_upcall up;
    char authority[256];   /* the attempt's instance, "host:port" */
    struct gw_timer timer; /* a wait of the policy, or the attempt's deadline */
    bool on_wire;
    struct ward_http_result res; /* the last attempt's answer */
    int status;
};

/* A new exchange for req on c, with its request ID and trace; NULL without memory. */
struct gw_exchange *gw_x_new(struct gw_worker *w, struct gw_conn *c, struct gw_request *req);
/* Ends x without an answer. */
void gw_x_free(struct gw_exchange *x);
/* Answers x (status; headers: lines to add, may be NULL; body of ctype) and ends it. */
void gw_x_answer(struct gw_exchange *x, int status, const struct gw_buf *headers,
                 const char *ctype, const char *body, size_t len);
/* Answers a problem of type (status 0: the type's; else an about:blank of that status, for
 * injected faults) with a formatted detail, and ends x. */
void gw_x_problem(struct gw_exchange *x, enum ward_problem_type type, int status,
                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* A header for the answer. */
void gw_x_header(struct gw_exchange *x, const char *name, const char *value);
void gw_x_int_header(struct gw_exchange *x, const char *name, int64_t v);
/* Calls the route's upstream through its resilient client; answers x in the end. */
void gw_proxy_call(struct gw_exchange *x);

static inline int64_t gw_ceil_s(int64_t ns)
{
    return ns <= 0 ? 0 : (ns + 1000000000 - 1) / 1000000000;
}

#endif
