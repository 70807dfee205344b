/* httpc.c — the HTTP client over libcurl easy handles kept in a LIFO pool, so that calls
 * reuse kept-alive connections and no handle is ever used by two threads: the two halves
 * of a call (httpc_int.h) and the blocking ward_httpc_do that runs them around
 * curl_easy_perform. */
#include <ward/httpc.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "httpc_int.h"
#include "trace.h"

#ifndef WARD_VERSION
#define WARD_VERSION "0"
#endif

#define DEFAULT_USER_AGENT ("ward/" WARD_VERSION)
#define MAX_KEY_LEN 255
#define NMETHODS 8
#define NCLASSES 6 /* 1xx..5xx, error */

static const char *const method_names[NMETHODS] = {"GET",   "HEAD",   "POST",    "PUT",
                                                   "PATCH", "DELETE", "OPTIONS", "other"};
static const char *const class_names[NCLASSES] = {"1xx", "2xx", "3xx", "4xx", "5xx", "error"};

/* libcurl must be initialised once per process before any handle exists, and
 * curl_global_init itself is not safe to race: the one write-once global of this file. */
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_FAILED_INIT;

struct ward_httpc {
    struct ward_httpc_settings s;
    char *user_agent;
    pthread_mutex_t lock; /* guards idle and nidle */
    CURL **idle;          /* a stack: the handle given back last is taken first */
    uint32_t nidle;
    /* Set once by ward_httpc_export; children are fetched on first use and kept. */
    _Atomic(struct ward_metric_family *) f_requests;
    _Atomic(struct ward_metric_family *) f_duration;
    _Atomic(struct ward_metric *) m_requests[NMETHODS][NCLASSES];
    _Atomic(struct ward_metric *) m_duration[NMETHODS];
    atomic_bool exported;
};

