/* engine.h — the gateway's own event-driven HTTP engine: one thread per core, each with
 * its epoll set, its timers, its client connections and its pool of kept-alive upstream
 * connections. A request is read, routed, proxied and answered on the thread that
 * accepted its connection, and never waits on another thread. HTTP/1.1 messages are
 * parsed by Node's http-parser (Debian's libhttp-parser); everything else is sockets.
 *
 * Why not libmicrohttpd and libcurl, as the rest of libward: measured in
 * docs/BENCHMARKS.md, those two cost the gateway about 35 µs a request of its own on one
 * core, HAProxy 14 µs; the libraries' own threads, polls and copies were most of it. */
#ifndef GW_ENGINE_H
#define GW_ENGINE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <http_parser.h>

#include <ward/err.h>
#include <ward/httpc.h>
#include <ward/problem.h>

struct gw_ctx;
struct gw_worker;

/* A file descriptor in a worker's epoll set; on() runs on the worker's thread. */
struct gw_io {
    int fd;
    void (*on)(struct gw_io *io, uint32_t events); /* NULL once buried */
    struct gw_io *buried_next;
    void *mem; /* what to free with it */
};

/* A one-shot timer in a worker's heap; fn runs on the worker's thread once at passes. */
struct gw_timer {
    int64_t at;  /* monotonic ns */
    size_t slot; /* 1 + the heap index; 0 when not armed */
    void (*fn)(struct gw_timer *t);
};

/* A heap of timers (timer.c). */
struct gw_timers {
    struct gw_timer **heap;
    size_t n, cap;
};

/* Arms t at `at` (re-arms it when armed); false, and t disarmed, without memory for a
 * bigger heap. */
bool gw_timers_set(struct gw_timers *ts, struct gw_timer *t, int64_t at);
/* Disarms t (a no-op when it is not armed). */
void gw_timers_cancel(struct gw_timers *ts, struct gw_timer *t);
/* Runs, earliest first, every timer due at now (each disarmed before its fn). */
void gw_timers_run(struct gw_timers *ts, int64_t now);
/* The earliest deadline armed; INT64_MAX when none. */
int64_t gw_timers_next(const struct gw_timers *ts);

/* A growable byte buffer. */
struct gw_buf {
    char *data;
    size_t len, cap;
};

bool gw_buf_reserve(struct gw_buf *b, size_t more);
bool gw_buf_add(struct gw_buf *b, const void *p, size_t n);
bool gw_buf_str(struct gw_buf *b, const char *s);
/* Appends v in decimal. */
bool gw_buf_int(struct gw_buf *b, int64_t v);
void gw_buf_free(struct gw_buf *b);

/* Headers as "name\0value\0" pairs (the layout of ward_http_result's headers), built
 * from http-parser's callbacks, which may cut a name or a value anywhere, and indexed
 * when the block ends so that a lookup compares lengths before letters. */
#define GW_HEADERS_INDEXED 48
struct gw_headers {
    struct gw_buf buf;
    int last; /* 0 nothing yet, 1 in a name, 2 in a value */
    size_t count;
    struct {
        uint32_t name, value; /* offsets in buf */
        uint32_t nlen;
    } idx[GW_HEADERS_INDEXED];
    size_t nidx;   /* entries of idx in use */
    bool indexed;  /* idx holds every header (else lookups scan buf) */
};

bool gw_headers_field(struct gw_headers *h, const char *at, size_t n);
bool gw_headers_value(struct gw_headers *h, const char *at, size_t n);
/* Ends the last value (call at the end of the header block). */
bool gw_headers_end(struct gw_headers *h);
/* The first value of name (case-insensitive), or NULL. */
const char *gw_headers_get(const struct gw_headers *h, const char *name);
/* Calls fn for each pair in order (with the name's length); stops when fn returns false. */
void gw_headers_each(const struct gw_headers *h,
                     bool (*fn)(const char *name, size_t nlen, const char *value, void *arg),
                     void *arg);
