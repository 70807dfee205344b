/* server.c — the libmicrohttpd daemon behind ward_server: request lifecycle (early
 * checks, body, dispatch, completion with access log and metrics) and graceful shutdown. */
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <ward/clock.h>

#include "http_int.h"

void ward_server_config_defaults(struct ward_server_config *cfg)
{
    *cfg = (struct ward_server_config){
        .service = "ward",
        .version = WARD_VERSION,
        .listen = "127.0.0.1:0",
        .threads = 1,
        .body_limit = 1 << 20,
        .max_connections = 10000,
        .conn_timeout = 30 * WARD_NS_PER_S,
        .request_timeout = 30 * WARD_NS_PER_S,
        .shutdown_delay = 1 * WARD_NS_PER_S,
        .drain_timeout = 30 * WARD_NS_PER_S,
        .access_log = true,
    };
}

/* "HOST:PORT", "[V6]:PORT" or ":PORT" into a socket address. */
static enum ward_err parse_listen(const char *listen, struct sockaddr_storage *addr, socklen_t *len)
{
    char host[256];
    const char *port;
    if (listen[0] == '[') {
        const char *end = strchr(listen, ']');
        if (end == NULL || end[1] != ':' || (size_t)(end - listen - 1) >= sizeof host)
            return WARD_ERR_ADDRESS;
        memcpy(host, listen + 1, (size_t)(end - listen - 1));
        host[end - listen - 1] = '\0';
        port = end + 2;
    } else {
        const char *colon = strrchr(listen, ':');
        if (colon == NULL || (size_t)(colon - listen) >= sizeof host)
            return WARD_ERR_ADDRESS;
        memcpy(host, listen, (size_t)(colon - listen));
        host[colon - listen] = '\0';
        port = colon + 1;
    }
    char *end = NULL;
    long p = strtol(port, &end, 10);
    if (port[0] == '\0' || *end != '\0' || p < 0 || p > 65535)
        return WARD_ERR_ADDRESS;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    if (getaddrinfo(host[0] ? host : NULL, port, &hints, &res) != 0 || res == NULL)
        return WARD_ERR_ADDRESS;
    memcpy(addr, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return WARD_ERR_OK;
}

enum ward_err ward_server_new(const struct ward_server_config *cfg, struct ward_log *log,
                              struct ward_metrics *metrics, struct ward_server **out)
{
    enum ward_err err = WARD_ERR_NOMEM;
    struct ward_server *srv = calloc(1, sizeof *srv);
    if (srv == NULL)
        goto fail;
    srv->cfg = *cfg;
    if (srv->cfg.threads < 1)
        srv->cfg.threads = 1;
    if (srv->cfg.body_limit < 0 || srv->cfg.max_connections < 1 || srv->cfg.request_timeout < 0) {
        err = WARD_ERR_INVAL;
        goto fail;
    }
    err = parse_listen(cfg->listen, &srv->addr, &srv->addrlen);
    if (err != WARD_ERR_OK)
        goto fail;
    err = WARD_ERR_NOMEM;
    srv->log = log;
    srv->metrics = metrics;
    srv->start_wall = ward_clock_wall();
    srv->start_mono = ward_clock_now(NULL);
    srv->unmatched.pattern = (char *)(uintptr_t) "unmatched";
    srv->unmatched.method = (char *)(uintptr_t) "";
    srv->fallback.pattern = (char *)(uintptr_t) "fallback";
    srv->fallback.method = (char *)(uintptr_t) "";
    if (metrics != NULL) {
        static const char *const req_labels[] = {"route", "method", "status"};
        static const char *const dur_labels[] = {"route", "method"};
        srv->m_requests = ward_metrics_counter(metrics, "http_requests_total",
                                               "HTTP requests answered, by route, method and status.",
                                               3, req_labels);
        srv->m_duration = ward_metrics_histogram(
            metrics, "http_request_duration_seconds",
            "Time from the request's headers to its completion, by route and method.", 2,
            dur_labels, NULL, 0);
        struct ward_metric_family *inflight = ward_metrics_gauge(
            metrics, "http_requests_in_flight", "Requests begun and not yet completed.", 0, NULL);
        srv->m_inflight = inflight != NULL ? ward_metric_get(inflight, NULL) : NULL;
        if (srv->m_requests == NULL || srv->m_duration == NULL || srv->m_inflight == NULL)
            goto fail;
    }
    err = ward__health_routes(srv);
    if (err != WARD_ERR_OK)
        goto fail;
    *out = srv;
    return WARD_ERR_OK;
fail:
    ward_server_free(srv);
    return err;
}

enum ward_err ward_server_route(struct ward_server *srv, const char *method, const char *pattern,
                                ward_handler_fn fn, void *arg)
{
    struct ward_route *rt = NULL;
    enum ward_err err = ward__router_add(&srv->router, method, pattern, fn, arg, &rt);
    if (err == WARD_ERR_OK && srv->m_duration != NULL) {
        const char *labels[] = {rt->pattern, rt->method};
        rt->duration = ward_metric_get(srv->m_duration, labels);
        if (rt->duration == NULL)
            err = WARD_ERR_NOMEM;
    }
    return err;
}

enum ward_err ward_server_fallback(struct ward_server *srv, ward_handler_fn fn, void *arg)
{
    /* the event-loop threads read it unlocked: it may not change under them */
    if (srv == NULL || srv->daemon != NULL)
        return WARD_ERR_INVAL;
    srv->fallback.fn = fn;
    srv->fallback.arg = fn != NULL ? arg : NULL;
    return WARD_ERR_OK;
}

enum ward_err ward_server_add_check(struct ward_server *srv, const char *name, ward_check_fn fn,
                                    void *arg)
{
    struct ward_check *grown = realloc(srv->checks, (srv->nchecks + 1) * sizeof *grown);
    if (grown == NULL)
        return WARD_ERR_NOMEM;
    srv->checks = grown;
    char *copy = strdup(name);
    if (copy == NULL)
        return WARD_ERR_NOMEM;
    srv->checks[srv->nchecks++] = (struct ward_check){.name = copy, .fn = fn, .arg = arg};
    return WARD_ERR_OK;
}

static enum ward_err add_hook(struct ward_hook **hooks, size_t *n, ward_shutdown_fn fn, void *arg)
{
    struct ward_hook *grown = realloc(*hooks, (*n + 1) * sizeof *grown);
    if (grown == NULL)
        return WARD_ERR_NOMEM;
    *hooks = grown;
    (*hooks)[(*n)++] = (struct ward_hook){.fn = fn, .arg = arg};
    return WARD_ERR_OK;
}

enum ward_err ward_server_on_shutdown(struct ward_server *srv, ward_shutdown_fn fn, void *arg)
{
    return add_hook(&srv->hooks, &srv->nhooks, fn, arg);
}

enum ward_err ward_server_on_drained(struct ward_server *srv, ward_shutdown_fn fn, void *arg)
{
    return add_hook(&srv->drained, &srv->ndrained, fn, arg);
}

/* Methods outside this list are counted as "other", so that a client cannot grow the
 * metrics without bound. */
static const char *method_label(const char *m)
{
    static const char *const known[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(m, known[i]) == 0)
            return known[i];
    return "other";
}

static void count(struct ward_server *srv, struct ward_req *req, int64_t elapsed)
{
    req->counted = true;
    struct ward_route *rt = req->route != NULL ? req->route : &srv->unmatched;
    /* "unmatched" and "fallback" are shared by every method, so only routes cache their
     * children */
    bool shared = rt == &srv->unmatched || rt == &srv->fallback;
    const char *method = shared ? method_label(req->method) : rt->method;
    int status = req->status > 0 && req->status < WARD_STATUS_SLOTS ? req->status : 0;
    struct ward_metric *m = atomic_load_explicit(&rt->by_status[status], memory_order_acquire);
    if (m == NULL) {
        char code[8];
        snprintf(code, sizeof code, "%d", status);
        const char *labels[] = {rt->pattern, method, code};
        m = ward_metric_get(srv->m_requests, labels);
        if (!shared)
            atomic_store_explicit(&rt->by_status[status], m, memory_order_release);
    }
    ward_counter_inc(m);
    struct ward_metric *d = rt->duration;
    if (shared) {
        const char *labels[] = {rt->pattern, method};
        d = ward_metric_get(srv->m_duration, labels);
    }
    ward_histogram_observe(d, (double)elapsed / 1e9);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct ward_server *srv = cls;
    struct ward_req *req = *con_cls;
    (void)conn;
    if (req == NULL)
        return;
    *con_cls = NULL;
    if (!req->begun) {
        /* refused by libmicrohttpd before its headers were in: never counted in flight */
        ward__req_unref(req);
        return;
    }
    int64_t elapsed = ward_clock_now(NULL) - req->start;
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && req->state != WARD_REQ_QUEUED)
        req->status = 499; /* the client went away before an answer (nginx's convention) */
    if (srv->cfg.access_log && ward_log_enabled(srv->log, WARD_LOG_INFO)) {
        char remote[INET6_ADDRSTRLEN];
        ward_req_client_addr(req, remote, sizeof remote);
        ward_log_write(srv->log, WARD_LOG_INFO, &req->logctx, "request",
                       WARD_S("method", req->method), WARD_S("path", req->path),
                       WARD_S("route", req->route ? req->route->pattern : ""),
                       WARD_I("status", req->status), WARD_I("bytes", (int64_t)req->bytes),
                       WARD_D("duration_ms", (double)elapsed / 1e6), WARD_S("remote", remote),
                       WARD_KV_LAST);
    }
    if (srv->metrics != NULL) {
        if (!req->counted)
            count(srv, req, elapsed);
        ward_gauge_add(srv->m_inflight, -1.0);
    }
    ward__req_unref(req);
    atomic_fetch_sub(&srv->inflight, 1);
}