static void curl_init_once(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

void ward_httpc_settings_default(struct ward_httpc_settings *s)
{
    *s = (struct ward_httpc_settings){
        .connect_timeout = WARD_NS_PER_S,
        .total_timeout = 10 * WARD_NS_PER_S,
        .max_body = (size_t)4 << 20,
        .user_agent = NULL,
        .max_idle = 5,
        .idle_age = 20 * WARD_NS_PER_S,
        .pool_size = 64,
        .clock = NULL,
    };
}

enum ward_err ward_httpc_new(const struct ward_httpc_settings *s, struct ward_httpc **out)
{
    struct ward_httpc_settings defaults;
    struct ward_httpc *c = NULL;
    const char *ua;
    enum ward_err rc = WARD_ERR_INVAL;

    if (s == NULL) {
        ward_httpc_settings_default(&defaults);
        s = &defaults;
    }
    if (out == NULL || s->connect_timeout < WARD_NS_PER_MS || s->total_timeout < WARD_NS_PER_MS ||
        s->max_body == 0 || s->max_body > SIZE_MAX / 2 || s->max_idle < 1 || s->idle_age < 0)
        goto fail;
    rc = WARD_ERR_SYSTEM;
    if (pthread_once(&curl_once, curl_init_once) != 0 || curl_init_rc != CURLE_OK)
        goto fail;
    rc = WARD_ERR_NOMEM;
    c = calloc(1, sizeof *c);
    if (c == NULL)
        goto fail;
    c->s = *s;
    ua = s->user_agent != NULL ? s->user_agent : DEFAULT_USER_AGENT;
    c->user_agent = strdup(ua);
    c->idle = calloc(s->pool_size > 0 ? s->pool_size : 1, sizeof *c->idle);
    if (c->user_agent == NULL || c->idle == NULL)
        goto fail;
    c->s.user_agent = c->user_agent;
    if (pthread_mutex_init(&c->lock, NULL) != 0) {
        rc = WARD_ERR_SYSTEM;
        goto fail;
    }
    *out = c;
    return WARD_ERR_OK;
fail:
    if (c != NULL) {
        free(c->user_agent);
        free(c->idle);
        free(c);
    }
    return rc;
}

void ward_httpc_free(struct ward_httpc *c)
{
    if (c == NULL)
        return;
    for (uint32_t i = 0; i < c->nidle; i++)
        curl_easy_cleanup(c->idle[i]);
    pthread_mutex_destroy(&c->lock);
    free(c->idle);
    free(c->user_agent);
    free(c);
}

/* The most recently returned handle (its connections are the likeliest to be alive and
 * belong, for sequential calls, to this very thread), or a new one. NULL: no memory. */
static CURL *handle_take(struct ward_httpc *c)
{
    CURL *h = NULL;

    pthread_mutex_lock(&c->lock);
    if (c->nidle > 0)
        h = c->idle[--c->nidle];
    pthread_mutex_unlock(&c->lock);
    if (h == NULL)
        h = curl_easy_init();
    else
        curl_easy_reset(h); /* options only: connections and the DNS cache stay */
    return h;
}

/* Pools h, or closes it (outside the lock) when the pool is full. */
static void handle_give(struct ward_httpc *c, CURL *h)
{
    pthread_mutex_lock(&c->lock);
    if (c->nidle < c->s.pool_size) {
        c->idle[c->nidle++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&c->lock);
    if (h != NULL)
        curl_easy_cleanup(h);
}

/* Grows *buf (capacity *cap) to hold need bytes, doubling; false when out of memory. */
static bool reserve(char **buf, size_t *cap, size_t need)
{
    size_t ncap = *cap > 0 ? *cap : 256;
    char *p;

    if (need <= *cap)
        return true;
    while (ncap < need)
        ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
    p = realloc(*buf, ncap);
    if (p == NULL)
        return false;
    *buf = p;
    *cap = ncap;
    return true;
}

/* Keeps the body up to max bytes; one byte more aborts the transfer (returning less than
 * was given makes libcurl fail with CURLE_WRITE_ERROR). */
static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct ward__sink *k = arg;
    size_t len = size * n;

    if (len > k->max - k->len) {
        k->too_large = true;
        return 0;
    }
    if (!reserve(&k->body, &k->cap, k->len + len + 1)) {
        k->nomem = true;
        return 0;
    }
    memcpy(k->body + k->len, p, len);
    k->len += len;
    k->body[k->len] = '\0';
    return len;
}

static bool blank(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

/* Collects "Name: value" lines as "name\0value\0". A status line starts a new response
 * (after 1xx answers), so only the final response's headers are kept. */
static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    struct ward__sink *k = arg;
    size_t len = size * n;
    const char *colon;
    size_t nlen, vstart, vend;

    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        k->hlen = 0;
        return len;
    }
    colon = memchr(p, ':', len);
    /* skips the blank line ending the headers, obsolete folded lines and NUL bytes */
    if (colon == NULL || colon == p || blank(p[0]) || memchr(p, '\0', len) != NULL)
        return len;
    nlen = (size_t)(colon - p);
    vstart = nlen + 1;
    vend = len;
    while (vstart < vend && blank(p[vstart]))
        vstart++;
    while (vend > vstart && blank(p[vend - 1]))
        vend--;
    if (!reserve(&k->hdr, &k->hcap, k->hlen + nlen + (vend - vstart) + 2)) {
        k->nomem = true;
        return 0;
    }
    memcpy(k->hdr + k->hlen, p, nlen);
    k->hlen += nlen;
    k->hdr[k->hlen++] = '\0';
    memcpy(k->hdr + k->hlen, p + vstart, vend - vstart);
    k->hlen += vend - vstart;
    k->hdr[k->hlen++] = '\0';
    return len;
}

/* True when s is 1..255 visible ASCII bytes: safe to put in a header as it is. */
static bool key_valid(const char *s)
{
    size_t n = 0;

    for (; s[n] != '\0'; n++) {
        unsigned char ch = (unsigned char)s[n];
        if (ch < 0x21 || ch > 0x7e || n >= MAX_KEY_LEN)
            return false;
    }
    return n > 0;
}

/* A header line may not smuggle a second header (or a body) in through CR or LF. */
static bool line_valid(const char *s)
{
    return strpbrk(s, "\r\n") == NULL;
}

/* A method is an RFC 9110 token, as it goes verbatim into the request line. */
static bool method_valid(const char *s)
{
    size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                         "!#$%&'*+-.^_`|~");
    return n > 0 && n <= 32 && s[n] == '\0';
}