void gw_headers_reset(struct gw_headers *h);

/* ---- workers (worker.c) ------------------------------------------------------------- */

struct gw_engine;
struct gw_conn;
struct gw_exchange;

/* One thread of the engine and everything it owns. */
struct gw_worker {
    struct gw_engine *engine;
    int epfd;
    struct gw_io wake;   /* an eventfd: drain and stop */
    struct gw_io listen; /* the engine's listener, in this epoll set too (EPOLLEXCLUSIVE) */
    bool listening;
    int64_t now;         /* monotonic ns, read once a turn */
    struct gw_timers timers;
    struct gw_conn *conns;          /* client connections (conn.c's list) */
    size_t nconns;
    struct gw_exchange *exchanges;  /* requests in flight (proxy.c's list) */
    struct gw_exchange *spare;      /* ended ones kept with their buffers, for the next */
    size_t nspare;
    struct gw_pool *pool;           /* upstream connections (upstream.c) */
    struct gw_io *buried;           /* closed this turn, freed after it */
    _Atomic int command; /* 0 run, 1 drain, 2 stop */
    bool drained;        /* saw the drain: closed idle connections, stopped listening */
    atomic_bool done;    /* the loop ended */
    pthread_t thread;
    bool started;
};

/* The engine's settings (the server flags of every ward daemon). */
struct gw_engine_settings {
    const char *listen;       /* "HOST:PORT" */
    int threads;              /* workers; 0: the CPUs this process may run on */
    int64_t max_connections;  /* client connections held at once, all workers together */
    int64_t conn_timeout;     /* ns a client connection may idle or stall mid-request */
    int64_t request_timeout;  /* ns: the longest deadline a request may have */
    int64_t body_limit;       /* request body bytes (413 beyond) */
    int64_t response_limit;   /* upstream response body bytes (502 beyond) */
};

/* Binds the listener (ADDRESS when listen cannot be parsed, SYSTEM when it cannot be
 * bound) and prepares the workers; nothing runs before gw_engine_start. */
WARD_MUST_CHECK enum ward_err gw_engine_new(struct gw_ctx *ctx,
                                            const struct gw_engine_settings *s,
                                            struct gw_engine **out);
uint16_t gw_engine_port(const struct gw_engine *e);
WARD_MUST_CHECK enum ward_err gw_engine_start(struct gw_engine *e);
/* Begins the graceful end: the workers stop accepting, close idle connections, answer
 * every request in flight and close each connection after its answer. */
void gw_engine_drain(struct gw_engine *e);
/* True once every worker has nothing left. */
bool gw_engine_drained(const struct gw_engine *e);
/* Stops the workers (after a drain, or at once) and frees. NULL is a no-op. */
void gw_engine_free(struct gw_engine *e);

/* For the connection and upstream code: the worker's context, settings, epoll set and
 * timers. */
struct gw_ctx *gw_worker_ctx(struct gw_worker *w);
const struct gw_engine_settings *gw_worker_settings(struct gw_worker *w);
bool gw_worker_watch(struct gw_worker *w, struct gw_io *io, uint32_t events);
bool gw_worker_rewatch(struct gw_worker *w, struct gw_io *io, uint32_t events);
void gw_worker_unwatch(struct gw_worker *w, struct gw_io *io);
void gw_timer_set(struct gw_worker *w, struct gw_timer *t, int64_t at);
void gw_timer_cancel(struct gw_worker *w, struct gw_timer *t);
/* Frees mem (the object io is in) after the events of this turn: a later event of the
 * same epoll batch may still name it. */
void gw_worker_bury(struct gw_worker *w, struct gw_io *io, void *mem);
/* A client connection closed (max_connections counts all workers together). */
void gw_worker_conn_gone(struct gw_worker *w);

/* ---- client connections (conn.c) ------------------------------------------------------ */

struct gw_conn;