/* Queues the answer and counts it at once, so that a client that has its answer finds it
 * in /metrics. */
static enum MHD_Result queue(struct ward_server *srv, struct ward_req *req)
{
    bool ok = ward__req_queue(req);
    if (ok && srv->metrics != NULL && req->state == WARD_REQ_QUEUED && !req->counted)
        count(srv, req, ward_clock_now(NULL) - req->start);
    return ok ? MHD_YES : MHD_NO;
}

static bool is_json_type(const char *ct)
{
    if (ct == NULL)
        return false;
    while (*ct == ' ')
        ct++;
    const char *semi = strchr(ct, ';');
    size_t n = semi ? (size_t)(semi - ct) : strlen(ct);
    while (n > 0 && ct[n - 1] == ' ')
        n--;
    if (n == 16 && strncasecmp(ct, "application/json", 16) == 0)
        return true;
    /* structured syntax suffix: application/problem+json, application/merge-patch+json */
    return n > 17 && strncasecmp(ct, "application/", 12) == 0 && strncasecmp(ct + n - 5, "+json", 5) == 0;
}

/* Checks made on the headers alone, before any body is read: route, method, deadline
 * header, body size and media type. Answers (and returns false) on the first failure.
 * With a fallback, every request that matches no route (wrong method on a routed path
 * included) goes to it: no 404 or 405, and no media-type check, since the fallback
 * forwards bodies it does not read. */