/* Appends "name: value" (or the line as it is when name is NULL) to *list. */
static bool add_header(struct curl_slist **list, const char *name, const char *value)
{
    char line[512];
    struct curl_slist *l;
    int w;

    if (name != NULL) {
        w = snprintf(line, sizeof line, "%s: %s", name, value);
        if (w < 0 || (size_t)w >= sizeof line)
            return false;
        value = line;
    }
    l = curl_slist_append(*list, value);
    if (l == NULL)
        return false;
    *list = l;
    return true;
}

/* The request headers of call with budget_ms; INVAL for an unsafe value, NOMEM. */
static enum ward_err build_headers(const struct ward_http_call *call, int64_t budget_ms,
                                   struct curl_slist **out)
{
    struct curl_slist *h = NULL;
    char tp[WARD_TRACEPARENT_LEN + 1];
    char ms[24];
    bool ok;
    enum ward_err rc = WARD_ERR_INVAL;

    /* each value fits the 512-byte line of add_header once it is valid */
    if ((call->method != NULL && !method_valid(call->method)) ||
        (call->request_id != NULL && !key_valid(call->request_id)) ||
        (call->idempotency_key != NULL && !key_valid(call->idempotency_key)) ||
        (call->content_type != NULL &&
         (!line_valid(call->content_type) || strlen(call->content_type) > MAX_KEY_LEN)))
        goto fail;
    for (const char *const *x = call->headers; x != NULL && *x != NULL; x++)
        if (!line_valid(*x) || strchr(*x, ':') == NULL)
            goto fail;
    ward__trace_child(call->traceparent, tp);
    snprintf(ms, sizeof ms, "%lld", (long long)budget_ms);
    rc = WARD_ERR_NOMEM;
    ok = add_header(&h, NULL, "Expect:") && add_header(&h, "X-Request-Timeout-Ms", ms) &&
         add_header(&h, "traceparent", tp);
    if (ok && call->request_id != NULL)
        ok = add_header(&h, "X-Request-Id", call->request_id);
    if (ok && call->idempotency_key != NULL)
        ok = add_header(&h, "Idempotency-Key", call->idempotency_key);
    /* with a body and no type, libcurl would claim a form: send no Content-Type instead */
    if (ok && call->content_type != NULL)
        ok = add_header(&h, "Content-Type", call->content_type);
    else if (ok && call->body_len > 0)
        ok = add_header(&h, NULL, "Content-Type:");
    for (const char *const *x = call->headers; ok && x != NULL && *x != NULL; x++)
        ok = add_header(&h, NULL, *x);
    if (!ok)
        goto fail;
    *out = h;
    return WARD_ERR_OK;
fail:
    curl_slist_free_all(h);
    return rc;
}

/* Sets every option of one call on a freshly reset handle. */
static bool set_options(const struct ward_httpc *c, CURL *h, const struct ward_http_call *call,
                        struct curl_slist *hdrs, struct ward__sink *k, int64_t budget_ms)
{
    const char *method = call->method != NULL ? call->method : "GET";
    int64_t connect_ms = c->s.connect_timeout / WARD_NS_PER_MS;
    int64_t age_s = c->s.idle_age / WARD_NS_PER_S;
    CURLcode e = CURLE_OK;

    if (connect_ms > budget_ms)
        connect_ms = budget_ms;
#define SET(opt, val)                                   \
    do {                                                \
        if (e == CURLE_OK)                              \
            e = curl_easy_setopt(h, opt, val);          \
    } while (0)
    SET(CURLOPT_URL, call->url);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_TCP_KEEPALIVE, 1L);
    SET(CURLOPT_TCP_NODELAY, 1L);
    SET(CURLOPT_MAXCONNECTS, (long)c->s.max_idle);
    SET(CURLOPT_MAXAGE_CONN, (long)(age_s > 0 ? age_s : 1));
    SET(CURLOPT_CONNECTTIMEOUT_MS, (long)connect_ms);
    SET(CURLOPT_TIMEOUT_MS, (long)budget_ms);
    SET(CURLOPT_USERAGENT, c->user_agent);
    SET(CURLOPT_HTTPHEADER, hdrs);
    SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->s.max_body);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, k);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, k);
    /* POST, PUT and PATCH say Content-Length: 0 rather than nothing (411 otherwise) */
    if (call->body_len > 0 || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
        strcmp(method, "PATCH") == 0) {
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)call->body_len);
        SET(CURLOPT_POSTFIELDS, call->body_len > 0 ? (const char *)call->body : "");
    }
    if (strcmp(method, "HEAD") == 0)
        SET(CURLOPT_NOBODY, 1L);
    else if (strcmp(method, "GET") != 0 || call->body_len > 0)
        SET(CURLOPT_CUSTOMREQUEST, method);