/* One request read from a client, valid until its answer is sent. */
struct gw_request {
    const char *method;
    const char *target; /* as sent: path and query, undecoded */
    struct gw_headers headers;
    const char *body;
    size_t body_len;
    bool keep_alive;
    bool http10;     /* an HTTP/1.0 client: keep-alive must be said */
    char remote[64]; /* the client's address, no port */
};

/* Called by the connection when a whole request is in (proxy.c). The proxy answers with
 * gw_conn_respond, now or later on the same worker. */
void gw_proxy_handle(struct gw_worker *w, struct gw_conn *c, struct gw_request *req);
/* Answers a request the connection refuses (bad syntax 400, body over the limit 413)
 * with its problem, logged and counted like any other. */
void gw_proxy_reject(struct gw_worker *w, struct gw_conn *c, struct gw_request *req,
                     enum ward_problem_type type, const char *detail);
/* The client of x went away before the answer: the answer will have nowhere to go. */
void gw_proxy_client_gone(struct gw_exchange *x);
/* The worker stops: ends every exchange still in flight (after its clients were closed). */
void gw_proxy_stop(struct gw_worker *w);

/* Accepts fd as a client connection of w. */
void gw_conn_accept(struct gw_worker *w, int fd);
/* Ties the proxy's exchange to c (for gw_proxy_client_gone). */
void gw_conn_set_exchange(struct gw_conn *c, struct gw_exchange *x);
/* Answers the request in flight: head (the status line and headers, each "\r\n"-ended,
 * without the blank line) and body; the connection adds Content-Length, Connection and
 * the blank line, and sends. */
void gw_conn_respond(struct gw_conn *c, int status, const struct gw_buf *head,
                     const char *body, size_t body_len);
/* The next connection of the worker's list (NULL at the end). */
struct gw_conn *gw_conn_next(const struct gw_conn *c);
/* The drain: closes c now when idle, else after its answer. */
void gw_conn_drain(struct gw_conn *c);
void gw_conn_close(struct gw_conn *c);

/* ---- upstream connections (upstream.c) ------------------------------------------------ */

#define GW_UPSTREAM_IDLE_NS (4 * (int64_t)1000000000)

struct gw_upcall;
typedef void (*gw_upcall_fn)(struct gw_upcall *u, enum ward_err err, struct ward_http_result *res);

/* One attempt on the wire; embedded in the exchange that makes it. */
struct gw_upcall {
    gw_upcall_fn done;
    struct gw_upconn *conn; /* while on the wire */
    struct gw_buf req;      /* the request head, built by the caller */
    /* the answer's body and header block: the result handed to done points into them
     * (swapped with the connection's, so that neither is allocated anew per answer) */
    struct gw_buf answer_body, answer_headers;
    const char *body;       /* the request's, borrowed */
    size_t body_len;
    bool head_method;
    bool resend_ok;     /* safe to send twice (idempotent method, or an Idempotency-Key) */
    bool retried_stale; /* a kept-alive connection failed before any answer: sent anew */
    struct gw_worker *w;
    struct gw_timer later; /* an error found at once, delivered on the next turn */
    enum ward_err later_err;
    bool later_sent;
    bool starting; /* within gw_upcall_start */
};

/* Sends u's request to authority ("host:port") on an idle kept-alive connection of w's
 * pool (one idle for less than GW_UPSTREAM_IDLE_NS; older ones are closed, since servers
 * close theirs after a few seconds), or a new one. done runs once, later, on w's thread (never from within this call)
 * unless gw_upcall_abort comes first. */
void gw_upcall_start(struct gw_worker *w, const char *authority, struct gw_upcall *u);
/* Gives up on u (its deadline): the connection is closed, done will not run. */
void gw_upcall_abort(struct gw_upcall *u);
/* Closes the pooled connections of w (drain, stop). */
void gw_upstream_close_idle(struct gw_worker *w);
/* The worker's pool, made and freed with it. */
struct gw_pool *gw_pool_new(struct gw_worker *w);
void gw_pool_free(struct gw_pool *p);

#endif
