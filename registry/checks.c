/* checks.c — the check runner: a small pool of worker threads probes the HTTP and TCP
 * checks at their intervals (the first probe of a new check at once) through the blocking
 * HTTP client and a plain connect, and applies Consul's success/failure thresholds. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <ward/httpc.h>
#include <ward/thread.h>

#include "registry.h"

#define WORKERS 4
#define DEFAULT_TIMEOUT (10 * WARD_NS_PER_S)
#define MAX_HEADERS 64
#define MAX_REDIRECTS 10 /* Go's http.Client */

/* Everything but the client is guarded by the state's lock. */
struct reg_checks {
    struct reg_ctx *ctx;
    struct ward_httpc *http;
    pthread_cond_t cond;
    pthread_t threads[WORKERS];
    size_t nthreads;
    bool stop;
    struct ward_metric *runs[2][3]; /* [http, tcp][passing, warning, critical] */
};

/* A copy of what one probe needs, taken under the lock so that the probe runs without it. */
struct probe {
    char *id;
    enum reg_check_kind kind;
    char *target; /* URL or host:port */
    char *method, *body;
    char **headers; /* "Name: value", NULL-terminated */
    int64_t timeout;
    bool disable_redirects;
};

static void probe_free(struct probe *p)
{
    free(p->id);
    free(p->target);
    free(p->method);
    free(p->body);
    for (size_t i = 0; p->headers != NULL && p->headers[i] != NULL; i++)
        free(p->headers[i]);
    free(p->headers);
}

static bool has_header(const json_t *header, const char *name)
{
    const char *key;
    const json_t *v;
    json_object_foreach ((json_t *)(uintptr_t)header, key, v) {
        (void)v;
        if (strcasecmp(key, name) == 0)
            return true;
    }
    return false;
}

/* The header lines of an HTTP check, plus Consul's Accept unless the check sets one. */
static bool copy_headers(const struct reg_check *c, struct probe *p)
{
    p->headers = calloc(MAX_HEADERS + 2, sizeof *p->headers);
    if (p->headers == NULL)
        return false;
    size_t n = 0;
    const char *key;
    const json_t *vals;
    if (c->header != NULL) {
        json_object_foreach ((json_t *)(uintptr_t)c->header, key, vals) {
            size_t i;
            const json_t *v;
            json_array_foreach (vals, i, v) {
                if (n >= MAX_HEADERS || !json_is_string(v))
                    continue;
                size_t len = strlen(key) + strlen(json_string_value(v)) + 3;
                p->headers[n] = malloc(len);
                if (p->headers[n] == NULL)
                    return false;
                snprintf(p->headers[n], len, "%s: %s", key, json_string_value(v));
                n++;
            }
        }
    }
    if (c->header == NULL || !has_header(c->header, "Accept")) {
        p->headers[n] = strdup("Accept: text/plain, text/*, */*");
        if (p->headers[n] == NULL)
            return false;
    }
    return true;
}

static bool probe_copy(const struct reg_check *c, struct probe *p)
{
    *p = (struct probe){.kind = c->kind,
                        .timeout = c->timeout > 0 ? c->timeout : DEFAULT_TIMEOUT,
                        .disable_redirects = c->disable_redirects};
    p->id = strdup(c->id);
    p->target = strdup(c->kind == REG_CHECK_HTTP ? c->http : c->tcp);
    p->method = strdup(c->method != NULL && c->method[0] != '\0' ? c->method : "GET");
    p->body = strdup(c->body != NULL ? c->body : "");
    if (p->id == NULL || p->target == NULL || p->method == NULL || p->body == NULL)
        return false;
    return c->kind != REG_CHECK_HTTP || copy_headers(c, p);
}

static const char *reason(int status)
{
    static const struct {
        int code;
        const char *text;
    } table[] = {{200, "OK"}, {201, "Created"}, {202, "Accepted"}, {204, "No Content"},
                 {301, "Moved Permanently"}, {302, "Found"}, {304, "Not Modified"},
                 {400, "Bad Request"}, {401, "Unauthorized"}, {403, "Forbidden"},
                 {404, "Not Found"}, {405, "Method Not Allowed"}, {408, "Request Timeout"},
                 {429, "Too Many Requests"}, {500, "Internal Server Error"},
                 {502, "Bad Gateway"}, {503, "Service Unavailable"}, {504, "Gateway Timeout"}};
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (table[i].code == status)
            return table[i].text;
    return "";
}