static bool early_checks(struct ward_server *srv, struct ward_req *req)
{
    enum ward_match m = ward__router_match(&srv->router, req);
    if (m != WARD_MATCH_OK && srv->fallback.fn != NULL) {
        ward__route_free_params(req);
        req->route = &srv->fallback;
        m = WARD_MATCH_OK;
    }
    if (m == WARD_MATCH_NOT_FOUND) {
        ward__req_error(req, WARD_PROBLEM_NOT_FOUND, true, "no route for %s %s", req->method, req->path);
        return false;
    }
    if (m == WARD_MATCH_BAD_METHOD) {
        char allow[256];
        ward__router_allow(&srv->router, req->path, allow, sizeof allow);
        if (ward_req_set_header(req, "Allow", allow) != WARD_ERR_OK)
            allow[0] = '\0'; /* the 405 still goes out, without Allow */
        ward__req_error(req, WARD_PROBLEM_METHOD_NOT_ALLOWED, true, "%s is not allowed on %s; allowed: %s",
                        req->method, req->path, allow);
        return false;
    }
    const char *t = ward_req_header(req, "X-Request-Timeout-Ms");
    if (t != NULL) {
        char *end = NULL;
        errno = 0;
        unsigned long long ms = strtoull(t, &end, 10);
        if (t[0] < '0' || t[0] > '9' || *end != '\0' || errno != 0 || ms > 86400000ULL) {
            ward__req_error(req, WARD_PROBLEM_BAD_HEADER, true,
                            "X-Request-Timeout-Ms must be whole milliseconds from 0 to 86400000");
            return false;
        }
        int64_t budget = (int64_t)ms * WARD_NS_PER_MS;
        if (budget < srv->cfg.request_timeout)
            req->deadline = req->start + budget;
    }
    const char *cl = ward_req_header(req, "Content-Length");
    const char *te = ward_req_header(req, "Transfer-Encoding");
    unsigned long long length = cl != NULL ? strtoull(cl, NULL, 10) : 0;
    if (length > (unsigned long long)srv->cfg.body_limit) {
        ward__req_error(req, WARD_PROBLEM_BODY_TOO_LARGE, true, "the body is %llu bytes; the limit is %lld",
                        length, (long long)srv->cfg.body_limit);
        return false;
    }
    if ((length > 0 || te != NULL) && !srv->cfg.any_content_type && req->route != &srv->fallback &&
        !is_json_type(ward_req_header(req, "Content-Type"))) {
        ward__req_error(req, WARD_PROBLEM_UNSUPPORTED_MEDIA_TYPE, true,
                        "the body must be application/json");
        return false;
    }
    if (length > 0) {
        req->body = malloc((size_t)length);
        if (req->body == NULL)
            return true; /* grown on demand instead */
        req->body_cap = (size_t)length;
    }
    return true;
}

