/* http_int.h — the server's and the request's insides, shared by server.c, request.c,
 * router.c and health.c only. */
#ifndef WARD_LIB_HTTP_INT_H
#define WARD_LIB_HTTP_INT_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include <ward/http.h>

#include "trace.h"

#define WARD_MAX_PARAMS 8
#define WARD_MAX_SEGMENTS 16
#define WARD_STATUS_SLOTS 600
/* Longest request target kept: libmicrohttpd refuses a request line that does not fit
 * its connection memory (32 KiB by default) long before this. */
#define WARD_TARGET_MAX 65536

struct ward_route {
    char *method;
    char *pattern;
    char *segs[WARD_MAX_SEGMENTS]; /* "{id}" segments are parameters */
    size_t nseg;
    ward_handler_fn fn;
    void *arg;
    struct ward_metric *duration;                             /* histogram child */
    _Atomic(struct ward_metric *) by_status[WARD_STATUS_SLOTS]; /* counter children */
};

struct ward_router {
    struct ward_route **routes;
    size_t n, cap;
};

enum ward_match { WARD_MATCH_OK, WARD_MATCH_NOT_FOUND, WARD_MATCH_BAD_METHOD };

struct ward_param {
    const char *name; /* borrowed from the route */
    char *value;      /* owned */
};

struct ward_check {
    char *name;
    ward_check_fn fn;
    void *arg;
};

struct ward_hook {
    ward_shutdown_fn fn;
    void *arg;
};

struct ward_header {
    char *name, *value;
};

struct ward_server {
    struct ward_server_config cfg;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    struct ward_log *log;
    struct ward_metrics *metrics;
    struct MHD_Daemon *daemon;
    uint16_t port;
    struct ward_router router;
    struct ward_route unmatched; /* metrics label for 404/405/early errors */
    struct ward_route fallback;  /* ward_server_fallback's handler; fn NULL when unset */
    struct ward_check *checks;
    size_t nchecks;
    struct ward_hook *hooks;
    size_t nhooks;
    struct ward_hook *drained; /* run after the drain, before the daemon stops */
    size_t ndrained;
    atomic_bool draining; /* health says 503 */
    atomic_bool closing;  /* responses say Connection: close */
    atomic_long inflight; /* requests begun and not completed */
    int64_t start_wall, start_mono;
    struct ward_metric_family *m_requests, *m_duration;
    struct ward_metric *m_inflight;
    /* deadline watchdog of suspended requests (watchdog.c) */
    pthread_t wd_thread;
    bool wd_running, wd_stop;
    pthread_mutex_t wd_lock;
    pthread_cond_t wd_cond;
    struct ward_req *wd_head; /* suspended requests, unordered */
    int64_t wd_wake;          /* when the watchdog wakes next (INT64_MAX: not before a
                               * signal); a request due later needs no signal */
};

enum ward_req_state {
    WARD_REQ_READING,   /* headers seen, body may be arriving */
    WARD_REQ_RUNNING,   /* handler called */
    WARD_REQ_SUSPENDED, /* the handler will answer later */
    WARD_REQ_ANSWERED,  /* a response is ready to queue */
    WARD_REQ_QUEUED     /* handed to libmicrohttpd */
};

struct ward_req {
    struct ward_server *srv;
    struct MHD_Connection *conn;
    const char *method, *path; /* borrowed from libmicrohttpd */
    char *target;              /* owned: the raw path and query, as sent */
    bool begun;                /* the access handler has seen it (ward__req_begin) */
    struct ward_route *route;
    struct ward_param params[WARD_MAX_PARAMS];
    size_t nparams;
    char *body;
    size_t body_len, body_cap, discarded;
    struct ward_trace trace;
    char request_id[WARD_REQUEST_ID_MAX + 1];
    struct ward_log_ctx logctx;
    int64_t start, deadline;
    pthread_mutex_t lock; /* state and response, for answers from other threads */
    enum ward_req_state state;
    bool suspended; /* the handler suspended: queue only from the resumed call */
    bool counted;   /* metrics already took this request */
    struct MHD_Response *response;
    int status;
    size_t bytes;
    struct ward_header *headers;
    size_t nheaders;
    atomic_int refs;  /* libmicrohttpd's, the suspended handler's, the watchdog's */
    bool handler_ref; /* the handler holds a reference until it answers */
    /* the error renderer runs in the watchdog's stead: its answer is not the handler's */
    bool framework_answer;
    pthread_t framework_thread;
    bool wd_linked;   /* on the watchdog list (under wd_lock) */
    struct ward_req *wd_prev, *wd_next;
};

/* router.c */
enum ward_err ward__router_add(struct ward_router *r, const char *method, const char *pattern,
                               ward_handler_fn fn, void *arg, struct ward_route **out);
enum ward_match ward__router_match(const struct ward_router *r, struct ward_req *req);
/* Writes the Allow header value for the path of req ("GET, HEAD, POST"). */
void ward__router_allow(const struct ward_router *r, const char *path, char *buf, size_t size);
void ward__router_free(struct ward_router *r);
void ward__route_free_params(struct ward_req *req);

/* request.c */
/* A request for the raw target uri (copied), made by libmicrohttpd's URI callback before
 * the headers are parsed; NULL when out of memory. */
struct ward_req *ward__req_new(struct ward_server *srv, struct MHD_Connection *conn,
                               const char *uri);
/* Completes req on the access handler's first call, once the headers are in: method and
 * path (borrowed from libmicrohttpd), clock, deadline, request id and trace. */
void ward__req_begin(struct ward_req *req, const char *method, const char *path);
/* Drops a reference; the last one frees the request. */
void ward__req_unref(struct ward_req *req);
/* Answers a framework-detected error of type: through the server's error renderer when
 * one is set, else as a problem. by_handler is false only for the watchdog's answer. */
void ward__req_error(struct ward_req *req, enum ward_problem_type type, bool by_handler,
                     const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Answers 504 for a suspended request whose deadline passed (the watchdog's call). */
void ward__req_expire(struct ward_req *req);
/* Queues the answer if one is ready; returns false when libmicrohttpd refused it. */
bool ward__req_queue(struct ward_req *req);

/* watchdog.c: answers 504 for suspended requests past their deadline */
enum ward_err ward__watchdog_start(struct ward_server *srv);
void ward__watchdog_stop(struct ward_server *srv);
void ward__watchdog_add(struct ward_server *srv, struct ward_req *req);
void ward__watchdog_remove(struct ward_server *srv, struct ward_req *req);
void ward__watchdog_remove_locked(struct ward_server *srv, struct ward_req *req);

/* health.c */
enum ward_err ward__health_routes(struct ward_server *srv);

#endif