/* Where a redirect from url leads: an absolute http(s) URL, or a path on url's origin;
 * NULL for anything else (the redirect is then not followed) or out of memory. */
static char *redirect_url(const char *url, const char *location)
{
    if (strncmp(location, "http://", 7) == 0 || strncmp(location, "https://", 8) == 0)
        return strdup(location);
    const char *host = strstr(url, "://");
    if (location[0] != '/' || location[1] == '/' || host == NULL)
        return NULL;
    host += 3;
    int origin = (int)(host - url) + (int)strcspn(host, "/?#");
    size_t len = (size_t)origin + strlen(location) + 1;
    char *next = malloc(len);
    if (next != NULL)
        snprintf(next, len, "%.*s%s", origin, url, location);
    return next;
}

static bool is_redirect(int status)
{
    return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

/* One HTTP probe: 2xx passing, 429 warning, anything else critical; *out malloc'ed.
 * Redirects are followed (at most 10, within the one timeout) unless disabled; 301, 302
 * and 303 turn the method into GET without a body, as Go's client does. */
static enum reg_status run_http(struct reg_checks *r, const struct probe *p, char **out)
{
    struct ward_http_result res = {0};
    struct ward_http_call call = {
        .method = p->method,
        .url = p->target,
        .headers = (const char *const *)p->headers,
        .body = p->body,
        .body_len = strlen(p->body),
        .deadline = ward_clock_now(NULL) + p->timeout,
    };
    char *url = NULL; /* the current URL once redirected */
    bool too_many = false;
    enum ward_err err = ward_httpc_do(r->http, &call, &res);
    for (int hops = 0; err == WARD_ERR_OK && !p->disable_redirects && is_redirect(res.status);
         hops++) {
        const char *location = ward_http_result_header(&res, "Location");
        char *next = location != NULL ? redirect_url(call.url, location) : NULL;
        if (next == NULL)
            break;
        if (hops >= MAX_REDIRECTS) {
            too_many = true;
            free(next);
            break;
        }
        if (res.status != 307 && res.status != 308 && strcmp(call.method, "HEAD") != 0) {
            call.method = "GET";
            call.body = NULL;
            call.body_len = 0;
        }
        free(url);
        url = next;
        call.url = url;
        ward_http_result_fini(&res);
        err = ward_httpc_do(r->http, &call, &res);
    }
    free(url);
    enum reg_status status = REG_CRITICAL;
    size_t len = strlen(p->target) + strlen(p->method) + 128;
    if (too_many) {
        *out = malloc(len);
        if (*out != NULL)
            snprintf(*out, len, "%s %s: stopped after %d redirects", p->method, p->target,
                     MAX_REDIRECTS);
    } else if (err == WARD_ERR_OK || err == WARD_ERR_TOO_LARGE) {
        const char *body = res.body != NULL ? res.body : "";
        len += strlen(body);
        if (res.status >= 200 && res.status < 300)
            status = REG_PASSING;
        else if (res.status == 429)
            status = REG_WARNING;
        *out = malloc(len);
        if (*out != NULL)
            snprintf(*out, len, "HTTP %s %s: %d %s Output: %s", p->method, p->target, res.status,
                     reason(res.status), body);
    } else {
        *out = malloc(len);
        if (*out != NULL) {
            if (err == WARD_ERR_TIMEOUT || err == WARD_ERR_DEADLINE)
                snprintf(*out, len, "%s %s: timeout after %lld ms", p->method, p->target,
                         (long long)(p->timeout / WARD_NS_PER_MS));
            else
                snprintf(*out, len, "%s %s: %s", p->method, p->target, ward_strerror(err));
        }
    }
    ward_http_result_fini(&res);
    return status;
}

/* Splits "host:port" or "[v6]:port"; false when there is no port. */
static bool split_addr(const char *addr, char *host, size_t hsize, const char **port)
{
    const char *colon = strrchr(addr, ':');
    if (colon == NULL || colon[1] == '\0')
        return false;
    const char *start = addr;
    size_t len = (size_t)(colon - addr);
    if (len >= 2 && addr[0] == '[' && addr[len - 1] == ']') {
        start++;
        len -= 2;
    }
    if (len >= hsize)
        return false;
    memcpy(host, start, len);
    host[len] = '\0';
    *port = colon + 1;
    return true;
}

/* Connects to one resolved address within timeout; 0 or an errno value. */
static int connect_one(const struct addrinfo *ai, int64_t timeout)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0)
        return errno;
    int rc = 0;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        rc = errno;
        if (rc == EINPROGRESS) {
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            int64_t ms = timeout / WARD_NS_PER_MS;
            int n = poll(&pfd, 1, ms > 1000000 ? 1000000 : (int)(ms < 1 ? 1 : ms));
            socklen_t sl = sizeof rc;
            if (n == 0)
                rc = ETIMEDOUT;
            else if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &rc, &sl) != 0)
                rc = errno;
        }
    }
    close(fd);
    return rc;
}