/* Appends a chunk of body; past the limit the rest is read and dropped, and the request
 * is answered 413 once complete (libmicrohttpd cannot answer mid-body). */
static bool take_body(struct ward_server *srv, struct ward_req *req, const char *data, size_t n)
{
    if (req->state != WARD_REQ_READING || req->discarded > 0 ||
        req->body_len + n > (size_t)srv->cfg.body_limit) {
        req->discarded += n;
        /* a client streaming far past the limit is cut off */
        return req->discarded <= 16 * (size_t)srv->cfg.body_limit + (1u << 20);
    }
    if (req->body_len + n > req->body_cap) {
        size_t cap = req->body_cap ? req->body_cap : 4096;
        while (cap < req->body_len + n)
            cap *= 2;
        char *grown = realloc(req->body, cap);
        if (grown == NULL)
            return false;
        req->body = grown;
        req->body_cap = cap;
    }
    memcpy(req->body + req->body_len, data, n);
    req->body_len += n;
    return true;
}

static void dispatch(struct ward_server *srv, struct ward_req *req)
{
    if (req->discarded > 0) {
        ward__req_error(req, WARD_PROBLEM_BODY_TOO_LARGE, true, "the body is over the limit of %lld bytes",
                        (long long)srv->cfg.body_limit);
        return;
    }
    if (ward_clock_now(NULL) >= req->deadline) {
        ward__req_error(req, WARD_PROBLEM_DEADLINE_EXCEEDED, true,
                        "the request's deadline passed before it could be handled");
        return;
    }
    pthread_mutex_lock(&req->lock);
    req->state = WARD_REQ_RUNNING;
    pthread_mutex_unlock(&req->lock);
    req->route->fn(req, req->route->arg);
    pthread_mutex_lock(&req->lock);
    bool unanswered = req->state == WARD_REQ_RUNNING;
    pthread_mutex_unlock(&req->lock);
    if (unanswered) {
        WARD_ERROR(srv->log, &req->logctx, "handler returned without an answer",
                   WARD_S("route", req->route->pattern));
        ward__req_error(req, WARD_PROBLEM_INTERNAL, true, "the handler gave no answer");
    }
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **con_cls)
{
    struct ward_server *srv = cls;
    struct ward_req *req = *con_cls;
    (void)conn, (void)version; /* req holds conn since on_uri */
    if (req == NULL)
        return MHD_NO; /* on_uri could not allocate it */
    if (!req->begun) {
        ward__req_begin(req, method, url);
        atomic_fetch_add(&srv->inflight, 1);
        if (srv->metrics != NULL)
            ward_gauge_add(srv->m_inflight, 1.0);
        if (!early_checks(srv, req))
            return queue(srv, req);
        return MHD_YES;
    }
    if (*upload_size > 0) {
        bool ok = take_body(srv, req, upload_data, *upload_size);
        *upload_size = 0;
        return ok ? MHD_YES : MHD_NO;
    }
    if (req->state == WARD_REQ_READING) {
        dispatch(srv, req);
        /* a suspended request is queued by the call that follows its resumption, even
         * when the answer came before the handler returned */
        if (req->suspended)
            return MHD_YES;
    }
    return queue(srv, req);
}