#undef SET
    return e == CURLE_OK;
}

/* Our error for a failed transfer; sets res->sent. by_deadline: the caller's deadline,
 * not the total timeout, bounded the call; connect_first: the connect timeout was below
 * the budget, so a timeout before sending was the connect timeout's. */
static enum ward_err map_error(CURLcode e, CURL *h, const struct ward__sink *k, bool by_deadline,
                               bool connect_first, struct ward_http_result *res)
{
    long req_size = 0;

    curl_easy_getinfo(h, CURLINFO_REQUEST_SIZE, &req_size);
    res->sent = true;
    if (k->nomem || e == CURLE_OUT_OF_MEMORY)
        return WARD_ERR_NOMEM;
    if (k->too_large || e == CURLE_FILESIZE_EXCEEDED)
        return WARD_ERR_TOO_LARGE;
    switch (e) {
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        res->sent = false;
        return WARD_ERR_INVAL;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
        res->sent = false;
        return WARD_ERR_CONNECT;
    case CURLE_OPERATION_TIMEDOUT:
        /* no request bytes written: it fired while resolving, connecting or handshaking */
        if (req_size == 0) {
            res->sent = false;
            if (connect_first)
                return WARD_ERR_CONNECT;
        }
        return by_deadline ? WARD_ERR_DEADLINE : WARD_ERR_TIMEOUT;
    default:
        return WARD_ERR_TRANSPORT; /* GOT_NOTHING, SEND_ERROR, RECV_ERROR, PARTIAL_FILE ... */
    }
}

/* Counts one finished call when c is exported; children are fetched once and kept. */
static void observe(struct ward_httpc *c, const char *method, enum ward_err rc, int status,
                    int64_t elapsed)
{
    struct ward_metric_family *fr = atomic_load_explicit(&c->f_requests, memory_order_acquire);
    struct ward_metric_family *fd = atomic_load_explicit(&c->f_duration, memory_order_acquire);
    struct ward_metric *m;
    size_t mi = NMETHODS - 1, ci = NCLASSES - 1;

    if (fr == NULL || fd == NULL)
        return;
    for (size_t i = 0; i + 1 < NMETHODS; i++)
        if (strcmp(method, method_names[i]) == 0)
            mi = i;
    if (rc == WARD_ERR_OK && status >= 100 && status <= 599)
        ci = (size_t)(status / 100 - 1);
    m = atomic_load_explicit(&c->m_requests[mi][ci], memory_order_acquire);
    if (m == NULL) {
        m = ward_metric_get(fr, (const char *const[]){method_names[mi], class_names[ci]});
        atomic_store_explicit(&c->m_requests[mi][ci], m, memory_order_release);
    }
    ward_counter_inc(m);
    m = atomic_load_explicit(&c->m_duration[mi], memory_order_acquire);
    if (m == NULL) {
        m = ward_metric_get(fd, (const char *const[]){method_names[mi]});
        atomic_store_explicit(&c->m_duration[mi], m, memory_order_release);
    }
    ward_histogram_observe(m, (double)elapsed / (double)WARD_NS_PER_S);
}

const struct ward_clock *ward__httpc_clock(const struct ward_httpc *c)
{
    return c->s.clock != NULL ? c->s.clock : ward_clock_real();
}

/* Completes res (headers, elapsed), releases what x holds and counts the call. */
static enum ward_err settle(struct ward_httpc *c, struct ward__httpc_xfer *x, enum ward_err rc,
                            struct ward_http_result *res)
{
    res->headers_ = x->k.hdr;
    res->headers_len_ = x->k.hlen;
    x->k.hdr = NULL;
    if (x->h != NULL)
        handle_give(c, x->h);
    x->h = NULL;
    curl_slist_free_all(x->hdrs);
    x->hdrs = NULL;
    free(x->k.body);
    x->k.body = NULL;
    res->elapsed = ward_clock_now(c->s.clock) - x->start;
    observe(c, x->method, rc, res->status, res->elapsed);
    return rc;
}