/* One TCP probe: a connect within the timeout is passing, anything else critical. */
static enum reg_status run_tcp(const struct probe *p, char **out)
{
    char host[256];
    const char *port = NULL;
    int rc = EINVAL;
    const char *why = NULL;
    if (split_addr(p->target, host, sizeof host, &port)) {
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
        struct addrinfo *res = NULL;
        int g = getaddrinfo(host, port, &hints, &res);
        if (g != 0) {
            why = gai_strerror(g);
        } else {
            for (const struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
                rc = connect_one(ai, p->timeout);
                if (rc == 0)
                    break;
            }
            freeaddrinfo(res);
        }
    } else {
        why = "missing port in address";
    }
    size_t len = strlen(p->target) + 128;
    *out = malloc(len);
    if (*out != NULL) {
        if (why == NULL && rc == 0)
            snprintf(*out, len, "TCP connect %s: Success", p->target);
        else if (why != NULL)
            snprintf(*out, len, "dial tcp %s: %s", p->target, why);
        else
            snprintf(*out, len, "dial tcp %s: connect: %s", p->target, strerror(rc));
    }
    return why == NULL && rc == 0 ? REG_PASSING : REG_CRITICAL;
}

/* Consul's StatusHandler: publishes result only once the counters reach the thresholds;
 * a failure short of critical may publish warning. Lock held. */
static void apply_result(struct reg_state *st, struct reg_check *c, enum reg_status result,
                         const char *output)
{
    enum reg_status publish;
    if (result != REG_CRITICAL) {
        c->successes++;
        c->failures = 0;
        if (c->successes < c->success_before_passing)
            return;
        publish = result;
    } else {
        c->failures++;
        c->successes = 0;
        if (c->failures >= c->failures_before_critical)
            publish = REG_CRITICAL;
        else if (c->failures >= c->failures_before_warning)
            publish = REG_WARNING;
        else
            return;
    }
    if (reg_state_update_check(st, c, publish, output) != WARD_ERR_OK)
        return; /* out of memory: the next probe tries again */
}

/* The due HTTP/TCP check nobody probes, or NULL; *next gets the earliest later run. */
static struct reg_check *next_due(struct reg_state *st, int64_t now, int64_t *next)
{
    *next = INT64_MAX;
    for (size_t i = 0; i < st->nchecks; i++) {
        struct reg_check *c = st->checks[i];
        if ((c->kind != REG_CHECK_HTTP && c->kind != REG_CHECK_TCP) || c->probing)
            continue;
        if (c->next_run <= now)
            return c;
        if (c->next_run < *next)
            *next = c->next_run;
    }
    return NULL;
}

static void *worker_main(void *arg)
{
    struct reg_checks *r = arg;
    struct reg_state *st = r->ctx->st;
    reg_state_lock(st);
    while (!r->stop) {
        int64_t next = INT64_MAX;
        struct reg_check *c = next_due(st, ward_clock_now(st->clock), &next);
        if (c == NULL) {
            if (next == INT64_MAX) {
                pthread_cond_wait(&r->cond, &st->lock);
            } else {
                struct timespec ts = {.tv_sec = next / WARD_NS_PER_S,
                                      .tv_nsec = next % WARD_NS_PER_S};
                int rc = pthread_cond_timedwait(&r->cond, &st->lock, &ts);
                (void)rc; /* timeout or wake-up: look again either way */
            }
            continue;
        }
        struct probe p;
        bool copied = probe_copy(c, &p);
        c->probing = copied;
        c->next_run = ward_clock_now(st->clock) + (c->interval > 0 ? c->interval : WARD_NS_PER_S);
        if (!copied) {
            probe_free(&p);
            continue;
        }
        reg_state_unlock(st);
        char *output = NULL;
        enum reg_status result = p.kind == REG_CHECK_HTTP ? run_http(r, &p, &output) : run_tcp(&p, &output);
        ward_counter_inc(r->runs[p.kind == REG_CHECK_HTTP ? 0 : 1][result]);
        reg_state_lock(st);
        /* the check may have gone or been replaced meanwhile: find it by ID again */
        c = reg_state_check(st, p.id);
        if (c != NULL && c->kind == p.kind) {
            c->probing = false;
            apply_result(st, c, result, output != NULL ? output : "");
        }
        free(output);
        probe_free(&p);
    }
    reg_state_unlock(st);
    return NULL;
}