/* Called once per request with its target as sent (path and query, undecoded), before the
 * headers are parsed: the request is made here to keep that copy, and becomes *con_cls.
 * NULL (out of memory) makes on_request close the connection. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    return ward__req_new(cls, conn, uri);
}

/* libmicrohttpd's own diagnostics go into the JSON log. */
__attribute__((format(printf, 2, 0))) static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    struct ward_server *srv = cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    WARD_DEBUG(srv->log, NULL, "libmicrohttpd", WARD_S("detail", msg));
}

enum ward_err ward_server_start(struct ward_server *srv)
{
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
                     MHD_USE_TURBO;
    if (srv->addr.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    unsigned timeout_s = (unsigned)((srv->cfg.conn_timeout + WARD_NS_PER_S - 1) / WARD_NS_PER_S);
    struct MHD_OptionItem opts[] = {
        {MHD_OPTION_SOCK_ADDR, 0, &srv->addr},
        {MHD_OPTION_CONNECTION_LIMIT, (intptr_t)srv->cfg.max_connections, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)timeout_s, NULL},
        {MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024, NULL},
        /* one epoll thread needs no pool; MHD warns about a pool of size 0 */
        {srv->cfg.threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END,
         (intptr_t)srv->cfg.threads, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    if (ward__watchdog_start(srv) != WARD_ERR_OK)
        return WARD_ERR_SYSTEM;
    srv->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, srv,
                                   MHD_OPTION_ARRAY, opts,
                                   MHD_OPTION_URI_LOG_CALLBACK, on_uri, srv,
                                   MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
                                   MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, srv,
                                   MHD_OPTION_END);
    if (srv->daemon == NULL) {
        WARD_ERROR(srv->log, NULL, "cannot listen", WARD_S("listen", srv->cfg.listen),
                   WARD_S("error", strerror(errno)));
        return WARD_ERR_SYSTEM;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = info != NULL ? info->port : 0;
    return WARD_ERR_OK;
}

uint16_t ward_server_port(const struct ward_server *srv)
{
    return srv->port;
}

bool ward_server_draining(const struct ward_server *srv)
{
    return atomic_load(&srv->draining);
}

void ward_signals_block(void)
{
    /* a shell starts background jobs with SIGINT ignored; sigwait must still see it */
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

/* Waits up to ns for a shutdown signal (when sigs is not NULL) or just sleeps. Returns
 * true when a signal came. */
static bool wait_signal(const sigset_t *sigs, int64_t ns)
{
    if (ns <= 0)
        return false;
    struct timespec ts = {.tv_sec = ns / WARD_NS_PER_S, .tv_nsec = ns % WARD_NS_PER_S};
    if (sigs == NULL) {
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
        return false;
    }
    for (;;) {
        int sig = sigtimedwait(sigs, NULL, &ts);
        if (sig > 0)
            return true;
        if (errno != EINTR)
            return false;
    }
}

static void second_signal(struct ward_server *srv)
{
    WARD_ERROR(srv->log, NULL, "second signal: exiting at once",
               WARD_I("in_flight", atomic_load(&srv->inflight)));
    ward_log_flush(srv->log);
    _exit(1);
}

/* DESIGN.md §5, step by step; sigs (may be NULL) is watched for a second signal. */
static int shutdown_with(struct ward_server *srv, const sigset_t *sigs)
{
    int64_t t0 = ward_clock_now(NULL);
    atomic_store(&srv->draining, true);
    WARD_INFO(srv->log, NULL, "shutting down", WARD_D("shutdown_delay_s", (double)srv->cfg.shutdown_delay / 1e9),
              WARD_D("drain_timeout_s", (double)srv->cfg.drain_timeout / 1e9));
    for (size_t i = 0; i < srv->nhooks; i++)
        srv->hooks[i].fn(srv->hooks[i].arg);
    if (wait_signal(sigs, srv->cfg.shutdown_delay))
        second_signal(srv);

    atomic_store(&srv->closing, true);
    if (srv->daemon != NULL) {
        MHD_socket fd = MHD_quiesce_daemon(srv->daemon);
        if (fd != MHD_INVALID_SOCKET)
            close(fd);
    }
    WARD_INFO(srv->log, NULL, "listener closed; draining",
              WARD_I("in_flight", atomic_load(&srv->inflight)));
    int64_t limit = ward_clock_now(NULL) + srv->cfg.drain_timeout;
    while (atomic_load(&srv->inflight) > 0 && ward_clock_now(NULL) < limit) {
        if (wait_signal(sigs, 10 * WARD_NS_PER_MS))
            second_signal(srv);
    }
    /* what may still answer requests stops while their answers can still go out */
    for (size_t i = 0; i < srv->ndrained; i++)
        srv->drained[i].fn(srv->drained[i].arg);
    long left = atomic_load(&srv->inflight);
    /* the watchdog first: it must not resume a connection of a stopped daemon */
    ward__watchdog_stop(srv);
    if (srv->daemon != NULL) {
        MHD_stop_daemon(srv->daemon);
        srv->daemon = NULL;
    }
    if (left > 0) {
        WARD_ERROR(srv->log, NULL, "drain timeout: requests cut off", WARD_I("in_flight", left));
        return 1;
    }
    WARD_INFO(srv->log, NULL, "stopped", WARD_D("shutdown_s", (double)(ward_clock_now(NULL) - t0) / 1e9));
    return 0;
}

int ward_server_shutdown(struct ward_server *srv)
{
    return shutdown_with(srv, NULL);
}

int ward_server_run(struct ward_server *srv)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    int sig;
    while (sigwait(&set, &sig) != 0)
        ;
    WARD_INFO(srv->log, NULL, "signal received", WARD_S("signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"));
    return shutdown_with(srv, &set);
}

void ward_server_free(struct ward_server *srv)
{
    if (srv == NULL)
        return;
    ward__watchdog_stop(srv);
    if (srv->daemon != NULL)
        MHD_stop_daemon(srv->daemon);
    ward__router_free(&srv->router);
    for (size_t i = 0; i < srv->nchecks; i++)
        free(srv->checks[i].name);
    free(srv->checks);
    free(srv->hooks);
    free(srv->drained);
    free(srv);
}