enum ward_err ward__httpc_begin(struct ward_httpc *c, const struct ward_http_call *call,
                                struct ward__httpc_xfer *x, struct ward_http_result *res)
{
    int64_t left;
    enum ward_err rc;

    *x = (struct ward__httpc_xfer){0};
    if (res == NULL)
        return WARD_ERR_INVAL;
    *res = (struct ward_http_result){0};
    if (c == NULL || call == NULL || call->url == NULL ||
        (call->body == NULL && call->body_len > 0))
        return WARD_ERR_INVAL;
    snprintf(x->method, sizeof x->method, "%s", call->method != NULL ? call->method : "GET");
    x->start = ward_clock_now(c->s.clock);
    x->budget = c->s.total_timeout;
    if (call->deadline != 0) {
        if (__builtin_sub_overflow(call->deadline, x->start, &left))
            left = call->deadline < 0 ? INT64_MIN : INT64_MAX;
        if (left <= x->budget) {
            x->budget = left;
            x->by_deadline = true;
        }
    }
    rc = WARD_ERR_DEADLINE;
    if (x->budget < WARD_NS_PER_MS)
        goto fail;
    rc = build_headers(call, x->budget / WARD_NS_PER_MS, &x->hdrs);
    if (rc != WARD_ERR_OK)
        goto fail;
    rc = WARD_ERR_NOMEM;
    x->k.max = c->s.max_body;
    x->h = handle_take(c);
    if (x->h == NULL || !set_options(c, x->h, call, x->hdrs, &x->k, x->budget / WARD_NS_PER_MS))
        goto fail;
    return WARD_ERR_OK;
fail:
    return settle(c, x, rc, res);
}

enum ward_err ward__httpc_end(struct ward_httpc *c, struct ward__httpc_xfer *x, CURLcode e,
                              struct ward_http_result *res)
{
    long status = 0;
    enum ward_err rc;

    res->sent = true;
    curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(x->h, CURLINFO_NUM_CONNECTS, &res->connects);
    res->status = (int)status;
    if (e != CURLE_OK) {
        rc = map_error(e, x->h, &x->k, x->by_deadline, c->s.connect_timeout < x->budget, res);
        goto out;
    }
    rc = WARD_ERR_NOMEM;
    if (x->k.body == NULL && !reserve(&x->k.body, &x->k.cap, 1))
        goto out;
    x->k.body[x->k.len] = '\0';
    res->body = x->k.body;
    res->body_len = x->k.len;
    x->k.body = NULL;
    rc = WARD_ERR_OK;
out:
    return settle(c, x, rc, res);
}

enum ward_err ward_httpc_do(struct ward_httpc *c, const struct ward_http_call *call,
                            struct ward_http_result *res)
{
    struct ward__httpc_xfer x;
    enum ward_err rc = ward__httpc_begin(c, call, &x, res);

    if (rc != WARD_ERR_OK)
        return rc;
    return ward__httpc_end(c, &x, curl_easy_perform(x.h), res);
}

enum ward_err ward_httpc_export(struct ward_httpc *c, struct ward_metrics *reg)
{
    static const char *const labels[] = {"method", "status"};
    struct ward_metric_family *fr, *fd;

    if (c == NULL || reg == NULL)
        return WARD_ERR_INVAL;
    if (atomic_exchange(&c->exported, true))
        return WARD_ERR_STATE;
    fr = ward_metrics_counter(reg, "ward_http_client_requests_total",
                              "HTTP client calls by method and status class.", 2, labels);
    fd = ward_metrics_histogram(reg, "ward_http_client_request_duration_seconds",
                                "HTTP client call duration.", 1, labels, NULL, 0);
    if (fr == NULL || fd == NULL) {
        atomic_store(&c->exported, false);
        return WARD_ERR_INVAL;
    }
    atomic_store_explicit(&c->f_requests, fr, memory_order_release);
    atomic_store_explicit(&c->f_duration, fd, memory_order_release);
    return WARD_ERR_OK;
}