/* A change may have added checks: wake the workers to look. Lock held. */
static void on_change(void *arg)
{
    struct reg_checks *r = arg;
    pthread_cond_broadcast(&r->cond);
}

static enum ward_err export_metrics(struct reg_checks *r)
{
    static const char *const labels[] = {"type", "status"};
    static const char *const types[] = {"http", "tcp"};
    struct ward_metrics *m = r->ctx->metrics;
    if (m == NULL)
        return WARD_ERR_OK;
    struct ward_metric_family *f = ward_metrics_counter(
        m, "registry_check_runs_total", "HTTP and TCP check probes run, by type and result.", 2,
        labels);
    if (f == NULL)
        return WARD_ERR_NOMEM;
    for (size_t t = 0; t < 2; t++) {
        for (size_t s = 0; s < 3; s++) {
            const char *v[] = {types[t], reg_status_name((enum reg_status)s)};
            r->runs[t][s] = ward_metric_get(f, v);
            if (r->runs[t][s] == NULL)
                return WARD_ERR_NOMEM;
        }
    }
    return WARD_ERR_OK;
}

enum ward_err reg_checks_new(struct reg_ctx *ctx, struct reg_checks **out)
{
    enum ward_err err = WARD_ERR_NOMEM;
    bool cond_ok = false;
    struct reg_checks *r = calloc(1, sizeof *r);
    if (r == NULL)
        goto fail;
    r->ctx = ctx;
    struct ward_httpc_settings s;
    ward_httpc_settings_default(&s);
    s.user_agent = "Consul Health Check";
    s.connect_timeout = 3600 * WARD_NS_PER_S; /* each probe's deadline is the limit */
    s.total_timeout = 3600 * WARD_NS_PER_S;
    s.max_body = 1024 * 1024;
    s.max_idle = 1;
    err = ward_httpc_new(&s, &r->http);
    if (err != WARD_ERR_OK)
        goto fail;
    err = export_metrics(r);
    if (err != WARD_ERR_OK)
        goto fail;
    err = WARD_ERR_SYSTEM;
    cond_ok = ward_cond_init_monotonic(&r->cond) == WARD_ERR_OK;
    if (!cond_ok)
        goto fail;
    reg_state_lock(ctx->st);
    bool hooked = reg_state_hook_add(ctx->st, on_change, r);
    reg_state_unlock(ctx->st);
    if (!hooked)
        goto fail;
    /* the workers must not take the signals meant for the server */
    for (size_t i = 0; i < WORKERS; i++) {
        if (ward_thread_start(&r->threads[i], worker_main, r) != WARD_ERR_OK)
            break;
        r->nthreads++;
    }
    if (r->nthreads == 0) {
        reg_state_lock(ctx->st);
        reg_state_hook_remove(ctx->st, on_change, r);
        reg_state_unlock(ctx->st);
        goto fail;
    }
    *out = r;
    return WARD_ERR_OK;
fail:
    if (cond_ok)
        pthread_cond_destroy(&r->cond);
    if (r != NULL)
        ward_httpc_free(r->http);
    free(r);
    return err;
}

void reg_checks_free(struct reg_checks *r)
{
    if (r == NULL)
        return;
    struct reg_state *st = r->ctx->st;
    reg_state_lock(st);
    r->stop = true;
    reg_state_hook_remove(st, on_change, r);
    pthread_cond_broadcast(&r->cond);
    reg_state_unlock(st);
    for (size_t i = 0; i < r->nthreads; i++)
        pthread_join(r->threads[i], NULL);
    pthread_cond_destroy(&r->cond);
    ward_httpc_free(r->http);
    free(r);
}
